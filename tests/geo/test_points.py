"""Points on the cube grid: the disc of pixels around a point (``disc_window``)."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from updm_dask.errors import PointError, QueryError
from updm_dask.geo import CubeGrid
from updm_dask.geo.points import disc_window, locate_point

GRID = CubeGrid("EPSG:32637", Affine(30, 0, 589035, 0, -30, 756165), (12, 16))


def centre(row: int, col: int) -> tuple[float, float]:
    return 589035 + 30 * col + 15.0, 756165 - 30 * row - 15.0


def test_disc_holds_the_pixel_centres_within_the_radius():
    x, y = centre(5, 5)
    loc = locate_point(GRID, x=x, y=y)
    rows, cols, mask = disc_window(GRID, loc, 0)
    assert (rows, cols) == (slice(5, 6), slice(5, 6)) and mask.tolist() == [[True]]
    # 30 m reaches the 4 neighbours; 45 m also the diagonals (42.4 m)
    rows, cols, mask = disc_window(GRID, loc, 30)
    assert (rows, cols) == (slice(4, 7), slice(4, 7))
    assert mask.tolist() == [[False, True, False], [True, True, True], [False, True, False]]
    assert disc_window(GRID, loc, 45)[2].all()
    # a centre exactly on the circle is inside
    assert disc_window(GRID, loc, 60)[2].sum() == 13


def test_disc_keeps_the_pixel_of_an_off_centre_point_and_is_clipped_at_the_edges():
    x, y = centre(0, 0)
    loc = locate_point(GRID, x=x + 14, y=y + 14)  # the pixel's north-east corner
    rows, cols, mask = disc_window(GRID, loc, 5)
    assert (rows, cols) == (slice(0, 1), slice(0, 1)) and mask.all()
    rows, cols, mask = disc_window(GRID, locate_point(GRID, x=x, y=y), 45)
    assert (rows, cols) == (slice(0, 2), slice(0, 2)) and mask.all()
    for bad in (-1.0, np.nan, np.inf, "far", True):
        with pytest.raises(PointError, match="radius"):
            disc_window(GRID, loc, bad)
    assert issubclass(PointError, QueryError)
