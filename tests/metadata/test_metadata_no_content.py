"""Metadata errors name the file, the line, the field and what was expected: never content.

A metadata path may point at any file: a mistyped path, or a symlink to a secret such as
/etc/shadow. Failure reports and logs carry the reader's message, so the message must not
carry any of the file's text: no raw line, no value. These tests feed the reader real
metadata files with a secret written into one field (every typed field, every format), and
files that are not metadata at all (shaped like /etc/shadow), and check the message and
its whole exception chain for the secret.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from updm_dask.errors import MetadataError
from updm_dask.metadata import read_mtl, read_mtl_text

# The distinctive part of every secret below; none of it may appear in any message.
_MARK = "T0pS3cretHash"
# A line as /etc/shadow has them: user, hashed password, ageing fields.
_SHADOW_LINE = f"root:$6$rAnd0mSalt${_MARK}Q9kMvzLp0/ab1.cD2eF3gH4:19700:0:99999:7:::"
_SHADOW = (
    _SHADOW_LINE + "\n"
    "daemon:*:19700:0:99999:7:::\n"
    f"backup:$y$j9T$Zz{_MARK}Yy$Xx:19700:0:99999:7:::\n"
)

_C1_ODL = (
    "landsat/ethiopia-167055/LT05_L1TP_167055_20000309_20161214_01_T1/"
    "LT05_L1TP_167055_20000309_20161214_01_T1_MTL.txt"
)
_C2_XML = "mtl/sertit/LM05_L1TP_200030_20121230_20200820_02_T2_MTL.xml"
_JSON_LINES = "mtl/rio-toa/LC81060712016134LGN00_MTL.json"
_JSON_ONE_LINE = "mtl/rio-toa/LC80430302016140LGN00_MTL.json"
_ESPA = "mtl/rstoolbox/LE07_L1TP_160031_20110416_20161210_01_T1.xml"


def _chain_texts(exc: BaseException) -> list[str]:
    """str, args and attributes of an exception and of every exception it carries along."""
    texts: list[str] = []
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current.args), repr(vars(current))]
        todo += [current.__cause__, current.__context__]
    return texts


def _assert_no_secret(exc: BaseException, *secrets: str) -> None:
    for text in _chain_texts(exc):
        for secret in (_MARK, *secrets):
            assert secret not in text, f"secret {secret!r} leaked into: {text}"


def _copy_with(shared_data: Path, tmp_path: Path, rel: str, old: str, new: str) -> Path:
    """A copy of a real metadata file with exactly one occurrence of ``old`` replaced."""
    text = (shared_data / rel).read_bytes().split(b"\0", 1)[0].decode("utf-8")
    assert text.count(old) == 1, f"{rel}: expected one {old!r}"
    path = tmp_path / Path(rel).name
    path.write_bytes(text.replace(old, new).encode("utf-8"))
    return path


def _line_of(path: Path, needle: str) -> int:
    text = path.read_text(encoding="utf-8")
    return text[: text.index(needle)].count("\n") + 1


def _refused(path: Path) -> MetadataError:
    with pytest.raises(MetadataError) as info:
        read_mtl(path)
    return info.value


# --------------------------------------------------------------------------------------
# Files that are not metadata at all


def test_a_shadow_like_file_is_refused_without_its_content(tmp_path):
    path = tmp_path / "shadow"
    path.write_text(_SHADOW)
    exc = _refused(path)
    assert str(exc) == (
        f"{path}: line 1 is not KEY = VALUE (expected a name of letters, digits and _, then "
        "=, then a value)"
    )
    _assert_no_secret(exc, _SHADOW_LINE, "root:", "$6$")


def test_a_symlinked_mtl_pointing_at_a_secret_does_not_print_it(tmp_path):
    secret = tmp_path / "elsewhere" / "shadow"
    secret.parent.mkdir()
    secret.write_text(_SHADOW)
    scene = tmp_path / "LT05_L1TP_167055_20000309_20161214_01_T1"
    scene.mkdir()
    link = scene / "LT05_L1TP_167055_20000309_20161214_01_T1_MTL.txt"
    link.symlink_to(secret)
    exc = _refused(link)
    assert str(exc).startswith(f"{link}: line 1 is not KEY = VALUE (expected")
    _assert_no_secret(exc, _SHADOW_LINE)


def test_a_secret_line_inside_a_real_mtl_is_located_not_shown(shared_data, tmp_path):
    path = _copy_with(
        shared_data,
        tmp_path,
        _C1_ODL,
        "    SUN_ELEVATION = 53.14715018\n",
        f"    SUN_ELEVATION = 53.14715018\n{_SHADOW_LINE}\n",
    )
    exc = _refused(path)
    assert str(exc).startswith(f"{path}: line 68 is not KEY = VALUE (expected")
    _assert_no_secret(exc, _SHADOW_LINE)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        # A JSON document that is no MTL: its top-level names are not listed either.
        (f'{{"{_MARK}": 1, "x{_MARK}": {{}}}}', r"no L1_METADATA_FILE or LANDSAT_METADATA_FILE"),
        (f'{{"L1_METADATA_FILE": {_SHADOW_LINE}}}', r"invalid JSON: Expecting value: line 1"),
        (
            f"<passwd><entry>{_SHADOW_LINE}</entry></passwd>",
            r"line 1: XML root element <passwd> is neither",
        ),
        (f"<passwd><entry>{_SHADOW_LINE}</passwd>", r"invalid XML at line 1, column \d+"),
        (f"GROUP = {_SHADOW_LINE}\n", r"line 1: bad group name \(expected GROUP = a name"),
        (
            f'GROUP = L1_METADATA_FILE\n  LANDSAT_SCENE_ID = "{_SHADOW_LINE}\n',
            r"line 2: malformed quoted value for LANDSAT_SCENE_ID \(expected one pair",
        ),
        (
            f"GROUP = L1_METADATA_FILE\nEND_GROUP = {_SHADOW_LINE}\n",
            r"line 2: END_GROUP = \(a name that is not an identifier\) does not close",
        ),
        (
            f"GROUP = L1_METADATA_FILE\nEND_GROUP = L1_METADATA_FILE\nEND\n{_SHADOW_LINE}\n",
            r"line 4: text after END \(line 3\); expected nothing after END",
        ),
        (f"{_SHADOW_LINE}\x01\n", r"binary data \(control character 0x01"),
    ],
    ids=[
        "json-names",
        "json-invalid",
        "xml-other-root",
        "xml-invalid",
        "odl-group",
        "odl-quote",
        "odl-end-group",
        "odl-after-end",
        "binary",
    ],
)
def test_other_files_are_refused_without_their_content(tmp_path, content, expected):
    path = tmp_path / "not_an_MTL.txt"
    path.write_text(content)
    exc = _refused(path)
    assert re.match(re.escape(str(path)) + ": " + expected, str(exc)), str(exc)
    _assert_no_secret(exc, _SHADOW_LINE)
    # Text held in memory gets the same treatment.
    with pytest.raises(MetadataError) as info:
        read_mtl_text(content, "in-memory")
    assert re.match("in-memory: " + expected, str(info.value)), str(info.value)
    _assert_no_secret(info.value, _SHADOW_LINE)


# --------------------------------------------------------------------------------------
# A secret in each typed field of a real file


_ODL_FIELDS = [
    (
        'SPACECRAFT_ID = "LANDSAT_5"',
        "quoted",
        r"SPACECRAFT_ID is not a Landsat spacecraft \(expected",
    ),
    ('SENSOR_ID = "TM"', "quoted", r"SENSOR_ID is not a known Landsat sensor \(expected one of"),
    ("DATE_ACQUIRED = 2000-03-09", "bare", r"DATE_ACQUIRED is not a date \(expected YYYY-MM-DD"),
    (
        'SCENE_CENTER_TIME = "07:08:03.9780190Z"',
        "quoted",
        r"SCENE_CENTER_TIME is not a time of day \(expected HH:MM:SS",
    ),
    ("WRS_PATH = 167", "bare", r"WRS_PATH is not an integer \(expected whole digits"),
    ("WRS_ROW = 055", "bare", r"WRS_ROW is not an integer \(expected whole digits"),
    (
        "CORNER_UL_LAT_PRODUCT = 8.13630",
        "bare",
        r"CORNER_UL_LAT_PRODUCT is not a number \(expected",
    ),
    ("REFLECTIVE_LINES = 6991", "bare", r"REFLECTIVE_LINES is not an integer \(expected"),
    ("SUN_AZIMUTH = 107.22126345", "bare", r"SUN_AZIMUTH is not a number \(expected"),
    ("SUN_ELEVATION = 53.14715018", "bare", r"SUN_ELEVATION is not a number \(expected"),
    ("EARTH_SUN_DISTANCE = 0.9929941", "bare", r"EARTH_SUN_DISTANCE is not a number \(expected"),
    ("UTM_ZONE = 37", "bare", r"UTM_ZONE is not an integer \(expected"),
    ("RADIANCE_MULT_BAND_1 = 7.6583E-01", "bare", r"RADIANCE_MULT_BAND_1 is not a number \("),
    ("QUANTIZE_CAL_MAX_BAND_1 = 255", "bare", r"QUANTIZE_CAL_MAX_BAND_1 is not a number \("),
    # Numbers that parse but are out of range are not echoed either.
    ("SUN_ELEVATION = 53.14715018", "4242.4242", r"SUN_ELEVATION is outside -90\.\.90 degrees"),
    ("UTM_ZONE = 37", "4242", r"UTM_ZONE is not a UTM zone \(expected 1\.\.60"),
    ("WRS_ROW = 055", "4242.5", r"WRS_ROW is not an integer .*got a number with a fraction"),
]


@pytest.mark.parametrize(
    ("line", "secret", "expected"),
    _ODL_FIELDS,
    ids=[f[0].split()[0] + "-" + f[1] for f in _ODL_FIELDS],
)
def test_a_secret_in_a_typed_odl_field_is_not_echoed(shared_data, tmp_path, line, secret, expected):
    key = line.split()[0]
    value = {"quoted": f'"{_SHADOW_LINE}"', "bare": f"x{_MARK}"}.get(secret, secret)
    path = _copy_with(shared_data, tmp_path, _C1_ODL, line, f"{key} = {value}")
    number = _line_of(path, f"{key} = {value}")
    exc = _refused(path)
    assert re.match(re.escape(f"{path}: line {number}: ") + expected, str(exc)), str(exc)
    _assert_no_secret(exc, value.strip('"'), _SHADOW_LINE)


@pytest.mark.parametrize(
    ("old", "key", "expected"),
    [
        (
            "<SUN_ELEVATION>19.53536320</SUN_ELEVATION>",
            "SUN_ELEVATION",
            "is not a number (expected",
        ),
        (
            "<SPACECRAFT_ID>LANDSAT_5</SPACECRAFT_ID>",
            "SPACECRAFT_ID",
            "is not a Landsat spacecraft",
        ),
        ("<DATE_ACQUIRED>2012-12-30</DATE_ACQUIRED>", "DATE_ACQUIRED", "is not a date (expected"),
    ],
    ids=["sun-elevation", "spacecraft", "date"],
)
def test_a_secret_in_a_c2_xml_field_is_not_echoed(shared_data, tmp_path, old, key, expected):
    new = f"<{key}>{_SHADOW_LINE}</{key}>"
    path = _copy_with(shared_data, tmp_path, _C2_XML, old, new)
    exc = _refused(path)
    assert str(exc).startswith(f"{path}: line {_line_of(path, new)}: {key} {expected}"), str(exc)
    _assert_no_secret(exc, _SHADOW_LINE)


@pytest.mark.parametrize(
    ("rel", "old"),
    [
        (_JSON_LINES, '"SUN_ELEVATION": 45.66897551'),
        (_JSON_ONE_LINE, '"SUN_ELEVATION": 62.13510937'),
    ],
    ids=["pretty", "one-line"],
)
def test_a_secret_in_a_json_field_is_located_by_line_and_column(shared_data, tmp_path, rel, old):
    new = f'"SUN_ELEVATION": "{_SHADOW_LINE}"'
    path = _copy_with(shared_data, tmp_path, rel, old, new)
    text = path.read_text(encoding="utf-8")
    at = text.index(new)
    line = text[:at].count("\n") + 1
    column = at - (text.rfind("\n", 0, at) + 1) + 1
    exc = _refused(path)
    assert str(exc).startswith(
        f"{path}: line {line}, column {column}: SUN_ELEVATION is not a number (expected"
    ), str(exc)
    _assert_no_secret(exc, _SHADOW_LINE)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'zenith="36.770893"',
            f'zenith="{_SHADOW_LINE}"',
            "solar_angles zenith is not a number (expected",
        ),
        ('units="degrees"', f'units="{_MARK}"', "solar_angles units is not degrees (expected"),
        (
            "<satellite>LANDSAT_7</satellite>",
            f"<satellite>{_SHADOW_LINE}</satellite>",
            "satellite is not a Landsat spacecraft",
        ),
        ('path="160"', f'path="{_MARK}"', "wrs path is not an integer (expected"),
        ("<zone_code>40</zone_code>", f"<zone_code>{_MARK}</zone_code>", "zone_code is not an"),
    ],
    ids=["zenith", "units", "satellite", "wrs-path", "zone"],
)
def test_a_secret_in_an_espa_field_is_not_echoed(shared_data, tmp_path, old, new, expected):
    path = _copy_with(shared_data, tmp_path, _ESPA, old, new)
    exc = _refused(path)
    assert str(exc).startswith(f"{path}: line {_line_of(path, new)}: {expected}"), str(exc)
    _assert_no_secret(exc, _SHADOW_LINE)


def test_an_ambiguous_lookup_names_groups_not_values(shared_data, tmp_path):
    # A Collection-2 Level-2 file repeats REFLECTANCE_MULT_BAND_n with two values.
    import tarfile

    archive = (
        shared_data / "landsat/xlandsat/LC08_L2SP_017051_20151205_20200908_02_T1-cropped.tar.gz"
    )
    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("_MTL.txt"))
        meta = read_mtl(tar.extractfile(member), name=member.name)
    with pytest.raises(MetadataError) as info:
        meta.get("REFLECTANCE_MULT_BAND_4")
    message = str(info.value)
    assert "LEVEL1_RADIOMETRIC_RESCALING" in message
    assert "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS" in message
    assert "2.75e-05" not in message and "2e-05" not in message
