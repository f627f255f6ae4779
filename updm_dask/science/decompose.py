"""Decomposition, eqs. (8)-(11): exact non-negative least squares against the band patterns.

Every pixel's spectrum ``A`` (n bands) is written as ``A ~= P c`` where ``P`` (n bands x k
patterns) holds the sensor's band patterns, columns in the order water, vegetation, soil and
optionally the supplementary pattern. The note's condition (9) asks ``uCw, uCv, uCs >= 0``; the
supplementary coefficient ``uC4`` is free in sign unless asked otherwise (see
:func:`nnls_decompose`).

Three tiers, as everywhere in the package:

* :func:`nnls_decompose` and :func:`normalise_coefficients` are numpy-in, numpy-out kernels
  (spectral axis last by default, any axis allowed) where correctness and speed live;
* :func:`decompose_array` maps the kernel over a dask array with the band axis in one chunk;
* :func:`decompose` is the labelled API: xarray in, :class:`xarray.Dataset` out.

How the kernel finds the exact optimum
--------------------------------------
``P`` is the same for every pixel and tiny, so everything that depends on it alone is computed
once per matrix (:func:`_plan`, cached). Let ``x = P^+ A`` be the unconstrained least-squares
solution and ``U`` an orthonormal basis of the orthogonal complement of ``range(P)``. For any c

    ||A - P c||^2 = ||U^T A||^2 + (x - c)^T G (x - c),      G = P^T P,

so each pixel's n-band problem is a k-dimensional one in ``x`` alone, and both terms are sums of
squares (no ``||A||^2 - ...`` cancellation). One fixed n x n matrix gives ``x`` and ``U^T A``.

The optimum is the least-squares solution with some set ``S`` of constrained coefficients fixed
at zero. With ``H = G^-1`` (the covariance of x) that solution is

    mu = (H_SS)^-1 x_S,    c = x - H[:, S] mu  (so c_S = 0),    extra objective x_S^T mu,

and the problem being strictly convex (``P`` has full column rank), it is THE optimum exactly
when the KKT conditions hold: ``mu <= 0`` (the multipliers of the fixed bounds have the right
sign) and ``c >= 0`` on the other constrained entries. With at most four constrained
coefficients there are at most 16 sets ``S``; the matrices giving ``c`` and ``mu`` from ``x``
for each are precomputed. The kernel finds the certified set of every pixel in tiers:

1. Tier 1, every pixel: ``S`` empty (x itself, where it is feasible), else each single
   constrained coefficient ``j`` with ``x_j < 0`` in turn, for which ``mu_j = x_j / H_jj < 0``
   holds by construction and ``c = x - x_j H[:, j] / H_jj``: certified if the other
   constrained ``c_i >= 0``. On realistic data this settles about 90-98 % of the pixels.
2. Tier 2, the rest: the sets fixing two coefficients, then three, and so on, each tried on
   all of a block's remaining pixels at once; a pixel takes the first set that certifies it.
3. Pixels no set certifies (rounding at a tie, where two sets are nearly optimal) get the
   brute-force answer, which cannot fail: the feasible set solution with the smallest
   objective (the all-fixed set is always feasible).

Precision: arithmetic is float64 (inputs are widened on load) and outputs are float32. float32
arithmetic would lose the 1e-5 relative accuracy on small coefficients of bright pixels: the
rounding error of ``P^+ A`` scales with ``|A|``, not with the coefficient, and the coefficients
that matter most for NNLS are the small ones. No step is reassociated or fused, so a pixel's
result does not depend on where it falls in a block or which thread solves it.

Speed: the per-pixel work is a compiled (numba) kernel that streams the spectra once, in blocks
of a few hundred pixels held in cache: widen to float64, one n x n product (bands padded to 4,
6 or 8 so that the compiler unrolls it), tier 1, tiers 2-3 for the few pixels left, and the
float32 outputs; every step but tier 3 vectorises across pixels. Large inputs are split over
threads when called from the main thread (see :func:`_thread_count`); inside dask's worker
threads the kernel runs single-threaded, dask supplying the parallelism. The kernel is
compiled on first use for each input dtype (float32, float64; some seconds) and cached on
disk for later processes. ``benchmarks/bench_kernel.py`` measures it against a per-pixel
``scipy.optimize.nnls`` loop and against a bare float32 least-squares product.
"""

from __future__ import annotations

import functools
import hashlib
import math
import multiprocessing
import os
import threading
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from ..errors import DecompositionError

__all__ = [
    "COEFFICIENT_NAMES",
    "decompose",
    "decompose_array",
    "nnls_decompose",
    "normalise_coefficients",
]

#: Output variable names, in the column order of the pattern matrix.
COEFFICIENT_NAMES: tuple[str, ...] = ("uCw", "uCv", "uCs", "uC4")

#: Number of standard (always non-negative) patterns: water, vegetation, soil.
_N_STANDARD = 3

# Pixels per block of the compiled kernel: its ~25 float64 work rows of this length stay in
# the L1/L2 caches (1024 measured 10-20 % slower).
_BLOCK = 256

# Tier 2 searches the active sets for the certified one; False leaves every pixel tier 1 does
# not certify to the brute force (tests use it to check that fallback alone).
_SEARCH_CERTIFIED = True

# Pixels per task when a large input is split over threads: enough to make the ~20 us cost of
# a task negligible, few enough to balance the load on a busy machine.
_THREAD_CHUNK = 1 << 16

# Condition number above which patterns count as numerically rank-deficient: beyond it the
# float32 rounding of the spectra alone (relative 6e-8) could move a coefficient by more than
# 6 % of the spectrum's scale, so the decomposition would carry no information.
_MAX_CONDITION = 1e6

# Widths the band axis is padded to (with zero weights) so that the kernel's product has a
# compile-time size; more bands than the last one take a generic, slower loop.
_PADDED_BANDS = (4, 6, 8)


@dataclass(frozen=True)
class _Plan:
    """Everything that depends on the pattern matrix only, precomputed once per matrix.

    Active sets ``S`` are bitmasks over the constrained columns 0..nc-1 (bit j set: column j
    fixed at zero).
    """

    n_bands: int
    n_patterns: int
    n_constrained: int
    # (n, nb): weights @ A gives x (rows 0..k-1), then U^T A / sqrt(n) (the n - k rows whose
    # squares sum to the mean square residual of x). Columns n..nb-1 (padding up to a width
    # the kernel is unrolled for) are zero.
    weights: np.ndarray
    # Tier 1, (4, 4): x + x_j * fix[j] fixes c_j at zero (fix[j, j] is exactly -1, so that
    # c_j = x_j - x_j = 0 exactly), and x_j**2 * fix_objective[j] is the extra mean square;
    # zero rows for the unconstrained columns j >= nc.
    fix: np.ndarray
    fix_objective: np.ndarray
    # Tiers 2-3, (2**nc, 8, 4), k padded to 4 with zeros: solve[S] @ x gives in rows 0..3 the
    # coefficients of set S (fixed ones exactly 0) and in rows 4..4+nc-1 what must be >= 0 at
    # the optimum: c_j for free j, -mu_j for fixed j. The extra mean square of S is then
    # -sum_{j in S} x_j * row[4 + j] / n.
    solve: np.ndarray


def _plan(patterns: np.ndarray, constrain_supplementary: bool) -> _Plan:
    key = (patterns.shape, patterns.tobytes(), bool(constrain_supplementary))
    return _plan_cached(key)


def _padded_bands(n: int) -> int:
    return next((width for width in _PADDED_BANDS if n <= width), n)


@functools.lru_cache(maxsize=32)
def _plan_cached(key: tuple[tuple[int, ...], bytes, bool]) -> _Plan:
    shape, raw, constrain_supplementary = key
    p = np.frombuffer(raw, dtype=np.float64).reshape(shape)
    n, k = shape
    nc = k if constrain_supplementary else min(k, _N_STANDARD)

    u_full, _, _ = np.linalg.svd(p, full_matrices=True)
    pinv = np.linalg.pinv(p)
    weights = np.zeros((n, _padded_bands(n)))
    weights[:k, :n] = pinv
    weights[k:, :n] = u_full[:, k:].T / np.sqrt(n)

    h = pinv @ pinv.T  # (P^T P)^-1, the covariance of x
    fix = np.zeros((4, 4))
    fix_objective = np.zeros(4)
    for j in range(nc):
        fix[j, :k] = -h[:, j] / h[j, j]
        fix[j, j] = -1.0
        fix_objective[j] = 1.0 / (h[j, j] * n)

    solve = np.zeros((1 << nc, 8, 4))
    for mask in range(1 << nc):
        fixed = [j for j in range(nc) if mask >> j & 1]
        free = [j for j in range(k) if j not in fixed]
        if not fixed:
            solve[mask, :k, :k] = np.eye(k)  # exactly c = x
        elif free:
            # c_F = P_F^+ P x: the least-squares fit on the free columns, written in x.
            solve[mask, free, :k] = np.linalg.pinv(p[:, free]) @ p
        if fixed:
            h_ss_inv = np.linalg.inv(h[np.ix_(fixed, fixed)])
            rows = np.array(fixed)[:, None] + 4
            solve[mask, rows, np.array(fixed)] = -(h_ss_inv + h_ss_inv.T) / 2  # -mu = this @ x_S
        for j in range(nc):
            if j not in fixed:
                solve[mask, 4 + j] = solve[mask, j]
    plan = _Plan(
        n_bands=n,
        n_patterns=k,
        n_constrained=nc,
        weights=weights,
        fix=fix,
        fix_objective=fix_objective,
        solve=solve,
    )
    # Cached and shared between threads (dask runs the kernel on many chunks at once).
    for value in vars(plan).values():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    return plan


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _as_patterns(patterns: Any) -> np.ndarray:
    """Validate the pattern matrix (n_bands, k) and return it as C-contiguous float64."""
    dims = getattr(patterns, "dims", None)
    if dims is not None and set(dims) == {"band", "pattern"}:
        patterns = patterns.transpose("band", "pattern")  # labelled: put bands first
    elif dims is not None and len(dims) == 2 and tuple(dims) != ("band", "pattern"):
        raise DecompositionError(
            f"labelled patterns must have dims (band, pattern), got {tuple(dims)}"
        )
    raw = np.asarray(patterns)
    if raw.dtype.kind not in "fiu":
        raise DecompositionError(
            f"patterns must be a real numeric (n_bands, k) matrix, got dtype {raw.dtype}"
        )
    p = np.ascontiguousarray(raw, dtype=np.float64)
    if p.ndim != 2:
        raise DecompositionError(
            f"patterns must be 2-D (n_bands, k), got {p.ndim}-D with shape {p.shape}"
        )
    n, k = p.shape
    if k not in (3, 4):
        raise DecompositionError(
            f"patterns must have 3 (water, vegetation, soil) or 4 (+ supplementary) columns, "
            f"got {k} (shape {p.shape})"
        )
    if k > n:
        raise DecompositionError(
            f"patterns have {k} columns but only {n} bands: the decomposition needs at least "
            f"as many bands as patterns"
        )
    if not np.isfinite(p).all():
        raise DecompositionError("patterns contain NaN or infinite values")
    singular = np.linalg.svd(p, compute_uv=False)
    if not singular[-1] > singular[0] / _MAX_CONDITION:
        raise DecompositionError(
            f"patterns are rank-deficient (singular values {singular.tolist()}, condition "
            f"number above {_MAX_CONDITION:g}): the columns must be linearly independent"
        )
    return p


def _check_spectra_dtype(dtype: np.dtype) -> None:
    if dtype.kind != "f":
        raise DecompositionError(
            f"spectra must be a floating-point array (reflectance), got dtype {dtype}; "
            f"convert digital numbers to reflectance first"
        )


def _check_band_count(n_spectra: int, p: np.ndarray, where: str) -> None:
    if n_spectra != p.shape[0]:
        raise DecompositionError(
            f"spectra have {n_spectra} bands along {where} but patterns have "
            f"{p.shape[0]} rows (bands)"
        )


# --------------------------------------------------------------------------------------------
# Kernel
# --------------------------------------------------------------------------------------------


def nnls_decompose(
    spectra: np.ndarray,
    patterns: Any,
    *,
    constrain_supplementary: bool = False,
    band_axis: int = -1,
) -> tuple[np.ndarray, np.ndarray]:
    """Decompose spectra into pattern coefficients by exact non-negative least squares.

    Solves, for every pixel, ``min_c ||A - P c||_2`` subject to ``c_j >= 0`` for the water,
    vegetation and soil columns (the note's condition (9)), and for the supplementary column
    too when `constrain_supplementary` is true. The answer is the exact optimum (the same as
    ``scipy.optimize.nnls`` when every column is constrained), not an approximation.

    Parameters
    ----------
    spectra : numpy.ndarray, shape (..., n_bands)
        Floating-point spectra (float32 or float64), spectral axis last unless `band_axis`
        says otherwise. Any other shape, including zero pixels. Pixels with NaN or infinity
        in any band give NaN outputs.
    patterns : array_like, shape (n_bands, k)
        Band patterns, columns water, vegetation, soil[, supplementary]; ``k`` is 3 or 4. A
        numpy array or an :class:`xarray.DataArray` with dims (band, pattern) in that order
        (it is taken by position; :func:`decompose` aligns bands by label).
    constrain_supplementary : bool, default False
        Also constrain the supplementary coefficient ``uC4`` (column 3) to be >= 0. The default
        leaves it free in sign: the supplementary pattern is the normalised residual of a fit
        (eqs. (15)-(16)), a shape that can enter a pixel with either sign, and condition (9)
        only constrains ``uCw``, ``uCv`` and ``uCs``. Ignored when ``k == 3``.
    band_axis : int, default -1
        The spectral axis. Rasters stored (band, y, x) are best passed as they are with
        ``band_axis=0``: the kernel reads them without a transposing copy.

    Returns
    -------
    coefficients : numpy.ndarray, shape (..., k), float32
        ``uCw, uCv, uCs[, uC4]``, the k components where the bands were (last by default).
    residual : numpy.ndarray, shape (...), float32
        Root-mean-square over bands of ``A - P c`` at the optimum; the band axis removed.

    Raises
    ------
    DecompositionError
        Non-floating spectra, a band count that differs from the pattern rows, patterns that
        are not a finite 2-D (n_bands, 3|4) matrix of full column rank, or ``k > n_bands``.

    Notes
    -----
    Arithmetic is float64 internally whatever the input precision. The module docstring
    describes the method: one fixed matrix product per pixel, closed-form KKT-certified
    solutions for pixels breaking at most one bound, and a search over the active sets for
    the few others. The compiled kernel is built on the first call for each input dtype
    (some seconds, then cached on disk). Large inputs are solved on all available CPUs when
    called from the main thread, on one thread otherwise (as inside dask's workers).
    """
    a = np.asarray(spectra)
    _check_spectra_dtype(a.dtype)
    if a.ndim < 1:
        raise DecompositionError("spectra must have at least one axis (the spectral axis)")
    if not -a.ndim <= band_axis < a.ndim:
        raise DecompositionError(
            f"band_axis={band_axis} is out of range for spectra with {a.ndim} dimensions"
        )
    axis = band_axis % a.ndim
    p = _as_patterns(patterns)
    _check_band_count(a.shape[axis], p, "the last axis" if axis == a.ndim - 1 else f"axis {axis}")
    return _decompose_along(a, p, axis, constrain_supplementary)


def _decompose_along(
    a: np.ndarray,
    p: np.ndarray,
    axis: int,
    constrain_supplementary: bool,
    out: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Kernel on validated input whose spectral axis is `axis`; components replace it.

    `out` optionally gives the float32 coefficient and residual arrays to fill; they must
    reshape to the kernel's views without copying (C-contiguous trailing axes).
    """
    plan = _plan(p, constrain_supplementary)
    n, k = plan.n_bands, plan.n_patterns
    lead = a.shape[:axis]
    trail = a.shape[axis + 1 :]
    m_lead = math.prod(lead)
    m_trail = math.prod(trail)
    if out is None:
        coefficients = np.empty((*lead, k, *trail), dtype=np.float32)
        residual = np.empty((*lead, *trail), dtype=np.float32)
    else:
        coefficients, residual = out
    if a.dtype not in (np.float32, np.float64) or not a.dtype.isnative:
        # float16, long double or byte-swapped input: the kernel is compiled for the two
        # usual types only.
        a = a.astype(np.float64)
    if m_trail == 1:
        # Bands last: the pixels are the rows of one (m, n) matrix, seen transposed.
        a3 = a.reshape(1, m_lead, n).transpose(0, 2, 1)
        c3 = _reshaped_view(coefficients, (1, m_lead, k)).transpose(0, 2, 1)
        r2 = _reshaped_view(residual, (1, m_lead))
    else:
        # Bands first (n, y, x) or in the middle: each leading index is an (n, pixels)
        # matrix, read without transposing the data.
        a3 = a.reshape(m_lead, n, m_trail)
        c3 = _reshaped_view(coefficients, (m_lead, k, m_trail))
        r2 = _reshaped_view(residual, (m_lead, m_trail))
    _run_kernel(a3, plan, c3, r2)
    return coefficients, residual


def _reshaped_view(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """`array` reshaped, guaranteed a view: the kernel writes its results through it."""
    view = array.reshape(shape)
    if view.size and not np.may_share_memory(view, array):
        raise ValueError(f"cannot write through a reshape of {array.shape} to {shape}")
    return view


def _thread_count() -> int:
    """Threads the kernel may use: all available CPUs, unless called from a worker.

    Dask's threaded scheduler and distributed workers run tasks in threads other than the
    main one, and process pools run them in child processes: there the caller already keeps
    every CPU busy, and more threads would only compete for them.
    """
    if threading.current_thread() is not threading.main_thread():
        return 1
    if multiprocessing.parent_process() is not None:
        return 1
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@functools.cache
def _executor(pid: int, workers: int) -> ThreadPoolExecutor:
    # Keyed by process too: a pool inherited through fork has no threads behind it.
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="updm-nnls")


def _run_kernel(a3: np.ndarray, plan: _Plan, c3: np.ndarray, r2: np.ndarray) -> int:
    """Solve every pixel of (groups, n, m) spectra into (groups, k, m) and (groups, m) views.

    Returns the number of pixels that needed the brute-force fallback.
    """
    total = a3.shape[0] * a3.shape[2]
    if total == 0:
        return 0
    kernel = _compiled_kernel(a3.dtype)
    args = (
        plan.weights,
        plan.fix,
        plan.fix_objective,
        plan.solve,
        plan.n_patterns,
        plan.n_constrained,
        int(_SEARCH_CERTIFIED),
        _BLOCK,
        c3,
        r2,
    )
    threads = _thread_count()
    if threads <= 1 or total <= _THREAD_CHUNK:
        return int(kernel(a3, *args, 0, total))
    # Disjoint pixel ranges, each written by one task: no two threads touch the same output.
    pool = _executor(os.getpid(), threads)
    futures = [
        pool.submit(kernel, a3, *args, lo, min(lo + _THREAD_CHUNK, total))
        for lo in range(0, total, _THREAD_CHUNK)
    ]
    return sum(int(f.result()) for f in futures)


# --------------------------------------------------------------------------------------------
# Compiled kernel
# --------------------------------------------------------------------------------------------
#
# One function per input dtype, _kernel_source, compiled by numba on first use and cached on
# disk (cache=True), so that later processes load it. The helpers below are inlined into it
# (inline="always"), at call sites that pass their sizes as literal constants: LLVM then
# unrolls their short loops and vectorises the loops over pixels. Everything is inlined into
# the one function on purpose: numba re-optimises and re-generates the code of every compiled
# function a function calls, so a tree of separately compiled functions takes several times
# longer to compile than the same code in one.

_HUGE = np.finfo(np.float64).max


@numba.njit(inline="always")
def _widen(src, e, buf, n, bands_inner):  # pragma: no cover - compiled
    if bands_inner:  # (m, n) storage: one pixel's bands are adjacent
        for t in range(e):
            for b in range(n):
                buf[b, t] = src[b, t]
    else:
        for b in range(n):
            for t in range(e):
                buf[b, t] = src[b, t]


@numba.njit(inline="always")
def _project(buf, weights, k, y, e, nb):  # pragma: no cover - compiled
    # y = weights @ buf[:nb, :e]: x into rows 0..k-1 of y, the residual rows into rows 4..
    # (row 3 stays 0 when k == 3). Every band enters every row, zero weights included
    # (0 * NaN is NaN): a NaN or infinite band makes x non-finite.
    for j in range(weights.shape[0]):
        out = y[j if j < k else j + 4 - k]
        for t in range(e):
            s = 0.0
            for b in range(nb):
                s += weights[j, b] * buf[b, t]
            out[t] = s


@numba.njit(inline="always")
def _tier1(y, fix, fix_objective, nc, c, ms, ok, e):  # pragma: no cover - compiled
    # Every set fixing at most one coefficient, tried on every pixel: x itself where it is
    # feasible, else the first x + x_j fix[j] that is certified (x_j < 0, so that its
    # multiplier has the right sign, and the other constrained coefficients >= 0). Written
    # out for 4 coefficients, k == 3 and nc == 3 being zero padding (x3 = 0, zero fix rows):
    # the loop body has no inner loops and vectorises across pixels.
    f01, f02, f03 = fix[0, 1], fix[0, 2], fix[0, 3]
    f10, f12, f13 = fix[1, 0], fix[1, 2], fix[1, 3]
    f20, f21, f23 = fix[2, 0], fix[2, 1], fix[2, 3]
    f30, f31, f32 = fix[3, 0], fix[3, 1], fix[3, 2]
    e0, e1, e2, e3 = fix_objective[0], fix_objective[1], fix_objective[2], fix_objective[3]
    bound3 = 1.0 if nc == 4 else 0.0  # c3 is constrained only when nc == 4
    certified = 0
    for t in range(e):
        x0 = y[0, t]
        x1 = y[1, t]
        x2 = y[2, t]
        x3 = y[3, t]
        # An unconstrained c3 enters the tests as 0.0, which passes them.
        done = min(min(x0, x1), min(x2, x3 * bound3)) >= 0.0
        c0, c1, c2, c3, extra = x0, x1, x2, x3, 0.0
        # Fix c0 (exactly 0: fix[0, 0] is -1).
        a1 = x1 + x0 * f01
        a2 = x2 + x0 * f02
        a3 = x3 + x0 * f03
        take = (~done) & (x0 < 0.0) & (min(min(a1, a2), a3 * bound3) >= 0.0)
        c0 = 0.0 if take else c0
        c1 = a1 if take else c1
        c2 = a2 if take else c2
        c3 = a3 if take else c3
        extra = x0 * x0 * e0 if take else extra
        done |= take
        # Fix c1.
        a0 = x0 + x1 * f10
        a2 = x2 + x1 * f12
        a3 = x3 + x1 * f13
        take = (~done) & (x1 < 0.0) & (min(min(a0, a2), a3 * bound3) >= 0.0)
        c0 = a0 if take else c0
        c1 = 0.0 if take else c1
        c2 = a2 if take else c2
        c3 = a3 if take else c3
        extra = x1 * x1 * e1 if take else extra
        done |= take
        # Fix c2.
        a0 = x0 + x2 * f20
        a1 = x1 + x2 * f21
        a3 = x3 + x2 * f23
        take = (~done) & (x2 < 0.0) & (min(min(a0, a1), a3 * bound3) >= 0.0)
        c0 = a0 if take else c0
        c1 = a1 if take else c1
        c2 = 0.0 if take else c2
        c3 = a3 if take else c3
        extra = x2 * x2 * e2 if take else extra
        done |= take
        # Fix c3 (only when constrained: bound3 == 1).
        a0 = x0 + x3 * f30
        a1 = x1 + x3 * f31
        a2 = x2 + x3 * f32
        take = (~done) & (x3 * bound3 < 0.0) & (min(min(a0, a1), a2) >= 0.0)
        c0 = a0 if take else c0
        c1 = a1 if take else c1
        c2 = a2 if take else c2
        c3 = 0.0 if take else c3
        extra = x3 * x3 * e3 if take else extra
        done |= take
        total = ms[t] + extra
        # NaN unless x is finite: non-finite pixels go to tier 2, which writes NaN.
        finite = (x0 - x0) + (x1 - x1) + (x2 - x2) + (x3 - x3)
        c[0, t] = c0
        c[1, t] = c1
        c[2, t] = c2
        c[3, t] = c3
        ms[t] = total
        good = done & (total + finite <= _HUGE)
        ok[t] = good
        certified += good
    return certified


@numba.njit(inline="always")
def _set_solution(solve, mask, x0, x1, x2, x3):  # pragma: no cover - compiled
    """solve[mask] @ x: the coefficients c0..c3 of set `mask`, then v0..v3, all >= 0 where
    the set is certified (c_j for free j, -mu_j for fixed j, zero for j >= nc)."""
    # Element by element: a view such as solve[mask] would cost atomic reference counting.
    r0 = (
        solve[mask, 0, 0] * x0
        + solve[mask, 0, 1] * x1
        + solve[mask, 0, 2] * x2
        + solve[mask, 0, 3] * x3
    )
    r1 = (
        solve[mask, 1, 0] * x0
        + solve[mask, 1, 1] * x1
        + solve[mask, 1, 2] * x2
        + solve[mask, 1, 3] * x3
    )
    r2 = (
        solve[mask, 2, 0] * x0
        + solve[mask, 2, 1] * x1
        + solve[mask, 2, 2] * x2
        + solve[mask, 2, 3] * x3
    )
    r3 = (
        solve[mask, 3, 0] * x0
        + solve[mask, 3, 1] * x1
        + solve[mask, 3, 2] * x2
        + solve[mask, 3, 3] * x3
    )
    r4 = (
        solve[mask, 4, 0] * x0
        + solve[mask, 4, 1] * x1
        + solve[mask, 4, 2] * x2
        + solve[mask, 4, 3] * x3
    )
    r5 = (
        solve[mask, 5, 0] * x0
        + solve[mask, 5, 1] * x1
        + solve[mask, 5, 2] * x2
        + solve[mask, 5, 3] * x3
    )
    r6 = (
        solve[mask, 6, 0] * x0
        + solve[mask, 6, 1] * x1
        + solve[mask, 6, 2] * x2
        + solve[mask, 6, 3] * x3
    )
    r7 = (
        solve[mask, 7, 0] * x0
        + solve[mask, 7, 1] * x1
        + solve[mask, 7, 2] * x2
        + solve[mask, 7, 3] * x3
    )
    return r0, r1, r2, r3, r4, r5, r6, r7


@numba.njit(inline="always")
def _fixed_objective(mask, x0, x1, x2, x3, v0, v1, v2, v3):  # pragma: no cover - compiled
    """x_S^T (H_SS)^-1 x_S = -sum_{j in S} x_j * (-mu_j): the extra sum of squares of set S."""
    # Branch-free: which bits are set is unpredictable from pixel to pixel.
    return -(
        (mask & 1) * (x0 * v0)
        + (mask >> 1 & 1) * (x1 * v1)
        + (mask >> 2 & 1) * (x2 * v2)
        + (mask >> 3 & 1) * (x3 * v3)
    )


@numba.njit(inline="always")
def _tier2(y, k, nc, n, solve, search, c, ms, ok, e, work, label, index):  # pragma: no cover
    """Tiers 2-3 for the pixels of a block that tier 1 did not certify.

    NaN outputs for non-finite pixels. The others are gathered into `work` (rows x0..x3 and
    rss) and each active set is tried on all of them at once, which vectorises (a per-pixel
    search would branch unpredictably at every step): first the sets fixing two
    coefficients (nearly all these pixels end there), then three, and so on for the pixels
    left. A pixel takes the first set that certifies it (into `label`, an array apart from
    `work` so that the compiler can tell them apart). In exact arithmetic exactly one set is
    certified (the problem is strictly convex); two can pass at a tie within rounding, and
    then either is the optimum up to rounding. Pixels with no certified set (rounding at a
    tie) are solved by brute force; returns their number.
    """
    h = 0
    for t in range(e):
        if ok[t]:
            continue
        rss = 0.0
        for q in range(4, 4 + n - k):
            rss += y[q, t] * y[q, t]
        x0, x1, x2, x3 = y[0, t], y[1, t], y[2, t], y[3, t]  # x3 = 0 when k == 3
        if not (x0 - x0) + (x1 - x1) + (x2 - x2) + (x3 - x3) + rss <= _HUGE:
            for i in range(4):
                c[i, t] = np.nan
            ms[t] = np.nan
            continue
        work[0, h] = x0
        work[1, h] = x1
        work[2, h] = x2
        work[3, h] = x3
        work[4, h] = rss
        label[h] = -1.0  # no set certified yet
        index[h] = t
        h += 1
    # Search stage s tries the sets fixing s + 2 coefficients (tier 1 tried those fixing none
    # or one), so that pixels settled early are not tried again; a last stage without a
    # search leaves the pixels still without a set to the brute force.
    stages = nc - 1 if search else 0
    fallbacks = 0
    for stage in range(stages + 1):
        searching = stage < stages
        for mask in range(3, 1 << nc if searching else 0):
            if (mask & 1) + (mask >> 1 & 1) + (mask >> 2 & 1) + (mask >> 3 & 1) != stage + 2:
                continue
            # The set's check rows as scalars, which the compiler keeps in registers.
            s0, s1, s2, s3 = (
                solve[mask, 4, 0],
                solve[mask, 4, 1],
                solve[mask, 4, 2],
                solve[mask, 4, 3],
            )
            s4, s5, s6, s7 = (
                solve[mask, 5, 0],
                solve[mask, 5, 1],
                solve[mask, 5, 2],
                solve[mask, 5, 3],
            )
            s8, s9, sa, sb = (
                solve[mask, 6, 0],
                solve[mask, 6, 1],
                solve[mask, 6, 2],
                solve[mask, 6, 3],
            )
            sc, sd, se, sf = (
                solve[mask, 7, 0],
                solve[mask, 7, 1],
                solve[mask, 7, 2],
                solve[mask, 7, 3],
            )
            this = float(mask)
            for u in range(h):
                x0, x1, x2, x3 = work[0, u], work[1, u], work[2, u], work[3, u]
                v0 = s0 * x0 + s1 * x1 + s2 * x2 + s3 * x3
                v1 = s4 * x0 + s5 * x1 + s6 * x2 + s7 * x3
                v2 = s8 * x0 + s9 * x1 + sa * x2 + sb * x3
                v3 = sc * x0 + sd * x1 + se * x2 + sf * x3
                take = (v0 >= 0.0) & (v1 >= 0.0) & (v2 >= 0.0) & (v3 >= 0.0) & (label[u] < 0.0)
                label[u] = this if take else label[u]
        # Settle: write out the pixels that have a set; keep the others at the front of
        # `work` for the next stage, or after the last solve them by brute force.
        kept = 0
        for u in range(h):
            x0, x1, x2, x3 = work[0, u], work[1, u], work[2, u], work[3, u]
            mask = int(label[u])
            if mask < 0:
                if searching:
                    for r in range(5):
                        work[r, kept] = work[r, u]
                    index[kept] = index[u]
                    label[kept] = -1.0
                    kept += 1
                    continue
                mask = _brute_force(solve, nc, x0, x1, x2, x3)
                fallbacks += 1
            c0, c1, c2, c3, v0, v1, v2, v3 = _set_solution(solve, mask, x0, x1, x2, x3)
            t = index[u]
            c[0, t] = c0
            c[1, t] = c1
            c[2, t] = c2
            c[3, t] = c3
            objective = _fixed_objective(mask, x0, x1, x2, x3, v0, v1, v2, v3)
            ms[t] = work[4, u] + max(objective / n, 0.0)
        h = kept
        if h == 0:
            break
    return fallbacks


@numba.njit(inline="always")
def _brute_force(solve, nc, x0, x1, x2, x3):  # pragma: no cover - compiled
    """The feasible set with the smallest objective.

    Exact whatever the rounding or degeneracy: the all-fixed set is always feasible, the
    optimum is one of the set solutions, and any other feasible point costs more.
    """
    best = np.inf
    best_mask = 0
    for mask in range(1 << nc):
        _, _, _, _, v0, v1, v2, v3 = _set_solution(solve, mask, x0, x1, x2, x3)
        negative = int(v0 < 0.0) | int(v1 < 0.0) << 1 | int(v2 < 0.0) << 2 | int(v3 < 0.0) << 3
        if (negative & ~mask) == 0:  # feasible: every free constrained c_j >= 0
            objective = _fixed_objective(mask, x0, x1, x2, x3, v0, v1, v2, v3)
            if objective < best:
                best = objective
                best_mask = mask
    return best_mask


@numba.njit(inline="always")
def _write(c, ms, coef, resid, e, k, components_inner):  # pragma: no cover - compiled
    # Adding 0.0 turns the -0.0 of fixed coefficients into +0.0.
    if components_inner:  # (m, k) storage: one pixel's coefficients are adjacent
        for t in range(e):
            for i in range(k):
                coef[i, t] = c[i, t] + 0.0
    else:
        for i in range(k):
            for t in range(e):
                coef[i, t] = c[i, t] + 0.0
    for t in range(e):
        ms[t] = np.sqrt(ms[t])  # contiguous: vectorised
    for t in range(e):
        resid[t] = ms[t]


def _kernel_source(
    a, weights, fix, fix_objective, solve, k, nc, search, block, coef, resid, lo, hi
):  # pragma: no cover - compiled
    """Solve pixels lo..hi-1 (flat over the groups and pixels of `a`, (groups, n, m)).

    Writes coef (groups, k, m) and resid (groups, m); returns the number of pixels that
    needed the brute-force fallback.
    """
    n = a.shape[1]
    m = a.shape[2]
    nb = weights.shape[1]
    # Work buffers, reused block after block. Rows a little longer than the block, so that
    # they are not a multiple of 4 KiB apart (x86 stalls loads that seem to alias a store
    # 4 KiB away).
    stride = block + 8
    buf = np.zeros((nb, stride))  # bands n..nb-1 stay zero: the padding
    y = np.zeros((4 + n - k, stride))  # x padded to 4 rows, then the residual rows
    c = np.empty((4, stride))
    ms = np.empty(stride)
    ok = np.empty(stride, dtype=np.bool_)
    work = np.empty((5, stride))
    label = np.empty(stride)
    index = np.empty(stride, dtype=np.int64)
    bands_inner = a.strides[1] < a.strides[2]
    components_inner = coef.strides[1] < coef.strides[2]
    fallbacks = 0
    g = lo // m
    start = lo - g * m
    todo = hi - lo
    while todo > 0:
        e = min(block, m - start, todo)
        # Views of this block: indices from 0, which the compiler can prove non-negative (an
        # offset index may wrap around, which would keep the loops from vectorising).
        src = a[g, :, start : start + e]
        # Gather (transposing if need be) and widen the block into float64 rows; a constant
        # band count lets the compiler vectorise the transposing gather.
        if bands_inner and n == 4:
            _widen(src, e, buf, 4, True)
        elif bands_inner and n == 6:
            _widen(src, e, buf, 6, True)
        else:
            _widen(src, e, buf, n, bands_inner)
        if nb == 4:
            _project(buf, weights, k, y, e, 4)
        elif nb == 6:
            _project(buf, weights, k, y, e, 6)
        elif nb == 8:
            _project(buf, weights, k, y, e, 8)
        else:
            _project(buf, weights, k, y, e, nb)
        # Mean square residual of x.
        for t in range(e):
            ms[t] = 0.0
        for q in range(4, 4 + n - k):
            for t in range(e):
                ms[t] += y[q, t] * y[q, t]
        if _tier1(y, fix, fix_objective, nc, c, ms, ok, e) < e:
            fallbacks += _tier2(y, k, nc, n, solve, search, c, ms, ok, e, work, label, index)
        out_c = coef[g, :, start : start + e]
        out_r = resid[g, start : start + e]
        _write(c, ms, out_c, out_r, e, k, components_inner)
        todo -= e
        start += e
        if start == m:
            g += 1
            start = 0
    return fallbacks


@functools.cache
def _compiled_kernel(dtype: np.dtype) -> Any:
    """The kernel for spectra of this dtype (float32 or float64), compiled on first use.

    The explicit signature (any memory layout, read-only spectra) makes one compiled version
    serve every layout of the arguments; only dtypes actually used get compiled.
    """
    from numba import types

    plan_2d = types.Array(types.float64, 2, "C", readonly=True)
    i8 = types.int64
    signature = i8(
        types.Array(numba.from_dtype(dtype), 3, "A", readonly=True),
        plan_2d,
        plan_2d,
        types.Array(types.float64, 1, "C", readonly=True),
        types.Array(types.float64, 3, "C", readonly=True),
        i8,
        i8,
        i8,
        i8,
        types.Array(types.float32, 3, "A"),
        types.Array(types.float32, 2, "A"),
        i8,
        i8,
    )
    try:
        return numba.njit([signature], cache=True, nogil=True, error_model="numpy")(_kernel_source)
    except RuntimeError:  # no writable cache location (numba's "no locator available")
        return numba.njit([signature], nogil=True, error_model="numpy")(_kernel_source)


def normalise_coefficients(coefficients: np.ndarray) -> np.ndarray:
    """Illumination-normalised coefficients: each divided by ``uCw + uCv + uCs``.

    Dividing by the sum of the standard coefficients removes brightness differences caused by
    shading (UPDM-method section 6). The supplementary ``uC4`` column, when present, is divided
    by the same sum.

    Parameters
    ----------
    coefficients : numpy.ndarray, shape (..., k)
        Coefficients from :func:`nnls_decompose`, component axis last, ``k`` is 3 or 4.

    Returns
    -------
    numpy.ndarray, shape (..., k)
        Normalised coefficients in the input's floating dtype (float32 for integer input);
        NaN where the sum is 0 or any input coefficient is NaN.

    Raises
    ------
    DecompositionError
        If the last axis does not have 3 or 4 entries or the dtype is not real numeric.
    """
    c = np.asarray(coefficients)
    if c.dtype.kind not in "fiu":
        raise DecompositionError(f"coefficients must be real numbers, got dtype {c.dtype}")
    if c.ndim < 1 or c.shape[-1] not in (3, 4):
        raise DecompositionError(
            f"coefficients must have 3 or 4 entries along the last axis, got shape {c.shape}"
        )
    return _normalise_along(c, c.ndim - 1)


def _normalise_along(c: np.ndarray, axis: int) -> np.ndarray:
    out_dtype = c.dtype if c.dtype.kind == "f" else np.dtype(np.float32)
    standard = np.take(c, range(_N_STANDARD), axis=axis).astype(np.float64)
    total = standard.sum(axis=axis, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = c / np.where(total == 0, np.nan, total)
    return out.astype(out_dtype, copy=False)


# --------------------------------------------------------------------------------------------
# Dask wrapper
# --------------------------------------------------------------------------------------------


def _decompose_block(
    block: np.ndarray, patterns: np.ndarray, axis: int, constrain_supplementary: bool
) -> np.ndarray:
    """One chunk: coefficients and residual stacked along the (former) band axis."""
    k = patterns.shape[1]
    if axis == 0:
        # The usual (band, y, x) chunk: the kernel fills the stacked array directly.
        stacked = np.empty((k + 1, *block.shape[1:]), dtype=np.float32)
        _decompose_along(
            block, patterns, 0, constrain_supplementary, out=(stacked[:k], stacked[k, ...])
        )
        return stacked
    coef, resid = _decompose_along(block, patterns, axis, constrain_supplementary)
    return np.concatenate([coef, np.expand_dims(resid, axis)], axis=axis)


def decompose_array(
    spectra: Any,
    patterns: Any,
    *,
    band_axis: int = 0,
    constrain_supplementary: bool = False,
) -> tuple[Any, Any]:
    """Lazy decomposition of a dask array whose band axis is one chunk.

    Parameters
    ----------
    spectra : dask.array.Array
        Floating-point spectra with the bands along `band_axis`, e.g. (band, y, x). The band
        axis must be a single chunk.
    patterns : array_like, shape (n_bands, k)
        Band patterns as for :func:`nnls_decompose`.
    band_axis : int, default 0
        Axis of `spectra` holding the bands (negative values count from the end).
    constrain_supplementary : bool, default False
        See :func:`nnls_decompose`.

    Returns
    -------
    coefficients : dask.array.Array, float32
        Same shape as `spectra` except ``k`` components where the bands were.
    residual : dask.array.Array, float32
        `spectra`'s shape without the band axis.

    Raises
    ------
    DecompositionError
        Bad patterns, band count or dtype (as for :func:`nnls_decompose`), a `band_axis`
        out of range, or a band axis split over several chunks.
    """
    import dask.array as da
    from dask.base import tokenize

    if not isinstance(spectra, da.Array):
        raise DecompositionError(
            f"spectra must be a dask.array.Array, got {type(spectra).__name__}; use "
            f"nnls_decompose for numpy arrays"
        )
    _check_spectra_dtype(spectra.dtype)
    ndim = spectra.ndim
    if not -ndim <= band_axis < ndim:
        raise DecompositionError(
            f"band_axis={band_axis} is out of range for spectra with {ndim} dimensions"
        )
    axis = band_axis % ndim
    p = _as_patterns(patterns)
    _check_band_count(spectra.shape[axis], p, f"axis {axis}")
    band_chunks = spectra.chunks[axis]
    if len(band_chunks) != 1:
        raise DecompositionError(
            f"the band axis (axis {axis}) of spectra is split into chunks {band_chunks}; all "
            f"bands must be in one chunk: rechunk first, e.g. spectra.rechunk({{{axis}: -1}})"
        )
    k = p.shape[1]
    flag = bool(constrain_supplementary)
    chunks = (*spectra.chunks[:axis], (k + 1,), *spectra.chunks[axis + 1 :])
    name = "updm-decompose-" + tokenize(spectra.name, p, axis, flag)
    stacked = da.map_blocks(
        _decompose_block,
        spectra,
        patterns=p,
        axis=axis,
        constrain_supplementary=flag,
        dtype=np.float32,
        chunks=chunks,
        meta=np.empty((0,) * ndim, dtype=np.float32),
        name=name,
    )
    # Two named views of the one kernel task per chunk (blockwise, so they fuse with it).
    meta = np.empty((0,) * ndim, dtype=np.float32)
    coefficients = stacked.map_blocks(
        _take,
        slice(0, k),
        axis,
        dtype=np.float32,
        chunks=(*spectra.chunks[:axis], (k,), *spectra.chunks[axis + 1 :]),
        meta=meta,
        name=name.replace("updm-decompose-", "updm-decompose-coefficients-"),
    )
    residual = stacked.map_blocks(
        _take,
        k,
        axis,
        dtype=np.float32,
        drop_axis=axis,
        meta=np.empty((0,) * (ndim - 1), dtype=np.float32),
        name=name.replace("updm-decompose-", "updm-decompose-residual-"),
    )
    return coefficients, residual


# --------------------------------------------------------------------------------------------
# Labelled API
# --------------------------------------------------------------------------------------------


def _pattern_matrix(patterns: Any, bands: list[Hashable]) -> np.ndarray:
    """The (band, pattern) matrix of `patterns` reordered to the given band labels."""
    import xarray as xr

    if not isinstance(patterns, xr.DataArray):
        raise DecompositionError(
            f"patterns must be an xarray.DataArray with dims (band, pattern), got "
            f"{type(patterns).__name__}"
        )
    if set(patterns.dims) != {"band", "pattern"}:
        raise DecompositionError(
            f"patterns must have dims (band, pattern), got {tuple(patterns.dims)}"
        )
    if "band" not in patterns.coords:
        raise DecompositionError("patterns have no 'band' coordinate to align bands by label")
    wanted = [str(b) for b in bands]
    have = [str(b) for b in patterns["band"].values]
    if sorted(wanted) != sorted(have) or len(set(have)) != len(have):
        missing = [b for b in wanted if b not in have]
        extra = [b for b in have if b not in wanted]
        raise DecompositionError(
            f"band labels of reflectance {wanted} and patterns {have} differ (missing from "
            f"patterns: {missing}; not in reflectance: {extra}); select matching bands first"
        )
    position = {label: i for i, label in enumerate(have)}
    matrix = np.asarray(patterns.transpose("band", "pattern").values)
    return matrix[[position[b] for b in wanted]]


def _pattern_provenance(patterns: Any, matrix: np.ndarray) -> dict[str, str]:
    attrs = dict(patterns.attrs)
    name = attrs.get("pattern_set", patterns.name if patterns.name is not None else "unnamed")
    digest = attrs.get("pattern_set_sha256")
    if digest is None:
        # No recorded hash: fall back to one over the matrix actually used (float64, bands in
        # the reflectance's order), so the result still names its patterns unambiguously.
        digest = hashlib.sha256(np.ascontiguousarray(matrix, dtype="<f8").tobytes()).hexdigest()
    return {"pattern_set": str(name), "pattern_set_sha256": str(digest)}


def decompose(
    reflectance: Any,
    patterns: Any,
    *,
    constrain_supplementary: bool = False,
    normalise: bool = False,
) -> Any:
    """Decompose labelled reflectance into UPDM coefficients (lazy for dask-backed input).

    Parameters
    ----------
    reflectance : xarray.DataArray
        Floating-point reflectance with a ``band`` dimension and coordinate (any other dims,
        e.g. (band, y, x)); numpy- or dask-backed (all bands in one chunk).
    patterns : xarray.DataArray
        Band patterns with dims (band, pattern); columns in the order water, vegetation,
        soil[, supplementary]. Bands are matched to `reflectance` by label (compared as
        strings), whatever their order.
    constrain_supplementary : bool, default False
        See :func:`nnls_decompose`: by default ``uC4`` is free in sign.
    normalise : bool, default False
        Also return the illumination-normalised coefficients ``uCw_norm`` ... (each divided by
        ``uCw + uCv + uCs``).

    Returns
    -------
    xarray.Dataset
        Variables ``uCw``, ``uCv``, ``uCs`` (``uC4`` with 4 patterns) and ``residual``
        (float32, the dims of `reflectance` without ``band``), plus ``*_norm`` when asked.
        Attributes ``pattern_set``, ``pattern_set_sha256`` (from ``patterns.attrs``; a hash
        of the matrix used when absent) and ``constrain_supplementary`` (0 or 1).

    Raises
    ------
    DecompositionError
        No ``band`` dim, mismatching band labels, bad patterns or spectra (see
        :func:`nnls_decompose`).
    """
    import dask.array as da
    import xarray as xr

    if not isinstance(reflectance, xr.DataArray):
        raise DecompositionError(
            f"reflectance must be an xarray.DataArray, got {type(reflectance).__name__}"
        )
    if "band" not in reflectance.dims:
        raise DecompositionError(
            f"reflectance must have a 'band' dimension, got dims {tuple(reflectance.dims)}"
        )
    if "band" not in reflectance.coords:
        raise DecompositionError("reflectance has no 'band' coordinate to align bands by label")
    matrix = _pattern_matrix(patterns, list(reflectance["band"].values))
    p = _as_patterns(matrix)
    k = p.shape[1]
    axis = reflectance.get_axis_num("band")
    data = reflectance.data
    _check_spectra_dtype(data.dtype)
    if isinstance(data, da.Array):
        coef, resid = decompose_array(
            data, p, band_axis=axis, constrain_supplementary=constrain_supplementary
        )
    else:
        coef, resid = _decompose_along(np.asarray(data), p, axis, constrain_supplementary)

    dims = tuple(d for d in reflectance.dims if d != "band")
    coords = {name: coord for name, coord in reflectance.coords.items() if "band" not in coord.dims}
    pattern_labels = (
        [str(v) for v in patterns["pattern"].values]
        if "pattern" in patterns.coords
        else [str(j) for j in range(k)]
    )
    units = reflectance.attrs.get("units")
    variables: dict[str, Any] = {}
    for j, name in enumerate(COEFFICIENT_NAMES[:k]):
        variables[name] = xr.Variable(
            dims,
            _take(coef, j, axis),
            attrs={
                "long_name": f"UPDM coefficient of pattern {pattern_labels[j]!r}",
                "units": "1",
                "pattern": pattern_labels[j],
            },
        )
    variables["residual"] = xr.Variable(
        dims,
        resid,
        attrs={
            "long_name": "root-mean-square residual of the UPDM fit over bands",
            **({"units": units} if units is not None else {}),
        },
    )
    if normalise:
        if isinstance(coef, da.Array):
            from dask.base import tokenize

            norm = da.map_blocks(
                _normalise_along,
                coef,
                axis=axis,
                dtype=np.float32,
                meta=np.empty((0,) * coef.ndim, dtype=np.float32),
                name="updm-normalise-" + tokenize(coef.name, axis),
            )
        else:
            norm = _normalise_along(coef, axis)
        for j, name in enumerate(COEFFICIENT_NAMES[:k]):
            variables[f"{name}_norm"] = xr.Variable(
                dims,
                _take(norm, j, axis),
                attrs={"long_name": f"{name} / (uCw + uCv + uCs)", "units": "1"},
            )
    attrs = {
        **_pattern_provenance(patterns, matrix),
        "constrain_supplementary": int(bool(constrain_supplementary)),
    }
    return xr.Dataset(variables, coords=coords, attrs=attrs)


def _take(array: Any, j: int | slice, axis: int) -> Any:
    """``array[..., j, ...]`` with `j` at `axis`."""
    index: list[Any] = [slice(None)] * array.ndim
    index[axis] = j
    return array[tuple(index)]
