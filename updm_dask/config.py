"""Operational settings (chunk sizes, batch size, codecs) in dask.config under ``updm.``.

Science parameters (pattern set, rules, calibration) are explicit arguments, never
configuration; only knobs that change speed or memory, not results, live here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.config
import yaml

_DEFAULTS_FILE = Path(__file__).with_name("updm.yaml")

with _DEFAULTS_FILE.open(encoding="utf-8") as _f:
    _DEFAULTS = yaml.safe_load(_f)

dask.config.update_defaults(_DEFAULTS)


def get(key: str, default: Any = None) -> Any:
    """Return ``updm.<key>`` from dask.config (e.g. ``get("chunks.spatial")``)."""
    return dask.config.get(f"updm.{key}", default=default)


def spatial_chunks() -> int:
    """Spatial chunk edge (pixels) used when scenes are opened."""
    return int(get("chunks.spatial"))


def cube_chunks() -> int:
    """Spatial chunk edge (pixels) of the cube's scene-level arrays."""
    return int(get("chunks.cube"))
