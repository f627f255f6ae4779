"""The Icechunk/Zarr v3 cube: create, open, append, idempotency, crashes, conflicts,
time travel, per-year layers, info, georeferencing, and an S3-compatible store."""

from __future__ import annotations

import json
import socket

import dask
import dask.array as da
import icechunk
import numpy as np
import pyproj
import pytest
import rioxarray  # noqa: F401
import xarray as xr
import zarr
from affine import Affine

import updm_dask.cube._cube as cube_impl
from updm_dask.cube import (
    QUALITY_CLOUD,
    QUALITY_FILL,
    QUALITY_SATURATED,
    Cube,
    CubeConflictError,
    EmptyScenesError,
    create_cube,
    cube_exists,
    cube_info,
    decode_layer,
    encode_layer,
    format_cube_info,
    open_cube,
    yearly_summary,
)
from updm_dask.errors import CubeError, GridError
from updm_dask.geo import CubeGrid

NY, NX, CHUNK = 40, 50, 32
GRID = CubeGrid("EPSG:32637", Affine(30, 0, 589035, 0, -30, 756165), (NY, NX))
FLOATS = ("uCw", "uCv", "uCs", "uC4", "residual", "mviupd")


def layers(seed: int) -> dict[str, np.ndarray]:
    """Known values of one synthetic scene (NaN holes, every class, some quality bits)."""
    rng = np.random.default_rng(seed)
    # values on the layers' quantisation grid, so a stored and read value is exactly
    # the one written (the rounding itself is checked in test_storage.py)
    out = {n: decode_layer(n, encode_layer(n, rng.random((NY, NX)))) for n in FLOATS}
    out["uCw"][:5, :7] = np.nan
    out["land_cover"] = rng.integers(0, 5, (NY, NX), dtype=np.uint8)
    out["quality"] = rng.choice(np.array([0, 0, 0, 2, 4], np.uint8), (NY, NX))
    return out


def make_scene(sid, time, seed=0, *, sensor="TM", platform="LANDSAT_5", skip=(), chunks=20):
    values = layers(seed)
    data = {
        n: (("y", "x"), da.from_array(v, chunks=chunks)) for n, v in values.items() if n not in skip
    }
    ds = xr.Dataset(data, coords={"y": GRID.y, "x": GRID.x})
    ds = ds.rio.write_crs(GRID.crs)
    ds = ds.assign_coords(scene_id=sid, time=np.datetime64(time, "us"))
    ds.attrs.update(
        {
            "sensor": sensor,
            "platform": platform,
            "product_id": f"P_{sid}",
            "sun_elevation": 50.5,
            "pattern_set": "standard",
            "pattern_set_sha256": "ab" * 32,
            "rules": "tm",
        }
    )
    return ds


def zstd_level(codec) -> int:
    """The zstd level of a cube array's codec: zstd alone, or inside Blosc (packed layers).

    Blosc compresses at zstd level 2 * clevel - 1 for clevel 1-8 (c-blosc's
    ``zstd_wrap_compress``).
    """
    conf = codec.to_dict()["configuration"]
    return conf["level"] if "level" in conf else 2 * conf["clevel"] - 1


@pytest.fixture
def cube(tmp_path) -> Cube:
    return create_cube(tmp_path / "cube", GRID, chunks=CHUNK, title="test cube")


def tip(c: Cube) -> str:
    return c.repository.lookup_branch("main")


# --------------------------------------------------------------------------------------
# Creating and opening
# --------------------------------------------------------------------------------------


def test_create_and_open_empty_cube(cube, tmp_path):
    opened = open_cube(tmp_path / "cube")
    assert opened.grid == GRID
    assert opened.scene_ids() == set()
    ds = opened.to_xarray()
    assert dict(ds.sizes) == {"time": 0, "y": NY, "x": NX}
    assert ds.attrs["Conventions"] == "CF-1.10"
    assert ds.attrs["title"] == "test cube"
    assert CubeGrid.from_dict(ds.attrs["grid"]) == GRID
    for n in FLOATS:
        assert ds[n].dtype == np.float32
        assert ds[n].attrs["units"] == "1" and ds[n].attrs["long_name"]
        assert ds[n].attrs["grid_mapping"] == "spatial_ref"
    assert ds.land_cover.dtype == np.uint8
    assert list(ds.land_cover.attrs["flag_values"]) == [0, 1, 2, 3, 4]
    assert ds.land_cover.attrs["flag_meanings"] == "no_data cloud water vegetation non_vegetated"
    assert ds.quality.dtype == np.uint8
    assert ds.y.attrs["standard_name"] == "projection_y_coordinate" and ds.y.attrs["units"] == "m"
    np.testing.assert_array_equal(ds.x.values, GRID.x)
    group = zarr.open_group(opened.session().store, mode="r")
    for n in (*FLOATS, "land_cover", "quality"):
        assert group[n].chunks == (1, CHUNK, CHUNK)
        assert zstd_level(group[n].compressors[0]) == 3
    assert group["uCw"].fill_value == 65535 and group["uCw"].attrs["_FillValue"] == 65535
    assert group["land_cover"].fill_value == 0
    assert group["quality"].fill_value == QUALITY_FILL
    assert opened.history()[0]["message"] == "create cube"


def test_chunks_clip_to_grid_and_follow_config(tmp_path):
    small = CubeGrid("EPSG:32637", Affine(30, 0, 0, 0, -30, 300), (10, 12))
    with dask.config.set({"updm.chunks.cube": 8, "updm.compression.zstd-level": 7}):
        c = create_cube(tmp_path / "a", small)
    group = zarr.open_group(c.session().store, mode="r")
    assert group["uCv"].chunks == (1, 8, 8)
    assert zstd_level(group["uCv"].compressors[0]) == 7
    c2 = create_cube(tmp_path / "b", small, chunks=512)
    assert zarr.open_group(c2.session().store, mode="r")["uCv"].chunks == (1, 10, 12)


def test_plain_xarray_sees_a_georeferenced_cube(cube):
    cube.append_scenes([make_scene("S1", "2001-05-01")], metadata={}, message="one")
    session = cube.repository.readonly_session("main")
    ds = xr.open_zarr(session.store, consolidated=False)
    assert ds.rio.crs == pyproj.CRS.from_epsg(32637)
    assert ds.rio.transform() == GRID.transform
    assert ds.uCv.rio.crs == pyproj.CRS.from_epsg(32637)
    assert ds.uCv.rio.transform() == GRID.transform


def test_create_twice_and_exist_ok(cube, tmp_path):
    with pytest.raises(CubeError, match="already holds a cube"):
        create_cube(tmp_path / "cube", GRID)
    again = create_cube(tmp_path / "cube", GRID, exist_ok=True)
    assert again.snapshot_id == cube.snapshot_id
    other = CubeGrid("EPSG:32637", Affine(30, 0, 0, 0, -30, 300), (10, 12))
    with pytest.raises(CubeError, match="another grid"):
        create_cube(tmp_path / "cube", other, exist_ok=True)


def test_opening_or_creating_where_there_is_no_cube(tmp_path):
    with pytest.raises(CubeError, match="missing"):
        open_cube(tmp_path / "missing")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "f.txt").write_text("x")
    with pytest.raises(CubeError, match="junk"):
        open_cube(tmp_path / "junk")
    with pytest.raises(CubeError, match="non-empty directory"):
        create_cube(tmp_path / "junk", GRID)
    (tmp_path / "file").write_text("x")
    with pytest.raises(CubeError, match="is a file"):
        open_cube(tmp_path / "file")
    # an Icechunk repository holding something else
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "ic")))
    session = repo.writable_session("main")
    zarr.open_group(session.store, mode="w").create_array("a", shape=(2,), dtype="i4")
    session.commit("other data")
    with pytest.raises(CubeError, match="not a cube"):
        open_cube(tmp_path / "ic")
    with pytest.raises(CubeError, match="not a cube"):
        create_cube(tmp_path / "ic", GRID)
    with pytest.raises(CubeError, match="unsupported scheme"):
        open_cube("gs://bucket/cube")
    with pytest.raises(CubeError, match="credentials inside the URL"):
        open_cube("s3://key:secret@bucket/cube")
    with pytest.raises(CubeError, match="bucket/prefix"):
        open_cube("s3://bucket")


def test_cube_exists_says_whether_a_location_holds_a_repository(cube, tmp_path):
    assert cube_exists(tmp_path / "cube") and cube_exists(str(tmp_path / "cube"))
    assert not cube_exists(tmp_path / "missing")
    assert not (tmp_path / "missing").exists()  # asking creates nothing
    with pytest.raises(CubeError, match="unsupported scheme"):
        cube_exists("gs://bucket/cube")


def test_empty_repository_left_by_an_interrupted_create_is_completed(tmp_path):
    icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "c")))
    c = create_cube(tmp_path / "c", GRID, chunks=CHUNK)
    assert open_cube(tmp_path / "c").grid == GRID
    assert c.scene_ids() == set()


# --------------------------------------------------------------------------------------
# Appending
# --------------------------------------------------------------------------------------


def test_append_two_batches_and_read_back_exactly(cube):
    s1 = cube.append_scenes(
        [make_scene("B", "2001-06-02T10:11:12.345678", 2), make_scene("A", "2001-05-01", 1)],
        metadata={"job_id": "job-1"},
        message="batch 1",
    )
    s2 = cube.append_scenes(
        [make_scene("C", "1985-03-04", 3, sensor="MSS", platform="LANDSAT_4", skip=("uC4",))],
        metadata={"job_id": "job-2"},
        message="batch 2",
    )
    assert s1 and s2 and s1 != s2
    assert cube.scene_ids() == {"A", "B", "C"}
    ds = cube.to_xarray(sortby_time=False)
    # time slots: batch order, sorted by acquisition within a batch
    assert [str(s) for s in ds.scene_id.values] == ["A", "B", "C"]
    assert ds.time.values[1] == np.datetime64("2001-06-02T10:11:12.345678", "ns")
    assert [str(s) for s in ds.sensor.values] == ["TM", "TM", "MSS"]
    assert [str(s) for s in ds.platform.values] == ["LANDSAT_5", "LANDSAT_5", "LANDSAT_4"]
    assert [str(s) for s in ds.product_id.values] == ["P_A", "P_B", "P_C"]
    assert str(ds.pattern_set_sha256.values[0]) == "ab" * 32
    np.testing.assert_array_equal(ds.sun_elevation.values, np.float32([50.5] * 3))
    assert isinstance(ds.uCw.data, da.Array)
    for slot, seed in enumerate((1, 2, 3)):
        expected = layers(seed)
        for n in (*FLOATS, "land_cover", "quality"):
            got = ds[n].isel(time=slot).values
            if n == "uC4" and slot == 2:
                assert np.isnan(got).all()  # missing variable reads as fill
            else:
                np.testing.assert_array_equal(got, expected[n], err_msg=f"{n} slot {slot}")
    assert cube.to_xarray(sortby_time=True).scene_id.values[0] == "C"


def test_missing_layers_read_as_their_fill(cube):
    cube.append_scenes(
        [make_scene("A", "2001-01-01", skip=("land_cover", "quality", "uCs"))],
        metadata={},
        message="m",
    )
    ds = cube.to_xarray()
    assert (ds.land_cover.values == 0).all()
    assert (ds.quality.values == QUALITY_FILL).all()
    assert np.isnan(ds.uCs.values).all()


def test_all_fill_chunks_are_not_written(cube):
    scene = make_scene("A", "2001-01-01")
    uCw = scene.uCw.values.copy()
    uCw[:CHUNK, :CHUNK] = np.nan  # exactly chunk (0, 0)
    scene["uCw"] = (("y", "x"), uCw)
    cube.append_scenes([scene], metadata={}, message="m")
    arr = zarr.open_array(cube.session().store, path="uCw")
    n_chunks = (-(-NY // CHUNK)) * (-(-NX // CHUNK))
    assert arr.nchunks_initialized == n_chunks - 1
    assert zarr.open_array(cube.session().store, path="uC4").nchunks_initialized == n_chunks


def test_scenes_without_a_valid_pixel_are_rejected_and_nothing_is_stored(cube):
    # Valid land cover in the last chunk of the 2 x 2 chunk layout only: not empty.
    corner = make_scene("CORNER", "2001-01-01", 1)
    land_cover = np.zeros((NY, NX), np.uint8)
    land_cover[-1, -1] = 3
    corner["land_cover"] = (("y", "x"), land_cover)
    empty = make_scene("EMPTY", "2001-02-01", 2)
    empty["land_cover"] = (("y", "x"), np.zeros((NY, NX), np.uint8))
    before = tip(cube)
    with pytest.raises(EmptyScenesError, match="EMPTY") as info:
        cube.append_scenes([corner, empty], metadata={}, message="m", reject_empty=True)
    assert info.value.scene_ids == ("EMPTY",)
    assert tip(cube) == before and cube.scene_ids() == set()
    cube.append_scenes([corner], metadata={}, message="m", reject_empty=True)
    assert cube.scene_ids() == {"CORNER"}


def test_commit_metadata_is_recorded(cube):
    meta = {
        "job_id": "job-42",
        "pattern_set_sha256": "cd" * 32,
        "rule_table": "tm-table5",
        "updm_dask_version": "9.9.9",
    }
    snap = cube.append_scenes(
        [make_scene("A", "2001-01-01"), make_scene("B", "2001-02-01")],
        metadata=meta,
        message="job-42 batch 0",
    )
    head = cube.history()[0]
    assert head["id"] == snap == tip(cube)
    assert head["message"] == "job-42 batch 0"
    assert head["metadata"]["job_id"] == "job-42"
    assert head["metadata"]["pattern_set_sha256"] == "cd" * 32
    assert head["metadata"]["rule_table"] == "tm-table5"
    assert head["metadata"]["scene_ids"] == ["A", "B"]
    assert head["metadata"]["updm_dask_version"] == "9.9.9"  # the caller's value is kept
    meta2 = cube.append_scenes([make_scene("C", "2002-01-01")], metadata={}, message="x")
    from updm_dask import __version__

    assert cube.history()[0]["id"] == meta2
    assert cube.history()[0]["metadata"]["updm_dask_version"] == __version__


def test_reappending_is_idempotent(cube):
    batch = [make_scene("A", "2001-01-01", 1), make_scene("B", "2001-02-01", 2)]
    first = cube.append_scenes(batch, metadata={}, message="first")
    n_commits = len(cube.history())
    assert cube.append_scenes(batch, metadata={}, message="again") is None
    assert tip(cube) == first and len(cube.history()) == n_commits
    # a mixed batch stores only the new scene; a scene repeated in a batch is stored once
    snap = cube.append_scenes(
        [
            make_scene("B", "2001-02-01", 2),
            make_scene("C", "2001-03-01", 3),
            make_scene("C", "2001-03-01", 3),
        ],
        metadata={},
        message="mixed",
    )
    head = cube.history()[0]
    assert head["id"] == snap
    assert head["metadata"]["scene_ids"] == ["C"]
    assert head["metadata"]["skipped_scene_ids"] == ["B", "C"]
    ids = [str(s) for s in cube.to_xarray().scene_id.values]
    assert sorted(ids) == ["A", "B", "C"]


def test_crash_before_commit_leaves_the_cube_unchanged(cube):
    cube.append_scenes([make_scene("A", "2001-01-01", 1)], metadata={}, message="ok")
    before_tip = tip(cube)
    before = cube.to_xarray().load()

    def explode(block):
        raise RuntimeError("disk on fire")

    bad = make_scene("BAD", "2001-02-01", 2)
    bad["uCv"] = bad.uCv.copy(data=bad.uCv.data.map_blocks(explode, dtype=np.float32))
    with pytest.raises(RuntimeError, match="disk on fire"):
        cube.append_scenes([make_scene("OK", "2001-03-01", 3), bad], metadata={}, message="x")
    assert tip(cube) == before_tip
    assert cube.scene_ids() == {"A"}
    xr.testing.assert_identical(cube.to_xarray().load(), before)
    # the cube is still usable and the scenes can be stored afterwards
    cube.append_scenes([make_scene("OK", "2001-03-01", 3)], metadata={}, message="retry")
    np.testing.assert_array_equal(cube.to_xarray().uCv.isel(time=1).values, layers(3)["uCv"])


def test_time_travel_to_an_older_snapshot_and_tag(cube, tmp_path):
    s1 = cube.append_scenes([make_scene("A", "2001-01-01", 1)], metadata={}, message="1")
    cube.create_tag("v1")
    cube.append_scenes([make_scene("B", "2002-01-01", 2)], metadata={}, message="2")
    old = open_cube(tmp_path / "cube", snapshot=s1)
    assert old.scene_ids() == {"A"}
    assert old.to_xarray().sizes["time"] == 1
    assert old.history()[0]["message"] == "1"
    assert open_cube(tmp_path / "cube", tag="v1").scene_ids() == {"A"}
    assert open_cube(tmp_path / "cube").scene_ids() == {"A", "B"}
    assert old.read_only
    with pytest.raises(CubeError, match="read-only"):
        old.append_scenes([make_scene("C", "2003-01-01")], metadata={}, message="no")
    with pytest.raises(CubeError, match="snapshot"):
        open_cube(tmp_path / "cube", snapshot="0" * 20)
    with pytest.raises(CubeError, match="tag"):
        open_cube(tmp_path / "cube", tag="nope")


def test_two_writers_conflict_without_loss_or_duplication(cube, tmp_path, monkeypatch):
    writer_a = open_cube(tmp_path / "cube")
    writer_b = open_cube(tmp_path / "cube")
    real_write = cube_impl.write_dask
    state = {"raced": False}

    def racing_write(session, sources, names, start):
        real_write(session, sources, names, start)
        if not state["raced"]:
            # writer B commits while writer A is between writing and committing
            state["raced"] = True
            writer_b.append_scenes(
                [make_scene("B1", "2001-01-02", 11), make_scene("SHARED", "2001-01-03", 12)],
                metadata={"writer": "b"},
                message="b",
            )

    monkeypatch.setattr(cube_impl, "write_dask", racing_write)
    with pytest.raises(CubeConflictError, match="another writer"):
        writer_a.append_scenes(
            [make_scene("A1", "2001-01-01", 21), make_scene("SHARED", "2001-01-03", 12)],
            metadata={"writer": "a"},
            message="a",
        )
    assert cube.scene_ids() == {"B1", "SHARED"}
    assert cube.history()[0]["metadata"]["writer"] == "b"
    # the caller retries after re-reading the ledger: only A1 is new
    snap = writer_a.append_scenes(
        [make_scene("A1", "2001-01-01", 21), make_scene("SHARED", "2001-01-03", 12)],
        metadata={"writer": "a"},
        message="a retry",
    )
    assert cube.history()[0]["id"] == snap
    assert cube.history()[0]["metadata"]["scene_ids"] == ["A1"]
    ds = cube.to_xarray()
    ids = [str(s) for s in ds.scene_id.values]
    assert sorted(ids) == ["A1", "B1", "SHARED"] and len(ids) == len(set(ids))
    for sid, seed in (("B1", 11), ("SHARED", 12), ("A1", 21)):
        slot = ids.index(sid)
        np.testing.assert_array_equal(ds.mviupd.isel(time=slot).values, layers(seed)["mviupd"])


@pytest.mark.slow
def test_append_with_a_distributed_cluster(cube):
    # an in-process cluster: the distributed scheduler, its serialisation and its workers
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster),
    ):
        snap = cube.append_scenes(
            [make_scene(f"S{i}", f"200{i}-01-01", i) for i in range(3)],
            metadata={},
            message="distributed",
        )
        assert snap == tip(cube)
        cube.rebuild_yearly()
    ds = cube.to_xarray()
    for slot in range(3):
        np.testing.assert_array_equal(ds.uCs.isel(time=slot).values, layers(slot)["uCs"])
    assert list(ds.year.values) == [2000, 2001, 2002]


# --------------------------------------------------------------------------------------
# Bad scenes
# --------------------------------------------------------------------------------------


def test_bad_scenes_are_rejected_before_anything_is_written(cube):
    start = tip(cube)
    wrong_shape = make_scene("S-shape", "2001-01-01").isel(x=slice(0, 49))
    with pytest.raises(GridError, match=r"S-shape.*shape"):
        cube.append_scenes([wrong_shape], metadata={}, message="m")
    shifted = make_scene("S-shift", "2001-01-01").assign_coords(x=GRID.x + 30)
    with pytest.raises(GridError, match=r"S-shift.*x coordinates"):
        cube.append_scenes([shifted], metadata={}, message="m")
    other_crs = make_scene("S-crs", "2001-01-01").rio.write_crs("EPSG:32636")
    with pytest.raises(GridError, match=r"S-crs.*CRS"):
        cube.append_scenes([other_crs], metadata={}, message="m")
    no_id = make_scene("x", "2001-01-01").drop_vars("scene_id")
    with pytest.raises(CubeError, match="scene #1: missing scene_id"):
        cube.append_scenes([make_scene("ok", "2001-01-01"), no_id], metadata={}, message="m")
    no_time = make_scene("S-time", "2001-01-01").drop_vars("time")
    with pytest.raises(CubeError, match=r"S-time.*acquisition time"):
        cube.append_scenes([no_time], metadata={}, message="m")
    no_sensor = make_scene("S-sensor", "2001-01-01")
    del no_sensor.attrs["sensor"]
    with pytest.raises(CubeError, match=r"S-sensor.*'sensor'"):
        cube.append_scenes([no_sensor], metadata={}, message="m")
    float_classes = make_scene("S-float", "2001-01-01")
    float_classes["land_cover"] = float_classes.land_cover.astype("float32")
    with pytest.raises(CubeError, match=r"S-float.*land_cover.*integer"):
        cube.append_scenes([float_classes], metadata={}, message="m")
    with pytest.raises(CubeError, match="sequence"):
        cube.append_scenes(make_scene("one", "2001-01-01"), metadata={}, message="m")
    with pytest.raises(CubeError, match="JSON"):
        cube.append_scenes([make_scene("j", "2001-01-01")], metadata={"x": object()}, message="m")
    with pytest.raises(CubeError, match="message"):
        cube.append_scenes([make_scene("j", "2001-01-01")], metadata={}, message="")
    assert tip(cube) == start and cube.scene_ids() == set()


def test_scene_attrs_as_the_scene_pipeline_writes_them(cube):
    scene = make_scene("P", "2001-01-01").drop_vars("time")
    scene.attrs["acquired"] = "2010-12-18T07:31:05.123456+03:00"
    cube.append_scenes([scene], metadata={}, message="m")
    ds = cube.to_xarray()
    assert ds.time.values[0] == np.datetime64("2010-12-18T04:31:05.123456", "ns")  # UTC
    assert str(ds.rules.values[0]) == "tm"


# --------------------------------------------------------------------------------------
# Per-year layers
# --------------------------------------------------------------------------------------


def test_yearly_summary_kernel_hand_worked():
    # pixel 0: classes [3, 3, 4] clear + a cloud-class scene; pixel 1: nothing clear;
    # pixel 2: [4, 2] clear (tie -> urban) + a water obs flagged cloud (ignored);
    # pixel 3: [2, 3] tie -> vegetation; the 4th observation saturated
    lc = np.array([[3, 0, 4, 2], [3, 1, 2, 3], [4, 0, 2, 3], [1, 1, 3, 3]], np.uint8)
    q = np.array(
        [[0, 1, 0, 0], [0, 0, 0, 0], [0, 1, QUALITY_CLOUD, QUALITY_SATURATED], [0, 0, 4, 2]],
        np.uint8,
    )
    mv = np.array(
        [[0.2, 9, 0.1, 0.5], [0.6, 9, 0.3, 0.7], [0.4, 9, 9, 9], [9, 9, 9, 9]], np.float32
    )
    out = yearly_summary(lc, q, mv)
    np.testing.assert_array_equal(out[0], [3, 0, 4, 3])
    np.testing.assert_allclose(out[1], [0.4, np.nan, 0.2, 0.6], rtol=1e-6)
    np.testing.assert_array_equal(out[2], [3, 0, 2, 2])
    with pytest.raises(CubeError, match="shape"):
        yearly_summary(lc, q[:2], mv)


def _year_scene(sid, time, lc, q, mv):
    scene = make_scene(sid, time)
    scene["land_cover"] = (("y", "x"), np.full((NY, NX), lc, np.uint8))
    scene["quality"] = (("y", "x"), np.full((NY, NX), q, np.uint8))
    scene["mviupd"] = (("y", "x"), np.full((NY, NX), mv, np.float32))
    return scene


def test_rebuild_yearly_hand_checked_and_incremental(cube):
    cube.append_scenes(
        [
            _year_scene("Y1", "2001-03-01", 3, 0, 0.2),
            _year_scene("Y2", "2001-06-01", 3, 0, 0.6),
            _year_scene("Y3", "2001-09-01", 4, 0, 0.4),
            _year_scene("CLOUDY", "2001-10-01", 4, QUALITY_CLOUD, 0.9),
            _year_scene("Z1", "2003-05-01", 2, 0, -0.3),
        ],
        metadata={},
        message="scenes",
    )
    with dask.config.set({"updm.chunks.yearly": 16}):
        snap = cube.rebuild_yearly()
    assert snap == tip(cube)
    assert cube.history()[0]["metadata"]["years"] == [2001, 2003]
    ds = cube.to_xarray()
    assert list(ds.year.values) == [2001, 2003]
    assert ds.yearly_land_cover.dims == ("year", "y", "x")
    np.testing.assert_array_equal(ds.yearly_land_cover.values[:, 7, 9], [3, 2])
    np.testing.assert_allclose(ds.yearly_mviupd_median.values[:, 7, 9], [0.4, -0.3], rtol=1e-6)
    np.testing.assert_array_equal(ds.yearly_clear_count.values[:, 7, 9], [3, 1])
    assert (ds.yearly_land_cover.values[0] == 3).all()
    group = zarr.open_group(cube.session().store, mode="r")
    assert group["yearly_land_cover"].chunks == (2, 16, 16)
    assert ds.yearly_land_cover.rio.crs == pyproj.CRS.from_epsg(32637)

    # a job adds an older year and a 2001 scene; only 1998 is rebuilt: 2001 is carried over
    cube.append_scenes(
        [_year_scene("OLD", "1998-07-01", 4, 0, 0.1), _year_scene("Y4", "2001-11-01", 4, 0, 0.5)],
        metadata={},
        message="more",
    )
    cube.rebuild_yearly([1998, 1850])
    ds = cube.to_xarray()
    assert list(ds.year.values) == [1998, 2001, 2003]
    np.testing.assert_array_equal(ds.yearly_land_cover.values[:, 0, 0], [4, 3, 2])
    np.testing.assert_array_equal(ds.yearly_clear_count.values[:, 0, 0], [1, 3, 1])
    # rebuilding 2001 now counts Y4: classes [3, 3, 4, 4] tie -> vegetation
    cube.rebuild_yearly([2001])
    ds = cube.to_xarray()
    np.testing.assert_array_equal(ds.yearly_land_cover.values[:, 0, 0], [4, 3, 2])
    np.testing.assert_array_equal(ds.yearly_clear_count.values[:, 0, 0], [1, 4, 1])
    np.testing.assert_allclose(ds.yearly_mviupd_median.values[1, 0, 0], 0.45, rtol=1e-6)
    # years without scenes: nothing to do, no commit
    before = tip(cube)
    assert cube.rebuild_yearly([1900]) is None and tip(cube) == before
    with pytest.raises(CubeError, match="integers"):
        cube.rebuild_yearly(["nineteen"])


# --------------------------------------------------------------------------------------
# `updm info`
# --------------------------------------------------------------------------------------


def test_cube_info_and_its_text(cube, tmp_path):
    cube.append_scenes(
        [
            make_scene("M", "1985-01-01", sensor="MSS", platform="LANDSAT_5"),
            make_scene("T1", "1995-01-01"),
            make_scene("T2", "2001-01-01"),
        ],
        metadata={},
        message="three scenes",
    )
    cube.rebuild_yearly([2001])
    info = cube_info(tmp_path / "cube")
    json.dumps(info)  # JSON-able
    assert info["grid"] == {
        "crs": "EPSG:32637",
        "resolution": 30.0,
        "shape": [NY, NX],
        "bounds": [589035.0, 754965.0, 590535.0, 756165.0],
    }
    assert info["scenes"] == {
        "total": 3,
        "per_sensor": {"MSS": 1, "TM": 2},
        "per_decade": {"1980s": 1, "1990s": 1, "2000s": 1},
    }
    assert info["years"] == [1985, 1995, 2001]
    assert info["yearly_years"] == [2001]
    assert info["variables"]["uCw"] == {
        "dims": ["time", "y", "x"],
        "dtype": "uint16",
        "shape": [3, NY, NX],
        "chunks": [1, CHUNK, CHUNK],
    }
    assert info["coordinates"]["scene_id"]["dtype"] == "str"
    messages = [c["message"] for c in info["commits"]]
    assert messages[:3] == ["rebuild yearly layers for 2001", "three scenes", "create cube"]
    text = format_cube_info(info)
    assert "EPSG:32637, 30 m, 40 x 50 pixels" in text
    assert "MSS" in text and "1980s 1" in text and "three scenes" in text
    assert "years       1985, 1995, 2001" in text
    with pytest.raises(CubeError, match="nowhere"):
        cube_info(tmp_path / "nowhere")


# --------------------------------------------------------------------------------------
# Object store: an S3-compatible server (moto) on 127.0.0.1
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cube_on_an_s3_compatible_server(monkeypatch):
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        for key, value in {
            "AWS_ACCESS_KEY_ID": "testing-key",
            "AWS_SECRET_ACCESS_KEY": "testing-secret",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
        }.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket="updm-test"
        )
        url = "s3://updm-test/cubes/one"
        c = create_cube(url, GRID, chunks=CHUNK)
        assert c.location == url
        snap = c.append_scenes([make_scene("S3A", "2001-01-01", 5)], metadata={}, message="s3")
        again = open_cube(url)
        assert again.scene_ids() == {"S3A"} and again.snapshot_id == snap
        np.testing.assert_array_equal(again.to_xarray().uCw.isel(time=0).values, layers(5)["uCw"])
        with pytest.raises(CubeError, match="not a cube"):
            open_cube("s3://updm-test/cubes/none")
        # the secret never shows up in what a user sees
        assert "testing-secret" not in repr(again) + format_cube_info(cube_info(url))
    finally:
        server.stop()
