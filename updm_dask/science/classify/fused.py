"""Land-cover classes, MVIUPD and the dark flag of a block in one compiled (numba) pass.

:func:`classify_block` gives, for coefficients with the components on the last axis, what
:func:`~updm_dask.science.classify.landcover.classify_array`,
:func:`~updm_dask.science.classify.index.mviupd` and
:func:`~updm_dask.science.classify.index.mviupd_undefined` give, bit for bit, reading each
pixel once. The numpy functions take a dozen passes and as many block-sized temporaries
(one boolean array per condition, the sum and the index twice); this kernel none. The
pipeline calls it once per block.

Exactness. Every value is computed in the coefficients' own floating type and in the
order of the numpy functions: ``S = (uCw + uCv) + uCs``; the MVIUPD numerator
``((uCv - uCw) - w * uCs) - uC4`` with the soil weight ``w`` and the dark limit first
rounded to that type (numpy 2 rounds a Python float to float32 before a float32
operation; numba would compute in float64, so the constants reach the kernel already
rounded); thresholds are rounded to that type as :func:`classify_array` does. numba does
not reassociate or fuse floating-point operations unless asked (no ``fastmath``).

The kernel is compiled on first use, one version per coefficient dtype (float32, float64),
and cached on disk (``cache=True``) where a cache location is writable, so that later
processes load it. It runs in the calling thread and releases the GIL. Other dtypes
(float16, integers) go through the numpy functions, as before.
"""

from __future__ import annotations

import functools
import math
import threading
from typing import Any

import numba
import numpy as np

from ...errors import RuleError
from .._compile import compile_kernel
from .index import MVIUPD_DARK_LIMIT, MVIUPD_SOIL_WEIGHT, mviupd, mviupd_undefined
from .landcover import classify_array
from .rules import OPERATORS, QUANTITIES, RuleTable

__all__ = ["classify_block"]

# Operator codes of the compiled kernel: positions in OPERATORS (>=, >, <=, <).
_GE, _GT, _LE, _LT = (OPERATORS.index(op) for op in (">=", ">", "<=", "<"))
_COMPILED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# Dask's threads start their first blocks together: one compiles (or loads) the kernel,
# the others wait for it instead of compiling it again each.
_COMPILE_LOCK = threading.Lock()


def _kernel_source(  # pragma: no cover - compiled
    coefficients,
    has_supplementary,
    rule_class,
    rule_first,
    condition_quantity,
    condition_operator,
    condition_threshold,
    soil_weight,
    dark_limit,
    zero,
    nan,
    scratch,
    codes,
    index,
    dark,
):
    n = coefficients.shape[0]
    n_rules = rule_class.shape[0]
    for p in range(n):
        w = coefficients[p, 0]
        v = coefficients[p, 1]
        s = coefficients[p, 2]
        c4 = coefficients[p, 3] if has_supplementary else zero
        total = w + v + s
        numerator = v - w - soil_weight * s
        # total < limit is False for NaN: like numpy's where, NaN sums keep the ratio (NaN)
        undefined = total == 0 or total < dark_limit
        # Classification counts a NaN uC4 as 0; the returned index, like mviupd(), does not.
        c4_nan = math.isnan(c4)
        c4_rules = zero if c4_nan else c4
        if undefined:
            value_rules = nan
            index[p] = nan
        else:
            value_rules = (numerator - c4_rules) / total
            index[p] = (numerator - c4) / total if c4_nan else value_rules
        dark[p] = undefined and math.isfinite(total)

        code = 0
        if math.isfinite(w) and math.isfinite(v) and math.isfinite(s) and not math.isinf(c4):
            scratch[0] = w
            scratch[1] = v
            scratch[2] = s
            scratch[3] = c4_rules
            scratch[4] = total
            scratch[5] = value_rules
            for r in range(n_rules):
                hit = True
                for j in range(rule_first[r], rule_first[r + 1]):
                    x = scratch[condition_quantity[j]]
                    t = condition_threshold[j]
                    op = condition_operator[j]
                    if op == _GE:
                        hit = x >= t
                    elif op == _GT:
                        hit = x > t
                    elif op == _LE:
                        hit = x <= t
                    else:
                        hit = x < t
                    if not hit:
                        break
                if hit:
                    code = rule_class[r]
                    break
        codes[p] = code


@functools.cache
def _compiled(dtype: np.dtype) -> Any:
    """The kernel for coefficients of ``dtype`` (float32 or float64), compiled once.

    One explicit signature (any memory layout of the coefficients, read-only inputs) per
    dtype.
    """
    from numba import types

    real = numba.from_dtype(dtype)
    i8 = types.int64
    signature = types.void(
        types.Array(real, 2, "A", readonly=True),
        types.boolean,
        types.Array(types.uint8, 1, "C", readonly=True),
        types.Array(i8, 1, "C", readonly=True),
        types.Array(i8, 1, "C", readonly=True),
        types.Array(i8, 1, "C", readonly=True),
        types.Array(real, 1, "C", readonly=True),
        real,
        real,
        real,
        real,
        types.Array(real, 1, "C"),
        types.Array(types.uint8, 1, "C"),
        types.Array(real, 1, "C"),
        types.Array(types.boolean, 1, "C"),
    )
    return compile_kernel(_kernel_source, signature)


def _readonly(a: np.ndarray) -> np.ndarray:
    """``a`` as the compiled signature takes it (read-only), without copying the data."""
    view = a.view()
    view.flags.writeable = False
    return view


def _rule_arrays(rules: RuleTable, dtype: np.dtype) -> tuple[np.ndarray, ...]:
    """The table as the kernel reads it: class codes, condition offsets, the conditions."""
    conditions = [c for rule in rules.rules for c in rule.conditions]
    first = np.cumsum([0] + [len(rule.conditions) for rule in rules.rules], dtype=np.int64)
    return (
        np.array([rule.class_value for rule in rules.rules], dtype=np.uint8),
        first,
        np.array([QUANTITIES.index(c.quantity) for c in conditions], dtype=np.int64),
        np.array([OPERATORS.index(c.operator) for c in conditions], dtype=np.int64),
        # each threshold rounded to the coefficients' type, as classify_array compares
        np.array([dtype.type(c.threshold) for c in conditions], dtype=dtype),
    )


def classify_block(
    coefficients: np.ndarray, rules: RuleTable
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Land-cover classes, MVIUPD and the dark flag of a block, in one pass.

    Parameters
    ----------
    coefficients : numpy.ndarray, shape (..., k)
        UPDM coefficients on the last axis in the order water, vegetation, soil
        [, supplementary]; k is 3 or 4. float32 and float64 run compiled; other types
        through the numpy functions (integers as float64, as :func:`classify_array` does).
    rules : RuleTable
        The rule table to apply.

    Returns
    -------
    codes : numpy.ndarray of uint8, shape (...)
        ``classify_array(coefficients, rules)``.
    index : numpy.ndarray, shape (...)
        ``mviupd(uCw, uCv, uCs, uC4)`` of the coefficients' floating type; ``uC4`` as
        given, so a NaN uC4 gives NaN here while the rules count it as 0.
    dark : numpy.ndarray of bool, shape (...)
        ``mviupd_undefined(uCw, uCv, uCs)``.

    Raises
    ------
    RuleError
        Wrong last-axis length, or the table tests uC4 but only 3 coefficients are given.

    Notes
    -----
    The dark limit is :data:`MVIUPD_DARK_LIMIT`, the one all three functions use by
    default.
    """
    c = np.asarray(coefficients)
    if c.ndim < 1 or c.shape[-1] not in (3, 4):
        raise RuleError(
            f"coefficients: shape {c.shape}; expected (..., 3) or (..., 4) with components "
            "water, vegetation, soil[, supplementary] on the last axis"
        )
    k = c.shape[-1]
    if "uC4" in rules.quantities and k == 3:
        raise RuleError(
            f"rule table {rules.name!r} tests uC4, but the coefficients have only 3 "
            "components (no supplementary pattern)"
        )
    if c.dtype not in _COMPILED_DTYPES:
        return _numpy_block(c, rules)
    dtype = c.dtype
    shape = c.shape[:-1]
    flat = c.reshape(-1, k)
    n = flat.shape[0]
    codes = np.empty(n, dtype=np.uint8)
    index = np.empty(n, dtype=dtype)
    dark = np.empty(n, dtype=bool)
    with _COMPILE_LOCK:
        kernel = _compiled(dtype)
    kernel(
        _readonly(flat),
        k == 4,
        *(_readonly(a) for a in _rule_arrays(rules, dtype)),
        # numpy rounds these to the coefficients' type before it computes with them
        dtype.type(MVIUPD_SOIL_WEIGHT),
        dtype.type(MVIUPD_DARK_LIMIT),
        dtype.type(0),
        # numpy's where(..., np.nan, ...) casts the float64 NaN: the same bits as this
        dtype.type(np.nan),
        np.empty(len(QUANTITIES), dtype=dtype),
        codes,
        index,
        dark,
    )
    return codes.reshape(shape), index.reshape(shape), dark.reshape(shape)


def _numpy_block(c: np.ndarray, rules: RuleTable) -> tuple[np.ndarray, ...]:
    """The same three results from the numpy functions (types the kernel is not built for)."""
    uc4 = c[..., 3] if c.shape[-1] == 4 else None
    codes = classify_array(c, rules)
    index = mviupd(c[..., 0], c[..., 1], c[..., 2], uc4)
    dark = mviupd_undefined(c[..., 0], c[..., 1], c[..., 2])
    return codes, index, dark
