"""Writing a CRS and a transform onto xarray objects as rioxarray writes them, faster.

``obj.rio.write_crs(crs)`` turns the CRS into its CF grid-mapping attributes
(``pyproj.CRS.to_cf``) every time it is called: about 6 ms, and a job's driver called it
three times per scene, for the same few CRSs. :func:`write_georeference` asks rioxarray
once per CRS for those attributes (:func:`grid_mapping_attrs`) and puts the same
grid-mapping coordinate, attributes and encodings on the object that
``obj.rio.write_crs(crs).rio.write_transform(transform)`` puts there, so that
``obj.rio.crs`` and ``obj.rio.transform()`` read them back as before.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine

__all__ = ["GRID_MAPPING", "grid_mapping_attrs", "write_georeference"]

#: Name of the grid-mapping coordinate (rioxarray's default).
GRID_MAPPING = "spatial_ref"


@functools.lru_cache(maxsize=64)
def _attrs_of(crs_wkt: str) -> tuple[tuple[str, Any], ...]:
    probe = xr.DataArray(np.zeros((1, 1), np.uint8), dims=("y", "x")).rio.write_crs(crs_wkt)
    attrs = dict(probe.coords[probe.rio.grid_mapping].attrs)
    attrs.pop("GeoTransform", None)  # the probe has none; each caller writes its own
    return tuple(attrs.items())


def grid_mapping_attrs(crs: Any) -> dict[str, Any]:
    """The CF grid-mapping attributes rioxarray writes for ``crs``, computed once per CRS.

    Parameters
    ----------
    crs
        A WKT string or anything with ``to_wkt()`` (a rasterio or pyproj CRS).

    Returns
    -------
    dict
        A new dict: ``pyproj.CRS.to_cf()``'s attributes, ``spatial_ref`` and ``crs_wkt``,
        as ``obj.rio.write_crs(crs)`` writes them; no ``GeoTransform``.
    """
    wkt = crs if isinstance(crs, str) else crs.to_wkt()
    return dict(_attrs_of(wkt))


def write_georeference(
    obj: xr.Dataset | xr.DataArray, crs: Any, transform: Affine
) -> xr.Dataset | xr.DataArray:
    """Write ``crs`` and ``transform`` onto ``obj`` in place, as rioxarray writes them.

    Parameters
    ----------
    obj
        A Dataset or DataArray with ``y``/``x`` dims; changed in place.
    crs
        A WKT string, or a rasterio or pyproj CRS.
    transform
        The affine transform of ``obj``'s pixel grid.

    Returns
    -------
    The same object: what ``obj.rio.write_crs(crs, inplace=True)`` followed by
    ``.rio.write_transform(transform, inplace=True)`` leaves (the grid-mapping coordinate
    with the CRS's CF attributes and ``GeoTransform``; ``grid_mapping`` in the encoding of
    ``obj`` and of each variable with ``y`` and ``x`` dims, removed from their attributes).
    """
    attrs = grid_mapping_attrs(crs)
    attrs["GeoTransform"] = " ".join(str(v) for v in transform.to_gdal())
    obj.attrs.pop("crs", None)
    if GRID_MAPPING in obj.coords:
        del obj.coords[GRID_MAPPING]
    obj.coords[GRID_MAPPING] = xr.Variable((), 0, attrs)
    spatial = (
        [v for v in obj.data_vars.values() if "y" in v.dims and "x" in v.dims]
        if isinstance(obj, xr.Dataset)
        else []
    )
    for var in spatial:
        variable = obj.variables[var.name]
        variable.attrs.pop("grid_mapping", None)
        variable.encoding["grid_mapping"] = GRID_MAPPING
    obj.attrs.pop("grid_mapping", None)
    obj.encoding["grid_mapping"] = GRID_MAPPING
    return obj
