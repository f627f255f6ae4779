"""ESPA XML (``espa_metadata``, namespaced) -> :class:`~updm_dask.metadata.SceneMetadata`.

ESPA files give a solar zenith instead of an elevation, one element per band with its own
file name and scale, and no ``LANDSAT_SCENE_ID``.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from ..errors import MetadataError
from . import values
from .mtl import OLD_BAND_LABELS
from .records import BandMetadata, SceneMetadata


def local_name(tag: str) -> str:
    """An XML tag without its namespace."""
    return tag.rsplit("}", 1)[-1]


_PRECOLLECTION_ID_RE = re.compile(r"L[CEMTO]\d{14}[A-Z0-9]{3}\d{2}\Z")
_ESPA_KEY_ATTRS = ("name", "location", "num")


def _espa_value(elem: ET.Element) -> Any:
    content = (elem.text or "").strip()
    if not len(elem) and not elem.attrib:
        return values.scalar(content) if content else None
    out: dict[str, Any] = {local_name(k): values.scalar(v.strip()) for k, v in elem.attrib.items()}
    for child in elem:
        tag = local_name(child.tag)
        value = _espa_value(child)
        keyed = next((a for a in _ESPA_KEY_ATTRS if a in child.attrib), None)
        # Only into a mapping: a file that repeats a tag with and without the attribute
        # gets a list (below) instead of a crash.
        if keyed is not None and isinstance(out.get(tag, {}), dict):
            # Repeated elements told apart by an attribute (bands by name, corners by
            # location) become a mapping, so get(..., group="sr_band4") can reach them.
            out.setdefault(tag, {})[child.attrib[keyed]] = value
        elif tag in out:
            previous = out[tag]
            out[tag] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            out[tag] = value
    if content:
        out["value"] = values.scalar(content)
    return out


def scene_from_espa(
    root: ET.Element, source: str, lines: Mapping[int, int] | None = None
) -> SceneMetadata:
    """The record of a parsed ESPA document (root element ``espa_metadata``).

    ``source`` names the file in :attr:`SceneMetadata.path` and in the
    :class:`~updm_dask.errors.MetadataError` raised for a missing element or a bad value;
    ``lines`` (``{id(element): line}``) lets that message say on which line, never what the
    value is.
    """
    element_lines = lines or {}

    def line(elem: ET.Element | None) -> int | None:
        return None if elem is None else element_lines.get(id(elem))

    def child(parent: ET.Element | None, tag: str) -> ET.Element | None:
        if parent is None:
            return None
        return next((c for c in parent if local_name(c.tag) == tag), None)

    def children(parent: ET.Element | None, tag: str) -> list[ET.Element]:
        return [] if parent is None else [c for c in parent if local_name(c.tag) == tag]

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

    def at(tag: str) -> int | None:
        return line(child(glob, tag))

    satellite = values.as_satellite(
        required_text(glob, "satellite"), "satellite", source, at("satellite")
    )
    sensor = values.as_sensor(
        required_text(glob, "instrument"), "instrument", satellite, source, at("instrument")
    )
    date = values.as_acquisition_date(
        required_text(glob, "acquisition_date"), "acquisition_date", source, at("acquisition_date")
    )
    centre = text(glob, "scene_center_time")
    time = (
        dt.time(0)
        if centre is None
        else values.as_time(centre, "scene_center_time", source, at("scene_center_time"))
    )

    angles = child(glob, "solar_angles")
    if angles is None or angles.get("zenith") is None:
        raise MetadataError(f"{source}: required ESPA element <solar_angles zenith=...> is missing")
    units = angles.get("units", "degrees").strip().lower()
    if units != "degrees":
        raise MetadataError(
            f"{values.at(source, line(angles))}: solar_angles units is not degrees (expected "
            'units="degrees")'
        )
    zenith = values.as_number(angles.get("zenith"), "solar_angles zenith", source, line(angles))
    sun_elevation = values.as_sun_elevation(
        90.0 - zenith, "90 - solar_angles zenith", source, line(angles)
    )
    sun_azimuth = values.as_number(
        angles.get("azimuth"), "solar_angles azimuth", source, line(angles)
    )

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
        else values.utm_epsg(
            proj.get("projection"),
            proj.get("datum"),
            zone_text,
            "zone_code",
            source,
            line(child(child(proj, "utm_proj_params"), "zone_code")),
        )
    )

    def points(elements: list[ET.Element], what: str, first: str, second: str):
        # {location: (first, second)} of corner elements, None when there are none.
        return {
            c.get("location", "?"): (
                values.as_number(c.get(first), f"{what} {first}", source, line(c)),
                values.as_number(c.get(second), f"{what} {second}", source, line(c)),
            )
            for c in elements
        } or None

    corners: dict[str, tuple[float, float]] | None = None
    # Only a CENTER grid origin matches the pixel-centre convention of MTL corners.
    if proj is not None and (text(proj, "grid_origin") or "").upper() == "CENTER":
        corners = points(children(proj, "corner_point"), "corner_point", "x", "y")
    corners_latlon = points(children(glob, "corner"), "corner", "latitude", "longitude")

    by_band: dict[str, dict[str, Any]] = {}
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
            scale = values.as_number(
                band.get("scale_factor"), f"{name} scale_factor", source, line(band)
            )
            offset = values.as_number(
                band.get("add_offset"), f"{name} add_offset", source, line(band)
            )
            entry = {"sr_file_name": file_name, "sr_mult": scale}
            # The ESPA schema defaults add_offset to 0 when a scale is given.
            entry["sr_add"] = offset if offset is not None else (0.0 if scale is not None else None)
        else:
            label = OLD_BAND_LABELS.get(l1.group(1), l1.group(1))
            entry = {"file_name": file_name}
        by_band.setdefault(label, {}).update(entry)
        if shape is None and band.get("nlines") and band.get("nsamps"):
            shape = (
                values.as_integer(band.get("nlines"), f"{name} nlines", source, line(band)),
                values.as_integer(band.get("nsamps"), f"{name} nsamps", source, line(band)),
            )
        pixel = child(band, "pixel_size")
        if grid_cell_size is None and pixel is not None:
            grid_cell_size = values.as_number(
                pixel.get("x"), f"{name} pixel_size x", source, line(pixel)
            )

    bands = {
        label: BandMetadata(label=label, **{"file_name": None, **by_band[label]})
        for label in sorted(by_band, key=values.band_order)
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
        wrs_path=values.as_integer(wrs_get.get("path"), "wrs path", source, line(wrs)),
        wrs_row=values.as_integer(wrs_get.get("row"), "wrs row", source, line(wrs)),
        wrs_type=values.as_integer(wrs_get.get("system"), "wrs system", source, line(wrs))
        or (1 if satellite <= 3 else 2),
        sun_elevation=sun_elevation,
        sun_azimuth=sun_azimuth,
        earth_sun_distance=values.as_number(
            distance, "earth_sun_distance", source, at("earth_sun_distance")
        ),
        bands=bands,
        qa_files=qa_files,
        crs_epsg=crs_epsg,
        corners=corners,
        corners_latlon=corners_latlon,
        grid_cell_size=grid_cell_size,
        shape=shape,
        cloud_cover=None,
        groups={local_name(root.tag): _espa_value(root)},
        level1_product_id=product_id,
    )
