"""Child processes of the demo: started in their own process group, always reaped.

On Linux each child also asks the kernel to SIGTERM it when the demo dies (PR_SET_PDEATHSIG), so
even a `kill -9` of the demo leaves no stray landmark or agent behind.

Children may ask for real-time scheduling (SCHED_FIFO). The relays and agents run at
PATH_PRIORITY: every datagram of every round trip crosses them, a round trip is only as short as
the slowest wake-up along it, and on two cores shared with everything else a normal process
waits milliseconds to be scheduled: hundreds of km of radius. The verifier comes next
(VERIFIER_PRIORITY: it stands in for a machine of its own, but must never delay a datagram in
flight), then the landmarks (LANDMARK_PRIORITY): their send and receive times are the kernel's
stamps, so their own scheduling is off the timed path, but their uploads feed the rounds and must
not queue behind other jobs. With the landmarks above the verifier, 22 busy event loops kept the
verifier from deciding rounds: verdicts came ~7.7 s after a round started instead of ~4.3 s
(one run each, load 10-40).
Each child sleeps in blocking I/O between datagrams or requests, so it takes the CPU only while
it has work; the kernel's real-time throttle (sched_rt_runtime_us) keeps 5 % for everyone else
in any case. Where the privilege is missing the child runs normally, and `realtime()` says so.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


PATH_PRIORITY = 3  # the relays and agents: every datagram of every round trip crosses them
VERIFIER_PRIORITY = 2
LANDMARK_PRIORITY = 1  # their send and receive times come from the kernel


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _realtime_child(priority: int) -> Callable[[], None]:
    def setup() -> None:
        _die_with_parent()
        with contextlib.suppress(OSError, AttributeError):  # no CAP_SYS_NICE: run normally
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))

    return setup


class Child:
    def __init__(
        self, name: str, argv: Sequence[str], log_path: Path, *,
        realtime_priority: int | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=(  # noqa: PLW1509
                (_die_with_parent if realtime_priority is None
                 else _realtime_child(realtime_priority))
                if sys.platform == "linux" else None
            ),
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def realtime(self) -> bool:
        """Whether the child got real-time scheduling (False once it has exited)."""
        try:
            return os.sched_getscheduler(self.process.pid) == os.SCHED_FIFO
        except (OSError, AttributeError):
            return False

    def alive(self) -> bool:
        return self.process.poll() is None

    def terminate(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)

    def kill(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def wait(self, timeout_s: float) -> bool:
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def close(self) -> None:
        self._log.close()


def lightfence_argv(*args: str) -> list[str]:
    """Runs the `lightfence` CLI with this interpreter, whatever PATH says."""
    return [sys.executable, "-m", "lightfence", *args]


def stop_all(children: Sequence[Child], grace_s: float = 5.0) -> None:
    """SIGTERM everyone, wait up to `grace_s` in total, then SIGKILL the rest; reap all."""
    for child in children:
        child.terminate()
    for child in children:
        if not child.wait(grace_s):
            logger.warning("%s ignored SIGTERM; killing it", child.name)
            child.kill()
            child.wait(grace_s)
        child.close()
