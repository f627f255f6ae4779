"""The ``updm`` command: thin argument handling over jobs, cubes and the demo.

No numerics live here; every sub-command calls one public function and prints its result.

Every command takes ``-v`` (the package's INFO log on stderr; ``-vv`` DEBUG and the cube
store's warnings) and ``-q`` (no notes, no progress bars: results and errors only), before
or after the command's name. Results go to stdout, everything else to stderr; an error is
one line, ``updm COMMAND: error: ...``, and exit status 2.
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
from . import _output

if TYPE_CHECKING:
    from ..jobs.run import JobProgress

__all__ = ["JobProgressBar", "main"]


def _note(text: str) -> None:
    """One-line notes of a running job, on stderr (stdout carries the report); none with -q."""
    _output.note(text)


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

    quiet = _output.is_quiet()
    bar = None if args.no_progress or quiet else JobProgressBar()
    try:
        report = run_job_file(
            args.job,
            scheduler=args.scheduler,
            scheduler_file=args.scheduler_file,
            progress=bar,
            # -q: the notes go to the job's logger, which -q sets to errors only
            echo=None if quiet else _note,
        )
    finally:
        if bar is not None:
            bar.close()
    print(report.format())
    if args.compact and report.cube:
        from ..cube import as_collection

        coll = as_collection(report.cube)
        if coll is not None:
            from ..cube import compact_collection

            # the tiles this run wrote: the others may be another driver's, mid-write
            present = set(coll.tiles())
            wrote = [t for t in report.tiles if t in present and t not in report.tiles_failed]
            if wrote:
                upkeep = compact_collection(report.cube, tiles=wrote, echo=print)
                print(upkeep.format())
                return max(report.exit_code, upkeep.exit_code)
        else:
            _compact(report.cube)
    return report.exit_code


def _cmd_demo(args: argparse.Namespace) -> int:
    from ..demo.run import run_demo

    quiet = _output.is_quiet()
    bar = None if args.no_progress or quiet else JobProgressBar()
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
            job_echo=None if quiet else _note,
        )
    finally:
        if bar is not None:
            bar.close()
    return result.exit_code


def _cmd_info(args: argparse.Namespace) -> int:
    from ..cube import (
        collection_exists,
        collection_info,
        cube_info,
        format_collection_info,
        format_cube_info,
        open_collection,
    )

    if not collection_exists(args.cube):
        if args.tile is not None:
            raise UpdmError(f"--tile {args.tile}: {args.cube!r} is a single cube, not tiled")
        print(format_cube_info(cube_info(args.cube, snapshot=args.snapshot, tag=args.tag)))
        return 0
    if args.snapshot is not None:
        raise UpdmError(
            f"--snapshot {args.snapshot}: {args.cube!r} is a tiled collection and every tile "
            "has snapshots of its own; pin it with a tag instead (`updm tag`, then --tag)"
        )
    if args.tile is None:
        print(format_collection_info(collection_info(args.cube, tag=args.tag)))
    else:
        coll = open_collection(args.cube, tag=args.tag)
        coll.open_tile(args.tile)  # a bad or empty tile: say which exist
        at = f" at tag {args.tag}" if args.tag else ""
        print(f"tile        {args.tile} of {coll.location}{at}")
        snapshot = coll.snapshots()[args.tile] if args.tag else None
        print(format_cube_info(cube_info(coll.tile_location(args.tile), snapshot=snapshot)))
    return 0


def _cmd_tag(args: argparse.Namespace) -> int:
    from ..cube import as_collection, open_cube

    coll = as_collection(args.cube)
    if coll is not None:
        snap = coll.tag(args.name)
        print(
            f"{coll.location}: tagged {args.name!r}: {len(coll.tiles())} tile(s) pinned at "
            f"their current snapshots (catalogue snapshot {snap})"
        )
    else:
        cube = open_cube(args.cube)
        snap = cube.create_tag(args.name)
        print(f"{cube.location}: tagged {args.name!r} at snapshot {snap}")
    return 0


def _cmd_compact(args: argparse.Namespace) -> int:
    from ..cube import collection_exists, compact_collection

    if collection_exists(args.cube):
        upkeep = compact_collection(args.cube, tiles=args.tile, echo=print)
        print(upkeep.format())
        return upkeep.exit_code
    _single_cube(args)
    _compact(args.cube)
    return 0


def _single_cube(args: argparse.Namespace) -> None:
    """Refuse ``--tile`` on a location that holds one cube."""
    if args.tile:
        raise UpdmError(f"--tile {args.tile[0]}: {args.cube!r} is a single cube, not tiled")


def _compact(location: str) -> None:
    from ..cube import compact_time_blocks, describe_compaction, open_cube

    cube = open_cube(location)
    print(describe_compaction(cube, compact_time_blocks(cube)))


def _cmd_gc(args: argparse.Namespace) -> int:
    from ..cube import collect_collection_garbage, collect_garbage, collection_exists

    if collection_exists(args.cube):
        upkeep = collect_collection_garbage(
            args.cube, older_than_days=args.older_than, tiles=args.tile, echo=print
        )
        print(upkeep.format())
        return upkeep.exit_code
    _single_cube(args)
    report = collect_garbage(args.cube, older_than_days=args.older_than, keep_tags=args.keep_tags)
    print(report.format())
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

    def add_tile_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--tile",
            action="append",
            metavar="ID",
            help="of a tiled collection, only this tile (repeat for more; default: every tile)",
        )

    def add_cluster_options(p: argparse.ArgumentParser) -> None:
        group = p.add_mutually_exclusive_group()
        group.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://127.0.0.1:8786")
        group.add_argument("--scheduler-file", help="scheduler file written by `dask scheduler`")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")

    run = sub.add_parser("run", help="run a job spec (TOML) into its cube; re-running resumes")
    run.add_argument("job", help="job specification TOML file")
    run.add_argument(
        "--compact",
        action="store_true",
        help="afterwards, copy the cube's scenes into time blocks (as `updm compact`)",
    )
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

    info = sub.add_parser(
        "info", help="grid (in its CRS and lon/lat), variables, scenes per sensor/decade, commits"
    )
    info.add_argument("cube", help="cube or tiled collection location (path or s3://...)")
    info.add_argument("--tile", help="of a tiled collection, show this tile (e.g. r0c1)")
    at = info.add_mutually_exclusive_group()
    at.add_argument(
        "--tag", help="as of this tag (of a tiled collection: every tile as the tag pinned it)"
    )
    at.add_argument("--snapshot", help="of a single cube: as of this commit (snapshot id)")
    info.set_defaults(func=_cmd_info)

    tag = sub.add_parser(
        "tag", help="tag the current state of a cube, or of every tile of a tiled collection"
    )
    tag.add_argument("cube", help="cube or tiled collection location (path or s3://...)")
    tag.add_argument("name", help="tag name; read it back with --tag / open_collection(tag=)")
    tag.set_defaults(func=_cmd_tag)

    compact = sub.add_parser(
        "compact",
        help="copy the stored scenes into time-blocked arrays: a pixel's history in a few reads",
    )
    compact.add_argument("cube", help="cube or tiled collection location (path or s3://...)")
    add_tile_option(compact)
    compact.set_defaults(func=_cmd_compact)

    gc = sub.add_parser(
        "gc", help="expire old snapshots of a cube and delete the storage only they used"
    )
    gc.add_argument("cube", help="cube or tiled collection location (path or s3://...)")
    add_tile_option(gc)
    gc.add_argument(
        "--older-than",
        type=float,
        default=None,
        metavar="DAYS",
        help="expire snapshots older than DAYS days (default: updm.cube.gc-older-than-days); "
        "the branch tip and the first commit are always kept",
    )
    gc.add_argument(
        "--keep-tags",
        action="store_true",
        help="keep tagged snapshots, however old (always, for a tiled collection)",
    )
    gc.set_defaults(func=_cmd_gc)

    migrate = sub.add_parser(
        "migrate", help="re-encode a cube of an older format (one commit), rebuild per-year layers"
    )
    migrate.add_argument("cube", help="cube location (path or s3://...)")
    migrate.set_defaults(func=_cmd_migrate)

    from . import embed, query

    query.register(sub)
    embed.register(sub)
    _add_verbosity(parser, top=True)
    for leaf in _leaf_parsers(parser):
        _add_verbosity(leaf, top=False)
    return parser


def _leaf_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser of a command that runs (``updm query point``, ``updm info`` ...)."""
    found: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases share a parser
                found.extend(_leaf_parsers(child) or [child])
    return found


def _add_verbosity(p: argparse.ArgumentParser, *, top: bool) -> None:
    """``-v``/``-q`` on ``p``. On the commands they default to SUPPRESS, so that
    ``updm -q query ...`` is not undone by the sub-command's own default."""
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0 if top else argparse.SUPPRESS,
        help="more messages on stderr: -v the steps (INFO), -vv everything (DEBUG)",
    )
    g.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="no notes and no progress bars; results and errors only",
    )


def _quiet_icechunk(verbose: int) -> None:
    # Icechunk logs straight to stderr, with Rust span traces (warnings about local-filesystem
    # commits, which the cube docs cover; errors it recovers from, or that reach the command
    # as an exception it words itself). Silent by default, errors with -v, warnings with
    # -vv, unless the user chose with ICECHUNK_LOG.
    if "ICECHUNK_LOG" not in os.environ:
        import icechunk

        icechunk.set_logs_filter({0: "off", 1: "error"}.get(verbose, "warn"))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``updm`` console script."""
    import icechunk

    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.verbose and args.quiet:
        parser.error("-v/--verbose and -q/--quiet exclude each other")
    _output.configure(args.verbose, args.quiet)
    _quiet_icechunk(args.verbose)
    try:
        return int(args.func(args) or 0)
    except UpdmError as exc:
        print(f"updm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except icechunk.IcechunkError as exc:
        from ..cube import icechunk_detail

        # the storage layer's own text ends in a Rust span trace; its first line says it
        first = icechunk_detail(exc)
        cubes = getattr(args, "cubes", None) or [getattr(args, "cube", None)]
        where = f"cube {', '.join(map(repr, cubes))}: " if cubes[0] else ""
        print(
            f"updm {args.command}: error: {where}reading or writing the cube store failed: "
            f"{first} (run with -v for the store's own log)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(f"updm {args.command}: interrupted; committed batches are kept", file=sys.stderr)
        return 130
    finally:
        _output.reset()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
