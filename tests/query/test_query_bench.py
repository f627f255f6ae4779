"""Smoke test of benchmarks/bench_query.py: the quick run has the protocol's structure."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest
from conftest import REPO_ROOT


@pytest.mark.slow
def test_quick_query_benchmark_reports_finite_positive_rows():
    spec = importlib.util.spec_from_file_location(
        "bench_query", REPO_ROOT / "benchmarks" / "bench_query.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    summary = bench.run(quick=True)
    json.dumps(summary)
    assert summary["benchmark"] == "query"
    assert len(summary["rows"]) >= 8
    for row in summary["rows"]:
        assert set(row) == {"measure", "value", "unit", "target", "met"}
        assert math.isfinite(row["value"]) and row["value"] > 0
        assert (row["target"] is None) == (row["met"] is None)
    assert any(r["target"] == "< 0.2 s" for r in summary["rows"])
    text = bench.report(summary)
    assert "point per-year series" in text and "area fractions" in text
