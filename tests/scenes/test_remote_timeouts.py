"""Nothing remote hangs a job: timeouts and retries of every remote read (``updm.io.*``).

The servers are real sockets on 127.0.0.1 started here: a "black hole" that accepts every
connection and never answers (the server of the issue that held jobs for 10+ minutes),
and a plain HTTP server that answers 503 to the first request for each file and serves it
the second time. Every server lives a bounded time and stops by itself, so a test that
regresses fails instead of hanging for ever.
"""

from __future__ import annotations

import functools
import http.server
import re
import socket
import threading
import time
from pathlib import Path

import dask.config
import pystac
import pytest

from updm_dask.errors import SceneError
from updm_dask.jobs.run import run_job_file
from updm_dask.metadata import read_mtl
from updm_dask.scenes import _locations as loc
from updm_dask.scenes import discover_stac

# Small timeouts, one retry: a read of the black hole fails in about two seconds.
FAST = {
    "updm.io.timeout": 1,
    "updm.io.connect-timeout": 1,
    "updm.io.retries": 1,
    "updm.io.retry-delay": 0.1,
}
# How long the black hole lives: well above what the whole job takes with FAST settings,
# well below the minutes every request took without them (a regression fails, not hangs).
HOLE_LIFE = 120.0
# Collection-2 STAC asset keys by band number (as tests/scenes/test_stac.py spells them).
TM_KEYS = {"1": "blue", "2": "green", "3": "red", "4": "nir08", "5": "swir16", "7": "swir22"}
OLI_KEYS = {
    "1": "coastal", "2": "blue", "3": "green", "4": "red", "5": "nir08", "6": "swir16",
    "7": "swir22",
}  # fmt: skip


class BlackHole:
    """A TCP server on 127.0.0.1 that accepts connections and never sends a byte.

    Lives at most ``life`` seconds (then closes every connection and its socket); counts
    the connections it accepted.
    """

    def __init__(self, life: float = HOLE_LIFE) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._deadline = time.monotonic() + life
        self._thread = threading.Thread(target=self._serve, name="black-hole", daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def _serve(self) -> None:
        while time.monotonic() < self._deadline:
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            self.accepted += 1
            self._held.append(conn)  # held open, never read from, never answered
        for conn in self._held:
            conn.close()
        self._sock.close()

    def stop(self) -> None:
        self._deadline = 0.0
        self._thread.join(timeout=5)


@pytest.fixture
def hole():
    server = BlackHole()
    try:
        yield server
    finally:
        server.stop()


class _FlakyHandler(http.server.SimpleHTTPRequestHandler):
    """Static files; the first GET of every path is answered 503 Service Unavailable."""

    seen: dict[str, int]

    def log_message(self, *args):
        pass

    def do_GET(self):
        count = self.seen.get(self.path, 0) + 1
        self.seen[self.path] = count
        if count == 1:
            self.send_error(503, "try again")
            return
        super().do_GET()


@pytest.fixture
def flaky(tmp_path):
    seen: dict[str, int] = {}
    handler = functools.partial(
        type("Flaky", (_FlakyHandler,), {"seen": seen}), directory=str(tmp_path)
    )
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.timeout = 1
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def ethiopia(shared_data) -> Path:
    return shared_data / "landsat" / "ethiopia-167055"


def _item(folder: Path, href=str, mtl_href=None) -> pystac.Item:
    """A Collection-2 style STAC Item for a real scene folder."""
    mtl = next(folder.glob("*_MTL.txt"))
    md = read_mtl(str(mtl))
    keys = OLI_KEYS if md.sensor in ("OLI", "OLI-2") else TM_KEYS
    item = pystac.Item(
        id=md.product_id or md.scene_id, geometry=None, bbox=None, datetime=md.acquired,
        properties={},
    )  # fmt: skip
    item.add_asset("MTL.txt", pystac.Asset(href=(mtl_href or str)(mtl), roles=["metadata"]))
    for path in sorted(folder.iterdir()):
        match = re.search(r"_B(\d+)\.TIF$", path.name, re.IGNORECASE)
        number = match.group(1) if match else None
        if number in keys:
            item.add_asset(keys[number], pystac.Asset(href=href(path), roles=["data"]))
    return item


def _job(tmp_path: Path, *, paths=(), stac=(), allow_roots=()) -> Path:
    def strings(values):
        return "[" + ", ".join(f'"{v}"' for v in values) + "]"

    job = tmp_path / "job.toml"
    job.write_text(
        f'[job]\nname = "remote"\n[inputs]\npaths = {strings(paths)}\nstac = {strings(stac)}\n'
        f"allow_roots = {strings(allow_roots)}\n"
        f'[cube]\npath = "{tmp_path / "cube.icechunk"}"\n'
        '[grid]\ncrs = "EPSG:32637"\n'
        "transform = [30.0, 0.0, 589035.0, 0.0, -30.0, 756165.0]\nshape = [101, 101]\n"
        "[batch]\nsize = 4\n"
    )
    return job


# --------------------------------------------------------------------------------------
# A job with scenes behind a server that never answers


@pytest.mark.slow
def test_scenes_behind_a_silent_server_fail_with_the_reason_and_the_job_goes_on(
    ethiopia, tmp_path, hole, client
):
    oli = ethiopia / "LC08_L1TP_167055_20170308_20170317_01_T1"
    etm = ethiopia / "LE07_L1TP_167055_20170316_20170411_01_T1"
    tm = ethiopia / "LT05_L1TP_167055_20000309_20161214_01_T1"
    good = _item(oli)
    # The MTL asset is on the silent server: discovery cannot read it.
    silent_mtl = _item(etm, mtl_href=lambda p: hole.url(p.name))
    # The MTL is here, the band rasters are on the silent server: GDAL cannot open them.
    silent_bands = _item(tm, href=lambda p: hole.url(p.name))
    catalogue = tmp_path / "items.json"
    pystac.ItemCollection([good, silent_mtl, silent_bands]).save_object(dest_href=str(catalogue))
    # A scene given by URL in inputs.paths, on the silent server too.
    scene_url = hole.url("LT51670552010352MLK00/LT51670552010352MLK00_MTL.txt")
    # the catalogue in tmp_path names scenes of the shared data: a root the job must allow
    job = _job(tmp_path, paths=[scene_url], stac=[catalogue], allow_roots=[ethiopia])

    started = time.monotonic()
    with dask.config.set(FAST):
        report = run_job_file(job, client=client, progress=False, echo=lambda _: None)
    elapsed = time.monotonic() - started

    assert elapsed < HOLE_LIFE / 2  # finished on its own, long before the server gave up
    assert hole.accepted >= 4  # every read was really sent to it (and retried)
    assert report.exit_code == 1
    assert report.done == [read_mtl(str(next(oli.glob("*_MTL.txt")))).scene_id]
    failed = {f.scene: f for f in report.failed}
    assert len(failed) == 3, report.format()
    by_mtl = failed[f"STAC item {silent_mtl.id}"]
    assert by_mtl.stage == "discover"
    assert hole.url(next(etm.glob("*_MTL.txt")).name) in by_mtl.reason
    assert "timed out after 1 s (updm.io.timeout); 2 attempts" in by_mtl.reason
    by_url = failed[scene_url]
    assert by_url.stage == "discover"
    assert "timed out after 1 s (updm.io.timeout)" in by_url.reason
    by_bands = failed[read_mtl(str(next(tm.glob("*_MTL.txt")))).scene_id]
    assert by_bands.stage == "open"
    assert "timed out after" in by_bands.reason and hole.url("") in by_bands.reason
    assert "timed out after 1 s" in report.format()


@pytest.mark.slow
def test_a_stac_source_on_a_silent_server_is_a_clear_error(tmp_path, hole, client):
    catalogue = hole.url("catalogue/items.json")
    with dask.config.set(FAST):
        started = time.monotonic()
        with pytest.raises(SceneError) as raised:
            discover_stac(catalogue)
        assert time.monotonic() - started < HOLE_LIFE / 2
        message = str(raised.value)
        assert message.startswith(catalogue)
        assert "timed out after 1 s (updm.io.timeout); 2 attempts (updm.io.retries = 1)" in (
            message
        )
        assert "no such STAC file" not in message  # not answering is not "not found"

        # The same URL as a job's STAC input stops the job with that message.
        job = _job(tmp_path, stac=[catalogue])
        with pytest.raises(SceneError, match=r"items\.json: looking it up failed: no answer"):
            run_job_file(job, client=client, progress=False, echo=lambda _: None)

        # A STAC API search (pystac-client over requests) times out the same way.
        with pytest.raises(SceneError, match=r"STAC API .*timed out after 1 s"):
            discover_stac(hole.url("api/"), search={"collections": ["landsat-c2-l1"]})


def test_gdal_reads_of_remote_rasters_get_the_timeouts_and_retries():
    settings = {
        "updm.io.timeout": 7.5,
        "updm.io.connect-timeout": 2,
        "updm.io.retries": 4,
        "updm.io.retry-delay": 0.25,
    }
    with dask.config.set(settings):
        env = loc.gdal_env("/vsicurl/https://example.invalid/x_B1.TIF")
        in_tar = loc.gdal_env("/vsitar//vsis3/bucket/scene.tar.gz/x_B1.TIF")
        local = loc.gdal_env("/data/x_B1.TIF")
    expected = {
        "GDAL_HTTP_TIMEOUT": "7.5",
        "GDAL_HTTP_CONNECTTIMEOUT": "2",
        "GDAL_HTTP_MAX_RETRY": "4",
        "GDAL_HTTP_RETRY_DELAY": "0.25",
    }
    assert {k: env[k] for k in expected} == expected
    assert {k: in_tar[k] for k in expected} == expected
    assert not set(expected) & set(local)


# --------------------------------------------------------------------------------------
# Retries: a server that fails once, then answers


def test_a_read_that_fails_once_is_retried_and_succeeds(ethiopia, tmp_path, flaky):
    url, seen = flaky
    folder = ethiopia / "LT51670552010352MLK00"
    mtl = folder / "LT51670552010352MLK00_MTL.txt"
    (tmp_path / mtl.name).write_bytes(mtl.read_bytes())
    # The MTL asset is served by the flaky server, the bands are local files.
    item = _item(folder, mtl_href=lambda p: f"{url}/{p.name}")
    with dask.config.set({**FAST, "updm.io.retries": 2}):
        found = discover_stac([item])
    assert found.problems == []
    [scene] = found.scenes
    assert scene.scene_id == read_mtl(str(mtl)).scene_id
    assert seen[f"/{mtl.name}"] == 2  # the 503 was answered by trying again, once

    # Without retries the same 503 is the reason the item failed, said as such.
    seen.clear()
    with dask.config.set({**FAST, "updm.io.retries": 0}):
        found = discover_stac([item])
    assert found.scenes == []
    [(where, reason)] = found.problems
    assert where == f"STAC item {item.id}"
    assert reason == (
        f"{url}/{mtl.name}: reading failed: the server answered HTTP 503; 1 attempt "
        "(updm.io.retries = 0)"
    )
