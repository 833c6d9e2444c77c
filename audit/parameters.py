"""The proof-tier parameters the audit owns, and the check of what an entry claims against them.

An evidence entry states the solver parameters it was decided with, but the audit never takes
them from there: a verifier (or a forger holding the log key) that writes
``processing_floor_ms = 61`` into an entry turns 62–64 ms RTTs from Shenzhen into caps of a few
hundred km around German landmarks, and the entry would recompute to its own `verified`. So the
audit recomputes with its own values and names every entry value that differs:

- ``speed_km_per_s``: c in vacuum, always (a faster assumed speed is never needed: nothing beats c).
- ``plausible_speed_km_per_s``: the geo core's 2/3 c (the plausible tier is compared too).
- ``processing_floor_ms``: the policy's ``processing_floor_ms`` in the same entry (absent: 0),
  which the log signs with the entry, and which may not exceed `MAX_PROCESSING_FLOOR_MS`, a bound
  the audit owns: a floor is time the chip is *guaranteed* to spend before answering, and the
  fastest signer of a chip key (an Ed25519 signature: about 50,000 cycles on the fastest
  published implementations, 10 µs at 5 GHz) bounds what any policy may claim. 0.01 ms is 1.5 km
  of radius; a larger claimed floor is a finding and the recomputation uses 0.
- ``resolution_km``: the entry's own value, inside `RESOLUTION_KM_BOUNDS`. Any resolution is
  sound (the solver's polygons enclose the true caps by at most the resolution); the bounds keep
  a recomputation affordable and a region meaningful.

`MAX_RECORD_AGE_S` bounds how old a measurement a verdict may rest on: records sent more than
that before the verdict prove where the chip was, not where it is. The verifier applies the same
limit when it closes a round (`verifier.verdicts`), less `VERDICT_MARGIN_S` for the time a
decision takes, so its verdicts always pass this audit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from audit.report import NS_PER_S, Fail
from geo.constants import C_VACUUM_KM_PER_S, PLAUSIBLE_SPEED_KM_PER_S

if TYPE_CHECKING:  # the geo solver (shapely, numpy) loads only when a verdict is recomputed
    from geo.assessment import SolverParams

MAX_PROCESSING_FLOOR_MS = 0.01
RESOLUTION_KM_BOUNDS = (1.0, 50.0)
DEFAULT_RESOLUTION_KM = 5.0  # geo.assessment.SolverParams' default, what the verifier uses
MAX_RECORD_AGE_S = 900.0
# The verifier checks a record's age when it collects a round and stamps the verdict once the
# solver is done; a decision never takes this long (seconds under load), so it stays inside.
VERDICT_MARGIN_S = 60.0
_PARAMETER_TOLERANCE = 1e-9
_KNOWN = {"speed_km_per_s", "plausible_speed_km_per_s", "processing_floor_ms", "resolution_km"}


def record_too_old(sent_unix_ns: int, decided_unix_ns: int) -> bool:
    """Whether a record sent at ``sent_unix_ns`` is too old for a verdict at ``decided_unix_ns``."""
    return decided_unix_ns - sent_unix_ns > MAX_RECORD_AGE_S * NS_PER_S


def policy_floor_ms(policy: Any) -> float | None:
    """The entry's policy floor (absent: 0), or None when it is not a number the audit allows."""
    floor = policy.get("processing_floor_ms", 0.0) if isinstance(policy, Mapping) else 0.0
    if isinstance(floor, bool) or not isinstance(floor, int | float) or not math.isfinite(floor):
        return None
    return float(floor) if 0.0 <= floor <= MAX_PROCESSING_FLOOR_MS else None


def audit_params(where: str, index: int, entry: Mapping[str, Any], fail: Fail) -> SolverParams:
    """The parameters to recompute ``entry`` with; a finding for each entry value that differs."""
    from geo.assessment import SolverParams

    solver = entry.get("solver")
    stated = solver.get("params") if isinstance(solver, Mapping) else None
    stated = stated if isinstance(stated, Mapping) else {}
    path = f"{where}.solver.params"

    def differs(name: str, expected: Any, message: str) -> None:
        fail(
            "parameters.solver",
            f"{path}.{name}",
            message,
            entry=index,
            expected=expected,
            found=stated.get(name),
        )

    policy = entry.get("policy")
    floor = policy_floor_ms(policy)
    if floor is None:
        fail(
            "parameters.processing_floor",
            f"{where}.policy.processing_floor_ms",
            "the policy's processing floor is not a number in the audit's bound",
            entry=index,
            expected=f"0 <= floor <= {MAX_PROCESSING_FLOOR_MS} ms",
            found=policy.get("processing_floor_ms") if isinstance(policy, Mapping) else None,
        )
        floor = 0.0
    for name in sorted(set(stated) - _KNOWN):
        differs(name, None, f"unknown solver parameter {name!r}")
    for name, owned, why in (
        ("speed_km_per_s", C_VACUUM_KM_PER_S, "proof-tier caps use c in vacuum"),
        ("plausible_speed_km_per_s", PLAUSIBLE_SPEED_KM_PER_S, "the plausible tier uses 2/3 c"),
        ("processing_floor_ms", floor, "the floor must be the policy's (absent: 0)"),
    ):
        if not _same_number(stated.get(name, owned), owned):
            differs(name, owned, f"{name} differs from the audit's: {why}")
    low, high = RESOLUTION_KM_BOUNDS
    resolution = stated.get("resolution_km", DEFAULT_RESOLUTION_KM)
    if not _number(resolution) or not low <= float(resolution) <= high:
        differs("resolution_km", f"[{low}, {high}]", "resolution_km outside the audit's bounds")
        resolution = DEFAULT_RESOLUTION_KM
    return SolverParams(
        speed_km_per_s=C_VACUUM_KM_PER_S,
        plausible_speed_km_per_s=PLAUSIBLE_SPEED_KM_PER_S,
        processing_floor_ms=floor,
        resolution_km=float(resolution),
    )


def _number(value: Any) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    )


def _same_number(found: Any, expected: float) -> bool:
    return _number(found) and abs(float(found) - expected) <= _PARAMETER_TOLERANCE * max(
        1.0, abs(expected)
    )
