"""process_block's one-pass quality flags: every layer of the real scenes as before.

"Before" is computed here with the public numpy function ``qa_flags`` and the two
``np.where`` lines process_block ran after it (the kernel replaced by
:func:`numpy_quality_flags`), never with the kernel under test.
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
from updm_dask.scenes.masks import scene_mask_params
from updm_dask.science.masks import CLOUD, DARK, SLC_GAP, qa_flags


def numpy_quality_flags(
    dn,
    qa,
    radsat,
    *,
    params,
    row_extent=None,
    col_offset=0,
    classes=None,
    cloud_class=None,
    dark=None,
):
    """The numpy sequence process_block ran before the kernel, as it ran it."""
    flags = qa_flags(
        dn, qa, radsat, params=params, row_extent=row_extent, col_offset=col_offset
    ).astype(np.uint8)
    if qa is None:
        # process_block's own test, not the classes argument: the cloud rule of no-QA scenes
        flags = flags | np.where(classes == cloud_class, CLOUD, 0).astype(np.uint8)
    flags = flags | np.where(dark, DARK, 0).astype(np.uint8)
    return flags


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
    # the demo archive adds MSS (4 bands) and an SLC-off ETM+ scene with QA_PIXEL
    demo = make_demo_archive(tmp_path / "archive", n_scenes=3, size=96)
    return real + discover_scenes(str(demo.root)).scenes


@pytest.mark.slow
@pytest.mark.parametrize("chunks", [64, 37], ids=["chunks64", "chunks37"])
def test_real_scenes_every_layer_identical_to_the_numpy_pipeline(
    shared_data, tmp_path, monkeypatch, chunks
):
    kinds, slc_off, bits = set(), 0, {SLC_GAP: 0, CLOUD: 0, DARK: 0}
    compared = 0
    with dask.config.set(scheduler="synchronous"):
        for source in _sources(shared_data, tmp_path):
            # several blocks per scene, edge blocks of odd shapes; the SLC-off scenes get
            # the whole scene's row extent and each block's column offset
            scene = open_scene(source, chunks=chunks)
            params = scene_mask_params(scene)
            kinds.add(params.qa_kind if "qa" in scene else None)
            slc_off += params.slc_off
            after = process_scene(scene, Science()).compute()
            with monkeypatch.context() as m:
                m.setattr(pipeline, "quality_flags", numpy_quality_flags)
                before = process_scene(open_scene(source, chunks=chunks), Science()).compute()
            assert_every_layer_identical(after, before, source.id)
            quality = after["quality"].values
            for bit in bits:
                bits[bit] += int((quality & bit != 0).sum())
            compared += quality.size
    # the cases the pipeline meets: no QA band, C1 BQA, C2 QA_PIXEL, SLC-off with gaps
    assert kinds == {None, "bqa", "qa_pixel"}
    assert slc_off >= 2
    assert all(count > 0 for count in bits.values()), bits
    assert compared > 100_000
