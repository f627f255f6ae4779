"""Land-cover change: transition matrices between epochs, first year of a persistent change.

Both read the COMPLETE annual maps by default (:mod:`updm_dask.query.complete`: the
per-year layers, with the years a pixel was not seen filled from the clear observations of
the neighbouring years within ``window`` years; rule in :mod:`updm_dask.science.gapfill`).
``observed_only=True`` reads the per-year layers as stored (most frequent clear class of
each year, no_data where a year saw nothing).

Epoch class
-----------
The class of a pixel over an epoch (a range of years) is the most frequent class among the
epoch's mapped years (observed or filled; observed only with ``observed_only``); ties go to
vegetation, then urban, then water (the cube's yearly tie-break); ``no_data`` when no year
of the epoch has a class for the pixel.

Persistent change (:func:`first_change`)
----------------------------------------
Only CONFIRMED years count: observed years, and years filled between two observed years
(within the window) that agree on the class. Other years (unobserved and unfilled, filled
from one side only, or filled between disagreeing years) are skipped: they neither break
nor extend a run, so a change always needs observations on its own, and a class carried
from one observation into cloudy years is not a change. With ``observed_only`` only
observed years count. A pixel's baseline class ``B`` is the most frequent class of its
first ``persistence`` counted years (same tie-break). The pixel changes in year ``Y`` when
its class is some ``C != B`` in ``Y`` and in the next ``persistence - 1`` counted years; the
first such ``Y`` is the first-change year (always an observed year: a filled year takes the
class of the observation before it), ``B`` the class changed from, ``C`` the class changed
to. Departures shorter than ``persistence`` counted years (a misclassified year, a flood)
are not changes. Pixels with fewer than ``persistence + 1`` counted years can have no
change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from ..cube import LAND_COVER_CLASSES, YEARLY_CLASS_PRIORITY, CubeLike
from ..errors import QueryError
from ..science.classify import resolve_class_name
from ..science.gapfill import DEFAULT_WINDOW, FILLED_AGREEING, OBSERVED, check_window
from .complete import complete_layers
from .selection import ResolvedSelection, Selection
from .stats import YEARLY_CLASSES
from .times import TimeRange, time_range

__all__ = [
    "Transitions",
    "change_table",
    "epoch_class",
    "first_change",
    "first_persistent_change",
    "transition_counts",
    "transition_matrix",
]

#: Codes in the rows/columns of a transition matrix: no_data (unobserved) and the classes.
MATRIX_CODES: tuple[int, ...] = (0, *YEARLY_CLASSES)


# --------------------------------------------------------------------------------------
# Numpy kernels
# --------------------------------------------------------------------------------------


def _mode(classes: np.ndarray, axis: int) -> np.ndarray:
    best = np.zeros(np.delete(classes.shape, axis), dtype=np.uint8)
    best_n = np.zeros(best.shape, dtype=np.int64)
    for code in YEARLY_CLASS_PRIORITY:
        n = (classes == code).sum(axis=axis)
        better = n > best_n  # strict: earlier in priority keeps a tie
        best[better] = code
        best_n[better] = n[better]
    return best


def epoch_class(classes: np.ndarray) -> np.ndarray:
    """Most frequent yearly class over an epoch.

    Axis contract: ``classes (t, ...)`` uint8 yearly classes -> ``(...)`` uint8. Counts
    vegetation, urban and water (other codes, no_data included, are ignored); ties go to
    vegetation > urban > water; 0 (no_data) when none of them occurs.
    """
    classes = np.asarray(classes)
    if classes.ndim < 1:
        raise QueryError("epoch_class: expected an array (t, ...)")
    return _mode(classes, 0)


def transition_counts(
    a: np.ndarray, b: np.ndarray, mask: np.ndarray, n_codes: int = 256
) -> np.ndarray:
    """Cross-tabulate two class maps over the masked pixels.

    Axis contract: ``a, b, mask (y, x)`` -> ``(n_codes, n_codes)`` int64 with
    ``out[i, j]`` = pixels of class ``i`` in ``a`` and ``j`` in ``b``.
    """
    a = np.asarray(a).astype(np.int64)
    b = np.asarray(b).astype(np.int64)
    m = np.asarray(mask, dtype=bool)
    if not (a.shape == b.shape == m.shape):
        raise QueryError(f"transition_counts: shapes differ: {a.shape}, {b.shape}, mask {m.shape}")
    pairs = a[m] * n_codes + b[m]
    return np.bincount(pairs, minlength=n_codes * n_codes).reshape(n_codes, n_codes)


def first_persistent_change(
    classes: np.ndarray, years: np.ndarray, persistence: int = 3
) -> np.ndarray:
    """First year of a persistent class change per pixel (rule in the module docstring).

    Axis contract: ``classes (..., t)`` uint8 yearly classes with time LAST (0 =
    unobserved), ``years (t,)`` increasing -> ``(..., 3)`` int16 holding the first-change
    year, the class changed from and the class changed to; all 0 where there is no change.

    Raises
    ------
    QueryError
        ``persistence < 1``, or ``years`` not matching the time axis.
    """
    if isinstance(persistence, bool) or not isinstance(persistence, int) or persistence < 1:
        raise QueryError(f"persistence: expected an integer >= 1, got {persistence!r}")
    c = np.asarray(classes)
    years = np.asarray(years, dtype=np.int64)
    if c.ndim < 1 or years.shape != (c.shape[-1],):
        raise QueryError(
            f"first_persistent_change: expected classes (..., t) and years (t,), got "
            f"{c.shape} and {years.shape}"
        )
    lead, t = c.shape[:-1], c.shape[-1]
    flat = c.reshape(-1, t)
    observed = flat != 0
    # observed years first, in time order: "the next observed years" become neighbours
    order = np.argsort(~observed, axis=1, kind="stable")
    comp = np.take_along_axis(flat, order, axis=1)
    comp_years = years[order]
    k = observed.sum(axis=1)
    out = np.zeros((flat.shape[0], 3), dtype=np.int16)
    p = persistence
    if t < p:
        return out.reshape(*lead, 3)
    head = np.where(np.arange(p)[None, :] < k[:, None], comp[:, :p], 0)
    baseline = _mode(head, 1)
    found = np.zeros(flat.shape[0], dtype=bool)
    for s in range(t - p + 1):
        first = comp[:, s]
        run = (s + p <= k) & (first != 0) & (first != baseline) & ~found
        for d in range(1, p):
            run &= comp[:, s + d] == first
        if run.any():
            out[run, 0] = comp_years[run, s]
            out[run, 1] = baseline[run]
            out[run, 2] = first[run]
            found |= run
    return out.reshape(*lead, 3)


# --------------------------------------------------------------------------------------
# Dask wrappers
# --------------------------------------------------------------------------------------


def epoch_class_array(classes: da.Array) -> da.Array:
    """Lazy :func:`epoch_class` of ``(t, y, x)`` -> ``(y, x)`` uint8."""
    whole = classes.rechunk({0: -1})
    return da.map_blocks(
        epoch_class,
        whole,
        drop_axis=0,
        dtype=np.uint8,
        meta=np.empty((0, 0), dtype=np.uint8),
        name="updm-epoch-class-" + dask.base.tokenize(whole),
    )


def first_change_array(classes: da.Array, years: np.ndarray, persistence: int) -> da.Array:
    """Lazy :func:`first_persistent_change` of ``(t, y, x)`` -> ``(3, y, x)`` int16."""
    whole = classes.rechunk({0: -1})
    years = np.asarray(years, dtype=np.int64)

    def block(b: np.ndarray) -> np.ndarray:
        return np.moveaxis(
            first_persistent_change(np.moveaxis(b, 0, -1), years, persistence), -1, 0
        )

    return da.map_blocks(
        block,
        whole,
        chunks=((3,), *whole.chunks[1:]),
        dtype=np.int16,
        meta=np.empty((0, 0, 0), dtype=np.int16),
        name="updm-first-change-" + dask.base.tokenize(whole, years, persistence),
    )


# --------------------------------------------------------------------------------------
# Labelled API
# --------------------------------------------------------------------------------------


def _epoch(value: Any, name: str) -> tuple[int, int]:
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return int(value), int(value)
    try:
        a, b = value
        a, b = int(a), int(b)
    except (TypeError, ValueError):
        raise QueryError(
            f"{name}: expected a year or a (first, last) pair of years, got {value!r}"
        ) from None
    if a > b:
        raise QueryError(f"{name}: empty epoch, first year {a} is after last year {b}")
    return a, b


@dataclass(frozen=True)
class Transitions:
    """A transition matrix between two epochs.

    Attributes
    ----------
    pixels : pandas.DataFrame
        Rows: class in the first epoch; columns: class in the second (``no_data``:
        not observed in that epoch); values: pixel counts.
    pixel_area_ha : float
    epoch_from, epoch_to : (int, int)
        Inclusive years.
    area : dict
        The area's description.
    snapshot : str
    """

    pixels: pd.DataFrame
    pixel_area_ha: float
    epoch_from: tuple[int, int]
    epoch_to: tuple[int, int]
    area: dict[str, Any]
    snapshot: str

    @property
    def hectares(self) -> pd.DataFrame:
        """The matrix in hectares."""
        return self.pixels * self.pixel_area_ha

    def hectares_between(self, from_class: str, to_class: str) -> float:
        """Hectares that went from ``from_class`` to ``to_class``.

        Former class names are accepted (``urban`` for ``non_vegetated``).
        """
        names = []
        for name in (from_class, to_class):
            name = resolve_class_name(name, self.pixels.index)
            if name not in self.pixels.index:
                raise QueryError(
                    f"unknown class {name!r}; expected one of {', '.join(self.pixels.index)}"
                )
            names.append(name)
        return float(self.pixels.loc[names[0], names[1]] * self.pixel_area_ha)

    def to_long(self) -> pd.DataFrame:
        """One row per (from, to) pair: ``from_class``, ``to_class``, ``pixels``, ``hectares``."""
        rows = [
            {
                "from_class": a,
                "to_class": b,
                "pixels": int(self.pixels.loc[a, b]),
                "hectares": float(self.pixels.loc[a, b] * self.pixel_area_ha),
            }
            for a in self.pixels.index
            for b in self.pixels.columns
        ]
        df = pd.DataFrame(rows)
        df.attrs = {
            "epoch_from": list(self.epoch_from),
            "epoch_to": list(self.epoch_to),
            "area": self.area,
            "snapshot": self.snapshot,
        }
        return df

    def format(self) -> str:
        """The matrix in hectares as fixed-width text."""
        a, b = self.epoch_from, self.epoch_to
        ha = self.hectares
        names = list(ha.columns)
        w = max(12, *(len(n) + 2 for n in names))
        head = f"{f'{a[0]}-{a[1]} \\ {b[0]}-{b[1]}':<24}" + "".join(f"{n:>{w}}" for n in names)
        lines = [f"transitions in hectares over {self.area.get('description', '')}", head]
        for name in ha.index:
            lines.append(f"{name:<24}" + "".join(f"{ha.loc[name, c]:>{w}.2f}" for c in names))
        return "\n".join(lines)


def _check_observed_only(value: Any) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise QueryError(f"observed_only: expected True or False, got {value!r}")
    return bool(value)


def _annual_classes(
    view: ResolvedSelection, when: TimeRange | None, observed_only: bool, window: int
) -> xr.DataArray:
    """The (year, y, x) class maps a change query reads (module docstring)."""
    if observed_only:
        return view.yearly(when)["yearly_land_cover"]
    return complete_layers(view, when, window)["land_cover"]


def transition_matrix(
    selection: Selection | CubeLike,
    epoch_from: Any,
    epoch_to: Any,
    *,
    observed_only: bool = False,
    window: int = DEFAULT_WINDOW,
    **where: Any,
) -> Transitions:
    """How many hectares went from each class to each other between two epochs.

    Parameters
    ----------
    selection : Selection, Cube, str or path-like
        The cube and the area (default the whole cube); the epochs set the years.
    epoch_from, epoch_to : int or (int, int)
        Inclusive years of the two epochs, e.g. ``(1975, 1980)`` and ``(2015, 2020)``.
    observed_only : bool
        Read the per-year layers as stored instead of the complete (gap-filled) maps.
    window : int
        Of the complete maps: calendar years on each side that may fill a year.
    **where
        Fields of :class:`~updm_dask.query.Selection` but ``start``/``end``.

    Returns
    -------
    Transitions
        ``no_data`` rows and columns: pixels without a class in that epoch.

    Raises
    ------
    QueryError
        Malformed epochs, an epoch without a per-year layer, bad area, unknown commit,
        a bad ``window`` or ``observed_only``.
    """
    a = _epoch(epoch_from, "epoch_from")
    b = _epoch(epoch_to, "epoch_to")
    observed_only = _check_observed_only(observed_only)
    window = check_window(window)
    epochs = time_range(*a), time_range(*b)
    view = Selection.of(selection, **where).resolve("area", time=False, query="transition_matrix")
    ca, cb = dask.compute(
        *(
            epoch_class_array(_annual_classes(view, when, observed_only, window).data)
            for when in epochs
        )
    )
    sel = view.area
    counts = transition_counts(ca, cb, sel.mask)
    names = [LAND_COVER_CLASSES[c] for c in MATRIX_CODES]
    sub = counts[np.ix_(MATRIX_CODES, MATRIX_CODES)]
    pixels = pd.DataFrame(
        sub, index=pd.Index(names, name="from"), columns=pd.Index(names, name="to")
    )
    return Transitions(
        pixels=pixels,
        pixel_area_ha=sel.pixel_area_ha,
        epoch_from=a,
        epoch_to=b,
        area=sel.to_dict(),
        snapshot=view.snapshot,
    )


def first_change(
    selection: Selection | CubeLike,
    *,
    persistence: int = 3,
    observed_only: bool = False,
    window: int = DEFAULT_WINDOW,
    **where: Any,
) -> xr.Dataset:
    """Per-pixel map of the first year of a persistent class change (lazy).

    Parameters
    ----------
    selection : Selection, Cube, str or path-like
        The cube, the area (default the whole cube; pixels of its window outside it get
        0) and the years considered.
    persistence : int
        Counted years the new class must hold (rule in the module docstring).
    observed_only : bool
        Count observed years only, not the confirmed years of the complete maps.
    window : int
        Of the complete maps: calendar years on each side that may fill a year.
    **where
        Fields of :class:`~updm_dask.query.Selection`.

    Returns
    -------
    xarray.Dataset
        dask-backed, dims (y, x), georeferenced: ``first_change_year`` (int16, 0 = no
        persistent change), ``from_class`` and ``to_class`` (uint8 class codes, 0 = none).

    Raises
    ------
    QueryError
        Bad ``persistence``, and the errors of area and time selection.
    """
    if isinstance(persistence, bool) or not isinstance(persistence, int) or persistence < 1:
        raise QueryError(f"persistence: expected an integer >= 1, got {persistence!r}")
    observed_only = _check_observed_only(observed_only)
    window = check_window(window)
    view = Selection.of(selection, **where).resolve("area", query="first_change")
    sel = view.area
    if observed_only:
        win = view.yearly()
        counted = win["yearly_land_cover"].data
    else:
        win = complete_layers(view, window=window)
        confirmed = (win["fill_source"] == OBSERVED) | (win["fill_source"] == FILLED_AGREEING)
        counted = win["land_cover"].where(confirmed, 0).astype(np.uint8).data
    years = win["year"].values.astype(np.int64)
    stack = first_change_array(counted, years, persistence)
    stack = sel.clip(stack, 0)
    coords = {"y": win["y"], "x": win["x"]}
    flags = {
        "flag_values": list(LAND_COVER_CLASSES),
        "flag_meanings": " ".join(LAND_COVER_CLASSES.values()),
    }

    def layer(i: int, dtype: Any, **attrs: Any) -> xr.DataArray:
        return xr.DataArray(stack[i].astype(dtype), dims=("y", "x"), coords=coords, attrs=attrs)

    out = xr.Dataset(
        {
            "first_change_year": layer(
                0,
                np.int16,
                long_name=f"first year of a class change persisting {persistence} "
                f"{'observed' if observed_only else 'confirmed'} years",
                units="year",
            ),
            "from_class": layer(
                1, np.uint8, long_name="class before the first persistent change", **flags
            ),
            "to_class": layer(
                2, np.uint8, long_name="class after the first persistent change", **flags
            ),
        }
    )
    out.attrs = {
        "persistence": persistence,
        "maps": "observed" if observed_only else "complete",
        "window": 0 if observed_only else window,
        "first_year": int(years[0]),
        "last_year": int(years[-1]),
        "area": sel.description,
        "pixel_area_ha": sel.pixel_area_ha,
        "cube": view.location,
        "updm_snapshot": view.snapshot,
    }
    out["first_change_year"] = out["first_change_year"].rio.write_nodata(0, encoded=False)
    return out.rio.write_crs(sel.grid.crs_wkt)


def change_table(changes: xr.Dataset) -> pd.DataFrame:
    """Count the pixels of a :func:`first_change` map per year and transition.

    Returns
    -------
    pandas.DataFrame
        One row per (year, from, to) with a change: ``year``, ``from_class``,
        ``to_class``, ``pixels``, ``hectares``; sorted by year. Computes the map.
    """
    year, a, b = dask.compute(
        changes["first_change_year"].data, changes["from_class"].data, changes["to_class"].data
    )
    hit = year > 0
    df = pd.DataFrame(
        {
            "year": year[hit].astype(int),
            "from_class": [LAND_COVER_CLASSES.get(int(c), str(c)) for c in a[hit]],
            "to_class": [LAND_COVER_CLASSES.get(int(c), str(c)) for c in b[hit]],
        }
    )
    out = df.groupby(["year", "from_class", "to_class"]).size().rename("pixels").reset_index()
    out["hectares"] = out["pixels"] * float(changes.attrs.get("pixel_area_ha", math.nan))
    out.attrs = {
        k: changes.attrs[k]
        for k in (
            "persistence",
            "maps",
            "window",
            "first_year",
            "last_year",
            "area",
            "updm_snapshot",
        )
        if k in changes.attrs
    }
    return out
