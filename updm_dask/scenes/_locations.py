"""Where scene files live: local paths, URLs, and members of tar archives.

One code path serves local folders and object stores: every input is resolved to an fsspec
filesystem (``LocalFileSystem`` for plain paths) for listing and for reading metadata
text, and every raster a scene needs is handed on as a GDAL path (``/vsis3/``,
``/vsicurl/``, ``/vsitar/`` ...) that workers open themselves, so a scene record holds
strings only and pickles cheaply. Remote reads go through :mod:`._remote` (timeouts,
retries), archives through :mod:`._archives`, and the input roots are :mod:`._roots`.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import urllib.parse
from collections.abc import Iterable

import fsspec
import rasterio.env
from fsspec.implementations.local import LocalFileSystem

from .. import config
from ..errors import SceneError
from ..messages import redact
from ._remote import (
    gdal_http_env,
    remote_call,
    requester_pays,
    storage_options,
    transient_reason,
)

# GDAL keeps a seek index for every .tar.gz it reads through /vsitar/ and, by default,
# saves it as a side-car "<archive>.properties" NEXT TO THE ARCHIVE. Scene archives often
# sit in read-only or shared folders that must stay byte-identical, so the side-car is
# switched off for the whole process (GDAL reads this option from the environment at use
# time) and again explicitly for every raster opened here (gdal_env below).
os.environ.setdefault("CPL_VSIL_GZIP_WRITE_PROPERTIES", "NO")

_REMOTE_VSI = ("/vsicurl/", "/vsis3/", "/vsigs/", "/vsiaz/")


def gdal_cache_bytes() -> int | None:
    """Bytes of GDAL's block cache for this process's reads (``updm.io.gdal-cache-mb``).

    None when ``GDAL_CACHEMAX`` is in the environment: GDAL then takes the user's value,
    as it does for every setting of its own.

    Raises
    ------
    SceneError
        The setting is not a whole number of MiB >= 1.
    """
    if "GDAL_CACHEMAX" in os.environ:
        return None
    mib = config.get("io.gdal-cache-mb")
    if isinstance(mib, bool) or not isinstance(mib, int) or mib < 1:
        raise SceneError(f"updm.io.gdal-cache-mb: expected a whole number of MiB >= 1, got {mib!r}")
    return mib * 2**20


# The bound this process last gave GDAL's cache (None: not set by this module).
_CACHE_BOUND: int | None = None
_CACHE_LOCK = threading.Lock()


def bound_gdal_cache() -> None:
    """Bound GDAL's block cache of this process by :func:`gdal_cache_bytes`.

    Called before every read of a band file; sets the bound when the setting differs from
    the one this process set last. It is set outside any ``rasterio.Env``: an ``Env``
    restores GDAL's previous bound when it ends, and the cache is one for all threads.
    """
    global _CACHE_BOUND
    wanted = gdal_cache_bytes()
    if wanted is None or wanted == _CACHE_BOUND:
        return
    with _CACHE_LOCK:
        if wanted != _CACHE_BOUND:
            rasterio.env.set_gdal_config("GDAL_CACHEMAX", wanted)
            _CACHE_BOUND = wanted


def gdal_env(path: str) -> dict[str, str]:
    """GDAL configuration for opening ``path`` (passed to ``rasterio.Env``).

    Remote rasters are opened without listing their folder: band files need no side-cars,
    and on an object store or web server a listing per open is a needless request. S3
    reads ask to be billed to the requester (``AWS_REQUEST_PAYER=requester``) when
    :func:`~updm_dask.scenes._remote.requester_pays` says so: requester-pays buckets
    answer HTTP 403 to any other request.
    """
    env = {"CPL_VSIL_GZIP_WRITE_PROPERTIES": "NO"}
    if any(prefix in path for prefix in _REMOTE_VSI):
        env["GDAL_DISABLE_READDIR_ON_OPEN"] = "EMPTY_DIR"
        env.update(gdal_http_env())
        if "/vsis3/" in path and requester_pays():
            env["AWS_REQUEST_PAYER"] = "requester"
    return env


MTL_RE = re.compile(r"_MTL\.(txt|xml|json)$", re.IGNORECASE)
ARCHIVE_RE = re.compile(r"\.(tar\.gz|tgz|tar)$", re.IGNORECASE)
# File name of a Landsat band raster: product id (Collection 1/2) or scene id
# (pre-collection), then _B<n> or _SR_B<n>. Used to notice band files without metadata.
BAND_FILE_RE = re.compile(
    r"^(?P<id>L[CEMOTI]\d{2}_[A-Z0-9]{4}_\d{6}_\d{8}_\d{8}_\d{2}_[A-Z0-9]{2}"
    r"|L[CEMOTI]\d{14}[A-Z]{3}\d{2})_(?:SR_)?B\d+\.tiff?$",
    re.IGNORECASE,
)
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")
_GLOB_CHARS = frozenset("*?[")
# Preference when one product ships its metadata in several formats (C2: txt, xml, json).
_MTL_PREFERENCE = {"txt": 0, "xml": 1, "json": 2}


def is_url(location: str) -> bool:
    """True for ``scheme://...`` strings (``s3://``, ``https://``, ``file://`` ...)."""
    return bool(_URL_RE.match(location))


def has_glob(location: str) -> bool:
    """True when ``location`` contains glob characters (``*``, ``?``, ``[``).

    The query string of an http(s) URL is not part of its path: the ``?`` of a presigned
    URL (``...?X-Amz-Signature=...``) starts its query, it is no glob.
    """
    return any(ch in _GLOB_CHARS for ch in split_query(location)[0])


def open_location(location: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem and filesystem path of a local path or URL.

    HTTP(S) filesystems get the timeouts of :func:`storage_options`.
    """
    if is_url(location):
        try:
            return fsspec.core.url_to_fs(location, **storage_options(location))
        except (ImportError, ValueError) as exc:
            raise SceneError(f"{location}: no filesystem for this URL: {exc}") from exc
    return LocalFileSystem(), os.path.abspath(os.path.expanduser(location))


def _protocol(fs: fsspec.AbstractFileSystem) -> str:
    proto = fs.protocol
    return proto if isinstance(proto, str) else proto[0]


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    """True for the local filesystem."""
    return _protocol(fs) in ("file", "local")


def display(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """The name to show users: a plain path for local files, else the full URL."""
    return path if is_local(fs) else fs.unstrip_protocol(path)


_GDAL_PREFIXES = {
    "s3": "/vsis3/",
    "s3a": "/vsis3/",
    "gs": "/vsigs/",
    "gcs": "/vsigs/",
    "az": "/vsiaz/",
    "abfs": "/vsiaz/",
    "abfss": "/vsiaz/",
}


def url_to_gdal(href: str) -> str:
    """GDAL path of a local path or URL (a string mapping; nothing is opened).

    ``s3://b/k`` -> ``/vsis3/b/k``, ``gs://`` -> ``/vsigs/``, ``az://`` -> ``/vsiaz/``,
    ``http(s)://...`` -> ``/vsicurl/http(s)://...``, ``file:///p`` -> ``/p``; plain paths
    are returned unchanged.

    Raises
    ------
    SceneError
        For URL schemes GDAL has no virtual file system for.
    """
    if not is_url(href):
        return href
    scheme, rest = href.split("://", 1)
    scheme = scheme.lower()
    if scheme == "file":
        return urllib.parse.unquote(urllib.parse.urlsplit(href).path)
    if scheme in ("http", "https"):
        return "/vsicurl/" + href
    if scheme in _GDAL_PREFIXES:
        return _GDAL_PREFIXES[scheme] + rest
    raise SceneError(
        f"{href}: GDAL cannot read {scheme}:// URLs; expected a local path or an s3://, "
        "gs://, az:// or http(s):// URL"
    )


def gdal_path(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """GDAL's name for a file of an fsspec filesystem (``/vsis3/bucket/key`` ...)."""
    if is_local(fs):
        return path
    return url_to_gdal(fs.unstrip_protocol(path))


def vsitar(archive_gdal: str, member: str) -> str:
    """GDAL path of a member of a tar archive (the archive itself given as a GDAL path).

    An archive URL with a query string (a presigned URL) is wrapped in braces, GDAL's
    syntax for archive names it could not otherwise split from the member's name; a
    compressed one also in ``/vsigzip/``, as GDAL no longer sees its ``.gz`` ending.
    """
    if "?" in archive_gdal:
        if re.search(r"\.(gz|tgz)$", archive_gdal.split("?", 1)[0], re.IGNORECASE):
            archive_gdal = "/vsigzip/" + archive_gdal
        return f"/vsitar/{{{archive_gdal}}}/{member}"
    return f"/vsitar/{archive_gdal}/{member}"


def read_bytes(fs: fsspec.AbstractFileSystem, path: str, limit: int) -> bytes:
    """Read at most ``limit`` + 1 bytes of a file (the metadata reader rejects larger ones).

    Remote files are read by :func:`read_remote` (timeouts, retries).
    """
    if not is_local(fs):
        return read_remote(fs, path, limit)
    with fs.open(path, "rb") as fh:
        return fh.read(limit + 1)


def listing_lookup(names: Iterable[str]) -> dict[str, str]:
    """Case-insensitive lookup of file names (MTLs say ``.TIF``, some folders hold ``.tif``)."""
    lookup: dict[str, str] = {}
    for name in sorted(names):
        lookup.setdefault(name.lower(), name)
    return lookup


def choose_mtls(names: Iterable[str]) -> list[str]:
    """One metadata file per product among ``names`` (txt before xml before json)."""
    best: dict[str, str] = {}
    for name in sorted(names):
        match = MTL_RE.search(name)
        if not match:
            continue
        stem = name[: match.start()].lower()
        rank = _MTL_PREFERENCE[match.group(1).lower()]
        if stem not in best or rank < _MTL_PREFERENCE[MTL_RE.search(best[stem]).group(1).lower()]:
            best[stem] = name
    return [best[stem] for stem in sorted(best)]


def orphan_band_ids(names: Iterable[str], mtl_names: Iterable[str]) -> list[str]:
    """Product/scene ids that have band files among ``names`` but no metadata file."""
    stems = {name[: MTL_RE.search(name).start()].lower() for name in mtl_names}
    ids = set()
    for name in names:
        match = BAND_FILE_RE.match(name)
        if match and match.group("id").lower() not in stems:
            ids.add(match.group("id"))
    return sorted(ids)


def _read_up_to(fh, limit: int | None) -> bytes:
    # A streamed HTTP body hands back what has arrived, not always what was asked for.
    chunks: list[bytes] = []
    got = 0
    while limit is None or got <= limit:
        part = fh.read(-1 if limit is None else limit + 1 - got)
        if not part:
            break
        chunks.append(part)
        got += len(part)
    return b"".join(chunks)


def read_remote(fs: fsspec.AbstractFileSystem, path: str, limit: int | None = None) -> bytes:
    """Read a remote file (at most ``limit`` + 1 bytes), with timeouts and retries.

    Over HTTP(S) the file is streamed by ONE GET request per attempt (fsspec otherwise
    asks HEAD, then GET, for its size first: two more timeouts per attempt when the
    server does not answer).

    Raises
    ------
    RemoteReadError
        The server did not answer in time (or failed transiently) on every attempt.
    FileNotFoundError
        The server says the file does not exist.
    """

    def read() -> bytes:
        if _protocol(fs) in ("http", "https"):
            # block_size=0 streams the body; a size (any: a stream does not use it) skips
            # fsspec's request for the real one.
            opened = fs.open(path, "rb", block_size=0, size=1)
        else:
            opened = fs.open(path, "rb")
        with opened as fh:
            return _read_up_to(fh, limit)

    name = display(fs, path)
    try:
        return remote_call(read, name, "reading")
    except Exception as exc:
        # A streamed read raises the HTTP answer itself (a 403, a 404) where fsspec's
        # buffered one raised FileNotFoundError: both say the server has no such file.
        status = getattr(exc, "status", None)
        aiohttp = sys.modules.get("aiohttp")
        if aiohttp is not None and isinstance(exc, aiohttp.ClientResponseError):
            raise FileNotFoundError(f"{redact(name)}: the server answered HTTP {status}") from None
        raise


def exists(fs: fsspec.AbstractFileSystem, path: str) -> bool:
    """True when ``path`` exists; remote look-ups have timeouts and retries.

    Raises
    ------
    RemoteReadError
        A remote server did not answer in time (or failed transiently) on every attempt:
        that is not "does not exist".
    """
    if is_local(fs):
        try:
            return fs.exists(path)
        except OSError:
            return False

    def look() -> bool:
        try:
            if _protocol(fs) in ("http", "https"):
                # One GET per attempt (info() asks HEAD, then GET: two timeouts); strict
                # raises what is not a 404 instead of calling it "missing".
                return bool(fs.exists(path, strict=True))
            fs.info(path)
            return True
        except Exception as exc:  # like fsspec's exists(): anything else means "no"
            if transient_reason(exc) is not None:
                raise
            return False

    return remote_call(look, display(fs, path), "looking it up")


def split_query(location: str) -> tuple[str, str]:
    """An http(s) URL without its query string, and that query string (``"?..."`` or ``""``).

    Other locations are returned whole with an empty query: only web URLs carry queries
    (presigned object-store URLs, shared-access tokens).
    """
    if not re.match(r"^https?://", location, re.IGNORECASE):
        return location, ""
    head, sep, query = location.partition("?")
    return head, sep + query
