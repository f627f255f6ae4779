"""Scene archives too large to list are refused, naming the limit (``updm.limits.*``).

Listing a .tar.gz decompresses it, header after header: an archive of millions of members,
or one whose member declares a terabyte (a gzip bomb compresses zeros a thousandfold),
would hold discovery for hours. The archives here are real .tar.gz files written in
tmp_path around a real scene of ../shared/data.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import dask.config
import pytest

from updm_dask import config
from updm_dask.metadata import read_mtl
from updm_dask.scenes import discover_scenes

SCENE = Path("landsat") / "ethiopia-167055" / "LT51670552010352MLK00"


@pytest.fixture(scope="module")
def scene(shared_data) -> Path:
    return shared_data / SCENE


def _archive_with(path: Path, scene: Path, extra: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    """A .tar.gz of the real scene folder followed by ``extra`` members."""
    with tarfile.open(path, "w:gz") as tar:
        tar.add(scene, arcname=scene.name)
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data))
    return path


def test_an_archive_with_too_many_members_is_refused_naming_the_limit(scene, tmp_path):
    padding = []
    for i in range(120):
        info = tarfile.TarInfo(f"padding/{i:04d}.txt")
        info.size = 0
        padding.append((info, b""))
    archive = _archive_with(tmp_path / "many.tar.gz", scene, padding)
    members = len(list(scene.iterdir())) + 1 + 120  # files, their folder, the padding

    # Within the default limit the archive is read and its scene found ...
    assert members < config.get("limits.archive-members")
    [found] = discover_scenes(archive).scenes
    assert found.scene_id == read_mtl(str(next(scene.glob("*_MTL.txt")))).scene_id

    # ... above a limit it is refused as a whole, before anything of it is used.
    with dask.config.set({"updm.limits.archive-members": 100}):
        result = discover_scenes(archive)
    assert result.scenes == []
    [(where, message)] = result.problems
    assert where == str(archive)
    assert message == (
        f"{archive}: refusing the archive: it holds more than 100 members "
        "(updm.limits.archive-members); a Landsat product has about 20. Split it, or raise "
        "the limit"
    )


def test_an_archive_whose_members_declare_too_many_bytes_is_refused(scene, tmp_path):
    # 8 MiB of zeros: 8 KiB once compressed, a small gzip bomb.
    zeros = tarfile.TarInfo("padding/zeros.bin")
    zeros.size = 8 << 20
    archive = _archive_with(tmp_path / "bomb.tar.gz", scene, [(zeros, bytes(zeros.size))])
    assert archive.stat().st_size < 1 << 20
    assert len(discover_scenes(archive).scenes) == 1  # the default limit admits it

    with dask.config.set({"updm.limits.archive-bytes": 4 << 20}):
        result = discover_scenes(archive)
    assert result.scenes == []
    [(where, message)] = result.problems
    assert where == str(archive)
    assert message.startswith(f"{archive}: refusing the archive: its members declare more than ")
    assert "4,194,304 bytes (updm.limits.archive-bytes)" in message
    assert "member 'padding/zeros.bin', which declares 8,388,608 bytes" in message


def test_a_member_declaring_a_terabyte_is_refused_before_its_data_is_sought(scene, tmp_path):
    # A header only: the member says it holds 1 TiB. Skipping to the next header would
    # mean decompressing a terabyte (here: reading to the end of the stream).
    huge = tarfile.TarInfo(f"{scene.name}/huge_B1.TIF")
    huge.size = 1 << 40
    archive = tmp_path / "huge.tar.gz"
    with gzip.open(archive, "wb") as gz:
        gz.write(huge.tobuf(format=tarfile.GNU_FORMAT))
        gz.write(bytes(1024))
    result = discover_scenes(archive)  # default limits
    [(where, message)] = result.problems
    assert where == str(archive)
    assert "updm.limits.archive-bytes" in message
    assert f"member '{scene.name}/huge_B1.TIF', which declares 1,099,511,627,776 bytes" in message
    assert "not a readable tar archive" not in message
