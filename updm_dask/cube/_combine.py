"""Joining the datasets of the tiles an area touches into one lazy Dataset on the grid.

:meth:`~updm_dask.cube.Collection.to_xarray` opens the tiles; :func:`combine_tiles` joins
them: an outer join on scenes (by scene id) and years, then a concatenation in space, with
the tiles that hold no data read as fill. :func:`widen_to_grid` puts such a window on the
whole grid, lazily, for queries that index it with the grid's rows and columns.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from ..geo import CubeGrid
from ._schema import SCENE_VARIABLES, YEARLY_VARIABLES
from ._tiling import tile_order


def _fill_of(name: str, var: xr.DataArray) -> Any:
    if var.dtype.kind == "f":
        return np.nan
    spec = SCENE_VARIABLES.get(name) or YEARLY_VARIABLES.get(name)
    return spec.fill if spec is not None else 0


def combine_tiles(
    parts: dict[str, xr.Dataset],
    spans: dict[str, tuple[slice, slice]],
    grid: CubeGrid,
    window: tuple[int, int, int, int],
) -> xr.Dataset:
    """Join the tiles' datasets (``parts``, each cut to its ``spans`` of the ``window`` of
    ``grid``): outer join on scenes (by scene id) and years, then concatenate in space;
    tiles without data become fill."""
    first = next(iter(parts.values()))
    time_coords = [c for c in first.coords if first[c].dims == ("time",) and c != "time"]
    table = pd.concat(
        [pd.DataFrame({c: ds[c].values for c in ("time", *time_coords)}) for ds in parts.values()],
        ignore_index=True,
    )
    # acquisition order; scenes of one time by id (a stable, reproducible order)
    table = table.drop_duplicates("scene_id").sort_values(["time", "scene_id"], kind="stable")
    ids = table["scene_id"].to_numpy()
    years = sorted(
        {int(y) for ds in parts.values() if "year" in ds.dims for y in ds["year"].values}
    )
    names: dict[str, xr.DataArray] = {}
    for ds in parts.values():
        for n, v in ds.data_vars.items():
            if set(v.dims) <= {"time", "year", "y", "x"} and {"y", "x"} <= set(v.dims):
                names.setdefault(n, v)
    fills = {n: _fill_of(n, v) for n, v in names.items()}

    def aligned(tile: str) -> xr.Dataset:
        rows, cols = spans[tile]
        ds = parts.get(tile)
        variables = {}
        for n, proto in names.items():
            if ds is not None and n in ds.data_vars:
                v = ds[n]
                if "time" in v.dims:
                    v = (
                        v.assign_coords(time=ds["scene_id"].values)
                        .reindex(time=ids, fill_value=fills[n])
                        .drop_vars("time")
                    )
                if "year" in v.dims:
                    v = v.reindex(year=years, fill_value=fills[n]).drop_vars("year")
                v = v.drop_vars([c for c in v.coords if c not in ("y", "x")])
            else:
                sizes = {"time": len(ids), "year": len(years)}
                sizes.update(y=rows.stop - rows.start, x=cols.stop - cols.start)
                shape = tuple(sizes[d] for d in proto.dims)
                chunks = tuple(min(s, 512) or 1 for s in shape)
                v = xr.DataArray(
                    da.full(shape, fills[n], dtype=proto.dtype, chunks=chunks),
                    dims=proto.dims,
                    attrs=proto.attrs,
                )
            variables[n] = v
        out = xr.Dataset(variables)
        return out.assign_coords(y=grid.y[rows], x=grid.x[cols])

    tiles_by_row: dict[int, list[str]] = {}
    for tile in spans:
        tiles_by_row.setdefault(tile_order(tile)[0], []).append(tile)
    nested = [
        [aligned(t) for t in sorted(row, key=tile_order)] for _, row in sorted(tiles_by_row.items())
    ]
    ds = xr.combine_nested(
        nested,
        concat_dim=["y", "x"],
        data_vars="all",
        coords="minimal",
        compat="override",
        combine_attrs="override",
    )
    ds = ds.assign_coords(
        time=("time", table["time"].to_numpy()),
        **{c: ("time", table[c].to_numpy()) for c in time_coords},
    )
    if years:
        ds = ds.assign_coords(year=("year", np.array(years, dtype=np.int16)))
    for n in ds.data_vars:
        ds[n].attrs = dict(names[n].attrs)
        for c in ds[n].coords:
            if c in first.coords:
                ds[c].attrs = dict(first[c].attrs)
    if "spatial_ref" in first.coords:
        ds = ds.assign_coords(spatial_ref=_grid_mapping(first, grid, window[0], window[1]))
    ds.attrs = {**first.attrs, "grid": grid.to_dict()}
    return ds


def _grid_mapping(ds: xr.Dataset, grid: CubeGrid, row0: int, col0: int) -> xr.DataArray:
    """``ds``'s ``spatial_ref`` with the GeoTransform of ``grid`` from pixel (row0, col0)."""
    t = grid.transform
    ref = ds["spatial_ref"].copy()
    ref.attrs["GeoTransform"] = " ".join(
        str(float(v)) for v in (t.c + t.a * col0, t.a, 0.0, t.f + t.e * row0, 0.0, t.e)
    )
    return ref


def widen_to_grid(ds: xr.Dataset, grid: CubeGrid, window: tuple[int, int, int, int]) -> xr.Dataset:
    """``ds``, a window of ``grid``, lazily widened to the whole grid with fill around it.

    Queries index a view with the area's rows and columns of the grid. The rest of the grid
    is a few constant dask blocks (one per side and time chunk), whatever its size, so that
    slicing the area back out reads the window's own blocks only.
    """
    r0, c0, nr, nc = window
    ny, nx = grid.shape
    pads = {"y": (r0, ny - r0 - nr), "x": (c0, nx - c0 - nc)}
    out = {}
    for name, var in ds.data_vars.items():
        if {"y", "x"} <= set(var.dims) and hasattr(var.data, "dask"):
            data = _padded(var, pads, _fill_of(name, var))
            out[name] = xr.Variable(var.dims, data, attrs=var.attrs, encoding=var.encoding)
        else:
            out[name] = var.variable
    coords = {k: v for k, v in ds.coords.items() if "y" not in v.dims and "x" not in v.dims}
    wide = xr.Dataset(out, coords=coords, attrs=ds.attrs)
    wide = wide.assign_coords(y=("y", grid.y), x=("x", grid.x))
    for dim in ("y", "x"):
        wide[dim].attrs = dict(ds[dim].attrs)
    if "spatial_ref" in ds.coords:
        wide = wide.assign_coords(spatial_ref=_grid_mapping(ds, grid, 0, 0))
    return wide


def _padded(var: xr.DataArray, pads: dict[str, tuple[int, int]], fill: Any) -> Any:
    """``var``'s dask data with ``pads[dim]`` (before, after) pixels of ``fill`` around it
    along y and x, each side one constant block."""
    data = var.data
    for dim in ("y", "x"):
        axis = var.dims.index(dim)
        before, after = pads[dim]
        parts = []
        for size in (before, None, after):
            if size is None:
                parts.append(data)
            elif size:
                shape = list(data.shape)
                shape[axis] = size
                chunks = list(data.chunks)
                chunks[axis] = (size,)
                parts.append(da.full(shape, fill, dtype=data.dtype, chunks=tuple(chunks)))
        data = da.concatenate(parts, axis=axis) if len(parts) > 1 else data
    return data
