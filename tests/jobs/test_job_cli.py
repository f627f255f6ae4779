"""``updm run`` as a user meets it: fast refusals, a quiet terminal, the dashboard link.

Real inputs throughout: the real Landsat scenes of the shared data (one with a band file cut
short), a TCP port on 127.0.0.1 where nothing listens, a FIFO, real ``dask scheduler`` /
``dask worker`` processes (tests/_dask_procs.py), the LocalCluster ``updm run`` starts, and
HTTP requests to the dashboards they serve.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dask
import pytest
from _dask_procs import local_dask_cluster

import updm_dask
from updm_dask.cli import main
from updm_dask.cube import open_cube
from updm_dask.errors import JobSpecError
from updm_dask.jobs.run import run_job_file

PACKAGE_ROOT = str(Path(updm_dask.__file__).resolve().parents[1])
TM_2000 = "LT05_L1TP_167055_20000309_20161214_01_T1"
#: The grid of the Ethiopia crops (examples/ethiopia-167055.toml).
GRID = (
    '[grid]\ncrs = "EPSG:32637"\n'
    "transform = [30.0, 0.0, 589035.0, 0.0, -30.0, 756165.0]\nshape = [101, 101]\n"
)
#: Seconds a refusal may take once the command runs (the 30 s of a client's connection
#: attempts, or a cluster start, would exceed it).
FAST = 5.0
#: Seconds an HTTP request to a dashboard may take.
HTTP_TIMEOUT = 30.0


@pytest.fixture
def no_env_address(monkeypatch):
    """No scheduler address from the environment or dask config (it would win)."""
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    with dask.config.set({"scheduler-address": None}):
        yield


def write_job(folder: Path, inputs: Path | str, grid: str = GRID, extra: str = "") -> Path:
    job = folder / "job.toml"
    job.write_text(
        f'[job]\nname = "cli"\n[inputs]\npaths = ["{inputs}"]\n{extra}'
        f'[cube]\npath = "{folder / "cube.icechunk"}"\n{grid}'
    )
    return job


def closed_port() -> socket.socket:
    """A socket bound to a free 127.0.0.1 port that does not listen: connecting is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def timed_run(argv: list[str]) -> tuple[int, float]:
    start = time.monotonic()
    code = main(argv)
    return code, time.monotonic() - start


# --------------------------------------------------------------------------------------
# Inputs are checked before a cluster starts (issue 15)


def test_an_unreachable_scheduler_fails_in_seconds_and_writes_nothing(
    shared_data, tmp_path, capsys, no_env_address
):
    job = write_job(tmp_path, shared_data / "landsat" / "ethiopia-167055")
    holder = closed_port()
    address = f"tcp://127.0.0.1:{holder.getsockname()[1]}"
    try:
        code, seconds = timed_run(["run", str(job), "--scheduler", address, "--no-progress"])
    finally:
        holder.close()
    err = capsys.readouterr().err
    assert code == 2 and seconds < FAST, (code, seconds, err)
    assert (
        f"updm run: error: cannot reach the Dask scheduler {address} (--scheduler): connection "
        f"refused, nothing listens at 127.0.0.1:{address.rsplit(':', 1)[1]}"
    ) in err
    assert not (tmp_path / "cube.icechunk").exists()


def test_a_scheduler_file_of_a_dead_scheduler_fails_in_seconds(
    shared_data, tmp_path, capsys, no_env_address
):
    job = write_job(tmp_path, shared_data / "landsat" / "ethiopia-167055")
    holder = closed_port()
    address = f"tcp://127.0.0.1:{holder.getsockname()[1]}"
    scheduler_file = tmp_path / "scheduler.json"
    # What `dask scheduler --scheduler-file` leaves behind when the scheduler is gone.
    scheduler_file.write_text(json.dumps({"type": "Scheduler", "id": "x", "address": address}))
    try:
        code, seconds = timed_run(
            ["run", str(job), "--scheduler-file", str(scheduler_file), "--no-progress"]
        )
    finally:
        holder.close()
    err = capsys.readouterr().err
    assert code == 2 and seconds < FAST, (code, seconds, err)
    assert f"cannot reach the Dask scheduler {address} (--scheduler-file {scheduler_file})" in err
    assert "connection refused" in err
    assert not (tmp_path / "cube.icechunk").exists()


def test_a_scheduler_file_that_is_a_fifo_or_not_json_is_refused_unread(
    shared_data, tmp_path, capsys, no_env_address
):
    job = write_job(tmp_path, shared_data / "landsat" / "ethiopia-167055")
    fifo = tmp_path / "scheduler.fifo"
    os.mkfifo(fifo)
    code, seconds = timed_run(["run", str(job), "--scheduler-file", str(fifo), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and seconds < FAST
    assert f"updm run: error: scheduler file {fifo} is not a regular file; refused unopened" in err

    not_json = tmp_path / "scheduler.json"
    not_json.write_text("secret-token = 12345\n")
    assert main(["run", str(job), "--scheduler-file", str(not_json), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"scheduler file {not_json} is not a Dask scheduler file" in err
    assert "secret-token" not in err  # the file's content is never quoted
    assert not (tmp_path / "cube.icechunk").exists()


def test_a_missing_input_path_fails_before_a_cluster_starts(tmp_path, capsys, no_env_address):
    missing = tmp_path / "no-such-folder"
    job = write_job(tmp_path, missing)
    # No --scheduler: before, a LocalCluster was started (and the cube created) first.
    code, seconds = timed_run(["run", str(job), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 2 and seconds < FAST, (code, seconds, captured.err)
    assert f"updm run: error: {missing}: no such file, folder or URL" in captured.err
    assert "local cluster" not in captured.err  # no cluster was started
    assert not (tmp_path / "cube.icechunk").exists()


# --------------------------------------------------------------------------------------
# The grid limit (issue 12)


@pytest.mark.parametrize(
    "grid",
    [
        "[grid]\naoi = [30.0, 0.0, 45.0, 15.0]\nresolution = 30\n",
        '[grid]\ncrs = "EPSG:32637"\ntransform = [30.0, 0.0, 0.0, 0.0, -30.0, 0.0]\n'
        "shape = [40000, 40000]\n",
    ],
    ids=["aoi", "transform-shape"],
)
def test_a_grid_over_the_limit_is_refused_before_anything_happens(
    shared_data, tmp_path, capsys, grid, no_env_address
):
    job = write_job(tmp_path, shared_data / "landsat" / "ethiopia-167055", grid=grid)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, seconds = timed_run(["run", str(job), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and seconds < FAST, (code, seconds, err)
    assert re.search(
        r"updm run: error: .*job.toml: \[grid\] grid.*: [\d,]+ x [\d,]+ = [\d,]+ pixels at 30 m "
        r"is more than the limit of 1,073,741,824 pixels \(updm.limits.grid-pixels\);",
        err,
    ), err
    assert "raise the limit in dask config (e.g. DASK_UPDM__LIMITS__GRID_PIXELS=" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing created
    # The key named is the one that decides: raised, the same spec is accepted.
    with dask.config.set({"updm.limits.grid-pixels": 4_000_000_000}):
        from updm_dask.jobs.spec import load_job_spec

        assert load_job_spec(job).grid.ny * load_job_spec(job).grid.nx > 1_073_741_824


def test_a_grid_from_the_scenes_over_the_limit_is_refused_and_writes_nothing(
    shared_data, tmp_path, no_env_address
):
    job = write_job(
        tmp_path, shared_data / "landsat" / "ethiopia-167055", grid="[grid]\nfrom_scenes = true\n"
    )
    with (
        dask.config.set({"updm.limits.grid-pixels": 100 * 100}),
        pytest.raises(JobSpecError, match=r"\[grid.from_scenes\] grid \(from the scenes\): 101 x"),
    ):
        # No scheduler named: the LocalCluster would start only after the grid is known.
        run_job_file(job, progress=False, echo=lambda _: None)
    assert not (tmp_path / "cube.icechunk").exists()


CONTINENT = (
    '[grid]\ncrs = "EPSG:32637"\ntransform = [30.0, 0.0, 0.0, 0.0, -30.0, 0.0]\n'
    "shape = [200000, 200000]\n"
)


def test_a_tiled_continental_grid_is_held_to_the_tile_limits_not_the_grid_pixels(
    shared_data, tmp_path, capsys, no_env_address
):
    from updm_dask.jobs.spec import load_job_spec

    data = shared_data / "landsat" / "ethiopia-167055"
    # 200,000^2 pixels at 30 m (a continent): refused as one cube, accepted in tiles of
    # 4096 (49 x 49 = 2,401 tiles), whose graph follows a scene and a tile
    single = write_job(tmp_path, data, grid=CONTINENT)
    with pytest.raises(JobSpecError, match=r"\(updm.limits.grid-pixels\).*cut it into tiles"):
        load_job_spec(single)
    tiled = write_job(tmp_path, data, grid=CONTINENT + "[tiles]\nedge = 4096\n")
    assert load_job_spec(tiled).grid.shape == (200_000, 200_000)
    # the key named decides: fewer tiles allowed, the same spec is refused
    with (
        dask.config.set({"updm.limits.tiles": 2_000}),
        pytest.raises(
            JobSpecError,
            match=r"\[grid\] grid: 200,000 x 200,000 pixels at 30 m cut into tiles of 4,096 "
            r"pixels is 49 x 49 = 2,401 tiles, more than the limit of 2,000 tiles "
            r"\(updm.limits.tiles\)",
        ),
    ):
        load_job_spec(tiled)
    # a tile itself is held to updm.limits.grid-pixels
    huge = write_job(tmp_path, data, grid=CONTINENT + "[tiles]\nedge = 40000\n")
    with pytest.raises(
        JobSpecError, match=r"a tile of 40,000 x 40,000 = 1,600,000,000 pixels is more than "
    ):
        load_job_spec(huge)
    # an empty [tiles] table asks for tiles of the default edge (dask config updm.tiles.edge)
    default = write_job(tmp_path, data, grid=CONTINENT + "[tiles]\n")
    spec = load_job_spec(default)
    assert spec.grid.shape == (200_000, 200_000) and spec.tiled and spec.tile_edge is None


def test_a_slip_of_the_resolution_in_a_tiled_job_is_refused_before_anything_happens(
    shared_data, tmp_path, capsys, no_env_address
):
    # 0.03 m for 30 m over 15 x 15 degrees: billions of tiles of 4096
    grid = "[grid]\naoi = [30.0, 0.0, 45.0, 15.0]\nresolution = 0.03\n[tiles]\nedge = 4096\n"
    job = write_job(tmp_path, shared_data / "landsat" / "ethiopia-167055", grid=grid)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, seconds = timed_run(["run", str(job), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and seconds < FAST, (code, seconds, err)
    assert re.search(
        r"updm run: error: .*job.toml: \[grid\] grid \(from aoi\): [\d,]+ x [\d,]+ pixels at "
        r"0.03 m cut into tiles of 4,096 pixels is [\d,]+ x [\d,]+ = [\d,]+ tiles, more than the "
        r"limit of 65,536 tiles \(updm.limits.tiles\); .*DASK_UPDM__LIMITS__TILES=\d+",
        err,
    ), err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing created


# --------------------------------------------------------------------------------------
# A quiet terminal: a failed scene is one line (issue 15)


@pytest.mark.slow
def test_a_failed_scene_is_one_report_line_and_no_worker_traceback(shared_data, tmp_path):
    inputs = tmp_path / "scenes"
    shutil.copytree(shared_data / "landsat" / "ethiopia-167055" / TM_2000, inputs / TM_2000)
    band = inputs / TM_2000 / f"{TM_2000}_B3.TIF"
    band.write_bytes(band.read_bytes()[: band.stat().st_size // 2])  # a download cut short
    job = write_job(tmp_path, inputs)
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS" and "UPDM" not in k}
    # The package the tests import, whatever its location.
    env["PYTHONPATH"] = os.pathsep.join([PACKAGE_ROOT, env.get("PYTHONPATH", "")])
    # `updm run` as a user types it: its own LocalCluster of worker processes.
    done = subprocess.run(
        [sys.executable, "-m", "updm_dask.cli", "run", str(job), "--no-progress"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    out, err = done.stdout, done.stderr
    assert done.returncode == 1, (out, err)
    failed = [line for line in out.splitlines() if line.startswith("    LT5167055")]
    assert len(failed) == 1, out
    assert failed[0].startswith("    LT51670552000069AAA04 [process]: ")
    assert f"{band.name}" in failed[0] and "TIFFReadEncodedStrip" in failed[0]
    both = out + err
    for spam in ("Traceback", "Compute Failed", "distributed.worker", "distributed.", " - ERROR"):
        assert spam not in both, both
    assert err.splitlines()[0].startswith("updm run cli: on local cluster (")


# --------------------------------------------------------------------------------------
# The dashboard (issue 15)


def _get(url: str) -> int:
    # Straight to 127.0.0.1, whatever proxy the environment names.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=HTTP_TIMEOUT) as answer:
        return answer.status


def _dashboard(notes: list[str]) -> str:
    links = [m.group(1) for n in notes if (m := re.search(r"; dashboard (\S+)$", n))]
    assert len(links) == 1, notes
    return links[0]


@pytest.mark.slow
def test_the_local_cluster_dashboard_link_is_printed_and_answers(
    shared_data, tmp_path, no_env_address
):
    job = write_job(
        tmp_path, shared_data / "landsat" / "ethiopia-167055", extra='sensors = ["OLI"]\n'
    )
    notes: list[str] = []
    answers: list[int] = []

    def while_running(_event) -> None:
        # Called before the first batch: the cluster the job started is up.
        if not answers:
            answers.append(_get(_dashboard(notes)))

    report = run_job_file(job, progress=while_running, echo=notes.append)
    assert report.exit_code == 0 and len(report.done) == 1
    link = _dashboard(notes)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/status", link), link
    assert answers == [200]
    assert notes[0].startswith("updm run cli: on local cluster (")


@pytest.mark.slow
def test_a_given_scheduler_dashboard_link_is_printed_and_answers(
    shared_data, tmp_path, capsys, no_env_address
):
    job = write_job(
        tmp_path, shared_data / "landsat" / "ethiopia-167055", extra='sensors = ["OLI"]\n'
    )
    with local_dask_cluster(tmp_path / "dask", n_workers=1, dashboard=True) as cluster:
        code = main(["run", str(job), "--scheduler", cluster.address, "--no-progress"])
        captured = capsys.readouterr()
        assert code == 0, captured
        link = _dashboard(captured.err.splitlines())
        assert link.startswith("http://127.0.0.1:") and _get(link) == 200
    assert open_cube(tmp_path / "cube.icechunk").scene_ids()

    with local_dask_cluster(tmp_path / "dask2", n_workers=1) as cluster:  # --no-dashboard
        notes: list[str] = []
        run_job_file(job, scheduler=cluster.address, progress=False, echo=notes.append)
        assert notes[0].endswith(
            f"on scheduler {cluster.address} (--scheduler), 1 cores; no dashboard"
        )
