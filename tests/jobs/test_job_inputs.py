"""What a job may read and what ``updm run`` prints, with hostile real inputs.

One real ``updm run`` process runs a job over copies of the real Ethiopian scenes made
hostile in tmp_path: a FIFO as a metadata file and as a band file, a metadata symlink and
STAC hrefs (``file://`` and ``../..``) to a file outside the inputs that looks like
/etc/shadow, two presigned URLs on a web server on 127.0.0.1 (one scene whole, one with a
band answering 404), a stale copy of a scene beside the good one, and a job name holding a
newline and a forged report line. The tests below read its exit code, its report (stdout),
its notes and logs (stderr) and its cube.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
from _hostile_inputs import (
    CREDENTIAL,
    QUERY,
    SECRET,
    SECRET_PARTS,
    SIGNATURE,
    FifoWatch,
    copy_scene,
    mtl_of,
    signed_server,
    tm_item,
)

from updm_dask.cli import main
from updm_dask.cube import open_cube
from updm_dask.errors import JobSpecError
from updm_dask.jobs import JOB_SPEC_KEYS
from updm_dask.jobs.spec import load_job_spec

ETH = "ethiopia-167055"
LT05 = "LT05_L1TP_167055_20000309_20161214_01_T1"  # scene id LT51670552000069AAA04
LT5 = "LT51670552010352MLK00"
LE07 = "LE07_L1TP_167055_20170316_20170411_01_T1"
LC08 = "LC08_L1TP_167055_20170308_20170317_01_T1"  # scene id LC81670552017067LGN00
FORGED = "  scenes: 9 found, 9 processed, 0 skipped (already in the cube), 0 failed"
#: Seconds the whole job may take on a loaded machine; it takes far less when healthy.
JOB_TIMEOUT = 600


@dataclass
class Run:
    """One finished ``updm run``: what it printed and where its inputs were."""

    code: int
    stdout: str
    stderr: str
    opened_fifos: list[str]
    base: Path
    cube: Path
    fifos: dict[str, Path]
    server: str

    def failure(self, where: str) -> str:
        """The report line of the failed scene whose name contains ``where``."""
        lines = [
            line
            for line in self.stdout.splitlines()
            if line.startswith("    ") and where in line.split(" [", 1)[0]
        ]
        assert len(lines) == 1, (where, self.stdout)
        return lines[0]


def _stale(landsat: Path, target: Path) -> None:
    """A copy of LT05 processed earlier (its FILE_DATE) and holding nothing but fill."""
    folder = copy_scene(landsat / ETH / LT05, target)
    mtl = mtl_of(folder)
    text = mtl.read_text()
    mtl.write_text(
        text.replace("FILE_DATE = 2016-12-14T23:49:32Z", "FILE_DATE = 2016-02-01T00:00:00Z")
    )
    for band in folder.glob("*_B?.TIF"):
        with rasterio.open(band, "r+") as dst:
            dst.write(np.zeros((dst.height, dst.width), dtype=dst.dtypes[0]), 1)


@pytest.fixture(scope="module")
def hostile(shared_data, tmp_path_factory) -> Run:
    landsat = shared_data / "landsat"
    base = tmp_path_factory.mktemp("hostile")
    outside = base / "outside"
    outside.mkdir()
    shadow = outside / "shadow"
    shadow.write_text(SECRET + "\n")
    inputs = base / "inputs"
    # Found first (sorted) but stale: the good copy must be the one used.
    _stale(landsat, inputs / "a_stale")
    copy_scene(landsat / ETH / LT05, inputs / "b_good")
    fifo_mtl = mtl_of(copy_scene(landsat / ETH / LE07, inputs / "fifo_mtl"))
    fifo_mtl.unlink()
    os.mkfifo(fifo_mtl)
    fifo_band = copy_scene(landsat / ETH / LT5, inputs / "fifo_band") / f"{LT5}_B3.tif"
    fifo_band.unlink()
    os.mkfifo(fifo_band)
    linked = mtl_of(copy_scene(landsat / ETH / LC08, inputs / "linked_mtl"))
    linked.unlink()
    linked.symlink_to(shadow)
    catalogue = base / "stac" / "cat" / "items.json"
    catalogue.parent.mkdir(parents=True)
    items = [
        tm_item(landsat / ETH / LT05, "mtl-file-url", shadow.as_uri()),
        tm_item(landsat / ETH / LT05, "mtl-dot-dot", "../../outside/shadow"),
    ]
    features = [i.to_dict(include_self_link=False, transform_hrefs=False) for i in items]
    catalogue.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    cube = base / "cube.icechunk"
    with signed_server(landsat / ETH, gone=[f"/{LE07}/{LE07}_B4.TIF"]) as url:
        job = base / "job.toml"
        job.write_text(
            "[job]\n"
            f'name = "hostile\\n{FORGED}"\n'
            "[inputs]\n"
            f'paths = ["{inputs}", "{url}/{LC08}/{LC08}_MTL.txt?{QUERY}", '
            f'"{url}/{LE07}/{LE07}_MTL.txt?{QUERY}"]\n'
            f'stac = ["{catalogue}"]\n'
            f'[cube]\npath = "{cube}"\n'
            '[grid]\ncrs = "EPSG:32637"\n'
            "transform = [30.0, 0.0, 589035.0, 0.0, -30.0, 756165.0]\nshape = [101, 101]\n"
        )
        out, err = base / "stdout", base / "stderr"
        args = [sys.executable, "-m", "updm_dask.cli", "run", str(job), "--no-progress"]
        with (
            FifoWatch([fifo_mtl, fifo_band]) as watch,
            out.open("wb") as stdout,
            err.open("wb") as stderr,
        ):
            proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, cwd=base
            )
            try:
                code = proc.wait(timeout=JOB_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=60)
                pytest.fail(f"updm run did not finish in {JOB_TIMEOUT} s:\n{err.read_text()}")
    return Run(
        code,
        out.read_text(errors="replace"),
        err.read_text(errors="replace"),
        watch.opened,
        base,
        cube,
        {"mtl": fifo_mtl, "band": fifo_band},
        url,
    )


@pytest.mark.slow
def test_special_files_are_refused_without_opening_and_the_job_finishes(hostile):
    assert hostile.code == 1, hostile.stderr  # finished, with failed scenes
    assert hostile.opened_fifos == []
    line = hostile.failure(str(hostile.fifos["mtl"]))
    assert line.endswith(
        f"[discover]: {hostile.fifos['mtl']}: the metadata file is a FIFO (named pipe), not "
        "a regular file; refused without opening it"
    )
    line = hostile.failure(f"fifo_band/{LT5}_MTL.txt")
    assert f"{hostile.fifos['band']}: the file {LT5}_B3.tif is a FIFO (named pipe)" in line


@pytest.mark.slow
def test_links_and_hrefs_out_of_the_roots_are_refused_and_never_shown(hostile):
    shadow = hostile.base / "outside" / "shadow"
    for where in ("linked_mtl/", "STAC item mtl-file-url", "STAC item mtl-dot-dot"):
        line = hostile.failure(where)
        assert f"{shadow}, which lies outside the input roots" in line or (
            f"{shadow}: the metadata asset of STAC item" in line
            and "lies outside the input roots" in line
        ), line
        assert "allow_roots" in line
    for text in (hostile.stdout, hostile.stderr):
        assert [part for part in SECRET_PARTS if part in text] == []


@pytest.mark.slow
def test_presigned_urls_are_read_and_their_queries_never_shown(hostile):
    stored = open_cube(hostile.cube).scene_ids()
    assert "LC81670552017067LGN00" in stored  # the LC08 scene, read over signed URLs
    line = hostile.failure("LE71670552017075SG100")
    assert f"{hostile.server}/{LE07}/{LE07}_B4.TIF?<redacted>: HTTP response code: 404" in line
    for text in (hostile.stdout, hostile.stderr):
        assert SIGNATURE not in text and CREDENTIAL not in text
        assert "X-Amz-Signature=" not in text


@pytest.mark.slow
def test_a_job_name_cannot_forge_report_lines(hostile):
    lines = hostile.stdout.splitlines()
    assert lines[0].startswith(f"job hostile\\n{FORGED}-")
    # One "scenes:" line, the job's own, with its own counts.
    assert [line for line in lines if line.startswith("  scenes:")] == [lines[2]]
    assert lines[2] != FORGED and lines[2].endswith(", 6 failed")
    for line in hostile.stderr.splitlines():
        assert not line.startswith(FORGED.strip()) and not line.startswith(FORGED)
    assert f"updm run hostile\\n{FORGED}:" in hostile.stderr


@pytest.mark.slow
def test_duplicate_scene_ids_are_reported_and_the_better_product_used(hostile):
    inputs = hostile.base / "inputs"
    assert "  duplicate scene ids: 1 " in hostile.stdout
    assert (
        f"    LT51670552000069AAA04: used {LT05} ({inputs}/b_good/{LT05}_MTL.txt), dropped "
        f"{LT05} ({inputs}/a_stale/{LT05}_MTL.txt): product generated 2016-12-14 23:49:32 "
        "UTC, later than 2016-02-01 00:00:00 UTC"
    ) in hostile.stdout.splitlines()
    # The stale copy holds fill only: had it been used, the scene would have failed empty.
    assert "LT51670552000069AAA04" in open_cube(hostile.cube).scene_ids()
    assert "LT51670552000069AAA04 [" not in hostile.stdout


# --------------------------------------------------------------------------------------
# The job spec itself


def test_a_job_spec_that_is_a_fifo_is_refused_unopened(tmp_path, capsys):
    job = tmp_path / "job.toml"
    os.mkfifo(job)
    with FifoWatch([job]) as watch:
        with pytest.raises(JobSpecError, match=r"job.toml is a FIFO \(named pipe\), not a"):
            load_job_spec(job)
        assert main(["run", str(job), "--no-progress"]) == 2
    assert watch.opened == []
    assert "refused without opening it" in capsys.readouterr().err


def _spec(tmp_path: Path, inputs: str) -> Path:
    job = tmp_path / "job.toml"
    job.write_text(f'[inputs]\n{inputs}\n[cube]\npath = "c.icechunk"\n')
    return job


def test_allow_roots_is_a_documented_key_of_local_folders(tmp_path):
    [key] = [k for k in JOB_SPEC_KEYS if (k.section, k.key) == ("inputs", "allow_roots")]
    assert key.description and key.example and key.default == []
    spec = load_job_spec(
        _spec(tmp_path, 'paths = ["scenes"]\nallow_roots = ["../data", "file:///mnt/landsat"]')
    )
    assert spec.allow_roots == (str(tmp_path / "../data"), "/mnt/landsat")
    # What may be read does not change what is computed: the same job id.
    assert spec.job_id == load_job_spec(_spec(tmp_path, 'paths = ["scenes"]')).job_id
    with pytest.raises(JobSpecError, match=r"\[inputs.allow_roots\] 'https://x/y' is a URL"):
        load_job_spec(_spec(tmp_path, 'paths = ["s"]\nallow_roots = ["https://x/y"]'))
    with pytest.raises(JobSpecError, match=r"\[inputs.allow_roots\] expected a list"):
        load_job_spec(_spec(tmp_path, 'paths = ["s"]\nallow_roots = [""]'))


def test_spec_errors_are_one_line_whatever_the_keys_hold(tmp_path):
    job = _spec(tmp_path, 'paths = ["s"]\n"x\\n  forged line" = 1')
    with pytest.raises(JobSpecError) as info:
        load_job_spec(job)
    assert "\n" not in str(info.value)
    assert "[inputs.x\\n  forged line] unknown key" in str(info.value)
