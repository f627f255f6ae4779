"""Point series: every scene's values at one pixel, and the pixel's per-year series.

A point's series is small, so it is read eagerly, straight through Zarr (no xarray
decoding of the whole cube, no task graph), all variables at once: the per-year layers hold
a pixel's whole history in one chunk per variable (up to 64 years), while the scene-level
arrays are chunked ``(1, C, C)`` so that every scene owns its chunks, which makes a point's
scene series read one chunk per scene and variable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import zarr
from xarray.coding.times import decode_cf_datetime
from zarr.core.sync import sync

from ..cube import LAND_COVER_CLASSES, QUALITY_NOT_CLEAR
from ..errors import QueryError
from ._select import (
    SCENE_VARIABLE_NAMES,
    YEARLY_VARIABLE_NAMES,
    CubeLike,
    PixelLocation,
    check_variables,
    locate_point,
    require_yearly,
    resolve_cube,
    select_years,
    str_values,
    time_range,
)

__all__ = ["PointSeries", "point_series", "scene_series", "yearly_series"]

# Per-scene coordinates copied into the scene table.
_SCENE_COORDS = ("scene_id", "sensor", "platform", "sun_elevation")


class _PointReader:
    """Reads a pixel's values from one snapshot of a cube through Zarr."""

    def __init__(self, cube) -> None:
        session = cube.session()
        self.snapshot = session.snapshot_id
        self.group = zarr.open_group(session.store, mode="r")

    def __contains__(self, name: str) -> bool:
        return name in self.group

    def times(self) -> np.ndarray:
        arr = self.group["time"]
        attrs = arr.attrs
        return np.asarray(
            decode_cf_datetime(arr[:], attrs["units"], attrs.get("calendar", "standard"))
        ).astype("datetime64[ns]")

    def coord(self, name: str) -> np.ndarray:
        return self.group[name][:]

    def pixel(self, names: Sequence[str], rows: slice, row: int, col: int) -> dict[str, np.ndarray]:
        """``names[k][rows, row, col]`` for all names, fetched concurrently."""
        arrays = [self.group[n] for n in names]

        # zarr's own event-loop thread runs the fetches (also when the caller is inside a
        # running loop, e.g. Jupyter); gathering lets the chunk reads of all variables overlap
        async def fetch():
            return await asyncio.gather(*(a.async_array.getitem((rows, row, col)) for a in arrays))

        return {n: np.asarray(v) for n, v in zip(names, sync(fetch()), strict=True)}


def _class_names(codes: np.ndarray) -> list[str]:
    return [LAND_COVER_CLASSES.get(int(c), f"class_{int(c)}") for c in codes]


def _point_kwargs(lon, lat, x, y, crs) -> dict[str, Any]:
    return {"lon": lon, "lat": lat, "x": x, "y": y, "crs": crs}


def scene_series(
    cube: CubeLike,
    *,
    lon: float | None = None,
    lat: float | None = None,
    x: float | None = None,
    y: float | None = None,
    crs: Any = None,
    start: Any = None,
    end: Any = None,
    variables: Iterable[str] | str | None = None,
    snapshot: str | None = None,
    tag: str | None = None,
) -> pd.DataFrame:
    """Every scene's values at one pixel, in time order.

    Parameters
    ----------
    cube : Cube, str or path-like
    lon, lat : float, optional
        The point in WGS84 degrees; or
    x, y : float, optional
        the point in ``crs`` (default the cube's CRS).
    crs : str, optional
    start, end : int or str, optional
        Inclusive time range: years (``1990``: the whole year) or ISO dates.
    variables : list of str, optional
        Scene-level variables (default all: uCw, uCv, uCs, uC4, residual, mviupd,
        land_cover, quality).
    snapshot, tag : str, optional
        Read the cube at this commit or tag.

    Returns
    -------
    pandas.DataFrame
        One row per scene: ``time``, ``scene_id``, ``sensor``, ``platform``,
        ``sun_elevation``, the variables, ``class`` (land-cover name, when land_cover is
        asked for) and ``clear`` (no quality flag set and a land class, when quality and
        land_cover are asked for). ``attrs``: ``point`` (:class:`PixelLocation` as a dict),
        ``cube``, ``snapshot``.

    Raises
    ------
    QueryError
        Bad point (outside the grid, bad lon/lat), unknown variable, empty time range,
        unknown snapshot/tag.
    """
    names = check_variables(variables, SCENE_VARIABLE_NAMES, "scene-level")
    when = time_range(start, end)
    c = resolve_cube(cube, snapshot=snapshot, tag=tag)
    loc = locate_point(c.grid, **_point_kwargs(lon, lat, x, y, crs))
    return _scene_table(_PointReader(c), loc, names, when, c)


def _scene_table(rd: _PointReader, loc: PixelLocation, names, when, c) -> pd.DataFrame:
    times = rd.times()
    keep = np.flatnonzero(when.contains_times(times)) if times.size else np.array([], int)
    if times.size and keep.size == 0:
        raise QueryError(
            f"empty time range: cube {c.location!r} has no scene from {when.describe()} "
            f"(its scenes span {str(times.min())[:10]} to {str(times.max())[:10]})"
        )
    order = keep[np.argsort(times[keep], kind="stable")]
    data: dict[str, Any] = {"time": times[order]}
    for name in _SCENE_COORDS:
        if name in rd:
            values = rd.coord(name)[order]
            data[name] = (
                values.astype(np.float32) if name == "sun_elevation" else str_values(values)
            )
    if order.size:
        # only the slots between the first and last kept scene are read
        lo, hi = int(keep.min()), int(keep.max()) + 1
        got = rd.pixel(names, slice(lo, hi), loc.row, loc.col)
        point = {n: v[order - lo] for n, v in got.items()}
    else:
        point = {n: np.array([], dtype=rd.group[n].dtype) for n in names}
    data.update(point)
    if "land_cover" in names:
        data["class"] = _class_names(point["land_cover"])
    if "land_cover" in names and "quality" in names:
        lc = point["land_cover"]
        q = point["quality"].astype(np.int64)
        data["clear"] = np.isin(lc, (2, 3, 4)) & ((q & QUALITY_NOT_CLEAR) == 0)
    df = pd.DataFrame(data)
    df.attrs = {"point": loc.to_dict(), "cube": c.location, "snapshot": rd.snapshot}
    return df


def yearly_series(
    cube: CubeLike,
    *,
    lon: float | None = None,
    lat: float | None = None,
    x: float | None = None,
    y: float | None = None,
    crs: Any = None,
    start: Any = None,
    end: Any = None,
    variables: Iterable[str] | str | None = None,
    snapshot: str | None = None,
    tag: str | None = None,
) -> pd.DataFrame:
    """The per-year series of one pixel (from the cube's per-year layers).

    Parameters are those of :func:`scene_series`; ``variables`` are per-year variables
    (default all: yearly_land_cover, yearly_mviupd_median, yearly_clear_count).

    Returns
    -------
    pandas.DataFrame
        One row per year with a layer: ``year``, the variables, and ``class`` (name of the
        yearly class, ``no_data`` when the year saw no clear observation) when
        yearly_land_cover is asked for. ``attrs`` as for :func:`scene_series`.

    Raises
    ------
    QueryError
        As :func:`scene_series`; also when the cube has no per-year layers.
    """
    names = check_variables(variables, YEARLY_VARIABLE_NAMES, "per-year")
    when = time_range(start, end)
    c = resolve_cube(cube, snapshot=snapshot, tag=tag)
    loc = locate_point(c.grid, **_point_kwargs(lon, lat, x, y, crs))
    return _yearly_table(_PointReader(c), loc, names, when, c)


def _yearly_table(rd: _PointReader, loc: PixelLocation, names, when, c) -> pd.DataFrame:
    require_yearly(rd, c.location)
    years = rd.coord("year").astype(np.int64)
    idx = select_years(years, when, c.location)
    lo, hi = int(idx[0]), int(idx[-1]) + 1  # years are sorted: one contiguous slice
    data: dict[str, Any] = {"year": years[lo:hi]}
    data.update(rd.pixel(names, slice(lo, hi), loc.row, loc.col))
    if "yearly_land_cover" in names:
        data["class"] = _class_names(data["yearly_land_cover"])
    df = pd.DataFrame(data)
    df.attrs = {"point": loc.to_dict(), "cube": c.location, "snapshot": rd.snapshot}
    return df


@dataclass(frozen=True)
class PointSeries:
    """A point's full series.

    Attributes
    ----------
    location : PixelLocation
    scenes : pandas.DataFrame
        :func:`scene_series` table.
    yearly : pandas.DataFrame or None
        :func:`yearly_series` table; None when the cube has no per-year layers.
    """

    location: PixelLocation
    scenes: pd.DataFrame
    yearly: pd.DataFrame | None


def point_series(
    cube: CubeLike,
    *,
    lon: float | None = None,
    lat: float | None = None,
    x: float | None = None,
    y: float | None = None,
    crs: Any = None,
    start: Any = None,
    end: Any = None,
    snapshot: str | None = None,
    tag: str | None = None,
) -> PointSeries:
    """Scene-level and per-year series of one pixel, from one snapshot.

    Parameters are those of :func:`scene_series` (all variables are read).

    Returns
    -------
    PointSeries

    Raises
    ------
    QueryError
        As :func:`scene_series`.
    """
    when = time_range(start, end)
    c = resolve_cube(cube, snapshot=snapshot, tag=tag)
    loc = locate_point(c.grid, **_point_kwargs(lon, lat, x, y, crs))
    # one session for both tables: they come from the same snapshot even while a job commits
    rd = _PointReader(c)
    scenes = _scene_table(rd, loc, list(SCENE_VARIABLE_NAMES), when, c)
    yearly = _yearly_table(rd, loc, list(YEARLY_VARIABLE_NAMES), when, c) if "year" in rd else None
    return PointSeries(loc, scenes, yearly)
