"""PNG pictures of query answers (matplotlib, Agg canvas, no global pyplot state).

- :func:`plot_class_fractions`: stacked areas of the yearly class shares of an area, with
  the share of the area observed each year (and, for the complete maps, the share
  mapped: observed or filled from the neighbouring years);
- :func:`plot_point_series`: a pixel's MVIUPD over time, one marker shape per sensor,
  coloured by class, with the per-year median;
- :func:`plot_land_cover_map`: a yearly land-cover map with a class legend (no_data
  transparent);
- :func:`plot_trend_map`: the Theil-Sen slope map, pixels without a significant
  Mann-Kendall trend faded;
- :func:`plot_value_map`: a map of one number per pixel (the yearly median MVIUPD, the
  yearly count of clear observations) with a colour bar, no-data pixels grey.

Colours: water blue, vegetation green, non-vegetated (built-up, bare or sparse land) red,
cloud light grey (see ``_style``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import QueryError
from ..geo.points import format_lonlat
from ._style import CLASS_LEGEND, CLASS_STYLE, SENSOR_MARKERS

# Background of trend maps: pixels without a trend.
_NO_TREND = "#c8c8c8"
# Line of the share of the area mapped by the complete maps (observed or filled).
_MAPPED = "#7b3294"

__all__ = [
    "plot_class_fractions",
    "plot_land_cover_map",
    "plot_point_series",
    "plot_trend_map",
    "plot_value_map",
]


def _figure(width: float = 8.0, height: float = 4.5):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.parent.is_dir():
        raise QueryError(f"plot: folder {str(p.parent)!r} does not exist")
    # "tight" keeps legends placed outside the axes inside the picture
    fig.savefig(p, format="png", facecolor="white", bbox_inches="tight", pad_inches=0.15)
    return p


def _colour(code: int) -> str:
    return CLASS_STYLE.get(int(code), ("", "#999999"))[1]


def _legend(code: int) -> str:
    # The class as a legend says it: class 4 is built-up, bare and sparse land alike.
    return CLASS_LEGEND.get(int(code), CLASS_STYLE.get(int(code), (str(code), ""))[0])


def plot_class_fractions(
    stats: pd.DataFrame, path: str | os.PathLike, *, title: str | None = None
) -> Path:
    """Stacked areas of the yearly class shares of an area.

    The shares are those of the table: of the mapped area for the complete maps (the
    default of :func:`~updm_dask.query.area_statistics`), of the observed area with
    ``observed_only``. A dashed black line shows the share of the area observed each year
    and, when the table filled any pixel, a dotted purple line the share mapped (observed
    or filled).

    Parameters
    ----------
    stats : pandas.DataFrame
        From :func:`~updm_dask.query.area_statistics`.
    path : str or path-like
        PNG file to write.
    title : str, optional

    Returns
    -------
    pathlib.Path
    """
    need = {
        "year",
        "observed_fraction",
        "water_fraction",
        "vegetation_fraction",
        "non_vegetated_fraction",
    }
    if not need <= set(stats.columns):
        raise QueryError(f"plot_class_fractions: expected area_statistics columns {sorted(need)}")
    years = stats["year"].to_numpy()
    order = ("vegetation", "non_vegetated", "water")
    shares = [np.nan_to_num(stats[f"{n}_fraction"].to_numpy(dtype=float)) for n in order]
    colours = [_colour(c) for n in order for c, (name, _) in CLASS_STYLE.items() if name == n]
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    labels = [_legend(c) for n in order for c, (name, _) in CLASS_STYLE.items() if name == n]
    ax.stackplot(years, *shares, labels=labels, colors=colours)
    ax.plot(
        years,
        stats["observed_fraction"].to_numpy(dtype=float),
        color="black",
        linestyle="--",
        marker=".",
        linewidth=1.2,
        label="share of the area observed",
    )
    filled = (
        stats["filled_fraction"].to_numpy(dtype=float)
        if "filled_fraction" in stats
        else np.zeros(len(years))
    )
    if np.nansum(filled) > 0:
        ax.plot(
            years,
            stats["observed_fraction"].to_numpy(dtype=float) + filled,
            color=_MAPPED,
            linestyle=":",
            marker=".",
            linewidth=1.6,
            label="share of the area mapped\n(observed or filled)",
        )
    complete = stats.attrs.get("maps") == "complete"
    ax.set_xlim(years.min(), years.max() if years.max() > years.min() else years.min() + 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("year")
    ax.set_ylabel(f"share of the {'mapped' if complete else 'observed'} area (fraction)")
    area = stats.attrs.get("area", {})
    ha = area.get("area_ha")
    maps = (
        f"complete maps, window {stats.attrs.get('window')} years"
        if complete
        else "observed pixels only"
        if stats.attrs.get("maps") == "observed"
        else ""
    )
    ax.set_title(
        title
        or "Land-cover shares per year"
        + (f" ({ha:,.1f} ha)" if isinstance(ha, int | float) else "")
        + (f"\n{maps}" if maps else "")
    )
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_point_series(
    scenes: pd.DataFrame,
    path: str | os.PathLike,
    *,
    yearly: pd.DataFrame | None = None,
    title: str | None = None,
) -> Path:
    """A pixel's MVIUPD per scene (marker = sensor, colour = class) and yearly median.

    Parameters
    ----------
    scenes : pandas.DataFrame
        From :func:`~updm_dask.query.scene_series` (``time``, ``sensor``, ``mviupd``,
        ``land_cover``; ``clear`` when present: unclear scenes are drawn hollow).
    path : str or path-like
    yearly : pandas.DataFrame, optional
        From :func:`~updm_dask.query.yearly_series` (``year``, ``yearly_mviupd_median``).
    title : str, optional

    Returns
    -------
    pathlib.Path
    """
    from matplotlib.lines import Line2D

    for col in ("time", "sensor", "mviupd", "land_cover"):
        if col not in scenes:
            raise QueryError(f"plot_point_series: the scene table has no {col!r} column")
    fig = _figure(9.0, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    clear = scenes["clear"].to_numpy() if "clear" in scenes else np.ones(len(scenes), bool)
    for sensor, part in scenes.groupby("sensor", sort=False):
        marker = SENSOR_MARKERS.get(str(sensor), "o")
        idx = part.index.to_numpy()
        colours = [_colour(c) for c in part["land_cover"].to_numpy()]
        ok = clear[idx]
        t = part["time"].to_numpy()
        v = part["mviupd"].to_numpy(dtype=float)
        ok_idx = np.flatnonzero(ok)
        bad_idx = np.flatnonzero(~ok)
        if ok_idx.size:
            ax.scatter(
                t[ok_idx],
                v[ok_idx],
                marker=marker,
                s=30,
                c=[colours[i] for i in ok_idx],
                edgecolors="black",
                linewidths=0.5,
                zorder=3,
            )
        if bad_idx.size:
            ax.scatter(
                t[bad_idx],
                v[bad_idx],
                marker=marker,
                s=30,
                facecolors="none",
                edgecolors=[colours[i] if colours[i] != "#e6e6e6" else "#888888" for i in bad_idx],
                linewidths=0.8,
                zorder=2,
            )
    if yearly is not None and len(yearly):
        mid = pd.to_datetime(yearly["year"].astype(int).astype(str) + "-07-01").to_numpy()
        ax.plot(
            mid,
            yearly["yearly_mviupd_median"].to_numpy(dtype=float),
            color="black",
            linewidth=1.0,
            alpha=0.7,
            marker="_",
            zorder=1,
        )
    handles = [
        Line2D(
            [],
            [],
            linestyle="",
            marker=SENSOR_MARKERS.get(str(s), "o"),
            color="#555555",
            markersize=6,
            label=str(s),
        )
        for s in scenes["sensor"].unique()
    ]
    handles += [
        Line2D(
            [],
            [],
            linestyle="",
            marker="s",
            markersize=8,
            markerfacecolor=col,
            markeredgecolor="black",
            markeredgewidth=0.5,
            label=_legend(code),
        )
        for code, (name, col) in CLASS_STYLE.items()
        if code != 0 and (scenes["land_cover"] == code).any()
    ]
    handles.append(
        Line2D(
            [],
            [],
            linestyle="",
            marker="o",
            markerfacecolor="none",
            markeredgecolor="#555555",
            label="not clear",
        )
    )
    if yearly is not None and len(yearly):
        handles.append(Line2D([], [], color="black", alpha=0.7, label="yearly median"))
    ax.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9
    )
    ax.set_xlabel("acquisition date")
    ax.set_ylabel("MVIUPD (unitless)")
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.grid(True, alpha=0.3)
    pt = scenes.attrs.get("point", {})
    where = (
        f" at {format_lonlat(pt['lon'], pt['lat'])} (row {pt['row']}, col {pt['col']})"
        if "lat" in pt
        else ""
    )
    ax.set_title(title or f"MVIUPD per scene{where}", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def _extent_km(da: xr.DataArray) -> tuple[float, float, float, float]:
    x = np.asarray(da["x"].values, dtype=float)
    y = np.asarray(da["y"].values, dtype=float)
    dx = abs(x[1] - x[0]) if x.size > 1 else 30.0
    dy = abs(y[1] - y[0]) if y.size > 1 else 30.0
    return (
        (x.min() - dx / 2) / 1000,
        (x.max() + dx / 2) / 1000,
        (y.min() - dy / 2) / 1000,
        (y.max() + dy / 2) / 1000,
    )


def _crs_label(da: xr.DataArray) -> str:
    crs = da.rio.crs
    if crs is None:
        return ""
    epsg = crs.to_epsg()
    return f", EPSG:{epsg}" if epsg else ""


def _map_size(da: xr.DataArray, legend: float) -> tuple[float, float]:
    """Figure size that fits the map's aspect ratio plus a legend or colour bar."""
    x0, x1, y0, y1 = _extent_km(da)
    ratio = (y1 - y0) / (x1 - x0) if x1 > x0 else 1.0
    width = 5.0
    return width + legend, float(np.clip(width * ratio + 1.3, 3.0, 9.0))


def _map_axes(fig, da: xr.DataArray):
    ax = fig.add_subplot(1, 1, 1)
    ax.set_xlabel(f"easting (km{_crs_label(da)})")
    ax.set_ylabel(f"northing (km{_crs_label(da)})")
    ax.ticklabel_format(useOffset=False, style="plain")
    return ax


def plot_land_cover_map(
    classes: xr.DataArray, path: str | os.PathLike, *, title: str | None = None
) -> Path:
    """A land-cover map with a legend of the classes (no_data transparent).

    Parameters
    ----------
    classes : xarray.DataArray
        (y, x) class codes, e.g. :func:`~updm_dask.query.land_cover_map` (computed here).
    path : str or path-like
    title : str, optional

    Returns
    -------
    pathlib.Path
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    if classes.ndim != 2:
        raise QueryError(f"plot_land_cover_map: expected a (y, x) map, got dims {classes.dims}")
    values = np.asarray(classes.values).astype(np.int64)
    codes = sorted(CLASS_STYLE)
    rgba = [(0, 0, 0, 0) if c == 0 else CLASS_STYLE[c][1] for c in codes]
    cmap = ListedColormap(rgba)
    shown = np.where(np.isin(values, codes), values, 0)
    fig = _figure(*_map_size(classes, legend=2.3))
    ax = _map_axes(fig, classes)
    ax.imshow(
        shown,
        cmap=cmap,
        vmin=-0.5,
        vmax=len(codes) - 0.5,
        interpolation="nearest",
        extent=_extent_km(classes),
        origin="upper" if classes["y"].values[0] > classes["y"].values[-1] else "lower",
    )
    total = values.size
    handles = []
    for c in codes:
        col = CLASS_STYLE[c][1]
        share = 100.0 * (values == c).sum() / total
        if c == 0:
            handles.append(
                Patch(
                    facecolor="white",
                    edgecolor="#777777",
                    linestyle="--",
                    label=f"no data ({share:.0f} %)",
                )
            )
        else:
            handles.append(
                Patch(facecolor=col, edgecolor="#777777", label=f"{_legend(c)} ({share:.0f} %)")
            )
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
        fontsize=9,
        title="class",
    )
    year = classes.attrs.get("year")
    ax.set_title(title or ("Land cover" + (f" {year}" if year is not None else "")))
    fig.tight_layout()
    return _save(fig, path)


def plot_trend_map(trend: xr.Dataset, path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Map of the Theil-Sen MVIUPD slope; pixels without a significant trend faded.

    Parameters
    ----------
    trend : xarray.Dataset
        From :func:`~updm_dask.query.mviupd_trend` (computed here).
    path : str or path-like
    title : str, optional

    Returns
    -------
    pathlib.Path
    """
    import matplotlib
    from matplotlib.colors import Normalize
    from matplotlib.patches import Patch

    for name in ("slope", "significant"):
        if name not in trend:
            raise QueryError(f"plot_trend_map: the trend has no {name!r} variable")
    slope = np.asarray(trend["slope"].values, dtype=float)
    sig = np.asarray(trend["significant"].values, dtype=bool)
    finite = np.isfinite(slope)
    lim = float(np.nanpercentile(np.abs(slope[finite]), 98)) if finite.any() else 0.01
    lim = lim if lim > 0 else 0.01
    norm = Normalize(-lim, lim)
    fig = _figure(*_map_size(trend["slope"], legend=2.3))
    ax = _map_axes(fig, trend["slope"])
    ax.set_facecolor(_NO_TREND)  # shows through where no trend could be computed
    extent = _extent_km(trend["slope"])
    origin = "upper" if trend["y"].values[0] > trend["y"].values[-1] else "lower"
    # not significant: the slope's colour mixed with white (opaque, so that the grey
    # background stays reserved for pixels without a trend)
    faded = matplotlib.colormaps["BrBG"](norm(np.where(finite, slope, 0.0)))
    faded[..., :3] = 0.35 * faded[..., :3] + 0.65
    faded[..., 3] = np.where(finite & ~sig, 1.0, 0.0)
    ax.imshow(faded, interpolation="nearest", extent=extent, origin=origin)
    im = ax.imshow(
        np.where(finite & sig, slope, np.nan),
        cmap="BrBG",
        norm=norm,
        interpolation="nearest",
        extent=extent,
        origin=origin,
    )
    bar = fig.colorbar(im, ax=ax, shrink=0.8, extend="both")
    bar.set_label("MVIUPD trend (Theil-Sen slope, per year)")
    n_min = trend.attrs.get("min_years")
    ax.legend(
        handles=[
            Patch(
                facecolor=_NO_TREND,
                edgecolor="#777777",
                label=f"no trend (< {n_min} observed years)" if n_min else "no trend",
            )
        ],
        loc="upper left",
        bbox_to_anchor=(0.0, -0.12),
        frameon=False,
        fontsize=9,
    )
    alpha = trend.attrs.get("alpha", 0.05)
    a, b = trend.attrs.get("first_year"), trend.attrs.get("last_year")
    ax.set_title(
        title
        or f"MVIUPD trend {a}-{b}\n(faded: no significant Mann-Kendall trend, p >= {alpha:g})",
        fontsize=11,
    )
    fig.tight_layout()
    return _save(fig, path)


def plot_value_map(
    values: xr.DataArray,
    path: str | os.PathLike,
    *,
    label: str,
    title: str | None = None,
    nodata: float | None = None,
    cmap: str = "viridis",
    symmetric: bool = False,
) -> Path:
    """A map of one number per pixel with a colour bar; no-data pixels grey.

    Parameters
    ----------
    values : xarray.DataArray
        (y, x) values with ``x``/``y`` coordinates, e.g. a per-year layer (computed here).
    path : str or path-like
    label : str
        What the colour bar shows, with its unit.
    title : str, optional
    nodata : float, optional
        Value that marks pixels without data (NaN always does).
    cmap : str
        Matplotlib colour map.
    symmetric : bool
        Colour range symmetric about 0 (for a diverging ``cmap``: 0 in its middle).

    Returns
    -------
    pathlib.Path
    """
    if values.ndim != 2:
        raise QueryError(f"plot_value_map: expected a (y, x) map, got dims {values.dims}")
    v = np.asarray(values.values, dtype=float)
    if nodata is not None:
        v = np.where(v == nodata, np.nan, v)
    fig = _figure(*_map_size(values, legend=1.6))
    ax = _map_axes(fig, values)
    ax.set_facecolor(_NO_TREND)  # shows through where there is no data
    finite = np.isfinite(v)
    lo, hi = (float(np.min(v[finite])), float(np.max(v[finite]))) if finite.any() else (0, 1)
    if symmetric:
        hi = max(abs(lo), abs(hi))
        lo = -hi
    im = ax.imshow(
        v,
        cmap=cmap,
        vmin=lo,
        vmax=hi if hi > lo else lo + 1,
        interpolation="nearest",
        extent=_extent_km(values),
        origin="upper" if values["y"].values[0] > values["y"].values[-1] else "lower",
    )
    bar = fig.colorbar(im, ax=ax, shrink=0.8)
    bar.set_label(label)
    ax.set_title(title or label, fontsize=11)
    fig.tight_layout()
    return _save(fig, path)
