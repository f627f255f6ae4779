"""What discovery and opening may read, and what their messages show.

Real scene folders from the shared data are copied to tmp_path and then made hostile: a
metadata file or band file replaced by a real FIFO or socket, a symbolic link or a STAC
href to a file outside the inputs that looks like /etc/shadow, a presigned URL on a real
web server on 127.0.0.1, a stale copy of a product, band files cut short. Expected values
(file names, sizes, grids) come from the shared data README and the files themselves.
"""

from __future__ import annotations

import json
import os
import re
import socket
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import rasterio.errors
from _hostile_inputs import (
    CREDENTIAL,
    QUERY,
    SECRET,
    SECRET_PARTS,
    SIGNATURE,
    FifoWatch,
    copy_scene,
    mtl_of,
    signed_server,
    tm_item,
)
from rasterio.transform import from_origin

from updm_dask.errors import SceneError
from updm_dask.messages import printable, redact
from updm_dask.scenes import discover_scenes, discover_stac, open_scene
from updm_dask.scenes._locations import has_glob
from updm_dask.scenes.discover import preference_reason

ETH = "ethiopia-167055"
LT05 = f"{ETH}/LT05_L1TP_167055_20000309_20161214_01_T1"
LE07 = f"{ETH}/LE07_L1TP_167055_20170316_20170411_01_T1"
LC08 = f"{ETH}/LC08_L1TP_167055_20170308_20170317_01_T1"


@pytest.fixture(scope="module")
def landsat(shared_data) -> Path:
    return shared_data / "landsat"


@pytest.fixture
def shadow(tmp_path) -> Path:
    """A file outside every input that looks like /etc/shadow."""
    outside = tmp_path / "outside"
    outside.mkdir()
    path = outside / "shadow"
    path.write_text(SECRET + "\ndaemon:*:19000:0:99999:7:::\n")
    return path


def _leaks(text: str) -> list[str]:
    return [part for part in SECRET_PARTS if part in text]


# --------------------------------------------------------------------------------------
# 1. Special files are refused on their stat alone


def test_fifos_and_sockets_in_a_scene_folder_are_refused_without_being_opened(
    landsat, tmp_path, monkeypatch
):
    root = tmp_path / "root"
    # A FIFO where the metadata file should be.
    fifo_mtl = mtl_of(copy_scene(landsat / LE07, root / "fifo_mtl"))
    fifo_mtl.unlink()
    os.mkfifo(fifo_mtl)
    # A FIFO as a band file, a socket as another.
    band_scene = copy_scene(landsat / LT05, root / "fifo_band")
    fifo_band = next(band_scene.glob("*_B3.TIF"))
    fifo_band.unlink()
    os.mkfifo(fifo_band)
    socket_scene = copy_scene(landsat / LC08, root / "socket_band")
    socket_band = next(socket_scene.glob("*_B2.TIF"))
    socket_band.unlink()
    monkeypatch.chdir(socket_scene)  # a relative name: socket paths are short
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(socket_band.name)
    # A FIFO named like a scene archive.
    fifo_archive = root / "LT05_L1TP_167055_20000309_20161214_01_T1.tar.gz"
    os.mkfifo(fifo_archive)
    try:
        with FifoWatch([fifo_mtl, fifo_band, fifo_archive]) as watch:
            found = discover_scenes(root)
            named = discover_scenes(fifo_mtl)  # the FIFO named as the input itself
            archive = discover_scenes(fifo_archive)
    finally:
        server.close()
    assert watch.opened == []
    assert found.scenes == [] and named.scenes == [] and archive.scenes == []
    problems = dict(found.problems)
    assert set(problems) == {
        str(fifo_mtl),
        str(mtl_of(band_scene)),
        str(mtl_of(socket_scene)),
        str(fifo_archive),
    }
    assert re.search(
        r"metadata file is a FIFO \(named pipe\), not a regular file", problems[str(fifo_mtl)]
    )
    assert str(fifo_band) in problems[str(mtl_of(band_scene))]
    assert "a FIFO (named pipe), not a regular file" in problems[str(mtl_of(band_scene))]
    assert str(socket_band) in problems[str(mtl_of(socket_scene))]
    assert "a socket, not a regular file" in problems[str(mtl_of(socket_scene))]
    assert "archive is a FIFO" in problems[str(fifo_archive)]
    assert named.problems == [(str(fifo_mtl), problems[str(fifo_mtl)])]
    assert "archive is a FIFO" in archive.problems[0][1]


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_is_refused_even_inside_an_allowed_root(landsat, tmp_path):
    folder = copy_scene(landsat / LT05, tmp_path / "scene")
    band = next(folder.glob("*_B5.TIF"))
    band.unlink()
    band.symlink_to("/dev/zero")  # endless zeros: read whole, it would never end
    found = discover_scenes(folder, allow_roots=["/dev"])
    assert found.scenes == []
    assert (
        f"{band}: the file {band.name} is a character device, not a regular file"
        in (found.problems[0][1])
    )


def test_open_scene_refuses_a_band_file_that_became_a_fifo(landsat, tmp_path):
    folder = copy_scene(landsat / LT05, tmp_path / "scene")
    [source] = discover_scenes(folder).scenes
    band = Path(source.band_paths["4"])
    band.unlink()
    os.mkfifo(band)
    with FifoWatch([band]) as watch, pytest.raises(SceneError) as info:
        open_scene(source)
    assert watch.opened == []
    assert str(band) in str(info.value)
    assert "band 4 file is a FIFO (named pipe), not a regular file" in str(info.value)
    assert info.value.scene_id == source.scene_id


def test_stac_files_and_hrefs_that_are_fifos_are_refused_unopened(landsat, tmp_path):
    catalogue = tmp_path / "items.json"
    os.mkfifo(catalogue)
    fifo_mtl = tmp_path / "LT05_L1TP_167055_20000309_20161214_01_T1_MTL.txt"
    os.mkfifo(fifo_mtl)
    item = tm_item(landsat / LT05, "fifo-mtl", str(fifo_mtl))
    with FifoWatch([catalogue, fifo_mtl]) as watch:
        with pytest.raises(SceneError, match=r"STAC file is a FIFO \(named pipe\)"):
            discover_stac(catalogue)
        found = discover_stac([item])
    assert watch.opened == []
    assert found.scenes == []
    assert "a FIFO (named pipe), not a regular file" in dict(found.problems)["STAC item fifo-mtl"]


# --------------------------------------------------------------------------------------
# 2. Nothing outside the input roots is read


def test_a_metadata_symlink_out_of_the_input_is_refused_unread(landsat, tmp_path, shadow):
    root = tmp_path / "root"
    scene = copy_scene(landsat / LT05, root / "scene")
    mtl = mtl_of(scene)
    mtl.unlink()
    mtl.symlink_to(shadow)
    found = discover_scenes(root)
    assert found.scenes == []
    [(where, message)] = found.problems
    assert where == str(mtl)
    assert f"resolves to {shadow}, which lies outside the input roots ({root})" in message
    assert "allow_roots" in message
    assert _leaks(repr(found.problems)) == []
    # Found through a glob, the same: the pattern's folder is the root.
    [(_, globbed)] = discover_scenes(str(root / "*" / "*_MTL.txt")).problems
    assert "outside the input roots" in globbed and _leaks(globbed) == []


def test_band_symlinks_are_followed_only_into_the_roots(landsat, tmp_path):
    real = landsat / LT05
    # Every file of the scene a link into the shared data (outside the input).
    linked = tmp_path / "linked"
    linked.mkdir()
    for path in real.iterdir():
        (linked / path.name).symlink_to(path)
    refused = discover_scenes(linked)
    assert refused.scenes == []
    assert "outside the input roots" in refused.problems[0][1]
    # ... read when that root is allowed explicitly,
    [scene] = discover_scenes(linked, allow_roots=[real.parent]).scenes
    assert Path(scene.band_paths["4"]).parent == linked
    expected = open_scene(real)["dn"].values
    np.testing.assert_array_equal(open_scene(scene)["dn"].values, expected)
    # ... and links that stay inside the input need no permission.
    store = copy_scene(real, tmp_path / "inside" / "store")
    inner = tmp_path / "inside" / "scene"
    inner.mkdir()
    for path in store.iterdir():
        (inner / path.name).symlink_to(path)
    [again] = discover_scenes(inner.parent).scenes  # store/ and scene/: one scene id
    np.testing.assert_array_equal(open_scene(again)["dn"].values, expected)


def _write_items(path: Path, items: list[pystac.Item]) -> None:
    # Hrefs exactly as given (pystac would make relative ones absolute on save).
    features = [item.to_dict(include_self_link=False, transform_hrefs=False) for item in items]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))


def test_stac_hrefs_out_of_the_roots_are_refused_unread(landsat, tmp_path, shadow):
    catalogue = tmp_path / "stac" / "cat" / "items.json"
    assert (catalogue.parent / "../../outside/shadow").resolve() == shadow
    by_url = tm_item(landsat / LT05, "mtl-file-url", shadow.as_uri())
    by_dots = tm_item(landsat / LT05, "mtl-dot-dot", "../../outside/shadow")
    good = tm_item(landsat / LT05, "good", str(mtl_of(landsat / LT05)))
    _write_items(catalogue, [by_url, by_dots, good])
    # A job's roots: its inputs (here the shared data) and the catalogue's own folder.
    found = discover_stac(catalogue, roots=[landsat])
    assert [s.scene_id for s in found.scenes] == ["LT51670552000069AAA04"]
    problems = dict(found.problems)
    assert set(problems) == {"STAC item mtl-file-url", "STAC item mtl-dot-dot"}
    for message in problems.values():
        assert f"{shadow}: the metadata asset of STAC item" in message
        assert "lies outside the input roots" in message and str(catalogue.parent) in message
    assert _leaks(repr(found.problems)) == []
    # Band hrefs are confined too: without the shared data as a root nothing is left.
    bands_outside = discover_stac(catalogue, roots=[])
    assert bands_outside.scenes == []
    assert "metadata asset of STAC item good" in dict(bands_outside.problems)["STAC item good"]
    bands_only = discover_stac(catalogue, roots=[landsat / LT05 / f"{mtl_of(landsat / LT05).name}"])
    assert "band 1 asset of STAC item good" in dict(bands_only.problems)["STAC item good"]


def test_a_remote_catalogue_keeps_its_hrefs_on_its_server(landsat, tmp_path):
    # "/x" and "../../x" in a catalogue read over http are URLs of that server, never
    # local files: absolute paths are resolved by URL rules.
    item = tm_item(landsat / LT05, "remote", "/etc/passwd")
    _write_items(tmp_path / "site" / "a" / "items.json", [item])
    requests: list[str] = []
    with signed_server(tmp_path / "site", requests=requests) as url:
        found = discover_stac(f"{url}/a/items.json?{QUERY}", roots=[])
    assert found.scenes == []
    [(where, message)] = found.problems
    assert where == "STAC item remote" and "/etc/passwd" in message
    assert f"{url}/etc/passwd" in message  # the URL, not the local file
    assert any(r.startswith("/etc/passwd") for r in requests)


def test_hrefs_of_a_remote_catalogue_resolve_on_its_store():
    from updm_dask.scenes.stac import _absolute

    # Absolute paths and ../.. in a catalogue on a store name objects of that store.
    assert _absolute("/etc/passwd", "s3://bucket/c2/items.json") == "s3://bucket/etc/passwd"
    assert _absolute("../../../x_B4.TIF", "gs://b/c2/a/i.json") == "gs://b/x_B4.TIF"
    assert _absolute("B4.TIF", "s3://bucket/c2/items.json") == "s3://bucket/c2/B4.TIF"
    assert _absolute("/etc/passwd", "https://h/c2/i.json?sig=1") == "https://h/etc/passwd"
    # A local catalogue (path or file:// URL) keeps local semantics: the roots confine it.
    assert _absolute("/etc/passwd", "/data/c2/items.json") == "/etc/passwd"
    assert _absolute("../x", "file:///data/c2/items.json") == "file:///data/x"


# --------------------------------------------------------------------------------------
# 3. Presigned URLs


def test_presigned_urls_are_not_globs_and_redaction():
    url = f"https://bucket.s3.amazonaws.com/c2/LC08_MTL.txt?{QUERY}"
    assert not has_glob(url)
    assert has_glob("https://bucket.s3.amazonaws.com/c2/*_MTL.txt")
    assert has_glob("/data/scene?/x_MTL.txt")  # a local path's "?" is a glob
    text = redact(f"cannot open /vsicurl/{url}: HTTP 404 ('{url}')")
    assert text == (
        "cannot open /vsicurl/https://bucket.s3.amazonaws.com/c2/LC08_MTL.txt?<redacted>: "
        "HTTP 404 ('https://bucket.s3.amazonaws.com/c2/LC08_MTL.txt?<redacted>')"
    )
    assert printable("job\n  forged\x1b[2J\u2028") == "job\\n  forged\\x1b[2J\\u2028"


def test_a_presigned_scene_is_read_and_its_signature_never_shown(landsat):
    scene = f"/{LC08.split('/')[1]}"
    name = LC08.split("/")[1]
    gone = f"{scene}/{name}_B4.TIF"
    with signed_server(landsat / ETH, gone=[gone]) as url:
        mtl_url = f"{url}{scene}/{name}_MTL.txt?{QUERY}"
        found = discover_scenes(mtl_url)
        assert found.problems == []
        [source] = found.scenes
        # The token of the metadata file's URL travels with its neighbours (the server
        # refuses requests without it), GDAL reads them through /vsicurl/.
        assert source.band_paths["2"] == f"/vsicurl/{url}{scene}/{name}_B2.TIF?{QUERY}"
        with pytest.raises(SceneError) as info:
            open_scene(source)  # band 4 answers 404
        message = str(info.value)
        assert f"{url}{scene}/{name}_B4.TIF?<redacted>" in message
        assert SIGNATURE not in message and CREDENTIAL not in message
        # A URL that does not exist at all: the error names it without its query.
        with pytest.raises(SceneError) as missing:
            discover_scenes(f"{url}/nothing/{name}_MTL.txt?{QUERY}")
        assert f"{url}/nothing/{name}_MTL.txt?<redacted>: no such" in str(missing.value)
        assert SIGNATURE not in str(missing.value)
    with signed_server(landsat / ETH) as url:
        [source] = discover_scenes(f"{url}{scene}/{name}_MTL.txt?{QUERY}").scenes
        remote = open_scene(source, chunks=64)["dn"].values
    np.testing.assert_array_equal(remote, open_scene(landsat / LC08)["dn"].values)


def test_a_presigned_archive_is_read_member_by_member(landsat, tmp_path):
    folder = landsat / LT05
    archive = tmp_path / "site" / f"{folder.name}.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    with signed_server(archive.parent) as url:
        [source] = discover_scenes(f"{url}/{archive.name}?{QUERY}").scenes
        assert source.band_paths["1"].startswith("/vsitar/{/vsigzip//vsicurl/")
        data = open_scene(source)["dn"].values
    np.testing.assert_array_equal(data, open_scene(folder)["dn"].values)


# --------------------------------------------------------------------------------------
# 5. One product per scene id, by a rule


def _stale_copy(landsat: Path, target: Path) -> Path:
    """A copy of the real LT05 scene processed earlier (FILE_DATE) and holding garbage."""
    folder = copy_scene(landsat / LT05, target)
    mtl = mtl_of(folder)
    text = mtl.read_text()
    assert "FILE_DATE = 2016-12-14T23:49:32Z" in text
    mtl.write_text(
        text.replace("FILE_DATE = 2016-12-14T23:49:32Z", "FILE_DATE = 2016-02-01T00:00:00Z")
    )
    for band in folder.glob("*_B?.TIF"):
        with rasterio.open(band, "r+") as dst:
            dst.write(np.full((dst.height, dst.width), 7, dtype=dst.dtypes[0]), 1)
    return folder


@pytest.mark.parametrize("order", ["stale first", "good first", "one folder"])
def test_the_later_processing_is_kept_whatever_the_order(landsat, tmp_path, order):
    stale = _stale_copy(landsat, tmp_path / "a_stale")
    good = copy_scene(landsat / LT05, tmp_path / "b_good")
    inputs = {"stale first": [stale, good], "good first": [good, stale], "one folder": tmp_path}
    found = discover_scenes(inputs[order])
    [kept] = found.scenes
    [dropped] = found.duplicates
    assert Path(kept.mtl_path).parent == good and Path(dropped.mtl_path).parent == stale
    assert preference_reason(kept, dropped) == (
        "product generated 2016-12-14 23:49:32 UTC, later than 2016-02-01 00:00:00 UTC"
    )
    # Tier decides when processing is the same.
    t2 = tmp_path / "c_tier2"
    copy_scene(landsat / LT05, t2)
    text = mtl_of(t2).read_text()
    mtl_of(t2).write_text(text.replace('COLLECTION_CATEGORY = "T1"', 'COLLECTION_CATEGORY = "T2"'))
    [kept] = discover_scenes([t2, good]).scenes
    assert Path(kept.mtl_path).parent == good


# --------------------------------------------------------------------------------------
# 6. Band files whose size is not the product's


def _georeferenced_brumadinho(landsat: Path, target: Path, rows=slice(None), cols=slice(None)):
    """The Brumadinho 2019-01-14 crop as georeferenced GeoTIFFs, optionally cut.

    README: 400 x 300 px, EPSG:32623, upper-left pixel centre (583500, -2222700), 30 m;
    the MTL was edited to the crop (REFLECTIVE_LINES 300, SAMPLES 400).
    """
    archive = landsat / "xlandsat" / "LC08_L2SP_218074_20190114_20200829_02_T1-cropped.tar.gz"
    target.mkdir()
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            data = tar.extractfile(member).read()
            if member.name.endswith("_MTL.txt"):
                (target / member.name).write_bytes(data)
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                with rasterio.MemoryFile(data) as mem, mem.open() as src:
                    pixels = src.read(1)[rows, cols]
            first_col = cols.start or 0
            first_row = rows.start or 0
            transform = from_origin(
                583500 - 15 + 30 * first_col, -2222700 + 15 - 30 * first_row, 30, 30
            )
            profile = {
                "driver": "GTiff", "width": pixels.shape[1], "height": pixels.shape[0],
                "count": 1, "dtype": pixels.dtype.name, "crs": "EPSG:32623",
                "transform": transform,
            }  # fmt: skip
            with rasterio.open(target / member.name, "w", **profile) as dst:
                dst.write(pixels, 1)
    return mtl_of(target)


def test_georeferenced_band_files_cut_short_are_refused(landsat, tmp_path):
    whole = open_scene(_georeferenced_brumadinho(landsat, tmp_path / "whole"))
    assert whole["dn"].shape == (6, 300, 400)
    assert tuple(whole.rio.transform())[:6] == (30.0, 0.0, 583485.0, 0.0, -30.0, -2222685.0)
    # Three lines missing at the bottom: every column of the product, not every line.
    cut = _georeferenced_brumadinho(landsat, tmp_path / "cut", rows=slice(0, 297))
    with pytest.raises(SceneError) as info:
        open_scene(cut)
    message = str(info.value)
    assert "are 297x400 pixels (lines x samples)" in message
    assert "REFLECTIVE_LINES/SAMPLES 300x400" in message and "full width" in message
    # Five columns missing on the left: the full height, not every column.
    narrow = _georeferenced_brumadinho(landsat, tmp_path / "narrow", cols=slice(5, None))
    with pytest.raises(SceneError, match=r"300x395 pixels .* 300x400; .* full height"):
        open_scene(narrow)
    # A clip inside the product (as the shared Ethiopia scenes are) is no such file.
    clip = _georeferenced_brumadinho(
        landsat, tmp_path / "clip", rows=slice(10, 110), cols=slice(20, 220)
    )
    assert open_scene(clip)["dn"].shape == (6, 100, 200)
