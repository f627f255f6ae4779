"""The story: the schedule of scenes and the planted land-cover history."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from updm_dask.demo import RESERVOIR_FILL_YEAR
from updm_dask.demo.story import SCHEDULE, schedule_order
from updm_dask.errors import GridError


def test_full_schedule_covers_every_year_with_valid_platforms():
    slots = SCHEDULE
    years = {s.year for s in slots}
    assert years == set(range(1973, 2025))
    assert len(slots) <= 2 * len(years)
    flown = {  # first and last year of each sensor's data in the archive
        ("MSS", 1): (1972, 1978),
        ("MSS", 2): (1975, 1982),
        ("MSS", 3): (1978, 1983),
        ("MSS", 4): (1982, 1993),
        ("MSS", 5): (1984, 1995),
        ("TM", 4): (1982, 1993),
        ("TM", 5): (1984, 2011),
        ("ETM+", 7): (1999, 2024),
        ("OLI", 8): (2013, 2024),
        ("OLI-2", 9): (2021, 2024),
    }
    for s in slots:
        first, last = flown[(s.sensor, s.satellite)]
        assert first <= s.year <= last, s
    order = schedule_order()
    assert sorted(order) == list(range(len(slots)))


def test_truth_tells_the_planted_story(archive):
    regions = archive.planted_regions()
    reservoir, lake, control = regions["reservoir"], regions["lake"], regions["forest_control"]
    assert reservoir.any() and lake.any() and control.any() and regions["town"].any()
    urban_area = []
    for year in range(1970, 2027):
        t = archive.truth_class(year)
        assert t.dtype == np.uint8 and t.shape == archive.grid.shape
        assert set(np.unique(t)) <= {2, 3, 4}  # no clouds, no no-data in the truth
        assert (t[lake] == 2).all()
        assert (t[control] == 3).all()
        assert (t[reservoir] == (2 if year >= RESERVOIR_FILL_YEAR else 3)).all()
        urban_area.append(int((t == 4).sum()))
    urban = np.array(urban_area)
    assert np.all(np.diff(urban) >= 0)  # the town only grows
    assert urban[2024 - 1970] > 3 * urban[1973 - 1970] > 0
    decades = [urban[y - 1970] for y in (1975, 1985, 1995, 2005, 2015)]
    assert all(b > a for a, b in itertools.pairwise(decades))
    with pytest.raises(GridError, match="year must be an integer"):
        archive.truth_class("1990")
