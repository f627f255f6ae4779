"""The architecture holds: dependencies point one way, only the CLI prints, no internals.

Rooms in dependency order; a module may import only from its own room or those before it.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import updm_dask

PACKAGE = Path(updm_dask.__file__).parent
ORDER = [
    "errors",
    "messages",
    "frozen",
    "config",
    "geo",
    "science",
    "metadata",
    "scenes",
    "pipeline",
    "cube",
    "jobs",
    "query",
    "embed",
    "demo",
    "cli",
]
# the stable public paths of the science rooms sit at the science's rank
RANK = {name: i for i, name in enumerate(ORDER)} | {
    shim: ORDER.index("science") for shim in ("calibration", "patterns", "decompose", "classify")
}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[0] != "__init__":
            yield path, parts


def _runtime_imports(path: Path, parts: tuple[str, ...]):
    """(absolute module, line) of every import not under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(sub) for sub in ast.walk(node))
    package = ["updm_dask", *parts[:-1]]
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                yield ".".join(base + ([node.module] if node.module else [])), node.lineno
            elif node.module:
                yield node.module, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno


def test_dependencies_point_one_way():
    upward = []
    for path, parts in _modules():
        here = RANK.get(parts[0])
        assert here is not None, f"{path}: a room missing from the declared order"
        for module, line in _runtime_imports(path, parts):
            names = module.split(".")
            if names[0] == "updm_dask" and len(names) > 1:
                there = RANK.get(names[1])
                if there is not None and there > here:
                    upward.append(f"{path.relative_to(PACKAGE)}:{line} imports {module}")
    assert upward == []


def test_no_private_imports_across_rooms_and_no_zarr_internals():
    found = []
    for path, parts in _modules():
        for module, line in _runtime_imports(path, parts):
            names = module.split(".")
            if module.startswith("zarr.core"):
                found.append(f"{path.relative_to(PACKAGE)}:{line} uses {module}")
            if names[0] == "updm_dask" and len(names) > 2 and names[1] != parts[0]:
                if any(n.startswith("_") for n in names[2:]):
                    found.append(f"{path.relative_to(PACKAGE)}:{line} imports {module}")
    assert found == []


def test_only_the_cli_prints():
    printing = []
    for path, parts in _modules():
        if parts[0] == "cli":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                printing.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert printing == []


# Modules cut along their concerns (one concern each): none grows past ~600 lines again.
SPLIT_MODULES = [
    "jobs/run.py",
    "jobs/report.py",
    "jobs/discovery.py",
    "jobs/placing.py",
    "cube/_tiles.py",
    "cube/_tiling.py",
    "cube/_catalogue.py",
    "cube/_collection.py",
    "cube/_combine.py",
]

# Where the names moved out of jobs/run.py and cube/_tiles.py live now: each stays
# importable from its old module, as the same object (checks, benchmarks and tests import
# them from there, and patch some of them there).
MOVED = [
    (
        "updm_dask.jobs.run",
        "updm_dask.jobs.report",
        "SceneFailure DuplicateScene JobReport JobProgress _log_progress _year_list _SCENE_ERRORS",
    ),
    (
        "updm_dask.jobs.run",
        "updm_dask.jobs.placing",
        "REGRID_METHODS grid_of_scenes open_job_cube scene_on_grid _chunk_lattice _job_grid "
        "_check_cube_or_grid",
    ),
    ("updm_dask.jobs.run", "updm_dask.jobs.discovery", "_discover _product"),
    ("updm_dask.cube._tiles", "updm_dask.cube._tiling", "Tiling tile_edge tile_order"),
    (
        "updm_dask.cube._tiles",
        "updm_dask.cube._catalogue",
        "COLLECTION_FORMAT COLLECTION_MARKER collection_exists _CATALOGUE_RETRIES _child "
        "_catalogue_lock _being_created _catalogue_attrs _catalogue_to_fill",
    ),
    ("updm_dask.cube._tiles", "updm_dask.cube._collection", "Collection"),
    ("updm_dask.cube._tiles", "updm_dask.cube._combine", "_fill_of _combine=combine_tiles"),
]


def test_the_modules_split_by_concern_stay_under_600_lines():
    lines = {m: len((PACKAGE / m).read_text(encoding="utf-8").splitlines()) for m in SPLIT_MODULES}
    assert {m: n for m, n in lines.items() if n > 600} == {}


@pytest.mark.parametrize(("old", "new", "names"), MOVED, ids=[new for _, new, _ in MOVED])
def test_a_moved_name_is_the_same_object_from_its_old_module(old, new, names):
    before, now = importlib.import_module(old), importlib.import_module(new)
    for name in names.split():  # "old_name=new_name" for a name that changed on the move
        old_name, _, new_name = name.partition("=")
        assert getattr(before, old_name) is getattr(now, new_name or old_name), f"{old}.{name}"
