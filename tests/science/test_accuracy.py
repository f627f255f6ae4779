"""Accuracy assessment and area estimation (Olofsson et al. 2014), against the paper's example."""

from __future__ import annotations

import numpy as np
import pytest

from updm_dask.errors import QueryError
from updm_dask.science.accuracy import Z_95, assess_accuracy, error_matrix

# Olofsson et al. (2014), RSE 148, section 5 ("numerical example"): four map classes
# (1 deforestation, 2 forest gain, 3 stable forest, 4 stable non-forest), 30 m pixels,
# mapped areas in pixels and the error matrix of sample counts (rows map, columns reference).
PAPER_COUNTS = np.array(
    [
        [66, 0, 5, 4],
        [0, 55, 8, 12],
        [1, 0, 153, 11],
        [2, 1, 9, 313],
    ]
)
PAPER_MAPPED_PIXELS = np.array([200_000, 150_000, 3_200_000, 6_450_000])
HA_PER_PIXEL = 0.09


def test_the_papers_worked_example():
    a = assess_accuracy(PAPER_COUNTS, PAPER_MAPPED_PIXELS * HA_PER_PIXEL, classes=[1, 2, 3, 4])
    # Published: deforestation 21,158 +- 6,158 ha, forest gain 11,686 +- 3,756 ha.
    assert round(a.area[0]) == 21_158
    assert round(a.ci95(a.area_se[0])) == 6_158
    assert round(a.area[1]) == 11_686
    assert round(a.ci95(a.area_se[1])) == 3_756
    # Published accuracies (two decimals): user's, producer's, overall.
    np.testing.assert_array_equal(np.round(a.users, 2), [0.88, 0.73, 0.93, 0.96])
    np.testing.assert_array_equal(np.round(a.producers, 2), [0.75, 0.85, 0.93, 0.96])
    assert round(a.overall, 2) == 0.95
    assert round(a.ci95(a.overall_se), 2) == 0.02
    assert round(a.ci95(a.users_se[0]), 2) == 0.07
    assert round(a.ci95(a.producers_se[0]), 2) == 0.21
    # The estimated areas add up to the mapped total: a sample moves area, never makes it.
    assert a.area.sum() == pytest.approx(PAPER_MAPPED_PIXELS.sum() * HA_PER_PIXEL)
    assert a.proportions.sum() == pytest.approx(1.0)


def test_confidence_intervals_cover_the_truth_about_95_percent_of_the_time():
    # A population with a known map and truth; draw stratified samples again and again.
    rng = np.random.default_rng(7)
    n_pix = 200_000
    mapped = rng.choice(3, size=n_pix, p=[0.1, 0.3, 0.6])
    confuse = np.array([[0.8, 0.15, 0.05], [0.05, 0.9, 0.05], [0.02, 0.08, 0.9]])
    truth = np.array([rng.choice(3, p=confuse[m]) for m in mapped[:5000]])
    truth = np.concatenate([truth, rng.choice(3, size=n_pix - 5000, p=[0.05, 0.3, 0.65])])
    mapped_area = np.bincount(mapped, minlength=3).astype(float)
    true_area = np.bincount(truth, minlength=3)
    strata = [np.flatnonzero(mapped == i) for i in range(3)]
    covered = np.zeros(3)
    reps = 300
    for _ in range(reps):
        picks = np.concatenate([rng.choice(s, size=60, replace=False) for s in strata])
        counts = error_matrix(mapped[picks], truth[picks], classes=[0, 1, 2])
        a = assess_accuracy(counts, mapped_area)
        covered += np.abs(a.area - true_area) <= Z_95 * a.area_se
    rate = covered / reps
    assert ((rate > 0.89) & (rate < 0.99)).all(), rate


def test_error_matrix_counts_pairs_and_names_bad_classes():
    m = error_matrix([1, 1, 2, 3, 3, 3], [1, 2, 2, 3, 3, 1], classes=[1, 2, 3])
    np.testing.assert_array_equal(m, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    with pytest.raises(QueryError, match="reference class 9 is not one of"):
        error_matrix([1], [9], classes=[1, 2])
    with pytest.raises(QueryError, match="2 map classes but 1 reference"):
        error_matrix([1, 2], [1], classes=[1, 2])


@pytest.mark.parametrize(
    ("counts", "areas", "message"),
    [
        ([[1, 2, 3]], [1.0], "square"),
        ([[5, 1], [1, 5]], [1.0], "expected 2 areas"),
        ([[5, 1], [0, 0]], [1.0, 2.0], "class 1 has mapped area but no sample"),
        ([[5, 1], [0, 1]], [1.0, 2.0], "class 1 has one sample unit"),
        ([[5, -1], [1, 5]], [1.0, 2.0], "non-negative"),
    ],
)
def test_bad_inputs_are_named(counts, areas, message):
    with pytest.raises(QueryError, match=message):
        assess_accuracy(counts, areas)
