"""Smoke test of benchmarks/bench_yearly.py: its summary and its own equality check."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_yearly.py"


def test_quick_yearly_benchmark_reports_rows_and_identical_results():
    spec = importlib.util.spec_from_file_location("bench_yearly", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    summary = bench.run(quick=True, n_obs=7, side=48)
    json.dumps(summary)
    assert summary["benchmark"] == "yearly"
    assert summary["identical_to_numpy"] is True
    measures = [r["measure"] for r in summary["rows"]]
    assert len(set(measures)) == len(measures) == 7
    for row in summary["rows"]:
        assert set(row) == {"measure", "value", "unit", "target", "met"}
        assert math.isfinite(row["value"]) and row["value"] > 0
    text = bench.report(summary)
    assert all(m in text for m in measures)
    # the baseline is the numpy summary, the kernel's results are checked against it
    lc, q, codes = bench.make_year(5, 16, seed=1)
    values = bench.decode_layer("mviupd", codes)
    np.testing.assert_array_equal(
        bench.numpy_summary(lc, q, values), bench.yearly_summary(lc, q, values)
    )
