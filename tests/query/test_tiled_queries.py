"""Queries over a tiled collection: a point routes to its tile, an area reads one lazy view
over the tiles it touches, a catalogue tag pins every tile.

The collection holds the scenes of the southern/western test cube (tests/cli/conftest.py:
8 x 10 pixels, columns 0-4 vegetation, 5-9 water, one TM scene a year 1990-1995), each cut
into tiles of 4 pixels (2 x 3 tiles); the same scenes in one untiled cube are the reference.
"""

from __future__ import annotations

import itertools

import dask
import numpy as np
import pandas as pd
import pytest
import rasterio
from cli.conftest import GRID, YEARS, _scene, centre, make_sw_cube

from updm_dask import query as q
from updm_dask.cli import main
from updm_dask.cube import create_collection, open_collection
from updm_dask.errors import QueryError, VersionError

EDGE = 4
PIXEL_AREA_HA = 0.09


def _tile_scene(year: int, window: tuple[int, int, int, int]):
    r0, c0, nr, nc = window
    return _scene(year).isel(y=slice(r0, r0 + nr), x=slice(c0, c0 + nc))


@pytest.fixture(scope="module")
def cubes(tmp_path_factory):
    """(untiled cube, tiled collection): the same scenes, tagged "first" after 1990-1992."""
    root = tmp_path_factory.mktemp("tiled")
    single = make_sw_cube(root / "single")
    collection = create_collection(root / "tiled", GRID, edge=EDGE)
    tiles = collection.tiling.tile_ids()
    with dask.config.set({"updm.chunks.yearly": 4}):
        for part in (YEARS[:3], YEARS[3:]):
            for tile in tiles:
                cube = collection.create_tile(tile)
                window = collection.tiling.tile_window(tile)
                scenes = [_tile_scene(y, window) for y in part]
                cube.append_scenes(scenes, metadata={"job_id": "t"}, message=tile)
                cube.rebuild_yearly()
                cube.close()
            if part == YEARS[:3]:
                collection.tag("first")
    return single, root / "tiled"


def _lonlat(row: int, col: int) -> tuple[float, float]:
    import pyproj

    to_lonlat = pyproj.Transformer.from_crs(GRID.crs, "EPSG:4326", always_xy=True)
    return to_lonlat.transform(*centre(row, col))


def test_the_collection_has_several_tiles(cubes):
    _, tiled = cubes
    assert open_collection(tiled).tiles() == ["r0c0", "r0c1", "r0c2", "r1c0", "r1c1", "r1c2"]


def test_area_statistics_over_tiles_equal_the_untiled_cube_and_the_known_content(cubes):
    single, tiled = cubes
    whole = q.area_statistics(tiled)
    reference = q.area_statistics(single)
    pd.testing.assert_frame_equal(whole, reference)
    # known content: 40 vegetation and 40 water pixels of 0.09 ha every year
    assert list(whole["year"]) == YEARS
    np.testing.assert_allclose(whole["vegetation_ha"], 40 * PIXEL_AREA_HA)
    np.testing.assert_allclose(whole["water_ha"], 40 * PIXEL_AREA_HA)
    # a box across four tiles (rows 2-5, columns 3-6)
    (x0, y0), (x1, y1) = centre(2, 3), centre(5, 6)
    box = (x0 - 10, y1 - 10, x1 + 10, y0 + 10)  # every centre well inside
    part = q.area_statistics(tiled, bbox=box, crs=GRID.crs)
    assert part.attrs["area"]["n_pixels"] == 16
    pd.testing.assert_frame_equal(part, q.area_statistics(single, bbox=box, crs=GRID.crs))
    np.testing.assert_allclose(part["vegetation_ha"], 8 * PIXEL_AREA_HA)  # columns 3-4
    np.testing.assert_allclose(part["water_ha"], 8 * PIXEL_AREA_HA)  # columns 5-6
    # provenance names every tile's snapshot
    assert all(t in whole.attrs["snapshot"] for t in ("r0c0@", "r1c2@"))


def test_an_area_opens_only_the_tiles_it_touches(cubes, monkeypatch):
    # an area maps over the tiles it touches: on a continent, not every tile of the grid
    import updm_dask.cube._collection as collection_module

    single, tiled = cubes
    opened = []
    real = collection_module.open_cube

    def counting(location, **kwargs):
        opened.append(str(location).rsplit("/", 1)[-1])
        return real(location, **kwargs)

    monkeypatch.setattr(collection_module, "open_cube", counting)
    (x0, y0), (x1, y1) = centre(1, 5), centre(2, 6)  # inside tile r0c1 (rows 0-3, cols 4-7)
    box = (x0 - 10, y1 - 10, x1 + 10, y0 + 10)
    for tag in (None, "first"):
        opened.clear()
        part = q.area_statistics(tiled, bbox=box, crs=GRID.crs, tag=tag)
        assert set(opened) == {"r0c1"}, (tag, opened)
        assert part.attrs["area"]["n_pixels"] == 4
        pd.testing.assert_frame_equal(
            part, q.area_statistics(single, bbox=box, crs=GRID.crs, tag=tag)
        )
    opened.clear()
    part = q.area_statistics(tiled, bbox=box, crs=GRID.crs)
    assert part.attrs["snapshot"].startswith("r0c1@") and " " not in part.attrs["snapshot"]
    trend = q.mviupd_trend(tiled, bbox=box, crs=GRID.crs)
    reference = q.mviupd_trend(single, bbox=box, crs=GRID.crs)
    np.testing.assert_allclose(trend["slope"].values, reference["slope"].values, equal_nan=True)
    assert set(opened) == {"r0c1"}


def test_a_point_routes_to_its_tile(cubes):
    single, tiled = cubes
    for row, col in ((0, 0), (2, 1), (7, 9), (5, 6)):
        lon, lat = _lonlat(row, col)
        got = q.point_series(tiled, lon=lon, lat=lat)
        want = q.point_series(single, lon=lon, lat=lat)
        pd.testing.assert_frame_equal(
            got.scenes.reset_index(drop=True), want.scenes.reset_index(drop=True)
        )
        expected = 0.5 + 0.01 * (np.array(YEARS) - 1990) if col < 5 else np.full(6, -0.5)
        np.testing.assert_allclose(got.scenes["mviupd"], expected, atol=1e-4)


def test_trend_and_maps_over_tiles_equal_the_untiled_cube(cubes):
    single, tiled = cubes
    trend, reference = q.mviupd_trend(tiled), q.mviupd_trend(single)
    np.testing.assert_allclose(trend["slope"].values, reference["slope"].values, equal_nan=True)
    np.testing.assert_array_equal(
        q.land_cover_map(tiled, year=1994).values, q.land_cover_map(single, year=1994).values
    )


def test_a_catalogue_tag_pins_every_tile(cubes):
    single, tiled = cubes
    then = q.area_statistics(tiled, tag="first")
    assert list(then["year"]) == YEARS[:3]
    pd.testing.assert_frame_equal(then, q.area_statistics(single, tag="first"))
    assert then.attrs["snapshot"] == "tag first"
    with pytest.raises(VersionError, match="has no tag 'nope'; its tags: 'first'"):
        q.area_statistics(tiled, tag="nope")
    with pytest.raises(VersionError, match="pin it with a tag instead"):
        q.area_statistics(tiled, snapshot="ABCDEF")
    lon, lat = _lonlat(7, 9)
    series = q.point_series(tiled, lon=lon, lat=lat, tag="first")
    assert len(series.scenes) == 3


def test_a_point_outside_the_collection_names_its_lonlat_bounds(cubes):
    _, tiled = cubes
    with pytest.raises(QueryError, match="outside"):
        q.point_series(tiled, lon=10.0, lat=10.0)


def test_the_commands_read_a_collection(cubes, tmp_path, capsys):
    single, tiled = cubes
    lon, lat = _lonlat(2, 1)
    outputs = []
    for cube in (tiled, single):
        assert main(["query", "point", str(cube), "--lonlat", str(lon), str(lat)]) == 0
        outputs.append(capsys.readouterr().out)
    assert "pixel row 2, col 1 " in outputs[1]
    # the tile's own pixel: row 2, column 1 of tile r0c0
    assert "pixel row 2, col 1 " in outputs[0]
    assert main(["query", "area", str(tiled), "--format", "csv"]) == 0
    table = capsys.readouterr().out
    assert table.count("\n") >= len(YEARS)
    tifs = []
    for name, cube in (("tiled", tiled), ("single", single)):
        out = tmp_path / f"{name}.tif"
        argv = ["export", "map", str(cube), "--layer", "land_cover", "--year", "1995", str(out)]
        assert main(argv) == 0, capsys.readouterr().err
        with rasterio.open(out) as f:
            tifs.append((f.read(1), f.transform, f.crs))
    assert tifs[0][1] == tifs[1][1] and tifs[0][2] == tifs[1][2]
    np.testing.assert_array_equal(tifs[0][0], tifs[1][0])


def test_netcdf_export_of_a_collection_equals_the_untiled_cubes(cubes, tmp_path, capsys):
    import xarray as xr

    single, tiled = cubes
    copies = []
    for name, cube in (("tiled", tiled), ("single", single)):
        out = tmp_path / f"{name}.nc"
        assert main(["export", "netcdf", str(cube), str(out)]) == 0, capsys.readouterr().err
        copies.append(xr.load_dataset(out))
    assert "every tile at its newest snapshot" in capsys.readouterr().out
    a, b = copies
    for name in ("land_cover", "mviupd", "yearly_land_cover", "yearly_clear_count"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
    assert a["scene_id"].values.tolist() == b["scene_id"].values.tolist()
    assert a["scene_id"].values.tolist() == [f"TM{y}" for y in YEARS]


# --------------------------------------------------------------------------------------
# Embeddings and the similar-place search over tiles


def test_pooled_statistics_of_the_tiles_equal_the_untiled_cubes(cubes):
    from updm_dask.embed.layer import cube_statistics, cube_statistics_of

    single, tiled = cubes
    pooled = cube_statistics_of(tiled)
    whole = cube_statistics(single)
    np.testing.assert_array_equal(pooled.n_pixels, whole.n_pixels)
    np.testing.assert_allclose(pooled.mean, whole.mean, rtol=1e-9, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(pooled.std, whole.std, rtol=1e-6, atol=1e-9, equal_nan=True)
    assert "6 tiles" in pooled.source


def test_a_point_embedding_over_tiles_equals_the_untiled_cubes(cubes):
    from updm_dask.embed import point_embedding

    single, tiled = cubes
    # (4, 4) and (3, 8) lie at tile corners: their 45 m neighbourhoods reach into 4 tiles
    for (row, col), radius in itertools.product(((0, 0), (5, 6), (7, 9), (4, 4), (3, 8)), (0, 45)):
        lon, lat = _lonlat(row, col)
        got = point_embedding(tiled, lon, lat, radius=radius)
        want = point_embedding(single, lon, lat, radius=radius)
        assert (got.row, got.col) == (want.row, want.col) == (row, col)
        np.testing.assert_allclose(got.raw, want.raw, equal_nan=True)
        np.testing.assert_allclose(got.vector, want.vector, rtol=1e-5, atol=1e-6, equal_nan=True)
        assert got.n_pixels == want.n_pixels
    from updm_dask.errors import PointError

    with pytest.raises(PointError, match=r"tiled collection .* outside"):
        point_embedding(tiled, 10.0, 10.0)


def test_similar_places_searches_every_tile(cubes, capsys):
    from updm_dask.embed import similar_places

    single, tiled = cubes
    lon, lat = _lonlat(2, 1)  # vegetation
    got = similar_places(lon, lat, tiled, k=30)
    want = similar_places(lon, lat, single, k=30)
    # the same distances (no tile holds 30 pixels: several tiles answer)
    a, b = got.table, want.table
    np.testing.assert_allclose(np.sort(a["distance"]), np.sort(b["distance"]), atol=1e-5)
    assert a["cube"].nunique() > 1
    assert set(a["cube"]) <= {str(tiled / "tiles" / t) for t in open_collection(tiled).tiles()}
    # the CLI takes the collection too
    assert main(["similar", str(tiled), "--lonlat", str(lon), str(lat), "-k", "3"]) == 0
    assert main(["embed", str(tiled), "--lonlat", str(lon), str(lat), "--json"]) == 0
    capsys.readouterr()


def test_embed_and_similar_read_a_tag_or_a_snapshot(cubes, capsys):
    import json

    from updm_dask.cube import open_cube

    single, tiled = cubes
    lon, lat = _lonlat(5, 6)
    where = ["--lonlat", str(lon), str(lat), "--json"]

    def embed(*args):
        assert main(["embed", *args, *where]) == 0, capsys.readouterr().err
        return json.loads(capsys.readouterr().out)

    first = open_cube(single, tag="first").snapshot_id
    now = {name: embed(str(cube)) for name, cube in (("single", single), ("tiled", tiled))}
    then = {
        "single": embed(str(single), "--tag", "first"),
        "tiled": embed(str(tiled), "--tag", "first"),
        "snapshot": embed(str(single), "--snapshot", first),
    }
    # the tag holds the 1990-1992 scenes, the tip 1990-1995: one clear scene a year (all
    # alike, so the vectors agree and the counts tell the states apart)
    assert now["single"]["clear_count"] == now["tiled"]["clear_count"] == 6
    for name, rec in then.items():
        assert rec["clear_count"] == 3, name
        np.testing.assert_allclose(
            np.array(rec["raw"], float), np.array(then["single"]["raw"], float), equal_nan=True
        )
    # similar places at the tag: the same distances from the tiles as from the single cube
    tables = {}
    for name, cube in (("single", single), ("tiled", tiled)):
        out = cube.parent / f"similar-{name}.csv"
        args = ["similar", str(cube), "--lonlat", str(lon), str(lat), "-k", "5", "--tag", "first"]
        assert main([*args, "-o", str(out)]) == 0, capsys.readouterr().err
        tables[name] = pd.read_csv(out)
    np.testing.assert_allclose(
        np.sort(tables["tiled"]["distance"]), np.sort(tables["single"]["distance"]), atol=1e-5
    )
    capsys.readouterr()
    # refused, naming what is wrong
    bad = [
        (["embed", str(tiled), "--snapshot", first, *where], "is a tiled collection"),
        (["embed", str(single), "--tag", "nope", *where], "nope"),
        (["embed", str(single), "--store", "--tag", "first"], "not with --store"),
        (["similar", str(tiled), "--lonlat", str(lon), str(lat), "--tag", "nope"], "nope"),
    ]
    for args, message in bad:
        assert main(args) == 2, args
        assert message in capsys.readouterr().err, args


def test_a_tiled_collection_describes_itself_as_a_stac_collection(
    cubes, tmp_path, offline_stac_validator
):
    import json

    pystac = offline_stac_validator
    single, tiled = cubes
    docs = {}
    for name, cube in (("tiled", tiled), ("single", single)):
        out = tmp_path / f"{name}.json"
        assert main(["export", "stac", str(cube), str(out), "--id", name]) == 0
        docs[name] = json.loads(out.read_text(encoding="utf-8"))
    a, b = docs["tiled"], docs["single"]
    assert a["cube:dimensions"] == b["cube:dimensions"]
    assert a["cube:variables"] == b["cube:variables"]
    assert a["extent"] == b["extent"]
    tiles = open_collection(tiled).tiles()
    assert a["updm:tiling"] == {"tile_edge": 4, "tile_rows": 2, "tile_cols": 3, "tiles": tiles}
    assert {k for k in a["assets"] if k.startswith("tile-")} == {f"tile-{t}" for t in tiles}
    assert a["assets"]["tile-r1c2"]["href"] == str(tiled / "tiles" / "r1c2")
    assert "rows 4-7, columns 8-9" in a["assets"]["tile-r1c2"]["title"]
    validated = pystac.Collection.from_dict(a, migrate=False).validate()
    assert any("datacube" in s for s in validated)
