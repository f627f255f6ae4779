"""Opening, resizing and filling many Zarr arrays of one store at once.

A batch of scenes opens, grows and fills about thirty arrays of the cube (the eight layers
and the per-scene coordinates). Zarr's synchronous API hands each of those steps to its
event-loop thread and waits for it, which costs a millisecond or two per step and was
about a third of a small batch's time on the driver. Here every step of one kind is one
hand-off: the arrays' metadata are read, rewritten or their values written concurrently.
The point reads of time-blocked arrays run on the same loop (:func:`run_coroutine`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any

import numpy as np
import zarr
import zarr.api.asynchronous

__all__ = [
    "NO_EMPTY",
    "fill_arrays",
    "open_arrays",
    "resize_arrays",
    "run_coroutine",
    "submit_coroutine",
]

#: Runtime configuration of the arrays a computation writes: all-fill chunks are never
#: written (they read as the fill value).
NO_EMPTY = {"write_empty_chunks": False}

# One event loop, on a daemon thread of its own, runs this module's concurrent steps and
# the point reads of this process: a fresh loop per call (asyncio.run) would start and
# join the loop's thread pool (which Zarr's codecs use) every time, a third of a per-year
# read. Its own thread also lets a caller that runs a loop itself (e.g. Jupyter) wait.
_LOOP: tuple[int, asyncio.AbstractEventLoop] | None = None
_LOOP_LOCK = threading.Lock()


def run_coroutine(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine on this process's Zarr I/O loop and wait for its result."""
    return submit_coroutine(coroutine).result()


def submit_coroutine(coroutine: Coroutine[Any, Any, Any]) -> concurrent.futures.Future:
    """Start a coroutine on this process's Zarr I/O loop; its future, not waited for."""
    global _LOOP
    with _LOOP_LOCK:
        # a forked child inherits the loop but not its thread: it starts its own
        if _LOOP is None or _LOOP[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="updm-zarr-io", daemon=True).start()
            _LOOP = (os.getpid(), loop)
        loop = _LOOP[1]
    return asyncio.run_coroutine_threadsafe(coroutine, loop)


def open_arrays(
    store: Any,
    paths: Sequence[str],
    *,
    config: Mapping[str, Any] | None = None,
    missing_ok: bool = False,
) -> dict[str, zarr.Array]:
    """The arrays ``paths`` of ``store``, open for writing, read concurrently.

    Parameters
    ----------
    store : zarr store
        One store object (a session's ``store``): every array is opened on it.
    paths : sequence of str
        Array paths in the store.
    config : mapping, optional
        Zarr runtime configuration of the arrays (e.g. ``write_empty_chunks``).
    missing_ok : bool
        Leave out the paths that hold no array, instead of raising.
    """
    mode = "r+" if missing_ok else "a"

    async def opened() -> list[Any]:
        return await asyncio.gather(
            *(
                zarr.api.asynchronous.open_array(store=store, path=p, mode=mode, config=config)
                for p in paths
            ),
            return_exceptions=missing_ok,
        )

    found = {}
    for path, array in zip(paths, run_coroutine(opened()), strict=True):
        if isinstance(array, FileNotFoundError):  # Zarr's "no array at this path"
            continue
        if isinstance(array, BaseException):
            raise array
        found[path] = zarr.Array(array)
    return found


def resize_arrays(arrays: Mapping[str, zarr.Array], shapes: Mapping[str, tuple[int, ...]]) -> None:
    """Give every array of ``shapes`` its new shape, in place (metadata written concurrently)."""

    async def resized() -> None:
        await asyncio.gather(*(arrays[n].async_array.resize(s) for n, s in shapes.items()))

    run_coroutine(resized())


def fill_arrays(
    arrays: Mapping[str, zarr.Array], start: int, values: Mapping[str, np.ndarray]
) -> None:
    """Write ``values[name]`` into ``arrays[name][start:start + len]`` for every name at once."""

    async def written() -> None:
        await asyncio.gather(
            *(
                arrays[n].async_array.setitem(slice(start, start + len(v)), v)
                for n, v in values.items()
            )
        )

    run_coroutine(written())
