"""Jobs over a tiled collection: real Ethiopian scenes, (scene, tile) pairs, one cube per tile."""

from __future__ import annotations

import time
from pathlib import Path

import dask
import numpy as np
import pytest
from affine import Affine

from updm_dask.cube import open_collection, open_cube
from updm_dask.errors import CubeError, JobSpecError
from updm_dask.jobs.run import run_job_file

# The four Ethiopian scenes lie on one 101 x 101 grid whose north-west corner is
# (589035, 756165) in UTM 37N. The job grid starts 20 pixels west and north of it and is
# 140 x 300 pixels: in tiles of 64 the scenes (rows and columns 20-120) touch r0c0, r0c1,
# r1c0 and r1c1, straddling the tile edges both ways; the 11 other tiles stay empty.
X0, Y0 = 589035.0 - 20 * 30, 756165.0 + 20 * 30
SHAPE = (140, 300)
EDGE = 64
TOUCHED = ["r0c0", "r0c1", "r1c0", "r1c1"]


def write_spec(folder: Path, data: Path, cube: Path, tiles: str = "") -> Path:
    spec = folder / f"{cube.stem}.toml"
    spec.write_text(
        f"""
[job]
name = "tiled"

[inputs]
paths = ["{data}"]

[cube]
path = "{cube}"

[grid]
crs = "EPSG:32637"
transform = [30.0, 0.0, {X0}, 0.0, -30.0, {Y0}]
shape = [{SHAPE[0]}, {SHAPE[1]}]

[batch]
size = 2
{tiles}
"""
    )
    return spec


@pytest.fixture(scope="module")
def ethiopia(shared_data) -> Path:
    return shared_data / "landsat" / "ethiopia-167055"


@pytest.fixture(scope="module")
def runs(ethiopia, tmp_path_factory, client):
    """The same job run into a single cube and into a collection of 64-pixel tiles."""
    folder = tmp_path_factory.mktemp("tiled")
    out = {}
    for key, tiles in (("single", ""), ("tiled", f"[tiles]\nedge = {EDGE}\n")):
        spec = write_spec(folder, ethiopia, folder / f"{key}.icechunk", tiles)
        t0 = time.perf_counter()
        report = run_job_file(spec, client=client, progress=False, echo=lambda _t: None)
        out[key] = (spec, report, time.perf_counter() - t0)
    return folder, out


def quiet(_text: str) -> None:
    pass


@pytest.mark.slow
def test_a_tiled_job_writes_the_touched_tiles_with_each_scene_once_and_the_same_pixels(runs):
    folder, out = runs
    _, single, _ = out["single"]
    _, tiled, _ = out["tiled"]
    assert single.exit_code == 0 and tiled.exit_code == 0, tiled.format()
    assert sorted(single.done) == sorted(tiled.done) and len(tiled.done) == 4
    assert tiled.found == 4 and tiled.failed == [] and tiled.pixels == single.pixels
    assert sorted(tiled.tiles) == TOUCHED and tiled.years_rebuilt == single.years_rebuilt
    assert "tiles: 4 run, 0 failed" in tiled.format()
    # the single cube stays a single cube (its grid fits in one tile of the default edge)
    whole = open_cube(folder / "single.icechunk").to_xarray().load()
    coll = open_collection(folder / "tiled.icechunk")
    assert coll.tiles() == TOUCHED and coll.tiling.edge == EDGE
    assert sorted(p.name for p in (folder / "tiled.icechunk" / "tiles").iterdir()) == TOUCHED
    for tile in TOUCHED:
        cube = coll.open_tile(tile)
        part = cube.to_xarray().load()
        ids = [str(s) for s in part["scene_id"].values]
        assert sorted(ids) == sorted(single.done)  # every scene once in every tile it touches
        r0, c0, nr, nc = coll.tiling.tile_window(tile)
        expected = whole.isel(y=slice(r0, r0 + nr), x=slice(c0, c0 + nc))
        np.testing.assert_array_equal(part["x"].values, expected["x"].values)
        np.testing.assert_array_equal(part["y"].values, expected["y"].values)
        assert [str(s) for s in expected["scene_id"].values] == ids
        for name in ("land_cover", "quality", "uCw", "uCv", "uCs", "mviupd", "residual"):
            np.testing.assert_array_equal(part[name].values, expected[name].values, err_msg=name)
        for name in ("yearly_land_cover", "yearly_mviupd_median", "yearly_clear_count"):
            np.testing.assert_array_equal(part[name].values, expected[name].values, err_msg=name)
        assert not cube.stale_years()


@pytest.mark.slow
def test_a_tiled_job_run_again_stores_nothing(runs, client):
    folder, out = runs
    spec, first, _ = out["tiled"]
    before = {
        t: open_collection(folder / "tiled.icechunk").open_tile(t).snapshot_id for t in TOUCHED
    }
    again = run_job_file(spec, client=client, progress=False, echo=quiet)
    assert again.exit_code == 0
    assert again.done == [] and again.commits == [] and sorted(again.skipped) == sorted(first.done)
    after = {
        t: open_collection(folder / "tiled.icechunk").open_tile(t).snapshot_id for t in TOUCHED
    }
    assert after == before


@pytest.mark.slow
def test_tiles_select_runs_only_the_named_tiles_and_refuses_unknown_ones(
    ethiopia, tmp_path, client
):
    cube = tmp_path / "sel.icechunk"
    bad = write_spec(
        tmp_path, ethiopia, cube, f'[tiles]\nedge = {EDGE}\nselect = ["r1c1", "r9c0"]\n'
    )
    with pytest.raises(JobSpecError, match=r"\[tiles.select\] unknown tile\(s\) 'r9c0'.*3 x 5"):
        run_job_file(bad, client=client, progress=False, echo=quiet)
    assert not cube.exists()  # refused before anything was written
    spec = write_spec(tmp_path, ethiopia, cube, f'[tiles]\nedge = {EDGE}\nselect = ["r1c1"]\n')
    notes = []
    report = run_job_file(spec, client=client, progress=False, echo=notes.append)
    assert report.exit_code == 0 and list(report.tiles) == ["r1c1"] and len(report.done) == 4
    assert open_collection(cube).tiles() == ["r1c1"]
    assert any("not selected: r0c0, r0c1, r1c0" in n for n in notes)
    # a second driver takes another tile of the same collection
    other = write_spec(tmp_path, ethiopia, cube, f'[tiles]\nedge = {EDGE}\nselect = ["r0c0"]\n')
    assert run_job_file(other, client=client, progress=False, echo=quiet).exit_code == 0
    assert open_collection(cube).tiles() == ["r0c0", "r1c1"]
    # the collection's tile edge is fixed when it is created
    changed = write_spec(tmp_path, ethiopia, cube, "[tiles]\nedge = 50\n")
    with pytest.raises(JobSpecError, match=r"\[tiles.edge\] 50, but .* tiles of 64 pixels"):
        run_job_file(changed, client=client, progress=False, echo=quiet)


@pytest.mark.slow
def test_a_failing_tile_is_reported_and_the_others_go_on(ethiopia, tmp_path, client):
    cube = tmp_path / "fail.icechunk"
    # tile r0c1's folder holds something else: that tile cannot be created
    (cube / "tiles" / "r0c1").mkdir(parents=True)
    (cube / "tiles" / "r0c1" / "notes.txt").write_text("not a cube")
    spec = write_spec(tmp_path, ethiopia, cube, f"[tiles]\nedge = {EDGE}\n")
    events = []
    report = run_job_file(spec, client=client, progress=events.append, echo=quiet)
    assert report.exit_code == 1 and report.tiles_failed == ["r0c1"]
    # progress counts (scene, tile) pairs: 4 scenes x 4 tiles, one event per tile done
    assert [(e.total, e.handled) for e in events] == [(16, n) for n in (0, 4, 8, 12, 16)]
    assert report.tiles["r0c1"].startswith("FAILED") and "not a cube" in report.tiles["r0c1"]
    assert open_collection(cube).tiles() == ["r0c0", "r1c0", "r1c1"]
    for tile in ("r0c0", "r1c0", "r1c1"):
        assert len(open_collection(cube).open_tile(tile).scene_ids()) == 4
    assert "r0c1: FAILED" in report.format()


def test_a_tile_is_listed_from_its_first_stored_batch_even_if_its_run_fails_later(
    ethiopia, tmp_path, client, monkeypatch
):
    import updm_dask.jobs.run as run_module

    cube = tmp_path / "late.icechunk"
    spec = write_spec(tmp_path, ethiopia, cube, f"[tiles]\nedge = {EDGE}\n")
    listed_while_running = []

    def failing_rebuild(spec, tile_cube, years, report):
        # every batch of the tile is committed by now; the catalogue already lists it
        listed_while_running.append(sorted(open_collection(cube).tiles()))
        raise RuntimeError("simulated failure of the per-year rebuild")

    monkeypatch.setattr(run_module, "_rebuild_yearly", failing_rebuild)
    with dask.config.set({"updm.tiles.concurrent": 1}):  # the tiles one after the other
        report = run_job_file(spec, client=client, progress=False, echo=quiet)
    assert report.exit_code == 1 and report.tiles_failed == TOUCHED
    assert all("simulated failure" in report.tiles[t] for t in TOUCHED)
    # tile by tile, each listed before its own run failed
    assert listed_while_running == [TOUCHED[: i + 1] for i in range(len(TOUCHED))]
    coll = open_collection(cube)
    assert coll.tiles() == TOUCHED
    for tile in TOUCHED:  # what each tile committed stays in view
        assert len(coll.open_tile(tile).scene_ids()) == 4
    # and in the report: stored before the failure, so processed
    assert len(report.done) == 4 and report.failed == [] and len(report.commits) == 8


def test_scenes_of_tiles_that_failed_are_counted_as_failed(ethiopia, tmp_path, client):
    cube = tmp_path / "lost.icechunk"
    for tile in TOUCHED:  # every tile the scenes touch holds something else: none is made
        (cube / "tiles" / tile).mkdir(parents=True)
        (cube / "tiles" / tile / "notes.txt").write_text("not a cube")
    spec = write_spec(tmp_path, ethiopia, cube, f"[tiles]\nedge = {EDGE}\n")
    report = run_job_file(spec, client=client, progress=False, echo=quiet)
    assert report.exit_code == 1 and report.tiles_failed == TOUCHED and report.done == []
    assert len(report.failed) == 4 and {f.stage for f in report.failed} == {"tile"}
    assert all(f.reason.startswith("not stored in tile(s) r0c0, r0c1") for f in report.failed)
    assert "4 found, 0 processed, 0 skipped (already in the cube), 4 failed" in report.format()


@pytest.mark.slow
def test_to_xarray_over_an_area_equals_the_single_cube_over_it(runs):
    folder, _ = runs
    whole = open_cube(folder / "single.icechunk").to_xarray()
    coll = open_collection(folder / "tiled.icechunk")
    # a box across the four tiles' corner, one reaching into empty tiles, the whole grid
    for box in ((slice(50, 80), slice(40, 90)), (slice(10, 140), slice(100, 170)), None):
        if box is None:
            got, want = coll.to_xarray(), whole
        else:
            rows, cols = box
            xs, ys = whole["x"].values[cols], whole["y"].values[rows]
            bbox = (xs[0] - 5, ys[-1] - 5, xs[-1] + 5, ys[0] + 5)
            got = coll.to_xarray(bbox)
            want = whole.sel(x=slice(bbox[0], bbox[2]), y=slice(bbox[3], bbox[1]))
            assert got.sizes["y"] == rows.stop - rows.start
        assert dict(got.sizes) == dict(want.sizes)
        for name in ("x", "y", "time", "scene_id", "sensor", "year"):
            np.testing.assert_array_equal(got[name].values, want[name].values, err_msg=name)
        assert set(got.data_vars) == set(want.data_vars)
        for name in want.data_vars:
            assert got[name].dtype == want[name].dtype, name
            np.testing.assert_array_equal(got[name].values, want[name].values, err_msg=name)
    assert got.rio.transform() == whole.rio.transform()
    assert got.rio.crs == whole.rio.crs


@pytest.mark.slow
def test_updm_info_and_tag_on_a_collection(runs, capsys):
    from updm_dask.cli import main

    folder, out = runs
    location = folder / "tiled.icechunk"
    assert main(["info", str(location)]) == 0
    text = capsys.readouterr().out
    assert "tiles       4 present of 15 (3 x 5 tiles of 64 pixels)" in text
    assert "scenes      4 distinct over the tiles" in text
    assert "years       2000, 2010, 2017" in text
    assert "lon/lat     " in text and "° N" in text and "° E" in text
    for tile in TOUCHED:
        assert f"  {tile}         4 scene(s), years 2000, 2010, 2017" in text
    size = int(text.split("bytes       ")[1].split(" on disk now")[0].replace(",", ""))
    assert size == sum(p.stat().st_size for p in location.rglob("*") if p.is_file())
    # one tile, as a single cube's info shows it
    assert main(["info", str(location), "--tile", "r1c0"]) == 0
    text = capsys.readouterr().out
    assert "tile        r1c0 of" in text and "scenes      4" in text
    assert "grid        EPSG:32637, 30 m, 64 x 64 pixels" in text
    assert main(["info", str(location), "--tile", "r2c4"]) == 2
    assert "tile 'r2c4' holds no data; tiles present: r0c0, r0c1, r1c0, r1c1" in (
        capsys.readouterr().err
    )
    # a tag pins every tile; the single cube is tagged at its tip
    assert main(["tag", str(location), "v1"]) == 0
    assert "tagged 'v1': 4 tile(s) pinned" in capsys.readouterr().out
    pinned = open_collection(location, tag="v1")
    assert pinned.snapshots() == {
        t: open_collection(location).open_tile(t).snapshot_id for t in TOUCHED
    }
    assert main(["tag", str(location), "v1"]) == 2
    assert "already has a tag 'v1'" in capsys.readouterr().err
    assert main(["tag", str(folder / "single.icechunk"), "v1"]) == 0
    assert open_cube(folder / "single.icechunk", tag="v1").scene_ids() == set(out["single"][1].done)
    assert main(["info", str(folder / "single.icechunk"), "--tile", "r0c0"]) == 2
    assert "is a single cube, not tiled" in capsys.readouterr().err


@pytest.mark.slow
def test_updm_query_point_on_a_collection_reads_the_tile_holding_the_point(runs, capsys):
    from updm_dask.cli import main

    folder, _ = runs
    tiled, single = str(folder / "tiled.icechunk"), str(folder / "single.icechunk")
    coll = open_collection(tiled)
    # pixel centres in three tiles, one of them next to a tile edge
    for row, col in ((30, 30), (63, 64), (100, 90)):
        x, y = coll.grid.x[col], coll.grid.y[row]
        for extra in ([], ["--yearly"]):
            args = ["-q", "query", "point", "--xy", str(x), str(y), "--format", "csv", *extra]
            assert main([*args[:3], tiled, *args[3:]]) == 0
            got = capsys.readouterr().out
            assert main([*args[:3], single, *args[3:]]) == 0
            assert got == capsys.readouterr().out and got.count("\n") >= 4
    assert main(["-q", "query", "point", tiled, "--xy", str(x), str(y), "--snapshot", "abc"]) == 2
    assert "pin it with a tag" in capsys.readouterr().err
    assert main(["-q", "query", "point", tiled, "--xy", "599000", "755000"]) == 2
    err = capsys.readouterr().err
    assert "is outside the cube grid" in err and "lon " in err  # the lon/lat bounds too


def test_bad_tiles_keys_are_refused_naming_the_key(tmp_path, shared_data):
    from updm_dask.jobs.spec import load_job_spec

    data = shared_data / "landsat" / "ethiopia-167055"
    cube = tmp_path / "c.icechunk"
    for table, message in (
        ("[tiles]\nedge = 0\n", r"\[tiles.edge\] expected a positive number of pixels, got 0"),
        ("[tiles]\nedge = 1.5\n", r"\[tiles.edge\] expected int, got 1.5"),
        ('[tiles]\nselect = ["r0c0", "tile1"]\n', r"\[tiles.select\] .*got 'tile1'"),
        ("[tiles]\nselect = []\n", r"\[tiles.select\] .*got an empty list"),
        ("[tiles]\nsize = 3\n", r"\[tiles.size\] unknown key; expected one of edge, select"),
        ("[tiles]\nedge = -5\n", r"\[tiles.edge\] expected a positive number of pixels, got -5"),
        ('[tiles]\nselect = ["r00c1"]\n', r"\[tiles.select\] .*got 'r00c1'"),
    ):
        with pytest.raises(JobSpecError, match=message) as caught:
            load_job_spec(write_spec(tmp_path, data, cube, table))
        assert "[grid]" not in str(caught.value)  # named by its own key, once
    spec = load_job_spec(write_spec(tmp_path, data, cube, '[tiles]\nselect = ["r1c0", "r1c0"]\n'))
    assert spec.tile_select == ("r1c0",) and spec.tile_edge is None


# A tiled job in a process of its own, killed (SIGKILL, nothing cleaned up) at a point of
# the collection's life: right after the catalogue repository was made (before its first
# commit), after a tile's cube was made but before it was registered, or after the first
# batch of a tile was committed.
KILLED_JOB = """
import os, signal, sys
from distributed import Client, LocalCluster
import updm_dask.cube._tiles as tiles
import updm_dask.cube._cube as cubes
from updm_dask.jobs.run import run_job_file

job, where = sys.argv[1], sys.argv[2]
def die():
    os.kill(os.getpid(), signal.SIGKILL)
if where == "catalogue":
    make = tiles._catalogue_to_fill
    def _fill(*a):
        make(*a)
        die()
    tiles._catalogue_to_fill = _fill
elif where == "register":
    register = tiles.Collection._register
    def _register(self, tile):
        if tile == "r1c1":
            die()
        register(self, tile)
    tiles.Collection._register = _register
else:
    commit = cubes.Cube._commit
    def _commit(self, *a):
        snap = commit(self, *a)
        die()
    cubes.Cube._commit = _commit
with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                  dashboard_address=None) as cluster, Client(cluster) as client:
    run_job_file(job, client=client, progress=False, echo=lambda _t: None)
"""


@pytest.mark.slow
@pytest.mark.parametrize("where", ["catalogue", "register", "batch"])
def test_a_tiled_job_killed_at_any_point_is_completed_by_the_next_run(
    ethiopia, tmp_path, client, where
):
    import os
    import signal
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    cube = tmp_path / "killed.icechunk"
    spec = write_spec(tmp_path, ethiopia, cube, f"[tiles]\nedge = {EDGE}\n")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]),
    }
    env.setdefault("ICECHUNK_LOG", "error")
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_JOB, str(spec), where],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr[-2000:])
    report = run_job_file(spec, client=client, progress=False, echo=quiet)
    assert report.exit_code == 0, report.format()
    coll = open_collection(cube)
    assert coll.tiles() == TOUCHED
    for tile in TOUCHED:
        stored = [str(s) for s in coll.open_tile(tile).to_xarray()["scene_id"].values]
        assert len(stored) == 4 and len(set(stored)) == 4  # every scene, once
        assert not coll.open_tile(tile).stale_years()


@pytest.mark.slow
def test_scene_tile_pairs_without_data_are_recorded_once_and_not_computed_again(
    ethiopia, tmp_path, client
):
    import shutil

    import rasterio

    # Real scenes with fill where a scene's collar would be: the TM 2000 scene's first 44
    # rows (grid rows 20-63, the first tile row) and the whole TM 2010 scene are set to
    # the fill value 0 in band 1 (any band at fill makes the pixel fill).
    data = tmp_path / "data"
    partial, blank = "LT05_L1TP_167055_20000309_20161214_01_T1", "LT51670552010352MLK00"
    for name in (partial, blank, "LC08_L1TP_167055_20170308_20170317_01_T1"):
        shutil.copytree(ethiopia / name, data / name)
    for name, rows in ((partial, 44), (blank, None)):
        band = next(p for p in (data / name).iterdir() if p.name.upper().endswith("_B1.TIF"))
        band.chmod(0o644)
        with rasterio.open(band, "r+") as f:
            dn = f.read(1)
            dn[: rows if rows is not None else dn.shape[0]] = 0
            f.write(dn, 1)
    cube = tmp_path / "collars.icechunk"
    spec = write_spec(tmp_path, data, cube, f"[tiles]\nedge = {EDGE}\n")
    first = run_job_file(spec, client=client, progress=False, echo=quiet)
    tm2000 = [s for s in first.done if s.startswith("LT51670552000")]
    assert len(first.done) == 2 and len(tm2000) == 1
    # the scene without any valid pixel fails as it does in a single cube; the partial one
    # does not (it is stored where it has data)
    assert [(f.scene, f.stage) for f in first.failed] == [(blank, "empty")]
    coll = open_collection(cube)
    for tile in ("r0c0", "r0c1"):
        assert tm2000[0] not in coll.open_tile(tile).scene_ids()
        assert tm2000[0] in coll.empty_scenes(tile)
    for tile in ("r1c0", "r1c1"):
        assert tm2000[0] in coll.open_tile(tile).scene_ids()
        assert tm2000[0] not in coll.empty_scenes(tile)
    notes = []
    again = run_job_file(spec, client=client, progress=False, echo=notes.append)
    assert again.done == [] and again.commits == [] and len(again.skipped) == 2
    assert [f.stage for f in again.failed] == ["empty"]  # still said, not recomputed
    # nothing left to compute in any tile: the known-empty pairs are not read again
    to_process = [n for n in notes if "[tile " in n and " to process " in n]
    assert len(to_process) == 4 and all(", 0 to process" in n for n in to_process), to_process


@pytest.mark.slow
def test_a_tile_where_every_scene_is_only_fill_is_not_registered(
    ethiopia, tmp_path, client, capsys
):
    import shutil

    import rasterio

    from updm_dask.cli import main

    # One real scene whose first 44 rows (grid rows 20-63: the whole first tile row) are
    # fill: its bounding box touches r0c0 and r0c1, its data reaches only r1c0 and r1c1.
    data = tmp_path / "data"
    name = "LT05_L1TP_167055_20000309_20161214_01_T1"
    shutil.copytree(ethiopia / name, data / name)
    band = next(p for p in (data / name).iterdir() if p.name.upper().endswith("_B1.TIF"))
    band.chmod(0o644)
    with rasterio.open(band, "r+") as f:
        dn = f.read(1)
        dn[:44] = 0
        f.write(dn, 1)
    cube = tmp_path / "collar.icechunk"
    spec = write_spec(tmp_path, data, cube, f"[tiles]\nedge = {EDGE}\n")
    for _ in range(2):  # and again: the known-empty pairs register nothing either
        report = run_job_file(spec, client=client, progress=False, echo=quiet)
        assert report.exit_code == 0, report.format()
        coll = open_collection(cube)
        assert coll.tiles() == ["r1c0", "r1c1"]
        stored = coll.open_tile("r1c0").scene_ids()
        assert len(stored) == 1 and stored == coll.open_tile("r1c1").scene_ids()
        for tile in ("r0c0", "r0c1"):
            assert coll.empty_scenes(tile) == stored  # recorded as without data there
            with pytest.raises(CubeError, match=f"tile '{tile}' holds no data"):
                coll.open_tile(tile)
    assert main(["info", str(cube)]) == 0
    out = capsys.readouterr().out
    assert "tiles       2 present of 15" in out
    assert "  r0c0" not in out and "  r1c0         1 scene(s)" in out


@pytest.mark.slow
def test_updm_run_compact_on_a_tiled_job_compacts_every_tile(ethiopia, tmp_path, capsys):
    from updm_dask.cli import main
    from updm_dask.cube import time_blocks_info

    cube = tmp_path / "compact.icechunk"
    spec = write_spec(tmp_path, ethiopia, cube, f"[tiles]\nedge = {EDGE}\n")
    assert main(["-q", "run", str(spec), "--no-progress", "--compact"]) == 0
    out = capsys.readouterr().out
    assert out.count("compacted 4 time slot(s) into time blocks") == 4
    coll = open_collection(cube)
    for tile in TOUCHED:
        assert out.count(coll.tile_location(tile) + ":") == 1
        assert time_blocks_info(coll.open_tile(tile).session().store)["slots"] == 4


def test_updm_run_compact_compacts_only_the_tiles_the_run_wrote(ethiopia, tmp_path, capsys):
    # the other tiles may be another driver's, being written at that moment
    from updm_dask.cli import main
    from updm_dask.cube import time_blocks_info

    cube = tmp_path / "some.icechunk"
    spec = write_spec(tmp_path, ethiopia, cube, f"[tiles]\nedge = {EDGE}\n")
    assert main(["-q", "run", str(spec), "--no-progress"]) == 0
    (tmp_path / "one").mkdir()
    one = write_spec(
        tmp_path / "one", ethiopia, cube, f'[tiles]\nedge = {EDGE}\nselect = ["r1c0"]\n'
    )
    capsys.readouterr()
    assert main(["-q", "run", str(one), "--no-progress", "--compact"]) == 0
    out = capsys.readouterr().out
    coll = open_collection(cube)
    assert coll.tile_location("r1c0") + ": compacted 4 time slot(s)" in out
    assert time_blocks_info(coll.open_tile("r1c0").session().store)["slots"] == 4
    for tile in ("r0c0", "r0c1", "r1c1"):
        assert coll.tile_location(tile) not in out
        assert time_blocks_info(coll.open_tile(tile).session().store) is None
    assert "again to resume" not in out  # no tile failed


def test_the_record_of_scenes_without_data_retries_conflicts_and_never_fails_the_tile(
    tmp_path, monkeypatch
):
    from updm_dask.cube import CubeConflictError, create_cube, empty_scene_ids
    from updm_dask.geo import CubeGrid
    from updm_dask.jobs import tiles as tiles_module
    from updm_dask.jobs.report import JobReport

    grid = CubeGrid("EPSG:32637", Affine(30, 0, 589035, 0, -30, 756165), (4, 4))
    cube = create_cube(tmp_path / "tile", grid)
    real = tiles_module.record_empty_scenes
    calls = []

    def conflicting(times):
        def record(c, ids):
            calls.append(list(ids))
            if len(calls) <= times:  # another driver committed to the tile first
                raise CubeConflictError("another writer committed to branch 'main' first")
            return real(c, ids)

        return record

    said = []
    report = JobReport(job_id="t", cube=cube.location)
    with dask.config.set({"updm.job.conflict-retries": 2}):
        monkeypatch.setattr(tiles_module, "record_empty_scenes", conflicting(2))
        tiles_module._record_empty(cube, ["A", "B"], report, said.append)
        assert empty_scene_ids(cube) == {"A", "B"} and report.conflicts == 2 and said == []
        calls.clear()
        monkeypatch.setattr(tiles_module, "record_empty_scenes", conflicting(5))
        tiles_module._record_empty(cube, ["C"], report, said.append)  # gives up, says so
    assert len(calls) == 3 and empty_scene_ids(cube) == {"A", "B"}
    assert len(said) == 1 and "could not record 1 scene(s) without data" in said[0]
    cube.close()
