"""CubeGrid (construction, snapping, serialisation) and to_grid regridding."""

from __future__ import annotations

import json
from contextlib import contextmanager

import dask
import dask.array as da
import numpy as np
import pyproj
import pytest
import rasterio.warp
import rioxarray  # noqa: F401
import xarray as xr
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from updm_dask.errors import GridError
from updm_dask.geo import CubeGrid, block_mean, block_mode, block_pick, to_grid

UTM37 = "EPSG:32637"


@contextmanager
def no_compute():
    """Fail if anything inside asks dask to compute."""

    def scheduler(*args, **kwargs):
        raise AssertionError("a dask computation was triggered")

    with dask.config.set(scheduler=scheduler):
        yield


def raster(values, transform, crs=UTM37, *, chunks=None, name="v", dims=("y", "x")):
    """A georeferenced DataArray with pixel-centre coordinates from ``transform``."""
    values = np.asarray(values)
    ny, nx = values.shape[-2:]
    x = transform.c + transform.a * (np.arange(nx) + 0.5)
    y = transform.f + transform.e * (np.arange(ny) + 0.5)
    out = xr.DataArray(values, dims=dims, coords={"y": y, "x": x}, name=name)
    if chunks is not None:
        out = out.chunk(chunks)
    return out.rio.write_crs(crs)


def reprojected(out) -> bool:
    """Whether the dask graph behind ``out`` went through the general reprojection."""
    return any(name.startswith("reproject") for name in out.data.dask.layers)


# a 4 x 5 grid of 30 m pixels with its upper-left corner at (1000, 2000)
GRID = CubeGrid(UTM37, Affine(30, 0, 1000, 0, -30, 2000), (4, 5))


# --------------------------------------------------------------------------------------
# CubeGrid
# --------------------------------------------------------------------------------------


def test_grid_properties_are_hand_checked():
    assert GRID.resolution == 30.0
    assert GRID.shape == (4, 5)
    assert GRID.bounds == (1000.0, 1880.0, 1150.0, 2000.0)
    np.testing.assert_array_equal(GRID.x, [1015.0, 1045.0, 1075.0, 1105.0, 1135.0])
    np.testing.assert_array_equal(GRID.y, [1985.0, 1955.0, 1925.0, 1895.0])
    assert GRID.x.dtype == np.float64 and GRID.y.dtype == np.float64
    assert GRID.geobox.shape == (4, 5)
    assert GRID.geobox.affine == GRID.transform


def test_grid_dict_round_trip_is_json_able():
    d = GRID.to_dict()
    again = CubeGrid.from_dict(json.loads(json.dumps(d)))
    assert again == GRID
    assert d["crs"] == UTM37
    assert d["transform"] == [30.0, 0.0, 1000.0, 0.0, -30.0, 2000.0]
    assert d["shape"] == [4, 5]


def test_grid_crs_compared_through_pyproj():
    wkt = pyproj.CRS.from_epsg(32637).to_wkt()
    same = CubeGrid(wkt, GRID.transform, GRID.shape)
    assert same == GRID and hash(same) == hash(GRID)
    other = CubeGrid("EPSG:32636", GRID.transform, GRID.shape)
    assert other != GRID
    assert CubeGrid(UTM37, GRID.transform, (4, 6)) != GRID


def test_grid_tokenizes_deterministically():
    a = CubeGrid(UTM37, Affine(30, 0, 1000, 0, -30, 2000), (4, 5))
    assert dask.base.tokenize(a) == dask.base.tokenize(GRID)
    shifted = CubeGrid(UTM37, Affine(30, 0, 1030, 0, -30, 2000), (4, 5))
    assert dask.base.tokenize(shifted) != dask.base.tokenize(GRID)


def test_grid_accepts_six_numbers_for_transform():
    g = CubeGrid(UTM37, (30, 0, 1000, 0, -30, 2000), [4, 5])
    assert g == GRID


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"transform": Affine(30, 1, 1000, 0, -30, 2000)}, "rotated or sheared"),
        ({"transform": Affine(30, 0, 1000, 0.5, -30, 2000)}, "rotated or sheared"),
        ({"transform": Affine(30, 0, 1000, 0, 30, 2000)}, "north-up"),
        ({"transform": Affine(-30, 0, 1000, 0, -30, 2000)}, "north-up"),
        ({"transform": Affine(30, 0, 1000, 0, -20, 2000)}, "square"),
        ({"transform": "nonsense"}, "transform"),
        ({"shape": (0, 5)}, "positive"),
        ({"shape": (-1, 5)}, "positive"),
        ({"shape": (2.5, 5)}, "whole"),
        ({"shape": (4,)}, "two sizes"),
        ({"crs": "EPSG:999999"}, "unknown CRS"),
        ({"crs": "not a crs"}, "unknown CRS"),
        ({"crs": ""}, "CRS is required"),
        ({"crs": "EPSG:4326"}, "projected"),
    ],
)
def test_grid_rejects_bad_input(kwargs, match):
    args = {"crs": UTM37, "transform": GRID.transform, "shape": GRID.shape, **kwargs}
    with pytest.raises(GridError, match=match):
        CubeGrid(**args)


def test_from_dict_names_missing_key():
    d = GRID.to_dict()
    del d["transform"]
    with pytest.raises(GridError, match="transform"):
        CubeGrid.from_dict(d)


# --------------------------------------------------------------------------------------
# Snapping
# --------------------------------------------------------------------------------------


def test_from_bounds_centre_snapping_matches_landsat_grid():
    # Ethiopia test scenes: 101 x 101 px at 30 m, corner coordinates odd multiples of 15 m
    bounds = (589035, 753135, 592065, 756165)
    g = CubeGrid.from_bounds(bounds, 30, UTM37)
    assert g.bounds == bounds
    assert g.shape == (101, 101)
    # pixel centres are whole multiples of the resolution
    assert np.all(g.x % 30 == 0) and np.all(g.y % 30 == 0)
    # bounds inside the same pixels snap outwards to the same grid
    assert CubeGrid.from_bounds((589040, 753140, 592060, 756160), 30, UTM37) == g


def test_from_bounds_snapping_hand_worked():
    # edges on multiples of 30: floor(100/30)*30 = 90, ceil(190/30)*30 = 210, ...
    e = CubeGrid.from_bounds((100, 100, 190, 170), 30, UTM37, snap="edge")
    assert e.bounds == (90, 90, 210, 180)
    assert e.shape == (3, 4)
    # centres on multiples of 30, edges on 15 + 30k: 75 <= 100, 195 >= 190, 195 >= 170
    c = CubeGrid.from_bounds((100, 100, 190, 170), 30, UTM37)
    assert c.bounds == (75, 75, 195, 195)
    assert c.shape == (4, 4)


def test_from_bounds_ignores_float_noise():
    g = CubeGrid.from_bounds((0, 0, 90.0000000001, 60), 30, UTM37, snap="edge")
    assert g.shape == (2, 3)


@pytest.mark.parametrize(
    ("bounds", "resolution", "crs", "match"),
    [
        ((0, 0, 100, 100), 0, UTM37, "resolution"),
        ((0, 0, 100, 100), -30, UTM37, "resolution"),
        ((0, 0, 100, 100), float("nan"), UTM37, "resolution"),
        ((0, 0, 100, 100), "thirty", UTM37, "resolution"),
        ((0, 0, 0, 100), 30, UTM37, "empty"),
        ((0, 100, 100, 0), 30, UTM37, "empty"),
        ((0, 0, 100), 30, UTM37, "four numbers"),
        ((0, 0, float("inf"), 100), 30, UTM37, "finite"),
        ((0, 0, 100, 100), 30, "EPSG:0", "unknown CRS"),
    ],
)
def test_from_bounds_rejects_bad_input(bounds, resolution, crs, match):
    with pytest.raises(GridError, match=match):
        CubeGrid.from_bounds(bounds, resolution, crs)


def test_from_aoi_covers_the_densified_lonlat_box_minimally():
    aoi = (39.80, 6.80, 39.90, 6.90)
    g = CubeGrid.from_aoi(aoi, 30, UTM37)
    # independent densification: 200 points per edge through pyproj
    tr = pyproj.Transformer.from_crs("EPSG:4326", UTM37, always_xy=True)
    t = np.linspace(0, 1, 200)
    lon = np.concatenate(
        [aoi[0] + t * (aoi[2] - aoi[0])] * 2 + [np.full(200, aoi[0])] * 1 + [np.full(200, aoi[2])]
    )
    lat = np.concatenate(
        [np.full(200, aoi[1]), np.full(200, aoi[3])] + [aoi[1] + t * (aoi[3] - aoi[1])] * 2
    )
    x, y = tr.transform(lon, lat)
    minx, miny, maxx, maxy = g.bounds
    assert minx <= x.min() and x.max() <= maxx and miny <= y.min() and y.max() <= maxy
    # minimal: no side is more than one pixel beyond the data
    assert x.min() - minx < 30 and maxx - x.max() < 30
    assert y.min() - miny < 30 and maxy - y.max() < 30
    assert np.all(g.x % 30 == 0)


def test_from_aoi_accepts_objects_with_bounds_and_other_aoi_crs():
    class Box:
        bounds = (589035.0, 753135.0, 592065.0, 756165.0)

    g = CubeGrid.from_aoi(Box(), 30, UTM37, aoi_crs=UTM37)
    assert g.bounds == Box.bounds


@pytest.mark.parametrize(
    ("aoi", "aoi_crs", "match"),
    [
        ((39.8, -95, 39.9, 6.9), "EPSG:4326", "latitudes"),
        ((39.9, 6.8, 39.8, 6.9), "EPSG:4326", "empty"),
        ((39.8, 6.8, 39.9, 6.9), "EPSG:nope", "unknown CRS"),
    ],
)
def test_from_aoi_rejects_bad_input(aoi, aoi_crs, match):
    with pytest.raises(GridError, match=match):
        CubeGrid.from_aoi(aoi, 30, UTM37, aoi_crs=aoi_crs)


# --------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------


def test_block_mean_is_nan_aware():
    a = np.array(
        [
            [1.0, 3.0, np.nan, np.nan],
            [5.0, 7.0, np.nan, 8.0],
        ],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(block_mean(a, 2, 2), np.array([[4.0, 8.0]], np.float32))
    allnan = np.full((2, 2), np.nan, np.float32)
    assert np.isnan(block_mean(allnan, 2, 2)).all()
    assert block_mean(a, 2, 2).dtype == np.float32


@settings(max_examples=50, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4)).map(
            lambda s: (s[0], 2 * s[1], 3 * s[2])
        ),
        elements=st.one_of(st.floats(-1e3, 1e3), st.just(np.nan)),
    )
)
def test_block_mean_matches_a_loop_over_blocks(a):
    out = block_mean(a, 2, 3)
    for k in range(a.shape[0]):
        for i in range(a.shape[1] // 2):
            for j in range(a.shape[2] // 3):
                block = a[k, 2 * i : 2 * i + 2, 3 * j : 3 * j + 3]
                finite = block[np.isfinite(block)]
                if finite.size:
                    assert out[k, i, j] == pytest.approx(finite.mean(), rel=1e-12, abs=1e-12)
                else:
                    assert np.isnan(out[k, i, j])


def test_block_mode_hand_worked_with_priority_ties_and_fill():
    # blocks (2x2) side by side: [3,3,4,2] -> 3; [4,4,3,3] tie -> 3 (vegetation first);
    # [2,2,4,4] tie -> 4 (urban before water); [0,0,0,2] -> 2 (fill ignored); all fill -> 0
    a = np.array(
        [
            [3, 3, 4, 4, 2, 2, 0, 0, 0, 0],
            [4, 2, 3, 3, 4, 4, 0, 2, 0, 0],
        ],
        dtype=np.uint8,
    )
    np.testing.assert_array_equal(block_mode(a, 2, 2, fill=0), [[3, 3, 4, 2, 0]])
    # classes outside the priority list: most frequent wins, ties -> smallest value
    b = np.array([[7, 7, 9, 9], [9, 7, 6, 6]], dtype=np.uint8)
    np.testing.assert_array_equal(block_mode(b, 2, 2, fill=0), [[7, 6]])


def test_block_pick_takes_the_centre_pixel():
    a = np.arange(16).reshape(4, 4)
    np.testing.assert_array_equal(block_pick(a, 2, 2), [[5, 7], [13, 15]])


def test_block_kernels_reject_shapes_not_divisible():
    with pytest.raises(GridError, match="divisible"):
        block_mean(np.zeros((3, 4)), 2, 2)


# --------------------------------------------------------------------------------------
# to_grid
# --------------------------------------------------------------------------------------


def test_aligned_scene_is_sliced_and_padded_bit_exactly():
    # 3 x 3 scene starting one pixel right and one down of the grid's corner, and running
    # past its right edge by one column: partial overlap, whole-pixel offset
    vals = np.arange(1, 10, dtype=np.float32).reshape(3, 3) / 7
    scene = raster(vals, Affine(30, 0, 1090, 0, -30, 1970), chunks=2)
    with no_compute():
        out = to_grid(scene, GRID)
    assert isinstance(out.data, da.Array)
    assert not reprojected(out)
    n = np.nan
    expected = np.array(
        [
            [n, n, n, n, n],
            [n, n, n, vals[0, 0], vals[0, 1]],
            [n, n, n, vals[1, 0], vals[1, 1]],
            [n, n, n, vals[2, 0], vals[2, 1]],
        ],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(out.values, expected)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.x.values, GRID.x)
    np.testing.assert_array_equal(out.y.values, GRID.y)
    assert out.rio.crs == pyproj.CRS.from_epsg(32637)
    assert out.rio.transform() == GRID.transform


def test_scene_larger_than_grid_is_cropped():
    big = np.arange(8 * 9, dtype=np.float64).reshape(8, 9)
    scene = raster(big, Affine(30, 0, 940, 0, -30, 2060))  # 2 px left, 2 px above
    out = to_grid(scene, GRID)
    np.testing.assert_array_equal(out.values, big[2:6, 2:7])
    assert isinstance(out.data, np.ndarray)  # numpy in, numpy out


def test_integer_scene_padded_with_its_nodata_or_the_given_fill():
    vals = np.full((2, 2), 3, dtype=np.uint8)
    scene = raster(vals, Affine(30, 0, 1000, 0, -30, 2000)).rio.write_nodata(255)
    out = to_grid(scene, GRID)
    assert out.dtype == np.uint8
    assert out.values[0, 0] == 3 and out.values[3, 4] == 255
    out0 = to_grid(scene, GRID, fill=0)
    assert out0.values[3, 4] == 0


def test_no_overlap_is_an_error():
    scene = raster(np.ones((2, 2)), Affine(30, 0, 5000, 0, -30, 2000))
    with pytest.raises(GridError, match="does not overlap"):
        to_grid(scene, GRID)
    far = raster(np.ones((2, 2)), Affine(30, 0, 1000, 0, -30, 9000), crs="EPSG:32636")
    with pytest.raises(GridError, match="does not overlap"):
        to_grid(far, GRID)


def test_coarser_scene_by_integer_factor_is_repeated():
    # 60 m MSS-like pixels [[1, 2], [3, 4]] at the grid corner -> each becomes 2 x 2
    scene = raster(
        np.array([[1, 2], [3, 4]], np.float32), Affine(60, 0, 1000, 0, -60, 2000), chunks=1
    )
    with no_compute():
        out = to_grid(scene, GRID, method="average")
    assert not reprojected(out)
    n = np.nan
    expected = [[1, 1, 2, 2, n], [1, 1, 2, 2, n], [3, 3, 4, 4, n], [3, 3, 4, 4, n]]
    np.testing.assert_array_equal(out.values, np.array(expected, np.float32))


def test_coarser_scene_offset_by_one_fine_pixel():
    # edges on the 30 m lattice but not on a 60 m one: starts one 30 m pixel right and down
    scene = raster(np.array([[1, 2], [3, 4]], np.float32), Affine(60, 0, 1030, 0, -60, 1970))
    out = to_grid(scene, GRID)
    n = np.nan
    expected = [[n, n, n, n, n], [n, 1, 1, 2, 2], [n, 1, 1, 2, 2], [n, 3, 3, 4, 4]]
    np.testing.assert_array_equal(out.values, np.array(expected, np.float32))


def test_coarser_scene_starting_above_left_of_the_grid_is_cropped():
    # 60 m pixels starting one 30 m pixel above and left of the grid's corner: fine rows
    # come from coarse rows [0, 1, 1, 2], fine columns from coarse columns [0, 1, 1, 2, 2]
    vals = np.arange(12, dtype=np.float32).reshape(3, 4)
    scene = raster(vals, Affine(60, 0, 970, 0, -60, 2030), chunks=2)
    out = to_grid(scene, GRID)
    rows, cols = [0, 1, 1, 2], [0, 1, 1, 2, 2]
    np.testing.assert_array_equal(out.values, vals[np.ix_(rows, cols)])


def test_finer_scene_partly_outside_a_coarser_grid():
    # 30 m scene 3 x 3 starting at fine offset (1, 3) of a 60 m grid of 3 x 3 blocks:
    # it touches blocks rows 0-1, columns 1-2; block (0, 1) holds fine pixel (0, 0) only
    grid60 = CubeGrid(UTM37, Affine(60, 0, 1000, 0, -60, 2000), (3, 3))
    vals = np.arange(1, 10, dtype=np.float32).reshape(3, 3)
    scene = raster(vals, Affine(30, 0, 1090, 0, -30, 1970), chunks=2)
    out = to_grid(scene, grid60)
    n = np.nan
    expected = [
        [n, 1.0, (2 + 3) / 2],
        [n, (4 + 7) / 2, (5 + 6 + 8 + 9) / 4],
        [n, n, n],
    ]
    np.testing.assert_array_equal(out.values, np.array(expected, np.float32))


def test_finer_scene_is_block_averaged_nan_aware():
    grid60 = CubeGrid(UTM37, Affine(60, 0, 1000, 0, -60, 2000), (2, 2))
    n = np.nan
    vals = np.array(
        [
            [1, 3, 10, n],
            [5, 7, n, n],
            [n, n, 2, 2],
            [n, n, 2, 4],
        ],
        np.float32,
    )
    scene = raster(vals, Affine(30, 0, 1000, 0, -30, 2000), chunks=3)
    with no_compute():
        out = to_grid(scene, grid60)
    assert not reprojected(out)
    expected = np.array([[4.0, 10.0], [n, 2.5]], np.float32)
    np.testing.assert_array_equal(out.values, expected)
    assert out.dtype == np.float32


def test_finer_scene_mode_for_classes_and_nearest():
    grid60 = CubeGrid(UTM37, Affine(60, 0, 1000, 0, -60, 2000), (1, 3))
    classes = np.array([[3, 3, 4, 4, 2, 2], [4, 2, 3, 3, 4, 4]], np.uint8)
    scene = raster(classes, Affine(30, 0, 1000, 0, -30, 2000), chunks=(2, 3))
    out = to_grid(scene, grid60, method="mode", fill=0)
    assert not reprojected(out)
    np.testing.assert_array_equal(out.values, [[3, 3, 4]])
    # "average" on integer classes is taken as mode
    np.testing.assert_array_equal(to_grid(scene, grid60, fill=0).values, [[3, 3, 4]])
    near = to_grid(scene, grid60, method="nearest", fill=0)
    np.testing.assert_array_equal(near.values, [[2, 3, 4]])  # pixel (1, 1) of each block


def test_dataset_uses_average_for_floats_and_mode_for_classes():
    grid60 = CubeGrid(UTM37, Affine(60, 0, 1000, 0, -60, 2000), (1, 1))
    t = Affine(30, 0, 1000, 0, -30, 2000)
    ds = xr.Dataset(
        {
            "uCv": raster(np.array([[0.1, 0.2], [0.3, 0.4]], np.float32), t),
            "uCw": raster(np.array([[1.0, 2.0], [3.0, np.nan]], np.float32), t),
            "land_cover": raster(np.array([[3, 4], [4, 2]], np.uint8), t),
        }
    ).chunk({"y": 1, "x": 1})
    ds = ds.rio.write_crs(UTM37)
    ds.attrs["scene_id"] = "S1"
    with no_compute():
        out = to_grid(ds, grid60)
    out = out.compute()  # all variables in one graph: their tasks must not collide
    assert out.uCv.values[0, 0] == pytest.approx(0.25)
    assert out.uCw.values[0, 0] == pytest.approx(2.0)
    assert out.land_cover.values[0, 0] == 4
    assert out.attrs["scene_id"] == "S1"
    assert out.rio.crs == pyproj.CRS.from_epsg(32637)


def test_leading_dims_are_kept():
    vals = np.stack([np.full((2, 2), b, np.float32) for b in (1, 2, 3)])
    scene = raster(vals, Affine(30, 0, 1000, 0, -30, 2000), dims=("band", "y", "x"))
    scene = scene.assign_coords(band=["a", "b", "c"])
    out = to_grid(scene, GRID)
    assert out.dims == ("band", "y", "x")
    assert list(out.band.values) == ["a", "b", "c"]
    np.testing.assert_array_equal(out.values[:, 0, 0], [1, 2, 3])
    assert np.isnan(out.values[:, 3, 4]).all()


def _rasterio_reference(vals, src_transform, src_crs, grid, resampling):
    dst = np.full(grid.shape, np.nan, np.float32)
    rasterio.warp.reproject(
        vals,
        dst,
        src_transform=src_transform,
        src_crs=src_crs,
        dst_transform=grid.transform,
        dst_crs=grid.crs,
        resampling=resampling,
        src_nodata=np.nan,
        dst_nodata=np.nan,
    )
    return dst


def test_other_crs_is_reprojected_lazily_like_gdal():
    # a 30 m grid in UTM 37N near 39 E (its central meridian) and a scene in UTM 36N
    grid = CubeGrid(UTM37, Affine(30, 0, 500000, 0, -30, 760020), (40, 50))
    tr = pyproj.Transformer.from_crs(UTM37, "EPSG:32636", always_xy=True)
    x0, y0 = tr.transform(499000, 761000)
    t36 = Affine(30, 0, round(x0), 0, -30, round(y0))
    rng = np.random.default_rng(1)
    vals = rng.random((120, 120), dtype=np.float32)
    scene = raster(vals, t36, crs="EPSG:32636", chunks=50)
    with no_compute():
        out = to_grid(scene, grid, method="nearest")
    assert isinstance(out.data, da.Array)
    assert reprojected(out)
    expected = _rasterio_reference(vals, t36, "EPSG:32636", grid, rasterio.warp.Resampling.nearest)
    np.testing.assert_array_equal(out.values, expected)
    assert out.rio.crs == pyproj.CRS.from_epsg(32637)
    np.testing.assert_array_equal(out.x.values, grid.x)


def test_non_integer_ratio_is_reprojected_with_average():
    # 20 m -> 30 m (ratio 1.5): the general path, weighted average
    vals = np.arange(48, dtype=np.float32).reshape(6, 8)
    t20 = Affine(20, 0, 1000, 0, -20, 2000)
    scene = raster(vals, t20, chunks=3)
    out = to_grid(scene, GRID, method="average")
    assert reprojected(out)
    expected = _rasterio_reference(vals, t20, UTM37, GRID, rasterio.warp.Resampling.average)
    np.testing.assert_allclose(out.values, expected, rtol=1e-6)
    # the top-left 30 m pixel covers 1 x 1, 1 x 0.5, 0.5 x 1 and 0.5 x 0.5 of pixels
    # 0, 1, 8, 9: (0 * 1 + 1 * 0.5 + 8 * 0.5 + 9 * 0.25) / 2.25 = 3
    assert out.values[0, 0] == pytest.approx(3.0)


def test_to_grid_bad_inputs():
    t = Affine(30, 0, 1000, 0, -30, 2000)
    no_crs = xr.DataArray(
        np.ones((2, 2)), dims=("y", "x"), coords={"y": [1985, 1955], "x": [1015, 1045]}
    )
    with pytest.raises(GridError, match="no CRS"):
        to_grid(no_crs, GRID)
    wrong_dims = raster(np.ones((2, 2)), t).rename({"y": "row", "x": "col"})
    with pytest.raises(GridError):
        to_grid(wrong_dims, GRID)
    with pytest.raises(GridError, match="method"):
        to_grid(raster(np.ones((2, 2)), t), GRID, method="cubic")
    with pytest.raises(GridError, match="CubeGrid"):
        to_grid(raster(np.ones((2, 2)), t), GRID.to_dict())
    with pytest.raises(GridError, match="DataArray or Dataset"):
        to_grid(np.ones((2, 2)), GRID)
