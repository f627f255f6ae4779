"""A scene's quality rules as the pipeline needs them: per scene, and over whole rows.

The bit flags themselves are computed by the numpy kernel
:func:`~updm_dask.science.masks.qa_flags`, inside the pipeline's fused task per chunk. Two
things about them belong to the scene rather than to a chunk, and live here:

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


def _fill_block(dn, *rest, params, has_qa, has_radsat):
    rest = list(rest)
    qa = rest.pop(0) if has_qa else None
    radsat = rest.pop(0) if has_radsat else None
    return fill_mask(dn, qa, radsat, params)


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
    fill = da.blockwise(
        _fill_block,
        "yx",
        *args,
        concatenate=True,
        dtype=bool,
        meta=np.empty((0, 0), dtype=bool),
        name="updm-fill-" + token,
        params=params,
        has_qa=has_qa,
        has_radsat=has_radsat,
    )
    # named after the scene's graph: da.arange's name depends on its size only, so the
    # graphs of two tiles run at once would share a key the scheduler warns about
    cols = da.from_array(np.arange(sum(x_chunks)), chunks=(x_chunks,), name="updm-cols-" + token)
    first = da.where(fill, np.iinfo(np.int64).max, cols[None, :]).min(axis=1)
    last = da.where(fill, -1, cols[None, :]).max(axis=1)
    extent = da.stack([first, last], axis=1).rechunk({1: 2})
    return [extent, "ye", cols, "x"]
