"""Hostile inputs for tests: FIFOs that notice being opened, a secret that must never be
shown, copies of real scene folders, and a web server that wants presigned URLs.

No tests live here; ``tests/scenes/test_input_boundaries.py`` and
``tests/jobs/test_job_inputs.py`` use it.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path

import pystac

from updm_dask.metadata import read_mtl

#: What a line of /etc/shadow looks like. Tests plant it outside the inputs, point links and
#: hrefs at it, and check that no output ever holds any of it.
SECRET = "root:$6$h2Zq8XvTs$wN0tAsAltYoU3ShouldNeverSeeThisHash:19000:0:99999:7:::"
#: Parts of SECRET specific enough that finding one in an output means it leaked.
SECRET_PARTS = ("root:$6$", "h2Zq8XvTs", "ShouldNeverSee")

#: A presigned URL's query: the signature and credential must never be shown.
SIGNATURE = "4d2f6c0b9e1a7c3d5e8f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5"
CREDENTIAL = "AKIAH2EXAMPLE%2F20240101%2Fus-east-1%2Fs3%2Faws4_request"
QUERY = (
    f"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={CREDENTIAL}&X-Amz-Signature={SIGNATURE}"
)

# Collection-2 STAC asset keys of the TM bands.
TM_KEYS = {"1": "blue", "2": "green", "3": "red", "4": "nir08", "5": "swir16", "7": "swir22"}


def copy_scene(source: Path, target: Path) -> Path:
    """A writable copy of a real scene folder (the shared files are read-only)."""
    target.mkdir(parents=True)
    for path in sorted(source.iterdir()):
        shutil.copyfile(path, target / path.name)
    return target


def mtl_of(folder: Path) -> Path:
    """The metadata file of a scene folder."""
    return next(folder.glob("*_MTL.txt"))


def tm_item(folder: Path, item_id: str, mtl_href: str) -> pystac.Item:
    """A STAC Item of a real TM scene folder, its MTL asset pointing at ``mtl_href``."""
    md = read_mtl(str(mtl_of(folder)))
    item = pystac.Item(id=item_id, geometry=None, bbox=None, datetime=md.acquired, properties={})
    item.add_asset("MTL.txt", pystac.Asset(href=mtl_href, roles=["metadata"]))
    for label, key in TM_KEYS.items():
        [band] = [p for p in folder.iterdir() if p.name.upper().endswith(f"_B{label}.TIF")]
        item.add_asset(key, pystac.Asset(href=str(band), roles=["data"]))
    return item


class FifoWatch:
    """Notices whenever someone opens one of the FIFOs for reading, and lets them go on.

    A thread tries, every 50 ms, to open each FIFO for writing without blocking: that only
    succeeds while a reader has it open. It then records the FIFO and closes it again, so
    the reader sees end-of-file instead of waiting for ever. Code that never opens a FIFO
    leaves :attr:`opened` empty; code that does cannot hang the test. The thread stops when
    the ``with`` block ends.
    """

    def __init__(self, paths: Sequence[os.PathLike | str]) -> None:
        self.paths = [os.fspath(p) for p in paths]
        self.opened: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for path in self.paths:
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
                except OSError:  # ENXIO: no reader; ENOENT: gone
                    continue
                self.opened.append(path)
                os.close(fd)
            self._stop.wait(0.05)

    def __enter__(self) -> FifoWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class _SignedFiles(http.server.SimpleHTTPRequestHandler):
    """Static files with HTTP ranges, served only to requests carrying the signature."""

    gone: frozenset[str] = frozenset()
    requests: list[str] | None = None

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _allowed(self) -> Path | None:
        url = urllib.parse.urlsplit(self.path)
        if self.requests is not None:
            self.requests.append(self.path)
        if urllib.parse.parse_qs(url.query).get("X-Amz-Signature") != [SIGNATURE]:
            self.send_error(403, "signature required")
            return None
        path = Path(self.translate_path(url.path))
        if url.path in self.gone or not path.is_file():
            self.send_error(404)
            return None
        return path

    def do_HEAD(self) -> None:
        path = self._allowed()
        if path is not None:
            self.send_response(200)
            self.send_header("Content-Length", str(path.stat().st_size))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()

    def do_GET(self) -> None:
        path = self._allowed()
        if path is None:
            return
        data = path.read_bytes()
        wanted = self.headers.get("Range")
        if wanted:
            start, _, end = wanted.replace("bytes=", "").partition("-")
            first = int(start)
            last = min(int(end) if end else len(data) - 1, len(data) - 1)
            body = data[first : last + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def signed_server(
    folder: Path, gone: Sequence[str] = (), requests: list[str] | None = None
) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 to presigned requests only (else 403).

    ``gone`` are URL paths answered 404 although signed; ``requests`` (if given) collects
    every request path. Yields the base URL; the server stops when the block ends.
    """
    handler = type("Handler", (_SignedFiles,), {"gone": frozenset(gone), "requests": requests})
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(folder))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
