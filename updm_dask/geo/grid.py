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
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyproj
from affine import Affine

from .. import config
from ..errors import GridError

__all__ = ["CubeGrid", "check_grid_pixels", "covering_grid", "utm_crs_of_aoi"]

# Fraction of a pixel under which an offset or a resolution ratio counts as a whole number.
PIXEL_TOLERANCE = 1e-6


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
            tol=PIXEL_TOLERANCE,
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
# Choosing and bounding a grid
# --------------------------------------------------------------------------------------


def lonlat_text(lon: float, lat: float) -> str:
    """A lon/lat point as people write it, hemispheres by letter: ``"20.14 S, 44.15 W"``."""
    ns = "N" if lat >= 0 else "S"
    ew = "E" if lon >= 0 else "W"
    return f"{abs(lat):.4g} {ns}, {abs(lon):.4g} {ew}"


def utm_crs_of_aoi(aoi: Any, aoi_crs: Any = "EPSG:4326") -> tuple[str, tuple[float, float]]:
    """The WGS 84 UTM zone of the centre of an area of interest.

    Parameters
    ----------
    aoi : (minx, miny, maxx, maxy)
        Box in ``aoi_crs``.
    aoi_crs : str or pyproj.CRS
        CRS of ``aoi`` (lon/lat order for EPSG:4326).

    Returns
    -------
    crs : str
        ``"EPSG:326nn"`` (north) or ``"EPSG:327nn"`` (south), as :func:`odc.geo.crs.CRS.utm`
        picks it.
    centre : (lon, lat)
        The centre of the box in lon/lat, the point the zone was chosen for.

    Raises
    ------
    GridError
        For a malformed box, an unknown CRS, or a centre outside the UTM zones (beyond
        84 N or 80 S), where a CRS must be named.
    """
    b = _check_bounds(aoi.bounds if hasattr(aoi, "bounds") else aoi, what="aoi")
    src = _parse_crs(aoi_crs, what="aoi_crs")
    x, y = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    if not src.is_geographic:
        x, y = pyproj.Transformer.from_crs(src, "EPSG:4326", always_xy=True).transform(x, y)
    if not (math.isfinite(x) and math.isfinite(y) and -80 <= y <= 84):
        raise GridError(
            f"aoi: its centre ({x:.6g}, {y:.6g} lon/lat) lies outside the UTM zones (80 S to "
            "84 N); give the grid's crs"
        )
    from odc.geo.crs import CRS

    try:
        crs = CRS.utm(((x + 180.0) % 360.0) - 180.0, y)
    except ValueError as exc:  # no zone found by pyproj's database query
        raise GridError(f"aoi: no UTM zone for its centre ({x:.6g}, {y:.6g}): {exc}") from None
    return _crs_string(_parse_crs(str(crs))), (x, y)


def covering_grid(
    boxes: Sequence[tuple[Sequence[float], Any]], resolution: float, crs: Any
) -> CubeGrid:
    """Smallest grid of ``crs`` on the resolution lattice that covers every box.

    Parameters
    ----------
    boxes
        ``((minx, miny, maxx, maxy), box_crs)`` pairs, e.g. the footprints of scenes each in
        its own UTM zone; each is transformed (densified) to ``crs``.
    resolution : float
        Pixel size in metres.
    crs : str or pyproj.CRS
        Projected CRS of the grid.

    Returns
    -------
    CubeGrid
        Snapped like :meth:`CubeGrid.from_bounds` (pixel centres on the lattice).

    Raises
    ------
    GridError
        No box, a malformed box, unknown CRSs, or a box with no finite image in ``crs``.
    """
    if not boxes:
        raise GridError("boxes: no box to cover")
    dst = _parse_crs(crs)
    union = [math.inf, math.inf, -math.inf, -math.inf]
    for bounds, box_crs in boxes:
        b = _check_bounds(bounds, what="box")
        src = _parse_crs(box_crs, what="box crs")
        if src != dst:
            transformer = pyproj.Transformer.from_crs(src, dst, always_xy=True)
            try:
                b = transformer.transform_bounds(*b, densify_pts=21)
            except pyproj.exceptions.ProjError as exc:
                raise GridError(f"box: cannot transform {b!r} to {dst.name}: {exc}") from None
            if not all(math.isfinite(v) for v in b):
                raise GridError(f"box: {bounds!r} has no finite image in {dst.name}")
        union = [min(union[0], b[0]), min(union[1], b[1]), max(union[2], b[2]), max(union[3], b[3])]
    return CubeGrid.from_bounds(union, resolution, dst)


def check_grid_pixels(
    grid: CubeGrid, what: str = "grid", *, tile_edge: int | None = None
) -> CubeGrid:
    """Refuse a grid larger than the dask config ``updm.limits`` allow.

    A single cube's graph, driver memory and scheduler load grow with its grid, so one
    oversized job spec could exhaust a shared scheduler: its pixels are held to
    ``updm.limits.grid-pixels``. A grid cut into tiles (``tile_edge``) is written tile by
    tile, each (scene, tile) pair sized by the scene and its tile, whatever the grid: there
    one tile's pixels are held to ``updm.limits.grid-pixels`` and the number of tiles to
    ``updm.limits.tiles`` (sized for a continent at 30 m), so that a slip such as a
    resolution of 0.03 instead of 30 is still refused before anything is computed.

    Parameters
    ----------
    grid
        The grid to check.
    what
        How the message names the grid (e.g. ``"grid (from aoi)"``).
    tile_edge
        Edge (pixels) of the tiles the grid is cut into, for a tiled job; None for a single
        cube.

    Returns
    -------
    CubeGrid
        ``grid``, unchanged.

    Raises
    ------
    GridError
        Naming the size, the limit and the setting that raises it.
    """
    limit = int(config.get("limits.grid-pixels"))
    if tile_edge is not None and (grid.ny > tile_edge or grid.nx > tile_edge):
        rows, cols = -(-grid.ny // tile_edge), -(-grid.nx // tile_edge)
        tiles, most = rows * cols, int(config.get("limits.tiles"))
        if tiles > most:
            raise GridError(
                f"{what}: {grid.ny:,} x {grid.nx:,} pixels at {grid.resolution:g} m cut into "
                f"tiles of {tile_edge:,} pixels is {rows:,} x {cols:,} = {tiles:,} tiles, more "
                f"than the limit of {most:,} tiles (updm.limits.tiles); check the resolution "
                "and the area, or raise the limit in dask config (e.g. "
                f"DASK_UPDM__LIMITS__TILES={_round_up(tiles)})"
            )
        pixels = tile_edge * tile_edge
        if pixels > limit:
            raise GridError(
                f"{what}: a tile of {tile_edge:,} x {tile_edge:,} = {pixels:,} pixels is more "
                f"than the limit of {limit:,} pixels (updm.limits.grid-pixels); choose a "
                "smaller [tiles] edge or raise the limit in dask config (e.g. "
                f"DASK_UPDM__LIMITS__GRID_PIXELS={_round_up(pixels)})"
            )
        return grid
    pixels = grid.ny * grid.nx
    if pixels > limit:
        raise GridError(
            f"{what}: {grid.ny:,} x {grid.nx:,} = {pixels:,} pixels at {grid.resolution:g} m is "
            f"more than the limit of {limit:,} pixels (updm.limits.grid-pixels); choose a "
            "smaller area or a coarser resolution, split the area into several jobs or cut "
            "it into tiles (a [tiles] table in the job spec), or raise the limit in dask "
            f"config (e.g. DASK_UPDM__LIMITS__GRID_PIXELS={_round_up(pixels)})"
        )
    return grid


def _round_up(n: int) -> int:
    # A limit that admits ``n``, in two significant digits (easier to read and type).
    step = 10 ** max(len(str(n)) - 2, 0)
    return -(-n // step) * step
