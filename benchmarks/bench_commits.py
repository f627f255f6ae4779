"""Commits: latency and manifest bytes per scene as a cube grows to thousands of scenes,
with Icechunk manifest splitting off (before) and on (after), measured in one run.

Each mode appends scenes to a fresh local cube through ``Cube.append_scenes`` (the path a
job takes), in batches of :data:`BATCH` scenes, until :data:`SCENES` (3,200) are stored:
tiny pixels (a 32 x 32 grid, one chunk per scene and variable, 8 variables) but real
counts of scenes, commits and chunk references. At the first batch that reaches each
checkpoint (100, 200, ... 3,200 scenes) it reports

* commit latency: the median time of ``session.commit`` (inside ``Cube._commit``) over the
  last :data:`WINDOW` batches before the checkpoint (the write of the chunks is not in it);
* manifest bytes written per scene: growth of the repository's ``manifests/`` folder over
  those batches, divided by the scenes they appended;
* manifest bytes on disk per stored scene: the whole ``manifests/`` folder over the scenes
  in the cube (quadratic growth of the folder shows as linear growth here).

"Off" is Icechunk's default (one manifest per array, rewritten by every commit that
touches the array, and manifests preloaded at each session); "on" is the package's
setting (``updm.cube.manifest-split-scenes`` time slots per manifest, no preload). Ratios
compare the last checkpoint with the first (target: latency within 1.5x; manifest bytes per
scene flat, here within 1.5x). The load average is printed with the results: the machine
may be shared.

Besides manifests, a commit writes a snapshot (the metadata of every array and the list of
its manifests, one more reference per split), a transaction log, and Icechunk's repository
record: the ``repo`` object, rewritten whole at each commit with one entry more, whose
previous version Icechunk keeps under ``overwritten/`` (so the record's kept versions grow
with the square of the commits until Icechunk can expire them). Their bytes per commit at
the first and last checkpoint, and the record's bytes on disk against the manifests', are
reported for what they are; no target applies: they are Icechunk's, not the cube's.
The scenes here cover the whole grid, so an append commit records their ids but no window.

Usage::

    python benchmarks/bench_commits.py [--quick] [--json PATH]
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _common
import dask
import dask.array as da
import icechunk
import numpy as np
import xarray as xr
from affine import Affine

from updm_dask import config
from updm_dask.cube import _cube, _io, create_cube
from updm_dask.geo import CubeGrid

#: Scenes in the cube at the end of a full (quick) run.
SCENES, QUICK_SCENES = 3200, 400
#: Scenes per commit (one job batch).
BATCH = 32
#: Batches whose commits are summarised at each checkpoint (two whole manifest splits of
#: the default 64 time slots, so that where the checkpoint falls inside a split does not
#: matter).
WINDOW = 4
#: Grid edge and chunk edge (pixels): one chunk per scene and variable.
EDGE, CHUNK = 32, 32
GRID = CubeGrid("EPSG:32637", Affine(30.0, 0.0, 500000.0, 0.0, -30.0, 800000.0), (EDGE, EDGE))
FLOATS = ("uCw", "uCv", "uCs", "uC4", "residual", "mviupd")


def checkpoints(total: int) -> list[int]:
    """100, 200, 400, ... up to ``total`` (doubling)."""
    out, n = [], 100
    while n <= total:
        out.append(n)
        n *= 2
    return out


def scene(index: int, rng: np.random.Generator) -> xr.Dataset:
    """A small scene on :data:`GRID` with every scene-level variable filled."""
    shape = GRID.shape
    data = {
        n: (("y", "x"), da.from_array(rng.random(shape, dtype=np.float32), chunks=CHUNK))
        for n in FLOATS
    }
    data["land_cover"] = (
        ("y", "x"),
        da.from_array(rng.integers(2, 5, shape, dtype=np.uint8), chunks=CHUNK),
    )
    data["quality"] = (("y", "x"), da.from_array(np.zeros(shape, np.uint8), chunks=CHUNK))
    ds = xr.Dataset(data, coords={"y": GRID.y, "x": GRID.x}).rio.write_crs(GRID.crs)
    day = np.datetime64("1984-01-01T10:00:00", "us") + np.timedelta64(index * 8, "D")
    ds = ds.assign_coords(scene_id=f"S{index:06d}", time=day)
    ds.attrs.update({"sensor": "TM", "platform": "LANDSAT_5"})
    return ds


def folder_bytes(path: Path) -> int:
    """Bytes of the files below ``path`` (0 when it does not exist)."""
    if not path.is_dir():
        return 0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@contextlib.contextmanager
def splitting(on: bool) -> Iterator[None]:
    """Create and write cubes with the package's manifest splitting, or Icechunk's default."""
    if on:
        yield
        return
    saved = (_io.repository_config, _cube.repository_config)
    _io.repository_config = _cube.repository_config = icechunk.RepositoryConfig
    try:
        yield
    finally:
        _io.repository_config, _cube.repository_config = saved


@contextlib.contextmanager
def timed_commits(log: list[float]) -> Iterator[None]:
    """Record the seconds of every ``session.commit`` made by ``Cube._commit``."""
    real = _cube.Cube._commit

    def commit(self, session, message, metadata):
        start = time.perf_counter()
        try:
            return real(self, session, message, metadata)
        finally:
            log.append(time.perf_counter() - start)

    _cube.Cube._commit = commit
    try:
        yield
    finally:
        _cube.Cube._commit = real


def record_bytes(folder: Path) -> int:
    """Bytes of Icechunk's repository record: the ``repo`` object and the earlier versions
    of it that Icechunk keeps under ``overwritten/`` (one per update)."""
    repo = folder / "repo"
    return (repo.stat().st_size if repo.is_file() else 0) + folder_bytes(folder / "overwritten")


def grow(folder: Path, total: int, on: bool) -> list[dict[str, float]]:
    """Append ``total`` scenes in batches; one record per checkpoint."""
    rng = np.random.default_rng(0)
    marks = checkpoints(total)
    commits: list[float] = []
    written: list[int] = []  # manifest bytes added by each batch
    other: list[int] = []  # snapshot, transaction log and repository record bytes added
    records = []

    def other_bytes() -> int:
        snapshots = folder_bytes(folder / "snapshots") + folder_bytes(folder / "transactions")
        return snapshots + record_bytes(folder)

    with splitting(on), timed_commits(commits), dask.config.set(scheduler="synchronous"):
        cube = create_cube(folder, GRID, chunks=CHUNK)
        commits.clear()
        manifests = folder / "manifests"
        stored = 0
        # what the folders hold after one batch is what they held before the next: each
        # is walked once per batch
        on_disk, other_now = folder_bytes(manifests), other_bytes()
        while stored < total:
            batch = [scene(stored + i, rng) for i in range(BATCH)]
            cube.append_scenes(batch, metadata={"job_id": "bench"}, message="bench batch")
            stored += BATCH
            before, before_other = on_disk, other_now
            on_disk, other_now = folder_bytes(manifests), other_bytes()
            written.append(on_disk - before)
            other.append(other_now - before_other)
            if len(records) < len(marks) and stored >= marks[len(records)]:
                records.append(
                    {
                        "scenes": marks[len(records)],
                        "commit_s": statistics.median(commits[-WINDOW:]),
                        "manifest_written_per_scene": sum(written[-WINDOW:]) / (WINDOW * BATCH),
                        "manifest_on_disk_per_scene": on_disk / stored,
                        "manifest_on_disk": on_disk,
                        "other_written_per_commit": sum(other[-WINDOW:]) / WINDOW,
                        "record_on_disk": record_bytes(folder),
                    }
                )
        cube.close()
    return records


def run(quick: bool = False) -> dict[str, Any]:
    """Grow one cube per mode; JSON-ready summary with ``rows``."""
    env = _common.environment()
    total = QUICK_SCENES if quick else SCENES
    load_before = os.getloadavg()
    results: dict[str, list[dict[str, float]]] = {}
    seconds: dict[str, float] = {}
    with _common.workspace("updm-bench-commits-") as tmp:
        for mode, on in (("off", False), ("on", True)):
            start = time.perf_counter()
            results[mode] = grow(tmp / f"cube-{mode}", total, on)
            seconds[mode] = time.perf_counter() - start
    load_after = os.getloadavg()

    rows = []
    for mode in ("off", "on"):
        for rec in results[mode]:
            n = rec["scenes"]
            rows.append(
                _common.row(f"splitting {mode}: commit at {n} scenes", rec["commit_s"] * 1e3, "ms")
            )
            rows.append(
                _common.row(
                    f"splitting {mode}: manifest bytes written per scene at {n}",
                    max(rec["manifest_written_per_scene"], 1e-9),
                    "B/scene",
                )
            )
            rows.append(
                _common.row(
                    f"splitting {mode}: manifests on disk per stored scene at {n}",
                    max(rec["manifest_on_disk_per_scene"], 1e-9),
                    "B/scene",
                )
            )
    first, last = checkpoints(total)[0], checkpoints(total)[-1]
    for mode in ("off", "on"):
        a, b = results[mode][0], results[mode][-1]
        target = "<= 1.5" if mode == "on" else None
        lat = b["commit_s"] / a["commit_s"]
        per = b["manifest_written_per_scene"] / max(a["manifest_written_per_scene"], 1e-9)
        rows.append(
            _common.row(
                f"splitting {mode}: commit latency {last} / {first} scenes",
                lat,
                "x",
                target,
                None if target is None else lat <= 1.5,
            )
        )
        rows.append(
            _common.row(
                f"splitting {mode}: manifest bytes written per scene {last} / {first} scenes",
                per,
                "x",
                target,
                None if target is None else per <= 1.5,
            )
        )
        disk = b["manifest_on_disk_per_scene"] / max(a["manifest_on_disk_per_scene"], 1e-9)
        rows.append(
            _common.row(
                f"splitting {mode}: manifests on disk per stored scene {last} / {first} scenes",
                disk,
                "x",
                target,
                None if target is None else disk <= 1.5,
            )
        )
    # what a commit writes besides manifests (see the module's docstring): no target
    a, b = results["on"][0], results["on"][-1]
    rows.append(
        _common.row(
            f"splitting on: snapshot + transaction log + repository record written per commit "
            f"at {first} scenes",
            a["other_written_per_commit"],
            "B/commit",
        )
    )
    rows.append(
        _common.row(
            f"splitting on: the same at {last} scenes", b["other_written_per_commit"], "B/commit"
        )
    )
    rows.append(
        _common.row(
            f"splitting on: repository record and its kept versions on disk at {last} scenes "
            f"({-(-last // BATCH)} commits) / manifests on disk",
            b["record_on_disk"] / max(b["manifest_on_disk"], 1),
            "x",
        )
    )
    off, on = results["off"][-1], results["on"][-1]
    rows.append(
        _common.row(f"commit at {last} scenes, off / on", off["commit_s"] / on["commit_s"], "x")
    )
    rows.append(
        _common.row(
            f"manifests on disk at {last} scenes, off / on",
            off["manifest_on_disk"] / on["manifest_on_disk"],
            "x",
        )
    )
    rows.append(_common.row("load average (1 min) before the run", load_before[0] + 1e-9, "load"))
    rows.append(_common.row("load average (1 min) after the run", load_after[0] + 1e-9, "load"))
    return {
        "benchmark": "commits",
        "rows": rows,
        "config": {
            "quick": quick,
            "scenes": total,
            "batch": BATCH,
            "grid": [EDGE, EDGE],
            "chunk": CHUNK,
            "split_scenes": config.get("cube.manifest-split-scenes"),
            "window": WINDOW,
        },
        "checkpoints": results,
        "seconds": seconds,
        "load_average": {"before": list(load_before), "after": list(load_after)},
        "environment": env,
    }


def report(summary: dict[str, Any]) -> str:
    """Human-readable table of :func:`run` output."""
    cfg = summary["config"]
    load = summary["load_average"]
    head = (
        f"commits benchmark: {cfg['scenes']} scenes in batches of {cfg['batch']} on a "
        f"{cfg['grid'][0]}x{cfg['grid'][1]} grid ({cfg['chunk']}^2 chunks), split every "
        f"{cfg['split_scenes']} time slots when on; load average {load['before'][0]:.2f} "
        f"before, {load['after'][0]:.2f} after; {summary['seconds']['off']:.0f} s off, "
        f"{summary['seconds']['on']:.0f} s on"
    )
    return head + "\n" + _common.format_rows(summary["rows"])


if __name__ == "__main__":
    sys.exit(_common.bench_main(run, report, __doc__.split("\n")[0]))
