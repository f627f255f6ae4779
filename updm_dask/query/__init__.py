"""Querying cubes: point series, area statistics, trends, change, comparisons, exports, plots.

Every query reads one cube snapshot: the branch tip by default, or a named commit
(``snapshot=``) or tag (``tag=``) so that an old analysis can be reproduced exactly. Maps
(trend, first change, class per year) stay lazy dask arrays until written or computed;
small answers (a point's series, an area's yearly table) are computed and returned as
pandas tables. Bad queries raise :class:`~updm_dask.errors.QueryError` naming the argument.

Python API
----------
Selection: :func:`resolve_cube`, :func:`locate_point`, :func:`select_area`,
:func:`time_range`.
Series: :func:`scene_series`, :func:`yearly_series`, :func:`point_series`.
Areas: :func:`area_statistics`, :func:`land_cover_map`, :func:`open_yearly`.
Trends: :func:`mviupd_trend`, :func:`trend_summary`, kernel :func:`theil_sen_mann_kendall`.
Change: :func:`transition_matrix`, :func:`first_change`, :func:`change_table`, kernel
:func:`first_persistent_change`.
Comparison: :func:`compare_layers`, :func:`compare_scenes`, :func:`compare_sensors`.
Rule fitting: :func:`sample_pixels`, :func:`fit_rules`.
Exports: :func:`write_cog`, :func:`write_table`, :func:`export_zarr`.
Plots (PNG): :func:`plot_class_fractions`, :func:`plot_point_series`,
:func:`plot_land_cover_map`, :func:`plot_trend_map` (in :mod:`updm_dask.query.plots`,
imported on first use so that matplotlib is only loaded for pictures).

Command line: ``updm query {point,area,trend,change,compare,fit-rules}`` and
``updm export {map,zarr}`` (see :mod:`updm_dask.cli.query`).
"""

from __future__ import annotations

from typing import Any

from ._select import (
    AreaSelection,
    PixelLocation,
    TimeRange,
    locate_point,
    resolve_cube,
    select_area,
    time_range,
)
from .area import area_statistics, class_counts, land_cover_map, masked_median, open_yearly
from .change import (
    Transitions,
    change_table,
    epoch_class,
    first_change,
    first_persistent_change,
    transition_counts,
    transition_matrix,
)
from .compare import Comparison, compare_layers, compare_scenes, compare_sensors
from .export import class_colormap, export_zarr, table_text, write_cog, write_table
from .rules_fit import RuleFit, fit_rules, sample_pixels
from .series import PointSeries, point_series, scene_series, yearly_series
from .trends import TREND_FIELDS, mviupd_trend, theil_sen_mann_kendall, trend_summary

_PLOTS = ("plot_class_fractions", "plot_land_cover_map", "plot_point_series", "plot_trend_map")

__all__ = [
    "TREND_FIELDS",
    "AreaSelection",
    "Comparison",
    "PixelLocation",
    "PointSeries",
    "RuleFit",
    "TimeRange",
    "Transitions",
    "area_statistics",
    "change_table",
    "class_colormap",
    "class_counts",
    "compare_layers",
    "compare_scenes",
    "compare_sensors",
    "epoch_class",
    "export_zarr",
    "first_change",
    "first_persistent_change",
    "fit_rules",
    "land_cover_map",
    "locate_point",
    "masked_median",
    "mviupd_trend",
    "open_yearly",
    "plot_class_fractions",
    "plot_land_cover_map",
    "plot_point_series",
    "plot_trend_map",
    "point_series",
    "resolve_cube",
    "sample_pixels",
    "scene_series",
    "select_area",
    "table_text",
    "theil_sen_mann_kendall",
    "time_range",
    "transition_counts",
    "transition_matrix",
    "trend_summary",
    "write_cog",
    "write_table",
    "yearly_series",
]


def __getattr__(name: str) -> Any:
    # matplotlib is loaded only when a picture is asked for
    if name in _PLOTS:
        from . import plots

        return getattr(plots, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
