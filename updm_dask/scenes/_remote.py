"""Remote reads that cannot hang a job: timeouts on every request, retries with backoff.

Every HTTP(S) request fsspec makes for a location gets a timeout (``updm.io.timeout``,
``updm.io.connect-timeout``); reads are retried with a doubling delay (``updm.io.retries``,
``updm.io.retry-delay``) after timeouts, lost connections and HTTP 408/429/5xx answers, and
then fail with a :class:`RemoteReadError` that says what happened ("timed out after 30 s").
GDAL's own reads of remote rasters get the same settings through :func:`gdal_http_env`.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .. import config
from ..errors import SceneError


class RemoteReadError(SceneError):
    """A remote file could not be read: no answer in time, a lost connection, or an HTTP
    408/429/5xx answer, on every attempt (``updm.io.retries`` + 1)."""


@dataclass(frozen=True)
class RemoteIO:
    """The ``updm.io.*`` settings in force (read anew for every read, so that
    ``dask.config.set`` applies at once)."""

    timeout: float
    connect_timeout: float
    retries: int
    retry_delay: float

    @classmethod
    def current(cls) -> RemoteIO:
        """The settings of dask config ``updm.io``."""
        return cls(
            timeout=float(config.get("io.timeout")),
            connect_timeout=float(config.get("io.connect-timeout")),
            retries=int(config.get("io.retries")),
            retry_delay=float(config.get("io.retry-delay")),
        )


_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")


def _scheme(location: str) -> str:
    found = _SCHEME_RE.match(location)
    return found.group(1).lower() if found else ""


def requester_pays() -> bool:
    """True when S3 reads must ask to be billed to the requester (requester-pays buckets).

    Dask config ``updm.io.requester-pays`` (read at every read, so workers follow their own
    config, e.g. ``DASK_UPDM__IO__REQUESTER_PAYS=true``) or ``AWS_REQUEST_PAYER=requester``
    in the environment, the variable GDAL and the AWS tools read themselves.
    """
    if os.environ.get("AWS_REQUEST_PAYER", "").strip().lower() == "requester":
        return True
    return bool(config.get("io.requester-pays"))


def storage_options(location: str) -> dict[str, Any]:
    """fsspec storage options for ``location``: request timeouts for HTTP(S), and for S3
    ``requester_pays`` when :func:`requester_pays` says so.

    Without them aiohttp waits five minutes for each request, and one file costs several
    requests (``exists``, ``info`` by HEAD then GET, the read): a server that accepts the
    connection and never answers held a job for more than ten minutes per file.
    """
    if _scheme(location) in ("s3", "s3a"):
        return {"requester_pays": True} if requester_pays() else {}
    if _scheme(location) not in ("http", "https"):
        return {}
    import aiohttp

    io = RemoteIO.current()
    timeout = aiohttp.ClientTimeout(total=io.timeout, sock_connect=io.connect_timeout)
    return {"client_kwargs": {"timeout": timeout}}


def gdal_http_env() -> dict[str, str]:
    """GDAL's HTTP timeouts and retries (``updm.io.*``) for remote rasters.

    GDAL waits for ever by default; its retries (``GDAL_HTTP_MAX_RETRY``, after timeouts
    and HTTP 429/5xx answers) double their delay like the package's own.
    """
    io = RemoteIO.current()
    return {
        "GDAL_HTTP_TIMEOUT": f"{io.timeout:g}",
        "GDAL_HTTP_CONNECTTIMEOUT": f"{io.connect_timeout:g}",
        "GDAL_HTTP_MAX_RETRY": str(io.retries),
        "GDAL_HTTP_RETRY_DELAY": f"{io.retry_delay:g}",
    }


#: HTTP answers worth another attempt: request timeout, too many requests, server errors.
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def transient_reason(exc: BaseException, io: RemoteIO | None = None) -> str | None:
    """Why a remote read failed, when trying again may help; None otherwise.

    fsspec wraps the cause (a 404 and a timeout both become FileNotFoundError), so the
    whole chain of causes is searched. The reason never quotes the server's answer.
    """
    io = io or RemoteIO.current()
    errors = list(_chain(exc))
    # Only what was imported can have raised: no import here for a local file's error.
    aiohttp = sys.modules.get("aiohttp")
    requests = sys.modules.get("requests")
    for error in errors:
        if aiohttp is not None and isinstance(error, aiohttp.ConnectionTimeoutError):
            return f"could not connect within {io.connect_timeout:g} s (updm.io.connect-timeout)"
        if requests is not None and isinstance(error, requests.exceptions.ConnectTimeout):
            return f"could not connect within {io.connect_timeout:g} s (updm.io.connect-timeout)"
        if isinstance(error, TimeoutError) or (
            requests is not None and isinstance(error, requests.exceptions.Timeout)
        ):
            return f"no answer: timed out after {io.timeout:g} s (updm.io.timeout)"
    for error in errors:
        status = getattr(error, "status", None)
        if aiohttp is not None and isinstance(error, aiohttp.ClientResponseError):
            if status in RETRY_STATUS:
                return f"the server answered HTTP {status}"
            return None
        if isinstance(error, ConnectionError) or (
            aiohttp is not None
            and isinstance(error, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError)
        ):
            return f"the connection failed ({type(error).__name__})"
    return None


def remote_call[T](call: Callable[[], T], name: str, doing: str) -> T:
    """Run ``call`` (one remote read of ``name``), retrying transient failures.

    Retries ``updm.io.retries`` times after a timeout, a failed connection or an HTTP
    408/429/5xx answer, waiting ``updm.io.retry-delay`` seconds before the first retry and
    twice as long before each next one. Other errors (a 404, a malformed file) are raised
    at once, unchanged.

    Raises
    ------
    RemoteReadError
        After the last attempt, naming ``name``, what was being done and why it failed,
        e.g. ``https://host/x_MTL.txt: reading failed: no answer: timed out after 30 s
        (updm.io.timeout); 4 attempts (updm.io.retries = 3)``.
    """
    io = RemoteIO.current()
    attempts = io.retries + 1
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:
            reason = transient_reason(exc, io)
            if reason is None:
                raise
        if attempt + 1 < attempts:
            time.sleep(io.retry_delay * 2**attempt)
    raise RemoteReadError(
        f"{name}: {doing} failed: {reason}; {attempts} attempt{'s' if attempts > 1 else ''} "
        f"(updm.io.retries = {io.retries})"
    )
