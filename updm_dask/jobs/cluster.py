"""The one place that builds a Dask client.

Address resolution order (the first that is set wins), so the same command works on a
laptop, a Kubernetes DaskJob and an HPC allocation:

1. an explicit ``scheduler`` address (``--scheduler tcp://host:8786``);
2. ``DASK_SCHEDULER_ADDRESS`` in the environment, or ``scheduler-address`` in dask.config;
3. an explicit ``scheduler_file`` (``--scheduler-file``, as written by ``dask scheduler``);
4. otherwise a :class:`distributed.LocalCluster` sized to the machine.

Whatever was used is reported in :attr:`ClientInfo.description`, and the package versions
on the client, scheduler and workers are checked so that a mismatched cluster fails early.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import dask.config

from ..errors import UpdmError

__all__ = ["ClientInfo", "ClusterError", "connect"]


class ClusterError(UpdmError):
    """The Dask scheduler cannot be reached, or the cluster's packages do not match."""


@dataclass
class ClientInfo:
    """A connected client and how it was found."""

    client: object
    description: str
    cluster: object | None = None

    def close(self) -> None:
        """Close the client (and the local cluster if this module started one)."""
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


def _check_versions(client) -> None:
    """Fail clearly when workers run another updm_dask, dask or numpy than the client."""
    try:
        versions = client.get_versions(check=False, packages=["updm_dask"])
    except Exception:  # a scheduler that cannot answer is caught by the job itself
        return
    mine = versions.get("client", {}).get("packages", {})
    mismatched = []
    for worker, info in (versions.get("workers") or {}).items():
        theirs = info.get("packages", {})
        for package in ("updm_dask", "dask", "distributed", "numpy"):
            if package in mine and package in theirs and mine[package] != theirs[package]:
                mismatched.append(f"{worker}: {package} {theirs[package]} (client {mine[package]})")
    if mismatched:
        raise ClusterError(
            "workers run different package versions than this client: " + "; ".join(mismatched)
        )


def connect(
    scheduler: str | None = None,
    scheduler_file: str | os.PathLike | None = None,
    *,
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    timeout: float = 30.0,
) -> ClientInfo:
    """Connect to (or start) a Dask cluster following the module's resolution order.

    Parameters
    ----------
    scheduler
        Scheduler address, e.g. ``tcp://127.0.0.1:8786``.
    scheduler_file
        Path of a scheduler file written by ``dask scheduler --scheduler-file``.
    n_workers, threads_per_worker
        Size of the LocalCluster started when no scheduler is named (default: one
        process per core, one thread each... as distributed chooses).
    timeout
        Seconds to wait for the scheduler.

    Returns
    -------
    ClientInfo
    """
    from distributed import Client, LocalCluster

    env_address = os.environ.get("DASK_SCHEDULER_ADDRESS") or dask.config.get(
        "scheduler-address", default=None
    )
    try:
        if scheduler:
            client = Client(scheduler, timeout=timeout)
            info = ClientInfo(client, f"scheduler {scheduler} (--scheduler)")
        elif env_address:
            client = Client(env_address, timeout=timeout)
            info = ClientInfo(client, f"scheduler {env_address} (DASK_SCHEDULER_ADDRESS)")
        elif scheduler_file:
            path = Path(scheduler_file)
            if not path.is_file():
                raise ClusterError(f"scheduler file {path} does not exist")
            client = Client(scheduler_file=str(path), timeout=timeout)
            info = ClientInfo(
                client, f"scheduler {client.scheduler.address} (--scheduler-file {path})"
            )
        else:
            cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=threads_per_worker,
                processes=True,
                dashboard_address=None,
            )
            client = Client(cluster)
            workers = len(cluster.workers)
            description = f"local cluster ({workers} worker processes)"
            info = ClientInfo(client, description, cluster)
    except ClusterError:
        raise
    except (OSError, TimeoutError) as exc:
        target = scheduler or env_address or scheduler_file
        raise ClusterError(f"cannot reach the Dask scheduler {target}: {exc}") from exc
    _check_versions(info.client)
    return info
