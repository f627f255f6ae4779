"""Stable public path of :mod:`updm_dask.science.calibration` (kept for code written against it)."""

from .science.calibration import *  # noqa: F403
from .science.calibration import __all__  # noqa: F401
