"""Looking after a tiled collection: compaction and garbage collection over its tiles.

``updm compact`` and ``updm gc`` given a tiled collection run on every tile it lists (or
those asked for), one tile after the other, each in its own commits, exactly as they run
on one cube. A tile that fails (another process writes it, a conflict, a bad tile) is
reported and the others go on; what a tile finished stays done. ``gc`` also expires the
catalogue's old snapshots, keeping its tags, and every tile keeps its tags (the
collection's tags pin them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..errors import CubeError
from ._catalogue import _catalogue_lock, _child
from ._collection import Collection
from ._cube import Cube, open_cube
from ._gc import GarbageReport, check_days, collect_garbage, collect_repository
from ._tiles import open_collection
from ._tiling import tile_order
from ._timeblocks import compact_time_blocks, time_blocks_info

__all__ = [
    "CollectionUpkeep",
    "collect_collection_garbage",
    "compact_collection",
    "describe_compaction",
]


@dataclass
class CollectionUpkeep:
    """What :func:`compact_collection` or :func:`collect_collection_garbage` did, per tile."""

    location: str
    action: str
    #: tile -> what was done there (one line)
    done: dict[str, str] = field(default_factory=dict)
    #: tile -> why it failed (one line); the other tiles went on
    failed: dict[str, str] = field(default_factory=dict)
    #: gc only: the catalogue's own report
    catalogue: GarbageReport | None = None
    #: gc only: bytes freed over the tiles and the catalogue
    bytes_freed: int = 0

    @property
    def exit_code(self) -> int:
        """0 when every tile succeeded, 1 when one failed."""
        return 1 if self.failed else 0

    def format(self) -> str:
        """The lines ``updm compact`` / ``updm gc`` print after the tiles' own lines."""
        tiles = len(self.done) + len(self.failed)
        head = (
            f"tiled collection {self.location}: {self.action} of {tiles} tile(s): "
            f"{len(self.done)} done, {len(self.failed)} failed"
        )
        lines = [head]
        if self.catalogue is not None:
            lines.append(
                f"catalogue: {self.catalogue.snapshots_expired} snapshot(s) expired, "
                f"{self.catalogue.snapshots_deleted} deleted (tags kept)"
            )
        if self.action == "gc":
            lines.append(f"freed: {self.bytes_freed:,} bytes")
        for tile in sorted(self.failed, key=tile_order):
            lines.append(f"  {tile}  FAILED: {self.failed[tile]}")
        if self.failed:
            again = " ".join(f"--tile {t}" for t in sorted(self.failed, key=tile_order))
            lines.append(f"run it again for the failed tile(s): {again}")
        return "\n".join(lines)


def describe_compaction(cube: Cube, snapshot: str | None) -> str:
    """One line saying what :func:`compact_time_blocks` did to ``cube``."""
    info = time_blocks_info(cube.session().store) or {}
    if snapshot is None:
        return f"{cube.location}: already compacted ({info.get('slots', 0)} time slot(s))"
    return (
        f"{cube.location}: compacted {info['slots']} time slot(s) into time blocks of "
        f"{info['block_slots']} slots x {info['edge']}x{info['edge']} pixels; "
        f"snapshot {snapshot}"
    )


def _selected(collection: Collection, tiles: Sequence[str] | None) -> list[str]:
    present = collection.tiles()
    if tiles is None:
        return present
    for tile in tiles:
        collection.tiling.index(tile)  # a malformed id or one outside the tiling: named
        if tile not in present:
            listed = ", ".join(present) if present else "none yet"
            raise CubeError(
                f"tiled collection {collection.location!r}: tile {tile!r} holds no data; "
                f"tiles present: {listed}"
            )
    return sorted(set(tiles), key=tile_order)


def _each_tile(
    collection: Collection,
    tiles: list[str],
    upkeep: CollectionUpkeep,
    work: Callable[[str], str],
    echo: Callable[[str], None] | None,
) -> None:
    for tile in tiles:
        try:
            upkeep.done[tile] = work(collection.tile_location(tile))
        except CubeError as exc:  # this tile only: the others go on
            upkeep.failed[tile] = " ".join(str(exc).split())
            line = f"{collection.tile_location(tile)}: FAILED: {upkeep.failed[tile]}"
        else:
            line = upkeep.done[tile]
        if echo is not None:
            echo(line)


def compact_collection(
    location: str,
    *,
    tiles: Sequence[str] | None = None,
    echo: Callable[[str], None] | None = None,
) -> CollectionUpkeep:
    """:func:`compact_time_blocks` on every tile of a tiled collection (or on ``tiles``).

    Parameters
    ----------
    location : str
        The collection's location.
    tiles : sequence of str, optional
        Tile ids; default every tile the catalogue lists.
    echo : callable, optional
        Called with one line per tile as it finishes.

    Returns
    -------
    CollectionUpkeep
        Each tile is compacted in its own commit; a tile that fails (for instance because
        another process writes it) is in ``failed`` and the others are done.

    Raises
    ------
    CubeError
        ``location`` holds no tiled collection, or a tile asked for holds no data.
    """
    collection = open_collection(location)
    chosen = _selected(collection, tiles)
    upkeep = CollectionUpkeep(collection.location, "compaction")

    def compact(where: str) -> str:
        with open_cube(where, for_writing=True) as cube:
            return describe_compaction(cube, compact_time_blocks(cube))

    _each_tile(collection, chosen, upkeep, compact, echo)
    return upkeep


def collect_collection_garbage(
    location: str,
    *,
    older_than_days: float | None = None,
    tiles: Sequence[str] | None = None,
    echo: Callable[[str], None] | None = None,
) -> CollectionUpkeep:
    """:func:`collect_garbage` on every tile of a tiled collection, then its catalogue.

    Parameters
    ----------
    location : str
        The collection's location.
    older_than_days : float, optional
        As for :func:`collect_garbage` (default ``updm.cube.gc-older-than-days``).
    tiles : sequence of str, optional
        Tile ids; default every tile the catalogue lists. The catalogue is collected
        either way.
    echo : callable, optional
        Called with one line per tile as it finishes.

    Returns
    -------
    CollectionUpkeep
        Tags are always kept, in the tiles and in the catalogue: the collection's tags
        pin the tiles' tagged snapshots.

    Raises
    ------
    CubeError
        ``location`` holds no tiled collection, a tile asked for holds no data, or
        ``older_than_days`` is not a number of days >= 0.
    """
    days = check_days(older_than_days)
    collection = open_collection(location)
    chosen = _selected(collection, tiles)
    upkeep = CollectionUpkeep(collection.location, "gc")

    def collect(where: str) -> str:
        report = collect_garbage(where, older_than_days=days)
        upkeep.bytes_freed += report.bytes_freed
        return (
            f"{where}: {report.snapshots_expired} snapshot(s) expired, "
            f"{report.bytes_freed:,} bytes freed"
        )

    _each_tile(collection, chosen, upkeep, collect, echo)
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=float(days))
    with _catalogue_lock(collection.location):  # no local driver commits meanwhile
        upkeep.catalogue = collect_repository(
            collection.repository, _child(collection.location, "catalogue"), cutoff, True
        )
    upkeep.bytes_freed += upkeep.catalogue.bytes_freed
    return upkeep
