"""Geometry the embedding needs beyond :mod:`updm_dask.geo.points`: disks of pixels,
the window a point and radius select, great-circle distances.

A point selects the pixel it lies in (:func:`updm_dask.geo.points.locate_point`); a radius
selects the pixels whose CENTRE lies within that many metres of the point, measured on the
cube's projected grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import QueryError
from ..geo import CubeGrid
from ..geo.points import PixelLocation

__all__ = [
    "EARTH_RADIUS_M",
    "Window",
    "chord_to_m",
    "disk_footprint",
    "great_circle_m",
    "lonlat_to_unit",
    "point_window",
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

    ``rows``/``cols`` slice the window; ``mask`` (window shape) marks the selected pixels.
    """

    rows: slice
    cols: slice
    mask: np.ndarray


def point_window(grid: CubeGrid, point: PixelLocation, radius_m: float = 0.0) -> Window:
    """Pixels of ``grid`` selected by a located point and ``radius_m``.

    Raises
    ------
    QueryError
        The radius is negative or not finite.
    """
    if not np.isfinite(radius_m) or radius_m < 0:
        raise QueryError(f"radius: expected a non-negative number of metres, got {radius_m!r}")
    t = grid.transform
    res = grid.resolution
    x, y, row, col = point.query_x, point.query_y, point.row, point.col
    r = int(np.ceil(radius_m / res)) + 1
    r0, r1 = max(row - r, 0), min(row + r + 1, grid.ny)
    c0, c1 = max(col - r, 0), min(col + r + 1, grid.nx)
    cy = t.f - res * (np.arange(r0, r1) + 0.5)
    cx = t.c + res * (np.arange(c0, c1) + 0.5)
    d2 = (cy[:, None] - y) ** 2 + (cx[None, :] - x) ** 2
    mask = d2 <= radius_m**2 + 1e-6
    mask[row - r0, col - c0] = True  # the pixel the point lies in always counts
    return Window(slice(r0, r1), slice(c0, c1), mask)


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
