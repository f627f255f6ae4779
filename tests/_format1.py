"""Writing format-1 cubes (float32 scene layers) through today's write path.

Format 1 is what the package wrote before the scene layers were packed. The package keeps
its table (``_FORMAT_1_FLOAT_LAYERS``) for the migration; swapping it in for the current one
and the format number makes ``create_cube`` / ``append_scenes`` / ``rebuild_yearly`` write
exactly what they wrote then (float32, NaN fill, zstd), and lets the readers read it, so
tests can build real format-1 cubes and the float results to compare with.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pytest

from updm_dask.cube import _cube, _rebuild, _scenes, _schema, _yearly

FORMAT_1_SCENE_VARIABLES = {**_schema.SCENE_VARIABLES, **_schema._FORMAT_1_FLOAT_LAYERS}

#: The per-year layers as written before the median was packed (format 1, and format-2
#: cubes of earlier versions): the median float32 with a NaN fill, zstd.
FLOAT_MEDIAN_YEARLY_VARIABLES = {
    **_schema.YEARLY_VARIABLES,
    "yearly_mviupd_median": _schema.VarSpec(
        "float32",
        np.nan,
        {"long_name": "median MVIUPD of the clear observations of the year", "units": "1"},
    ),
}


@contextlib.contextmanager
def float_yearly_median() -> Iterator[None]:
    """Inside: the package builds per-year layers with the float32 median of before."""
    with pytest.MonkeyPatch.context() as m:
        for module in (_schema, _rebuild, _yearly):
            m.setattr(module, "YEARLY_VARIABLES", FLOAT_MEDIAN_YEARLY_VARIABLES)
        yield


@contextlib.contextmanager
def format_1() -> Iterator[None]:
    """Inside: the package writes and reads format-1 cubes (and refuses format 2)."""
    with pytest.MonkeyPatch.context() as m, float_yearly_median():
        for module in (_schema, _cube, _scenes):
            m.setattr(module, "SCENE_VARIABLES", FORMAT_1_SCENE_VARIABLES)
        m.setattr(_schema, "CUBE_FORMAT", 1)
        yield
