"""Exports: maps as Cloud-Optimised GeoTIFF or PNG, tables as CSV/JSON, CF Zarr and netCDF.

Writing is where lazy maps are computed: :func:`write_cog` streams a dask-backed map
through rioxarray into a tiled GeoTIFF, which GDAL's COG driver then turns into a
Cloud-Optimised GeoTIFF (tiles, overviews, deflate), with a colour table for class maps.
:func:`export_map` picks the map of a named layer (one year's class, median MVIUPD or
clear-observation count; the trend; the first change) and writes it as a COG or a picture.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr

from ..cube import CLEAR_COUNT_FILL, CubeLike, clear_count_with_fill
from ..errors import QueryError
from ._style import CLASS_STYLE, rgba
from .change import first_change
from .selection import Selection
from .stats import land_cover_map
from .times import time_range
from .trends import mviupd_trend

__all__ = [
    "MAP_LAYERS",
    "cf_dataset",
    "class_colormap",
    "export_map",
    "export_netcdf",
    "export_zarr",
    "json_text",
    "map_layer",
    "table_json",
    "table_text",
    "write_cog",
    "write_json",
    "write_table",
]

#: Layers :func:`export_map` writes: one year's (the first three) or a range of years'.
MAP_LAYERS = ("land_cover", "trend", "first_change", "mviupd_median", "clear_count")
# Layers with a picture (.png), and for the per-year values: colour-bar label, colour map,
# the value drawn as no data (NaN always is; 0 clear observations reads as no data) and
# whether the colours are symmetric about 0 (MVIUPD: water below, vegetation above).
_PICTURES = {
    "land_cover": None,
    "trend": None,
    "mviupd_median": ("median MVIUPD of the year (unitless)", "BrBG", None, True),
    "clear_count": ("clear observations in the year", "viridis", CLEAR_COUNT_FILL, False),
}


def class_colormap() -> dict[int, tuple[int, int, int, int]]:
    """GeoTIFF colour table of the land-cover classes (no_data transparent)."""
    return {code: rgba(code) for code in CLASS_STYLE}


def _check_target(path: str | os.PathLike, overwrite: bool, what: str) -> Path:
    p = Path(path)
    if p.exists() and not overwrite:
        raise QueryError(f"{what}: {str(p)!r} exists; choose another path or overwrite it")
    if not p.parent.is_dir():
        raise QueryError(f"{what}: folder {str(p.parent)!r} does not exist")
    return p


def write_cog(
    data: xr.DataArray,
    path: str | os.PathLike,
    *,
    nodata: float | None = None,
    colormap: Mapping[int, tuple[int, int, int, int]] | None = None,
    overwrite: bool = True,
    units: Sequence[str] | None = None,
) -> Path:
    """Write a georeferenced map (y, x) or stack (band, y, x) as a Cloud-Optimised GeoTIFF.

    Parameters
    ----------
    data : xarray.DataArray
        With a CRS (``.rio.crs``) and y/x coordinates; dask-backed data are computed
        chunk by chunk while writing. Boolean maps are written as uint8.
    path : str or path-like
    nodata : float, optional
        Nodata value (default the array's ``rio.nodata``, NaN for floats).
    colormap : mapping, optional
        Colour table (value -> RGBA 0-255) for single-band uint8 maps.
    overwrite : bool
        Replace an existing file.
    units : sequence of str, optional
        Unit of each band (GDAL's band unit type); default the map's ``units`` attribute
        for a single band.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    QueryError
        No CRS, wrong dims, ``units`` not one per band, an existing file without
        ``overwrite``, a missing folder.
    """
    from rasterio.shutil import copy as rio_copy

    if not isinstance(data, xr.DataArray):
        raise QueryError(f"write_cog: expected an xarray DataArray, got {type(data).__name__}")
    if data.rio.crs is None:
        raise QueryError(f"write_cog: {data.name!r} has no CRS")
    if data.ndim not in (2, 3) or data.dims[-2:] != ("y", "x"):
        raise QueryError(f"write_cog: expected dims (y, x) or (band, y, x), got {data.dims}")
    n_bands = data.shape[0] if data.ndim == 3 else 1
    if units is None and data.ndim == 2 and isinstance(data.attrs.get("units"), str):
        units = [data.attrs["units"]]
    if units is not None and (isinstance(units, str) or len(units) != n_bands):
        raise QueryError(f"write_cog: units: expected one unit per band ({n_bands}), got {units!r}")
    target = _check_target(path, overwrite, "write_cog")
    if data.dtype == bool:
        data = data.astype(np.uint8)
    if nodata is None:
        nodata = data.rio.nodata
        if nodata is None and data.dtype.kind == "f":
            nodata = math.nan
    data = data.rio.write_nodata(nodata, encoded=False) if nodata is not None else data
    # GeoTIFF tags are text: lists are joined, other non-scalar attributes dropped
    data = data.copy()
    tags = {}
    for k, v in data.attrs.items():
        if isinstance(v, list | tuple):
            v = " ".join(str(x) for x in v)
        if isinstance(v, str | int | float | np.generic):
            tags[k] = v
    if data.ndim == 3 and data.dims[0] in data.coords:
        # band names become the GeoTIFF band descriptions (rioxarray reads long_name)
        tags["long_name"] = tuple(str(b) for b in data[data.dims[0]].values)
        data = data.drop_vars(data.dims[0])
    data.attrs = tags
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        staging = Path(tmp) / "staging.tif"
        data.rio.to_raster(staging, driver="GTiff", tiled=True, compress="deflate")
        if colormap is not None or units is not None:
            import rasterio

            with rasterio.open(staging, "r+") as dst:
                if colormap is not None:
                    dst.write_colormap(1, dict(colormap))
                if units is not None:
                    dst.units = tuple(str(u) for u in units)
        if target.exists():
            target.unlink()
        rio_copy(staging, target, driver="COG", compress="deflate", overview_resampling="nearest")
    return target


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.datetime64 | pd.Timestamp):
        return str(value)
    raise TypeError(f"not JSON-able: {type(value).__name__}")


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for rec in table.to_dict(orient="records"):
        clean = {}
        for k, v in rec.items():
            if isinstance(v, float) and not math.isfinite(v):
                v = None
            elif isinstance(v, pd.Timestamp):
                v = v.isoformat()
            clean[str(k)] = v
        out.append(clean)
    return out


def table_json(table: pd.DataFrame) -> str:
    """A query table as JSON text: ``{"metadata": table.attrs, "rows": [...]}``, NaN as null."""
    return json_text({"metadata": dict(table.attrs), "rows": _records(table)})


def json_text(doc: Mapping[str, Any]) -> str:
    """A query answer (dict of numbers, strings, lists, numpy scalars) as JSON text."""
    return json.dumps(doc, indent=1, default=_json_default)


def write_table(table: pd.DataFrame, path: str | os.PathLike, *, format: str | None = None) -> Path:
    """Write a query table as CSV or JSON (by ``format`` or the file suffix).

    JSON holds ``{"metadata": table.attrs, "rows": [...]}`` with NaN as null; CSV has
    one header line and the rows (metadata is not written to CSV).

    Raises
    ------
    QueryError
        Unknown format, a missing folder.
    """
    p = _check_target(path, True, "write_table")
    fmt = (format or p.suffix.lstrip(".")).lower()
    if fmt == "csv":
        table.to_csv(p, index=False, date_format="%Y-%m-%dT%H:%M:%S")
    elif fmt == "json":
        p.write_text(table_json(table) + "\n", encoding="utf-8")
    else:
        raise QueryError(f"write_table: unknown format {fmt!r} for {str(p)!r}; use csv or json")
    return p


def write_json(doc: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write a query answer (e.g. :func:`~updm_dask.query.trend_summary`) as JSON.

    Raises
    ------
    QueryError
        A missing folder.
    """
    p = _check_target(path, True, "write_json")
    p.write_text(json_text(doc) + "\n", encoding="utf-8")
    return p


def table_text(table: pd.DataFrame, *, float_format: str = "{:.4g}") -> str:
    """A table as fixed-width text for printing."""
    with pd.option_context(
        "display.max_rows", None, "display.max_columns", None, "display.width", 200
    ):
        return table.to_string(index=False, float_format=float_format.format)


#: Zarr format of :func:`export_zarr`: version 2 is what GDAL's Zarr driver (3.12, the one
#: rasterio ships) and netCDF-C's NCZarr read with their string coordinates.
ZARR_FORMATS = (2, 3)


def _history_line(view: Any, what: str) -> str:
    from .. import __version__

    now = pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"{now}: {what} of cube {view.location} snapshot {view.snapshot} (updm_dask {__version__})"
    )


def _fixed_width_bytes(values: Any) -> np.ndarray:
    # GDAL and netCDF-C read fixed-width byte strings; the cube's variable-width strings
    # (Zarr "string") they drop
    text = [str(v).encode("utf-8") for v in np.asarray(values).tolist()]
    width = max((len(t) for t in text), default=1) or 1
    return np.array(text, dtype=f"S{width}")


def _class_count_with_fill(ds: xr.Dataset) -> xr.DataArray:
    """``yearly_class_count`` with the clear count's fill where no scene covered the pixel.

    The cube stores 0 there, which is also the count of a pixel seen but never clear;
    exports use the fill that is not a count (as for ``yearly_clear_count``, whose fill
    says where nothing was seen), so that GDAL and CF readers skip those pixels only.
    """
    counted = ds["yearly_class_count"]
    uncovered = ds["yearly_clear_count"] == CLEAR_COUNT_FILL
    out = counted.where(~uncovered, CLEAR_COUNT_FILL).astype("uint16")
    out.attrs = {
        **counted.attrs,
        "comment": f"{CLEAR_COUNT_FILL} (the fill value): no scene of the year covered the "
        "pixel; 0: covered, but never clear",
    }
    return out


def cf_dataset(view: Any, what: str) -> tuple[xr.Dataset, dict[str, dict[str, Any]]]:
    """A cube snapshot as a CF-1.10 Dataset ready to write, and its encoding.

    What the exports write: the cube's variables and coordinates with ``_FillValue`` on
    data variables only (never on coordinates), ``flag_values``/``flag_masks`` in the
    variable's dtype, per-scene strings as fixed-width bytes, ``yearly_clear_count`` and
    ``yearly_class_count`` with a fill that is not a count where no scene covered the pixel
    (:func:`~updm_dask.cube.clear_count_with_fill`),
    the grid description as JSON text and a ``history`` line.

    Parameters
    ----------
    view : ResolvedSelection
        The cube and snapshot (``Selection.resolve("cube", ...)``).
    what : str
        The export, named in ``history``.

    Returns
    -------
    (xarray.Dataset, dict)
        The lazy Dataset and the per-variable encoding for ``to_zarr``/``to_netcdf``.
    """
    from ..cube import SCENE_VARIABLES, STR_COORDS, YEARLY_VARIABLES

    ds = view.dataset.copy()
    # the cube's own time encoding (int64 microseconds keep sub-second scene times)
    time_encoding = {
        k: v for k, v in ds["time"].encoding.items() if k in ("units", "calendar", "dtype")
    }
    if "yearly_clear_count" in ds:
        ds["yearly_clear_count"] = clear_count_with_fill(ds, view.location)
        if "yearly_class_count" in ds:
            ds["yearly_class_count"] = _class_count_with_fill(ds)
    for name in STR_COORDS:
        if name in ds.coords:
            ds = ds.assign_coords({name: (ds[name].dims, _fixed_width_bytes(ds[name].values))})
            # _Encoding: xarray reads the bytes back as text
            ds[name].attrs = {"long_name": STR_COORDS[name], "_Encoding": "utf-8"}
    specs = {**SCENE_VARIABLES, **YEARLY_VARIABLES}
    encoding: dict[str, dict[str, Any]] = {}
    for name, var in ds.variables.items():
        stored = var.encoding
        var.encoding = {}
        attrs = dict(var.attrs)
        # xarray writes the coordinates attribute itself
        attrs.pop("coordinates", None)
        for key in ("flag_values", "flag_masks"):
            if key in attrs:
                attrs[key] = np.asarray(attrs[key], dtype=var.dtype)
        var.attrs = attrs
        if name == "spatial_ref":
            var.attrs.setdefault("long_name", "coordinate reference system of the grid")
        if name in ds.coords or name == "spatial_ref":
            encoding[name] = {"_FillValue": None}
        elif name in ("yearly_clear_count", "yearly_class_count"):
            encoding[name] = {"_FillValue": np.uint16(CLEAR_COUNT_FILL)}
        elif name in specs:
            encoding[name] = {"_FillValue": np.asarray(specs[name].fill, dtype=var.dtype)[()]}
        else:
            fill = stored.get("fill_value", stored.get("_FillValue"))
            encoding[name] = {"_FillValue": fill}
    encoding["time"].update(time_encoding)
    attrs = {k: v for k, v in ds.attrs.items() if k != "updm_snapshot"}
    for key, value in list(attrs.items()):
        if isinstance(value, Mapping | list):
            # netCDF attributes hold numbers and text, not nested structures
            attrs[key] = json.dumps(value)
    history = _history_line(view, what)
    attrs["history"] = f"{history}\n{attrs['history']}" if attrs.get("history") else history
    attrs.update(Conventions="CF-1.10", updm_export_of=view.location, updm_snapshot=view.snapshot)
    ds.attrs = attrs
    return ds, encoding


def _type_attributes(ds: xr.Dataset) -> None:
    # Zarr 2 attributes are JSON without types: netCDF-C's hint (which xarray hides when
    # reading) keeps flag_values/flag_masks in the variable's dtype for CF readers
    for var in ds.variables.values():
        types = {
            k: np.asarray(v).dtype.str
            for k, v in var.attrs.items()
            if isinstance(v, np.ndarray | np.generic) and np.asarray(v).dtype.kind in "iuf"
        }
        if types:
            var.attrs["_nczarr_attr"] = {"types": types}


def _replace_with(tmp: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    tmp.rename(target)


def export_zarr(
    selection: Selection | CubeLike,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    zarr_format: int = 2,
    **where: Any,
) -> Path:
    """Copy one snapshot of a cube into a plain, CF-1.10 Zarr store (no Icechunk needed).

    The copy has the cube's variables, coordinates, chunks and attributes in the CF form
    of :func:`cf_dataset` (``history``, fills on data variables only, fixed-width scene
    ids, the clear-observation count's fill), plus ``updm_export_of`` (the cube location)
    and ``updm_snapshot`` (the snapshot copied), with consolidated metadata.
    ``xarray.open_zarr(path)`` reads it, and so do GDAL's Zarr driver and netCDF-C (NCZarr)
    in Zarr format 2.

    Parameters
    ----------
    selection : Selection, Cube, str or path-like
        The cube and the commit copied (default the branch tip); the whole cube is copied.
    path : str or path-like
        New local directory.
    overwrite : bool
        Replace an existing directory.
    zarr_format : int
        2 (default: read by GDAL 3.12 and netCDF-C with the scene ids) or 3 (GDAL reads
        the scene ids of Zarr 3 from version 3.13).
    **where
        ``snapshot``, ``tag`` or ``branch`` (fields of :class:`~updm_dask.query.Selection`).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    QueryError
        The target exists (without ``overwrite``), unknown commit or tag, another
        ``zarr_format``.
    """
    if isinstance(zarr_format, bool) or zarr_format not in ZARR_FORMATS:
        raise QueryError(f"zarr_format: expected 2 or 3, got {zarr_format!r}")
    view = Selection.of(selection, **where).resolve("cube", time=False, query="export_zarr")
    target = _check_target(path, overwrite, "export_zarr")
    ds, encoding = cf_dataset(view, f"updm export zarr (Zarr format {zarr_format})")
    if zarr_format == 2:
        _type_attributes(ds)
    tmp = target.with_name(target.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        ds.to_zarr(tmp, zarr_format=zarr_format, consolidated=True, mode="w-", encoding=encoding)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # the target, if any, stays as it was
        raise
    _replace_with(tmp, target)
    return target


def export_netcdf(
    selection: Selection | CubeLike,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    **where: Any,
) -> Path:
    """Write one snapshot of a cube as a CF-1.10 netCDF-4 file.

    The content is that of :func:`export_zarr` (:func:`cf_dataset`), compressed (zlib);
    scene ids become CF character arrays.

    Parameters
    ----------
    selection : Selection, Cube, str or path-like
        The cube and the commit written (default the branch tip).
    path : str or path-like
        New ``.nc`` file.
    overwrite : bool
        Replace an existing file.
    **where
        ``snapshot``, ``tag`` or ``branch`` (fields of :class:`~updm_dask.query.Selection`).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    QueryError
        The target exists (without ``overwrite``), a missing folder, unknown commit or tag.
    """
    view = Selection.of(selection, **where).resolve("cube", time=False, query="export_netcdf")
    target = _check_target(path, overwrite, "export_netcdf")
    ds, encoding = cf_dataset(view, "updm export netcdf")
    for name, enc in encoding.items():
        if name not in ds.coords and ds[name].dtype.kind in "iuf":
            enc.update(zlib=True, complevel=4)
    tmp = target.with_name(target.name + ".partial")
    if tmp.exists():
        tmp.unlink()
    try:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _replace_with(tmp, target)
    return target


def map_layer(
    selection: Selection | CubeLike,
    layer: str,
    *,
    year: int | None = None,
    persistence: int = 3,
    **where: Any,
) -> xr.DataArray | xr.Dataset:
    """The lazy map of a named layer over an area (see :data:`MAP_LAYERS`).

    Parameters
    ----------
    selection : Selection, Cube, str or path-like
        The cube, the area (pixels of its window outside it get the layer's no-data
        value) and, for ``trend`` and ``first_change``, the time range.
    layer : str
        ``land_cover`` (:func:`~updm_dask.query.land_cover_map`), ``mviupd_median``,
        ``clear_count`` (the per-year layers of ``year``); ``trend``
        (:func:`~updm_dask.query.mviupd_trend`, a Dataset) or ``first_change``
        (:func:`~updm_dask.query.first_change`, a Dataset) over the time range.
    year : int, optional
        Year of a per-year layer (required for them, refused for the others); it sets
        their time, so that ``start``/``end`` are not used for them.
    persistence : int
        Of ``first_change``.
    **where
        Fields of :class:`~updm_dask.query.Selection`.

    Raises
    ------
    QueryError
        An unknown layer, ``year`` missing or given where it has no meaning, and the
        errors of the query behind the layer.
    """
    if layer not in MAP_LAYERS:
        raise QueryError(f"layer: unknown map layer {layer!r}; expected one of {MAP_LAYERS}")
    if layer in ("land_cover", "mviupd_median", "clear_count"):
        if year is None:
            raise QueryError(f"--layer {layer} needs --year")
        # the year sets the time of these layers; a time range has no use here
        sel = dataclasses.replace(Selection.of(selection, **where), start=None, end=None)
        if layer == "land_cover":
            return land_cover_map(sel, year)
        view = sel.resolve("area", time=False, query="map_layer")
        win = view.yearly(time_range(year, year))
        if layer == "clear_count":
            # the count as stored, with its fill where no scene covered the pixel (not 0,
            # which is a valid count); an old cube's layer is converted, never misread
            full = clear_count_with_fill(view.dataset, view.location)
            out = full.sel(year=win["year"].values).isel(year=0, y=view.area.rows, x=view.area.cols)
            fill = CLEAR_COUNT_FILL
        else:
            out = win[f"yearly_{layer}"].isel(year=0)
            fill = np.nan
        out = view.area.clip(out, fill)
        return out.rio.write_crs(view.cube.grid.crs_wkt).rio.write_nodata(fill, encoded=False)
    if year is not None:
        raise QueryError(f"--layer {layer} covers a range of years: use --start/--end")
    if layer == "trend":
        return mviupd_trend(selection, **where)
    return first_change(selection, persistence=persistence, **where)


def export_map(
    selection: Selection | CubeLike,
    layer: str,
    path: str | os.PathLike,
    *,
    year: int | None = None,
    persistence: int = 3,
    **where: Any,
) -> Path:
    """Write the map of a named layer as a Cloud-Optimised GeoTIFF or a PNG picture.

    A ``.tif``/``.tiff`` is a COG: ``land_cover`` with the class colour table, ``trend``
    with two bands (slope per year, p_value, with their units), ``first_change`` with the
    first-change year (0 = none), ``clear_count`` with 65535 where no scene covered the
    pixel, the other layers as they are. Beside it goes its STAC Item (same name,
    ``.json``: :func:`~updm_dask.query.stac.cog_item`, with ``classification:classes`` for
    ``land_cover``). A ``.png`` is a picture of ``land_cover``, ``trend``,
    ``mviupd_median`` or ``clear_count`` (:func:`~updm_dask.query.plot_land_cover_map`,
    :func:`~updm_dask.query.plot_trend_map`, :func:`~updm_dask.query.plots.plot_value_map`);
    a picture of another layer is refused before anything is read.

    Parameters
    ----------
    selection, layer, year, persistence, **where
        As for :func:`map_layer`.
    path : str or path-like
        ``.tif``, ``.tiff`` or ``.png`` file.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    QueryError
        Another suffix, a picture of a layer that has none, and the errors of
        :func:`map_layer` and :func:`write_cog`.
    """
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in (".tif", ".tiff", ".png"):
        raise QueryError(f"{str(path)!r}: expected a .tif (COG) or .png file")
    if suffix == ".png" and layer not in _PICTURES:
        # refused before the cube is read: nothing is computed for a picture never drawn
        raise QueryError(
            f"no picture for --layer {layer}; pictures are drawn of {', '.join(_PICTURES)}: "
            f"write {layer} to a .tif instead"
        )
    data = map_layer(selection, layer, year=year, persistence=persistence, **where)
    if suffix == ".png":
        from . import plots

        if layer == "land_cover":
            return plots.plot_land_cover_map(data, out)
        if layer == "trend":
            return plots.plot_trend_map(data, out)
        label, cmap, nodata, symmetric = _PICTURES[layer]
        return plots.plot_value_map(
            data,
            out,
            label=label,
            title=f"{label}, {year}",
            nodata=nodata,
            cmap=cmap,
            symmetric=symmetric,
        )
    if layer == "land_cover":
        written = write_cog(data, out, nodata=0, colormap=class_colormap())
    elif layer == "trend":
        # the bands keep their units (per year, and 1), which the stacking drops
        bands = ("slope", "p_value")
        units = [str(data[b].attrs.get("units", "")) for b in bands]
        written = write_cog(data[list(bands)].to_dataarray("band"), out, units=units)
    elif layer == "first_change":
        written = write_cog(data["first_change_year"], out, nodata=0)
    else:
        written = write_cog(data, out)
    _write_cog_item(written, layer, data, year)
    return written


def _write_cog_item(path: Path, layer: str, data: Any, year: int | None) -> Path:
    """The STAC Item of an exported COG, beside it (same name, ``.json``)."""
    from .stac import class_objects, cog_item, write_item

    attrs = data.attrs
    if year is not None:
        first = last = int(year)
    else:
        first, last = int(attrs["first_year"]), int(attrs["last_year"])
    span = f"{first}" if first == last else f"{first}-{last}"
    props = {
        k: attrs[k] for k in ("cube", "updm_snapshot", "area") if isinstance(attrs.get(k), str)
    }
    item = cog_item(
        path,
        item_id=f"{path.stem}",
        first_year=first,
        last_year=last,
        title=f"{layer} {span}",
        classes=class_objects() if layer == "land_cover" else None,
        properties={"updm:layer": layer, **{f"updm:{k}": v for k, v in props.items()}},
    )
    return write_item(item, path.with_suffix(".json"))
