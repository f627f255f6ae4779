"""The one-pass quality flags: bit for bit what the numpy functions give, for every case.

The expected flags come from the public numpy function :func:`qa_flags` and the two
``np.where`` lines process_block ran after it (:func:`numpy_flags` below), never from the
kernel under test.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from _numba_kernels import watch_kernel_compiles as watch_compiles
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from updm_dask.errors import SceneError
from updm_dask.science import quality
from updm_dask.science.masks import (
    CLOUD,
    DARK,
    FILL,
    SATURATED,
    SLC_GAP,
    MaskParams,
    qa_flags,
)
from updm_dask.science.quality import quality_flags

CLOUD_CODE = 3
SHAPE = (41, 57)


def numpy_flags(dn, qa, radsat, params, row_extent=None, col_offset=0, classes=None, dark=None):
    """What process_block computed before the kernel (numpy functions, in its order)."""
    flags = qa_flags(
        dn, qa, radsat, params=params, row_extent=row_extent, col_offset=col_offset
    ).astype(np.uint8)
    if classes is not None:
        flags = flags | np.where(classes == CLOUD_CODE, CLOUD, 0).astype(np.uint8)
    if dark is not None:
        flags = flags | np.where(dark, DARK, 0).astype(np.uint8)
    return flags


def no_numpy_path(*args, **kwargs):
    raise AssertionError("the numpy functions ran instead of the kernel")


@pytest.fixture
def kernel_only(monkeypatch):
    """Fail the test if quality_flags hands the block to the numpy functions."""
    monkeypatch.setattr(quality, "_numpy_flags", no_numpy_path)


def assert_same_flags(dn, qa, radsat, params, **kwargs) -> np.ndarray:
    expected = numpy_flags(dn, qa, radsat, params, **kwargs)
    cloud = {"cloud_class": CLOUD_CODE} if kwargs.get("classes") is not None else {}
    got = quality_flags(dn, qa, radsat, params=params, **kwargs, **cloud)
    assert got.dtype == np.uint8 and got.shape == expected.shape
    differ = np.argwhere(got != expected)
    assert differ.size == 0, (differ[:5], got[tuple(differ[:5].T)], expected[tuple(differ[:5].T)])
    return got


def params_of(
    n: int = 6,
    *,
    level: str = "L1",
    fills=None,
    saturation=None,
    qa_kind: str | None = "qa_pixel",
    slc_off: bool = False,
    band_bits: int = 0b1011_1111,
    fill_bits: int = 1 << 9,
) -> MaskParams:
    return MaskParams(
        band_labels=tuple(str(i + 1) for i in range(n)),
        level=level,
        fill_values=tuple(fills if fills is not None else ((0.0,),) * n),
        saturation_dn=tuple(saturation if saturation is not None else (None,) * n),
        qa_kind=qa_kind,
        radsat_band_bits=band_bits,
        radsat_fill_bits=fill_bits,
        slc_off=slc_off,
    )


def dn_block(dtype, n: int = 6, shape=SHAPE, seed: int = 0, qmax: float = 255.0) -> np.ndarray:
    """Random DN with fill (0, -9999), saturation (qmax) and, for floats, non-finite values."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    high = int(min(qmax, np.iinfo(dtype).max if dtype.kind in "iu" else qmax))
    block = rng.integers(1, high, (n, *shape), endpoint=True).astype(dtype)
    special = [0, qmax, qmax - 1]
    if dtype.kind == "i" or dtype.kind == "f":
        special += [-9999]
    if dtype.kind == "f":
        special += [np.nan, np.inf, -np.inf]
    for b in range(n):
        where = rng.random(shape) < 0.08
        block[b][where] = rng.choice(np.array(special, dtype=np.float64), where.sum())
    # SLC-off like stripes of fill in every band, inside and at the edges of rows
    block[:, ::7, 10:14] = 0
    block[:, 3, :] = 0
    block[:, 5, :20] = 0
    block[:, 6, -5:] = 0
    return block


def qa_block(kind: str, dtype, shape=SHAPE, seed: int = 1) -> np.ndarray:
    """Random QA words, all 16 bits, plus negative words when read signed."""
    rng = np.random.default_rng(seed)
    words = rng.integers(0, 2**16, shape).astype(np.uint16)
    # common exact values: clear, fill, BQA high cirrus / high shadow, QA_PIXEL cloud
    words.flat[::11] = rng.choice(np.array([0, 1, 2, 3, 1 << 4, 0b11 << 11, 0b11 << 7, 8]), 1)
    if np.dtype(dtype) == np.int16:
        return words.view(np.int16)  # the high bit reads negative: the QA band's nodata
    return words.astype(dtype)


def extent_of(ny: int, seed: int = 2) -> np.ndarray:
    """A whole-scene row extent: random columns, rows without valid pixels, reversed rows."""
    rng = np.random.default_rng(seed)
    first = rng.integers(-5, 120, ny)
    last = first + rng.integers(-3, 150, ny)
    extent = np.stack([first, last], axis=1).astype(np.int64)
    extent[::9] = (np.iinfo(np.int64).max, -1)
    return extent


# --------------------------------------------------------------------------------------
# Every combination the pipeline meets


@pytest.mark.parametrize("dn_dtype", ["uint8", "uint16", "int16", "float32"])
@pytest.mark.parametrize(
    "qa", [None, "bqa/uint16", "bqa/int16", "qa_pixel/uint16", "qa_pixel/int16"]
)
@pytest.mark.parametrize("radsat", [False, True], ids=["no-radsat", "radsat"])
@pytest.mark.parametrize("level", ["L1", "L2"])
@pytest.mark.parametrize("slc", ["on", "off-block", "off-extent"])
def test_every_combination_bit_identical_to_qa_flags(kernel_only, dn_dtype, qa, radsat, level, slc):
    qmax = 255.0 if dn_dtype == "uint8" else 4095.0
    dn = dn_block(dn_dtype, qmax=qmax)
    kind = None if qa is None else qa.split("/")[0]
    qa_band = None if qa is None else qa_block(kind, qa.split("/")[1])
    radsat_band = qa_block("radsat", "uint16", seed=5) if radsat else None
    fills = [(0.0,)] * 5 + [(0.0, -9999.0)] if dn_dtype != "uint8" else None
    params = params_of(
        level=level,
        fills=fills,
        saturation=(qmax, qmax, None, qmax, qmax, qmax) if level == "L1" else None,
        qa_kind=kind or "qa_pixel",
        slc_off=slc != "on",
    )
    kwargs = {}
    if slc == "off-extent":
        kwargs = {"row_extent": extent_of(SHAPE[0]), "col_offset": 40}
    with np.errstate(invalid="ignore"):
        got = assert_same_flags(dn, qa_band, radsat_band, params, **kwargs)
    # the inputs reach the rules under test, so that equality says something
    assert (got & FILL).any()
    if level == "L1" or radsat or kind == "bqa":
        assert (got & SATURATED).any()
    if slc != "on":
        assert (got & SLC_GAP).any()
    if qa is not None:
        assert (got & CLOUD).any()


def test_cloud_class_and_dark_bits_are_added(kernel_only):
    dn, params = dn_block("uint16", qmax=4095.0), params_of(saturation=(4095.0,) * 6)
    rng = np.random.default_rng(3)
    classes = rng.integers(0, 8, SHAPE).astype(np.uint8)
    dark = rng.random(SHAPE) < 0.3
    got = assert_same_flags(dn, None, None, params, classes=classes, dark=dark)
    assert ((got & CLOUD) != 0).sum() == (classes == CLOUD_CODE).sum()
    assert ((got & DARK) != 0).sum() == dark.sum()
    assert_same_flags(dn, qa_block("qa_pixel", "uint16"), None, params, dark=dark)


@pytest.mark.parametrize(
    "dn_dtype", ["int8", "uint32", "int32", "float64", "float16", "int64", ">u2", ">f4"]
)
def test_other_dn_dtypes_identical(dn_dtype):
    dn = dn_block("int16", qmax=120.0).astype(dn_dtype)
    params = params_of(fills=[(0.0, -9999.0)] * 6, saturation=(120.0,) * 6, slc_off=True)
    with np.errstate(invalid="ignore"):
        assert_same_flags(dn, qa_block("qa_pixel", "uint16"), None, params)


@pytest.mark.parametrize(
    "qa_dtype", ["uint8", "int8", "uint32", "int32", "int64", "uint64", "float32", ">u2"]
)
def test_other_qa_dtypes_identical(qa_dtype):
    dn = dn_block("uint16", qmax=4095.0)
    qa = qa_block("bqa", "int16").astype(qa_dtype)
    radsat = qa_block("radsat", "int16", seed=7).astype(qa_dtype)
    params = params_of(qa_kind="bqa", saturation=(4095.0,) * 6, slc_off=True)
    assert_same_flags(dn, qa, radsat, params, row_extent=extent_of(SHAPE[0]), col_offset=3)
    assert_same_flags(dn, qa, None, params)


@pytest.mark.parametrize(
    "fills, saturation",
    [
        ([(0.0, 0.1)] * 6, (np.float32(200.5),) * 6),  # float32 DN meets float32 rounding
        ([(0.0, np.float64(0.1))] * 6, (1e300,) * 6),
        ([(0.0, None)] * 6, (np.nan,) * 6),
        ([(0, 17, 300)] * 6, (200,) * 6),  # Python ints
        ([()] * 6, (None,) * 6),  # no fill value at all
        ([(0.0, 2**70)] * 6, (2**70,) * 6),  # beyond any DN type: numpy decides
    ],
)
@pytest.mark.parametrize("dn_dtype", ["uint16", "int16", "float32"])
def test_odd_fill_and_saturation_values_identical(fills, saturation, dn_dtype):
    dn = dn_block(dn_dtype, qmax=4095.0)
    dn[:, ::13, ::5] = 17
    dn[:, 1::13, ::5] = 200
    if dn.dtype.kind == "f":
        dn[:, 2::13, ::5] = np.float32(0.1)
        dn[:, 4::13, ::5] = np.float32(200.5)
    params = params_of(fills=fills, saturation=saturation)
    with np.errstate(invalid="ignore", over="ignore"):
        assert_same_flags(dn, None, None, params)


@pytest.mark.parametrize("layout", ["sliced", "fortran", "transposed"])
def test_any_memory_layout(layout):
    dn = dn_block("uint16", shape=(80, 90), qmax=4095.0)
    qa = qa_block("qa_pixel", "uint16", shape=(80, 90))
    if layout == "sliced":
        dn, qa = dn[:, 5:60:2, 3:80], qa[5:60:2, 3:80]
    elif layout == "fortran":
        dn, qa = np.asfortranarray(dn), np.asfortranarray(qa)
    else:
        dn, qa = dn.transpose(0, 2, 1), qa.T
    params = params_of(saturation=(4095.0,) * 6, slc_off=True)
    assert_same_flags(dn, qa, None, params)


@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (1, 1), (1, 9), (9, 1)])
def test_empty_and_small_blocks(shape):
    dn = dn_block("uint16", shape=(9, 9), qmax=4095.0)[:, : shape[0], : shape[1]]
    qa = qa_block("bqa", "int16", shape=(9, 9))[: shape[0], : shape[1]]
    params = params_of(qa_kind="bqa", saturation=(4095.0,) * 6, slc_off=True)
    assert_same_flags(dn, qa, None, params)
    assert_same_flags(dn, None, None, params)


def test_the_slc_rule_uses_the_whole_scenes_extent_in_scene_columns(kernel_only):
    # one row: fill at block columns 0-2 and 7-9, valid between; the whole scene's row is
    # valid from column 95 to 130 and the block starts at scene column 100
    dn = np.full((6, 1, 10), 500, dtype=np.uint16)
    dn[:, 0, :3] = 0
    dn[:, 0, 7:] = 0
    params = params_of(slc_off=True)
    extent = np.array([[95, 108]])
    got = quality_flags(dn, None, None, params=params, row_extent=extent, col_offset=100)
    # scene columns 100-102 lie inside (95, 108): gaps; 107 too; 108 and 109 do not
    assert list(got[0] & SLC_GAP) == [SLC_GAP] * 3 + [0] * 4 + [SLC_GAP, 0, 0]
    # without an extent the block's own row decides: no valid pixel left of column 0
    alone = quality_flags(dn, None, None, params=params)
    assert not (alone & SLC_GAP).any()


def test_bad_input_raises_what_qa_flags_raises():
    params = params_of(qa_kind=None)
    dn = dn_block("uint16", qmax=4095.0)
    cases = [
        (dn[0], None, None, params),  # 2-D DN
        (dn[:4], None, None, params),  # band count
        (dn, np.zeros((3, 3), np.uint16), None, params),  # qa shape
        (dn, None, np.zeros((SHAPE[1], SHAPE[0]), np.uint16), params),  # radsat shape
        (dn, np.zeros(SHAPE, np.uint16), None, params),  # QA band of unknown kind
    ]
    for block, qa, radsat, p in cases:
        with pytest.raises(SceneError) as expected:
            qa_flags(block, qa, radsat, params=p)
        with pytest.raises(SceneError) as got:
            quality_flags(block, qa, radsat, params=p)
        assert str(got.value) == str(expected.value)
        assert str(got.value).startswith("qa_flags: ")  # names the argument and the rule


# --------------------------------------------------------------------------------------
# Random blocks, QA words and rules


@st.composite
def blocks_and_rules(draw):
    dtype = np.dtype(draw(st.sampled_from(["uint8", "uint16", "int16", "float32"])))
    n = draw(st.integers(1, 7))
    ny, nx = draw(st.integers(1, 12)), draw(st.integers(1, 16))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    qmax = draw(st.sampled_from([255.0, 4095.0, 65535.0, 3.0]))
    if dtype == np.uint8:
        qmax = min(qmax, 255.0)
    pool = [0, 1, 2, qmax - 1, qmax, -9999, 17, 255, 65535, -1]
    if dtype.kind == "f":
        pool += [np.nan, np.inf, -np.inf, 0.5]
    values = np.array(pool, dtype=np.float64)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = values[(values >= info.min) & (values <= info.max)]
    with np.errstate(invalid="ignore"):
        dn = rng.choice(values, (n, ny, nx)).astype(dtype)
    fills = [
        tuple(draw(st.lists(st.sampled_from([0.0, -9999.0, 17.0, 255.0, None]), max_size=3)))
        for _ in range(n)
    ]
    saturation = [draw(st.sampled_from([None, qmax, 17.0, 2.0])) for _ in range(n)]
    kind = draw(st.sampled_from([None, "bqa", "qa_pixel"]))
    qa = None
    if kind is not None:
        words = np.array(
            draw(st.lists(st.integers(0, 2**16 - 1), min_size=ny * nx, max_size=ny * nx))
        )
        qa = words.astype(np.uint16).reshape(ny, nx)
        if draw(st.booleans()):
            qa = qa.view(np.int16)  # read signed: the high bit is negative
    radsat = None
    if draw(st.booleans()):
        radsat = rng.integers(0, 2**16, (ny, nx)).astype(np.uint16)
        radsat[rng.random((ny, nx)) < 0.5] = 0
    params = params_of(
        n,
        level=draw(st.sampled_from(["L1", "L2"])),
        fills=fills,
        saturation=saturation,
        qa_kind=kind or draw(st.sampled_from([None, "bqa", "qa_pixel"])),
        slc_off=draw(st.booleans()),
        band_bits=draw(st.integers(0, 2**16 - 1)),
        fill_bits=draw(st.sampled_from([1 << 9, 1 << 11, 0])),
    )
    kwargs = {}
    if draw(st.booleans()):
        kwargs["col_offset"] = draw(st.integers(-5, 40))
        kwargs["row_extent"] = np.array(
            [
                draw(
                    st.sampled_from(
                        [(2**63 - 1, -1), *itertools.product(range(-2, 50, 3), repeat=2)]
                    )
                )
                for _ in range(ny)
            ],
            dtype=np.int64,
        )
    if draw(st.booleans()):
        kwargs["classes"] = rng.integers(0, 6, (ny, nx)).astype(np.uint8)
    if draw(st.booleans()):
        kwargs["dark"] = rng.random((ny, nx)) < 0.5
    return dn, qa, radsat, params, kwargs


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=blocks_and_rules())
def test_random_blocks_qa_words_and_extents_bit_identical(case):
    dn, qa, radsat, params, kwargs = case
    with pytest.MonkeyPatch.context() as m, np.errstate(invalid="ignore"):
        m.setattr(quality, "_numpy_flags", no_numpy_path)  # every case here runs compiled
        assert_same_flags(dn, qa, radsat, params, **kwargs)


# --------------------------------------------------------------------------------------
# Compilation: once for threads starting together, and without a writable cache


_FIRST_CALL = textwrap.dedent(
    """
    import time
    import numpy as np
    from updm_dask.science import quality
    from updm_dask.science.masks import MaskParams

    params = MaskParams(tuple("123457"), "L1", ((0.0,),) * 6, (255.0,) * 6, "bqa", 0, 0, True)
    dn, qa = np.ones((6, 2, 2), np.uint8), np.zeros((2, 2), np.uint16)
    start = time.perf_counter()
    quality.quality_flags(dn, qa, None, params=params)
    seconds = time.perf_counter() - start
    # without a QA band: the same version (an absent band's placeholder is uint16)
    quality.quality_flags(dn, None, None, params=params)
    stats = quality._compiled(np.dtype("uint8"), np.dtype("uint16"), np.dtype("uint16")).stats
    print(seconds, len(stats.cache_hits), len(stats.cache_misses))
    """
)


@pytest.mark.slow
def test_the_kernel_is_compiled_once_then_loaded_from_the_disk_cache(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    runs = [
        subprocess.run([sys.executable, "-c", _FIRST_CALL], env=env, capture_output=True, text=True)
        for _ in range(2)
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr
    (_, hits_1, misses_1), (_, hits_2, misses_2) = (
        (float(x) for x in r.stdout.split()[-3:]) for r in runs
    )
    assert (hits_1, misses_1) == (0, 1)  # the first process compiles
    assert (hits_2, misses_2) == (1, 0)  # the second loads it from the cache
    assert any(p.suffix == ".nbi" for p in tmp_path.rglob("*"))


def watch_kernel_compiles(monkeypatch, *, cache_fails: bool = False) -> list:
    """The ``cache`` option of every compile of the kernel, in order (numba.njit patched)."""
    return watch_compiles(monkeypatch, quality._kernel_source, cache_fails=cache_fails)


def test_without_a_writable_cache_location_the_kernel_still_compiles(monkeypatch):
    calls = watch_kernel_compiles(monkeypatch, cache_fails=True)
    quality._compiled.cache_clear()
    try:
        params = params_of(saturation=(255.0,) * 6, slc_off=True)
        assert_same_flags(dn_block("uint8"), qa_block("qa_pixel", "uint16"), None, params)
        assert calls == [True, False]
    finally:
        quality._compiled.cache_clear()  # the next test gets the cached kernel again


def test_threads_starting_together_compile_the_kernel_once(monkeypatch):
    compiled = watch_kernel_compiles(monkeypatch)
    quality._compiled.cache_clear()
    params = params_of(qa_kind="bqa", saturation=(4095.0,) * 6, slc_off=True)
    dn, qa = dn_block("uint16", qmax=4095.0), qa_block("bqa", "int16")
    start = threading.Barrier(4)
    results = []

    def work():
        start.wait()
        results.append(quality_flags(dn, qa, None, params=params))

    try:
        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert len(results) == 4
        expected = numpy_flags(dn, qa, None, params)
        for got in results:
            assert np.array_equal(got, expected)
        assert compiled == [True]  # one compile (or disk-cache load) for the four threads
    finally:
        quality._compiled.cache_clear()
