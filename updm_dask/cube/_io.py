"""Where a cube lives (local path or s3://) and how dask writes into its sessions."""

from __future__ import annotations

import os
import pickle
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import dask
import dask.array as da
import dask.threaded
import icechunk
import icechunk.session
import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from .. import config
from ..errors import CubeError
from ._arrays import NO_EMPTY, open_arrays
from ._chunks import write_region


class CubeConflictError(CubeError):
    """Another writer committed to the branch first; re-read the ledger and retry."""


class EmptyScenesError(CubeError):
    """Scenes of a batch hold no valid pixel on the cube grid; nothing was stored.

    ``scene_ids`` names them, so the caller can record them and append the rest.
    """

    def __init__(self, message: str, scene_ids: Sequence[str]) -> None:
        super().__init__(message)
        self.scene_ids = tuple(scene_ids)

    def __reduce__(self):  # keep scene_ids when pickled between processes
        return (type(self), (str(self), self.scene_ids))


def storage_for(location: str | os.PathLike) -> tuple[icechunk.Storage, str]:
    """Icechunk storage for a local path, ``file://`` or ``s3://bucket/prefix`` URL.

    Returns the storage and the location's display name (absolute path or URL, never a
    credential). S3 settings come from the environment: credentials through the standard
    chain (``from_env``: no secret is copied into the storage object, so none travels in
    a task graph), ``AWS_REGION``/``AWS_DEFAULT_REGION``, and
    ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL`` for S3-compatible servers (then path-style
    addressing, and plain http when the endpoint says so).
    """
    try:
        loc = os.fspath(location)
    except TypeError:
        raise CubeError(
            f"cube location must be a path or an s3:// URL, got {type(location).__name__}"
        ) from None
    if not isinstance(loc, str) or not loc.strip():
        raise CubeError(f"cube location must be a path or an s3:// URL, got {location!r}")
    if "://" not in loc:
        path = Path(loc).expanduser().resolve()
        if path.exists() and not path.is_dir():
            raise CubeError(f"cube location {str(path)!r} is a file, not a directory")
        return icechunk.local_filesystem_storage(str(path)), str(path)
    url = urlparse(loc)
    if "@" in url.netloc:
        # never echo such a URL: it would print the secret
        raise CubeError(
            "cube location: credentials inside the URL are not supported; "
            "set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY instead"
        )
    if url.scheme == "file":
        return storage_for(url.path)
    if url.scheme != "s3":
        raise CubeError(
            f"cube location {loc!r}: unsupported scheme {url.scheme!r} "
            "(expected a local path, file:// or s3://bucket/prefix)"
        )
    bucket, prefix = url.netloc, url.path.strip("/")
    if not bucket or not prefix:
        raise CubeError(
            f"cube location {loc!r}: expected s3://bucket/prefix (a prefix inside the bucket)"
        )
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    storage = icechunk.s3_storage(
        bucket=bucket,
        prefix=prefix,
        region=region or None,
        endpoint_url=endpoint or None,
        allow_http=bool(endpoint and endpoint.lower().startswith("http://")),
        force_path_style=bool(endpoint),
        from_env=True,
    )
    return storage, f"s3://{bucket}/{prefix}"


#: Files an interrupted ``Repository.create`` leaves in a local directory, in the order
#: Icechunk writes them (each through a ``NAME#n`` temporary file renamed into place): the
#: initial snapshot, its transaction log, then the ``repo`` record that makes the
#: directory a repository. Nothing else is ever removed by :func:`clear_unfinished`.
_INITIAL_SNAPSHOT = "1CECHNKREP0F1RSTCMT0"
_CREATE_LEFTOVERS = {"snapshots": _INITIAL_SNAPSHOT, "transactions": _INITIAL_SNAPSHOT}


def repository_config() -> icechunk.RepositoryConfig:
    """The Icechunk settings every cube is created and written with.

    Manifests are split along ``time`` every ``updm.cube.manifest-split-scenes`` time slots,
    so a commit rewrites only the manifests of the slots it wrote: its cost follows the
    batch, not the number of scenes already in the cube. Arrays without a ``time`` axis
    keep one manifest each.

    No manifest is preloaded when a session opens. Icechunk's default preload matches every
    manifest reference of the snapshot against its coordinate-name patterns, compiling the
    patterns anew each time, in a background thread that competes with the writer: with
    splitting, a cube of thousands of scenes holds hundreds of references, and that work
    made a commit of 32 scenes twice as slow at 3,200 scenes as at 100. A cube's
    coordinates are a few small chunks, read when first asked for.
    """
    size = config.get("cube.manifest-split-scenes")
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise CubeError(
            "dask config updm.cube.manifest-split-scenes: expected a positive whole number "
            f"of time slots, got {size!r}"
        )
    splitting = icechunk.ManifestSplittingConfig.from_dict(
        {
            icechunk.ManifestSplitCondition.AnyArray(): {
                icechunk.ManifestSplitDimCondition.DimensionName("^time$"): size
            }
        }
    )
    preload = icechunk.ManifestPreloadConfig(preload_if=icechunk.ManifestPreloadCondition.false())
    return icechunk.RepositoryConfig(
        manifest=icechunk.ManifestConfig(splitting=splitting, preload=preload)
    )


def _manifest_settings(repo_config: icechunk.RepositoryConfig) -> tuple[str, str]:
    """What :func:`ensure_writer_config` keeps in line: split sizes and preload."""
    manifest = repo_config.manifest
    splitting = manifest.splitting if manifest is not None else None
    preload = manifest.preload if manifest is not None else None
    return (
        repr(splitting.split_sizes) if splitting is not None else "",
        repr(preload) if preload is not None else "",
    )


def ensure_writer_config(repo: icechunk.Repository, name: str) -> icechunk.Repository:
    """``repo`` with :func:`repository_config`'s manifest settings, saved in the repository.

    A cube made before manifests were split (or with another split size, or with
    Icechunk's manifest preload) gets the current settings persisted, so that every later
    opener writes with them; its existing manifests stay as they are until a commit
    rewrites them. Returns ``repo`` itself when nothing changes, else a reopened repository.
    """
    wanted = repository_config()
    if _manifest_settings(repo.config) == _manifest_settings(wanted):
        return repo
    try:
        repo = repo.reopen(config=wanted)
        repo.save_config()
    except icechunk.IcechunkError as exc:
        raise CubeError(
            f"cube {name!r}: cannot save its manifest-splitting setting: {exc.message}"
        ) from None
    return repo


def unfinished_leftovers(path: Path) -> list[Path] | None:
    """The entries of ``path`` an interrupted creation left, or None if it holds others.

    The writer lock file is neither; an empty directory gives ``[]``.
    """
    from ._lock import LOCK_NAME

    leftovers: list[Path] = []
    for entry in path.iterdir():
        if entry.name == LOCK_NAME:
            continue
        if entry.is_file() and not entry.is_symlink() and entry.name.startswith("repo#"):
            leftovers.append(entry)
            continue
        initial = _CREATE_LEFTOVERS.get(entry.name)
        if initial is None or not entry.is_dir() or entry.is_symlink():
            return None
        for item in entry.iterdir():
            if not item.is_file() or item.name.split("#", 1)[0] != initial:
                return None
        leftovers.append(entry)
    return leftovers


def clear_unfinished(path: Path) -> bool:
    """Remove what an interrupted ``Repository.create`` left in the local directory ``path``.

    Returns True when ``path`` holds nothing else than such leftovers (and the writer lock
    file) and they were removed, so that a repository can be created there; False when it
    holds anything else, which is then left untouched.
    """
    leftovers = unfinished_leftovers(path)
    if leftovers is None:
        return False
    for entry in leftovers:
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    return True


def cube_exists(location: str | os.PathLike) -> bool:
    """Whether ``location`` holds an Icechunk repository (a cube, or what is left of one).

    Parameters
    ----------
    location : str or path-like
        Local directory or ``s3://bucket/prefix``.

    Raises
    ------
    CubeError
        The location is malformed or cannot be reached.

    Notes
    -----
    What an interrupted :func:`~updm_dask.cube.create_cube` left (a repository with only
    its initial commit and no cube in it) does not count: ``create_cube`` at that location
    finishes the creation, so a job that was killed while creating its cube resumes.
    """
    storage, name = storage_for(location)
    if not repository_exists(storage, name):
        return False
    try:
        repo = icechunk.Repository.open(storage)
    except icechunk.IcechunkError:
        return True  # a repository, if a broken one: opening it says what is wrong
    return not is_unfinished(repo)


def tip_state(repo: icechunk.Repository) -> tuple[bool, dict[str, Any] | None] | None:
    """Whether the tip of ``main`` is the initial commit, and its root attributes.

    Both are read at one tip, read once: a commit landing meanwhile changes neither
    answer. None when the repository's refs are not all written yet (a creation under way).
    """
    try:
        tip = repo.lookup_branch("main")
        first = next(iter(repo.ancestry(snapshot_id=tip)))
        attrs = root_attrs(repo.readonly_session(snapshot_id=tip).store)
    except (icechunk.IcechunkError, StopIteration, ValueError):
        return None
    return first.parent_id is None, attrs


def is_unfinished(repo: icechunk.Repository) -> bool:
    """Whether ``repo`` holds nothing but its initial commit (an interrupted creation)."""
    state = tip_state(repo)
    return state is not None and state[0] and state[1] is None


def repository_exists(storage: icechunk.Storage, name: str) -> bool:
    """Whether an Icechunk repository exists at ``storage`` (CubeError if unreachable)."""
    try:
        return icechunk.Repository.exists(storage)
    except icechunk.IcechunkError as exc:
        raise CubeError(f"cannot reach cube location {name!r}: {exc.message}") from None


def open_repository(location: str | os.PathLike) -> tuple[icechunk.Repository, str]:
    """Open the repository at ``location``; CubeError naming it when there is none."""
    storage, name = storage_for(location)
    if not repository_exists(storage, name):
        catalogue = name.rstrip("/") + "/catalogue" if "://" in name else f"{name}/catalogue"
        if repository_exists(*storage_for(catalogue)):
            tile = f"{name.rstrip('/')}/tiles/<id>"
            raise CubeError(
                f"{name!r} is a tiled collection, not a single cube: give one tile's cube, "
                f"{tile} (`updm info {name}` lists the tiles); in Python, "
                "open_collection() opens it and Collection.open_tile() one tile"
            )
        raise CubeError(f"{name!r} is not a cube (no Icechunk repository there)")
    try:
        return icechunk.Repository.open(storage), name
    except icechunk.IcechunkError as exc:
        raise CubeError(f"cannot open the cube repository at {name!r}: {exc.message}") from None


def root_attrs(store: Any) -> dict[str, Any] | None:
    """Attributes of the root group, or None when the store has no root group."""
    try:
        group = zarr.open_group(store, mode="r")
    except (FileNotFoundError, KeyError, ValueError, icechunk.IcechunkError):
        return None
    return dict(group.attrs)


def zstd_codec() -> ZstdCodec:
    """Zstandard codec at the ``updm.compression.zstd-level`` level."""
    level = config.get("compression.zstd-level")
    try:
        return ZstdCodec(level=int(level))
    except (TypeError, ValueError):
        raise CubeError(
            f"dask config updm.compression.zstd-level: expected an integer, got {level!r}"
        ) from None


def chunk_edge(value: Any, key: str) -> int:
    """A positive chunk edge: ``value``, else ``updm.<key>`` of the dask config."""
    c = config.get(key) if value is None else value
    if isinstance(c, bool) or not isinstance(c, int) or c <= 0:
        what = "chunks" if value is not None else f"dask config updm.{key}"
        raise CubeError(f"{what}: expected a positive whole number of pixels, got {c!r}")
    return c


#: The layer whose valid pixels say whether a scene holds anything.
COUNTED = "land_cover"


def _fork_for(session: icechunk.Session) -> icechunk.session.ForkSession:
    """The fork that tasks write through: ``session`` itself when it is one already.

    Forking a session with uncommitted changes flushes them to an extra snapshot, so
    writers make their changes (resizes, coordinates) in a fork of a clean session and
    hand that fork here: one snapshot per commit.
    """
    if isinstance(session, icechunk.session.ForkSession):
        return session
    return session.fork()


def merge_forks(session: icechunk.Session, fork: Any, results: Sequence[Any]) -> None:
    """Merge the forks tasks returned into ``fork``, then ``fork`` into ``session``.

    Parameters
    ----------
    session : icechunk.Session
        The session the caller commits (or ``fork`` itself).
    fork : icechunk.session.ForkSession
        The fork the tasks wrote through.
    results : sequence of ForkSession
        The forks the tasks handed back (copies from worker processes, or ``fork``).
    """
    seen = {id(fork)}
    others = []
    for f in results:
        if id(f) not in seen:  # threads share one fork object; merge each copy once
            seen.add(id(f))
            others.append(f)
    if others:
        fork.merge(*others)
    if fork is not session:
        session.merge(fork)


def sessions_of(arrays: Iterable[Any]) -> tuple[Any, ...]:
    """The fork sessions a task wrote through: one per distinct store of ``arrays``.

    Arrays opened on one store share its session when they travel together to a worker;
    ``store.session`` makes a new wrapper at each access, so asking each array for it
    would hand back (and pickle, and merge) one copy per array.
    """
    stores = {id(a.store): a.store for a in arrays}
    return tuple(store.session for store in stores.values())


class ForkArrays:
    """Zarr arrays opened on one fork, sent to a computation's tasks as one graph entry.

    In the process that opened them, the tasks share them: threads write through the one
    fork, which the caller merges once. A worker process receives one copy for all its
    tasks, and each task writes through a private copy of that fork (:meth:`for_task`), so
    that it hands back its own writes only: handing back the shared copy would send every
    earlier task's writes again with each result, quadratic in the tasks of a worker.
    """

    def __init__(self, arrays: Mapping[str, Any]) -> None:
        self.arrays = dict(arrays)
        self._pid = os.getpid()

    def __getitem__(self, name: str) -> Any:
        return self.arrays[name]

    def for_task(self) -> dict[str, Any]:
        """The arrays one task writes through (see the class docstring)."""
        if os.getpid() == self._pid:
            return self.arrays
        copies: dict[int, Any] = {}
        out = {}
        for name, arr in self.arrays.items():
            store = arr.store
            if id(store) not in copies:  # the store pickles its fork: a copy of it
                copies[id(store)] = pickle.loads(pickle.dumps(store))
            inner = arr.async_array
            out[name] = zarr.Array(
                zarr.AsyncArray(
                    inner.metadata,
                    zarr.storage.StorePath(copies[id(store)], inner.store_path.path),
                    inner.config,
                )
            )
        return out


def _write_block(
    targets: ForkArrays,
    paths: tuple[str, ...],
    region: tuple[slice, ...],
    count: int | None,
    fill: Any,
    *blocks: np.ndarray,
) -> tuple[tuple[Any, ...], int]:
    """Write one block of every layer of one scene; return ``(forks, valid pixels)``.

    ``targets`` maps every layer path of the batch to its array, opened once by the caller
    on one fork: opening Zarr arrays inside threaded tasks on a shared Icechunk session can
    deadlock. It is one entry of the graph that every block task refers to, so the fork
    travels to each worker once, not inside every task (see :class:`ForkArrays`).
    """
    mine = targets.for_task()
    arrays = tuple(mine[p] for p in paths)
    write_region(arrays, region, blocks)
    forks = sessions_of(arrays)
    # Emptiness from the pixels just computed: no listing of stored chunks afterwards.
    valid = 0 if count is None else int(np.count_nonzero(blocks[count] != fill))
    return forks, valid


def fuse_into_sinks(dsk: Mapping[Any, Any], sinks: Sequence[Any]) -> dict[Any, Any]:
    """``dsk`` with every task that one sink alone needs fused into that sink's task.

    Parameters
    ----------
    dsk : mapping of key to dask task (``dask._task_spec`` nodes)
        An optimised low-level graph.
    sinks : sequence of keys
        The tasks whose results are wanted (one write per block). They keep their keys.

    Returns
    -------
    dict
        The graph where each sink runs, in one task, the subgraph of the tasks no other
        sink (nor anything outside it) depends on: for a scene block, the reads of its
        files, the fused kernel, the layer picks, the encoding and the write. Tasks that
        several sinks need (a scene-wide reduction) stay tasks of their own.

    Notes
    -----
    Dask's own fusion stops at fan-outs: the kernel's output feeds one pick per layer, so
    the kernel, each pick and the write would be separate tasks (about a dozen per block),
    each costing scheduler time and a transfer of the block between workers.
    """
    from dask._task_spec import Task

    deps = {k: set(v.dependencies) & dsk.keys() for k, v in dsk.items()}
    dependents: dict[Any, set[Any]] = {k: set() for k in dsk}
    for k, ds in deps.items():
        for d in ds:
            dependents[d].add(k)
    wanted = set(sinks)
    out = dict(dsk)
    for sink in sinks:
        if sink not in out:
            continue
        group = {sink}
        while True:  # grow to a fixed point: a task joins once all its dependents are in
            new = {
                d
                for k in group
                for d in deps[k]
                if d not in group and d not in wanted and dependents[d] <= group
            }
            if not new:
                break
            group |= new
        if len(group) > 1:
            out[sink] = Task.fuse(*(dsk[k] for k in group), key=sink)
            for k in group - {sink}:
                del out[k]
    return out


def _block_regions(
    chunks: tuple[tuple[int, ...], ...], origin: tuple[int, ...]
) -> dict[tuple[int, ...], tuple[slice, ...]]:
    """The region of the target each block of an array of ``chunks`` covers, from ``origin``."""
    edges = [np.concatenate([[0], np.cumsum(c)]).astype(int) for c in chunks]
    return {
        index: tuple(
            slice(o + int(e[i]), o + int(e[i + 1]))
            for o, e, i in zip(origin, edges, index, strict=True)
        )
        for index in np.ndindex(*(len(c) for c in chunks))
    }


def _write_graph(
    targets_key: str,
    arrays: Sequence[da.Array],
    paths: tuple[str, ...],
    origin: tuple[int, ...],
    count: int | None,
    fill: Any,
) -> tuple[dict[Any, Any], list[Any]]:
    """The graph writing every block of one group of layers, one fused task per block.

    Returns the graph (without the ``targets_key`` entry) and its sinks' keys, in block
    order. Each sink reads, computes and writes that block of every layer
    (:func:`fuse_into_sinks`) and refers to the arrays by ``targets_key``.
    """
    from dask._task_spec import Task, TaskRef, convert_legacy_graph
    from dask.core import flatten
    from dask.highlevelgraph import HighLevelGraph

    graph = HighLevelGraph.merge(*(a.__dask_graph__() for a in arrays))
    needed = [k for a in arrays for k in flatten(a.__dask_keys__())]
    dsk = convert_legacy_graph(dict(arrays[0].__dask_optimize__(graph, needed)))
    name = f"updm-write-{uuid.uuid4().hex}"
    keys = []
    for index, region in _block_regions(arrays[0].chunks, origin).items():
        key = (name, *index)
        dsk[key] = Task(
            key,
            _write_block,
            TaskRef(targets_key),
            paths,
            region,
            count,
            fill,
            *(TaskRef((a.name, *index)) for a in arrays),
        )
        keys.append(key)
    return fuse_into_sinks(dsk, keys), keys


def _compute_writes(
    targets: Mapping[str, Any],
    writes: Sequence[tuple[Sequence[da.Array], tuple[str, ...], tuple[int, ...], int | None]],
    fill: Any,
) -> list[list[tuple[tuple[Any, ...], int]]]:
    """Write every block of every group of layers, one task per block; their results.

    ``writes`` holds, per group, the layers (dask arrays of one chunking), their target
    paths, the target index of their first element and which layer's valid pixels to
    count. Each block's task reads, computes and writes that block of every layer of its
    group (:func:`_write_graph`) and refers to ``targets`` by key: the arrays and their
    fork are one entry of the graph, sent to each worker once. Uses dask's task-spec graph
    nodes (``dask._task_spec``), the form ``optimize`` hands back; tests/cube/test_graph.py
    pins what this does with the installed dask.

    On a distributed cluster each group (a scene's layers) is submitted as soon as its
    graph is built, so the workers start on the first scene while the driver builds the
    others' graphs (a tenth of a batch's wall time on two workers, when it was serial);
    dask's own schedulers run one graph of all groups.
    """
    from dask._task_spec import DataNode
    from dask.base import get_scheduler

    layers = [a for arrays, *_ in writes for a in arrays]
    get = get_scheduler(collections=layers)
    targets_key = f"updm-targets-{uuid.uuid4().hex}"
    entry = DataNode(targets_key, ForkArrays(targets))
    client = _distributed_client(get)
    if client is not None:
        futures = []
        for arrays, paths, origin, count in writes:
            dsk, keys = _write_graph(targets_key, arrays, paths, origin, count, fill)
            dsk[targets_key] = entry
            futures.append(_submit_graph(client, dsk, keys))
        # The active client hands back every block's (forks, valid pixels) by key, without
        # a gathering task; a failed block raises here (the other futures are released).
        return [list(r) for r in client.gather(futures)]
    dsk = {targets_key: entry}
    sinks: list[list[Any]] = []
    for arrays, paths, origin, count in writes:
        graph, keys = _write_graph(targets_key, arrays, paths, origin, count, fill)
        dsk.update(graph)
        sinks.append(keys)
    flat = list(_run_graph(get, dsk, [k for keys in sinks for k in keys]))
    results, at = [], 0
    for keys in sinks:
        results.append(flat[at : at + len(keys)])
        at += len(keys)
    return results


def run_tasks(
    calls: Sequence[tuple[Callable[..., Any], tuple[Any, ...]]], shared: Any = None
) -> list[Any]:
    """Run ``fn(*args)`` for every ``(fn, args)`` of ``calls`` as tasks of the active scheduler.

    Parameters
    ----------
    calls : sequence of (callable, tuple)
        Independent calls; their arguments are sent as they are (no collections inside).
    shared : optional
        When given, every call runs as ``fn(shared, *args)``, ``shared`` being one entry of
        the graph the tasks refer to: a worker process receives it once, not inside every
        task (the Zarr arrays of a fork, whose uncommitted changes it pickles).

    Returns
    -------
    list
        Their results, in order.

    Notes
    -----
    ``dask.compute`` of ``dask.delayed`` calls tokenizes every argument to name the
    graph: for the Zarr arrays a rebuild task carries (dataclasses over an Icechunk
    session) that cost 0.9 s of driver CPU per rebuild of a few blocks. The tasks here are
    named at random and go straight to the scheduler in use (a distributed client's, or
    dask's threaded one by default).
    """
    from dask._task_spec import DataNode, Task, TaskRef
    from dask.base import get_scheduler

    token = uuid.uuid4().hex
    keys = [f"updm-task-{token}-{i}" for i in range(len(calls))]
    if not keys:
        return []
    dsk: dict[Any, Any] = {}
    lead: tuple[Any, ...] = ()
    if shared is not None:
        shared_key = f"updm-shared-{token}"
        dsk[shared_key] = DataNode(shared_key, shared)
        lead = (TaskRef(shared_key),)
    for k, (fn, args) in zip(keys, calls, strict=True):
        dsk[k] = Task(k, fn, *lead, *args)
    return list(_run_graph(get_scheduler(), dsk, keys))


def _run_graph(get: Callable[..., Any] | None, dsk: dict[Any, Any], keys: list[Any]) -> Any:
    """``get(dsk, keys)``, handing a distributed client a graph it will not tokenize.

    A distributed client wraps a plain graph in an expression named by a deterministic
    token of every task: each argument is normalised, dataclasses field by field and
    partials pickled, which cost the driver 1 s of CPU per batch of eight 2,048^2 scenes
    (a tenth of the job). The keys here are unique already (uuid names), so the
    expression is handed a random token instead. Dask's own schedulers do not tokenize.
    """
    if get is None:
        get = dask.threaded.get
    if _distributed_client(get) is not None:
        return get(_untokenized(dsk), keys)
    return get(dsk, keys)


def _untokenized(dsk: dict[Any, Any]) -> Any:
    """``dsk`` as the expression a distributed client takes, named by a random token."""
    from dask._expr import LLGExpr

    return LLGExpr(dsk, _determ_token=uuid.uuid4().hex)


def _distributed_client(get: Callable[..., Any] | None) -> Any:
    """The distributed client whose ``get`` ``get`` is, or None for dask's own schedulers."""
    client = getattr(get, "__self__", None)
    if client is not None and type(client).__module__.startswith("distributed"):
        return client
    return None


def _submit_graph(client: Any, dsk: dict[Any, Any], keys: list[Any]) -> list[Any]:
    """Submit ``dsk`` to ``client`` without waiting; the futures of ``keys``.

    Named by a random token, as in :func:`_run_graph`. A key the scheduler already holds
    (the batch's targets, an entry of every group's graph) keeps the task it has: the
    workers that have the entry are not sent it again.
    """
    return client.get(_untokenized(dsk), keys, sync=False)


def write_dask(
    session: icechunk.Session,
    sources: list[da.Array],
    names: list[str],
    start: int | Sequence[tuple[slice, ...]],
) -> dict[int, int] | None:
    """Compute ``sources`` into the arrays ``names`` of ``session``; return valid counts.

    Parameters
    ----------
    session : icechunk.Session or ForkSession
        Where the writes land. Tasks write through a fork of it (picklable to any worker)
        and their forks are merged back; only the caller commits. Hand a
        :class:`~icechunk.session.ForkSession` holding the uncommitted metadata changes
        (see :func:`_fork_for`) to keep one snapshot per commit.
    sources : list of dask.array.Array
        The data, with their first axis the arrays' first (time or year) axis.
    names : list of str
        Target array of each source.
    start : int or sequence of tuple of slice
        An int: every source is written whole from this index of its target's first axis
        (its dask blocks must coincide with the Zarr chunks). A sequence: one region
        ``(time slice, row slice, column slice)`` per source; the sources sharing one
        region (the layers of one scene) are written together, one task per block writing
        that block of every layer. Blocks must cover chunks no other block touches: their
        inner edges on chunk edges.

    Returns
    -------
    dict of int to int or None
        With regions: per time index written, the number of valid ``land_cover`` pixels
        (not no_data), counted in the blocks as they are written, so that emptiness needs
        no listing of stored chunks; 0 for a scene without land cover. With an int: None.

    Notes
    -----
    All-fill chunks are not written. Nothing is committed; an exception leaves
    ``session`` without any of the writes.
    """
    if not sources:
        return None if isinstance(start, int) else {}
    fork = _fork_for(session)
    if isinstance(start, int):
        from icechunk.dask import store_dask

        opened = open_arrays(fork.store, list(dict.fromkeys(names)), config=NO_EMPTY)
        targets = [opened[n] for n in names]
        regions = [
            (slice(start, start + s.shape[0]),) + (slice(None),) * (s.ndim - 1) for s in sources
        ]
        merged = store_dask(sources=sources, targets=targets, regions=regions)
        merge_forks(session, fork, [merged])
        return None
    if len(start) != len(sources) or len(names) != len(sources):
        raise CubeError(
            f"write_dask: {len(sources)} sources, {len(names)} names and {len(start)} regions"
        )
    from ._schema import SCENE_VARIABLES  # the schema imports this module

    fill = SCENE_VARIABLES[COUNTED].fill
    groups: dict[tuple, list[int]] = {}
    for i, region in enumerate(start):
        key = tuple((r.start, r.stop) for r in region)
        groups.setdefault(key, []).append(i)
    writes = []
    slots = []
    # Every target on one store object (``fork.store`` makes a new one at each call), in one
    # round: a task pickles its targets, and each store pickles its own copy of the fork
    # with every uncommitted change (21 kB for a batch's resizes), so eight layers on eight
    # stores made a 180 kB task and handed back eight forks to merge instead of one.
    opened = open_arrays(fork.store, list(dict.fromkeys(names)), config=NO_EMPTY)
    for key, members in groups.items():
        paths = tuple(names[i] for i in members)
        counted = paths.index(COUNTED) if COUNTED in paths else None
        first = sources[members[0]]
        # one chunking for the group's layers: block i of each is block i of the write
        arrays = [
            sources[i] if sources[i].chunks == first.chunks else sources[i].rechunk(first.chunks)
            for i in members
        ]
        writes.append((arrays, paths, (key[0][0], key[1][0], key[2][0]), counted))
        slots.append(key[0][0])
    results = _compute_writes(opened, writes, fill)
    forks: list[Any] = []
    valid: dict[int, int] = {}
    for slot, result in zip(slots, results, strict=True):
        for fs, n in result:
            forks.extend(fs)
            valid[slot] = valid.get(slot, 0) + n
    merge_forks(session, fork, forks)
    return valid
