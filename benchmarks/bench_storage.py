"""Storage: bytes per pixel per scene on disk, before (cube format 1) and after (format 2),
against the floor, per variable, with the precision of every packed layer, in one run.

The scenes, with the supplementary pattern on (``Science(supplementary=True)``) so that
every float layer is filled:

* the TM scene of a generated demo archive on its 2048 x 2048 grid (cube chunks
  ``(1, 512, 512)``), and
* the four real Ethiopia scenes of the shared data folder (TM 2000, TM 2010, ETM+ 2017
  SLC-off, OLI 2017) on their one 101 x 101 grid (one chunk per scene), when the folder is
  found (``$UPDM_SHARED_DATA``, else ``../shared/data`` beside the repository).

Each scene's layers are computed once (``scene_on_grid``, float32) and then:

* **after**: appended to a cube as the package writes it now (format 2: scaled integers,
  byte shuffle + zstd). Stored size of a variable = the sum of its chunk objects, asked of
  the Icechunk session's store key by key (``<variable>/c/...``; manifests and metadata left
  out); the whole repository on disk (``du`` of its folder: chunks, manifests, snapshots,
  coordinates) is shown too.
* **before**: the same layers written with format 1's encoding (float32, NaN fill, zstd at
  the cube's level; land_cover and quality as in format 2) into a Zarr memory store with the
  cube's chunks. Icechunk stores Zarr's encoded chunk bytes as they are, so these are the
  bytes a format-1 cube held (the row ``check`` compares the memory store with the cube for
  format 2's own encoding: 1.0 means the two ways of measuring agree).
* **floor**: zstd at level 19 of the float32 product and of the quantized product (the
  same integer codes, byte-shuffled), one frame per scene layer, no Zarr: what the bytes
  themselves cost with a far slower codec and no chunking.
* the codec choice: the quantized product with zstd alone and with Blosc bit shuffle,
  against the cube's byte shuffle.

The precision row is the largest ``|stored - float| / (step / 2)`` over every valid pixel of
every packed layer (the schema promises <= 1 within the encodable range). The load average
is read at the start and at the end of the run.

Usage::

    python benchmarks/bench_storage.py [--quick] [--json PATH]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import _common
import dask
import numcodecs
import numpy as np
import zarr
from zarr.codecs import BloscCodec, ZstdCodec
from zarr.storage import MemoryStore

from updm_dask.cube import SCENE_VARIABLES, create_cube, decode_layer, encode_layer
from updm_dask.geo import CubeGrid
from updm_dask.jobs.run import scene_on_grid
from updm_dask.pipeline import FLOAT_LAYERS, Science

SIZE, QUICK_SIZE = 2048, 128
ETHIOPIA = Path("landsat") / "ethiopia-167055"
ETHIOPIA_GRID = ("EPSG:32637", (30.0, 0.0, 589035.0, 0.0, -30.0, 756165.0), (101, 101))
# The supplementary pattern on, so that every float layer holds values: the largest cube the
# package writes. With the default (three patterns) uC4 is all fill and stores no chunk.
SCIENCE = Science(supplementary=True)
TARGET = 5.0  # bytes per pixel per scene, whole cube (the target; DEA stores 4)


def _load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


# --------------------------------------------------------------------------------------
# The layers, and the cube as written


def computed_scenes(grid: CubeGrid, sources: list) -> list:
    """The scenes on ``grid``, computed once (numpy-backed Datasets)."""
    with dask.config.set(scheduler="threads"):
        return [scene_on_grid(s, grid, SCIENCE).compute() for s in sources]


def stacked(scenes: list) -> dict[str, np.ndarray]:
    """Every scene variable of ``scenes`` as one (time, y, x) array (float32 or uint8)."""
    out = {}
    for name, spec in SCENE_VARIABLES.items():
        dtype = np.float32 if spec.scale_factor is not None else spec.dtype
        out[name] = np.stack([np.asarray(s[name].values, dtype=dtype) for s in scenes])
    return out


def write_cube(path: Path, grid: CubeGrid, scenes: list) -> Any:
    """The package's cube of the computed ``scenes`` (threaded scheduler); returns it."""
    cube = create_cube(path, grid)
    with dask.config.set(scheduler="threads"):
        cube.append_scenes(scenes, metadata={"job_id": "bench-storage"}, message="bench storage")
    return cube


def stored_sizes(cube: Any) -> dict[str, int]:
    """Bytes of the stored chunks of every scene variable."""
    store = cube.session().store
    return {name: _common.stored_chunk_bytes(store, name)[0] for name in SCENE_VARIABLES}


def folder_bytes(path: Path) -> int:
    """Bytes of every file under ``path`` (the repository on disk)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def chunks_of(cube: Any) -> tuple[int, ...]:
    return tuple(zarr.open_group(cube.session().store, mode="r")["uCw"].chunks)


# --------------------------------------------------------------------------------------
# Encodings into a memory store


def _zstd(level: int) -> Any:
    return lambda dtype: ZstdCodec(level=level)


def _blosc_as_cube(cube: Any, shuffle: str) -> Any:
    """Blosc with the cube's own zstd level and block size (of its uCw array), ``shuffle``."""
    conf = zarr.open_group(cube.session().store, mode="r")["uCw"].compressors[0].to_dict()
    conf = conf["configuration"]
    return lambda dtype: BloscCodec(
        cname="zstd",
        clevel=conf["clevel"],
        shuffle=shuffle,
        typesize=np.dtype(dtype).itemsize,
        blocksize=conf["blocksize"] // conf["typesize"] * np.dtype(dtype).itemsize,
    )


def encoded_bytes(
    layers: dict[str, np.ndarray], chunks: tuple[int, ...], codec: Any, *, packed: bool
) -> dict[str, int]:
    """Bytes of each layer written with ``codec`` (float32 values, or the packed codes)."""
    store = MemoryStore()
    out = {}
    for name, values in layers.items():
        spec = SCENE_VARIABLES[name]
        if spec.scale_factor is not None and packed:
            data, fill = encode_layer(name, values), spec.fill
        else:
            data, fill = values, (np.nan if values.dtype.kind == "f" else spec.fill)
        arr = zarr.create_array(
            store,
            name=name,
            shape=data.shape,
            chunks=chunks,
            dtype=data.dtype,
            compressors=[codec(data.dtype)],
            fill_value=fill,
            config={"write_empty_chunks": False},
        )
        arr[...] = data
        out[name] = _common.stored_chunk_bytes(store, name)[0]
    return out


def floor_bytes(layers: dict[str, np.ndarray], *, packed: bool) -> dict[str, int]:
    """zstd 19 of each scene's whole layer: float32 values, or packed codes byte-shuffled.

    One frame per scene layer (no chunking), no Zarr: what the bytes themselves cost.
    """
    zstd = numcodecs.Zstd(level=19)
    out = {}
    for name, values in layers.items():
        spec = SCENE_VARIABLES[name]
        data = encode_layer(name, values) if packed and spec.scale_factor is not None else values
        size = 0
        for one in data:
            raw = np.ascontiguousarray(one)
            # byte shuffle: all first bytes, then all second bytes ...
            shuffled = raw.view(np.uint8).reshape(-1, raw.itemsize).T.copy() if packed else raw
            size += len(zstd.encode(shuffled.tobytes()))
        out[name] = size
    return out


def precision_ratio(layers: dict[str, np.ndarray]) -> tuple[float, dict[str, float]]:
    """Largest |decoded - float| / (step / 2) over all packed layers, and per layer."""
    per = {}
    for name in FLOAT_LAYERS:
        spec = SCENE_VARIABLES[name]
        v = layers[name]
        back = decode_layer(name, encode_layer(name, v))
        ok = ~np.isnan(v)
        if not np.array_equal(np.isnan(back), ~ok):
            raise AssertionError(f"{name}: the no-data pixels changed in encoding")
        err = float(np.max(np.abs(back[ok].astype(np.float64) - v[ok]))) if ok.any() else 0.0
        per[name] = err / (spec.scale_factor / 2)
    return max(per.values()), per


# --------------------------------------------------------------------------------------
# The benchmark


def _measure(
    label: str, path: Path, grid: CubeGrid, scenes: list, rows: list, check: bool
) -> dict[str, Any]:
    layers = stacked(scenes)
    cube = write_cube(path, grid, scenes)
    chunks = chunks_of(cube)
    pixels = int(np.prod(layers["uCw"].shape))
    per_px = lambda b: b / pixels  # noqa: E731
    after = stored_sizes(cube)
    level = int(dask.config.get("updm.compression.zstd-level"))
    before = encoded_bytes(layers, chunks, _zstd(level), packed=False)
    floor_float = floor_bytes(layers, packed=False)
    floor_packed = floor_bytes(layers, packed=True)
    no_shuffle = encoded_bytes(layers, chunks, _zstd(level), packed=True)
    bitshuffle = encoded_bytes(layers, chunks, _blosc_as_cube(cube, "bitshuffle"), packed=True)
    packed_names = [n for n in SCENE_VARIABLES if SCENE_VARIABLES[n].scale_factor is not None]
    total_after = sum(after.values())
    whole = folder_bytes(path)
    worst, per_layer = precision_ratio(layers)
    n = len(SCENE_VARIABLES)

    rows.append(
        _common.row(
            f"{label}: before, format 1 (float32 + zstd {level}), all {n} variables",
            per_px(sum(before.values())),
            "B/px/scene",
        )
    )
    rows.append(
        _common.row(
            f"{label}: after, format 2, all {n} variables (stored chunks)",
            per_px(total_after),
            "B/px/scene",
            f"<= {TARGET:g}",
            per_px(total_after) <= TARGET,
        )
    )
    rows.append(
        _common.row(
            f"{label}: after, whole repository on disk (metadata, manifests, coordinates)",
            per_px(whole),
            "B/px/scene",
            f"<= {TARGET:g}",
            per_px(whole) <= TARGET,
        )
    )
    rows.append(_common.row(f"{label}: after / before", total_after / sum(before.values()), "x"))
    rows.append(
        _common.row(
            f"{label}: floor, float32 product, zstd 19 per scene layer",
            per_px(sum(floor_float.values())),
            "B/px/scene",
        )
    )
    rows.append(
        _common.row(
            f"{label}: floor, quantized product, byte shuffle + zstd 19 per scene layer",
            per_px(sum(floor_packed.values())),
            "B/px/scene",
        )
    )
    for name in SCENE_VARIABLES:
        spec = SCENE_VARIABLES[name]
        how = (
            f"{spec.dtype} x {spec.scale_factor:g}, shuffle + zstd {level}"
            if spec.scale_factor is not None
            else f"{spec.dtype}, zstd {level}"
        )
        if after[name]:
            rows.append(_common.row(f"{label}: {name} ({how})", per_px(after[name]), "B/px/scene"))
    packed_after = sum(after[n] for n in packed_names)
    for what, sizes in (("zstd alone", no_shuffle), ("bit shuffle + zstd", bitshuffle)):
        rows.append(
            _common.row(
                f"{label}: packed layers with {what}, size vs the cube's byte shuffle",
                sum(sizes[n] for n in packed_names) / packed_after,
                "x",
            )
        )
    rows.append(
        _common.row(
            f"{label}: max |stored - float| / half a step, all packed layers",
            max(worst, 1e-9),
            "x",
            "<= 1",
            worst <= 1.0 + 1e-6,
        )
    )
    if check:
        # the same encoding through Zarr's memory store must give the cube's own bytes
        same = encoded_bytes(
            {k: layers[k] for k in packed_names},
            chunks,
            _blosc_as_cube(cube, "shuffle"),
            packed=True,
        )
        rows.append(
            _common.row(
                "check: memory-store bytes / cube bytes, packed layers, same encoding",
                sum(same.values()) / packed_after,
                "x",
            )
        )
    return {
        "before": {k: per_px(v) for k, v in before.items()},
        "after": {k: per_px(v) for k, v in after.items()},
        "whole_repository": per_px(whole),
        "floor_float32_zstd19": per_px(sum(floor_float.values())),
        "floor_quantized_zstd19_shuffle": per_px(sum(floor_packed.values())),
        "precision_ratio": per_layer,
        "pixels_x_scenes": pixels,
        "chunks": list(chunks),
    }


def run(quick: bool = False) -> dict[str, Any]:
    """Measure before/after/floor sizes and precision; JSON-ready summary with ``rows``."""
    load_start = _load()
    env = _common.environment()
    size = QUICK_SIZE if quick else SIZE
    archive = _common.demo_archive(size, n_scenes=2)
    rows: list[dict[str, Any]] = []
    results: dict[str, Any] = {}
    with _common.workspace("updm-bench-storage-") as tmp:
        demo_scenes = computed_scenes(archive.grid, [archive.scene("TM")])
        results["demo"] = _measure(
            f"demo TM {size}^2", tmp / "demo", archive.grid, demo_scenes, rows, check=True
        )
        del demo_scenes
        base = _common.shared_data_dir()
        folder = None if base is None else base / ETHIOPIA
        if folder is not None and folder.is_dir():
            from updm_dask.scenes import discover_scenes

            crs, transform, shape = ETHIOPIA_GRID
            grid = CubeGrid(crs, transform, shape)
            sources = discover_scenes(str(folder)).scenes
            real = computed_scenes(grid, sources)
            results["ethiopia"] = _measure(
                f"Ethiopia, {len(real)} real scenes 101^2", tmp / "eth", grid, real, rows, False
            )
    return {
        "benchmark": "storage",
        "rows": rows,
        "config": {
            "quick": quick,
            "demo_scene": archive.scene("TM").scene_id,
            "demo_size": size,
            "ethiopia": "ethiopia" in results,
            "encodings": {
                n: {
                    "dtype": s.dtype,
                    "scale_factor": s.scale_factor,
                    "add_offset": s.add_offset if s.scale_factor is not None else None,
                    "fill": s.fill if s.scale_factor is not None else str(s.fill),
                }
                for n, s in SCENE_VARIABLES.items()
            },
            "load_average_start": load_start,
            "load_average_end": _load(),
        },
        "results": results,
        "environment": env,
    }


def report(summary: dict[str, Any]) -> str:
    """Human-readable table of :func:`run` output."""
    cfg = summary["config"]
    head = f"storage benchmark: demo scene {cfg['demo_scene']} ({cfg['demo_size']}^2 px)" + (
        "; real Ethiopia scenes" if cfg["ethiopia"] else "; real scenes not found"
    )
    head += (
        f"\nload average (1, 5, 15 min): {cfg['load_average_start']} at the start, "
        f"{cfg['load_average_end']} at the end"
    )
    return head + "\n" + _common.format_rows(summary["rows"])


if __name__ == "__main__":
    sys.exit(_common.bench_main(run, report, __doc__.split("\n")[0]))
