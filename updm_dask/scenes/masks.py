"""A scene's quality rules as the pipeline needs them: per scene, and over whole rows.

The bit flags themselves are defined by the numpy kernel
:func:`~updm_dask.science.masks.qa_flags` and computed, bit for bit the same, by the
compiled :func:`~updm_dask.science.quality.quality_flags` inside the pipeline's fused task
per chunk. Two things about them belong to the scene rather than to a chunk, and live here:

- :func:`scene_mask_params`: the flag rules of an opened scene (its band order, the
  rasters' declared nodata, the flavour of its QA band);
- :func:`slc_extent_args`: for ETM+ scenes after the Scan Line Corrector failure, the first
  and last valid column of every row of the whole scene, so that the gap rule sees whole
  rows, not chunk-sized pieces of them.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import xarray as xr

from ..errors import SceneError
from ..science.masks import MaskParams, fill_mask, mask_params

__all__ = ["scene_mask_params", "slc_extent_args"]


def scene_mask_params(scene: xr.Dataset) -> MaskParams:
    """The flag rules of a scene opened by :func:`~updm_dask.scenes.open_scene`.

    Parameters
    ----------
    scene
        ``dn`` (band, y, x) with its declared ``nodatavals``, optional ``qa`` (with its
        ``qa_kind``), the metadata in ``attrs["updm_metadata"]``.

    Returns
    -------
    MaskParams
        For :func:`~updm_dask.science.masks.qa_flags`, bands in the order of ``dn``.

    Raises
    ------
    SceneError
        When the dataset carries no metadata (it was not opened by ``open_scene``).
    """
    metadata = scene.attrs.get("updm_metadata")
    if metadata is None:
        raise SceneError("dataset has no attrs['updm_metadata']; open it with scenes.open_scene")
    dn = scene["dn"]
    return mask_params(
        metadata,
        band_labels=[str(b) for b in dn["band"].values],
        nodata=dn.attrs.get("nodatavals"),
        qa_kind=scene["qa"].attrs.get("qa_kind") if "qa" in scene else None,
    )


#: First column of a row without a valid pixel (larger than any column) and last (-1).
_NO_FIRST, _NO_LAST = np.iinfo(np.int64).max, -1


def _extent_block(dn, *rest, params, has_qa, has_radsat):
    """First and last valid column of every row of one block: (rows, 1, 2) int64.

    The fill mask and both per-row reductions in one task per block: as separate dask
    steps they were three tasks per block (the mask, a minimum, a maximum) for the
    scheduler to place and the blocks' masks to move between them.
    """
    rest = list(rest)
    cols = rest.pop()
    qa = rest.pop(0) if has_qa else None
    radsat = rest.pop(0) if has_radsat else None
    fill = fill_mask(dn, qa, radsat, params)
    out = np.empty((fill.shape[0], 1, 2), dtype=np.int64)
    out[:, 0, 0] = np.where(fill, _NO_FIRST, cols[None, :]).min(axis=1, initial=_NO_FIRST)
    out[:, 0, 1] = np.where(fill, _NO_LAST, cols[None, :]).max(axis=1, initial=_NO_LAST)
    return out


def _combine_extents(e: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """The extents of blocks side by side along x: the smallest first, the largest last."""
    (x,) = axis
    first = e[..., 0:1].min(axis=x, keepdims=True)
    last = e[..., 1:2].max(axis=x, keepdims=True)
    out = np.concatenate([first, last], axis=-1)
    return out if keepdims else out.squeeze(axis=x)


def slc_extent_args(
    args: list,
    params: MaskParams,
    *,
    has_qa: bool,
    has_radsat: bool,
    x_chunks: tuple[int, ...],
    token: str,
) -> list:
    """Extra blockwise arguments for the SLC-gap rule: ``[extent, "ye", cols, "x"]``.

    Parameters
    ----------
    args
        The blockwise arguments of the DN stack: ``dn, "byx"`` then ``qa`` / ``radsat`` as
        ``"yx"`` when present.
    params
        The scene's :class:`~updm_dask.science.masks.MaskParams`.
    has_qa, has_radsat
        Which of ``qa`` and ``radsat`` ``args`` holds.
    x_chunks
        The chunks of the x axis.
    token
        Makes the task names unique to the scene's graph.

    Returns
    -------
    list
        Empty for scenes without SLC gaps. Otherwise the first and last valid column of
        every row, reduced over all x-chunks (``extent``, dims ``"ye"``), and the scene
        column numbers (``cols``, dim ``"x"``) that tell each block its first column.
    """
    if not params.slc_off:
        return []
    # named after the scene's graph: da.arange's name depends on its size only, so the
    # graphs of two tiles run at once would share a key the scheduler warns about
    cols = da.from_array(np.arange(sum(x_chunks)), chunks=(x_chunks,), name="updm-cols-" + token)
    per_block = da.blockwise(
        _extent_block,
        "yxe",
        *args,
        cols,
        "x",
        new_axes={"e": 2},
        adjust_chunks={"x": 1},
        concatenate=True,
        dtype=np.int64,
        meta=np.empty((0, 0, 0), dtype=np.int64),
        name="updm-fill-" + token,
        params=params,
        has_qa=has_qa,
        has_radsat=has_radsat,
    )
    extent = da.reduction(
        per_block,
        chunk=_combine_extents,
        combine=_combine_extents,
        aggregate=_combine_extents,
        axis=1,
        dtype=np.int64,
        concatenate=True,
        meta=np.empty((0, 0), dtype=np.int64),
        name="updm-extent-" + token,
    )
    return [extent, "ye", cols, "x"]
