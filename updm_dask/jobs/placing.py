"""Placing scenes on a job's grid: the grid covering a job's scenes, the job's cube on its
grid, and one scene's UPDM layers on its window of that grid, cut in blocks of whole cube
chunks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import xarray as xr

from .. import config
from ..cube import Cube, collection_exists, create_cube, cube_exists, open_cube
from ..errors import GridError, JobSpecError, UpdmError
from ..geo import CubeGrid, to_grid
from ..geo.grid import check_grid_pixels, covering_grid
from ..geo.regrid import WINDOW_ATTR, lattice_chunks, lattice_offset
from ..messages import printable
from ..pipeline import Science, process_scene
from ..scenes import SceneSource, open_scene
from .keys import spec_error
from .report import _SCENE_ERRORS
from .spec import GridFromScenes, JobSpec

__all__ = [
    "REGRID_METHODS",
    "grid_blocks",
    "grid_of_scenes",
    "merge_thin_ends",
    "open_job_cube",
    "scene_on_grid",
]

#: How each layer is resampled onto the cube grid: coefficients and indices are averaged
#: (area-weighted when coarsening, repeated when refining), classes and flags take the most
#: frequent value (see :mod:`updm_dask.geo.grid`).
REGRID_METHODS = {
    "uCw": "average",
    "uCv": "average",
    "uCs": "average",
    "uC4": "average",
    "residual": "average",
    "mviupd": "average",
    "land_cover": "mode",
    "quality": "mode",
}


def grid_of_scenes(
    scenes: Sequence[SceneSource], how: GridFromScenes | None = None
) -> tuple[CubeGrid, int]:
    """The smallest grid covering the scenes (``[grid] from_scenes = true``).

    Each scene's extent is that of its band files (their headers are read; no pixel is),
    which is also where :func:`scene_on_grid` places it.

    Parameters
    ----------
    scenes
        Discovered scenes.
    how
        ``[grid] crs`` and ``resolution`` when the spec gives them; else the CRS most of the
        scenes are in and their finest pixel size.

    Returns
    -------
    grid : CubeGrid
        Pixel centres on the resolution lattice, as :meth:`CubeGrid.from_bounds` snaps.
    used : int
        How many scenes it covers: a scene whose files cannot be opened is left out (the
        job reports it when it opens it).

    Raises
    ------
    GridError
        No scene could be opened, or the boxes cannot be brought into the CRS.
    """
    how = how or GridFromScenes()
    boxes, crss, sizes = [], [], []
    for source in scenes:
        try:
            ds = open_scene(source)
        except _SCENE_ERRORS:
            continue
        crs = ds.rio.crs.to_string()
        boxes.append((ds.rio.bounds(), crs))
        crss.append(crs)
        sizes.append(min(abs(v) for v in ds.rio.resolution()))
    if not boxes:
        raise GridError("none of the scenes found could be opened to derive a grid from")
    # Most scenes' CRS (the first such in discovery order on a tie): they land by slicing.
    crs = how.crs or max(dict.fromkeys(crss), key=crss.count)
    return covering_grid(boxes, how.resolution or min(sizes), crs), len(boxes)


def _job_grid(
    spec: JobSpec, scenes: Sequence[SceneSource], say: Callable[[str], None]
) -> CubeGrid | None:
    """The grid a new cube gets: the spec's, or (``from_scenes``) that of the scenes found."""
    if (
        spec.grid is not None
        or spec.grid_from_scenes is None
        or cube_exists(spec.cube)
        or collection_exists(spec.cube)
    ):
        return spec.grid
    try:
        grid, used = grid_of_scenes(scenes, spec.grid_from_scenes)
        tiled = (
            spec.tile_edge or int(config.get("tiles.edge"))
            if spec.tiled or spec.tile_select
            else None
        )
        check_grid_pixels(grid, "grid (from the scenes)", tile_edge=tiled)
    except UpdmError as exc:
        raise spec_error(spec.source, "grid.from_scenes", str(exc)) from None
    lo_x, lo_y, hi_x, hi_y = grid.bounds
    say(
        f"grid: derived from {used} of the {len(scenes)} scenes found: {grid.crs}, "
        f"{grid.ny} x {grid.nx} pixels of {grid.resolution:g} m, bounds "
        f"({lo_x:.0f}, {lo_y:.0f}, {hi_x:.0f}, {hi_y:.0f})"
    )
    return grid


def _check_cube_or_grid(spec: JobSpec) -> None:
    if (
        spec.grid is None
        and spec.grid_from_scenes is None
        and not cube_exists(spec.cube)
        and not collection_exists(spec.cube)
    ):
        raise JobSpecError(
            f"{spec.source}: grid: the cube {spec.cube} does not exist yet, so the job must "
            "declare its grid ([grid] with crs + transform + shape, aoi + resolution, or "
            "from_scenes = true)"
        )


def open_job_cube(spec: JobSpec, grid: CubeGrid | None = None) -> Cube:
    """Open the job's cube, or create it on the job's grid.

    Parameters
    ----------
    spec
        The job.
    grid
        The grid to create the cube on, instead of the spec's (e.g. one derived from the
        scenes, :func:`grid_of_scenes`); an existing cube must have it.

    Raises
    ------
    JobSpecError
        The cube does not exist and the spec has no ``[grid]``, or the spec's grid differs
        from the existing cube's.
    """
    grid = grid if grid is not None else spec.grid
    if cube_exists(spec.cube):
        cube = open_cube(spec.cube, for_writing=True)
        if grid is not None and cube.grid != grid:
            raise JobSpecError(
                f"{spec.source}: grid: the cube {cube.location} already has another grid "
                f"({cube.grid.crs}, shape {cube.grid.shape}, bounds {cube.grid.bounds}) than "
                f"the job declares ({grid.crs}, shape {grid.shape}, bounds {grid.bounds})"
            )
        return cube
    if grid is None:
        _check_cube_or_grid(spec)
    return create_cube(spec.cube, grid, title=f"updm_dask cube of job {printable(spec.name)}")


def scene_on_grid(
    source: SceneSource | str | os.PathLike,
    grid: CubeGrid,
    science: Science | None = None,
    *,
    chunks: int | None = None,
    cube_chunks: int | tuple[int, int] | None = None,
) -> xr.Dataset:
    """One scene's UPDM layers on its window of the cube grid, lazily (nothing is read).

    Parameters
    ----------
    source
        A discovered scene, or anything :func:`~updm_dask.scenes.open_scene` opens.
    grid
        The cube grid.
    science
        Science parameters (default :class:`~updm_dask.pipeline.Science`).
    chunks
        Spatial chunk edge of the scene as it is read (default dask config
        ``updm.chunks.spatial``).
    cube_chunks
        Chunk edge of the cube's scene-level arrays (default dask config
        ``updm.chunks.cube``, clipped to the grid). When the scene lies on the grid's
        lattice, its blocks are cut on these chunk edges before the fused kernel runs, so
        that every block is computed, encoded and written by one task and no chunk is
        shared between tasks: each block spans as many whole cube chunks per side as fit
        in the read chunk edge (``updm.chunks.spatial``), at least one.

    Returns
    -------
    xarray.Dataset
        The layers of :func:`~updm_dask.pipeline.process_scene` (:data:`REGRID_METHODS`)
        on the part of ``grid`` the scene covers (``to_grid(..., window=True)``: the
        ``grid_window`` attribute says where), with the scene's attributes minus the
        Python objects, ready for :meth:`~updm_dask.cube.Cube.append_scenes`;
        ``attrs["scene_pixels"]`` is the scene's own pixel count.
    """
    scene = open_scene(source, chunks=chunks)
    if chunks is None:
        lattice = _chunk_lattice(scene, grid, cube_chunks)
        if lattice is not None:
            # read again, cut on the cube's chunk edges: no rechunk before the kernel
            scene = open_scene(source, chunks=lattice)
    layers = process_scene(scene, science)
    placed = to_grid(layers, grid, method=REGRID_METHODS, window=True)
    window = placed.attrs[WINDOW_ATTR]
    placed.attrs = {k: v for k, v in layers.attrs.items() if not k.startswith("updm_")}
    placed.attrs[WINDOW_ATTR] = window
    placed.attrs["scene_pixels"] = int(scene.sizes["y"] * scene.sizes["x"])
    return placed


def _chunk_lattice(
    scene: xr.Dataset, grid: CubeGrid, cube_chunks: int | tuple[int, int] | None
) -> dict[str, tuple[int, ...]] | None:
    """Chunks of the scene cut on the cube's chunk edges, when it lies on the grid's lattice.

    Then the kernel's blocks are the write blocks: each block is read, computed, encoded
    and written without a rechunk, and no two blocks share a chunk. A block spans
    ``updm.chunks.spatial // edge`` cube chunks per side (at least one): a task's size is
    the read chunk the configuration asks for, not the storage chunk, which is smaller so
    that point reads stay cheap (with the defaults, 1,024^2 blocks of four 512^2 chunks: a
    quarter of the tasks, the scheduler's and the driver's work per scene falling with
    them); a first or last block of at most half a block joins its neighbour
    (:func:`merge_thin_ends`). None for scenes that need resampling (the cube rechunks
    those).
    """
    if cube_chunks is None:
        cube_chunks = int(config.get("chunks.cube"))
    cy, cx = (cube_chunks, cube_chunks) if isinstance(cube_chunks, int) else cube_chunks
    offset = lattice_offset(scene, grid)
    if offset is None:
        return None
    read = config.spatial_chunks()
    cy, cx = min(cy, grid.ny), min(cx, grid.nx)
    # multiples of the chunk edge from grid index 0: every block edge is a chunk edge
    by, bx = cy * max(1, read // cy), cx * max(1, read // cx)
    return {
        "y": grid_blocks(offset[0], scene.sizes["y"], grid.ny, by),
        "x": grid_blocks(offset[1], scene.sizes["x"], grid.nx, bx),
    }


def grid_blocks(start: int, size: int, extent: int, block: int) -> tuple[int, ...]:
    """Blocks along one axis of a scene ``size`` pixels long from grid index ``start``, on a
    grid ``extent`` pixels long: the lattice of ``block`` inside the grid, its thin ends
    joined (:func:`merge_thin_ends`), and what lies off the grid as one block per side.

    The grid's edges are always block edges: a block that straddled one would be read and
    computed whole for the part the grid keeps (a tile's share of a scene across tiles).
    The blocks off the grid are cut away with the window, never computed.
    """
    inside_start, inside_stop = max(start, 0), min(start + size, extent)
    if inside_stop <= inside_start:  # off the grid (placing refuses it): plain lattice
        return lattice_chunks(start, size, block)
    before = [inside_start - start] if inside_start > start else []
    after = [start + size - inside_stop] if start + size > inside_stop else []
    inside = merge_thin_ends(lattice_chunks(inside_start, inside_stop - inside_start, block), block)
    return (*before, *inside, *after)


def merge_thin_ends(chunks: tuple[int, ...], block: int) -> tuple[int, ...]:
    """``chunks`` with a first or last block of at most half a ``block`` joined to its
    neighbour.

    A scene lies anywhere on the grid's block lattice, so its first and last blocks along
    each axis are cut at random widths; a thin one is a task of its own for a sliver of
    pixels. Joined, a block is at most one and a half blocks wide (the last block does not
    join a block the first one joined), and its edges are still the lattice's (chunk
    edges), so no two tasks write one chunk. A 7,000-pixel side in 1,024-pixel blocks is 6
    or 7 blocks, not 7 or 8; a 1,024-pixel side is one block wherever it lies.
    """
    out = list(chunks)
    joined_first = False
    if len(out) > 1 and 2 * out[0] <= block:
        thin = out.pop(0)
        out[0] += thin
        joined_first = True
    if len(out) > 1 and 2 * out[-1] <= block and not (joined_first and len(out) == 2):
        thin = out.pop()
        out[-1] += thin
    return tuple(out)
