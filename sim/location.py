"""The verifier's `rtt_anomaly` rule (verifier/location_alerts.py) on simulated rounds.

A chip's declared site is where it was licensed (its home); each round is anomalous when even
the best of the NEAREST_LANDMARKS answering landmarks nearest that site answered more than
the policy's rtt_margin_ms later than ROUTE_STRETCH x the great-circle distance at fibre speed
explains, and the alert fires after anomaly_rounds anomalous answered rounds in a row. The
constants and the default policy's margins are the verifier's, imported, so the simulation
measures the rule the verifier runs at its default margins.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from verifier.location_alerts import (
    FIBRE_KM_PER_MS,
    NEAREST_LANDMARKS,
    ROUTE_STRETCH,
)
from verifier.model import DEFAULT_POLICY

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def anomalous(site_distance_km: FloatArray, rtt_ms: FloatArray) -> BoolArray:
    """Per chip (rows): is this round anomalous? `site_distance_km[i, j]` is the distance from
    chip i's declared site to landmark j; `rtt_ms` NaN means no answer (never anomalous)."""
    answered = np.isfinite(rtt_ms)
    nearest = np.argsort(np.where(answered, site_distance_km, np.inf), axis=1)
    nearest = nearest[:, :NEAREST_LANDMARKS]
    distance = np.take_along_axis(site_distance_km, nearest, axis=1)
    rtt = np.take_along_axis(rtt_ms, nearest, axis=1)
    explained = 2.0 * distance * ROUTE_STRETCH / FIBRE_KM_PER_MS
    excess = np.where(np.isfinite(rtt), rtt - explained, np.inf)
    best = excess.min(axis=1)
    return np.asarray(np.isfinite(best) & (best > DEFAULT_POLICY.rtt_margin_ms), dtype=np.bool_)
