"""Smoke tests of the benchmark suite (benchmarks/): structure, never speed.

Every benchmark of the end-to-end suite runs in its quick form and must return the
protocol's summary (``benchmark`` and ``rows`` of measure/value/unit/target/met) with
finite, positive values; the combined runner's table and option parsing are checked on
made-up summaries. No time is compared with any threshold here: the scripts measure, the
tests only check that they can.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """Import ``benchmarks/<name>.py`` modules; generated archives go to a temp folder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCH_DIR))
        mp.setenv("UPDM_BENCH_CACHE", str(tmp_path_factory.mktemp("bench-cache")))
        yield lambda name: importlib.import_module(name)
    for name in [m for m in sys.modules if m.startswith("bench_") or m in ("_common", "run_all")]:
        sys.modules.pop(name, None)


def _check_summary(summary: dict, name: str) -> None:
    assert summary["benchmark"] == name
    json.dumps(summary)  # JSON-ready
    rows = summary["rows"]
    assert rows, "a benchmark must report rows"
    for r in rows:
        assert set(r) == {"measure", "value", "unit", "target", "met"}, r
        assert isinstance(r["measure"], str) and r["measure"]
        assert isinstance(r["unit"], str) and r["unit"]
        assert isinstance(r["value"], float)
        assert math.isfinite(r["value"]) and r["value"] > 0, r
        assert r["target"] is None or isinstance(r["target"], str)
        # a target is judged, and only a target is
        assert (r["met"] is None) == (r["target"] is None), r
        assert r["met"] is None or isinstance(r["met"], bool)
    measures = [r["measure"] for r in rows]
    assert len(set(measures)) == len(measures), "measures must be unique"


# --------------------------------------------------------------------------------------
# Each benchmark, quick


@pytest.fixture(scope="module")
def quick(bench):
    """``run(quick=True)`` of a benchmark, run once per module."""
    done = {}

    def get(name):
        if name not in done:
            done[name] = bench(f"bench_{name}").run(quick=True)
        return done[name]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("name", ["e2e", "scaling", "memory", "storage", "catalogue"])
def test_quick_run_returns_the_protocol_summary(bench, quick, name):
    summary = quick(name)
    _check_summary(summary, name)
    text = bench(f"bench_{name}").report(summary)
    for r in summary["rows"]:
        assert r["measure"] in text


@pytest.mark.slow
def test_scaling_times_the_driver_around_the_tasks_in_the_workers_own_clock(bench):
    # The task stream's times carry each worker's estimated offset to the scheduler's
    # clock; a quick batch's commit is shorter than that estimate's error, and its share
    # once came out 0. The transition logs must bound what the tasks did, in the driver's
    # clock: the window lies between the call and its return and covers every sleep.
    import time

    from distributed import Client, LocalCluster

    scaling = bench("bench_scaling")
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        since = time.time()
        lo = time.time()
        futures = client.map(time.sleep, [0.05] * 4, pure=False)
        client.gather(futures)
        hi = time.time()
        until = time.time()
        windows = [
            w for w in client.run(scaling._execution_window, since=since, until=until).values() if w
        ]
        outside = client.run(scaling._execution_window, since=until + 1, until=until + 2)
    assert windows, "no worker logged an execution"
    first, last = min(w[0] for w in windows), max(w[1] for w in windows)
    assert lo <= first < last <= hi
    # Four sleeps of 50 ms on two threads: at least 100 ms between first start and last end.
    assert last - first >= 0.1
    assert all(w is None for w in outside.values())


@pytest.mark.slow
def test_e2e_floor_stores_the_same_bytes(quick):
    # The floor writes the e2e's own output: its stored size must be the e2e's, exactly.
    summary = quick("e2e")
    check = next(r for r in summary["rows"] if r["measure"].startswith("floor stored bytes"))
    assert check["value"] == 1.0
    assert summary["config"]["stored_bytes"] > 0


# --------------------------------------------------------------------------------------
# Shared helpers


def test_format_value(bench):
    common = bench("_common")
    assert common.format_value(1234567.0) == "1,234,567"
    assert common.format_value(0.0123456) == "0.01235"
    assert common.format_value(2.5) == "2.5"
    assert common.format_value(float("nan")) == "nan"


def test_row_and_table_alignment(bench):
    common = bench("_common")
    rows = [
        common.row("e2e / floor", 1.5, "x", "<= 2x", True),
        common.row("pixels per core", 250000.0, "px/s/core"),
    ]
    assert rows[0] == {
        "measure": "e2e / floor",
        "value": 1.5,
        "unit": "x",
        "target": "<= 2x",
        "met": True,
    }
    lines = common.format_rows(rows).splitlines()
    assert lines[0].split(" | ")[:3] == ["measure        ", "  value", "unit     "]
    assert "| <= 2x  | yes" in lines[2]
    assert "250,000" in lines[3]
    # every line has its separators in the same places
    assert len({tuple(i for i, c in enumerate(line) if c == "|") for line in lines[2:]}) == 1


def test_interleave_runs_round_by_round(bench):
    common = bench("_common")
    calls = []

    def case(name):
        def run():
            calls.append(name)
            return float(len(calls))

        return run

    times = common.interleave({"a": case("a"), "b": case("b")}, {"a": 3, "b": 2})
    assert calls == ["a", "b", "a", "b", "a"]
    assert times == {"a": [1.0, 3.0, 5.0], "b": [2.0, 4.0]}
    assert common.median(times["a"]) == 3.0


def test_stored_chunk_bytes_counts_chunk_objects_only(bench):
    import zarr

    common = bench("_common")
    store = zarr.storage.MemoryStore()
    arr = zarr.create_array(
        store,
        name="v",
        shape=(30,),
        chunks=(10,),
        dtype="float32",
        compressors=None,
        fill_value=0.0,
        config={"write_empty_chunks": False},
    )
    data = np.zeros(30, dtype=np.float32)
    data[:20] = 1.0  # the last chunk is all fill: not stored
    arr[:] = data
    # two uncompressed chunks of 10 float32; the zarr.json metadata is not counted
    assert common.stored_chunk_bytes(store, "v") == (80, 2)


def test_the_repository_record_counts_the_repo_object_and_its_kept_versions(bench, tmp_path):
    import icechunk
    import zarr

    commits = bench("bench_commits")
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "r")))
    for i in range(3):
        session = repo.writable_session("main")
        zarr.open_group(session.store).attrs["i"] = i
        session.commit(f"commit {i}")
    root = tmp_path / "r"
    kept = [f.stat().st_size for f in (root / "overwritten").iterdir()]
    # Icechunk keeps the record's earlier version at each update: one per commit here
    assert len(kept) >= 3
    assert commits.record_bytes(root) == (root / "repo").stat().st_size + sum(kept)
    assert commits.record_bytes(tmp_path / "none") == 0


def test_task_log_counts_tasks_by_kind(bench):
    import dask

    common = bench("_common")

    def inc(x):
        return x + 1

    def dec(x):
        return x - 1

    work = [dask.delayed(inc)(i) for i in range(3)] + [dask.delayed(dec)(5)]
    log = common.TaskLog({"increments": ("inc",)})
    with log, dask.config.set(scheduler="threads"):
        assert dask.compute(*work) == (1, 2, 3, 4)
    assert log.count == {"increments": 3, "other": 1}
    assert log.tasks == 4
    assert log.first_start is not None and log.last_end >= log.first_start


# --------------------------------------------------------------------------------------
# The combined runner


def _fake_combined():
    return {
        "started": "2026-01-01T00:00:00+00:00",
        "seconds": 12.0,
        "quick": False,
        "environment": {"cpu_model": "Test CPU", "cores_usable": 2, "versions": {}},
        "benchmarks": {
            "e2e": {
                "benchmark": "e2e",
                "seconds": 10.0,
                "steal_seconds": 1.25,
                "rows": [
                    {
                        "measure": "e2e / I/O floor",
                        "value": 2.5,
                        "unit": "x",
                        "target": "<= 2x",
                        "met": False,
                    },
                    {
                        "measure": "throughput per core",
                        "value": 123456.0,
                        "unit": "px/s/core",
                        "target": None,
                        "met": None,
                    },
                ],
            },
            "scaling": {
                "benchmark": "scaling",
                "seconds": 2.0,
                "rows": [
                    {
                        "measure": "speedup 2 workers vs 1",
                        "value": 1.8,
                        "unit": "x",
                        "target": ">= 1.7x",
                        "met": True,
                    }
                ],
            },
            "memory": {"benchmark": "memory", "rows": [], "error": "RuntimeError: boom"},
            "embed": {"benchmark": "embed", "rows": [], "skipped": "no run(quick)"},
        },
    }


def test_run_all_prints_one_table_with_targets_beside_values(bench):
    run_all = bench("run_all")
    text = run_all.format_table(_fake_combined())
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("benchmark"))
    assert [c.strip() for c in header.split("|")] == [
        "benchmark",
        "measure",
        "value",
        "unit",
        "target",
        "met",
    ]
    assert sum(1 for line in lines if line.startswith("benchmark ")) == 1  # ONE table
    ratio = next(line for line in lines if "e2e / I/O floor" in line)
    assert [c.strip() for c in ratio.split("|")] == [
        "e2e",
        "e2e / I/O floor",
        "2.5",
        "x",
        "<= 2x",
        "NO",
    ]
    speed = next(line for line in lines if "speedup" in line)
    assert [c.strip() for c in speed.split("|")][-2:] == [">= 1.7x", "yes"]
    assert "123,456" in text
    assert "targets met: 1 of 2" in text
    assert "e2e: e2e / I/O floor (<= 2x)" in text  # listed among the targets not met
    assert "memory: FAILED: RuntimeError: boom" in text
    assert "embed: no run(quick)" in text.split("skipped:")[1]
    # the time other virtual machines took, beside the benchmark it disturbed
    times = next(line for line in lines if line.startswith("time per benchmark"))
    assert "e2e 10 s (steal 1.2 s)" in times and "scaling 2 s," in times
    assert any(line.startswith("steal: CPU seconds") for line in lines)


def test_cpu_steal_is_read_from_the_kernels_cpu_line(bench, tmp_path):
    import os

    common = bench("_common")
    hz = os.sysconf("SC_CLK_TCK")
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice, in clock ticks
    stat.write_text(f"cpu  10 0 5 900 1 0 2 {3 * hz} 0 0\ncpu0 5 0 2 450 0 0 1 {hz} 0 0\n")
    assert common.cpu_steal_seconds(stat) == 3.0
    stat.write_text("intr 1 2 3\n")  # no cpu line first: not reported
    assert common.cpu_steal_seconds(stat) is None
    assert common.cpu_steal_seconds(tmp_path / "missing") is None
    here = common.cpu_steal_seconds()  # this machine's, where Linux reports it
    assert here is None or here >= 0.0


def test_run_all_finds_every_bench_script_in_running_order(bench, tmp_path):
    run_all = bench("run_all")
    for name in ("bench_zeta.py", "bench_query.py", "bench_kernel.py", "bench_alpha.py"):
        (tmp_path / name).write_text("")
    (tmp_path / "_common.py").write_text("")
    assert run_all.available(tmp_path) == ["kernel", "query", "alpha", "zeta"]
    # this suite's own scripts are all found
    assert {"kernel", "e2e", "scaling", "memory", "storage"} <= set(run_all.available())


def test_run_all_only_selects_and_orders(bench):
    run_all = bench("run_all")
    names = ["kernel", "e2e", "storage", "query"]
    assert run_all.parse_only(None, names) == names
    assert run_all.parse_only("storage, bench_e2e", names) == ["e2e", "storage"]
    with pytest.raises(ValueError, match=r"unknown benchmark 'nope'.*kernel"):
        run_all.parse_only("e2e,nope", names)
    with pytest.raises(ValueError, match="no benchmark named"):
        run_all.parse_only(" , ", names)
    with pytest.raises(SystemExit):
        run_all.main(["--only", "nope"])


def test_run_all_keeps_going_after_a_failing_benchmark(bench):
    run_all = bench("run_all")
    good = SimpleNamespace(
        run=lambda quick: {
            "benchmark": "good",
            "rows": [{"measure": "m", "value": 1.0, "unit": "s", "target": None, "met": None}],
        }
    )

    def broken(quick):
        raise RuntimeError("no data")

    modules = {
        "kernel": good,
        "e2e": SimpleNamespace(run=broken),
        "storage": SimpleNamespace(run=lambda quick: {"benchmark": "storage"}),
        "embed": SimpleNamespace(main=lambda: 0),  # a script outside the protocol
    }
    combined = run_all.run_benchmarks(
        ["kernel", "e2e", "storage", "embed"], True, modules, echo=lambda s: None
    )
    results = combined["benchmarks"]
    assert results["kernel"]["rows"][0]["measure"] == "m"
    assert results["e2e"]["error"] == "RuntimeError: no data"
    assert "no 'rows'" in results["storage"]["error"]
    assert "not in the benchmark protocol" in results["embed"]["skipped"]
    assert "error" not in results["embed"]
    assert all(r["seconds"] >= 0 for r in results.values())
    json.dumps(combined, default=str)
    assert "FAILED" in run_all.format_table(combined)


def test_environment_keeps_settings_but_not_folder_paths(bench, monkeypatch, tmp_path):
    # saved results describe the machine's settings, never where its folders are
    monkeypatch.setenv("UPDM_BENCH_PROBE_FOLDER", str(tmp_path))
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    env = bench("_common").environment()["threads_env"]
    assert env["UPDM_BENCH_PROBE_FOLDER"] == "(a path)"
    assert env["OMP_NUM_THREADS"] == "2"
    assert str(tmp_path) not in repr(env)
