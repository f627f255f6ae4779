"""Scenes: find Landsat scenes, open them lazily, flag their pixels' quality.

- :func:`discover_scenes` finds scenes in folders, globs, ``.tar.gz`` archives and URLs;
  :func:`discover_stac` in STAC Items, ItemCollections and STAC API searches. Both return a
  :class:`Discovery`: :class:`SceneSource` records (paths, never open files) sorted by
  acquisition time, and the problems met on the way.
- :func:`open_scene` turns one scene into a dask-backed :class:`xarray.Dataset` without
  reading a pixel.
- :func:`qa_flags` (numpy kernel), :func:`qa_flags_array` (dask) and
  :func:`scene_qa_flags` (labelled) compute per-pixel quality bit flags.

Importing this package sets ``CPL_VSIL_GZIP_WRITE_PROPERTIES=NO`` in the process
environment (unless already set): GDAL would otherwise write a ``<archive>.properties``
side-car next to every ``.tar.gz`` it reads through ``/vsitar/``, i.e. into the (possibly
read-only or shared) folder holding the scene archives.
"""

from __future__ import annotations

from ..science.masks import (
    CLEAR_MASK_BITS,
    CLOUD,
    CLOUD_SHADOW,
    FILL,
    FLAG_MASKS,
    FLAG_MEANINGS,
    NO_QA_CLOUD_TEST,
    SATURATED,
    SLC_FAILURE_DATE,
    SLC_GAP,
    MaskParams,
    mask_params,
    qa_flags,
    qa_flags_array,
    scene_qa_flags,
)
from .discover import Discovery, SceneSource, discover_scenes, scene_source
from .open import RasterStack, open_scene, resolve_scene
from .stac import STAC_BAND_KEYS, discover_stac

__all__ = [
    "CLEAR_MASK_BITS",
    "CLOUD",
    "CLOUD_SHADOW",
    "FILL",
    "FLAG_MASKS",
    "FLAG_MEANINGS",
    "NO_QA_CLOUD_TEST",
    "SATURATED",
    "SLC_FAILURE_DATE",
    "SLC_GAP",
    "STAC_BAND_KEYS",
    "Discovery",
    "MaskParams",
    "RasterStack",
    "SceneSource",
    "discover_scenes",
    "discover_stac",
    "mask_params",
    "open_scene",
    "qa_flags",
    "qa_flags_array",
    "resolve_scene",
    "scene_qa_flags",
    "scene_source",
]
