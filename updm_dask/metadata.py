"""Landsat scene metadata: every MTL flavour and the ESPA XML, read into one typed record.

Supported inputs (the format is recognised from the content, not the file name):

- ODL text ``*_MTL.txt`` (any case of the extension): pre-collection and Collection-1 files
  with the ``L1_METADATA_FILE`` group, Collection-2 files with ``LANDSAT_METADATA_FILE``;
  including the oldest pre-2012 field names (``LMAX_BAND1``, ``QCALMAX_BAND61``,
  ``BAND1_FILE_NAME``, ``ACQUISITION_DATE``, ``SCENE_CENTER_SCAN_TIME``, ``STARTING_ROW``,
  ``ZONE_NUMBER``, ``SPACECRAFT_ID = "Landsat7"`` ...);
- Collection-2 XML ``*_MTL.xml`` (root element ``LANDSAT_METADATA_FILE``);
- JSON renderings of the ODL (nested groups, numbers as numbers), as written by rio-toa;
- ESPA XML (``espa_metadata``, namespaced; solar zenith instead of elevation, one element
  per band with its own file name and scale).

Files are parsed, never evaluated. Known quirks of real files are handled: NUL padding after
the text (some LPGS files are padded to 65 535 bytes), CRLF line endings, quoted and unquoted
values, ``NULL``, zero-padded integers (``WRS_ROW = 031``) and stray whitespace after values.
Everything else that is wrong raises :class:`~updm_dask.errors.MetadataError` naming the
file and what is wrong with it.

The reader is group-aware. A Collection-2 Level-2 file repeats ``REFLECTANCE_MULT_BAND_n``:
once in ``LEVEL1_RADIOMETRIC_RESCALING`` (DN -> top-of-atmosphere reflectance) and once in
``LEVEL2_SURFACE_REFLECTANCE_PARAMETERS`` (DN -> surface reflectance). The first becomes
:attr:`BandMetadata.reflectance_mult`, the second :attr:`BandMetadata.sr_mult`; a lookup
that cannot tell them apart is an error, never a silent pick.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from .errors import MetadataError, SensorError
from .frozen import FrozenMap, freeze
from .science.sensors import Sensor, canonical_sensor_name, get_sensor

__all__ = [
    "MAX_METADATA_BYTES",
    "BandMetadata",
    "SceneMetadata",
    "parse_odl",
    "read_mtl",
    "read_mtl_text",
]

# Real metadata files are 5-70 kB; a limit keeps a mistaken path (a GeoTIFF, an archive)
# from being read whole into memory.
MAX_METADATA_BYTES = 16 * 1024 * 1024

_RAISE: Any = object()


# --------------------------------------------------------------------------------------
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
            listing = "; ".join(f"{'/'.join(p)} ({v!r})" for p, v in matches)
            raise MetadataError(
                f"{self.path}: {key} is ambiguous: it is in groups {listing}; "
                "pass group= to choose one"
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


# --------------------------------------------------------------------------------------
# Reading bytes and telling formats apart.
def read_mtl(source: str | os.PathLike | bytes | IO, *, name: str | None = None) -> SceneMetadata:
    """Read a Landsat metadata file (any MTL flavour, or ESPA XML).

    Parameters
    ----------
    source
        A path, or an open binary (or text) file object such as a member of a tar archive
        (``tarfile.TarFile.extractfile``).
    name
        Name to report in errors and store in :attr:`SceneMetadata.path`; defaults to the
        path, or the file object's ``name``.

    Returns
    -------
    SceneMetadata

    Raises
    ------
    MetadataError
        When the file does not exist or cannot be read, is empty, binary, malformed,
        truncated, or lacks a required field; the message names the file and the problem.
    """
    if hasattr(source, "read"):
        label = name or str(getattr(source, "name", None) or "<file object>")
        try:
            data = source.read(MAX_METADATA_BYTES + 1)
        except OSError as exc:
            raise MetadataError(f"{label}: cannot be read: {exc}") from exc
        if isinstance(data, str):
            data = data.encode("utf-8")
    else:
        path = os.fsdecode(source) if isinstance(source, bytes) else os.fspath(source)
        label = name or path
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_METADATA_BYTES + 1)
        except FileNotFoundError:
            raise MetadataError(f"{label}: no such metadata file") from None
        except IsADirectoryError:
            raise MetadataError(f"{label}: is a directory, not a metadata file") from None
        except OSError as exc:
            raise MetadataError(f"{label}: cannot be read: {exc.strerror or exc}") from exc
    if len(data) > MAX_METADATA_BYTES:
        raise MetadataError(
            f"{label}: larger than {MAX_METADATA_BYTES} bytes; not a metadata file "
            "(an image or archive?)"
        )
    return _parse_text(_decode(data, label), label)


def read_mtl_text(text: str | bytes, source: str = "<string>") -> SceneMetadata:
    """Parse metadata already held in memory (same formats and checks as :func:`read_mtl`).

    Parameters
    ----------
    text
        The file content. Bytes are decoded as :func:`read_mtl` does; NUL padding is
        stripped from a string too.
    source
        Name used in error messages and as :attr:`SceneMetadata.path`.
    """
    if isinstance(text, bytes | bytearray):
        return _parse_text(_decode(bytes(text), source), source)
    if not isinstance(text, str):
        raise MetadataError(f"{source}: expected the metadata text as str, got {type(text)}")
    nul = text.find("\0")
    if nul >= 0:
        if text[nul:].strip("\0"):
            raise MetadataError(
                f"{source}: binary data (NUL character at offset {nul} followed by more "
                "data); not a text metadata file"
            )
        text = text[:nul]
    if not text.strip():
        raise MetadataError(f"{source}: is empty; expected Landsat metadata (MTL/ESPA)")
    _check_text(text, source)
    return _parse_text(text, source)


def _decode(data: bytes, source: str) -> str:
    if not data:
        raise MetadataError(f"{source}: is empty (0 bytes); expected Landsat metadata")
    # LPGS pads some pre-collection MTLs with NUL bytes up to 65535 bytes: the text ends at
    # the first NUL. Anything but NULs after it means the file is binary.
    nul = data.find(b"\0")
    if nul >= 0:
        if data[nul:].strip(b"\0"):
            raise MetadataError(
                f"{source}: binary data (NUL byte at offset {nul} followed by other bytes); "
                "not a text metadata file"
            )
        data = data[:nul]
    if not data.strip():
        raise MetadataError(
            f"{source}: contains no text (only NUL padding or whitespace); "
            "expected Landsat metadata"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MetadataError(
            f"{source}: not a text file (byte 0x{data[exc.start]:02x} at offset {exc.start} "
            "is not UTF-8); expected Landsat metadata"
        ) from None
    _check_text(text, source)
    return text


_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _check_text(text: str, source: str) -> None:
    bad = _CONTROL_RE.search(text)
    if bad:
        raise MetadataError(
            f"{source}: binary data (control character 0x{ord(bad.group()):02x} at offset "
            f"{bad.start()}); not a text metadata file"
        )


def _parse_text(text: str, source: str) -> SceneMetadata:
    head = text.lstrip()
    if head.startswith("<"):
        return _from_xml(text, source)
    if head.startswith(("{", "[")):
        return _from_json(text, source)
    return _scene_from_mtl_groups(parse_odl(text, source), "odl", source)


# --------------------------------------------------------------------------------------
# Scalars
_INT_RE = re.compile(r"[+-]?\d+\Z")
_FLOAT_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")


def _scalar(text: str) -> Any:
    """Type an unquoted value: NULL -> None, integers, floats; anything else stays a str."""
    if text == "NULL":
        return None
    if _INT_RE.match(text):
        return int(text)
    if _FLOAT_RE.match(text):
        return float(text)
    return text


def _clip(text: str, limit: int = 80) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------
# ODL
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


def parse_odl(text: str, source: str = "<string>") -> dict[str, Any]:
    """Parse the ODL text of an MTL file into nested dicts (group -> key -> typed value).

    Quoted values stay strings; unquoted ones become int, float, ``None`` (``NULL``) or str.
    Lines may end in CRLF and carry trailing whitespace.

    Raises
    ------
    MetadataError
        For a line that is not ``KEY = VALUE``, a malformed quote, a key repeated within a
        group, unbalanced ``GROUP``/``END_GROUP`` (a truncated file), a missing ``END``, or
        text after ``END``; the message names the file and line.
    """
    lines = text.splitlines()
    last = max((i for i, line in enumerate(lines, 1) if line.strip()), default=0)

    def fail(lineno: int, message: str) -> MetadataError:
        # A file cut short usually breaks its last line, whatever the rule it breaks.
        hint = " (file truncated?)" if lineno == last else ""
        return MetadataError(f"{source}: line {lineno}{message}{hint}")

    root: dict[str, Any] = {}
    stack: list[tuple[str, dict[str, Any], int]] = [("", root, 0)]
    ended_at = 0
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or (line.startswith("/*") and line.endswith("*/")):
            continue
        if ended_at:
            raise fail(lineno, f": text after END (line {ended_at}): {_clip(raw)!r}")
        if line == "END":
            if len(stack) > 1:
                name, _, opened = stack[-1]
                raise fail(
                    lineno, f": END while GROUP = {name} (opened at line {opened}) has no END_GROUP"
                )
            ended_at = lineno
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _NAME_RE.match(key):
            raise fail(lineno, f" is not KEY = VALUE: {_clip(raw)!r}")
        if not value:
            raise fail(lineno, f": {key} has no value")
        current = stack[-1][1]
        if key == "GROUP":
            if not _NAME_RE.match(value):
                raise fail(lineno, f": bad group name {value!r}")
            if value in current:
                raise fail(
                    lineno, f": GROUP = {value} appears twice in {stack[-1][0] or 'the top level'}"
                )
            current[value] = {}
            stack.append((value, current[value], lineno))
        elif key == "END_GROUP":
            if len(stack) == 1:
                raise fail(lineno, f": END_GROUP = {value} without a matching GROUP")
            name, _, opened = stack[-1]
            if value != name:
                raise fail(
                    lineno,
                    f": END_GROUP = {value} does not close GROUP = {name} opened at line {opened}",
                )
            stack.pop()
        else:
            if key in current:
                raise fail(
                    lineno, f": {key} appears twice in group {stack[-1][0] or '(top level)'}"
                )
            if value.startswith('"'):
                if len(value) < 2 or not value.endswith('"') or '"' in value[1:-1]:
                    raise fail(lineno, f": malformed quoted value for {key}: {_clip(value)!r}")
                current[key] = value[1:-1]
            else:
                current[key] = _scalar(value)
    if len(stack) > 1:
        name, _, opened = stack[-1]
        raise MetadataError(
            f"{source}: GROUP = {name} opened at line {opened} is never closed by END_GROUP "
            "(unbalanced GROUP/END_GROUP: file truncated?)"
        )
    if not ended_at:
        raise MetadataError(f"{source}: no END line after the last group (file truncated?)")
    return root


# --------------------------------------------------------------------------------------
# XML and JSON
_DTD_RE = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _from_xml(text: str, source: str) -> SceneMetadata:
    found = _DTD_RE.search(text)
    if found:
        # No Landsat metadata file has a DTD; refusing them rules out entity expansion.
        raise MetadataError(
            f"{source}: XML with a <!{found.group(1).upper()} declaration is refused "
            "(Landsat metadata never has one)"
        )
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        line, column = exc.position
        raise MetadataError(
            f"{source}: invalid XML at line {line}, column {column}: {exc} (truncated or not XML?)"
        ) from None
    tag = _local(root.tag)
    if tag in _ROOTS:
        return _scene_from_mtl_groups({tag: _mtl_xml_dict(root, source)}, "xml", source)
    if tag == "espa_metadata":
        return _scene_from_espa(root, source)
    raise MetadataError(
        f"{source}: XML root element <{tag}> is neither LANDSAT_METADATA_FILE (Collection-2 "
        "MTL) nor espa_metadata (ESPA)"
    )


def _mtl_xml_dict(elem: ET.Element, source: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in elem:
        tag = _local(child.tag)
        if tag in out:
            raise MetadataError(f"{source}: element <{tag}> appears twice in <{_local(elem.tag)}>")
        if len(child):
            out[tag] = _mtl_xml_dict(child, source)
        else:
            content = (child.text or "").strip()
            out[tag] = _scalar(content) if content else None
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid metadata number")


def _from_json(text: str, source: str) -> SceneMetadata:
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        raise MetadataError(f"{source}: invalid JSON: {exc} (truncated or not JSON?)") from None
    if not isinstance(data, dict):
        raise MetadataError(
            f"{source}: JSON metadata must be an object holding the L1_METADATA_FILE or "
            f"LANDSAT_METADATA_FILE group, not a {type(data).__name__}"
        )
    return _scene_from_mtl_groups(data, "json", source)


# --------------------------------------------------------------------------------------
# Typed field access with messages that name the file, the field and the value.
def _number(value: Any, key: str, source: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and _FLOAT_RE.match(value.strip()):
        number = float(value)
    else:
        number = None
    if number is None or not math.isfinite(number):
        raise MetadataError(f"{source}: {key} = {value!r} is not a number")
    return number


def _integer(value: Any, key: str, source: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INT_RE.match(value.strip()):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise MetadataError(f"{source}: {key} = {value!r} is not an integer")


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


_DATE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})\Z")
_TIME_RE = re.compile(r"(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?Z?\Z")


def _parse_date(value: Any, key: str, source: str) -> dt.date:
    match = _DATE_RE.match(str(value).strip())
    try:
        if match is None:
            raise ValueError
        return dt.date(*(int(g) for g in match.groups()))
    except ValueError:
        raise MetadataError(
            f"{source}: {key} = {value!r} is not a date (expected YYYY-MM-DD)"
        ) from None


def _parse_time(value: Any, key: str, source: str) -> dt.time:
    match = _TIME_RE.match(str(value).strip())
    try:
        if match is None:
            raise ValueError
        hour, minute, second, fraction = match.groups()
        # Files give up to 7 decimals; datetime keeps microseconds.
        micro = int(((fraction or "") + "000000")[:6])
        return dt.time(int(hour), int(minute), int(second), micro)
    except ValueError:
        raise MetadataError(
            f"{source}: {key} = {value!r} is not a time of day (expected HH:MM:SS.fffZ)"
        ) from None


_SPACECRAFT_RE = re.compile(r"LANDSAT[_\s-]?(\d)\Z", re.IGNORECASE)
_SATELLITES = (1, 2, 3, 4, 5, 7, 8, 9)  # Landsat 6 never reached orbit


def _satellite(value: Any, key: str, source: str) -> int:
    match = _SPACECRAFT_RE.match(str(value).strip())
    if match is None or int(match.group(1)) not in _SATELLITES:
        raise MetadataError(
            f"{source}: {key} = {value!r} is not a Landsat spacecraft (expected LANDSAT_1 .. "
            "LANDSAT_5, LANDSAT_7, LANDSAT_8 or LANDSAT_9)"
        )
    return int(match.group(1))


def _sensor(value: Any, key: str, satellite: int, source: str) -> str:
    try:
        canonical_sensor_name(str(value), satellite)
    except SensorError as exc:
        raise MetadataError(f"{source}: unknown sensor {key} = {value!r}: {exc}") from None
    try:
        return get_sensor(str(value), satellite).name
    except SensorError as exc:
        raise MetadataError(
            f"{source}: {key} = {value!r} does not fit LANDSAT_{satellite}: {exc}"
        ) from None


def _sun_elevation(value: float, key: str, source: str) -> float:
    if not -90.0 <= value <= 90.0:
        raise MetadataError(f"{source}: {key} = {value!r} is outside -90..90 degrees")
    return value


def _utm_epsg(projection: Any, datum: Any, zone: Any, key: str, source: str) -> int | None:
    if projection is None or str(projection).strip().upper() != "UTM" or zone is None:
        return None
    # Every Landsat product is on WGS84; an explicit other datum gets no EPSG code.
    if datum is not None and str(datum).strip().upper() not in ("WGS84", "WGS_84", "WGS 84"):
        return None
    number = _integer(zone, key, source)
    if number is None or not 1 <= abs(number) <= 60:
        raise MetadataError(f"{source}: {key} = {zone!r} is not a UTM zone (1..60)")
    # A negative zone (ESPA convention) is the southern zone.
    return (32600 if number > 0 else 32700) + abs(number)


def _cloud_cover(value: float | None) -> float | None:
    # USGS writes -1 when cover was not computed (e.g. early MSS night scenes); a number
    # there would pass any "cloud_cover < x" filter.
    return None if value is None or value < 0 else value


def _natural(label: str) -> tuple:
    head, _, tail = label.partition("_")
    return (int(head) if head.isdigit() else math.inf, head, tail)


# --------------------------------------------------------------------------------------
# MTL groups (ODL, XML, JSON) -> SceneMetadata
_ROOTS = ("LANDSAT_METADATA_FILE", "L1_METADATA_FILE")

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
_OLD_LABELS = {"61": "6_VCID_1", "62": "6_VCID_2"}
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


class _MtlFields:
    """Leaf entries of an MTL root group, with group-aware lookups."""

    def __init__(self, root_name: str, root: Mapping, source: str) -> None:
        self.source = source
        self.entries: list[tuple[str, str, Any]] = []
        self._walk(root_name, root)

    def _walk(self, group: str, node: Mapping) -> None:
        for key, value in node.items():
            if isinstance(value, Mapping):
                self._walk(str(key), value)
            else:
                self.entries.append((group, str(key), value))

    @staticmethod
    def _rank(group: str) -> int:
        return _GROUP_PRIORITY.index(group) if group in _GROUP_PRIORITY else len(_GROUP_PRIORITY)

    def find(self, *keys: str) -> tuple[str, Any] | None:
        """First of ``keys`` present outside Level-2 groups: (key, value), or None."""
        for key in keys:
            found = [(g, v) for g, k, v in self.entries if k == key and not g.startswith("LEVEL2_")]
            if found:
                found.sort(key=lambda gv: self._rank(gv[0]))
                return key, found[0][1]
        return None

    def value(self, *keys: str) -> Any:
        found = self.find(*keys)
        return None if found is None else found[1]

    def required(self, *keys: str) -> tuple[str, Any]:
        found = self.find(*keys)
        also = f" (nor {', '.join(keys[1:])})" if len(keys) > 1 else ""
        if found is None:
            raise MetadataError(f"{self.source}: required field {keys[0]} is missing{also}")
        if found[1] is None:
            raise MetadataError(f"{self.source}: required field {found[0]} is NULL")
        return found

    def number(self, *keys: str) -> float | None:
        found = self.find(*keys)
        return None if found is None else _number(found[1], found[0], self.source)

    def integer(self, *keys: str) -> int | None:
        found = self.find(*keys)
        return None if found is None else _integer(found[1], found[0], self.source)

    def in_group(self, group: str, key: str) -> Any:
        for g, k, v in self.entries:
            if g == group and k == key:
                return v
        return None


def _scene_from_mtl_groups(groups: Mapping, fmt: str, source: str) -> SceneMetadata:
    roots = [name for name in _ROOTS if isinstance(groups.get(name), Mapping)]
    if not roots:
        found = ", ".join(str(k) for k in list(groups)[:5]) or "nothing"
        raise MetadataError(
            f"{source}: no L1_METADATA_FILE or LANDSAT_METADATA_FILE group (found {found}); "
            "not a Landsat MTL file"
        )
    if len(roots) > 1:
        raise MetadataError(
            f"{source}: holds both L1_METADATA_FILE and LANDSAT_METADATA_FILE groups"
        )
    root_name = roots[0]
    f = _MtlFields(root_name, groups[root_name], source)

    key, value = f.required("SPACECRAFT_ID")
    satellite = _satellite(value, key, source)
    key, value = f.required("SENSOR_ID")
    sensor = _sensor(value, key, satellite, source)

    key, value = f.required("DATE_ACQUIRED", "ACQUISITION_DATE")
    date = _parse_date(value, key, source)
    found = f.find("SCENE_CENTER_TIME", "SCENE_CENTER_SCAN_TIME")
    time = (
        dt.time(0) if found is None or found[1] is None else _parse_time(found[1], found[0], source)
    )
    acquired = dt.datetime.combine(date, time, tzinfo=dt.UTC)

    key, _ = f.required("SUN_ELEVATION")
    sun_elevation = _sun_elevation(f.number(key), key, source)

    collection_number = f.integer("COLLECTION_NUMBER")
    if collection_number is not None:
        collection = f"C{collection_number}"
    else:
        collection = "C2" if root_name == "LANDSAT_METADATA_FILE" else "pre-collection"
    processing_level = _text(f.value("PROCESSING_LEVEL", "DATA_TYPE", "PRODUCT_TYPE"))
    level2 = (processing_level or "").upper().startswith("L2") or any(
        g.startswith("LEVEL2_") for g, _, _ in f.entries
    )

    product_id = _text(f.value("LANDSAT_PRODUCT_ID"))
    level1_product_id = _text(f.in_group("LEVEL1_PROCESSING_RECORD", "LANDSAT_PRODUCT_ID"))
    if level1_product_id is None and not level2:
        level1_product_id = product_id
    scene_id = _text(f.value("LANDSAT_SCENE_ID"))
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

    projection_key = f.find("UTM_ZONE", "ZONE_NUMBER")
    crs_epsg = _utm_epsg(
        f.value("MAP_PROJECTION"),
        f.value("DATUM", "REFERENCE_DATUM"),
        None if projection_key is None else projection_key[1],
        "UTM_ZONE" if projection_key is None else projection_key[0],
        source,
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

    lines = f.integer("REFLECTIVE_LINES", "PRODUCT_LINES_REF")
    samples = f.integer("REFLECTIVE_SAMPLES", "PRODUCT_SAMPLES_REF")

    qa_files: dict[str, str] = {}
    for group, key, value in sorted(f.entries, key=lambda e: f._rank(e[0])):
        if value is None or group.startswith("LEVEL2_"):
            continue
        short = _QA_KEYS.get(key)
        if short is None and key.startswith("FILE_NAME_QUALITY_"):
            short = key[len("FILE_NAME_QUALITY_") :]
        if short is not None:
            qa_files.setdefault(short, str(value))

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
        shape=None if lines is None or samples is None else (lines, samples),
        cloud_cover=_cloud_cover(f.number("CLOUD_COVER")),
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
            return _OLD_LABELS.get(number, number), name
    return None


def _mtl_bands(f: _MtlFields, level2: bool, source: str) -> dict[str, BandMetadata]:
    values: dict[str, dict[str, Any]] = {}
    origin: dict[tuple[str, str], str] = {}
    calibration_seen: set[str] = set()
    calibration_given: set[str] = set()
    for group, key, raw in f.entries:
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
                    f"{source}: {key} = {raw!r} is not a presence flag (expected Y, N or M)"
                )
            value: Any = flag == "Y"
        elif name in _TEXT_FIELDS:
            value = _text(raw)
        else:
            value = _number(raw, key, source)
        if name in _CALIBRATION_FIELDS:
            calibration_seen.add(label)
            if value is not None:
                calibration_given.add(label)

        band = values.setdefault(label, {})
        if name in band and band[name] != value:
            raise MetadataError(
                f"{source}: band {label} has conflicting {key}: {band[name]!r} in "
                f"{origin[(label, name)]} and {value!r} in {group}"
            )
        band[name] = value
        origin[(label, name)] = group

    bands: dict[str, BandMetadata] = {}
    for label in sorted(values, key=_natural):
        fields = values[label]
        if "present" not in fields:
            fields["present"] = not (label in calibration_seen and label not in calibration_given)
        fields.setdefault("file_name", None)
        bands[label] = BandMetadata(label=label, **fields)
    return bands


# --------------------------------------------------------------------------------------
# ESPA XML
_PRECOLLECTION_ID_RE = re.compile(r"L[CEMTO]\d{14}[A-Z0-9]{3}\d{2}\Z")
_ESPA_KEY_ATTRS = ("name", "location", "num")


def _espa_value(elem: ET.Element) -> Any:
    content = (elem.text or "").strip()
    if not len(elem) and not elem.attrib:
        return _scalar(content) if content else None
    out: dict[str, Any] = {_local(k): _scalar(v.strip()) for k, v in elem.attrib.items()}
    for child in elem:
        tag = _local(child.tag)
        value = _espa_value(child)
        keyed = next((a for a in _ESPA_KEY_ATTRS if a in child.attrib), None)
        if keyed is not None:
            # Repeated elements told apart by an attribute (bands by name, corners by
            # location) become a mapping, so get(..., group="sr_band4") can reach them.
            out.setdefault(tag, {})[child.attrib[keyed]] = value
        elif tag in out:
            previous = out[tag]
            out[tag] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            out[tag] = value
    if content:
        out["value"] = _scalar(content)
    return out


def _scene_from_espa(root: ET.Element, source: str) -> SceneMetadata:
    def child(parent: ET.Element | None, tag: str) -> ET.Element | None:
        if parent is None:
            return None
        return next((c for c in parent if _local(c.tag) == tag), None)

    def children(parent: ET.Element | None, tag: str) -> list[ET.Element]:
        return [] if parent is None else [c for c in parent if _local(c.tag) == tag]

    def text(parent: ET.Element | None, tag: str) -> str | None:
        elem = child(parent, tag)
        content = None if elem is None else (elem.text or "").strip()
        return content or None

    def required_text(parent: ET.Element | None, tag: str) -> str:
        content = text(parent, tag)
        if content is None:
            raise MetadataError(f"{source}: required ESPA element <{tag}> is missing or empty")
        return content

    glob = child(root, "global_metadata")
    if glob is None:
        raise MetadataError(f"{source}: ESPA file without <global_metadata>")

    satellite = _satellite(required_text(glob, "satellite"), "satellite", source)
    sensor = _sensor(required_text(glob, "instrument"), "instrument", satellite, source)
    date = _parse_date(required_text(glob, "acquisition_date"), "acquisition_date", source)
    centre = text(glob, "scene_center_time")
    time = dt.time(0) if centre is None else _parse_time(centre, "scene_center_time", source)

    angles = child(glob, "solar_angles")
    if angles is None or angles.get("zenith") is None:
        raise MetadataError(f"{source}: required ESPA element <solar_angles zenith=...> is missing")
    units = angles.get("units", "degrees").strip().lower()
    if units != "degrees":
        raise MetadataError(f"{source}: solar_angles units = {units!r}; expected degrees")
    zenith = _number(angles.get("zenith"), "solar_angles zenith", source)
    sun_elevation = _sun_elevation(90.0 - zenith, "90 - solar_angles zenith", source)
    sun_azimuth = _number(angles.get("azimuth"), "solar_angles azimuth", source)

    distance = text(glob, "earth_sun_distance")
    wrs = child(glob, "wrs")
    wrs_get = {} if wrs is None else wrs.attrib

    product_id = text(glob, "product_id")
    collection = None
    if product_id is not None:
        match = re.search(r"_(\d{2})_(?:T1|T2|RT)\Z", product_id)
        collection = None if match is None else f"C{int(match.group(1))}"
    lpgs = text(glob, "lpgs_metadata_file")
    stem = None if lpgs is None else re.sub(r"_MTL(\.\w+)?\Z", "", lpgs, flags=re.IGNORECASE)
    # ESPA files carry no LANDSAT_SCENE_ID: a pre-collection MTL name is one; otherwise the
    # product id stands in for it.
    if stem is not None and _PRECOLLECTION_ID_RE.match(stem):
        scene_id = stem
    else:
        scene_id = product_id or stem
    if not scene_id:
        raise MetadataError(
            f"{source}: ESPA file names neither <product_id> nor <lpgs_metadata_file>"
        )

    proj = child(glob, "projection_information")
    zone_text = text(child(proj, "utm_proj_params"), "zone_code")
    crs_epsg = (
        None
        if proj is None
        else _utm_epsg(proj.get("projection"), proj.get("datum"), zone_text, "zone_code", source)
    )
    corners: dict[str, tuple[float, float]] | None = None
    # Only a CENTER grid origin matches the pixel-centre convention of MTL corners.
    if proj is not None and (text(proj, "grid_origin") or "").upper() == "CENTER":
        corners = {
            c.get("location", "?"): (
                _number(c.get("x"), "corner_point x", source),
                _number(c.get("y"), "corner_point y", source),
            )
            for c in children(proj, "corner_point")
        } or None
    corners_latlon = {
        c.get("location", "?"): (
            _number(c.get("latitude"), "corner latitude", source),
            _number(c.get("longitude"), "corner longitude", source),
        )
        for c in children(glob, "corner")
    } or None

    values: dict[str, dict[str, Any]] = {}
    qa_files: dict[str, str] = {}
    shape = grid_cell_size = None
    for band in children(child(root, "bands"), "band"):
        name = band.get("name", "")
        product = band.get("product", "")
        file_name = text(band, "file_name")
        if band.get("category") == "qa":
            if file_name is not None:
                qa_files[name] = file_name
            continue
        sr = re.fullmatch(r"sr_band(\d+)", name)
        l1 = re.fullmatch(r"b(?:and)?(\d+)", name) if product.upper().startswith("L1") else None
        if sr is None and l1 is None:
            continue  # TOA, brightness temperature, angle and index bands
        if sr is not None:
            label = sr.group(1)
            scale = _number(band.get("scale_factor"), f"{name} scale_factor", source)
            offset = _number(band.get("add_offset"), f"{name} add_offset", source)
            entry = {"sr_file_name": file_name, "sr_mult": scale}
            # The ESPA schema defaults add_offset to 0 when a scale is given.
            entry["sr_add"] = offset if offset is not None else (0.0 if scale is not None else None)
        else:
            label = _OLD_LABELS.get(l1.group(1), l1.group(1))
            entry = {"file_name": file_name}
        values.setdefault(label, {}).update(entry)
        if shape is None and band.get("nlines") and band.get("nsamps"):
            shape = (
                _integer(band.get("nlines"), f"{name} nlines", source),
                _integer(band.get("nsamps"), f"{name} nsamps", source),
            )
        pixel = child(band, "pixel_size")
        if grid_cell_size is None and pixel is not None:
            grid_cell_size = _number(pixel.get("x"), f"{name} pixel_size x", source)

    bands = {
        label: BandMetadata(label=label, **{"file_name": None, **values[label]})
        for label in sorted(values, key=_natural)
    }
    return SceneMetadata(
        path=source,
        format="espa-xml",
        collection=collection,
        processing_level=None,
        scene_id=scene_id,
        product_id=product_id,
        sensor=sensor,
        satellite=satellite,
        platform=f"LANDSAT_{satellite}",
        acquired=dt.datetime.combine(date, time, tzinfo=dt.UTC),
        wrs_path=_integer(wrs_get.get("path"), "wrs path", source),
        wrs_row=_integer(wrs_get.get("row"), "wrs row", source),
        wrs_type=_integer(wrs_get.get("system"), "wrs system", source)
        or (1 if satellite <= 3 else 2),
        sun_elevation=sun_elevation,
        sun_azimuth=sun_azimuth,
        earth_sun_distance=_number(distance, "earth_sun_distance", source),
        bands=bands,
        qa_files=qa_files,
        crs_epsg=crs_epsg,
        corners=corners,
        corners_latlon=corners_latlon,
        grid_cell_size=grid_cell_size,
        shape=shape,
        cloud_cover=None,
        groups={_local(root.tag): _espa_value(root)},
        level1_product_id=product_id,
    )
