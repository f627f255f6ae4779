"""The files: MTLs shaped like real Collection 2 ones, georeferenced rasters, QA_PIXEL bits,
the job spec."""

from __future__ import annotations

import re
import tomllib
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import numpy as np
import pytest
import rasterio

from updm_dask.demo import DEMO_EPSG, demo_job_spec
from updm_dask.metadata import parse_odl, read_mtl
from updm_dask.science.sensors import get_sensor


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


def test_rasters_are_georeferenced_on_the_declared_grid(archive, archive_args):
    size = archive_args["size"]
    g = archive.grid
    assert g.crs == f"EPSG:{DEMO_EPSG}" and g.shape == (size, size) and g.resolution == 30.0
    assert g.mss_shape == (size // 2, size // 2)
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


def test_job_spec(archive, archive_args, tmp_path):
    path = archive.write_job_spec(tmp_path / "job" / "demo.toml", tmp_path / "cube.icechunk")
    spec = tomllib.loads(path.read_text())
    assert spec["job"]["name"] == "updm-demo"
    assert spec["inputs"]["paths"] == [str(archive.root)]
    assert spec["cube"]["path"] == str(tmp_path / "cube.icechunk")
    assert spec["grid"]["crs"] == f"EPSG:{DEMO_EPSG}"
    assert spec["grid"]["transform"] == [30.0, 0.0, 546000.0, 0.0, -30.0, 3843000.0]
    assert spec["grid"]["shape"] == [archive_args["size"]] * 2
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
