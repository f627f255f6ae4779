"""The forward model: what it writes, the package's inverse undoes; the sun and SLC-off
geometry against real metadata and hand-worked values."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from updm_dask import demo
from updm_dask.demo import forward_dn, slc_off_gap_mask, solar_position
from updm_dask.demo.forward import NOISE
from updm_dask.errors import PatternError
from updm_dask.metadata import read_mtl
from updm_dask.science.calibration import rayleigh_reflectance, toa_reflectance
from updm_dask.science.classify import classify_array, load_rules
from updm_dask.science.decompose import nnls_decompose
from updm_dask.science.patterns import band_patterns
from updm_dask.science.sensors import get_sensor


def _converted(scene, md, read_band):
    """DN -> TOA reflectance (the MTL's rescaling) -> minus Rayleigh: the note's input."""
    sensor = get_sensor(md.sensor, md.satellite)
    dns, rho = [], []
    for b in sensor.bands:
        dn = read_band(scene, md, b.label)
        path = rayleigh_reflectance(b.centre_um, 90.0 - md.sun_elevation)
        dns.append(dn)
        rho.append(toa_reflectance(dn, md, b.label) - path)
    return sensor, np.stack(dns, axis=-1), np.stack(rho, axis=-1)


def test_forward_dn_hand_worked():
    with pytest.raises(PatternError, match="patterns"):
        forward_dn(np.zeros(4), np.ones((2, 3)), 0, 1, 1, 0, 255)
    patterns = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 1.0]])
    c = np.array([[0.1, 0.2, 0.0], [0.0, 0.0, 0.0]])
    # A = P c = (0.2, 0.2) and (0, 0); + A_R (0.05, 0.01); x sin 0.5; (x + 0.1) / 0.001
    dn = forward_dn(
        c,
        patterns,
        np.array([0.05, 0.01]),
        0.5,
        np.array([1e-3, 1e-3]),
        np.array([-0.1, -0.1]),
        np.array([210, 255]),
    )
    # Pixel 1: 0.125 -> 225 clipped to 210; 0.105 -> 205. Pixel 2: 0.025 -> 125; 0.005 -> 105.
    np.testing.assert_array_equal(dn, [[210.0, 205.0], [125.0, 105.0]])
    dark = forward_dn(
        np.zeros(3), patterns, np.zeros(2), 1.0, np.full(2, 1e-3), np.full(2, 0.01), np.full(2, 255)
    )
    np.testing.assert_array_equal(dark, [1.0, 1.0])  # below the lowest DN: clipped to 1, not 0


def _predicted_sigma(patterns, noise, quantum):
    """Coefficient standard deviations of a least-squares fit with independent band errors of
    sigma = sqrt(noise**2 + quantum**2 / 12) (Gaussian noise + rounding to whole DNs)."""
    p = np.asarray(patterns, dtype=np.float64)
    pinv = np.linalg.pinv(p)
    var_bands = noise**2 + quantum**2 / 12.0
    return np.sqrt(np.einsum("kb,b,kb->k", pinv, var_bands, pinv))


def test_decomposition_recovers_planted_coefficients_within_noise(archive, read_band):
    for s in archive.scenes:
        md = read_mtl(s.mtl_path)
        sensor, dns, spectra = _converted(s, md, read_band)
        patterns = band_patterns(sensor.name, satellite=sensor.satellite)
        coeffs, _ = nnls_decompose(spectra, patterns.values)
        truth = archive.scene_truth(s.product_id)
        qmax = np.array([md.band(b).quantize_cal_max for b in sensor.band_labels])
        # Pixels a decomposition can recover: clear, and no band clipped at 1 or saturated.
        usable = truth.clear & np.all((dns > 1) & (dns < qmax), axis=-1)
        assert usable.mean() > 0.5, s.product_id
        sin_el = math.sin(math.radians(md.sun_elevation))
        quantum = np.array([md.band(b).reflectance_mult for b in sensor.band_labels]) / sin_el
        sigma = _predicted_sigma(patterns.values, NOISE[s.sensor], quantum)
        planted = np.zeros(coeffs.shape)
        planted[..., :3] = truth.coefficients  # uC4 planted as 0
        z = np.abs(coeffs - planted)[usable] / sigma
        assert np.mean(z < 5.0) > 0.99, (s.product_id, np.percentile(z, 99, axis=0))
        assert np.median(z) < 1.5, s.product_id


def test_planted_classes_are_recovered_by_the_rule_tables(archive, read_band):
    for s in archive.scenes:
        md = read_mtl(s.mtl_path)
        sensor, _, spectra = _converted(s, md, read_band)
        coeffs, _ = nnls_decompose(spectra, band_patterns(sensor.name, satellite=sensor.satellite))
        classes = classify_array(coeffs, load_rules(s.sensor))
        truth = archive.scene_truth(s.product_id)
        land = truth.clear & (truth.land_cover >= 2)
        assert land.sum() > 0.5 * land.size
        assert np.mean(classes[land] == truth.land_cover[land]) > 0.97, s.product_id
        for code in (2, 3, 4):
            m = land & (truth.land_cover == code)
            if m.sum() >= 10:
                assert np.mean(classes[m] == code) > 0.9, (s.product_id, code)
        # UPDM's own cloud rule finds the planted clouds (MSS has no QA band to say so).
        cloud = truth.cloud & ~truth.fill
        if cloud.any():
            assert np.mean(classes[cloud] == 1) > 0.95, s.product_id
        assert not np.any(classes[land] == 1)


def test_clean_coefficients_classify_for_every_sensor_without_files():
    # The kernel path alone, on a larger sample: noisy forward reflectance of every cover.
    rng = np.random.default_rng(3)
    covers = {"forest": 3, "cleared": 4, "urban": 4, "water": 2, "cloud": 1}
    for name, sat in (("MSS", 2), ("MSS", 5), ("TM", 5), ("ETM+", 7), ("OLI", 8), ("OLI-2", 9)):
        sensor = get_sensor(name, sat)
        p_full = band_patterns(name, satellite=sat)
        p3 = p_full.sel(pattern=["water", "vegetation", "soil"]).values
        for cover, code in covers.items():
            c = np.asarray(demo.COVER_COEFFICIENTS[cover]) * rng.uniform(0.85, 1.15, (2000, 1))
            a = c @ p3.T + rng.normal(0.0, NOISE[sensor.name], (2000, len(sensor.bands)))
            coeffs, _ = nnls_decompose(a, p_full.values)
            classes = classify_array(coeffs, load_rules(name))
            assert np.mean(classes == code) > 0.98, (name, sat, cover)


def test_slc_off_gap_kernel_widens_away_from_the_track():
    across = np.linspace(-92_000.0, 92_000.0, 185)
    along = np.arange(0.0, 96_000.0, 6.0)  # 100 scan pairs, finely sampled
    gaps = slc_off_gap_mask(
        across[None, :], along[:, None], track_x=0.0, track_y=0.0, track_angle_deg=0.0
    )
    fraction = gaps.mean(axis=0)
    centre = np.abs(across) < 1_500
    edge = np.abs(across) > 88_000
    assert fraction[centre].max() < 0.01
    # 14 of every 32 lines at the swath edge; about 22 % of a whole scene (USGS).
    assert fraction[edge].mean() == pytest.approx(14 / 32, abs=0.03)
    assert gaps.mean() == pytest.approx(0.22, abs=0.02)
    east = across > 0
    assert np.all(np.diff(fraction[east][::10]) >= -0.011)


@pytest.mark.parametrize(
    "relpath",
    [
        "mtl/rstoolbox/LC08_L1TP_193024_20180824_20200831_02_T1_MTL.txt",
        "mtl/rstoolbox/LT05_L1TP_047027_20101006_20160512_01_T1_MTL.txt",
        "mtl/rstoolbox/LE07_L1TP_160031_20110416_20161210_01_T1_MTL.TXT",
        "mtl/stactools-landsat/LM05_L1GS_001001_19850524_20210918_02_T2_MTL.xml",
        "mtl/stactools-landsat/LM01_L1GS_005037_19720823_20200909_02_T2_MTL.xml",  # night
    ],
)
def test_solar_position_matches_real_mtl_sun_angles(shared_data, relpath):
    md = read_mtl(shared_data / relpath)
    lat = float(np.mean([c[0] for c in md.corners_latlon.values()]))
    lon = float(np.mean([c[1] for c in md.corners_latlon.values()]))
    elevation, azimuth = solar_position(lat, lon, md.acquired)
    assert elevation == pytest.approx(md.sun_elevation, abs=0.6)
    d_az = (azimuth - md.sun_azimuth + 180.0) % 360.0 - 180.0
    assert abs(d_az) < 1.5


def test_solar_position_hand_worked():
    # At the March equinox the sun culminates overhead the equator: elevation ~ 90 - |lat|.
    noon = dt.datetime(2021, 3, 20, 12, 7, tzinfo=dt.UTC)  # equation of time ~ -7.5 min
    elevation, _ = solar_position(0.0, 0.0, noon)
    assert elevation == pytest.approx(90.0, abs=0.6)
    elevation, azimuth = solar_position(45.0, 0.0, noon)
    assert elevation == pytest.approx(45.0, abs=0.6) and azimuth == pytest.approx(180.0, abs=2)
    # Morning sun is in the east, afternoon in the west.
    assert 0 < solar_position(45.0, 0.0, noon - dt.timedelta(hours=3))[1] < 180
    assert 180 < solar_position(45.0, 0.0, noon + dt.timedelta(hours=3))[1] < 360
