"""Areas of queries: a bounding box, GeoJSON polygons, a disc around a point, or a mask.

Everything here is cheap (the grid and the geometry only); no pixel of the cube is read.

Coordinates
-----------
Areas are given either in longitude/latitude (WGS84, the GeoJSON convention and the
default) or in any CRS pyproj knows, typically the cube's own projected CRS. They are
transformed with pyproj (``always_xy``: x/easting/longitude first); points go through
:mod:`updm_dask.geo.points`. An area selects the pixels whose CENTRE lies inside it
(rasterio's rule without ``all_touched``), so adjacent areas never share a pixel.

Areas are reported in hectares as pixel count x pixel size squared in the cube's projected
CRS. For a UTM grid that is the area on the map projection, which differs from the area on
the ellipsoid by the square of the scale factor (at most about 0.1 % within a UTM zone).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pyproj
import xarray as xr
from affine import Affine

from ..errors import QueryError
from ..geo import CubeGrid
from ..geo.points import (
    LONLAT,
    PixelLocation,
    check_lonlat,
    describe_extent,
    disc_window,
    locate_point,
    parse_crs,
)

__all__ = [
    "AreaSelection",
    "feature_mask",
    "geojson_crs",
    "geojson_features",
    "point_area",
    "read_geojson",
    "select_area",
    "whole_grid",
]

# Points inserted along each polygon edge before reprojecting it, so that a long straight
# edge in lon/lat becomes the curve it is on the map.
_DENSIFY = 16
M2_PER_HA = 10_000.0


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

    def clip(self, data: Any, fill: Any) -> Any:
        """``data`` over the window with the pixels outside the area set to ``fill``.

        ``data`` is an xarray DataArray with dims ``(..., y, x)`` or a dask array whose last
        two axes are the window; the result stays lazy and keeps ``data``'s dtype.
        """
        if self.mask.all():
            return data
        if isinstance(data, xr.DataArray):
            keep = xr.DataArray(self.mask, dims=("y", "x"))
            return data.where(keep, fill).astype(data.dtype)
        keep = da.from_array(self.mask, chunks=data.chunks[-2:], name=False)
        return da.where(keep, data, np.asarray(fill, dtype=data.dtype))

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


def geojson_crs(obj: Mapping[str, Any], crs: Any = None) -> pyproj.CRS:
    """The CRS of a GeoJSON object's coordinates.

    ``crs`` when given, else the object's legacy (2008 GeoJSON) ``crs`` member, else lon/lat
    (RFC 7946).
    """
    if crs is None:
        member = obj.get("crs")
        props = member.get("properties") if isinstance(member, Mapping) else None
        name = props.get("name") if isinstance(props, Mapping) else None
        crs = name if isinstance(name, str) else LONLAT
    return parse_crs(crs, "crs")


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


def geojson_polygons(geom: Mapping[str, Any], what: str) -> list[list[np.ndarray]]:
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
            f"{grid.crs}) does not overlap the cube grid ({describe_extent(grid)}); "
            "is its CRS right?"
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
    src = geojson_crs(obj, crs)
    polygons = []
    for geom, _props in geojson_features(obj):
        polygons.extend(geojson_polygons(geom, "geojson"))
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


def point_area(grid: CubeGrid, location: PixelLocation, radius: float | None) -> AreaSelection:
    """The pixel holding a point, or with ``radius`` (metres) the disc of pixels around it.

    The disc holds the pixels whose centre lies within ``radius`` of the point, and always
    the pixel holding it (see :func:`updm_dask.geo.points.disc_window`).
    """
    if radius is None:
        rows = slice(location.row, location.row + 1)
        cols = slice(location.col, location.col + 1)
        mask = np.ones((1, 1), dtype=bool)
        what = f"the pixel at row {location.row}, col {location.col}"
    else:
        rows, cols, mask = disc_window(grid, location, radius)
        what = (
            f"the pixels within {float(radius):g} m of ({location.query_x:.1f}, "
            f"{location.query_y:.1f}) in {grid.crs}"
        )
    return AreaSelection(rows, cols, mask, grid, what)


def feature_mask(geom: Mapping[str, Any], src: pyproj.CRS, grid: CubeGrid, what: str) -> np.ndarray:
    """Boolean grid mask of one GeoJSON geometry: the pixels holding its points, or the
    pixels whose centre lies inside its polygons.

    Raises
    ------
    QueryError
        A geometry that is neither points nor polygons, malformed coordinates, or points
        and polygons off the grid.
    """
    kind = geom.get("type")
    if kind in ("Point", "MultiPoint"):
        mask = np.zeros(grid.shape, dtype=bool)
        coords = geom.get("coordinates")
        points = [coords] if kind == "Point" else list(coords or [])
        for p in points:
            try:
                px, py = float(p[0]), float(p[1])
            except (TypeError, ValueError, IndexError):
                raise QueryError(f"{what}: malformed point coordinates {p!r}") from None
            if src.is_geographic:
                loc = locate_point(grid, lon=px, lat=py)
            else:
                loc = locate_point(grid, x=px, y=py, crs=src)
            mask[loc.row, loc.col] = True
        return mask
    if kind in ("Polygon", "MultiPolygon"):
        geoms = project_polygons(geojson_polygons(geom, what), src, grid, what)
        return mask_polygons(geoms, grid, what).full_mask()
    raise QueryError(f"{what}: geometry type {kind!r}; expected points or polygons")
