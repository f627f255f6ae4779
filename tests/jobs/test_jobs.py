"""Jobs (``updm run``): real scenes into a real cube, resumable, bad scenes isolated."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import icechunk
import numpy as np
import pyproj
import pytest
import rasterio
import xarray as xr

import updm_dask.cube._cube as cube_impl
from updm_dask.cli import main
from updm_dask.cube import Cube, decode_layer, encode_layer, open_cube
from updm_dask.demo import make_demo_archive
from updm_dask.errors import JobError, JobSpecError
from updm_dask.jobs.run import run_job_file, scene_on_grid
from updm_dask.metadata import read_mtl
from updm_dask.pipeline import LAYERS, process_scene
from updm_dask.scenes import discover_scenes, open_scene

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "ethiopia-167055.toml"


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """Six synthetic scenes: MSS 1975 and 1985 (60 m), TM, ETM+ (SLC-off), OLI, OLI-2."""
    return make_demo_archive(tmp_path_factory.mktemp("demo"), n_scenes=6, size=48)


def write_job(archive, folder: Path, *, root: Path | None = None, batch: int = 2) -> Path:
    """The demo's own job spec, pointed at ``root`` (a copy of the archive) and a cube."""
    job = archive.write_job_spec(folder / "job.toml", folder / "cube.icechunk")
    text = job.read_text()
    if root is not None:
        text = re.sub(r"paths = \[.*\]", f"paths = [{str(root)!r}]".replace("'", '"'), text)
    text = re.sub(r"size = \d+\n", f"size = {batch}\n", text)
    job.write_text(text)
    return job


def by_scene(cube: Cube) -> dict[str, xr.Dataset]:
    ds = cube.to_xarray().load()
    return {str(sid): ds.isel(time=i) for i, sid in enumerate(ds["scene_id"].values)}


def quiet(_text: str) -> None:
    pass


# --------------------------------------------------------------------------------------
# The real Ethiopian multi-sensor stack, end to end through the command line


@pytest.mark.slow
def test_example_job_runs_end_to_end_and_a_second_run_adds_nothing(shared_data, tmp_path, capsys):
    text = EXAMPLE.read_text()
    data = shared_data / "landsat" / "ethiopia-167055"
    # The committed example finds the data beside the repository; here the fixture's.
    assert '"../../shared/data/landsat/ethiopia-167055"' in text
    text = text.replace('"../../shared/data/landsat/ethiopia-167055"', f'"{data}"')
    text = text.replace('"ethiopia-167055.icechunk"', f'"{tmp_path / "cube.icechunk"}"')
    job = tmp_path / "job.toml"
    job.write_text(text)

    assert main(["run", str(job), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "4 found, 4 processed, 0 skipped" in out and "0 failed" in out
    assert "local cluster" in out  # it says which cluster it used

    # Open the cube with plain icechunk + xarray (no updm_dask code).
    repo = icechunk.Repository.open(
        icechunk.local_filesystem_storage(str(tmp_path / "cube.icechunk"))
    )
    first_tip = repo.lookup_branch("main")
    ds = xr.open_zarr(repo.readonly_session("main").store, consolidated=False)
    assert ds.rio.crs == pyproj.CRS.from_epsg(32637)
    assert tuple(ds.rio.transform())[:6] == (30.0, 0.0, 589035.0, 0.0, -30.0, 756165.0)
    expected = {}
    for folder in sorted(data.iterdir()):
        md = read_mtl(next(folder.glob("*_MTL.txt")))
        expected[md.scene_id] = (md.sensor, md.acquired.replace(tzinfo=None))
    ids = [str(s) for s in ds["scene_id"].values]
    assert sorted(ids) == sorted(expected)
    for i, sid in enumerate(ids):
        sensor, when = expected[sid]
        assert str(ds["sensor"].values[i]) == sensor
        assert abs(ds["time"].values[i] - np.datetime64(when, "us")) < np.timedelta64(1, "s")
    assert sorted(str(s) for s in ds["sensor"].values) == ["ETM+", "OLI", "TM", "TM"]
    assert sorted(int(y) for y in ds["year"].values) == [2000, 2010, 2017]

    # The scenes lie exactly on the example grid, so the cube holds the pipeline's own
    # output (regridding is the identity), each layer as stored at its stated precision.
    oli = next(f for f in data.iterdir() if f.name.startswith("LC08"))
    direct = process_scene(open_scene(oli)).compute()
    slot = ids.index(read_mtl(next(oli.glob("*_MTL.txt"))).scene_id)
    for name in LAYERS:
        stored = decode_layer(name, encode_layer(name, direct[name].values))
        got = ds[name].isel(time=slot).values.astype(stored.dtype)
        np.testing.assert_array_equal(got, stored, err_msg=name)
    valid = ds["land_cover"].isin([2, 3, 4]).mean(("y", "x")).values
    assert (valid > 0.5).all()

    assert main(["run", str(job), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "4 found, 0 processed, 4 skipped" in out
    assert repo.lookup_branch("main") == first_tip  # not even an empty commit

    assert main(["info", str(tmp_path / "cube.icechunk")]) == 0
    info = capsys.readouterr().out
    assert re.search(r"scenes\s+4", info) and re.search(r"TM\s+2", info)


def test_committed_example_spec_points_at_the_shared_data_beside_the_repository(shared_data):
    from updm_dask.jobs.spec import load_job_spec

    spec = load_job_spec(EXAMPLE)
    if shared_data.resolve() != (REPO.parent / "shared" / "data").resolve():
        pytest.skip("the shared data is not beside the repository here (UPDM_SHARED_DATA)")
    assert [Path(p).resolve() for p in spec.inputs] == [
        (shared_data / "landsat" / "ethiopia-167055").resolve()
    ]


# --------------------------------------------------------------------------------------
# Resume, idempotency, crash before commit


@pytest.mark.slow
def test_crash_mid_batch_leaves_the_cube_as_committed_and_a_rerun_completes_it(
    archive, tmp_path, client, monkeypatch
):
    import dask

    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    clean = run_job_file(
        write_job(archive, clean_dir, batch=6), client=client, progress=False, echo=quiet
    )
    assert clean.exit_code == 0 and len(clean.done) == 6

    work = tmp_path / "work"
    work.mkdir()
    job = write_job(archive, work, batch=2)
    real_write = cube_impl.write_dask
    calls = {"writes": 0}
    marker = tmp_path / "crashed"

    def crash_in_last_chunk(block, block_info=None):
        location = block_info[0]["chunk-location"]
        if tuple(location[1:]) == (2, 2):  # the last spatial chunk of a 3 x 3 layout
            marker.touch()  # a file: the task may run on a copy of this closure
            raise RuntimeError("simulated crash while writing")
        return block

    def crashing_write(session, sources, names, start):
        calls["writes"] += 1
        if calls["writes"] == 2:  # batch 2: one chunk of the last variable fails
            sources = [
                *sources[:-1],
                sources[-1].map_blocks(crash_in_last_chunk, dtype=sources[-1].dtype),
            ]
        return real_write(session, sources, names, start)

    monkeypatch.setattr(cube_impl, "write_dask", crashing_write)
    # blocks of one 16 px chunk each: a 3 x 3 layout of them
    with dask.config.set({"updm.chunks.cube": 16, "updm.chunks.spatial": 16}):
        with pytest.raises(JobError, match="nothing of it was stored") as caught:
            run_job_file(job, client=client, progress=False, echo=quiet)
    assert "simulated crash" in str(caught.value)
    assert marker.exists()  # the fault really happened, in the middle of batch 2
    cube = open_cube(work / "cube.icechunk")
    history = cube.history()
    assert history[0]["message"].startswith("job updm-demo: batch 1 of 3")
    assert len(cube.scene_ids()) == 2
    assert cube.to_xarray().sizes["time"] == 2  # no half-written slots

    monkeypatch.setattr(cube_impl, "write_dask", real_write)
    resumed = run_job_file(job, client=client, progress=False, echo=quiet)
    assert resumed.exit_code == 0
    assert len(resumed.skipped) == 2 and len(resumed.done) == 4
    ids = [str(s) for s in cube.to_xarray()["scene_id"].values]
    assert len(ids) == len(set(ids)) == 6

    # The resumed cube equals the clean single run, scene by scene, chunk for chunk.
    got, want = by_scene(cube), by_scene(open_cube(clean_dir / "cube.icechunk"))
    assert set(got) == set(want)
    for sid in want:
        for name in LAYERS:
            np.testing.assert_array_equal(got[sid][name].values, want[sid][name].values)
    a = open_cube(work / "cube.icechunk").to_xarray()
    b = open_cube(clean_dir / "cube.icechunk").to_xarray()
    xr.testing.assert_identical(a["yearly_land_cover"].load(), b["yearly_land_cover"].load())

    tip = cube.snapshot_id
    again = run_job_file(job, client=client, progress=False, echo=quiet)
    assert (len(again.done), len(again.skipped), again.exit_code) == (0, 6, 0)
    assert cube.snapshot_id == tip


@pytest.mark.slow
def test_mss_and_tm_land_on_one_grid(archive, tmp_path, client):
    report = run_job_file(write_job(archive, tmp_path), client=client, progress=False, echo=quiet)
    assert report.exit_code == 0
    stored = by_scene(open_cube(tmp_path / "cube.icechunk"))
    found = discover_scenes(str(archive.root)).scenes
    sensors = {s.metadata.sensor for s in found}
    assert {"MSS", "TM", "OLI"} <= sensors
    for source in found:
        native = process_scene(open_scene(source)).compute()
        cube_layers = stored[source.scene_id]
        factor = cube_layers.sizes["y"] // native.sizes["y"]
        assert factor == (2 if source.metadata.sensor == "MSS" else 1)
        for name in ("land_cover", "uCv", "mviupd"):
            # 60 m MSS pixels are repeated onto the 30 m grid (each 30 m pixel takes the
            # 60 m pixel it lies in); 30 m scenes are on the grid already.
            # (float layers as stored: packed to their stated step)
            expected = np.repeat(np.repeat(native[name].values, factor, 0), factor, 1)
            expected = decode_layer(name, encode_layer(name, expected))
            np.testing.assert_array_equal(cube_layers[name].values, expected)


def test_a_job_reports_through_its_callbacks_and_prints_nothing(archive, tmp_path, client, capsys):
    events, notes = [], []
    report = run_job_file(
        write_job(archive, tmp_path, batch=4),
        client=client,
        progress=events.append,
        echo=notes.append,
    )
    assert report.exit_code == 0 and len(report.done) == 6
    assert capsys.readouterr() == ("", "")  # the library prints nothing; updm run does
    assert [(e.job, e.total, e.handled, e.failed) for e in events] == [
        ("updm-demo", 6, 0, 0),
        ("updm-demo", 6, 4, 0),
        ("updm-demo", 6, 6, 0),
    ]
    assert events[-1].pixels_per_second == report.pixels_per_second > 0
    assert notes[0].startswith("updm run updm-demo: on the given client")
    assert "6 scenes found, 0 already in" in notes[1] and "batches of 4" in notes[1]


def test_updm_run_draws_its_progress_bar_from_the_events(capsys):
    from updm_dask.cli import JobProgressBar
    from updm_dask.jobs import JobProgress

    bar = JobProgressBar()
    bar(JobProgress("demo", 6, 0, 0, 0.0))
    bar(JobProgress("demo", 6, 4, 1, 1234.0))
    bar(JobProgress("demo", 6, 6, 1, 2345.0))
    bar.close()
    err = capsys.readouterr().err
    assert "demo" in err and "6/6" in err and "failed=1" in err and "px_s=2,345" in err


# --------------------------------------------------------------------------------------
# Bad scenes


def _rewrite_band(path: Path, transform_data) -> None:
    with rasterio.open(path) as src:
        profile, data = src.profile, src.read(1)
    new = transform_data(data)
    profile.update(height=new.shape[0], width=new.shape[1])
    # Write beside and move into place: GDAL deletes a dataset's whole file list before
    # overwriting it, and for a Landsat band that list includes the scene's MTL.
    temporary = path.with_suffix(".new.tif")
    with rasterio.open(temporary, "w", **profile) as dst:
        dst.write(new, 1)
    temporary.replace(path)


@pytest.mark.slow
def test_bad_scenes_are_recorded_skipped_and_the_job_goes_on(archive, tmp_path, client, capsys):
    root = tmp_path / "archive"
    shutil.copytree(archive.root, root)
    folders = {p.name[:4]: p for p in root.iterdir() if p.is_dir()}
    scene_ids = {k: read_mtl(next(p.glob("*_MTL.txt"))).scene_id for k, p in folders.items()}
    bands = {k: sorted(p.glob("*_B[0-9].TIF")) for k, p in folders.items()}
    # TM: a truncated band file (a download cut short)
    tm_band = bands["LT05"][2]
    tm_band.write_bytes(tm_band.read_bytes()[: tm_band.stat().st_size // 2])
    # ETM+: a band file missing
    bands["LE07"][1].unlink()
    # OLI: every band all fill (DN 0)
    for band in bands["LC08"]:
        _rewrite_band(band, np.zeros_like)
    # OLI-2: a band whose raster does not match the others / the MTL
    _rewrite_band(bands["LC09"][0], lambda d: np.pad(d, ((0, 3), (0, 3))))

    job = write_job(archive, tmp_path, root=root, batch=3)
    assert main(["run", str(job), "--no-progress"]) == 1
    captured = capsys.readouterr()
    out = captured.out
    # the job's notes go to stderr, its report to stdout
    assert "updm run updm-demo: 6 scenes found, 0 already in" in captured.err
    assert "6 found, 2 processed, 0 skipped (already in the cube), 4 failed" in out
    failed_lines = out.split("failed scenes")[1]
    for prefix in ("LT05", "LE07", "LC08", "LC09"):
        assert scene_ids[prefix] in failed_lines or folders[prefix].name in failed_lines

    report = run_job_file(job, client=client, progress=False, echo=quiet)
    assert report.exit_code == 1
    assert len(report.failed) == 4 and report.done == [] and len(report.skipped) == 2
    reasons = {f.stage: f.reason for f in report.failed}
    assert "empty" in reasons and "no valid pixel" in reasons["empty"]
    text = " ".join(f"{f.scene} {f.reason}" for f in report.failed)
    assert tm_band.name in text  # the truncated file is named
    assert bands["LE07"][1].name[-6:-4] in text or "B2" in text or "missing" in text.lower()
    assert bands["LC09"][0].name in text or "shape" in text or "size" in text
    cube = open_cube(tmp_path / "cube.icechunk")
    assert {s[:2] for s in cube.scene_ids()} == {"LM"}  # the two MSS scenes only
    assert not report.commits  # the second run committed nothing


# --------------------------------------------------------------------------------------
# Job-level errors: clear, before anything is written


def test_job_errors_name_the_key_and_write_nothing(archive, tmp_path, client, capsys):
    job = write_job(archive, tmp_path)
    text = job.read_text()
    no_grid = tmp_path / "no_grid.toml"
    no_grid.write_text(re.sub(r"\[grid\]\n(?:[^\n]+\n)*", "", text))
    with pytest.raises(JobSpecError, match=r"grid: the cube .* does not exist"):
        run_job_file(no_grid, client=client, progress=False, echo=quiet)
    assert not (tmp_path / "cube.icechunk").exists()

    bad_rules = tmp_path / "bad_rules.toml"
    bad_rules.write_text(text.replace('rules = "auto"', 'rules = "no-such-rules.toml"'))
    with pytest.raises(JobSpecError, match=r"science\.rules"):
        run_job_file(bad_rules, client=client, progress=False, echo=quiet)

    assert run_job_file(job, client=client, progress=False, echo=quiet).exit_code == 0
    tip = open_cube(tmp_path / "cube.icechunk").snapshot_id
    other_grid = tmp_path / "other_grid.toml"
    other_grid.write_text(text.replace("shape = [48, 48]", "shape = [40, 48]"))
    assert "shape = [40, 48]" in other_grid.read_text()
    assert main(["run", str(other_grid), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "grid: the cube" in err and "another grid" in err
    assert open_cube(tmp_path / "cube.icechunk").snapshot_id == tip


@pytest.mark.slow
def test_a_concurrent_writer_is_retried_without_loss_or_duplication(
    archive, tmp_path, client, monkeypatch
):
    job = write_job(archive, tmp_path, batch=6)
    found = discover_scenes(str(archive.root)).scenes
    rival_scene = found[3]
    real_commit = Cube._commit
    state = {"raced": False}

    def racing_commit(self, session, message, metadata):
        if not state["raced"] and metadata.get("action") == "append_scenes":
            state["raced"] = True
            # Another job stores one of this batch's scenes while this one is committing.
            rival = open_cube(tmp_path / "cube.icechunk")
            placed = scene_on_grid(rival_scene, rival.grid)
            rival.append_scenes([placed], metadata={"job_id": "rival"}, message="rival")
        return real_commit(self, session, message, metadata)

    monkeypatch.setattr(cube_impl.Cube, "_commit", racing_commit)
    report = run_job_file(job, client=client, progress=False, echo=quiet)
    assert state["raced"] and report.conflicts == 1
    assert report.exit_code == 0
    assert report.skipped == [rival_scene.scene_id] and len(report.done) == 5
    cube = open_cube(tmp_path / "cube.icechunk")
    ids = [str(s) for s in cube.to_xarray()["scene_id"].values]
    assert sorted(ids) == sorted(s.scene_id for s in found)
    messages = [h["message"] for h in cube.history()]
    assert "rival" in messages
