"""The job-spec keys: one table for the validator, the JSON Schema and the docs.

Every key of the job-spec TOML, its type, default and meaning is one row of
:data:`JOB_SPEC_KEYS`. :func:`check_keys` rejects unknown sections and keys and values of
the wrong type or outside their choices, naming the key; :func:`job_spec_schema` turns the
table into a JSON Schema and :func:`format_job_spec_keys` into the table the docs show.
The rest of the validation (paths, dates, the grid, the science) is in
:mod:`updm_dask.jobs.spec`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import JobSpecError
from ..messages import printable
from ..science.sensors import SENSOR_NAMES

__all__ = [
    "JOB_SPEC_KEYS",
    "KEYS_BY_SECTION",
    "REQUIRED_SECTIONS",
    "STAC_SEARCH_KEYS",
    "SpecKey",
    "check_keys",
    "format_job_spec_keys",
    "format_stac_search_keys",
    "job_spec_schema",
    "spec_error",
    "value_of",
]


@dataclass(frozen=True)
class SpecKey:
    """One key of the job-spec TOML.

    Parameters
    ----------
    section, key
        Where it lives: ``[section] key = ...``.
    types
        The TOML value types accepted (a date may be a TOML date or an ISO string).
    schema
        JSON Schema of the value (what :func:`job_spec_schema` shows for the key).
    default
        Its value when left out; ``None`` when leaving it out means "no limit" or "none".
    description
        What it means, for the docs.
    example
        A TOML value, for the docs.
    required
        The section, when present or required, must hold it.
    choices
        The only values accepted, when there is such a list.
    """

    section: str
    key: str
    types: tuple[type, ...]
    schema: Mapping[str, Any]
    default: Any
    description: str
    example: str
    required: bool = False
    choices: tuple[str, ...] = ()

    @property
    def type_name(self) -> str:
        """The accepted types as error messages and the docs name them (``str/date``)."""
        return "/".join(t.__name__ for t in self.types)


_STRINGS = {"type": "array", "items": {"type": "string", "minLength": 1}}
_NUMBER = {"type": "number"}
_DATE = {"type": "string", "format": "date"}
_CALIBRATIONS = ("mtl", "note-1985-landsat5", "chander2009")
_METHODS = ("boxcar", "rsr")

#: The keys of the ``[inputs.stac_search]`` table: one STAC API search (pystac-client's
#: ``Client.search`` arguments), whose Items become scenes like those of ``inputs.stac``.
STAC_SEARCH_KEYS: tuple[SpecKey, ...] = (
    SpecKey(
        "inputs.stac_search", "url", (str,), {"type": "string", "minLength": 1}, None,
        "Root URL (landing page) of the STAC API to search.",
        '"https://planetarycomputer.microsoft.com/api/stac/v1"',
        required=True,
    ),
    SpecKey(
        "inputs.stac_search", "collections", (list,), _STRINGS, None,
        "Collections searched; all of the API's when left out.",
        '["landsat-c2-l1", "landsat-c2-l2"]',
    ),
    SpecKey(
        "inputs.stac_search", "bbox", (list,),
        {"type": "array", "items": _NUMBER, "minItems": 4, "maxItems": 4}, None,
        "Items intersecting [lon_min, lat_min, lon_max, lat_max] (WGS84); not with "
        "intersects.",
        "[39.4, 8.0, 39.5, 8.1]",
    ),
    SpecKey(
        "inputs.stac_search", "intersects", (dict,),
        {"type": "object", "required": ["type"]}, None,
        "Items intersecting this GeoJSON geometry (WGS84); not with bbox.",
        '{ type = "Point", coordinates = [39.45, 8.05] }',
    ),
    SpecKey(
        "inputs.stac_search", "datetime", (str,), {"type": "string", "minLength": 1}, None,
        "Acquisition time: one instant or an RFC 3339 interval start/end, \"..\" for an "
        "open end.",
        '"2000-01-01/2020-12-31"',
    ),
    SpecKey(
        "inputs.stac_search", "query", (dict,), {"type": "object"}, None,
        "Query-extension conditions on Item properties; refused when the API does not "
        "support the extension (it would be ignored).",
        '{ "eo:cloud_cover" = { lt = 20 } }',
    ),
    SpecKey(
        "inputs.stac_search", "filter", (dict,), {"type": "object", "required": ["op"]}, None,
        "A CQL2-JSON filter on Item properties (filter extension); refused when the API "
        "does not support it (it would be ignored).",
        '{ op = "<", args = [{ property = "eo:cloud_cover" }, 20] }',
    ),
    SpecKey(
        "inputs.stac_search", "limit", (int,), {"type": "integer", "minimum": 1}, None,
        "Items per page the API is asked for; the API's own default when left out.",
        "100",
    ),
    SpecKey(
        "inputs.stac_search", "max_items", (int,), {"type": "integer", "minimum": 1}, None,
        "At most this many Items in all; every matching Item when left out.",
        "500",
    ),
)  # fmt: skip


def _table_schema(keys: tuple[SpecKey, ...]) -> dict[str, Any]:
    properties = {}
    for key in keys:
        prop = {**key.schema, "description": key.description}
        if key.default is not None:
            prop["default"] = key.default
        properties[key.key] = prop
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    required = [k.key for k in keys if k.required]
    if required:
        schema["required"] = required
    return schema


_STAC_SEARCH_SCHEMA = {
    **_table_schema(STAC_SEARCH_KEYS),
    "not": {"required": ["bbox", "intersects"]},
}

#: Every key of a job spec, section by section, in the order the docs list them.
JOB_SPEC_KEYS: tuple[SpecKey, ...] = (
    SpecKey(
        "job", "name", (str,), {"type": "string"}, "updm-job",
        "Name of the job: starts its job id, commit messages and progress bar.",
        '"ethiopia"',
    ),
    SpecKey(
        "inputs", "paths", (list,), _STRINGS, [],
        "Folders (searched recursively), globs, .tar/.tar.gz archives, metadata files or "
        "URLs (s3://, gs://, https://) to find scenes in. inputs.paths, inputs.stac or "
        "[inputs.stac_search] is required.",
        '["../data/landsat/ethiopia-167055"]',
    ),
    SpecKey(
        "inputs", "stac", (list,), _STRINGS, [],
        "STAC Item or ItemCollection JSON files (paths or URLs) describing scenes.",
        '["items.json"]',
    ),
    SpecKey(
        "inputs", "stac_search", (dict,), _STAC_SEARCH_SCHEMA, None,
        "A STAC API search, as the table [inputs.stac_search] with the keys url, "
        "collections, bbox or intersects, datetime, query and/or filter (CQL2-JSON), limit, "
        "max_items (see STAC_SEARCH_KEYS); its Items are read like those of inputs.stac.",
        '{ url = "https://earth-search.aws.element84.com/v1", collections = '
        '["landsat-c2-l2"], bbox = [39.4, 8.0, 39.5, 8.1] }',
    ),
    SpecKey(
        "inputs", "sign", (str,), {"type": "string", "pattern": "^[\\w.]+:[\\w.]+$"}, None,
        'A "module:function" called with every remote href of a STAC Item (metadata, '
        "bands, QA) before it is read, returning the href to read instead: signed URLs "
        "(e.g. Planetary Computer's SAS tokens), presigned object-store URLs. The module "
        "must be importable by the job (installed, or on PYTHONPATH).",
        '"planetary_computer:sign"',
    ),
    SpecKey(
        "inputs", "allow_roots", (list,), _STRINGS, [],
        "Local folders that files found through the inputs may also lie in. Local files "
        "(metadata, bands, archives), symbolic links followed, and local STAC hrefs must lie "
        "under a folder, archive or metadata file's folder of inputs.paths, a STAC file's "
        "own folder, or one of these; others are refused unread. Remote hrefs are not "
        "confined.",
        '["/data/landsat"]',
    ),
    SpecKey(
        "inputs", "start", (str, dt.date), _DATE, None,
        "First acquisition date kept (inclusive); no limit when left out.",
        "1972-01-01",
    ),
    SpecKey(
        "inputs", "end", (str, dt.date), _DATE, None,
        "Last acquisition date kept (inclusive); no limit when left out.",
        "2024-12-31",
    ),
    SpecKey(
        "inputs", "sensors", (list,),
        {"type": "array", "items": {"type": "string"}, "minItems": 1}, list(SENSOR_NAMES),
        "Sensors kept (aliases such as ETM or OLI_TIRS are accepted).",
        '["TM", "ETM+", "OLI"]',
    ),
    SpecKey(
        "cube", "path", (str,), {"type": "string", "minLength": 1}, None,
        "The cube: a local folder or s3://bucket/prefix.",
        '"ethiopia.icechunk"',
        required=True,
    ),
    SpecKey(
        "grid", "crs", (str,), {"type": "string"}, None,
        "Projected CRS of the cube grid (metres). Required with transform + shape. With aoi "
        "it defaults to the WGS 84 UTM zone of the AOI's centre, with from_scenes to the CRS "
        "most of the scenes are in; the job's notes say which was chosen.",
        '"EPSG:32637"',
    ),
    SpecKey(
        "grid", "transform", (list,),
        {"type": "array", "items": _NUMBER, "minItems": 6, "maxItems": 6}, None,
        "Pixel-corner affine transform [a, b, c, d, e, f] of a north-up grid; with shape.",
        "[30.0, 0.0, 589035.0, 0.0, -30.0, 756165.0]",
    ),
    SpecKey(
        "grid", "shape", (list,),
        {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2,
         "maxItems": 2},
        None,
        "Grid size [ny, nx] in pixels; with transform.",
        "[101, 101]",
    ),
    SpecKey(
        "grid", "aoi", (list,),
        {"type": "array", "items": _NUMBER, "minItems": 4, "maxItems": 4}, None,
        "Area of interest [xmin, ymin, xmax, ymax] in aoi_crs; with resolution, instead "
        "of transform + shape.",
        "[39.4, 8.0, 39.5, 8.1]",
    ),
    SpecKey(
        "grid", "resolution", (int, float), {"type": "number", "exclusiveMinimum": 0}, None,
        "Pixel size in metres of a grid given by its aoi (required there) or derived from "
        "the scenes (default there: the finest pixel size of the scenes).",
        "30",
    ),
    SpecKey(
        "grid", "aoi_crs", (str,), {"type": "string"}, "EPSG:4326",
        "CRS of aoi (lon/lat order for EPSG:4326).",
        '"EPSG:4326"',
    ),
    SpecKey(
        "grid", "from_scenes", (bool,), {"type": "boolean"}, False,
        "Derive the grid from the scenes themselves: the smallest grid covering every scene "
        "the job finds, in crs (default: the CRS most scenes are in) at resolution (default: "
        "their finest pixel size); instead of transform + shape or aoi. Used when the cube is "
        "created; the cube keeps that grid.",
        "true",
    ),
    SpecKey(
        "science", "patterns", (str,), {"type": "string"}, "default",
        '"default" (the shipped pattern set) or a CSV file of four standard spectra.',
        '"my_spectra.csv"',
    ),
    SpecKey(
        "science", "method", (str,), {"type": "string", "enum": list(_METHODS)}, "boxcar",
        "Band averaging of the patterns: boxcar (the note's eq. 14) or the sensors' RSRs.",
        '"rsr"',
        choices=_METHODS,
    ),
    SpecKey(
        "science", "rules", (str, dict),
        {"anyOf": [{"type": "string"},
                   {"type": "object", "additionalProperties": {"type": "string"}}]},
        "auto",
        '"auto" (Table 5 for TM to OLI-2, Table 8 for MSS), "TM", "MSS", a rule-table TOML '
        "file, or a table sensor -> one of those.",
        '{ MSS = "MSS", TM = "my_rules.toml" }',
    ),
    SpecKey(
        "science", "supplementary", (bool,), {"type": "boolean"}, None,
        "Decompose with the supplementary pattern as a fourth pattern (not MSS). Default: "
        "only with constrain_supplementary = true; three patterns keep MVIUPD consistent "
        "across sensors and product levels (docs/supplementary.md).",
        "true",
    ),
    SpecKey(
        "science", "constrain_supplementary", (bool,), {"type": "boolean"}, False,
        "Use the supplementary pattern with its coefficient uC4 >= 0.",
        "true",
    ),
    SpecKey(
        "science", "calibration", (str,), {"type": "string", "enum": list(_CALIBRATIONS)},
        "mtl",
        "Radiometric calibration: the scene's MTL, or a published table for every scene.",
        '"chander2009"',
        choices=_CALIBRATIONS,
    ),
    SpecKey(
        "science", "rayleigh", (bool,), {"type": "boolean"}, True,
        "Subtract the Rayleigh path reflectance from Level-1 scenes.",
        "false",
    ),
    SpecKey(
        "tiles", "edge", (int,), {"type": "integer", "minimum": 1}, None,
        "Edge (pixels) of the square tiles a grid larger than one tile is cut into: the "
        "cube is then a tiled collection (one cube per tile and a catalogue). Default: "
        "dask config updm.tiles.edge (4096). Fixed when the collection is created.",
        "4096",
    ),
    SpecKey(
        "tiles", "select", (list,),
        {"type": "array", "items": {"type": "string", "pattern": "^r[0-9]+c[0-9]+$"},
         "minItems": 1},
        None,
        "Run only these tiles (ids r<row>c<column>), e.g. one driver per tile or group of "
        "tiles; every tile the scenes touch when left out.",
        '["r0c0", "r0c1"]',
    ),
    SpecKey(
        "batch", "size", (int,), {"type": "integer", "minimum": 1}, None,
        "Scenes per batch (one graph and one commit each); default: dask config "
        "updm.job.batch-size.",
        "8",
    ),
)  # fmt: skip

#: Sections every job spec has.
REQUIRED_SECTIONS = ("inputs", "cube")


def _by_section() -> dict[str, dict[str, SpecKey]]:
    keys: dict[str, dict[str, SpecKey]] = {}
    for key in JOB_SPEC_KEYS:
        keys.setdefault(key.section, {})[key.key] = key
    return keys


#: section -> key -> SpecKey, in the table's order (the order messages list them in).
KEYS_BY_SECTION = _by_section()


def job_spec_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of the job-spec TOML, generated from :data:`JOB_SPEC_KEYS`.

    Dates are strings in the schema (TOML dates are accepted as well). The rule that a
    grid is given by transform + shape (+ crs), by aoi + resolution, or by from_scenes, and
    that inputs needs paths or stac, is stated with ``oneOf`` / ``anyOf``.

    Returns
    -------
    dict
        JSON-able; render it in the docs or validate a spec with it.
    """
    sections: dict[str, Any] = {}
    for name, keys in KEYS_BY_SECTION.items():
        properties = {}
        for key in keys.values():
            prop = {**key.schema, "description": key.description}
            if key.default is not None:
                prop["default"] = key.default
            properties[key.key] = prop
        sections[name] = {
            "type": "object",
            "properties": properties,
            "additionalProperties": False,
        }
        required = [k.key for k in keys.values() if k.required]
        if required:
            sections[name]["required"] = required
    sections["inputs"]["anyOf"] = [
        {"required": ["paths"], "properties": {"paths": {"minItems": 1}}},
        {"required": ["stac"], "properties": {"stac": {"minItems": 1}}},
        {"required": ["stac_search"]},
    ]
    by_scenes = {"required": ["from_scenes"], "properties": {"from_scenes": {"const": True}}}
    sections["grid"]["oneOf"] = [
        {
            "required": ["transform", "shape", "crs"],
            "not": {"anyOf": [*_any_of("aoi", "resolution"), by_scenes]},
        },
        {
            "required": ["aoi", "resolution"],
            "not": {"anyOf": [*_any_of("transform", "shape"), by_scenes]},
        },
        {**by_scenes, "not": {"anyOf": _any_of("transform", "shape", "aoi")}},
    ]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "updm_dask job specification",
        "description": "A TOML file that says what to process into which cube (`updm run`).",
        "type": "object",
        "properties": sections,
        "required": list(REQUIRED_SECTIONS),
        "additionalProperties": False,
    }


def _any_of(*keys: str) -> list[dict[str, Any]]:
    return [{"required": [k]} for k in keys]


def format_job_spec_keys() -> str:
    """The job-spec keys as a Markdown table (section, key, type, default, description, example).

    Returns
    -------
    str
    """
    rows = [
        "| section | key | type | default | description | example |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for k in JOB_SPEC_KEYS:
        default = "(required)" if k.required else "" if k.default is None else _toml(k.default)
        rows.append(
            f"| {k.section} | {k.key} | {k.type_name} | {default} | {k.description} | "
            f"`{k.example}` |"
        )
    return "\n".join(rows)


def format_stac_search_keys() -> str:
    """The keys of ``[inputs.stac_search]`` as a Markdown table, like :func:`format_job_spec_keys`.

    Returns
    -------
    str
    """
    rows = [
        "| key | type | required | description | example |",
        "| --- | --- | --- | --- | --- |",
    ]
    for k in STAC_SEARCH_KEYS:
        rows.append(
            f"| {k.key} | {k.type_name} | {'yes' if k.required else ''} | {k.description} | "
            f"`{k.example}` |"
        )
    return "\n".join(rows)


def _toml(value: Any) -> str:
    # The defaults are strings, booleans and lists of strings, which TOML writes as JSON does.
    return f"`{json.dumps(value)}`"


def spec_error(source: str, key: str, message: str) -> JobSpecError:
    """The error of a bad job spec: ``<file>: [<section.key>] <message>``.

    Control characters are escaped: a key from the file may hold a newline, and the
    message is printed as one line.
    """
    return JobSpecError(printable(f"{source}: [{key}] {message}"))


#: Keys whose value is a table of its own keys: (section, key) -> the sub-table's keys.
SUBTABLES: dict[tuple[str, str], tuple[SpecKey, ...]] = {
    ("inputs", "stac_search"): STAC_SEARCH_KEYS
}


def _check_table(
    body: Mapping[str, Any], keys: Mapping[str, SpecKey], section: str, source: str
) -> None:
    for key, value in body.items():
        spec = keys.get(key)
        if spec is None:
            raise spec_error(
                source, f"{section}.{key}", f"unknown key; expected one of {', '.join(keys)}"
            )
        # TOML booleans are Python ints: a number key must not take true/false.
        if not isinstance(value, spec.types) or (
            isinstance(value, bool) and bool not in spec.types
        ):
            raise spec_error(
                source, f"{section}.{key}", f"expected {spec.type_name}, got {_short(value)}"
            )
        if spec.choices and value not in spec.choices:
            *head, last = (repr(c) for c in spec.choices)
            raise spec_error(
                source,
                f"{section}.{key}",
                f"expected {', '.join(head)} or {last}, got {value!r}",
            )
        sub = SUBTABLES.get((section, key))
        if sub is not None:
            _check_table(value, {k.key: k for k in sub}, f"{section}.{key}", source)
            for spec in sub:
                if spec.required and spec.key not in value:
                    raise spec_error(
                        source, f"{spec.section}.{spec.key}", f"is required (e.g. {spec.example})"
                    )


def _short(value: Any) -> str:
    # A whole table would make a page of a message; its kind says enough.
    return "a table" if isinstance(value, Mapping) else repr(value)


def check_keys(data: Mapping[str, Any], source: str) -> None:
    """Every section and key known, every value of an accepted type, required keys there."""
    for section, body in data.items():
        if section not in KEYS_BY_SECTION:
            raise spec_error(
                source, section, f"unknown section; expected one of {', '.join(KEYS_BY_SECTION)}"
            )
        if not isinstance(body, Mapping):
            raise spec_error(source, section, "must be a table")
        _check_table(body, KEYS_BY_SECTION[section], section, source)
    for spec in JOB_SPEC_KEYS:
        present = spec.section in data or spec.section in REQUIRED_SECTIONS
        if spec.required and present and spec.key not in data.get(spec.section, {}):
            raise spec_error(
                source, f"{spec.section}.{spec.key}", f"is required (e.g. {spec.example})"
            )


def value_of(data: Mapping[str, Any], section: str, key: str) -> Any:
    """The value of ``[section] key``, or its default from :data:`JOB_SPEC_KEYS`."""
    return data.get(section, {}).get(key, KEYS_BY_SECTION[section][key].default)
