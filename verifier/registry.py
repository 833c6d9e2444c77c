"""Registries: landmarks and chips (CA-checked certificates), licences and policies."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from geo.errors import GeoError
from geo.licence import licence_from_json
from protocol.certs import ChipCertificate, LandmarkCertificate
from protocol.errors import ProtocolError
from protocol.revocation import Revocation
from verifier.errors import InvalidInputError, NotFoundError, VerifierError
from verifier.model import DEFAULT_POLICY, Chip, Landmark, Policy
from verifier.revocations import KeyInfo, check_not_revoked, check_not_revoked_by, key_info
from verifier.store import Store

logger = logging.getLogger(__name__)


class KeyCache:
    """Public keys by id, kept in memory for ingestion; updated by every registration."""

    def __init__(self) -> None:
        self.landmarks: dict[str, bytes] = {}
        self.chips: dict[str, bytes] = {}
        # (kind, id) → key, certificate window and serial, for the revocation/expiry rule.
        self.infos: dict[tuple[str, str], KeyInfo] = {}

    def load(self, store: Store) -> None:
        self.landmarks = {lm.landmark_id: lm.public_key for lm in store.landmarks()}
        self.chips = {chip.chip_id: chip.public_key for chip in store.chips()}
        self.infos = {("landmark", lm.landmark_id): key_info(lm.public_key, lm.certificate)
                      for lm in store.landmarks()}
        self.infos.update({("chip", chip.chip_id): key_info(chip.public_key, chip.certificate)
                           for chip in store.chips()})
        store_policy = store.policy(DEFAULT_POLICY.name)
        if store_policy is None:
            store.put_policy(DEFAULT_POLICY)

    def refresh(self, store: Store, kind: str, subject_id: str) -> None:
        """Reload one chip's or landmark's key (registered through another replica)."""
        found = store.chip(subject_id) if kind == "chip" else store.landmark(subject_id)
        if found is None:
            return
        (self.chips if kind == "chip" else self.landmarks)[subject_id] = found.public_key
        self.infos[kind, subject_id] = key_info(found.public_key, found.certificate)

    def target_key(self, target_kind: str, target_id: str) -> bytes | None:
        return (self.chips if target_kind == "chip" else self.landmarks).get(target_id)


def check_licence(licence: dict[str, Any]) -> dict[str, Any]:
    """Validate with the geo core; returns its canonical JSON form. Fleets share a few
    licences, and building one's geometry costs milliseconds: checked once per distinct text."""
    return dict(json.loads(_canonical_licence(json.dumps(licence, sort_keys=True))))


@functools.lru_cache(maxsize=1_024)
def _canonical_licence(licence_json: str) -> str:
    try:
        return json.dumps(licence_from_json(json.loads(licence_json)).to_json())
    except GeoError as exc:
        raise InvalidInputError(f"invalid licence: {exc}") from exc


def register_landmark(store: Store, keys: KeyCache, *, ca_public_key: bytes,
                      certificate: dict[str, Any], host: str, port: int,
                      now_unix_ns: int) -> Landmark:
    try:
        cert = LandmarkCertificate.from_json(certificate)
        cert.verify(ca_public_key, now_unix_ns // 1_000_000_000)
    except ProtocolError as exc:
        raise InvalidInputError(f"landmark certificate rejected: {exc}") from exc
    info = key_info(cert.public_key, cert.to_json())
    check_not_revoked(store, "landmark", cert.landmark_id, info, now_unix_ns)
    existing = store.landmark(cert.landmark_id)
    # A landmark flagged faulty stays flagged unless its certified position changed.
    moved = existing is not None and (existing.lat_deg, existing.lon_deg) != (
        cert.lat_deg, cert.lon_deg)
    landmark = Landmark(
        landmark_id=cert.landmark_id, lat_deg=cert.lat_deg, lon_deg=cert.lon_deg, host=host,
        port=port, public_key=cert.public_key, certificate=cert.to_json(),
        last_seen_unix_ns=existing.last_seen_unix_ns if existing else None,
        faulty=existing.faulty and not moved if existing else False,
        audit=existing.audit if existing and not moved else None, next_mesh_unix_ns=0)
    store.put_landmark(landmark)
    keys.landmarks[landmark.landmark_id] = landmark.public_key
    keys.infos["landmark", landmark.landmark_id] = info
    logger.info("landmark %s registered at %.4f,%.4f", landmark.landmark_id, cert.lat_deg,
                cert.lon_deg)
    stored = store.landmark(landmark.landmark_id)
    assert stored is not None
    return stored


def register_chip(store: Store, keys: KeyCache, *, ca_public_key: bytes,
                  certificate: dict[str, Any], owner: str, host: str | None, port: int | None,
                  licence: dict[str, Any], policy: str, now_unix_ns: int) -> Chip:
    chip, info = _checked_chip(Enrolment(certificate, owner, host, port, licence, policy),
                               _EnrolmentContext.read(store, [certificate.get("chip_id")]),
                               ca_public_key=ca_public_key, now_unix_ns=now_unix_ns)
    store.put_chip(chip)
    keys.chips[chip.chip_id] = chip.public_key
    keys.infos["chip", chip.chip_id] = info
    logger.info("chip %s registered for owner %s", chip.chip_id, owner)
    stored = store.chip(chip.chip_id)
    assert stored is not None
    return stored


@dataclass(frozen=True, slots=True)
class Enrolment:
    """One chip to enrol (the fields of `register_chip`)."""

    certificate: dict[str, Any]
    owner: str
    host: str | None
    port: int | None
    licence: dict[str, Any]
    policy: str


@dataclass(frozen=True, slots=True)
class _EnrolmentContext:
    """What the checks of an enrolment read from the database, read once for a whole bulk
    request (three queries, not three per chip)."""

    revocations: tuple[Revocation, ...]
    policies: frozenset[str]
    existing: dict[str, Chip]

    @staticmethod
    def read(store: Store, chip_ids: Sequence[object]) -> _EnrolmentContext:
        ids = [i for i in chip_ids if isinstance(i, str)]  # the rest fail the certificate
        return _EnrolmentContext(tuple(store.revocations()),
                                 frozenset(p.name for p in store.policies()),
                                 {chip.chip_id: chip for chip in store.chips_by_id(ids)})


def _checked_chip(item: Enrolment, context: _EnrolmentContext, *, ca_public_key: bytes,
                  now_unix_ns: int) -> tuple[Chip, KeyInfo]:
    """The chip row an enrolment would store, after every check (no database access)."""
    try:
        cert = ChipCertificate.from_json(item.certificate)
        cert.verify(ca_public_key, now_unix_ns // 1_000_000_000)
    except ProtocolError as exc:
        raise InvalidInputError(f"chip certificate rejected: {exc}") from exc
    info = key_info(cert.public_key, cert.to_json())
    check_not_revoked_by(context.revocations, "chip", cert.chip_id, info, now_unix_ns)
    if (item.host is None) != (item.port is None):
        raise InvalidInputError("give both host and port for the agent endpoint, or neither")
    if item.policy not in context.policies:
        raise InvalidInputError(f"unknown policy {item.policy!r}")
    canonical = check_licence(item.licence)
    existing = context.existing.get(cert.chip_id)
    return Chip(
        chip_id=cert.chip_id, owner=item.owner, model=cert.model, serial=cert.serial,
        host=item.host, port=item.port, policy=item.policy, public_key=cert.public_key,
        certificate=cert.to_json(), licence=canonical,
        state=existing.state if existing else "unknown",
        state_since_unix_ns=existing.state_since_unix_ns if existing else now_unix_ns,
        last_response_unix_ns=existing.last_response_unix_ns if existing else None,
        registered_unix_ns=existing.registered_unix_ns if existing else now_unix_ns,
        next_round_unix_ns=now_unix_ns), info


def register_chips(store: Store, keys: KeyCache, *, ca_public_key: bytes,
                   enrolments: Sequence[Enrolment], now_unix_ns: int) -> list[Chip]:
    """Register every chip, or none: all are checked first (the first rejected one is named
    by its position), then written set-based in one transaction (`Store.put_chips`)."""
    context = _EnrolmentContext.read(store, [e.certificate.get("chip_id") for e in enrolments])
    checked = []
    for position, item in enumerate(enrolments):
        try:
            checked.append(_checked_chip(item, context, ca_public_key=ca_public_key,
                                         now_unix_ns=now_unix_ns))
        except VerifierError as exc:  # same type (and HTTP status), position named
            raise type(exc)(f"chips[{position}]: {exc}") from exc
    store.put_chips([chip for chip, _ in checked])
    for chip, info in checked:
        keys.chips[chip.chip_id] = chip.public_key
        keys.infos["chip", chip.chip_id] = info
    logger.info("%d chips registered", len(checked))
    return [chip for chip, _ in checked]


def set_licence(store: Store, chip_id: str, licence: dict[str, Any]) -> Chip:
    chip = store.chip(chip_id)
    if chip is None:
        raise NotFoundError(f"no chip {chip_id}")
    store.put_chip(replace(chip, licence=check_licence(licence)))
    updated = store.chip(chip_id)
    assert updated is not None
    return updated


def put_policy(store: Store, policy: Policy) -> Policy:
    store.put_policy(policy)
    return policy


def licence_anchor(licence: dict[str, Any]) -> tuple[float, float] | None:
    """A point inside the allowed area (lat_deg, lon_deg), used to pick nearby landmarks."""
    try:
        parsed = licence_from_json(licence)
    except GeoError:
        return None
    if not parsed.allowed:
        return None
    point = parsed.allowed[0].geometry.representative_point()
    return float(point.y), float(point.x)
