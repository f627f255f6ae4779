"""Regridding scenes onto the cube grid: pure slicing where the grids align.

Regridding rules (:func:`to_grid`)
-----------------------------------
Data arrive with dims ``(..., y, x)`` and a CRS and transform readable by rioxarray. The
result has the grid's ``y``/``x`` coordinates and CRS, and stays lazy (dask in, dask out;
nothing is computed). In order:

1. Same CRS, same resolution, and pixel edges on the grid's lattice (offset by a whole
   number of pixels): pure slicing and padding with the fill value. No interpolation, so
   the values are bit-identical. This is the common case of a Landsat 30 m scene on a
   30 m cube grid.
2. Same CRS, the data coarser by a whole factor ``k`` and its pixel edges on the grid's
   lattice (e.g. a 60 m MSS product on a 30 m grid aligned with it): each source pixel
   becomes ``k x k`` grid pixels (nearest; averaging and mode give the same answer here
   because every grid pixel lies inside one source pixel).
3. Same CRS, the grid coarser by a whole factor ``k`` and the data's pixel edges on the
   lattice of grid edges subdivided ``k`` times (e.g. 30 m data on a 60 m grid): block
   reduction of each ``k x k`` block. ``"average"`` is the NaN-aware mean (fill and NaN
   pixels are ignored; a block with no valid pixel is NaN), used for the continuous
   coefficients; ``"mode"`` is the most frequent value among the non-fill pixels, ties
   broken by the class priority vegetation > urban > water > cloud (codes 3 > 4 > 2 > 1,
   other values after them in ascending order), used for land cover; ``"nearest"`` takes
   the source pixel at block offset ``(k // 2, k // 2)``, the one GDAL picks for the block
   centre.
4. Anything else (another CRS, a non-integer resolution ratio such as 57 m -> 30 m,
   misaligned pixel edges): a general reprojection with odc-geo
   (:func:`odc.geo.xr.xr_reproject`, lazy with dask) using the named resampling.

So the cube's resampling is: averaging of coefficients when coarsening, nearest when
refining, the most frequent class for land cover. Integer variables are categorical
(classes, bit flags): ``method="average"`` is applied to them as ``"mode"``, because an
average of class codes means nothing.

Fill values: NaN for floating-point variables (which must already mark missing pixels
with NaN, as the scene pipeline does); for integer variables the ``fill`` argument, else the
variable's nodata (``rio.nodata`` / ``_FillValue``), else 0. Fill pixels never enter an
average or a mode.

Data that do not overlap the grid at all raise :class:`~updm_dask.errors.GridError`
rather than returning an all-fill array: a scene outside the cube is almost always a
planning mistake, and storing an empty time slot would add a scene to the ledger that
contributes nothing. Partial overlap is fine (the rest is fill).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import dask.array as da
import numpy as np
import pyproj
import xarray as xr
from affine import Affine

from ..errors import GridError
from .georef import write_georeference
from .grid import PIXEL_TOLERANCE, CubeGrid

Method = Literal["average", "nearest", "mode"]

#: Attribute ``[row0, col0, rows, cols]`` that ``to_grid(..., window=True)`` puts on its
#: result: where on the grid the window lies (``Cube.append_scenes`` reads it).
WINDOW_ATTR = "grid_window"
_METHODS = ("average", "nearest", "mode")

#: Class codes in tie-break order for ``"mode"``: vegetation, urban, water, cloud.
LAND_COVER_PRIORITY: tuple[int, ...] = (3, 4, 2, 1)

# --------------------------------------------------------------------------------------
# Numpy kernels: block reductions over the last two axes
# --------------------------------------------------------------------------------------


def _blocks(arr: np.ndarray, ky: int, kx: int) -> np.ndarray:
    *lead, ny, nx = arr.shape
    if ny % ky or nx % kx:
        raise GridError(f"block reduction: shape {arr.shape} is not divisible by ({ky}, {kx})")
    return arr.reshape(*lead, ny // ky, ky, nx // kx, kx)


def block_mean(arr: np.ndarray, ky: int, kx: int) -> np.ndarray:
    """NaN-aware mean of each ``ky x kx`` block of the last two axes.

    Axis contract: ``(..., ny*ky, nx*kx) -> (..., ny, nx)``, same floating dtype. NaN pixels
    are ignored; a block without a finite pixel is NaN.
    """
    b = _blocks(np.asarray(arr), ky, kx)
    valid = np.isfinite(b)
    total = np.where(valid, b, 0).sum(axis=(-3, -1), dtype=np.float64)
    count = valid.sum(axis=(-3, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return out.astype(arr.dtype, copy=False)


def block_pick(arr: np.ndarray, ky: int, kx: int) -> np.ndarray:
    """Pixel at offset ``(ky // 2, kx // 2)`` of each block (nearest to the block centre).

    Axis contract: ``(..., ny*ky, nx*kx) -> (..., ny, nx)``, same dtype.
    """
    b = _blocks(np.asarray(arr), ky, kx)
    return np.ascontiguousarray(b[..., :, ky // 2, :, kx // 2])


def block_mode(
    arr: np.ndarray,
    ky: int,
    kx: int,
    *,
    fill: Any,
    priority: Sequence[int] = LAND_COVER_PRIORITY,
) -> np.ndarray:
    """Most frequent non-fill value of each ``ky x kx`` block.

    Axis contract: ``(..., ny*ky, nx*kx) -> (..., ny, nx)``, same dtype. Pixels equal to
    ``fill`` (or NaN) are ignored; a block with none left is ``fill``. Ties go to the value
    that comes first in ``priority``; values not listed rank after those, smallest first.
    """
    arr = np.asarray(arr)
    b = _blocks(arr, ky, kx)
    *lead, ny, _, nx, _ = b.shape
    flat = np.moveaxis(b, -3, -2).reshape(*lead, ny, nx, ky * kx)
    valid = flat != fill
    if arr.dtype.kind == "f":
        valid &= ~np.isnan(flat)
    candidates = np.unique(flat[valid])
    rank = {int(v) if arr.dtype.kind in "iu" else v: i for i, v in enumerate(priority)}

    def order(v: Any) -> tuple[int, Any]:
        key = int(v) if arr.dtype.kind in "iu" else v
        return (rank[key], 0) if key in rank else (len(rank), v)

    out = np.full(flat.shape[:-1], fill, dtype=arr.dtype)
    best = np.zeros(flat.shape[:-1], dtype=np.int64)
    for v in sorted(candidates.tolist(), key=order):
        count = ((flat == v) & valid).sum(axis=-1)
        # strictly greater: a value earlier in priority keeps a tie
        better = count > best
        out[better] = v
        best[better] = count[better]
    return out


# --------------------------------------------------------------------------------------
# Array wrappers (numpy or dask), spatial axes last
# --------------------------------------------------------------------------------------


def _pad(arr: Any, pad: list[tuple[int, int]], fill: Any) -> Any:
    if not any(before or after for before, after in pad):
        return arr
    if isinstance(arr, da.Array):
        return da.pad(arr, pad, mode="constant", constant_values=fill)
    return np.pad(arr, pad, mode="constant", constant_values=fill)


def _place(arr: Any, row0: int, col0: int, out_shape: tuple[int, int], fill: Any) -> Any:
    """Put ``arr`` (spatial axes last) with its pixel (0, 0) at output (row0, col0)."""
    *lead, sh, sw = arr.shape
    ny, nx = out_shape
    r_start, r_stop = max(row0, 0), min(row0 + sh, ny)
    c_start, c_stop = max(col0, 0), min(col0 + sw, nx)
    if r_start >= r_stop or c_start >= c_stop:
        raise _NoOverlap()
    cropped = arr[..., r_start - row0 : r_stop - row0, c_start - col0 : c_stop - col0]
    pad = [(0, 0)] * len(lead) + [(r_start, ny - r_stop), (c_start, nx - c_stop)]
    return _pad(cropped, pad, fill)


class _NoOverlap(Exception):
    pass


def _repeat(arr: Any, ky: int, kx: int) -> Any:
    mod = da if isinstance(arr, da.Array) else np
    return mod.repeat(mod.repeat(arr, ky, axis=-2), kx, axis=-1)


def _coarsen_block(block: np.ndarray, *, ky: int, kx: int, method: str, fill: Any) -> np.ndarray:
    if method == "average":
        return block_mean(block, ky, kx)
    if method == "mode":
        return block_mode(block, ky, kx, fill=fill)
    return block_pick(block, ky, kx)


def _coarsen(arr: Any, ky: int, kx: int, method: str, fill: Any) -> Any:
    if not isinstance(arr, da.Array):
        return _coarsen_block(arr, ky=ky, kx=kx, method=method, fill=fill)
    # every dask block must hold whole k x k blocks
    ych = _multiple_chunks(arr.chunks[-2], ky)
    xch = _multiple_chunks(arr.chunks[-1], kx)
    arr = arr.rechunk({arr.ndim - 2: ych, arr.ndim - 1: xch})
    out_chunks = (*arr.chunks[:-2], tuple(c // ky for c in ych), tuple(c // kx for c in xch))
    return arr.map_blocks(
        _coarsen_block,
        ky=ky,
        kx=kx,
        method=method,
        fill=fill,
        chunks=out_chunks,
        dtype=arr.dtype,
        meta=np.empty((0,) * arr.ndim, dtype=arr.dtype),
        token=f"updm-coarsen-{method}",
    )


def _multiple_chunks(chunks: tuple[int, ...], k: int) -> tuple[int, ...]:
    total = sum(chunks)
    size = max(k, (max(chunks) // k) * k)
    n_full, rest = divmod(total, size)
    return (size,) * n_full + ((rest,) if rest else ())


# --------------------------------------------------------------------------------------
# Labelled API
# --------------------------------------------------------------------------------------


def _near_int(v: float) -> int | None:
    r = round(v)
    return int(r) if abs(v - r) < PIXEL_TOLERANCE else None


def _resolve_fill(var: xr.DataArray, fill: Any) -> Any:
    if var.dtype.kind == "f":
        return np.nan if fill is None else fill
    if var.dtype.kind not in "iub":
        raise GridError(f"to_grid: variable {var.name!r} has unsupported dtype {var.dtype}")
    if fill is not None:
        return fill
    for candidate in (
        var.rio.nodata if var.rio.nodata is not None else None,
        var.encoding.get("_FillValue"),
        var.attrs.get("_FillValue"),
    ):
        if candidate is not None and np.isfinite(candidate):
            return var.dtype.type(candidate)
    return var.dtype.type(0)


def _resolve_method(var: xr.DataArray, method: Any) -> str:
    m = method.get(var.name, "average") if isinstance(method, Mapping) else method
    if m not in _METHODS:
        raise GridError(f"to_grid: method for {var.name!r} must be one of {_METHODS}, got {m!r}")
    if m == "average" and var.dtype.kind in "iub":
        return "mode"
    return m


def _src_transform(data: xr.DataArray | xr.Dataset, name: str) -> Affine:
    if "x" not in data.dims or "y" not in data.dims:
        raise GridError(f"to_grid: {name} needs dims 'y' and 'x', has {tuple(data.dims)}")
    try:
        return data.rio.transform(recalc=True)
    except Exception as exc:  # rioxarray raises several types for ungeoreferenced data
        raise GridError(f"to_grid: cannot read the transform of {name}: {exc}") from None


def _overlaps(src_bounds: tuple, src_crs: pyproj.CRS, grid: CubeGrid) -> bool:
    if src_crs != grid.pyproj_crs:
        tr = pyproj.Transformer.from_crs(src_crs, grid.pyproj_crs, always_xy=True)
        try:
            src_bounds = tr.transform_bounds(*src_bounds, densify_pts=21)
        except pyproj.exceptions.ProjError:
            return True  # let the reprojection decide
        if not all(math.isfinite(v) for v in src_bounds):
            return True
    gb = grid.bounds
    return (
        src_bounds[0] < gb[2]
        and src_bounds[2] > gb[0]
        and src_bounds[1] < gb[3]
        and src_bounds[3] > gb[1]
    )


def _plan(tr: Affine, src_crs: pyproj.CRS, grid: CubeGrid) -> tuple[str, dict[str, int]]:
    """Which regridding rule applies (see the module docstring)."""
    g = grid.resolution
    gt = grid.transform
    if src_crs != grid.pyproj_crs or tr.b != 0 or tr.d != 0 or tr.a <= 0 or tr.e >= 0:
        return "reproject", {}
    sx, sy = tr.a, -tr.e
    kx, ky = _near_int(sx / g), _near_int(sy / g)
    if kx and ky and kx >= 1 and ky >= 1:
        col0 = _near_int((tr.c - gt.c) / g)
        row0 = _near_int((gt.f - tr.f) / g)
        if col0 is not None and row0 is not None:
            if kx == 1 and ky == 1:
                return "slice", {"row0": row0, "col0": col0}
            return "refine", {"row0": row0, "col0": col0, "ky": ky, "kx": kx}
    kx, ky = _near_int(g / sx), _near_int(g / sy)
    if kx and ky and kx >= 1 and ky >= 1:
        col0 = _near_int((tr.c - gt.c) / sx)
        row0 = _near_int((gt.f - tr.f) / sy)
        if col0 is not None and row0 is not None:
            return "coarsen", {"row0": row0, "col0": col0, "ky": ky, "kx": kx}
    return "reproject", {}


def _regrid_var(
    var: xr.DataArray,
    plan: str,
    params: dict[str, int],
    grid: CubeGrid,
    method: str,
    fill: Any,
) -> Any:
    """Regridded data (numpy or dask) of one variable with dims (..., y, x)."""
    arr = var.data
    if plan == "slice":
        return _place(arr, params["row0"], params["col0"], grid.shape, fill)
    if plan == "refine":
        ky, kx = params["ky"], params["kx"]
        row0, col0 = params["row0"], params["col0"]
        # crop to the coarse pixels that touch the grid before repeating them
        sh, sw = arr.shape[-2:]
        r_lo = max(0, (-row0) // ky)
        c_lo = max(0, (-col0) // kx)
        r_hi = min(sh, -(-(grid.ny - row0) // ky))
        c_hi = min(sw, -(-(grid.nx - col0) // kx))
        if r_lo >= r_hi or c_lo >= c_hi:
            raise _NoOverlap()
        arr = _repeat(arr[..., r_lo:r_hi, c_lo:c_hi], ky, kx)
        return _place(arr, row0 + r_lo * ky, col0 + c_lo * kx, grid.shape, fill)
    if plan == "coarsen":
        ky, kx = params["ky"], params["kx"]
        row0, col0 = params["row0"], params["col0"]
        sh, sw = arr.shape[-2:]
        # only the grid blocks the data touch are reduced; the rest of the grid is padding,
        # so a small scene on a large cube costs its own size, not the cube's
        b_r0, b_r1 = max(0, row0 // ky), min(grid.ny, -(-(row0 + sh) // ky))
        b_c0, b_c1 = max(0, col0 // kx), min(grid.nx, -(-(col0 + sw) // kx))
        if b_r0 >= b_r1 or b_c0 >= b_c1:
            raise _NoOverlap()
        fine = _place(
            arr,
            row0 - b_r0 * ky,
            col0 - b_c0 * kx,
            ((b_r1 - b_r0) * ky, (b_c1 - b_c0) * kx),
            fill,
        )
        coarse = _coarsen(fine, ky, kx, method, fill)
        return _place(coarse, b_r0, b_c0, grid.shape, fill)
    raise AssertionError(plan)


def _reproject_var(var: xr.DataArray, grid: CubeGrid, method: str, fill: Any) -> xr.DataArray:
    from odc.geo.xr import xr_reproject

    src = var
    if src.odc.crs is None:
        src = src.odc.assign_crs(src.rio.crs.to_wkt())
    out = xr_reproject(
        src,
        grid.geobox,
        resampling=method,
        src_nodata=fill,
        dst_nodata=fill,
    )
    return out


def _window(tr: Affine, shape: tuple[int, int], src_crs: pyproj.CRS, grid: CubeGrid) -> tuple:
    """Rows ``[r0, r1)`` and columns ``[c0, c1)`` of the grid the data cover, clipped to it.

    Exact for the aligned rules (slice, refine, coarsen); for a reprojection, the grid
    pixels whose centres can fall inside the data's transformed bounds (the whole grid when
    the bounds cannot be transformed). Raises :class:`_NoOverlap` when the window is empty.
    """
    sh, sw = shape
    plan, p = _plan(tr, src_crs, grid)
    if plan == "slice":
        r0, r1, c0, c1 = p["row0"], p["row0"] + sh, p["col0"], p["col0"] + sw
    elif plan == "refine":
        r0, c0 = p["row0"], p["col0"]
        r1, c1 = r0 + sh * p["ky"], c0 + sw * p["kx"]
    elif plan == "coarsen":
        ky, kx, row0, col0 = p["ky"], p["kx"], p["row0"], p["col0"]
        r0, r1 = row0 // ky, -(-(row0 + sh) // ky)
        c0, c1 = col0 // kx, -(-(col0 + sw) // kx)
    else:
        bounds = (
            min(tr.c, tr.c + tr.a * sw),
            min(tr.f, tr.f + tr.e * sh),
            max(tr.c, tr.c + tr.a * sw),
            max(tr.f, tr.f + tr.e * sh),
        )
        try:
            tb = pyproj.Transformer.from_crs(
                src_crs, grid.pyproj_crs, always_xy=True
            ).transform_bounds(*bounds, densify_pts=21)
        except pyproj.exceptions.ProjError:
            tb = (math.nan,) * 4
        if not all(math.isfinite(v) for v in tb):
            return 0, grid.ny, 0, grid.nx
        g, gt = grid.resolution, grid.transform
        # one pixel of margin: the resampling kernel may reach a pixel beyond the bounds
        r0 = math.floor((gt.f - tb[3]) / g) - 1
        r1 = math.ceil((gt.f - tb[1]) / g) + 1
        c0 = math.floor((tb[0] - gt.c) / g) - 1
        c1 = math.ceil((tb[2] - gt.c) / g) + 1
    r0, r1 = max(r0, 0), min(r1, grid.ny)
    c0, c1 = max(c0, 0), min(c1, grid.nx)
    if r0 >= r1 or c0 >= c1:
        raise _NoOverlap()
    return r0, r1, c0, c1


def grid_window(data: xr.DataArray | xr.Dataset, grid: CubeGrid) -> tuple[int, int, int, int]:
    """The part of ``grid`` that ``data`` cover: ``(row0, col0, rows, cols)``.

    Parameters
    ----------
    data : xarray.DataArray or xarray.Dataset
        Georeferenced data with dims ``(..., y, x)``, as :func:`to_grid` takes them.
    grid : CubeGrid
        Target grid.

    Returns
    -------
    tuple of int
        First row and column of the window on the grid, and its size, clipped to the grid.
        Exact where the data lie on the grid's lattice; for a reprojection, a bounding box
        of the data's footprint with one pixel of margin.

    Raises
    ------
    GridError
        No CRS, no ``y``/``x`` dims, or no overlap with the grid.
    """
    name = repr(data.name) if isinstance(data, xr.DataArray) else "the dataset"
    if data.rio.crs is None:
        raise GridError(f"grid_window: {name} has no CRS; set one with .rio.write_crs(...)")
    src_crs = pyproj.CRS.from_user_input(data.rio.crs.to_wkt())
    tr = _src_transform(data, name)
    try:
        r0, r1, c0, c1 = _window(tr, (data.sizes["y"], data.sizes["x"]), src_crs, grid)
    except _NoOverlap:
        raise GridError(
            f"grid_window: {name} does not overlap the cube grid (bounds {grid.bounds})"
        ) from None
    return r0, c0, r1 - r0, c1 - c0


def lattice_offset(data: xr.DataArray | xr.Dataset, grid: CubeGrid) -> tuple[int, int] | None:
    """Grid row and column of the data's pixel (0, 0) when the data lie on the grid's lattice.

    That is the first rule of :func:`to_grid` (same CRS and resolution, pixel edges a whole
    number of pixels from the grid's): the data are then the grid's pixels, shifted. None
    for anything that needs resampling, or data without a CRS or transform.
    """
    try:
        if data.rio.crs is None:
            return None
        src_crs = pyproj.CRS.from_user_input(data.rio.crs.to_wkt())
        tr = _src_transform(data, "data")
    except GridError:
        return None
    plan, params = _plan(tr, src_crs, grid)
    return (params["row0"], params["col0"]) if plan == "slice" else None


def lattice_chunks(start: int, size: int, edge: int) -> tuple[int, ...]:
    """Chunks of ``size`` pixels from grid index ``start``, cut where the index is a multiple
    of ``edge`` (the cube's chunk edges); ``start`` may be negative."""
    out, at, stop = [], start, start + size
    while at < stop:
        nxt = min((at // edge + 1) * edge, stop)
        out.append(nxt - at)
        at = nxt
    return tuple(out)


def to_grid(
    data: xr.DataArray | xr.Dataset,
    grid: CubeGrid,
    *,
    method: Method | Mapping[str, Method] = "average",
    fill: Any = None,
    window: bool = False,
) -> xr.DataArray | xr.Dataset:
    """Put georeferenced data on the cube grid, lazily (rules in the module docstring).

    Parameters
    ----------
    data : xarray.DataArray or xarray.Dataset
        Variables with dims ``(..., y, x)`` (others pass through unchanged), a CRS and a
        transform readable by rioxarray (``data.rio.crs``, ``data.rio.transform()``).
        Dask-backed data stay dask-backed; nothing is computed.
    grid : CubeGrid
        Target grid.
    method : {"average", "nearest", "mode"} or mapping of variable name to method
        Resampling used when coarsening or reprojecting. Integer variables take
        ``"average"`` as ``"mode"``. Unlisted variables of a mapping use ``"average"``.
    fill : scalar, optional
        Value for grid pixels the data do not cover. Default: NaN for floats; for integers
        the variable's nodata, else 0.
    window : bool
        Return only the part of the grid the data cover (:func:`grid_window`), with that
        part's ``y``/``x`` coordinates, instead of the whole grid padded with ``fill``: the
        size (and the dask graph) of the result then follows the data, not the grid. The
        values inside the window are the same as those of the whole-grid result.

    Returns
    -------
    Same type as ``data``
        With the grid's ``y``/``x`` coordinates (pixel centres) and CRS (``spatial_ref``);
        with ``window=True``, those of the window and the window's transform.

    Raises
    ------
    GridError
        When ``data`` has no CRS, lacks ``y``/``x`` dims, uses an unknown method, or does not
        overlap the grid at all.
    """
    if not isinstance(grid, CubeGrid):
        raise GridError(f"to_grid: grid must be a CubeGrid, got {type(grid).__name__}")
    if not isinstance(data, (xr.DataArray, xr.Dataset)):
        raise GridError(
            f"to_grid: expected an xarray DataArray or Dataset, got {type(data).__name__}"
        )
    name = repr(data.name) if isinstance(data, xr.DataArray) else "the dataset"
    if data.rio.crs is None:
        raise GridError(f"to_grid: {name} has no CRS; set one with .rio.write_crs(...)")
    src_crs = pyproj.CRS.from_user_input(data.rio.crs.to_wkt())
    tr = _src_transform(data, name)
    ny, nx = data.sizes["y"], data.sizes["x"]
    src_bounds = (
        min(tr.c, tr.c + tr.a * nx),
        min(tr.f, tr.f + tr.e * ny),
        max(tr.c, tr.c + tr.a * nx),
        max(tr.f, tr.f + tr.e * ny),
    )
    if not _overlaps(src_bounds, src_crs, grid):
        raise GridError(
            f"to_grid: {name} (bounds {src_bounds} in {src_crs.name}) does not overlap the "
            f"cube grid (bounds {grid.bounds} in {grid.pyproj_crs.name})"
        )
    if window:
        try:
            r0, r1, c0, c1 = _window(tr, (ny, nx), src_crs, grid)
        except _NoOverlap:
            raise GridError(
                f"to_grid: {name} does not overlap the cube grid (bounds {grid.bounds})"
            ) from None
        # The window is a grid on the same lattice, so every rule gives the same pixels
        # there as on the whole grid.
        grid = CubeGrid(grid.crs, grid.transform @ Affine.translation(c0, r0), (r1 - r0, c1 - c0))
    plan, params = _plan(tr, src_crs, grid)

    def one(var: xr.DataArray) -> xr.DataArray | xr.Variable:
        """The variable on the grid: a DataArray when reprojected, else a Variable."""
        if var.dims[-2:] != ("y", "x"):
            var = var.transpose(..., "y", "x")
        m = _resolve_method(var, method)
        f = _resolve_fill(var, fill.get(var.name) if isinstance(fill, Mapping) else fill)
        if plan == "reproject":
            out = _reproject_var(var.rio.write_crs(src_crs.to_wkt()), grid, m, f)
            # the geobox's own coordinates may differ from grid.y/x in the last bit
            return out.assign_coords(y=grid.y, x=grid.x)
        try:
            values = _regrid_var(var, plan, params, grid, m, f)
        except _NoOverlap:
            raise GridError(
                f"to_grid: {name} does not overlap the cube grid (bounds {grid.bounds})"
            ) from None
        attrs = {k: v for k, v in var.attrs.items() if k not in ("GeoTransform",)}
        return xr.Variable(var.dims, values, attrs)

    def spatial(var: xr.DataArray) -> bool:
        return "y" in var.dims and "x" in var.dims

    # The coordinates without y/x pass through; y and x become the grid's. Variables are
    # put together with them once: a Dataset of DataArrays would align every one of them
    # with the others (a fifth of the driver's time per scene).
    kept = {
        k: c.variable
        for k, c in data.coords.items()
        if "y" not in c.dims and "x" not in c.dims and k != "spatial_ref"
    }
    grid_coords = {"y": ("y", grid.y), "x": ("x", grid.x)}
    if isinstance(data, xr.DataArray):  # it has y and x (_src_transform checked)
        placed = one(data)
        if isinstance(placed, xr.Variable):
            placed = xr.DataArray(placed, coords={**kept, **grid_coords}, name=data.name)
        out: xr.DataArray | xr.Dataset = placed.drop_vars("spatial_ref", errors="ignore")
    else:
        variables = {k: one(v) if spatial(v) else v.variable for k, v in data.data_vars.items()}
        if plan == "reproject":
            out = xr.Dataset(variables, attrs=dict(data.attrs))
            out = out.assign_coords({k: v for k, v in kept.items() if k not in out.coords})
            out = out.drop_vars("spatial_ref", errors="ignore")
        else:
            out = xr.Dataset(variables, coords={**kept, **grid_coords}, attrs=dict(data.attrs))
    # In place: ``out``, its attributes and its y/x variables are new objects (the
    # variables without y/x, shared with ``data``, are left alone, and the grid-mapping
    # coordinate is replaced), while a copy deep-copies every dask array, twice: a third
    # of the driver's time per scene.
    write_georeference(out, grid.crs_wkt, grid.transform)
    if window:
        out.attrs[WINDOW_ATTR] = [r0, c0, r1 - r0, c1 - c0]
    return out
