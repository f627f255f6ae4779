"""Watching how a numba kernel of the science room is compiled (shared by its tests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba


def watch_kernel_compiles(
    monkeypatch: Any, source: Callable[..., Any], *, cache_fails: bool = False
) -> list:
    """The ``cache`` option of every compile of ``source``, in order (``numba.njit`` patched).

    numba compiles its own helpers with ``numba.njit`` too; only ``source`` is recorded.
    With ``cache_fails``, a cached compile of ``source`` raises what numba raises when no
    cache location is writable.
    """
    calls = []
    real_njit = numba.njit

    def njit(*args, **kwargs):
        if args and callable(args[0]):  # bare @njit on a helper
            return real_njit(*args, **kwargs)
        decorate = real_njit(*args, **kwargs)

        def wrapped(function):
            if function is source:
                calls.append(kwargs.get("cache", False))
                if cache_fails and kwargs.get("cache"):
                    raise RuntimeError(
                        "cannot cache function '_kernel_source': no locator available"
                    )
            return decorate(function)

        return wrapped

    monkeypatch.setattr(numba, "njit", njit)
    return calls
