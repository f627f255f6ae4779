"""Creating, opening, appending to and summarising cubes."""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import dask.array as da
import icechunk
import numpy as np
import xarray as xr
import zarr

from ..errors import CubeError, GridError, VersionError
from ..geo import CubeGrid
from . import _lock
from ._arrays import fill_arrays, open_arrays, resize_arrays
from ._io import (
    CubeConflictError,
    EmptyScenesError,
    chunk_edge,
    clear_unfinished,
    ensure_writer_config,
    is_unfinished,
    open_repository,
    repository_config,
    repository_exists,
    root_attrs,
    storage_for,
    unfinished_leftovers,
    write_dask,
)
from ._rebuild import rebuild_yearly as rebuild_yearly_layers
from ._scenes import SceneRecord, json_metadata, scene_record
from ._schema import (
    MARKER,
    SCENE_VARIABLES,
    STR,
    STR_COORDS,
    TIME_COORDS,
    check_format,
    decode_dataset,
    template,
)
from ._tags import check_tag_name, icechunk_detail
from ._yearly import year_ranges, years_of

log = logging.getLogger("updm_dask.cube")

_EPOCH_US = np.datetime64("1970-01-01T00:00:00", "us")


def _version() -> str:
    from .. import __version__

    return __version__


def _step(name: str) -> None:
    """A named point of :func:`create_cube` (fault tests stop a real process at each)."""


def _writer_lock(name: str) -> _lock.WriterLock | None:
    """The writer lock of a local cube (None for object stores, which take many writers)."""
    return None if "://" in name else _lock.acquire(name)


def create_cube(
    location: str | os.PathLike,
    grid: CubeGrid,
    *,
    title: str | None = None,
    chunks: int | None = None,
    exist_ok: bool = False,
) -> Cube:
    """Create an empty cube: one initial commit holding its structure.

    Parameters
    ----------
    location : str or path-like
        Local directory (created if missing; must be empty) or ``s3://bucket/prefix``.
    grid : CubeGrid
        The cube's one grid.
    title : str, optional
        Stored in the root attributes.
    chunks : int, optional
        Spatial chunk edge of the scene-level arrays (default: dask config
        ``updm.chunks.cube``), clipped to the grid.
    exist_ok : bool
        When ``location`` already holds a cube with the same grid, return it.

    Returns
    -------
    Cube
        View of the ``main`` branch (appendable).

    Raises
    ------
    CubeError
        ``location`` already holds a cube (unless ``exist_ok``; always when its grid
        differs), holds anything else, or cannot be written.
    """
    if not isinstance(grid, CubeGrid):
        raise CubeError(f"create_cube: grid must be a CubeGrid, got {type(grid).__name__}")
    c = chunk_edge(chunks, "chunks.cube")
    cy, cx = min(c, grid.ny), min(c, grid.nx)
    repo_config = repository_config()
    storage, name = storage_for(location)
    if "://" not in name and Path(name).is_dir() and not repository_exists(storage, name):
        # refuse someone else's folder before leaving a lock file in it
        if unfinished_leftovers(Path(name)) is None:
            raise CubeError(f"{name!r} is a non-empty directory that is not a cube")
    # Local cubes: the lock comes first, so that no other process creates or writes the
    # cube while this one looks at what is there and completes it.
    lock = _writer_lock(name)
    try:
        _step("locked")
        repo = _repository_to_fill(storage, name, grid, exist_ok, repo_config, lock)
        if isinstance(repo, Cube):
            return repo
        _step("repository")
        version = _version()
        ds, encoding = template(grid, title, (cy, cx), version)
        session = repo.writable_session("main")
        ds.to_zarr(session.store, mode="w", consolidated=False, zarr_format=3, encoding=encoding)
        _step("template")
        metadata = {
            "action": "create",
            "grid": grid.to_dict(),
            "chunks": [cy, cx],
            "updm_dask_version": version,
        }
        try:
            session.commit("create cube", metadata=metadata)
        except icechunk.ConflictError as exc:
            raise CubeConflictError(
                f"another writer created or changed {name!r} at the same time: {exc.message}"
            ) from None
        _step("committed")
        log.info("created cube %s (%s, shape %s)", name, grid.crs, grid.shape)
        return Cube._open(repo, name, writer_lock=lock)
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def _repository_to_fill(
    storage: icechunk.Storage,
    name: str,
    grid: CubeGrid,
    exist_ok: bool,
    repo_config: icechunk.RepositoryConfig,
    lock: _lock.WriterLock | None,
) -> icechunk.Repository | Cube:
    """The repository :func:`create_cube` fills in, or the existing cube (``exist_ok``).

    Completes what an interrupted creation left: a repository holding only its initial
    commit is filled in, and the files of an interrupted ``Repository.create`` (no
    repository yet) are removed before the repository is created again.
    """
    if repository_exists(storage, name):
        try:
            repo = icechunk.Repository.open(storage)
        except icechunk.IcechunkError as exc:
            raise CubeError(f"cannot open the cube repository at {name!r}: {exc.message}") from None
        attrs = root_attrs(repo.readonly_session("main").store)
        if attrs and MARKER in attrs:
            if not exist_ok:
                raise CubeError(
                    f"{name!r} already holds a cube; open it with open_cube() or pass exist_ok=True"
                )
            cube = Cube._open(repo, name, writer_lock=lock)
            if cube.grid != grid:
                raise CubeError(
                    f"{name!r} already holds a cube with another grid ({cube.grid.crs}, shape "
                    f"{cube.grid.shape}, bounds {cube.grid.bounds}) than the one asked for "
                    f"({grid.crs}, shape {grid.shape}, bounds {grid.bounds})"
                )
            cube._prepare_writer()
            return cube
        if attrs is not None or not is_unfinished(repo):
            raise CubeError(
                f"{name!r} holds an Icechunk repository that is not a cube; "
                "choose an empty location"
            )
        # an empty repository left by an interrupted create_cube: fill it in
        log.info("create_cube: completing the interrupted creation of %s", name)
        return ensure_writer_config(repo, name)
    clean = True
    if "://" not in name:
        path = Path(name)
        if path.is_dir() and any(p.name != _lock.LOCK_NAME for p in path.iterdir()):
            if not clear_unfinished(path):
                raise CubeError(f"{name!r} is a non-empty directory that is not a cube")
            log.info("create_cube: removed what an interrupted creation left in %s", name)
        # the writer lock file is the only thing in the directory
        clean = False
    try:
        return icechunk.Repository.create(storage, config=repo_config, check_clean_root=clean)
    except icechunk.IcechunkError as exc:
        raise CubeError(f"cannot create a cube at {name!r}: {exc.message}") from None


def open_cube(
    location: str | os.PathLike,
    *,
    branch: str = "main",
    snapshot: str | None = None,
    tag: str | None = None,
    for_writing: bool = False,
) -> Cube:
    """Open a cube at a branch tip, or pinned to a snapshot or tag (time travel).

    Parameters
    ----------
    location : str or path-like
        Local directory or ``s3://bucket/prefix``.
    branch : str
        Branch whose tip is read (and appended to); ignored with ``snapshot``/``tag``.
    snapshot, tag : str, optional
        Pin the (read-only) view to one snapshot id or tag; at most one of them.
    for_writing : bool
        Become the cube's writer now rather than at the first write: on a local path, take
        the writer lock (held until :meth:`Cube.close` or until the view is dropped), and
        save the manifest-splitting setting in the repository. A job opens its cube so.

    Returns
    -------
    Cube

    Raises
    ------
    CubeError
        ``location`` holds no cube, or the branch/snapshot/tag does not exist; with
        ``for_writing``, another process writes the local cube, or the view is pinned.

    Notes
    -----
    A local cube takes one writing process at a time: a second one gets a CubeError
    naming the process that writes it (pid, host, since when). The lock is the operating
    system's, so it goes with the process that held it, however that process ended.
    Reading never takes it.
    """
    if snapshot is not None and tag is not None:
        raise CubeError("open_cube: give snapshot or tag, not both")
    if for_writing and (snapshot is not None or tag is not None):
        raise CubeError("open_cube: for_writing needs a branch, not a snapshot or tag")
    repo, name = open_repository(location)
    if not for_writing:
        return Cube._open(repo, name, branch=branch, snapshot=snapshot, tag=tag)
    lock = _writer_lock(name)
    try:
        cube = Cube._open(repo, name, branch=branch, writer_lock=lock)
        cube._prepare_writer()
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return cube


class Cube:
    """A cube in an Icechunk repository, seen at a branch tip or pinned to a snapshot.

    Made by :func:`create_cube` or :func:`open_cube`. A branch view reads the branch's
    current tip every time and can append; a view pinned to a snapshot or tag is read-only.
    """

    def __init__(
        self,
        repository: icechunk.Repository,
        location: str,
        grid: CubeGrid,
        *,
        branch: str = "main",
        snapshot: str | None = None,
        writer_lock: _lock.WriterLock | None = None,
    ) -> None:
        self._repo = repository
        self.location = location
        self._grid = grid
        self.branch = branch
        self._snapshot = snapshot
        self._lock: _lock.WriterLock | None = None
        self._writer_ready = False
        if writer_lock is not None:
            self._hold(writer_lock)

    def _hold(self, lock: _lock.WriterLock) -> None:
        self._lock = lock
        # a view dropped without close() still gives its share of the lock back
        weakref.finalize(self, lock.release)

    @classmethod
    def _open(
        cls,
        repo: icechunk.Repository,
        name: str,
        *,
        branch: str = "main",
        snapshot: str | None = None,
        tag: str | None = None,
        writer_lock: _lock.WriterLock | None = None,
    ) -> Cube:
        try:
            if tag is not None:
                snapshot = repo.lookup_tag(tag)
            if snapshot is not None:
                session = repo.readonly_session(snapshot_id=snapshot)
            else:
                session = repo.readonly_session(branch)
        except (icechunk.IcechunkError, ValueError) as exc:
            what = f"tag {tag!r}" if tag else f"snapshot {snapshot!r}" if snapshot else branch
            detail = getattr(exc, "message", str(exc))
            raise CubeError(f"cube {name!r}: cannot open {what}: {detail}") from None
        attrs = root_attrs(session.store)
        if not attrs or MARKER not in attrs:
            if snapshot is None and is_unfinished(repo):
                raise CubeError(
                    f"{name!r} holds a cube whose creation was interrupted; run the job "
                    "again, or create_cube() there, to complete it"
                )
            raise CubeError(f"{name!r} is an Icechunk repository but not a cube")
        check_format(attrs[MARKER], name, pinned=snapshot is not None)
        try:
            grid = CubeGrid.from_dict(attrs["grid"])
        except (KeyError, GridError) as exc:
            raise CubeError(f"cube {name!r}: bad grid in the root attributes: {exc}") from None
        return cls(repo, name, grid, branch=branch, snapshot=snapshot, writer_lock=writer_lock)

    def __repr__(self) -> str:
        at = f"snapshot={self._snapshot!r}" if self._snapshot else f"branch={self.branch!r}"
        return f"Cube({self.location!r}, {at}, shape={self._grid.shape})"

    # -- reading -------------------------------------------------------------------------

    @property
    def grid(self) -> CubeGrid:
        """The cube's grid."""
        return self._grid

    @property
    def repository(self) -> icechunk.Repository:
        """The underlying Icechunk repository."""
        return self._repo

    @property
    def read_only(self) -> bool:
        """True when the view is pinned to a snapshot or tag."""
        return self._snapshot is not None

    @property
    def snapshot_id(self) -> str:
        """The snapshot seen now: the pinned one, or the branch tip."""
        return self._snapshot or self._repo.lookup_branch(self.branch)

    def session(self) -> icechunk.Session:
        """A read-only Icechunk session at :attr:`snapshot_id`."""
        return self._repo.readonly_session(snapshot_id=self.snapshot_id)

    def to_xarray(self, *, sortby_time: bool = True) -> xr.Dataset:
        """The cube as a lazy, georeferenced Dataset (``.rio.crs``, ``.rio.transform()``).

        Parameters
        ----------
        sortby_time : bool
            Read the time slots in acquisition order (default), so that ``time`` is
            monotonic and ``.sel(time=slice(...))`` works whatever order the scenes were
            committed in. False gives the stored order: commit order, by acquisition
            within a commit.
        """
        ds = xr.open_zarr(self.session().store, consolidated=False, zarr_format=3, chunks={})
        ds = decode_dataset(ds)
        if "spatial_ref" in ds.data_vars:
            ds = ds.set_coords("spatial_ref")
        if sortby_time and not ds.indexes["time"].is_monotonic_increasing:
            # a stable sort: scenes of one acquisition time keep their stored order
            ds = ds.sortby("time")
        return ds

    def _group(self) -> zarr.Group:
        return zarr.open_group(self.session().store, mode="r")

    def scene_ids(self) -> set[str]:
        """The ledger: ids of the scenes stored at :attr:`snapshot_id`."""
        return _ledger(self._group())

    def history(self) -> list[dict[str, Any]]:
        """Commits leading to :attr:`snapshot_id`, newest first.

        Returns
        -------
        list of dict
            ``{"id", "parent_id", "time" (datetime, UTC), "message", "metadata"}``.
        """
        return [
            {
                "id": s.id,
                "parent_id": s.parent_id,
                "time": s.written_at,
                "message": s.message,
                "metadata": dict(s.metadata),
            }
            for s in self._repo.ancestry(snapshot_id=self.snapshot_id)
        ]

    def stale_years(self) -> list[int]:
        """Years whose per-year layers miss scenes appended since they were last built.

        Walks the commit history from the newest commit: a scene appended by a commit is
        covered when a later ``rebuild_yearly`` commit built its year. Jobs rebuild these
        years too, so a job that crashed before its rebuild is made whole by the next run.
        """
        group = self._group()
        year_of = dict(
            zip(
                (str(s) for s in group["scene_id"][:].tolist()),
                (int(y) for y in years_of(group["time"][:])),
                strict=True,
            )
        )
        covered: set[int] = set()
        stale: set[int] = set()
        for commit in self.history():
            meta = commit["metadata"]
            if meta.get("action") == "rebuild_yearly":
                covered |= {int(y) for y in meta.get("years", [])}
            elif meta.get("action") == "append_scenes":
                stale |= {year_of[s] for s in meta.get("scene_ids", []) if s in year_of}
                stale -= covered
        return sorted(stale)

    def create_tag(self, tag: str, snapshot: str | None = None) -> str:
        """Tag ``snapshot`` (default :attr:`snapshot_id`) for later ``open_cube(tag=...)``.

        Returns the tagged snapshot id; CubeError if the tag exists or the name is bad.
        """
        check_tag_name(tag, f"cube {self.location!r}")
        snap = snapshot or self.snapshot_id
        if tag in self._repo.list_tags():
            raise CubeError(
                f"cube {self.location!r} already has a tag {tag!r}; its tags: "
                f"{', '.join(map(repr, sorted(self._repo.list_tags())))}"
            )
        try:
            self._repo.create_tag(tag, snap)
        except (icechunk.IcechunkError, ValueError) as exc:
            raise CubeError(
                f"cube {self.location!r}: cannot create tag {tag!r}: {icechunk_detail(exc)}"
            ) from None
        return snap

    # -- writing -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop writing: give back this view's share of the local writer lock.

        Reading goes on working; a later write takes the lock again. Also called when the
        view is used as a context manager (``with open_cube(p, for_writing=True) as c:``).
        """
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        self._writer_ready = False

    def __enter__(self) -> Cube:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _prepare_writer(self) -> None:
        """Become the writer: the local writer lock, then the repository's write settings."""
        if self._writer_ready:
            return
        if self._lock is None or self._lock.released:
            lock = _writer_lock(self.location)
            if lock is not None:
                self._hold(lock)
        self._repo = ensure_writer_config(self._repo, self.location)
        self._writer_ready = True

    def _writable(self, what: str) -> icechunk.Session:
        if self.read_only:
            raise CubeError(
                f"{what}: this view of {self.location!r} is pinned to snapshot "
                f"{self._snapshot!r} and read-only; open the branch to write"
            )
        self._prepare_writer()
        return self._repo.writable_session(self.branch)

    def _commit(self, session: icechunk.Session, message: str, metadata: dict) -> str:
        try:
            return session.commit(message, metadata=metadata)
        except icechunk.ConflictError as exc:
            # Say what was lost: a batch of scenes, or only a rebuild of derived layers.
            if metadata.get("action") == "rebuild_yearly":
                lost = (
                    f"the per-year layers of {year_ranges(metadata.get('years', []))} were not "
                    "rebuilt (the scenes stored before are untouched). Rebuild them again from "
                    "the new tip"
                )
            else:
                lost = "nothing of this batch was stored. Re-read the ledger and retry the batch"
            raise CubeConflictError(
                f"another writer committed to branch {self.branch!r} of {self.location!r} "
                f"first; {lost}. ({exc.message})"
            ) from None

    def append_scenes(
        self,
        scenes: Sequence[xr.Dataset],
        *,
        metadata: Mapping[str, Any],
        message: str,
        reject_empty: bool = False,
    ) -> str | None:
        """Append scenes that are already on the cube grid, as new time slots, in ONE commit.

        Parameters
        ----------
        scenes : sequence of xarray.Dataset
            Each with dims ``(y, x)`` equal to the grid's, or to the window of the grid its
            ``grid_window`` attribute ``[row0, col0, rows, cols]`` declares (what
            ``to_grid(..., window=True)`` and ``scene_on_grid`` hand over; only that window
            is written) (lazy dask data welcome; same CRS and coordinates when it carries
            them), holding any of the scene-level
            variables (missing ones read as their fill: NaN, land_cover no_data, quality
            FILL) and, as scalar coordinates or attributes, ``scene_id``, ``time`` (or
            ``acquired``), ``sensor``, ``platform`` (required) and ``product_id``,
            ``sun_elevation``, ``pattern_set``, ``pattern_set_sha256``, ``rules``,
            ``rules_sha256`` (optional). Other variables are ignored.
        metadata : mapping
            JSON-able commit metadata (job id, pattern-set hash, rule table, ...);
            ``scene_ids`` (the new ones), ``skipped_scene_ids``, ``action`` and
            ``updm_dask_version`` are added when absent.
        message : str
            Commit message.
        reject_empty : bool
            Check, after the chunks are written and before the commit, that every new
            scene has a valid (not no_data) land-cover pixel on the grid; if any has none,
            commit nothing and raise :class:`EmptyScenesError` naming them.

        Returns
        -------
        str or None
            The new snapshot id; None when every scene was already stored.

        Raises
        ------
        CubeError
            A scene lacks scene_id, time, sensor or platform or has a bad dtype; bad
            metadata/message; a read-only view.
        GridError
            A scene is not on the cube grid (dims, shape, coordinates, CRS).
        CubeConflictError
            Another writer committed to the branch while this batch was written.
        EmptyScenesError
            With ``reject_empty``: scenes without any valid pixel on the grid.

        Notes
        -----
        Scenes whose scene_id is in the ledger, or repeated within the batch, are skipped:
        a scene is never stored twice. New scenes take new time slots (in acquisition
        order within the batch); every slot owns its chunks ``(1, C, C)``. The active dask
        scheduler computes and writes the chunks through forked Icechunk sessions, one task
        per block writing every layer of that block and counting its valid land-cover
        pixels (so ``reject_empty`` lists no chunk keys), and only this process commits,
        once: one snapshot per batch. Any exception before the commit (in validation or
        during the computation) leaves the branch exactly as it was. The commit metadata
        records the window of each scene that does not cover the whole grid
        (``scene_windows``) for :meth:`rebuild_yearly`.
        """
        if isinstance(scenes, xr.Dataset) or not isinstance(scenes, Sequence):
            raise CubeError("append_scenes: scenes must be a sequence of xarray.Dataset")
        if not isinstance(message, str) or not message.strip():
            raise CubeError("append_scenes: message must be a non-empty string")
        meta = json_metadata(metadata)
        session = self._writable("append_scenes")
        # Every change goes through one fork of the clean session: forking a session with
        # uncommitted changes (the resize below) would flush them to a second snapshot.
        fork = session.fork()
        along_time = ("time", *TIME_COORDS)
        arrays = open_arrays(fork.store, (*SCENE_VARIABLES, *along_time))
        chunks = tuple(arrays["uCw"].chunks[1:])
        ledger = {str(s) for s in arrays["scene_id"][:].tolist()}
        new: list[SceneRecord] = []
        skipped: list[str] = []
        for i, scene in enumerate(scenes):
            rec = scene_record(scene, i, self._grid, chunks)
            if rec.scene_id in ledger:
                skipped.append(rec.scene_id)
                continue
            ledger.add(rec.scene_id)
            new.append(rec)
        if not new:
            log.info("append_scenes: all %d scene(s) already in %s", len(skipped), self.location)
            return None
        new.sort(key=lambda s: (s.time, s.scene_id))

        n0, k = int(arrays["time"].shape[0]), len(new)
        ny, nx = self._grid.shape
        resize_arrays(
            arrays,
            {
                **{name: (n0 + k, ny, nx) for name in SCENE_VARIABLES},
                **{name: (n0 + k,) for name in along_time},
            },
        )
        values = {name: np.array([s.coords[name] for s in new], dtype=STR) for name in STR_COORDS}
        values["time"] = np.array([(s.time - _EPOCH_US).astype(np.int64) for s in new])
        values["sun_elevation"] = np.array(
            [s.coords["sun_elevation"] for s in new], dtype=np.float32
        )
        fill_arrays(arrays, n0, values)
        # Each scene writes its own window of the grid only (missing layers and the rest of
        # the slot read as the fill value), so its tasks follow its pixels, not the grid.
        sources, names, regions = [], [], []
        for i, s in enumerate(new):
            r0, c0, rows, cols = s.window
            region = (slice(n0 + i, n0 + i + 1), slice(r0, r0 + rows), slice(c0, c0 + cols))
            for name in SCENE_VARIABLES:
                if name in s.data:
                    sources.append(_with_time_axis(s.data[name]))
                    names.append(name)
                    regions.append(region)
        valid = write_dask(fork, sources, names, regions)
        if reject_empty:
            empty = [s.scene_id for i, s in enumerate(new) if not (valid or {}).get(n0 + i)]
            if empty:
                raise EmptyScenesError(
                    f"{len(empty)} scene(s) have no valid pixel on the grid of "
                    f"{self.location!r} (all fill, or outside it): {', '.join(empty)}; "
                    "nothing of this batch was stored",
                    empty,
                )
        session.merge(fork)

        meta.setdefault("action", "append_scenes")
        meta.setdefault("scene_ids", [s.scene_id for s in new])
        meta.setdefault("skipped_scene_ids", skipped)
        # where each scene lies on the grid: a per-year rebuild touches only these chunks.
        # A scene covering the whole grid is left out (a scene without a recorded window
        # covers the whole grid): Icechunk rewrites the metadata of every earlier commit at
        # each commit, so what one commit records is paid again by every later one.
        whole = (0, 0, *self._grid.shape)
        meta.setdefault(
            "scene_windows", {s.scene_id: list(s.window) for s in new if s.window != whole}
        )
        meta.setdefault("updm_dask_version", _version())
        snap = self._commit(session, message, meta)
        log.info("appended %d scene(s) to %s: snapshot %s", k, self.location, snap)
        return snap

    def rebuild_yearly(
        self, years: Iterable[int] | None = None, *, message: str | None = None
    ) -> str | None:
        """(Re)build the per-year layers for some years, in ONE commit.

        Parameters
        ----------
        years : iterable of int, optional
            Years to recompute (those a job touched). Default: every year with a scene.
            Years without any scene are ignored.
        message : str, optional
            Commit message.

        Returns
        -------
        str or None
            The new snapshot id; None when none of ``years`` has a scene.

        Raises
        ------
        CubeError
            ``years`` are not integers; a read-only view.
        CubeConflictError
            Another writer committed to the branch meanwhile.

        Notes
        -----
        Per pixel and year: the most frequent class among the clear observations (ties:
        vegetation > urban > water; no_data without a clear observation), the median
        MVIUPD of the clear observations, their count, and the count of those in the
        yearly class (see :func:`~updm_dask.cube.yearly_summary` for "clear"). The
        ``year`` axis holds every year built so far, sorted; layers of years not asked for
        are carried over from the previous snapshot (all years are rebuilt when the stored
        layers lack a variable of this version). The gap-filled (complete) annual maps are
        not stored: queries compute them from these layers, so they follow any rebuilt
        year (see :mod:`updm_dask.query.complete`). A year is rebuilt from its own scenes
        only, over the chunks they touched (their windows, recorded at append; scenes
        appended without one count as covering the grid): one task per block of about a
        scene chunk reads the slots of the year's scenes that touch it and rewrites that
        block's per-year chunks, in place, in one snapshot. The arrays are created anew
        (years not asked for carried over, one more snapshot) for the first build, a year
        before the last one built, or layers that lack a variable. Chunks: (up to
        ``updm.chunks.yearly-years`` years) x ``updm.chunks.yearly`` pixels.
        """
        return rebuild_yearly_layers(self, years, message)


def _with_time_axis(arr: da.Array) -> da.Array:
    """``arr[None]`` as a blockwise operation, which dask fuses with its neighbours."""
    return da.blockwise(
        _add_axis,
        "tyx",
        arr,
        "yx",
        new_axes={"t": 1},
        dtype=arr.dtype,
        meta=np.empty((0, 0, 0), dtype=arr.dtype),
        concatenate=True,
    )


def _add_axis(block: np.ndarray) -> np.ndarray:
    return block[None]


def _ledger(group: zarr.Group) -> set[str]:
    return {str(s) for s in group["scene_id"][:].tolist()}


#: What every reader accepts as a cube: an open :class:`Cube` or its location.
CubeLike = Cube | str | os.PathLike


def resolve_cube(
    cube: CubeLike,
    *,
    snapshot: str | None = None,
    tag: str | None = None,
    branch: str = "main",
) -> Cube:
    """The cube view a query reads: the branch tip, or a named commit (snapshot) or tag.

    Parameters
    ----------
    cube : Cube, str or path-like
        An open cube or its location (local path or ``s3://bucket/prefix``).
    snapshot, tag : str, optional
        Read the cube as it was at this Icechunk snapshot id or tag (at most one), so an
        old analysis can be reproduced exactly. Default: the tip of ``branch``.
    branch : str
        Branch whose tip is read when no snapshot or tag is given.

    Returns
    -------
    Cube

    Raises
    ------
    VersionError
        Both ``snapshot`` and ``tag`` given, or the snapshot/tag/branch does not exist in
        the cube.
    CubeError
        The location holds no cube, or ``cube`` is neither a Cube nor a location.
    """
    if snapshot is not None and tag is not None:
        raise VersionError("give a snapshot (commit id) or a tag, not both")
    for name, value in (("snapshot", snapshot), ("tag", tag)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise VersionError(f"{name}: expected a non-empty string, got {value!r}")
    if isinstance(cube, Cube):
        if snapshot is None and tag is None:
            return cube
        location: str | os.PathLike = cube.location
    elif isinstance(cube, str | os.PathLike):
        location = cube
    else:
        raise CubeError(
            f"cube: expected a Cube or a cube location (path or s3:// URL), "
            f"got {type(cube).__name__}"
        )
    try:
        return open_cube(location, branch=branch, snapshot=snapshot, tag=tag)
    except CubeError:
        if snapshot is None and tag is None and branch == "main":
            raise
        # the location is a cube (else re-raise as is): the commit named is what is wrong.
        # Icechunk's own text (a Rust span trace) is no help here; say what exists instead.
        base = open_cube(location)
        if tag:
            tags = sorted(base._repo.list_tags())
            known = f"its tags: {', '.join(map(repr, tags))}" if tags else "it has no tags"
            raise VersionError(f"cube {base.location!r} has no tag {tag!r}; {known}") from None
        if snapshot:
            raise VersionError(
                f"cube {base.location!r} has no commit {snapshot!r} (expected a snapshot id "
                f"such as its newest, {base.snapshot_id!r}); list commits with `updm info`"
            ) from None
        branches = ", ".join(map(repr, sorted(base._repo.list_branches())))
        raise VersionError(
            f"cube {base.location!r} has no branch {branch!r}; its branches: {branches}"
        ) from None
