"""Catalogue: what one commit of a tiled collection's catalogue costs as its tiles fill.

A job over a continent runs thousands of tiles; each tile's run registers the tile in the
catalogue (one commit) and records the scenes whose footprint box touches the tile but
which hold only fill there (a tilted scene's collar: a few per scene). This script plays
that out on a real collection (tiles of a 1,024 x 1,024-tile grid, every tile a real
Icechunk cube made by ``create_tile``): tile after tile, the tile is created, its scenes
without data are recorded (``Collection.record_empty``, ``EMPTY`` real-length product ids
per tile) and it is registered. At checkpoints it reports:

* the bytes of the catalogue's newest snapshot (what one more catalogue commit writes),
* the time of one registration commit (the mean of the checkpoint's last few),
* the time of one tile's record of its scenes without data,
* the bytes of the catalogue's folder.

Target: a catalogue commit's bytes and time grow with the number of tiles (the list of
tiles it holds), not with the scenes recorded: the ratio "snapshot bytes with records /
without" at the last checkpoint stays near 1 (a second collection, same tiles, no
records, is grown beside it). The load average is read at the start and at the end.

Usage::

    python benchmarks/bench_catalogue.py [--quick] [--json PATH]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import _common
from affine import Affine

from updm_dask.cube import create_collection
from updm_dask.geo import CubeGrid

#: Tiles run, and the checkpoints at which figures are taken.
TILES, QUICK_TILES = 256, 16
#: Scenes without data recorded per tile.
EDGE = 8
EMPTY = 16
#: Registration commits averaged at each checkpoint.
WINDOW = 4


def checkpoints(total: int) -> list[int]:
    """Tile counts at which figures are taken: 1/16, 1/4 and all of ``total``."""
    return sorted({max(1, total // 16), max(1, total // 4), total})


def product_id(tile: int, k: int) -> str:
    """A Landsat product id of real length, unique per (tile, k)."""
    return f"LT05_L1TP_{100 + tile % 100:03d}{tile // 100:03d}_{1984 + k:04d}0309_20161214_01_T1"


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def grow(folder: Path, total: int, empty: int) -> list[dict[str, float]]:
    """Run ``total`` tiles into a new collection; figures at :func:`checkpoints`."""
    side = 1024
    grid = CubeGrid("EPSG:32637", Affine(30, 0, 0, 0, -30, 0), (side * EDGE, side * EDGE))
    coll = create_collection(folder, grid, edge=EDGE)
    marks = set(checkpoints(total))
    commits: list[float] = []
    records: list[float] = []
    out: list[dict[str, float]] = []
    for i in range(total):
        tile = f"r{i // side}c{i % side}"
        coll.create_tile(tile, register=False).close()
        start = time.perf_counter()
        coll.record_empty(tile, [product_id(i, k) for k in range(empty)])
        records.append(time.perf_counter() - start)
        start = time.perf_counter()
        coll.create_tile(tile).close()  # registers it: one catalogue commit
        commits.append(time.perf_counter() - start)
        if i + 1 in marks:
            snap = coll.repository.lookup_branch("main")
            catalogue = folder / "catalogue"
            out.append(
                {
                    "tiles": i + 1,
                    "snapshot_bytes": (catalogue / "snapshots" / snap).stat().st_size,
                    "register_s": sum(commits[-WINDOW:]) / len(commits[-WINDOW:]),
                    "record_s": sum(records[-WINDOW:]) / len(records[-WINDOW:]),
                    "catalogue_bytes": folder_bytes(catalogue),
                }
            )
    return out


def run(quick: bool = False) -> dict[str, Any]:
    """Grow a collection with and one without records; JSON-ready summary with ``rows``."""
    env = _common.environment()
    total = QUICK_TILES if quick else TILES
    load_before = os.getloadavg()
    start = time.perf_counter()
    with _common.workspace("updm-bench-catalogue-") as tmp:
        with_records = grow(tmp / "with", total, EMPTY)
        without = grow(tmp / "without", total, 0)
    seconds = time.perf_counter() - start
    load_after = os.getloadavg()
    rows = []
    for rec in with_records:
        n = rec["tiles"]
        rows.append(_common.row(f"catalogue snapshot at {n} tiles", rec["snapshot_bytes"], "B"))
        rows.append(_common.row(f"registration commit at {n} tiles", rec["register_s"] * 1e3, "ms"))
        rows.append(
            _common.row(
                f"record of {EMPTY} scenes without data at {n} tiles", rec["record_s"] * 1e3, "ms"
            )
        )
        rows.append(_common.row(f"catalogue folder at {n} tiles", rec["catalogue_bytes"], "B"))
    last, bare = with_records[-1], without[-1]
    ratio = last["snapshot_bytes"] / bare["snapshot_bytes"]
    rows.append(
        _common.row(
            f"catalogue snapshot at {last['tiles']} tiles, {EMPTY} records per tile / none",
            ratio,
            "x",
            "<= 1.1",
            ratio <= 1.1,
        )
    )
    rows.append(
        _common.row(
            f"catalogue folder at {last['tiles']} tiles, {EMPTY} records per tile / none",
            last["catalogue_bytes"] / bare["catalogue_bytes"],
            "x",
        )
    )
    rows.append(
        _common.row(
            f"registration commit at {last['tiles']} tiles, with records / none",
            last["register_s"] / bare["register_s"],
            "x",
        )
    )
    rows.append(_common.row("load average (1 min) before the run", load_before[0] + 1e-9, "load"))
    rows.append(_common.row("load average (1 min) after the run", load_after[0] + 1e-9, "load"))
    return {
        "benchmark": "catalogue",
        "rows": rows,
        "config": {"quick": quick, "tiles": total, "empty_per_tile": EMPTY, "edge": EDGE},
        "checkpoints": {"with": with_records, "without": without},
        "seconds": seconds,
        "load_average": {"before": list(load_before), "after": list(load_after)},
        "environment": env,
    }


def report(summary: dict[str, Any]) -> str:
    """Human-readable table of :func:`run` output."""
    cfg = summary["config"]
    load = summary["load_average"]
    head = (
        f"catalogue benchmark: {cfg['tiles']} tiles, {cfg['empty_per_tile']} scenes without "
        f"data recorded per tile; load average {load['before'][0]:.2f} before, "
        f"{load['after'][0]:.2f} after; {summary['seconds']:.0f} s"
    )
    return head + "\n" + _common.format_rows(summary["rows"])


if __name__ == "__main__":
    sys.exit(_common.bench_main(run, report, __doc__.split("\n")[0]))
