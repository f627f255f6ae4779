"""``updm embed ...`` and ``updm similar ...``: thin argument handling, no numerics.

Usage::

    updm embed CUBE (--lonlat LON LAT | --xy X Y [--crs CRS]) [--radius M]
               [--period 1975-2024] [--snapshot ID | --tag NAME] [--json] [--output F]
    updm embed CUBE --points points.csv [--radius M] [--snapshot ID | --tag NAME] [--raw]
               [--output out.csv]
    updm embed CUBE --store [--period 1972-2024]
    updm embed CUBE [CUBE ...] --fit-encoder encoder.npz [--degree 20] [--frame cap] [--step 2]
    updm embed --encoder encoder.npz (--lonlat LON LAT | --xy X Y --crs CRS
               | --points points.csv) [--output F]
    updm embed CUBE [CUBE ...] --evaluate [--feature-period 1972-2009]
               [--target-period 2010-2024] [--block PX] [--seed N] [--output table.md]
    updm embed --evaluate --synthetic DIR [--block 8]
    updm similar CUBE [CUBE ...] (--lonlat LON LAT | --xy X Y [--crs CRS]) [-k 10]
                 [--metric cosine] [--radius M] [--exclude M] [--separation M]
                 [--snapshot ID | --tag NAME] [--output table.csv] [--png map.png]

A point is ``--lonlat LON LAT`` (WGS 84 degrees) or ``--xy X Y`` in the (first) cube's CRS
or in ``--crs``, as in ``updm query point``. The former ``--lon X --lat Y`` still works but
is deprecated (hidden from the help; a note says so): use ``--lonlat``.

Cubes are read at their branch tip unless ``--snapshot``/``--tag`` name an older state, as
in ``updm query``: a tag of a tiled collection reads every tile as the tag pinned it (a
snapshot id names one cube's state only, so a collection takes ``--tag``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..errors import QueryError
from ._output import progress, wrote
from ._points import add_point, point_of

__all__ = ["register"]


def _epoch_years(value: int) -> int | None:
    return None if value == 0 else value


def _add_period(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--period",
        default="1972-2024",
        help="years of the embedding, START-END (default %(default)s)",
    )
    p.add_argument(
        "--epoch-years",
        type=int,
        default=10,
        help="epoch length in years (default 10: calendar decades; 0: one epoch)",
    )


def _add_state(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--snapshot", help="read the cube(s) at this commit (snapshot id)")
    g.add_argument(
        "--tag", help="read the cube(s) at this tag (of a tiled collection: every tile pinned)"
    )


def _cubes(args: argparse.Namespace) -> list[Any]:
    """The CUBE arguments, opened at ``--snapshot``/``--tag`` when one is given (else the
    locations themselves, read at their tips)."""
    if args.snapshot is None and args.tag is None:
        return list(args.cubes)
    from ..cube import collection_exists, open_collection, resolve_cube

    opened: list[Any] = []
    for location in args.cubes:
        if not collection_exists(location):
            opened.append(resolve_cube(location, snapshot=args.snapshot, tag=args.tag))
        elif args.snapshot is not None:
            raise QueryError(
                f"--snapshot {args.snapshot}: {location!r} is a tiled collection and every "
                "tile has snapshots of its own; pin it with a tag instead (`updm tag`, then "
                "--tag)"
            )
        else:
            opened.append(open_collection(location, tag=args.tag))
    return opened


def register(subparsers: Any) -> None:
    """Add the ``embed`` and ``similar`` sub-commands to the ``updm`` parser."""
    e = subparsers.add_parser(
        "embed",
        help="location embeddings: of a point or CSV of points, stored in a cube, an encoder",
        description="Location embeddings from UPDM cubes (see updm_dask/embed/EMBEDDINGS.md).",
    )
    e.add_argument("cubes", nargs="*", metavar="CUBE", help="cube location(s)")
    mode = e.add_mutually_exclusive_group()
    mode.add_argument("--points", help="CSV with lon,lat columns (optional id, radius)")
    mode.add_argument("--store", action="store_true", help="store the layer in the cube")
    mode.add_argument("--fit-encoder", metavar="FILE", help="fit a location encoder, save it")
    mode.add_argument("--evaluate", action="store_true", help="downstream evaluation table")
    add_point(e, required=False, deprecated=True)
    e.add_argument("--radius", type=float, default=0.0, help="neighbourhood radius, metres")
    _add_period(e)
    _add_state(e)
    e.add_argument("--encoder", metavar="FILE", help="encode with this encoder file, no cube")
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    e.add_argument("--raw", action="store_true", help="CSV output: raw, not standardised")
    e.add_argument("--output", "-o", help="write the result (.json or .csv)")
    e.add_argument(
        "--degree",
        type=int,
        default=None,
        help="Legendre degree of the encoder (default 20) / of the evaluation's SH features (16)",
    )
    e.add_argument("--frame", choices=("cap", "global"), default="cap", help="encoder frame")
    e.add_argument("--step", type=int, default=1, help="encoder: every STEP-th pixel trains")
    e.add_argument("--feature-period", default="1972-2009", help="evaluation features")
    e.add_argument("--target-period", default="2010-2024", help="evaluation target")
    e.add_argument("--block", type=int, default=None, help="evaluation: split block edge (pixels)")
    e.add_argument("--seed", type=int, default=0, help="evaluation: seed of the test blocks")
    e.add_argument(
        "--synthetic",
        metavar="DIR",
        help="evaluation: build the synthetic test cube in this (new) folder and evaluate it",
    )
    e.set_defaults(func=_cmd_embed)

    s = subparsers.add_parser(
        "similar",
        help="the k places most similar to a point, in one or more cubes (table, PNG map)",
    )
    s.add_argument("cubes", nargs="+", metavar="CUBE", help="cube location(s) to search")
    add_point(s, required=True, deprecated=True)
    s.add_argument("-k", type=int, default=10, help="number of places (default %(default)s)")
    s.add_argument(
        "--metric",
        choices=("cosine", "euclidean"),
        default="cosine",
        help="distance between embeddings (default %(default)s)",
    )
    s.add_argument("--radius", type=float, default=0.0, help="neighbourhood radius, metres")
    _add_period(s)
    s.add_argument(
        "--exclude", type=float, default=None, help="skip pixels this close to the query (m)"
    )
    s.add_argument(
        "--separation", type=float, default=None, help="minimum distance between places (m)"
    )
    _add_state(s)
    s.add_argument("--output", "-o", help="write the table as CSV")
    s.add_argument("--png", help="write a map of the distances as PNG")
    s.set_defaults(func=_cmd_similar)


# --------------------------------------------------------------------------------------


def _cube_crs(args: argparse.Namespace) -> Any:
    """What ``--xy`` is in without ``--crs``: a callable giving the first cube's CRS, or
    None when there is no cube (``--encoder`` alone)."""
    if not args.cubes:
        return None

    def crs() -> Any:
        from ..cube import as_collection, resolve_cube

        first = args.cubes[0]
        coll = as_collection(first)
        return (coll.grid if coll is not None else resolve_cube(first).grid).crs

    return crs


def _emit(text: str, output: str | None, what: str = "") -> None:
    """``text`` to the ``--output`` file (confirmed on stdout), else to standard output."""
    if output:
        with open(output, "w", newline="", encoding="utf-8") as f:
            f.write(text)
        wrote(output, what)
    else:
        print(text, end="")


def _write_result(result: Any, output: str | None) -> bool:
    """A point's result to ``--output``: CSV for a ``.csv`` name, else JSON. True for CSV."""
    if output and output.lower().endswith(".csv"):
        _emit(result.to_csv(), output, "CSV")
        return True
    if output:
        _emit(json.dumps(result.to_dict(), indent=1), output, "JSON")
    return False


def _print_result(result: Any, as_json: bool) -> None:
    print(json.dumps(result.to_dict(), indent=1) if as_json else result.format())


def _cmd_embed(args: argparse.Namespace) -> int:
    from ..embed import Period

    per = Period.parse(args.period, _epoch_years(args.epoch_years))
    point = point_of(args, _cube_crs(args))
    if args.synthetic and not args.evaluate:
        raise QueryError("--synthetic goes with --evaluate")
    pinned = args.snapshot is not None or args.tag is not None
    if pinned and (args.store or args.encoder or not args.cubes):
        given = "--snapshot" if args.snapshot is not None else "--tag"
        raise QueryError(
            f"{given} reads a cube as it was: it goes with a CUBE to read, not with --store "
            "(which writes at the branch tip) nor --encoder alone"
        )
    if args.encoder:
        return _encode(args, point)
    if not args.cubes and not args.synthetic:
        raise QueryError("give a CUBE (or --encoder FILE)")
    if len(args.cubes) > 1 and not (args.fit_encoder or args.evaluate):
        raise QueryError(
            f"one CUBE expected here, got {len(args.cubes)} (several cubes: --fit-encoder, "
            "--evaluate, or `updm similar`)"
        )
    cubes = _cubes(args)
    if args.store:
        from ..embed import store_embedding

        with progress("storing the embedding"):
            snap = store_embedding(cubes[0], per)
        print(f"stored embedding {per} in {args.cubes[0]}: snapshot {snap}")
        return 0
    if args.fit_encoder:
        from ..embed import fit_encoder

        with progress("fitting the encoder"):
            enc = fit_encoder(
                cubes,
                per,
                radius=args.radius,
                step=args.step,
                degree=20 if args.degree is None else args.degree,
                frame=args.frame,
            )
        print(enc.format())
        wrote(enc.save(args.fit_encoder), "location encoder")
        return 0
    if args.evaluate:
        return _evaluate(args, cubes)
    if args.points:
        from ..embed.points import place_table, read_places

        places = read_places(args.points)
        table = place_table(cubes[0], places, radius=args.radius, period=per, raw=args.raw)
        _emit(table, args.output, f"{len(places)} places")
        return 0
    if point is None:
        raise QueryError("give --lonlat/--xy, --points, --store, --fit-encoder or --evaluate")
    from ..embed import point_embedding

    a, b, crs = point
    pe = point_embedding(cubes[0], a, b, radius=args.radius, period=per, crs=crs)
    _write_result(pe, args.output)
    _print_result(pe, args.json)
    return 0


def _evaluate(args: argparse.Namespace, given: list[Any]) -> int:
    from ..embed import evaluate_embedding

    cubes: list[Any] = list(given)
    if args.synthetic:
        from ..embed.synthetic import make_synthetic_cube

        cubes.insert(0, make_synthetic_cube(args.synthetic).cube)
    for cube in cubes:
        table = evaluate_embedding(
            cube,
            feature_period=args.feature_period,
            target_period=args.target_period,
            epoch_years=_epoch_years(args.epoch_years),
            radius=args.radius,
            block_px=args.block,
            degree=16 if args.degree is None else args.degree,
            step=args.step,
            seed=args.seed,
        )
        print(table.format())
        if args.output:
            _emit(table.format(), args.output, "evaluation table")
    return 0


def _encode(args: argparse.Namespace, point: tuple[float, float, Any] | None) -> int:
    from ..embed import load_encoder

    enc = load_encoder(args.encoder)
    if args.points:
        from ..embed.points import read_places

        places = read_places(args.points)
        out = enc.encode([p.lon for p in places], [p.lat for p in places])
        _emit(out.to_csv([p.id for p in places]), args.output, f"{len(places)} places")
        return 0
    if point is None:
        raise QueryError("with --encoder give --lonlat, --xy with --crs, or --points")
    from ..geo.points import lonlat_of

    lon, lat = lonlat_of(*point)
    out = enc.encode(lon, lat)
    if not _write_result(out, args.output):  # a CSV file says it all
        _print_result(out, args.json)
    return 0


def _cmd_similar(args: argparse.Namespace) -> int:
    from ..embed import similar_places

    a, b, crs = point_of(args, _cube_crs(args))
    res = similar_places(
        a,
        b,
        _cubes(args),
        crs=crs,
        k=args.k,
        metric=args.metric,
        radius=args.radius,
        period=args.period,
        epoch_years=_epoch_years(args.epoch_years),
        exclude_m=args.exclude,
        min_separation_m=args.separation,
    )
    print(res.format())
    if args.output:
        _emit(res.to_csv(), args.output, f"{len(res.table)} places")
    if args.png:
        wrote(res.plot(args.png), "map of the distances")
    return 0
