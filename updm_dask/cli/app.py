"""The ``updm`` command: thin argument handling over jobs, cubes and the demo.

No numerics live here; every sub-command calls one public function and prints its result.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..errors import UpdmError

if TYPE_CHECKING:
    from ..jobs.run import JobProgress

__all__ = ["JobProgressBar", "main"]


def _note(text: str) -> None:
    """One-line notes of a running job, on stderr (stdout carries the report)."""
    print(text, file=sys.stderr, flush=True)


class JobProgressBar:
    """A tqdm bar on stderr drawn from a job's progress events.

    Pass one as ``run_job(progress=...)`` (or ``run_job_file``); :meth:`close` it when the
    job returns or raises. What ``updm run`` shows.
    """

    def __init__(self) -> None:
        self.bar = None
        self.shown = 0

    def __call__(self, event: JobProgress) -> None:
        """Advance to ``event.handled`` scenes of ``event.total``."""
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=event.total, unit="scene", desc=event.job, file=sys.stderr)
        if event.handled > self.shown:
            self.bar.update(event.handled - self.shown)
            self.shown = event.handled
            self.bar.set_postfix(
                {"failed": event.failed, "px_s": f"{event.pixels_per_second:,.0f}"}, refresh=True
            )

    def close(self) -> None:
        """Close the bar (it stays on screen)."""
        if self.bar is not None:
            self.bar.close()


def _cmd_run(args: argparse.Namespace) -> int:
    from ..jobs.run import run_job_file

    bar = None if args.no_progress else JobProgressBar()
    try:
        report = run_job_file(
            args.job,
            scheduler=args.scheduler,
            scheduler_file=args.scheduler_file,
            progress=bar,
            echo=_note,
        )
    finally:
        if bar is not None:
            bar.close()
    print(report.format())
    return report.exit_code


def _cmd_demo(args: argparse.Namespace) -> int:
    from ..demo.run import run_demo

    bar = None if args.no_progress else JobProgressBar()
    try:
        result = run_demo(
            Path(args.workdir),
            scheduler=args.scheduler,
            scheduler_file=args.scheduler_file,
            progress=bar,
            n_scenes=args.scenes,
            size=args.size,
            # each part of the report as soon as it is ready; the job's messages to stderr
            echo=print,
            job_echo=_note,
        )
    finally:
        if bar is not None:
            bar.close()
    return result.exit_code


def _cmd_info(args: argparse.Namespace) -> int:
    from ..cube import cube_info, format_cube_info

    print(format_cube_info(cube_info(args.cube)))
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    from ..cube import migrate_cube

    print(migrate_cube(args.cube).format())
    return 0


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="updm",
        description="Universal Pattern Decomposition of the Landsat record into land-cover cubes.",
    )
    parser.add_argument("--version", action="version", version=f"updm_dask {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def add_cluster_options(p: argparse.ArgumentParser) -> None:
        group = p.add_mutually_exclusive_group()
        group.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://127.0.0.1:8786")
        group.add_argument("--scheduler-file", help="scheduler file written by `dask scheduler`")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")

    run = sub.add_parser("run", help="run a job spec (TOML) into its cube; re-running resumes")
    run.add_argument("job", help="job specification TOML file")
    add_cluster_options(run)
    run.set_defaults(func=_cmd_run)

    demo = sub.add_parser(
        "demo", help="generate a synthetic 1972-2024 archive, run a real job on it, report"
    )
    demo.add_argument("--workdir", default="updm-demo", help="folder for archive and cube")
    demo.add_argument("--scenes", type=int, default=None, help="number of scenes (default ~60)")
    demo.add_argument("--size", type=int, default=200, help="grid edge in 30 m pixels")
    add_cluster_options(demo)
    demo.set_defaults(func=_cmd_demo)

    info = sub.add_parser("info", help="grid, variables, scenes per sensor/decade, commits")
    info.add_argument("cube", help="cube location (path or s3://...)")
    info.set_defaults(func=_cmd_info)

    migrate = sub.add_parser(
        "migrate", help="re-encode a cube of an older format (one commit), rebuild per-year layers"
    )
    migrate.add_argument("cube", help="cube location (path or s3://...)")
    migrate.set_defaults(func=_cmd_migrate)

    from . import embed, query

    query.register(sub)
    embed.register(sub)
    return parser


def _quiet_icechunk() -> None:
    # Icechunk logs warnings (e.g. about local-filesystem commits, which the cube docs
    # cover) straight to stderr, through the progress bar; keep errors only unless the
    # user asks for more with ICECHUNK_LOG.
    if "ICECHUNK_LOG" not in os.environ:
        import icechunk

        icechunk.set_logs_filter("error")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``updm`` console script."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    _quiet_icechunk()
    try:
        return int(args.func(args) or 0)
    except UpdmError as exc:
        print(f"updm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"updm {args.command}: interrupted; committed batches are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
