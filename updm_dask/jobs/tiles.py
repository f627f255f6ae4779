"""Jobs over a tiled collection: the unit of work is a (scene, tile) pair.

When a job's grid is larger than one tile (``[tiles] edge``, else dask config
``updm.tiles.edge``), :func:`~updm_dask.jobs.run.run_job` writes a tiled collection at
``[cube] path`` (:mod:`updm_dask.cube._tiles`) through :func:`run_tiles`:

1. each scene's footprint on the grid (from its band files' headers; no pixel is read)
   decides the tiles it touches;
2. every tile runs the job's per-cube loop on its own scenes: its ledger (resume, no scene
   stored twice), batches of one commit each, failure report, per-year rebuild of that
   tile. A task reads only the scene's window inside its tile;
3. the tiles progress at once, ``updm.tiles.concurrent`` of them in threads sharing the one
   Dask client (no barrier between tiles); a tile that fails is reported and the others
   go on;
4. ``[tiles] select`` runs only the tiles named, so that several drivers (one per tile or
   group of tiles) can share a collection.

The :class:`~updm_dask.jobs.report.JobReport` keeps its totals over the tiles (a scene is
processed when a tile stored it, skipped when every tile it touches had it already, failed
when it failed in a tile, or held no valid pixel in any of its tiles) and says per tile what
happened in ``tiles``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .. import config
from ..cube import (
    Collection,
    CubeConflictError,
    Tiling,
    collection_exists,
    create_collection,
    cube_exists,
    open_collection,
    open_cube,
    record_empty_scenes,
    tile_edge,
)
from ..errors import GridError, UpdmError
from ..geo import CubeGrid
from ..geo.regrid import grid_window
from ..messages import printable, redact
from ..pipeline import Science
from ..scenes import SceneSource, open_scene
from .keys import spec_error
from .report import _SCENE_ERRORS, JobProgress, JobReport, SceneFailure
from .spec import JobSpec

__all__ = ["open_job_collection", "run_tiles"]


def _check_select(spec: JobSpec, tiling: Tiling) -> None:
    """Refuse ``[tiles] select`` ids outside the tiling, naming them and the tiling."""
    if not spec.tile_select:
        return
    bad = []
    for tile in spec.tile_select:
        try:
            tiling.index(tile)
        except UpdmError:
            bad.append(tile)
    if bad:
        raise spec_error(
            spec.source,
            "tiles.select",
            f"unknown tile(s) {', '.join(map(repr, bad))}: the grid has {tiling.rows} x "
            f"{tiling.cols} tile(s) of {tiling.edge} pixels, ids r0c0 to "
            f"r{tiling.rows - 1}c{tiling.cols - 1}",
        )


def open_job_collection(spec: JobSpec, grid: CubeGrid | None) -> Collection | None:
    """The job's tiled collection (created when missing), or None for a single cube.

    A collection already at ``[cube] path`` is used whatever the grid's size; a single
    cube there stays a single cube; otherwise the job's grid decides: larger than one tile,
    a collection is created, else the job writes a single cube exactly as before.

    Raises
    ------
    JobSpecError
        ``[tiles] edge`` or the grid differs from the existing collection's, ``[tiles]
        select`` names tiles outside the tiling, or the edge is not a positive number.
    """
    if collection_exists(spec.cube):
        collection = open_collection(spec.cube)
        if grid is not None and collection.grid != grid:
            g = collection.grid
            raise spec_error(
                spec.source,
                "grid",
                f"the tiled collection {collection.location} already has another grid "
                f"({g.crs}, shape {g.shape}, bounds {g.bounds}) than the job declares "
                f"({grid.crs}, shape {grid.shape}, bounds {grid.bounds})",
            )
        if spec.tile_edge is not None and spec.tile_edge != collection.tiling.edge:
            raise spec_error(
                spec.source,
                "tiles.edge",
                f"{spec.tile_edge}, but the tiled collection {collection.location} has tiles "
                f"of {collection.tiling.edge} pixels (fixed when it was created)",
            )
        _check_select(spec, collection.tiling)
        return collection
    if cube_exists(spec.cube) or grid is None:
        if spec.tile_select and cube_exists(spec.cube):
            single = open_cube(spec.cube).grid
            _check_select(spec, Tiling(single, max(single.shape)))
        return None
    try:
        tiling = Tiling(grid, tile_edge(spec.tile_edge))
    except UpdmError as exc:
        raise spec_error(spec.source, "tiles.edge", str(exc)) from None
    if not tiling.tiled:
        _check_select(spec, tiling)
        return None
    _check_select(spec, tiling)
    return create_collection(
        spec.cube,
        grid,
        edge=tiling.edge,
        title=f"updm_dask tiled collection of job {printable(spec.name)}",
        exist_ok=True,
    )


def _footprints(
    scenes: list[SceneSource], tiling: Tiling
) -> tuple[dict[str, list[SceneSource]], dict[str, int], list[Any]]:
    """The tiles each scene touches (band headers only), scene sizes, and failures."""
    by_tile: dict[str, list[SceneSource]] = {}
    sizes: dict[str, int] = {}
    failed = []
    for source in scenes:
        try:
            ds = open_scene(source)
            window = grid_window(ds, tiling.grid)
        except GridError as exc:
            failed.append(SceneFailure(source.scene_id, "open", redact(str(exc))))
            continue
        except _SCENE_ERRORS as exc:
            failed.append(SceneFailure(source.scene_id, "open", redact(str(exc))))
            continue
        sizes[source.scene_id] = int(ds.sizes["y"] * ds.sizes["x"])
        for tile in tiling.tiles_of_window(*window):
            by_tile.setdefault(tile, []).append(source)
    return by_tile, sizes, failed


def _record_empty(
    cube: Any, scene_ids: list[str], report: JobReport, say: Callable[[str], None]
) -> None:
    """Record the scenes without data in ``cube``, retrying write conflicts as batches do.

    Another driver may commit to a tile both jobs run (on an object store). The records
    only spare a later run recomputing these scenes, so when every retry conflicts the tile
    goes on without them and says so.
    """
    retries = int(config.get("job.conflict-retries"))
    for attempt in range(retries + 1):
        try:
            record_empty_scenes(cube, scene_ids)
            return
        except CubeConflictError:
            report.conflicts += 1
            if attempt < retries:
                time.sleep(min(2.0 ** (attempt + 1), 30.0) * 0.1)
    say(
        f"could not record {len(scene_ids)} scene(s) without data in {cube.location} after "
        f"{retries} write conflicts; a later run computes them again"
    )


def run_tiles(
    spec: JobSpec,
    science: Science,
    collection: Collection,
    report: Any,
    progress: Callable[[Any], None] | None,
    say: Callable[[str], None],
    found: tuple[list[SceneSource], list[Any], list[Any]],
) -> None:
    """Process the job's (scene, tile) pairs into ``collection``; fill in ``report``.

    Parameters are those of the single-cube loop, with the collection instead of a cube.
    A tile that raises is recorded in ``report.tiles`` and ``report.tiles_failed``; the
    other tiles go on.
    """
    from .run import _run  # run builds on this module

    name = printable(spec.name)
    tiling = collection.tiling
    scenes, failures, duplicates = found
    report.failed += failures
    report.duplicates += duplicates
    report.found = len(scenes) + len(failures)
    by_tile, sizes, unplaced = _footprints(scenes, tiling)
    report.failed += unplaced
    tiles = sorted(by_tile, key=lambda t: tiling.index(t))
    if spec.tile_select:
        tiles = [t for t in tiles if t in spec.tile_select]
    say(
        f"updm run {name}: {len(scenes)} scenes touch {len(by_tile)} of the {len(tiling)} "
        f"tiles of {tiling.edge} pixels of {collection.location}; running "
        f"{len(tiles)} tile(s)" + (" (selected by [tiles] select)" if spec.tile_select else "")
    )
    # (scene, tile) pairs an earlier run found empty (only fill there): neither stored nor
    # computed again; each tile's are read by its own run, from the tile
    known_empty: dict[str, set[str]] = {}
    pairs = sum(len(by_tile[t]) for t in tiles)
    handled = 0
    started = time.perf_counter()

    def tell() -> None:
        if progress is not None and pairs:
            progress(
                JobProgress(name, pairs, handled, len(report.failed), report.pixels_per_second)
            )

    def one(tile: str) -> JobReport:
        prefix = f"updm run {name}:"

        def tile_say(text: str) -> None:
            say(text.replace(prefix, f"updm run {name} [tile {tile}]:", 1))

        sub = JobReport(job_id=spec.job_id, cube=collection.tile_location(tile))
        started_reports[tile] = sub  # what a tile that fails later had stored by then
        title = f"updm_dask cube of job {name}, tile {tile}"
        # registered only once it holds a scene: a tile where every scene is only fill
        # (a tilted scene's collar) is never listed as a tile with data
        cube = collection.create_tile(tile, title=title, register=False)
        known_empty[tile] = collection.empty_scenes(tile, cube)
        todo = [s for s in by_tile[tile] if s.scene_id not in known_empty[tile]]
        listed = False

        def list_once_it_holds_a_scene(_progress: JobProgress) -> None:
            # after each batch: a tile is listed from its first stored batch on, so that
            # what it holds is seen while it ingests for hours, and kept in view if a
            # later step of its run (a batch, the per-year rebuild) fails
            nonlocal listed
            if not listed and sub.done:
                collection.create_tile(tile, title=title).close()
                listed = True

        try:
            _run(spec, science, cube, sub, list_once_it_holds_a_scene, tile_say, (todo, [], []))
            holds_data = bool(cube.scene_ids())
            # in the tile itself, one commit of this tile: the catalogue never holds scenes
            _record_empty(cube, [f.scene for f in sub.failed if f.stage == "empty"], sub, tile_say)
        finally:
            cube.close()
        if holds_data and not listed:  # a kill between a batch's commit and its listing
            collection.create_tile(tile, title=title).close()
        sub.skipped += [s.scene_id for s in by_tile[tile] if s.scene_id in known_empty[tile]]
        return sub

    tell()
    subs: dict[str, JobReport] = {}
    started_reports: dict[str, JobReport] = {}
    workers = max(1, min(len(tiles), int(config.get("tiles.concurrent"))))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="updm-tile") as pool:
        futures = {tile: pool.submit(one, tile) for tile in tiles}
        for tile, future in futures.items():
            try:
                subs[tile] = future.result()
            except Exception as exc:  # one tile failing never stops the others
                reason = redact(f"{type(exc).__name__}: {exc}")
                report.tiles[tile] = f"FAILED, nothing more stored in this tile: {reason}"
                report.tiles_failed.append(tile)
                say(f"updm run {name} [tile {tile}]: failed: {reason}")
            handled += len(by_tile[tile])
            tell()

    stored: set[str] = set()
    for tile in report.tiles_failed:  # its batches committed before it failed stay stored
        partial = started_reports.get(tile)
        if partial is not None:
            stored |= set(partial.done)
            report.commits += partial.commits
    skipped: dict[str, set[str]] = {}
    empty: dict[str, list[str]] = {}
    failed: dict[str, tuple[str, str, list[str]]] = {}
    years: set[int] = set()
    stale: set[int] = set()
    for tile, sub in subs.items():
        stored |= set(sub.done)
        for sid in sub.skipped:
            if sid in known_empty[tile]:
                empty.setdefault(sid, []).append(tile)
            else:
                skipped.setdefault(sid, set()).add(tile)
        for f in sub.failed:
            if f.stage == "empty":
                empty.setdefault(f.scene, []).append(tile)
            else:
                failed.setdefault(f.scene, (f.stage, f.reason, []))[2].append(tile)
        report.commits += sub.commits
        report.conflicts += sub.conflicts
        years |= set(sub.years_rebuilt)
        stale |= set(sub.years_stale)
        report.stale_reason = report.stale_reason or sub.stale_reason
        n_empty = sum(1 for f in sub.failed if f.stage == "empty")
        report.tiles[tile] = (
            f"{len(sub.done)} scene(s) stored, {len(sub.skipped)} already there or known "
            f"empty, {n_empty} without data here, {len(sub.failed) - n_empty} failed, "
            f"{len(sub.commits)} commit(s)"
        )
    ran = set(subs) | set(report.tiles_failed)
    tiles_of: dict[str, list[str]] = {}
    for tile, sources in by_tile.items():
        for source in sources:
            tiles_of.setdefault(source.scene_id, []).append(tile)
    for source in scenes:
        sid = source.scene_id
        if sid in stored:
            report.done.append(sid)
            continue
        if sid in failed:
            stage, reason, where = failed[sid]
            report.failed.append(SceneFailure(sid, stage, f"{reason} (tile {', '.join(where)})"))
            continue
        lost = [t for t in tiles_of.get(sid, ()) if t in report.tiles_failed]
        if lost:  # counted, so that the totals add up to the scenes found
            report.failed.append(
                SceneFailure(sid, "tile", f"not stored in tile(s) {', '.join(lost)}, which failed")
            )
            continue
        touched = [t for t in tiles_of.get(sid, ()) if t in subs]
        if touched and all(t in skipped.get(sid, ()) for t in touched):
            report.skipped.append(sid)
        elif touched and sid in empty and not skipped.get(sid):
            report.failed.append(
                SceneFailure(
                    sid,
                    "empty",
                    "no valid pixel on the cube grid (all fill in tile(s) "
                    f"{', '.join(empty[sid])})",
                )
            )
        elif touched:
            report.skipped.append(sid)  # stored in some tiles before, empty in the others
    report.years_rebuilt = sorted(years)
    report.years_stale = sorted(stale)
    report.pixels = sum(sizes[s] for s in stored if s in sizes)
    report.processing_seconds = time.perf_counter() - started
    outside = [t for t in by_tile if t not in ran]
    if outside:
        say(
            f"updm run {name}: {len(outside)} other tile(s) touched by the scenes were not "
            f"selected: {', '.join(sorted(outside, key=lambda t: tiling.index(t)))}"
        )
