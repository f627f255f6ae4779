"""Scenes: find Landsat scenes, open them lazily, read their quality rules.

- :func:`discover_scenes` finds scenes in folders, globs, ``.tar.gz`` archives and URLs;
  :func:`discover_stac` in STAC Items, ItemCollections and STAC API searches. Both return a
  :class:`Discovery`: :class:`SceneSource` records (paths, never open files) sorted by
  acquisition time, and the problems met on the way.
- :func:`open_scene` turns one scene into a dask-backed :class:`xarray.Dataset` without
  reading a pixel.
- :func:`input_roots` and :func:`file_kind` say which local files a job may read: under
  its input roots (symlinks followed) and regular files only (a FIFO is never opened).
- :func:`scene_mask_params` gives the quality-flag rules of an opened scene for the numpy
  kernel :func:`updm_dask.science.masks.qa_flags` (the bits are defined there) and its
  compiled twin :func:`updm_dask.science.quality.quality_flags`.

Importing this package sets ``CPL_VSIL_GZIP_WRITE_PROPERTIES=NO`` in the process
environment (unless already set): GDAL would otherwise write a ``<archive>.properties``
side-car next to every ``.tar.gz`` it reads through ``/vsitar/``, i.e. into the (possibly
read-only or shared) folder holding the scene archives.
"""

from __future__ import annotations

from ._roots import file_kind, input_roots
from .discover import Discovery, SceneSource, discover_scenes, scene_source
from .masks import scene_mask_params
from .open import RasterStack, open_scene, resolve_scene
from .stac import STAC_BAND_KEYS, discover_stac

__all__ = [
    "STAC_BAND_KEYS",
    "Discovery",
    "RasterStack",
    "SceneSource",
    "discover_scenes",
    "discover_stac",
    "file_kind",
    "input_roots",
    "open_scene",
    "resolve_scene",
    "scene_mask_params",
    "scene_source",
]
