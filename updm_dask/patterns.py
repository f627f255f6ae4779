"""Stable public path of :mod:`updm_dask.science.patterns` (kept for code written against it)."""

from .science.patterns import *  # noqa: F403
from .science.patterns import __all__  # noqa: F401
