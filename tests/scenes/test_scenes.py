"""Scene discovery, lazy opening and quality flags.

Real-data expectations (grids, shapes, dtypes, dates, fill counts) come from the shared
data README and from reading the files directly with rasterio/tarfile, never from the code
under test. Bad inputs are built in tmp_path: a tiny synthetic scene (hand-written MTL +
small GeoTIFFs) that is then broken on purpose.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import glob
import io
import os
import pickle
import tarfile
import time
import warnings
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import rasterio
import rasterio.errors
import rasterio.io
from dask.array.utils import assert_eq
from rasterio.transform import from_origin

from updm_dask.errors import SceneError, SensorError
from updm_dask.metadata import read_mtl
from updm_dask.pipeline import process_scene
from updm_dask.scenes import SceneSource, discover_scenes, open_scene, scene_mask_params
from updm_dask.scenes._locations import url_to_gdal
from updm_dask.science.masks import (
    CLOUD,
    CLOUD_SHADOW,
    FILL,
    NO_QA_CLOUD_TEST,
    SATURATED,
    SLC_GAP,
    mask_params,
    qa_flags,
)

TM_LABELS = ("1", "2", "3", "4", "5", "7")
OLI_LABELS = ("2", "3", "4", "5", "6", "7")

# --------------------------------------------------------------------------------------
# Expected real scenes (shared data README): id -> (sensor, level, rows, cols, dtype, EPSG,
# upper-left pixel CENTRE x, y).
ETH = (101, 101, 32637, 589050.0, 756150.0)
MAR = (41, 41, 32632, 483300.0, 5628510.0)
REAL_SCENES = {
    "LT05_L1TP_167055_20000309_20161214_01_T1": ("TM", "L1", "uint8", *ETH),
    "LT51670552010352MLK00": ("TM", "L1", "uint8", *ETH),
    "LE07_L1TP_167055_20170316_20170411_01_T1": ("ETM+", "L1", "uint8", *ETH),
    "LC08_L1TP_167055_20170308_20170317_01_T1": ("OLI", "L1", "uint16", *ETH),
    "LE07_L1TP_195025_20010730_20170204_01_T1": ("ETM+", "L1", "int16", *MAR),
    "LC08_L1TP_195025_20130707_20170503_01_T1": ("OLI", "L1", "int16", *MAR),
    "LT52240631988227CUB02": ("TM", "L1", "uint8", 310, 287, 32622, 619410.0, -410220.0),
    "LC09_L2SP_231062_20230723_20230802_02_T1": (
        "OLI-2", "L2", "uint16", 468, 851, 32620, 832500.0, -341010.0,
    ),
    "LC08_L2SP_218074_20190114_20200829_02_T1": (
        "OLI", "L2", "uint16", 300, 400, 32623, 583500.0, -2222700.0,
    ),
    "LC08_L2SP_218074_20190130_20200829_02_T1": (
        "OLI", "L2", "uint16", 300, 400, 32623, 584400.0, -2222700.0,
    ),
    "LC08_L1TP_017051_20151205_20200908_02_T1": (
        "OLI", "L1", "uint16", 334, 468, 32616, 543990.0, 1378980.0,
    ),
    "LC08_L2SP_017051_20151205_20200908_02_T1": (
        "OLI", "L2", "uint16", 333, 467, 32616, 544020.0, 1378980.0,
    ),
}  # fmt: skip


def _raise_on_compute(dsk, keys, **kwargs):
    raise AssertionError("something was computed although everything should stay lazy")


@pytest.fixture(scope="module")
def landsat(shared_data) -> Path:
    return shared_data / "landsat"


@pytest.fixture(scope="module")
def real(landsat):
    return discover_scenes(landsat)


def _all_real(real):
    return {s.id: s for s in real.scenes + real.duplicates}


def _band_file_reference(landsat: Path, scene_id: str, label: str, level: str) -> str:
    """Path of a band file found here independently of the package (glob / tar listing)."""
    stem = f"{scene_id}_SR_B{label}" if level == "L2" else f"{scene_id}_B{label}"
    for archive in glob.glob(str(landsat / "xlandsat" / "*.tar.gz")):
        if os.path.basename(archive).startswith(scene_id):
            with tarfile.open(archive) as tar:
                names = tar.getnames()
            member = next(n for n in names if n.upper() == f"{stem}.TIF".upper())
            return f"/vsitar/{archive}/{member}"
    hits = [
        p
        for p in glob.glob(str(landsat / "**" / "*"), recursive=True)
        if os.path.basename(p).upper() == f"{stem}.TIF".upper()
    ]
    assert len(hits) == 1, hits
    return hits[0]


# --------------------------------------------------------------------------------------
# Discovery on the real data


def test_discovers_every_real_scene(real):
    found = _all_real(real)
    assert set(found) == set(REAL_SCENES)
    assert real.problems == []
    # Momotombo L1TP and L2SP are one acquisition: the L2 product is the duplicate.
    assert [s.id for s in real.duplicates] == ["LC08_L2SP_017051_20151205_20200908_02_T1"]
    assert real.duplicates[0].scene_id == found["LC08_L1TP_017051_20151205_20200908_02_T1"].scene_id
    times = [s.acquired for s in real.scenes]
    assert times == sorted(times)
    assert len({s.scene_id for s in real.scenes}) == len(real.scenes) == 11
    for scene in real.scenes + real.duplicates:
        sensor, level = REAL_SCENES[scene.id][:2]
        assert scene.sensor == sensor
        assert scene.level == level
        expected = TM_LABELS if sensor in ("TM", "ETM+") else OLI_LABELS
        assert tuple(scene.band_paths) == expected


def test_discovered_paths_resolve_case_insensitively_and_to_vsitar(real):
    found = _all_real(real)
    pre = found["LT51670552010352MLK00"]
    # The MTL says ..._B1.TIF; the file on disk is ..._B1.tif.
    assert pre.metadata.bands["1"].file_name.endswith("_B1.TIF")
    assert pre.band_paths["1"].endswith("LT51670552010352MLK00_B1.tif")
    assert os.path.isfile(pre.band_paths["1"])
    manaus = found["LC09_L2SP_231062_20230723_20230802_02_T1"]
    assert manaus.band_paths["4"].startswith("/vsitar/")
    assert manaus.band_paths["4"].endswith(
        ".tar.gz/LC09_L2SP_231062_20230723_20230802_02_T1_SR_B4.TIF"
    )
    c1 = found["LE07_L1TP_167055_20170316_20170411_01_T1"]
    assert set(c1.qa_paths) == {"qa"} and c1.qa_paths["qa"].endswith("_BQA.TIF")
    assert pre.qa_paths == {}


def test_discovery_filters_by_sensor_and_time(landsat):
    etm = discover_scenes(landsat, sensors=["ETM"])
    assert [s.id for s in etm.scenes] == [
        "LE07_L1TP_195025_20010730_20170204_01_T1",
        "LE07_L1TP_167055_20170316_20170411_01_T1",
    ]
    window = discover_scenes(landsat / "ethiopia-167055", start="2017-01-01", end="2017-03-08")
    assert [s.id for s in window.scenes] == ["LC08_L1TP_167055_20170308_20170317_01_T1"]
    dated = discover_scenes(
        landsat / "ethiopia-167055", start=dt.date(2010, 12, 18), end=dt.datetime(2017, 3, 8)
    )
    assert [s.id for s in dated.scenes] == ["LT51670552010352MLK00"]
    with pytest.raises(SensorError, match="HRV"):
        discover_scenes(landsat, sensors=["HRV"])
    with pytest.raises(SceneError, match="start="):
        discover_scenes(landsat, start="last tuesday")


def test_discovery_of_globs_files_archives_and_file_urls(landsat, real):
    by_glob = discover_scenes(str(landsat / "ethiopia-167055" / "*" / "*_MTL.txt"))
    assert len(by_glob.scenes) == 4 and by_glob.problems == []
    one = discover_scenes(landsat / "para-224063-1988" / "LT52240631988227CUB02_MTL.txt").scenes
    assert [s.id for s in one] == ["LT52240631988227CUB02"]
    archive = landsat / "xlandsat" / "LC09_L2SP_231062_20230723_20230802_02_T1-cropped.tar.gz"
    assert [s.id for s in discover_scenes(archive).scenes] == [
        "LC09_L2SP_231062_20230723_20230802_02_T1"
    ]
    # file:// URLs go through fsspec like any URL; local band files stay plain paths.
    via_url = discover_scenes("file://" + str(landsat / "marburg-195025"))
    local = discover_scenes(landsat / "marburg-195025")
    assert [dataclasses.replace(s, origin="") for s in via_url.scenes] == [
        dataclasses.replace(s, origin="") for s in local.scenes
    ]
    # Two inputs naming the same scenes: the first wins, the rest are reported.
    twice = discover_scenes([landsat / "marburg-195025", landsat / "marburg-195025"])
    assert len(twice.scenes) == 2 and len(twice.duplicates) == 2


def test_url_to_gdal_mapping():
    assert url_to_gdal("s3://bucket/c2/LC08_B4.TIF") == "/vsis3/bucket/c2/LC08_B4.TIF"
    assert url_to_gdal("https://host.example/a/B4.TIF") == "/vsicurl/https://host.example/a/B4.TIF"
    assert url_to_gdal("gs://b/k.TIF") == "/vsigs/b/k.TIF"
    assert url_to_gdal("file:///data/x%20y/B4.TIF") == "/data/x y/B4.TIF"
    assert url_to_gdal("/plain/path.TIF") == "/plain/path.TIF"
    with pytest.raises(SceneError, match="ftp://"):
        url_to_gdal("ftp://host/B4.TIF")


def test_scene_source_pickles_cheaply(real):
    for scene in real.scenes:
        blob = pickle.dumps(scene)
        assert len(blob) < 64_000
        back = pickle.loads(blob)
        assert back == scene
        assert all(isinstance(p, str) for p in back.band_paths.values())
    assert dask.base.tokenize(real.scenes[0]) == dask.base.tokenize(
        pickle.loads(pickle.dumps(real.scenes[0]))
    )


# --------------------------------------------------------------------------------------
# Opening the real scenes


@pytest.mark.parametrize("scene_id", sorted(REAL_SCENES))
def test_open_real_scene(real, landsat, scene_id):
    sensor, level, dtype, rows, cols, epsg, x0, y0 = REAL_SCENES[scene_id]
    source = _all_real(real)[scene_id]
    ds = open_scene(source, chunks=64)
    dn = ds["dn"]
    assert dn.dims == ("band", "y", "x")
    assert dn.shape == (6, rows, cols)
    assert dn.dtype == np.dtype(dtype)
    assert isinstance(dn.data, da.Array)
    assert dn.data.chunks[0] == (6,)
    assert max(dn.data.chunks[1]) <= 64 and max(dn.data.chunks[2]) <= 64
    labels = TM_LABELS if sensor in ("TM", "ETM+") else OLI_LABELS
    assert tuple(dn["band"].values) == labels
    assert ds.rio.crs.to_epsg() == epsg
    assert (ds.x.values[0], ds.y.values[0]) == (x0, y0)
    transform = ds.rio.transform()
    assert (transform.a, transform.e) == (30.0, -30.0)
    assert (transform.c, transform.f) == (x0 - 15.0, y0 + 15.0)
    assert ds.attrs["sensor"] == sensor and ds.attrs["level"] == level
    assert ds.attrs["updm_source"] is source
    assert ds.attrs["updm_metadata"] is source.metadata
    # Pixel values against rasterio reading the band files directly.
    picks = [(0, 0), (rows // 2, cols // 3), (rows - 1, cols - 1), (rows // 3, cols - 2)]
    values = dn.values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        for i, label in enumerate(labels):
            with rasterio.open(_band_file_reference(landsat, scene_id, label, level)) as src:
                reference = src.read(1)
            for r, c in picks:
                assert values[i, r, c] == reference[r, c]
            assert reference.sum(dtype=np.int64) == values[i].sum(dtype=np.int64)


def test_open_scene_attrs_and_qa(landsat):
    path = landsat / "ethiopia-167055" / "LE07_L1TP_167055_20170316_20170411_01_T1"
    ds = open_scene(path)
    assert ds.attrs["scene_id"] == "LE71670552017075SG100"
    assert ds.attrs["product_id"] == "LE07_L1TP_167055_20170316_20170411_01_T1"
    assert ds.attrs["platform"] == "LANDSAT_7" and ds.attrs["satellite"] == 7
    assert ds.attrs["acquired"].startswith("2017-03-16T07:36:47")
    assert ds.attrs["sun_elevation"] == pytest.approx(61.19650490)
    assert ds.attrs["sun_azimuth"] == pytest.approx(106.85545594)
    assert ds.attrs["earth_sun_distance"] == pytest.approx(0.9947671)
    assert (ds.attrs["wrs_path"], ds.attrs["wrs_row"]) == (167, 55)
    assert ds.attrs["nodata"] == 255
    assert ds["qa"].dims == ("y", "x") and ds["qa"].attrs["qa_kind"] == "bqa"
    assert ds["qa"].data.chunks == ds["dn"].data.chunks[1:]
    with rasterio.open(next(path.glob("*_BQA.TIF"))) as src:
        assert np.array_equal(ds["qa"].values, src.read(1))
    # The same scene through its MTL path and through a SceneSource.
    mtl = next(path.glob("*_MTL.txt"))
    via_mtl = open_scene(mtl).attrs["updm_source"]
    assert dataclasses.replace(via_mtl, origin="") == dataclasses.replace(
        ds.attrs["updm_source"], origin=""
    )


def test_open_scene_chunks_argument_and_config(landsat):
    path = landsat / "para-224063-1988"
    assert open_scene(path, chunks={"y": 100, "x": 50})["dn"].data.chunks == (
        (6,),
        (100, 100, 100, 10),
        (50,) * 5 + (37,),
    )
    with dask.config.set({"updm.chunks.spatial": 128}):
        assert open_scene(path)["dn"].data.chunks[1:] == ((128, 128, 54), (128, 128, 31))
    for bad in (0, -5, "big", {"t": 5}, 2.5):
        with pytest.raises(SceneError, match="chunks"):
            open_scene(path, chunks=bad)


def test_xlandsat_manaus_is_georeferenced_from_its_mtl(landsat):
    archive = landsat / "xlandsat" / "LC09_L2SP_231062_20230723_20230802_02_T1-cropped.tar.gz"
    ds = open_scene(archive)
    # README: UL pixel centre (832500, -341010), EPSG:32620, 30 m, 851 x 468.
    assert ds.rio.crs.to_epsg() == 32620
    assert float(ds.x[0]) == 832500.0 and float(ds.y[0]) == -341010.0
    assert float(ds.x[-1]) == 832500.0 + 850 * 30 and float(ds.y[-1]) == -341010.0 - 467 * 30
    assert tuple(ds.rio.transform())[:6] == (30.0, 0.0, 832485.0, 0.0, -30.0, -340995.0)
    assert ds.attrs["level"] == "L2"
    assert ds.rio.bounds() == (832485.0, -355035.0, 858015.0, -340995.0)


def test_momotombo_l1_l2_grid_offset(landsat):
    xl = landsat / "xlandsat"
    l1 = open_scene(xl / "LC08_L1TP_017051_20151205_20200908_02_T1-cropped.tar.gz")
    l2 = open_scene(xl / "LC08_L2SP_017051_20151205_20200908_02_T1-cropped.tar.gz")
    # README: L2[r, c] = L1[r, c + 1] for r < 333, c < 467.
    assert np.array_equal(l2.x.values, l1.x.values[1:468])
    assert np.array_equal(l2.y.values, l1.y.values[:333])
    t1, t2 = l1.rio.transform(), l2.rio.transform()
    assert (t2.c - t1.c, t2.f - t1.f) == (30.0, 0.0)
    # The pixels agree: SR correlates with DN best at exactly that offset.
    nir1 = l1["dn"].sel(band="5").values.astype(float)
    nir2 = l2["dn"].sel(band="5").values.astype(float)
    nir2 = nir2[:, :466]
    ok = nir2 > 0

    def corr(shift):
        a = nir1[:333, shift : shift + 466][ok]
        return np.corrcoef(a, nir2[ok])[0, 1]

    scores = [corr(shift) for shift in (0, 1, 2)]
    assert int(np.argmax(scores)) == 1 and scores[1] > 0.99


# --------------------------------------------------------------------------------------
# Laziness


def test_nothing_is_computed_before_compute(landsat):
    with dask.config.set(scheduler=_raise_on_compute):
        found = discover_scenes(landsat)
        flags = []
        for scene in found.scenes:
            ds = open_scene(scene, chunks=32)
            flags.append(process_scene(ds)["quality"])
        assert all(isinstance(f.data, da.Array) for f in flags)
    # ... and the same graphs do compute afterwards.
    assert flags[0].compute().dtype == np.uint8


def test_opening_reads_no_pixels(landsat, monkeypatch):
    reads = []
    original = rasterio.io.DatasetReader.read

    def counting(self, *args, **kwargs):
        reads.append(self.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", counting)
    archive = landsat / "xlandsat" / "LC08_L1TP_017051_20151205_20200908_02_T1-cropped.tar.gz"
    ds = open_scene(archive, chunks=200)
    flags = process_scene(
        open_scene(landsat / "ethiopia-167055" / "LE07_L1TP_167055_20170316_20170411_01_T1")
    )["quality"]
    assert reads == []
    ds["dn"][:, :10, :10].compute()
    # One read per band for the single chunk asked for, nothing else.
    assert len(reads) == 6
    flags.compute()
    assert len(reads) > 6


def test_dask_graph_pickles_and_computes(landsat):
    ds = open_scene(
        landsat / "marburg-195025" / "LC08_L1TP_195025_20130707_20170503_01_T1", chunks=16
    )
    arr = pickle.loads(pickle.dumps(ds["dn"].data))
    assert_eq(arr, ds["dn"].values)
    assert any(str(k[0] if isinstance(k, tuple) else k).startswith("read-dn-") for k in arr.dask)


# --------------------------------------------------------------------------------------
# Quality flags on the real data


def _flags(scene) -> np.ndarray:
    """Quality bit flags of a whole opened scene, by the numpy kernel and the scene's rules."""
    qa = scene["qa"].values if "qa" in scene else None
    radsat = scene["radsat"].values if "radsat" in scene else None
    return qa_flags(scene["dn"].values, qa, radsat, params=scene_mask_params(scene))


def test_slc_off_etm_has_gaps_and_slc_on_does_not(landsat):
    eth = open_scene(landsat / "ethiopia-167055" / "LE07_L1TP_167055_20170316_20170411_01_T1")
    flags = _flags(eth)
    dn = eth["dn"].values
    gaps = (flags & SLC_GAP) != 0
    assert gaps.sum() > 500
    # Every gap pixel is fill (DN 0 in some band, or BQA fill) ...
    assert np.all(flags[gaps] & FILL)
    # ... and lies between valid pixels of its row.
    for r, c in zip(*np.nonzero(gaps), strict=True):
        row_valid = (flags[r] & FILL) == 0
        assert row_valid[:c].any() and row_valid[c + 1 :].any()
    # README quirk 12: DN 0 marks the SLC-off stripes; BQA value 1 is designated fill.
    assert np.all(flags[(dn == 0).any(axis=0)] & FILL)
    with rasterio.open(next((landsat / "ethiopia-167055").glob("LE07*/*_BQA.TIF"))) as src:
        bqa = src.read(1)
    assert np.array_equal((flags & FILL) != 0, ((dn == 0).any(axis=0)) | (bqa == 1))
    # BQA 672 (low confidence cloud/shadow/snow) is clear.
    assert np.all(flags[bqa == 672] == 0)
    marburg = open_scene(landsat / "marburg-195025" / "LE07_L1TP_195025_20010730_20170204_01_T1")
    assert not np.any(_flags(marburg) & (SLC_GAP | FILL))


def test_pipeline_flags_match_kernel_whatever_the_chunks(landsat):
    path = landsat / "ethiopia-167055" / "LE07_L1TP_167055_20170316_20170411_01_T1"
    whole = open_scene(path)
    params = mask_params(whole.attrs["updm_metadata"], nodata=255)
    assert scene_mask_params(whole) == params
    expected = qa_flags(whole["dn"].values, whole["qa"].values, None, params=params)
    for chunks in (17, {"y": 40, "x": 13}, 101):
        lazy = process_scene(open_scene(path, chunks=chunks))["quality"]
        assert lazy.data.chunks == open_scene(path, chunks=chunks)["qa"].data.chunks
        assert_eq(lazy.data, expected)
    out = process_scene(whole)["quality"]
    assert out.rio.crs == whole.rio.crs
    assert np.array_equal(out.x, whole.x)


def test_level2_fill_and_scenes_without_qa(landsat):
    archive = landsat / "xlandsat" / "LC08_L2SP_218074_20190114_20200829_02_T1-cropped.tar.gz"
    ds = open_scene(archive)
    flags = _flags(ds)
    stems = [f"LC08_L2SP_218074_20190114_20200829_02_T1_SR_B{b}.TIF" for b in OLI_LABELS]
    zero = np.zeros(flags.shape, dtype=bool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        for stem in stems:
            with rasterio.open(f"/vsitar/{archive}/{stem}") as src:
                zero |= src.read(1) == 0
    assert zero.sum() == 26  # README: 26 px of SR_B2 = 0 (fill)
    assert np.array_equal((flags & FILL) != 0, zero)
    # No QA band in the crop: cloud could not be assessed from QA anywhere.
    assert np.all(flags & NO_QA_CLOUD_TEST)
    assert not np.any(flags & (SATURATED | CLOUD | CLOUD_SHADOW | SLC_GAP))
    pre = _flags(open_scene(landsat / "ethiopia-167055" / "LT51670552010352MLK00"))
    assert np.all(pre == NO_QA_CLOUD_TEST)
    c1 = _flags(
        open_scene(landsat / "ethiopia-167055" / "LT05_L1TP_167055_20000309_20161214_01_T1")
    )
    assert not np.any(c1 & NO_QA_CLOUD_TEST)


# --------------------------------------------------------------------------------------
# Bad inputs, on a synthetic scene written to tmp_path

PID = "LC08_L1TP_001002_20200601_20200610_02_T1"
SCENE_ID = "LC80010022020153LGN00"


def _mtl_text(pid=PID, *, shape=(12, 20), ul=(500015.0, 4000005.0), names=None, qmax=65535):
    rows, cols = shape
    names = names or {b: f"{pid}_B{b}.TIF" for b in OLI_LABELS}
    files = "\n".join(f'    FILE_NAME_BAND_{b} = "{n}"' for b, n in names.items())
    qcal = "\n".join(
        f"    QUANTIZE_CAL_MAX_BAND_{b} = {qmax}\n    QUANTIZE_CAL_MIN_BAND_{b} = 1"
        for b in OLI_LABELS
    )
    lr = (ul[0] + (cols - 1) * 30, ul[1] - (rows - 1) * 30)
    return f"""GROUP = LANDSAT_METADATA_FILE
  GROUP = PRODUCT_CONTENTS
    LANDSAT_PRODUCT_ID = "{pid}"
    PROCESSING_LEVEL = "L1TP"
    COLLECTION_NUMBER = 02
{files}
    FILE_NAME_QUALITY_L1_PIXEL = "{pid}_QA_PIXEL.TIF"
  END_GROUP = PRODUCT_CONTENTS
  GROUP = IMAGE_ATTRIBUTES
    SPACECRAFT_ID = "LANDSAT_8"
    SENSOR_ID = "OLI_TIRS"
    WRS_PATH = 1
    WRS_ROW = 2
    DATE_ACQUIRED = 2020-06-01
    SCENE_CENTER_TIME = "10:00:00.0000000Z"
    SUN_AZIMUTH = 120.0
    SUN_ELEVATION = 45.0
  END_GROUP = IMAGE_ATTRIBUTES
  GROUP = PROJECTION_ATTRIBUTES
    MAP_PROJECTION = "UTM"
    DATUM = "WGS84"
    UTM_ZONE = 33
    GRID_CELL_SIZE_REFLECTIVE = 30.00
    REFLECTIVE_LINES = {rows}
    REFLECTIVE_SAMPLES = {cols}
    CORNER_UL_PROJECTION_X_PRODUCT = {ul[0]}
    CORNER_UL_PROJECTION_Y_PRODUCT = {ul[1]}
    CORNER_UR_PROJECTION_X_PRODUCT = {lr[0]}
    CORNER_UR_PROJECTION_Y_PRODUCT = {ul[1]}
    CORNER_LL_PROJECTION_X_PRODUCT = {ul[0]}
    CORNER_LL_PROJECTION_Y_PRODUCT = {lr[1]}
    CORNER_LR_PROJECTION_X_PRODUCT = {lr[0]}
    CORNER_LR_PROJECTION_Y_PRODUCT = {lr[1]}
  END_GROUP = PROJECTION_ATTRIBUTES
  GROUP = LEVEL1_PROCESSING_RECORD
    LANDSAT_SCENE_ID = "{SCENE_ID}"
    LANDSAT_PRODUCT_ID = "{pid}"
  END_GROUP = LEVEL1_PROCESSING_RECORD
  GROUP = LEVEL1_MIN_MAX_PIXEL_VALUE
{qcal}
  END_GROUP = LEVEL1_MIN_MAX_PIXEL_VALUE
END_GROUP = LANDSAT_METADATA_FILE
END
"""


def _write_tif(path, data, *, georef=True, transform=None, crs="EPSG:32633"):
    # Overwriting through GDAL would delete the dataset's "associated files" first, and
    # GDAL counts a Landsat *_MTL.txt next to the TIFF among them.
    Path(path).unlink(missing_ok=True)
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": data.dtype.name,
    }
    if georef:
        profile["transform"] = transform or from_origin(500000.0, 4000020.0, 30.0, 30.0)
        profile["crs"] = crs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)


def _make_scene(folder: Path, *, shape=(12, 20), georef=True, dtype=np.uint16) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows, cols = shape
    base = np.arange(rows * cols, dtype=np.int64).reshape(rows, cols)
    for i, b in enumerate(OLI_LABELS):
        _write_tif(folder / f"{PID}_B{b}.TIF", (base + 1000 * (i + 1)).astype(dtype), georef=georef)
    _write_tif(folder / f"{PID}_QA_PIXEL.TIF", np.full(shape, 21824, np.uint16), georef=georef)
    mtl = folder / f"{PID}_MTL.txt"
    mtl.write_text(_mtl_text(shape=shape))
    return mtl


def test_synthetic_scene_opens_and_reads(tmp_path):
    mtl = _make_scene(tmp_path / "scene")
    ds = open_scene(mtl, chunks=5)
    assert ds["dn"].shape == (6, 12, 20) and ds["dn"].dtype == np.uint16
    assert int(ds["dn"].sel(band="4")[3, 7]) == 3000 + 3 * 20 + 7
    assert ds.rio.crs.to_epsg() == 32633 and float(ds.x[0]) == 500015.0
    assert np.all(_flags(ds) == 0)


def test_band_files_stay_open_per_thread_and_a_replaced_file_is_read_anew(tmp_path, monkeypatch):
    import updm_dask.scenes.open as scene_open

    opened = []
    original = scene_open._open

    def counting(path, quiet):
        opened.append(path)
        return original(path, quiet)

    monkeypatch.setattr(scene_open, "_open", counting)
    mtl = _make_scene(tmp_path / "scene")
    ds = open_scene(mtl, chunks=4)  # 3 x 5 blocks of every band
    opened.clear()  # the header checks of opening; now the reads
    with dask.config.set(scheduler="synchronous"):
        first = ds["dn"].values
    assert first.shape == (6, 12, 20) and int(first[2, 3, 7]) == 3000 + 3 * 20 + 7
    # one open per file for all 15 blocks, not one per block
    assert len(opened) == len(set(opened)) == 6, opened
    # a file replaced since it was opened is read from its new content, not the old handle
    band = mtl.parent / f"{PID}_B4.TIF"
    _write_tif(band, np.full((12, 20), 7, np.uint16))
    os.utime(band, ns=(time.time_ns() + 10**9,) * 2)  # a later mtime, even on coarse clocks
    with dask.config.set(scheduler="synchronous"):
        again = open_scene(mtl, chunks=4)["dn"].sel(band="4").values
    assert np.all(again == 7)
    # a removed file fails, named, instead of being read through a stale handle
    band.unlink()
    with pytest.raises(SceneError, match=r"B4\.TIF"):
        with dask.config.set(scheduler="synchronous"):
            ds["dn"].sel(band="4").compute()


def test_headers_are_read_once_per_file_until_the_file_changes(tmp_path, monkeypatch):
    import updm_dask.scenes.open as scene_open

    read = []
    original = scene_open._read_header

    def counting(path, source, what):
        read.append(os.path.basename(path))
        return original(path, source, what)

    monkeypatch.setattr(scene_open, "_read_header", counting)
    mtl = _make_scene(tmp_path / "scene")
    open_scene(mtl, chunks=4)
    assert len(read) == 7  # 6 bands and the QA band
    # a job opens each scene again, cut on the cube's chunks: no header is read again
    again = open_scene(mtl, chunks={"y": 4, "x": 10})
    assert len(read) == 7 and again["dn"].chunks[1:] == ((4, 4, 4), (10, 10))
    # each caller gets a CRS object of its own (tiles of a job open scenes in threads)
    source = discover_scenes(mtl.parent).scenes[0]
    path = source.band_paths["4"]
    first, second = (scene_open._header(path, source, "band 4") for _ in range(2))
    assert first.crs == second.crs and first.crs is not second.crs and len(read) == 7
    # a band file replaced by one of another shape is read anew, and refused
    band = mtl.parent / f"{PID}_B4.TIF"
    _write_tif(band, np.full((12, 21), 7, np.uint16))
    os.utime(band, ns=(time.time_ns() + 10**9,) * 2)
    with pytest.raises(SceneError, match=r"B4\.TIF.*12x21 pixels"):
        open_scene(mtl, chunks=4)
    assert read[7:].count(f"{PID}_B4.TIF") == 1 and len(read) == 8
    # and a removed one fails, named, rather than being served from what was read before
    band.unlink()
    with pytest.raises(SceneError, match=r"B4\.TIF"):
        open_scene(mtl, chunks=4)


def test_missing_band_file_is_a_problem_not_an_error(tmp_path):
    mtl = _make_scene(tmp_path / "scene")
    (mtl.parent / f"{PID}_B4.TIF").unlink()
    found = discover_scenes(tmp_path)
    assert found.scenes == []
    [(where, message)] = found.problems
    assert where == str(mtl)
    assert f"{PID}_B4.TIF" in message and "band 4" in message
    with pytest.raises(SceneError, match=f"{PID}_B4.TIF"):
        open_scene(mtl.parent)
    # A scene whose source is stale (file removed after discovery) fails at open.
    mtl2 = _make_scene(tmp_path / "other")
    source = discover_scenes(mtl2).scenes[0]
    (mtl2.parent / f"{PID}_B6.TIF").unlink()
    with pytest.raises(SceneError, match=f"{SCENE_ID}|{PID}.*B6"):
        open_scene(source)


def test_band_files_without_metadata_are_reported(tmp_path):
    mtl = _make_scene(tmp_path / "scene")
    mtl.unlink()
    found = discover_scenes(tmp_path)
    assert found.scenes == []
    assert len(found.problems) == 1 and PID in found.problems[0][1]
    assert "MTL" in found.problems[0][1]


@pytest.mark.parametrize(
    ("breakage", "match"),
    [
        ("shape", r"B5\.TIF is 13x20 pixels"),
        ("two_bands", r"B3\.TIF has 2 bands"),
        ("transform", r"B7\.TIF has the grid"),
        ("crs", r"B4\.TIF has CRS"),
        ("dtype", r"B6\.TIF is int16"),
        ("qa_shape", r"QA_PIXEL\.TIF is 11x20"),
    ],
)
def test_inconsistent_band_files_are_refused_at_open(tmp_path, breakage, match):
    mtl = _make_scene(tmp_path / "scene")
    folder = mtl.parent
    ones = np.ones((12, 20), np.uint16)
    if breakage == "shape":
        _write_tif(folder / f"{PID}_B5.TIF", np.ones((13, 20), np.uint16))
    elif breakage == "two_bands":
        _write_tif(folder / f"{PID}_B3.TIF", np.ones((2, 12, 20), np.uint16))
    elif breakage == "transform":
        _write_tif(folder / f"{PID}_B7.TIF", ones, transform=from_origin(500030, 4000020, 30, 30))
    elif breakage == "crs":
        _write_tif(folder / f"{PID}_B4.TIF", ones, crs="EPSG:32634")
    elif breakage == "dtype":
        _write_tif(folder / f"{PID}_B6.TIF", ones.astype(np.int16))
    elif breakage == "qa_shape":
        _write_tif(folder / f"{PID}_QA_PIXEL.TIF", np.ones((11, 20), np.uint16))
    # Discovery only checks that the files exist; opening checks their headers.
    assert len(discover_scenes(folder).scenes) == 1
    with pytest.raises(SceneError, match=match) as info:
        open_scene(mtl)
    assert PID in str(info.value)
    assert info.value.scene_id == SCENE_ID


def test_metadata_that_does_not_fit_the_files(tmp_path):
    # The MTL lists band 5's file for band 4.
    folder = tmp_path / "swapped"
    mtl = _make_scene(folder)
    names = {b: f"{PID}_B{b}.TIF" for b in OLI_LABELS}
    names["4"] = f"{PID}_B5.TIF"
    mtl.write_text(_mtl_text(names=names))
    found = discover_scenes(folder)
    assert found.scenes == [] and "names band 5" in found.problems[0][1]
    # 8-bit files under OLI metadata calibrated up to DN 65535.
    folder = tmp_path / "eight_bit"
    mtl = _make_scene(folder, dtype=np.uint8)
    with pytest.raises(SceneError, match=r"uint8.*65535"):
        open_scene(mtl)


def test_non_georeferenced_scene_is_placed_from_its_mtl(tmp_path):
    mtl = _make_scene(tmp_path / "plain", georef=False)
    ds = open_scene(mtl)
    # UL corner in the MTL is the pixel centre (500015, 4000005).
    assert tuple(ds.rio.transform())[:6] == (30.0, 0.0, 500000.0, 0.0, -30.0, 4000020.0)
    assert ds.rio.crs.to_epsg() == 32633
    # Corners that do not span the files' pixels are refused.
    mtl.write_text(_mtl_text(shape=(12, 21)))
    with pytest.raises(SceneError, match="REFLECTIVE_LINES/SAMPLES"):
        open_scene(mtl)


def test_truncated_tiff_opens_but_fails_at_compute_naming_the_file(tmp_path):
    mtl = _make_scene(tmp_path / "scene", shape=(64, 64))
    band = mtl.parent / f"{PID}_B3.TIF"
    with rasterio.open(band) as src:
        first_strip = int(src.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1))
    data = band.read_bytes()
    band.write_bytes(data[: first_strip + 16])  # header and IFD survive, pixels do not
    ds = open_scene(mtl, chunks=32)
    with pytest.raises(SceneError, match=rf"{PID}_B3\.TIF"):
        ds["dn"].compute()


def test_read_errors_carry_the_scene_id_back_from_a_worker(tmp_path):
    from distributed import Client, LocalCluster

    mtl = _make_scene(tmp_path / "scene", shape=(64, 64))
    band = mtl.parent / f"{PID}_B3.TIF"
    with rasterio.open(band) as src:
        first_strip = int(src.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1))
    band.write_bytes(band.read_bytes()[: first_strip + 16])
    ds = open_scene(mtl, chunks=32)
    # A worker process pickles the error with its causes and context (rasterio's do not
    # unpickle): the driver must still get the SceneError, naming its scene by id.
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        with pytest.raises(SceneError, match=rf"{PID}_B3\.TIF") as info:
            client.compute(ds["dn"].data).result()
    assert info.value.scene_id == SCENE_ID


def test_nonexistent_inputs_raise(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(SceneError, match="nowhere"):
        discover_scenes([tmp_path, missing])
    with pytest.raises(SceneError, match="matches no file"):
        discover_scenes(str(tmp_path / "*.tar.gz"))
    with pytest.raises(SceneError, match="nowhere"):
        open_scene(missing)
    (tmp_path / "notes.txt").write_text("not a scene")
    found = discover_scenes(tmp_path / "notes.txt")
    assert found.scenes == [] and "not a Landsat metadata file" in found.problems[0][1]


def test_folder_with_several_scenes_cannot_be_opened_as_one(landsat):
    with pytest.raises(SceneError, match="holds 4 scenes"):
        open_scene(landsat / "ethiopia-167055")


# --------------------------------------------------------------------------------------
# Archives


def _tar_scene(archive: Path, source_folder: Path, extra=()) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(source_folder.iterdir()):
            tar.add(path, arcname=path.name)
        for info, payload in extra:
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)


def _member(name, kind="file", target="", payload=b"x"):
    info = tarfile.TarInfo(name)
    if kind == "file":
        info.size = len(payload)
        return info, payload
    info.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE}[
        kind
    ]
    info.linkname = target
    return info, None


def test_synthetic_archive_reads_through_vsitar(tmp_path):
    folder = tmp_path / "scene"
    _make_scene(folder)
    archive = tmp_path / f"{PID}.tar.gz"
    _tar_scene(archive, folder)
    ds = open_scene(archive, chunks=8)
    assert ds.attrs["updm_source"].band_paths["4"] == f"/vsitar/{archive}/{PID}_B4.TIF"
    assert int(ds["dn"].sel(band="4")[3, 7]) == 3000 + 3 * 20 + 7
    assert not (tmp_path / f"{PID}.tar.gz.properties").exists()
    # The member path of the metadata reopens the same scene.
    assert open_scene(ds.attrs["source"]).attrs["scene_id"] == SCENE_ID


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (("../escape.txt",), "'..' path component"),
        (("/etc/cron.d/evil",), "absolute path"),
        (("link", "symlink", "../../etc/passwd"), "pointing outside"),
        (("link", "symlink", "/etc/passwd"), "absolute path"),
        (("sub/link", "symlink", "../../outside.TIF"), "pointing outside"),
        (("hard", "hardlink", "../x"), "hard link pointing outside"),
        (("pipe", "fifo", ""), "FIFO"),
    ],
)
def test_hostile_archives_are_refused(tmp_path, member, reason):
    folder = tmp_path / "scene"
    _make_scene(folder)
    archive = tmp_path / "hostile.tar.gz"
    name = member[0]
    kind = member[1] if len(member) > 1 else "file"
    target = member[2] if len(member) > 2 else ""
    _tar_scene(archive, folder, extra=[_member(name, kind, target)])
    found = discover_scenes(archive)
    assert found.scenes == []
    [(where, message)] = found.problems
    assert where == str(archive)
    assert str(archive) in message and repr(name) in message and reason in message
    with pytest.raises(SceneError, match="refusing archive member") as info:
        open_scene(archive)
    assert str(archive) in str(info.value) and name in str(info.value)
    # Discovery of the whole folder keeps going past the hostile archive.
    assert len(discover_scenes(tmp_path).scenes) == 1


def test_links_inside_an_archive_are_followed(tmp_path):
    folder = tmp_path / "scene"
    _make_scene(folder)
    (folder / f"{PID}_B7.TIF").rename(folder / "real_b7.tif")
    archive = tmp_path / "linked.tar.gz"
    _tar_scene(archive, folder, extra=[_member(f"{PID}_B7.TIF", "symlink", "real_b7.tif")])
    ds = open_scene(archive)
    assert ds.attrs["updm_source"].band_paths["7"].endswith("/real_b7.tif")
    assert int(ds["dn"].sel(band="7")[0, 0]) == 6000


def test_unreadable_archive_is_a_problem(tmp_path):
    bad = tmp_path / "broken.tar.gz"
    bad.write_bytes(b"\x1f\x8b this is not gzip")
    found = discover_scenes(bad)
    assert found.scenes == [] and "not a readable tar archive" in found.problems[0][1]


def test_discovered_sources_are_scene_sources(real):
    assert all(isinstance(s, SceneSource) for s in real.scenes)
    with pytest.raises(SceneError, match="level"):
        dataclasses.replace(real.scenes[0], level="L3")


def test_read_mtl_and_discovery_agree(landsat):
    mtl = landsat / "para-224063-1988" / "LT52240631988227CUB02_MTL.txt"
    scene = discover_scenes(mtl).scenes[0]
    assert scene.metadata == read_mtl(str(mtl))
