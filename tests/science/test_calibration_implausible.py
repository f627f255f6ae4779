"""Implausible calibration constants and sun elevations are refused with their reason.

Each test edits one field of a copy of a real metadata file. A multiplier of 1e300 used to
calibrate every pixel to infinity, which the job then reported as "no valid pixel"; a
zero multiplier gave a flat image; equal QCALMAX and QCALMIN divided by zero; a sun a few
degrees above the horizon gave reflectances that mean nothing. Now the calibration step
names the file, the band, the fields and the accepted range, and never the bad value.
"""

from __future__ import annotations

import math
import re
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from updm_dask.errors import CalibrationError
from updm_dask.metadata import read_mtl
from updm_dask.science.calibration import (
    MIN_SUN_ELEVATION_DEG,
    PLAUSIBLE_BRIGHTEST_REFLECTANCE,
    band_reflectance_coefficients,
    radiance_to_reflectance,
    scene_calibration,
    toa_reflectance,
)

_TM_C1 = (
    "landsat/ethiopia-167055/LT05_L1TP_167055_20000309_20161214_01_T1/"
    "LT05_L1TP_167055_20000309_20161214_01_T1_MTL.txt"
)
_TM_PRE = "landsat/para-224063-1988/LT52240631988227CUB02_MTL.txt"  # radiance + ESUN path
_OLI_LOW_SUN = "mtl/rio-toa/LC80100202015018LGN00_MTL.txt"  # SUN_ELEVATION = 11.10898916
_MSS_NIGHT = "mtl/stactools-landsat/LM01_L1GS_005037_19720823_20200909_02_T2_MTL.xml"
_L2_ARCHIVE = "landsat/xlandsat/LC08_L2SP_218074_20190114_20200829_02_T1-cropped.tar.gz"


def _edited(shared_data: Path, tmp_path: Path, rel: str, *edits: tuple[str, str]) -> Path:
    """A copy of a real MTL with each ``old`` line text (exactly once) replaced by ``new``."""
    text = (shared_data / rel).read_bytes().split(b"\0", 1)[0].decode("ascii")
    for old, new in edits:
        assert text.count(old) == 1, f"{rel}: expected one {old!r}"
        text = text.replace(old, new)
    path = tmp_path / Path(rel).name
    path.write_text(text, encoding="ascii", newline="")
    return path


def _refusal(metadata, band: str | None = None) -> str:
    with pytest.raises(CalibrationError) as info:
        if band is None:
            scene_calibration(metadata)
        else:
            toa_reflectance(np.array([[1, 100, 200]], np.uint16), metadata, band)
    return str(info.value)


# --------------------------------------------------------------------------------------
# Multipliers


@pytest.mark.parametrize("value", ["0.0000E+00", "-2.6270E-03"])
def test_zero_or_negative_reflectance_mult_is_refused(shared_data, tmp_path, value):
    path = _edited(
        shared_data,
        tmp_path,
        _TM_C1,
        ("REFLECTANCE_MULT_BAND_4 = 2.6270E-03", f"REFLECTANCE_MULT_BAND_4 = {value}"),
    )
    message = _refusal(read_mtl(path))
    assert message.startswith(
        f"{path}: band 4: REFLECTANCE_MULT_BAND_4 is zero or negative (expected a positive "
        "multiplier"
    ), message
    assert value not in message


@pytest.mark.parametrize("value", ["0.000", "-1.044"])
def test_zero_or_negative_radiance_mult_is_refused(shared_data, tmp_path, value):
    path = _edited(
        shared_data,
        tmp_path,
        _TM_PRE,
        ("RADIANCE_MULT_BAND_3 = 1.044", f"RADIANCE_MULT_BAND_3 = {value}"),
    )
    message = _refusal(read_mtl(path), "3")
    assert message.startswith(
        f"{path}: band 3: RADIANCE_MULT_BAND_3 is zero or negative (expected a positive"
    ), message


def test_a_huge_reflectance_mult_is_named_not_reported_as_no_valid_pixel(shared_data, tmp_path):
    path = _edited(
        shared_data,
        tmp_path,
        _TM_C1,
        ("REFLECTANCE_MULT_BAND_4 = 2.6270E-03", "REFLECTANCE_MULT_BAND_4 = 1e300"),
    )
    metadata = read_mtl(path)  # a finite number: reading it is fine
    low, high = PLAUSIBLE_BRIGHTEST_REFLECTANCE
    expected = (
        f"{path}: band 4: REFLECTANCE_MULT_BAND_4 / REFLECTANCE_ADD_BAND_4 give the brightest "
        f"DN (QUANTIZE_CAL_MAX_BAND_4) a reflectance above {high:g} with the sun at the zenith "
        f"(expected {low:g} to {high:g}); the calibration is corrupt, this scene cannot be "
        "calibrated"
    )
    assert _refusal(metadata) == expected
    assert _refusal(metadata, "4") == expected
    assert "1e300" not in expected and "inf" not in expected


def test_a_tiny_reflectance_mult_is_refused(shared_data, tmp_path):
    path = _edited(
        shared_data,
        tmp_path,
        _TM_C1,
        ("REFLECTANCE_MULT_BAND_2 = 2.5504E-03", "REFLECTANCE_MULT_BAND_2 = 1.0E-12"),
    )
    message = _refusal(read_mtl(path))
    assert re.match(
        re.escape(f"{path}: band 2: REFLECTANCE_MULT_BAND_2 / REFLECTANCE_ADD_BAND_2 give ")
        + r".* a reflectance below 0\.05 with the sun at the zenith",
        message,
    ), message


def test_a_huge_radiance_mult_is_refused_on_the_esun_path(shared_data, tmp_path):
    path = _edited(
        shared_data,
        tmp_path,
        _TM_PRE,
        ("RADIANCE_MULT_BAND_3 = 1.044", "RADIANCE_MULT_BAND_3 = 1e300"),
    )
    message = _refusal(read_mtl(path))
    assert message.startswith(
        f"{path}: band 3: RADIANCE_MULT_BAND_3 / RADIANCE_ADD_BAND_3 with ESUN give the "
        "brightest DN (QUANTIZE_CAL_MAX_BAND_3) a reflectance above 20"
    ), message


def test_lmax_lmin_and_qcal_ranges_must_be_increasing(shared_data, tmp_path):
    # Without RADIANCE_MULT/ADD the band is calibrated from LMAX/LMIN and QCALMAX/QCALMIN.
    no_mult = (
        ("    RADIANCE_MULT_BAND_3 = 1.044\n", ""),
        ("    RADIANCE_ADD_BAND_3 = -2.21398\n", ""),
    )
    swapped = _edited(
        shared_data,
        tmp_path,
        _TM_PRE,
        *no_mult,
        ("RADIANCE_MAXIMUM_BAND_3 = 264.000", "RADIANCE_MAXIMUM_BAND_3 = -2.000"),
    )
    assert _refusal(read_mtl(swapped), "3").startswith(
        f"{swapped}: band 3: RADIANCE_MAXIMUM_BAND_3 (LMAX) is not above "
        "RADIANCE_MINIMUM_BAND_3 (LMIN) (expected LMAX > LMIN)"
    )
    flat = _edited(
        shared_data,
        tmp_path,
        _TM_PRE,
        *no_mult,
        ("QUANTIZE_CAL_MIN_BAND_3 = 1", "QUANTIZE_CAL_MIN_BAND_3 = 255"),
    )
    # Before, this divided by zero.
    assert _refusal(read_mtl(flat), "3").startswith(
        f"{flat}: band 3: QUANTIZE_CAL_MAX_BAND_3 is not above QUANTIZE_CAL_MIN_BAND_3"
    )
    # The untouched LMAX/LMIN path still calibrates, to a plausible reflectance.
    good = _edited(shared_data, tmp_path, _TM_PRE, *no_mult)
    coefficients = band_reflectance_coefficients(read_mtl(good), "3")
    assert coefficients.source == "mtl-lmin-lmax+collection2-esun"
    assert 0.1 < coefficients.gain * 254 + coefficients.offset < 2.0


@pytest.mark.parametrize(
    ("value", "problem"), [("0.0", "is zero or negative"), ("1e300", "and its offset give")]
)
def test_level2_scale_factors_are_checked_too(shared_data, tmp_path, value, problem):
    with tarfile.open(shared_data / _L2_ARCHIVE) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("_MTL.txt"))
        text = tar.extractfile(member).read().decode("ascii")
    # Only the surface-reflectance scale (2.75e-05), not the Level-1 TOA one (2.0000E-05).
    assert text.count("REFLECTANCE_MULT_BAND_4 = 2.75e-05") == 1
    path = tmp_path / member.name
    path.write_text(
        text.replace("REFLECTANCE_MULT_BAND_4 = 2.75e-05", f"REFLECTANCE_MULT_BAND_4 = {value}")
    )
    message = _refusal(read_mtl(path))
    assert message.startswith(
        f"{path}: band 4: REFLECTANCE_MULT_BAND_4 of LEVEL2_SURFACE_REFLECTANCE_PARAMETERS "
        + problem
    ), message


@pytest.mark.slow  # imports the whole pipeline
def test_process_scene_refuses_the_scene_instead_of_emptying_it(shared_data, tmp_path):
    from updm_dask.pipeline import process_scene
    from updm_dask.scenes import open_scene

    folder = shared_data / Path(_TM_C1).parent
    scene = tmp_path / folder.name
    shutil.copytree(folder, scene)
    mtl = scene / Path(_TM_C1).name
    text = mtl.read_text()
    mtl.write_text(
        text.replace("REFLECTANCE_MULT_BAND_4 = 2.6270E-03", "REFLECTANCE_MULT_BAND_4 = 1e300")
    )
    with pytest.raises(CalibrationError, match=r"band 4: REFLECTANCE_MULT_BAND_4 / .* above 20"):
        process_scene(open_scene(scene))


# --------------------------------------------------------------------------------------
# Sun elevation


def test_real_low_sun_scene_at_11_degrees_still_calibrates(shared_data):
    metadata = read_mtl(shared_data / _OLI_LOW_SUN)
    assert metadata.sun_elevation == 11.10898916  # the file's SUN_ELEVATION
    calibration = scene_calibration(metadata)
    assert calibration.bands == ("2", "3", "4", "5", "6", "7")
    rho = toa_reflectance(np.array([10000, 20000], np.uint16), metadata, "4")
    # REFLECTANCE_MULT 2.0E-05 and ADD -0.1 of the file, over sin(11.10898916 deg).
    sin_el = math.sin(math.radians(11.10898916))
    np.testing.assert_allclose(rho, (np.array([0.2, 0.4]) - 0.1) / sin_el, rtol=1e-6)


def test_night_mss_scene_is_read_but_refused_for_reflectance(shared_data):
    metadata = read_mtl(shared_data / _MSS_NIGHT)
    assert metadata.sun_elevation == -30.74709801  # reading a real file stays possible
    message = _refusal(metadata)
    assert message == (
        f"{metadata.path}: SUN_ELEVATION is at or below 0 deg (sun at or below the horizon): "
        "reflectance is undefined, so this scene cannot be calibrated (expected at least "
        f"{MIN_SUN_ELEVATION_DEG:g} deg)"
    )
    assert "30.7" not in message


@pytest.mark.parametrize(("value", "refused"), [("4.99", True), ("0.50", True), ("5.00", False)])
def test_sun_elevations_just_above_the_horizon_are_refused(shared_data, tmp_path, value, refused):
    assert MIN_SUN_ELEVATION_DEG == 5.0
    path = _edited(
        shared_data,
        tmp_path,
        _OLI_LOW_SUN,
        ("SUN_ELEVATION = 11.10898916", f"SUN_ELEVATION = {value}"),
    )
    metadata = read_mtl(path)
    if not refused:
        assert scene_calibration(metadata).bands == ("2", "3", "4", "5", "6", "7")
        return
    message = _refusal(metadata)
    assert message == (
        f"{path}: SUN_ELEVATION is below 5 deg: with the sun that low the plane-parallel 1/cos "
        "air mass and the single-scattering Rayleigh path of eqs. (6)-(7) no longer hold, so "
        "its reflectance would not mean anything; this scene cannot be calibrated"
    )
    assert value not in message


def test_radiance_to_reflectance_applies_the_same_limit():
    radiance = np.array([50.0], np.float32)
    with pytest.raises(CalibrationError, match=r"sun_elevation_deg is below 5 deg"):
        radiance_to_reflectance(radiance, 1536.0, 3.0, 1.0)
    with pytest.raises(CalibrationError, match=r"sun_elevation_deg is at or below 0 deg"):
        radiance_to_reflectance(radiance, 1536.0, -1.0, 1.0)
    got = radiance_to_reflectance(radiance, 1536.0, 30.0, 1.0)
    np.testing.assert_allclose(got, math.pi * 50.0 / (1536.0 * 0.5), rtol=1e-6)
