"""Real ``dask scheduler`` / ``dask worker`` processes on 127.0.0.1 for tests.

:func:`local_dask_cluster` starts the same command-line programs a deployment runs (the
``dask`` executable of the running interpreter's environment), with a scheduler file in the
test's temporary directory and ports chosen by the operating system, and waits until every
worker has registered. Tests get the process ids, so they can SIGKILL a worker or the
scheduler and watch what the rest of the system does. On exit every process still running is
terminated, then killed, and reaped: nothing is left behind, not even a zombie.

Each process is the leader of its own process group, so a worker started with a nanny is
signalled together with the worker process the nanny spawned.

No tests live here; ``tests/test_dask_procs.py`` uses it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LocalDaskCluster", "dask_command", "local_dask_cluster"]

#: Seconds to wait for the scheduler file and for all workers to register. Generous, because
#: shared CI machines can take many seconds to import dask in a fresh process; a healthy
#: start returns as soon as it is complete.
START_TIMEOUT = 120.0
#: Seconds a process gets to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 15.0


def dask_command() -> list[str]:
    """The ``dask`` command of the running interpreter's environment.

    The console script next to :data:`sys.executable` when there is one (a virtual
    environment's ``bin/``), else ``python -m dask``, which runs the same entry point.
    """
    script = Path(sys.executable).with_name("dask")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "dask"]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class LocalDaskCluster:
    """A running scheduler and its workers (see :func:`local_dask_cluster`)."""

    scheduler_file: Path
    log_dir: Path
    scheduler_proc: subprocess.Popen
    worker_procs: list[subprocess.Popen] = field(default_factory=list)
    address: str = ""

    @property
    def scheduler_pid(self) -> int:
        """Process id of the scheduler."""
        return self.scheduler_proc.pid

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the ``dask worker`` commands, in start order."""
        return [p.pid for p in self.worker_procs]

    def kill_worker(self, i: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (default SIGKILL) to worker ``i`` and reap it."""
        _signal_group(self.worker_procs[i], sig)
        self.worker_procs[i].wait(timeout=STOP_TIMEOUT)

    def kill_scheduler(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (default SIGKILL) to the scheduler and reap it."""
        _signal_group(self.scheduler_proc, sig)
        self.scheduler_proc.wait(timeout=STOP_TIMEOUT)

    def processes(self) -> list[subprocess.Popen]:
        """Every process started: workers first, then the scheduler."""
        return [*self.worker_procs, self.scheduler_proc]


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    # Each process leads its own group (start_new_session): signalling the group reaches a
    # nanny's worker process too. A group that is already gone is fine.
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _stop(procs: Sequence[subprocess.Popen]) -> None:
    """Terminate, then kill, then reap each process in order (no zombies are left).

    Callers pass workers before the scheduler: a worker told to stop says goodbye to its
    scheduler, which must still be there to answer or the worker waits for a timeout.
    """
    for proc in procs:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(timeout=STOP_TIMEOUT)
        # A SIGTERM'd nanny may leave its worker process in the group; make sure of it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def _spawn(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    # Output goes to a file, never a pipe: a pipe nobody reads would block the process.
    with log.open("wb") as out:
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


@contextlib.contextmanager
def local_dask_cluster(
    tmp_path: os.PathLike | str,
    n_workers: int = 2,
    memory_limit: str | None = None,
    nthreads: int = 1,
    *,
    nanny: bool = False,
    dashboard: bool = False,
    timeout: float = START_TIMEOUT,
    env: Mapping[str, str] | None = None,
) -> Iterator[LocalDaskCluster]:
    """Start a real scheduler and ``n_workers`` worker processes on 127.0.0.1.

    Parameters
    ----------
    tmp_path
        Folder for the scheduler file and the processes' logs.
    n_workers
        Number of ``dask worker`` processes (one worker each).
    memory_limit
        ``--memory-limit`` of each worker (e.g. ``"1GiB"``); dask's default when ``None``.
    nthreads
        Threads per worker.
    dashboard
        Give the scheduler a dashboard on a free 127.0.0.1 port (off by default).
    nanny
        Run each worker under a nanny. Off by default, so that :meth:`~LocalDaskCluster.
        kill_worker` removes a worker for good (a nanny would start a new one).
    timeout
        Seconds to wait for the scheduler and the workers.
    env
        Extra environment variables of every process (e.g. ``DASK_DISTRIBUTED__...``
        settings, or credentials of an object store the workers write to), on top of the
        test's own environment.

    Yields
    ------
    LocalDaskCluster
        With ``address`` and ``scheduler_file`` set and every worker registered.

    Raises
    ------
    RuntimeError
        When a process exits during start-up or the cluster is not complete in time; the
        message carries the end of the process's log.
    """
    from distributed import Client

    if n_workers < 1:
        raise ValueError(f"n_workers must be at least 1, got {n_workers}")
    base = Path(tmp_path)
    base.mkdir(parents=True, exist_ok=True)
    scheduler_file = base / "scheduler.json"
    scheduler_file.unlink(missing_ok=True)
    # The processes must not find a scheduler address of the test's environment: the
    # workers are told theirs through the scheduler file.
    proc_env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    proc_env.update(env or {})
    proc_env["PYTHONUNBUFFERED"] = "1"
    dask = dask_command()

    scheduler_log = base / "scheduler.log"
    scheduler = _spawn(
        [
            *dask,
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",  # the OS picks a free port; the scheduler file tells it
            *(["--dashboard-address", "127.0.0.1:0"] if dashboard else ["--no-dashboard"]),
            "--scheduler-file",
            str(scheduler_file),
        ],
        scheduler_log,
        proc_env,
    )
    cluster = LocalDaskCluster(
        scheduler_file=scheduler_file, log_dir=base, scheduler_proc=scheduler
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if scheduler.poll() is not None:
                raise RuntimeError(
                    f"dask scheduler exited with {scheduler.returncode}:\n{_tail(scheduler_log)}"
                )
            if scheduler_file.is_file():
                with contextlib.suppress(json.JSONDecodeError, OSError):
                    cluster.address = json.loads(scheduler_file.read_text())["address"]
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"no scheduler file after {timeout} s:\n{_tail(scheduler_log)}")
            time.sleep(0.05)

        for i in range(n_workers):
            args = [
                *dask,
                "worker",
                "--scheduler-file",
                str(scheduler_file),
                "--host",
                "127.0.0.1",
                "--nthreads",
                str(nthreads),
                "--name",
                f"worker-{i}",
                "--no-dashboard",
                "--nanny" if nanny else "--no-nanny",
                "--local-directory",
                str(base / f"worker-{i}"),
            ]
            if memory_limit is not None:
                args += ["--memory-limit", str(memory_limit)]
            cluster.worker_procs.append(_spawn(args, base / f"worker-{i}.log", proc_env))

        with Client(scheduler_file=str(scheduler_file), timeout=timeout) as client:
            remaining = max(1.0, deadline - time.monotonic())
            try:
                client.wait_for_workers(n_workers, timeout=remaining)
            except TimeoutError:
                logs = "\n".join(
                    f"--- worker-{i} (exit {p.poll()}):\n{_tail(base / f'worker-{i}.log')}"
                    for i, p in enumerate(cluster.worker_procs)
                )
                raise RuntimeError(
                    f"{n_workers} workers did not all register within {timeout} s\n{logs}"
                ) from None
        yield cluster
    finally:
        _stop(cluster.processes())
