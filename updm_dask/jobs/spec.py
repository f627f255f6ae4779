"""Job specifications: a TOML file that says what to process into which cube.

Example::

    [job]
    name = "ethiopia"

    [inputs]
    paths = ["../data/landsat/ethiopia-167055"]   # directories, globs, .tar.gz, URLs
    stac = []                                     # STAC Item/ItemCollection JSON files
    allow_roots = []                              # other folders local files may lie in
    start = "1972-01-01"                          # optional time range (inclusive)
    end = "2024-12-31"
    sensors = ["MSS", "TM", "ETM+", "OLI", "OLI-2"]
    # sign = "my_module:sign"                     # signs remote STAC hrefs before reading

    [inputs.stac_search]                          # a STAC API search (optional)
    url = "https://stac.example.org/v1"
    collections = ["landsat-c2-l1"]
    bbox = [39.4, 8.0, 39.5, 8.1]                 # or intersects = { type = ..., ... }
    datetime = "1972-01-01/2024-12-31"
    filter = { op = "<", args = [{ property = "eo:cloud_cover" }, 20] }   # CQL2-JSON
    max_items = 500

    [cube]
    path = "ethiopia.icechunk"                    # local path or s3://bucket/prefix

    [grid]                                        # either an explicit grid ...
    crs = "EPSG:32637"
    transform = [30.0, 0.0, 589035.0, 0.0, -30.0, 756165.0]
    shape = [101, 101]
    # ... or an AOI:  aoi = [lon_min, lat_min, lon_max, lat_max]; resolution = 30
    #     (crs optional: the UTM zone of the AOI's centre when left out)
    # ... or the scenes' own extent:  from_scenes = true (crs, resolution optional)

    [science]
    patterns = "default"          # or a CSV of four spectra
    method = "boxcar"             # or "rsr"
    rules = "auto"                # or "TM", "MSS", a TOML path, or {MSS = "...", TM = "..."}
    supplementary = false         # true: also the supplementary pattern (not MSS)
    constrain_supplementary = false
    calibration = "mtl"           # or "note-1985-landsat5", "chander2009"
    rayleigh = true

    [tiles]                       # a grid larger than one tile is a tiled collection
    edge = 4096                   # default: dask config updm.tiles.edge
    # select = ["r0c1"]           # run only these tiles (one driver per tile or group)

    [batch]
    size = 8                      # default: dask config updm.job.batch-size

Every key, its type, default and meaning is one row of
:data:`~updm_dask.jobs.keys.JOB_SPEC_KEYS` (:mod:`updm_dask.jobs.keys`, which also renders
it as a JSON Schema and as the docs' table). Relative paths are taken relative to the job
file. Unknown keys and bad values are rejected with a
:class:`~updm_dask.errors.JobSpecError` naming the key; the file is parsed, never evaluated.

A grid larger than dask config ``updm.limits.grid-pixels`` is refused when the spec is read
(or, with ``from_scenes``, when the scenes are found), before a cluster starts or anything
is written.

``[inputs.stac_search]`` searches a STAC API (through pystac-client) and reads the Items it
returns like those of ``inputs.stac``: hrefs relative to an Item resolve on the API's
server, local (``file://``) hrefs must lie under ``allow_roots``. A ``query`` or ``filter``
the API does not support is refused, never silently ignored. ``[inputs] sign`` names a
``"module:function"`` that every remote asset href passes through before it is read
(:func:`~updm_dask.scenes.stac.discover_stac`, parameter ``sign``, says what it receives).

Local files are read only from the job's input roots (the folders, archives and metadata
files' folders of ``paths``, each STAC file's folder) and from ``allow_roots``: symbolic
links and STAC hrefs leading elsewhere are refused unread (see
:func:`~updm_dask.scenes.discover_scenes`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import config
from ..errors import JobSpecError, UpdmError
from ..frozen import FrozenMap, freeze
from ..geo import CubeGrid
from ..geo.grid import check_grid_pixels, lonlat_text, utm_crs_of_aoi
from ..pipeline import Science
from ..scenes import file_kind
from ..science.patterns import default_pattern_set, load_pattern_set
from ..science.sensors import SENSOR_NAMES, canonical_sensor_name
from .keys import check_keys, spec_error, value_of

__all__ = ["GridFromScenes", "JobSpec", "load_job_spec", "parse_job_spec"]


@dataclass(frozen=True)
class GridFromScenes:
    """``[grid] from_scenes = true``: the cube grid is derived from the scenes the job finds.

    Parameters
    ----------
    crs
        ``[grid] crs``; ``None``: the CRS most of the scenes are in.
    resolution
        ``[grid] resolution`` in metres; ``None``: the finest pixel size of the scenes.
    """

    crs: str | None = None
    resolution: float | None = None


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
    allow_roots
        ``[inputs] allow_roots``, relative paths made absolute: local folders files found
        through the inputs may lie in besides the inputs' own.
    grid_from_scenes
        Set by ``[grid] from_scenes = true`` (``grid`` is None then): the job derives its
        grid from its scenes (:func:`~updm_dask.jobs.placing.grid_of_scenes`).
    notes
        What the spec left to the package and what was chosen (e.g. the UTM zone of an
        AOI given without a CRS); a job prints them with its other notes.
    stac_search
        ``[inputs.stac_search]``, validated, ready for ``pystac_client.Client.search``
        (``url`` apart), or None.
    sign
        ``[inputs] sign``: the ``"module:function"`` remote STAC hrefs are signed with.
    tile_edge
        ``[tiles] edge`` in pixels, or None (dask config ``updm.tiles.edge``).
    tile_select
        ``[tiles] select``: the only tiles the job runs, or None (every tile).
    tiled
        Whether the spec has a ``[tiles]`` table (even an empty one): its grid is then held
        to the limits of a tiled job.
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
    allow_roots: tuple[str, ...] = ()
    grid_from_scenes: GridFromScenes | None = None
    notes: tuple[str, ...] = ()
    stac_search: FrozenMap | None = None
    sign: str | None = None
    tile_edge: int | None = None
    tile_select: tuple[str, ...] | None = None
    tiled: bool = False

    @property
    def rules(self) -> str | Mapping[str, Any]:
        """The ``[science] rules`` choice (``science.rules``), for callers that pass it on."""
        return self.science.rules

    @property
    def job_id(self) -> str:
        """Stable id of what the job does: its name + a hash of its content.

        The science enters through its own hash (:meth:`~updm_dask.pipeline.Science.sha256`,
        also in every commit's metadata); the batch size, ``allow_roots`` and ``sign`` do
        not (they change how, or what may be read, not what is computed).
        """
        grid = self.grid
        parts: tuple = (
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
        if self.grid_from_scenes is not None:
            # Only then: the ids of specs written before from_scenes existed stay the same.
            derived = self.grid_from_scenes
            parts += (("from_scenes", derived.crs, derived.resolution),)
        text = repr(parts)
        if self.stac_search is not None:
            # Added only when there is a search, so that the ids of other jobs stay as they were.
            text += repr(_thaw(self.stac_search))
        return f"{self.name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(value[k]) for k in sorted(value)}
    if isinstance(value, tuple | list):
        return [_thaw(v) for v in value]
    return value


_GEOMETRY_TYPES = (
    "Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
    "GeometryCollection",
)  # fmt: skip


def _datetime_part(part: str) -> bool:
    if part in ("", ".."):
        return True
    try:
        # RFC 3339 says "Z" for UTC; fromisoformat reads it from Python 3.11 on.
        dt.datetime.fromisoformat(part)
    except ValueError:
        return False
    return True


def _parse_stac_search(data: Mapping[str, Any], source: str) -> FrozenMap | None:
    """``[inputs.stac_search]`` checked key by key (types were checked by ``check_keys``)."""
    table = data.get("inputs", {}).get("stac_search")
    if table is None:
        return None
    key = "inputs.stac_search"
    url = table["url"]
    if not url.lower().startswith(("http://", "https://")):
        raise spec_error(source, f"{key}.url", "expected the http:// or https:// URL of a STAC API")
    _check_path(source, f"{key}.url", url)
    if "collections" in table and not (
        table["collections"] and all(isinstance(c, str) and c for c in table["collections"])
    ):
        raise spec_error(source, f"{key}.collections", "expected a list of collection ids")
    if "bbox" in table and "intersects" in table:
        raise spec_error(source, key, "give either bbox or intersects, not both")
    if "bbox" in table:
        bbox = table["bbox"]
        if not (
            _numbers(bbox, 4)
            and all(-180 <= bbox[i] <= 180 for i in (0, 2))
            and -90 <= bbox[1] <= bbox[3] <= 90
        ):
            raise spec_error(
                source,
                f"{key}.bbox",
                "expected [lon_min, lat_min, lon_max, lat_max] in degrees (longitudes in "
                f"-180..180, latitudes in -90..90, lat_min <= lat_max), got {bbox!r}",
            )
    if "intersects" in table:
        geometry = table["intersects"]
        kind = geometry.get("type")
        member = "geometries" if kind == "GeometryCollection" else "coordinates"
        if kind not in _GEOMETRY_TYPES or not isinstance(geometry.get(member), list):
            raise spec_error(
                source,
                f"{key}.intersects",
                "expected a GeoJSON geometry: a type (Point, Polygon, MultiPolygon ...) and "
                "its coordinates",
            )
    if "datetime" in table:
        parts = table["datetime"].split("/")
        if len(parts) > 2 or not all(_datetime_part(p) for p in parts) or parts == ["", ""]:
            raise spec_error(
                source,
                f"{key}.datetime",
                "expected an RFC 3339 date-time or interval such as "
                '"2000-01-01/2020-12-31" or "2000-01-01T00:00:00Z/..", '
                f"got {table['datetime']!r}",
            )
    if "query" in table and not all(isinstance(v, Mapping) for v in table["query"].values()):
        raise spec_error(
            source,
            f"{key}.query",
            'expected property = { operator = value } tables, e.g. { "eo:cloud_cover" = '
            "{ lt = 20 } }",
        )
    if "filter" in table and not isinstance(table["filter"].get("op"), str):
        raise spec_error(
            source, f"{key}.filter", 'expected a CQL2-JSON expression: a table with "op" and "args"'
        )
    for name in ("limit", "max_items"):
        if name in table and table[name] < 1:
            raise spec_error(
                source, f"{key}.{name}", f"expected a positive integer, got {table[name]}"
            )
    return freeze(dict(table))


def _check_sign(data: Mapping[str, Any], source: str) -> str | None:
    name = data.get("inputs", {}).get("sign")
    if name is None:
        return None
    from ..scenes.stac import load_signer

    try:
        load_signer(name)  # imported now: a typo fails before any cluster starts
    except UpdmError as exc:
        raise spec_error(source, "inputs.sign", str(exc)) from None
    return name


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
        raise spec_error(source, key, f"expected a date YYYY-MM-DD, got {value!r}") from None


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        float(value)  # TOML integers are unbounded: one of 400 digits is beyond a float
    except OverflowError:
        return False
    return True


def _numbers(value: Any, n: int) -> bool:
    return isinstance(value, list) and len(value) == n and all(_is_number(v) for v in value)


def _check_path(source: str, key: str, value: str) -> str:
    # A NUL cannot be part of a file name; refused here rather than where it is opened.
    if "\0" in value:
        raise spec_error(source, key, "a path cannot contain a NUL character (\\u0000)")
    return value


def _parse_grid(
    data: Mapping[str, Any], source: str
) -> tuple[CubeGrid | None, GridFromScenes | None, tuple[str, ...]]:
    """The ``[grid]`` table: (grid, how to derive it from the scenes, notes)."""
    grid = data.get("grid", {})
    if not grid:
        return None, None, ()
    explicit = {"transform", "shape"} & grid.keys()
    by_aoi = {"aoi", "resolution"} & grid.keys()
    from_scenes = value_of(data, "grid", "from_scenes")
    if from_scenes:
        if explicit or "aoi" in grid:
            given = ", ".join(sorted((explicit | {"aoi"}) & grid.keys()))
            raise spec_error(
                source,
                "grid.from_scenes",
                f"true derives the grid from the scenes; leave out {given} (or set it false)",
            )
        return None, _parse_from_scenes(grid, source), ()
    if explicit and by_aoi:
        raise spec_error(
            source, "grid", "give either transform + shape or aoi + resolution, not both"
        )
    notes: tuple[str, ...] = ()
    if explicit:
        if "crs" not in grid:
            raise spec_error(
                source, "grid.crs", 'is required with transform + shape (e.g. "EPSG:32637")'
            )
        transform, shape = grid.get("transform"), grid.get("shape")
        if not _numbers(transform, 6):
            raise spec_error(
                source,
                "grid.transform",
                f"expected 6 numbers [a, b, c, d, e, f], got {transform!r}",
            )
        if not (
            isinstance(shape, list)
            and len(shape) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)
        ):
            raise spec_error(
                source, "grid.shape", f"expected [ny, nx] positive integers, got {shape!r}"
            )
    elif by_aoi:
        aoi = grid.get("aoi")
        if not _numbers(aoi, 4) or aoi[0] >= aoi[2] or aoi[1] >= aoi[3]:
            raise spec_error(
                source, "grid.aoi", f"expected [xmin, ymin, xmax, ymax] with min < max, got {aoi!r}"
            )
        resolution = grid.get("resolution", 0)
        if not (_is_number(resolution) and resolution > 0):
            raise spec_error(
                source,
                "grid.resolution",
                f"expected a positive number, got {grid.get('resolution')!r}",
            )
    else:
        raise spec_error(
            source, "grid", "needs transform + shape, aoi + resolution, or from_scenes = true"
        )
    aoi_crs = value_of(data, "grid", "aoi_crs")
    tiled = _tiled(data, source)  # its own key's error, not wrapped as one of [grid]
    try:
        if explicit:
            cube_grid = CubeGrid(grid["crs"], tuple(grid["transform"]), tuple(grid["shape"]))
        else:
            crs = grid.get("crs")
            if crs is None:
                crs, (lon, lat) = utm_crs_of_aoi(grid["aoi"], aoi_crs)
                notes = (
                    f"grid: no [grid] crs given; using {crs}, the UTM zone of the AOI's centre "
                    f"({lonlat_text(lon, lat)})",
                )
            cube_grid = CubeGrid.from_aoi(grid["aoi"], grid["resolution"], crs, aoi_crs=aoi_crs)
        check_grid_pixels(cube_grid, "grid (from aoi)" if by_aoi else "grid", tile_edge=tiled)
    except UpdmError as exc:
        raise spec_error(source, "grid", str(exc)) from None
    return cube_grid, None, notes


def _parse_from_scenes(grid: Mapping[str, Any], source: str) -> GridFromScenes:
    crs = grid.get("crs")
    if crs is not None:
        try:
            CubeGrid(crs, (30.0, 0.0, 0.0, 0.0, -30.0, 0.0), (1, 1))  # projected, in metres
        except UpdmError as exc:
            raise spec_error(source, "grid.crs", str(exc)) from None
    resolution = grid.get("resolution")
    if resolution is not None and not (_is_number(resolution) and resolution > 0):
        raise spec_error(
            source, "grid.resolution", f"expected a positive number, got {resolution!r}"
        )
    return GridFromScenes(crs, None if resolution is None else float(resolution))


def _parse_science(data: Mapping[str, Any], source: str, base: Path | None) -> Science:
    patterns = _check_path(source, "science.patterns", value_of(data, "science", "patterns"))
    try:
        pattern_set = (
            default_pattern_set()
            if patterns == "default"
            else load_pattern_set(_resolve(base, patterns))
        )
    except UpdmError as exc:
        raise spec_error(source, "science.patterns", str(exc)) from None
    rules = value_of(data, "science", "rules")
    if isinstance(rules, Mapping):
        try:
            rules = {canonical_sensor_name(k): v for k, v in rules.items()}
        except Exception as exc:
            raise spec_error(source, "science.rules", str(exc)) from None
        if not all(isinstance(v, str) for v in rules.values()):
            raise spec_error(source, "science.rules", "values must be rule-table names or paths")
        for v in rules.values():
            _check_path(source, "science.rules", v)
        rules = FrozenMap(
            {k: v if v in ("TM", "MSS") else _resolve(base, v) for k, v in rules.items()}
        )
    elif rules not in ("auto", "TM", "MSS"):
        rules = _resolve(base, _check_path(source, "science.rules", rules))
    calibration = value_of(data, "science", "calibration")
    if value_of(data, "science", "supplementary") is False and value_of(
        data, "science", "constrain_supplementary"
    ):
        raise spec_error(
            source,
            "science.constrain_supplementary",
            "true constrains uC4, which exists only with supplementary = true "
            "(found supplementary = false)",
        )
    return Science(
        pattern_set=pattern_set,
        method=value_of(data, "science", "method"),
        rules=rules,
        supplementary=value_of(data, "science", "supplementary"),
        constrain_supplementary=value_of(data, "science", "constrain_supplementary"),
        calibration=None if calibration == "mtl" else calibration,
        rayleigh=value_of(data, "science", "rayleigh"),
    )


def _batch_size(data: Mapping[str, Any], source: str) -> int:
    size = value_of(data, "batch", "size")
    if size is None:
        # Without [batch] size the deployment's dask config decides.
        size = config.get("job.batch-size")
        if isinstance(size, bool) or not isinstance(size, int):
            raise spec_error(source, "batch.size", f"dask config updm.job.batch-size is {size!r}")
    if size < 1:
        raise spec_error(source, "batch.size", f"expected a positive integer, got {size}")
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
    check_keys(data, source)
    inputs = data.get("inputs", {})
    paths = value_of(data, "inputs", "paths")
    if not all(isinstance(p, str) and p for p in paths):
        raise spec_error(source, "inputs.paths", "expected a list of paths, globs or URLs")
    stac = value_of(data, "inputs", "stac")
    if not all(isinstance(p, str) and p for p in stac):
        raise spec_error(source, "inputs.stac", "expected a list of STAC file paths or URLs")
    for key, listed in (("inputs.paths", paths), ("inputs.stac", stac)):
        for p in listed:
            _check_path(source, key, p)
    stac_search = _parse_stac_search(data, source)
    if not paths and not stac and stac_search is None:
        raise spec_error(
            source,
            "inputs.paths",
            "is required (or inputs.stac) unless an [inputs.stac_search] table searches a "
            "STAC API: the job has no scenes to find",
        )
    allow_roots = value_of(data, "inputs", "allow_roots")
    if not all(isinstance(p, str) and p for p in allow_roots):
        raise spec_error(source, "inputs.allow_roots", "expected a list of local folders")
    for root in allow_roots:
        if "://" in root and not root.lower().startswith("file://"):
            raise spec_error(
                source,
                "inputs.allow_roots",
                f"{root!r} is a URL; expected local folders (remote hrefs are not confined)",
            )
    start = _date(source, "inputs.start", inputs["start"]) if "start" in inputs else None
    end = _date(source, "inputs.end", inputs["end"]) if "end" in inputs else None
    if start and end and end < start:
        raise spec_error(source, "inputs.end", f"{end} is before inputs.start {start}")
    try:
        sensors = tuple(canonical_sensor_name(s) for s in value_of(data, "inputs", "sensors"))
    except Exception as exc:
        raise spec_error(source, "inputs.sensors", str(exc)) from None
    if not sensors:
        raise spec_error(source, "inputs.sensors", "is empty; leave it out to take every sensor")

    grid, grid_from_scenes, notes = _parse_grid(data, source)
    return JobSpec(
        name=value_of(data, "job", "name"),
        inputs=tuple(_resolve(base, p) for p in paths),
        stac=tuple(_resolve(base, p) for p in stac),
        cube=_resolve(base, _check_path(source, "cube.path", data["cube"]["path"])),
        grid=grid,
        science=_parse_science(data, source, base),
        batch_size=_batch_size(data, source),
        start=start,
        end=end,
        sensors=sensors,
        source=source,
        allow_roots=tuple(
            _resolve(base, p[len("file://") :] if p.lower().startswith("file://") else p)
            for p in allow_roots
        ),
        grid_from_scenes=grid_from_scenes,
        notes=notes,
        stac_search=stac_search,
        sign=_check_sign(data, source),
        tile_edge=_tile_edge(data, source),
        tile_select=_tile_select(data, source),
        tiled="tiles" in data,
    )


def _tiled(data: Mapping[str, Any], source: str) -> int | None:
    """The tile edge of a spec with a ``[tiles]`` table (its edge, else dask config
    ``updm.tiles.edge``), None without one.

    The table is how a spec asks for a grid larger than ``updm.limits.grid-pixels``: its
    grid is then held to the limits of a tiled job (pixels of one tile, number of tiles);
    without it the whole grid's pixels are, as for a single cube.
    """
    if "tiles" not in data:  # an empty table asks for tiles of the default edge
        return None
    edge = _tile_edge(data, source)
    return int(config.get("tiles.edge")) if edge is None else edge


def _tile_edge(data: Mapping[str, Any], source: str) -> int | None:
    edge = value_of(data, "tiles", "edge")
    if edge is not None and edge < 1:
        raise spec_error(source, "tiles.edge", f"expected a positive number of pixels, got {edge}")
    return edge


def _tile_select(data: Mapping[str, Any], source: str) -> tuple[str, ...] | None:
    select = value_of(data, "tiles", "select")
    if select is None:
        return None
    # the ids tiles have: no leading zeros ("r00c1" would name no tile and run nothing)
    ident = r"r(?:0|[1-9][0-9]*)c(?:0|[1-9][0-9]*)"
    bad = [t for t in select if not isinstance(t, str) or not re.fullmatch(ident, t)]
    if bad or not select:
        raise spec_error(
            source,
            "tiles.select",
            f'expected a non-empty list of tile ids r<row>c<column> (e.g. "r0c1"), '
            f"got {', '.join(map(repr, bad)) or 'an empty list'}",
        )
    return tuple(dict.fromkeys(select))


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
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise JobSpecError(f"job file {path} does not exist") from None
    except OSError as exc:
        raise JobSpecError(f"job file {path} cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        # Never opened: reading a FIFO would wait for a writer for ever.
        raise JobSpecError(
            f"job file {path} is {file_kind(mode)}, not a regular file; refused without opening it"
        )
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
    except ValueError:  # int() of an integer longer than Python converts (4300 digits)
        raise JobSpecError(f"{path}: not valid TOML: an integer has too many digits") from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise JobSpecError(
            f"{path}: not valid TOML: arrays or inline tables nested too deeply"
        ) from None
    return parse_job_spec(data, source=str(path), base=path.resolve().parent)
