"""What to measure: a `TaskSource` yields rounds of tasks (config/file now, the verifier later)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from landmark_node.errors import LandmarkConfigError
from protocol.codec import validate_id
from protocol.errors import WireError
from protocol.records import NO_TASK_ID, TARGET_KINDS


@dataclass(frozen=True, slots=True)
class Task:
    target_kind: str  # "chip" | "landmark"
    target_id: str
    host: str  # "" = use the address the target's last HELLO came from (NAT)
    port: int
    round_id: str
    task_id: int = NO_TASK_ID  # the verifier's task id; config and file targets have none

    def __post_init__(self) -> None:
        if self.target_kind not in TARGET_KINDS:
            raise LandmarkConfigError(f"task target_kind must be one of {TARGET_KINDS}")
        if isinstance(self.task_id, bool) or not 0 <= self.task_id < 1 << 64:
            raise LandmarkConfigError(f"task id {self.task_id} out of range")
        try:
            validate_id(self.round_id, "round id")
            validate_id(self.target_id, "target id")
        except WireError as exc:
            raise LandmarkConfigError(str(exc)) from exc
        if not 0 <= self.port <= 65535:
            raise LandmarkConfigError(f"task port {self.port} out of range")


class TaskSource(Protocol):
    async def next_tasks(self) -> list[Task]: ...


def task_from_json(obj: Any, round_id: str) -> Task:
    if not isinstance(obj, dict):
        raise LandmarkConfigError("a target must be a table/object")
    kind = obj.get("kind", obj.get("target_kind", "chip"))
    target_id = obj.get("id", obj.get("target_id"))
    host, port = obj.get("host", ""), obj.get("port", 0)
    if not isinstance(kind, str) or not isinstance(target_id, str) or not isinstance(host, str):
        raise LandmarkConfigError(f"target needs string kind, id and host: {obj!r}")
    if not isinstance(port, int) or isinstance(port, bool):
        raise LandmarkConfigError(f"target port must be an integer: {obj!r}")
    return Task(kind, target_id, host, port, round_id)


class StaticTaskSource:
    """The same targets every `round_interval_s`; the first round starts at once."""

    def __init__(self, targets: list[dict[str, Any]], round_interval_s: float) -> None:
        for target in targets:
            task_from_json(target, "check")
        self._targets = targets
        self._interval_s = round_interval_s
        self._round = 0
        self._next_mono_s: float | None = None

    def _load(self) -> list[dict[str, Any]]:
        return self._targets

    async def next_tasks(self) -> list[Task]:
        now = time.monotonic()
        if self._next_mono_s is not None and self._next_mono_s > now:
            await asyncio.sleep(self._next_mono_s - now)
        self._next_mono_s = max(now, self._next_mono_s or now) + self._interval_s
        self._round += 1
        round_id = f"r{self._round}"
        return [task_from_json(target, round_id) for target in self._load()]


class FileTaskSource(StaticTaskSource):
    """Re-reads a JSON list of targets (`[{"kind", "id", "host", "port"}]`) every round, so an
    operator or script can change targets without restarting the landmark."""

    def __init__(self, path: Path, round_interval_s: float) -> None:
        self._path = path
        super().__init__([], round_interval_s)
        self._load()

    def _load(self) -> list[dict[str, Any]]:
        try:
            targets = json.loads(self._path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LandmarkConfigError(f"{self._path}: cannot read task file: {exc}") from exc
        if not isinstance(targets, list):
            raise LandmarkConfigError(f"{self._path}: task file must hold a JSON list")
        return targets
