"""One verdict entry: its certificates, records and solver inputs, then the recomputation.

Each solver input must be backed by a valid signed record (same landmark, same RTT) at the
position the landmark's certificate states; the key protection the entry states must be the one
the CA signed into the chip certificate. `audit.recompute` then applies the decision rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from audit.certificates import check_chip_certificate, check_landmark_certificates, trusted_ca_key
from audit.compare import short
from audit.recompute import recompute_verdict
from audit.records import check_record, entry_revocations, revoked
from audit.report import AuditState
from protocol.certs import LandmarkCertificate
from protocol.key_protection import LEGACY_KEY_PROTECTION
from protocol.records import MeasurementRecord
from protocol.revocation import Revocation

# Positions and RTTs are copied, never recomputed, so they must agree to float rounding only.
_POSITION_TOLERANCE_DEG = 1e-9
_RTT_TOLERANCE_MS = 1e-9


def check_verdict(
    audit: AuditState,
    where: str,
    index: int,
    entry: Mapping[str, Any],
    *,
    chip_id: Any,
    pinned_ca: bytes | None,
    nonces: dict[bytes, str],
    pinned_min_key: str | None = None,
    pinned_revocations: Sequence[Revocation] = (),
) -> None:
    """Every check of one verdict entry at JSON path ``where`` (log index ``index``)."""
    decided_ns = entry.get("decided_unix_ns")
    decided_ns = decided_ns if isinstance(decided_ns, int) else 0
    ca = trusted_ca_key(audit, where, index, entry, pinned_ca)
    chip = check_chip_certificate(audit, where, index, entry, chip_id=chip_id, ca=ca)
    landmarks = check_landmark_certificates(audit, where, index, entry, ca=ca)
    raw_records = entry.get("records")
    if not isinstance(raw_records, list):
        audit.fail("entry.format", f"{where}.records", "records must be a list", entry=index)
        raw_records = []
    valid: list[MeasurementRecord] = []
    for i, raw in enumerate(raw_records):
        audit.counts["records"] += 1
        record = check_record(
            audit,
            f"{where}.records[{i}]",
            index,
            raw,
            chip=chip,
            landmarks=landmarks,
            chip_id=chip_id,
            round_id=entry.get("round_id"),
            decided_ns=decided_ns,
            nonces=nonces,
        )
        if record is not None and not revoked(
            audit, f"{where}.records[{i}]", index, record,
            chip=chip, landmarks=landmarks, decided_ns=decided_ns,
            revocations=[*entry_revocations(audit, where, index, entry), *pinned_revocations],
        ):  # fmt: skip
            valid.append(record)
    inputs = check_inputs(audit, where, index, entry, landmarks=landmarks, valid=valid)
    key_level = chip.key_protection if chip is not None else LEGACY_KEY_PROTECTION
    check_key_level(audit, where, index, entry, key_level)
    recompute_verdict(
        audit, where, index, entry, inputs, key_level=key_level, pinned_min_key=pinned_min_key
    )


def check_inputs(
    audit: AuditState,
    where: str,
    index: int,
    entry: Mapping[str, Any],
    *,
    landmarks: Mapping[str, LandmarkCertificate],
    valid: Sequence[MeasurementRecord],
) -> list[tuple[str, float, float, float]]:
    """The entry's solver inputs as (landmark_id, lat_deg, lon_deg, rtt_ms), each checked
    against the landmark's certificate and the valid records."""
    raw = entry.get("inputs")
    if not isinstance(raw, list):
        audit.fail("entry.format", f"{where}.inputs", "inputs must be a list", entry=index)
        return []
    inputs: list[tuple[str, float, float, float]] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        path = f"{where}.inputs[{i}]"
        try:
            landmark_id = str(item["landmark_id"])
            lat, lon, rtt = (float(item[k]) for k in ("lat_deg", "lon_deg", "rtt_ms"))
        except (KeyError, TypeError, ValueError):
            audit.fail(
                "input.format", path, "needs landmark_id, lat_deg, lon_deg, rtt_ms", entry=index
            )
            continue
        inputs.append((landmark_id, lat, lon, rtt))
        if landmark_id in seen:
            audit.fail(
                "input.duplicate",
                f"{path}.landmark_id",
                "landmark used twice",
                entry=index,
                expected=None,
                found=landmark_id,
            )
        seen.add(landmark_id)
        cert = landmarks.get(landmark_id)
        if cert is None:
            audit.fail(
                "input.landmark",
                f"{path}.landmark_id",
                "no certificate for this landmark in the evidence",
                entry=index,
                expected=None,
                found=landmark_id,
            )
        elif (
            abs(cert.lat_deg - lat) > _POSITION_TOLERANCE_DEG
            or abs(cert.lon_deg - lon) > _POSITION_TOLERANCE_DEG
        ):
            audit.fail(
                "input.position",
                f"{path}.lat_deg",
                f"landmark {landmark_id} position differs from its certificate",
                entry=index,
                expected=[cert.lat_deg, cert.lon_deg],
                found=[lat, lon],
            )
        backing = [r.rtt_ns / 1e6 for r in valid if r.landmark_id == landmark_id]
        if not any(abs(ms - rtt) <= _RTT_TOLERANCE_MS for ms in backing):
            audit.fail(
                "input.rtt",
                f"{path}.rtt_ms",
                f"RTT not backed by a valid signed record of landmark {landmark_id}",
                entry=index,
                expected=backing,
                found=rtt,
            )
    return inputs


def check_key_level(
    audit: AuditState, where: str, index: int, entry: Mapping[str, Any], key_level: str
) -> None:
    """The level the evidence states must be the one the CA signed into the certificate (a
    verifier that wrote a stronger level than the certificate's would hide a software key)."""
    stated = entry.get("key_protection", LEGACY_KEY_PROTECTION)
    if stated != key_level:
        audit.fail(
            "key_protection.stated",
            f"{where}.key_protection",
            "the evidence states another key protection than the chip certificate",
            entry=index,
            expected=key_level,
            found=short(stated),
        )
