"""Digital numbers to Rayleigh-corrected reflectance: UPDM eqs. (1)-(7).

Every calibration path Landsat needs is linear in DN once a scene's constants are known:

    rho = gain * DN + offset

so a scene is reduced, once and on the driver, to a :class:`SceneCalibration` (per-band
gain, offset, Rayleigh path reflectance, fill and saturation rules), and the per-chunk
kernel :func:`calibrate_block` is a fused multiply-add with masking. The paths, in the
order they are tried:

1. a named calibration the caller asks for (e.g. the note's 1985 Landsat-5 set);
2. the MTL's REFLECTANCE_MULT/ADD (Collection 1/2, some pre-collection MSS):
   ``rho = (M * Q + A) / sin(sun_elevation)`` (Earth-Sun distance already folded in),
   for TM, ETM+ and MSS only when the irradiance those factors imply,
   ``pi d**2 RADIANCE_MULT / REFLECTANCE_MULT``, is the Collection-2 one (within 0.1 %);
3. the MTL's RADIANCE_MULT/ADD, or RADIANCE_MAXIMUM/MINIMUM with QUANTIZE_CAL_MAX/MIN,
   then eq. (5) with ESUN and the Earth-Sun distance;
4. the published LMIN/LMAX tables of Chander et al. (2009) by sensor and date, with ESUN.

ESUN is the irradiance the Collection-1/2 products use (derived from their own metadata,
see :func:`~updm_dask.science.sensors.esun`), so every path gives the reflectance the
Collection-2 products define, whatever the product generation of the scene: the
pre-collection radiance-only scenes, the products whose reflectance factors use another
irradiance (an early Collection-1 TM run, pre-collection MSS), and the published tables.
``irradiance="chander2009"`` or ``"note-1985-landsat5"`` asks for another set instead;
any named set sends TM, ETM+ and MSS scenes through radiance (paths 3-4).

Level-2 (surface reflectance) products use their SR scale factors instead and skip the
Rayleigh subtraction, which their atmospheric correction already did.

Inputs that would give reflectances without meaning are refused with a
:class:`~updm_dask.errors.CalibrationError` naming the file, the band and the fields, not
calibrated: a sun below :data:`MIN_SUN_ELEVATION_DEG`, zero or negative multipliers, and
constants that put a band's brightest DN outside :data:`PLAUSIBLE_BRIGHTEST_REFLECTANCE`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import CalibrationError, SensorError
from .sensors import (
    DEFAULT_IRRADIANCE,
    IRRADIANCE_SETS,
    CalibrationTable,
    Sensor,
    esun,
    get_sensor,
    named_calibration,
    published_calibration,
)

__all__ = [
    "MIN_SUN_ELEVATION_DEG",
    "PLAUSIBLE_BRIGHTEST_REFLECTANCE",
    "SceneCalibration",
    "band_reflectance_coefficients",
    "calibrate_block",
    "dn_to_radiance",
    "earth_sun_distance",
    "radiance_to_reflectance",
    "rayleigh_optical_thickness",
    "rayleigh_reflectance",
    "scene_calibration",
    "toa_reflectance",
]


# --------------------------------------------------------------------------------------
# Plausibility limits: inputs outside them are refused, not calibrated

#: Lowest sun elevation (degrees) a scene is calibrated to reflectance at. Eqs. (3)-(7)
#: treat the atmosphere as plane-parallel: the slant path is 1/cos(theta0) air masses and
#: the Rayleigh path reflectance is single scattering. Near the horizon both fail: at 5 deg
#: the plane-parallel air mass (11.5) already exceeds the spherical-atmosphere one
#: (Kasten & Young 1989: 10.3) by 11 %, and it grows without bound towards 0 deg while the
#: real one stays below 40; the optical path of the blue bands exceeds 2, so single
#: scattering no longer describes the path radiance; and 1/sin(elevation) turns a 0.1 deg
#: error into 2 %. Real low-sun scenes (the rio-toa winter scene at 11.1 deg) stay usable.
MIN_SUN_ELEVATION_DEG = 5.0

#: Plausible reflectance of a band's brightest DN with the sun at the zenith (rho *
#: cos(theta0) = REFLECTANCE_MULT * QUANTIZE_CAL_MAX + REFLECTANCE_ADD, or its radiance +
#: ESUN equivalent). Real products give 0.3-1.6 (TM band 1: 0.31; OLI: 1.21; Collection-2
#: surface reflectance: 1.60), ESPA int16 SR read over the 16-bit range 6.6. A band
#: saturating below 0.05 could not image anything brighter than dark water; one whose
#: brightest DN means more than 20 (ten times the brightest natural surface) would have a
#: quantisation step too coarse to tell land covers apart. Outside this range the
#: calibration constants are corrupt (a multiplier of 1e300 made every pixel overflow).
PLAUSIBLE_BRIGHTEST_REFLECTANCE = (0.05, 20.0)

# The DN range a Level-2 surface-reflectance band is stored in (uint16 in Collection 2,
# int16 in ESPA: 65535 bounds both).
_LEVEL2_MAX_DN = 65535.0


# --------------------------------------------------------------------------------------
# Earth-Sun distance


def earth_sun_distance(when: dt.date | dt.datetime | np.datetime64 | str) -> float:
    """Earth-Sun distance in astronomical units for a date.

    Uses the low-precision solar coordinates of the Astronomical Almanac (mean anomaly
    ``g = 357.529 + 0.98560028 n``; ``R = 1.00014 - 0.01671 cos g - 0.00014 cos 2g``),
    good to about 1e-4 AU between 1950 and 2050, which is below the 1e-4 relative effect it
    has on reflectance through ``d**2``.

    Parameters
    ----------
    when
        Date or datetime (naive datetimes are taken as UTC), numpy datetime64 or ISO string.

    Returns
    -------
    float
    """
    if isinstance(when, str):
        when = dt.datetime.fromisoformat(when)
    if isinstance(when, np.datetime64):
        when = dt.datetime.fromisoformat(str(when.astype("datetime64[s]")))
    if not isinstance(when, dt.datetime):
        when = dt.datetime(when.year, when.month, when.day, 12)
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    j2000 = dt.datetime(2000, 1, 1, 12)
    n = (when - j2000).total_seconds() / 86400.0
    g = math.radians((357.529 + 0.98560028 * n) % 360.0)
    return 1.00014 - 0.01671 * math.cos(g) - 0.00014 * math.cos(2.0 * g)


# --------------------------------------------------------------------------------------
# Rayleigh path reflectance, eqs. (6)-(7)


def rayleigh_optical_thickness(wavelength_um: np.ndarray | float) -> np.ndarray:
    """Rayleigh optical thickness ``t = 0.00879 * lambda**-4.09`` (lambda in um)."""
    wavelength = np.asarray(wavelength_um, dtype=np.float64)
    if np.any(wavelength <= 0):
        raise CalibrationError(f"wavelength_um must be positive, got {wavelength_um!r}")
    return 0.00879 * wavelength**-4.09


def rayleigh_reflectance(
    wavelength_um: np.ndarray | float,
    sun_zenith_deg: np.ndarray | float,
    view_zenith_deg: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Single-scattering Rayleigh path reflectance A_R of UPDM eqs. (6)-(7).

    ``L_R = (E0/d**2) mu0/(mu+mu0) (1 - exp(-t (1/mu + 1/mu0))) P(Theta) / (4 pi)`` and
    ``A_R = L_R / (Es/pi)`` with ``Es = E0 cos(theta0) / d**2``; E0 and d cancel, so

    ``A_R = (1 - exp(-t (1/mu + 1/mu0))) P(Theta) / (4 (mu + mu0))``,

    with ``P(Theta) = 3/4 (1 + cos(Theta)**2)`` and the scattering angle taken, as in the
    note, as ``Theta = 180 deg - theta0`` for a nadir view; for an off-nadir view the
    principal-plane backscatter geometry ``cos(Theta) = -cos(theta0 + theta)`` is used.
    For small ``t`` this tends to the familiar ``t P / (4 mu mu0)``.

    Parameters
    ----------
    wavelength_um
        Band-centre wavelength (um).
    sun_zenith_deg
        Solar zenith angle (degrees), ``90 - SUN_ELEVATION``.
    view_zenith_deg
        View zenith angle (degrees); Landsat looks at nadir (0).

    Returns
    -------
    numpy.ndarray
        A_R (a reflectance), broadcast over the inputs; NaN where the sun is at or below
        the horizon.
    """
    tau = rayleigh_optical_thickness(wavelength_um)
    theta0 = np.radians(np.asarray(sun_zenith_deg, dtype=np.float64))
    theta = np.radians(np.asarray(view_zenith_deg, dtype=np.float64))
    if np.any(np.abs(theta) >= np.pi / 2):
        raise CalibrationError(f"view_zenith_deg must be within (-90, 90), got {view_zenith_deg!r}")
    mu0 = np.cos(theta0)
    mu = np.cos(theta)
    cos_scatter = -np.cos(theta0 + theta)
    phase = 0.75 * (1.0 + cos_scatter**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        path = -np.expm1(-tau * (1.0 / mu + 1.0 / mu0)) * phase / (4.0 * (mu + mu0))
    return np.where(mu0 > 0, path, np.nan)


# --------------------------------------------------------------------------------------
# DN -> radiance -> reflectance, eqs. (1)-(5)


def dn_to_radiance(dn: np.ndarray, gain: float, offset: float) -> np.ndarray:
    """Spectral radiance ``L = gain * DN + offset`` (eq. 1 in MTL form), float32."""
    return (np.asarray(dn, dtype=np.float32) * np.float32(gain) + np.float32(offset)).astype(
        np.float32, copy=False
    )


def radiance_to_reflectance(
    radiance: np.ndarray,
    esun: float,
    sun_elevation_deg: float,
    earth_sun_distance_au: float,
) -> np.ndarray:
    """TOA reflectance ``rho = pi L d**2 / (E0 cos(theta0))``, eqs. (3)-(5).

    Raises
    ------
    CalibrationError
        When ``sun_elevation_deg`` is below :data:`MIN_SUN_ELEVATION_DEG` (at or below the
        horizon reflectance is undefined; just above it, meaningless).
    """
    _check_sun_elevation(float(sun_elevation_deg), "sun_elevation_deg")
    cos_zenith = math.sin(math.radians(sun_elevation_deg))
    factor = math.pi * earth_sun_distance_au**2 / (esun * cos_zenith)
    return (np.asarray(radiance, dtype=np.float32) * np.float32(factor)).astype(np.float32)


@dataclass(frozen=True)
class BandCoefficients:
    """``rho = gain * DN + offset`` for one band, with where the numbers came from."""

    gain: float
    offset: float
    qcal_max: float | None
    source: str
    #: The ESUN (W m-2 um-1) the reflectance step used; None when the MTL's reflectance
    #: factors (or Level-2 scale factors) were used as printed.
    esun: float | None = None


def _check_sun_elevation(elevation: float, what: str) -> None:
    # Messages say what is wrong and what was expected, not the value: it comes from a file.
    if not elevation > 0:
        raise CalibrationError(
            f"{what} is at or below 0 deg (sun at or below the horizon): reflectance is "
            f"undefined, so this scene cannot be calibrated (expected at least "
            f"{MIN_SUN_ELEVATION_DEG:g} deg)"
        )
    if not elevation >= MIN_SUN_ELEVATION_DEG:
        raise CalibrationError(
            f"{what} is below {MIN_SUN_ELEVATION_DEG:g} deg: with the sun that low the "
            "plane-parallel 1/cos air mass and the single-scattering Rayleigh path of eqs. "
            "(6)-(7) no longer hold, so its reflectance would not mean anything; this scene "
            "cannot be calibrated"
        )


def _sin_elevation(metadata) -> float:
    elevation = float(metadata.sun_elevation)
    _check_sun_elevation(elevation, f"{metadata.path}: SUN_ELEVATION")
    return math.sin(math.radians(elevation))


def _check_multipliers(metadata, label: str, band_md) -> None:
    """Refuse zero or negative multipliers: a DN would then mean no or negative light."""
    if band_md is None:
        return
    fields = [
        ("radiance_mult", f"RADIANCE_MULT_BAND_{label}"),
        ("reflectance_mult", f"REFLECTANCE_MULT_BAND_{label}"),
    ]
    if metadata.is_level2:
        fields.append(("sr_mult", _sr_field(metadata, label)))
    for attr, field in fields:
        value = getattr(band_md, attr, None)
        if value is not None and not value > 0:
            raise CalibrationError(
                f"{metadata.path}: band {label}: {field} is zero or negative (expected a "
                "positive multiplier: more light gives a larger DN); the calibration is "
                "corrupt, this scene cannot be calibrated"
            )
    if (
        band_md.radiance_max is not None
        and band_md.radiance_min is not None
        and not band_md.radiance_max > band_md.radiance_min
    ):
        raise CalibrationError(
            f"{metadata.path}: band {label}: RADIANCE_MAXIMUM_BAND_{label} (LMAX) is not above "
            f"RADIANCE_MINIMUM_BAND_{label} (LMIN) (expected LMAX > LMIN)"
        )
    if (
        band_md.quantize_cal_max is not None
        and band_md.quantize_cal_min is not None
        and not band_md.quantize_cal_max > band_md.quantize_cal_min
    ):
        raise CalibrationError(
            f"{metadata.path}: band {label}: QUANTIZE_CAL_MAX_BAND_{label} is not above "
            f"QUANTIZE_CAL_MIN_BAND_{label} (expected QCALMAX > QCALMIN)"
        )


def _sr_field(metadata, label: str) -> str:
    if metadata.format == "espa-xml":
        return f"scale_factor of sr_band{label}"
    return f"REFLECTANCE_MULT_BAND_{label} of LEVEL2_SURFACE_REFLECTANCE_PARAMETERS"


# The MTL fields behind each calibration source (the part before "+<irradiance>-esun").
_SOURCE_FIELDS = {
    "mtl-reflectance": "REFLECTANCE_MULT_BAND_{0} / REFLECTANCE_ADD_BAND_{0}",
    "mtl-radiance": "RADIANCE_MULT_BAND_{0} / RADIANCE_ADD_BAND_{0} with ESUN",
    "mtl-lmin-lmax": (
        "RADIANCE_MAXIMUM/MINIMUM_BAND_{0} and QUANTIZE_CAL_MAX/MIN_BAND_{0} with ESUN"
    ),
}


def _check_brightest(metadata, label: str, coeffs: BandCoefficients, sin_el: float) -> None:
    """Refuse constants that give the band's brightest DN an implausible reflectance."""
    if metadata.is_level2:
        top, where = _LEVEL2_MAX_DN, f"DN {_LEVEL2_MAX_DN:.0f}, the top of its 16-bit range"
        fields = _sr_field(metadata, label) + " and its offset"
    else:
        if coeffs.qcal_max is not None:
            top, where = coeffs.qcal_max, f"QUANTIZE_CAL_MAX_BAND_{label}"
        else:
            # Without a QUANTIZE_CAL_MAX: 8-bit products up to ETM+, 16-bit since OLI.
            top = 65535.0 if metadata.sensor.startswith("OLI") else 255.0
            where = f"DN {top:.0f}"
        base = coeffs.source.split("+", 1)[0]
        fields = (
            _SOURCE_FIELDS[base].format(label)
            if base in _SOURCE_FIELDS
            else f"the {coeffs.source} calibration"
        )
    # With the sun at the zenith, so that the bound does not depend on the scene's sun.
    with np.errstate(over="ignore", invalid="ignore"):
        brightest = (coeffs.gain * top + coeffs.offset) * sin_el
    low, high = PLAUSIBLE_BRIGHTEST_REFLECTANCE
    if not low <= brightest <= high:
        side = f"below {low:g}" if brightest < low else f"above {high:g}"  # NaN: overflow
        raise CalibrationError(
            f"{metadata.path}: band {label}: {fields} give the brightest DN ({where}) a "
            f"reflectance {side} with the sun at the zenith (expected {low:g} to {high:g}); "
            "the calibration is corrupt, this scene cannot be calibrated"
        )


def _distance(metadata) -> float:
    if metadata.earth_sun_distance:
        return float(metadata.earth_sun_distance)
    return earth_sun_distance(metadata.acquired)


# The MTL's reflectance factors are used as printed when the irradiance they imply is the
# Collection-2 one within this relative tolerance. The factors are printed with 5
# significant digits, which scatters the implied irradiance by at most 0.01 % over every
# Collection file of the shared data; the products that use another irradiance differ by
# 0.3-5 % (docs/calibration.md). 0.1 % sits well between the two and far below the 1 %
# agreement the record needs.
_COLLECTION_IRRADIANCE_TOLERANCE = 1e-3
# Beyond this relative difference the factors are not another generation's irradiance (those
# differ by at most ~5 %, docs/calibration.md) but a corrupt RADIANCE_MULT or REFLECTANCE_MULT,
# which must not silently switch the scene to the other field.
_CORRUPT_IRRADIANCE_RATIO = 0.2


def _factors_follow_collection(metadata, sensor: Sensor) -> bool:
    """Whether the MTL's REFLECTANCE_MULT embody the Collection-2 irradiance in every band.

    The implied irradiance is ``pi d**2 RADIANCE_MULT / REFLECTANCE_MULT``; bands lacking
    either factor cannot tell and are skipped.
    """
    try:
        table = esun(sensor.name, sensor.satellite, "collection2")
    except SensorError:
        return True  # OLI: its reflectance factors are the definition
    for label in sensor.band_labels:
        b = metadata.bands.get(label)
        if b is None or not b.radiance_mult or not b.reflectance_mult:
            continue
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            ratio = math.pi * _distance(metadata) ** 2 * b.radiance_mult / b.reflectance_mult
            ratio /= table[label]
        if not abs(ratio - 1.0) <= _CORRUPT_IRRADIANCE_RATIO:
            # Not another generation's irradiance but a corrupt field: skip it here, so the
            # factors are used as printed and the band's own checks (sign, plausible
            # brightest reflectance) refuse the scene naming the field.
            continue
        if abs(ratio - 1.0) > _COLLECTION_IRRADIANCE_TOLERANCE:
            return False
    return True


def band_reflectance_coefficients(
    metadata,
    band: str | int,
    calibration: str | CalibrationTable | None = None,
    *,
    irradiance: str | None = None,
) -> BandCoefficients:
    """Reduce a band's calibration to ``rho = gain * DN + offset``.

    Parameters
    ----------
    metadata
        A :class:`updm_dask.metadata.SceneMetadata`.
    band
        The band number as the metadata names it.
    calibration
        ``None`` (the scene's own MTL, else the published tables), a calibration name
        (``"note-1985-landsat5"``, ``"chander2009"``) or a
        :class:`~updm_dask.science.sensors.CalibrationTable`.
    irradiance
        ``None``: the Collection-2 solar irradiance, with the MTL's reflectance factors used
        as printed when they embody it. A set name from
        :data:`~updm_dask.science.sensors.IRRADIANCE_SETS`: that irradiance, through the
        MTL's radiance (or the published LMIN/LMAX) for TM, ETM+ and MSS. OLI and OLI-2
        always use their MTL's reflectance factors. Ignored with ``calibration``, whose
        table carries its own ESUN.

    Returns
    -------
    BandCoefficients

    Raises
    ------
    CalibrationError
        For a band the sensor or the file does not have, a sun elevation below
        :data:`MIN_SUN_ELEVATION_DEG` (Level-1 products), a zero or negative multiplier,
        ``LMAX <= LMIN`` or ``QCALMAX <= QCALMIN``, and constants that give the band's
        brightest DN a reflectance outside :data:`PLAUSIBLE_BRIGHTEST_REFLECTANCE`: each
        means the file is corrupt or the scene unusable, and a pixel calibrated with it
        would be silently wrong (or, overflowing, silently missing). The message names the
        file, the band, the fields and the accepted range.
    """
    label = str(band)
    if irradiance is not None and irradiance not in IRRADIANCE_SETS:
        raise CalibrationError(
            f"irradiance must be None or one of {', '.join(IRRADIANCE_SETS)}, got {irradiance!r}"
        )
    coeffs = _band_coefficients(metadata, label, calibration, irradiance)
    sin_el = 1.0 if metadata.is_level2 else _sin_elevation(metadata)
    _check_brightest(metadata, label, coeffs, sin_el)
    return coeffs


def _band_coefficients(
    metadata, label: str, calibration: str | CalibrationTable | None, irradiance: str | None
) -> BandCoefficients:
    sensor = get_sensor(metadata.sensor, metadata.satellite)
    try:
        sensor.band(label)
    except SensorError as exc:
        raise CalibrationError(f"{metadata.path}: {exc}") from None
    band_md = metadata.bands.get(label)
    if band_md is not None and not band_md.present:
        raise CalibrationError(
            f"{metadata.path}: band {label} is marked missing (PRESENT_BAND_{label} = M)"
        )
    _check_multipliers(metadata, label, band_md)

    if metadata.is_level2:
        if band_md is None or band_md.sr_mult is None or band_md.sr_add is None:
            raise CalibrationError(
                f"{metadata.path}: Level-2 product without REFLECTANCE_MULT/ADD_BAND_{label} "
                "in LEVEL2_SURFACE_REFLECTANCE_PARAMETERS"
            )
        qmax = band_md.quantize_cal_max
        return BandCoefficients(band_md.sr_mult, band_md.sr_add, qmax, "mtl-level2-sr")

    sin_el = _sin_elevation(metadata)
    qcal_max = band_md.quantize_cal_max if band_md is not None else None

    if calibration is not None:
        table = (
            calibration
            if isinstance(calibration, CalibrationTable)
            else named_calibration(calibration, metadata.sensor, metadata.satellite)
        )
        cal = table.band(label)
        if cal.esun is None:
            raise CalibrationError(f"calibration {table.name!r} has no ESUN for band {label}")
        factor = math.pi * _distance(metadata) ** 2 / (cal.esun * sin_el)
        return BandCoefficients(
            cal.gain * factor, cal.offset * factor, cal.qcal_max, table.name, cal.esun
        )

    # OLI's reflectance factors are its calibration (it has no ESUN); for the older sensors
    # they are used only when they embody the irradiance asked for, the Collection-2 one.
    if (
        band_md is not None
        and band_md.reflectance_mult is not None
        and (
            sensor.name in ("OLI", "OLI-2")
            or (irradiance is None and _factors_follow_collection(metadata, sensor))
        )
    ):
        add = band_md.reflectance_add or 0.0
        return BandCoefficients(
            band_md.reflectance_mult / sin_el, add / sin_el, qcal_max, "mtl-reflectance"
        )

    irradiance = DEFAULT_IRRADIANCE if irradiance is None else irradiance
    gain = offset = None
    source = ""
    if band_md is not None and band_md.radiance_mult is not None:
        gain, offset, source = band_md.radiance_mult, band_md.radiance_add or 0.0, "mtl-radiance"
    elif (
        band_md is not None
        and band_md.radiance_max is not None
        and band_md.radiance_min is not None
        and band_md.quantize_cal_max is not None
        and band_md.quantize_cal_min is not None
    ):
        span = band_md.quantize_cal_max - band_md.quantize_cal_min
        gain = (band_md.radiance_max - band_md.radiance_min) / span
        offset = band_md.radiance_min - gain * band_md.quantize_cal_min
        source = "mtl-lmin-lmax"
    if gain is not None:
        try:
            sun = esun(metadata.sensor, metadata.satellite, irradiance)[label]
        except SensorError as exc:
            raise CalibrationError(f"{metadata.path}: band {label}: {exc}") from None
        factor = math.pi * _distance(metadata) ** 2 / (sun * sin_el)
        return BandCoefficients(
            gain * factor, offset * factor, qcal_max, f"{source}+{irradiance}-esun", sun
        )

    try:
        gains = {k: b.gain for k, b in metadata.bands.items() if b.gain}
        table = published_calibration(
            metadata.sensor, metadata.satellite, metadata.acquired, gains, irradiance
        )
    except SensorError as exc:
        raise CalibrationError(
            f"{metadata.path}: no calibration for band {label} in the MTL and {exc}"
        ) from None
    cal = table.band(label)
    factor = math.pi * _distance(metadata) ** 2 / (cal.esun * sin_el)
    return BandCoefficients(
        cal.gain * factor, cal.offset * factor, cal.qcal_max, table.name, cal.esun
    )


def toa_reflectance(
    dn: np.ndarray,
    metadata,
    band: str | int,
    *,
    calibration: str | CalibrationTable | None = None,
    nodata: float | None = None,
    mask_saturated: bool = True,
    irradiance: str | None = None,
) -> np.ndarray:
    """Top-of-atmosphere reflectance of one band (eqs. 1-5), float32.

    Parameters
    ----------
    dn
        Digital numbers of the band (any shape, integer or float).
    metadata
        The scene's :class:`updm_dask.metadata.SceneMetadata`.
    band
        The band number as the metadata names it (e.g. ``4``, or ``"4"``).
    calibration
        Optional named calibration or table (see :func:`band_reflectance_coefficients`).
    nodata
        An extra fill value declared by the raster (e.g. 255 or -9999).
    mask_saturated
        Also return NaN where DN reaches the band's QUANTIZE_CAL_MAX.
    irradiance
        The solar irradiance set (see :func:`band_reflectance_coefficients`); ``None``: the
        Collection-2 one.

    Returns
    -------
    numpy.ndarray
        float32 reflectance; NaN where DN is fill (0 in Landsat products, ``nodata``),
        saturated, or not finite. For Level-2 products this is the surface reflectance.
    """
    coeffs = band_reflectance_coefficients(metadata, band, calibration, irradiance=irradiance)
    values = np.asarray(dn)
    rho = values.astype(np.float32) * np.float32(coeffs.gain) + np.float32(coeffs.offset)
    invalid = _fill_mask(values, nodata)
    if mask_saturated and coeffs.qcal_max is not None and not metadata.is_level2:
        invalid |= values >= coeffs.qcal_max
    rho[invalid] = np.nan
    return rho.astype(np.float32, copy=False)


def _fill_mask(values: np.ndarray, nodata: float | None) -> np.ndarray:
    invalid = values == 0
    if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
        invalid |= values == nodata
    if values.dtype.kind == "f":
        invalid |= ~np.isfinite(values)
    return invalid


# --------------------------------------------------------------------------------------
# Whole-scene calibration for the fused per-chunk kernel


@dataclass(frozen=True)
class SceneCalibration:
    """Per-band constants that turn a scene's DN into Rayleigh-corrected reflectance.

    Built once per scene by :func:`scene_calibration` and shipped to every chunk task; it
    is small, immutable and tokenizes deterministically.

    Attributes
    ----------
    bands
        Band labels in the order of the DN stack.
    gain, offset
        ``rho = gain * DN + offset`` per band.
    rayleigh
        A_R per band, subtracted after calibration (zeros for Level-2 products).
    qcal_max
        DN at or above which a band is saturated (``inf`` when unknown or not applicable).
    nodata
        Extra fill value of the rasters, or None.
    sources
        Where each band's numbers came from.
    """

    bands: tuple[str, ...]
    gain: tuple[float, ...]
    offset: tuple[float, ...]
    rayleigh: tuple[float, ...]
    qcal_max: tuple[float, ...]
    nodata: float | None
    sources: tuple[str, ...]

    def __dask_tokenize__(self):
        return (
            type(self).__name__,
            self.bands,
            self.gain,
            self.offset,
            self.rayleigh,
            self.qcal_max,
            self.nodata,
        )

    def as_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(gain, offset - rayleigh, qcal_max) as float32/float64 arrays for the kernel."""
        gain = np.asarray(self.gain, dtype=np.float32)
        shift = np.asarray(self.offset, dtype=np.float64) - np.asarray(self.rayleigh)
        return (
            gain,
            shift.astype(np.float32),
            np.asarray(self.qcal_max, dtype=np.float64),
            np.asarray(self.rayleigh),
        )


def scene_calibration(
    metadata,
    bands: tuple[str, ...] | None = None,
    *,
    calibration: str | CalibrationTable | None = None,
    rayleigh: bool = True,
    nodata: float | None = None,
    wavelengths_um: Mapping[str, float] | None = None,
    irradiance: str | None = None,
) -> SceneCalibration:
    """Resolve a scene's calibration for its UPDM bands (see the module docstring).

    Parameters
    ----------
    metadata
        The scene's :class:`updm_dask.metadata.SceneMetadata`.
    bands
        Band labels (default: the sensor's UPDM bands in spectral order).
    calibration
        Optional named calibration or table.
    rayleigh
        Subtract the Rayleigh path reflectance (eqs. 6-7) at each band centre. Ignored
        (no subtraction) for Level-2 surface reflectance.
    nodata
        Extra fill value declared by the rasters.
    wavelengths_um
        Override band-centre wavelengths (default: the sensor's band table).
    irradiance
        The solar irradiance set (see :func:`band_reflectance_coefficients`); ``None``: the
        Collection-2 one.
    """
    sensor = get_sensor(metadata.sensor, metadata.satellite)
    labels = tuple(str(b) for b in (bands or sensor.band_labels))
    coeffs = [
        band_reflectance_coefficients(metadata, b, calibration, irradiance=irradiance)
        for b in labels
    ]
    if rayleigh and not metadata.is_level2:
        zenith = 90.0 - float(metadata.sun_elevation)
        centres = [(wavelengths_um or {}).get(b, sensor.band(b).centre_um) for b in labels]
        path = tuple(float(v) for v in rayleigh_reflectance(np.asarray(centres), zenith))
    else:
        path = (0.0,) * len(labels)
    qmax = tuple(
        float("inf") if (c.qcal_max is None or metadata.is_level2) else float(c.qcal_max)
        for c in coeffs
    )
    return SceneCalibration(
        bands=labels,
        gain=tuple(float(c.gain) for c in coeffs),
        offset=tuple(float(c.offset) for c in coeffs),
        rayleigh=path,
        qcal_max=qmax,
        nodata=None if nodata is None else float(nodata),
        sources=tuple(c.source for c in coeffs),
    )


def calibrate_block(
    dn: np.ndarray, calibration: SceneCalibration, band_axis: int = 0
) -> np.ndarray:
    """DN block -> Rayleigh-corrected reflectance (the note's "converted data"), float32.

    Parameters
    ----------
    dn
        DN stack with the bands along ``band_axis`` in the order of ``calibration.bands``.
    calibration
        From :func:`scene_calibration`.
    band_axis
        Axis of ``dn`` holding the bands.

    Returns
    -------
    numpy.ndarray
        float32, same shape; NaN where a band is fill (0, ``nodata``, non-finite) or
        saturated.
    """
    values = np.moveaxis(np.asarray(dn), band_axis, -1)
    if values.shape[-1] != len(calibration.bands):
        raise CalibrationError(
            f"DN block has {values.shape[-1]} bands along axis {band_axis}, calibration "
            f"expects {len(calibration.bands)} ({', '.join(calibration.bands)})"
        )
    gain, shift, qmax, _ = calibration.as_arrays()
    out = values.astype(np.float32) * gain
    out += shift
    invalid = _fill_mask(values, calibration.nodata) | (values >= qmax)
    out[invalid] = np.nan
    return np.moveaxis(out, -1, band_axis)
