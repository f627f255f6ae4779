"""MTL groups -> :class:`~updm_dask.metadata.SceneMetadata`, whatever the file's format.

ODL text, Collection-2 XML and JSON renderings all reach here as nested group -> key ->
value mappings. The mapping is group-aware: scene-level keys are looked for in the groups
of :data:`_GROUP_PRIORITY` first and never in Level-2 groups, which repeat Level-1 key names
with other meanings; band keys of every generation (``RADIANCE_MULT_BAND_4``,
``LMAX_BAND4``, ``BAND4_FILE_NAME`` ...) become :class:`~updm_dask.metadata.BandMetadata`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from ..errors import MetadataError
from . import values
from .records import BandMetadata, SceneMetadata

MTL_ROOTS = ("LANDSAT_METADATA_FILE", "L1_METADATA_FILE")

# Where scene-level keys are looked for first. Level-2 groups are never used for them:
# they repeat Level-1 key names with other meanings.
_GROUP_PRIORITY = (
    "PRODUCT_CONTENTS",
    "IMAGE_ATTRIBUTES",
    "PROJECTION_ATTRIBUTES",
    "PRODUCT_METADATA",
    "METADATA_FILE_INFO",
    "PROJECTION_PARAMETERS",
    "UTM_PARAMETERS",
    "PRODUCT_PARAMETERS",
    "LEVEL1_PROCESSING_RECORD",
    "LEVEL1_PROJECTION_PARAMETERS",
)

_BAND_KEYS = {
    "FILE_NAME": "file_name",
    "PRESENT": "present",
    "RADIANCE_MULT": "radiance_mult",
    "RADIANCE_ADD": "radiance_add",
    "REFLECTANCE_MULT": "reflectance_mult",
    "REFLECTANCE_ADD": "reflectance_add",
    "RADIANCE_MAXIMUM": "radiance_max",
    "RADIANCE_MINIMUM": "radiance_min",
    "REFLECTANCE_MAXIMUM": "reflectance_max",
    "REFLECTANCE_MINIMUM": "reflectance_min",
    "QUANTIZE_CAL_MAX": "quantize_cal_max",
    "QUANTIZE_CAL_MIN": "quantize_cal_min",
    "GAIN": "gain",
}
_BAND_KEY_RE = re.compile(r"(" + "|".join(_BAND_KEYS) + r")_BAND_(\d+(?:_VCID_[12])?)\Z")
# Pre-2012 MTL names; ETM+ band 6 was "61"/"62" there.
_OLD_BAND_KEY_RES = (
    (re.compile(r"LMAX_BAND(\d+)\Z"), "radiance_max"),
    (re.compile(r"LMIN_BAND(\d+)\Z"), "radiance_min"),
    (re.compile(r"QCALMAX_BAND(\d+)\Z"), "quantize_cal_max"),
    (re.compile(r"QCALMIN_BAND(\d+)\Z"), "quantize_cal_min"),
    (re.compile(r"BAND(\d+)_FILE_NAME\Z"), "file_name"),
    (re.compile(r"BAND(\d+)_GAIN\Z"), "gain"),
    (re.compile(r"BAND6_GAIN([12])\Z"), "gain"),
)
OLD_BAND_LABELS = {"61": "6_VCID_1", "62": "6_VCID_2"}
_CALIBRATION_FIELDS = frozenset(
    {
        "radiance_mult",
        "radiance_add",
        "reflectance_mult",
        "reflectance_add",
        "radiance_max",
        "radiance_min",
        "reflectance_max",
        "reflectance_min",
        "quantize_cal_max",
        "quantize_cal_min",
    }
)
_TEXT_FIELDS = frozenset({"file_name", "gain", "sr_file_name"})

_QA_KEYS = {
    "FILE_NAME_BAND_QUALITY": "BQA",
    "FILE_NAME_QUALITY_L1_PIXEL": "QA_PIXEL",
    "FILE_NAME_QUALITY_L1_RADIOMETRIC_SATURATION": "QA_RADSAT",
    "FILE_NAME_QUALITY_L2_AEROSOL": "SR_QA_AEROSOL",
    "FILE_NAME_QUALITY_L2_SURFACE_TEMPERATURE": "ST_QA",
}


class _Entry(NamedTuple):
    """One leaf of an MTL file: its group, key, value and where it is in the file."""

    group: str
    key: str
    value: Any
    line: str | None


class _MtlFields:
    """Leaf entries of an MTL root group, with group-aware lookups."""

    def __init__(
        self,
        root_name: str,
        root: Mapping,
        source: str,
        lines: Mapping[tuple[str, ...], str] | None = None,
    ) -> None:
        self.source = source
        self._lines = lines or {}
        self.entries: list[_Entry] = []
        self._walk(root_name, root, (root_name,))

    def _walk(self, group: str, node: Mapping, path: tuple[str, ...]) -> None:
        for key, value in node.items():
            here = (*path, str(key))
            if isinstance(value, Mapping):
                self._walk(str(key), value, here)
            else:
                self.entries.append(_Entry(group, str(key), value, self._lines.get(here)))

    @staticmethod
    def _rank(group: str) -> int:
        return _GROUP_PRIORITY.index(group) if group in _GROUP_PRIORITY else len(_GROUP_PRIORITY)

    def find(self, *keys: str) -> _Entry | None:
        """First of ``keys`` present outside Level-2 groups, or None."""
        for key in keys:
            found = [e for e in self.entries if e.key == key and not e.group.startswith("LEVEL2_")]
            if found:
                found.sort(key=lambda e: self._rank(e.group))
                return found[0]
        return None

    def value(self, *keys: str) -> Any:
        found = self.find(*keys)
        return None if found is None else found.value

    def required(self, *keys: str) -> _Entry:
        found = self.find(*keys)
        also = f" (nor {', '.join(keys[1:])})" if len(keys) > 1 else ""
        if found is None:
            raise MetadataError(f"{self.source}: required field {keys[0]} is missing{also}")
        if found.value is None:
            raise MetadataError(
                f"{values.at(self.source, found.line)}: required field {found.key} is NULL"
            )
        return found

    def number(self, *keys: str) -> float | None:
        found = self.find(*keys)
        if found is None:
            return None
        return values.as_number(found.value, found.key, self.source, found.line)

    def integer(self, *keys: str) -> int | None:
        found = self.find(*keys)
        if found is None:
            return None
        return values.as_integer(found.value, found.key, self.source, found.line)

    def in_group(self, group: str, key: str) -> Any:
        for e in self.entries:
            if e.group == group and e.key == key:
                return e.value
        return None


def scene_from_mtl_groups(
    groups: Mapping,
    fmt: str,
    source: str,
    lines: Mapping[tuple[str, ...], str] | None = None,
) -> SceneMetadata:
    """The record of an MTL file given as nested groups (from ODL, XML or JSON).

    ``groups`` holds exactly one root of :data:`MTL_ROOTS`; ``fmt`` (``"odl"``, ``"xml"``,
    ``"json"``) is recorded in :attr:`SceneMetadata.format`, and ``source`` names the file in
    :attr:`SceneMetadata.path` and in every :class:`~updm_dask.errors.MetadataError`: no or
    two roots, a required field missing or NULL, a malformed value, a date outside the
    Landsat era, band values that contradict each other between groups. ``lines`` maps
    ``(root, group, ..., key)`` to its place in the file (``"line 12"``), named in those
    messages; the value itself never is.
    """
    roots = [name for name in MTL_ROOTS if isinstance(groups.get(name), Mapping)]
    if not roots:
        # Not even the names found are shown: this may be any file at all.
        raise MetadataError(
            f"{source}: no L1_METADATA_FILE or LANDSAT_METADATA_FILE group at the top level; "
            "not a Landsat MTL file"
        )
    if len(roots) > 1:
        raise MetadataError(
            f"{source}: holds both L1_METADATA_FILE and LANDSAT_METADATA_FILE groups"
        )
    root_name = roots[0]
    f = _MtlFields(root_name, groups[root_name], source, lines)

    e = f.required("SPACECRAFT_ID")
    satellite = values.as_satellite(e.value, e.key, source, e.line)
    e = f.required("SENSOR_ID")
    sensor = values.as_sensor(e.value, e.key, satellite, source, e.line)

    e = f.required("DATE_ACQUIRED", "ACQUISITION_DATE")
    date = values.as_acquisition_date(e.value, e.key, source, e.line)
    found = f.find("SCENE_CENTER_TIME", "SCENE_CENTER_SCAN_TIME")
    time = (
        dt.time(0)
        if found is None or found.value is None
        else values.as_time(found.value, found.key, source, found.line)
    )
    acquired = dt.datetime.combine(date, time, tzinfo=dt.UTC)

    e = f.required("SUN_ELEVATION")
    sun_elevation = values.as_sun_elevation(f.number(e.key), e.key, source, e.line)

    collection_number = f.integer("COLLECTION_NUMBER")
    if collection_number is not None:
        collection = f"C{collection_number}"
    else:
        collection = "C2" if root_name == "LANDSAT_METADATA_FILE" else "pre-collection"
    processing_level = values.as_text(f.value("PROCESSING_LEVEL", "DATA_TYPE", "PRODUCT_TYPE"))
    level2 = (processing_level or "").upper().startswith("L2") or any(
        e.group.startswith("LEVEL2_") for e in f.entries
    )

    product_id = values.as_text(f.value("LANDSAT_PRODUCT_ID"))
    level1_product_id = values.as_text(f.in_group("LEVEL1_PROCESSING_RECORD", "LANDSAT_PRODUCT_ID"))
    if level1_product_id is None and not level2:
        level1_product_id = product_id
    scene_id = values.as_text(f.value("LANDSAT_SCENE_ID"))
    if scene_id is None:
        # Pre-2012 files carry no scene id; their own MTL file name identifies the scene.
        own_name = f.value("METADATA_FILE_NAME", "METADATA_L1_FILE_NAME", "FILE_NAME_METADATA_ODL")
        if own_name is not None:
            scene_id = re.sub(r"_MTL(\.\w+)?\Z", "", str(own_name), flags=re.IGNORECASE)
        else:
            scene_id = product_id
    if not scene_id:
        raise MetadataError(
            f"{source}: required field LANDSAT_SCENE_ID is missing (nor LANDSAT_PRODUCT_ID)"
        )

    wrs_type = f.integer("WRS_TYPE")
    if wrs_type is None:
        wrs_type = 1 if satellite <= 3 else 2

    zone = f.find("UTM_ZONE", "ZONE_NUMBER")
    crs_epsg = values.utm_epsg(
        f.value("MAP_PROJECTION"),
        f.value("DATUM", "REFERENCE_DATUM"),
        None if zone is None else zone.value,
        "UTM_ZONE" if zone is None else zone.key,
        source,
        None if zone is None else zone.line,
    )

    corners: dict[str, tuple[float, float]] | None = {}
    corners_latlon: dict[str, tuple[float, float]] | None = {}
    for corner in ("UL", "UR", "LL", "LR"):
        x = f.number(f"CORNER_{corner}_PROJECTION_X_PRODUCT", f"PRODUCT_{corner}_CORNER_MAPX")
        y = f.number(f"CORNER_{corner}_PROJECTION_Y_PRODUCT", f"PRODUCT_{corner}_CORNER_MAPY")
        lat = f.number(f"CORNER_{corner}_LAT_PRODUCT", f"PRODUCT_{corner}_CORNER_LAT")
        lon = f.number(f"CORNER_{corner}_LON_PRODUCT", f"PRODUCT_{corner}_CORNER_LON")
        if corners is not None:
            corners = None if x is None or y is None else {**corners, corner: (x, y)}
        if corners_latlon is not None:
            corners_latlon = (
                None if lat is None or lon is None else {**corners_latlon, corner: (lat, lon)}
            )

    n_lines = f.integer("REFLECTIVE_LINES", "PRODUCT_LINES_REF")
    n_samples = f.integer("REFLECTIVE_SAMPLES", "PRODUCT_SAMPLES_REF")

    qa_files: dict[str, str] = {}
    for e in sorted(f.entries, key=lambda e: f._rank(e.group)):
        if e.value is None or e.group.startswith("LEVEL2_"):
            continue
        short = _QA_KEYS.get(e.key)
        if short is None and e.key.startswith("FILE_NAME_QUALITY_"):
            short = e.key[len("FILE_NAME_QUALITY_") :]
        if short is not None:
            qa_files.setdefault(short, str(e.value))

    return SceneMetadata(
        path=source,
        format=fmt,
        collection=collection,
        processing_level=processing_level,
        scene_id=str(scene_id),
        product_id=product_id,
        sensor=sensor,
        satellite=satellite,
        platform=f"LANDSAT_{satellite}",
        acquired=acquired,
        wrs_path=f.integer("WRS_PATH"),
        wrs_row=f.integer("WRS_ROW", "STARTING_ROW"),
        wrs_type=wrs_type,
        sun_elevation=sun_elevation,
        sun_azimuth=f.number("SUN_AZIMUTH"),
        earth_sun_distance=f.number("EARTH_SUN_DISTANCE"),
        bands=_mtl_bands(f, level2, source),
        qa_files=qa_files,
        crs_epsg=crs_epsg,
        corners=corners or None,
        corners_latlon=corners_latlon or None,
        grid_cell_size=f.number("GRID_CELL_SIZE_REFLECTIVE", "GRID_CELL_SIZE_REF"),
        shape=None if n_lines is None or n_samples is None else (n_lines, n_samples),
        cloud_cover=values.cloud_cover(f.number("CLOUD_COVER")),
        groups=groups,
        level1_product_id=level1_product_id,
    )


def _band_key(key: str) -> tuple[str, str] | None:
    """Map an MTL key to (band label, BandMetadata field), or None for other keys."""
    match = _BAND_KEY_RE.match(key)
    if match:
        return match.group(2), _BAND_KEYS[match.group(1)]
    for pattern, name in _OLD_BAND_KEY_RES:
        match = pattern.match(key)
        if match:
            number = match.group(1)
            if key.startswith("BAND6_GAIN"):
                number = f"6{number}"
            return OLD_BAND_LABELS.get(number, number), name
    return None


def _mtl_bands(f: _MtlFields, level2: bool, source: str) -> dict[str, BandMetadata]:
    by_band: dict[str, dict[str, Any]] = {}
    origin: dict[tuple[str, str], tuple[str, str | None]] = {}
    calibration_seen: set[str] = set()
    calibration_given: set[str] = set()
    for group, key, raw, line in f.entries:
        mapped = _band_key(key)
        if mapped is None:
            continue
        label, name = mapped
        if group.startswith("LEVEL2_"):
            # Only the surface-reflectance scale of a Level-2 group is a band property; its
            # REFLECTANCE_MULT/ADD must never be taken for the Level-1 TOA rescaling.
            if not group.startswith("LEVEL2_SURFACE_REFLECTANCE") or name not in (
                "reflectance_mult",
                "reflectance_add",
            ):
                continue
            name = "sr_mult" if name == "reflectance_mult" else "sr_add"
        elif name == "file_name" and level2 and group != "LEVEL1_PROCESSING_RECORD":
            # A Level-2 product lists its own (SR) files; the Level-1 names sit in the
            # Level-1 processing record.
            name = "sr_file_name"

        if name == "present":
            flag = str(raw).strip().upper() if raw is not None else ""
            if flag not in ("Y", "N", "M"):
                raise MetadataError(
                    f"{values.at(source, line)}: {key} is not a presence flag (expected Y, N or M)"
                )
            value: Any = flag == "Y"
        elif name in _TEXT_FIELDS:
            value = values.as_text(raw)
        else:
            value = values.as_number(raw, key, source, line)
        if name in _CALIBRATION_FIELDS:
            calibration_seen.add(label)
            if value is not None:
                calibration_given.add(label)

        band = by_band.setdefault(label, {})
        if name in band and band[name] != value:
            first_group, first_line = origin[(label, name)]
            first = f" ({first_line})" if first_line else ""
            raise MetadataError(
                f"{values.at(source, line)}: band {label}: {key} in group "
                f"{values.shown_name(group)} differs from {key} in group "
                f"{values.shown_name(first_group)}{first}; expected one value for the band"
            )
        band[name] = value
        origin[(label, name)] = (group, line)

    bands: dict[str, BandMetadata] = {}
    for label in sorted(by_band, key=values.band_order):
        fields = by_band[label]
        if "present" not in fields:
            fields["present"] = not (label in calibration_seen and label not in calibration_given)
        fields.setdefault("file_name", None)
        bands[label] = BandMetadata(label=label, **fields)
    return bands
