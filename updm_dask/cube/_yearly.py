"""Per-year layers: the numpy kernel and its dask wrapper."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import dask.array as da
import numpy as np

from ..errors import CubeError
from ._schema import CLEAR_CLASSES, QUALITY_NOT_CLEAR, YEARLY_CLASS_PRIORITY, YEARLY_VARIABLES


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
    - count: number of clear observations (capped at 65535);
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
    clear = np.isin(lc, CLEAR_CLASSES) & ((q.astype(np.int64) & QUALITY_NOT_CLEAR) == 0)
    out = np.empty((len(YEARLY_VARIABLES), *lc.shape[1:]), dtype=np.float32)
    best_class = np.zeros(lc.shape[1:], dtype=np.float32)
    best_count = np.zeros(lc.shape[1:], dtype=np.int64)
    for code in YEARLY_CLASS_PRIORITY:
        count = (clear & (lc == code)).sum(axis=0)
        better = count > best_count  # strict: the class earlier in priority keeps a tie
        best_class[better] = code
        best_count[better] = count[better]
    out[0] = best_class
    if lc.shape[0]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels are expected
            out[1] = np.nanmedian(np.where(clear, mv, np.nan), axis=0)
    else:
        out[1] = np.nan
    out[2] = np.minimum(clear.sum(axis=0), np.iinfo(np.uint16).max)
    out[3] = np.minimum(best_count, np.iinfo(np.uint16).max)
    return out


def yearly_layers(
    scenes: Mapping[str, da.Array],
    scene_years: np.ndarray,
    years: Sequence[int],
    spatial_chunks: tuple[int, int],
) -> dict[str, list[da.Array]]:
    """Lazy per-year layers for ``years``, one (y, x) dask array per year and variable.

    ``scenes`` holds the land_cover, quality and mviupd arrays (time, y, x) and
    ``scene_years`` the year of each time slot. Each task summarises one spatial block of
    ``spatial_chunks`` pixels over all scenes of a year, so memory is bounded by
    (scenes in the year) x (block), never by the cube.
    """
    ys, xs = spatial_chunks
    out: dict[str, list[da.Array]] = {n: [] for n in YEARLY_VARIABLES}
    for year in years:
        idx = np.flatnonzero(scene_years == year)
        if idx.size == 0:
            raise CubeError(f"yearly layers: no scene in year {year}")
        ins = [
            scenes[n][idx].rechunk((idx.size, ys, xs)) for n in ("land_cover", "quality", "mviupd")
        ]
        summary = da.map_blocks(
            yearly_summary,
            *ins,
            chunks=((len(YEARLY_VARIABLES),), ins[0].chunks[1], ins[0].chunks[2]),
            dtype=np.float32,
            meta=np.empty((0, 0, 0), dtype=np.float32),
            token=f"updm-yearly-{year}",
        )
        for j, (name, spec) in enumerate(YEARLY_VARIABLES.items()):
            out[name].append(summary[j].astype(spec.dtype))
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
    fork: object,
    years: Sequence[tuple[int, Sequence[int]]],
    rows: tuple[int, int],
    cols: tuple[int, int],
) -> tuple[object, int]:
    """Summarise some years over one spatial block and write them; ``(fork, chunks)`` back.

    ``years`` holds, per year, its index on the year axis and the time slots of the scenes
    of that year that touch the block: only those slots are read. Every year of one task
    lies in one chunk along the year axis, and no other task writes that chunk.
    """
    import zarr

    store = fork.store  # type: ignore[attr-defined]
    region = (slice(*rows), slice(*cols))
    scenes = {
        n: zarr.open_array(store, path=n, mode="r") for n in ("land_cover", "quality", "mviupd")
    }
    targets = {
        n: zarr.open_array(store, path=n, mode="a", config={"write_empty_chunks": False})
        for n in YEARLY_VARIABLES
    }
    for index, slots in years:
        picked = [
            scenes[n].get_orthogonal_selection((np.asarray(slots, dtype=np.int64), *region))
            for n in ("land_cover", "quality", "mviupd")
        ]
        summary = yearly_summary(*picked)
        for j, (name, spec) in enumerate(YEARLY_VARIABLES.items()):
            targets[name][(index, *region)] = summary[j].astype(spec.dtype)
    return fork, len(YEARLY_VARIABLES)
