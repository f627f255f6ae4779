"""``updm run --compact``: a real job on a generated archive, then its time blocks."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from updm_dask import query
from updm_dask.cli import main
from updm_dask.cube import open_cube, time_block_slots
from updm_dask.demo import make_demo_archive
from updm_dask.demo.writers import demo_job_spec


@pytest.mark.slow
def test_run_with_compact_leaves_every_scene_in_time_blocks(tmp_path, capsys):
    archive = make_demo_archive(tmp_path / "archive", seed=3, n_scenes=5, size=40)
    job = tmp_path / "job.toml"
    job.write_text(demo_job_spec(archive, tmp_path / "cube.icechunk"))
    assert main(["run", str(job), "--no-progress", "--compact"]) == 0
    out = capsys.readouterr().out
    assert "compacted 5 time slot(s) into time blocks" in out
    cube = open_cube(tmp_path / "cube.icechunk")
    group = zarr.open_group(cube.session().store, mode="r")
    assert time_block_slots(group, "land_cover") == 5
    assert time_block_slots(group, "uCv") == 5
    ds = cube.to_xarray(sortby_time=False).load()
    g = cube.grid
    series = query.scene_series(cube, x=float(g.x[17]), y=float(g.y[11]))
    order = np.argsort(ds["time"].values, kind="stable")
    np.testing.assert_array_equal(
        series["land_cover"].to_numpy(), ds["land_cover"].values[order, 11, 17]
    )
    # a second run finds everything stored and already compacted
    assert main(["run", str(job), "--no-progress", "--compact"]) == 0
    assert "already compacted (5 time slot(s))" in capsys.readouterr().out
