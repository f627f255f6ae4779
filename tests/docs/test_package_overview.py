"""help(updm_dask) is an overview of the package: what it does, its rooms, where to start."""

from __future__ import annotations

import importlib
import pydoc

import updm_dask


def test_help_starts_with_the_overview_and_names_the_entry_points():
    text = pydoc.render_doc(updm_dask, renderer=pydoc.plaintext)
    head = "\n".join(text.splitlines()[:80])
    for entry in ("read_mtl", "open_scene", "process_scene", "open_cube", "updm run", "updm info"):
        assert entry in head, entry
    assert "class UpdmError" not in text  # the exception hierarchy is not dumped into help
    assert "Method resolution order" not in text


def test_the_imports_of_the_overview_example_exist():
    imports = [
        line.split(">>> ", 1)[1].split("#")[0].split()
        for line in updm_dask.__doc__.splitlines()
        if ">>> from " in line
    ]
    assert imports, "the overview has no example"
    for _, module, _, name in imports:
        assert callable(getattr(importlib.import_module(module), name)), f"{module}.{name}"


def test_the_error_classes_stay_importable_from_the_root():
    from updm_dask import JobSpecError, SceneError, UpdmError

    assert issubclass(SceneError, UpdmError) and issubclass(JobSpecError, UpdmError)
