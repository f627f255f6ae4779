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
