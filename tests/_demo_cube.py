"""A demo cube made the way a job makes it, for the query and export tests.

The scenes of a generated demo archive (real GeoTIFF + MTL files) are processed, placed on
the archive's grid and stored in one commit, then the per-year layers are built.
"""

from __future__ import annotations

from pathlib import Path

from affine import Affine

from updm_dask.cube import Cube, create_cube
from updm_dask.demo import DemoArchive, make_demo_archive
from updm_dask.geo import CubeGrid, to_grid
from updm_dask.pipeline import Science, process_scene
from updm_dask.scenes import discover_scenes, open_scene


def build_demo_cube(
    root: Path, *, seed: int, n_scenes: int, size: int, job_id: str
) -> tuple[DemoArchive, Cube]:
    """A demo archive in ``root`` and its cube in ``root / "cube"``."""
    archive = make_demo_archive(root, seed=seed, n_scenes=n_scenes, size=size)
    grid = CubeGrid(archive.grid.crs, Affine(*archive.grid.transform), tuple(archive.grid.shape))
    cube = create_cube(root / "cube", grid)
    science = Science()
    placed = []
    for source in discover_scenes([str(archive.root)]).scenes:
        layers = process_scene(open_scene(source), science)
        methods = {v: "mode" if v in ("land_cover", "quality") else "average" for v in layers}
        scene = to_grid(layers, grid, method=methods)
        scene.attrs = {k: v for k, v in layers.attrs.items() if not k.startswith("updm_")}
        placed.append(scene)
    cube.append_scenes(placed, metadata={"job_id": job_id}, message="demo")
    cube.rebuild_yearly()
    return archive, cube
