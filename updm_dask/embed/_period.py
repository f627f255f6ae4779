"""The period of an embedding, its epochs, and the names of the embedding's dimensions.

The dimension list depends on the period and the epoch length only, never on the data, so
two embeddings with the same period and epoch length have the same dimensions in the same
order, whatever cube they come from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import QueryError

__all__ = [
    "DEFAULT_PERIOD",
    "EMBEDDING_VERSION",
    "EPOCH_FEATURES",
    "PERIOD_FEATURES",
    "Period",
]

#: Version of the embedding's definition (features, clear rule, NaN rules). Stored with
#: every embedding layer and encoder file; vectors of different versions never mix.
EMBEDDING_VERSION = 1

#: The Landsat record: MSS from 1972 to the present.
DEFAULT_PERIOD = "1972-2024"

#: Features computed for every epoch, in this order (see EMBEDDINGS.md for definitions).
EPOCH_FEATURES: tuple[str, ...] = (
    "share_water",
    "share_vegetation",
    "share_soil",
    "share_supplementary",
    "mviupd_mean",
    "mviupd_std",
    "frac_water",
    "frac_vegetation",
    "frac_urban",
    "residual_mean",
)

#: Features computed once over the whole period, after the epoch features.
PERIOD_FEATURES: tuple[str, ...] = ("mviupd_trend", "mviupd_seasonal_amplitude")

_FIRST_YEAR, _LAST_YEAR = 1900, 2200
_PERIOD_RE = re.compile(r"^\s*(\d{4})\s*(?:-|:|\.\.|/)\s*(\d{4})\s*$")


@dataclass(frozen=True)
class Period:
    """A span of calendar years split into epochs.

    Parameters
    ----------
    start, end : int
        First and last calendar year (inclusive).
    epoch_years : int or None
        Epoch length in years. Epochs are aligned to whole multiples of it (10: calendar
        decades 1970-1979, 1980-1989, ...), clipped to ``[start, end]``. None: one epoch
        covering the whole period.
    """

    start: int
    end: int
    epoch_years: int | None = 10

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer):
                raise QueryError(f"period {name}: expected a calendar year (int), got {v!r}")
            if not _FIRST_YEAR <= int(v) <= _LAST_YEAR:
                raise QueryError(f"period {name}: year {v} outside {_FIRST_YEAR}-{_LAST_YEAR}")
            object.__setattr__(self, name, int(v))
        if self.end < self.start:
            raise QueryError(f"period: end year {self.end} is before start year {self.start}")
        e = self.epoch_years
        if e is not None and (isinstance(e, bool) or not isinstance(e, int | np.integer) or e < 1):
            raise QueryError(f"period epoch_years: expected a positive integer or None, got {e!r}")
        if e is not None:
            object.__setattr__(self, "epoch_years", int(e))

    @classmethod
    def parse(cls, value: Any, epoch_years: int | None = 10) -> Period:
        """A Period from ``"1975-2024"``, ``(1975, 2024)`` or a Period (returned as is).

        Raises
        ------
        QueryError
            The value is not a year range.
        """
        if isinstance(value, Period):
            return value
        if isinstance(value, str):
            m = _PERIOD_RE.match(value)
            if not m:
                raise QueryError(
                    f"period: expected 'START-END' with four-digit years (e.g. '1975-2024'), "
                    f"got {value!r}"
                )
            return cls(int(m.group(1)), int(m.group(2)), epoch_years)
        try:
            start, end = value
        except (TypeError, ValueError):
            raise QueryError(
                f"period: expected 'START-END' or (start, end), got {value!r}"
            ) from None
        return cls(start, end, epoch_years)

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"

    @property
    def epochs(self) -> tuple[tuple[int, int], ...]:
        """``(first, last)`` year of every epoch, in time order."""
        if self.epoch_years is None:
            return ((self.start, self.end),)
        e = self.epoch_years
        out = []
        first = self.start
        while first <= self.end:
            last = min((first // e + 1) * e - 1, self.end)
            out.append((first, last))
            first = last + 1
        return tuple(out)

    @property
    def epoch_labels(self) -> tuple[str, ...]:
        """``"1970s"`` for calendar decades (also when clipped), else ``"1975-1979"``."""
        if self.epoch_years == 10:
            return tuple(f"{a // 10 * 10}s" for a, _ in self.epochs)
        return tuple(f"{a}-{b}" for a, b in self.epochs)

    @property
    def n_epochs(self) -> int:
        """Number of epochs."""
        return len(self.epochs)

    @property
    def dimension_names(self) -> tuple[str, ...]:
        """Dimension names: ``"<epoch>.<feature>"`` per epoch, then ``"period.<feature>"``."""
        names = [f"{lab}.{f}" for lab in self.epoch_labels for f in EPOCH_FEATURES]
        names += [f"period.{f}" for f in PERIOD_FEATURES]
        return tuple(names)

    @property
    def middle(self) -> float:
        """Centre of the period in decimal years (the origin of the trend's time axis)."""
        return (self.start + self.end + 1) / 2.0

    def epoch_of(self, years: np.ndarray) -> np.ndarray:
        """Epoch index (0-based) of each calendar year; -1 outside the period."""
        y = np.asarray(years, dtype=np.int64)
        out = np.full(y.shape, -1, dtype=np.int64)
        for i, (a, b) in enumerate(self.epochs):
            out[(y >= a) & (y <= b)] = i
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (stored with layers and encoders)."""
        return {"start": self.start, "end": self.end, "epoch_years": self.epoch_years}

    @classmethod
    def from_dict(cls, d: Any) -> Period:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(int(d["start"]), int(d["end"]), d.get("epoch_years"))
        except (KeyError, TypeError, ValueError) as exc:
            raise QueryError(f"period: bad stored period {d!r} ({exc})") from None
