"""Time ranges of queries: years (``1990``: the whole year) or ISO dates, both ends inclusive.

An end given as a day (``"1990-06-01"``) or a month (``"1990-06"``) counts whole. Queries of
the per-year layers count the calendar years a range touches.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import QueryError

__all__ = ["TimeRange", "select_years", "time_range"]


@dataclass(frozen=True)
class TimeRange:
    """An inclusive time range; ``None`` ends are open.

    ``start``/``end`` are datetime64[us]; a year given as an integer means the whole year.
    """

    start: np.datetime64 | None
    end: np.datetime64 | None

    @property
    def first_year(self) -> int | None:
        """Calendar year of ``start``."""
        return None if self.start is None else _year_of(self.start)

    @property
    def last_year(self) -> int | None:
        """Calendar year of ``end``."""
        return None if self.end is None else _year_of(self.end)

    def contains_years(self, years: np.ndarray) -> np.ndarray:
        """Boolean mask of the integer ``years`` inside the range (by calendar year)."""
        years = np.asarray(years, dtype=np.int64)
        keep = np.ones(years.shape, dtype=bool)
        if self.first_year is not None:
            keep &= years >= self.first_year
        if self.last_year is not None:
            keep &= years <= self.last_year
        return keep

    def contains_times(self, times: np.ndarray) -> np.ndarray:
        """Boolean mask of the datetime64 ``times`` inside the range."""
        t = np.asarray(times).astype("datetime64[us]")
        keep = np.ones(t.shape, dtype=bool)
        if self.start is not None:
            keep &= t >= self.start
        if self.end is not None:
            keep &= t <= self.end
        return keep

    def describe(self) -> str:
        """``"1975-01-01 to 1980-12-31"``-style text."""
        a = "the beginning" if self.start is None else str(self.start.astype("datetime64[D]"))
        b = "the end" if self.end is None else str(self.end.astype("datetime64[D]"))
        return f"{a} to {b}"


def _year_of(t: np.datetime64) -> int:
    return int(t.astype("datetime64[Y]").astype(np.int64)) + 1970


def _as_time(value: Any, name: str, *, end: bool) -> np.datetime64 | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise QueryError(f"{name}: expected a year or an ISO date, got {value!r}")
    if isinstance(value, int | np.integer) or (isinstance(value, str) and value.isdigit()):
        year = int(value)
        if not 1 <= year <= 9999:
            raise QueryError(f"{name}: year {year} is out of range")
        if end:
            return np.datetime64(f"{year + 1:04d}-01-01", "us") - np.timedelta64(1, "us")
        return np.datetime64(f"{year:04d}-01-01", "us")
    try:
        t = np.datetime64(value)
    except (ValueError, TypeError):
        raise QueryError(
            f"{name}: {value!r} is neither a year nor an ISO date (e.g. 1990 or 1990-06-01)"
        ) from None
    if end and t.dtype in (np.dtype("datetime64[D]"), np.dtype("datetime64[M]")):
        # a date as end means the whole of that day (or month)
        unit = np.datetime_data(t.dtype)[0]
        return (t + np.timedelta64(1, unit)).astype("datetime64[us]") - np.timedelta64(1, "us")
    return t.astype("datetime64[us]")


def time_range(start: Any = None, end: Any = None) -> TimeRange:
    """An inclusive :class:`TimeRange` from years (``1990``) or ISO dates (``"1990-06-01"``).

    Raises
    ------
    QueryError
        Unparsable values, or ``start`` after ``end``.
    """
    a = _as_time(start, "start", end=False)
    b = _as_time(end, "end", end=True)
    if a is not None and b is not None and a > b:
        raise QueryError(f"empty time range: start {start!r} is after end {end!r}")
    return TimeRange(a, b)


def select_years(available: np.ndarray, when: TimeRange, location: str) -> np.ndarray:
    """Indices of the per-year layers inside ``when`` (QueryError when there is none)."""
    years = np.asarray(available, dtype=np.int64)
    idx = np.flatnonzero(when.contains_years(years))
    if idx.size == 0:
        have = f"{years.min()}-{years.max()}" if years.size else "none"
        raise QueryError(
            f"empty time range: cube {location!r} has no per-year layer from "
            f"{when.describe()} (it has years {have})"
        )
    return idx


_ISO_DATE = re.compile(r"(\d{4})-\d{2}-\d{2}")


def feature_year(props: Mapping[str, Any], what: str, default: int | None = None) -> int | None:
    """The year a labelled GeoJSON feature speaks of.

    A ``year`` property (integer), else a ``date`` property (ISO ``YYYY-MM-DD``), else
    ``default`` (which may be None: an undated label).

    Raises
    ------
    QueryError
        A ``year`` that is not an integer, a ``date`` that is not an ISO calendar date, or
        no date at all when ``default`` is None and the caller requires one.
    """
    if "year" in props:
        y = props["year"]
        if isinstance(y, bool) or not isinstance(y, int):
            raise QueryError(f"{what}: 'year' must be an integer year")
        return y
    if "date" in props:
        d = props["date"]
        m = _ISO_DATE.fullmatch(d) if isinstance(d, str) else None
        if m is None:
            raise QueryError(f"{what}: 'date' must be an ISO date YYYY-MM-DD")
        try:
            dt.date.fromisoformat(d)
        except ValueError:
            raise QueryError(f"{what}: 'date' is not a calendar date") from None
        return int(m.group(1))
    return default
