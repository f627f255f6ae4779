"""The records a metadata file is read into: :class:`SceneMetadata` and :class:`BandMetadata`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import MetadataError
from ..frozen import FrozenMap, freeze
from ..science.sensors import Sensor, get_sensor

__all__ = ["BandMetadata", "SceneMetadata"]

_RAISE: Any = object()


@dataclass(frozen=True)
class BandMetadata:
    """What a metadata file says about one band.

    Parameters
    ----------
    label
        The band as the metadata names it: ``"1"`` .. ``"11"``, ``"6_VCID_1"``, ``"6_VCID_2"``.
    file_name
        Level-1 DN file of the band (``FILE_NAME_BAND_n``); ``None`` when not listed.
    present
        ``False`` when the file marks the band missing (``PRESENT_BAND_n = M``/``N``), or,
        without such a flag, when every calibration value of the band is ``NULL``.
    radiance_mult, radiance_add
        ``L = radiance_mult * Q + radiance_add`` (W m-2 sr-1 um-1).
    reflectance_mult, reflectance_add
        Level-1 top-of-atmosphere reflectance rescaling (not sun-angle corrected); always
        from the Level-1 rescaling group, never the Level-2 one.
    radiance_max, radiance_min, reflectance_max, reflectance_min
        ``RADIANCE_MAXIMUM_BAND_n`` ... (old files: ``LMAX_BANDn`` / ``LMIN_BANDn``).
    quantize_cal_max, quantize_cal_min
        Level-1 ``QUANTIZE_CAL_MAX_BAND_n`` / ``QCALMAX_BANDn``.
    gain
        ETM+/MSS gain setting (``"L"`` or ``"H"``; other letters kept as the file gives them).
    sr_mult, sr_add
        Surface-reflectance scale of a Level-2 product: ``SR = sr_mult * DN + sr_add``.
    sr_file_name
        File of the Level-2 surface-reflectance band (e.g. ``..._SR_B4.TIF``).
    """

    label: str
    file_name: str | None
    present: bool = True
    radiance_mult: float | None = None
    radiance_add: float | None = None
    reflectance_mult: float | None = None
    reflectance_add: float | None = None
    radiance_max: float | None = None
    radiance_min: float | None = None
    reflectance_max: float | None = None
    reflectance_min: float | None = None
    quantize_cal_max: float | None = None
    quantize_cal_min: float | None = None
    gain: str | None = None
    sr_mult: float | None = None
    sr_add: float | None = None
    sr_file_name: str | None = None


@dataclass(frozen=True)
class SceneMetadata:
    """Everything the pipeline needs to know about a scene, from its metadata file.

    Mappings are immutable (:class:`FrozenMap`); records compare by value, hash, and pickle.
    ``groups`` holds the whole file as nested group -> key -> value mappings (values typed:
    int, float, str, or ``None`` for ``NULL``); :meth:`get` looks keys up in it.

    Parameters
    ----------
    path
        The file it was read from, as given (or the name passed for a file object).
    format
        ``"odl"``, ``"xml"``, ``"json"`` or ``"espa-xml"``.
    collection
        ``"pre-collection"``, ``"C1"``, ``"C2"``, or ``None`` when an ESPA file does not say.
    processing_level
        ``"L1TP"``, ``"L1GS"``, ``"L1T"``, ``"L2SP"`` ...; ``None`` for ESPA files.
    scene_id
        ``LANDSAT_SCENE_ID`` (e.g. ``LT51670552010352MLK00``). Files without one use the
        stem of their own metadata file name, or the product id.
    product_id
        ``LANDSAT_PRODUCT_ID`` of the product the file describes (a Level-2 file gives its
        Level-2 id; the Level-1 id is :attr:`level1_product_id`); ``None`` pre-collection.
    sensor, satellite, platform
        Canonical sensor name (``MSS``, ``TM``, ``ETM+``, ``OLI``, ``OLI-2``), Landsat
        number and ``LANDSAT_n``.
    acquired
        Scene-centre time, UTC, timezone-aware (midnight when the file gives no time).
    wrs_path, wrs_row, wrs_type
        WRS path/row (integers) and WRS version (1 for Landsat 1-3, else 2).
    sun_elevation, sun_azimuth
        Degrees. Elevation may be negative (night scenes exist in the archive).
    earth_sun_distance
        AU, when the file gives it.
    bands
        Every band the file describes, keyed by label, in band order.
    qa_files
        Quality files: ``BQA`` (C1), ``QA_PIXEL``, ``QA_RADSAT``, ``SR_QA_AEROSOL``, ``ST_QA``
        (C2), ESPA band names (``pixel_qa`` ...).
    crs_epsg
        326xx for UTM/WGS84 (USGS writes southern scenes in the northern zone with negative
        northings); ``None`` for other projections.
    corners
        ``{"UL": (x, y), ...}`` projection coordinates of corner pixel *centres*.
    corners_latlon
        ``{"UL": (lat, lon), ...}``.
    grid_cell_size
        Reflective pixel size (m).
    shape
        ``(REFLECTIVE_LINES, REFLECTIVE_SAMPLES)``.
    cloud_cover
        Scene cloud cover (%); ``None`` when not given or given as -1 (not computed).
    groups
        The whole file as nested mappings.
    level1_product_id
        Product id of the Level-1 product this one was made from (equal to
        :attr:`product_id` for Level-1 products).
    """

    path: str
    format: str
    collection: str | None
    processing_level: str | None
    scene_id: str
    product_id: str | None
    sensor: str
    satellite: int
    platform: str
    acquired: dt.datetime
    wrs_path: int | None
    wrs_row: int | None
    wrs_type: int | None
    sun_elevation: float
    sun_azimuth: float | None
    earth_sun_distance: float | None
    bands: Mapping[str, BandMetadata]
    qa_files: Mapping[str, str]
    crs_epsg: int | None
    corners: Mapping[str, tuple[float, float]] | None
    corners_latlon: Mapping[str, tuple[float, float]] | None
    grid_cell_size: float | None
    shape: tuple[int, int] | None
    cloud_cover: float | None
    groups: Mapping[str, Any] = field(repr=False)
    level1_product_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "bands", FrozenMap(self.bands))
        object.__setattr__(self, "qa_files", FrozenMap(self.qa_files))
        object.__setattr__(self, "groups", freeze(self.groups))
        for name in ("corners", "corners_latlon"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, FrozenMap(value))

    # ----------------------------------------------------------------------------------
    def get(self, key: str, group: str | None = None, default: Any = _RAISE) -> Any:
        """Look a key up in the file, group-aware.

        Parameters
        ----------
        key
            The key exactly as the file spells it, e.g. ``"REFLECTANCE_MULT_BAND_4"``.
        group
            Restrict the search to this group: its name (``"LEVEL1_RADIOMETRIC_RESCALING"``)
            or the tail of its path (``"LANDSAT_METADATA_FILE/IMAGE_ATTRIBUTES"``).
        default
            Returned when the key is absent; without it an absent key raises.

        Returns
        -------
        Any
            The typed value (``None`` for ``NULL``).

        Raises
        ------
        MetadataError
            When the key is absent (and no default is given), or when it occurs in several
            groups with different values and no ``group`` says which one is meant.
        """
        matches = list(_find_key(self.groups, key, ()))
        if group is not None:
            wanted = tuple(part for part in group.split("/") if part)
            matches = [(p, v) for p, v in matches if wanted and p[-len(wanted) :] == wanted]
        if not matches:
            if default is not _RAISE:
                return default
            where = f" in group {group}" if group is not None else ""
            raise MetadataError(f"{self.path}: no {key}{where} in this metadata file")
        first = matches[0][1]
        if any(value != first for _, value in matches[1:]):
            # The groups are named, not the values: a message is no place for file content.
            listing = "; ".join("/".join(p) for p, _ in matches)
            raise MetadataError(
                f"{self.path}: {key} is ambiguous: it is in groups {listing} with different "
                "values; pass group= to choose one"
            )
        return first

    def band(self, label: str | int) -> BandMetadata:
        """Return the band called ``label`` (``4``, ``"4"``, ``"6_VCID_1"``).

        Raises
        ------
        MetadataError
            Naming the file and the band when the file does not describe it.
        """
        key = str(label)
        if key not in self.bands:
            raise MetadataError(
                f"{self.path}: no band {key!r} in this metadata file; it describes bands "
                f"{', '.join(self.bands) or '(none)'}"
            )
        return self.bands[key]

    @property
    def present_bands(self) -> tuple[str, ...]:
        """Labels of the bands not marked missing, in band order."""
        return tuple(label for label, band in self.bands.items() if band.present)

    @property
    def is_level2(self) -> bool:
        """True for a surface-reflectance product (L2SP/L2SR, or SR scale factors given)."""
        if self.processing_level is not None and self.processing_level.upper().startswith("L2"):
            return True
        return any(band.sr_mult is not None for band in self.bands.values())

    @property
    def id(self) -> str:
        """Product id when there is one, else the scene id."""
        return self.product_id or self.scene_id

    @property
    def sensor_spec(self) -> Sensor:
        """Band definitions of this scene's sensor (``science.sensors.get_sensor``)."""
        return get_sensor(self.sensor, self.satellite)


def _find_key(node: Mapping, key: str, path: tuple[str, ...]) -> Iterator[tuple[tuple, Any]]:
    for name, value in node.items():
        if name == key:
            yield path, value
        if isinstance(value, Mapping):
            yield from _find_key(value, key, (*path, str(name)))
