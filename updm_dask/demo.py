"""The synthetic multi-decade Landsat archive behind ``updm demo``.

:func:`make_demo_archive` writes, on one small UTM grid, a Collection-2-style Level-1 archive
covering 1973-2024 (MSS on Landsat 1-5, TM on Landsat 4-5, ETM+ on Landsat 7 with and without
its Scan Line Corrector, OLI on Landsat 8 and OLI-2 on Landsat 9), with a planted land-cover
history to judge a job against:

- a town that clears the surrounding forest and spreads outward decade by decade (a pixel
  is bare, cleared ground for a few years, then built up; both count as ``urban``, the
  note's "built-up / non-vegetated" class);
- a reservoir that floods a forested valley in :data:`RESERVOIR_FILL_YEAR`;
- a lake (stable water) and a corner of untouched forest (stable vegetation) as controls.

Every scene is made by running the UPDM physics FORWARDS, so the decomposition has a known
answer:

    planted coefficients c = (uCw, uCv, uCs) per pixel (uC4 = 0)
    -> surface reflectance A = P c through the sensor's band patterns P (eq. 14, the same
       pattern set and band-averaging method the demo job decomposes with)
    -> + Rayleigh path reflectance A_R at the band centres for the scene's sun zenith (eqs. 6-7)
    -> + Gaussian sensor noise -> TOA reflectance rho
    -> DN = round((rho * sin(SUN_ELEVATION) - REFLECTANCE_ADD) / REFLECTANCE_MULT), clipped
       to [1, QUANTIZE_CAL_MAX] (0 is fill).

Calibration constants are those a real product of the sensor and date would carry: for
MSS, TM and ETM+ the published LMIN/LMAX and ESUN (Chander et al. 2009, via
:func:`updm_dask.science.sensors.published_calibration`) rescaled to Collection 2's 1-255 DN range
with the scene's Earth-Sun distance folded into REFLECTANCE_MULT/ADD; for OLI/OLI-2 the fixed
Collection 2 reflectance scaling (2.0e-5, -0.1 over DN 1-65535). Sun elevation and azimuth
come from the date, time and place (:func:`solar_position`).

The coefficient values of each cover (:data:`COVER_COEFFICIENTS`) are chosen so that the
note's TM (Table 5) and MSS (Table 8) rule tables both classify the clean pixels correctly,
with margins larger than the noise: NNLS recovers planted coefficients exactly from noise-free
reflectance, so classes depend on the coefficients, not on the pattern set.

Files follow Collection 2 Level-1 conventions: one folder per scene named by its product id,
one GeoTIFF per UPDM band (``<id>_B<n>.TIF``; MSS, TM and ETM+ uint8, OLI uint16; deflate,
tiled when large enough, else striped), a ``<id>_QA_PIXEL.TIF`` for TM, ETM+ and OLI
marking fill, planted clouds, their shadows, clear pixels and water (real Collection 2 MSS
products also carry a QA_PIXEL band; the demo's MSS scenes have none, so UPDM's own cloud
rule is exercised), and an ODL ``<id>_MTL.txt`` with the groups and fields of a real
Collection 2 Level-1 MTL. The ORIGIN field says the data are synthetic.

The module is organised like the rest of the package: numpy kernels (:func:`forward_dn`,
:func:`slc_off_gap_mask`, :func:`solar_position`, the story and cloud planting) are separate
from the writing (rasterio, MTL text) and from the orchestration (:func:`make_demo_archive`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from .errors import GridError, PatternError, SceneError
from .science.calibration import earth_sun_distance, rayleigh_reflectance
from .science.sensors import Sensor, get_sensor, published_calibration

__all__ = [
    "CLASS_NAMES",
    "COVER_COEFFICIENTS",
    "DEMO_EPSG",
    "MIN_SIZE",
    "RESERVOIR_FILL_YEAR",
    "SLC_FAILURE_DATE",
    "DemoArchive",
    "DemoGrid",
    "DemoScene",
    "RecoveryRow",
    "SceneTruth",
    "demo_job_spec",
    "format_recovery",
    "forward_dn",
    "make_demo_archive",
    "recovery_report",
    "slc_off_gap_mask",
    "solar_position",
]

# --------------------------------------------------------------------------------------
# Classes, grid and story constants

NO_DATA, CLOUD, WATER, VEGETATION, URBAN = 0, 1, 2, 3, 4
CLASS_NAMES: Mapping[int, str] = MappingProxyType(
    {NO_DATA: "no_data", CLOUD: "cloud", WATER: "water", VEGETATION: "vegetation", URBAN: "urban"}
)

# A 6 km square in the Kansai plain (UTM zone 53N), the region of the note's 1985 scenes.
DEMO_EPSG = 32653
_ORIGIN_X, _ORIGIN_Y = 546000.0, 3843000.0  # upper-left pixel EDGE, a multiple of 60 m
_RESOLUTION = 30.0
_MSS_FACTOR = 2  # MSS pixels are 60 m: 2 x 2 cube pixels
MIN_SIZE = 32
_MAX_SIZE = 4096

FIRST_YEAR, LAST_YEAR = 1973, 2024
RESERVOIR_FILL_YEAR = 1994
_BUILD_DELAY_YEARS = 3  # cleared (bare) ground becomes built-up this many years later
_NEVER = 9999
SLC_FAILURE_DATE = dt.date(2003, 5, 31)

# Planted coefficients (uCw, uCv, uCs) of each cover; uC4 = 0 everywhere.
# Margins against the TM (Table 5) and MSS (Table 8) rules, S = uCw + uCv + uCs:
# - forest: MVIUPD ~ 0.87 (>= 0.458 TM, 0.286 MSS); S ~ 0.11 stays under the MSS cloud
#   S >= 0.130 even with texture, so noise in uCw can never make it "cloud"; uCv >> 0.035
#   keeps it out of "water", also when dimmed by a cloud shadow.
# - cleared ground and built-up: MVIUPD <= 0 (< 0.286); S > 0.062 (not water), S < 0.130
#   (not cloud whatever uCw).
# - water: uCv <= 0.025 and S ~ 0.02 <= 0.059 (water in both tables), far from cloud.
# - cloud: uCw = 0.012 >= 0.00663 (TM) / 0.00374 (MSS), S ~ 0.31 >= 0.161 / 0.130; kept dim
#   enough that no band saturates (TM band 1 saturates near rho * sin(elev) = 0.31).
COVER_COEFFICIENTS: Mapping[str, tuple[float, float, float]] = MappingProxyType(
    {
        "forest": (0.0, 0.100, 0.012),
        "cleared": (0.002, 0.010, 0.105),
        "urban": (0.003, 0.020, 0.085),
        "water": (0.012, 0.003, 0.004),
        "cloud": (0.012, 0.100, 0.200),
    }
)
_COVERS = ("forest", "cleared", "urban", "water")
_COVER_CLASS = np.array([VEGETATION, URBAN, URBAN, WATER], dtype=np.uint8)
# Relative amplitude of each cover's static spatial texture (canopy, roofs, turbidity).
_COVER_TEXTURE = np.array([0.06, 0.08, 0.10, 0.05])
_CLOUD_TEXTURE = 0.05
_SHADOW_DIMMING = 0.5  # a cloud shadow halves the direct-sun reflectance

# Gaussian noise (reflectance units) added at the top of the atmosphere, per sensor:
# roughly the noise-equivalent reflectance of each instrument over dark land.
_NOISE = {"MSS": 0.003, "TM": 0.002, "ETM+": 0.002, "OLI": 0.001, "OLI-2": 0.001}

# ETM+ SLC-off geometry: 16-line bidirectional scans (480 m) leave, once every scan pair
# (960 m along track), a wedge-shaped gap that grows from nothing on the ground track to
# about 14 lines (420 m) at the swath edge (185 km swath), so about 22 % of a scene is lost.
_SCAN_PAIR_M = 960.0
_MAX_GAP_M = 420.0
_HALF_SWATH_M = 92_500.0
_TRACK_ANGLE_DEG = 12.0  # ground track of a descending pass at 35 N, from grid north
_TRACK_OFFSET_M = 55_000.0  # the demo window lies this far east of the WRS path centre line

# OLI has no published ESUN; radiance rescaling is written from these band irradiances
# (W m-2 um-1), pi * d**2 * RADIANCE_MAXIMUM / REFLECTANCE_MAXIMUM of a Landsat-8
# Collection-2 MTL (LC08_L1TP_193024_20180824_20200831_02_T1), bands 2-7.
_OLI_IRRADIANCE = {"2": 2019.6, "3": 1861.1, "4": 1569.3, "5": 960.4, "6": 238.8, "7": 80.5}

_ORIGIN_TEXT = "Synthetic scene of the updm_dask demo archive (not a USGS product)"
_MANIFEST = "updm-demo.json"


# --------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class DemoGrid:
    """The demo's one grid (the cube grid): CRS, affine transform and shape.

    Attributes
    ----------
    crs
        ``"EPSG:326zz"``.
    transform
        Affine coefficients ``(a, b, c, d, e, f)`` as rasterio orders them:
        ``x = a * col + b * row + c``, ``y = d * col + e * row + f`` (pixel edges).
    shape
        ``(ny, nx)``.
    """

    crs: str
    transform: tuple[float, float, float, float, float, float]
    shape: tuple[int, int]

    @property
    def resolution(self) -> float:
        """Pixel size (m)."""
        return float(self.transform[0])

    @property
    def mss_transform(self) -> tuple[float, float, float, float, float, float]:
        """Transform of the MSS scenes: 60 m pixels sharing the grid's upper-left corner."""
        a, b, c, d, e, f = self.transform
        return (a * _MSS_FACTOR, b, c, d, e * _MSS_FACTOR, f)

    @property
    def mss_shape(self) -> tuple[int, int]:
        """Shape of the MSS scenes (each MSS pixel covers 2 x 2 grid pixels)."""
        return (self.shape[0] // _MSS_FACTOR, self.shape[1] // _MSS_FACTOR)


@dataclass(frozen=True)
class DemoScene:
    """One scene of the demo archive.

    Attributes
    ----------
    product_id, scene_id
        ``LANDSAT_PRODUCT_ID`` (also the folder name) and ``LANDSAT_SCENE_ID``.
    sensor, satellite
        Canonical sensor name (``MSS``, ``TM``, ``ETM+``, ``OLI``, ``OLI-2``) and Landsat number.
    date, acquired
        Acquisition date, and the scene-centre time (UTC, timezone-aware).
    cloud_fraction
        Fraction of the scene's pixels under planted cloud (0 for a clear scene).
    folder
        The scene's folder.
    index
        Position in the full 1973-2024 schedule (stable whatever ``n_scenes`` is).
    sun_elevation, sun_azimuth, earth_sun_distance
        As written in the MTL (degrees, degrees, AU).
    """

    product_id: str
    scene_id: str
    sensor: str
    satellite: int
    date: dt.date
    acquired: dt.datetime
    cloud_fraction: float
    folder: Path
    index: int
    sun_elevation: float
    sun_azimuth: float
    earth_sun_distance: float

    @property
    def year(self) -> int:
        """Acquisition year."""
        return self.date.year

    @property
    def slc_off(self) -> bool:
        """True for ETM+ scenes after the Scan Line Corrector failed (2003-05-31)."""
        return self.sensor == "ETM+" and self.date > SLC_FAILURE_DATE

    @property
    def mtl_path(self) -> Path:
        """The scene's ``_MTL.txt``."""
        return self.folder / f"{self.product_id}_MTL.txt"


@dataclass(frozen=True, eq=False)
class SceneTruth:
    """What was planted in one scene, on the scene's own pixel grid.

    Attributes
    ----------
    coefficients
        float32 (ny, nx, 3): planted uCw, uCv, uCs (uC4 = 0). For MSS the mean of the
        2 x 2 cube pixels each 60 m pixel covers.
    cloud, shadow
        Planted cloud and cloud shadow (for MSS: more than half of the 60 m pixel).
    fill
        Pixels written as fill (DN 0): ETM+ SLC-off gaps.
    clear
        Not fill and touched by neither cloud nor shadow (for MSS: none of the 2 x 2 cube
        pixels is), i.e. the pixels whose class a decomposition must recover.
    land_cover
        uint8 planted class: cloud (1) where planted cloud, else the year's land cover (2-4);
        for MSS, 0 where the 2 x 2 cube pixels do not share one class (mixed pixels).
    """

    coefficients: np.ndarray
    cloud: np.ndarray
    shadow: np.ndarray
    fill: np.ndarray
    clear: np.ndarray
    land_cover: np.ndarray


@dataclass(frozen=True)
class _Slot:
    year: int
    sensor: str
    satellite: int
    cloudy: bool
    month_day: tuple[int, int] | None = None


def _slots() -> tuple[_Slot, ...]:
    # (year, sensor, satellite, cloudy[, fixed month-day]); about one scene a year, two in
    # the years where sensors overlap. MSS runs 1973-1992 on Landsat 1-5, TM from 1983,
    # ETM+ from 1999 (SLC-off after 2003-05-31), OLI from 2013, OLI-2 from 2022.
    table: list[tuple] = [
        (1973, "MSS", 1, False),
        (1974, "MSS", 1, True),
        (1975, "MSS", 2, False),
        (1976, "MSS", 2, False),
        (1977, "MSS", 2, True),
        (1978, "MSS", 3, False),
        (1979, "MSS", 2, False),
        (1980, "MSS", 3, True),
        (1981, "MSS", 2, False),
        (1982, "MSS", 3, False),
        (1983, "MSS", 4, False),
        (1983, "TM", 4, True),
        (1984, "MSS", 4, False),
        (1984, "TM", 5, False),
        # The note's pair: Landsat-5 MSS and TM of the same day, 1985-06-05.
        (1985, "MSS", 5, False, (6, 5)),
        (1985, "TM", 5, False, (6, 5)),
        (1986, "TM", 5, True),
        (1987, "MSS", 5, False),
        (1987, "TM", 5, False),
        (1988, "TM", 5, False),
        (1989, "TM", 4, False),
        (1990, "TM", 5, True),
        (1991, "TM", 5, False),
        (1992, "MSS", 5, False),
        (1992, "TM", 5, False),
        (1993, "TM", 5, True),
        (1994, "TM", 5, False),
        (1995, "TM", 5, False),
        (1996, "TM", 5, True),
        (1997, "TM", 5, False),
        (1998, "TM", 5, False),
        (1999, "TM", 5, False),
        (1999, "ETM+", 7, False, (8, 20)),
        (2000, "TM", 5, False),
        (2000, "ETM+", 7, True),
        (2001, "ETM+", 7, False),
        (2002, "TM", 5, False),
        (2002, "ETM+", 7, False),
        (2003, "ETM+", 7, False, (5, 12)),
        (2003, "TM", 5, True),
        (2004, "TM", 5, False),
        (2005, "TM", 5, False),
        (2005, "ETM+", 7, True),
        (2006, "TM", 5, False),
        (2007, "ETM+", 7, True),
        (2008, "TM", 5, True),
        (2009, "TM", 5, False),
        (2009, "ETM+", 7, False),
        (2010, "TM", 5, False),
        (2011, "TM", 5, False),
        (2011, "ETM+", 7, True),
        (2012, "ETM+", 7, False),
        (2013, "OLI", 8, False),
        (2013, "ETM+", 7, False),
        (2014, "OLI", 8, False),
        (2015, "OLI", 8, True),
        (2016, "OLI", 8, False),
        (2017, "OLI", 8, False),
        (2018, "OLI", 8, False),
        (2019, "OLI", 8, True),
        (2020, "OLI", 8, False),
        (2021, "OLI", 8, False),
        (2022, "OLI", 8, False),
        (2022, "OLI-2", 9, True),
        (2023, "OLI-2", 9, True),
        (2024, "OLI", 8, False),
        (2024, "OLI-2", 9, False),
    ]
    return tuple(_Slot(*row) for row in table)


_SCHEDULE = _slots()

# Chosen first when n_scenes asks for a subset, so that even a handful of scenes has every
# sensor generation, Landsat 1-3 and 4-5 MSS band numbering, an SLC-off ETM+ scene and
# cloudy scenes with and without a QA band.
_CORE = (
    (1975, "MSS"),
    (1990, "TM"),
    (2007, "ETM+"),
    (2016, "OLI"),
    (1985, "MSS"),
    (2023, "OLI-2"),
    (2001, "ETM+"),
    (1974, "MSS"),
    (1997, "TM"),
)


def _schedule_order() -> list[int]:
    index = {(s.year, s.sensor): i for i, s in enumerate(_SCHEDULE)}
    order = [index[key] for key in _CORE]
    rest = [i for i in range(len(_SCHEDULE)) if i not in order]
    # Fill in greedily, farthest (in years) from what is already chosen first.
    while rest:
        chosen_years = np.array([_SCHEDULE[i].year for i in order])
        gaps = [np.min(np.abs(chosen_years - _SCHEDULE[i].year)) for i in rest]
        pick = rest[int(np.argmax(gaps))]
        order.append(pick)
        rest.remove(pick)
    return order


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *stream]))


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
    scans a wedge opens that is zero wide on the ground track and ``_MAX_GAP_M`` (420 m,
    14 lines) wide at the swath edge; the wedges alternate sides, so at a given distance
    from the track the gaps recur every 960 m along track. Over a whole 185 km scene this
    loses about 22 % of the pixels, the figure USGS gives for SLC-off data.

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
    shift = np.where(across < 0, 0.5 * _SCAN_PAIR_M, 0.0)
    return np.mod(along + phase_m + shift, _SCAN_PAIR_M) < width


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


def _block_mean(a: np.ndarray, k: int) -> np.ndarray:
    ny, nx = a.shape[0] // k, a.shape[1] // k
    blocks = a[: ny * k, : nx * k].reshape(ny, k, nx, k, *a.shape[2:])
    return blocks.mean(axis=(1, 3))


def _smooth_field(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    z = gaussian_filter(rng.standard_normal((n, n)), sigma=max(scale * n, 1.0), mode="wrap")
    return z / max(float(np.abs(z).max()), 1e-12)


def _shift(mask: np.ndarray, drow: int, dcol: int) -> np.ndarray:
    out = np.zeros_like(mask)
    ny, nx = mask.shape
    r0, r1 = max(0, drow), min(ny, ny + drow)
    c0, c1 = max(0, dcol), min(nx, nx + dcol)
    if r0 < r1 and c0 < c1:
        out[r0:r1, c0:c1] = mask[r0 - drow : r1 - drow, c0 - dcol : c1 - dcol]
    return out


# --------------------------------------------------------------------------------------
# The planted story


@dataclass(frozen=True, eq=False)
class _Story:
    lake: np.ndarray  # bool: stable water
    reservoir: np.ndarray  # bool: forest, water from RESERVOIR_FILL_YEAR
    cleared_year: np.ndarray  # int16: year the forest is cleared for the town (_NEVER: never)
    control: np.ndarray  # bool: a corner of forest nothing happens to
    texture: np.ndarray  # float32 in [-1, 1]: static spatial texture

    def cover(self, year: int) -> np.ndarray:
        cover = np.zeros(self.lake.shape, dtype=np.int8)  # forest
        cover[self.cleared_year <= year] = 1
        cover[self.cleared_year + _BUILD_DELAY_YEARS <= year] = 2
        cover[self.lake] = 3
        if year >= RESERVOIR_FILL_YEAR:
            cover[self.reservoir] = 3
        return cover

    def classes(self, year: int) -> np.ndarray:
        return _COVER_CLASS[self.cover(year)]


def _make_story(size: int, seed: int) -> _Story:
    rng = _rng(seed, 0)
    centres = (np.arange(size) + 0.5) / size
    yy, xx = np.meshgrid(centres, centres, indexing="ij")

    def ellipse(cx: float, cy: float, ax: float, ay: float, angle_deg: float) -> np.ndarray:
        a = math.radians(angle_deg)
        dx, dy = xx - cx, yy - cy
        u = dx * math.cos(a) + dy * math.sin(a)
        v = -dx * math.sin(a) + dy * math.cos(a)
        return (u / ax) ** 2 + (v / ay) ** 2

    lake = ellipse(0.80, 0.18, 0.10, 0.07, 20.0) + 0.25 * _smooth_field(rng, size, 0.06) < 1.0
    reservoir = ellipse(0.70, 0.74, 0.17, 0.07, -30.0) + 0.25 * _smooth_field(rng, size, 0.06)
    reservoir = (reservoir < 1.0) & ~lake

    # The town: a lobed outline (3 lobes, random orientation) that grows with the years.
    dx, dy = xx - 0.32, yy - 0.40
    theta = np.arctan2(dy, dx)
    lobes = 1.0 + 0.22 * np.sin(3.0 * theta + rng.uniform(0, 2 * math.pi))
    distance = np.hypot(dx, dy) / (lobes + 0.12 * _smooth_field(rng, size, 0.05))
    years = np.array([1940.0, 1973.0, 1980.0, 1990.0, 2000.0, 2010.0, 2024.0])
    radii = np.array([0.0, 0.07, 0.09, 0.13, 0.18, 0.23, 0.28])
    cleared = np.ceil(np.interp(distance, radii, years))
    cleared = np.where(distance > radii[-1], _NEVER, cleared)
    # Town land predating the record is already built up in 1973.
    cleared = np.where(cleared < FIRST_YEAR, FIRST_YEAR - _BUILD_DELAY_YEARS, cleared)
    cleared[lake | reservoir] = _NEVER

    control = (xx < 0.2) & (yy > 0.8)
    texture = 0.7 * _smooth_field(rng, size, 0.02) + 0.3 * rng.uniform(-1.0, 1.0, (size, size))
    return _Story(lake, reservoir, cleared.astype(np.int16), control, texture.astype(np.float32))


# --------------------------------------------------------------------------------------
# Scene planning: dates, sun, identifiers, calibration


@dataclass(frozen=True)
class _BandCal:
    label: str
    radiance_mult: float
    radiance_add: float
    reflectance_mult: float
    reflectance_add: float
    qcal_min: int
    qcal_max: int


@dataclass(frozen=True)
class _Plan:
    index: int
    slot: _Slot
    sensor: Sensor
    acquired: dt.datetime
    processed: dt.date
    product_id: str
    scene_id: str
    wrs: tuple[int, int, int]  # type, path, row
    sun_elevation: float
    sun_azimuth: float
    earth_sun_distance: float
    bands: tuple[_BandCal, ...]


_SENSOR_LETTER = {"MSS": "M", "TM": "T", "ETM+": "E", "OLI": "C", "OLI-2": "C"}
_SENSOR_ID = {"MSS": "MSS", "TM": "TM", "ETM+": "ETM", "OLI": "OLI_TIRS", "OLI-2": "OLI_TIRS"}
# Local mean solar time of the descending-node overpass, hours.
_OVERPASS_HOURS = {1: 9.5, 2: 9.5, 3: 9.5, 4: 9.75, 5: 9.75, 7: 10.0, 8: 10.15, 9: 10.15}


def _fmt(value: float, spec: str) -> float:
    # What the MTL says is what the forward model must use.
    return float(format(value, spec))


def _band_calibration(sensor: Sensor, when: dt.date, distance: float) -> tuple[_BandCal, ...]:
    out = []
    if sensor.name in ("OLI", "OLI-2"):
        for label in sensor.band_labels:
            mult, add = 2.0e-5, -0.1
            to_radiance = _OLI_IRRADIANCE[label] / (math.pi * distance**2)
            out.append(
                _BandCal(
                    label,
                    _fmt(mult * to_radiance, ".4E"),
                    _fmt(add * to_radiance, ".5f"),
                    mult,
                    add,
                    1,
                    65535,
                )
            )
        return tuple(out)
    gains = dict.fromkeys(sensor.band_labels, "L")
    table = published_calibration(sensor.name, sensor.satellite, when, gains)
    for label in sensor.band_labels:
        cal = table.band(label)
        # Collection 2 delivers every one of these sensors as 8-bit DN 1-255.
        rad_mult = (cal.lmax - cal.lmin) / 254.0
        rad_add = cal.lmin - rad_mult
        to_reflectance = math.pi * distance**2 / cal.esun
        out.append(
            _BandCal(
                label,
                _fmt(rad_mult, ".4E"),
                _fmt(rad_add, ".5f"),
                _fmt(rad_mult * to_reflectance, ".4E"),
                _fmt(rad_add * to_reflectance, ".6f"),
                1,
                255,
            )
        )
    return tuple(out)


def _plan_scene(index: int, seed: int, lat: float, lon: float) -> _Plan:
    slot = _SCHEDULE[index]
    sensor = get_sensor(slot.sensor, slot.satellite)
    rng = _rng(seed, 1, index)
    if slot.month_day is not None:
        date = dt.date(slot.year, *slot.month_day)
    else:
        # Summer scenes (June to mid-September), when the forest is in leaf.
        date = dt.date(slot.year, 1, 1) + dt.timedelta(days=int(rng.integers(151, 258)))
    local_hours = _OVERPASS_HOURS[slot.satellite] + rng.uniform(-0.05, 0.05)
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
    station = "HOA"
    scene_id = f"L{letter}{slot.satellite}{wrs[1]:03d}{wrs[2]:03d}{date.year}{doy:03d}{station}00"
    # Collection 2 reprocessed the archive in 2020-2021; later scenes within weeks.
    processed = max(dt.date(2020, 9, 1) + dt.timedelta(days=index % 60), date)
    if processed == date:
        processed = date + dt.timedelta(days=12)
    level, tier = ("L1TP", "T2") if sensor.name == "MSS" else ("L1TP", "T1")
    product_id = (
        f"L{letter}{slot.satellite:02d}_{level}_{wrs[1]:03d}{wrs[2]:03d}_"
        f"{date:%Y%m%d}_{processed:%Y%m%d}_02_{tier}"
    )
    return _Plan(
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
        bands=_band_calibration(sensor, date, distance),
    )


# --------------------------------------------------------------------------------------
# Planting one scene's coefficients, clouds and gaps


@dataclass(frozen=True, eq=False)
class _Planting:
    truth: SceneTruth
    water: np.ndarray  # planted water (land cover), native grid


def _plant(story: _Story, plan: _Plan, grid: DemoGrid, seed: int) -> _Planting:
    size = grid.shape[0]
    year = plan.slot.year
    rng = _rng(seed, 2, plan.index)
    cover = story.cover(year)
    base = np.array([COVER_COEFFICIENTS[c] for c in _COVERS])
    coeffs = base[cover] * (1.0 + _COVER_TEXTURE[cover] * story.texture)[..., None]
    # Leaf area peaks in late July; a few per cent either side over the summer.
    doy = plan.acquired.timetuple().tm_yday
    vigour = 1.0 + 0.05 * math.cos(2.0 * math.pi * (doy - 205) / 365.0)
    coeffs[cover == 0, 1] *= vigour

    cloud = np.zeros((size, size), dtype=bool)
    shadow = np.zeros_like(cloud)
    if plan.slot.cloudy:
        cloud, shadow = _plant_clouds(rng, size, plan.sun_elevation, plan.sun_azimuth)
        coeffs[shadow] *= _SHADOW_DIMMING
        cloud_texture = 1.0 + _CLOUD_TEXTURE * _smooth_field(rng, size, 0.03)
        cloud_c = np.asarray(COVER_COEFFICIENTS["cloud"]) * cloud_texture[..., None]
        coeffs[cloud] = cloud_c[cloud]

    classes = story.classes(year)
    if plan.sensor.name == "MSS":
        k = _MSS_FACTOR
        coeffs = _block_mean(coeffs, k)
        cloud_frac = _block_mean(cloud.astype(np.float64), k)
        shadow_frac = _block_mean(shadow.astype(np.float64), k)
        blocks = classes.reshape(size // k, k, size // k, k)
        uniform = (blocks == blocks[:, :1, :, :1]).all(axis=(1, 3))
        land = np.where(uniform, blocks[:, 0, :, 0], NO_DATA).astype(np.uint8)
        cloud_n, shadow_n = cloud_frac > 0.5, (shadow_frac > 0.5) & ~(cloud_frac > 0.5)
        clear = (cloud_frac == 0) & (shadow_frac == 0)
        water = land == WATER
    else:
        land, cloud_n, shadow_n = classes.copy(), cloud, shadow
        clear = ~(cloud | shadow)
        water = classes == WATER
    land = land.copy()
    land[cloud_n] = CLOUD

    fill = np.zeros(land.shape, dtype=bool)
    if plan.sensor.name == "ETM+" and plan.acquired.date() > SLC_FAILURE_DATE:
        fill = _gap_mask(grid, rng)
    clear &= ~fill
    truth = SceneTruth(
        coefficients=coeffs.astype(np.float32),
        cloud=cloud_n,
        shadow=shadow_n,
        fill=fill,
        clear=clear,
        land_cover=land,
    )
    return _Planting(truth, water)


def _plant_clouds(
    rng: np.random.Generator, size: int, sun_elevation: float, sun_azimuth: float
) -> tuple[np.ndarray, np.ndarray]:
    idx = np.arange(size, dtype=np.float64)
    yy, xx = np.meshgrid(idx, idx, indexing="ij")
    density = np.zeros((size, size))
    for _ in range(int(rng.integers(1, 4))):
        cx, cy = rng.uniform(0.1, 0.9, 2) * size
        radius = rng.uniform(0.07, 0.14) * size
        density += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2.0 * radius**2))
    density += 0.25 * _smooth_field(rng, size, 0.04)
    cloud = density > 0.55
    # The shadow falls away from the sun, displaced by cloud height x tan(sun zenith).
    height_m = rng.uniform(800.0, 2500.0)
    reach = height_m * math.tan(math.radians(90.0 - sun_elevation)) / _RESOLUTION
    az = math.radians(sun_azimuth)
    drow, dcol = round(math.cos(az) * reach), round(-math.sin(az) * reach)
    shadow = _shift(cloud, drow, dcol) & ~cloud
    return cloud, shadow


def _gap_mask(grid: DemoGrid, rng: np.random.Generator) -> np.ndarray:
    a, _, c, _, e, f = grid.transform
    ny, nx = grid.shape
    x = c + (np.arange(nx) + 0.5) * a
    y = f + (np.arange(ny) + 0.5) * e
    centre_x, centre_y = c + 0.5 * nx * a, f + 0.5 * ny * e
    return slc_off_gap_mask(
        x[None, :],
        y[:, None],
        track_x=centre_x - _TRACK_OFFSET_M + rng.normal(0.0, 1500.0),
        track_y=centre_y,
        phase_m=rng.uniform(0.0, _SCAN_PAIR_M),
    )


# --------------------------------------------------------------------------------------
# QA_PIXEL (Collection 2 Level-1 bit layout)

_QA_FILL, _QA_CLOUD, _QA_SHADOW, _QA_CLEAR, _QA_WATER = 1 << 0, 1 << 3, 1 << 4, 1 << 6, 1 << 7
_CONF_LOW, _CONF_HIGH = 1, 3  # two-bit confidence levels


def _qa_pixel(truth: SceneTruth, water: np.ndarray, oli: bool) -> np.ndarray:
    """QA_PIXEL with only what was planted: fill, cloud (+ high confidence), cloud shadow
    (+ high confidence), clear (neither cloud nor dilated cloud, as the DFCB defines it),
    water; snow (and, for OLI, cirrus) confidence low everywhere."""
    cloud_conf = np.where(truth.cloud, _CONF_HIGH, _CONF_LOW).astype(np.uint16)
    shadow_conf = np.where(truth.shadow, _CONF_HIGH, _CONF_LOW).astype(np.uint16)
    qa = (cloud_conf << 8) | (shadow_conf << 10) | np.uint16(_CONF_LOW << 12)
    if oli:
        qa |= np.uint16(_CONF_LOW << 14)
    qa |= np.where(truth.cloud, _QA_CLOUD, _QA_CLEAR).astype(np.uint16)
    qa |= np.where(truth.shadow, _QA_SHADOW, 0).astype(np.uint16)
    qa |= np.where(water & ~truth.cloud, _QA_WATER, 0).astype(np.uint16)
    qa[truth.fill] = _QA_FILL
    return qa.astype(np.uint16)


# --------------------------------------------------------------------------------------
# Writing: GeoTIFFs and the MTL


def _write_tiff(path: Path, array: np.ndarray, transform: Sequence[float], crs: Any) -> None:
    import rasterio
    from rasterio.transform import Affine

    ny, nx = array.shape
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "height": ny,
        "width": nx,
        "count": 1,
        "dtype": array.dtype.name,
        "crs": crs,
        "transform": Affine(*transform),
        "compress": "deflate",
        "predictor": 2,
    }
    if min(ny, nx) >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    else:
        profile.update(tiled=False, blockysize=max(1, min(ny, 65536 // max(nx, 1))))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array, 1)


def _q(text: str) -> str:
    return f'"{text}"'


def _mtl_text(
    plan: _Plan,
    transform: Sequence[float],
    shape: tuple[int, int],
    files: Mapping[str, str],
    qa_file: str | None,
    cloud_cover: float,
    saturated: Mapping[str, bool],
    corners_latlon: Mapping[str, tuple[float, float]],
) -> str:
    s = plan.sensor
    labels = s.band_labels
    dtype = "UINT16" if s.name in ("OLI", "OLI-2") else "UINT8"
    res = float(transform[0])
    ny, nx = shape
    ul_x, ul_y = transform[2] + 0.5 * res, transform[5] - 0.5 * res
    lr_x, lr_y = ul_x + (nx - 1) * res, ul_y - (ny - 1) * res
    corners = {"UL": (ul_x, ul_y), "UR": (lr_x, ul_y), "LL": (ul_x, lr_y), "LR": (lr_x, lr_y)}
    mtl_name = f"{plan.product_id}_MTL.txt"
    t = plan.acquired
    seconds = t.second + t.microsecond * 1e-6
    centre_time = f"{t.hour:02d}:{t.minute:02d}:{seconds:010.7f}Z"

    file_entries = [(f"FILE_NAME_BAND_{b}", _q(files[b])) for b in labels]
    if qa_file is not None:
        file_entries.append(("FILE_NAME_QUALITY_L1_PIXEL", _q(qa_file)))
    file_entries.append(("FILE_NAME_METADATA_ODL", _q(mtl_name)))

    contents = [
        ("ORIGIN", _q(_ORIGIN_TEXT)),
        ("LANDSAT_PRODUCT_ID", _q(plan.product_id)),
        ("PROCESSING_LEVEL", _q("L1TP")),
        ("COLLECTION_NUMBER", "02"),
        ("COLLECTION_CATEGORY", _q(plan.product_id[-2:])),
        ("OUTPUT_FORMAT", _q("GEOTIFF")),
        *file_entries,
        *[(f"DATA_TYPE_BAND_{b}", _q(dtype)) for b in labels],
    ]
    if qa_file is not None:
        contents.append(("DATA_TYPE_QUALITY_L1_PIXEL", _q("UINT16")))
    if s.name == "MSS":
        contents += [(f"PRESENT_BAND_{b}", _q("Y")) for b in labels]

    image = [
        ("SPACECRAFT_ID", _q(s.platform)),
        ("SENSOR_ID", _q(_SENSOR_ID[s.name])),
        ("WRS_TYPE", str(plan.wrs[0])),
        ("WRS_PATH", str(plan.wrs[1])),
        ("WRS_ROW", str(plan.wrs[2])),
    ]
    if s.name in ("OLI", "OLI-2"):
        image += [
            ("NADIR_OFFNADIR", _q("NADIR")),
            ("TARGET_WRS_PATH", str(plan.wrs[1])),
            ("TARGET_WRS_ROW", str(plan.wrs[2])),
        ]
    image += [
        ("DATE_ACQUIRED", f"{t:%Y-%m-%d}"),
        ("SCENE_CENTER_TIME", _q(centre_time)),
        ("STATION_ID", _q("HOA")),
        ("CLOUD_COVER", f"{cloud_cover:.2f}"),
        ("CLOUD_COVER_LAND", f"{cloud_cover:.2f}"),
        *[(f"SATURATION_BAND_{b}", _q("Y" if saturated[b] else "N")) for b in labels],
        ("SUN_AZIMUTH", f"{plan.sun_azimuth:.8f}"),
        ("SUN_ELEVATION", f"{plan.sun_elevation:.8f}"),
        ("EARTH_SUN_DISTANCE", f"{plan.earth_sun_distance:.7f}"),
    ]

    zone = DEMO_EPSG - 32600
    projection = [
        ("MAP_PROJECTION", _q("UTM")),
        ("DATUM", _q("WGS84")),
        ("ELLIPSOID", _q("WGS84")),
        ("UTM_ZONE", str(zone)),
        ("GRID_CELL_SIZE_REFLECTIVE", f"{res:.2f}"),
        ("REFLECTIVE_LINES", str(ny)),
        ("REFLECTIVE_SAMPLES", str(nx)),
        ("ORIENTATION", _q("NORTH_UP")),
    ]
    for name in ("UL", "UR", "LL", "LR"):
        lat, lon = corners_latlon[name]
        projection += [
            (f"CORNER_{name}_LAT_PRODUCT", f"{lat:.5f}"),
            (f"CORNER_{name}_LON_PRODUCT", f"{lon:.5f}"),
        ]
    for name in ("UL", "UR", "LL", "LR"):
        x, y = corners[name]
        projection += [
            (f"CORNER_{name}_PROJECTION_X_PRODUCT", f"{x:.3f}"),
            (f"CORNER_{name}_PROJECTION_Y_PRODUCT", f"{y:.3f}"),
        ]

    record = [
        ("ORIGIN", _q(_ORIGIN_TEXT)),
        ("LANDSAT_SCENE_ID", _q(plan.scene_id)),
        ("LANDSAT_PRODUCT_ID", _q(plan.product_id)),
        ("PROCESSING_LEVEL", _q("L1TP")),
        ("COLLECTION_CATEGORY", _q(plan.product_id[-2:])),
        ("OUTPUT_FORMAT", _q("GEOTIFF")),
        ("DATE_PRODUCT_GENERATED", f"{plan.processed:%Y-%m-%d}T00:00:00Z"),
        ("PROCESSING_SOFTWARE_VERSION", _q("updm_dask demo")),
        *file_entries,
    ]

    bands = plan.bands
    radiance_minmax = []
    reflectance_minmax = []
    pixel_minmax = []
    for b in bands:
        radiance_minmax += [
            (
                f"RADIANCE_MAXIMUM_BAND_{b.label}",
                f"{b.radiance_mult * b.qcal_max + b.radiance_add:.5f}",
            ),
            (
                f"RADIANCE_MINIMUM_BAND_{b.label}",
                f"{b.radiance_mult * b.qcal_min + b.radiance_add:.5f}",
            ),
        ]
        reflectance_minmax += [
            (
                f"REFLECTANCE_MAXIMUM_BAND_{b.label}",
                f"{b.reflectance_mult * b.qcal_max + b.reflectance_add:.6f}",
            ),
            (
                f"REFLECTANCE_MINIMUM_BAND_{b.label}",
                f"{b.reflectance_mult * b.qcal_min + b.reflectance_add:.6f}",
            ),
        ]
        pixel_minmax += [
            (f"QUANTIZE_CAL_MAX_BAND_{b.label}", str(b.qcal_max)),
            (f"QUANTIZE_CAL_MIN_BAND_{b.label}", str(b.qcal_min)),
        ]
    rescaling = (
        [(f"RADIANCE_MULT_BAND_{b.label}", f"{b.radiance_mult:.4E}") for b in bands]
        + [(f"RADIANCE_ADD_BAND_{b.label}", f"{b.radiance_add:.5f}") for b in bands]
        + [(f"REFLECTANCE_MULT_BAND_{b.label}", f"{b.reflectance_mult:.4E}") for b in bands]
        + [(f"REFLECTANCE_ADD_BAND_{b.label}", f"{b.reflectance_add:.6f}") for b in bands]
    )
    projection_parameters = [
        ("MAP_PROJECTION", _q("UTM")),
        ("DATUM", _q("WGS84")),
        ("ELLIPSOID", _q("WGS84")),
        ("UTM_ZONE", str(zone)),
        ("GRID_CELL_SIZE_REFLECTIVE", f"{res:.2f}"),
        ("ORIENTATION", _q("NORTH_UP")),
        ("RESAMPLING_OPTION", _q("CUBIC_CONVOLUTION")),
    ]
    groups: list[tuple[str, list[tuple[str, str]]]] = [
        ("PRODUCT_CONTENTS", contents),
        ("IMAGE_ATTRIBUTES", image),
        ("PROJECTION_ATTRIBUTES", projection),
        ("LEVEL1_PROCESSING_RECORD", record),
        ("LEVEL1_MIN_MAX_RADIANCE", radiance_minmax),
        ("LEVEL1_MIN_MAX_REFLECTANCE", reflectance_minmax),
        ("LEVEL1_MIN_MAX_PIXEL_VALUE", pixel_minmax),
        ("LEVEL1_RADIOMETRIC_RESCALING", rescaling),
        ("LEVEL1_PROJECTION_PARAMETERS", projection_parameters),
    ]
    if s.name in ("MSS", "ETM+"):
        groups.append(("PRODUCT_PARAMETERS", [(f"GAIN_BAND_{b}", _q("L")) for b in labels]))

    lines = ["GROUP = LANDSAT_METADATA_FILE"]
    for name, entries in groups:
        lines.append(f"  GROUP = {name}")
        lines += [f"    {key} = {value}" for key, value in entries]
        lines.append(f"  END_GROUP = {name}")
    lines += ["END_GROUP = LANDSAT_METADATA_FILE", "END", ""]
    return "\n".join(line.rstrip() for line in lines)


# --------------------------------------------------------------------------------------
# The archive


@dataclass(frozen=True)
class DemoArchive:
    """A generated demo archive and the truth it is judged against.

    Attributes
    ----------
    root
        Folder of scene folders (each named by its product id: band GeoTIFFs, ``_MTL.txt``,
        ``_QA_PIXEL.TIF`` except for MSS).
    grid
        The grid every scene lies on (MSS at 60 m, aligned to it).
    scenes
        The scenes, in acquisition order.
    seed, size
        What the archive was generated from.
    """

    root: Path
    grid: DemoGrid
    scenes: tuple[DemoScene, ...]
    seed: int
    size: int
    _story: _Story = field(repr=False, compare=False)

    @property
    def years(self) -> tuple[int, ...]:
        """Years with at least one scene, ascending."""
        return tuple(sorted({s.year for s in self.scenes}))

    def scene(self, product_id: str) -> DemoScene:
        """The scene with this product id."""
        for s in self.scenes:
            if s.product_id == product_id:
                return s
        raise SceneError(
            f"no scene {product_id!r} in the demo archive at {self.root}; it holds "
            f"{len(self.scenes)} scenes ({self.scenes[0].product_id} ...)"
        )

    def truth_class(self, year: int) -> np.ndarray:
        """Planted land-cover class of every grid pixel in ``year`` (no clouds).

        Parameters
        ----------
        year
            Any calendar year; the story is defined before, during and after 1973-2024.

        Returns
        -------
        numpy.ndarray
            uint8 (ny, nx): 2 water, 3 vegetation, 4 urban (built-up or cleared ground).
        """
        if isinstance(year, bool) or not isinstance(year, int | np.integer):
            raise GridError(f"year must be an integer, got {year!r}")
        return self._story.classes(int(year))

    def planted_regions(self) -> dict[str, np.ndarray]:
        """Boolean grid masks of the story's parts.

        ``lake`` (water throughout), ``reservoir`` (forest, water from
        :data:`RESERVOIR_FILL_YEAR`), ``town`` (cleared at some time up to 2024),
        ``forest_control`` (forest throughout); also ``cleared_year`` (int16, 9999 = never).
        """
        s = self._story
        return {
            "lake": s.lake.copy(),
            "reservoir": s.reservoir.copy(),
            "town": s.cleared_year <= LAST_YEAR,
            "forest_control": s.control.copy(),
            "cleared_year": s.cleared_year.copy(),
        }

    def scene_truth(self, product_id: str) -> SceneTruth:
        """What was planted in one scene (coefficients, clouds, shadows, gaps, classes)."""
        return self._planting(self.scene(product_id)).truth

    def _planting(self, scene: DemoScene) -> _Planting:
        lat, lon = _grid_centre_latlon(self.grid)
        plan = _plan_scene(scene.index, self.seed, lat, lon)
        return _plant(self._story, plan, self.grid, self.seed)

    def write_job_spec(self, path: str | Path, cube_path: str | Path) -> Path:
        """Write a job spec (TOML, :func:`demo_job_spec`) that processes this archive.

        Returns
        -------
        pathlib.Path
            The file written.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(demo_job_spec(self, cube_path), encoding="utf-8")
        return path


def _toml_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c >= " " else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'


def demo_job_spec(archive: DemoArchive, cube_path: str | Path) -> str:
    """The TOML job spec of the demo: its archive into a cube on its grid.

    The one place that knows the job-spec layout the demo uses.

    Parameters
    ----------
    archive
        From :func:`make_demo_archive`.
    cube_path
        Where the cube goes (written as an absolute path when it is a local path).

    Returns
    -------
    str
    """
    cube = str(cube_path)
    if "://" not in cube:
        cube = str(Path(cube).absolute())
    g = archive.grid
    transform = ", ".join(repr(float(v)) for v in g.transform)
    return "\n".join(
        [
            f"# updm demo: synthetic archive (seed {archive.seed}, {len(archive.scenes)} scenes)",
            "[job]",
            'name = "updm-demo"',
            "",
            "[inputs]",
            f"paths = [{_toml_string(str(archive.root.absolute()))}]",
            "",
            "[cube]",
            f"path = {_toml_string(cube)}",
            "",
            "[grid]",
            f"crs = {_toml_string(g.crs)}",
            f"transform = [{transform}]",
            f"shape = [{g.shape[0]}, {g.shape[1]}]",
            "",
            "[science]",
            'patterns = "default"',
            'rules = "auto"',
            "",
            "[batch]",
            "size = 8",
            "",
        ]
    )


def _grid_centre_latlon(grid: DemoGrid) -> tuple[float, float]:
    lat, lon = _to_latlon(grid, [(grid.shape[1] / 2, grid.shape[0] / 2)])[0]
    return lat, lon


def _to_latlon(grid: DemoGrid, cols_rows: Sequence[tuple[float, float]]):
    from pyproj import Transformer

    a, b, c, d, e, f = grid.transform
    xs = [a * col + b * row + c for col, row in cols_rows]
    ys = [d * col + e * row + f for col, row in cols_rows]
    transformer = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)
    lons, lats = transformer.transform(xs, ys)
    return list(zip(lats, lons, strict=True))


def _check_arguments(workdir: Any, seed: Any, n_scenes: Any, size: Any) -> Path:
    if isinstance(size, bool) or not isinstance(size, int | np.integer):
        raise GridError(f"size must be an integer number of 30 m pixels, got {size!r}")
    if size < MIN_SIZE or size > _MAX_SIZE:
        raise GridError(
            f"size={size} is outside [{MIN_SIZE}, {_MAX_SIZE}]: the demo grid needs at least "
            f"{MIN_SIZE} x {MIN_SIZE} pixels to hold its town, lake, reservoir and control forest"
        )
    if size % _MSS_FACTOR:
        raise GridError(
            f"size={size} is odd; it must be even so that the 60 m MSS scenes cover the 30 m "
            "grid exactly (2 x 2 pixels each)"
        )
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise SceneError(f"seed must be a non-negative integer, got {seed!r}")
    if n_scenes is not None:
        if isinstance(n_scenes, bool) or not isinstance(n_scenes, int | np.integer):
            raise SceneError(f"n_scenes must be an integer or None, got {n_scenes!r}")
        if not 1 <= n_scenes <= len(_SCHEDULE):
            raise SceneError(
                f"n_scenes={n_scenes} is outside [1, {len(_SCHEDULE)}] (the full 1973-2024 "
                "schedule); pass None for all of it"
            )
    try:
        workdir = Path(workdir)
    except TypeError:
        raise SceneError(f"workdir must be a path, got {workdir!r}") from None
    if workdir.exists() and not workdir.is_dir():
        raise SceneError(f"workdir {str(workdir)!r} is a file; expected a directory")
    return workdir


def _prepare_root(root: Path) -> None:
    if root.exists():
        if not root.is_dir():
            raise SceneError(f"{root} is a file; the demo archive folder must be a directory")
        if any(root.iterdir()):
            if not (root / _MANIFEST).is_file():
                raise SceneError(
                    f"{root} exists and is not a demo archive (no {_MANIFEST}); refusing to "
                    "overwrite it: choose another --workdir"
                )
            # A previous demo archive: replace it whole, so no stale scene survives.
            shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)


def make_demo_archive(
    workdir: str | Path,
    *,
    seed: int = 0,
    n_scenes: int | None = None,
    size: int = 200,
    pattern_set: Any = None,
) -> DemoArchive:
    """Generate the synthetic 1973-2024 Landsat archive of ``updm demo``.

    Parameters
    ----------
    workdir
        Folder to work in (created when missing); the archive goes to ``workdir/archive``.
        A previous demo archive there is replaced; any other non-empty folder is refused.
    seed
        Seeds every random choice (dates, texture, clouds, noise, gap phases): the same seed
        gives the same archive, byte for byte in the rasters and the MTLs.
    n_scenes
        Number of scenes; ``None`` for the whole schedule (about 1-2 a year, 68 scenes).
        A subset keeps every sensor generation first, then spreads over the years.
    size
        Grid edge in 30 m pixels (even, >= :data:`MIN_SIZE`); MSS scenes are ``size // 2``
        pixels of 60 m.
    pattern_set
        The :class:`~updm_dask.science.patterns.PatternSet` whose box-car band patterns turn
        coefficients into reflectance (default: the package's default set, which the job
        spec of :func:`demo_job_spec` names as ``patterns = "default"``; with another set,
        point the job at it too, or the decomposition will not invert the forward model).

    Returns
    -------
    DemoArchive

    Raises
    ------
    GridError
        ``size`` not an even integer in range.
    SceneError
        Bad ``seed`` or ``n_scenes``; ``workdir`` is a file; ``workdir/archive`` holds
        something that is not a demo archive.
    """
    import rasterio
    from rasterio.crs import CRS

    from .science.patterns import band_patterns

    workdir = _check_arguments(workdir, seed, n_scenes, size)
    seed, size = int(seed), int(size)
    root = workdir / "archive"
    _prepare_root(root)

    grid = DemoGrid(
        crs=f"EPSG:{DEMO_EPSG}",
        transform=(_RESOLUTION, 0.0, _ORIGIN_X, 0.0, -_RESOLUTION, _ORIGIN_Y),
        shape=(size, size),
    )
    crs = CRS.from_epsg(DEMO_EPSG)
    story = _make_story(size, seed)
    lat, lon = _grid_centre_latlon(grid)
    order = _schedule_order()
    chosen = sorted(order[: n_scenes or len(order)])

    cache: dict[Sensor, np.ndarray] = {}

    def patterns_of(sensor: Sensor) -> np.ndarray:
        # The three standard patterns only: uC4 is planted as 0.
        if sensor not in cache:
            p = band_patterns(
                sensor, pattern_set, method="boxcar", supplementary=False, satellite=None
            )
            cache[sensor] = p.sel(pattern=["water", "vegetation", "soil"]).values
        return cache[sensor]

    scenes = []
    # One GDAL environment for all files instead of one per open.
    with rasterio.Env():
        for index in chosen:
            plan = _plan_scene(index, seed, lat, lon)
            planting = _plant(story, plan, grid, seed)
            scenes.append(_write_scene(root, plan, planting, grid, crs, seed, patterns_of))
    scenes.sort(key=lambda s: (s.acquired, s.product_id))

    manifest = {
        "generator": "updm_dask.demo",
        "seed": seed,
        "size": size,
        "grid": {"crs": grid.crs, "transform": list(grid.transform), "shape": list(grid.shape)},
        "scenes": [s.product_id for s in scenes],
    }
    (root / _MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return DemoArchive(root, grid, tuple(scenes), seed, size, story)


def _write_scene(
    root: Path,
    plan: _Plan,
    planting: _Planting,
    grid: DemoGrid,
    crs: Any,
    seed: int,
    band_patterns: Callable[[Sensor], np.ndarray],
) -> DemoScene:
    sensor = plan.sensor
    truth = planting.truth
    mss = sensor.name == "MSS"
    transform, shape = (grid.mss_transform, grid.mss_shape) if mss else (grid.transform, grid.shape)
    p = band_patterns(sensor)
    zenith = 90.0 - plan.sun_elevation
    path_reflectance = rayleigh_reflectance(np.array([b.centre_um for b in sensor.bands]), zenith)
    mult = np.array([b.reflectance_mult for b in plan.bands])
    add = np.array([b.reflectance_add for b in plan.bands])
    qmax = np.array([b.qcal_max for b in plan.bands], dtype=np.float64)
    noise_rng = _rng(seed, 3, plan.index)
    noise = noise_rng.normal(0.0, _NOISE[sensor.name], (*shape, len(sensor.bands)))
    dn = forward_dn(
        truth.coefficients,
        p,
        path_reflectance,
        math.sin(math.radians(plan.sun_elevation)),
        mult,
        add,
        qmax,
        noise,
    )
    dtype = np.uint16 if sensor.name in ("OLI", "OLI-2") else np.uint8
    dn = dn.astype(dtype)
    dn[truth.fill] = 0

    folder = root / plan.product_id
    folder.mkdir()
    files = {}
    saturated = {}
    for i, label in enumerate(sensor.band_labels):
        name = f"{plan.product_id}_B{label}.TIF"
        _write_tiff(folder / name, np.ascontiguousarray(dn[..., i]), transform, crs)
        files[label] = name
        saturated[label] = bool((dn[..., i] >= qmax[i]).any())
    qa_file = None
    if not mss:
        qa_file = f"{plan.product_id}_QA_PIXEL.TIF"
        qa = _qa_pixel(truth, planting.water, oli=sensor.name in ("OLI", "OLI-2"))
        _write_tiff(folder / qa_file, qa, transform, crs)

    valid = ~truth.fill
    cloud_fraction = float(truth.cloud.sum() / truth.cloud.size)
    cloud_cover = 100.0 * float(truth.cloud[valid].mean()) if valid.any() else 0.0
    ny, nx = shape
    corner_cells = [(0.5, 0.5), (nx - 0.5, 0.5), (0.5, ny - 0.5), (nx - 0.5, ny - 0.5)]
    cell_grid = DemoGrid(grid.crs, tuple(transform), shape)
    corners_latlon = dict(
        zip(("UL", "UR", "LL", "LR"), _to_latlon(cell_grid, corner_cells), strict=True)
    )
    text = _mtl_text(plan, transform, shape, files, qa_file, cloud_cover, saturated, corners_latlon)
    (folder / f"{plan.product_id}_MTL.txt").write_text(text, encoding="utf-8")
    return DemoScene(
        product_id=plan.product_id,
        scene_id=plan.scene_id,
        sensor=sensor.name,
        satellite=sensor.satellite,
        date=plan.acquired.date(),
        acquired=plan.acquired,
        cloud_fraction=cloud_fraction,
        folder=folder,
        index=plan.index,
        sun_elevation=plan.sun_elevation,
        sun_azimuth=plan.sun_azimuth,
        earth_sun_distance=plan.earth_sun_distance,
    )


# --------------------------------------------------------------------------------------
# Judging a job against the truth

_LAND_CLASSES = (WATER, VEGETATION, URBAN)


@dataclass(frozen=True)
class RecoveryRow:
    """How well one year's land-cover layer recovers the planted story.

    Attributes
    ----------
    year
        The year.
    found
        Class name (water, vegetation, urban) -> % of the CLASSIFIED pixels (those the layer
        puts in a land class) the layer gives that class.
    planted
        Class name -> % of all grid pixels planted with that class.
    unclassified_pct
        % of pixels the layer leaves as cloud or no data.
    agreement_pct
        % of classified pixels whose class equals the planted one (NaN when none is
        classified).
    """

    year: int
    found: Mapping[str, float]
    planted: Mapping[str, float]
    unclassified_pct: float
    agreement_pct: float


def _truth_getter(truth: Any) -> Callable[[int], np.ndarray]:
    if hasattr(truth, "truth_class"):
        return truth.truth_class
    if isinstance(truth, Mapping):

        def from_mapping(year: int) -> np.ndarray:
            if year not in truth:
                raise GridError(f"truth has no layer for year {year}")
            return np.asarray(truth[year])

        return from_mapping
    if callable(truth):
        return truth
    raise GridError(
        f"truth must be a DemoArchive, a callable year -> classes, or a mapping year -> "
        f"classes; got {type(truth).__name__}"
    )


def recovery_report(yearly_classes: Any, truth: Any) -> list[RecoveryRow]:
    """Compare yearly land-cover layers with the planted truth.

    Parameters
    ----------
    yearly_classes
        Year -> (ny, nx) class codes on the demo grid (0 no data, 1 cloud, 2 water,
        3 vegetation, 4 urban); numpy or xarray. Or the demo cube itself (a
        :class:`~updm_dask.cube.Cube` or its location): its per-year land-cover maps are
        then read with the cube queries (:func:`updm_dask.query.open_yearly`), every year
        that has a per-year layer.
    truth
        A :class:`DemoArchive`, a callable ``year -> classes``, or a mapping year -> classes.

    Returns
    -------
    list of RecoveryRow
        One row per year, ascending.

    Raises
    ------
    GridError
        A layer whose shape differs from the truth's, or an unusable ``truth``.
    QueryError
        A cube without per-year layers.
    """
    if not isinstance(yearly_classes, Mapping):
        # a cube: read what a user would read, through the query API
        from .query import open_yearly

        layers, _ = open_yearly(yearly_classes)
        classes = layers["yearly_land_cover"].values
        yearly_classes = {int(y): classes[i] for i, y in enumerate(layers["year"].values)}
    get_truth = _truth_getter(truth)
    rows = []
    for year in sorted(yearly_classes):
        found = np.asarray(yearly_classes[year])
        planted = np.asarray(get_truth(int(year)))
        if found.shape != planted.shape:
            raise GridError(
                f"yearly layer {year} has shape {found.shape}, the truth {planted.shape}; "
                "both must be on the demo grid"
            )
        classified = np.isin(found, _LAND_CLASSES)
        n_classified = int(classified.sum())
        n = found.size
        found_pct = {}
        planted_pct = {}
        for code in _LAND_CLASSES:
            name = CLASS_NAMES[code]
            hits = int((found[classified] == code).sum())
            found_pct[name] = 100.0 * hits / n_classified if n_classified else math.nan
            planted_pct[name] = 100.0 * float((planted == code).sum()) / n
        agree = (
            100.0 * float((found[classified] == planted[classified]).sum()) / n_classified
            if n_classified
            else math.nan
        )
        rows.append(
            RecoveryRow(
                year=int(year),
                found=MappingProxyType(found_pct),
                planted=MappingProxyType(planted_pct),
                unclassified_pct=100.0 * (n - n_classified) / n,
                agreement_pct=agree,
            )
        )
    return rows


def format_recovery(rows: Sequence[RecoveryRow]) -> str:
    """A fixed-width table of :func:`recovery_report` rows (found / planted, in %)."""

    def pct(value: float) -> str:
        return "    -" if math.isnan(value) else f"{value:5.1f}"

    names = [CLASS_NAMES[c] for c in _LAND_CLASSES]
    width = 17
    head1 = "year " + "".join(f"{n + ' %':^{width}}" for n in names)
    head1 += f"{'unclass. %':>12}{'agreement %':>13}"
    head2 = "     " + "".join(f"{'found / planted':^{width}}" for _ in names)
    rule = "-" * len(head1)
    lines = [head1, head2, rule]
    for r in rows:
        cells = "".join(f"{pct(r.found[n]) + ' / ' + pct(r.planted[n]):^{width}}" for n in names)
        lines.append(f"{r.year:<5d}{cells}{pct(r.unclassified_pct):>12}{pct(r.agreement_pct):>13}")
    agreements = [r.agreement_pct for r in rows if not math.isnan(r.agreement_pct)]
    if agreements:
        mean = sum(agreements) / len(agreements)
        lines += [rule, f"mean agreement over {len(agreements)} years: {mean:.1f} %"]
    return "\n".join(line.rstrip() for line in lines)
