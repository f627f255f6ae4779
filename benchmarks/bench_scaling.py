"""Scaling: the same multi-scene batch on 1 and on 2 worker processes, in one run.

The job is one batch of a generated demo archive (8 scenes of 2,048^2 px: MSS, TM, ETM+
SLC-off and OLI; real GeoTIFF + MTL files; the job the archive-scale issue measured) on its
grid, done the way ``updm run`` does a
batch: ``scene_on_grid`` for every scene, then ``Cube.append_scenes`` (one commit) on a
fresh cube, with a ``distributed.LocalCluster`` of worker processes with one thread each
as the active scheduler. Scenes are read in chunks of the default edge (1,024 px, see
``SCENE_CHUNKS``): 4 per scene here, about 50 in a real one. Both clusters are started (and warmed
up on a small window of the grid) before any timing, and the runs alternate between them,
so that both see the same machine load; the median of the rounds counts (of two: their
mean).

Reported besides the speedup (target >= 1.7x):

* scheduler overhead: tasks run per scene (from the task stream of the batch), tasks in
  the graph of one ``scene_on_grid``, the time to build the graphs and the driver's time
  before the first task starts, as shares of the batch's wall time;
* worker utilisation: task time summed over the task stream / (wall time x workers);
* the cores the workers actually got: their CPU time over the batch / wall time. On a
  machine shared with other work this bounds the speedup that can be seen; so the report
  also gives the workers' CPU time per batch (2 workers / 1 worker: the cost of going
  parallel) and the speedup the same work would reach on two idle cores, estimated as
  (driver serial time + worker CPU) / (driver serial time + worker CPU / 2), the driver's
  serial time being graph building, the time before the first task and after the last.

``--quick`` (the smoke test) runs tiny scenes on in-process workers: it checks that the
script works, its numbers mean nothing.

Usage::

    python benchmarks/bench_scaling.py [--quick] [--json PATH]
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from itertools import count
from typing import Any

import _common
import dask
import psutil

from updm_dask.cube import create_cube
from updm_dask.geo import CubeGrid
from updm_dask.jobs.run import scene_on_grid

TARGET_SPEEDUP = 1.7
SIZE, QUICK_SIZE = 2048, 128
N_SCENES = 8
REPEATS, QUICK_REPEATS = 2, 1
#: Scene chunk edge: the default (``updm.chunks.spatial``), 4 chunks per 2,048^2 scene; a
#: real scene (~7000^2) has about 50.
SCENE_CHUNKS, QUICK_SCENE_CHUNKS = 1024, 64
WORKERS = (1, 2)


def _warm_grid(grid: CubeGrid) -> CubeGrid:
    """A small window of the grid: a warm-up batch reads and processes one chunk."""
    edge = min(256, grid.ny, grid.nx)
    return CubeGrid(grid.crs, grid.transform, (edge, edge))


def _execution_window(dask_worker, since: float, until: float) -> tuple[float, float] | None:
    """First start and last end of task execution on a worker between two moments.

    Read from the worker state machine's transition log, whose entries end with the
    worker's ``time()`` of the transition: a task enters ``executing`` just before its
    thread runs it and leaves it just after (to ``memory`` or ``error``).
    """
    starts, ends = [], []
    for entry in dask_worker.state.log:
        # A transition entry: (key, start, finish, final state, recommendations, stimulus,
        # time); other entries (put-in-memory, free-keys, ...) are shorter.
        if len(entry) != 7 or not isinstance(entry[-1], float):
            continue
        stamp = entry[-1]
        if not since <= stamp <= until:
            continue
        if entry[3] == "executing" and entry[1] != "executing":
            starts.append(stamp)
        elif entry[1] == "executing" and entry[3] != "executing":
            ends.append(stamp)
    if not starts or not ends:
        return None
    log = dask_worker.state.log
    if len(log) == log.maxlen and log[0][-1] > since:
        raise RuntimeError(
            "bench_scaling: the worker's transition log (dask config "
            "distributed.admin.low-level-log-length) no longer holds the start of the batch"
        )
    return min(starts), max(ends)


def _batch(client, scenes, grid, path, chunks: int) -> dict[str, Any]:
    """One batch on ``client``: graphs, append, commit; timings and the task stream."""
    from distributed import get_task_stream

    pids = set(client.run(os.getpid).values())
    procs = [psutil.Process(p) for p in pids]
    cpu0 = sum(sum(p.cpu_times()[:2]) for p in procs)
    cube = create_cube(path, grid)
    with dask.config.set({"scheduler": client, "updm.chunks.spatial": chunks}):
        t0 = time.perf_counter()
        placed = [scene_on_grid(s, grid) for s in scenes]
        t_build = time.perf_counter() - t0
        w_call = time.time()
        with get_task_stream(client) as stream:
            cube.append_scenes(placed, metadata={"job_id": "bench-scaling"}, message="batch")
        w_end = time.time()
        wall = time.perf_counter() - t0
    cpu = sum(sum(p.cpu_times()[:2]) for p in procs) - cpu0
    computes = [
        ss
        for task in stream.data
        for ss in task.get("startstops", ())
        if ss.get("action") == "compute"
    ]
    # The task stream's times are shifted into the scheduler's clock by each worker's
    # estimate of its offset, which is off by the heartbeat's latency asymmetry (ms, more
    # than a quick batch's commit). The workers' own transition logs hold the same moments
    # in the one clock this machine has, so the driver's time around the tasks comes from
    # there, and it is positive: the driver calls before the first task starts and ends
    # after the last one ends.
    windows = [w for w in client.run(_execution_window, since=w_call, until=w_end).values() if w]
    first = min((w[0] for w in windows), default=w_call)
    last = max((w[1] for w in windows), default=w_end)
    busy = sum(ss["stop"] - ss["start"] for ss in computes)
    transfers = [
        ss
        for task in stream.data
        for ss in task.get("startstops", ())
        if ss.get("action") == "transfer"
    ]
    shutil.rmtree(path, ignore_errors=True)
    return {
        "wall": wall,
        "build": t_build,
        "before_first_task": max(first - w_call, 0.0),
        "after_last_task": max(w_end - last, 0.0),
        "tasks": len(stream.data),
        "busy": busy,
        "transfers": len(transfers),
        "transfer_seconds": sum(ss["stop"] - ss["start"] for ss in transfers),
        "cpu": cpu,
        "graph_tasks": len(dict(placed[0].__dask_graph__())),
    }


def run(quick: bool = False) -> dict[str, Any]:
    """Time the batch on 1 and 2 workers; JSON-ready summary with ``rows``."""
    from distributed import Client, LocalCluster

    env = _common.environment()
    size = QUICK_SIZE if quick else SIZE
    repeats = QUICK_REPEATS if quick else REPEATS
    chunks = QUICK_SCENE_CHUNKS if quick else SCENE_CHUNKS
    archive = _common.demo_archive(size, n_scenes=N_SCENES)
    scenes, grid = list(archive.scenes), archive.grid
    _common.warm_up_pipeline(archive)
    pixels = sum(
        s.metadata.shape[0] * s.metadata.shape[1] if s.metadata.shape else grid.ny * grid.nx
        for s in scenes
    )
    clusters: dict[int, Any] = {}
    clients: dict[int, Any] = {}
    results: dict[int, list[dict[str, Any]]] = {n: [] for n in WORKERS}
    with _common.workspace("updm-bench-scaling-") as tmp, _common.quiet_distributed():
        try:
            n_cube = count()
            for n in WORKERS:
                # the workers' transition logs must hold a whole batch (_execution_window);
                # dask keeps the last 1,000 transitions, a batch of 8 scenes makes more
                with dask.config.set({"distributed.admin.low-level-log-length": 100_000}):
                    clusters[n] = LocalCluster(
                        n_workers=n,
                        threads_per_worker=1,
                        processes=not quick,
                        dashboard_address=":0",  # any free port: no clash, no warning
                        local_directory=str(tmp / f"workers-{n}"),
                    )
                clients[n] = Client(clusters[n], set_as_default=False)
                _batch(clients[n], scenes, _warm_grid(grid), tmp / f"cube-{next(n_cube)}", chunks)
            for _ in range(repeats):
                for n in WORKERS:
                    results[n].append(
                        _batch(clients[n], scenes, grid, tmp / f"cube-{next(n_cube)}", chunks)
                    )
        finally:
            for n in WORKERS:
                if n in clients:
                    clients[n].close()
                if n in clusters:
                    clusters[n].close()

    def mid(n: int) -> dict[str, float]:
        return {k: _common.median([r[k] for r in results[n]]) for k in results[n][0]}

    one, two = mid(1), mid(2)
    speedup = one["wall"] / two["wall"]
    # What the same work would take on cores of its own: the driver's serial part plus the
    # workers' CPU time shared out among them.
    serial = {
        n: r["build"] + r["before_first_task"] + r["after_last_task"]
        for n, r in ((1, one), (2, two))
    }
    idle = (serial[1] + one["cpu"]) / (serial[2] + two["cpu"] / 2)
    rows = [
        _common.row(
            f"batch of {len(scenes)} scenes {size}x{size}, 1 worker process", one["wall"], "s"
        ),
        _common.row(f"batch of {len(scenes)} scenes, 2 worker processes", two["wall"], "s"),
        _common.row(
            "speedup 2 workers vs 1",
            speedup,
            "x",
            f">= {TARGET_SPEEDUP:g}x",
            speedup >= TARGET_SPEEDUP,
        ),
        _common.row("throughput per core, 2 workers", pixels / two["wall"] / 2, "px/s/core"),
        _common.row("tasks run per scene (read ... commit)", two["tasks"] / len(scenes), "tasks"),
        _common.row("tasks in the graph of one scene_on_grid", two["graph_tasks"], "tasks"),
        _common.row(
            "worker CPU per batch, 2 workers / 1 worker (parallel overhead)",
            two["cpu"] / one["cpu"],
            "x",
        ),
        _common.row(
            "speedup estimated for 2 idle cores (driver serial time + worker CPU / 2)",
            idle,
            "x",
        ),
    ]
    for n, r in ((1, one), (2, two)):
        rows += [
            _common.row(
                f"{n} worker(s): graph build share of wall", 100 * r["build"] / r["wall"], "%"
            ),
            _common.row(
                f"{n} worker(s): driver time before the first task, share of wall",
                100 * max(r["before_first_task"], 0.0) / r["wall"],
                "%",
            ),
            _common.row(
                f"{n} worker(s): driver time after the last task (merge, commit), share of wall",
                100 * r["after_last_task"] / r["wall"],
                "%",
            ),
            _common.row(f"{n} worker(s): worker CPU per batch", r["cpu"], "s"),
            _common.row(
                f"{n} worker(s): utilisation (task time / wall x workers)",
                100 * r["busy"] / (r["wall"] * n),
                "%",
            ),
            _common.row(
                f"{n} worker(s): cores obtained (worker CPU / wall)", r["cpu"] / r["wall"], "cores"
            ),
        ]
    return {
        "benchmark": "scaling",
        "rows": rows,
        "config": {
            "quick": quick,
            "scenes": [f"{s.metadata.sensor} {s.scene_id}" for s in scenes],
            "grid": list(grid.shape),
            "scene_pixels": pixels,
            "threads_per_worker": 1,
            "scene_chunks": chunks,
            "repeats": repeats,
        },
        "runs": {str(n): results[n] for n in WORKERS},
        "environment": env,
    }


def report(summary: dict[str, Any]) -> str:
    """Human-readable table of :func:`run` output."""
    cfg = summary["config"]
    head = (
        f"scaling benchmark: one batch of {len(cfg['scenes'])} scenes ({', '.join(cfg['scenes'])})"
        f" on a {cfg['grid'][0]}x{cfg['grid'][1]} grid, scene chunks {cfg['scene_chunks']},"
        " LocalCluster with 1 thread per worker;"
        f" median of {cfg['repeats']} rounds"
    )
    return head + "\n" + _common.format_rows(summary["rows"])


if __name__ == "__main__":
    sys.exit(_common.bench_main(run, report, __doc__.split("\n")[0]))
