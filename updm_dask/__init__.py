"""updm_dask: the Universal Pattern Decomposition Method for the whole Landsat record on Dask.

Every pixel of any Landsat sensor since 1972 (MSS, TM, ETM+, OLI, OLI-2) is expressed as a
non-negative mix of standard spectral patterns (water, vegetation, soil and a supplementary
pattern). The coefficients are sensor-independent, so one vegetation index (MVIUPD) and one
rule table classify cloud, water, vegetation and non-vegetated land across the record; the
results go into versioned Zarr v3 cubes in Icechunk repositories.

Where things are (each concern in one room; dependencies point down this list)
-------------------------------------------------------------------------------
science
    The method as numpy kernels: sensors, calibration (eqs. 1-7), masks, patterns
    (eqs. 12-16), decompose (exact NNLS, eqs. 8-11), classify (MVIUPD, rule tables).
    The stable paths ``updm_dask.calibration``, ``.patterns``, ``.decompose`` and
    ``.classify`` re-export them.
metadata
    Landsat MTL readers (ODL text, XML, JSON, ESPA): ``read_mtl``.
scenes
    Finding scenes (folders, archives, URLs, STAC) and opening them lazily: ``open_scene``.
geo
    The cube grid, points on it, and regridding scenes onto it.
pipeline
    One scene, DN to land cover, fused into one dask task per chunk: ``process_scene``.
cube
    Icechunk cubes: ``create_cube``, ``open_cube``, the scene ledger, per-year layers.
jobs
    Job specs (TOML), the Dask cluster, running a job in committed batches.
query, embed
    Reading cubes: point series, areas, trends, change, exports; location embeddings.
demo
    A synthetic 1973-2024 archive made by running the physics forwards.
cli
    The ``updm`` command (parsing and printing only).

A first session
---------------
>>> from updm_dask.scenes import open_scene                   # doctest: +SKIP
>>> from updm_dask.pipeline import process_scene              # doctest: +SKIP
>>> layers = process_scene(open_scene("LC08_L1TP_..._T1/"))   # doctest: +SKIP

From the shell: ``updm demo``, ``updm run job.toml``, ``updm info CUBE``,
``updm query point CUBE --lonlat LON LAT``. Every error the package raises on purpose is a
:class:`updm_dask.errors.UpdmError`.

Documentation: the tutorial, the job-spec reference, the cube schema and the how-tos are in
``docs/`` (``./bootstrap docs`` builds the site into ``site/``).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import config

# The error classes stay importable from the package root (``from updm_dask import
# SceneError``) but are left out of __all__, so help(updm_dask) shows the overview above.
from .errors import (
    CalibrationError,
    CubeError,
    DecompositionError,
    GridError,
    JobError,
    JobSpecError,
    MetadataError,
    PatternError,
    PointError,
    QueryError,
    RuleError,
    SceneError,
    SensorError,
    UpdmError,
    VersionError,
)

# The updm.* defaults of updm.yaml, in every process that imports the package (workers too).
config.register_defaults()

try:
    __version__ = version("updm_dask")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
