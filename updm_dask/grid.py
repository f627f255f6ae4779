"""The cube grid (CRS, affine transform, shape) and regridding of scenes onto it.

A cube has exactly one grid, declared when the cube is created: a projected CRS in metres,
a north-up affine transform with square pixels and no rotation, and a shape ``(ny, nx)``.
:class:`CubeGrid` holds it, checks it, and converts it to and from the JSON-able dict stored
in the cube's root attributes.

Snapping
--------
:meth:`CubeGrid.from_bounds` and :meth:`CubeGrid.from_aoi` snap the requested bounds
outwards so that the grid covers them and its pixels sit on a fixed lattice of whole
multiples of the resolution. By default (``snap="centre"``) pixel CENTRES are whole
multiples of the resolution: that is the lattice of the Landsat Collection products (the
``CORNER_*_PROJECTION_*_PRODUCT`` values in every MTL are pixel centres on multiples of
30 m, or of 60 m for MSS), so any 30 m TM/ETM+/OLI scene lands on a 30 m grid by pure
slicing. ``snap="edge"`` puts pixel EDGES on the multiples instead (the odc-geo default).
Values within 1e-6 pixel of the lattice count as on it, so floating-point noise never adds
a row or column.

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
from dataclasses import dataclass
from typing import Any, Literal

import dask.array as da
import numpy as np
import pyproj
import xarray as xr
from affine import Affine

from .errors import GridError

__all__ = [
    "LAND_COVER_PRIORITY",
    "CubeGrid",
    "block_mean",
    "block_mode",
    "block_pick",
    "to_grid",
]

Method = Literal["average", "nearest", "mode"]
_METHODS = ("average", "nearest", "mode")

#: Class codes in tie-break order for ``"mode"``: vegetation, urban, water, cloud.
LAND_COVER_PRIORITY: tuple[int, ...] = (3, 4, 2, 1)

# Fraction of a pixel under which an offset or a resolution ratio counts as a whole number.
_PIXEL_TOL = 1e-6


# --------------------------------------------------------------------------------------
# The grid
# --------------------------------------------------------------------------------------


def _parse_crs(crs: Any, what: str = "crs") -> pyproj.CRS:
    if isinstance(crs, pyproj.CRS):
        return crs
    if crs is None or (isinstance(crs, str) and not crs.strip()):
        raise GridError(f"{what}: a CRS is required (e.g. 'EPSG:32637' or WKT), got {crs!r}")
    try:
        return pyproj.CRS.from_user_input(crs)
    except (pyproj.exceptions.CRSError, TypeError, ValueError) as exc:
        raise GridError(f"{what}: unknown CRS {crs!r} ({exc})") from None


def _crs_string(crs: pyproj.CRS) -> str:
    # "EPSG:nnnn" when the CRS is exactly an EPSG one (short, readable, stable), else WKT2.
    code = crs.to_epsg(min_confidence=100)
    if code is not None and pyproj.CRS.from_epsg(code) == crs:
        return f"EPSG:{code}"
    return crs.to_wkt()


def _as_affine(transform: Any) -> Affine:
    if isinstance(transform, Affine):
        return transform
    try:
        values = [float(v) for v in transform]
    except (TypeError, ValueError):
        raise GridError(
            f"transform: expected an affine.Affine or 6 numbers (a, b, c, d, e, f), "
            f"got {transform!r}"
        ) from None
    if len(values) == 9:
        values = values[:6]
    if len(values) != 6:
        raise GridError(
            f"transform: expected 6 numbers (a, b, c, d, e, f), got {len(values)}: {transform!r}"
        )
    return Affine(*values)


def _as_shape(shape: Any) -> tuple[int, int]:
    try:
        items = tuple(shape)
    except TypeError:
        raise GridError(f"shape: expected (ny, nx), got {shape!r}") from None
    if len(items) != 2:
        raise GridError(f"shape: expected two sizes (ny, nx), got {shape!r}")
    out = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            if isinstance(v, (float, np.floating)) and float(v).is_integer():
                v = int(v)
            else:
                raise GridError(f"shape: sizes must be whole numbers, got {shape!r}")
        if int(v) <= 0:
            raise GridError(f"shape: sizes must be positive, got {shape!r}")
        out.append(int(v))
    return out[0], out[1]


def _check_resolution(resolution: Any) -> float:
    try:
        res = float(resolution)
    except (TypeError, ValueError):
        raise GridError(f"resolution: expected a number of metres, got {resolution!r}") from None
    if not math.isfinite(res) or res <= 0:
        raise GridError(f"resolution: must be a positive number of metres, got {resolution!r}")
    return res


def _check_bounds(bounds: Any, what: str = "bounds") -> tuple[float, float, float, float]:
    try:
        b = tuple(float(v) for v in bounds)
    except (TypeError, ValueError):
        raise GridError(f"{what}: expected (minx, miny, maxx, maxy), got {bounds!r}") from None
    if len(b) != 4:
        raise GridError(f"{what}: expected four numbers (minx, miny, maxx, maxy), got {bounds!r}")
    if not all(math.isfinite(v) for v in b):
        raise GridError(f"{what}: all four numbers must be finite, got {bounds!r}")
    if not (b[0] < b[2] and b[1] < b[3]):
        raise GridError(f"{what}: empty box, expected minx < maxx and miny < maxy, got {bounds!r}")
    return b[0], b[1], b[2], b[3]


@dataclass(frozen=True, eq=False)
class CubeGrid:
    """The one grid of a cube: projected CRS, north-up affine transform, shape.

    Parameters
    ----------
    crs : str
        Any CRS pyproj understands ("EPSG:32637", WKT, PROJ JSON, a ``pyproj.CRS``). It is
        normalised to "EPSG:nnnn" when the CRS is exactly an EPSG one, else to WKT2; two
        grids compare their CRSs with pyproj, not as strings. Must be projected, in metres.
    transform : affine.Affine
        Pixel-corner transform ``(res, 0, x0, 0, -res, y0)``: north-up, square pixels,
        no rotation or shear. A sequence of the six numbers ``a, b, c, d, e, f`` is accepted.
    shape : tuple of int
        ``(ny, nx)``, both positive.

    Raises
    ------
    GridError
        For an unknown or non-metric CRS, a rotated/sheared/south-up transform, non-square
        pixels or a non-positive shape.
    """

    crs: str
    transform: Affine
    shape: tuple[int, int]

    def __post_init__(self) -> None:
        crs = _parse_crs(self.crs)
        if not crs.is_projected:
            raise GridError(
                f"crs: the cube grid needs a projected CRS in metres, got {crs.name!r} "
                f"(geographic CRSs are accepted only for an AOI, see CubeGrid.from_aoi)"
            )
        unit = crs.axis_info[0].unit_name if crs.axis_info else ""
        if unit not in ("metre", "meter", "m"):
            raise GridError(f"crs: axis unit must be metres, {crs.name!r} uses {unit!r}")
        tr = _as_affine(self.transform)
        if not all(math.isfinite(v) for v in tuple(tr)[:6]):
            raise GridError(f"transform: all coefficients must be finite, got {tuple(tr)[:6]}")
        if tr.b != 0 or tr.d != 0:
            raise GridError(
                f"transform: rotated or sheared grids are not supported (b={tr.b}, d={tr.d}); "
                "expected (res, 0, x0, 0, -res, y0)"
            )
        if not (tr.a > 0 and tr.e < 0):
            raise GridError(
                f"transform: expected a north-up grid with a > 0 and e < 0, got a={tr.a}, e={tr.e}"
            )
        if not math.isclose(tr.a, -tr.e, rel_tol=1e-9):
            raise GridError(
                f"transform: pixels must be square, got x size {tr.a} and y size {-tr.e}"
            )
        object.__setattr__(self, "crs", _crs_string(crs))
        object.__setattr__(self, "transform", tr)
        object.__setattr__(self, "shape", _as_shape(self.shape))

    # -- identity ------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CubeGrid):
            return NotImplemented
        if self.shape != other.shape or not self.transform.almost_equals(
            other.transform, precision=1e-9
        ):
            return False
        return self.crs == other.crs or self.pyproj_crs == other.pyproj_crs

    def __hash__(self) -> int:
        # The CRS is left out on purpose: equal CRSs may be spelled differently.
        return hash((tuple(self.transform)[:6], self.shape))

    def __dask_tokenize__(self) -> tuple:
        return ("updm_dask.CubeGrid", self.crs, tuple(self.transform)[:6], self.shape)

    # -- properties ----------------------------------------------------------------------

    @property
    def pyproj_crs(self) -> pyproj.CRS:
        """The CRS as a :class:`pyproj.CRS`."""
        return pyproj.CRS.from_user_input(self.crs)

    @property
    def crs_wkt(self) -> str:
        """The CRS as WKT2."""
        return self.pyproj_crs.to_wkt()

    @property
    def resolution(self) -> float:
        """Pixel size in metres (pixels are square)."""
        return float(self.transform.a)

    @property
    def ny(self) -> int:
        """Number of rows."""
        return self.shape[0]

    @property
    def nx(self) -> int:
        """Number of columns."""
        return self.shape[1]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Outer pixel edges ``(minx, miny, maxx, maxy)`` in the grid's CRS."""
        t = self.transform
        return (t.c, t.f + t.e * self.ny, t.c + t.a * self.nx, t.f)

    @property
    def x(self) -> np.ndarray:
        """Pixel-centre x coordinates, west to east (float64, length nx)."""
        t = self.transform
        return t.c + t.a * (np.arange(self.nx, dtype=np.float64) + 0.5)

    @property
    def y(self) -> np.ndarray:
        """Pixel-centre y coordinates, north to south (float64, length ny)."""
        t = self.transform
        return t.f + t.e * (np.arange(self.ny, dtype=np.float64) + 0.5)

    @property
    def geobox(self):
        """The grid as an :class:`odc.geo.geobox.GeoBox`."""
        from odc.geo.geobox import GeoBox

        return GeoBox(self.shape, self.transform, self.crs)

    # -- (de)serialisation ---------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (stored in the cube's root attributes).

        Returns
        -------
        dict
            ``{"crs": str, "crs_wkt": str, "transform": [a, b, c, d, e, f],
            "shape": [ny, nx], "resolution": float, "bounds": [minx, miny, maxx, maxy]}``;
            ``resolution`` and ``bounds`` are informative, :meth:`from_dict` ignores them.
        """
        return {
            "crs": self.crs,
            "crs_wkt": self.crs_wkt,
            "transform": [float(v) for v in tuple(self.transform)[:6]],
            "shape": [self.ny, self.nx],
            "resolution": self.resolution,
            "bounds": [float(v) for v in self.bounds],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CubeGrid:
        """Rebuild a grid from :meth:`to_dict` output.

        Raises
        ------
        GridError
            When a key is missing or a value is malformed.
        """
        if not isinstance(d, Mapping):
            raise GridError(f"grid: expected a mapping with crs/transform/shape, got {d!r}")
        missing = [k for k in ("crs", "transform", "shape") if k not in d]
        if missing:
            raise GridError(f"grid: missing key(s) {missing} in {dict(d)!r}")
        return cls(crs=d["crs"], transform=_as_affine(d["transform"]), shape=d["shape"])

    # -- constructors --------------------------------------------------------------------

    @classmethod
    def from_geobox(cls, geobox: Any) -> CubeGrid:
        """Grid of an :class:`odc.geo.geobox.GeoBox`."""
        return cls(crs=str(geobox.crs), transform=geobox.affine, shape=tuple(geobox.shape))

    @classmethod
    def from_bounds(
        cls,
        bounds: Sequence[float],
        resolution: float,
        crs: Any,
        *,
        snap: Literal["centre", "edge"] = "centre",
    ) -> CubeGrid:
        """Smallest grid on the resolution lattice that covers ``bounds``.

        Parameters
        ----------
        bounds : (minx, miny, maxx, maxy)
            Box to cover, in ``crs`` units (metres).
        resolution : float
            Pixel size in metres, > 0.
        crs : str or pyproj.CRS
            Projected CRS of the grid.
        snap : {"centre", "edge"}
            ``"centre"`` (default): pixel centres on whole multiples of ``resolution``, the
            lattice of Landsat products; ``"edge"``: pixel edges on those multiples. The box
            is extended outwards to the lattice; offsets within 1e-6 pixel count as on it.

        Returns
        -------
        CubeGrid

        Raises
        ------
        GridError
            For a non-positive resolution, an empty or non-finite box, an unknown CRS or a
            bad ``snap``.
        """
        res = _check_resolution(resolution)
        minx, miny, maxx, maxy = _check_bounds(bounds)
        pcrs = _parse_crs(crs)
        if snap not in ("centre", "center", "edge"):
            raise GridError(f"snap: expected 'centre' or 'edge', got {snap!r}")
        from odc.geo.geobox import GeoBox

        anchor = "edge" if snap == "edge" else "center"
        gbox = GeoBox.from_bbox(
            (minx, miny, maxx, maxy),
            crs=pcrs.to_wkt(),
            resolution=res,
            anchor=anchor,
            tol=_PIXEL_TOL,
        )
        return cls(crs=pcrs, transform=gbox.affine, shape=tuple(gbox.shape))

    @classmethod
    def from_aoi(
        cls,
        aoi: Any,
        resolution: float,
        crs: Any,
        *,
        aoi_crs: Any = "EPSG:4326",
        snap: Literal["centre", "edge"] = "centre",
        densify_pts: int = 21,
    ) -> CubeGrid:
        """Grid covering an area of interest given in another CRS (lon/lat by default).

        Parameters
        ----------
        aoi : (minx, miny, maxx, maxy) or object with ``.bounds``
            Box in ``aoi_crs`` (lon/lat order for EPSG:4326). Any object with a ``bounds``
            attribute of that form (e.g. a shapely geometry) is accepted too.
        resolution : float
            Pixel size in metres.
        crs : str or pyproj.CRS
            Projected CRS of the grid.
        aoi_crs : str or pyproj.CRS
            CRS of ``aoi``.
        snap : {"centre", "edge"}
            See :meth:`from_bounds`.
        densify_pts : int
            Points added along each edge of the box before transforming it, so that the
            curved image of a lon/lat box is fully covered.

        Returns
        -------
        CubeGrid

        Raises
        ------
        GridError
            For a malformed box, latitudes outside [-90, 90], unknown CRSs or a box that
            cannot be transformed.
        """
        bounds = aoi.bounds if hasattr(aoi, "bounds") else aoi
        b = _check_bounds(bounds, what="aoi")
        src = _parse_crs(aoi_crs, what="aoi_crs")
        dst = _parse_crs(crs)
        if src.is_geographic and (b[1] < -90 or b[3] > 90):
            raise GridError(f"aoi: latitudes must lie in [-90, 90], got {tuple(bounds)!r}")
        transformer = pyproj.Transformer.from_crs(src, dst, always_xy=True)
        try:
            out = transformer.transform_bounds(*b, densify_pts=densify_pts)
        except pyproj.exceptions.ProjError as exc:
            raise GridError(f"aoi: cannot transform {b!r} to {dst.name}: {exc}") from None
        if not all(math.isfinite(v) for v in out):
            raise GridError(f"aoi: {b!r} has no finite image in {dst.name}")
        return cls.from_bounds(out, resolution, dst, snap=snap)


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
    return int(r) if abs(v - r) < _PIXEL_TOL else None


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


def to_grid(
    data: xr.DataArray | xr.Dataset,
    grid: CubeGrid,
    *,
    method: Method | Mapping[str, Method] = "average",
    fill: Any = None,
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

    Returns
    -------
    Same type as ``data``
        With the grid's ``y``/``x`` coordinates (pixel centres) and CRS (``spatial_ref``).

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
    plan, params = _plan(tr, src_crs, grid)

    def one(var: xr.DataArray) -> xr.DataArray:
        if "y" not in var.dims or "x" not in var.dims:
            return var
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
        coords = {k: c for k, c in var.coords.items() if "y" not in c.dims and "x" not in c.dims}
        coords.pop("spatial_ref", None)
        coords.update({"y": ("y", grid.y), "x": ("x", grid.x)})
        attrs = {k: v for k, v in var.attrs.items() if k not in ("GeoTransform",)}
        return xr.DataArray(values, dims=var.dims, coords=coords, attrs=attrs, name=var.name)

    if isinstance(data, xr.DataArray):
        out: xr.DataArray | xr.Dataset = one(data)
    else:
        variables = {k: one(v) for k, v in data.data_vars.items()}
        out = xr.Dataset(variables, attrs=dict(data.attrs))
        extra = {
            k: c
            for k, c in data.coords.items()
            if "y" not in c.dims
            and "x" not in c.dims
            and k != "spatial_ref"
            and k not in out.coords
        }
        out = out.assign_coords(extra)
    out = out.drop_vars("spatial_ref", errors="ignore")
    out = out.rio.write_crs(grid.crs_wkt)
    out = out.rio.write_transform(grid.transform)
    return out
