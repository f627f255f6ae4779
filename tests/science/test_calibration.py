"""Calibration: eqs. (1)-(7), checked against hand-worked values and real MTL numbers."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from updm_dask.errors import CalibrationError, SensorError
from updm_dask.science.calibration import (
    calibrate_block,
    earth_sun_distance,
    rayleigh_optical_thickness,
    rayleigh_reflectance,
    scene_calibration,
    toa_reflectance,
)
from updm_dask.science.sensors import (
    esun,
    get_sensor,
    named_calibration,
    note_mss_e0,
    published_calibration,
)

# ------------------------------------------------------------------------------ Rayleigh


def test_rayleigh_hand_worked_tm_blue():
    # lambda = 0.485 um, theta0 = 40.75 deg, nadir; by hand:
    # t = 0.00879 * 0.485**-4.09 = 0.16955;  mu0 = cos(40.75) = 0.75756
    # 1 - exp(-t (1 + 1/mu0)) = 1 - exp(-0.39337) = 0.32521
    # P = 0.75 (1 + 0.75756**2) = 1.18042;   A_R = 0.32521 * 1.18042 / (4 * 1.75756) = 0.05461
    assert rayleigh_optical_thickness(0.485) == pytest.approx(0.16955, abs=2e-5)
    assert rayleigh_reflectance(0.485, 40.75) == pytest.approx(0.05461, abs=2e-5)


def test_rayleigh_equals_eq6_over_eq7_with_irradiance_and_distance():
    # Eq. (6) then (7) written out with E0 and d, which must cancel.
    e0, d = 1957.0, 0.983
    for wavelength, zenith in [(0.56, 30.0), (0.66, 55.0), (0.83, 10.0), (1.65, 70.0)]:
        t = 0.00879 * wavelength**-4.09
        mu0, mu = math.cos(math.radians(zenith)), 1.0
        scatter = math.radians(180.0 - zenith)
        phase = 0.75 * (1 + math.cos(scatter) ** 2)
        l_r = (e0 / d**2) * mu0 / (mu + mu0) * (1 - math.exp(-t * (1 / mu + 1 / mu0)))
        l_r *= phase / (4 * math.pi)
        es = e0 * mu0 / d**2
        assert rayleigh_reflectance(wavelength, zenith) == pytest.approx(
            l_r / (es / math.pi), rel=1e-12
        )


def test_rayleigh_wavelength_dependence_blue_vs_swir():
    values = rayleigh_reflectance(np.array([0.485, 0.56, 0.66, 0.83, 1.65, 2.215]), 35.0)
    assert np.all(np.diff(values) < 0)
    assert values[0] > 0.03  # blue loses a few hundredths
    assert values[-1] < 5e-4  # SWIR almost nothing


def test_rayleigh_broadcasts_and_rejects_bad_input():
    out = rayleigh_reflectance(np.array([0.5, 0.6])[:, None], np.array([20.0, 40.0, 60.0])[None, :])
    assert out.shape == (2, 3)
    assert np.isnan(rayleigh_reflectance(0.5, 95.0))  # sun below the horizon
    with pytest.raises(CalibrationError, match="wavelength_um"):
        rayleigh_reflectance(-0.5, 30.0)
    with pytest.raises(CalibrationError, match="view_zenith_deg"):
        rayleigh_reflectance(0.5, 30.0, view_zenith_deg=95.0)


# ------------------------------------------------------------------------ Earth-Sun distance

# EARTH_SUN_DISTANCE as printed in real MTL files of the shared data.
MTL_DISTANCES = [
    ("2010-10-06", 0.9996474),
    ("2010-08-01", 1.0149567),
    ("2000-03-09", 0.9929941),
    ("2017-03-16", 0.9947671),
    ("2011-04-16", 1.0034290),
    ("1978-08-05", 1.0143493),
]


@pytest.mark.parametrize(("date", "expected"), MTL_DISTANCES)
def test_earth_sun_distance_matches_mtl(date, expected):
    assert earth_sun_distance(dt.date.fromisoformat(date)) == pytest.approx(expected, abs=1.5e-4)


def test_earth_sun_distance_accepts_strings_and_datetime64():
    a = earth_sun_distance("2017-03-16T07:30:00")
    b = earth_sun_distance(np.datetime64("2017-03-16T07:30:00"))
    c = earth_sun_distance(dt.datetime(2017, 3, 16, 7, 30, tzinfo=dt.UTC))
    assert a == b == c


# ------------------------------------------------------------------- tables and sensors


def test_note_1985_set_in_spectral_radiance():
    mss = named_calibration("note-1985-landsat5", "MSS")
    # band-integrated mW cm-2 sr-1 / width um * 10 -> W m-2 sr-1 um-1
    assert [round(mss.band(b).lmax, 2) for b in "1234"] == [238.0, 164.0, 142.0, 116.33]
    assert all(mss.band(b).qcal_max == 127 for b in "1234")
    # eq. (2): E0 = 10**r * 6.8e-8; 10**10.43 = 2.6915e10 -> 1830.2
    assert note_mss_e0()[0] == pytest.approx(1830.2, abs=0.1)
    tm = named_calibration("note-1985-landsat5", "TM")
    # 1.004 / 0.066 * 10 = 152.12 (Chander's pre-2003 TM5 LMAX: 152.10)
    assert tm.band("1").lmax == pytest.approx(152.12, abs=0.01)
    assert tm.band("7").lmin == pytest.approx(-0.15, abs=1e-9)
    assert tm.band("5").esun == 219.3 and tm.band("1").qcal_max == 255
    with pytest.raises(SensorError, match="Landsat-5"):
        named_calibration("note-1985-landsat5", "ETM+")
    with pytest.raises(SensorError, match="unknown calibration"):
        named_calibration("no-such-set", "TM")


def test_sensor_band_numbering_and_errors():
    assert get_sensor("MSS", 1).band_labels == ("4", "5", "6", "7")
    assert get_sensor("MSS", 5).band_labels == ("1", "2", "3", "4")
    assert get_sensor("OLI_TIRS", 9).name == "OLI-2"
    assert get_sensor("ETM", 7).band("7").centre_um == pytest.approx(2.22)
    with pytest.raises(SensorError, match="Landsat-6"):
        get_sensor("TM", 6)
    with pytest.raises(SensorError, match="unknown sensor"):
        get_sensor("AVHRR")
    with pytest.raises(SensorError, match="OLI"):
        esun("OLI")
    with pytest.raises(SensorError, match="no reflective band"):
        get_sensor("TM").band("6")


# ------------------------------------------------------------------------ real metadata


def _mtl_number(path: Path, field: str) -> float:
    """Read one numeric field straight from MTL text (independent of the package parser)."""
    text = path.read_bytes().split(b"\0", 1)[0].decode()
    match = re.search(rf"^\s*{field}\s*=\s*\"?([-+0-9.Ee]+)", text, re.MULTILINE)
    assert match, f"{field} not in {path.name}"
    return float(match.group(1))


@pytest.mark.parametrize(
    ("relpath", "satellite", "date"),
    [
        ("landsat/para-224063-1988/LT52240631988227CUB02_MTL.txt", 5, "1988-08-14"),
        (
            "landsat/ethiopia-167055/LT05_L1TP_167055_20000309_20161214_01_T1/"
            "LT05_L1TP_167055_20000309_20161214_01_T1_MTL.txt",
            5,
            "2000-03-09",
        ),
        (
            "landsat/ethiopia-167055/LT51670552010352MLK00/LT51670552010352MLK00_MTL.txt",
            5,
            "2010-12-18",
        ),
        (
            "landsat/ethiopia-167055/LE07_L1TP_167055_20170316_20170411_01_T1/"
            "LE07_L1TP_167055_20170316_20170411_01_T1_MTL.txt",
            7,
            "2017-03-16",
        ),
    ],
)
def test_published_tables_agree_with_real_mtl(shared_data, relpath, satellite, date):
    path = shared_data / relpath
    sensor = "TM" if satellite == 5 else "ETM+"
    table = published_calibration(sensor, satellite, dt.date.fromisoformat(date))
    for label in get_sensor(sensor, satellite).band_labels:
        assert table.band(label).lmax == pytest.approx(
            _mtl_number(path, f"RADIANCE_MAXIMUM_BAND_{label}")
        )
        assert table.band(label).lmin == pytest.approx(
            _mtl_number(path, f"RADIANCE_MINIMUM_BAND_{label}")
        )


def test_toa_reflectance_matches_rio_toa_formula(shared_data):
    from updm_dask.metadata import read_mtl

    rasterio = pytest.importorskip("rasterio")
    folder = shared_data / "peer" / "rio-toa"
    md = read_mtl(folder / "LC80460282016177LGN00_MTL.json")
    with rasterio.open(folder / "tiny_LC80460282016177LGN00_B2.TIF") as src:
        dn = src.read(1, window=((700, 764), (700, 764)))
    raw = json.loads((folder / "LC80460282016177LGN00_MTL.json").read_text())
    rescale = raw["L1_METADATA_FILE"]["RADIOMETRIC_RESCALING"]
    sun = raw["L1_METADATA_FILE"]["IMAGE_ATTRIBUTES"]["SUN_ELEVATION"]
    expected = (
        rescale["REFLECTANCE_MULT_BAND_2"] * dn + rescale["REFLECTANCE_ADD_BAND_2"]
    ) / math.sin(math.radians(sun))
    expected[dn == 0] = np.nan
    got = toa_reflectance(dn, md, 2)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=2e-6, atol=1e-7)
    assert np.isnan(got).sum() == (dn == 0).sum()
    assert np.isnan(toa_reflectance(np.zeros((3, 3), np.uint16), md, 2)).all()


def test_pre_collection_radiance_esun_path(shared_data):
    from updm_dask.metadata import read_mtl

    path = (
        shared_data / "landsat/ethiopia-167055/LT51670552010352MLK00/LT51670552010352MLK00_MTL.txt"
    )
    md = read_mtl(path)
    dn = np.array([[0, 1, 50, 120, 254, 255]], dtype=np.uint8)
    # Chander's ESUN by name (the default is now the Collection-2 irradiance, see
    # tests/science/test_calibration_eras.py).
    got = toa_reflectance(dn, md, 3, irradiance="chander2009")
    mult, add = _mtl_number(path, "RADIANCE_MULT_BAND_3"), _mtl_number(path, "RADIANCE_ADD_BAND_3")
    elevation = _mtl_number(path, "SUN_ELEVATION")
    d = earth_sun_distance(dt.date(2010, 12, 18))
    expected = math.pi * (mult * dn + add) * d**2 / (1536.0 * math.sin(math.radians(elevation)))
    np.testing.assert_allclose(got[0, 1:5], expected[0, 1:5], rtol=2e-4)
    assert np.isnan(got[0, 0])  # fill
    assert np.isnan(got[0, 5])  # saturated at QUANTIZE_CAL_MAX 255


def test_collection1_reflectance_and_radiance_paths_agree(shared_data):
    """The MTL's REFLECTANCE_MULT and its RADIANCE_MULT + Chander ESUN agree to a few %.

    Collection products derive REFLECTANCE_MULT from a newer solar spectrum than Chander's
    ESUN table; on this scene the two routes differ by up to 5 % (SWIR1), never more.
    """
    from updm_dask.metadata import read_mtl
    from updm_dask.science.calibration import band_reflectance_coefficients

    md = read_mtl(
        shared_data / "landsat/ethiopia-167055/LT05_L1TP_167055_20000309_20161214_01_T1/"
        "LT05_L1TP_167055_20000309_20161214_01_T1_MTL.txt"
    )
    for band in ("1", "3", "4", "5", "7"):
        via_reflectance = band_reflectance_coefficients(md, band)
        assert via_reflectance.source == "mtl-reflectance"
        b = md.band(band)
        sun = esun("TM", 5, "chander2009")[band]
        factor = (
            math.pi * md.earth_sun_distance**2 / (sun * math.sin(math.radians(md.sun_elevation)))
        )
        assert via_reflectance.gain == pytest.approx(b.radiance_mult * factor, rel=0.06)


def test_night_scene_and_missing_band_are_errors(shared_data):
    from updm_dask.metadata import read_mtl

    night = read_mtl(
        shared_data / "mtl/stactools-landsat/LM01_L1GS_005037_19720823_20200909_02_T2_MTL.xml"
    )
    with pytest.raises(CalibrationError, match="horizon"):
        toa_reflectance(np.ones((2, 2), np.uint8), night, 4)
    missing = read_mtl(shared_data / "mtl/sertit/LM05_L1TP_200030_20121230_20200820_02_T2_MTL.xml")
    with pytest.raises(CalibrationError, match="band 4"):
        toa_reflectance(np.ones((2, 2), np.uint8), missing, 4)
    with pytest.raises(CalibrationError, match="no reflective band"):
        toa_reflectance(np.ones((2, 2), np.uint8), missing, 9)


def test_scene_calibration_and_block_kernel(shared_data):
    from updm_dask.metadata import read_mtl

    md = read_mtl(
        shared_data / "landsat/ethiopia-167055/LT05_L1TP_167055_20000309_20161214_01_T1/"
        "LT05_L1TP_167055_20000309_20161214_01_T1_MTL.txt"
    )
    cal = scene_calibration(md)
    assert cal.bands == ("1", "2", "3", "4", "5", "7")
    rng = np.random.default_rng(0)
    dn = rng.integers(0, 256, size=(6, 5, 7)).astype(np.uint8)
    out = calibrate_block(dn, cal)
    zenith = 90 - md.sun_elevation
    for i, band in enumerate(cal.bands):
        expected = toa_reflectance(dn[i], md, band) - rayleigh_reflectance(
            get_sensor("TM", 5).band(band).centre_um, zenith
        )
        np.testing.assert_allclose(out[i], expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(CalibrationError, match="bands"):
        calibrate_block(dn[:4], cal)


def test_named_calibration_reproduces_note_for_a_tm_scene(shared_data):
    """With the note's 1985 set, DN 255 in TM band 1 is Rmax = 152.12 W m-2 sr-1 um-1."""
    from updm_dask.metadata import read_mtl

    md = read_mtl(shared_data / "landsat/para-224063-1988/LT52240631988227CUB02_MTL.txt")
    got = toa_reflectance(np.array([200], np.uint8), md, 1, calibration="note-1985-landsat5")
    radiance = 200 / 255 * (152.12 + 1.5) - 1.5
    d = earth_sun_distance(dt.date(1988, 8, 14))
    expected = math.pi * radiance * d**2 / (1957.0 * math.sin(math.radians(md.sun_elevation)))
    assert got[0] == pytest.approx(expected, rel=1e-3)
