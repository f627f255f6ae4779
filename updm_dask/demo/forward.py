"""The forward model: UPDM run from planted coefficients to the digital numbers of a product.

    planted coefficients c = (uCw, uCv, uCs) per pixel (uC4 = 0)
    -> surface reflectance A = P c through the sensor's band patterns P (eq. 14, the same
       pattern set and band-averaging method the demo job decomposes with)
    -> + Rayleigh path reflectance A_R at the band centres for the scene's sun zenith (eqs. 6-7)
    -> + Gaussian sensor noise -> TOA reflectance rho
    -> DN = round((rho * sin(SUN_ELEVATION) - REFLECTANCE_ADD) / REFLECTANCE_MULT), clipped
       to [1, QUANTIZE_CAL_MAX] (0 is fill).

The physics is the package's own: band patterns from :mod:`updm_dask.science.patterns`,
Rayleigh path reflectance and the Earth-Sun distance from
:mod:`updm_dask.science.calibration`, band tables, pixel sizes and the published LMIN/LMAX
and ESUN (Chander et al. 2009) from :mod:`updm_dask.science.sensors`, so the decomposition
inverts exactly what was planted. What is the demo's own is the acquisition of each scene
(:func:`plan_scene`): its date and time, the sun's position then (:func:`solar_position`),
its identifiers, and the calibration a real product of that sensor and date would carry
(:func:`band_calibration`); and the instrument effects planted on top: sensor noise
(:data:`NOISE`) and the ETM+ SLC-off gaps (:func:`slc_off_gap_mask`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from ..errors import PatternError
from ..science.calibration import earth_sun_distance, rayleigh_reflectance
from ..science.masks import SLC_FAILURE_DATE
from ..science.patterns import band_patterns
from ..science.sensors import Sensor, get_sensor, published_calibration
from .story import SCHEDULE, Slot, rng

__all__ = [
    "NOISE",
    "SCAN_PAIR_M",
    "SLC_FAILURE_DATE",
    "STATION",
    "BandRescaling",
    "ScenePlan",
    "band_calibration",
    "forward_dn",
    "plan_scene",
    "scene_dn",
    "slc_off_gap_mask",
    "solar_position",
    "standard_patterns",
]

#: Gaussian noise (reflectance units) added at the top of the atmosphere, per sensor:
#: roughly the noise-equivalent reflectance of each instrument over dark land.
NOISE: Mapping[str, float] = MappingProxyType(
    {"MSS": 0.003, "TM": 0.002, "ETM+": 0.002, "OLI": 0.001, "OLI-2": 0.001}
)

# ETM+ SLC-off geometry: 16-line bidirectional scans (480 m) leave, once every scan pair
# (960 m along track), a wedge-shaped gap that grows from nothing on the ground track to
# about 14 lines (420 m) at the swath edge (185 km swath), so about 22 % of a scene is lost.
# SCAN_PAIR_M is public: the planting draws each scene's gap phase within one period.
SCAN_PAIR_M = 960.0
_MAX_GAP_M = 420.0
_HALF_SWATH_M = 92_500.0
_TRACK_ANGLE_DEG = 12.0  # ground track of a descending pass at 35 N, from grid north

# Collection 2 Level-1 OLI reflectance rescaling, the same for every band and scene.
_OLI_REFLECTANCE_MULT, _OLI_REFLECTANCE_ADD, _OLI_QCAL_MAX = 2.0e-5, -0.1, 65535
# OLI has no published ESUN; radiance rescaling is written from these band irradiances
# (W m-2 um-1), pi * d**2 * RADIANCE_MAXIMUM / REFLECTANCE_MAXIMUM of a Landsat-8
# Collection-2 MTL (LC08_L1TP_193024_20180824_20200831_02_T1), bands 2-7.
_OLI_IRRADIANCE = {"2": 2019.6, "3": 1861.1, "4": 1569.3, "5": 960.4, "6": 238.8, "7": 80.5}
# Collection 2 delivers MSS, TM and ETM+ as 8-bit DN 1-255.
_C2_QCAL_MIN, _C2_QCAL_MAX_8BIT = 1, 255

_SENSOR_LETTER = {"MSS": "M", "TM": "T", "ETM+": "E", "OLI": "C", "OLI-2": "C"}
# Local mean solar time of the descending-node overpass, hours.
_OVERPASS_HOURS = {1: 9.5, 2: 9.5, 3: 9.5, 4: 9.75, 5: 9.75, 7: 10.0, 8: 10.15, 9: 10.15}
#: Ground station written in scene ids and MTLs.
STATION = "HOA"


# --------------------------------------------------------------------------------------
# Kernels: solar geometry, SLC-off gaps, the forward model


def solar_position(
    latitude_deg: float, longitude_deg: float, when: dt.datetime
) -> tuple[float, float]:
    """Sun elevation and azimuth for a place and time (NOAA / Spencer 1971 series).

    Declination and equation of time from Spencer's Fourier series, then the hour angle
    from true solar time; accurate to a few tenths of a degree, ample for a synthetic scene.

    Parameters
    ----------
    latitude_deg, longitude_deg
        Degrees, east positive.
    when
        Time; naive datetimes are taken as UTC.

    Returns
    -------
    elevation, azimuth : float
        Degrees; azimuth clockwise from north (90 = east), as in Landsat MTLs.
    """
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    hours = when.hour + when.minute / 60 + (when.second + when.microsecond * 1e-6) / 3600
    g = 2.0 * math.pi / 365.0 * (when.timetuple().tm_yday - 1 + (hours - 12.0) / 24.0)
    eq_time_min = 229.18 * (
        0.000075
        + 0.001868 * math.cos(g)
        - 0.032077 * math.sin(g)
        - 0.014615 * math.cos(2 * g)
        - 0.040849 * math.sin(2 * g)
    )
    decl = (
        0.006918
        - 0.399912 * math.cos(g)
        + 0.070257 * math.sin(g)
        - 0.006758 * math.cos(2 * g)
        + 0.000907 * math.sin(2 * g)
        - 0.002697 * math.cos(3 * g)
        + 0.00148 * math.sin(3 * g)
    )
    true_solar_min = hours * 60.0 + eq_time_min + 4.0 * longitude_deg
    hour_angle = math.radians(true_solar_min / 4.0 - 180.0)
    lat = math.radians(latitude_deg)
    cos_zenith = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(
        hour_angle
    )
    zenith = math.acos(min(1.0, max(-1.0, cos_zenith)))
    azimuth = math.degrees(
        math.atan2(
            math.sin(hour_angle),
            math.cos(hour_angle) * math.sin(lat) - math.tan(decl) * math.cos(lat),
        )
    )
    return 90.0 - math.degrees(zenith), (azimuth + 180.0) % 360.0


def slc_off_gap_mask(
    x: np.ndarray,
    y: np.ndarray,
    *,
    track_x: float,
    track_y: float,
    phase_m: float = 0.0,
    track_angle_deg: float = _TRACK_ANGLE_DEG,
) -> np.ndarray:
    """Where an ETM+ scene acquired without its Scan Line Corrector has no data.

    Without the SLC each 16-line scan images a zig-zag, and between every other pair of
    scans a wedge opens that is zero wide on the ground track and 420 m (14 lines) wide at
    the swath edge; the wedges alternate sides, so at a given distance from the track the
    gaps recur every 960 m along track. Over a whole 185 km scene this loses about 22 % of
    the pixels, the figure USGS gives for SLC-off data.

    Parameters
    ----------
    x, y
        Map coordinates (m) of pixel centres, broadcastable against each other.
    track_x, track_y
        A point on the scene's ground track (the WRS path centre line).
    phase_m
        Along-track position of the scan pattern (differs from scene to scene).
    track_angle_deg
        Angle of the ground track from grid north (the stripes run across it).

    Returns
    -------
    numpy.ndarray of bool
        True in the gaps.
    """
    a = math.radians(track_angle_deg)
    dx = np.asarray(x, dtype=np.float64) - track_x
    dy = np.asarray(y, dtype=np.float64) - track_y
    across = dx * math.cos(a) + dy * math.sin(a)
    along = -dx * math.sin(a) + dy * math.cos(a)
    width = _MAX_GAP_M * np.minimum(np.abs(across) / _HALF_SWATH_M, 1.0)
    # Gaps on the two sides of the track belong to alternate scan boundaries.
    shift = np.where(across < 0, 0.5 * SCAN_PAIR_M, 0.0)
    return np.mod(along + phase_m + shift, SCAN_PAIR_M) < width


def forward_dn(
    coefficients: np.ndarray,
    patterns: np.ndarray,
    rayleigh: np.ndarray,
    sin_elevation: float,
    reflectance_mult: np.ndarray,
    reflectance_add: np.ndarray,
    qcal_max: np.ndarray,
    noise: np.ndarray | None = None,
) -> np.ndarray:
    """UPDM run forwards: coefficients -> TOA reflectance -> calibrated DN.

    ``rho = P c + A_R (+ noise)``, then ``DN = round((rho sin(elev) - add) / mult)`` clipped
    to ``[1, qcal_max]`` (0 is reserved for fill), the inverse of Collection 2's
    ``rho sin(elev) = REFLECTANCE_MULT * DN + REFLECTANCE_ADD``.

    Parameters
    ----------
    coefficients
        (..., k) pattern coefficients (component axis last).
    patterns
        (n_bands, k) band patterns P.
    rayleigh
        (n_bands,) Rayleigh path reflectance A_R of each band.
    sin_elevation
        Sine of the scene's sun elevation.
    reflectance_mult, reflectance_add, qcal_max
        (n_bands,) the scene's REFLECTANCE_MULT/ADD and QUANTIZE_CAL_MAX.
    noise
        Optional (..., n_bands) reflectance noise added at the top of the atmosphere.

    Returns
    -------
    numpy.ndarray
        float64 (..., n_bands) whole DNs in ``[1, qcal_max]``; cast to the product dtype.
    """
    c = np.asarray(coefficients, dtype=np.float64)
    p = np.asarray(patterns, dtype=np.float64)
    if p.ndim != 2 or c.shape[-1] != p.shape[1]:
        raise PatternError(
            f"coefficients have {c.shape[-1]} components on the last axis but patterns are "
            f"{p.shape}; expected patterns of shape (n_bands, {c.shape[-1]})"
        )
    rho = c @ p.T + np.asarray(rayleigh, dtype=np.float64)
    if noise is not None:
        rho += noise
    dn = np.rint((rho * sin_elevation - reflectance_add) / reflectance_mult)
    return np.clip(dn, 1.0, np.asarray(qcal_max, dtype=np.float64))


def standard_patterns(sensor: Sensor, pattern_set: Any = None) -> np.ndarray:
    """(n_bands, 3) box-car band patterns of water, vegetation and soil for ``sensor``.

    The three standard patterns only, since uC4 is planted as 0; the box-car method is
    what the demo job (``patterns = "default"``) decomposes with.
    """
    patterns = band_patterns(sensor, pattern_set, method="boxcar", supplementary=False)
    return patterns.values


# --------------------------------------------------------------------------------------
# Calibration a real product of the sensor and date would carry


@dataclass(frozen=True)
class BandRescaling:
    """The LEVEL1_RADIOMETRIC_RESCALING of one band, as written in the MTL.

    ``L = radiance_mult * DN + radiance_add`` and
    ``rho sin(elev) = reflectance_mult * DN + reflectance_add``, for DN in
    ``[qcal_min, qcal_max]``.
    """

    label: str
    radiance_mult: float
    radiance_add: float
    reflectance_mult: float
    reflectance_add: float
    qcal_min: int
    qcal_max: int


def _fmt(value: float, spec: str) -> float:
    # What the MTL says is what the forward model must use.
    return float(format(value, spec))


def band_calibration(sensor: Sensor, when: dt.date, distance: float) -> tuple[BandRescaling, ...]:
    """Per-band rescaling of a Collection 2 Level-1 product of ``sensor`` acquired ``when``.

    MSS, TM and ETM+: the published LMIN/LMAX and ESUN
    (:func:`~updm_dask.science.sensors.published_calibration`, low gain) rescaled to
    Collection 2's 1-255 DN range, with the Earth-Sun ``distance`` (AU) folded into the
    reflectance rescaling. OLI and OLI-2: the fixed Collection 2 reflectance scaling
    (2.0e-5, -0.1 over DN 1-65535), radiance from typical band irradiances. Values are
    rounded as the MTL writes them.
    """
    out = []
    if sensor.name in ("OLI", "OLI-2"):
        mult, add = _OLI_REFLECTANCE_MULT, _OLI_REFLECTANCE_ADD
        for label in sensor.band_labels:
            to_radiance = _OLI_IRRADIANCE[label] / (math.pi * distance**2)
            out.append(
                BandRescaling(
                    label,
                    _fmt(mult * to_radiance, ".4E"),
                    _fmt(add * to_radiance, ".5f"),
                    mult,
                    add,
                    _C2_QCAL_MIN,
                    _OLI_QCAL_MAX,
                )
            )
        return tuple(out)
    gains = dict.fromkeys(sensor.band_labels, "L")
    table = published_calibration(sensor.name, sensor.satellite, when, gains)
    for label in sensor.band_labels:
        # The same LMIN/LMAX over Collection 2's DN range: the sensors room's linear
        # calibration gives the radiance per DN and the radiance at DN 0.
        cal = dataclasses.replace(
            table.band(label), qcal_min=_C2_QCAL_MIN, qcal_max=_C2_QCAL_MAX_8BIT
        )
        to_reflectance = math.pi * distance**2 / cal.esun
        out.append(
            BandRescaling(
                label,
                _fmt(cal.gain, ".4E"),
                _fmt(cal.offset, ".5f"),
                _fmt(cal.gain * to_reflectance, ".4E"),
                _fmt(cal.offset * to_reflectance, ".6f"),
                _C2_QCAL_MIN,
                _C2_QCAL_MAX_8BIT,
            )
        )
    return tuple(out)


# --------------------------------------------------------------------------------------
# The acquisition of one scene: date, time, sun, identifiers, calibration


@dataclass(frozen=True)
class ScenePlan:
    """Everything about one scene's acquisition that is decided before any pixel.

    Attributes
    ----------
    index
        Position in :data:`~updm_dask.demo.story.SCHEDULE`.
    slot
        The schedule's entry.
    sensor
        The sensor's band table.
    acquired, processed
        Scene-centre time (UTC) and Collection 2 processing date.
    product_id, scene_id
        ``LANDSAT_PRODUCT_ID`` and ``LANDSAT_SCENE_ID``.
    wrs
        ``(WRS type, path, row)``.
    sun_elevation, sun_azimuth, earth_sun_distance
        As written in the MTL (degrees, degrees, AU).
    bands
        The calibration of each band, in band order.
    """

    index: int
    slot: Slot
    sensor: Sensor
    acquired: dt.datetime
    processed: dt.date
    product_id: str
    scene_id: str
    wrs: tuple[int, int, int]
    sun_elevation: float
    sun_azimuth: float
    earth_sun_distance: float
    bands: tuple[BandRescaling, ...]

    @property
    def dtype(self) -> np.dtype:
        """The band files' dtype: uint16 for 16-bit products (OLI), else uint8."""
        wide = max(b.qcal_max for b in self.bands) > np.iinfo(np.uint8).max
        return np.dtype(np.uint16 if wide else np.uint8)

    @property
    def slc_off(self) -> bool:
        """True for ETM+ scenes after the Scan Line Corrector failed."""
        return self.sensor.name == "ETM+" and self.acquired.date() > SLC_FAILURE_DATE


def plan_scene(index: int, seed: int, lat: float, lon: float) -> ScenePlan:
    """Plan scene ``index`` of the schedule over a place (the grid centre, degrees).

    Summer date (unless the schedule fixes it), overpass time of the satellite, sun
    position and Earth-Sun distance then, Collection 2 identifiers and calibration.
    Deterministic in ``seed`` and ``index`` alone.
    """
    slot = SCHEDULE[index]
    sensor = get_sensor(slot.sensor, slot.satellite)
    generator = rng(seed, 1, index)
    if slot.month_day is not None:
        date = dt.date(slot.year, *slot.month_day)
    else:
        # Summer scenes (June to mid-September), when the forest is in leaf.
        date = dt.date(slot.year, 1, 1) + dt.timedelta(days=int(generator.integers(151, 258)))
    local_hours = _OVERPASS_HOURS[slot.satellite] + generator.uniform(-0.05, 0.05)
    utc_hours = local_hours - lon / 15.0
    acquired = dt.datetime(date.year, date.month, date.day, tzinfo=dt.UTC) + dt.timedelta(
        hours=utc_hours
    )
    acquired = acquired.replace(microsecond=(acquired.microsecond // 10) * 10)
    elevation, azimuth = solar_position(lat, lon, acquired)
    elevation, azimuth = _fmt(elevation, ".8f"), _fmt(azimuth, ".8f")
    distance = _fmt(earth_sun_distance(acquired), ".7f")

    wrs = (1, 119, 36) if slot.satellite <= 3 else (2, 110, 36)
    letter = _SENSOR_LETTER[sensor.name]
    doy = date.timetuple().tm_yday
    scene_id = f"L{letter}{slot.satellite}{wrs[1]:03d}{wrs[2]:03d}{date.year}{doy:03d}{STATION}00"
    # Collection 2 reprocessed the archive in 2020-2021; later scenes within weeks.
    processed = max(dt.date(2020, 9, 1) + dt.timedelta(days=index % 60), date)
    if processed == date:
        processed = date + dt.timedelta(days=12)
    level, tier = ("L1TP", "T2") if sensor.name == "MSS" else ("L1TP", "T1")
    product_id = (
        f"L{letter}{slot.satellite:02d}_{level}_{wrs[1]:03d}{wrs[2]:03d}_"
        f"{date:%Y%m%d}_{processed:%Y%m%d}_02_{tier}"
    )
    return ScenePlan(
        index=index,
        slot=slot,
        sensor=sensor,
        acquired=acquired,
        processed=processed,
        product_id=product_id,
        scene_id=scene_id,
        wrs=wrs,
        sun_elevation=elevation,
        sun_azimuth=azimuth,
        earth_sun_distance=distance,
        bands=band_calibration(sensor, date, distance),
    )


def scene_dn(
    plan: ScenePlan, coefficients: np.ndarray, fill: np.ndarray, patterns: np.ndarray, seed: int
) -> np.ndarray:
    """The band DNs of one scene: :func:`forward_dn` with the scene's sun and calibration.

    Parameters
    ----------
    plan
        From :func:`plan_scene`.
    coefficients
        (ny, nx, 3) planted coefficients on the scene's own pixel grid.
    fill
        (ny, nx) bool: pixels written as fill (DN 0).
    patterns
        (n_bands, 3) band patterns (:func:`standard_patterns`).
    seed
        The archive's seed (the noise is stream 3 of the scene).

    Returns
    -------
    numpy.ndarray
        (ny, nx, n_bands) DNs in :attr:`ScenePlan.dtype`.
    """
    sensor = plan.sensor
    zenith = 90.0 - plan.sun_elevation
    path_reflectance = rayleigh_reflectance(np.array([b.centre_um for b in sensor.bands]), zenith)
    mult = np.array([b.reflectance_mult for b in plan.bands])
    add = np.array([b.reflectance_add for b in plan.bands])
    qmax = np.array([b.qcal_max for b in plan.bands], dtype=np.float64)
    shape = coefficients.shape[:2]
    noise = rng(seed, 3, plan.index).normal(0.0, NOISE[sensor.name], (*shape, len(sensor.bands)))
    dn = forward_dn(
        coefficients,
        patterns,
        path_reflectance,
        math.sin(math.radians(plan.sun_elevation)),
        mult,
        add,
        qmax,
        noise,
    )
    dn = dn.astype(plan.dtype)
    dn[fill] = 0
    return dn
