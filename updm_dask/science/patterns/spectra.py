"""Spectra math, eqs. (12)-(16) of the method: numpy kernels that know nothing of sensors.

:func:`normalise_spectrum` (eqs. 12-13), :func:`band_average` (eq. 14, box-car),
:func:`rsr_average` (eq. 14 weighted by a spectral response function) and
:func:`fit_supplementary` (eqs. 15-16). The spectral axis is last: ``values`` is (..., n) on
``wavelength_nm`` (n,).

Every integral is the exact integral of the piecewise-linear interpolant of the tabulated
values (never point sampling), so results do not depend on how finely a spectrum happens
to be tabulated between its knots.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import nnls

from ...errors import PatternError

__all__ = [
    "NORMALISATION_RANGE_NM",
    "band_average",
    "fit_supplementary",
    "normalise_spectrum",
    "rsr_average",
]

#: The window over which UPDM normalises a spectrum (eqs. 12-13), in nm.
NORMALISATION_RANGE_NM = (350.0, 2500.0)


def _as_grid(wavelength_nm: Any, what: str = "wavelength_nm") -> np.ndarray:
    wl = np.asarray(wavelength_nm, dtype=np.float64)
    if wl.ndim != 1 or wl.size < 2:
        raise PatternError(f"{what} must be a 1-D array of at least 2 wavelengths, got {wl.shape}")
    if not np.all(np.isfinite(wl)):
        raise PatternError(f"{what} holds NaN or infinite wavelengths")
    steps = np.diff(wl)
    if np.any(steps <= 0):
        i = int(np.argmax(steps <= 0))
        raise PatternError(
            f"{what} must increase strictly; element {i + 1} ({wl[i + 1]} nm) follows {wl[i]} nm"
        )
    return wl


def _as_values(values: Any, n: int, what: str = "values") -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 0 or v.shape[-1] != n:
        raise PatternError(
            f"{what} must have the wavelength axis last with {n} points, got shape {v.shape}"
        )
    return v


def _interp(x: np.ndarray, wl: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Piecewise-linear interpolant of ``values`` (..., n) at points ``x`` inside the grid."""
    i = np.clip(np.searchsorted(wl, x, side="right") - 1, 0, wl.size - 2)
    t = (x - wl[i]) / (wl[i + 1] - wl[i])
    return values[..., i] * (1.0 - t) + values[..., i + 1] * t


def _knots(wl: np.ndarray, lo: float, hi: float, extra: np.ndarray | None = None) -> np.ndarray:
    inside = wl[(wl > lo) & (wl < hi)]
    parts = [np.array([lo]), inside, np.array([hi])]
    if extra is not None:
        parts.append(extra[(extra > lo) & (extra < hi)])
    return np.unique(np.concatenate(parts))


def _check_covers(wl: np.ndarray, lo: float, hi: float, what: str) -> None:
    if lo < wl[0] or hi > wl[-1]:
        raise PatternError(
            f"{what} needs the spectrum over {lo:g}-{hi:g} nm, but it covers only "
            f"{wl[0]:g}-{wl[-1]:g} nm"
        )


def _integral(wl: np.ndarray, values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Exact integral over [lo, hi] of the piecewise-linear interpolant (trapezoid rule)."""
    x = _knots(wl, lo, hi)
    y = _interp(x, wl, values)
    return np.sum(0.5 * (y[..., 1:] + y[..., :-1]) * np.diff(x), axis=-1)


def _abs_integral(wl: np.ndarray, values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Exact integral over [lo, hi] of |piecewise-linear interpolant|.

    On a segment whose ends a, b have opposite signs the interpolant crosses zero, and the
    area of |f| is h (a^2 + b^2) / (2 (|a| + |b|)) rather than the trapezoid h (|a|+|b|)/2.
    """
    x = _knots(wl, lo, hi)
    y = _interp(x, wl, values)
    a, b, h = y[..., :-1], y[..., 1:], np.diff(x)
    sa, sb = np.abs(a), np.abs(b)
    crossing = (a * b) < 0
    denom = np.where(crossing, sa + sb, 1.0)
    area = np.where(crossing, h * (a * a + b * b) / (2.0 * denom), 0.5 * h * (sa + sb))
    return np.sum(area, axis=-1)


def normalise_spectrum(
    wavelength_nm: Any,
    reflectance: Any,
    lo_nm: float = NORMALISATION_RANGE_NM[0],
    hi_nm: float = NORMALISATION_RANGE_NM[1],
) -> np.ndarray:
    """Scale a spectrum so its mean absolute value over 350-2500 nm is 1 (UPDM eqs. 12-13).

    ``P(l) = R(l) * Int(dl) / Int(|R(l)| dl)``, both integrals over [lo_nm, hi_nm] of the
    piecewise-linear interpolant of the tabulated values (exact, zero crossings included).

    Parameters
    ----------
    wavelength_nm
        Strictly increasing wavelengths (nm), shape (n,); must cover [lo_nm, hi_nm].
    reflectance
        Values on that grid, spectral axis last: (..., n).
    lo_nm, hi_nm
        The normalisation window; the method's is 350-2500 nm.

    Returns
    -------
    numpy.ndarray
        The normalised spectrum, same shape as ``reflectance``, float64.

    Raises
    ------
    PatternError
        If the grid is malformed, does not cover the window, a value is not finite, or the
        spectrum is zero over the whole window (it cannot be normalised).
    """
    wl = _as_grid(wavelength_nm)
    r = _as_values(reflectance, wl.size, "reflectance")
    if not np.all(np.isfinite(r)):
        raise PatternError("reflectance holds NaN or infinite values; normalisation needs all")
    _check_covers(wl, lo_nm, hi_nm, "normalisation (eqs. 12-13)")
    area = _abs_integral(wl, r, lo_nm, hi_nm)
    if np.any(area <= 0):
        raise PatternError(
            f"the spectrum is zero over {lo_nm:g}-{hi_nm:g} nm and cannot be normalised"
        )
    return r * ((hi_nm - lo_nm) / area)[..., np.newaxis]


def band_average(wavelength_nm: Any, values: Any, lo_um: float, hi_um: float) -> np.ndarray:
    """Box-car band average of a spectrum over [lo_um, hi_um] (UPDM eq. 14).

    ``P_i = Int_{lo}^{hi} P(l) dl / (hi - lo)``, the exact integral of the piecewise-linear
    interpolant (not a sample at the band's grid points).

    Parameters
    ----------
    wavelength_nm
        Strictly increasing wavelengths (nm), shape (n,).
    values
        Spectrum (or stack of spectra), spectral axis last: (..., n).
    lo_um, hi_um
        Band edges in micrometres, as in :class:`updm_dask.science.sensors.BandSpec`.

    Returns
    -------
    numpy.ndarray
        Shape ``values.shape[:-1]`` (a 0-d array for one spectrum).
    """
    wl = _as_grid(wavelength_nm)
    v = _as_values(values, wl.size)
    # Round so 0.45 um -> exactly 450 nm and band edges on the grid are recognised as knots.
    lo, hi = round(float(lo_um) * 1000.0, 9), round(float(hi_um) * 1000.0, 9)
    if not hi > lo:
        raise PatternError(f"band edges must satisfy lo < hi, got {lo_um} and {hi_um} um")
    _check_covers(wl, lo, hi, f"band {lo_um:g}-{hi_um:g} um")
    return _integral(wl, v, lo, hi) / (hi - lo)


def rsr_average(
    wavelength_nm: Any, values: Any, rsr_wavelength_nm: Any, response: Any
) -> np.ndarray:
    """Average of a spectrum weighted by a spectral response function (RSR).

    ``P_i = Int P(l) S(l) dl / Int S(l) dl`` where P and S are the piecewise-linear
    interpolants of their own tables and S is 0 outside its tabulated range. Published RSRs
    carry tiny negative tail values (down to -0.009 for ETM+ band 7); a weight cannot be
    negative, so they are clipped to 0 here. On the merged knots both functions are linear,
    so their product is quadratic on every segment and Simpson's rule integrates it exactly.

    Parameters
    ----------
    wavelength_nm
        Spectrum grid (nm), shape (n,).
    values
        Spectrum (or stack), spectral axis last: (..., n).
    rsr_wavelength_nm
        RSR grid (nm), shape (m,), strictly increasing.
    response
        RSR on that grid, shape (m,).

    Returns
    -------
    numpy.ndarray
        Shape ``values.shape[:-1]``.

    Raises
    ------
    PatternError
        If the RSR has no positive weight, or the spectrum does not cover the wavelengths
        where the RSR is positive.
    """
    wl = _as_grid(wavelength_nm)
    v = _as_values(values, wl.size)
    rw = _as_grid(rsr_wavelength_nm, "rsr_wavelength_nm")
    s = np.clip(_as_values(response, rw.size, "response"), 0.0, None)
    if s.ndim != 1 or not np.all(np.isfinite(s)) or not np.any(s > 0):
        raise PatternError("response must be a finite 1-D RSR with at least one positive value")
    positive = np.flatnonzero(s > 0)
    # The weight is non-zero strictly between the knots that bracket the positive values.
    i0, i1 = max(positive[0] - 1, 0), min(positive[-1] + 1, rw.size - 1)
    lo, hi = rw[i0], rw[i1]
    _check_covers(wl, lo, hi, "RSR-weighted band average")
    x = _knots(wl, lo, hi, extra=rw)
    mid = 0.5 * (x[1:] + x[:-1])
    h = np.diff(x)
    f0, f1, fm = _interp(x[:-1], wl, v), _interp(x[1:], wl, v), _interp(mid, wl, v)
    g0, g1, gm = _interp(x[:-1], rw, s), _interp(x[1:], rw, s), _interp(mid, rw, s)
    numerator = np.sum(h / 6.0 * (f0 * g0 + 4.0 * fm * gm + f1 * g1), axis=-1)
    denominator = np.sum(0.5 * h * (g0 + g1))
    return numerator / denominator


def fit_supplementary(
    wavelength_nm: Any, standard: Any, yellow_leaf: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Fit the standard patterns to the yellow-leaf spectrum; return coefficients and residual.

    UPDM eq. (15): ``r4(l) = R4(l) - (uCw Pw(l) + uCv Pv(l) + uCs Ps(l))`` with the
    coefficients found by non-negative least squares (:func:`scipy.optimize.nnls`) over the
    continuous spectrum: every grid point inside 350-2500 nm is one equation, all with the
    same weight.

    Parameters
    ----------
    wavelength_nm
        Grid (nm), shape (n,).
    standard
        The normalised standard patterns, shape (k, n) (water, vegetation, soil).
    yellow_leaf
        The yellow-leaf spectrum R4, shape (n,).

    Returns
    -------
    coefficients : numpy.ndarray
        Shape (k,), all >= 0.
    residual : numpy.ndarray
        r4 on the whole grid, shape (n,). Normalise it with :func:`normalise_spectrum` to
        get the supplementary pattern P4 (eq. 16).
    """
    wl = _as_grid(wavelength_nm)
    a = _as_values(standard, wl.size, "standard")
    b = _as_values(yellow_leaf, wl.size, "yellow_leaf")
    if a.ndim != 2 or b.ndim != 1:
        raise PatternError(
            f"standard must be (k, n) and yellow_leaf (n,), got {a.shape}, {b.shape}"
        )
    lo, hi = NORMALISATION_RANGE_NM
    inside = (wl >= lo) & (wl <= hi)
    coefficients, _ = nnls(a[:, inside].T, b[inside])
    return coefficients, b - coefficients @ a
