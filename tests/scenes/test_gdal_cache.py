"""GDAL's block cache is bounded by ``updm.io.gdal-cache-mb``, not by 5 % of the RAM.

GDAL keeps decoded blocks in one cache per process, 5 % of the machine's RAM by default.
Windows of one block each (read chunks as small as a COG's tiles) all go through it, so a
worker's memory grew with every scene it read, unseen by Dask. Each check runs in a fresh
process: the bound is process-wide, and GDAL reads GDAL_CACHEMAX from the environment once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dask
import numpy as np
import pytest
import rasterio

from updm_dask.errors import SceneError
from updm_dask.scenes.open import RasterStack

EDGE, BLOCK = 4096, 256


@pytest.fixture(scope="module")
def tiled_band(tmp_path_factory) -> Path:
    """A 4096^2 uint16 band, tiled 256 x 256, deflate: 32 MiB decoded."""
    path = tmp_path_factory.mktemp("gdal-cache") / "band.tif"
    values = np.random.default_rng(0).integers(0, 4000, (EDGE, EDGE), dtype=np.uint16)
    profile = dict(
        driver="GTiff",
        height=EDGE,
        width=EDGE,
        count=1,
        dtype="uint16",
        crs="EPSG:32637",
        transform=rasterio.transform.from_origin(500000, 900000, 30, 30),
        tiled=True,
        blockxsize=BLOCK,
        blockysize=BLOCK,
        compress="deflate",
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(values, 1)
    return path


_READ_EVERY_BLOCK = textwrap.dedent(
    """
    import json, sys
    import psutil
    from rasterio.env import get_gdal_config
    from updm_dask.scenes.open import RasterStack
    stack = RasterStack([sys.argv[1]], ({edge}, {edge}), "uint16", "band")
    stack[:, :{block}, :{block}]  # the first read opens the file
    before = psutil.Process().memory_info().rss
    total = 0
    for row in range(0, {edge}, {block}):
        for col in range(0, {edge}, {block}):
            total += int(stack[:, row : row + {block}, col : col + {block}].sum())
    grown = psutil.Process().memory_info().rss - before
    print(json.dumps({{"cachemax": int(get_gdal_config("GDAL_CACHEMAX")), "grown": grown,
                      "total": total}}))
    """
).format(edge=EDGE, block=BLOCK)


def _read_in_fresh_process(band: Path, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k != "GDAL_CACHEMAX"}
    done = subprocess.run(
        [sys.executable, "-c", _READ_EVERY_BLOCK, str(band)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_reads_hold_at_most_the_configured_cache(tiled_band):
    with rasterio.open(tiled_band) as src:
        want = int(src.read(1).astype(np.int64).sum())
    small = _read_in_fresh_process(tiled_band, DASK_UPDM__IO__GDAL_CACHE_MB="4")
    large = _read_in_fresh_process(tiled_band, DASK_UPDM__IO__GDAL_CACHE_MB="256")
    assert small["total"] == large["total"] == want  # the bound changes memory, not values
    assert small["cachemax"] == 4 * 2**20
    assert large["cachemax"] == 256 * 2**20
    # every 256^2 window is one block: with room for all of them the band's 32 MiB stay
    # decoded in the process; bounded at 4 MiB they do not
    assert large["grown"] > 24 * 2**20
    assert small["grown"] < 12 * 2**20


def test_gdal_cachemax_in_the_environment_takes_precedence(tiled_band):
    got = _read_in_fresh_process(tiled_band, GDAL_CACHEMAX="16", DASK_UPDM__IO__GDAL_CACHE_MB="4")
    assert got["cachemax"] == 16 * 2**20  # GDAL reads "16" as MiB


@pytest.mark.parametrize("bad", [0, -3, 2.5, "lots", True])
def test_a_bad_cache_setting_is_refused_naming_the_key(tiled_band, bad):
    stack = RasterStack([str(tiled_band)], (EDGE, EDGE), "uint16", "band")
    with dask.config.set({"updm.io.gdal-cache-mb": bad}), pytest.raises(SceneError) as err:
        stack[:, :8, :8]
    assert "updm.io.gdal-cache-mb" in str(err.value)
    assert "whole number of MiB" in str(err.value)
    assert stack[:, :8, :8].shape == (1, 8, 8)  # the default applies again
