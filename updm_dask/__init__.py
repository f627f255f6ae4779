"""updm_dask: the Universal Pattern Decomposition Method for the whole Landsat record on Dask."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import config
from .errors import (
    CalibrationError,
    CubeError,
    DecompositionError,
    GridError,
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

__all__ = [
    "CalibrationError",
    "CubeError",
    "DecompositionError",
    "GridError",
    "JobSpecError",
    "MetadataError",
    "PatternError",
    "PointError",
    "QueryError",
    "RuleError",
    "SceneError",
    "SensorError",
    "UpdmError",
    "VersionError",
    "__version__",
]
