"""process_block's one-pass calibration: every layer as before, spectra read in place.

"Before" is computed here with the public numpy functions ``calibrate_block`` and
``fill_mask`` in the order process_block ran them (the calibration kernel replaced by
:func:`numpy_spectra`), never with the kernel under test.
"""

from __future__ import annotations

import dask
import numpy as np
import pytest
import xarray as xr

import updm_dask.pipeline as pipeline
from updm_dask.demo import make_demo_archive
from updm_dask.pipeline import Science, process_scene
from updm_dask.scenes import discover_scenes, open_scene
from updm_dask.science.calibration import calibrate_block
from updm_dask.science.decompose import solver
from updm_dask.science.masks import fill_mask


def numpy_spectra(dn, calibration, mask):
    """The numpy sequence process_block ran before the kernel, as it ran it."""
    reflectance = calibrate_block(dn, calibration, band_axis=0)
    fill = fill_mask(dn, None, None, mask)
    if fill.any():
        reflectance[:, fill] = np.nan
    return np.moveaxis(reflectance, 0, -1)


def assert_every_layer_identical(after: xr.Dataset, before: xr.Dataset, what: str) -> None:
    xr.testing.assert_identical(after, before)
    for name in after.data_vars:
        a, b = after[name].values, before[name].values
        assert a.dtype == b.dtype, (what, name)
        if a.dtype.kind == "f":
            bits = f"u{a.itemsize}"
            assert (a.view(bits) == b.view(bits)).all(), (what, name)
        else:
            assert np.array_equal(a, b), (what, name)


def _sources(shared_data, tmp_path):
    found = discover_scenes(shared_data / "landsat")
    real = found.scenes + found.duplicates
    assert len(real) == 12
    # the demo archive adds MSS (4 bands) and TM as the demo and benchmarks feed them
    demo = make_demo_archive(tmp_path / "archive", n_scenes=3, size=96)
    return real + discover_scenes(str(demo.root)).scenes


@pytest.mark.slow
@pytest.mark.parametrize("supplementary", [False, True], ids=["k3", "k4"])
def test_real_scenes_every_layer_identical_to_the_numpy_pipeline(
    shared_data, tmp_path, monkeypatch, supplementary
):
    science = Science(supplementary=supplementary)
    dtypes = set()
    compared = 0
    with dask.config.set(scheduler="synchronous"):
        for source in _sources(shared_data, tmp_path):
            # chunks of 64 px: several blocks per scene, edge blocks of odd shapes
            scene = open_scene(source, chunks=64)
            dtypes.add(scene["dn"].dtype.name)
            after = process_scene(scene, science).compute()
            with monkeypatch.context() as m:
                m.setattr(pipeline, "calibrated_spectra", numpy_spectra)
                before = process_scene(open_scene(source, chunks=64), science).compute()
            assert_every_layer_identical(after, before, source.id)
            assert int(np.isnan(after["uCw"].values).sum()) < after["uCw"].size
            compared += after["land_cover"].size
    assert dtypes == {"uint8", "uint16", "int16"}
    assert compared > 100_000


def test_the_nnls_reads_the_spectra_in_place(shared_data, monkeypatch):
    """The kernel's (y, x, band) C-contiguous spectra reach the NNLS kernel uncopied."""
    made, read = [], []
    real_spectra, real_run = pipeline.calibrated_spectra, solver._run_kernel

    def spectra(*args, **kwargs):
        made.append(real_spectra(*args, **kwargs))
        return made[-1]

    def run_kernel(a3, *args, **kwargs):
        read.append(a3)
        return real_run(a3, *args, **kwargs)

    monkeypatch.setattr(pipeline, "calibrated_spectra", spectra)
    monkeypatch.setattr(solver, "_run_kernel", run_kernel)
    source = discover_scenes(shared_data / "landsat" / "ethiopia-167055").scenes[0]
    with dask.config.set(scheduler="synchronous"):
        process_scene(open_scene(source, chunks=64), Science()).compute()
    assert len(made) == len(read) > 1
    for spectra_block, a3 in zip(made, read, strict=True):
        ny, nx, n = spectra_block.shape
        assert spectra_block.flags.c_contiguous and spectra_block.dtype == np.float32
        assert a3.shape == (1, n, ny * nx)
        # the very memory the calibration wrote, seen transposed: no copy in between
        assert a3.__array_interface__["data"][0] == spectra_block.__array_interface__["data"][0]
        assert np.shares_memory(a3, spectra_block)
        assert a3.strides == (ny * nx * n * 4, 4, n * 4)
