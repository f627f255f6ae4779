"""Generating the demo archive: the story, run forwards through every scheduled scene, on disk.

:func:`make_demo_archive` plants the story (:mod:`~updm_dask.demo.story`), plans and plants
each chosen scene (:mod:`~updm_dask.demo.forward`, :mod:`~updm_dask.demo.planting`), and
writes its files (:mod:`~updm_dask.demo.writers`). The :class:`DemoArchive` it returns
keeps the story, so the truth of any year or scene can be asked for later without files.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GridError, SceneError
from ..science.sensors import Sensor
from .forward import SLC_FAILURE_DATE, ScenePlan, plan_scene, scene_dn, standard_patterns
from .planting import Planting, SceneTruth, plant
from .story import (
    DEMO_EPSG,
    LAST_YEAR,
    MAX_SIZE,
    MIN_SIZE,
    MSS_FACTOR,
    SCHEDULE,
    DemoGrid,
    Story,
    demo_grid,
    make_story,
    schedule_order,
)
from .writers import MANIFEST, demo_job_spec, mtl_text, qa_pixel, write_manifest, write_tiff

__all__ = ["DemoArchive", "DemoScene", "make_demo_archive"]


@dataclass(frozen=True)
class DemoScene:
    """One scene of the demo archive.

    Attributes
    ----------
    product_id, scene_id
        ``LANDSAT_PRODUCT_ID`` (also the folder name) and ``LANDSAT_SCENE_ID``.
    sensor, satellite
        Canonical sensor name (``MSS``, ``TM``, ``ETM+``, ``OLI``, ``OLI-2``) and Landsat number.
    date, acquired
        Acquisition date, and the scene-centre time (UTC, timezone-aware).
    cloud_fraction
        Fraction of the scene's pixels under planted cloud (0 for a clear scene).
    folder
        The scene's folder.
    index
        Position in the full 1973-2024 schedule (stable whatever ``n_scenes`` is).
    sun_elevation, sun_azimuth, earth_sun_distance
        As written in the MTL (degrees, degrees, AU).
    """

    product_id: str
    scene_id: str
    sensor: str
    satellite: int
    date: dt.date
    acquired: dt.datetime
    cloud_fraction: float
    folder: Path
    index: int
    sun_elevation: float
    sun_azimuth: float
    earth_sun_distance: float

    @property
    def year(self) -> int:
        """Acquisition year."""
        return self.date.year

    @property
    def slc_off(self) -> bool:
        """True for ETM+ scenes after the Scan Line Corrector failed (2003-05-31)."""
        return self.sensor == "ETM+" and self.date > SLC_FAILURE_DATE

    @property
    def mtl_path(self) -> Path:
        """The scene's ``_MTL.txt``."""
        return self.folder / f"{self.product_id}_MTL.txt"


@dataclass(frozen=True)
class DemoArchive:
    """A generated demo archive and the truth it is judged against.

    Attributes
    ----------
    root
        Folder of scene folders (each named by its product id: band GeoTIFFs, ``_MTL.txt``,
        ``_QA_PIXEL.TIF`` except for MSS).
    grid
        The grid every scene lies on (MSS at 60 m, aligned to it).
    scenes
        The scenes, in acquisition order.
    seed, size
        What the archive was generated from.
    """

    root: Path
    grid: DemoGrid
    scenes: tuple[DemoScene, ...]
    seed: int
    size: int
    _story: Story = field(repr=False, compare=False)

    @property
    def years(self) -> tuple[int, ...]:
        """Years with at least one scene, ascending."""
        return tuple(sorted({s.year for s in self.scenes}))

    def scene(self, product_id: str) -> DemoScene:
        """The scene with this product id."""
        found = {s.product_id: s for s in self.scenes}.get(product_id)
        if found is None:
            raise SceneError(
                f"no scene {product_id!r} in the demo archive at {self.root}; it holds "
                f"{len(self.scenes)} scenes ({self.scenes[0].product_id} ...)"
            )
        return found

    def truth_class(self, year: int) -> np.ndarray:
        """Planted land-cover class of every grid pixel in ``year`` (no clouds).

        Parameters
        ----------
        year
            Any calendar year; the story is defined before, during and after 1973-2024.

        Returns
        -------
        numpy.ndarray
            uint8 (ny, nx): 2 water, 3 vegetation, 4 urban (built-up or cleared ground).
        """
        if isinstance(year, bool) or not isinstance(year, int | np.integer):
            raise GridError(f"year must be an integer, got {year!r}")
        return self._story.classes(int(year))

    def planted_regions(self) -> dict[str, np.ndarray]:
        """Boolean grid masks of the story's parts.

        ``lake`` (water throughout), ``reservoir`` (forest, water from
        :data:`~updm_dask.demo.RESERVOIR_FILL_YEAR`), ``town`` (cleared at some time up to
        2024), ``forest_control`` (forest throughout); also ``cleared_year`` (int16,
        9999 = never).
        """
        s = self._story
        return {
            "lake": s.lake.copy(),
            "reservoir": s.reservoir.copy(),
            "town": s.cleared_year <= LAST_YEAR,
            "forest_control": s.control.copy(),
            "cleared_year": s.cleared_year.copy(),
        }

    def scene_truth(self, product_id: str) -> SceneTruth:
        """What was planted in one scene (coefficients, clouds, shadows, gaps, classes)."""
        scene = self.scene(product_id)
        lat, lon = self.grid.centre_latlon()
        plan = plan_scene(scene.index, self.seed, lat, lon)
        return plant(self._story, plan, self.grid, self.seed).truth

    def write_job_spec(self, path: str | Path, cube_path: str | Path) -> Path:
        """Write a job spec (TOML, :func:`~updm_dask.demo.demo_job_spec`) for this archive.

        Returns
        -------
        pathlib.Path
            The file written.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(demo_job_spec(self, cube_path), encoding="utf-8")
        return path


# --------------------------------------------------------------------------------------
# Generating


def _check_arguments(workdir: Any, seed: Any, n_scenes: Any, size: Any) -> Path:
    if isinstance(size, bool) or not isinstance(size, int | np.integer):
        raise GridError(f"size must be an integer number of 30 m pixels, got {size!r}")
    if size < MIN_SIZE or size > MAX_SIZE:
        raise GridError(
            f"size={size} is outside [{MIN_SIZE}, {MAX_SIZE}]: the demo grid needs at least "
            f"{MIN_SIZE} x {MIN_SIZE} pixels to hold its town, lake, reservoir and control forest"
        )
    if size % MSS_FACTOR:
        raise GridError(
            f"size={size} is odd; it must be even so that the 60 m MSS scenes cover the 30 m "
            "grid exactly (2 x 2 pixels each)"
        )
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise SceneError(f"seed must be a non-negative integer, got {seed!r}")
    if n_scenes is not None:
        if isinstance(n_scenes, bool) or not isinstance(n_scenes, int | np.integer):
            raise SceneError(f"n_scenes must be an integer or None, got {n_scenes!r}")
        if not 1 <= n_scenes <= len(SCHEDULE):
            raise SceneError(
                f"n_scenes={n_scenes} is outside [1, {len(SCHEDULE)}] (the full 1973-2024 "
                "schedule); pass None for all of it"
            )
    try:
        workdir = Path(workdir)
    except TypeError:
        raise SceneError(f"workdir must be a path, got {workdir!r}") from None
    if workdir.exists() and not workdir.is_dir():
        raise SceneError(f"workdir {str(workdir)!r} is a file; expected a directory")
    return workdir


def _prepare_root(root: Path) -> None:
    if root.exists():
        if not root.is_dir():
            raise SceneError(f"{root} is a file; the demo archive folder must be a directory")
        if any(root.iterdir()):
            if not (root / MANIFEST).is_file():
                raise SceneError(
                    f"{root} exists and is not a demo archive (no {MANIFEST}); refusing to "
                    "overwrite it: choose another --workdir"
                )
            # A previous demo archive: replace it whole, so no stale scene survives.
            shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)


def make_demo_archive(
    workdir: str | Path,
    *,
    seed: int = 0,
    n_scenes: int | None = None,
    size: int = 200,
    pattern_set: Any = None,
) -> DemoArchive:
    """Generate the synthetic 1973-2024 Landsat archive of ``updm demo``.

    Parameters
    ----------
    workdir
        Folder to work in (created when missing); the archive goes to ``workdir/archive``.
        A previous demo archive there is replaced; any other non-empty folder is refused.
    seed
        Seeds every random choice (dates, texture, clouds, noise, gap phases): the same seed
        gives the same archive, byte for byte in the rasters and the MTLs.
    n_scenes
        Number of scenes; ``None`` for the whole schedule (about 1-2 a year, 68 scenes).
        A subset keeps every sensor generation first, then spreads over the years.
    size
        Grid edge in 30 m pixels (even, >= :data:`~updm_dask.demo.MIN_SIZE`); MSS scenes
        are ``size // 2`` pixels of 60 m.
    pattern_set
        The :class:`~updm_dask.science.patterns.PatternSet` whose box-car band patterns turn
        coefficients into reflectance (default: the package's default set, which the job
        spec of :func:`~updm_dask.demo.demo_job_spec` names as ``patterns = "default"``;
        with another set, point the job at it too, or the decomposition will not invert
        the forward model).

    Returns
    -------
    DemoArchive

    Raises
    ------
    GridError
        ``size`` not an even integer in range.
    SceneError
        Bad ``seed`` or ``n_scenes``; ``workdir`` is a file; ``workdir/archive`` holds
        something that is not a demo archive.
    """
    import rasterio
    from rasterio.crs import CRS

    workdir = _check_arguments(workdir, seed, n_scenes, size)
    seed, size = int(seed), int(size)
    root = workdir / "archive"
    _prepare_root(root)

    grid = demo_grid(size)
    crs = CRS.from_epsg(DEMO_EPSG)
    story = make_story(size, seed)
    lat, lon = grid.centre_latlon()
    order = schedule_order()
    chosen = sorted(order[: n_scenes or len(order)])

    cache: dict[Sensor, np.ndarray] = {}

    def patterns_of(sensor: Sensor) -> np.ndarray:
        if sensor not in cache:
            cache[sensor] = standard_patterns(sensor, pattern_set)
        return cache[sensor]

    scenes = []
    # One GDAL environment for all files instead of one per open.
    with rasterio.Env():
        for index in chosen:
            plan = plan_scene(index, seed, lat, lon)
            planting = plant(story, plan, grid, seed)
            scenes.append(_write_scene(root, plan, planting, grid, crs, seed, patterns_of))
    scenes.sort(key=lambda s: (s.acquired, s.product_id))

    archive = DemoArchive(root, grid, tuple(scenes), seed, size, story)
    write_manifest(archive)
    return archive


def _write_scene(
    root: Path,
    plan: ScenePlan,
    planting: Planting,
    grid: DemoGrid,
    crs: Any,
    seed: int,
    patterns_of: Callable[[Sensor], np.ndarray],
) -> DemoScene:
    sensor = plan.sensor
    truth = planting.truth
    cells = grid.cells(sensor.name)
    dn = scene_dn(plan, truth.coefficients, truth.fill, patterns_of(sensor), seed)

    folder = root / plan.product_id
    folder.mkdir()
    files = {}
    saturated = {}
    for i, (label, band) in enumerate(zip(sensor.band_labels, plan.bands, strict=True)):
        name = f"{plan.product_id}_B{label}.TIF"
        write_tiff(folder / name, np.ascontiguousarray(dn[..., i]), cells.transform, crs)
        files[label] = name
        saturated[label] = bool((dn[..., i] >= band.qcal_max).any())
    qa_file = None
    if sensor.name != "MSS":
        qa_file = f"{plan.product_id}_QA_PIXEL.TIF"
        qa = qa_pixel(truth, planting.water, oli=sensor.name in ("OLI", "OLI-2"))
        write_tiff(folder / qa_file, qa, cells.transform, crs)

    valid = ~truth.fill
    cloud_fraction = float(truth.cloud.sum() / truth.cloud.size)
    cloud_cover = 100.0 * float(truth.cloud[valid].mean()) if valid.any() else 0.0
    text = mtl_text(plan, cells, files, qa_file, cloud_cover, saturated)
    (folder / f"{plan.product_id}_MTL.txt").write_text(text, encoding="utf-8")
    return DemoScene(
        product_id=plan.product_id,
        scene_id=plan.scene_id,
        sensor=sensor.name,
        satellite=sensor.satellite,
        date=plan.acquired.date(),
        acquired=plan.acquired,
        cloud_fraction=cloud_fraction,
        folder=folder,
        index=plan.index,
        sun_elevation=plan.sun_elevation,
        sun_azimuth=plan.sun_azimuth,
        earth_sun_distance=plan.earth_sun_distance,
    )
