"""Speed of cube queries on a generated cube of hundreds of scenes, measured in one run.

A cube of ``N`` scenes (default 300) of ``S x S`` pixels (default 256) over 40 years is
written in a temporary folder through ``Cube.append_scenes`` in batches, with the cube's
default layout (scene-level chunks ``(1, C, C)``, ``C`` = ``updm.chunks.cube`` clipped to
the grid; per-year layers chunked ``(years, 128, 128)``), and its per-year layers are built.
Then, each the median of several repeats on different pixels/areas:

* point, per-year series (``yearly_series``, 3 variables): target < 0.2 s. This is the read
  the per-year layers exist for: one chunk per variable holds the pixel's whole history;
* point, full scene-level series (``scene_series``, all 8 variables) and one variable of it:
  each scene owns its chunks, so this reads N chunks per variable (N x 8 in all);
* point, both series from a location string (``point_series``, opening the cube too), the
  answer a user of ``updm query point`` waits for: target < 1 s;
* the same full scene-level series after ``compact_time_blocks`` (``updm compact``), which
  reads ceil(N / B) chunks per variable: target < 0.3 s; and ``point_series`` from the
  location string again, on the compacted cube: target < 1 s;
* area, per-year class fractions (``area_statistics``) of a small and of a large square,
  and of the large square on the cube's earlier snapshot that held half of the scenes: the
  time follows the number of per-year chunks the area touches, not the number of scenes
  (the per-year layers do not grow with scenes).

Usage::

    python benchmarks/bench_query.py [--scenes N] [--size S] [--repeats R] [--quick]
                                     [--json PATH]

``run(quick=False) -> dict`` and ``report(summary) -> str`` serve the combined runner.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dask
import numpy as np
import xarray as xr
from affine import Affine

from updm_dask import query
from updm_dask.cube import compact_time_blocks, create_cube, open_cube
from updm_dask.geo import CubeGrid

TARGET_YEARLY_S = 0.2
TARGET_POINT_S = 1.0
TARGET_BLOCKED_S = 0.3
FIRST_YEAR, N_YEARS = 1984, 40


def _scene(grid: CubeGrid, index: int, n: int, rng: np.random.Generator, base) -> xr.Dataset:
    """One generated scene: smooth cover pattern drifting over time, noise, a few clouds."""
    ny, nx = grid.shape
    frac = index / max(n - 1, 1)
    year = FIRST_YEAR + int(frac * (N_YEARS - 1e-9))
    day = int(rng.integers(0, 365))
    time_ = np.datetime64(f"{year}-01-01", "us") + np.timedelta64(day, "D")
    uCv = np.clip(base + 0.04 * (frac - 0.5) + rng.normal(0, 0.005, (ny, nx)), 0, None)
    uCs = np.clip(0.15 - 0.5 * base + rng.normal(0, 0.005, (ny, nx)), 0, None)
    uCw = np.clip(rng.normal(0.003, 0.001, (ny, nx)), 0, None)
    uC4 = rng.normal(0, 0.005, (ny, nx))
    s = uCw + uCv + uCs
    mviupd = (uCv - uCw - 0.2 * uCs - uC4) / s
    land_cover = np.where(mviupd >= 0.458, 3, 4).astype(np.uint8)
    land_cover[(uCv <= 0.035) & (s <= 0.059)] = 2
    quality = np.zeros((ny, nx), np.uint8)
    if rng.random() < 0.2:  # a cloudy band across some scenes
        r0 = int(rng.integers(0, ny - ny // 4))
        land_cover[r0 : r0 + ny // 4] = 1
        quality[r0 : r0 + ny // 4] = 4
    layers = {
        "uCw": uCw,
        "uCv": uCv,
        "uCs": uCs,
        "uC4": uC4,
        "residual": np.abs(rng.normal(0, 0.002, (ny, nx))),
        "mviupd": mviupd,
        "land_cover": land_cover,
        "quality": quality,
    }
    ds = xr.Dataset(
        {
            k: (("y", "x"), v.astype(np.float32) if v.dtype.kind == "f" else v)
            for k, v in layers.items()
        },
        coords={"y": grid.y, "x": grid.x},
    ).rio.write_crs(grid.crs)
    sensor, platform_ = ("TM", "LANDSAT_5") if year < 2013 else ("OLI", "LANDSAT_8")
    ds = ds.assign_coords(scene_id=f"GEN{index:05d}", time=time_)
    ds.attrs.update(sensor=sensor, platform=platform_, sun_elevation=50.0)
    return ds


def build_cube(path: Path, n_scenes: int, size: int, batch: int, seed: int = 0) -> tuple:
    """Write the generated cube.

    Returns (cube, seconds to append, seconds to build the per-year layers, snapshot id
    after half of the scenes with their per-year layers).
    """
    grid = CubeGrid("EPSG:32637", Affine(30, 0, 589035, 0, -30, 756165), (size, size))
    cube = create_cube(path, grid)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = 0.05 + 0.05 * (np.sin(6 * xx) * np.cos(4 * yy) + 1)
    t_append = t_yearly = 0.0
    half = None
    starts = list(range(0, n_scenes, batch))
    for k, start in enumerate(starts):
        scenes = [
            _scene(grid, i, n_scenes, rng, base) for i in range(start, min(start + batch, n_scenes))
        ]
        t0 = time.perf_counter()
        cube.append_scenes(scenes, metadata={"job_id": "bench"}, message=f"bench {start}")
        t_append += time.perf_counter() - t0
        if k == len(starts) // 2 - 1 or k == len(starts) - 1:
            t0 = time.perf_counter()
            snap = cube.rebuild_yearly()
            t_yearly = time.perf_counter() - t0
            half = half or snap
    return cube, t_append, t_yearly, half


def _median_time(fn, args_list) -> float:
    times = []
    for args in args_list:
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(
    quick: bool = False,
    *,
    n_scenes: int | None = None,
    size: int | None = None,
    repeats: int | None = None,
) -> dict[str, Any]:
    """Build the cube and time the queries; JSON-ready summary (protocol of benchmarks/)."""
    n = n_scenes or (12 if quick else 300)
    size = size or (32 if quick else 256)
    reps = repeats or (2 if quick else 7)
    batch = 6 if quick else 50
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory(prefix="updm-bench-query-") as tmp:
        path = Path(tmp) / "cube"
        # the threaded scheduler, as `updm` uses locally
        with dask.config.set(scheduler="threads"):
            cube, t_append, t_yearly, half = build_cube(path, n, size, batch)
            n_half = len(open_cube(path, snapshot=half).scene_ids())
            cube = open_cube(path)
            grid = cube.grid
            cube_chunks = list(cube.to_xarray()["uCv"].encoding["chunks"])
            yearly_chunks = list(cube.to_xarray()["yearly_land_cover"].encoding["chunks"])

            def pixels(k: int) -> list[tuple[float, float]]:
                rows = rng.integers(0, grid.ny, k)
                cols = rng.integers(0, grid.nx, k)
                return [
                    (float(grid.x[c]), float(grid.y[r])) for r, c in zip(rows, cols, strict=True)
                ]

            query.yearly_series(cube, x=grid.x[0], y=grid.y[0])  # warm imports and metadata
            t_yearly_point = _median_time(
                lambda x, y: query.yearly_series(cube, x=x, y=y), pixels(reps)
            )
            t_scene_point = _median_time(
                lambda x, y: query.scene_series(cube, x=x, y=y), pixels(reps)
            )
            t_scene_one = _median_time(
                lambda x, y: query.scene_series(cube, x=x, y=y, variables=["mviupd"]),
                pixels(reps),
            )
            t_point_open = _median_time(
                lambda x, y: query.point_series(str(path), x=x, y=y), pixels(reps)
            )
            small_edge = max(4, size // 8)
            areas = {}
            for label, edge in (("small", small_edge), ("large", size)):
                boxes = []
                for _ in range(reps):
                    r0 = int(rng.integers(0, size - edge + 1))
                    c0 = int(rng.integers(0, size - edge + 1))
                    t = grid.transform
                    boxes.append(
                        (
                            (
                                t.c + 30 * c0 + 1,
                                t.f - 30 * (r0 + edge) + 1,
                                t.c + 30 * (c0 + edge) - 1,
                                t.f - 30 * r0 - 1,
                            ),
                        )
                    )
                areas[label] = (
                    edge,
                    _median_time(
                        lambda b: query.area_statistics(cube, bbox=b, crs=grid.crs), boxes
                    ),
                )
            # the same large areas on the snapshot that held half of the scenes
            t_half = _median_time(
                lambda b: query.area_statistics(cube, bbox=b, crs=grid.crs, snapshot=half), boxes
            )
            # the same point reads once the stored slots are compacted into time blocks
            t0 = time.perf_counter()
            compact_time_blocks(cube)
            t_compact = time.perf_counter() - t0
            cube = open_cube(path)
            t_blocked_point = _median_time(
                lambda x, y: query.scene_series(cube, x=x, y=y), pixels(reps)
            )
            t_blocked_open = _median_time(
                lambda x, y: query.point_series(str(path), x=x, y=y), pixels(reps)
            )
    n_years = min(N_YEARS, n)
    (e_small, t_small), (e_large, t_large) = areas["small"], areas["large"]
    rows = [
        _row(f"write {n} scenes of {size}x{size} px (append_scenes)", t_append, "s"),
        _row(f"build per-year layers ({n_years} years, {n} scenes)", t_yearly, "s"),
        _row(
            "point per-year series (3 variables)",
            t_yearly_point,
            "s",
            f"< {TARGET_YEARLY_S:g} s",
            t_yearly_point < TARGET_YEARLY_S,
        ),
        _row(f"point scene series, 8 variables x {n} scenes", t_scene_point, "s"),
        _row(f"point scene series, 1 variable x {n} scenes", t_scene_one, "s"),
        _row(f"compact {n} scenes into time blocks (updm compact)", t_compact, "s"),
        _row(
            f"point scene series, 8 variables x {n} scenes, time blocks",
            t_blocked_point,
            "s",
            f"< {TARGET_BLOCKED_S:g} s",
            t_blocked_point < TARGET_BLOCKED_S,
        ),
        _row(
            "point scene series: per-scene layout / time blocks",
            t_scene_point / t_blocked_point,
            "x",
        ),
        _row(
            "point full series incl. opening the cube",
            t_point_open,
            "s",
            f"< {TARGET_POINT_S:g} s",
            t_point_open < TARGET_POINT_S,
        ),
        _row(
            "point full series incl. opening the cube, time blocks",
            t_blocked_open,
            "s",
            f"< {TARGET_POINT_S:g} s",
            t_blocked_open < TARGET_POINT_S,
        ),
        _row(f"area fractions per year, {e_small}x{e_small} px", t_small, "s"),
        _row(f"area fractions per year, {e_large}x{e_large} px", t_large, "s"),
        _row(
            f"area time ratio large/small (pixel ratio {(e_large / e_small) ** 2:g})",
            t_large / t_small,
            "x",
        ),
        _row(f"area fractions per year, {e_large}x{e_large} px, {n_half} scenes", t_half, "s"),
        _row(f"area time ratio {n} / {n_half} scenes", t_large / t_half, "x"),
    ]
    return {
        "benchmark": "query",
        "rows": rows,
        "config": {
            "scenes": n,
            "size": size,
            "years": n_years,
            "repeats": reps,
            "scene_chunks": cube_chunks,
            "yearly_chunks": yearly_chunks,
            "quick": quick,
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
    }


def _row(
    measure: str, value: float, unit: str, target: str | None = None, met: bool | None = None
) -> dict[str, Any]:
    return {"measure": measure, "value": float(value), "unit": unit, "target": target, "met": met}


def report(summary: dict[str, Any]) -> str:
    """Human-readable table of :func:`run` output."""
    cfg = summary["config"]
    lines = [
        f"query benchmark: {cfg['scenes']} scenes of {cfg['size']}x{cfg['size']} px over "
        f"{cfg['years']} years; scene chunks {tuple(cfg['scene_chunks'])}, per-year chunks "
        f"{tuple(cfg['yearly_chunks'])}; median of {cfg['repeats']}",
        f"{'measure':<58}{'value':>10}  {'unit':<4}{'target':>10}  met",
    ]
    for r in summary["rows"]:
        met = "" if r["met"] is None else ("yes" if r["met"] else "NO")
        lines.append(
            f"{r['measure']:<58}{r['value']:>10.4g}  {r['unit']:<4}{r['target'] or '':>10}  {met}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, help="number of scenes (default 300)")
    parser.add_argument("--size", type=int, help="grid edge in pixels (default 256)")
    parser.add_argument("--repeats", type=int, help="repeats per measure (default 7)")
    parser.add_argument("--quick", action="store_true", help="a tiny cube, seconds")
    parser.add_argument("--json", help="also write the summary as JSON here")
    args = parser.parse_args(argv)
    summary = run(args.quick, n_scenes=args.scenes, size=args.size, repeats=args.repeats)
    print(report(summary))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
