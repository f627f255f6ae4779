"""Querying cubes: point series, area statistics, trends, change, comparisons, exports, plots.

Every query takes a :class:`Selection` first (the cube, the commit, the place and the time
range read, documented there once), or a cube and the selection's fields as keywords::

    area_statistics(Selection(cube, bbox=box, start=1990))
    area_statistics(cube, bbox=box, start=1990)  # the same

Every query reads one commit of the cube: the branch tip by default, or a named commit
(``snapshot=``) or tag (``tag=``) so that an old analysis can be reproduced exactly. Maps
(trend, first change, class per year) stay lazy dask arrays until written or computed;
small answers (a point's series, an area's yearly table) are computed and returned as
pandas tables. Bad queries raise :class:`~updm_dask.errors.QueryError` naming the argument.

Python API
----------
Selection: :class:`Selection`, :class:`AreaSelection` (an area as pixels of the grid).
Series: :func:`scene_series`, :func:`yearly_series`, :func:`point_series`.
Areas: :func:`area_statistics`, :func:`land_cover_map`, :func:`open_yearly`,
:func:`complete_yearly` (the complete annual maps: years without a clear observation filled
from the neighbouring years, with their confidence; area statistics and change use them by
default, ``observed_only=True`` reads the per-year layers as stored).
Trends: :func:`mviupd_trend`, :func:`trend_summary`.
Change: :func:`transition_matrix`, :func:`first_change`, :func:`change_table`.
Comparison: :func:`compare_layers`, :func:`compare_scenes`, :func:`compare_sensors`.
Rule fitting: :func:`sample_pixels`, :func:`fit_rules`.
Exports: :func:`write_cog`, :func:`write_table`, :func:`export_map`, :func:`export_zarr`,
:func:`export_netcdf`, :func:`class_colormap`; STAC: :func:`cube_collection`,
:func:`export_stac` (and an Item beside every exported COG).
Plots (PNG): :func:`plot_class_fractions`, :func:`plot_point_series`,
:func:`plot_land_cover_map`, :func:`plot_trend_map` (in :mod:`updm_dask.query.plots`,
imported on first use so that matplotlib is only loaded for pictures).

The numpy kernels (:func:`~updm_dask.science.trends.theil_sen_mann_kendall`,
:func:`~updm_dask.query.change.first_persistent_change`, ...) and helpers stay in their
modules: ``selection`` (the selection and its resolution), ``times`` (time ranges),
``areas`` (boxes, GeoJSON, discs), ``series``, ``stats``, ``complete``, ``trends``, ``change``,
``compare``, ``rules_fit``, ``export``, ``plots`` and ``answers`` (what the commands show).

Command line: ``updm query {point,area,trend,change,first-change,compare,fit-rules}`` and
``updm export {map,zarr}`` (see :mod:`updm_dask.cli.query`).
"""

from __future__ import annotations

from typing import Any

from ..geo.points import PixelLocation
from .areas import AreaSelection
from .change import Transitions, change_table, first_change, transition_matrix
from .compare import Comparison, compare_layers, compare_scenes, compare_sensors
from .complete import complete_yearly
from .export import (
    class_colormap,
    export_map,
    export_netcdf,
    export_zarr,
    write_cog,
    write_table,
)
from .rules_fit import RuleFit, fit_rules, sample_pixels
from .selection import Selection
from .series import PointSeries, point_series, scene_series, yearly_series
from .stac import cube_collection, export_stac
from .stats import area_statistics, land_cover_map, open_yearly
from .trends import mviupd_trend, trend_summary

_PLOTS = ("plot_class_fractions", "plot_land_cover_map", "plot_point_series", "plot_trend_map")

__all__ = [
    "AreaSelection",
    "Comparison",
    "PixelLocation",
    "PointSeries",
    "RuleFit",
    "Selection",
    "Transitions",
    "area_statistics",
    "change_table",
    "class_colormap",
    "compare_layers",
    "compare_scenes",
    "compare_sensors",
    "complete_yearly",
    "cube_collection",
    "export_map",
    "export_netcdf",
    "export_stac",
    "export_zarr",
    "first_change",
    "fit_rules",
    "land_cover_map",
    "mviupd_trend",
    "open_yearly",
    "plot_class_fractions",
    "plot_land_cover_map",
    "plot_point_series",
    "plot_trend_map",
    "point_series",
    "sample_pixels",
    "scene_series",
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


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PLOTS))
