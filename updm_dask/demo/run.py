"""`updm demo`: generate the synthetic archive, run a real job on it, report recovery.

The demo is an ordinary job: :func:`updm_dask.demo.make_demo_archive` writes real GeoTIFF
band files and MTL files, :meth:`~updm_dask.demo.DemoArchive.write_job_spec` writes the
job spec, and :func:`updm_dask.jobs.run.run_job_file` runs it on a Dask cluster (the same
resolution order as ``updm run``), so running the demo again adds nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..cube import open_cube
from ..jobs.run import run_job_file
from ..query import transition_matrix
from .archive import make_demo_archive
from .recovery import format_recovery, recovery_report

__all__ = ["run_demo"]


def run_demo(
    workdir: str | os.PathLike,
    *,
    scheduler: str | None = None,
    scheduler_file: str | os.PathLike | None = None,
    progress: bool = True,
    n_scenes: int | None = None,
    size: int = 200,
    client=None,
) -> int:
    """Build the demo archive and run its job into ``workdir/cube.icechunk``.

    Parameters
    ----------
    workdir
        Folder for the archive, the job spec and the cube.
    scheduler, scheduler_file, client
        Where to run (see :func:`updm_dask.jobs.run.run_job`).
    progress
        Show a progress bar.
    n_scenes, size
        Archive size (default: the full 1972-2024 schedule on a 200 x 200 grid).

    Returns
    -------
    int
        The job's exit code (0 when every scene was stored).
    """
    started = time.perf_counter()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    archive = make_demo_archive(workdir, n_scenes=n_scenes, size=size)
    cube_path = workdir / "cube.icechunk"
    job = archive.write_job_spec(workdir / "job.toml", cube_path)
    report = run_job_file(
        job, scheduler=scheduler, scheduler_file=scheduler_file, client=client, progress=progress
    )
    print(report.format())
    # The summary reads the cube as a user would, through the query API.
    cube = open_cube(cube_path)
    print(format_recovery(recovery_report(cube, archive)))
    years = [int(y) for y in cube.to_xarray()["year"].values]
    if len(years) >= 8:
        early, late = (years[0], years[2]), (years[-3], years[-1])
        print(transition_matrix(cube, early, late).format())
    print(
        f"demo: cube at {cube_path} ({time.perf_counter() - started:.1f} s); "
        f"see it with `updm info {cube_path}`, run it again with `updm run {job}`"
    )
    return report.exit_code
