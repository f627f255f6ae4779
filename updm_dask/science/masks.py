"""Pixel quality flags: fill, saturation, cloud, cloud shadow, SLC-off gaps, darkness.

One uint8 bit field per pixel, from the scene's digital numbers, its QA bands when it has
them, and its metadata:

=====  ==================  ==========================================================
bit    name                set where
=====  ==================  ==========================================================
1      FILL                any UPDM band is fill: DN 0 (Landsat fill, Level-1 and SR),
                           the raster's declared nodata when that is not a legal DN
                           (below), non-finite values; QA fill bits (C1 BQA bits 0-1
                           "designated fill" and "dropped pixel / terrain occlusion";
                           C2 QA_PIXEL bit 0; C2 QA_RADSAT "dropped pixel" (bit 9, MSS
                           TM ETM+) and "terrain occlusion" (bit 11, OLI)); negative QA
                           values (the nodata of QA bands stored as int16)
2      SATURATED           C2 QA_RADSAT bit of any UPDM band; C1 BQA radiometric
                           saturation (bits 2-3 non-zero); without a QA_RADSAT band, a
                           Level-1 DN at the band's QUANTIZE_CAL_MAX in any band. The
                           pixel is still decomposed and classified, with the saturated
                           values as lower bounds of its reflectance (most cloud cores
                           stay cloud); it is not clear (``CLEAR_MASK_BITS``)
4      CLOUD               C1 BQA bit 4 (cloud) or high cirrus confidence (bits 11-12 =
                           3); C2 QA_PIXEL bits 1-3 (dilated cloud, cirrus, cloud)
8      CLOUD_SHADOW        C1 BQA high cloud-shadow confidence (bits 7-8 = 3); C2
                           QA_PIXEL bit 4
16     SLC_GAP             ETM+ scenes acquired after 2003-05-31 (Scan Line Corrector
                           failure): FILL pixels that have a valid pixel somewhere to
                           their left AND somewhere to their right in the same image row,
                           i.e. gaps inside the scene footprint rather than the fill
                           outside it. These pixels keep their FILL bit.
32     NO_QA_CLOUD_TEST    the scene has no pixel QA band (MSS and pre-collection
                           products): cloud could not be assessed here; UPDM's own cloud
                           rule applies downstream, in classification
64     DARK                set by the pipeline, not by :func:`qa_flags`: the pixel is
                           darker than MVIUPD's dark limit (``S = uCw + uCv + uCs <
                           0.025``, :mod:`updm_dask.science.classify.index`), so its
                           MVIUPD is undefined (NaN). Dark water is still clear water:
                           this bit is not in ``CLEAR_MASK_BITS``
=====  ==================  ==========================================================

Declared nodata and saturation. Landsat Level-1 products mark fill with DN 0 (the lowest
calibrated DN is QUANTIZE_CAL_MIN = 1). Rasters re-written by other tools often also declare
a nodata value; when that value is a legal calibrated DN (between QUANTIZE_CAL_MIN and
QUANTIZE_CAL_MAX, as 255 declared on 8-bit TM/ETM+ bands or 65535 on 16-bit OLI bands) it
cannot be told apart from a bright pixel and is treated by the product convention: DN ==
QUANTIZE_CAL_MAX is saturation, not fill. A declared nodata outside that range (-32768 on
int16 copies, -9999 on SR stacks) is fill. For Level-2 products 0 and any declared nodata
are fill, and saturation comes from QA_RADSAT only (SR values are not DNs).

No-data is for fill only: the pipeline gives the land-cover class ``no_data`` to pixels
whose digital numbers are fill by the rule above (DN 0, a declared nodata that is not a
legal DN, non-finite values) and to pixels no rule matches, never to saturated ones. A QA
fill bit alone leaves the values and the class as they are (the FILL bit says not to use
them).

Bit meanings of the QA bands follow the USGS Landsat Collection 1 Level-1 QA band pages
(BQA) and the Collection 2 Level-1/Level-2 data format control books (QA_PIXEL, QA_RADSAT:
bit n-1 = band n for TM, ETM+ and OLI; bits 0-3 = the four MSS bands in spectral order).

Numpy only: :func:`qa_flags` is the kernel, :func:`mask_params` derives a scene's rules from
its metadata once. The pipeline runs the kernel inside its fused task per chunk;
:mod:`updm_dask.scenes.masks` reads a scene's rules from an opened scene and reduces the
SLC-gap row extents over the whole scene first, so that chunks see whole rows.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import SceneError
from .sensors import get_sensor

if TYPE_CHECKING:  # the science reads metadata records, it does not import their reader
    from ..metadata import SceneMetadata

__all__ = [
    "CLEAR_MASK_BITS",
    "CLOUD",
    "CLOUD_SHADOW",
    "DARK",
    "FILL",
    "FLAG_MASKS",
    "FLAG_MEANINGS",
    "NO_QA_CLOUD_TEST",
    "SATURATED",
    "SLC_FAILURE_DATE",
    "SLC_GAP",
    "MaskParams",
    "fill_mask",
    "mask_params",
    "qa_flags",
]

FILL = 1
SATURATED = 2
CLOUD = 4
CLOUD_SHADOW = 8
SLC_GAP = 16
NO_QA_CLOUD_TEST = 32
DARK = 64
#: A pixel is clear (usable) when ``flags & CLEAR_MASK_BITS == 0``.
CLEAR_MASK_BITS = FILL | SATURATED | CLOUD | CLOUD_SHADOW | SLC_GAP
FLAG_MASKS = (FILL, SATURATED, CLOUD, CLOUD_SHADOW, SLC_GAP, NO_QA_CLOUD_TEST, DARK)
FLAG_MEANINGS = "fill saturated cloud cloud_shadow slc_gap no_qa_cloud_test dark_mviupd_undefined"
#: The ETM+ Scan Line Corrector failed on this day; later acquisitions have gaps.
SLC_FAILURE_DATE = dt.date(2003, 5, 31)

QA_KINDS = ("bqa", "qa_pixel")
_RADSAT_DROPPED_PIXEL = 1 << 9
_RADSAT_TERRAIN_OCCLUSION = 1 << 11


@dataclass(frozen=True)
class MaskParams:
    """Everything the flag kernel needs to know about a scene (small, tokenizes by value).

    Parameters
    ----------
    band_labels
        Labels of the DN stack's bands, in its order.
    level
        ``"L1"`` or ``"L2"``.
    fill_values
        Per band: values that mean fill.
    saturation_dn
        Per band: DN at or above which a Level-1 band is saturated (QUANTIZE_CAL_MAX), or
        ``None``; used only when no QA_RADSAT band is given.
    qa_kind
        How to read the pixel QA band: ``"bqa"`` (Collection 1) or ``"qa_pixel"``
        (Collection 2); ``None`` when unknown (a QA band then raises).
    radsat_band_bits, radsat_fill_bits
        QA_RADSAT bits of the UPDM bands' saturation, and of dropped pixels / terrain
        occlusion.
    slc_off
        ETM+ acquired after the Scan Line Corrector failure.
    """

    band_labels: tuple[str, ...]
    level: str
    fill_values: tuple[tuple[float, ...], ...]
    saturation_dn: tuple[float | None, ...]
    qa_kind: str | None
    radsat_band_bits: int
    radsat_fill_bits: int
    slc_off: bool


def _per_band(nodata, n: int) -> list[float | None]:
    if nodata is None or np.isscalar(nodata):
        return [nodata] * n
    values = list(nodata)
    if len(values) != n:
        raise SceneError(f"nodata has {len(values)} values; expected one per band ({n})")
    return values


def mask_params(
    metadata: SceneMetadata,
    *,
    band_labels: Sequence[str] | None = None,
    nodata: float | Sequence[float | None] | None = None,
    qa_kind: str | None = None,
) -> MaskParams:
    """Derive the flag rules of a scene from its metadata.

    Parameters
    ----------
    metadata
        The scene's metadata.
    band_labels
        Labels of the DN stack's bands; default the sensor's UPDM bands.
    nodata
        The rasters' declared nodata: one value, one per band, or ``None``.
    qa_kind
        ``"bqa"`` or ``"qa_pixel"``; default from the metadata's collection / QA files.

    Returns
    -------
    MaskParams
    """
    sensor = get_sensor(metadata.sensor, metadata.satellite)
    labels = tuple(str(b) for b in (band_labels or sensor.band_labels))
    level = "L2" if metadata.is_level2 else "L1"
    fills: list[tuple[float, ...]] = []
    saturation: list[float | None] = []
    for label, declared in zip(labels, _per_band(nodata, len(labels)), strict=True):
        band = metadata.bands.get(label)
        values = [0.0]
        qmin = band.quantize_cal_min if band is not None else None
        qmax = band.quantize_cal_max if band is not None else None
        if declared is not None and not (isinstance(declared, float) and math.isnan(declared)):
            legal_dn = (
                level == "L1" and qmin is not None and qmax is not None and qmin <= declared <= qmax
            )
            if not legal_dn and float(declared) not in values:
                values.append(float(declared))
        fills.append(tuple(values))
        saturation.append(qmax if level == "L1" else None)
    if qa_kind is None:
        if metadata.collection == "C1" or "BQA" in metadata.qa_files:
            qa_kind = "bqa"
        elif metadata.collection == "C2" or "QA_PIXEL" in metadata.qa_files:
            qa_kind = "qa_pixel"
    elif qa_kind not in QA_KINDS:
        raise SceneError(f"qa_kind={qa_kind!r}: expected one of {', '.join(QA_KINDS)}")
    if sensor.name == "MSS":
        band_bits = sum(1 << i for i, label in enumerate(sensor.band_labels) if label in labels)
        fill_bits = _RADSAT_DROPPED_PIXEL
    else:
        band_bits = sum(1 << (int(label) - 1) for label in labels if label.isdigit())
        fill_bits = (
            _RADSAT_TERRAIN_OCCLUSION if sensor.name in ("OLI", "OLI-2") else _RADSAT_DROPPED_PIXEL
        )
    slc_off = sensor.name == "ETM+" and metadata.acquired.date() > SLC_FAILURE_DATE
    return MaskParams(
        band_labels=labels,
        level=level,
        fill_values=tuple(fills),
        saturation_dn=tuple(saturation),
        qa_kind=qa_kind,
        radsat_band_bits=band_bits,
        radsat_fill_bits=fill_bits,
        slc_off=slc_off,
    )


# --------------------------------------------------------------------------------------
# Kernel


def fill_mask(
    dn: np.ndarray, qa: np.ndarray | None, radsat: np.ndarray | None, params: MaskParams
) -> np.ndarray:
    """Where a block of pixels is fill (the FILL bit of :func:`qa_flags`, as bool).

    Parameters
    ----------
    dn
        (band, y, x) digital numbers, bands in the order of ``params.band_labels``.
    qa, radsat
        (y, x) pixel QA and QA_RADSAT, or ``None``.
    params
        The scene's :func:`mask_params`.

    Returns
    -------
    numpy.ndarray
        bool (y, x).
    """
    fill = np.zeros(dn.shape[1:], dtype=bool)
    for i in range(dn.shape[0]):
        band = dn[i]
        if band.dtype.kind == "f":
            fill |= ~np.isfinite(band)
        for value in params.fill_values[i]:
            fill |= band == value
    if radsat is not None:
        r = np.asarray(radsat).astype(np.int64)
        fill |= (r >= 0) & ((r & params.radsat_fill_bits) != 0)
    if qa is not None:
        q = np.asarray(qa).astype(np.int64)
        fill |= q < 0
        q = np.where(q < 0, 0, q)
        if params.qa_kind == "bqa":
            fill |= (q & 0b11) != 0
        elif params.qa_kind == "qa_pixel":
            fill |= (q & 1) != 0
    return fill


def _row_extent(valid: np.ndarray, col_offset: int = 0) -> np.ndarray:
    # (y, 2): first and last valid column of each row; (big, -1) for rows without any.
    ny, nx = valid.shape
    out = np.empty((ny, 2), dtype=np.int64)
    has = valid.any(axis=1)
    first = np.argmax(valid, axis=1)
    last = nx - 1 - np.argmax(valid[:, ::-1], axis=1)
    out[:, 0] = np.where(has, first + col_offset, np.iinfo(np.int64).max)
    out[:, 1] = np.where(has, last + col_offset, -1)
    return out


def qa_flags(
    dn: np.ndarray,
    qa: np.ndarray | None = None,
    radsat: np.ndarray | None = None,
    *,
    metadata: SceneMetadata | None = None,
    params: MaskParams | None = None,
    nodata: float | Sequence[float | None] | None = None,
    row_extent: np.ndarray | None = None,
    col_offset: int = 0,
) -> np.ndarray:
    """Quality bit flags of a block of pixels (numpy kernel).

    Parameters
    ----------
    dn
        (band, y, x) digital numbers (scaled SR for Level-2), bands in the order of the
        sensor's UPDM bands (or of ``params.band_labels``).
    qa
        (y, x) pixel QA: C1 ``BQA`` or C2 ``QA_PIXEL``; ``None`` when the scene has none.
    radsat
        (y, x) C2 ``QA_RADSAT``, or ``None``.
    metadata
        The scene's metadata (used to derive ``params`` when those are not given).
    params
        Precomputed :func:`mask_params` (wrappers pass these once per scene).
    nodata
        Declared nodata of the rasters (with ``metadata`` only).
    row_extent
        (y, 2) first and last valid column of every row of the WHOLE scene, in scene
        column numbers, for the SLC-gap rule; default: computed from this block alone.
    col_offset
        Scene column of this block's first column (with ``row_extent``).

    Returns
    -------
    numpy.ndarray
        uint8 (y, x) bit flags (see the module documentation).
    """
    if params is None:
        if metadata is None:
            raise SceneError("qa_flags needs the scene metadata (metadata=) or params=")
        params = mask_params(metadata, nodata=nodata)
    dn = np.asarray(dn)
    if dn.ndim != 3 or dn.shape[0] != len(params.band_labels):
        raise SceneError(
            f"qa_flags: dn has shape {dn.shape}; expected (band, y, x) with "
            f"{len(params.band_labels)} bands ({', '.join(params.band_labels)})"
        )
    for name, extra in (("qa", qa), ("radsat", radsat)):
        if extra is not None and np.shape(extra) != dn.shape[1:]:
            raise SceneError(
                f"qa_flags: {name} has shape {np.shape(extra)}; expected {dn.shape[1:]}"
            )
    fill = fill_mask(dn, qa, radsat, params)
    saturated = np.zeros(fill.shape, dtype=bool)
    cloud = np.zeros(fill.shape, dtype=bool)
    shadow = np.zeros(fill.shape, dtype=bool)
    if radsat is not None:
        r = np.asarray(radsat).astype(np.int64)
        saturated |= (r >= 0) & ((r & params.radsat_band_bits) != 0)
    elif params.level == "L1":
        for i, qmax in enumerate(params.saturation_dn):
            if qmax is not None:
                saturated |= dn[i] >= qmax
    if qa is not None:
        q = np.asarray(qa).astype(np.int64)
        q = np.where(q < 0, 0, q)
        if params.qa_kind == "bqa":
            saturated |= ((q >> 2) & 0b11) != 0
            cloud = (((q >> 4) & 1) == 1) | (((q >> 11) & 0b11) == 3)
            shadow = ((q >> 7) & 0b11) == 3
        elif params.qa_kind == "qa_pixel":
            cloud = (q & 0b1110) != 0
            shadow = (q & 0b10000) != 0
        else:
            raise SceneError(
                "qa_flags: a QA band was given but its kind is unknown (neither Collection 1 "
                "BQA nor Collection 2 QA_PIXEL); pass params with qa_kind"
            )
    flags = np.zeros(fill.shape, dtype=np.uint8)
    flags[fill] |= FILL
    flags[saturated & ~fill] |= SATURATED
    flags[cloud] |= CLOUD
    flags[shadow] |= CLOUD_SHADOW
    if qa is None:
        flags |= NO_QA_CLOUD_TEST
    if params.slc_off and fill.any():
        if row_extent is None:
            row_extent, col_offset = _row_extent(~fill), 0
        cols = col_offset + np.arange(fill.shape[1])
        extent = np.asarray(row_extent)
        inside = (cols[None, :] > extent[:, 0:1]) & (cols[None, :] < extent[:, 1:2])
        flags[fill & inside] |= SLC_GAP
    return flags
