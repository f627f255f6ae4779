"""Tests of the standard spectral patterns (UPDM eqs. 12-16) and their package tables."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import pickle
import re
import subprocess
import sys
from pathlib import Path

import dask.base
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import nnls

from updm_dask.errors import PatternError, SensorError
from updm_dask.science import patterns as pt
from updm_dask.science.patterns import bands
from updm_dask.science.sensors import get_sensor

REPO = Path(__file__).resolve().parents[2]
PACKAGE_DATA = REPO / "updm_dask" / "data"
SENSORS = [
    ("MSS", 1),
    ("MSS", 2),
    ("MSS", 3),
    ("MSS", 4),
    ("MSS", 5),
    ("TM", 4),
    ("TM", 5),
    ("ETM+", 7),
    ("OLI", 8),
    ("OLI-2", 9),
]
TABLES = [
    "standard_spectra.csv",
    "rsr_tm_l4.csv",
    "rsr_tm_l5.csv",
    "rsr_etm_l7.csv",
    "rsr_oli_l8.csv",
    "rsr_oli_l9.csv",
    "rsr_mss.csv",
]


def independent_mean_abs(wl, values, lo=350.0, hi=2500.0):
    """Mean |f| over [lo, hi] of the piecewise-linear interpolant, computed differently from
    the module: refine the grid with every zero crossing, then numpy's trapezoid rule."""
    x = np.concatenate([[lo], wl[(wl > lo) & (wl < hi)], [hi]])
    y = np.interp(x, wl, values)
    crossings = [
        x[i] - y[i] * (x[i + 1] - x[i]) / (y[i + 1] - y[i])
        for i in range(len(x) - 1)
        if y[i] * y[i + 1] < 0
    ]
    xs = np.sort(np.concatenate([x, crossings]))
    return np.trapezoid(np.abs(np.interp(xs, wl, values)), xs) / (hi - lo)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def wide_csv(rows, header="wavelength_nm,water,vegetation,soil,yellow_leaf"):
    return header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n"


GOOD_ROWS = [
    (350, 0.05, 0.05, 0.1, 0.05),
    (700, 0.02, 0.05, 0.2, 0.15),
    (900, 0.0, 0.5, 0.25, 0.3),
    (2500, 0.0, 0.1, 0.3, 0.2),
]


# --------------------------------------------------------------------------------------
# Kernels: hand-worked values


def test_normalise_constant_spectrum_is_one():
    wl = np.array([350.0, 800.0, 2500.0])
    np.testing.assert_allclose(pt.normalise_spectrum(wl, [0.3, 0.3, 0.3]), 1.0, rtol=1e-15)
    np.testing.assert_allclose(pt.normalise_spectrum(wl, [-0.2, -0.2, -0.2]), -1.0, rtol=1e-15)


def test_normalise_triangle():
    # Triangle of height 1 over 350-2500 nm: area 1075, mean 0.5, so P = 2 R.
    wl = np.array([350.0, 1425.0, 2500.0])
    np.testing.assert_allclose(pt.normalise_spectrum(wl, [0.0, 1.0, 0.0]), [0.0, 2.0, 0.0])


def test_normalise_integrates_abs_across_a_zero_crossing():
    # f = -1 .. 1 linearly: integral of |f| is 2 x (1075 x 1 / 2) = 1075, mean 0.5, P = 2 f.
    # The trapezoid of |f| at the two knots would give mean 1 instead.
    np.testing.assert_allclose(pt.normalise_spectrum([350.0, 2500.0], [-1.0, 1.0]), [-2.0, 2.0])


def test_normalise_uses_only_the_350_2500_window():
    wl = np.array([300.0, 350.0, 2500.0, 2600.0])
    np.testing.assert_allclose(
        pt.normalise_spectrum(wl, [100.0, 1.0, 1.0, 100.0]), [100, 1, 1, 100]
    )


def test_normalise_stack_along_leading_axes():
    wl = np.array([350.0, 1425.0, 2500.0])
    out = pt.normalise_spectrum(wl, [[0.0, 1.0, 0.0], [2.0, 2.0, 2.0]])
    np.testing.assert_allclose(out, [[0.0, 2.0, 0.0], [1.0, 1.0, 1.0]])


@pytest.mark.parametrize(
    ("wl", "values", "match"),
    [
        ([400.0, 2500.0], [1.0, 1.0], "400-2500 nm"),
        ([350.0, 2500.0], [0.0, 0.0], "zero"),
        ([350.0, 2500.0], [np.nan, 1.0], "NaN"),
        ([350.0, 350.0, 2500.0], [1.0, 1.0, 1.0], "increase strictly"),
        ([350.0, 2500.0], [1.0, 1.0, 1.0], "2 points"),
    ],
)
def test_normalise_rejects_bad_input(wl, values, match):
    with pytest.raises(PatternError, match=match):
        pt.normalise_spectrum(wl, values)


def test_band_average_of_linear_function_is_its_midpoint_value():
    wl = np.array([350.0, 437.0, 461.3, 500.0, 509.9, 640.0, 2500.0])
    f = 2.0 + 0.003 * wl
    # Band 0.45-0.52 um, edges between knots: the mean of a linear function is f(485 nm).
    assert pt.band_average(wl, f, 0.45, 0.52) == pytest.approx(2.0 + 0.003 * 485.0, rel=1e-14)


def test_band_average_integrates_rather_than_samples():
    # A peak of 1 at 500 nm between knots at 400 and 600 nm; band 450-550 nm:
    # each half contributes 50 nm x mean(0.5, 1) = 37.5, so the mean is 0.75 (not 1).
    out = pt.band_average([400.0, 500.0, 600.0], [0.0, 1.0, 0.0], 0.45, 0.55)
    assert out == pytest.approx(0.75, rel=1e-15)


def test_band_average_stack_and_errors():
    wl = np.array([400.0, 600.0])
    np.testing.assert_allclose(pt.band_average(wl, [[1.0, 1.0], [0.0, 2.0]], 0.45, 0.55), [1, 1])
    with pytest.raises(PatternError, match="covers only 400-600 nm"):
        pt.band_average(wl, [1.0, 1.0], 0.39, 0.5)
    with pytest.raises(PatternError, match="lo < hi"):
        pt.band_average(wl, [1.0, 1.0], 0.5, 0.45)
    with pytest.raises(PatternError, match="axis last"):
        pt.band_average(wl, [1.0, 1.0, 1.0], 0.45, 0.5)


@settings(max_examples=60, deadline=None)
@given(
    a=st.floats(-5, 5),
    b=st.floats(-0.01, 0.01),
    lo=st.floats(360, 2400),
    width=st.floats(1, 95),
)
def test_band_average_linear_property(a, b, lo, width):
    wl = np.linspace(350.0, 2500.0, 37)
    got = pt.band_average(wl, a + b * wl, lo / 1000, (lo + width) / 1000)
    mid = round(lo, 9) + 0.5 * (round(lo + width, 9) - round(lo, 9))
    assert got == pytest.approx(a + b * mid, rel=1e-9, abs=1e-9)


def test_rsr_average_of_constant_is_the_constant():
    wl = np.array([350.0, 2500.0])
    rsr_wl = np.arange(500.0, 601.0, 1.0)
    response = np.exp(-(((rsr_wl - 550.0) / 20.0) ** 2))
    response[0] = -0.004  # a published-style negative tail value
    assert pt.rsr_average(wl, [0.37, 0.37], rsr_wl, response) == pytest.approx(0.37, rel=1e-14)


def test_rsr_average_of_product_of_two_linear_pieces_is_exact():
    # Spectrum f = lambda (knots far apart), RSR a ramp 0 -> 1 over 500-600 nm.
    # Int l (l-500) dl / Int (l-500) dl over 500-600 = 500 + 2/3 x 100 = 566.666...
    # (the trapezoid rule on the merged knots would give 600).
    got = pt.rsr_average([350.0, 2500.0], [350.0, 2500.0], [500.0, 600.0], [0.0, 1.0])
    assert got == pytest.approx(500.0 + 200.0 / 3.0, rel=1e-14)


def test_rsr_average_symmetric_triangle_gives_centre_value():
    wl = np.array([350.0, 512.3, 2500.0])
    f = 1.0 + 0.002 * wl
    got = pt.rsr_average(wl, f, [500.0, 550.0, 600.0], [0.0, 1.0, 0.0])
    assert got == pytest.approx(1.0 + 0.002 * 550.0, rel=1e-14)


def test_rsr_average_clips_negative_response():
    wl = np.linspace(350.0, 2500.0, 50)
    f = np.sin(wl / 100.0) + 2.0
    rsr_wl = np.arange(480.0, 521.0, 2.0)
    response = np.hanning(rsr_wl.size) + 0.01
    response[[0, 1, -1]] = [-0.009, -0.002, -0.001]
    clipped = np.clip(response, 0.0, None)
    assert pt.rsr_average(wl, f, rsr_wl, response) == pt.rsr_average(wl, f, rsr_wl, clipped)


def test_rsr_average_errors():
    with pytest.raises(PatternError, match="positive"):
        pt.rsr_average([350.0, 2500.0], [1.0, 1.0], [500.0, 600.0], [0.0, -0.1])
    with pytest.raises(PatternError, match="RSR-weighted"):
        pt.rsr_average([550.0, 2500.0], [1.0, 1.0], [500.0, 550.0, 600.0], [0.0, 1.0, 0.0])


def test_fit_supplementary_matches_scipy_nnls():
    rng = np.random.default_rng(7)
    wl = np.linspace(300.0, 2600.0, 200)
    standard = rng.random((3, wl.size))
    yellow = rng.random(wl.size)
    coef, residual = pt.fit_supplementary(wl, standard, yellow)
    inside = (wl >= 350) & (wl <= 2500)
    expected, _ = nnls(standard[:, inside].T, yellow[inside])
    np.testing.assert_allclose(coef, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(residual, yellow - expected @ standard, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------------------
# The default pattern set


def test_default_pattern_set_is_cached_and_named():
    ps = pt.default_pattern_set()
    assert pt.default_pattern_set() is ps
    assert ps.name == pt.DEFAULT_PATTERN_SET_NAME == "open-standin-v1"
    assert ps.wavelength_nm[0] == 350.0 and ps.wavelength_nm[-1] == 2500.0
    np.testing.assert_array_equal(np.diff(ps.wavelength_nm), 2.5)
    assert set(ps.sources) >= set(pt.KINDS)


@pytest.mark.parametrize("kind", [*pt.KINDS, "supplementary"])
def test_normalised_patterns_have_mean_abs_one(kind):
    ps = pt.default_pattern_set()
    p = ps.normalised(kind)
    assert independent_mean_abs(ps.wavelength_nm, p) == pytest.approx(1.0, abs=1e-12)


def test_normalised_is_a_positive_multiple_of_the_spectrum():
    ps = pt.default_pattern_set()
    for kind in pt.KINDS:
        r = ps.spectra[kind]
        expected = r / independent_mean_abs(ps.wavelength_nm, r)
        np.testing.assert_allclose(ps.normalised(kind), expected, rtol=1e-12)


def test_supplementary_is_the_normalised_nnls_residual_and_kkt_consistent():
    ps = pt.default_pattern_set()
    wl = ps.wavelength_nm
    # Normalise independently (the raw spectra are non-negative: plain trapezoid of R).
    a = np.stack(
        [ps.spectra[k] / (np.trapezoid(ps.spectra[k], wl) / 2150.0) for k in pt.STANDARD_KINDS]
    )
    b = ps.spectra["yellow_leaf"]
    x, _ = nnls(a.T, b)
    r = b - x @ a
    coefficients, residual = ps.supplementary_fit()
    np.testing.assert_allclose([coefficients[k] for k in pt.STANDARD_KINDS], x, atol=1e-10)
    np.testing.assert_allclose(residual, r, atol=1e-10)
    np.testing.assert_allclose(
        ps.supplementary(), r / independent_mean_abs(wl, r), rtol=1e-9, atol=1e-12
    )
    # KKT of min |A x - b|^2, x >= 0: gradient A^T r <= 0, = 0 where x > 0.
    gradient = a @ residual
    scale = np.linalg.norm(a, axis=1) * np.linalg.norm(b)
    assert np.all(gradient <= 1e-9 * scale)
    active = np.array([coefficients[k] for k in pt.STANDARD_KINDS]) > 0
    assert active.any()
    np.testing.assert_allclose(gradient[active], 0.0, atol=1e-9 * scale[active].max())


def test_default_spectra_match_their_sources_at_the_documented_points():
    # Values stated in the shared data's SOURCES.md: 6S clear water is 0.041 flat from
    # 400 nm (held below), and 0 from 770 nm; 6S vegetation's red minimum is 0.073.
    ps = pt.default_pattern_set()
    wl = ps.wavelength_nm
    water, veg = ps.spectra["water"], ps.spectra["vegetation"]
    np.testing.assert_array_equal(water[wl <= 400], 0.041)
    np.testing.assert_array_equal(water[wl >= 770], 0.0)
    red = (wl >= 600) & (wl <= 680)
    assert veg[red].min() == pytest.approx(0.073)
    assert np.all(ps.spectra["soil"] > 0) and np.all(ps.spectra["yellow_leaf"] > 0)


# --------------------------------------------------------------------------------------
# PatternSet identity: hash, equality, tokens, immutability


def test_sha256_is_hash_of_little_endian_float64_columns():
    table = np.loadtxt(PACKAGE_DATA / "standard_spectra.csv", delimiter=",", skiprows=1)
    digest = hashlib.sha256()
    for column in table.T:  # wavelength, water, vegetation, soil, yellow_leaf
        digest.update(column.astype("<f8").tobytes())
    assert pt.default_pattern_set().sha256 == digest.hexdigest()


def test_sha256_and_token_are_stable_across_processes():
    code = (
        "import dask.base; from updm_dask.science.patterns import default_pattern_set as d; "
        "print(d().sha256, dask.base.tokenize(d()))"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
        ).stdout.split()
        for _ in range(2)
    ]
    ps = pt.default_pattern_set()
    assert runs[0] == runs[1]
    assert runs[0][0] == ps.sha256
    assert runs[0][1] == dask.base.tokenize(ps)


def _variant(ps, name=None, **changes):
    spectra = {k: np.array(v) for k, v in ps.spectra.items()}
    spectra.update(changes)
    return pt.PatternSet(name or ps.name, ps.wavelength_nm, spectra, ps.sources)


def test_hash_changes_with_one_value_and_ignores_name():
    ps = pt.default_pattern_set()
    soil = np.array(ps.spectra["soil"])
    soil[400] = np.nextafter(soil[400], 1.0)  # one ulp
    changed = _variant(ps, soil=soil)
    assert changed.sha256 != ps.sha256
    assert changed != ps
    assert dask.base.tokenize(changed) != dask.base.tokenize(ps)
    renamed = _variant(ps, name="another-name")
    assert renamed.sha256 == ps.sha256 and renamed == ps and hash(renamed) == hash(ps)
    assert dask.base.tokenize(renamed) == dask.base.tokenize(ps)
    assert ps.__dask_tokenize__() == ps.sha256


def test_negative_zero_hashes_like_zero():
    ps = pt.default_pattern_set()
    water = np.array(ps.spectra["water"])
    water[water == 0] = -0.0
    assert _variant(ps, water=water).sha256 == ps.sha256


def test_pattern_set_is_frozen_and_read_only():
    ps = pt.default_pattern_set()
    with pytest.raises(dataclasses.FrozenInstanceError):
        ps.name = "x"
    with pytest.raises(ValueError, match="read-only"):
        ps.wavelength_nm[0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        ps.spectra["water"][0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        ps.normalised("soil")[0] = 1.0
    with pytest.raises(TypeError):
        ps.spectra["water"] = np.zeros(3)


def test_pattern_set_pickles():
    ps = pt.default_pattern_set()
    back = pickle.loads(pickle.dumps(ps))
    assert back == ps and back.name == ps.name and dict(back.sources) == dict(ps.sources)
    assert not back.wavelength_nm.flags.writeable


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"drop": "soil"}, "missing: soil"),
        ({"add": "snow"}, "unexpected: snow"),
        ({"short": "water"}, "shape"),
        ({"nan": "vegetation"}, "NaN"),
        ({"crop": True}, "400-2500 nm"),
        ({"name": ""}, "non-empty"),
    ],
)
def test_pattern_set_constructor_validates(change, match):
    wl = np.array([350.0, 400.0, 2500.0])
    spectra = {k: np.ones(3) for k in pt.KINDS}
    name = "t"
    if "drop" in change:
        del spectra[change["drop"]]
    if "add" in change:
        spectra[change["add"]] = np.ones(3)
    if "short" in change:
        spectra[change["short"]] = np.ones(2)
    if "nan" in change:
        spectra[change["nan"]] = np.array([1.0, np.nan, 1.0])
    if "crop" in change:
        wl = np.array([400.0, 1000.0, 2500.0])
    if "name" in change:
        name = change["name"]
    with pytest.raises(PatternError, match=match):
        pt.PatternSet(name, wl, spectra)


def test_unknown_pattern_kind():
    with pytest.raises(PatternError, match="unknown pattern kind 'snow'"):
        pt.default_pattern_set().normalised("snow")


# --------------------------------------------------------------------------------------
# Band patterns


@pytest.mark.parametrize("method", ["boxcar", "rsr"])
@pytest.mark.parametrize(("sensor", "satellite"), SENSORS)
def test_band_patterns_shape_labels_attrs(sensor, satellite, method):
    bp = pt.band_patterns(sensor, method=method, satellite=satellite)
    s = get_sensor(sensor, satellite)
    with_p4 = sensor != "MSS"
    patterns = ["water", "vegetation", "soil"] + (["supplementary"] if with_p4 else [])
    assert bp.dims == ("band", "pattern")
    assert bp.dtype == np.float64
    assert list(bp["band"].values) == list(s.band_labels)
    assert list(bp["pattern"].values) == patterns
    assert bp.shape == (len(s.band_labels), len(patterns))
    assert np.all(np.isfinite(bp.values))
    ps = pt.default_pattern_set()
    assert bp.attrs["pattern_set"] == ps.name
    assert bp.attrs["pattern_set_sha256"] == ps.sha256
    assert bp.attrs["method"] == method
    assert bp.attrs["sensor"] == s.name
    assert bp.attrs["satellite"] == satellite
    assert bp.attrs["supplementary"] is with_p4


def test_boxcar_value_matches_independent_trapezoid():
    # TM band 3 is 630-690 nm; both edges are grid knots of the 2.5 nm table, so the box-car
    # mean is numpy's trapezoid over the knots inside it, divided by 60 nm.
    ps = pt.default_pattern_set()
    wl = ps.wavelength_nm
    inside = (wl >= 630) & (wl <= 690)
    bp = pt.band_patterns("TM", satellite=5)
    for kind in pt.STANDARD_KINDS:
        r = ps.spectra[kind]
        p = r / (np.trapezoid(np.abs(r), wl) / 2150.0)
        expected = np.trapezoid(p[inside], wl[inside]) / 60.0
        assert bp.sel(band="3", pattern=kind).item() == pytest.approx(expected, rel=1e-12)


def test_supplementary_switch():
    assert "supplementary" not in pt.band_patterns("TM", supplementary=False)["pattern"]
    assert pt.band_patterns("TM", supplementary=False).attrs["supplementary"] is False
    for satellite in (1, 5):
        with pytest.raises(PatternError, match="MSS has 4 bands"):
            pt.band_patterns("MSS", supplementary=True, satellite=satellite)


def test_band_patterns_bad_arguments():
    with pytest.raises(PatternError, match="method must be one of boxcar, rsr"):
        pt.band_patterns("TM", method="gauss")
    with pytest.raises(SensorError):
        pt.band_patterns("AVHRR")
    with pytest.raises(SensorError, match="contradicts"):
        pt.band_patterns(get_sensor("TM", 4), satellite=5)
    with pytest.raises(PatternError, match="PatternSet"):
        pt.band_patterns("TM", pattern_set="open-standin-v1")


def test_band_patterns_accept_a_sensor_object_and_user_set():
    ps = _variant(pt.default_pattern_set(), name="renamed")
    bp = pt.band_patterns(get_sensor("ETM+", 7), pattern_set=ps)
    ref = pt.band_patterns("ETM+")
    np.testing.assert_array_equal(bp.values, ref.values)
    assert bp.attrs["pattern_set"] == "renamed" and ref.attrs["pattern_set"] == "open-standin-v1"


def test_band_patterns_are_cached_but_returned_as_fresh_arrays():
    first = pt.band_patterns("OLI", satellite=8)
    hits = bands._band_pattern_matrix.cache_info().hits
    first.values[:] = -1.0
    second = pt.band_patterns("OLI", satellite=8)
    assert bands._band_pattern_matrix.cache_info().hits == hits + 1
    assert np.all(second.values != -1.0)


@pytest.mark.parametrize(("sensor", "satellite"), SENSORS)
def test_boxcar_and_rsr_close_but_not_identical(sensor, satellite):
    box = pt.band_patterns(sensor, method="boxcar", satellite=satellite).values
    rsr = pt.band_patterns(sensor, method="rsr", satellite=satellite).values
    relative = np.abs(rsr - box) / np.abs(box).max(axis=0)
    # MSS's 6S responses reach far outside the note's band edges (red band 580-750 nm
    # takes in the red edge), so it differs most.
    assert relative.max() <= (0.1 if sensor == "MSS" else 0.08)
    if sensor != "MSS":
        assert relative[:, :3].max() <= 0.03
    assert np.abs(rsr - box).max() > 1e-3


@pytest.mark.parametrize("method", ["boxcar", "rsr"])
@pytest.mark.parametrize(("sensor", "satellite"), SENSORS)
def test_default_band_patterns_are_physically_plausible(sensor, satellite, method):
    bp = pt.band_patterns(sensor, method=method, satellite=satellite)
    s = get_sensor(sensor, satellite)
    role = {b.name: b.label for b in s.bands}
    water = bp.sel(pattern="water")
    veg = bp.sel(pattern="vegetation")
    soil = bp.sel(pattern="soil").values
    nir = role["nir2"] if sensor == "MSS" else role["nir"]
    assert veg.sel(band=nir) > 3.0 * veg.sel(band=role["red"])
    assert water.sel(band=role["green"]) > 2.0
    assert abs(water.sel(band=nir)) < 0.01
    if sensor != "MSS":
        assert water.sel(band=role["blue"]) > 2.0
        assert abs(water.sel(band=role["swir1"])) < 1e-12
        # Soil rises from blue to SWIR1.
        upto_swir1 = [role[n] for n in ("blue", "green", "red", "nir", "swir1")]
        assert np.all(np.diff(bp.sel(pattern="soil", band=upto_swir1).values) > 0)
    else:
        assert np.all(np.diff(soil) > 0)


# --------------------------------------------------------------------------------------
# Spectral response functions


@pytest.mark.parametrize(("sensor", "satellite"), SENSORS)
def test_load_rsr_labels_and_grid(sensor, satellite):
    wl, responses = pt.load_rsr(sensor, satellite)
    s = get_sensor(sensor, satellite)
    assert list(responses) == list(s.band_labels)
    step = 2.5 if sensor == "MSS" else 1.0
    np.testing.assert_allclose(np.diff(wl), step)
    for label, response in responses.items():
        assert response.shape == wl.shape
        assert response.max() == pytest.approx(1.0, abs=0.005)
        band = s.band(label)
        peak = wl[np.argmax(response)]
        assert band.wavelength_min_um * 1000 - 40 < peak < band.wavelength_max_um * 1000 + 40


def test_mss_rsr_is_shared_by_all_satellites_with_their_labels():
    _, old = pt.load_rsr("MSS", 2)
    _, new = pt.load_rsr("MSS", 5)
    assert list(old) == ["4", "5", "6", "7"] and list(new) == ["1", "2", "3", "4"]
    for a, b in zip(old.values(), new.values(), strict=True):
        np.testing.assert_array_equal(a, b)


# Response-weighted centroids (nm) listed in the shared data's README.
CENTROIDS = {
    ("TM", 5): {"1": 486, "2": 571, "3": 661, "4": 838, "5": 1677, "7": 2217},
    ("ETM+", 7): {"1": 479, "2": 561, "3": 661, "4": 835, "5": 1650, "7": 2208},
    ("OLI", 8): {"2": 483, "3": 561, "4": 655, "5": 865, "6": 1609, "7": 2201},
    ("OLI-2", 9): {"2": 482, "3": 561, "4": 654, "5": 865, "6": 1608, "7": 2201},
    ("MSS", 5): {"1": 554, "2": 664, "3": 751, "4": 904},
}


@pytest.mark.parametrize("key", list(CENTROIDS))
def test_rsr_centroids_match_published_values(key):
    wl, responses = pt.load_rsr(*key)
    for label, centroid in CENTROIDS[key].items():
        r = responses[label]
        assert np.trapezoid(wl * r, wl) / np.trapezoid(r, wl) == pytest.approx(centroid, abs=1.0)


RSR_SOURCES = {
    ("TM", 4): "landsat_tm_l4.csv",
    ("TM", 5): "landsat_tm_l5.csv",
    ("ETM+", 7): "landsat_etm_l7.csv",
    ("OLI", 8): "landsat_oli_l8.csv",
    ("OLI-2", 9): "landsat_oli_l9.csv",
    ("MSS", 5): "landsat_mss.csv",
}


@pytest.mark.parametrize("key", list(RSR_SOURCES))
def test_load_rsr_reproduces_the_shared_tables(shared_data, key):
    wl, responses = pt.load_rsr(*key)
    with (shared_data / "rsr" / RSR_SOURCES[key]).open(newline="") as f:
        rows = list(csv.DictReader(f))
    for label, response in responses.items():
        source = [
            (float(r["wavelength_nm"]), float(r["response"])) for r in rows if r["band"] == label
        ]
        w = np.array([p[0] for p in source])
        at = np.searchsorted(wl, w)
        np.testing.assert_array_equal(wl[at], w)
        np.testing.assert_array_equal(response[at], [p[1] for p in source])
        outside = np.ones(wl.size, bool)
        outside[at] = False
        assert np.all(response[outside] == 0.0)


# --------------------------------------------------------------------------------------
# User pattern sets from CSV


def test_csv_round_trip(tmp_path):
    ps = pt.default_pattern_set()
    path = ps.to_csv(tmp_path / "my-set.csv")
    back = pt.load_pattern_set(path)
    assert back == ps and back.sha256 == ps.sha256
    assert back.name == "my-set"
    assert pt.load_pattern_set(path, name="official").name == "official"
    assert back.sources["file_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_four_single_spectrum_files_on_different_grids(tmp_path):
    ps = pt.default_pattern_set()
    wl = ps.wavelength_nm
    paths = {}
    for kind in pt.KINDS:
        take = slice(None, None, 2) if kind == "soil" else slice(None)  # soil on a 5 nm grid
        column = "reflectance" if kind != "water" else "water"
        lines = [f"wavelength_nm,{column}"] + [
            f"{float(w)!r},{float(v)!r}"
            for w, v in zip(wl[take], ps.spectra[kind][take], strict=True)
        ]
        paths[kind] = write(tmp_path / f"{kind}.csv", "# a comment line\n" + "\n".join(lines))
    loaded = pt.load_pattern_set(paths)
    np.testing.assert_array_equal(loaded.wavelength_nm, wl)
    for kind in ("water", "vegetation", "yellow_leaf"):
        np.testing.assert_array_equal(loaded.spectra[kind], ps.spectra[kind])
    expected_soil = np.interp(wl, wl[::2], ps.spectra["soil"][::2])
    np.testing.assert_allclose(loaded.spectra["soil"], expected_soil, rtol=1e-15)
    assert loaded.name == "water+vegetation+soil+yellow_leaf"
    as_list = pt.load_pattern_set([paths[k] for k in pt.KINDS], name="listed")
    assert as_list == loaded and as_list.name == "listed"
    assert "sha256" in loaded.sources["soil"]


def test_fill_edges_holds_end_values(tmp_path):
    rows = [(400, 0.05, 0.05, 0.1, 0.05), (900, 0.0, 0.5, 0.25, 0.3), (2450, 0.0, 0.1, 0.3, 0.2)]
    path = write(tmp_path / "short.csv", wide_csv(rows))
    with pytest.raises(PatternError, match=r"short\.csv, column 'water'.*400-2450 nm.*350-2500"):
        pt.load_pattern_set(path)
    ps = pt.load_pattern_set(path, fill_edges=True)
    np.testing.assert_array_equal(ps.wavelength_nm, [350, 400, 900, 2450, 2500])
    np.testing.assert_array_equal(ps.spectra["soil"], [0.1, 0.1, 0.25, 0.3, 0.3])
    assert "held down to 350 nm" in ps.sources["soil"]


BAD_CSVS = {
    "missing_column": (
        wide_csv([r[:4] for r in GOOD_ROWS], "wavelength_nm,water,vegetation,soil"),
        r"bad\.csv: missing column\(s\) yellow_leaf",
    ),
    "unexpected_column": (
        wide_csv([(*r, 1) for r in GOOD_ROWS], "wavelength_nm,water,vegetation,soil,yellow_leaf,x"),
        r"bad\.csv: unexpected column\(s\) x",
    ),
    "duplicate_column": (
        wide_csv(
            [(*r, 1) for r in GOOD_ROWS], "wavelength_nm,water,vegetation,soil,yellow_leaf,soil"
        ),
        r"column 'soil' appears twice",
    ),
    "non_numeric": (
        wide_csv([GOOD_ROWS[0], (700, 0.02, "abc", 0.2, 0.15), *GOOD_ROWS[2:]]),
        r"bad\.csv, line 3, column 'vegetation': 'abc' is not a number",
    ),
    "empty_cell": (
        wide_csv([GOOD_ROWS[0], GOOD_ROWS[1], (900, 0.0, 0.5, "", 0.3), GOOD_ROWS[3]]),
        r"bad\.csv, line 4, column 'soil': is empty",
    ),
    "nan": (
        wide_csv([GOOD_ROWS[0], (700, "nan", 0.05, 0.2, 0.15), *GOOD_ROWS[2:]]),
        r"bad\.csv, line 3, column 'water': 'nan' is not a finite number",
    ),
    "inf": (
        wide_csv([*GOOD_ROWS[:3], (2500, 0.0, 0.1, 0.3, "inf")]),
        r"bad\.csv, line 5, column 'yellow_leaf': 'inf' is not a finite",
    ),
    "repeated_wavelength": (
        wide_csv([GOOD_ROWS[0], GOOD_ROWS[1], (700, 0.0, 0.5, 0.25, 0.3), GOOD_ROWS[3]]),
        r"bad\.csv, line 4, column 'wavelength_nm': 700 nm does not increase.*line 3: 700 nm",
    ),
    "decreasing_wavelength": (
        wide_csv([GOOD_ROWS[0], GOOD_ROWS[2], GOOD_ROWS[1], GOOD_ROWS[3]]),
        r"line 4, column 'wavelength_nm': 700 nm does not increase",
    ),
    "negative": (
        wide_csv([GOOD_ROWS[0], (700, 0.02, 0.05, -0.2, 0.15), *GOOD_ROWS[2:]]),
        r"bad\.csv, line 3, column 'soil': reflectance -0.2 is negative beyond the tolerance",
    ),
    "coverage": (
        wide_csv([(400, *GOOD_ROWS[0][1:]), *GOOD_ROWS[1:]]),
        r"bad\.csv, column 'water': the spectrum covers 400-2500 nm.*350-2500 nm",
    ),
    "ragged_row": (
        wide_csv([GOOD_ROWS[0], (700, 0.02, 0.05), *GOOD_ROWS[2:]]),
        r"bad\.csv, line 3: 3 cells, but the header has 5",
    ),
    "all_zero": (
        wide_csv([(r[0], r[1], 0, r[3], r[4]) for r in GOOD_ROWS]),
        r"bad\.csv, column 'vegetation': all values are 0",
    ),
    "one_row": (wide_csv(GOOD_ROWS[:1]), r"bad\.csv: needs at least 2 data rows, found 1"),
    "empty": ("", r"bad\.csv is empty"),
}


@pytest.mark.parametrize("case", list(BAD_CSVS))
def test_bad_csv_errors_name_file_line_and_column(tmp_path, case):
    text, match = BAD_CSVS[case]
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(PatternError, match=match):
        pt.load_pattern_set(path)


def test_good_csv_with_comments_blank_lines_and_small_negatives(tmp_path):
    rows = [
        GOOD_ROWS[0],
        (700, 0.02, 0.05, 0.2, 0.15),
        (900, -0.0004, 0.5, 0.25, 0.3),
        GOOD_ROWS[3],
    ]
    text = "# my spectra\n" + wide_csv(rows).replace("\n700", "\n\n700")
    ps = pt.load_pattern_set(write(tmp_path / "ok.csv", text))
    assert ps.spectra["water"][2] == -0.0004
    assert independent_mean_abs(ps.wavelength_nm, ps.normalised("water")) == pytest.approx(1.0)


def test_coverage_must_reach_the_bands_even_with_fill_edges(tmp_path):
    path = write(tmp_path / "narrow.csv", wide_csv([(500, *GOOD_ROWS[0][1:]), *GOOD_ROWS[1:]]))
    with pytest.raises(PatternError, match=r"narrow\.csv.*does not reach the bands.*450-2350 nm"):
        pt.load_pattern_set(path, fill_edges=True)


def test_missing_file_and_bad_path_arguments(tmp_path):
    with pytest.raises(PatternError, match=r"nope\.csv not found"):
        pt.load_pattern_set(tmp_path / "nope.csv")
    with pytest.raises(PatternError, match="missing: soil"):
        pt.load_pattern_set({k: tmp_path / "x.csv" for k in ("water", "vegetation", "yellow_leaf")})
    with pytest.raises(PatternError, match="got 3 paths"):
        pt.load_pattern_set([tmp_path / "a.csv"] * 3)
    with pytest.raises(PatternError, match="must be a path"):
        pt.load_pattern_set(42)


def test_single_file_missing_reflectance_column(tmp_path):
    good = write(tmp_path / "good.csv", "wavelength_nm,reflectance\n350,0.1\n2500,0.2\n")
    bad = write(tmp_path / "bad.csv", "wavelength_nm,value\n350,0.1\n2500,0.2\n")
    paths = {"water": good, "vegetation": good, "soil": bad, "yellow_leaf": good}
    with pytest.raises(PatternError, match=r"bad\.csv: missing column\(s\) reflectance"):
        pt.load_pattern_set(paths)


# --------------------------------------------------------------------------------------
# Package tables: provenance


def test_package_tables_regenerate_from_shared_data(shared_data, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "build_tables.py"),
            str(shared_data),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    for name in TABLES:
        assert (tmp_path / name).read_bytes() == (PACKAGE_DATA / name).read_bytes(), name


def test_readme_lists_the_shipped_tables_checksums():
    readme = (PACKAGE_DATA / "README.md").read_text(encoding="utf-8")
    for name in TABLES:
        digest = hashlib.sha256((PACKAGE_DATA / name).read_bytes()).hexdigest()
        assert re.search(rf"{digest}\s+`?{re.escape(name)}", readme), name


def test_build_tables_refuses_altered_inputs(shared_data, tmp_path):
    # A copy of the shared folder whose SHA256SUMS no longer matches one input.
    fake = tmp_path / "shared"
    (fake / "spectra").mkdir(parents=True)
    (fake / "rsr").mkdir()
    sums = (shared_data / "SHA256SUMS").read_text(encoding="utf-8")
    (fake / "SHA256SUMS").write_text(sums, encoding="utf-8")
    for rel in ("spectra", "rsr"):
        for f in (shared_data / rel).glob("*.csv"):
            (fake / rel / f.name).write_bytes(f.read_bytes())
    altered = fake / "spectra" / "6s_clear_water.csv"
    altered.write_bytes(altered.read_bytes().replace(b"0.04100", b"0.04200", 1))
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "build_tables.py"),
            str(fake),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "6s_clear_water.csv has sha256" in result.stderr
