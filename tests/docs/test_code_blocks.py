"""Every code block of README.md, the tutorial and two how-tos runs (conftest.py)."""

from __future__ import annotations

import pytest

DOCUMENTS = ("README.md", "docs/tutorial.md", "docs/howto/xarray.md", "docs/howto/tiles.md")


@pytest.mark.slow
@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_block_of_the_document_runs(document, docs_world, tmp_path):
    blocks, output = docs_world.run_document(document, tmp_path)
    # every block reported itself: none was left out by the runner
    assert [line[4:].split(" (")[0] for line in output.splitlines() if line.startswith("--- ")] == [
        b.where for b in blocks
    ]
