"""Quality bit flags (:mod:`updm_dask.science.masks`) on hand-built digital numbers and QA.

Bit meanings are checked against the USGS QA band documentation (Collection 1 BQA,
Collection 2 QA_PIXEL and QA_RADSAT), written out value by value below; the real-data
checks of the same kernel are in ``tests/scenes/test_scenes.py``.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from updm_dask.errors import SceneError
from updm_dask.metadata import BandMetadata, SceneMetadata
from updm_dask.science.masks import (
    CLEAR_MASK_BITS,
    CLOUD,
    CLOUD_SHADOW,
    FILL,
    NO_QA_CLOUD_TEST,
    SATURATED,
    SLC_GAP,
    qa_flags,
)

TM_LABELS = ("1", "2", "3", "4", "5", "7")
OLI_LABELS = ("2", "3", "4", "5", "6", "7")
NOT_NO_QA = np.uint8(0xFF ^ NO_QA_CLOUD_TEST)


def _md(sensor="OLI", satellite=8, collection="C2", level="L1TP", date=(2016, 1, 1), qmax=65535):
    labels = TM_LABELS if sensor in ("TM", "ETM+") else OLI_LABELS
    bands = {
        label: BandMetadata(
            label=label,
            file_name=f"X_B{label}.TIF",
            quantize_cal_max=qmax,
            quantize_cal_min=1,
            sr_mult=2.75e-5 if level.startswith("L2") else None,
            sr_add=-0.2 if level.startswith("L2") else None,
        )
        for label in labels
    }
    return SceneMetadata(
        path="<hand-built>", format="odl", collection=collection, processing_level=level,
        scene_id="X", product_id="X", sensor=sensor, satellite=satellite,
        platform=f"LANDSAT_{satellite}",
        acquired=dt.datetime(*date, 10, tzinfo=dt.UTC), wrs_path=1, wrs_row=1, wrs_type=2,
        sun_elevation=45.0, sun_azimuth=120.0, earth_sun_distance=1.0, bands=bands,
        qa_files={}, crs_epsg=32633, corners=None, corners_latlon=None, grid_cell_size=30.0,
        shape=None, cloud_cover=None, groups={},
    )  # fmt: skip


def _dn(values, nbands=6, dtype=np.uint16):
    """(band, 1, n) stack: every band holds ``values`` (a 1-D list)."""
    row = np.asarray(values, dtype=dtype)[None, :]
    return np.repeat(row[None, :, :], nbands, axis=0)


def test_c1_bqa_decoding():
    md = _md(collection="C1")
    # Bit meanings: Landsat Collection 1 Level-1 QA band (USGS).
    qa = np.array(
        [[
            1,            # bit 0 designated fill
            2,            # bit 1 terrain occlusion (OLI) / dropped pixel (TM, ETM+)
            4,            # bits 2-3 = 1: 1-2 bands saturated
            12,           # bits 2-3 = 3: 5+ bands saturated
            16 + 96,      # bit 4 cloud, bits 5-6 high cloud confidence
            3 << 7,       # bits 7-8 = 3: high cloud-shadow confidence
            2 << 7,       # bits 7-8 = 2: medium shadow confidence -> not flagged
            3 << 11,      # bits 11-12 = 3: high cirrus confidence
            2720,         # OLI clear, low confidences
            672,          # TM/ETM+ clear, low confidences
        ]],
        dtype=np.uint16,
    )  # fmt: skip
    flags = qa_flags(_dn([100] * 10), qa, None, metadata=md)[0]
    assert list(flags) == [FILL, FILL, SATURATED, SATURATED, CLOUD, CLOUD_SHADOW, 0, CLOUD, 0, 0]
    # An int16 copy of a BQA band stores its nodata as -32768: fill.
    as_int16 = qa_flags(_dn([100]), np.array([[-32768]], np.int16), None, metadata=md)
    assert as_int16[0, 0] == FILL


def test_c2_qa_pixel_and_radsat_decoding():
    md = _md()
    qa = np.array(
        [[
            1,                  # bit 0 fill
            1 << 1,             # dilated cloud
            1 << 2,             # cirrus
            1 << 3,             # cloud
            1 << 4,             # cloud shadow
            1 << 5,             # snow: not a flag here
            21824,              # clear land: bits 6, 8, 10, 12, 14
            21952,              # clear water: 21824 + bit 7
        ]],
        dtype=np.uint16,
    )  # fmt: skip
    flags = qa_flags(_dn([500] * 8), qa, np.zeros_like(qa), metadata=md)[0]
    assert list(flags) == [FILL, CLOUD, CLOUD, CLOUD, CLOUD_SHADOW, 0, 0, 0]
    radsat = np.array([[1 << 0, 1 << 1, 1 << 6, 1 << 8, 1 << 11]], dtype=np.uint16)
    flags = qa_flags(_dn([500] * 5), np.zeros_like(radsat), radsat, metadata=md)[0]
    # OLI: band 1 (coastal) and band 9 are not UPDM bands; bit 11 = terrain occlusion.
    assert list(flags) == [0, SATURATED, SATURATED, 0, FILL]
    tm = _md("TM", 5, qmax=255)
    radsat = np.array([[1 << 5, 1 << 6, 1 << 9]], dtype=np.uint16)
    flags = qa_flags(_dn([50] * 3, dtype=np.uint8), np.zeros_like(radsat), radsat, metadata=tm)[0]
    # TM: bit 5 is band 6 (thermal, not UPDM); bit 6 band 7; bit 9 dropped pixel.
    assert list(flags) == [0, SATURATED, FILL]


def test_fill_and_saturation_from_digital_numbers():
    tm = _md("TM", 5, collection="C1", qmax=255)
    dn = _dn([0, 1, 254, 255], dtype=np.uint8)
    dn[3, 0, 1] = 0  # band 4 of pixel 1 is fill, the others are not
    flags = qa_flags(dn, None, None, metadata=tm, nodata=255)[0]
    # 255 is declared nodata but is QUANTIZE_CAL_MAX: a saturated pixel, not fill.
    assert list(flags & NOT_NO_QA) == [FILL, FILL, 0, SATURATED]
    assert np.all(flags & NO_QA_CLOUD_TEST)
    # A QA_RADSAT band decides saturation when there is one.
    radsat = np.zeros((1, 4), np.uint16)
    assert not np.any(qa_flags(dn, None, radsat, metadata=tm, nodata=255) & SATURATED)
    # int16 copies declare -32768: outside the DN range, so fill.
    int16 = _dn([-32768, 80], dtype=np.int16)
    assert list(qa_flags(int16, None, None, metadata=tm, nodata=-32768)[0] & FILL) == [FILL, 0]
    # Level-2: 0 and declared nodata (-9999 on SR stacks) are fill; no DN saturation.
    sr = _md(level="L2SP")
    l2 = _dn([0, -9999, 65535, 8000], dtype=np.int32)
    assert list(qa_flags(l2, None, None, metadata=sr, nodata=-9999)[0] & NOT_NO_QA) == [
        FILL, FILL, 0, 0,
    ]  # fmt: skip
    floats = _dn([np.nan, 0.3], dtype=np.float32)
    assert list(qa_flags(floats, None, None, metadata=sr)[0] & FILL) == [FILL, 0]


def test_slc_gap_rule_on_hand_built_rows():
    after = _md("ETM+", 7, collection="C1", date=(2017, 3, 16), qmax=255)
    before = _md("ETM+", 7, collection="C1", date=(2001, 7, 30), qmax=255)
    rows = np.array(
        [
            [9, 0, 0, 9, 9, 0],  # gap between valid pixels; fill at the right edge
            [0, 0, 9, 9, 9, 9],  # fill at the left edge only
            [0, 0, 0, 0, 0, 0],  # no valid pixel in the row
        ],
        dtype=np.uint8,
    )
    dn = np.repeat(rows[None], 6, axis=0)
    flags = qa_flags(dn, None, None, metadata=after) & NOT_NO_QA
    expected = np.array(
        [[0, FILL | SLC_GAP, FILL | SLC_GAP, 0, 0, FILL], [FILL, FILL, 0, 0, 0, 0], [FILL] * 6]
    )
    assert np.array_equal(flags, expected)
    assert not np.any(qa_flags(dn, None, None, metadata=before) & SLC_GAP)
    # Given whole-row extents, a block sees gaps whose valid neighbours lie outside it.
    block = dn[:, :1, 1:3]
    extent = np.array([[0, 4]])
    inside = qa_flags(block, None, None, metadata=after, row_extent=extent, col_offset=1)
    assert np.all(inside & SLC_GAP)
    assert CLEAR_MASK_BITS == FILL | SATURATED | CLOUD | CLOUD_SHADOW | SLC_GAP


def test_qa_flags_rejects_bad_shapes():
    md = _md()
    with pytest.raises(SceneError, match="6 bands"):
        qa_flags(np.zeros((4, 2, 2), np.uint16), metadata=md)
    with pytest.raises(SceneError, match="qa has shape"):
        qa_flags(np.zeros((6, 2, 2), np.uint16), np.zeros((3, 3), np.uint16), metadata=md)
    with pytest.raises(SceneError, match="metadata"):
        qa_flags(np.zeros((6, 2, 2), np.uint16))
