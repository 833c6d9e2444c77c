"""GPU attestation of enrolled chips: challenges, checks, the chip's GPU binding, overdue alerts.

Flow (docs/protocol.md, "GPU attestation"): the agent asks for a challenge (a fresh 32-byte
nonce, one outstanding per chip, valid `gpu_attestation_challenge_ttl_s`), hands the GPU
`protocol.gpu_attestation.attestation_nonce(nonce, chip public key)`, and submits NVML's report
and certificate chain. The first accepted attestation enrols the GPU (binds its identity to the
chip); every later one must come from that same GPU. A refused attestation of an enrolled chip
raises `gpu_attestation_failed`; an enrolled chip not re-attested within
`gpu_attestation_max_age_s` raises `gpu_attestation_overdue`.

A chip's outstanding challenge lives in the key-value table (`gpu_challenge:<chip>`, read by
key only); its GPU binding is a row of `gpu_bindings` (`verifier.store.gpu_bindings`), indexed
by the time it last attested so the periodic overdue check reads only what fell due. Challenge
bookkeeping runs on the database thread; the X.509 and ECDSA work runs in a worker thread
between the two database steps.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from protocol.codec import from_b64, to_b64
from protocol.gpu_attestation import GpuAttestation, attestation_nonce
from protocol.spdm import NONCE_BYTES
from verifier.alerts import Alerts
from verifier.errors import InvalidInputError, NotFoundError
from verifier.model import AlertType
from verifier.store import Store
from verifier.store.gpu_bindings import GpuBinding

logger = logging.getLogger(__name__)
_NS = 1_000_000_000
CHALLENGE_KEY = "gpu_challenge:"
# Overdue bindings alerted per pass (oldest first; the rest wait for the next pass), so a mass
# silence, e.g. after an outage, holds the database thread for a bounded time per pass.
OVERDUE_PER_PASS = 500


@dataclass(frozen=True, slots=True)
class PendingAttestation:
    """What the worker thread needs to check one submission."""

    chip_id: str
    expected_nonce: bytes  # the SPDM nonce: the verifier's nonce bound to the chip key
    expected_gpu_id: str | None  # None until the chip's GPU is enrolled


def issue_challenge(store: Store, chip_id: str, *, now_unix_ns: int,
                    ttl_s: float) -> dict[str, Any]:
    if store.chip(chip_id) is None:
        raise NotFoundError(f"no chip {chip_id}")
    nonce = secrets.token_bytes(NONCE_BYTES)
    challenge = {"nonce_b64": to_b64(nonce), "expires_unix_ns": now_unix_ns + int(ttl_s * _NS)}
    store.put_kv(CHALLENGE_KEY + chip_id, json.dumps(challenge))  # replaces any older one
    return {"chip_id": chip_id, **challenge}


def binding(store: Store, chip_id: str) -> dict[str, Any] | None:
    bound = store.gpu_binding(chip_id)
    return None if bound is None else bound.to_json()


def take_challenge(store: Store, chip_id: str, nonce_b64: str, *,
                   now_unix_ns: int) -> PendingAttestation:
    """Consume the chip's outstanding challenge (single use) if `nonce_b64` is it and fresh."""
    chip = store.chip(chip_id)
    if chip is None:
        raise NotFoundError(f"no chip {chip_id}")
    raw = store.get_kv(CHALLENGE_KEY + chip_id)
    challenge = json.loads(raw) if raw else None
    if not challenge or challenge.get("nonce_b64") != nonce_b64:
        raise InvalidInputError(
            f"chip {chip_id}: no outstanding attestation challenge with this nonce (already "
            "used, replaced by a newer one, or never issued)")
    store.put_kv(CHALLENGE_KEY + chip_id, json.dumps({}))  # used: a replay finds nothing
    if now_unix_ns > int(challenge["expires_unix_ns"]):
        raise InvalidInputError(
            f"chip {chip_id}: attestation challenge expired at {challenge['expires_unix_ns']} "
            f"(now {now_unix_ns}): not fresh")
    nonce = from_b64(nonce_b64, "nonce_b64", NONCE_BYTES)
    bound = store.gpu_binding(chip_id)
    return PendingAttestation(chip_id, attestation_nonce(nonce, chip.public_key),
                              None if bound is None else bound.gpu_id)


def record_success(store: Store, alerts: Alerts, pending: PendingAttestation,
                   result: GpuAttestation, *, now_unix_ns: int) -> dict[str, Any]:
    previous = store.gpu_binding(pending.chip_id)
    bound = GpuBinding(
        chip_id=pending.chip_id, gpu_id=result.gpu_id,
        enrolled_unix_ns=previous.enrolled_unix_ns if previous else now_unix_ns,
        last_attested_unix_ns=now_unix_ns, driver_version=result.driver_version,
        project=result.project, chain_sha256=result.chain_fingerprints)
    store.put_gpu_binding(bound)
    for type_ in (AlertType.GPU_ATTESTATION_FAILED, AlertType.GPU_ATTESTATION_OVERDUE):
        alerts.auto_resolve(store, type_, subject_kind="chip", subject_id=pending.chip_id,
                            reason="the GPU attested again", now_unix_ns=now_unix_ns)
    logger.info("chip %s: GPU %s attested%s", pending.chip_id, result.gpu_id,
                "" if previous else " (enrolled)")
    return bound.to_json()


def record_failure(store: Store, alerts: Alerts, chip_id: str, error: str, *,
                   now_unix_ns: int) -> None:
    """A refused attestation of a chip whose GPU is enrolled is an alert (a different GPU, a
    forged or stale report); before enrolment it is only the refusal the caller sees."""
    logger.warning("chip %s: GPU attestation refused: %s", chip_id, error)
    if store.gpu_binding(chip_id) is not None:
        alerts.raise_alert(store, AlertType.GPU_ATTESTATION_FAILED, subject_kind="chip",
                           subject_id=chip_id,
                           message=f"chip {chip_id}: GPU attestation refused: {error}",
                           details={"error": error}, now_unix_ns=now_unix_ns)


def raise_overdue(store: Store, alerts: Alerts, *, max_age_s: float, now_unix_ns: int) -> int:
    """Periodic re-attestation: an enrolled GPU silent for longer than `max_age_s` is an alert,
    raised once per silence (until the GPU attests again, which resolves it). Reads only the
    bindings that are past the limit and not yet alerted, at most `OVERDUE_PER_PASS`; returns
    how many it alerted."""
    due = store.overdue_gpu_bindings(now_unix_ns - int(max_age_s * _NS), OVERDUE_PER_PASS)
    for bound in due:
        age_s = (now_unix_ns - bound.last_attested_unix_ns) / _NS
        alerts.raise_alert(
            store, AlertType.GPU_ATTESTATION_OVERDUE, subject_kind="chip",
            subject_id=bound.chip_id,
            message=f"chip {bound.chip_id}: GPU {bound.gpu_id} not re-attested for "
                    f"{age_s:.0f} s (max {max_age_s:.0f} s)",
            details={"gpu_id": bound.gpu_id,
                     "last_attested_unix_ns": bound.last_attested_unix_ns},
            now_unix_ns=now_unix_ns)
    # Marked whether an alert was opened or one was already open (raised before migration 7).
    store.mark_gpu_overdue_alerted([bound.chip_id for bound in due])
    return len(due)
