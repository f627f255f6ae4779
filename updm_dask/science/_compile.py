"""How the science room's numba kernels are compiled: one place for the options and the cache.

Every kernel is compiled on first use for explicit signatures, releases the GIL, keeps
numpy's floating-point error model (no exceptions on division by zero) and is cached on
disk so that later processes load it instead of compiling. Where no cache location is
writable (a read-only install), numba refuses ``cache=True``; the kernel is then compiled
in memory, once per process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba

__all__ = ["compile_kernel"]


def compile_kernel(source: Callable[..., Any], signature: Any) -> Any:
    """``source`` compiled by numba for ``signature``, cached on disk where it can be.

    Parameters
    ----------
    source : callable
        The kernel's Python source function.
    signature : numba signature
        The one signature to compile (explicit types: no compile at call time).

    Returns
    -------
    numba dispatcher
        The compiled kernel.
    """
    options = {"nogil": True, "error_model": "numpy"}
    try:
        return numba.njit([signature], cache=True, **options)(source)
    except RuntimeError:  # no writable cache location (numba's "no locator available")
        return numba.njit([signature], **options)(source)
