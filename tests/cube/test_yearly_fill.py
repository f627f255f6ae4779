"""The per-year clear-observation count: its fill is not a count."""

from __future__ import annotations

import numpy as np
import pytest

from updm_dask.cube import (
    CLEAR_COUNT_FILL,
    QUALITY_CLOUD,
    QUALITY_FILL,
    YEARLY_VARIABLES,
    clear_count_fill,
    yearly_summary,
)
from updm_dask.errors import CubeError


def test_unseen_pixels_get_the_fill_and_seen_cloudy_ones_zero():
    # pixel 0: no scene covered it (FILL twice); pixel 1: covered, clouded twice;
    # pixel 2: one clear vegetation observation; pixel 3: FILL once, then clear water
    lc = np.array([[0, 1, 3, 0], [0, 1, 1, 2]], np.uint8)
    quality = np.array(
        [[QUALITY_FILL, QUALITY_CLOUD, 0, QUALITY_FILL], [QUALITY_FILL, QUALITY_CLOUD, 0, 0]],
        np.uint8,
    )
    out = yearly_summary(lc, quality, np.zeros(lc.shape, np.float32))
    np.testing.assert_array_equal(out[2], [CLEAR_COUNT_FILL, 0, 1, 1])
    assert YEARLY_VARIABLES["yearly_clear_count"].fill == CLEAR_COUNT_FILL == 65535


def test_counts_stop_below_the_fill():
    n = CLEAR_COUNT_FILL + 3
    lc = np.full((n, 1), 3, np.uint8)
    out = yearly_summary(lc, np.zeros((n, 1), np.uint8), np.zeros((n, 1), np.float32))
    assert out[2, 0] == CLEAR_COUNT_FILL - 1


def test_the_stored_fill_is_read_and_an_unknown_one_refused(tmp_path):
    import zarr

    new = zarr.create_array(tmp_path / "a.zarr", shape=(1,), dtype="uint16", fill_value=65535)
    old = zarr.create_array(tmp_path / "b.zarr", shape=(1,), dtype="uint16", fill_value=0)
    odd = zarr.create_array(tmp_path / "c.zarr", shape=(1,), dtype="uint16", fill_value=9)
    assert clear_count_fill(new) == CLEAR_COUNT_FILL
    assert clear_count_fill(old) == 0
    with pytest.raises(CubeError, match=r"cube 'c': yearly_clear_count has fill value 9; expected"):
        clear_count_fill(odd, "cube 'c'")
