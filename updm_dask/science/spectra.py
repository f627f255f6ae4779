"""A block's digital numbers to the spectra the NNLS reads, in one compiled (numba) pass.

:func:`calibrated_spectra` gives, for a (band, y, x) DN block, what this numpy sequence
gives, bit for bit::

    reflectance = calibrate_block(dn, calibration, band_axis=0)
    fill = fill_mask(dn, None, None, mask)
    reflectance[:, fill] = np.nan
    spectra = np.ascontiguousarray(np.moveaxis(reflectance, 0, -1))

reading each DN once and writing each float32 once, into the (y, x, band) C-contiguous
array :func:`~updm_dask.science.decompose.nnls_decompose` reads without a copy. The numpy
sequence takes a float32 cast, a multiply, an add, one comparison pass per fill rule and
band, a boolean scatter, and as many block-sized temporaries: about a tenth of a job's CPU
per scene, three times what this kernel takes.

Exactness. The arithmetic is numpy's: ``float32(DN) * gain`` rounded to float32, then
``+ shift`` rounded to float32 (both float32 constants, no fused multiply-add: numba does
not contract or reassociate without ``fastmath``). The comparisons are numpy 2's: a DN
against the float64 ``qcal_max`` in float64; against a fill value or ``nodata`` in the
type numpy promotes the pair to (a Python float meets a float32 array as a float32), with
the value rounded to that type on the driver, so that the kernel compares exactly in
float64. NaN is written as numpy's ``np.nan`` cast to float32.

The kernel is compiled on first use, one version per DN dtype (:data:`COMPILED_DTYPES`,
native byte order), and cached on disk (``cache=True``) where a cache location is
writable, so that later processes load it. It runs in the calling thread and releases the
GIL. Other dtypes (float16, 64-bit integers, byte-swapped input) and fill values numpy
would compare in another way go through the numpy sequence above.
"""

from __future__ import annotations

import functools
import math
import numbers
import threading
from typing import Any

import numba
import numpy as np

from ..errors import CalibrationError
from ._compile import compile_kernel
from .calibration import SceneCalibration, calibrate_block
from .masks import MaskParams, fill_mask

__all__ = ["COMPILED_DTYPES", "calibrated_spectra"]

#: DN dtypes the kernel is compiled for: Level-1 uint8/uint16, ESPA and re-written int16,
#: and whatever else a raster may hold that converts to float64 exactly.
COMPILED_DTYPES = tuple(
    np.dtype(t)
    for t in (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.float32, np.float64)
)
# Dask's threads start their first blocks together: one compiles (or loads) the kernel,
# the others wait for it instead of compiling it again each.
_COMPILE_LOCK = threading.Lock()


def _kernel_source(dn, gain, shift, qmax, nodata, fills, nan, out):  # pragma: no cover
    n_bands, ny, nx = dn.shape
    n_fills = fills.shape[1]
    # One image row at a time: each band's row is calibrated into a small scratch row (a
    # loop without branches that numba vectorises), its fill tests are or-ed into the
    # row's fill flags, and the row is then stored band-interleaved into the output.
    row_out = np.empty(nx, dtype=np.float32)
    row_fill = np.empty(nx, dtype=np.uint8)
    for y in range(ny):
        row_fill[:] = 0
        o = out[y].ravel()
        for b in range(n_bands):
            g = gain[b]
            s = shift[b]
            q = qmax[b]
            row = dn[b, y]
            for x in range(nx):
                v = row[x]
                # every comparison in float64: exact for these dtypes (see the module doc)
                f = np.float64(v)
                finite = math.isfinite(f)
                invalid = (f == 0.0) | (f == nodata) | (f >= q) | (not finite)
                value = np.float32(v) * g + s
                row_out[x] = nan if invalid else value
                row_fill[x] |= np.uint8(not finite)
            for j in range(n_fills):
                fill_value = fills[b, j]
                for x in range(nx):
                    row_fill[x] |= np.uint8(np.float64(row[x]) == fill_value)
            for x in range(nx):
                o[x * n_bands + b] = row_out[x]
        for x in range(nx):
            if row_fill[x]:
                for b in range(n_bands):
                    o[x * n_bands + b] = nan


@functools.cache
def _compiled(dtype: np.dtype) -> Any:
    """The kernel for DN of ``dtype`` (one of :data:`COMPILED_DTYPES`), compiled once.

    One explicit signature per dtype: a C-contiguous DN block (numba vectorises the row
    loops only for unit strides), read-only inputs.
    """
    from numba import types

    f4, f8 = types.float32, types.float64
    signature = types.void(
        types.Array(numba.from_dtype(dtype), 3, "C", readonly=True),
        types.Array(f4, 1, "C", readonly=True),
        types.Array(f4, 1, "C", readonly=True),
        types.Array(f8, 1, "C", readonly=True),
        f8,
        types.Array(f8, 2, "C", readonly=True),
        f4,
        types.Array(f4, 3, "C"),
    )
    return compile_kernel(_kernel_source, signature)


def _readonly(a: np.ndarray) -> np.ndarray:
    """``a`` as the compiled signature takes it (read-only), without copying the data."""
    view = a.view()
    view.flags.writeable = False
    return view


def _compared(dtype: np.dtype, value: object) -> float | None:
    """``value`` as numpy compares an array of ``dtype`` with it, as an exact float64.

    numpy 2 compares in the type it promotes the pair to: a Python float meets a float32
    array as float32, so the value is rounded to float32 first (1e300 becomes inf, as in
    numpy). Every DN of a compiled dtype converts to that type exactly, so comparing the
    DN and the rounded value in float64 gives numpy's answer. ``None`` when numpy would
    compare some other way (the caller then runs the numpy sequence).
    """
    if not isinstance(value, numbers.Real) or isinstance(value, bool | np.bool_):
        return None
    try:
        common = np.result_type(dtype, value)
    except (OverflowError, TypeError):  # e.g. a Python int out of the DN type's range
        return None
    if not np.can_cast(dtype, common, "safe"):
        return None
    if common.kind == "f" and common.itemsize <= 8:
        with np.errstate(over="ignore"):
            return float(np.asarray(value).astype(common))
    if common.kind in "iu" and abs(int(value)) < 2**53:
        return float(value)
    return None


def _numpy_spectra(dn: np.ndarray, calibration: SceneCalibration, mask: MaskParams) -> np.ndarray:
    """The numpy sequence the kernel replaces (for the inputs it is not built for)."""
    reflectance = calibrate_block(dn, calibration, band_axis=0)
    fill = fill_mask(dn, None, None, mask)
    if fill.any():
        reflectance[:, fill] = np.nan
    return np.ascontiguousarray(np.moveaxis(reflectance, 0, -1))


def calibrated_spectra(
    dn: np.ndarray, calibration: SceneCalibration, mask: MaskParams
) -> np.ndarray:
    """Reflectance spectra of a DN block, bands last, fill pixels NaN, in one pass.

    Parameters
    ----------
    dn : numpy.ndarray, shape (band, y, x)
        Digital numbers (or scaled surface reflectance), bands in the order of
        ``calibration.bands`` and ``mask.band_labels``; any memory layout (a block that is
        not C-contiguous is copied once into C order first).
    calibration : SceneCalibration
        The scene's constants (:func:`~updm_dask.science.calibration.scene_calibration`).
    mask : MaskParams
        The scene's fill rules (:func:`~updm_dask.science.masks.mask_params`).

    Returns
    -------
    numpy.ndarray of float32, shape (y, x, band), C-contiguous
        ``calibrate_block(dn, calibration, band_axis=0)`` with the bands moved last and
        every band NaN where ``fill_mask(dn, None, None, mask)`` is True, bit for bit.

    Raises
    ------
    CalibrationError
        ``dn`` is not 3-D, or its band count differs from the calibration's or the fill
        rules'.
    """
    dn = np.asarray(dn)
    n_bands = len(calibration.bands)
    if dn.ndim != 3 or dn.shape[0] != n_bands:
        raise CalibrationError(
            f"dn: shape {dn.shape}; expected (band, y, x) with {n_bands} bands "
            f"({', '.join(calibration.bands)})"
        )
    if len(mask.fill_values) != n_bands:
        raise CalibrationError(
            f"mask: fill values for {len(mask.fill_values)} bands; expected one entry per "
            f"band of the DN block ({n_bands})"
        )
    dtype = dn.dtype
    if dtype not in COMPILED_DTYPES or not dtype.isnative:
        return _numpy_spectra(dn, calibration, mask)
    nodata = calibration.nodata
    if nodata is None or (isinstance(nodata, float) and math.isnan(nodata)):
        nodata_value = math.nan  # calibrate_block ignores a NaN nodata; NaN equals nothing
    else:
        nodata_value = _compared(dtype, nodata)
    # numpy compares with None elementwise as False: as NaN, which equals no DN either
    compared = [
        [math.nan if value is None else _compared(dtype, value) for value in values]
        for values in mask.fill_values
    ]
    if nodata_value is None or any(v is None for values in compared for v in values):
        return _numpy_spectra(dn, calibration, mask)
    width = max([1, *(len(values) for values in compared)])
    fills = np.full((n_bands, width), np.nan)  # NaN pads the rows: it equals no DN
    for b, values in enumerate(compared):
        fills[b, : len(values)] = values
    gain, shift, qmax, _ = calibration.as_arrays()
    _, ny, nx = dn.shape
    out = np.empty((ny, nx, n_bands), dtype=np.float32)
    if out.size == 0:
        return out
    with _COMPILE_LOCK:
        kernel = _compiled(dtype)
    kernel(
        # a strided block (a view, a transposed array) is read once into C order: the
        # kernel's row loops are compiled for unit strides
        _readonly(np.ascontiguousarray(dn)),
        _readonly(gain),
        _readonly(shift),
        _readonly(qmax),
        nodata_value,
        _readonly(fills),
        # numpy's out[mask] = np.nan casts the float64 NaN: the same bits as this
        np.float32(np.nan),
        out,
    )
    return out
