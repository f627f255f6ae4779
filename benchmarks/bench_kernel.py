"""Speed of the exact NNLS kernel (updm_dask.science.decompose.nnls_decompose), measured in one run.

For each configuration -- MSS (4 bands, 3 patterns), TM with 3 patterns, TM and OLI with 4
(uC4 free, the default), OLI with 4 and uC4 constrained -- on N pixels (default 1,000,000) of
realistic float32 spectra, spectral axis last:

* kernel: ``nnls_decompose(spectra, patterns)``, the median of several repeats;
* scipy loop: ``scipy.optimize.nnls`` pixel by pixel on a subsample (default 10,000 pixels),
  scaled to N; with a sign-free uC4 it solves the same problem on ``[P, -P_4]``
  (uC4 = u+ - u-), which is how one gets that problem out of scipy's NNLS;
* floor: one unconstrained least-squares product ``spectra @ pinv(P).T`` in float32, the
  least any decomposition must do.

Targets: kernel >= 300x faster than the scipy loop, and within 3x of the floor. Timings are
interleaved repeat by repeat so that all of them see the same machine load, and each ratio
is the median over repeats of the ratio within a repeat. A short pause precedes each timing
so that it does not run into the previous one's idle-spinning threads (OpenBLAS keeps its
workers spinning for a while after a product: measured, the kernel right after a product
took 1.4-1.5x as long as after a pause). BLAS threading is
left as the environment sets it (e.g. OPENBLAS_NUM_THREADS, OPENBLAS_CORETYPE); the kernel
uses its own threads, one per available CPU. The kernel's results on the subsample are
checked against scipy's.

The kernel is compiled (numba) on first use and cached on disk. Its first call in this process
(compile or cache load) is timed apart and excluded from the ratios; a full run also times, in
fresh subprocesses, a first call with an empty cache (the compile) and one with that cache
filled (the load).

Spectra are non-negative mixtures of the patterns plus noise: sparse mixing fractions (many
coefficients near zero, as for pure water, vegetation or soil pixels), an illumination factor,
a small signed supplementary part, sensor-like noise, and 3 % of pixels replaced by spectra
from outside the patterns' cone (clouds, shadows, artefacts).

Patterns come from ``updm_dask.science.patterns.band_patterns`` when that module is importable,
otherwise from a fixed synthetic matrix of plausible values defined below.

Usage::

    python benchmarks/bench_kernel.py [--pixels N] [--scipy-pixels M] [--repeats R]
                                      [--quick] [--json PATH]

``run(quick=False) -> dict`` and ``report(summary) -> str`` serve the combined runner; the
summary's "rows" hold, per configuration, the speed-up over the scipy loop and the ratio to
the floor with their targets.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numba
import numpy as np
from scipy.optimize import nnls

from updm_dask.science.decompose import nnls_decompose, solver

TARGET_VS_SCIPY = 300.0  # kernel at least this many times faster than the scipy loop
TARGET_VS_FLOOR = 3.0  # kernel at most this many times slower than the floor
PAUSE_S = 0.2  # before each timing: longer than OpenBLAS's idle spinning (~0.1 s)

# Plausible band patterns (box-car band averages of open stand-in spectra, rounded), used only
# when updm_dask.science.patterns is not available. Columns water, vegetation, soil, supplementary.
SYNTHETIC_PATTERNS = {
    "MSS": np.array(
        [
            [7.72, 0.44, 0.45],
            [6.16, 0.38, 0.63],
            [1.38, 1.48, 0.88],
            [0.00, 1.77, 1.09],
        ]
    ),
    "TM": np.array(
        [
            [6.17, 0.37, 0.37, -0.84],
            [8.05, 0.46, 0.46, -0.42],
            [5.89, 0.37, 0.65, 2.12],
            [0.01, 1.78, 0.99, -1.35],
            [0.00, 1.19, 1.36, -0.43],
            [0.00, 0.67, 1.09, -0.80],
        ]
    ),
}
SYNTHETIC_PATTERNS["OLI"] = SYNTHETIC_PATTERNS["TM"]

# (label, sensor, number of patterns, constrain_supplementary)
CONFIGS = [
    ("MSS 4 bands x 3 patterns", "MSS", 3, False),
    ("TM 6 bands x 3 patterns", "TM", 3, False),
    ("TM 6 bands x 4 patterns, uC4 free", "TM", 4, False),
    ("OLI 6 bands x 4 patterns, uC4 free", "OLI", 4, False),
    ("OLI 6 bands x 4 patterns, uC4 >= 0", "OLI", 4, True),
]


def load_patterns(sensor: str, k: int) -> tuple[np.ndarray, str]:
    """The (n_bands, k) pattern matrix and where it came from."""
    try:
        from updm_dask.science.patterns import band_patterns
    except ImportError:
        return SYNTHETIC_PATTERNS[sensor][:, :k], "synthetic (patterns unavailable)"
    labelled = band_patterns(sensor, supplementary=k == 4)
    source = f"band_patterns({sensor!r}): {labelled.attrs.get('pattern_set', '?')}"
    return np.asarray(labelled.transpose("band", "pattern").values, dtype=np.float64), source


def make_spectra(patterns: np.ndarray, n_pixels: int, seed: int = 0) -> np.ndarray:
    """Realistic float32 spectra (n_pixels, n_bands) for these patterns."""
    rng = np.random.default_rng(seed)
    n, k = patterns.shape
    # Reflectance-like scales: water's pattern is large in the visible, so its coefficient is
    # small; vegetation and soil coefficients are a few tenths.
    fractions = rng.dirichlet([0.4, 0.4, 0.4], n_pixels) * np.array([0.012, 0.25, 0.3])
    coef = fractions * rng.uniform(0.5, 1.2, (n_pixels, 1))
    if k == 4:
        coef = np.column_stack([coef, rng.normal(0.0, 0.02, n_pixels)])
    spectra = coef @ patterns.T
    spectra += rng.normal(0.0, 0.004, spectra.shape)
    outside = rng.random(n_pixels) < 0.03
    spectra[outside] = rng.uniform(-0.05, 0.6, (int(outside.sum()), n))
    return spectra.astype(np.float32)


def scipy_loop(patterns: np.ndarray, spectra: np.ndarray, constrain_all: bool) -> np.ndarray:
    """Per-pixel scipy.optimize.nnls; a sign-free uC4 as the difference of two columns."""
    k = patterns.shape[1]
    design = patterns if constrain_all or k == 3 else np.column_stack([patterns, -patterns[:, 3]])
    out = np.empty((spectra.shape[0], design.shape[1]))
    for i, spectrum in enumerate(spectra):
        out[i], _ = nnls(design, spectrum)
    if design.shape[1] > k:
        out = np.column_stack([out[:, :3], out[:, 3] - out[:, 4]])
    return out


def bench_config(
    label: str,
    sensor: str,
    k: int,
    constrain: bool,
    n_pixels: int,
    n_scipy: int,
    repeats: int,
    seed: int,
    pause: float = PAUSE_S,
) -> dict[str, Any]:
    patterns, source = load_patterns(sensor, k)
    spectra = make_spectra(patterns, n_pixels, seed)
    pinv32 = np.linalg.pinv(patterns).T.astype(np.float32)
    sample = np.random.default_rng(seed + 1).choice(n_pixels, min(n_scipy, n_pixels), False)
    sample64 = spectra[sample].astype(np.float64)

    unconstrained = spectra @ pinv32
    n_constrained = k if constrain else min(k, 3)
    infeasible = float((unconstrained[:, :n_constrained] < 0).any(axis=1).mean())
    del unconstrained

    nnls_decompose(spectra[:1000], patterns, constrain_supplementary=constrain)  # warm up
    kernel_times, floor_times, scipy_times = [], [], []
    for _ in range(repeats):
        time.sleep(pause)
        t0 = time.perf_counter()
        spectra @ pinv32
        floor_times.append(time.perf_counter() - t0)
        time.sleep(pause)
        t0 = time.perf_counter()
        coef, _ = nnls_decompose(spectra, patterns, constrain_supplementary=constrain)
        kernel_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        reference = scipy_loop(patterns, sample64, constrain)
        scipy_times.append((time.perf_counter() - t0) / sample.size)

    kernel_s = float(np.median(kernel_times))
    floor_s = float(np.median(floor_times))
    scipy_per_pixel = float(np.median(scipy_times))
    scipy_s = scipy_per_pixel * n_pixels
    # The ratios are medians of per-repeat ratios, of timings taken one after the other: on a
    # shared machine whose load drifts they vary far less than ratios of separate medians.
    kernel = np.array(kernel_times)
    speedup = float(np.median(np.array(scipy_times) * n_pixels / kernel))
    ratio = float(np.median(kernel / np.array(floor_times)))
    scale = np.maximum(np.abs(reference).max(axis=1, keepdims=True), 1e-3)
    max_rel_diff = float((np.abs(coef[sample] - reference) / scale).max())
    return {
        "label": label,
        "sensor": sensor,
        "n_bands": patterns.shape[0],
        "n_patterns": k,
        "constrain_supplementary": constrain,
        "patterns_source": source,
        "n_pixels": n_pixels,
        "scipy_sample_pixels": int(sample.size),
        "infeasible_fraction": infeasible,
        "kernel_s_median": kernel_s,
        "kernel_s_min": float(np.min(kernel_times)),
        "kernel_s_all": [float(t) for t in kernel_times],
        "floor_s_median": floor_s,
        "floor_s_min": float(np.min(floor_times)),
        "scipy_s_per_pixel": scipy_per_pixel,
        "scipy_s_scaled": scipy_s,
        "speedup_vs_scipy": speedup,
        "ratio_vs_floor": ratio,
        "target_speedup_vs_scipy": TARGET_VS_SCIPY,
        "target_ratio_vs_floor": TARGET_VS_FLOOR,
        "meets_scipy_target": speedup >= TARGET_VS_SCIPY,
        "meets_floor_target": ratio <= TARGET_VS_FLOOR,
        "max_diff_vs_scipy_relative_to_pixel_max": max_rel_diff,
    }


# Run in a fresh interpreter: import, then time the first call (compile or cache load).
_FIRST_CALL = """
import time
import numpy as np
from updm_dask.science.decompose import nnls_decompose
t0 = time.perf_counter()
nnls_decompose(np.zeros((2, 6), np.float32), np.eye(6)[:, :4] + 0.1)
print(time.perf_counter() - t0)
"""


def first_call_times() -> dict[str, float]:
    """Seconds of a first call in a new process: with an empty cache, then with it filled."""
    # imported here: the script is also loaded on its own (tests load it by file path),
    # and only a full run, with this folder on sys.path, measures first calls
    import _common

    return _common.first_call_times(_FIRST_CALL)


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "kernel_threads": solver._thread_count(),
        "blas_env": {
            key: value
            for key, value in os.environ.items()
            if key.startswith(("OPENBLAS", "OMP_", "MKL_"))
        },
    }


def run(
    quick: bool = False,
    n_pixels: int | None = None,
    n_scipy: int | None = None,
    repeats: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Benchmark every configuration; returns the results as a JSON-ready dict.

    `quick` shrinks the run (fewer pixels, repeats and scipy samples, no pauses, no
    subprocess compile timing) for smoke tests.
    """
    n_pixels = n_pixels if n_pixels is not None else (100_000 if quick else 1_000_000)
    n_scipy = n_scipy if n_scipy is not None else (1_000 if quick else 10_000)
    repeats = repeats if repeats is not None else (3 if quick else 7)
    t0 = time.perf_counter()
    nnls_decompose(np.zeros((2, 6), np.float32), np.eye(6)[:, :4] + 0.1)
    first_call_s = time.perf_counter() - t0
    first = {} if quick else first_call_times()
    results = [
        bench_config(
            label, sensor, k, constrain, n_pixels, n_scipy, repeats, seed, 0.0 if quick else PAUSE_S
        )
        for label, sensor, k, constrain in CONFIGS
    ]
    rows = []
    for r in results:
        rows += [
            _row(
                f"{r['label']}: kernel vs scipy loop",
                r["speedup_vs_scipy"],
                "x",
                f">= {TARGET_VS_SCIPY:g}x",
                r["meets_scipy_target"],
            ),
            _row(
                f"{r['label']}: kernel / floor",
                r["ratio_vs_floor"],
                "x",
                f"<= {TARGET_VS_FLOOR:g}x",
                r["meets_floor_target"],
            ),
        ]
    rows.append(
        _row("kernel first call in this process (compile or cache load)", first_call_s, "s")
    )
    if first:
        rows += [
            _row("kernel compile, new process, empty cache", first["compile_s_cold_cache"], "s"),
            _row("kernel first call, new process, cache filled", first["load_s_warm_cache"], "s"),
        ]
    return {
        "benchmark": "kernel",
        "rows": rows,
        "quick": quick,
        "repeats": repeats,
        "first_call_s": first_call_s,
        **first,
        "environment": environment(),
        "results": results,
    }


def _row(
    measure: str, value: float, unit: str, target: str | None = None, met: bool | None = None
) -> dict[str, Any]:
    return {
        "measure": measure,
        "value": float(value),
        "unit": unit,
        "target": target,
        "met": None if met is None else bool(met),
    }


def report(summary: dict[str, Any]) -> str:
    """Human-readable report of :func:`run` output: per configuration, then the rows."""
    lines = [
        f"exact NNLS kernel, {summary['results'][0]['n_pixels']:,} pixels, float32, bands last; "
        f"times and ratios: medians over {summary['repeats']} repeats (ratios within a repeat)",
        f"environment: {summary['environment']}",
        f"first call in this process (compile or cache load, not in the ratios): "
        f"{summary['first_call_s']:.2f} s",
    ]
    if "compile_s_cold_cache" in summary:
        lines.append(
            f"first call in a new process: {summary['compile_s_cold_cache']:.2f} s with an "
            f"empty cache (compile), {summary['load_s_warm_cache']:.2f} s with it filled"
        )
    lines.append("")
    for r in summary["results"]:
        ok_scipy = "MET" if r["meets_scipy_target"] else "NOT MET"
        ok_floor = "MET" if r["meets_floor_target"] else "NOT MET"
        lines += [
            f"{r['label']}  [{r['patterns_source']}]",
            f"  infeasible pixels (unconstrained solution breaks a bound): "
            f"{100 * r['infeasible_fraction']:.1f} %",
            f"  kernel {1e3 * r['kernel_s_median']:.1f} ms (min {1e3 * r['kernel_s_min']:.1f})"
            f" | floor {1e3 * r['floor_s_median']:.1f} ms"
            f" | scipy loop {r['scipy_s_scaled']:.2f} s "
            f"({1e6 * r['scipy_s_per_pixel']:.2f} us/pixel on {r['scipy_sample_pixels']:,})",
            f"  vs scipy loop: {r['speedup_vs_scipy']:.0f}x faster "
            f"(target >= {TARGET_VS_SCIPY:.0f}x: {ok_scipy})",
            f"  vs floor:      {r['ratio_vs_floor']:.2f}x the floor "
            f"(target <= {TARGET_VS_FLOOR:.0f}x: {ok_floor})",
            f"  max |kernel - scipy| / pixel max on the sample: "
            f"{r['max_diff_vs_scipy_relative_to_pixel_max']:.1e}",
            "",
        ]
    lines.append(f"{'measure':<66}{'value':>9}  {'unit':<4}{'target':>8}  met")
    for r in summary["rows"]:
        met = "" if r["met"] is None else ("yes" if r["met"] else "NO")
        lines.append(
            f"{r['measure']:<66}{r['value']:>9.3g}  {r['unit']:<4}{r['target'] or '':>8}  {met}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pixels", type=int, default=None, help="default 1,000,000")
    parser.add_argument("--scipy-pixels", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="a small, fast run")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)
    summary = run(args.quick, args.pixels, args.scipy_pixels, args.repeats)
    print(report(summary))
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
