"""What one scene shows of the story: its coefficients, clouds, cloud shadows and gaps.

:func:`plant` turns the year's land cover (:class:`~updm_dask.demo.story.Story`) into the
planted coefficients of every pixel of one scene, with the season's leaf vigour, planted
clouds and their shadows for the cloudy scenes of the schedule, and the SLC-off gaps of
ETM+ after 2003-05-31; on the scene's own pixel grid (60 m for MSS). The
:class:`SceneTruth` it returns is what a decomposition of the written scene is judged
against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..geo import block_mean
from .forward import SCAN_PAIR_M, ScenePlan, slc_off_gap_mask
from .story import (
    CLOUD,
    COVER_COEFFICIENTS,
    COVER_TEXTURE,
    COVERS,
    MSS_FACTOR,
    NO_DATA,
    RESOLUTION,
    WATER,
    DemoGrid,
    Story,
    rng,
    smooth_field,
)

__all__ = ["Planting", "SceneTruth", "plant"]

_CLOUD_TEXTURE = 0.05
_SHADOW_DIMMING = 0.5  # a cloud shadow halves the direct-sun reflectance
_TRACK_OFFSET_M = 55_000.0  # the demo window lies this far east of the WRS path centre line


@dataclass(frozen=True, eq=False)
class SceneTruth:
    """What was planted in one scene, on the scene's own pixel grid.

    Attributes
    ----------
    coefficients
        float32 (ny, nx, 3): planted uCw, uCv, uCs (uC4 = 0). For MSS the mean of the
        2 x 2 cube pixels each 60 m pixel covers.
    cloud, shadow
        Planted cloud and cloud shadow (for MSS: more than half of the 60 m pixel).
    fill
        Pixels written as fill (DN 0): ETM+ SLC-off gaps.
    clear
        Not fill and touched by neither cloud nor shadow (for MSS: none of the 2 x 2 cube
        pixels is), i.e. the pixels whose class a decomposition must recover.
    land_cover
        uint8 planted class: cloud (1) where planted cloud, else the year's land cover (2-4);
        for MSS, 0 where the 2 x 2 cube pixels do not share one class (mixed pixels).
    """

    coefficients: np.ndarray
    cloud: np.ndarray
    shadow: np.ndarray
    fill: np.ndarray
    clear: np.ndarray
    land_cover: np.ndarray


@dataclass(frozen=True, eq=False)
class Planting:
    """A scene's :class:`SceneTruth` and its planted water (for the QA band's water bit)."""

    truth: SceneTruth
    water: np.ndarray  # planted water (land cover), native grid


def plant(story: Story, plan: ScenePlan, grid: DemoGrid, seed: int) -> Planting:
    """Plant one scene: deterministic in ``seed`` and the scene's schedule index."""
    size = grid.shape[0]
    year = plan.slot.year
    generator = rng(seed, 2, plan.index)
    cover = story.cover(year)
    base = np.array([COVER_COEFFICIENTS[c] for c in COVERS])
    coeffs = base[cover] * (1.0 + COVER_TEXTURE[cover] * story.texture)[..., None]
    # Leaf area peaks in late July; a few per cent either side over the summer.
    doy = plan.acquired.timetuple().tm_yday
    vigour = 1.0 + 0.05 * math.cos(2.0 * math.pi * (doy - 205) / 365.0)
    coeffs[cover == 0, 1] *= vigour

    cloud = np.zeros((size, size), dtype=bool)
    shadow = np.zeros_like(cloud)
    if plan.slot.cloudy:
        cloud, shadow = _plant_clouds(generator, size, plan.sun_elevation, plan.sun_azimuth)
        coeffs[shadow] *= _SHADOW_DIMMING
        cloud_texture = 1.0 + _CLOUD_TEXTURE * smooth_field(generator, size, 0.03)
        cloud_c = np.asarray(COVER_COEFFICIENTS["cloud"]) * cloud_texture[..., None]
        coeffs[cloud] = cloud_c[cloud]

    classes = story.classes(year)
    if plan.sensor.name == "MSS":
        k = MSS_FACTOR
        coeffs = _block_mean(coeffs, k)
        cloud_frac = _block_mean(cloud.astype(np.float64), k)
        shadow_frac = _block_mean(shadow.astype(np.float64), k)
        blocks = classes.reshape(size // k, k, size // k, k)
        uniform = (blocks == blocks[:, :1, :, :1]).all(axis=(1, 3))
        land = np.where(uniform, blocks[:, 0, :, 0], NO_DATA).astype(np.uint8)
        cloud_n, shadow_n = cloud_frac > 0.5, (shadow_frac > 0.5) & ~(cloud_frac > 0.5)
        clear = (cloud_frac == 0) & (shadow_frac == 0)
        water = land == WATER
    else:
        land, cloud_n, shadow_n = classes.copy(), cloud, shadow
        clear = ~(cloud | shadow)
        water = classes == WATER
    land = land.copy()
    land[cloud_n] = CLOUD

    fill = np.zeros(land.shape, dtype=bool)
    if plan.slc_off:
        fill = _gap_mask(grid, generator)
    clear &= ~fill
    truth = SceneTruth(
        coefficients=coeffs.astype(np.float32),
        cloud=cloud_n,
        shadow=shadow_n,
        fill=fill,
        clear=clear,
        land_cover=land,
    )
    return Planting(truth, water)


def _block_mean(a: np.ndarray, k: int) -> np.ndarray:
    # The cube's own coarsening (geo.block_mean, over the last two axes): image axes first.
    if a.ndim == 2:
        return block_mean(a, k, k)
    return np.moveaxis(block_mean(np.moveaxis(a, -1, 0), k, k), 0, -1)


def _shift(mask: np.ndarray, drow: int, dcol: int) -> np.ndarray:
    out = np.zeros_like(mask)
    ny, nx = mask.shape
    r0, r1 = max(0, drow), min(ny, ny + drow)
    c0, c1 = max(0, dcol), min(nx, nx + dcol)
    if r0 < r1 and c0 < c1:
        out[r0:r1, c0:c1] = mask[r0 - drow : r1 - drow, c0 - dcol : c1 - dcol]
    return out


def _plant_clouds(
    generator: np.random.Generator, size: int, sun_elevation: float, sun_azimuth: float
) -> tuple[np.ndarray, np.ndarray]:
    idx = np.arange(size, dtype=np.float64)
    yy, xx = np.meshgrid(idx, idx, indexing="ij")
    density = np.zeros((size, size))
    for _ in range(int(generator.integers(1, 4))):
        cx, cy = generator.uniform(0.1, 0.9, 2) * size
        radius = generator.uniform(0.07, 0.14) * size
        density += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2.0 * radius**2))
    density += 0.25 * smooth_field(generator, size, 0.04)
    cloud = density > 0.55
    # The shadow falls away from the sun, displaced by cloud height x tan(sun zenith).
    height_m = generator.uniform(800.0, 2500.0)
    reach = height_m * math.tan(math.radians(90.0 - sun_elevation)) / RESOLUTION
    az = math.radians(sun_azimuth)
    drow, dcol = round(math.cos(az) * reach), round(-math.sin(az) * reach)
    shadow = _shift(cloud, drow, dcol) & ~cloud
    return cloud, shadow


def _gap_mask(grid: DemoGrid, generator: np.random.Generator) -> np.ndarray:
    a, _, c, _, e, f = grid.transform
    ny, nx = grid.shape
    x = c + (np.arange(nx) + 0.5) * a
    y = f + (np.arange(ny) + 0.5) * e
    centre_x, centre_y = c + 0.5 * nx * a, f + 0.5 * ny * e
    return slc_off_gap_mask(
        x[None, :],
        y[:, None],
        track_x=centre_x - _TRACK_OFFSET_M + generator.normal(0.0, 1500.0),
        track_y=centre_y,
        phase_m=generator.uniform(0.0, SCAN_PAIR_M),
    )
