"""Write deploy/requirements.lock: the exact installed versions of the runtime closure.

Run it with the environment's Python after `pip install -e .` (./bootstrap does that):

    .venv/bin/python tools/lock_requirements.py

The closure follows the [project] dependencies of pyproject.toml (with their extras) through
the installed distributions' metadata, so test tools never enter the lock. ./bootstrap
installs with the lock as pip constraints, and the container image installs exactly it.
"""

from __future__ import annotations

import importlib.metadata as md
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
HEADER = """\
# Exact versions of the runtime dependency closure of updm_dask's [project] dependencies
# (pyproject.toml, including their extras), for the Linux container image built by
# deploy/Dockerfile and as pip constraints of ./bootstrap. Test tools (pytest, hypothesis,
# moto, ruff, boto3) are not here. tests/test_deploy.py checks that every runtime dependency
# is pinned, that the closure is complete, and that the pins equal the versions of the
# environment the tests run in. Regenerate with: python tools/lock_requirements.py
"""


def runtime_closure() -> dict[str, str]:
    """Canonical name -> installed version of every runtime dependency, transitively."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed: dict[str, set[str]] = {}
    todo = [Requirement(r) for r in project["dependencies"]]
    while todo:
        req = todo.pop()
        key = canonicalize_name(req.name)
        if key in needed and set(req.extras) <= needed[key]:
            continue
        needed.setdefault(key, set()).update(req.extras)
        for text in md.requires(req.name) or []:
            sub = Requirement(text)
            environments = [{"extra": e} for e in needed[key]] or [{"extra": ""}]
            if sub.marker is None or any(sub.marker.evaluate(e) for e in environments):
                todo.append(sub)
    return {name: md.version(name) for name in sorted(needed)}


def main() -> None:
    pins = runtime_closure()
    lines = [f"{md.metadata(name)['Name']}=={version}" for name, version in pins.items()]
    (ROOT / "deploy" / "requirements.lock").write_text(HEADER + "\n".join(lines) + "\n")
    print(f"deploy/requirements.lock: {len(lines)} pins")


if __name__ == "__main__":
    main()
