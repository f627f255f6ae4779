"""The synthetic archive of ``updm demo``: real files, forward physics that the inverse undoes,
and a planted story that the truth describes."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import re
import tomllib
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import numpy as np
import pytest
import rasterio

from updm_dask import demo
from updm_dask.demo import (
    DEMO_EPSG,
    MIN_SIZE,
    RESERVOIR_FILL_YEAR,
    demo_job_spec,
    format_recovery,
    forward_dn,
    make_demo_archive,
    recovery_report,
    slc_off_gap_mask,
    solar_position,
)
from updm_dask.demo.forward import NOISE
from updm_dask.demo.story import SCHEDULE, schedule_order
from updm_dask.errors import GridError, PatternError, SceneError
from updm_dask.metadata import parse_odl, read_mtl
from updm_dask.science.calibration import rayleigh_reflectance, toa_reflectance
from updm_dask.science.classify import classify_array, load_rules
from updm_dask.science.decompose import nnls_decompose
from updm_dask.science.patterns import band_patterns
from updm_dask.science.sensors import get_sensor

SIZE = 48
N_SCENES = 9  # the core of the schedule: every sensor generation, SLC-off, cloudy scenes


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return make_demo_archive(tmp_path_factory.mktemp("demo"), seed=7, n_scenes=N_SCENES, size=SIZE)


def _read_band(scene, md, label):
    with rasterio.open(scene.folder / md.band(label).file_name) as src:
        return src.read(1)


def _converted(scene, md):
    """DN -> TOA reflectance (the MTL's rescaling) -> minus Rayleigh: the note's input."""
    sensor = get_sensor(md.sensor, md.satellite)
    dns, rho = [], []
    for b in sensor.bands:
        dn = _read_band(scene, md, b.label)
        path = rayleigh_reflectance(b.centre_um, 90.0 - md.sun_elevation)
        dns.append(dn)
        rho.append(toa_reflectance(dn, md, b.label) - path)
    return sensor, np.stack(dns, axis=-1), np.stack(rho, axis=-1)


# --------------------------------------------------------------------------------------
# Schedule and records


def test_full_schedule_covers_every_year_with_valid_platforms():
    slots = SCHEDULE
    years = {s.year for s in slots}
    assert years == set(range(1973, 2025))
    assert len(slots) <= 2 * len(years)
    flown = {  # first and last year of each sensor's data in the archive
        ("MSS", 1): (1972, 1978),
        ("MSS", 2): (1975, 1982),
        ("MSS", 3): (1978, 1983),
        ("MSS", 4): (1982, 1993),
        ("MSS", 5): (1984, 1995),
        ("TM", 4): (1982, 1993),
        ("TM", 5): (1984, 2011),
        ("ETM+", 7): (1999, 2024),
        ("OLI", 8): (2013, 2024),
        ("OLI-2", 9): (2021, 2024),
    }
    for s in slots:
        first, last = flown[(s.sensor, s.satellite)]
        assert first <= s.year <= last, s
    order = schedule_order()
    assert sorted(order) == list(range(len(slots)))


def test_scene_records(archive):
    scenes = archive.scenes
    assert len(scenes) == N_SCENES
    assert [s.acquired for s in scenes] == sorted(s.acquired for s in scenes)
    assert {s.sensor for s in scenes} == {"MSS", "TM", "ETM+", "OLI", "OLI-2"}
    assert {s.satellite for s in scenes if s.sensor == "MSS"} & {1, 2, 3}
    assert {s.satellite for s in scenes if s.sensor == "MSS"} & {4, 5}
    assert any(s.slc_off for s in scenes)
    assert any(s.cloud_fraction > 0 and s.sensor == "MSS" for s in scenes)
    assert any(s.cloud_fraction > 0 and s.sensor != "MSS" for s in scenes)
    for s in scenes:
        assert s.folder.parent == archive.root
        assert s.folder.name == s.product_id
        assert s.acquired.tzinfo is not None and s.acquired.date() == s.date
        assert 0.0 <= s.cloud_fraction < 0.6
        assert archive.scene(s.product_id) is s
    with pytest.raises(SceneError, match="no scene 'LX99"):
        archive.scene("LX99_nothing")


# --------------------------------------------------------------------------------------
# Files: MTLs and GeoTIFFs


def test_every_mtl_parses_and_names_existing_files(archive):
    for s in archive.scenes:
        md = read_mtl(s.mtl_path)
        sensor = get_sensor(s.sensor, s.satellite)
        assert md.collection == "C2"
        assert (md.product_id, md.scene_id) == (s.product_id, s.scene_id)
        assert (md.sensor, md.satellite) == (s.sensor, s.satellite)
        assert abs((md.acquired - s.acquired).total_seconds()) < 1e-3
        assert md.sun_elevation == pytest.approx(s.sun_elevation)
        assert md.sun_azimuth == pytest.approx(s.sun_azimuth)
        assert md.earth_sun_distance == pytest.approx(s.earth_sun_distance)
        assert md.crs_epsg == DEMO_EPSG
        assert md.wrs_type == (1 if s.satellite <= 3 else 2)
        # Landsat 1-3 MSS number their bands 4-7, Landsat 4-5 MSS 1-4.
        assert tuple(md.bands) == sensor.band_labels
        if s.sensor == "MSS":
            expected = ("4", "5", "6", "7") if s.satellite <= 3 else ("1", "2", "3", "4")
            assert tuple(md.bands) == expected
        for label, band in md.bands.items():
            assert (s.folder / band.file_name).is_file()
            assert band.file_name == f"{s.product_id}_B{label}.TIF"
            assert band.reflectance_mult > 0 and band.radiance_mult > 0
            assert band.quantize_cal_min == 1
            assert band.quantize_cal_max == (65535 if s.sensor.startswith("OLI") else 255)
            # Planted clouds are kept below saturation so that UPDM can classify them.
            assert md.get(f"SATURATION_BAND_{label}") == "N"
        if s.sensor == "MSS":
            assert "QA_PIXEL" not in md.qa_files
        else:
            assert (s.folder / md.qa_files["QA_PIXEL"]).is_file()
        # The scene id lives in the processing record, the product id in both groups.
        assert md.get("LANDSAT_SCENE_ID", group="LEVEL1_PROCESSING_RECORD") == s.scene_id
        for group in ("PRODUCT_CONTENTS", "LEVEL1_PROCESSING_RECORD"):
            assert md.get("LANDSAT_PRODUCT_ID", group=group) == s.product_id
        assert "synthetic" in md.get("ORIGIN", group="PRODUCT_CONTENTS").lower()
        if not s.slc_off:  # (SLC-off scenes give cloud cover over the valid pixels)
            assert md.cloud_cover == pytest.approx(100 * s.cloud_fraction, abs=0.006)


def _real_c2_keys(shared_data):
    """Group -> key set of real Collection-2 Level-1 MTLs (band numbers replaced by n)."""
    keys: dict[str, set[str]] = {}

    def add(group, key):
        keys.setdefault(group, set()).add(re.sub(r"_BAND_\d+", "_BAND_n", key))

    odl = parse_odl(
        (shared_data / "mtl/rstoolbox/LC08_L1TP_193024_20180824_20200831_02_T1_MTL.txt").read_text()
    )
    for group, entries in odl["LANDSAT_METADATA_FILE"].items():
        for key in entries:
            add(group, key)
    for xml in sorted((shared_data / "mtl/stactools-landsat").glob("LM0*_MTL.xml")):
        for group in ET.parse(xml).getroot():
            for elem in group:
                add(group.tag, elem.tag)
    return keys


def test_mtl_structure_is_that_of_real_collection2_files(archive, shared_data):
    real = _real_c2_keys(shared_data)
    for s in archive.scenes:
        ours = parse_odl(s.mtl_path.read_text())
        assert list(ours) == ["LANDSAT_METADATA_FILE"]
        for group, entries in ours["LANDSAT_METADATA_FILE"].items():
            assert group in real, (s.product_id, group)
            for key in entries:
                assert re.sub(r"_BAND_\d+", "_BAND_n", key) in real[group], (group, key)
        groups = ours["LANDSAT_METADATA_FILE"]
        for required in (
            "PRODUCT_CONTENTS",
            "IMAGE_ATTRIBUTES",
            "PROJECTION_ATTRIBUTES",
            "LEVEL1_PROCESSING_RECORD",
            "LEVEL1_MIN_MAX_PIXEL_VALUE",
            "LEVEL1_RADIOMETRIC_RESCALING",
        ):
            assert required in groups


def test_rasters_are_georeferenced_on_the_declared_grid(archive):
    g = archive.grid
    assert g.crs == f"EPSG:{DEMO_EPSG}" and g.shape == (SIZE, SIZE) and g.resolution == 30.0
    assert g.mss_shape == (SIZE // 2, SIZE // 2)
    for s in archive.scenes:
        md = read_mtl(s.mtl_path)
        mss = s.sensor == "MSS"
        shape = g.mss_shape if mss else g.shape
        res = 60.0 if mss else 30.0
        files = [b.file_name for b in md.bands.values()] + list(md.qa_files.values())
        for name in files:
            with rasterio.open(s.folder / name) as src:
                assert src.crs.to_epsg() == DEMO_EPSG
                assert src.shape == shape
                # Same upper-left corner as the cube grid: the 60 m grid is aligned to it.
                assert tuple(src.transform)[:6] == pytest.approx(
                    (res, 0.0, g.transform[2], 0.0, -res, g.transform[5])
                )
                assert src.profile["compress"] == "deflate"
                if name.endswith("QA_PIXEL.TIF"):
                    assert src.dtypes[0] == "uint16"
                else:
                    assert src.dtypes[0] == ("uint16" if s.sensor.startswith("OLI") else "uint8")
        # MTL corners are pixel centres of the same grid.
        ul_x, ul_y = md.corners["UL"]
        lr_x, lr_y = md.corners["LR"]
        assert (ul_x, ul_y) == pytest.approx((g.transform[2] + res / 2, g.transform[5] - res / 2))
        assert (lr_x - ul_x) / res + 1 == shape[1] and (ul_y - lr_y) / res + 1 == shape[0]
        assert md.shape == shape and md.grid_cell_size == res


# --------------------------------------------------------------------------------------
# Physics: forward model vs the package's inverse


def test_archive_is_found_and_opened_by_scene_discovery(archive):
    scenes = pytest.importorskip("updm_dask.scenes")
    found = scenes.discover_scenes(archive.root)
    assert not found.problems
    assert [s.id for s in found.scenes] == [s.product_id for s in archive.scenes]
    for source in found.scenes:
        scene = archive.scene(source.id)
        ds = scenes.open_scene(source)
        labels = get_sensor(scene.sensor, scene.satellite).band_labels
        assert [str(b) for b in ds["band"].values] == list(labels)
        assert ds["dn"].shape[1:] == (
            archive.grid.mss_shape if scene.sensor == "MSS" else archive.grid.shape
        )
        assert ("qa" in ds) == (scene.sensor != "MSS")


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


def test_decomposition_recovers_planted_coefficients_within_noise(archive):
    for s in archive.scenes:
        md = read_mtl(s.mtl_path)
        sensor, dns, spectra = _converted(s, md)
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


def test_planted_classes_are_recovered_by_the_rule_tables(archive):
    for s in archive.scenes:
        md = read_mtl(s.mtl_path)
        sensor, _, spectra = _converted(s, md)
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


# --------------------------------------------------------------------------------------
# SLC-off gaps and QA


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


def test_etm_plus_has_gap_stripes_only_after_the_slc_failure(archive):
    etm = [s for s in archive.scenes if s.sensor == "ETM+"]
    assert any(s.slc_off for s in etm) and any(not s.slc_off for s in etm)
    for s in etm:
        md = read_mtl(s.mtl_path)
        zero = np.stack([_read_band(s, md, b) == 0 for b in md.bands])
        with rasterio.open(s.folder / md.qa_files["QA_PIXEL"]) as src:
            qa = src.read(1)
        if not s.slc_off:
            assert s.date <= dt.date(2003, 5, 31)
            assert not zero.any() and not np.any(qa & 1)
            continue
        assert s.date > dt.date(2003, 5, 31)
        assert (zero == zero[0]).all()  # the same gaps in every band
        gap = zero[0]
        assert 0.1 < gap.mean() < 0.45
        np.testing.assert_array_equal(qa == 1, gap)  # QA_PIXEL: fill and nothing else
        # Stripes run across the columns: every column has gaps, every row is mostly one
        # state, and gaps recur every 32 lines (960 m).
        assert gap.any(axis=0).all()
        row_state = gap.mean(axis=1)
        assert np.mean((row_state < 0.3) | (row_state > 0.7)) > 0.5
        np.testing.assert_array_equal(archive.scene_truth(s.product_id).fill, gap)


def test_cloud_qa_bits_are_exactly_the_planted_clouds(archive):
    cloudy = [s for s in archive.scenes if s.cloud_fraction > 0 and s.sensor != "MSS"]
    assert cloudy
    for s in [s for s in archive.scenes if s.sensor != "MSS"]:
        md = read_mtl(s.mtl_path)
        with rasterio.open(s.folder / md.qa_files["QA_PIXEL"]) as src:
            qa = src.read(1).astype(np.int64)
        truth = archive.scene_truth(s.product_id)
        valid = ~truth.fill
        bit = {n: (qa >> n) & 1 == 1 for n in range(16)}
        np.testing.assert_array_equal(bit[0], truth.fill)
        np.testing.assert_array_equal(bit[3], truth.cloud & valid)
        np.testing.assert_array_equal(bit[4], truth.shadow & valid)
        np.testing.assert_array_equal(bit[6], valid & ~truth.cloud)
        water = archive.truth_class(s.year) == 2
        np.testing.assert_array_equal(bit[7], water & valid & ~truth.cloud)
        conf = (qa >> 8) & 3
        np.testing.assert_array_equal(conf[valid] == 3, truth.cloud[valid])
        assert not (bit[1] | bit[2] | bit[5]).any()  # nothing planted there
        if s.cloud_fraction > 0:
            assert truth.cloud.any() and truth.shadow.any()
            assert md.cloud_cover > 0
        else:
            assert md.cloud_cover == 0


# --------------------------------------------------------------------------------------
# The story


def test_truth_tells_the_planted_story(archive):
    regions = archive.planted_regions()
    reservoir, lake, control = regions["reservoir"], regions["lake"], regions["forest_control"]
    assert reservoir.any() and lake.any() and control.any() and regions["town"].any()
    urban_area = []
    for year in range(1970, 2027):
        t = archive.truth_class(year)
        assert t.dtype == np.uint8 and t.shape == archive.grid.shape
        assert set(np.unique(t)) <= {2, 3, 4}  # no clouds, no no-data in the truth
        assert (t[lake] == 2).all()
        assert (t[control] == 3).all()
        assert (t[reservoir] == (2 if year >= RESERVOIR_FILL_YEAR else 3)).all()
        urban_area.append(int((t == 4).sum()))
    urban = np.array(urban_area)
    assert np.all(np.diff(urban) >= 0)  # the town only grows
    assert urban[2024 - 1970] > 3 * urban[1973 - 1970] > 0
    decades = [urban[y - 1970] for y in (1975, 1985, 1995, 2005, 2015)]
    assert all(b > a for a, b in itertools.pairwise(decades))
    with pytest.raises(GridError, match="year must be an integer"):
        archive.truth_class("1990")


def test_scene_truth_land_cover_matches_the_story(archive):
    for s in archive.scenes:
        truth = archive.scene_truth(s.product_id)
        story = archive.truth_class(s.year)
        if s.sensor == "MSS":
            blocks = story.reshape(SIZE // 2, 2, SIZE // 2, 2)
            uniform = (blocks == blocks[:, :1, :, :1]).all(axis=(1, 3))
            expected = np.where(uniform, blocks[:, 0, :, 0], 0)
        else:
            expected = story
        not_cloud = ~truth.cloud
        np.testing.assert_array_equal(truth.land_cover[not_cloud], expected[not_cloud])
        assert (truth.land_cover[truth.cloud] == 1).all()


# --------------------------------------------------------------------------------------
# Determinism, bad input, job spec


def test_same_seed_same_archive_other_seed_other_archive(tmp_path):
    a = make_demo_archive(tmp_path / "a", seed=3, n_scenes=3, size=MIN_SIZE)
    b = make_demo_archive(tmp_path / "b", seed=3, n_scenes=3, size=MIN_SIZE)
    c = make_demo_archive(tmp_path / "c", seed=4, n_scenes=3, size=MIN_SIZE)
    assert [s.product_id for s in a.scenes] == [s.product_id for s in b.scenes]
    for sa, sb in zip(a.scenes, b.scenes, strict=True):
        names = sorted(p.name for p in sa.folder.iterdir())
        assert names == sorted(p.name for p in sb.folder.iterdir())
        for name in names:
            assert (sa.folder / name).read_bytes() == (sb.folder / name).read_bytes(), name
    np.testing.assert_array_equal(a.truth_class(2024), b.truth_class(2024))
    differs = False
    for sa, sc in zip(a.scenes, c.scenes, strict=True):
        md_a, md_c = read_mtl(sa.mtl_path), read_mtl(sc.mtl_path)
        label = next(iter(md_a.bands))
        differs |= not np.array_equal(_read_band(sa, md_a, label), _read_band(sc, md_c, label))
    assert differs


def test_regenerating_replaces_the_previous_archive(tmp_path):
    first = make_demo_archive(tmp_path, n_scenes=4, size=MIN_SIZE)
    second = make_demo_archive(tmp_path, n_scenes=2, size=MIN_SIZE)
    assert first.root == second.root
    folders = sorted(p.name for p in second.root.iterdir() if p.is_dir())
    assert folders == sorted(s.product_id for s in second.scenes)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"size": MIN_SIZE - 2}, GridError, "size=30 is outside"),
        ({"size": 0}, GridError, "outside"),
        ({"size": 41}, GridError, "odd"),
        ({"size": 40.0}, GridError, "must be an integer"),
        ({"n_scenes": 0}, SceneError, "n_scenes=0 is outside"),
        ({"n_scenes": 10_000}, SceneError, "outside"),
        ({"seed": -1}, SceneError, "seed must be a non-negative integer"),
    ],
)
def test_bad_arguments_are_refused(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        make_demo_archive(tmp_path, **kwargs)
    assert not (tmp_path / "archive").exists()


def test_workdir_that_is_a_file_or_a_foreign_folder_is_refused(tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder")
    with pytest.raises(SceneError, match="is a file; expected a directory"):
        make_demo_archive(a_file, size=MIN_SIZE, n_scenes=1)
    foreign = tmp_path / "w" / "archive"
    foreign.mkdir(parents=True)
    (foreign / "precious.txt").write_text("keep me")
    with pytest.raises(SceneError, match="is not a demo archive"):
        make_demo_archive(tmp_path / "w", size=MIN_SIZE, n_scenes=1)
    assert (foreign / "precious.txt").read_text() == "keep me"


def test_job_spec(archive, tmp_path):
    path = archive.write_job_spec(tmp_path / "job" / "demo.toml", tmp_path / "cube.icechunk")
    spec = tomllib.loads(path.read_text())
    assert spec["job"]["name"] == "updm-demo"
    assert spec["inputs"]["paths"] == [str(archive.root)]
    assert spec["cube"]["path"] == str(tmp_path / "cube.icechunk")
    assert spec["grid"]["crs"] == f"EPSG:{DEMO_EPSG}"
    assert spec["grid"]["transform"] == [30.0, 0.0, 546000.0, 0.0, -30.0, 3843000.0]
    assert spec["grid"]["shape"] == [SIZE, SIZE]
    assert spec["science"] == {"patterns": "default", "rules": "auto"}
    assert spec["batch"] == {"size": 8}


def test_job_spec_quotes_any_path(archive, tmp_path):
    # Quotes, backslashes, brackets, commas and control characters in paths survive the
    # TOML writer, and every array stays on one line.
    odd = tmp_path / 'a "quoted", [bracketed],\n dir\\with\tcontrol'
    stand_in = SimpleNamespace(root=odd, grid=archive.grid, seed=1, scenes=())
    spec = tomllib.loads(demo_job_spec(stand_in, "s3://bucket/cube\\x"))
    assert spec["inputs"]["paths"] == [str(odd)]
    assert spec["cube"]["path"] == "s3://bucket/cube\\x"  # URLs are kept as given
    text = demo_job_spec(stand_in, "c")
    assert "shape = [48, 48]\n" in text
    assert "transform = [30.0, 0.0, 546000.0, 0.0, -30.0, 3843000.0]\n" in text


def test_job_spec_is_accepted_by_the_job_parser(archive, tmp_path):
    jobspec = pytest.importorskip("updm_dask.jobs.spec")
    path = archive.write_job_spec(tmp_path / "demo.toml", tmp_path / "cube.icechunk")
    spec = jobspec.load_job_spec(path)
    assert spec.cube.endswith("cube.icechunk")
    assert spec.batch_size == 8


# --------------------------------------------------------------------------------------
# Sun geometry against real metadata


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


# --------------------------------------------------------------------------------------
# Recovery report


def test_recovery_report_hand_worked():
    truth = {2000: np.array([[2, 3], [3, 4]], dtype=np.uint8)}
    found = {2000: np.array([[2, 3], [1, 3]], dtype=np.uint8)}
    (row,) = recovery_report(found, truth)
    assert row.year == 2000
    # 3 classified pixels: water 1, vegetation 2; planted over all 4 pixels: 1, 2, 1.
    assert row.found == pytest.approx({"water": 100 / 3, "vegetation": 200 / 3, "urban": 0.0})
    assert row.planted == pytest.approx({"water": 25.0, "vegetation": 50.0, "urban": 25.0})
    assert row.unclassified_pct == pytest.approx(25.0)
    assert row.agreement_pct == pytest.approx(200 / 3)  # the urban pixel was called vegetation
    text = format_recovery([row])
    assert "2000" in text and "66.7" in text and "33.3" in text and "agreement" in text


def test_recovery_report_against_an_archive_and_edge_cases(archive):
    years = [1980, 2020]
    perfect = {y: archive.truth_class(y) for y in years}
    rows = recovery_report(perfect, archive)
    assert [r.year for r in rows] == years
    assert all(r.agreement_pct == 100.0 and r.unclassified_pct == 0.0 for r in rows)
    assert all(r.found == pytest.approx(r.planted) for r in rows)
    clouded = {1990: np.ones(archive.grid.shape, dtype=np.uint8)}
    (row,) = recovery_report(clouded, archive.truth_class)
    assert math.isnan(row.agreement_pct) and row.unclassified_pct == 100.0
    assert "    -" in format_recovery([row])
    with pytest.raises(GridError, match="shape"):
        recovery_report({2000: np.zeros((3, 3), dtype=np.uint8)}, archive)
    with pytest.raises(GridError, match="no layer for year 1999"):
        recovery_report({1999: perfect[1980]}, {1980: perfect[1980]})
    with pytest.raises(GridError, match="truth must be"):
        recovery_report(perfect, 42)
