"""STAC API searches in job specs, signed hrefs, STAC 1.1 bands, requester-pays S3 reads.

Everything runs against real servers on 127.0.0.1 that the fixtures start and stop:

- a STAC API: stac-fastapi-static (a stac-fastapi backend on a static catalogue: no
  database service, and it implements the filter extension, CQL2-JSON), run as its own
  process on a catalogue the test writes; the Items describe the real scenes of the shared
  data, their assets pointing at
- a static file server (HTTP Range requests, as GDAL's /vsicurl/ reads) over the shared
  data, which refuses (HTTP 403) any request without the token a signing hook adds;
- moto's S3 server, behind a check that refuses (HTTP 403, as AWS does for a requester-pays
  bucket) every request without ``x-amz-request-payer: requester``.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dask
import numpy as np
import pystac
import pytest
import rasterio
from rasterio.warp import transform_bounds

from updm_dask.errors import JobSpecError, SceneError
from updm_dask.jobs import load_job_spec
from updm_dask.metadata import read_mtl
from updm_dask.scenes import discover_stac, open_scene

TOKEN = "sig=local-test-token"
OLI_KEYS = {
    "1": "coastal", "2": "blue", "3": "green", "4": "red", "5": "nir08", "6": "swir16",
    "7": "swir22",
}  # fmt: skip
TM_KEYS = {"1": "blue", "2": "green", "3": "red", "4": "nir08", "5": "swir16", "7": "swir22"}
# Collection-2 common names of the bands, as STAC 1.1 `bands` give them (eo:common_name).
COMMON = {
    "coastal": "coastal", "blue": "blue", "green": "green", "red": "red", "nir08": "nir08",
    "swir16": "swir16", "swir22": "swir22",
}  # fmt: skip
# (folder under landsat/, collection): Ethiopia (2000, 2010, 2017 x 2) and Marburg (2001,
# 2013) in one collection, the Para scene (1988) in another.
SCENES = (
    ("ethiopia-167055/LT05_L1TP_167055_20000309_20161214_01_T1", "landsat-l1"),
    ("ethiopia-167055/LT51670552010352MLK00", "landsat-l1"),
    ("ethiopia-167055/LE07_L1TP_167055_20170316_20170411_01_T1", "landsat-l1"),
    ("ethiopia-167055/LC08_L1TP_167055_20170308_20170317_01_T1", "landsat-l1"),
    ("marburg-195025/LE07_L1TP_195025_20010730_20170204_01_T1", "landsat-l1"),
    ("marburg-195025/LC08_L1TP_195025_20130707_20170503_01_T1", "landsat-l1"),
    ("para-224063-1988", "para"),
)
ETHIOPIA_BBOX = [39.7, 6.7, 39.9, 6.9]  # lon/lat around the Ethiopian 101 x 101 crop
# The server's start-up (imports of fastapi, pydantic ...) on a loaded machine.
SERVER_START_TIMEOUT = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _band_number(name: str) -> str | None:
    stem = name.rsplit(".", 1)[0]
    tail = stem.rsplit("_B", 1)
    return tail[1] if len(tail) == 2 and tail[1].isdigit() else None


def _scene_id(folder: Path) -> str:
    return read_mtl(str(next(folder.glob("*_MTL.txt")))).scene_id


def _item(folder: Path, collection: str, href, *, stac11_bands: bool = False) -> pystac.Item:
    """A STAC Item of a real scene folder: footprint from its raster, time from its MTL.

    ``stac11_bands``: bands are found by STAC 1.1 ``bands`` (name, eo:common_name) under
    keys of no meaning (``b1``, ``b2`` ...), so only ``bands`` can identify them.
    """
    mtl = next(folder.glob("*_MTL.txt"))
    md = read_mtl(str(mtl))
    keys = OLI_KEYS if md.sensor in ("OLI", "OLI-2") else TM_KEYS
    first = next(p for p in sorted(folder.iterdir()) if _band_number(p.name) == "1")
    with rasterio.open(first) as src:
        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    item = pystac.Item(
        id=md.product_id or md.scene_id,
        geometry={
            "type": "Polygon",
            "coordinates": [
                [[west, south], [east, south], [east, north], [west, north], [west, south]]
            ],
        },
        bbox=[west, south, east, north],
        datetime=md.acquired,
        properties={"platform": md.platform.lower().replace("_", "-")},
        collection=collection,
    )
    item.add_asset("MTL.txt", pystac.Asset(href=href(mtl), roles=["metadata"]))
    for path in sorted(folder.iterdir()):
        number = _band_number(path.name)
        if number is None:
            if path.name.upper().endswith("_BQA.TIF"):
                item.add_asset("qa_pixel", pystac.Asset(href=href(path), roles=["cloud"]))
            continue
        if number not in keys:
            continue
        if stac11_bands:
            band = {"name": f"B{number}", "eo:common_name": COMMON[keys[number]]}
            # The name alone for half of them, the common name alone for the others.
            band.pop("name" if int(number) % 2 else "eo:common_name")
            asset = pystac.Asset(href=href(path), roles=["data"], extra_fields={"bands": [band]})
            item.add_asset(f"b{number}", asset)
        else:
            item.add_asset(keys[number], pystac.Asset(href=href(path), roles=["data"]))
    return item


# --------------------------------------------------------------------------------------
# Servers


class _Files(http.server.SimpleHTTPRequestHandler):
    """Static files with Range support; refuses requests without the signing token."""

    def log_message(self, *args):  # keep test output quiet
        pass

    def _authorised(self) -> bool:
        query = urllib.parse.urlsplit(self.path).query
        if TOKEN in query.split("&"):
            return True
        self.send_error(403, "a signed URL is required")
        return False

    def do_HEAD(self):
        if not self._authorised():
            return None
        path = Path(self.translate_path(self.path))
        if path.is_file():
            self.send_response(200)
            self.send_header("Content-Length", str(path.stat().st_size))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            return None
        return super().do_HEAD()

    def do_GET(self):
        if not self._authorised():
            return None
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
        return None


@pytest.fixture(scope="module")
def landsat(shared_data) -> Path:
    return shared_data / "landsat"


@pytest.fixture(scope="module")
def files(landsat) -> Iterator[str]:
    """The shared Landsat data over HTTP on 127.0.0.1 (signed URLs only)."""
    handler = functools.partial(_Files, directory=str(landsat))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


# The server process reads its standard input and exits when it closes: should the test
# process die without its teardown, the server goes with it.
_SERVE = """
import os, sys, threading
threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
from stac_fastapi.static.app import main
main()
"""


def _write_catalogue(folder: Path, items: list[pystac.Item]) -> Path:
    catalogue = pystac.Catalog(id="updm-test", description="Real Landsat scenes")
    collections: dict[str, pystac.Collection] = {}
    for item in items:
        if item.collection_id not in collections:
            extent = pystac.Extent(
                pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]),
                pystac.TemporalExtent([[None, None]]),
            )
            collection = pystac.Collection(
                id=item.collection_id, description="Landsat scenes", extent=extent
            )
            collections[item.collection_id] = collection
            catalogue.add_child(collection)
        collections[item.collection_id].add_item(item.clone())
    catalogue.normalize_hrefs(str(folder))
    catalogue.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return folder / "catalog.json"


@pytest.fixture(scope="module")
def stac_api(landsat, files, tmp_path_factory) -> Iterator[str]:
    """A STAC API (stac-fastapi-static) on 127.0.0.1 holding an Item per real scene."""
    items = [
        _item(landsat / d, collection, lambda p: f"{files}/{Path(p).relative_to(landsat)}")
        for d, collection in SCENES
    ]
    catalogue = _write_catalogue(tmp_path_factory.mktemp("catalogue"), items)
    port = _free_port()
    env = {
        **os.environ,
        "CATALOG_HREF": str(catalogue),
        "APP_HOST": "127.0.0.1",
        "APP_PORT": str(port),
        "RELOAD": "false",
        "LOG_LEVEL": "error",
        "CACHE": "false",
    }
    log = tmp_path_factory.mktemp("server") / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", _SERVE], env=env, stdin=subprocess.PIPE, stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"the STAC API server exited: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the STAC API server did not answer in {SERVER_START_TIMEOUT} s")
            time.sleep(0.5)
        yield url
    finally:
        process.stdin.close()
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@pytest.fixture
def signer(tmp_path, monkeypatch) -> str:
    """A signing hook module ("module:function") the job can import, adding the token."""
    (tmp_path / "updm_test_signer.py").write_text(
        "calls = []\n\n\n"
        "def sign(href):\n"
        "    calls.append(href)\n"
        f"    return href + ('&' if '?' in href else '?') + {TOKEN!r}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("updm_test_signer", None)
    return "updm_test_signer:sign"


def _ids(found) -> set[str]:
    return {s.scene_id for s in found.scenes}


# --------------------------------------------------------------------------------------
# Searches: every condition really narrows what the API returns


@pytest.mark.slow
def test_each_search_condition_filters_the_items(landsat, stac_api, signer):
    metadata = {
        md.scene_id: md
        for md in (read_mtl(str(next((landsat / d).glob("*_MTL.txt")))) for d, _ in SCENES)
    }
    every = set(metadata)
    assert len(every) == len(SCENES)
    ethiopia = {_scene_id(landsat / d) for d, _ in SCENES if d.startswith("ethiopia")}
    found = discover_stac(stac_api, search={"collections": ["landsat-l1", "para"]}, sign=signer)
    assert found.problems == [] and _ids(found) == every

    def search(**conditions) -> set[str]:
        conditions.setdefault("collections", ["landsat-l1", "para"])
        result = discover_stac(stac_api, search=conditions, sign=signer)
        assert result.problems == []
        return _ids(result)

    assert search(bbox=ETHIOPIA_BBOX) == ethiopia
    point = {"type": "Point", "coordinates": [39.82, 6.83]}
    assert search(intersects=point) == ethiopia
    assert search(collections=["para"]) == {_scene_id(landsat / "para-224063-1988")}
    in_2010s = {sid for sid, md in metadata.items() if 2010 <= md.acquired.year <= 2019}
    assert search(datetime="2010-01-01T00:00:00Z/2019-12-31T23:59:59Z") == in_2010s
    # A CQL2-JSON filter on a property.
    not_etm = {sid for sid, md in metadata.items() if md.sensor != "ETM+"}
    no_etm = {"op": "<>", "args": [{"property": "platform"}, "landsat-7"]}
    assert search(filter=no_etm) == not_etm
    assert len(search(max_items=2, limit=1)) == 2


def test_a_query_the_api_would_ignore_is_refused(stac_api):
    # stac-fastapi-static has no query extension: the server would return every Item.
    with pytest.raises(SceneError) as caught:
        discover_stac(stac_api, search={"query": {"platform": {"eq": "landsat-8"}}})
    message = str(caught.value)
    assert f"STAC API {stac_api}: the server does not support the query extension" in message
    assert "would ignore the search's query and return unfiltered Items" in message


@pytest.mark.slow
def test_unsigned_hrefs_are_refused_by_the_server_and_signed_ones_read(landsat, stac_api, signer):
    [unsigned] = discover_stac(stac_api, search={"collections": ["para"]}).problems
    assert unsigned[0].startswith("STAC item ") and "HTTP 403" in unsigned[1]
    import updm_test_signer

    found = discover_stac(stac_api, search={"collections": ["para"]}, sign=signer)
    [scene] = found.scenes
    # Every remote href was signed (the MTL, the bands, the QA band), none twice ...
    assert all(not h.endswith(TOKEN) for h in updm_test_signer.calls)
    assert len(updm_test_signer.calls) == len(set(updm_test_signer.calls)) >= 7
    # ... and the signed URLs read the same pixels as the local files.
    assert scene.band_paths["1"].endswith("?" + TOKEN)
    local = open_scene(landsat / "para-224063-1988", chunks=512)
    remote = open_scene(scene, chunks=512)
    np.testing.assert_array_equal(remote["dn"].values, local["dn"].values)


def test_a_failing_or_bad_signing_hook_is_named(landsat, stac_api, tmp_path, monkeypatch):
    def broken(href: str) -> str:
        raise RuntimeError("token service down")

    [(_, message)] = discover_stac(stac_api, search={"collections": ["para"]}, sign=broken).problems
    assert "the signing hook failed on http://127.0.0.1:" in message
    assert "RuntimeError: token service down" in message
    [(_, message)] = discover_stac(
        stac_api, search={"collections": ["para"]}, sign=lambda href: None
    ).problems
    assert "the signing hook returned NoneType" in message
    with pytest.raises(SceneError, match="cannot import the signing module 'no_such_signer'"):
        discover_stac(stac_api, search={}, sign="no_such_signer:sign")


# --------------------------------------------------------------------------------------
# STAC 1.1 `bands`


def test_stac_1_1_bands_identify_the_band_assets(landsat, tmp_path):
    for folder in (
        landsat / "ethiopia-167055" / "LC08_L1TP_167055_20170308_20170317_01_T1",
        landsat / "ethiopia-167055" / "LT05_L1TP_167055_20000309_20161214_01_T1",
    ):
        item = _item(folder, "landsat-l1", str, stac11_bands=True)
        assert item.to_dict()["stac_version"] == "1.1.0"
        assert not any(key in item.assets for key in OLI_KEYS.values())
        path = tmp_path / f"{item.id}.json"
        path.write_text(json.dumps(item.to_dict()))
        found = discover_stac(path, roots=[landsat])
        assert found.problems == []
        [scene] = found.scenes
        # Each band label found the file of that band.
        assert {k: _band_number(Path(v).name) for k, v in scene.band_paths.items()} == {
            k: k for k in scene.band_paths
        }
        assert len(scene.band_paths) == 6  # the UPDM bands of TM and OLI


# --------------------------------------------------------------------------------------
# The job spec: [inputs.stac_search] and [inputs] sign


def _job(tmp_path: Path, search: str, extra: str = "") -> Path:
    job = tmp_path / "job.toml"
    job.write_text(
        f"[inputs]\n{extra}\n[inputs.stac_search]\n{search}\n"
        f'[cube]\npath = "{tmp_path / "cube.icechunk"}"\n'
        '[grid]\ncrs = "EPSG:32637"\n'
        "transform = [30.0, 0.0, 589035.0, 0.0, -30.0, 756165.0]\nshape = [101, 101]\n"
    )
    return job


@pytest.mark.parametrize(
    ("search", "key", "message"),
    [
        ('collections = ["x"]', "inputs.stac_search.url", "is required"),
        ('url = "ftp://x"', "inputs.stac_search.url", "expected the http:// or https:// URL"),
        ('url = "http://x"\nbbox = [1, 2, 3]', "inputs.stac_search.bbox", "got [1, 2, 3]"),
        ('url = "http://x"\nbbox = [0, 50, 1, 40]', "inputs.stac_search.bbox", "lat_min <="),
        (
            'url = "http://x"\nbbox = [0, 0, 1, 1]\nintersects = { type = "Point", '
            "coordinates = [0, 0] }",
            "inputs.stac_search",
            "either bbox or intersects, not both",
        ),
        ('url = "http://x"\nintersects = { type = "Blob" }', "inputs.stac_search.intersects",
         "expected a GeoJSON geometry"),
        ('url = "http://x"\ndatetime = "2000-13-01"', "inputs.stac_search.datetime",
         "expected an RFC 3339 date-time or interval"),
        ('url = "http://x"\nfilter = { args = [] }', "inputs.stac_search.filter",
         "expected a CQL2-JSON expression"),
        ('url = "http://x"\nquery = { "eo:cloud_cover" = 3 }', "inputs.stac_search.query",
         "expected property = { operator = value } tables"),
        ('url = "http://x"\nmax_items = 0', "inputs.stac_search.max_items",
         "expected a positive integer, got 0"),
        ('url = "http://x"\nlimt = 3', "inputs.stac_search.limt",
         "unknown key; expected one of url"),
        ('url = "http://x"\ncollections = "landsat"', "inputs.stac_search.collections",
         "expected list, got 'landsat'"),
    ],
)  # fmt: skip
def test_bad_stac_search_tables_are_refused_naming_the_key(tmp_path, search, key, message):
    job = _job(tmp_path, search)
    with pytest.raises(JobSpecError) as caught:
        load_job_spec(job)
    assert str(caught.value).startswith(f"{job}: [{key}] ")
    assert message in str(caught.value)


def test_a_bad_signing_hook_is_refused_before_the_job_starts(tmp_path):
    for value, message in (
        ("nomodule", "expected \"module:function\", got 'nomodule'"),
        ("no_such_signer_module:sign", "cannot import the signing module"),
        ("json:no_such_function", "module 'json' has no function 'no_such_function'"),
    ):
        job = _job(tmp_path, 'url = "http://x"', f'sign = "{value}"')
        with pytest.raises(JobSpecError) as caught:
            load_job_spec(job)
        assert str(caught.value).startswith(f"{job}: [inputs.sign] ")
        assert message in str(caught.value)


def test_the_search_table_is_part_of_the_spec_and_its_id(tmp_path):
    search = (
        'url = "http://127.0.0.1:9/"\ncollections = ["landsat-l1"]\n'
        f"bbox = {ETHIOPIA_BBOX}\n"
        'filter = { op = "<>", args = [{ property = "platform" }, "landsat-7"] }\n'
    )
    spec = load_job_spec(_job(tmp_path, search))
    assert spec.stac_search["url"] == "http://127.0.0.1:9/"
    assert spec.stac_search["filter"]["args"][1] == "landsat-7"
    other = load_job_spec(_job(tmp_path, search.replace("landsat-7", "landsat-5")))
    assert spec.job_id != other.job_id


@pytest.mark.slow
def test_updm_run_searches_a_stac_api_and_only_the_matching_scenes_land(
    landsat, stac_api, signer, tmp_path, capsys
):
    from updm_dask.cli import main
    from updm_dask.cube import open_cube

    # Each condition removes scenes the others keep: collections the Para scene, bbox the
    # Marburg ones, datetime the TM scene of 2000, the CQL2 filter the ETM+ scene of 2017.
    search = (
        f'url = "{stac_api}"\ncollections = ["landsat-l1"]\nbbox = {ETHIOPIA_BBOX}\n'
        'datetime = "2005-01-01T00:00:00Z/.."\n'
        'filter = { op = "<>", args = [{ property = "platform" }, "landsat-7"] }\n'
        "limit = 1\n"
    )
    job = _job(tmp_path, search, f'sign = "{signer}"')
    assert main(["run", str(job), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "2 found, 2 processed" in out and "0 failed" in out
    expected = {
        _scene_id(landsat / "ethiopia-167055" / "LT51670552010352MLK00"),
        _scene_id(landsat / "ethiopia-167055" / "LC08_L1TP_167055_20170308_20170317_01_T1"),
    }
    assert open_cube(tmp_path / "cube.icechunk").scene_ids() == expected


# --------------------------------------------------------------------------------------
# Requester-pays S3 buckets


@pytest.fixture(scope="module")
def requester_pays_s3() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1, refusing requests without the requester-pays header."""
    import logging

    from moto.moto_server import threaded_moto_server as tms

    def refuse_unless_requester_pays(app):
        def wsgi(environ, start_response):
            if environ.get("HTTP_X_AMZ_REQUEST_PAYER", "").lower() != "requester":
                body = (
                    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
                    b"<Message>Access Denied</Message></Error>"
                )
                start_response(
                    "403 Forbidden",
                    [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
                )
                return [body]
            return app(environ, start_response)

        return wsgi

    class RequesterPaysServer(tms.ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = refuse_unless_requester_pays(
                tms.DomainDispatcherApplication(tms.create_backend_app)
            )
            self._server = tms.make_server(
                self._ip_address, self._port, app, True, request_handler=tms.MotoRequestHandler
            )
            self._server_ready_event.set()
            self._server.serve_forever()

    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.ERROR)
    server = RequesterPaysServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"{host}:{port}"
    finally:
        server.stop()
        werkzeug.setLevel(level)


@pytest.mark.slow
def test_requester_pays_buckets_are_read_with_the_header(landsat, requester_pays_s3, monkeypatch):
    import boto3

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing-key",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        # GDAL's /vsis3/ settings for a plain-HTTP, path-style S3 server.
        "AWS_S3_ENDPOINT": requester_pays_s3,
        "AWS_HTTPS": "NO",
        "AWS_VIRTUAL_HOSTING": "FALSE",
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_REQUEST_PAYER", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    s3 = boto3.client("s3", endpoint_url=f"http://{requester_pays_s3}", region_name="us-east-1")
    bucket = "updm-requester-pays"

    def pay(request, **_):
        request.headers["x-amz-request-payer"] = "requester"  # the test's own uploads pay too

    s3.meta.events.register("before-sign.s3", pay)
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_request_payment(Bucket=bucket, RequestPaymentConfiguration={"Payer": "Requester"})
    folder = landsat / "para-224063-1988"
    # Two copies: GDAL caches what it read (and what it failed to) per URL.
    for prefix in ("refused", "paid"):
        for path in folder.iterdir():
            if path.suffix.upper() == ".TIF":
                s3.put_object(Bucket=bucket, Key=f"{prefix}/{path.name}", Body=path.read_bytes())

    def scene(prefix: str):
        def href(path: Path) -> str:
            if path.suffix.upper() == ".TIF":
                return f"s3://{bucket}/{prefix}/{path.name}"
            return str(path)  # the metadata stays local, under the roots

        [found] = discover_stac(_item(folder, "para", href), roots=[landsat]).scenes
        assert (
            found.band_paths["1"] == f"/vsis3/{bucket}/{prefix}/" + Path(found.band_paths["1"]).name
        )
        return found

    local = open_scene(folder, chunks=512)["dn"].values
    with dask.config.set({"updm.io.requester-pays": False, "updm.io.retries": 0}):
        with pytest.raises(SceneError, match=r"cannot open band 1 file .*: AccessDenied"):
            open_scene(scene("refused"), chunks=512)["dn"].values  # noqa: B018
    with dask.config.set({"updm.io.requester-pays": True}):
        paid = open_scene(scene("paid"), chunks=512)["dn"].values
    np.testing.assert_array_equal(paid, local)


def test_aws_request_payer_in_the_environment_asks_the_same(monkeypatch):
    from updm_dask.scenes import _locations as loc
    from updm_dask.scenes._remote import storage_options

    monkeypatch.delenv("AWS_REQUEST_PAYER", raising=False)
    with dask.config.set({"updm.io.requester-pays": False}):
        assert "AWS_REQUEST_PAYER" not in loc.gdal_env("/vsis3/b/k.TIF")
        assert storage_options("s3://b/k_MTL.txt") == {}
        monkeypatch.setenv("AWS_REQUEST_PAYER", "requester")
        assert loc.gdal_env("/vsis3/b/k.TIF")["AWS_REQUEST_PAYER"] == "requester"
        assert storage_options("s3://b/k_MTL.txt") == {"requester_pays": True}
        # Only S3 reads ask for it.
        assert "AWS_REQUEST_PAYER" not in loc.gdal_env("/vsicurl/https://h/k.TIF")


def test_an_unreachable_stac_api_is_one_line_naming_it_and_the_search_keys():
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/"
        with (
            dask.config.set({"updm.io.retries": 0}),
            pytest.raises(SceneError) as caught,
        ):
            discover_stac(url, search={"bbox": [0, 0, 1, 1], "filter": {"op": "=", "args": []}})
    assert str(caught.value) == (
        f"STAC API {url}: search (bbox, filter) failed: the connection failed "
        "(ConnectionRefusedError); 1 attempt (updm.io.retries = 0)"
    )


def test_the_json_schema_and_the_docs_table_know_the_search_table(tmp_path):
    import tomllib

    jsonschema = pytest.importorskip("jsonschema")
    from updm_dask.jobs.keys import STAC_SEARCH_KEYS, format_stac_search_keys, job_spec_schema

    schema = job_spec_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    search = schema["properties"]["inputs"]["properties"]["stac_search"]
    assert list(search["properties"]) == [k.key for k in STAC_SEARCH_KEYS]
    job = _job(
        tmp_path,
        f'url = "http://127.0.0.1:9/"\nbbox = {ETHIOPIA_BBOX}\n'
        'filter = { op = "<>", args = [{ property = "platform" }, "landsat-7"] }\n',
        'sign = "json:dumps"',
    )
    good = tomllib.loads(job.read_text())
    load_job_spec(job)  # the validator takes it ...
    jsonschema.validate(good, schema)  # ... and so does the schema
    for bad in (
        {"url": "http://x", "bbox": [0, 0, 1, 1], "intersects": {"type": "Point"}},
        {"bbox": [0, 0, 1, 1]},
        {"url": "http://x", "max_items": 0},
        {"url": "http://x", "limt": 3},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**good, "inputs": {"stac_search": bad}}, schema)
    jsonschema.validate({**good, "inputs": {"stac_search": {"url": "http://x"}}}, schema)
    table = format_stac_search_keys().splitlines()
    assert len(table) == 2 + len(STAC_SEARCH_KEYS)
    assert table[2].startswith("| url | str | yes |")
