"""Shared fixtures: where the real Landsat data lives, and how its absence is treated.

The real data sits beside the repository in ``../shared/data`` (override with the
``UPDM_SHARED_DATA`` environment variable). Tests that need it skip with a clear reason
when it is absent, and FAIL instead when ``UPDM_REQUIRE_DATA=1`` (CI sets this), so a
missing data folder can never turn into a silently green run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def _find_shared_data() -> Path | None:
    env = os.environ.get("UPDM_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates += [REPO_ROOT.parent / "shared" / "data", REPO_ROOT / ".." / "shared" / "data"]
    for candidate in candidates:
        if (candidate / "README.md").is_file() and (candidate / "landsat").is_dir():
            return candidate.resolve()
    return None


SHARED_DATA = _find_shared_data()


def require_data_or_skip(reason: str = "") -> Path:
    """Return the shared data folder, or skip (fail under UPDM_REQUIRE_DATA=1) without it."""
    if SHARED_DATA is not None:
        return SHARED_DATA
    message = "shared Landsat data folder (../shared/data) not found" + (
        f": {reason}" if reason else ""
    )
    if os.environ.get("UPDM_REQUIRE_DATA") == "1":
        pytest.fail(message + " and UPDM_REQUIRE_DATA=1 demands it")
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real Landsat scenes, MTL files, RSRs and spectra."""
    return require_data_or_skip()


@pytest.fixture(autouse=True, scope="session")
def _keep_shared_data_unchanged():
    # GDAL writes a .properties side-car next to a .tar.gz it reads through /vsitar/;
    # the shared folder must stay untouched (and is read-only in CI).
    os.environ.setdefault("CPL_VSIL_GZIP_WRITE_PROPERTIES", "NO")
    yield


@pytest.fixture(scope="module")
def client():
    """An in-process distributed cluster (1 worker, 2 threads): jobs run their batches
    through it without starting processes. Tests that need real scheduler and worker
    processes use tests/_dask_procs.py instead."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


#: STAC extension schemas the offline validator knows (tests/query/stac_schemas).
STAC_SCHEMAS = Path(__file__).parent / "query" / "stac_schemas"


@pytest.fixture
def offline_stac_validator():
    """pystac's validator with the extension schemas of stac_schemas/ and no network.

    pystac's core schemas ship with it; any other schema asked for is an error here
    instead of an HTTP request.
    """
    import pystac
    from pystac.validation import JsonSchemaSTACValidator, RegisteredValidator, set_validator
    from pystac.validation.stac_validator import GetSchemaError

    class Offline(JsonSchemaSTACValidator):
        def _get_schema(self, schema_uri: str) -> dict:
            if schema_uri not in self.schema_cache:
                raise GetSchemaError(schema_uri, LookupError("not bundled; no network here"))
            return self.schema_cache[schema_uri]

    validator = Offline()
    for path in sorted(STAC_SCHEMAS.glob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        validator.schema_cache[schema["$id"].rstrip("#")] = schema
    previous = RegisteredValidator.get_validator()
    set_validator(validator)
    yield pystac
    set_validator(previous)
