"""The embedding of a place: a pixel, or the pixels within a radius of a point.

A point's embedding is computed from the scenes around it alone (a window read straight
from the cube, no graph): its observations are reduced to the kernel's additive sums and
turned into features, exactly as the whole-cube layer does (the tests check both agree).
Points come as arguments or from a CSV file (:func:`read_places`).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..cube import CubeLike, as_collection, resolve_cube
from ..errors import PointError, QueryError
from ..geo import CubeGrid
from ..geo.points import LONLAT, PixelLocation, locate_point
from ._features import clear_count
from ._format import csv_number, csv_text, json_floats
from ._geo import point_window
from ._kernel import embedding_sums, features_from_sums, standardise
from ._period import DEFAULT_PERIOD, EMBEDDING_VERSION, Period
from ._scenes import SceneInputs
from ._stats import EmbeddingStats
from .layer import cube_statistics_of

__all__ = [
    "Place",
    "PointEmbedding",
    "locate",
    "place_table",
    "point_embedding",
    "points_embedding",
    "read_places",
]


@dataclass(frozen=True, eq=False)
class PointEmbedding:
    """The embedding of one place: a pixel, or the pixels within a radius of a point.

    ``raw`` are the features, ``vector`` the standardised ones (NaN where a dimension has
    no data), both in the order of ``names``.
    """

    names: tuple[str, ...]
    raw: np.ndarray
    vector: np.ndarray
    lon: float
    lat: float
    x: float
    y: float
    row: int
    col: int
    radius_m: float
    n_pixels: int
    clear_count: int
    period: Period
    cube: str
    stats_source: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (NaN as None)."""
        plain = "cube lon lat x y row col radius_m n_pixels clear_count".split()
        return {
            **{k: getattr(self, k) for k in plain},
            "period": str(self.period),
            "epoch_years": self.period.epoch_years,
            "embedding_version": EMBEDDING_VERSION,
            "standardised_with": self.stats_source,
            "names": list(self.names),
            "vector": json_floats(self.vector),
            "raw": json_floats(self.raw),
        }

    def to_csv(self) -> str:
        """CSV text, one row per dimension: ``dimension, raw, standardised``."""
        rows = [
            [n, csv_number(float(a)), csv_number(float(b))]
            for n, a, b in zip(self.names, self.raw, self.vector, strict=True)
        ]
        return csv_text(["dimension", "raw", "standardised"], rows)

    def format(self) -> str:
        """Plain-text table: dimension, raw value, standardised value."""
        head = (
            f"embedding of ({self.lon:.6f}, {self.lat:.6f}) in {self.cube}: period "
            f"{self.period}, radius {self.radius_m:g} m, {self.n_pixels} pixel(s), "
            f"{self.clear_count} clear observation(s)"
        )
        w = max(len(n) for n in self.names)
        lines = [head, f"  {'dimension':<{w}}  {'raw':>10}  {'standardised':>12}"]
        for n, r, z in zip(self.names, self.raw, self.vector, strict=True):
            lines.append(f"  {n:<{w}}  {r:>10.4f}  {z:>12.3f}")
        return "\n".join(lines)


def locate(grid: CubeGrid, lon: float, lat: float, crs: Any = LONLAT) -> PixelLocation:
    """The pixel of ``grid`` holding the point ``(lon, lat)`` given in ``crs``.

    The embedding's functions take a point as ``lon, lat[, crs]``: longitude/latitude by
    default, else x/y in ``crs``.

    Raises
    ------
    PointError
        Bad coordinates or CRS, or the point lies outside the grid.
    """
    if isinstance(crs, str) and crs == LONLAT:
        return locate_point(grid, lon=lon, lat=lat)
    return locate_point(grid, x=lon, y=lat, crs=crs)


def point_embedding(
    cube: CubeLike,
    lon: float,
    lat: float,
    *,
    radius: float = 0.0,
    period: Any = DEFAULT_PERIOD,
    epoch_years: int | None = 10,
    stats: EmbeddingStats | None = None,
    crs: Any = LONLAT,
) -> PointEmbedding:
    """The embedding of the place at ``(lon, lat)``.

    Parameters
    ----------
    cube : Cube or location
    lon, lat : float
        The point (in ``crs``; default longitude/latitude WGS84).
    radius : float
        Metres. 0: the pixel the point lies in. Else every pixel whose centre lies within
        ``radius`` of the point; their observations are pooled (one place).
    period, epoch_years
        See :func:`~.layer.embedding_layer`.
    stats : EmbeddingStats, optional
        Standardisation statistics (default: the cube's own, :func:`~.layer.cube_statistics`;
        for a tiled collection, its tiles' pooled, :func:`~.layer.cube_statistics_of`).
    crs
        CRS of ``lon``/``lat`` (any pyproj input).

    Returns
    -------
    PointEmbedding

    Raises
    ------
    QueryError
        The point lies outside the cube; bad radius, period or coordinates; statistics of
        another period.
    """
    per = Period.parse(period, epoch_years)
    collection = as_collection(cube)
    c = resolve_cube(cube) if collection is None else collection
    if stats is None:
        # a collection's statistics are its tiles' pooled, as for its other places
        stats = cube_statistics_of(cube, per)
    stats.check(per)
    kind = "cube" if collection is None else "tiled collection"
    try:
        where = locate(c.grid, lon, lat, crs)
    except PointError as exc:
        raise PointError(f"{kind} {c.location!r}: {exc}") from None
    win = point_window(c.grid, where, radius)
    # the place's pixels, tile by tile on a collection (a radius may reach into a
    # neighbouring tile): the sums are per pixel, so the pieces' sums add up
    sums = sum(
        embedding_sums(
            *scenes.window(rows, cols, mask), scenes.epoch, scenes.t, scenes.phase, per.n_epochs
        ).sum(axis=1)
        for scenes, rows, cols, mask in _window_pieces(c, collection, win, per, where)
    )
    raw = features_from_sums(sums[:, None], per.n_epochs)[:, 0]
    vec = standardise(raw[:, None], stats.mean, stats.std)[:, 0]
    return PointEmbedding(
        per.dimension_names,
        raw,
        vec,
        where.lon,
        where.lat,
        where.query_x,
        where.query_y,
        where.row,
        where.col,
        float(radius),
        int(win.mask.sum()),
        int(clear_count(sums, per.n_epochs)),
        per,
        c.location,
        stats.source,
    )


def _window_pieces(
    cube: Any, collection: Any, win: Any, per: Period, where: PixelLocation
) -> list[tuple[SceneInputs, slice, slice, np.ndarray]]:
    """``(scene inputs, rows, cols, mask)`` of each cube holding part of the window: the
    cube itself, or each tile of a collection the window's selected pixels lie in (with
    rows and columns of that tile)."""
    if collection is None:
        return [(SceneInputs.open(cube, per), win.rows, win.cols, win.mask)]
    r0, c0 = win.rows.start, win.cols.start
    nr, nc = win.mask.shape
    present = set(collection.tiles())
    pieces = []
    for tile, rows, cols in collection.tiling.spans_of_window(r0, c0, nr, nc):
        mask = win.mask[rows.start - r0 : rows.stop - r0, cols.start - c0 : cols.stop - c0]
        if tile not in present or not mask.any():
            continue  # a tile without data: its pixels hold no observation
        tr0, tc0, _, _ = collection.tiling.tile_window(tile)
        scenes = SceneInputs.open(collection.open_tile(tile), per)
        local = (slice(rows.start - tr0, rows.stop - tr0), slice(cols.start - tc0, cols.stop - tc0))
        pieces.append((scenes, *local, mask))
    if not pieces:  # the point's own tile holds no data: refused, naming the tiles present
        collection.open_tile(collection.tiling.tile_of_pixel(where.row, where.col))
    return pieces


def points_embedding(
    cube: CubeLike,
    lon: Sequence[float],
    lat: Sequence[float],
    *,
    radius: float | Sequence[float] = 0.0,
    period: Any = DEFAULT_PERIOD,
    epoch_years: int | None = 10,
    stats: EmbeddingStats | None = None,
    crs: Any = LONLAT,
) -> list[PointEmbedding]:
    """:func:`point_embedding` for many points, with one set of statistics.

    ``radius`` is one value or one per point.
    """
    per = Period.parse(period, epoch_years)
    collection = as_collection(cube)
    c = collection if collection is not None else resolve_cube(cube)
    lo = np.atleast_1d(np.asarray(lon, dtype=np.float64))
    la = np.atleast_1d(np.asarray(lat, dtype=np.float64))
    radii = np.broadcast_to(np.asarray(radius, dtype=np.float64), lo.shape)
    if la.shape != lo.shape:
        raise QueryError(f"points: {lo.size} longitudes but {la.size} latitudes")
    if stats is None:
        stats = cube_statistics_of(c, per)
    return [
        point_embedding(c, a, b, radius=float(r), period=per, stats=stats, crs=crs)
        for a, b, r in zip(lo, la, radii, strict=True)
    ]


# --------------------------------------------------------------------------------------
# Places from a CSV file, and their embeddings as a CSV table
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """A point of a points file: its ``id``, lon/lat and, optionally, its own radius (m)."""

    id: str
    lon: float
    lat: float
    radius: float | None = None


#: Column names taken for longitude and latitude, in order of preference (any case).
_LON_NAMES = ("lon", "longitude", "lng", "x")
_LAT_NAMES = ("lat", "latitude", "y")


def read_places(path: str | Path) -> list[Place]:
    """Points of a CSV file: ``lon``/``lat`` columns (or longitude/latitude), optional
    ``id`` (or name; default the row number) and ``radius`` (metres).

    Raises
    ------
    QueryError
        The file is missing, lacks lon/lat columns, holds a non-number or no point.
    """
    p = Path(path)
    if not p.is_file():
        raise QueryError(f"points file {str(p)!r} does not exist")
    with p.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        fields = {h.strip().lower(): h for h in (reader.fieldnames or [])}
        lon_key = next((fields[n] for n in _LON_NAMES if n in fields), None)
        lat_key = next((fields[n] for n in _LAT_NAMES if n in fields), None)
        if lon_key is None or lat_key is None:
            raise QueryError(
                f"{str(p)!r}: expected columns lon and lat (or longitude/latitude), got "
                f"{reader.fieldnames}"
            )
        id_key = fields.get("id") or fields.get("name")
        r_key = fields.get("radius") or fields.get("radius_m")
        out = []
        for i, row in enumerate(reader, start=2):
            try:
                lon, lat = float(row[lon_key]), float(row[lat_key])
                radius = float(row[r_key]) if r_key and row[r_key].strip() else None
            except (TypeError, ValueError):
                raise QueryError(
                    f"{str(p)!r} line {i}: lon/lat/radius must be numbers, got {row}"
                ) from None
            out.append(Place(row[id_key] if id_key else str(i - 1), lon, lat, radius))
    if not out:
        raise QueryError(f"{str(p)!r} holds no points")
    return out


def place_table(
    cube: CubeLike,
    places: Sequence[Place],
    *,
    radius: float = 0.0,
    period: Any = DEFAULT_PERIOD,
    epoch_years: int | None = 10,
    raw: bool = False,
) -> str:
    """The embeddings of ``places`` as CSV text, one row per place.

    Columns ``id, lon, lat, radius_m, n_pixels, clear_count`` and the dimensions,
    standardised with the cube's own statistics (``raw``: the raw features). A place
    without its own radius takes ``radius``.
    """
    per = Period.parse(period, epoch_years)
    radii = [p.radius if p.radius is not None else radius for p in places]
    found = points_embedding(
        cube, [p.lon for p in places], [p.lat for p in places], radius=radii, period=per
    )
    header = ["id", "lon", "lat", "radius_m", "n_pixels", "clear_count", *per.dimension_names]
    rows = [
        [
            p.id,
            p.lon,
            p.lat,
            r,
            pe.n_pixels,
            pe.clear_count,
            *[csv_number(float(v)) for v in (pe.raw if raw else pe.vector)],
        ]
        for p, r, pe in zip(places, radii, found, strict=True)
    ]
    return csv_text(header, rows)
