"""The public names outside code imports keep working, whatever the rooms behind them."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PUBLIC_NAMES = [
    ("updm_dask.metadata", "read_mtl"),
    ("updm_dask.calibration", "toa_reflectance"),
    ("updm_dask.calibration", "rayleigh_reflectance"),
    ("updm_dask.patterns", "band_patterns"),
    ("updm_dask.decompose", "nnls_decompose"),
    ("updm_dask.classify", "load_rules"),
    ("updm_dask.classify", "classify"),
    ("updm_dask.classify", "mviupd"),
    ("updm_dask.scenes", "open_scene"),
    ("updm_dask.pipeline", "process_scene"),
    ("updm_dask.cube", "open_cube"),
    ("updm_dask.cube", "create_cube"),
    ("updm_dask.demo", "make_demo_archive"),
]


@pytest.mark.parametrize(("module", "name"), PUBLIC_NAMES)
def test_public_name_is_importable_and_callable(module, name):
    obj = getattr(importlib.import_module(module), name)
    assert callable(obj)


def test_public_paths_are_the_science_rooms():
    # The stable paths re-export the one implementation; they hold no code of their own.
    from updm_dask import calibration, classify, decompose, patterns
    from updm_dask.science import calibration as c2
    from updm_dask.science import classify as k2
    from updm_dask.science import decompose as d2
    from updm_dask.science import patterns as p2

    assert calibration.toa_reflectance is c2.toa_reflectance
    assert classify.mviupd is k2.mviupd
    assert decompose.nnls_decompose is d2.nnls_decompose
    assert patterns.band_patterns is p2.band_patterns


def test_the_updm_command_and_python_m_agree():
    out = subprocess.run(
        [sys.executable, "-m", "updm_dask.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for command in ("run", "demo", "info", "query", "export", "embed", "similar"):
        assert command in out


def test_help_of_the_package_is_an_overview_not_exception_boilerplate():
    import pydoc

    import updm_dask

    text = pydoc.render_doc(updm_dask, renderer=pydoc.plaintext)
    assert len(text.splitlines()) < 150
    for room in ("science", "metadata", "scenes", "geo", "pipeline", "cube", "jobs", "query"):
        assert f"\n    {room}\n" in text or f"{room} (package)" in text
    assert "Method resolution order" not in text  # no class dumps of the error hierarchy
    from updm_dask import SceneError, UpdmError  # still importable from the root

    assert issubclass(SceneError, UpdmError)
