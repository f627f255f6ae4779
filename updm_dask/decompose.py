"""Stable public path of :mod:`updm_dask.science.decompose` (kept for code written against it)."""

from .science.decompose import *  # noqa: F403
from .science.decompose import __all__  # noqa: F401
