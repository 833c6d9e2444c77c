"""A same-run reference for CPU figures on a shared machine: the speed of one Ed25519
verification (libsodium through PyNaCl, what the verifier does once per measurement), sampled
while the measured work runs.

Why: this machine's host runs other tenants. At load below 1 and with no steal time reported, a
fixed loop of Ed25519 verifications takes anywhere from 61 to 115 µs each from one second to the
next, so every CPU-per-item figure moves with it. Dividing a figure by the reference sampled over
the same seconds gives a cost in "verifications", which stays put while absolute times do not.

The probe wakes every `period_s` and times `verifies` verifications (about 4 ms of one core per
100 ms); its own CPU time is reported so callers can take it out of their process's figure. It
also reads the whole machine's CPU counters (/proc/stat) at both ends of the window: the share of
the cores that were busy tells a run limited by CPU from one that waited (a pipeline with idle
cores), and the steal share whether the hypervisor took time it reports.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import nacl.signing


@dataclass(frozen=True, slots=True)
class ReferenceSpeed:
    verify_us_median: float
    verify_us_min: float
    verify_us_max: float
    samples: int
    probe_cpu_s: float  # CPU the probe itself used, to subtract from its process's figure
    host_busy_share: float | None  # of all cores' time over the window; None without /proc/stat
    host_steal_share: float | None

    def to_json(self) -> dict[str, object]:
        return {"reference_verify_us": round(self.verify_us_median, 1),
                "reference_verify_us_range": [round(self.verify_us_min, 1),
                                              round(self.verify_us_max, 1)],
                "reference_samples": self.samples,
                "host_busy_share": _rounded(self.host_busy_share),
                "host_steal_share": _rounded(self.host_steal_share)}


def _rounded(share: float | None) -> float | None:
    return None if share is None else round(share, 3)


_PROC_STAT = Path("/proc/stat")


def cpu_ticks() -> list[int] | None:
    """The machine's `cpu` line of /proc/stat: user nice system idle iowait irq softirq steal."""
    try:
        fields = _PROC_STAT.read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    return [int(v) for v in fields[1:9]]


def busy_and_steal_shares(before: list[int] | None, after: list[int] | None
                          ) -> tuple[float | None, float | None]:
    if before is None or after is None:
        return None, None
    spent = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(spent)
    if total <= 0:
        return None, None
    idle = spent[3] + spent[4]  # idle and iowait: a core with nothing to run
    return (total - idle) / total, spent[7] / total


class ReferenceProbe:
    """`with ReferenceProbe() as probe: ...` then `probe.result()`."""

    def __init__(self, *, period_s: float = 0.1, verifies: int = 50) -> None:
        key = nacl.signing.SigningKey.generate()
        self._message = b"lightfence reference probe " * 8
        self._signature = key.sign(self._message).signature
        self._verify_key = key.verify_key
        self._period_s = period_s
        self._verifies = verifies
        self._samples_us: list[float] = []
        self._cpu_s = 0.0
        self._ticks_before: list[int] | None = None
        self._ticks_after: list[int] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reference-probe", daemon=True)

    def __enter__(self) -> ReferenceProbe:
        self._ticks_before = cpu_ticks()
        self._sample()  # at least one sample, however short the measured work
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self._ticks_after = cpu_ticks()

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            self._sample()

    def _sample(self) -> None:
        # Thread CPU time, not wall time: a probe that waited for a core is not slower.
        started_s = time.thread_time()
        for _ in range(self._verifies):
            self._verify_key.verify(self._message, self._signature)
        spent_s = time.thread_time() - started_s
        self._cpu_s += spent_s
        self._samples_us.append(spent_s / self._verifies * 1e6)

    def result(self) -> ReferenceSpeed:
        samples = self._samples_us
        busy, steal = busy_and_steal_shares(self._ticks_before, self._ticks_after)
        return ReferenceSpeed(statistics.median(samples), min(samples), max(samples),
                              len(samples), self._cpu_s, busy, steal)
