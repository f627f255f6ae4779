"""MVIUPD, the UPDM vegetation index: the one place its formula is written.

``MVIUPD = (uCv - uCw - 0.2 * uCs - uC4) / S`` with ``S = uCw + uCv + uCs`` (the note's
footnote 1). The rule tables, the conversions between sensors and the queries call
:func:`mviupd`. The pipeline's one compiled pass per block
(:func:`~updm_dask.science.classify.fused.classify_block`) repeats the formula in the same
precision and order and is tested bit for bit against :func:`mviupd`, so that a stored
``mviupd`` layer and one recomputed from stored coefficients agree bit for bit.

The dark limit
--------------
A ratio over ``S`` is only as good as ``S`` is large compared with the noise of its
numerator. Over dark water ``S`` falls to the noise floor (on Level-2 scenes down to ~1e-5,
because surface reflectance over water is often slightly negative) while the supplementary
coefficient ``uC4``, which soaks up residual atmosphere, does not, and the ratio explodes:
-2460 on the real Momotombo Level-2 crop. MVIUPD is therefore undefined (NaN) where
``S < MVIUPD_DARK_LIMIT`` (:data:`MVIUPD_DARK_LIMIT` = 0.025), and the pipeline marks such
pixels with the ``DARK`` quality bit (:mod:`updm_dask.science.masks`).

Why 0.025:

- Noise (lower bound). One quantisation step of TM and ETM+ is 0.0011-0.0029 in TOA
  reflectance under an overhead sun, of MSS 0.0025-0.0043 (the rescaling gains of Chander
  et al. 2009 over their solar irradiances; more under a lower sun). Level-2 surface
  reflectance over dark targets is uncertain by 0.01 and more: the real Level-2 crops are
  negative in up to 7 % of a band's pixels. Through the sensors' band patterns a per-band
  noise ``sigma`` becomes ``1.2 sigma`` in the MVIUPD numerator for TM, ETM+ and OLI and
  ``3.5 sigma`` for MSS, so MVIUPD's own noise is about ``1.2 sigma / S``: 0.1 for one TM
  quantisation step at ``S = 0.025``, several times more for Level-2 water and for MSS.
  Below that the index cannot be placed against its thresholds (0.458 TM, 0.286 MSS).
- Rules (upper bound). With ``uCw, uCv, uCs >= 0`` (UPDM's condition (9)), ``S < 0.025``
  implies ``uCv < 0.025`` and ``S < 0.059``: the pixel satisfies the water rule of both
  shipped tables (TM: ``uCv <= 0.035 and S <= 0.059``; MSS: ``uCv <= 0.025 and S <= 0.062``)
  and cannot be cloud (``S >= 0.161`` / ``0.130``). So every pixel below the limit is water
  by its S rule and never needs MVIUPD: the limit changes no class of the shipped tables,
  and 0.025 is the largest value for which that holds for both.
- Evidence. On the twelve real scenes of the test data 275 pixels have ``|MVIUPD| > 2``
  with the raw ratio, all water, the largest of them at ``S = 0.0242``; with the limit none
  is left. A limit at the noise floor alone (0.005) would leave 200 of them.

docs/science.md holds the per-scene counts.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import is_dask_collection

__all__ = ["MVIUPD_DARK_LIMIT", "MVIUPD_SOIL_WEIGHT", "mviupd", "mviupd_undefined"]

#: Weight of the soil coefficient in MVIUPD (the note's footnote 1).
MVIUPD_SOIL_WEIGHT = 0.2

#: MVIUPD is undefined (NaN) where ``S = uCw + uCv + uCs`` is below this (see the module
#: documentation for the value's justification).
MVIUPD_DARK_LIMIT = 0.025


def _mviupd_kernel(uCw, uCv, uCs, uC4=None, *, dark_limit: float = MVIUPD_DARK_LIMIT):
    # errstate here, inside the kernel, is what keeps warnings out of dask computations too:
    # the kernel is what runs on the workers.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        numerator = uCv - uCw - MVIUPD_SOIL_WEIGHT * uCs
        if uC4 is not None:
            numerator = numerator - uC4
        denominator = uCw + uCv + uCs
        ratio = numerator / denominator
        # The limit is compared in the coefficients' own precision, like rule thresholds.
        limit = np.asarray(dark_limit, dtype=np.result_type(denominator, np.float16))
        return np.where((denominator == 0) | (denominator < limit), np.nan, ratio)


def _dtype_of(value: Any) -> np.dtype:
    dtype = getattr(value, "dtype", None)
    return np.dtype(dtype) if dtype is not None else np.asarray(value).dtype


def _check_limit(dark_limit: Any) -> float:
    if isinstance(dark_limit, bool) or not isinstance(dark_limit, int | float | np.number):
        raise ValueError(f"dark_limit: {dark_limit!r}; expected a finite number >= 0")
    value = float(dark_limit)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"dark_limit: {dark_limit!r}; expected a finite number >= 0")
    return value


def mviupd(uCw, uCv, uCs, uC4=None, *, dark_limit: float = MVIUPD_DARK_LIMIT):
    """The UPDM vegetation index MVIUPD.

    ``MVIUPD = (uCv - uCw - 0.2 * uCs - uC4) / (uCw + uCv + uCs)``, with ``uC4 = 0`` when
    no supplementary pattern is used (the note's footnote 1).

    Parameters
    ----------
    uCw, uCv, uCs : array_like, dask.array.Array or xarray.DataArray
        Water, vegetation and soil coefficients; broadcast against each other.
    uC4 : same, optional
        Supplementary-pattern coefficient; omitted means 0.
    dark_limit : float, optional
        MVIUPD is undefined where ``S = uCw + uCv + uCs`` is below this; default
        :data:`MVIUPD_DARK_LIMIT` (0.025, see the module documentation). ``0`` gives the
        raw ratio, NaN only where ``S == 0``.

    Returns
    -------
    numpy.ndarray, dask.array.Array or xarray.DataArray
        MVIUPD, of the floating type of the inputs. NaN where any input is NaN, where the
        denominator is 0 or below ``dark_limit`` (no division warnings are emitted, also
        not at dask compute time). Lazy for dask-backed input; an xarray result is named
        ``"mviupd"``.

    Raises
    ------
    ValueError
        ``dark_limit`` is not a finite number >= 0.
    """
    limit = _check_limit(dark_limit)
    args = [a for a in (uCw, uCv, uCs, uC4) if a is not None]
    labelled = any(isinstance(a, xr.DataArray | xr.Variable) for a in args)
    if not labelled and not any(is_dask_collection(a) for a in args):
        # The numpy kernel itself: what the pipeline and the rule tables call per chunk.
        return _mviupd_kernel(*[np.asarray(a) for a in args], dark_limit=limit)
    probe = [np.ones(1, dtype=_dtype_of(a)) for a in args]
    dtype = np.result_type(_mviupd_kernel(*probe).dtype, np.float16)
    if labelled:
        result = xr.apply_ufunc(
            _mviupd_kernel,
            *args,
            kwargs={"dark_limit": limit},
            dask="parallelized",
            output_dtypes=[dtype],
            keep_attrs=False,
        )
        if isinstance(result, xr.DataArray):
            result = result.rename("mviupd")
            result.attrs = {
                "long_name": "UPDM vegetation index MVIUPD",
                "units": "1",
                "dark_limit": limit,
            }
        return result
    arrays = da.broadcast_arrays(*[da.asarray(a) for a in args])
    return da.map_blocks(
        _mviupd_kernel, *arrays, dtype=dtype, dark_limit=limit, token="updm-mviupd"
    )


def mviupd_undefined(uCw, uCv, uCs, *, dark_limit: float = MVIUPD_DARK_LIMIT) -> np.ndarray:
    """Where MVIUPD is undefined because the pixel is too dark (numpy kernel).

    Parameters
    ----------
    uCw, uCv, uCs : array_like
        Water, vegetation and soil coefficients; broadcast against each other.
    dark_limit : float, optional
        As in :func:`mviupd`.

    Returns
    -------
    numpy.ndarray of bool
        True where ``S = uCw + uCv + uCs`` is finite and below ``dark_limit`` (or 0): the
        pixels the pipeline flags ``DARK``. Pixels with a NaN coefficient (fill) are False.
    """
    limit = _check_limit(dark_limit)
    with np.errstate(invalid="ignore", over="ignore"):
        total = np.asarray(uCw) + np.asarray(uCv) + np.asarray(uCs)
        bound = np.asarray(limit, dtype=np.result_type(total, np.float16))
        return np.isfinite(total) & ((total == 0) | (total < bound))
