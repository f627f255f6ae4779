"""The ``updm`` command as one consistent tool (issue 15), run through ``main([...])`` on a
small cube south of the equator and west of Greenwich (see conftest.py).

Expected values come from the cube's planted content and from pyproj directly, never from
the code under test.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
from contextlib import contextmanager
from pathlib import Path

import dask
import pyproj
import pytest

from updm_dask.cli import main
from updm_dask.cli.app import _build_parser
from updm_dask.cube import open_cube

from .conftest import GRID, centre, make_sw_cube

TO_LONLAT = pyproj.Transformer.from_crs(GRID.crs, "EPSG:4326", always_xy=True)
PIXEL = (2, 1)  # row, col of the point asked for below
X, Y = centre(*PIXEL)
LON, LAT = TO_LONLAT.transform(X, Y)


def _hemi(value: float, neg: str, pos: str) -> str:
    return f"{abs(value):.5f}° {neg if value < 0 else pos}"


def expected_lonlat_bounds() -> tuple[str, str, str, str]:
    """West, east, south, north of the grid as text, from its corners through pyproj."""
    b = GRID.bounds
    lons, lats = TO_LONLAT.transform([b[0], b[2], b[0], b[2]], [b[1], b[1], b[3], b[3]])
    return (
        _hemi(min(lons), "W", "E"),
        _hemi(max(lons), "W", "E"),
        _hemi(min(lats), "S", "N"),
        _hemi(max(lats), "S", "N"),
    )


@contextmanager
def raise_if_dask_computes():
    def scheduler(dsk, keys, **kwargs):
        raise AssertionError("a dask computation ran before the refusal")

    with dask.config.set(scheduler=scheduler):
        yield


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------------------
# 1. one way to give a point
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_point_command_takes_lonlat_or_xy_in_the_cube_crs(sw_cube, tmp_path, capsys):
    cube = str(sw_cube)
    r, c = PIXEL
    # query point: the same pixel from lon/lat, from the cube's x/y, from x/y in --crs
    for where in (
        ["--lonlat", LON, LAT],
        ["--xy", X, Y],
        ["--xy", LON, LAT, "--crs", "EPSG:4326"],
    ):
        code, out, err = run(capsys, "query", "point", cube, *where)
        assert code == 0, err
        assert f"pixel row {r}, col {c} " in out
    # embed: the same syntax (it took --lon/--lat before)
    records = []
    for where in (["--lonlat", LON, LAT], ["--xy", X, Y]):
        code, out, err = run(capsys, "embed", cube, *where, "--json")
        assert code == 0, err
        records.append(json.loads(out))
    assert [(d["row"], d["col"]) for d in records] == [PIXEL, PIXEL]
    assert records[0]["raw"] == records[1]["raw"]
    # similar: the same syntax, the same answer either way
    tables = []
    for name, where in (("a", ["--lonlat", LON, LAT]), ("b", ["--xy", X, Y])):
        path = tmp_path / f"{name}.csv"
        code, _out, err = run(capsys, "similar", cube, *where, "-k", "3", "-o", path)
        assert code == 0, err
        tables.append(list(csv.DictReader(path.open())))
    assert tables[0] == tables[1] and len(tables[0]) == 3


def test_area_commands_take_the_same_point_with_a_radius(sw_cube, tmp_path, capsys):
    cube = str(sw_cube)
    # the pixel alone; then the pixels whose centre lies within one pixel (30 m): itself
    # and its four neighbours (PIXEL is not on the grid's edge)
    for radius, pixels in ((None, 1), (30, 5), (45, 9)):
        extra = [] if radius is None else ["--radius", radius]
        for where in (
            ["--lonlat", LON, LAT],
            ["--xy", X, Y],
            ["--xy", LON, LAT, "--crs", "EPSG:4326"],
        ):
            code, out, err = run(capsys, "query", "area", cube, *where, *extra, "--format", "json")
            assert code == 0, err
            assert json.loads(out)["metadata"]["area"]["n_pixels"] == pixels, (where, radius)
    # export map: the window around the point, the pixels outside the radius as nodata
    tif = tmp_path / "lc.tif"
    code, _, err = run(
        capsys,
        "export",
        "map",
        cube,
        "--layer",
        "land_cover",
        "--year",
        1995,
        "--lonlat",
        LON,
        LAT,
        "--radius",
        30,
        tif,
    )
    assert code == 0, err
    import rasterio

    with rasterio.open(tif) as f:
        band, nodata = f.read(1), f.nodata
    assert band.shape == (3, 3)
    assert (band != nodata).sum() == 5
    assert band[1, 1] == (3 if PIXEL[1] < 5 else 2)  # columns 0-4 are vegetation (class 3)
    # bad combinations name the option
    code, _, err = run(capsys, "query", "area", cube, "--lonlat", LON, LAT, "--crs", "EPSG:32723")
    assert code == 2 and "--crs: it is the CRS of --bbox, --geojson or --xy" in err
    code, _, err = run(capsys, "query", "area", cube, "--radius", 30)
    assert code == 2 and "radius: give it with a point" in err
    with pytest.raises(SystemExit):
        run(capsys, "query", "area", cube, "--lonlat", LON, LAT, "--bbox", -45, -21, -44, -20)


def test_former_lon_lat_spelling_still_works_hidden_and_deprecated(sw_cube, capsys):
    cube = str(sw_cube)
    code, new, _ = run(capsys, "embed", cube, "--lonlat", LON, LAT, "--json")
    assert code == 0
    code, old, err = run(capsys, "embed", cube, "--lon", LON, "--lat", LAT, "--json")
    assert code == 0 and json.loads(old) == json.loads(new)
    assert "--lon X --lat Y is deprecated; use --lonlat LON LAT" in err
    parser = _build_parser()
    for command in ("embed", "similar"):
        text = _subparser(parser, command).format_help()
        assert "--lonlat" in text and "--xy" in text
        assert "--lon " not in text and "--lat " not in text  # hidden aliases


def test_bad_points_name_the_option(sw_cube, tmp_path, capsys):
    cube = str(sw_cube)
    code, _, err = run(capsys, "embed", cube, "--lonlat", LON, LAT, "--lon", LON, "--lat", LAT)
    assert code == 2 and "--lon/--lat: give the point once, as --lonlat LON LAT" in err
    code, _, err = run(capsys, "embed", cube, "--lonlat", LON, LAT, "--crs", "EPSG:32723")
    assert code == 2 and "--crs: it is the CRS of --xy X Y" in err
    code, _, err = run(capsys, "similar", cube)
    assert code == 2 and "give the point: --lonlat LON LAT, or --xy X Y" in err
    enc = tmp_path / "enc.npz"
    assert run(capsys, "embed", cube, "--fit-encoder", enc, "--degree", "2")[0] == 0
    code, _, err = run(capsys, "embed", "--encoder", enc, "--xy", X, Y)
    assert code == 2 and "--xy: give --crs as well" in err
    code, out, err = run(capsys, "embed", "--encoder", enc, "--xy", X, Y, "--crs", GRID.crs)
    assert code == 0, err
    code, same, _ = run(capsys, "embed", "--encoder", enc, "--lonlat", LON, LAT)
    assert out == same


# --------------------------------------------------------------------------------------
# 2, 3. lon/lat bounds, hemispheres
# --------------------------------------------------------------------------------------


def test_info_gives_the_lonlat_bounds_with_hemispheres(sw_cube, capsys):
    west, east, south, north = expected_lonlat_bounds()
    code, out, _ = run(capsys, "info", sw_cube)
    assert code == 0
    assert f"lon/lat     {west} to {east}, {south} to {north}" in out
    assert "bounds (588780, 7772640, 589080, 7772880)" in out  # and the CRS bounds, in full


def test_outside_errors_give_the_lonlat_bounds(sw_cube, capsys):
    west, east, south, north = expected_lonlat_bounds()
    extent = f"lon {west}..{east}, lat {south}..{north}"
    code, _, err = run(capsys, "query", "point", sw_cube, "--lonlat", -44.15, -21.14)
    assert code == 2 and "is outside the cube grid" in err and extent in err
    code, _, err = run(capsys, "query", "area", sw_cube, "--bbox", -45, -21, -44.5, -20.5)
    assert code == 2 and "does not overlap the cube grid" in err and extent in err
    code, _, err = run(capsys, "embed", sw_cube, "--lonlat", 10, 50)
    assert code == 2 and extent in err


def test_southern_western_points_print_their_hemispheres(sw_cube, capsys):
    from updm_dask.geo.points import format_lonlat

    code, out, _ = run(capsys, "query", "point", sw_cube, "--lonlat", LON, LAT)
    assert code == 0
    assert f"{abs(LAT):.6f}° S, {abs(LON):.6f}° W" in out
    assert not re.search(r"-\d+\.\d+°? [NE]\b", out)
    assert format_lonlat(-44.15, -20.14) == "20.14000° S, 44.15000° W"
    assert format_lonlat(38.7, 9.0, 2) == "9.00° N, 38.70° E"
    assert format_lonlat(-0.5, 51.5, 1) == "51.5° N, 0.5° W"
    assert format_lonlat(151.2, -33.9, 1) == "33.9° S, 151.2° E"


# --------------------------------------------------------------------------------------
# 4, 5. help everywhere, -v/-q everywhere
# --------------------------------------------------------------------------------------


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise KeyError(name)


def _walk(parser: argparse.ArgumentParser, path: str = "updm"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _walk(child, f"{path} {name}")


def test_every_option_of_every_command_has_help():
    missing = []
    leaves = 0
    for path, parser in _walk(_build_parser()):
        subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        leaves += not subcommands
        for action in parser._actions:
            if action.help == argparse.SUPPRESS:
                continue  # a hidden, deprecated alias
            if isinstance(action, argparse._SubParsersAction):
                # not an option: each of its commands needs a help line
                missing += [
                    f"{path} {c.dest}"
                    for c in action._choices_actions
                    if not (c.help or "").strip()
                ]
                continue
            if not (action.help or "").strip():
                missing.append(f"{path}: {'/'.join(action.option_strings) or action.dest}")
    assert not missing, "options without help: " + ", ".join(missing)
    assert leaves >= 14  # run, demo, info, 8 queries, 2 exports, embed, similar


def test_every_command_takes_v_and_q():
    for path, parser in _walk(_build_parser()):
        if any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
            continue
        options = {o for a in parser._actions for o in a.option_strings}
        assert {"-v", "--verbose", "-q", "--quiet"} <= options, path


def test_quiet_keeps_results_and_drops_notes_and_progress(sw_cube, tmp_path, capsys):
    with dask.config.set({"updm.cli.progress-delay": 0}):
        code, out, err = run(capsys, "query", "area", sw_cube)
        assert code == 0 and "area statistics" in err and "task" in err  # the bar
        assert "vegetation_ha" in out
        code, quiet_out, err = run(capsys, "query", "area", sw_cube, "-q")
        assert code == 0 and err == "" and quiet_out == out
        code, _, err = run(capsys, "-q", "query", "area", sw_cube)  # before the command too
        assert code == 0 and err == ""
        code, out, err = run(capsys, "embed", sw_cube, "--lon", LON, "--lat", LAT, "-q")
        assert code == 0 and err == "" and "embedding of" in out
        # errors stay
        code, _, err = run(capsys, "query", "area", sw_cube, "--start", "2050", "-q")
        assert code == 2 and "empty time range" in err


@pytest.mark.slow
def test_verbose_shows_the_steps(tmp_path, capsys):
    cube = make_sw_cube(tmp_path / "cube")  # written to: its own cube
    code, out, err = run(capsys, "embed", cube, "--store", "--period", "1990-1995")
    assert code == 0 and "updm: INFO" not in err
    code, out, err = run(capsys, "embed", cube, "--store", "--period", "1990-1995", "-v")
    assert code == 0 and "updm: INFO: stored embedding 1990-1995" in err
    snapshot = open_cube(cube).snapshot_id
    assert f"snapshot {snapshot}" in out


# --------------------------------------------------------------------------------------
# 6, 7. pictures
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_point_yearly_plot_draws_the_series(sw_cube, tmp_path, capsys):
    png = tmp_path / "p.png"
    code, out, err = run(
        capsys, "query", "point", sw_cube, "--lonlat", LON, LAT, "--yearly", "--plot", png
    )
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "yearly_mviupd_median" in out  # the table is the yearly one
    assert f"wrote {png} ({png.stat().st_size:,} bytes; picture of the scene series)" in out
    png2 = tmp_path / "v.png"
    code, _, err = run(
        capsys, "query", "point", sw_cube, "--xy", X, Y, "--vars", "mviupd", "--plot", png2
    )
    assert code == 0 and png2.read_bytes()[:4] == b"\x89PNG", err


@pytest.mark.parametrize("layer", ["land_cover", "mviupd_median", "clear_count", "trend"])
def test_export_map_draws_every_layer_with_a_picture(sw_cube, tmp_path, capsys, layer):
    png = tmp_path / f"{layer}.png"
    year = [] if layer == "trend" else ["--year", "1993"]
    code, _, err = run(capsys, "export", "map", sw_cube, "--layer", layer, *year, png)
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_export_map_refuses_a_picture_before_reading(sw_cube, tmp_path, capsys):
    png = tmp_path / "fc.png"
    with raise_if_dask_computes():
        code, _, err = run(capsys, "export", "map", sw_cube, "--layer", "first_change", png)
    assert code == 2 and not png.exists()
    assert (
        "no picture for --layer first_change; pictures are drawn of land_cover, trend, "
        "mviupd_median, clear_count: write first_change to a .tif instead"
    ) in err


# --------------------------------------------------------------------------------------
# 8. writing commands confirm what they wrote
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_writing_commands_confirm_path_size_and_snapshot(sw_cube, tmp_path, capsys):
    cube = open_cube(sw_cube)
    tip = cube.snapshot_id
    tif = tmp_path / "lc.tif"
    code, out, _ = run(
        capsys, "export", "map", sw_cube, "--layer", "land_cover", "--year", 1991, tif
    )
    assert code == 0
    assert out == (
        f"wrote {tif} ({tif.stat().st_size:,} bytes; layer land_cover of 1991; snapshot {tip})\n"
    )
    first = cube._repo.lookup_tag("first")
    z = tmp_path / "z.zarr"
    code, out, _ = run(capsys, "export", "zarr", sw_cube, z, "--tag", "first")
    assert code == 0
    files = [p for p in z.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    assert out == (
        f"wrote {z} ({len(files):,} files, {size:,} bytes; Zarr v2 store; snapshot {first})\n"
    )
    table = tmp_path / "a.csv"
    code, out, _ = run(capsys, "query", "area", sw_cube, "-o", table)
    assert code == 0 and out == f"wrote {table} ({table.stat().st_size:,} bytes; CSV)\n"
    one = tmp_path / "e.json"
    code, out, _ = run(capsys, "embed", sw_cube, "--lonlat", LON, LAT, "-o", one)
    assert code == 0 and f"wrote {one} ({one.stat().st_size:,} bytes; JSON)" in out
    png = tmp_path / "s.png"
    code, out, _ = run(capsys, "similar", sw_cube, "--lonlat", LON, LAT, "--png", png)
    assert code == 0
    assert f"wrote {png} ({png.stat().st_size:,} bytes; map of the distances)" in out


# --------------------------------------------------------------------------------------
# 9. progress of long steps
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_fit_encoder_shows_progress_unless_quiet(sw_cube, tmp_path, capsys):
    enc = tmp_path / "enc.npz"
    with dask.config.set({"updm.cli.progress-delay": 0}):
        code, out, err = run(capsys, "embed", sw_cube, "--fit-encoder", enc, "--degree", "2")
        assert code == 0 and "fitting the encoder" in err and "task" in err
        assert f"wrote {enc} ({enc.stat().st_size:,} bytes; location encoder)" in out
        code, _, err = run(capsys, "embed", sw_cube, "--fit-encoder", enc, "--degree", "2", "-q")
        assert code == 0 and err == ""
    # by default a quick step draws no bar at all
    code, _, err = run(capsys, "embed", sw_cube, "--fit-encoder", enc, "--degree", "2")
    assert code == 0 and "fitting the encoder" not in err


# --------------------------------------------------------------------------------------
# 10. the cube store's errors in the package's words
# --------------------------------------------------------------------------------------


def test_unknown_tag_or_snapshot_lists_what_exists(sw_cube, capsys):
    tip = open_cube(sw_cube).snapshot_id
    code, _, err = run(capsys, "query", "area", sw_cube, "--tag", "nope")
    assert code == 2
    assert err == f"updm query: error: cube {str(sw_cube)!r} has no tag 'nope'; its tags: 'first'\n"
    for bad in ("ABCDEF", "0000000000000000000A"):
        code, _, err = run(capsys, "export", "zarr", sw_cube, "out.zarr", "--snapshot", bad)
        assert code == 2 and not Path("out.zarr").exists()
        assert f"has no commit {bad!r} (expected a snapshot id such as its newest, {tip!r})" in err
        assert "icechunk" not in err.lower() and ".rs:" not in err
    code, _, err = run(capsys, "query", "point", sw_cube, "--xy", X, Y, "--tag", "gone")
    assert code == 2 and "its tags: 'first'" in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_updm_script_runs_as_a_process(sw_cube):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "updm_dask.cli", "info", str(sw_cube), "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 0, done.stderr
    assert "lon/lat     " in done.stdout and "° S" in done.stdout and "° W" in done.stdout


def test_a_damaged_cube_store_is_one_line_in_the_package_words(tmp_path, capfd, monkeypatch):
    # ICECHUNK_LOG is the user's choice of the store's log; other code in this process
    # (the benchmarks' helpers) may have set it
    monkeypatch.delenv("ICECHUNK_LOG", raising=False)
    cube = make_sw_cube(tmp_path / "cube")
    for manifest in (cube / "manifests").iterdir():
        manifest.unlink()  # the store loses its chunk manifests
    capfd.readouterr()
    code = main(["query", "point", str(cube), "--lonlat", str(LON), str(LAT)])
    out, err = capfd.readouterr()  # file descriptors: the store logs from native code
    assert code == 2 and out == ""
    assert err == (
        f"updm query: error: cube {str(cube)!r}: reading or writing the cube store failed: "
        "object not found (run with -v for the store's own log)\n"
    )


def test_main_leaves_the_logging_of_its_caller_as_it_was(sw_cube, capsys):
    import logging

    logger = logging.getLogger("updm_dask")
    before = (logger.level, list(logger.handlers))
    for flag in ("-q", "-v", "-vv"):
        assert main(["info", str(sw_cube), flag]) == 0
        assert (logger.level, list(logger.handlers)) == before
    capsys.readouterr()
