"""What a cube holds, summarised for ``updm info CUBE``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import zarr

from ..geo.points import format_lat, format_lon, lonlat_bounds
from ._cube import resolve_cube
from ._yearly import year_ranges, years_of


def _grid_summary(g: Any) -> dict[str, Any]:
    """The grid part of a summary: CRS, resolution, shape, bounds and lon/lat bounds."""
    return {
        "grid": {
            "crs": g.crs,
            "resolution": g.resolution,
            "shape": list(g.shape),
            "bounds": list(g.bounds),
        },
        "lonlat_bounds": list(lonlat_bounds(g)),
    }


def _dtype_name(dtype: Any) -> str:
    return "str" if getattr(dtype, "kind", "") == "T" else str(dtype)


def cube_info(
    location: str | os.PathLike,
    *,
    branch: str = "main",
    snapshot: str | None = None,
    tag: str | None = None,
) -> dict[str, Any]:
    """JSON-able summary of a cube, for ``updm info CUBE``.

    Parameters
    ----------
    location : str or path-like
        The cube (local folder or ``s3://bucket/prefix``).
    branch : str
        Branch whose tip is summarised (ignored with ``snapshot``/``tag``).
    snapshot, tag : str, optional
        Summarise the cube as it was at this snapshot id or tag (at most one of them).

    Returns
    -------
    dict
        ``location``, ``title``, ``branch``, ``tag``, ``snapshot``, ``grid`` (crs, resolution,
        shape, bounds), ``lonlat_bounds`` (the grid's west, south, east, north in WGS84
        degrees), ``variables`` and ``coordinates`` (name -> dims, dtype, shape,
        chunks), ``scenes`` (total, per_sensor, per_decade), ``years`` (with scenes),
        ``yearly_years`` (built), ``commits`` (id, time, message; newest first).

    Raises
    ------
    CubeError
        ``location`` holds no cube.
    VersionError
        The tag or snapshot does not exist (naming it, the location and, for a tag, the
        tags there are).
    """
    # the query commands' resolution: an unknown tag or commit is named with what exists
    cube = resolve_cube(location, snapshot=snapshot, tag=tag, branch=branch)
    group = zarr.open_group(cube.session().store, mode="r")
    variables: dict[str, Any] = {}
    coordinates: dict[str, Any] = {}
    for name, arr in sorted(group.arrays()):
        dims = list(arr.metadata.dimension_names or ())
        entry = {
            "dims": dims,
            "dtype": _dtype_name(arr.dtype),
            "shape": list(arr.shape),
            "chunks": list(arr.chunks),
        }
        (variables if len(dims) >= 2 else coordinates)[name] = entry
    years = years_of(group["time"][:])
    sensors = [str(s) for s in group["sensor"][:].tolist()]
    decades: dict[str, int] = {}
    for y in sorted(int(y) for y in years):
        key = f"{y // 10 * 10}s"
        decades[key] = decades.get(key, 0) + 1
    per_sensor: dict[str, int] = {}
    for s in sorted(sensors):
        per_sensor[s] = per_sensor.get(s, 0) + 1
    g = cube.grid
    return {
        "location": cube.location,
        "title": group.attrs.get("title"),
        "branch": branch,
        "tag": tag,
        "snapshot": cube.snapshot_id,
        **_grid_summary(g),
        "variables": variables,
        "coordinates": coordinates,
        "scenes": {"total": len(sensors), "per_sensor": per_sensor, "per_decade": decades},
        "years": sorted({int(y) for y in years}),
        "yearly_years": [int(y) for y in group["year"][:]] if "year" in group else [],
        "commits": [
            {"id": c["id"], "time": c["time"].isoformat(), "message": c["message"]}
            for c in cube.history()
        ],
    }


def format_cube_info(info: Mapping[str, Any]) -> str:
    """Plain-text report of :func:`cube_info` output."""
    g = info["grid"]
    b = g["bounds"]
    lines = [
        f"cube        {info['location']}",
        (
            f"tag         {info['tag']} at snapshot {info.get('snapshot', '?')}"
            if info.get("tag")
            else f"branch      {info.get('branch', 'main')} at snapshot {info.get('snapshot', '?')}"
        ),
        f"title       {info.get('title') or ''}",
        f"grid        {g['crs']}, {g['resolution']:g} m, {g['shape'][0]} x {g['shape'][1]} "
        f"pixels, bounds ({b[0]:.10g}, {b[1]:.10g}, {b[2]:.10g}, {b[3]:.10g})",
        f"scenes      {info['scenes']['total']}",
    ]
    if "lonlat_bounds" in info:  # summaries saved before lon/lat bounds were added lack it
        w, s, e, n = info["lonlat_bounds"]
        lines.insert(
            4,
            f"lon/lat     {format_lon(w)} to {format_lon(e)}, {format_lat(s)} to {format_lat(n)}",
        )
    for sensor, n in info["scenes"]["per_sensor"].items():
        lines.append(f"  {sensor:<10}{n}")
    if info["scenes"]["per_decade"]:
        per_decade = ", ".join(f"{d} {n}" for d, n in info["scenes"]["per_decade"].items())
        lines.append(f"decades     {per_decade}")
    lines.append(f"years       {year_ranges(info['years'])}")
    lines.append(f"yearly      {year_ranges(info['yearly_years'])}")
    for title, key in (("variables", "variables"), ("coordinates", "coordinates")):
        entries = info.get(key, {})
        lines.append(title)
        width = max((len(n) for n in entries), default=0)
        for name, v in entries.items():
            dims = ", ".join(v["dims"])
            lines.append(
                f"  {name:<{width}}  {v['dtype']:<8} ({dims}) shape {tuple(v['shape'])} "
                f"chunks {tuple(v['chunks'])}"
            )
    lines.append(f"commits     {len(info['commits'])}, newest first")
    for c in info["commits"]:
        lines.append(f"  {c['id']}  {c['time']}  {c['message']}")
    return "\n".join(lines)


def _bytes_on_disk(location: str) -> int | None:
    """Bytes of the files under a local location (None for an object store)."""
    if "://" in location:
        return None
    total = 0
    for root, _, files in os.walk(location):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass  # a file removed meanwhile (gc, a temporary file renamed)
    return total


def collection_info(location: str | os.PathLike, *, tag: str | None = None) -> dict[str, Any]:
    """JSON-able summary of a tiled collection, for ``updm info LOCATION``.

    Parameters
    ----------
    location : str or path-like
        The collection (local folder or ``s3://bucket/prefix``).
    tag : str, optional
        Summarise the collection as the catalogue tag recorded it.

    Returns
    -------
    dict
        ``location``, ``tag``, ``title``, ``grid`` (crs, resolution, shape, bounds),
        ``lonlat_bounds``, ``tiling`` (edge, rows, cols, total), ``tiles`` (present, row by
        row), ``per_tile`` (tile -> scenes, years, snapshot), ``scenes`` (distinct ids over
        the tiles), ``years`` (with scenes), ``bytes`` (on disk; None for object stores),
        ``tags`` (of the catalogue).

    Raises
    ------
    CubeError
        ``location`` holds no collection, or the tag does not exist.
    """
    from ._tiles import open_collection

    coll = open_collection(location, tag=tag)
    per_tile: dict[str, Any] = {}
    ids: set[str] = set()
    years: set[int] = set()
    for tile in coll.tiles():
        cube = coll.open_tile(tile)
        group = zarr.open_group(cube.session().store, mode="r")
        sids = {str(s) for s in group["scene_id"][:].tolist()}
        tile_years = sorted({int(y) for y in years_of(group["time"][:])})
        per_tile[tile] = {"scenes": len(sids), "years": tile_years, "snapshot": cube.snapshot_id}
        ids |= sids
        years |= set(tile_years)
    g = coll.grid
    attrs = coll._attrs()
    return {
        "location": coll.location,
        "tag": tag,
        "title": attrs.get("title") or "",
        **_grid_summary(g),
        "tiling": {
            "edge": coll.tiling.edge,
            "rows": coll.tiling.rows,
            "cols": coll.tiling.cols,
            "total": len(coll.tiling),
        },
        "tiles": list(per_tile),
        "per_tile": per_tile,
        "scenes": {"distinct": len(ids)},
        "years": sorted(years),
        "bytes": _bytes_on_disk(coll.location),
        "tags": coll.tags(),
    }


def format_collection_info(info: Mapping[str, Any]) -> str:
    """Plain-text report of :func:`collection_info` output."""
    g, t = info["grid"], info["tiling"]
    b = g["bounds"]
    w, s, e, n = info["lonlat_bounds"]
    size = info.get("bytes")
    lines = [
        f"collection  {info['location']}" + (f" at tag {info['tag']}" if info.get("tag") else ""),
        f"title       {info.get('title') or ''}",
        f"grid        {g['crs']}, {g['resolution']:g} m, {g['shape'][0]} x {g['shape'][1]} "
        f"pixels, bounds ({b[0]:.10g}, {b[1]:.10g}, {b[2]:.10g}, {b[3]:.10g})",
        f"lon/lat     {format_lon(w)} to {format_lon(e)}, {format_lat(s)} to {format_lat(n)}",
        f"tiles       {len(info['tiles'])} present of {t['total']} ({t['rows']} x {t['cols']} "
        f"tiles of {t['edge']} pixels)",
        f"scenes      {info['scenes']['distinct']} distinct over the tiles",
        f"years       {year_ranges(info['years'])}",
        # what the location holds today, every snapshot and tile: a tag shares its objects
        # with the other states, so no size is its own
        f"bytes       {size:,} on disk now (every snapshot of every tile)"
        if size is not None
        else "bytes       (object store: not counted)",
        f"tags        {', '.join(info['tags']) if info['tags'] else 'none'}",
        "per tile    (updm info LOCATION --tile ID shows one)",
    ]
    for tile, v in info["per_tile"].items():
        lines.append(
            f"  {tile:<8}{v['scenes']:>6} scene(s), years {year_ranges(v['years'])}, "
            f"snapshot {v['snapshot']}"
        )
    return "\n".join(lines)
