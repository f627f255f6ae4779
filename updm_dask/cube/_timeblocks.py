"""Time-blocked copies of the scene layers, for fast per-pixel histories.

The scene layers are stored ``(time, y, x)`` in chunks ``(1, C, C)`` so that each scene owns
its chunks and ingest never rewrites anything; but one pixel's history then costs one chunk
read per scene and variable (1,000 scenes x 8 variables = 8,000 reads). Compaction copies
the time slots stored so far into arrays of the group ``time_blocks`` chunked
``(B, E, E)`` (``updm.chunks.time-block-slots`` and ``-edge``), so the same history is
``ceil(1000 / B)`` reads per variable.

- The copies hold the per-scene arrays' raw stored values with their dtype, fill value,
  codecs and attributes, whatever the encoding, so a read from a block gives exactly what
  the per-scene array gives.
- Slots only ever grow at the end (scenes are appended, never rewritten), so a block stays
  valid as more scenes arrive; the group attribute ``slots`` records how many leading slots
  the copies hold and readers take the slots after it from the per-scene arrays. A
  re-compaction rewrites only the last, partial block and the new ones.
- A copy whose dtype, fill value or attributes differ from its per-scene array (the layers
  were re-encoded after compaction) is ignored by the readers, never misread.
- Compaction is one Icechunk commit; the copy tasks run on the active dask scheduler and
  write through forked sessions, like every write to a cube.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np
import zarr

from .. import config
from ..errors import CubeError
from ._arrays import run_coroutine
from ._chunks import read_slots
from ._cube import CubeLike, resolve_cube
from ._io import root_attrs, write_dask
from ._schema import SCENE_VARIABLES

__all__ = [
    "TIME_BLOCKS",
    "compact_time_blocks",
    "pixel_history",
    "time_block_slots",
    "time_blocks_info",
]

log = logging.getLogger("updm_dask.cube")

#: Group holding the time-blocked copies of the scene layers.
TIME_BLOCKS = "time_blocks"
# Attributes of a copy that must equal its per-scene array's for the copy to be read.
_SAME = ("dtype", "fill_value")


def _positive(key: str) -> int:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise CubeError(f"dask config updm.{key}: expected a positive whole number, got {value!r}")
    return value


def _block_shape(cube_edge: int, ny: int, nx: int) -> tuple[int, int]:
    """Slots per block and a spatial edge that divides the cube chunk edge."""
    slots = _positive("chunks.time-block-slots")
    edge = math.gcd(_positive("chunks.time-block-edge"), cube_edge)
    return slots, max(1, min(edge, ny, nx))


def _matches(copy: zarr.Array, source: zarr.Array) -> bool:
    """Whether ``copy`` stores values exactly as ``source`` does."""
    if copy.shape[1:] != source.shape[1:]:
        return False
    if copy.dtype != source.dtype:
        return False
    a, b = copy.fill_value, source.fill_value
    same_fill = (a == b) or (
        isinstance(a, float | np.floating)
        and isinstance(b, float | np.floating)
        and np.isnan(a)
        and np.isnan(b)
    )
    return bool(same_fill) and dict(copy.attrs) == dict(source.attrs)


def time_block_slots(group: zarr.Group, name: str) -> int:
    """How many leading time slots of scene layer ``name`` a valid time-blocked copy holds.

    Parameters
    ----------
    group : zarr.Group
        The cube's root group (any session).
    name : str
        A scene-level variable.

    Returns
    -------
    int
        0 when there is no copy, or when it no longer stores values as the per-scene array
        does (re-encoded layers); the readers then use the per-scene arrays only.
    """
    if TIME_BLOCKS not in group or name not in group:
        return 0
    return _held(group[TIME_BLOCKS], name, group[name])


def _held(blocks: zarr.Group | None, name: str, source: zarr.Array) -> int:
    """Leading slots of ``source`` that the copy ``blocks[name]`` holds exactly (or 0)."""
    copy = blocks.get(name) if blocks is not None else None
    if not isinstance(copy, zarr.Array) or not _matches(copy, source):
        return 0
    return min(int(blocks.attrs.get("slots", 0)), copy.shape[0], source.shape[0])


def compact_time_blocks(cube: CubeLike, *, message: str | None = None) -> str | None:
    """Copy the scene layers' stored time slots into time-blocked arrays, in one commit.

    Parameters
    ----------
    cube : Cube, str or path-like
        A cube opened on its branch (not a pinned snapshot or tag), or its location.
    message : str, optional
        Commit message (default says how many slots were compacted).

    Returns
    -------
    str or None
        The new snapshot id; None when the copies already hold every slot.

    Raises
    ------
    CubeError
        A read-only view, bad chunk settings, or another writer committed first.

    Notes
    -----
    Only the last partial block and the blocks after it are (re)written: the cost of a
    re-compaction is the new scenes, not the history. Queries read the copies for the
    slots they hold and the per-scene arrays for the rest, so compacting is optional and
    can run at any time (after each job with ``updm run --compact``, or ``updm compact``).
    """
    c = resolve_cube(cube)
    session = c._writable("compact_time_blocks")
    root = zarr.open_group(session.store, mode="r+")
    n = int(root["time"].shape[0])
    names = [name for name in SCENE_VARIABLES if name in root]
    done = min((time_block_slots(root, name) for name in names), default=0)
    if n == 0 or done >= n:
        log.info("compact_time_blocks: %s already compacted (%d slots)", c.location, n)
        return None
    _, ny, nx = root[names[0]].shape
    cube_edge = int(root[names[0]].chunks[1])
    slots, edge = _block_shape(cube_edge, ny, nx)
    blocks = root.require_group(TIME_BLOCKS)
    # read the source at the session's own base snapshot: exactly what this commit extends
    source_store = c.repository.readonly_session(snapshot_id=session.snapshot_id).store
    by_start: dict[int, list[tuple[da.Array, str]]] = {}
    for name in names:
        src, kept = root[name], time_block_slots(root, name)
        if kept:
            blocks[name].resize((n, ny, nx))
        else:
            if name in blocks:  # re-encoded since it was copied: copy it again, whole
                del blocks[name]
            blocks.create_array(
                name,
                shape=(n, ny, nx),
                chunks=(slots, edge, edge),
                dtype=src.dtype,
                fill_value=src.fill_value,
                compressors=src.compressors,
                filters=src.filters,
                serializer=src.serializer,
                attributes=dict(src.attrs),
                dimension_names=src.metadata.dimension_names,
            )
        # from the start of the last partial block: every copy task writes whole chunks
        start = (kept // slots) * slots
        arr = da.from_zarr(
            zarr.open_array(source_store, path=name, mode="r"),
            chunks=(slots, cube_edge, cube_edge),
        )
        by_start.setdefault(start, []).append((arr[start:], f"{TIME_BLOCKS}/{name}"))
    for start, pairs in sorted(by_start.items()):
        write_dask(session, [a for a, _ in pairs], [t for _, t in pairs], start)
    copied = n - min(by_start)
    blocks.attrs.update({"slots": n, "block_slots": slots, "edge": edge})
    text = message or f"compact time blocks: {n} slot(s), {copied} copied"
    snap = c._commit(session, text, {"action": "compact_time_blocks", "slots": n})
    log.info("compacted %d slot(s) of %s into time blocks: snapshot %s", n, c.location, snap)
    return snap


def pixel_history(
    group: zarr.Group, names: Sequence[str], slots: slice, row: int, col: int
) -> dict[str, np.ndarray]:
    """``names[k][slots, row, col]`` as stored, from the time blocks where they hold them.

    Parameters
    ----------
    group : zarr.Group
        The cube's root group.
    names : sequence of str
        Arrays of the root group with a leading slot axis (scene or per-year layers).
    slots : slice
        Contiguous slots, ``step`` None or 1.
    row, col : int
        The pixel.

    Returns
    -------
    dict
        Name -> 1-D array of the raw stored values (decode scale/offset as for the
        per-scene arrays). Every chunk read of every variable runs concurrently.
    """
    if not names:
        return {}
    sources = {name: group[name] for name in names}
    lo, hi, _ = slots.indices(sources[names[0]].shape[0])
    blocks = group.get(TIME_BLOCKS)
    blocks = blocks if isinstance(blocks, zarr.Group) else None
    reads: list[tuple[str, Any, tuple]] = []
    # the slots past the time blocks, one chunk object per slot: read as a batch
    per_slot: list[tuple[str, zarr.Array, int]] = []
    for name, source in sources.items():
        cut = min(max(_held(blocks, name, source), lo), hi)
        if cut > lo:
            reads.append((name, blocks[name].async_array, (slice(lo, cut), row, col)))
        if hi > cut or cut == lo:
            if source.ndim == 3 and source.chunks[0] == 1:
                per_slot.append((name, source, cut))
            else:
                reads.append((name, source.async_array, (slice(cut, hi), row, col)))

    async def fetch() -> list[Any]:
        return await asyncio.gather(*(arr.getitem(at) for _, arr, at in reads))

    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    if reads:
        for (name, _, _), values in zip(reads, run_coroutine(fetch()), strict=True):
            parts[name].append(np.asarray(values))
    by_cut: dict[int, list[tuple[str, zarr.Array]]] = {}
    for name, source, cut in per_slot:
        by_cut.setdefault(cut, []).append((name, source))
    for cut, pairs in by_cut.items():
        pixel = (slice(row, row + 1), slice(col, col + 1))
        got = read_slots([a for _, a in pairs], range(cut, hi), pixel)
        for (name, _), values in zip(pairs, got, strict=True):
            parts[name].append(values[:, 0, 0])
    return {name: np.concatenate(p) if len(p) > 1 else p[0] for name, p in parts.items()}


def time_blocks_info(store: Any) -> dict[str, Any] | None:
    """What the time blocks of a cube's store hold.

    Parameters
    ----------
    store
        A cube session's store.

    Returns
    -------
    dict or None
        ``{"slots", "block_slots", "edge"}``: the leading time slots copied, the slots per
        chunk and the chunks' spatial edge; None when the cube has no time blocks.
    """
    if root_attrs(store) is None:
        return None
    group = zarr.open_group(store, mode="r")
    if TIME_BLOCKS not in group:
        return None
    return dict(group[TIME_BLOCKS].attrs)
