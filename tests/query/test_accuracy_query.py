"""`updm query accuracy`: dated labels against the yearly maps of a real cube."""

from __future__ import annotations

import json

import dask
import numpy as np
import pandas as pd
import pyproj
import pytest
import xarray as xr
from affine import Affine

from updm_dask.cli import main
from updm_dask.cube import create_cube
from updm_dask.errors import QueryError
from updm_dask.geo import CubeGrid
from updm_dask.query.accuracy import accuracy_assessment

NY, NX = 10, 12
GRID = CubeGrid("EPSG:32637", Affine(30, 0, 589035, 0, -30, 756165), (NY, NX))
TO_LONLAT = pyproj.Transformer.from_crs("EPSG:32637", "EPSG:4326", always_xy=True)
WATER, VEG, URBAN = 2, 3, 4


def planted(year: int) -> np.ndarray:
    c = np.full((NY, NX), VEG, np.uint8)
    c[:4, 6:] = WATER
    c[6:, :] = URBAN
    if year >= 2001:
        c[4:6, :6] = URBAN  # two rows of vegetation cleared in 2001
    return c


def scene(year: int) -> xr.Dataset:
    lc = planted(year)
    layers = {
        "land_cover": lc,
        "quality": np.zeros((NY, NX), np.uint8),
        "mviupd": np.where(lc == VEG, 0.6, 0.1).astype(np.float32),
        "uCw": np.full((NY, NX), 0.01, np.float32),
        "uCv": np.full((NY, NX), 0.05, np.float32),
        "uCs": np.full((NY, NX), 0.05, np.float32),
    }
    ds = xr.Dataset(
        {n: (("y", "x"), v) for n, v in layers.items()}, coords={"y": GRID.y, "x": GRID.x}
    ).rio.write_crs(GRID.crs)
    ds = ds.assign_coords(scene_id=f"S{year}", time=np.datetime64(f"{year}-06-01", "us"))
    ds.attrs.update(sensor="TM", platform="LANDSAT_5", sun_elevation=55.0)
    return ds


@pytest.fixture(scope="module")
def cube_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("accuracy") / "cube"
    cube = create_cube(path, GRID, chunks=8)
    with dask.config.set({"updm.chunks.yearly": 8}):
        cube.append_scenes([scene(2000), scene(2001)], metadata={"job_id": "t"}, message="x")
        cube.rebuild_yearly()
    return path


def label(row: int, col: int, cls, **props) -> dict:
    x, y = 589035 + 30 * col + 15.0, 756165 - 30 * row - 15.0
    lon, lat = TO_LONLAT.transform(x, y)
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {"class": cls, **props},
    }


def collection(features) -> dict:
    return {"type": "FeatureCollection", "features": features}


def test_labels_are_compared_with_the_map_of_their_own_year(cube_path):
    feats = [
        # 2001: correct water x3, vegetation x3, urban x3 (two of them on the cleared rows)
        label(0, 6, "water", year=2001),
        label(1, 7, "water", year=2001),
        label(2, 8, "water", date="2001-07-15"),
        label(0, 0, "vegetation", year=2001),
        label(1, 1, "vegetation", year=2001),
        label(2, 2, 3, year=2001),  # a code instead of a name
        label(4, 0, "urban", year=2001),  # cleared in 2001: the 2001 map says urban
        label(5, 1, "urban", year=2001),
        label(7, 3, "urban", year=2001),
        # 2001 errors: the map says vegetation, the reference urban; water as vegetation
        label(3, 2, "urban", year=2001),
        label(3, 3, "urban", year=2001),
        label(3, 9, "vegetation", year=2001),
        # 2000 labels, assessed against the 2000 map (where rows 4-5 are still vegetation)
        label(4, 0, "vegetation", year=2000),
        label(4, 2, "urban", year=2000),
        label(0, 9, "water", year=2000),
        label(1, 10, "water", year=2000),
        label(8, 8, "urban", year=2000),
        label(9, 9, "urban", year=2000),
    ]
    results = accuracy_assessment(cube_path, collection(feats))
    assert [r.year for r in results] == [2000, 2001]
    r2000, r2001 = results
    assert r2001.class_names == ("water", "vegetation", "non_vegetated")
    # rows map class, columns reference class (water, vegetation, urban), counted by hand
    np.testing.assert_array_equal(r2001.assessment.counts, [[3, 1, 0], [0, 3, 2], [0, 0, 3]])
    np.testing.assert_array_equal(r2000.assessment.counts, [[2, 0, 0], [0, 1, 1], [0, 0, 2]])
    # the strata are the mapped areas of that year's map, in hectares (0.09 ha a pixel)
    for r, year in ((r2000, 2000), (r2001, 2001)):
        counts = np.bincount(planted(year).ravel(), minlength=5)[[WATER, VEG, URBAN]]
        np.testing.assert_allclose(r.assessment.mapped_area, counts * 0.09)
        assert r.assessment.area.sum() == pytest.approx(counts.sum() * 0.09)
    # user's accuracy of 2001 vegetation: 3 of the 5 samples mapped vegetation
    assert r2001.assessment.users[1] == pytest.approx(3 / 5)
    only = accuracy_assessment(cube_path, collection(feats), year=2000)
    assert [r.year for r in only] == [2000]
    np.testing.assert_array_equal(only[0].assessment.counts, r2000.assessment.counts)


def test_bad_labels_are_named(cube_path):
    with pytest.raises(QueryError, match="feature 0: no 'year' or 'date' property"):
        accuracy_assessment(cube_path, collection([label(0, 0, "water")]))
    with pytest.raises(QueryError, match="feature 0: the class is not one of"):
        accuracy_assessment(cube_path, collection([label(0, 0, "forest", year=2000)]))
    with pytest.raises(QueryError, match="feature 0: 'date' must be an ISO date"):
        accuracy_assessment(cube_path, collection([label(0, 0, "water", date="July 2000")]))
    with pytest.raises(QueryError, match=r"no per-year layer|no year|1999"):
        accuracy_assessment(cube_path, collection([label(0, 0, "water", year=1999)]))
    with pytest.raises(QueryError, match="class 2 has mapped area but no sample"):
        accuracy_assessment(cube_path, collection([label(0, 0, "vegetation", year=2000)] * 3))


def test_cli_prints_the_report(cube_path, tmp_path, capsys):
    feats = [label(0, 6 + k, "water", year=2000) for k in range(3)]
    feats += [label(0, k, "vegetation", year=2000) for k in range(3)]
    feats += [label(8, k, "urban", year=2000) for k in range(3)]
    path = tmp_path / "labels.geojson"
    path.write_text(json.dumps(collection(feats)))
    assert main(["query", "accuracy", str(cube_path), "--samples", str(path)]) == 0
    out = capsys.readouterr().out
    assert "2000: 9 sample units" in out
    assert "overall accuracy 1.000" in out
    assert "water" in out and "estimated ha" in out


def test_dated_labels_sample_only_the_scenes_of_their_year(cube_path):
    from updm_dask.query.rules_fit import sample_pixels

    feats = [label(4, 0, "urban", year=2001), label(0, 0, "vegetation")]
    rows = sample_pixels(cube_path, collection(feats))
    dated = rows[rows["feature"] == 0]
    undated = rows[rows["feature"] == 1]
    assert dated["scene_id"].tolist() == ["S2001"]  # not the 2000 scene, when it was forest
    assert sorted(undated["scene_id"].tolist()) == ["S2000", "S2001"]


def _separable(n_per_class: int, urban_like_vegetation: bool) -> pd.DataFrame:
    from updm_dask.science.classify import mviupd

    coefficients = {
        "water": (0.02, 0.005, 0.01),
        "vegetation": (0.005, 0.2, 0.05),
        # urban with uCw below the cloud rule, so the kept cloud rule never takes it
        "urban": (0.005, 0.2, 0.05) if urban_like_vegetation else (0.005, 0.03, 0.2),
    }
    rows = []
    for k, (name, (w, v, s)) in enumerate(coefficients.items()):
        for j in range(n_per_class):
            # identical coefficients within a class when urban mimics vegetation
            wiggle = 1.0 if urban_like_vegetation else 1 + 0.01 * j
            rows.append(
                {"class": name, "feature": k * 100 + j, "uCw": w, "uCv": v * wiggle, "uCs": s}
            )
    df = pd.DataFrame(rows)
    df["uC4"] = 0.0
    df["S"] = df["uCw"] + df["uCv"] + df["uCs"]
    df["mviupd"] = mviupd(df["uCw"], df["uCv"], df["uCs"], df["uC4"])
    return df


def test_fit_rules_checks_the_fit_on_held_out_features():
    from updm_dask.query.rules_fit import fit_rules

    fit = fit_rules(_separable(8, False), holdout=0.25, seed=1)
    assert fit.n_heldout == 6  # floor(0.25 * 8) = 2 whole features of each of 3 classes
    assert fit.report.groupby("class")["n_class"].first().to_dict()["water"] == 6
    assert fit.heldout_accuracy == 1.0
    assert fit.heldout.set_index("class")["n"].to_dict() == {
        "non_vegetated": 2,
        "vegetation": 2,
        "water": 2,
    }
    assert "held-out check: 6 sample pixels" in fit.format()
    # urban that looks exactly like vegetation: the held-out water is right, and of the
    # four held-out vegetation/urban samples only the two of whichever class the rules
    # give those coefficients
    ambiguous = fit_rules(_separable(8, True), holdout=0.25, seed=1)
    assert ambiguous.heldout_accuracy == pytest.approx(4 / 6)
    assert fit_rules(_separable(8, False)).heldout is None  # nothing held out by default
    with pytest.raises(QueryError, match=r"holdout: expected a share in \[0, 1\)"):
        fit_rules(_separable(8, False), holdout=1.0)
