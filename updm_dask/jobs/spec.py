"""Job specifications: a TOML file that says what to process into which cube.

Example::

    [job]
    name = "ethiopia"

    [inputs]
    paths = ["../data/landsat/ethiopia-167055"]   # directories, globs, .tar.gz, URLs
    stac = []                                     # STAC Item/ItemCollection JSON files
    start = "1972-01-01"                          # optional time range (inclusive)
    end = "2024-12-31"
    sensors = ["MSS", "TM", "ETM+", "OLI", "OLI-2"]

    [cube]
    path = "ethiopia.icechunk"                    # local path or s3://bucket/prefix

    [grid]                                        # either an explicit grid ...
    crs = "EPSG:32637"
    transform = [30.0, 0.0, 589035.0, 0.0, -30.0, 756165.0]
    shape = [101, 101]
    # ... or an AOI:  aoi = [lon_min, lat_min, lon_max, lat_max]; resolution = 30; crs = ...

    [science]
    patterns = "default"          # or a CSV of four spectra
    method = "boxcar"             # or "rsr"
    rules = "auto"                # or "TM", "MSS", a TOML path, or {MSS = "...", TM = "..."}
    constrain_supplementary = false
    calibration = "mtl"           # or "note-1985-landsat5", "chander2009"
    rayleigh = true

    [batch]
    size = 8                      # default: dask config updm.job.batch-size

Every key, its type, default and meaning is one row of :data:`JOB_SPEC_KEYS`: the validator
checks keys and types against it, :func:`job_spec_schema` turns it into a JSON Schema and
:func:`format_job_spec_keys` into the table the docs show. Relative paths are taken
relative to the job file. Unknown keys and bad values are rejected with a
:class:`~updm_dask.errors.JobSpecError` naming the key; the file is parsed, never evaluated.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import config
from ..errors import JobSpecError, UpdmError
from ..frozen import FrozenMap
from ..geo import CubeGrid
from ..pipeline import Science
from ..science.patterns import default_pattern_set, load_pattern_set
from ..science.sensors import SENSOR_NAMES, canonical_sensor_name

__all__ = [
    "JOB_SPEC_KEYS",
    "JobSpec",
    "SpecKey",
    "format_job_spec_keys",
    "job_spec_schema",
    "load_job_spec",
    "parse_job_spec",
]


# --------------------------------------------------------------------------------------
# The keys: one table for the validator, the JSON Schema and the docs


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
        "URLs (s3://, gs://, https://) to find scenes in. inputs.paths or inputs.stac is "
        "required.",
        '["../data/landsat/ethiopia-167055"]',
    ),
    SpecKey(
        "inputs", "stac", (list,), _STRINGS, [],
        "STAC Item or ItemCollection JSON files (paths or URLs) describing scenes.",
        '["items.json"]',
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
        "Projected CRS of the cube grid (metres). Needed when the cube does not exist yet.",
        '"EPSG:32637"',
        required=True,
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
        "Pixel size in metres of a grid given by its aoi.",
        "30",
    ),
    SpecKey(
        "grid", "aoi_crs", (str,), {"type": "string"}, "EPSG:4326",
        "CRS of aoi (lon/lat order for EPSG:4326).",
        '"EPSG:4326"',
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
        "science", "constrain_supplementary", (bool,), {"type": "boolean"}, False,
        "Constrain the supplementary coefficient uC4 >= 0 too.",
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
        "batch", "size", (int,), {"type": "integer", "minimum": 1}, None,
        "Scenes per batch (one graph and one commit each); default: dask config "
        "updm.job.batch-size.",
        "8",
    ),
)  # fmt: skip

#: Sections every job spec has.
_REQUIRED_SECTIONS = ("inputs", "cube")


def _by_section() -> dict[str, dict[str, SpecKey]]:
    keys: dict[str, dict[str, SpecKey]] = {}
    for key in JOB_SPEC_KEYS:
        keys.setdefault(key.section, {})[key.key] = key
    return keys


#: section -> key -> SpecKey, in the table's order (the order messages list them in).
_KEYS = _by_section()


def job_spec_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of the job-spec TOML, generated from :data:`JOB_SPEC_KEYS`.

    Dates are strings in the schema (TOML dates are accepted as well). The rule that a
    grid is given either by transform + shape or by aoi + resolution, and that inputs
    needs paths or stac, is stated with ``oneOf`` / ``anyOf``.

    Returns
    -------
    dict
        JSON-able; render it in the docs or validate a spec with it.
    """
    sections: dict[str, Any] = {}
    for name, keys in _KEYS.items():
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
    ]
    sections["grid"]["oneOf"] = [
        {"required": ["transform", "shape"], "not": {"anyOf": _any_of("aoi", "resolution")}},
        {"required": ["aoi", "resolution"], "not": {"anyOf": _any_of("transform", "shape")}},
    ]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "updm_dask job specification",
        "description": "A TOML file that says what to process into which cube (`updm run`).",
        "type": "object",
        "properties": sections,
        "required": list(_REQUIRED_SECTIONS),
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


def _toml(value: Any) -> str:
    # The defaults are strings, booleans and lists of strings, which TOML writes as JSON does.
    return f"`{json.dumps(value)}`"


# --------------------------------------------------------------------------------------
# The parsed spec


@dataclass(frozen=True)
class JobSpec:
    """A validated job specification (see the module docstring for the file format).

    Parameters
    ----------
    name
        ``[job] name``.
    inputs, stac
        ``[inputs] paths`` and ``stac``, relative paths made absolute.
    cube
        ``[cube] path``, a relative path made absolute.
    grid
        The cube grid of ``[grid]`` (an AOI is turned into its grid), or None when the spec
        has no ``[grid]`` (the cube must exist then).
    science
        The ``[science]`` choices: pattern set (loaded), band averaging, rule tables (names
        or paths, loaded when the job starts), calibration, Rayleigh correction.
    batch_size
        ``[batch] size``, else dask config ``updm.job.batch-size``.
    start, end
        ``[inputs] start`` and ``end``.
    sensors
        ``[inputs] sensors``, canonical names.
    source
        Name of the file (for messages).
    """

    name: str
    inputs: tuple[str, ...]
    stac: tuple[str, ...]
    cube: str
    grid: CubeGrid | None
    science: Science = field(default_factory=Science)
    batch_size: int = field(default_factory=lambda: config.get("job.batch-size"))
    start: dt.date | None = None
    end: dt.date | None = None
    sensors: tuple[str, ...] = SENSOR_NAMES
    source: str = "<memory>"

    @property
    def rules(self) -> str | Mapping[str, Any]:
        """The ``[science] rules`` choice (``science.rules``), for callers that pass it on."""
        return self.science.rules

    @property
    def job_id(self) -> str:
        """Stable id of what the job does: its name + a hash of its content.

        The science enters through its own hash (:meth:`~updm_dask.pipeline.Science.sha256`,
        also in every commit's metadata); the batch size does not (it changes how, not what).
        """
        grid = self.grid
        text = repr(
            (
                self.name,
                self.inputs,
                self.stac,
                self.cube,
                None if grid is None else (grid.crs, tuple(grid.transform)[:6], grid.shape),
                self.start,
                self.end,
                self.sensors,
                self.science.sha256(),
            )
        )
        return f"{self.name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def _fail(source: str, key: str, message: str) -> JobSpecError:
    return JobSpecError(f"{source}: [{key}] {message}")


def _resolve(base: Path | None, value: str) -> str:
    if "://" in value or value.startswith("/vsi") or base is None:
        return value
    path = Path(os.path.expanduser(value))
    return str(path if path.is_absolute() else (base / path))


def _date(source: str, key: str, value) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise _fail(source, key, f"expected a date YYYY-MM-DD, got {value!r}") from None


def _numbers(value: Any, n: int) -> bool:
    return (
        isinstance(value, list)
        and len(value) == n
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    )


def _check_table(data: Mapping[str, Any], source: str) -> None:
    """Every section and key known, every value of an accepted type, required keys there."""
    for section, body in data.items():
        if section not in _KEYS:
            raise _fail(source, section, f"unknown section; expected one of {', '.join(_KEYS)}")
        if not isinstance(body, Mapping):
            raise _fail(source, section, "must be a table")
        for key, value in body.items():
            spec = _KEYS[section].get(key)
            if spec is None:
                raise _fail(
                    source,
                    f"{section}.{key}",
                    f"unknown key; expected one of {', '.join(_KEYS[section])}",
                )
            # TOML booleans are Python ints: a number key must not take true/false.
            if not isinstance(value, spec.types) or (
                isinstance(value, bool) and bool not in spec.types
            ):
                raise _fail(source, f"{section}.{key}", f"expected {spec.type_name}, got {value!r}")
            if spec.choices and value not in spec.choices:
                *head, last = (repr(c) for c in spec.choices)
                raise _fail(
                    source,
                    f"{section}.{key}",
                    f"expected {', '.join(head)} or {last}, got {value!r}",
                )
    for spec in JOB_SPEC_KEYS:
        present = spec.section in data or spec.section in _REQUIRED_SECTIONS
        if spec.required and present and spec.key not in data.get(spec.section, {}):
            raise _fail(source, f"{spec.section}.{spec.key}", f"is required (e.g. {spec.example})")


def _value(data: Mapping[str, Any], section: str, key: str) -> Any:
    """The value of ``[section] key``, or its default from :data:`JOB_SPEC_KEYS`."""
    return data.get(section, {}).get(key, _KEYS[section][key].default)


def _parse_grid(data: Mapping[str, Any], source: str) -> CubeGrid | None:
    grid = data.get("grid", {})
    if not grid:
        return None
    explicit = {"transform", "shape"} & grid.keys()
    by_aoi = {"aoi", "resolution"} & grid.keys()
    if explicit and by_aoi:
        raise _fail(source, "grid", "give either transform + shape or aoi + resolution, not both")
    if explicit:
        transform, shape = grid.get("transform"), grid.get("shape")
        if not _numbers(transform, 6):
            raise _fail(
                source,
                "grid.transform",
                f"expected 6 numbers [a, b, c, d, e, f], got {transform!r}",
            )
        if not (
            isinstance(shape, list)
            and len(shape) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)
        ):
            raise _fail(source, "grid.shape", f"expected [ny, nx] positive integers, got {shape!r}")
    elif by_aoi:
        aoi = grid.get("aoi")
        if not _numbers(aoi, 4) or aoi[0] >= aoi[2] or aoi[1] >= aoi[3]:
            raise _fail(
                source, "grid.aoi", f"expected [xmin, ymin, xmax, ymax] with min < max, got {aoi!r}"
            )
        if not grid.get("resolution", 0) > 0:
            raise _fail(
                source,
                "grid.resolution",
                f"expected a positive number, got {grid.get('resolution')!r}",
            )
    else:
        raise _fail(source, "grid", "needs transform + shape, or aoi + resolution")
    try:
        if explicit:
            return CubeGrid(grid["crs"], tuple(grid["transform"]), tuple(grid["shape"]))
        return CubeGrid.from_aoi(
            grid["aoi"], grid["resolution"], grid["crs"], aoi_crs=_value(data, "grid", "aoi_crs")
        )
    except UpdmError as exc:
        raise _fail(source, "grid", str(exc)) from None


def _parse_science(data: Mapping[str, Any], source: str, base: Path | None) -> Science:
    patterns = _value(data, "science", "patterns")
    try:
        pattern_set = (
            default_pattern_set()
            if patterns == "default"
            else load_pattern_set(_resolve(base, patterns))
        )
    except UpdmError as exc:
        raise _fail(source, "science.patterns", str(exc)) from None
    rules = _value(data, "science", "rules")
    if isinstance(rules, Mapping):
        try:
            rules = {canonical_sensor_name(k): v for k, v in rules.items()}
        except Exception as exc:
            raise _fail(source, "science.rules", str(exc)) from None
        if not all(isinstance(v, str) for v in rules.values()):
            raise _fail(source, "science.rules", "values must be rule-table names or paths")
        rules = FrozenMap(
            {k: v if v in ("TM", "MSS") else _resolve(base, v) for k, v in rules.items()}
        )
    elif rules not in ("auto", "TM", "MSS"):
        rules = _resolve(base, rules)
    calibration = _value(data, "science", "calibration")
    return Science(
        pattern_set=pattern_set,
        method=_value(data, "science", "method"),
        rules=rules,
        constrain_supplementary=_value(data, "science", "constrain_supplementary"),
        calibration=None if calibration == "mtl" else calibration,
        rayleigh=_value(data, "science", "rayleigh"),
    )


def _batch_size(data: Mapping[str, Any], source: str) -> int:
    size = _value(data, "batch", "size")
    if size is None:
        # Without [batch] size the deployment's dask config decides.
        size = config.get("job.batch-size")
        if isinstance(size, bool) or not isinstance(size, int):
            raise _fail(source, "batch.size", f"dask config updm.job.batch-size is {size!r}")
    if size < 1:
        raise _fail(source, "batch.size", f"expected a positive integer, got {size}")
    return size


def parse_job_spec(
    data: Mapping[str, Any], *, source: str = "<memory>", base: Path | None = None
) -> JobSpec:
    """Validate a job specification already parsed from TOML.

    Parameters
    ----------
    data
        The TOML document as nested mappings.
    source
        Name of the file (for messages).
    base
        Folder that relative paths are taken from.

    Returns
    -------
    JobSpec

    Raises
    ------
    JobSpecError
        An unknown section or key, a value of the wrong type or out of range, a missing
        required key, a grid that cannot be built, a pattern set that cannot be read;
        the message names the key (``job.toml: [grid.shape] expected ...``).
    """
    _check_table(data, source)
    inputs = data.get("inputs", {})
    paths = _value(data, "inputs", "paths")
    if not all(isinstance(p, str) and p for p in paths):
        raise _fail(source, "inputs.paths", "expected a list of paths, globs or URLs")
    stac = _value(data, "inputs", "stac")
    if not all(isinstance(p, str) and p for p in stac):
        raise _fail(source, "inputs.stac", "expected a list of STAC file paths or URLs")
    if not paths and not stac:
        raise _fail(
            source, "inputs.paths", "is required (or inputs.stac): the job has no scenes to find"
        )
    start = _date(source, "inputs.start", inputs["start"]) if "start" in inputs else None
    end = _date(source, "inputs.end", inputs["end"]) if "end" in inputs else None
    if start and end and end < start:
        raise _fail(source, "inputs.end", f"{end} is before inputs.start {start}")
    try:
        sensors = tuple(canonical_sensor_name(s) for s in _value(data, "inputs", "sensors"))
    except Exception as exc:
        raise _fail(source, "inputs.sensors", str(exc)) from None
    if not sensors:
        raise _fail(source, "inputs.sensors", "is empty; leave it out to take every sensor")

    return JobSpec(
        name=_value(data, "job", "name"),
        inputs=tuple(_resolve(base, p) for p in paths),
        stac=tuple(_resolve(base, p) for p in stac),
        cube=_resolve(base, data["cube"]["path"]),
        grid=_parse_grid(data, source),
        science=_parse_science(data, source, base),
        batch_size=_batch_size(data, source),
        start=start,
        end=end,
        sensors=sensors,
        source=source,
    )


def load_job_spec(path: str | os.PathLike) -> JobSpec:
    """Read and validate a job specification TOML file.

    Parameters
    ----------
    path
        The TOML file.

    Returns
    -------
    JobSpec

    Raises
    ------
    JobSpecError
        The file does not exist, cannot be read, is not TOML, or is not a valid job spec.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise JobSpecError(f"job file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise JobSpecError(f"job file {path} cannot be read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise JobSpecError(f"{path}: not valid TOML: {exc}") from None
    return parse_job_spec(data, source=str(path), base=path.resolve().parent)
