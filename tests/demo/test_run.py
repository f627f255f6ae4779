"""``updm demo`` end to end: the library returns the report, the command prints it."""

from __future__ import annotations

import pytest

from updm_dask.cli import main
from updm_dask.demo.run import run_demo

pytestmark = pytest.mark.slow  # a real job on a real (in-process) cluster

N_SCENES = 9  # every sensor generation, 9 distinct years: enough for the transitions table


@pytest.fixture(scope="module")
def cluster():
    """An in-process cluster the command line can reach by address."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=False,
        protocol="tcp",
        dashboard_address=None,
    ) as c:
        yield c


def test_run_demo_returns_the_report_and_prints_nothing(tmp_path, cluster, capsys):
    from distributed import Client

    parts: list[str] = []
    messages: list[str] = []
    with Client(cluster) as client:
        run = run_demo(
            tmp_path,
            n_scenes=N_SCENES,
            size=32,
            client=client,
            progress=False,
            echo=parts.append,
            job_echo=messages.append,
        )
    assert capsys.readouterr().out == ""  # the library prints nothing
    assert run.exit_code == 0
    assert run.cube_path == tmp_path / "cube.icechunk" and run.cube_path.is_dir()
    assert run.job_path == tmp_path / "job.toml" and run.job_path.is_file()
    assert run.text == "\n".join(parts)
    report, recovery, transitions, summary = parts
    assert report.startswith("job updm-demo-") and f"{N_SCENES} processed" in report
    assert f"mean agreement over {N_SCENES} years" in recovery
    assert transitions.startswith("transitions")
    assert summary.startswith(f"demo: cube at {run.cube_path}")
    assert f"`updm run {run.job_path}`" in summary
    assert any(f"{N_SCENES} scenes found" in m for m in messages)

    # Running the demo again regenerates the same archive and adds nothing to the cube.
    with Client(cluster) as client:
        again = run_demo(tmp_path, n_scenes=N_SCENES, size=32, client=client, progress=False)
    assert again.exit_code == 0
    assert f"0 processed, {N_SCENES} skipped" in again.text


def test_updm_demo_prints_the_report(tmp_path, cluster, capsys):
    argv = ["demo", "--workdir", str(tmp_path), "--scenes", "2", "--size", "32"]
    assert main([*argv, "--no-progress", "--scheduler", cluster.scheduler_address]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].startswith("job updm-demo-")
    assert any(line.startswith("mean agreement over 2 years") for line in lines)
    assert lines[-1].startswith(f"demo: cube at {tmp_path / 'cube.icechunk'}")
    assert "2 scenes found" in captured.err  # the job's messages go to stderr
