"""Stable public path of :mod:`updm_dask.science.classify` (kept for code written against it)."""

from .science.classify import *  # noqa: F403
from .science.classify import __all__  # noqa: F401
