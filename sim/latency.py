"""Internet round-trip time model: fibre propagation over inflated routes, access links, queuing.

RTT = 2 · distance · inflation / fibre_speed + last_mile + min over probes of (queuing jitter),
with each probe lost independently. Defaults follow published measurements: the minimum RTT
between well-connected hosts is typically ~3x the vacuum-light RTT and its 5th percentile ~2x
(see docs/sim.md for the sources). Since RTT / vacuum-RTT = inflation · c / fibre_speed =
1.5 · inflation, a route-inflation median of 2.0 gives the ~3x median and a 5th percentile of
1.33 gives ~2x. Every RTT it produces is >= the vacuum-light RTT, as physics demands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from geo.constants import C_VACUUM_KM_PER_S, FIBRE_SPEED_KM_PER_S
from sim.errors import ScenarioError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class LatencyModel:
    fibre_speed_km_per_s: float = FIBRE_SPEED_KM_PER_S
    # Route inflation (path length / great-circle length) = 1 + LogNormal(median, sigma).
    inflation_excess_median: float = 1.0
    inflation_excess_sigma: float = 0.67
    # Access links at both ends, per chip (data-centre hosts: sub-millisecond to a few ms).
    last_mile_median_ms: float = 0.5
    last_mile_sigma: float = 0.5
    # Queuing delay per probe, heavy-tailed; the landmark keeps the fastest probe of a round.
    jitter_median_ms: float = 0.3
    jitter_sigma: float = 1.2
    loss_rate: float = 0.01
    probes_per_round: int = 5

    def __post_init__(self) -> None:
        if not 0.0 < self.fibre_speed_km_per_s <= C_VACUUM_KM_PER_S:
            raise ScenarioError("fibre_speed_km_per_s must be in (0, c]: nothing beats light")
        for name in ("inflation_excess_median", "last_mile_median_ms", "jitter_median_ms"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ScenarioError(f"{name} must be finite and >= 0, got {value}")
        for name in ("inflation_excess_sigma", "last_mile_sigma", "jitter_sigma"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ScenarioError(f"{name} must be finite and >= 0, got {value}")
        if not 0.0 <= self.loss_rate < 1.0:
            raise ScenarioError(f"loss_rate must be in [0, 1), got {self.loss_rate}")
        if self.probes_per_round < 1:
            raise ScenarioError("probes_per_round must be >= 1")

    @classmethod
    def with_overrides(cls, overrides: dict[str, str]) -> LatencyModel:
        """Build from `name=value` strings (the CLI's --latency options)."""
        known = {f.name: f.type for f in fields(cls)}
        values: dict[str, float | int] = {}
        for name, text in overrides.items():
            if name not in known:
                raise ScenarioError(
                    f"unknown latency parameter {name!r}; known: {', '.join(sorted(known))}"
                )
            try:
                values[name] = int(text) if name == "probes_per_round" else float(text)
            except ValueError as exc:
                raise ScenarioError(f"latency parameter {name}={text!r} is not a number") from exc
        return cls(**values)  # type: ignore[arg-type]

    def propagation_ms(self, distance_km: FloatArray, inflation: FloatArray) -> FloatArray:
        return 2.0 * distance_km * inflation / self.fibre_speed_km_per_s * 1000.0

    def draw_inflation(self, rng: np.random.Generator, shape: tuple[int, ...]) -> FloatArray:
        excess = self.inflation_excess_median * np.exp(
            self.inflation_excess_sigma * rng.standard_normal(shape)
        )
        return 1.0 + excess

    def draw_last_mile_ms(self, rng: np.random.Generator, shape: tuple[int, ...]) -> FloatArray:
        return self.last_mile_median_ms * np.exp(self.last_mile_sigma * rng.standard_normal(shape))

    def draw_round_ms(self, rng: np.random.Generator, base_ms: FloatArray) -> FloatArray:
        """One measurement round over fixed paths: the best surviving probe, NaN if all lost."""
        shape = (*base_ms.shape, self.probes_per_round)
        jitter = self.jitter_median_ms * np.exp(self.jitter_sigma * rng.standard_normal(shape))
        lost = rng.random(shape) < self.loss_rate
        jitter[lost] = np.inf
        best = jitter.min(axis=-1)
        out = np.asarray(base_ms + best, dtype=np.float64)
        out[~np.isfinite(best)] = np.nan
        return out

    def rtt_ms(
        self, rng: np.random.Generator, distance_km: FloatArray, last_mile_ms: FloatArray
    ) -> FloatArray:
        """Fresh paths and one round: distance (n, m), last_mile broadcastable to it."""
        inflation = self.draw_inflation(rng, distance_km.shape)
        base = self.propagation_ms(distance_km, inflation) + last_mile_ms
        return self.draw_round_ms(rng, base)

    def typical_rtt_ms(self, distance_km: FloatArray) -> FloatArray:
        """The median-path RTT (what an adversary who knows the model would aim for)."""
        inflation = np.full_like(distance_km, 1.0 + self.inflation_excess_median)
        return self.propagation_ms(distance_km, inflation) + self.last_mile_median_ms

    def vacuum_ratio_quantiles(self, quantiles: tuple[float, ...]) -> dict[str, float]:
        """RTT / vacuum-RTT for long paths (propagation only) at given quantiles, for the docs."""
        speed_ratio = C_VACUUM_KM_PER_S / self.fibre_speed_km_per_s
        out: dict[str, float] = {}
        for q in quantiles:
            z = NormalDist().inv_cdf(q)  # stdlib: scipy.stats costs ~3 s to import
            out[f"p{round(q * 100):02d}"] = speed_ratio * (
                1.0 + self.inflation_excess_median * math.exp(self.inflation_excess_sigma * z)
            )
        return out
