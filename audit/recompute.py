"""The verdict rule, recomputed from an entry's checked inputs and compared with what it stored.

The rule is the verifier's own, `geo.decision.decide`, applied with the parameters the audit
owns (`audit.parameters`), never with those the entry states; every difference is a finding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from audit.compare import same, short
from audit.parameters import audit_params
from audit.report import AuditState
from geo.version import SOLVER_VERSION, solver_version
from protocol.errors import CertificateError
from protocol.key_protection import LEGACY_KEY_PROTECTION, check_level, meets, stronger

if TYPE_CHECKING:  # the geo solver (shapely, numpy) loads only when a verdict is recomputed
    from geo.assessment import SolverParams
    from geo.decision import Decision

# geo.decision.ReasonCode.UNTRUSTED_KEY and Verdict.DARK, spelled here so that checking an
# entry without inputs does not load the solver.
_UNTRUSTED_KEY = "untrusted_key"
_DARK = "dark"


def recompute_verdict(
    audit: AuditState,
    where: str,
    index: int,
    entry: Mapping[str, Any],
    inputs: Sequence[tuple[str, float, float, float]],
    *,
    key_level: str = LEGACY_KEY_PROTECTION,
    pinned_min_key: str | None = None,
) -> None:
    """Apply the verifier's decision rule to the checked inputs and compare with what it stored.

    The rule is `geo.decision.decide` (see there), with the policy's `tolerate_faulty_landmarks`
    (absent in bundles written before the field existed: 0, which is `geo.assess.assess`) and
    the key rule's minimum (`min_key_protection`). A round with no valid signed answer may also
    be `dark` (that depends on the chip's last answer before the round, outside the entry).
    """
    stored_verdict = entry.get("verdict")
    stored = entry.get("assessment")
    held_back = (entry.get("reason_code") == _UNTRUSTED_KEY and stored_verdict == "inconclusive"
                 and isinstance(stored, Mapping) and stored.get("verdict") == "verified")
    # An assessment without a verdict (no licence given) backs an `inconclusive`.
    if (isinstance(stored, Mapping) and stored.get("verdict") not in (stored_verdict, None)
            and not held_back):
        audit.fail(
            "verdict.stored",
            f"{where}.verdict",
            "verdict disagrees with its assessment",
            entry=index,
            expected=stored.get("verdict"),
            found=stored_verdict,
        )
    if not inputs:
        audit.counts["recomputed_verdicts"] += 1
        from geo.assessment import DEFAULT_PARAMS
        from geo.decision import decide

        silent = decide((), None, None, DEFAULT_PARAMS).verdict
        if stored_verdict not in (_DARK, silent):
            audit.fail(
                "verdict.recomputed",
                f"{where}.verdict",
                "with no valid signed measurement the verdict is dark or inconclusive",
                entry=index,
                expected=f"{_DARK} or {silent}",
                found=stored_verdict,
            )
        if stored is not None:
            audit.fail(
                "assessment.recomputed",
                f"{where}.assessment",
                "a verdict without inputs has no assessment",
                entry=index,
                expected=None,
                found=short(stored),
            )
        return
    if stored_verdict == _DARK:
        audit.fail(
            "verdict.dark",
            f"{where}.inputs",
            "a dark verdict rests on no input",
            entry=index,
            expected=[],
            found=[i[0] for i in inputs],
        )
        return
    solver = entry.get("solver")
    solver = solver if isinstance(solver, Mapping) else {}
    if solver_version(solver.get("version")) != SOLVER_VERSION:
        audit.notes.append(
            f"entry {index}: decided by solver {solver.get('version')}, recomputed with "
            f"{SOLVER_VERSION}"
        )
    policy = entry.get("policy")
    faulty = policy.get("tolerate_faulty_landmarks", 0) if isinstance(policy, Mapping) else 0
    if isinstance(faulty, bool) or not isinstance(faulty, int) or not 0 <= faulty <= 2:
        audit.fail(
            "verdict.recompute",
            f"{where}.policy.tolerate_faulty_landmarks",
            "cannot recompute the verdict: tolerate_faulty_landmarks must be 0, 1 or 2",
            entry=index,
            found=short(faulty),
        )
        return
    params = audit_params(where, index, entry, audit.fail)
    try:
        geometric = _decision(entry, solver, inputs, params, faulty)
    except Exception as exc:  # the auditor reports any failure to recompute, never crashes
        audit.fail(
            "verdict.recompute",
            f"{where}.solver",
            f"cannot recompute the verdict: {type(exc).__name__}: {exc}",
            entry=index,
        )
        return
    audit.counts["recomputed_verdicts"] += 1
    minimum = min_key_protection(audit, where, index, policy, pinned_min_key)
    decision = _with_key_rule(geometric, key_trusted=meets(key_level, minimum))
    expected_verdict = decision.verdict.value
    expected_code = None if decision.reason_code is None else decision.reason_code.value
    result = decision.assessment
    if entry.get("reason_code") != expected_code:
        audit.fail(
            "verdict.key_rule",
            f"{where}.reason_code",
            f"the key rule ({key_level} key, minimum {minimum}) gives reason "
            f"{expected_code!r}",
            entry=index,
            expected=expected_code,
            found=entry.get("reason_code"),
        )
    if expected_verdict != stored_verdict:
        audit.fail(
            "verdict.recomputed",
            f"{where}.verdict",
            "recomputed verdict differs from the stored one",
            entry=index,
            expected=expected_verdict,
            found=stored_verdict,
        )
    if result is None:
        if stored is not None:
            audit.fail(
                "assessment.recomputed",
                f"{where}.assessment",
                "the solver gives no assessment for these inputs",
                entry=index,
                expected=None,
                found=short(stored),
            )
        return
    if not isinstance(stored, Mapping):
        audit.fail("assessment.missing", f"{where}.assessment", "no stored assessment", entry=index)
        return
    for key, value in result.to_json().items():
        if not same(value, stored.get(key)):
            audit.fail(
                "assessment.recomputed",
                f"{where}.assessment.{key}",
                f"recomputed {key} differs from the stored one",
                entry=index,
                expected=short(value),
                found=short(stored.get(key)),
            )


def _decision(
    entry: Mapping[str, Any],
    solver: Mapping[str, Any],
    inputs: Sequence[tuple[str, float, float, float]],
    params: SolverParams,
    faulty: int,
) -> Decision:
    """The rule's decision for the inputs from a key it trusts (the key rule is applied by
    `_with_key_rule` once the minimum is known); raises whatever fails before the rule runs (an
    unreadable licence or calibration)."""
    from geo.calibration import CalibrationModel
    from geo.decision import decide
    from geo.licence import licence_from_json
    from geo.measurement import LandmarkRtt

    measurements = [LandmarkRtt(*i) for i in inputs]
    licence = licence_from_json(entry.get("licence") or {})
    calibration_json = solver.get("calibration")
    calibration = (
        None if calibration_json is None else CalibrationModel.from_json(calibration_json)
    )
    return decide(measurements, licence, calibration, params, faulty)


def _with_key_rule(decision: Decision, *, key_trusted: bool) -> Decision:
    """``decision`` under the key rule: what `geo.decision.decide` with ``key_trusted`` gives
    (the rule's last step, `conclude`, needs the assessment; without one the key changes
    nothing)."""
    from geo.decision import conclude

    if decision.assessment is None:
        return decision
    return conclude(decision.assessment, key_trusted=key_trusted)


def min_key_protection(
    audit: AuditState, where: str, index: int, policy: Any, pinned: str | None
) -> str:
    """The minimum the key rule is recomputed with: the policy's (software when absent, as
    before the field existed), raised to the auditor's pinned minimum when that is stricter."""
    stated = policy.get("min_key_protection") if isinstance(policy, Mapping) else None
    minimum = LEGACY_KEY_PROTECTION
    if stated is not None:
        try:
            minimum = check_level(stated, "min_key_protection")
        except CertificateError as exc:
            audit.fail("policy.min_key_protection", f"{where}.policy.min_key_protection",
                       str(exc), entry=index, found=short(stated))
    if pinned is not None and stronger(minimum, pinned) != minimum:
        audit.fail(
            "policy.min_key_protection",
            f"{where}.policy.min_key_protection",
            "the verifier applied a weaker key minimum than the one pinned (--min-key-protection)",
            entry=index,
            expected=pinned,
            found=minimum,
        )
        minimum = pinned
    return minimum
