"""docs/job-spec.schema.json: the validator's table as a JSON Schema, for editors."""

from __future__ import annotations

import copy
import datetime as dt
import json
import tomllib
from pathlib import Path

import jsonschema
import pytest

from updm_dask.demo import make_demo_archive
from updm_dask.demo.writers import demo_job_spec
from updm_dask.errors import JobSpecError
from updm_dask.jobs.keys import check_keys, job_spec_schema

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO_ROOT / "docs" / "job-spec.schema.json"


def _as_json(value):
    # What an editor validates: TOML dates as their ISO strings.
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def test_the_schema_file_is_the_validators_schema():
    on_disk = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert on_disk == job_spec_schema(), (
        "docs/job-spec.schema.json is out of date: run python docs/_reference.py --write-schema"
    )


@pytest.fixture(scope="module")
def demo_spec(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo-spec")
    archive = make_demo_archive(work, n_scenes=1, size=32)
    return tomllib.loads(demo_job_spec(archive, work / "cube.icechunk"))


@pytest.mark.parametrize(
    "example",
    ["deploy/job.example.toml", "examples/ethiopia-167055.toml", "demo"],
)
def test_the_real_example_specs_validate(example, validator, demo_spec):
    data = demo_spec if example == "demo" else tomllib.loads((REPO_ROOT / example).read_text())
    assert list(validator.iter_errors(_as_json(data))) == []
    check_keys(data, example)  # and the package's validator agrees


def _bad(spec, change):
    data = copy.deepcopy(spec)
    change(data)
    return data


BAD = {
    "unknown section": lambda d: d.update(output={"path": "x"}),
    "unknown key": lambda d: d["inputs"].update(folders=["x"]),
    "wrong type": lambda d: (
        d["batch"].update(size="8") if "batch" in d else d.update(batch={"size": "8"})
    ),
    "choice outside the list": lambda d: d.setdefault("science", {}).update(method="gauss"),
    "no cube path": lambda d: d["cube"].pop("path"),
    "boolean for a number": lambda d: d.setdefault("batch", {}).update(size=True),
}


@pytest.mark.parametrize("what", sorted(BAD))
def test_bad_specs_fail_the_schema_and_the_validator(what, validator):
    good = tomllib.loads((REPO_ROOT / "examples" / "ethiopia-167055.toml").read_text())
    data = _bad(good, BAD[what])
    assert list(validator.iter_errors(_as_json(data))), what
    with pytest.raises(JobSpecError):
        check_keys(data, "bad.toml")


def test_a_grid_given_twice_or_no_input_fails_the_schema(validator):
    good = tomllib.loads((REPO_ROOT / "examples" / "ethiopia-167055.toml").read_text())
    both = _bad(good, lambda d: d["grid"].update(aoi=[39.8, 6.81, 39.83, 6.84], resolution=30))
    assert list(validator.iter_errors(_as_json(both)))
    empty = _bad(good, lambda d: d["inputs"].update(paths=[]))
    assert list(validator.iter_errors(_as_json(empty)))
