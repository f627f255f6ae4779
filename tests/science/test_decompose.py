"""Tests of updm_dask.science.decompose: the exact NNLS kernel and the illumination correction.

References are independent of the code under test: ``scipy.optimize.nnls`` (every column
constrained), and for a sign-free supplementary coefficient both ``nnls`` on the split matrix
``[P, -P_4]`` (uC4 = u+ - u-, an exact reformulation) and ``scipy.optimize.lsq_linear`` (BVLS)
with bounds (0, inf) x 3 and (-inf, inf). Hand-worked cases are solved in the comments.

Tolerances: outputs are float32 and the arithmetic is float64, so coefficients must match
the reference within 1e-5 relative plus an absolute 1e-7 x (the pixel's largest reference
coefficient, at least 1e-3) -- two float32 ulps of that coefficient, for coefficients that
are zero or nearly so. The objective (mean square residual, recomputed in float64 from the
float32 coefficients) may exceed the reference optimum by at most 1e-6 x the spectrum's mean
square, the effect of rounding the coefficients to float32.
"""

from __future__ import annotations

import importlib.util
import json
import math
import threading

import numpy as np
import pytest
import xarray as xr
from conftest import REPO_ROOT
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import lsq_linear, nnls

import updm_dask.science.decompose.solver as solver
from updm_dask.errors import DecompositionError
from updm_dask.science.decompose import nnls_decompose, normalise_coefficients

RTOL = 1e-5
ATOL_FACTOR = 1e-7
OBJECTIVE_TOL = 1e-6

# (n_bands, k): MSS (4 bands, 3 patterns), TM/OLI (6 bands, 3 or 4), 7 bands, and n == k.
SHAPES = [(4, 3), (6, 3), (6, 4), (7, 4), (4, 4)]


def assert_same(got: np.ndarray, expected: np.ndarray) -> None:
    """Equal up to float64 rounding differences between BLAS code paths (NaN where NaN)."""
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)


def _cube(shape=(6, 37, 29), seed=12):
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.2, 1.0, shape).astype(np.float32)


def reference(patterns: np.ndarray, spectrum: np.ndarray, constrain_all: bool) -> np.ndarray:
    """Exact optimum from scipy; the supplementary column free unless constrain_all."""
    k = patterns.shape[1]
    if constrain_all or k == 3:
        coef, _ = nnls(patterns, spectrum, maxiter=50 * k)
        return coef
    # uC4 = u_plus - u_minus with both >= 0 is the same problem with every column constrained.
    split = np.column_stack([patterns, -patterns[:, 3]])
    coef, _ = nnls(split, spectrum, maxiter=50 * k)
    return np.r_[coef[:3], coef[3] - coef[4]]


def mean_square(patterns: np.ndarray, spectrum: np.ndarray, coef: np.ndarray) -> float:
    return float(np.mean((spectrum - patterns @ coef.astype(np.float64)) ** 2))


def check_against_reference(
    patterns: np.ndarray, spectra: np.ndarray, constrain_supplementary: bool
) -> None:
    coef, resid = nnls_decompose(spectra, patterns, constrain_supplementary=constrain_supplementary)
    assert coef.dtype == np.float32 and resid.dtype == np.float32
    k = patterns.shape[1]
    n_constrained = k if constrain_supplementary else min(k, 3)
    for a32, c, r in zip(spectra, coef, resid, strict=True):
        a = a32.astype(np.float64)
        ref = reference(patterns, a, constrain_supplementary)
        scale = max(np.abs(ref).max(), 1e-3)
        np.testing.assert_allclose(c, ref, rtol=RTOL, atol=ATOL_FACTOR * scale)
        assert (c[:n_constrained] >= 0).all()
        ref_ms = mean_square(patterns, a, ref)
        assert mean_square(patterns, a, c) <= ref_ms + OBJECTIVE_TOL * np.mean(a**2) + 1e-30
        np.testing.assert_allclose(
            r, np.sqrt(ref_ms), rtol=RTOL, atol=ATOL_FACTOR * np.sqrt(np.mean(a**2))
        )


@st.composite
def pattern_matrices(draw, shape):
    """Well-conditioned patterns: non-negative standard columns, signed supplementary one."""
    n, k = shape
    standard = draw(
        arrays(np.float64, (n, 3), elements=st.floats(0.05, 3.0, allow_subnormal=False))
    )
    columns = [standard]
    if k == 4:
        columns.append(
            draw(arrays(np.float64, (n, 1), elements=st.floats(-2.0, 2.0, allow_subnormal=False)))
        )
    patterns = np.hstack(columns)
    assume(np.linalg.cond(patterns) < 100)
    return patterns


def make_spectra(patterns: np.ndarray, kind: str, seed: int, m: int = 48) -> np.ndarray:
    """Spectra of a given kind, float32, as the rows of an (m, n) array."""
    rng = np.random.default_rng(seed)
    n, k = patterns.shape
    if kind == "uniform":
        spectra = rng.uniform(-0.3, 1.0, (m, n))
    else:
        coef = rng.gamma(0.5, 0.2, (m, k))
        if k == 4:
            coef[:, 3] = rng.normal(0.0, 0.05, m)
        if kind == "zeros":
            # Some coefficients exactly zero, then noise pushes them across the bound.
            coef[rng.random((m, k)) < 0.4] = 0.0
        spectra = coef @ patterns.T + rng.normal(0.0, 0.01, (m, n))
        if kind == "outside":
            spectra -= rng.uniform(0.0, 0.3, (m, 1)) * patterns[:, rng.integers(0, 3)]
    return spectra.astype(np.float32)


SPECTRA_KINDS = st.sampled_from(["uniform", "mixture", "zeros", "outside"])


# --------------------------------------------------------------------------------------------
# Kernel against references
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data(), kind=SPECTRA_KINDS, seed=st.integers(0, 2**32 - 1))
def test_matches_exact_reference_supplementary_free(shape, data, kind, seed):
    patterns = data.draw(pattern_matrices(shape))
    check_against_reference(patterns, make_spectra(patterns, kind, seed), False)


@pytest.mark.parametrize("shape", [(6, 4), (7, 4), (4, 4)])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data(), kind=SPECTRA_KINDS, seed=st.integers(0, 2**32 - 1))
def test_matches_scipy_nnls_supplementary_constrained(shape, data, kind, seed):
    patterns = data.draw(pattern_matrices(shape))
    check_against_reference(patterns, make_spectra(patterns, kind, seed), True)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data(), kind=SPECTRA_KINDS, seed=st.integers(0, 2**32 - 1))
def test_free_supplementary_matches_bounded_least_squares(data, kind, seed):
    # A second, differently built reference for the sign-free uC4: BVLS with explicit bounds.
    patterns = data.draw(pattern_matrices((6, 4)))
    spectra = make_spectra(patterns, kind, seed, m=16)
    coef, _ = nnls_decompose(spectra, patterns)
    lower, upper = [0.0, 0.0, 0.0, -np.inf], [np.inf] * 4
    for a32, c in zip(spectra, coef, strict=True):
        a = a32.astype(np.float64)
        ref = lsq_linear(patterns, a, bounds=(lower, upper), method="bvls", tol=1e-15).x
        scale = max(np.abs(ref).max(), 1e-3)
        np.testing.assert_allclose(c, ref, rtol=RTOL, atol=ATOL_FACTOR * scale)
        assert mean_square(patterns, a, c) <= mean_square(
            patterns, a, ref
        ) + OBJECTIVE_TOL * np.mean(a**2)


# Plausible TM patterns (water, vegetation, soil, supplementary; bands 1-5, 7).
REALISTIC_PATTERNS = np.array(
    [
        [6.17, 0.37, 0.37, -0.84],
        [8.05, 0.46, 0.46, -0.42],
        [5.89, 0.37, 0.65, 2.12],
        [0.01, 1.78, 0.99, -1.35],
        [0.0, 1.19, 1.36, -0.43],
        [0.0, 0.67, 1.09, -0.80],
    ]
)


def realistic_spectra(m: int, seed: int) -> np.ndarray:
    """Sparse non-negative mixtures (many coefficients near 0) plus sensor-like noise."""
    rng = np.random.default_rng(seed)
    fractions = rng.dirichlet([0.4, 0.4, 0.4], m) * [0.01, 0.25, 0.3]
    coef = np.column_stack([fractions, rng.normal(0, 0.02, m)])
    return (coef @ REALISTIC_PATTERNS.T + rng.normal(0, 0.004, (m, 6))).astype(np.float32)


def test_many_pixels_across_blocks_match_reference():
    # More pixels than one block, realistic mixtures: every code path in one call.
    patterns = REALISTIC_PATTERNS
    m = solver._BLOCK + 5000
    rng = np.random.default_rng(7)
    spectra = realistic_spectra(m, seed=7)
    coef, resid = nnls_decompose(spectra, patterns)
    sample = rng.choice(m, 600, replace=False)
    check_against_reference(patterns, spectra[sample], False)
    single, single_resid = nnls_decompose(spectra[sample], patterns)
    assert_same(coef[sample], single)
    assert_same(resid[sample], single_resid)


def _count_fallbacks(monkeypatch) -> list[int]:
    """Record how many pixels each kernel run sent to the brute-force fallback."""
    counts: list[int] = []
    run = solver._run_kernel

    def counting(*args):
        counts.append(run(*args))
        return counts[-1]

    monkeypatch.setattr(solver, "_run_kernel", counting)
    return counts


@pytest.mark.parametrize("constrain", [False, True])
def test_search_certifies_realistic_pixels(monkeypatch, constrain):
    # The brute force is a safety net; on realistic data the search over active sets must
    # find and certify every optimum itself, including pixels with several coefficients at 0.
    counts = _count_fallbacks(monkeypatch)
    spectra = realistic_spectra(20000, seed=3)
    coef, _ = nnls_decompose(spectra, REALISTIC_PATTERNS, constrain_supplementary=constrain)
    assert counts == [0]
    several_zero = np.flatnonzero((coef[:, :3] == 0).sum(axis=1) >= 2)
    assert several_zero.size > 100
    check_against_reference(REALISTIC_PATTERNS, spectra[several_zero[:300]], constrain)


def test_brute_force_fallback_alone_is_exact(monkeypatch):
    # Without the search for a certified set, every pixel tier 1 does not certify goes to
    # the brute force.
    monkeypatch.setattr(solver, "_SEARCH_CERTIFIED", False)
    counts = _count_fallbacks(monkeypatch)
    rng = np.random.default_rng(11)
    for constrain in (False, True):
        patterns = rng.uniform(0.05, 3.0, (6, 4))
        spectra = rng.uniform(-0.5, 1.0, (200, 6)).astype(np.float32)
        check_against_reference(patterns, spectra, constrain)
    assert counts[0] > 10 and counts[1] > 10  # the fallback really was exercised


@pytest.mark.parametrize("constrain", [False, True])
def test_blocks_threads_and_layout_do_not_change_results(monkeypatch, constrain):
    # Nothing is reassociated, so where a pixel falls -- in a block, a thread's share, a
    # band-first or bands-last array -- cannot change its result by a single bit.
    rng = np.random.default_rng(5)
    patterns = rng.uniform(0.05, 3.0, (6, 4))
    spectra = rng.uniform(-0.5, 1.0, (3000, 6)).astype(np.float32)
    spectra[17] = np.nan
    expected = nnls_decompose(spectra, patterns, constrain_supplementary=constrain)
    band_first = nnls_decompose(
        np.ascontiguousarray(spectra.T), patterns, constrain_supplementary=constrain, band_axis=0
    )
    np.testing.assert_array_equal(band_first[0].T, expected[0])
    np.testing.assert_array_equal(band_first[1], expected[1])
    # Blocks of 7 pixels (the last one partial) and 3 threads sharing tasks of 500 pixels.
    monkeypatch.setattr(solver, "_BLOCK", 7)
    monkeypatch.setattr(solver, "_THREAD_CHUNK", 500)
    monkeypatch.setattr(solver, "_thread_count", lambda: 3)
    for stop in (3000, 2999):
        got = nnls_decompose(spectra[:stop], patterns, constrain_supplementary=constrain)
        np.testing.assert_array_equal(got[0], expected[0][:stop])
        np.testing.assert_array_equal(got[1], expected[1][:stop])


def test_threads_only_from_the_main_thread():
    # Inside dask's worker threads the kernel must not start threads of its own.
    assert solver._thread_count() >= 1
    seen: list[int] = []
    worker = threading.Thread(target=lambda: seen.append(solver._thread_count()))
    worker.start()
    worker.join()
    assert seen == [1]


# --------------------------------------------------------------------------------------------
# Degenerate and boundary cases against the reference
# --------------------------------------------------------------------------------------------


def degenerate_spectra(patterns: np.ndarray, seed: int) -> np.ndarray:
    """float64 spectra at the edges of the problem, as the rows of an (m, n) array."""
    rng = np.random.default_rng(seed)
    n, k = patterns.shape
    rows = [np.zeros(n)]  # nothing at all
    for j in range(k):
        rows.append(patterns[:, j])  # one pure pattern: the others exactly 0
        rows.append(-patterns[:, j])  # its opposite
    for _ in range(12):
        # Exact mixtures with some coefficients exactly zero: optimum on the boundary.
        coef = rng.uniform(0.0, 0.5, k) * (rng.random(k) < 0.5)
        rows.append(patterns @ coef)
    # Orthogonal to every pattern: x = 0 up to rounding, residual is everything.
    u, _, _ = np.linalg.svd(patterns, full_matrices=True)
    if n > k:
        rows.append(u[:, k])
    base = patterns @ np.r_[0.3, 0.0, 0.2, np.zeros(k - 3)] + 0.01 * rng.standard_normal(n)
    rows += [base, base, 1e-25 * base, 1e20 * base]  # duplicates; tiny and huge scales
    return np.array(rows)


@pytest.mark.parametrize("shape", [(3, 3), (4, 3), (6, 3), (6, 4), (4, 4), (5, 4), (9, 4)])
@pytest.mark.parametrize("constrain", [False, True])
def test_degenerate_pixels_match_reference(shape, constrain):
    rng = np.random.default_rng(21)
    patterns = rng.uniform(0.05, 3.0, shape)
    spectra = degenerate_spectra(patterns, seed=22)
    check_against_reference(patterns, spectra, constrain)
    check_against_reference(patterns, spectra[:-1].astype(np.float32), constrain)
    coef, resid = nnls_decompose(spectra[:1], patterns, constrain_supplementary=constrain)
    assert (coef == 0).all() and not np.signbit(coef).any() and resid[0] == 0.0


def optimum_with_fixed_set(
    patterns: np.ndarray, fixed: list[int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A spectrum whose optimum has exactly the coefficients `fixed` at zero, and that optimum.

    A = P_F c_F + r with c_F > 0 and r orthogonal to the free columns but with P_S^T r < 0:
    the KKT conditions of min ||A - P c|| s.t. c >= 0 then hold at c = (c_F, 0), with every
    multiplier strictly on the right side.
    """
    k = patterns.shape[1]
    free = [j for j in range(k) if j not in fixed]
    coef = np.zeros(k)
    coef[free] = rng.uniform(0.05, 0.5, len(free))
    if not fixed:
        return patterns @ coef, coef
    p_free, p_fixed = patterns[:, free], patterns[:, fixed]
    outside = p_fixed
    if free:  # the part of the fixed columns orthogonal to the free ones
        outside = p_fixed - p_free @ np.linalg.lstsq(p_free, p_fixed, rcond=None)[0]
    push = -np.linalg.solve(outside.T @ outside, rng.uniform(0.05, 0.3, len(fixed)))
    return patterns @ coef + outside @ push, coef


@pytest.mark.parametrize("n_fixed", [0, 1, 2, 3, 4])
def test_each_tier_finds_optima_with_that_many_zeros(monkeypatch, n_fixed):
    # Tier 1 settles optima with none or one coefficient at zero, tier 2 those with two,
    # three or four; every one must come out exact and without the brute force.
    counts = _count_fallbacks(monkeypatch)
    rng = np.random.default_rng(30 + n_fixed)
    patterns = rng.uniform(0.05, 3.0, (7, 4))
    spectra, expected = [], []
    for _ in range(40):
        fixed = sorted(rng.choice(4, n_fixed, replace=False).tolist())
        spectrum, coef = optimum_with_fixed_set(patterns, fixed, rng)
        spectra.append(spectrum)
        expected.append(coef)
    spectra, expected = np.array(spectra), np.array(expected)
    coef, _ = nnls_decompose(spectra, patterns, constrain_supplementary=True)
    np.testing.assert_allclose(coef, expected, rtol=1e-5, atol=1e-7)
    assert ((coef == 0).sum(axis=1) == n_fixed).all()
    assert counts == [0]
    check_against_reference(patterns, spectra, True)


@pytest.mark.parametrize("condition", [1e2, 1e4])
@pytest.mark.parametrize("constrain", [False, True])
def test_nearly_collinear_patterns_match_reference(condition, constrain):
    # Vegetation and soil patterns almost parallel: the Gram matrix is ill-conditioned, the
    # optimum still unique.
    rng = np.random.default_rng(23)
    patterns = rng.uniform(0.05, 3.0, (6, 4))
    direction = rng.standard_normal(6)
    patterns[:, 2] = patterns[:, 1] + direction / np.linalg.norm(direction) / condition
    assert condition / 100 < np.linalg.cond(patterns) < condition * 100
    spectra = np.vstack(
        [make_spectra(patterns, kind, seed=24) for kind in ("uniform", "mixture", "zeros")]
    )
    check_against_reference(patterns, spectra.astype(np.float64), constrain)


@pytest.mark.parametrize("n_bands", [3, 5, 7, 8, 9, 12])
def test_every_band_count_matches_reference(n_bands):
    # Band counts the kernel pads (3 -> 4, 5 -> 6, 7 -> 8), fills exactly (8) or cannot unroll
    # (9, 12: the generic loop).
    rng = np.random.default_rng(n_bands)
    k = 3 if n_bands == 3 else 4
    patterns = rng.uniform(0.05, 3.0, (n_bands, k))
    for kind in ("uniform", "outside"):
        spectra = make_spectra(patterns, kind, seed=25, m=40)
        check_against_reference(patterns, spectra, False)
        check_against_reference(patterns, spectra, True)


def test_unusual_memory_layouts_give_identical_results():
    rng = np.random.default_rng(26)
    patterns = rng.uniform(0.05, 3.0, (6, 4))
    cube = rng.uniform(-0.3, 1.0, (6, 20, 30)).astype(np.float32)  # (band, y, x)
    expected_c, expected_r = nnls_decompose(np.moveaxis(cube, 0, -1).copy(), patterns)
    reversed_bands = cube[::-1]  # negative stride, patterns reordered to match
    layouts = {
        "band first": (cube, patterns),
        "strided": (np.repeat(cube, 2, axis=2)[:, :, ::2], patterns),
        "negative stride": (reversed_bands, patterns[::-1]),
        "Fortran order": (np.asfortranarray(cube), patterns),
    }
    readonly = cube.copy()
    readonly.flags.writeable = False
    layouts["read-only"] = (readonly, patterns)
    for name, (spectra, p) in layouts.items():
        coef, resid = nnls_decompose(spectra, p, band_axis=0)
        np.testing.assert_array_equal(np.moveaxis(coef, 0, -1), expected_c, err_msg=name)
        np.testing.assert_array_equal(resid, expected_r, err_msg=name)
    # One spectrum broadcast to every pixel (zero strides).
    spectrum = cube[:, 0, 0]
    coef, _ = nnls_decompose(np.broadcast_to(spectrum, (5, 7, 6)), patterns)
    np.testing.assert_array_equal(coef, np.broadcast_to(expected_c[0, 0], (5, 7, 4)))


@pytest.mark.parametrize("dtype", [np.float16, np.dtype(">f8"), np.dtype(">f4"), np.longdouble])
def test_other_float_types_are_widened(dtype):
    rng = np.random.default_rng(27)
    patterns = rng.uniform(0.05, 3.0, (6, 4))
    spectra = rng.uniform(-0.3, 1.0, (30, 6)).astype(dtype)
    coef, resid = nnls_decompose(spectra, patterns)
    assert coef.dtype == np.float32 and resid.dtype == np.float32
    expected_c, expected_r = nnls_decompose(spectra.astype(np.float64), patterns)
    np.testing.assert_array_equal(coef, expected_c)
    np.testing.assert_array_equal(resid, expected_r)
    check_against_reference(patterns, spectra.astype(np.float64), False)


# --------------------------------------------------------------------------------------------
# Hand-worked values
# --------------------------------------------------------------------------------------------

# Bands 1-3 see one pattern each, band 4 sees their sum: G = P^T P = I + 1 1^T.
HAND_PATTERNS = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 1.0]])


def test_exact_mixture_gives_exact_coefficients_and_zero_residual():
    spectrum = np.array([0.2, 0.5, 0.1, 0.8], dtype=np.float32)  # 0.2 w + 0.5 v + 0.1 s
    coef, resid = nnls_decompose(spectrum, HAND_PATTERNS)
    np.testing.assert_allclose(coef, [0.2, 0.5, 0.1], rtol=1e-6)
    assert resid.shape == () and resid < 1e-7


def test_hand_worked_case_with_a_zero_coefficient():
    # x = G^-1 P^T A = (-0.4, 0.3, 0.3): water breaks its bound. Fixing uCw = 0, the normal
    # equations [[2, 1], [1, 2]] (v, s) = (0.5, 0.5) give v = s = 1/6; the residual is
    # (-0.4, 2/15, 2/15, -2/15), the multiplier -(r1 + r4) = 8/15 > 0 certifies it, and the
    # rms residual is sqrt((0.16 + 3 * 4/225) / 4) = 2 / sqrt(75).
    spectrum = np.array([-0.4, 0.3, 0.3, 0.2], dtype=np.float64)
    coef, resid = nnls_decompose(spectrum, HAND_PATTERNS)
    np.testing.assert_allclose(coef, [0.0, 1 / 6, 1 / 6], rtol=1e-6, atol=1e-8)
    assert coef[0] == 0.0
    np.testing.assert_allclose(resid, 2 / np.sqrt(75), rtol=1e-6)


# Five bands: one per pattern and their sum; the supplementary column takes either sign.
HAND_PATTERNS_4 = np.vstack([np.eye(4), np.ones((1, 4))])


def test_free_supplementary_takes_a_negative_value():
    spectrum = np.array([0.1, 0.2, 0.3, -0.2, 0.4], dtype=np.float32)  # c = (.1,.2,.3,-.2)
    coef, resid = nnls_decompose(spectrum, HAND_PATTERNS_4)
    np.testing.assert_allclose(coef, [0.1, 0.2, 0.3, -0.2], rtol=1e-6)
    assert resid < 1e-7


def test_constrained_supplementary_is_held_at_zero():
    # uC4 = 0: (I + 1 1^T)(w, v, s) = (0.5, 0.6, 0.7) gives (0.05, 0.15, 0.25); residual
    # (0.05, 0.05, 0.05, -0.2, -0.05), multiplier -(r4 + r5) = 0.25 > 0, rms sqrt(0.05/5) = 0.1.
    spectrum = np.array([0.1, 0.2, 0.3, -0.2, 0.4], dtype=np.float32)
    coef, resid = nnls_decompose(spectrum, HAND_PATTERNS_4, constrain_supplementary=True)
    np.testing.assert_allclose(coef, [0.05, 0.15, 0.25, 0.0], rtol=1e-6, atol=1e-8)
    assert coef[3] == 0.0
    np.testing.assert_allclose(resid, 0.1, rtol=1e-6)


def test_zero_spectrum_and_boundary_cases():
    spectra = np.array(
        [
            [0.0, 0.0, 0.0, 0.0],  # nothing: every coefficient 0, residual 0
            [0.0, 0.5, 0.1, 0.6],  # exact mixture with uCw exactly 0
            [-1.0, -1.0, -1.0, -3.0],  # the negative of the cone: optimum c = 0
        ],
        dtype=np.float32,
    )
    coef, resid = nnls_decompose(spectra, HAND_PATTERNS)
    np.testing.assert_allclose(coef[0], 0.0)
    assert resid[0] == 0.0
    np.testing.assert_allclose(coef[1], [0.0, 0.5, 0.1], atol=1e-7)
    np.testing.assert_array_equal(coef[2], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(resid[2], np.sqrt((1 + 1 + 1 + 9) / 4), rtol=1e-6)
    assert not np.signbit(coef).any()  # no -0.0


# --------------------------------------------------------------------------------------------
# NaN, shapes, dtypes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_non_finite_band_gives_nan_pixel(shape, bad_value):
    n, k = shape
    rng = np.random.default_rng(2)
    patterns = rng.uniform(0.05, 3.0, (n, k))
    spectra = rng.uniform(-0.2, 1.0, (n + 3, n)).astype(np.float32)
    for band in range(n):
        spectra[band, band] = bad_value
    spectra[n] = bad_value  # every band
    coef, resid = nnls_decompose(spectra, patterns)
    assert np.isnan(coef[: n + 1]).all() and np.isnan(resid[: n + 1]).all()
    good, good_resid = nnls_decompose(spectra[n + 1 :], patterns)
    assert_same(coef[n + 1 :], good)
    assert_same(resid[n + 1 :], good_resid)
    assert np.isfinite(good).all()


@pytest.mark.parametrize("lead", [(), (0,), (5,), (2, 3), (3, 0, 2), (2, 1, 4)])
def test_leading_shapes(lead):
    rng = np.random.default_rng(4)
    patterns = rng.uniform(0.05, 3.0, (6, 4))
    spectra = rng.uniform(-0.2, 1.0, (*lead, 6)).astype(np.float32)
    coef, resid = nnls_decompose(spectra, patterns)
    assert coef.shape == (*lead, 4) and resid.shape == lead
    assert coef.dtype == np.float32 and resid.dtype == np.float32
    flat, flat_resid = nnls_decompose(spectra.reshape(-1, 6), patterns)
    assert_same(coef.reshape(-1, 4), flat)
    assert_same(resid.reshape(-1), flat_resid)


@pytest.mark.parametrize("band_axis", [0, 1, -2])
def test_band_axis_anywhere(band_axis):
    spectra = _cube((6, 9, 11))  # (band, y, x)
    moved = np.moveaxis(spectra, 0, band_axis)
    coef, resid = nnls_decompose(moved, GOOD_PATTERNS, band_axis=band_axis)
    expected_c, expected_r = nnls_decompose(np.moveaxis(spectra, 0, -1), GOOD_PATTERNS)
    assert_same(coef, np.moveaxis(expected_c, -1, band_axis))
    assert_same(resid, expected_r)
    with pytest.raises(DecompositionError, match="out of range"):
        nnls_decompose(spectra, GOOD_PATTERNS, band_axis=3)
    with pytest.raises(DecompositionError, match="9 bands along axis 1"):
        nnls_decompose(spectra, GOOD_PATTERNS, band_axis=1)


def test_float64_and_non_contiguous_input():
    rng = np.random.default_rng(6)
    patterns = rng.uniform(0.05, 3.0, (6, 3))
    spectra = rng.uniform(-0.2, 1.0, (50, 6)).astype(np.float32)
    expected = nnls_decompose(spectra, patterns)
    as64 = nnls_decompose(spectra.astype(np.float64), patterns)
    assert_same(as64[0], expected[0])
    strided = np.asfortranarray(np.repeat(spectra, 2, axis=0))[::2]
    assert_same(nnls_decompose(strided, patterns)[0], expected[0])
    check_against_reference(patterns, spectra.astype(np.float64), False)


def test_patterns_as_labelled_array_in_either_dim_order():
    rng = np.random.default_rng(8)
    matrix = rng.uniform(0.05, 3.0, (6, 4))
    labelled = xr.DataArray(matrix, dims=("band", "pattern"))
    spectra = rng.uniform(0.0, 1.0, (10, 6)).astype(np.float32)
    expected = nnls_decompose(spectra, matrix)
    assert_same(nnls_decompose(spectra, labelled)[0], expected[0])
    assert_same(nnls_decompose(spectra, labelled.T)[0], expected[0])


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------

GOOD_PATTERNS = np.random.default_rng(9).uniform(0.05, 3.0, (6, 4))


def test_wrong_band_count_names_both_numbers():
    with pytest.raises(DecompositionError, match=r"5 bands.*6 rows"):
        nnls_decompose(np.zeros((3, 5), np.float32), GOOD_PATTERNS)


@pytest.mark.parametrize(
    ("patterns", "message"),
    [
        (np.ones(6), "2-D"),
        (np.ones((2, 6, 4)), "2-D"),
        (np.random.default_rng(0).random((6, 2)), "3 .* or 4"),
        (np.random.default_rng(0).random((6, 5)), "3 .* or 4"),
        (np.random.default_rng(0).random((3, 4)), "only 3 bands"),
        (np.column_stack([GOOD_PATTERNS[:, :3], GOOD_PATTERNS[:, 0]]), "rank-deficient"),
        (np.column_stack([GOOD_PATTERNS[:, :3], np.zeros(6)]), "rank-deficient"),
        (np.where(np.eye(6, 4) > 0, np.nan, GOOD_PATTERNS), "NaN or infinite"),
        (np.where(np.eye(6, 4) > 0, np.inf, GOOD_PATTERNS), "NaN or infinite"),
        (GOOD_PATTERNS.astype(complex), "real numeric"),
        (np.full((6, 4), "a"), "real numeric"),
    ],
)
def test_bad_patterns_are_rejected(patterns, message):
    with pytest.raises(DecompositionError, match=message):
        nnls_decompose(np.zeros((2, patterns.shape[0] if patterns.ndim else 6)), patterns)


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, bool, np.complex64])
def test_non_floating_spectra_are_rejected(dtype):
    with pytest.raises(DecompositionError, match="floating-point"):
        nnls_decompose(np.zeros((2, 6), dtype=dtype), GOOD_PATTERNS)


def test_scalar_spectra_are_rejected():
    with pytest.raises(DecompositionError, match="at least one axis"):
        nnls_decompose(np.float32(1.0), GOOD_PATTERNS)


def test_labelled_patterns_with_other_dims_are_rejected():
    with pytest.raises(DecompositionError, match=r"dims \(band, pattern\)"):
        nnls_decompose(np.zeros((2, 6)), xr.DataArray(GOOD_PATTERNS, dims=("wl", "pattern")))


# --------------------------------------------------------------------------------------------
# normalise_coefficients
# --------------------------------------------------------------------------------------------


def test_normalise_hand_values():
    coef = np.array(
        [[1.0, 2.0, 1.0, 0.4], [0.0, 0.0, 0.0, 0.3], [np.nan, 1.0, 1.0, 0.0]], np.float32
    )
    out = normalise_coefficients(coef)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0], [0.25, 0.5, 0.25, 0.1], rtol=1e-6)
    assert np.isnan(out[1]).all()  # the sum is 0
    assert np.isnan(out[2]).all()  # NaN in, NaN out
    three = normalise_coefficients(np.array([2.0, 1.0, 1.0]))
    np.testing.assert_allclose(three, [0.5, 0.25, 0.25])
    assert normalise_coefficients(np.array([[2, 2, 4]])).dtype == np.float32


@pytest.mark.parametrize("bad", [np.ones((3, 2)), np.ones(5), np.array(1.0)])
def test_normalise_rejects_wrong_shapes(bad):
    with pytest.raises(DecompositionError, match="3 or 4 entries"):
        normalise_coefficients(bad)


def test_normalise_rejects_non_numbers():
    with pytest.raises(DecompositionError, match="real numbers"):
        normalise_coefficients(np.ones((2, 3), dtype=complex))


# --------------------------------------------------------------------------------------------
# Benchmark smoke test
# --------------------------------------------------------------------------------------------


def test_quick_kernel_benchmark_reports_finite_positive_rows():
    spec = importlib.util.spec_from_file_location(
        "bench_kernel", REPO_ROOT / "benchmarks" / "bench_kernel.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    summary = bench.run(quick=True, n_pixels=20_000, n_scipy=200, repeats=1)
    json.dumps(summary)
    assert summary["benchmark"] == "kernel"
    assert len(summary["rows"]) == 2 * len(bench.CONFIGS) + 1
    for row in summary["rows"]:
        assert set(row) == {"measure", "value", "unit", "target", "met"}
        assert math.isfinite(row["value"]) and row["value"] > 0
        assert (row["target"] is None) == (row["met"] is None)
    assert sum(r["target"] == ">= 300x" for r in summary["rows"]) == len(bench.CONFIGS)
    assert sum(r["target"] == "<= 3x" for r in summary["rows"]) == len(bench.CONFIGS)
    for result in summary["results"]:  # the benchmark's own check against scipy
        assert result["max_diff_vs_scipy_relative_to_pixel_max"] < 1e-6
    assert "kernel / floor" in bench.report(summary)
