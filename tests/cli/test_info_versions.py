"""``updm info --tag`` / ``--snapshot``: a cube or a tiled collection as a tag or commit
recorded it, and unknown versions named with the location and what exists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr
from affine import Affine

from updm_dask.cli import main
from updm_dask.cube import create_collection, open_collection, open_cube
from updm_dask.geo import CubeGrid

# 6 x 12 pixels of 30 m in UTM 37N cut into tiles of 6: tiles r0c0 and r0c1.
GRID = CubeGrid("EPSG:32637", Affine(30, 0, 589035, 0, -30, 756165), (6, 12))


def _scene(grid: CubeGrid, sid: str, time: str) -> xr.Dataset:
    shape = grid.shape
    ds = xr.Dataset(
        {
            "land_cover": (("y", "x"), np.full(shape, 3, np.uint8)),
            "quality": (("y", "x"), np.zeros(shape, np.uint8)),
            "mviupd": (("y", "x"), np.full(shape, 0.25, np.float32)),
        },
        coords={"y": grid.y, "x": grid.x},
    ).rio.write_crs(grid.crs)
    ds = ds.assign_coords(scene_id=sid, time=np.datetime64(time, "us"))
    ds.attrs.update(sensor="TM", platform="LANDSAT_5")
    return ds


def _append(cube, sid: str, time: str) -> None:
    cube.append_scenes([_scene(cube.grid, sid, time)], metadata={"job_id": "t"}, message=sid)


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def collection(tmp_path) -> Path:
    """Tile r0c0 with 2 scenes and r0c1 with 1 at tag "v1"; afterwards r0c1 gets a second
    scene and r0c0 a third (of another year), untagged."""
    location = tmp_path / "tiled.icechunk"
    coll = create_collection(location, GRID, edge=6)
    left, right = coll.create_tile("r0c0"), coll.create_tile("r0c1")
    _append(left, "A1990", "1990-06-01")
    _append(left, "B1991", "1991-06-01")
    _append(right, "A1990", "1990-06-01")
    coll.tag("v1")
    _append(right, "B1991", "1991-06-01")
    _append(left, "C2001", "2001-06-01")
    return location


def test_info_tag_shows_a_collection_as_the_tag_pinned_every_tile(collection, capsys):
    pinned = open_collection(collection, tag="v1").snapshots()
    code, out, _ = run(capsys, "info", collection, "--tag", "v1")
    assert code == 0, out
    assert out.startswith(f"collection  {collection} at tag v1\n")
    assert "scenes      2 distinct over the tiles" in out
    assert "years       1990-1991" in out
    assert f"  r0c0         2 scene(s), years 1990-1991, snapshot {pinned['r0c0']}" in out
    assert f"  r0c1         1 scene(s), years 1990, snapshot {pinned['r0c1']}" in out
    # the tip, for comparison: the scenes stored since
    code, out, _ = run(capsys, "info", collection)
    assert code == 0 and "scenes      3 distinct over the tiles" in out
    assert "  r0c0         3 scene(s)" in out and "  r0c1         2 scene(s)" in out
    # one tile as the tag pinned it
    code, out, _ = run(capsys, "info", collection, "--tag", "v1", "--tile", "r0c1")
    assert code == 0
    assert f"tile        r0c1 of {collection} at tag v1" in out
    assert f"at snapshot {pinned['r0c1']}" in out and "scenes      1\n" in out


def test_info_unknown_tag_or_a_snapshot_of_a_collection_is_a_clear_error(collection, capsys):
    code, out, err = run(capsys, "info", collection, "--tag", "nope")
    assert code == 2 and out == ""
    assert err == (
        f"updm info: error: tiled collection {str(collection)!r} has no tag 'nope'; "
        "its tags: 'v1'\n"
    )
    code, _, err = run(capsys, "info", collection, "--snapshot", "ABCDEF")
    assert code == 2 and "is a tiled collection" in err and "pin it with a tag" in err
    assert str(collection) in err and len(err.splitlines()) == 1


def test_info_tag_and_snapshot_of_a_single_cube(sw_cube, capsys):
    cube = open_cube(sw_cube)
    first = open_cube(sw_cube, tag="first").snapshot_id
    code, out, _ = run(capsys, "info", sw_cube, "--tag", "first")
    assert code == 0
    assert f"tag         first at snapshot {first}" in out
    assert "scenes      3\n" in out and "years       1990-1992" in out
    code, out, _ = run(capsys, "info", sw_cube, "--snapshot", first)
    assert code == 0 and f"at snapshot {first}" in out and "scenes      3\n" in out
    code, out, _ = run(capsys, "info", sw_cube)
    assert code == 0 and f"branch      main at snapshot {cube.snapshot_id}" in out
    assert "scenes      6\n" in out
    code, _, err = run(capsys, "info", sw_cube, "--tag", "nope")
    assert code == 2
    assert err == f"updm info: error: cube {str(sw_cube)!r} has no tag 'nope'; its tags: 'first'\n"
    code, _, err = run(capsys, "info", sw_cube, "--snapshot", "ABCDEF")
    assert code == 2 and f"cube {str(sw_cube)!r} has no commit 'ABCDEF'" in err
