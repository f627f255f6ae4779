"""Theil-Sen slopes and Mann-Kendall trend tests of many series at once (numpy kernel).

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
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erfc

from ..errors import QueryError
from .reduce import nanmedian

__all__ = ["TREND_FIELDS", "theil_sen_mann_kendall"]

#: Output fields of the kernel, in order along its last axis.
TREND_FIELDS = ("slope", "intercept", "tau", "p_value", "n_years")
# Pixels per inner batch of the kernel: bounds the (pixels x pairs) work arrays.
_BATCH = 2048


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
    slope = nanmedian(dv / (t[j] - t[i]), axis=-1)
    tt = np.where(valid, t[None, :], np.nan)
    intercept = nanmedian(v, axis=-1) - slope * nanmedian(tt, axis=-1)
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
