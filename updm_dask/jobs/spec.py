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

Relative paths are taken relative to the job file. Unknown keys and bad values are
rejected with a :class:`~updm_dask.errors.JobSpecError` naming the key; the file is
parsed, never evaluated.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.config

from .. import config as _config  # noqa: F401  (registers the updm.* defaults)
from ..errors import JobSpecError
from ..science.sensors import SENSOR_NAMES, canonical_sensor_name

__all__ = ["JobSpec", "load_job_spec", "parse_job_spec"]

_ALLOWED: dict[str, dict[str, type | tuple[type, ...]]] = {
    "job": {"name": str},
    "inputs": {
        "paths": list,
        "stac": list,
        "start": (str, dt.date),
        "end": (str, dt.date),
        "sensors": list,
    },
    "cube": {"path": str},
    "grid": {
        "crs": str,
        "transform": list,
        "shape": list,
        "aoi": list,
        "resolution": (int, float),
        "aoi_crs": str,
    },
    "science": {
        "patterns": str,
        "method": str,
        "rules": (str, dict),
        "constrain_supplementary": bool,
        "calibration": str,
        "rayleigh": bool,
    },
    "batch": {"size": int},
}
_REQUIRED = {"inputs": (), "cube": ("path",)}


@dataclass(frozen=True)
class JobSpec:
    """A validated job specification (see the module docstring for the file format)."""

    name: str
    inputs: tuple[str, ...]
    stac: tuple[str, ...]
    cube: str
    grid: Mapping[str, Any] | None
    start: dt.date | None = None
    end: dt.date | None = None
    sensors: tuple[str, ...] = SENSOR_NAMES
    patterns: str = "default"
    method: str = "boxcar"
    rules: str | Mapping[str, str] = "auto"
    constrain_supplementary: bool = False
    calibration: str | None = None
    rayleigh: bool = True
    batch_size: int = 8
    source: str = "<memory>"
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def job_id(self) -> str:
        """Stable id of what the job does (its name + a hash of its normalised content)."""
        text = repr(
            (
                self.name,
                self.inputs,
                self.stac,
                self.cube,
                sorted((self.grid or {}).items()),
                self.start,
                self.end,
                self.sensors,
                self.patterns,
                self.method,
                sorted(self.rules.items()) if isinstance(self.rules, Mapping) else self.rules,
                self.constrain_supplementary,
                self.calibration,
                self.rayleigh,
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
    """
    for section, body in data.items():
        if section not in _ALLOWED:
            raise _fail(source, section, f"unknown section; expected one of {', '.join(_ALLOWED)}")
        if not isinstance(body, Mapping):
            raise _fail(source, section, "must be a table")
        for key, value in body.items():
            if key not in _ALLOWED[section]:
                raise _fail(
                    source,
                    f"{section}.{key}",
                    f"unknown key; expected one of {', '.join(_ALLOWED[section])}",
                )
            expected = _ALLOWED[section][key]
            if not isinstance(value, expected) or (
                expected in (int, (int, float)) and isinstance(value, bool)
            ):
                names = (
                    expected.__name__
                    if isinstance(expected, type)
                    else "/".join(t.__name__ for t in expected)
                )
                raise _fail(source, f"{section}.{key}", f"expected {names}, got {value!r}")
    for section, keys in _REQUIRED.items():
        for key in keys:
            if key not in data.get(section, {}):
                raise _fail(source, f"{section}.{key}", "is required")

    inputs = data.get("inputs", {})
    paths = inputs.get("paths", [])
    if not all(isinstance(p, str) and p for p in paths):
        raise _fail(source, "inputs.paths", "expected a list of paths, globs or URLs")
    stac = inputs.get("stac", [])
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
    sensors = SENSOR_NAMES
    if "sensors" in inputs:
        try:
            sensors = tuple(canonical_sensor_name(s) for s in inputs["sensors"])
        except Exception as exc:
            raise _fail(source, "inputs.sensors", str(exc)) from None
        if not sensors:
            raise _fail(source, "inputs.sensors", "is empty; leave it out to take every sensor")

    grid = dict(data.get("grid", {}))
    if grid:
        explicit = {"transform", "shape"} & grid.keys()
        by_aoi = {"aoi", "resolution"} & grid.keys()
        if explicit and by_aoi:
            raise _fail(
                source, "grid", "give either transform + shape or aoi + resolution, not both"
            )
        if "crs" not in grid:
            raise _fail(source, "grid.crs", "is required (e.g. 'EPSG:32637')")
        if explicit:
            transform, shape = grid.get("transform"), grid.get("shape")
            if not (
                isinstance(transform, list)
                and len(transform) == 6
                and all(isinstance(v, int | float) and not isinstance(v, bool) for v in transform)
            ):
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
                raise _fail(
                    source, "grid.shape", f"expected [ny, nx] positive integers, got {shape!r}"
                )
        elif by_aoi:
            aoi = grid.get("aoi")
            if (
                not (
                    isinstance(aoi, list)
                    and len(aoi) == 4
                    and all(isinstance(v, int | float) and not isinstance(v, bool) for v in aoi)
                )
                or aoi[0] >= aoi[2]
                or aoi[1] >= aoi[3]
            ):
                raise _fail(
                    source,
                    "grid.aoi",
                    f"expected [xmin, ymin, xmax, ymax] with min < max, got {aoi!r}",
                )
            if not grid.get("resolution", 0) > 0:
                raise _fail(
                    source,
                    "grid.resolution",
                    f"expected a positive number, got {grid.get('resolution')!r}",
                )
        else:
            raise _fail(source, "grid", "needs transform + shape, or aoi + resolution")

    science = data.get("science", {})
    method = science.get("method", "boxcar")
    if method not in ("boxcar", "rsr"):
        raise _fail(source, "science.method", f"expected 'boxcar' or 'rsr', got {method!r}")
    calibration = science.get("calibration", "mtl")
    if calibration not in ("mtl", "note-1985-landsat5", "chander2009"):
        raise _fail(
            source,
            "science.calibration",
            f"expected 'mtl', 'note-1985-landsat5' or 'chander2009', got {calibration!r}",
        )
    patterns = science.get("patterns", "default")
    if patterns != "default":
        patterns = _resolve(base, patterns)
    rules = science.get("rules", "auto")
    if isinstance(rules, Mapping):
        try:
            rules = {canonical_sensor_name(k): v for k, v in rules.items()}
        except Exception as exc:
            raise _fail(source, "science.rules", str(exc)) from None
        if not all(isinstance(v, str) for v in rules.values()):
            raise _fail(source, "science.rules", "values must be rule-table names or paths")
        rules = {k: v if v in ("TM", "MSS") else _resolve(base, v) for k, v in rules.items()}
    elif rules not in ("auto", "TM", "MSS"):
        rules = _resolve(base, rules)
    # Without [batch] size the deployment's dask config decides (updm.job.batch-size).
    batch_size = data.get("batch", {}).get("size")
    if batch_size is None:
        batch_size = dask.config.get("updm.job.batch-size", 8)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int):
            raise _fail(source, "batch.size", f"dask config updm.job.batch-size is {batch_size!r}")
    if batch_size < 1:
        raise _fail(source, "batch.size", f"expected a positive integer, got {batch_size}")

    return JobSpec(
        name=data.get("job", {}).get("name", "updm-job"),
        inputs=tuple(_resolve(base, p) for p in paths),
        stac=tuple(_resolve(base, p) for p in stac),
        cube=_resolve(base, data["cube"]["path"]),
        grid=grid or None,
        start=start,
        end=end,
        sensors=sensors,
        patterns=patterns,
        method=method,
        rules=rules,
        constrain_supplementary=science.get("constrain_supplementary", False),
        calibration=None if calibration == "mtl" else calibration,
        rayleigh=science.get("rayleigh", True),
        batch_size=batch_size,
        source=source,
        raw=dict(data),
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
