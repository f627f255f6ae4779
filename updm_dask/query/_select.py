"""What a query reads: which cube commit, which pixel, which area, which years, which variables.

Everything here is cheap (metadata and coordinates only); no pixel of the cube is read.

Coordinates
-----------
Points and areas are given either in longitude/latitude (WGS84, the GeoJSON convention and
the default) or in any CRS pyproj knows, typically the cube's own projected CRS. They are
transformed with pyproj (``always_xy``: x/easting/longitude first). A pixel is selected
when the point lies inside it; an area selects the pixels whose CENTRE lies inside it
(rasterio's rule without ``all_touched``), so adjacent areas never share a pixel.

Areas are reported in hectares as pixel count x pixel size squared in the cube's projected
CRS. For a UTM grid that is the area on the map projection, which differs from the area on
the ellipsoid by the square of the scale factor (at most about 0.1 % within a UTM zone).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import xarray as xr
from affine import Affine

from ..cube import SCENE_VARIABLES, YEARLY_VARIABLES, Cube, CubeLike, resolve_cube
from ..errors import QueryError
from ..geo import CubeGrid
from ..geo.points import LONLAT, PixelLocation, check_lonlat, locate_point, parse_crs

__all__ = [
    "AreaSelection",
    "CubeLike",
    "PixelLocation",
    "TimeRange",
    "locate_point",
    "read_geojson",
    "resolve_cube",
    "select_area",
    "time_range",
]


# Points inserted along each polygon edge before reprojecting it, so that a long straight
# edge in lon/lat becomes the curve it is on the map.
_DENSIFY = 16
M2_PER_HA = 10_000.0


# --------------------------------------------------------------------------------------
# Which cube, which commit
# --------------------------------------------------------------------------------------


def open_dataset(cube: Cube) -> xr.Dataset:
    """The cube as a lazy dask-backed Dataset, with the snapshot read in ``attrs``.

    ``attrs["updm_snapshot"]`` is the snapshot actually read (a branch view reads its tip
    once, here), recorded with every answer for provenance.
    """
    session = cube.session()
    ds = xr.open_zarr(session.store, consolidated=False, zarr_format=3, chunks={})
    if "spatial_ref" in ds.data_vars:
        ds = ds.set_coords("spatial_ref")
    ds.attrs["updm_snapshot"] = session.snapshot_id
    return ds


# --------------------------------------------------------------------------------------
# Variables
# --------------------------------------------------------------------------------------


def check_variables(
    variables: Iterable[str] | str | None, allowed: Sequence[str], what: str
) -> list[str]:
    """Validate a list of variable names (default: all of ``allowed``)."""
    if variables is None:
        return list(allowed)
    if isinstance(variables, str):
        variables = [v for v in variables.replace(",", " ").split() if v]
    out = []
    for v in variables:
        if v not in allowed:
            raise QueryError(
                f"unknown {what} variable {v!r}; expected some of {', '.join(allowed)}"
            )
        if v not in out:
            out.append(v)
    if not out:
        raise QueryError(f"variables: expected at least one {what} variable")
    return out


SCENE_VARIABLE_NAMES: tuple[str, ...] = tuple(SCENE_VARIABLES)
YEARLY_VARIABLE_NAMES: tuple[str, ...] = tuple(YEARLY_VARIABLES)


def str_values(values: Any) -> np.ndarray:
    """A string coordinate's values as a fixed-width numpy str array.

    The cube stores strings with numpy's variable-width StringDType, which numpy cannot cast
    to ``str`` directly.
    """
    return np.asarray([str(v) for v in np.asarray(values).tolist()], dtype=str)


def require_yearly(group_or_ds: Any, location: str) -> None:
    """QueryError unless the cube has per-year layers."""
    if "year" not in group_or_ds:
        raise QueryError(
            f"cube {location!r} has no per-year layers yet; build them with "
            "Cube.rebuild_yearly() (`updm run` does so after every job)"
        )


# --------------------------------------------------------------------------------------
# Time ranges
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeRange:
    """An inclusive time range; ``None`` ends are open.

    ``start``/``end`` are datetime64[us]; a year given as an integer means the whole year.
    """

    start: np.datetime64 | None
    end: np.datetime64 | None

    @property
    def first_year(self) -> int | None:
        """Calendar year of ``start``."""
        return None if self.start is None else _year_of(self.start)

    @property
    def last_year(self) -> int | None:
        """Calendar year of ``end``."""
        return None if self.end is None else _year_of(self.end)

    def contains_years(self, years: np.ndarray) -> np.ndarray:
        """Boolean mask of the integer ``years`` inside the range (by calendar year)."""
        years = np.asarray(years, dtype=np.int64)
        keep = np.ones(years.shape, dtype=bool)
        if self.first_year is not None:
            keep &= years >= self.first_year
        if self.last_year is not None:
            keep &= years <= self.last_year
        return keep

    def contains_times(self, times: np.ndarray) -> np.ndarray:
        """Boolean mask of the datetime64 ``times`` inside the range."""
        t = np.asarray(times).astype("datetime64[us]")
        keep = np.ones(t.shape, dtype=bool)
        if self.start is not None:
            keep &= t >= self.start
        if self.end is not None:
            keep &= t <= self.end
        return keep

    def describe(self) -> str:
        """``"1975-01-01 to 1980-12-31"``-style text."""
        a = "the beginning" if self.start is None else str(self.start.astype("datetime64[D]"))
        b = "the end" if self.end is None else str(self.end.astype("datetime64[D]"))
        return f"{a} to {b}"


def _year_of(t: np.datetime64) -> int:
    return int(t.astype("datetime64[Y]").astype(np.int64)) + 1970


def _as_time(value: Any, name: str, *, end: bool) -> np.datetime64 | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise QueryError(f"{name}: expected a year or an ISO date, got {value!r}")
    if isinstance(value, int | np.integer) or (isinstance(value, str) and value.isdigit()):
        year = int(value)
        if not 1 <= year <= 9999:
            raise QueryError(f"{name}: year {year} is out of range")
        if end:
            return np.datetime64(f"{year + 1:04d}-01-01", "us") - np.timedelta64(1, "us")
        return np.datetime64(f"{year:04d}-01-01", "us")
    try:
        t = np.datetime64(value)
    except (ValueError, TypeError):
        raise QueryError(
            f"{name}: {value!r} is neither a year nor an ISO date (e.g. 1990 or 1990-06-01)"
        ) from None
    if end and t.dtype in (np.dtype("datetime64[D]"), np.dtype("datetime64[M]")):
        # a date as end means the whole of that day (or month)
        unit = np.datetime_data(t.dtype)[0]
        return (t + np.timedelta64(1, unit)).astype("datetime64[us]") - np.timedelta64(1, "us")
    return t.astype("datetime64[us]")


def time_range(start: Any = None, end: Any = None) -> TimeRange:
    """An inclusive :class:`TimeRange` from years (``1990``) or ISO dates (``"1990-06-01"``).

    Raises
    ------
    QueryError
        Unparsable values, or ``start`` after ``end``.
    """
    a = _as_time(start, "start", end=False)
    b = _as_time(end, "end", end=True)
    if a is not None and b is not None and a > b:
        raise QueryError(f"empty time range: start {start!r} is after end {end!r}")
    return TimeRange(a, b)


def select_years(available: np.ndarray, when: TimeRange, location: str) -> np.ndarray:
    """Indices of the per-year layers inside ``when`` (QueryError when there is none)."""
    years = np.asarray(available, dtype=np.int64)
    idx = np.flatnonzero(when.contains_years(years))
    if idx.size == 0:
        have = f"{years.min()}-{years.max()}" if years.size else "none"
        raise QueryError(
            f"empty time range: cube {location!r} has no per-year layer from "
            f"{when.describe()} (it has years {have})"
        )
    return idx


# --------------------------------------------------------------------------------------
# Points
# --------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------
# Areas
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class AreaSelection:
    """The pixels of an area: a window of the grid and a mask inside it.

    Attributes
    ----------
    rows, cols : slice
        The window (smallest one holding every selected pixel).
    mask : numpy.ndarray of bool
        Shape of the window; True for the selected pixels.
    grid : CubeGrid
    description : str
        What was asked for (for reports).
    """

    rows: slice
    cols: slice
    mask: np.ndarray
    grid: CubeGrid
    description: str

    @property
    def n_pixels(self) -> int:
        """Number of selected pixels."""
        return int(self.mask.sum())

    @property
    def pixel_area_ha(self) -> float:
        """Area of one pixel in hectares (on the map projection)."""
        return self.grid.resolution**2 / M2_PER_HA

    @property
    def area_ha(self) -> float:
        """Area of the selection in hectares."""
        return self.n_pixels * self.pixel_area_ha

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of the window."""
        return self.mask.shape

    def full_mask(self) -> np.ndarray:
        """The selection as a boolean mask of the whole grid."""
        out = np.zeros(self.grid.shape, dtype=bool)
        out[self.rows, self.cols] = self.mask
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description."""
        return {
            "description": self.description,
            "rows": [self.rows.start, self.rows.stop],
            "cols": [self.cols.start, self.cols.stop],
            "n_pixels": self.n_pixels,
            "area_ha": self.area_ha,
            "pixel_area_ha": self.pixel_area_ha,
            "crs": self.grid.crs,
        }


def whole_grid(grid: CubeGrid) -> AreaSelection:
    """Every pixel of the grid."""
    return AreaSelection(
        slice(0, grid.ny),
        slice(0, grid.nx),
        np.ones(grid.shape, dtype=bool),
        grid,
        "the whole cube",
    )


def read_geojson(geojson: Any) -> dict[str, Any]:
    """A GeoJSON object from a dict, a JSON string or a file path.

    Raises
    ------
    QueryError
        Unreadable file or invalid JSON.
    """
    if isinstance(geojson, Mapping):
        return dict(geojson)
    if isinstance(geojson, str) and geojson.lstrip().startswith("{"):
        try:
            return json.loads(geojson)
        except json.JSONDecodeError as exc:
            raise QueryError(f"geojson: not valid JSON: {exc}") from None
    if isinstance(geojson, str | os.PathLike):
        path = Path(geojson)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise QueryError(f"geojson: cannot read {str(path)!r}: {exc}") from None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise QueryError(f"geojson: {str(path)!r} is not valid JSON: {exc}") from None
    raise QueryError(
        f"geojson: expected a GeoJSON dict, JSON text or a file path, got {type(geojson).__name__}"
    )


def geojson_crs(obj: Mapping[str, Any]) -> str | None:
    """The legacy (2008 GeoJSON) ``crs`` member's name, if any."""
    crs = obj.get("crs")
    if isinstance(crs, Mapping):
        props = crs.get("properties")
        if isinstance(props, Mapping) and isinstance(props.get("name"), str):
            return props["name"]
    return None


def geojson_features(obj: Mapping[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``(geometry, properties)`` of every feature of a Geometry/Feature/FeatureCollection."""
    kind = obj.get("type")
    if kind == "FeatureCollection":
        feats = obj.get("features")
        if not isinstance(feats, list):
            raise QueryError("geojson: a FeatureCollection needs a 'features' array")
        out = []
        for i, f in enumerate(feats):
            if not isinstance(f, Mapping) or f.get("type") != "Feature":
                raise QueryError(f"geojson: features[{i}] is not a Feature")
            out.extend(geojson_features(f))
        return out
    if kind == "Feature":
        geom = obj.get("geometry")
        if not isinstance(geom, Mapping):
            raise QueryError("geojson: a Feature without a geometry")
        props = obj.get("properties") or {}
        return [(dict(geom), dict(props))]
    if kind in ("Polygon", "MultiPolygon", "Point", "MultiPoint", "GeometryCollection"):
        if kind == "GeometryCollection":
            return [(dict(g), {}) for g in obj.get("geometries", [])]
        return [(dict(obj), {})]
    raise QueryError(
        f"geojson: unsupported type {kind!r}; expected a Polygon, MultiPolygon, Point, "
        "MultiPoint, Feature or FeatureCollection"
    )


def _densify(ring: np.ndarray, n: int) -> np.ndarray:
    if len(ring) < 2:
        return ring
    a, b = ring[:-1], ring[1:]
    f = np.linspace(0.0, 1.0, n, endpoint=False)
    pts = a[:, None, :] + (b - a)[:, None, :] * f[None, :, None]
    return np.concatenate([pts.reshape(-1, 2), ring[-1:]], axis=0)


def _polygons(geom: Mapping[str, Any], what: str) -> list[list[np.ndarray]]:
    kind = geom.get("type")
    coords = geom.get("coordinates")
    if kind not in ("Polygon", "MultiPolygon"):
        raise QueryError(f"{what}: geometry type {kind!r} is not an area (Polygon expected)")
    try:
        polys = [coords] if kind == "Polygon" else list(coords)
        out = []
        for poly in polys:
            rings = [np.asarray(r, dtype=np.float64)[:, :2] for r in poly]
            out.append(rings)
    except (TypeError, ValueError, IndexError):
        raise QueryError(f"{what}: malformed {kind} coordinates") from None
    if any(not rings or any(r.ndim != 2 or len(r) < 4 for r in rings) for rings in out):
        raise QueryError(f"{what}: a polygon ring needs at least 4 positions")
    return out


def project_polygons(
    polygons: list[list[np.ndarray]], src: pyproj.CRS, grid: CubeGrid, what: str
) -> list[dict[str, Any]]:
    """Polygons (lists of rings) in ``src`` -> GeoJSON geometries in the cube's CRS."""
    allx = np.concatenate([r[:, 0] for p in polygons for r in p])
    ally = np.concatenate([r[:, 1] for p in polygons for r in p])
    if not (np.isfinite(allx).all() and np.isfinite(ally).all()):
        raise QueryError(f"{what}: coordinates must be finite numbers")
    if src.is_geographic:
        check_lonlat(allx, ally, grid=grid, what=what)
    same = src == grid.pyproj_crs
    tr = None if same else pyproj.Transformer.from_crs(src, grid.pyproj_crs, always_xy=True)
    out = []
    for rings in polygons:
        projected = []
        for ring in rings:
            if tr is not None:
                ring = _densify(ring, _DENSIFY)
                xs, ys = tr.transform(ring[:, 0], ring[:, 1])
                ring = np.column_stack([xs, ys])
                if not np.isfinite(ring).all():
                    raise QueryError(f"{what}: has no image in the cube's CRS {grid.crs}")
            projected.append(ring.tolist())
        out.append({"type": "Polygon", "coordinates": projected})
    return out


def mask_polygons(geoms: list[dict[str, Any]], grid: CubeGrid, what: str) -> AreaSelection:
    """Rasterise polygons already in the cube's CRS onto the grid (pixel-centre rule)."""
    from rasterio.features import geometry_mask

    xs = np.concatenate([np.asarray(r)[:, 0] for g in geoms for r in g["coordinates"]])
    ys = np.concatenate([np.asarray(r)[:, 1] for g in geoms for r in g["coordinates"]])
    b = grid.bounds
    t = grid.transform
    if xs.max() <= b[0] or xs.min() >= b[2] or ys.max() <= b[1] or ys.min() >= b[3]:
        raise QueryError(
            f"{what} (x {xs.min():.1f}..{xs.max():.1f}, y {ys.min():.1f}..{ys.max():.1f} in "
            f"{grid.crs}) does not overlap the cube grid (x {b[0]:g}..{b[2]:g}, "
            f"y {b[1]:g}..{b[3]:g}); is its CRS right?"
        )
    c0 = max(0, math.floor((xs.min() - t.c) / t.a))
    c1 = min(grid.nx, math.ceil((xs.max() - t.c) / t.a))
    r0 = max(0, math.floor((ys.max() - t.f) / t.e))
    r1 = min(grid.ny, math.ceil((ys.min() - t.f) / t.e))
    window_transform = t @ Affine.translation(c0, r0)
    mask = geometry_mask(
        geoms,
        out_shape=(r1 - r0, c1 - c0),
        transform=window_transform,
        invert=True,
        all_touched=False,
    )
    if not mask.any():
        raise QueryError(
            f"{what} holds no pixel centre of the cube grid (pixels are {grid.resolution:g} m); "
            "draw a larger area"
        )
    # shrink the window to the selected pixels
    rr = np.flatnonzero(mask.any(axis=1))
    cc = np.flatnonzero(mask.any(axis=0))
    mask = mask[rr[0] : rr[-1] + 1, cc[0] : cc[-1] + 1]
    return AreaSelection(
        slice(r0 + int(rr[0]), r0 + int(rr[-1]) + 1),
        slice(c0 + int(cc[0]), c0 + int(cc[-1]) + 1),
        np.ascontiguousarray(mask),
        grid,
        what,
    )


def select_area(
    grid: CubeGrid,
    *,
    bbox: Sequence[float] | None = None,
    geojson: Any = None,
    crs: Any = None,
) -> AreaSelection:
    """The pixels of a bounding box or GeoJSON (multi)polygon; the whole grid by default.

    Parameters
    ----------
    grid : CubeGrid
    bbox : (minx, miny, maxx, maxy), optional
        In ``crs`` (default lon/lat WGS84).
    geojson : dict, str or path, optional
        A Polygon/MultiPolygon geometry, Feature or FeatureCollection (their union), as a
        dict, JSON text or file. Coordinates are lon/lat (RFC 7946) unless ``crs`` or the
        legacy ``crs`` member says otherwise.
    crs : str, optional
        CRS of ``bbox`` or ``geojson`` coordinates (e.g. the cube's ``"EPSG:32637"``).

    Returns
    -------
    AreaSelection
        Pixels whose centre lies inside the area.

    Raises
    ------
    QueryError
        Both ``bbox`` and ``geojson``; a malformed box or geometry; coordinates that cannot
        be lon/lat when the CRS is geographic; an area that misses the grid or holds no
        pixel centre.
    """
    if bbox is not None and geojson is not None:
        raise QueryError("area: give a bbox or a GeoJSON polygon, not both")
    if bbox is None and geojson is None:
        if crs is not None:
            raise QueryError("area: crs given without a bbox or GeoJSON polygon")
        return whole_grid(grid)
    if bbox is not None:
        try:
            b = [float(v) for v in bbox]
        except (TypeError, ValueError):
            raise QueryError(
                f"bbox: expected four numbers (minx, miny, maxx, maxy), got {bbox!r}"
            ) from None
        if len(b) != 4 or not all(math.isfinite(v) for v in b):
            raise QueryError(
                f"bbox: expected four finite numbers (minx, miny, maxx, maxy), got {bbox!r}"
            )
        if not (b[0] < b[2] and b[1] < b[3]):
            raise QueryError(f"bbox: empty box, expected minx < maxx and miny < maxy, got {bbox!r}")
        src = parse_crs(crs if crs is not None else LONLAT, "crs")
        ring = np.array(
            [[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]], [b[0], b[1]]], dtype=float
        )
        what = f"bbox ({b[0]:g}, {b[1]:g}, {b[2]:g}, {b[3]:g}) in {src.name}"
        geoms = project_polygons([[ring]], src, grid, what)
        return mask_polygons(geoms, grid, what)
    obj = read_geojson(geojson)
    src_name = crs if crs is not None else (geojson_crs(obj) or LONLAT)
    src = parse_crs(src_name, "crs")
    polygons = []
    for geom, _props in geojson_features(obj):
        polygons.extend(_polygons(geom, "geojson"))
    if not polygons:
        raise QueryError("geojson: no polygon in it")
    label = (
        f"{geojson}" if isinstance(geojson, str | os.PathLike) and len(str(geojson)) < 200 else ""
    )
    what = f"GeoJSON polygon{'s' if len(polygons) > 1 else ''}" + (
        f" {label}" if label and not str(label).lstrip().startswith("{") else ""
    )
    what += f" in {src.name}"
    geoms = project_polygons(polygons, src, grid, what)
    return mask_polygons(geoms, grid, what)


def area_of(grid: CubeGrid, area: AreaSelection | None, **kwargs: Any) -> AreaSelection:
    """``area`` if given (checked against ``grid``), else :func:`select_area` of kwargs."""
    if area is not None:
        if any(v is not None for v in kwargs.values()):
            raise QueryError("area: give an AreaSelection or bbox/geojson, not both")
        if not isinstance(area, AreaSelection):
            raise QueryError(f"area: expected an AreaSelection, got {type(area).__name__}")
        if area.grid != grid:
            raise QueryError("area: the selection was made on another grid than this cube's")
        return area
    return select_area(grid, **kwargs)
