"""One landmark's round-trip time to a target, validated on construction."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from geo.errors import InvalidMeasurementError

_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")


def validate_position(lat_deg: float, lon_deg: float, what: str) -> None:
    """Raise InvalidMeasurementError unless (lat, lon) is a finite point on Earth."""
    if not (isinstance(lat_deg, int | float) and isinstance(lon_deg, int | float)):
        raise InvalidMeasurementError(f"{what}: latitude and longitude must be numbers")
    if not (math.isfinite(lat_deg) and math.isfinite(lon_deg)):
        raise InvalidMeasurementError(f"{what}: latitude/longitude must be finite")
    if not -90.0 <= lat_deg <= 90.0:
        raise InvalidMeasurementError(f"{what}: latitude {lat_deg} is outside [-90, 90]")
    if not -180.0 <= lon_deg <= 180.0:
        raise InvalidMeasurementError(f"{what}: longitude {lon_deg} is outside [-180, 180]")


@dataclass(frozen=True, slots=True)
class LandmarkRtt:
    """One landmark's best RTT to the target in this round."""

    landmark_id: str
    lat_deg: float
    lon_deg: float
    rtt_ms: float

    def __post_init__(self) -> None:
        if not isinstance(self.landmark_id, str) or not _ID_PATTERN.fullmatch(self.landmark_id):
            raise InvalidMeasurementError(
                f"landmark id {self.landmark_id!r} must match [A-Za-z0-9._-]{{1,64}}"
            )
        validate_position(self.lat_deg, self.lon_deg, f"landmark {self.landmark_id}")
        if isinstance(self.rtt_ms, bool) or not isinstance(self.rtt_ms, int | float):
            raise InvalidMeasurementError(f"landmark {self.landmark_id}: rtt_ms must be a number")
        if not math.isfinite(self.rtt_ms):
            raise InvalidMeasurementError(f"landmark {self.landmark_id}: rtt_ms must be finite")
        if self.rtt_ms <= 0.0:
            raise InvalidMeasurementError(
                f"landmark {self.landmark_id}: rtt_ms must be > 0, got {self.rtt_ms}"
            )
