"""Point series: every scene's values at one pixel, and the pixel's per-year series.

A point's series is small, so it is read eagerly, straight through Zarr (no xarray
decoding of the whole cube, no task graph), all variables at once: the per-year layers hold
a pixel's whole history in one chunk per variable (up to 64 years), while the scene-level
arrays are chunked ``(1, C, C)`` so that every scene owns its chunks, which makes a point's
scene series read one chunk per scene and variable. Those chunk objects, of all variables,
are fetched from the store in batched requests and decoded with the arrays' own codecs
(a Zarr read per chunk costs more than the fetch and the decoding together); the time
blocks, where built, are read through Zarr's asynchronous API.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import zarr
from xarray.coding.times import decode_cf_datetime

from ..cube import (
    LAND_COVER_CLASSES,
    QUALITY_NOT_CLEAR,
    SCENE_VARIABLES,
    YEARLY_VARIABLES,
    CubeLike,
    clear_count_fill,
    decode_layer,
    pixel_history,
)
from ..errors import QueryError
from ..geo.points import PixelLocation
from .selection import ResolvedSelection, Selection, require_yearly, str_values
from .times import TimeRange, select_years

__all__ = ["PointReader", "PointSeries", "point_series", "scene_series", "yearly_series"]

# Per-scene coordinates copied into the scene table.
_SCENE_COORDS = ("scene_id", "sensor", "platform", "sun_elevation")
# Classes of a clear observation (water, vegetation, urban).
_CLEAR_CLASSES = (2, 3, 4)


def check_variables(
    variables: Iterable[str] | str | None, allowed: Sequence[str], what: str
) -> list[str]:
    """Validate a list of variable names (default: all of ``allowed``).

    ``variables`` may be one comma- or space-separated string.
    """
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


def _class_names(codes: np.ndarray) -> list[str]:
    return [LAND_COVER_CLASSES.get(int(c), f"class_{int(c)}") for c in codes]


class PointReader:
    """Reads the tables of one pixel from the commit of a resolved point selection.

    Both tables come from the selection's one session, so they describe the same commit.
    """

    def __init__(self, view: ResolvedSelection) -> None:
        if view.point is None:
            raise QueryError("a point series needs a point (lon/lat or x/y)")
        self.view = view
        self.group = zarr.open_group(view.session.store, mode="r")

    def _times(self) -> np.ndarray:
        arr = self.group["time"]
        attrs = arr.attrs
        return np.asarray(
            decode_cf_datetime(arr[:], attrs["units"], attrs.get("calendar", "standard"))
        ).astype("datetime64[ns]")

    def _pixel(self, names: Sequence[str], slots: slice) -> dict[str, np.ndarray]:
        """``names[k][slots, row, col]`` for all names, from the time blocks where built."""
        point = self.view.point
        got = pixel_history(self.group, names, slots, point.row, point.col)
        # packed scene layers come back as their float values, as Cube.to_xarray reads them
        return {n: decode_layer(n, v) for n, v in got.items()}

    def _frame(self, data: dict[str, Any]) -> pd.DataFrame:
        df = pd.DataFrame(data)
        df.attrs = {
            "point": self.view.point.to_dict(),
            "cube": self.view.location,
            "snapshot": self.view.snapshot,
        }
        return df

    def scenes(self, names: Sequence[str]) -> pd.DataFrame:
        """The :func:`scene_series` table of the variables ``names``."""
        when, location = self.view.when, self.view.location
        times = self._times()
        keep = np.flatnonzero(when.contains_times(times)) if times.size else np.array([], int)
        if times.size and keep.size == 0:
            raise QueryError(
                f"empty time range: cube {location!r} has no scene from {when.describe()} "
                f"(its scenes span {str(times.min())[:10]} to {str(times.max())[:10]})"
            )
        order = keep[np.argsort(times[keep], kind="stable")]
        data: dict[str, Any] = {"time": times[order]}
        for name in _SCENE_COORDS:
            if name in self.group:
                values = self.group[name][:][order]
                data[name] = (
                    values.astype(np.float32) if name == "sun_elevation" else str_values(values)
                )
        if order.size:
            # only the slots between the first and last kept scene are read
            lo, hi = int(keep.min()), int(keep.max()) + 1
            got = self._pixel(names, slice(lo, hi))
            point = {n: v[order - lo] for n, v in got.items()}
        else:
            point = {n: decode_layer(n, np.array([], dtype=self.group[n].dtype)) for n in names}
        data.update(point)
        if "land_cover" in names:
            data["class"] = _class_names(point["land_cover"])
        if "land_cover" in names and "quality" in names:
            lc = point["land_cover"]
            q = point["quality"].astype(np.int64)
            data["clear"] = np.isin(lc, _CLEAR_CLASSES) & ((q & QUALITY_NOT_CLEAR) == 0)
        return self._frame(data)

    def has_yearly(self) -> bool:
        """Whether the cube has per-year layers."""
        return "year" in self.group

    def yearly(self, names: Sequence[str], when: TimeRange | None = None) -> pd.DataFrame:
        """The :func:`yearly_series` table of the variables ``names``."""
        require_yearly(self.group, self.view.location)
        # layers built before yearly_class_count existed lack it until they are rebuilt
        names = [n for n in names if n in self.group]
        years = self.group["year"][:].astype(np.int64)
        idx = select_years(years, when or self.view.when, self.view.location)
        lo, hi = int(idx[0]), int(idx[-1]) + 1  # years are sorted: one contiguous slice
        data: dict[str, Any] = {"year": years[lo:hi]}
        data.update(self._pixel(names, slice(lo, hi)))
        if "yearly_clear_count" in names:
            # a year no scene of which covered the point: 0 clear observations, as the
            # area queries count it (layers with the old fill hold 0 already)
            stored = self.group["yearly_clear_count"]
            fill = clear_count_fill(stored, self.view.location)
            counts = data["yearly_clear_count"]
            data["yearly_clear_count"] = np.where(counts == fill, 0, counts).astype(counts.dtype)
        if "yearly_land_cover" in names:
            data["class"] = _class_names(data["yearly_land_cover"])
        return self._frame(data)


def _reader(selection: Selection | CubeLike, where: dict[str, Any], query: str) -> PointReader:
    return PointReader(Selection.of(selection, **where).resolve("point", query=query))


def scene_series(
    selection: Selection | CubeLike,
    *,
    variables: Iterable[str] | str | None = None,
    **where: Any,
) -> pd.DataFrame:
    """Every scene's values at one pixel, in time order.

    Parameters
    ----------
    selection : Selection, Cube, str or path-like
        The cube, the point (required) and the time range.
    variables : list of str or str, optional
        Scene-level variables (default all: uCw, uCv, uCs, uC4, residual, mviupd,
        land_cover, quality), or one comma-separated string.
    **where
        Fields of :class:`~updm_dask.query.Selection` (``lon``/``lat`` or ``x``/``y``,
        ``crs``, ``start``, ``end``, ``snapshot``, ``tag``, ``branch``).

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
    names = check_variables(variables, tuple(SCENE_VARIABLES), "scene-level")
    return _reader(selection, where, "scene_series").scenes(names)


def yearly_series(
    selection: Selection | CubeLike,
    *,
    variables: Iterable[str] | str | None = None,
    **where: Any,
) -> pd.DataFrame:
    """The per-year series of one pixel (from the cube's per-year layers).

    Parameters are those of :func:`scene_series`; ``variables`` are per-year variables
    (default all: yearly_land_cover, yearly_mviupd_median, yearly_clear_count,
    yearly_class_count; the last is absent from layers built before it existed).

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
    names = check_variables(variables, tuple(YEARLY_VARIABLES), "per-year")
    return _reader(selection, where, "yearly_series").yearly(names)


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


def point_series(selection: Selection | CubeLike, **where: Any) -> PointSeries:
    """Scene-level and per-year series of one pixel, from one commit.

    Parameters are those of :func:`scene_series` (all variables are read).

    Returns
    -------
    PointSeries

    Raises
    ------
    QueryError
        As :func:`scene_series`.
    """
    rd = _reader(selection, where, "point_series")
    scenes = rd.scenes(tuple(SCENE_VARIABLES))
    yearly = rd.yearly(tuple(YEARLY_VARIABLES)) if rd.has_yearly() else None
    return PointSeries(rd.view.point, scenes, yearly)
