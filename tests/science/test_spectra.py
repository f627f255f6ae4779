"""The one-pass calibration kernel gives what the numpy sequence gives, bit for bit.

Every expected value here comes from the public numpy functions ``calibrate_block`` and
``fill_mask``, in the order the pipeline ran them before the kernel (:func:`numpy_spectra`),
never from the kernel under test. Inputs stress where a difference in precision or
operation order would show: DN 0, the declared nodata, the QUANTIZE_CAL_MAX and one either
side, the extremes of every dtype, NaN, infinities, signed zeros, subnormals, float64 DN
that overflow float32, fill values that round differently in float32 and float64.
"""

from __future__ import annotations

import math
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

from updm_dask.errors import CalibrationError
from updm_dask.science import spectra
from updm_dask.science.calibration import SceneCalibration, calibrate_block
from updm_dask.science.masks import MaskParams, fill_mask
from updm_dask.science.spectra import COMPILED_DTYPES, calibrated_spectra

# The dtypes the pipeline receives (Level-1 uint8/uint16, ESPA and re-written int16, float
# stacks), the others the kernel is compiled for, and those it leaves to numpy.
ALL_DTYPES = [*(d.name for d in COMPILED_DTYPES), "float16", "int64", ">u2", ">f4"]


def numpy_spectra(dn, calibration, mask):
    """What process_block computed before the kernel (numpy functions, in its order)."""
    reflectance = calibrate_block(dn, calibration, band_axis=0)
    fill = fill_mask(dn, None, None, mask)
    if fill.any():
        reflectance[:, fill] = np.nan
    return np.moveaxis(reflectance, 0, -1)


def assert_identical(got, expected) -> None:
    """Same dtype and shape, the same float32 bits everywhere (NaN payloads too)."""
    assert got.dtype == expected.dtype == np.float32
    assert got.shape == expected.shape
    assert got.flags.c_contiguous
    differ = np.flatnonzero(got.view(np.uint32) != expected.view(np.uint32))
    assert differ.size == 0, (differ[:5], got.ravel()[differ[:5]], expected.ravel()[differ[:5]])


def calibration(n, *, gain=None, offset=None, rayleigh=None, qcal_max=None, nodata=None):
    rng = np.random.default_rng(n)
    return SceneCalibration(
        bands=tuple(str(i + 1) for i in range(n)),
        gain=tuple(gain if gain is not None else rng.uniform(1e-5, 4e-3, n)),
        offset=tuple(offset if offset is not None else rng.uniform(-0.2, 0.02, n)),
        rayleigh=tuple(rayleigh if rayleigh is not None else rng.uniform(0.0, 0.12, n)),
        qcal_max=tuple(qcal_max if qcal_max is not None else (math.inf,) * n),
        nodata=nodata,
        sources=("test",) * n,
    )


def mask(n, fill_values=None):
    return MaskParams(
        band_labels=tuple(str(i + 1) for i in range(n)),
        level="L1",
        fill_values=tuple(fill_values if fill_values is not None else ((0.0,),) * n),
        saturation_dn=(None,) * n,
        qa_kind=None,
        radsat_band_bits=0,
        radsat_fill_bits=0,
        slc_off=False,
    )


def edge_values(dtype: np.dtype, qmax: float, nodata: float) -> np.ndarray:
    """DN on and beside every rule: 0, nodata, qcal max, the dtype's ends, non-finite."""
    values = [0, 1, 2, qmax - 1, qmax, qmax + 1, nodata, nodata - 1, nodata + 1]
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        values += [info.min, info.max, info.max - 1, info.min + 1]
        kept = [v for v in values if info.min <= v <= info.max]
        return np.array(kept, dtype=dtype)
    info = np.finfo(dtype)
    with np.errstate(over="ignore"):
        above = np.nextafter(dtype.type(qmax), dtype.type(np.inf))
        below = np.nextafter(dtype.type(qmax), dtype.type(-np.inf))
    values += [
        -0.0,
        np.nan,
        -np.nan,
        np.inf,
        -np.inf,
        0.1,
        -0.1,
        info.max,
        -info.max,
        info.tiny,
        info.smallest_subnormal,
        above,
        below,
        1e300 if dtype.itemsize == 8 else 1e30,  # a float64 DN beyond float32's range
        3.4028235e38,
        3.4028236e38,
    ]
    with np.errstate(over="ignore"):
        return np.array(values, dtype=np.float64).astype(dtype)


def block_of(values: np.ndarray, n_bands: int, shape=(37, 53), seed=0) -> np.ndarray:
    """A (band, y, x) block: random DN with every edge value placed in every band."""
    rng = np.random.default_rng(seed)
    dtype = values.dtype
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        low, high = max(info.min, -5000), min(info.max, 70000)
        block = rng.integers(low, high, (n_bands, *shape), endpoint=True).astype(dtype)
    else:
        with np.errstate(over="ignore"):  # float16 tops out at 65504: inf DN, as wanted
            block = rng.uniform(-50, 70000, (n_bands, *shape)).astype(dtype)
        block[:, ::5, ::3] = rng.integers(0, 300, block[:, ::5, ::3].shape)
    flat = block.reshape(n_bands, -1)
    for b in range(n_bands):
        # each edge value alone in one band of a pixel, then every pair of bands
        where = rng.choice(flat.shape[1], size=2 * values.size, replace=False)
        flat[b, where[: values.size]] = values
        flat[b, where[values.size :]] = rng.permutation(values)
    return block


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize(
    "qmax, nodata, fills",
    [
        (math.inf, None, (0.0,)),  # as process_block calibrates: no saturation, no nodata
        (255.0, None, (0.0,)),
        (65535.0, -9999.0, (0.0, -9999.0)),
        (254.0, 17.0, (0.0, 17.0, 300.0)),
        (math.inf, math.nan, (0.0, math.nan)),
        # 0.1 rounds to another float32 than float64: numpy compares a float32 DN with a
        # Python float in float32, with a numpy float64 in float64
        (math.inf, 0.1, (0.0, 0.1)),
        (math.inf, np.float64(0.1), (0.0, np.float64(0.1))),
        (1e300, 1e300, (0.0, 1e300)),  # rounds to inf in float32
    ],
    ids=["pipeline", "qmax255", "nodata-9999", "fill17", "nan", "py0.1", "np0.1", "1e300"],
)
def test_every_dtype_and_rule_bit_identical_to_numpy(dtype, qmax, nodata, fills):
    dtype = np.dtype(dtype)
    n = 6
    fills_of_bands = [fills] * n
    fills_of_bands[2] = (0.0,)  # bands may differ in their fill values
    cal = calibration(n, qcal_max=[qmax] * (n - 1) + [250.0], nodata=nodata)
    params = mask(n, fills_of_bands)
    edges = edge_values(dtype, 250.0 if math.isinf(qmax) else min(qmax, 1e6), 17.0)
    dn = block_of(edges, n)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = numpy_spectra(dn, cal, params)
        got = calibrated_spectra(dn, cal, params)  # float16 and int64 run the numpy sequence
    assert_identical(got, expected)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32"])
def test_any_memory_layout(dtype):
    n = 6
    cal, params = calibration(n, qcal_max=[255.0] * n), mask(n, [(0.0, 7.0)] * n)
    base = block_of(edge_values(np.dtype(dtype), 255.0, 7.0), n, shape=(64, 80))
    views = [
        base[:, 3:40, 5:71],  # a window of a larger block
        base[:, ::2, ::3],  # strided
        np.ascontiguousarray(base.transpose(0, 2, 1)).transpose(0, 2, 1),  # Fortran-like
        np.asfortranarray(base),
        base[::-1, ::-1],  # negative strides (band order reversed)
    ]
    for dn in views:
        assert not dn.flags.c_contiguous
        with np.errstate(over="ignore", invalid="ignore"):
            expected = numpy_spectra(dn, cal, params)
        assert_identical(calibrated_spectra(dn, cal, params), expected)


@pytest.mark.parametrize("shape", [(6, 0, 5), (6, 4, 0), (6, 1, 1), (4, 3, 2), (1, 7, 9)])
def test_empty_and_small_blocks(shape):
    n = shape[0]
    dn = np.arange(math.prod(shape), dtype=np.uint16).reshape(shape)
    cal, params = calibration(n), mask(n)
    got = calibrated_spectra(dn, cal, params)
    assert got.shape == (shape[1], shape[2], n)
    assert_identical(got, numpy_spectra(dn, cal, params))


def test_a_pixel_fill_in_one_band_is_nan_in_every_band():
    n = 6
    dn = np.full((n, 2, 3), 100, dtype=np.uint16)
    dn[4, 0, 1] = 0  # Landsat fill in band 5 only
    dn[1, 1, 2] = 65535  # a declared nodata that is fill in band 2 only
    params = mask(n, [(0.0,), (0.0, 65535.0)] + [(0.0,)] * (n - 2))
    got = calibrated_spectra(dn, calibration(n), params)
    assert np.isnan(got[0, 1]).all() and np.isnan(got[1, 2]).all()
    assert np.isfinite(got[0, 0]).all() and np.isfinite(got[1, 0]).all()
    assert_identical(got, numpy_spectra(dn, calibration(n), params))


def test_bad_input_is_a_calibration_error_naming_the_argument():
    cal, params = calibration(6), mask(6)
    with pytest.raises(CalibrationError, match=r"dn: shape \(5, 4, 4\); expected \(band, y, x\) "):
        calibrated_spectra(np.ones((5, 4, 4), np.uint16), cal, params)
    with pytest.raises(CalibrationError, match=r"dn: shape \(6, 16\)"):
        calibrated_spectra(np.ones((6, 16), np.uint16), cal, params)
    with pytest.raises(CalibrationError, match=r"mask: fill values for 4 bands; expected .*\(6\)"):
        calibrated_spectra(np.ones((6, 4, 4), np.uint16), cal, mask(4))


# --------------------------------------------------------------------------------------
# Random blocks, constants and rules


@st.composite
def blocks_and_rules(draw):
    dtype = np.dtype(draw(st.sampled_from(ALL_DTYPES)))
    n = draw(st.integers(1, 7))
    ny, nx = draw(st.integers(0, 6)), draw(st.integers(0, 9))
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = max(int(info.min), -(2**40)), min(int(info.max), 2**40)
        element = st.one_of(st.integers(lo, hi), st.sampled_from([0, 1, 255, 254, 256]))
        element = element.filter(lambda v: lo <= v <= hi)
    else:
        element = st.one_of(
            st.floats(allow_nan=True, allow_infinity=True, width=dtype.itemsize * 8),
            st.sampled_from([0.0, -0.0, 1.0, 255.0, 65535.0, 0.1]),
        )
    values = draw(st.lists(element, min_size=n * ny * nx, max_size=n * ny * nx))
    dn = np.array(values, dtype=dtype).reshape(n, ny, nx)
    layout = draw(st.sampled_from(["C", "F", "reversed"]))
    if layout == "F":
        dn = np.asfortranarray(dn)
    elif layout == "reversed":
        dn = np.ascontiguousarray(dn[::-1, ::-1, ::-1])[::-1, ::-1, ::-1]
    rule = st.sampled_from([0.0, 1.0, 255.0, 254.0, 65535.0, -9999.0, 0.1, math.nan, 1e300])
    constant = st.floats(-1e3, 1e3, allow_nan=False, width=32)
    qmax = st.one_of(st.just(math.inf), rule)
    nodata = draw(st.one_of(st.none(), rule))
    fills = draw(st.lists(st.lists(rule, max_size=3), min_size=n, max_size=n))
    cal = calibration(
        n,
        gain=draw(st.lists(st.floats(2.0**-20, 10.0, width=32), min_size=n, max_size=n)),
        offset=draw(st.lists(constant, min_size=n, max_size=n)),
        rayleigh=draw(st.lists(constant, min_size=n, max_size=n)),
        qcal_max=draw(st.lists(qmax, min_size=n, max_size=n)),
        nodata=nodata,
    )
    return dn, cal, mask(n, [tuple(f) for f in fills])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=blocks_and_rules())
def test_random_blocks_and_rules_bit_identical_to_numpy(case):
    dn, cal, params = case
    with np.errstate(over="ignore", invalid="ignore"):
        expected = numpy_spectra(dn, cal, params)
        got = calibrated_spectra(dn, cal, params)
    assert_identical(got, expected)


# --------------------------------------------------------------------------------------
# Compilation: once, cached on disk, and without a writable cache


_FIRST_CALL = textwrap.dedent(
    """
    import time
    import numpy as np
    from updm_dask.science import spectra
    from updm_dask.science.masks import MaskParams
    from updm_dask.science.calibration import SceneCalibration

    n = 6
    cal = SceneCalibration(tuple("123457"), (1e-3,) * n, (0.0,) * n, (0.0,) * n,
                           (float("inf"),) * n, None, ("t",) * n)
    mask = MaskParams(tuple("123457"), "L1", ((0.0,),) * n, (None,) * n, None, 0, 0, False)
    start = time.perf_counter()
    spectra.calibrated_spectra(np.ones((n, 2, 2), np.uint16), cal, mask)
    seconds = time.perf_counter() - start
    spectra.calibrated_spectra(np.ones((n, 2, 2), np.uint8), cal, mask)
    stats = [spectra._compiled(np.dtype(t)).stats for t in ("uint16", "uint8")]
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
    return watch_compiles(monkeypatch, spectra._kernel_source, cache_fails=cache_fails)


def test_without_a_writable_cache_location_the_kernel_still_compiles(monkeypatch):
    calls = watch_kernel_compiles(monkeypatch, cache_fails=True)
    spectra._compiled.cache_clear()
    try:
        cal, params = calibration(6, qcal_max=[255.0] * 6), mask(6)
        dn = block_of(edge_values(np.dtype("uint8"), 255.0, 17.0), 6)
        assert_identical(calibrated_spectra(dn, cal, params), numpy_spectra(dn, cal, params))
        assert calls == [True, False]
    finally:
        spectra._compiled.cache_clear()  # the next test gets the cached kernel again


def test_threads_starting_together_compile_the_kernel_once(monkeypatch):
    compiled = watch_kernel_compiles(monkeypatch)
    spectra._compiled.cache_clear()
    cal, params = calibration(6), mask(6, [(0.0, 65535.0)] * 6)
    dn = block_of(edge_values(np.dtype("uint16"), 65535.0, 65535.0), 6)
    start = threading.Barrier(4)
    results = []

    def work():
        start.wait()
        results.append(calibrated_spectra(dn, cal, params))

    try:
        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert len(results) == 4
        for got in results:
            assert_identical(got, numpy_spectra(dn, cal, params))
        assert compiled == [True]  # one compile (or disk-cache load) for the four threads
    finally:
        spectra._compiled.cache_clear()
