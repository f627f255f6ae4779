"""The supplementary-pattern default, decided by evidence on real scenes (docs/supplementary.md).

The claims are recomputed here from the real Level-1 and Level-2 products of one Landsat-8
acquisition (Momotombo, 2015-12-05; the L2 crop is one column east: L2[r, c] = L1[r, c + 1]),
not copied from the page; and the page's table is checked to be what the evidence script
prints for that pair.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import dask
import numpy as np
import pytest

from updm_dask.errors import JobSpecError, PatternError
from updm_dask.jobs.spec import load_job_spec
from updm_dask.pipeline import Science, process_scene
from updm_dask.scenes import open_scene

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "supplementary.md"
XL = "landsat/xlandsat/"
L1 = XL + "LC08_L1TP_017051_20151205_20200908_02_T1-cropped.tar.gz"
L2 = XL + "LC08_L2SP_017051_20151205_20200908_02_T1-cropped.tar.gz"
# Pixels darker than this S are left out of the comparison: there MVIUPD divides by noise
# (the dark limit), which is a question apart from the choice of patterns.
DARK_S = 0.025


def _evidence_module():
    path = REPO / "tools" / "supplementary_evidence.py"
    spec = importlib.util.spec_from_file_location("supplementary_evidence", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def _layers(path, science):
    with dask.config.set(scheduler="synchronous"):
        return process_scene(open_scene(path), science).compute()


@pytest.fixture(scope="module")
def momotombo(shared_data):
    """(L1, L2) layers on the pixels both products cover, for the default and for uC4 free."""
    out = {}
    for name, science in (("default", Science()), ("free", Science(supplementary=True))):
        a = _layers(shared_data / L1, science).isel(y=slice(0, 333), x=slice(1, 468))
        b = _layers(shared_data / L2, science)
        out[name] = (a, b)
    return out


def _domain(views):
    keep = None
    for ds in views:
        s = (ds["uCw"] + ds["uCv"] + ds["uCs"]).values
        ok = (ds["land_cover"].values != 0) & (s >= DARK_S) & np.isfinite(ds["mviupd"].values)
        keep = ok if keep is None else keep & ok
    return keep


@pytest.mark.slow
def test_the_default_makes_mviupd_agree_across_product_levels(momotombo):
    keep = _domain([*momotombo["default"], *momotombo["free"]])
    assert keep.sum() > 100_000  # most of the crop: cloud, water, forest, volcano
    result = {}
    for name, (a, b) in momotombo.items():
        x = a["mviupd"].values[keep].astype(np.float64)
        y = b["mviupd"].values[keep].astype(np.float64)
        result[name] = {
            "mad": np.mean(np.abs(x - y)),
            "slope": np.polyfit(x, y, 1)[0],
            "above_l1": np.mean(x > 1),
            "above_l2": np.mean(y > 1),
            "classes": np.mean(a["land_cover"].values[keep] == b["land_cover"].values[keep]),
        }
    default, free = result["default"], result["free"]
    # The same acquisition as two product levels: MVIUPD much closer with the default
    # (measured 0.026 against 0.055), its slope nearer 1 (1.11 against 1.19) ...
    assert default["mad"] < 0.6 * free["mad"]
    assert abs(default["slope"] - 1) < abs(free["slope"] - 1)
    # ... never above 1, where a free uC4 pushes a third of the L1 pixels and a tenth of the
    # L2 ones (so the share even depends on the product level) ...
    assert default["above_l1"] == 0 and default["above_l2"] == 0
    assert free["above_l1"] > 0.2 and free["above_l2"] > 0.05
    # ... and the classes agree between the products as well as before, within a point.
    assert default["classes"] > free["classes"] - 0.01


@pytest.mark.slow
def test_the_default_mviupd_is_bounded_on_every_pixel(momotombo):
    # Three non-negative coefficients bound the numerator by S: MVIUPD stays in [-1, 1].
    # A free uC4 drove it to about -2460 over the darkest water; the dark limit (S < 0.025
    # is undefined) now cuts those pixels, but a free uC4 still leaves [-1, 1] elsewhere.
    for ds in momotombo["default"]:
        m = ds["mviupd"].values
        assert np.nanmin(m) >= -1 and np.nanmax(m) <= 1
        assert ds["uC4"].isnull().all()
        assert ds.attrs["supplementary"] == "false"
    _, free_l2 = momotombo["free"]
    free = free_l2["mviupd"].values
    assert np.nanmin(free) < -1 or np.nanmax(free) > 1


@pytest.mark.slow
def test_the_page_holds_what_the_script_prints(shared_data):
    evidence = _evidence_module()
    page = PAGE.read_text(encoding="utf-8")
    assert evidence.PAIR_HEADER in page and evidence.SCENE_HEADER in page
    pair = evidence.PAIRS[0]
    assert "Momotombo" in pair.a and "L2" in pair.b and (pair.rows, pair.cols) == (0, 1)
    rows = evidence.scene_pair_rows(shared_data, pair)
    assert [r.option for r in rows] == ["free", "nonneg", "three"]
    for row in rows:
        assert row.markdown() in page, f"{PAGE.name} does not hold the row {row.markdown()}"
    # the page's default is the script's "3 patterns", and that is Science()'s default
    assert evidence.OPTIONS["three"] == Science()
    assert "| **3 patterns (default)** |" in page


@pytest.mark.slow
def test_the_script_reads_the_whole_yatsm_series(shared_data):
    evidence = _evidence_module()
    observations = evidence.yatsm_observations(shared_data / evidence.YATSM)
    # 284 Landsat-5, 159 Landsat-7 and 4 Landsat-4 dates (the series' own note)
    assert len(observations) == 447
    satellites = [o.satellite for o in observations]
    assert (satellites.count(5), satellites.count(7), satellites.count(4)) == (284, 159, 4)
    assert observations[0].date.isoformat() == "1984-04-17"
    assert observations[-1].date.isoformat() == "2013-05-27"
    # pixel (0, 0) is fill on every date
    assert not any(o.clear[0] for o in observations)


def test_the_options_stay_available():
    three = Science()
    free = Science(supplementary=True)
    nonneg = Science(supplementary=True, constrain_supplementary=True)
    assert list(three.patterns_for("TM", 5)["pattern"].values) == ["water", "vegetation", "soil"]
    assert free.patterns_for("OLI", 8).sizes["pattern"] == 4
    # MSS has four bands: three patterns whatever is asked
    assert free.patterns_for("MSS", 5).sizes["pattern"] == 3
    # asking for uC4 >= 0 asks for uC4, as before the default changed
    assert Science(constrain_supplementary=True) == nonneg
    assert len({three.sha256(), free.sha256(), nonneg.sha256()}) == 3
    with pytest.raises(PatternError, match=r"constrain_supplementary=True.*supplementary=False"):
        Science(supplementary=False, constrain_supplementary=True)


SPEC = """
[job]
name = "t"

[inputs]
paths = ["scenes"]

[cube]
path = "cube.icechunk"

[grid]
crs = "EPSG:32637"
transform = [30.0, 0.0, 544485.0, 0.0, -30.0, 902415.0]
shape = [101, 101]

[science]
"""


@pytest.mark.parametrize(
    ("science", "expected"),
    [
        ("", Science()),
        ("supplementary = true", Science(supplementary=True)),
        ("constrain_supplementary = true", Science(constrain_supplementary=True)),
        (
            "supplementary = true\nconstrain_supplementary = true",
            Science(supplementary=True, constrain_supplementary=True),
        ),
    ],
)
def test_the_job_spec_chooses_the_option(tmp_path, science, expected):
    path = tmp_path / "job.toml"
    path.write_text(SPEC + science + "\n")
    assert load_job_spec(path).science == expected


def test_the_job_spec_rejects_a_constraint_without_the_pattern(tmp_path):
    path = tmp_path / "job.toml"
    path.write_text(SPEC + "supplementary = false\nconstrain_supplementary = true\n")
    with pytest.raises(JobSpecError, match=r"\[science.constrain_supplementary\].*supplementary"):
        load_job_spec(path)
    path.write_text(SPEC + 'supplementary = "no"\n')
    with pytest.raises(JobSpecError, match=r"science.supplementary"):
        load_job_spec(path)
