"""Tests of updm_dask.metadata against every real metadata file in the shared data.

Expected values are copied from the files' own text (quoted next to each assertion's
subject), never computed by the code under test. The bad-path tests write broken files to
``tmp_path``: truncated copies of real files, garbage, missing fields, bad numbers, DTDs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import pickle
import random
import re
import tarfile
from pathlib import Path

import pytest

from updm_dask.errors import MetadataError
from updm_dask.metadata import BandMetadata, SceneMetadata, read_mtl, read_mtl_text
from updm_dask.metadata import read as metadata_read
from updm_dask.science.sensors import get_sensor

try:  # the data folder as conftest found it, to parametrize one test per file
    from conftest import SHARED_DATA
except ImportError:  # pragma: no cover - other import modes: fall back to one looping test
    SHARED_DATA = None

_METADATA_NAME = re.compile(r"(_MTL\.(txt|json|xml)|\.xml)$", re.IGNORECASE)
_MEMBER_SEP = "!"
_ALL = "<all metadata files>"

# Every metadata file in the shared data at the time of writing: 25 under mtl/, 7 beside
# scenes under landsat/, 2 under peer/, 5 inside the xlandsat archives.
_KNOWN_COUNT = 39


def _is_metadata(name: str) -> bool:
    # GDAL's .aux.xml side-cars (one sits in the yatsm archive) are not scene metadata.
    return bool(_METADATA_NAME.search(name)) and not name.lower().endswith(".aux.xml")


def _discover(root: Path) -> list[str]:
    """Relative ids of every metadata file, ``archive!member`` for archive members."""
    found = [
        p.relative_to(root).as_posix()
        for p in sorted(root.rglob("*"))
        if p.is_file() and _is_metadata(p.name)
    ]
    for archive in sorted(root.rglob("*.tar.gz")):
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if member.isfile() and _is_metadata(member.name):
                    found.append(
                        f"{archive.relative_to(root).as_posix()}{_MEMBER_SEP}{member.name}"
                    )
    return found


def _raw(root: Path, rel: str) -> bytes:
    if _MEMBER_SEP in rel:
        archive, member = rel.split(_MEMBER_SEP, 1)
        with tarfile.open(root / archive) as tar:
            return tar.extractfile(member).read()
    return (root / rel).read_bytes()


def _read(root: Path, rel: str) -> SceneMetadata:
    if _MEMBER_SEP in rel:
        archive, member = rel.split(_MEMBER_SEP, 1)
        with tarfile.open(root / archive) as tar:
            return read_mtl(tar.extractfile(member), name=rel)
    return read_mtl(root / rel)


def _xlandsat(root: Path, product: str) -> SceneMetadata:
    return _read(root, f"landsat/xlandsat/{product}-cropped.tar.gz!{product}_MTL.txt")


_PARAMS = _discover(SHARED_DATA) if SHARED_DATA is not None else [_ALL]


# ======================================================================================
# Every real file parses, and agrees with values pulled from its text independently.
def test_discovery_finds_every_metadata_file(shared_data):
    found = _discover(shared_data)
    assert len(found) >= _KNOWN_COUNT
    assert sum(_MEMBER_SEP in rel for rel in found) == 5
    assert any(rel.endswith(".TXT") for rel in found)
    assert any(rel.endswith(".json") for rel in found)


@pytest.mark.parametrize("rel", _PARAMS)
def test_every_real_metadata_file_parses(shared_data, rel):
    targets = _discover(shared_data) if rel == _ALL else [rel]
    for target in targets:
        meta = _read(shared_data, target)
        raw = _raw(shared_data, target)
        text = raw.split(b"\0", 1)[0].decode("ascii")

        # Sun elevation: as written, or 90 - zenith for ESPA files.
        written = re.search(r'SUN_ELEVATION[\s"=:>]+(-?\d+\.\d+)', text)
        if written:
            assert meta.sun_elevation == float(written.group(1))
        else:
            zenith = float(re.search(r'zenith="(-?\d+\.\d+)"', text).group(1))
            assert meta.format == "espa-xml"
            assert meta.sun_elevation == pytest.approx(90.0 - zenith, abs=1e-12)

        assert f"LANDSAT_{meta.satellite}" in text
        assert meta.platform == f"LANDSAT_{meta.satellite}"
        assert meta.acquired.utcoffset() == dt.timedelta(0)
        assert meta.acquired.date().isoformat() in text
        assert meta.scene_id in text
        assert isinstance(meta.wrs_path, int) and isinstance(meta.wrs_row, int)
        assert meta.wrs_type == (1 if meta.satellite <= 3 else 2)
        assert 32601 <= meta.crs_epsg <= 32660
        # The sensor's UPDM bands are all described, and named as the file names them.
        assert set(get_sensor(meta.sensor, meta.satellite).band_labels) <= set(meta.bands)
        assert meta.present_bands and set(meta.present_bands) <= set(meta.bands)
        for band in meta.bands.values():
            for name in (band.file_name, band.sr_file_name):
                assert name is None or name in text
        assert meta.id in text


# ======================================================================================
# Specific values, copied from the files.
def test_pre_collection_nul_padded_tm(shared_data):
    path = (
        shared_data / "landsat/ethiopia-167055/LT51670552010352MLK00/LT51670552010352MLK00_MTL.txt"
    )
    raw = path.read_bytes()
    assert len(raw) == 65535 and raw.index(b"\0") == 5360  # the quirk is really there
    meta = read_mtl(path)
    assert meta.path == str(path)
    assert meta.format == "odl"
    assert meta.collection == "pre-collection"
    assert meta.processing_level == "L1T"
    assert meta.scene_id == "LT51670552010352MLK00"
    assert meta.product_id is None and meta.id == "LT51670552010352MLK00"
    assert (meta.sensor, meta.satellite, meta.platform) == ("TM", 5, "LANDSAT_5")
    # DATE_ACQUIRED = 2010-12-18, SCENE_CENTER_TIME = 07:24:28.5030130Z
    assert meta.acquired == dt.datetime(2010, 12, 18, 7, 24, 28, 503013, tzinfo=dt.UTC)
    assert meta.sun_elevation == 49.25236265
    assert meta.sun_azimuth == 139.48290834
    assert meta.earth_sun_distance is None  # not in this file
    assert (meta.wrs_path, meta.wrs_row) == (167, 55)  # WRS_ROW = 055
    assert meta.crs_epsg == 32637  # UTM_ZONE = 37
    assert meta.shape == (6931, 7861)
    assert meta.corners["UL"] == (544500.0, 902400.0)
    assert meta.corners_latlon["LR"] == (6.27698, 41.53327)
    assert tuple(meta.bands) == ("1", "2", "3", "4", "5", "6", "7")
    b1 = meta.band(1)
    assert b1.file_name == "LT51670552010352MLK00_B1.TIF"
    assert (b1.radiance_mult, b1.radiance_add) == (0.766, -2.28583)
    assert (b1.radiance_max, b1.radiance_min) == (193.0, -1.52)
    assert (b1.quantize_cal_max, b1.quantize_cal_min) == (255.0, 1.0)
    # Quirk 2: no REFLECTANCE_* in pre-collection files.
    assert b1.reflectance_mult is None and b1.reflectance_add is None
    assert meta.qa_files == {}
    assert not meta.is_level2


def test_mss_band_numbering_follows_the_satellite(shared_data):
    l3 = read_mtl(shared_data / "mtl/rstoolbox/mss_MTL.txt")
    l5 = read_mtl(shared_data / "mtl/rstoolbox/LM50490251987214PAC00_MTL.txt")
    l1 = read_mtl(
        shared_data / "mtl/stactools-landsat/LM01_L1GS_001010_19720908_20200909_02_T2_MTL.xml"
    )
    l4 = read_mtl(
        shared_data / "mtl/stactools-landsat/LM04_L1GS_001001_19830527_20210902_02_T2_MTL.xml"
    )
    assert (l3.sensor, l3.satellite, tuple(l3.bands)) == ("MSS", 3, ("4", "5", "6", "7"))
    assert (l1.sensor, l1.satellite, tuple(l1.bands)) == ("MSS", 1, ("4", "5", "6", "7"))
    assert (l5.sensor, l5.satellite, tuple(l5.bands)) == ("MSS", 5, ("1", "2", "3", "4"))
    assert (l4.sensor, l4.satellite, tuple(l4.bands)) == ("MSS", 4, ("1", "2", "3", "4"))
    # WRS-1 for Landsat 1-3 even when the (pre-collection) file does not say WRS_TYPE.
    assert (l3.wrs_type, l1.wrs_type, l5.wrs_type) == (1, 1, 2)
    assert l3.band(4).reflectance_mult == 1.5907e-3  # REFLECTANCE_MULT_BAND_4 = 1.5907E-03
    assert l3.band("7").gain == "L"
    assert l3.earth_sun_distance == 1.0143493
    assert l5.band(4).file_name == "LM50490251987214PAC00_B4.TIF"
    assert l5.band(4).radiance_max == 117.5
    assert l5.band(4).reflectance_mult is None  # quirk 2
    assert l5.grid_cell_size == 60.0


def test_landsat1_band4_not_present(shared_data):
    meta = read_mtl(
        shared_data / "mtl/stactools-landsat/LM01_L1GS_007019_19771009_20200907_02_T2_MTL.xml"
    )
    b4 = meta.band("4")
    assert b4.present is False
    assert b4.file_name == "LM01_L1GS_007019_19771009_20200907_02_T2_B4.TIF"  # still listed
    assert b4.radiance_mult is None and b4.reflectance_mult is None
    assert b4.quantize_cal_max is None and b4.gain == "U"
    assert meta.present_bands == ("5", "6", "7")
    assert meta.band(5).present is True


def test_sertit_mss_band4_missing_and_calibration(shared_data):
    meta = read_mtl(shared_data / "mtl/sertit/LM05_L1TP_200030_20121230_20200820_02_T2_MTL.xml")
    assert meta.format == "xml" and meta.collection == "C2"
    assert meta.processing_level == "L1TP"
    assert meta.product_id == "LM05_L1TP_200030_20121230_20200820_02_T2"
    assert meta.level1_product_id == meta.product_id
    assert meta.scene_id == "LM52000302012365NSG01"
    assert (meta.sensor, meta.satellite) == ("MSS", 5)
    assert meta.present_bands == ("1", "2", "3")
    assert meta.band(4).present is False
    assert meta.band(4).file_name == "LM05_L1TP_200030_20121230_20200820_02_T2_B4.TIF"
    assert [meta.band(b).radiance_mult for b in "123"] == [0.88504, 0.66024, 0.55866]
    assert [meta.band(b).reflectance_mult for b in "123"] == [1.5207e-3, 1.3126e-3, 1.3831e-3]
    assert meta.band(1).radiance_add == 1.51496
    assert meta.band(4).radiance_mult is None
    assert meta.sun_elevation == 19.53536320
    assert meta.earth_sun_distance == 0.9833367
    assert (meta.wrs_path, meta.wrs_row, meta.wrs_type) == (200, 30, 2)
    assert meta.crs_epsg == 32630
    assert meta.qa_files == {
        "QA_PIXEL": "LM05_L1TP_200030_20121230_20200820_02_T2_QA_PIXEL.TIF",
        "QA_RADSAT": "LM05_L1TP_200030_20121230_20200820_02_T2_QA_RADSAT.TIF",
    }
    assert meta.cloud_cover == 2.0


def test_negative_sun_elevation_is_kept(shared_data):
    meta = read_mtl(
        shared_data / "mtl/stactools-landsat/LM01_L1GS_005037_19720823_20200909_02_T2_MTL.xml"
    )
    assert meta.sun_elevation == -30.74709801
    assert meta.sun_elevation == pytest.approx(-30.75, abs=0.005)
    assert meta.sun_azimuth == -48.44635224
    assert meta.acquired == dt.datetime(1972, 8, 23, 1, 30, 57, 500000, tzinfo=dt.UTC)
    assert meta.cloud_cover is None  # CLOUD_COVER = -1: not computed


def test_level2_surface_reflectance_never_confused_with_toa(shared_data):
    meta = _xlandsat(shared_data, "LC08_L2SP_017051_20151205_20200908_02_T1")
    assert meta.is_level2 and meta.processing_level == "L2SP"
    assert meta.product_id == "LC08_L2SP_017051_20151205_20200908_02_T1"
    assert meta.level1_product_id == "LC08_L1TP_017051_20151205_20200908_02_T1"
    assert meta.scene_id == "LC80170512015339LGN01"
    for label in "1234567":
        band = meta.band(label)
        assert band.sr_mult == 2.75e-05 and band.sr_add == -0.2
        assert band.reflectance_mult == 2.0e-05 and band.reflectance_add == -0.1
        # LEVEL1_MIN_MAX_REFLECTANCE 1.210700, not the Level-2 maximum 1.602213
        assert band.reflectance_max == 1.2107
        assert band.sr_file_name == f"LC08_L2SP_017051_20151205_20200908_02_T1_SR_B{label}.TIF"
        assert band.file_name == f"LC08_L1TP_017051_20151205_20200908_02_T1_B{label}.TIF"
    assert meta.band(4).radiance_mult == 1.0287e-02
    assert meta.band(8).sr_mult is None and meta.band(8).sr_file_name is None
    assert meta.qa_files["QA_PIXEL"] == "LC08_L2SP_017051_20151205_20200908_02_T1_QA_PIXEL.TIF"
    assert meta.qa_files["SR_QA_AEROSOL"].endswith("_SR_QA_AEROSOL.TIF")
    assert meta.qa_files["ST_QA"].endswith("_ST_QA.TIF")
    # A group-less lookup of the repeated key refuses to guess and names both groups.
    with pytest.raises(MetadataError, match="LEVEL1_RADIOMETRIC_RESCALING") as info:
        meta.get("REFLECTANCE_MULT_BAND_4")
    assert "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS" in str(info.value)
    assert meta.get("REFLECTANCE_MULT_BAND_4", group="LEVEL2_SURFACE_REFLECTANCE_PARAMETERS") == (
        2.75e-05
    )
    assert meta.get("REFLECTANCE_MULT_BAND_4", group="LEVEL1_RADIOMETRIC_RESCALING") == 2.0e-05

    # Its Level-1 twin (same scene, DN product) carries the same TOA rescaling, no SR.
    l1 = _xlandsat(shared_data, "LC08_L1TP_017051_20151205_20200908_02_T1")
    assert not l1.is_level2 and l1.scene_id == meta.scene_id
    assert l1.band(4).reflectance_mult == 2.0e-05 and l1.band(4).sr_mult is None
    assert l1.band(4).file_name == "LC08_L1TP_017051_20151205_20200908_02_T1_B4.TIF"


def test_landsat9_and_stray_tab(shared_data):
    l9 = _xlandsat(shared_data, "LC09_L2SP_231062_20230723_20230802_02_T1")
    assert (l9.sensor, l9.satellite) == ("OLI-2", 9)
    assert l9.sun_elevation == 53.39399568
    assert l9.crs_epsg == 32620
    assert l9.corners["UL"] == (832500.0, -341010.0)  # negative northing, northern zone
    # "REFLECTIVE_LINES = 300<TAB>" in this file
    brumadinho = _xlandsat(shared_data, "LC08_L2SP_218074_20190114_20200829_02_T1")
    assert brumadinho.shape == (300, 400)
    assert brumadinho.get("REFLECTIVE_LINES", group="PROJECTION_ATTRIBUTES") == 300


def test_espa_zenith_becomes_elevation(shared_data):
    espa = read_mtl(shared_data / "mtl/rstoolbox/LE07_L1TP_160031_20110416_20161210_01_T1.xml")
    mtl = read_mtl(shared_data / "mtl/rstoolbox/LE07_L1TP_160031_20110416_20161210_01_T1_MTL.TXT")
    assert espa.format == "espa-xml" and mtl.format == "odl"
    # zenith="36.770893" -> 53.229107; the MTL twin says SUN_ELEVATION = 53.22910777
    assert espa.sun_elevation == pytest.approx(53.229107, abs=1e-9)
    assert espa.sun_elevation == pytest.approx(mtl.sun_elevation, abs=1e-6)
    assert espa.sun_azimuth == 143.607834
    assert espa.earth_sun_distance == mtl.earth_sun_distance == 1.003429
    for name in ("sensor", "satellite", "acquired", "wrs_path", "wrs_row", "crs_epsg", "shape"):
        assert getattr(espa, name) == getattr(mtl, name), name
    assert (espa.wrs_path, espa.wrs_row) == (160, 31)  # MTL: WRS_ROW = 031
    assert espa.collection == "C1" and espa.product_id == mtl.product_id
    assert espa.band(3).sr_mult == 0.0001 and espa.band(3).sr_add == 0.0
    assert espa.band(3).sr_file_name == "LE07_L1TP_160031_20110416_20161210_01_T1_sr_band3.tif"
    assert espa.is_level2 and "6" not in espa.bands
    assert espa.qa_files["pixel_qa"] == "LE07_L1TP_160031_20110416_20161210_01_T1_pixel_qa.tif"
    assert espa.corners["UL"] == mtl.corners["UL"] == (629100.0, 4733400.0)
    assert espa.get("zenith", group="solar_angles") == 36.770893
    assert espa.get("file_name", group="sr_band1").endswith("_sr_band1.tif")

    old = read_mtl(shared_data / "mtl/rstoolbox/LC80980762015235LGN00.xml")
    assert old.scene_id == "LC80980762015235LGN00" and old.product_id is None
    assert old.collection is None and old.processing_level is None
    assert old.sun_elevation == pytest.approx(90.0 - 46.230179, abs=1e-9)
    assert old.crs_epsg == 32654 and old.corners["UL"] == (328800.0, -2439900.0)
    assert old.band(7).sr_add == 0.0  # no add_offset attribute: the schema's default
    assert old.shape == (7771, 7651)


@pytest.mark.parametrize("scene", ["LC80100202015018LGN00", "LC81060712016134LGN00"])
def test_rio_toa_json_equals_its_txt_twin(shared_data, scene):
    from_json = read_mtl(shared_data / f"mtl/rio-toa/{scene}_MTL.json")
    from_txt = read_mtl(shared_data / f"mtl/rio-toa/{scene}_MTL.txt")
    assert (from_json.format, from_txt.format) == ("json", "odl")
    for f in dataclasses.fields(SceneMetadata):
        if f.name not in ("path", "format"):
            assert getattr(from_json, f.name) == getattr(from_txt, f.name), f.name
    assert len(from_json.bands) == 11


def test_crlf_copy_equals_lf_copy(shared_data):
    crlf = shared_data / "mtl/rstoolbox/LC08_L1TP_195025_20130707_20170503_01_T1_MTL.txt"
    lf = (
        shared_data / "landsat/marburg-195025/LC08_L1TP_195025_20130707_20170503_01_T1"
        "/LC08_L1TP_195025_20130707_20170503_01_T1_MTL.txt"
    )
    assert b"\r\n" in crlf.read_bytes() and b"\r" not in lf.read_bytes()
    a, b = read_mtl(crlf), read_mtl(lf)
    assert dataclasses.replace(a, path=b.path) == b
    assert a.sun_elevation == 58.9967518
    assert a.earth_sun_distance == 1.0166988
    assert (a.wrs_path, a.wrs_row) == (195, 25)


def test_etm_thermal_labels_gains_and_collection2_rows(shared_data):
    meta = read_mtl(
        shared_data / "landsat/ethiopia-167055/LE07_L1TP_167055_20170316_20170411_01_T1"
        "/LE07_L1TP_167055_20170316_20170411_01_T1_MTL.txt"
    )
    assert tuple(meta.bands) == ("1", "2", "3", "4", "5", "6_VCID_1", "6_VCID_2", "7", "8")
    assert meta.band("6_VCID_2").gain == "H" and meta.band("6_VCID_1").gain == "L"
    assert meta.band("6_VCID_2").radiance_mult == 3.7205e-02
    assert meta.band("6_VCID_1").reflectance_mult is None  # thermal: no REFLECTANCE_*
    assert meta.band(1).reflectance_mult == 1.8028e-03
    assert meta.earth_sun_distance == 0.9947671
    assert meta.scene_id == "LE71670552017075SG100"
    assert meta.qa_files == {"BQA": "LE07_L1TP_167055_20170316_20170411_01_T1_BQA.TIF"}
    c2 = read_mtl(shared_data / "mtl/rstoolbox/LC08_L1TP_193024_20180824_20200831_02_T1_MTL.txt")
    assert c2.collection == "C2" and c2.format == "odl"
    assert (c2.wrs_path, c2.wrs_row) == (193, 24)  # WRS_ROW = 24, unpadded
    assert c2.acquired == dt.datetime(2018, 8, 24, 10, 2, 27, 463380, tzinfo=dt.UTC)


def test_archive_member_three_ways(shared_data):
    product = "LC08_L2SP_218074_20190130_20200829_02_T1"
    archive = shared_data / f"landsat/xlandsat/{product}-cropped.tar.gz"
    with tarfile.open(archive) as tar:
        raw = tar.extractfile(f"{product}_MTL.txt").read()
        via_object = read_mtl(tar.extractfile(f"{product}_MTL.txt"), name="member")
    via_text = read_mtl_text(raw.decode("ascii"), "member")
    via_bytes = read_mtl_text(raw, "member")
    via_text_object = read_mtl(io.StringIO(raw.decode("ascii")), name="member")
    assert via_object == via_text == via_bytes == via_text_object
    assert via_object.path == "member"
    assert via_object.corners["UL"] == (584400.0, -2222700.0)


def test_records_are_immutable_picklable_and_hashable(shared_data):
    meta = _xlandsat(shared_data, "LC08_L2SP_017051_20151205_20200908_02_T1")
    clone = pickle.loads(pickle.dumps(meta))
    assert clone == meta and hash(clone) == hash(meta)
    with pytest.raises(dataclasses.FrozenInstanceError):
        meta.sun_elevation = 0.0
    with pytest.raises(TypeError):
        meta.bands["4"] = meta.bands["5"]
    with pytest.raises(TypeError):
        meta.groups["LANDSAT_METADATA_FILE"]["IMAGE_ATTRIBUTES"]["SUN_ELEVATION"] = 0
    assert isinstance(meta.band("4"), BandMetadata)
    assert meta.sensor_spec.band_labels == ("2", "3", "4", "5", "6", "7")


def test_get_and_band_lookups(shared_data):
    meta = read_mtl(shared_data / "mtl/rstoolbox/mss_MTL.txt")
    assert meta.get("SUN_ELEVATION") == 50.134069
    assert meta.get("WRS_PATH", group="PRODUCT_METADATA") == 52  # WRS_PATH = 052
    assert meta.get("WRS_PATH", group="L1_METADATA_FILE/PRODUCT_METADATA") == 52
    assert meta.get("SCENE_CENTER_TIME") == "18:31:40.0450090Z"
    assert meta.get("NO_SUCH_KEY", default=None) is None
    with pytest.raises(MetadataError, match=r"mss_MTL\.txt: no NO_SUCH_KEY"):
        meta.get("NO_SUCH_KEY")
    with pytest.raises(MetadataError, match="no SUN_ELEVATION in group PRODUCT_METADATA"):
        meta.get("SUN_ELEVATION", group="PRODUCT_METADATA")
    with pytest.raises(MetadataError, match=r"mss_MTL.txt: no band '1'.*4, 5, 6, 7"):
        meta.band(1)


# ======================================================================================
# Old (pre-2012) field names, on a small hand-written file in that layout.
_OLD_STYLE = """GROUP = L1_METADATA_FILE
  GROUP = METADATA_FILE_INFO
    ORIGIN = "Image courtesy of the U.S. Geological Survey"
    PRODUCT_CREATION_TIME = 2009-02-11T04:07:33Z
  END_GROUP = METADATA_FILE_INFO
  GROUP = PRODUCT_METADATA
    PRODUCT_TYPE = "L1T"
    SPACECRAFT_ID = "Landsat7"
    SENSOR_ID = "ETM+"
    ACQUISITION_DATE = 2002-06-14
    SCENE_CENTER_SCAN_TIME = 17:45:01.2500000Z
    WRS_PATH = 34
    STARTING_ROW = 32
    ENDING_ROW = 32
    PRODUCT_UL_CORNER_MAPX = 399000.000
    PRODUCT_UL_CORNER_MAPY = 4500000.000
    PRODUCT_UR_CORNER_MAPX = 627000.000
    PRODUCT_UR_CORNER_MAPY = 4500000.000
    PRODUCT_LL_CORNER_MAPX = 399000.000
    PRODUCT_LL_CORNER_MAPY = 4300500.000
    PRODUCT_LR_CORNER_MAPX = 627000.000
    PRODUCT_LR_CORNER_MAPY = 4300500.000
    PRODUCT_SAMPLES_REF = 8001
    PRODUCT_LINES_REF = 7001
    BAND1_FILE_NAME = "L71034032_03220020614_B10.TIF"
    BAND61_FILE_NAME = "L71034032_03220020614_B61.TIF"
    BAND62_FILE_NAME = "L72034032_03220020614_B62.TIF"
    METADATA_L1_FILE_NAME = "L71034032_03220020614_MTL.txt"
  END_GROUP = PRODUCT_METADATA
  GROUP = MIN_MAX_RADIANCE
    LMAX_BAND1 = 191.600
    LMIN_BAND1 = -6.200
    LMAX_BAND61 = 17.040
    LMIN_BAND61 = 0.000
  END_GROUP = MIN_MAX_RADIANCE
  GROUP = MIN_MAX_PIXEL_VALUE
    QCALMAX_BAND1 = 255.0
    QCALMIN_BAND1 = 1.0
  END_GROUP = MIN_MAX_PIXEL_VALUE
  GROUP = PRODUCT_PARAMETERS
    BAND1_GAIN = "H"
    BAND6_GAIN1 = "L"
    BAND6_GAIN2 = "H"
    SUN_AZIMUTH = 128.1234567
    SUN_ELEVATION = 64.7654321
  END_GROUP = PRODUCT_PARAMETERS
  GROUP = PROJECTION_PARAMETERS
    REFERENCE_DATUM = "WGS84"
    GRID_CELL_SIZE_REF = 28.500
    MAP_PROJECTION = "UTM"
  END_GROUP = PROJECTION_PARAMETERS
  GROUP = UTM_PARAMETERS
    ZONE_NUMBER = 13
  END_GROUP = UTM_PARAMETERS
END_GROUP = L1_METADATA_FILE
END
"""


def test_old_style_field_names_are_mapped():
    meta = read_mtl_text(_OLD_STYLE, "old_MTL.txt")
    assert (meta.sensor, meta.satellite, meta.platform) == ("ETM+", 7, "LANDSAT_7")
    assert meta.collection == "pre-collection" and meta.processing_level == "L1T"
    assert meta.acquired == dt.datetime(2002, 6, 14, 17, 45, 1, 250000, tzinfo=dt.UTC)
    assert (meta.wrs_path, meta.wrs_row, meta.wrs_type) == (34, 32, 2)
    assert meta.scene_id == "L71034032_03220020614" and meta.product_id is None
    assert (meta.sun_elevation, meta.sun_azimuth) == (64.7654321, 128.1234567)
    assert meta.crs_epsg == 32613
    assert meta.grid_cell_size == 28.5
    assert meta.shape == (7001, 8001)
    assert meta.corners["LR"] == (627000.0, 4300500.0)
    assert tuple(meta.bands) == ("1", "6_VCID_1", "6_VCID_2")
    b1 = meta.band(1)
    assert (b1.radiance_max, b1.radiance_min) == (191.6, -6.2)
    assert (b1.quantize_cal_max, b1.quantize_cal_min) == (255.0, 1.0)
    assert (b1.gain, b1.file_name) == ("H", "L71034032_03220020614_B10.TIF")
    assert meta.band("6_VCID_1").radiance_max == 17.04
    assert meta.band("6_VCID_1").gain == "L"
    assert meta.band("6_VCID_2").gain == "H"
    assert meta.band("6_VCID_2").file_name == "L72034032_03220020614_B62.TIF"


# ======================================================================================
# Bad input: every case raises MetadataError naming the file and the problem.
_SYNTHETIC = """GROUP = L1_METADATA_FILE
  GROUP = METADATA_FILE_INFO
    LANDSAT_SCENE_ID = "LT50010012001001XXX00"
  END_GROUP = METADATA_FILE_INFO
  GROUP = PRODUCT_METADATA
    DATA_TYPE = "L1TP"
    SPACECRAFT_ID = "LANDSAT_5"
    SENSOR_ID = "TM"
    WRS_PATH = 001
    WRS_ROW = 002
    DATE_ACQUIRED = 2001-01-01
    SCENE_CENTER_TIME = "10:00:00.0000000Z"
    FILE_NAME_BAND_1 = "B1.TIF"
    FILE_NAME_BAND_2 = "B2.TIF"
    PRESENT_BAND_1 = "Y"
  END_GROUP = PRODUCT_METADATA
  GROUP = IMAGE_ATTRIBUTES
    SUN_AZIMUTH = 120.5
    SUN_ELEVATION = 45.25
    EARTH_SUN_DISTANCE = 0.9833
  END_GROUP = IMAGE_ATTRIBUTES
  GROUP = RADIOMETRIC_RESCALING
    RADIANCE_MULT_BAND_1 = 0.766
    RADIANCE_ADD_BAND_1 = -2.28583
    RADIANCE_MULT_BAND_2 = NULL
    RADIANCE_ADD_BAND_2 = NULL
  END_GROUP = RADIOMETRIC_RESCALING
END_GROUP = L1_METADATA_FILE
END
"""


def _write(tmp_path: Path, content: str | bytes, name: str = "broken_MTL.txt") -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


def _replace_line(text: str, key: str, new: str | None) -> str:
    lines = text.splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if line.strip().startswith(key + " "))
    lines[index] = "" if new is None else "    " + new + "\n"
    return "".join(lines)


def test_synthetic_control_parses(tmp_path):
    # The base of the mutation tests below is itself valid, so each failure is its edit's.
    meta = read_mtl(_write(tmp_path, _SYNTHETIC))
    assert (meta.sensor, meta.satellite, meta.sun_elevation) == ("TM", 5, 45.25)
    assert (meta.wrs_path, meta.wrs_row) == (1, 2)
    assert meta.band(1).present is True
    # No PRESENT flag, every calibration value NULL: the band is missing.
    assert meta.band(2).present is False and meta.band(2).radiance_mult is None
    assert meta.get("RADIANCE_MULT_BAND_2") is None
    assert meta.present_bands == ("1",)
    # Stray tabs and CRLF change nothing.
    crlf = _SYNTHETIC.replace("SUN_ELEVATION = 45.25", "SUN_ELEVATION = 45.25\t\t")
    assert read_mtl_text(crlf.replace("\n", "\r\n")).sun_elevation == 45.25


@pytest.mark.parametrize("field", ["SPACECRAFT_ID", "SENSOR_ID", "DATE_ACQUIRED", "SUN_ELEVATION"])
def test_missing_required_field(tmp_path, field):
    path = _write(tmp_path, _replace_line(_SYNTHETIC, field, None))
    with pytest.raises(MetadataError, match=rf"broken_MTL\.txt: required field {field} is missing"):
        read_mtl(path)


def test_null_required_field(tmp_path):
    path = _write(tmp_path, _replace_line(_SYNTHETIC, "SUN_ELEVATION", "SUN_ELEVATION = NULL"))
    with pytest.raises(MetadataError, match="required field SUN_ELEVATION is NULL"):
        read_mtl(path)


@pytest.mark.parametrize(
    ("key", "line", "pattern"),
    [
        ("SUN_ELEVATION", "SUN_ELEVATION = 49.2x", r"SUN_ELEVATION is not a number \(expected"),
        ("SUN_AZIMUTH", 'SUN_AZIMUTH = "east"', r"SUN_AZIMUTH is not a number .*got text"),
        ("EARTH_SUN_DISTANCE", "EARTH_SUN_DISTANCE = NaN", r"EARTH_SUN_DISTANCE is not a number"),
        (
            "RADIANCE_MULT_BAND_1",
            "RADIANCE_MULT_BAND_1 = 1.2.3",
            r"RADIANCE_MULT_BAND_1 is not a number \(expected a finite decimal number",
        ),
        ("WRS_PATH", "WRS_PATH = 16a", r"WRS_PATH is not an integer \(expected whole digits"),
        ("WRS_ROW", "WRS_ROW = 2.5", r"WRS_ROW is not an integer .*got a number with a fraction"),
        (
            "DATE_ACQUIRED",
            "DATE_ACQUIRED = 2001-13-45",
            r"DATE_ACQUIRED is not a date \(expected YYYY-MM-DD",
        ),
        (
            "SCENE_CENTER_TIME",
            'SCENE_CENTER_TIME = "25:99:00Z"',
            r"SCENE_CENTER_TIME is not a time of day \(expected HH:MM:SS",
        ),
        ("SUN_ELEVATION", "SUN_ELEVATION = 123.0", r"SUN_ELEVATION is outside -90\.\.90 degrees"),
        (
            "PRESENT_BAND_1",
            'PRESENT_BAND_1 = "maybe"',
            r"PRESENT_BAND_1 is not a presence flag \(expected Y, N or M\)",
        ),
        ("SENSOR_ID", 'SENSOR_ID = "HRV"', r"SENSOR_ID is not a known Landsat sensor \(expected"),
        ("SENSOR_ID", 'SENSOR_ID = "OLI_TIRS"', r"SENSOR_ID \(OLI\) does not fit LANDSAT_5"),
        ("SPACECRAFT_ID", 'SPACECRAFT_ID = "LANDSAT_6"', r"SPACECRAFT_ID is not a Landsat"),
        ("SPACECRAFT_ID", 'SPACECRAFT_ID = "SPOT_5"', r"SPACECRAFT_ID is not a Landsat"),
    ],
)
def test_bad_values_name_field_and_value(tmp_path, key, line, pattern):
    # The message names the file, the line and the field and says what was expected; the
    # bad value itself is never echoed (the file may not be metadata at all).
    text = _replace_line(_SYNTHETIC, key, line)
    lineno = next(i for i, t in enumerate(text.splitlines(), 1) if t.strip() == line)
    path = _write(tmp_path, text)
    with pytest.raises(
        MetadataError, match=rf"broken_MTL\.txt: line {lineno}: .*" + pattern
    ) as info:
        read_mtl(path)
    bad = line.partition("=")[2].strip().strip('"')
    assert bad not in str(info.value)


_FIRST = "GROUP = L1_METADATA_FILE\n  GROUP = METADATA_FILE_INFO"


@pytest.mark.parametrize(
    ("old", "new", "pattern"),
    [
        (
            "END_GROUP = L1_METADATA_FILE\nEND\n",
            "",
            r"GROUP = L1_METADATA_FILE opened at line 1 is never closed.*truncated",
        ),
        ("\nEND\n", "\n", r"no END line .*truncated"),
        ("\nEND\n", "\nEND\nSURPRISE = 1\n", r"line 30: text after END"),
        (
            "END_GROUP = IMAGE_ATTRIBUTES",
            "END_GROUP = IMAGE",
            r"line 21: END_GROUP = IMAGE does not close GROUP = IMAGE_ATTRIBUTES opened at line 17",
        ),
        (_FIRST, "END_GROUP = X\n" + _FIRST, r"line 1: END_GROUP = X without a matching GROUP"),
        (
            "    SUN_AZIMUTH = 120.5",
            "    SUN AZIMUTH 120.5",
            r"line 18 is not KEY = VALUE \(expected a name of letters, digits and _, then =",
        ),
        ("    SUN_AZIMUTH = 120.5", "    = 120.5", r"line 18 is not KEY = VALUE"),
        ('"B1.TIF"', '"B1.TIF', r"line 13: malformed quoted value for FILE_NAME_BAND_1"),
        ("SUN_AZIMUTH = 120.5", "SUN_AZIMUTH =", r"line 18: SUN_AZIMUTH has no value"),
        (
            "EARTH_SUN_DISTANCE = 0.9833",
            "SUN_AZIMUTH = 1",
            r"line 20: SUN_AZIMUTH appears twice in group IMAGE_ATTRIBUTES",
        ),
        (
            "END_GROUP = L1_METADATA_FILE\n",
            "",
            r"END while GROUP = L1_METADATA_FILE .* has no END_GROUP",
        ),
        ("L1_METADATA_FILE", "SOMETHING_ELSE", r"no L1_METADATA_FILE or LANDSAT_METADATA_FILE"),
    ],
)
def test_malformed_odl(tmp_path, old, new, pattern):
    assert old in _SYNTHETIC
    path = _write(tmp_path, _SYNTHETIC.replace(old, new))
    with pytest.raises(MetadataError, match=r"broken_MTL\.txt: .*" + pattern):
        read_mtl(path)


def test_truncated_copies_of_real_files(shared_data, tmp_path):
    cases = [
        (
            "landsat/ethiopia-167055/LT51670552010352MLK00/LT51670552010352MLK00_MTL.txt",
            "cut_MTL.txt",
            r"(line \d+|never closed).*truncated\?",
        ),
        (
            "mtl/sertit/LM05_L1TP_200030_20121230_20200820_02_T2_MTL.xml",
            "cut_MTL.xml",
            r"invalid XML at line \d+.*truncated",
        ),
        ("mtl/rio-toa/LC80100202015018LGN00_MTL.json", "cut_MTL.json", r"invalid JSON.*truncated"),
    ]
    for rel, name, pattern in cases:
        raw = (shared_data / rel).read_bytes().split(b"\0", 1)[0]
        for cut in (len(raw) // 2, len(raw) - 20):
            path = _write(tmp_path, raw[:cut], name)
            with pytest.raises(MetadataError, match=re.escape(str(path)) + ": .*" + pattern):
                read_mtl(path)
    # A copy cut at a line end leaves well-formed lines but open groups.
    text = (shared_data / cases[0][0]).read_bytes().split(b"\0", 1)[0].decode("ascii")
    lines = text.splitlines(keepends=True)
    path = _write(tmp_path, "".join(lines[: len(lines) // 2]), "lines_MTL.txt")
    with pytest.raises(MetadataError, match=r"GROUP = \w+ opened at line \d+ is never closed"):
        read_mtl(path)


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (b"", r"is empty \(0 bytes\)"),
        (b"\0" * 4096, r"contains no text \(only NUL padding"),
        (b"  \r\n\t\n", r"contains no text"),
        (random.Random(1234).randbytes(4096), r"binary data|not a text file"),
        (b"II*\x00\x08\x00\x00\x00" + bytes(range(1, 200)), r"binary data \(NUL byte at offset 3"),
        (b"GROUP = \xff\xfe L1\n", r"not a text file \(byte 0xff at offset 8"),
        (b"GROUP = L1_METADATA_FILE\n\x01\x02\x03\n", r"binary data \(control character 0x01"),
        (b"hello world\n", r"line 1 is not KEY = VALUE \(expected"),
    ],
)
def test_garbage_is_refused(tmp_path, content, pattern):
    path = _write(tmp_path, content)
    with pytest.raises(MetadataError, match=re.escape(str(path)) + ": " + pattern):
        read_mtl(path)


_BOMB = """<?xml version="1.0"?>
<!DOCTYPE LANDSAT_METADATA_FILE [
  <!ENTITY a "aaaaaaaaaaaaaaaaaaaa">
  <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
]>
<LANDSAT_METADATA_FILE><IMAGE_ATTRIBUTES><SENSOR_ID>&b;</SENSOR_ID></IMAGE_ATTRIBUTES>
</LANDSAT_METADATA_FILE>
"""


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (_BOMB, r"<!DOCTYPE declaration is refused"),
        ('<!ENTITY x "y"><a/>', r"<!ENTITY declaration is refused"),
        ("<LANDSAT_METADATA_FILE><A></B></LANDSAT_METADATA_FILE>", r"invalid XML at line 1"),
        ("<gdal><band/></gdal>", r"root element <gdal> is neither LANDSAT_METADATA_FILE"),
        (
            "<LANDSAT_METADATA_FILE><IMAGE_ATTRIBUTES><SPACECRAFT_ID>LANDSAT_8</SPACECRAFT_ID>"
            "<SENSOR_ID>OLI_TIRS</SENSOR_ID><DATE_ACQUIRED>2020-01-01</DATE_ACQUIRED>"
            "</IMAGE_ATTRIBUTES></LANDSAT_METADATA_FILE>",
            r"required field SUN_ELEVATION is missing",
        ),
        (
            "<LANDSAT_METADATA_FILE><A><X>1</X><X>2</X></A></LANDSAT_METADATA_FILE>",
            r"element <X> appears twice in <A>",
        ),
        (
            '<espa_metadata xmlns="http://espa.cr.usgs.gov/v2"><global_metadata>'
            "<satellite>LANDSAT_7</satellite><instrument>ETM</instrument>"
            "<acquisition_date>2011-04-16</acquisition_date></global_metadata></espa_metadata>",
            r"required ESPA element <solar_angles zenith=\.\.\.> is missing",
        ),
        (
            "<espa_metadata><global_metadata><satellite>LANDSAT_7</satellite>"
            "</global_metadata></espa_metadata>",
            r"required ESPA element <instrument> is missing",
        ),
    ],
)
def test_bad_xml(tmp_path, content, pattern):
    path = _write(tmp_path, content, "broken_MTL.xml")
    with pytest.raises(MetadataError, match=r"broken_MTL\.xml: .*" + pattern):
        read_mtl(path)


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        ('{"L1_METADATA_FILE": {', r"invalid JSON"),
        ("[1, 2, 3]", r"must be an object .* not a list"),
        ('{"SOMETHING": {}}', r"no L1_METADATA_FILE or LANDSAT_METADATA_FILE group"),
        ('{"L1_METADATA_FILE": {"IMAGE_ATTRIBUTES": {"SUN_ELEVATION": NaN}}}', r"invalid JSON"),
        (
            '{"L1_METADATA_FILE": {"PRODUCT_METADATA": {"SPACECRAFT_ID": "LANDSAT_8", '
            '"SENSOR_ID": "OLI_TIRS", "DATE_ACQUIRED": "2015-01-18"}, '
            '"IMAGE_ATTRIBUTES": {"SUN_ELEVATION": true}}}',
            r"line 1, column \d+: SUN_ELEVATION is not a number .*got true/false",
        ),
    ],
)
def test_bad_json(tmp_path, content, pattern):
    path = _write(tmp_path, content, "broken_MTL.json")
    with pytest.raises(MetadataError, match=r"broken_MTL\.json: .*" + pattern):
        read_mtl(path)


def test_unreadable_paths(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere_MTL.txt"
    with pytest.raises(MetadataError, match=re.escape(f"{missing}: no such metadata file")):
        read_mtl(missing)
    with pytest.raises(MetadataError, match=re.escape(f"{missing}: no such metadata file")):
        read_mtl(str(missing).encode())
    with pytest.raises(MetadataError, match="is a directory"):
        read_mtl(tmp_path)
    monkeypatch.setattr(metadata_read, "MAX_METADATA_BYTES", 100)
    big = _write(tmp_path, _SYNTHETIC, "big_MTL.txt")
    with pytest.raises(MetadataError, match=r"big_MTL\.txt: larger than 100 bytes"):
        read_mtl(big)


def test_text_entry_point_checks_too():
    with pytest.raises(MetadataError, match="<string>: is empty"):
        read_mtl_text("")
    with pytest.raises(MetadataError, match="mem: binary data"):
        read_mtl_text("GROUP = A\x00xyz", "mem")
    # NUL padding in already-decoded text is stripped like in files.
    assert read_mtl_text(_SYNTHETIC + "\0" * 100).sun_elevation == 45.25
