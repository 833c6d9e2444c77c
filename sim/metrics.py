"""Fixed-size tallies of a simulation: memory does not grow with the number of chips.

Every distribution is a histogram on fixed bins; tallies from chunks (or worker processes)
merge by addition, so results do not depend on how the work was split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sim.fastpath import FastVerdict

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

CLASSES = ("honest", "smuggled", "staged")  # staged: the clean inspection before a relocation
VERDICT_NAMES = tuple(v.name.lower() for v in FastVerdict)
AREA_EDGES_LOG10_KM2 = np.linspace(2.0, 9.0, 141)  # 100 km^2 .. 1e9 km^2, 0.05 decades
RATIO_EDGES = np.linspace(1.0, 10.0, 361)  # RTT / vacuum-light RTT


def histogram_quantiles(
    counts: IntArray, edges: FloatArray, quantiles: tuple[float, ...]
) -> dict[str, float | None]:
    """Quantiles from a histogram (upper bin edge: never under-states). Under/overflow bins
    at both ends of `counts` map to the first/last edge."""
    total = int(counts.sum())
    out: dict[str, float | None] = {}
    cumulative = np.cumsum(counts)
    bounds = np.concatenate(([edges[0]], edges, [edges[-1]]))
    for q in quantiles:
        key = f"p{round(q * 100):02d}"
        if total == 0:
            out[key] = None
            continue
        index = int(np.searchsorted(cumulative, q * total, side="left"))
        out[key] = float(bounds[index + 1])
    return out


class Tally:
    def __init__(self, country_count: int, max_rounds: int) -> None:
        self.verdicts = np.zeros((len(CLASSES), len(FastVerdict)), dtype=np.int64)
        self.false_verifications = 0
        self.false_violations = 0
        # landmark answers: [class, (received, missing)]; missing includes rejected replays
        self.answers = np.zeros((len(CLASSES), 2), dtype=np.int64)
        self.country_verdicts = np.zeros((country_count, len(FastVerdict)), dtype=np.int64)
        # index 0 underflow, then len(edges)-1 bins, then overflow
        self.area_hist = np.zeros((len(CLASSES), len(AREA_EDGES_LOG10_KM2) + 1), dtype=np.int64)
        self.ratio_hist = np.zeros(len(RATIO_EDGES) + 1, dtype=np.int64)
        # rounds after a relocation until flagged; last slot = not within the horizon
        self.detect_not_verified = np.zeros(max_rounds + 2, dtype=np.int64)
        self.detect_alert = np.zeros(max_rounds + 2, dtype=np.int64)
        # rtt_anomaly (sim/location.py): [class, (chips checked, chips alerted)]
        self.rtt_alerts = np.zeros((len(CLASSES), 2), dtype=np.int64)
        self.detect_rtt = np.zeros(max_rounds + 2, dtype=np.int64)  # rounds after a move

    def add(
        self,
        class_index: int,
        verdicts: IntArray,
        truth_inside: npt.NDArray[np.bool_],
        areas_km2: FloatArray,
        countries: IntArray | None = None,
    ) -> None:
        self.verdicts[class_index] += np.bincount(verdicts, minlength=len(FastVerdict))
        self.false_verifications += int(
            np.count_nonzero((verdicts == FastVerdict.VERIFIED) & ~truth_inside)
        )
        self.false_violations += int(
            np.count_nonzero((verdicts == FastVerdict.VIOLATION) & truth_inside)
        )
        if countries is not None:
            np.add.at(self.country_verdicts, (countries, verdicts), 1)
        finite = areas_km2[np.isfinite(areas_km2) & (areas_km2 > 0)]
        bins = np.searchsorted(AREA_EDGES_LOG10_KM2, np.log10(finite), side="right")
        self.area_hist[class_index] += np.bincount(bins, minlength=self.area_hist.shape[1])

    def add_answers(self, class_index: int, rtt_ms: FloatArray) -> None:
        missing = int(np.count_nonzero(np.isnan(rtt_ms)))
        self.answers[class_index] += (rtt_ms.size - missing, missing)

    def add_ratios(self, ratios: FloatArray) -> None:
        bins = np.searchsorted(RATIO_EDGES, ratios[np.isfinite(ratios)], side="right")
        self.ratio_hist += np.bincount(bins, minlength=self.ratio_hist.shape[0])

    def add_detection(self, not_verified_round: IntArray, alert_round: IntArray) -> None:
        """Rounds (1-based) after the move; 0 = never within the horizon."""
        horizon = self.detect_alert.shape[0] - 1
        self.detect_not_verified += np.bincount(
            np.where(not_verified_round == 0, horizon, not_verified_round), minlength=horizon + 1
        )
        self.detect_alert += np.bincount(
            np.where(alert_round == 0, horizon, alert_round), minlength=horizon + 1
        )

    def add_rtt_alerts(self, class_index: int, alerted: npt.NDArray[np.bool_]) -> None:
        self.rtt_alerts[class_index] += (alerted.size, int(np.count_nonzero(alerted)))

    def add_rtt_detection(self, alert_round: IntArray) -> None:
        horizon = self.detect_rtt.shape[0] - 1
        self.detect_rtt += np.bincount(
            np.where(alert_round == 0, horizon, alert_round), minlength=horizon + 1
        )

    def merge(self, other: Tally) -> None:
        self.verdicts += other.verdicts
        self.false_verifications += other.false_verifications
        self.false_violations += other.false_violations
        self.answers += other.answers
        self.country_verdicts += other.country_verdicts
        self.area_hist += other.area_hist
        self.ratio_hist += other.ratio_hist
        self.detect_not_verified += other.detect_not_verified
        self.detect_alert += other.detect_alert
        self.rtt_alerts += other.rtt_alerts
        self.detect_rtt += other.detect_rtt

    def to_json(self, country_codes: tuple[str, ...]) -> dict[str, Any]:
        quantiles = (0.05, 0.25, 0.5, 0.75, 0.95)
        classes: dict[str, Any] = {}
        for index, name in enumerate(CLASSES):
            counts = self.verdicts[index]
            total = int(counts.sum())
            if total == 0:
                continue
            classes[name] = {
                "chip_rounds": total,
                "verdicts": dict(zip(VERDICT_NAMES, (int(c) for c in counts), strict=True)),
                "rates": {v: int(c) / total for v, c in zip(VERDICT_NAMES, counts, strict=True)},
                "missing_answer_share": int(self.answers[index, 1])
                / max(int(self.answers[index].sum()), 1),
                "sound_area_upper_km2": {
                    k: (None if v is None else 10.0**v)
                    for k, v in histogram_quantiles(
                        self.area_hist[index], AREA_EDGES_LOG10_KM2, quantiles
                    ).items()
                },
            }
        per_country = {}
        for index, code in enumerate(country_codes):
            counts = self.country_verdicts[index]
            total = int(counts.sum())
            if total:
                per_country[code] = {
                    "chips": total,
                    "verified_rate": int(counts[FastVerdict.VERIFIED]) / total,
                    "violation_rate": int(counts[FastVerdict.VIOLATION]) / total,
                }
        honest = self.verdicts[CLASSES.index("honest")]
        honest_rounds = int(honest[: FastVerdict.DARK].sum())  # rounds with an answer
        out: dict[str, Any] = {
            "false_verifications": self.false_verifications,
            # Safety that holds because nothing verifies is vacuous: always report both.
            "honest_verified_share": (
                int(honest[FastVerdict.VERIFIED]) / honest_rounds if honest_rounds else 0.0
            ),
            "false_violations": self.false_violations,
            "classes": classes,
            "honest_by_country": per_country,
            "rtt_over_vacuum_rtt": histogram_quantiles(self.ratio_hist, RATIO_EDGES, quantiles),
            "histograms": {
                "area_edges_log10_km2": AREA_EDGES_LOG10_KM2.tolist(),
                "area_counts": {c: self.area_hist[i].tolist() for i, c in enumerate(CLASSES)},
            },
        }
        out["rtt_anomaly"] = {
            name: {
                "chips": int(self.rtt_alerts[i, 0]),
                "alerted": int(self.rtt_alerts[i, 1]),
                "rate": int(self.rtt_alerts[i, 1]) / int(self.rtt_alerts[i, 0]),
            }
            for i, name in enumerate(CLASSES)
            if self.rtt_alerts[i, 0]
        }
        if self.detect_rtt.sum():
            out["rtt_anomaly"]["rounds_after_move"] = _rounds_json(self.detect_rtt)
        if self.detect_alert.sum():
            out["detection_rounds"] = {
                "not_verified": _rounds_json(self.detect_not_verified),
                "alert": _rounds_json(self.detect_alert),
            }
        return out


def _rounds_json(counts: IntArray) -> dict[str, int]:
    named = {str(r): int(c) for r, c in enumerate(counts[:-1]) if r > 0 and c}
    named["never"] = int(counts[-1])
    return named


@dataclass(frozen=True, slots=True)
class SampleRecord:
    """One sampled chip-round, kept to replay through the real geo.assess.assess."""

    chip_index: int
    class_name: str
    licence_iso3: str
    true_lat_deg: float
    true_lon_deg: float
    truth_inside: bool
    rtt_ms: tuple[float, ...]
    fast_verdict: str
