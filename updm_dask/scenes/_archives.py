"""Tar archives of scenes, listed once and never unpacked.

:func:`read_archive` lists a tar (gzip or plain) with :mod:`tarfile`, refuses hostile
members (absolute paths, ``..`` components, links pointing outside the archive, device
files) and archives whose listing would not end in reasonable time (more members, or more
declared bytes, than ``updm.limits.archive-members`` / ``updm.limits.archive-bytes``), and
keeps only the bytes of the metadata members; the band rasters are read later, window by
window, through GDAL's ``/vsitar/``.
"""

from __future__ import annotations

import posixpath
import re
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field

import fsspec

from .. import config
from ..errors import SceneError
from ._locations import MTL_RE, display, gdal_path, is_local, vsitar
from ._remote import remote_call, transient_reason


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
