"""The decision rule: a round's checked inputs -> its verdict, reason code and assessment.

One function for everyone who decides or re-decides a round: the verifier (`verifier.verdicts`)
and the offline audit's recomputation (`audit.recompute`). The caller has already chosen the
inputs (signed, fresh, from keys that may vouch for them; one measurement per landmark) and
parsed the licence and calibration; what stays with the caller is what only it can know: a
round without answers is `dark` when the chip has been silent for the policy's dark window
(the verifier's state, outside the evidence), and a crash while deciding (`VERDICT_ERROR`).

The rule:
1. no measurement: `inconclusive` (`no_answer`);
2. the geometry (`geo.robust.assess_tolerating` with `tolerated_faults`; 0 is exactly
   `geo.assess.assess`); where it gives no assessment (a `GeoError`: too few landmarks for
   the tolerance, bad input) or no verdict (no licence to compare with): `inconclusive`,
   never `verified`;
3. the key rule: a geometric `verified` from a key weaker than the policy's minimum (a copy
   of the key could have answered from beside a landmark) is held back as `inconclusive`
   (`untrusted_key`); the assessment still says `verified`. Every other verdict stands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from geo.assessment import Assessment, SolverParams, Verdict
from geo.errors import GeoError
from geo.licence import Licence
from geo.measurement import LandmarkRtt
from geo.robust import assess_tolerating

if TYPE_CHECKING:
    from geo.calibration import CalibrationModel

class ReasonCode(StrEnum):
    """Machine-readable reason of a verdict the geometry alone did not give."""

    UNTRUSTED_KEY = "untrusted_key"  # the key rule held a geometric `verified` back
    NO_ANSWER = "no_answer"  # the round closed without one valid signed answer
    VERDICT_ERROR = "verdict_error"  # deciding failed (set by the verifier, never by the rule)


@dataclass(frozen=True, slots=True)
class Decision:
    """A round's verdict under the rule, and why."""

    verdict: Verdict
    assessment: Assessment | None  # None when the geometry gave none (see `geo_error`)
    reason_code: ReasonCode | None
    geo_error: str | None = None  # the GeoError that left the round without an assessment


def decide(
    measurements: Sequence[LandmarkRtt],
    licence: Licence | None,
    calibration: CalibrationModel | None,
    params: SolverParams,
    tolerated_faults: int = 0,
    *,
    key_trusted: bool = True,
) -> Decision:
    """The verdict for a round's inputs (see the module docstring). `licence` None: no licence
    to compare with (`inconclusive`). `key_trusted`: the chip's key protection meets the
    policy's minimum (`protocol.key_protection.meets`)."""
    if not measurements:
        return Decision(Verdict.INCONCLUSIVE, None, ReasonCode.NO_ANSWER)
    try:
        assessment = assess_tolerating(measurements, licence, calibration, params, tolerated_faults)
    except GeoError as exc:
        return Decision(Verdict.INCONCLUSIVE, None, None, geo_error=str(exc))
    return conclude(assessment, key_trusted=key_trusted)


def conclude(assessment: Assessment, *, key_trusted: bool) -> Decision:
    """Steps 2-3 of the rule for an assessment already computed (the verifier's batched path,
    `geo.assess_batch.assess_many`, gives what `assess` gives)."""
    if assessment.verdict is None:
        return Decision(Verdict.INCONCLUSIVE, assessment, None)
    if assessment.verdict is Verdict.VERIFIED and not key_trusted:
        return Decision(Verdict.INCONCLUSIVE, assessment, ReasonCode.UNTRUSTED_KEY)
    return Decision(assessment.verdict, assessment, None)
