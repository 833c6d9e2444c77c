"""Kernel-weighted quantiles over mesh paths with one landmark's paths left out, for every landmark.

Both audit rules compare a landmark's paths with the REST of the mesh: the fast-partner rule
with a high quantile of comparable paths' speed, the position test with the speed curve's median
and spread. Refitting for every landmark costs O(landmarks · knots · pairs), which on a 225-city
mesh (25,000 pairs) is tens of seconds. Here the values are sorted and their kernel weights summed
once; leaving a landmark out subtracts its own paths' weights, and each quantile is found by
bisection: O(knots · (own paths + log pairs)) per landmark, with the same answer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]


class LeaveOutQuantiles:
    """Quantiles of `values`, weighted by a Gaussian kernel in ln RTT around each knot."""

    def __init__(
        self,
        values: FloatArray,
        log_rtt: FloatArray,
        knots_log_rtt: FloatArray,
        bandwidth: float,
        included: npt.NDArray[np.bool_] | None = None,
    ):
        order = np.argsort(values, kind="stable")
        self.sorted_values = values[order]
        self.kernel = np.exp(
            -0.5 * ((log_rtt[order][None, :] - knots_log_rtt[:, None]) / bandwidth) ** 2
        )
        if included is not None:
            self.kernel *= included[order][None, :]
        self.cumulative = np.cumsum(self.kernel, axis=1)
        self.rank = np.empty(len(values), dtype=np.intp)
        self.rank[order] = np.arange(len(values))

    def without(
        self, left_out: IndexArray, quantiles: Sequence[float]
    ) -> tuple[FloatArray, FloatArray]:
        """(values (len(quantiles), knots), total weight per knot) with `left_out` samples out.

        A quantile q is the first value, in sorted order, at which the cumulative weight reaches
        q · total (numpy's searchsorted on the cumulative weights, side="left").
        """
        own = np.sort(self.rank[left_out])
        knots = self.cumulative.shape[0]
        if len(own):
            own_cumulative = np.cumsum(self.kernel[:, own], axis=1)
        else:
            own_cumulative = np.zeros((knots, 1))
        total = self.cumulative[:, -1] - own_cumulative[:, -1]
        rows = np.tile(np.arange(knots), len(quantiles))
        target = np.repeat(np.asarray(quantiles, dtype=np.float64), knots) * total[rows]
        lo = np.zeros(len(rows), dtype=np.intp)
        hi = np.full(len(rows), len(self.sorted_values) - 1, dtype=np.intp)
        while np.any(lo < hi):
            mid = (lo + hi) // 2
            owned = np.searchsorted(own, mid, side="right")
            removed = np.where(owned > 0, own_cumulative[rows, np.maximum(owned - 1, 0)], 0.0)
            reached = self.cumulative[rows, mid] - removed >= target
            hi = np.where(reached, mid, hi)
            lo = np.where(reached, lo, mid + 1)
        values = self.sorted_values[lo].reshape(len(quantiles), knots)
        return np.asarray(values, dtype=np.float64), np.asarray(total, dtype=np.float64)
