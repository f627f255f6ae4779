"""Dask wrappers of the embedding kernels: sums over a whole cube, focal sums, features.

The array tier between :mod:`._kernel` (numpy) and :mod:`.layer` (cubes in, labelled xarray
out): explicit dtypes, chunks, meta and task names; nothing is computed here.
"""

from __future__ import annotations

from collections.abc import Sequence

import dask.array as da
import numpy as np
from scipy import ndimage

from ..errors import QueryError
from ._kernel import INPUTS, N_EPOCH_SUMS, embedding_sums, features_from_sums, n_sums

__all__ = ["DEFAULT_TIME_CHUNK", "clear_count", "focal_sums", "lazy_features", "lazy_sums"]

#: Scenes (time slots) one task reduces.
DEFAULT_TIME_CHUNK = 32


def _sums_block(*blocks: np.ndarray, n_epochs: int) -> np.ndarray:
    return embedding_sums(*blocks, n_epochs=n_epochs)[None]


def lazy_sums(
    arrays: Sequence[da.Array],
    epoch: np.ndarray,
    t: np.ndarray,
    phase: np.ndarray,
    n_epochs: int,
    *,
    time_chunk: int,
    spatial_chunk: int,
) -> da.Array:
    """Dask wrapper of :func:`~._kernel.embedding_sums` over a whole cube.

    ``arrays`` are the eight :data:`~._kernel.INPUTS` as ``(time, y, x)`` dask arrays; the
    result is ``(n_sums, y, x)`` float64, one spatial chunk of ``spatial_chunk`` pixels.
    Each task reduces ``time_chunk`` slots of one spatial block; the partial sums are then
    added in a tree, so memory per task is bounded by ``time_chunk x spatial_chunk**2``
    pixels, whatever the number of scenes.
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


def clear_count(sums: da.Array | np.ndarray, n_epochs: int) -> da.Array | np.ndarray:
    """Clear observations per pixel, from ``(n_sums, ...)`` sums (lazy stays lazy)."""
    idx = [e * N_EPOCH_SUMS for e in range(n_epochs)]  # the clear count leads each epoch
    return sums[idx].sum(axis=0).astype(np.int32)
