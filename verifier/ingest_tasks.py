"""Which task an uploaded record answers.

A version-2 record names its round and task (signed by its landmark, `protocol.records`): the
task must exist, be live, belong to the uploading landmark, measure the record's target, belong
to the named round, and cover the record's send time. A version-1 record (a landmark not yet
upgraded, or a batch spooled before the upgrade) names neither, so its task is inferred as
before: the latest-issued live task of its landmark for its target whose validity covers the
send time. The named tasks are read once per group commit (`Store.ingest_view`), the inferred
ones once per batch (`Store.tasks_overlapping`), never one per record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from protocol.records import NO_TASK_ID, MeasurementRecord
from verifier.model import TaskRow
from verifier.store import Store

# Task ids are database integers (signed 64-bit in both engines): a larger signed id names no
# task and must not reach a query, where it would not fit.
_MAX_TASK_ID = (1 << 63) - 1
NO_TASK = "no_task"  # no live task of this landmark covers the record
WRONG_TASK = "wrong_task"  # the signed task is another landmark's, target's or round's


def named_task_ids(records: Iterable[MeasurementRecord]) -> set[int]:
    """The task ids version-2 records name that can be database ids."""
    return {r.task_id for r in records
            if r.version >= 2 and NO_TASK_ID < r.task_id <= _MAX_TASK_ID}


@dataclass(frozen=True, slots=True)
class BatchTasks:
    """The tasks a batch's records may answer, fetched once per batch."""

    by_id: Mapping[int, TaskRow]  # for version-2 records
    by_target: Mapping[tuple[str, str], Sequence[TaskRow]]  # for version-1 records

    @classmethod
    def fetch(cls, store: Store, landmark_id: str, records: Sequence[MeasurementRecord],
              slack_ns: int, by_id: Mapping[int, TaskRow]) -> BatchTasks:
        """`by_id`: the live tasks among the records' `named_task_ids`, read beforehand (one
        read for a whole group commit); version-1 records' tasks are read here."""
        legacy = [r for r in records if r.version == 1]
        by_target: dict[tuple[str, str], list[TaskRow]] = {}
        if legacy:
            sent = [r.sent_unix_ns for r in legacy]
            for row in store.tasks_overlapping(landmark_id, [r.target_id for r in legacy],
                                               min(sent) - slack_ns, max(sent) + slack_ns):
                by_target.setdefault((row.target_kind, row.target_id), []).append(row)
        return cls(by_id, by_target)

    def match(self, landmark_id: str, record: MeasurementRecord,
              slack_ns: int) -> TaskRow | str:
        """The task `record` answers, or the rejection reason (`NO_TASK`, `WRONG_TASK`)."""
        if record.version == 1:
            return _infer(self.by_target, record, slack_ns) or NO_TASK
        task = self.by_id.get(record.task_id)
        if task is None:
            return NO_TASK
        if (task.landmark_id != landmark_id or task.target_kind != record.target_kind
                or task.target_id != record.target_id or task.round_id != record.round_id):
            return WRONG_TASK
        return task if _covers(task, record.sent_unix_ns, slack_ns) else NO_TASK


def _covers(task: TaskRow, sent_unix_ns: int, slack_ns: int) -> bool:
    return (task.issued_unix_ns <= sent_unix_ns + slack_ns
            and task.expires_unix_ns >= sent_unix_ns - slack_ns)


def _infer(tasks: Mapping[tuple[str, str], Sequence[TaskRow]], record: MeasurementRecord,
           slack_ns: int) -> TaskRow | None:
    """Version 1: the latest-issued task for the record's target that covers its send time."""
    best: TaskRow | None = None
    for task in tasks.get((record.target_kind, record.target_id), ()):
        if (_covers(task, record.sent_unix_ns, slack_ns)
                and (best is None or task.issued_unix_ns > best.issued_unix_ns)):
            best = task
    return best
