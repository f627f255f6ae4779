"""``updm query ...`` and ``updm export ...``: thin argument handling over the query API.

Usage::

    updm query point CUBE (--lonlat LON LAT | --xy X Y [--crs CRS]) [--yearly]
                          [--start S] [--end E] [--vars V,...] [--format table|csv|json]
                          [-o FILE] [--plot PNG] [--snapshot ID | --tag NAME]
    updm query area CUBE [--bbox MINX MINY MAXX MAXY | --geojson FILE
                          | (--lonlat LON LAT | --xy X Y) [--radius M]] [--crs CRS]
                         [--start S] [--end E] [--format ...] [-o FILE] [--plot PNG]
                         [--observed-only | --fill-window N]
    updm query trend CUBE [area] [--start S] [--end E] [--min-years N] [--alpha A]
                          [--format table|json] [-o FILE]
    updm query change CUBE --from Y1 Y2 --to Y3 Y4 [area] [--observed-only | --fill-window N]
                           [--format ...] [-o FILE]
    updm query first-change CUBE [area] [--persistence N] [--observed-only | --fill-window N]
                                 [--start S] [--end E] [...]
    updm query compare CUBE (--scenes REF OTHER | --sensors REF OTHER [--max-days D])
                            [area] [--aggregate K] [--format table|json] [-o FILE]
    updm query fit-rules CUBE --samples FILE.geojson [--template TM] [--scene ID ...]
                              [--start S] [--end E] [--crs CRS] -o RULES.toml
    updm query accuracy CUBE --samples FILE.geojson [--year Y] [area]
    updm export map CUBE --layer {land_cover,trend,first_change,mviupd_median,clear_count}
                         [--year Y] [area] [--start S] [--end E] OUT.tif|OUT.png
    updm export zarr CUBE OUT [--snapshot ID | --tag NAME] [--overwrite] [--zarr-format 2|3]
    updm export netcdf CUBE OUT.nc [--snapshot ID | --tag NAME] [--overwrite]
    updm export stac CUBE OUT.json [--snapshot ID | --tag NAME] [--id ID]

A ``.tif`` map is a Cloud-Optimised GeoTIFF with its STAC Item beside it (``.json``):
land_cover with the class colour table, trend with two bands (slope per year, p_value),
first_change with the year (0 = none), clear_count with 65535 where no scene covered;
a ``.png`` is a picture (land_cover and trend layers).

``area``, ``change`` and ``first-change`` read the complete annual maps (years without a
clear observation filled from the neighbouring years, within ``--fill-window`` years);
``--observed-only`` reads the per-year layers as stored.

Every command reads the branch tip unless ``--snapshot``/``--tag`` name an older commit.
Tables print as text by default; ``--format csv|json`` prints CSV/JSON, and ``-o FILE``
writes the file instead (its suffix picks the format when ``--format`` is not given).
Whatever a command writes is confirmed on stdout: ``wrote PATH (SIZE; WHAT)``. Computations
that take a while draw a progress bar on stderr (``-q`` hides it).

A point is ``--lonlat LON LAT`` (WGS 84 degrees) or ``--xy X Y`` in the cube's CRS (or in
``--crs``), the same in ``updm embed`` and ``updm similar``. ``--plot`` of ``query point``
draws the pixel's whole scene series with its per-year median, also with ``--yearly``.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import QueryError
from ._output import progress, wrote
from ._points import add_point

__all__ = ["register"]

_MAP_LAYERS = ("land_cover", "trend", "first_change", "mviupd_median", "clear_count")


# --------------------------------------------------------------------------------------
# Shared options
# --------------------------------------------------------------------------------------


def _add_cube(p: argparse.ArgumentParser) -> None:
    p.add_argument("cube", help="cube location (path or s3://bucket/prefix)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--snapshot", help="read the cube at this commit (snapshot id)")
    g.add_argument("--tag", help="read the cube at this tag")


def _add_area(p: argparse.ArgumentParser) -> None:
    # The area is a box, a polygon, or a point (the one point syntax of every command,
    # see _points) with an optional radius around it.
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--bbox",
        nargs=4,
        type=float,
        metavar=("MINX", "MINY", "MAXX", "MAXY"),
        help="bounding box (lon/lat unless --crs)",
    )
    g.add_argument("--geojson", help="GeoJSON file of the area (Polygon/MultiPolygon)")
    g.add_argument(
        "--lonlat",
        nargs=2,
        type=float,
        metavar=("LON", "LAT"),
        help="the pixel at this point (longitude, latitude in WGS 84 degrees; west and "
        "south negative), or the pixels within --radius of it",
    )
    g.add_argument(
        "--xy",
        nargs=2,
        type=float,
        metavar=("X", "Y"),
        help="as --lonlat, with the point in the cube's CRS (or in --crs)",
    )
    p.add_argument(
        "--radius",
        type=float,
        metavar="METRES",
        help="with --lonlat/--xy: the pixels whose centre lies within this many metres",
    )
    p.add_argument("--crs", help="CRS of --bbox/--geojson/--xy coordinates (e.g. EPSG:32637)")


def _add_time(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start", help="first year or date (inclusive)")
    p.add_argument("--end", help="last year or date (inclusive)")


def _add_output(p: argparse.ArgumentParser, formats: tuple[str, ...] = ("table", "csv", "json")):
    p.add_argument("--format", choices=formats, help="output format (default: table)")
    p.add_argument("-o", "--output", help="write to this file (suffix picks csv/json)")


def _add_maps(p: argparse.ArgumentParser) -> None:
    from ..science.gapfill import DEFAULT_WINDOW

    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--observed-only",
        action="store_true",
        help="count the observed pixels of each year only, not the complete (gap-filled) maps",
    )
    g.add_argument(
        "--fill-window",
        type=int,
        metavar="N",
        help="years on each side that may fill a year without a clear observation "
        f"(default {DEFAULT_WINDOW})",
    )


def _where(args: argparse.Namespace) -> dict[str, Any]:
    """The selection options given, as fields of :class:`updm_dask.query.Selection`, and
    the choice of maps (``observed_only``, ``window``) where the command has it."""
    names = ("bbox", "geojson", "crs", "radius", "start", "end", "snapshot", "tag")
    where = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    if getattr(args, "observed_only", False):
        where["observed_only"] = True
    if getattr(args, "fill_window", None) is not None:
        where["window"] = args.fill_window
    if getattr(args, "lonlat", None):
        if getattr(args, "crs", None) is not None:
            raise QueryError(
                "--crs: it is the CRS of --bbox, --geojson or --xy; --lonlat is always WGS 84 "
                "degrees"
            )
        where.update(lon=args.lonlat[0], lat=args.lonlat[1])
    if getattr(args, "xy", None):
        where.update(x=args.xy[0], y=args.xy[1])
    return where


def _show(args: argparse.Namespace, answer) -> None:
    from ..query.answers import output_format

    fmt = output_format(args.format, args.output)
    if args.output:
        wrote(answer.save(args.output, fmt), fmt.upper())
    else:
        print(answer.render(fmt))


# --------------------------------------------------------------------------------------
# updm query ...
# --------------------------------------------------------------------------------------


def _cmd_point(args: argparse.Namespace) -> int:
    from ..query.answers import point_answer

    where = _where(args)
    answer = point_answer(
        args.cube,
        yearly=args.yearly,
        variables=args.vars,
        picture=bool(args.plot),
        **where,
    )
    _show(args, answer)
    if args.plot:
        wrote(answer.draw(args.plot), "picture of the scene series")
    return 0


def _cmd_area(args: argparse.Namespace) -> int:
    from ..query.answers import area_answer

    with progress("area statistics"):
        answer = area_answer(args.cube, **_where(args))
    _show(args, answer)
    if args.plot:
        wrote(answer.draw(args.plot), "picture of the class shares")
    return 0


def _cmd_trend(args: argparse.Namespace) -> int:
    from ..query.answers import trend_answer

    with progress("trends"):
        answer = trend_answer(args.cube, min_years=args.min_years, alpha=args.alpha, **_where(args))
    _show(args, answer)
    return 0


def _cmd_change(args: argparse.Namespace) -> int:
    from ..query.answers import change_answer

    with progress("transitions"):
        answer = change_answer(args.cube, args.epoch_from, args.epoch_to, **_where(args))
    _show(args, answer)
    return 0


def _cmd_first_change(args: argparse.Namespace) -> int:
    from ..query.answers import first_change_answer

    with progress("first change"):
        answer = first_change_answer(args.cube, persistence=args.persistence, **_where(args))
    _show(args, answer)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from ..query.answers import compare_answer

    with progress("comparison"):
        answer = compare_answer(
            args.cube,
            scenes=args.scenes,
            sensors=args.sensors,
            max_days=args.max_days,
            aggregate=args.aggregate,
            **_where(args),
        )
    _show(args, answer)
    return 0


def _cmd_fit_rules(args: argparse.Namespace) -> int:
    from ..query.rules_fit import fit_rules, sample_pixels

    samples = sample_pixels(args.cube, args.samples, scenes=args.scene, **_where(args))
    fit = fit_rules(samples, args.template, name=args.name, holdout=args.holdout)
    print(fit.format())
    path = fit.save(args.output)
    wrote(path, f"rule table; use it as [science] rules = {str(path)!r} in a job spec")
    return 0


def _cmd_accuracy(args: argparse.Namespace) -> int:
    from ..query.accuracy import accuracy_assessment, format_accuracy

    with progress("accuracy"):
        results = accuracy_assessment(args.cube, args.samples, year=args.year, **_where(args))
    print(format_accuracy(results))
    return 0


# --------------------------------------------------------------------------------------
# updm export ...
# --------------------------------------------------------------------------------------


def _pinned(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """:func:`_where` with the commit read pinned to one snapshot id, so that the
    confirmation names the snapshot the export was made from (the branch tip may move);
    and that state, as the confirmation says it.

    A tiled collection is read at its tag, or with every tile at the snapshot it has when
    the export starts (the query pins them itself).
    """
    from ..cube import collection_exists, resolve_cube

    where = _where(args)
    if collection_exists(args.cube):
        tag = where.get("tag")
        return where, f"tag {tag}" if tag else "every tile at its newest snapshot"
    cube = resolve_cube(args.cube, snapshot=where.pop("snapshot", None), tag=where.pop("tag", None))
    where["snapshot"] = cube.snapshot_id
    return where, f"snapshot {cube.snapshot_id}"


def _cmd_export_map(args: argparse.Namespace) -> int:
    from ..query.export import export_map

    where, state = _pinned(args)
    with progress(f"map of {args.layer}"):
        path = export_map(
            args.cube,
            args.layer,
            args.output,
            year=args.year,
            persistence=args.persistence,
            **where,
        )
    layer = f"layer {args.layer}" + (f" of {args.year}" if args.year is not None else "")
    wrote(path, layer, state)
    return 0


def _cmd_export_zarr(args: argparse.Namespace) -> int:
    from ..query.export import export_zarr

    where, state = _pinned(args)
    with progress("Zarr copy"):
        path = export_zarr(
            args.cube,
            args.output,
            overwrite=args.overwrite,
            zarr_format=args.zarr_format,
            **where,
        )
    wrote(path, f"Zarr v{args.zarr_format} store", state)
    return 0


def _cmd_export_stac(args: argparse.Namespace) -> int:
    from ..query.stac import export_stac

    where, state = _pinned(args)
    path = export_stac(args.cube, args.output, collection_id=args.id, **where)
    wrote(path, "STAC Collection", state)
    return 0


def _cmd_export_netcdf(args: argparse.Namespace) -> int:
    from ..query.export import export_netcdf

    where, state = _pinned(args)
    with progress("netCDF"):
        path = export_netcdf(args.cube, args.output, overwrite=args.overwrite, **where)
    wrote(path, "CF netCDF-4 file", state)
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
    add_point(p, required=True)
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
    _add_maps(p)
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
        "--from",
        dest="epoch_from",
        nargs=2,
        type=int,
        required=True,
        metavar=("FIRST", "LAST"),
        help="first epoch: its first and last year",
    )
    p.add_argument(
        "--to",
        dest="epoch_to",
        nargs=2,
        type=int,
        required=True,
        metavar=("FIRST", "LAST"),
        help="second epoch: its first and last year",
    )
    _add_area(p)
    _add_maps(p)
    _add_output(p)
    p.set_defaults(func=_cmd_change)

    p = qsub.add_parser("first-change", help="when persistent class changes happened, and which")
    _add_cube(p)
    _add_area(p)
    _add_time(p)
    p.add_argument("--persistence", type=int, default=3, help="counted years (default 3)")
    _add_maps(p)
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
    p.add_argument(
        "--holdout",
        type=float,
        default=0.25,
        help="share of each class's labelled features kept out of the fit to check it "
        "(default 0.25; 0 fits on all)",
    )
    p.add_argument("-o", "--output", required=True, help="rule table TOML to write")
    p.set_defaults(func=_cmd_fit_rules)

    p = qsub.add_parser(
        "accuracy",
        help="accuracy and area estimates of the yearly maps from dated labels (Olofsson 2014)",
    )
    _add_cube(p)
    p.add_argument(
        "--samples",
        required=True,
        help="GeoJSON labels: a 'class' and a 'year' or 'date' property per feature",
    )
    p.add_argument("--year", type=int, help="assess this year only (and date undated labels)")
    _add_area(p)
    p.set_defaults(func=_cmd_accuracy)

    export = subparsers.add_parser("export", help="maps as COG/PNG, CF Zarr and netCDF copies")
    esub = export.add_subparsers(dest="export_command", required=True)

    p = esub.add_parser("map", help="a map as Cloud-Optimised GeoTIFF (.tif) or picture (.png)")
    _add_cube(p)
    p.add_argument(
        "--layer",
        choices=_MAP_LAYERS,
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

    p = esub.add_parser("zarr", help="copy a cube snapshot into a plain CF Zarr store")
    _add_cube(p)
    p.add_argument("output", help="new directory")
    p.add_argument("--overwrite", action="store_true", help="replace an existing directory")
    p.add_argument(
        "--zarr-format",
        type=int,
        choices=(2, 3),
        default=2,
        help="Zarr format (default 2: GDAL 3.12 and netCDF-C read it, scene ids included)",
    )
    p.set_defaults(func=_cmd_export_zarr)

    p = esub.add_parser("netcdf", help="write a cube snapshot as a CF netCDF-4 file")
    _add_cube(p)
    p.add_argument("output", help="new .nc file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.set_defaults(func=_cmd_export_netcdf)

    p = esub.add_parser(
        "stac", help="describe a cube snapshot as a STAC Collection (datacube extension)"
    )
    _add_cube(p)
    p.add_argument("output", help="Collection JSON file")
    p.add_argument("--id", help="Collection id (default: the cube's folder name)")
    p.set_defaults(func=_cmd_export_stac)
