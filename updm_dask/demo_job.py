"""`updm demo`: generate the synthetic archive, process it into a cube, report recovery.

This drives the stages directly (discover -> open -> fused pipeline -> regrid -> cube ->
yearly layers) on the local threaded scheduler; the cluster-aware job runner is `updm run`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from affine import Affine

from .cube import create_cube, open_cube
from .demo import format_recovery, make_demo_archive, recovery_report
from .grid import CubeGrid, to_grid
from .pipeline import Science, process_scene
from .scenes import discover_scenes, open_scene

__all__ = ["run_demo"]


def run_demo(workdir: Path, *, n_scenes: int | None = None, size: int = 200, **_ignored) -> int:
    """Build the demo archive and cube under ``workdir``; print the recovery table."""
    started = time.perf_counter()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    archive = make_demo_archive(workdir, n_scenes=n_scenes, size=size)
    cube_path = workdir / "cube.icechunk"
    archive.write_job_spec(workdir / "job.toml", cube_path)
    grid = CubeGrid(archive.grid.crs, Affine(*archive.grid.transform), tuple(archive.grid.shape))
    cube = open_cube(cube_path) if cube_path.exists() else create_cube(cube_path, grid)
    done = cube.scene_ids()
    found = discover_scenes([str(archive.root)])
    todo = [s for s in found.scenes if s.scene_id not in done]
    science = Science()
    print(f"demo: {len(found.scenes)} scenes found, {len(todo)} to process")
    for start in range(0, len(todo), 8):
        batch = []
        for source in todo[start : start + 8]:
            layers = process_scene(open_scene(source), science)
            methods = {v: ("mode" if v in ("land_cover", "quality") else "average") for v in layers}
            placed = to_grid(layers, grid, method=methods)
            placed.attrs = {k: v for k, v in layers.attrs.items() if not k.startswith("updm_")}
            batch.append(placed)
        cube.append_scenes(
            batch,
            metadata={"job_id": "updm-demo", "pattern_set_sha256": science.pattern_set.sha256},
            message=f"demo batch {start // 8 + 1}",
        )
    cube.rebuild_yearly()
    ds = open_cube(cube_path).to_xarray()
    yearly = {int(y): np.asarray(ds["yearly_land_cover"].sel(year=y)) for y in ds["year"].values}
    print(format_recovery(recovery_report(yearly, archive)))
    print(f"demo: cube at {cube_path}; {time.perf_counter() - started:.1f} s")
    return 0
