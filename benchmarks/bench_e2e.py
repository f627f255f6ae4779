"""End to end: one Landsat scene to a committed cube, against the I/O floor, in one run.

The scene is the TM scene of a generated demo archive (real GeoTIFF + MTL files: six uint8
band files and a uint16 QA_PIXEL, deflate-compressed, 256 x 256 tiles) on a 2048 x 2048
grid, so 4.2 million pixels; the cube has the scene's own grid (placing the scene on it is
pure slicing) and the package's default layout (scene chunks ``updm.chunks.spatial``, cube
chunks ``updm.chunks.cube``, zstd). Everything runs on the threaded scheduler with one
thread per core, the floor too. Each case is timed on a fresh cube, and the cases are
taken round by round (median of the rounds):

* e2e: ``scene_on_grid`` + ``Cube.append_scenes(..., reject_empty=True)`` (one commit),
  which is what a job does with a batch;
* I/O floor: the same reads (the very read tasks of ``open_scene``: rasterio windows of
  the same chunks, every band and the QA band) feeding, chunk by chunk, the e2e run's own
  output, which was computed once beforehand and is held in memory, into
  ``Cube.append_scenes`` on a fresh cube: the same arrays, shapes, dtypes, chunks, codec,
  fill values and the very same bytes, so the compressed size is identical (a row checks
  it), and the same commit. What is left out is the computation: calibration, NNLS,
  classification, regridding and dtype casts;
* write only: the precomputed output from memory to a fresh cube (no reads at all);
* stages, each computed and thrown away chunk by chunk (nothing is written): read only;
  read + process (``process_scene``); read + process + regrid + the cast and rechunk to
  the cube's chunks (``scene_on_grid`` as ``append_scenes`` prepares it). Their
  differences show where the time goes; the e2e's own tasks are also timed by kind.

Also: tasks run per scene, the time to build the graph and the driver's time before the
first and after the last task (merging the sessions, the empty-scene check, the commit),
and measured prototypes of cheaper settings, both plain dask config, no code change:
zstd level 1 (``updm.compression.zstd-level``), scene chunks equal to the cube chunks
(``updm.chunks.spatial``), and both.

Target: e2e <= 2x the floor.

Usage::

    python benchmarks/bench_e2e.py [--quick] [--json PATH]
"""

from __future__ import annotations

import operator
import os
import shutil
import sys
import time
from itertools import count
from pathlib import Path
from typing import Any

import _common
import dask
import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from updm_dask.cube import SCENE_VARIABLES, create_cube, encode_layer
from updm_dask.geo import CubeGrid
from updm_dask.jobs.run import scene_on_grid
from updm_dask.pipeline import process_scene
from updm_dask.scenes import open_scene

TARGET_VS_FLOOR = 2.0
SIZE, QUICK_SIZE = 2048, 128
#: Rounds per case: the two the target compares get most; the stages and prototypes,
#: which explain and explore, fewer (a full run must stay within a couple of minutes).
REPEATS = {
    "e2e": 3,
    "floor": 3,
    "write": 1,
    "zstd1": 2,
    "chunks_eq": 2,
    "both": 2,
    "read": 1,
    "process": 1,
    "regrid": 1,
}

#: Task kinds of the e2e graph (by task name), for the time breakdown.
TASK_KINDS = {
    "process (calibrate, NNLS, classify)": ("updm-process",),
    "read band windows": ("read-",),
    "encode + write chunks": ("ice-changeset",),
}


# --------------------------------------------------------------------------------------
# Helpers


def _discard(arrays: list[da.Array]) -> list[da.Array]:
    """Compute every block of ``arrays`` but keep nothing of it (a 1-element block each)."""

    def nothing(block: np.ndarray) -> np.ndarray:
        return np.zeros((1,) * block.ndim, dtype=np.int8)

    return [
        a.map_blocks(nothing, chunks=tuple((1,) * len(c) for c in a.chunks), dtype=np.int8).sum()
        for a in arrays
    ]


def _cube_chunks(grid: CubeGrid) -> tuple[int, int]:
    edge = int(dask.config.get("updm.chunks.cube"))
    return min(edge, grid.ny), min(edge, grid.nx)


class _Outputs:
    """The precomputed scene layers, kept out of dask's sight (a dict would be traversed)."""

    def __init__(self, layers: dict[str, np.ndarray]) -> None:
        self.layers = layers


def _pick(outputs: _Outputs, rows: slice, cols: slice, *reads: np.ndarray) -> dict:
    # The reads arrive (and are dropped): the floor pays for them, not for any computation.
    return {name: layer[rows, cols] for name, layer in outputs.layers.items()}


def floor_dataset(
    source: Any, outputs: _Outputs, attrs: dict, grid: CubeGrid, chunks: int | None
) -> xr.Dataset:
    """The floor's scene: ``open_scene``'s read tasks, each followed by its output block.

    One task per read block takes the block's DN and QA windows and returns the stored
    output of the same pixels for every variable; every variable's dask array picks its
    part from it. So every band window is read exactly once, as in the e2e, and nothing
    is computed.
    """
    scene = open_scene(source, chunks=chunks)
    reads = [scene[v].data for v in ("dn", "qa", "radsat") if v in scene]
    dn = reads[0]
    ychunks, xchunks = dn.chunks[-2], dn.chunks[-1]
    yoff = np.cumsum((0, *ychunks))
    xoff = np.cumsum((0, *xchunks))
    token = tokenize(*reads, id(outputs))
    pick = "floor-pick-" + token
    layer = {}
    for i in range(len(ychunks)):
        for j in range(len(xchunks)):
            deps = [(a.name, *(0,) * (a.ndim - 2), i, j) for a in reads]
            rows, cols = slice(yoff[i], yoff[i + 1]), slice(xoff[j], xoff[j + 1])
            layer[(pick, i, j)] = (_pick, outputs, rows, cols, *deps)
    base = HighLevelGraph.from_collections(pick, layer, dependencies=reads)
    variables = {}
    for name, values in outputs.layers.items():
        out = f"floor-{name}-{token}"
        tasks = {
            (out, i, j): (operator.getitem, (pick, i, j), name)
            for i in range(len(ychunks))
            for j in range(len(xchunks))
        }
        graph = HighLevelGraph({**base.layers, out: tasks}, {**base.dependencies, out: {pick}})
        arr = da.Array(graph, out, chunks=(ychunks, xchunks), dtype=values.dtype)
        variables[name] = (("y", "x"), arr)
    return _on_grid(variables, attrs, grid)


def _on_grid(variables: dict, attrs: dict, grid: CubeGrid) -> xr.Dataset:
    ds = xr.Dataset(variables, coords={"y": grid.y, "x": grid.x}, attrs=dict(attrs))
    return ds.rio.write_crs(grid.crs_wkt).rio.write_transform(grid.transform)


class _Cubes:
    """Fresh cubes in a work folder, each removed after its case."""

    def __init__(self, folder: Path, grid: CubeGrid) -> None:
        self.folder, self.grid, self._n = folder, grid, count()

    def new(self, chunks: int | None = None):
        path = self.folder / f"cube-{next(self._n)}"
        return create_cube(path, self.grid, chunks=chunks), path


def _append(cube, scene: xr.Dataset) -> None:
    cube.append_scenes(
        [scene], metadata={"job_id": "bench-e2e"}, message="bench e2e", reject_empty=True
    )


# --------------------------------------------------------------------------------------
# The benchmark


def run(quick: bool = False) -> dict[str, Any]:
    """Time the e2e path, its floor and its stages; JSON-ready summary with ``rows``."""
    env = _common.environment()
    size = QUICK_SIZE if quick else SIZE
    repeats = 1 if quick else REPEATS
    archive = _common.demo_archive(size, n_scenes=2)
    source, grid = archive.scene("TM"), archive.grid
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    pixels = grid.ny * grid.nx
    cube_chunks = _cube_chunks(grid)
    scene_chunks = int(dask.config.get("updm.chunks.spatial"))

    with (
        _common.workspace("updm-bench-e2e-") as tmp,
        dask.config.set(scheduler="threads", num_workers=threads),
    ):
        cubes = _Cubes(tmp, grid)

        # Warm-up (imports, GDAL, Icechunk) and the reference output of the floor.
        cube, path = cubes.new()
        placed = scene_on_grid(source, grid)
        graph_tasks = len(dict(placed.__dask_graph__()))
        _append(cube, placed)
        attrs = dict(placed.attrs)
        stored = cube.to_xarray().isel(time=0)
        outputs = _Outputs(
            {name: np.ascontiguousarray(stored[name].values) for name in SCENE_VARIABLES}
        )
        e2e_bytes = sum(
            _common.stored_chunk_bytes(cube.session().store, n)[0] for n in SCENE_VARIABLES
        )
        shutil.rmtree(path)
        runs: list[dict[str, Any]] = []

        def e2e(chunks: int | None = None, config: dict | None = None) -> float:
            with dask.config.set(config or {}):
                c, p = cubes.new()
                log = _common.TaskLog(TASK_KINDS)
                t = time.perf_counter()
                scene = scene_on_grid(source, grid, chunks=chunks)
                t_call = time.perf_counter()
                with log:
                    _append(c, scene)
                t_done = time.perf_counter()
            shutil.rmtree(p)
            if chunks is None and config is None:
                runs.append({"build": t_call - t, "call": t_call, "done": t_done, "log": log})
            return t_done - t

        floor_bytes: list[int] = []

        def floor() -> float:
            c, p = cubes.new()
            t = time.perf_counter()
            _append(c, floor_dataset(source, outputs, attrs, grid, None))
            seconds = time.perf_counter() - t
            if not floor_bytes:
                floor_bytes.append(
                    sum(
                        _common.stored_chunk_bytes(c.session().store, n)[0] for n in SCENE_VARIABLES
                    )
                )
            shutil.rmtree(p)
            return seconds

        def write_only() -> float:
            c, p = cubes.new()
            t = time.perf_counter()
            _append(
                c, _on_grid({n: (("y", "x"), v) for n, v in outputs.layers.items()}, attrs, grid)
            )
            seconds = time.perf_counter() - t
            shutil.rmtree(p)
            return seconds

        def read_only() -> float:
            t = time.perf_counter()
            scene = open_scene(source)
            dask.compute(*_discard([scene[v].data for v in ("dn", "qa", "radsat") if v in scene]))
            return time.perf_counter() - t

        def read_process() -> float:
            t = time.perf_counter()
            layers = process_scene(open_scene(source))
            dask.compute(*_discard([layers[n].data for n in SCENE_VARIABLES]))
            return time.perf_counter() - t

        def read_process_regrid() -> float:
            t = time.perf_counter()
            on_grid = scene_on_grid(source, grid)
            arrays = [
                encode_layer(n, on_grid[n].data).rechunk(cube_chunks) for n in SCENE_VARIABLES
            ]
            dask.compute(*_discard(arrays))
            return time.perf_counter() - t

        cases = {
            "read": read_only,
            "floor": floor,
            "write": write_only,
            "process": read_process,
            "regrid": read_process_regrid,
            "e2e": e2e,
            "zstd1": lambda: e2e(config={"updm.compression.zstd-level": 1}),
            "chunks_eq": lambda: e2e(chunks=cube_chunks[0]),
            "both": lambda: e2e(chunks=cube_chunks[0], config={"updm.compression.zstd-level": 1}),
        }
        times = _common.interleave(cases, repeats)

    t = {k: _common.median(v) for k, v in times.items()}
    ratio = t["e2e"] / t["floor"]
    # the task breakdown of the e2e run that took the median time
    mid = sorted(runs, key=lambda r: r["done"] - r["call"] + r["build"])[len(runs) // 2]
    log = mid["log"]
    task_total = sum(log.seconds.values())
    rows = [
        _common.row(f"e2e: TM scene {size}x{size} px -> committed cube", t["e2e"], "s"),
        _common.row("I/O floor: same reads + same bytes written, committed", t["floor"], "s"),
        _common.row(
            "e2e / I/O floor", ratio, "x", f"<= {TARGET_VS_FLOOR:g}x", ratio <= TARGET_VS_FLOOR
        ),
        _common.row(
            f"e2e throughput per core ({threads} threads)",
            pixels / t["e2e"] / threads,
            "px/s/core",
        ),
        _common.row("floor throughput per core", pixels / t["floor"] / threads, "px/s/core"),
        _common.row("floor stored bytes / e2e stored bytes", floor_bytes[0] / e2e_bytes, "x"),
        _common.row("stage: read only (rasterio windows)", t["read"], "s"),
        _common.row("stage: read + process (calibrate, NNLS, classify)", t["process"], "s"),
        _common.row("stage: read + process + regrid + cast/rechunk", t["regrid"], "s"),
        _common.row("stage: ... + encode, write, commit (= e2e)", t["e2e"], "s"),
        _common.row("write only: precomputed layers -> committed cube", t["write"], "s"),
    ]
    for kind in [*TASK_KINDS, "other"]:
        if log.seconds.get(kind, 0) > 0:
            rows.append(
                _common.row(
                    f"e2e task time: {kind} ({log.count[kind]} tasks)",
                    100 * log.seconds[kind] / task_total,
                    "%",
                )
            )
    wall = mid["done"] - mid["call"] + mid["build"]
    rows += [
        _common.row("tasks run per scene (read ... commit)", log.tasks, "tasks"),
        _common.row("tasks in the graph of one scene_on_grid", graph_tasks, "tasks"),
        _common.row(
            "graph build (scene_on_grid) share of e2e wall", 100 * mid["build"] / wall, "%"
        ),
        _common.row(
            "driver time before the first task (validate, resize, graph)",
            log.first_start - mid["call"],
            "s",
        ),
        _common.row(
            "driver time after the last task (merge, empty check, commit)",
            mid["done"] - log.last_end,
            "s",
        ),
        _common.row("prototype: zstd level 1 (dask config), e2e", t["zstd1"], "s"),
        _common.row("prototype: zstd level 1, time vs e2e", t["zstd1"] / t["e2e"], "x"),
        _common.row(
            f"prototype: scene chunks {cube_chunks[0]} (= cube chunks), e2e", t["chunks_eq"], "s"
        ),
        _common.row(
            f"prototype: scene chunks {cube_chunks[0]}, time vs e2e",
            t["chunks_eq"] / t["e2e"],
            "x",
        ),
        _common.row("prototype: both (zstd 1 and scene chunks = cube chunks), e2e", t["both"], "s"),
        _common.row("prototype: both, time vs e2e", t["both"] / t["e2e"], "x"),
        _common.row(
            "prototype: both, e2e / I/O floor (floor at zstd 3)", t["both"] / t["floor"], "x"
        ),
    ]
    return {
        "benchmark": "e2e",
        "rows": rows,
        "config": {
            "quick": quick,
            "scene": source.scene_id,
            "sensor": source.metadata.sensor,
            "scene_pixels": pixels,
            "scene_chunks": scene_chunks,
            "cube_chunks": list(cube_chunks),
            "zstd_level": int(dask.config.get("updm.compression.zstd-level")),
            "scheduler": f"threads x {threads}",
            "repeats": repeats if quick else dict(REPEATS),
            "stored_bytes": e2e_bytes,
            "task_counts": dict(log.count),
            "task_seconds": {k: round(v, 4) for k, v in log.seconds.items()},
        },
        "times": times,
        "environment": env,
    }


def report(summary: dict[str, Any]) -> str:
    """Human-readable table of :func:`run` output."""
    cfg = summary["config"]
    rounds = cfg["repeats"]
    if isinstance(rounds, dict):
        rounds = ", ".join(f"{k} {v}" for k, v in rounds.items())
    head = (
        f"e2e benchmark: {cfg['sensor']} scene {cfg['scene']} ({cfg['scene_pixels']:,} px), "
        f"scene chunks {cfg['scene_chunks']}, cube chunks {tuple(cfg['cube_chunks'])}, zstd "
        f"{cfg['zstd_level']}, {cfg['scheduler']}; medians of rounds ({rounds})"
    )
    return head + "\n" + _common.format_rows(summary["rows"])


if __name__ == "__main__":
    sys.exit(_common.bench_main(run, report, __doc__.split("\n")[0]))
