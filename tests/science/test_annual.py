"""science.annual.summarise_year: the one-pass per-year kernel, with any classes and bits.

The cube's own classes and bits are tested against the numpy summary in
tests/cube/test_yearly_kernel.py; here the kernel's arguments: other class sets and
tie-break orders, other bits, and bad arguments; and that it is compiled once, then loaded.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from updm_dask.science.annual import summarise_year


def numpy_summary(lc, q, mv, classes, not_clear, fill_bit, count_fill, class_cap):
    """The contract of summarise_year in numpy (median: numpy.nanmedian's, values < 1e38)."""
    lc = np.asarray(lc)
    q = np.asarray(q).astype(np.int64)
    clear = np.isin(lc, classes) & ((q & not_clear) == 0)
    best_class = np.zeros(lc.shape[1:], np.float32)
    best_count = np.zeros(lc.shape[1:], np.int64)
    for code in classes:
        count = (clear & (lc == code)).sum(axis=0)
        better = count > best_count
        best_class[better] = code
        best_count[better] = count[better]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(np.where(clear, mv, np.float32(np.nan)), axis=0)
    seen = ((q & fill_bit) == 0).any(axis=0)
    count = np.where(seen, np.minimum(clear.sum(axis=0), count_fill - 1), count_fill)
    return np.stack([best_class, median, count, np.minimum(best_count, class_cap)]).astype(
        np.float32
    )


@pytest.mark.parametrize(
    ("classes", "lc_dtype"),
    [
        ((7,), np.uint8),  # one clear class
        ((9, 1, 5, 200, 30), np.uint8),  # five, in an order that is not sorted
        ((300, 2, 1000), np.int32),  # codes beyond a byte: read from a wider dtype
        ((255, 0), np.uint8),  # the byte's ends
    ],
)
def test_any_classes_in_their_tie_break_order(classes, lc_dtype):
    rng = np.random.default_rng(len(classes))
    shape = (30, 40, 30)
    pool = np.array([*classes, 3, 8, 1001], dtype=np.int64)
    pool = pool[pool <= np.iinfo(lc_dtype).max]
    lc = rng.choice(pool, size=shape).astype(lc_dtype)
    q = np.where(rng.random(shape) < 0.7, 0, rng.integers(0, 16, shape)).astype(np.uint8)
    mv = rng.choice(np.array([0.0, 1.0, 2.5, np.nan], np.float32), size=shape)
    args = dict(classes=classes, not_clear=0b0110, fill_bit=0b1000, count_fill=6, class_cap=4)
    got = summarise_year(lc, q, mv, **args)
    want = numpy_summary(lc, q, mv, **args)
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))
    assert (got[2] <= 6).all() and (got[3] <= 4).all()  # the caps bind
    assert (got[2] == 5).any() and (got[3] == 4).any() and (got[3] < 4).any()


def test_bad_arguments_are_named():
    a = np.zeros((2, 3), np.uint8)
    f = np.zeros((2, 3), np.float32)
    args = dict(classes=(1, 2), not_clear=6, fill_bit=1, count_fill=9, class_cap=9)
    with pytest.raises(ValueError, match=r"land_cover \(2, 3\), quality \(2, 2\)"):
        summarise_year(a, a[:, :2], f, **args)
    with pytest.raises(ValueError, match="classes must be 1 to 255 distinct codes"):
        summarise_year(a, a, f, **{**args, "classes": (1, 1)})
    with pytest.raises(ValueError, match="classes must be 1 to 255 distinct codes"):
        summarise_year(a, a, f, **{**args, "classes": ()})
    with pytest.raises(ValueError, match="not_clear and fill_bit must be bits below 256"):
        summarise_year(a, a, f, **{**args, "not_clear": 256})
    with pytest.raises(ValueError, match="mviupd must be float32 \\(values\\), got float64"):
        summarise_year(a, a, f.astype(np.float64), **args)
    with pytest.raises(ValueError, match="mviupd must be int16 \\(packed codes\\), got float32"):
        summarise_year(a, a, f, packed=(-32768, 1e-3, 0.0), **args)


_FIRST_CALL = textwrap.dedent(
    """
    import numpy as np
    from updm_dask.science import annual

    a = np.zeros((2, 3), np.uint8)
    args = dict(classes=(3, 4, 2), not_clear=31, fill_bit=1, count_fill=9, class_cap=9)
    annual.summarise_year(a, a, np.zeros((2, 3), np.float32), **args)
    annual.summarise_year(a, a, np.zeros((2, 3), np.int16), packed=(-1, 1.0, 0.0), **args)
    stats = [annual._compiled(np.dtype(t)).stats for t in ("float32", "int16")]
    print(sum(len(s.cache_hits) for s in stats), sum(len(s.cache_misses) for s in stats))
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
    (hits_1, misses_1), (hits_2, misses_2) = (map(int, r.stdout.split()[-2:]) for r in runs)
    assert (hits_1, misses_1) == (0, 2)  # the first process compiles both versions
    assert (hits_2, misses_2) == (2, 0)  # the second loads both from the cache
    assert any(p.suffix == ".nbi" for p in tmp_path.rglob("*"))
