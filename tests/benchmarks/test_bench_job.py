"""Smoke test of benchmarks/bench_job.py: it runs on real scheduler and worker processes
and prints every measure the job benchmark promises (structure, never speed)."""

from __future__ import annotations

import importlib
import json
import math
import statistics
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.slow
def test_job_benchmark_prints_cost_floor_speedup_and_scheduler_share(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH_DIR))
    monkeypatch.setenv("UPDM_BENCH_CACHE", str(tmp_path / "cache"))
    try:
        bench = importlib.import_module("bench_job")
        summary = bench.run(quick=True)
        text = bench.report(summary)
    finally:
        for name in [m for m in sys.modules if m in ("bench_job", "_common")]:
            sys.modules.pop(name, None)
    json.dumps(summary)
    rows = {r["measure"]: r for r in summary["rows"]}
    for measure in (
        "floor per scene, one core (decode + NNLS + zstd)",
        "marginal cost / floor (wall)",
        "marginal CPU / floor CPU",
        "Mpx/s per core (all scenes, 2 workers, wall)",
        "2 workers vs 1 (wall)",
        "scheduler share of the job's CPU",
        "load average (1 min) before",
    ):
        assert measure in rows and measure in text, measure
        assert math.isfinite(rows[measure]["value"]), measure
        assert rows[measure]["unit"]
    # a marginal cost is a difference of two timings: on a tiny quick run it may be <= 0
    for measure in (
        "floor per scene, one core (decode + NNLS + zstd)",
        "Mpx/s per core (all scenes, 2 workers, wall)",
        "2 workers vs 1 (wall)",
    ):
        assert rows[measure]["value"] > 0, measure
    assert 0 <= rows["scheduler share of the job's CPU"]["value"] < 100
    assert set(summary["timings"]) == {"1", "2"}
    # each run is measured against a floor measured right before it
    runs = summary["floors"]["runs_2_workers"]
    assert runs and all(r["floor"] > 0 for r in runs)
    assert rows["floor per scene, one core (decode + NNLS + zstd)"]["value"] == pytest.approx(
        statistics.median(r["floor"] for r in runs)
    )
    ratio = statistics.median(r["cpu_ratio"] for r in runs)
    assert rows["marginal CPU / floor CPU"]["value"] == pytest.approx(ratio)


def test_the_benchmark_cluster_runs_as_deploy_dask_yaml_configures_it(monkeypatch):
    # the job is measured on a scheduler and workers set up as a deployment sets them up
    import dask.config
    import yaml

    monkeypatch.syspath_prepend(str(BENCH_DIR))
    try:
        bench = importlib.import_module("bench_job")
        env = dict(bench.CLUSTER_ENV)
    finally:
        for name in [m for m in sys.modules if m in ("bench_job", "_common")]:
            sys.modules.pop(name, None)
    deployed = yaml.safe_load((BENCH_DIR.parent / "deploy" / "dask.yaml").read_text())
    from_env = dask.config.collect_env(env)

    def leaves(tree: dict, prefix: tuple = ()) -> dict:
        out = {}
        for k, v in tree.items():
            out.update(leaves(v, (*prefix, k)) if isinstance(v, dict) else {(*prefix, k): v})
        return out

    wanted = leaves(from_env)
    assert wanted == {
        ("distributed", "worker", "profile", "enabled"): False,
        ("distributed", "admin", "tick", "interval"): "500ms",
    }
    for path, value in wanted.items():
        node = deployed
        for k in path:
            node = node[k]
        assert node == value, path
