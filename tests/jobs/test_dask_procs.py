"""updm_dask.jobs.cluster against real ``dask scheduler`` / ``dask worker`` processes.

The processes are the command-line programs a deployment runs (see tests/_dask_procs.py),
so these tests exercise the same path as ``updm run --scheduler ...`` on a cluster: address
resolution, a computation on remote workers, a worker killed mid-computation, a dead
scheduler, and an address where nothing listens.
"""

from __future__ import annotations

import os
import socket
import time

import dask
import dask.array as da
import psutil
import pytest
from _dask_procs import local_dask_cluster

from updm_dask.jobs.cluster import ClusterError, connect

pytestmark = pytest.mark.slow

#: Seconds to wait for the scheduler to notice a killed worker (it sees the socket close
#: at once; this only bounds a hang).
NOTICE_TIMEOUT = 60.0


def _workers(client) -> dict[str, dict]:
    return client.scheduler_info(n_workers=-1)["workers"]


def _pids(client) -> dict[str, int]:
    """Worker address -> process id, asked of each worker process itself."""
    return client.run(os.getpid)


def _wait_for_worker_count(client, n: int) -> dict[str, dict]:
    deadline = time.monotonic() + NOTICE_TIMEOUT
    while True:
        workers = _workers(client)
        if len(workers) == n or time.monotonic() > deadline:
            return workers
        time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with local_dask_cluster(tmp_path_factory.mktemp("dask-procs"), n_workers=2) as c:
        yield c


@pytest.fixture
def no_env_address(monkeypatch):
    """No scheduler address from the environment or dask config (it would win)."""
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    with dask.config.set({"scheduler-address": None}):
        yield


def _free_port_not_listening() -> socket.socket:
    """A socket bound to a free port that does not listen: connecting is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.mark.parametrize("mechanism", ["scheduler", "env", "scheduler_file"])
def test_connect_mechanisms_see_both_workers(cluster, mechanism, monkeypatch, no_env_address):
    if mechanism == "scheduler":
        info = connect(scheduler=cluster.address, timeout=30)
        expected = f"scheduler {cluster.address} (--scheduler)"
    elif mechanism == "env":
        monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.address)
        info = connect(timeout=30)
        expected = f"scheduler {cluster.address} (DASK_SCHEDULER_ADDRESS)"
    else:
        info = connect(scheduler_file=cluster.scheduler_file, timeout=30)
        expected = f"scheduler {cluster.address} (--scheduler-file {cluster.scheduler_file})"
    try:
        assert info.description == expected
        assert info.cluster is None  # nothing was started locally
        workers = _workers(info.client)
        assert len(workers) == 2
        # The workers are our processes (no nanny: the worker pid is the process we started).
        assert set(workers) == set(_pids(info.client))
        assert sorted(_pids(info.client).values()) == sorted(cluster.worker_pids)
    finally:
        info.close()


def test_flag_wins_over_environment(cluster, monkeypatch, no_env_address):
    # The environment names a dead address; the explicit flag is used and works.
    holder = _free_port_not_listening()
    try:
        monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", f"tcp://127.0.0.1:{holder.getsockname()[1]}")
        info = connect(scheduler=cluster.address, timeout=30)
        try:
            assert info.description.endswith("(--scheduler)")
        finally:
            info.close()
    finally:
        holder.close()


def test_dask_array_runs_on_the_worker_processes(cluster, no_env_address):
    info = connect(scheduler=cluster.address, timeout=30)
    try:
        client = info.client
        # sum(0..9999) = 9999 * 10000 / 2
        total = da.arange(10_000, chunks=1_000).sum().compute()
        assert int(total) == 49_995_000
        # 2-D reduction over 16 chunks: mean of i + j over a 400 x 400 grid is 399.
        x = da.arange(400, chunks=100)
        grid = x[:, None] + x[None, :]
        assert float(grid.mean().compute()) == pytest.approx(399.0)
        assert set(_pids(client).values()) == set(cluster.worker_pids)
    finally:
        info.close()


def test_worker_killed_mid_computation_and_dead_scheduler(tmp_path, no_env_address):
    with local_dask_cluster(tmp_path, n_workers=2) as c:
        info = connect(scheduler_file=c.scheduler_file, timeout=30)
        client = info.client
        try:
            by_pid = {pid: addr for addr, pid in _pids(client).items()}
            victim, survivor = c.worker_pids
            victim_addr = by_pid[victim]

            def slow_square(i):
                import os as _os
                import time as _time

                _time.sleep(0.3)
                return i * i, _os.getpid()

            futures = client.map(slow_square, range(12), pure=False)
            # Kill the victim once it is running (or holding) some of the tasks.
            deadline = time.monotonic() + NOTICE_TIMEOUT
            while not client.processing(workers=[victim_addr]).get(victim_addr):
                assert time.monotonic() < deadline, "no task ever reached the victim worker"
                time.sleep(0.02)
            c.kill_worker(0)
            assert c.worker_procs[0].returncode == -9

            results = client.gather(futures)
            assert [r[0] for r in results] == [i * i for i in range(12)]
            # Results held by the dead worker died with it: every result now comes from the
            # survivor, which recomputed what was lost.
            assert {r[1] for r in results} == {survivor}

            workers = _wait_for_worker_count(client, 1)
            assert victim_addr not in workers
            assert list(_pids(client).items()) == [(by_pid[survivor], survivor)]
        finally:
            info.close()

        c.kill_scheduler()
        assert c.scheduler_proc.returncode == -9
        with pytest.raises(ClusterError, match=c.address.replace(".", r"\.")):
            connect(scheduler=c.address, timeout=3)
        pids = [p.pid for p in c.processes()]
    # Leaving the context reaped every process: none of them exists any more.
    assert not [pid for pid in pids if psutil.pid_exists(pid)]


def test_nothing_listening_gives_cluster_error(no_env_address):
    holder = _free_port_not_listening()
    address = f"tcp://127.0.0.1:{holder.getsockname()[1]}"
    try:
        with pytest.raises(ClusterError, match=r"cannot reach the Dask scheduler") as err:
            connect(scheduler=address, timeout=2)
        assert address in str(err.value)
    finally:
        holder.close()


def test_missing_scheduler_file_gives_cluster_error(tmp_path, no_env_address):
    missing = tmp_path / "nowhere" / "scheduler.json"
    with pytest.raises(ClusterError, match="does not exist") as err:
        connect(scheduler_file=missing, timeout=2)
    assert str(missing) in str(err.value)


def test_helper_rejects_zero_workers(tmp_path):
    with pytest.raises(ValueError, match="n_workers"), local_dask_cluster(tmp_path, n_workers=0):
        pass
