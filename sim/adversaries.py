"""What a smuggler can do to the round-trip times the landmarks see.

They control the host and its network, so they can add delay, drop or replay answers and relay
challenges; they cannot make a signal beat light or answer a fresh nonce without the chip. Each
adversary here maps honest RTTs (chips x landmarks, ms, NaN = no valid response) to what the
verifier receives, for smuggled chips only; honest chips are measured honestly.

Some adversaries change more than RTTs and are driven by the runner: `liar` (one landmark claims
false coordinates; smuggled chips sit near its real position, licensed where it claims to be),
`hidden-liar` (the same landmark also delays its answers to the landmark mesh so that the mesh
audit sees nothing faster than light: delay is all it takes, so no audit can rule this out)
and `relocate` / `dark` (a chip passes a staged inspection, then moves abroad, answering or not).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from geo.constants import EARTH_MEAN_RADIUS_KM
from sim.errors import ScenarioError
from sim.latency import LatencyModel
from sim.sites import pairwise_km

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class AdversaryParams:
    delay_ms: float = 30.0  # `delay` adds this; `selective` adds U(0, this) per landmark
    silence_count: int = 10  # `silence` drops this many landmarks nearest the chip
    lie_min_km: float = 800.0  # `liar` claims a place at least this far from where it is
    relocate_rounds: int = 4  # rounds observed after the move (`relocate`, `dark`)
    dark_window_rounds: int = 2  # silent rounds before a `dark` alert

    def __post_init__(self) -> None:
        if not self.delay_ms >= 0.0:
            raise ScenarioError("delay_ms must be >= 0 (an adversary can only add delay)")
        if self.silence_count < 0:
            raise ScenarioError("silence_count must be >= 0")
        if self.relocate_rounds < 1 or self.dark_window_rounds < 1:
            raise ScenarioError("relocate_rounds and dark_window_rounds must be >= 1")


@dataclass(frozen=True, slots=True)
class SmuggledBatch:
    """Smuggled chips of one chunk, with everything an adversary may know or use."""

    rng: np.random.Generator
    model: LatencyModel
    params: AdversaryParams
    chip_xyz: FloatArray  # true positions (abroad)
    home_xyz: FloatArray  # a place inside the licensed country (proxy host, target)
    landmark_xyz: FloatArray  # true landmark positions (physics uses these)
    last_mile_ms: FloatArray  # per chip, (n, 1)


Adversary = Callable[[SmuggledBatch, FloatArray], FloatArray]


def honest(batch: SmuggledBatch, rtt_ms: FloatArray) -> FloatArray:
    """A naive smuggler: moves the chip and changes nothing else."""
    del batch
    return rtt_ms


def constant_delay(batch: SmuggledBatch, rtt_ms: FloatArray) -> FloatArray:
    return rtt_ms + batch.params.delay_ms


def selective_delay(batch: SmuggledBatch, rtt_ms: FloatArray) -> FloatArray:
    return rtt_ms + batch.rng.uniform(0.0, batch.params.delay_ms, rtt_ms.shape)


def pull_toward_home(batch: SmuggledBatch, rtt_ms: FloatArray) -> FloatArray:
    """Delay chosen to make every RTT look like the home place's (Gill et al. 2010).

    The adversary knows the latency model and aims each landmark at the typical RTT from the
    home place plus one common offset, the smallest that needs no negative delay anywhere.
    """
    target = batch.model.typical_rtt_ms(pairwise_km(batch.home_xyz, batch.landmark_xyz))
    offset = np.nanmax(rtt_ms - target, axis=1, initial=0.0)
    pulled = target + offset[:, None]
    return np.where(np.isnan(rtt_ms), np.nan, np.maximum(pulled, rtt_ms))


def relay_from_home(batch: SmuggledBatch, rtt_ms: FloatArray) -> FloatArray:
    """A proxy at home answers each landmark by forwarding to the chip abroad and back."""
    del rtt_ms  # the chip's direct paths are not used; the landmarks reach the proxy
    n = batch.chip_xyz.shape[0]
    proxy_leg = batch.model.rtt_ms(
        batch.rng,
        pairwise_km(batch.home_xyz, batch.landmark_xyz),
        batch.model.draw_last_mile_ms(batch.rng, (n, 1)),
    )
    chip_to_proxy_km = np.einsum("ij,ij->i", batch.chip_xyz, batch.home_xyz).clip(-1.0, 1.0)
    chip_leg = batch.model.rtt_ms(
        batch.rng,
        (np.arccos(chip_to_proxy_km) * EARTH_MEAN_RADIUS_KM)[:, None],
        batch.last_mile_ms,
    )
    return proxy_leg + chip_leg


def selective_silence(batch: SmuggledBatch, rtt_ms: FloatArray) -> FloatArray:
    """Drop the landmarks nearest the chip: they would prove it is abroad."""
    distance = pairwise_km(batch.chip_xyz, batch.landmark_xyz)
    count = min(batch.params.silence_count, rtt_ms.shape[1])
    nearest = np.argsort(distance, axis=1)[:, :count]
    out = rtt_ms.copy()
    np.put_along_axis(out, nearest, np.nan, axis=1)
    return out


def replay_recorded(batch: SmuggledBatch, rtt_ms: FloatArray) -> FloatArray:
    """Replay answers recorded at home wherever they look better than the live ones.

    A recorded answer carries an old nonce, so the verifier rejects it as stale: to the
    verdict it is a missing response. The landmarks left answered live, from abroad.
    """
    n = batch.chip_xyz.shape[0]
    recorded = batch.model.rtt_ms(
        batch.rng,
        pairwise_km(batch.home_xyz, batch.landmark_xyz),
        batch.model.draw_last_mile_ms(batch.rng, (n, 1)),
    )
    replayed = recorded < rtt_ms
    return np.where(replayed, np.nan, rtt_ms)


RTT_ADVERSARIES: dict[str, Adversary] = {
    "none": honest,
    "delay": constant_delay,
    "selective": selective_delay,
    "pull": pull_toward_home,
    "relay": relay_from_home,
    "silence": selective_silence,
    "replay": replay_recorded,
}
LIAR_ADVERSARIES = ("liar", "hidden-liar")
SPECIAL_ADVERSARIES = (*LIAR_ADVERSARIES, "relocate", "dark")
ADVERSARY_NAMES = (*RTT_ADVERSARIES, *SPECIAL_ADVERSARIES)
