"""The embedding of a cube (lazy, every pixel), of a point or neighbourhood, and its storage.

Three tiers: the numpy kernels live in :mod:`._kernel`; :func:`lazy_sums` /
:func:`lazy_features` wrap them for dask; the functions below take cubes and return labelled
xarray objects or small records.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dask.array as da
import dask.config
import icechunk
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
import zarr
from scipy import ndimage

from ..cube import Cube, CubeConflictError, CubeLike, resolve_cube
from ..errors import CubeError, QueryError
from ..geo.points import LONLAT, grid_lonlat, to_grid_xy
from ._geo import point_window
from ._kernel import (
    N_EPOCH_SUMS,
    embedding_sums,
    features_from_sums,
    n_sums,
    standardise,
)
from ._period import DEFAULT_PERIOD, EMBEDDING_VERSION, Period

__all__ = [
    "EmbeddingStats",
    "PointEmbedding",
    "cube_statistics",
    "cube_vectors",
    "embedding_layer",
    "embedding_statistics",
    "lazy_features",
    "lazy_sums",
    "point_embedding",
    "points_embedding",
    "standardise_layer",
    "store_embedding",
    "stored_embedding",
    "time_axes",
]

log = logging.getLogger("updm_dask.embed")

#: Scene variables an embedding reads, in the argument order of ``embedding_sums``.
INPUTS: tuple[str, ...] = (
    "land_cover",
    "quality",
    "uCw",
    "uCv",
    "uCs",
    "uC4",
    "residual",
    "mviupd",
)
#: Names of the variables of a stored embedding layer.
LAYER = "embedding"
LAYER_MEAN = "embedding_mean"
LAYER_STD = "embedding_std"
LAYER_COUNT = "embedding_clear_count"
_DEFAULT_TIME_CHUNK = 32
_DEFAULT_SPATIAL_CHUNK = 128


# --------------------------------------------------------------------------------------
# Time axes
# --------------------------------------------------------------------------------------


def time_axes(times: Any, period: Period) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epoch index, trend time and seasonal phase of acquisition times.

    Parameters
    ----------
    times : array of datetime64
    period : Period

    Returns
    -------
    epoch : numpy.ndarray of int64
        Epoch of each time (-1 outside the period).
    t : numpy.ndarray of float64
        Decimal year minus the middle of the period, in decades.
    phase : numpy.ndarray of float64
        Fraction of the calendar year elapsed, times 2 pi.
    """
    tm = np.asarray(times).astype("datetime64[us]")
    year0 = tm.astype("datetime64[Y]")
    years = year0.astype(np.int64) + 1970
    start = year0.astype("datetime64[us]")
    length = (year0 + np.timedelta64(1, "Y")).astype("datetime64[us]") - start
    frac = (tm - start) / length
    epoch = period.epoch_of(years)
    t = (years + frac - period.middle) / 10.0
    return epoch, t.astype(np.float64), (2.0 * np.pi * frac).astype(np.float64)


# --------------------------------------------------------------------------------------
# Dask wrappers
# --------------------------------------------------------------------------------------


def _sums_block(*blocks: np.ndarray, n_epochs: int) -> np.ndarray:
    return embedding_sums(*blocks, n_epochs=n_epochs)[None]


def lazy_sums(
    arrays: Sequence[da.Array],
    epoch: np.ndarray,
    t: np.ndarray,
    phase: np.ndarray,
    n_epochs: int,
    *,
    time_chunk: int = _DEFAULT_TIME_CHUNK,
    spatial_chunk: int = _DEFAULT_SPATIAL_CHUNK,
) -> da.Array:
    """Dask wrapper of :func:`~._kernel.embedding_sums` over a whole cube.

    ``arrays`` are the eight :data:`INPUTS` as ``(time, y, x)`` dask arrays; the result is
    ``(n_sums, y, x)`` float64, one spatial chunk of ``spatial_chunk`` pixels. Each task
    reduces ``time_chunk`` slots of one spatial block; the partial sums are then added in
    a tree, so memory per task is bounded by ``time_chunk x spatial_chunk**2`` pixels,
    whatever the number of scenes.
    """
    if len(arrays) != len(INPUTS):
        raise QueryError(f"lazy_sums: expected {len(INPUTS)} arrays, got {len(arrays)}")
    nt, ny, nx = arrays[0].shape
    cs = (min(spatial_chunk, ny), min(spatial_chunk, nx))
    k = n_sums(n_epochs)
    if nt == 0:
        return da.zeros((k, ny, nx), dtype=np.float64, chunks=(k, *cs))
    tc = max(1, min(time_chunk, nt))
    ins = [a.rechunk((tc, *cs)) for a in arrays]
    tchunks = ins[0].chunks[0]
    vecs = [da.from_array(np.asarray(v), chunks=(tchunks,)) for v in (epoch, t, phase)]
    pieces = da.blockwise(
        _sums_block,
        "tcyx",
        *[x for a in ins for x in (a, "tyx")],
        *[x for v in vecs for x in (v, "t")],
        new_axes={"c": k},
        adjust_chunks={"t": 1},
        dtype=np.float64,
        meta=np.empty((0, 0, 0, 0), dtype=np.float64),
        name="updm-embed-sums-part",
        n_epochs=n_epochs,
    )
    return pieces.sum(axis=0, dtype=np.float64)


def _focal_block(block: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    out = np.empty_like(block)
    for c in range(block.shape[0]):
        out[c] = ndimage.correlate(block[c], footprint, mode="constant", cval=0.0)
    return out


def focal_sums(sums: da.Array, footprint: np.ndarray) -> da.Array:
    """Sum every sum channel over a disk ``footprint`` around each pixel (zero outside).

    Because the sums are additive, the features of the result are those of the
    neighbourhood as one place: all its observations pooled.
    """
    r = footprint.shape[0] // 2
    if r == 0:
        return sums
    fp = footprint.astype(np.float64)
    return da.map_overlap(
        _focal_block,
        sums,
        depth={0: 0, 1: r, 2: r},
        boundary=0.0,
        dtype=np.float64,
        footprint=fp,
        name="updm-embed-focal",
    )


def lazy_features(sums: da.Array, n_epochs: int) -> da.Array:
    """Dask wrapper of :func:`~._kernel.features_from_sums`: (n_sums, y, x) -> (n_dims, y, x)."""
    n_dims = features_from_sums(np.zeros((n_sums(n_epochs), 1)), n_epochs).shape[0]
    return da.map_blocks(
        features_from_sums,
        sums,
        n_epochs,
        chunks=((n_dims,), *sums.chunks[1:]),
        dtype=np.float32,
        meta=np.empty((0, 0, 0), dtype=np.float32),
        name="updm-embed-features",
    )


def _clear_count(sums: da.Array, n_epochs: int) -> da.Array:
    idx = [e * N_EPOCH_SUMS for e in range(n_epochs)]  # the clear count leads each epoch
    return sums[idx].sum(axis=0).astype(np.int32)


# --------------------------------------------------------------------------------------
# The whole cube, lazily
# --------------------------------------------------------------------------------------


def _scene_group(cube: Cube) -> tuple[zarr.Group, str]:
    """The cube's root group at one snapshot (read-only), and that snapshot's id."""
    snap = cube.snapshot_id
    session = cube.repository.readonly_session(snapshot_id=snap)
    return zarr.open_group(session.store, mode="r"), snap


def _period_slots(group: zarr.Group, period: Period) -> tuple[np.ndarray, ...]:
    """Indices (storage order) of the time slots in ``period``, and their time axes."""
    # on disk: int64 microseconds since 1970 (see updm_dask.cube)
    times = np.asarray(group["time"][:], dtype=np.int64).astype("datetime64[us]")
    epoch, t, phase = time_axes(times, period)
    keep = np.flatnonzero(epoch >= 0)
    return keep, epoch[keep], t[keep], phase[keep]


def _spatial_chunk() -> int:
    c = dask.config.get("updm.chunks.yearly", _DEFAULT_SPATIAL_CHUNK)
    return int(c) if isinstance(c, int) and not isinstance(c, bool) and c > 0 else 128


def embedding_layer(
    cube: CubeLike,
    period: Any = DEFAULT_PERIOD,
    *,
    epoch_years: int | None = 10,
    radius: float = 0.0,
    time_chunk: int = _DEFAULT_TIME_CHUNK,
) -> xr.Dataset:
    """The raw (not standardised) embedding of every pixel of a cube, lazily.

    Parameters
    ----------
    cube : Cube or location
    period : str, (start, end) or Period
        Years whose scenes enter the embedding, e.g. ``"1975-2024"``.
    epoch_years : int or None
        Epoch length (10: calendar decades); None: one epoch for the whole period.
    radius : float
        Metres; > 0 pools, for each pixel, the observations of all pixels whose centre lies
        within ``radius`` of its centre (clipped at the cube's edges).
    time_chunk : int
        Scenes per task.

    Returns
    -------
    xarray.Dataset
        ``embedding`` (dimension, y, x) float32 and ``embedding_clear_count`` (y, x) int32,
        dask-backed (nothing is computed), with the cube's ``y``/``x``/``spatial_ref`` and a
        ``dimension`` coordinate of names; attributes describe the period and the source.
    """
    c = resolve_cube(cube)
    per = Period.parse(period, epoch_years)
    if not np.isfinite(radius) or radius < 0:
        raise QueryError(f"radius: expected a non-negative number of metres, got {radius!r}")
    group, snap = _scene_group(c)
    keep, epoch, t, phase = _period_slots(group, per)
    n_slots = int(group["time"].shape[0])
    ny, nx = c.grid.shape
    cs = _spatial_chunk()
    tc = max(1, min(int(time_chunk), max(n_slots, 1)))
    arrays = []
    for name in INPUTS:
        # straight from Zarr in (time_chunk, cs, cs) blocks: one task reads many slots,
        # instead of one task per stored (1, C, C) chunk
        a = da.from_zarr(
            group[name],
            chunks=(tc, min(cs, ny), min(cs, nx)),
            name=f"updm-embed-read-{name}-{snap}-{tc}-{cs}",
        )
        arrays.append(a if keep.size == n_slots else a[keep])
    sums = lazy_sums(
        arrays,
        epoch,
        t,
        phase,
        per.n_epochs,
        time_chunk=time_chunk,
        spatial_chunk=cs,
    )
    if radius > 0:
        from ._geo import disk_footprint

        sums = focal_sums(sums, disk_footprint(radius, c.grid.resolution))
    feats = lazy_features(sums, per.n_epochs)
    coords = {"dimension": list(per.dimension_names), "y": c.grid.y, "x": c.grid.x}
    attrs = _layer_attrs(c, per, radius, n_slots, snap)
    out = xr.Dataset(
        {
            LAYER: (("dimension", "y", "x"), feats, {"long_name": "location embedding (raw)"}),
            LAYER_COUNT: (
                ("y", "x"),
                _clear_count(sums, per.n_epochs),
                {"long_name": "clear observations in the period", "units": "1"},
            ),
        },
        coords=coords,
        attrs=attrs,
    )
    return out.rio.write_crs(c.grid.crs_wkt).rio.write_transform(c.grid.transform)


def _layer_attrs(
    cube: Cube, period: Period, radius: float, n_slots: int, snapshot: str
) -> dict[str, Any]:
    from .. import __version__

    return {
        "embedding_version": EMBEDDING_VERSION,
        "period": str(period),
        "period_start": period.start,
        "period_end": period.end,
        "epoch_years": period.epoch_years,
        "radius_m": float(radius),
        "source": cube.location,
        "source_snapshot": snapshot,
        "source_time_slots": n_slots,
        "updm_dask_version": __version__,
        "definition": "see updm_dask/embed/EMBEDDINGS.md",
    }


# --------------------------------------------------------------------------------------
# Standardisation statistics
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class EmbeddingStats:
    """Per-dimension mean and standard deviation that standardise an embedding.

    Vectors are comparable only when standardised with the SAME statistics: comparing
    places across cubes standardises every cube's raw vectors with one reference's stats.

    Attributes
    ----------
    period : Period
        Defines the dimensions (``period.dimension_names``).
    mean, std : numpy.ndarray
        float64, one per dimension, over the reference pixels with a finite value
        (population standard deviation); NaN for a dimension without any data.
    n_pixels : numpy.ndarray
        int64, pixels with a finite value per dimension.
    source : str
        Where they were computed (cube location and snapshot).
    """

    period: Period
    mean: np.ndarray
    std: np.ndarray
    n_pixels: np.ndarray
    source: str = ""
    version: int = EMBEDDING_VERSION

    def __post_init__(self) -> None:
        n = len(self.period.dimension_names)
        for name in ("mean", "std", "n_pixels"):
            v = np.asarray(getattr(self, name), dtype=np.int64 if name == "n_pixels" else float)
            if v.shape != (n,):
                raise QueryError(
                    f"EmbeddingStats.{name}: expected {n} values (period {self.period}), "
                    f"got shape {v.shape}"
                )
            object.__setattr__(self, name, v)

    @property
    def names(self) -> tuple[str, ...]:
        """Dimension names."""
        return self.period.dimension_names

    def check(self, period: Period, version: int = EMBEDDING_VERSION) -> None:
        """QueryError unless these statistics belong to embeddings of ``period``/``version``."""
        if self.version != version or self.period != period:
            raise QueryError(
                f"standardisation statistics are for period {self.period} "
                f"(epochs of {self.period.epoch_years} years, embedding version {self.version})"
                f", not for {period} (epochs of {period.epoch_years} years, version {version})"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (NaN as None)."""

        def clean(a: np.ndarray) -> list:
            return [float(v) if math.isfinite(v) else None for v in a]

        return {
            "embedding_version": self.version,
            "period": self.period.to_dict(),
            "names": list(self.names),
            "mean": clean(self.mean),
            "std": clean(self.std),
            "n_pixels": [int(v) for v in self.n_pixels],
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, d: Any) -> EmbeddingStats:
        """Inverse of :meth:`to_dict`."""
        try:
            per = Period.from_dict(d["period"])

            def arr(key: str) -> np.ndarray:
                return np.array([np.nan if v is None else v for v in d[key]], dtype=float)

            stats = cls(
                per,
                arr("mean"),
                arr("std"),
                np.asarray(d["n_pixels"], dtype=np.int64),
                str(d.get("source", "")),
                int(d["embedding_version"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise QueryError(f"embedding statistics: malformed record ({exc})") from None
        if list(d.get("names", stats.names)) != list(stats.names):
            raise QueryError("embedding statistics: stored names do not match the period")
        return stats


def embedding_statistics(
    raw: xr.DataArray | da.Array | np.ndarray, period: Period, source: str = ""
) -> EmbeddingStats:
    """Mean and standard deviation of each dimension over the pixels (computes).

    ``raw`` is ``(dimension, y, x)`` (or ``(dimension, n)``); NaNs are left out per
    dimension. One pass over the data, accumulated in float64.
    """
    data = raw.data if isinstance(raw, xr.DataArray) else raw
    n = len(period.dimension_names)
    if data.shape[0] != n:
        raise QueryError(
            f"embedding_statistics: {data.shape[0]} dimensions, period {period} has {n}"
        )
    lib = da if isinstance(data, da.Array) else np
    flat = data.reshape((n, -1)).astype(np.float64)
    ok = lib.isfinite(flat)
    x = lib.where(ok, flat, 0.0)
    parts = (ok.sum(axis=1), x.sum(axis=1), (x * x).sum(axis=1))
    if lib is da:
        parts = da.compute(*parts)
    count, s1, s2 = (np.asarray(p, dtype=np.float64) for p in parts)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(count > 0, s1 / count, np.nan)
        var = np.where(count > 0, s2 / count - mean**2, np.nan)
    std = np.sqrt(np.maximum(var, 0.0))
    # float64 rounding can leave a tiny positive variance on a constant dimension
    std = np.where(std <= 1e-7 * np.maximum(np.abs(mean), 1.0), 0.0, std)
    std = np.where(count > 0, std, np.nan)
    return EmbeddingStats(period, mean, std, count.astype(np.int64), source)


def standardise_layer(raw: xr.DataArray, stats: EmbeddingStats) -> xr.DataArray:
    """Standardise a raw ``(dimension, ...)`` DataArray with ``stats`` (lazy stays lazy)."""
    names = [str(v) for v in raw["dimension"].values] if "dimension" in raw.coords else None
    if names is not None and names != list(stats.names):
        raise QueryError(
            f"standardise: the embedding's dimensions ({len(names)}, from {names[0]!r}) are "
            f"not those of the statistics (period {stats.period}, {len(stats.names)})"
        )
    if isinstance(raw.data, da.Array):
        data = raw.data.rechunk({0: -1}).map_blocks(
            standardise, stats.mean, stats.std, dtype=np.float32
        )
    else:
        data = standardise(raw.values, stats.mean, stats.std)
    out = raw.copy(data=data)
    out.attrs = {**raw.attrs, "standardised_with": stats.source}
    return out


# --------------------------------------------------------------------------------------
# Storing the layer in the cube, in one commit
# --------------------------------------------------------------------------------------


def store_embedding(
    cube: CubeLike,
    period: Any = DEFAULT_PERIOD,
    *,
    epoch_years: int | None = 10,
    time_chunk: int = _DEFAULT_TIME_CHUNK,
    message: str | None = None,
) -> str:
    """Compute the embedding of every pixel and store it in the cube, in ONE commit.

    Writes ``embedding`` (dimension, y, x) float32 raw features, ``embedding_clear_count``
    (y, x), ``dimension`` (names) and the standardisation statistics ``embedding_mean`` /
    ``embedding_std`` (dimension) computed over this cube's pixels; an earlier layer is
    replaced. The computation reads the snapshot the session starts from and runs on the
    active dask scheduler; workers write chunks through forked sessions, only this process
    commits, and nothing is stored if anything fails.

    Returns
    -------
    str
        The new snapshot id.

    Raises
    ------
    CubeError
        A read-only (pinned) view.
    CubeConflictError
        Another writer committed to the branch meanwhile; nothing was stored.
    """
    from ..cube._io import write_dask, zstd_codec

    c = resolve_cube(cube)
    per = Period.parse(period, epoch_years)
    if c.read_only:
        raise CubeError(
            f"store_embedding: this view of {c.location!r} is pinned to a snapshot and "
            "read-only; open the branch to write"
        )
    session = c.repository.writable_session(c.branch)
    base = Cube(c.repository, c.location, c.grid, snapshot=session.snapshot_id)
    layer = embedding_layer(base, per, time_chunk=time_chunk)
    group = zarr.open_group(session.store, mode="r+")
    for name in (LAYER, LAYER_COUNT, LAYER_MEAN, LAYER_STD, "dimension"):
        if name in group:
            del group[name]
    ny, nx = c.grid.shape
    cs = (min(_spatial_chunk(), ny), min(_spatial_chunk(), nx))
    names = np.array(per.dimension_names, dtype=np.dtypes.StringDType())
    zstd = zstd_codec()
    n = len(names)
    group.create_array(
        "dimension",
        data=names,
        chunks=(n,),
        compressors=[zstd],
        dimension_names=("dimension",),
        attributes={"long_name": "name of the embedding dimension"},
    )
    geo = {"grid_mapping": "spatial_ref", "coordinates": "spatial_ref"}
    group.create_array(
        LAYER,
        shape=(n, ny, nx),
        chunks=(n, *cs),
        dtype="float32",
        fill_value=np.nan,
        compressors=[zstd],
        dimension_names=("dimension", "y", "x"),
        attributes={
            "long_name": "location embedding: raw features (standardise with "
            "embedding_mean and embedding_std)",
            "units": "1",
            **layer.attrs,
            **geo,
        },
    )
    group.create_array(
        LAYER_COUNT,
        shape=(ny, nx),
        chunks=cs,
        dtype="int32",
        fill_value=0,
        compressors=[zstd],
        dimension_names=("y", "x"),
        attributes={"long_name": "clear observations in the embedding period", "units": "1", **geo},
    )
    sources = [layer[LAYER].data.rechunk((n, *cs)), layer[LAYER_COUNT].data.rechunk(cs)]
    write_dask(session, sources, [LAYER, LAYER_COUNT], 0)
    # statistics from the freshly written layer: a cheap read, not a second pass over scenes
    written = zarr.open_array(session.store, path=LAYER, mode="r")
    stats = embedding_statistics(
        da.from_zarr(written, chunks=written.chunks),
        per,
        source=f"{c.location}@{session.snapshot_id}",
    )
    for name, values, long_name in (
        (LAYER_MEAN, stats.mean, "mean of the dimension over the cube's pixels"),
        (LAYER_STD, stats.std, "standard deviation of the dimension over the cube's pixels"),
    ):
        group.create_array(
            name,
            data=values.astype(np.float64),
            chunks=(n,),
            compressors=[zstd],
            dimension_names=("dimension",),
            fill_value=np.nan,
            attributes={"long_name": long_name, "n_pixels": [int(v) for v in stats.n_pixels]},
        )
    meta = {
        "action": "store_embedding",
        "period": str(per),
        "epoch_years": per.epoch_years,
        "embedding_version": EMBEDDING_VERSION,
        "updm_dask_version": layer.attrs["updm_dask_version"],
    }
    try:
        snap = session.commit(message or f"store embedding {per}", metadata=meta)
    except icechunk.ConflictError as exc:
        raise CubeConflictError(
            f"another writer committed to branch {c.branch!r} of {c.location!r} first; the "
            f"embedding was not stored. Run it again. ({exc.message})"
        ) from None
    log.info("stored embedding %s of %s: snapshot %s", per, c.location, snap)
    return snap


@dataclass(frozen=True)
class StoredEmbedding:
    """An embedding layer read back from a cube (lazy) with its statistics."""

    raw: xr.DataArray
    clear_count: xr.DataArray
    stats: EmbeddingStats
    fresh: bool = field(default=True)


def stored_embedding(
    cube: CubeLike, period: Any = None, *, epoch_years: int | None = 10
) -> StoredEmbedding | None:
    """The embedding layer stored in the cube, or None when there is none.

    With ``period`` given, None also when the stored layer is for another period or epoch
    length. ``fresh`` is False when scenes were appended after the layer was computed.
    """
    c = resolve_cube(cube)
    ds = c.to_xarray()
    if LAYER not in ds.data_vars:
        return None
    a = ds[LAYER].attrs
    if int(a.get("embedding_version", -1)) != EMBEDDING_VERSION:
        return None
    stored = Period(int(a["period_start"]), int(a["period_end"]), a.get("epoch_years"))
    if period is not None and Period.parse(period, epoch_years) != stored:
        return None
    stats = EmbeddingStats(
        stored,
        np.asarray(ds[LAYER_MEAN].values, dtype=float),
        np.asarray(ds[LAYER_STD].values, dtype=float),
        np.asarray(ds[LAYER_MEAN].attrs.get("n_pixels", [0] * len(stored.dimension_names))),
        f"{c.location}@{a.get('source_snapshot', '?')}",
    )
    fresh = int(a.get("source_time_slots", -1)) == int(ds.sizes.get("time", 0))
    if not fresh:
        log.warning(
            "the embedding layer of %s predates scenes appended since; store it again",
            c.location,
        )
    return StoredEmbedding(ds[LAYER], ds[LAYER_COUNT], stats, fresh)


def cube_statistics(
    cube: CubeLike, period: Any = DEFAULT_PERIOD, *, epoch_years: int | None = 10
) -> EmbeddingStats:
    """The cube's own standardisation statistics for ``period``.

    Taken from a fresh stored layer of the same period when there is one, else computed
    from the per-pixel (radius 0) embedding of the whole cube (one pass over its scenes).
    """
    c = resolve_cube(cube)
    per = Period.parse(period, epoch_years)
    stored = stored_embedding(c, per)
    if stored is not None and stored.fresh:
        return stored.stats
    layer = embedding_layer(c, per)
    return embedding_statistics(layer[LAYER], per, source=f"{c.location}@{c.snapshot_id}")


def cube_vectors(
    cube: CubeLike,
    period: Any = DEFAULT_PERIOD,
    *,
    epoch_years: int | None = 10,
    radius: float = 0.0,
    stats: EmbeddingStats | None = None,
) -> tuple[xr.DataArray, xr.DataArray, EmbeddingStats]:
    """Standardised embedding of every pixel (lazy), its clear counts, and the stats used.

    A fresh stored layer of the same period is read when ``radius`` is 0; otherwise the
    embedding is computed lazily. ``stats`` default to the cube's own
    (:func:`cube_statistics`).

    Returns
    -------
    (vectors, clear_count, stats)
        ``vectors`` (dimension, y, x) float32, NaN where a dimension has no data.
    """
    c = resolve_cube(cube)
    per = Period.parse(period, epoch_years)
    stored = stored_embedding(c, per) if radius == 0 else None
    if stored is not None and stored.fresh:
        raw, count = stored.raw, stored.clear_count
        own = stored.stats
    else:
        layer = embedding_layer(c, per, radius=radius)
        raw, count = layer[LAYER], layer[LAYER_COUNT]
        own = None
    if stats is None:
        stats = own if own is not None else cube_statistics(c, per)
    stats.check(per)
    return standardise_layer(raw, stats), count, stats


# --------------------------------------------------------------------------------------
# Points and neighbourhoods
# --------------------------------------------------------------------------------------


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

        def clean(a: np.ndarray) -> list:
            return [float(v) if math.isfinite(v) else None for v in a]

        return {
            "cube": self.cube,
            "lon": self.lon,
            "lat": self.lat,
            "x": self.x,
            "y": self.y,
            "row": self.row,
            "col": self.col,
            "radius_m": self.radius_m,
            "n_pixels": self.n_pixels,
            "clear_count": self.clear_count,
            "period": str(self.period),
            "epoch_years": self.period.epoch_years,
            "embedding_version": EMBEDDING_VERSION,
            "standardised_with": self.stats_source,
            "names": list(self.names),
            "vector": clean(self.vector),
            "raw": clean(self.raw),
        }

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


def _window_sums(group: zarr.Group, window: Any, period: Period) -> np.ndarray:
    keep, epoch, t, phase = _period_slots(group, period)
    values = {
        n: np.asarray(group[n].oindex[keep, window.rows, window.cols])[:, window.mask]
        for n in INPUTS
    }
    sums = embedding_sums(*(values[n] for n in INPUTS), epoch, t, phase, period.n_epochs)
    return sums.sum(axis=1)


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
        See :func:`embedding_layer`.
    stats : EmbeddingStats, optional
        Standardisation statistics (default: the cube's own, :func:`cube_statistics`).
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
    c = resolve_cube(cube)
    per = Period.parse(period, epoch_years)
    if stats is None:
        stats = cube_statistics(c, per)
    stats.check(per)
    x, y = to_grid_xy(c.grid, lon, lat, crs)
    win = point_window(
        c.grid, float(x), float(y), radius, what=f"point ({lon}, {lat}) of cube {c.location!r}"
    )
    group, _ = _scene_group(c)
    sums = _window_sums(group, win, per)
    raw = features_from_sums(sums[:, None], per.n_epochs)[:, 0]
    vec = standardise(raw[:, None], stats.mean, stats.std)[:, 0]
    plon, plat = grid_lonlat(c.grid, x, y)
    clear = int(sum(sums[e * N_EPOCH_SUMS] for e in range(per.n_epochs)))
    return PointEmbedding(
        per.dimension_names,
        raw,
        vec,
        float(plon),
        float(plat),
        float(x),
        float(y),
        win.row,
        win.col,
        float(radius),
        int(win.mask.sum()),
        clear,
        per,
        c.location,
        stats.source,
    )


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
    c = resolve_cube(cube)
    per = Period.parse(period, epoch_years)
    lo = np.atleast_1d(np.asarray(lon, dtype=np.float64))
    la = np.atleast_1d(np.asarray(lat, dtype=np.float64))
    radii = np.broadcast_to(np.asarray(radius, dtype=np.float64), lo.shape)
    if la.shape != lo.shape:
        raise QueryError(f"points: {lo.size} longitudes but {la.size} latitudes")
    if stats is None:
        stats = cube_statistics(c, per)
    return [
        point_embedding(c, a, b, radius=float(r), period=per, stats=stats, crs=crs)
        for a, b, r in zip(lo, la, radii, strict=True)
    ]
