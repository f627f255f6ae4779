"""The generated reference pages list everything the code defines (docs/_reference.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from updm_dask.cube._schema import SCENE_VARIABLES, STR_COORDS, YEARLY_VARIABLES
from updm_dask.jobs.keys import JOB_SPEC_KEYS
from updm_dask.science.masks import FLAG_MEANINGS

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def reference():
    spec = importlib.util.spec_from_file_location("_docs_reference", DOCS / "_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_job_spec_page_has_every_key_with_type_default_and_example(reference):
    page = reference.expand((DOCS / "job-spec.md").read_text(encoding="utf-8"), "job-spec.md")
    assert "<!-- generated:" not in page
    for key in JOB_SPEC_KEYS:
        row = next(
            (
                line
                for line in page.splitlines()
                if line.startswith(f"| {key.section} | {key.key} |")
            ),
            None,
        )
        assert row is not None, f"{key.section}.{key.key} missing from the job-spec page"
        assert key.type_name in row and key.example.replace("|", "\\|") in row
        assert f"{key.key} = {key.example}" in page  # the complete example spec


def test_the_cube_schema_page_has_every_variable_coordinate_and_bit(reference):
    generated = {k: v for k, v in reference.GENERATORS.items() if k.startswith("cube-")}
    page = "\n".join(f() for f in generated.values())
    for name, spec in {**SCENE_VARIABLES, **YEARLY_VARIABLES}.items():
        row = next(line for line in page.splitlines() if line.startswith(f"| `{name}` |"))
        assert f"`{spec.dtype}`" in row and spec.attrs["long_name"] in row
    for name in STR_COORDS:
        assert f"| `{name}` |" in page
    for meaning in FLAG_MEANINGS.split():
        assert f"`{meaning}`" in page


def test_an_unknown_generated_section_is_an_error_naming_page_and_marker(reference):
    with pytest.raises(ValueError, match=r"howto\.md: unknown generated section 'cube-colours'"):
        reference.expand("text\n<!-- generated: cube-colours -->\n", "howto.md")
