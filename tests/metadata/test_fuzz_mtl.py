"""Property tests (hypothesis) of the metadata reader on mutations of every real MTL file.

Issue 14, "Property tests": random bytes, truncations and mutations of the real metadata
files of the shared data (ODL text, Collection-2 XML, rio-toa JSON, ESPA XML; NUL-padded and
CRLF files; the MTLs inside the xlandsat archives) either parse or raise
:class:`~updm_dask.errors.MetadataError` with a message naming the file; nothing else
escapes and nothing hangs. Every input goes through all four entries: ``read_mtl`` on a
file, on a file object, and ``read_mtl_text`` on bytes and on a str.

What fuzzing found is kept below as plain tests on real files (huge numbers, deep nesting,
a str that is not valid Unicode, a FIFO), so that it stays found whatever hypothesis draws.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from pathlib import Path

import pytest
from _fuzz import (
    CI_EXAMPLES,
    COMMON_TOKENS,
    SECRET,
    SLOW_EXAMPLES,
    Corpus,
    check_error,
    check_no_secret,
    fuzz_settings,
    mutate,
    watchdog,
)
from hypothesis import given
from hypothesis import strategies as st

from updm_dask.errors import MetadataError, UpdmError
from updm_dask.metadata import SceneMetadata, read_mtl, read_mtl_text

_METADATA_NAME = re.compile(r"(_MTL\.(txt|json|xml)|\.xml)$", re.IGNORECASE)

# Tokens of ODL, XML and JSON, repeated by the mutator to build deep nesting.
_TOKENS = (
    *COMMON_TOKENS,
    b"GROUP = G\n",
    b"END_GROUP = G\n",
    b"END\n",
    b"<a>",
    b"</a>",
    b"<!DOCTYPE x>",
    b"&amp;",
    b"[",
    b"{",
    b'{"a": ',
    b"}",
    b"]",
)


def _is_metadata(name: str) -> bool:
    return bool(_METADATA_NAME.search(name)) and not name.lower().endswith(".aux.xml")


@pytest.fixture(scope="module")
def corpus(shared_data) -> Corpus:
    """Every real metadata file by name, archive members included."""
    found = Corpus()
    for path in sorted(shared_data.rglob("*")):
        if path.is_file() and _is_metadata(path.name):
            found[path.relative_to(shared_data).as_posix()] = path.read_bytes()
    for archive in sorted(shared_data.rglob("*.tar.gz")):
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if member.isfile() and _is_metadata(member.name):
                    found[f"{archive.name}!{member.name}"] = tar.extractfile(member).read()
    for name, content in found.items():  # warm-up: no first example pays for lazy imports
        read_mtl_text(content, name)
    return found


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    # Module-scoped: hypothesis runs many examples per test call, a function-scoped
    # tmp_path would be shared by all of them anyway.
    return tmp_path_factory.mktemp("fuzz_mtl")


def test_the_corpus_holds_every_format_and_each_file_parses(corpus):
    # The mutations start from valid files of every flavour; a smaller corpus would make the
    # properties below weaker without anyone noticing.
    formats = set()
    for name, content in corpus.items():
        formats.add(read_mtl_text(content, name).format)
    assert len(corpus) >= 39
    assert formats == {"odl", "xml", "json", "espa-xml"}
    assert any(content.endswith(b"\0" * 100) for content in corpus.values())  # NUL padding
    assert any(b"\r\n" in content for content in corpus.values())  # CRLF


def _check_all_entries(content: bytes, workdir: Path) -> None:
    """Read ``content`` through every entry of the reader: each parses or raises well."""
    target = workdir / "fuzzed_MTL.txt"
    target.write_bytes(content)
    text = content.decode("utf-8", "surrogateescape")  # a str may hold lone surrogates
    calls = (
        (str(target), lambda: read_mtl(target)),
        ("fuzzed member", lambda: read_mtl(io.BytesIO(content), name="fuzzed member")),
        ("fuzzed bytes", lambda: read_mtl_text(content, "fuzzed bytes")),
        ("fuzzed str", lambda: read_mtl_text(text, "fuzzed str")),
    )
    for source, call in calls:
        with watchdog():
            try:
                result = call()
            except UpdmError as exc:
                check_error(exc, source)
            else:
                assert isinstance(result, SceneMetadata)
                assert result.path == source


# Values no real file has, or not where they are put: the typed lookups must refuse each.
_VALUES = (
    b"", b'""', b'"', b"NULL", b"-1", b"0", b"-0.0", b"1e999", b"-1e999", b"NaN", b"9" * 400,
    b"9" * 5000, b"2017-02-30", b"0000-00-00", b"99:99:99Z", b"LANDSAT_6", b"LANDSAT_9",
    b"MSS", b"OLI_TIRS", b"ETM", b"M", b"N", b"Y", b"UTM", b"PS", b"-61", b"61", b"91",
    b"\t", b"true", b"[1, 2]", b"{}", b'{"a": 1}', b"9" * 100_000 + b"x",
)  # fmt: skip
_ODL_VALUE = re.compile(
    rb"(?m)^[ \t]*(?!(?:END_)?GROUP\b)[A-Za-z][A-Za-z0-9_]*[ \t]*=[ \t]*(.+?)\r?$"
)
_XML_TEXT = re.compile(rb">([^<>]+)</")
_XML_ATTRIBUTE = re.compile(rb'\s(?!name=|location=|num=|xmlns)[A-Za-z_:]+="([^"]*)"')
_JSON_VALUE = re.compile(rb'": ("(?:[^"\\]|\\.)*"|[^,{}\[\]]+)')


def _value_sites(text: bytes) -> list[tuple[int, int]]:
    """Where the values of a metadata text are: (start, end) byte offsets."""
    head = text.lstrip()
    if head.startswith(b"{"):
        spans = [m.span(1) for m in _JSON_VALUE.finditer(text)]
    elif head.startswith(b"<"):
        spans = [m.span(1) for m in _XML_TEXT.finditer(text) if m.group(1).strip()]
        spans += [m.span(1) for m in _XML_ATTRIBUTE.finditer(text)]
    else:
        spans = [m.span(1) for m in _ODL_VALUE.finditer(text)]
    return spans


def _mutated(data: st.DataObject, corpus: Corpus) -> bytes:
    """A real file with some values replaced, then mutated byte- and line-wise."""
    _, content = corpus.draw(data)
    text, nul, padding = content.partition(b"\0")  # values are looked for in the text only
    sites = _value_sites(text)
    # Replaced from the last site to the first, so that earlier offsets stay valid.
    chosen = data.draw(st.lists(st.sampled_from(sites), max_size=3, unique=True), label="sites")
    for start, end in sorted(chosen, reverse=True):
        text = text[:start] + data.draw(st.sampled_from(_VALUES), label="value") + text[end:]
    return mutate(data, text + nul + padding, _TOKENS, min_operations=0, max_operations=4)


@fuzz_settings(CI_EXAMPLES)
@given(data=st.data())
def test_mutated_real_metadata_parses_or_raises_metadata_error(corpus, workdir, data):
    _check_all_entries(_mutated(data, corpus), workdir)


@pytest.mark.slow
@fuzz_settings(SLOW_EXAMPLES)
@given(data=st.data())
def test_mutated_real_metadata_parses_or_raises_metadata_error_long(corpus, workdir, data):
    _check_all_entries(_mutated(data, corpus), workdir)


@fuzz_settings(CI_EXAMPLES)
@given(
    data=st.data(),
    noise=st.one_of(
        st.binary(max_size=4096),
        st.text(max_size=2048).map(lambda t: t.encode("utf-8", "surrogatepass")),
    ),
)
def test_random_bytes_alone_or_after_a_real_head_parse_or_raise_metadata_error(
    corpus, workdir, data, noise
):
    # Random bytes on their own, and after the head of a real file (so that the format is
    # recognised and the reader goes deeper than its first check).
    _, content = corpus.draw(data)
    head = content[: data.draw(st.integers(0, min(len(content), 3000)), label="head")]
    _check_all_entries(noise if data.draw(st.booleans(), label="alone") else head + noise, workdir)


# ======================================================================================
# Escapes that fuzzing found, on real files: each raised something other than a
# MetadataError (or hung) before.
_ODL = "landsat/ethiopia-167055/LT05_L1TP_167055_20000309_20161214_01_T1/LT05_L1TP_167055_20000309_20161214_01_T1_MTL.txt"  # noqa: E501
_XML = "mtl/stactools-landsat/LM01_L1GS_001010_19720908_20200909_02_T2_MTL.xml"
_JSON = "mtl/rio-toa/LC80430302016140LGN00_MTL.json"
_ESPA = "mtl/rstoolbox/LC80980762015235LGN00.xml"
_DEEP = 3000


def _odl_with(text: str, key: str, value: str) -> str:
    edited, count = re.subn(rf"(?m)^(\s*{key} = ).*$", lambda m: m.group(1) + value, text)
    assert count == 1, key
    return edited


def _odl_deep(text: str) -> str:
    groups = "".join(f"GROUP = G{i}\n" for i in range(_DEEP))
    ends = "".join(f"END_GROUP = G{i}\n" for i in reversed(range(_DEEP)))
    end = "END_GROUP = L1_METADATA_FILE"
    return text.replace(end, groups + ends + end)


def _nested_before(marker: str, opening: str, closing: str, depth: int = _DEEP):
    """An edit that puts ``depth`` nested elements (or arrays) before ``marker``."""
    return lambda text: text.replace(marker, opening * depth + closing * depth + marker, 1)


def _xml_with(text: str, tag: str, value: str) -> str:
    edited, count = re.subn(rf"<{tag}>[^<]*</{tag}>", f"<{tag}>{value}</{tag}>", text)
    assert count == 1, tag
    return edited


def _json_with(text: str, path: tuple[str, ...], value) -> str:
    doc = json.loads(text)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return json.dumps(doc)


_HUGE = "9" * 5000  # more digits than Python converts to int (sys.get_int_max_str_digits)
_BIG = "9" * 400  # an int, but beyond the range of a float

_ESCAPES = {
    # ValueError: Exceeds the limit (4300 digits) for integer string conversion
    "odl-5000-digit-integer": (_ODL, lambda t: _odl_with(t, "QUANTIZE_CAL_MAX_BAND_1", _HUGE)),
    "odl-5000-digit-wrs-path": (_ODL, lambda t: _odl_with(t, "WRS_PATH", _HUGE)),
    "xml-5000-digit-integer": (_XML, lambda t: _xml_with(t, "WRS_PATH", _HUGE)),
    # OverflowError: int too large to convert to float
    "odl-400-digit-number": (_ODL, lambda t: _odl_with(t, "QUANTIZE_CAL_MAX_BAND_1", _BIG)),
    "odl-400-digit-sun-elevation": (_ODL, lambda t: _odl_with(t, "SUN_ELEVATION", _BIG)),
    "json-400-digit-sun-elevation": (
        _JSON,
        lambda t: re.sub(r'"SUN_ELEVATION": [\d.]+', f'"SUN_ELEVATION": {_BIG}', t, count=1),
    ),
    # RecursionError
    "odl-3000-nested-groups": (_ODL, _odl_deep),
    "json-3000-nested-arrays": (
        _JSON,
        _nested_before('"SUN_AZIMUTH": ', '"DEEP": ' + "[" * _DEEP, "]" * _DEEP + ", ", depth=1),
    ),
    "json-900-nested-objects": (
        _JSON,
        lambda t: _json_with(t, ("L1_METADATA_FILE", "DEEP"), json.loads("[" * 900 + "]" * 900)),
    ),
    "xml-3000-nested-elements": (_XML, _nested_before("</IMAGE_ATTRIBUTES>", "<a>", "</a>")),
    "espa-3000-nested-elements": (_ESPA, _nested_before("</global_metadata>", "<a x='1'>", "</a>")),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(_ESCAPES))
def test_found_by_fuzzing_huge_numbers_and_deep_nesting_raise_metadata_error(
    shared_data, workdir, case
):
    rel, edit = _ESCAPES[case]
    text = (shared_data / rel).read_text(encoding="utf-8")
    edited = edit(text)
    assert edited != text
    target = workdir / f"{case}_MTL.txt"
    target.write_text(edited, encoding="utf-8")
    for call in (lambda: read_mtl(target), lambda: read_mtl_text(edited, str(target))):
        with watchdog(), pytest.raises(MetadataError) as caught:
            call()
        check_error(caught.value, str(target))


def test_found_by_fuzzing_a_str_with_a_lone_surrogate_raises_metadata_error(shared_data):
    # read_mtl_text takes a str; one decoded with "surrogateescape" from a corrupt file
    # holds lone surrogates, which the XML parser cannot encode (UnicodeEncodeError before).
    text = (shared_data / _XML).read_bytes().decode("utf-8")
    corrupt = text.replace("LANDSAT_1", "LANDSAT_\udcff", 1)
    with pytest.raises(MetadataError, match=r"fuzzed\.xml: .*offset \d+") as caught:
        read_mtl_text(corrupt, "fuzzed.xml")
    check_error(caught.value, "fuzzed.xml")
    assert "\udcff" not in str(caught.value)


@pytest.mark.parametrize("char", ["\0", "\ud800"])
def test_found_by_fuzzing_a_path_with_a_nul_or_a_surrogate_raises_metadata_error(shared_data, char):
    # A STAC href with "\u0000" or "\ud800" reached open(), which raised ValueError
    # (embedded null byte) or UnicodeEncodeError.
    path = str(shared_data / _ODL)
    with pytest.raises(MetadataError, match="not a possible file name") as caught:
        read_mtl(path[:-4] + char + path[-4:])
    check_error(caught.value, _ODL[-20:-4])


_LONG = "9" * 100_000 + "x"  # digits, then what makes it no number


@pytest.mark.parametrize(
    ("rel", "edit"),
    [
        (_ODL, lambda t: _odl_with(t, "SUN_ELEVATION", _LONG)),
        (_XML, lambda t: _xml_with(t, "SUN_ELEVATION", _LONG)),
        (_JSON, lambda t: re.sub(r'"SUN_ELEVATION": [\d.]+', f'"SUN_ELEVATION": "{_LONG}"', t)),
    ],
    ids=["odl", "xml", "json"],
)
def test_found_by_fuzzing_a_value_of_100000_digits_and_a_letter_is_refused_at_once(
    shared_data, workdir, rel, edit
):
    # The number pattern split the run of digits in every possible way: minutes per value.
    target = workdir / "long_value_MTL.txt"
    target.write_text(edit((shared_data / rel).read_text(encoding="utf-8")), encoding="utf-8")
    with watchdog(10), pytest.raises(MetadataError, match="SUN_ELEVATION") as caught:
        read_mtl(target)
    check_error(caught.value, str(target))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_a_fifo_named_as_metadata_file_is_refused_without_blocking(tmp_path):
    # Opening a FIFO waits for a writer that never comes: the reader hung forever before.
    fifo = tmp_path / "LT05_L1TP_167055_20000309_20161214_01_T1_MTL.txt"
    os.mkfifo(fifo)
    with watchdog(5), pytest.raises(MetadataError, match="not a regular file") as caught:
        read_mtl(fifo)
    check_error(caught.value, str(fifo))


# ======================================================================================
# No message repeats a value of the file (issue 14: "Error messages name the file, the line
# number and what was expected, never the content of a file").
_SECRET_VALUES = (
    SECRET,
    f'"{SECRET}"',
    f'"{SECRET}',
    f"2017-03-{SECRET}",
    f"1.5{SECRET}",
    f"LANDSAT_{SECRET}",
)
# A line such as /etc/shadow holds, as a value that is no MTL line at all.
_SECRET_LINE = f"root:$6${SECRET}:19000:0:99999:7:::"


def _planted(data: st.DataObject, content: bytes) -> bytes:
    """``content`` with the secret as one of its values, or as a foreign line."""
    text = content.split(b"\0", 1)[0]
    value = data.draw(st.sampled_from(_SECRET_VALUES), label="secret value").encode()
    head = text.lstrip()
    if head.startswith(b"{"):
        doc = json.loads(text)
        path = data.draw(st.sampled_from(list(_json_leaves(doc, ()))), label="leaf")
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value.decode()
        text = json.dumps(doc).encode()
    elif not head.startswith(b"<") and data.draw(st.booleans(), label="foreign line"):
        lines = text.split(b"\n")
        lines.insert(data.draw(st.integers(0, len(lines)), label="line"), _SECRET_LINE.encode())
        text = b"\n".join(lines)
    else:
        start, end = data.draw(st.sampled_from(_value_sites(text)), label="site")
        if head.startswith(b"<"):
            value = value.replace(b'"', b"")
        text = text[:start] + value + text[end:]
    if data.draw(st.booleans(), label="truncate"):
        text = text[: data.draw(st.integers(0, len(text)), label="length")]
    return text


def _json_leaves(node, path):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _json_leaves(value, (*path, key))
    elif path:
        yield path


@fuzz_settings(CI_EXAMPLES)
@given(data=st.data())
def test_no_error_message_repeats_a_secret_planted_in_real_metadata(corpus, data):
    _, content = corpus.draw(data)
    planted = _planted(data, content)
    with watchdog():
        try:
            read_mtl_text(planted, "planted_MTL.txt")
        except UpdmError as exc:
            check_error(exc, "planted_MTL.txt")
            check_no_secret(exc)
