"""Storage: bytes per pixel per scene on disk, per cube variable, and what other encodings
would store, measured in one run.

The cube as the package writes it (``scene_on_grid`` + ``Cube.append_scenes``), with the
supplementary pattern on (``Science(supplementary=True)``) so that every float layer is filled:

* the TM scene of a generated demo archive on its 2048 x 2048 grid (cube chunks
  ``(1, 512, 512)``), and
* the four real Ethiopia scenes of the shared data folder (TM 2000, TM 2010, ETM+ 2017
  SLC-off, OLI 2017) on their one 101 x 101 grid (one chunk per scene), when the folder is
  found (``$UPDM_SHARED_DATA``, else ``../shared/data`` beside the repository).

Stored size of a variable = the sum of the sizes of its chunk objects, asked of the
Icechunk session's Zarr store key by key (``<variable>/c/...``; ``store.getsize``), which
is exactly what the repository holds for that variable's chunks (manifests and metadata
left out). The encoding behind it (dtype, fill value, codecs and level, chunks) is read
from the arrays' Zarr metadata and shown with each row.

Alternatives for the six float32 layers, written with Zarr into a memory store with the
cube's chunking (the sizes are those a cube would store: Icechunk stores Zarr's encoded
chunk bytes as they are; a row checks this for the cube's own encoding):

* lossless: zstd level 1, 3 (the cube's), 9; Blosc-zstd level 3 with byte shuffle;
* scaled integers: int16 = round(value / 1e-4), offset 0 (range +-3.2767; NaN -> -32768,
  the fill), with zstd 3 and with Blosc-zstd 3 + shuffle. The maximum absolute error
  (half a step, 5e-5, unless values fall outside the range, which are counted) is
  measured on the real scenes and on the demo scene.

Encode speeds are MB of float32 layer data per second of Zarr writes into the memory store
(one write each; the int16 scaling itself is not in it): indicative, as they include Zarr's
own overheads. The alternatives and their speeds are taken on a 512 x 1024 window of the
demo scene (two cube chunks per layer, since zstd 9 on noisy floats is slow) and on the
whole of the real scenes.

Usage::

    python benchmarks/bench_storage.py [--quick] [--json PATH]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common
import dask
import numpy as np
import zarr
from zarr.codecs import BloscCodec, ZstdCodec
from zarr.storage import MemoryStore

from updm_dask.cube import SCENE_VARIABLES, create_cube
from updm_dask.geo import CubeGrid
from updm_dask.jobs.run import scene_on_grid
from updm_dask.pipeline import FLOAT_LAYERS, Science

SIZE, QUICK_SIZE = 2048, 128
WINDOW = (512, 1024)  # rows, columns of the demo scene the alternatives are measured on
ETHIOPIA = Path("landsat") / "ethiopia-167055"
ETHIOPIA_GRID = ("EPSG:32637", (30.0, 0.0, 589035.0, 0.0, -30.0, 756165.0), (101, 101))
INT16_SCALE = 1e-4
INT16_FILL = -32768
# The supplementary pattern on, so that every float layer holds values: the largest cube the
# package writes. With the default (three patterns) uC4 is all fill and stores no chunk.
SCIENCE = Science(supplementary=True)


# --------------------------------------------------------------------------------------
# The cube as written


def write_cube(path: Path, grid: CubeGrid, scenes: list) -> Any:
    """The package's cube of ``scenes`` (threaded scheduler); returns the Cube."""
    cube = create_cube(path, grid)
    with dask.config.set(scheduler="threads"):
        cube.append_scenes(
            [scene_on_grid(s, grid, SCIENCE) for s in scenes],
            metadata={"job_id": "bench-storage"},
            message="bench storage",
        )
    return cube


def _codec_text(codec: Any) -> str:
    d = codec.to_dict()
    name, conf = d["name"], d.get("configuration", {})
    if name == "zstd":
        return f"zstd {conf.get('level')}"
    if name == "blosc":
        return f"blosc-{conf.get('cname')} {conf.get('clevel')} {conf.get('shuffle')}"
    return name


def encodings(cube: Any) -> dict[str, dict[str, Any]]:
    """dtype, fill value, codecs and chunks of every scene variable, from Zarr metadata."""
    group = zarr.open_group(cube.session().store, mode="r")
    out = {}
    for name in SCENE_VARIABLES:
        arr = group[name]
        fill = np.asarray(arr.metadata.fill_value).item()
        out[name] = {
            "dtype": str(arr.dtype),
            "fill_value": "NaN" if isinstance(fill, float) and np.isnan(fill) else str(fill),
            "codecs": [_codec_text(c) for c in arr.compressors],
            "chunks": list(arr.chunks),
        }
    return out


def stored_sizes(cube: Any) -> dict[str, int]:
    """Bytes of the stored chunks of every scene variable."""
    store = cube.session().store
    return {name: _common.stored_chunk_bytes(store, name)[0] for name in SCENE_VARIABLES}


# --------------------------------------------------------------------------------------
# Alternative encodings of the float layers


def _float32(codec: Callable[[], Any]) -> dict[str, Any]:
    return {"dtype": "float32", "codec": codec, "encode": None, "decode": None}


def _int16(codec: Callable[[], Any]) -> dict[str, Any]:
    return {"dtype": "int16", "codec": codec, "encode": to_int16, "decode": from_int16}


def to_int16(values: np.ndarray) -> np.ndarray:
    """round(values / 1e-4) as int16; NaN -> -32768; out of range clipped to +-32767."""
    q = np.rint(values.astype(np.float64) / INT16_SCALE)
    q = np.clip(q, -32767, 32767)
    return np.where(np.isnan(values), INT16_FILL, q).astype(np.int16)


def from_int16(q: np.ndarray) -> np.ndarray:
    """The float32 values ``q`` stands for (NaN for the fill)."""
    return np.where(q == INT16_FILL, np.nan, q * INT16_SCALE).astype(np.float32)


VARIANTS: dict[str, dict[str, Any]] = {
    "float32, zstd 1": _float32(lambda: ZstdCodec(level=1)),
    "float32, zstd 3 (the cube's)": _float32(lambda: ZstdCodec(level=3)),
    "float32, zstd 9": _float32(lambda: ZstdCodec(level=9)),
    "float32, blosc-zstd 3 + shuffle": _float32(
        lambda: BloscCodec(cname="zstd", clevel=3, shuffle="shuffle", typesize=4)
    ),
    "int16 x 1e-4, zstd 3": _int16(lambda: ZstdCodec(level=3)),
    "int16 x 1e-4, blosc-zstd 3 + shuffle": _int16(
        lambda: BloscCodec(cname="zstd", clevel=3, shuffle="shuffle", typesize=2)
    ),
}


def encode_layers(
    layers: dict[str, np.ndarray], chunks: tuple[int, ...], variant: dict[str, Any]
) -> dict[str, Any]:
    """Write ``layers`` (time, y, x) with one encoding into a memory store.

    Returns the stored chunk bytes, the seconds the writes took, the largest absolute
    error of the decoded values (NaN must stay NaN), and how many values fell outside the
    encoding's range.
    """
    store = MemoryStore()
    size = 0
    seconds = 0.0
    max_error = 0.0
    clipped = 0
    for name, values in layers.items():
        data = values if variant["encode"] is None else variant["encode"](values)
        if variant["encode"] is not None:
            clipped += int(np.sum(np.abs(np.rint(values / INT16_SCALE)) > 32767))
        arr = zarr.create_array(
            store,
            name=name,
            shape=data.shape,
            chunks=chunks,
            dtype=data.dtype,
            compressors=[variant["codec"]()],
            fill_value=np.nan if data.dtype.kind == "f" else INT16_FILL,
            config={"write_empty_chunks": False},
        )
        t0 = time.perf_counter()
        arr[...] = data
        seconds += time.perf_counter() - t0
        size += _common.stored_chunk_bytes(store, name)[0]
        back = arr[...]
        if variant["decode"] is not None:
            back = variant["decode"](back)
        if not np.array_equal(np.isnan(back), np.isnan(values)):
            raise AssertionError(f"{name}: the no-data pixels changed in encoding")
        valid = ~np.isnan(values)
        if valid.any():
            max_error = max(max_error, float(np.max(np.abs(back[valid] - values[valid]))))
    return {"bytes": size, "seconds": seconds, "max_abs_error": max_error, "clipped": clipped}


def float_layers(cube: Any, window: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """The float layers of every scene of ``cube`` as (time, y, x) arrays."""
    ds = cube.to_xarray()
    if window is not None:
        ds = ds.isel(y=slice(0, window[0]), x=slice(0, window[1]))
    with dask.config.set(scheduler="threads"):
        return {name: np.asarray(ds[name].values, dtype=np.float32) for name in FLOAT_LAYERS}


# --------------------------------------------------------------------------------------
# The benchmark


def _ethiopia(tmp: Path) -> tuple[Any, int] | None:
    from updm_dask.scenes import discover_scenes

    base = _common.shared_data_dir()
    folder = None if base is None else base / ETHIOPIA
    if folder is None or not folder.is_dir():
        return None
    scenes = discover_scenes(str(folder)).scenes
    crs, transform, shape = ETHIOPIA_GRID
    return write_cube(tmp / "ethiopia", CubeGrid(crs, transform, shape), scenes), len(scenes)


def run(quick: bool = False) -> dict[str, Any]:
    """Measure stored sizes and alternatives; JSON-ready summary with ``rows``."""
    env = _common.environment()
    size = QUICK_SIZE if quick else SIZE
    archive = _common.demo_archive(size, n_scenes=2)
    rows: list[dict[str, Any]] = []
    results: dict[str, Any] = {}
    with _common.workspace("updm-bench-storage-") as tmp:
        demo = write_cube(tmp / "demo", archive.grid, [archive.scene("TM")])
        enc = encodings(demo)
        demo_sizes = stored_sizes(demo)
        demo_pixels = archive.grid.ny * archive.grid.nx
        chunks = (1, *enc["uCw"]["chunks"][1:])
        window = None if quick else WINDOW
        demo_floats = float_layers(demo, window)
        ethiopia = _ethiopia(tmp)
        if ethiopia is not None:
            real_cube, n_real = ethiopia
            real_sizes = stored_sizes(real_cube)
            real_pixels = real_cube.grid.ny * real_cube.grid.nx * n_real
            real_enc = encodings(real_cube)
            real_floats = float_layers(real_cube)

        for name, e in enc.items():
            rows.append(
                _common.row(
                    f"demo TM {size}^2: {name} ({e['dtype']}, fill {e['fill_value']}, "
                    f"{'+'.join(e['codecs'])}, chunks {tuple(e['chunks'][1:])})",
                    demo_sizes[name] / demo_pixels,
                    "B/px/scene",
                )
            )
        rows.append(
            _common.row(
                f"demo TM {size}^2: all {len(enc)} variables",
                sum(demo_sizes.values()) / demo_pixels,
                "B/px/scene",
            )
        )
        lc = enc["land_cover"]["dtype"]
        rows.append(
            _common.row(
                "land_cover bytes per pixel before compression",
                np.dtype(lc).itemsize,
                "B/px",
                "uint8",
                lc == "uint8",
            )
        )
        if ethiopia is not None:
            rows.append(
                _common.row(
                    f"Ethiopia, {n_real} real scenes 101^2: all {len(SCENE_VARIABLES)} variables",
                    sum(real_sizes.values()) / real_pixels,
                    "B/px/scene",
                )
            )
            results["ethiopia_bytes_per_pixel"] = {
                n: real_sizes[n] / real_pixels for n in SCENE_VARIABLES
            }

        # The same encoding through Zarr's memory store must give the cube's own bytes.
        whole = float_layers(demo)
        check = encode_layers(whole, chunks, VARIANTS["float32, zstd 3 (the cube's)"])
        rows.append(
            _common.row(
                "check: memory-store bytes / cube bytes, float layers, same encoding",
                check["bytes"] / sum(demo_sizes[n] for n in FLOAT_LAYERS),
                "x",
            )
        )
        del whole

        datasets = {"demo": (demo_floats, chunks)}
        if ethiopia is not None:
            datasets["Ethiopia"] = (real_floats, (1, *real_enc["uCw"]["chunks"][1:]))
        current = "float32, zstd 3 (the cube's)"
        for label, (layers, ch) in datasets.items():
            pixels = int(np.prod(layers["uCw"].shape))
            what = (
                f"demo window {layers['uCw'].shape[1]}x{layers['uCw'].shape[2]}"
                if label == "demo"
                else f"Ethiopia {layers['uCw'].shape[0]} scenes"
            )
            out = {name: encode_layers(layers, ch, v) for name, v in VARIANTS.items()}
            results[label] = out
            rows.append(
                _common.row(
                    f"{what}, 6 float layers, {current}",
                    out[current]["bytes"] / pixels,
                    "B/px/scene",
                )
            )
            for name, r in out.items():
                if name != current:
                    rows.append(
                        _common.row(
                            f"{what}: {name}, size vs the cube's",
                            r["bytes"] / out[current]["bytes"],
                            "x",
                        )
                    )
            for name in ("int16 x 1e-4, zstd 3",):
                rows.append(
                    _common.row(
                        f"{what}: int16 x 1e-4 max abs error (all float layers)",
                        out[name]["max_abs_error"],
                        "1",
                    )
                )
            if label == "demo":
                mb = 4 * pixels * len(FLOAT_LAYERS) / 1e6
                for name in VARIANTS:
                    rows.append(
                        _common.row(
                            f"{what}: encode speed, {name}",
                            mb / out[name]["seconds"],
                            "MB/s",
                        )
                    )
    per_variable_error = {}
    if ethiopia is not None:
        for name in FLOAT_LAYERS:
            v = real_floats[name]
            valid = ~np.isnan(v)
            per_variable_error[name] = {
                "max_abs_error": float(np.max(np.abs(from_int16(to_int16(v))[valid] - v[valid])))
                if valid.any()
                else 0.0,
                "range": [float(np.nanmin(v)), float(np.nanmax(v))] if valid.any() else None,
            }
    return {
        "benchmark": "storage",
        "rows": rows,
        "config": {
            "quick": quick,
            "demo_scene": archive.scene("TM").scene_id,
            "demo_size": size,
            "demo_window": list(window) if window else None,
            "ethiopia": ethiopia is not None,
            "encodings": enc,
            "int16": {"scale": INT16_SCALE, "offset": 0.0, "fill": INT16_FILL},
        },
        "alternatives": results,
        "int16_error_per_variable_ethiopia": per_variable_error,
        "environment": env,
    }


def report(summary: dict[str, Any]) -> str:
    """Human-readable table of :func:`run` output."""
    cfg = summary["config"]
    head = f"storage benchmark: demo scene {cfg['demo_scene']} ({cfg['demo_size']}^2 px)" + (
        "; real Ethiopia scenes" if cfg["ethiopia"] else "; real scenes not found"
    )
    return head + "\n" + _common.format_rows(summary["rows"])


if __name__ == "__main__":
    sys.exit(_common.bench_main(run, report, __doc__.split("\n")[0]))
