"""Judging a job against the truth: how well yearly land-cover layers recover the story.

:func:`recovery_report` compares yearly class maps (arrays, or a demo cube read through the
query API) with the planted classes, year by year; :func:`format_recovery` lays the rows
out as the table ``updm demo`` prints.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from ..errors import GridError
from .story import CLASS_NAMES, LAND_CLASSES

__all__ = ["RecoveryRow", "format_recovery", "recovery_report"]


@dataclass(frozen=True)
class RecoveryRow:
    """How well one year's land-cover layer recovers the planted story.

    Attributes
    ----------
    year
        The year.
    found
        Class name (water, vegetation, urban) -> % of the CLASSIFIED pixels (those the layer
        puts in a land class) the layer gives that class.
    planted
        Class name -> % of all grid pixels planted with that class.
    unclassified_pct
        % of pixels the layer leaves as cloud or no data.
    agreement_pct
        % of classified pixels whose class equals the planted one (NaN when none is
        classified).
    """

    year: int
    found: Mapping[str, float]
    planted: Mapping[str, float]
    unclassified_pct: float
    agreement_pct: float


def _truth_getter(truth: Any) -> Callable[[int], np.ndarray]:
    if hasattr(truth, "truth_class"):
        return truth.truth_class
    if isinstance(truth, Mapping):

        def from_mapping(year: int) -> np.ndarray:
            if year not in truth:
                raise GridError(f"truth has no layer for year {year}")
            return np.asarray(truth[year])

        return from_mapping
    if callable(truth):
        return truth
    raise GridError(
        f"truth must be a DemoArchive, a callable year -> classes, or a mapping year -> "
        f"classes; got {type(truth).__name__}"
    )


def recovery_report(
    yearly_classes: Any, truth: Any, *, observed_only: bool = False
) -> list[RecoveryRow]:
    """Compare yearly land-cover layers with the planted truth.

    Parameters
    ----------
    yearly_classes
        Year -> (ny, nx) class codes on the demo grid (0 no data, 1 cloud, 2 water,
        3 vegetation, 4 urban); numpy or xarray. Or the demo cube itself (a
        :class:`~updm_dask.cube.Cube` or its location): its complete annual maps are
        then read with the cube queries (:func:`updm_dask.query.complete_yearly`: years
        without a clear observation of a pixel filled from its neighbouring years), every
        year that has a per-year layer.
    truth
        A :class:`~updm_dask.demo.DemoArchive`, a callable ``year -> classes``, or a
        mapping year -> classes.
    observed_only
        With a cube: read the per-year layers as stored
        (:func:`updm_dask.query.open_yearly`), which leave the pixels a year did not see
        unclassified.

    Returns
    -------
    list of RecoveryRow
        One row per year, ascending.

    Raises
    ------
    GridError
        A layer whose shape differs from the truth's, or an unusable ``truth``.
    QueryError
        A cube without per-year layers.
    """
    if not isinstance(yearly_classes, Mapping):
        # a cube: read what a user would read, through the query API
        from ..query import complete_yearly, open_yearly

        if observed_only:
            layers, _ = open_yearly(yearly_classes)
            classes = layers["yearly_land_cover"].values
        else:
            layers = complete_yearly(yearly_classes)
            classes = layers["land_cover"].values
        yearly_classes = {int(y): classes[i] for i, y in enumerate(layers["year"].values)}
    get_truth = _truth_getter(truth)
    rows = []
    for year in sorted(yearly_classes):
        found = np.asarray(yearly_classes[year])
        planted = np.asarray(get_truth(int(year)))
        if found.shape != planted.shape:
            raise GridError(
                f"yearly layer {year} has shape {found.shape}, the truth {planted.shape}; "
                "both must be on the demo grid"
            )
        classified = np.isin(found, LAND_CLASSES)
        n_classified = int(classified.sum())
        n = found.size
        found_pct = {}
        planted_pct = {}
        for code in LAND_CLASSES:
            name = CLASS_NAMES[code]
            hits = int((found[classified] == code).sum())
            found_pct[name] = 100.0 * hits / n_classified if n_classified else math.nan
            planted_pct[name] = 100.0 * float((planted == code).sum()) / n
        agree = (
            100.0 * float((found[classified] == planted[classified]).sum()) / n_classified
            if n_classified
            else math.nan
        )
        rows.append(
            RecoveryRow(
                year=int(year),
                found=MappingProxyType(found_pct),
                planted=MappingProxyType(planted_pct),
                unclassified_pct=100.0 * (n - n_classified) / n,
                agreement_pct=agree,
            )
        )
    return rows


def format_recovery(rows: Sequence[RecoveryRow]) -> str:
    """A fixed-width table of :func:`recovery_report` rows (found / planted, in %)."""

    def pct(value: float) -> str:
        return "    -" if math.isnan(value) else f"{value:5.1f}"

    names = [CLASS_NAMES[c] for c in LAND_CLASSES]
    width = 17
    head1 = "year " + "".join(f"{n + ' %':^{width}}" for n in names)
    head1 += f"{'unclass. %':>12}{'agreement %':>13}"
    head2 = "     " + "".join(f"{'found / planted':^{width}}" for _ in names)
    rule = "-" * len(head1)
    lines = [head1, head2, rule]
    for r in rows:
        cells = "".join(f"{pct(r.found[n]) + ' / ' + pct(r.planted[n]):^{width}}" for n in names)
        lines.append(f"{r.year:<5d}{cells}{pct(r.unclassified_pct):>12}{pct(r.agreement_pct):>13}")
    agreements = [r.agreement_pct for r in rows if not math.isnan(r.agreement_pct)]
    if agreements:
        mean = sum(agreements) / len(agreements)
        lines += [rule, f"mean agreement over {len(agreements)} years: {mean:.1f} %"]
    return "\n".join(line.rstrip() for line in lines)
