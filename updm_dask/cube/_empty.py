"""Scenes recorded as holding no valid pixel in a cube: kept in the cube itself.

A scene's footprint box touches tiles of a tiled collection where it holds only fill (the
collar of a tilted Landsat scene). A job records such scenes in the tile they are empty
in, so that running it again neither stores nor recomputes them. They live in an
append-only array of the tile's own repository, group ``empty_scenes``, array
``scene_id`` (dimension ``empty``), not in the collection's catalogue: a record is then a
commit of that one tile, costs the scenes it adds (not every scene ever recorded), and
never conflicts with another tile's driver.

Readers of the cube's layers never see the group: ``Cube.to_xarray`` opens the root
group's arrays only.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import zarr

from ._cube import Cube
from ._schema import STR

__all__ = ["EMPTY_GROUP", "empty_scene_ids", "record_empty_scenes"]

#: Group of a cube that holds the ids of scenes without data there.
EMPTY_GROUP = "empty_scenes"
#: Ids per chunk: a record rewrites at most the last chunk, whatever was recorded before.
_CHUNK = 1024


def empty_scene_ids(cube: Cube) -> set[str]:
    """The ids of the scenes recorded as holding no valid pixel in ``cube``.

    Parameters
    ----------
    cube : Cube
        Read at its snapshot (the branch tip, or the pinned one).

    Returns
    -------
    set of str
        Empty when nothing was recorded.
    """
    root = cube._group()
    if EMPTY_GROUP not in root:
        return set()
    return {str(s) for s in root[EMPTY_GROUP]["scene_id"][:].tolist()}


def record_empty_scenes(cube: Cube, scene_ids: Iterable[str]) -> str | None:
    """Record scenes as holding no valid pixel in ``cube``, in one commit.

    Parameters
    ----------
    cube : Cube
        Opened on its branch for writing (a tile's cube during its job).
    scene_ids : iterable of str
        Scenes to record; those recorded already are left out.

    Returns
    -------
    str or None
        The new snapshot id; None when every scene was recorded already.

    Raises
    ------
    CubeError
        A read-only view, or another writer committed first.
    """
    new = sorted({str(s) for s in scene_ids} - empty_scene_ids(cube))
    if not new:
        return None
    session = cube._writable("record_empty_scenes")
    root = zarr.open_group(session.store, mode="r+")
    if EMPTY_GROUP in root:
        ids = root[EMPTY_GROUP]["scene_id"]
    else:
        ids = root.require_group(EMPTY_GROUP).create_array(
            "scene_id",
            shape=(0,),
            chunks=(_CHUNK,),
            dtype=STR,
            dimension_names=("empty",),
            attributes={"long_name": "scenes holding no valid pixel in this cube"},
        )
    start = int(ids.shape[0])
    ids.resize((start + len(new),))
    ids[start:] = np.array(new, dtype=STR)
    return cube._commit(
        session,
        f"record {len(new)} scene(s) without data",
        {"action": "record_empty", "scene_ids": new},
    )
