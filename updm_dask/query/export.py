"""Exports: maps as Cloud-Optimised GeoTIFF, tables as CSV/JSON, a plain Zarr v3 copy.

Writing is where lazy maps are computed: :func:`write_cog` streams a dask-backed map
through rioxarray into a tiled GeoTIFF, which GDAL's COG driver then turns into a
Cloud-Optimised GeoTIFF (tiles, overviews, deflate), with a colour table for class maps.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr

from ..errors import QueryError
from ._select import CubeLike, open_dataset, resolve_cube
from ._style import CLASS_STYLE, rgba

__all__ = ["class_colormap", "export_zarr", "table_text", "write_cog", "write_table"]


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

    Returns
    -------
    pathlib.Path

    Raises
    ------
    QueryError
        No CRS, wrong dims, an existing file without ``overwrite``, a missing folder.
    """
    from rasterio.shutil import copy as rio_copy

    if not isinstance(data, xr.DataArray):
        raise QueryError(f"write_cog: expected an xarray DataArray, got {type(data).__name__}")
    if data.rio.crs is None:
        raise QueryError(f"write_cog: {data.name!r} has no CRS")
    if data.ndim not in (2, 3) or data.dims[-2:] != ("y", "x"):
        raise QueryError(f"write_cog: expected dims (y, x) or (band, y, x), got {data.dims}")
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
        if colormap is not None:
            import rasterio

            with rasterio.open(staging, "r+") as dst:
                dst.write_colormap(1, dict(colormap))
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
        doc = {"metadata": dict(table.attrs), "rows": _records(table)}
        p.write_text(json.dumps(doc, indent=1, default=_json_default) + "\n", encoding="utf-8")
    else:
        raise QueryError(f"write_table: unknown format {fmt!r} for {str(p)!r}; use csv or json")
    return p


def table_text(table: pd.DataFrame, *, float_format: str = "{:.4g}") -> str:
    """A table as fixed-width text for printing."""
    with pd.option_context(
        "display.max_rows", None, "display.max_columns", None, "display.width", 200
    ):
        return table.to_string(index=False, float_format=float_format.format)


def export_zarr(
    cube: CubeLike,
    path: str | os.PathLike,
    *,
    snapshot: str | None = None,
    tag: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Copy one snapshot of a cube into a plain Zarr v3 store (no Icechunk needed to read it).

    The copy has the cube's variables, coordinates, chunks, codecs and attributes, plus
    ``updm_export_of`` (the cube location) and ``updm_snapshot`` (the snapshot copied);
    ``xarray.open_zarr(path)`` reads it.

    Parameters
    ----------
    cube : Cube, str or path-like
    path : str or path-like
        New local directory.
    snapshot, tag : str, optional
        Copy this commit or tag (default the branch tip).
    overwrite : bool
        Replace an existing directory.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    QueryError
        The target exists (without ``overwrite``), unknown commit or tag.
    """
    c = resolve_cube(cube, snapshot=snapshot, tag=tag)
    target = _check_target(path, overwrite, "export_zarr")
    ds = open_dataset(c)
    snap = ds.attrs.pop("updm_snapshot")
    ds.attrs.update(updm_export_of=c.location, updm_snapshot=snap)
    tmp = target.with_name(target.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    ds.to_zarr(tmp, zarr_format=3, consolidated=False, mode="w-")
    if target.exists():
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    tmp.rename(target)
    return target
