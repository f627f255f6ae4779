"""Decomposition: every pixel's spectrum as exact non-negative least squares on the patterns.

- :mod:`~updm_dask.science.decompose.nnls`: the public kernels :func:`nnls_decompose`
  (eqs. (8)-(11)) and :func:`normalise_coefficients` (the illumination correction);
- :mod:`~updm_dask.science.decompose.solver`: the method (one fixed product per pixel,
  KKT-certified active sets) and the driver that feeds blocks of pixels to threads;
- :mod:`~updm_dask.science.decompose.compiled`: the numba kernel the driver runs.
"""

from __future__ import annotations

from .nnls import COEFFICIENT_NAMES, nnls_decompose, normalise_coefficients

__all__ = ["COEFFICIENT_NAMES", "nnls_decompose", "normalise_coefficients"]
