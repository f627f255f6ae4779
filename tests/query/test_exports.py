"""Exports the ecosystem accepts, on a real demo cube exported through `updm export ...`.

- the netCDF and Zarr exports pass the CF checker (compliance-checker, CF 1.10), read by
  netCDF-C, with their standard-name table from the checker's own package (no network);
- GDAL (the one rasterio ships) reads the Zarr export's scene ids;
- the clear-observation count has a fill that is not a count, in the cube and in every
  export, and a cube written with the old fill (0) is converted, never misread;
- the trend COG keeps its units.
"""

from __future__ import annotations

import ctypes
import json
import logging
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
import zarr
from _demo_cube import build_demo_cube

from updm_dask.cli import main
from updm_dask.cube import (
    CLEAR_COUNT_FILL,
    QUALITY_FILL,
    QUALITY_NOT_CLEAR,
    clear_count_fill,
    open_cube,
)
from updm_dask.errors import CubeError

pytestmark = pytest.mark.slow

CLEAR_CODES = (2, 3, 4)  # water, vegetation, non_vegetated


def _build_demo_cube(root: Path) -> Path:
    build_demo_cube(root, seed=7, n_scenes=9, size=32, job_id="export-test")
    return root / "cube"


@pytest.fixture(scope="module")
def demo_cube(tmp_path_factory) -> Path:
    """A demo cube (9 scenes 1974-2023; the 2007 scene covers three quarters of the grid)."""
    return _build_demo_cube(tmp_path_factory.mktemp("exports"))


def _expected_counts(cube_path: Path, year: int) -> tuple[np.ndarray, np.ndarray]:
    """(covered, clear count) of a year, counted here from the stored scene layers."""
    ds = open_cube(cube_path).to_xarray()
    at = np.flatnonzero(ds["time"].dt.year.values == year)
    quality = ds["quality"].values[at].astype(int)
    classes = ds["land_cover"].values[at]
    covered = ((quality & QUALITY_FILL) == 0).any(axis=0)
    clear = (np.isin(classes, CLEAR_CODES) & ((quality & QUALITY_NOT_CLEAR) == 0)).sum(axis=0)
    return covered, clear


@pytest.fixture
def offline_cf_checker(monkeypatch):
    """The CF checker with its packaged standard-name table and no way to the network."""
    import compliance_checker.cf.util as cf_util

    table = files("compliance_checker") / "data" / "cf-standard-name-table.xml"
    monkeypatch.setenv("CF_STANDARD_NAME_TABLE", str(table))

    def no_download(*args, **kwargs):
        raise AssertionError("the CF checker tried to download its standard-name table")

    monkeypatch.setattr(cf_util, "download_cf_standard_name_table", no_download)

    def check(path: str) -> list[tuple[int, str, list[str]]]:
        from compliance_checker.runner import CheckSuite

        suite = CheckSuite()
        suite.load_all_available_checkers()
        checker = "cf:1.10" if "cf:1.10" in suite.checkers else "cf"
        ds = suite.load_dataset(path)
        results = suite.run_all(ds, [checker], skip_checks=[])[checker][0]
        failed = []
        for r in results:
            passed = r.value[0] == r.value[1] if isinstance(r.value, tuple) else bool(r.value)
            if not passed:
                failed.append((r.weight, r.name, list(r.msgs)))
        return failed

    return check


# --------------------------------------------------------------------------------------
# 1. CF: netCDF and Zarr
# --------------------------------------------------------------------------------------


def test_netcdf_export_passes_the_cf_checker(demo_cube, tmp_path, offline_cf_checker, capsys):
    out = tmp_path / "cube.nc"
    assert main(["export", "netcdf", str(demo_cube), str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert offline_cf_checker(str(out)) == []

    import netCDF4

    with netCDF4.Dataset(out) as nc:
        for name in ("time", "y", "x", "year", "scene_id", "sun_elevation", "spatial_ref"):
            assert "_FillValue" not in nc[name].ncattrs(), name
        for name, key in (("land_cover", "flag_values"), ("quality", "flag_masks")):
            assert nc[name].getncattr(key).dtype == nc[name].dtype
        assert nc["yearly_clear_count"].getncattr("_FillValue") == CLEAR_COUNT_FILL
        assert "updm export netcdf" in nc.getncattr("history")
        assert nc.getncattr("Conventions") == "CF-1.10"
        scene_ids = [str(s) for s in nc["scene_id"][:]]
    assert sorted(scene_ids) == sorted(open_cube(demo_cube).scene_ids())


def test_netcdf_export_gives_the_class_count_a_fill_that_is_not_a_count(demo_cube, tmp_path):
    # the demo's 2007 scene leaves a quarter of the grid uncovered; its 1974 layer has
    # covered pixels that were never clear (count 0, which must stay 0)
    out = tmp_path / "cube.nc"
    assert main(["export", "netcdf", str(demo_cube), str(out)]) == 0
    ds = open_cube(demo_cube).to_xarray()
    with xr.open_dataset(out, mask_and_scale=False) as f:
        assert f["yearly_class_count"].attrs["_FillValue"] == CLEAR_COUNT_FILL
        for year in (1974, 2007):
            covered, clear = _expected_counts(demo_cube, year)
            exported = f["yearly_class_count"].sel(year=year).values
            stored = ds["yearly_class_count"].sel(year=year).values
            np.testing.assert_array_equal(exported, np.where(covered, stored, CLEAR_COUNT_FILL))
            # the class count never exceeds the clear count where a scene was seen
            assert (exported[covered] <= clear[covered]).all()
        assert (~_expected_counts(demo_cube, 2007)[0]).any()
        assert (f["yearly_class_count"].sel(year=1974).values == 0).any()


def test_netcdf_export_refuses_an_existing_file_and_keeps_it(demo_cube, tmp_path, capsys):
    out = tmp_path / "cube.nc"
    out.write_bytes(b"not mine")
    assert main(["export", "netcdf", str(demo_cube), str(out)]) != 0
    assert f"{str(out)!r} exists" in capsys.readouterr().err
    assert out.read_bytes() == b"not mine"


def test_zarr_export_passes_the_cf_checker_through_netcdf_c(
    demo_cube, tmp_path, offline_cf_checker
):
    out = tmp_path / "cube.zarr"
    assert main(["export", "zarr", str(demo_cube), str(out)]) == 0
    failed = offline_cf_checker(str(out))
    # Two findings come from the reader, not the store: CF 2.1 asks netCDF *files* to end
    # in .nc, and netCDF-C (NCZarr) does not list Zarr-2 scalar arrays (Unidata/netcdf-c
    # issue 3108), which is how xarray stores the grid mapping spatial_ref (checked below
    # with zarr itself, and the reader's blindness shown on a store of xarray's own).
    for _weight, name, msgs in failed:
        if name.startswith("§2.1"):
            assert all("must end with" in m for m in msgs)
        else:
            assert all("spatial_ref" in m for m in msgs), (name, msgs)
            assert all(
                "must exist" in m or "not a variable" in m or "non-existent" in m for m in msgs
            )
    assert {n.split()[0] for _, n, _ in failed} <= {"§2.1", "§5", "§5.6"}
    import netCDF4

    plain = tmp_path / "xarray-scalar.zarr"
    xr.Dataset({"a": ("x", [1, 2])}, coords={"crs": 0}).to_zarr(plain, zarr_format=2)
    with netCDF4.Dataset(f"file://{plain}#mode=nczarr,file") as nc:
        # When this fails, netCDF-C lists scalars: drop the spatial_ref allowance above.
        assert "a" in nc.variables and "crs" not in nc.variables

    store = zarr.open_consolidated(out, mode="r")  # consolidated metadata
    assert (out / ".zmetadata").is_file()
    assert store["spatial_ref"].attrs["grid_mapping_name"] == "transverse_mercator"
    for name in ("time", "y", "x", "year", "scene_id", "sun_elevation"):
        assert store[name].fill_value is None and "_FillValue" not in store[name].attrs, name
    with netCDF4.Dataset(f"file://{out}#mode=nczarr,file") as nc:
        assert nc["land_cover"].getncattr("flag_values").dtype == np.uint8
        assert nc["quality"].getncattr("flag_masks").dtype == np.uint8
        assert "updm export zarr" in nc.getncattr("history")
    copy = xr.open_zarr(out)
    assert sorted(copy["scene_id"].values.tolist()) == sorted(open_cube(demo_cube).scene_ids())
    # xarray hides netCDF-C's attribute types
    assert "_nczarr_attr" not in copy["land_cover"].attrs


def test_zarr_export_refuses_a_format_it_does_not_write(demo_cube, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["export", "zarr", str(demo_cube), str(tmp_path / "z.zarr"), "--zarr-format", "4"])
    assert "invalid choice: 4" in capsys.readouterr().err
    from updm_dask.errors import QueryError
    from updm_dask.query import export_zarr

    with pytest.raises(QueryError, match="zarr_format: expected 2 or 3, got True"):
        export_zarr(demo_cube, tmp_path / "z.zarr", zarr_format=True)
    assert not (tmp_path / "z.zarr").exists()


def _gdal_md_strings(store: Path, name: str) -> list[str] | None:
    """A 1-D string array read with GDAL's multidimensional API (rasterio's own libgdal).

    None when GDAL cannot open the array (e.g. "unsupported data_type: string").
    """
    libdir = Path(rasterio.__file__).parent.parent / "rasterio.libs"
    found = sorted(libdir.glob("libgdal*.so*")) + sorted(libdir.glob("libgdal*.dylib"))
    if not found:
        pytest.skip("rasterio's GDAL library is not a separate file on this platform")
    lib = ctypes.CDLL(str(found[0]))
    vp, u64, size = ctypes.c_void_p, ctypes.c_uint64, ctypes.c_size_t
    lib.GDALOpenEx.restype = vp
    lib.GDALOpenEx.argtypes = [ctypes.c_char_p, ctypes.c_uint, vp, vp, vp]
    lib.GDALDatasetGetRootGroup.restype = vp
    lib.GDALDatasetGetRootGroup.argtypes = [vp]
    lib.GDALGroupOpenMDArray.restype = vp
    lib.GDALGroupOpenMDArray.argtypes = [vp, ctypes.c_char_p, vp]
    lib.GDALMDArrayGetTotalElementsCount.restype = u64
    lib.GDALMDArrayGetTotalElementsCount.argtypes = [vp]
    lib.GDALExtendedDataTypeCreateString.restype = vp
    lib.GDALExtendedDataTypeCreateString.argtypes = [size]
    lib.GDALMDArrayRead.restype = ctypes.c_int
    lib.GDALMDArrayRead.argtypes = [
        vp,
        ctypes.POINTER(u64),
        ctypes.POINTER(size),
        vp,
        vp,
        vp,
        vp,
        vp,
        size,
    ]
    for fn in ("GDALExtendedDataTypeRelease", "GDALMDArrayRelease", "GDALGroupRelease"):
        getattr(lib, fn).argtypes = [vp]
    lib.GDALClose.argtypes = [vp]
    lib.VSIFree.argtypes = [vp]
    lib.GDALAllRegister()
    GDAL_OF_MULTIDIM_RASTER = 0x10
    ds = lib.GDALOpenEx(str(store).encode(), GDAL_OF_MULTIDIM_RASTER, None, None, None)
    assert ds, f"GDAL cannot open {store}"
    group = lib.GDALDatasetGetRootGroup(ds)
    arr = lib.GDALGroupOpenMDArray(group, name.encode(), None)
    out = None
    if arr:
        n = lib.GDALMDArrayGetTotalElementsCount(arr)
        dtype = lib.GDALExtendedDataTypeCreateString(0)
        buf = (vp * n)()
        start, count = (u64 * 1)(0), (size * 1)(n)
        ok = lib.GDALMDArrayRead(arr, start, count, None, None, dtype, buf, buf, ctypes.sizeof(buf))
        if ok:
            out = [ctypes.string_at(p).decode() if p else "" for p in buf]
        for p in buf:
            if p:
                lib.VSIFree(p)  # GDAL allocated the strings
        lib.GDALExtendedDataTypeRelease(dtype)
        lib.GDALMDArrayRelease(arr)
    lib.GDALGroupRelease(group)
    lib.GDALClose(ds)
    return out


def test_gdal_reads_the_scene_ids_of_the_zarr_export(demo_cube, tmp_path, caplog):
    out = tmp_path / "cube.zarr"
    assert main(["export", "zarr", str(demo_cube), str(out)]) == 0
    caplog.set_level(logging.DEBUG, logger="rasterio")
    with rasterio.open(f'ZARR:"{out}"') as f:
        subdatasets = f.subdatasets
    with rasterio.open(f'ZARR:"{out}":/land_cover') as f:
        assert f.count == len(open_cube(demo_cube).scene_ids())
    unsupported = [r.getMessage() for r in caplog.records if "unsupported" in r.getMessage()]
    assert unsupported == []
    assert any(s.endswith(":/yearly_clear_count") for s in subdatasets)
    ids = _gdal_md_strings(out, "scene_id")
    assert ids is not None and sorted(ids) == sorted(open_cube(demo_cube).scene_ids())


# --------------------------------------------------------------------------------------
# 2. The clear-observation count's fill
# --------------------------------------------------------------------------------------


def test_clear_count_map_has_a_fill_that_is_not_a_count(demo_cube, tmp_path):
    for year in (1974, 2007):
        covered, clear = _expected_counts(demo_cube, year)
        out = tmp_path / f"n{year}.tif"
        argv = ["export", "map", str(demo_cube), "--layer", "clear_count", "--year", str(year)]
        assert main([*argv, str(out)]) == 0
        with rasterio.open(out) as f:
            assert f.nodata == CLEAR_COUNT_FILL
            band = f.read(1, masked=True)
        # GDAL's mean is over the pixels a scene covered, zeros (never clear) included
        np.testing.assert_array_equal(~band.mask, covered)
        np.testing.assert_array_equal(band.filled(0)[covered], clear[covered])
        assert float(band.mean()) == pytest.approx(clear[covered].mean())
    # the demo's 1974 layer has covered pixels never clear, its 2007 layer uncovered ones
    covered74, clear74 = _expected_counts(demo_cube, 1974)
    assert covered74.all() and (clear74 == 0).any()
    covered07, _ = _expected_counts(demo_cube, 2007)
    assert not covered07.all()


def test_queries_count_an_unseen_pixel_as_no_clear_observation(demo_cube):
    from updm_dask import query as q

    covered, clear = _expected_counts(demo_cube, 2007)
    win, _ = q.open_yearly(demo_cube, start=2007, end=2007)
    counts = win["yearly_clear_count"].values[0]
    np.testing.assert_array_equal(counts, np.where(covered, clear, 0))
    stored = open_cube(demo_cube).to_xarray()["yearly_clear_count"].sel(year=2007).values
    np.testing.assert_array_equal(stored, np.where(covered, clear, CLEAR_COUNT_FILL))
    stats = q.area_statistics(demo_cube, observed_only=True, start=2007, end=2007)
    assert stats["clear_obs_per_pixel"].iloc[0] == pytest.approx(clear[covered].sum() / clear.size)


def _write_old_clear_count(cube_path: Path) -> None:
    """Make the cube's yearly_clear_count what versions before wrote: fill 0, 0 unseen."""
    cube = open_cube(cube_path)
    session = cube._writable("old layer")
    group = zarr.open_group(session.store, mode="r+")
    arr = group["yearly_clear_count"]
    data, attrs = arr[:], dict(arr.attrs)
    chunks, compressors = arr.chunks, arr.compressors
    del group["yearly_clear_count"]
    attrs.pop("comment", None)
    old = group.create_array(
        "yearly_clear_count",
        shape=data.shape,
        chunks=chunks,
        dtype="uint16",
        fill_value=0,
        compressors=compressors,
        dimension_names=("year", "y", "x"),
        attributes=attrs,
    )
    old[:] = np.where(data == CLEAR_COUNT_FILL, 0, data)
    cube._commit(session, "as an older version wrote it", {"action": "test"})


def test_an_old_cube_clear_count_is_converted_never_misread(tmp_path, capsys):
    cube_path = _build_demo_cube(tmp_path / "old")
    _write_old_clear_count(cube_path)
    ds = open_cube(cube_path).to_xarray()
    assert clear_count_fill(ds["yearly_clear_count"]) == 0
    covered, clear = _expected_counts(cube_path, 2007)

    # exports tell "no scene" from "never clear" from the scenes' quality
    tif = tmp_path / "n2007.tif"
    argv = ["export", "map", str(cube_path), "--layer", "clear_count", "--year", "2007"]
    assert main([*argv, str(tif)]) == 0
    with rasterio.open(tif) as f:
        band = f.read(1)
    np.testing.assert_array_equal(band, np.where(covered, clear, CLEAR_COUNT_FILL))
    nc = tmp_path / "old.nc"
    assert main(["export", "netcdf", str(cube_path), str(nc)]) == 0
    with xr.open_dataset(nc, mask_and_scale=False) as f:
        layer = f["yearly_clear_count"].sel(year=2007).values
        assert f["yearly_clear_count"].attrs["_FillValue"] == CLEAR_COUNT_FILL
    np.testing.assert_array_equal(layer, np.where(covered, clear, CLEAR_COUNT_FILL))

    # rebuilding one year rebuilds all, so no year keeps the old meaning of 0
    cube = open_cube(cube_path)
    cube.rebuild_yearly([2023])
    rebuilt = open_cube(cube_path).to_xarray()["yearly_clear_count"]
    assert clear_count_fill(rebuilt) == CLEAR_COUNT_FILL
    np.testing.assert_array_equal(
        rebuilt.sel(year=2007).values, np.where(covered, clear, CLEAR_COUNT_FILL)
    )


def test_a_clear_count_with_an_unknown_fill_is_refused(tmp_path):
    arr = zarr.create_array(tmp_path / "n.zarr", shape=(2,), dtype="uint16", fill_value=7)
    with pytest.raises(CubeError, match=r"yearly_clear_count has fill value 7; expected 65535"):
        clear_count_fill(arr, "cube 'x'")


# --------------------------------------------------------------------------------------
# Trend exports keep their units
# --------------------------------------------------------------------------------------


def test_trend_cog_keeps_the_units_of_its_bands(demo_cube, tmp_path):
    out = tmp_path / "trend.tif"
    assert main(["export", "map", str(demo_cube), "--layer", "trend", str(out)]) == 0
    with rasterio.open(out) as f:
        assert f.descriptions == ("slope", "p_value")
        assert f.units == ("1/year", "1")


def test_cli_help_names_the_new_export(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    assert "netcdf" in capsys.readouterr().out


# --------------------------------------------------------------------------------------
# 3. STAC: an Item beside each COG, a Collection of the cube
# --------------------------------------------------------------------------------------


def test_exported_cogs_come_with_valid_stac_items(demo_cube, tmp_path, offline_stac_validator):
    pystac = offline_stac_validator
    cases = {
        "land_cover": ["--year", "2007"],
        "clear_count": ["--year", "1974"],
        "trend": [],
        "first_change": [],
    }
    for layer, extra in cases.items():
        tif = tmp_path / f"{layer}.tif"
        argv = ["export", "map", str(demo_cube), "--layer", layer, *extra, str(tif)]
        assert main(argv) == 0
        doc = json.loads(tif.with_suffix(".json").read_text(encoding="utf-8"))
        item = pystac.Item.from_dict(doc, migrate=False)
        validated = item.validate()
        assert any("projection" in s for s in validated), layer
        assert any("raster" in s for s in validated), layer
        with rasterio.open(tif) as f:
            assert doc["properties"]["proj:shape"] == [f.height, f.width]
            assert doc["properties"]["proj:transform"] == pytest.approx(list(f.transform)[:6])
            assert doc["properties"]["proj:code"] == f"EPSG:{f.crs.to_epsg()}"
            bands = doc["assets"]["data"]["raster:bands"]
            assert [b["data_type"] for b in bands] == list(f.dtypes)
        assert doc["assets"]["data"]["href"] == f"./{tif.name}"
        assert doc["properties"]["datetime"]
        if layer == "land_cover":
            classes = doc["assets"]["data"]["classification:classes"]
            assert {c["value"]: c["name"] for c in classes} == {
                0: "no_data",
                1: "cloud",
                2: "water",
                3: "vegetation",
                4: "non_vegetated",
            }
            assert any("classification" in s for s in validated)
            assert doc["properties"]["start_datetime"] == "2007-01-01T00:00:00Z"
        if layer == "clear_count":
            assert bands[0]["nodata"] == CLEAR_COUNT_FILL
        if layer == "trend":
            assert [b.get("unit") for b in bands] == ["1/year", "1"]
            assert doc["properties"]["start_datetime"].startswith("1974-01-01")
            assert doc["properties"]["end_datetime"].startswith("2023-12-31")


def test_a_cube_describes_itself_as_a_stac_collection(
    demo_cube, tmp_path, offline_stac_validator, capsys
):
    pystac = offline_stac_validator
    out = tmp_path / "collection.json"
    assert main(["export", "stac", str(demo_cube), str(out), "--id", "demo"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    doc = json.loads(out.read_text(encoding="utf-8"))
    collection = pystac.Collection.from_dict(doc, migrate=False)
    validated = collection.validate()
    assert any("datacube" in s for s in validated)
    assert collection.id == "demo"
    dims = doc["cube:dimensions"]
    ds = open_cube(demo_cube).to_xarray()
    assert dims["x"]["reference_system"] == ds.rio.crs.to_epsg()
    assert dims["x"]["step"] == 30.0 and dims["y"]["step"] == -30.0
    assert dims["time"]["extent"][0].startswith(str(ds["time"].values.min())[:10])
    assert dims["year"]["extent"] == ["1974-01-01T00:00:00Z", "2023-12-31T23:59:59Z"]
    assert set(doc["cube:variables"]) == {*ds.data_vars}
    assert doc["cube:variables"]["land_cover"]["values"] == [0, 1, 2, 3, 4]
    assert doc["cube:variables"]["mviupd"]["dimensions"] == [
        "time",
        "y",
        "x",
    ]
    lon_min, lat_min, lon_max, lat_max = doc["extent"]["spatial"]["bbox"][0]
    assert -180 <= lon_min < lon_max <= 180 and -90 <= lat_min < lat_max <= 90

    from updm_dask.query.stac import cube_collection

    assert cube_collection(demo_cube, collection_id="demo")["cube:dimensions"] == dims


def test_stac_export_errors_name_the_path(demo_cube, tmp_path, capsys):
    missing = tmp_path / "nowhere" / "c.json"
    assert main(["export", "stac", str(demo_cube), str(missing)]) != 0
    assert f"folder {str(missing.parent)!r} does not exist" in capsys.readouterr().err
    from updm_dask.errors import QueryError
    from updm_dask.query.stac import cog_item

    not_a_raster = tmp_path / "x.tif"
    not_a_raster.write_text("plain text", encoding="utf-8")
    with pytest.raises(QueryError, match=r"cannot read .*x\.tif' as a raster"):
        cog_item(not_a_raster, item_id="x", first_year=2000, last_year=2000)
