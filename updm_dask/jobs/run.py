"""Batch jobs: a job spec in, a land-cover cube out (``updm run``).

Orchestration only; the numerics live in :mod:`updm_dask.pipeline` and below.

A job
1. checks its inputs before any cluster starts or anything is written: the science
   settings, that a named scheduler answers (:func:`~updm_dask.jobs.cluster.check_scheduler`,
   seconds, not the 30 s of a client's connection attempts), and its inputs, by
   discovering the scenes (folders, globs, archives, URLs, STAC) and keeping those of its
   sensors and time range; a missing input path fails here. Local files are read only
   under the job's input roots and ``[inputs] allow_roots``; of several products of one
   scene id, one is kept (:func:`~updm_dask.scenes.discover.product_preference`) and the
   report says which and why;
2. opens the job's cube, or creates it on the job's grid (``[grid] from_scenes``: the
   grid covering the scenes found, :func:`grid_of_scenes`; a grid larger than dask config
   ``updm.limits.grid-pixels`` is refused before anything is written). A grid larger than
   one tile (``[tiles] edge``, else ``updm.tiles.edge``) makes a tiled collection instead,
   one cube per tile, and the work items become (scene, tile) pairs: see
   :mod:`updm_dask.jobs.tiles`;
3. connects to a Dask cluster (:func:`updm_dask.jobs.cluster.connect`: ``--scheduler``, then
   ``DASK_SCHEDULER_ADDRESS`` / dask config ``scheduler-address``, then
   ``--scheduler-file``, else a LocalCluster sized to the machine) and says which, with
   the link of its dashboard when it has one, and skips every scene already in the cube's
   ledger, so running a job again resumes it and never stores a scene twice;
4. processes the rest in batches: each scene is opened lazily, run through the fused
   per-chunk pipeline and placed on the cube grid, and each batch is written and committed
   as ONE Icechunk commit. Nothing is committed before a batch is complete, so a crash
   leaves the cube exactly as at its last commit;
5. isolates bad scenes: a scene that cannot be opened (missing band, MTL/TIFF mismatch),
   that fails while its pixels are read or processed (truncated TIFF) or that has no
   valid pixel on the grid (all fill) is recorded with its reason and left out of its
   batch, which is then written without it; the job goes on and its exit code says so;
6. rebuilds the per-year layers of the years it touched, in one more commit.

When another writer commits to the cube first, the batch is not stored; the job re-reads
the ledger and retries it (dask config ``updm.job.conflict-retries`` times). The same holds
for the rebuild of the per-year layers, which is redone from the new tip (with the years
the other writer appended to); when it still conflicts after the last retry, the scenes
stay stored, the report names the years whose layers are stale, the exit code is 1, and
the next run on the cube rebuilds them.

Nothing here prints: one-line notes go to an ``echo`` callback (else the
``updm_dask.jobs.run`` logger) and progress to a ``progress`` callback that receives a
:class:`JobProgress` after every batch; ``updm run`` prints both. Whatever comes from the
inputs (job name, scene ids, paths, reasons) is shown with its control characters escaped,
so that no name can forge a line of the report, and URLs without their query strings.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.config
import rasterio.errors
import xarray as xr
import zarr

from .. import __version__, config
from ..cube import (
    Cube,
    CubeConflictError,
    EmptyScenesError,
    collection_exists,
    create_cube,
    cube_exists,
    open_cube,
)
from ..errors import GridError, JobError, JobSpecError, SceneError, UpdmError
from ..geo import CubeGrid, to_grid
from ..geo.grid import check_grid_pixels, covering_grid
from ..geo.regrid import WINDOW_ATTR, lattice_chunks, lattice_offset
from ..messages import printable, redact, shown
from ..pipeline import Science, process_scene
from ..scenes import SceneSource, discover_scenes, discover_stac, input_roots, open_scene
from ..scenes.discover import preference_reason, select_scenes
from .cluster import check_scheduler, connect, dashboard_link
from .keys import spec_error
from .spec import GridFromScenes, JobSpec, load_job_spec

__all__ = [
    "DuplicateScene",
    "JobProgress",
    "JobReport",
    "SceneFailure",
    "grid_of_scenes",
    "job_science",
    "open_job_cube",
    "run_job",
    "run_job_file",
    "scene_on_grid",
]

log = logging.getLogger("updm_dask.jobs.run")

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

# Errors that belong to one scene (its files, its metadata, its place on the grid) rather
# than to the job: the scene is recorded as failed and the job goes on.
_SCENE_ERRORS = (UpdmError, OSError, ValueError, rasterio.errors.RasterioError)


@dataclass(frozen=True)
class SceneFailure:
    """A scene the job could not store.

    Parameters
    ----------
    scene
        Its scene id, or the place it was found when it could not even be named.
    stage
        ``"discover"``, ``"open"``, ``"process"`` or ``"empty"`` (no valid pixel on the
        cube grid).
    reason
        What went wrong, as the error said it.
    """

    scene: str
    stage: str
    reason: str


@dataclass(frozen=True)
class DuplicateScene:
    """Two products of one scene id among a job's inputs, and which one the job used.

    Parameters
    ----------
    scene_id
        The scene id they share.
    used, dropped
        Each as ``"<product id> (<metadata path>)"``.
    reason
        Why ``used`` was preferred
        (:func:`~updm_dask.scenes.discover.preference_reason`).
    """

    scene_id: str
    used: str
    dropped: str
    reason: str


@dataclass
class JobReport:
    """What a job did. ``format()`` is the report ``updm run`` prints."""

    job_id: str
    cube: str
    cluster: str = ""
    found: int = 0
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[SceneFailure] = field(default_factory=list)
    duplicates: list[DuplicateScene] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)
    years_rebuilt: list[int] = field(default_factory=list)
    #: Years whose per-year layers could not be rebuilt (repeated write conflicts), and why.
    years_stale: list[int] = field(default_factory=list)
    stale_reason: str = ""
    conflicts: int = 0
    pixels: int = 0
    cores: int = 0
    processing_seconds: float = 0.0
    seconds: float = 0.0
    #: A tiled collection: per tile run, what happened there (one line each).
    tiles: dict[str, str] = field(default_factory=dict)
    #: Tiles whose loop failed (the others went on); run the job again to resume them.
    tiles_failed: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when every scene found is in the cube with its per-year layers rebuilt; 1 when
        any scene or tile failed or some per-year layers are stale (run again: each is
        resumed)."""
        return 1 if self.failed or self.years_stale or self.tiles_failed else 0

    @property
    def pixels_per_second(self) -> float:
        """Scene pixels processed and committed per second of batch processing."""
        return self.pixels / self.processing_seconds if self.processing_seconds > 0 else 0.0

    def format(self) -> str:
        """A human-readable summary.

        One line per item: control characters in names and reasons are escaped (a job
        name holding a newline cannot start a line of its own) and URLs show no query.
        """
        lines = [
            f"job {self.job_id} -> cube {self.cube}",
            f"  cluster: {self.cluster}",
            f"  scenes: {self.found} found, {len(self.done)} processed, "
            f"{len(self.skipped)} skipped (already in the cube), {len(self.failed)} failed",
        ]
        if self.commits:
            lines.append(f"  commits: {len(self.commits)} (last {self.commits[-1]})")
        if self.years_rebuilt:
            lines.append(f"  per-year layers rebuilt for: {_year_list(self.years_rebuilt)}")
        if self.years_stale:
            lines.append(
                f"  per-year layers NOT rebuilt for: {_year_list(self.years_stale)} "
                f"({self.stale_reason}); the scenes are stored, these layers are stale, and "
                "the next run on this cube rebuilds them"
            )
        if self.conflicts:
            lines.append(f"  write conflicts with other jobs, retried: {self.conflicts}")
        if self.pixels:
            per_core = self.pixels_per_second / self.cores if self.cores else float("nan")
            lines.append(
                f"  throughput: {self.pixels:,} scene pixels in {self.processing_seconds:.1f} s"
                f" = {self.pixels_per_second:,.0f} pixels/s ({per_core:,.0f} per core, "
                f"{self.cores} cores)"
            )
        lines.append(f"  wall time: {self.seconds:.1f} s")
        if self.duplicates:
            lines.append(
                f"  duplicate scene ids: {len(self.duplicates)} (one product used per scene "
                "id: Level-1, then the later processing, collection, tier)"
            )
            lines += [
                f"    {d.scene_id}: used {d.used}, dropped {d.dropped}: {d.reason}"
                for d in self.duplicates
            ]
        if self.tiles:
            lines.append(
                f"  tiles: {len(self.tiles)} run, {len(self.tiles_failed)} failed (run the job "
                "again to resume them)"
            )
            lines += [f"    {tile}: {what}" for tile, what in self.tiles.items()]
        if self.failed:
            lines.append("  failed scenes (not stored; fix or remove them and run again):")
            lines += [f"    {f.scene} [{f.stage}]: {f.reason}" for f in self.failed]
        # Every line is one line, whatever the names in it hold.
        return "\n".join(shown(line) for line in lines)


def _year_list(years: Sequence[int]) -> str:
    years = sorted(years)
    if len(years) > 12:
        return f"{len(years)} years, {years[0]}-{years[-1]}"
    return ", ".join(str(y) for y in years)


# --------------------------------------------------------------------------------------
# Building blocks


def job_science(spec: JobSpec) -> Science:
    """The :class:`~updm_dask.pipeline.Science` of a job, checked before any work starts.

    The spec holds its rule tables as names or paths; this loads the one of every sensor
    the job takes, so that a missing or malformed table stops the job before anything is
    written.

    Raises
    ------
    JobSpecError
        A rule table cannot be loaded (naming the job-spec key).
    """
    science = spec.science
    rules = science.rules
    # A mapping names the sensors it has tables for; a scene of another sensor fails alone.
    for sensor in tuple(rules) if isinstance(rules, Mapping) else spec.sensors:
        try:
            science.rules_for(sensor)
        except UpdmError as exc:
            raise JobSpecError(f"{spec.source}: science.rules: {exc}") from None
    return science


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
        tiled = spec.tile_edge or (int(config.get("tiles.edge")) if spec.tile_select else None)
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
        shared between tasks.

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
    and written without a rechunk, and no two blocks share a chunk. None for scenes that
    need resampling (the cube rechunks those).
    """
    if cube_chunks is None:
        cube_chunks = int(config.get("chunks.cube"))
    cy, cx = (cube_chunks, cube_chunks) if isinstance(cube_chunks, int) else cube_chunks
    offset = lattice_offset(scene, grid)
    if offset is None:
        return None
    return {
        "y": lattice_chunks(offset[0], scene.sizes["y"], min(cy, grid.ny)),
        "x": lattice_chunks(offset[1], scene.sizes["x"], min(cx, grid.nx)),
    }


def _product(source: SceneSource) -> str:
    return f"{source.id} ({source.mtl_path})"


def _discover(
    spec: JobSpec,
) -> tuple[list[SceneSource], list[SceneFailure], list[DuplicateScene]]:
    scenes: list[SceneSource] = []
    problems: list[tuple[str, str]] = []
    filters = {"sensors": spec.sensors, "start": spec.start, "end": spec.end}
    # Local files are read only under what the spec names: its inputs and allow_roots.
    roots = [root for item in spec.inputs for root in input_roots(item)]
    roots += [os.path.realpath(root) for root in spec.allow_roots]
    if spec.inputs:
        found = discover_scenes(list(spec.inputs), allow_roots=spec.allow_roots, **filters)
        scenes += found.scenes + found.duplicates
        problems += found.problems
    stac_sources = [(stac, None) for stac in spec.stac]
    if spec.stac_search is not None:
        search = {k: v for k, v in spec.stac_search.items() if k != "url"}
        stac_sources.append((spec.stac_search["url"], search))
    for stac, search in stac_sources:
        found = discover_stac(stac, search=search, roots=roots, sign=spec.sign, **filters)
        scenes += found.scenes + found.duplicates
        problems += found.problems
    merged = select_scenes(scenes, problems)
    failures = [
        SceneFailure(where, "discover", redact(message)) for where, message in merged.problems
    ]
    used = {s.scene_id: s for s in merged.scenes}
    duplicates = [
        DuplicateScene(
            d.scene_id,
            redact(_product(used[d.scene_id])),
            redact(_product(d)),
            preference_reason(used[d.scene_id], d),
        )
        for d in merged.duplicates
        # The same file reached through two inputs is no choice between products.
        if d.mtl_path != used[d.scene_id].mtl_path
    ]
    return merged.scenes, failures, duplicates


def _failed_scene(exc: BaseException, batch: Sequence[tuple[SceneSource, Any]]) -> str | None:
    """The scene of ``batch`` that ``exc`` (or an error it was raised from) is about."""
    ids = {source.scene_id for source, _ in batch}
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, SceneError) and error.scene_id in ids:
            return error.scene_id
        error = error.__cause__ or error.__context__
    return None


def _commit_metadata(spec: JobSpec, science: Science, batch_no: int, sensors: set[str]) -> dict:
    rules = {s: science.rules_for(s) for s in sorted(sensors)}
    return {
        "job_id": spec.job_id,
        "job_name": spec.name,
        "job_spec": spec.source,
        "batch": batch_no,
        "science_sha256": science.sha256(),
        "pattern_set": science.pattern_set.name,
        "pattern_set_sha256": science.pattern_set.sha256,
        "pattern_method": science.method,
        "rules": {s: r.name for s, r in rules.items()},
        "rules_sha256": {s: r.sha256 for s, r in rules.items()},
        "calibration": science.calibration or "mtl",
        "rayleigh": science.rayleigh,
        "updm_dask_version": __version__,
    }


@dataclass(frozen=True)
class JobProgress:
    """Where a running job is: handed to ``run_job(progress=...)`` before the first batch
    and after every batch.

    Parameters
    ----------
    job
        The job's name.
    total
        Scenes to process (found, minus those already in the cube).
    handled
        How many of them the batches so far have handled (stored, failed or found stored
        by another writer).
    failed
        Scenes failed so far, at any stage.
    pixels_per_second
        Throughput so far (:attr:`JobReport.pixels_per_second`).
    """

    job: str
    total: int
    handled: int
    failed: int
    pixels_per_second: float


def _log_progress(event: JobProgress) -> None:
    log.info(
        "%s: %d of %d scenes handled, %d failed, %.0f pixels/s",
        event.job,
        event.handled,
        event.total,
        event.failed,
        event.pixels_per_second,
    )


def _store_batch(
    cube: Cube,
    batch: list[tuple[SceneSource, xr.Dataset]],
    report: JobReport,
    metadata: dict,
    message: str,
) -> list[tuple[SceneSource, xr.Dataset]]:
    """Write and commit one batch, dropping bad scenes and retrying conflicts.

    Returns the scenes stored. Raises JobError when the batch fails for a reason that is
    not one of its scenes (nothing of it is stored then).
    """
    retries = int(config.get("job.conflict-retries"))
    conflicts = 0
    while batch:
        try:
            snapshot = cube.append_scenes(
                [ds for _, ds in batch], metadata=metadata, message=message, reject_empty=True
            )
        except EmptyScenesError as exc:
            empty = set(exc.scene_ids)
            for source, _ in batch:
                if source.scene_id in empty:
                    report.failed.append(
                        SceneFailure(
                            source.scene_id,
                            "empty",
                            "no valid pixel on the cube grid (all fill, or outside the grid)",
                        )
                    )
            batch = [b for b in batch if b[0].scene_id not in empty]
            continue
        except CubeConflictError as exc:
            conflicts += 1
            report.conflicts += 1
            if conflicts > retries:
                raise JobError(
                    shown(f"gave up after {retries} write conflicts on {cube.location}: {exc}")
                ) from exc
            ledger = cube.scene_ids()
            report.skipped += [s.scene_id for s, _ in batch if s.scene_id in ledger]
            batch = [b for b in batch if b[0].scene_id not in ledger]
            time.sleep(min(2.0**conflicts, 30.0) * 0.1)
            continue
        except Exception as exc:
            # A SceneError carries its scene's id, also back from a worker process.
            failed = _failed_scene(exc, batch)
            if failed is None:
                raise JobError(
                    shown(
                        f"{message} failed and nothing of it was stored ({type(exc).__name__}: "
                        f"{exc}); the cube {cube.location} is as at its last commit; run the "
                        "job again to resume"
                    )
                ) from exc
            report.failed.append(SceneFailure(failed, "process", redact(str(exc))))
            batch = [b for b in batch if b[0].scene_id != failed]
            continue
        if snapshot is not None:
            report.commits.append(snapshot)
        return batch
    return []


# --------------------------------------------------------------------------------------
# The job


def run_job(
    spec: JobSpec,
    *,
    scheduler: str | None = None,
    scheduler_file: str | os.PathLike | None = None,
    client: Any = None,
    progress: Callable[[JobProgress], None] | bool | None = None,
    echo: Callable[[str], None] | None = None,
) -> JobReport:
    """Run a job: discover, process and commit its scenes into its cube; resumable.

    Parameters
    ----------
    spec
        The job (:func:`~updm_dask.jobs.spec.load_job_spec`).
    scheduler, scheduler_file
        Where the Dask scheduler is (see :func:`~updm_dask.jobs.cluster.connect`).
    client
        An existing ``distributed.Client`` to use instead (the caller keeps it open).
    progress
        Called with a :class:`JobProgress` before the first batch and after every batch
        (``updm run`` draws its progress bar from it). ``True`` logs the same at INFO level
        on the ``updm_dask.jobs.run`` logger; ``None`` or ``False``: nothing.
    echo
        Where one-line notes go (which cluster, how many scenes); default the
        ``updm_dask.jobs.run`` logger at INFO level.

    Returns
    -------
    JobReport
        ``exit_code`` is 1 when any scene failed.

    Raises
    ------
    JobSpecError
        Bad science settings or grid (before anything is written).
    JobError
        A batch failed for a reason that is not one of its scenes (lost cluster, an
        unwritable cube, repeated write conflicts); batches committed before are kept.
    """
    started = time.perf_counter()
    emit = echo or log.info

    def say(text: str) -> None:
        # Notes quote paths, URLs and names from the inputs: one line each, no URL query.
        emit(shown(text))

    on_batch = _log_progress if progress is True else progress or None
    name = printable(spec.name)
    # Everything that can be checked without a cluster is, before one starts or anything
    # is written: a wrong scheduler address or input path costs seconds, not a cube.
    science = job_science(spec)
    if client is None:
        check_scheduler(scheduler, scheduler_file)
    _check_cube_or_grid(spec)
    for note in spec.notes:
        say(f"updm run {name}: {note}")
    found = _discover(spec)
    grid = _job_grid(spec, found[0], lambda text: say(f"updm run {name}: {text}"))
    from .tiles import open_job_collection, run_tiles  # tiles builds on this module

    # A grid larger than one tile (or a collection already there) is a tiled collection.
    collection = open_job_collection(spec, grid)
    cube = open_job_cube(spec, grid) if collection is None else None
    report = JobReport(
        job_id=spec.job_id, cube=cube.location if cube is not None else collection.location
    )
    owned = None
    if client is None:
        owned = connect(scheduler, scheduler_file)
        client, report.cluster = owned.client, owned.description
        dashboard = owned.dashboard
    else:
        report.cluster = f"the given client ({getattr(client.scheduler, 'address', client)})"
        dashboard = dashboard_link(client)
    try:
        report.cores = int(sum(client.nthreads().values()))
        where = f"dashboard {dashboard}" if dashboard else "no dashboard"
        say(f"updm run {name}: on {report.cluster}, {report.cores} cores; {where}")
        with dask.config.set(scheduler=client):
            if cube is not None:
                _run(spec, science, cube, report, on_batch, say, found)
            else:
                run_tiles(spec, science, collection, report, on_batch, say, found)
    finally:
        if owned is not None:
            owned.close()
    report.seconds = time.perf_counter() - started
    return report


def _run(
    spec: JobSpec,
    science: Science,
    cube: Cube,
    report: JobReport,
    progress: Callable[[JobProgress], None] | None,
    say: Callable[[str], None],
    found: tuple[list[SceneSource], list[SceneFailure], list[DuplicateScene]],
) -> None:
    # The job's name in notes, the progress bar and commit messages: one line, always.
    name = printable(spec.name)
    scenes, failures, duplicates = found
    report.failed += failures
    report.duplicates += duplicates
    report.found = len(scenes) + len(failures)
    ledger = cube.scene_ids()
    report.skipped += [s.scene_id for s in scenes if s.scene_id in ledger]
    todo = [s for s in scenes if s.scene_id not in ledger]
    say(
        f"updm run {name}: {report.found} scenes found, {len(report.skipped)} already "
        f"in {cube.location}, {len(todo)} to process in batches of {spec.batch_size}"
    )
    for duplicate in duplicates:
        say(
            shown(
                f"updm run {name}: scene {duplicate.scene_id} found twice: using "
                f"{duplicate.used}, not {duplicate.dropped} ({duplicate.reason})"
            )
        )

    def tell(handled: int) -> None:
        if progress is not None and todo:
            progress(
                JobProgress(name, len(todo), handled, len(report.failed), report.pixels_per_second)
            )

    tell(0)
    years: set[int] = set()
    # scenes are cut on the cube's own chunk edges, so each block is one fused task
    cube_chunks = tuple(zarr.open_array(cube.session().store, path="uCw", mode="r").chunks[1:])
    n_batches = -(-len(todo) // spec.batch_size)
    t0 = time.perf_counter()
    for batch_no, start in enumerate(range(0, len(todo), spec.batch_size), start=1):
        sources = todo[start : start + spec.batch_size]
        prepared: list[tuple[SceneSource, xr.Dataset]] = []
        for source in sources:
            try:
                placed = scene_on_grid(source, cube.grid, science, cube_chunks=cube_chunks)
                prepared.append((source, placed))
            except _SCENE_ERRORS as exc:
                report.failed.append(SceneFailure(source.scene_id, "open", redact(str(exc))))
        metadata = _commit_metadata(
            spec, science, batch_no, {s.metadata.sensor for s, _ in prepared}
        )
        stored = _store_batch(
            cube, prepared, report, metadata, f"job {name}: batch {batch_no} of {n_batches}"
        )
        for source, placed in stored:
            report.done.append(source.scene_id)
            years.add(source.acquired.year)
            report.pixels += int(placed.attrs.get("scene_pixels", 0))
        report.processing_seconds = time.perf_counter() - t0
        tell(start + len(sources))
    _rebuild_yearly(spec, cube, years, report)


def _rebuild_yearly(spec: JobSpec, cube: Cube, years: set[int], report: JobReport) -> None:
    """Rebuild the per-year layers of ``years``, retrying write conflicts like batches.

    Every attempt starts from the branch tip as it is then, and also takes the years an
    earlier, interrupted run or another writer appended to without rebuilding them. When
    the last retry still conflicts, the scenes stay stored and the report says which
    years are stale (a later run finds them through ``Cube.stale_years``).
    """
    retries = int(config.get("job.conflict-retries"))
    conflicts = 0
    while True:
        todo = sorted(years | set(cube.stale_years()))
        if not todo:
            return
        try:
            snapshot = cube.rebuild_yearly(
                todo, message=f"job {printable(spec.name)}: per-year layers of {_year_list(todo)}"
            )
        except CubeConflictError:
            conflicts += 1
            report.conflicts += 1
            if conflicts > retries:
                report.years_stale = todo
                report.stale_reason = (
                    f"another writer committed to the cube first {conflicts} times; gave up "
                    f"after {retries} retries (updm.job.conflict-retries)"
                )
                return
            time.sleep(min(2.0**conflicts, 30.0) * 0.1)
            continue
        if snapshot is not None:
            report.commits.append(snapshot)
            report.years_rebuilt = todo
        return


def run_job_file(path: str | os.PathLike, **options: Any) -> JobReport:
    """Load a TOML job spec and :func:`run_job` it (what ``updm run JOB.toml`` does).

    Parameters
    ----------
    path
        The job-spec TOML file (:func:`~updm_dask.jobs.spec.load_job_spec`).
    **options
        Passed on to :func:`run_job` (``scheduler``, ``scheduler_file``, ``client``,
        ``progress``, ``echo``).

    Returns
    -------
    JobReport
    """
    return run_job(load_job_spec(Path(path)), **options)
