"""Complete annual land-cover maps: the per-year layers, gap-filled from neighbouring years.

The per-year layer of a cube leaves a pixel empty (no_data) in a year without a clear
observation of it. The complete map fills it from the clear observations of the
neighbouring years within a window, and says how far and how sure each value is: the
rule, the window and the confidence layers are defined in
:mod:`updm_dask.science.gapfill` (the numpy kernel this module wraps).

Computed at query time, not stored
----------------------------------
A filled year depends on its neighbours: storing the complete maps would make every job
that rebuilds one year responsible for rewriting up to ``window`` years on each side, and a
stale stored value would be silently wrong. Filling is cheap next to reading (one pass over
a pixel's years), so the queries compute it from the stored per-year layers, lazily, reading
``window`` extra years on each side of the range asked for. The stored layers keep what the
confidence needs: ``yearly_clear_count`` and ``yearly_class_count``.
"""

from __future__ import annotations

from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from ..cube import LAND_COVER_CLASSES, CubeLike
from ..science.gapfill import (
    DEFAULT_WINDOW,
    FILL_SOURCES,
    UNRESOLVED_DISTANCE,
    check_window,
    fill_annual,
)
from .selection import ResolvedSelection, Selection, require_yearly
from .times import TimeRange, select_years, time_range

__all__ = ["COMPLETE_VARIABLES", "complete_array", "complete_layers", "complete_yearly"]

#: Variables of the complete maps, in the order of the kernel's output stack.
COMPLETE_VARIABLES = ("land_cover", "fill_source", "years_to_observation", "agreement")
_DTYPES = {
    "land_cover": np.uint8,
    "fill_source": np.uint8,
    "years_to_observation": np.uint8,
    "agreement": np.float32,
}


def complete_array(
    classes: da.Array,
    years: np.ndarray,
    window: int = DEFAULT_WINDOW,
    class_count: da.Array | None = None,
    clear_count: da.Array | None = None,
) -> da.Array:
    """Lazy :func:`~updm_dask.science.gapfill.fill_annual` of ``(t, y, x)`` dask arrays.

    Returns ``(4, t, y, x)`` float32 (class, fill source, years to observation,
    agreement), one task per spatial chunk holding all ``t`` years.
    """
    window = check_window(window)
    years = np.asarray(years, dtype=np.int64)
    ins = [classes] + ([class_count, clear_count] if class_count is not None else [])
    ins = [a.rechunk({0: -1}) for a in ins]
    if len(ins) == 3:
        ins[1:] = [a.rechunk(ins[0].chunks) for a in ins[1:]]

    def block(c: np.ndarray, *counts: np.ndarray) -> np.ndarray:
        cc, clr = counts if counts else (None, None)
        return fill_annual(c, years, window, class_count=cc, clear_count=clr)

    return da.map_blocks(
        block,
        *ins,
        new_axis=0,
        chunks=((len(COMPLETE_VARIABLES),), *ins[0].chunks),
        dtype=np.float32,
        meta=np.empty((0, 0, 0, 0), dtype=np.float32),
        name="updm-complete-" + dask.base.tokenize(*ins, years, window),
    )


def _with_context(when: TimeRange, window: int) -> TimeRange:
    """``when`` widened by ``window`` calendar years on each side (open ends stay open)."""
    first, last = when.first_year, when.last_year
    return time_range(
        None if first is None else max(1, first - window),
        None if last is None else min(9999, last + window),
    )


def _class_attrs(long_name: str) -> dict[str, Any]:
    return {
        "long_name": long_name,
        "units": "1",
        "flag_values": list(LAND_COVER_CLASSES),
        "flag_meanings": " ".join(LAND_COVER_CLASSES.values()),
    }


def complete_layers(
    view: ResolvedSelection, when: TimeRange | None = None, window: int = DEFAULT_WINDOW
) -> xr.Dataset:
    """The complete annual maps of a resolved area selection over the years of ``when``.

    Parameters
    ----------
    view : ResolvedSelection
        An area selection (the whole cube when it has no area).
    when : TimeRange, optional
        Default: the selection's time range. ``window`` years on each side are read too,
        as context for the first and last years.
    window : int
        Calendar years on each side that may lend their class.

    Returns
    -------
    xarray.Dataset
        Lazy, dims (year, y, x) over the area's window: ``land_cover`` (complete class),
        ``fill_source``, ``years_to_observation``, ``agreement``, and the stored
        ``yearly_land_cover`` and ``yearly_clear_count`` of the same years. ``attrs``:
        ``window``, ``cube``, ``updm_snapshot``.

    Raises
    ------
    QueryError
        No per-year layers, none in ``when``, a bad window.
    """
    window = check_window(window)
    when = when or view.when
    require_yearly(view.dataset, view.location)
    all_years = view.dataset["year"].values
    # the range asked for must hold a layer (the usual error otherwise); context is extra
    asked = all_years[select_years(all_years, when, view.location)]
    win = view.yearly(_with_context(when, window))
    years = win["year"].values.astype(np.int64)
    counted = "yearly_class_count" in win
    stack = complete_array(
        win["yearly_land_cover"].data,
        years,
        window,
        win["yearly_class_count"].data if counted else None,
        win["yearly_clear_count"].data if counted else None,
    )
    lo = int(np.searchsorted(years, asked[0]))
    keep = slice(lo, lo + len(asked))
    part = win.isel(year=keep)
    dims = ("year", "y", "x")
    layers = {
        name: xr.DataArray(stack[k, keep].astype(_DTYPES[name]), dims=dims, coords=part.coords)
        for k, name in enumerate(COMPLETE_VARIABLES)
    }
    layers["land_cover"].attrs = _class_attrs(
        f"complete annual land-cover class: the year's own class where it was observed, else "
        f"filled from the clear observations within {window} years"
    )
    layers["fill_source"].attrs = {
        "long_name": "where the complete class comes from",
        "units": "1",
        "flag_values": list(FILL_SOURCES),
        "flag_meanings": " ".join(FILL_SOURCES.values()),
    }
    layers["years_to_observation"].attrs = {
        "long_name": "years to the nearest year with a clear observation within the window "
        f"(0: observed; {UNRESOLVED_DISTANCE}: none)",
        "units": "year",
    }
    layers["agreement"].attrs = {
        "long_name": "share of the clear observations behind the class that fall in it",
        "units": "1",
    }
    for name in ("yearly_land_cover", "yearly_clear_count"):
        layers[name] = part[name]
    out = xr.Dataset(layers)
    out.attrs = {"window": window, "cube": view.location, "updm_snapshot": view.snapshot}
    return out


def complete_yearly(
    selection: Selection | CubeLike, *, window: int = DEFAULT_WINDOW, **where: Any
) -> xr.Dataset:
    """Complete (gap-filled) annual land-cover maps with their confidence, lazily.

    Parameters
    ----------
    selection : Selection, Cube, str or path-like
        The cube, the area (default the whole cube) and the time range.
    window : int
        Calendar years on each side whose clear observations may fill a year without one
        (rule in :mod:`updm_dask.science.gapfill`).
    **where
        Fields of :class:`~updm_dask.query.Selection`.

    Returns
    -------
    xarray.Dataset
        See :func:`complete_layers`; georeferenced.

    Raises
    ------
    QueryError
        A bad window, empty time range, no per-year layers, bad area, unknown commit.
    """
    view = Selection.of(selection, **where).resolve("area", query="complete_yearly")
    out = complete_layers(view, window=window)
    out.attrs["area"] = view.area.description
    return out.rio.write_crs(view.cube.grid.crs_wkt)
