"""A small cube in the southern and western hemispheres (UTM 23S, Minas Gerais), built once.

Known content, so that the command line can be checked against it: 8 x 10 pixels of 30 m,
1990-1995, one TM scene on June 1 of every year; columns 0-4 vegetation, columns 5-9 water;
MVIUPD 0.5 + 0.01 * (year - 1990) over vegetation, -0.5 over water. Tagged "first" after
1990-1992 were stored.
"""

from __future__ import annotations

from pathlib import Path

import dask
import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr
from affine import Affine

from updm_dask.cube import create_cube
from updm_dask.geo import CubeGrid

NY, NX = 8, 10
X0, Y0 = 588780.0, 7772880.0  # north-west corner; about 20.14 S, 44.15 W
GRID = CubeGrid("EPSG:32723", Affine(30, 0, X0, 0, -30, Y0), (NY, NX))
YEARS = list(range(1990, 1996))


def centre(row: int, col: int) -> tuple[float, float]:
    """Cube-CRS centre of a pixel."""
    return X0 + 30 * col + 15.0, Y0 - 30 * row - 15.0


def _scene(year: int) -> xr.Dataset:
    c = np.full((NY, NX), 3, np.uint8)
    c[:, 5:] = 2
    mviupd = np.where(c == 3, 0.5 + 0.01 * (year - 1990), -0.5).astype(np.float32)
    layers = {
        "land_cover": c,
        "quality": np.zeros((NY, NX), np.uint8),
        "mviupd": mviupd,
        "uCw": np.full((NY, NX), 0.02, np.float32),
        "uCv": np.where(c == 3, 0.1, 0.003).astype(np.float32),
        "uCs": np.full((NY, NX), 0.05, np.float32),
    }
    ds = xr.Dataset(
        {n: (("y", "x"), v) for n, v in layers.items()}, coords={"y": GRID.y, "x": GRID.x}
    ).rio.write_crs(GRID.crs)
    ds = ds.assign_coords(scene_id=f"TM{year}", time=np.datetime64(f"{year}-06-01", "us"))
    ds.attrs.update(sensor="TM", platform="LANDSAT_5", sun_elevation=45.0)
    return ds


def make_sw_cube(path: Path) -> Path:
    """Build the southern/western cube (see the module docstring) at ``path``."""
    cube = create_cube(path, GRID, chunks=8)
    with dask.config.set({"updm.chunks.yearly": 8}):
        cube.append_scenes([_scene(y) for y in YEARS[:3]], metadata={"job_id": "t"}, message="a")
        cube.rebuild_yearly()
        cube.create_tag("first")
        cube.append_scenes([_scene(y) for y in YEARS[3:]], metadata={"job_id": "t"}, message="b")
        cube.rebuild_yearly()
    return path


@pytest.fixture(scope="session")
def sw_cube(tmp_path_factory) -> Path:
    """Location of the southern/western cube, shared: tests must not write to it."""
    return make_sw_cube(tmp_path_factory.mktemp("cli") / "cube")
