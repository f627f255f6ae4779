"""examples/tutorial.ipynb runs top to bottom on the demo cube, with the venv's Python."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO_ROOT / "examples" / "tutorial.ipynb"


def test_the_notebook_is_what_its_generator_writes():
    sys.path.insert(0, str(REPO_ROOT / "examples"))
    try:
        import make_tutorial_notebook
    finally:
        sys.path.remove(str(REPO_ROOT / "examples"))
    on_disk = nbformat.read(NOTEBOOK, as_version=4)
    assert json.loads(nbformat.writes(on_disk)) == json.loads(
        nbformat.writes(make_tutorial_notebook.build())
    ), "examples/tutorial.ipynb is stale: run python examples/make_tutorial_notebook.py"
    assert all(not c.get("outputs") for c in on_disk.cells if c.cell_type == "code")


@pytest.mark.slow
def test_the_notebook_runs_on_the_demo_cube(docs_world, tmp_path, monkeypatch):
    work = docs_world.fresh_copy(tmp_path)
    for key in ("PYTHONPATH", "MPLBACKEND", "DASK_SCHEDULER_ADDRESS"):
        monkeypatch.setenv(key, docs_world.env[key])  # the kernel inherits them
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # the kernel of this Python (ipykernel's own spec), in the folder holding updm-demo/
    client = NotebookClient(
        nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(work)}}
    )
    client.execute()
    assert (work / "lc2023.tif").is_file() and (work / "point-series.png").is_file()
    last = nb.cells[-1].outputs
    assert last and "1970s.share_water" in json.dumps(last)
