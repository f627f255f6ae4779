"""Per-year layers: the numpy kernel and its dask wrapper."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from ..errors import CubeError
from ..science.annual import summarise_year
from ._chunks import read_slots, write_region
from ._io import ForkArrays, sessions_of
from ._schema import (
    CLEAR_COUNT_FILL,
    OLD_CLEAR_COUNT_FILL,
    QUALITY_FILL,
    QUALITY_NOT_CLEAR,
    SCENE_VARIABLES,
    YEARLY_CLASS_PRIORITY,
    YEARLY_VARIABLES,
    decode_layer,
    encode_layer,
    is_packed,
)

#: The per-year variable whose fill value changed (0 before, CLEAR_COUNT_FILL now).
CLEAR_COUNT = "yearly_clear_count"


def yearly_summary(land_cover: np.ndarray, quality: np.ndarray, mviupd: np.ndarray) -> np.ndarray:
    """Summarise one year of observations per pixel.

    Axis contract: three arrays ``(time, ...)`` -> ``(4, ...)`` float32 holding, per pixel,
    the yearly class, the median MVIUPD, the number of clear observations and the number
    of them in the yearly class.

    An observation is CLEAR when its class is water, vegetation or urban (not no_data, not
    cloud) and none of the quality bits FILL, SATURATED, CLOUD, CLOUD_SHADOW, SLC_GAP is set.

    - class: the most frequent class among the clear observations; ties go to vegetation,
      then urban, then water; no_data (0) when there is no clear observation;
    - median: median MVIUPD of the clear observations with a finite MVIUPD; NaN if none;
    - count: number of clear observations (capped at 65534); 65535
      (:data:`~updm_dask.cube.CLEAR_COUNT_FILL`, the fill) where no observation covers the
      pixel (every one has the FILL bit), so that 0 means seen but never clear;
    - class count: number of clear observations in the yearly class (capped likewise), so
      that class count / count is the agreement of the year's observations (the
      confidence of the complete annual maps, :mod:`updm_dask.science.gapfill`).

    Parameters
    ----------
    land_cover, quality : numpy.ndarray of int
        Class codes and quality bit flags.
    mviupd : numpy.ndarray of float

    Returns
    -------
    numpy.ndarray
        float32, shape ``(4, *land_cover.shape[1:])``.
    """
    lc = np.asarray(land_cover)
    q = np.asarray(quality)
    mv = np.asarray(mviupd, dtype=np.float32)
    if not (lc.shape == q.shape == mv.shape) or lc.ndim < 1:
        raise CubeError(
            f"yearly_summary: expected three (time, ...) arrays of one shape, got land_cover "
            f"{lc.shape}, quality {q.shape}, mviupd {mv.shape}"
        )
    return _summarise(lc, q, mv, None)


def _summarise(
    land_cover: np.ndarray,
    quality: np.ndarray,
    mviupd: np.ndarray,
    packed: tuple[int, float, float] | None,
) -> np.ndarray:
    """:func:`yearly_summary` by the one-pass kernel; MVIUPD values, or codes if ``packed``."""
    # YEARLY_CLASS_PRIORITY lists the clear classes (CLEAR_CLASSES) in tie-break order: the
    # kernel takes its classes as the clear ones (a test holds the two lists together)
    return summarise_year(
        land_cover,
        quality,
        mviupd,
        classes=YEARLY_CLASS_PRIORITY,
        not_clear=QUALITY_NOT_CLEAR,
        fill_bit=QUALITY_FILL,
        count_fill=CLEAR_COUNT_FILL,
        class_cap=int(np.iinfo(np.uint16).max),
        packed=packed,
    )


def yearly_summary_of_stored(
    land_cover: np.ndarray, quality: np.ndarray, mviupd: np.ndarray
) -> np.ndarray:
    """:func:`yearly_summary` of the scene layers as stored (MVIUPD packed or not).

    Equal to ``yearly_summary(land_cover, quality, decode_layer("mviupd", mviupd))``. MVIUPD
    stored as its int16 codes is decoded by the kernel as it reads them: no decoded copy of
    the whole array. Any other dtype (the float32 layers of format 1) is decoded by
    :func:`~updm_dask.cube.decode_layer` first, as always.
    """
    spec = SCENE_VARIABLES["mviupd"]
    codes = np.asarray(mviupd)
    if codes.dtype != np.dtype(spec.dtype) or spec.scale_factor is None:
        return yearly_summary(land_cover, quality, decode_layer("mviupd", codes))
    lc = np.asarray(land_cover)
    q = np.asarray(quality)
    if not (lc.shape == q.shape == codes.shape) or lc.ndim < 1:
        raise CubeError(
            f"yearly_summary_of_stored: expected three (time, ...) arrays of one shape, got "
            f"land_cover {lc.shape}, quality {q.shape}, mviupd {codes.shape}"
        )
    return _summarise(lc, q, codes, (int(spec.fill), float(spec.scale_factor), spec.add_offset))


def clear_count_fill(stored: Any, location: str = "the cube") -> int:
    """The fill value a stored ``yearly_clear_count`` was written with.

    Parameters
    ----------
    stored : zarr.Array or xarray.DataArray
        The array as stored (a Zarr array: its ``fill_value``), or as read by
        ``xarray.open_zarr`` (its ``encoding["fill_value"]``).
    location : str
        Named in the error.

    Returns
    -------
    int
        :data:`~updm_dask.cube.CLEAR_COUNT_FILL` (layers of this version) or 0 (layers
        written before, where 0 is both "no scene" and "no clear observation").

    Raises
    ------
    CubeError
        The fill is missing or neither of the two.
    """
    if isinstance(stored, xr.DataArray):
        fill = stored.encoding.get("fill_value", stored.encoding.get("_FillValue"))
    else:
        fill = getattr(stored, "fill_value", None)
    try:
        value = int(fill)
    except (TypeError, ValueError):
        value = None
    if value not in (CLEAR_COUNT_FILL, OLD_CLEAR_COUNT_FILL):
        shown = fill.item() if isinstance(fill, np.generic) else fill
        raise CubeError(
            f"{location}: {CLEAR_COUNT} has fill value {shown!r}; expected {CLEAR_COUNT_FILL} "
            f"(this version) or {OLD_CLEAR_COUNT_FILL} (layers written before)"
        )
    return value


def yearly_layers_outdated(group: Any, location: str = "the cube") -> bool:
    """True when the stored per-year layers must all be rebuilt to be of this version.

    They lack a variable of this version, hold ``yearly_clear_count`` with the old fill
    (0): carrying such a year over next to rebuilt ones would mix two meanings of 0, or a
    packed layer stored otherwise (``yearly_mviupd_median`` as float32, before it was
    packed). Such layers are read as they are until then.
    """
    if any(n not in group for n in YEARLY_VARIABLES):
        return True
    for name, spec in YEARLY_VARIABLES.items():
        if spec.scale_factor is not None and group[name].dtype != np.dtype(spec.dtype):
            return True
    return clear_count_fill(group[CLEAR_COUNT], location) != CLEAR_COUNT_FILL


def clear_count_as_counted(
    yearly: xr.Dataset, stored: xr.DataArray | None, location: str
) -> xr.Dataset:
    """``yearly`` with the fill of its ``yearly_clear_count`` read as 0 clear observations.

    What queries count with (sums, shares, agreement): a pixel no scene covered has no
    clear observation. Layers written with the old fill (0) already read so.

    Parameters
    ----------
    yearly : xarray.Dataset
        Per-year layers (any window of them).
    stored : xarray.DataArray or None
        ``yearly_clear_count`` as read from the cube (its encoding holds the fill); None
        when the cube has none.
    location : str
        Named in errors.
    """
    if CLEAR_COUNT not in yearly or stored is None:
        return yearly
    fill = clear_count_fill(stored, location)
    if fill == OLD_CLEAR_COUNT_FILL:
        return yearly
    var = yearly[CLEAR_COUNT]
    counted = var.copy(data=da.where(var.data == fill, 0, var.data).astype(var.dtype))
    return yearly.assign({CLEAR_COUNT: counted})


def clear_count_with_fill(ds: xr.Dataset, location: str) -> xr.DataArray:
    """The cube's ``yearly_clear_count`` with the fill of this version, lazily.

    Layers of this version are returned as stored. Layers written with the old fill (0)
    are converted: a pixel that no scene of the year covered (the FILL quality bit on
    every observation) gets :data:`~updm_dask.cube.CLEAR_COUNT_FILL`; a covered one keeps
    its count, 0 included. So an old cube's 0 is never read as "seen, never clear" where
    nothing was seen.

    Parameters
    ----------
    ds : xarray.Dataset
        The whole cube as read (``quality``, ``time``, ``year`` and the layer).
    location : str
        Named in errors.

    Returns
    -------
    xarray.DataArray
        uint16 (year, y, x), with this version's attributes and no encoding.

    Raises
    ------
    CubeError
        An unexpected fill; an old layer of a year without any scene left to tell.
    """
    stored = ds[CLEAR_COUNT]
    fill = clear_count_fill(stored, location)
    attrs = {**stored.attrs, **YEARLY_VARIABLES[CLEAR_COUNT].attrs}
    if fill == CLEAR_COUNT_FILL:
        out = stored.copy()
    else:
        scene_years = ds["time"].dt.year.values
        quality = ds["quality"].data
        seen = []
        for year in ds["year"].values:
            idx = np.flatnonzero(scene_years == int(year))
            if idx.size == 0:
                raise CubeError(
                    f"{location}: the {CLEAR_COUNT} layer of {int(year)} was written with the "
                    f"old fill (0) and no scene of {int(year)} is left to tell unseen pixels "
                    "from pixels never clear; rebuild the per-year layers (Cube.rebuild_yearly)"
                )
            seen.append(((quality[idx] & QUALITY_FILL) == 0).any(axis=0))
        covered = da.stack(seen, axis=0).rechunk(stored.data.chunks)
        data = da.where(covered, stored.data, CLEAR_COUNT_FILL).astype(np.uint16)
        out = stored.copy(data=data)
    out.attrs = attrs
    # writers choose their own encoding (the exports set _FillValue)
    out.encoding = {}
    return out


def touched_blocks(
    windows: Sequence[tuple[int, int, int, int]], edge: tuple[int, int]
) -> set[tuple[int, int]]:
    """Spatial chunk indices (of edge ``edge``) that windows ``(row0, col0, rows, cols)`` touch."""
    ys, xs = edge
    out: set[tuple[int, int]] = set()
    for r0, c0, rows, cols in windows:
        for i in range(r0 // ys, (r0 + rows - 1) // ys + 1):
            for j in range(c0 // xs, (c0 + cols - 1) // xs + 1):
                out.add((i, j))
    return out


def rebuild_block(
    arrays: ForkArrays,
    years: Sequence[tuple[int, Sequence[int]]],
    rows: tuple[int, int],
    cols: tuple[int, int],
) -> tuple[tuple[object, ...], int]:
    """Summarise some years over one spatial block and write them; ``(forks, chunks)`` back.

    ``arrays`` holds the scene layers read (land_cover, quality, mviupd) and the yearly
    layers written, opened once by the caller on one fork: opening Zarr arrays inside
    threaded tasks on a shared Icechunk session can deadlock. They are one entry of the
    graph: a worker process receives one copy, and each task writes through its own copy
    of the fork (:meth:`ForkArrays.for_task`). ``years`` holds,
    per year, its index on the year axis and the time slots of the scenes of that year
    that touch the block: only those slots are read. Every year of one task lies in one
    chunk along the year axis, and no other task writes that chunk.
    """
    arrays = arrays.for_task()
    region = (slice(*rows), slice(*cols))
    shape = (len(years), rows[1] - rows[0], cols[1] - cols[0])
    built = {name: np.empty(shape, dtype=spec.dtype) for name, spec in YEARLY_VARIABLES.items()}
    for k, (_, slots) in enumerate(years):
        picked = read_slots([arrays[n] for n in ("land_cover", "quality", "mviupd")], slots, region)
        # MVIUPD is stored packed: the kernel decodes the codes as it reads them
        summary = yearly_summary_of_stored(*picked)
        for j, name in enumerate(YEARLY_VARIABLES):
            values = summary[j]
            if is_packed(name):
                values = encode_layer(name, values)
            built[name][k] = values
    # One write per layer for all the task's years: a chunk holds many years, and a write
    # of one year reads, decodes, re-encodes and rewrites the whole chunk.
    indices = [index for index, _ in years]
    if indices == list(range(indices[0], indices[-1] + 1)):
        where: tuple = (slice(indices[0], indices[-1] + 1), *region)
        write_region([arrays[n] for n in built], where, list(built.values()))
    else:
        where = (np.asarray(indices, dtype=np.int64), *region)
        for name, values in built.items():
            arrays[name].set_orthogonal_selection(where, values)
    # the fork(s) written to: one per store the arrays were opened on
    forks = sessions_of(arrays[n] for n in YEARLY_VARIABLES)
    return forks, len(YEARLY_VARIABLES)


def rebuild_names() -> tuple[str, ...]:
    """The arrays :func:`rebuild_block` reads (the scene layers it summarises) and writes
    (the per-year layers); the caller opens them once on one fork (one graph entry)."""
    return ("land_cover", "quality", "mviupd", *YEARLY_VARIABLES)


def years_of(time_us: np.ndarray) -> np.ndarray:
    """Calendar years (UTC) of the stored ``time`` values (int64 microseconds since 1970)."""
    t = np.asarray(time_us, dtype=np.int64).astype("datetime64[us]")
    return t.astype("datetime64[Y]").astype(np.int64) + 1970


def year_ranges(years: Sequence[int]) -> str:
    """``[1984, 1985, 1986, 1990]`` -> ``"1984-1986, 1990"``."""
    if not years:
        return "none"
    parts, start, prev = [], years[0], years[0]
    for y in [*years[1:], None]:
        if y is not None and y == prev + 1:
            prev = y
            continue
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
        if y is not None:
            start = prev = y
    return ", ".join(parts)
