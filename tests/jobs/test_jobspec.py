"""Job specification parsing: good files, and every bad key/value named in the error."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from updm_dask.errors import JobSpecError
from updm_dask.geo import CubeGrid
from updm_dask.jobs.spec import load_job_spec

GOOD = """
[job]
name = "t"

[inputs]
paths = ["scenes", "/abs/archive.tar.gz", "s3://bucket/prefix"]
start = "1980-01-01"
end = 2020-12-31
sensors = ["MSS", "OLI_TIRS", "ETM"]

[cube]
path = "out/cube.icechunk"

[grid]
crs = "EPSG:32637"
transform = [30.0, 0.0, 544485.0, 0.0, -30.0, 902415.0]
shape = [101, 101]

[science]
rules = { MSS = "MSS", TM = "my_rules.toml" }
calibration = "note-1985-landsat5"

[batch]
size = 3
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.toml"
    path.write_text(text)
    return path


def test_good_spec_resolves_relative_paths(tmp_path):
    spec = load_job_spec(write(tmp_path, GOOD))
    assert spec.inputs == (str(tmp_path / "scenes"), "/abs/archive.tar.gz", "s3://bucket/prefix")
    assert spec.cube == str(tmp_path / "out/cube.icechunk")
    assert spec.start == dt.date(1980, 1, 1) and spec.end == dt.date(2020, 12, 31)
    assert spec.sensors == ("MSS", "OLI", "ETM+")
    assert spec.rules == {"MSS": "MSS", "TM": str(tmp_path / "my_rules.toml")}
    assert spec.science.calibration == "note-1985-landsat5"
    assert spec.batch_size == 3
    assert spec.grid.shape == (101, 101)
    # the id is stable for the same content and changes with it
    assert spec.job_id == load_job_spec(write(tmp_path, GOOD)).job_id
    # batch size changes how, not what: a resumed job may use another one
    assert (
        spec.job_id == load_job_spec(write(tmp_path, GOOD.replace("size = 3", "size = 4"))).job_id
    )
    assert spec.job_id != load_job_spec(write(tmp_path, GOOD.replace('"t"', '"u"'))).job_id


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("[batch]", "[batches]"), r"\[batches\] unknown section"),
        (("size = 3", "size = 3\nsise = 4"), r"\[batch.sise\] unknown key"),
        (("size = 3", "size = 0"), r"\[batch.size\] expected a positive integer"),
        (("size = 3", 'size = "3"'), r"\[batch.size\] expected int"),
        (('start = "1980-01-01"', 'start = "1980-13-01"'), r"\[inputs.start\] expected a date"),
        (('start = "1980-01-01"', 'start = "2021-01-01"'), r"\[inputs.end\] .* is before"),
        (('"MSS", "OLI_TIRS", "ETM"', '"AVHRR"'), r"\[inputs.sensors\] unknown sensor 'AVHRR'"),
        (("shape = [101, 101]", "shape = [101]"), r"\[grid.shape\] expected \[ny, nx\]"),
        (("shape = [101, 101]", "shape = [101, -1]"), r"\[grid.shape\]"),
        (
            ("transform = [30.0, 0.0, 544485.0, 0.0, -30.0, 902415.0]", "transform = [30.0]"),
            r"\[grid.transform\]",
        ),
        (('crs = "EPSG:32637"', 'aoi = [1, 2, 3, 4]\ncrs = "EPSG:32637"'), r"\[grid\] give either"),
        (
            ('calibration = "note-1985-landsat5"', 'calibration = "magic"'),
            r"\[science.calibration\]",
        ),
        (('calibration = "note-1985-landsat5"', 'method = "spline"'), r"\[science.method\]"),
        (('path = "out/cube.icechunk"', 'where = "x"'), r"\[cube.where\] unknown key"),
    ],
)
def test_bad_values_name_the_key(tmp_path, change, message):
    old, new = change
    assert old in GOOD
    with pytest.raises(JobSpecError, match=message):
        load_job_spec(write(tmp_path, GOOD.replace(old, new, 1)))


def test_missing_required_and_unreadable(tmp_path):
    with pytest.raises(JobSpecError, match=r"\[cube.path\] is required"):
        load_job_spec(write(tmp_path, '[inputs]\npaths = ["a"]\n'))
    with pytest.raises(JobSpecError, match=r"\[inputs.paths\] is required \(or inputs.stac\)"):
        load_job_spec(write(tmp_path, '[cube]\npath = "c"\n'))
    with pytest.raises(JobSpecError, match=r"\[inputs.paths\] is required \(or inputs.stac\)"):
        load_job_spec(write(tmp_path, '[inputs]\npaths = []\n[cube]\npath = "c"\n'))
    only_stac = load_job_spec(write(tmp_path, '[inputs]\nstac = ["s.json"]\n[cube]\npath = "c"\n'))
    assert only_stac.inputs == () and only_stac.stac == (str(tmp_path / "s.json"),)
    with pytest.raises(JobSpecError, match="not valid TOML"):
        load_job_spec(write(tmp_path, "[inputs\npaths = 1"))
    with pytest.raises(JobSpecError, match="does not exist"):
        load_job_spec(tmp_path / "nope.toml")
    with pytest.raises(JobSpecError, match=r"\[grid.crs\] is required"):
        load_job_spec(
            write(tmp_path, '[inputs]\npaths = ["a"]\n[cube]\npath = "c"\n[grid]\nshape = [1, 1]\n')
        )


def test_aoi_grid_is_accepted(tmp_path):
    text = (
        '[inputs]\npaths = ["a"]\n[cube]\npath = "c"\n'
        '[grid]\ncrs = "EPSG:32637"\naoi = [39.4, 8.0, 39.5, 8.1]\nresolution = 30\n'
    )
    spec = load_job_spec(write(tmp_path, text))
    assert spec.grid == CubeGrid.from_aoi([39.4, 8.0, 39.5, 8.1], 30, "EPSG:32637")
    with pytest.raises(JobSpecError, match=r"\[grid.aoi\]"):
        load_job_spec(
            write(tmp_path, text.replace("[39.4, 8.0, 39.5, 8.1]", "[39.5, 8.0, 39.4, 8.1]"))
        )


def test_batch_size_defaults_to_the_dask_config(tmp_path):
    import dask

    without = GOOD.replace("[batch]\nsize = 3\n", "")
    assert "[batch]" not in without
    assert load_job_spec(write(tmp_path, without)).batch_size == 8  # updm.yaml default
    with dask.config.set({"updm.job.batch-size": 16}):
        assert load_job_spec(write(tmp_path, without)).batch_size == 16
        assert load_job_spec(write(tmp_path, GOOD)).batch_size == 3  # the spec wins
    with dask.config.set({"updm.job.batch-size": "many"}):
        with pytest.raises(JobSpecError, match=r"batch\.size.*updm\.job\.batch-size"):
            load_job_spec(write(tmp_path, without))


def _as_json(data):
    """A parsed TOML document as JSON sees it (dates become ISO strings)."""
    if isinstance(data, dict):
        return {k: _as_json(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_as_json(v) for v in data]
    return data.isoformat() if isinstance(data, dt.date) else data


def test_the_json_schema_follows_the_key_table():
    import tomllib

    jsonschema = pytest.importorskip("jsonschema")
    from updm_dask.jobs.keys import JOB_SPEC_KEYS, format_job_spec_keys, job_spec_schema

    schema = job_spec_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    sections = schema["properties"]
    assert [(k.section, k.key) for k in JOB_SPEC_KEYS] == [
        (s, k) for s, body in sections.items() for k in body["properties"]
    ]
    good = _as_json(tomllib.loads(GOOD))
    jsonschema.validate(good, schema)
    aoi = {**good, "grid": {"crs": "EPSG:32637", "aoi": [39.4, 8.0, 39.5, 8.1], "resolution": 30}}
    jsonschema.validate(aoi, schema)
    for bad in (
        {**good, "batches": {"size": 3}},
        {**good, "batch": {"size": 0}},
        {**good, "science": {"method": "spline"}},
        {**good, "grid": {**good["grid"], "aoi": [1, 2, 3, 4], "resolution": 30}},
        {**good, "grid": {"transform": good["grid"]["transform"], "shape": [101, 101]}},
        {**good, "inputs": {"paths": []}},
        {k: v for k, v in good.items() if k != "cube"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    table = format_job_spec_keys().splitlines()
    assert len(table) == 2 + len(JOB_SPEC_KEYS)
    assert "| batch | size | int |" in table[-1]


def test_the_module_example_is_a_valid_spec_using_every_section(tmp_path):
    import updm_dask.jobs.spec as module

    example = module.__doc__.split("Example::", 1)[1].split("\n\n", 1)[1]
    example = "\n".join(line[4:] for line in example.split("\nEvery key")[0].splitlines())
    spec = load_job_spec(write(tmp_path, example))
    assert spec.name == "ethiopia" and spec.grid.shape == (101, 101)
    assert spec.science.method == "boxcar" and spec.science.rayleigh is True
    assert spec.batch_size == 8


def test_the_spec_holds_the_science_and_one_hash(tmp_path):
    from updm_dask.pipeline import Science

    spec = load_job_spec(write(tmp_path, GOOD))
    assert isinstance(spec.science, Science)
    assert spec.science.calibration == "note-1985-landsat5" and spec.science.method == "boxcar"
    assert spec.rules == spec.science.rules
    # "mtl" is the scene's own calibration: None for the science
    assert load_job_spec(write(tmp_path, GOOD.replace("note-1985-landsat5", "mtl"))).science == (
        Science(rules=spec.science.rules)
    )
    # the science enters the job id through its own hash
    rsr = load_job_spec(write(tmp_path, GOOD.replace("[science]", '[science]\nmethod = "rsr"')))
    assert rsr.science.sha256() != spec.science.sha256() and rsr.job_id != spec.job_id
    # an explicit grid and the AOI that covers the same pixels are the same job
    xmin, ymin, xmax, ymax = spec.grid.bounds
    aoi_text = GOOD.replace(
        "transform = [30.0, 0.0, 544485.0, 0.0, -30.0, 902415.0]\nshape = [101, 101]",
        f"aoi = [{xmin + 1}, {ymin + 1}, {xmax - 1}, {ymax - 1}]\n"
        'aoi_crs = "EPSG:32637"\nresolution = 30',
    )
    assert load_job_spec(write(tmp_path, aoi_text)).job_id == spec.job_id
