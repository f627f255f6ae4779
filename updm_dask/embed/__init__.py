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

Layout, one concern a module: ``_period`` (periods, epochs, dimension names), ``_kernel``
(numpy kernels), ``_features`` (their dask wrappers), ``_scenes`` (the cube's scene arrays
an embedding reads), ``_stats`` (standardisation), ``layer`` (every pixel: compute, store in
the cube as a derived layer, read back), ``points`` (a place; points files), ``similar``,
``encoder`` (with its numpy kernels ``_harmonics`` and ``_ridge``), ``evaluate``,
``synthetic`` (a cube of known content), and ``_geo`` / ``_format`` (disks and distances;
CSV and JSON output).
"""

from __future__ import annotations

from ._period import Period
from .encoder import LocationEncoder, fit_encoder, load_encoder
from .evaluate import evaluate_embedding
from .layer import embedding_layer, store_embedding, stored_embedding
from .points import point_embedding, points_embedding
from .similar import similar_places

__all__ = [
    "LocationEncoder",
    "Period",
    "embedding_layer",
    "evaluate_embedding",
    "fit_encoder",
    "load_encoder",
    "point_embedding",
    "points_embedding",
    "similar_places",
    "store_embedding",
    "stored_embedding",
]
