"""Complete annual land cover: the years a pixel was not seen, filled from its neighbours.

A per-year land-cover layer holds, for every pixel and year, the most frequent class among
the year's clear observations, or 0 (no_data) when the year saw the pixel under clouds,
shadows or gaps only. Area shares taken over the observed pixels then swing with the
clouds of each year. This kernel completes the series from the temporal context.

Rule (per pixel, for a year ``Y`` without a clear observation)
--------------------------------------------------------------
Let ``P`` be the nearest year before ``Y`` and ``N`` the nearest year after ``Y`` that have
a clear observation and lie at most ``window`` calendar years from ``Y``.

- ``P`` and ``N`` agree: their class (``filled_agreeing``);
- ``P`` and ``N`` disagree: the class of the nearer of the two; at equal distance the
  earlier class persists (``filled_disagreeing``). A change happened somewhere between
  ``P`` and ``N``; the nearer year is the better guess of the class (on the real
  ``yatsm`` series it is right 1-2.5 points more often than always keeping the earlier
  class), and the change queries do not count these years (see
  :mod:`updm_dask.query.change`), so a change is still dated by an observation;
- only one of them exists: its class (``filled_one_side``): carried forward after the last
  observation, backward before the first;
- neither exists: the year stays no_data (``unresolved``).

Observed years keep their class (``observed``). Only the years within ``window`` of ``Y``
decide, so the filled class of a year does not depend on which years a query reads, as
long as it reads ``window`` years of context on each side.

Confidence (per pixel and year)
-------------------------------
- ``years_to_observation``: calendar years from ``Y`` to the nearest year with a clear
  observation within the window (0 when ``Y`` is observed; :data:`UNRESOLVED_DISTANCE`
  when there is none);
- ``agreement``: the share of the clear observations behind the class that fall in it.
  Observed year: the year's observations in its yearly class / its clear observations.
  Filled year: the observations of ``P`` and ``N`` (those within the window) in their
  yearly class, where that class is the filled one, over all clear observations of ``P``
  and ``N``. Between two disagreeing years only the observations of the year whose class
  was taken count for it, so the value falls with the other year's weight of evidence
  (it is a lower bound when a minority of the other year's observations were of the
  filled class: only the count of each year's own class is stored). NaN where
  unresolved, or where the counts are not given.
"""

from __future__ import annotations

import numpy as np

from ..errors import QueryError

__all__ = [
    "DEFAULT_WINDOW",
    "FILLED_AGREEING",
    "FILLED_DISAGREEING",
    "FILLED_ONE_SIDE",
    "FILL_SOURCES",
    "MAX_WINDOW",
    "OBSERVED",
    "UNRESOLVED",
    "UNRESOLVED_DISTANCE",
    "check_window",
    "fill_annual",
]

#: Default window (calendar years on each side). On the real yatsm series a class filled
#: from 1, 2 and 3 years away matches the held-out year 96, 93 and 89 % of the time, and 83 %
#: from 4 years; three years also map every pixel-year of a sparse archive (the 24-scene
#: demo, which two years leave 14 % unmapped in its worst year). Evidence in
#: docs/annual-maps.md.
DEFAULT_WINDOW = 3
#: Largest window: years_to_observation is stored as uint8 with 255 for "none".
MAX_WINDOW = 254
#: years_to_observation of an unresolved pixel.
UNRESOLVED_DISTANCE = 255

#: Where the class of a pixel-year comes from (codes of the ``fill_source`` layer).
UNRESOLVED, OBSERVED, FILLED_AGREEING, FILLED_ONE_SIDE, FILLED_DISAGREEING = range(5)
FILL_SOURCES: dict[int, str] = {
    UNRESOLVED: "unresolved",
    OBSERVED: "observed",
    FILLED_AGREEING: "filled_agreeing",
    FILLED_ONE_SIDE: "filled_one_side",
    FILLED_DISAGREEING: "filled_disagreeing",
}


def check_window(window: object) -> int:
    """``window`` as an int in ``[0, MAX_WINDOW]``; QueryError naming it otherwise."""
    if (
        isinstance(window, bool)
        or not isinstance(window, int | np.integer)
        or not 0 <= int(window) <= MAX_WINDOW
    ):
        raise QueryError(
            f"window: expected a whole number of years from 0 to {MAX_WINDOW}, got {window!r}"
        )
    return int(window)


def _neighbour(observed: np.ndarray, order: range) -> np.ndarray:
    """Index of the nearest observed year strictly before (or after, with ``order``
    reversed) each year along axis 0; -1 where there is none."""
    t, n = observed.shape
    out = np.full((t, n), -1, dtype=np.int64)
    last = np.full(n, -1, dtype=np.int64)
    for i in order:
        out[i] = last
        last = np.where(observed[i], i, last)
    return out


def fill_annual(
    classes: np.ndarray,
    years: np.ndarray,
    window: int = DEFAULT_WINDOW,
    *,
    class_count: np.ndarray | None = None,
    clear_count: np.ndarray | None = None,
) -> np.ndarray:
    """Complete per-year land-cover layers from the neighbouring years (rule in the module).

    Axis contract: ``classes (t, ...)`` yearly class codes (0 = no clear observation),
    ``years (t,)`` strictly increasing calendar years, ``class_count`` and ``clear_count``
    ``(t, ...)`` (clear observations of the year in its yearly class, and all of them)
    -> ``(4, t, ...)`` float32 holding the complete class, the ``fill_source`` code
    (:data:`FILL_SOURCES`), ``years_to_observation`` and ``agreement``.

    Parameters
    ----------
    classes : numpy.ndarray of int
    years : numpy.ndarray of int
    window : int
        Calendar years on each side that may lend their class (0: nothing is filled).
    class_count, clear_count : numpy.ndarray of int, optional
        Both or neither; without them ``agreement`` is NaN.

    Returns
    -------
    numpy.ndarray
        float32, shape ``(4, *classes.shape)``.

    Raises
    ------
    QueryError
        Shapes that do not match, years not strictly increasing, a bad window.
    """
    window = check_window(window)
    c = np.asarray(classes)
    yrs = np.asarray(years, dtype=np.int64)
    if c.ndim < 1 or yrs.shape != (c.shape[0],):
        raise QueryError(
            f"fill_annual: expected classes (t, ...) and years (t,), got {c.shape} and {yrs.shape}"
        )
    if yrs.size > 1 and not (np.diff(yrs) > 0).all():
        raise QueryError(f"fill_annual: years must be strictly increasing, got {yrs.tolist()}")
    if (class_count is None) != (clear_count is None):
        raise QueryError("fill_annual: give class_count and clear_count together, or neither")
    counts = None
    if class_count is not None:
        counts = [np.asarray(a) for a in (class_count, clear_count)]
        if any(a.shape != c.shape for a in counts):
            raise QueryError(
                f"fill_annual: class_count {counts[0].shape} and clear_count "
                f"{counts[1].shape} must have the shape of classes {c.shape}"
            )
    t = c.shape[0]
    out = np.empty((4, *c.shape), dtype=np.float32)
    if t == 0:
        return out
    flat = c.reshape(t, -1).astype(np.int64)
    n = flat.shape[1]
    observed = flat != 0
    prev = _neighbour(observed, range(t))
    nxt = _neighbour(observed, range(t - 1, -1, -1))
    cols = np.arange(n)[None, :]
    here = yrs[:, None]
    # a neighbour counts when it exists and lies within the window
    has_p = (prev >= 0) & (here - yrs[np.maximum(prev, 0)] <= window)
    has_n = (nxt >= 0) & (yrs[np.maximum(nxt, 0)] - here <= window)
    c_p = flat[np.maximum(prev, 0), cols]
    c_n = flat[np.maximum(nxt, 0), cols]
    d_p = np.where(has_p, here - yrs[np.maximum(prev, 0)], UNRESOLVED_DISTANCE)
    d_n = np.where(has_n, yrs[np.maximum(nxt, 0)] - here, UNRESOLVED_DISTANCE)

    # the nearer neighbour wins; at equal distance (or alone) the earlier one
    use_n = has_n & (~has_p | (d_n < d_p))
    filled = np.where(use_n, c_n, np.where(has_p, c_p, 0))
    cls = np.where(observed, flat, filled)
    both = has_p & has_n
    source = np.select(
        [observed, both & (c_p == c_n), both, has_p | has_n],
        [OBSERVED, FILLED_AGREEING, FILLED_DISAGREEING, FILLED_ONE_SIDE],
        UNRESOLVED,
    )
    distance = np.where(observed, 0, np.minimum(d_p, d_n))

    agreement = np.full((t, n), np.nan, dtype=np.float32)
    if counts is not None:
        cc = counts[0].reshape(t, -1).astype(np.int64)
        clr = counts[1].reshape(t, -1).astype(np.int64)
        # support: observations in the class given; total: all clear ones behind it
        sup = np.where(observed, cc, 0)
        tot = np.where(observed, clr, 0)
        for has, idx, c_side in ((has_p, prev, c_p), (has_n, nxt, c_n)):
            side = has & ~observed
            at = np.maximum(idx, 0)
            sup = sup + np.where(side & (c_side == cls), cc[at, cols], 0)
            tot = tot + np.where(side, clr[at, cols], 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            agreement = np.where((cls != 0) & (tot > 0), sup / tot, np.nan).astype(np.float32)

    out[0] = cls.reshape(c.shape)
    out[1] = source.reshape(c.shape)
    out[2] = distance.reshape(c.shape)
    out[3] = agreement.reshape(c.shape)
    return out
