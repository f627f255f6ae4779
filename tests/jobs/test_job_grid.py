"""The grid of a job without a CRS: the UTM zone of the AOI, or the extent of the scenes."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from updm_dask.cube import open_cube
from updm_dask.errors import JobSpecError
from updm_dask.geo import CubeGrid
from updm_dask.jobs.keys import job_spec_schema
from updm_dask.jobs.run import grid_of_scenes, run_job_file
from updm_dask.jobs.spec import GridFromScenes, load_job_spec, parse_job_spec
from updm_dask.scenes import discover_scenes

HEAD = '[job]\nname = "aoi"\n[inputs]\npaths = ["data"]\n[cube]\npath = "c.icechunk"\n'
#: The grid the four Ethiopia crops share (examples/ethiopia-167055.toml).
ETHIOPIA = CubeGrid("EPSG:32637", (30.0, 0.0, 589035.0, 0.0, -30.0, 756165.0), (101, 101))


def parse(text: str):
    return parse_job_spec(tomllib.loads(HEAD + text), source="job.toml", base=Path("/x"))


@pytest.mark.parametrize(
    ("aoi", "crs", "centre"),
    [
        ([39.80, 6.80, 39.83, 6.83], "EPSG:32637", "6.815 N, 39.81 E"),
        ([-44.2, -20.2, -44.1, -20.1], "EPSG:32723", "20.15 S, 44.15 W"),
        ([-122.5, 37.7, -122.3, 37.9], "EPSG:32610", "37.8 N, 122.4 W"),
    ],
)
def test_an_aoi_without_crs_gets_the_utm_zone_of_its_centre(aoi, crs, centre):
    spec = parse(f"[grid]\naoi = {aoi}\nresolution = 30\n")
    assert spec.grid.crs == crs
    assert spec.grid == CubeGrid.from_aoi(aoi, 30, crs)
    assert spec.notes == (
        f"grid: no [grid] crs given; using {crs}, the UTM zone of the AOI's centre ({centre})",
    )


def test_an_aoi_beyond_the_utm_zones_needs_a_crs():
    with pytest.raises(JobSpecError, match=r"job.toml: \[grid\] aoi: .*outside the UTM zones"):
        parse("[grid]\naoi = [10.0, 85.0, 11.0, 86.0]\nresolution = 30\n")
    spec = parse('[grid]\naoi = [10.0, 85.0, 11.0, 86.0]\nresolution = 30\ncrs = "EPSG:3413"\n')
    assert spec.grid.crs == "EPSG:3413" and spec.notes == ()


def test_job_ids_of_existing_specs_are_unchanged():
    # Ids of these specs before the grid could be chosen or derived by the package.
    aoi = parse('[grid]\ncrs = "EPSG:32637"\naoi = [39.80, 6.80, 39.83, 6.83]\nresolution = 30\n')
    assert aoi.job_id == "aoi-1a9ece3ce165"
    explicit = parse(
        '[grid]\ncrs = "EPSG:32637"\ntransform = [30.0, 0.0, 589035.0, 0.0, -30.0, 756165.0]\n'
        "shape = [101, 101]\n"
    )
    assert explicit.job_id == "aoi-3089280a2d8d"
    derived = parse("[grid]\nfrom_scenes = true\n")
    assert derived.job_id not in (aoi.job_id, explicit.job_id, parse("").job_id)


def test_from_scenes_keys_are_checked_and_in_the_schema():
    jsonschema = pytest.importorskip("jsonschema")
    spec = parse('[grid]\nfrom_scenes = true\ncrs = "EPSG:32632"\nresolution = 60\n')
    assert spec.grid is None
    assert spec.grid_from_scenes == GridFromScenes("EPSG:32632", 60.0)
    with pytest.raises(JobSpecError, match=r"\[grid.from_scenes\] true derives .* leave out aoi"):
        parse("[grid]\nfrom_scenes = true\naoi = [39.4, 8.0, 39.5, 8.1]\nresolution = 30\n")
    with pytest.raises(JobSpecError, match=r"\[grid.crs\] crs: the cube grid needs a projected"):
        parse('[grid]\nfrom_scenes = true\ncrs = "EPSG:4326"\n')
    with pytest.raises(JobSpecError, match=r"\[grid.resolution\] expected a positive number"):
        parse("[grid]\nfrom_scenes = true\nresolution = -30\n")
    with pytest.raises(JobSpecError, match=r"\[grid.crs\] is required with transform \+ shape"):
        parse("[grid]\ntransform = [30.0, 0.0, 0.0, 0.0, -30.0, 0.0]\nshape = [1, 1]\n")
    schema = job_spec_schema()
    base = {"inputs": {"paths": ["a"]}, "cube": {"path": "c"}}
    for good in ({"from_scenes": True}, {"aoi": [39.4, 8.0, 39.5, 8.1], "resolution": 30}):
        jsonschema.validate({**base, "grid": good}, schema)
    for bad in (
        {"from_scenes": True, "aoi": [39.4, 8.0, 39.5, 8.1], "resolution": 30},
        {"from_scenes": False},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**base, "grid": bad}, schema)


def test_the_grid_of_the_real_scenes_is_the_grid_they_share(shared_data):
    found = discover_scenes([str(shared_data / "landsat" / "ethiopia-167055")])
    assert len(found.scenes) == 4
    assert grid_of_scenes(found.scenes) == (ETHIOPIA, 4)
    coarse, _ = grid_of_scenes(found.scenes, GridFromScenes(resolution=60.0))
    assert coarse.resolution == 60.0 and coarse.crs == "EPSG:32637"
    # every pixel centre on a multiple of 60 m, and the crops' extent covered
    assert coarse.x[0] % 60 == 0 and coarse.bounds[0] <= ETHIOPIA.bounds[0]
    assert coarse.bounds[3] >= ETHIOPIA.bounds[3]


@pytest.mark.slow
def test_a_job_derives_its_grid_from_its_scenes_and_says_so(shared_data, tmp_path, client):
    job = tmp_path / "job.toml"
    job.write_text(
        f'[job]\nname = "derived"\n[inputs]\npaths = ["{shared_data}/landsat/ethiopia-167055"]\n'
        f'sensors = ["OLI"]\n[cube]\npath = "{tmp_path}/cube.icechunk"\n'
        "[grid]\nfrom_scenes = true\n"
    )
    notes: list[str] = []
    report = run_job_file(job, client=client, progress=False, echo=notes.append)
    assert report.exit_code == 0 and len(report.done) == 1
    assert open_cube(tmp_path / "cube.icechunk").grid == ETHIOPIA
    assert notes[0] == (
        "updm run derived: grid: derived from 1 of the 1 scenes found: EPSG:32637, "
        "101 x 101 pixels of 30 m, bounds (589035, 753135, 592065, 756165)"
    )
    # Run again: the cube keeps its grid, nothing is derived or stored twice.
    notes.clear()
    again = run_job_file(job, client=client, progress=False, echo=notes.append)
    assert again.done == [] and len(again.skipped) == 1
    assert not any("grid: derived" in n for n in notes)
    assert load_job_spec(job).grid is None
