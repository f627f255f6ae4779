"""The demo's planted history, recovered through the cube queries.

A small demo archive (synthetic Landsat scenes 1973-2024 with a town that clears the forest
decade by decade, a reservoir flooding a valley in 1994, a lake and untouched forest) is
processed by the real pipeline into a cube; the queries must then tell the planted story.
"""

from __future__ import annotations

import numpy as np
import pytest
from _demo_cube import build_demo_cube

from updm_dask import query as q
from updm_dask.demo import RESERVOIR_FILL_YEAR, format_recovery, recovery_report

pytestmark = pytest.mark.slow

PERSISTENCE = 3


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return build_demo_cube(
        tmp_path_factory.mktemp("demo"), seed=5, n_scenes=24, size=40, job_id="demo-test"
    )


def test_yearly_classes_match_the_planted_story(demo):
    archive, cube = demo
    rows = recovery_report(cube, archive)
    assert [r.year for r in rows] == list(archive.years)
    assert np.mean([r.agreement_pct for r in rows]) > 97
    text = format_recovery(rows)
    assert "mean agreement" in text
    # the class shares the area query gives follow the truth over the pixels each year saw
    stats = q.area_statistics(cube, observed_only=True).set_index("year")
    win, _ = q.open_yearly(cube)
    seen = win["yearly_clear_count"].values > 0
    for i, year in enumerate(win["year"].values):
        truth = archive.truth_class(int(year))[seen[i]]
        assert stats.loc[year, "observed_fraction"] == pytest.approx(seen[i].mean())
        for code, name in ((2, "water"), (3, "vegetation"), (4, "non_vegetated")):
            assert stats.loc[year, f"{name}_fraction"] == pytest.approx(
                (truth == code).mean(), abs=0.03
            )


def test_complete_maps_give_the_planted_shares_of_every_year(demo):
    archive, cube = demo
    full = q.area_statistics(cube).set_index("year")
    stored = q.area_statistics(cube, observed_only=True).set_index("year")
    assert list(full.index) == list(archive.years)
    worst_full = worst_stored = 0.0
    for year in full.index:
        planted = archive.truth_class(int(year))  # the whole grid, clouds or not
        for code, name in ((2, "water"), (3, "vegetation"), (4, "non_vegetated")):
            share = 100 * (planted == code).mean()
            worst_full = max(worst_full, abs(100 * full.loc[year, f"{name}_fraction"] - share))
            worst_stored = max(
                worst_stored, abs(100 * stored.loc[year, f"{name}_fraction"] - share)
            )
    # every year within 2 percentage points of the planted history (the rest is the
    # classification of the mixed MSS pixels of the 1970s and 1980s)
    assert worst_full < 2.0
    # the shares of the observed part alone miss by several points in a cloudy year
    assert worst_stored > 5.0
    cloudy = full["observed_fraction"].idxmin()
    assert full.loc[cloudy, "observed_fraction"] < 0.8
    assert full.loc[cloudy, "observed_fraction"] + full.loc[cloudy, "filled_fraction"] == 1.0


def test_first_change_finds_when_the_town_cleared_the_forest(demo):
    archive, cube = demo
    regions = archive.planted_regions()
    changes = q.first_change(cube, persistence=PERSISTENCE).compute()
    found = changes.first_change_year.values
    win, _ = q.open_yearly(cube)
    years = win["year"].values
    seen = win["yearly_clear_count"].values > 0  # (year, y, x): which years saw each pixel
    cleared = regions["cleared_year"]
    checked = hits = 0
    for r, c in zip(*np.nonzero(regions["town"]), strict=True):
        obs = years[seen[:, r, c]]
        before, after = obs[obs < cleared[r, c]], obs[obs >= cleared[r, c]]
        if before.size < PERSISTENCE or after.size < PERSISTENCE:
            continue  # the rule cannot see this clearing (too early or too late)
        checked += 1
        hits += found[r, c] == after[0]  # the first observed year after the clearing
    assert checked > 50
    assert hits / checked > 0.85
    town = regions["town"] & (found > 0)
    assert (changes.to_class.values[town] == 4).mean() > 0.95
    # the untouched forest does not change
    assert (found[regions["forest_control"]] == 0).mean() > 0.97


def test_reservoir_flooding_is_a_vegetation_to_water_transition(demo):
    archive, cube = demo
    regions = archive.planted_regions()
    reservoir = regions["reservoir"]
    changes = q.first_change(cube, persistence=PERSISTENCE).compute()
    years = q.area_statistics(cube)["year"].to_numpy()
    first_after = years[years >= RESERVOIR_FILL_YEAR][0]
    found = changes.first_change_year.values[reservoir]
    assert (found >= first_after).mean() > 0.9
    assert (changes.to_class.values[reservoir] == 2).mean() > 0.9
    early = (int(years[0]), int(years[2]))
    late = (int(years[-3]), int(years[-1]))
    planted_ha = reservoir.sum() * 0.09
    over_reservoir = q.AreaSelection(
        slice(0, cube.grid.ny), slice(0, cube.grid.nx), reservoir, cube.grid, "reservoir"
    )
    t = q.transition_matrix(cube, early, late, area=over_reservoir)
    assert t.hectares_between("vegetation", "water") == pytest.approx(planted_ha, rel=0.05)
    # over the whole cube: the reservoir, plus little else (lake shore pixels that the 60 m
    # MSS scenes of the early epoch saw mixed)
    whole = q.transition_matrix(cube, early, late)
    assert planted_ha <= whole.hectares_between("vegetation", "water") < 1.3 * planted_ha
    assert whole.hectares_between("water", "vegetation") < 0.1 * planted_ha
