"""The complete annual maps kernel: hand-worked rule, properties, and the real yatsm series.

The real series (447 TM/ETM+ dates 1984-2013, 5 x 5 pixels in Colorado, decomposed and
classified by the package; see tests/_yatsm.py) has a clear observation almost every year
at every pixel, so it can judge the rule: hide the years, fill them from their neighbours,
and compare with the class each hidden year really had.
"""

from __future__ import annotations

import numpy as np
import pytest
from _yatsm import yatsm_layers

from updm_dask.cube import yearly_summary
from updm_dask.errors import QueryError
from updm_dask.science.gapfill import (
    DEFAULT_WINDOW,
    FILLED_AGREEING,
    FILLED_DISAGREEING,
    FILLED_ONE_SIDE,
    OBSERVED,
    UNRESOLVED,
    UNRESOLVED_DISTANCE,
    fill_annual,
)

V, U, W = 3, 4, 2


def test_fill_rule_hand_worked():
    years = np.arange(2000, 2010)
    #                 2000 2001 2002 2003 2004 2005 2006 2007 2008 2009
    classes = np.array([V, 0, 0, U, 0, 0, 0, 0, V, 0], np.uint8)
    in_class = np.array([2, 0, 0, 3, 0, 0, 0, 0, 1, 0])
    clear = np.array([2, 0, 0, 3, 0, 0, 0, 0, 2, 0])
    out = fill_annual(classes, years, 2, class_count=in_class, clear_count=clear)
    assert out.shape == (4, 10) and out.dtype == np.float32
    cls, source, distance, agreement = out
    # 2001: V one year before, U two after: the nearer (V); 2002 the other way round (U)
    # 2004-2005: U carried forward (2008 is beyond the window); 2006-2007: V carried back
    assert cls.tolist() == [V, V, U, U, U, U, V, V, V, V]
    assert source.tolist() == [
        OBSERVED,
        FILLED_DISAGREEING,
        FILLED_DISAGREEING,
        OBSERVED,
        FILLED_ONE_SIDE,
        FILLED_ONE_SIDE,
        FILLED_ONE_SIDE,
        FILLED_ONE_SIDE,
        OBSERVED,
        FILLED_ONE_SIDE,
    ]
    assert distance.tolist() == [0, 1, 1, 0, 1, 2, 2, 1, 0, 1]
    # 2001: 2 V observations of 2 + 3 clear ones; 2002: 3 U of 5; observed: own shares
    np.testing.assert_allclose(agreement, [1, 0.4, 0.6, 1, 1, 1, 0.5, 0.5, 0.5, 0.5])


def test_equal_distances_keep_the_earlier_class_and_the_window_is_in_calendar_years():
    years = np.array([1990, 1991, 1992, 1994, 1995, 1996])  # 1993 has no scene at all
    classes = np.array(
        [
            [V, 0, U, 0, 0, 0],  # 1991: V and U 1 year away each -> the earlier, V
            [W, 0, 0, 0, W, 0],  # water 5 years apart: only 1992 sees both within 3
            [0, 0, 0, 0, 0, 0],  # never observed
            [0, 0, 0, 0, 0, U],  # one observation, carried back 2 years (1992 is 4 away)
        ],
        np.uint8,
    ).T
    cls, source, distance, agreement = fill_annual(classes, years, 3)
    assert cls.T.tolist() == [
        [V, V, U, U, U, 0],
        [W, W, W, W, W, W],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, U, U, U],
    ]
    o, a, s, d, n = OBSERVED, FILLED_AGREEING, FILLED_ONE_SIDE, FILLED_DISAGREEING, UNRESOLVED
    assert source.T.tolist() == [
        [o, d, o, s, s, n],
        [o, s, a, s, o, s],
        [n, n, n, n, n, n],
        [n, n, n, s, s, o],
    ]
    far = UNRESOLVED_DISTANCE
    assert distance.T.tolist() == [
        [0, 1, 0, 2, 3, far],
        [0, 1, 2, 1, 0, 1],
        [far] * 6,
        [far, far, far, 2, 1, 0],
    ]
    assert np.isnan(agreement).all()  # no counts given: no agreement


def test_properties_on_random_series():
    rng = np.random.default_rng(11)
    classes = rng.choice([0, 0, 0, 2, 3, 4], size=(25, 40, 3)).astype(np.uint8)
    years = np.cumsum(rng.integers(1, 4, 25)) + 1972
    for window in (0, 1, 3, 7):
        out = fill_annual(classes, years, window)
        cls, source, distance = out[0], out[1], out[2]
        seen = classes != 0
        # observed years keep their class; nothing is filled with a window of 0
        np.testing.assert_array_equal(cls[seen], classes[seen])
        assert (source[seen] == OBSERVED).all() and (distance[seen] == 0).all()
        if window == 0:
            np.testing.assert_array_equal(cls, classes)
        # a filled class is the class of an observation within the window
        for t, i, j in zip(*np.nonzero((cls != 0) & ~seen), strict=True):
            near = np.abs(years - years[t]) <= window
            assert cls[t, i, j] in classes[near, i, j]
            assert 1 <= distance[t, i, j] <= window
        unmapped = cls == 0
        assert (source[unmapped] == UNRESOLVED).all()
        assert (distance[unmapped] == UNRESOLVED_DISTANCE).all()
        # a sub-range read with `window` years of context fills its years the same way
        lo, hi = 8, 17
        a = int(np.searchsorted(years, years[lo] - window))
        b = int(np.searchsorted(years, years[hi - 1] + window, side="right"))
        part = fill_annual(classes[a:b], years[a:b], window)
        np.testing.assert_array_equal(part[:3, lo - a : hi - a], out[:3, lo:hi])


def test_bad_input_is_named():
    years = np.arange(2000, 2004)
    c = np.zeros((4, 2), np.uint8)
    for bad in (-1, 1.5, True, 255, "3"):
        with pytest.raises(QueryError, match=r"window: expected a whole number of years"):
            fill_annual(c, years, bad)
    with pytest.raises(QueryError, match="strictly increasing"):
        fill_annual(c, np.array([2000, 2002, 2001, 2003]), 2)
    with pytest.raises(QueryError, match=r"classes \(t, \.\.\.\) and years \(t,\)"):
        fill_annual(c, years[:3], 2)
    with pytest.raises(QueryError, match="together"):
        fill_annual(c, years, 2, class_count=c)
    with pytest.raises(QueryError, match="must have the shape of classes"):
        fill_annual(c, years, 2, class_count=c[:2], clear_count=c[:2])
    assert fill_annual(np.zeros((0, 3), np.uint8), np.array([], int)).shape == (4, 0, 3)


# --------------------------------------------------------------------------------------
# The real yatsm series


@pytest.fixture(scope="module")
def yearly(shared_data):
    """Yearly classes (year, 5, 5) of the real series, by the cube's yearly kernel."""
    layers = yatsm_layers(shared_data)
    scene_years = layers["time"].astype("datetime64[Y]").astype(int) + 1970
    years = np.unique(scene_years)
    summaries = np.stack(
        [
            yearly_summary(
                *(layers[n][scene_years == y] for n in ("land_cover", "quality", "mviupd"))
            )
            for y in years
        ]
    )
    return years, summaries[:, 0].astype(np.uint8), summaries[:, 2], summaries[:, 3]


def _refill(years, classes, hidden: int, window: int):
    """Hide every run of ``hidden`` consecutive years in turn; refill it; compare."""
    hits, total = {}, {}
    for i in range(len(years) - hidden + 1):
        masked = classes.copy()
        masked[i : i + hidden] = 0
        out = fill_annual(masked, years, window)
        for t in range(i, i + hidden):
            ok = (classes[t] != 0) & (out[0, t] != 0)
            for d in np.unique(out[2, t][ok]).astype(int):
                here = ok & (out[2, t] == d)
                hits[d] = hits.get(d, 0) + int((out[0, t][here] == classes[t][here]).sum())
                total[d] = total.get(d, 0) + int(here.sum())
    return hits, total


def test_real_series_held_out_years_are_refilled_with_their_class(yearly):
    years, classes, _, _ = yearly
    assert years.tolist() == list(range(1984, 2014))
    assert {2, 3, 4} & set(np.unique(classes).tolist()) == {3, 4}  # vegetation, bare land
    # one year hidden at a time: the neighbours give its class 96 % of the time, as often
    # as a year's class equals the year before (the series' own persistence)
    hits, total = _refill(years, classes, 1, DEFAULT_WINDOW)
    assert sum(total.values()) > 700
    assert sum(hits.values()) / sum(total.values()) > 0.95
    both = (classes[1:] != 0) & (classes[:-1] != 0)
    persistence = (classes[1:][both] == classes[:-1][both]).mean()
    assert sum(hits.values()) / sum(total.values()) >= persistence - 0.005
    # six years hidden: the farther the observation, the less sure the fill
    hits, total = _refill(years, classes, 6, DEFAULT_WINDOW)
    share = {d: hits[d] / total[d] for d in sorted(total)}
    assert list(share) == [1, 2, 3]  # nothing filled from beyond the window
    assert share[1] > 0.95 and share[3] > 0.88
    assert share[1] > share[2] > share[3]


def test_real_series_confidence_layers(yearly):
    years, classes, clear, in_class = yearly
    out = fill_annual(classes, years, class_count=in_class, clear_count=clear)
    seen = classes != 0
    np.testing.assert_allclose(out[3][seen], (in_class / clear)[seen], rtol=1e-6)
    # a yearly class is the most frequent of at most three: at least a third of the year
    assert (out[3][seen] >= 1 / 3).all() and out[3][seen].mean() > 0.9
    # the pixel that is fill on every date (row 0, col 0) stays unmapped and says so
    assert (out[0, :, 0, 0] == 0).all() and (out[2, :, 0, 0] == UNRESOLVED_DISTANCE).all()
    # 2013 (January to May only) leaves half the pixels unseen: all filled from 2012
    unseen = ~seen[-1] & seen[-2]
    assert unseen.sum() >= 10
    np.testing.assert_array_equal(out[0, -1][unseen], classes[-2][unseen])
    assert (out[1, -1][unseen] == FILLED_ONE_SIDE).all() and (out[2, -1][unseen] == 1).all()
