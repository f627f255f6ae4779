"""Small geometry helpers: lon/lat <-> cube grid, disks of pixels, great-circle distances.

Points are longitude/latitude on WGS84 (EPSG:4326) unless a CRS is given; pyproj transforms
them with ``always_xy`` (x/easting/longitude first). A point selects the pixel it lies in;
a radius selects the pixels whose CENTRE lies within that many metres of the point,
measured on the cube's projected grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..cube import CubeLike, resolve_cube
from ..errors import QueryError
from ..geo import CubeGrid
from ..geo.points import LONLAT, grid_lonlat, to_grid_xy

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

#: Mean Earth radius (IUGG), metres; used for great-circle distances.
EARTH_RADIUS_M = 6_371_008.8


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
