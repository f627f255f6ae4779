"""Property tests (hypothesis) of the STAC reader on mutations of a real ItemCollection.

Issue 14, "Property tests": an ItemCollection is written here over copies of the real scenes
(asset keys as in Landsat Collection-2 STAC; hrefs relative, absolute, ``file://`` or
``http://127.0.0.1`` to a server this module runs), then mutated: values replaced by random
JSON, keys dropped or added, hrefs pointed at missing, special or garbage files, bytes of
the file changed. :func:`~updm_dask.scenes.discover_stac` either returns a Discovery whose
every problem has a message, or raises :class:`~updm_dask.errors.SceneError` naming the
file; nothing else escapes, nothing hangs, and no message repeats a secret planted in the
catalogue's non-identifying fields.

No mutation reaches the network: drawn strings hold no ``/`` or ``:`` (so they cannot form
a URL or leave the catalogue's folder), every URL drawn is one of this module's, and a
guard fails the test on any connection (or name lookup) other than 127.0.0.1.
"""

from __future__ import annotations

import copy
import functools
import http.server
import json
import os
import re
import shutil
import socket
import threading
from pathlib import Path

import pytest
from _fuzz import (
    CI_EXAMPLES,
    COMMON_TOKENS,
    SECRET,
    SLOW_EXAMPLES,
    check_error,
    check_no_secret,
    fuzz_settings,
    mutate,
    watchdog,
)
from hypothesis import given
from hypothesis import strategies as st

from updm_dask.errors import SceneError, UpdmError
from updm_dask.metadata import read_mtl
from updm_dask.scenes import SceneSource, discover_stac

DIR_SCENES = (
    "ethiopia-167055/LT05_L1TP_167055_20000309_20161214_01_T1",
    "ethiopia-167055/LT51670552010352MLK00",
    "ethiopia-167055/LE07_L1TP_167055_20170316_20170411_01_T1",
    "ethiopia-167055/LC08_L1TP_167055_20170308_20170317_01_T1",
    "marburg-195025/LE07_L1TP_195025_20010730_20170204_01_T1",
    "marburg-195025/LC08_L1TP_195025_20130707_20170503_01_T1",
    "para-224063-1988",
)
# Landsat Collection-2 STAC asset keys by band number.
TM_KEYS = {"1": "blue", "2": "green", "3": "red", "4": "nir08", "5": "swir16", "7": "swir22"}
OLI_KEYS = {
    "1": "coastal", "2": "blue", "3": "green", "4": "red", "5": "nir08", "6": "swir16",
    "7": "swir22",
}  # fmt: skip
HREF_STYLES = ("relative", "absolute", "file", "http")
_BAND_RE = re.compile(r"_B(\d+)\.TIF$", re.IGNORECASE)


# --------------------------------------------------------------------------------------
# No network but 127.0.0.1
class _NetworkGuard:
    """Refuses (and records) every connection and name lookup that is not 127.0.0.1."""

    _LOCAL = frozenset({"127.0.0.1", "::1", "localhost"})

    def __init__(self) -> None:
        self.refused: list[str] = []
        self._saved = (socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo)

    def _check(self, host) -> None:
        if host not in self._LOCAL:
            self.refused.append(str(host))
            raise ConnectionRefusedError(f"the fuzz test allows 127.0.0.1 only, not {host}")

    def __enter__(self) -> _NetworkGuard:
        connect, connect_ex, getaddrinfo = self._saved
        guard = self

        def guarded_connect(sock, address):
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                guard._check(address[0])
            return connect(sock, address)

        def guarded_connect_ex(sock, address):
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                guard._check(address[0])
            return connect_ex(sock, address)

        def guarded_getaddrinfo(host, *args, **kwargs):
            guard._check(host.decode() if isinstance(host, bytes) else host)
            return getaddrinfo(host, *args, **kwargs)

        socket.socket.connect = guarded_connect
        socket.socket.connect_ex = guarded_connect_ex
        socket.getaddrinfo = guarded_getaddrinfo
        return self

    def __exit__(self, *exc) -> None:
        socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = self._saved


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass


# --------------------------------------------------------------------------------------
# The real catalogue
def _item(folder: Path, href) -> dict:
    """A STAC Item (as JSON) for a scene folder, keyed like Collection-2 items."""
    mtl = next(folder.glob("*_MTL.txt"))
    md = read_mtl(mtl)
    keys = OLI_KEYS if md.sensor in ("OLI", "OLI-2") else TM_KEYS
    assets = {"MTL.txt": {"href": href(mtl), "roles": ["metadata"], "title": "Metadata"}}
    for path in sorted(folder.iterdir()):
        match = _BAND_RE.search(path.name)
        if path.name.upper().endswith("_BQA.TIF"):
            assets["qa_pixel"] = {"href": href(path), "roles": ["cloud"]}
        elif match and match.group(1) in keys:
            assets[keys[match.group(1)]] = {
                "href": href(path),
                "type": "image/tiff; application=geotiff",
                "roles": ["data"],
                "eo:bands": [{"name": f"B{match.group(1)}"}],
            }
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [],
        "id": md.product_id or md.scene_id,
        "geometry": None,
        "properties": {"datetime": md.acquired.isoformat(), "platform": md.platform.lower()},
        "links": [],
        "assets": assets,
    }


class Catalogue:
    """The scene copies, the server, and the real ItemCollection in each href style."""

    def __init__(self, root: Path, url: str) -> None:
        self.root = root
        self.url = url
        self.target = root / "catalogue.json"
        folders = sorted(p for p in (root / "scenes").iterdir())
        hrefs = {
            "relative": lambda p: os.path.relpath(p, root),
            "absolute": str,
            "file": lambda p: Path(p).as_uri(),
            "http": lambda p: f"{url}/{Path(p).relative_to(root).as_posix()}",
        }
        self.docs = {
            style: {"type": "FeatureCollection", "features": [_item(f, href) for f in folders]}
            for style, href in hrefs.items()
        }
        # Where a mutated href may point: real files in each style, and files that are not
        # what they claim (missing, a folder, a FIFO, garbage, a 404, a closed port).
        features = [f for doc in self.docs.values() for f in doc["features"]]
        pool = sorted({asset["href"] for f in features for asset in f["assets"].values()})
        with socket.socket() as probe:  # a port nothing listens on
            probe.bind(("127.0.0.1", 0))
            closed = probe.getsockname()[1]
        pool += [
            "", ".", "..", "missing_MTL.txt", "folder_MTL.txt", "fifo_MTL.txt",
            "garbage_MTL.txt", str(root / "fifo_MTL.txt"), (root / "garbage_MTL.txt").as_uri(),
            f"{url}/missing_MTL.txt", f"{url}/garbage_MTL.txt", f"{url}/",
            f"http://127.0.0.1:{closed}/x_MTL.txt", f"https://127.0.0.1:{closed}/x_MTL.txt",
            "memory://nothing/x_MTL.txt", "nosuchscheme://x_MTL.txt", "nul\0_MTL.txt",
        ]  # fmt: skip
        self.hrefs = tuple(pool)
        self.names = tuple(sorted(self.docs))

    def __repr__(self) -> str:  # a failing example prints this, not the whole catalogue
        return f"<real ItemCollection of {len(self.docs['absolute']['features'])} scenes>"

    def write(self, content: dict | bytes) -> Path:
        data = content if isinstance(content, bytes) else json.dumps(content).encode()
        self.target.write_bytes(data)
        return self.target


@pytest.fixture(scope="module")
def catalogue(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz_stac")
    for rel in DIR_SCENES:
        shutil.copytree(shared_data / "landsat" / rel, root / "scenes" / Path(rel).name)
    (root / "folder_MTL.txt").mkdir()
    os.mkfifo(root / "fifo_MTL.txt")
    (root / "garbage_MTL.txt").write_bytes(b"GROUP = L1_METADATA_FILE\n\xff\xfe garbage\n")
    handler = functools.partial(_Quiet, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    guard = _NetworkGuard()
    try:
        with guard:
            cat = Catalogue(root, f"http://127.0.0.1:{httpd.server_address[1]}")
            # Warm-up: the first example must not pay for starting the HTTP client.
            discover_stac(cat.write(cat.docs["http"]))
            yield cat, guard
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def _discover(catalogue, guard, content: dict | bytes) -> None:
    """discover_stac on ``content``: a Discovery with messages, or a SceneError."""
    target = catalogue.write(content)
    with watchdog():
        try:
            found = discover_stac(target)
        except UpdmError as exc:
            check_error(exc, str(target))
            assert isinstance(exc, SceneError), type(exc).__name__
        else:
            for label, message in found.problems:
                assert isinstance(label, str) and label
                assert isinstance(message, str) and message.strip()
            assert all(isinstance(scene, SceneSource) for scene in found.scenes)
    assert guard.refused == [], f"a connection outside 127.0.0.1 was attempted: {guard.refused}"


@pytest.mark.parametrize("style", HREF_STYLES)
def test_the_real_catalogue_finds_every_scene_in_each_href_style(catalogue, style):
    # The start of every mutation below: it must be valid as written.
    cat, guard = catalogue
    found = discover_stac(cat.write(cat.docs[style]))
    assert found.problems == []
    assert len(found.scenes) == len(DIR_SCENES)
    assert guard.refused == []


# --------------------------------------------------------------------------------------
# Mutations of the catalogue's structure
_TEXT = st.text(
    st.characters(blacklist_characters="/\\:", blacklist_categories=("Cs",)), max_size=10
)
_JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(10**400), 10**400),
    st.floats(),
    _TEXT,
    # Long runs that made patterns backtrack (a band name, a number); no "/" or ":" either.
    st.sampled_from(["B" + "0" * 100_000 + "x", "9" * 100_000 + "x"]),
)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=8,
)


def _places(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _places(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _places(value, (*prefix, i))


def _mutated_doc(data: st.DataObject, cat: Catalogue) -> dict:
    style = data.draw(st.sampled_from(cat.names), label="href style")
    doc = copy.deepcopy(cat.docs[style])
    features = doc["features"]
    picked = data.draw(st.lists(st.integers(0, len(features) - 1), max_size=3), label="features")
    doc["features"] = [copy.deepcopy(features[i]) for i in picked]
    for _ in range(data.draw(st.integers(1, 5), label="mutations")):
        place = data.draw(st.sampled_from(list(_places(doc))), label="place")
        what = data.draw(st.sampled_from(("replace", "delete", "href", "add")), label="what")
        if not place:
            if what == "replace":
                doc = data.draw(_JSON, label="document")
            continue
        parent = doc
        for key in place[:-1]:
            parent = parent[key]
        last = place[-1]
        if what == "replace":
            parent[last] = data.draw(_JSON, label="value")
        elif what == "delete":
            del parent[last]
        elif what == "href":
            parent[last] = data.draw(st.sampled_from(cat.hrefs), label="href")
        elif isinstance(parent[last], dict):
            parent[last][data.draw(_TEXT, label="key")] = data.draw(_JSON, label="value")
    return doc


@fuzz_settings(CI_EXAMPLES)
@given(data=st.data())
def test_mutated_item_collections_give_problems_or_scene_error(catalogue, data):
    cat, guard = catalogue
    _discover(cat, guard, _mutated_doc(data, cat))


@pytest.mark.slow
@fuzz_settings(SLOW_EXAMPLES)
@given(data=st.data())
def test_mutated_item_collections_give_problems_or_scene_error_long(catalogue, data):
    cat, guard = catalogue
    _discover(cat, guard, _mutated_doc(data, cat))


# Bytes of the file (local hrefs only: a changed byte cannot turn one into a URL)
_TOKENS = (*COMMON_TOKENS, b"[", b"{", b"]", b"}", b'{"a": ', b"null", b"true", b"-1e999")


def _mutated_bytes(data: st.DataObject, cat: Catalogue) -> bytes:
    style = data.draw(st.sampled_from(("relative", "absolute")), label="href style")
    return mutate(data, json.dumps(cat.docs[style], indent=1).encode(), _TOKENS)


@fuzz_settings(CI_EXAMPLES)
@given(data=st.data())
def test_mutated_catalogue_bytes_give_problems_or_scene_error(catalogue, data):
    cat, guard = catalogue
    _discover(cat, guard, _mutated_bytes(data, cat))


@pytest.mark.slow
@fuzz_settings(SLOW_EXAMPLES)
@given(data=st.data())
def test_mutated_catalogue_bytes_give_problems_or_scene_error_long(catalogue, data):
    cat, guard = catalogue
    _discover(cat, guard, _mutated_bytes(data, cat))


@fuzz_settings(CI_EXAMPLES)
@given(
    content=st.one_of(
        _JSON.map(lambda value: json.dumps(value).encode()),
        st.fixed_dictionaries(
            {"type": st.sampled_from(["Feature", "FeatureCollection"])},
            optional={"features": _JSON, "assets": _JSON, "id": _JSON, "properties": _JSON},
        ).map(lambda value: json.dumps(value).encode()),
        st.binary(max_size=1000),
    )
)
def test_random_json_and_bytes_give_problems_or_scene_error(catalogue, content):
    cat, guard = catalogue
    _discover(cat, guard, content)


# --------------------------------------------------------------------------------------
# A secret in a field that names nothing (not an id, key or href) is never repeated.
def _with_secret(data: st.DataObject, cat: Catalogue) -> dict:
    doc = copy.deepcopy(cat.docs[data.draw(st.sampled_from(cat.names), label="href style")])
    for _ in range(data.draw(st.integers(1, 3), label="secrets")):
        item = doc["features"][data.draw(st.integers(0, len(doc["features"]) - 1), label="item")]
        asset = item["assets"][data.draw(st.sampled_from(sorted(item["assets"])), label="asset")]
        where = data.draw(
            st.sampled_from(
                ("collection type", "type", "stac_version", "datetime", "platform", "extension",
                 "link", "title", "media type", "roles", "common name")
            ),
            label="where",
        )  # fmt: skip
        if where == "collection type":
            doc["type"] = SECRET
        elif where in ("type", "stac_version"):
            item[where] = SECRET
        elif where in ("datetime", "platform"):
            item["properties"][where] = SECRET
        elif where == "extension":
            item["stac_extensions"] = [SECRET]
        elif where == "link":
            item["links"] = [{"rel": SECRET, "href": "x.json"}]
        elif where == "title":
            asset["title"] = SECRET
        elif where == "media type":
            asset["type"] = SECRET
        elif where == "roles":
            asset["roles"] = [SECRET]
        else:
            asset["eo:bands"] = [{"name": "B9", "common_name": SECRET}]
    return doc


@fuzz_settings(CI_EXAMPLES)
@given(data=st.data())
def test_no_message_repeats_a_secret_planted_in_the_catalogue(catalogue, data):
    cat, guard = catalogue
    target = cat.write(_with_secret(data, cat))
    with watchdog():
        try:
            found = discover_stac(target)
        except UpdmError as exc:
            check_error(exc, str(target))
            check_no_secret(exc)
        else:
            for _, message in found.problems:
                assert SECRET not in message, message
    assert guard.refused == []


# ======================================================================================
# What fuzzing found, kept as plain tests on the real catalogue.
def test_found_by_fuzzing_a_catalogue_nested_thousands_deep_is_a_scene_error(catalogue):
    # json.load recursed once per nested array and raised RecursionError.
    cat, _ = catalogue
    text = json.dumps(cat.docs["absolute"])
    deep = text.replace('"links": []', '"links": ' + "[" * 3000 + "]" * 3000, 1)
    assert deep != text
    with watchdog(), pytest.raises(SceneError, match="not a STAC JSON file") as caught:
        discover_stac(cat.write(deep.encode()))
    check_error(caught.value, str(cat.target))


def test_found_by_fuzzing_the_type_of_a_catalogue_is_not_echoed(catalogue):
    # "its type is 'SECRET_TOKEN_6f1c'": the value of the file, repeated. Known STAC types
    # are still named (a Catalog is not an ItemCollection).
    cat, _ = catalogue
    doc = {**cat.docs["absolute"], "type": SECRET}
    with pytest.raises(
        SceneError, match=r"Feature .* or FeatureCollection .*missing or no STAC type"
    ) as caught:
        discover_stac(cat.write(doc))
    check_no_secret(caught.value)
    with pytest.raises(SceneError, match="'Catalog'"):
        discover_stac(cat.write({"type": "Catalog", "id": "x", "links": []}))


@pytest.mark.parametrize("char", ["\0", "\ud800"])
def test_found_by_fuzzing_an_mtl_href_with_a_nul_or_surrogate_is_a_problem_of_its_item(
    catalogue, char
):
    # "\u0000" or "\ud800" in the JSON: open() raised ValueError (embedded null byte) or
    # UnicodeEncodeError out of discover_stac.
    cat, _ = catalogue
    doc = copy.deepcopy(cat.docs["absolute"])
    mtl = doc["features"][0]["assets"]["MTL.txt"]
    mtl["href"] = mtl["href"].replace("_MTL", f"{char}_MTL")
    found = discover_stac(cat.write(doc))
    assert len(found.scenes) == len(DIR_SCENES) - 1
    [(label, message)] = found.problems
    assert doc["features"][0]["id"] in label and "not a possible file name" in message


def test_found_by_fuzzing_a_band_name_of_100000_zeros_does_not_hang(catalogue):
    # "B0*(\d+)" gave the zeros to either part: minutes per eo:bands name, per band.
    cat, _ = catalogue
    doc = copy.deepcopy(cat.docs["absolute"])
    item = next(f for f in doc["features"] if "coastal" in f["assets"])  # an OLI scene
    red = item["assets"].pop("red")
    item["assets"]["other"] = {**red, "eo:bands": [{"name": "B" + "0" * 100_000 + "x"}]}
    with watchdog(10):
        found = discover_stac(cat.write(doc))
    assert len(found.scenes) == len(DIR_SCENES) - 1
    [(label, message)] = found.problems
    assert item["id"] in label and "band 4 (red)" in message


def test_an_mtl_href_to_a_fifo_is_a_problem_not_a_hang(catalogue):
    # The reader opened the FIFO and waited for a writer for ever.
    cat, _ = catalogue
    doc = copy.deepcopy(cat.docs["absolute"])
    doc["features"][0]["assets"]["MTL.txt"]["href"] = str(cat.root / "fifo_MTL.txt")
    with watchdog(10):
        found = discover_stac(cat.write(doc))
    assert len(found.scenes) == len(DIR_SCENES) - 1
    [(label, message)] = found.problems
    assert doc["features"][0]["id"] in label
    assert "fifo_MTL.txt" in message and "regular file" in message
