"""Tiled collections: the tiling, the catalogue, tags over every tile, point routing."""

from __future__ import annotations

import threading
from pathlib import Path

import icechunk
import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr
import zarr
from affine import Affine

from updm_dask.cube import (
    Tiling,
    collection_exists,
    create_collection,
    create_cube,
    open_collection,
    open_cube,
)
from updm_dask.errors import CubeError
from updm_dask.geo import CubeGrid

# 10 x 13 pixels of 30 m in UTM 37N (Ethiopian highlands), cut into tiles of 4:
# 3 rows x 4 columns, the last row 2 pixels high and the last column 1 pixel wide.
GRID = CubeGrid("EPSG:32637", Affine(30, 0, 589035, 0, -30, 756165), (10, 13))
EDGE = 4


def scene_on(grid: CubeGrid, sid: str, time: str, value: int = 3) -> xr.Dataset:
    """A scene covering ``grid`` with land cover ``value`` everywhere."""
    shape = grid.shape
    ds = xr.Dataset(
        {
            "land_cover": (("y", "x"), np.full(shape, value, np.uint8)),
            "quality": (("y", "x"), np.zeros(shape, np.uint8)),
            "mviupd": (("y", "x"), np.full(shape, 0.25, np.float32)),
        },
        coords={"y": grid.y, "x": grid.x},
    ).rio.write_crs(grid.crs)
    ds = ds.assign_coords(scene_id=sid, time=np.datetime64(time, "us"))
    ds.attrs.update(sensor="TM", platform="LANDSAT_5")
    return ds


def append(cube, sid: str, time: str) -> None:
    cube.append_scenes([scene_on(cube.grid, sid, time)], metadata={"job_id": "t"}, message=sid)


def test_tile_grids_abut_exactly_and_cover_the_grid():
    tiling = Tiling(GRID, EDGE)
    assert (tiling.rows, tiling.cols, len(tiling)) == (3, 4, 12)
    covered = np.zeros(GRID.shape, int)
    for tile in tiling.tile_ids():
        r0, c0, nr, nc = tiling.tile_window(tile)
        covered[r0 : r0 + nr, c0 : c0 + nc] += 1
        g = tiling.tile_grid(tile)
        assert (g.crs, g.resolution, g.shape) == (GRID.crs, GRID.resolution, (nr, nc))
        # the tile's pixel centres are exactly the grid's own
        np.testing.assert_array_equal(g.x, GRID.x[c0 : c0 + nc])
        np.testing.assert_array_equal(g.y, GRID.y[r0 : r0 + nr])
    assert (covered == 1).all()  # every pixel in exactly one tile
    # neighbours share an edge: east edge of r0c0 is the west edge of r0c1, etc.
    assert tiling.tile_grid("r0c0").bounds[2] == tiling.tile_grid("r0c1").bounds[0]
    assert tiling.tile_grid("r0c0").bounds[1] == tiling.tile_grid("r1c0").bounds[3]
    assert tiling.tile_grid("r2c3").shape == (2, 1)
    assert tiling.tile_grid("r2c3").bounds[1:3] == (GRID.bounds[1], GRID.bounds[2])
    assert tiling.tiles_of_window(3, 3, 2, 2) == ["r0c0", "r0c1", "r1c0", "r1c1"]
    assert tiling.tiles_of_window(8, 12, 5, 5) == ["r2c3"]  # clipped at the grid's edge
    assert tiling.tiles_of_window(10, 0, 3, 3) == []
    assert tiling.tile_of_pixel(9, 12) == "r2c3"
    assert not Tiling(GRID, 13).tiled and Tiling(GRID, 12).tiled


def test_a_point_routes_to_the_tile_whose_grid_holds_it(tmp_path):
    coll = create_collection(tmp_path / "c", GRID, edge=EDGE)
    for tile in ("r0c0", "r1c2", "r2c3"):
        append(coll.create_tile(tile), f"S{tile}", "2001-01-01")
    for row, col, expected in ((0, 0, "r0c0"), (5, 9, "r1c2"), (9, 12, "r2c3"), (4, 8, "r1c2")):
        x, y = GRID.x[col], GRID.y[row]
        tile, cube = coll.cube_for_point(x=x, y=y)
        assert tile == expected
        lo_x, lo_y, hi_x, hi_y = cube.grid.bounds
        assert lo_x < x < hi_x and lo_y < y < hi_y
        assert cube.grid == Tiling(GRID, EDGE).tile_grid(expected)
        assert cube.scene_ids() == {f"S{expected}"}
    # by lon/lat too: the centre of pixel (5, 9) in WGS 84
    import pyproj

    lon, lat = pyproj.Transformer.from_crs(GRID.crs, "EPSG:4326", always_xy=True).transform(
        GRID.x[9], GRID.y[5]
    )
    assert coll.cube_for_point(lon=lon, lat=lat)[0] == "r1c2"
    # a point on the grid whose tile holds no data, and one off the grid
    with pytest.raises(CubeError, match=r"tile 'r0c1' holds no data; tiles present: r0c0, r1c2"):
        coll.cube_for_point(x=GRID.x[5], y=GRID.y[0])
    with pytest.raises(CubeError, match="is outside the grid"):
        coll.cube_for_point(x=GRID.bounds[2] + 100, y=GRID.y[0])


def test_a_tag_pins_every_tile(tmp_path):
    coll = create_collection(tmp_path / "c", GRID, edge=EDGE, title="pinned")
    a, b = coll.create_tile("r0c0"), coll.create_tile("r1c1")
    append(a, "A1", "2001-01-01")
    append(b, "B1", "2001-02-01")
    coll.tag("v1")
    append(a, "A2", "2002-01-01")  # after the tag: the tag must not see it
    coll.create_tile("r2c0")  # nor a tile made after it
    pinned = open_collection(tmp_path / "c", tag="v1")
    assert pinned.read_only and pinned.tiles() == ["r0c0", "r1c1"]
    assert pinned.open_tile("r0c0").scene_ids() == {"A1"}
    assert pinned.open_tile("r1c1").scene_ids() == {"B1"}
    latest = open_collection(tmp_path / "c")
    assert latest.tiles() == ["r0c0", "r1c1", "r2c0"]
    assert latest.open_tile("r0c0").scene_ids() == {"A1", "A2"}
    # the tile's own tag protects its snapshot (updm gc --keep-tags)
    assert open_cube(coll.tile_location("r0c0"), tag="v1").scene_ids() == {"A1"}
    with pytest.raises(CubeError, match=r"already has a tag 'v1'; its tags: 'v1'"):
        latest.tag("v1")
    with pytest.raises(CubeError, match="read-only"):
        pinned.open_tile("r0c0", for_writing=True)


def test_a_collection_whose_tiles_did_not_change_is_tagged_again(tmp_path):
    coll = create_collection(tmp_path / "c", GRID, edge=EDGE)
    append(coll.create_tile("r0c0"), "A1", "2001-01-01")
    first = coll.tag("v1")
    second = coll.tag("v2")  # nothing changed since v1: a snapshot of its own all the same
    assert first != second and coll.tags() == ["v1", "v2"]
    one, two = (open_collection(tmp_path / "c", tag=t) for t in ("v1", "v2"))
    assert one.snapshots() == two.snapshots() == coll.snapshots()
    # a collection without any tile is tagged too
    empty = create_collection(tmp_path / "e", GRID, edge=EDGE)
    empty.tag("start")
    assert open_collection(tmp_path / "e", tag="start").tiles() == []


@pytest.mark.parametrize("name", ["", " v1", "../x", "bad name", "-x", "v1/", "a\nb", "x" * 129])
def test_a_bad_tag_name_is_refused_before_any_tile_is_tagged(tmp_path, name):
    coll = create_collection(tmp_path / "c", GRID, edge=EDGE)
    tile = coll.create_tile("r0c0")
    append(tile, "A1", "2001-01-01")
    with pytest.raises(CubeError, match=r"bad tag name .*expected up to 128 letters, digits"):
        coll.tag(name)
    assert coll.tags() == [] and tile.repository.list_tags() == set()
    with pytest.raises(CubeError, match="bad tag name"):
        tile.create_tag(name)  # a single cube takes the same names
    assert tile.repository.list_tags() == set()


def test_a_tile_tag_left_by_a_tag_that_stopped_half_way(tmp_path):
    coll = create_collection(tmp_path / "c", GRID, edge=EDGE)
    a, b = coll.create_tile("r0c0"), coll.create_tile("r1c1")
    append(a, "A1", "2001-01-01")
    append(b, "B1", "2001-02-01")
    # tile r0c0 tagged, then the tag stopped before the catalogue's: the name is taken up
    a.create_tag("v1")
    coll.tag("v1")
    assert open_collection(tmp_path / "c", tag="v1").snapshots() == coll.snapshots()
    # a tile tag of the name at another snapshot than the tile's current one is refused,
    # naming the tile, and nothing is tagged
    b.create_tag("v2")
    append(b, "B2", "2002-02-01")
    with pytest.raises(CubeError, match=r"tile r1c1 already has a tag 'v2' at snapshot"):
        coll.tag("v2")
    assert coll.tags() == ["v1"] and "v2" not in a.repository.list_tags()


def test_a_cube_tag_that_exists_is_refused_in_one_line(tmp_path):
    coll = create_collection(tmp_path / "c", GRID, edge=EDGE)
    cube = coll.create_tile("r0c0")
    cube.create_tag("first")
    with pytest.raises(CubeError) as caught:
        cube.create_tag("first")
    assert "already has a tag 'first'; its tags: 'first'" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_open_cube_on_a_collection_refuses_clearly(tmp_path, capsys):
    from updm_dask.cli import main

    coll = create_collection(tmp_path / "c", GRID, edge=EDGE)
    coll.create_tile("r0c0")
    message = (
        r"is a tiled collection, not a single cube: give one tile's cube, .*/c/tiles/<id> "
        r"\(`updm info .*/c` lists the tiles\); in Python, open_collection\(\) opens it"
    )
    with pytest.raises(CubeError, match=message):
        open_cube(tmp_path / "c")
    # a command that takes one cube says which location to give instead (gc and compact
    # run over the tiles: test_collection_upkeep)
    assert main(["migrate", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'c'}/tiles/<id>" in err and "\n" not in err.rstrip()
    assert collection_exists(tmp_path / "c")
    # and the other way round: a single cube is not a collection
    create_cube(tmp_path / "single", Tiling(GRID, EDGE).tile_grid("r0c0"))
    assert not collection_exists(tmp_path / "single")
    with pytest.raises(CubeError, match="is a single cube, not a tiled collection"):
        open_collection(tmp_path / "single")
    with pytest.raises(CubeError, match="fits in one tile"):
        create_collection(tmp_path / "small", GRID, edge=13)


def test_bad_tile_ids_and_unknown_tags_name_the_value_and_what_exists(tmp_path):
    coll = create_collection(tmp_path / "c", GRID, edge=EDGE)
    coll.create_tile("r0c1")
    coll.tag("first")
    for bad in ("r3c0", "x1", "r0c", "r-1c0", "r0c4"):
        with pytest.raises(CubeError, match=rf"tile {bad!r}: expected .*row 0-2 and column 0-3"):
            coll.open_tile(bad)
    with pytest.raises(CubeError, match=r"tile 'r1c1' holds no data; tiles present: r0c1"):
        coll.open_tile("r1c1")
    with pytest.raises(CubeError, match=r"has no tag 'nope'; its tags: 'first'"):
        open_collection(tmp_path / "c", tag="nope")
    with pytest.raises(CubeError, match="another grid or tile edge"):
        create_collection(tmp_path / "c", GRID, edge=5, exist_ok=True)


def test_an_interrupted_creation_is_completed_by_the_next(tmp_path):
    # killed after the catalogue repository was made, before its first commit
    icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "c/catalogue")))
    assert not collection_exists(tmp_path / "c")
    coll = create_collection(tmp_path / "c", GRID, edge=EDGE)
    # killed after a tile's cube was created, before it was registered
    create_cube(coll.tile_location("r1c0"), Tiling(GRID, EDGE).tile_grid("r1c0"))
    assert coll.tiles() == []
    again = create_collection(tmp_path / "c", GRID, edge=EDGE, exist_ok=True)
    append(again.create_tile("r1c0"), "S", "2001-01-01")
    assert open_collection(tmp_path / "c").tiles() == ["r1c0"]


def test_drivers_registering_tiles_at_once_lose_none(tmp_path):
    create_collection(tmp_path / "c", GRID, edge=EDGE)
    tiles = Tiling(GRID, EDGE).tile_ids()
    errors = []

    def driver(mine):
        try:
            coll = open_collection(tmp_path / "c")  # its own view: no shared guard
            for tile in mine:
                coll._register(tile)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=driver, args=(tiles[k::3],)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert open_collection(tmp_path / "c").tiles() == tiles


def test_the_catalogue_is_made_through_the_name_in_cube_tiles(tmp_path, monkeypatch):
    # A killed-job test replaces cube._tiles._catalogue_to_fill; creating a collection must
    # go through that name, wherever the function itself lives.
    import updm_dask.cube._tiles as tiles

    made = []
    real = tiles._catalogue_to_fill

    def counting(storage, cname):
        made.append(cname)
        return real(storage, cname)

    monkeypatch.setattr(tiles, "_catalogue_to_fill", counting)
    create_collection(tmp_path / "c", GRID, edge=EDGE)
    assert len(made) == 1 and made[0].endswith("catalogue")
    assert collection_exists(tmp_path / "c")


class _FilledRightAfterItsTipIsRead:
    """A catalogue repository that another driver fills the moment its tip is read."""

    def __init__(self, repo: icechunk.Repository, fill) -> None:
        self._repo, self._fill = repo, fill

    def lookup_branch(self, name: str) -> str:
        tip = self._repo.lookup_branch(name)
        self._fill()
        return tip

    def __getattr__(self, name: str):
        return getattr(self._repo, name)


def test_a_catalogue_filled_by_another_driver_meanwhile_is_never_called_a_stranger(tmp_path):
    # Two drivers create one collection: B finds the catalogue repository A has just made
    # (its first commit only) and A commits the catalogue while B looks. Asked of two
    # different moments ("empty?" then "only its first commit?") the answers said "neither
    # a catalogue nor unfinished", and B failed with "not a catalogue" (seen on a real
    # object store). Both are now asked of one snapshot.
    from updm_dask.cube._catalogue import _catalogue_to_fill, _holds_something_else
    from updm_dask.cube._io import storage_for

    storage, cname = storage_for(str(tmp_path / "c" / "catalogue"))
    icechunk.Repository.create(storage)  # A's creation, not filled yet

    def driver_a_fills() -> None:
        create_collection(tmp_path / "c", GRID, edge=EDGE, exist_ok=True)

    racing = _FilledRightAfterItsTipIsRead(icechunk.Repository.open(storage), driver_a_fills)
    assert _holds_something_else(racing) is False
    assert collection_exists(tmp_path / "c")  # A did fill it meanwhile
    # B carries on and finds A's collection
    assert _catalogue_to_fill(storage, cname) is not None
    assert create_collection(tmp_path / "c", GRID, edge=EDGE, exist_ok=True).tiling.edge == EDGE
    # a repository holding something else is still refused, by name
    other_storage, _ = storage_for(str(tmp_path / "d" / "catalogue"))
    repo = icechunk.Repository.create(other_storage)
    session = repo.writable_session("main")
    zarr.open_group(session.store, mode="w", attributes={"title": "a stranger"})
    session.commit("something else")
    assert _holds_something_else(icechunk.Repository.open(other_storage)) is True
    with pytest.raises(CubeError, match=r"holds an Icechunk repository that is not a catalogue"):
        create_collection(tmp_path / "d", GRID, edge=EDGE)


def test_a_tile_another_process_writes_is_refused_at_once_naming_it(tmp_path, monkeypatch):
    # a real process holds the tile's local writer lock: no waiting for a creation race
    from test_commits import Holder, refused

    import updm_dask.cube._collection as collection_module

    coll = create_collection(tmp_path / "c", GRID, edge=EDGE)
    coll.create_tile("r0c0").close()
    asked = []  # "is it being created?": the question that leads to waiting and retrying
    real = collection_module._being_created
    monkeypatch.setattr(
        collection_module, "_being_created", lambda loc: asked.append(loc) or real(loc)
    )
    location = Path(coll.tile_location("r0c0"))
    with Holder(location) as holder:
        with pytest.raises(CubeError, match=refused(location, holder.proc.pid)):
            coll.create_tile("r0c0")
    assert asked == []
    coll.create_tile("r0c0").close()  # the holder gone, the tile is writable again


def test_gc_of_a_tile_keeps_the_tags_the_collection_pins(tmp_path, capsys):
    from updm_dask.cli import main
    from updm_dask.cube import collect_garbage

    coll = create_collection(tmp_path / "c", GRID, edge=EDGE)
    tile = coll.create_tile("r0c0")
    append(tile, "A1", "2001-01-01")
    coll.tag("v1")
    append(tile, "A2", "2002-01-01")
    tile.close()
    # without --keep-tags: a tile keeps its tags all the same, so the catalogue tag still reads
    report = collect_garbage(coll.tile_location("r0c0"), older_than_days=0)
    assert report.tags_deleted == [] and report.snapshots_expired > 0
    assert open_collection(tmp_path / "c", tag="v1").open_tile("r0c0").scene_ids() == {"A1"}
    assert main(["gc", coll.tile_location("r0c0"), "--older-than", "0"]) == 0
    assert main(["info", str(tmp_path / "c"), "--tag", "v1"]) == 0, capsys.readouterr().err
    # a cube that is no tile loses an expired tag, as before
    single = create_cube(tmp_path / "single", Tiling(GRID, EDGE).tile_grid("r0c0"))
    append(single, "S1", "2001-01-01")
    single.create_tag("old")
    append(single, "S2", "2002-01-01")
    single.close()
    assert collect_garbage(tmp_path / "single", older_than_days=0).tags_deleted == ["old"]


def test_scenes_without_data_are_recorded_in_the_tile_not_the_catalogue(tmp_path):
    from updm_dask.cube import empty_scene_ids, record_empty_scenes

    coll = create_collection(tmp_path / "c", GRID, edge=EDGE)
    catalogue = coll.repository
    commits_before = len(list(catalogue.ancestry(branch="main")))
    ids = [f"LT05_L1TP_167055_2000{m:02d}09_20161214_01_T1" for m in range(1, 13)]
    coll.record_empty("r0c1", ids[:5])
    coll.record_empty("r0c1", ids[3:9])  # 3 and 4 again: recorded once
    coll.record_empty("r2c3", ids[9:])
    assert coll.empty_scenes("r0c1") == set(ids[:9])
    assert coll.empty_scenes("r2c3") == set(ids[9:])
    assert coll.empty_scenes("r1c1") == set()  # no cube was ever made there
    # the catalogue gained no commit and holds no scene; the tiles are still unlisted
    assert len(list(catalogue.ancestry(branch="main"))) == commits_before
    assert "empty_scenes" not in coll._attrs()
    assert coll.tiles() == []
    # the tile's own cube holds them, each id once, in an array its layers never show
    tile = open_cube(coll.tile_location("r0c1"))
    stored = zarr.open_group(tile.session().store, mode="r")["empty_scenes/scene_id"][:]
    assert sorted(stored.tolist()) == sorted(ids[:9]) and len(stored) == 9
    assert empty_scene_ids(tile) == set(ids[:9])
    assert "scene_id" not in tile.to_xarray().data_vars and tile.to_xarray().sizes["time"] == 0
    assert [c["metadata"].get("action") for c in tile.history()[:2]] == ["record_empty"] * 2
    # nothing new: no commit
    snap = tile.snapshot_id
    with open_cube(coll.tile_location("r0c1"), for_writing=True) as writer:
        assert record_empty_scenes(writer, ids[:2]) is None
    assert open_cube(coll.tile_location("r0c1")).snapshot_id == snap
    # a pinned view cannot record
    with pytest.raises(CubeError, match="read-only"):
        record_empty_scenes(open_cube(coll.tile_location("r0c1"), snapshot=snap), ["x"])


def test_scenes_a_collection_recorded_in_its_catalogue_before_are_still_known(tmp_path):
    coll = create_collection(tmp_path / "c", GRID, edge=EDGE)
    old = "LT05_L1TP_167055_20000309_20161214_01_T1"

    def as_before(attrs: dict) -> bool:  # what the catalogue of earlier versions held
        attrs["empty_scenes"] = {"r0c0": [old]}
        return True

    coll._commit_attrs(as_before, "record 1 scene(s) without data in tile r0c0", {})
    assert coll.empty_scenes("r0c0") == {old}
    coll.record_empty("r0c0", ["LE07_L1TP_167055_20170308_20170317_01_T1"])
    assert coll.empty_scenes("r0c0") == {old, "LE07_L1TP_167055_20170308_20170317_01_T1"}
    assert coll.empty_scenes("r0c1") == set()
