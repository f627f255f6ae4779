"""Memory: peak resident memory of a worker against the chunk size, for scenes much larger
than a chunk, measured in one run.

For two scene sizes (the TM scene of generated demo archives on 1024 x 1024 and 2048 x
2048 grids) and two chunk sizes (256 and 512: the cube's chunks, and the read chunk
``updm.chunks.spatial`` set to the same edge, so that a task is one chunk), one scene goes
from its files to a committed cube the way a job places it (``scene_on_grid`` with the
cube's chunks, then ``append_scenes``) on
a ``distributed.LocalCluster`` of ONE worker process with ONE thread. A thread of this
process samples the worker's resident set size (psutil) every 20 ms. The worker is warmed
up first (imports, GDAL, Icechunk, the compiled kernel: one chunk of a scene onto a small
window of its grid); before each case it collects garbage, hands freed memory back to
the system (``malloc_trim``) and empties GDAL's block cache, and its RSS then is the case's
baseline; the result is peak
minus baseline. One worker serves all cases (a fresh process per case would cost seconds
of start-up and warm-up each, and the trim gives every case the same floor). Linux's own
high-water mark (VmHWM, reset before each case) is kept in the JSON as a check on the
sampling.

"Chunk bytes" is the float32 layer stack one task of the fused pipeline returns:
8 layers x 4 bytes x chunk edge^2 (32 bytes per pixel).

Targets: peak above baseline <= 8 x chunk bytes x threads for every case (a small
multiple: one task holds its DN block, its float intermediates and its output, and the
write encodes one chunk per variable at a time), and independent of the scene size: at
the same chunk size, the larger scene (4x the pixels) needs at most 1.25x the memory of
the smaller.

Also, at the smaller chunk size and for both scene sizes, the same job with GDAL's block
cache bounded at 8 MiB (``updm.io.gdal-cache-mb``, 256 by default) in the worker: a window
of one block of a tiled GeoTIFF (the demo's are tiled 256 x 256) goes through that cache,
so with the default bound a worker keeps the decoded blocks of a scene smaller than the
bound, and its peak grows with the scene up to the bound; these rows show how much.

Also, at the smaller chunk size and for both scene sizes, the same worker runs the job
without its write (read, process, regrid, cast and rechunk; every chunk computed and
dropped): the peak of that tells how much of the memory, and of its growth with the scene
size, the write path (Zarr encoding, Icechunk sessions) adds.

``--quick`` (the smoke test) runs tiny scenes on an in-process worker (this process's RSS
is sampled): it checks that the script works, its numbers mean nothing.

Also, in this process: the memory the write path keeps per chunk written, as two rows --
the RSS growth while 512 chunks of 256^2 float32 go into an Icechunk session through
``icechunk.dask.store_dask`` (the cube's write: a forked session per task, merged in a tree)
and through a plain ``dask.array.store`` into one fork (threaded scheduler only) -- to tell
the write path's share of any growth with the scene size.

Usage::

    python benchmarks/bench_memory.py [--quick] [--json PATH]
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import _common
import dask
import psutil

from updm_dask import config
from updm_dask.cube import create_cube
from updm_dask.geo import CubeGrid
from updm_dask.jobs.run import scene_on_grid
from updm_dask.pipeline import LAYERS

SIZES, QUICK_SIZES = (1024, 2048), (128, 256)
CHUNKS, QUICK_CHUNKS = (256, 512), (64,)
THREADS = 1
BYTES_PER_PIXEL = len(LAYERS) * 4  # the float32 stack of one chunk
TARGET_MULTIPLE = 8.0
TARGET_SCENE_GROWTH = 1.25
#: GDAL block cache (MiB) of the cases run with it bounded far below a scene.
SMALL_GDAL_CACHE_MB = 8
SAMPLE_SECONDS = 0.02


class RssSampler:
    """Sample a process's RSS every ``interval`` seconds from a thread (context manager)."""

    def __init__(self, pid: int, interval: float = SAMPLE_SECONDS) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.samples.append(self.process.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> int:
        """Largest sample (0 without samples)."""
        return max(self.samples, default=0)


def _reset_high_water_mark(pid: int) -> bool:
    # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _high_water_mark(pid: int) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def _placed(source, grid: CubeGrid, chunk: int) -> Any:
    """The scene as a job places it (``scene_on_grid`` with the cube's chunks), its blocks
    ``chunk`` pixels wide: the read chunk (``updm.chunks.spatial``) set to the cube chunk,
    so that one task reads, computes and writes one chunk."""
    with dask.config.set({"updm.chunks.spatial": chunk}):
        return scene_on_grid(source, grid, cube_chunks=chunk)


def _job(source, grid: CubeGrid, chunk: int, path: Path) -> None:
    cube = create_cube(path, grid, chunks=chunk)
    cube.append_scenes(
        [_placed(source, grid, chunk)],
        metadata={"job_id": "bench-memory"},
        message="bench memory",
    )


def _compute_only(source, grid: CubeGrid, chunk: int) -> None:
    # What the job computes before writing (scene_on_grid, then the encoding and rechunk of
    # append_scenes), each chunk reduced to nothing instead of written.
    import dask.array as da
    import numpy as np

    from updm_dask.cube import SCENE_VARIABLES, encode_layer

    placed = _placed(source, grid, chunk)
    arrays = [encode_layer(n, placed[n].data).rechunk((chunk, chunk)) for n in SCENE_VARIABLES]
    tiny = [
        a.map_blocks(
            lambda b: np.zeros((1, 1), np.int8),
            chunks=tuple((1,) * len(c) for c in a.chunks),
            dtype=np.int8,
        ).sum()
        for a in arrays
    ]
    da.compute(*tiny)


def _trim() -> None:
    # Runs in the worker: hand freed memory back to the system, so that every case starts
    # from the same floor (glibc keeps freed blocks otherwise, and the next case would
    # reuse them unseen).
    # GDAL's block cache is emptied too (its bound kept): it outlives a case, and a case
    # after another would otherwise find it full already and show none of its growth.
    import ctypes
    import gc

    from rasterio.env import get_gdal_config, set_gdal_config

    bound = int(get_gdal_config("GDAL_CACHEMAX"))
    set_gdal_config("GDAL_CACHEMAX", 0)  # a bound of 0 bytes drops every cached block
    set_gdal_config("GDAL_CACHEMAX", bound)
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _bound_gdal_cache(mib: int | None) -> None:
    """In the worker: ``updm.io.gdal-cache-mb`` set to ``mib``, or back to the default."""
    from updm_dask.scenes._locations import bound_gdal_cache

    value = mib if mib is not None else config.defaults()["updm"]["io"]["gdal-cache-mb"]
    dask.config.set({"updm.io.gdal-cache-mb": value})
    bound_gdal_cache()  # now, not at the next read: before the case's baseline


def measure(
    client, pid: int, source, grid: CubeGrid, chunk: int, tmp: Path, *, write: bool = True
) -> dict[str, Any]:
    """Peak RSS above baseline of the worker ``pid`` doing one scene at edge ``chunk``.

    Without ``write``, the scene's layers are computed chunk by chunk and dropped.
    """
    client.run(_trim)
    time.sleep(0.1)
    with RssSampler(pid) as idle:
        time.sleep(0.3)
    baseline = int(sorted(idle.samples)[len(idle.samples) // 2])
    hwm_reset = _reset_high_water_mark(pid)
    t0 = time.perf_counter()
    with RssSampler(pid) as busy, dask.config.set(scheduler=client):
        if write:
            _job(source, grid, chunk, tmp / "cube")
        else:
            _compute_only(source, grid, chunk)
    seconds = time.perf_counter() - t0
    hwm = _high_water_mark(pid) if hwm_reset else None
    chunk_bytes = BYTES_PER_PIXEL * chunk * chunk
    return {
        "scene_edge": grid.ny,
        "chunk": chunk,
        "baseline_rss": baseline,
        "peak_rss": busy.peak,
        "peak_above_baseline": busy.peak - baseline,
        "vmhwm_above_baseline": None if hwm is None else hwm - baseline,
        "samples": len(busy.samples),
        "seconds": seconds,
        "chunk_bytes": chunk_bytes,
        "multiple": (busy.peak - baseline) / (chunk_bytes * THREADS),
    }


def run(quick: bool = False) -> dict[str, Any]:
    """Measure every (scene size, chunk size); JSON-ready summary with ``rows``."""
    env = _common.environment()
    sizes = QUICK_SIZES if quick else SIZES
    chunks = QUICK_CHUNKS if quick else CHUNKS
    from distributed import Client, LocalCluster

    archives = {size: _common.demo_archive(size, n_scenes=2) for size in sizes}
    _common.warm_up_pipeline(archives[sizes[0]])
    cases = []
    with (
        _common.workspace("updm-bench-memory-") as tmp,
        _common.quiet_distributed(),
        LocalCluster(
            n_workers=1,
            threads_per_worker=THREADS,
            processes=not quick,
            dashboard_address=":0",  # any free port: no clash, no warning
            local_directory=str(tmp / "workers"),
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        (pid,) = client.run(os.getpid).values()
        first = archives[sizes[0]]
        for chunk in chunks:
            # Warm-up at this chunk size (imports, GDAL, Icechunk, the compiled kernel, and
            # whatever buffers a chunk of this size needs once): one chunk of a scene.
            with dask.config.set(scheduler=client):
                _job(
                    first.scene("TM"),
                    CubeGrid(first.grid.crs, first.grid.transform, (chunk, chunk)),
                    chunk,
                    tmp / f"warm-{chunk}",
                )
            for size in sizes:
                work = tmp / f"s{size}-c{chunk}"
                work.mkdir()
                a = archives[size]
                cases.append(measure(client, pid, a.scene("TM"), a.grid, chunk, work))
        chunk = min(chunks)

        def each_size(label: str, write: bool = True) -> dict[int, dict[str, Any]]:
            return {
                size: measure(
                    client,
                    pid,
                    archives[size].scene("TM"),
                    archives[size].grid,
                    chunk,
                    tmp / f"{label}-{size}",
                    write=write,
                )
                for size in sizes
            }

        # The same cases with GDAL's block cache bounded far below a scene: what of the
        # growth with the scene size is GDAL's cache (windows of one block go through it)
        client.run(_bound_gdal_cache, SMALL_GDAL_CACHE_MB)
        try:
            bounded = each_size("bounded")
        finally:
            client.run(_bound_gdal_cache, None)
        no_write = each_size("nowrite", write=False)
    mib = 2**20
    rows = []
    for c in cases:
        rows.append(
            _common.row(
                f"scene {c['scene_edge']}^2 px, chunk {c['chunk']}^2: peak RSS above baseline",
                c["peak_above_baseline"] / mib,
                "MiB",
            )
        )
        rows.append(
            _common.row(
                f"scene {c['scene_edge']}^2, chunk {c['chunk']}^2: peak / (chunk bytes x threads)",
                c["multiple"],
                "x",
                f"<= {TARGET_MULTIPLE:g}x",
                c["multiple"] <= TARGET_MULTIPLE,
            )
        )
    small, large = min(sizes), max(sizes)
    for chunk in chunks:
        a = next(c for c in cases if c["chunk"] == chunk and c["scene_edge"] == small)
        b = next(c for c in cases if c["chunk"] == chunk and c["scene_edge"] == large)
        growth = b["peak_above_baseline"] / max(a["peak_above_baseline"], 1)
        rows.append(
            _common.row(
                f"chunk {chunk}^2: peak at scene {large}^2 / at {small}^2 "
                f"({(large / small) ** 2:g}x the pixels)",
                growth,
                "x",
                f"<= {TARGET_SCENE_GROWTH:g}x",
                growth <= TARGET_SCENE_GROWTH,
            )
        )
    for size, c in bounded.items():
        rows.append(
            _common.row(
                f"scene {size}^2, chunk {c['chunk']}^2, GDAL cache bounded at "
                f"{SMALL_GDAL_CACHE_MB} MiB: peak RSS above baseline",
                c["peak_above_baseline"] / mib,
                "MiB",
            )
        )
    growth = bounded[large]["peak_above_baseline"] / max(bounded[small]["peak_above_baseline"], 1)
    rows.append(
        _common.row(
            f"chunk {bounded[large]['chunk']}^2, GDAL cache bounded at {SMALL_GDAL_CACHE_MB} "
            f"MiB: peak at scene {large}^2 / at {small}^2",
            growth,
            "x",
        )
    )
    for size, c in no_write.items():
        rows.append(
            _common.row(
                f"scene {size}^2, chunk {c['chunk']}^2, without the write: peak RSS above baseline",
                c["peak_above_baseline"] / mib,
                "MiB",
            )
        )
    return {
        "benchmark": "memory",
        "rows": rows,
        "config": {
            "quick": quick,
            "sizes": list(sizes),
            "chunks": list(chunks),
            "threads": THREADS,
            "chunk_bytes_per_pixel": BYTES_PER_PIXEL,
            "sample_seconds": SAMPLE_SECONDS,
        },
        "cases": cases,
        "cases_without_write": list(no_write.values()),
        "cases_gdal_cache_bounded": list(bounded.values()),
        "environment": env,
    }


def report(summary: dict[str, Any]) -> str:
    """Human-readable table of :func:`run` output."""
    cfg = summary["config"]
    head = (
        f"memory benchmark: one TM scene per case -> committed cube on a LocalCluster of 1 "
        f"worker x {cfg['threads']} thread; RSS sampled every {cfg['sample_seconds'] * 1e3:g} "
        f"ms; chunk bytes = {cfg['chunk_bytes_per_pixel']} B x chunk edge^2"
    )
    return head + "\n" + _common.format_rows(summary["rows"])


if __name__ == "__main__":
    sys.exit(_common.bench_main(run, report, __doc__.split("\n")[0]))
