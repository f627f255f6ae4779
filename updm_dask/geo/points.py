"""Points on the cube grid: lon/lat <-> the grid's CRS, and the pixel holding a point.

Points are longitude/latitude on WGS84 (:data:`LONLAT`, the GeoJSON convention and the
default) or coordinates in any CRS pyproj knows, typically the cube's own projected CRS.
They are transformed with pyproj ``always_xy`` (x/easting/longitude first). A point selects
the pixel it lies in (row 0 is the north edge); a point and a radius select the pixels whose
CENTRE lies within that many metres of the point on the grid, and always the pixel holding it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyproj

from ..errors import PointError
from .grid import CubeGrid

__all__ = [
    "LONLAT",
    "PixelLocation",
    "check_lonlat",
    "describe_extent",
    "disc_window",
    "format_lat",
    "format_lon",
    "format_lonlat",
    "grid_lonlat",
    "locate_point",
    "lonlat_bounds",
    "lonlat_of",
    "parse_crs",
    "to_grid_xy",
]

#: The CRS of GeoJSON (RFC 7946) and of lon/lat arguments.
LONLAT = "EPSG:4326"


def parse_crs(crs: Any, what: str = "crs") -> pyproj.CRS:
    """A pyproj CRS from anything pyproj accepts; :class:`PointError` naming ``what``."""
    try:
        return pyproj.CRS.from_user_input(crs)
    except (pyproj.exceptions.CRSError, TypeError, ValueError):
        raise PointError(f"{what}: unknown CRS {crs!r} (expected e.g. 'EPSG:4326')") from None


def check_lonlat(
    lon: Any, lat: Any, *, grid: CubeGrid | None = None, what: str = "lon/lat"
) -> tuple[np.ndarray, np.ndarray]:
    """Float arrays of longitudes and latitudes, checked.

    Longitudes must lie in [-180, 180] and latitudes in [-90, 90] (RFC 7946); numbers
    outside are almost always projected coordinates given as lon/lat, and the message says
    how to pass them in the cube's CRS instead.

    Raises
    ------
    PointError
        Not numbers, shapes that differ, values not finite or out of range.
    """
    try:
        lo = np.asarray(lon, dtype=np.float64)
        la = np.asarray(lat, dtype=np.float64)
    except (TypeError, ValueError):
        raise PointError(f"{what}: expected numbers, got {lon!r}, {lat!r}") from None
    if lo.shape != la.shape:
        raise PointError(f"{what}: shapes differ ({lo.shape} vs {la.shape})")
    if not (np.isfinite(lo).all() and np.isfinite(la).all()):
        raise PointError(f"{what}: expected finite numbers")
    bad = ~((np.abs(lo) <= 180) & (np.abs(la) <= 90))
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        hint = f"; if they are in the cube's CRS, say so (crs={grid.crs!r})" if grid else ""
        raise PointError(
            f"{what}: coordinates ({lo.ravel()[i]:g}, {la.ravel()[i]:g}) cannot be "
            f"longitude/latitude in WGS 84 (|lon| <= 180, |lat| <= 90){hint}"
        )
    return lo, la


def format_lat(lat: float, digits: int = 5) -> str:
    """A latitude as degrees with its hemisphere: ``-20.14`` -> ``"20.14000° S"``."""
    lat = float(lat)
    return f"{abs(lat):.{digits}f}° {'S' if lat < 0 else 'N'}"


def format_lon(lon: float, digits: int = 5) -> str:
    """A longitude as degrees with its hemisphere: ``-44.15`` -> ``"44.15000° W"``."""
    lon = float(lon)
    return f"{abs(lon):.{digits}f}° {'W' if lon < 0 else 'E'}"


def format_lonlat(lon: float, lat: float, digits: int = 5) -> str:
    """A point as ``"20.14000° S, 44.15000° W"`` (latitude first, as maps write it).

    The one formatter of geographic points in the package's text: signed numbers with a
    hemisphere letter would read as the opposite hemisphere.
    """
    return f"{format_lat(lat, digits)}, {format_lon(lon, digits)}"


def _transformer(src: Any, dst: Any) -> pyproj.Transformer:
    try:
        return pyproj.Transformer.from_crs(src, dst, always_xy=True)
    except pyproj.exceptions.CRSError as exc:
        raise PointError(f"crs: cannot transform from {src!r} to {dst!r} ({exc})") from None


def to_grid_xy(grid: CubeGrid, x: Any, y: Any, crs: Any = LONLAT) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates in ``crs`` (default lon/lat) -> the grid's projected x, y (metres)."""
    src = parse_crs(crs)
    if src.is_geographic:
        x, y = check_lonlat(x, y, grid=grid)
    gx, gy = _transformer(src, grid.pyproj_crs).transform(
        np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    )
    return np.asarray(gx, dtype=np.float64), np.asarray(gy, dtype=np.float64)


def grid_lonlat(grid: CubeGrid, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """The grid's projected x, y -> longitude, latitude (WGS84 degrees)."""
    lon, lat = _transformer(grid.pyproj_crs, LONLAT).transform(
        np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    )
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def lonlat_of(x: Any, y: Any, crs: Any) -> tuple[float, float]:
    """A point given in ``crs`` -> its longitude, latitude (WGS84 degrees).

    Raises
    ------
    PointError
        Unknown CRS, coordinates that are not finite numbers or have no image in lon/lat.
    """
    src = parse_crs(crs, "crs")
    try:
        px, py = float(x), float(y)
    except (TypeError, ValueError):
        raise PointError(f"point: expected numbers, got {x!r}, {y!r}") from None
    if src.is_geographic:
        check_lonlat(px, py, what=f"point ({px:g}, {py:g}) in {src.name}")
    lon, lat = _transformer(src, LONLAT).transform(px, py)
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise PointError(f"point ({px:g}, {py:g}) in {src.name} has no longitude/latitude")
    return float(lon), float(lat)


def lonlat_bounds(grid: CubeGrid) -> tuple[float, float, float, float]:
    """The grid's extent in longitude/latitude: (west, south, east, north), WGS84 degrees.

    The edges are densified before they are transformed, so the box holds the whole grid
    even where a projected edge is curved in lon/lat.
    """
    b = grid.bounds
    west, south, east, north = _transformer(grid.pyproj_crs, LONLAT).transform_bounds(
        b[0], b[1], b[2], b[3], densify_pts=21
    )
    return float(west), float(south), float(east), float(north)


def describe_extent(grid: CubeGrid) -> str:
    """The grid's extent in its CRS and in lon/lat, for messages about points or areas
    outside it: ``"x 588780..589080, y 7772640..7772880 in EPSG:32723; lon 44.15277° W..
    44.14988° W, lat 20.14221° S..20.14005° S"``."""
    b = grid.bounds
    w, s, e, n = lonlat_bounds(grid)
    return (
        f"x {b[0]:.10g}..{b[2]:.10g}, y {b[1]:.10g}..{b[3]:.10g} in {grid.crs}; "
        f"lon {format_lon(w)}..{format_lon(e)}, lat {format_lat(s)}..{format_lat(n)}"
    )


@dataclass(frozen=True)
class PixelLocation:
    """The cube pixel holding a point.

    Attributes
    ----------
    row, col : int
        Pixel indices in the grid (row 0 = north edge).
    x, y : float
        Centre of that pixel in the cube's CRS (metres).
    lon, lat : float
        The point asked for, in WGS84 degrees.
    query_x, query_y : float
        The point asked for, in the cube's CRS.
    crs : str
        The cube's CRS.
    """

    row: int
    col: int
    x: float
    y: float
    lon: float
    lat: float
    query_x: float
    query_y: float
    crs: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description."""
        return {
            "row": self.row,
            "col": self.col,
            "x": self.x,
            "y": self.y,
            "lon": self.lon,
            "lat": self.lat,
            "crs": self.crs,
        }


def locate_point(
    grid: CubeGrid,
    *,
    lon: float | None = None,
    lat: float | None = None,
    x: float | None = None,
    y: float | None = None,
    crs: Any = None,
) -> PixelLocation:
    """Find the grid pixel holding a point given by lon/lat or by x/y.

    Parameters
    ----------
    grid : CubeGrid
    lon, lat : float, optional
        WGS84 degrees.
    x, y : float, optional
        Coordinates in ``crs`` (default: the cube's CRS).
    crs : str, optional
        CRS of ``x``/``y``.

    Returns
    -------
    PixelLocation

    Raises
    ------
    PointError
        Neither or both of lon/lat and x/y, non-finite numbers, lon/lat out of range, or a
        point outside the grid (the message gives the point in the cube's CRS and the grid
        bounds in that CRS and in lon/lat).
    """
    if (lon is None) != (lat is None) or (x is None) != (y is None):
        raise PointError("point: give both lon and lat, or both x and y")
    if (lon is None) == (x is None):
        raise PointError("point: give lon/lat (WGS84) or x/y (cube CRS), one of the two")
    if lon is not None:
        src = parse_crs(LONLAT)
        px, py = lon, lat
        said = f"lon/lat ({lon}, {lat})"
    else:
        src = grid.pyproj_crs if crs is None else parse_crs(crs, "crs")
        px, py = x, y
        said = f"x/y ({x}, {y}) in {src.name}"
    try:
        px, py = float(px), float(py)
    except (TypeError, ValueError):
        raise PointError(f"point: {said}: expected numbers") from None
    if not (math.isfinite(px) and math.isfinite(py)):
        raise PointError(f"point: {said}: expected finite numbers")
    if src.is_geographic:
        check_lonlat(px, py, grid=grid, what=f"point {said}")
    gx, gy = _transformer(src, grid.pyproj_crs).transform(px, py)
    if not (math.isfinite(gx) and math.isfinite(gy)):
        raise PointError(f"point: {said} has no image in the cube's CRS {grid.crs}")
    t = grid.transform
    col = math.floor((gx - t.c) / t.a)
    row = math.floor((gy - t.f) / t.e)
    if not (0 <= row < grid.ny and 0 <= col < grid.nx):
        raise PointError(
            f"point {said} is outside the cube grid: it is at ({gx:.1f}, {gy:.1f}) in "
            f"{grid.crs}, the grid covers {describe_extent(grid)}"
        )
    plon, plat = grid_lonlat(grid, gx, gy)
    return PixelLocation(
        row=row,
        col=col,
        x=float(grid.x[col]),
        y=float(grid.y[row]),
        lon=float(plon),
        lat=float(plat),
        query_x=float(gx),
        query_y=float(gy),
        crs=grid.crs,
    )


def disc_window(
    grid: CubeGrid, location: PixelLocation, radius_m: float
) -> tuple[slice, slice, np.ndarray]:
    """The pixels within ``radius_m`` metres of a located point, as a window and a mask.

    A pixel is inside when its centre lies within ``radius_m`` of the point asked for
    (``location.query_x``, ``location.query_y``), measured on the grid; the pixel holding the
    point always is (radius 0 is that pixel). The disc is clipped at the grid's edges.

    Parameters
    ----------
    grid : CubeGrid
    location : PixelLocation
        From :func:`locate_point` on ``grid``.
    radius_m : float
        Metres, >= 0.

    Returns
    -------
    (slice, slice, numpy.ndarray)
        Rows and columns of the smallest window holding the disc, and its boolean mask.

    Raises
    ------
    PointError
        A radius that is not a finite number >= 0.
    """
    try:
        r_m = float(radius_m)
    except (TypeError, ValueError):
        r_m = math.nan
    if isinstance(radius_m, bool) or not (math.isfinite(r_m) and r_m >= 0):
        raise PointError(f"radius: expected a non-negative number of metres, got {radius_m!r}")
    # whole pixels the disc can reach on either side of the point's pixel
    reach = math.ceil(r_m / grid.resolution) + 1
    r0, r1 = max(location.row - reach, 0), min(location.row + reach + 1, grid.ny)
    c0, c1 = max(location.col - reach, 0), min(location.col + reach + 1, grid.nx)
    dy = grid.y[r0:r1] - location.query_y
    dx = grid.x[c0:c1] - location.query_x
    # the tolerance keeps centres exactly on the circle inside despite rounding
    mask = dy[:, None] ** 2 + dx[None, :] ** 2 <= r_m**2 + 1e-6
    mask[location.row - r0, location.col - c0] = True
    rr = np.flatnonzero(mask.any(axis=1))
    cc = np.flatnonzero(mask.any(axis=0))
    mask = np.ascontiguousarray(mask[rr[0] : rr[-1] + 1, cc[0] : cc[-1] + 1])
    return (
        slice(r0 + int(rr[0]), r0 + int(rr[-1]) + 1),
        slice(c0 + int(cc[0]), c0 + int(cc[-1]) + 1),
        mask,
    )
