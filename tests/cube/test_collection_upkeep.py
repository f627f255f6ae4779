"""``updm compact`` and ``updm gc`` over the tiles of a tiled collection."""

from __future__ import annotations

import pytest
from test_commits import Holder
from test_tiles import EDGE, GRID, append

from updm_dask.cli import main
from updm_dask.cube import (
    collect_collection_garbage,
    compact_collection,
    create_collection,
    open_collection,
    open_cube,
    time_blocks_info,
)
from updm_dask.errors import CubeError


def _collection(tmp_path):
    """A collection of three tiles holding 2, 1 and 3 scenes, tagged after the first."""
    coll = create_collection(tmp_path / "c", GRID, edge=EDGE)
    held = {"r0c0": 2, "r1c2": 1, "r2c3": 3}
    for tile in held:
        with coll.create_tile(tile) as cube:
            append(cube, f"{tile}-1", "2001-01-01")
    coll.tag("v1")
    for tile, n in held.items():
        with coll.open_tile(tile, for_writing=True) as cube:
            for k in range(2, n + 1):
                append(cube, f"{tile}-{k}", f"200{k}-01-01")
    return coll, held


def _slots(coll, tile):
    return (time_blocks_info(open_cube(coll.tile_location(tile)).session().store) or {}).get(
        "slots", 0
    )


def test_compact_of_a_collection_compacts_every_tile_in_its_own_commit(tmp_path, capsys):
    coll, held = _collection(tmp_path)
    assert main(["compact", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    for tile, n in held.items():
        assert _slots(coll, tile) == n
        assert f"{coll.tile_location(tile)}: compacted {n} time slot(s)" in out
        history = open_cube(coll.tile_location(tile)).history()
        assert history[0]["metadata"].get("action") == "compact_time_blocks"
    assert "compaction of 3 tile(s): 3 done, 0 failed" in out
    # again: nothing to do, said per tile; one tile asked for: that tile only
    assert main(["compact", str(tmp_path / "c"), "--tile", "r1c2"]) == 0
    out = capsys.readouterr().out
    assert "already compacted (1 time slot(s))" in out and "r0c0" not in out
    assert "compaction of 1 tile(s): 1 done, 0 failed" in out


def test_a_tile_another_process_writes_fails_alone_and_is_named(tmp_path, capsys):
    coll, _ = _collection(tmp_path)
    busy = coll.tile_location("r1c2")
    with Holder(busy) as holder:
        assert main(["compact", str(tmp_path / "c")]) == 1
        out = capsys.readouterr().out
        assert f"{busy}: FAILED: " in out and str(holder.proc.pid) in out
        assert "3 tile(s): 2 done, 1 failed" in out
        assert "run it again for the failed tile(s): --tile r1c2" in out
        assert _slots(coll, "r0c0") == 2 and _slots(coll, "r2c3") == 3
        assert _slots(coll, "r1c2") == 0
        # in Python: the same, per tile
        upkeep = collect_collection_garbage(tmp_path / "c", older_than_days=0)
        assert list(upkeep.failed) == ["r1c2"] and set(upkeep.done) == {"r0c0", "r2c3"}
        assert upkeep.exit_code == 1
    assert main(["compact", str(tmp_path / "c"), "--tile", "r1c2"]) == 0
    assert _slots(coll, "r1c2") == 1


def test_gc_of_a_collection_expires_every_tile_and_the_catalogue_keeping_tags(tmp_path, capsys):
    coll, held = _collection(tmp_path)
    before = {t: len(open_cube(coll.tile_location(t)).history()) for t in held}
    catalogue_before = len(list(coll.repository.ancestry(branch="main")))
    assert main(["gc", str(tmp_path / "c"), "--older-than", "0"]) == 0
    out = capsys.readouterr().out
    assert "gc of 3 tile(s): 3 done, 0 failed" in out
    for tile, n in held.items():
        cube = open_cube(coll.tile_location(tile))
        assert len(cube.history()) < before[tile]
        assert cube.scene_ids() == {f"{tile}-{k}" for k in range(1, n + 1)}
        assert f"{coll.tile_location(tile)}: " in out and "snapshot(s) expired" in out
    assert len(list(coll.repository.ancestry(branch="main"))) < catalogue_before
    # the tag still reads every tile as it pinned it, and the tip as it is
    pinned = open_collection(tmp_path / "c", tag="v1")
    assert all(pinned.open_tile(t).scene_ids() == {f"{t}-1"} for t in held)
    assert open_collection(tmp_path / "c").tiles() == sorted(held)
    assert main(["info", str(tmp_path / "c"), "--tag", "v1"]) == 0


def test_bad_arguments_are_refused_before_anything_is_done(tmp_path, capsys):
    coll, held = _collection(tmp_path)
    snapshots = {t: open_cube(coll.tile_location(t)).snapshot_id for t in held}
    cases = [
        (["compact", str(tmp_path / "c"), "--tile", "r9c9"], "r9c9"),
        (["compact", str(tmp_path / "c"), "--tile", "r0c1"], "'r0c1' holds no data; tiles present"),
        (["gc", str(tmp_path / "c"), "--older-than", "-1"], "older_than_days: expected a number"),
        (["gc", coll.tile_location("r0c0"), "--tile", "r0c0"], "is a single cube, not tiled"),
    ]
    for command, message in cases:
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert message in err, (command, err)
    assert {t: open_cube(coll.tile_location(t)).snapshot_id for t in held} == snapshots
    with pytest.raises(CubeError, match=r"is not a tiled collection \(no catalogue at"):
        compact_collection(tmp_path / "nothing")
