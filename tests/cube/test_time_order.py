"""Readers present a cube's time slots in acquisition order, whatever the commit order.

A real cube: the four Ethiopia scenes of the shared data (TM 2000, TM 2010, ETM+ 2017,
OLI 2017, one 101 x 101 grid) run through the pipeline and committed newest first, as a
job that found older scenes later would. Slots are stored in commit order, so the stored
time axis is not monotonic; ``Cube.to_xarray()`` and the queries' dataset must still read
it in time order so that ``.sel(time=slice(...))`` works.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from updm_dask import query as q
from updm_dask.cube import create_cube
from updm_dask.geo import CubeGrid
from updm_dask.jobs.run import scene_on_grid
from updm_dask.scenes import discover_scenes

pytestmark = pytest.mark.slow

ETHIOPIA = "landsat/ethiopia-167055"
GRID = CubeGrid("EPSG:32637", (30.0, 0.0, 589035.0, 0.0, -30.0, 756165.0), (101, 101))
# commit order: the 2017 pair, then 2010, then 2000
BATCHES = (("2017-01-01", "2017-12-31"), ("2010-01-01", "2010-12-31"), ("2000-01-01", "2000-12-31"))


@pytest.fixture(scope="module")
def cube(shared_data, tmp_path_factory):
    cube = create_cube(tmp_path_factory.mktemp("order") / "cube", GRID, chunks=64)
    for start, end in BATCHES:
        found = discover_scenes(str(shared_data / ETHIOPIA), start=start, end=end).scenes
        assert found, f"no Ethiopia scene from {start} to {end}"
        placed = [scene_on_grid(source, GRID) for source in found]
        cube.append_scenes(placed, metadata={"job_id": "order"}, message=f"{start[:4]}")
    cube.rebuild_yearly()
    return cube


def _years(ds: xr.Dataset) -> list[int]:
    return [int(str(t)[:4]) for t in ds["time"].values]


def test_the_stored_order_is_the_commit_order(cube):
    # the problem the readers solve: the slots as stored are not in time order
    stored = cube.to_xarray(sortby_time=False)
    assert _years(stored) == [2017, 2017, 2010, 2000]
    assert not stored.indexes["time"].is_monotonic_increasing
    with pytest.raises(KeyError):
        stored.sel(time=slice("2000-01-01", "2010-12-31"))


def test_to_xarray_reads_in_acquisition_order(cube):
    ds = cube.to_xarray()
    assert ds.indexes["time"].is_monotonic_increasing
    assert _years(ds) == [2000, 2010, 2017, 2017]
    assert [str(s) for s in ds["sensor"].values] == ["TM", "TM", "OLI", "ETM+"]
    window = ds.sel(time=slice("2000-01-01", "2010-12-31"))
    assert _years(window) == [2000, 2010]
    # the layers travel with their coordinates: the TM 2000 slot holds the TM 2000 scene
    stored = cube.to_xarray(sortby_time=False)
    first = stored.isel(time=int(np.flatnonzero(np.asarray(_years(stored)) == 2000)[0]))
    xr.testing.assert_identical(ds["land_cover"].isel(time=0).load(), first["land_cover"].load())
    assert str(ds["scene_id"].values[0]) == str(first["scene_id"].values)


def test_the_query_dataset_reads_in_acquisition_order(cube):
    view = q.Selection(cube).resolve("cube", query="test")
    ds = view.dataset
    assert ds.indexes["time"].is_monotonic_increasing
    assert _years(ds.sel(time=slice("2010-01-01", None))) == [2010, 2017, 2017]
    # scene ids, positions and layers of the dataset agree (queries index them together)
    assert list(view.scene_ids()) == [str(s) for s in ds["scene_id"].values]
    stored = cube.to_xarray(sortby_time=False)
    for i, sid in enumerate(view.scene_ids()):
        slot = int(np.flatnonzero(stored["scene_id"].values == sid)[0])
        np.testing.assert_array_equal(
            ds["uCv"].isel(time=i).values, stored["uCv"].isel(time=slot).values
        )
