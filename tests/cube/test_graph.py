"""Work that follows a scene's pixels, not the grid: windows, fused block writes, one
snapshot per batch, and per-year layers rebuilt over the chunks a year's scenes touched."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import cloudpickle
import dask
import icechunk
import icechunk.store
import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr
import zarr
from affine import Affine
from dask.callbacks import Callback
from dask.utils import key_split

from updm_dask.cube import (
    CLEAR_COUNT_FILL,
    QUALITY_CLOUD,
    QUALITY_FILL,
    QUALITY_NOT_CLEAR,
    YEARLY_VARIABLES,
    EmptyScenesError,
    create_collection,
    create_cube,
    encode_layer,
    open_cube,
    tile_edge,
)
from updm_dask.cube._chunks import write_region
from updm_dask.cube._io import ForkArrays, sessions_of
from updm_dask.demo import make_demo_archive
from updm_dask.errors import GridError, SceneError
from updm_dask.geo import CubeGrid, to_grid
from updm_dask.geo.regrid import grid_window
from updm_dask.jobs.run import REGRID_METHODS, scene_on_grid
from updm_dask.pipeline import LAYERS, process_scene
from updm_dask.scenes import discover_scenes, open_scene

PARA = Path("landsat") / "para-224063-1988"
ETM_2017 = "LE07_L1TP_167055_20170316_20170411_01_T1"  # SLC-off: gaps in every band


class _TaskCount(Callback):
    """Counts the tasks a dask computation runs."""

    def __init__(self) -> None:
        super().__init__()
        self.tasks = 0

    def _pretask(self, key, dsk, state):
        self.tasks += 1


def _snapshot_files(location: Path) -> int:
    return len(list((location / "snapshots").iterdir()))


def _scale_model(chunks: int):
    """Cube chunks of ``chunks`` px read in blocks of 2 x 2 of them, as the defaults read
    1,024^2 blocks of four 512^2 chunks (dask config ``updm.chunks``)."""
    return dask.config.set({"updm.chunks.cube": chunks, "updm.chunks.spatial": 2 * chunks})


def _tasks_to_append(location: Path, grid: CubeGrid, source, chunks: int) -> tuple[int, Path]:
    cube = create_cube(location, grid, chunks=chunks)
    with _scale_model(chunks):
        placed = scene_on_grid(source, grid, cube_chunks=chunks)
    counter = _TaskCount()
    with dask.config.set(scheduler="sync"), counter:
        cube.append_scenes([placed], metadata={}, message="one scene", reject_empty=True)
    return counter.tasks, location


# --------------------------------------------------------------------------------------
# Item: a scene's graph grows with its pixels, not with the grid


@pytest.mark.slow
def test_a_scene_on_a_continental_grid_costs_what_it_costs_on_its_own_grid(shared_data, tmp_path):
    source = discover_scenes(str(shared_data / PARA)).scenes[0]
    scene = open_scene(source)
    tr, crs = scene.rio.transform(), str(scene.rio.crs)
    own = CubeGrid(crs, tr, (scene.sizes["y"], scene.sizes["x"]))
    # 131,072^2 pixels (17 G pixels; never allocated), the scene in its middle, off the
    # chunk lattice by a few pixels
    big = CubeGrid(
        crs,
        Affine(tr.a, 0, tr.c - (65_536 + 7) * tr.a, 0, tr.e, tr.f - (65_536 + 5) * tr.e),
        (131_072, 131_072),
    )
    own_tasks, own_path = _tasks_to_append(tmp_path / "own", own, source, 32)
    big_tasks, big_path = _tasks_to_append(tmp_path / "big", big, source, 32)
    assert own_tasks > 0
    assert big_tasks <= 1.5 * own_tasks, (own_tasks, big_tasks)

    # the same pixels are stored, at the scene's place on each grid
    small = zarr.open_group(open_cube(own_path).session().store, mode="r")
    large = zarr.open_group(open_cube(big_path).session().store, mode="r")
    r0, c0 = 65_536 + 5, 65_536 + 7
    ny, nx = own.shape
    for name in ("uCw", "mviupd", "land_cover", "quality"):
        np.testing.assert_array_equal(
            large[name][0, r0 : r0 + ny, c0 : c0 + nx], small[name][0], err_msg=name
        )
    # nothing outside the window was written: only chunks the scene touches are stored
    cube = open_cube(big_path)
    created, appended = (h["id"] for h in reversed(cube.history()[:2]))
    rows = range(r0 // 32, -(-(r0 + ny) // 32))
    cols = range(c0 // 32, -(-(c0 + nx) // 32))
    written = _changed_chunks(cube, created, appended, "land_cover")
    assert written and written <= {(0, i, j) for i in rows for j in cols}


@pytest.mark.slow
def test_a_scene_across_four_tiles_of_a_continental_tiled_grid_costs_what_it_costs_alone(
    shared_data, tmp_path
):
    """The (scene, tile) work items of a tiled job on a 131,072^2 grid in the default tiles
    run at most 1.5x the tasks of the same scene on a single cube of its own grid.

    Cube chunks of 32 px read in blocks of 64 px make the 310 x 287 px scene about 5 x 5
    blocks, as a 7,000^2 px Landsat scene is about 7 x 7 blocks of the default 1,024 px read
    chunks (of four 512 px cube chunks each).
    """
    source = discover_scenes(str(shared_data / PARA)).scenes[0]
    scene = open_scene(source)
    tr, crs = scene.rio.transform(), str(scene.rio.crs)
    ny, nx = scene.sizes["y"], scene.sizes["x"]
    own = CubeGrid(crs, tr, (ny, nx))
    edge = tile_edge()  # dask config updm.tiles.edge, what a job uses by default
    # the scene's north-west pixel at (r0, c0): it straddles the tile edge at 65,536
    # (= 16 tiles of 4,096) both ways, so it lies in four tiles, off their chunk lattice
    r0, c0 = 16 * edge - ny // 2 + 5, 16 * edge - nx // 2 + 7
    big = CubeGrid(
        crs, Affine(tr.a, 0, tr.c - c0 * tr.a, 0, tr.e, tr.f - r0 * tr.e), (131_072, 131_072)
    )
    own_tasks, own_path = _tasks_to_append(tmp_path / "own", own, source, 32)

    coll = create_collection(tmp_path / "continent", big)
    tiles = coll.tiling.tiles_of_window(*grid_window(scene, big))
    assert tiles == ["r15c15", "r15c16", "r16c15", "r16c16"]
    counter = _TaskCount()
    for tile in tiles:  # what jobs/tiles.py runs for the (scene, tile) pair
        with _scale_model(32):
            cube = coll.create_tile(tile)
        chunks = tuple(zarr.open_array(cube.session().store, path="uCw", mode="r").chunks[1:])
        with dask.config.set(scheduler="sync"), counter, _scale_model(32):
            placed = scene_on_grid(source, cube.grid, cube_chunks=chunks)
            cube.append_scenes([placed], metadata={}, message="one scene", reject_empty=True)
    assert own_tasks > 0
    assert counter.tasks <= 1.5 * own_tasks, (own_tasks, counter.tasks)

    # the same pixels, each in the tile that holds it
    assert coll.tiles() == tiles
    small = zarr.open_group(open_cube(own_path).session().store, mode="r")
    for tile in tiles:
        tr0, tc0, tnr, tnc = coll.tiling.tile_window(tile)
        rows = slice(max(r0, tr0), min(r0 + ny, tr0 + tnr))
        cols = slice(max(c0, tc0), min(c0 + nx, tc0 + tnc))
        part = zarr.open_group(coll.open_tile(tile).session().store, mode="r")
        for name in ("uCw", "land_cover", "quality"):
            np.testing.assert_array_equal(
                part[name][
                    0, rows.start - tr0 : rows.stop - tr0, cols.start - tc0 : cols.stop - tc0
                ],
                small[name][0, rows.start - r0 : rows.stop - r0, cols.start - c0 : cols.stop - c0],
                err_msg=f"{tile} {name}",
            )


# --------------------------------------------------------------------------------------
# Item: one task per block reads, computes, encodes and writes all layers of the block


class _TaskNames(Callback):
    """The key names of the tasks a dask computation runs."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def _pretask(self, key, dsk, state):
        self.names.append(key_split(key))


def _own_grid(source) -> CubeGrid:
    scene = open_scene(source)
    shape = (scene.sizes["y"], scene.sizes["x"])
    return CubeGrid(str(scene.rio.crs), scene.rio.transform(), shape)


def _append_counting_tasks(
    source, location: Path, edge: int, read: int | None = None
) -> tuple[list[str], int, Path]:
    """Append one real scene to a new cube of ``edge`` px chunks on its own grid, read in
    blocks of ``read`` px (default ``edge``); the names of the tasks run and the blocks."""
    read = edge if read is None else read
    grid = _own_grid(source)
    cube = create_cube(location, grid, chunks=edge)
    with dask.config.set({"updm.chunks.spatial": read}):
        placed = scene_on_grid(source, grid, cube_chunks=edge)
    tasks = _TaskNames()
    with dask.config.set(scheduler="sync"), tasks:
        cube.append_scenes([placed], metadata={}, message="one scene", reject_empty=True)
    blocks = _blocks_along(grid.ny, read) * _blocks_along(grid.nx, read)
    return tasks.names, blocks, location


def _blocks_along(size: int, read: int) -> int:
    """Blocks of ``read`` px along a side of ``size`` px from a block edge: the last one,
    when at most half a block, joins the one before it."""
    full, rest = divmod(size, read)
    return full + (1 if rest and (2 * rest > read or full == 0) else 0)


def _assert_stores_the_pipeline_values(source, location: Path) -> None:
    """The cube holds the codes of the layers process_scene computes, bit for bit."""
    expected = process_scene(open_scene(source)).compute()
    group = zarr.open_group(open_cube(location).session().store, mode="r")
    for name in LAYERS:
        np.testing.assert_array_equal(
            group[name][0], encode_layer(name, expected[name].values), err_msg=name
        )


def test_each_block_of_a_real_scene_is_one_task_from_its_files_to_the_cube(shared_data, tmp_path):
    source = discover_scenes(str(shared_data / PARA)).scenes[0]
    names, blocks, location = _append_counting_tasks(source, tmp_path / "c", 32, read=64)
    # 310 x 287 pixels in 64-pixel blocks, each of 2 x 2 cube chunks of 32 pixels (as the
    # defaults read 1,024-pixel blocks of four 512-pixel chunks): rows 4 x 64 + 54, columns
    # 4 x 64 + 31, the thin last 31 joined to the block before (5 x 4 blocks, not 5 x 5)
    assert blocks == 20
    # The reads of the band files, the kernel, the layer picks, their encoding and the
    # writes of every layer run in the block's one task (dask alone made a dozen tasks of
    # each block); one more task hands the blocks' results back.
    assert names.count("updm-write") == blocks, sorted(set(names))
    assert len(names) <= blocks + 1, sorted(set(names))
    _assert_stores_the_pipeline_values(source, location)


@pytest.mark.parametrize(
    ("read", "edge"),
    [(64, 64), (100, 96), (20, 32), (1024, 1024)],
    ids=["two chunks", "rounded down to whole chunks", "at least one chunk", "many chunks"],
)
def test_a_scene_is_cut_in_blocks_of_whole_cube_chunks_as_large_as_the_read_chunk(
    shared_data, read, edge
):
    # The scene off the cube's chunk lattice (its first pixel at row 37, column 45 of the
    # grid) and cube chunks of 32 px: every block edge inside the scene is a multiple of
    # ``edge`` in grid pixels, the largest multiple of 32 not above ``read`` (at least 32).
    source = discover_scenes(str(shared_data / PARA)).scenes[0]
    own = _own_grid(source)
    t = own.transform
    r0, c0 = 37, 45
    grid = CubeGrid(
        own.crs, Affine(t.a, 0, t.c - c0 * t.a, 0, t.e, t.f - r0 * t.e), (own.ny + 90, own.nx + 80)
    )
    with dask.config.set({"updm.chunks.spatial": read}):
        placed = scene_on_grid(source, grid, cube_chunks=32)
    layer = placed["uCw"].data
    for start, size, chunks in ((r0, own.ny, layer.chunks[0]), (c0, own.nx, layer.chunks[1])):
        inner = sorted(np.cumsum(chunks[:-1]) + start)
        lattice = list(range(-(-(start + 1) // edge) * edge, start + size, edge))
        if not lattice:  # the whole side within one block of the lattice
            assert chunks == (size,)
            continue
        # the lattice's edges, but for an end block of at most half a block, which joins
        # its neighbour (no edge between them); each side here crosses two edges or more
        assert len(lattice) >= 2
        thin_first = 2 * (lattice[0] - start) <= edge
        thin_last = 2 * (start + size - lattice[-1]) <= edge
        assert inner == lattice[int(thin_first) : len(lattice) - int(thin_last)], chunks
        assert sum(chunks) == size and max(chunks) <= 1.5 * edge, chunks


def test_a_scene_wide_reduction_stays_shared_by_the_fused_block_tasks(shared_data, tmp_path):
    # The SLC-off scene's gap rule reduces over whole rows: its blocks share that
    # reduction (and the reads it needs), computed once, not once per block.
    found = discover_scenes(str(shared_data / "landsat" / "ethiopia-167055")).scenes
    (source,) = [s for s in found if s.metadata.product_id == ETM_2017]
    names, blocks, location = _append_counting_tasks(source, tmp_path / "c", 32)
    assert names.count("updm-write") == blocks
    # the gap reduction's first step, once a block: the fill mask and the block's per-row
    # first and last valid columns in one task (dask names it after both steps), no
    # separate minimum and maximum tasks per block
    assert len([n for n in names if n.startswith("updm-fill")]) == blocks, sorted(set(names))
    assert not [n for n in names if n.startswith(("chunk_min", "chunk_max"))]
    # ... while the kernel, the layer picks and their encoding still run inside the writes
    assert not [n for n in names if n.startswith(("updm-process", "updm-layer"))]
    _assert_stores_the_pipeline_values(source, location)


# --------------------------------------------------------------------------------------
# Item: results identical to whole-grid placement (the demo, several sensors, 60 m MSS)


@pytest.mark.slow
def test_windowed_scenes_store_exactly_what_whole_grid_scenes_stored(tmp_path):
    archive = make_demo_archive(tmp_path / "demo", seed=3, n_scenes=6, size=48)
    demo = CubeGrid(archive.grid.crs, Affine(*archive.grid.transform), tuple(archive.grid.shape))
    t = demo.transform
    # a grid larger than the scenes, with chunk edges that cut through them
    grid = CubeGrid(demo.crs, Affine(t.a, 0, t.c - 23 * t.a, 0, t.e, t.f - 9 * t.e), (90, 100))
    sources = discover_scenes([str(archive.root)]).scenes
    whole, windowed = [], []
    for source in sources:
        layers = process_scene(open_scene(source))
        # padded to the whole grid, with the cube's fill (quality: the FILL bit)
        placed = to_grid(layers, grid, method=REGRID_METHODS, fill={"quality": QUALITY_FILL})
        placed.attrs = {k: v for k, v in layers.attrs.items() if not k.startswith("updm_")}
        whole.append(placed)
        windowed.append(scene_on_grid(source, grid, cube_chunks=16))
    assert all(w.attrs["grid_window"][2:] != list(grid.shape) for w in windowed)
    a = create_cube(tmp_path / "whole", grid, chunks=16)
    b = create_cube(tmp_path / "windowed", grid, chunks=16)
    a.append_scenes(whole, metadata={}, message="whole")
    b.append_scenes(windowed, metadata={}, message="windowed")
    a.rebuild_yearly()
    b.rebuild_yearly()
    da_, db = a.to_xarray().load(), b.to_xarray().load()
    assert set(da_.data_vars) == set(db.data_vars)
    for name in da_.data_vars:
        np.testing.assert_array_equal(da_[name].values, db[name].values, err_msg=name)
    # and the windowed cube holds fewer chunks: nothing of the padding was written
    for name in ("uCw", "land_cover"):
        za = zarr.open_array(a.session().store, path=name)
        zb = zarr.open_array(b.session().store, path=name)
        assert zb.nchunks_initialized == za.nchunks_initialized


# --------------------------------------------------------------------------------------
# Emptiness from the computed pixels; bad windows


GRID = CubeGrid("EPSG:32637", Affine(30, 0, 589035, 0, -30, 756165), (64, 64))


def _window_scene(sid: str, time: str, rows: slice, cols: slice, lc: int, q: int = 0):
    """Layers of a scene covering ``rows`` x ``cols`` of GRID, as to_grid(window=True)
    hands them over (a georeferenced source array regridded onto GRID)."""
    ny, nx = rows.stop - rows.start, cols.stop - cols.start
    t = GRID.transform
    src = xr.Dataset(
        {
            "land_cover": (("y", "x"), np.full((ny, nx), lc, np.uint8)),
            "quality": (("y", "x"), np.full((ny, nx), q, np.uint8)),
            "mviupd": (("y", "x"), np.full((ny, nx), 0.25 * lc, np.float32)),
        },
        coords={"y": GRID.y[rows], "x": GRID.x[cols]},
    ).rio.write_crs(GRID.crs)
    src = src.rio.write_transform(t @ Affine.translation(cols.start, rows.start))
    out = to_grid(src, GRID, method="nearest", window=True)
    out = out.assign_coords(scene_id=sid, time=np.datetime64(time, "us"))
    out.attrs.update(sensor="TM", platform="LANDSAT_5")
    return out


def test_emptiness_comes_from_the_pixels_not_from_listing_chunks(tmp_path, monkeypatch):
    cube = create_cube(tmp_path / "c", GRID, chunks=16)

    def no_listing(self, *args, **kwargs):
        raise AssertionError("chunk keys were listed")

    monkeypatch.setattr(icechunk.Session, "chunk_type", no_listing)
    full = _window_scene("FULL", "2001-01-01", slice(3, 30), slice(20, 61), lc=3)
    empty = _window_scene("EMPTY", "2001-02-01", slice(40, 50), slice(0, 10), lc=0)
    with pytest.raises(EmptyScenesError, match="EMPTY") as info:
        cube.append_scenes([full, empty], metadata={}, message="m", reject_empty=True)
    assert info.value.scene_ids == ("EMPTY",)
    assert cube.scene_ids() == set()
    cube.append_scenes([full], metadata={}, message="m", reject_empty=True)
    lc = cube.to_xarray().land_cover.values[0]
    assert (lc[3:30, 20:61] == 3).all() and lc.sum() == 3 * 27 * 41


def test_a_bad_window_is_refused_with_its_attribute_named(tmp_path):
    cube = create_cube(tmp_path / "c", GRID, chunks=16)
    scene = _window_scene("W", "2001-01-01", slice(3, 30), slice(20, 61), lc=3)
    for bad in ("junk", [1, 2, 3], [60, 0, 10, 10], [0.5, 0, 27, 41]):
        odd = scene.copy()
        odd.attrs["grid_window"] = bad
        with pytest.raises(GridError, match=r"'W'.*'grid_window' must be four whole numbers"):
            cube.append_scenes([odd], metadata={}, message="m")
    wrong = scene.copy()
    wrong.attrs["grid_window"] = [3, 20, 27, 40]
    with pytest.raises(GridError, match=r"shape \(27, 41\).*declares a window of \(27, 40\)"):
        cube.append_scenes([wrong], metadata={}, message="m")
    assert cube.scene_ids() == set()


def test_explicit_read_chunks_must_add_up_to_the_scene(shared_data):
    folder = shared_data / PARA
    with pytest.raises(SceneError, match=r"chunks\['y'\] add up to 300 pixels.*310"):
        open_scene(folder, chunks={"y": (100, 200), "x": 64})
    scene = open_scene(folder, chunks={"y": (10, 300), "x": (287,)})
    assert scene["dn"].chunks[1:] == ((10, 300), (287,))


# --------------------------------------------------------------------------------------
# One snapshot per batch


def test_a_batch_and_a_rebuild_each_write_one_snapshot(tmp_path):
    location = tmp_path / "c"
    cube = create_cube(location, GRID, chunks=16)
    before = _snapshot_files(location)
    cube.append_scenes(
        [
            _window_scene("A", "2001-01-01", slice(0, 20), slice(0, 64), lc=3),
            _window_scene("B", "2002-01-01", slice(10, 64), slice(5, 40), lc=2),
        ],
        metadata={},
        message="batch 1",
    )
    assert _snapshot_files(location) == before + 1
    cube.rebuild_yearly()  # the first build creates the arrays
    after_first_build = _snapshot_files(location)
    cube.append_scenes(
        [_window_scene("C", "2002-06-01", slice(0, 8), slice(0, 8), lc=4)],
        metadata={},
        message="batch 2",
    )
    assert _snapshot_files(location) == after_first_build + 1
    cube.rebuild_yearly([2002])
    assert _snapshot_files(location) == after_first_build + 2
    assert len(cube.history()) == 6  # initialise, create, 2 batches, 2 rebuilds


# --------------------------------------------------------------------------------------
# Per-year layers: one year's scenes, the chunks they touched


def _changed_chunks(cube, before: str, after: str, name: str) -> set[tuple[int, ...]]:
    diff = cube.repository.diff(from_snapshot_id=before, to_snapshot_id=after)
    return {tuple(c) for c in diff.updated_chunks.get("/" + name, set())}


def test_rebuilding_a_year_reads_its_scenes_and_writes_the_chunks_they_touched(tmp_path):
    with dask.config.set({"updm.chunks.yearly": 16}):
        cube = create_cube(tmp_path / "c", GRID, chunks=16)
        cube.append_scenes(
            [
                _window_scene("S1", "2001-03-01", slice(0, 32), slice(0, 32), lc=3),
                _window_scene("S2", "2003-03-01", slice(0, 64), slice(0, 64), lc=2),
            ],
            metadata={},
            message="first",
        )
        cube.rebuild_yearly()
        cube.append_scenes(
            [_window_scene("S3", "2001-08-01", slice(40, 56), slice(40, 64), lc=4)],
            metadata={},
            message="second",
        )
        # S2 (2003) is spoiled behind the cube's back: a rebuild of 2001 that read it
        # would not notice, but 2003's layer must not change either.
        session = cube.repository.writable_session("main")
        zarr.open_array(session.store, path="land_cover", mode="a")[1] = 4
        session.commit("spoil the 2003 scene")
        before = cube.snapshot_id
        cube.rebuild_yearly([2001])
        after = cube.snapshot_id

    ds = cube.to_xarray().load()
    assert list(ds.year.values) == [2001, 2003]
    expected = np.zeros((64, 64), np.uint8)
    expected[0:32, 0:32] = 3
    expected[40:56, 40:64] = 4
    np.testing.assert_array_equal(ds.yearly_land_cover.values[0], expected)
    # one clear observation where a 2001 scene lay, the fill (no scene) elsewhere
    np.testing.assert_array_equal(
        ds.yearly_clear_count.values[0], np.where(expected > 0, 1, CLEAR_COUNT_FILL)
    )
    np.testing.assert_array_equal(ds.yearly_land_cover.values[1], np.full((64, 64), 2))
    # written: the chunks S1 (rows/cols 0-31: blocks 0-1 x 0-1) and S3 (rows 40-55,
    # cols 40-63: blocks 2-3 x 2-3) touch, in the one year-chunk; none of the other 8
    touched = {(0, i, j) for i in (0, 1) for j in (0, 1)} | {
        (0, i, j) for i in (2, 3) for j in (2, 3)
    }
    for name in ("yearly_land_cover", "yearly_clear_count"):
        assert _changed_chunks(cube, before, after, name) == touched, name
    assert _changed_chunks(cube, before, after, "land_cover") == set()


# --------------------------------------------------------------------------------------
# Per-year layers: each chunk written once per rebuild, values as NumPy's


def _mixed_scene(sid: str, time: str, rows: slice, cols: slice, seed: int):
    """A scene with every class, clear and cloudy pixels and varied MVIUPD values."""
    scene = _window_scene(sid, time, rows, cols, lc=3)
    rng = np.random.default_rng(seed)
    shape = scene["land_cover"].shape
    scene["land_cover"][:] = rng.integers(0, 5, shape).astype(np.uint8)
    scene["quality"][:] = np.where(rng.random(shape) < 0.2, QUALITY_CLOUD, 0).astype(np.uint8)
    scene["mviupd"][:] = rng.normal(0.3, 0.4, shape).astype(np.float32)
    return scene


#: The classes of a clear observation: water, vegetation, non-vegetated (UPDM-method.md).
CLEAR = (2, 3, 4)


class _ChunkWrites:
    """Counts the chunk keys the Icechunk store is asked to set (this process)."""

    def __init__(self, monkeypatch) -> None:
        self.keys: list[str] = []
        original = icechunk.store.IcechunkStore.set

        async def counting(store, key, value):
            self.keys.append(key)
            return await original(store, key, value)

        monkeypatch.setattr(icechunk.store.IcechunkStore, "set", counting)

    def of(self, prefix: str) -> list[str]:
        return [k for k in self.keys if k.startswith(prefix + "/c/")]


def test_a_rebuild_writes_each_per_year_chunk_once_whatever_the_years_it_holds(
    tmp_path, monkeypatch
):
    years = ("2001", "2002", "2003")
    with dask.config.set({"updm.chunks.yearly": 16, "scheduler": "sync"}):
        cube = create_cube(tmp_path / "c", GRID, chunks=16)
        scenes = [
            _mixed_scene(f"S{y}", f"{y}-05-01", slice(0, 64), slice(0, 64), seed=i)
            for i, y in enumerate(years)
        ]
        cube.append_scenes(scenes, metadata={}, message="three years")
        writes = _ChunkWrites(monkeypatch)
        cube.rebuild_yearly()
    # the three years share each chunk (year-chunks hold up to 64 years): 16 chunks per
    # layer, each written once, not once per year (a read-modify-write of the chunk each)
    for name in ("yearly_land_cover", "yearly_mviupd_median", "yearly_clear_count"):
        keys = writes.of(name)
        assert len(keys) == len(set(keys)) == 16, (name, sorted(keys))
    ds = cube.to_xarray().load()
    for k, _ in enumerate(years):
        picked = ds.isel(time=k)
        expected = np.where(
            np.isin(picked.land_cover, CLEAR) & (picked.quality.values & QUALITY_NOT_CLEAR == 0),
            picked.mviupd.values,
            np.nan,
        )
        np.testing.assert_array_equal(ds.yearly_mviupd_median.values[k], expected)


def test_rebuilding_years_apart_stores_what_a_whole_rebuild_stores(tmp_path):
    first = [
        _mixed_scene("A", "2001-05-01", slice(0, 64), slice(0, 64), seed=1),
        _mixed_scene("B", "2002-05-01", slice(0, 64), slice(0, 64), seed=2),
        _mixed_scene("C", "2003-05-01", slice(0, 64), slice(0, 64), seed=3),
    ]
    # more scenes of 2001 and 2003, not of 2002: the years rebuilt are not neighbours
    later = [
        _mixed_scene("D", "2001-07-01", slice(8, 40), slice(0, 50), seed=4),
        _mixed_scene("E", "2001-09-01", slice(0, 64), slice(20, 64), seed=5),
        _mixed_scene("F", "2003-08-01", slice(30, 64), slice(10, 30), seed=6),
    ]
    with dask.config.set({"updm.chunks.yearly": 16}):
        step = create_cube(tmp_path / "step", GRID, chunks=16)
        step.append_scenes(first, metadata={}, message="first")
        step.rebuild_yearly()
        step.append_scenes(later, metadata={}, message="later")
        step.rebuild_yearly([2001, 2003])
        whole = create_cube(tmp_path / "whole", GRID, chunks=16)
        whole.append_scenes(first + later, metadata={}, message="all")
        whole.rebuild_yearly()
    a, b = step.to_xarray().load(), whole.to_xarray().load()
    for name in YEARLY_VARIABLES:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    # and the medians are NumPy's (several observations a pixel in 2001): stored as the
    # codes of NumPy's median, exactly (half steps of the scene layer's codes)
    t2001 = b.time.dt.year.values == 2001
    lc, q, mv = (b[n].values[t2001] for n in ("land_cover", "quality", "mviupd"))
    clear = np.isin(lc, CLEAR) & ((q & QUALITY_NOT_CLEAR) == 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmedian(np.where(clear, mv, np.nan), axis=0)
    got = b["yearly_mviupd_median"].values[0]
    np.testing.assert_array_equal(
        encode_layer("yearly_mviupd_median", got), encode_layer("yearly_mviupd_median", expected)
    )
    # an even count's median is the mean of two stored values, a half step of their codes
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)  # float32 rounding
    assert (clear.sum(axis=0) == 2).any() and (clear.sum(axis=0) == 3).any()


# --------------------------------------------------------------------------------------
# The batch's fork travels once; a block task hands back one fork


def _sessions_pickled(obj) -> int:
    """How many Icechunk stores or sessions pickling ``obj`` serialises (each one a fork)."""
    import io

    import icechunk

    found = 0

    class _Counting(pickle.Pickler):
        def reducer_override(self, o):
            nonlocal found
            if isinstance(o, icechunk.IcechunkStore | icechunk.Session):
                found += 1
            return NotImplemented

    _Counting(io.BytesIO()).dump(obj)
    return found


def test_the_batchs_fork_is_one_graph_entry_and_a_block_task_hands_back_one(tmp_path, monkeypatch):

    import updm_dask.cube._io as cube_io

    # the graph the scheduler is handed
    graphs: list[tuple[dict, list]] = []
    real = cube_io._run_graph

    def keep(get, dsk, keys):
        graphs.append((dict(dsk), list(keys)))
        return real(get, dsk, keys)

    monkeypatch.setattr(cube_io, "_run_graph", keep)
    cube = create_cube(tmp_path / "c", GRID, chunks=16)
    scene = _mixed_scene("S", "2001-05-01", slice(0, 64), slice(0, 64), seed=7)
    with dask.config.set(scheduler="sync"):
        cube.append_scenes([scene], metadata={}, message="m")
    ((dsk, sinks),) = graphs
    assert len(sinks) == 16  # 64 x 64 pixels in 16-pixel chunks
    (targets_key,) = [k for k in dsk if isinstance(k, str) and k.startswith("updm-targets-")]
    # every block task refers to the fork's entry, and nothing else is left to compute:
    # the reads, the kernel and the encoding run inside it
    assert set(dsk) == {targets_key, *sinks}
    for key in sinks:
        assert set(dsk[key].dependencies) == {targets_key}

    # A block task pickles no fork: the batch's uncommitted changes travel once per worker
    for key in sinks:
        assert _sessions_pickled(dsk[key]) == 0, key
    # ... in the one entry, where the arrays of all layers share one store
    assert _sessions_pickled(dsk[targets_key]) == 1
    # As a worker process runs it: the entry's value, unpickled, then the task.
    targets = pickle.loads(cloudpickle.dumps(dsk[targets_key]({})))
    task = pickle.loads(cloudpickle.dumps(dsk[sinks[0]]))
    forks, valid = task({targets_key: targets})
    # Three layers written through one fork: one copy comes back, not three
    assert len(forks) == 1
    assert valid > 0


def test_a_rebuild_sends_its_arrays_once_as_one_graph_entry(tmp_path, monkeypatch):

    import updm_dask.cube._io as cube_io

    with dask.config.set({"updm.chunks.yearly": 16, "scheduler": "sync"}):
        cube = create_cube(tmp_path / "c", GRID, chunks=16)
        scene = _mixed_scene("S", "2001-05-01", slice(0, 64), slice(0, 64), seed=3)
        cube.append_scenes([scene], metadata={}, message="m")
        graphs: list[dict] = []
        real = cube_io._run_graph

        def keep(get, dsk, keys):
            graphs.append(dict(dsk))
            return real(get, dsk, keys)

        monkeypatch.setattr(cube_io, "_run_graph", keep)
        cube.rebuild_yearly()
    (dsk,) = graphs
    (shared,) = [k for k in dsk if k.startswith("updm-shared-")]
    tasks = [k for k in dsk if k != shared]
    assert len(tasks) == 16  # 64 x 64 pixels in blocks of 16

    for key in tasks:
        assert set(dsk[key].dependencies) == {shared}
        assert _sessions_pickled(dsk[key]) == 0, key  # no task carries the fork
    assert _sessions_pickled(dsk[shared]) == 1  # the entry does, once for all its arrays
    # and what the tasks wrote is the per-year layer of the one scene
    ds = cube.to_xarray().load()
    np.testing.assert_array_equal(ds.yearly_clear_count.values[0] <= 1, True)
    assert (ds.yearly_land_cover.values[0] == ds.land_cover.values[0])[
        ds.yearly_clear_count.values[0] == 1
    ].all()


def _two_tasks_in_a_worker(blob: bytes) -> list[bytes]:
    """As a worker process runs two block tasks: one copy of the entry, two writes."""
    shared = pickle.loads(blob)
    out = []
    for value, rows in ((1, slice(0, 16)), (2, slice(16, 32))):
        arrays = shared.for_task()
        # as the block tasks write
        write_region(
            [arrays["a"]], (slice(0, 1), rows, slice(0, 16)), [np.full((1, 16, 16), value, "u1")]
        )
        out.append(pickle.dumps(sessions_of([arrays["a"]])))
    return out


def test_each_task_of_a_worker_hands_back_only_its_own_writes(tmp_path):
    # The tasks of a worker process share the one copy of the entry it received; handing
    # back that copy would send every earlier task's writes again with each result.
    import multiprocessing

    import icechunk

    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "r")))
    session = repo.writable_session("main")
    zarr.create_array(
        session.store, name="a", shape=(1, 32, 16), chunks=(1, 16, 16), dtype="u1", fill_value=0
    )
    session.commit("array")
    session = repo.writable_session("main")
    fork = session.fork()
    shared = ForkArrays({"a": zarr.open_array(fork.store, path="a", mode="a")})
    # a new process, as a dask worker is (Icechunk's runtime does not survive a fork)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        job = pool.apply_async(_two_tasks_in_a_worker, (pickle.dumps(shared),))
        first, second = job.get(timeout=120)
    (one,), (two,) = pickle.loads(first), pickle.loads(second)
    # the second task's fork holds its own chunk only, not the first task's too
    only_second = repo.writable_session("main")
    probe = only_second.fork()
    probe.merge(two)
    only_second.merge(probe)
    got = zarr.open_array(only_second.store, path="a", mode="r")[0]
    assert (got[16:] == 2).all() and (got[:16] == 0).all()
    # both, merged as the driver merges them, give both writes
    fork.merge(one, two)
    session.merge(fork)
    session.commit("both")
    got = zarr.open_array(repo.readonly_session("main").store, path="a", mode="r")[0]
    assert (got[:16] == 1).all() and (got[16:] == 2).all()


class _Untokenizable:
    """An argument that fails the moment dask tries to name a graph by its content."""

    def __dask_tokenize__(self):
        raise AssertionError("the graph was tokenized")

    def value(self) -> int:
        return 7


def _use(arg: _Untokenizable, k: int) -> int:
    return arg.value() * k


def test_graphs_reach_a_distributed_client_without_being_tokenized(client):
    # A client names a plain graph by tokenizing every task (dataclasses field by field,
    # partials pickled): 1 s of driver CPU per batch of eight 2,048^2 scenes. The cube's
    # graphs have unique keys already and go to the client untokenized.
    from dask._task_spec import Task

    from updm_dask.cube._io import _run_graph, run_tasks

    keys = [f"updm-test-{i}" for i in range(3)]
    dsk = {k: Task(k, _use, _Untokenizable(), i) for i, k in enumerate(keys)}
    with pytest.raises(AssertionError, match="tokenized"):
        client.get(dict(dsk), keys)  # what the client does with a plain graph
    assert list(_run_graph(client.get, dict(dsk), keys)) == [0, 7, 14]
    with dask.config.set(scheduler=client.get):
        assert run_tasks([(_use, (_Untokenizable(), 3))]) == [21]
    # dask's own schedulers take the graph as it is
    assert list(_run_graph(None, dict(dsk), keys)) == [0, 7, 14]


def test_on_a_cluster_each_scene_is_submitted_as_soon_as_its_graph_is_built(
    tmp_path, monkeypatch, client
):
    """The workers start on the batch's first scene while the driver builds the others'
    graphs; the cube holds exactly what one graph of the whole batch stores."""
    import updm_dask.cube._io as cube_io

    scenes = [
        _mixed_scene(f"S{i}", f"200{i}-05-01", slice(0, 64), slice(0, 64), seed=i) for i in range(3)
    ]
    with dask.config.set(scheduler="sync"):
        alone = create_cube(tmp_path / "one-graph", GRID, chunks=16)
        alone.append_scenes(scenes, metadata={}, message="m")
        expected = alone.to_xarray().load()

    events: list[str] = []
    targets: set[str] = set()
    real_graph, real_submit = cube_io._write_graph, cube_io._submit_graph

    def graph(*args, **kwargs):
        events.append("graph")
        return real_graph(*args, **kwargs)

    def submit(c, dsk, keys):
        events.append("submit")
        targets.update(k for k in dsk if isinstance(k, str) and k.startswith("updm-targets-"))
        return real_submit(c, dsk, keys)

    monkeypatch.setattr(cube_io, "_write_graph", graph)
    monkeypatch.setattr(cube_io, "_submit_graph", submit)
    with dask.config.set(scheduler=client):
        cube = create_cube(tmp_path / "streamed", GRID, chunks=16)
        cube.append_scenes(scenes, metadata={}, message="m")
    assert events == ["graph", "submit"] * 3
    assert len(targets) == 1  # one entry for the batch, in every scene's graph
    got = cube.to_xarray().load()
    for name in ("land_cover", "quality", "mviupd", "uCw", "uCv"):
        np.testing.assert_array_equal(got[name].values, expected[name].values, err_msg=name)
    np.testing.assert_array_equal(got.scene_id.values, expected.scene_id.values)


@pytest.mark.parametrize(
    ("chunks", "block", "joined"),
    [
        ((5, 64, 64, 10), 64, (69, 74)),
        ((5, 64, 64, 64, 10), 64, (69, 64, 74)),
        ((40, 64, 40), 64, (40, 64, 40)),
        ((31, 64), 64, (95,)),
        ((64, 31), 64, (95,)),
        # the last block does not join a block the first one joined: at most 1.5 blocks
        ((32, 64, 32), 64, (96, 32)),
        ((32, 32), 64, (64,)),
        ((5, 5), 64, (10,)),
        ((10,), 64, (10,)),
        # a 7,000-pixel side from grid index 300 in blocks of 1,024: 8 blocks -> 7
        ((724, 1024, 1024, 1024, 1024, 1024, 1024, 132), 1024, (724, *[1024] * 5, 1156)),
    ],
)
def test_a_thin_end_block_joins_its_neighbour(chunks, block, joined):
    from updm_dask.jobs.placing import merge_thin_ends

    assert merge_thin_ends(chunks, block) == joined


@pytest.mark.parametrize(
    ("start", "size", "extent", "blocks"),
    [
        # the scene wholly on the grid: the lattice with its thin ends joined
        (300, 7000, 131072, (724, *[1024] * 5, 1156)),
        # a 1,024 px scene half over a tile's first edge: the half off the grid is a block
        # of its own (never computed), the half on it one block, not one straddling block
        (-512, 1024, 4096, (512, 512)),
        # ... and over its last edge
        (3584, 1024, 4096, (512, 512)),
        # a thin sliver on the grid stays a block of its own: it cannot join what is off it
        (4000, 1000, 4096, (96, 904)),
        # longer than the grid on both sides
        (-300, 7000, 4096, (300, 1024, 1024, 1024, 1024, 2604)),
        # off the grid altogether (placing refuses it): the plain lattice
        (5000, 100, 4096, (100,)),
    ],
)
def test_a_grids_edges_are_block_edges(start, size, extent, blocks):
    from updm_dask.jobs.placing import grid_blocks

    assert grid_blocks(start, size, extent, 1024) == blocks
    assert sum(blocks) == size


def test_a_scene_cut_by_the_grids_edges_reads_no_block_across_them(shared_data, tmp_path):
    # The real scene runs 40 rows and 50 columns past the grid's first edges and past its
    # last ones: no block it is read in crosses an edge of the grid (a tile's edge), so a
    # tile's tasks read and compute only what the tile keeps, and the cube holds exactly
    # the pipeline's values of the part on the grid.
    from updm_dask.jobs.placing import _chunk_lattice

    source = discover_scenes(str(shared_data / PARA)).scenes[0]
    own = _own_grid(source)
    t = own.transform
    r0, c0, ny, nx = 40, 50, 192, 160  # grid rows 40..231 and columns 50..209 of the scene
    grid = CubeGrid(own.crs, Affine(t.a, 0, t.c + c0 * t.a, 0, t.e, t.f + r0 * t.e), (ny, nx))
    scene = open_scene(source)
    with dask.config.set({"updm.chunks.spatial": 64}):
        lattice = _chunk_lattice(scene, grid, 32)
    for chunks, first, extent in ((lattice["y"], r0, ny), (lattice["x"], c0, nx)):
        edges = set(np.cumsum(chunks).tolist())
        assert first in edges and first + extent in edges, chunks
        assert sum(chunks) == (own.ny if chunks is lattice["y"] else own.nx)
    cube = create_cube(tmp_path / "cut", grid, chunks=32)
    with dask.config.set({"updm.chunks.spatial": 64}):
        placed = scene_on_grid(source, grid, cube_chunks=32)
    with dask.config.set(scheduler="sync"):
        cube.append_scenes([placed], metadata={}, message="cut", reject_empty=True)
    expected = process_scene(open_scene(source)).compute()
    group = zarr.open_group(open_cube(tmp_path / "cut").session().store, mode="r")
    for name in LAYERS:
        want = encode_layer(name, expected[name].values[r0 : r0 + ny, c0 : c0 + nx])
        np.testing.assert_array_equal(group[name][0], want, err_msg=name)
