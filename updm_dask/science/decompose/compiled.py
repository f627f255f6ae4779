"""The compiled NNLS kernel: numba code, one function per input dtype.

One function per input dtype, _kernel_source, compiled by numba on first use and cached on
disk (cache=True), so that later processes load it. The helpers below are inlined into it
(inline="always"), at call sites that pass their sizes as literal constants: LLVM then
unrolls their short loops and vectorises the loops over pixels. Everything is inlined into
the one function on purpose: numba re-optimises and re-generates the code of every compiled
function a function calls, so a tree of separately compiled functions takes several times
longer to compile than the same code in one.

Unrolled on purpose: the per-row sums below are written out element by element (through
small helpers inlined at compile time), never as views or loops over rows, because a view
costs atomic reference counting per pixel and a short loop keeps LLVM from holding the
values in registers.
"""

from __future__ import annotations

import functools
from typing import Any

import numba
import numpy as np

from .._compile import compile_kernel

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
    # the loop body has no inner loops and vectorises across pixels. The four "fix c_j"
    # blocks stay written out: one inlined helper for all four must also compute the fixed
    # coefficient and test it, which measured 3-5 % slower on this, the hottest loop.
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
def _row(solve, mask, r):  # pragma: no cover - compiled
    """Row ``r`` of ``solve[mask]`` as four scalars, which the compiler keeps in registers."""
    # Element by element: a view such as solve[mask] would cost atomic reference counting.
    return solve[mask, r, 0], solve[mask, r, 1], solve[mask, r, 2], solve[mask, r, 3]


@numba.njit(inline="always")
def _dot(row, x0, x1, x2, x3):  # pragma: no cover - compiled
    """``row @ x``, summed left to right (the order every caller relies on)."""
    s0, s1, s2, s3 = row
    return s0 * x0 + s1 * x1 + s2 * x2 + s3 * x3


@numba.njit(inline="always")
def _set_solution(solve, mask, x0, x1, x2, x3):  # pragma: no cover - compiled
    """solve[mask] @ x: the coefficients c0..c3 of set `mask`, then v0..v3, all >= 0 where
    the set is certified (c_j for free j, -mu_j for fixed j, zero for j >= nc)."""
    # Eight rows written out: a loop would need an array, a tuple cannot be built in one.
    return (
        _dot(_row(solve, mask, 0), x0, x1, x2, x3),
        _dot(_row(solve, mask, 1), x0, x1, x2, x3),
        _dot(_row(solve, mask, 2), x0, x1, x2, x3),
        _dot(_row(solve, mask, 3), x0, x1, x2, x3),
        _dot(_row(solve, mask, 4), x0, x1, x2, x3),
        _dot(_row(solve, mask, 5), x0, x1, x2, x3),
        _dot(_row(solve, mask, 6), x0, x1, x2, x3),
        _dot(_row(solve, mask, 7), x0, x1, x2, x3),
    )


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
            # The set's check rows, hoisted out of the loop over pixels.
            r4 = _row(solve, mask, 4)
            r5 = _row(solve, mask, 5)
            r6 = _row(solve, mask, 6)
            r7 = _row(solve, mask, 7)
            this = float(mask)
            for u in range(h):
                x0, x1, x2, x3 = work[0, u], work[1, u], work[2, u], work[3, u]
                v0 = _dot(r4, x0, x1, x2, x3)
                v1 = _dot(r5, x0, x1, x2, x3)
                v2 = _dot(r6, x0, x1, x2, x3)
                v3 = _dot(r7, x0, x1, x2, x3)
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
def compiled_kernel(dtype: np.dtype) -> Any:
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
    return compile_kernel(_kernel_source, signature)
