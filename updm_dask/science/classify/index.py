"""MVIUPD, the UPDM vegetation index: the one place its formula is written.

``MVIUPD = (uCv - uCw - 0.2 * uCs - uC4) / (uCw + uCv + uCs)`` (the note's footnote 1).
The pipeline, the rule tables, the conversions between sensors and the queries all call
:func:`mviupd`, so that a stored ``mviupd`` layer and one recomputed from stored
coefficients agree bit for bit.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import is_dask_collection

__all__ = ["MVIUPD_SOIL_WEIGHT", "mviupd"]

#: Weight of the soil coefficient in MVIUPD (the note's footnote 1).
MVIUPD_SOIL_WEIGHT = 0.2


def _mviupd_kernel(uCw, uCv, uCs, uC4=None):
    # errstate here, inside the kernel, is what keeps warnings out of dask computations too:
    # the kernel is what runs on the workers.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        numerator = uCv - uCw - MVIUPD_SOIL_WEIGHT * uCs
        if uC4 is not None:
            numerator = numerator - uC4
        denominator = uCw + uCv + uCs
        ratio = numerator / denominator
        return np.where(denominator == 0, np.nan, ratio)


def _dtype_of(value: Any) -> np.dtype:
    dtype = getattr(value, "dtype", None)
    return np.dtype(dtype) if dtype is not None else np.asarray(value).dtype


def mviupd(uCw, uCv, uCs, uC4=None):
    """The UPDM vegetation index MVIUPD.

    ``MVIUPD = (uCv - uCw - 0.2 * uCs - uC4) / (uCw + uCv + uCs)``, with ``uC4 = 0`` when
    no supplementary pattern is used (the note's footnote 1).

    Parameters
    ----------
    uCw, uCv, uCs : array_like, dask.array.Array or xarray.DataArray
        Water, vegetation and soil coefficients; broadcast against each other.
    uC4 : same, optional
        Supplementary-pattern coefficient; omitted means 0.

    Returns
    -------
    numpy.ndarray, dask.array.Array or xarray.DataArray
        MVIUPD, of the floating type of the inputs. NaN where any input is NaN or where the
        denominator is 0 (no division warnings are emitted, also not at dask compute
        time). Lazy for dask-backed input; an xarray result is named ``"mviupd"``.
    """
    args = [a for a in (uCw, uCv, uCs, uC4) if a is not None]
    labelled = any(isinstance(a, xr.DataArray | xr.Variable) for a in args)
    if not labelled and not any(is_dask_collection(a) for a in args):
        # The numpy kernel itself: what the pipeline and the rule tables call per chunk.
        return _mviupd_kernel(*[np.asarray(a) for a in args])
    probe = [np.ones(1, dtype=_dtype_of(a)) for a in args]
    dtype = np.result_type(_mviupd_kernel(*probe).dtype, np.float16)
    if labelled:
        result = xr.apply_ufunc(
            _mviupd_kernel,
            *args,
            dask="parallelized",
            output_dtypes=[dtype],
            keep_attrs=False,
        )
        if isinstance(result, xr.DataArray):
            result = result.rename("mviupd")
            result.attrs = {"long_name": "UPDM vegetation index MVIUPD", "units": "1"}
        return result
    arrays = da.broadcast_arrays(*[da.asarray(a) for a in args])
    return da.map_blocks(_mviupd_kernel, *arrays, dtype=dtype, token="updm-mviupd")
