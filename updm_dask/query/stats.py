"""Area statistics per year: class fractions and hectares, coverage, median MVIUPD; class maps.

Only the window of the per-year layers that holds the area is read (their chunks are small
in space), so the cost follows the area, not the size of the cube or its number of scenes.

Which maps are counted
----------------------
By default the COMPLETE annual maps (:mod:`updm_dask.query.complete`): a pixel without a
clear observation in a year takes the class of the clear observations of its neighbouring
years within ``window`` years (rule in :mod:`updm_dask.science.gapfill`), so that a cloudy
year does not swing the shares towards the part of the area it happened to see.
``observed_only=True`` counts the observed pixels only (the figures of the per-year
layers as stored).

Definitions (per year, over the pixels of the area)
--------------------------------------------------
- observed: a pixel with at least one clear observation that year (its yearly class is
  water, vegetation or urban; see :func:`updm_dask.cube.yearly_summary` for "clear").
- ``observed_fraction``: observed pixels / area pixels, i.e. how much of the area the
  year really saw; ``observed_ha`` the same in hectares.
- ``filled_fraction``: pixels not observed that year whose class the complete map took
  from the neighbouring years / area pixels (0 with ``observed_only``); ``filled_ha``
  the same in hectares. Mapped pixels are the observed and the filled ones; the rest of
  the area (no clear observation within the window) stays unmapped.
- ``<class>_ha``: mapped pixels of that class x pixel area; ``<class>_fraction``: the
  same / mapped pixels (so the fractions of a year with any mapped pixel sum to 1).
  Multiply a fraction by ``area_ha`` to estimate the class's area over the whole area,
  unmapped parts included.
- ``clear_obs_per_pixel``: mean number of clear observations per area pixel.
- ``mviupd_median``: median, over the observed pixels, of their yearly median MVIUPD
  (never filled: an index value is not carried from another year).
"""

from __future__ import annotations

import warnings
from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from ..cube import LAND_COVER_CLASSES, CubeLike
from ..errors import QueryError
from ..science.gapfill import DEFAULT_WINDOW, check_window
from .areas import AreaSelection
from .complete import complete_layers
from .selection import ResolvedSelection, Selection
from .times import time_range

__all__ = [
    "YEARLY_CLASSES",
    "area_statistics",
    "area_table",
    "class_counts",
    "land_cover_map",
    "masked_median",
    "open_yearly",
]

#: Classes a per-year layer can hold besides no_data (code -> name).
YEARLY_CLASSES: dict[int, str] = {
    code: name
    for code, name in LAND_COVER_CLASSES.items()
    if name in ("water", "vegetation", "non_vegetated")
}
_N_CODES = 256  # uint8 class codes


# --------------------------------------------------------------------------------------
# Numpy kernels
# --------------------------------------------------------------------------------------


def class_counts(classes: np.ndarray, mask: np.ndarray, n_codes: int = _N_CODES) -> np.ndarray:
    """Count class codes among the masked pixels, per leading index.

    Axis contract: ``classes (t, y, x)`` integer codes in ``[0, n_codes)``, ``mask (y, x)``
    bool -> ``(t, n_codes)`` int64 counts.
    """
    classes = np.asarray(classes)
    mask = np.asarray(mask, dtype=bool)
    if classes.ndim != 3 or classes.shape[1:] != mask.shape:
        raise QueryError(
            f"class_counts: expected classes (t, y, x) and mask (y, x), got {classes.shape} "
            f"and {mask.shape}"
        )
    t = classes.shape[0]
    picked = classes[:, mask].astype(np.int64)  # (t, n_masked)
    if picked.size and (picked.min() < 0 or picked.max() >= n_codes):
        raise QueryError(f"class_counts: class codes must lie in [0, {n_codes})")
    offsets = picked + (np.arange(t, dtype=np.int64) * n_codes)[:, None]
    return np.bincount(offsets.ravel(), minlength=t * n_codes).reshape(t, n_codes)


def masked_median(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """NaN-aware median of the masked pixels, per leading index.

    Axis contract: ``values (t, y, x)`` float, ``mask (y, x)`` bool -> ``(t,)`` float64;
    NaN where no masked pixel is finite.
    """
    values = np.asarray(values, dtype=np.float64)
    picked = values[:, np.asarray(mask, dtype=bool)]
    if picked.shape[1] == 0:
        return np.full(values.shape[0], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN years are expected
        return np.nanmedian(picked, axis=1)


def _sum_masked(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)[:, np.asarray(mask, dtype=bool)].sum(axis=1)


# --------------------------------------------------------------------------------------
# Dask wrappers: one task per chunk, reduced over space
# --------------------------------------------------------------------------------------


def _mask_like(mask: np.ndarray, arr: da.Array) -> da.Array:
    return da.from_array(mask, chunks=arr.chunks[1:], name=False)


def _blockwise_reduce(kernel, arr: da.Array, mask: np.ndarray, width: int, name: str) -> da.Array:
    """Apply ``kernel(block (t,y,x), mask_block) -> (t, width)`` per chunk, sum over space."""
    m = _mask_like(mask, arr)

    def per_block(block, mblock):
        return kernel(block, mblock)[:, None, None, :]

    out = da.map_blocks(
        per_block,
        arr,
        m,
        new_axis=3,
        chunks=(arr.chunks[0], (1,) * len(arr.chunks[1]), (1,) * len(arr.chunks[2]), (width,)),
        dtype=np.int64,
        meta=np.empty((0, 0, 0, 0), dtype=np.int64),
        name=f"updm-{name}-" + dask.base.tokenize(arr, mask),
    )
    return out.sum(axis=(1, 2))


def area_class_counts(classes: da.Array, mask: np.ndarray) -> da.Array:
    """Lazy :func:`class_counts` of a dask array ``(t, y, x)``: ``(t, 256)`` int64."""
    return _blockwise_reduce(class_counts, classes, mask, _N_CODES, "class-counts")


def area_sum(values: da.Array, mask: np.ndarray) -> da.Array:
    """Lazy sum of integer ``values (t, y, x)`` over the masked pixels: ``(t,)`` int64."""
    return _blockwise_reduce(
        lambda b, m: _sum_masked(b, m)[:, None], values, mask, 1, "masked-sum"
    )[:, 0]


def area_median(values: da.Array, mask: np.ndarray, years_per_task: int | None = None) -> da.Array:
    """Lazy :func:`masked_median` of ``values (t, y, x)``: ``(t,)`` float64.

    The median needs every pixel of a year at once: each task holds ``years_per_task``
    years of the whole window (default: as many as keep a task near 2**25 values, at
    least 1, at most 8).
    """
    if years_per_task is None:
        years_per_task = int(np.clip(2**25 // max(mask.size, 1), 1, 8))
    whole = values.rechunk((min(years_per_task, values.shape[0]) or 1, -1, -1))
    m = da.from_array(mask, chunks=-1, name=False)
    return da.map_blocks(
        lambda b, mb: masked_median(b, mb),
        whole,
        m,
        drop_axis=(1, 2),
        chunks=(whole.chunks[0],),
        dtype=np.float64,
        meta=np.empty((0,), dtype=np.float64),
        name="updm-area-median-" + dask.base.tokenize(whole, mask),
    )


# --------------------------------------------------------------------------------------
# Labelled API
# --------------------------------------------------------------------------------------


def open_yearly(selection: Selection | CubeLike, **where: Any) -> tuple[xr.Dataset, AreaSelection]:
    """The per-year layers over an area's window and a time range, lazily.

    Parameters
    ----------
    selection : Selection, Cube, str or path-like
        The cube, the area (default the whole cube) and the time range.
    **where
        Fields of :class:`~updm_dask.query.Selection`.

    Returns
    -------
    (xarray.Dataset, AreaSelection)
        ``yearly_land_cover``, ``yearly_mviupd_median``, ``yearly_clear_count``,
        ``yearly_class_count`` (the per-year layers as stored; the complete maps are
        :func:`~updm_dask.query.complete_yearly`) with dims (year, y, x) over the area's
        window, dask-backed and georeferenced (``attrs["updm_snapshot"]``: the snapshot
        read); and the area.

    Raises
    ------
    QueryError
        Empty time range, no per-year layers, bad area, unknown commit or tag.
    """
    view = Selection.of(selection, **where).resolve("area", query="open_yearly")
    return view.yearly(), view.area


def land_cover_map(selection: Selection | CubeLike, year: int, **where: Any) -> xr.DataArray:
    """The yearly land-cover class of one year (lazy, georeferenced, uint8 CF flags).

    Pixels of the area's window outside the area are set to 0 (no_data).

    Parameters
    ----------
    selection : Selection, Cube, str or path-like
        The cube and the area (default the whole cube); ``year`` sets the time.
    year : int
    **where
        Fields of :class:`~updm_dask.query.Selection` but ``start``/``end``.

    Raises
    ------
    QueryError
        No per-year layer for ``year``, bad area, unknown commit.
    """
    if isinstance(year, bool) or not isinstance(year, int | np.integer):
        raise QueryError(f"year: expected an integer year, got {year!r}")
    when = time_range(int(year), int(year))
    view = Selection.of(selection, **where).resolve("area", time=False, query="land_cover_map")
    arr = view.yearly(when)["yearly_land_cover"]
    out = view.area.clip(arr.isel(year=0), 0)
    out.attrs = {**arr.attrs, "year": int(year), "area": view.area.description}
    out = out.rio.write_crs(view.cube.grid.crs_wkt).rio.write_nodata(0, encoded=False)
    return out.rename("land_cover")


def area_table(
    view: ResolvedSelection, *, observed_only: bool = False, window: int = DEFAULT_WINDOW
) -> pd.DataFrame:
    """The :func:`area_statistics` table of a resolved area selection."""
    observed_only = _check_observed_only(observed_only)
    window = check_window(window)
    win, sel = view.yearly(), view.area
    observed_counts = area_class_counts(win["yearly_land_cover"].data, sel.mask)
    if observed_only:
        mapped_counts = observed_counts
    else:
        full = complete_layers(view, window=window)
        mapped_counts = area_class_counts(full["land_cover"].data, sel.mask)
    counts, seen, clear_sum, median = dask.compute(
        mapped_counts,
        observed_counts,
        area_sum(win["yearly_clear_count"].data, sel.mask),
        area_median(win["yearly_mviupd_median"].data, sel.mask),
    )
    years = win["year"].values.astype(int)
    n = sel.n_pixels
    ha = sel.pixel_area_ha
    observed = n - seen[:, 0]
    mapped = n - counts[:, 0]
    data: dict[str, Any] = {
        "year": years,
        "area_ha": np.full(len(years), n * ha),
        "observed_ha": observed * ha,
        "observed_fraction": observed / n,
        "filled_ha": (mapped - observed) * ha,
        "filled_fraction": (mapped - observed) / n,
        "clear_obs_per_pixel": clear_sum / n,
    }
    with np.errstate(invalid="ignore", divide="ignore"):
        for code, name in YEARLY_CLASSES.items():
            data[f"{name}_ha"] = counts[:, code] * ha
        for code, name in YEARLY_CLASSES.items():
            data[f"{name}_fraction"] = np.where(mapped > 0, counts[:, code] / mapped, np.nan)
    data["mviupd_median"] = median
    df = pd.DataFrame(data)
    df.attrs = {
        "area": sel.to_dict(),
        "cube": view.location,
        "snapshot": view.snapshot,
        "maps": "observed" if observed_only else "complete",
        "window": 0 if observed_only else window,
    }
    return df


def _check_observed_only(value: Any) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise QueryError(f"observed_only: expected True or False, got {value!r}")
    return bool(value)


def area_statistics(
    selection: Selection | CubeLike,
    *,
    observed_only: bool = False,
    window: int = DEFAULT_WINDOW,
    **where: Any,
) -> pd.DataFrame:
    """Per-year class fractions and hectares, coverage and median MVIUPD of an area.

    Parameters
    ----------
    selection : Selection, Cube, str or path-like
        The cube, the area (default the whole cube) and the time range (its years count).
    observed_only : bool
        Count the observed pixels of each year only, not the complete (gap-filled) maps.
    window : int
        Of the complete maps: calendar years on each side that may fill a year.
    **where
        Fields of :class:`~updm_dask.query.Selection`.

    Returns
    -------
    pandas.DataFrame
        One row per year: ``year``, ``area_ha``, ``observed_ha``, ``observed_fraction``,
        ``filled_ha``, ``filled_fraction``, ``clear_obs_per_pixel``, ``water_ha``,
        ``vegetation_ha``, ``urban_ha``, ``water_fraction``, ``vegetation_fraction``,
        ``urban_fraction``, ``mviupd_median`` (definitions in the module docstring).
        ``attrs``: ``area`` (its description, pixel count, hectares), ``cube``,
        ``snapshot``, ``maps`` (``"complete"`` or ``"observed"``) and ``window``.

    Raises
    ------
    QueryError
        Bad area (wrong CRS, outside the grid), empty time range, no per-year layers,
        unknown commit or tag, a bad ``window`` or ``observed_only``.
    """
    view = Selection.of(selection, **where).resolve("area", query="area_statistics")
    return area_table(view, observed_only=observed_only, window=window)
