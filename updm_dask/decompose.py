"""Decomposition, eqs. (8)-(11): exact non-negative least squares against the band patterns.

Every pixel's spectrum ``A`` (n bands) is written as ``A ~= P c`` where ``P`` (n bands x k
patterns) holds the sensor's band patterns, columns in the order water, vegetation, soil and
optionally the supplementary pattern. The note's condition (9) asks ``uCw, uCv, uCs >= 0``; the
supplementary coefficient ``uC4`` is free in sign unless asked otherwise (see
:func:`nnls_decompose`).

Three tiers, as everywhere in the package:

* :func:`nnls_decompose` and :func:`normalise_coefficients` are numpy kernels (spectral axis
  last by default, any axis allowed) where correctness and speed live;
* :func:`decompose_array` maps the kernel over a dask array with the band axis in one chunk;
* :func:`decompose` is the labelled API: xarray in, :class:`xarray.Dataset` out.

How the kernel finds the exact optimum
--------------------------------------
``P`` is the same for every pixel and tiny, so everything that depends on it alone is computed
once per matrix (:func:`_plan`, cached). Let ``x = P^+ A`` be the unconstrained least-squares
solution and ``U`` an orthonormal basis of the orthogonal complement of ``range(P)``. For any c

    ||A - P c||^2 = ||U^T A||^2 + (x - c)^T G (x - c),      G = P^T P,

so each pixel's n-band problem is a k-dimensional one in ``x`` alone, and both terms are sums of
squares (no ``||A||^2 - ...`` cancellation). Products with two fixed matrices give ``x`` and
``U^T A`` for a whole block of pixels.

The optimum is the least-squares solution with some set ``S`` of constrained coefficients fixed
at zero. With ``H = G^-1`` (the covariance of x) that solution is

    mu = (H_SS)^-1 x_S,    c = x - H[:, S] mu  (so c_S = 0),    extra objective x_S^T mu,

and the problem being strictly convex (``P`` has full column rank), it is THE optimum exactly
when the KKT conditions hold: ``mu <= 0`` (the multipliers of the fixed bounds have the right
sign) and ``c >= 0`` on the other constrained entries. Evaluating every subset ``S`` and keeping
the feasible solution with the smallest objective is exact too, but costs 2**nc products per
pixel; certifying one well-chosen ``S`` costs one. The kernel therefore proposes an ``S`` per
pixel and certifies it:

1. Tier 1, every pixel at once: ``S`` = the one negative constrained entry of ``x``, if there is
   exactly one (``S`` empty where x is feasible). Then ``mu_j = x_j / H_jj < 0`` holds by
   construction, ``c = x - x_j H[:, j] / H_jj`` is one small product for all pixels, and the
   pixel is certified if the other constrained ``c_i >= 0``. On realistic data this settles
   all feasible pixels and most infeasible ones (typically 70-95 %).
2. Tier 2, the rest (several negative entries, or a failed certificate), batched across blocks:
   primal-dual active-set rounds, pixels grouped by ``S`` so that each group is one product;
   each round fixes the free coefficients that went negative and frees the fixed ones whose
   multiplier has the wrong sign, until KKT holds.
3. Pixels still uncertified after a few rounds (cycling, ties, rounding at the boundary) get
   that brute force answer, which cannot fail: the all-fixed subset is always feasible.

Precision: arithmetic is float64 (inputs are widened block by block in a reused buffer) and
outputs are float32. float32 arithmetic would lose the 1e-5 relative accuracy on small
coefficients of bright pixels: the rounding error of ``P^+ A`` scales with ``|A|``, not with the
coefficient, and the coefficients that matter most for NNLS are the small ones.

Speed: numpy spends ~1 us per call and several times more per element on strided or
short-inner-axis arrays than on contiguous rows, so the kernel works on blocks of tens of
thousands of pixels stored component-major (every elementwise step is a contiguous row), reuses
its buffers, keeps its matrix products small enough for single-threaded BLAS (see
:class:`_BlockSolver`), and has no per-pixel Python loop. ``benchmarks/bench_kernel.py``
measures it against a per-pixel ``scipy.optimize.nnls`` loop and against a bare float32
least-squares product.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.linalg.blas import dgemm as _dgemm

from .errors import DecompositionError

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

# Pixels per block (rounded down to whole sub-blocks, see _BlockSolver). Large enough to spread
# numpy's per-call overhead (some 40 calls a block) thinly, small enough that the ~25 float64
# rows of work buffers stay cache resident (smaller and larger blocks both measured slower).
_BLOCK = 32768

# Pixels left to tier 2 are batched across blocks (their numpy calls are many but small) up to
# this many before being solved, which bounds the memory they hold.
_PENDING_LIMIT = 1 << 16

# Primal-dual active-set rounds of tier 2 before the brute-force fallback.
_ACTIVE_SET_ROUNDS = 3

# Condition number above which patterns count as numerically rank-deficient: beyond it the
# float32 rounding of the spectra alone (relative 6e-8) could move a coefficient by more than
# 6 % of the spectrum's scale, so the decomposition would carry no information.
_MAX_CONDITION = 1e6

# (rows, coefficients (h, k), extra mean square residual (h,) or 0.0)
_Writer = Callable[[np.ndarray, np.ndarray, Any], None]


@dataclass(frozen=True)
class _Plan:
    """Everything that depends on the pattern matrix only, precomputed once per matrix.

    Active sets ``S`` are bitmasks over the constrained columns 0..nc-1 (bit j set: column j
    fixed at zero).
    """

    n_bands: int
    n_patterns: int
    n_constrained: int
    # (n, k): a @ pinv_t = x for spectra as rows.
    pinv_t: np.ndarray
    # (k + r [+ 1], n): pinv and side stacked, for spectra as columns.
    stacked: np.ndarray
    # (r [+ 1], n): the r = n - k rows of U^T / sqrt(n), whose products with a square-sum to
    # the mean square residual of x; then a row of ones (band sum), present only when some
    # band has no weight in those r rows (always when n == k), which makes every non-finite
    # band visible whatever the BLAS does with exact zeros.
    side: np.ndarray
    n_residual: int
    has_detector: bool
    # Tier 1, (nc, 1 + k), Fortran order as BLAS takes it: neg @ single_fix, with
    # neg = min(x_C, 0) having one negative entry j, gives in column 0 a value t whose square
    # is the extra mean square residual x_j**2 / (H_jj n), and in columns 1..k the change of x
    # that fixes c_j at zero.
    single_fix: np.ndarray
    # Tier 2, per active set, (k, k + 2|S|) applied as x @ solve: columns 0..k-1 give the
    # coefficients (fixed ones are zero columns), the next |S| give -mu, the last |S| give o
    # with ||o||^2 the extra mean square residual.
    solve: tuple[np.ndarray, ...]
    # Per active set: for each constrained j, the column of `solve` that must be >= 0 at the
    # optimum (c_j when j is free, -mu_j when fixed): the KKT test.
    checks: tuple[tuple[int, ...], ...]
    objective_cols: tuple[slice, ...]
    # Brute force: (k, n_sets * k) coefficients of every active set, and (k, n_sets * nc) its
    # objective columns zero-padded to nc per set.
    all_coef: np.ndarray
    all_objective: np.ndarray


def _plan(patterns: np.ndarray, constrain_supplementary: bool) -> _Plan:
    key = (patterns.shape, patterns.tobytes(), bool(constrain_supplementary))
    return _plan_cached(key)


@functools.lru_cache(maxsize=32)
def _plan_cached(key: tuple[tuple[int, ...], bytes, bool]) -> _Plan:
    shape, raw, constrain_supplementary = key
    p = np.frombuffer(raw, dtype=np.float64).reshape(shape)
    n, k = shape
    nc = k if constrain_supplementary else min(k, _N_STANDARD)

    u_full, _, _ = np.linalg.svd(p, full_matrices=True)
    pinv = np.linalg.pinv(p)
    residual_rows = u_full[:, k:].T / np.sqrt(n)
    has_detector = k == n or bool((residual_rows == 0).all(axis=0).any())
    side = np.vstack([residual_rows, np.ones((1, n))]) if has_detector else residual_rows

    h = pinv @ pinv.T  # (P^T P)^-1, the covariance of x
    single_fix = np.zeros((nc, k + 1))
    for j in range(nc):
        single_fix[j, 0] = 1.0 / np.sqrt(h[j, j] * n)
        single_fix[j, 1:] = -h[:, j] / h[j, j]
        single_fix[j, 1 + j] = -1.0  # exactly, so that c_j = x_j - x_j = 0 exactly

    n_sets = 1 << nc
    solve, checks, objective_cols = [], [], []
    all_coef = np.zeros((k, n_sets, k))
    all_objective = np.zeros((k, n_sets, nc))
    for mask in range(n_sets):
        fixed = [j for j in range(nc) if mask >> j & 1]
        free = [j for j in range(k) if j not in fixed]
        s = len(fixed)
        matrix = np.zeros((k, k + 2 * s))
        if free:
            # c_F = P_F^+ P x: the least-squares fit on the free columns, written in x.
            matrix[:, free] = (np.linalg.pinv(p[:, free]) @ p).T
        if fixed:
            h_ss_inv = np.linalg.inv(h[np.ix_(fixed, fixed)])
            h_ss_inv = (h_ss_inv + h_ss_inv.T) / 2
            matrix[np.ix_(fixed, range(k, k + s))] = -h_ss_inv
            # Extra objective x_S^T (H_SS)^-1 x_S = ||L^T x_S||^2, divided by n for a mean.
            lower = np.linalg.cholesky(h_ss_inv) / np.sqrt(n)
            matrix[np.ix_(fixed, range(k + s, k + 2 * s))] = lower
            all_objective[np.ix_(fixed, [mask], range(s))] = lower[:, None, :]
        all_coef[:, mask, :] = matrix[:, :k]
        solve.append(np.ascontiguousarray(matrix))
        checks.append(tuple(k + fixed.index(j) if j in fixed else j for j in range(nc)))
        objective_cols.append(slice(k + s, k + 2 * s))
    plan = _Plan(
        n_bands=n,
        n_patterns=k,
        n_constrained=nc,
        pinv_t=np.ascontiguousarray(pinv.T),
        stacked=np.ascontiguousarray(np.vstack([pinv, side])),
        side=np.ascontiguousarray(side),
        n_residual=n - k,
        has_detector=has_detector,
        single_fix=np.asfortranarray(single_fix),
        solve=tuple(solve),
        checks=tuple(checks),
        objective_cols=tuple(objective_cols),
        all_coef=all_coef.reshape(k, n_sets * k),
        all_objective=all_objective.reshape(k, n_sets * nc),
    )
    # Cached and shared between threads (dask runs the kernel on many chunks at once).
    for value in vars(plan).values():
        for array in value if isinstance(value, tuple) else (value,):
            if isinstance(array, np.ndarray):
                array.flags.writeable = False
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
    describes the method: one fixed matrix product per pixel, a closed-form KKT-certified
    solution for pixels breaking one bound, and an active-set solve for the few others.
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
    pixel_major = m_trail == 1
    if pixel_major:
        # Bands last: the pixels are the rows of one (m, n) matrix, seen transposed.
        a3 = a.reshape(1, m_lead, n).transpose(0, 2, 1)
        c3 = _reshaped_view(coefficients, (1, m_lead, k)).transpose(0, 2, 1)
        r2 = _reshaped_view(residual, (1, m_lead))
    else:
        # Bands first (n, y, x) or in the middle: each leading index is an (n, pixels)
        # matrix, solved without transposing the data.
        a3 = a.reshape(m_lead, n, m_trail)
        c3 = _reshaped_view(coefficients, (m_lead, k, m_trail))
        r2 = _reshaped_view(residual, (m_lead, m_trail))
    solver = _BlockSolver(plan, c3, r2, a3.shape[2])
    # inf * 0 in the non-finite screening is meant; NaN outputs are the documented result.
    with np.errstate(invalid="ignore", over="ignore"):
        for g in range(a3.shape[0]):
            solver.run(a3[g], g, pixel_major)
        solver.flush()
    return coefficients, residual


# OpenBLAS runs a product on several threads when m * n * k exceeds 4 * 65536 (see
# _BlockSolver for why that must be avoided here); products are issued in pieces below it.
_BLAS_SERIAL_SIZE = 4 * 65536


def _matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a @ b, in slices along its longest axis small enough for single-threaded BLAS."""
    m, inner = a.shape
    n = b.shape[1]
    if out is None:
        out = np.empty((m, n), dtype=np.result_type(a, b))
    if m * n * inner <= _BLAS_SERIAL_SIZE:
        return np.matmul(a, b, out=out)
    if n >= m:
        step = max(_BLAS_SERIAL_SIZE // (m * inner), 1)
        for lo in range(0, n, step):
            np.matmul(a, b[:, lo : lo + step], out=out[:, lo : lo + step])
    else:
        step = max(_BLAS_SERIAL_SIZE // (n * inner), 1)
        for lo in range(0, m, step):
            np.matmul(a[lo : lo + step], b, out=out[lo : lo + step])
    return out


def _reshaped_view(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """`array` reshaped, guaranteed a view: the kernel writes its results through it."""
    view = array.reshape(shape)
    if view.size and not np.may_share_memory(view, array):
        raise ValueError(f"cannot write through a reshape of {array.shape} to {shape}")
    return view


class _BlockSolver:
    """The kernel's loop over blocks of pixels, with reused float64 buffers.

    Per block: widen the spectra to float64; products give x and the residual rows; tier 1
    runs on every pixel (c = x where x is feasible); pixels it does not certify are set aside
    for tier 2 (:meth:`flush`, after the block has been written, overwrites them).

    Layout. Everything between input and output is stored component-major, so that every
    elementwise step runs over contiguous rows: numpy is several times slower on strided rows
    or on arrays with a short inner axis. A block is further cut into sub-blocks, stored
    (sub-block, row, pixel), each small enough that its matrix products stay under OpenBLAS's
    multithreading size: threaded BLAS helps nothing on these thin products and its workers
    keep spinning afterwards, taking the CPU from the numpy steps in between (measured up to
    3x slower). Elementwise steps still run once per block, over 3-D views. Spectra stored
    pixel-major (bands last) reach this layout through the products, which read transposed
    views at no cost; only their coefficients need a transposing write at the end.
    """

    def __init__(self, plan: _Plan, out_c: np.ndarray, out_r: np.ndarray, m: int) -> None:
        self.plan = plan
        self.out_c = out_c  # (groups, k, m), a view in any storage order
        self.out_r = out_r  # (groups, m)
        n, k, nc = plan.n_bands, plan.n_patterns, plan.n_constrained
        rows = 1 + plan.stacked.shape[0]  # tier 1's objective term t, x, side
        sub = _BLAS_SERIAL_SIZE // max(plan.stacked.shape[0] * n, nc * (k + 1))
        sub = max(256, sub - sub % 256)
        n_sub = max(1, _BLOCK // sub)
        if m < sub * n_sub:  # small inputs need small buffers
            n_sub = max(1, -(-m // sub))
            sub = min(sub, max(m, 1))
        self.sub, self.n_sub = sub, n_sub
        self._buf = np.empty(n * sub * n_sub)
        self._work = np.empty((n_sub, rows, sub))
        self._neg = np.empty((n_sub, nc, sub))
        self._negative = np.empty((n_sub, nc, sub), dtype=bool)
        self._count = np.empty((n_sub, sub), dtype=np.uint8)
        self._rss = np.empty((n_sub, sub))
        self._total = np.empty((n_sub, sub))
        self._low = np.empty((n_sub, sub))
        self._ok = np.empty((n_sub, sub), dtype=bool)
        self._zeros = np.zeros((n_sub, sub))  # the residual when n_bands == k (never written)
        # Pixels tier 1 did not certify: (x (h, k), rss (h,), group, pixel indices).
        self._pending: list[tuple[np.ndarray, np.ndarray, int, np.ndarray]] = []
        self.n_pending = 0

    def run(self, a: np.ndarray, group: int, pixel_major: bool) -> None:
        """Spectra (n, m) of one group -> outputs; :meth:`flush` must follow the last call.

        `pixel_major` says that `a` is a transposed view of (m, n) storage.
        """
        out_c, out_r = self.out_c[group], self.out_r[group]
        plan = self.plan
        n, k, nc, r = plan.n_bands, plan.n_patterns, plan.n_constrained, plan.n_residual
        sub = self.sub
        block = sub * self.n_sub
        for start in range(0, a.shape[1], block):
            stop = min(start + block, a.shape[1])
            e = stop - start
            ns = -(-e // sub)  # sub-blocks in use; the last may be partly filled
            if pixel_major:
                buf = self._buf[: n * e].reshape(e, n)
                np.copyto(buf, a[:, start:stop].T)
                columns = buf.T
            else:
                buf = self._buf[: n * e].reshape(n, e)
                np.copyto(buf, a[:, start:stop])
                columns = buf
            work = self._work[:ns]
            for s in range(ns):
                lo = s * sub
                src = columns[:, lo : lo + sub]
                np.matmul(plan.stacked, src, out=work[s, 1:, : e - lo])
            work[:, 0] = 0.0  # tier 1 accumulates its objective term t into this row
            if ns * sub > e:
                work[-1, :, e - (ns - 1) * sub :] = 0.0  # padding: a feasible zero pixel
            # Rows: t, x (k), the residual rows [, the detector]; [t, x] is what tier 1 updates.
            coef, side = work[:, 1 : k + 1], work[:, k + 1 :]
            if r == 1:
                rss = np.square(side[:, 0], out=side[:, 0])
            elif r:
                np.square(side[:, :r], out=side[:, :r])
                rss = np.add.reduce(side[:, :r], axis=1, out=self._rss[:ns])
            else:
                rss = self._zeros[:ns]
            # low starts as 0 * (rss or the band sum): 0, or NaN for a non-finite band.
            low = self._low[:ns]
            np.multiply(side[:, r] if plan.has_detector else rss, 0.0, out=low)

            # Tier 1: with neg = min(x_C, 0), x += neg @ single_fix (accumulated in place,
            # BLAS beta = 1, which saves numpy a pass); row k, zero before, receives t with
            # t**2 the extra mean square residual.
            neg = self._neg[:ns]
            np.minimum(coef[:, :nc], 0.0, out=neg)
            for s in range(ns):
                target = work[s, : k + 1]  # rows t, x
                done = _dgemm(
                    1.0, neg[s].T, plan.single_fix, beta=1.0, c=target.T, overwrite_c=True
                )
                if done.ctypes.data != target.ctypes.data:  # the BLAS wrapper chose to copy
                    np.copyto(target, done.T)
            total = self._total[:ns]
            np.multiply(work[:, 0], work[:, 0], out=total)
            np.add(total, rss, out=total)
            # Certified: finite, every constrained c_j >= 0, at most one negative x_j.
            for j in range(nc):
                np.minimum(low, coef[:, j], out=low)
            ok = self._ok[:ns]
            np.greater_equal(low, 0.0, out=ok)
            negative = self._negative[:ns]
            np.less(neg, 0.0, out=negative)
            count = self._count[:ns]
            np.add.reduce(negative.view(np.uint8), axis=1, out=count)
            np.less_equal(count, 1, out=negative[:, 0])
            np.logical_and(ok, negative[:, 0], out=ok)
            if not ok.all():
                # Flat indices over (sub-block, pixel) are the pixel indices in the block.
                idx = np.flatnonzero(~ok)
                self._set_aside(idx, buf, pixel_major, work, rss, total, low, group, start)
            for s in range(ns):
                lo = s * sub
                hi = min(lo + sub, e)
                # Adding 0.0 on the way out turns any -0.0 into +0.0 at no extra cost.
                np.add(coef[s, :, : hi - lo], 0.0, out=out_c[:, start + lo : start + hi])
                np.sqrt(total[s, : hi - lo], out=out_r[start + lo : start + hi])
            if self.n_pending > _PENDING_LIMIT:  # only once the block is written out
                self.flush()

    def _set_aside(
        self,
        idx: np.ndarray,
        buf: np.ndarray,
        pixel_major: bool,
        work: np.ndarray,
        rss: np.ndarray,
        total: np.ndarray,
        low: np.ndarray,
        group: int,
        start: int,
    ) -> None:
        """Pixels tier 1 did not certify: NaN for the non-finite ones, tier 2 for the rest."""
        s, col = np.divmod(idx, self.sub)
        bad = ~np.isfinite(low[s, col])
        if bad.any():
            work[s[bad], 1 : self.plan.n_patterns + 1, col[bad]] = np.nan
            total[s[bad], col[bad]] = np.nan
            idx, s, col = idx[~bad], s[~bad], col[~bad]
        if idx.size:
            # Tier 1 overwrote x; recompute it for these few from the widened spectra.
            spectra = np.take(buf, idx, axis=0) if pixel_major else np.take(buf, idx, axis=1).T
            x = _matmul(spectra, self.plan.pinv_t)
            self._pending.append((x, rss[s, col], group, idx + start))
            self.n_pending += idx.size

    def flush(self) -> None:
        """Solve the pixels set aside, overwriting their (already written) outputs."""
        if not self._pending:
            return
        x = np.concatenate([item[0] for item in self._pending])
        rss = np.concatenate([item[1] for item in self._pending])
        groups = np.concatenate([np.full(item[3].size, item[2]) for item in self._pending])
        pixels = np.concatenate([item[3] for item in self._pending])
        self._pending, self.n_pending = [], 0
        k = self.plan.n_patterns
        coef = np.empty((k, x.shape[0]))
        extra = np.empty(x.shape[0])

        def write(rows: np.ndarray, c: np.ndarray, more: Any) -> None:
            # Component by component: numpy's 1-D scatter is several times faster than 2-D.
            for j in range(k):
                coef[j][rows] = c[:, j]
            extra[rows] = more

        _solve_grouped(self.plan, x, write)
        coef += 0.0  # -0.0 of fixed coefficients becomes +0.0
        resid = np.sqrt(rss + extra)
        if self.out_c.shape[0] == 1:
            out_c, out_r = self.out_c[0], self.out_r[0]
            for j in range(k):
                out_c[j][pixels] = coef[j]
            out_r[pixels] = resid
        else:
            for j in range(k):
                self.out_c[:, j][groups, pixels] = coef[j]
            self.out_r[groups, pixels] = resid


def _solve_grouped(plan: _Plan, x: np.ndarray, write: _Writer) -> None:
    """Exact solution of pixels by primal-dual active-set rounds, grouped by active set.

    `x` is (m, k) finite unconstrained coefficients, C-contiguous. Solutions are handed over
    group by group as ``write(rows, coefficients, extra)``: rows of `x`, their (h, k)
    coefficients and the extra mean square residual (h,) over that of x. A row can be written
    more than once; the last write is the certified optimum.
    """
    nc = plan.n_constrained
    # First guess of the active set: the constrained coefficients that came out negative.
    masks = np.zeros(x.shape[0], dtype=np.uint8)
    for j in range(nc):
        masks |= (x[:, j] < 0).view(np.uint8) << j
    todo = np.arange(x.shape[0])
    for _ in range(_ACTIVE_SET_ROUNDS):
        # Group pixels by active set so that each set is one matrix product.
        order = np.argsort(masks, kind="stable")
        todo, masks = todo[order], masks[order]
        xs = np.take(x, todo, axis=0)
        bounds = np.concatenate([[0], np.cumsum(np.bincount(masks, minlength=1 << nc))])
        next_todo, next_masks = [], []
        for mask in np.flatnonzero(np.diff(bounds)):
            lo, hi = bounds[mask], bounds[mask + 1]
            z = _matmul(xs[lo:hi], plan.solve[mask])
            checks = plan.checks[mask]
            low = z[:, checks[0]].copy()
            for col in checks[1:]:
                np.minimum(low, z[:, col], out=low)
            rows = todo[lo:hi]
            # Write every row; those failing the KKT test are overwritten in a later round.
            write(rows, z[:, : plan.n_patterns], _objective(z, plan.objective_cols[mask]))
            bad = np.flatnonzero(low < 0)
            if bad.size:
                zb = z[bad]
                flips = np.zeros(bad.size, dtype=np.uint8)
                for j, col in enumerate(checks):
                    flips |= (zb[:, col] < 0).view(np.uint8) << j
                next_todo.append(rows[bad])
                # Primal-dual active-set step: fix the free coefficients that went negative,
                # free the fixed ones whose multiplier has the wrong sign.
                next_masks.append(flips ^ np.uint8(mask))
        if not next_todo:
            return
        todo, masks = np.concatenate(next_todo), np.concatenate(next_masks)
    _enumerate_subsets(plan, x, todo, write)


def _objective(z: np.ndarray, cols: slice) -> np.ndarray | float:
    obj = z[:, cols]
    if obj.shape[1] == 0:
        return 0.0
    total = np.square(obj[:, 0])
    for t in range(1, obj.shape[1]):
        total += np.square(obj[:, t])
    return total


def _enumerate_subsets(plan: _Plan, x: np.ndarray, rows: np.ndarray, write: _Writer) -> None:
    """Brute-force fallback: the feasible subset solution with the smallest objective.

    Exact whatever the rounding or degeneracy: the all-fixed subset is always feasible, the
    optimum is one of the subset solutions, and any other feasible point costs more.
    """
    k, nc = plan.n_patterns, plan.n_constrained
    xs = np.take(x, rows, axis=0)
    cands = _matmul(xs, plan.all_coef).reshape(rows.size, -1, k)
    objs = np.square(_matmul(xs, plan.all_objective)).reshape(rows.size, -1, nc).sum(axis=2)
    objs[~(cands[:, :, :nc] >= 0).all(axis=2)] = np.inf
    best = np.argmin(objs, axis=1)
    pick = np.arange(rows.size)
    write(rows, cands[pick, best], objs[pick, best])


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
