"""yearly_summary by the one-pass compiled kernel gives the numpy summary, bit for bit.

The reference below is the summary written with numpy from the docstring contract of
:func:`updm_dask.cube.yearly_summary` (the numpy implementation the kernel replaced): a
membership test, one count per class in tie-break order, ``numpy.nanmedian`` of the clear
values, the counts with their fill. Outputs are compared as bits: the same float32 values,
+0 where it is +0, NaN where it is NaN.
"""

from __future__ import annotations

import warnings

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from _format1 import format_1
from hypothesis import given, settings
from hypothesis import strategies as st

from updm_dask.cube import (
    LAND_COVER_CLASSES,
    QUALITY_CLOUD,
    QUALITY_CLOUD_SHADOW,
    QUALITY_DARK,
    QUALITY_FILL,
    QUALITY_SATURATED,
    QUALITY_SLC_GAP,
    SCENE_VARIABLES,
    create_cube,
    decode_layer,
    encode_layer,
    yearly_summary,
)
from updm_dask.cube._yearly import yearly_summary_of_stored
from updm_dask.errors import CubeError

CODE = {name: code for code, name in LAND_COVER_CLASSES.items()}
WATER, VEGETATION, URBAN = CODE["water"], CODE["vegetation"], CODE["non_vegetated"]
NOT_CLEAR = (
    QUALITY_FILL | QUALITY_SATURATED | QUALITY_CLOUD | QUALITY_CLOUD_SHADOW | QUALITY_SLC_GAP
)
UINT16_MAX = 65535
YEARLY_NAMES = (
    "yearly_land_cover",
    "yearly_mviupd_median",
    "yearly_clear_count",
    "yearly_class_count",
)


def reference_summary(land_cover, quality, mviupd) -> np.ndarray:
    """The docstring contract of yearly_summary, in numpy."""
    lc = np.asarray(land_cover)
    q = np.asarray(quality).astype(np.int64)
    mv = np.asarray(mviupd, dtype=np.float32)
    clear = np.isin(lc, [WATER, VEGETATION, URBAN]) & ((q & NOT_CLEAR) == 0)
    best_class = np.zeros(lc.shape[1:], np.float32)
    best_count = np.zeros(lc.shape[1:], np.int64)
    for code in (VEGETATION, URBAN, WATER):  # ties go to the class listed first
        count = (clear & (lc == code)).sum(axis=0)
        better = count > best_count
        best_class[better] = code
        best_count[better] = count[better]
    median = reference_median(np.where(clear, mv, np.float32(np.nan)))
    seen = ((q & QUALITY_FILL) == 0).any(axis=0)
    count = np.where(seen, np.minimum(clear.sum(axis=0), 65534), 65535)
    class_count = np.minimum(best_count, UINT16_MAX)
    return np.stack([best_class, median, count, class_count]).astype(np.float32)


def reference_median(values: np.ndarray) -> np.ndarray:
    """Median along axis 0 of the values that are not NaN: the middle one, or the mean of
    the two middle ones in float32 (numpy's mean: from +0, then halved); NaN if none.

    As numpy.nanmedian (checked below), except that an odd count's middle value is also
    "averaged" with itself, so beyond half the float32 range it overflows to +-inf, as the
    per-year median always did.
    """
    if values.shape[0] == 0:
        return np.full(values.shape[1:], np.nan, np.float32)
    s = np.sort(values, axis=0)  # NaN last
    k = np.count_nonzero(~np.isnan(s), axis=0)
    low = np.take_along_axis(s, np.maximum((k - 1) // 2, 0)[None], axis=0)[0]
    high = np.take_along_axis(s, (k // 2)[None], axis=0)[0]
    with np.errstate(over="ignore", invalid="ignore"):
        mean = (low + high + np.float32(0)) / np.float32(2)
    return np.where(k > 0, mean, np.float32(np.nan))


def assert_bits_equal(got: np.ndarray, want: np.ndarray) -> None:
    """The same float32 bits: values, the sign of zeros and of NaN."""
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def random_year(rng, shape, *, lc_values=(0, 1, 2, 3, 4), mv_values=None):
    """(land_cover, quality, mviupd) uint8/uint8/float32 with many ties and edge values."""
    lc = rng.choice(np.asarray(lc_values, np.uint8), size=shape)
    # mostly clear, the rest any mix of bits (DARK alone stays clear)
    q = np.where(rng.random(shape) < 0.6, 0, rng.integers(0, 256, shape)).astype(np.uint8)
    q[rng.random(shape) < 0.1] = QUALITY_DARK
    if mv_values is None:
        mv = rng.normal(0.3, 0.4, shape).astype(np.float32)
    else:
        mv = rng.choice(np.asarray(mv_values, np.float32), size=shape)
    mv[rng.random(shape) < 0.1] = np.nan
    return lc, q, mv


EDGE_VALUES = (-0.0, 0.0, 0.25, 0.5, -1.0, np.inf, -np.inf, 3.4e38, -3.4e38, 1e-45, np.nan)


@pytest.mark.parametrize("n_obs", [0, 1, 2, 3, 4, 7, 20, 40, 65, 130])
def test_equals_the_numpy_summary_for_every_series_length(n_obs):
    rng = np.random.default_rng(n_obs)
    # few class codes and few values: ties of counts and of the middle values are common
    lc, q, mv = random_year(rng, (n_obs, 37, 41), mv_values=EDGE_VALUES)
    assert_bits_equal(yearly_summary(lc, q, mv), reference_summary(lc, q, mv))
    lc, q, mv = random_year(rng, (n_obs, 37, 41))
    assert_bits_equal(yearly_summary(lc, q, mv), reference_summary(lc, q, mv))


@pytest.mark.parametrize("n_obs", [1, 2, 3, 4, 21, 40])
def test_the_median_is_numpy_nanmedian_within_half_the_float32_range(n_obs):
    rng = np.random.default_rng(100 + n_obs)
    lc, q, mv = random_year(rng, (n_obs, 25, 25), mv_values=(-0.0, 0.0, 0.5, -1, np.inf, 1e38))
    clear = np.isin(lc, [WATER, VEGETATION, URBAN]) & ((q & NOT_CLEAR) == 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # pixels without a value
        want = np.nanmedian(np.where(clear, mv, np.float32(np.nan)), axis=0)
    got = yearly_summary(lc, q, mv)[1]
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))


def test_the_tie_break_order_lists_exactly_the_clear_classes():
    # the kernel is given the tie-break order as its clear classes
    from updm_dask.cube._schema import CLEAR_CLASSES, YEARLY_CLASS_PRIORITY

    assert sorted(YEARLY_CLASS_PRIORITY) == sorted(CLEAR_CLASSES) == [WATER, VEGETATION, URBAN]


def test_class_ties_go_to_vegetation_then_urban_then_water():
    # every pair and the triple of classes with equal clear counts, and one more cloud/no-data
    series = [
        [WATER, VEGETATION],
        [VEGETATION, WATER],
        [URBAN, VEGETATION],
        [WATER, URBAN],
        [URBAN, WATER],
        [WATER, URBAN, VEGETATION],
        [CODE["cloud"], CODE["no_data"]],
    ]
    lc = np.array([s + [CODE["cloud"]] * (3 - len(s)) for s in series], np.uint8).T
    q = np.zeros_like(lc)
    mv = np.zeros(lc.shape, np.float32)
    out = yearly_summary(lc, q, mv)
    np.testing.assert_array_equal(
        out[0], [VEGETATION, VEGETATION, VEGETATION, URBAN, URBAN, VEGETATION, 0]
    )
    np.testing.assert_array_equal(out[3], [1, 1, 1, 1, 1, 1, 0])
    assert_bits_equal(out, reference_summary(lc, q, mv))


def test_all_cloud_all_fill_and_nan_pixels():
    n = 6
    lc = np.full((n, 5), VEGETATION, np.uint8)
    q = np.zeros((n, 5), np.uint8)
    mv = np.full((n, 5), 0.5, np.float32)
    q[:, 0] = QUALITY_CLOUD  # seen, never clear
    lc[:, 1] = CODE["cloud"]  # class cloud, quality clear: seen, never clear
    q[:, 2] = QUALITY_FILL | QUALITY_CLOUD  # never covered
    mv[:, 3] = np.nan  # clear, but no MVIUPD (dark): counted, no median
    mv[::2, 4] = np.nan  # half of the values
    out = yearly_summary(lc, q, mv)
    np.testing.assert_array_equal(out[0], [0, 0, 0, VEGETATION, VEGETATION])
    np.testing.assert_array_equal(out[2], [0, 0, 65535, n, n])
    np.testing.assert_array_equal(out[3], [0, 0, 0, n, n])
    assert np.isnan(out[1, :4]).all() and out[1, 4] == np.float32(0.5)
    assert_bits_equal(out, reference_summary(lc, q, mv))


def test_no_observation_at_all():
    lc = np.zeros((0, 3, 2), np.uint8)
    out = yearly_summary(lc, lc, np.zeros(lc.shape, np.float32))
    assert out.shape == (4, 3, 2)
    assert_bits_equal(out, reference_summary(lc, lc, np.zeros(lc.shape, np.float32)))
    np.testing.assert_array_equal(out[2], 65535)


def test_one_pixel_series_and_empty_pixel_axes():
    rng = np.random.default_rng(1)
    lc, q, mv = random_year(rng, (9,))
    assert_bits_equal(yearly_summary(lc, q, mv), reference_summary(lc, q, mv))
    lc, q, mv = random_year(rng, (9, 0, 4))
    assert yearly_summary(lc, q, mv).shape == (4, 0, 4)


def test_medians_of_zeros_infinities_and_extremes():
    cases = [
        [-0.0],
        [-0.0, -0.0],
        [0.0, -0.0],
        [-0.0, 1.0],
        [np.inf, -np.inf],
        [np.inf, np.inf, 1.0],
        [3.4e38, 3.4e38],  # the sum overflows to inf, as in float32 numpy
        [-3.4e38, -3.3e38],
        [1e-45, 1e-45],  # subnormal halves
        [1.0, np.nan, 2.0],
        [0.1, 0.2],  # the mean rounded in float32
    ]
    n = max(map(len, cases))
    mv = np.full((n, len(cases)), np.nan, np.float32)
    for j, c in enumerate(cases):
        mv[: len(c), j] = c
    lc = np.full(mv.shape, WATER, np.uint8)
    q = np.zeros(mv.shape, np.uint8)
    out = yearly_summary(lc, q, mv)
    assert_bits_equal(out, reference_summary(lc, q, mv))
    assert out[1, 0].view(np.uint32) == 0  # +0
    assert np.isinf(out[1, 6]) and np.isnan(out[1, 4])


def test_other_dtypes_read_as_their_values_not_their_low_bytes():
    rng = np.random.default_rng(2)
    shape = (12, 30)
    # 258 and -254 have the low byte of water; 3.0 is vegetation, 3.5 and NaN no class
    lc_values = np.array([2, 3, 4, 258, -254, 0, 1], np.int64)
    lc = rng.choice(lc_values, size=shape)
    q = rng.choice(np.array([0, 256, 512 | QUALITY_CLOUD, -1, QUALITY_DARK], np.int64), shape)
    mv = rng.normal(0, 1, shape)  # float64, rounded to float32 first
    for lc_, q_, mv_ in [
        (lc, q, mv),
        (lc.astype(np.int16), q.astype(np.int32), mv),
        (np.where(lc == 1, 3.5, lc).astype(np.float64), q, mv.astype(np.float32)),
        (np.where(lc == 1, np.nan, lc).astype(np.float32), q.astype(np.float64) + 0.7, mv),
        (lc.astype(np.uint16), q.astype(np.uint16), (mv * 10).astype(np.int32)),
        (lc.astype(np.int8), q.astype(np.int8), mv.astype(np.float16)),
        (lc.astype(">i4"), q.astype(">i8"), mv.astype(">f4")),
    ]:
        assert_bits_equal(yearly_summary(lc_, q_, mv_), reference_summary(lc_, q_, mv_))
    # and views with strides (a slice of the time axis, a transposed block)
    lc8, q8, mv32 = random_year(rng, (20, 16, 16))
    for sl in [np.s_[::2], np.s_[:, ::3, 1:]]:
        assert_bits_equal(
            yearly_summary(lc8[sl], q8[sl], mv32[sl]),
            reference_summary(lc8[sl], q8[sl], mv32[sl]),
        )
    t = (0, 2, 1)
    assert_bits_equal(
        yearly_summary(lc8.transpose(t), q8.transpose(t), mv32.transpose(t)),
        reference_summary(lc8.transpose(t), q8.transpose(t), mv32.transpose(t)),
    )


def test_long_series_and_counts_at_the_caps():
    rng = np.random.default_rng(3)
    n = 65538
    lc = np.full((n, 2), VEGETATION, np.uint8)
    lc[: n // 3, 1] = WATER
    q = np.zeros((n, 2), np.uint8)
    mv = rng.normal(0, 1, (n, 2)).astype(np.float32)
    out = yearly_summary(lc, q, mv)
    assert_bits_equal(out, reference_summary(lc, q, mv))
    np.testing.assert_array_equal(out[2], [65534, 65534])  # the fill stays apart
    np.testing.assert_array_equal(out[3], [65535, n - n // 3])


def test_shape_errors_keep_their_message():
    lc = np.zeros((3, 2), np.uint8)
    with pytest.raises(CubeError, match=r"yearly_summary: .* land_cover \(3, 2\), quality"):
        yearly_summary(lc, lc[:2], np.zeros((3, 2), np.float32))
    with pytest.raises(CubeError, match="time"):
        yearly_summary(np.uint8(2), np.uint8(0), np.float32(0))


@settings(max_examples=150, deadline=None)
@given(
    shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=9),
    seed=st.integers(0, 2**32 - 1),
    values=st.sampled_from([EDGE_VALUES, (0.0, 1.0), None]),
)
def test_random_years_equal_the_numpy_summary(shape, seed, values):
    lc, q, mv = random_year(np.random.default_rng(seed), shape, mv_values=values)
    assert_bits_equal(yearly_summary(lc, q, mv), reference_summary(lc, q, mv))


# ---------------------------------------------------------------------------------------
# MVIUPD as stored: int16 codes, decoded only where used
# ---------------------------------------------------------------------------------------

SPEC = SCENE_VARIABLES["mviupd"]


def test_every_stored_code_gives_the_value_decode_layer_gives():
    codes = np.arange(-32768, 32768, dtype=np.int64).astype(SPEC.dtype)[None, :]
    lc = np.full(codes.shape, URBAN, np.uint8)
    q = np.zeros(codes.shape, np.uint8)
    decoded = decode_layer("mviupd", codes)
    got = yearly_summary_of_stored(lc, q, codes)
    assert_bits_equal(got, reference_summary(lc, q, decoded))
    assert np.isnan(got[1, 0]) and codes[0, 0] == SPEC.fill  # the fill code reads NaN


@pytest.mark.parametrize("n_obs", [0, 1, 2, 5, 20, 40])
def test_stored_codes_summarise_as_their_decoded_values(n_obs):
    rng = np.random.default_rng(10 + n_obs)
    lc, q, mv = random_year(rng, (n_obs, 33, 29))
    mv[rng.random(mv.shape) < 0.02] = 1e9  # clipped to the largest code
    codes = encode_layer("mviupd", mv)
    want = reference_summary(lc, q, decode_layer("mviupd", codes))
    assert_bits_equal(yearly_summary_of_stored(lc, q, codes), want)
    assert_bits_equal(yearly_summary(lc, q, decode_layer("mviupd", codes)), want)


def test_stored_summary_checks_shapes_and_takes_format_1_float_layers_as_they_are():
    lc = np.zeros((2, 3), np.uint8)
    with pytest.raises(CubeError, match=r"land_cover \(2, 3\), quality \(2, 2\)"):
        yearly_summary_of_stored(lc, lc[:, :2], np.zeros((2, 3), np.int16))
    rng = np.random.default_rng(4)
    lc, q, mv = random_year(rng, (6, 20, 20))
    with format_1():  # float32 MVIUPD, not packed
        assert_bits_equal(yearly_summary_of_stored(lc, q, mv), reference_summary(lc, q, mv))


# ---------------------------------------------------------------------------------------
# A real cube: the per-year layers of real scenes equal the numpy summary of their layers
# ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_rebuilt_yearly_layers_of_real_scenes_equal_the_numpy_summary(shared_data, tmp_path):
    from updm_dask.geo import CubeGrid
    from updm_dask.jobs.run import scene_on_grid
    from updm_dask.scenes import discover_scenes

    grid = CubeGrid("EPSG:32637", (30.0, 0.0, 589035.0, 0.0, -30.0, 756165.0), (101, 101))
    found = discover_scenes(str(shared_data / "landsat" / "ethiopia-167055")).scenes
    assert len(found) == 4  # TM 2000, TM 2010, ETM+ 2017, OLI 2017
    # chunks of 64: blocks at the grid's edge are partial
    cube = create_cube(tmp_path / "cube", grid, chunks=64)
    cube.append_scenes([scene_on_grid(s, grid) for s in found], metadata={}, message="m")
    cube.rebuild_yearly()
    import zarr

    store = cube.session().store
    raw = {name: zarr.open_array(store, path=name, mode="r")[:] for name in YEARLY_NAMES}
    ds = cube.to_xarray(sortby_time=False)  # the stored time order, as the raw layers
    years = ds["time"].dt.year.values
    assert sorted(int(y) for y in ds["year"].values) == [2000, 2010, 2017]
    layers = {n: zarr.open_array(store, path=n, mode="r")[:] for n in ("land_cover", "quality")}
    codes = zarr.open_array(store, path="mviupd", mode="r")[:]
    assert codes.dtype == np.int16
    for i, year in enumerate(ds["year"].values):
        at = years == int(year)
        lc, q = layers["land_cover"][at], layers["quality"][at]
        want = reference_summary(lc, q, decode_layer("mviupd", codes[at]))
        assert np.isfinite(want[1]).any() and (want[2] > 0).any()  # real clear pixels
        for j, name in enumerate(YEARLY_NAMES):
            if name == "yearly_mviupd_median":
                # stored packed: its codes are those of the reference's median, exactly
                assert raw[name].dtype == np.int32
                np.testing.assert_array_equal(raw[name][i], encode_layer(name, want[j]))
            else:
                assert_bits_equal(raw[name][i].astype(np.float32), want[j])
