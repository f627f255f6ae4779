"""Location embeddings from UPDM cubes: what a place is and how it changed since the 1970s.

An embedding is a fixed-length, named vector per pixel (or per neighbourhood of a point)
computed from the cube's clear observations over a period split into epochs: per epoch the
illumination-normalised coefficients, MVIUPD level and spread, land-cover class frequencies
and fit residual; over the period the MVIUPD trend and seasonal amplitude. Vectors are
standardised with per-dimension statistics stored alongside them. See ``EMBEDDINGS.md`` in
this package for the exact definitions, NaN rules and the evaluation.

- :func:`embedding_layer` - every pixel of a cube, lazily; :func:`store_embedding` writes
  it into the cube (one Icechunk commit); :func:`stored_embedding` reads it back.
- :func:`point_embedding` / :func:`points_embedding` - a point or neighbourhood.
- :func:`similar_places` - the k most similar places in one or more cubes (table, PNG).
- :func:`fit_encoder` / :class:`LocationEncoder` / :func:`load_encoder` - a
  spherical-harmonics location encoder that answers anywhere, with a far-from-data flag.
- :func:`evaluate_embedding` - downstream scores vs position-only features.
"""

from __future__ import annotations

from ._kernel import embedding_sums, features_from_sums, impute_missing, standardise
from ._period import (
    DEFAULT_PERIOD,
    EMBEDDING_VERSION,
    EPOCH_FEATURES,
    PERIOD_FEATURES,
    Period,
)
from .embedding import (
    EmbeddingStats,
    PointEmbedding,
    StoredEmbedding,
    cube_statistics,
    cube_vectors,
    embedding_layer,
    embedding_statistics,
    point_embedding,
    points_embedding,
    standardise_layer,
    store_embedding,
    stored_embedding,
)
from .encoder import (
    EncodedLocations,
    LocationEncoder,
    fit_encoder,
    fit_location_encoder,
    load_encoder,
    real_sph_harm,
)
from .similar import SimilarPlaces, similar_places, vector_distance

# evaluate is imported on first use (``python -m updm_dask.embed.evaluate`` runs it as a
# script, which must not find it already imported)
_LAZY = {"EvaluationTable", "evaluate_embedding"}


def __getattr__(name: str):
    if name in _LAZY:
        from . import evaluate

        return getattr(evaluate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_PERIOD",
    "EMBEDDING_VERSION",
    "EPOCH_FEATURES",
    "PERIOD_FEATURES",
    "EmbeddingStats",
    "EncodedLocations",
    "EvaluationTable",
    "LocationEncoder",
    "Period",
    "PointEmbedding",
    "SimilarPlaces",
    "StoredEmbedding",
    "cube_statistics",
    "cube_vectors",
    "embedding_layer",
    "embedding_statistics",
    "embedding_sums",
    "evaluate_embedding",
    "features_from_sums",
    "fit_encoder",
    "fit_location_encoder",
    "impute_missing",
    "load_encoder",
    "point_embedding",
    "points_embedding",
    "real_sph_harm",
    "similar_places",
    "standardise",
    "standardise_layer",
    "store_embedding",
    "stored_embedding",
    "vector_distance",
]
