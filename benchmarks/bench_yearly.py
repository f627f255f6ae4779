"""CPU time of the per-year summary (updm_dask.cube.yearly_summary), before and now.

One year of T observations (default 20) of a 1024 x 1024 block, as the per-year rebuild
reads them from a cube (uint8 classes, uint8 quality bits, MVIUPD as int16 codes):

* numpy (before): the numpy implementation the compiled kernel replaced (a membership test,
  one pass per class, a masked copy sorted for the median, the counts), on decoded MVIUPD;
* decode (before): ``decode_layer`` of the whole MVIUPD block, which the rebuild did first;
* kernel, values: :func:`~updm_dask.cube.yearly_summary` now, on the same float32 values;
* kernel, stored codes: what the rebuild runs now, on the int16 codes (decoding only the
  clear observations' codes).

Times are CPU seconds of this process (``time.process_time``), the median of several
repeats; each result is checked bit for bit against the numpy one. The kernel is compiled
(numba) on first use and cached on disk; its first calls in this process are timed apart,
and a full run also times, in fresh subprocesses, a first call with an empty cache (the
compile) and one with that cache filled (the load).

Usage::

    python benchmarks/bench_yearly.py [--scenes T] [--side N] [--repeats R] [--quick]
                                      [--json PATH]

``run(quick=False) -> dict`` and ``report(summary) -> str`` serve the combined runner.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from updm_dask.cube import (
    CLEAR_COUNT_FILL,
    LAND_COVER_CLASSES,
    QUALITY_CLOUD,
    QUALITY_DARK,
    QUALITY_FILL,
    QUALITY_NOT_CLEAR,
    decode_layer,
    encode_layer,
    yearly_summary,
)
from updm_dask.cube._yearly import yearly_summary_of_stored
from updm_dask.science.reduce import nanmedian

CODE = {name: code for code, name in LAND_COVER_CLASSES.items()}
CLEAR_CLASSES = (CODE["water"], CODE["vegetation"], CODE["non_vegetated"])
PRIORITY = (CODE["vegetation"], CODE["non_vegetated"], CODE["water"])


def numpy_summary(land_cover: np.ndarray, quality: np.ndarray, mviupd: np.ndarray) -> np.ndarray:
    """The numpy per-year summary the kernel replaced (the baseline)."""
    lc, q = np.asarray(land_cover), np.asarray(quality)
    mv = np.asarray(mviupd, dtype=np.float32)
    clear = np.isin(lc, CLEAR_CLASSES) & ((q.astype(np.int64) & QUALITY_NOT_CLEAR) == 0)
    out = np.empty((4, *lc.shape[1:]), dtype=np.float32)
    best_class = np.zeros(lc.shape[1:], dtype=np.float32)
    best_count = np.zeros(lc.shape[1:], dtype=np.int64)
    for code in PRIORITY:
        count = (clear & (lc == code)).sum(axis=0)
        better = count > best_count
        best_class[better] = code
        best_count[better] = count[better]
    out[0] = best_class
    out[1] = nanmedian(np.where(clear, mv, np.float32(np.nan)), axis=0)
    seen = ((q.astype(np.int64) & QUALITY_FILL) == 0).any(axis=0)
    out[2] = np.where(seen, np.minimum(clear.sum(axis=0), CLEAR_COUNT_FILL - 1), CLEAR_COUNT_FILL)
    out[3] = np.minimum(best_count, np.iinfo(np.uint16).max)
    return out


def make_year(n_obs: int, side: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(land_cover, quality, MVIUPD codes) of one year: a class per pixel that the
    observations mostly agree on, clouds on ~30 % of them, a scene edge (FILL), dark pixels."""
    rng = np.random.default_rng(seed)
    shape = (n_obs, side, side)
    usual = rng.choice(np.asarray(CLEAR_CLASSES, np.uint8), size=(side, side))
    lc = np.where(rng.random(shape) < 0.8, usual, rng.integers(0, 5, shape, dtype=np.uint8)).astype(
        np.uint8
    )
    q = np.zeros(shape, np.uint8)
    q[rng.random(shape) < 0.3] = QUALITY_CLOUD
    lc[q == QUALITY_CLOUD] = CODE["cloud"]
    q[:, :, : side // 10] |= np.where(rng.random((n_obs, 1, 1)) < 0.5, QUALITY_FILL, 0).astype(
        np.uint8
    )
    mv = (0.3 * (usual == CODE["vegetation"]) + rng.normal(0, 0.15, shape)).astype(np.float32)
    dark = rng.random(shape) < 0.03
    mv[dark] = np.nan
    q[dark] |= QUALITY_DARK
    return lc, q, encode_layer("mviupd", mv)


def _cpu(func: Any, repeats: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.process_time()
        result = func()
        times.append(time.process_time() - t0)
    return float(np.median(times)), result


_FIRST_CALL = """
import time
import numpy as np
from updm_dask.cube import yearly_summary
from updm_dask.cube._yearly import yearly_summary_of_stored
a = np.zeros((2, 3), np.uint8)
t0 = time.perf_counter()
yearly_summary(a, a, np.zeros((2, 3), np.float32))
yearly_summary_of_stored(a, a, np.zeros((2, 3), np.int16))
print(time.perf_counter() - t0)
"""


def first_call_times() -> dict[str, float]:
    """Seconds of the first calls in a new process: with an empty cache, then with it filled."""
    # imported here: the script is also loaded on its own (tests load it by file path),
    # and only a full run, with this folder on sys.path, measures first calls
    import _common

    return _common.first_call_times(_FIRST_CALL)


def run(
    quick: bool = False,
    n_obs: int | None = None,
    side: int | None = None,
    repeats: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Time the summaries; returns the results as a JSON-ready dict.

    `quick` shrinks the run (a 256 x 256 block, one repeat, no subprocess compile timing).
    """
    n_obs = n_obs if n_obs is not None else 20
    side = side if side is not None else (256 if quick else 1024)
    repeats = repeats if repeats is not None else (1 if quick else 3)
    lc, q, codes = make_year(n_obs, side, seed)
    t0 = time.perf_counter()
    yearly_summary(lc[:, :2, :2], q[:, :2, :2], decode_layer("mviupd", codes[:, :2, :2]))
    yearly_summary_of_stored(lc[:, :2, :2], q[:, :2, :2], codes[:, :2, :2])
    first_call_s = time.perf_counter() - t0
    first = {} if quick else first_call_times()

    decode_s, values = _cpu(lambda: decode_layer("mviupd", codes), repeats)
    numpy_s, want = _cpu(lambda: numpy_summary(lc, q, values), repeats)
    kernel_values_s, got_values = _cpu(lambda: yearly_summary(lc, q, values), repeats)
    kernel_codes_s, got_codes = _cpu(lambda: yearly_summary_of_stored(lc, q, codes), repeats)
    identical = all(
        np.array_equal(got.view(np.uint32), want.view(np.uint32)) for got in (got_values, got_codes)
    )
    before = numpy_s + decode_s
    label = f"{n_obs} x {side} x {side}"
    rows = [
        _row(f"per-year summary {label}: numpy (before)", numpy_s, "s CPU"),
        _row(f"per-year summary {label}: MVIUPD decode (before)", decode_s, "s CPU"),
        _row(f"per-year summary {label}: kernel on values", kernel_values_s, "s CPU"),
        _row(f"per-year summary {label}: kernel on stored codes", kernel_codes_s, "s CPU"),
        _row("per-year rebuild: (numpy + decode) / kernel on codes", before / kernel_codes_s, "x"),
        _row(
            "per-year summary, kernel on codes, per scene of 1 Mpx",
            kernel_codes_s / n_obs / (side * side / 2**20),
            "s CPU",
        ),
        _row("kernel first calls in this process (compile or cache load)", first_call_s, "s"),
    ]
    if first:
        rows += [
            _row("kernel compile, new process, empty cache", first["compile_s_cold_cache"], "s"),
            _row("kernel first calls, new process, cache filled", first["load_s_warm_cache"], "s"),
        ]
    return {
        "benchmark": "yearly",
        "rows": rows,
        "quick": quick,
        "repeats": repeats,
        "shape": [n_obs, side, side],
        "identical_to_numpy": bool(identical),
        "numpy_s": numpy_s,
        "decode_s": decode_s,
        "kernel_values_s": kernel_values_s,
        "kernel_codes_s": kernel_codes_s,
        "first_call_s": first_call_s,
        **first,
    }


def _row(measure: str, value: float, unit: str) -> dict[str, Any]:
    return {"measure": measure, "value": float(value), "unit": unit, "target": None, "met": None}


def report(summary: dict[str, Any]) -> str:
    """Human-readable report of :func:`run` output."""
    t, n, _ = summary["shape"]
    lines = [
        f"per-year summary of {t} observations x {n} x {n} pixels, CPU seconds, median of "
        f"{summary['repeats']}; results bit-identical to numpy: {summary['identical_to_numpy']}",
        "",
        f"{'measure':<66}{'value':>9}  unit",
    ]
    for r in summary["rows"]:
        lines.append(f"{r['measure']:<66}{r['value']:>9.3g}  {r['unit']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=None, help="observations, default 20")
    parser.add_argument("--side", type=int, default=None, help="block side, default 1024")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="a small, fast run")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)
    summary = run(args.quick, args.scenes, args.side, args.repeats)
    print(report(summary))
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        print(f"results written to {args.json}")
    return 0 if summary["identical_to_numpy"] else 1


if __name__ == "__main__":
    sys.exit(main())
