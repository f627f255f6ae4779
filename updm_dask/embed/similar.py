"""Similar places: the k locations whose embedding is nearest to a query point's.

Distances are computed on standardised vectors with missing dimensions imputed as 0 (the
reference mean), all standardised with ONE set of statistics (by default the query cube's),
so places in different cubes are compared on one scale.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from ..cube import Cube, CubeLike
from ..errors import PointError, QueryError
from ..geo.points import LONLAT, check_lonlat, grid_lonlat, parse_crs
from ._geo import great_circle_m
from ._kernel import impute_missing
from ._period import DEFAULT_PERIOD, Period
from ._stats import EmbeddingStats
from .layer import cube_statistics_of, cube_vectors, cubes_of
from .points import PointEmbedding, locate, point_embedding

__all__ = ["METRICS", "SimilarPlaces", "similar_places", "vector_distance"]

METRICS = ("cosine", "euclidean")


def vector_distance(vectors: np.ndarray, query: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """Distance of every vector to ``query``.

    Axis contract: ``vectors`` ``(dims, ...)``, ``query`` ``(dims,)`` -> ``(...)`` float32.
    NaN components are imputed as 0 first. ``"euclidean"``: the L2 norm of the
    difference. ``"cosine"``: ``1 - cos(angle)`` in [0, 2]; 1 when either vector is zero
    (no direction to compare).
    """
    if metric not in METRICS:
        raise QueryError(f"metric: expected one of {METRICS}, got {metric!r}")
    z = impute_missing(vectors).astype(np.float64)
    q = impute_missing(query).astype(np.float64)
    if q.ndim != 1 or z.shape[0] != q.shape[0]:
        raise QueryError(f"vector_distance: {z.shape[0]} dimensions vs a query of {q.shape}")
    qs = q.reshape((-1,) + (1,) * (z.ndim - 1))
    if metric == "euclidean":
        return np.sqrt(((z - qs) ** 2).sum(axis=0)).astype(np.float32)
    nz = np.sqrt((z**2).sum(axis=0))
    nq = float(np.sqrt((q**2).sum()))
    dot = (z * qs).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.where((nz > 0) & (nq > 0), dot / (nz * nq), 0.0)
    return (1.0 - np.clip(cos, -1.0, 1.0)).astype(np.float32)


@dataclass(frozen=True, eq=False)
class SimilarPlaces:
    """Result of :func:`similar_places`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per place, nearest first: ``rank``, ``cube``, ``lon``, ``lat``, ``x``,
        ``y`` (cube CRS), ``row``, ``col``, ``distance``, ``clear_count``.
    query : PointEmbedding
    metric : str
    distance_maps : list of xarray.DataArray
        Per cube, the distance of every pixel (NaN: excluded or without clear data).
    """

    table: pd.DataFrame
    query: PointEmbedding
    metric: str
    distance_maps: list[xr.DataArray]

    def format(self) -> str:
        """Plain-text table."""
        head = (
            f"{len(self.table)} place(s) most similar to ({self.query.lon:.6f}, "
            f"{self.query.lat:.6f}) [{self.metric} distance, period {self.query.period}, "
            f"radius {self.query.radius_m:g} m]"
        )
        cols = ["rank", "lon", "lat", "distance", "clear_count", "row", "col", "cube"]
        return head + "\n" + self.table[cols].to_string(index=False, float_format="%.6f")

    def to_csv(self) -> str:
        """The table as CSV text."""
        return self.table.to_csv(index=False)

    def plot(self, path: str | os.PathLike, *, dpi: int = 120) -> Path:
        """Map(s) of the distances with the query (star) and the places (numbered), as PNG."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        n = len(self.distance_maps)
        fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.6), squeeze=False)
        finite = [m.values[np.isfinite(m.values)] for m in self.distance_maps]
        vals = np.concatenate(finite) if any(f.size for f in finite) else np.array([0.0, 1.0])
        vmin, vmax = float(np.min(vals)), float(np.percentile(vals, 98))
        for i, (ax, dmap) in enumerate(zip(axes[0], self.distance_maps, strict=True)):
            x, y = dmap["x"].values / 1000.0, dmap["y"].values / 1000.0
            dx = (x[1] - x[0]) / 2 if x.size > 1 else 0.015
            dy = (y[0] - y[1]) / 2 if y.size > 1 else 0.015
            im = ax.imshow(
                dmap.values,
                extent=(x[0] - dx, x[-1] + dx, y[-1] - dy, y[0] + dy),
                cmap="viridis_r",
                vmin=vmin,
                vmax=vmax if vmax > vmin else vmin + 1e-6,
                interpolation="nearest",
            )
            name = dmap.attrs.get("cube", f"cube {i}")
            rows = self.table[self.table["cube"] == name]
            ax.scatter(
                rows["x"] / 1000.0,
                rows["y"] / 1000.0,
                s=40,
                facecolors="none",
                edgecolors="red",
                linewidths=1.5,
            )
            for _, r in rows.iterrows():
                ax.annotate(
                    str(int(r["rank"])),
                    (r["x"] / 1000.0, r["y"] / 1000.0),
                    textcoords="offset points",
                    xytext=(4, 4),
                    color="red",
                    fontsize=8,
                )
            if name == self.query.cube:
                ax.scatter(
                    [self.query.x / 1000.0],
                    [self.query.y / 1000.0],
                    marker="*",
                    s=180,
                    c="white",
                    edgecolors="black",
                    zorder=5,
                )
            ax.set_title(f"{Path(name).name}\n{self.metric} distance", fontsize=9)
            ax.set_xlabel("x (km)")
            ax.set_ylabel("y (km)")
            fig.colorbar(im, ax=ax, shrink=0.8)
        fig.suptitle(
            f"places like ({self.query.lon:.5f}, {self.query.lat:.5f}), period {self.query.period}",
            fontsize=10,
        )
        fig.tight_layout()
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=dpi)
        plt.close(fig)
        return out


def _cube_holding(cubes: Sequence[Cube], lon: float, lat: float, crs: Any = LONLAT) -> Cube | None:
    """The first of ``cubes`` whose grid holds the point, or None.

    Raises
    ------
    PointError
        Bad coordinates or CRS (whatever the cubes).
    """
    if parse_crs(crs).is_geographic:
        check_lonlat(lon, lat)
    for c in cubes:
        try:
            locate(c.grid, lon, lat, crs)
        except PointError:
            continue  # outside this cube's grid
        return c
    return None


def _distance_block(block: np.ndarray, query: np.ndarray, metric: str) -> np.ndarray:
    return vector_distance(block, query, metric)


def similar_places(
    lon: float,
    lat: float,
    cubes: CubeLike | Sequence[CubeLike],
    *,
    k: int = 10,
    metric: str = "cosine",
    radius: float = 0.0,
    period: Any = DEFAULT_PERIOD,
    epoch_years: int | None = 10,
    stats: EmbeddingStats | None = None,
    exclude_m: float | None = None,
    min_separation_m: float | None = None,
    crs: Any = LONLAT,
) -> SimilarPlaces:
    """The ``k`` places most similar to the place at ``(lon, lat)``, in one or more cubes.

    Parameters
    ----------
    lon, lat : float
        The query point (in ``crs``, default WGS84 lon/lat); it must lie in one of
        ``cubes`` (the first that holds it is the query cube).
    cubes : Cube, location, or a sequence of them
        Where to search.
    k : int
        Number of places.
    metric : {"cosine", "euclidean"}
    radius : float
        Metres: the query and every candidate pixel are the neighbourhoods of this radius
        (observations pooled); 0 compares single pixels.
    period, epoch_years
        The embedding's period (see :func:`~.layer.embedding_layer`).
    stats : EmbeddingStats, optional
        Standardisation for every cube (default: the query cube's own statistics).
    exclude_m : float, optional
        Pixels whose centre lies within this distance of the query point are not
        candidates (default ``2 * radius``, so a result's neighbourhood never overlaps the
        query's); the query pixel itself never is.
    min_separation_m : float, optional
        Each place lies at least this far (great circle) from every better one (default
        ``2 * radius``: neighbourhoods of results do not overlap).
    crs
        CRS of ``lon``/``lat``.

    Returns
    -------
    SimilarPlaces
        Fewer than ``k`` rows only when fewer candidates exist.

    Raises
    ------
    QueryError
        The point is in none of the cubes; bad ``k``, metric, radius or period.
    """
    if isinstance(cubes, str | os.PathLike) or not isinstance(cubes, Sequence):
        cubes = [cubes]
    if not cubes:
        raise QueryError("similar_places: no cube to search")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise QueryError(f"k: expected a positive integer, got {k!r}")
    if metric not in METRICS:
        raise QueryError(f"metric: expected one of {METRICS}, got {metric!r}")
    if not np.isfinite(radius) or radius < 0:
        raise QueryError(f"radius: expected a non-negative number of metres, got {radius!r}")
    per = Period.parse(period, epoch_years)
    # a tiled collection is searched tile by tile, with its tiles' pooled statistics
    given = list(cubes)
    origin: list[Any] = []
    opened: list[Cube] = []
    for c in given:
        tiles = cubes_of(c)
        opened += tiles
        origin += [c] * len(tiles)
    qcube = _cube_holding(opened, lon, lat, crs)
    if qcube is None:
        raise QueryError(
            f"similar_places: the query point ({lon}, {lat}) lies in none of the "
            f"{len(opened)} cube(s): {', '.join(c.location for c in opened)}"
        )
    if stats is None:
        stats = cube_statistics_of(origin[opened.index(qcube)], per)
    query = point_embedding(qcube, lon, lat, radius=radius, period=per, stats=stats, crs=crs)
    excl = 2.0 * radius if exclude_m is None else float(exclude_m)
    sep = 2.0 * radius if min_separation_m is None else float(min_separation_m)
    if excl < 0 or sep < 0:
        raise QueryError("exclude_m and min_separation_m must be >= 0")

    maps: list[xr.DataArray] = []
    cand: list[pd.DataFrame] = []
    for ci, c in enumerate(opened):
        z, count, _ = cube_vectors(c, per, radius=radius, stats=stats)
        data = z.data if isinstance(z.data, da.Array) else da.from_array(z.values)
        dist = da.map_blocks(
            _distance_block,
            data.rechunk({0: -1}),
            query.vector,
            metric,
            drop_axis=0,
            dtype=np.float32,
            meta=np.empty((0, 0), dtype=np.float32),
        )
        d, cnt = da.compute(dist, count.data)
        d = np.where(np.asarray(cnt) > 0, d, np.nan).astype(np.float32)
        if c is qcube:
            gx, gy = c.grid.x, c.grid.y
            near = (gx[None, :] - query.x) ** 2 + (gy[:, None] - query.y) ** 2 <= excl**2
            near[query.row, query.col] = True
            d[near] = np.nan
        dmap = xr.DataArray(
            d,
            dims=("y", "x"),
            coords={"y": c.grid.y, "x": c.grid.x},
            attrs={"cube": c.location, "metric": metric},
        )
        maps.append(dmap)
        rows, cols = np.nonzero(np.isfinite(d))
        cand.append(
            pd.DataFrame(
                {
                    "cube_index": ci,
                    "row": rows,
                    "col": cols,
                    "distance": d[rows, cols].astype(np.float64),
                    "clear_count": np.asarray(cnt)[rows, cols],
                }
            )
        )
    allc = pd.concat(cand, ignore_index=True).sort_values(
        ["distance", "cube_index", "row", "col"], kind="stable"
    )
    picked: list[dict[str, Any]] = []
    plon: list[float] = []
    plat: list[float] = []
    batch = 4096  # candidates located (lon/lat) at a time, nearest first
    for start in range(0, len(allc), batch):
        part = allc.iloc[start : start + batch]
        lons = np.empty(len(part))
        lats = np.empty(len(part))
        xs = np.empty(len(part))
        ys = np.empty(len(part))
        for ci in np.unique(part["cube_index"]):
            sel = (part["cube_index"] == ci).to_numpy()
            g = opened[int(ci)].grid
            xs[sel] = g.x[part["col"].to_numpy()[sel]]
            ys[sel] = g.y[part["row"].to_numpy()[sel]]
            lons[sel], lats[sel] = grid_lonlat(g, xs[sel], ys[sel])
        for i, r in enumerate(part.itertuples(index=False)):
            if sep > 0 and plon and great_circle_m(plon, plat, lons[i], lats[i]).min() < sep:
                continue
            plon.append(float(lons[i]))
            plat.append(float(lats[i]))
            picked.append(
                {
                    "rank": len(picked) + 1,
                    "cube": opened[r.cube_index].location,
                    "lon": float(lons[i]),
                    "lat": float(lats[i]),
                    "x": float(xs[i]),
                    "y": float(ys[i]),
                    "row": int(r.row),
                    "col": int(r.col),
                    "distance": float(r.distance),
                    "clear_count": int(r.clear_count),
                }
            )
            if len(picked) == k:
                break
        if len(picked) == k:
            break
    columns = ["rank", "cube", "lon", "lat", "x", "y", "row", "col", "distance", "clear_count"]
    return SimilarPlaces(pd.DataFrame(picked, columns=columns), query, metric, maps)
