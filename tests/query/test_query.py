"""Queries on a small cube with hand-known content: series, area statistics, trends,
transitions, first change, comparisons, rule fitting, exports, pictures, CLI, bad queries.

The cube (12 x 16 pixels of 30 m, 1984-1995, one TM scene on June 1 and one ETM+ scene on
June 9 of every year) holds this planted history:

- columns 0-7 vegetation, columns 8-15 water (rows 0-5) and urban (rows 6-11);
- pixel A (row 2, col 3) vegetation until 1990, urban from 1991;
- block B (rows 8-11, cols 0-3, 16 pixels) vegetation until 1987, urban from 1988;
- MVIUPD: vegetation 0.5 + 0.01 * (year - 1984), water -0.5, urban 0.1;
- 1989: the TM scene is all cloud (the ETM+ one clear); 1992: rows 0-5 cloudy in both;
- coefficients: ETM+ = 0.8 * TM + 0.01 for uCw, uCv, uCs (a known linear conversion), all
  on the cube's 2e-4 coefficient step, so the stored values are the planted ones;
- the cube is tagged "early" after 1984-1987 were stored and their layers built.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import os
from contextlib import contextmanager
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pyproj
import pytest
import rasterio
import rioxarray  # noqa: F401
import xarray as xr
from affine import Affine

from updm_dask import query as q
from updm_dask.cli import main
from updm_dask.cube import QUALITY_CLOUD, QUALITY_FILL, create_cube
from updm_dask.errors import CubeError, QueryError
from updm_dask.geo import CubeGrid
from updm_dask.query.change import first_persistent_change
from updm_dask.science.classify import classify_array, load_rules

NY, NX = 12, 16
GRID = CubeGrid("EPSG:32637", Affine(30, 0, 589035, 0, -30, 756165), (NY, NX))
YEARS = list(range(1984, 1996))
PIXEL_HA = 0.09
A = (2, 3)
C = (0, 0)  # vegetation throughout: a linear MVIUPD trend of 0.01 per year
B_ROWS, B_COLS = slice(8, 12), slice(0, 4)

TO_LONLAT = pyproj.Transformer.from_crs("EPSG:32637", "EPSG:4326", always_xy=True)


def centre(row: int, col: int) -> tuple[float, float]:
    return 589035 + 30 * col + 15.0, 756165 - 30 * row - 15.0


def planted_classes(year: int) -> np.ndarray:
    c = np.full((NY, NX), 3, np.uint8)
    c[:6, 8:] = 2
    c[6:, 8:] = 4
    if year >= 1991:
        c[A] = 4
    if year >= 1988:
        c[B_ROWS, B_COLS] = 4
    return c


def planted_mviupd(year: int, c: np.ndarray) -> np.ndarray:
    veg = 0.5 + 0.01 * (year - 1984)
    return np.where(c == 3, veg, np.where(c == 2, -0.5, 0.1)).astype(np.float32)


def planted_coefficients(c: np.ndarray) -> tuple[np.ndarray, ...]:
    r, k = np.mgrid[0:NY, 0:NX]
    uCw = (0.01 + 0.001 * r).astype(np.float32)
    uCv = (np.where(c == 3, 0.1, np.where(c == 2, 0.003, 0.02)) + 0.002 * k).astype(np.float32)
    uCs = (0.05 + 0.001 * (r + k)).astype(np.float32)
    return uCw, uCv, uCs


def make_scene(sid, date, sensor, platform, layers: dict[str, np.ndarray]) -> xr.Dataset:
    ds = xr.Dataset(
        {n: (("y", "x"), v) for n, v in layers.items()}, coords={"y": GRID.y, "x": GRID.x}
    ).rio.write_crs(GRID.crs)
    ds = ds.assign_coords(scene_id=sid, time=np.datetime64(date, "us"))
    ds.attrs.update(sensor=sensor, platform=platform, sun_elevation=55.0)
    return ds


def year_scenes(year: int) -> list[xr.Dataset]:
    c = planted_classes(year)
    out = []
    for k, (sensor, platform, day) in enumerate((("TM", "LANDSAT_5", 1), ("ETM+", "LANDSAT_7", 9))):
        lc = c.copy()
        quality = np.zeros((NY, NX), np.uint8)
        if year == 1989 and sensor == "TM":
            lc[:] = 1
            quality[:] = QUALITY_CLOUD
        if year == 1992:
            lc[:6] = 1
            quality[:6] = QUALITY_CLOUD
        coefs = planted_coefficients(c)
        if k == 1:
            coefs = tuple((0.8 * v + 0.01).astype(np.float32) for v in coefs)
        layers = dict(zip(("uCw", "uCv", "uCs"), coefs, strict=True))
        layers.update(land_cover=lc, quality=quality, mviupd=planted_mviupd(year, c))
        out.append(make_scene(f"{sensor}{year}", f"{year}-06-{day:02d}", sensor, platform, layers))
    return out


@pytest.fixture(scope="module")
def cube_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("query") / "cube"
    cube = create_cube(path, GRID, chunks=8)
    with dask.config.set({"updm.chunks.yearly": 8}):
        early = [s for y in YEARS[:4] for s in year_scenes(y)]
        cube.append_scenes(early, metadata={"job_id": "t"}, message="1984-1987")
        cube.rebuild_yearly()
        cube.create_tag("early")
        late = [s for y in YEARS[4:] for s in year_scenes(y)]
        cube.append_scenes(late, metadata={"job_id": "t"}, message="1988-1995")
        cube.rebuild_yearly()
    return path


@contextmanager
def raise_if_dask_computes():
    def scheduler(dsk, keys, **kwargs):
        raise AssertionError("a dask computation ran where everything must stay lazy")

    with dask.config.set(scheduler=scheduler):
        yield


def png_targets(tmp_path: Path, name: str) -> list[Path]:
    """Where a test draws a picture: tmp_path, and UPDM_QUERY_PNGS when set (for a look)."""
    out = [tmp_path / name]
    extra = os.environ.get("UPDM_QUERY_PNGS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        out.append(Path(extra) / name)
    return out


# --------------------------------------------------------------------------------------
# Points
# --------------------------------------------------------------------------------------


def test_point_series_by_xy_and_by_lonlat(cube_path):
    x, y = centre(*A)
    lon, lat = TO_LONLAT.transform(x, y)
    by_xy = q.scene_series(cube_path, x=x + 7, y=y - 11)  # anywhere inside the pixel
    by_ll = q.scene_series(cube_path, lon=lon, lat=lat)
    for table in (by_xy, by_ll):
        assert table.attrs["point"]["row"] == A[0] and table.attrs["point"]["col"] == A[1]
    pd.testing.assert_frame_equal(by_xy, by_ll)
    assert len(by_xy) == 2 * len(YEARS)
    assert by_xy["time"].is_monotonic_increasing
    assert list(by_xy["scene_id"][:3]) == ["TM1984", "ETM+1984", "TM1985"]
    assert list(by_xy["sensor"][:2]) == ["TM", "ETM+"]
    assert list(by_xy["platform"][:2]) == ["LANDSAT_5", "LANDSAT_7"]
    classes = dict(zip(by_xy["scene_id"], by_xy["class"], strict=True))
    assert classes["TM1990"] == classes["ETM+1990"] == "vegetation"
    assert classes["TM1991"] == classes["ETM+1995"] == "non_vegetated"
    assert classes["TM1989"] == "cloud" and classes["ETM+1989"] == "vegetation"
    assert classes["TM1992"] == classes["ETM+1992"] == "cloud"
    assert not by_xy.set_index("scene_id").loc["TM1992", "clear"]
    row = by_xy.set_index("scene_id").loc["TM1986"]
    assert row["mviupd"] == pytest.approx(0.52, abs=1e-6)
    assert row["uCw"] == pytest.approx(0.012, abs=1e-7)  # 0.01 + 0.001 * row 2
    assert by_xy.set_index("scene_id").loc["ETM+1986", "uCw"] == pytest.approx(
        0.8 * 0.012 + 0.01, abs=1e-6
    )


def test_point_yearly_series_is_the_planted_history(cube_path):
    x, y = centre(*A)
    yearly = q.yearly_series(cube_path, x=x, y=y)
    assert list(yearly["year"]) == YEARS
    assert list(yearly["yearly_land_cover"]) == [3] * 7 + [4, 0, 4, 4, 4]
    assert list(yearly["class"][7:9]) == ["non_vegetated", "no_data"]
    assert list(yearly["yearly_clear_count"]) == [2, 2, 2, 2, 2, 1, 2, 2, 0, 2, 2, 2]
    expected = [0.5 + 0.01 * i for i in range(7)] + [0.1, math.nan, 0.1, 0.1, 0.1]
    np.testing.assert_allclose(yearly["yearly_mviupd_median"], expected, atol=1e-6)
    both = q.point_series(cube_path, x=x, y=y, start=1990, end=1991)
    assert list(both.scenes["scene_id"]) == ["TM1990", "ETM+1990", "TM1991", "ETM+1991"]
    assert list(both.yearly["year"]) == [1990, 1991]
    assert both.location.row == A[0] and both.scenes.attrs["snapshot"]


def test_point_series_options_and_bad_queries(cube_path):
    x, y = centre(*A)
    sub = q.scene_series(cube_path, x=x, y=y, variables="mviupd,land_cover", start="1990-06-05")
    assert list(sub.columns) == [
        "time",
        "scene_id",
        "sensor",
        "platform",
        "sun_elevation",
        "mviupd",
        "land_cover",
        "class",
    ]
    assert sub["scene_id"].iloc[0] == "ETM+1990"
    with pytest.raises(QueryError, match="unknown scene-level variable 'ndvi'"):
        q.scene_series(cube_path, x=x, y=y, variables=["ndvi"])
    with pytest.raises(QueryError, match="unknown per-year variable 'mviupd'"):
        q.yearly_series(cube_path, x=x, y=y, variables=["mviupd"])
    with pytest.raises(QueryError, match=r"empty time range.*no scene from 2030"):
        q.scene_series(cube_path, x=x, y=y, start=2030)
    with pytest.raises(QueryError, match=r"empty time range.*it has years 1984-1995"):
        q.yearly_series(cube_path, x=x, y=y, start=1960, end=1970)
    with pytest.raises(QueryError, match="start 1995 is after end 1990"):
        q.scene_series(cube_path, x=x, y=y, start=1995, end=1990)
    with pytest.raises(QueryError, match="neither a year nor an ISO date"):
        q.scene_series(cube_path, x=x, y=y, start="last spring")


def test_points_outside_the_grid_or_not_lonlat(cube_path):
    with pytest.raises(QueryError, match=r"outside the cube grid.*x 589035\.\.589515"):
        q.scene_series(cube_path, x=589035 - 1, y=756000)
    lon, lat = TO_LONLAT.transform(600000, 756000)
    with pytest.raises(QueryError, match="outside the cube grid"):
        q.yearly_series(cube_path, lon=lon, lat=lat)
    with pytest.raises(QueryError, match=r"cannot be longitude/latitude.*crs='EPSG:32637'"):
        q.scene_series(cube_path, lon=589100.0, lat=756100.0)
    with pytest.raises(QueryError, match="give both lon and lat"):
        q.scene_series(cube_path, lon=39.8)
    with pytest.raises(QueryError, match="one of the two"):
        q.scene_series(cube_path, lon=39.8, lat=6.8, x=1.0, y=2.0)
    with pytest.raises(QueryError, match="unknown CRS"):
        q.scene_series(cube_path, x=589100.0, y=756100.0, crs="EPSG:999999")


def test_time_travel_to_a_tag_or_commit(cube_path):
    x, y = centre(*C)
    early = q.yearly_series(cube_path, x=x, y=y, tag="early")
    assert list(early["year"]) == YEARS[:4]
    snap = early.attrs["snapshot"]
    again = q.yearly_series(cube_path, x=x, y=y, snapshot=snap)
    pd.testing.assert_frame_equal(early, again)
    assert len(q.scene_series(cube_path, x=x, y=y, tag="early")) == 8
    with pytest.raises(QueryError, match="has no tag 'nope'"):
        q.yearly_series(cube_path, x=x, y=y, tag="nope")
    with pytest.raises(QueryError, match="has no commit '0000000000000000000A'"):
        q.area_statistics(cube_path, snapshot="0000000000000000000A")
    with pytest.raises(QueryError, match="not both"):
        q.area_statistics(cube_path, snapshot=snap, tag="early")
    with pytest.raises(CubeError, match="not a cube"):
        q.area_statistics(cube_path.parent / "nothing-here")


# --------------------------------------------------------------------------------------
# The selection
# --------------------------------------------------------------------------------------


def test_one_selection_serves_every_query(cube_path):
    # the vegetation quarter: rows 0-5, cols 0-7 (48 pixels), in the cube's CRS
    box = (589035 + 1, 756165 - 6 * 30 + 1, 589035 + 8 * 30 - 1, 756165 - 1)
    sel = q.Selection(cube_path, bbox=box, crs="EPSG:32637", start=1986, end=1990)
    st = q.area_statistics(sel)
    same = q.area_statistics(cube_path, bbox=box, crs="EPSG:32637", start=1986, end=1990)
    pd.testing.assert_frame_equal(st, same)
    assert list(st["year"]) == list(range(1986, 1991)) and st.attrs["area"]["n_pixels"] == 48
    # keywords given with a Selection replace its fields
    assert list(q.area_statistics(sel, start=1990)["year"]) == [1990]
    trend = q.mviupd_trend(sel)
    assert trend.slope.shape == (6, 8) and trend.attrs["first_year"] == 1986
    # resolved once: the commit, the pixels and the years every read of a query uses
    view = sel.resolve()
    assert view.area.n_pixels == 48 and view.when.first_year == 1986
    assert view.snapshot == st.attrs["snapshot"] == view.dataset.attrs["updm_snapshot"]
    assert list(view.yearly()["year"].values) == list(range(1986, 1991))
    x, y = centre(*A)
    early = q.Selection(cube_path, x=x, y=y, tag="early")
    assert list(q.yearly_series(early)["year"]) == YEARS[:4]
    assert early.resolve("point").point.row == A[0]


def test_queries_refuse_selection_fields_they_do_not_take(cube_path):
    x, y = centre(*A)
    with pytest.raises(QueryError, match=r"reads one pixel.*not bbox"):
        q.scene_series(cube_path, x=x, y=y, bbox=(1, 2, 3, 4))
    with pytest.raises(QueryError, match="takes no start/end"):
        q.transition_matrix(cube_path, 1984, 1990, start=1985)
    with pytest.raises(QueryError, match="takes no start/end"):
        q.land_cover_map(cube_path, 1990, end=1991)
    with pytest.raises(QueryError, match="reads the whole cube: drop bbox"):
        q.export_zarr(cube_path, "unused", bbox=(1, 2, 3, 4))
    with pytest.raises(QueryError, match="radius: give it with a point"):
        q.area_statistics(cube_path, radius=50)
    with pytest.raises(TypeError, match="colour"):
        q.area_statistics(cube_path, colour="red")


def test_an_area_around_a_point(cube_path):
    x, y = centre(5, 5)  # vegetation all around
    assert q.area_statistics(cube_path, x=x, y=y).attrs["area"]["n_pixels"] == 1
    assert q.area_statistics(cube_path, x=x, y=y, radius=30).attrs["area"]["n_pixels"] == 5
    st = q.area_statistics(cube_path, x=x, y=y, radius=45).set_index("year")
    assert st.attrs["area"]["n_pixels"] == 9
    assert st.loc[1990, "vegetation_fraction"] == 1.0
    assert st.loc[1990, "area_ha"] == pytest.approx(9 * PIXEL_HA)
    lon, lat = TO_LONLAT.transform(x, y)
    by_lonlat = q.area_statistics(cube_path, lon=lon, lat=lat, radius=45)
    assert by_lonlat.attrs["area"]["n_pixels"] == 9
    with pytest.raises(QueryError, match="radius"):
        q.area_statistics(cube_path, x=x, y=y, radius=-1)
    with pytest.raises(QueryError, match="one of them"):
        q.area_statistics(cube_path, x=x, y=y, bbox=(1, 2, 3, 4))


def test_point_series_from_inside_a_running_event_loop(cube_path):
    # as in a notebook: the caller's thread already runs an asyncio loop
    x, y = centre(*A)

    async def ask() -> pd.DataFrame:
        return q.yearly_series(cube_path, x=x, y=y)

    assert list(asyncio.run(ask())["year"]) == YEARS


# --------------------------------------------------------------------------------------
# Areas
# --------------------------------------------------------------------------------------


def test_area_statistics_of_the_whole_cube(cube_path):
    # the per-year layers as stored (observed pixels only); the complete maps, the
    # default, are tested in test_area_statistics_of_the_complete_maps
    st = q.area_statistics(cube_path, observed_only=True).set_index("year")
    assert list(st.index) == YEARS
    assert st.attrs["area"]["n_pixels"] == NY * NX
    np.testing.assert_allclose(st["area_ha"], NY * NX * PIXEL_HA)
    # 1984-1987: 48 water, 96 vegetation, 48 urban pixels
    assert st.loc[
        1985, ["water_fraction", "vegetation_fraction", "non_vegetated_fraction"]
    ].tolist() == [
        0.25,
        0.5,
        0.25,
    ]
    assert st.loc[1985, "vegetation_ha"] == pytest.approx(96 * PIXEL_HA)
    # block B turned urban in 1988, pixel A in 1991
    assert st.loc[1988, "non_vegetated_ha"] == pytest.approx(64 * PIXEL_HA)
    assert st.loc[1991, "vegetation_fraction"] == pytest.approx(79 / 192)
    assert st.loc[1991, "non_vegetated_fraction"] == pytest.approx(65 / 192)
    # 1992: rows 0-5 unseen; the rest is 32 vegetation and 64 urban pixels
    assert st.loc[1992, "observed_fraction"] == 0.5
    assert st.loc[1992, "observed_ha"] == pytest.approx(96 * PIXEL_HA)
    assert st.loc[1992, "water_ha"] == 0
    assert st.loc[1992, "vegetation_fraction"] == pytest.approx(32 / 96)
    assert st.loc[1992, "non_vegetated_fraction"] == pytest.approx(64 / 96)
    # 1989: one clear scene per pixel, else two; 1992: 96 pixels x 2 / 192
    assert st.loc[1989, "clear_obs_per_pixel"] == 1.0
    assert st.loc[1992, "clear_obs_per_pixel"] == 1.0
    assert st.loc[1984, "clear_obs_per_pixel"] == 2.0
    # median of 48 x -0.5, 48 x 0.1, 96 x 0.5: (0.1 + 0.5) / 2
    assert st.loc[1984, "mviupd_median"] == pytest.approx(0.3, abs=1e-6)
    assert st.loc[1992, "mviupd_median"] == pytest.approx(0.1, abs=1e-6)


def test_area_by_bbox_and_by_geojson_polygon(cube_path):
    # the vegetation quarter: rows 0-5, cols 0-7 (48 pixels), edges in the cube's CRS
    x0, x1, y1, y0 = 589035, 589035 + 8 * 30, 756165, 756165 - 6 * 30
    st = q.area_statistics(cube_path, bbox=(x0 + 1, y0 + 1, x1 - 1, y1 - 1), crs="EPSG:32637")
    assert st.attrs["area"]["n_pixels"] == 48
    assert st.attrs["area"]["area_ha"] == pytest.approx(48 * PIXEL_HA)
    assert st.set_index("year").loc[1990, "vegetation_fraction"] == 1.0
    assert st.set_index("year").loc[1991, "non_vegetated_fraction"] == pytest.approx(1 / 48)
    corners = [TO_LONLAT.transform(x, y) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]
    # pull the ring 1 m inside so that no outside pixel centre is near an edge
    cx, cy = np.mean(corners, axis=0)
    ring = [[cx + (lo - cx) * 0.995, cy + (la - cy) * 0.995] for lo, la in corners]
    polygon = {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
    feature = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": {"name": "quarter"}, "geometry": polygon}],
    }
    by_poly = q.area_statistics(cube_path, geojson=feature)
    assert by_poly.attrs["area"]["n_pixels"] == 48
    pd.testing.assert_frame_equal(by_poly.reset_index(drop=True), st.reset_index(drop=True))


def test_bad_areas_get_clear_errors(cube_path, tmp_path):
    utm_ring = [[589100, 756000], [589300, 756000], [589300, 756100], [589100, 756000]]
    utm_polygon = {"type": "Polygon", "coordinates": [utm_ring]}
    with pytest.raises(QueryError, match=r"cannot be longitude/latitude.*crs='EPSG:32637'"):
        q.area_statistics(cube_path, geojson=utm_polygon)
    # the same polygon saved to a file, in the right CRS, works
    path = tmp_path / "area.geojson"
    path.write_text(json.dumps(utm_polygon))
    assert q.area_statistics(cube_path, geojson=path, crs="EPSG:32637").attrs["area"]["n_pixels"]
    far = {"type": "Polygon", "coordinates": [[[10, 50], [11, 50], [11, 51], [10, 50]]]}
    with pytest.raises(QueryError, match=r"does not overlap the cube grid.*is its CRS right"):
        q.area_statistics(cube_path, geojson=far)
    with pytest.raises(QueryError, match="holds no pixel centre"):
        q.area_statistics(cube_path, bbox=(589036, 756100, 589040, 756105), crs="EPSG:32637")
    with pytest.raises(QueryError, match="not both"):
        q.area_statistics(cube_path, bbox=(1, 2, 3, 4), geojson=far)
    with pytest.raises(QueryError, match="empty box"):
        q.area_statistics(cube_path, bbox=(39.9, 6.8, 39.8, 6.9))
    with pytest.raises(QueryError, match="not valid JSON"):
        q.area_statistics(cube_path, geojson="{not json")
    with pytest.raises(QueryError, match="cannot read"):
        q.area_statistics(cube_path, geojson=tmp_path / "missing.geojson")
    with pytest.raises(QueryError, match="not an area"):
        q.area_statistics(cube_path, geojson={"type": "Point", "coordinates": [39.8, 6.8]})
    with pytest.raises(QueryError, match="empty time range"):
        q.area_statistics(cube_path, start=2001, end=2005)


def test_area_statistics_of_the_complete_maps(cube_path):
    st = q.area_statistics(cube_path).set_index("year")
    assert st.attrs["maps"] == "complete" and st.attrs["window"] == 3
    # 1992: rows 0-5 unseen in both scenes, filled from 1991 and 1993, which agree: the
    # shares are those of the planted map, not of the half of the area the year saw
    planted = planted_classes(1992)
    for code, name in ((2, "water"), (3, "vegetation"), (4, "non_vegetated")):
        assert st.loc[1992, f"{name}_fraction"] == pytest.approx((planted == code).mean())
        assert st.loc[1992, f"{name}_ha"] == pytest.approx((planted == code).sum() * PIXEL_HA)
    assert st.loc[1992, "observed_fraction"] == 0.5  # still reported
    assert st.loc[1992, "filled_fraction"] == 0.5
    assert st.loc[1992, "filled_ha"] == pytest.approx(96 * PIXEL_HA)
    # fully observed years are the stored figures, with nothing filled
    stored = q.area_statistics(cube_path, observed_only=True).set_index("year")
    assert stored.attrs["maps"] == "observed" and (stored["filled_fraction"] == 0).all()
    seen = [y for y in YEARS if y != 1992]
    pd.testing.assert_frame_equal(st.loc[seen], stored.loc[seen], check_like=True)
    assert (st.loc[seen, "filled_fraction"] == 0).all()
    # a range of one year still fills it from its neighbours outside the range
    one = q.area_statistics(cube_path, start=1992, end=1992).set_index("year")
    pd.testing.assert_series_equal(one.loc[1992], st.loc[1992])
    # a window of 0 fills nothing: the shares of the observed part
    none = q.area_statistics(cube_path, window=0).set_index("year")
    assert none.loc[1992, "vegetation_fraction"] == pytest.approx(32 / 96)


def test_complete_maps_are_lazy_with_their_confidence(cube_path):
    with raise_if_dask_computes():
        full = q.complete_yearly(cube_path)
    assert all(isinstance(full[v].data, da.Array) for v in full.data_vars)
    assert full["land_cover"].dtype == np.uint8 and full["agreement"].dtype == np.float32
    assert full.rio.crs == pyproj.CRS.from_epsg(32637)
    f = full.sel(year=1992).compute()
    np.testing.assert_array_equal(f["land_cover"].values, planted_classes(1992))
    np.testing.assert_array_equal(f["yearly_land_cover"].values[:6], 0)  # stored: unseen
    assert (f["fill_source"].values[:6] == 2).all() and (f["fill_source"].values[6:] == 1).all()
    assert f["fill_source"].attrs["flag_meanings"].split()[2] == "filled_agreeing"
    assert (f["years_to_observation"].values[:6] == 1).all()
    assert (f["years_to_observation"].values[6:] == 0).all()
    # two clear scenes a year, always of one class: every value is fully agreed
    assert (f["agreement"].values == 1).all()
    one = q.complete_yearly(cube_path, start=1992, end=1992).compute()
    assert one["year"].values.tolist() == [1992]
    xr.testing.assert_identical(one.isel(year=0).drop_vars("year"), f.drop_vars("year"))


def test_bad_choice_of_maps_is_named(cube_path):
    for query in (
        lambda **k: q.area_statistics(cube_path, **k),
        lambda **k: q.transition_matrix(cube_path, 1984, 1990, **k),
        lambda **k: q.first_change(cube_path, **k),
        lambda **k: q.complete_yearly(cube_path, **k),
    ):
        with pytest.raises(QueryError, match=r"window: expected a whole number of years from 0"):
            query(window=-1)
        with pytest.raises(QueryError, match=r"window: .* got 2\.5"):
            query(window=2.5)
    with pytest.raises(QueryError, match="observed_only: expected True or False, got 'yes'"):
        q.area_statistics(cube_path, observed_only="yes")
    with pytest.raises(QueryError, match="observed_only"):
        q.first_change(cube_path, observed_only=1)


def test_land_cover_map_is_lazy_and_exact(cube_path):
    with raise_if_dask_computes():
        lc = q.land_cover_map(cube_path, 1991)
    assert isinstance(lc.data, da.Array)
    np.testing.assert_array_equal(lc.values, planted_classes(1991))
    assert lc.rio.crs == pyproj.CRS.from_epsg(32637)
    assert lc.rio.transform() == GRID.transform
    with pytest.raises(QueryError, match="no per-year layer"):
        q.land_cover_map(cube_path, 1970)


# --------------------------------------------------------------------------------------
# Trends
# --------------------------------------------------------------------------------------


def test_trend_map_is_lazy_and_finds_the_planted_slopes(cube_path):
    with raise_if_dask_computes():
        trend = q.mviupd_trend(cube_path)
    assert all(isinstance(trend[v].data, da.Array) for v in trend.data_vars)
    assert trend.slope.chunks == ((8, 4), (8, 8))
    t = trend.compute()
    assert t.slope.values[C] == pytest.approx(0.01, abs=1e-6)
    assert t.n_years.values[C] == 11  # 1992 unseen in row 0
    # strictly increasing over 11 years: S = 55, Var = 11*10*27/18, continuity-corrected Z
    p = math.erfc((55 - 1) / math.sqrt(11 * 10 * 27 / 18) / math.sqrt(2))
    assert t.p_value.values[C] == pytest.approx(p, rel=1e-5)
    assert bool(t.significant.values[C])
    water = (0, 10)
    assert t.slope.values[water] == 0 and t.p_value.values[water] == 1
    assert not t.significant.values[water]
    assert t.rio.crs == pyproj.CRS.from_epsg(32637)
    # an area: outside pixels of its window are NaN; 1986-1990 gives 4 years to row 0
    sub = q.mviupd_trend(
        cube_path, bbox=(589035, 756010, 589100, 756165), crs="EPSG:32637", start=1986, end=1990
    ).compute()
    assert sub.slope.shape == (5, 2)
    assert sub.n_years.values[0, 0] == 5 and sub.attrs["first_year"] == 1986
    with pytest.raises(QueryError, match="at least 2"):
        q.mviupd_trend(cube_path, start=1990, end=1990)
    with pytest.raises(QueryError, match="min_years"):
        q.mviupd_trend(cube_path, min_years=1)


def test_trend_summary_over_an_area(cube_path):
    s = q.trend_summary(cube_path, bbox=(589035, 755985, 589275, 756165), crs="EPSG:32637")
    # rows 0-5, cols 0-7: all rising vegetation except pixel A (vegetation, then urban)
    assert s["n_pixels"] == 48 and s["n_with_trend"] == 48
    assert s["share_increasing"] == pytest.approx(47 / 48)
    assert s["median_slope"] == pytest.approx(0.01, abs=1e-6)
    assert s["area_series"]["slope"] == pytest.approx(0.01, abs=1e-6)


# --------------------------------------------------------------------------------------
# Change
# --------------------------------------------------------------------------------------


def test_transition_matrix_in_hectares(cube_path):
    t = q.transition_matrix(cube_path, (1984, 1986), (1993, 1995))
    assert t.hectares_between("vegetation", "non_vegetated") == pytest.approx(17 * PIXEL_HA)
    assert t.hectares_between("vegetation", "vegetation") == pytest.approx(79 * PIXEL_HA)
    assert t.hectares_between("water", "water") == pytest.approx(48 * PIXEL_HA)
    assert t.pixels.to_numpy().sum() == NY * NX
    assert int(t.pixels.loc["non_vegetated", "vegetation"]) == 0
    long = t.to_long()
    assert (
        long.set_index(["from_class", "to_class"]).loc[("vegetation", "non_vegetated"), "pixels"]
        == 17
    )
    assert "vegetation" in t.format()
    # an epoch of one year; 1992 leaves rows 0-5 unobserved
    t92 = q.transition_matrix(cube_path, 1984, 1992, observed_only=True)
    assert int(t92.pixels.loc["water", "no_data"]) == 48
    # the complete maps (default) fill 1992's unseen rows from 1991 and 1993
    full92 = q.transition_matrix(cube_path, 1984, 1992)
    assert int(full92.pixels["no_data"].sum()) == 0
    assert int(full92.pixels.loc["water", "water"]) == 48
    assert full92.hectares_between("vegetation", "urban") == pytest.approx(17 * PIXEL_HA)
    with pytest.raises(QueryError, match="empty epoch"):
        q.transition_matrix(cube_path, (1990, 1980), (1993, 1995))
    with pytest.raises(QueryError, match="empty time range"):
        q.transition_matrix(cube_path, (1970, 1975), (1993, 1995))
    with pytest.raises(QueryError, match="unknown class 'forest'"):
        t.hectares_between("forest", "urban")


def test_first_persistent_change_kernel_rule():
    years = np.arange(2000, 2010)
    V, U, W = 3, 4, 2
    seqs = np.array(
        [
            [V, V, V, U, U, U, U, U, U, U],  # change in 2003
            [V, V, U, V, V, V, V, V, V, V],  # a one-year departure is no change
            [V, V, V, U, 0, 0, U, 0, U, U],  # unobserved years are skipped: 2003
            [V, V, U, U, U, U, U, U, U, U],  # baseline = most frequent of the first 3 = V
            [U, U, V, V, V, V, V, V, V, V],  # baseline U (2 of 3): change to V in 2002
            [V, V, V, W, W, U, U, U, V, V],  # 2-year water is no change; urban from 2005
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # never observed
            [V, U, U, 0, 0, 0, 0, 0, 0, 0],  # too few observed years
        ],
        dtype=np.uint8,
    )
    out = first_persistent_change(seqs, years, persistence=3)
    assert out.tolist() == [
        [2003, V, U],
        [0, 0, 0],
        [2003, V, U],
        [2002, V, U],
        [2002, U, V],
        [2005, V, U],
        [0, 0, 0],
        [0, 0, 0],
    ]
    # persistence 1: any departure from the baseline counts
    assert first_persistent_change(seqs[1], years, persistence=1).tolist() == [2002, V, U]
    with pytest.raises(QueryError, match="persistence"):
        first_persistent_change(seqs, years, persistence=0)
    with pytest.raises(QueryError, match="years"):
        first_persistent_change(seqs, years[:5])


def test_first_change_map_is_lazy_and_finds_the_planted_changes(cube_path):
    with raise_if_dask_computes():
        fc = q.first_change(cube_path, persistence=3)
    assert isinstance(fc.first_change_year.data, da.Array)
    fc = fc.compute()
    year = fc.first_change_year.values
    expected = np.zeros((NY, NX), np.int16)
    expected[A] = 1991
    expected[B_ROWS, B_COLS] = 1988
    np.testing.assert_array_equal(year, expected)
    assert fc.from_class.values[A] == 3 and fc.to_class.values[A] == 4
    assert fc.from_class.values[0, 0] == 0
    table = q.change_table(q.first_change(cube_path))
    assert table[["year", "from_class", "to_class", "pixels"]].values.tolist() == [
        [1988, "vegetation", "non_vegetated", 16],
        [1991, "vegetation", "non_vegetated", 1],
    ]
    assert table["hectares"].tolist() == pytest.approx([16 * PIXEL_HA, PIXEL_HA])
    assert table.attrs["maps"] == "complete"
    # the stored per-year layers give the same changes here (1992 is bridged either way)
    observed = q.first_change(cube_path, persistence=3, observed_only=True).compute()
    np.testing.assert_array_equal(observed.first_change_year.values, expected)
    assert observed.attrs["maps"] == "observed"


def test_first_change_counts_observed_and_confirmed_years_only(tmp_path):
    # one scene a year 2000-2009 on 2 x 2 pixels; 0 = cloud that year
    V, U = 3, 4
    series = [
        [V, V, V, U, 0, U, V, V, V, V],  # U seen twice around a cloudy year: 3 confirmed
        [V, V, V, U, 0, 0, 0, V, V, V],  # U seen once: the map carries it, no change
        [V, V, V, V, V, V, V, U, 0, 0],  # U seen once at the end: carried, no change
        [V, V, V, U, U, U, U, U, U, U],  # a change seen every year
    ]
    grid = CubeGrid("EPSG:32637", Affine(30, 0, 589035, 0, -30, 756165), (2, 2))
    cube = create_cube(tmp_path / "c", grid, chunks=2)
    scenes = []
    for k, year in enumerate(range(2000, 2010)):
        lc = np.array([s[k] for s in series], np.uint8).reshape(2, 2)
        cloudy = lc == 0
        lc[cloudy] = 1
        ds = xr.Dataset(
            {
                "land_cover": (("y", "x"), lc),
                "quality": (("y", "x"), np.where(cloudy, QUALITY_CLOUD, 0).astype(np.uint8)),
                "mviupd": (("y", "x"), np.full((2, 2), 0.3, np.float32)),
            },
            coords={"y": grid.y, "x": grid.x},
        ).rio.write_crs(grid.crs)
        ds = ds.assign_coords(scene_id=f"S{year}", time=np.datetime64(f"{year}-06-01", "us"))
        ds.attrs.update(sensor="TM", platform="LANDSAT_5")
        scenes.append(ds)
    cube.append_scenes(scenes, metadata={}, message="series")
    cube.rebuild_yearly()
    full = q.complete_yearly(cube).compute()
    # what the complete map shows: U carried into the clouds of pixels 1 and 2
    np.testing.assert_array_equal(
        full["land_cover"].values[:, 0, 1], [V, V, V, U, U, U, V, V, V, V]
    )
    np.testing.assert_array_equal(full["fill_source"].values[4:7, 0, 1], [4, 4, 4])
    np.testing.assert_array_equal(full["fill_source"].values[8:, 1, 0], [3, 3])
    np.testing.assert_array_equal(full["land_cover"].values[8:, 1, 0], [U, U])
    years = q.first_change(cube, persistence=3).first_change_year.values.ravel().tolist()
    assert years == [2003, 0, 0, 2003]
    observed = q.first_change(cube, persistence=3, observed_only=True)
    assert observed.first_change_year.values.ravel().tolist() == [0, 0, 0, 2003]


# --------------------------------------------------------------------------------------
# Cross-sensor comparison
# --------------------------------------------------------------------------------------


def test_compare_sensors_recovers_the_planted_conversion(cube_path):
    cmp = q.compare_sensors(cube_path, "TM", "ETM+", start=1993, max_days=10)
    assert [p["reference"] for p in cmp.pairs] == ["TM1993", "TM1994", "TM1995"]
    assert all(p["days"] == 8 for p in cmp.pairs)
    ag = cmp.agreement
    assert ag.loc["water", "n_reference"] == 3 * 48
    assert ag.loc["vegetation", "n_reference"] == 3 * 79
    assert ag.loc[["water", "vegetation", "non_vegetated"], "agreement"].tolist() == [1.0, 1.0, 1.0]
    assert math.isnan(ag.loc["cloud", "agreement"])
    assert cmp.overall_agreement == 1.0
    conv = cmp.conversion_table.set_index("quantity")
    for name in ("uCw", "uCv", "uCs"):
        assert conv.loc[name, "a"] == pytest.approx(0.8, abs=1e-5)
        assert conv.loc[name, "b"] == pytest.approx(0.01, abs=1e-6)
        assert conv.loc[name, "r"] == pytest.approx(1.0, abs=1e-9)
        assert conv.loc[name, "n"] == 3 * NY * NX
    assert conv.loc["S", "b"] == pytest.approx(0.03, abs=1e-5)
    assert cmp.conversion.coefficients["mviupd"] == pytest.approx((1.0, 0.0), abs=1e-6)
    with pytest.raises(QueryError, match="no TM/ETM\\+ scene pair within 5 days"):
        q.compare_sensors(cube_path, "TM", "ETM+", max_days=5)
    with pytest.raises(QueryError, match="no MSS scene"):
        q.compare_sensors(cube_path, "MSS", "TM")


def test_compare_a_cloudy_scene_with_a_clear_one(cube_path):
    cmp = q.compare_scenes(cube_path, "TM1989", "ETM+1989")
    ag = cmp.agreement
    assert ag.loc["cloud", "n_reference"] == NY * NX and ag.loc["cloud", "agreement"] == 0.0
    assert ag.loc["vegetation", "n_other"] == 80 and math.isnan(ag.loc["vegetation", "agreement"])
    assert cmp.overall_agreement == 0.0
    assert cmp.conversion is None
    assert "0 valid pairs" in cmp.conversion_table.set_index("quantity").loc["uCv", "note"]
    json.dumps(cmp.to_dict())
    with pytest.raises(QueryError, match="no scene 'LT5'"):
        q.compare_scenes(cube_path, "LT5", "TM1990")


def test_compare_layers_with_the_2x2_rule():
    # reference TM at 30 m; the other is MSS, 60 m pixels = constant 2x2 blocks
    V, U, W, CL = 3, 4, 2, 1
    tm = np.array(
        [
            [V, V, U, U, U, W],
            [V, U, U, W, W, U],  # blocks: V(3 of 4) | U(3) | U/W tie -> urban
            [W, W, V, U, CL, CL],
            [W, W, U, V, CL, V],  # blocks: W | V/U tie -> vegetation | cloud (3)
        ],
        dtype=np.uint8,
    )
    mss_blocks = np.array([[V, U, W], [W, U, CL]], dtype=np.uint8)
    mss = np.kron(mss_blocks, np.ones((2, 2), dtype=np.uint8))
    y = 756165 - 15 - 30 * np.arange(4.0)
    x = 589035 + 15 + 30 * np.arange(6.0)
    rng = np.random.default_rng(0)
    uCv = rng.uniform(0.01, 0.1, (4, 6))

    def layers(lc, sensor, platform, coef):
        return xr.Dataset(
            {
                "land_cover": (("y", "x"), lc),
                "uCw": (("y", "x"), np.full((4, 6), 0.01) + coef * 0.1),
                "uCv": (("y", "x"), coef),
                "uCs": (("y", "x"), 0.05 + coef * 0.5),
            },
            coords={"y": y, "x": x},
            attrs={"sensor": sensor, "platform": platform},
        )

    mss_coef = np.kron(uCv.reshape(2, 2, 3, 2).mean(axis=(1, 3)) * 0.7 + 0.002, np.ones((2, 2)))
    cmp = q.compare_layers(
        layers(tm, "TM", "LANDSAT_5", uCv), layers(mss, "MSS", "LANDSAT_5", mss_coef)
    )
    assert cmp.aggregate == 2
    ag = cmp.agreement
    # aggregated TM: [V, U, U; W, V, CL] against MSS [V, U, W; W, U, CL]
    assert ag.loc["vegetation", ["n_reference", "n_both"]].tolist() == [2, 1]
    assert ag.loc["non_vegetated", ["n_reference", "n_other", "n_both"]].tolist() == [2, 2, 1]
    assert ag.loc["water", "agreement"] == 1.0 and ag.loc["cloud", "agreement"] == 1.0
    assert cmp.overall_agreement == pytest.approx(4 / 6)
    conv = cmp.conversion_table.set_index("quantity")
    assert conv.loc["uCv", "a"] == pytest.approx(0.7) and conv.loc["uCv", "b"] == pytest.approx(
        0.002
    )
    assert conv.loc["uCv", "n"] == 6
    # forced factor 1: no aggregation
    assert q.compare_layers(layers(tm, "TM", 5, uCv), layers(tm, "TM", 5, uCv)).aggregate == 1
    with pytest.raises(QueryError, match="not on one grid"):
        q.compare_layers(layers(tm, "TM", 5, uCv), layers(tm, "TM", 5, uCv).isel(x=slice(0, 4)))


def test_compare_real_etm_and_oli_scenes(shared_data):
    from updm_dask.geo import to_grid
    from updm_dask.pipeline import process_scene
    from updm_dask.scenes import open_scene

    root = shared_data / "landsat" / "ethiopia-167055"
    grid = CubeGrid("EPSG:32637", Affine(30, 0, 589035, 0, -30, 756165), (101, 101))
    placed = []
    for name in (
        "LE07_L1TP_167055_20170316_20170411_01_T1",
        "LC08_L1TP_167055_20170308_20170317_01_T1",
    ):
        layers = process_scene(open_scene(root / name))
        methods = {v: "mode" if v in ("land_cover", "quality") else "average" for v in layers}
        placed.append(to_grid(layers, grid, method=methods))
    cmp = q.compare_layers(placed[0], placed[1])
    print(cmp.format())
    assert cmp.aggregate == 1  # both 30 m
    assert cmp.reference.startswith("ETM+") and cmp.other.startswith("OLI")
    ag = cmp.agreement
    valid = ag["agreement"].dropna()
    assert len(valid) >= 1 and ((valid >= 0) & (valid <= 1)).all()
    assert 0 <= cmp.overall_agreement <= 1
    # the SLC-off gaps of the ETM+ scene (27-30 % of its pixels) are not compared
    assert 0.6 * 101 * 101 < ag["n_reference"].sum() < 0.8 * 101 * 101
    conv = cmp.conversion_table.set_index("quantity")
    # the same dry landscape 8 days apart: vegetation and soil coefficients agree closely
    assert conv.loc["uCv", "r"] > 0.9 and conv.loc["uCs", "r"] > 0.9 and conv.loc["S", "r"] > 0.9
    assert 0.5 < conv.loc["uCv", "a"] < 1.5 and 0.5 < conv.loc["S", "a"] < 1.5


# --------------------------------------------------------------------------------------
# Rule fitting
# --------------------------------------------------------------------------------------

# (class, uCw, uCv, uCs); S and MVIUPD follow from them
SAMPLES = [
    ("cloud", 0.010, 0.10, 0.20),
    ("cloud", 0.015, 0.12, 0.25),
    ("water", 0.001, 0.004, 0.02),
    ("water", 0.002, 0.006, 0.03),
    ("vegetation", 0.001, 0.10, 0.02),
    ("vegetation", 0.002, 0.08, 0.03),
    ("urban", 0.003, 0.02, 0.10),
    ("urban", 0.004, 0.03, 0.08),
]


def samples_frame(rows=SAMPLES) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["class", "uCw", "uCv", "uCs"])
    df["S"] = df.uCw + df.uCv + df.uCs
    df["mviupd"] = (df.uCv - df.uCw - 0.2 * df.uCs) / df.S
    return df


def test_fit_rules_places_thresholds_between_the_clusters(tmp_path):
    fit = q.fit_rules(samples_frame(), "TM", name="fitted-test")
    got = {(r["class"], r["quantity"]): r["fitted"] for _, r in fit.report.iterrows()}
    # midpoints of the gaps, worked by hand from SAMPLES
    assert got[("cloud", "uCw")] == pytest.approx((0.004 + 0.010) / 2)
    assert got[("cloud", "S")] == pytest.approx((0.123 + 0.31) / 2)  # urban 0.123 < cloud 0.31
    assert got[("water", "uCv")] == pytest.approx((0.006 + 0.02) / 2)
    assert got[("water", "S")] == pytest.approx((0.038 + 0.112) / 2)
    veg_low = (0.08 - 0.002 - 0.006) / 0.112
    urban_high = (0.03 - 0.004 - 0.016) / 0.114
    assert got[("vegetation", "mviupd")] == pytest.approx((urban_high + veg_low) / 2)
    assert got[("non_vegetated", "mviupd")] == got[("vegetation", "mviupd")]  # tied
    assert (fit.report["accuracy"].iloc[:5] == 1.0).all()
    path = fit.save(tmp_path / "fitted.toml")
    table = load_rules(path)
    assert table.sha256 == fit.table.sha256 and table.name == "fitted-test"
    coefs = samples_frame()[["uCw", "uCv", "uCs"]].to_numpy()
    codes = {"cloud": 1, "water": 2, "vegetation": 3, "urban": 4}
    assert classify_array(coefs, table).tolist() == [codes[c] for c, *_ in SAMPLES]
    # a job spec takes the file as its rule table
    from updm_dask.jobs.spec import load_job_spec
    from updm_dask.pipeline import Science

    job = tmp_path / "job.toml"
    job.write_text(
        '[inputs]\npaths = ["scenes"]\n[cube]\npath = "c.icechunk"\n'
        '[grid]\ncrs = "EPSG:32637"\ntransform = [30, 0, 589035, 0, -30, 756165]\n'
        'shape = [10, 10]\n[science]\nrules = "fitted.toml"\n'
    )
    spec = load_job_spec(job)
    assert Science(rules=spec.rules).rules_for("TM").sha256 == fit.table.sha256
    assert "fitted" in fit.format()


def test_fit_rules_keeps_unsampled_rules_and_rejects_bad_samples():
    no_cloud = samples_frame([s for s in SAMPLES if s[0] != "cloud"])
    fit = q.fit_rules(no_cloud)
    cloud = fit.report[fit.report["class"] == "cloud"]
    assert cloud["fitted"].tolist() == [0.00663, 0.161]
    assert cloud["note"].str.contains("no cloud samples").all()
    with pytest.raises(QueryError, match="class 'forest' is not in rule table"):
        q.fit_rules(samples_frame([("forest", 0.0, 0.1, 0.01)]))
    with pytest.raises(QueryError, match="no column for quantity"):
        q.fit_rules(samples_frame().drop(columns=["S"]))
    with pytest.raises(QueryError, match="template"):
        q.fit_rules(samples_frame(), "no-such-table")


def test_sample_pixels_from_the_cube_under_points_and_polygons(cube_path):
    x_a, y_a = centre(*A)
    # right triangle over the water, corner at the top-left of pixel (0, 8); its
    # hypotenuse x - y = const passes 6 m from the nearest pixel centres
    x0, y0 = 589035 + 8 * 30 + 1, 756165 - 1
    water_ring = [[x0, y0], [x0 + 124, y0], [x0, y0 - 124], [x0, y0]]
    labels = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"class": "urban"},
                "geometry": {"type": "Point", "coordinates": [x_a, y_a]},
            },
            {
                "type": "Feature",
                "properties": {"class": "water"},
                "geometry": {"type": "Polygon", "coordinates": [water_ring]},
            },
        ],
    }
    s = q.sample_pixels(cube_path, labels, crs="EPSG:32637", start=1993, end=1993)
    # pixel A in the two 1993 scenes; the triangle holds 4 + 3 + 2 + 1 water pixel centres
    assert sorted(s.groupby("class").size().items()) == [("urban", 2), ("water", 20)]
    a = s[s["class"] == "urban"].sort_values("scene_id")
    assert a["scene_id"].tolist() == ["ETM+1993", "TM1993"]
    assert a["uCw"].tolist() == pytest.approx([0.8 * 0.012 + 0.01, 0.012], abs=1e-6)
    # the 1992 scenes are cloudy over A: a non-cloud label there gives no sample
    with pytest.raises(QueryError, match="no usable sample"):
        q.sample_pixels(cube_path, labels["features"][0], crs="EPSG:32637", start=1992, end=1992)
    with pytest.raises(QueryError, match="no 'class' property"):
        q.sample_pixels(cube_path, {"type": "Point", "coordinates": [x_a, y_a]}, crs="EPSG:32637")
    with pytest.raises(QueryError, match="no scene 'X'"):
        q.sample_pixels(cube_path, labels, crs="EPSG:32637", scenes=["X"])


# --------------------------------------------------------------------------------------
# Exports
# --------------------------------------------------------------------------------------


def test_maps_as_cloud_optimised_geotiffs(cube_path, tmp_path):
    lc = q.write_cog(
        q.land_cover_map(cube_path, 1992),
        tmp_path / "lc.tif",
        nodata=0,
        colormap=q.class_colormap(),
    )
    with rasterio.open(lc) as f:
        assert f.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert f.crs.to_epsg() == 32637 and f.transform == GRID.transform
        assert f.nodata == 0 and f.dtypes == ("uint8",)
        expected = planted_classes(1992)
        expected[:6] = 0
        np.testing.assert_array_equal(f.read(1), expected)
        assert f.colormap(1)[3][:3] == (0x2E, 0x9E, 0x44)  # vegetation green
        assert f.colormap(1)[0][3] == 0  # no_data transparent
    trend = q.mviupd_trend(cube_path)
    tif = q.write_cog(trend[["slope", "p_value"]].to_dataarray("band"), tmp_path / "trend.tif")
    with rasterio.open(tif) as f:
        assert f.descriptions == ("slope", "p_value")
        assert f.read(1)[C] == pytest.approx(0.01, abs=1e-6)
        assert math.isnan(f.nodata)
    fc = q.write_cog(q.first_change(cube_path)["first_change_year"], tmp_path / "fc.tif")
    with rasterio.open(fc) as f:
        assert f.read(1)[A] == 1991 and f.nodata == 0
    with pytest.raises(QueryError, match="exists"):
        q.write_cog(q.land_cover_map(cube_path, 1992), lc, overwrite=False)


def test_tables_as_csv_and_json(cube_path, tmp_path):
    table = q.yearly_series(cube_path, x=centre(*A)[0], y=centre(*A)[1])
    csv = q.write_table(table, tmp_path / "a.csv")
    back = pd.read_csv(csv)
    assert back["yearly_land_cover"].tolist() == table["yearly_land_cover"].tolist()
    doc = json.loads(q.write_table(table, tmp_path / "a.json").read_text())
    assert doc["metadata"]["point"]["row"] == A[0]
    assert doc["rows"][8]["yearly_mviupd_median"] is None  # NaN -> null
    with pytest.raises(QueryError, match="unknown format"):
        q.write_table(table, tmp_path / "a.xlsx")


def test_plain_zarr_copy_of_a_snapshot(cube_path, tmp_path):
    out = q.export_zarr(cube_path, tmp_path / "copy.zarr", tag="early")
    copy = xr.open_zarr(out, consolidated=False)
    assert copy.attrs["updm_export_of"] and copy.attrs["updm_snapshot"]
    from updm_dask.cube import open_cube

    original = open_cube(cube_path, tag="early").to_xarray()
    for name in ("uCw", "land_cover", "yearly_land_cover"):
        np.testing.assert_array_equal(copy[name].values, original[name].values)
    assert copy.sizes["time"] == 8 and copy.rio.crs == pyproj.CRS.from_epsg(32637)
    with pytest.raises(QueryError, match="exists"):
        q.export_zarr(cube_path, out)


# --------------------------------------------------------------------------------------
# Pictures
# --------------------------------------------------------------------------------------


def _png_has_colour(path: Path, hex_rgb: str, tol: int = 3) -> bool:
    import matplotlib.image

    img = (matplotlib.image.imread(path)[..., :3] * 255).round().astype(int)
    rgb = np.array([int(hex_rgb[i : i + 2], 16) for i in (1, 3, 5)])
    return bool((np.abs(img - rgb).max(axis=-1) <= tol).any())


def test_pictures(cube_path, tmp_path):
    from updm_dask.query import plots

    x, y = centre(*A)
    series = q.point_series(cube_path, x=x, y=y)
    for p in png_targets(tmp_path, "point_series.png"):
        plots.plot_point_series(series.scenes, p, yearly=series.yearly)
    stats = q.area_statistics(cube_path)
    for p in png_targets(tmp_path, "class_fractions.png"):
        plots.plot_class_fractions(stats, p)
    lc = q.land_cover_map(cube_path, 1992)
    for p in png_targets(tmp_path, "land_cover_1992.png"):
        plots.plot_land_cover_map(lc, p)
    trend = q.mviupd_trend(cube_path)
    for p in png_targets(tmp_path, "trend.png"):
        plots.plot_trend_map(trend, p)
    for name in ("point_series", "class_fractions", "land_cover_1992", "trend"):
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    vegetation, urban, water = "#2e9e44", "#c0463a", "#2f6fbf"
    assert _png_has_colour(tmp_path / "land_cover_1992.png", vegetation)
    assert _png_has_colour(tmp_path / "land_cover_1992.png", urban)
    assert _png_has_colour(tmp_path / "class_fractions.png", water)
    assert _png_has_colour(tmp_path / "point_series.png", vegetation)
    with pytest.raises(QueryError, match="does not exist"):
        plots.plot_class_fractions(stats, tmp_path / "missing" / "x.png")


def test_area_picture_shows_the_mapped_share_of_the_complete_maps(cube_path, tmp_path):
    from updm_dask.query import plots

    mapped = "#7b3294"  # the dotted line of the share mapped (observed or filled)
    complete = q.area_statistics(cube_path)
    for p in png_targets(tmp_path, "class_fractions_complete.png"):
        plots.plot_class_fractions(complete, p)
    assert _png_has_colour(tmp_path / "class_fractions_complete.png", mapped)
    stored = q.area_statistics(cube_path, observed_only=True)
    plots.plot_class_fractions(stored, tmp_path / "stored.png")
    assert not _png_has_colour(tmp_path / "stored.png", mapped)
    # 1992's water, hidden under clouds, is drawn from the complete maps
    water = "#2f6fbf"
    one = q.area_statistics(cube_path, start=1991, end=1993)
    plots.plot_class_fractions(one, tmp_path / "complete_9193.png")
    assert _png_has_colour(tmp_path / "complete_9193.png", water)


def test_cli_chooses_the_maps(cube_path, capsys):
    cube = str(cube_path)
    assert main(["query", "area", cube, "--start", "1992", "--end", "1992", "--format", "csv"]) == 0
    full = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert full["vegetation_fraction"].tolist() == [pytest.approx(79 / 192)]
    assert full["filled_fraction"].tolist() == [0.5]
    args = ["query", "area", cube, "--start", "1992", "--end", "1992", "--format", "csv"]
    assert main([*args, "--observed-only"]) == 0
    stored = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert stored["vegetation_fraction"].tolist() == [pytest.approx(32 / 96)]
    assert main([*args, "--fill-window", "0"]) == 0
    assert pd.read_csv(io.StringIO(capsys.readouterr().out))["filled_fraction"].tolist() == [0]
    assert main(["query", "change", cube, "--from", "1984", "1984", "--to", "1992", "1992"]) == 0
    assert "no_data" in (out := capsys.readouterr().out)
    assert (
        main(
            [
                "query",
                "change",
                cube,
                "--from",
                "1984",
                "1984",
                "--to",
                "1992",
                "1992",
                "--observed-only",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out != out
    assert main(["query", "first-change", cube]) == 0
    assert "(3 confirmed years)" in capsys.readouterr().out
    assert main(["query", "first-change", cube, "--observed-only"]) == 0
    assert "(3 observed years)" in capsys.readouterr().out
    assert main([*args, "--fill-window", "-1"]) == 2
    assert "window: expected a whole number of years from 0 to 254, got -1" in (
        capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        main([*args, "--observed-only", "--fill-window", "2"])
    assert "not allowed with argument" in capsys.readouterr().err


# --------------------------------------------------------------------------------------
# Answers (what the commands show)
# --------------------------------------------------------------------------------------


def test_answers_pick_the_format_and_write_files(cube_path, tmp_path):
    from updm_dask.query.answers import area_answer, output_format, trend_answer

    assert output_format(None, None) == "table"
    assert output_format(None, "a.JSON") == "json"
    assert output_format("csv", "a.json") == "csv"
    with pytest.raises(QueryError, match="cannot tell the format"):
        output_format(None, "a.txt")
    area = area_answer(cube_path, start=1990, end=1991)
    assert area.render().startswith("the whole cube: 192 pixels, 17.28 ha, snapshot ")
    assert area.render("csv").splitlines()[0].startswith("year,area_ha,observed_ha")
    assert json.loads(area.render("json"))["rows"][1]["year"] == 1991
    assert pd.read_csv(area.save(tmp_path / "a.csv", "csv"))["year"].tolist() == [1990, 1991]
    with pytest.raises(QueryError, match="needs --format csv or json"):
        area.save(tmp_path / "a.txt", "table")
    assert area.draw(tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    trend = trend_answer(cube_path, min_years=5)
    assert "(>= 5 observed years)" in trend.render()
    with pytest.raises(QueryError, match="not a table"):
        trend.render("csv")
    assert json.loads(trend.save(tmp_path / "t.json", "json").read_text())["n_pixels"] == NY * NX
    with pytest.raises(QueryError, match="no picture"):
        trend.draw(tmp_path / "t.png")


def test_export_map_writes_the_layer_asked_for(cube_path, tmp_path):
    out = q.export_map(cube_path, "clear_count", tmp_path / "n.tif", year=1992)
    with rasterio.open(out) as f:
        assert f.read(1)[0, 0] == 0 and f.read(1)[11, 0] == 2
    with pytest.raises(QueryError, match="no picture for --layer first_change"):
        q.export_map(cube_path, "first_change", tmp_path / "fc.png")
    with pytest.raises(QueryError, match="covers a range of years"):
        q.export_map(cube_path, "trend", tmp_path / "t.tif", year=1990)
    with pytest.raises(QueryError, match="unknown map layer"):
        q.export_map(cube_path, "ndvi", tmp_path / "x.tif")


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_query_and_export(cube_path, tmp_path, capsys):
    x, y = centre(*A)
    cube = str(cube_path)
    assert main(["query", "point", cube, "--xy", str(x), str(y), "--yearly"]) == 0
    out = capsys.readouterr().out
    assert "row 2, col 3" in out and "non_vegetated" in out
    assert main(["query", "point", cube, "--xy", str(x), str(y), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["rows"]) == 24 and doc["metadata"]["point"]["col"] == 3
    csv = tmp_path / "area.csv"
    assert main(["query", "area", cube, "-o", str(csv), "--plot", str(tmp_path / "a.png")]) == 0
    assert pd.read_csv(csv)["year"].tolist() == YEARS and (tmp_path / "a.png").exists()
    capsys.readouterr()
    assert main(["query", "change", cube, "--from", "1984", "1986", "--to", "1993", "1995"]) == 0
    assert "1.53" in capsys.readouterr().out  # 17 pixels vegetation -> urban
    assert main(["query", "first-change", cube, "--format", "csv"]) == 0
    assert "1988,vegetation,non_vegetated,16" in capsys.readouterr().out
    assert main(["query", "trend", cube, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_pixels"] == NY * NX
    assert main(["query", "compare", cube, "--sensors", "TM", "ETM+", "--start", "1993"]) == 0
    assert "100.0 %" in capsys.readouterr().out
    tif = tmp_path / "lc.tif"
    assert main(["export", "map", cube, "--layer", "land_cover", "--year", "1990", str(tif)]) == 0
    with rasterio.open(tif) as f:
        np.testing.assert_array_equal(f.read(1), planted_classes(1990))
    assert main(["export", "zarr", cube, str(tmp_path / "z.zarr"), "--tag", "early"]) == 0
    samples = tmp_path / "samples.geojson"
    samples.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"class": c},
                        "geometry": {"type": "Point", "coordinates": list(centre(*rc))},
                    }
                    for c, rc in (
                        ("water", (1, 12)),
                        ("vegetation", (4, 1)),
                        ("urban", (9, 12)),
                        ("vegetation", (5, 6)),
                        ("water", (3, 9)),
                        ("urban", (7, 14)),
                    )
                ],
            }
        )
    )
    rules = tmp_path / "rules.toml"
    code = main(
        [
            "query",
            "fit-rules",
            cube,
            "--samples",
            str(samples),
            "--crs",
            "EPSG:32637",
            "--start",
            "1993",
            "-o",
            str(rules),
        ]
    )
    assert code == 0 and load_rules(rules).sensor == "TM"
    capsys.readouterr()


def test_cli_bad_queries_exit_2_with_a_message(cube_path, capsys):
    cube = str(cube_path)
    assert main(["query", "point", cube, "--lonlat", "10", "50"]) == 2
    assert "outside the cube grid" in capsys.readouterr().err
    assert main(["query", "point", cube, "--xy", "589100", "756100", "--vars", "foo"]) == 2
    assert "unknown scene-level variable 'foo'" in capsys.readouterr().err
    assert main(["query", "area", cube, "--start", "2050"]) == 2
    assert "empty time range" in capsys.readouterr().err
    assert main(["query", "area", cube, "--tag", "missing"]) == 2
    assert "has no tag 'missing'" in capsys.readouterr().err
    assert main(["export", "map", cube, "--layer", "land_cover", "out.tif"]) == 2
    assert "needs --year" in capsys.readouterr().err
    # the command offers exactly the layers the library writes
    with pytest.raises(SystemExit):
        main(["export", "map", cube, "--layer", "ndvi", "out.tif"])
    from updm_dask.query.export import MAP_LAYERS

    assert f"(choose from {', '.join(map(repr, MAP_LAYERS))})" in capsys.readouterr().err


def test_quality_fill_pixels_are_not_observed(tmp_path):
    # a cube whose only scene is fill in its first row: that row is never observed
    cube = create_cube(tmp_path / "c", GRID, chunks=8)
    c = planted_classes(1990)
    q_layer = np.zeros((NY, NX), np.uint8)
    q_layer[0] = QUALITY_FILL
    lc = c.copy()
    lc[0] = 0
    scene = make_scene(
        "S",
        "1990-05-05",
        "TM",
        "LANDSAT_5",
        {"land_cover": lc, "quality": q_layer, "mviupd": planted_mviupd(1990, c)},
    )
    cube.append_scenes([scene], metadata={}, message="one")
    with pytest.raises(QueryError, match="no per-year layers yet"):
        q.area_statistics(cube)
    cube.rebuild_yearly()
    st = q.area_statistics(cube)
    assert st["observed_fraction"].tolist() == [(NY - 1) / NY]
