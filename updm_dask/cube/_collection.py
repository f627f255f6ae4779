"""The :class:`Collection`: a tiled collection opened, its tiles and lazy views over them.

A :class:`Collection` lists and opens the tiles of a collection (at their tips or pinned to
a tag), creates and registers tiles, records scenes without data in a tile, tags, finds the
tile of a point, and joins the tiles an area touches into one lazy Dataset on the
collection's grid. :func:`~updm_dask.cube.create_collection` and
:func:`~updm_dask.cube.open_collection` (:mod:`updm_dask.cube._tiles`) make one.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import icechunk
import xarray as xr
import zarr

from ..errors import CubeError, GridError
from ..geo import CubeGrid
from ._catalogue import (
    _CATALOGUE_RETRIES,
    _being_created,
    _catalogue_attrs,
    _catalogue_lock,
    _child,
)
from ._combine import combine_tiles, widen_to_grid
from ._cube import Cube, create_cube, open_cube
from ._empty import empty_scene_ids, record_empty_scenes
from ._io import CubeConflictError, repository_exists, storage_for
from ._lock import CubeLockedError
from ._tags import check_tag_name, icechunk_detail
from ._tiling import Tiling, tile_order

__all__ = ["Collection"]

log = logging.getLogger("updm_dask.cube")


class Collection:
    """A tiled collection (see the module docstring); made by :func:`open_collection`.

    A view at the catalogue's tip sees new tiles as they are registered and opens every
    tile at its branch tip; a view pinned to a tag opens every tile at the snapshot the
    tag recorded, read-only.
    """

    def __init__(
        self,
        repository: icechunk.Repository,
        location: str,
        attrs: Mapping[str, Any],
        *,
        tag: str | None = None,
        snapshot: str | None = None,
    ) -> None:
        self._repo = repository
        self.location = location
        try:
            grid = CubeGrid.from_dict(attrs["grid"])
            self.tiling = Tiling(grid, attrs["tile_edge"])
        except (KeyError, GridError, CubeError) as exc:
            raise CubeError(f"tiled collection {location!r}: bad catalogue: {exc}") from None
        self.tag_name = tag
        self._snapshot = snapshot
        self._pinned = dict(attrs.get("tile_snapshots", {})) if snapshot is not None else None
        self._pinned_tiles = list(attrs.get("tiles", [])) if snapshot is not None else None
        self._guard = threading.Lock()

    def __repr__(self) -> str:
        at = f", tag={self.tag_name!r}" if self.tag_name else ""
        return (
            f"Collection({self.location!r}{at}, {self.tiling.rows} x {self.tiling.cols} tiles "
            f"of {self.tiling.edge}, shape={self.grid.shape})"
        )

    @property
    def grid(self) -> CubeGrid:
        """The whole grid."""
        return self.tiling.grid

    @property
    def read_only(self) -> bool:
        """True when pinned to a tag."""
        return self._snapshot is not None

    @property
    def repository(self) -> icechunk.Repository:
        """The catalogue's Icechunk repository."""
        return self._repo

    def _attrs(self) -> dict[str, Any]:
        return _catalogue_attrs(self._repo, self._snapshot) or {}

    def tiles(self) -> list[str]:
        """The tiles that exist (registered in the catalogue), row by row."""
        if self._pinned_tiles is not None:
            return sorted(self._pinned_tiles, key=tile_order)
        return sorted(self._attrs().get("tiles", []), key=tile_order)

    def tags(self) -> list[str]:
        """The catalogue's tags."""
        return sorted(self._repo.list_tags())

    def tile_location(self, tile: str) -> str:
        """Where tile ``tile`` is stored (``LOCATION/tiles/<tile>``)."""
        self.tiling.index(tile)
        return _child(self.location, "tiles", tile)

    def _check_present(self, tile: str) -> None:
        self.tiling.index(tile)
        present = self.tiles()
        if tile not in present:
            listed = ", ".join(present) if present else "none yet"
            raise CubeError(
                f"tiled collection {self.location!r}: tile {tile!r} holds no data; "
                f"tiles present: {listed}"
            )

    def open_tile(self, tile: str, *, for_writing: bool = False) -> Cube:
        """The cube of tile ``tile`` (at the tag's snapshot when the collection is pinned).

        Raises
        ------
        CubeError
            A malformed id, a tile outside the tiling or one that holds no data (the message
            names the tiles present).
        """
        self._check_present(tile)
        location = self.tile_location(tile)
        if self._pinned is not None:
            if for_writing:
                raise CubeError(
                    f"tiled collection {self.location!r} is pinned to tag {self.tag_name!r} "
                    "and read-only; open it without a tag to write"
                )
            return open_cube(location, snapshot=self._pinned[tile])
        return open_cube(location, for_writing=for_writing)

    def create_tile(self, tile: str, *, title: str | None = None, register: bool = True) -> Cube:
        """The writable cube of tile ``tile``, created (and registered) when missing.

        Crash-safe and idempotent: the tile cube is created (or completed) first, then
        registered in the catalogue, so a re-run after a kill at any point finishes both.

        Parameters
        ----------
        tile : str
            The tile id (``"r{i}c{j}"``).
        title : str, optional
            Title of a tile cube created now.
        register : bool
            Register the tile in the catalogue (the tiles that hold data). False creates or
            opens the cube only: a job registers a tile once a scene is stored in it, so
            that a tile whose scenes all hold only fill there is never listed; such a cube
            stays on disk unlisted and is taken up by the next scene with data there.
        """
        if self.read_only:
            raise CubeError(
                f"tiled collection {self.location!r} is pinned to tag {self.tag_name!r} "
                "and read-only; open it without a tag to write"
            )
        grid = self.tiling.tile_grid(tile)
        location = self.tile_location(tile)
        for attempt in range(_CATALOGUE_RETRIES):
            try:
                cube = create_cube(location, grid, title=title, exist_ok=True)
                break
            except CubeError as exc:
                # Two drivers given the same tile create its cube at once: the second sees
                # a repository without a cube yet, or loses the commit of its template.
                # It waits for the first to finish; anything else fails as before.
                # Another process writing the tile (its local lock) is no race: refused now.
                racing = not isinstance(exc, CubeLockedError) and (
                    isinstance(exc, CubeConflictError) or _being_created(location)
                )
                if attempt + 1 == _CATALOGUE_RETRIES or not racing:
                    raise
                time.sleep(min(0.05 * 2**attempt, 2.0))
        if register:
            self._register(tile)
        return cube

    def _commit_attrs(
        self, change: Any, message: str, metadata: dict, *, allow_empty: bool = False
    ) -> str | None:
        """Apply ``change(attrs) -> bool`` to the catalogue's attributes and commit it,
        re-reading and retrying when another driver committed first; None if unchanged.
        ``allow_empty`` commits even when the attributes come out as they were."""
        with self._guard, _catalogue_lock(self.location):
            for attempt in range(_CATALOGUE_RETRIES):
                session = self._repo.writable_session("main")
                group = zarr.open_group(session.store, mode="r+")
                attrs = dict(group.attrs)
                if not change(attrs):
                    return None
                group.attrs.update(attrs)
                try:
                    return session.commit(message, metadata=metadata, allow_empty=allow_empty)
                except icechunk.ConflictError:
                    time.sleep(min(0.05 * 2**attempt, 2.0))
        raise CubeError(
            f"tiled collection {self.location!r}: gave up after {_CATALOGUE_RETRIES} "
            "conflicting catalogue commits"
        )

    def _register(self, tile: str) -> None:
        def add(attrs: dict) -> bool:
            tiles = list(attrs.get("tiles", []))
            if tile in tiles:
                return False
            attrs["tiles"] = sorted([*tiles, tile], key=tile_order)
            return True

        self._commit_attrs(add, f"register tile {tile}", {"action": "register", "tile": tile})

    def empty_scenes(self, tile: str, cube: Cube | None = None) -> set[str]:
        """Scenes recorded as holding no valid pixel in tile ``tile`` (see
        :meth:`record_empty`): those the tile's cube records, and those an older
        collection recorded in its catalogue. ``cube``: the tile's cube when the caller
        has it open already (a job's tile), read instead of opening it again."""
        self.tiling.index(tile)
        legacy = set(self._attrs().get("empty_scenes", {}).get(tile, []))
        if cube is not None:
            return legacy | empty_scene_ids(cube)
        location = self.tile_location(tile)
        if not repository_exists(*storage_for(location)):
            return legacy  # no scene was ever run in this tile
        try:
            cube = open_cube(location)
        except CubeError:
            # a tile whose creation was cut short records nothing yet; its next run
            # completes it (the records only spare recomputing a scene)
            return legacy
        return legacy | empty_scene_ids(cube)

    def record_empty(self, tile: str, scene_ids: Sequence[str]) -> None:
        """Record that these scenes hold no valid pixel in tile ``tile``.

        A scene's footprint box touches tiles where the scene holds only fill (the collar
        of a tilted Landsat scene); a job records such (scene, tile) pairs so that running
        it again neither stores nor recomputes them. They are kept in the tile's own cube
        (one commit of that tile, created unregistered when missing), not in the
        catalogue, which stays the size of its tiles whatever the scenes.
        """
        self.tiling.index(tile)
        if not scene_ids:
            return
        with self.create_tile(tile, register=False) as cube:
            record_empty_scenes(cube, scene_ids)

    def tag(self, name: str) -> str:
        """Pin the current snapshot of every tile under the catalogue tag ``name``.

        Tags each tile's branch-tip snapshot ``name`` (so that ``updm gc --keep-tags`` on a
        tile keeps it), commits those snapshot ids into the catalogue, and tags that
        catalogue snapshot ``name``. ``open_collection(location, tag=name)`` then reads
        every tile as it was. The name is checked before anything is written; a tile
        tag left by an attempt that stopped half-way is taken up when it marks the
        tile's current snapshot.

        Returns
        -------
        str
            The catalogue snapshot tagged.

        Raises
        ------
        CubeError
            A pinned view, a bad name, a tag that exists already (naming the tags), or a
            tile that already has a tag of this name at another snapshot.
        """
        where = f"tiled collection {self.location!r}"
        if self.read_only:
            raise CubeError(f"{where}: a pinned view cannot tag")
        check_tag_name(name, where)
        if name in self.tags():
            raise CubeError(
                f"{where} already has a tag {name!r}; its tags: {', '.join(map(repr, self.tags()))}"
            )
        tiles = {tile: open_cube(self.tile_location(tile)) for tile in self.tiles()}
        snapshots = {tile: cube.snapshot_id for tile, cube in tiles.items()}
        tagged = {tile for tile, cube in tiles.items() if name in cube.repository.list_tags()}
        for tile in sorted(tagged, key=tile_order):  # refused before any tag is written
            held = tiles[tile].repository.lookup_tag(name)
            if held != snapshots[tile]:
                raise CubeError(
                    f"{where}: tile {tile} already has a tag {name!r} at snapshot {held}, "
                    f"not at its current snapshot {snapshots[tile]}; choose another "
                    "name (or delete that tile's tag)"
                )
        for tile, cube in tiles.items():
            if tile not in tagged:
                cube.create_tag(name, snapshots[tile])

        def record(attrs: dict) -> bool:
            attrs["tile_snapshots"] = snapshots
            attrs["tiles"] = sorted(set(attrs.get("tiles", [])) | set(snapshots), key=tile_order)
            return True

        # committed even when no tile changed since the last tag: the tag needs a snapshot
        # of its own that records what it pins
        snap = self._commit_attrs(
            record,
            f"tag {name}",
            {"action": "tag", "tag": name, "tile_snapshots": snapshots},
            allow_empty=True,
        )
        try:
            self._repo.create_tag(name, snap)
        except (icechunk.IcechunkError, ValueError) as exc:
            raise CubeError(
                f"{where}: cannot create tag {name!r}: {icechunk_detail(exc)}"
            ) from None
        log.info("tagged %s as %r (%d tiles)", self.location, name, len(snapshots))
        return snap

    def pinned(self, tiles: Sequence[str] | None = None) -> Collection:
        """A read-only view of every tile at the snapshot it has now (or the tag's).

        What a query reads, so that all its reads come from one state of every tile even
        while a job commits to some of them; :meth:`snapshots` of the view says which.

        Parameters
        ----------
        tiles : sequence of str, optional
            Pin only these tiles (those of them present): a query of an area opens the
            tiles it touches, not every tile of a continent. A view already pinned (to a
            tag) is returned as it is.
        """
        if self._pinned is not None:
            return self
        view = Collection.__new__(Collection)
        view.__dict__.update(self.__dict__)
        view._guard = threading.Lock()
        present = self.tiles()
        if tiles is not None:
            wanted = set(tiles)
            present = [t for t in present if t in wanted]
        view._pinned = {t: open_cube(self.tile_location(t)).snapshot_id for t in present}
        view._pinned_tiles = sorted(view._pinned, key=tile_order)
        view._snapshot = self._repo.lookup_branch("main")
        return view

    def snapshots(self) -> dict[str, str]:
        """Snapshot id of every tile present: the pinned ones, or the branch tips."""
        if self._pinned is not None:
            return dict(self._pinned)
        return {t: open_cube(self.tile_location(t)).snapshot_id for t in self.tiles()}

    # -- points and areas ----------------------------------------------------------------

    def tile_of_xy(self, x: float, y: float) -> str:
        """The tile holding the point ``(x, y)`` in the grid's CRS.

        Raises
        ------
        CubeError
            The point is outside the grid (the message gives the grid's bounds).
        """
        col, row = ~self.grid.transform @ (float(x), float(y))
        if not (0 <= row < self.grid.ny and 0 <= col < self.grid.nx):
            raise CubeError(
                f"point ({x:.10g}, {y:.10g}) in {self.grid.crs} is outside the grid of "
                f"{self.location!r} (bounds {tuple(round(v, 3) for v in self.grid.bounds)})"
            )
        return self.tiling.tile_of_pixel(math.floor(row), math.floor(col))

    def cube_for_point(
        self,
        *,
        lon: float | None = None,
        lat: float | None = None,
        x: float | None = None,
        y: float | None = None,
        crs: Any = None,
    ) -> tuple[str, Cube]:
        """The tile a point lies in, and its cube.

        Parameters
        ----------
        lon, lat : float, optional
            WGS84 degrees.
        x, y : float, optional
            Coordinates in ``crs`` (default: the grid's CRS).
        crs : optional
            CRS of ``x``/``y``.

        Returns
        -------
        (str, Cube)

        Raises
        ------
        PointError
            Neither or both of lon/lat and x/y, or coordinates that cannot be transformed.
        CubeError
            The point is outside the grid, or in a tile that holds no data.
        """
        from ..errors import PointError
        from ..geo.points import LONLAT, to_grid_xy

        if (lon is None) != (lat is None) or (x is None) != (y is None):
            raise PointError("point: give both lon and lat, or both x and y")
        if (lon is None) == (x is None):
            raise PointError("point: give lon/lat (WGS84) or x/y (grid CRS), one of the two")
        if lon is not None:
            gx, gy = to_grid_xy(self.grid, lon, lat, LONLAT)
        else:
            gx, gy = to_grid_xy(self.grid, x, y, self.grid.crs if crs is None else crs)
        tile = self.tile_of_xy(float(gx), float(gy))
        return tile, self.open_tile(tile)

    def _checked_window(self, window: Sequence[int]) -> tuple[int, int, int, int]:
        try:
            r0, c0, nr, nc = (int(v) for v in window)
        except (TypeError, ValueError):
            raise CubeError(f"window: expected (row, col, rows, cols), got {window!r}") from None
        ny, nx = self.grid.shape
        if not (0 <= r0 and 0 <= c0 and 0 < nr and 0 < nc and r0 + nr <= ny and c0 + nc <= nx):
            raise CubeError(
                f"window {tuple(window)!r}: expected a non-empty window inside the grid of "
                f"{ny} x {nx} pixels"
            )
        return r0, c0, nr, nc

    def _bbox_window(self, bbox: Sequence[float], crs: Any) -> tuple[int, int, int, int]:
        try:
            minx, miny, maxx, maxy = (float(v) for v in bbox)
        except (TypeError, ValueError):
            raise CubeError(f"bbox: expected (minx, miny, maxx, maxy), got {bbox!r}") from None
        if not (minx < maxx and miny < maxy):
            raise CubeError(f"bbox: expected minx < maxx and miny < maxy, got {bbox!r}")
        if crs is not None:
            import pyproj

            transformer = pyproj.Transformer.from_crs(crs, self.grid.crs, always_xy=True)
            minx, miny, maxx, maxy = transformer.transform_bounds(minx, miny, maxx, maxy)
        inv = ~self.grid.transform
        c0, r0 = inv @ (minx, maxy)
        c1, r1 = inv @ (maxx, miny)
        # the pixels whose centres lie in the box, as a slice by coordinates selects them
        row0, col0 = math.ceil(r0 - 0.5), math.ceil(c0 - 0.5)
        row1, col1 = math.floor(r1 - 0.5) + 1, math.floor(c1 - 0.5) + 1
        row0, col0 = max(row0, 0), max(col0, 0)
        row1, col1 = min(row1, self.grid.ny), min(col1, self.grid.nx)
        if row1 <= row0 or col1 <= col0:
            raise CubeError(
                f"bbox {tuple(bbox)!r} holds no pixel centre of the grid of {self.location!r} "
                f"(bounds {tuple(round(v, 3) for v in self.grid.bounds)} in {self.grid.crs})"
            )
        return row0, col0, row1 - row0, col1 - col0

    def to_xarray(
        self,
        bbox: Sequence[float] | None = None,
        *,
        crs: Any = None,
        window: tuple[int, int, int, int] | None = None,
        whole_grid: bool = False,
    ) -> xr.Dataset:
        """One lazy Dataset over the tiles an area touches, on the collection's grid.

        Parameters
        ----------
        bbox : (minx, miny, maxx, maxy), optional
            The area, in ``crs`` (default the grid's CRS); the pixels whose centres lie in
            it are read. Default: the whole grid.
        crs : optional
            CRS of ``bbox``.
        window : (row, col, rows, cols), optional
            The area as a window of the grid, instead of ``bbox``.
        whole_grid : bool
            Widen the area's Dataset to the whole grid with fill around it, lazily (a few
            constant blocks, whatever the grid's size), so that it is indexed with the
            grid's rows and columns; only the tiles the area touches are read.

        Returns
        -------
        xarray.Dataset
            Scene-level layers over the union of the tiles' scenes (a scene missing from
            a tile reads as fill there), in acquisition order; per-year layers over the
            union of their years. Tiles that hold no data read as fill.

        Raises
        ------
        CubeError
            A malformed box, one outside the grid, or no tile with data in it.
        """
        if window is not None:
            if bbox is not None:
                raise CubeError("to_xarray: give a bbox or a window, not both")
            window = self._checked_window(window)
        elif bbox is not None:
            window = self._bbox_window(bbox, crs)
        else:
            window = (0, 0, *self.grid.shape)
        present = set(self.tiles())
        parts: dict[str, xr.Dataset] = {}
        spans: dict[str, tuple[slice, slice]] = {}
        for tile, rows, cols in self.tiling.spans_of_window(*window):
            spans[tile] = (rows, cols)
            if tile in present:
                tr0, tc0, _, _ = self.tiling.tile_window(tile)
                ds = self.open_tile(tile).to_xarray()
                parts[tile] = ds.isel(
                    y=slice(rows.start - tr0, rows.stop - tr0),
                    x=slice(cols.start - tc0, cols.stop - tc0),
                )
        touched = list(spans)
        if not parts:
            raise CubeError(
                f"tiled collection {self.location!r}: no tile with data in the area "
                f"(tiles touched: {', '.join(touched)}; present: {', '.join(sorted(present))})"
            )
        ds = combine_tiles(parts, spans, self.grid, window)
        return widen_to_grid(ds, self.grid, window) if whole_grid else ds
