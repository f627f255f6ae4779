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
from ..geo.regrid import WINDOW_ATTR, lattice_chunks
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
    #: ``(row0, col0, rows, cols)``: the part of the grid the layers cover.
    window: tuple[int, int, int, int] = (0, 0, 0, 0)


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


def _declared_window(scene: xr.Dataset, grid: CubeGrid, label: str) -> tuple[int, ...] | None:
    """The window a scene declares in ``attrs["grid_window"]``, checked against the grid."""
    value = scene.attrs.get(WINDOW_ATTR)
    if value is None:
        return None
    try:
        window = tuple(int(v) for v in value)
        ok = len(window) == 4 and all(float(a) == b for a, b in zip(value, window, strict=True))
    except (TypeError, ValueError):
        ok = False
    if ok:
        r0, c0, rows, cols = window
        ok = r0 >= 0 and c0 >= 0 and rows > 0 and cols > 0
        ok = ok and r0 + rows <= grid.ny and c0 + cols <= grid.nx
    if not ok:
        raise GridError(
            f"{label}: attribute {WINDOW_ATTR!r} must be four whole numbers [row0, col0, rows, "
            f"cols] of a non-empty part of the cube grid (shape {grid.shape}), got {value!r}"
        )
    return window


def _on_lattice(chunks: tuple[int, ...], start: int, edge: int) -> bool:
    """Whether every inner block edge of ``chunks`` (from grid index ``start``) is a chunk edge."""
    at = start
    for c in chunks[:-1]:
        at += c
        if at % edge:
            return False
    return True


def scene_record(scene: Any, index: int, grid: CubeGrid, chunks: tuple[int, int]) -> SceneRecord:
    """Validate one scene against the grid and schema; lazy layers on the ``chunks`` lattice.

    A scene covers either the whole grid or the window of it that its ``grid_window``
    attribute declares (``to_grid(..., window=True)`` sets it), with that part's
    ``y``/``x`` coordinates when it carries coordinates.
    Its dask blocks are kept when their inner edges fall on the cube's chunk edges (so each
    block fills whole chunks that no other block touches) and rechunked to them otherwise.

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
    declared = _declared_window(scene, grid, label)
    window = declared if declared is not None else (0, 0, *grid.shape)
    for name, spec in SCENE_VARIABLES.items():
        if name not in scene.data_vars:
            continue
        var = scene[name]
        if "time" in var.dims and var.sizes["time"] == 1:
            var = var.isel(time=0, drop=True)
        if set(var.dims) != {"y", "x"}:
            raise GridError(f"{label}: variable {name!r} has dims {var.dims}, expected (y, x)")
        var = var.transpose("y", "x")
        if declared is None and var.shape != grid.shape:
            raise GridError(
                f"{label}: variable {name!r} has shape {var.shape}, the cube grid is "
                f"{grid.shape}; regrid it with updm_dask.geo.to_grid first"
            )
        if declared is not None and var.shape != declared[2:]:
            raise GridError(
                f"{label}: variable {name!r} has shape {var.shape}, but the scene's "
                f"{WINDOW_ATTR!r} attribute declares a window of {declared[2:]} pixels"
            )
        r0, c0, rows, cols = window
        for dim, expected in (("y", grid.y[r0 : r0 + rows]), ("x", grid.x[c0 : c0 + cols])):
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
        lattice = (lattice_chunks(r0, rows, chunks[0]), lattice_chunks(c0, cols, chunks[1]))
        if not isinstance(arr, da.Array):
            arr = da.from_array(np.asarray(arr), chunks=lattice)
        elif not (
            _on_lattice(arr.chunks[0], r0, chunks[0]) and _on_lattice(arr.chunks[1], c0, chunks[1])
        ):
            # block edges on chunk edges: each task writes chunks no other task touches
            arr = arr.rechunk(lattice)
        # packed layers become their integer codes here (schema: encode_layer); the
        # encoding is blockwise, so the blocks stay on the chunk lattice
        data[name] = encode_layer(name, arr)
    return SceneRecord(sid, time, coords, data, window)


def json_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON round-trip copy of commit metadata (CubeError if it is not JSON-able)."""
    if not isinstance(metadata, Mapping):
        raise CubeError(f"metadata must be a mapping, got {type(metadata).__name__}")
    try:
        return json.loads(json.dumps(dict(metadata)))
    except (TypeError, ValueError) as exc:
        raise CubeError(f"metadata must be JSON-serialisable: {exc}") from None
