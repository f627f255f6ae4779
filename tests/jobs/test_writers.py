"""Writers: a write conflict during the per-year rebuild at the end of a job.

The other writer is real: a second cube handle (its own Icechunk repository object) that
appends a real Landsat scene of ../shared/data and commits, at the moment the job's own
rebuild is about to commit (as tests/jobs/test_jobs.py races batch commits).
"""

from __future__ import annotations

from pathlib import Path

import dask.config
import numpy as np
import pytest

import updm_dask.cube._cube as cube_impl
from updm_dask.cube import CubeConflictError, open_cube
from updm_dask.jobs.run import run_job_file, scene_on_grid
from updm_dask.metadata import read_mtl
from updm_dask.scenes import discover_scenes

TM_2000 = "LT05_L1TP_167055_20000309_20161214_01_T1"
TM_2010 = "LT51670552010352MLK00"
ETM_2017 = "LE07_L1TP_167055_20170316_20170411_01_T1"
OLI_2017 = "LC08_L1TP_167055_20170308_20170317_01_T1"


@pytest.fixture(scope="module")
def ethiopia(shared_data) -> Path:
    return shared_data / "landsat" / "ethiopia-167055"


def _job(tmp_path: Path, folders: list[Path]) -> Path:
    """A job over some of the real scenes, on the example's grid."""
    paths = ", ".join(f'"{f}"' for f in folders)
    job = tmp_path / "job.toml"
    job.write_text(
        f'[job]\nname = "writers"\n[inputs]\npaths = [{paths}]\n'
        f'[cube]\npath = "{tmp_path / "cube.icechunk"}"\n'
        '[grid]\ncrs = "EPSG:32637"\n'
        "transform = [30.0, 0.0, 589035.0, 0.0, -30.0, 756165.0]\nshape = [101, 101]\n"
        "[batch]\nsize = 4\n"
    )
    return job


def _scene_id(folder: Path) -> str:
    return read_mtl(str(next(folder.glob("*_MTL.txt")))).scene_id


def _rival_at_rebuild(monkeypatch, cube_path: Path, sources: list, times: int) -> dict:
    """Make another writer append one of ``sources`` before each of the first ``times``
    commits of a per-year rebuild (the job's own commit then finds the branch moved)."""
    real_commit = cube_impl.Cube._commit
    state = {"raced": 0}

    def racing_commit(self, session, message, metadata):
        if metadata.get("action") == "rebuild_yearly" and state["raced"] < times:
            state["raced"] += 1
            rival = open_cube(cube_path)
            placed = scene_on_grid(sources.pop(0), rival.grid)
            rival.append_scenes([placed], metadata={"job_id": "rival"}, message="rival")
        return real_commit(self, session, message, metadata)

    monkeypatch.setattr(cube_impl.Cube, "_commit", racing_commit)
    return state


def _yearly_years(cube) -> list[int]:
    ds = cube.to_xarray()
    return [int(y) for y in ds["year"].values] if "year" in ds.coords else []


@pytest.mark.slow
def test_a_conflict_in_the_yearly_rebuild_is_retried_from_the_new_tip(
    ethiopia, tmp_path, client, monkeypatch
):
    job = _job(tmp_path, [ethiopia / TM_2000, ethiopia / OLI_2017])
    rival_scene = discover_scenes(ethiopia / TM_2010).scenes
    state = _rival_at_rebuild(monkeypatch, tmp_path / "cube.icechunk", rival_scene, times=1)

    report = run_job_file(job, client=client, progress=False, echo=lambda _: None)

    assert state["raced"] == 1 and report.conflicts == 1
    assert report.exit_code == 0, report.format()
    assert sorted(report.done) == sorted(_scene_id(ethiopia / f) for f in (TM_2000, OLI_2017))
    # The retry started from the rival's commit and so also built the rival's year.
    assert report.years_rebuilt == [2000, 2010, 2017]
    assert report.years_stale == []
    cube = open_cube(tmp_path / "cube.icechunk")
    assert cube.stale_years() == []
    assert _yearly_years(cube) == [2000, 2010, 2017]
    assert len(cube.scene_ids()) == 3
    messages = [h["message"] for h in cube.history()]
    assert messages[0].startswith("job writers: per-year layers of") and "rival" in messages
    counts = cube.to_xarray()["yearly_clear_count"].sel(year=2010).values
    assert np.any(counts > 0)  # the rival's scene is in its year's layer


@pytest.mark.slow
def test_a_rebuild_that_keeps_conflicting_says_what_is_stored_and_what_is_stale(
    ethiopia, tmp_path, client, monkeypatch
):
    job = _job(tmp_path, [ethiopia / TM_2000, ethiopia / OLI_2017])
    rivals = discover_scenes([ethiopia / TM_2010, ethiopia / ETM_2017]).scenes
    state = _rival_at_rebuild(monkeypatch, tmp_path / "cube.icechunk", rivals, times=2)

    with dask.config.set({"updm.job.conflict-retries": 1}):
        report = run_job_file(job, client=client, progress=False, echo=lambda _: None)

    assert state["raced"] == 2 and report.conflicts == 2
    assert report.exit_code == 1
    assert report.failed == []
    assert report.years_rebuilt == [] and report.years_stale == [2000, 2010, 2017]
    text = report.format()
    assert (
        "  per-year layers NOT rebuilt for: 2000, 2010, 2017 (another writer committed to the "
        "cube first 2 times; gave up after 1 retries (updm.job.conflict-retries)); the scenes "
        "are stored, these layers are stale, and the next run on this cube rebuilds them"
    ) in text
    assert "nothing of this batch was stored" not in text
    # True: the job's scenes are stored (and the rival's), the years are stale.
    cube = open_cube(tmp_path / "cube.icechunk")
    assert len(cube.scene_ids()) == 4
    assert set(report.done) <= cube.scene_ids()
    assert cube.stale_years() == [2000, 2010, 2017]
    assert _yearly_years(cube) == []

    # The next run (no rival now) stores nothing new and rebuilds the stale years.
    monkeypatch.undo()
    again = run_job_file(job, client=client, progress=False, echo=lambda _: None)
    assert again.exit_code == 0 and again.done == []
    assert again.years_rebuilt == [2000, 2010, 2017]
    cube = open_cube(tmp_path / "cube.icechunk")
    assert cube.stale_years() == [] and _yearly_years(cube) == [2000, 2010, 2017]


@pytest.mark.slow
def test_a_rebuild_conflict_does_not_claim_that_a_batch_was_lost(
    ethiopia, tmp_path, client, monkeypatch
):
    job = _job(tmp_path, [ethiopia / TM_2000])
    assert run_job_file(job, client=client, progress=False, echo=lambda _: None).exit_code == 0
    rival_scene = discover_scenes(ethiopia / OLI_2017).scenes
    _rival_at_rebuild(monkeypatch, tmp_path / "cube.icechunk", rival_scene, times=1)
    cube = open_cube(tmp_path / "cube.icechunk")
    with pytest.raises(CubeConflictError) as raised:
        cube.rebuild_yearly([2000])
    message = str(raised.value)
    assert "the per-year layers of 2000 were not rebuilt" in message
    assert "scenes stored before are untouched" in message
    assert "nothing of this batch was stored" not in message
