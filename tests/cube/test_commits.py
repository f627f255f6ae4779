"""Commits and storage of a cube: manifest splitting, garbage collection, one writer per
local cube (real processes), and crashes while a cube is being created (real processes
killed with SIGKILL)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import dask
import dask.array as da
import icechunk
import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr
from affine import Affine

import updm_dask.cube._cube as cube_impl
import updm_dask.cube._io as cube_io
from updm_dask.cli.app import main
from updm_dask.cube import GarbageReport, collect_garbage, create_cube, cube_exists, open_cube
from updm_dask.errors import CubeError
from updm_dask.geo import CubeGrid
from updm_dask.jobs.run import open_job_cube, run_job_file
from updm_dask.jobs.spec import load_job_spec

REPO_ROOT = Path(__file__).resolve().parents[2]
NY, NX, CHUNK = 12, 10, 8
GRID = CubeGrid("EPSG:32637", Affine(30, 0, 589035, 0, -30, 756165), (NY, NX))
FLOATS = ("uCw", "uCv", "uCs", "uC4", "residual", "mviupd")
#: Seconds any child process may take before the test gives up on it.
CHILD_TIMEOUT = 120


def make_scene(sid: str, time: str, seed: int) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    data = {
        n: (("y", "x"), da.from_array(rng.random((NY, NX), dtype=np.float32), chunks=CHUNK))
        for n in FLOATS
    }
    data["land_cover"] = (("y", "x"), da.from_array(rng.integers(2, 5, (NY, NX), np.uint8)))
    data["quality"] = (("y", "x"), da.from_array(np.zeros((NY, NX), np.uint8)))
    ds = xr.Dataset(data, coords={"y": GRID.y, "x": GRID.x}).rio.write_crs(GRID.crs)
    ds = ds.assign_coords(scene_id=sid, time=np.datetime64(time, "us"))
    ds.attrs.update({"sensor": "TM", "platform": "LANDSAT_5"})
    return ds


def append(cube, *ids: str, seed: int = 0) -> str:
    scenes = [make_scene(s, f"{2000 + i}-05-01", seed + i) for i, s in enumerate(ids)]
    return cube.append_scenes(scenes, metadata={"job_id": "t"}, message=" ".join(ids))


def values(cube) -> dict[str, np.ndarray]:
    ds = cube.to_xarray().load()
    return {n: ds[n].values.copy() for n in ("uCw", "land_cover", "scene_id")}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def split_sizes(location: Path) -> str:
    cfg = icechunk.Repository.fetch_config(icechunk.local_filesystem_storage(str(location)))
    splitting = cfg.manifest.splitting if cfg is not None and cfg.manifest else None
    return repr(splitting.split_sizes) if splitting is not None else ""


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    env.setdefault("ICECHUNK_LOG", "error")
    return env


# --------------------------------------------------------------------------------------
# 1. Manifest splitting: a commit costs O(batch)


def test_a_new_cube_saves_manifest_splitting_along_time_for_every_opener(tmp_path):
    with dask.config.set({"updm.cube.manifest-split-scenes": 7}):
        create_cube(tmp_path / "c", GRID, chunks=CHUNK).close()
    sizes = split_sizes(tmp_path / "c")
    assert 'dimension_name("^time$"), 7' in sizes
    # a plain opener (no settings of its own) writes with the saved setting
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(tmp_path / "c")))
    assert repr(repo.config.manifest.splitting.split_sizes) == sizes


def _manifest_bytes_per_commit(location: Path, batches: int) -> list[int]:
    cube = create_cube(location, GRID, chunks=CHUNK)
    written = []
    for b in range(batches):
        before = folder_bytes(location / "manifests")
        append(cube, f"S{2 * b}", f"S{2 * b + 1}", seed=b)
        written.append(folder_bytes(location / "manifests") - before)
    cube.close()
    return written


def test_a_commit_writes_manifests_for_its_own_slots_not_for_the_history(tmp_path):
    with dask.config.set({"updm.cube.manifest-split-scenes": 2}):
        written = _manifest_bytes_per_commit(tmp_path / "c", 10)
    # batches of 2 scenes, 2 slots per manifest: every commit writes one new split of each
    # array, whatever the number of scenes before it
    assert written[-1] <= 1.3 * written[1], written
    # ... where Icechunk's default (one manifest per array) rewrites the whole history
    with dask.config.set({"updm.cube.manifest-split-scenes": 10**6}):
        unsplit = _manifest_bytes_per_commit(tmp_path / "u", 10)
    assert unsplit[-1] > 2 * unsplit[1], unsplit


def test_a_cube_made_without_splitting_gets_it_when_opened_for_writing(tmp_path, monkeypatch):
    # a cube as made before manifests were split: Icechunk's default settings saved
    with monkeypatch.context() as m:
        m.setattr(cube_impl, "repository_config", icechunk.RepositoryConfig)
        m.setattr(cube_io, "repository_config", icechunk.RepositoryConfig)
        old = create_cube(tmp_path / "c", GRID, chunks=CHUNK)
        append(old, "S1", "S2")
        old.close()
    assert split_sizes(tmp_path / "c") == ""
    before = values(open_cube(tmp_path / "c"))
    open_cube(tmp_path / "c").scene_ids()  # reading changes nothing
    assert split_sizes(tmp_path / "c") == ""

    with open_cube(tmp_path / "c", for_writing=True) as cube:
        assert 'dimension_name("^time$"), 64' in split_sizes(tmp_path / "c")
        assert_same(values(cube), before)  # the scenes stored before read as they were
        append(cube, "S3", seed=5)
    assert open_cube(tmp_path / "c").scene_ids() == {"S1", "S2", "S3"}


def saved_preload(location: Path) -> str:
    cfg = icechunk.Repository.fetch_config(icechunk.local_filesystem_storage(str(location)))
    preload = cfg.manifest.preload if cfg is not None and cfg.manifest else None
    return repr(preload.preload_if) if preload is not None else ""


def test_no_manifest_is_preloaded_by_new_cubes_nor_by_old_ones_once_written(tmp_path, monkeypatch):
    # Icechunk's default preload matches every manifest reference against its coordinate
    # patterns at each session: with one reference per split, work that grows with history
    create_cube(tmp_path / "new", GRID, chunks=CHUNK).close()
    assert saved_preload(tmp_path / "new") == "icechunk.config.ManifestPreloadCondition.false()"
    with monkeypatch.context() as m:  # a cube made with Icechunk's default settings
        m.setattr(cube_impl, "repository_config", icechunk.RepositoryConfig)
        m.setattr(cube_io, "repository_config", icechunk.RepositoryConfig)
        old = create_cube(tmp_path / "old", GRID, chunks=CHUNK)
        append(old, "S1")
        old.close()
    assert saved_preload(tmp_path / "old") == ""
    with open_cube(tmp_path / "old", for_writing=True) as cube:
        append(cube, "S2", seed=2)
    assert saved_preload(tmp_path / "old") == "icechunk.config.ManifestPreloadCondition.false()"
    assert open_cube(tmp_path / "old").scene_ids() == {"S1", "S2"}


def _windowed(scene: xr.Dataset, rows: int, cols: int) -> xr.Dataset:
    """``scene`` cut to the top-left ``rows`` x ``cols`` of the grid, as it declares."""
    out = scene.isel(y=slice(0, rows), x=slice(0, cols))
    out.attrs["grid_window"] = [0, 0, rows, cols]
    return out


def test_an_append_commit_records_windows_only_for_scenes_not_covering_the_grid(tmp_path):
    # Icechunk keeps every commit's metadata in one record rewritten by each commit: what
    # a commit records per scene is paid again by every later commit
    location = tmp_path / "c"
    cube = create_cube(location, GRID, chunks=CHUNK)
    scenes = [make_scene(f"W{i}", f"2001-05-{i + 1:02d}", i) for i in range(8)]
    scenes[3] = _windowed(scenes[3], 8, 8)
    cube.append_scenes(scenes, metadata={"job_id": "t"}, message="mixed")
    meta = open_cube(location).history()[0]["metadata"]
    assert meta["scene_windows"] == {"W3": [0, 0, 8, 8]}
    assert meta["scene_ids"] == [f"W{i}" for i in range(8)]
    # the per-year rebuild still reads the windowed scene's window, the others cover all
    cube.rebuild_yearly()
    assert cube.stale_years() == []
    ds = cube.to_xarray().load()
    w3 = ds["land_cover"].sel(time=ds["scene_id"] == "W3").values[0]
    assert (w3[8:, :] == 0).all() and (w3[:, 8:] == 0).all()  # no_data
    assert (w3[:8, :8] != 0).all()
    cube.close()


@pytest.mark.slow
def test_the_repository_record_grows_by_less_per_batch_of_whole_grid_scenes(tmp_path):
    # bytes of the record every commit rewrites (Icechunk's ``repo`` object): a batch of
    # whole-grid scenes adds its ids to it, nothing more per scene
    def growth(location: Path, metadata: dict) -> int:
        cube = create_cube(location, GRID, chunks=CHUNK)
        sizes = []
        for b in range(6):
            ids = [f"LT05_L2SP_170052_{2000 + b}{i:04d}_02_T1" for i in range(16)]
            scenes = [make_scene(s, f"{2000 + b}-05-{i + 1:02d}", i) for i, s in enumerate(ids)]
            cube.append_scenes(scenes, metadata=dict(metadata), message="batch")
            sizes.append((location / "repo").stat().st_size)
        cube.close()
        return sizes[-1] - sizes[0]

    ids_only = growth(tmp_path / "a", {"job_id": "t", "scene_windows": {}})
    default = growth(tmp_path / "b", {"job_id": "t"})
    assert default <= 1.1 * ids_only, (default, ids_only)


def test_a_bad_split_size_is_refused_naming_the_setting(tmp_path):
    with (
        dask.config.set({"updm.cube.manifest-split-scenes": 0}),
        pytest.raises(CubeError, match=r"updm.cube.manifest-split-scenes: expected a positive"),
    ):
        create_cube(tmp_path / "c", GRID)
    assert not cube_exists(tmp_path / "c")


# --------------------------------------------------------------------------------------
# 2. Garbage collection


@pytest.fixture
def grown(tmp_path):
    """A cube with a tag on its first batch and two batches after it."""
    location = tmp_path / "cube"
    cube = create_cube(location, GRID, chunks=CHUNK)
    append(cube, "S1")
    cube.create_tag("v1")
    tagged = values(cube)
    append(cube, "S2", seed=2)
    append(cube, "S3", seed=3)
    tip = values(cube)
    cube.close()
    return location, tagged, tip


def test_gc_keeps_the_tip_and_tags_and_frees_the_bytes_of_expired_snapshots(grown):
    location, tagged, tip = grown
    n_commits = len(open_cube(location).history())
    before = folder_bytes(location)
    report = collect_garbage(location, older_than_days=0, keep_tags=True)
    assert isinstance(report, GarbageReport)
    assert report.snapshots_expired >= 1 and report.snapshots_deleted >= 1
    assert report.manifests_deleted >= 1
    assert report.bytes_freed > 0 and report.tags_deleted == []
    after = folder_bytes(location)
    assert after < before and report.bytes_after == after and report.bytes_before == before
    assert_same(values(open_cube(location)), tip)
    assert_same(values(open_cube(location, tag="v1")), tagged)
    assert len(open_cube(location).history()) < n_commits
    # and the cube goes on taking batches
    with open_cube(location, for_writing=True) as cube:
        append(cube, "S4", seed=4)
    assert open_cube(location).scene_ids() == {"S1", "S2", "S3", "S4"}


def test_gc_without_keep_tags_deletes_expired_tags_and_says_so(grown):
    location, _, tip = grown
    report = collect_garbage(location, older_than_days=0)
    assert report.tags_deleted == ["v1"]
    assert "tags deleted (their snapshots expired): v1" in report.format()
    assert_same(values(open_cube(location)), tip)
    with pytest.raises(CubeError, match="v1"):
        open_cube(location, tag="v1")


def test_gc_by_default_keeps_snapshots_younger_than_the_configured_age(grown):
    location, tagged, tip = grown
    n_commits = len(open_cube(location).history())
    report = collect_garbage(location)
    assert report.snapshots_expired == 0 and report.bytes_freed == 0
    assert len(open_cube(location).history()) == n_commits
    assert_same(values(open_cube(location)), tip)
    assert_same(values(open_cube(location, tag="v1")), tagged)


def test_updm_gc_prints_what_it_freed(grown, capsys):
    location, tagged, _ = grown
    assert main(["gc", str(location), "--older-than", "0", "--keep-tags"]) == 0
    out = capsys.readouterr().out
    assert f"cube {location}: snapshots older than " in out
    freed = int(re.search(r"freed: ([\d,]+) bytes", out).group(1).replace(",", ""))
    assert freed > 0
    assert re.search(r"deleted: \d+ snapshot\(s\), \d+ manifest\(s\)", out)
    assert_same(values(open_cube(location, tag="v1")), tagged)


def test_updm_gc_refuses_a_negative_age_and_a_missing_cube(tmp_path, grown, capsys):
    location, _, tip = grown
    assert main(["gc", str(location), "--older-than", "-1"]) == 2
    err = capsys.readouterr().err
    assert "updm gc: error: gc: older_than_days: expected a number of days >= 0, got -1.0" in err
    assert main(["gc", str(tmp_path / "missing")]) == 2
    assert "is not a cube" in capsys.readouterr().err
    assert not (tmp_path / "missing").exists()
    assert_same(values(open_cube(location)), tip)


# --------------------------------------------------------------------------------------
# 4. One writer at a time on a local path (two real processes)

HOLDER = textwrap.dedent(
    """
    import sys
    from updm_dask.cube import open_cube

    cube = open_cube(sys.argv[1], for_writing=True)
    print("locked", flush=True)
    sys.stdin.readline()  # hold the cube until told (or until killed)
    print("released", flush=True)
    """
)


class Holder:
    """A real process that opens a local cube for writing and holds it."""

    def __init__(self, location: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(location)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        line = self._readline()
        assert line == "locked\n", (line, self.proc.stderr.read() if self.proc.poll() else "")

    def _readline(self) -> str:
        import selectors

        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout=CHILD_TIMEOUT):
                self.proc.kill()
                raise AssertionError("the holder process did not answer")
        return self.proc.stdout.readline()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=CHILD_TIMEOUT)
        self.proc.stdout.close()
        self.proc.stderr.close()
        self.proc.stdin.close()

    def __enter__(self) -> Holder:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.kill()


def refused(location: Path, pid: int) -> str:
    host = re.escape(socket.gethostname())
    return (
        rf"^cube {re.escape(repr(str(location)))} is being written by another process "
        rf"\(pid {pid} on host {host} since \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00\); "
        r"local cubes take one writer at a time; use an object store \(s3://\) to share a "
        r"cube between writers$"
    )


def test_a_second_writing_process_is_refused_naming_the_first(tmp_path, capsys):
    location = tmp_path / "cube"
    cube = create_cube(location, GRID, chunks=CHUNK)
    append(cube, "S1")
    cube.close()
    tip = open_cube(location).snapshot_id
    with Holder(location) as holder:
        pattern = refused(location, holder.proc.pid)
        with pytest.raises(CubeError, match=pattern):
            open_cube(location, for_writing=True)
        with pytest.raises(CubeError, match=pattern):
            append(open_cube(location), "S2")
        with pytest.raises(CubeError, match=pattern):
            open_cube(location).rebuild_yearly()
        with pytest.raises(CubeError, match=pattern):
            create_cube(location, GRID, chunks=CHUNK, exist_ok=True)
        with pytest.raises(CubeError, match=pattern):
            collect_garbage(location, older_than_days=0)
        assert main(["gc", str(location), "--older-than", "0"]) == 2
        assert "is being written by another process (pid" in capsys.readouterr().err
        # readers are never refused
        assert open_cube(location).scene_ids() == {"S1"}
        assert open_cube(location).snapshot_id == tip
        holder.kill()  # SIGKILL: the OS releases the lock with the process
    with open_cube(location, for_writing=True) as cube:
        append(cube, "S2", seed=2)
    assert open_cube(location).scene_ids() == {"S1", "S2"}


def test_a_job_on_a_local_cube_another_process_writes_is_refused_at_the_start(tmp_path):
    location = tmp_path / "cube"
    create_cube(location, GRID, chunks=CHUNK).close()
    job = tmp_path / "job.toml"
    job.write_text(
        f'[job]\nname = "second"\n[inputs]\npaths = ["{tmp_path}"]\n[cube]\npath = "{location}"\n'
    )
    with Holder(location) as holder:
        with pytest.raises(CubeError, match=refused(location, holder.proc.pid)):
            run_job_file(job, progress=False, echo=lambda _: None)
        # the lock file records the holder, never more
        record = json.loads((location / ".updm-writer.lock").read_text())
        assert record["pid"] == holder.proc.pid


def test_the_writer_lock_is_given_back_by_close_and_by_dropping_the_view(tmp_path):
    location = tmp_path / "cube"
    cube = create_cube(location, GRID, chunks=CHUNK)
    cube.close()
    with Holder(location) as holder:
        holder.kill()
    cube = open_cube(location, for_writing=True)
    del cube  # dropped without close(): its share goes back
    with Holder(location) as holder:
        holder.proc.stdin.write("\n")
        holder.proc.stdin.flush()
        assert holder._readline() == "released\n"
        assert holder.proc.wait(timeout=CHILD_TIMEOUT) == 0


# --------------------------------------------------------------------------------------
# 5. Crashes while a cube is being created (real processes killed by SIGKILL)

CREATOR = textwrap.dedent(
    """
    import os, signal, sys
    import icechunk
    import updm_dask.cube._cube as cube_impl
    from updm_dask.jobs.run import open_job_cube
    from updm_dask.jobs.spec import load_job_spec

    job, step = sys.argv[1], sys.argv[2]

    def die(at):
        if at == step:
            os.kill(os.getpid(), signal.SIGKILL)

    real_create = icechunk.Repository.create
    def create(*args, **kwargs):
        repo = real_create(*args, **kwargs)
        die("repository created")
        return repo
    icechunk.Repository.create = create

    real_commit = icechunk.Session.commit
    def commit(self, *args, **kwargs):
        die("before the first commit")
        snap = real_commit(self, *args, **kwargs)
        die("after the first commit")
        return snap
    icechunk.Session.commit = commit

    cube_impl._step = die  # the package's own points, e.g. "locked"
    open_job_cube(load_job_spec(job))
    print("not killed", flush=True)
    """
)


def _job(tmp_path: Path, inputs: Path) -> Path:
    job = tmp_path / "job.toml"
    job.write_text(
        f'[job]\nname = "crash"\n[inputs]\npaths = ["{inputs}"]\n'
        f'[cube]\npath = "{tmp_path / "cube"}"\n'
        '[grid]\ncrs = "EPSG:32637"\n'
        f"transform = [30.0, 0.0, 589035.0, 0.0, -30.0, 756165.0]\nshape = [{NY}, {NX}]\n"
        "[batch]\nsize = 4\n"
    )
    return job


def _kill_creation_at(job: Path, step: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CREATOR, str(job), step],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=CHILD_TIMEOUT,
    )
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr)


@pytest.mark.parametrize(
    "step", ["locked", "repository created", "before the first commit", "after the first commit"]
)
def test_a_kill_while_the_cube_is_created_leaves_a_cube_the_next_run_completes(tmp_path, step):
    job = _job(tmp_path, tmp_path)
    _kill_creation_at(job, step)
    assert (tmp_path / "cube").is_dir()
    spec = load_job_spec(job)
    cube = open_job_cube(spec)  # what the next run does first
    assert cube.grid == spec.grid and cube.scene_ids() == set()
    append(cube, "S1")  # and it takes scenes (a synthetic one: only the grid matters)
    cube.close()
    assert open_cube(tmp_path / "cube").scene_ids() == {"S1"}


def _initial_files(tmp_path: Path) -> dict[str, bytes]:
    src = tmp_path / "src"
    icechunk.Repository.create(icechunk.local_filesystem_storage(str(src)))
    return {str(p.relative_to(src)): p.read_bytes() for p in sorted(src.rglob("*")) if p.is_file()}


# What a kill inside Icechunk's Repository.create leaves, in the order it writes (each file
# through a NAME#1 temporary renamed into place): the first snapshot, its transaction log,
# then the repository record that makes the folder a repository.
PARTIAL_CREATES = [
    {"snapshots/1CECHNKREP0F1RSTCMT0#1": "snapshots/1CECHNKREP0F1RSTCMT0"},
    {"snapshots/1CECHNKREP0F1RSTCMT0": None},
    {
        "snapshots/1CECHNKREP0F1RSTCMT0": None,
        "transactions/1CECHNKREP0F1RSTCMT0#1": "transactions/1CECHNKREP0F1RSTCMT0",
    },
    {"snapshots/1CECHNKREP0F1RSTCMT0": None, "transactions/1CECHNKREP0F1RSTCMT0": None},
    {
        "snapshots/1CECHNKREP0F1RSTCMT0": None,
        "transactions/1CECHNKREP0F1RSTCMT0": None,
        "repo#1": "repo",
    },
]


@pytest.mark.parametrize("leftover", PARTIAL_CREATES, ids=lambda d: "+".join(d))
def test_what_an_interrupted_repository_create_leaves_is_cleared_by_the_next_run(
    tmp_path, leftover
):
    files = _initial_files(tmp_path)
    target = tmp_path / "cube"
    for name, source in leftover.items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_bytes(files[source or name][: 7 if "#" in name else None])
    assert not cube_exists(target)
    cube = open_job_cube(load_job_spec(_job(tmp_path, tmp_path)))
    assert cube.scene_ids() == set() and cube.grid == GRID
    cube.close()


def test_a_folder_with_anything_else_is_refused_and_left_untouched(tmp_path):
    files = _initial_files(tmp_path)
    target = tmp_path / "cube"
    (target / "snapshots").mkdir(parents=True)
    (target / "snapshots" / "1CECHNKREP0F1RSTCMT0").write_bytes(
        files["snapshots/1CECHNKREP0F1RSTCMT0"]
    )
    (target / "notes.txt").write_text("mine")
    with pytest.raises(CubeError, match="is a non-empty directory that is not a cube"):
        open_job_cube(load_job_spec(_job(tmp_path, tmp_path)))
    assert (target / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt", "snapshots"]
    assert (target / "snapshots" / "1CECHNKREP0F1RSTCMT0").is_file()


def test_opening_an_interrupted_cube_says_how_to_complete_it(tmp_path):
    job = _job(tmp_path, tmp_path)
    _kill_creation_at(job, "repository created")
    with pytest.raises(CubeError, match="creation was interrupted; run the job again"):
        open_cube(tmp_path / "cube")


@pytest.mark.slow
def test_a_job_killed_while_creating_its_cube_completes_when_run_again(tmp_path, shared_data):
    scene = shared_data / "landsat" / "ethiopia-167055" / "LT05_L1TP_167055_20000309_20161214_01_T1"
    job = _job(tmp_path, scene)
    _kill_creation_at(job, "before the first commit")
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        report = run_job_file(job, client=client, progress=False, echo=lambda _: None)
    assert report.exit_code == 0, report.format()
    cube = open_cube(tmp_path / "cube")
    assert len(cube.scene_ids()) == 1
    assert cube.stale_years() == []


# --------------------------------------------------------------------------------------
# 3. The commits benchmark runs (its figures come from benchmarks/bench_commits.py)


@pytest.mark.slow
def test_the_commits_benchmark_measures_both_modes(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO_ROOT / "benchmarks"))
    import bench_commits

    try:
        records = {on: bench_commits.grow(tmp_path / str(on), 100, on) for on in (False, True)}
    finally:
        for name in ("bench_commits", "_common"):
            sys.modules.pop(name, None)
    for recs in records.values():
        assert [r["scenes"] for r in recs] == [100]
        assert recs[0]["commit_s"] > 0 and recs[0]["manifest_on_disk"] > 0
    # the "off" cube really is unsplit and the "on" one split
    assert split_sizes(tmp_path / "False") == ""
    assert 'dimension_name("^time$"), 64' in split_sizes(tmp_path / "True")
