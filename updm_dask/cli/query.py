"""``updm query ...`` and ``updm export ...``: thin argument handling over the query API.

Usage::

    updm query point CUBE (--lonlat LON LAT | --xy X Y [--crs CRS]) [--yearly]
                          [--start S] [--end E] [--vars V,...] [--format table|csv|json]
                          [-o FILE] [--plot PNG] [--snapshot ID | --tag NAME]
    updm query area CUBE [--bbox MINX MINY MAXX MAXY | --geojson FILE] [--crs CRS]
                         [--start S] [--end E] [--format ...] [-o FILE] [--plot PNG]
    updm query trend CUBE [area] [--start S] [--end E] [--min-years N] [--alpha A]
                          [--format table|json] [-o FILE]
    updm query change CUBE --from Y1 Y2 --to Y3 Y4 [area] [--format ...] [-o FILE]
    updm query first-change CUBE [area] [--persistence N] [--start S] [--end E] [...]
    updm query compare CUBE (--scenes REF OTHER | --sensors REF OTHER [--max-days D])
                            [area] [--aggregate K] [--format table|json] [-o FILE]
    updm query fit-rules CUBE --samples FILE.geojson [--template TM] [--scene ID ...]
                              [--start S] [--end E] [--crs CRS] -o RULES.toml
    updm export map CUBE --layer {land_cover,trend,first_change,mviupd_median,clear_count}
                         [--year Y] [area] [--start S] [--end E] OUT.tif|OUT.png
    updm export zarr CUBE OUT [--snapshot ID | --tag NAME] [--overwrite]

A ``.tif`` map is a Cloud-Optimised GeoTIFF: land_cover with the class colour table,
trend with two bands (slope per year, p_value), first_change with the year (0 = none);
a ``.png`` is a picture (land_cover and trend layers).

Every command reads the branch tip unless ``--snapshot``/``--tag`` name an older commit.
Tables print as text by default; ``--format csv|json`` prints CSV/JSON, and ``-o FILE``
writes the file instead (its suffix picks the format when ``--format`` is not given).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import QueryError

__all__ = ["register"]


# --------------------------------------------------------------------------------------
# Shared options
# --------------------------------------------------------------------------------------


def _add_cube(p: argparse.ArgumentParser) -> None:
    p.add_argument("cube", help="cube location (path or s3://bucket/prefix)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--snapshot", help="read the cube at this commit (snapshot id)")
    g.add_argument("--tag", help="read the cube at this tag")


def _add_area(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--bbox",
        nargs=4,
        type=float,
        metavar=("MINX", "MINY", "MAXX", "MAXY"),
        help="bounding box (lon/lat unless --crs)",
    )
    g.add_argument("--geojson", help="GeoJSON file of the area (Polygon/MultiPolygon)")
    p.add_argument("--crs", help="CRS of --bbox/--geojson/--xy coordinates (e.g. EPSG:32637)")


def _add_time(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start", help="first year or date (inclusive)")
    p.add_argument("--end", help="last year or date (inclusive)")


def _add_output(p: argparse.ArgumentParser, formats: tuple[str, ...] = ("table", "csv", "json")):
    p.add_argument("--format", choices=formats, help="output format (default: table)")
    p.add_argument("-o", "--output", help="write to this file (suffix picks csv/json)")


def _at(args: argparse.Namespace) -> dict[str, Any]:
    return {"snapshot": args.snapshot, "tag": args.tag}


def _area(args: argparse.Namespace) -> dict[str, Any]:
    return {"bbox": args.bbox, "geojson": args.geojson, "crs": args.crs}


def _time(args: argparse.Namespace) -> dict[str, Any]:
    return {"start": args.start, "end": args.end}


def _format_of(args: argparse.Namespace) -> str:
    if args.format:
        return args.format
    if args.output:
        suffix = Path(args.output).suffix.lower().lstrip(".")
        if suffix in ("csv", "json"):
            return suffix
        raise QueryError(
            f"--output {args.output!r}: cannot tell the format from the suffix; "
            "use .csv or .json, or give --format"
        )
    return "table"


def _emit_table(args: argparse.Namespace, table: pd.DataFrame, title: str = "") -> None:
    from ..query.export import table_text, write_table

    fmt = _format_of(args)
    if args.output:
        if fmt == "table":
            raise QueryError("--output needs --format csv or json")
        path = write_table(table, args.output, format=fmt)
        print(f"wrote {path}")
        return
    if fmt == "csv":
        table.to_csv(sys.stdout, index=False)
    elif fmt == "json":
        from ..query.export import _json_default, _records

        doc = {"metadata": dict(table.attrs), "rows": _records(table)}
        print(json.dumps(doc, indent=1, default=_json_default))
    else:
        if title:
            print(title)
        print(table_text(table))


def _emit_json(args: argparse.Namespace, doc: dict[str, Any], text: str) -> None:
    from ..query.export import _json_default

    fmt = _format_of(args)
    if fmt == "csv":
        raise QueryError("this answer is not a table; use --format table or json")
    body = json.dumps(doc, indent=1, default=_json_default)
    if args.output:
        Path(args.output).write_text(body + "\n", encoding="utf-8")
        print(f"wrote {args.output}")
    elif fmt == "json":
        print(body)
    else:
        print(text)


# --------------------------------------------------------------------------------------
# updm query ...
# --------------------------------------------------------------------------------------


def _point(args: argparse.Namespace) -> dict[str, Any]:
    if args.lonlat:
        return {"lon": args.lonlat[0], "lat": args.lonlat[1]}
    return {"x": args.xy[0], "y": args.xy[1], "crs": args.crs}


def _cmd_point(args: argparse.Namespace) -> int:
    from ..query.series import scene_series, yearly_series

    kw = {**_point(args), **_time(args), **_at(args), "variables": args.vars}
    if args.plot and (args.yearly or args.vars):
        raise QueryError("--plot draws the full scene series; drop --yearly and --vars")
    if args.yearly:
        table = yearly_series(args.cube, **kw)
    else:
        table = scene_series(args.cube, **kw)
    pt = table.attrs["point"]
    title = (
        f"pixel row {pt['row']}, col {pt['col']} (centre {pt['x']:.1f}, {pt['y']:.1f} in "
        f"{pt['crs']}; {pt['lat']:.6f} N, {pt['lon']:.6f} E), snapshot {table.attrs['snapshot']}"
    )
    _emit_table(args, table, title)
    if args.plot:
        from ..query.plots import plot_point_series

        if args.yearly or args.vars:
            raise QueryError("--plot draws the full scene series; drop --yearly and --vars")
        same = {**kw, "variables": None, "snapshot": table.attrs["snapshot"], "tag": None}
        try:
            yearly = yearly_series(args.cube, **same)
        except QueryError:
            yearly = None  # a cube without per-year layers still gets its scene plot
        print(f"wrote {plot_point_series(table, args.plot, yearly=yearly)}")
    return 0


def _cmd_area(args: argparse.Namespace) -> int:
    from ..query.area import area_statistics

    table = area_statistics(args.cube, **_area(args), **_time(args), **_at(args))
    a = table.attrs["area"]
    title = (
        f"{a['description']}: {a['n_pixels']} pixels, {a['area_ha']:.2f} ha, "
        f"snapshot {table.attrs['snapshot']}"
    )
    _emit_table(args, table, title)
    if args.plot:
        from ..query.plots import plot_class_fractions

        print(f"wrote {plot_class_fractions(table, args.plot)}")
    return 0


def _cmd_trend(args: argparse.Namespace) -> int:
    from ..query.trends import trend_summary

    s = trend_summary(
        args.cube,
        **_area(args),
        **_time(args),
        **_at(args),
        min_years=args.min_years,
        alpha=args.alpha,
    )
    ser = s["area_series"]
    text = "\n".join(
        [
            f"MVIUPD trends {s['first_year']}-{s['last_year']} over {s['area']['description']} "
            f"({s['n_pixels']} pixels), snapshot {s['snapshot']}",
            f"pixels with a trend (>= {args.min_years} observed years): {s['n_with_trend']}",
            f"significant increase (p < {s['alpha']:g}): {100 * s['share_increasing']:.1f} %",
            f"significant decrease (p < {s['alpha']:g}): {100 * s['share_decreasing']:.1f} %",
            f"median pixel slope: {s['median_slope']:+.5f} per year",
            f"area median series: slope {ser['slope']:+.5f} per year, tau {ser['tau']:+.3f}, "
            f"p {ser['p_value']:.4f}, {int(ser['n_years'])} years",
        ]
    )
    _emit_json(args, s, text)
    return 0


def _cmd_change(args: argparse.Namespace) -> int:
    from ..query.change import transition_matrix

    t = transition_matrix(
        args.cube, tuple(args.epoch_from), tuple(args.epoch_to), **_area(args), **_at(args)
    )
    fmt = _format_of(args)
    if fmt == "table" and not args.output:
        print(t.format())
    else:
        _emit_table(args, t.to_long())
    return 0


def _cmd_first_change(args: argparse.Namespace) -> int:
    from ..query.change import change_table, first_change

    changes = first_change(
        args.cube, persistence=args.persistence, **_area(args), **_time(args), **_at(args)
    )
    table = change_table(changes)
    title = (
        f"first persistent changes ({args.persistence} observed years) "
        f"{changes.attrs['first_year']}-{changes.attrs['last_year']} over {changes.attrs['area']}"
    )
    _emit_table(args, table, title)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from ..query.compare import compare_scenes, compare_sensors

    kw = {**_area(args), **_at(args), "aggregate": args.aggregate}
    if args.scenes:
        result = compare_scenes(args.cube, args.scenes[0], args.scenes[1], **kw)
    else:
        result = compare_sensors(
            args.cube, args.sensors[0], args.sensors[1], max_days=args.max_days, **_time(args), **kw
        )
    _emit_json(args, result.to_dict(), result.format())
    return 0


def _cmd_fit_rules(args: argparse.Namespace) -> int:
    from ..query.rules_fit import fit_rules, sample_pixels

    samples = sample_pixels(
        args.cube, args.samples, scenes=args.scene, crs=args.crs, **_time(args), **_at(args)
    )
    fit = fit_rules(samples, args.template, name=args.name)
    print(fit.format())
    path = fit.save(args.output)
    print(f"wrote {path} (use it as [science] rules = {str(path)!r} in a job spec)")
    return 0


# --------------------------------------------------------------------------------------
# updm export ...
# --------------------------------------------------------------------------------------

_LAYERS = ("land_cover", "trend", "first_change", "mviupd_median", "clear_count")


def _map_layer(args: argparse.Namespace):
    from ..query.area import land_cover_map, open_yearly

    if args.layer in ("land_cover", "mviupd_median", "clear_count"):
        if args.year is None:
            raise QueryError(f"--layer {args.layer} needs --year")
        if args.layer == "land_cover":
            return land_cover_map(args.cube, args.year, **_area(args), **_at(args))
        win, sel = open_yearly(
            args.cube, start=args.year, end=args.year, **_area(args), **_at(args)
        )
        out = win[f"yearly_{args.layer}"].isel(year=0)
        fill = np.nan if out.dtype.kind == "f" else 0
        out = out.where(xr.DataArray(sel.mask, dims=("y", "x")), fill).astype(out.dtype)
        return out.rio.write_crs(sel.grid.crs_wkt).rio.write_nodata(fill, encoded=False)
    if args.year is not None:
        raise QueryError(f"--layer {args.layer} covers a range of years: use --start/--end")
    if args.layer == "trend":
        from ..query.trends import mviupd_trend

        return mviupd_trend(args.cube, **_area(args), **_time(args), **_at(args))
    from ..query.change import first_change

    return first_change(
        args.cube, persistence=args.persistence, **_area(args), **_time(args), **_at(args)
    )


def _cmd_export_map(args: argparse.Namespace) -> int:
    from ..query.export import class_colormap, write_cog

    out = Path(args.output)
    suffix = out.suffix.lower()
    if suffix not in (".tif", ".tiff", ".png"):
        raise QueryError(f"{args.output!r}: expected a .tif (COG) or .png file")
    layer = _map_layer(args)
    if suffix == ".png":
        from ..query import plots

        if args.layer == "land_cover":
            plots.plot_land_cover_map(layer, out)
        elif args.layer == "trend":
            plots.plot_trend_map(layer, out)
        else:
            raise QueryError(f"no picture for --layer {args.layer}; write a .tif instead")
    elif args.layer == "land_cover":
        write_cog(layer, out, nodata=0, colormap=class_colormap())
    elif args.layer == "trend":
        write_cog(layer[["slope", "p_value"]].to_dataarray("band"), out)
    elif args.layer == "first_change":
        write_cog(layer["first_change_year"], out, nodata=0)
    else:
        write_cog(layer, out)
    print(f"wrote {out}")
    return 0


def _cmd_export_zarr(args: argparse.Namespace) -> int:
    from ..query.export import export_zarr

    path = export_zarr(args.cube, args.output, overwrite=args.overwrite, **_at(args))
    print(f"wrote {path}")
    return 0


# --------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``query`` and ``export`` (with their sub-commands) to the ``updm`` parser."""
    query = subparsers.add_parser(
        "query", help="series, area statistics, trends, change, comparisons, rule fitting"
    )
    qsub = query.add_subparsers(dest="query_command", required=True)

    p = qsub.add_parser("point", help="a pixel's series: every scene, or per year (--yearly)")
    _add_cube(p)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--lonlat", nargs=2, type=float, metavar=("LON", "LAT"))
    where.add_argument("--xy", nargs=2, type=float, metavar=("X", "Y"), help="cube CRS or --crs")
    p.add_argument("--crs", help="CRS of --xy (default: the cube's)")
    p.add_argument("--yearly", action="store_true", help="the per-year series instead")
    p.add_argument("--vars", help="comma-separated variables (default all)")
    _add_time(p)
    _add_output(p)
    p.add_argument("--plot", help="also draw the MVIUPD series into this PNG")
    p.set_defaults(func=_cmd_point)

    p = qsub.add_parser("area", help="per-year class shares, hectares, coverage, median MVIUPD")
    _add_cube(p)
    _add_area(p)
    _add_time(p)
    _add_output(p)
    p.add_argument("--plot", help="also draw the class shares into this PNG")
    p.set_defaults(func=_cmd_area)

    p = qsub.add_parser("trend", help="Theil-Sen / Mann-Kendall MVIUPD trends over an area")
    _add_cube(p)
    _add_area(p)
    _add_time(p)
    p.add_argument("--min-years", type=int, default=4, help="fewest observed years (default 4)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    _add_output(p, ("table", "json"))
    p.set_defaults(func=_cmd_trend)

    p = qsub.add_parser("change", help="transition matrix (hectares) between two epochs")
    _add_cube(p)
    p.add_argument(
        "--from", dest="epoch_from", nargs=2, type=int, required=True, metavar=("FIRST", "LAST")
    )
    p.add_argument(
        "--to", dest="epoch_to", nargs=2, type=int, required=True, metavar=("FIRST", "LAST")
    )
    _add_area(p)
    _add_output(p)
    p.set_defaults(func=_cmd_change)

    p = qsub.add_parser("first-change", help="when persistent class changes happened, and which")
    _add_cube(p)
    _add_area(p)
    _add_time(p)
    p.add_argument("--persistence", type=int, default=3, help="observed years (default 3)")
    _add_output(p)
    p.set_defaults(func=_cmd_first_change)

    p = qsub.add_parser("compare", help="cross-sensor agreement and coefficient conversion")
    _add_cube(p)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--scenes", nargs=2, metavar=("REF", "OTHER"), help="two scene ids")
    what.add_argument("--sensors", nargs=2, metavar=("REF", "OTHER"), help="e.g. TM MSS")
    p.add_argument("--max-days", type=float, default=16.0, help="pairing window (default 16)")
    p.add_argument("--aggregate", type=int, help="aggregation factor (default from sensors)")
    _add_area(p)
    _add_time(p)
    _add_output(p, ("table", "json"))
    p.set_defaults(func=_cmd_compare)

    p = qsub.add_parser("fit-rules", help="fit rule-table thresholds to labelled samples")
    _add_cube(p)
    p.add_argument("--samples", required=True, help="GeoJSON points/polygons with a 'class'")
    p.add_argument("--template", default="TM", help="rule table to refit (default TM)")
    p.add_argument("--name", help="name of the fitted table")
    p.add_argument("--scene", action="append", help="scene id to sample (repeatable)")
    p.add_argument("--crs", help="CRS of the sample coordinates (default lon/lat)")
    _add_time(p)
    p.add_argument("-o", "--output", required=True, help="rule table TOML to write")
    p.set_defaults(func=_cmd_fit_rules)

    export = subparsers.add_parser("export", help="maps as COG/PNG, a plain Zarr v3 copy")
    esub = export.add_subparsers(dest="export_command", required=True)

    p = esub.add_parser("map", help="a map as Cloud-Optimised GeoTIFF (.tif) or picture (.png)")
    _add_cube(p)
    p.add_argument(
        "--layer",
        choices=_LAYERS,
        required=True,
        help="land_cover (with a colour table), mviupd_median, clear_count: one year; "
        "trend: bands slope (per year) and p_value; first_change: first-change year",
    )
    p.add_argument("--year", type=int, help="year of a per-year layer")
    p.add_argument("--persistence", type=int, default=3, help="for first_change (default 3)")
    _add_area(p)
    _add_time(p)
    p.add_argument("output", help="OUT.tif or OUT.png")
    p.set_defaults(func=_cmd_export_map)

    p = esub.add_parser("zarr", help="copy a cube snapshot into a plain Zarr v3 store")
    _add_cube(p)
    p.add_argument("output", help="new directory")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_export_zarr)
