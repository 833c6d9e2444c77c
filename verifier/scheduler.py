"""Round planning: which landmarks measure which target, and when.

Landmark choice per chip round (`choose_landmarks`): half the slots go to the landmarks nearest
the chip's expected position (small RTT → tight caps), the rest greedily to landmarks whose
bearings from that position are farthest from those already chosen (caps from many directions
intersect in a small region). Dead or faulty landmarks are never chosen; tasks stuck on a
landmark that died are re-issued to a healthy one not already in the round.

Cost per tick follows the work that is due, not the fleet: due chips, rounds past their
deadline and rounds answered since the last tick are read through indexes (verifier.store),
at most `PLAN_BATCH` chips per tick (the rest are next tick's, earliest first), in transactions
of `PLAN_CHUNK` chips so that task polls waiting for the database thread wait for one chunk,
not for the whole tick's planning.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from geo.errors import GeoError
from geo.geodesy import distance_km
from geo.licence import site_from_json
from protocol.revocation import RevocationIndex
from verifier.model import DEFAULT_POLICY, Chip, Landmark, Round
from verifier.registry import licence_anchor
from verifier.revocations import key_info, trusted_now
from verifier.store import Store

logger = logging.getLogger(__name__)

_NS = 1_000_000_000
MESH_PEERS = 8  # probes per landmark per mesh round: enough for calibration and the audit
PLAN_BATCH = 2_000  # chips planned per tick at most; a backlog drains earliest-due first
PLAN_CHUNK = 250  # chips planned per call of `plan` (one transaction)
CLOSE_BATCH = 2_000  # rounds past their deadline closed per tick at most
UNTRUSTED_RECHECK_S = 60.0  # a chip whose key cannot vouch now is looked at again after this
# Measurement ids below the cursor re-read each tick: on PostgreSQL an id can commit after a
# larger one, and a round answered by it would otherwise wait for its deadline.
_ANSWER_LOOKBACK_IDS = 2_000


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    landmark_dead_after_s: float
    mesh_interval_s: float
    task_ttl_s: float


def landmark_health(landmark: Landmark, now_unix_ns: int, dead_after_s: float) -> str:
    if landmark.faulty:
        return "faulty"
    if landmark.last_seen_unix_ns is None:
        return "unknown"
    return "alive" if now_unix_ns - landmark.last_seen_unix_ns <= dead_after_s * _NS else "dead"


def _bearing_rad(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    return math.atan2(math.sin(dl) * math.cos(p2),
                      math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl))


def _angle_gap(a: float, b: float) -> float:
    gap = abs(a - b) % (2 * math.pi)
    return min(gap, 2 * math.pi - gap)


def choose_landmarks(candidates: Sequence[Landmark], anchor: tuple[float, float],
                     count: int) -> list[Landmark]:
    """Pick `count` landmarks for a target expected near `anchor` (lat_deg, lon_deg)."""
    if len(candidates) <= count:
        return list(candidates)
    lat, lon = anchor
    by_distance = sorted(candidates,
                         key=lambda lm: distance_km(lat, lon, lm.lat_deg, lm.lon_deg))
    chosen = by_distance[:max(1, count // 2)]
    rest = by_distance[len(chosen):]
    bearings = {lm.landmark_id: _bearing_rad(lat, lon, lm.lat_deg, lm.lon_deg)
                for lm in candidates}
    while len(chosen) < count and rest:
        best = max(rest, key=lambda lm: min(_angle_gap(bearings[lm.landmark_id],
                                                       bearings[c.landmark_id]) for c in chosen))
        chosen.append(best)
        rest.remove(best)
    return chosen


_ANCHOR_VERDICTS = 8  # how far back to look for an estimate (no_answer rounds have none)


def _anchor(store: Store, chip: Chip, landmarks: Sequence[Landmark]) -> tuple[float, float]:
    """Where the chip probably is: its declared site (where its licence says it is; its
    nearest landmarks are what the location alerts compare), else the latest estimate among its
    recent verdicts, else the licence's allowed area."""
    licence_json = json.dumps(chip.licence, sort_keys=True)
    site = _declared_site(licence_json)
    if site is not None:
        return site
    for verdict in store.verdicts(chip.chip_id, None, _ANCHOR_VERDICTS):
        # Assessment.to_json() writes the estimate as {"lat", "lon"} (or null).
        estimate = (verdict.assessment or {}).get("estimate")
        if isinstance(estimate, dict):
            lat, lon = estimate.get("lat"), estimate.get("lon")
            if (isinstance(lat, float | int) and isinstance(lon, float | int)
                    and not isinstance(lat, bool) and not isinstance(lon, bool)):
                return float(lat), float(lon)
    anchor = _licence_anchor(licence_json)
    if anchor is not None:
        return anchor
    return landmarks[0].lat_deg, landmarks[0].lon_deg


# Parsing a licence builds its geometry (milliseconds); a fleet shares a few licences, so each
# distinct licence text is parsed once, not once per planned round.
@functools.lru_cache(maxsize=1_024)
def _declared_site(licence_json: str) -> tuple[float, float] | None:
    with contextlib.suppress(GeoError):
        site = site_from_json(json.loads(licence_json))
        if site is not None:
            return site.lat_deg, site.lon_deg
    return None


@functools.lru_cache(maxsize=1_024)
def _licence_anchor(licence_json: str) -> tuple[float, float] | None:
    return licence_anchor(json.loads(licence_json))


def new_round_id(kind: str, target_id: str, now_unix_ns: int) -> str:
    return f"{kind[0]}-{now_unix_ns // 1_000_000}-{secrets.token_hex(3)}-{target_id}"[:64]


@dataclass(frozen=True, slots=True)
class Planned:
    round_ids: tuple[str, ...]  # the rounds created
    chips_read: int  # due chips looked at: `limit` of them means more may be due


def plan(store: Store, settings: SchedulerSettings, now_unix_ns: int,
         limit: int = PLAN_CHUNK) -> Planned:
    """Plan the `limit` earliest due chips' rounds and any due mesh rounds, and re-issue stuck
    tasks."""
    landmarks = store.landmarks()
    revoked = RevocationIndex(store.revocations())
    # No round with or for a key that could not vouch for its answers (revoked, or outside
    # its certificate's validity): verdicts would ignore them anyway.
    healthy = [lm for lm in landmarks
               if landmark_health(lm, now_unix_ns, settings.landmark_dead_after_s) == "alive"
               and trusted_now(revoked, "landmark", lm.landmark_id,
                               key_info(lm.public_key, lm.certificate), now_unix_ns)]
    if not healthy:
        return Planned((), 0)
    policies = {p.name: p for p in store.policies()}
    # Chips near one place (one declared site or licence) get the same landmarks: choose once.
    choices: dict[tuple[tuple[float, float], int], list[Landmark]] = {}
    # Written set-based at the end (one insert per table, one update), not per chip.
    planned: list[tuple[Round, list[tuple[str, str, int]]]] = []
    next_round: dict[str, int] = {}
    due = store.due_chips(now_unix_ns, limit)
    for chip in due:
        if chip.host is None or chip.port is None:
            continue
        if not trusted_now(revoked, "chip", chip.chip_id,
                           key_info(chip.public_key, chip.certificate), now_unix_ns):
            next_round[chip.chip_id] = now_unix_ns + int(UNTRUSTED_RECHECK_S * _NS)
            continue
        policy = policies.get(chip.policy, DEFAULT_POLICY)
        # A policy tolerating f liars needs f + 2 landmarks (PolicyIn enforces it; this keeps
        # a policy written by other means from starving every verdict).
        wanted = policy.landmarks_per_round
        if policy.tolerate_faulty_landmarks:
            wanted = max(wanted, policy.tolerate_faulty_landmarks + 2)
        key = (_anchor(store, chip, healthy), wanted)
        if key not in choices:
            choices[key] = choose_landmarks(healthy, key[0], wanted)
        rnd = Round(new_round_id("chip", chip.chip_id, now_unix_ns), "chip", chip.chip_id,
                    now_unix_ns, now_unix_ns + int(policy.round_timeout_s * _NS))
        planned.append((rnd, [(lm.landmark_id, chip.host, chip.port) for lm in choices[key]]))
        next_round[chip.chip_id] = now_unix_ns + int(policy.round_interval_s * _NS)
    for target in healthy:
        if target.next_mesh_unix_ns > now_unix_ns:
            continue
        peers = [lm for lm in healthy if lm.landmark_id != target.landmark_id]
        probers = choose_landmarks(peers, (target.lat_deg, target.lon_deg), MESH_PEERS)
        store.set_landmark_next_mesh(target.landmark_id,
                                     now_unix_ns + int(settings.mesh_interval_s * _NS))
        if not probers:
            continue
        rnd = Round(new_round_id("landmark", target.landmark_id, now_unix_ns), "landmark",
                    target.landmark_id, now_unix_ns, now_unix_ns + int(settings.task_ttl_s * _NS))
        planned.append((rnd, [(lm.landmark_id, target.host, target.port) for lm in probers]))
    store.add_rounds(planned)
    store.set_chips_next_round(next_round)
    _reissue(store, landmarks, healthy, now_unix_ns)
    return Planned(tuple(rnd.round_id for rnd, _ in planned), len(due))


def _reissue(store: Store, landmarks: Sequence[Landmark], healthy: Sequence[Landmark],
             now_unix_ns: int) -> None:
    """Move never-delivered tasks of open rounds off landmarks that are not alive."""
    alive_ids = {lm.landmark_id for lm in healthy}
    others = [lm.landmark_id for lm in landmarks if lm.landmark_id not in alive_ids]
    for task in store.stuck_tasks(others, now_unix_ns):
        rnd = store.round(task.round_id)
        if rnd is None or rnd.deadline_unix_ns <= now_unix_ns:
            continue
        in_round = {t.landmark_id for t in store.round_tasks(rnd.round_id)}
        spare = [lm for lm in healthy
                 if lm.landmark_id not in in_round and lm.landmark_id != rnd.target_id]
        if spare:
            replacement = spare[0]
            store.cancel_task(task.task_id)
            store.add_task(rnd.round_id, landmark_id=replacement.landmark_id,
                           target_kind=task.target_kind, target_id=task.target_id,
                           host=task.host, port=task.port, issued_unix_ns=now_unix_ns,
                           expires_unix_ns=rnd.deadline_unix_ns)
            logger.info("round %s: task moved from dead landmark %s to %s", rnd.round_id,
                        task.landmark_id, replacement.landmark_id)


class AnswerCursor:
    """The largest measurement id whose rounds `due_rounds` has looked at (the leader's own
    state; a new leader starts near the end and leaves older rounds to their deadlines)."""

    def __init__(self, measurement_id: int | None = None) -> None:
        self.measurement_id = measurement_id


def due_rounds(store: Store, now_unix_ns: int, cursor: AnswerCursor) -> list[Round]:
    """Open rounds that are finished: the deadline passed, or every task is answered (looked
    for only among rounds that got a measurement since the last call)."""
    due = {rnd.round_id: rnd for rnd in store.rounds_past_deadline(now_unix_ns, CLOSE_BATCH)}
    after = (cursor.measurement_id - _ANSWER_LOOKBACK_IDS if cursor.measurement_id is not None
             else store.rounds_answered(2**62)[1] - _ANSWER_LOOKBACK_IDS)
    answered, cursor.measurement_id = store.rounds_answered(max(0, after))
    due.update((rnd.round_id, rnd) for rnd in answered)
    return list(due.values())
