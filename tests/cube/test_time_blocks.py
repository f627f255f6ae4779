"""Time-blocked copies of the scene layers: exact values, incremental, and used by queries.

A small cube (20 x 24 pixels, cube chunks 8) receives scenes in several commits; every
scene's layers are random but known, so each value read back is checked against what was
appended, for slots that come from the time blocks and for those that come after them.
"""

from __future__ import annotations

from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401
import xarray as xr
import zarr
from affine import Affine

from updm_dask import query as q
from updm_dask.cli import main
from updm_dask.cube import (
    QUALITY_CLOUD,
    SCENE_VARIABLES,
    compact_time_blocks,
    create_cube,
    decode_layer,
    encode_layer,
    open_cube,
    pixel_history,
    time_block_slots,
)
from updm_dask.cube._timeblocks import TIME_BLOCKS
from updm_dask.errors import CubeError
from updm_dask.geo import CubeGrid

NY, NX = 20, 24
GRID = CubeGrid("EPSG:32637", Affine(30, 0, 589035, 0, -30, 756165), (NY, NX))
SETTINGS = {"updm.chunks.time-block-slots": 4, "updm.chunks.time-block-edge": 4}


def planted(k: int) -> dict[str, np.ndarray]:
    """Scene k's layers: known random values, a cloudy corner, a few NaN."""
    rng = np.random.default_rng(k)
    layers = {
        name: rng.uniform(0, 1, (NY, NX)).astype(np.float32)
        for name in ("uCw", "uCv", "uCs", "residual", "mviupd")
    }
    layers["land_cover"] = rng.integers(2, 5, (NY, NX)).astype(np.uint8)
    layers["quality"] = np.zeros((NY, NX), np.uint8)
    layers["quality"][: k % 5, :3] = QUALITY_CLOUD
    layers["mviupd"][k % NY, k % NX] = np.nan
    return layers


def scene(k: int) -> xr.Dataset:
    layers = planted(k)
    ds = xr.Dataset(
        {n: (("y", "x"), v) for n, v in layers.items()}, coords={"y": GRID.y, "x": GRID.x}
    ).rio.write_crs(GRID.crs)
    date = np.datetime64("1990-01-01", "D") + np.timedelta64(16 * k, "D")
    ds = ds.assign_coords(scene_id=f"S{k:03d}", time=date.astype("datetime64[us]"))
    ds.attrs.update(sensor="TM", platform="LANDSAT_5", sun_elevation=50.0)
    return ds


def append(cube, ks) -> None:
    cube.append_scenes([scene(k) for k in ks], metadata={"job_id": "t"}, message=f"{ks}")


def expected(name: str, ks, row: int, col: int) -> np.ndarray:
    """The values of ``name`` at the pixel as the cube stores them (packed codes)."""
    return np.array([encode_layer(name, planted(k)[name])[row, col] for k in ks])


@pytest.fixture
def cube(tmp_path: Path):
    with dask.config.set(SETTINGS):
        c = create_cube(tmp_path / "cube", GRID, chunks=8)
        append(c, range(0, 6))
        append(c, range(6, 11))
        yield c


def test_compaction_copies_every_stored_value_exactly(cube):
    with dask.config.set(SETTINGS):
        snap = compact_time_blocks(cube)
    assert snap is not None
    group = zarr.open_group(open_cube(cube.location).session().store, mode="r")
    blocks = group[TIME_BLOCKS]
    assert dict(blocks.attrs)["slots"] == 11
    for name in SCENE_VARIABLES:
        if name not in group:
            continue
        assert time_block_slots(group, name) == 11
        copy = blocks[name]
        assert copy.chunks == (4, 4, 4)
        np.testing.assert_array_equal(copy[:], group[name][:])


def test_reads_split_between_blocks_and_the_scenes_stored_after(cube):
    with dask.config.set(SETTINGS):
        compact_time_blocks(cube)
        append(cube, range(11, 14))  # after the compaction: per-scene layout only
    group = zarr.open_group(open_cube(cube.location).session().store, mode="r")
    assert time_block_slots(group, "uCv") == 11
    assert group["time"].shape[0] == 14
    for row, col in [(0, 0), (7, 9), (19, 23)]:
        got = pixel_history(group, ["uCv", "mviupd", "land_cover"], slice(0, 14), row, col)
        for name in ("uCv", "mviupd", "land_cover"):
            np.testing.assert_array_equal(got[name], expected(name, range(14), row, col))
        part = pixel_history(group, ["quality"], slice(9, 13), row, col)
        np.testing.assert_array_equal(part["quality"], expected("quality", range(9, 13), row, col))


def test_recompaction_rewrites_only_the_last_partial_block(cube):
    with dask.config.set(SETTINGS):
        compact_time_blocks(cube)  # 11 slots: blocks [0,4) [4,8) whole, [8,11) partial
        append(cube, range(11, 14))
        before = cube.repository.readonly_session(snapshot_id=cube.snapshot_id)
        compact_time_blocks(cube)
    after = cube.repository.readonly_session(snapshot_id=cube.snapshot_id)
    diff = cube.repository.diff(
        from_snapshot_id=before.snapshot_id, to_snapshot_id=after.snapshot_id
    )
    touched = {
        idx[0]
        for path, chunks in diff.updated_chunks.items()
        if path.startswith(f"/{TIME_BLOCKS}/")
        for idx in chunks
    }
    assert touched == {2, 3}  # time-block indices 2 (slots 8-11) and 3 (slots 12-13)
    group = zarr.open_group(after.store, mode="r")
    assert time_block_slots(group, "uCw") == 14
    got = pixel_history(group, ["uCw"], slice(None), 3, 5)
    np.testing.assert_array_equal(got["uCw"], expected("uCw", range(14), 3, 5))


def test_nothing_to_do_and_read_only_views(cube):
    with dask.config.set(SETTINGS):
        assert compact_time_blocks(cube) is not None
        assert compact_time_blocks(cube) is None  # every slot already held
        cube.create_tag("t1")
        with pytest.raises(CubeError, match="read-only"):
            compact_time_blocks(open_cube(cube.location, tag="t1"))


def test_a_copy_that_no_longer_matches_its_layer_is_never_read(cube):
    with dask.config.set(SETTINGS):
        compact_time_blocks(cube)
    # re-encode the copy behind the cube's back, as a migration of the layers would leave it
    session = cube.repository.writable_session("main")
    blocks = zarr.open_group(session.store, mode="r+")[TIME_BLOCKS]
    blocks["uCs"].attrs["scale_factor"] = 0.5
    session.commit("mismatch")
    group = zarr.open_group(open_cube(cube.location).session().store, mode="r")
    assert time_block_slots(group, "uCs") == 0
    assert time_block_slots(group, "uCw") == 11
    got = pixel_history(group, ["uCs"], slice(0, 11), 4, 4)
    np.testing.assert_array_equal(got["uCs"], expected("uCs", range(11), 4, 4))
    with dask.config.set(SETTINGS):
        compact_time_blocks(cube)  # copies uCs again, whole
    group = zarr.open_group(open_cube(cube.location).session().store, mode="r")
    assert time_block_slots(group, "uCs") == 11
    np.testing.assert_array_equal(group[TIME_BLOCKS]["uCs"][:], group["uCs"][:])


def test_point_query_reads_the_same_table_with_and_without_blocks(cube):
    x, y = float(GRID.x[5]), float(GRID.y[7])
    plain = q.scene_series(cube.location, x=x, y=y)
    with dask.config.set(SETTINGS):
        compact_time_blocks(cube)
        append(cube, range(11, 13))
    blocked = q.scene_series(cube.location, x=x, y=y)
    assert len(blocked) == 13
    # the 11 compacted slots read exactly as before the compaction, every column
    pd.testing.assert_frame_equal(
        blocked.iloc[:11].reset_index(drop=True), plain.reset_index(drop=True)
    )
    np.testing.assert_array_equal(
        blocked["uCv"].to_numpy(), decode_layer("uCv", expected("uCv", range(13), 7, 5))
    )


def test_updm_compact_command(cube, capsys):
    with dask.config.set(SETTINGS):
        assert main(["compact", str(cube.location)]) == 0
        out = capsys.readouterr().out
        assert "11 time slot(s)" in out and "snapshot" in out
        assert main(["compact", str(cube.location)]) == 0
        assert "already" in capsys.readouterr().out
    assert main(["compact", str(Path(cube.location).parent / "nothing")]) == 2
    assert "not a cube" in capsys.readouterr().err


def test_compacted_slots_are_read_from_the_blocks(cube):
    with dask.config.set(SETTINGS):
        compact_time_blocks(cube)
    # overwrite slot 0 of the per-scene uCv behind the copy's back: a reader that still
    # went to the per-scene array for compacted slots would return the new value
    session = cube.repository.writable_session("main")
    zarr.open_group(session.store, mode="r+")["uCv"][0, :, :] = 7
    session.commit("tamper")
    group = zarr.open_group(open_cube(cube.location).session().store, mode="r")
    got = pixel_history(group, ["uCv"], slice(0, 11), 2, 2)
    assert got["uCv"][0] == expected("uCv", [0], 2, 2)[0] != 7
    assert group["uCv"][0, 2, 2] == 7
