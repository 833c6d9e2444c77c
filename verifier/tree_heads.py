"""The evidence log's signing key and the task that signs its tree heads (docs/evidence.md).

The key is a `protocol.keys` key file (default ``<data_dir>/log.key``), created 0600 on first
start and refused when group or others can read it. Its public half is written beside it as
``log.pub.json`` (``{"public_key_b64": ...}``), the file ``lightfence audit verify --log-key``
pins. A head is signed every ``tree_head_interval_s`` when the log grew since the last one, and
once more at shutdown, so an export after a clean stop covers every entry.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path

from keystore.key_files import generate_key_file, load_signer
from protocol.codec import to_b64
from protocol.errors import KeyFileError
from protocol.keys import SoftwareSigner
from protocol.merkle import SignedTreeHead
from verifier.errors import ConfigError
from verifier.translog import TransparencyLog

logger = logging.getLogger(__name__)

PUBLIC_KEY_FILE_NAME = "log.pub.json"


def public_key_path(key_path: Path) -> Path:
    """Where the public half of the log key at ``key_path`` is published."""
    return key_path.with_name(PUBLIC_KEY_FILE_NAME)


def load_or_create_log_key(key_path: Path) -> SoftwareSigner:
    """Load the log key (creating it 0600 when missing) and (re)write its public key file.

    ConfigError when the file is unreadable, malformed or readable by group/others.
    """
    try:
        if key_path.exists():
            signer = load_signer(key_path)
        else:
            key_path.parent.mkdir(parents=True, exist_ok=True)
            signer = generate_key_file(key_path)
            logger.info("created evidence log key %s", key_path)
    except (KeyFileError, OSError) as exc:
        raise ConfigError(f"evidence log key: {exc}") from exc
    _write_public_key(public_key_path(key_path), signer.public_key())
    return signer


def _write_public_key(path: Path, public_key: bytes) -> None:
    body = json.dumps({"public_key_b64": to_b64(public_key)}) + "\n"
    try:
        if path.exists() and path.read_text(encoding="utf-8") == body:
            return
        # Written whole then renamed, so an auditor never pins a half-written key.
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(body, encoding="utf-8")
        os.chmod(tmp, 0o644)
        tmp.replace(path)
    except OSError as exc:
        raise ConfigError(f"cannot write the log public key {path}: {exc.strerror}") from exc


class TreeHeadSigner:
    """Signs the log's head when it grew; `run` is the verifier's periodic background task.

    Refuses (ConfigError) a key other than the one that signed the log's latest head: replicas
    share one log in the database, so they must share one key file too (docs/deploy.md); a
    replica that created a fresh key because its copy was not deployed would otherwise sign
    heads no auditor pinned and manifests no head backs."""

    def __init__(self, log: TransparencyLog, signer: SoftwareSigner, interval_s: float) -> None:
        latest = log.latest_tree_head()
        if latest is not None and latest.log_public_key != signer.public_key():
            raise ConfigError(
                "the evidence log key file is not the key that signed the log's tree heads "
                f"(theirs: {to_b64(latest.log_public_key)}, this file's: "
                f"{to_b64(signer.public_key())}): deploy the same log.key to every replica "
                "(docs/deploy.md, 'The log key')")
        self._log = log
        self._signer = signer
        self._interval_s = interval_s

    @property
    def public_key(self) -> bytes:
        return self._signer.public_key()

    @property
    def signer(self) -> SoftwareSigner:
        """The log key, which also signs the manifest of every exported bundle."""
        return self._signer

    def sign_if_grown(self, now_unix_s: int) -> SignedTreeHead | None:
        """Sign a head when the log holds entries no signed head covers yet; else None."""
        latest = self._log.latest_tree_head()
        size = self._log.size
        if size == 0 or (latest is not None and latest.tree_size >= size):
            return None
        # Heads must never go back in time, even if the wall clock steps backwards.
        timestamp = max(now_unix_s, latest.timestamp_unix_s if latest is not None else 0)
        return self._log.sign_tree_head(self._signer, timestamp)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await asyncio.to_thread(self.sign_if_grown, int(time.time()))
            except Exception:
                logger.exception("signing the evidence log's tree head failed")
