"""MVIUPD's dark limit: undefined below S = 0.025, flagged, and no class of water or cloud moves.

Hand-worked values use the spec's formula (section 7) and the limit as documented; the
real-scene checks recompute the raw ratio and the note's Table 5 in this file, from the
coefficients the pipeline stores, independently of the package's kernels.
"""

from __future__ import annotations

import warnings

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

from updm_dask.science.classify import (
    MVIUPD_DARK_LIMIT,
    Condition,
    Rule,
    RuleTable,
    classify_array,
    load_rules,
    mviupd,
    mviupd_undefined,
)

NO_DATA, CLOUD, WATER, VEGETATION, NON_VEGETATED = 0, 1, 2, 3, 4
LIMIT = 0.025  # the documented value, written out independently of the constant
TM = load_rules("TM")
MSS = load_rules("MSS")


def raw(w, v, s, c4=0.0):
    """The spec's ratio with no dark limit (NaN only for a zero sum)."""
    w, v, s, c4 = (np.asarray(x, dtype=np.float64) for x in (w, v, s, c4))
    total = w + v + s
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total == 0, np.nan, (v - w - 0.2 * s - c4) / total)


# --------------------------------------------------------------------------------------
# The index itself


def test_the_limit_is_the_documented_value():
    assert MVIUPD_DARK_LIMIT == LIMIT


def test_defined_on_the_limit_undefined_just_below():
    on = (0.005, 0.015, 0.005)  # S = 0.025, and its float sum is not below the limit
    assert sum(on) >= LIMIT
    # (0.015 - 0.005 - 0.001) / 0.025 = 0.36
    assert mviupd(*on) == pytest.approx(0.36, rel=1e-12)
    below = (0.0, float(np.nextafter(LIMIT, 0.0)), 0.0)
    assert np.isnan(mviupd(*below))
    # dark_limit=0 is the raw ratio: pure vegetation -> 1 whatever its brightness
    assert mviupd(*below, dark_limit=0) == 1.0
    assert np.isnan(mviupd(0.0, 0.0, 0.0, dark_limit=0))


def test_exploding_dark_pixel_is_nan_without_warnings():
    # S = 1.5e-5 with uC4 = 0.037: the raw ratio is about -2467 (as on the real Level-2 crop)
    w, v, s, c4 = 0.0, 0.5e-5, 1.0e-5, 0.037
    assert raw(w, v, s, c4) < -2000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(mviupd(w, v, s, c4))
        assert mviupd_undefined(w, v, s)


def test_float32_limit_is_compared_in_float32():
    limit32 = np.float32(LIMIT)
    just_below = np.nextafter(limit32, np.float32(0))
    v = np.array([limit32, just_below], dtype=np.float32)
    zero = np.zeros(2, dtype=np.float32)
    result = mviupd(zero, v, zero)
    assert result.dtype == np.float32
    assert result[0] == 1.0 and np.isnan(result[1])
    np.testing.assert_array_equal(mviupd_undefined(zero, v, zero), [False, True])


def test_undefined_mask_ignores_fill():
    flags = mviupd_undefined([np.nan, 0.0, 0.1], [0.1, 0.01, 0.0], [0.0, 0.0, np.inf])
    np.testing.assert_array_equal(flags, [False, True, False])


@pytest.mark.parametrize("bad", [-0.1, np.nan, np.inf, "0.02", True, None])
def test_bad_dark_limit_names_the_argument(bad):
    with pytest.raises(ValueError, match="dark_limit"):
        mviupd(0.1, 0.2, 0.3, dark_limit=bad)
    with pytest.raises(ValueError, match="dark_limit"):
        mviupd_undefined(0.1, 0.2, 0.3, dark_limit=bad)


class _RaiseOnCompute:
    def __call__(self, dsk, keys, **kwargs):
        raise AssertionError("computed")


def test_lazy_paths_apply_the_same_limit():
    w = np.array([0.0, 0.1, 0.0, 0.01])
    v = np.array([0.02, 0.5, 0.0, 0.03])
    s = np.array([0.0, 0.4, 0.0, 0.0])
    expected = np.where(w + v + s < LIMIT, np.nan, raw(w, v, s))
    assert np.isnan(expected).sum() == 2
    with dask.config.set(scheduler=_RaiseOnCompute()):
        lazy = mviupd(*(da.from_array(x, chunks=2) for x in (w, v, s)))
        labelled = mviupd(*(xr.DataArray(da.from_array(x, chunks=2), dims="x") for x in (w, v, s)))
    np.testing.assert_allclose(lazy.compute(scheduler="sync"), expected)
    np.testing.assert_allclose(labelled.values, expected)
    assert labelled.attrs["dark_limit"] == LIMIT
    np.testing.assert_allclose(mviupd(w, v, s), expected)


# --------------------------------------------------------------------------------------
# Classification: the shipped tables never need MVIUPD below the limit


def test_every_dark_pixel_is_water_in_the_shipped_tables():
    rng = np.random.default_rng(13)
    n = 20_000
    # non-negative uCw, uCv, uCs (UPDM's condition (9)) with S anywhere below the limit,
    # uC4 of either sign and up to 10x larger than S (what makes the raw ratio explode)
    parts = rng.dirichlet([0.3, 0.3, 0.3], n) * rng.uniform(0, LIMIT, n)[:, None]
    c4 = rng.uniform(-0.25, 0.25, n)
    pixels = np.column_stack([parts, c4])
    # and the corners: all of S in one coefficient, just below the limit
    edge = float(np.nextafter(LIMIT, 0))
    corners = np.array([[edge, 0, 0, 0.1], [0, edge, 0, -0.1], [0, 0, edge, 0.0], [0, 0, 0, 0]])
    pixels = np.vstack([pixels, corners])
    assert (pixels[:, :3].sum(axis=1) < LIMIT).all()
    assert np.nanmax(np.abs(raw(*pixels.T))) > 2  # the raw ratio does explode here
    for table in (TM, MSS):
        k = 4 if table is TM else 3
        np.testing.assert_array_equal(classify_array(pixels[:, :k], table), WATER)
    # float32, as stored in a cube
    np.testing.assert_array_equal(classify_array(pixels.astype(np.float32), TM), WATER)


def test_dark_pixel_under_a_stricter_water_rule_falls_through_mviupd_rules():
    # A user table whose water rule leaves this dark pixel out: its MVIUPD is undefined, so
    # neither the vegetation nor the non_vegetated rule holds and it gets no_data ...
    water = Rule("water", 2, (Condition("uCv", "<=", 0.001), Condition("S", "<=", 0.059)))
    vegetation = Rule("vegetation", 3, (Condition("mviupd", ">=", 0.458),))
    rest = Rule("non_vegetated", 4, (Condition("mviupd", "<", 0.458),))
    table = RuleTable(name="strict-water", sensor="TM", rules=(water, vegetation, rest))
    dark = np.array([[0.001, 0.012, 0.005]])  # S = 0.018
    assert raw(*dark[0]) >= 0.458  # the raw ratio (0.6) would have made it vegetation
    assert classify_array(dark, table)[0] == NO_DATA
    # ... unless the table ends with an unconditional rule, which then takes it.
    otherwise = RuleTable(
        name="strict-water-otherwise",
        sensor="TM",
        rules=(water, vegetation, Rule("non_vegetated", 4, ())),
    )
    assert classify_array(dark, otherwise)[0] == NON_VEGETATED
    # A brighter pixel of the same shape is classified by MVIUPD as before.
    assert classify_array(dark * 2, table)[0] == VEGETATION


# --------------------------------------------------------------------------------------
# The real scenes


def _table5(w, v, s, m):
    """The note's Table 5 (spec section 8) written out, with a given MVIUPD."""
    total = w + v + s
    out = np.zeros(w.shape, dtype=np.uint8)
    rules = [
        (CLOUD, (w >= 0.00663) & (total >= 0.161)),
        (WATER, (v <= 0.035) & (total <= 0.059)),
        (VEGETATION, m >= 0.458),
        (NON_VEGETATED, m < 0.458),
    ]
    pending = np.isfinite(total)
    for code, hit in rules:
        hit = hit & pending
        out[hit] = code
        pending &= ~hit
    return out


def _near_a_threshold(w, v, s, m, tol=1e-6):
    # float32 storage can move a value across a threshold by a rounding step
    total = w + v + s
    near = np.zeros(w.shape, dtype=bool)
    for x, thresholds in ((w, [0.00663]), (v, [0.035]), (total, [0.161, 0.059]), (m, [0.458])):
        for t in thresholds:
            near |= np.abs(x - t) <= tol
    return near


@pytest.mark.slow
def test_real_scenes_no_exploding_mviupd_dark_flagged_classes_unchanged(shared_data):
    from updm_dask.pipeline import Science, process_scene
    from updm_dask.scenes import discover_scenes, open_scene
    from updm_dask.science.masks import DARK, FILL

    found = discover_scenes(shared_data / "landsat")
    scenes = found.scenes + found.duplicates
    assert len(scenes) == 12
    exploding_raw, exploding, per_scene = 0, 0, {}
    with dask.config.set(scheduler="synchronous"):
        for source in scenes:
            # uC4 free in sign: the option under which the raw ratio explodes (the default's
            # three non-negative coefficients keep it in [-1, 1]); the limit guards every option
            ds = process_scene(open_scene(source), Science(supplementary=True)).compute()
            w, v, s, c4 = (ds[n].values.astype(np.float64) for n in ("uCw", "uCv", "uCs", "uC4"))
            c4 = np.nan_to_num(c4, nan=0.0)
            total = w + v + s
            ratio = raw(w, v, s, c4)
            stored = ds["mviupd"].values
            quality = ds["quality"].values
            flagged = (quality & DARK) != 0
            n_raw = int((np.abs(ratio) > 2).sum())
            exploding_raw += n_raw
            exploding += int((np.abs(stored) > 2).sum())
            per_scene[source.id] = n_raw
            # the flagged pixels are the dark ones (S computed here from the stored values)
            assert (total[flagged] < LIMIT + 1e-6).all(), source.id
            assert (total[~flagged & np.isfinite(total)] >= LIMIT - 1e-6).all(), source.id
            assert not (flagged & ((quality & FILL) != 0)).any()
            # MVIUPD is NaN exactly where it is dark or fill, else the spec's ratio
            valid = np.isfinite(total) & ~flagged
            assert np.isnan(stored[flagged]).all()
            np.testing.assert_allclose(stored[valid], ratio[valid], rtol=2e-5, atol=2e-6)
            # no class moves: every pixel is where Table 5 with the raw ratio puts it
            lc = ds["land_cover"].values
            expected = _table5(w, v, s, ratio)
            moved = (lc != expected) & ~_near_a_threshold(w, v, s, ratio)
            assert not moved.any(), (source.id, int(moved.sum()))
            assert (lc[flagged] == WATER).all()
    # before: the raw ratio explodes on the Level-2 Momotombo crop and the 1988 Para scene
    assert per_scene["LC08_L2SP_017051_20151205_20200908_02_T1"] > 200
    assert per_scene["LT52240631988227CUB02"] > 0
    assert exploding_raw > 250
    # after: none left
    assert exploding == 0
