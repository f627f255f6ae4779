"""The embedding of every pixel of a cube: computed lazily, stored in the cube, read back.

:func:`embedding_layer` computes it (dask, nothing computed until asked);
:func:`store_embedding` stores it in the cube as the derived layer ``embedding`` in ONE
commit, through the cube's derived-layer API; :func:`stored_embedding` reads it back;
:func:`cube_statistics` and :func:`cube_vectors` give the cube's standardisation statistics
and standardised vectors, from a fresh stored layer when there is one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr

from .. import config
from ..cube import (
    Cube,
    CubeLike,
    DerivedSession,
    as_collection,
    list_derived,
    read_derived,
    resolve_cube,
)
from ..errors import QueryError
from ._features import DEFAULT_TIME_CHUNK, clear_count, focal_sums, lazy_features, lazy_sums
from ._geo import disk_footprint
from ._period import DEFAULT_PERIOD, EMBEDDING_VERSION, Period
from ._scenes import SceneInputs, n_time_slots
from ._stats import EmbeddingStats, embedding_statistics, pooled_statistics, standardise_layer

__all__ = [
    "LAYER",
    "LAYER_COUNT",
    "LAYER_MEAN",
    "LAYER_STD",
    "StoredEmbedding",
    "cube_statistics",
    "cube_vectors",
    "embedding_layer",
    "spatial_chunk",
    "store_embedding",
    "stored_embedding",
]

log = logging.getLogger("updm_dask.embed")

#: Names of the variables of the embedding layer; ``LAYER`` also names the derived layer
#: stored in the cube.
LAYER = "embedding"
LAYER_COUNT = "embedding_clear_count"
LAYER_MEAN = "embedding_mean"
LAYER_STD = "embedding_std"


def spatial_chunk() -> int:
    """Spatial chunk edge of the layer: ``updm.chunks.yearly``, as the cube's per-year
    layers (both are read as long series over small areas)."""
    c = config.get("chunks.yearly")
    if isinstance(c, bool) or not isinstance(c, int) or c <= 0:
        raise QueryError(
            f"dask config updm.chunks.yearly: expected a positive whole number of pixels, got {c!r}"
        )
    return c


def embedding_layer(
    cube: CubeLike,
    period: Any = DEFAULT_PERIOD,
    *,
    epoch_years: int | None = 10,
    radius: float = 0.0,
    time_chunk: int = DEFAULT_TIME_CHUNK,
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
    scenes = SceneInputs.open(c, per)
    cs = spatial_chunk()
    sums = lazy_sums(
        scenes.lazy(time_chunk, cs),
        scenes.epoch,
        scenes.t,
        scenes.phase,
        per.n_epochs,
        time_chunk=time_chunk,
        spatial_chunk=cs,
    )
    if radius > 0:
        sums = focal_sums(sums, disk_footprint(radius, c.grid.resolution))
    coords = {"dimension": list(per.dimension_names), "y": c.grid.y, "x": c.grid.x}
    out = xr.Dataset(
        {
            LAYER: (
                ("dimension", "y", "x"),
                lazy_features(sums, per.n_epochs),
                {"long_name": "location embedding (raw)"},
            ),
            LAYER_COUNT: (
                ("y", "x"),
                clear_count(sums, per.n_epochs),
                {"long_name": "clear observations in the period", "units": "1"},
            ),
        },
        coords=coords,
        attrs=_layer_attrs(c, per, radius, scenes.n_slots, scenes.snapshot),
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
# Storing the layer in the cube, in one commit
# --------------------------------------------------------------------------------------


def store_embedding(
    cube: CubeLike,
    period: Any = DEFAULT_PERIOD,
    *,
    epoch_years: int | None = 10,
    time_chunk: int = DEFAULT_TIME_CHUNK,
    message: str | None = None,
) -> str:
    """Compute the embedding of every pixel and store it in the cube, in ONE commit.

    Stores the derived layer ``embedding``: ``embedding`` (dimension, y, x) float32 raw
    features, ``embedding_clear_count`` (y, x), ``dimension`` (names) and the
    standardisation statistics ``embedding_mean`` / ``embedding_std`` (dimension) computed
    over this cube's pixels; an earlier layer is replaced. The computation reads the
    snapshot the commit extends and runs on the active dask scheduler; workers write
    chunks through forked sessions, only this process commits, and nothing is stored if
    anything fails.

    Returns
    -------
    str
        Id of the snapshot that holds the layer.

    Raises
    ------
    CubeError
        A read-only (pinned) view.
    CubeConflictError
        Another writer committed to the branch meanwhile; nothing was stored.
    """
    c = resolve_cube(cube)
    per = Period.parse(period, epoch_years)
    meta = {
        "action": "store_embedding",
        "period": str(per),
        "epoch_years": per.epoch_years,
        "embedding_version": EMBEDDING_VERSION,
    }
    with DerivedSession(
        c, message=message or f"store embedding {per}", metadata=meta, what="store_embedding"
    ) as session:
        layer = embedding_layer(session.base, per, time_chunk=time_chunk)
        session.write(LAYER, _stored_form(layer, per))
        # statistics from the freshly written layer: a cheap read, not a second pass over
        # the scenes
        stats = embedding_statistics(
            session.read(LAYER)[LAYER], per, source=f"{c.location}@{session.base.snapshot_id}"
        )
        session.write(LAYER, _stats_form(stats), replace=False)
    log.info("stored embedding %s of %s: snapshot %s", per, c.location, session.snapshot_id)
    return session.snapshot_id


def _stored_form(layer: xr.Dataset, period: Period) -> xr.Dataset:
    """The layer as stored: raw features and clear counts, described for plain readers."""
    return xr.Dataset(
        {
            LAYER: (
                layer[LAYER].dims,
                layer[LAYER].data,
                {
                    "long_name": "location embedding: raw features (standardise with "
                    "embedding_mean and embedding_std)",
                    "units": "1",
                    **layer.attrs,
                },
            ),
            LAYER_COUNT: (
                ("y", "x"),
                layer[LAYER_COUNT].data,
                {"long_name": "clear observations in the embedding period", "units": "1"},
            ),
        },
        coords={
            "dimension": (
                "dimension",
                list(period.dimension_names),
                {"long_name": "name of the embedding dimension"},
            )
        },
        attrs=layer.attrs,
    )


def _stats_form(stats: EmbeddingStats) -> xr.Dataset:
    n_pixels = [int(v) for v in stats.n_pixels]
    return xr.Dataset(
        {
            name: (
                "dimension",
                values.astype(np.float64),
                {"long_name": text, "n_pixels": n_pixels},
            )
            for name, values, text in (
                (LAYER_MEAN, stats.mean, "mean of the dimension over the cube's pixels"),
                (
                    LAYER_STD,
                    stats.std,
                    "standard deviation of the dimension over the cube's pixels",
                ),
            )
        }
    )


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
    if LAYER not in list_derived(c):
        return None
    ds = read_derived(c, LAYER)
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
    fresh = int(a.get("source_time_slots", -1)) == n_time_slots(c)
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


def cube_statistics_of(cube: Any, period: Any = DEFAULT_PERIOD, **kwargs: Any) -> EmbeddingStats:
    """:func:`cube_statistics` of a cube, or of a whole tiled collection (its tiles'
    statistics pooled, so that every tile's vectors are standardised alike)."""
    collection = as_collection(cube)
    if collection is None:
        return cube_statistics(cube, period, **kwargs)
    tiles = [collection.open_tile(t) for t in collection.tiles()]
    parts = [cube_statistics(t, period, **kwargs) for t in tiles]
    return pooled_statistics(parts, source=f"{collection.location} ({len(parts)} tiles)")


def cubes_of(cube: Any) -> list[Cube]:
    """The cubes behind ``cube``: itself, or every tile of a tiled collection."""
    collection = as_collection(cube)
    if collection is None:
        return [resolve_cube(cube)]
    return [collection.open_tile(t) for t in collection.tiles()]


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
