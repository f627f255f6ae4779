"""Where scene files live: local paths, URLs, and members of tar archives.

One code path serves local folders and object stores: every input is resolved to an fsspec
filesystem (``LocalFileSystem`` for plain paths) for listing and for reading metadata
text, and every raster a scene needs is handed on as a GDAL path (``/vsis3/``,
``/vsicurl/``, ``/vsitar/`` ...) that workers open themselves, so a scene record holds
strings only and pickles cheaply.

Archives are never unpacked: :func:`read_archive` lists a tar (gzip or plain) once with
:mod:`tarfile`, refuses hostile members (absolute paths, ``..`` components, links pointing
outside the archive, device files) and keeps only the bytes of the metadata members; the
band rasters are read later, window by window, through GDAL's ``/vsitar/``.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
import tarfile
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import fsspec
from fsspec.implementations.local import LocalFileSystem

from ..errors import SceneError

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
    """The fsspec filesystem and filesystem path of a local path or URL."""
    if is_url(location):
        try:
            return fsspec.core.url_to_fs(location)
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
    """Read at most ``limit`` + 1 bytes of a file (the metadata reader rejects larger ones)."""
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


def read_archive(fs: fsspec.AbstractFileSystem, path: str, *, text_limit: int) -> ArchiveListing:
    """List a tar archive and read its metadata members, without extracting anything.

    A ``.tar.gz`` has no index, so listing it decompresses it once; the band rasters are
    not kept, only their names.

    Raises
    ------
    SceneError
        When the archive cannot be read, or holds a hostile member (see
        :func:`check_members`).
    """
    name = display(fs, path)
    listing = ArchiveListing(name=name, gdal=gdal_path(fs, path))
    try:
        with fs.open(path, "rb") as fh, tarfile.open(fileobj=fh, mode="r:*") as tar:
            infos = tar.getmembers()
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
