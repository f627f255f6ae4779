"""Compact, self-describing scene layers (cube format 2) and ``updm migrate`` from format 1.

The float layers are stored as scaled integers with CF packing attributes; these tests read
them back with plain xarray, check every layer's stated precision against the float results
of format 1 (written by the same write path with the format-1 table, see ``_format1``), and
migrate real format-1 cubes, including a migration killed half-way.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import dask
import dask.array as da
import icechunk
import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr
import zarr
from _format1 import format_1
from affine import Affine
from zarr.codecs import BloscCodec

from updm_dask.cli import main
from updm_dask.cube import (
    CUBE_FORMAT,
    QUALITY_NOT_CLEAR,
    SCENE_VARIABLES,
    YEARLY_VARIABLES,
    create_cube,
    decode_layer,
    encode_layer,
    migrate_cube,
    open_cube,
    resolve_cube,
)
from updm_dask.errors import CubeError
from updm_dask.geo import CubeGrid

REPO = Path(__file__).resolve().parents[2]
NY, NX = 24, 30
GRID = CubeGrid("EPSG:32637", Affine(30, 0, 589035, 0, -30, 756165), (NY, NX))
PACKED = ("uCw", "uCv", "uCs", "uC4", "residual", "mviupd")


def step(name: str) -> float:
    return SCENE_VARIABLES[name].attrs["quantization_step"]


def close_within_precision(name: str, read: np.ndarray, computed: np.ndarray) -> float:
    """Largest |read - computed| over valid pixels; asserts the NaN pattern is kept and the
    difference is at most half a step (plus float32 rounding of the value itself)."""
    read = np.asarray(read, dtype=np.float64)
    computed = np.asarray(computed, dtype=np.float64)
    np.testing.assert_array_equal(np.isnan(read), np.isnan(computed), err_msg=name)
    ok = ~np.isnan(computed)
    if not ok.any():
        return 0.0
    diff = np.abs(read[ok] - computed[ok])
    bound = step(name) / 2 + np.abs(computed[ok]) * 2 * np.finfo(np.float32).eps
    assert (diff <= bound).all(), f"{name}: max error {diff.max()} > half a step {step(name) / 2}"
    return float(diff.max())


def scene(sid: str, when: str, values: dict[str, np.ndarray]) -> xr.Dataset:
    ds = xr.Dataset(
        {n: (("y", "x"), da.from_array(v, chunks=12)) for n, v in values.items()},
        coords={"y": GRID.y, "x": GRID.x},
    ).rio.write_crs(GRID.crs)
    ds = ds.assign_coords(scene_id=sid, time=np.datetime64(when, "us"))
    ds.attrs.update({"sensor": "TM", "platform": "LANDSAT_5"})
    return ds


def float_values(seed: int) -> dict[str, np.ndarray]:
    """Float layers in the ranges the science gives, NaN holes, classes and quality bits."""
    rng = np.random.default_rng(seed)
    out = {
        "uCw": rng.uniform(0, 0.3, (NY, NX)),
        "uCv": rng.uniform(0, 0.6, (NY, NX)),
        "uCs": rng.uniform(0, 0.8, (NY, NX)),
        "uC4": rng.uniform(-0.05, 0.1, (NY, NX)),
        "residual": rng.uniform(0, 0.05, (NY, NX)),
        "mviupd": rng.uniform(-1.2, 1.0, (NY, NX)),
    }
    out = {n: v.astype(np.float32) for n, v in out.items()}
    for v in out.values():
        v[:3, :4] = np.nan
    out["land_cover"] = rng.integers(1, 5, (NY, NX), dtype=np.uint8)
    out["quality"] = rng.choice(np.array([0, 0, 0, 4, 8], np.uint8), (NY, NX))
    return out


def write(path, scenes, *, yearly: bool = True):
    cube = create_cube(path, GRID, chunks=12)
    with dask.config.set(scheduler="threads"):
        cube.append_scenes(scenes, metadata={"job_id": "t"}, message="scenes")
        if yearly:
            cube.rebuild_yearly()
    return cube


def plain_xarray(path) -> xr.Dataset:
    """The cube read with icechunk + xarray only (no updm_dask code)."""
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))
    return xr.open_zarr(repo.readonly_session("main").store, consolidated=False)


# --------------------------------------------------------------------------------------
# Item 1: scaled integers that plain xarray decodes to floats


@pytest.mark.slow
def test_plain_xarray_decodes_the_packed_layers_to_floats_with_nan_where_fill(tmp_path):
    values = float_values(0)
    # out of the encodable range: clipped to its ends, never wrapped
    values["uCw"][5, 5] = 50.0  # above uint16 x 2e-4 = 13.1068
    values["uCv"][5, 6] = -0.001  # NNLS gives none; would wrap to 65535 in uint16
    values["uC4"][5, 7] = -np.inf
    values["mviupd"][5, 8] = 1e6
    write(tmp_path / "c", [scene("A", "2001-05-01", values)], yearly=False)

    ds = plain_xarray(tmp_path / "c")
    for n in PACKED:
        assert ds[n].dtype.kind == "f", n
        enc = ds[n].encoding
        assert enc["dtype"] == np.dtype(SCENE_VARIABLES[n].dtype), n
        assert enc["scale_factor"] == step(n) and enc["add_offset"] == 0.0
        assert enc["_FillValue"] == SCENE_VARIABLES[n].fill
        # the NaN holes come back as NaN, through _FillValue
        assert np.isnan(ds[n].values[0, :3, :4]).all(), n
    read = {n: ds[n].values[0] for n in PACKED}
    hi = SCENE_VARIABLES["uCw"].attrs["encodable_range"][1]
    assert read["uCw"][5, 5] == pytest.approx(hi) and hi == pytest.approx(13.1068)
    assert read["uCv"][5, 6] == 0.0
    assert read["uC4"][5, 7] == pytest.approx(SCENE_VARIABLES["uC4"].attrs["encodable_range"][0])
    assert read["mviupd"][5, 8] == pytest.approx(32.767)
    for n, (r, c) in (("uCw", (5, 5)), ("uCv", (5, 6)), ("uC4", (5, 7)), ("mviupd", (5, 8))):
        read[n][r, c] = values[n][r, c] = np.nan
    for n in PACKED:
        close_within_precision(n, read[n], values[n])
    np.testing.assert_array_equal(ds.land_cover.values[0], values["land_cover"])
    np.testing.assert_array_equal(ds.quality.values[0], values["quality"])

    group = zarr.open_group(open_cube(tmp_path / "c").session().store, mode="r")
    for n in PACKED:
        arr = group[n]
        assert arr.dtype == np.dtype(SCENE_VARIABLES[n].dtype)
        (codec,) = arr.compressors
        conf = codec.to_dict()["configuration"]
        assert isinstance(codec, BloscCodec) and conf["cname"] == "zstd"
        assert conf["shuffle"] == "shuffle" and conf["typesize"] == 2
        # zstd level 3 as configured: Blosc's clevel c is zstd level 2c - 1
        assert conf["clevel"] == 2
        # one Blosc block per chunk: the chunk is one zstd frame
        assert conf["blocksize"] == 2 * int(np.prod(arr.chunks))
    # the package's own view: float32 as before, the same values as plain xarray's
    mine = open_cube(tmp_path / "c").to_xarray()
    for n in PACKED:
        assert mine[n].dtype == np.float32
        np.testing.assert_array_equal(mine[n].values, ds[n].values.astype(np.float32))


@pytest.mark.slow
def test_the_yearly_median_is_stored_as_half_step_codes_that_plain_xarray_decodes(tmp_path):
    # 2001: two observations a pixel (the median is the mean of two stored values, a half
    # step of their codes); 2002: one (the value itself)
    scenes = [scene("A", "2001-05-01", float_values(1)), scene("B", "2001-07-01", float_values(2))]
    scenes.append(scene("C", "2002-03-01", float_values(3)))
    cube = write(tmp_path / "c", scenes)
    spec = YEARLY_VARIABLES["yearly_mviupd_median"]
    arr = zarr.open_group(cube.session().store, mode="r")["yearly_mviupd_median"]
    assert arr.dtype == np.int32 and spec.dtype == "int32" and arr.fill_value == spec.fill
    (codec,) = arr.compressors
    conf = codec.to_dict()["configuration"]
    assert isinstance(codec, BloscCodec) and conf["cname"] == "zstd" and conf["clevel"] == 2
    assert conf["shuffle"] == "shuffle" and conf["typesize"] == 4
    assert conf["blocksize"] == 4 * int(np.prod(arr.chunks))
    ds = plain_xarray(tmp_path / "c")
    enc = ds.yearly_mviupd_median.encoding
    assert (
        enc["dtype"] == np.int32 and enc["scale_factor"] == 5e-4 and enc["_FillValue"] == spec.fill
    )
    mine = cube.to_xarray().load()
    assert mine.yearly_mviupd_median.dtype == np.float32
    np.testing.assert_array_equal(
        mine.yearly_mviupd_median.values, ds.yearly_mviupd_median.values.astype(np.float32)
    )
    # the stored codes: exactly twice the median of the scene layer's codes
    codes = encode_layer("mviupd", mine.mviupd.values).astype(np.float64)
    codes[codes == SCENE_VARIABLES["mviupd"].fill] = np.nan  # MVIUPD undefined
    clear = np.isin(mine.land_cover.values, [2, 3, 4]) & (
        (mine.quality.values & QUALITY_NOT_CLEAR) == 0
    )
    years = mine.time.dt.year.values
    for i, year in enumerate((2001, 2002)):
        picked = np.where(clear[years == year], codes[years == year], np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels
            want = np.nanmedian(picked, axis=0) * 2
        stored = arr[i]
        seen = ~np.isnan(want)
        assert seen.any() and (stored[~seen] == spec.fill).all()
        np.testing.assert_array_equal(stored[seen], want[seen].astype(np.int64))
    assert (np.abs(arr[0]) % 2 == 1).any()  # some 2001 medians fall on a half step


@pytest.mark.parametrize("level", [1, 3, 7])
def test_a_packed_chunk_is_the_configured_zstd_level_of_its_shuffled_codes(tmp_path, level):
    # Blosc's clevel c compresses at zstd level 2c - 1: the chunk object stored must be the
    # very zstd frame of the byte-shuffled codes at the configured level (not at level
    # 2 * level - 1), behind Blosc's header
    import numcodecs

    n, edge = 128, 64
    grid = CubeGrid("EPSG:32637", Affine(30, 0, 589035, 0, -30, 756165), (n, n))
    rng = np.random.default_rng(level)
    ramp = np.add.outer(np.arange(n), np.arange(n)) / (2 * n)  # smooth, as real layers are
    values = {
        "uCw": 0.1 * ramp,
        "uCv": 0.5 * ramp[::-1],
        "uCs": 0.3 + 0.001 * rng.standard_normal((n, n)),
        "uC4": 0.02 * ramp - 0.01,
        "residual": 0.01 + 0.001 * rng.random((n, n)),
        "mviupd": ramp - 0.5,
    }
    layers = {
        k: (("y", "x"), da.from_array(v.astype(np.float32), chunks=edge)) for k, v in values.items()
    }
    layers["land_cover"] = (("y", "x"), da.ones((n, n), dtype=np.uint8, chunks=edge))
    layers["quality"] = (("y", "x"), da.zeros((n, n), dtype=np.uint8, chunks=edge))
    ds = xr.Dataset(layers, coords={"y": grid.y, "x": grid.x}).rio.write_crs(grid.crs)
    ds = ds.assign_coords(scene_id="A", time=np.datetime64("2001-05-01", "us"))
    ds.attrs.update({"sensor": "TM", "platform": "LANDSAT_5"})
    with dask.config.set({"updm.compression.zstd-level": level, "scheduler": "threads"}):
        create_cube(tmp_path / "c", grid, chunks=edge).append_scenes([ds], metadata={}, message="a")
    store = open_cube(tmp_path / "c").session().store
    group = zarr.open_group(store, mode="r")
    prototype = zarr.core.buffer.default_buffer_prototype()
    for name in PACKED:
        codes = np.ascontiguousarray(group[name][0, edge:, edge:])  # chunk (0, 1, 1)
        frame = numcodecs.Zstd(level).encode(numcodecs.Shuffle(codes.itemsize).encode(codes))
        stored = zarr.core.sync.sync(store.get(f"{name}/c/0/1/1", prototype)).to_bytes()
        assert len(frame) < 0.75 * codes.nbytes, name  # compressed, not stored as it is
        assert stored.endswith(bytes(frame)), name
        assert len(stored) - len(frame) <= 32, name  # Blosc's header and one block offset


def test_encode_and_decode_are_the_cf_mapping_for_numpy_and_dask():
    v = np.array([np.nan, 0.0, 0.00011, 0.0003, 13.2, -1.0], dtype=np.float32)
    codes = encode_layer("uCw", v)
    assert codes.dtype == np.uint16
    np.testing.assert_array_equal(codes, [65535, 0, 1, 2, 65534, 0])
    lazy = encode_layer("uCw", da.from_array(v, chunks=2))
    np.testing.assert_array_equal(lazy.compute(), codes)
    back = decode_layer("uCw", codes)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, np.float32([np.nan, 0, 2e-4, 4e-4, 13.1068, 0]))
    np.testing.assert_array_equal(decode_layer("uCw", da.from_array(codes)).compute(), back)
    lc = np.array([0, 3], np.uint8)
    assert decode_layer("land_cover", lc) is lc


@pytest.mark.parametrize("name", [n for n, s in SCENE_VARIABLES.items() if s.scale_factor])
def test_packing_kernels_equal_the_cf_formula_in_numpy_on_edge_values(name):
    # The compiled one-pass kernels against CF packing written out with numpy ufuncs:
    # float64 arithmetic, half to even, clipped to the codes, the fill where NaN.
    spec = SCENE_VARIABLES[name]
    step = spec.scale_factor
    lo, hi = spec.codes
    rng = np.random.default_rng(7)
    edges = np.array(
        [
            np.nan,
            np.inf,
            -np.inf,
            0.0,
            -0.0,
            0.5 * step,
            1.5 * step,
            2.5 * step,
            -0.5 * step,
            lo * step,
            hi * step,
            (hi + 1) * step,
            (lo - 1) * step,
            1e30,
            -1e30,
        ],
        dtype=np.float32,
    )
    values = np.concatenate([edges, rng.normal(0, 3 * hi * step, 20_000).astype(np.float32)])
    values = values.reshape(1, 5, -1)
    v = values.astype(np.float64)
    with np.errstate(invalid="ignore"):
        expected = np.where(
            np.isnan(v), spec.fill, np.clip(np.rint((v - spec.add_offset) / step), lo, hi)
        ).astype(spec.dtype)
    codes = encode_layer(name, values)
    assert codes.dtype == np.dtype(spec.dtype) and codes.shape == values.shape
    np.testing.assert_array_equal(codes, expected)
    # a strided view (a column band of a block) packs the same as a contiguous copy
    np.testing.assert_array_equal(encode_layer(name, values[:, ::2, 1::3]), expected[:, ::2, 1::3])
    as_float = np.where(codes == spec.fill, np.nan, codes.astype(np.float64) * step)
    back = decode_layer(name, codes)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, as_float.astype(np.float32))


# --------------------------------------------------------------------------------------
# Item 2: the precision of every layer, stated and checked


def test_every_scene_layer_states_its_precision():
    packed_yearly = {n: s for n, s in YEARLY_VARIABLES.items() if s.scale_factor is not None}
    assert list(packed_yearly) == ["yearly_mviupd_median"]
    for name, spec in {**SCENE_VARIABLES, **packed_yearly}.items():
        assert "precision" in spec.attrs, name
        if spec.scale_factor is None:
            assert spec.attrs["precision"] == 0 and spec.dtype == "uint8", name
            continue
        s = spec.attrs["quantization_step"]
        assert spec.scale_factor == s and spec.attrs["precision"] == s / 2
        lo, hi = spec.attrs["encodable_range"]
        assert lo == pytest.approx(spec.codes[0] * s) and hi == pytest.approx(spec.codes[1] * s)
        assert "clipped" in spec.attrs["encoding_comment"]
    # NNLS coefficients and the residual are non-negative; the supplementary one is signed
    for n in ("uCw", "uCv", "uCs", "residual"):
        assert SCENE_VARIABLES[n].dtype == "uint16"
    assert SCENE_VARIABLES["uC4"].dtype == SCENE_VARIABLES["mviupd"].dtype == "int16"


@pytest.mark.slow
def test_stored_values_are_the_float_results_within_half_a_step_and_classes_identical(
    tmp_path,
):
    scenes = [scene("A", "2001-05-01", float_values(1)), scene("B", "2001-07-01", float_values(2))]
    scenes.append(scene("C", "2002-03-01", float_values(3)))
    packed = write(tmp_path / "f2", scenes)
    with format_1():
        floats = write(tmp_path / "f1", scenes)
        ref = floats.to_xarray().load()
        assert ref.uCw.dtype == np.float32 and ref.attrs["updm_cube_format"] == 1
    got = packed.to_xarray().load()
    for n in PACKED:
        close_within_precision(n, got[n].values, ref[n].values)
    for n in ("land_cover", "quality", "yearly_land_cover", "yearly_clear_count"):
        np.testing.assert_array_equal(got[n].values, ref[n].values, err_msg=n)
    np.testing.assert_array_equal(got.yearly_class_count.values, ref.yearly_class_count.values)
    # the median of values each within half a step is within half a step of their median
    close_within_precision("mviupd", got.yearly_mviupd_median.values, ref.yearly_mviupd_median)


# --------------------------------------------------------------------------------------
# Item 3: format 1 refused with the way out, or migrated in one commit


def format_1_cube(path, scenes, *, yearly: bool = True):
    with format_1():
        return write(path, scenes, yearly=yearly)


def test_a_format_1_cube_is_refused_with_a_message_that_says_to_migrate(tmp_path, capsys):
    path = tmp_path / "old"
    snap = format_1_cube(path, [scene("A", "2001-05-01", float_values(1))]).snapshot_id
    expected = (
        f"cube {str(path)!r} has format 1, older than the format 2 this package reads "
        f"(scene layers are stored differently); run `updm migrate {path}` to re-encode it"
    )
    for read in (lambda: open_cube(path), lambda: resolve_cube(str(path))):
        with pytest.raises(CubeError) as err:
            read()
        assert expected in str(err.value)
    with pytest.raises(CubeError, match="a snapshot of that format cannot be read"):
        open_cube(path, snapshot=snap)
    with pytest.raises(CubeError, match="has format 1, older"):
        create_cube(path, GRID, exist_ok=True)
    assert main(["info", str(path)]) == 2
    assert expected in capsys.readouterr().err
    assert main(["query", "point", str(path), "--xy", str(GRID.x[3]), str(GRID.y[3])]) == 2
    assert "has format 1" in capsys.readouterr().err


@pytest.mark.slow
def test_updm_migrate_re_encodes_in_one_commit_then_rebuilds_the_yearly_layers(tmp_path, capsys):
    scenes = [scene("A", "2001-05-01", float_values(1)), scene("B", "2003-07-01", float_values(2))]
    old = format_1_cube(tmp_path / "old", scenes)
    before = len(old.history())
    direct = write(tmp_path / "new", scenes)

    assert main(["migrate", str(tmp_path / "old")]) == 0
    out = capsys.readouterr().out
    assert "format 1 -> 2, re-encoded uCw, uCv, uCs, uC4, residual, mviupd" in out
    assert "per-year layers rebuilt" in out
    cube = open_cube(tmp_path / "old")
    history = cube.history()
    assert len(history) == before + 2
    assert history[1]["metadata"]["action"] == "migrate"
    assert history[0]["metadata"] == {
        "action": "rebuild_yearly",
        "years": [2001, 2003],
        "updm_dask_version": history[0]["metadata"]["updm_dask_version"],
    }
    # the migrated cube holds exactly the codes a format-2 cube of the same scenes holds
    a = zarr.open_group(cube.session().store, mode="r")
    b = zarr.open_group(direct.session().store, mode="r")
    for n in (*SCENE_VARIABLES, "yearly_land_cover", "yearly_mviupd_median", "scene_id"):
        assert a[n].dtype == b[n].dtype, n
        np.testing.assert_array_equal(a[n].fill_value, b[n].fill_value, err_msg=n)
        np.testing.assert_array_equal(a[n][:], b[n][:], err_msg=n)
    for n in PACKED:
        assert dict(a[n].attrs) == dict(b[n].attrs)
    assert plain_xarray(tmp_path / "old").uCw.dtype.kind == "f"

    # again: nothing left to do, no commit
    tip = cube.snapshot_id
    assert main(["migrate", str(tmp_path / "old")]) == 0
    assert "already has format 2" in capsys.readouterr().out
    assert open_cube(tmp_path / "old").snapshot_id == tip


def test_migrate_refuses_what_it_cannot_convert(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["migrate", str(tmp_path / "empty")]) == 2
    assert "is not a cube (no Icechunk repository there)" in capsys.readouterr().err
    path = tmp_path / "odd"
    format_1_cube(path, [scene("A", "2001-05-01", float_values(1))], yearly=False)
    # a format-1 cube whose layer is not what format 1 says: refused, not misread
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))
    session = repo.writable_session("main")
    group = zarr.open_group(session.store, mode="r+")
    del group["uC4"]
    group.create_array("uC4", shape=(1, NY, NX), dtype="int16", fill_value=0)
    session.commit("odd")
    tip = repo.lookup_branch("main")
    with pytest.raises(CubeError) as err:
        migrate_cube(path)
    assert str(err.value) == (
        f"cube {str(path)!r}: variable 'uC4' is int16 with fill 0 and 3 dims; format 1 stores "
        "it as float32 (time, y, x) with NaN fill. Not migrated"
    )
    assert repo.lookup_branch("main") == tip
    s2 = repo.writable_session("main")
    zarr.open_group(s2.store, mode="r+").attrs["updm_cube_format"] = CUBE_FORMAT + 5
    s2.commit("future")
    with pytest.raises(CubeError, match=f"has format {CUBE_FORMAT + 5}, newer than"):
        migrate_cube(path)


CRASH = textwrap.dedent(
    """
    import os, sys
    import dask
    import updm_dask.cube._migrate as m
    from updm_dask.cube import _schema

    blocks = []

    def dying(name, values):
        def block(x):
            blocks.append(name)
            if len(blocks) == int(sys.argv[2]):
                os._exit(3)  # killed half-way through writing the re-encoded chunks
            return _schema._pack(x, _schema.SCENE_VARIABLES[name])
        return values.map_blocks(block, dtype=_schema.SCENE_VARIABLES[name].dtype)

    m.encode_layer = dying
    with dask.config.set(scheduler="synchronous"):
        m.migrate_cube(sys.argv[1])
    """
)


@pytest.mark.slow
def test_a_migration_killed_half_way_leaves_the_cube_at_its_last_commit(tmp_path, capsys):
    path = tmp_path / "old"
    scenes = [scene("A", "2001-05-01", float_values(1)), scene("B", "2003-07-01", float_values(2))]
    old = format_1_cube(path, scenes)
    tip = old.snapshot_id
    with format_1():
        before = old.to_xarray().load()
    proc = subprocess.run(
        [sys.executable, "-c", CRASH, str(path), "7"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 3, proc.stderr
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))
    assert repo.lookup_branch("main") == tip
    with pytest.raises(CubeError, match="has format 1"):
        open_cube(path)
    with format_1():
        after = open_cube(path).to_xarray().load()
    xr.testing.assert_identical(after, before)

    assert main(["migrate", str(path)]) == 0
    assert "format 1 -> 2" in capsys.readouterr().out
    got = open_cube(path).to_xarray().load()
    for n in PACKED:
        close_within_precision(n, got[n].values, before[n].values)


@pytest.mark.slow
def test_a_migration_killed_before_its_yearly_rebuild_is_finished_by_a_second_run(tmp_path, capsys):
    path = tmp_path / "old"
    scenes = [scene("A", "2001-05-01", float_values(1)), scene("B", "2003-07-01", float_values(2))]
    format_1_cube(path, scenes)
    kill_in_rebuild = (
        "import os, sys\n"
        "from updm_dask.cube import Cube, migrate_cube\n"
        "Cube.rebuild_yearly = lambda *a, **k: os._exit(4)\n"
        "migrate_cube(sys.argv[1])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", kill_in_rebuild, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 4, proc.stderr
    cube = open_cube(path)  # the re-encoding was committed: format 2
    assert cube.history()[0]["metadata"]["action"] == "migrate"
    assert main(["migrate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "already has format 2" in out and "per-year layers rebuilt" in out
    assert open_cube(path).history()[0]["metadata"]["action"] == "rebuild_yearly"
    assert main(["migrate", str(path)]) == 0
    assert "per-year layers rebuilt" not in capsys.readouterr().out


# --------------------------------------------------------------------------------------
# Items 1-2 through real jobs: the demo archive and the real TM / ETM+ / OLI scenes


def stored_bytes(cube, names) -> int:
    """Bytes of the stored chunks of the arrays ``names`` (what the repository holds)."""
    from zarr.core.sync import sync

    store = cube.session().store

    async def total() -> int:
        size = 0
        for name in names:
            async for key in store.list_prefix(f"{name}/"):
                if key.startswith(f"{name}/c/"):
                    size += await store.getsize(key)
        return size

    return sync(total())


def run_both(job, client) -> tuple[xr.Dataset, xr.Dataset, xr.Dataset, xr.Dataset, dict]:
    """The job into a format-2 cube, and into a format-1 cube (the float path).

    Returns both cubes' datasets, both complete annual maps and the bytes per pixel per
    scene of the scene layers of each.
    """
    from updm_dask.jobs.run import run_job_file
    from updm_dask.query import complete_yearly

    text = job.read_text()
    cubes = {}
    for fmt in (1, 2):
        path = job.parent / f"cube-f{fmt}.icechunk"
        spec = job.parent / f"job-f{fmt}.toml"
        # the same job, with its [cube] path pointed at this format's cube
        pointed, n = re.subn(r"(\[cube\]\s*\npath = )\"[^\"]*\"", rf'\1"{path}"', text)
        assert n == 1, text
        spec.write_text(pointed)
        with format_1() if fmt == 1 else contextlib.nullcontext():
            report = run_job_file(spec, client=client, progress=False, echo=lambda _t: None)
            assert report.exit_code == 0 and report.done and report.years_rebuilt, report
            cube = open_cube(path)
            ds = cube.to_xarray().load()
            complete = complete_yearly(cube).load()
            n = ds.sizes["time"] * ds.sizes["y"] * ds.sizes["x"]
            per_px = stored_bytes(cube, SCENE_VARIABLES) / n
        cubes[fmt] = (ds, complete, per_px)
    (f1, c1, b1), (f2, c2, b2) = cubes[1], cubes[2]
    assert f1.attrs["updm_cube_format"] == 1 and f2.attrs["updm_cube_format"] == 2
    return f2, f1, c2, c1, {"format 1": b1, "format 2": b2}


def check_against_float_path(got, ref, complete_got, complete_ref) -> None:
    np.testing.assert_array_equal(got.scene_id.values, ref.scene_id.values)
    for n in PACKED:
        assert ref[n].dtype == np.float32
        close_within_precision(n, got[n].values, ref[n].values)
    for n in ("land_cover", "quality", "yearly_land_cover", "yearly_clear_count"):
        np.testing.assert_array_equal(got[n].values, ref[n].values, err_msg=n)
    np.testing.assert_array_equal(got.yearly_class_count.values, ref.yearly_class_count.values)
    close_within_precision("mviupd", got.yearly_mviupd_median.values, ref.yearly_mviupd_median)
    assert set(complete_got.data_vars) == set(complete_ref.data_vars)
    for n in complete_ref.data_vars:
        np.testing.assert_array_equal(complete_got[n].values, complete_ref[n].values, err_msg=n)


@pytest.mark.slow
def test_demo_job_stores_within_precision_and_under_5_bytes_per_pixel(tmp_path, client):
    from updm_dask.demo import make_demo_archive

    archive = make_demo_archive(tmp_path / "demo", n_scenes=6, size=96)
    job = archive.write_job_spec(tmp_path / "job.toml", tmp_path / "cube.icechunk")
    got, ref, complete_got, complete_ref, per_px = run_both(job, client)
    check_against_float_path(got, ref, complete_got, complete_ref)
    assert per_px["format 2"] <= 5.0 < per_px["format 1"], per_px


@pytest.mark.slow
def test_real_scenes_job_stores_within_precision_and_under_5_bytes_per_pixel(
    shared_data, tmp_path, client
):
    example = (REPO / "examples" / "ethiopia-167055.toml").read_text()
    data = shared_data / "landsat" / "ethiopia-167055"
    job = tmp_path / "job.toml"
    job.write_text(example.replace('"../../shared/data/landsat/ethiopia-167055"', f'"{data}"'))
    got, ref, complete_got, complete_ref, per_px = run_both(job, client)
    assert sorted(str(s) for s in got.sensor.values) == ["ETM+", "OLI", "TM", "TM"]
    check_against_float_path(got, ref, complete_got, complete_ref)
    assert per_px["format 2"] <= 5.0 < per_px["format 1"], per_px
