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

The pieces live in modules of their own: :mod:`~updm_dask.jobs.report` (what a job
reports: :class:`JobReport`, :class:`SceneFailure`, :class:`JobProgress`),
:mod:`~updm_dask.jobs.discovery` (finding a job's scenes), :mod:`~updm_dask.jobs.placing`
(the job's grid and cube, :func:`scene_on_grid`) and :mod:`~updm_dask.jobs.tiles` (tiled
collections); this module holds the batch loop, and their names stay importable from here.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import dask.config
import xarray as xr
import zarr

from .. import __version__, config
from ..cube import Cube, CubeConflictError, EmptyScenesError
from ..errors import JobError, JobSpecError, SceneError, UpdmError
from ..messages import printable, redact, shown
from ..pipeline import Science
from ..scenes import SceneSource
from .cluster import check_scheduler, connect, dashboard_link

# The names moved to report, discovery and placing stay importable from here (the "x as x"
# ones are imported for that alone: REGRID_METHODS by outside checks and benchmarks).
from .discovery import _discover
from .discovery import _product as _product
from .placing import REGRID_METHODS as REGRID_METHODS
from .placing import (
    _check_cube_or_grid,
    _job_grid,
    grid_of_scenes,
    open_job_cube,
    scene_on_grid,
)
from .placing import _chunk_lattice as _chunk_lattice
from .report import (
    _SCENE_ERRORS,
    DuplicateScene,
    JobProgress,
    JobReport,
    SceneFailure,
    _log_progress,
    _year_list,
)
from .spec import JobSpec, load_job_spec

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
    # scenes are cut in blocks of whole cube chunks, so each block is one fused task
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
