"""`updm demo`: generate the synthetic archive, run a real job on it, report recovery.

The demo is an ordinary job: :func:`updm_dask.demo.make_demo_archive` writes real GeoTIFF
band files and MTL files, :meth:`~updm_dask.demo.DemoArchive.write_job_spec` writes the
job spec, and :func:`updm_dask.jobs.run.run_job_file` runs it on a Dask cluster (the same
resolution order as ``updm run``), so running the demo again adds nothing.

Nothing here prints: :func:`run_demo` returns the report's text, and hands each part of it
to an ``echo`` callback as soon as it is ready (the ``updm demo`` command prints them).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cube import open_cube
from ..jobs.run import JobProgress, run_job_file
from ..query import transition_matrix
from .archive import make_demo_archive
from .recovery import format_recovery, recovery_report

__all__ = ["DemoRun", "run_demo"]


@dataclass(frozen=True)
class DemoRun:
    """What a demo run did.

    Attributes
    ----------
    exit_code
        The job's exit code (0 when every scene was stored).
    text
        The report: the job's report, the recovery table, the transitions between the first
        and last years (with 8 or more years) and where the cube is, one part per line
        group, as ``updm demo`` prints it.
    cube_path, job_path
        The cube and the job spec written.
    """

    exit_code: int
    text: str
    cube_path: Path
    job_path: Path


def run_demo(
    workdir: str | os.PathLike,
    *,
    scheduler: str | None = None,
    scheduler_file: str | os.PathLike | None = None,
    progress: Callable[[JobProgress], None] | None = None,
    n_scenes: int | None = None,
    size: int = 200,
    client: Any = None,
    echo: Callable[[str], None] | None = None,
    job_echo: Callable[[str], None] | None = None,
) -> DemoRun:
    """Build the demo archive and run its job into ``workdir/cube.icechunk``.

    Parameters
    ----------
    workdir
        Folder for the archive, the job spec and the cube.
    scheduler, scheduler_file, client
        Where to run (see :func:`updm_dask.jobs.run.run_job`).
    progress
        Called with each batch's :class:`~updm_dask.jobs.run.JobProgress` (the CLI passes
        a progress bar); nothing by default.
    n_scenes, size
        Archive size (default: the full 1973-2024 schedule on a 200 x 200 grid).
    echo
        Called with each part of the report as soon as it is ready (the job's report, the
        recovery table, ...); the same parts, joined by newlines, are :attr:`DemoRun.text`.
    job_echo
        The job runner's messages (cluster, batches); passed to
        :func:`updm_dask.jobs.run.run_job_file` as its ``echo``.

    Returns
    -------
    DemoRun
    """
    started = time.perf_counter()
    parts: list[str] = []

    def say(text: str) -> None:
        parts.append(text)
        if echo is not None:
            echo(text)

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    archive = make_demo_archive(workdir, n_scenes=n_scenes, size=size)
    cube_path = workdir / "cube.icechunk"
    job = archive.write_job_spec(workdir / "job.toml", cube_path)
    report = run_job_file(
        job,
        scheduler=scheduler,
        scheduler_file=scheduler_file,
        client=client,
        progress=progress,
        echo=job_echo,
    )
    say(report.format())
    # The summary reads the cube as a user would, through the query API.
    cube = open_cube(cube_path)
    say(format_recovery(recovery_report(cube, archive)))
    years = [int(y) for y in cube.to_xarray()["year"].values]
    if len(years) >= 8:
        early, late = (years[0], years[2]), (years[-3], years[-1])
        say(transition_matrix(cube, early, late).format())
    say(
        f"demo: cube at {cube_path} ({time.perf_counter() - started:.1f} s); "
        f"see it with `updm info {cube_path}`, run it again with `updm run {job}`"
    )
    return DemoRun(report.exit_code, "\n".join(parts), cube_path, job)
