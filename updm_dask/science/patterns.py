"""The UPDM standard spectral patterns: eqs. (12)-(16) of the method.

UPDM describes every pixel as a non-negative mix of a few standard spectral patterns
(water, vegetation, soil and an optional supplementary pattern). The patterns are defined
once, from continuous reflectance spectra over 350-2500 nm, and band-averaged for each
sensor; that is what makes the coefficients sensor-independent.

Three layers, as everywhere in the package:

- numpy kernels that know nothing about sensors: :func:`normalise_spectrum` (eqs. 12-13),
  :func:`band_average` (eq. 14, box-car), :func:`rsr_average` (eq. 14 weighted by a
  spectral response function) and :func:`fit_supplementary` (eqs. 15-16);
- :class:`PatternSet`, a frozen, content-hashed bundle of the four continuous spectra
  (water, vegetation, soil, yellow leaf), with :func:`default_pattern_set` (the open
  stand-in spectra shipped in ``updm_dask/data``) and :func:`load_pattern_set` (a user's
  own spectra from CSV);
- :func:`band_patterns`, the labelled ``(band, pattern)`` matrix a sensor's decomposition
  uses, cached because every chunk of every scene asks for it.

Every integral is the exact integral of the piecewise-linear interpolant of the tabulated
values (never point sampling), so results do not depend on how finely a spectrum happens
to be tabulated between its knots.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import xarray as xr
from scipy.optimize import nnls

from ..errors import PatternError, SensorError
from .sensors import SENSOR_NAMES, Sensor, get_sensor

__all__ = [
    "DEFAULT_PATTERN_SET_NAME",
    "KINDS",
    "NORMALISATION_RANGE_NM",
    "STANDARD_KINDS",
    "PatternSet",
    "band_average",
    "band_patterns",
    "default_pattern_set",
    "fit_supplementary",
    "load_pattern_set",
    "load_rsr",
    "normalise_spectrum",
    "rsr_average",
]

KINDS = ("water", "vegetation", "soil", "yellow_leaf")
STANDARD_KINDS = ("water", "vegetation", "soil")
PATTERN_NAMES = (*STANDARD_KINDS, "supplementary")
NORMALISATION_RANGE_NM = (350.0, 2500.0)
DEFAULT_PATTERN_SET_NAME = "open-standin-v1"
METHODS = ("boxcar", "rsr")

_DATA = resources.files("updm_dask") / "data"
_DEFAULT_TABLE = "standard_spectra.csv"
_DEFAULT_SOURCES = {
    "water": "6S clear water (sixs90 CLEARW.f90 @ 1836cf43), 400 nm value held below 400 nm",
    "vegetation": "6S vegetation (sixs90 VEGETA.f90 @ 1836cf43), 400 nm value held below 400 nm",
    "soil": "earthlib 1.1.0 mean of the 39 'sand' spectra, gaps bridged linearly, ends held",
    "yellow_leaf": "earthlib 1.1.0 'goldgras' (senescent golden grass), gaps bridged, ends held",
    "table": "updm_dask/data/standard_spectra.csv; provenance in updm_dask/data/README.md",
}
_RSR_TABLES = {
    "TM4": "rsr_tm_l4.csv",
    "TM5": "rsr_tm_l5.csv",
    "ETM+7": "rsr_etm_l7.csv",
    "OLI8": "rsr_oli_l8.csv",
    "OLI-29": "rsr_oli_l9.csv",
}
_RSR_MSS_TABLE = "rsr_mss.csv"  # one generic MSS set, labelled 1-4, for Landsat 1-5


# --------------------------------------------------------------------------------------
# Kernels (numpy only). Spectral axis last: ``values`` is (..., n) on ``wavelength_nm`` (n,).


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


# --------------------------------------------------------------------------------------
# Pattern sets


def _readonly(a: Any) -> np.ndarray:
    # "+ 0.0" turns -0.0 into 0.0 so equal numbers always hash to equal bytes.
    out = np.ascontiguousarray(np.asarray(a, dtype=np.float64) + 0.0)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class PatternSet:
    """The four continuous spectra UPDM derives its patterns from, with their provenance.

    Parameters
    ----------
    name
        Identifier recorded with every result (e.g. ``"open-standin-v1"``).
    wavelength_nm
        Strictly increasing wavelengths (nm) covering at least 350-2500 nm.
    spectra
        ``"water"``, ``"vegetation"``, ``"soil"``, ``"yellow_leaf"`` -> reflectance on the
        grid (any linear scale: normalisation removes it).
    sources
        Provenance: a mapping (column -> description) or a single string.

    Notes
    -----
    Arrays are stored read-only. Equality, ``hash`` and the dask token depend only on the
    numbers (:attr:`sha256`), not on ``name`` or ``sources``.
    """

    name: str
    wavelength_nm: np.ndarray
    spectra: Mapping[str, np.ndarray]
    sources: Mapping[str, str] | str = ""
    _sha256: str = field(init=False, repr=False, compare=False, default="")
    _cache: dict = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise PatternError(f"pattern set name must be a non-empty string, got {self.name!r}")
        wl = _readonly(_as_grid(self.wavelength_nm, f"pattern set {self.name!r} wavelength_nm"))
        lo, hi = NORMALISATION_RANGE_NM
        if wl[0] > lo or wl[-1] < hi:
            raise PatternError(
                f"pattern set {self.name!r} covers {wl[0]:g}-{wl[-1]:g} nm; UPDM normalises "
                f"over {lo:g}-{hi:g} nm (eqs. 12-13), so the spectra must cover that range"
            )
        if not isinstance(self.spectra, Mapping):
            raise PatternError(f"pattern set {self.name!r}: spectra must be a mapping")
        missing = [k for k in KINDS if k not in self.spectra]
        unknown = [k for k in self.spectra if k not in KINDS]
        if missing or unknown:
            raise PatternError(
                f"pattern set {self.name!r} needs spectra {', '.join(KINDS)}; missing: "
                f"{', '.join(missing) or 'none'}; unexpected: "
                f"{', '.join(map(str, unknown)) or 'none'}"
            )
        spectra = {}
        for kind in KINDS:
            values = np.asarray(self.spectra[kind], dtype=np.float64)
            if values.shape != wl.shape:
                raise PatternError(
                    f"pattern set {self.name!r}: spectrum {kind!r} has shape {values.shape}, "
                    f"the wavelength grid {wl.shape}"
                )
            if not np.all(np.isfinite(values)):
                raise PatternError(f"pattern set {self.name!r}: spectrum {kind!r} holds NaN/inf")
            spectra[kind] = _readonly(values)
        sources = "" if self.sources is None else self.sources
        if isinstance(sources, str):
            sources = str(sources)
        elif isinstance(sources, Mapping):
            sources = MappingProxyType({str(k): str(v) for k, v in sources.items()})
        else:
            raise PatternError(
                f"pattern set {self.name!r}: sources must be a mapping or a string, "
                f"got {type(sources).__name__}"
            )
        digest = hashlib.sha256(wl.astype("<f8").tobytes())
        for kind in KINDS:
            digest.update(spectra[kind].astype("<f8").tobytes())
        object.__setattr__(self, "wavelength_nm", wl)
        object.__setattr__(self, "spectra", MappingProxyType(spectra))
        object.__setattr__(self, "sources", sources)
        object.__setattr__(self, "_sha256", digest.hexdigest())

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the numbers: float64 little-endian bytes of the grid, then water,
        vegetation, soil, yellow_leaf. Independent of name, sources and machine."""
        return self._sha256

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PatternSet):
            return NotImplemented
        return self._sha256 == other._sha256

    def __hash__(self) -> int:
        return hash(self._sha256)

    def __repr__(self) -> str:
        wl = self.wavelength_nm
        return (
            f"PatternSet(name={self.name!r}, {wl.size} wavelengths {wl[0]:g}-{wl[-1]:g} nm, "
            f"sha256={self._sha256[:12]}...)"
        )

    def __dask_tokenize__(self) -> str:
        return self._sha256

    def __reduce__(self):
        # mappingproxy does not pickle; rebuild from plain values (validation runs again).
        sources = self.sources if isinstance(self.sources, str) else dict(self.sources)
        spectra = {k: np.array(v) for k, v in self.spectra.items()}
        return (PatternSet, (self.name, np.array(self.wavelength_nm), spectra, sources))

    def normalised(self, kind: str) -> np.ndarray:
        """Normalised continuous pattern P_k (eqs. 12-13) on :attr:`wavelength_nm`.

        ``kind`` is one of ``water``, ``vegetation``, ``soil``, ``yellow_leaf`` or
        ``supplementary`` (then the same as :meth:`supplementary`). Read-only array.
        """
        if kind == "supplementary":
            return self.supplementary()
        if kind not in KINDS:
            raise PatternError(
                f"unknown pattern kind {kind!r}; expected one of {', '.join(KINDS)}, supplementary"
            )
        key = ("normalised", kind)
        if key not in self._cache:
            self._cache[key] = _readonly(normalise_spectrum(self.wavelength_nm, self.spectra[kind]))
        return self._cache[key]

    def supplementary_fit(self) -> tuple[dict[str, float], np.ndarray]:
        """NNLS fit of the normalised standard patterns to the yellow-leaf spectrum (eq. 15).

        Returns
        -------
        coefficients : dict
            ``{"water": uCw, "vegetation": uCv, "soil": uCs}``, all >= 0.
        residual : numpy.ndarray
            r4 on :attr:`wavelength_nm` (before normalisation), read-only.
        """
        if "fit" not in self._cache:
            standard = np.stack([self.normalised(k) for k in STANDARD_KINDS])
            coef, residual = fit_supplementary(
                self.wavelength_nm, standard, self.spectra["yellow_leaf"]
            )
            self._cache["fit"] = (coef, _readonly(residual))
        coef, residual = self._cache["fit"]
        return dict(zip(STANDARD_KINDS, map(float, coef), strict=True)), residual

    def supplementary(self) -> np.ndarray:
        """The continuous supplementary pattern P4 (eqs. 15-16), read-only."""
        if "supplementary" not in self._cache:
            _, residual = self.supplementary_fit()
            try:
                p4 = normalise_spectrum(self.wavelength_nm, residual)
            except PatternError as exc:
                raise PatternError(
                    f"pattern set {self.name!r}: the yellow-leaf spectrum is fitted exactly "
                    "by the standard patterns, so there is no supplementary pattern"
                ) from exc
            self._cache["supplementary"] = _readonly(p4)
        return self._cache["supplementary"]

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write the set as ``wavelength_nm,water,vegetation,soil,yellow_leaf`` (exact floats).

        Reading the file back with :func:`load_pattern_set` gives an equal set (same sha256).
        """
        target = Path(path)
        with target.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["wavelength_nm", *KINDS])
            columns = [self.wavelength_nm, *(self.spectra[k] for k in KINDS)]
            for row in zip(*columns, strict=True):
                writer.writerow([repr(float(x)) for x in row])
        return target


# --------------------------------------------------------------------------------------
# Reading spectra from CSV


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, cells) of a CSV; ``#`` comment lines and blank lines skipped."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise PatternError(f"spectrum file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PatternError(f"spectrum file {path} cannot be read as UTF-8 text: {exc}") from None
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    for lineno, cells in enumerate(csv.reader(text.splitlines()), start=1):
        if not cells or not "".join(cells).strip() or cells[0].lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in cells]
        if header is None:
            header = cells
        else:
            rows.append((lineno, cells))
    if header is None:
        raise PatternError(f"spectrum file {path} is empty; expected a header line")
    return header, rows


def _parse_columns(
    path: Path, wanted: Sequence[str], header: list[str], rows: list[tuple[int, list[str]]]
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    seen = set()
    for name in header:
        if name in seen:
            raise PatternError(f"{path}: column {name!r} appears twice in the header")
        seen.add(name)
    expected = ["wavelength_nm", *wanted]
    missing = [c for c in expected if c not in header]
    if missing:
        raise PatternError(
            f"{path}: missing column(s) {', '.join(missing)}; the header is "
            f"{','.join(header)!r}, expected columns {', '.join(expected)}"
        )
    unknown = [c for c in header if c not in expected]
    if unknown:
        raise PatternError(
            f"{path}: unexpected column(s) {', '.join(unknown)}; expected exactly "
            f"{', '.join(expected)}"
        )
    if len(rows) < 2:
        raise PatternError(f"{path}: needs at least 2 data rows, found {len(rows)}")
    index = {name: header.index(name) for name in expected}
    data = {name: np.empty(len(rows)) for name in expected}
    lines = np.array([lineno for lineno, _ in rows])
    for r, (lineno, cells) in enumerate(rows):
        if len(cells) != len(header):
            raise PatternError(
                f"{path}, line {lineno}: {len(cells)} cells, but the header has {len(header)}"
            )
        for name, i in index.items():
            cell = cells[i]
            try:
                value = float(cell)
            except ValueError:
                what = "is empty" if cell == "" else f"{cell!r} is not a number"
                raise PatternError(f"{path}, line {lineno}, column {name!r}: {what}") from None
            if not math.isfinite(value):
                raise PatternError(
                    f"{path}, line {lineno}, column {name!r}: {cell!r} is not a finite number; "
                    "remove or interpolate gaps instead of writing NaN"
                )
            data[name][r] = value
    wl = data.pop("wavelength_nm")
    steps = np.diff(wl)
    if np.any(steps <= 0):
        i = int(np.argmax(steps <= 0)) + 1
        raise PatternError(
            f"{path}, line {lines[i]}, column 'wavelength_nm': {wl[i]:g} nm does not increase "
            f"on the previous row (line {lines[i - 1]}: {wl[i - 1]:g} nm); wavelengths must "
            "increase strictly"
        )
    return wl, data, lines


def _check_negative(
    path: Path, column: str, values: np.ndarray, lines: np.ndarray, tolerance: float
) -> None:
    floor = -tolerance * float(np.max(np.abs(values)))
    bad = np.flatnonzero(values < floor)
    if bad.size:
        i = int(bad[0])
        raise PatternError(
            f"{path}, line {lines[i]}, column {column!r}: reflectance {values[i]:g} is negative "
            f"beyond the tolerance ({tolerance:g} x the column's peak |value| = {-floor:g}); "
            f"{bad.size} value(s) affected"
        )


def _needed_band_range_nm() -> tuple[float, float]:
    """The box-car span of every UPDM band of every supported sensor, in nm."""
    # Band edges do not depend on the satellite, only labels do.
    edges = [
        (b.wavelength_min_um, b.wavelength_max_um)
        for name in SENSOR_NAMES
        for b in get_sensor(name).bands
    ]
    return (
        round(min(lo for lo, _ in edges) * 1000.0, 9),
        round(max(hi for _, hi in edges) * 1000.0, 9),
    )


def _covered(
    path: Path, column: str, wl: np.ndarray, values: np.ndarray, fill_edges: bool
) -> tuple[np.ndarray, np.ndarray, str]:
    lo, hi = NORMALISATION_RANGE_NM
    if wl[0] <= lo and wl[-1] >= hi:
        return wl, values, ""
    band_lo, band_hi = _needed_band_range_nm()
    if not fill_edges:
        raise PatternError(
            f"{path}, column {column!r}: the spectrum covers {wl[0]:g}-{wl[-1]:g} nm, but UPDM "
            f"normalises over {lo:g}-{hi:g} nm (eqs. 12-13); supply values over that range, or "
            f"pass fill_edges=True to hold the end values constant (the data must then still "
            f"cover the sensors' bands, {band_lo:g}-{band_hi:g} nm)"
        )
    if wl[0] > band_lo or wl[-1] < band_hi:
        raise PatternError(
            f"{path}, column {column!r}: the spectrum covers {wl[0]:g}-{wl[-1]:g} nm, which does "
            f"not reach the bands UPDM averages over ({band_lo:g}-{band_hi:g} nm for MSS, TM, "
            "ETM+, OLI and OLI-2)"
        )
    note = []
    if wl[0] > lo:
        wl, values = np.concatenate([[lo], wl]), np.concatenate([[values[0]], values])
        note.append(f"value at {wl[1]:g} nm held down to {lo:g} nm")
    if wl[-1] < hi:
        wl, values = np.concatenate([wl, [hi]]), np.concatenate([values, [values[-1]]])
        note.append(f"value at {wl[-2]:g} nm held up to {hi:g} nm")
    return wl, values, "; ".join(note)


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_pattern_set(
    path_or_paths: str | os.PathLike | Mapping[str, str | os.PathLike] | Sequence,
    name: str | None = None,
    *,
    fill_edges: bool = False,
    negative_tolerance: float = 0.01,
) -> PatternSet:
    """Read a user's four standard spectra from CSV into a :class:`PatternSet`.

    Two layouts are accepted:

    - one file with the header ``wavelength_nm,water,vegetation,soil,yellow_leaf``;
    - four single-spectrum files, given as a mapping ``{"water": path, ...}`` or as a
      sequence in the order water, vegetation, soil, yellow_leaf; each has the header
      ``wavelength_nm,reflectance`` (or ``wavelength_nm,<kind>``). Their grids may differ:
      the set uses the union of their wavelengths, where each spectrum's piecewise-linear
      interpolant is evaluated (which keeps every spectrum exactly as given).

    Wavelengths are in nm and must increase strictly. Reflectance may be a fraction or per
    cent (normalisation removes the scale). Lines starting with ``#`` are skipped.

    Parameters
    ----------
    path_or_paths
        The wide file, or the four single-spectrum files.
    name
        Name recorded with every result; defaults to the file name (stem).
    fill_edges
        If a spectrum does not reach 350 or 2500 nm, hold its end values constant out to
        them (as the shipped default set does) instead of raising. It must still cover the
        bands of every supported sensor (450-2350 nm).
    negative_tolerance
        Small negative values (instrument noise) are accepted down to
        ``-negative_tolerance`` x the column's largest absolute value.

    Returns
    -------
    PatternSet

    Raises
    ------
    PatternError
        Naming the file, line and column: missing or unexpected columns, cells that are
        empty, non-numeric, NaN or infinite, wavelengths that do not increase, reflectance
        negative beyond the tolerance, a spectrum that is zero everywhere, or coverage that
        does not reach 350-2500 nm (or, with ``fill_edges``, the sensors' bands).
    """
    if isinstance(path_or_paths, (str, os.PathLike)):
        path = Path(path_or_paths)
        header, rows = _read_rows(path)
        wl, columns, lines = _parse_columns(path, KINDS, header, rows)
        grids, sources = [], {}
        for kind in KINDS:
            _check_negative(path, kind, columns[kind], lines, negative_tolerance)
            if not np.any(columns[kind] != 0):
                raise PatternError(f"{path}, column {kind!r}: all values are 0; cannot normalise")
            kw, kv, note = _covered(path, kind, wl, columns[kind], fill_edges)
            grids.append((kw, kv))
            sources[kind] = f"{path.name} column {kind}" + (f" ({note})" if note else "")
        sources["file_sha256"] = _file_digest(path)
        default_name = path.stem
    else:
        paths = _as_path_mapping(path_or_paths)
        grids, sources = [], {}
        for kind in KINDS:
            path = paths[kind]
            header, rows = _read_rows(path)
            column = "reflectance" if "reflectance" in header or kind not in header else kind
            wl, columns, lines = _parse_columns(path, [column], header, rows)
            values = columns[column]
            _check_negative(path, column, values, lines, negative_tolerance)
            if not np.any(values != 0):
                raise PatternError(f"{path}, column {column!r}: all values are 0; cannot normalise")
            kw, kv, note = _covered(path, column, wl, values, fill_edges)
            grids.append((kw, kv))
            sources[kind] = f"{path.name} column {column} (sha256 {_file_digest(path)})" + (
                f"; {note}" if note else ""
            )
        default_name = "+".join(paths[k].stem for k in KINDS)
    grid, spectra = _merge_grids(grids)
    return PatternSet(name or default_name, grid, spectra, sources)


def _as_path_mapping(arg: Any) -> dict[str, Path]:
    if isinstance(arg, Mapping):
        missing = [k for k in KINDS if k not in arg]
        unknown = [k for k in arg if k not in KINDS]
        if missing or unknown:
            raise PatternError(
                f"the spectrum files must be keyed {', '.join(KINDS)}; missing: "
                f"{', '.join(missing) or 'none'}; unexpected: "
                f"{', '.join(map(str, unknown)) or 'none'}"
            )
        return {k: Path(arg[k]) for k in KINDS}
    if isinstance(arg, Iterable):
        items = list(arg)
        if len(items) != len(KINDS):
            raise PatternError(
                f"expected one wide CSV or {len(KINDS)} single-spectrum files "
                f"({', '.join(KINDS)}), got {len(items)} paths"
            )
        return {k: Path(p) for k, p in zip(KINDS, items, strict=True)}
    raise PatternError(
        f"path_or_paths must be a path, a mapping kind -> path or 4 paths, got {type(arg).__name__}"
    )


def _merge_grids(
    grids: list[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    first = grids[0][0]
    if all(g.shape == first.shape and np.array_equal(g, first) for g, _ in grids):
        return first, {k: v for k, (_, v) in zip(KINDS, grids, strict=True)}
    lo = max(g[0] for g, _ in grids)
    hi = min(g[-1] for g, _ in grids)
    union = np.unique(np.concatenate([g[(g >= lo) & (g <= hi)] for g, _ in grids]))
    return union, {k: _interp(union, g, v) for k, (g, v) in zip(KINDS, grids, strict=True)}


@functools.cache
def default_pattern_set() -> PatternSet:
    """The shipped pattern set ``open-standin-v1``: open stand-in spectra of water,
    vegetation, soil and yellow leaves (see ``updm_dask/data/README.md`` for the sources,
    licences and every conversion step). Cached: the same object on every call."""
    with resources.as_file(_DATA / _DEFAULT_TABLE) as path:
        header, rows = _read_rows(path)
        wl, columns, _ = _parse_columns(path, KINDS, header, rows)
    return PatternSet(DEFAULT_PATTERN_SET_NAME, wl, columns, _DEFAULT_SOURCES)


# --------------------------------------------------------------------------------------
# Spectral response functions


def _resolve_sensor(sensor: str | Sensor, satellite: int | None) -> Sensor:
    if isinstance(sensor, Sensor):
        if satellite is not None and int(satellite) != sensor.satellite:
            raise SensorError(
                f"satellite={satellite} contradicts the given sensor {sensor.key} "
                f"(Landsat-{sensor.satellite})"
            )
        return sensor
    return get_sensor(sensor, satellite)


@functools.lru_cache(maxsize=32)
def _rsr_table(sensor: Sensor) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    if sensor.name == "MSS":
        table, labels = (
            _RSR_MSS_TABLE,
            dict(zip(("1", "2", "3", "4"), sensor.band_labels, strict=True)),
        )
    else:
        table, labels = _RSR_TABLES[sensor.key], {b: b for b in sensor.band_labels}
    per_band: dict[str, list[tuple[float, float]]] = {label: [] for label in labels.values()}
    with resources.as_file(_DATA / table) as path:
        header, rows = _read_rows(path)
        if header != ["wavelength_nm", "band", "response"]:
            raise PatternError(
                f"RSR table {path} has header {header}; expected wavelength_nm,band,response"
            )
        for _, (w, band, response) in rows:
            if band in labels:
                per_band[labels[band]].append((float(w), float(response)))
    for label, points in per_band.items():
        if not points:
            raise PatternError(f"RSR table {table} has no rows for band {label}")
    # One uniform grid for all bands; a band is 0 outside its published range.
    step = min(np.min(np.diff([w for w, _ in pts])) for pts in per_band.values())
    start = min(pts[0][0] for pts in per_band.values())
    stop = max(pts[-1][0] for pts in per_band.values())
    n = int(np.rint((stop - start) / step)) + 1
    grid = start + step * np.arange(n)
    responses = {}
    for label in sensor.band_labels:
        w = np.array([p[0] for p in per_band[label]])
        idx = np.rint((w - start) / step).astype(int)
        if not np.allclose(grid[idx], w, rtol=0, atol=1e-9):
            raise PatternError(
                f"RSR table {table}, band {label}: wavelengths off the {step:g} nm grid"
            )
        r = np.zeros(n)
        r[idx] = [p[1] for p in per_band[label]]
        responses[label] = _readonly(r)
    return _readonly(grid), responses


def load_rsr(
    sensor: str | Sensor, satellite: int | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Spectral response functions of a sensor's UPDM bands.

    Values are as published (peak 1, tiny negative tail values kept; :func:`rsr_average`
    clips them); each band is 0 outside its published range. Sources: Landsat-4/5 TM,
    Landsat-7 ETM+ (NASA), Landsat-8 OLI and Landsat-9 OLI-2 (Ball) via pyrsr 0.8.0, and
    one generic MSS set (6S) used for Landsat 1-5; see ``updm_dask/data/README.md``.

    Parameters
    ----------
    sensor, satellite
        As for :func:`~updm_dask.science.sensors.get_sensor`, or a
        :class:`~updm_dask.science.sensors.Sensor`.

    Returns
    -------
    wavelength_nm : numpy.ndarray
        One uniform grid for all bands (1 nm; 2.5 nm for MSS), read-only.
    responses : dict
        Band label (as the sensor's metadata names it) -> response on that grid, read-only.
    """
    s = _resolve_sensor(sensor, satellite)
    wl, responses = _rsr_table(s)
    return wl, dict(responses)


# --------------------------------------------------------------------------------------
# Band patterns (labelled API)


@functools.lru_cache(maxsize=256)
def _band_pattern_matrix(
    pattern_set: PatternSet, sensor: Sensor, method: str, supplementary: bool
) -> np.ndarray:
    kinds = PATTERN_NAMES if supplementary else STANDARD_KINDS
    continuous = np.stack([pattern_set.normalised(k) for k in kinds])
    wl = pattern_set.wavelength_nm
    if method == "boxcar":
        columns = [
            band_average(wl, continuous, b.wavelength_min_um, b.wavelength_max_um)
            for b in sensor.bands
        ]
    else:
        rsr_wl, responses = load_rsr(sensor)
        columns = [rsr_average(wl, continuous, rsr_wl, responses[b]) for b in sensor.band_labels]
    return _readonly(np.stack(columns))


def band_patterns(
    sensor: str | Sensor,
    pattern_set: PatternSet | None = None,
    method: str = "boxcar",
    supplementary: bool | None = None,
    satellite: int | None = None,
) -> xr.DataArray:
    """The sensor's band patterns P_ik (UPDM eq. 14): the design matrix of the decomposition.

    Parameters
    ----------
    sensor
        Sensor name (``MSS``, ``TM``, ``ETM+``, ``OLI``, ``OLI-2``, or an MTL sensor id), or
        a :class:`~updm_dask.science.sensors.Sensor`.
    pattern_set
        Defaults to :func:`default_pattern_set`.
    method
        ``"boxcar"``: mean over the band's [lambda_s, lambda_e] (the note's method, eq. 14);
        ``"rsr"``: weighted by the satellite's spectral response function (Zhang et al.
        2010), negative RSR tail values clipped to 0.
    supplementary
        Include the supplementary pattern P4. ``None``: yes for sensors with 6 or more bands
        (TM, ETM+, OLI, OLI-2), no for MSS. MSS cannot take it: 4 bands and 4 patterns fit
        every pixel exactly, leaving no residual to judge the fit by and letting the
        sign-free P4 absorb noise; the method uses only the 3 standard patterns for MSS.
    satellite
        Landsat number (MSS band labels and the RSR depend on it).

    Returns
    -------
    xarray.DataArray
        float64, dims ``("band", "pattern")``; ``band`` = the sensor's band labels (strings,
        spectral order), ``pattern`` = water, vegetation, soil[, supplementary]; attrs
        ``pattern_set``, ``pattern_set_sha256``, ``method``, ``sensor``, ``satellite``,
        ``supplementary``.
    """
    s = _resolve_sensor(sensor, satellite)
    ps = default_pattern_set() if pattern_set is None else pattern_set
    if not isinstance(ps, PatternSet):
        raise PatternError(f"pattern_set must be a PatternSet, got {type(ps).__name__}")
    if method not in METHODS:
        raise PatternError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    n_bands = len(s.bands)
    use_p4 = n_bands >= 6 if supplementary is None else bool(supplementary)
    if use_p4 and n_bands <= len(PATTERN_NAMES):
        raise PatternError(
            f"{s.name} has {n_bands} bands: with the supplementary pattern there would be "
            f"{len(PATTERN_NAMES)} unknowns for {n_bands} equations, an exact fit with no "
            "residual in which the sign-free supplementary pattern absorbs noise. UPDM uses "
            "only the water, vegetation and soil patterns for MSS; pass supplementary=False"
        )
    values = _band_pattern_matrix(ps, s, method, use_p4)
    patterns = PATTERN_NAMES if use_p4 else STANDARD_KINDS
    return xr.DataArray(
        np.array(values),
        dims=("band", "pattern"),
        coords={"band": list(s.band_labels), "pattern": list(patterns)},
        name="band_patterns",
        attrs={
            "long_name": "UPDM band patterns (eq. 14)",
            "pattern_set": ps.name,
            "pattern_set_sha256": ps.sha256,
            "method": method,
            "sensor": s.name,
            "satellite": s.satellite,
            "supplementary": use_p4,
        },
    )
