"""The tutorial's Ethiopian pictures: built from the real job, or a note without its data.

Each test builds the documentation site as CI does (``mkdocs build --strict``) from a copy
of the repository's docs, package and examples in a folder with no ``shared/data`` beside
it, so the shared data is found only through ``UPDM_SHARED_DATA`` (or not at all).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
ETHIOPIA_PNGS = (
    "ethiopia-point-series.png",
    "ethiopia-class-shares.png",
    "ethiopia-land-cover-2017.png",
    "ethiopia-trend.png",
)
DEMO_PNGS = ("point-series.png", "area-fractions.png", "land-cover-2023.png", "trend.png")
BUILD_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory) -> Path:
    """The repository's site sources in ``<tmp>/repo``; ``<tmp>/shared`` does not exist."""
    repo = tmp_path_factory.mktemp("docs-build") / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.icechunk", "site")
    for name in ("docs", "updm_dask", "examples"):
        shutil.copytree(REPO_ROOT / name, repo / name, ignore=ignore)
    for name in ("mkdocs.yml", "pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, repo / name)
    assert not (repo.parent / "shared").exists()
    return repo


def _build(repo: Path, site: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in ("UPDM_SHARED_DATA", "UPDM_REQUIRE_DATA", "PYTHONPATH")
    }
    environ.update(env, MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=repo,
        env=environ,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )


def _listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


@pytest.mark.slow
def test_the_site_holds_the_ethiopian_pictures_drawn_from_the_real_job(
    repo_copy, shared_data, tmp_path
):
    import matplotlib.image

    examples_before = _listing(repo_copy / "examples")
    site = tmp_path / "site"
    done = _build(repo_copy, site, UPDM_SHARED_DATA=str(shared_data), UPDM_REQUIRE_DATA="1")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    # the job's cube went to the build's temporary folder, not into examples/
    assert _listing(repo_copy / "examples") == examples_before
    tutorial = (site / "tutorial.html").read_text(encoding="utf-8")
    assert "Picture not built" not in tutorial
    for name in ETHIOPIA_PNGS + DEMO_PNGS:
        assert re.search(rf'<img [^>]*src="figures/{re.escape(name)}"', tutorial), name
        png = site / "figures" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        pixels = matplotlib.image.imread(png)
        height, width = pixels.shape[:2]
        assert 300 <= height <= 3000 and 400 <= width <= 4000, (name, pixels.shape)
        colours = np.unique(pixels.reshape(-1, pixels.shape[-1])[:, :3], axis=0)
        assert len(colours) > 50, f"{name} has {len(colours)} colours: not a picture"
    # the pictures are of section 11, after its heading
    section = tutorial[tutorial.index("The real stack: Ethiopia") :]
    assert all(f"figures/{name}" in section for name in ETHIOPIA_PNGS)


@pytest.mark.slow
def test_without_the_shared_data_the_site_builds_with_a_note_per_ethiopian_picture(
    repo_copy, tmp_path
):
    site = tmp_path / "site"
    done = _build(repo_copy, site)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    tutorial = (site / "tutorial.html").read_text(encoding="utf-8")
    notes = re.findall(
        r'<p class="admonition-title">Picture not built: [^<]*</p>\s*<p>([^<]*)</p>', tutorial
    )
    assert len(notes) == len(ETHIOPIA_PNGS)
    assert all("needs the shared Landsat data" in note for note in notes)
    # no link to a picture that is not there; the demo's pictures are
    assert "ethiopia-" not in "".join(re.findall(r"<img [^>]*>", tutorial))
    assert sorted(p.name for p in (site / "figures").iterdir()) == sorted(DEMO_PNGS)


@pytest.mark.slow
def test_without_the_shared_data_a_build_that_requires_it_fails_naming_what_is_missing(
    repo_copy, tmp_path
):
    missing = tmp_path / "no-such-data"
    done = _build(
        repo_copy, tmp_path / "site", UPDM_SHARED_DATA=str(missing), UPDM_REQUIRE_DATA="1"
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    line = next(line for line in output.splitlines() if "docs build:" in line)
    for word in (
        "ethiopia-167055.toml",
        "shared Landsat data",
        str(repo_copy.parent / "shared" / "data"),
        "UPDM_SHARED_DATA",
        "UPDM_REQUIRE_DATA=1",
    ):
        assert word in line, word
    assert not (tmp_path / "site" / "figures").exists()


@pytest.fixture(scope="module")
def figures_module():
    path = REPO_ROOT / "docs" / "_figures.py"
    spec = importlib.util.spec_from_file_location("_docs_figures", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def test_the_shared_data_is_found_by_the_rule_of_the_tests(figures_module, shared_data, tmp_path):
    assert figures_module.find_shared_data({"UPDM_SHARED_DATA": str(shared_data)}) == shared_data
    # a folder without README.md is passed over for ../shared/data, as tests/conftest.py does
    (tmp_path / "landsat").mkdir()
    beside = REPO_ROOT.parent / "shared" / "data"
    expected = beside.resolve() if (beside / "README.md").is_file() else None
    assert figures_module.find_shared_data({"UPDM_SHARED_DATA": str(tmp_path)}) == expected
    assert figures_module.find_shared_data({}) == expected
