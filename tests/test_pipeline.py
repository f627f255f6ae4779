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


@pytest.mark.parametrize("chunks", [16, 37, 4096])
def test_the_slc_row_extent_is_the_first_and_last_valid_column_of_every_whole_row(
    shared_data, chunks
):
    from updm_dask.scenes.masks import scene_mask_params, slc_extent_args
    from updm_dask.science.masks import fill_mask

    scene = open_scene(shared_data / ETHIOPIA / ETM_2017, chunks=chunks)
    params = scene_mask_params(scene)
    dn, qa = scene["dn"].data, scene["qa"].data
    extent, _, cols, _ = slc_extent_args(
        [dn, "byx", qa, "yx"],
        params,
        has_qa=True,
        has_radsat=False,
        x_chunks=dn.chunks[2],
        token="test",
    )
    got = extent.compute()
    # the reference, row by row, from the whole scene's fill mask
    valid = ~fill_mask(dn.compute(), qa.compute(), None, params)
    want = np.empty((valid.shape[0], 2), dtype=np.int64)
    for r, row in enumerate(valid):
        where = np.flatnonzero(row)
        want[r] = (where[0], where[-1]) if where.size else (np.iinfo(np.int64).max, -1)
    assert valid.any(axis=1).any() and not valid.all()  # rows with gaps and edges
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(cols.compute(), np.arange(valid.shape[1]))


# --------------------------------------------------------------------------------------
# Peak memory per task is bounded by the chunk, not by the scene


def _measure(source, chunks: int) -> tuple[list[int], int]:
    """(peak of traced memory within each kernel call in bytes, scene pixels)."""
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
    return kernel_peaks, scene.sizes["y"] * scene.sizes["x"]


@pytest.mark.slow
def test_peak_memory_is_bounded_by_the_chunk_not_the_scene(tm_archive, tmp_path):
    chunk = 64
    big = make_demo_archive(tmp_path / "big", n_scenes=3, size=1024)
    peaks_small, pixels_small = _measure(_tm_source(tm_archive), chunk)
    peaks_big, pixels_big = _measure(_tm_source(big), chunk)
    kernel_big = max(peaks_big)
    assert pixels_big == 16 * pixels_small == 1024 * 1024
    scene_output_bytes = len(LAYERS) * 4 * pixels_big  # the whole float32 layer stack
    chunk_output_bytes = len(LAYERS) * 4 * chunk * chunk
    # One kernel call never holds more than a modest multiple of its own chunk ...
    assert kernel_big < 40 * chunk_output_bytes
    # ... far below the scene's own output ...
    assert kernel_big < scene_output_bytes / 8
    # ... and does not grow with the scene (16x the pixels). tracemalloc counts every
    # thread's allocations, so a single call can catch a stray allocation of another
    # thread (a leftover event loop of an earlier test): compare the typical call.
    typical_small, typical_big = np.median(peaks_small), np.median(peaks_big)
    assert typical_big < 1.25 * typical_small + 64 * 1024


# --------------------------------------------------------------------------------------
# Saturated pixels are classified, not discarded (real scenes saturated in a copy)

# (scene folder, are bright blocks expected to come out as cloud?)
SATURATION_SCENES = [
    # Collection 1 TM with a BQA band
    (f"{ETHIOPIA}/LT05_L1TP_167055_20000309_20161214_01_T1", True),
    # pre-collection TM without any QA band: UPDM's cloud rule is the cloud mask
    (f"{ETHIOPIA}/LT51670552010352MLK00", True),
    # Collection 1 OLI, 16-bit DN with declared nodata 65535 (= QUANTIZE_CAL_MAX)
    (f"{ETHIOPIA}/LC08_L1TP_167055_20170308_20170317_01_T1", True),
    # ETM+ stored as int16 (nodata -32768); its high-gain bands saturate the visible far
    # below the NIR, so a block saturated in every band is classified, but not as cloud
    # (docs/science.md)
    ("landsat/marburg-195025/LE07_L1TP_195025_20010730_20170204_01_T1", False),
]
_UPDM_BANDS = {"TM": ("1", "2", "3", "4", "5", "7"), "OLI": ("2", "3", "4", "5", "6", "7")}
# A block saturated in every UPDM band (a cloud core) and one saturated in the visible
# bands only (a cloud edge).
_ALL_BANDS = (slice(4, 14), slice(4, 14))
_VISIBLE = (slice(24, 34), slice(18, 28))


def _saturated_copy(src, dst):
    """Copy a scene folder and set both blocks to the MTL's QUANTIZE_CAL_MAX of each band."""
    import os
    import re
    import shutil

    import rasterio

    dst.mkdir()
    for f in src.iterdir():
        shutil.copyfile(f, dst / f.name)  # copyfile: not the read-only mode of the source
    mtl = next(dst.glob("*_MTL.txt")).read_bytes().split(b"\0")[0].decode()
    sensor = "OLI" if "OLI" in re.search(r'SENSOR_ID = "([^"]+)"', mtl).group(1) else "TM"
    bands, visible = _UPDM_BANDS[sensor], _UPDM_BANDS[sensor][:3]
    written = []
    for f in sorted(dst.iterdir()):
        m = re.search(r"_B(\d+)\.tif$", f.name, re.IGNORECASE)
        if not m or m.group(1) not in bands:
            continue
        qmax = int(re.search(rf"QUANTIZE_CAL_MAX_BAND_{m.group(1)} = (\d+)", mtl).group(1))
        with rasterio.open(f) as band:
            profile, values = band.profile, band.read(1)
        values[_ALL_BANDS] = qmax
        if m.group(1) in visible:
            values[_VISIBLE] = qmax
        # GDAL counts the scene's _MTL.txt among a Landsat band's files and deletes it with
        # the band when the band is re-created in place: remove the band file alone first.
        os.remove(f)
        with rasterio.open(f, "w", **profile) as band:
            band.write(values, 1)
        written.append(values.shape)
    assert len(written) == len(bands)
    blocks = np.zeros(written[0], dtype=bool)
    blocks[_ALL_BANDS] = blocks[_VISIBLE] = True
    return blocks


@pytest.mark.parametrize(
    ("folder", "cloud"), SATURATION_SCENES, ids=["tm-c1", "tm-precollection", "oli-c1", "etm-int16"]
)
def test_saturated_pixels_are_classified_and_flagged_the_rest_unchanged(
    shared_data, tmp_path, folder, cloud
):
    from updm_dask.science.masks import CLOUD, FILL, NO_QA_CLOUD_TEST, SATURATED

    src = shared_data / folder
    blocks = _saturated_copy(src, tmp_path / src.name)
    before = process_scene(open_scene(src)).compute()
    after = process_scene(open_scene(tmp_path / src.name)).compute()
    q, lc = after["quality"].values, after["land_cover"].values
    # The blocks were not saturated before: the test really saturates them.
    assert not (before["quality"].values[blocks] & SATURATED).any()
    for block in (_ALL_BANDS, _VISIBLE):
        assert ((q[block] & SATURATED) != 0).all()
        assert not (q[block] & FILL).any()
        # classified: finite coefficients and a class, never no_data
        assert np.isfinite(after["uCw"].values[block]).all()
        assert (lc[block] != 0).all()
        if cloud:
            assert (lc[block] == 1).all()
            if (q[block] & NO_QA_CLOUD_TEST).all():  # no QA band: the class is the mask
                assert ((q[block] & CLOUD) != 0).all()
    # every other pixel is unchanged, bit for bit, in every layer
    for name in LAYERS:
        a, b = before[name].values[~blocks], after[name].values[~blocks]
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name


# --------------------------------------------------------------------------------------
# Building a scene's graph copies nothing, and changes nothing it was given


def test_labelling_and_placing_a_real_scene_copy_no_array_and_leave_the_inputs_alone(
    shared_data, monkeypatch
):
    folder = shared_data / ETHIOPIA / ETM_2017
    scene = open_scene(folder)
    grid = CubeGrid(str(scene.rio.crs), scene.rio.transform(), (scene.sizes["y"], 400))
    scene_before = scene.copy(deep=True)
    layers = process_scene(scene)
    layers_before = layers.copy(deep=True)

    copies = []
    real = da.Array.__deepcopy__

    def counted(self, memo):
        copies.append(self.name)
        return real(self, memo)

    monkeypatch.setattr(da.Array, "__deepcopy__", counted)
    again = process_scene(scene)
    placed = to_grid(again, grid, method=REGRID_METHODS, window=True)
    # rioxarray's write_crs/write_transform on a copy deep-copied every layer, twice
    assert copies == []
    monkeypatch.undo()
    # ... and writing the CRS in place touched neither the scene nor the layers handed in
    xr.testing.assert_identical(scene, scene_before)
    xr.testing.assert_identical(layers, layers_before)
    assert layers["uCw"].encoding == layers_before["uCw"].encoding
    assert scene["spatial_ref"].attrs == scene_before["spatial_ref"].attrs
    # the placed layers carry the grid's georeferencing
    assert placed.rio.crs == again.rio.crs
    assert placed.rio.transform() == grid.transform
    assert placed["uCw"].encoding.get("grid_mapping") == "spatial_ref"
