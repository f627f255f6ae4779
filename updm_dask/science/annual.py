"""One year of a pixel's observations summarised in one pass: a compiled (numba) kernel.

:func:`summarise_year` reads each pixel's T observations (class code, quality bits, MVIUPD)
once and gives the yearly class, the median MVIUPD of the clear observations, the number of
clear observations and the number of them in the yearly class. The same summary with numpy
takes a dozen passes over the (T, pixels) arrays (a membership test, one pass per class, a
masked copy and a full sort for the median, the counts), several times the time of this one.

The class codes, quality bits and fill values are arguments: the cube
(:func:`updm_dask.cube.yearly_summary`) says which classes are clear and how ties break.

MVIUPD may come as float values or still packed as the cube stores it (integer codes, a
fill code for NaN, ``value = float32(code x scale + offset)`` computed in float64): packed,
each code is decoded as it is read and only the clear observations' values are kept, so no
decoded copy of the whole array is made.

The kernel is compiled on first use, one version per MVIUPD dtype (float32, int16), and
cached on disk (``cache=True``), so that later processes load it instead of compiling. It
runs in the calling thread and releases the GIL: the parallelism is the caller's (Dask runs
one block per thread or process).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numba
import numpy as np

from ._compile import compile_kernel

__all__ = ["summarise_year"]

#: Longest series sorted by insertion (a year has a few dozen scenes at most); longer ones,
#: which only synthetic inputs have, by Shell sort.
_INSERTION_MAX = 64


def _kernel_source(
    land_cover,
    quality,
    mviupd,
    slot_of,
    codes,
    not_clear,
    fill_bit,
    count_fill,
    class_cap,
    packed,
    code_fill,
    scale,
    offset,
    out,
):  # pragma: no cover - compiled
    """Summarise every column of (T, pixels) arrays into ``out`` (4, pixels) float32.

    ``slot_of[c]`` is 0 for a class code ``c`` that is never clear, else 1 + the class's
    place in the tie-break order; ``codes[s]`` is the code of slot ``s`` as float32 (0 for
    slot 0, no clear class).
    """
    n_obs, n_pix = land_cover.shape
    n_classes = codes.shape[0] - 1
    # counts[0]: the observations that are not clear; counts[1 + i]: clear ones of place i.
    # Zeroed here once, then by the loop that reads them, pixel after pixel.
    counts = np.zeros(n_classes + 1, dtype=np.int64)
    # zeros, not garbage: a pixel without clear values reads (and discards) values[-1]
    values = np.zeros(max(n_obs, 1), dtype=np.float32)
    zero = np.float32(0.0)
    two = np.float32(2.0)
    nan = np.float32(np.nan)
    for p in range(n_pix):
        n = 0
        seen = False
        # Branch-free: whether an observation is clear, and whether its value counts, is
        # unpredictable from one observation to the next; selects and a store that only
        # advances when it counts cost less than the mispredicted branches (~2x measured).
        for t in range(n_obs):
            q = np.int64(quality[t, p])
            seen |= (q & fill_bit) == 0
            # looked up whatever the quality, then selected: a lookup under the condition
            # compiles to a branch (measured 1.7x slower)
            slot = np.int64(slot_of[land_cover[t, p]])
            slot = slot if (q & not_clear) == 0 else 0
            counts[slot] += 1
            v = mviupd[t, p]
            if packed:  # the same for every observation: predicted
                # as the cube decodes: float64 arithmetic, then float32 (NaN: the fill code)
                x = np.float32(np.float64(v) * scale + offset)
                counted = (slot != 0) & (v != code_fill)
            else:
                x = np.float32(v)
                counted = (slot != 0) & (x == x)  # not NaN
            values[n] = x
            n += counted
        # The yearly class: strictly more clear observations than every class before it.
        # Selects, not branches, here and below: which class wins, whether a pixel has a
        # clear value and whether it was seen are unpredictable from pixel to pixel, and
        # the mispredictions were most of a pixel's time when a year has one or two scenes.
        best = 0
        best_count = 0
        n_clear = 0
        for i in range(1, n_classes + 1):
            c = counts[i]
            counts[i] = 0
            n_clear += c
            better = c > best_count
            best = i if better else best
            best_count = c if better else best_count
        counts[0] = 0
        out[0, p] = codes[best]
        if n > 1:
            if n <= _INSERTION_MAX:
                # Insertion sort without branches: inserting x into the sorted values[:a]
                # makes values[k] = max(values[k - 1], min(values[k], x)). No NaN is among
                # them; equal values (+0 and -0 too) may swap, which the median below
                # cannot tell apart.
                for a in range(1, n):
                    x = values[a]
                    for k in range(a, 0, -1):
                        values[k] = max(values[k - 1], min(values[k], x))
                    values[0] = min(values[0], x)
            else:
                # Shell sort (gaps 3h + 1): numba's own sort would double the compile time
                gap = 1
                while gap < n // 3:
                    gap = 3 * gap + 1
                while gap > 0:
                    for a in range(gap, n):
                        x = values[a]
                        k = a
                        while k >= gap and values[k - gap] > x:
                            values[k] = values[k - gap]
                            k -= gap
                        values[k] = x
                    gap //= 3
        # n == 0 reads values[-1] (wrapped around), then takes NaN instead
        low = values[(n - 1) // 2]
        high = values[n // 2]
        # numpy's mean of the two middle values, in float32: its sum starts from +0 (so a
        # median of zeros is +0, never -0), then halves
        median = (low + high + zero) / two
        out[1, p] = median if n > 0 else nan
        # every observation has the fill bit (or there is none): the fill count
        out[2, p] = np.float32(min(n_clear, count_fill - 1) if seen else count_fill)
        out[3, p] = np.float32(min(best_count, class_cap))


@functools.cache
def _compiled(value_dtype: np.dtype) -> Any:
    """The kernel for MVIUPD of this dtype (float32 values or int16 codes), compiled once.

    One explicit signature (any memory layout, read-only inputs) per MVIUPD dtype: one
    compiled version serves every layout of the arguments.
    """
    from numba import types

    u8 = types.uint8
    i8 = types.int64
    signature = types.void(
        types.Array(u8, 2, "A", readonly=True),
        types.Array(u8, 2, "A", readonly=True),
        types.Array(numba.from_dtype(value_dtype), 2, "A", readonly=True),
        types.Array(u8, 1, "C", readonly=True),
        types.Array(types.float32, 1, "C", readonly=True),
        i8,
        i8,
        i8,
        i8,
        types.boolean,
        i8,
        types.float64,
        types.float64,
        types.Array(types.float32, 2, "C"),
    )
    return compile_kernel(_kernel_source, signature)


def _readonly(a: np.ndarray) -> np.ndarray:
    """``a`` as the compiled signature takes it (read-only), without copying the data."""
    view = a.view()
    view.flags.writeable = False
    return view


def summarise_year(
    land_cover: np.ndarray,
    quality: np.ndarray,
    mviupd: np.ndarray,
    *,
    classes: Sequence[int],
    not_clear: int,
    fill_bit: int,
    count_fill: int,
    class_cap: int,
    packed: tuple[int, float, float] | None = None,
) -> np.ndarray:
    """Per pixel: the yearly class, the median MVIUPD, the clear count and the class count.

    Axis contract: three arrays ``(time, ...)`` of one shape -> ``(4, ...)`` float32.

    An observation is clear when its class is one of ``classes`` and its quality has none
    of the bits ``not_clear``. Per pixel:

    - class: the class of ``classes`` with the most clear observations; a tie goes to the
      one listed first; 0 when there is no clear observation;
    - median: the median of the clear observations' MVIUPD values that are not NaN (the
      mean of the two middle ones, computed in float32, for an even number), as
      ``numpy.nanmedian`` gives it; NaN if there is none;
    - count: the number of clear observations, at most ``count_fill - 1``; ``count_fill``
      where every observation has the bit ``fill_bit`` (or there is none);
    - class count: the number of clear observations in the yearly class, at most
      ``class_cap``.

    Parameters
    ----------
    land_cover : numpy.ndarray of int
        Class codes. uint8 is read as it is; any other dtype is first reduced to the places
        of its codes in ``classes`` (one extra pass).
    quality : numpy.ndarray of int
        Quality bit flags. uint8 is read as it is; any other dtype is first cast to int64
        and reduced to the bits ``not_clear | fill_bit`` (one extra pass).
    mviupd : numpy.ndarray
        float32 MVIUPD values, or, with ``packed``, the integer codes they are stored as.
    classes : sequence of int
        The clear classes in tie-break order (first wins a tie); at most 255 of them.
    not_clear, fill_bit : int
        Quality bits (below 256) that make an observation not clear, and the one that says
        no scene covered the pixel.
    count_fill, class_cap : int
        The count of a pixel never covered, and the cap of the class count.
    packed : (int, float, float), optional
        ``(fill code, scale, offset)``: ``mviupd`` holds int16 codes, decoded as
        ``float32(code * scale + offset)`` (float64 arithmetic), NaN for the fill code.

    Returns
    -------
    numpy.ndarray
        float32, shape ``(4, *land_cover.shape[1:])``.

    Raises
    ------
    ValueError
        Arrays of different shapes or without a time axis, MVIUPD of the wrong dtype,
        classes or bits out of range.
    """
    lc = np.asarray(land_cover)
    q = np.asarray(quality)
    mv = np.asarray(mviupd)
    if not (lc.shape == q.shape == mv.shape) or lc.ndim < 1:
        raise ValueError(
            f"summarise_year: expected three (time, ...) arrays of one shape, got land_cover "
            f"{lc.shape}, quality {q.shape}, mviupd {mv.shape}"
        )
    classes = [int(c) for c in classes]
    if not 0 < len(classes) < 256 or len(set(classes)) != len(classes):
        raise ValueError(
            f"summarise_year: classes must be 1 to 255 distinct codes, got {classes!r}"
        )
    bits = int(not_clear) | int(fill_bit)
    if not 0 <= bits < 256:
        raise ValueError(
            f"summarise_year: not_clear and fill_bit must be bits below 256, got "
            f"{not_clear!r} and {fill_bit!r}"
        )
    value_dtype = np.dtype(np.int16 if packed is not None else np.float32)
    if mv.dtype != value_dtype:
        raise ValueError(
            f"summarise_year: mviupd must be {value_dtype} ("
            f"{'packed codes' if packed is not None else 'values'}), got {mv.dtype}"
        )
    slot_of = np.zeros(256, dtype=np.uint8)
    if lc.dtype == np.uint8:
        for i, code in enumerate(classes):
            if 0 <= code < 256:
                slot_of[code] = i + 1
    else:
        # any other dtype: each value's place in `classes` (0: not a clear class), which
        # is what equality with the codes gives, whatever the dtype
        places = np.zeros(lc.shape, dtype=np.uint8)
        for i, code in enumerate(classes):
            places[lc == code] = i + 1
        lc = places
        slot_of[1 : len(classes) + 1] = np.arange(1, len(classes) + 1)
    if q.dtype != np.uint8:
        q = (q.astype(np.int64) & bits).astype(np.uint8)
    n_obs = lc.shape[0]
    pixels = lc.shape[1:]
    n_pix = int(np.prod(pixels, dtype=np.int64))
    out = np.empty((4, n_pix), dtype=np.float32)
    fill_code, scale, offset = packed if packed is not None else (0, 1.0, 0.0)
    _compiled(value_dtype)(
        _readonly(lc.reshape(n_obs, n_pix)),
        _readonly(q.reshape(n_obs, n_pix)),
        _readonly(mv.reshape(n_obs, n_pix)),
        _readonly(slot_of),
        _readonly(np.asarray([0, *classes], dtype=np.float32)),
        int(not_clear),
        int(fill_bit),
        int(count_fill),
        int(class_cap),
        packed is not None,
        int(fill_code),
        float(scale),
        float(offset),
        out,
    )
    return out.reshape(4, *pixels)
