"""Rebuilding a cube's per-year layers: which years, which blocks, one commit.

:meth:`Cube.rebuild_yearly <updm_dask.cube.Cube.rebuild_yearly>` runs :func:`rebuild_yearly`
(its docstring says what is built); the kernels and the per-block task are in
:mod:`._yearly`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import dask.array as da
import icechunk
import numpy as np
import zarr

from ..errors import CubeError
from ._arrays import NO_EMPTY, fill_arrays, open_arrays, resize_arrays
from ._io import ForkArrays, chunk_edge, merge_forks, run_tasks, write_dask, zstd_codec
from ._schema import YEARLY_VARIABLES, encode_layer, packed_codec
from ._yearly import (
    rebuild_block,
    rebuild_names,
    touched_blocks,
    year_ranges,
    yearly_layers_outdated,
    years_of,
)

if TYPE_CHECKING:
    from ._cube import Cube

log = logging.getLogger("updm_dask.cube")


def rebuild_yearly(cube: Cube, years: Iterable[int] | None, message: str | None) -> str | None:
    """:meth:`Cube.rebuild_yearly <updm_dask.cube.Cube.rebuild_yearly>` of ``cube``."""
    from .. import __version__  # the package imports this module while it starts

    session = cube._writable("rebuild_yearly")
    base = session.snapshot_id
    present = open_arrays(session.store, ("time", "year", *YEARLY_VARIABLES), missing_ok=True)
    scene_years = years_of(present["time"][:])
    available = {int(y) for y in scene_years}
    if years is None:
        target = set(available)
    else:
        try:
            asked = {int(y) for y in years}
        except (TypeError, ValueError):
            raise CubeError(f"rebuild_yearly: years must be integers, got {years!r}") from None
        target = asked & available
    if not target:
        return None
    existing = [int(y) for y in present["year"][:]] if "year" in present else []
    outdated = bool(existing) and yearly_layers_outdated(present, cube.location)
    if outdated:
        # layers built by an older version lack a variable, hold the old clear-count
        # fill or an unpacked median: rebuild every year, so that all of them agree
        log.info("rebuild_yearly: %s holds older per-year layers; rebuilding all years", cube)
        target = set(available)
    all_years = sorted(set(existing) | target)
    done = sorted(target)
    ny, nx = cube.grid.shape

    in_place = existing and not outdated and all(y in existing or y > existing[-1] for y in target)
    # The layers stay in place: new years go at the end of the year axis and only the
    # chunks the rebuilt years' scenes touch are rewritten. Every change goes through one
    # fork of the clean session: one snapshot.
    if in_place:
        fork = session.fork()
    else:
        fork = _recreate_yearly(cube, session, base, existing, all_years, target)
    # the tasks' arrays and the ones read here, opened at once on the fork's one store
    arrays = open_arrays(fork.store, (*rebuild_names(), "year", "scene_id"), config=NO_EMPTY)
    if in_place and len(all_years) > len(existing):
        resize_arrays(
            arrays,
            {**{n: (len(all_years), ny, nx) for n in YEARLY_VARIABLES}, "year": (len(all_years),)},
        )
        fill_arrays(arrays, 0, {"year": np.array(all_years, dtype=np.int16)})

    first = arrays[next(iter(YEARLY_VARIABLES))]
    yc, ys, xs = first.chunks
    # A task covers whole per-year chunks and about one scene chunk, so that it reads
    # each scene chunk once; it writes the chunks no other task touches.
    scene_edge = arrays["land_cover"].chunks[1:]
    block = (-(-scene_edge[0] // ys) * ys, -(-scene_edge[1] // xs) * xs)
    windows = scene_windows(cube.repository, base)
    ids = [str(v) for v in arrays["scene_id"][:].tolist()]
    work: dict[tuple[int, int, int], list[tuple[int, list[int]]]] = {}
    for year in done:
        index = all_years.index(year)
        by_block: dict[tuple[int, int], list[int]] = {}
        for slot in np.flatnonzero(scene_years == year).tolist():
            window = windows.get(ids[slot], (0, 0, ny, nx))
            for ij in touched_blocks([window], block):
                by_block.setdefault(ij, []).append(slot)
        for (i, j), slots in by_block.items():
            work.setdefault((index // yc, i, j), []).append((index, slots))
    tasks = [
        (
            rebuild_block,
            (
                entries,
                (i * block[0], min((i + 1) * block[0], ny)),
                (j * block[1], min((j + 1) * block[1], nx)),
            ),
        )
        for (_, i, j), entries in sorted(work.items())
    ]
    # the arrays and their fork: one entry of the graph, sent to each worker once
    results = run_tasks(tasks, shared=ForkArrays({n: arrays[n] for n in rebuild_names()}))
    merge_forks(session, fork, [f for forks, _ in results for f in forks])
    snap = cube._commit(
        session,
        message or f"rebuild yearly layers for {year_ranges(done)}",
        {"action": "rebuild_yearly", "years": done, "updm_dask_version": __version__},
    )
    log.info(
        "rebuilt yearly layers of %s for %s over %d block(s): snapshot %s",
        cube.location,
        done,
        len(tasks),
        snap,
    )
    return snap


def _recreate_yearly(
    cube: Cube,
    session: icechunk.Session,
    base: str,
    existing: list[int],
    all_years: list[int],
    target: set[int],
) -> Any:
    """Create the per-year arrays anew for ``all_years``, carrying over the years kept.

    Used for the first build, when the year axis changes order (a year before the last
    one built) or when the stored layers lack a variable; the years in ``target`` are
    left as fill here and written by the caller over the chunks their scenes touch.
    Returns the fork to write through. Arrays deleted in a fork cannot be merged back
    from its copies, so they are replaced in ``session`` and the fork flushes them:
    this path costs a second snapshot.
    """
    group = zarr.open_group(session.store, mode="r+")
    carried = [y for y in all_years if y not in target]
    old: dict[str, da.Array] = {}
    if carried:
        # read from the immutable base snapshot, not the fork being rewritten
        rgroup = zarr.open_group(cube.repository.readonly_session(snapshot_id=base).store, mode="r")
        for n in YEARLY_VARIABLES:
            arr = rgroup[n]
            old[n] = da.from_zarr(arr, chunks=arr.chunks, name=f"updm-cube-{n}-{base}")
    for n in (*YEARLY_VARIABLES, "year"):
        if n in group:
            del group[n]
    edge = chunk_edge(None, "chunks.yearly")
    ys, xs = min(edge, cube.grid.ny), min(edge, cube.grid.nx)
    yc = min(chunk_edge(None, "chunks.yearly-years"), len(all_years))
    zstd = zstd_codec()
    ny, nx = cube.grid.shape
    group.create_array(
        "year",
        data=np.array(all_years, dtype=np.int16),
        chunks=(len(all_years),),
        compressors=[zstd],
        dimension_names=("year",),
        attributes={"long_name": "calendar year (UTC) of the acquisitions", "units": "1"},
    )
    sources = []
    for n, spec in YEARLY_VARIABLES.items():
        group.create_array(
            n,
            shape=(len(all_years), ny, nx),
            chunks=(yc, ys, xs),
            dtype=spec.dtype,
            fill_value=spec.fill,
            # packed layers: byte shuffle + zstd, as the scene layers (CF attributes
            # for xarray's decoding); the others: zstd
            compressors=[zstd if spec.scale_factor is None else packed_codec(spec, (yc, ys, xs))],
            dimension_names=("year", "y", "x"),
            attributes={
                **spec.attrs,
                **spec.cf_attrs,
                "grid_mapping": "spatial_ref",
                "coordinates": "spatial_ref",
            },
        )
        if carried:
            kept = old[n]
            if spec.scale_factor is not None and kept.dtype.kind == "f":
                # a year kept from layers stored as floats (before they were packed;
                # only a year without any scene left keeps such values, as outdated
                # layers are otherwise rebuilt whole)
                kept = encode_layer(n, kept)
            layers = [
                kept[existing.index(y)]
                if y in carried
                else da.full((ny, nx), spec.fill, dtype=spec.dtype, chunks=(ys, xs))
                for y in all_years
            ]
            sources.append(da.stack(layers, axis=0).rechunk((yc, ys, xs)))
    fork = session.fork()
    if carried:
        write_dask(fork, sources, list(YEARLY_VARIABLES), 0)
    return fork


def scene_windows(repo: icechunk.Repository, snapshot: str) -> dict[str, tuple[int, int, int, int]]:
    """Where each scene lies on the grid, as its append commit recorded it.

    Scenes appended before windows were recorded are missing: they count as covering
    the whole grid.
    """
    out: dict[str, tuple[int, int, int, int]] = {}
    for commit in repo.ancestry(snapshot_id=snapshot):
        recorded = (commit.metadata or {}).get("scene_windows")
        if isinstance(recorded, dict):
            for sid, window in recorded.items():
                if isinstance(window, list) and len(window) == 4:
                    out.setdefault(str(sid), tuple(int(v) for v in window))
    return out
