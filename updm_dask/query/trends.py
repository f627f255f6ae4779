"""Per-pixel trends of the per-year MVIUPD: Theil-Sen slope and Mann-Kendall test.

The statistics are defined in :mod:`updm_dask.science.trends`.

Three tiers: :func:`~updm_dask.science.trends.theil_sen_mann_kendall` (numpy kernel, pixels
vectorised, time last),
:func:`trend_array` (dask, one task per spatial chunk with all years), and
:func:`mviupd_trend` / :func:`trend_summary` (cube in, labelled lazy map / small summary out).
"""

from __future__ import annotations

import math
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from ..cube import CubeLike
from ..errors import QueryError
from ..science.trends import TREND_FIELDS, theil_sen_mann_kendall
from .selection import ResolvedSelection, Selection
from .stats import area_table

__all__ = [
    "format_trend_summary",
    "mviupd_trend",
    "trend_array",
    "trend_map",
    "trend_summary",
]


def trend_array(
    values: da.Array,
    t: np.ndarray,
    *,
    min_count: int = 4,
    continuity: bool = True,
) -> da.Array:
    """Lazy :func:`theil_sen_mann_kendall` of ``values (time, y, x)`` -> ``(5, y, x)`` float32.

    Time is gathered into one chunk (the per-year layers already are, up to 64 years);
    each task handles one spatial chunk.
    """
    if values.ndim != 3:
        raise QueryError(f"trend_array: expected (time, y, x), got {values.ndim} dims")
    t = np.asarray(t, dtype=np.float64)
    whole = values.rechunk({0: -1})

    def block(b: np.ndarray) -> np.ndarray:
        res = theil_sen_mann_kendall(
            np.moveaxis(b, 0, -1), t, min_count=min_count, continuity=continuity
        )
        return np.moveaxis(res, -1, 0).astype(np.float32)

    return da.map_blocks(
        block,
        whole,
        chunks=((len(TREND_FIELDS),), *whole.chunks[1:]),
        dtype=np.float32,
        meta=np.empty((0, 0, 0), dtype=np.float32),
        name="updm-trend-" + dask.base.tokenize(whole, t, min_count, continuity),
    )


def _check_trend_options(min_years: Any, alpha: Any) -> None:
    if isinstance(min_years, bool) or not isinstance(min_years, int) or min_years < 2:
        raise QueryError(f"min_years: expected an integer >= 2, got {min_years!r}")
    if not (isinstance(alpha, float | int) and 0 < float(alpha) < 1):
        raise QueryError(f"alpha: expected a significance level in (0, 1), got {alpha!r}")


def trend_map(
    view: ResolvedSelection, *, min_years: int = 4, alpha: float = 0.05, continuity: bool = True
) -> xr.Dataset:
    """The :func:`mviupd_trend` map of a resolved area selection."""
    win, sel = view.yearly(), view.area
    years = win["year"].values.astype(np.int64)
    if years.size < 2:
        raise QueryError(
            f"trend: the range holds {years.size} year with a layer ({years.tolist()}); "
            "a trend needs at least 2"
        )
    values = win["yearly_mviupd_median"].data
    stack = trend_array(values, years - years[0], min_count=min_years, continuity=continuity)
    stack = sel.clip(stack, np.nan)
    coords = {"y": win["y"], "x": win["x"]}
    units = {
        "slope": ("Theil-Sen slope of the yearly median MVIUPD", "1/year"),
        "intercept": (f"trend value of the yearly median MVIUPD in {years[0]}", "1"),
        "tau": ("Kendall tau-b of the yearly median MVIUPD against time", "1"),
        "p_value": ("two-sided Mann-Kendall p-value", "1"),
        "n_years": ("years with a clear observation", "1"),
    }
    variables = {
        name: xr.DataArray(
            stack[i], dims=("y", "x"), coords=coords, attrs={"long_name": ln, "units": u}
        )
        for i, (name, (ln, u)) in enumerate(units.items())
    }
    variables["significant"] = (variables["p_value"] < alpha).assign_attrs(
        long_name=f"Mann-Kendall trend significant at alpha = {alpha}"
    )
    out = xr.Dataset(variables)
    out.attrs = {
        "first_year": int(years[0]),
        "last_year": int(years[-1]),
        "n_layers": int(years.size),
        "min_years": min_years,
        "alpha": float(alpha),
        "continuity_correction": str(bool(continuity)).lower(),
        "area": sel.description,
        "cube": view.location,
        "updm_snapshot": view.snapshot,
    }
    return out.rio.write_crs(sel.grid.crs_wkt)


def mviupd_trend(
    selection: Selection | CubeLike,
    *,
    min_years: int = 4,
    alpha: float = 0.05,
    continuity: bool = True,
    **where: Any,
) -> xr.Dataset:
    """Per-pixel trend map of the per-year median MVIUPD (lazy, chunked like the cube).

    Parameters
    ----------
    selection : Selection, Cube, str or path-like
        The cube, the area (default the whole cube; pixels of its window outside it are
        NaN) and the years of the trend.
    min_years : int
        Fewest years with a clear observation for a pixel to get a trend.
    alpha : float
        Significance level of ``significant``.
    continuity : bool
        Continuity correction of the Mann-Kendall Z.
    **where
        Fields of :class:`~updm_dask.query.Selection`.

    Returns
    -------
    xarray.Dataset
        dask-backed, dims (y, x), georeferenced: ``slope`` (MVIUPD per year),
        ``intercept`` (trend value in the first year), ``tau``, ``p_value``, ``n_years``
        (float32) and ``significant`` (bool, ``p_value < alpha``). Nothing is computed
        until the map is written or ``.compute()`` is called.

    Raises
    ------
    QueryError
        Fewer than 2 years in the range, bad ``min_years``/``alpha``, and the errors of
        area and time selection.
    """
    _check_trend_options(min_years, alpha)
    view = Selection.of(selection, **where).resolve("area", query="mviupd_trend")
    return trend_map(view, min_years=min_years, alpha=alpha, continuity=continuity)


def trend_summary(
    selection: Selection | CubeLike,
    *,
    min_years: int = 4,
    alpha: float = 0.05,
    **where: Any,
) -> dict[str, Any]:
    """Trends summarised over an area: pixel shares and the trend of the area's median.

    Parameters are those of :func:`mviupd_trend`.

    Returns
    -------
    dict
        ``first_year``, ``last_year``, ``n_pixels`` (of the area), ``n_with_trend``
        (pixels with at least ``min_years`` observed years), ``share_increasing`` and
        ``share_decreasing`` (significant at ``alpha``, as shares of ``n_with_trend``),
        ``median_slope`` (over pixels with a trend, per year), and ``area_series``: slope,
        intercept, tau, p_value, n_years of the area's per-year median MVIUPD series
        (from :func:`~updm_dask.query.area_statistics`), plus ``area`` and ``snapshot``.
    """
    _check_trend_options(min_years, alpha)
    view = Selection.of(selection, **where).resolve("area", query="trend_summary")
    # the map and the area's series come from the view's one commit
    trend = trend_map(view, min_years=min_years, alpha=alpha)
    # only the median MVIUPD is used, which the complete maps do not change: skip filling
    stats = area_table(view, observed_only=True)
    slope, p = dask.compute(trend["slope"].data, trend["p_value"].data)
    has = np.isfinite(slope)
    n_with = int(has.sum())
    sig = has & (p < alpha)
    series = theil_sen_mann_kendall(
        stats["mviupd_median"].to_numpy(),
        (stats["year"] - stats["year"].iloc[0]).to_numpy(),
        min_count=min_years,
    )
    return {
        "first_year": trend.attrs["first_year"],
        "last_year": trend.attrs["last_year"],
        "area": stats.attrs["area"],
        "n_pixels": stats.attrs["area"]["n_pixels"],
        "n_with_trend": n_with,
        "share_increasing": float((sig & (slope > 0)).sum() / n_with) if n_with else math.nan,
        "share_decreasing": float((sig & (slope < 0)).sum() / n_with) if n_with else math.nan,
        "median_slope": float(np.median(slope[has])) if n_with else math.nan,
        "alpha": alpha,
        "area_series": {f: float(series[i]) for i, f in enumerate(TREND_FIELDS)},
        "snapshot": trend.attrs["updm_snapshot"],
    }


def format_trend_summary(summary: dict[str, Any], min_years: int) -> str:
    """A :func:`trend_summary` as lines of text (``min_years`` as it was asked for)."""
    s, ser = summary, summary["area_series"]
    return "\n".join(
        [
            f"MVIUPD trends {s['first_year']}-{s['last_year']} over {s['area']['description']} "
            f"({s['n_pixels']} pixels), snapshot {s['snapshot']}",
            f"pixels with a trend (>= {min_years} observed years): {s['n_with_trend']}",
            f"significant increase (p < {s['alpha']:g}): {100 * s['share_increasing']:.1f} %",
            f"significant decrease (p < {s['alpha']:g}): {100 * s['share_decreasing']:.1f} %",
            f"median pixel slope: {s['median_slope']:+.5f} per year",
            f"area median series: slope {ser['slope']:+.5f} per year, tau {ser['tau']:+.3f}, "
            f"p {ser['p_value']:.4f}, {int(ser['n_years'])} years",
        ]
    )
