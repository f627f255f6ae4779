"""The fused per-chunk pipeline: laziness, chunk-bounded memory, chunk-independent results."""

from __future__ import annotations

import tracemalloc

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

import updm_dask.pipeline as pipeline
from updm_dask.demo import make_demo_archive
from updm_dask.geo import CubeGrid, to_grid
from updm_dask.jobs.run import REGRID_METHODS, scene_on_grid
from updm_dask.pipeline import LAYERS, process_scene
from updm_dask.scenes import discover_scenes, open_scene
from updm_dask.science.masks import SLC_GAP

ETHIOPIA = "landsat/ethiopia-167055"
ETM_2017 = "LE07_L1TP_167055_20170316_20170411_01_T1"


class ComputeCalled(AssertionError):
    pass


def _raise_on_compute(dsk, keys, **kwargs):
    raise ComputeCalled(f"a dask compute of {keys!r} ran where none was expected")


@pytest.fixture(scope="module")
def tm_archive(tmp_path_factory):
    """A demo archive of 3 scenes (MSS, MSS, TM) on a 256 x 256 grid."""
    return make_demo_archive(tmp_path_factory.mktemp("archive"), n_scenes=3, size=256)


def _tm_source(archive):
    found = discover_scenes(str(archive.root), sensors="TM")
    assert len(found.scenes) == 1
    return found.scenes[0]


# --------------------------------------------------------------------------------------
# Nothing is read before a compute


def test_raise_on_compute_scheduler_really_raises():
    # The guard itself must be able to fail, or the laziness tests below prove nothing.
    with dask.config.set(scheduler=_raise_on_compute), pytest.raises(ComputeCalled):
        da.ones(4, chunks=2).sum().compute()


def test_every_stage_is_lazy(shared_data):
    folder = shared_data / ETHIOPIA / ETM_2017
    grid = CubeGrid("EPSG:32637", (30.0, 0.0, 589035.0, 0.0, -30.0, 756165.0), (101, 101))
    with dask.config.set(scheduler=_raise_on_compute):
        source = discover_scenes(str(folder)).scenes[0]
        scene = open_scene(source, chunks=32)
        layers = process_scene(scene)
        placed = to_grid(layers, grid, method=REGRID_METHODS)
        on_grid = scene_on_grid(source, grid, chunks=32)
    for result in (scene["dn"], *layers.data_vars.values(), *placed.data_vars.values()):
        assert isinstance(result.data, da.Array)
    assert set(on_grid.data_vars) == set(LAYERS)
    assert all(isinstance(v.data, da.Array) for v in on_grid.data_vars.values())
    # ... and the same graph does compute once a real scheduler is back.
    assert int(on_grid["land_cover"].isin([1, 2, 3, 4]).sum()) > 0


# --------------------------------------------------------------------------------------
# Results do not depend on the chunking (scene-wide mask rules)


def test_slc_gap_flags_and_layers_do_not_depend_on_chunks(shared_data):
    folder = shared_data / ETHIOPIA / ETM_2017
    small = process_scene(open_scene(folder, chunks=16)).compute()
    whole = process_scene(open_scene(folder, chunks=4096)).compute()
    gap = (small["quality"].values & SLC_GAP) != 0
    # The 2017 ETM+ crop crosses SLC-off gaps; otherwise this test would prove nothing.
    assert gap.sum() > 100
    for name in LAYERS:
        xr.testing.assert_identical(small[name], whole[name])


# --------------------------------------------------------------------------------------
# Peak memory per task is bounded by the chunk, not by the scene


def _measure(source, chunks: int) -> tuple[int, int]:
    """(largest peak of traced memory within one kernel call in bytes, scene pixels)."""
    kernel_peaks: list[int] = []
    original = pipeline.process_block

    def measured(*args, **kwargs):
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        try:
            return original(*args, **kwargs)
        finally:
            kernel_peaks.append(tracemalloc.get_traced_memory()[1] - before)

    scene = open_scene(source, chunks=chunks)
    stack = process_scene(scene)
    # A reduction over every layer: each chunk is read, processed and summed, nothing of
    # the scene's size needs to exist at once.
    totals = [da.nansum(stack[name].data.astype(np.float64)) for name in LAYERS]
    pipeline.process_block = measured
    tracemalloc.start()
    try:
        with dask.config.set(scheduler="synchronous"):
            values = dask.compute(*totals)
    finally:
        tracemalloc.stop()
        pipeline.process_block = original
    assert all(np.isfinite(v) for v in values)
    n_chunks = int(np.prod([len(c) for c in stack["uCw"].data.chunks]))
    assert len(kernel_peaks) == n_chunks
    return max(kernel_peaks), scene.sizes["y"] * scene.sizes["x"]


@pytest.mark.slow
def test_peak_memory_is_bounded_by_the_chunk_not_the_scene(tm_archive, tmp_path):
    chunk = 64
    big = make_demo_archive(tmp_path / "big", n_scenes=3, size=1024)
    kernel_small, pixels_small = _measure(_tm_source(tm_archive), chunk)
    kernel_big, pixels_big = _measure(_tm_source(big), chunk)
    assert pixels_big == 16 * pixels_small == 1024 * 1024
    scene_output_bytes = len(LAYERS) * 4 * pixels_big  # the whole float32 layer stack
    chunk_output_bytes = len(LAYERS) * 4 * chunk * chunk
    # One kernel call never holds more than a modest multiple of its own chunk ...
    assert kernel_big < 40 * chunk_output_bytes
    # ... far below the scene's own output ...
    assert kernel_big < scene_output_bytes / 8
    # ... and does not grow with the scene (16x the pixels).
    assert kernel_big < 1.25 * kernel_small + 64 * 1024
