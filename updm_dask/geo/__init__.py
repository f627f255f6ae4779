"""Geometry: the cube grid (CRS, transform, shape), points on it, and regridding onto it.

- :mod:`~updm_dask.geo.grid`: :class:`CubeGrid`, snapping, the stored dict form.
- :mod:`~updm_dask.geo.regrid`: :func:`to_grid` and the block reductions behind it.
- :mod:`~updm_dask.geo.georef`: a CRS and transform written as rioxarray writes them, the
  CRS's CF attributes computed once per CRS.
"""

from .grid import CubeGrid
from .regrid import LAND_COVER_PRIORITY, block_mean, block_mode, block_pick, to_grid

__all__ = [
    "LAND_COVER_PRIORITY",
    "CubeGrid",
    "block_mean",
    "block_mode",
    "block_pick",
    "to_grid",
]
