"""Archive scale, before and after: every figure of the table of ``scale-design.md``
("what grows | measured | why"), measured again on today's code in ONE run.

The "before" column quotes the design note's measurements of the earlier code (they are
not re-run: that code is gone); the "after" column is measured here, on the same machine
and load for every row. Tiny pixels where the figure is about counts (scenes, commits,
chunk references, tasks), real pixels where it is about speed. Measured:

1. **Tasks per scene against the grid.** The same generated TM scene (a demo archive
   scene, real GeoTIFF + MTL files, ``S`` x ``S`` px) is placed in the middle of grids of
   2,048^2, 32,768^2, 131,072^2 and 200,000^2 px (same CRS and 30 m lattice, the scene on
   the cube's chunk lattice) and appended to a fresh cube of each (``scene_on_grid`` +
   ``Cube.append_scenes``, threaded scheduler): tasks run (a dask callback counts them)
   and the append's wall time. An MSS scene of an earlier year goes in first, with a first
   per-year build, so that the TM scene's year is then rebuilt the way a job rebuilds it.
2. **The per-year rebuild per scene:** ``Cube.rebuild_yearly`` of the TM scene's year on
   each grid (time, tasks, bytes the repository grew by); and on the commit cube below
   (3,232 scenes over 71 years): the first build of every year, then one batch of 32 new
   scenes and the rebuild of their year.
3. **Commit latency and manifest bytes** at 100 .. 3,200 scenes, from
   ``bench_commits.grow`` (manifest splitting on, the package's setting; batches of 32).
4. **A point's every-scene series** (8 variables) on a cube of ``N`` generated scenes
   (1,000: a WRS-2 path/row over 50 years; chunks ``(1, 512, 512)`` as in the design
   note's figure), per-scene layout and after ``compact_time_blocks`` (``updm compact``):
   median wall time over several pixels (target < 0.3 s with time blocks)
   and the bytes the process read for one series (``rchar`` of ``/proc/self/io``, so
   file reads through the page cache count too; 0 where the system does not say).
5. **Scheduler CPU per task and tasks per 7,000^2 scene:** ``bench_job`` runs the job
   (decode, UPDM, append, per-year rebuild) on real ``dask scheduler`` / ``dask worker``
   processes; the same job's tasks are counted under the threaded scheduler (the same
   graphs); scheduler CPU / tasks is the cost of a task. Tasks of a 7,000^2 scene: a line
   through the task counts of the TM scene at two sizes (``S`` and ``2S`` px, each on its
   own grid: tasks = a + b x pixels), evaluated at 49 M px; the job's ceiling on one
   scheduler is then 1 / (tasks per scene x scheduler CPU per task), whatever the cluster.
6. **Bytes per pixel per scene:** every scene-level layer of the TM scene (supplementary
   pattern on, so every float layer is filled) as the cube stores it (chunk objects only).
7. **End to end:** ``bench_job``'s marginal cost per scene against the physical floor,
   Mpx/s per core and 2 workers against 1.

8. **A continental grid, tiled:** the TM scene on grids of 131,072^2 and 200,000^2 px
   cut into tiles of dask config ``updm.tiles.edge`` (4,096), placed so that it lies in
   one tile, straddles two and straddles four, written the way a tiled job writes it (the
   tiles its footprint touches; per tile ``Collection.create_tile``, ``scene_on_grid`` on
   the tile's grid cut on the tile cube's chunks, ``Cube.append_scenes``, then the tile's
   ``Cube.rebuild_yearly`` of the scene's year), against the same work item on a single
   cube of the scene's own grid: tasks, append and rebuild time (median of 3), the
   driver's peak memory (``tracemalloc``) to build the scene's lazy layers and their
   graph, bytes of the catalogue and of each tile; ratios to the own grid. Then the
   largest scene the demo makes (4,096^2, a third of a real 7,000^2 scene's pixels) across
   4 tiles of the 131,072^2 grid, against its own grid (median of 2): per-tile costs (a
   scene set-up, a commit) against a scene's work, nearer the real workload than the
   1,024^2 TM scene.

The table is printed in markdown (what grows | before | after | ratio/target) with the
load average at the start and at the end and the CPU time the host gave to other virtual
machines during the run (steal, which the load average does not show), then the
continental rows in a second table of the same columns; the JSON holds every number.

Usage::

    python benchmarks/bench_scale_table.py [--quick] [--json PATH]

``--quick`` runs everything tiny (a smoke test: its numbers mean nothing). ``run_all.py``
does not run this script (it repeats ``bench_job`` and part of ``bench_commits``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _common
import bench_commits
import bench_job
import dask
import numpy as np
import zarr
from affine import Affine

from updm_dask import config, query
from updm_dask.cube import (
    compact_time_blocks,
    create_collection,
    create_cube,
    open_cube,
    tile_edge,
)
from updm_dask.geo import CubeGrid
from updm_dask.geo.regrid import grid_window
from updm_dask.jobs.run import scene_on_grid
from updm_dask.pipeline import Science
from updm_dask.scenes import open_scene

#: Scene edge (px) of the grid experiment and its quick form.
SIZE, QUICK_SIZE = 1024, 128
#: Grid edges the same scene is placed on.
GRIDS = (2048, 32768, 131072, 200000)
QUICK_GRIDS = (1024, 4096)
#: Continental grids written as tiled collections, and the tile edge of the quick form
#: (the full run uses the default tile edge, dask config ``updm.tiles.edge``).
CONTINENT_GRIDS, QUICK_CONTINENT_GRIDS = (131072, 200000), (1024,)
QUICK_TILE = 256
#: Times each continental placement is written (median time).
TILED_REPEATS = 3
#: The largest scene the demo makes (a third of a real 7,000^2 scene's pixels), written
#: across 4 tiles of the first continental grid: per-tile costs against a scene's work.
LARGE_SCENE = 4096
LARGE_REPEATS = 2
#: Scenes and chunk edge of the point-series cube.
SERIES_SCENES, QUICK_SERIES_SCENES = 1000, 24
#: Target of the time-blocked series: well under a second.
SERIES_TARGET_S = 0.3
SERIES_EDGE, QUICK_SERIES_EDGE = 512, 32
SERIES_BATCH = 50
REPEATS, QUICK_REPEATS = 5, 2
#: Scenes of the commit cube.
COMMIT_SCENES, QUICK_COMMIT_SCENES = 3200, 200
#: The reference scene of the scheduler estimate.
BIG_SCENE_PX = 7000 * 7000
LAYERS = ("uCw", "uCv", "uCs", "uC4", "residual", "mviupd", "land_cover", "quality")

#: The design note's figures (the "before" column), quoted as written there.
SOURCE = "scale-design.md"
BEFORE = {
    "tasks": "662 tasks on a 2,048^2 grid, 111,542 on 32,768^2, 4.07 M on 200,000^2 "
    "(3.2 GB of driver memory, 47 s to build)",
    "append": "0.61 s -> 128 s (2,048^2 -> 200,000^2)",
    "commit": "17 ms at 48 scenes, 390 ms at 3,200 (linear)",
    "manifest": "0.45 MB -> 1.66 GB on disk (quadratic), larger than the chunk data at 3,200",
    "rebuild": "50 ms and 0.27 MB per scene, whole grid, all years touched",
    "rebuild_tasks": "214-291 k tasks for 50 years on 2,048^2",
    "series": "1.6 ms per chunk read: 10 s for 8 variables at 800 scenes; "
    "4.1 GB read at 1,000 scenes",
    "scheduler": "0.2-0.65 ms of scheduler CPU per task; a 7,000^2 scene ~11,100 tasks; "
    "a job tops out near 0.13-0.43 scenes/s",
    "storage": "15.6 B per pixel per scene (float32 + zstd-3); DEA stores 4",
    "e2e": "marginal cost of a scene 22x the floor (33.5 s vs 1.54 s for 8 scenes); "
    "1.7 Mpx/s per core for one scene alone",
}


# --------------------------------------------------------------------------------------
# Small measuring helpers


def bytes_read() -> int:
    """Bytes this process has read so far (``rchar``; 0 where /proc does not say)."""
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@contextlib.contextmanager
def counted(log: dict[str, float]) -> Iterator[None]:
    """Wall time and tasks run (local schedulers) of the block, into ``log``."""
    tasks = _common.TaskLog({})
    t0 = time.perf_counter()
    with tasks:
        yield
    log["seconds"] = time.perf_counter() - t0
    log["tasks"] = tasks.tasks


def centred_grid(grid: CubeGrid, edge: int, chunk: int) -> tuple[CubeGrid, int]:
    """An ``edge`` x ``edge`` grid on ``grid``'s lattice with ``grid`` in its middle.

    The offset is a multiple of ``chunk``, so that the scene stays on the cube's chunk
    lattice (as a scene of a tile grid snapped like the Landsat grid does).
    """
    off = max(0, (edge - max(grid.shape)) // 2 // chunk * chunk)
    t = grid.transform
    moved = Affine(t.a, t.b, t.c - off * t.a, t.d, t.e, t.f - off * t.e)
    return CubeGrid(grid.crs, moved, (edge, edge)), off


def chunk_bytes(cube: Any) -> int:
    """Stored bytes of the chunks of every scene-level layer of ``cube``."""
    store = cube.session().store
    return sum(_common.stored_chunk_bytes(store, n)[0] for n in LAYERS)


def tm_and_earlier(archive: _common.CachedArchive) -> tuple[Any, Any]:
    """The archive's TM scene and its scene of an earlier year (MSS)."""
    tm = archive.scene("TM")
    earlier = min(archive.scenes, key=lambda s: s.metadata.acquired)
    if earlier is tm:
        raise RuntimeError("the demo archive has no scene older than its TM scene")
    return tm, earlier


# --------------------------------------------------------------------------------------
# 1 + 2 + 6: the same scene on growing grids


def scene_on_grids(folder: Path, size: int, edges: tuple[int, ...]) -> list[dict[str, Any]]:
    """Append the same TM scene to fresh cubes of growing grids; tasks, times, rebuild."""
    archive = _common.demo_archive(size, 2)
    _common.warm_up_pipeline(archive)
    tm, earlier = tm_and_earlier(archive)
    science = Science(supplementary=True)  # every float layer filled, as bench_storage
    pixels = archive.grid.ny * archive.grid.nx
    out = []
    for edge in edges:
        chunk = min(512, edge)
        grid, off = centred_grid(archive.grid, edge, chunk)
        path = folder / f"grid-{edge}"
        rec: dict[str, Any] = {"grid": edge, "offset": off, "scene_pixels": pixels}
        with dask.config.set(scheduler="threads"):
            cube = create_cube(path, grid)
            cube.append_scenes(
                [scene_on_grid(earlier, grid, science)], metadata={}, message="earlier year"
            )
            cube.rebuild_yearly()
            earlier_bytes = chunk_bytes(cube)
            append: dict[str, float] = {}
            with counted(append):
                placed = scene_on_grid(tm, grid, science)
                cube.append_scenes([placed], metadata={}, message="the scene")
            rec["append_s"], rec["tasks"] = append["seconds"], append["tasks"]
            # the TM scene's own chunks: the layers' chunk bytes it added
            rec["stored_bytes_tm"] = chunk_bytes(cube) - earlier_bytes
            before = bench_commits.folder_bytes(path)
            rebuild: dict[str, float] = {}
            with counted(rebuild):
                cube.rebuild_yearly([int(tm.metadata.acquired.year)])
            rec["rebuild_s"], rec["rebuild_tasks"] = rebuild["seconds"], rebuild["tasks"]
            rec["rebuild_bytes"] = bench_commits.folder_bytes(path) - before
            cube.close()
        out.append(rec)
        shutil.rmtree(path, ignore_errors=True)
    return out


def tasks_line(folder: Path, size: int) -> dict[str, float]:
    """Tasks of the TM scene at ``size`` and ``2 size`` px (own grid): a + b x pixels."""
    counts = {}
    for s in (size, 2 * size):
        archive = _common.demo_archive(s, 2)
        tm = archive.scene("TM")
        cube = create_cube(folder / f"line-{s}", archive.grid)
        log: dict[str, float] = {}
        with dask.config.set(scheduler="threads"), counted(log):
            cube.append_scenes([scene_on_grid(tm, archive.grid)], metadata={}, message="line")
        cube.close()
        counts[s * s] = log["tasks"]
    (p1, t1), (p2, t2) = sorted(counts.items())
    b = (t2 - t1) / (p2 - p1)
    return {
        "pixels": [p1, p2],
        "tasks": [t1, t2],
        "per_pixel": b,
        "fixed": t1 - b * p1,
        "big_scene": t1 + b * (BIG_SCENE_PX - p1),
    }


# --------------------------------------------------------------------------------------
# 8: a continental grid through a tiled collection, (scene, tile) work items


def _placements(grid_edge: int, tile: int, scene: int, chunk: int) -> dict[int, tuple[int, int]]:
    """Top-left pixel (row, col) of the scene so that it lies in 1, 2 and 4 tiles.

    Around the middle tile of the grid; every offset is a multiple of ``chunk`` so that the
    scene stays on the tile cubes' chunk lattice (as a Landsat-snapped tile grid keeps it).
    """
    k = grid_edge // tile // 2
    inside = k * tile + (tile - scene) // 2 // chunk * chunk  # whole scene in tile k
    half = scene // 2 // chunk * chunk or scene // 2
    edge = (k + 1) * tile - half  # part of the scene across the tile edge
    return {1: (inside, inside), 2: (inside, edge), 4: (edge, edge)}


def _shifted(grid: CubeGrid, row: int, col: int, edge: int) -> CubeGrid:
    """An ``edge`` x ``edge`` grid on ``grid``'s lattice whose pixel (row, col) is
    ``grid``'s first pixel."""
    t = grid.transform
    moved = Affine(t.a, t.b, t.c - col * t.a, t.d, t.e, t.f - row * t.e)
    return CubeGrid(grid.crs, moved, (edge, edge))


def graph_bytes(source: Any, grid: CubeGrid, chunks: tuple[int, int], science: Science) -> int:
    """Driver memory (tracemalloc peak) to build one scene's lazy layers on ``grid`` and
    materialise their task graph: what the driver holds for the scene before it computes."""
    tracemalloc.start()
    try:
        placed = scene_on_grid(source, grid, science, cube_chunks=chunks)
        graph = dict(placed.__dask_graph__())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del graph, placed
    return int(peak)


def _work_item(cube: Any, source: Any, science: Science, year: int) -> dict[str, Any]:
    """One (scene, tile) work item as a tiled job runs it on its tile cube: the scene's
    window of the tile's grid, cut on the tile cube's chunks, appended; then the tile's
    per-year rebuild of the scene's year."""
    chunks = tuple(zarr.open_array(cube.session().store, path="uCw", mode="r").chunks[1:])
    rec: dict[str, Any] = {"graph_bytes": graph_bytes(source, cube.grid, chunks, science)}
    append: dict[str, float] = {}
    with counted(append):
        placed = scene_on_grid(source, cube.grid, science, cube_chunks=chunks)
        cube.append_scenes([placed], metadata={}, message="the scene")
    rebuild: dict[str, float] = {}
    with counted(rebuild):
        cube.rebuild_yearly([year])
    rec.update(
        append_s=append["seconds"],
        append_tasks=append["tasks"],
        rebuild_s=rebuild["seconds"],
        rebuild_tasks=rebuild["tasks"],
    )
    return rec


def scene_on_tiles(
    folder: Path,
    size: int,
    grid_edges: tuple[int, ...],
    tile: int,
    repeats: int,
    counts: tuple[int, ...] = (1, 2, 4),
) -> dict[str, Any]:
    """The TM scene on its own grid (a single cube), then on continental grids cut into
    ``tile``-pixel tiles, placed in 1, 2 and 4 tiles, written the way a tiled job writes
    it: the tiles its footprint touches (``grid_window`` + ``Tiling.tiles_of_window``),
    each created and registered by ``Collection.create_tile``, one work item per tile.

    Every placement is written ``repeats`` times into fresh storage, the own grid first;
    times are medians (tasks and bytes do not vary). ``counts`` selects the placements by
    the number of tiles the scene lies in.
    """
    archive = _common.demo_archive(size, 2)
    _common.warm_up_pipeline(archive)
    tm = archive.scene("TM")
    year = int(tm.metadata.acquired.year)
    science = Science()  # a job's default science
    chunk = min(int(config.get("chunks.cube")), tile)

    def own_grid(path: Path) -> dict[str, Any]:
        cube = create_cube(path, archive.grid)
        rec = _work_item(cube, tm, science, year)
        cube.close()
        rec["bytes"] = bench_commits.folder_bytes(path)
        return rec

    def tiled(path: Path, edge: int, row: int, col: int) -> dict[str, Any]:
        grid = _shifted(archive.grid, row, col, edge)
        coll = create_collection(path, grid, edge=tile)
        window = grid_window(open_scene(tm), grid)
        rec: dict[str, Any] = {"grid": edge, "place": [row, col], "tiles": {}}
        for tile_id in coll.tiling.tiles_of_window(*window):
            cube = coll.create_tile(tile_id)
            rec["tiles"][tile_id] = _work_item(cube, tm, science, year)
            cube.close()
        for key in ("append_s", "append_tasks", "rebuild_s", "rebuild_tasks", "graph_bytes"):
            rec[key] = sum(t[key] for t in rec["tiles"].values())
        rec["catalogue_bytes"] = bench_commits.folder_bytes(path / "catalogue")
        rec["tile_bytes"] = {
            t: bench_commits.folder_bytes(path / "tiles" / t) for t in rec["tiles"]
        }
        return rec

    def median_of(make: Callable[[Path], dict[str, Any]], name: str) -> dict[str, Any]:
        recs = []
        for i in range(repeats):
            path = folder / f"{name}-{i}"
            recs.append(make(path))
            shutil.rmtree(path, ignore_errors=True)
        out = recs[-1]
        for key in ("append_s", "rebuild_s"):
            out[key] = statistics.median(r[key] for r in recs)
        return out

    with dask.config.set(scheduler="threads"):
        own = median_of(own_grid, "own-grid")
        runs = []
        for edge in grid_edges:
            for n, (row, col) in _placements(edge, tile, size, chunk).items():
                if n not in counts:
                    continue
                rec = median_of(
                    lambda p, e=edge, r=row, c=col: tiled(p, e, r, c), f"tiled-{edge}-{n}"
                )
                if len(rec["tiles"]) != n:
                    raise RuntimeError(f"the scene touches tiles {list(rec['tiles'])}, not {n}")
                for key in ("append_tasks", "append_s", "rebuild_s", "graph_bytes"):
                    rec[f"{key}_ratio"] = rec[key] / max(own[key], 1e-9)
                runs.append(rec)
    return {"scene": size, "tile": tile, "year": year, "repeats": repeats, "own": own, "runs": runs}


# --------------------------------------------------------------------------------------
# 3 + 2: commits and the per-year rebuild of a cube of thousands of scenes


def commits_and_rebuild(folder: Path, total: int) -> dict[str, Any]:
    """``bench_commits.grow`` (splitting on), then its per-year builds."""
    path = folder / "commits"
    checkpoints = bench_commits.grow(path, total, on=True)
    cube = open_cube(path, for_writing=True)
    first: dict[str, float] = {}
    with dask.config.set(scheduler="threads"):
        years = len(set(cube.to_xarray()["time"].dt.year.values.tolist()))
        with counted(first):
            cube.rebuild_yearly()
        rng = np.random.default_rng(1)
        batch = [
            bench_commits.scene(total + i, rng) for i in range(bench_commits.BATCH)
        ]  # the next batch: 8 days apart, after every stored scene
        cube.append_scenes(batch, metadata={"job_id": "bench"}, message="one more batch")
        new_years = sorted({int(str(s["time"].values)[:4]) for s in batch})
        before = bench_commits.folder_bytes(path)
        incr: dict[str, float] = {}
        with counted(incr):
            cube.rebuild_yearly(new_years)
        grew = bench_commits.folder_bytes(path) - before
    cube.close()
    return {
        "checkpoints": checkpoints,
        "years": years,
        "first_build": first,
        "batch": len(batch),
        "batch_years": new_years,
        "incremental": {**incr, "bytes": grew},
        "chunk_bytes": bench_commits.folder_bytes(path / "chunks"),
    }


# --------------------------------------------------------------------------------------
# 4: a point's every-scene series


def series(folder: Path, n: int, edge: int, repeats: int) -> dict[str, Any]:
    """Point series over ``n`` scenes, per-scene layout and time blocks."""
    import bench_query

    grid = CubeGrid("EPSG:32637", Affine(30, 0, 589035, 0, -30, 756165), (edge, edge))
    path = folder / "series"
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:edge, 0:edge] / edge
    base = 0.05 + 0.05 * (np.sin(6 * xx) * np.cos(4 * yy) + 1)
    t0 = time.perf_counter()
    with dask.config.set({"scheduler": "threads", "updm.chunks.cube": edge}):
        cube = create_cube(path, grid)
        for start in range(0, n, SERIES_BATCH):
            scenes = [
                bench_query._scene(grid, i, n, rng, base)
                for i in range(start, min(start + SERIES_BATCH, n))
            ]
            cube.append_scenes(scenes, metadata={"job_id": "bench"}, message=f"b{start}")
        build = time.perf_counter() - t0
        chunks = list(cube.to_xarray()["uCv"].encoding["chunks"])

        def measure(c: Any) -> tuple[float, float]:
            times, reads = [], []
            for _ in range(repeats):
                x = float(grid.x[int(rng.integers(0, edge))])
                y = float(grid.y[int(rng.integers(0, edge))])
                r0, t = bytes_read(), time.perf_counter()
                frame = query.scene_series(c, x=x, y=y)
                times.append(time.perf_counter() - t)
                reads.append(bytes_read() - r0)
                if len(frame) != n:
                    raise RuntimeError(f"point series has {len(frame)} rows, expected {n}")
            return statistics.median(times), statistics.median(reads)

        query.scene_series(cube, x=float(grid.x[0]), y=float(grid.y[0]))  # warm metadata
        per_scene_s, per_scene_read = measure(cube)
        t = time.perf_counter()
        compact_time_blocks(cube)
        compact = time.perf_counter() - t
        cube.close()
        cube = open_cube(path)
        query.scene_series(cube, x=float(grid.x[0]), y=float(grid.y[0]))
        blocked_s, blocked_read = measure(cube)
    return {
        "scenes": n,
        "edge": edge,
        "chunks": chunks,
        "build_s": build,
        "compact_s": compact,
        "per_scene_s": per_scene_s,
        "per_scene_bytes": per_scene_read,
        "blocked_s": blocked_s,
        "blocked_bytes": blocked_read,
    }


# --------------------------------------------------------------------------------------
# 5 + 7: the job on real processes


def job_tasks(size: int, n: int) -> int:
    """Tasks of bench_job's job (all its scenes, append + rebuild), threaded scheduler."""
    archive = _common.demo_archive(size, n)
    log: dict[str, float] = {}
    with _common.workspace("bench-scale-jobtasks-") as folder:
        with dask.config.set(scheduler="threads"), counted(log):
            bench_job.job_seconds(list(archive.scenes), archive.grid, folder)
    return int(log["tasks"])


# --------------------------------------------------------------------------------------
# The run


def run(quick: bool = False) -> dict[str, Any]:
    """Measure every figure; the JSON-ready summary with ``rows`` and ``table``."""
    started = time.perf_counter()
    load_start = os.getloadavg()
    steal_start = _common.cpu_steal_seconds()
    size = QUICK_SIZE if quick else SIZE
    seconds: dict[str, float] = {}

    def step(name: str, fn: Callable[[], Any]) -> Any:
        print(f"bench_scale_table: {name} ...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        out = fn()
        seconds[name] = time.perf_counter() - t
        return out

    with _common.workspace("updm-bench-scale-") as folder:
        grids = step("grids", lambda: scene_on_grids(folder, size, QUICK_GRIDS if quick else GRIDS))
        continent = step(
            "continental",
            lambda: scene_on_tiles(
                folder,
                size,
                QUICK_CONTINENT_GRIDS if quick else CONTINENT_GRIDS,
                QUICK_TILE if quick else tile_edge(),
                1 if quick else TILED_REPEATS,
            ),
        )
        large = step(
            "continental, largest demo scene",
            lambda: scene_on_tiles(
                folder,
                QUICK_TILE if quick else LARGE_SCENE,
                (QUICK_CONTINENT_GRIDS if quick else CONTINENT_GRIDS)[:1],
                QUICK_TILE if quick else tile_edge(),
                1 if quick else LARGE_REPEATS,
                counts=(4,),
            ),
        )
        line = step("tasks line", lambda: tasks_line(folder, size))
        commits = step(
            "commits",
            lambda: commits_and_rebuild(folder, QUICK_COMMIT_SCENES if quick else COMMIT_SCENES),
        )
        point = step(
            "series",
            lambda: series(
                folder,
                QUICK_SERIES_SCENES if quick else SERIES_SCENES,
                QUICK_SERIES_EDGE if quick else SERIES_EDGE,
                QUICK_REPEATS if quick else REPEATS,
            ),
        )
    job = step("job", lambda: bench_job.run(quick=quick))
    job_n = job["scenes"]
    tasks = step("job tasks", lambda: job_tasks(job["size"], job_n))
    load_end = os.getloadavg()
    summary = {
        "benchmark": "scale_table",
        "quick": quick,
        "grids": grids,
        "continental": continent,
        "continental_large": large,
        "tasks_line": line,
        "commits": commits,
        "series": point,
        "job": job,
        "job_tasks": tasks,
        "seconds": {**seconds, "total": time.perf_counter() - started},
        "load_average": {"start": list(load_start), "end": list(load_end)},
        # CPU seconds the host gave to other virtual machines during the run (None: unknown)
        "steal_seconds": _common.steal_since(steal_start),
        "environment": _common.environment(),
    }
    summary["figures"] = figures(summary)
    summary["rows"] = rows_of(summary)
    summary["table"] = markdown(summary)
    summary["continental_table"] = continental_markdown(summary)
    summary["continental_large_table"] = large_markdown(summary)
    return summary


def _job_row(job: dict[str, Any], measure: str) -> dict[str, Any]:
    return next(r for r in job["rows"] if r["measure"] == measure)


def figures(s: dict[str, Any]) -> dict[str, Any]:
    """The derived figures of the table (numbers only)."""
    g = s["grids"]
    c = s["commits"]
    cp = c["checkpoints"]
    t2 = s["job"]["timings"]["2"]
    sched_per_task = t2["scheduler_cpu"] / max(s["job_tasks"], 1)
    big = s["tasks_line"]["big_scene"]
    first_scene = g[0]
    return {
        "tasks_by_grid": {str(r["grid"]): r["tasks"] for r in g},
        "tasks_ratio": g[-1]["tasks"] / max(g[0]["tasks"], 1),
        "append_by_grid": {str(r["grid"]): r["append_s"] for r in g},
        "append_ratio": g[-1]["append_s"] / g[0]["append_s"],
        "commit_first_ms": cp[0]["commit_s"] * 1e3,
        "commit_last_ms": cp[-1]["commit_s"] * 1e3,
        "commit_ratio": cp[-1]["commit_s"] / cp[0]["commit_s"],
        "manifest_first": cp[0]["manifest_on_disk"],
        "manifest_last": cp[-1]["manifest_on_disk"],
        "manifest_per_scene_ratio": cp[-1]["manifest_on_disk_per_scene"]
        / cp[0]["manifest_on_disk_per_scene"],
        "manifest_vs_chunks": cp[-1]["manifest_on_disk"] / max(c["chunk_bytes"], 1),
        "rebuild_scene_ms": {str(r["grid"]): r["rebuild_s"] * 1e3 for r in g},
        "rebuild_scene_bytes": {str(r["grid"]): r["rebuild_bytes"] for r in g},
        "rebuild_scene_tasks": {str(r["grid"]): r["rebuild_tasks"] for r in g},
        "rebuild_ratio": g[-1]["rebuild_s"] / g[0]["rebuild_s"],
        "rebuild_batch_ms_per_scene": c["incremental"]["seconds"] * 1e3 / c["batch"],
        "rebuild_batch_bytes_per_scene": c["incremental"]["bytes"] / c["batch"],
        "rebuild_batch_tasks": c["incremental"]["tasks"],
        "rebuild_all_tasks": c["first_build"]["tasks"],
        "rebuild_all_s": c["first_build"]["seconds"],
        "series_s": s["series"]["per_scene_s"],
        "series_blocked_s": s["series"]["blocked_s"],
        "series_bytes": s["series"]["per_scene_bytes"],
        "series_blocked_bytes": s["series"]["blocked_bytes"],
        "series_ratio": s["series"]["per_scene_s"] / s["series"]["blocked_s"],
        "scheduler_ms_per_task": sched_per_task * 1e3,
        "tasks_per_job_scene": s["job_tasks"] / s["job"]["scenes"],
        "tasks_big_scene": big,
        "ceiling_scenes_per_s": 1.0 / max(big * sched_per_task, 1e-12),
        "bytes_per_px": first_scene["stored_bytes_tm"] / first_scene["scene_pixels"],
        "marginal_vs_floor": _job_row(s["job"], "marginal cost / floor (wall)")["value"],
        "cpu_marginal_vs_floor": _job_row(s["job"], "marginal CPU / floor CPU")["value"],
        "mpx_per_core": _job_row(s["job"], "Mpx/s per core (all scenes, 2 workers, wall)")["value"],
        "speedup_2_vs_1": _job_row(s["job"], "2 workers vs 1 (wall)")["value"],
        "scheduler_share": _job_row(s["job"], "scheduler share of the job's CPU")["value"],
    }


def _pos(value: float) -> float:
    """Rows of the protocol hold positive values (a tiny run may measure 0)."""
    return max(float(value), 1e-9)


def rows_of(s: dict[str, Any]) -> list[dict[str, Any]]:
    """The protocol rows (measure, value, unit, target, met)."""
    f = s["figures"]
    row = _common.row
    out = [
        row(f"tasks of one scene on a {k}^2 grid", _pos(v), "tasks")
        for k, v in f["tasks_by_grid"].items()
    ]
    out += [
        row(f"append of one scene on a {k}^2 grid", _pos(v), "s")
        for k, v in f["append_by_grid"].items()
    ]
    out += [
        row(
            "tasks, largest / smallest grid",
            _pos(f["tasks_ratio"]),
            "x",
            "<= 1.1x",
            f["tasks_ratio"] <= 1.1,
        ),
        row("commit latency, first checkpoint", _pos(f["commit_first_ms"]), "ms"),
        row("commit latency, last checkpoint", _pos(f["commit_last_ms"]), "ms"),
        row(
            "commit latency, last / first checkpoint",
            _pos(f["commit_ratio"]),
            "x",
            "<= 1.5x",
            f["commit_ratio"] <= 1.5,
        ),
        row("manifests on disk, last checkpoint", _pos(f["manifest_last"] / 1e6), "MB"),
        row(
            "manifests on disk per stored scene, last / first",
            _pos(f["manifest_per_scene_ratio"]),
            "x",
            "<= 1.5x",
            f["manifest_per_scene_ratio"] <= 1.5,
        ),
        row(
            "per-year rebuild of one batch, per scene",
            _pos(f["rebuild_batch_ms_per_scene"]),
            "ms",
        ),
        row("per-year rebuild, largest / smallest grid", _pos(f["rebuild_ratio"]), "x"),
        row("point series, per-scene layout", _pos(f["series_s"]), "s"),
        row(
            "point series, time blocks",
            _pos(f["series_blocked_s"]),
            "s",
            f"< {SERIES_TARGET_S:g} s",
            f["series_blocked_s"] < SERIES_TARGET_S,
        ),
        row("scheduler CPU per task", _pos(f["scheduler_ms_per_task"]), "ms"),
        row("tasks of a 7,000^2 scene (estimate)", _pos(f["tasks_big_scene"]), "tasks"),
        row("job ceiling on one scheduler", _pos(f["ceiling_scenes_per_s"]), "scenes/s"),
        row(
            "stored bytes per pixel per scene",
            _pos(f["bytes_per_px"]),
            "B",
            "<= 4.5 B",
            f["bytes_per_px"] <= 4.5,
        ),
        row(
            "job marginal cost / floor (wall)",
            _pos(f["marginal_vs_floor"]),
            "x",
            "<= 3x",
            f["marginal_vs_floor"] <= 3,
        ),
        row("job Mpx/s per core", _pos(f["mpx_per_core"]), "Mpx/s"),
        row(
            "job 2 workers vs 1",
            _pos(f["speedup_2_vs_1"]),
            "x",
            ">= 1.7x",
            f["speedup_2_vs_1"] >= 1.7,
        ),
    ]
    c = s["continental"]
    for r in c["runs"]:
        where = f"a scene in {len(r['tiles'])} tile(s) of a {r['grid']}^2 tiled grid"
        out += [
            row(f"tasks of {where}", _pos(r["append_tasks"]), "tasks"),
            row(
                f"tasks of {where} / own grid",
                _pos(r["append_tasks_ratio"]),
                "x",
                "<= 1.5x",
                r["append_tasks_ratio"] <= 1.5,
            ),
            row(
                f"append of {where} / own grid",
                _pos(r["append_s_ratio"]),
                "x",
                "<= 1.5x",
                r["append_s_ratio"] <= 1.5,
            ),
            row(f"per-(tile, year) rebuild of {where}", _pos(r["rebuild_s"]), "s"),
            row(f"driver graph memory of {where}", _pos(r["graph_bytes"] / 1e6), "MB"),
            row(f"catalogue bytes of {where}", _pos(r["catalogue_bytes"] / 1e3), "kB"),
        ]
    large = s["continental_large"]
    for r in large["runs"]:
        where = f"a {large['scene']}^2 scene in {len(r['tiles'])} tiles of a {r['grid']}^2 grid"
        out += [
            row(f"append of {where}", _pos(r["append_s"]), "s"),
            row(
                f"append of {where} / own grid",
                _pos(r["append_s_ratio"]),
                "x",
                "<= 1.5x",
                r["append_s_ratio"] <= 1.5,
            ),
            row(f"tasks of {where} / own grid", _pos(r["append_tasks_ratio"]), "x"),
        ]
    out += [
        row("load average (1 min) at the start", _pos(s["load_average"]["start"][0]), "load"),
        row("load average (1 min) at the end", _pos(s["load_average"]["end"][0]), "load"),
    ]
    return out


# --------------------------------------------------------------------------------------
# The markdown table


def _n(value: float) -> str:
    return _common.format_value(float(value))


def _mb(value: float) -> str:
    if value >= 1e9:
        return f"{value / 1e9:.2f} GB"
    if value >= 1e6:
        return f"{value / 1e6:.2f} MB"
    return f"{value / 1e3:.1f} kB"


def _grid(edge: str) -> str:
    return f"{int(edge):,}^2"


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def markdown(s: dict[str, Any]) -> str:
    """The before/after table, in markdown, with the run's circumstances."""
    f = s["figures"]
    c = s["commits"]
    cp = c["checkpoints"]
    g = s["grids"]
    p = s["series"]
    line = s["tasks_line"]
    job = s["job"]
    scene = f"{g[0]['scene_pixels'] ** 0.5:.0f}^2"
    small, large = _grid(str(g[0]["grid"])), _grid(str(g[-1]["grid"]))
    before = lambda key: f"{BEFORE[key]} ({SOURCE})"  # noqa: E731
    rows = [
        (
            "tasks per scene with the grid",
            before("tasks"),
            f"the same {scene} scene: "
            + ", ".join(f"{_n(v)} on {_grid(k)}" for k, v in f["tasks_by_grid"].items()),
            f"{f['tasks_ratio']:.2f}x from {small} to {large} (target: flat, the graph "
            f"follows the scene): {_met(f['tasks_ratio'] <= 1.1)}",
        ),
        (
            "append time of that scene",
            before("append"),
            " -> ".join(f"{v:.2f} s" for v in f["append_by_grid"].values())
            + f" ({small} -> {large})",
            f"{f['append_ratio']:.2f}x from {small} to {large}",
        ),
        (
            "commit time with scenes in the cube",
            before("commit"),
            f"{f['commit_first_ms']:.0f} ms at {cp[0]['scenes']:,} scenes, "
            f"{f['commit_last_ms']:.0f} ms at {cp[-1]['scenes']:,} (batches of "
            f"{bench_commits.BATCH}, manifests split every "
            f"{s['commits']['checkpoints'] and _split()} slots)",
            f"{f['commit_ratio']:.2f}x over {cp[-1]['scenes'] // cp[0]['scenes']}x the "
            f"scenes (target <= 1.5x): {_met(f['commit_ratio'] <= 1.5)}",
        ),
        (
            "manifest bytes on disk",
            before("manifest"),
            f"{_mb(f['manifest_first'])} at {cp[0]['scenes']:,} scenes -> "
            f"{_mb(f['manifest_last'])} at {cp[-1]['scenes']:,}; "
            f"{f['manifest_vs_chunks']:.2f}x the chunk data",
            f"per stored scene {f['manifest_per_scene_ratio']:.2f}x (linear growth, target "
            f"<= 1.5x): {_met(f['manifest_per_scene_ratio'] <= 1.5)}",
        ),
        (
            "per-year rebuild per scene",
            before("rebuild"),
            f"one {scene} scene's year: "
            + ", ".join(
                f"{f['rebuild_scene_ms'][k]:.0f} ms / {_mb(f['rebuild_scene_bytes'][k])} / "
                f"{_n(f['rebuild_scene_tasks'][k])} tasks on {_grid(k)}"
                for k in f["rebuild_scene_ms"]
            )
            + f"; a batch of {c['batch']} on the {cp[-1]['scenes']:,}-scene cube: "
            f"{f['rebuild_batch_ms_per_scene']:.1f} ms and "
            f"{_mb(f['rebuild_batch_bytes_per_scene'])} per scene "
            f"({_n(f['rebuild_batch_tasks'])} tasks)",
            f"{f['rebuild_ratio']:.2f}x from {small} to {large} (follows the scene's "
            "blocks, not the grid)",
        ),
        (
            "per-year build, every year",
            before("rebuild_tasks"),
            f"{_n(f['rebuild_all_tasks'])} tasks, {f['rebuild_all_s']:.1f} s for "
            f"{c['years']} years of {cp[-1]['scenes']:,} scenes "
            f"({bench_commits.EDGE}^2 grid)",
            "tasks follow (years / chunk years) x touched blocks",
        ),
        (
            "a point's every-scene series",
            before("series"),
            f"{p['scenes']:,} scenes, chunks {tuple(p['chunks'])}, 8 variables: "
            f"{p['per_scene_s']:.2f} s and {_mb(p['per_scene_bytes'])} read per-scene layout; "
            f"{p['blocked_s']:.3f} s and {_mb(p['blocked_bytes'])} read with time blocks "
            f"(compaction {p['compact_s']:.0f} s)",
            f"{f['series_ratio']:.0f}x faster with time blocks (target < {SERIES_TARGET_S:g} "
            f"s): {_met(p['blocked_s'] < SERIES_TARGET_S)}",
        ),
        (
            "one driver + one scheduler",
            before("scheduler"),
            f"{f['scheduler_ms_per_task']:.2f} ms of scheduler CPU per task "
            f"({_n(job['timings']['2']['scheduler_cpu'])} s / {_n(s['job_tasks'])} tasks of "
            f"the job, {job['scenes']} scenes incl. rebuild); {f['tasks_per_job_scene']:.0f} "
            f"tasks per {job['size']}^2 scene; a 7,000^2 scene ~{_n(f['tasks_big_scene'])} "
            f"tasks (estimate: {line['fixed']:.0f} + {line['per_pixel'] * 1e6:.2f} per Mpx, "
            f"from {line['tasks'][0]} and {line['tasks'][1]} tasks at "
            f"{line['pixels'][0] ** 0.5:.0f}^2 and {line['pixels'][1] ** 0.5:.0f}^2); "
            f"ceiling ~{f['ceiling_scenes_per_s']:.1f} scenes/s",
            f"scheduler share of the job's CPU {f['scheduler_share']:.1f} % (target < 5 %): "
            f"{_met(f['scheduler_share'] < 5)}",
        ),
        (
            "storage",
            before("storage"),
            f"{f['bytes_per_px']:.2f} B per pixel per scene (all 8 layers, packed, of the "
            f"{scene} TM scene)",
            f"{15.6 / f['bytes_per_px']:.1f}x smaller (target ~4.3 B): "
            f"{_met(f['bytes_per_px'] <= 4.5)}",
        ),
        (
            "end to end",
            before("e2e"),
            f"marginal cost {f['marginal_vs_floor']:.1f}x the floor (wall; CPU "
            f"{f['cpu_marginal_vs_floor']:.1f}x), {f['mpx_per_core']:.2f} Mpx/s per core, "
            f"2 workers {f['speedup_2_vs_1']:.2f}x one ({job['scenes']} scenes of "
            f"{job['size']}^2, per-year layers included)",
            f"<= 3x: {_met(f['marginal_vs_floor'] <= 3)}; >= 1.7x: "
            f"{_met(f['speedup_2_vs_1'] >= 1.7)}",
        ),
    ]
    load0 = ", ".join(f"{v:.2f}" for v in s["load_average"]["start"])
    load1 = ", ".join(f"{v:.2f}" for v in s["load_average"]["end"])
    head = [
        f"Archive scale, before and after{' (quick: numbers mean nothing)' if s['quick'] else ''}"
        f": one run of {s['seconds']['total'] / 60:.1f} min; "
        f"machine: {_common.describe_environment(s['environment'])}",
        f"load average at the start: {load0}; at the end: {load1}"
        + (
            f"; CPU steal (time the host gave to other virtual machines) {s['steal_seconds']:.1f} s"
            if s.get("steal_seconds") is not None
            else ""
        ),
        "",
        "| what grows | before (quoted) | after (measured now) | ratio / target |",
        "|---|---|---|---|",
    ]
    body = [f"| {a} | {b} | {c_} | {d} |" for a, b, c_, d in rows]
    times = ", ".join(f"{k} {v:.0f} s" for k, v in s["seconds"].items())
    return "\n".join([*head, *body, "", f"time per step: {times}"])


def continental_markdown(s: dict[str, Any]) -> str:
    """The continental rows (a tiled collection), in markdown, with the same columns."""
    c = s["continental"]
    own, runs = c["own"], c["runs"]
    scene = f"{c['scene']}^2"
    before = lambda key: f"{BEFORE[key]} ({SOURCE})"  # noqa: E731

    def per_run(fmt: Callable[[dict[str, Any]], str]) -> str:
        parts = []
        for edge in dict.fromkeys(r["grid"] for r in runs):
            each = ", ".join(
                f"{len(r['tiles'])} tile(s) {fmt(r)}" for r in runs if r["grid"] == edge
            )
            parts.append(f"{_grid(str(edge))}: {each}")
        return "; ".join(parts)

    def worst(key: str) -> float:
        return max(r[f"{key}_ratio"] for r in runs)

    tiles_vs_own = max(sum(r["tile_bytes"].values()) / max(own["bytes"], 1) for r in runs)
    rows = [
        (
            "tasks of a scene on a continental tiled grid",
            before("tasks"),
            f"the same {scene} scene, own grid (single cube): {_n(own['append_tasks'])}; "
            + per_run(lambda r: f"{_n(r['append_tasks'])} ({r['append_tasks_ratio']:.2f}x)"),
            f"at most {worst('append_tasks'):.2f}x the own grid (target <= 1.5x): "
            f"{_met(worst('append_tasks') <= 1.5)}",
        ),
        (
            "append time of that scene, tiled",
            before("append"),
            f"own grid {own['append_s']:.2f} s; "
            + per_run(lambda r: f"{r['append_s']:.2f} s ({r['append_s_ratio']:.2f}x)"),
            f"at most {worst('append_s'):.2f}x the own grid (target <= 1.5x): "
            f"{_met(worst('append_s') <= 1.5)}",
        ),
        (
            "per-(tile, year) rebuild of that scene's year",
            before("rebuild"),
            f"own grid {own['rebuild_s'] * 1e3:.0f} ms ({_n(own['rebuild_tasks'])} tasks); "
            + per_run(
                lambda r: (
                    f"{r['rebuild_s'] * 1e3:.0f} ms over its tiles "
                    f"({_n(r['rebuild_tasks'])} tasks, {r['rebuild_s_ratio']:.2f}x)"
                )
            ),
            f"at most {worst('rebuild_s'):.2f}x the own grid (one rebuild per tile touched)",
        ),
        (
            "driver memory for the scene's graph",
            before("tasks"),
            f"own grid {_mb(own['graph_bytes'])}; "
            + per_run(lambda r: f"{_mb(r['graph_bytes'])} ({r['graph_bytes_ratio']:.2f}x)"),
            f"at most {worst('graph_bytes'):.2f}x the own grid (tracemalloc peak of building "
            "the lazy layers and materialising their graph, summed over the tiles)",
        ),
        (
            "bytes of the catalogue and of each tile",
            before("manifest"),
            f"own cube {_mb(own['bytes'])}; "
            + per_run(
                lambda r: (
                    f"catalogue {_mb(r['catalogue_bytes'])}, tiles "
                    + " + ".join(_mb(b) for b in r["tile_bytes"].values())
                )
            ),
            f"the scene's tiles together at most {tiles_vs_own:.2f}x its own cube",
        ),
    ]
    head = [
        f"Continental grids as tiled collections (tiles of {c['tile']:,} px; the scene written "
        "as a tiled job's (scene, tile) work items, each tile created and registered in the "
        "catalogue, then the per-(tile, year) rebuild of the scene's year)",
        "",
        "| what grows | before (quoted) | after (measured now) | ratio / target |",
        "|---|---|---|---|",
    ]
    return "\n".join([*head, *(f"| {a} | {b} | {c_} | {d} |" for a, b, c_, d in rows)])


def large_markdown(s: dict[str, Any]) -> str:
    """The largest demo scene across 4 tiles against its own grid, in markdown."""
    large = s["continental_large"]
    own = large["own"]
    lines = [
        f"The largest demo scene ({large['scene']:,}^2 px) across tiles of {large['tile']:,} px "
        "(median of its runs)",
        "",
        "| placement | append time | tasks | ratio to its own grid / target |",
        "|---|---|---|---|",
        f"| own grid (single cube) | {own['append_s']:.2f} s | {_n(own['append_tasks'])} | |",
    ]
    for r in large["runs"]:
        ratio = r["append_s_ratio"]
        lines.append(
            f"| {len(r['tiles'])} tiles of a {_grid(str(r['grid']))} grid | "
            f"{r['append_s']:.2f} s | {_n(r['append_tasks'])} | "
            f"{ratio:.2f}x (target <= 1.5x): {_met(ratio <= 1.5)} |"
        )
    return "\n".join(lines)


def _split() -> int:
    from updm_dask import config

    return int(config.get("cube.manifest-split-scenes"))


def report(summary: dict[str, Any]) -> str:
    """The markdown table, then the protocol rows."""
    return (
        summary["table"]
        + "\n\n"
        + summary["continental_table"]
        + "\n\n"
        + summary["continental_large_table"]
        + "\n\n"
        + _common.format_rows(summary["rows"])
    )


if __name__ == "__main__":
    sys.exit(_common.bench_main(run, report, __doc__.split("\n")[0]))
