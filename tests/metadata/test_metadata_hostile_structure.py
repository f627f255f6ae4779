"""Hostile structure in a metadata file is refused quickly with a MetadataError.

Real metadata files, edited: deep nesting, runs of thousands of digits, an ESPA tag used
with and without its key attribute. Before, these escaped as RecursionError, ValueError or
TypeError (which a job does not expect from a reader), or took minutes in a regular
expression.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from updm_dask.errors import MetadataError
from updm_dask.metadata import read_mtl
from updm_dask.metadata.odl import MAX_GROUP_DEPTH

_C1_ODL = (
    "landsat/ethiopia-167055/LT05_L1TP_167055_20000309_20161214_01_T1/"
    "LT05_L1TP_167055_20000309_20161214_01_T1_MTL.txt"
)
_C2_XML = "mtl/sertit/LM05_L1TP_200030_20121230_20200820_02_T2_MTL.xml"
_JSON = "mtl/rio-toa/LC81060712016134LGN00_MTL.json"
_ESPA = "mtl/rstoolbox/LC80980762015235LGN00.xml"


def _copy_with(shared_data: Path, tmp_path: Path, rel: str, old: str, new: str) -> Path:
    text = (shared_data / rel).read_bytes().split(b"\0", 1)[0].decode("utf-8")
    assert text.count(old) == 1, f"{rel}: expected one {old!r}"
    path = tmp_path / Path(rel).name
    path.write_bytes(text.replace(old, new).encode("utf-8"))
    return path


def test_a_long_run_of_digits_is_refused_in_milliseconds(shared_data, tmp_path):
    # The old number pattern backtracked quadratically: 20 000 digits took 20+ seconds.
    path = _copy_with(
        shared_data,
        tmp_path,
        _C1_ODL,
        "SUN_AZIMUTH = 107.22126345",
        "SUN_AZIMUTH = " + "9" * 20_000 + "x",
    )
    start = time.perf_counter()
    with pytest.raises(MetadataError, match=r"line 66: SUN_AZIMUTH is not a number \(expected"):
        read_mtl(path)
    assert time.perf_counter() - start < 2.0


def test_an_integer_of_thousands_of_digits_is_a_metadata_error(shared_data, tmp_path):
    # Python refuses int() of more than 4300 digits with a ValueError of its own.
    path = _copy_with(shared_data, tmp_path, _C1_ODL, "WRS_PATH = 167", "WRS_PATH = " + "1" * 5000)
    with pytest.raises(MetadataError, match=r"line 23: WRS_PATH is not an integer \(expected"):
        read_mtl(path)


def test_a_band_number_of_thousands_of_digits_does_not_break_the_reader(shared_data, tmp_path):
    label = "1" * 5000
    path = _copy_with(
        shared_data,
        tmp_path,
        _C1_ODL,
        "    RADIANCE_MULT_BAND_1 = 7.6583E-01\n",
        f"    RADIANCE_MULT_BAND_1 = 7.6583E-01\n    RADIANCE_MULT_BAND_{label} = 1.0\n",
    )
    meta = read_mtl(path)
    assert list(meta.bands)[-1] == label  # sorted after every real band
    assert meta.band(1).radiance_mult == 7.6583e-01


@pytest.mark.parametrize("depth", [MAX_GROUP_DEPTH + 1, 3000])
def test_odl_groups_nested_too_deep_are_refused(shared_data, tmp_path, depth):
    nest = "".join(f"GROUP = G{i}\n" for i in range(depth))
    unnest = "".join(f"END_GROUP = G{i}\n" for i in reversed(range(depth)))
    path = _copy_with(
        shared_data,
        tmp_path,
        _C1_ODL,
        "  GROUP = METADATA_FILE_INFO\n",
        nest + unnest + "  GROUP = METADATA_FILE_INFO\n",
    )
    # Line 1 opens L1_METADATA_FILE; G0 .. G14 bring the depth to 16; G15 (line 17) is one too many.
    with pytest.raises(MetadataError, match=r"line 17: GROUP nested deeper than 16 levels"):
        read_mtl(path)


def test_xml_nested_too_deep_is_refused(shared_data, tmp_path):
    deep = "<A>" * 3000 + "</A>" * 3000
    path = _copy_with(shared_data, tmp_path, _C2_XML, "<SUN_ELEVATION>", deep + "<SUN_ELEVATION>")
    with pytest.raises(MetadataError, match=r"XML elements nested deeper than 16 levels"):
        read_mtl(path)


def test_json_nested_too_deep_is_refused(shared_data, tmp_path):
    for depth in (20, 100_000):
        path = _copy_with(
            shared_data,
            tmp_path,
            _JSON,
            '"SUN_ELEVATION": 45.66897551',
            '"SUN_ELEVATION": ' + "[" * depth + "]" * depth,
        )
        with pytest.raises(MetadataError, match=r"JSON nested (deeper than 16 levels|too deeply)"):
            read_mtl(path)


def test_an_espa_tag_with_and_without_its_key_attribute_is_read(shared_data, tmp_path):
    original = read_mtl(shared_data / _ESPA)
    path = _copy_with(shared_data, tmp_path, _ESPA, "<bands>", "<bands>\n<band>1</band>")
    meta = read_mtl(path)
    assert meta.bands == original.bands
