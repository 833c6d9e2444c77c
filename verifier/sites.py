"""Declared sites and learned RTT baselines of enrolled chips (docs/verifier.md, "Location
alerts"): set or clear a chip's site without resending its licence, and reset what the verifier
learned about its RTTs."""

from __future__ import annotations

import logging
from dataclasses import replace

from geo.licence import DeclaredSite
from verifier.errors import NotFoundError
from verifier.model import Chip
from verifier.registry import check_licence
from verifier.store import Store

logger = logging.getLogger(__name__)


def _chip(store: Store, chip_id: str) -> Chip:
    chip = store.chip(chip_id)
    if chip is None:
        raise NotFoundError(f"no chip {chip_id}")
    return chip


def set_site(store: Store, chip_id: str, site: DeclaredSite | None) -> tuple[Chip, int]:
    """Declare where the chip is licensed (None: no declared site). A new site is a declared
    move: the chip's learned baseline (learned at the old place) is reset in the same
    transaction. Returns the chip and how many baseline rows were reset."""
    chip = _chip(store, chip_id)
    licence = {key: value for key, value in chip.licence.items() if key != "site"}
    if site is not None:
        licence["site"] = site.to_json()
    checked = check_licence(licence)
    with store.transaction():
        store.put_chip(replace(chip, licence=checked))
        reset = store.reset_rtt_baselines(chip_id) if site is not None else 0
    logger.info("chip %s: declared site %s (%d baseline rows reset)", chip_id,
                site.to_json() if site is not None else "cleared", reset)
    return _chip(store, chip_id), reset


def reset_baseline(store: Store, chip_id: str) -> int:
    """Forget the chip's learned RTTs (after a legitimate move or a lasting route change); it
    relearns from its next rounds."""
    _chip(store, chip_id)
    reset = store.reset_rtt_baselines(chip_id)
    logger.warning("chip %s: learned RTT baseline reset (%d landmarks)", chip_id, reset)
    return reset
