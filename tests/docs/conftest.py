"""Running the documentation's code blocks: how blocks are found, and the folder they run in.

A block of README.md or docs/*.md runs as written, in document order, in a fresh folder
that holds what a reader would have at that point: the demo (``updm-demo/``, as
``updm demo`` makes it), the repository's ``examples/`` with the real Ethiopian scenes at
``../shared/data`` beside it, and the ``updm`` command on PATH (also as ``.venv/bin/updm``).

An HTML comment on the line before a block says how the tests treat it:

- ``<!-- docs-test: skip (REASON) -->``: not run (a reason is required);
- ``<!-- docs-test: file NAME -->``: written to NAME (a job spec, a rule table, ...);
- ``<!-- docs-test: session -->``: run ONCE per test session, in the folder every
  document's copy starts from (making the demo cube, running the Ethiopian job), so the
  slow steps are paid once; the other blocks of the document run against its results.

Every ``updm run``/``updm demo`` of the blocks uses one Dask cluster started here
(``DASK_SCHEDULER_ADDRESS``, the first place the command looks), so no block pays for
starting worker processes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("_run_blocks.py")
RUN_TIMEOUT_S = 600
LANGS = ("bash", "python")
FENCE = re.compile(r"^```([A-Za-z0-9_+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
DIRECTIVE = re.compile(r"<!-- docs-test: (skip|file|session)\b ?(.*?) ?-->\s*\Z")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a document."""

    where: str  # file:line of the opening fence
    lang: str
    code: str
    mode: str  # "run", "skip", "file" or "session"
    arg: str = ""  # the skip reason or the file name


def extract_blocks(path: Path) -> list[Block]:
    """The fenced blocks of ``path``, with the docs-test directive before each one.

    Raises
    ------
    ValueError
        A skip without a reason, a file directive without a name, or a block in another
        language than bash/python that is not skipped or written to a file (it could not
        be run, so it would go stale unseen).
    """
    text = path.read_text(encoding="utf-8")
    name = path.relative_to(REPO_ROOT).as_posix() if path.is_relative_to(REPO_ROOT) else path.name
    blocks = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        where = f"{name}:{line}"
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        directive = DIRECTIVE.search(before)
        mode, arg = ("run", "") if directive is None else directive.groups()
        lang = match.group(1).lower()
        if mode == "skip" and not arg.strip("() "):
            raise ValueError(f"{where}: a docs-test skip needs a reason in parentheses")
        if mode == "file" and not arg:
            raise ValueError(f"{where}: a docs-test file directive needs a file name")
        if mode in ("run", "session") and lang not in LANGS:
            raise ValueError(
                f"{where}: a ```{lang or '(no language)'} block cannot be run; mark it "
                "<!-- docs-test: skip (why) --> or <!-- docs-test: file NAME -->, or make it "
                "bash or python"
            )
        blocks.append(Block(where, lang, match.group(2), mode, arg))
    return blocks


def _write_tool(path: Path, target: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m {target} "$@"\n', encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def run_blocks(blocks: list[Block], folder: Path, env: dict[str, str]) -> str:
    """Run ``blocks`` in ``folder`` (see ``_run_blocks.py``); fail the test with the output."""
    spec = [
        {
            "where": b.where,
            "lang": b.lang,
            "code": b.code,
            "file": b.arg if b.mode == "file" else "",
        }
        for b in blocks
    ]
    listing = folder.parent / f"{folder.name}-blocks.json"
    listing.write_text(json.dumps(spec), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(RUNNER), str(listing)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    return output


@dataclass(frozen=True)
class DocsWorld:
    """The session's base folder (made by the session blocks) and the environment."""

    base: Path  # holds work/ (updm-demo, examples, ...) and shared/ (the real data)
    env: dict[str, str]

    def fresh_copy(self, tmp_path: Path) -> Path:
        """A copy of the session's work folder for one document; returns its work folder."""
        (tmp_path / "shared").symlink_to(self.base / "shared", target_is_directory=True)
        work = tmp_path / "work"
        shutil.copytree(self.base / "work", work, symlinks=True)
        # job specs written by `updm demo` hold absolute paths of the session folder
        for spec in work.rglob("*.toml"):
            text = spec.read_text(encoding="utf-8")
            if str(self.base) in text:
                spec.write_text(text.replace(str(self.base), str(tmp_path)), encoding="utf-8")
        return work

    def run_document(self, document: str, tmp_path: Path) -> tuple[list[Block], str]:
        """Run every block of ``document`` (relative to the repository) in a fresh copy."""
        blocks = [b for b in extract_blocks(REPO_ROOT / document) if b.mode in ("run", "file")]
        assert blocks, f"{document} has no block to run"
        return blocks, run_blocks(blocks, self.fresh_copy(tmp_path), self.env)


@pytest.fixture(scope="session")
def blocks_of():
    """:func:`extract_blocks` (test modules cannot import this conftest by name)."""
    return extract_blocks


@pytest.fixture(scope="session")
def docs_cluster():
    """One Dask cluster on 127.0.0.1 for every job the documents' blocks run."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=False,
        protocol="tcp://",
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",  # a free port: 8787 may be taken
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="session")
def docs_world(tmp_path_factory, shared_data, docs_cluster) -> DocsWorld:
    """The folder the documents' blocks start from, after the tutorial's session blocks."""
    base = tmp_path_factory.mktemp("docs-world")
    (base / "shared").mkdir()
    (base / "shared" / "data").symlink_to(shared_data, target_is_directory=True)
    work = base / "work"
    shutil.copytree(REPO_ROOT / "examples", work / "examples")
    bin_dir = base / "bin"
    _write_tool(bin_dir / "updm", "updm_dask.cli")
    _write_tool(work / ".venv" / "bin" / "updm", "updm_dask.cli")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
        ),
        "DASK_SCHEDULER_ADDRESS": docs_cluster,
        "MPLBACKEND": "Agg",
    }
    session = [b for b in extract_blocks(REPO_ROOT / "docs" / "tutorial.md") if b.mode == "session"]
    assert session, "docs/tutorial.md has no <!-- docs-test: session --> block"
    run_blocks(session, work, env)
    return DocsWorld(base, env)
