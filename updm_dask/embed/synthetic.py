"""A small cube of known content for testing and evaluating embeddings.

Land-cover HISTORIES (a class per year) are planted in square blocks of pixels, assigned to
the blocks in a shuffled order so that a block's history is unrelated to where it lies.
Every scene carries the planted class, coefficients of that class with per-pixel noise and a
seasonal cycle of the vegetation coefficient, the MVIUPD computed from them
(:func:`updm_dask.science.classify.mviupd`), a small fit residual, and scattered clouds
(class cloud, quality bit CLOUD).
Scenes before 1983 are MSS (no supplementary coefficient, uC4 NaN), then TM, then OLI.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import dask.array as da
import numpy as np
import xarray as xr
from affine import Affine

from ..cube import LAND_COVER_CLASSES, QUALITY_CLOUD, Cube, create_cube
from ..errors import QueryError
from ..geo import CubeGrid
from ..science.classify import mviupd

__all__ = [
    "COVER_COEFFICIENTS",
    "HISTORIES",
    "SYNTHETIC_YEARS",
    "SyntheticCube",
    "make_synthetic_cube",
]

_CODE = {name: code for code, name in LAND_COVER_CLASSES.items()}
WATER, VEGETATION, URBAN, CLOUD = (
    _CODE[n] for n in ("water", "vegetation", "non_vegetated", "cloud")
)

#: (year from which, class) steps of each planted history.
HISTORIES: Mapping[str, tuple[tuple[int, int], ...]] = MappingProxyType(
    {
        "forest": ((0, VEGETATION),),
        "lake": ((0, WATER),),
        "town": ((0, URBAN),),
        "cleared_1985": ((0, VEGETATION), (1985, URBAN)),
        "reservoir_1994": ((0, VEGETATION), (1994, WATER)),
        "regrowth_1992": ((0, URBAN), (1992, VEGETATION)),
    }
)

#: Planted (uCw, uCv, uCs) of each class, as the demo archive's covers.
COVER_COEFFICIENTS: Mapping[int, tuple[float, float, float]] = MappingProxyType(
    {
        VEGETATION: (0.004, 0.100, 0.012),
        URBAN: (0.003, 0.020, 0.085),
        WATER: (0.012, 0.003, 0.004),
        CLOUD: (0.012, 0.100, 0.200),
    }
)

#: Years with two scenes each (at varying days of the year).
SYNTHETIC_YEARS: tuple[int, ...] = (
    1974, 1977, 1981, 1984, 1987, 1990, 1993, 1996, 1999,
    2002, 2005, 2008, 2011, 2014, 2017, 2020, 2023,
)  # fmt: skip


def history_class(history: str, year: int) -> int:
    """Planted class of ``history`` in ``year``."""
    cls = HISTORIES[history][0][1]
    for start, code in HISTORIES[history]:
        if year >= start:
            cls = code
    return cls


@dataclass(frozen=True, eq=False)
class SyntheticCube:
    """The cube and what was planted in it.

    ``history`` (ny, nx) holds the index into ``names`` of every pixel's history;
    ``block_id`` (ny, nx) the block each pixel belongs to.
    """

    cube: Cube
    names: tuple[str, ...]
    history: np.ndarray
    block_id: np.ndarray
    block: int

    def planted_class(self, year: int) -> np.ndarray:
        """Planted class of every pixel in ``year`` (no clouds)."""
        table = np.array([history_class(n, year) for n in self.names], dtype=np.uint8)
        return table[self.history]


def make_synthetic_cube(
    location: str | os.PathLike,
    *,
    blocks: tuple[int, int] = (6, 6),
    block: int = 8,
    histories: Sequence[str] | None = None,
    years: Sequence[int] = SYNTHETIC_YEARS,
    noise: float = 0.05,
    cloud_fraction: float = 0.05,
    seed: int = 0,
    origin: tuple[float, float] = (546000.0, 3843000.0),
    epsg: int = 32653,
) -> SyntheticCube:
    """Create a cube at ``location`` holding planted histories in blocks, in one commit.

    Parameters
    ----------
    location : path or URL
        Where the cube is created (must not hold one).
    blocks : (int, int)
        Blocks down and across.
    block : int
        Block edge in pixels (30 m).
    histories : sequence of str, optional
        Names from :data:`HISTORIES` (default all), dealt to the blocks in turn after a
        seeded shuffle of the blocks.
    years : sequence of int
        Two scenes per year.
    noise : float
        Relative standard deviation of the per-pixel coefficient noise.
    cloud_fraction : float
        Share of pixels under cloud in each scene.
    seed : int
    origin, epsg
        Upper-left corner and CRS of the grid (default: the demo's Kansai UTM square).
    """
    names = tuple(histories) if histories is not None else tuple(HISTORIES)
    unknown = [n for n in names if n not in HISTORIES]
    if unknown:
        raise QueryError(f"histories: unknown {unknown}; known: {list(HISTORIES)}")
    rng = np.random.default_rng(seed)
    nby, nbx = blocks
    ny, nx = nby * block, nbx * block
    grid = CubeGrid(f"EPSG:{epsg}", Affine(30.0, 0, origin[0], 0, -30.0, origin[1]), (ny, nx))
    order = rng.permutation(nby * nbx)
    block_hist = np.empty(nby * nbx, dtype=np.int64)
    block_hist[order] = np.arange(nby * nbx) % len(names)
    bid = (np.arange(ny)[:, None] // block) * nbx + (np.arange(nx)[None, :] // block)
    history = block_hist[bid]
    cube = create_cube(location, grid, title="synthetic embedding test cube")
    texture = rng.normal(0.0, noise, (ny, nx))  # static per-pixel texture
    scenes = []
    k = 0
    for year in years:
        for _ in range(2):
            doy = int((40 + 97 * k) % 365) + 1
            k += 1
            when = np.datetime64(f"{year}-01-01", "D") + np.timedelta64(doy - 1, "D")
            sensor, platform = (
                ("MSS", "LANDSAT_2")
                if year < 1983
                else ("TM", "LANDSAT_5")
                if year < 2013
                else ("OLI", "LANDSAT_8")
            )
            table = np.array([history_class(n, year) for n in names], dtype=np.uint8)
            lc = table[history]
            cloud = rng.random((ny, nx)) < cloud_fraction
            lc = np.where(cloud, CLOUD, lc).astype(np.uint8)
            coef = np.zeros((3, ny, nx))
            for code, values in COVER_COEFFICIENTS.items():
                m = lc == code
                coef[:, m] = np.asarray(values)[:, None]
            season = 1.0 + 0.25 * np.cos(2 * np.pi * (doy - 200) / 365.25)
            coef[1] = np.where(lc == VEGETATION, coef[1] * season, coef[1])
            coef *= np.exp(texture + rng.normal(0.0, noise, (3, ny, nx)))
            w, v, s = coef.astype(np.float32)
            c4 = (
                np.full((ny, nx), np.nan, np.float32)
                if sensor == "MSS"
                else rng.normal(0.0, 0.002, (ny, nx)).astype(np.float32)
            )
            mv = mviupd(w, v, s, None if sensor == "MSS" else c4).astype(np.float32)
            res = np.abs(rng.normal(0.004 if sensor == "MSS" else 0.002, 0.0005, (ny, nx)))
            q = np.where(cloud, QUALITY_CLOUD, 0).astype(np.uint8)
            data = {
                "uCw": w,
                "uCv": v,
                "uCs": s,
                "uC4": c4,
                "mviupd": mv,
                "residual": res.astype(np.float32),
                "land_cover": lc,
                "quality": q,
            }
            ds = xr.Dataset(
                {n: (("y", "x"), da.from_array(a, chunks=-1)) for n, a in data.items()},
                coords={"y": grid.y, "x": grid.x},
            )
            ds = ds.assign_coords(scene_id=f"SYN_{year}_{doy:03d}", time=when.astype("M8[us]"))
            ds.attrs.update({"sensor": sensor, "platform": platform, "sun_elevation": 50.0})
            scenes.append(ds)
    cube.append_scenes(scenes, metadata={"source": "synthetic"}, message="synthetic scenes")
    return SyntheticCube(cube, names, history, bid, block)
