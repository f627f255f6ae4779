"""Operational settings: updm.yaml is the one source of defaults, described by its schema."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import dask
import pytest
import yaml

import updm_dask
from updm_dask import config

PACKAGE = Path(updm_dask.__file__).parent


def _schema_keys(node: dict, prefix: str = "") -> dict[str, dict]:
    out = {}
    for name, prop in node.get("properties", {}).items():
        if prop.get("type") == "object":
            out |= _schema_keys(prop, f"{prefix}{name}.")
        else:
            out[prefix + name] = prop
    return out


def test_every_default_is_described_by_the_schema_and_valid_against_it():
    jsonschema = pytest.importorskip("jsonschema")
    schema = yaml.safe_load(config.SCHEMA_FILE.read_text())
    defaults = config.defaults()
    jsonschema.validate(defaults, schema)
    described = _schema_keys(schema["properties"]["updm"])
    assert sorted(described) == sorted(config.keys())
    for key, prop in described.items():
        assert prop.get("description"), key
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"updm": {"job": {"batch-sise": 8}}}, schema)


def test_every_setting_the_package_reads_is_in_updm_yaml():
    # Dotted keys written as updm.<...> in the code, and the keys given to config.get().
    read = set()
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        read |= set(re.findall(r"\bupdm\.((?:[a-z][a-z-]*\.)+[a-z][a-z-]*[a-z])\b", text))
        read |= set(re.findall(r"config\.get\(\s*\"([a-z.-]+)\"", text))
        read |= set(re.findall(r"chunk_edge\([^,]+,\s*\"([a-z.-]+)\"", text))
    # Module paths (updm_dask.jobs.run) are not settings; settings have a known section.
    sections = {key.split(".")[0] for key in config.keys()}
    read = {key for key in read if key.split(".")[0] in sections}
    assert read, "the search found no setting at all"
    assert read <= set(config.keys()), sorted(read - set(config.keys()))


def test_get_reads_dask_config_and_knows_no_fallback():
    assert config.get("job.batch-size") == config.defaults()["updm"]["job"]["batch-size"]
    with dask.config.set({"updm.job.batch-size": 3}):
        assert config.get("job.batch-size") == 3
    with pytest.raises(KeyError):
        config.get("job.no-such-setting")


def test_importing_any_part_of_the_package_registers_the_defaults():
    # A dask worker imports only what a task needs; the package __init__ runs first.
    code = "import json, dask.config, updm_dask.geo\nprint(json.dumps(dask.config.get('updm')))\n"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert yaml.safe_load(out.stdout) == config.defaults()["updm"]
