"""The catalogue of a tiled collection: where it is stored, and how it is read and locked.

The catalogue is a small Icechunk repository at ``LOCATION/catalogue`` whose root attributes
describe the collection (see :mod:`updm_dask.cube._tiles`). Here: its format marker, the
locations of the catalogue and the tiles under ``LOCATION``, whether a collection exists,
reading the catalogue's attributes, making (or completing) the catalogue repository, the
OS lock local drivers take around a catalogue commit, and telling a tile cube another
driver is creating from a broken one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import icechunk

from ..errors import CubeError
from ._io import (
    clear_unfinished,
    is_unfinished,
    repository_exists,
    root_attrs,
    storage_for,
    tip_state,
    unfinished_leftovers,
)
from ._schema import MARKER

__all__ = ["COLLECTION_FORMAT", "COLLECTION_MARKER", "collection_exists"]

#: Format of the catalogue this package writes (root attribute ``updm_tiled_collection``).
COLLECTION_FORMAT = 1
COLLECTION_MARKER = "updm_tiled_collection"
#: Times a catalogue commit is re-read and retried after another driver committed first.
_CATALOGUE_RETRIES = 20


def _child(location: str, *parts: str) -> str:
    """``location/part/...`` for a local path or a URL."""
    if "://" in location:
        return "/".join([location.rstrip("/"), *parts])
    return os.path.join(location, *parts)


@contextlib.contextmanager
def _catalogue_lock(location: str) -> Iterator[None]:
    """On a local path, hold an OS lock on the catalogue while it is read and committed.

    Icechunk cannot make two simultaneous commits to a local repository atomic (one may
    silently replace the other), so local drivers take turns; a commit lasts milliseconds,
    so waiting is short. Object stores detect the conflict themselves: no lock there.
    """
    if "://" in location:
        yield
        return
    path = os.path.join(location, "catalogue", ".updm-catalogue.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _being_created(location: str) -> bool:
    """Whether a failed creation of the cube at ``location`` may have met another process
    creating it: the location holds no repository, a repository without a cube yet, or a
    cube by now (created meanwhile). A repository holding anything else is no race."""
    storage, name = storage_for(location)
    if not repository_exists(storage, name):
        return True
    try:
        repo = icechunk.Repository.open(storage)
        attrs = root_attrs(repo.readonly_session("main").store)
    except (icechunk.IcechunkError, ValueError):
        return True  # half made: its refs are not all written yet
    return attrs is None or MARKER in attrs


def collection_exists(location: str | os.PathLike) -> bool:
    """Whether ``location`` holds a tiled collection (its catalogue repository)."""
    _, name = storage_for(location)
    storage, cname = storage_for(_child(name, "catalogue"))
    if not repository_exists(storage, cname):
        return False
    try:
        repo = icechunk.Repository.open(storage)
    except icechunk.IcechunkError:
        return True
    return not is_unfinished(repo)


def _catalogue_attrs(repo: icechunk.Repository, snapshot: str | None = None) -> dict | None:
    session = (
        repo.readonly_session(snapshot_id=snapshot)
        if snapshot is not None
        else repo.readonly_session("main")
    )
    attrs = root_attrs(session.store)
    return attrs if attrs and COLLECTION_MARKER in attrs else None


def _holds_something_else(repo: icechunk.Repository) -> bool:
    """Whether the repository holds something other than a catalogue or an unfinished one.

    Both questions are asked of one snapshot, the branch tip read once: another driver
    filling the catalogue meanwhile must not make an empty catalogue look like a stranger
    (empty at the first look, no longer unfinished at the second).
    """
    state = tip_state(repo)
    if state is None:
        return False  # half made: its refs are not all written yet
    initial, attrs = state
    if attrs is None:
        return not initial  # only an initial commit: being created
    return COLLECTION_MARKER not in attrs


def _catalogue_to_fill(storage: icechunk.Storage, cname: str) -> icechunk.Repository:
    """The catalogue repository, created when missing (after removing what an interrupted
    creation left)."""
    if repository_exists(storage, cname):
        try:
            repo = icechunk.Repository.open(storage)
        except icechunk.IcechunkError as exc:
            raise CubeError(f"cannot open the catalogue at {cname!r}: {exc.message}") from None
        if _holds_something_else(repo):
            raise CubeError(f"{cname!r} holds an Icechunk repository that is not a catalogue")
        return repo
    if "://" not in cname:
        path = Path(cname)
        if path.is_dir() and any(path.iterdir()):
            if unfinished_leftovers(path) is None or not clear_unfinished(path):
                raise CubeError(f"{cname!r} is a non-empty directory that is not a catalogue")
    try:
        return icechunk.Repository.create(storage)
    except icechunk.IcechunkError:
        # another driver may have created it this very moment
        if repository_exists(storage, cname):
            return icechunk.Repository.open(storage)
        raise
