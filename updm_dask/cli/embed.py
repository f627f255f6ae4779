"""``updm embed ...`` and ``updm similar ...``: thin argument handling, no numerics.

Usage::

    updm embed CUBE --lon X --lat Y [--radius M] [--period 1975-2024] [--json] [--output F]
    updm embed CUBE --points points.csv [--radius M] [--raw] [--output out.csv]
    updm embed CUBE --store [--period 1972-2024]
    updm embed CUBE [CUBE ...] --fit-encoder encoder.npz [--degree 20] [--frame cap] [--step 2]
    updm embed --encoder encoder.npz (--lon X --lat Y | --points points.csv) [--output F]
    updm embed CUBE --evaluate [--feature-period 1972-2009] [--target-period 2010-2024]
    updm similar CUBE [CUBE ...] --lon X --lat Y [-k 10] [--metric cosine] [--radius M]
                 [--exclude M] [--separation M] [--output table.csv] [--png map.png]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

from ..errors import QueryError

__all__ = ["register"]

_LON_NAMES = ("lon", "longitude", "lng", "x")
_LAT_NAMES = ("lat", "latitude", "y")


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
    e.add_argument("--lon", type=float, help="longitude (WGS84 degrees)")
    e.add_argument("--lat", type=float, help="latitude (WGS84 degrees)")
    e.add_argument("--radius", type=float, default=0.0, help="neighbourhood radius, metres")
    _add_period(e)
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
    e.set_defaults(func=_cmd_embed)

    s = subparsers.add_parser(
        "similar",
        help="the k places most similar to a point, in one or more cubes (table, PNG map)",
    )
    s.add_argument("cubes", nargs="+", metavar="CUBE", help="cube location(s) to search")
    s.add_argument("--lon", type=float, required=True, help="longitude (WGS84 degrees)")
    s.add_argument("--lat", type=float, required=True, help="latitude (WGS84 degrees)")
    s.add_argument("-k", type=int, default=10, help="number of places (default %(default)s)")
    s.add_argument("--metric", choices=("cosine", "euclidean"), default="cosine")
    s.add_argument("--radius", type=float, default=0.0, help="neighbourhood radius, metres")
    _add_period(s)
    s.add_argument(
        "--exclude", type=float, default=None, help="skip pixels this close to the query (m)"
    )
    s.add_argument(
        "--separation", type=float, default=None, help="minimum distance between places (m)"
    )
    s.add_argument("--output", "-o", help="write the table as CSV")
    s.add_argument("--png", help="write a map of the distances as PNG")
    s.set_defaults(func=_cmd_similar)


# --------------------------------------------------------------------------------------


def _need_point(args: argparse.Namespace) -> bool:
    if (args.lon is None) != (args.lat is None):
        raise QueryError("give both --lon and --lat")
    return args.lon is not None


def read_points(path: str | Path) -> list[dict[str, Any]]:
    """Points of a CSV: ``lon``/``lat`` columns (or longitude/latitude), optional ``id``
    (or name) and ``radius`` (metres)."""
    p = Path(path)
    if not p.is_file():
        raise QueryError(f"points file {str(p)!r} does not exist")
    with p.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        fields = {h.strip().lower(): h for h in (reader.fieldnames or [])}
        lon_key = next((fields[n] for n in _LON_NAMES if n in fields), None)
        lat_key = next((fields[n] for n in _LAT_NAMES if n in fields), None)
        if lon_key is None or lat_key is None:
            raise QueryError(
                f"{str(p)!r}: expected columns lon and lat (or longitude/latitude), got "
                f"{reader.fieldnames}"
            )
        id_key = fields.get("id") or fields.get("name")
        r_key = fields.get("radius") or fields.get("radius_m")
        out = []
        for i, row in enumerate(reader, start=2):
            try:
                lon, lat = float(row[lon_key]), float(row[lat_key])
                radius = float(row[r_key]) if r_key and row[r_key].strip() else None
            except (TypeError, ValueError):
                raise QueryError(
                    f"{str(p)!r} line {i}: lon/lat/radius must be numbers, got {row}"
                ) from None
            out.append(
                {
                    "id": row[id_key] if id_key else str(i - 1),
                    "lon": lon,
                    "lat": lat,
                    "radius": radius,
                }
            )
    if not out:
        raise QueryError(f"{str(p)!r} holds no points")
    return out


def _num(v: float) -> str:
    return "" if not math.isfinite(v) else f"{v:.6g}"


def _write_rows(header: list[str], rows: list[list[Any]], output: str | None) -> None:
    f = open(output, "w", newline="", encoding="utf-8") if output else sys.stdout
    try:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    finally:
        if output:
            f.close()


def _cmd_embed(args: argparse.Namespace) -> int:
    from ..embed._period import Period
    from ..embed.embedding import cube_statistics, point_embedding, store_embedding

    per = Period.parse(args.period, _epoch_years(args.epoch_years))
    has_point = _need_point(args)
    if args.encoder:
        return _encode(args, has_point)
    if not args.cubes:
        raise QueryError("give a CUBE (or --encoder FILE)")
    if len(args.cubes) > 1 and not (args.fit_encoder or args.evaluate):
        raise QueryError(
            f"one CUBE expected here, got {len(args.cubes)} (several cubes: --fit-encoder, "
            "--evaluate, or `updm similar`)"
        )
    if args.store:
        snap = store_embedding(args.cubes[0], per)
        print(f"stored embedding {per} in {args.cubes[0]}: snapshot {snap}")
        return 0
    if args.fit_encoder:
        from ..embed.encoder import fit_encoder

        enc = fit_encoder(
            args.cubes,
            per,
            radius=args.radius,
            step=args.step,
            degree=20 if args.degree is None else args.degree,
            frame=args.frame,
        )
        path = enc.save(args.fit_encoder)
        print(
            f"location encoder (degree {enc.degree}, {enc.frame} frame, {enc.weights.shape[0]}"
            f" basis functions, {enc.train_xyz.shape[0]} training points, ridge alpha "
            f"{enc.alpha:.3g}, far beyond {enc.far_threshold_m:.0f} m) written to {path}"
        )
        return 0
    if args.evaluate:
        from ..embed.evaluate import evaluate_embedding

        for cube in args.cubes:
            table = evaluate_embedding(
                cube,
                feature_period=args.feature_period,
                target_period=args.target_period,
                epoch_years=_epoch_years(args.epoch_years),
                radius=args.radius,
                degree=16 if args.degree is None else args.degree,
                step=args.step,
            )
            text = f"### {table.cube}\n\n{table.to_markdown()}\n"
            print(text)
            if args.output:
                Path(args.output).write_text(text, encoding="utf-8")
        return 0
    if args.points:
        points = read_points(args.points)
        stats = cube_statistics(args.cubes[0], per)
        header = ["id", "lon", "lat", "radius_m", "n_pixels", "clear_count", *per.dimension_names]
        rows = []
        for pt in points:
            r = pt["radius"] if pt["radius"] is not None else args.radius
            pe = point_embedding(
                args.cubes[0], pt["lon"], pt["lat"], radius=r, period=per, stats=stats
            )
            values = pe.raw if args.raw else pe.vector
            rows.append(
                [
                    pt["id"],
                    pt["lon"],
                    pt["lat"],
                    r,
                    pe.n_pixels,
                    pe.clear_count,
                    *[_num(float(v)) for v in values],
                ]
            )
        _write_rows(header, rows, args.output)
        return 0
    if not has_point:
        raise QueryError("give --lon/--lat, --points, --store, --fit-encoder or --evaluate")
    pe = point_embedding(args.cubes[0], args.lon, args.lat, radius=args.radius, period=per)
    if args.output and args.output.lower().endswith(".csv"):
        _write_rows(
            ["dimension", "raw", "standardised"],
            [
                [n, _num(float(a)), _num(float(b))]
                for n, a, b in zip(pe.names, pe.raw, pe.vector, strict=True)
            ],
            args.output,
        )
    elif args.output:
        Path(args.output).write_text(json.dumps(pe.to_dict(), indent=1), encoding="utf-8")
    print(json.dumps(pe.to_dict(), indent=1) if args.json else pe.format())
    return 0


def _encode(args: argparse.Namespace, has_point: bool) -> int:
    from ..embed.encoder import load_encoder

    enc = load_encoder(args.encoder)
    if args.points:
        pts = read_points(args.points)
        ids = [p["id"] for p in pts]
        lon = [p["lon"] for p in pts]
        lat = [p["lat"] for p in pts]
    elif has_point:
        ids, lon, lat = ["1"], [args.lon], [args.lat]
    else:
        raise QueryError("with --encoder give --lon/--lat or --points")
    out = enc.encode(lon, lat)
    if args.points or (args.output and args.output.lower().endswith(".csv")):
        header = ["id", "lon", "lat", "distance_m", "far", *enc.names]
        rows = [
            [i, a, b, f"{d:.1f}", bool(f), *[_num(float(v)) for v in vec]]
            for i, a, b, d, f, vec in zip(
                ids, lon, lat, out.distance_m, out.far, out.vectors, strict=True
            )
        ]
        _write_rows(header, rows, args.output)
        return 0
    record = {
        "lon": args.lon,
        "lat": args.lat,
        "distance_to_training_m": float(out.distance_m[0]),
        "far_from_training_data": bool(out.far[0]),
        "far_threshold_m": enc.far_threshold_m,
        "names": list(enc.names),
        "vector": [float(v) for v in out.vectors[0]],
    }
    if args.output:
        Path(args.output).write_text(json.dumps(record, indent=1), encoding="utf-8")
    if args.json:
        print(json.dumps(record, indent=1))
    else:
        far = record["far_from_training_data"]
        flag = "FAR from training data" if far else "near training data"
        print(
            f"encoded ({args.lon}, {args.lat}): {flag} (nearest training point "
            f"{record['distance_to_training_m']:.0f} m, threshold {enc.far_threshold_m:.0f} m)"
        )
        w = max(len(n) for n in enc.names)
        for n, v in zip(enc.names, out.vectors[0], strict=True):
            print(f"  {n:<{w}}  {v:>8.3f}")
    return 0


def _cmd_similar(args: argparse.Namespace) -> int:
    from ..embed.similar import similar_places

    res = similar_places(
        args.lon,
        args.lat,
        args.cubes,
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
        res.table.to_csv(args.output, index=False)
    if args.png:
        print(f"map written to {res.plot(args.png)}")
    return 0
