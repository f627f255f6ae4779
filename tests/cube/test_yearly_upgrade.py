"""The per-year count of the yearly class, and cubes whose layers were built without it."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import zarr
from affine import Affine

from updm_dask import query as q
from updm_dask.cube import QUALITY_CLOUD, create_cube, yearly_summary
from updm_dask.geo import CubeGrid

GRID = CubeGrid("EPSG:32637", Affine(30, 0, 589035, 0, -30, 756165), (3, 4))


def test_yearly_summary_counts_the_observations_of_the_yearly_class():
    # pixel 0: [3, 3, 4] clear -> vegetation, 2 of 3; pixel 1: nothing clear;
    # pixel 2: [4, 2] clear -> urban (tie), 1 of 2; pixel 3: [2, 3, 3] -> vegetation, 2
    lc = np.array([[3, 0, 4, 2], [3, 1, 2, 3], [4, 0, 2, 3]], np.uint8)
    quality = np.array([[0, 1, 0, 0], [0, 0, QUALITY_CLOUD, 0], [0, 1, 0, 0]], np.uint8)
    out = yearly_summary(lc, quality, np.zeros(lc.shape, np.float32))
    assert out.shape == (4, 4)
    np.testing.assert_array_equal(out[0], [3, 0, 4, 3])
    np.testing.assert_array_equal(out[2], [3, 0, 2, 3])
    np.testing.assert_array_equal(out[3], [2, 0, 1, 2])


def _scene(sid: str, date: str, lc: int, cloudy_rows: int = 0) -> xr.Dataset:
    classes = np.full(GRID.shape, lc, np.uint8)
    quality = np.zeros(GRID.shape, np.uint8)
    classes[:cloudy_rows] = 1
    quality[:cloudy_rows] = QUALITY_CLOUD
    ds = xr.Dataset(
        {
            "land_cover": (("y", "x"), classes),
            "quality": (("y", "x"), quality),
            "mviupd": (("y", "x"), np.full(GRID.shape, 0.4, np.float32)),
        },
        coords={"y": GRID.y, "x": GRID.x},
    ).rio.write_crs(GRID.crs)
    ds = ds.assign_coords(scene_id=sid, time=np.datetime64(date, "us"))
    ds.attrs.update(sensor="TM", platform="LANDSAT_5")
    return ds


def test_layers_without_the_class_count_are_read_and_rebuilt_whole(tmp_path):
    cube = create_cube(tmp_path / "c", GRID)
    cube.append_scenes(
        [
            _scene("A", "2001-05-01", 3),
            _scene("B", "2001-07-01", 4),
            _scene("C", "2001-09-01", 3),
            _scene("D", "2002-06-01", 3, cloudy_rows=3),  # 2002 sees nothing
            _scene("E", "2003-06-01", 3),
        ],
        metadata={},
        message="scenes",
    )
    cube.rebuild_yearly()
    ds = cube.to_xarray()
    np.testing.assert_array_equal(ds["yearly_class_count"].values[:, 0, 0], [2, 0, 1])
    # what a cube built by the previous version holds: no yearly_class_count
    session = cube.repository.writable_session("main")
    del zarr.open_group(session.store, mode="r+")["yearly_class_count"]
    session.commit("layers of the previous version")
    assert "yearly_class_count" not in cube.to_xarray()
    # the queries still answer; the agreement needs the count, so it is unknown
    st = q.area_statistics(cube).set_index("year")
    assert st.loc[2002, "filled_fraction"] == 1.0 and st.loc[2002, "vegetation_fraction"] == 1
    full = q.complete_yearly(cube).compute()
    assert np.isnan(full["agreement"].values).all()
    assert (full["land_cover"].values == 3).all()
    x, y = GRID.x[0], GRID.y[0]
    assert "yearly_class_count" not in q.yearly_series(cube, x=x, y=y).columns
    # rebuilding one year rebuilds them all, so every year gets the count
    cube.rebuild_yearly([2003])
    assert cube.history()[0]["metadata"]["years"] == [2001, 2002, 2003]
    ds = cube.to_xarray()
    np.testing.assert_array_equal(ds["yearly_class_count"].values[:, 0, 0], [2, 0, 1])
    full = q.complete_yearly(cube).compute()
    # 2001: 2 of its 3 observations vegetation; 2002 from 2001 and 2003: (2 + 1) / (3 + 1)
    assert full["agreement"].values[:, 0, 0].tolist() == pytest.approx([2 / 3, 3 / 4, 1.0])
    assert "yearly_class_count" in q.yearly_series(cube, x=x, y=y).columns


def _mviupd_scene(sid: str, date: str, mviupd: np.ndarray) -> xr.Dataset:
    ds = _scene(sid, date, 3)
    return ds.assign(mviupd=(("y", "x"), mviupd.astype(np.float32)))


def test_a_float_median_built_before_is_read_as_it_is_then_packed_by_a_whole_rebuild(tmp_path):
    import dask
    from _format1 import float_yearly_median

    from updm_dask.cube import open_cube

    rng = np.random.default_rng(7)
    values = [np.round(rng.uniform(-0.5, 0.9, GRID.shape), 3) for _ in range(3)]
    first = [
        _mviupd_scene("A", "2001-05-01", values[0]),
        _mviupd_scene("B", "2003-05-01", values[1]),
    ]
    later = _mviupd_scene("C", "2003-08-01", values[2])  # 2003: two observations a pixel
    with dask.config.set(scheduler="sync"):
        old = create_cube(tmp_path / "old", GRID)
        old.append_scenes(first, metadata={}, message="first")
        with float_yearly_median():
            old.rebuild_yearly()
        new = create_cube(tmp_path / "new", GRID)  # the same scenes, built by this version
        new.append_scenes(first, metadata={}, message="first")
        new.rebuild_yearly()

        def median(cube):
            group = zarr.open_group(open_cube(cube.location).session().store, mode="r")
            return group["yearly_mviupd_median"]

        assert median(old).dtype == np.float32 and median(new).dtype == np.int32
        # read as the same float values (one observation a year: the value itself)
        a, b = old.to_xarray(), new.to_xarray()
        assert a.yearly_mviupd_median.dtype == b.yearly_mviupd_median.dtype == np.float32
        np.testing.assert_array_equal(a.yearly_mviupd_median.values, b.yearly_mviupd_median.values)
        x, y = GRID.x[1], GRID.y[2]
        pa, pb = q.yearly_series(old, x=x, y=y), q.yearly_series(new, x=x, y=y)
        np.testing.assert_array_equal(pa["yearly_mviupd_median"], pb["yearly_mviupd_median"])

        # rebuilding one year rebuilds them all, packed: the codes this version builds
        for cube in (old, new):
            cube.append_scenes([later], metadata={}, message="later")
            cube.rebuild_yearly([2003])
        assert old.history()[0]["metadata"]["years"] == [2001, 2003]
        assert new.history()[0]["metadata"]["years"] == [2003]
        assert median(old).dtype == median(new).dtype == np.int32
        np.testing.assert_array_equal(median(old)[:], median(new)[:])
        assert dict(median(old).attrs) == dict(median(new).attrs)
        got = old.to_xarray().yearly_mviupd_median.values
        np.testing.assert_array_equal(got[0], values[0].astype(np.float32))
        np.testing.assert_allclose(got[1], (values[1] + values[2]) / 2, rtol=1e-6, atol=1e-7)
