"""Band patterns: a sensor's design matrix, from a pattern set and the sensor's bands.

:func:`band_patterns` averages the normalised continuous patterns over each band of a
sensor (box-car, the note's eq. 14, or weighted by the band's spectral response function
from :func:`load_rsr`) into the labelled ``(band, pattern)`` matrix the decomposition
uses; cached, because every chunk of every scene asks for it.
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np
import xarray as xr

from ...errors import PatternError, SensorError
from ..sensors import Sensor, get_sensor
from .sets import _DATA, STANDARD_KINDS, PatternSet, _readonly, default_pattern_set
from .spectra import band_average, rsr_average
from .tables import read_rows

__all__ = ["METHODS", "PATTERN_NAMES", "band_patterns", "load_rsr"]

PATTERN_NAMES = (*STANDARD_KINDS, "supplementary")
METHODS = ("boxcar", "rsr")

_RSR_TABLES = {
    "TM4": "rsr_tm_l4.csv",
    "TM5": "rsr_tm_l5.csv",
    "ETM+7": "rsr_etm_l7.csv",
    "OLI8": "rsr_oli_l8.csv",
    "OLI-29": "rsr_oli_l9.csv",
}
_RSR_MSS_TABLE = "rsr_mss.csv"  # one generic MSS set, labelled 1-4, for Landsat 1-5


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
        header, rows = read_rows(path)
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
