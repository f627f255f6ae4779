"""The UPDM standard spectral patterns: eqs. (12)-(16) of the method.

UPDM describes every pixel as a non-negative mix of a few standard spectral patterns
(water, vegetation, soil and an optional supplementary pattern). The patterns are defined
once, from continuous reflectance spectra over 350-2500 nm, and band-averaged for each
sensor; that is what makes the coefficients sensor-independent. One module per concern:

- :mod:`~updm_dask.science.patterns.spectra`: numpy kernels that know nothing about
  sensors: :func:`normalise_spectrum`, :func:`band_average`, :func:`rsr_average`,
  :func:`fit_supplementary`;
- :mod:`~updm_dask.science.patterns.sets`: :class:`PatternSet`, with
  :func:`default_pattern_set` (the open stand-in spectra shipped in ``updm_dask/data``)
  and :func:`load_pattern_set` (a user's own spectra from CSV);
- :mod:`~updm_dask.science.patterns.bands`: :func:`band_patterns`, the labelled
  ``(band, pattern)`` matrix a sensor's decomposition uses, and :func:`load_rsr`;
- :mod:`~updm_dask.science.patterns.tables`: the CSV reader behind both.
"""

from __future__ import annotations

from .bands import METHODS, PATTERN_NAMES, band_patterns, load_rsr
from .sets import (
    DEFAULT_PATTERN_SET_NAME,
    KINDS,
    STANDARD_KINDS,
    PatternSet,
    default_pattern_set,
    load_pattern_set,
)
from .spectra import (
    NORMALISATION_RANGE_NM,
    band_average,
    fit_supplementary,
    normalise_spectrum,
    rsr_average,
)

__all__ = [
    "DEFAULT_PATTERN_SET_NAME",
    "KINDS",
    "METHODS",
    "NORMALISATION_RANGE_NM",
    "PATTERN_NAMES",
    "STANDARD_KINDS",
    "PatternSet",
    "band_average",
    "band_patterns",
    "default_pattern_set",
    "fit_supplementary",
    "load_pattern_set",
    "load_rsr",
    "normalise_spectrum",
    "rsr_average",
]
