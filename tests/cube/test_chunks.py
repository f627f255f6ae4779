"""Whole chunks written by the scene write task itself: the same keys and bytes as Zarr's.

``write_region`` encodes the chunks a block covers whole with numcodecs and stores them in
one batch; these tests write the same blocks through ``array[region] = block`` into a second
store and compare every stored object, key by key and byte by byte.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from zarr.buffer import default_buffer_prototype
from zarr.codecs import BloscCodec, ZstdCodec
from zarr.storage import MemoryStore

from updm_dask.cube._chunks import write_region
from updm_dask.cube._schema import SCENE_VARIABLES, packed_codec

SHAPE = (3, 40, 50)
CHUNKS = (1, 16, 16)


def stored(store: MemoryStore) -> dict[str, bytes]:
    """Every chunk object of ``store`` (metadata left out), as bytes."""

    async def read() -> dict[str, bytes]:
        prototype = default_buffer_prototype()
        out = {}
        async for key in store.list():
            if "/c/" in key:
                out[key] = (await store.get(key, prototype)).to_bytes()
        return out

    return asyncio.run(read())


def arrays(store: MemoryStore) -> list[zarr.Array]:
    """The cube's codecs on a small grid: a packed layer (Blosc) and land_cover (zstd)."""
    spec = SCENE_VARIABLES["uCv"]
    out = [
        zarr.create_array(
            store,
            name="uCv",
            shape=SHAPE,
            chunks=CHUNKS,
            dtype=spec.dtype,
            fill_value=spec.fill,
            compressors=[packed_codec(spec, CHUNKS)],
            config={"write_empty_chunks": False},
        ),
        zarr.create_array(
            store,
            name="land_cover",
            shape=SHAPE,
            chunks=CHUNKS,
            dtype="uint8",
            fill_value=0,
            compressors=[ZstdCodec(level=3)],
            config={"write_empty_chunks": False},
        ),
    ]
    return out


def blocks_for(region: tuple[slice, ...], seed: int, fill_share: float) -> list[np.ndarray]:
    """Smooth codes with a share of fill pixels in whole rows, so some chunks are all fill."""
    rng = np.random.default_rng(seed)
    shape = tuple(s.stop - s.start for s in region)
    spec = SCENE_VARIABLES["uCv"]
    codes = (1000 + np.cumsum(rng.integers(-3, 4, shape), axis=-1)).astype(spec.dtype)
    classes = rng.integers(1, 6, shape).astype(np.uint8)
    rows = rng.random(shape[1]) < fill_share
    codes[:, rows, :] = spec.fill
    classes[:, rows, :] = 0
    return [codes, classes]


def both_ways(regions, seed: int = 0, fill_share: float = 0.0):
    mine, theirs = MemoryStore(), MemoryStore()
    a, b = arrays(mine), arrays(theirs)
    for i, region in enumerate(regions):
        blocks = blocks_for(region, seed + i, fill_share)
        write_region(a, region, blocks)
        for target, block in zip(b, blocks, strict=True):
            target[region] = block
    return stored(mine), stored(theirs), a


def test_aligned_blocks_store_what_zarr_stores():
    region = (slice(1, 2), slice(16, 32), slice(0, 48))
    mine, theirs, a = both_ways([region])
    assert len(theirs) == 2 * 3 and mine == theirs
    np.testing.assert_array_equal(a[0][region], blocks_for(region, 0, 0.0)[0])


def test_partial_chunks_merge_with_what_is_stored_as_zarr_merges_them():
    # a first write, then one that covers parts of its chunks and whole chunks of its own
    regions = [(slice(0, 1), slice(0, 40), slice(0, 50)), (slice(0, 1), slice(5, 37), slice(3, 49))]
    mine, theirs, a = both_ways(regions, seed=3)
    assert mine == theirs and len(theirs) == 2 * 3 * 4
    second = blocks_for(regions[1], 4, 0.0)
    np.testing.assert_array_equal(a[0][regions[1]], second[0])
    np.testing.assert_array_equal(a[1][regions[1]], second[1])


def test_chunks_of_only_fill_are_left_out_and_an_emptied_chunk_is_deleted():
    full = (slice(2, 3), slice(0, 32), slice(0, 32))
    mine, theirs, _ = both_ways([full, full], seed=5, fill_share=0.0)
    assert mine == theirs and len(mine) == 2 * 4
    # the same chunks written again with nothing but fill: Zarr deletes them, and so do we
    m, t = MemoryStore(), MemoryStore()
    mine_targets, their_targets = arrays(m), arrays(t)
    for targets in (mine_targets, their_targets):
        for target, block in zip(targets, blocks_for(full, 5, 0.0), strict=True):
            target[full] = block
    assert len(stored(m)) == len(stored(t)) == 2 * 4
    empty = [
        np.full((1, 32, 32), SCENE_VARIABLES["uCv"].fill, "uint16"),
        np.zeros((1, 32, 32), "uint8"),
    ]
    write_region(mine_targets, full, empty)
    for target, block in zip(their_targets, empty, strict=True):
        target[full] = block
    assert stored(m) == stored(t) == {}


def test_an_array_with_other_codecs_goes_through_zarr():
    region = (slice(0, 1), slice(0, 32), slice(0, 32))
    outs = []
    for how in ("mine", "zarr"):
        store = MemoryStore()
        arr = zarr.create_array(
            store,
            name="x",
            shape=SHAPE,
            chunks=CHUNKS,
            dtype="uint16",
            fill_value=0,
            compressors=[BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle", typesize=2)],
        )
        block = np.arange(32 * 32, dtype="uint16").reshape(1, 32, 32)
        if how == "mine":
            write_region([arr], region, [block])
        else:
            arr[region] = block
        outs.append(stored(store))
    assert outs[0] == outs[1] and len(outs[0]) == 4


@settings(max_examples=40, deadline=None)
@given(
    t=st.integers(0, 2),
    y=st.tuples(st.integers(0, 39), st.integers(1, 40)),
    x=st.tuples(st.integers(0, 49), st.integers(1, 50)),
    seed=st.integers(0, 2**16),
    fill_share=st.sampled_from([0.0, 0.3, 0.9]),
)
def test_any_region_stores_what_zarr_stores(t, y, x, seed, fill_share):
    y0, y1 = min(y), max(y) + (y[0] == y[1])
    x0, x1 = min(x), max(x) + (x[0] == x[1])
    region = (slice(t, t + 1), slice(y0, min(y1, 40)), slice(x0, min(x1, 50)))
    if region[1].start >= region[1].stop or region[2].start >= region[2].stop:
        return
    # a first write over the whole slot, so partial chunks merge with real content
    whole = (slice(t, t + 1), slice(0, 40), slice(0, 50))
    mine, theirs, _ = both_ways([whole, region], seed=seed, fill_share=fill_share)
    assert mine == theirs


@pytest.mark.parametrize("dtype", ["uint16", "int16"])
def test_the_numcodecs_encoding_decodes_through_zarr(dtype):
    # not only equal bytes: what is stored reads back as the block
    store = MemoryStore()
    spec = SCENE_VARIABLES["uC4" if dtype == "int16" else "uCw"]
    arr = zarr.create_array(
        store,
        name="v",
        shape=SHAPE,
        chunks=CHUNKS,
        dtype=spec.dtype,
        fill_value=spec.fill,
        compressors=[packed_codec(spec, CHUNKS)],
    )
    rng = np.random.default_rng(1)
    block = rng.integers(-300 if dtype == "int16" else 0, 3000, (1, 32, 48)).astype(dtype)
    write_region([arr], (slice(1, 2), slice(0, 32), slice(0, 48)), [block])
    np.testing.assert_array_equal(zarr.open_array(store, path="v")[1:2, :32, :48], block)


def test_a_nan_fill_chunk_of_only_nan_is_left_out_as_zarr_leaves_it_out():
    # the per-year median is float32 with a NaN fill: NaN != NaN, yet such chunks are empty
    outs = []
    for how in ("mine", "zarr"):
        store = MemoryStore()
        arr = zarr.create_array(
            store,
            name="yearly_mviupd_median",
            shape=SHAPE,
            chunks=CHUNKS,
            dtype="float32",
            fill_value=np.nan,
            compressors=[ZstdCodec(level=3)],
            config={"write_empty_chunks": False},
        )
        block = np.full((1, 32, 32), np.nan, "float32")
        block[0, 20, 20] = -0.25  # one value in chunk (0, 1, 1); the other three only NaN
        if how == "mine":
            write_region([arr], (slice(0, 1), slice(0, 32), slice(0, 32)), [block])
        else:
            arr[0:1, 0:32, 0:32] = block
        outs.append(stored(store))
    assert outs[0] == outs[1] and list(outs[0]) == ["yearly_mviupd_median/c/0/1/1"]


def _write_in_child(out: str) -> None:
    region = (slice(0, 1), slice(0, 32), slice(0, 32))
    targets = arrays(MemoryStore())
    block = blocks_for(region, 3, 0.0)
    write_region(targets, region, block)
    np.save(out, targets[0][region])


def test_writes_from_a_thread_with_a_running_event_loop_and_from_a_forked_process(tmp_path):
    # a task may run where an event loop runs already (a notebook), or in a forked worker
    import multiprocessing

    region = (slice(0, 1), slice(0, 32), slice(0, 32))
    mine_store, theirs_store = MemoryStore(), MemoryStore()
    mine_targets = arrays(mine_store)

    async def inside_a_running_loop() -> None:
        write_region(mine_targets, region, blocks_for(region, 1, 0.0))

    asyncio.run(inside_a_running_loop())
    for target, block in zip(arrays(theirs_store), blocks_for(region, 1, 0.0), strict=True):
        target[region] = block
    assert stored(mine_store) == stored(theirs_store) and len(stored(mine_store)) == 2 * 4

    # the parent's store loop runs by now; a forked child must not wait on it
    child = multiprocessing.get_context("fork").Process(
        target=_write_in_child, args=(str(tmp_path / "out.npy"),)
    )
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), blocks_for(region, 3, 0.0)[0])


def _filled_arrays(store: MemoryStore, seed: int) -> list[zarr.Array]:
    """The cube's codecs and fills, some chunks written and some never (read as fill)."""
    rng = np.random.default_rng(seed)
    spec = SCENE_VARIABLES["mviupd"]
    shape = (5, 40, 50)
    out = [
        zarr.create_array(
            store,
            name="mviupd",
            shape=shape,
            chunks=CHUNKS,
            dtype=spec.dtype,
            fill_value=spec.fill,
            compressors=[packed_codec(spec, CHUNKS)],
        ),
        zarr.create_array(
            store,
            name="land_cover",
            shape=shape,
            chunks=CHUNKS,
            dtype="uint8",
            fill_value=0,
            compressors=[ZstdCodec(level=3)],
        ),
        zarr.create_array(
            store,
            name="median",
            shape=shape,
            chunks=CHUNKS,
            dtype="float32",
            fill_value=np.nan,
            compressors=[ZstdCodec(level=3)],
        ),
    ]
    for t in range(shape[0]):
        y0, x0 = rng.integers(0, 30), rng.integers(0, 40)
        y1, x1 = y0 + rng.integers(1, 40 - y0 + 1), x0 + rng.integers(1, 50 - x0 + 1)
        n = (y1 - y0, x1 - x0)
        out[0][t, y0:y1, x0:x1] = rng.integers(-2000, 2000, n).astype("int16")
        out[1][t, y0:y1, x0:x1] = rng.integers(1, 6, n).astype("uint8")
        out[2][t, y0:y1, x0:x1] = rng.standard_normal(n).astype("float32")
    return out


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    slots=st.lists(st.integers(0, 4), min_size=1, max_size=4),
    y=st.tuples(st.integers(0, 39), st.integers(0, 39)),
    x=st.tuples(st.integers(0, 49), st.integers(0, 49)),
)
def test_reading_slots_gives_what_zarr_reads(seed, slots, y, x):
    from updm_dask.cube._chunks import read_slots

    targets = _filled_arrays(MemoryStore(), seed)
    region = (slice(min(y), max(y) + 1), slice(min(x), max(x) + 1))
    mine = read_slots(targets, slots, region)
    for array, got in zip(targets, mine, strict=True):
        want = array.get_orthogonal_selection((np.asarray(slots), *region))
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)  # NaN where NaN, fill where never written


def test_reading_slots_of_an_array_with_other_codecs_goes_through_zarr():
    from updm_dask.cube._chunks import read_slots

    store = MemoryStore()
    arr = zarr.create_array(
        store,
        name="x",
        shape=SHAPE,
        chunks=CHUNKS,
        dtype="uint16",
        fill_value=7,
        compressors=[BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle", typesize=2)],
    )
    arr[1, :20, :20] = np.arange(400, dtype="uint16").reshape(20, 20)
    (got,) = read_slots([arr], [1, 0], (slice(5, 30), slice(0, 25)))
    np.testing.assert_array_equal(
        got, arr.get_orthogonal_selection(([1, 0], slice(5, 30), slice(0, 25)))
    )


@pytest.mark.parametrize("part", [1, 7, 128])
def test_reading_slots_from_icechunk_batches_the_keys_and_reads_unwritten_chunks_as_fill(
    tmp_path, monkeypatch, part
):
    """The batched Icechunk read: never-written chunks (all fill) among written ones, in
    parts of ``part`` chunk objects (one part, or many with the next fetched ahead)."""
    import icechunk

    from updm_dask.cube import _chunks
    from updm_dask.cube._chunks import _batched_get, read_slots

    monkeypatch.setattr(_chunks, "_FETCH_PART", part)
    from updm_dask.cube._timeblocks import pixel_history

    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "r")))
    session = repo.writable_session("main")
    _filled_arrays(session.store, seed=3)
    session.commit("filled")
    store = repo.readonly_session(branch="main").store
    assert _batched_get(store) is not None  # the batched path is the one under test
    group = zarr.open_group(store, mode="r")
    names = ["mviupd", "land_cover", "median"]
    arrays_ = [group[n] for n in names]
    # some chunks of each array are never written (seeded): read back as the fill value
    assert any(a.nchunks_initialized < a.nchunks for a in arrays_)
    slots, region = [4, 0, 2, 2], (slice(0, 40), slice(3, 50))
    for array, got in zip(arrays_, read_slots(arrays_, slots, region), strict=True):
        want = array.get_orthogonal_selection((np.asarray(slots), *region))
        np.testing.assert_array_equal(got, want)
    for row, col in ((0, 0), (39, 49), (17, 33)):
        history = pixel_history(group, names, slice(1, 5), row, col)
        for name, array in zip(names, arrays_, strict=True):
            np.testing.assert_array_equal(history[name], array[1:5, row, col])
