"""The recovery report: yearly layers judged against the planted truth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from updm_dask.demo import format_recovery, recovery_report
from updm_dask.errors import GridError


def test_recovery_report_hand_worked():
    truth = {2000: np.array([[2, 3], [3, 4]], dtype=np.uint8)}
    found = {2000: np.array([[2, 3], [1, 3]], dtype=np.uint8)}
    (row,) = recovery_report(found, truth)
    assert row.year == 2000
    # 3 classified pixels: water 1, vegetation 2; planted over all 4 pixels: 1, 2, 1.
    assert row.found == pytest.approx(
        {"water": 100 / 3, "vegetation": 200 / 3, "non_vegetated": 0.0}
    )
    assert row.planted == pytest.approx({"water": 25.0, "vegetation": 50.0, "non_vegetated": 25.0})
    assert row.unclassified_pct == pytest.approx(25.0)
    assert row.agreement_pct == pytest.approx(200 / 3)  # the urban pixel was called vegetation
    text = format_recovery([row])
    assert "2000" in text and "66.7" in text and "33.3" in text and "agreement" in text


def test_recovery_report_against_an_archive_and_edge_cases(archive):
    years = [1980, 2020]
    perfect = {y: archive.truth_class(y) for y in years}
    rows = recovery_report(perfect, archive)
    assert [r.year for r in rows] == years
    assert all(r.agreement_pct == 100.0 and r.unclassified_pct == 0.0 for r in rows)
    assert all(r.found == pytest.approx(r.planted) for r in rows)
    clouded = {1990: np.ones(archive.grid.shape, dtype=np.uint8)}
    (row,) = recovery_report(clouded, archive.truth_class)
    assert math.isnan(row.agreement_pct) and row.unclassified_pct == 100.0
    assert "    -" in format_recovery([row])
    with pytest.raises(GridError, match="shape"):
        recovery_report({2000: np.zeros((3, 3), dtype=np.uint8)}, archive)
    with pytest.raises(GridError, match="no layer for year 1999"):
        recovery_report({1999: perfect[1980]}, {1980: perfect[1980]})
    with pytest.raises(GridError, match="truth must be"):
        recovery_report(perfect, 42)


@pytest.mark.slow
def test_the_demo_cube_recovers_the_planted_shares_of_every_year(tmp_path):
    # the whole 1973-2024 schedule (68 scenes, cloudy years among them) through the
    # pipeline into a cube, on a small grid
    from affine import Affine

    from updm_dask.cube import create_cube
    from updm_dask.demo import make_demo_archive
    from updm_dask.geo import CubeGrid
    from updm_dask.jobs.run import scene_on_grid
    from updm_dask.scenes import discover_scenes

    archive = make_demo_archive(tmp_path, seed=0, size=48)
    grid = CubeGrid(archive.grid.crs, Affine(*archive.grid.transform), tuple(archive.grid.shape))
    cube = create_cube(tmp_path / "cube", grid)
    scenes = [scene_on_grid(s, grid) for s in discover_scenes([str(archive.root)]).scenes]
    cube.append_scenes(scenes, metadata={"job_id": "recovery"}, message="demo")
    cube.rebuild_yearly()
    rows = recovery_report(cube, archive)  # the complete annual maps
    stored = recovery_report(cube, archive, observed_only=True)
    assert [r.year for r in rows] == list(range(1973, 2025)) == [r.year for r in stored]

    def worst(rs):
        return max(abs(r.found[n] - r.planted[n]) for r in rs for n in r.found)

    # found vs planted shares: within 2 points every year (MSS pixels mix classes at the
    # lake shore in the 1970s-80s); the observed part alone misses by 5 points or more
    assert worst(rows) < 2.0
    assert worst(stored) > 5.0
    y2008 = rows[2008 - 1973]
    assert abs(y2008.found["vegetation"] - y2008.planted["vegetation"]) < 1.0
    assert stored[2008 - 1973].unclassified_pct > 10 and y2008.unclassified_pct == 0
    assert np.mean([r.agreement_pct for r in rows]) > 97
