"""Speed of the location embedding, measured in one run on a synthetic cube.

* layer: computing the raw embedding of every pixel from the scenes (``embedding_layer``),
  in scene-pixels per second (slots x pixels read);
* focal: the same with a neighbourhood radius (pooled sums over a disk), as a ratio to the
  per-pixel layer;
* stored: reading a stored layer (``store_embedding`` once, then ``cube_vectors``), as a
  ratio to computing it - what a stored layer saves every search;
* point: one ``point_embedding`` (a window of the scenes read straight from Zarr);
* encoder: fitting the location encoder (degree L) and encoding 10 000 points.

Usage::

    python benchmarks/bench_embed.py [--blocks 12] [--block 10] [--radius 90] [--degree 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from updm_dask.embed import embedding_layer, fit_encoder, point_embedding, store_embedding
from updm_dask.embed.layer import cube_vectors
from updm_dask.embed.synthetic import make_synthetic_cube
from updm_dask.geo.points import grid_lonlat


def _time(f, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--blocks", type=int, default=12, help="blocks per side")
    p.add_argument("--block", type=int, default=10, help="block edge, pixels")
    p.add_argument("--radius", type=float, default=90.0, help="focal radius, metres")
    p.add_argument("--degree", type=int, default=20, help="encoder degree")
    args = p.parse_args()
    import icechunk

    icechunk.set_logs_filter("error")
    with tempfile.TemporaryDirectory() as tmp:
        syn = make_synthetic_cube(
            Path(tmp) / "c", blocks=(args.blocks, args.blocks), block=args.block
        )
        cube = syn.cube
        ny, nx = cube.grid.shape
        slots = cube.to_xarray().sizes["time"]
        t_layer = _time(lambda: embedding_layer(cube).compute())
        t_focal = _time(lambda: embedding_layer(cube, radius=args.radius).compute())
        t_vec = _time(lambda: cube_vectors(cube)[0].compute(), repeats=1)
        store_embedding(cube)
        t_stored = _time(lambda: cube_vectors(cube)[0].compute())
        lon, lat = grid_lonlat(cube.grid, cube.grid.x[nx // 2], cube.grid.y[ny // 2])
        t_point = _time(lambda: point_embedding(cube, float(lon), float(lat)))
        t0 = time.perf_counter()
        enc = fit_encoder(cube, step=2, degree=args.degree)
        t_fit = time.perf_counter() - t0
        rng = np.random.default_rng(0)
        q_lon = float(lon) + rng.normal(0, 0.01, 10_000)
        q_lat = float(lat) + rng.normal(0, 0.01, 10_000)
        t_enc = _time(lambda: enc.encode(q_lon, q_lat), repeats=1)
    print(f"cube {ny} x {nx} pixels, {slots} scenes")
    print(f"layer    {t_layer:7.2f} s  {slots * ny * nx / t_layer:,.0f} scene-pixels/s")
    print(f"focal    {t_focal:7.2f} s  {t_focal / t_layer:.2f}x the layer (radius {args.radius} m)")
    print(f"vectors  {t_vec:7.2f} s  computed (statistics + layer)")
    print(f"stored   {t_stored:7.2f} s  {t_vec / t_stored:.1f}x faster than computing")
    print(f"point    {t_point:7.2f} s  one point, radius 0")
    print(
        f"encoder  {t_fit:7.2f} s  fit (degree {args.degree}, {enc.train_xyz.shape[0]} points)"
        f"; {10_000 / t_enc:,.0f} points/s encoded"
    )


if __name__ == "__main__":
    main()
