"""Small geometry helpers: lon/lat <-> cube grid, disks of pixels, great-circle distances.

Points are longitude/latitude on WGS84 (EPSG:4326) unless a CRS is given; pyproj transforms
them with ``always_xy`` (x/easting/longitude first). A point selects the pixel it lies in;
a radius selects the pixels whose CENTRE lies within that many metres of the point,
measured on the cube's projected grid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyproj

from ..cube import Cube, open_cube
from ..errors import QueryError
from ..grid import CubeGrid

__all__ = [
    "EARTH_RADIUS_M",
    "LONLAT",
    "CubeLike",
    "Window",
    "disk_footprint",
    "great_circle_m",
    "grid_lonlat",
    "lonlat_to_unit",
    "point_window",
    "resolve_cube",
    "to_grid_xy",
]

CubeLike = Cube | str | os.PathLike
LONLAT = "EPSG:4326"
#: Mean Earth radius (IUGG), metres; used for great-circle distances.
EARTH_RADIUS_M = 6_371_008.8


def resolve_cube(cube: CubeLike) -> Cube:
    """An open cube, or the cube at a location (path or ``s3://``)."""
    if isinstance(cube, Cube):
        return cube
    if isinstance(cube, str | os.PathLike):
        return open_cube(cube)
    raise QueryError(f"cube: expected a Cube or a cube location, got {type(cube).__name__}")


def _transformer(src: Any, dst: Any) -> pyproj.Transformer:
    try:
        return pyproj.Transformer.from_crs(src, dst, always_xy=True)
    except pyproj.exceptions.CRSError as exc:
        raise QueryError(f"crs: cannot transform from {src!r} to {dst!r} ({exc})") from None


def check_lonlat(lon: Any, lat: Any) -> tuple[np.ndarray, np.ndarray]:
    """Float arrays of longitudes/latitudes; QueryError when not finite or out of range."""
    try:
        lo = np.asarray(lon, dtype=np.float64)
        la = np.asarray(lat, dtype=np.float64)
    except (TypeError, ValueError):
        raise QueryError(f"lon/lat: expected numbers, got {lon!r}, {lat!r}") from None
    if lo.shape != la.shape:
        raise QueryError(f"lon/lat: shapes differ ({lo.shape} vs {la.shape})")
    if not (np.isfinite(lo).all() and np.isfinite(la).all()):
        raise QueryError("lon/lat: values must be finite numbers")
    if (np.abs(la) > 90).any():
        raise QueryError(f"lat: must lie in [-90, 90], got {la[np.abs(la) > 90].ravel()[:3]}")
    if (np.abs(lo) > 360).any():
        raise QueryError(f"lon: must lie in [-360, 360], got {lo[np.abs(lo) > 360].ravel()[:3]}")
    return lo, la


def to_grid_xy(grid: CubeGrid, x: Any, y: Any, crs: Any = LONLAT) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates in ``crs`` (default lon/lat) -> the grid's projected x, y (metres)."""
    if crs == LONLAT or str(crs).upper() in ("EPSG:4326", "WGS84", "OGC:CRS84"):
        x, y = check_lonlat(x, y)
    tr = _transformer(crs, grid.pyproj_crs)
    gx, gy = tr.transform(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return np.asarray(gx, dtype=np.float64), np.asarray(gy, dtype=np.float64)


def grid_lonlat(grid: CubeGrid, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """The grid's projected x, y -> longitude, latitude."""
    tr = _transformer(grid.pyproj_crs, LONLAT)
    lon, lat = tr.transform(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def disk_footprint(radius_m: float, resolution: float) -> np.ndarray:
    """Boolean (2r+1, 2r+1) disk: offsets whose pixel centre lies within ``radius_m``.

    The centre pixel always belongs to it (radius 0 is the pixel itself).
    """
    r = int(np.floor(radius_m / resolution + 1e-9))
    off = np.arange(-r, r + 1, dtype=np.float64) * resolution
    return (off[:, None] ** 2 + off[None, :] ** 2) <= radius_m**2 + 1e-6


@dataclass(frozen=True)
class Window:
    """The pixels a point (and radius) selects in a grid.

    ``rows``/``cols`` slice the window; ``mask`` (window shape) marks the selected pixels;
    ``x``/``y`` is the point in the grid's CRS; ``row``/``col`` the pixel it lies in.
    """

    rows: slice
    cols: slice
    mask: np.ndarray
    x: float
    y: float
    row: int
    col: int


def point_window(
    grid: CubeGrid, x: float, y: float, radius_m: float = 0.0, *, what: str = "point"
) -> Window:
    """Pixels of ``grid`` selected by the point ``(x, y)`` (grid CRS) and ``radius_m``.

    Raises
    ------
    QueryError
        The point lies outside the grid, or the radius is negative / not finite.
    """
    if not np.isfinite(radius_m) or radius_m < 0:
        raise QueryError(f"radius: expected a non-negative number of metres, got {radius_m!r}")
    t = grid.transform
    res = grid.resolution
    col = int(np.floor((x - t.c) / res))
    row = int(np.floor((t.f - y) / res))
    if not (0 <= row < grid.ny and 0 <= col < grid.nx):
        xmin, ymin, xmax, ymax = grid.bounds
        raise QueryError(
            f"{what} at ({x:.1f}, {y:.1f}) in {grid.crs} lies outside the cube grid "
            f"(bounds {xmin:.1f}, {ymin:.1f}, {xmax:.1f}, {ymax:.1f})"
        )
    r = int(np.ceil(radius_m / res)) + 1
    r0, r1 = max(row - r, 0), min(row + r + 1, grid.ny)
    c0, c1 = max(col - r, 0), min(col + r + 1, grid.nx)
    cy = t.f - res * (np.arange(r0, r1) + 0.5)
    cx = t.c + res * (np.arange(c0, c1) + 0.5)
    d2 = (cy[:, None] - y) ** 2 + (cx[None, :] - x) ** 2
    mask = d2 <= radius_m**2 + 1e-6
    mask[row - r0, col - c0] = True  # the pixel the point lies in always counts
    return Window(slice(r0, r1), slice(c0, c1), mask, float(x), float(y), row, col)


def lonlat_to_unit(lon: Any, lat: Any) -> np.ndarray:
    """Unit vectors (n, 3) on the sphere for longitudes/latitudes in degrees."""
    lo = np.radians(np.asarray(lon, dtype=np.float64))
    la = np.radians(np.asarray(lat, dtype=np.float64))
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)


def chord_to_m(chord: np.ndarray) -> np.ndarray:
    """Straight-line distance between unit vectors -> great-circle distance in metres."""
    return 2.0 * np.arcsin(np.clip(np.asarray(chord) / 2.0, 0.0, 1.0)) * EARTH_RADIUS_M


def great_circle_m(lon1: Any, lat1: Any, lon2: Any, lat2: Any) -> np.ndarray:
    """Great-circle distance (metres, spherical Earth) between points in degrees."""
    a = lonlat_to_unit(lon1, lat1)
    b = lonlat_to_unit(lon2, lat2)
    return chord_to_m(np.linalg.norm(a - b, axis=-1))
