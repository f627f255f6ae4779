"""Fault tolerance of ``updm run`` on real processes: killed workers, drivers and schedulers.

Every test starts real ``dask scheduler`` and ``dask worker`` processes (tests/_dask_procs.py)
and runs a job over a small synthetic archive, its driver ``python -m updm_dask.cli run`` in
a process of its own; a re-run that completes a job after the fault runs in this process.
The faults strike while a batch is being computed (the scheduler is seen handing out tasks
after the cube holds at least one committed batch), and each test shows that its fault
happened: the killed process's return code, the scheduler's record of the worker it lost and
of the tasks it had to run again, the nanny's out-of-memory restart, the driver's report.

Whatever happened, the cube must hold only whole committed batches (each stored scene equal
to the one of a clean run, each scene once, every time slot accounted for by one commit),
and after a re-run where one is needed it must equal, scene for scene and chunk for chunk,
the cube of a clean serial run of the same job.

The worker-kill and two-writer cases write to an S3-compatible server (moto) on 127.0.0.1:
the workers write the chunks there themselves, and only an object store makes two
simultaneous commits atomic (see :mod:`updm_dask.cube`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import numpy as np
import psutil
import pytest
import xarray as xr
from _dask_procs import local_dask_cluster

from updm_dask.cube import SCENE_VARIABLES, YEARLY_VARIABLES, open_cube
from updm_dask.demo import make_demo_archive
from updm_dask.errors import CubeError
from updm_dask.jobs.run import open_job_cube, run_job_file
from updm_dask.jobs.spec import load_job_spec

pytestmark = pytest.mark.slow

#: Six scenes (MSS, TM, ETM+, OLI, OLI-2) of 48 x 48 pixels, in batches of two: three
#: append commits and one per-year commit per clean run.
N_SCENES = 6
SIZE = 48
BATCH = 2
N_BATCHES = -(-N_SCENES // BATCH)
#: Spatial chunk edge of the scenes as read (dask config updm.chunks.spatial): four chunks
#: per 30 m scene, so a batch is a few hundred tasks spread over both workers.
CHUNK = 24
#: Upper bound of every wait (seconds). Generous because a loaded machine can take tens of
#: seconds to start Python processes; a healthy run returns as soon as it is done.
WAIT = 300.0
#: Seconds a killed or finished process gets to be reaped.
REAP = 30.0

BUCKET = "updm-faults"


def quiet(_text: str) -> None:
    pass


# --------------------------------------------------------------------------------------
# Fixtures: archive, S3-compatible server, environment, reference cube, shared cluster


@dataclass(frozen=True)
class Environment:
    """What every process of the module sees (also set in this process's environment)."""

    endpoint: str

    def s3(self, name: str) -> str:
        return f"s3://{BUCKET}/{name}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def environment() -> Iterator[Environment]:
    """A moto S3 server on 127.0.0.1, and the environment of every process of the module.

    The drivers, schedulers and workers started by the tests inherit it: fake credentials
    and the endpoint of the server, and the job's spatial chunks (DASK_UPDM__...). This
    process gets the same through dask.config, which read its environment long ago.
    """
    # moto[server] and boto3 are test requirements: their absence is an error, not a skip.
    import boto3
    from moto.server import ThreadedMotoServer

    # The server's request log would bury the test output.
    werkzeug = logging.getLogger("werkzeug")
    werkzeug_level = werkzeug.level
    werkzeug.setLevel(logging.ERROR)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    variables = {
        "AWS_ACCESS_KEY_ID": "testing-key",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "DASK_UPDM__CHUNKS__SPATIAL": str(CHUNK),
    }
    try:
        with (
            pytest.MonkeyPatch.context() as mp,
            dask.config.set({"updm.chunks.spatial": CHUNK}),
        ):
            for key, value in variables.items():
                mp.setenv(key, value)
            for key in ("AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
                mp.delenv(key, raising=False)
            # An address in the environment would win over the jobs' --scheduler.
            mp.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
            boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
                Bucket=BUCKET
            )
            yield Environment(endpoint)
    finally:
        server.stop()
        werkzeug.setLevel(werkzeug_level)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return make_demo_archive(tmp_path_factory.mktemp("archive"), n_scenes=N_SCENES, size=SIZE)


def write_job(archive, folder: Path, cube: str | Path, *, batch: int = BATCH) -> Path:
    """The demo's job spec over ``archive`` into ``cube``, in batches of ``batch`` scenes."""
    folder.mkdir(parents=True, exist_ok=True)
    job = archive.write_job_spec(folder / "job.toml", cube)
    text, n = re.subn(r"(\[batch\]\nsize = )\d+", rf"\g<1>{batch}", job.read_text())
    assert n == 1, "the demo's job spec has no [batch] size"
    job.write_text(text)
    return job


@dataclass
class CubeContents:
    """A cube read whole: each scene's slot by scene id, and the per-year layers."""

    scene_ids: list[str]
    scenes: dict[str, xr.Dataset]
    yearly: xr.Dataset


def read_cube(location: str | Path) -> CubeContents:
    """Everything a cube holds, loaded."""
    ds = open_cube(location).to_xarray().load()
    ids = [str(s) for s in ds["scene_id"].values]
    slots = ds[list(SCENE_VARIABLES)]
    return CubeContents(
        scene_ids=ids,
        scenes={sid: slots.isel(time=i) for i, sid in enumerate(ids)},
        yearly=ds[[n for n in YEARLY_VARIABLES if n in ds]],
    )


@pytest.fixture(scope="module")
def reference(archive, environment, tmp_path_factory) -> CubeContents:
    """The cube of a clean serial run: one in-process worker thread, all scenes in one batch."""
    from distributed import Client, LocalCluster

    folder = tmp_path_factory.mktemp("reference")
    job = write_job(archive, folder, folder / "cube.icechunk", batch=N_SCENES)
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        report = run_job_file(job, client=client, progress=False, echo=quiet)
    assert report.exit_code == 0 and len(report.done) == N_SCENES
    contents = read_cube(folder / "cube.icechunk")
    assert sorted(contents.scene_ids) == sorted(report.done)
    return contents


@pytest.fixture(scope="module")
def cluster(environment, tmp_path_factory):
    """A scheduler and two workers (no nanny) that no test harms."""
    with local_dask_cluster(tmp_path_factory.mktemp("shared-cluster"), n_workers=2) as c:
        slow_down_blocks(c.address)
        yield c
        kill_workers(c)


def kill_workers(cluster) -> None:
    """SIGKILL the workers still running, once a test needs nothing more from them.

    A graceful stop takes seconds on a loaded machine, and a worker whose scheduler is gone
    waits for it before it stops.
    """
    for i, proc in enumerate(cluster.worker_procs):
        if proc.poll() is None:
            cluster.kill_worker(i)


# --------------------------------------------------------------------------------------
# Processes and waiting


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(nothing)"


class Driver:
    """``updm run JOB --scheduler ADDRESS --no-progress`` in its own process (group)."""

    def __init__(self, job: Path, address: str, name: str) -> None:
        self.name = name
        self.out = job.parent / f"{name}.stdout"
        self.err = job.parent / f"{name}.stderr"
        args = [sys.executable, "-m", "updm_dask.cli", "run", str(job)]
        args += ["--scheduler", address, "--no-progress"]
        # Output goes to files, never pipes: a pipe nobody reads would block the driver.
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=job.parent,
                start_new_session=True,
            )

    @property
    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def describe(self) -> str:
        return (
            f"driver {self.name} (exit {self.proc.poll()})\n--- stdout:\n{_tail(self.out)}"
            f"\n--- stderr:\n{_tail(self.err)}"
        )

    def kill(self) -> int:
        """SIGKILL the driver (its whole process group) and reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.wait(timeout=REAP)

    def wait(self, timeout: float = WAIT) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.name} did not finish within {timeout} s\n{self.describe()}"
            ) from None

    def __enter__(self) -> Driver:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.kill()


def wait_for(
    condition: Callable[[], Any],
    what: str,
    *,
    timeout: float = WAIT,
    drivers: tuple[Driver, ...] = (),
    interval: float = 0.15,
) -> Any:
    """Poll ``condition`` until it returns something true, and return that.

    Fails with ``what`` on timeout, or as soon as one of ``drivers`` exits first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        for driver in drivers:
            if driver.proc.poll() is not None:
                raise AssertionError(f"{driver.name} exited before {what}\n{driver.describe()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@contextlib.contextmanager
def observer(address: str):
    """A client of this process that only watches the scheduler (it submits nothing)."""
    from distributed import Client

    client = Client(address, timeout=60, set_as_default=False)
    try:
        yield client
    finally:
        client.close(timeout=10)


def busy_workers(client, workers: list[str] | None = None) -> dict[str, list]:
    """Workers the scheduler has handed tasks to, and those tasks."""
    return {w: list(keys) for w, keys in client.processing(workers=workers).items() if keys}


#: Seconds added to every block kernel on the worker processes these tests start.
BLOCK_DELAY = 0.3


def slow_down_blocks(address: str) -> None:
    """Make every block kernel on the workers of the cluster at ``address`` BLOCK_DELAY
    seconds longer (the numbers it computes are unchanged).

    A batch of the tiny demo scenes is a few fused tasks of milliseconds: without this, the
    moments the tests act in (a batch computing, a task on a given worker) could pass
    between two polls. Workers started later (a nanny's replacement) are not slowed.
    """
    delay = BLOCK_DELAY

    def install() -> None:
        import time

        from updm_dask import pipeline

        kernel = pipeline.process_block
        if getattr(kernel, "slowed_by_tests", False):
            return

        def slowed(*args, **kwargs):
            time.sleep(delay)
            return kernel(*args, **kwargs)

        slowed.slowed_by_tests = True
        pipeline.process_block = slowed

    with observer(address) as obs:
        obs.run(install)


def removal_events(client, address: str) -> list[dict]:
    """The scheduler's records of the worker at ``address`` leaving."""
    return [e for _, e in client.get_events(address) if e.get("action") == "remove-worker"]


# --------------------------------------------------------------------------------------
# Reading the cube


def append_commits(location: str | Path) -> list[dict]:
    """The cube's append commits, oldest first; none while the cube does not exist yet."""
    try:
        cube = open_cube(location)
    except CubeError:
        return []
    return [h for h in reversed(cube.history()) if h["metadata"].get("action") == "append_scenes"]


class CommitCounter:
    """Counts a cube's append commits while a job writes it, cheaply enough to poll.

    The cube is opened once it exists, then only its branch tip is read until it moves:
    polling must not slow down the object store the job writes to.
    """

    def __init__(self, location: str | Path) -> None:
        self.location = location
        self.cube = None
        self.tip = None
        self.count = 0

    def __call__(self) -> int:
        if self.cube is None:
            try:
                self.cube = open_cube(self.location)
            except CubeError:
                return 0
        tip = self.cube.snapshot_id
        if tip != self.tip:
            self.tip = tip
            self.count = sum(
                h["metadata"].get("action") == "append_scenes" for h in self.cube.history()
            )
        return self.count


def check_whole_batches(location: str | Path, reference: CubeContents) -> CubeContents:
    """Assert that the cube holds whole committed batches only; return what it holds.

    Each scene once; every time slot accounted for by exactly one append commit; each stored
    scene, every variable and coordinate, identical to the clean run's.
    """
    contents = read_cube(location)
    ids = contents.scene_ids
    assert len(ids) == len(set(ids)), f"a scene is stored twice: {sorted(ids)}"
    committed: list[str] = []
    for commit in append_commits(location):
        committed += commit["metadata"]["scene_ids"]
    assert sorted(committed) == sorted(ids), (
        f"time slots {sorted(ids)} are not exactly the scenes the append commits stored "
        f"({sorted(committed)})"
    )
    for sid, slot in contents.scenes.items():
        assert sid in reference.scenes, f"{sid} is not a scene of the job"
        xr.testing.assert_identical(slot, reference.scenes[sid])
    return contents


def stored_scenes(location: str | Path, reference: CubeContents) -> set[str]:
    """The ledger of a cube that holds whole committed batches only (see above)."""
    return set(check_whole_batches(location, reference).scenes)


def assert_equals_reference(location: str | Path, reference: CubeContents) -> None:
    """Every scene of the job exactly once, equal to the clean run's, and the yearly layers."""
    contents = check_whole_batches(location, reference)
    assert set(contents.scenes) == set(reference.scenes)
    xr.testing.assert_identical(contents.yearly, reference.yearly)
    assert open_cube(location).stale_years() == []


def report_line(text: str) -> tuple[int, int, int, int]:
    """(found, processed, skipped, failed) from the report ``updm run`` prints."""
    m = re.search(r"scenes: (\d+) found, (\d+) processed, (\d+) skipped.*?, (\d+) failed", text)
    assert m, f"no scene counts in the report:\n{text}"
    return tuple(int(g) for g in m.groups())  # type: ignore[return-value]


# --------------------------------------------------------------------------------------
# 1. A worker SIGKILLed in the middle of a batch


def test_worker_killed_mid_batch_the_job_completes_on_the_survivor(
    archive, environment, reference, tmp_path
):
    location = environment.s3("worker-killed")
    job = write_job(archive, tmp_path / "job", location)
    with (
        local_dask_cluster(tmp_path / "cluster", n_workers=2) as c,
        observer(c.address) as obs,
    ):
        slow_down_blocks(c.address)
        address_of = {pid: addr for addr, pid in obs.run(os.getpid).items()}
        victim = address_of[c.worker_pids[0]]
        commits = CommitCounter(location)
        with Driver(job, c.address, "driver") as driver:

            def victim_busy_after_a_commit():
                if not 1 <= commits() < N_BATCHES:
                    return None
                return busy_workers(obs, [victim]).get(victim)

            wait_for(
                victim_busy_after_a_commit,
                "the victim worker to run tasks of a batch after the first commit",
                drivers=(driver,),
            )
            c.kill_worker(0)
            commits_before = len(append_commits(location))
            assert c.worker_procs[0].returncode == -signal.SIGKILL
            assert driver.wait() == 0, driver.describe()

        # The scheduler saw the worker die with tasks of the batch in flight, and had them
        # (and any results the dead worker held) computed again by the survivor.
        (event,) = removal_events(obs, victim)
        assert event["expected"] is False
        in_flight, lost = event["processing-tasks"], event["lost-computed-tasks"]
        assert in_flight, "the killed worker was running nothing"
        survivors = obs.scheduler_info(n_workers=-1)["workers"]
        assert list(survivors) == [address_of[c.worker_pids[1]]]
        print(
            f"\nworker kill: {len(in_flight)} task(s) in flight and {len(lost)} result(s) "
            f"lost on the killed worker, recomputed; {commits_before} of {N_BATCHES} batches "
            "committed at the kill"
        )
        kill_workers(c)
    # Batches were committed after the kill, by the one worker left.
    assert len(append_commits(location)) == N_BATCHES > commits_before
    assert report_line(driver.stdout) == (N_SCENES, N_SCENES, 0, 0)
    assert_equals_reference(location, reference)


# --------------------------------------------------------------------------------------
# 2. The job driver SIGKILLed, mid-batch and right after a commit


def test_driver_killed_mid_batch_and_after_a_commit_then_a_rerun_completes(
    archive, cluster, reference, tmp_path
):
    location = tmp_path / "cube.icechunk"
    job = write_job(archive, tmp_path / "job", location)
    with observer(cluster.address) as obs:
        # Run 1: killed while the workers compute a batch, after at least one commit.
        commits = CommitCounter(location)
        with Driver(job, cluster.address, "run1") as run1:

            def computing_after_a_commit():
                if not 1 <= commits() < N_BATCHES:
                    return None
                return busy_workers(obs)

            busy = wait_for(
                computing_after_a_commit,
                "run 1 to compute a batch after its first commit",
                drivers=(run1,),
            )
            assert run1.kill() == -signal.SIGKILL
        in_flight = sum(len(keys) for keys in busy.values())
        after_run1 = stored_scenes(location, reference)
        assert 0 < len(after_run1) < N_SCENES
        tip = open_cube(location).snapshot_id
        # The scheduler drops the dead driver's work; tasks still running finish, and what
        # they wrote is in no commit: the branch does not move.
        wait_for(lambda: not busy_workers(obs), "the scheduler to drop the dead driver's tasks")
        assert open_cube(location).snapshot_id == tip
        assert stored_scenes(location, reference) == after_run1

        # Run 2: resumes, and is killed as soon as it has committed one more batch.
        n_commits = len(append_commits(location))
        with Driver(job, cluster.address, "run2") as run2:
            wait_for(
                lambda: commits() > n_commits,
                "run 2 to commit a batch",
                drivers=(run2,),
                interval=0.02,
            )
            assert run2.kill() == -signal.SIGKILL
        after_run2 = stored_scenes(location, reference)
        assert after_run1 < after_run2
        assert f"{len(after_run1)} already in" in run2.stderr  # it resumed
        print(
            f"\ndriver kills: run 1 killed with {in_flight} task(s) in flight after storing "
            f"{len(after_run1)} scenes; run 2 killed after storing {len(after_run2)}"
        )

    # Run 3: completes the job, storing only what is missing.
    report = run_job_file(job, scheduler=cluster.address, progress=False, echo=quiet)
    assert report.exit_code == 0
    assert sorted(report.skipped) == sorted(after_run2)
    assert sorted(report.done) == sorted(set(reference.scenes) - after_run2)
    assert_equals_reference(location, reference)


# --------------------------------------------------------------------------------------
# 3. The scheduler killed mid-job


def test_scheduler_killed_mid_job_fails_clearly_and_a_new_scheduler_completes_it(
    archive, cluster, reference, tmp_path
):
    location = tmp_path / "cube.icechunk"
    job = write_job(archive, tmp_path / "job", location)

    with local_dask_cluster(tmp_path / "doomed", n_workers=1) as doomed:
        slow_down_blocks(doomed.address)
        commits = CommitCounter(location)
        with Driver(job, doomed.address, "driver") as driver:
            with observer(doomed.address) as obs:
                # Batch 2: a batch was committed before, one is left after it.
                wait_for(
                    lambda: commits() == 1 and busy_workers(obs),
                    "the job to compute its second batch",
                    drivers=(driver,),
                )
            doomed.kill_scheduler()
            killed_at = time.monotonic()
            assert doomed.scheduler_proc.returncode == -signal.SIGKILL
            code = driver.wait()
            exit_seconds = time.monotonic() - killed_at
        kill_workers(doomed)

    err = driver.stderr
    print(f"\nscheduler kill: driver exit {code} {exit_seconds:.1f} s later; stderr:\n{err}")
    assert code == 2, driver.describe()
    # The job's last word is a clear error; no exception escaped updm_dask's code.
    assert "updm run: error: " in err, driver.describe()
    error = err[err.rindex("updm run: error: ") :]
    m = re.match(
        rf"updm run: error: job updm-demo: batch (\d+) of {N_BATCHES} failed and nothing of it",
        error,
    )
    assert m, driver.describe()
    failed_batch = int(m.group(1))
    assert "scheduler" in error.lower()
    assert error.rstrip().endswith("is as at its last commit; run the job again to resume")
    assert not re.search(r'File "[^"]*updm_dask', err), driver.describe()
    # The cube is as at its last commit: the batches before the failed one, whole.
    batches = [c["metadata"]["batch"] for c in append_commits(location)]
    assert batches == list(range(1, failed_batch))
    stored = stored_scenes(location, reference)
    assert 0 < len(stored) < N_SCENES

    # A new scheduler (another cluster) finishes the job.
    report = run_job_file(job, scheduler=cluster.address, progress=False, echo=quiet)
    assert report.exit_code == 0 and sorted(report.skipped) == sorted(stored)
    assert_equals_reference(location, reference)


# --------------------------------------------------------------------------------------
# 4. A worker out of memory


#: Memory limit of each worker: the nanny restarts a worker above 95 % of it.
MEMORY_LIMIT = 1 << 30


def test_worker_out_of_memory_is_restarted_and_the_job_completes(
    archive, environment, reference, tmp_path
):
    location = tmp_path / "cube.icechunk"
    job = write_job(archive, tmp_path / "job", location)

    def exhaust_memory(dask_worker):
        # Memory the worker holds on top of its work, beyond its limit: the nanny must end
        # the worker process.
        dask_worker.updm_test_ballast = np.ones(MEMORY_LIMIT // 8 + (64 << 20))
        return dask_worker.updm_test_ballast.nbytes

    # One worker: the one the nanny restarts must do the rest of the job.
    with (
        local_dask_cluster(
            tmp_path / "cluster", n_workers=1, memory_limit=str(MEMORY_LIMIT), nanny=True
        ) as c,
        observer(c.address) as obs,
    ):
        slow_down_blocks(c.address)
        ((victim, victim_pid),) = obs.run(os.getpid).items()
        commits = CommitCounter(location)
        with Driver(job, c.address, "driver") as driver:

            def busy_after_a_commit():
                if not 1 <= commits() < N_BATCHES:
                    return None
                return busy_workers(obs)

            wait_for(
                busy_after_a_commit,
                "the worker to run tasks of a batch after the first commit",
                drivers=(driver,),
            )
            obs.run(exhaust_memory, workers=[victim], on_error="return")
            restarts = wait_for(
                lambda: [e for _, e in obs.get_events("worker-restart-memory")],
                "the nanny to restart the worker out of memory",
                drivers=(driver,),
            )
            assert driver.wait() == 0, driver.describe()

        (restart,) = restarts
        assert restart["pid"] == victim_pid and restart["rss"] > 0.95 * MEMORY_LIMIT
        (event,) = removal_events(obs, victim)
        # A new worker process took the place of the one the nanny ended, and did the rest.
        ((_, new_pid),) = obs.run(os.getpid).items()
        assert new_pid != victim_pid and not psutil.pid_exists(victim_pid)
        assert c.worker_procs[0].poll() is None  # the nanny lived on
        assert commits() == N_BATCHES
        print(
            f"\nout of memory: worker pid {victim_pid} at {restart['rss'] / 2**20:.0f} MiB "
            f"of {MEMORY_LIMIT / 2**20:.0f} MiB ended by its nanny, replaced by pid {new_pid}; "
            f"{len(event['processing-tasks'])} task(s) in flight and "
            f"{len(event['lost-computed-tasks'])} result(s) lost, recomputed"
        )
        kill_workers(c)
    assert report_line(driver.stdout) == (N_SCENES, N_SCENES, 0, 0)
    assert_equals_reference(location, reference)


# --------------------------------------------------------------------------------------
# 5. Two jobs writing to one cube at once


def test_two_jobs_writing_one_cube_at_once_lose_and_duplicate_nothing(
    archive, environment, cluster, reference, tmp_path
):
    location = environment.s3("two-writers")
    # Same scenes, batches of different sizes: the jobs race for overlapping scene sets.
    jobs = [
        write_job(archive, tmp_path / "a", location, batch=2),
        write_job(archive, tmp_path / "b", location, batch=3),
    ]
    # The empty cube exists before the jobs start, as in a deployment that runs many jobs
    # into one cube: they race for their batches, not for creating it (see below).
    open_job_cube(load_job_spec(jobs[0]))
    with (
        Driver(jobs[0], cluster.address, "a") as a,
        Driver(jobs[1], cluster.address, "b") as b,
    ):
        codes = {d.name: d.wait() for d in (a, b)}
    drivers = {"a": a, "b": b}
    print(f"\ntwo writers: exit codes {codes}")
    for name, d in drivers.items():
        print(f"--- {name} stdout:\n{d.stdout.strip()}\n--- {name} stderr:\n{d.stderr.strip()}")

    stored = stored_scenes(location, reference)
    conflicts = 0
    for name, code in codes.items():
        d = drivers[name]
        assert code in (0, 2), d.describe()
        if code == 0:
            # A job that says it is done has every scene in the cube: nothing was lost.
            found, processed, skipped, failed = report_line(d.stdout)
            assert (found, failed) == (N_SCENES, 0)
            assert processed + skipped == N_SCENES
            m = re.search(r"write conflicts with other jobs, retried: (\d+)", d.stdout)
            conflicts += int(m.group(1)) if m else 0
        else:
            assert "conflict" in d.stderr or "another writer" in d.stderr, d.describe()
            assert "Traceback" not in d.stderr
    if 0 in codes.values():
        assert stored == set(reference.scenes)
    # Both jobs stored batches of their own, or one had to retry after the other's commit:
    # they did write at once.
    writers = {Path(c["metadata"]["job_spec"]).parent.name for c in append_commits(location)}
    assert writers == {"a", "b"} or conflicts or 2 in codes.values()

    if set(codes.values()) != {0}:
        report = run_job_file(jobs[0], scheduler=cluster.address, progress=False, echo=quiet)
        assert report.exit_code == 0
    assert_equals_reference(location, reference)


# --------------------------------------------------------------------------------------
# 6. Two jobs writing overlapping tiles of one tiled collection at once


def test_two_jobs_on_overlapping_tiles_keep_every_tile_consistent(
    archive, environment, cluster, reference, tmp_path
):
    from updm_dask.cube import open_collection

    location = environment.s3("two-tiled-writers")
    edge = SIZE // 2  # 2 x 2 tiles
    selections = {"a": ["r0c0", "r0c1", "r1c0"], "b": ["r0c1", "r1c0", "r1c1"]}
    jobs = {}
    for name, tiles in selections.items():
        job = write_job(archive, tmp_path / name, location, batch=2 if name == "a" else 3)
        listed = ", ".join(f'"{t}"' for t in tiles)
        job.write_text(job.read_text() + f"\n[tiles]\nedge = {edge}\nselect = [{listed}]\n")
        jobs[name] = job
    with (
        Driver(jobs["a"], cluster.address, "a") as a,
        Driver(jobs["b"], cluster.address, "b") as b,
    ):
        codes = {d.name: d.wait() for d in (a, b)}
    print(f"\ntwo tiled writers: exit codes {codes}")
    for d in (a, b):
        print(f"--- {d.name} stdout:\n{d.stdout.strip()}\n--- {d.name} stderr:\n{d.stderr.strip()}")
        # racing for the tiles they share (creating their cubes, committing batches) is
        # retried: neither job loses a tile to the other
        assert codes[d.name] == 0, d.describe()
        assert "Traceback" not in d.stderr, d.describe()
    # together they did every tile: a run over all of them finds nothing left to store
    full = write_job(archive, tmp_path / "full", location)
    full.write_text(full.read_text() + f"\n[tiles]\nedge = {edge}\n")
    report = run_job_file(full, scheduler=cluster.address, progress=False, echo=quiet)
    assert report.exit_code == 0 and report.done == [], report

    collection = open_collection(location)
    for tile in collection.tiles():
        cube = collection.open_tile(tile)
        ids = [str(s) for s in cube.to_xarray()["scene_id"].values]
        assert len(ids) == len(set(ids)), f"{tile}: a scene is stored twice: {sorted(ids)}"
        committed = [
            sid
            for h in cube.history()
            if h["metadata"].get("action") == "append_scenes"
            for sid in h["metadata"]["scene_ids"]
        ]
        assert sorted(committed) == sorted(ids), f"{tile}: slots and commits differ"
    # every tile together holds what the clean untiled run holds, pixel for pixel
    ds = collection.to_xarray().load()
    order = [str(s) for s in ds["scene_id"].values]
    assert sorted(order) == sorted(reference.scenes)
    for sid in order:
        slot = ds.isel(time=order.index(sid))
        for name in SCENE_VARIABLES:
            np.testing.assert_array_equal(
                slot[name].values, reference.scenes[sid][name].values, err_msg=f"{sid} {name}"
            )
    for name in reference.yearly.data_vars:
        np.testing.assert_array_equal(ds[name].values, reference.yearly[name].values, name)
