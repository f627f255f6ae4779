"""science.reduce.nanmedian gives numpy.nanmedian's result, value for value."""

from __future__ import annotations

import warnings

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from updm_dask.science.reduce import nanmedian


def numpy_nanmedian(a: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN series
        return np.nanmedian(a, axis=axis)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 23, 46])
def test_equals_numpy_for_series_of_every_length(dtype, n):
    rng = np.random.default_rng(n)
    a = rng.normal(size=(n, 17, 19)).astype(dtype)
    a[rng.random(a.shape) < 0.4] = np.nan
    a[:, :2, :2] = np.nan  # series without any value
    got, want = nanmedian(a, axis=0), numpy_nanmedian(a, axis=0)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


@settings(max_examples=200, deadline=None)
@given(
    a=hnp.arrays(
        st.sampled_from([np.float32, np.float64]),
        hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=7),
        elements={"allow_infinity": True, "allow_nan": True},
    ),
    data=st.data(),
)
def test_equals_numpy_on_any_array_and_axis(a, data):
    axis = data.draw(st.integers(-a.ndim, a.ndim - 1))
    np.testing.assert_array_equal(nanmedian(a, axis=axis), numpy_nanmedian(a, axis=axis))
