"""The demo's world: landmarks at real city coordinates and chips with licences.

Coordinates are public city-centre / data-centre-campus coordinates (degrees, WGS84).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lightfence.demo.geography import Place

EU_CORE = ("DEU", "FRA", "NLD", "BEL", "LUX", "AUT", "CHE", "CZE", "POL", "DNK", "ITA", "ESP")


@dataclass(frozen=True, slots=True)
class LandmarkSpec:
    landmark_id: str
    place: Place  # where it really is
    claimed: Place | None = None  # a misconfigured landmark claims somewhere else
    # In the same data centre as chips it serves (its own cross-connect, no metro last mile),
    # as a vendor deploys one where a foreign border is tens of km away.
    colocated: bool = False

    @property
    def claimed_place(self) -> Place:
        return self.claimed or self.place


@dataclass(frozen=True, slots=True)
class ChipSpec:
    chip_id: str
    owner: str
    place: Place  # where the chip really is
    licence: dict[str, Any]
    via: tuple[Place, ...] = ()  # relay hosts challenges pass through before reaching the chip
    goes_dark_after_s: float | None = None
    role: str = "honest"

    @property
    def endpoint_hops(self) -> tuple[Place, ...]:
        return (*self.via, self.place)

    @property
    def host_key(self) -> tuple[object, ...]:
        """Chips with one key share one agent host (as one server serves its 8 GPUs); a chip
        whose agent stops, or that is reached through a relay, has a host of its own."""
        return (self.place, self.via, self.goes_dark_after_s)


def _licence(allowed: tuple[str, ...], tolerance_km: float = 0.0, **extra: Any) -> dict[str, Any]:
    return {"allowed": list(allowed), "prohibited": [], "tolerance_km": tolerance_km, **extra}


ASHBURN = Place("Ashburn", 39.0438, -77.4874)
FRANKFURT = Place("Frankfurt", 50.1109, 8.6821)
LONDON = Place("London", 51.5074, -0.1278)
SINGAPORE = Place("Singapore", 1.3521, 103.8198)
KUALA_LUMPUR = Place("Kuala Lumpur", 3.1390, 101.6869)
TOKYO = Place("Tokyo", 35.6762, 139.6503)
SYDNEY = Place("Sydney", -33.8688, 151.2093)
MUMBAI = Place("Mumbai", 19.0760, 72.8777)
SAO_PAULO = Place("Sao Paulo", -23.5505, -46.6333)
JOHANNESBURG = Place("Johannesburg", -26.2041, 28.0473)
DUBAI = Place("Dubai", 25.2048, 55.2708)
SEOUL = Place("Seoul", 37.5665, 126.9780)
CHICAGO = Place("Chicago", 41.8781, -87.6298)
PARIS = Place("Paris", 48.8566, 2.3522)
SHENZHEN = Place("Shenzhen", 22.5431, 114.0579)
ELK_GROVE = Place("Elk Grove Village (Chicago)", 42.0039, -87.9703)
HONG_KONG = Place("Hong Kong", 22.3193, 114.1694)
TAIPEI = Place("Taipei", 25.0330, 121.5654)
# Data-centre campuses the chips sit in; co-located landmarks share their coordinates.
SEOUL_DC = Place("Seoul DC", 37.50, 127.03)
SINGAPORE_DC = Place("Singapore DC", 1.30, 103.79)
CYBERJAYA_DC = Place("Cyberjaya DC", 2.92, 101.65)
DUBAI_DC = Place("Dubai DC", 25.10, 55.20)
SLOUGH_DC = Place("Slough DC", 51.51, -0.59)

LANDMARKS: tuple[LandmarkSpec, ...] = (
    LandmarkSpec("lm-ashburn", ASHBURN),
    LandmarkSpec("lm-frankfurt", FRANKFURT),
    LandmarkSpec("lm-london", LONDON),
    LandmarkSpec("lm-singapore", SINGAPORE),
    LandmarkSpec("lm-kualalumpur", KUALA_LUMPUR),
    LandmarkSpec("lm-tokyo", TOKYO),
    LandmarkSpec("lm-sydney", SYDNEY),
    LandmarkSpec("lm-mumbai", MUMBAI),
    LandmarkSpec("lm-saopaulo", SAO_PAULO),
    LandmarkSpec("lm-johannesburg", JOHANNESBURG),
    LandmarkSpec("lm-dubai", DUBAI),
    LandmarkSpec("lm-seoul", SEOUL),
    # Really in Paris, but its certificate claims Chicago: the landmark mesh must catch it.
    LandmarkSpec("lm-chicago", PARIS, claimed=CHICAGO),
    # Landmarks in the data-centre metros that had none, and near the smuggling route.
    LandmarkSpec("lm-paris", PARIS),
    LandmarkSpec("lm-elkgrove", ELK_GROVE),
    LandmarkSpec("lm-hongkong", HONG_KONG),
    LandmarkSpec("lm-taipei", TAIPEI),
    # Where a foreign border or coast is tens of km away only a landmark in the same data
    # centre can prove the licence (North Korea 46 km from Seoul, Indonesia 26 km from
    # Singapore, Sumatra 88 km from Cyberjaya, Iran's islands 162 km from Dubai).
    LandmarkSpec("lm-seoul-dc", SEOUL_DC, colocated=True),
    LandmarkSpec("lm-singapore-dc", SINGAPORE_DC, colocated=True),
    LandmarkSpec("lm-cyberjaya-dc", CYBERJAYA_DC, colocated=True),
    LandmarkSpec("lm-dubai-dc", DUBAI_DC, colocated=True),
    # London's largest campus gets one too: France's coast and its 12 nmi are 209 km away,
    # closer than a metro landmark's ~1 ms round trip (150 km) plus France's border error.
    LandmarkSpec("lm-slough-dc", SLOUGH_DC, colocated=True),
)


@dataclass(frozen=True, slots=True)
class Scenario:
    landmarks: tuple[LandmarkSpec, ...]
    chips: tuple[ChipSpec, ...]


def _chip(chip_id: str, owner: str, place: Place, allowed: tuple[str, ...], **kw: Any) -> ChipSpec:
    # No extra border margin: the verdict already grows the sound region by the boundary data's
    # own error, and a licence tolerance only ever makes `verified` harder. Every licence
    # declares its data centre (the smuggled chip declares the one it claims to be in).
    tolerance_km = kw.pop("tolerance_km", 0.0)
    site = kw.pop("declared", place)
    licence = _licence(
        allowed, tolerance_km, site={"lat_deg": site.lat_deg, "lon_deg": site.lon_deg}
    )
    return ChipSpec(chip_id, owner, place, licence, **kw)


def full_scenario() -> Scenario:
    """~20 chips: honest ones around the world, a smuggled one, one that goes dark."""
    chips = (
        _chip("gpu-ash-01", "Virginia Cloud", Place("Ashburn DC", 39.02, -77.46), ("USA", "CAN")),
        _chip("gpu-ash-02", "Virginia Cloud", Place("Ashburn DC", 39.02, -77.46), ("USA", "CAN")),
        _chip("gpu-chi-01", "Lakeside AI", Place("Chicago DC", 41.85, -87.65), ("USA", "CAN")),
        _chip("gpu-fra-01", "Rhein Compute", Place("Frankfurt DC", 50.10, 8.63), EU_CORE),
        _chip("gpu-fra-02", "Rhein Compute", Place("Frankfurt DC", 50.10, 8.63), EU_CORE),
        _chip("gpu-lon-01", "Thames GPU", SLOUGH_DC, ("GBR", "IRL")),
        _chip("gpu-par-01", "Seine Labs", Place("Paris DC", 48.90, 2.30), EU_CORE),
        _chip("gpu-tok-01", "Kanto HPC", Place("Tokyo DC", 35.62, 139.75), ("JPN",)),
        _chip("gpu-sel-01", "Han River AI", SEOUL_DC, ("KOR",)),
        _chip("gpu-syd-01", "Harbour Compute", Place("Sydney DC", -33.82, 151.00), ("AUS",)),
        _chip("gpu-bom-01", "Arabian Sea DC", Place("Mumbai DC", 19.11, 72.87), ("IND",)),
        _chip("gpu-gru-01", "Paulista Cloud", Place("Sao Paulo DC", -23.50, -46.85), ("BRA",)),
        _chip("gpu-jnb-01", "Highveld DC", Place("Johannesburg DC", -26.10, 28.05),
              ("ZAF", "LSO", "SWZ", "BWA", "NAM", "ZWE", "MOZ")),
        _chip("gpu-dxb-01", "Gulf AI", DUBAI_DC, ("ARE", "OMN", "SAU")),
        _chip("gpu-sin-01", "Strait Cloud", SINGAPORE_DC, ("SGP", "MYS")),
        _chip("gpu-kul-01", "Klang Valley DC", CYBERJAYA_DC, ("MYS",)),
        _chip("gpu-kul-02", "Klang Valley DC", CYBERJAYA_DC, ("MYS",)),
        # Licensed to Malaysia, physically in Shenzhen; its operator relays every challenge
        # through a host in Kuala Lumpur, so the real distance comes back into every RTT.
        _chip(
            "gpu-kul-03", "Klang Valley Reseller", SHENZHEN, ("MYS",),
            via=(Place("KL relay host", 3.14, 101.69),), role="smuggled", declared=CYBERJAYA_DC,
        ),
        _chip(
            "gpu-fra-03", "Rhein Compute", Place("Frankfurt DC", 50.10, 8.63), EU_CORE,
            goes_dark_after_s=12.0, role="goes_dark",
        ),
        _chip("gpu-ash-03", "Virginia Cloud", Place("Ashburn DC", 39.02, -77.46), ("USA",)),
    )
    return Scenario(LANDMARKS, chips)


def small_scenario() -> Scenario:
    """The end-to-end test's world: fewer processes, the same attacks."""
    keep_landmarks = {
        "lm-ashburn", "lm-frankfurt", "lm-london", "lm-singapore", "lm-kualalumpur",
        "lm-tokyo", "lm-mumbai", "lm-chicago", "lm-cyberjaya-dc",
    }
    keep_chips = {"gpu-fra-01", "gpu-kul-01", "gpu-kul-03", "gpu-fra-03", "gpu-ash-01"}
    full = full_scenario()
    return Scenario(
        tuple(lm for lm in full.landmarks if lm.landmark_id in keep_landmarks),
        tuple(chip for chip in full.chips if chip.chip_id in keep_chips),
    )
