"""Property tests (hypothesis) of the job-spec parser: generated specs, mutations, noise.

Issue 14, "Property tests": random TOML-ish text, byte mutations of the shipped example
``examples/ethiopia-167055.toml`` and of generated valid specs, and random values put in
place of valid ones either parse or raise :class:`~updm_dask.errors.JobSpecError` with a
message naming the job file; nothing else escapes and nothing hangs. Generated valid specs
must parse, to what they say (so the generator, and the mutations made from it, stay
meaningful).

What fuzzing found is kept below as plain tests (deep nesting, huge integers, a NUL in a
path), so that it stays found whatever hypothesis draws.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
from pathlib import Path

import pytest
import tomli_w
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

from updm_dask.errors import JobSpecError, UpdmError
from updm_dask.jobs.spec import JobSpec, load_job_spec, parse_job_spec

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ethiopia-167055.toml"

_TOKENS = (
    *COMMON_TOKENS,
    b"[",
    b"]",
    b"[[",
    b"{",
    b"}",
    b"a = [",
    b"a = {b = ",
    b"[a.b.c]\n",
    b"#",
    b'"""',
    b"'''",
    b"1979-05-27T07:32:00Z",
    b"inf",
    b"nan",
    b"0x7f",
    b"true",
    b"\\u0000",
)

# Strings without a path separator: a drawn path stays inside the job file's folder.
_TEXT = st.text(
    st.characters(blacklist_characters="/\\", blacklist_categories=("Cs",)), max_size=12
)
# Valid paths and names: no NUL either (a file name cannot hold one).
_NAME = st.text(
    st.characters(blacklist_characters="/\\\0", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=12,
)
_SENSORS = ("MSS", "TM", "ETM+", "OLI", "OLI-2")
# The canonical name of each alias the docs promise (keys.py: "aliases such as ETM or OLI_TIRS").
_ALIASES = {"ETM": "ETM+", "OLI_TIRS": "OLI", "TM": "TM", "MSS": "MSS", "OLI-2": "OLI-2"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    # Warm-up: the first example must not pay for loading the CRS database and patterns.
    load_job_spec(EXAMPLE)
    return tmp_path_factory.mktemp("fuzz_spec")


def _write(workdir: Path, content: bytes) -> Path:
    path = workdir / "job.toml"
    path.write_bytes(content)
    return path


def _load(path: Path) -> JobSpec | None:
    """load_job_spec: a JobSpec, or None after checking the error is a JobSpecError."""
    with watchdog():
        try:
            return load_job_spec(path)
        except UpdmError as exc:
            check_error(exc, str(path))
            assert isinstance(exc, JobSpecError), type(exc).__name__
            return None


# --------------------------------------------------------------------------------------
# Valid specs, written here from the documented format (not from the parser's key table).
@st.composite
def valid_specs(draw) -> dict:
    spec: dict = {
        "inputs": {"paths": draw(st.lists(_NAME, min_size=1, max_size=3))},
        "cube": {"path": draw(_NAME)},
    }
    if draw(st.booleans()):
        spec["job"] = {"name": draw(_NAME)}
    if draw(st.booleans()):
        start = draw(st.dates(dt.date(1972, 7, 23), dt.date(2030, 1, 1)))
        end = draw(st.dates(start, dt.date(2030, 1, 1)))
        spec["inputs"]["start"] = draw(st.sampled_from([start, start.isoformat()]))
        spec["inputs"]["end"] = draw(st.sampled_from([end, end.isoformat()]))
    if draw(st.booleans()):
        spec["inputs"]["sensors"] = draw(
            st.lists(st.sampled_from(sorted(_ALIASES)), min_size=1, max_size=4)
        )
    grid = draw(st.sampled_from(["none", "explicit", "aoi"]))
    if grid == "explicit":
        res = draw(st.sampled_from([15.0, 30.0, 60.0]))
        x = 30.0 * draw(st.integers(5000, 30000))
        y = 30.0 * draw(st.integers(0, 300000))
        spec["grid"] = {
            "crs": draw(st.sampled_from(["EPSG:32637", "EPSG:32622", "EPSG:32616"])),
            "transform": [res, 0.0, x, 0.0, -res, y],
            "shape": [draw(st.integers(1, 5000)), draw(st.integers(1, 5000))],
        }
    elif grid == "aoi":
        lon = draw(st.floats(38.0, 40.5))
        lat = draw(st.floats(4.0, 9.0))
        spec["grid"] = {
            "crs": "EPSG:32637",
            "aoi": [lon, lat, lon + draw(st.floats(0.001, 0.2)), lat + draw(st.floats(0.001, 0.2))],
            "resolution": draw(st.sampled_from([15, 30, 60.0])),
        }
    if draw(st.booleans()):
        spec["science"] = {
            "patterns": "default",
            "method": draw(st.sampled_from(["boxcar", "rsr"])),
            "rules": draw(st.sampled_from(["auto", "TM", "MSS", {"MSS": "MSS", "TM": "TM"}])),
            "constrain_supplementary": draw(st.booleans()),
            "calibration": draw(st.sampled_from(["mtl", "note-1985-landsat5", "chander2009"])),
            "rayleigh": draw(st.booleans()),
        }
    if draw(st.booleans()):
        spec["batch"] = {"size": draw(st.integers(1, 64))}
    return spec


def _check_parsed_as_written(spec: JobSpec, written: dict, workdir: Path) -> None:
    assert spec.name == written.get("job", {}).get("name", spec.name)
    assert spec.inputs == tuple(str(workdir / p) for p in written["inputs"]["paths"])
    assert spec.cube == str(workdir / written["cube"]["path"])
    if "start" in written["inputs"]:
        assert spec.start == dt.date.fromisoformat(str(written["inputs"]["start"]))
        assert spec.end == dt.date.fromisoformat(str(written["inputs"]["end"]))
    if "sensors" in written["inputs"]:
        assert spec.sensors == tuple(_ALIASES[s] for s in written["inputs"]["sensors"])
    if "batch" in written:
        assert spec.batch_size == written["batch"]["size"]
    assert (spec.grid is None) == ("grid" not in written)
    if "shape" in written.get("grid", {}):
        assert tuple(spec.grid.shape) == tuple(written["grid"]["shape"])


@fuzz_settings(CI_EXAMPLES)
@given(written=valid_specs())
def test_generated_valid_specs_parse_to_what_they_say(workdir, written):
    path = _write(workdir, tomli_w.dumps(written).encode())
    with watchdog():
        spec = load_job_spec(path)
    _check_parsed_as_written(spec, written, workdir)


# --------------------------------------------------------------------------------------
# Byte mutations of the shipped example and of generated specs.
def _mutated_text(data: st.DataObject) -> bytes:
    if data.draw(st.booleans(), label="the example"):
        text = EXAMPLE.read_bytes()
    else:
        text = tomli_w.dumps(data.draw(valid_specs(), label="spec")).encode()
    return mutate(data, text, _TOKENS)


@fuzz_settings(CI_EXAMPLES)
@given(data=st.data())
def test_mutated_job_files_parse_or_raise_job_spec_error(workdir, data):
    _load(_write(workdir, _mutated_text(data)))


@pytest.mark.slow
@fuzz_settings(SLOW_EXAMPLES)
@given(data=st.data())
def test_mutated_job_files_parse_or_raise_job_spec_error_long(workdir, data):
    _load(_write(workdir, _mutated_text(data)))


# Text built from TOML's own pieces, and plain noise.
_TOML_PIECES = st.sampled_from(
    ["[", "]", "[[", "]]", "{", "}", "=", ",", ".", '"', "'", "#", "\n", " ", "job", "inputs",
     "cube", "grid", "science", "batch", "name", "paths", "path", "crs", "shape", "size",
     "transform", "aoi", "resolution", "rules", "1", "-1", "1.5", "inf", "nan", "true",
     "1979-05-27", "07:32:00", "\\u0000", "\\"]
)  # fmt: skip


@fuzz_settings(CI_EXAMPLES)
@given(
    content=st.one_of(
        st.lists(_TOML_PIECES, max_size=60).map(lambda parts: "".join(parts).encode()),
        st.binary(max_size=2000),
        st.text(max_size=500).map(str.encode),
    )
)
def test_random_toml_ish_text_parses_or_raises_job_spec_error(workdir, content):
    _load(_write(workdir, content))


# --------------------------------------------------------------------------------------
# Any TOML value anywhere: parse_job_spec on the parsed document.
_TOML_SCALARS = st.one_of(
    _TEXT,
    st.integers(),
    st.integers(-(10**400), 10**400),
    st.floats(),
    st.booleans(),
    st.dates(),
    st.datetimes(timezones=st.sampled_from([None, dt.UTC])),
    st.times(),
)
_TOML_VALUES = st.recursive(
    _TOML_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=8,
)


def _places(node: dict, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    for key, value in node.items():
        if isinstance(value, dict):
            out += _places(value, (*prefix, key))
        else:
            out.append((*prefix, key))
    return out


@st.composite
def mutated_documents(draw) -> dict:
    doc = copy.deepcopy(draw(valid_specs()))
    for _ in range(draw(st.integers(1, 4))):
        place = draw(st.sampled_from(_places(doc)))
        parent = doc
        for key in place[:-1]:
            parent = parent[key]
        what = draw(st.sampled_from(["replace", "delete", "add"]))
        if not place:
            doc[draw(_TEXT)] = draw(_TOML_VALUES)
        elif what == "replace":
            parent[place[-1]] = draw(_TOML_VALUES)
        elif what == "delete":
            del parent[place[-1]]
        elif isinstance(parent[place[-1]], dict):
            parent[place[-1]][draw(_TEXT)] = draw(_TOML_VALUES)
    return doc


@fuzz_settings(CI_EXAMPLES)
@given(doc=mutated_documents())
def test_any_value_anywhere_parses_or_raises_job_spec_error(workdir, doc):
    with watchdog():
        try:
            parse_job_spec(doc, source="fuzzed.toml", base=workdir)
        except UpdmError as exc:
            check_error(exc, "fuzzed.toml")
            assert isinstance(exc, JobSpecError), type(exc).__name__


@pytest.mark.slow
@fuzz_settings(SLOW_EXAMPLES)
@given(doc=mutated_documents())
def test_any_value_anywhere_parses_or_raises_job_spec_error_long(workdir, doc):
    with watchdog():
        try:
            parse_job_spec(doc, source="fuzzed.toml", base=workdir)
        except UpdmError as exc:
            check_error(exc, "fuzzed.toml")
            assert isinstance(exc, JobSpecError), type(exc).__name__


# --------------------------------------------------------------------------------------
# A secret in a comment is never repeated, whatever the mutation does around it.
@fuzz_settings(CI_EXAMPLES)
@given(data=st.data())
def test_no_error_message_repeats_a_secret_from_a_comment(workdir, data):
    lines = EXAMPLE.read_bytes().split(b"\n")
    for _ in range(data.draw(st.integers(1, 3), label="secrets")):
        at = data.draw(st.integers(0, len(lines)), label="line")
        if data.draw(st.booleans(), label="own line") or at == len(lines):
            lines.insert(at, f"# password: {SECRET}".encode())
        else:
            lines[at] += f"  # token {SECRET}".encode()
    content = mutate(data, b"\n".join(lines), _TOKENS, min_operations=0, max_operations=3)
    path = _write(workdir, content)
    with watchdog():
        try:
            load_job_spec(path)
        except UpdmError as exc:
            check_error(exc, str(path))
            check_no_secret(exc)


# ======================================================================================
# Escapes that fuzzing found: each raised something other than a JobSpecError before.
_DEEP = 3000
_GOOD_HEAD = '[inputs]\npaths = ["scenes"]\n[cube]\npath = "c.icechunk"\n'
_GRID = '[grid]\ncrs = "EPSG:32637"\n'
_BIG = "9" * 400

_AOI = "\nresolution = 30\n"
_SHAPE = "\nshape = [1, 1]\n"
_FOUND = {
    # RecursionError in tomllib
    "3000-nested-arrays": _GOOD_HEAD + "[job]\nname = " + "[" * _DEEP + "]" * _DEEP,
    "3000-nested-inline-tables": _GOOD_HEAD + "[job]\nname = " + "{a=" * _DEEP + "1" + "}" * _DEEP,
    # ValueError: Exceeds the limit (4300 digits) for integer string conversion
    "5000-digit-batch-size": _GOOD_HEAD + "[batch]\nsize = " + "9" * 5000,
    # OverflowError: int too large to convert to float
    "400-digit-aoi": _GOOD_HEAD + _GRID + f"aoi = [39, 8, {_BIG}, 9]" + _AOI,
    "400-digit-resolution": _GOOD_HEAD + _GRID + "aoi = [39, 8, 39.1, 8.1]\nresolution = " + _BIG,
    "400-digit-transform": _GOOD_HEAD + _GRID + f"transform = [30, 0, {_BIG}, 0, -30, 0]" + _SHAPE,
    # ValueError: embedded null byte (a TOML string may hold \u0000)
    "nul-in-patterns-path": _GOOD_HEAD + '[science]\npatterns = "spectra\\u0000.csv"\n',
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(_FOUND))
def test_found_by_fuzzing_deep_nesting_huge_numbers_nul_paths_raise_job_spec_error(workdir, case):
    path = _write(workdir, _FOUND[case].encode())
    with watchdog(), pytest.raises(JobSpecError) as caught:
        load_job_spec(path)
    check_error(caught.value, str(path))


@pytest.mark.parametrize("key", ["inputs.paths", "inputs.stac", "cube.path", "science.rules"])
def test_a_nul_in_any_path_is_refused_naming_the_key(workdir, key):
    # A NUL cannot be in a file name; caught here, not by whatever opens the path later.
    doc = {"inputs": {"paths": ["scenes"]}, "cube": {"path": "c.icechunk"}}
    section, name = key.split(".")
    bad = "scenes\0.tar" if name in ("paths", "stac") else "c\0.icechunk"
    doc.setdefault(section, {})[name] = [bad] if name in ("paths", "stac") else bad
    with pytest.raises(JobSpecError, match=rf"\[{key}\].*NUL") as caught:
        parse_job_spec(doc, source="job.toml", base=workdir)
    check_error(caught.value, "job.toml")


def test_the_shipped_example_parses(workdir):
    # The start of every mutation above: it must be valid as shipped.
    spec = load_job_spec(EXAMPLE)
    assert spec.name == "ethiopia-167055"
    assert spec.grid is not None and tuple(spec.grid.shape) == (101, 101)
    assert spec.batch_size == 2
    assert not math.isnan(spec.grid.transform[0])
