"""Per-pixel trends of the per-year MVIUPD: Theil-Sen slope and Mann-Kendall test.

Statistics (per pixel, over the years of the range with a finite yearly median MVIUPD;
years without a clear observation are skipped, not filled)
-------------------------------------------------------------------------------------
- slope: Theil-Sen estimator, the median of the slopes ``(v_j - v_i) / (t_j - t_i)`` over
  all pairs of years ``i < j`` (MVIUPD per year);
- intercept: ``median(v) - slope * median(t)`` (the "separate medians" intercept of
  :func:`scipy.stats.theilslopes`), with ``t`` counted in years from the first year of the
  range, so it is the trend line's value in that year;
- Mann-Kendall: ``S = sum_{i<j} sign(v_j - v_i)``, its variance under no trend with the
  tie correction ``Var(S) = [n(n-1)(2n+5) - sum_g t_g(t_g-1)(2t_g+5)] / 18`` (``t_g``: sizes of
  groups of equal values), ``Z = (S - sign(S)) / sqrt(Var(S))`` with the usual continuity
  correction (``continuity=False`` drops it, which is what
  :func:`scipy.stats.kendalltau` with ``method="asymptotic"`` computes), two-sided
  ``p = erfc(|Z| / sqrt(2))``; ``tau`` is Kendall's tau-b of the values against time;
- a pixel with fewer than ``min_years`` valid years gets NaN; a constant series gets slope 0,
  tau 0 and p 1 (no trend).

Three tiers: :func:`theil_sen_mann_kendall` (numpy kernel, pixels vectorised, time last),
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
from scipy.special import erfc

from ..cube import CubeLike
from ..errors import QueryError
from .selection import ResolvedSelection, Selection
from .stats import area_table

__all__ = [
    "TREND_FIELDS",
    "format_trend_summary",
    "mviupd_trend",
    "theil_sen_mann_kendall",
    "trend_array",
    "trend_map",
    "trend_summary",
]

#: Output fields of the kernel, in order along its last axis.
TREND_FIELDS = ("slope", "intercept", "tau", "p_value", "n_years")
# Pixels per inner batch of the kernel: bounds the (pixels x pairs) work arrays.
_BATCH = 2048


def _nanmedian_sorted(a: np.ndarray) -> np.ndarray:
    """Median along the last axis ignoring NaN, by one sort (NaN sort last)."""
    s = np.sort(a, axis=-1)
    k = np.isfinite(s).sum(axis=-1)
    lo = np.clip((k - 1) // 2, 0, None)
    hi = np.clip(k // 2, 0, None)
    rows = np.arange(s.shape[0])
    with np.errstate(invalid="ignore"):
        med = 0.5 * (s[rows, lo] + s[rows, hi])
    return np.where(k > 0, med, np.nan)


def _kernel_batch(v: np.ndarray, t: np.ndarray, min_count: int, continuity: bool) -> np.ndarray:
    n = v.shape[1]
    out = np.full((v.shape[0], len(TREND_FIELDS)), np.nan)
    valid = np.isfinite(v)
    k = valid.sum(axis=1)
    out[:, 4] = k
    if n < 2:
        return out
    i, j = np.triu_indices(n, 1)
    dv = v[:, j] - v[:, i]  # NaN when either year is missing
    slope = _nanmedian_sorted(dv / (t[j] - t[i]))
    tt = np.where(valid, t[None, :], np.nan)
    intercept = _nanmedian_sorted(v) - slope * _nanmedian_sorted(tt)
    s = np.nansum(np.sign(dv), axis=1)
    # c[p, a]: how many valid values of pixel p equal value a (itself included), so that
    # sum_a (c-1)(2c+5) = sum over tie groups of t(t-1)(2t+5), and sum_a (c-1)/2 = tied pairs
    c = (v[:, :, None] == v[:, None, :]).sum(axis=2)
    c = np.where(valid, c, 1)
    tie_term = ((c - 1) * (2 * c + 5)).sum(axis=1)
    tied_pairs = (c - 1).sum(axis=1) / 2.0
    kf = k.astype(np.float64)
    var_s = (kf * (kf - 1) * (2 * kf + 5) - tie_term) / 18.0
    n0 = kf * (kf - 1) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        z_num = s - np.sign(s) if continuity else s
        z = np.where(var_s > 0, z_num / np.sqrt(np.where(var_s > 0, var_s, 1.0)), 0.0)
        p = erfc(np.abs(z) / math.sqrt(2.0))
        tau = np.where(var_s > 0, s / np.sqrt(n0 * (n0 - tied_pairs)), 0.0)
    ok = k >= max(min_count, 2)
    constant = ok & (var_s <= 0)
    out[ok, 0] = np.where(constant[ok], 0.0, slope[ok])
    out[ok, 1] = intercept[ok]
    out[ok, 2] = tau[ok]
    out[ok, 3] = np.where(constant[ok], 1.0, p[ok])
    return out


def theil_sen_mann_kendall(
    values: np.ndarray,
    t: np.ndarray,
    *,
    min_count: int = 4,
    continuity: bool = True,
) -> np.ndarray:
    """Theil-Sen slope and Mann-Kendall test of many series at once (numpy kernel).

    Axis contract: ``values (..., n)`` with time LAST, ``t (n,)`` strictly increasing ->
    ``(..., 5)`` float64 holding slope, intercept, tau, p_value, n_years (the number of
    finite values), in the order of :data:`TREND_FIELDS`. Definitions in the module
    docstring. NaN values are missing years.

    Parameters
    ----------
    values : numpy.ndarray
    t : numpy.ndarray
        Times of the series (e.g. years), strictly increasing.
    min_count : int
        Fewest finite values for a result (else NaN, except n_years).
    continuity : bool
        Continuity correction of the Mann-Kendall Z.

    Raises
    ------
    QueryError
        ``t`` not 1-D, not matching ``values``' last axis, or not strictly increasing.
    """
    v = np.asarray(values, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    if t.ndim != 1 or v.ndim < 1 or v.shape[-1] != t.size:
        raise QueryError(
            f"trend kernel: expected values (..., n) and t (n,), got {v.shape} and {t.shape}"
        )
    if t.size > 1 and not (np.diff(t) > 0).all():
        raise QueryError("trend kernel: t must be strictly increasing")
    lead = v.shape[:-1]
    flat = v.reshape(-1, t.size)
    out = np.empty((flat.shape[0], len(TREND_FIELDS)))
    for a in range(0, flat.shape[0], _BATCH):
        out[a : a + _BATCH] = _kernel_batch(flat[a : a + _BATCH], t, min_count, continuity)
    return out.reshape(*lead, len(TREND_FIELDS))


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
    stats = area_table(view)
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
