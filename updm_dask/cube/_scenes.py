"""Checking the scenes handed to :meth:`Cube.append_scenes` and turning them into records."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd
import pyproj
import xarray as xr

from ..errors import CubeError, GridError
from ..geo import CubeGrid
from ._schema import SCENE_VARIABLES, STR_COORDS, encode_layer

#: Per-scene values that must be present.
REQUIRED = ("scene_id", "time", "sensor", "platform")


@dataclass
class SceneRecord:
    """One scene ready to be written: its ledger key, coordinates and lazy layers."""

    scene_id: str
    time: np.datetime64
    coords: dict[str, Any]
    data: dict[str, da.Array]


def _scalar(scene: xr.Dataset, name: str, label: str) -> Any:
    if name in scene.coords:
        value = scene.coords[name]
        if value.size != 1:
            raise CubeError(
                f"{label}: coordinate {name!r} must be a scalar, has shape {value.shape}"
            )
        return value.values.reshape(()).item()
    return scene.attrs.get(name)


def _to_datetime(value: Any, label: str) -> np.datetime64:
    if value is None:
        raise CubeError(
            f"{label}: no acquisition time (a scalar 'time' coordinate, or a 'time' or "
            "'acquired' attribute)"
        )
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        # .item() of a datetime64[ns] scalar coordinate gives integer nanoseconds
        value = np.datetime64(int(value), "ns")
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise CubeError(f"{label}: time {value!r} is not a date-time ({exc})") from None
    if ts is pd.NaT:
        raise CubeError(f"{label}: time is NaT")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return np.datetime64(ts.to_datetime64(), "us")


def _same_crs(crs: Any, grid: CubeGrid) -> bool:
    try:
        return pyproj.CRS.from_user_input(crs.to_wkt()) == grid.pyproj_crs
    except pyproj.exceptions.CRSError:
        return False


def scene_record(scene: Any, index: int, grid: CubeGrid, chunks: tuple[int, int]) -> SceneRecord:
    """Validate one scene against the grid and schema; lazy layers rechunked to ``chunks``.

    Raises
    ------
    CubeError
        Not a Dataset; scene_id, time, sensor or platform missing; bad dtypes.
    GridError
        Dims, shape, coordinates or CRS differ from the cube grid.
    """
    if not isinstance(scene, xr.Dataset):
        raise CubeError(f"scene #{index}: expected an xarray.Dataset, got {type(scene).__name__}")
    sid = _scalar(scene, "scene_id", f"scene #{index}")
    if sid is None or not str(sid).strip():
        raise CubeError(f"scene #{index}: missing scene_id (a scalar coordinate or attribute)")
    sid = str(sid)
    label = f"scene {sid!r}"
    when = _scalar(scene, "time", label)
    if when is None:
        when = scene.attrs.get("acquired")
    time = _to_datetime(when, label)
    coords: dict[str, Any] = {}
    for name in STR_COORDS:
        value = sid if name == "scene_id" else _scalar(scene, name, label)
        coords[name] = "" if value is None else str(value)
    for name in REQUIRED:
        if name in coords and not coords[name]:
            raise CubeError(f"{label}: missing {name!r} (a scalar coordinate or attribute)")
    elevation = _scalar(scene, "sun_elevation", label)
    try:
        coords["sun_elevation"] = np.float32(np.nan if elevation is None else float(elevation))
    except (TypeError, ValueError):
        raise CubeError(f"{label}: sun_elevation {elevation!r} is not a number") from None

    crs = scene.rio.crs if ("x" in scene.dims and "y" in scene.dims) else None
    if crs is not None and not _same_crs(crs, grid):
        raise GridError(
            f"{label}: CRS {crs} differs from the cube grid's {grid.crs}; "
            "regrid it with updm_dask.geo.to_grid first"
        )
    data: dict[str, da.Array] = {}
    for name, spec in SCENE_VARIABLES.items():
        if name not in scene.data_vars:
            continue
        var = scene[name]
        if "time" in var.dims and var.sizes["time"] == 1:
            var = var.isel(time=0, drop=True)
        if set(var.dims) != {"y", "x"}:
            raise GridError(f"{label}: variable {name!r} has dims {var.dims}, expected (y, x)")
        var = var.transpose("y", "x")
        if var.shape != grid.shape:
            raise GridError(
                f"{label}: variable {name!r} has shape {var.shape}, the cube grid is "
                f"{grid.shape}; regrid it with updm_dask.geo.to_grid first"
            )
        for dim, expected in (("y", grid.y), ("x", grid.x)):
            if dim in var.coords and not np.allclose(
                var[dim].values, expected, rtol=0, atol=grid.resolution * 1e-6
            ):
                raise GridError(
                    f"{label}: the {dim} coordinates of {name!r} are not the cube grid's; "
                    "regrid it with updm_dask.geo.to_grid first"
                )
        kind = var.dtype.kind
        if spec.scale_factor is None and spec.dtype.startswith("uint") and kind not in "iub":
            raise CubeError(f"{label}: {name!r} must hold integer codes, has dtype {var.dtype}")
        if kind not in "iubf":
            raise CubeError(f"{label}: {name!r} has non-numeric dtype {var.dtype}")
        arr = var.data
        if not isinstance(arr, da.Array):
            arr = da.from_array(np.asarray(arr), chunks=chunks)
        # dask blocks == zarr chunks: each task writes whole chunks, no two tasks share one
        # packed layers become their integer codes here (schema: encode_layer)
        data[name] = encode_layer(name, arr).rechunk(chunks)
    return SceneRecord(sid, time, coords, data)


def json_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON round-trip copy of commit metadata (CubeError if it is not JSON-able)."""
    if not isinstance(metadata, Mapping):
        raise CubeError(f"metadata must be a mapping, got {type(metadata).__name__}")
    try:
        return json.loads(json.dumps(dict(metadata)))
    except (TypeError, ValueError) as exc:
        raise CubeError(f"metadata must be JSON-serialisable: {exc}") from None
