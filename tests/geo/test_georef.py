"""write_georeference writes what rioxarray's write_crs + write_transform write.

The reference is rioxarray itself, run on the same object; the CRSs are those of the real
scenes of the shared data (UTM zones, north and south) and a geographic one.
"""

from __future__ import annotations

import numpy as np
import pyproj
import pytest
import rasterio.crs
import rioxarray  # noqa: F401
import xarray as xr
from affine import Affine

from updm_dask.geo.georef import grid_mapping_attrs, write_georeference
from updm_dask.scenes import discover_scenes, open_scene


def _bare(crs_free: xr.Dataset) -> xr.Dataset:
    """The dataset without any trace of a CRS (coordinate, attributes, encodings)."""
    out = crs_free.drop_vars("spatial_ref", errors="ignore")
    for var in out.variables.values():
        var.encoding.pop("grid_mapping", None)
        var.attrs.pop("grid_mapping", None)
    out.encoding.pop("grid_mapping", None)
    return out


def _encodings(obj) -> dict:
    return {k: dict(v.encoding) for k, v in obj.variables.items()} | {"": dict(obj.encoding)}


def _assert_same(ours, theirs) -> None:
    xr.testing.assert_identical(ours, theirs)
    # attribute order too: writers of netCDF and Zarr keep it
    assert list(ours["spatial_ref"].attrs.items()) == list(theirs["spatial_ref"].attrs.items())
    assert _encodings(ours) == _encodings(theirs)


@pytest.fixture(scope="module")
def real_scenes(shared_data):
    return discover_scenes(shared_data / "landsat").scenes


def test_on_real_scenes_it_writes_what_rioxarray_writes(real_scenes):
    crss = set()
    for source in real_scenes:
        scene = open_scene(source)
        crs, transform = scene.rio.crs, scene.rio.transform()
        crss.add(crs.to_epsg())
        bare = _bare(scene)
        theirs = bare.copy().rio.write_crs(crs, inplace=True)
        theirs = theirs.rio.write_transform(transform, inplace=True)
        ours = write_georeference(bare.copy(), crs, transform)
        _assert_same(ours, theirs)
        assert ours.rio.crs == crs and ours.rio.transform() == transform
        # the variables without y/x (none has a grid mapping) are left alone
        assert "grid_mapping" not in ours["band"].encoding
    assert len(crss) >= 2, crss  # several UTM zones among the shared scenes


@pytest.mark.parametrize(
    "crs",
    ["EPSG:4326", pyproj.CRS.from_epsg(32737), rasterio.crs.CRS.from_epsg(32633)],
    ids=["epsg-string-geographic", "pyproj-utm-south", "rasterio-utm"],
)
def test_a_dataarray_and_any_crs_form(crs):
    transform = Affine(30.0, 0.0, 500000.0, 0.0, -30.0, 9000000.0)
    y = transform.f + transform.e * (np.arange(3) + 0.5)
    x = transform.c + transform.a * (np.arange(4) + 0.5)
    da = xr.DataArray(np.arange(12.0).reshape(3, 4), dims=("y", "x"), coords={"y": y, "x": x})
    theirs = da.copy().rio.write_crs(crs).rio.write_transform(transform)
    ours = write_georeference(da.copy(), crs, transform)
    xr.testing.assert_identical(ours, theirs)
    assert ours.encoding == theirs.encoding
    assert ours.rio.transform() == transform
    assert pyproj.CRS.from_user_input(ours.rio.crs.to_wkt()) == pyproj.CRS.from_user_input(crs)


def test_an_earlier_grid_mapping_is_replaced_and_the_cached_attributes_stay_intact():
    transform = Affine(30.0, 0.0, 0.0, 0.0, -30.0, 0.0)
    ds = xr.Dataset(
        {"v": (("y", "x"), np.zeros((2, 2)))},
        coords={"y": [-15.0, -45.0], "x": [15.0, 45.0]},
    ).rio.write_crs("EPSG:32637")
    write_georeference(ds, "EPSG:32633", transform)
    assert ds.rio.crs.to_epsg() == 32633
    # what a caller does with the attributes handed back does not change later writes
    attrs = grid_mapping_attrs("EPSG:32633")
    attrs["crs_wkt"] = "spoiled"
    again = write_georeference(ds.copy(), "EPSG:32633", transform)
    assert again.rio.crs.to_epsg() == 32633
    assert again["spatial_ref"].attrs["crs_wkt"] != "spoiled"
