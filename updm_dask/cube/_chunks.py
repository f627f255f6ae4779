"""Whole chunks of a block encoded in the task's thread and stored in one batch.

A scene's write task hands each layer's block to Zarr as ``array[region] = block``. For
every chunk Zarr then creates asyncio tasks, hands the encoding to a thread pool, compares
the chunk with the fill value through a boolean temporary and stores it: per 512 x 512
chunk about 1 ms of CPU besides the compression itself, a fifth of a job's CPU per scene.

Here the chunks that the block covers whole are encoded with the array's own codecs
(numcodecs' Blosc or Zstd, configured from the array's metadata, byte for byte what Zarr
would store) in the calling thread, and stored under the array's chunk keys with one
batch of store writes. Everything else goes through Zarr as before: a chunk the block
covers in part (Zarr merges it with what is stored), a chunk that holds only fill (Zarr
leaves it out or deletes it) and an array whose codecs are not the cube's.

Reads of a few time slots over a block (the per-year rebuild reads each year's scenes)
take the same way back: the chunk objects fetched in one batch, decoded with numcodecs and
copied into place, a missing chunk read as the fill value, as Zarr reads it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import itertools
from collections.abc import Sequence
from typing import Any

import numcodecs
import numpy as np
import zarr
from zarr.buffer import default_buffer_prototype
from zarr.buffer.cpu import Buffer

from ._arrays import run_coroutine, submit_coroutine

#: Blosc's shuffle names in Zarr's metadata -> numcodecs' constants.
_SHUFFLE = {"noshuffle": numcodecs.Blosc.NOSHUFFLE, "shuffle": numcodecs.Blosc.SHUFFLE}


@functools.lru_cache(maxsize=64)
def _numcodec(codecs: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]) -> Any | None:
    """The numcodecs codec equal to a Zarr codec chain, or None when there is none here.

    ``codecs`` is the chain as (name, sorted configuration items). Only what cubes use:
    ``bytes`` (little-endian, or no endianness for one-byte types) then one ``blosc``
    (zstd, with or without byte shuffle) or ``zstd`` compressor.
    """
    if len(codecs) != 2 or codecs[0][0] != "bytes":
        return None
    if dict(codecs[0][1]).get("endian", "little") != "little":
        return None
    name, conf = codecs[1][0], dict(codecs[1][1])
    if name == "zstd":
        return numcodecs.Zstd(level=conf["level"], checksum=conf.get("checksum", False))
    if name == "blosc" and conf.get("shuffle") in _SHUFFLE and conf.get("cname") == "zstd":
        return numcodecs.Blosc(
            cname="zstd",
            clevel=conf["clevel"],
            shuffle=_SHUFFLE[conf["shuffle"]],
            blocksize=conf.get("blocksize", 0),
            typesize=conf["typesize"],
        )
    return None


def _codec_of(array: zarr.Array) -> Any | None:
    chain = []
    for codec in array.metadata.codecs:
        d = codec.to_dict()
        chain.append((d["name"], tuple(sorted(d.get("configuration", {}).items()))))
    try:
        return _numcodec(tuple(chain))
    except TypeError:  # an unhashable configuration: not one of the cube's codecs
        return None


def _chunk_slices(start: int, stop: int, edge: int) -> list[tuple[int, int, int, bool]]:
    """Per chunk of edge ``edge`` that [start, stop) touches along one axis: its index, its
    first and last+1 coordinate clipped to [start, stop), and whether it lies whole inside.

    A chunk cut by the array's end counts as partial: Zarr pads such a chunk, and it goes
    through Zarr.
    """
    out = []
    for index in range(start // edge, (stop - 1) // edge + 1):
        lo, hi = index * edge, (index + 1) * edge
        out.append((index, max(lo, start), min(hi, stop), lo >= start and hi <= stop))
    return out


def write_region(
    targets: Sequence[zarr.Array], region: tuple[slice, ...], blocks: Sequence[np.ndarray]
) -> None:
    """Write ``blocks[i]`` into ``targets[i][region]``, whole chunks encoded here.

    Parameters
    ----------
    targets : sequence of zarr.Array
        Arrays of one store (a fork's), opened for writing.
    region : tuple of slice
        Where the blocks go, the same for every target; steps of 1, bounds inside the
        arrays.
    blocks : sequence of numpy.ndarray
        The values, shaped as ``region``, of each target's dtype.

    Notes
    -----
    What is stored equals what ``target[region] = block`` stores with
    ``write_empty_chunks=False``: the same keys with the same bytes.
    """
    writes: list[tuple[Any, str, bytes]] = []
    for target, block in zip(targets, blocks, strict=True):
        codec = _codec_of(target)
        if codec is None or block.dtype != target.dtype:
            target[region] = block
            continue
        fill = target.fill_value
        per_axis = [
            _chunk_slices(r.start, r.stop, edge)
            for r, edge in zip(region, target.chunks, strict=True)
        ]
        prefix = f"{target.path}/" if target.path else ""
        encode_key = target.metadata.chunk_key_encoding.encode_chunk_key
        for parts in itertools.product(*per_axis):
            local = tuple(
                slice(lo - r.start, hi - r.start)
                for (_, lo, hi, _), r in zip(parts, region, strict=True)
            )
            values = block[local]
            whole = all(p[3] for p in parts)
            if not whole or not _holds_data(values, fill):
                # partial (merge with the stored chunk) or only fill (left out): Zarr's way
                target[tuple(slice(lo, hi) for _, lo, hi, _ in parts)] = values
                continue
            data = np.ascontiguousarray(values)
            key = prefix + encode_key(tuple(p[0] for p in parts))
            writes.append((target.store, key, codec.encode(data)))
    if writes:
        run_coroutine(_store_all(writes))


def _holds_data(values: np.ndarray, fill: Any) -> bool:
    """Whether ``values`` holds anything but ``fill`` (a NaN fill equals NaN, as in Zarr)."""
    nan_fill = values.dtype.kind == "f" and np.isnan(fill)
    # most chunks hold data from their first pixel on: no pass over the chunk for those
    if values.size == 0:
        return False
    first = values[(0,) * values.ndim]
    if nan_fill:
        return not np.isnan(first) or not np.isnan(values).all()
    return bool(first != fill) or bool((values != fill).any())


def read_slots(
    arrays: Sequence[zarr.Array], slots: Sequence[int], region: tuple[slice, slice]
) -> list[np.ndarray]:
    """``array.get_orthogonal_selection((slots, *region))`` of each array, in one batch.

    Parameters
    ----------
    arrays : sequence of zarr.Array
        (time, y, x) arrays of one store, chunked one time slot deep.
    slots : sequence of int
        Time indices to read, in the order wanted.
    region : tuple of slice
        Rows and columns (steps of 1, inside the arrays).

    Returns
    -------
    list of numpy.ndarray
        One (len(slots), rows, cols) array per array, of its dtype: what Zarr reads.
    """
    out: list[np.ndarray | None] = [None] * len(arrays)
    wanted: list[tuple[int, Any, tuple[int, ...], tuple[slice, ...], tuple[slice, ...]]] = []
    for i, array in enumerate(arrays):
        codec = _codec_of(array)
        if codec is None or array.chunks[0] != 1 or array.ndim != 3:
            selection = (np.asarray(slots, dtype=np.int64), *region)
            out[i] = array.get_orthogonal_selection(selection)
            continue
        rows, cols = region
        shape = (len(slots), rows.stop - rows.start, cols.stop - cols.start)
        out[i] = np.full(shape, array.fill_value, dtype=array.dtype)
        prefix = f"{array.path}/" if array.path else ""
        encode_key = array.metadata.chunk_key_encoding.encode_chunk_key
        _, cy, cx = array.chunks
        for k, slot in enumerate(slots):
            for iy, y0, y1, _ in _chunk_slices(rows.start, rows.stop, cy):
                for ix, x0, x1, _ in _chunk_slices(cols.start, cols.stop, cx):
                    key = prefix + encode_key((int(slot), iy, ix))
                    inside = (slice(y0 - iy * cy, y1 - iy * cy), slice(x0 - ix * cx, x1 - ix * cx))
                    place = (
                        k,
                        slice(y0 - rows.start, y1 - rows.start),
                        slice(x0 - cols.start, x1 - cols.start),
                    )
                    wanted.append((i, (array, codec), key, inside, place))
    # Fetched in parts, the next part read while this one is decoded: a point's series
    # over 1,000 scenes is 8,000 chunk objects, 1.5 GB at 512^2, which must not be held
    # at once.
    parts = [wanted[k : k + _FETCH_PART] for k in range(0, len(wanted), _FETCH_PART)]

    def fetch(part: list) -> concurrent.futures.Future:
        return submit_coroutine(_fetch_all([(a.store, key) for _, (a, _), key, _, _ in part]))

    pending = fetch(parts[0]) if parts else None
    for k, part in enumerate(parts):
        fetched = pending.result()  # type: ignore[union-attr]
        if k + 1 < len(parts):
            pending = fetch(parts[k + 1])
        for (i, (array, codec), _, inside, place), data in zip(part, fetched, strict=True):
            if data is None:  # never written: the fill value, already in place
                continue
            chunk = np.frombuffer(codec.decode(data), dtype=array.dtype)
            chunk = chunk.reshape(array.chunks[1:])
            out[i][place] = chunk[inside]
    return out  # type: ignore[return-value]


#: Chunk objects per batched read of :func:`read_slots` (at most two parts in memory).
_FETCH_PART = 128


async def _fetch_all(keys: list[tuple[Any, str]]) -> list[bytes | None]:
    """The objects ``keys`` (store, key), None for a key never written, in order.

    The keys of one Icechunk store go in one batched request: for the few thousand chunk
    objects of a point's series (one per scene and variable) a ``get`` each costs about
    0.6 ms of CPU in the asyncio hand-offs, the batch about 0.4 ms.
    """
    by_store: dict[int, tuple[Any, list[int]]] = {}
    for i, (store, _) in enumerate(keys):
        by_store.setdefault(id(store), (store, []))[1].append(i)
    out: list[bytes | None] = [None] * len(keys)
    prototype = default_buffer_prototype()

    async def one_store(store: Any, indices: list[int]) -> None:
        batched = _batched_get(store)
        if batched is not None and len(indices) > 1:
            found = await batched([(keys[i][1], (None, None)) for i in indices])
            for i, b in zip(indices, found, strict=True):
                out[i] = None if b is None else bytes(b)
            return
        got = await asyncio.gather(*(store.get(keys[i][1], prototype) for i in indices))
        for i, b in zip(indices, got, strict=True):
            out[i] = None if b is None else b.to_bytes()

    await asyncio.gather(*(one_store(store, idx) for store, idx in by_store.values()))
    return out


def _batched_get(store: Any) -> Any | None:
    """Icechunk's batched read of whole objects, or None for another store.

    ``IcechunkStore.get_partial_values`` wraps this call but fails on a key never written
    (it converts the None it receives to a buffer), and a cube's chunks that hold only
    fill are never written; the call beneath answers None for them, as ``get`` does. When a
    later Icechunk lacks it, every key is read with ``get``.
    """
    inner = getattr(store, "_store", None)
    method = getattr(inner, "get_partial_values", None)
    return method if callable(method) and type(store).__module__.startswith("icechunk") else None


async def _store_all(writes: list[tuple[Any, str, bytes]]) -> None:
    await asyncio.gather(*(store.set(key, Buffer.from_bytes(data)) for store, key, data in writes))
