"""Expiring old snapshots of a cube and collecting the storage only they used (``updm gc``).

Every batch of a job is one Icechunk snapshot, and every snapshot keeps the manifests and
chunks it saw, so a cube's storage grows with its history: the per-year layers rewritten
by each job, batches that were abandoned before their commit, and the manifests every
commit rewrote. :func:`collect_garbage` expires the snapshots older than a given age
(Icechunk's ``expire_snapshots``) and deletes the objects no remaining snapshot reaches
(``garbage_collect``). The branch tip and the cube's first commit are always kept;
tagged snapshots are kept with ``keep_tags`` (else a tag pointing at an expired snapshot
is deleted with it). Time travel to an expired snapshot is no longer possible.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import icechunk

from .. import config
from ..errors import CubeError
from ._catalogue import collection_exists
from ._cube import Cube, _writer_lock
from ._io import open_repository

__all__ = ["GarbageReport", "check_days", "collect_garbage", "collect_repository"]


@dataclass
class GarbageReport:
    """What :func:`collect_garbage` expired and freed."""

    location: str
    older_than: dt.datetime
    snapshots_expired: int = 0
    tags_deleted: list[str] = field(default_factory=list)
    snapshots_deleted: int = 0
    manifests_deleted: int = 0
    chunks_deleted: int = 0
    transaction_logs_deleted: int = 0
    bytes_freed: int = 0
    bytes_before: int | None = None
    bytes_after: int | None = None

    def format(self) -> str:
        """The lines ``updm gc`` prints."""
        lines = [
            f"cube {self.location}: snapshots older than "
            f"{self.older_than.isoformat(timespec='seconds')} expired: "
            f"{self.snapshots_expired}",
            f"deleted: {self.snapshots_deleted} snapshot(s), {self.manifests_deleted} "
            f"manifest(s), {self.chunks_deleted} chunk(s), {self.transaction_logs_deleted} "
            "transaction log(s)",
            f"freed: {self.bytes_freed:,} bytes",
        ]
        if self.tags_deleted:
            lines.append(f"tags deleted (their snapshots expired): {', '.join(self.tags_deleted)}")
        if self.bytes_before is not None and self.bytes_after is not None:
            lines.append(f"on disk: {self.bytes_before:,} bytes before, {self.bytes_after:,} after")
        return "\n".join(lines)


def _disk_bytes(name: str) -> int | None:
    if "://" in name:
        return None
    return sum(p.stat().st_size for p in Path(name).rglob("*") if p.is_file())


def _is_tile(name: str) -> bool:
    """Whether the cube at ``name`` is a tile of a tiled collection (``COLL/tiles/<id>``)."""
    match = re.fullmatch(r"(.+)/tiles/r[0-9]+c[0-9]+/*", name)
    return match is not None and collection_exists(match.group(1))


def collect_garbage(
    location: str | os.PathLike,
    *,
    older_than_days: float | None = None,
    keep_tags: bool = False,
) -> GarbageReport:
    """Expire a cube's snapshots older than some days and delete what only they used.

    Parameters
    ----------
    location : str or path-like
        Local directory or ``s3://bucket/prefix`` of the cube.
    older_than_days : float, optional
        Age in days (0 or more) above which snapshots are expired, and unreachable objects
        written before that moment are deleted (default: dask config
        ``updm.cube.gc-older-than-days``). Newer objects are kept, so an object store
        writer's batch in flight is never touched.
    keep_tags : bool
        Keep every tag and the snapshot it names, however old; otherwise a tag whose
        snapshot expired is deleted too. A tile of a tiled collection always keeps its
        tags: the collection's tags pin the tiles' tagged snapshots.

    Returns
    -------
    GarbageReport

    Raises
    ------
    CubeError
        ``location`` holds no cube; ``older_than_days`` is not a number of days >= 0;
        another process writes the local cube (gc never runs beside a writer there).

    Notes
    -----
    The branch tip and the first commit are always kept, so the cube's current data is
    never touched. On a local path the cube's writer lock is held throughout.
    """
    days = check_days(older_than_days)
    repo, name = open_repository(location)
    keep_tags = keep_tags or _is_tile(name)
    lock = _writer_lock(name)
    try:
        Cube._open(repo, name)  # a cube, not any other repository
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=float(days))
        return collect_repository(repo, name, cutoff, keep_tags)
    finally:
        if lock is not None:
            lock.release()


def check_days(older_than_days: float | None) -> float:
    """``older_than_days``, or the configured default, checked to be a number of days >= 0.

    Raises
    ------
    CubeError
        Naming the argument or the dask config key it came from.
    """
    days = config.get("cube.gc-older-than-days") if older_than_days is None else older_than_days
    what = "older_than_days" if older_than_days is not None else "updm.cube.gc-older-than-days"
    if (
        isinstance(days, bool)
        or not isinstance(days, int | float)
        or not math.isfinite(days)
        or days < 0
    ):
        raise CubeError(f"gc: {what}: expected a number of days >= 0, got {days!r}")
    return float(days)


def collect_repository(
    repo: icechunk.Repository, name: str, cutoff: dt.datetime, keep_tags: bool
) -> GarbageReport:
    """Expire ``repo``'s snapshots written before ``cutoff`` and delete what only they used.

    The caller holds whatever lock keeps writers out; ``name`` is the repository's location,
    for the report and its size on disk.
    """
    report = GarbageReport(location=name, older_than=cutoff, bytes_before=_disk_bytes(name))
    tags_before = set(repo.list_tags())
    try:
        expired = repo.expire_snapshots(cutoff, delete_expired_tags=not keep_tags)
        summary = repo.garbage_collect(cutoff)
    except icechunk.IcechunkError as exc:
        raise CubeError(f"gc of {name!r} failed: {exc.message}") from None
    report.snapshots_expired = len(expired)
    report.tags_deleted = sorted(tags_before - set(repo.list_tags()))
    report.snapshots_deleted = summary.snapshots_deleted
    report.manifests_deleted = summary.manifests_deleted
    report.chunks_deleted = summary.chunks_deleted
    report.transaction_logs_deleted = summary.transaction_logs_deleted
    report.bytes_freed = summary.bytes_deleted
    report.bytes_after = _disk_bytes(name)
    return report
