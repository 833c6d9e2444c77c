"""Each chip's own best RTT per landmark, learned from its history (docs/verifier.md, "Learned
RTT baseline").

A chip that stays put answers each landmark no faster than physics and its own route allow, and
in most rounds close to that: the best RTT of the chip's answered rounds to a landmark is a
tight, chip-specific floor, much tighter than anything a declared site explains (the site rule
must allow 3x route stretch). A relay or a move after enrolment adds distance to every landmark
in every round, so the rounds rise above that floor and stay there.

The baseline of a (chip, landmark) is the least RTT of the rounds it has seen, so it can only
fall: a round slower than the baseline never raises it (a relay cannot teach it the relay, and
a slow, patient creep gets no ratchet), a faster one lowers it at once. It judges only after
`Policy.baseline_rounds` answered rounds. It restarts when the landmark's position changes
(a landmark replaced or moved: its old floor says nothing about the new path) and when an
operator resets it (a legitimate move, a lasting route change; `reset_rtt_baselines`).

What it cannot do: a chip relayed from its first round teaches the baseline the relay. The
declared site (`site_inconsistent`, `rtt_anomaly`) is what catches that.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from geo.geodesy import distance_km
from verifier.model import RttBaseline, VerdictRecord

# A landmark re-registered farther than this from where its baseline was learned is a new path.
MOVED_KM = 1.0
# The rule compares a round with the baselines of the BASELINE_LANDMARKS answering landmarks
# with the lowest baselines (the nearest, whose short paths jitter least), and says nothing
# about a round with fewer than MIN_LANDMARKS of them: one slow path is congestion, not a move.
BASELINE_LANDMARKS = 3
MIN_LANDMARKS = 2


def round_rtts(verdict: VerdictRecord) -> dict[str, tuple[float, float, float]]:
    """Per landmark in the round: (lat_deg, lon_deg, best rtt_ms)."""
    best: dict[str, tuple[float, float, float]] = {}
    for row in verdict.landmarks:
        rtt_ms = float(row["rtt_ms"])
        landmark_id = str(row["landmark_id"])
        if landmark_id not in best or rtt_ms < best[landmark_id][2]:
            best[landmark_id] = (float(row["lat_deg"]), float(row["lon_deg"]), rtt_ms)
    return best


def _same_place(baseline: RttBaseline, lat_deg: float, lon_deg: float) -> bool:
    return distance_km(baseline.lat_deg, baseline.lon_deg, lat_deg, lon_deg) <= MOVED_KM


def learn(known: Iterable[RttBaseline], verdict: VerdictRecord) -> list[RttBaseline]:
    """The baseline rows this round changes: every landmark that answered, its floor lowered to
    this round's RTT when faster, restarted when the landmark stands somewhere else."""
    by_landmark = {b.landmark_id: b for b in known}
    now_unix_ns = verdict.created_unix_ns
    changed = []
    for landmark_id, (lat_deg, lon_deg, rtt_ms) in sorted(round_rtts(verdict).items()):
        old = by_landmark.get(landmark_id)
        if old is None or not _same_place(old, lat_deg, lon_deg):
            changed.append(RttBaseline(verdict.chip_id, landmark_id, lat_deg, lon_deg, rtt_ms,
                                       rounds=1, since_unix_ns=now_unix_ns,
                                       updated_unix_ns=now_unix_ns))
        else:
            changed.append(replace(old, best_rtt_ms=min(old.best_rtt_ms, rtt_ms),
                                   rounds=old.rounds + 1, updated_unix_ns=now_unix_ns))
    return changed


@dataclass(frozen=True, slots=True)
class BaselineExcess:
    """One round against the learned baselines: the smallest excess among the landmarks with
    the lowest baselines (so every one of them was slower than its floor by at least this)."""

    verdict_id: int
    round_id: str
    excess_ms: float
    landmarks: tuple[dict[str, Any], ...]  # per landmark: RTT, baseline, its rounds, excess

    def to_json(self) -> dict[str, Any]:
        return {"verdict_id": self.verdict_id, "round_id": self.round_id,
                "excess_ms": round(self.excess_ms, 3), "landmarks": list(self.landmarks)}


def round_excess(baselines: Mapping[str, RttBaseline], verdict: VerdictRecord, *,
                 baseline_rounds: int) -> BaselineExcess | None:
    """None when the round cannot be judged: fewer than MIN_LANDMARKS answering landmarks with
    a baseline learned over `baseline_rounds` rounds at the landmark's present position."""
    ready = []
    for landmark_id, (lat_deg, lon_deg, rtt_ms) in round_rtts(verdict).items():
        baseline = baselines.get(landmark_id)
        if (baseline is not None and baseline.rounds >= baseline_rounds
                and _same_place(baseline, lat_deg, lon_deg)):
            ready.append((baseline, rtt_ms))
    if len(ready) < MIN_LANDMARKS:
        return None
    ready.sort(key=lambda item: (item[0].best_rtt_ms, item[0].landmark_id))
    chosen = ready[:BASELINE_LANDMARKS]
    evidence = tuple(
        {"landmark_id": b.landmark_id, "rtt_ms": round(rtt_ms, 3),
         "baseline_rtt_ms": round(b.best_rtt_ms, 3), "baseline_rounds": b.rounds,
         "excess_ms": round(rtt_ms - b.best_rtt_ms, 3)}
        for b, rtt_ms in chosen)
    excess_ms = min(rtt_ms - b.best_rtt_ms for b, rtt_ms in chosen)
    return BaselineExcess(verdict.verdict_id, verdict.round_id, excess_ms, evidence)


def judged_rounds(baselines: Mapping[str, RttBaseline], history: Sequence[VerdictRecord], *,
                  baseline_rounds: int, wanted: int) -> list[BaselineExcess]:
    """The newest `wanted` rounds of `history` (newest first) that can be judged."""
    found = []
    for past in history:
        excess = round_excess(baselines, past, baseline_rounds=baseline_rounds)
        if excess is not None:
            found.append(excess)
            if len(found) == wanted:
                break
    return found
