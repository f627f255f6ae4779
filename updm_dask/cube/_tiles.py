"""Tiled collections: a large grid cut into fixed tiles, each an ordinary cube.

Layout at LOCATION (a local folder or ``s3://bucket/prefix``)
-------------------------------------------------------------
- ``LOCATION/tiles/r{i}c{j}``: the tile of row ``i`` and column ``j`` of the tiling, a cube
  made by :func:`~updm_dask.cube.create_cube` on :meth:`Tiling.tile_grid` (same CRS and
  resolution as the collection's grid, origin shifted, shape clipped at the grid's edge).
  Each tile is its own Icechunk repository: commits of different tiles never conflict and
  never grow each other's manifests.
- ``LOCATION/catalogue``: a small Icechunk repository whose root attributes hold
  ``updm_tiled_collection`` (the format marker), ``grid`` (the whole grid), ``tile_edge``,
  ``tiles`` (the tiles that exist) and, from the last :meth:`Collection.tag`, the snapshot id
  of every tile (``tile_snapshots``). Registering a tile or tagging is one catalogue commit,
  re-read and retried when another driver committed first. The catalogue holds no scene:
  the scenes whose footprint touches a tile but which hold only fill there are recorded in
  that tile's cube (:mod:`~updm_dask.cube._empty`); collections written before kept them in
  the catalogue's ``empty_scenes`` attribute, which is still read.

A grid that fits in one tile is not tiled: it is a single cube, exactly as before.

This module creates and opens collections (:func:`create_collection`,
:func:`open_collection`, :func:`as_collection`); the tiling geometry is in
:mod:`~updm_dask.cube._tiling`, the catalogue's storage and locking in
:mod:`~updm_dask.cube._catalogue` and the :class:`Collection` with its views over the tiles
in :mod:`~updm_dask.cube._collection`. Their names stay importable from here.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import icechunk
import zarr

from ..errors import CubeError
from ..geo import CubeGrid

# The names moved to _tiling, _catalogue and _collection stay importable from here (the
# "x as x" ones are imported for that alone).
from ._catalogue import (
    _CATALOGUE_RETRIES,
    COLLECTION_FORMAT,
    COLLECTION_MARKER,
    _catalogue_attrs,
    _catalogue_to_fill,
    _child,
    collection_exists,
)
from ._catalogue import _being_created as _being_created
from ._catalogue import _catalogue_lock as _catalogue_lock
from ._collection import Collection
from ._combine import _fill_of as _fill_of
from ._combine import combine_tiles as _combine  # noqa: F401 - its name before the move
from ._io import repository_exists, storage_for
from ._tiling import Tiling, tile_edge
from ._tiling import tile_order as tile_order

__all__ = [
    "COLLECTION_FORMAT",
    "Collection",
    "Tiling",
    "as_collection",
    "collection_exists",
    "create_collection",
    "open_collection",
    "tile_edge",
]

log = logging.getLogger("updm_dask.cube")


def as_collection(cube: Any) -> Collection | None:
    """The tiled collection ``cube`` is or names (opened at its tip), else None: a cube,
    or a location holding one."""
    if isinstance(cube, Collection):
        return cube
    if isinstance(cube, str | os.PathLike) and collection_exists(cube):
        return open_collection(cube)
    return None


def create_collection(
    location: str | os.PathLike,
    grid: CubeGrid,
    *,
    edge: int | None = None,
    title: str | None = None,
    exist_ok: bool = False,
) -> Collection:
    """Create an empty tiled collection (its catalogue; tiles come with their first scene).

    Parameters
    ----------
    location : str or path-like
        Local folder (created if missing; must be empty) or ``s3://bucket/prefix``.
    grid : CubeGrid
        The whole grid; it must span more than one tile (a smaller grid is a single cube:
        use :func:`~updm_dask.cube.create_cube`).
    edge : int, optional
        Tile edge in pixels (default dask config ``updm.tiles.edge``).
    title : str, optional
        Stored in the catalogue and given to every tile.
    exist_ok : bool
        When ``location`` already holds a collection with this grid and edge, return it.

    Returns
    -------
    Collection

    Raises
    ------
    CubeError
        The grid fits in one tile; ``location`` holds something else, or a collection with
        another grid or edge (or any collection without ``exist_ok``).

    Notes
    -----
    Crash-safe: a creation killed at any moment is completed by the next call (what an
    interrupted ``Repository.create`` left is removed; a catalogue holding only its
    first commit is filled in).
    """
    tiling = Tiling(grid, tile_edge(edge))
    if not tiling.tiled:
        raise CubeError(
            f"create_collection: the grid ({grid.ny} x {grid.nx} pixels) fits in one tile of "
            f"{tiling.edge} pixels; create a single cube with create_cube()"
        )
    _, name = storage_for(location)
    storage, cname = storage_for(_child(name, "catalogue"))
    if "://" not in name:
        path = Path(name)
        if repository_exists(*storage_for(name)):
            raise CubeError(f"{name!r} already holds a single cube, not a tiled collection")
        if path.is_dir():
            others = sorted(p.name for p in path.iterdir() if p.name not in ("catalogue", "tiles"))
            if others:
                raise CubeError(
                    f"{name!r} is a non-empty directory that is not a tiled collection "
                    f"(it holds {', '.join(map(repr, others[:5]))})"
                )
    attrs = {
        COLLECTION_MARKER: COLLECTION_FORMAT,
        **tiling.to_dict(),
        "title": title or "",
        "tiles": [],
        "tile_snapshots": {},
    }
    for attempt in range(_CATALOGUE_RETRIES):
        repo = _catalogue_to_fill(storage, cname)
        try:
            existing = _catalogue_attrs(repo)
        except icechunk.IcechunkError:
            # another driver's Repository.create is under way (its refs are not all
            # written yet): look again in a moment
            time.sleep(0.05 * (attempt + 1))
            continue
        if existing is not None:
            collection = Collection(repo, name, existing)
            if collection.tiling.grid != grid or collection.tiling.edge != tiling.edge:
                g = collection.grid
                raise CubeError(
                    f"{name!r} already holds a tiled collection with another grid or tile edge "
                    f"({g.crs}, shape {g.shape}, bounds {g.bounds}, tiles of "
                    f"{collection.tiling.edge}) than the one asked for ({grid.crs}, shape "
                    f"{grid.shape}, bounds {grid.bounds}, tiles of {tiling.edge})"
                )
            if not exist_ok:
                raise CubeError(
                    f"{name!r} already holds a tiled collection; open it with "
                    "open_collection() or pass exist_ok=True"
                )
            return collection
        session = repo.writable_session("main")
        zarr.open_group(session.store, mode="w", attributes=attrs)
        try:
            session.commit("create tiled collection", metadata={"action": "create", **attrs})
        except icechunk.ConflictError:
            continue  # another driver created it meanwhile: check what it made
        log.info("created tiled collection %s (%d x %d tiles)", name, tiling.rows, tiling.cols)
        return Collection(repo, name, attrs)
    raise CubeError(f"{name!r}: could not create the catalogue (repeated write conflicts)")


def open_collection(location: str | os.PathLike, *, tag: str | None = None) -> Collection:
    """Open a tiled collection, at its newest state or pinned to a catalogue tag.

    Parameters
    ----------
    location : str or path-like
        Local folder or ``s3://bucket/prefix``.
    tag : str, optional
        A tag made by :meth:`Collection.tag`: every tile is then read at the snapshot it
        had when the tag was made (read-only).

    Returns
    -------
    Collection

    Raises
    ------
    CubeError
        ``location`` holds no collection (a single cube is named as such), or the tag does
        not exist (the message lists the tags there are).
    """
    _, name = storage_for(location)
    storage, cname = storage_for(_child(name, "catalogue"))
    if not repository_exists(storage, cname):
        if repository_exists(*storage_for(name)):
            raise CubeError(f"{name!r} is a single cube, not a tiled collection; use open_cube()")
        raise CubeError(f"{name!r} is not a tiled collection (no catalogue at {cname!r})")
    try:
        repo = icechunk.Repository.open(storage)
    except icechunk.IcechunkError as exc:
        raise CubeError(f"cannot open the catalogue at {cname!r}: {exc.message}") from None
    snapshot = None
    if tag is not None:
        if not isinstance(tag, str) or not tag.strip():
            raise CubeError(f"tag: expected a non-empty string, got {tag!r}")
        try:
            snapshot = repo.lookup_tag(tag)
        except (icechunk.IcechunkError, ValueError):
            tags = sorted(repo.list_tags())
            known = f"its tags: {', '.join(map(repr, tags))}" if tags else "it has no tags"
            raise CubeError(f"tiled collection {name!r} has no tag {tag!r}; {known}") from None
    attrs = _catalogue_attrs(repo, snapshot)
    if attrs is None:
        raise CubeError(
            f"{name!r}: the catalogue holds no collection (its creation was interrupted; "
            "run the job again to complete it)"
        )
    if attrs[COLLECTION_MARKER] != COLLECTION_FORMAT:
        raise CubeError(
            f"{name!r}: tiled collection of format {attrs[COLLECTION_MARKER]!r}; this version "
            f"reads format {COLLECTION_FORMAT}"
        )
    return Collection(repo, name, attrs, tag=tag, snapshot=snapshot)
