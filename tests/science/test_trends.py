"""Theil-Sen slope and Mann-Kendall test kernel, against scipy and hand-worked values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from updm_dask.errors import QueryError
from updm_dask.science.trends import theil_sen_mann_kendall


def test_trend_kernel_matches_scipy():
    rng = np.random.default_rng(3)
    t = np.arange(20, dtype=float)
    series = rng.normal(0, 1, (40, 20)) + np.linspace(0, 1, 20) * rng.normal(0, 2, (40, 1))
    series[::3] = np.round(series[::3], 0)  # plenty of ties
    series[1::4, rng.integers(0, 20, 5)] = np.nan  # missing years
    out = theil_sen_mann_kendall(series, t, min_count=4, continuity=False)
    for k in range(series.shape[0]):
        ok = np.isfinite(series[k])
        slope, intercept, _, _ = scipy.stats.theilslopes(series[k][ok], t[ok])
        tau, p = scipy.stats.kendalltau(t[ok], series[k][ok], method="asymptotic")
        np.testing.assert_allclose(out[k, :4], [slope, intercept, tau, p], rtol=1e-9, atol=1e-12)
        assert out[k, 4] == ok.sum()


def test_trend_kernel_hand_worked_values():
    # 4 increasing values: S = 6, Var(S) = 4*3*13/18, Z = (6 - 1) / sqrt(Var) (continuity)
    out = theil_sen_mann_kendall(np.array([1.0, 2.0, 4.0, 5.0]), np.arange(4.0))
    p = math.erfc(5 / math.sqrt(4 * 3 * 13 / 18) / math.sqrt(2))
    # pairwise slopes 1, 1.5, 1.333, 2, 1.5, 1 -> median 1.4167; intercept 3 - 1.4167 * 1.5
    assert out[0] == pytest.approx((1.5 + 4 / 3) / 2)
    assert out[1] == pytest.approx(3 - out[0] * 1.5)
    assert out[2] == pytest.approx(1.0) and out[3] == pytest.approx(p) and out[4] == 4
    constant = theil_sen_mann_kendall(np.full(6, 0.3), np.arange(6.0))
    assert constant[:4].tolist() == [0.0, pytest.approx(0.3), 0.0, 1.0]
    short = theil_sen_mann_kendall(np.array([1.0, np.nan, 2.0, np.nan]), np.arange(4.0))
    assert np.isnan(short[:4]).all() and short[4] == 2
    with pytest.raises(QueryError, match="strictly increasing"):
        theil_sen_mann_kendall(np.ones(3), np.array([0.0, 2.0, 1.0]))
