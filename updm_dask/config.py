"""Operational settings (chunk sizes, batch size, codecs) in dask.config under ``updm.``.

Science parameters (pattern set, rules, calibration) are explicit arguments, never
configuration; only knobs that change speed or memory, not results, live here.

One source of truth: ``updm.yaml`` beside this module holds every key and its default, and
``updm-schema.yaml`` describes each one (a JSON Schema, as distributed ships for its own
settings; a test checks that the two agree and that every ``updm.`` key the package reads
is in them). Code reads a setting with :func:`get` and never repeats its default.

The defaults are registered in dask.config by :func:`register_defaults`, which
``updm_dask/__init__.py`` calls: every process that imports the package, and so every
dask worker that unpickles one of its tasks, has them. A value set before (a YAML file in
``~/.config/dask/`` or ``DASK_CONFIG``, ``DASK_UPDM__...`` environment variables,
``dask.config.set``) wins over the default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.config
import yaml

__all__ = [
    "DEFAULTS_FILE",
    "SCHEMA_FILE",
    "defaults",
    "get",
    "keys",
    "register_defaults",
    "spatial_chunks",
]

#: The package's defaults, under the top-level key ``updm``.
DEFAULTS_FILE = Path(__file__).with_name("updm.yaml")
#: JSON Schema (as YAML) of :data:`DEFAULTS_FILE`: type and meaning of every key.
SCHEMA_FILE = Path(__file__).with_name("updm-schema.yaml")


def defaults() -> dict[str, Any]:
    """The defaults of ``updm.yaml`` (a fresh copy: ``{"updm": {...}}``)."""
    with DEFAULTS_FILE.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def register_defaults() -> None:
    """Add the ``updm.*`` defaults to dask.config; values already set keep priority."""
    dask.config.update_defaults(defaults())


def keys() -> list[str]:
    """Every setting of ``updm.yaml`` as a dotted key below ``updm``, e.g. ``"job.batch-size"``."""

    def walk(node: dict[str, Any], prefix: str) -> list[str]:
        out = []
        for name, value in node.items():
            out += walk(value, f"{prefix}{name}.") if isinstance(value, dict) else [prefix + name]
        return out

    return walk(defaults()["updm"], "")


def get(key: str) -> Any:
    """Return the setting ``updm.<key>`` from dask.config (e.g. ``get("chunks.spatial")``).

    Raises
    ------
    KeyError
        ``key`` is not a setting of ``updm.yaml`` (and was not set by hand).
    """
    return dask.config.get(f"updm.{key}")


def spatial_chunks() -> int:
    """Spatial chunk edge (pixels) used when scenes are opened (``updm.chunks.spatial``)."""
    return int(get("chunks.spatial"))
