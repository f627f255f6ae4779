"""Decomposition, eqs. (8)-(11): exact non-negative least squares against the band patterns.

Every pixel's spectrum ``A`` (n bands) is written as ``A ~= P c`` where ``P`` (n bands x k
patterns) holds the sensor's band patterns, columns in the order water, vegetation, soil and
optionally the supplementary pattern. The note's condition (9) asks ``uCw, uCv, uCs >= 0``; the
supplementary coefficient ``uC4`` is free in sign unless asked otherwise (see
:func:`nnls_decompose`).

:func:`nnls_decompose` and :func:`normalise_coefficients` are numpy-in, numpy-out kernels
(spectral axis last by default, any axis allowed). The pipeline calls them inside its fused
task per chunk; :mod:`~updm_dask.science.decompose.solver` describes how the exact optimum
is found, and :mod:`~updm_dask.science.decompose.compiled` holds the compiled code.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import DecompositionError
from .solver import N_STANDARD, decompose_along

__all__ = ["COEFFICIENT_NAMES", "nnls_decompose", "normalise_coefficients"]

#: Output variable names, in the column order of the pattern matrix.
COEFFICIENT_NAMES: tuple[str, ...] = ("uCw", "uCv", "uCs", "uC4")

# Condition number above which patterns count as numerically rank-deficient: beyond it the
# float32 rounding of the spectra alone (relative 6e-8) could move a coefficient by more than
# 6 % of the spectrum's scale, so the decomposition would carry no information.
_MAX_CONDITION = 1e6


def _as_patterns(patterns: Any) -> np.ndarray:
    """Validate the pattern matrix (n_bands, k) and return it as C-contiguous float64."""
    dims = getattr(patterns, "dims", None)
    if dims is not None and set(dims) == {"band", "pattern"}:
        patterns = patterns.transpose("band", "pattern")  # labelled: put bands first
    elif dims is not None and len(dims) == 2 and tuple(dims) != ("band", "pattern"):
        raise DecompositionError(
            f"labelled patterns must have dims (band, pattern), got {tuple(dims)}"
        )
    raw = np.asarray(patterns)
    if raw.dtype.kind not in "fiu":
        raise DecompositionError(
            f"patterns must be a real numeric (n_bands, k) matrix, got dtype {raw.dtype}"
        )
    p = np.ascontiguousarray(raw, dtype=np.float64)
    if p.ndim != 2:
        raise DecompositionError(
            f"patterns must be 2-D (n_bands, k), got {p.ndim}-D with shape {p.shape}"
        )
    n, k = p.shape
    if k not in (3, 4):
        raise DecompositionError(
            f"patterns must have 3 (water, vegetation, soil) or 4 (+ supplementary) columns, "
            f"got {k} (shape {p.shape})"
        )
    if k > n:
        raise DecompositionError(
            f"patterns have {k} columns but only {n} bands: the decomposition needs at least "
            f"as many bands as patterns"
        )
    if not np.isfinite(p).all():
        raise DecompositionError("patterns contain NaN or infinite values")
    singular = np.linalg.svd(p, compute_uv=False)
    if not singular[-1] > singular[0] / _MAX_CONDITION:
        raise DecompositionError(
            f"patterns are rank-deficient (singular values {singular.tolist()}, condition "
            f"number above {_MAX_CONDITION:g}): the columns must be linearly independent"
        )
    return p


def _check_spectra_dtype(dtype: np.dtype) -> None:
    if dtype.kind != "f":
        raise DecompositionError(
            f"spectra must be a floating-point array (reflectance), got dtype {dtype}; "
            f"convert digital numbers to reflectance first"
        )


def _check_band_count(n_spectra: int, p: np.ndarray, where: str) -> None:
    if n_spectra != p.shape[0]:
        raise DecompositionError(
            f"spectra have {n_spectra} bands along {where} but patterns have "
            f"{p.shape[0]} rows (bands)"
        )


def nnls_decompose(
    spectra: np.ndarray,
    patterns: Any,
    *,
    constrain_supplementary: bool = False,
    band_axis: int = -1,
) -> tuple[np.ndarray, np.ndarray]:
    """Decompose spectra into pattern coefficients by exact non-negative least squares.

    Solves, for every pixel, ``min_c ||A - P c||_2`` subject to ``c_j >= 0`` for the water,
    vegetation and soil columns (the note's condition (9)), and for the supplementary column
    too when `constrain_supplementary` is true. The answer is the exact optimum (the same as
    ``scipy.optimize.nnls`` when every column is constrained), not an approximation.

    Parameters
    ----------
    spectra : numpy.ndarray, shape (..., n_bands)
        Floating-point spectra (float32 or float64), spectral axis last unless `band_axis`
        says otherwise. Any other shape, including zero pixels. Pixels with NaN or infinity
        in any band give NaN outputs.
    patterns : array_like, shape (n_bands, k)
        Band patterns, columns water, vegetation, soil[, supplementary]; ``k`` is 3 or 4. A
        numpy array or an :class:`xarray.DataArray` with dims (band, pattern) in that order
        (taken by position: rows in the order of the spectra's bands).
    constrain_supplementary : bool, default False
        Also constrain the supplementary coefficient ``uC4`` (column 3) to be >= 0. The default
        leaves it free in sign: the supplementary pattern is the normalised residual of a fit
        (eqs. (15)-(16)), a shape that can enter a pixel with either sign, and condition (9)
        only constrains ``uCw``, ``uCv`` and ``uCs``. Ignored when ``k == 3``.
    band_axis : int, default -1
        The spectral axis. Rasters stored (band, y, x) are best passed as they are with
        ``band_axis=0``: the kernel reads them without a transposing copy.

    Returns
    -------
    coefficients : numpy.ndarray, shape (..., k), float32
        ``uCw, uCv, uCs[, uC4]``, the k components where the bands were (last by default).
    residual : numpy.ndarray, shape (...), float32
        Root-mean-square over bands of ``A - P c`` at the optimum; the band axis removed.

    Raises
    ------
    DecompositionError
        Non-floating spectra, a band count that differs from the pattern rows, patterns that
        are not a finite 2-D (n_bands, 3|4) matrix of full column rank, or ``k > n_bands``.

    Notes
    -----
    Arithmetic is float64 internally whatever the input precision.
    :mod:`~updm_dask.science.decompose.solver` describes the method: one fixed matrix
    product per pixel, closed-form KKT-certified solutions for pixels breaking at most one
    bound, and a search over the active sets for the few others. The compiled kernel is
    built on the first call for each input dtype (some seconds, then cached on disk). Large
    inputs are solved on all available CPUs when called from the main thread, on one thread
    otherwise (as inside dask's workers).
    """
    a = np.asarray(spectra)
    _check_spectra_dtype(a.dtype)
    if a.ndim < 1:
        raise DecompositionError("spectra must have at least one axis (the spectral axis)")
    if not -a.ndim <= band_axis < a.ndim:
        raise DecompositionError(
            f"band_axis={band_axis} is out of range for spectra with {a.ndim} dimensions"
        )
    axis = band_axis % a.ndim
    p = _as_patterns(patterns)
    _check_band_count(a.shape[axis], p, "the last axis" if axis == a.ndim - 1 else f"axis {axis}")
    return decompose_along(a, p, axis, constrain_supplementary)


def normalise_coefficients(coefficients: np.ndarray) -> np.ndarray:
    """Illumination-normalised coefficients: each divided by ``uCw + uCv + uCs``.

    Dividing by the sum of the standard coefficients removes brightness differences caused by
    shading (UPDM-method section 6). The supplementary ``uC4`` column, when present, is divided
    by the same sum.

    Parameters
    ----------
    coefficients : numpy.ndarray, shape (..., k)
        Coefficients from :func:`nnls_decompose`, component axis last, ``k`` is 3 or 4.

    Returns
    -------
    numpy.ndarray, shape (..., k)
        Normalised coefficients in the input's floating dtype (float32 for integer input);
        NaN where the sum is 0 or any input coefficient is NaN.

    Raises
    ------
    DecompositionError
        If the last axis does not have 3 or 4 entries or the dtype is not real numeric.
    """
    c = np.asarray(coefficients)
    if c.dtype.kind not in "fiu":
        raise DecompositionError(f"coefficients must be real numbers, got dtype {c.dtype}")
    if c.ndim < 1 or c.shape[-1] not in (3, 4):
        raise DecompositionError(
            f"coefficients must have 3 or 4 entries along the last axis, got shape {c.shape}"
        )
    out_dtype = c.dtype if c.dtype.kind == "f" else np.dtype(np.float32)
    standard = c[..., :N_STANDARD].astype(np.float64)
    total = standard.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = c / np.where(total == 0, np.nan, total)
    return out.astype(out_dtype, copy=False)
