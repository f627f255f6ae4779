"""The one selection every query takes: which cube commit, which place, which time.

A :class:`Selection` says what to read. :meth:`Selection.resolve` checks it against the cube
once (open the commit, find the pixel or the area, parse the time range) and returns a
:class:`ResolvedSelection`, from which the queries read. Resolving reads metadata and
coordinates only, never a pixel of the cube.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np
import xarray as xr

from ..cube import (
    YEARLY_VARIABLES,
    Collection,
    Cube,
    CubeLike,
    clear_count_as_counted,
    collection_exists,
    decode_dataset,
    open_collection,
    resolve_cube,
)
from ..errors import CubeError, QueryError, VersionError
from ..geo import CubeGrid
from ..geo.points import PixelLocation, locate_point
from .areas import AreaSelection, point_area, select_area
from .times import TimeRange, select_years, time_range

__all__ = ["ResolvedSelection", "Selection", "TiledSelection", "str_values"]

#: What a query reads: one pixel, an area (the whole cube by default), or the whole cube.
Place = Literal["point", "area", "cube"]

_POINT_FIELDS = ("lon", "lat", "x", "y")
_AREA_FIELDS = ("radius", "bbox", "geojson", "area")


@dataclass(frozen=True)
class Selection:
    """What a query reads: a cube commit, a place and a time range.

    Every query of :mod:`updm_dask.query` takes a Selection first, or a cube and these
    fields as keywords: ``area_statistics(cube, bbox=box, start=1990)`` is
    ``area_statistics(Selection(cube, bbox=box, start=1990))``, and keywords given with a
    Selection replace its fields. A query uses the fields it needs and rejects the others
    with a :class:`~updm_dask.errors.QueryError` naming them: point series read one pixel,
    area queries an area (the whole cube by default), a transition matrix takes its years
    from its epochs.

    Attributes
    ----------
    cube : Cube, str or path-like
        An open cube or its location (local path or ``s3://bucket/prefix``).
    lon, lat : float, optional
        A point in WGS84 degrees; or
    x, y : float, optional
        a point in ``crs`` (default: the cube's CRS). It selects the pixel it lies in.
    radius : float, optional
        With a point, for area queries: the pixels whose centre lies within this many
        metres of the point on the cube's grid (always with the pixel holding it).
    bbox : (minx, miny, maxx, maxy), optional
        An area: a box in ``crs`` (default lon/lat WGS84).
    geojson : dict, str or path, optional
        An area: a Polygon/MultiPolygon geometry, Feature or FeatureCollection (their
        union), as a dict, JSON text or file; lon/lat (RFC 7946) unless ``crs`` or the
        legacy ``crs`` member says otherwise.
    area : AreaSelection, optional
        An area already on the cube's grid (e.g. from an earlier :meth:`resolve`, or made
        from a mask).
    crs : str, optional
        CRS of the ``x``/``y``, ``bbox`` or ``geojson`` coordinates (e.g. the cube's
        ``"EPSG:32637"``).
    start, end : int or str, optional
        Inclusive time range: years (``1990``: the whole year) or ISO dates (an end date
        counts whole). Queries of the per-year layers read the years the range touches.
    snapshot, tag : str, optional
        Read the cube as it was at this commit (snapshot id) or tag, at most one of them,
        so that an old analysis can be reproduced exactly.
    branch : str
        Branch whose tip is read when no snapshot or tag is given.

    Notes
    -----
    An area selects the pixels whose centre lies inside it (rasterio's rule without
    ``all_touched``), so adjacent areas never share a pixel; see
    :mod:`updm_dask.query.areas`. Nothing is checked before :meth:`resolve`.
    """

    cube: CubeLike
    lon: float | None = None
    lat: float | None = None
    x: float | None = None
    y: float | None = None
    radius: float | None = None
    bbox: Sequence[float] | None = None
    geojson: Any = None
    area: AreaSelection | None = None
    crs: Any = None
    start: Any = None
    end: Any = None
    snapshot: str | None = None
    tag: str | None = None
    branch: str = "main"

    @classmethod
    def of(cls, selection: Selection | CubeLike, **fields: Any) -> Selection:
        """A Selection from a Selection or a cube, with ``fields`` (the attributes) set.

        Raises
        ------
        TypeError
            A keyword that is not a field of Selection.
        """
        if isinstance(selection, Selection):
            return dataclasses.replace(selection, **fields) if fields else selection
        return cls(selection, **fields)

    def resolve(
        self, place: Place = "area", *, time: bool = True, query: str = "query"
    ) -> ResolvedSelection:
        """Check the selection against its cube: the commit, the pixels and the years read.

        Parameters
        ----------
        place : {"point", "area", "cube"}
            What the query reads: the pixel of a point (which is then required), an area
            (the whole cube when none is given), or the whole cube (no place accepted).
        time : bool
            Whether the query takes a time range (``start``/``end``).
        query : str
            Name of the query, for messages.

        Returns
        -------
        ResolvedSelection

        Raises
        ------
        QueryError
            Fields the query does not take, an unparsable or empty time range, a bad point
            or area (see :func:`~updm_dask.geo.points.locate_point` and
            :func:`~updm_dask.query.areas.select_area`).
        VersionError
            Both ``snapshot`` and ``tag``, or one that the cube does not have.
        CubeError
            The location holds no cube.
        """
        self._check_fields(place, time, query)
        when = time_range(self.start, self.end)
        collection = self._collection()
        if collection is not None:
            return self._resolve_tiled(collection, place, when)
        cube = resolve_cube(self.cube, snapshot=self.snapshot, tag=self.tag, branch=self.branch)
        point = area = None
        if place == "point":
            point = self._locate(cube.grid)
        elif place == "area":
            area = self._area(cube.grid)
        return ResolvedSelection(cube, cube.session(), when, point, area)

    def _collection(self) -> Collection | None:
        """The tiled collection the selection reads (at its tag), or None for a cube."""
        if isinstance(self.cube, Collection):
            location: Any = self.cube.location
            if self.tag is None and self.snapshot is None:
                return self.cube
        elif isinstance(self.cube, str | os.PathLike) and collection_exists(self.cube):
            location = self.cube
        else:
            return None
        if self.snapshot is not None:
            raise VersionError(
                f"tiled collection {str(location)!r}: every tile has snapshots of its own; "
                "pin it with a tag instead (`updm tag`, then --tag / tag=)"
            )
        if self.branch != "main":
            raise VersionError(
                f"tiled collection {str(location)!r}: its tiles are read on branch 'main' or "
                "at a tag"
            )
        try:
            return open_collection(location, tag=self.tag)
        except CubeError as exc:
            if self.tag is not None:
                raise VersionError(str(exc)) from None
            raise

    def _resolve_tiled(
        self, collection: Collection, place: Place, when: TimeRange
    ) -> ResolvedSelection:
        """A point reads the tile it lies in; an area or the whole grid reads one lazy view
        over the tiles, on the collection's grid (:meth:`Collection.to_xarray`)."""
        if place == "point":
            # located on the whole grid first: the same messages as a cube's, lon/lat
            # bounds included, for a point outside it
            where = self._locate(collection.grid)
            tile = collection.tiling.tile_of_pixel(where.row, where.col)
            cube = collection.open_tile(tile)
            return ResolvedSelection(cube, cube.session(), when, self._locate(cube.grid))
        area = self._area(collection.grid) if place == "area" else None
        return TiledSelection(collection, None, when, None, area)

    def _given(self, names: Sequence[str]) -> list[str]:
        return [n for n in names if getattr(self, n) is not None]

    def _check_fields(self, place: Place, time: bool, query: str) -> None:
        if place == "point" and self._given(_AREA_FIELDS):
            raise QueryError(
                f"{query} reads one pixel: give a point (lon/lat or x/y), not "
                f"{', '.join(self._given(_AREA_FIELDS))}"
            )
        if place == "cube" and self._given((*_POINT_FIELDS, *_AREA_FIELDS, "crs")):
            raise QueryError(
                f"{query} reads the whole cube: drop "
                f"{', '.join(self._given((*_POINT_FIELDS, *_AREA_FIELDS, 'crs')))}"
            )
        if not time and self._given(("start", "end")):
            raise QueryError(f"{query} takes no start/end (its arguments set the years)")

    def _locate(self, grid: CubeGrid) -> PixelLocation:
        return locate_point(grid, lon=self.lon, lat=self.lat, x=self.x, y=self.y, crs=self.crs)

    def _area(self, grid: CubeGrid) -> AreaSelection:
        if self.area is not None:
            if self._given(("bbox", "geojson", "crs", "radius", *_POINT_FIELDS)):
                raise QueryError("area: give an AreaSelection or bbox/geojson, not both")
            if not isinstance(self.area, AreaSelection):
                raise QueryError(f"area: expected an AreaSelection, got {type(self.area).__name__}")
            if self.area.grid != grid:
                raise QueryError("area: the selection was made on another grid than this cube's")
            return self.area
        if self._given(_POINT_FIELDS):
            if self._given(("bbox", "geojson")):
                raise QueryError("area: give a point, a bbox or a GeoJSON polygon, one of them")
            return point_area(grid, self._locate(grid), self.radius)
        if self.radius is not None:
            raise QueryError("radius: give it with a point (lon/lat or x/y)")
        return select_area(grid, bbox=self.bbox, geojson=self.geojson, crs=self.crs)


@dataclass(frozen=True, eq=False)
class ResolvedSelection:
    """A :class:`Selection` checked against its cube: what a query reads.

    Attributes
    ----------
    cube : Cube
        The cube view (branch tip, or pinned to the commit or tag asked for).
    session : icechunk.Session
        A read-only session of the one commit every read of the query comes from, even
        while a job commits to the branch.
    when : TimeRange
    point : PixelLocation or None
        The pixel, for point queries.
    area : AreaSelection or None
        The area, for area queries (the whole cube when none was given).
    """

    cube: Cube
    session: Any
    when: TimeRange
    point: PixelLocation | None = None
    area: AreaSelection | None = None

    @property
    def location(self) -> str:
        """The cube's location."""
        return self.cube.location

    @property
    def snapshot(self) -> str:
        """Id of the commit read (recorded with every answer for provenance)."""
        return self.session.snapshot_id

    @cached_property
    def dataset(self) -> xr.Dataset:
        """The whole cube at the commit read, as a lazy dask-backed Dataset.

        Time slots are in acquisition order (as :meth:`Cube.to_xarray`), whatever order
        the scenes were committed in, so ``time`` is monotonic.
        ``attrs["updm_snapshot"]`` is the commit's id.
        """
        ds = xr.open_zarr(self.session.store, consolidated=False, zarr_format=3, chunks={})
        ds = decode_dataset(ds)  # packed scene layers as float32, as Cube.to_xarray reads them
        if "spatial_ref" in ds.data_vars:
            ds = ds.set_coords("spatial_ref")
        if not ds.indexes["time"].is_monotonic_increasing:
            # slots are stored in commit order; a stable sort keeps equal times in order
            ds = ds.sortby("time")
        ds.attrs["updm_snapshot"] = self.snapshot
        return ds

    def yearly(self, when: TimeRange | None = None) -> xr.Dataset:
        """The per-year layers over the area's window and the years of ``when`` (lazy).

        Parameters
        ----------
        when : TimeRange, optional
            Default: the selection's time range.

        Returns
        -------
        xarray.Dataset
            ``yearly_land_cover``, ``yearly_mviupd_median``, ``yearly_clear_count`` and
            ``yearly_class_count`` (absent from layers built before it existed), dims
            (year, y, x), with ``attrs`` ``cube`` and ``updm_snapshot``.

        Raises
        ------
        QueryError
            The cube has no per-year layers, or none in the range.
        """
        ds = self.dataset
        require_yearly(ds, self.location)
        idx = select_years(ds["year"].values, when or self.when, self.location)
        area = self.area if self.area is not None else select_area(self.cube.grid)
        win = ds[[n for n in YEARLY_VARIABLES if n in ds]].isel(
            year=slice(int(idx[0]), int(idx[-1]) + 1), y=area.rows, x=area.cols
        )
        # queries count: a pixel no scene covered (the clear count's fill) has 0 clear
        win = clear_count_as_counted(win, ds.get("yearly_clear_count"), self.location)
        win.attrs.update(cube=self.location, updm_snapshot=self.snapshot)
        return win

    def scene_ids(self) -> np.ndarray:
        """Ids of the scenes stored, one per time slot (str array)."""
        return str_values(self.dataset["scene_id"].values)


@dataclass(frozen=True, eq=False)
class TiledSelection(ResolvedSelection):
    """A :class:`ResolvedSelection` over a tiled collection: ``cube`` is the
    :class:`~updm_dask.cube.Collection` (its grid and location) and :attr:`dataset` one
    lazy view over its tiles, each read at one snapshot (the tag's, or the tip when the
    view is made), so that every read of a query comes from the same state.
    """

    @cached_property
    def _tiles(self) -> tuple[xr.Dataset, str]:
        collection = self.cube
        if self.area is None:
            view = collection.pinned()  # type: ignore[attr-defined]
            ds = view.to_xarray()
        else:
            # an area maps over the tiles it touches: only those are opened (and pinned),
            # whatever the number of tiles of the grid
            rows, cols = self.area.rows, self.area.cols
            window = (rows.start, cols.start, rows.stop - rows.start, cols.stop - cols.start)
            touched = collection.tiling.tiles_of_window(*window)  # type: ignore[attr-defined]
            view = collection.pinned(touched)  # type: ignore[attr-defined]
            ds = view.to_xarray(window=window, whole_grid=True)
        # the provenance of an answer: the catalogue tag, or the snapshot id of every tile read
        if view.tag_name is not None:
            snapshot = f"tag {view.tag_name}"
        else:
            snapshot = " ".join(f"{t}@{s}" for t, s in view.snapshots().items())
        return ds, snapshot

    @property
    def snapshot(self) -> str:
        """The state read: the catalogue tag, or every tile's snapshot id."""
        return self._tiles[1]

    @cached_property
    def dataset(self) -> xr.Dataset:
        """The whole collection as one lazy Dataset on its grid (see
        :meth:`~updm_dask.cube.Collection.to_xarray`)."""
        ds = self._tiles[0]
        ds.attrs["updm_snapshot"] = self.snapshot
        return ds


def require_yearly(group_or_ds: Any, location: str) -> None:
    """QueryError unless the cube (a Dataset or a Zarr group) has per-year layers."""
    if "year" not in group_or_ds:
        raise QueryError(
            f"cube {location!r} has no per-year layers yet; build them with "
            "Cube.rebuild_yearly() (`updm run` does so after every job)"
        )


def str_values(values: Any) -> np.ndarray:
    """A string coordinate's values as a fixed-width numpy str array.

    The cube stores strings with numpy's variable-width StringDType, which numpy cannot cast
    to ``str`` directly.
    """
    return np.asarray([str(v) for v in np.asarray(values).tolist()], dtype=str)
