"""What a job may read: regular files under its input roots.

A local file is read only when, with symlinks followed, it lies under one of the job's input
roots (the folders, archives, glob bases and STAC folders it names, and ``[inputs]
allow_roots``), and only when it is a regular file: a FIFO, socket or device is refused on
``os.stat`` alone and never opened (opening a FIFO blocks).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence

from ..errors import SceneError
from ._locations import MTL_RE, has_glob, is_url, url_to_gdal

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
