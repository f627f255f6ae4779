"""Smoke test of benchmarks/bench_scale_table.py: its quick run measures every figure of the
archive-scale table on real demo scenes, cubes and dask processes, and prints the table
(structure and consistency, never speed)."""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"

#: The rows of the design note's table, in its order.
WHAT_GROWS = (
    "tasks per scene with the grid",
    "append time of that scene",
    "commit time with scenes in the cube",
    "manifest bytes on disk",
    "per-year rebuild per scene",
    "per-year build, every year",
    "a point's every-scene series",
    "one driver + one scheduler",
    "storage",
    "end to end",
)


@pytest.fixture(scope="module")
def scale(tmp_path_factory):
    """The quick run's summary and printed report (run once: it takes a minute or two)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCH_DIR))
        mp.setenv("UPDM_BENCH_CACHE", str(tmp_path_factory.mktemp("bench-cache")))
        try:
            bench = importlib.import_module("bench_scale_table")
            summary = bench.run(quick=True)
            text = bench.report(summary)
            run_all = importlib.import_module("run_all")
            listed = run_all.available()
        finally:
            for name in [
                m for m in sys.modules if m.startswith("bench_") or m in ("_common", "run_all")
            ]:
                sys.modules.pop(name, None)
    return summary, text, listed


@pytest.mark.slow
def test_quick_run_prints_every_figure_before_and_after(scale):
    summary, text, _ = scale
    json.dumps(summary)  # the JSON the full run saves
    lines = [ln for ln in summary["table"].splitlines() if ln.startswith("| ")]
    assert lines[0] == "| what grows | before (quoted) | after (measured now) | ratio / target |"
    body = lines[1:]
    assert [ln.split(" | ")[0].removeprefix("| ") for ln in body] == list(WHAT_GROWS)
    for ln in body:
        cells = ln.strip("|").split(" | ")
        assert len(cells) == 4, ln
        assert "(scale-design.md)" in cells[1], ln  # the before figure says where it is from
        assert cells[2].strip() and cells[3].strip(), ln
    assert "load average at the start:" in text and "; at the end:" in text
    for r in summary["rows"]:
        assert r["measure"] in text
        assert math.isfinite(r["value"]) and r["value"] > 0, r
        assert (r["met"] is None) == (r["target"] is None), r


@pytest.mark.slow
def test_quick_run_measures_the_same_scene_on_every_grid(scale):
    summary, _, _ = scale
    grids = summary["grids"]
    assert [g["grid"] for g in grids] == [1024, 4096]
    # the scene lies in the middle of the large grid, on the chunk lattice
    assert grids[1]["offset"] > 0 and grids[1]["offset"] % 512 == 0
    for g in grids:
        assert g["tasks"] > 0 and g["append_s"] > 0
        assert g["stored_bytes_tm"] > 0 and g["rebuild_bytes"] > 0 and g["rebuild_tasks"] > 0
    # the same scene, on the chunk lattice, stores the same bytes wherever the grid puts it
    assert grids[0]["stored_bytes_tm"] == grids[1]["stored_bytes_tm"]
    commits = summary["commits"]
    assert [c["scenes"] for c in commits["checkpoints"]] == [100, 200]
    assert commits["incremental"]["tasks"] > 0 and commits["batch"] == 32
    series = summary["series"]
    assert series["scenes"] == 24 and series["blocked_s"] > 0 and series["per_scene_s"] > 0
    assert summary["job_tasks"] > 0
    assert set(summary["job"]["timings"]) == {"1", "2"}


@pytest.mark.slow
def test_run_all_leaves_the_scale_table_to_its_own_run(scale):
    _, _, listed = scale
    assert "scale_table" not in listed
    assert {"job", "commits", "kernel"} <= set(listed)


@pytest.mark.slow
def test_quick_run_writes_the_scene_through_a_tiled_collection_in_1_2_and_4_tiles(scale):
    summary, text, _ = scale
    c = summary["continental"]
    assert c["own"]["append_tasks"] > 0 and c["own"]["bytes"] > 0
    assert [len(r["tiles"]) for r in c["runs"]] == [1, 2, 4]
    for r in c["runs"]:
        assert r["append_tasks"] >= c["own"]["append_tasks"] and r["rebuild_tasks"] > 0
        assert r["catalogue_bytes"] > 0 and all(b > 0 for b in r["tile_bytes"].values())
        assert r["append_tasks_ratio"] == r["append_tasks"] / c["own"]["append_tasks"]
    table = summary["continental_table"]
    assert table in text and table.count("(scale-design.md)") == 5
    rows = [ln for ln in table.splitlines() if ln.startswith("| ")][1:]
    assert [ln.split(" | ")[0].removeprefix("| ") for ln in rows] == [
        "tasks of a scene on a continental tiled grid",
        "append time of that scene, tiled",
        "per-(tile, year) rebuild of that scene's year",
        "driver memory for the scene's graph",
        "bytes of the catalogue and of each tile",
    ]


@pytest.mark.slow
def test_quick_run_writes_the_largest_scene_across_four_tiles_against_its_own_grid(scale):
    summary, text, _ = scale
    large = summary["continental_large"]
    assert [len(r["tiles"]) for r in large["runs"]] == [4]
    (run,) = large["runs"]
    assert run["append_s_ratio"] == run["append_s"] / large["own"]["append_s"]
    assert run["append_tasks"] >= large["own"]["append_tasks"] > 0
    table = summary["continental_large_table"]
    assert table in text and "4 tiles of a" in table and "own grid (single cube)" in table
    rows = {r["measure"]: r for r in summary["rows"]}
    where = f"a {large['scene']}^2 scene in 4 tiles of a {run['grid']}^2 grid"
    assert rows[f"append of {where} / own grid"]["value"] == pytest.approx(run["append_s_ratio"])
