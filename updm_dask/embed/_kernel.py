"""Numpy kernels of the embedding: additive sums per pixel, features from sums, scaling.

No dask, no xarray, no I/O here. The embedding of a pixel (or of a neighbourhood) is computed
in two steps:

1. :func:`embedding_sums` reduces the observations of a block of time slots to a fixed set
   of SUMS per pixel (counts, sums, sums of squares, the normal equations of a harmonic
   regression). Sums are additive: the sums of a pixel over all its scenes are the sums
   over any split of its scenes into blocks, and the sums of a neighbourhood are the sums
   of its pixels. That is what keeps the dask reduction memory-bounded and makes a
   neighbourhood embedding a plain focal sum.
2. :func:`features_from_sums` turns the sums into the named features (means, fractions,
   standard deviations, trend and seasonal amplitude), with NaN where there is no data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..cube import LAND_COVER_CLASSES, QUALITY_NOT_CLEAR
from ..errors import QueryError
from ._period import EPOCH_FEATURES, PERIOD_FEATURES, Period

__all__ = [
    "CLEAR_CODES",
    "INPUTS",
    "MAX_TREND_CONDITION",
    "MIN_TREND_OBS",
    "MIN_TREND_TIME_STD_YEARS",
    "N_EPOCH_SUMS",
    "N_PERIOD_SUMS",
    "clear_mask",
    "embedding_sums",
    "features_from_sums",
    "impute_missing",
    "n_sums",
    "standardise",
    "time_axes",
]

#: Scene variables of the cube an embedding reads, in the argument order of
#: :func:`embedding_sums`.
INPUTS: tuple[str, ...] = (
    "land_cover",
    "quality",
    "uCw",
    "uCv",
    "uCs",
    "uC4",
    "residual",
    "mviupd",
)

_CODE = {name: code for code, name in LAND_COVER_CLASSES.items()}
WATER, VEGETATION, URBAN = _CODE["water"], _CODE["vegetation"], _CODE["non_vegetated"]
#: Land-cover codes of a clear observation: water, vegetation, urban.
CLEAR_CODES: tuple[int, ...] = (WATER, VEGETATION, URBAN)

# Layout of the sums of one epoch.
(
    _N_CLEAR,
    _N_WATER,
    _N_VEG,
    _N_URBAN,
    _N_COEF,
    _S_W,
    _S_V,
    _S_S,
    _N_C4,
    _S_C4,
    _N_MV,
    _S_MV,
    _S_MV2,
    _N_RES,
    _S_RES,
) = range(15)
N_EPOCH_SUMS = 15
# Period-wide sums: the normal equations X'X (upper triangle) and X'y of the regression
# mviupd ~ b0 + b1 t + b2 cos(phase) + b3 sin(phase) over the clear observations.
_PAIRS: tuple[tuple[int, int], ...] = tuple((i, j) for i in range(4) for j in range(i, 4))
N_PERIOD_SUMS = len(_PAIRS) + 4

#: The trend and seasonal amplitude need at least this many clear observations ...
MIN_TREND_OBS = 6
#: ... spread in time with at least this standard deviation (years) ...
MIN_TREND_TIME_STD_YEARS = 1.0
#: ... and a design matrix [1, t, cos, sin] whose normal matrix has at most this condition
#: number (a season seen only once or never makes cos/sin collinear with the intercept).
MAX_TREND_CONDITION = 1e4


def time_axes(times: Any, period: Period) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epoch index, trend time and seasonal phase of acquisition times.

    Axis contract: ``(time,)`` datetime64 -> three ``(time,)`` arrays, the ``epoch``,
    ``t`` and ``phase`` arguments of :func:`embedding_sums`.

    Parameters
    ----------
    times : array of datetime64
    period : Period

    Returns
    -------
    epoch : numpy.ndarray of int64
        Epoch of each time (-1 outside the period).
    t : numpy.ndarray of float64
        Decimal year minus the middle of the period, in decades.
    phase : numpy.ndarray of float64
        Fraction of the calendar year elapsed, times 2 pi.
    """
    tm = np.asarray(times).astype("datetime64[us]")
    year0 = tm.astype("datetime64[Y]")
    years = year0.astype(np.int64) + 1970
    start = year0.astype("datetime64[us]")
    length = (year0 + np.timedelta64(1, "Y")).astype("datetime64[us]") - start
    frac = (tm - start) / length
    epoch = period.epoch_of(years)
    t = (years + frac - period.middle) / 10.0
    return epoch, t.astype(np.float64), (2.0 * np.pi * frac).astype(np.float64)


def n_sums(n_epochs: int) -> int:
    """Number of sum channels for ``n_epochs`` epochs."""
    return n_epochs * N_EPOCH_SUMS + N_PERIOD_SUMS


def clear_mask(land_cover: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """True where an observation is clear.

    Clear: the class is water, vegetation or urban (not no_data, not cloud) and none of the
    ``QUALITY_NOT_CLEAR`` bits (fill, saturated, cloud, cloud shadow, SLC gap) is set; the
    same rule as the cube's per-year layers.
    """
    lc = np.asarray(land_cover)
    q = np.asarray(quality).astype(np.int64)
    return np.isin(lc, CLEAR_CODES) & ((q & QUALITY_NOT_CLEAR) == 0)


def embedding_sums(
    land_cover: np.ndarray,
    quality: np.ndarray,
    uCw: np.ndarray,
    uCv: np.ndarray,
    uCs: np.ndarray,
    uC4: np.ndarray,
    residual: np.ndarray,
    mviupd: np.ndarray,
    epoch: np.ndarray,
    t: np.ndarray,
    phase: np.ndarray,
    n_epochs: int,
) -> np.ndarray:
    """Additive sums of the clear observations of a block of time slots.

    Axis contract: eight arrays ``(time, ...)`` and three ``(time,)`` ->
    ``(n_sums(n_epochs), ...)`` float64.

    Parameters
    ----------
    land_cover, quality : numpy.ndarray of int
        Class codes and quality bits; only clear observations (:func:`clear_mask`) count.
    uCw, uCv, uCs, uC4, residual, mviupd : numpy.ndarray of float
        The cube's coefficients, fit residual and MVIUPD (NaN = missing).
    epoch : numpy.ndarray of int, shape (time,)
        Epoch index of each slot, -1 for slots outside the period (ignored).
    t : numpy.ndarray of float, shape (time,)
        Time of each slot in decades from the middle of the period.
    phase : numpy.ndarray of float, shape (time,)
        Position in the year, radians (0 at 1 January, 2 pi at the next).
    n_epochs : int

    Returns
    -------
    numpy.ndarray
        Per epoch (15 channels): clear count; water, vegetation, urban counts; count and
        sums of the illumination-normalised coefficients uCw/S, uCv/S, uCs/S (observations
        with finite uCw, uCv, uCs and S = uCw + uCv + uCs > 0); count and sum of uC4/S (also
        finite uC4); count, sum and sum of squares of MVIUPD (finite); count and sum of the
        residual (finite). Then the normal equations of the harmonic regression of MVIUPD
        on ``[1, t, cos(phase), sin(phase)]``: 10 entries of X'X and 4 of X'y.
    """
    lc = np.asarray(land_cover)
    arrays = [np.asarray(a, dtype=np.float64) for a in (uCw, uCv, uCs, uC4, residual, mviupd)]
    ep = np.asarray(epoch, dtype=np.int64)
    tt = np.asarray(t, dtype=np.float64)
    ph = np.asarray(phase, dtype=np.float64)
    shape = lc.shape
    if lc.ndim < 1 or np.shape(quality) != shape or any(a.shape != shape for a in arrays):
        raise QueryError(
            "embedding_sums: expected eight (time, ...) arrays of one shape, got "
            + ", ".join(str(np.shape(a)) for a in (lc, quality, *arrays))
        )
    if not (ep.shape == tt.shape == ph.shape == shape[:1]):
        raise QueryError(
            f"embedding_sums: epoch, t and phase must have shape {shape[:1]} (one per time "
            f"slot), got {ep.shape}, {tt.shape}, {ph.shape}"
        )
    w, v, s, c4, res, mv = arrays
    spatial = shape[1:]
    out = np.zeros((n_sums(n_epochs), *spatial), dtype=np.float64)
    if shape[0] == 0:
        return out
    bcast = (shape[0],) + (1,) * len(spatial)
    in_period = (ep >= 0).reshape(bcast)
    clear = clear_mask(lc, quality) & in_period
    with np.errstate(divide="ignore", invalid="ignore"):
        total = w + v + s
        coef_ok = clear & np.isfinite(total) & (total > 0)
        shares = [np.where(coef_ok, x / total, 0.0) for x in (w, v, s)]
        c4_ok = coef_ok & np.isfinite(c4)
        share4 = np.where(c4_ok, c4 / total, 0.0)
    mv_ok = clear & np.isfinite(mv)
    mv0 = np.where(mv_ok, mv, 0.0)
    res_ok = clear & np.isfinite(res)
    res0 = np.where(res_ok, res, 0.0)

    for e in np.unique(ep[ep >= 0]):
        if e >= n_epochs:
            raise QueryError(f"embedding_sums: epoch index {e} >= n_epochs {n_epochs}")
        sel = (ep == e).reshape(bcast)
        b = int(e) * N_EPOCH_SUMS
        ce = clear & sel
        out[b + _N_CLEAR] = ce.sum(axis=0)
        out[b + _N_WATER] = (ce & (lc == WATER)).sum(axis=0)
        out[b + _N_VEG] = (ce & (lc == VEGETATION)).sum(axis=0)
        out[b + _N_URBAN] = (ce & (lc == URBAN)).sum(axis=0)
        m = coef_ok & sel
        out[b + _N_COEF] = m.sum(axis=0)
        for k, x in zip((_S_W, _S_V, _S_S), shares, strict=True):
            out[b + k] = np.where(sel, x, 0.0).sum(axis=0)
        out[b + _N_C4] = (c4_ok & sel).sum(axis=0)
        out[b + _S_C4] = np.where(sel, share4, 0.0).sum(axis=0)
        out[b + _N_MV] = (mv_ok & sel).sum(axis=0)
        mvs = np.where(sel, mv0, 0.0)
        out[b + _S_MV] = mvs.sum(axis=0)
        out[b + _S_MV2] = (mvs * mvs).sum(axis=0)
        out[b + _N_RES] = (res_ok & sel).sum(axis=0)
        out[b + _S_RES] = np.where(sel, res0, 0.0).sum(axis=0)

    cols = [np.ones_like(tt), tt, np.cos(ph), np.sin(ph)]
    weight = mv_ok.astype(np.float64)
    p = n_epochs * N_EPOCH_SUMS
    for k, (i, j) in enumerate(_PAIRS):
        out[p + k] = np.tensordot(cols[i] * cols[j], weight, axes=(0, 0))
    for k in range(4):
        out[p + len(_PAIRS) + k] = np.tensordot(cols[k], mv0, axes=(0, 0))
    return out


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def features_from_sums(sums: np.ndarray, n_epochs: int) -> np.ndarray:
    """The raw (not standardised) features from :func:`embedding_sums` output.

    Axis contract: ``(n_sums(n_epochs), ...)`` -> ``(n_dims, ...)`` float32, the
    dimensions in the order of :attr:`Period.dimension_names`.

    A feature is NaN when its data are missing: the shares without an observation with
    usable coefficients; the supplementary share also without a finite uC4 (MSS has
    none); the MVIUPD mean without a finite MVIUPD, its standard deviation (sample,
    ``n - 1``) with fewer than two; the class fractions without a clear observation; the
    residual mean without a finite residual; trend and seasonal amplitude with fewer than
    :data:`MIN_TREND_OBS` observations, a time spread under
    :data:`MIN_TREND_TIME_STD_YEARS`, or an ill-conditioned regression
    (:data:`MAX_TREND_CONDITION`).
    """
    sums = np.asarray(sums, dtype=np.float64)
    if sums.ndim < 1 or sums.shape[0] != n_sums(n_epochs):
        raise QueryError(
            f"features_from_sums: expected {n_sums(n_epochs)} sum channels for {n_epochs} "
            f"epoch(s), got shape {sums.shape}"
        )
    spatial = sums.shape[1:]
    n_dims = n_epochs * len(EPOCH_FEATURES) + len(PERIOD_FEATURES)
    out = np.empty((n_dims, *spatial), dtype=np.float32)
    nf = len(EPOCH_FEATURES)
    for e in range(n_epochs):
        s = sums[e * N_EPOCH_SUMS : (e + 1) * N_EPOCH_SUMS]
        o = e * nf
        n_mv = s[_N_MV]
        mean_mv = _divide(s[_S_MV], n_mv)
        with np.errstate(invalid="ignore"):
            var = _divide(s[_S_MV2] - n_mv * mean_mv * np.nan_to_num(mean_mv), n_mv - 1)
        out[o + 0] = _divide(s[_S_W], s[_N_COEF])
        out[o + 1] = _divide(s[_S_V], s[_N_COEF])
        out[o + 2] = _divide(s[_S_S], s[_N_COEF])
        out[o + 3] = _divide(s[_S_C4], s[_N_C4])
        out[o + 4] = mean_mv
        out[o + 5] = np.sqrt(np.maximum(var, 0.0))  # NaN stays NaN
        out[o + 6] = _divide(s[_N_WATER], s[_N_CLEAR])
        out[o + 7] = _divide(s[_N_VEG], s[_N_CLEAR])
        out[o + 8] = _divide(s[_N_URBAN], s[_N_CLEAR])
        out[o + 9] = _divide(s[_S_RES], s[_N_RES])
    trend, amplitude = _harmonic_fit(sums[n_epochs * N_EPOCH_SUMS :])
    out[n_epochs * nf] = trend
    out[n_epochs * nf + 1] = amplitude
    return out


def _harmonic_fit(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Trend (MVIUPD per decade) and seasonal amplitude from the normal equations."""
    spatial = sums.shape[1:]
    flat = sums.reshape(sums.shape[0], -1)
    npix = flat.shape[1]
    xtx = np.empty((npix, 4, 4))
    for k, (i, j) in enumerate(_PAIRS):
        xtx[:, i, j] = xtx[:, j, i] = flat[k]
    xty = flat[len(_PAIRS) :].T
    n = xtx[:, 0, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_t = xtx[:, 0, 1] / n
        var_t = xtx[:, 1, 1] / n - mean_t**2
    # t is in decades: a standard deviation of 1 year is 0.1 decade
    ok = (n >= MIN_TREND_OBS) & (var_t >= (MIN_TREND_TIME_STD_YEARS / 10.0) ** 2)
    trend = np.full(npix, np.nan)
    amplitude = np.full(npix, np.nan)
    if ok.any():
        a = xtx[ok]
        cond = np.linalg.cond(a)
        good = np.flatnonzero(ok)[np.isfinite(cond) & (cond <= MAX_TREND_CONDITION)]
        if good.size:
            beta = np.linalg.solve(xtx[good], xty[good][..., None])[..., 0]
            trend[good] = beta[:, 1]
            amplitude[good] = np.hypot(beta[:, 2], beta[:, 3])
    return trend.reshape(spatial), amplitude.reshape(spatial)


def standardise(raw: np.ndarray, mean: np.ndarray, std: np.ndarray, *, axis: int = 0) -> np.ndarray:
    """``(raw - mean) / std`` along the dimension ``axis``, float32.

    A dimension with ``std == 0`` (constant over the reference pixels) gives 0 wherever
    the raw value is finite; a dimension with no reference data (NaN mean or std) gives
    NaN; a NaN raw value stays NaN.
    """
    raw = np.asarray(raw, dtype=np.float64)
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    axis = axis % raw.ndim
    if mean.shape != (raw.shape[axis],) or std.shape != mean.shape:
        raise QueryError(
            f"standardise: {raw.shape[axis]} dimensions along axis {axis} but statistics of "
            f"shape {mean.shape} and {std.shape}"
        )
    shape = [1] * raw.ndim
    shape[axis] = -1
    m = mean.reshape(shape)
    sd = std.reshape(shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, (raw - m) / np.where(sd > 0, sd, 1.0), 0.0 * (raw - m))
    z = np.where(np.isfinite(sd) & np.isfinite(m), z, np.nan)
    return z.astype(np.float32)


def impute_missing(z: np.ndarray) -> np.ndarray:
    """Missing (NaN) standardised values -> 0, the reference mean: no evidence either way."""
    z = np.asarray(z)
    return np.where(np.isfinite(z), z, 0.0).astype(np.float32)
