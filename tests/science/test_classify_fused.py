"""The one-pass compiled kernel gives what the numpy functions give, bit for bit.

Every expected value here comes from the public numpy functions ``classify_array``,
``mviupd`` and ``mviupd_undefined`` (the "before" of the pipeline), never from the kernel
under test. Inputs stress where a difference in precision or operation order would show:
values on and one ulp beside every threshold and the dark limit, MVIUPD landing on its
thresholds, NaN of both signs, infinities, zeros of both signs, subnormals, overflowing sums.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import dask
import numpy as np
import pytest
import xarray as xr
from _numba_kernels import watch_kernel_compiles as watch_compiles
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import updm_dask.pipeline as pipeline
from updm_dask.errors import RuleError
from updm_dask.science.classify import (
    MVIUPD_DARK_LIMIT,
    OPERATORS,
    QUANTITIES,
    Condition,
    Rule,
    RuleTable,
    classify_array,
    fused,
    load_rules,
    mviupd,
    mviupd_undefined,
)
from updm_dask.science.classify.fused import classify_block

TM = load_rules("TM")
MSS = load_rules("MSS")
FLOATS = (np.float32, np.float64)


def numpy_block(coefficients: np.ndarray, rules: RuleTable):
    """The three results as the pipeline computed them before the kernel (numpy)."""
    c = coefficients
    uc4 = c[..., 3] if c.shape[-1] == 4 else None
    return (
        classify_array(c, rules),
        mviupd(c[..., 0], c[..., 1], c[..., 2], uc4),
        mviupd_undefined(c[..., 0], c[..., 1], c[..., 2]),
    )


def assert_identical(got, expected) -> None:
    """Same dtype, shape and values; floats also the same bit patterns (NaN payloads too)."""
    for name, a, b in zip(("codes", "mviupd", "dark"), got, expected, strict=True):
        assert a.dtype == b.dtype, (name, a.dtype, b.dtype)
        assert a.shape == b.shape, (name, a.shape, b.shape)
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), name
        if a.dtype.kind == "f":
            bits = np.dtype(f"u{a.dtype.itemsize}")
            differ = np.flatnonzero(a.view(bits) != b.view(bits))
            assert differ.size == 0, (name, differ[:5], a.ravel()[differ[:5]])


def ulps(x, dtype, n: int = 1) -> list[float]:
    """``x`` rounded to ``dtype`` and its neighbours up to ``n`` ulps on either side."""
    x = dtype(x)
    out = [x]
    up = down = x
    for _ in range(n):
        up = np.nextafter(up, dtype(np.inf))
        down = np.nextafter(down, dtype(-np.inf))
        out += [up, down]
    return [float(v) for v in out]


SPECIALS = [0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, 1e-40, -1e-40, 1.0, 3e38, -3e38]


def edge_values(rules: RuleTable, dtype) -> np.ndarray:
    """Thresholds, the dark limit and the specials, each with its ulp neighbours."""
    values = [v for v in SPECIALS]
    for rule in rules.rules:
        for c in rule.conditions:
            values += ulps(c.threshold, dtype, 2)
    values += ulps(MVIUPD_DARK_LIMIT, dtype, 2)
    with np.errstate(over="ignore"):
        array = np.array(values, dtype=dtype)
    # unique by bit pattern: np.unique would merge NaN and -NaN into one
    bits = np.dtype(f"u{array.itemsize}")
    return np.unique(array.view(bits)).view(dtype)


def on_mviupd(threshold: float, dtype, rng, n: int) -> np.ndarray:
    """(n, 4) pixels whose MVIUPD, computed in ``dtype``, lands on or beside ``threshold``.

    For random w, s, uC4, the v that solves MVIUPD = threshold, then v nudged by up to 6
    ulps: each nudge moves MVIUPD by about an ulp, so some land on ``dtype(threshold)``.
    """
    w = rng.uniform(0, 0.2, n)
    s = rng.uniform(0, 0.3, n)
    c4 = rng.choice([0.0, 0.01, -0.01], n)
    t = threshold
    v = (t * (w + s) + w + 0.2 * s + c4) / (1 - t)
    pixels = np.stack([w, v, s, c4], axis=-1).astype(dtype)
    nudged = [pixels]
    for step in range(1, 7):
        for direction in (np.inf, -np.inf):
            p = pixels.copy()
            for _ in range(step):
                p[:, 1] = np.nextafter(p[:, 1], dtype(direction))
            nudged.append(p)
    return np.concatenate(nudged)


def adversarial_block(rules: RuleTable, dtype, k: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    edges = edge_values(rules, dtype)
    n = 20_000
    block = rng.uniform(-0.05, 0.7, (n, 4)).astype(dtype)
    # every component drawn from the edge values in a third of the pixels
    pick = rng.random((n, 4)) < 0.35
    block[pick] = rng.choice(edges, pick.sum())
    # S right at the dark limit: uCw + uCv + uCs summed to the limit or its neighbours
    dark = np.zeros((len(ulps(MVIUPD_DARK_LIMIT, dtype, 3)) * 50, 4), dtype=dtype)
    for i, total in enumerate(np.repeat(ulps(MVIUPD_DARK_LIMIT, dtype, 3), 50)):
        a, b = rng.uniform(0, total, 2)
        dark[i, :3] = np.array([min(a, b), abs(a - b), total - max(a, b)], dtype=dtype)
        dark[i, 3] = rng.choice([0.0, np.nan, 0.05])
    mviupd_thresholds = {
        c.threshold for r in rules.rules for c in r.conditions if c.quantity == "mviupd"
    }
    near = [on_mviupd(t, dtype, rng, 200) for t in sorted(mviupd_thresholds)]
    out = np.concatenate([block, dark, *near])
    return np.ascontiguousarray(out[:, :k])


# --------------------------------------------------------------------------------------
# The bundled rule tables


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda t: t.__name__)
@pytest.mark.parametrize("k", [3, 4])
@pytest.mark.parametrize("table", [TM, MSS], ids=["TM", "MSS"])
def test_bundled_tables_bit_identical_to_numpy(table, k, dtype):
    coefficients = adversarial_block(table, dtype, k)
    got = classify_block(coefficients, table)
    expected = numpy_block(coefficients, table)
    assert_identical(got, expected)
    codes, index, _ = expected
    # the block really reaches the cases it is built for
    assert set(np.unique(codes)) == {0, 1, 2, 3, 4}
    for t in {c.threshold for r in table.rules for c in r.conditions if c.quantity == "mviupd"}:
        assert (index == dtype(t)).sum() > 0
        assert (index == np.nextafter(dtype(t), dtype(0))).sum() > 0
    if k == 4:
        # NaN uC4: the returned index is NaN (as mviupd gives it), the class is not no_data
        nan_c4 = np.isnan(coefficients[:, 3]) & np.isfinite(coefficients[:, :3]).all(axis=-1)
        assert (np.isnan(index[nan_c4]) & (codes[nan_c4] != 0)).any()


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda t: t.__name__)
def test_any_shape_and_memory_layout(dtype):
    rng = np.random.default_rng(1)
    stack = rng.uniform(-0.02, 0.5, (4, 30, 20)).astype(dtype)
    stack[0, 3, 4] = np.nan
    # components first, moved last: a non-contiguous (y, x, k) view, as a band-first stack gives
    coefficients = np.moveaxis(stack, 0, -1)[::2, 1:]
    assert not coefficients.flags.c_contiguous
    assert_identical(classify_block(coefficients, TM), numpy_block(coefficients, TM))
    one = coefficients[0, 0]  # a single pixel: shape (4,) -> () results
    assert_identical(classify_block(one, TM), numpy_block(one, TM))
    empty = np.zeros((0, 7, 3), dtype=dtype)
    assert_identical(classify_block(empty, MSS), numpy_block(empty, MSS))


@pytest.mark.parametrize("dtype", [np.float16, np.int32, np.uint8], ids=str)
def test_other_dtypes_give_what_the_numpy_functions_give(dtype):
    rng = np.random.default_rng(2)
    coefficients = (rng.uniform(0, 3, (50, 4))).astype(dtype)
    assert_identical(classify_block(coefficients, TM), numpy_block(coefficients, TM))


def test_bad_input_is_the_error_classify_array_raises():
    with pytest.raises(RuleError, match=r"coefficients: shape \(5, 2\); expected \(\.\.\., 3\)"):
        classify_block(np.zeros((5, 2), np.float32), TM)
    with pytest.raises(RuleError, match="coefficients: shape \\(\\)"):
        classify_block(np.float32(0.3), TM)
    uses_c4 = RuleTable(
        name="c4-table",
        sensor="TM",
        rules=(Rule("cloud", 1, (Condition("uC4", ">", 0.1),)), Rule("water", 2)),
    )
    with pytest.raises(RuleError, match="rule table 'c4-table' tests uC4, but the coeff"):
        classify_block(np.zeros((5, 3), np.float32), uses_c4)
    with pytest.raises(RuleError, match="rule table 'c4-table' tests uC4, but the coeff"):
        classify_array(np.zeros((5, 3), np.float32), uses_c4)


# --------------------------------------------------------------------------------------
# Random rule tables, random coefficients


@st.composite
def rule_tables(draw, k: int):
    quantities = [q for q in QUANTITIES if k == 4 or q != "uC4"]
    thresholds = st.one_of(
        st.sampled_from([0.0, MVIUPD_DARK_LIMIT, 0.458, 0.161, -0.2, 1.0, -1.0]),
        st.floats(-1.5, 1.5, allow_nan=False, allow_infinity=False),
    )
    conditions = st.builds(
        Condition, st.sampled_from(quantities), st.sampled_from(OPERATORS), thresholds
    )
    n = draw(st.integers(1, 5))
    rules = []
    for i in range(n):
        # only the last rule may be unconditional
        least = 0 if i == n - 1 else 1
        tests = draw(st.lists(conditions, min_size=least, max_size=4))
        rules.append(Rule(f"class_{i + 5}", i + 5, tuple(tests)))
    return RuleTable(name="random", sensor="TM", rules=tuple(rules))


@st.composite
def tables_and_coefficients(draw):
    dtype = draw(st.sampled_from(FLOATS))
    k = draw(st.sampled_from([3, 4]))
    table = draw(rule_tables(k))
    pool = list(edge_values(table, dtype))
    value = st.one_of(
        st.sampled_from(pool),
        st.floats(-1.0, 1.0, width=32 if dtype is np.float32 else 64),
        st.floats(width=32 if dtype is np.float32 else 64),  # anything, NaN and inf included
    )
    n = draw(st.integers(1, 60))
    rows = draw(st.lists(st.lists(value, min_size=k, max_size=k), min_size=n, max_size=n))
    coefficients = np.array(rows, dtype=dtype).reshape(n, k)
    # pixels whose MVIUPD lands on or beside a threshold of an mviupd condition
    targets = [c.threshold for r in table.rules for c in r.conditions if c.quantity == "mviupd"]
    if targets and -1 < targets[0] < 1:
        seed = draw(st.integers(0, 2**32 - 1))
        near = on_mviupd(targets[0], dtype, np.random.default_rng(seed), 2)[:, :k]
        coefficients = np.concatenate([coefficients, near])
    return table, coefficients


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=tables_and_coefficients())
def test_random_tables_and_coefficients_bit_identical_to_numpy(case):
    table, coefficients = case
    with np.errstate(all="ignore"):
        assert_identical(classify_block(coefficients, table), numpy_block(coefficients, table))


# --------------------------------------------------------------------------------------
# Compilation: once, cached on disk, and without a writable cache


_FIRST_CALL = textwrap.dedent(
    """
    import time
    import numpy as np
    from updm_dask.science.classify import load_rules
    from updm_dask.science.classify import fused

    start = time.perf_counter()
    fused.classify_block(np.zeros((2, 4), np.float32), load_rules("TM"))
    seconds = time.perf_counter() - start
    fused.classify_block(np.zeros((2, 3), np.float64), load_rules("MSS"))
    stats = [fused._compiled(np.dtype(t)).stats for t in ("float32", "float64")]
    print(seconds, sum(len(s.cache_hits) for s in stats), sum(len(s.cache_misses) for s in stats))
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
    assert (hits_1, misses_1) == (0, 2)  # the first process compiles both versions
    assert (hits_2, misses_2) == (2, 0)  # the second loads both from the cache
    assert any(p.suffix == ".nbi" for p in tmp_path.rglob("*"))


def watch_kernel_compiles(monkeypatch, *, cache_fails: bool = False) -> list:
    """The ``cache`` option of every compile of the kernel, in order (numba.njit patched)."""
    return watch_compiles(monkeypatch, fused._kernel_source, cache_fails=cache_fails)


def test_without_a_writable_cache_location_the_kernel_still_compiles(monkeypatch):
    calls = watch_kernel_compiles(monkeypatch, cache_fails=True)
    fused._compiled.cache_clear()
    try:
        coefficients = adversarial_block(TM, np.float32, 4)[:500]
        assert_identical(classify_block(coefficients, TM), numpy_block(coefficients, TM))
        assert calls == [True, False]
    finally:
        fused._compiled.cache_clear()  # the next test gets the cached kernel again


def test_threads_starting_together_compile_the_kernel_once(monkeypatch):
    compiled = watch_kernel_compiles(monkeypatch)
    fused._compiled.cache_clear()
    coefficients = adversarial_block(MSS, np.float64, 3)[:300]
    start = threading.Barrier(4)
    results = []

    def work():
        start.wait()
        results.append(classify_block(coefficients, MSS))

    try:
        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert len(results) == 4
        for got in results:
            assert_identical(got, numpy_block(coefficients, MSS))
        assert compiled == [True]  # one compile (or disk-cache load) for the four threads
    finally:
        fused._compiled.cache_clear()


# --------------------------------------------------------------------------------------
# The real scenes through the pipeline: every layer as before


def _numpy_classify_block(coefficients, rules):
    """What process_block computed before the kernel, in its order (numpy functions)."""
    k = coefficients.shape[-1]
    index = mviupd(
        coefficients[..., 0],
        coefficients[..., 1],
        coefficients[..., 2],
        coefficients[..., 3] if k == 4 else None,
    )
    classes = classify_array(coefficients, rules)
    dark = mviupd_undefined(coefficients[..., 0], coefficients[..., 1], coefficients[..., 2])
    return classes, index, dark


@pytest.mark.slow
@pytest.mark.parametrize("supplementary", [False, True], ids=["k3", "k4"])
def test_real_scenes_every_layer_identical_to_the_numpy_pipeline(
    shared_data, monkeypatch, supplementary
):
    from updm_dask.pipeline import Science, process_scene
    from updm_dask.scenes import discover_scenes, open_scene

    found = discover_scenes(shared_data / "landsat")
    scenes = found.scenes + found.duplicates
    assert len(scenes) == 12
    science = Science(supplementary=supplementary)
    compared = 0
    with dask.config.set(scheduler="synchronous"):
        for source in scenes:
            # chunks of 64 px: several blocks per scene, edge blocks of odd shapes
            after = process_scene(open_scene(source, chunks=64), science).compute()
            with monkeypatch.context() as m:
                m.setattr(pipeline, "classify_block", _numpy_classify_block)
                before = process_scene(open_scene(source, chunks=64), science).compute()
            xr.testing.assert_identical(after, before)
            for name in after.data_vars:
                a, b = after[name].values, before[name].values
                assert a.dtype == b.dtype, (source.id, name)
                if a.dtype.kind == "f":
                    assert (a.view(f"u{a.itemsize}") == b.view(f"u{b.itemsize}")).all(), (
                        source.id,
                        name,
                    )
                else:
                    assert np.array_equal(a, b), (source.id, name)
            compared += after["land_cover"].size
            # and the stored layers are the numpy functions of the stored coefficients
            names = ["uCw", "uCv", "uCs"] + (["uC4"] if supplementary else [])
            stored = np.stack([after[n].values for n in names], axis=-1)
            classes, index, _ = _numpy_classify_block(stored, science.rules_for(source.sensor))
            assert np.array_equal(after["land_cover"].values, classes), source.id
            assert (after["mviupd"].values.view(np.uint32) == index.view(np.uint32)).all()
    assert compared > 100_000
