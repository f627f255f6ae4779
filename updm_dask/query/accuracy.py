"""Accuracy of a cube's annual land-cover maps against dated reference labels.

Labels are GeoJSON features (points, or polygons whose pixels each count as a sample unit)
with a class property (a class name such as ``"water"`` or its code) and a date: a
``year`` property (integer) or a ``date`` property (ISO ``YYYY-MM-DD``), or the ``year``
argument for labels that carry neither. Each label is compared with the cube's per-year
land cover of ITS year, never another one, so a 2020 label says nothing about 1973.

For every year, the map's classes are the strata (Olofsson et al. 2014): the error matrix
of sample counts, the mapped area of each class in the selection's area (hectares), and
:func:`~updm_dask.science.accuracy.assess_accuracy` give user's, producer's and overall
accuracies and area-adjusted class areas with 95 % confidence intervals. The estimators
assume the labels are a stratified (or simple) random sample of the map; labels placed by
hand on obvious targets over-state accuracy. Samples whose year has no clear observation at
their pixel (class no_data) are counted and left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dask
import numpy as np
import pandas as pd

from ..cube import CubeLike
from ..errors import QueryError
from ..geo.points import LONLAT, parse_crs
from ..science.accuracy import AccuracyAssessment, assess_accuracy, error_matrix
from ..science.classify import LAND_COVER_CLASSES, resolve_class_name
from .areas import feature_mask, geojson_crs, geojson_features, read_geojson
from .selection import Selection
from .stats import area_class_counts
from .times import feature_year, time_range

__all__ = ["YearAccuracy", "accuracy_assessment", "format_accuracy"]

_CODE_NAMES = {code: name for name, code in LAND_COVER_CLASSES.items()}


@dataclass(frozen=True)
class YearAccuracy:
    """The assessment of one year's map.

    Attributes
    ----------
    year : int
    assessment : AccuracyAssessment
        Estimates over the map classes that hold area (areas in hectares).
    class_names : tuple of str
        Names of ``assessment.classes``.
    n_samples : int
        Sample units used.
    n_unobserved : int
        Sample units left out because the map has no clear observation there that year.
    """

    year: int
    assessment: AccuracyAssessment
    class_names: tuple[str, ...]
    n_samples: int
    n_unobserved: int

    def table(self) -> pd.DataFrame:
        """One row per class: accuracies and areas with their 95 % half-widths."""
        a = self.assessment
        return pd.DataFrame(
            {
                "class": list(self.class_names),
                "samples": a.counts.sum(axis=1),
                "users_accuracy": a.users,
                "users_ci95": a.ci95(a.users_se),
                "producers_accuracy": a.producers,
                "producers_ci95": a.ci95(a.producers_se),
                "mapped_ha": a.mapped_area,
                "estimated_ha": a.area,
                "estimated_ci95_ha": a.ci95(a.area_se),
            }
        )


def _class_code(value: Any, where: str) -> int:
    if isinstance(value, bool):
        value = None
    if isinstance(value, int | np.integer) and int(value) in _CODE_NAMES:
        return int(value)
    if isinstance(value, str):
        name = resolve_class_name(value, LAND_COVER_CLASSES)  # urban -> non_vegetated
        if name in LAND_COVER_CLASSES:
            return int(LAND_COVER_CLASSES[name])
    names = ", ".join(n for n in LAND_COVER_CLASSES if n != "no_data")
    raise QueryError(f"{where}: the class is not one of {names} (or their codes)")


def accuracy_assessment(
    selection: Selection | CubeLike,
    samples: Any,
    *,
    year: int | None = None,
    class_property: str = "class",
    **where: Any,
) -> list[YearAccuracy]:
    """Assess the cube's per-year land cover against dated reference labels.

    Parameters
    ----------
    selection : Selection, Cube, str or path-like
        The cube, and the area whose mapped class areas are the strata (default the whole
        cube); its time range is not used (each label has its own year).
    samples : dict, str or path
        GeoJSON labels (see the module docstring), lon/lat unless ``crs`` says otherwise.
    year : int, optional
        Assess this year only (labels of other years are ignored); also the year of labels
        that carry no date.
    class_property : str
        Property naming the reference class.
    **where
        Fields of :class:`~updm_dask.query.Selection` (``crs`` is the labels' CRS).

    Returns
    -------
    list of YearAccuracy
        One per year with labels, in year order.

    Raises
    ------
    QueryError
        Bad labels (no class, unknown class, no date, outside the grid), no per-year layer
        for a label's year, a mapped class without any sample, no label at all.
    """
    if year is not None and (isinstance(year, bool) or not isinstance(year, int)):
        raise QueryError(f"year: expected an integer year, got {year!r}")
    sel = Selection.of(selection, **where)
    view = sel.resolve("area", time=False, query="accuracy_assessment")
    grid = view.cube.grid
    obj = read_geojson(samples)
    src = parse_crs(sel.crs or geojson_crs(obj) or LONLAT, "crs")
    by_year: dict[int, list[tuple[np.ndarray, int]]] = {}
    for i, (geom, props) in enumerate(geojson_features(obj)):
        what = f"samples: feature {i}"
        if class_property not in props:
            raise QueryError(f"{what} has no {class_property!r} property naming its class")
        code = _class_code(props[class_property], what)
        y = feature_year(props, what, default=year)
        if y is None:
            raise QueryError(f"{what}: no 'year' or 'date' property; give one, or pass a year")
        if year is not None and y != year:
            continue
        mask = feature_mask(geom, src, grid, what)
        by_year.setdefault(y, []).append((mask, code))
    if not by_year:
        raise QueryError("samples: no labelled feature" + (f" of {year}" if year else ""))

    out = []
    for y in sorted(by_year):
        maps = view.yearly(time_range(y, y))["yearly_land_cover"]
        if maps.sizes["year"] != 1:
            raise QueryError(f"samples: the cube has no per-year layer for {y}")
        layer = maps.isel(year=0)
        inside = view.area.full_mask()
        rows, cols, reference = [], [], []
        for mask, code in by_year[y]:
            # a label outside the assessed area is not a sample of that area's map
            r, c = np.nonzero(mask & inside)
            rows.append(r)
            cols.append(c)
            reference.append(np.full(r.size, code))
        rr, cc, ref = np.concatenate(rows), np.concatenate(cols), np.concatenate(reference)
        if rr.size == 0:
            raise QueryError(f"samples: no label of {y} lies inside the area assessed")
        mapped_at, counts = dask.compute(
            layer.data.vindex[rr - view.area.rows.start, cc - view.area.cols.start],
            area_class_counts(layer.data[None], view.area.mask),
        )
        observed = mapped_at != 0
        classes = [c for c in sorted(_CODE_NAMES) if c != 0 and counts[0, c] > 0]
        mapped_ha = np.array([counts[0, c] for c in classes]) * view.area.pixel_area_ha
        present = set(classes)
        extra = sorted(set(ref[observed].tolist()) - present)
        classes_all = classes + [c for c in extra if c != 0]
        mapped_all = np.concatenate([mapped_ha, np.zeros(len(classes_all) - len(classes))])
        matrix = error_matrix(mapped_at[observed], ref[observed], classes_all)
        assessment = assess_accuracy(matrix, mapped_all, classes_all)
        out.append(
            YearAccuracy(
                year=y,
                assessment=assessment,
                class_names=tuple(_CODE_NAMES[c] for c in classes_all),
                n_samples=int(observed.sum()),
                n_unobserved=int((~observed).sum()),
            )
        )
    return out


def format_accuracy(results: list[YearAccuracy]) -> str:
    """Plain-text report: per year the error matrix, accuracies and estimated areas."""
    lines = []
    for r in results:
        a = r.assessment
        left_out = f" ({r.n_unobserved} without a clear observation left out)"
        lines.append(f"{r.year}: {r.n_samples} sample units" + (left_out if r.n_unobserved else ""))
        lines.append(f"  overall accuracy {a.overall:.3f} +- {a.ci95(a.overall_se):.3f} (95 % CI)")
        width = max(12, *(len(n) for n in r.class_names))
        names = " ".join(n[:12].rjust(12) for n in r.class_names)
        lines.append("  map \\ reference".ljust(width + 4) + names)
        for name, row in zip(r.class_names, a.counts, strict=True):
            lines.append(f"  {name.ljust(width + 2)}" + " ".join(f"{v:12d}" for v in row))
        lines.append(
            "  class".ljust(width + 4) + "user's          producer's       mapped ha"
            "    estimated ha (95 % CI)"
        )
        for _, t in r.table().iterrows():
            lines.append(
                f"  {t['class'].ljust(width + 2)}"
                f"{t['users_accuracy']:.3f} +- {t['users_ci95']:.3f}  "
                f"{t['producers_accuracy']:.3f} +- {t['producers_ci95']:.3f}  "
                f"{t['mapped_ha']:12.1f}  {t['estimated_ha']:12.1f} +- {t['estimated_ci95_ha']:.1f}"
            )
    return "\n".join(lines)
