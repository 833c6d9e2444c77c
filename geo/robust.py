"""Verdicts that survive up to f faulty landmarks (docs/verifier.md, "Faulty landmarks").

`geo.assess.assess` trusts every landmark it is given: one landmark that signs a falsely small
RTT, or claims a false position, shrinks the sound region wherever it likes and can make a chip
outside its licence `verified`. Delay by the chip's owner only enlarges caps; a landmark's lie
is not bounded by physics at all, so the only defence is not to depend on any f landmarks.

With f faulty landmarks at most, some subset of n - f landmarks is all honest, and its sound
region contains the chip. The rule below therefore asks every such subset:

* `verified` only if every subset leaving out f landmarks gives `verified` (then the honest
  subset does, and the chip is inside whoever lied);
* `violation` only if every such subset gives `violation` (the same argument);
* `inconsistent` only if every such subset is inconsistent: no n - f landmarks agree, so more
  than f of them are faulty and no verdict can rest on these inputs;
* otherwise `inconclusive`. An inconsistent subset proves one of its landmarks wrong but not
  which, so it counts as neither `verified` nor `violation`.

Subsets of exactly n - f suffice: with at most f faulty landmarks one of them is all honest,
and honest caps, however delayed, all contain the chip. The cost is C(n, f) calls of `assess`
(n = 8: 8 for f = 1, 28 for f = 2), cut short at the first disagreement.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from itertools import combinations
from typing import TYPE_CHECKING

from geo.assess import assess
from geo.assessment import Assessment, SolverParams, Verdict
from geo.caps import MIN_LANDMARKS
from geo.errors import InsufficientDataError, InvalidMeasurementError
from geo.licence import Licence
from geo.measurement import LandmarkRtt

if TYPE_CHECKING:
    from geo.calibration import CalibrationModel

logger = logging.getLogger(__name__)

MAX_FAULTY_LANDMARKS = 2  # C(n, f) subsets; the verifier's policies allow 0..2
_DEFAULT_PARAMS = SolverParams()  # `assess`'s default, shared (it is frozen)


def assess_tolerating(
    measurements: Sequence[LandmarkRtt],
    licence: Licence | None = None,
    calibration: CalibrationModel | None = None,
    params: SolverParams = _DEFAULT_PARAMS,
    faulty_landmarks: int = 0,
) -> Assessment:
    """`assess`, with a verdict that holds if any `faulty_landmarks` landmarks lie.

    The regions, estimate and figures are those of the full set (what all landmarks say);
    only the verdict is the robust one. f = 0 is exactly `assess`. Needs at least f + 2
    distinct landmarks (each subset must keep the solver's minimum of 2).
    """
    if isinstance(faulty_landmarks, bool) or not isinstance(faulty_landmarks, int):
        raise InvalidMeasurementError("faulty_landmarks must be an integer")
    if not 0 <= faulty_landmarks <= MAX_FAULTY_LANDMARKS:
        raise InvalidMeasurementError(
            f"faulty_landmarks must be in [0, {MAX_FAULTY_LANDMARKS}], got {faulty_landmarks}"
        )
    measurements = tuple(measurements)
    full = assess(measurements, licence, calibration, params)
    if faulty_landmarks == 0:
        return full
    landmark_ids = sorted({m.landmark_id for m in measurements})
    needed = faulty_landmarks + MIN_LANDMARKS
    if len(landmark_ids) < needed:
        raise InsufficientDataError(
            f"tolerating {faulty_landmarks} faulty landmark(s) needs at least {needed} distinct "
            f"landmarks, got {len(landmark_ids)}"
        )
    if full.verdict is None:  # no licence: nothing to make robust
        return full
    verdict = _robust_verdict(measurements, landmark_ids, licence, params, faulty_landmarks)
    logger.debug(
        "%d landmarks, f = %d: full-set verdict %s, robust verdict %s",
        len(landmark_ids),
        faulty_landmarks,
        full.verdict,
        verdict,
    )
    return replace(full, verdict=verdict)


def _robust_verdict(
    measurements: tuple[LandmarkRtt, ...],
    landmark_ids: Sequence[str],
    licence: Licence | None,
    params: SolverParams,
    faulty_landmarks: int,
) -> Verdict:
    seen: set[Verdict] = set()
    for left_out in combinations(landmark_ids, faulty_landmarks):
        dropped = set(left_out)
        subset = [m for m in measurements if m.landmark_id not in dropped]
        # The subset's estimate is never used: no calibration, only the verdict.
        verdict = assess(subset, licence, None, params).verdict
        assert verdict is not None  # a licence was given (checked by the caller)
        seen.add(verdict)
        if len(seen) > 1 or verdict is Verdict.INCONCLUSIVE:
            return Verdict.INCONCLUSIVE  # no later subset can make the vote unanimous
    (unanimous,) = seen
    return unanimous
