"""The one place that builds a Dask client.

Address resolution order (the first that is set wins), so the same command works on a
laptop, a Kubernetes DaskJob and an HPC allocation:

1. an explicit ``scheduler`` address (``--scheduler tcp://host:8786``);
2. ``DASK_SCHEDULER_ADDRESS`` in the environment, or ``scheduler-address`` in dask.config;
3. an explicit ``scheduler_file`` (``--scheduler-file``, as written by ``dask scheduler``);
4. otherwise a :class:`distributed.LocalCluster` sized to the machine.

Whatever was used is reported in :attr:`ClientInfo.description`, and the package versions
on the client, scheduler and workers are checked so that a mismatched cluster fails early.

A named scheduler is checked first with one plain TCP connection
(:func:`check_scheduler`, bounded by dask config ``updm.cluster.connect-timeout``): a closed
port or an unknown host fails at once, where a ``distributed.Client`` would retry for its
whole timeout (30 s). A LocalCluster gets a dashboard (``updm.cluster.dashboard-address``;
:attr:`ClientInfo.dashboard` is its link) and shows its scheduler's and workers' log
messages from ``updm.cluster.worker-log-level`` up only: a failed task is the job's to
report, in one line, not a traceback on the terminal.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

import dask.config

from .. import config
from ..errors import UpdmError
from ..messages import printable

__all__ = ["ClientInfo", "ClusterError", "check_scheduler", "connect", "dashboard_link"]


class ClusterError(UpdmError):
    """The Dask scheduler cannot be reached, or the cluster's packages do not match."""


@dataclass
class ClientInfo:
    """A connected client and how it was found."""

    client: object
    description: str
    cluster: object | None = None
    #: Link of the scheduler's dashboard, or None when it has none (or it is not known).
    dashboard: str | None = None

    def close(self) -> None:
        """Close the client (and the local cluster if this module started one)."""
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


def dashboard_link(client) -> str | None:
    """The link of the dashboard of ``client``'s scheduler, or None when it has none.

    A scheduler started without its dashboard (``dask scheduler --no-dashboard``, or without
    bokeh) still serves HTTP (health, metrics) where the dashboard would be; one HEAD request
    (bounded by ``updm.cluster.connect-timeout``) tells them apart: a 404 means no
    dashboard. When the request cannot be made (e.g. the link goes through a proxy this
    machine cannot reach), the link is returned as the scheduler gives it.

    Parameters
    ----------
    client : distributed.Client

    Returns
    -------
    str or None
        E.g. ``"http://127.0.0.1:8787/status"``.
    """
    try:
        link = client.dashboard_link
    except Exception:  # no HTTP service on the scheduler, or it cannot answer
        return None
    if not link:
        return None
    import urllib.error
    import urllib.request

    timeout = float(config.get("cluster.connect-timeout"))
    # Straight to the scheduler, as a browser beside it would go: no proxy of the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(link, method="HEAD"), timeout=timeout):
            pass
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
    except (OSError, ValueError):
        pass  # not checked from here; the scheduler's word stands
    return link


#: Bytes a scheduler file may have: ``dask scheduler`` writes a few hundred.
_SCHEDULER_FILE_BYTES = 1 << 20


def _scheduler_file_address(path: Path) -> str:
    """The address in a scheduler file, checked without hanging or quoting the file."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ClusterError(f"scheduler file {path} does not exist") from None
    except OSError as exc:
        raise ClusterError(f"scheduler file {path} cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        # Never opened: reading a FIFO would wait for a writer for ever.
        raise ClusterError(f"scheduler file {path} is not a regular file; refused unopened")
    try:
        with path.open("rb") as f:
            raw = f.read(_SCHEDULER_FILE_BYTES + 1)
    except OSError as exc:
        raise ClusterError(f"scheduler file {path} cannot be read: {exc.strerror}") from None
    try:
        if len(raw) > _SCHEDULER_FILE_BYTES:
            raise ValueError
        address = json.loads(raw).get("address")
        if not isinstance(address, str) or not address:
            raise ValueError
    except (ValueError, AttributeError, RecursionError):
        raise ClusterError(
            f"scheduler file {path} is not a Dask scheduler file (expected the JSON "
            '`dask scheduler --scheduler-file` writes, with an "address")'
        ) from None
    return address


def _probe(address: str, how: str) -> None:
    """Open and close one TCP connection to ``address``; ClusterError when nothing answers."""
    from distributed.comm.addressing import parse_address, parse_host_port

    shown_address = printable(address)
    prefix = f"cannot reach the Dask scheduler {shown_address} ({how})"
    try:
        protocol, location = parse_address(address)
        if protocol not in ("tcp", "tls"):
            return  # inproc://, ucx://...: no plain TCP to try; the client's own connect decides
        host, port = parse_host_port(location, default_port=8786)
    except (ValueError, TypeError):
        raise ClusterError(
            f"{prefix}: not a scheduler address; expected e.g. tcp://127.0.0.1:8786"
        ) from None
    timeout = float(config.get("cluster.connect-timeout"))
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except ConnectionRefusedError:
        raise ClusterError(
            f"{prefix}: connection refused, nothing listens at {host}:{port}; start the "
            "scheduler or check the address"
        ) from None
    except socket.gaierror as exc:
        raise ClusterError(f"{prefix}: unknown host {host!r} ({exc.strerror})") from None
    except TimeoutError:
        raise ClusterError(
            f"{prefix}: no answer from {host}:{port} within {timeout:g} s "
            "(updm.cluster.connect-timeout)"
        ) from None
    except (OSError, OverflowError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ClusterError(f"{prefix}: {reason}") from None


def _named_scheduler(
    scheduler: str | None, scheduler_file: str | os.PathLike | None
) -> tuple[str, str] | None:
    """(address, how it was named) in :func:`connect`'s order, or None for a LocalCluster."""
    env_address = os.environ.get("DASK_SCHEDULER_ADDRESS") or dask.config.get(
        "scheduler-address", default=None
    )
    if scheduler:
        return scheduler, "--scheduler"
    if env_address:
        return env_address, "DASK_SCHEDULER_ADDRESS"
    if scheduler_file:
        path = Path(scheduler_file)
        return _scheduler_file_address(path), f"--scheduler-file {path}"
    return None


def check_scheduler(
    scheduler: str | None = None, scheduler_file: str | os.PathLike | None = None
) -> None:
    """Check, in seconds, that the scheduler :func:`connect` would use answers.

    One TCP connection, bounded by dask config ``updm.cluster.connect-timeout``; nothing
    when :func:`connect` would start a LocalCluster. ``updm run`` calls it before anything
    else happens, so a wrong address costs seconds, not a cube and a 30 s wait.

    Parameters
    ----------
    scheduler, scheduler_file
        As for :func:`connect` (``DASK_SCHEDULER_ADDRESS`` is taken into account too).

    Raises
    ------
    ClusterError
        The scheduler file is missing, not a regular file or not a scheduler file; the
        address is malformed, its host unknown, its port closed, or it does not answer in
        time. The message names the address and where it came from.
    """
    named = _named_scheduler(scheduler, scheduler_file)
    if named is not None:
        _probe(*named)


def _log_level() -> int:
    name = str(config.get("cluster.worker-log-level")).upper()
    level = logging.getLevelName(name)
    if not isinstance(level, int):
        raise ClusterError(
            f"dask config updm.cluster.worker-log-level is {name.lower()!r}; expected debug, "
            "info, warning, error or critical"
        )
    return level


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
    check_scheduler(scheduler, scheduler_file)
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
                dashboard_address=config.get("cluster.dashboard-address"),
                silence_logs=_log_level(),
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
    info.dashboard = dashboard_link(info.client)
    _check_versions(info.client)
    return info
