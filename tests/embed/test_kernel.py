"""The embedding's numpy kernels, hand-worked: periods and dimension names, time axes,
sums and features, standardisation, vector distances."""

from __future__ import annotations

import numpy as np
import pytest

from updm_dask.cube import QUALITY_CLOUD_SHADOW
from updm_dask.embed import Period
from updm_dask.embed._kernel import (
    embedding_sums,
    features_from_sums,
    n_sums,
    standardise,
    time_axes,
)
from updm_dask.embed.similar import vector_distance
from updm_dask.errors import QueryError

# --------------------------------------------------------------------------------------
# Periods and dimension names
# --------------------------------------------------------------------------------------


def test_period_epochs_and_dimension_names():
    p = Period.parse("1975-2024")
    assert p.epochs == (
        (1975, 1979),
        (1980, 1989),
        (1990, 1999),
        (2000, 2009),
        (2010, 2019),
        (2020, 2024),
    )
    assert p.epoch_labels == ("1970s", "1980s", "1990s", "2000s", "2010s", "2020s")
    names = p.dimension_names
    assert len(names) == 6 * 10 + 2
    assert names[:3] == ("1970s.share_water", "1970s.share_vegetation", "1970s.share_soil")
    assert names[10] == "1980s.share_water"
    assert names[-2:] == ("period.mviupd_trend", "period.mviupd_seasonal_amplitude")
    # the list depends on the period only: stable across calls and cubes
    assert Period(1975, 2024).dimension_names == names
    one = Period(2010, 2024, None)
    assert one.epochs == ((2010, 2024),)
    assert one.dimension_names[0] == "2010-2024.share_water"
    assert Period(1981, 1995, 5).epoch_labels == (
        "1981-1984",
        "1985-1989",
        "1990-1994",
        "1995-1995",
    )
    np.testing.assert_array_equal(p.epoch_of([1974, 1975, 1989, 2024, 2025]), [-1, 0, 1, 5, -1])
    assert Period.parse((1990, 2000)) == Period(1990, 2000)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("1990", "START-END"),
        ("2000-1990", "before start"),
        ("1800-1900", "outside"),
        (5, "START-END"),
    ],
)
def test_bad_periods(value, match):
    with pytest.raises(QueryError, match=match):
        Period.parse(value)


def test_time_axes_hand_worked():
    # 2000 is a leap year: 2 July 00:00 is day 183 of 366, exactly half the year
    epoch, t, phase = time_axes(np.array(["2000-07-02T00:00"], dtype="M8[us]"), Period(1990, 2009))
    assert epoch.tolist() == [1]
    np.testing.assert_allclose(t, [0.05])  # (2000.5 - 2000.0) / 10 decades
    np.testing.assert_allclose(phase, [np.pi])


# --------------------------------------------------------------------------------------
# Kernels, hand-worked
# --------------------------------------------------------------------------------------


def _hand_pixel():
    """Seven observations of one pixel; see test_kernel_hand_worked for what counts."""
    nan = np.nan
    lc = np.array([3, 3, 1, 4, 2, 4, 3], np.uint8)
    q = np.array([0, 0, 0, QUALITY_CLOUD_SHADOW, 0, 0, 0], np.uint8)
    w = np.array([0.01, 0.02, 0.3, 0.01, 0.03, 0.01, 0.01])
    v = np.array([0.08, 0.06, 0.3, 0.01, 0.00, 0.01, 0.08])
    s = np.array([0.01, 0.02, 0.3, 0.08, 0.00, 0.08, 0.01])
    c4 = np.array([0.002, nan, 0.0, 0.0, 0.003, -0.001, 0.0])
    res = np.array([0.004, 0.006, 0.1, 0.1, nan, 0.002, 0.0])
    mv = np.array([0.6, 0.4, 0.0, -0.5, nan, -0.2, 0.9])
    epoch = np.array([0, 0, 0, 0, 1, 1, -1])  # 1985, 1987, 1988, 1989, 1992, 1995, 2005
    t = np.linspace(-1, 1, 7)
    phase = np.linspace(0, 6, 7)
    arrays = [a[:, None] for a in (lc, q, w, v, s, c4, res, mv)]
    return arrays, epoch, t, phase


def test_kernel_hand_worked():
    """Epoch 0 keeps observations 1-2 (3 is cloud, 4 has the cloud-shadow bit); epoch 1
    keeps 5-6; observation 7 lies outside the period.

    1980s: both vegetation; shares (0.1, 0.8, 0.1) and (0.2, 0.6, 0.2) -> means 0.15, 0.7,
    0.15; uC4/S only for obs 1: 0.02; MVIUPD 0.6, 0.4 -> mean 0.5, sample sd 0.141421;
    residual mean 0.005.
    1990s: water + urban; shares (1, 0, 0) and (0.1, 0.1, 0.8) -> 0.55, 0.05, 0.4; uC4/S
    0.1 and -0.01 -> 0.045; MVIUPD only -0.2 (sd undefined); residual only 0.002.
    Trend and seasonal amplitude need six observations: NaN.
    """
    arrays, epoch, t, phase = _hand_pixel()
    sums = embedding_sums(*arrays, epoch, t, phase, 2)
    assert sums.shape == (n_sums(2), 1)
    f = features_from_sums(sums, 2)[:, 0]
    names = Period(1980, 1999).dimension_names
    got = dict(zip(names, f.tolist(), strict=True))
    expected = {
        "1980s.share_water": 0.15,
        "1980s.share_vegetation": 0.7,
        "1980s.share_soil": 0.15,
        "1980s.share_supplementary": 0.02,
        "1980s.mviupd_mean": 0.5,
        "1980s.mviupd_std": 0.1414214,
        "1980s.frac_water": 0.0,
        "1980s.frac_vegetation": 1.0,
        "1980s.frac_urban": 0.0,
        "1980s.residual_mean": 0.005,
        "1990s.share_water": 0.55,
        "1990s.share_vegetation": 0.05,
        "1990s.share_soil": 0.4,
        "1990s.share_supplementary": 0.045,
        "1990s.mviupd_mean": -0.2,
        "1990s.frac_water": 0.5,
        "1990s.frac_vegetation": 0.0,
        "1990s.frac_urban": 0.5,
        "1990s.residual_mean": 0.002,
    }
    for k, v in expected.items():
        assert got[k] == pytest.approx(v, abs=1e-6), k
    for k in ("1990s.mviupd_std", "period.mviupd_trend", "period.mviupd_seasonal_amplitude"):
        assert np.isnan(got[k]), k


def test_no_clear_observation_gives_nan_everywhere():
    arrays, epoch, t, phase = _hand_pixel()
    arrays[1] = np.full_like(arrays[1], 1)  # FILL bit everywhere
    f = features_from_sums(embedding_sums(*arrays, epoch, t, phase, 2), 2)
    assert np.isnan(f).all()
    # zero time slots: all-zero sums, all-NaN features
    empty = [a[:0] for a in arrays]
    s0 = embedding_sums(*empty, epoch[:0], t[:0], phase[:0], 2)
    assert not s0.any()


def test_trend_and_seasonal_amplitude_recovered_exactly():
    """MVIUPD = 0.5 + 0.1 t + 0.2 cos + 0.1 sin is fitted exactly: trend 0.1 per decade,
    amplitude sqrt(0.2**2 + 0.1**2)."""
    n = 24
    t = np.arange(n) / 10.0 - 1.2
    phase = 2 * np.pi * ((np.arange(n) * 0.37) % 1.0)
    mv = 0.5 + 0.1 * t + 0.2 * np.cos(phase) + 0.1 * np.sin(phase)
    one = np.ones((n, 1))
    lc = np.full((n, 1), 3, np.uint8)
    q = np.zeros((n, 1), np.uint8)
    sums = embedding_sums(
        lc, q, one, one, one, one, one, mv[:, None], np.zeros(n, int), t, phase, 1
    )
    f = features_from_sums(sums, 1)[:, 0]
    assert f[-2] == pytest.approx(0.1, abs=1e-5)
    assert f[-1] == pytest.approx(np.hypot(0.2, 0.1), abs=1e-5)
    # the same observations squeezed into ~4 months: time spread < 1 year -> NaN
    sums = embedding_sums(
        lc, q, one, one, one, one, one, mv[:, None], np.zeros(n, int), t / 100.0, phase, 1
    )
    assert np.isnan(features_from_sums(sums, 1)[-2:]).all()


def test_sums_are_additive_over_time_blocks_and_pixels():
    rng = np.random.default_rng(3)
    n = 30
    lc = rng.integers(0, 5, (n, 4)).astype(np.uint8)
    q = rng.choice(np.array([0, 0, 0, 2], np.uint8), (n, 4))
    floats = [rng.random((n, 4)) for _ in range(6)]
    epoch = rng.integers(-1, 3, n)
    t, phase = rng.random(n), rng.random(n) * 6
    whole = embedding_sums(lc, q, *floats, epoch, t, phase, 3)
    parts = sum(
        embedding_sums(
            lc[i:j], q[i:j], *[f[i:j] for f in floats], epoch[i:j], t[i:j], phase[i:j], 3
        )
        for i, j in ((0, 7), (7, 19), (19, 30))
    )
    np.testing.assert_allclose(parts, whole, rtol=1e-12, atol=1e-12)
    # pooling two pixels = one pixel holding both pixels' observations
    pooled = embedding_sums(
        np.concatenate([lc[:, :1], lc[:, 1:2]]),
        np.concatenate([q[:, :1], q[:, 1:2]]),
        *[np.concatenate([f[:, :1], f[:, 1:2]]) for f in floats],
        np.tile(epoch, 2),
        np.tile(t, 2),
        np.tile(phase, 2),
        3,
    )
    np.testing.assert_allclose(pooled[:, 0], whole[:, :2].sum(axis=1), rtol=1e-12)


def test_kernel_rejects_mismatched_shapes():
    arrays, epoch, t, phase = _hand_pixel()
    with pytest.raises(QueryError, match="one shape"):
        embedding_sums(arrays[0][:3], *arrays[1:], epoch, t, phase, 2)
    with pytest.raises(QueryError, match="one per time"):
        embedding_sums(*arrays, epoch[:3], t, phase, 2)
    with pytest.raises(QueryError, match="sum channels"):
        features_from_sums(np.zeros((5, 1)), 2)


def test_standardise_rules():
    raw = np.array([[1.0, 3.0, np.nan], [2.0, 2.0, 2.0], [5.0, 6.0, 7.0]])
    z = standardise(raw, np.array([2.0, 2.0, np.nan]), np.array([0.5, 0.0, np.nan]))
    np.testing.assert_allclose(z[0, :2], [-2.0, 2.0])
    assert np.isnan(z[0, 2])  # missing raw value stays missing
    np.testing.assert_array_equal(z[1], [0.0, 0.0, 0.0])  # constant dimension -> 0
    assert np.isnan(z[2]).all()  # no reference data for the dimension
    with pytest.raises(QueryError, match="statistics"):
        standardise(raw, np.zeros(2), np.ones(2))


def test_vector_distance_hand_worked():
    v = np.array([[1.0, 0.0, -1.0, 0.0, 3.0], [0.0, 1.0, 0.0, 0.0, 4.0]])
    np.testing.assert_allclose(
        vector_distance(v, np.array([1.0, 0.0])), [0, 1, 2, 1, 0.4], atol=1e-6
    )
    np.testing.assert_allclose(
        vector_distance(v, np.array([0.0, 0.0]), "euclidean"), [1, 1, 1, 0, 5]
    )
    # NaN counts as 0 (the reference mean)
    assert vector_distance(np.array([[np.nan], [2.0]]), np.array([0.0, 1.0]))[0] == 0.0
    with pytest.raises(QueryError, match="metric"):
        vector_distance(v, np.ones(2), "manhattan")
