"""Where scene files live: local paths, URLs, and members of tar archives.

One code path serves local folders and object stores: every input is resolved to an fsspec
filesystem (``LocalFileSystem`` for plain paths) for listing and for reading metadata
text, and every raster a scene needs is handed on as a GDAL path (``/vsis3/``,
``/vsicurl/``, ``/vsitar/`` ...) that workers open themselves, so a scene record holds
strings only and pickles cheaply.

Archives are never unpacked: :func:`read_archive` lists a tar (gzip or plain) once with
:mod:`tarfile`, refuses hostile members (absolute paths, ``..`` components, links pointing
outside the archive, device files) and archives whose listing would not end in reasonable
time (more members, or more declared bytes, than ``updm.limits.archive-members`` /
``updm.limits.archive-bytes``), and keeps only the bytes of the metadata members; the band
rasters are read later, window by window, through GDAL's ``/vsitar/``.

Nothing remote can hang a job: every HTTP(S) request fsspec makes for a filesystem of
:func:`open_location` has a timeout (``updm.io.timeout``, ``updm.io.connect-timeout``), the
reads of this module (:func:`read_bytes`, :func:`exists`, :func:`read_archive`) are retried
with a doubling delay (``updm.io.retries``, ``updm.io.retry-delay``) and then fail with a
:class:`RemoteReadError` that says what happened ("timed out after 30 s"), and
:func:`gdal_env` gives GDAL's own reads of remote rasters the same timeouts and retries.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
import sys
import tarfile
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from .. import config
from ..errors import SceneError
from ..messages import redact

# GDAL keeps a seek index for every .tar.gz it reads through /vsitar/ and, by default,
# saves it as a side-car "<archive>.properties" NEXT TO THE ARCHIVE. Scene archives often
# sit in read-only or shared folders that must stay byte-identical, so the side-car is
# switched off for the whole process (GDAL reads this option from the environment at use
# time) and again explicitly for every raster opened here (gdal_env below).
os.environ.setdefault("CPL_VSIL_GZIP_WRITE_PROPERTIES", "NO")

_REMOTE_VSI = ("/vsicurl/", "/vsis3/", "/vsigs/", "/vsiaz/")


def gdal_env(path: str) -> dict[str, str]:
    """GDAL configuration for opening ``path`` (passed to ``rasterio.Env``).

    Remote rasters are opened without listing their folder: band files need no side-cars,
    and on an object store or web server a listing per open is a needless request.
    """
    env = {"CPL_VSIL_GZIP_WRITE_PROPERTIES": "NO"}
    if any(prefix in path for prefix in _REMOTE_VSI):
        env["GDAL_DISABLE_READDIR_ON_OPEN"] = "EMPTY_DIR"
        env.update(gdal_http_env())
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


# --------------------------------------------------------------------------------------
# Remote reads: every request has a timeout, every read is retried with a growing delay


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


def _scheme(location: str) -> str:
    return location.split("://", 1)[0].lower() if is_url(location) else ""


def storage_options(location: str) -> dict[str, Any]:
    """fsspec storage options for ``location``: request timeouts for HTTP(S).

    Without them aiohttp waits five minutes for each request, and one file costs several
    requests (``exists``, ``info`` by HEAD then GET, the read): a server that accepts the
    connection and never answers held a job for more than ten minutes per file.
    """
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


# --------------------------------------------------------------------------------------
# Tar archives


@dataclass
class ArchiveListing:
    """What :func:`read_archive` learnt about one archive.

    Parameters
    ----------
    name
        The archive as users name it (path or URL).
    gdal
        The archive's GDAL path (the prefix of its members' ``/vsitar/`` paths).
    files
        Normalised member name -> the member's name in the archive, for regular files and
        for links (already resolved to the regular file they point at).
    texts
        Raw bytes of every metadata member (``*_MTL.txt/xml/json``), by normalised name.
    """

    name: str
    gdal: str
    files: dict[str, str] = field(default_factory=dict)
    texts: dict[str, bytes] = field(default_factory=dict)

    def folders(self) -> dict[str, list[str]]:
        """Member base names grouped by their folder inside the archive."""
        out: dict[str, list[str]] = {}
        for member in self.files:
            out.setdefault(posixpath.dirname(member), []).append(posixpath.basename(member))
        return out

    def member_path(self, member: str) -> str:
        """GDAL ``/vsitar/`` path of a (normalised) member."""
        return vsitar(self.gdal, self.files[member])


def _unsafe_reason(info: tarfile.TarInfo) -> str | None:
    name = info.name
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in re.split(r"[\\/]+", name):
        return "'..' path component"
    if info.issym():
        target = info.linkname
        if target.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", target):
            return f"symbolic link to the absolute path {target!r}"
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
        if resolved == ".." or resolved.startswith("../"):
            return f"symbolic link pointing outside the archive ({target!r})"
    elif info.islnk():
        target = info.linkname
        if (
            target.startswith(("/", "\\"))
            or re.match(r"^[A-Za-z]:", target)
            or ".." in re.split(r"[\\/]+", target)
        ):
            return f"hard link pointing outside the archive ({target!r})"
    elif info.ischr() or info.isblk() or info.isfifo():
        return "device or FIFO member"
    return None


def check_members(archive: str, members: Iterable[tarfile.TarInfo]) -> None:
    """Refuse an archive holding any hostile member.

    Raises
    ------
    SceneError
        Naming the archive and the member: absolute paths, ``..`` components, symbolic or
        hard links that point outside the archive, device files and FIFOs.
    """
    for info in members:
        reason = _unsafe_reason(info)
        if reason is not None:
            raise SceneError(f"{archive}: refusing archive member {info.name!r}: {reason}")


def _resolve_links(members: dict[str, tarfile.TarInfo]) -> dict[str, str]:
    # GDAL's /vsitar/ reads regular members only, so a link is replaced by the regular
    # member it points at; links to nothing (or link cycles) are dropped.
    out: dict[str, str] = {}
    for norm, info in members.items():
        seen = set()
        current = info
        key = norm
        while current.issym() or current.islnk():
            if key in seen:
                break
            seen.add(key)
            if current.issym():
                key = posixpath.normpath(posixpath.join(posixpath.dirname(key), current.linkname))
            else:
                key = posixpath.normpath(current.linkname)
            current = members.get(key)
            if current is None:
                break
        if current is not None and current.isfile():
            out[norm] = current.name
    return out


def _capped_members(archive: str, tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """The members of ``tar``, refusing the archive as soon as it passes a limit.

    Members are taken one header at a time, and each is checked before the next is
    asked for: in a .tar.gz, moving on to the next header means decompressing the data of
    this member, which is where a huge declared size would cost hours. Millions of tiny
    members would cost memory and time the same way.
    """
    max_members = int(config.get("limits.archive-members"))
    max_bytes = int(config.get("limits.archive-bytes"))
    members: list[tarfile.TarInfo] = []
    declared = 0
    while (info := tar.next()) is not None:
        members.append(info)
        if len(members) > max_members:
            raise SceneError(
                f"{archive}: refusing the archive: it holds more than {max_members:,} members "
                f"(updm.limits.archive-members); a Landsat product has about 20. Split it, or "
                "raise the limit"
            )
        declared += max(int(info.size), 0)
        if declared > max_bytes:
            raise SceneError(
                f"{archive}: refusing the archive: its members declare more than "
                f"{max_bytes:,} bytes (updm.limits.archive-bytes), reached at member "
                f"{info.name!r}, which declares {int(info.size):,} bytes; a Landsat scene "
                "is 1-2 GB uncompressed. Split it, or raise the limit"
            )
    return members


def read_archive(fs: fsspec.AbstractFileSystem, path: str, *, text_limit: int) -> ArchiveListing:
    """List a tar archive and read its metadata members, without extracting anything.

    A ``.tar.gz`` has no index, so listing it decompresses it once; the band rasters are
    not kept, only their names. A remote archive is listed with timeouts and retries
    (:func:`remote_call`).

    Raises
    ------
    SceneError
        When the archive cannot be read, holds a hostile member (see
        :func:`check_members`), or more members or declared bytes than
        ``updm.limits.archive-members`` / ``updm.limits.archive-bytes``.
    RemoteReadError
        A remote archive's server did not answer in time on every attempt.
    """
    name = display(fs, path)
    if is_local(fs):
        return _read_archive(fs, path, name, text_limit)
    return remote_call(lambda: _read_archive(fs, path, name, text_limit), name, "listing")


def _read_archive(
    fs: fsspec.AbstractFileSystem, path: str, name: str, text_limit: int
) -> ArchiveListing:
    listing = ArchiveListing(name=name, gdal=gdal_path(fs, path))
    try:
        with fs.open(path, "rb") as fh, tarfile.open(fileobj=fh, mode="r:*") as tar:
            infos = _capped_members(name, tar)
            check_members(name, infos)
            members = {
                posixpath.normpath(info.name): info
                for info in infos
                if info.isfile() or info.issym() or info.islnk()
            }
            listing.files = _resolve_links(members)
            for norm, real in listing.files.items():
                if MTL_RE.search(norm):
                    extracted = tar.extractfile(tar.getmember(real))
                    # At most limit + 1 bytes: the metadata reader rejects larger files.
                    data = extracted.read(text_limit + 1) if extracted is not None else b""
                    listing.texts[norm] = data
    except SceneError:
        raise
    except (tarfile.TarError, OSError, EOFError) as exc:
        if not is_local(fs) and transient_reason(exc) is not None:
            raise  # remote_call tries again, then says what happened
        raise SceneError(f"{name}: not a readable tar archive: {exc}") from exc
    return listing


# --------------------------------------------------------------------------------------
# What a job may read: regular files under its input roots


def split_query(location: str) -> tuple[str, str]:
    """An http(s) URL without its query string, and that query string (``"?..."`` or ``""``).

    Other locations are returned whole with an empty query: only web URLs carry queries
    (presigned object-store URLs, shared-access tokens).
    """
    if not re.match(r"^https?://", location, re.IGNORECASE):
        return location, ""
    head, sep, query = location.partition("?")
    return head, sep + query


_FILE_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def file_kind(mode: int) -> str:
    """What ``os.stat(...).st_mode`` describes, for messages (``"a FIFO (named pipe)"``)."""
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((name for test, name in _FILE_KINDS if test(mode)), "a special file")


def check_regular(path: str, what: str) -> None:
    """Refuse a local path that is not a regular file, without opening it.

    Only ``os.stat`` looks at the path (following symbolic links): opening a FIFO blocks
    until some other process writes to it, and a device or a socket holds no scene data.

    Raises
    ------
    SceneError
        Naming the path, what it was expected to be and what it is.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise SceneError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise SceneError(f"{path}: cannot look at the {what}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise SceneError(
            f"{path}: the {what} is {file_kind(mode)}, not a regular file; refused without "
            "opening it"
        )


def input_roots(location: str) -> list[str]:
    """The local folders (real paths) an input of a job names; none for a remote URL.

    A folder is its own root; a metadata file roots the folder it is in (its band files sit
    beside it), both where it is named and where it really is when it is a symbolic link;
    an archive roots itself; a glob roots the folder its pattern starts in.
    """
    if is_url(location):
        if not location.lower().startswith("file://"):
            return []
        location = url_to_gdal(location)
    path = os.path.abspath(os.path.expanduser(location))
    if has_glob(path):
        static = []
        for part in path.split(os.sep):
            if has_glob(part):
                break
            static.append(part)
        return [os.path.realpath(os.sep.join(static) or os.sep)]
    if MTL_RE.search(path) and not os.path.isdir(path):
        return sorted(
            {os.path.realpath(os.path.dirname(path)), os.path.dirname(os.path.realpath(path))}
        )
    return [os.path.realpath(path)]


def within_roots(real: str, roots: Iterable[str]) -> bool:
    """True when the real path ``real`` is one of ``roots`` or lies under one of them."""
    for root in roots:
        prefix = root if root.endswith(os.sep) else root + os.sep
        if real == root or real.startswith(prefix):
            return True
    return False


def _roots_text(roots: Sequence[str]) -> str:
    if not roots:
        return "none"
    shown = ", ".join(roots[:3])
    return shown + (f" and {len(roots) - 3} more" if len(roots) > 3 else "")


def check_local_file(path: str, what: str, roots: Sequence[str] | None) -> None:
    """Refuse a local file outside ``roots`` (symbolic links followed) or not a regular file.

    Neither check opens the file: a symbolic link or href pointing at ``/etc/shadow`` or at
    a FIFO is refused on its name and its ``stat`` alone, so nothing of it is read, and no
    message can quote it.

    Parameters
    ----------
    path
        The local path as found (a folder entry, a STAC href made absolute).
    what
        What the file is for, for messages (``"metadata file"``, ``"band 4 file"``).
    roots
        Real paths of the folders the file must lie in; ``None`` for no confinement.

    Raises
    ------
    SceneError
        Naming the path, where it really is and the roots, or what kind of file it is.
    """
    if roots is not None:
        real = os.path.realpath(path)
        if not within_roots(real, roots):
            target = "" if real == os.path.abspath(path) else f" resolves to {real}, which"
            raise SceneError(
                f"{path}: the {what}{target} lies outside the input roots "
                f"({_roots_text(list(roots))}); refused without reading it. Name its folder "
                "in [inputs] allow_roots of the job spec (allow_roots= of discover_scenes / "
                "roots= of discover_stac) to read it"
            )
    check_regular(path, what)
