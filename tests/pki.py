"""The tests' one PKI builder: a vendor CA, landmark and chip keys, and the certificates the CA
issues for them, in memory (`Pki`) or written out the way the landmark and agent read them
(`make_pki`). Every test that needs certified keys builds them here."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from keystore.cert_files import write_certificate
from keystore.key_files import write_key_file
from protocol.certs import (
    ChipCertificate,
    LandmarkCertificate,
    issue_chip_certificate,
    issue_landmark_certificate,
)
from protocol.codec import to_b64
from protocol.keys import SoftwareSigner

YEAR_S = 365 * 86_400
# The window of certificates written to disk: valid at any time a test runs.
FOREVER_UNIX_S = (0, 4_000_000_000)


@dataclass
class Pki:
    """A CA and the keys it has certified. A landmark's or chip's key is made on its first
    certificate and reused after, so a re-issued certificate (a move, a renewal) keeps it."""

    ca: SoftwareSigner = field(default_factory=SoftwareSigner.generate)
    landmark_keys: dict[str, SoftwareSigner] = field(default_factory=dict)
    chip_keys: dict[str, SoftwareSigner] = field(default_factory=dict)
    lifetime_s: int = YEAR_S  # certificates are valid from a minute ago for this long,
    valid_unix_s: tuple[int, int] | None = None  # or in this fixed window (not before, after)
    directory: Path | None = None  # where `make_pki` wrote the files

    @classmethod
    def create(cls) -> Self:
        return cls()

    @property
    def ca_b64(self) -> str:
        return base64.b64encode(self.ca.public_key()).decode()

    def window_unix_s(self) -> tuple[int, int]:
        if self.valid_unix_s is not None:
            return self.valid_unix_s
        now_s = int(time.time())
        return now_s - 60, now_s + self.lifetime_s

    def landmark_certificate(
        self, landmark_id: str, lat_deg: float, lon_deg: float, *,
        window_unix_s: tuple[int, int] | None = None,
    ) -> LandmarkCertificate:
        """`window_unix_s` (not before, not after) replaces the PKI's usual window."""
        key = self.landmark_keys.setdefault(landmark_id, SoftwareSigner.generate())
        not_before, not_after = window_unix_s or self.window_unix_s()
        return issue_landmark_certificate(
            self.ca, landmark_id=landmark_id, public_key=key.public_key(), lat_deg=lat_deg,
            lon_deg=lon_deg, not_before_unix_s=not_before, not_after_unix_s=not_after)

    def chip_certificate(
        self, chip_id: str, *, model: str = "H100", serial: str | None = None,
        key_protection: str = "software", window_unix_s: tuple[int, int] | None = None,
    ) -> ChipCertificate:
        key = self.chip_keys.setdefault(chip_id, SoftwareSigner.generate())
        not_before, not_after = window_unix_s or self.window_unix_s()
        return issue_chip_certificate(
            self.ca, chip_id=chip_id, public_key=key.public_key(), model=model,
            serial=serial or f"S-{chip_id}", not_before_unix_s=not_before,
            not_after_unix_s=not_after, key_protection=key_protection)

    # The on-disk layout (`make_pki`); only meaningful when `root` is set.
    def _under(self, *parts: str) -> Path:
        if self.directory is None:
            raise ValueError("this PKI was not written to disk (use make_pki)")
        return self.directory.joinpath(*parts)

    @property
    def root(self) -> Path:
        return self._under()

    @property
    def ca_pub(self) -> Path:
        return self._under("ca.pub.json")

    @property
    def landmark_certs(self) -> Path:
        return self._under("certs", "landmarks")

    @property
    def chip_certs(self) -> Path:
        return self._under("certs", "chips")

    @property
    def chip_key_dir(self) -> Path:
        return self._under("keys", "chips")

    def landmark_key_file(self, landmark_id: str) -> Path:
        return self._under("keys", f"{landmark_id}.key")


def make_pki(
    root: Path, landmark_ids: tuple[str, ...] = ("lm-1",), chip_count: int = 2,
    chip_ids: tuple[str, ...] | None = None,
) -> Pki:
    """A PKI written under `root`: the CA's public key, every landmark's and chip's key file
    (0600) and certificate; chips are `chip_ids`, or `sim-0` ... `sim-<chip_count - 1>`.
    Landmarks claim 50° N 8° E."""
    pki = Pki(valid_unix_s=FOREVER_UNIX_S, directory=root)
    pki.ca_pub.parent.mkdir(parents=True, exist_ok=True)
    pki.ca_pub.write_text(json.dumps({"public_key_b64": to_b64(pki.ca.public_key())}))
    for directory in (pki.landmark_certs, pki.chip_certs, pki.chip_key_dir):
        directory.mkdir(parents=True, exist_ok=True)
    for landmark_id in landmark_ids:
        landmark_cert = pki.landmark_certificate(landmark_id, 50.0, 8.0)
        write_key_file(pki.landmark_key_file(landmark_id), pki.landmark_keys[landmark_id])
        write_certificate(pki.landmark_certs / f"{landmark_id}.json", landmark_cert)
    for index, chip_id in enumerate(chip_ids or [f"sim-{i}" for i in range(chip_count)]):
        chip_cert = pki.chip_certificate(chip_id, model="simulated", serial=f"S{index}")
        write_key_file(pki.chip_key_dir / f"{chip_id}.key", pki.chip_keys[chip_id])
        write_certificate(pki.chip_certs / f"{chip_id}.json", chip_cert)
    return pki
