"""Location embeddings: kernels (hand-worked values), the lazy cube layer, points and
neighbourhoods, storing the layer, similar places, and the command line."""

from __future__ import annotations

import json
import warnings

import dask
import numpy as np
import pytest
import xarray as xr
from affine import Affine

from updm_dask.cli import main
from updm_dask.cube import QUALITY_CLOUD_SHADOW, create_cube, open_cube
from updm_dask.embed import (
    Period,
    embedding_layer,
    fit_encoder,
    point_embedding,
    similar_places,
    store_embedding,
    stored_embedding,
)
from updm_dask.embed._kernel import (
    embedding_sums,
    features_from_sums,
    n_sums,
    standardise,
    time_axes,
)
from updm_dask.embed.layer import cube_vectors
from updm_dask.embed.similar import vector_distance
from updm_dask.embed.synthetic import make_synthetic_cube
from updm_dask.errors import CubeError, QueryError
from updm_dask.geo import CubeGrid
from updm_dask.geo.points import grid_lonlat

PERIOD = "1972-2024"


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    """The 48 x 48 synthetic cube: six histories in 8-pixel blocks, 34 scenes, with its
    embedding layer stored (so searches read it instead of recomputing it)."""
    made = make_synthetic_cube(tmp_path_factory.mktemp("embed") / "syn")
    store_embedding(made.cube, PERIOD)
    return made


@pytest.fixture(scope="module")
def layer(syn):
    ds = embedding_layer(syn.cube, PERIOD)
    return ds.compute()


def lonlat(cube, row, col):
    lon, lat = grid_lonlat(cube.grid, cube.grid.x[col], cube.grid.y[row])
    return float(lon), float(lat)


def block_centre(syn, history):
    """(row, col) of the centre pixel of the first block planted with ``history``."""
    h = syn.names.index(history)
    rows, cols = np.nonzero(syn.history == h)
    b = syn.block_id[rows[0], cols[0]]
    rr, cc = np.nonzero(syn.block_id == b)
    return int(rr.min() + syn.block // 2), int(cc.min() + syn.block // 2)


def no_compute(*args, **kwargs):
    raise AssertionError("dask computed something that should have stayed lazy")


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


# --------------------------------------------------------------------------------------
# The cube layer
# --------------------------------------------------------------------------------------


def test_layer_is_lazy_and_holds_the_planted_histories(syn, layer):
    with dask.config.set(scheduler=no_compute):
        lazy = embedding_layer(syn.cube, PERIOD, radius=45.0)
    assert lazy["embedding"].dims == ("dimension", "y", "x")
    assert list(lazy["dimension"].values) == list(Period.parse(PERIOD).dimension_names)
    assert lazy["embedding"].dtype == np.float32
    assert "spatial_ref" in lazy.coords

    emb = layer["embedding"]
    hist = {n: syn.history == i for i, n in enumerate(syn.names)}

    def dim(name, mask):
        return emb.sel(dimension=name).values[mask]

    np.testing.assert_array_equal(dim("1970s.frac_vegetation", hist["forest"]), 1.0)
    np.testing.assert_array_equal(dim("2020s.frac_vegetation", hist["forest"]), 1.0)
    np.testing.assert_array_equal(dim("2000s.frac_water", hist["reservoir_1994"]), 1.0)
    np.testing.assert_array_equal(dim("1980s.frac_water", hist["reservoir_1994"]), 0.0)
    mixed = dim("1990s.frac_water", hist["reservoir_1994"])  # flooded in 1994
    assert ((mixed > 0.2) & (mixed < 0.8)).all()
    np.testing.assert_array_equal(dim("1970s.frac_urban", hist["regrowth_1992"]), 1.0)
    np.testing.assert_array_equal(dim("2010s.frac_vegetation", hist["regrowth_1992"]), 1.0)
    np.testing.assert_array_equal(dim("2010s.frac_urban", hist["cleared_1985"]), 1.0)
    # planted forest coefficients (0.004, 0.100, 0.012): vegetation share ~0.862
    share = dim("2000s.share_vegetation", hist["forest"])
    assert abs(float(np.median(share)) - 0.100 / 0.116) < 0.03
    # MSS has no supplementary pattern: NaN through the 1970s, defined later
    assert np.isnan(emb.sel(dimension="1970s.share_supplementary").values).all()
    assert np.isfinite(emb.sel(dimension="1990s.share_supplementary").values).all()
    # deforestation shows in the trend: negative for cleared, positive for regrowth
    trend = emb.sel(dimension="period.mviupd_trend")
    assert float(np.median(trend.values[hist["cleared_1985"]])) < -0.1
    assert float(np.median(trend.values[hist["regrowth_1992"]])) > 0.1
    assert (layer["embedding_clear_count"].values > 20).all()


def test_point_and_neighbourhood_match_the_layer(syn, layer):
    """Two code paths: a numpy window around the point vs the lazy focal sum."""
    cube = syn.cube
    r, c = 20, 13
    lon, lat = lonlat(cube, r, c)
    pe = point_embedding(cube, lon, lat, period=PERIOD)
    assert (pe.row, pe.col, pe.n_pixels) == (r, c, 1)
    np.testing.assert_allclose(pe.raw, layer["embedding"].values[:, r, c], rtol=1e-5, atol=1e-6)
    vec, _, stats = cube_vectors(cube, PERIOD)
    np.testing.assert_allclose(pe.vector, vec.values[:, r, c], rtol=1e-5, atol=1e-5)
    assert pe.stats_source == stats.source
    # 45 m around a pixel centre: the pixel and its 8 neighbours (diagonal 42.4 m)
    pr = point_embedding(cube, lon, lat, radius=45.0, period=PERIOD, stats=stats)
    assert pr.n_pixels == 9
    focal = embedding_layer(cube, PERIOD, radius=45.0)["embedding"][:, r, c].values
    np.testing.assert_allclose(pr.raw, focal, rtol=1e-5, atol=1e-6)
    assert pr.clear_count > 8 * pe.clear_count
    assert json.loads(json.dumps(pe.to_dict()))["names"][0] == "1970s.share_water"
    assert "1970s.share_water" in pe.format()


def test_point_errors(syn):
    cube = syn.cube
    lon, lat = lonlat(cube, 0, 0)
    with pytest.raises(QueryError, match="outside the cube grid"):
        point_embedding(cube, lon + 1.0, lat, period=PERIOD)
    with pytest.raises(QueryError, match="radius"):
        point_embedding(cube, lon, lat, radius=-5, period=PERIOD)
    with pytest.raises(QueryError, match="lat"):
        point_embedding(cube, lon, 95.0, period=PERIOD)
    _, _, stats = cube_vectors(cube, PERIOD)
    with pytest.raises(QueryError, match="statistics are for period"):
        point_embedding(cube, lon, lat, period="1980-2024", stats=stats)


def test_an_empty_cube_gives_missing_values_not_errors(tmp_path):
    grid = CubeGrid("EPSG:32653", Affine(30.0, 0, 546000, 0, -30.0, 3843000), (10, 12))
    cube = create_cube(tmp_path / "empty", grid)
    ds = embedding_layer(cube, PERIOD).compute()
    assert np.isnan(ds["embedding"].values).all()
    assert not ds["embedding_clear_count"].values.any()
    lon, lat = lonlat(cube, 3, 2)
    pe = point_embedding(cube, lon, lat, period=PERIOD)
    assert pe.clear_count == 0 and np.isnan(pe.vector).all()
    assert similar_places(lon, lat, cube, period=PERIOD).table.empty
    with pytest.raises(QueryError, match="no pixel with a clear observation"):
        fit_encoder(cube, PERIOD)


# --------------------------------------------------------------------------------------
# Storing the layer
# --------------------------------------------------------------------------------------


def test_store_embedding_in_one_commit_and_read_it_back(tmp_path):
    years = (1984, 1990, 1996, 2002, 2008, 2014, 2020)
    syn = make_synthetic_cube(tmp_path / "c", blocks=(2, 3), block=6, seed=4, years=years)
    cube = syn.cube
    before = len(cube.history())
    snap = store_embedding(cube, "1980-2024")
    hist = cube.history()
    assert len(hist) == before + 1 and hist[0]["id"] == snap
    assert hist[0]["metadata"]["action"] == "store_embedding"
    assert hist[0]["metadata"]["period"] == "1980-2024"

    expected = embedding_layer(cube, "1980-2024")["embedding"].values
    st = stored_embedding(cube, "1980-2024")
    assert st is not None and st.fresh
    np.testing.assert_array_equal(st.raw.values, expected)
    # statistics: independent numpy reference over the pixels
    flat = expected.reshape(expected.shape[0], -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN dimensions, if any
        ref_mean = np.nanmean(flat, axis=1)
        ref_std = np.nanstd(flat, axis=1)
    np.testing.assert_allclose(st.stats.mean, ref_mean, rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(st.stats.std, ref_std, rtol=1e-5, atol=1e-7, equal_nan=True)
    # plain xarray sees the layer with its dimension names
    ds = xr.open_zarr(cube.session().store, consolidated=False)
    assert ds["embedding"].dims == ("dimension", "y", "x")
    assert ds["dimension"].values[0] == "1980s.share_water"
    assert ds["embedding"].attrs["period"] == "1980-2024"
    # another period is not served from the stored layer
    assert stored_embedding(cube, "1990-2024") is None

    # a new scene makes the layer stale: vectors are then recomputed, not read
    scene = cube.to_xarray().isel(time=-1)  # an existing slot, as a new 2024 scene
    scene = scene.assign_coords(scene_id="EXTRA_2024", time=np.datetime64("2024-08-01", "us"))
    cube.append_scenes([scene], metadata={}, message="one more")
    assert not stored_embedding(cube, "1980-2024").fresh
    _, _, stats = cube_vectors(cube, "1980-2024")
    assert stats.source != st.stats.source  # recomputed at the new tip, not the stored ones
    fresh = embedding_layer(cube, "1980-2024")["embedding"].sel(dimension="2020s.frac_water")
    assert fresh.notnull().all()

    pinned = open_cube(cube.location, snapshot=snap)
    with pytest.raises(CubeError, match="read-only"):
        store_embedding(pinned, "1980-2024")


# --------------------------------------------------------------------------------------
# Similar places
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "history"), [("cosine", "reservoir_1994"), ("euclidean", "regrowth_1992")]
)
def test_places_with_the_same_history_are_nearest_neighbours(syn, metric, history, tmp_path):
    cube = syn.cube
    r, c = block_centre(syn, history)
    lon, lat = lonlat(cube, r, c)
    h = syn.names.index(history)
    # exclude the query's own block (its farthest pixel lies < 8 * sqrt(2) pixels away)
    res = similar_places(lon, lat, cube, k=15, metric=metric, period=PERIOD, exclude_m=360.0)
    table = res.table
    assert len(table) == 15 and list(table["rank"]) == list(range(1, 16))
    assert (np.diff(table["distance"]) >= 0).all()
    own = syn.block_id[r, c]
    for row, col in zip(table["row"], table["col"], strict=True):
        assert syn.history[row, col] == h
        assert syn.block_id[row, col] != own
    if metric == "cosine":
        png = res.plot(tmp_path / "map.png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_similar_places_across_two_cubes_with_separation(syn, tmp_path):
    """A query in one cube finds the same history in another cube, standardised with the
    query cube's statistics (the whole query cube is excluded, so every result is there)."""
    other = make_synthetic_cube(
        tmp_path / "o",
        blocks=(3, 3),
        block=8,
        seed=9,
        origin=(560000.0, 3843000.0),
        histories=("cleared_1985", "town", "forest"),
        years=(1978, 1984, 1990, 1996, 2002, 2008, 2014, 2020),
    )
    r, c = block_centre(syn, "cleared_1985")
    lon, lat = lonlat(syn.cube, r, c)
    res = similar_places(
        lon,
        lat,
        [syn.cube, other.cube],
        k=8,
        period=PERIOD,
        radius=30.0,
        min_separation_m=60.0,
        exclude_m=5000.0,
    )
    t = res.table
    assert len(t) == 8 and set(t["cube"]) == {other.cube.location}
    for row, col in zip(t["row"], t["col"], strict=True):
        assert other.names[other.history[row, col]] == "cleared_1985"
    from updm_dask.embed._geo import great_circle_m

    d = great_circle_m(
        t["lon"].values[:, None],
        t["lat"].values[:, None],
        t["lon"].values[None],
        t["lat"].values[None],
    )
    assert (d[~np.eye(len(t), dtype=bool)] >= 60.0).all()
    assert len(res.distance_maps) == 2
    assert np.isnan(res.distance_maps[0].values).all()  # the query cube, all excluded
    assert res.query.stats_source.startswith(syn.cube.location)
    assert res.format().splitlines()[1].split()[:3] == ["rank", "lon", "lat"]


def test_similar_places_errors(syn):
    lon, lat = lonlat(syn.cube, 5, 5)
    with pytest.raises(QueryError, match="none of the"):
        similar_places(lon + 2.0, lat, syn.cube, period=PERIOD)
    with pytest.raises(QueryError, match="k:"):
        similar_places(lon, lat, syn.cube, k=0, period=PERIOD)
    with pytest.raises(QueryError, match="metric"):
        similar_places(lon, lat, syn.cube, metric="l1", period=PERIOD)
    with pytest.raises(QueryError, match="no cube"):
        similar_places(lon, lat, [], period=PERIOD)


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def test_cli_embed_point_points_and_similar(syn, tmp_path, capsys):
    loc = syn.cube.location
    lon, lat = lonlat(syn.cube, 10, 10)
    assert main(["embed", loc, "--lon", str(lon), "--lat", str(lat), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["row"] == 10 and rec["col"] == 10 and len(rec["vector"]) == 62

    pts = tmp_path / "p.csv"
    lon2, lat2 = lonlat(syn.cube, 30, 40)
    pts.write_text(f"id,lon,lat,radius\na,{lon},{lat},\nb,{lon2},{lat2},45\n")
    out = tmp_path / "e.csv"
    assert main(["embed", loc, "--points", str(pts), "--output", str(out)]) == 0
    lines = out.read_text().splitlines()
    header = lines[0].split(",")
    assert header[:6] == ["id", "lon", "lat", "radius_m", "n_pixels", "clear_count"]
    assert header[6] == "1970s.share_water" and len(header) == 6 + 62
    assert lines[1].split(",")[4] == "1" and lines[2].split(",")[4] == "9"
    # the CSV holds what the API gives
    first = [float(v) if v else np.nan for v in lines[1].split(",")[6:]]
    api = [np.nan if v is None else v for v in rec["vector"]]
    np.testing.assert_allclose(first, api, rtol=1e-5, atol=1e-5)

    png = tmp_path / "s.png"
    table = tmp_path / "s.csv"
    assert (
        main(
            [
                "similar",
                loc,
                "--lon",
                str(lon),
                "--lat",
                str(lat),
                "-k",
                "3",
                "--png",
                str(png),
                "--output",
                str(table),
            ]
        )
        == 0
    )
    assert png.is_file() and len(table.read_text().splitlines()) == 4

    assert main(["embed", loc, "--lon", str(lon)]) == 2
    assert "both --lon and --lat" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("x1,y1\n1,2\n")
    assert main(["embed", loc, "--points", str(bad)]) == 2
    assert "columns lon and lat" in capsys.readouterr().err
    assert main(["similar", loc, "--lon", "0", "--lat", "0"]) == 2
    assert main(["embed", loc, loc, "--lon", str(lon), "--lat", str(lat)]) == 2
    assert "one CUBE expected" in capsys.readouterr().err
