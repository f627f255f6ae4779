"""Complete annual maps on a real cube: the yatsm series with a cloudy year over the forest.

The real series of the shared data (447 TM/ETM+ dates 1984-2013, 5 x 5 pixels in Colorado;
tests/_yatsm.py) goes into a cube through the package, as every scene of the series, with
one change made in this copy: in 2008 every scene is cloud over rows 0-2, which are forest
that year. This is what a cloudy year does to the Landsat record: the observed part of the
area is not a fair sample of it. The expected figures are computed here with numpy from
the layers as they were before the clouds were added.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from _yatsm import CRS, SHAPE, TRANSFORM, yatsm_layers
from affine import Affine

from updm_dask import query as q
from updm_dask.cube import QUALITY_CLOUD, create_cube
from updm_dask.geo import CubeGrid

pytestmark = pytest.mark.slow

CLOUDY_YEAR = 2008
CLOUDY_ROWS = slice(0, 3)
VARIABLES = ("uCw", "uCv", "uCs", "uC4", "mviupd", "land_cover", "quality")


def _scene_years(layers) -> np.ndarray:
    return layers["time"].astype("datetime64[Y]").astype(int) + 1970


def _counts(layers, year: int) -> tuple[np.ndarray, np.ndarray]:
    """Clear observations of ``year`` per class (vegetation, urban, water) and pixel."""
    pick = _scene_years(layers) == year
    lc, quality = layers["land_cover"][pick], layers["quality"][pick]
    clear = np.isin(lc, (2, 3, 4)) & (quality == 0)
    return np.stack([((lc == c) & clear).sum(axis=0) for c in (3, 4, 2)]), clear.sum(axis=0)


def _yearly_class(layers, year: int) -> np.ndarray:
    """Most frequent clear class (ties: vegetation > urban > water), 0 without one."""
    counts, clear = _counts(layers, year)
    return np.where(clear > 0, np.array([3, 4, 2])[counts.argmax(axis=0)], 0)


@pytest.fixture(scope="module")
def real(shared_data, tmp_path_factory):
    layers = yatsm_layers(shared_data)
    clouded = {n: np.array(layers[n]) for n in VARIABLES}
    in_year = _scene_years(layers) == CLOUDY_YEAR
    for i in np.flatnonzero(in_year):
        clouded["land_cover"][i, CLOUDY_ROWS] = 1
        clouded["quality"][i, CLOUDY_ROWS] |= QUALITY_CLOUD
    grid = CubeGrid(CRS, Affine(*TRANSFORM), SHAPE)
    cube = create_cube(tmp_path_factory.mktemp("yatsm") / "cube", grid)
    scenes = []
    for i, sid in enumerate(layers["scene_id"]):
        ds = xr.Dataset(
            {n: (("y", "x"), clouded[n][i]) for n in VARIABLES},
            coords={"y": grid.y, "x": grid.x},
        ).rio.write_crs(CRS)
        ds = ds.assign_coords(scene_id=str(sid), time=layers["time"][i])
        sensor = str(layers["sensor"][i])
        ds.attrs.update(sensor=sensor, platform="LANDSAT_7" if sensor == "ETM+" else "LANDSAT_5")
        scenes.append(ds)
    cube.append_scenes(scenes, metadata={"job_id": "yatsm"}, message="yatsm series")
    cube.rebuild_yearly()
    clouded_layers = {**layers, **clouded}
    return cube, layers, clouded_layers


def test_the_cloudy_year_swings_the_observed_shares_and_not_the_complete_ones(real):
    cube, layers, _ = real
    truth = _yearly_class(layers, CLOUDY_YEAR)  # what 2008 was, without the clouds
    valid = truth != 0
    assert valid.sum() == 24  # pixel (0, 0) is fill on every date
    veg = (truth[valid] == 3).mean()
    assert veg == pytest.approx(19 / 24)
    stored = q.area_statistics(cube, observed_only=True).set_index("year")
    full = q.area_statistics(cube).set_index("year")
    # before: the clouds hid 14 forest pixels, so the observed shares halve the forest
    assert stored.loc[CLOUDY_YEAR, "observed_fraction"] == pytest.approx(10 / 25)
    assert stored.loc[CLOUDY_YEAR, "vegetation_fraction"] == pytest.approx(0.5)
    assert abs(stored.loc[CLOUDY_YEAR, "vegetation_fraction"] - veg) > 0.25
    # after: the complete maps fill them from 2007 and 2009 and give the year's shares
    assert full.loc[CLOUDY_YEAR, "observed_fraction"] == pytest.approx(10 / 25)
    assert full.loc[CLOUDY_YEAR, "filled_fraction"] == pytest.approx(14 / 25)
    assert full.loc[CLOUDY_YEAR, "vegetation_fraction"] == pytest.approx(veg)
    assert full.loc[CLOUDY_YEAR, "non_vegetated_fraction"] == pytest.approx(1 - veg)
    # other years are the stored ones, except 2013, which ends in May: half the pixels
    # unseen that year are carried from 2012
    others = [y for y in full.index if y not in (CLOUDY_YEAR, 2013)]
    assert (full.loc[others, "filled_fraction"] == 0).all()
    np.testing.assert_allclose(
        full.loc[others, "vegetation_fraction"], stored.loc[others, "vegetation_fraction"]
    )
    assert full.loc[2013, "observed_fraction"] == pytest.approx(12 / 25)
    assert full.loc[2013, "filled_fraction"] == pytest.approx(12 / 25)


def test_stored_counts_and_the_confidence_of_the_real_maps(real):
    cube, _, clouded = real
    yearly, _ = q.open_yearly(cube)
    for i, year in enumerate(yearly["year"].values):
        counts, clear = _counts(clouded, int(year))
        cls = _yearly_class(clouded, int(year))
        in_class = np.where(clear > 0, counts.max(axis=0), 0)
        np.testing.assert_array_equal(yearly["yearly_land_cover"].values[i], cls)
        np.testing.assert_array_equal(yearly["yearly_clear_count"].values[i], clear)
        np.testing.assert_array_equal(yearly["yearly_class_count"].values[i], in_class)
    full = q.complete_yearly(cube, start=CLOUDY_YEAR, end=CLOUDY_YEAR).isel(year=0).compute()
    hidden = np.zeros(SHAPE, bool)
    hidden[CLOUDY_ROWS] = True
    hidden[0, 0] = False  # fill throughout
    assert (full["fill_source"].values[hidden] == 2).all()  # 2007 and 2009 agree
    assert (full["years_to_observation"].values[hidden] == 1).all()
    assert (full["years_to_observation"].values[3:] == 0).all()
    # agreement: observations of 2007 and 2009 in their (vegetation) class over all of them
    c7, n7 = _counts(clouded, 2007)
    c9, n9 = _counts(clouded, 2009)
    expected = (c7[0] + c9[0]) / (n7 + n9)
    np.testing.assert_allclose(full["agreement"].values[hidden], expected[hidden], rtol=1e-6)
    assert full["years_to_observation"].values[0, 0] == 255
    assert full["land_cover"].values[0, 0] == 0 and np.isnan(full["agreement"].values[0, 0])
    # the transition between the epochs sees every valid pixel in both
    t = q.transition_matrix(cube, (2006, 2008), (2011, 2013))
    assert int(t.pixels.drop(index="no_data", columns="no_data").to_numpy().sum()) == 24
