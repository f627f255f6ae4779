"""A block's quality bit flags in one compiled (numba) pass.

:func:`quality_flags` gives, for a (band, y, x) block and its QA bands, what this numpy
sequence gives, bit for bit::

    flags = qa_flags(dn, qa, radsat, params=params, row_extent=row_extent,
                     col_offset=col_offset)
    flags |= np.where(classes == cloud_class, CLOUD, 0)  # when classes are given
    flags |= np.where(dark, DARK, 0)                     # when dark is given

reading each DN, QA word and QA_RADSAT word once and writing each flag once. The numpy
functions take a dozen passes over the block (one comparison per band and fill value, the
64-bit casts of the QA bands, a boolean temporary per bit rule, boolean scatters into the
flags, the SLC-gap rule over the whole block); this kernel works one image row at a time
in scratch rows that stay in cache, the SLC-gap rule included (it needs a whole row's fill
before it can tell a gap from the fill outside the footprint).

Exactness. The DN comparisons are numpy 2's: against a fill value or a saturation DN in
the type numpy promotes the pair to, with the value rounded to that type on the driver
(:mod:`~updm_dask.science.spectra` does the same), so that the kernel compares exactly in
float64. QA and QA_RADSAT words are read as int64, as :func:`qa_flags` casts them (a
negative word, an int16 QA band's nodata, is fill and otherwise 0).

The kernel is compiled on first use, one version per combination of DN, QA and QA_RADSAT
dtypes (native byte order; DN of :data:`~updm_dask.science.spectra.COMPILED_DTYPES`, QA
bands of :data:`COMPILED_QA_DTYPES`), and cached on disk (``cache=True``) where a cache
location is writable, so that later processes load it. It runs in the calling thread and
releases the GIL. Other inputs (float QA bands, 64-bit unsigned words, unknown QA kinds,
row extents that are not one integer pair per row, rules numpy would compare in another
way) go through the numpy functions, which also raise their errors for bad input.
"""

from __future__ import annotations

import functools
import math
import numbers
import threading
from typing import Any

import numba
import numpy as np

from ._compile import compile_kernel
from .masks import (
    CLOUD,
    CLOUD_SHADOW,
    DARK,
    FILL,
    NO_QA_CLOUD_TEST,
    SATURATED,
    SLC_GAP,
    MaskParams,
    qa_flags,
)
from .spectra import COMPILED_DTYPES, _compared

__all__ = ["COMPILED_QA_DTYPES", "quality_flags"]

#: QA and QA_RADSAT dtypes the kernel is compiled for: every integer type that converts to
#: int64 exactly (uint16 as delivered, int16 when a QA band is read signed).
COMPILED_QA_DTYPES = tuple(
    np.dtype(t) for t in (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.int64)
)
_QA_KIND_CODES = {"bqa": 0, "qa_pixel": 1}
# Dask's threads start their first blocks together: one compiles (or loads) the kernel,
# the others wait for it instead of compiling it again each.
_COMPILE_LOCK = threading.Lock()
# The dtype of the placeholder handed to the kernel for an absent QA band (never read).
_ABSENT = np.dtype(np.uint16)
# First column of a row without a valid pixel, as qa_flags's own row extent has it.
_NO_FIRST = np.iinfo(np.int64).max


def _kernel_source(  # pragma: no cover - compiled
    dn,
    fills,
    qmax,
    has_qa,
    qa,
    qa_kind,
    has_radsat,
    radsat,
    radsat_band_bits,
    radsat_fill_bits,
    slc_off,
    given_extent,
    extent,
    col_offset,
    has_classes,
    classes,
    cloud_class,
    has_dark,
    dark,
    out,
):
    n_bands, ny, nx = dn.shape
    n_fills = fills.shape[1]
    # Per pixel of the current row: FILL and SATURATED from the DN (bits of the flags).
    row = np.empty(nx, dtype=np.uint8)
    for y in range(ny):
        row[:] = 0
        for b in range(n_bands):
            values = dn[b, y]
            q = qmax[b]  # NaN when the band has no saturation rule: NaN >= q is False
            for x in range(nx):
                # every comparison in float64: exact for these dtypes (see the module doc)
                f = np.float64(values[x])
                row[x] |= np.uint8(not math.isfinite(f)) * FILL + np.uint8(f >= q) * SATURATED
            for j in range(n_fills):
                fill_value = fills[b, j]
                for x in range(nx):
                    row[x] |= np.uint8(np.float64(values[x]) == fill_value)
        first = _NO_FIRST
        last = -1
        o = out[y]
        for x in range(nx):
            flag = row[x]
            if has_radsat:
                r = np.int64(radsat[y, x])
                if r >= 0:
                    if r & radsat_fill_bits:
                        flag |= FILL
                    if r & radsat_band_bits:
                        flag |= SATURATED
            if has_qa:
                w = np.int64(qa[y, x])
                if w < 0:  # the nodata of a QA band read signed: fill, and no QA bit
                    flag |= FILL
                    w = 0
                if qa_kind == 0:  # C1 BQA
                    if w & 0b11:
                        flag |= FILL
                    if (w >> 2) & 0b11:
                        flag |= SATURATED
                    if (w >> 4) & 1 or ((w >> 11) & 0b11) == 3:
                        flag |= CLOUD
                    if ((w >> 7) & 0b11) == 3:
                        flag |= CLOUD_SHADOW
                else:  # C2 QA_PIXEL
                    if w & 1:
                        flag |= FILL
                    if w & 0b1110:
                        flag |= CLOUD
                    if w & 0b10000:
                        flag |= CLOUD_SHADOW
            else:
                flag |= NO_QA_CLOUD_TEST
            if flag & FILL:
                flag &= ~SATURATED & 0xFF  # saturation is told only of pixels with values
            else:
                if first == _NO_FIRST:
                    first = x
                last = x
            if has_classes and classes[y, x] == cloud_class:
                flag |= CLOUD
            if has_dark and dark[y, x]:
                flag |= DARK
            o[x] = flag
        if slc_off:
            # FILL pixels strictly between the row's first and last valid column, compared
            # in scene columns as qa_flags compares them (no subtraction that could wrap)
            if given_extent:
                lo = extent[y, 0]
                hi = extent[y, 1]
                offset = col_offset
            else:
                lo = first
                hi = last
                offset = 0
            for x in range(nx):
                column = offset + x
                if o[x] & FILL and column > lo and column < hi:
                    o[x] |= SLC_GAP


@functools.cache
def _compiled(dtype: np.dtype, qa_dtype: np.dtype, radsat_dtype: np.dtype) -> Any:
    """The kernel for DN, QA and QA_RADSAT of these dtypes, compiled once.

    One explicit signature per combination: C-contiguous blocks (the row loops are
    compiled for unit strides), read-only inputs.
    """
    from numba import types

    b, i8, f8, u1 = types.boolean, types.int64, types.float64, types.uint8

    def readonly(dt: Any, ndim: int) -> Any:
        return types.Array(dt, ndim, "C", readonly=True)

    signature = types.void(
        readonly(numba.from_dtype(dtype), 3),
        readonly(f8, 2),
        readonly(f8, 1),
        b,
        readonly(numba.from_dtype(qa_dtype), 2),
        i8,
        b,
        readonly(numba.from_dtype(radsat_dtype), 2),
        i8,
        i8,
        b,
        b,
        readonly(i8, 2),
        i8,
        b,
        readonly(u1, 2),
        i8,
        b,
        readonly(b, 2),
        types.Array(u1, 2, "C"),
    )
    return compile_kernel(_kernel_source, signature)


def _readonly(a: np.ndarray) -> np.ndarray:
    """``a`` C-contiguous and read-only, as the signature takes it (copied only if strided)."""
    view = np.ascontiguousarray(a).view()
    view.flags.writeable = False
    return view


def _int64(value: object) -> int | None:
    """``value`` as an int64 the kernel can take, or ``None`` (then numpy decides)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool | np.bool_):
        return None
    value = int(value)
    return value if -(2**62) < value < 2**62 else None


def _numpy_flags(
    dn: Any,
    qa: Any,
    radsat: Any,
    params: MaskParams,
    row_extent: Any,
    col_offset: Any,
    classes: Any,
    cloud_class: Any,
    dark: Any,
) -> np.ndarray:
    """The numpy sequence the kernel replaces (for the inputs it is not built for)."""
    flags = qa_flags(
        dn, qa, radsat, params=params, row_extent=row_extent, col_offset=col_offset
    ).astype(np.uint8)
    if classes is not None:
        flags = flags | np.where(classes == cloud_class, CLOUD, 0).astype(np.uint8)
    if dark is not None:
        flags = flags | np.where(dark, DARK, 0).astype(np.uint8)
    return flags


def quality_flags(
    dn: np.ndarray,
    qa: np.ndarray | None,
    radsat: np.ndarray | None,
    *,
    params: MaskParams,
    row_extent: np.ndarray | None = None,
    col_offset: int = 0,
    classes: np.ndarray | None = None,
    cloud_class: int | None = None,
    dark: np.ndarray | None = None,
) -> np.ndarray:
    """Quality bit flags of a block, in one pass (:func:`qa_flags` and two more bits).

    Parameters
    ----------
    dn : numpy.ndarray, shape (band, y, x)
        Digital numbers (scaled SR for Level-2), bands in the order of
        ``params.band_labels``; any memory layout.
    qa, radsat : numpy.ndarray, shape (y, x), or None
        Pixel QA (C1 ``BQA`` or C2 ``QA_PIXEL``) and C2 ``QA_RADSAT``.
    params : MaskParams
        The scene's rules (:func:`~updm_dask.science.masks.mask_params`).
    row_extent : numpy.ndarray, shape (y, 2), optional
        First and last valid column of every row of the whole scene, in scene columns, for
        the SLC-gap rule; default: computed from this block alone.
    col_offset : int
        Scene column of this block's first column (with ``row_extent``).
    classes : numpy.ndarray, shape (y, x), optional
        Land-cover codes; the CLOUD bit is added where they equal ``cloud_class`` (the
        pipeline's cloud mask of scenes without a QA band).
    cloud_class : int, optional
        The cloud code of ``classes``.
    dark : numpy.ndarray of bool, shape (y, x), optional
        Where MVIUPD is undefined; the DARK bit is added there.

    Returns
    -------
    numpy.ndarray of uint8, shape (y, x)
        ``qa_flags(dn, qa, radsat, params=params, row_extent=row_extent,
        col_offset=col_offset)``, or-ed with ``CLOUD`` where ``classes == cloud_class`` and
        with ``DARK`` where ``dark``, bit for bit.

    Raises
    ------
    SceneError
        As :func:`qa_flags`: ``dn`` not (band, y, x) with one band per label, ``qa`` or
        ``radsat`` of another shape than the block, a QA band of unknown kind.
    """
    dn = np.asarray(dn)

    def numpy_flags() -> np.ndarray:
        return _numpy_flags(
            dn, qa, radsat, params, row_extent, col_offset, classes, cloud_class, dark
        )

    n_bands = len(params.band_labels)
    if dn.ndim != 3 or dn.shape[0] != n_bands:
        return numpy_flags()  # which raises the error that names the shapes
    shape = dn.shape[1:]
    inputs = {}
    for name, extra, compiled in (
        ("qa", qa, COMPILED_QA_DTYPES),
        ("radsat", radsat, COMPILED_QA_DTYPES),
        ("classes", classes, (np.dtype(np.uint8),)),
        ("dark", dark, (np.dtype(bool),)),
    ):
        if extra is None:
            continue
        extra = np.asarray(extra)
        if extra.shape != shape or extra.dtype not in compiled or not extra.dtype.isnative:
            return numpy_flags()
        inputs[name] = extra
    if dn.dtype not in COMPILED_DTYPES or not dn.dtype.isnative:
        return numpy_flags()
    if qa is not None and params.qa_kind not in _QA_KIND_CODES:
        return numpy_flags()
    if len(params.fill_values) != n_bands or len(params.saturation_dn) != n_bands:
        return numpy_flags()
    band_bits, fill_bits = _int64(params.radsat_band_bits), _int64(params.radsat_fill_bits)
    cloud = _int64(cloud_class) if classes is not None else 0
    if band_bits is None or fill_bits is None or cloud is None:
        return numpy_flags()
    # numpy compares with None elementwise as False: as NaN, which equals no DN either
    compared = [
        [math.nan if value is None else _compared(dn.dtype, value) for value in values]
        for values in params.fill_values
    ]
    qmax = [math.nan] * n_bands  # NaN: no DN is >= it
    if radsat is None and params.level == "L1":
        for i, value in enumerate(params.saturation_dn):
            if value is not None:
                qmax[i] = _compared(dn.dtype, value)
    if any(v is None for values in compared for v in values) or any(v is None for v in qmax):
        return numpy_flags()
    extent = np.zeros((1, 2), dtype=np.int64)
    offset = 0
    if params.slc_off and row_extent is not None:
        given = np.asarray(row_extent)
        offset = _int64(col_offset)
        if (
            given.shape != (shape[0], 2)
            or given.dtype.kind not in "iu"
            or given.dtype == np.uint64
            or offset is None
        ):
            return numpy_flags()
        extent = given.astype(np.int64, copy=False)
    width = max([1, *(len(values) for values in compared)])
    fills = np.full((n_bands, width), np.nan)  # NaN pads the rows: it equals no DN
    for b, values in enumerate(compared):
        fills[b, : len(values)] = values
    out = np.empty(shape, dtype=np.uint8)
    if out.size == 0:
        return out
    placeholder = {
        "qa": np.zeros((1, 1), _ABSENT),
        "radsat": np.zeros((1, 1), _ABSENT),
        "classes": np.zeros((1, 1), np.uint8),
        "dark": np.zeros((1, 1), bool),
    }
    arrays = {name: inputs.get(name, placeholder[name]) for name in placeholder}
    with _COMPILE_LOCK:
        kernel = _compiled(dn.dtype, arrays["qa"].dtype, arrays["radsat"].dtype)
    kernel(
        _readonly(dn),
        _readonly(fills),
        _readonly(np.asarray(qmax, dtype=np.float64)),
        qa is not None,
        _readonly(arrays["qa"]),
        _QA_KIND_CODES.get(params.qa_kind, 0),
        radsat is not None,
        _readonly(arrays["radsat"]),
        band_bits,
        fill_bits,
        bool(params.slc_off),
        params.slc_off and row_extent is not None,
        _readonly(extent),
        offset,
        classes is not None,
        _readonly(arrays["classes"]),
        cloud,
        dark is not None,
        _readonly(arrays["dark"]),
        out,
    )
    return out
