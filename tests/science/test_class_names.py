"""Class 4 is named for what it holds (non_vegetated), and the former name still loads.

The rules leave class 4 to every pixel that is not cloud, not water and below the
vegetation threshold: built-up, bare and sparsely vegetated land alike. On the real dry
Ethiopian scene every clear pixel is class 4; the cube, the exports and the area statistics
call it non_vegetated, and rule tables or labels written with ``urban`` keep working.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from updm_dask.science.classify import (
    CLASS_ALIASES,
    CLASS_LONG_NAMES,
    LAND_COVER_CLASSES,
    Rule,
    RuleTable,
    classify_array,
    load_rules,
)

TM = load_rules("TM")
SPLIT_TEMPLATE = """
name = "TM with class 4 split"
sensor = "TM"

[[rules]]
class = "cloud"
value = 1
conditions = [
    { quantity = "uCw", operator = ">=", threshold = 0.00663 },
    { quantity = "S", operator = ">=", threshold = 0.161 },
]

[[rules]]
class = "water"
value = 2
conditions = [
    { quantity = "uCv", operator = "<=", threshold = 0.035 },
    { quantity = "S", operator = "<=", threshold = 0.059 },
]

[[rules]]
class = "vegetation"
value = 3
conditions = [{ quantity = "mviupd", operator = ">=", threshold = 0.458 }]

[[rules]]
class = "built_up"
value = 5
conditions = [
    { quantity = "mviupd", operator = "<", threshold = 0.458 },
    { quantity = "uCs", operator = "<", threshold = 0.15 },
]

[[rules]]
class = "non_vegetated"
value = 4
conditions = []
"""


def test_code_4_is_non_vegetated_and_says_what_it_holds():
    assert LAND_COVER_CLASSES["non_vegetated"] == 4
    assert "urban" not in LAND_COVER_CLASSES
    assert CLASS_LONG_NAMES["non_vegetated"] == "built-up, bare or sparsely vegetated land"
    assert TM.rules[-1].class_name == "non_vegetated" == load_rules("MSS").rules[-1].class_name
    assert TM.flag_meanings == "no_data cloud water vegetation non_vegetated"


def test_tables_that_say_urban_still_load_as_the_same_table(tmp_path):
    shipped = TM.to_toml()
    old = shipped.replace('"non_vegetated"', '"urban"').replace("non_vegetated = 4", "urban = 4")
    assert 'class = "urban"' in old and "urban = 4" in old
    assert "non_vegetated" not in old.split("[classes]")[1]
    path = tmp_path / "old_rules.toml"
    path.write_text(old, encoding="utf-8")
    table = load_rules(path)
    assert table.rules[-1].class_name == "non_vegetated"
    assert dict(table.classes) == dict(LAND_COVER_CLASSES)
    assert table.sha256 == TM.sha256  # it classifies identically, so it hashes identically
    assert CLASS_ALIASES["urban"] == "non_vegetated"


def test_urban_with_its_own_code_is_a_user_class_splitting_class_4():
    table = RuleTable(
        name="split",
        sensor="TM",
        rules=(Rule("urban", 5, ()),),
    )
    assert table.classes["urban"] == 5 and table.classes["non_vegetated"] == 4
    assert table.class_name_for("urban") == "urban"
    assert TM.class_name_for("urban") == "non_vegetated"
    assert TM.class_name_for("forest") == "forest"  # unknown labels are left for the caller


def test_fit_rules_reads_urban_labels_and_splits_class_4_with_a_template(tmp_path):
    from updm_dask.query.rules_fit import fit_rules

    rng = np.random.default_rng(4)

    def samples(label, n, w, v, s):
        return pd.DataFrame(
            {
                "class": label,
                "uCw": rng.uniform(*w, n),
                "uCv": rng.uniform(*v, n),
                "uCs": rng.uniform(*s, n),
                "uC4": np.zeros(n),
            }
        )

    frame = pd.concat(
        [
            samples("water", 30, (0.0, 0.01), (0.0, 0.01), (0.0, 0.02)),
            samples("vegetation", 30, (0.0, 0.005), (0.2, 0.4), (0.0, 0.05)),
            # built-up: little soil, darker; bare: much soil (both MVIUPD < 0.458)
            samples("built_up", 30, (0.0, 0.005), (0.02, 0.05), (0.06, 0.10)),
            samples("urban", 30, (0.0, 0.005), (0.04, 0.08), (0.25, 0.40)),
        ],
        ignore_index=True,
    )
    frame["S"] = frame[["uCw", "uCv", "uCs"]].sum(axis=1)
    frame["mviupd"] = (frame.uCv - frame.uCw - 0.2 * frame.uCs - frame.uC4) / frame.S
    # with the shipped template, "urban" labels are class 4 (built_up is unknown there)
    plain = frame[frame["class"] != "built_up"]
    fit = fit_rules(plain, "TM")
    assert fit.table.rules[-1].class_name == "non_vegetated"
    # with a template that splits class 4, built-up and bare land are told apart
    path = tmp_path / "split.toml"
    path.write_text(SPLIT_TEMPLATE, encoding="utf-8")
    split = fit_rules(frame, path).table
    assert split.classes["built_up"] == 5
    got = classify_array(frame[["uCw", "uCv", "uCs", "uC4"]].to_numpy(), split)
    codes = frame["class"].map({"water": 2, "vegetation": 3, "built_up": 5, "urban": 4})
    np.testing.assert_array_equal(got, codes.to_numpy())


@pytest.mark.slow
def test_real_dry_scene_is_all_non_vegetated_in_the_cube_exports_and_statistics(
    shared_data, tmp_path
):
    import rasterio

    from updm_dask.cube import LAND_COVER_CLASSES as CUBE_CLASSES
    from updm_dask.cube import QUALITY_DARK, QUALITY_NOT_CLEAR, create_cube
    from updm_dask.geo import CubeGrid
    from updm_dask.jobs.run import scene_on_grid
    from updm_dask.pipeline import Science
    from updm_dask.query import area_statistics
    from updm_dask.query.export import export_map

    folder = shared_data / "landsat/ethiopia-167055/LC08_L1TP_167055_20170308_20170317_01_T1"
    grid = CubeGrid("EPSG:32637", (30.0, 0.0, 589035.0, 0.0, -30.0, 756165.0), (101, 101))
    cube = create_cube(tmp_path / "cube", grid)
    # With the supplementary pattern free in sign (the setting) every clear pixel of
    # this dry scene is class 4; the names are what this test is about, not the default.
    science = Science(supplementary=True)
    layers = scene_on_grid(folder, grid, science)
    cube.append_scenes([layers], metadata={}, message="one dry scene")
    cube.rebuild_yearly()
    ds = cube.to_xarray()
    lc, q = ds["land_cover"].values[0], ds["quality"].values[0]
    clear = (q & QUALITY_NOT_CLEAR) == 0
    assert clear.sum() > 10_000 and (lc[clear] == 4).all()
    # the cube says what code 4 holds
    attrs = ds["land_cover"].attrs
    assert attrs["flag_meanings"].split()[list(attrs["flag_values"]).index(4)] == "non_vegetated"
    assert "4 non_vegetated: built-up, bare or sparsely vegetated land" in attrs["comment"]
    masks = list(ds["quality"].attrs["flag_masks"])
    assert ds["quality"].attrs["flag_meanings"].split()[masks.index(QUALITY_DARK)] == (
        "dark_mviupd_undefined"
    )
    assert CUBE_CLASSES[4] == "non_vegetated"
    # area statistics and the exported map carry the name too
    stats = area_statistics(cube)
    assert stats["non_vegetated_fraction"].tolist() == [1.0]
    tif = export_map(cube, "land_cover", tmp_path / "lc.tif", year=2017)
    with rasterio.open(tif) as src:
        assert "non_vegetated" in src.tags()["flag_meanings"].split()
    assert export_map(cube, "land_cover", tmp_path / "lc.png", year=2017).stat().st_size > 0
