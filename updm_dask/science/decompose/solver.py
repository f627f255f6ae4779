"""The NNLS solver behind :func:`~updm_dask.science.decompose.nnls_decompose`.

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
import math
import multiprocessing
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .compiled import compiled_kernel

#: Number of standard (always non-negative) patterns: water, vegetation, soil.
N_STANDARD = 3

# Pixels per block of the compiled kernel: its ~25 float64 work rows of this length stay in
# the L1/L2 caches (1024 measured 10-20 % slower).
_BLOCK = 256

# Tier 2 searches the active sets for the certified one; False leaves every pixel tier 1 does
# not certify to the brute force (tests use it to check that fallback alone).
_SEARCH_CERTIFIED = True

# Pixels per task when a large input is split over threads: enough to make the ~20 us cost of
# a task negligible, few enough to balance the load on a busy machine.
_THREAD_CHUNK = 1 << 16

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
    nc = k if constrain_supplementary else min(k, N_STANDARD)

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


def decompose_along(
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
    kernel = compiled_kernel(a3.dtype)
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
