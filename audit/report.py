"""What an audit produces: findings, the report, and the running state every check writes to.

A failed check never stops the audit: it becomes a `Finding` naming the log entry, the JSON path
of the field, what was expected and what was found, so one report lists every problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

NS_PER_S = 1_000_000_000
COUNTED = ("entries", "verdicts", "alerts", "records", "signatures", "tree_heads",
           "recomputed_verdicts")  # fmt: skip


class AuditError(Exception):
    """The bundle cannot be audited at all (unreadable, not a bundle); the message says why."""


class Fail(Protocol):
    """Records a finding: ``check`` (e.g. "record.landmark_signature") at JSON path ``where``."""

    def __call__(
        self,
        check: str,
        where: str,
        message: str,
        *,
        entry: int | None = None,
        expected: Any = None,
        found: Any = None,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Finding:
    check: str  # e.g. "record.landmark_signature"
    where: str  # JSON path inside the bundle
    message: str
    entry_index: int | None = None  # log index of the entry concerned
    expected: Any = None
    found: Any = None

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "where": self.where,
            "entry_index": self.entry_index,
            "message": self.message,
            "expected": self.expected,
            "found": self.found,
        }


@dataclass(frozen=True, slots=True)
class AuditReport:
    findings: tuple[Finding, ...]
    counts: Mapping[str, int]
    notes: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "counts": dict(self.counts),
            "findings": [f.to_json() for f in self.findings],
            "notes": list(self.notes),
        }


@dataclass(slots=True)
class AuditState:
    """Findings, notes and counts so far; ``fail`` is a `Fail`."""

    allow_unpinned: bool = False
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTED, 0))

    def fail(
        self,
        check: str,
        where: str,
        message: str,
        *,
        entry: int | None = None,
        expected: Any = None,
        found: Any = None,
    ) -> None:
        self.findings.append(Finding(check, where, message, entry, expected, found))

    def unpinned(self, key: str, where: str, option: str) -> None:
        """A key taken from the bundle: a finding (once), or a note when asked for explicitly."""
        text = f"{key} key taken from the bundle, which a forger writes too; pin it with {option}"
        if self.allow_unpinned:
            if text not in self.notes:
                self.notes.append(text)
        elif not any(f.check == f"{key}.unpinned" for f in self.findings):
            self.fail(f"{key}.unpinned", where, text)

    def report(self) -> AuditReport:
        return AuditReport(tuple(self.findings), dict(self.counts), tuple(self.notes))
