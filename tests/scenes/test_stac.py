"""STAC discovery: Items / ItemCollections built here for the real scenes, STAC API search
over a local HTTP server, and scenes read over HTTP through GDAL's /vsicurl/.

Every STAC object is written at test time (asset hrefs are absolute paths or 127.0.0.1
URLs of this run); nothing is committed. The asset-key conventions written below are the
Landsat Collection-2 STAC ones (stactools-landsat / USGS), spelled out here rather than
taken from the code under test.
"""

from __future__ import annotations

import dataclasses
import functools
import http.server
import json
import os
import re
import shutil
import threading
from pathlib import Path
from typing import ClassVar

import numpy as np
import pystac
import pytest
import rasterio
from rasterio.transform import from_origin

from updm_dask.errors import SceneError
from updm_dask.metadata import read_mtl
from updm_dask.scenes import discover_scenes, discover_stac, open_scene, scene_mask_params
from updm_dask.science.masks import NO_QA_CLOUD_TEST, qa_flags

# Collection-2 STAC asset keys by band number.
TM_KEYS = {"1": "blue", "2": "green", "3": "red", "4": "nir08", "5": "swir16", "7": "swir22"}
OLI_KEYS = {
    "1": "coastal", "2": "blue", "3": "green", "4": "red", "5": "nir08", "6": "swir16",
    "7": "swir22",
}  # fmt: skip
MSS_KEYS = ("green", "red", "nir08", "nir09")  # spectral order, on every MSS satellite
DIR_SCENES = (
    "ethiopia-167055/LT05_L1TP_167055_20000309_20161214_01_T1",
    "ethiopia-167055/LT51670552010352MLK00",
    "ethiopia-167055/LE07_L1TP_167055_20170316_20170411_01_T1",
    "ethiopia-167055/LC08_L1TP_167055_20170308_20170317_01_T1",
    "marburg-195025/LE07_L1TP_195025_20010730_20170204_01_T1",
    "marburg-195025/LC08_L1TP_195025_20130707_20170503_01_T1",
    "para-224063-1988",
)


def _without_origin(scenes):
    return [dataclasses.replace(s, origin="") for s in scenes]


def _band_number(name: str) -> str | None:
    match = re.search(r"_B(\d+)\.TIF$", name, re.IGNORECASE)
    return match.group(1) if match else None


def _item_for_folder(folder: Path, href=str, *, eo_names=False) -> pystac.Item:
    """A STAC Item for a scene folder, keyed like Collection-2 STAC items."""
    mtl = next(folder.glob("*_MTL.txt"))
    md = read_mtl(str(mtl))
    keys = OLI_KEYS if md.sensor in ("OLI", "OLI-2") else TM_KEYS
    item = pystac.Item(
        id=md.product_id or md.scene_id,
        geometry=None,
        bbox=None,
        datetime=md.acquired,
        properties={"platform": md.platform.lower().replace("_", "-")},
    )
    item.add_asset("MTL.txt", pystac.Asset(href=href(mtl), roles=["metadata"]))
    for path in sorted(folder.iterdir()):
        number = _band_number(path.name)
        if number is None:
            if path.name.upper().endswith("_BQA.TIF"):
                item.add_asset("qa_pixel", pystac.Asset(href=href(path), roles=["cloud"]))
            continue
        if eo_names:
            key = f"B{number}"
            extra = {"eo:bands": [{"name": f"B{number}"}]}
        elif number in keys:
            key, extra = keys[number], {}
        else:
            key, extra = f"lwir_or_pan_{number}", {}  # thermal / pan: must be ignored
        item.add_asset(key, pystac.Asset(href=href(path), roles=["data"], extra_fields=extra))
    return item


@pytest.fixture(scope="module")
def landsat(shared_data) -> Path:
    return shared_data / "landsat"


@pytest.fixture(scope="module")
def by_folder(landsat):
    return discover_scenes([landsat / d for d in DIR_SCENES])


def test_item_collection_round_trip_equals_folder_discovery(landsat, by_folder, tmp_path):
    items = [_item_for_folder(landsat / d) for d in DIR_SCENES]
    target = tmp_path / "scenes.json"
    pystac.ItemCollection(items).save_object(dest_href=str(target))
    found = discover_stac(target)
    assert found.problems == []
    assert len(found.scenes) == len(DIR_SCENES) == len(by_folder.scenes)
    assert _without_origin(found.scenes) == _without_origin(by_folder.scenes)
    assert {s.origin for s in found.scenes} == {str(target)}
    # The same through the pystac object and through eo:bands names instead of keys.
    assert _without_origin(discover_stac(pystac.ItemCollection(items)).scenes) == _without_origin(
        by_folder.scenes
    )
    by_eo = [_item_for_folder(landsat / d, eo_names=True) for d in DIR_SCENES]
    assert _without_origin(discover_stac(by_eo).scenes) == _without_origin(by_folder.scenes)


def test_single_item_file_with_relative_and_file_url_hrefs(landsat, by_folder, tmp_path):
    folder = landsat / DIR_SCENES[2]
    relative = _item_for_folder(folder, href=lambda p: os.path.relpath(p, tmp_path))
    target = tmp_path / "item.json"
    target.write_text(json.dumps(relative.to_dict(include_self_link=False)))
    [scene] = discover_stac(target).scenes
    [expected] = [s for s in by_folder.scenes if s.id == relative.id]
    assert dataclasses.replace(scene, origin="") == dataclasses.replace(expected, origin="")
    # file:// hrefs: the MTL is read through fsspec, the bands stay local paths.
    as_url = _item_for_folder(folder, href=lambda p: Path(p).as_uri())
    [scene] = discover_stac(as_url).scenes
    assert dict(scene.band_paths) == dict(expected.band_paths)
    assert scene.metadata.sun_elevation == expected.metadata.sun_elevation
    np.testing.assert_array_equal(open_scene(scene)["dn"].values, open_scene(expected)["dn"].values)


def test_stac_filters_and_problems(landsat, tmp_path):
    good = _item_for_folder(landsat / DIR_SCENES[3])
    no_mtl = _item_for_folder(landsat / DIR_SCENES[0])
    del no_mtl.assets["MTL.txt"]
    no_band = _item_for_folder(landsat / DIR_SCENES[4])
    del no_band.assets["red"]
    gone = _item_for_folder(landsat / DIR_SCENES[5])
    gone.assets["swir16"].href = str(tmp_path / "missing_B6.TIF")
    found = discover_stac([good, no_mtl, no_band, gone])
    assert [s.id for s in found.scenes] == [good.id]
    problems = dict(found.problems)
    assert "no metadata asset" in problems[f"STAC item {no_mtl.id}"]
    assert "band 3 (red)" in problems[f"STAC item {no_band.id}"]
    assert "band 6" in problems[f"STAC item {gone.id}"]
    assert [s.id for s in discover_stac([good], sensors="TM").scenes] == []
    assert [s.id for s in discover_stac([good], start="2017-03-08", end="2017-03-08").scenes] == [
        good.id
    ]


def test_bad_stac_sources_raise(tmp_path):
    with pytest.raises(SceneError, match="no such STAC file"):
        discover_stac(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(SceneError, match="not a STAC JSON file"):
        discover_stac(broken)
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"type": "Catalog", "id": "x", "links": []}))
    with pytest.raises(SceneError, match="'Catalog'"):
        discover_stac(catalog)
    with pytest.raises(SceneError, match="cannot read STAC"):
        discover_stac(42)


# --------------------------------------------------------------------------------------
# MSS: real Collection-2 MTL files, tiny rasters written here.


def _mss_scene(shared_data: Path, tmp_path: Path, mtl_name: str) -> Path:
    mtl = shared_data / "mtl" / "stactools-landsat" / mtl_name
    folder = tmp_path / mtl_name.replace("_MTL.xml", "")
    folder.mkdir()
    shutil.copy(mtl, folder / mtl.name)
    md = read_mtl(str(mtl))
    for i, (label, band) in enumerate(md.bands.items()):
        data = np.full((6, 5), 10 * (i + 1), np.uint8)
        data[0, 0] = 0  # one fill pixel
        profile = {
            "driver": "GTiff", "width": 5, "height": 6, "count": 1, "dtype": "uint8",
            "crs": f"EPSG:{md.crs_epsg}", "transform": from_origin(400000, 8000000, 60, 60),
        }  # fmt: skip
        with rasterio.open(folder / band.file_name, "w", **profile) as dst:
            dst.write(data, 1)
        assert label
    return folder


@pytest.mark.parametrize(
    ("mtl_name", "labels"),
    [
        ("LM05_L1GS_001001_19850524_20210918_02_T2_MTL.xml", ("1", "2", "3", "4")),
        ("LM01_L1GS_001010_19720908_20200909_02_T2_MTL.xml", ("4", "5", "6", "7")),
    ],
)
def test_mss_items_use_green_red_nir08_nir09(shared_data, tmp_path, mtl_name, labels):
    folder = _mss_scene(shared_data, tmp_path, mtl_name)
    [from_folder] = discover_scenes(folder).scenes
    assert from_folder.sensor == "MSS" and tuple(from_folder.band_paths) == labels
    item = pystac.Item(id="mss", geometry=None, bbox=None, datetime=from_folder.acquired,
                       properties={})  # fmt: skip
    item.add_asset("MTL.xml", pystac.Asset(href=str(folder / mtl_name), roles=["metadata"]))
    for key, label in zip(MSS_KEYS, labels, strict=True):
        name = f"{mtl_name.replace('_MTL.xml', '')}_B{label}.TIF"
        item.add_asset(key, pystac.Asset(href=str(folder / name), roles=["data"]))
    [from_stac] = discover_stac(item).scenes
    assert dataclasses.replace(from_stac, origin="") == dataclasses.replace(from_folder, origin="")
    ds = open_scene(from_stac)
    assert tuple(ds["band"].values) == labels
    assert [int(v) for v in ds["dn"][:, 1, 1].values] == [10, 20, 30, 40]
    flags = qa_flags(ds["dn"].values, params=scene_mask_params(ds))
    assert np.all(flags & NO_QA_CLOUD_TEST)  # no QA band here: UPDM's cloud rule applies
    assert flags[0, 0] & 1 and not np.any(flags[1:, 1:] & 1)


def test_mss_scene_with_a_missing_band_is_a_problem(shared_data, tmp_path):
    folder = _mss_scene(shared_data, tmp_path, "LM01_L1GS_007019_19771009_20200907_02_T2_MTL.xml")
    found = discover_scenes(folder)
    assert found.scenes == []
    assert "band 4 is marked missing" in found.problems[0][1]


# --------------------------------------------------------------------------------------
# HTTP on 127.0.0.1: a STAC API, and scene files read through /vsicurl/


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files with HTTP Range support (GDAL's /vsicurl/ reads by ranges) + STAC API."""

    stac_items: ClassVar[list] = []
    searches: ClassVar[list] = []

    def log_message(self, *args):  # keep test output quiet
        pass

    def _json(self, payload):
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _landing(self):
        root = f"http://{self.headers['Host']}"
        return {
            "type": "Catalog", "id": "test-api", "description": "local", "stac_version": "1.0.0",
            "conformsTo": [
                "https://api.stacspec.org/v1.0.0/core",
                "https://api.stacspec.org/v1.0.0/item-search",
            ],
            "links": [
                {"rel": "self", "href": root + "/api/", "type": "application/json"},
                {"rel": "root", "href": root + "/api/", "type": "application/json"},
                {"rel": "search", "href": root + "/api/search", "type": "application/geo+json",
                 "method": "GET"},
                {"rel": "search", "href": root + "/api/search", "type": "application/geo+json",
                 "method": "POST"},
            ],
        }  # fmt: skip

    def _search(self):
        return {"type": "FeatureCollection", "features": self.stac_items, "links": []}

    def do_GET(self):
        if self.path.rstrip("/") == "/api":
            return self._json(self._landing())
        if self.path.startswith("/api/search"):
            type(self).searches.append(self.path)
            return self._json(self._search())
        return self._ranged_get()

    def do_POST(self):
        if self.path.startswith("/api/search"):
            length = int(self.headers.get("Content-Length", 0))
            type(self).searches.append(json.loads(self.rfile.read(length) or b"{}"))
            return self._json(self._search())
        self.send_error(404)

    def _ranged_get(self):
        path = Path(self.translate_path(self.path))
        wanted = self.headers.get("Range")
        if not path.is_file() or not wanted:
            return super().do_GET()
        start, _, end = wanted.replace("bytes=", "").partition("-")
        size = path.stat().st_size
        start, end = int(start), min(int(end) if end else size - 1, size - 1)
        with open(path, "rb") as fh:
            fh.seek(start)
            body = fh.read(end - start + 1)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self):
        path = Path(self.translate_path(self.path))
        if path.is_file():
            self.send_response(200)
            self.send_header("Content-Length", str(path.stat().st_size))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            return None
        return super().do_HEAD()


@pytest.fixture
def server(landsat):
    handler = functools.partial(_Handler, directory=str(landsat))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.stac_items, _Handler.searches = [], []
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_stac_api_search(landsat, by_folder, server):
    pytest.importorskip("pystac_client")
    from pystac_client import ItemSearch

    _Handler.stac_items = [_item_for_folder(landsat / d).to_dict() for d in DIR_SCENES]
    found = discover_stac(server + "/api/", search={"collections": ["landsat-c2-l1"]})
    assert found.problems == []
    assert _without_origin(found.scenes) == _without_origin(by_folder.scenes)
    assert found.scenes[0].origin == server + "/api/"
    assert _Handler.searches  # the search endpoint was asked
    # An ItemSearch built by the caller works the same.
    search = ItemSearch(server + "/api/search", collections=["landsat-c2-l1"], method="GET")
    assert _without_origin(discover_stac(search).scenes) == _without_origin(by_folder.scenes)


def test_bad_stac_api_raises(server):
    with pytest.raises(SceneError, match="STAC API"):
        discover_stac(server + "/nothing-here/", search={"collections": ["x"]})


def test_scene_read_over_http_through_vsicurl(landsat, server):
    rel = "ethiopia-167055/LT51670552010352MLK00/LT51670552010352MLK00_MTL.txt"
    # Discovery by URL: fsspec reads the MTL and lists the folder (case-insensitive match
    # of ..._B1.TIF in the MTL to ..._B1.tif served).
    found = discover_scenes(f"{server}/{rel}")
    assert found.problems == []
    [scene] = found.scenes
    assert scene.band_paths["1"] == f"/vsicurl/{server}/{rel.replace('_MTL.txt', '_B1.tif')}"
    local = open_scene(landsat / rel)
    remote = open_scene(scene, chunks=50)
    np.testing.assert_array_equal(remote["dn"].values, local["dn"].values)
    assert remote.rio.transform() == local.rio.transform()
    # The same scene as a STAC item with http hrefs.
    folder = landsat / "ethiopia-167055" / "LT51670552010352MLK00"
    item = _item_for_folder(folder, href=lambda p: f"{server}/{Path(p).relative_to(landsat)}")
    [via_stac] = discover_stac(item).scenes
    assert via_stac.mtl_path == f"{server}/{rel}"
    np.testing.assert_array_equal(open_scene(via_stac)["dn"].values, local["dn"].values)


def test_a_job_reads_its_scenes_from_a_stac_item_collection(landsat, tmp_path):
    from distributed import Client, LocalCluster

    from updm_dask.cube import open_cube
    from updm_dask.jobs.run import run_job_file

    ethiopia = [d for d in DIR_SCENES if d.startswith("ethiopia")]
    items = [_item_for_folder(landsat / d) for d in ethiopia]
    catalogue = tmp_path / "scenes.json"
    pystac.ItemCollection(items).save_object(dest_href=str(catalogue))
    job = tmp_path / "job.toml"
    # The items point at the shared data, outside the catalogue's folder: the job must
    # allow that root explicitly.
    job.write_text(
        f'[inputs]\nstac = ["{catalogue}"]\nsensors = ["TM", "OLI"]\n'
        f'allow_roots = ["{landsat}"]\n'
        f'[cube]\npath = "{tmp_path / "cube.icechunk"}"\n'
        '[grid]\ncrs = "EPSG:32637"\n'
        "transform = [30.0, 0.0, 589035.0, 0.0, -30.0, 756165.0]\nshape = [101, 101]\n"
    )
    with (
        LocalCluster(n_workers=1, threads_per_worker=2, processes=False) as cluster,
        Client(cluster) as client,
    ):
        report = run_job_file(job, client=client, progress=False, echo=lambda _: None)
    assert report.exit_code == 0 and report.failed == []
    expected = {
        read_mtl(str(next((landsat / d).glob("*_MTL.txt")))).scene_id
        for d in ethiopia
        if not d.split("/")[1].startswith("LE07")  # ETM+ is not among the job's sensors
    }
    assert len(expected) == 3
    assert open_cube(tmp_path / "cube.icechunk").scene_ids() == expected
