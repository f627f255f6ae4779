"""Run an updm_dask job on an HPC cluster: Dask workers as Slurm (or PBS) batch jobs.

Run it on a login/submit node, inside the environment that has updm_dask and
dask-jobqueue (``pip install dask-jobqueue``; it is needed here only, not by updm_dask)::

    python deploy/hpc/run_slurm.py JOB.toml --maximum-jobs 20

It loads ``deploy/dask.yaml`` and ``deploy/hpc/jobqueue.yaml`` into dask's configuration,
starts the scheduler in this process, lets dask-jobqueue submit worker jobs as the job
needs them (``cluster.adapt``), runs the job with
:func:`updm_dask.jobs.run.run_job_file` against that scheduler, prints the report and exits
with the job's exit code (0 all scenes fine, 1 some failed, 2 the job could not run).
Workers retire before their walltime (``--lifetime`` in jobqueue.yaml) and are replaced by
new batch jobs; running the script again resumes the job from the cube's ledger.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DASK_CONFIG = HERE.parent / "dask.yaml"
DEFAULT_JOBQUEUE_CONFIG = HERE / "jobqueue.yaml"

#: dask-jobqueue cluster class per batch system (the config section has the same name).
CLUSTER_CLASSES = {"slurm": "SLURMCluster", "pbs": "PBSCluster"}


class MissingJobqueueError(RuntimeError):
    """dask-jobqueue is not installed in this environment."""


def cluster_class(batch_system: str):
    """The dask-jobqueue cluster class for ``batch_system``, imported only now.

    Raises
    ------
    MissingJobqueueError
        When dask-jobqueue is not installed; the message says how to install it.
    """
    try:
        import dask_jobqueue
    except ImportError as exc:
        raise MissingJobqueueError(
            "run_slurm.py needs dask-jobqueue, which updm_dask does not install: run "
            "`pip install dask-jobqueue` in the environment that submits the job"
        ) from exc
    return getattr(dask_jobqueue, CLUSTER_CLASSES[batch_system])


def load_config(*paths: Path) -> None:
    """Merge YAML files into dask's configuration of this process (later files win)."""
    import dask.config
    import yaml

    for path in paths:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a YAML mapping of dask config keys")
        dask.config.update(dask.config.config, data, priority="new")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run_slurm.py",
        description="Run an updm_dask job with Dask workers submitted as batch jobs.",
    )
    p.add_argument("job", help="job specification TOML file")
    p.add_argument(
        "--batch-system", choices=sorted(CLUSTER_CLASSES), default="slurm", help="(slurm)"
    )
    p.add_argument("--dask-config", type=Path, default=DEFAULT_DASK_CONFIG, help="dask.yaml")
    p.add_argument(
        "--jobqueue-config", type=Path, default=DEFAULT_JOBQUEUE_CONFIG, help="jobqueue.yaml"
    )
    p.add_argument("--minimum-jobs", type=int, default=1, help="batch jobs kept running (1)")
    p.add_argument("--maximum-jobs", type=int, default=10, help="most batch jobs at once (10)")
    p.add_argument(
        "--python",
        default=sys.executable,
        help="command that runs Python on the compute nodes (default: this interpreter)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Submit workers, run the job, print its report; return the job's exit code."""
    args = _parser().parse_args(argv)
    if not 0 <= args.minimum_jobs <= args.maximum_jobs or args.maximum_jobs < 1:
        print(
            f"run_slurm.py: expected 0 <= --minimum-jobs <= --maximum-jobs and at least one "
            f"job, got {args.minimum_jobs} and {args.maximum_jobs}",
            file=sys.stderr,
        )
        return 2
    try:
        cls = cluster_class(args.batch_system)
    except MissingJobqueueError as exc:
        print(f"run_slurm.py: {exc}", file=sys.stderr)
        return 2

    import dask.config

    from updm_dask.cli import JobProgressBar
    from updm_dask.errors import UpdmError
    from updm_dask.jobs.run import run_job_file

    dask_config = args.dask_config.resolve()
    # The scheduler runs in this process: it takes its settings from this process's config.
    load_config(dask_config, args.jobqueue_config)
    section = f"jobqueue.{args.batch_system}"
    # The workers read the same dask.yaml from the shared filesystem.
    prologue = list(dask.config.get(f"{section}.job-script-prologue", default=None) or [])
    prologue.append(f"export DASK_CONFIG={shlex.quote(str(dask_config))}")
    cluster = cls(python=args.python, job_script_prologue=prologue)
    # The same progress bar and job notes on stderr as `updm run`; the report on stdout.
    bar = None if args.no_progress else JobProgressBar()
    try:
        cluster.adapt(minimum_jobs=args.minimum_jobs, maximum_jobs=args.maximum_jobs)
        report = run_job_file(
            args.job,
            scheduler=cluster.scheduler_address,
            progress=bar,
            echo=lambda text: print(text, file=sys.stderr, flush=True),
        )
    except UpdmError as exc:
        print(f"run_slurm.py: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if bar is not None:
            bar.close()
        cluster.close()
    print(report.format())
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
