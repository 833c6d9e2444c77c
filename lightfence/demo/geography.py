"""Latency that a path's geography implies, for emulating a world on one machine.

The kernel here has no netem, so the demo and the end-to-end tests delay datagrams in a userspace
relay. The model: one-way delay = path length x inflation / fibre speed + last mile + jitter. Real
internet paths have minimum RTTs around 3x the vacuum-light RTT; fibre (2/3 c) with a path
inflation of ~1.5 gives exactly that. Delay is only ever added, so emulation can never make a
proof tighter than physics allows.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass

from geo.constants import C_VACUUM_KM_PER_S
from geo.geodesy import distance_km

FIBRE_SPEED_KM_PER_S = C_VACUUM_KM_PER_S * 2 / 3


@dataclass(frozen=True, slots=True)
class Place:
    name: str
    lat_deg: float
    lon_deg: float


@dataclass(frozen=True, slots=True)
class PathModel:
    inflation: float = 1.5
    last_mile_ms: float = 0.3
    jitter_mean_ms: float = 0.2

    def fixed_ms(self, hops: Sequence[Place]) -> float:
        """The deterministic part of the one-way delay along consecutive hops
        (e.g. landmark -> proxy -> chip): propagation plus last mile."""
        path_km = sum(
            distance_km(a.lat_deg, a.lon_deg, b.lat_deg, b.lon_deg)
            for a, b in itertools.pairwise(hops)
        )
        return path_km * self.inflation / FIBRE_SPEED_KM_PER_S * 1000.0 + self.last_mile_ms

    def jitter_ms(self, rng: random.Random) -> float:
        return rng.expovariate(1.0 / self.jitter_mean_ms) if self.jitter_mean_ms > 0 else 0.0

    def one_way_ms(self, hops: Sequence[Place], rng: random.Random) -> float:
        return self.fixed_ms(hops) + self.jitter_ms(rng)
