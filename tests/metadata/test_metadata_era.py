"""Acquisition dates outside the Landsat era are refused by the metadata reader.

Landsat 1 was launched on 1972-07-23; no scene is newer than today. A metadata file dated
1066-10-14 used to be accepted and stored in a cube, after which every query of that cube
failed. Each test edits the date of a copy of a real metadata file (every format the
reader knows) and expects a :class:`MetadataError` naming the file, the line, the field and
the accepted range, without the bad date itself.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pytest

from updm_dask.errors import MetadataError, UpdmError
from updm_dask.metadata import read_mtl

_C1_ODL = (
    "landsat/ethiopia-167055/LT05_L1TP_167055_20000309_20161214_01_T1/"
    "LT05_L1TP_167055_20000309_20161214_01_T1_MTL.txt"
)
_PRE_COLLECTION = "landsat/para-224063-1988/LT52240631988227CUB02_MTL.txt"  # NUL-padded
_C2_XML = "mtl/stactools-landsat/LM01_L1GS_001010_19720908_20200909_02_T2_MTL.xml"
_JSON = "mtl/rio-toa/LC81060712016134LGN00_MTL.json"
_ESPA = "mtl/rstoolbox/LE07_L1TP_160031_20110416_20161210_01_T1.xml"


def _today_utc() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _copy_with(shared_data: Path, tmp_path: Path, rel: str, old: bytes, new: bytes) -> Path:
    """A copy of a real metadata file with exactly one occurrence of ``old`` replaced."""
    data = (shared_data / rel).read_bytes()
    assert data.count(old) == 1, f"{rel}: expected one {old!r}"
    path = tmp_path / Path(rel).name
    path.write_bytes(data.replace(old, new))
    return path


def _line_of(path: Path, needle: bytes) -> int:
    data = path.read_bytes()
    return data[: data.index(needle)].count(b"\n") + 1


def _era_message(path: Path, line: int, field: str, last: dt.date) -> str:
    return (
        re.escape(f"{path}: line {line}")
        + r"(, column \d+)?"
        + re.escape(
            f": {field} is outside the Landsat era (expected a date from 1972-07-23, the "
            f"launch of Landsat 1, to {last.isoformat()}, one day after today UTC)"
        )
    )


# (file, the text of its date, how the edited date is written, the field the message names)
_FORMATS = [
    (_C1_ODL, b"DATE_ACQUIRED = 2000-03-09", b"DATE_ACQUIRED = {}", "DATE_ACQUIRED"),
    (_C1_ODL, b"DATE_ACQUIRED = 2000-03-09", b"ACQUISITION_DATE = {}", "ACQUISITION_DATE"),
    (_PRE_COLLECTION, b"DATE_ACQUIRED = 1988-08-14", b"DATE_ACQUIRED = {}", "DATE_ACQUIRED"),
    (
        _C2_XML,
        b"<DATE_ACQUIRED>1972-09-08</DATE_ACQUIRED>",
        b"<DATE_ACQUIRED>{}</DATE_ACQUIRED>",
        "DATE_ACQUIRED",
    ),
    (_JSON, b'"DATE_ACQUIRED": "2016-05-13"', b'"DATE_ACQUIRED": "{}"', "DATE_ACQUIRED"),
    (
        _ESPA,
        b"<acquisition_date>2011-04-16</acquisition_date>",
        b"<acquisition_date>{}</acquisition_date>",
        "acquisition_date",
    ),
]
_IDS = ["odl-c1", "odl-acquisition-date", "odl-pre-collection", "xml-c2", "json", "espa"]


@pytest.mark.parametrize(("rel", "old", "template", "field"), _FORMATS, ids=_IDS)
@pytest.mark.parametrize("when", ["1066-10-14", "next-year", "1972-07-22", "day-after-tomorrow"])
def test_dates_outside_the_landsat_era_are_refused(
    shared_data, tmp_path, rel, old, template, field, when
):
    today = _today_utc()
    date = {
        "next-year": dt.date(today.year + 1, 1, 1).isoformat(),
        "day-after-tomorrow": (today + dt.timedelta(days=2)).isoformat(),
    }.get(when, when)
    path = _copy_with(shared_data, tmp_path, rel, old, template.replace(b"{}", date.encode()))
    line = _line_of(path, date.encode())
    with pytest.raises(MetadataError) as info:
        read_mtl(path)
    message = str(info.value)
    assert re.fullmatch(_era_message(path, line, field, today + dt.timedelta(days=1)), message)
    assert date not in message


@pytest.mark.parametrize(("rel", "old", "template", "field"), _FORMATS, ids=_IDS)
def test_dates_at_the_edges_of_the_era_are_accepted(
    shared_data, tmp_path, rel, old, template, field
):
    today = _today_utc()
    for date in (dt.date(1972, 7, 23), today + dt.timedelta(days=1)):
        path = _copy_with(
            shared_data, tmp_path, rel, old, template.replace(b"{}", date.isoformat().encode())
        )
        assert read_mtl(path).acquired.date() == date


def test_opening_a_scene_dated_1066_fails_before_any_pixel_is_read(shared_data, tmp_path):
    from updm_dask.scenes import open_scene

    folder = shared_data / Path(_C1_ODL).parent
    scene = tmp_path / folder.name
    shutil.copytree(folder, scene)
    mtl = scene / Path(_C1_ODL).name
    mtl.write_bytes(
        mtl.read_bytes().replace(b"DATE_ACQUIRED = 2000-03-09", b"DATE_ACQUIRED = 1066-10-14")
    )
    # Discovery reports the scene unusable, with the reader's reason.
    with pytest.raises(UpdmError, match=re.escape(f"{mtl}: line 25: DATE_ACQUIRED is outside")):
        open_scene(scene)
