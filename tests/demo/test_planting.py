"""What each scene shows of the story: classes per scene, SLC-off gaps."""

from __future__ import annotations

import datetime as dt

import numpy as np
import rasterio

from updm_dask.metadata import read_mtl


def test_scene_truth_land_cover_matches_the_story(archive, archive_args):
    half = archive_args["size"] // 2
    for s in archive.scenes:
        truth = archive.scene_truth(s.product_id)
        story = archive.truth_class(s.year)
        if s.sensor == "MSS":
            blocks = story.reshape(half, 2, half, 2)
            uniform = (blocks == blocks[:, :1, :, :1]).all(axis=(1, 3))
            expected = np.where(uniform, blocks[:, 0, :, 0], 0)
        else:
            expected = story
        not_cloud = ~truth.cloud
        np.testing.assert_array_equal(truth.land_cover[not_cloud], expected[not_cloud])
        assert (truth.land_cover[truth.cloud] == 1).all()


def test_etm_plus_has_gap_stripes_only_after_the_slc_failure(archive, read_band):
    etm = [s for s in archive.scenes if s.sensor == "ETM+"]
    assert any(s.slc_off for s in etm) and any(not s.slc_off for s in etm)
    for s in etm:
        md = read_mtl(s.mtl_path)
        zero = np.stack([read_band(s, md, b) == 0 for b in md.bands])
        with rasterio.open(s.folder / md.qa_files["QA_PIXEL"]) as src:
            qa = src.read(1)
        if not s.slc_off:
            assert s.date <= dt.date(2003, 5, 31)
            assert not zero.any() and not np.any(qa & 1)
            continue
        assert s.date > dt.date(2003, 5, 31)
        assert (zero == zero[0]).all()  # the same gaps in every band
        gap = zero[0]
        assert 0.1 < gap.mean() < 0.45
        np.testing.assert_array_equal(qa == 1, gap)  # QA_PIXEL: fill and nothing else
        # Stripes run across the columns: every column has gaps, every row is mostly one
        # state, and gaps recur every 32 lines (960 m).
        assert gap.any(axis=0).all()
        row_state = gap.mean(axis=1)
        assert np.mean((row_state < 0.3) | (row_state > 0.7)) > 0.5
        np.testing.assert_array_equal(archive.scene_truth(s.product_id).fill, gap)
