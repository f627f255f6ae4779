"""What a job reports: the scenes it could not store, the duplicate products it chose
between, its final :class:`JobReport` and the :class:`JobProgress` of a running job.

These are plain records: :mod:`updm_dask.jobs.run` and :mod:`updm_dask.jobs.tiles` fill
them in, ``updm run`` prints them. Progress logged by ``run_job(progress=True)`` goes to the
``updm_dask.jobs.run`` logger, where it always went.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import rasterio.errors

from ..errors import UpdmError
from ..messages import shown

__all__ = ["DuplicateScene", "JobProgress", "JobReport", "SceneFailure"]

# The job's logger (run_job's notes go there too): a job logs to one logger.
log = logging.getLogger("updm_dask.jobs.run")

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
        ``"discover"``, ``"open"``, ``"process"``, ``"empty"`` (no valid pixel on the
        cube grid) or ``"tile"`` (a tile it lies in failed, in a tiled job).
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
            resume = " (run the job again to resume them)" if self.tiles_failed else ""
            lines.append(f"  tiles: {len(self.tiles)} run, {len(self.tiles_failed)} failed{resume}")
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
