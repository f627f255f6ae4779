"""Location embeddings of a cube: the lazy layer, points and neighbourhoods, storing the
layer in the cube, similar places, and the command line."""

from __future__ import annotations

import json
import warnings

import dask
import numpy as np
import pytest
import xarray as xr
from affine import Affine

from updm_dask.cli import main
from updm_dask.cube import create_cube, list_derived, open_cube
from updm_dask.embed import (
    Period,
    embedding_layer,
    fit_encoder,
    point_embedding,
    similar_places,
    store_embedding,
    stored_embedding,
)
from updm_dask.embed.layer import cube_vectors
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
    # the cube's schema records the layer: a derived layer, not loose arrays
    assert set(list_derived(cube)["embedding"]) == {
        "embedding",
        "embedding_clear_count",
        "dimension",
        "embedding_mean",
        "embedding_std",
    }

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
    # one point to a CSV file: a row per dimension, the same numbers; still printed
    one = tmp_path / "one.csv"
    assert main(["embed", loc, "--lon", str(lon), "--lat", str(lat), "-o", str(one)]) == 0
    assert "1970s.share_water" in capsys.readouterr().out
    rows = one.read_text().splitlines()
    assert rows[0] == "dimension,raw,standardised" and len(rows) == 63
    std = [float(r.split(",")[2]) if r.split(",")[2] else np.nan for r in rows[1:]]
    np.testing.assert_allclose(std, api, rtol=1e-5, atol=1e-5)

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
