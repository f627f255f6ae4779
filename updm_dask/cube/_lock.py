"""One writer at a time for a cube on a local path: an OS lock held while a process writes.

Icechunk cannot make two commits to a local directory atomic (object stores can: they
offer conditional writes), so two processes writing one local cube at once could both
claim the same time slots. A process that writes a local cube therefore holds an
exclusive ``flock`` on the file :data:`LOCK_NAME` inside the cube's directory. The OS
drops the lock when the process ends, however it ends (a SIGKILL included), so a crashed
writer never leaves a stale lock behind. The file itself stays (removing a lock file
races with a process about to lock it); it only records who holds the lock, for the
message the next writer gets.

The lock is taken once per process and directory and shared by every writer view of that
cube in the process (threads of one driver, or several ``Cube`` objects), and released
when the last of them lets go. Processes forked from the holder share the lock, which
suits dask workers that write chunks for their driver.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path

from ..errors import CubeError

__all__ = ["LOCK_NAME", "CubeLockedError", "WriterLock", "acquire", "holder"]

#: Name of the lock file inside a local cube's directory (hidden, so that listing the
#: directory shows the repository; Icechunk ignores it).
LOCK_NAME = ".updm-writer.lock"

_guard = threading.Lock()
#: directory -> [file descriptor holding the flock, holders in this process, owning pid]
_held: dict[str, list[int]] = {}


class WriterLock:
    """A share of this process's writer lock on one local cube directory.

    Made by :func:`acquire`; :meth:`release` gives the share back (idempotent). The OS
    lock is released with the last share, or when the process ends.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._released = False

    @property
    def released(self) -> bool:
        """True once :meth:`release` was called."""
        return self._released

    def release(self) -> None:
        """Give this share back; the last share of the process unlocks the directory."""
        with _guard:
            if self._released:
                return
            self._released = True
            entry = _held.get(self.directory)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] > 0:
                return
            del _held[self.directory]
            fd, owner = entry[0], entry[2]
        try:
            # a forked child shares its parent's lock: closing its copy of the descriptor
            # keeps the parent's lock, an explicit unlock would drop it
            if owner == os.getpid():
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __repr__(self) -> str:
        state = "released" if self._released else "held"
        return f"WriterLock({self.directory!r}, {state})"


class CubeLockedError(CubeError):
    """A local cube's writer lock is held by another process (the message names it)."""


def holder(directory: str | os.PathLike) -> str:
    """Who holds the lock of ``directory``, as recorded in its lock file, for a message.

    ``"pid N on host H since T"``, or ``"an unknown process"`` when the record cannot be
    read or is not one this module wrote (its content is never quoted).
    """
    try:
        text = (Path(directory) / LOCK_NAME).read_text(encoding="utf-8")
        record = json.loads(text)
        pid, host, since = record["pid"], record["host"], record["since"]
    except (OSError, ValueError, KeyError, TypeError):
        return "an unknown process"
    if (
        isinstance(pid, bool)
        or not isinstance(pid, int)
        or not isinstance(host, str)
        or not isinstance(since, str)
        or not host.isprintable()
        or not since.isprintable()
    ):
        return "an unknown process"
    return f"pid {pid} on host {host[:255]} since {since[:40]}"


def acquire(directory: str | os.PathLike) -> WriterLock:
    """Take (a share of) the writer lock of the local cube directory ``directory``.

    Creates the directory when it is missing (a cube being created), never blocks.

    Parameters
    ----------
    directory : str or path-like
        The cube's local directory (an absolute path, as :func:`storage_for` names it).

    Returns
    -------
    WriterLock
        Release it with :meth:`WriterLock.release` when the writing is over.

    Raises
    ------
    CubeError
        Another process holds the lock (the message names it), or the lock file cannot be
        created or locked.
    """
    path = os.path.abspath(os.fspath(directory))
    with _guard:
        entry = _held.get(path)
        if entry is not None:
            entry[1] += 1
            return WriterLock(path)
        lock_file = os.path.join(path, LOCK_NAME)
        try:
            os.makedirs(path, exist_ok=True)
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise CubeError(
                f"cube {path!r}: cannot create its writer lock file {LOCK_NAME!r}: "
                f"{exc.strerror or exc}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CubeLockedError(
                f"cube {path!r} is being written by another process ({holder(path)}); "
                "local cubes take one writer at a time; use an object store (s3://) to "
                "share a cube between writers"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise CubeError(
                f"cube {path!r}: cannot lock its writer lock file {LOCK_NAME!r}: "
                f"{exc.strerror or exc}"
            ) from None
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        try:
            # the record is informative only: failing to write it must not stop a writer
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        except OSError:
            pass
        _held[path] = [fd, 1, os.getpid()]
        return WriterLock(path)
