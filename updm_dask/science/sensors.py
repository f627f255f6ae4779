"""Band definitions and published calibration tables for every Landsat sensor since 1972.

What lives here is reference data, not computation: which reflective bands each sensor
has (as its metadata numbers them), their wavelength ranges, the solar exo-atmospheric
irradiance (ESUN) per band, and the published LMIN/LMAX radiance ranges used when a
scene's own MTL file carries no calibration.

Sources
-------
- Wavelength ranges: the UPDM note's Table 1 for MSS and TM; USGS band designations for
  ETM+, OLI and OLI-2.
- ESUN, by default (``"collection2"``): the solar irradiance the Collection-1/2 products
  use, derived from their own MTL files as ``pi d**2 RADIANCE_MULT / REFLECTANCE_MULT``
  (``updm_dask/data/esun_collection.csv``, built by ``tools/build_tables.py``; every number
  and its files are listed in ``docs/calibration.md``). With it, a radiance-only scene
  (pre-collection, or any calibration path through radiance) lands on the same reflectance
  as the Collection products, so the 50-year record has no step where the archive changes
  product generation. The two older sets stay available by name (:data:`IRRADIANCE_SETS`).
- ESUN ``"chander2009"`` and LMIN/LMAX: Chander, Markham & Helder (2009), "Summary of
  current radiometric calibration coefficients for Landsat MSS, TM, ETM+, and EO-1 ALI
  sensors", Remote Sensing of Environment 113, 893-903 (Tables 1-3).
- The note's own 1985 Landsat-5 calibration (its Tables 2 and 3 and eq. 2), converted to
  spectral radiance as explained in :data:`NOTE_1985_LANDSAT5`; its E0 is the ESUN set
  ``"note-1985-landsat5"``.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType

from ..errors import SensorError

__all__ = [
    "DEFAULT_IRRADIANCE",
    "IRRADIANCE_SETS",
    "NOTE_1985_LANDSAT5",
    "SENSOR_NAMES",
    "BandCalibration",
    "BandSpec",
    "CalibrationTable",
    "Sensor",
    "canonical_sensor_name",
    "esun",
    "get_sensor",
    "named_calibration",
    "published_calibration",
]

SENSOR_NAMES = ("MSS", "TM", "ETM+", "OLI", "OLI-2")

# Which satellites carried which sensor.
_SATELLITES = {
    "MSS": (1, 2, 3, 4, 5),
    "TM": (4, 5),
    "ETM+": (7,),
    "OLI": (8,),
    "OLI-2": (9,),
}


@dataclass(frozen=True)
class BandSpec:
    """One reflective band of a sensor.

    Parameters
    ----------
    label
        The band number as the sensor's metadata names it ("1".."7"; Landsat 1-3 MSS uses
        "4".."7").
    name
        Spectral role: "coastal", "blue", "green", "red", "nir", "nir2", "swir1", "swir2".
    wavelength_min_um, wavelength_max_um
        Band edges in micrometres, used by box-car band averaging (UPDM eq. 14).
    """

    label: str
    name: str
    wavelength_min_um: float
    wavelength_max_um: float

    @property
    def centre_um(self) -> float:
        """Band centre (um): the wavelength at which Rayleigh scattering is evaluated."""
        return 0.5 * (self.wavelength_min_um + self.wavelength_max_um)

    @property
    def width_um(self) -> float:
        """Band width (um)."""
        return self.wavelength_max_um - self.wavelength_min_um


@dataclass(frozen=True)
class Sensor:
    """A sensor on one satellite, with the reflective bands UPDM decomposes.

    Parameters
    ----------
    name
        Canonical sensor name, one of :data:`SENSOR_NAMES`.
    satellite
        Landsat satellite number (1-9).
    bands
        The reflective bands UPDM uses, in spectral order.
    resolution_m
        Native ground sampling of the reflective bands in Collection products.
    """

    name: str
    satellite: int
    bands: tuple[BandSpec, ...]
    resolution_m: float

    @property
    def band_labels(self) -> tuple[str, ...]:
        """Band labels in spectral order, as the metadata names them."""
        return tuple(b.label for b in self.bands)

    @property
    def platform(self) -> str:
        """Platform name in MTL spelling, e.g. ``LANDSAT_5``."""
        return f"LANDSAT_{self.satellite}"

    @property
    def key(self) -> str:
        """Short identifier such as ``TM5`` or ``MSS2`` (used for RSR tables)."""
        return f"{self.name}{self.satellite}"

    def band(self, label: str | int) -> BandSpec:
        """Return the band called ``label`` (as the metadata names it)."""
        wanted = str(label)
        for b in self.bands:
            if b.label == wanted:
                return b
        raise SensorError(
            f"{self.name} on Landsat-{self.satellite} has no reflective band {wanted!r}; "
            f"expected one of {', '.join(self.band_labels)}"
        )


def _bands(labels: tuple[str, ...], names: tuple[str, ...], ranges) -> tuple[BandSpec, ...]:
    return tuple(
        BandSpec(label, name, lo, hi)
        for label, name, (lo, hi) in zip(labels, names, ranges, strict=True)
    )


# The note's Table 1 (MSS, TM). MSS band labels depend on the satellite.
_MSS_RANGES = ((0.495, 0.605), (0.603, 0.698), (0.701, 0.813), (0.808, 1.023))
_MSS_NAMES = ("green", "red", "nir", "nir2")
_TM_RANGES = ((0.45, 0.52), (0.52, 0.60), (0.63, 0.69), (0.76, 0.90), (1.55, 1.75), (2.08, 2.35))
_ETM_RANGES = (
    (0.45, 0.515),
    (0.525, 0.605),
    (0.63, 0.69),
    (0.775, 0.90),
    (1.55, 1.75),
    (2.09, 2.35),
)
_OLI_RANGES = ((0.45, 0.51), (0.53, 0.59), (0.64, 0.67), (0.85, 0.88), (1.57, 1.65), (2.11, 2.29))
_SIX_NAMES = ("blue", "green", "red", "nir", "swir1", "swir2")
_SIX_LABELS_TM = ("1", "2", "3", "4", "5", "7")
_SIX_LABELS_OLI = ("2", "3", "4", "5", "6", "7")


def canonical_sensor_name(sensor_id: str, satellite: int | None = None) -> str:
    """Map a metadata sensor id (``OLI_TIRS``, ``ETM``, ``TM``, ``MSS`` ...) to a canonical name.

    Parameters
    ----------
    sensor_id
        The sensor string as found in an MTL (``SENSOR_ID``) or given by a user.
    satellite
        Landsat satellite number; distinguishes OLI (Landsat 8) from OLI-2 (Landsat 9).

    Returns
    -------
    str
        One of :data:`SENSOR_NAMES`.
    """
    key = str(sensor_id).strip().strip('"').upper().replace(" ", "")
    aliases = {
        "MSS": "MSS",
        "TM": "TM",
        "ETM": "ETM+",
        "ETM+": "ETM+",
        "OLI": "OLI",
        "OLI_TIRS": "OLI",
        "OLI/TIRS": "OLI",
        "OLI-2": "OLI-2",
        "OLI2": "OLI-2",
        "OLI-2_TIRS-2": "OLI-2",
    }
    if key not in aliases:
        raise SensorError(
            f"unknown sensor {sensor_id!r}; expected one of {', '.join(SENSOR_NAMES)} "
            "(or an MTL SENSOR_ID such as OLI_TIRS)"
        )
    name = aliases[key]
    if name == "OLI" and satellite == 9:
        name = "OLI-2"
    return name


def get_sensor(sensor: str, satellite: int | None = None) -> Sensor:
    """Return the band definitions of ``sensor`` on Landsat ``satellite``.

    Parameters
    ----------
    sensor
        Sensor name (``MSS``, ``TM``, ``ETM+``, ``OLI``, ``OLI-2``) or an MTL sensor id.
    satellite
        Landsat number. Defaults to the last satellite that carried the sensor (MSS: 5,
        TM: 5). For MSS it decides the band numbering: 4-7 on Landsat 1-3, 1-4 on 4-5.

    Returns
    -------
    Sensor
    """
    name = canonical_sensor_name(sensor, satellite)
    allowed = _SATELLITES[name]
    if satellite is None:
        satellite = allowed[-1]
    satellite = int(satellite)
    if satellite not in allowed:
        raise SensorError(
            f"{name} was not carried by Landsat-{satellite}; it flew on Landsat "
            + ", ".join(str(s) for s in allowed)
        )
    if name == "MSS":
        labels = ("4", "5", "6", "7") if satellite <= 3 else ("1", "2", "3", "4")
        return Sensor(name, satellite, _bands(labels, _MSS_NAMES, _MSS_RANGES), 60.0)
    if name == "TM":
        return Sensor(name, satellite, _bands(_SIX_LABELS_TM, _SIX_NAMES, _TM_RANGES), 30.0)
    if name == "ETM+":
        return Sensor(name, satellite, _bands(_SIX_LABELS_TM, _SIX_NAMES, _ETM_RANGES), 30.0)
    # OLI and OLI-2 share band designations; UPDM uses bands 2-7 (coastal band 1 optional).
    return Sensor(name, satellite, _bands(_SIX_LABELS_OLI, _SIX_NAMES, _OLI_RANGES), 30.0)


# --------------------------------------------------------------------------------------
# Solar irradiance (ESUN), W m-2 um-1.

#: Named sets of exo-atmospheric solar irradiance, see :func:`esun`.
IRRADIANCE_SETS = ("collection2", "chander2009", "note-1985-landsat5")
#: The set every path through radiance uses unless told otherwise: the one the Collection
#: products' own REFLECTANCE_MULT/ADD embody, so all product generations agree.
DEFAULT_IRRADIANCE = "collection2"

_IRRADIANCE_CITATIONS = {
    "collection2": "solar irradiance of the Landsat Collection-1/2 products, derived from "
    "their MTL factors (updm_dask/data/esun_collection.csv)",
    "chander2009": "Chander, Markham & Helder (2009), Remote Sensing of Environment 113, 893-903",
    "note-1985-landsat5": "the UPDM note's E0 for its 1985 Landsat-5 data (Table 3, eq. 2)",
}
_COLLECTION_ESUN_FILE = "esun_collection.csv"
_COLLECTION_ESUN_COLUMNS = ("sensor", "satellite", "band", "esun", "use")

# Chander et al. 2009 Tables 2/3, in band order.
_ESUN_BY_KEY: dict[str, tuple[float, ...]] = {
    "MSS1": (1823.0, 1559.0, 1276.0, 880.1),
    "MSS2": (1829.0, 1539.0, 1268.0, 886.6),
    "MSS3": (1839.0, 1555.0, 1291.0, 887.9),
    "MSS4": (1827.0, 1569.0, 1260.0, 866.4),
    "MSS5": (1824.0, 1570.0, 1249.0, 853.4),
    "TM4": (1983.0, 1795.0, 1539.0, 1028.0, 219.8, 83.49),
    "TM5": (1983.0, 1796.0, 1536.0, 1031.0, 220.0, 83.44),
    "ETM+7": (1997.0, 1812.0, 1533.0, 1039.0, 230.8, 84.90),
}


@functools.cache
def _collection_esun() -> Mapping[str, Mapping[str, float]]:
    """Sensor key (``TM5``, ``MSS1`` ...) -> band -> ESUN of the shipped Collection table.

    Only rows marked ``default`` are served: the OLI rows are a reference (OLI scenes are
    calibrated with their MTL's reflectance factors, which need no irradiance).
    """
    resource = resources.files("updm_dask").joinpath("data", _COLLECTION_ESUN_FILE)
    where = f"updm_dask/data/{_COLLECTION_ESUN_FILE}"
    with resource.open("r", encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in _COLLECTION_ESUN_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise SensorError(
                f"{where}: missing column(s) {', '.join(missing)}; expected "
                f"{', '.join(_COLLECTION_ESUN_COLUMNS)} (rebuild it with tools/build_tables.py)"
            )
        table: dict[str, dict[str, float]] = {}
        for line, row in enumerate(reader, start=2):
            if row["use"] != "default":
                continue
            try:
                value = float(row["esun"])
            except ValueError:
                value = float("nan")
            if not value > 0:
                raise SensorError(f"{where}: line {line}: esun must be a positive number")
            table.setdefault(f"{row['sensor']}{row['satellite']}", {})[row["band"]] = value
    return MappingProxyType({key: MappingProxyType(bands) for key, bands in table.items()})


def esun(
    sensor: str, satellite: int | None = None, irradiance: str | None = None
) -> dict[str, float]:
    """Exo-atmospheric solar irradiance per band (W m-2 um-1).

    Parameters
    ----------
    sensor, satellite
        As for :func:`get_sensor`.
    irradiance
        Which set, one of :data:`IRRADIANCE_SETS`; ``None`` means
        :data:`DEFAULT_IRRADIANCE`. ``"collection2"``: the irradiance the Collection-1/2
        products use (derived from their MTL files; MSS per satellite, TM on Landsat 4 and 5,
        ETM+). ``"chander2009"``: Chander et al. (2009) Tables 2-3. ``"note-1985-landsat5"``:
        the UPDM note's E0, Landsat-5 MSS and TM only.

    Returns
    -------
    dict
        Band label (as the metadata names it) -> ESUN.

    Raises
    ------
    SensorError
        For an unknown set, a sensor the set does not cover, and for OLI and OLI-2, which
        have no ESUN: their MTL's REFLECTANCE_MULT/ADD are used instead.
    """
    s = get_sensor(sensor, satellite)
    name = DEFAULT_IRRADIANCE if irradiance is None else irradiance
    if name not in IRRADIANCE_SETS:
        raise SensorError(
            f"unknown solar irradiance set {irradiance!r}; expected one of "
            f"{', '.join(IRRADIANCE_SETS)}"
        )
    if s.name in ("OLI", "OLI-2"):
        raise SensorError(
            f"no published ESUN for {s.name} (Landsat-{s.satellite}); OLI scenes must be "
            "calibrated with the MTL's REFLECTANCE_MULT_BAND_n / REFLECTANCE_ADD_BAND_n"
        )
    if name == "collection2":
        values = dict(_collection_esun().get(s.key, {}))
    elif name == "chander2009":
        values = dict(zip(s.band_labels, _ESUN_BY_KEY[s.key], strict=True))
    elif s.satellite == 5 and s.name in ("MSS", "TM"):
        e0 = note_mss_e0() if s.name == "MSS" else _NOTE_TM_E0
        values = dict(zip(s.band_labels, e0, strict=True))
    else:
        values = {}
    if set(values) != set(s.band_labels):
        raise SensorError(
            f"the solar irradiance set {name!r} has no ESUN for every band of {s.name} on "
            f"Landsat-{s.satellite}; expected bands {', '.join(s.band_labels)}"
        )
    return {label: values[label] for label in s.band_labels}


# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BandCalibration:
    """Linear DN -> spectral radiance calibration of one band (UPDM eq. 1).

    ``L = (lmax - lmin) / (qcal_max - qcal_min) * (Q - qcal_min) + lmin`` in
    W m-2 sr-1 um-1, and ``esun`` (W m-2 um-1) for the reflectance step (eq. 5).
    """

    lmin: float
    lmax: float
    qcal_min: float
    qcal_max: float
    esun: float | None = None

    @property
    def gain(self) -> float:
        """Radiance per DN (W m-2 sr-1 um-1 per count)."""
        return (self.lmax - self.lmin) / (self.qcal_max - self.qcal_min)

    @property
    def offset(self) -> float:
        """Radiance at DN 0."""
        return self.lmin - self.gain * self.qcal_min


@dataclass(frozen=True)
class CalibrationTable:
    """A named set of per-band calibrations for one sensor.

    Parameters
    ----------
    name
        Identifier, e.g. ``"chander2009"`` or ``"note-1985-landsat5"``.
    sensor
        The :class:`Sensor` it applies to.
    bands
        Band label -> :class:`BandCalibration`.
    source
        Human-readable citation.
    """

    name: str
    sensor: Sensor
    bands: Mapping[str, BandCalibration] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "bands", MappingProxyType(dict(self.bands)))

    def band(self, label: str | int) -> BandCalibration:
        """Calibration of band ``label``; a clear error when the table lacks it."""
        key = str(label)
        if key not in self.bands:
            raise SensorError(
                f"calibration {self.name!r} has no band {key!r} for {self.sensor.name}; "
                f"expected one of {', '.join(self.bands)}"
            )
        return self.bands[key]


# LMIN/LMAX (W m-2 sr-1 um-1) from Chander et al. 2009. Each entry: (first acquisition
# date it applies to, lmins, lmaxs, qcal range). Current LPGS processing (Qcal 1-255) for
# TM/ETM+; the historic MSS tables use Qcal 0-127.
_D = dt.date
_CHANDER_LIMITS: dict[
    str, list[tuple[dt.date, tuple[float, ...], tuple[float, ...], tuple[int, int]]]
] = {
    "MSS1": [(_D(1972, 7, 23), (0.0, 0.0, 0.0, 0.0), (248.0, 200.0, 176.0, 153.0), (0, 127))],
    "MSS2": [
        (_D(1975, 1, 22), (10.0, 7.0, 7.0, 5.0), (210.0, 156.0, 140.0, 138.0), (0, 127)),
        (_D(1975, 7, 16), (8.0, 6.0, 6.0, 3.66667), (263.0, 176.0, 152.0, 130.333), (0, 127)),
    ],
    "MSS3": [
        (_D(1978, 3, 5), (4.0, 3.0, 3.0, 1.0), (220.0, 175.0, 145.0, 147.0), (0, 127)),
        (_D(1978, 6, 2), (4.0, 3.0, 3.0, 1.0), (259.0, 179.0, 149.0, 128.0), (0, 127)),
    ],
    "MSS4": [
        (_D(1982, 7, 16), (2.0, 4.0, 4.0, 5.0), (250.0, 180.0, 150.0, 241.0), (0, 127)),
        (_D(1983, 4, 1), (4.0, 4.0, 5.0, 4.0), (238.0, 164.0, 142.0, 116.0), (0, 127)),
    ],
    "MSS5": [
        (_D(1984, 3, 1), (3.0, 3.0, 5.0, 3.0), (268.0, 179.0, 148.0, 123.0), (0, 127)),
        (_D(1984, 11, 9), (3.0, 3.0, 5.0, 3.0), (238.0, 164.0, 142.0, 116.0), (0, 127)),
    ],
    "TM4": [
        (
            _D(1982, 8, 1),
            (-1.52, -2.84, -1.17, -1.51, -0.37, -0.15),
            (171.0, 336.0, 254.0, 221.0, 31.4, 16.6),
            (1, 255),
        )
    ],
    "TM5": [
        (
            _D(1984, 3, 1),
            (-1.52, -2.84, -1.17, -1.51, -0.37, -0.15),
            (169.0, 333.0, 264.0, 221.0, 30.2, 16.5),
            (1, 255),
        ),
        (
            _D(1992, 1, 1),
            (-1.52, -2.84, -1.17, -1.51, -0.37, -0.15),
            (193.0, 365.0, 264.0, 221.0, 30.2, 16.5),
            (1, 255),
        ),
    ],
    # ETM+ low gain (the setting of most land scenes); high gain below.
    "ETM+7": [
        (
            _D(1999, 4, 15),
            (-6.2, -6.4, -5.0, -5.1, -1.0, -0.35),
            (293.7, 300.9, 234.4, 241.1, 47.57, 16.54),
            (1, 255),
        )
    ],
}
_ETM_HIGH_GAIN = (
    (-6.2, -6.4, -5.0, -5.1, -1.0, -0.35),
    (191.6, 196.5, 152.9, 157.4, 31.06, 10.80),
)


def published_calibration(
    sensor: str,
    satellite: int | None = None,
    acquired: dt.date | dt.datetime | None = None,
    gains: Mapping[str, str] | None = None,
    irradiance: str | None = None,
) -> CalibrationTable:
    """LMIN/LMAX calibration of Chander et al. (2009) for a sensor and date, with an ESUN set.

    Used when a scene's MTL carries no RADIANCE_MULT/ADD nor RADIANCE_MAXIMUM/MINIMUM.

    Parameters
    ----------
    sensor, satellite
        As for :func:`get_sensor`.
    acquired
        Acquisition date; picks the LMIN/LMAX period. Defaults to the newest period.
    gains
        ETM+ only: band label -> ``"L"`` or ``"H"`` (the MTL's GAIN_BAND_n). Default low.
    irradiance
        The ESUN set (see :func:`esun`); ``None`` means :data:`DEFAULT_IRRADIANCE`. The
        table is named ``"chander2009"`` only when both LMIN/LMAX and ESUN are Chander's,
        ``"chander2009+<set>-esun"`` otherwise.

    Returns
    -------
    CalibrationTable
    """
    s = get_sensor(sensor, satellite)
    if s.key not in _CHANDER_LIMITS:
        raise SensorError(
            f"no published LMIN/LMAX table for {s.name} on Landsat-{s.satellite}; "
            "its MTL's RADIANCE_MULT/ADD must be used"
        )
    periods = _CHANDER_LIMITS[s.key]
    when = acquired.date() if isinstance(acquired, dt.datetime) else acquired
    chosen = periods[-1]
    if when is not None:
        if when < periods[0][0]:
            raise SensorError(
                f"{s.name} on Landsat-{s.satellite} has no calibration before "
                f"{periods[0][0].isoformat()} (acquisition date {when.isoformat()})"
            )
        chosen = [p for p in periods if p[0] <= when][-1]
    _, lmins, lmaxs, (qmin, qmax) = chosen
    irradiance = DEFAULT_IRRADIANCE if irradiance is None else irradiance
    sun = esun(s.name, s.satellite, irradiance)
    bands = {}
    for i, label in enumerate(s.band_labels):
        lmin, lmax = lmins[i], lmaxs[i]
        if s.name == "ETM+" and gains and str(gains.get(label, "L")).upper().startswith("H"):
            lmin, lmax = _ETM_HIGH_GAIN[0][i], _ETM_HIGH_GAIN[1][i]
        bands[label] = BandCalibration(lmin, lmax, qmin, qmax, sun[label])
    if irradiance == "chander2009":
        return CalibrationTable("chander2009", s, bands, _IRRADIANCE_CITATIONS["chander2009"])
    return CalibrationTable(
        f"chander2009+{irradiance}-esun",
        s,
        bands,
        f"LMIN/LMAX: {_IRRADIANCE_CITATIONS['chander2009']}; "
        f"ESUN: {_IRRADIANCE_CITATIONS[irradiance]}",
    )


# --------------------------------------------------------------------------------------
# The note's own calibration of its 1985 Landsat-5 data (Tables 2 and 3, eq. 2).
#
# Units: the printed radiances are BAND-INTEGRATED radiance in mW cm-2 sr-1. Dividing by
# the nominal band widths gives spectral radiance in mW cm-2 sr-1 um-1; x10 gives
# W m-2 sr-1 um-1. TM widths are Markham & Barker (1986): 0.066, 0.081, 0.069, 0.129,
# 0.216, 0.250 um (1.004 / 0.066 x 10 = 152.1, Chander's pre-2003 TM5 LMAX). For MSS the
# nominal widths are 0.1 um for bands 1-3 and 0.3 um (0.8-1.1 um) for band 4: the printed
# band-4 maximum 3.49 / 0.3 x 10 = 116.3, which is Chander's MSS5 LMAX of 116 and close to
# the 117.5 in a real 1987 Landsat-5 MSS MTL. Reading band 4 as spectral radiance (34.9)
# would triple its radiance, so it is not done.
_NOTE_TM_WIDTHS = (0.066, 0.081, 0.069, 0.129, 0.216, 0.250)
_NOTE_TM_RMIN = (-0.0099, -0.0227, -0.0083, -0.0194, -0.00799, -0.00375)
_NOTE_TM_RMAX = (1.004, 2.404, 1.410, 2.660, 0.5873, 0.359)
_NOTE_TM_E0 = (1957.0, 1829.0, 1557.0, 1047.0, 219.3, 74.52)
_NOTE_MSS_WIDTHS = (0.1, 0.1, 0.1, 0.3)
_NOTE_MSS_RMIN = (0.04, 0.04, 0.05, 0.12)
_NOTE_MSS_RMAX = (2.38, 1.64, 1.42, 3.49)
_NOTE_MSS_R = (10.43, 10.365, 10.269, 10.075)


def note_mss_e0() -> tuple[float, ...]:
    """MSS E0 (W m-2 um-1) from the note's eq. (2): ``E0 = 10**r * 6.8e-8``."""
    return tuple(10.0**r * 6.8e-8 for r in _NOTE_MSS_R)


NOTE_1985_LANDSAT5 = "note-1985-landsat5"


def named_calibration(name: str, sensor: str, satellite: int | None = None) -> CalibrationTable:
    """Return a named calibration set.

    Parameters
    ----------
    name
        ``"note-1985-landsat5"``: the UPDM note's Tables 2-3 for its 1985 Landsat-5 MSS
        (Dmax 127) and TM (Dmax 255) data, in spectral radiance; ``"chander2009"``: the
        newest published LMIN/LMAX + ESUN set for the sensor.
    sensor, satellite
        As for :func:`get_sensor`.
    """
    if name == "chander2009":
        return published_calibration(sensor, satellite, irradiance="chander2009")
    if name != NOTE_1985_LANDSAT5:
        raise SensorError(
            f"unknown calibration {name!r}; expected 'note-1985-landsat5' or 'chander2009'"
        )
    s = get_sensor(sensor, 5 if satellite is None else satellite)
    if s.satellite != 5 or s.name not in ("MSS", "TM"):
        raise SensorError(
            f"calibration {name!r} covers Landsat-5 MSS and TM only, not {s.name} on "
            f"Landsat-{s.satellite}"
        )
    if s.name == "MSS":
        rows = zip(_NOTE_MSS_RMIN, _NOTE_MSS_RMAX, _NOTE_MSS_WIDTHS, note_mss_e0(), strict=True)
        qmax = 127.0
    else:
        rows = zip(_NOTE_TM_RMIN, _NOTE_TM_RMAX, _NOTE_TM_WIDTHS, _NOTE_TM_E0, strict=True)
        qmax = 255.0
    bands = {
        label: BandCalibration(rmin / width * 10.0, rmax / width * 10.0, 0.0, qmax, e0)
        for label, (rmin, rmax, width, e0) in zip(s.band_labels, rows, strict=True)
    }
    return CalibrationTable(
        NOTE_1985_LANDSAT5,
        s,
        bands,
        "Aoi, Muramatsu, Furumi & Daigo, UPDM applied to Landsat/MSS, Tables 2-3 and eq. (2)",
    )
