"""Answers of the ``updm query`` commands: a query's result as text, CSV or JSON, and a picture.

The command line parses options and prints. What lies between (which query a command's
options mean, the title of a table, the output format, how a file is written, which
picture an answer has) is decided here, so that it is the same from Python and testable
without the command line.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..cube import SCENE_VARIABLES, YEARLY_VARIABLES, CubeLike
from ..errors import QueryError
from ..geo.points import format_lonlat
from .change import change_table, first_change, transition_matrix
from .compare import compare_scenes, compare_sensors
from .export import json_text, table_json, table_text, write_json, write_table
from .selection import Selection
from .series import PointReader, check_variables
from .stats import area_statistics
from .trends import format_trend_summary, trend_summary

__all__ = [
    "OUTPUT_FORMATS",
    "Answer",
    "area_answer",
    "change_answer",
    "compare_answer",
    "first_change_answer",
    "output_format",
    "point_answer",
    "table_answer",
    "trend_answer",
]

#: How an answer is shown: fixed-width text, CSV (tables only) or JSON.
OUTPUT_FORMATS = ("table", "csv", "json")


def output_format(format: str | None, output: str | os.PathLike | None) -> str:
    """The output format: ``format`` when given, else the suffix of ``output``, else text.

    Raises
    ------
    QueryError
        An ``output`` whose suffix is neither ``.csv`` nor ``.json`` without ``format``.
    """
    if format:
        return format
    if output:
        suffix = Path(output).suffix.lower().lstrip(".")
        if suffix in ("csv", "json"):
            return suffix
        raise QueryError(
            f"--output {str(output)!r}: cannot tell the format from the suffix; "
            "use .csv or .json, or give --format"
        )
    return "table"


@dataclass(frozen=True, eq=False)
class Answer:
    """A query's answer, ready to show or save.

    Attributes
    ----------
    text : str
        The answer as fixed-width text (format ``"table"``).
    table : pandas.DataFrame or None
        The answer as a table (CSV and JSON show it); or
    doc : dict or None
        the answer as a JSON document, for answers that are not a table.
    picture : callable or None
        ``picture(path) -> Path`` draws the answer into a PNG, when it has a picture.
    """

    text: str
    table: pd.DataFrame | None = None
    doc: Mapping[str, Any] | None = None
    picture: Callable[[str | os.PathLike], Path] | None = None

    def _not_a_table(self, format: str) -> None:
        if self.table is None and format == "csv":
            raise QueryError("this answer is not a table; use --format table or json")

    def render(self, format: str = "table") -> str:
        """The answer as text in ``format`` (one of :data:`OUTPUT_FORMATS`)."""
        self._not_a_table(format)
        if format == "csv":
            text = self.table.to_csv(index=False)
            return text[:-1] if text.endswith("\n") else text
        if format == "json":
            return table_json(self.table) if self.table is not None else json_text(self.doc)
        return self.text

    def save(self, path: str | os.PathLike, format: str) -> Path:
        """Write the answer to ``path`` as CSV or JSON (a table) or as JSON (a document).

        Raises
        ------
        QueryError
            A table to be written as text, a document as CSV, a missing folder.
        """
        self._not_a_table(format)
        if self.table is None:
            return write_json(self.doc, path)
        if format == "table":
            raise QueryError("--output needs --format csv or json")
        return write_table(self.table, path, format=format)

    def draw(self, path: str | os.PathLike) -> Path:
        """Draw the answer's picture into the PNG file ``path``."""
        if self.picture is None:
            raise QueryError("this answer has no picture")
        return self.picture(path)


def table_answer(table: pd.DataFrame, title: str = "", **kwargs: Any) -> Answer:
    """The answer of a table: its text is ``title`` above the fixed-width table."""
    text = table_text(table)
    return Answer(f"{title}\n{text}" if title else text, table=table, **kwargs)


def point_answer(
    selection: Selection | CubeLike,
    *,
    yearly: bool = False,
    variables: Iterable[str] | str | None = None,
    picture: bool = False,
    **where: Any,
) -> Answer:
    """A pixel's scene series (:func:`~updm_dask.query.scene_series`) or per-year series.

    Parameters
    ----------
    selection : Selection, Cube, str or path-like
        The cube, the point and the time range.
    yearly : bool
        The per-year series instead of the scenes'.
    variables : list of str or str, optional
        Variables of the series (default all).
    picture : bool
        Whether a picture will be drawn. It always shows the full scene series of the
        pixel (with the per-year median when the cube has per-year layers), whatever
        ``yearly`` and ``variables`` choose for the table.
    **where
        Fields of :class:`~updm_dask.query.Selection`.

    Raises
    ------
    QueryError
        The errors of the series.
    """
    allowed = tuple(YEARLY_VARIABLES if yearly else SCENE_VARIABLES)
    names = check_variables(variables, allowed, "per-year" if yearly else "scene-level")
    reader = PointReader(Selection.of(selection, **where).resolve("point", query="point"))
    table = reader.yearly(names) if yearly else reader.scenes(names)
    pt = table.attrs["point"]
    title = (
        f"pixel row {pt['row']}, col {pt['col']} (centre {pt['x']:.1f}, {pt['y']:.1f} in "
        f"{pt['crs']}; {format_lonlat(pt['lon'], pt['lat'], 6)}), "
        f"snapshot {table.attrs['snapshot']}"
    )

    def draw(path: str | os.PathLike) -> Path:
        from .plots import plot_point_series

        try:
            # same commit, point and time range as the scene table
            series = reader.yearly(tuple(YEARLY_VARIABLES))
        except QueryError:
            series = None  # a cube without per-year layers still gets its scene plot
        # the picture is of the whole scene series, also when the table is not
        scenes = table if full else reader.scenes(tuple(SCENE_VARIABLES))
        return plot_point_series(scenes, path, yearly=series)

    full = not yearly and variables is None
    return table_answer(table, title, picture=draw)


def area_answer(selection: Selection | CubeLike, **where: Any) -> Answer:
    """An area's per-year statistics (:func:`~updm_dask.query.area_statistics`), with the
    picture of its class shares."""
    table = area_statistics(selection, **where)
    a = table.attrs["area"]
    title = (
        f"{a['description']}: {a['n_pixels']} pixels, {a['area_ha']:.2f} ha, "
        f"snapshot {table.attrs['snapshot']}"
    )

    def draw(path: str | os.PathLike) -> Path:
        from .plots import plot_class_fractions

        return plot_class_fractions(table, path)

    return table_answer(table, title, picture=draw)


def trend_answer(
    selection: Selection | CubeLike, *, min_years: int = 4, alpha: float = 0.05, **where: Any
) -> Answer:
    """The trends over an area (:func:`~updm_dask.query.trend_summary`), a JSON document."""
    summary = trend_summary(selection, min_years=min_years, alpha=alpha, **where)
    return Answer(format_trend_summary(summary, min_years), doc=summary)


def change_answer(
    selection: Selection | CubeLike, epoch_from: Any, epoch_to: Any, **where: Any
) -> Answer:
    """The transition matrix between two epochs (:func:`~updm_dask.query.transition_matrix`):
    as a matrix in text, one row per transition in CSV and JSON."""
    t = transition_matrix(selection, tuple(epoch_from), tuple(epoch_to), **where)
    return Answer(t.format(), table=t.to_long())


def first_change_answer(
    selection: Selection | CubeLike, *, persistence: int = 3, **where: Any
) -> Answer:
    """Pixels and hectares of the first persistent changes per year and transition
    (:func:`~updm_dask.query.first_change`, :func:`~updm_dask.query.change_table`)."""
    changes = first_change(selection, persistence=persistence, **where)
    counted = "observed" if changes.attrs.get("maps") == "observed" else "confirmed"
    title = (
        f"first persistent changes ({persistence} {counted} years) "
        f"{changes.attrs['first_year']}-{changes.attrs['last_year']} over {changes.attrs['area']}"
    )
    return table_answer(change_table(changes), title)


def compare_answer(
    selection: Selection | CubeLike,
    *,
    scenes: Sequence[str] | None = None,
    sensors: Sequence[str] | None = None,
    max_days: float = 16.0,
    aggregate: int | None = None,
    **where: Any,
) -> Answer:
    """A comparison of two scenes (:func:`~updm_dask.query.compare_scenes`) or of two
    sensors (:func:`~updm_dask.query.compare_sensors`), a JSON document.

    Parameters
    ----------
    selection : Selection, Cube, str or path-like
    scenes, sensors : (str, str)
        Reference and other scene ids, or sensor names; one of the two.
    max_days, aggregate
        As for :func:`~updm_dask.query.compare_sensors`.
    **where
        Fields of :class:`~updm_dask.query.Selection`; two scenes set their own time, so
        that a time range is not used for them.
    """
    if (scenes is None) == (sensors is None):
        raise QueryError("compare: give two scenes or two sensors, one of the two")
    sel = Selection.of(selection, **where)
    if scenes is not None:
        sel = dataclasses.replace(sel, start=None, end=None)
        result = compare_scenes(sel, scenes[0], scenes[1], aggregate=aggregate)
    else:
        result = compare_sensors(
            sel, sensors[0], sensors[1], max_days=max_days, aggregate=aggregate
        )
    return Answer(result.format(), doc=result.to_dict())
