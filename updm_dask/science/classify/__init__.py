"""Classification: MVIUPD, land-cover rule tables, and their conversion between sensors.

UPDM expresses every pixel of every Landsat sensor in the same few coefficients (uCw, uCv,
uCs and optionally uC4). Land cover then follows from a short, ordered list of threshold
rules on those coefficients, their sum ``S = uCw + uCv + uCs`` and the vegetation index
MVIUPD. One module per concern:

- :mod:`~updm_dask.science.classify.index`: :func:`mviupd`, the one MVIUPD formula, and
  its dark limit (:data:`MVIUPD_DARK_LIMIT`, :func:`mviupd_undefined`);
- :mod:`~updm_dask.science.classify.rules`: :class:`RuleTable` and its parts, the TOML
  format, :func:`load_rules` and the shipped tables;
- :mod:`~updm_dask.science.classify.landcover`: :func:`classify_array` (numpy kernel) and
  :func:`classify` (labelled API);
- :mod:`~updm_dask.science.classify.fused`: ``classify_block``, the pipeline's one
  compiled pass per block giving classes, MVIUPD and the dark flag, bit for bit as the
  numpy functions above;
- :mod:`~updm_dask.science.classify.conversion`: :class:`LinearConversion` (the note's
  Table 7, or fitted by :func:`fit_conversion`) and :func:`convert_rules`.
"""

from __future__ import annotations

from .conversion import NOTE_TABLE7_TM_TO_MSS, LinearConversion, convert_rules, fit_conversion
from .index import MVIUPD_DARK_LIMIT, MVIUPD_SOIL_WEIGHT, mviupd, mviupd_undefined
from .landcover import classify, classify_array
from .rules import (
    CLASS_ALIASES,
    CLASS_CODES,
    CLASS_LONG_NAMES,
    LAND_COVER_CLASSES,
    OPERATORS,
    QUANTITIES,
    RULE_TABLE_ALIASES,
    Condition,
    Rule,
    RuleTable,
    load_rules,
    resolve_class_name,
)

__all__ = [
    "CLASS_ALIASES",
    "CLASS_CODES",
    "CLASS_LONG_NAMES",
    "LAND_COVER_CLASSES",
    "MVIUPD_DARK_LIMIT",
    "MVIUPD_SOIL_WEIGHT",
    "NOTE_TABLE7_TM_TO_MSS",
    "OPERATORS",
    "QUANTITIES",
    "RULE_TABLE_ALIASES",
    "Condition",
    "LinearConversion",
    "Rule",
    "RuleTable",
    "classify",
    "classify_array",
    "convert_rules",
    "fit_conversion",
    "load_rules",
    "mviupd",
    "mviupd_undefined",
    "resolve_class_name",
]
