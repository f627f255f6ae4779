"""The synthetic multi-decade Landsat archive behind ``updm demo``.

:func:`make_demo_archive` writes, on one small UTM grid, a Collection-2-style Level-1 archive
covering 1973-2024 (MSS on Landsat 1-5, TM on Landsat 4-5, ETM+ on Landsat 7 with and without
its Scan Line Corrector, OLI on Landsat 8 and OLI-2 on Landsat 9), with a planted land-cover
history to judge a job against: a town that clears the forest around it and spreads outward
decade by decade, a reservoir that floods a forested valley in :data:`RESERVOIR_FILL_YEAR`,
a lake and a corner of untouched forest as controls.

Every scene is made by running the UPDM physics forwards (coefficients -> reflectance
through the band patterns -> + Rayleigh path reflectance + noise -> calibrated DN), so the
decomposition has a known answer. The coefficient values of each cover
(:data:`COVER_COEFFICIENTS`) are chosen so that the note's TM (Table 5) and MSS (Table 8)
rule tables both classify the clean pixels correctly, with margins larger than the noise.

Rooms, in dependency order:

- :mod:`~updm_dask.demo.story`: the grid, the planted land-cover history, the schedule of
  scenes;
- :mod:`~updm_dask.demo.forward`: the forward model (:func:`forward_dn`), the sun
  (:func:`solar_position`), SLC-off gaps (:func:`slc_off_gap_mask`) and the acquisition and
  calibration plan of each scene;
- :mod:`~updm_dask.demo.planting`: one scene's planted coefficients, clouds, shadows and
  gaps (:class:`SceneTruth`);
- :mod:`~updm_dask.demo.writers`: GeoTIFFs, QA_PIXEL, the MTL, the manifest and the job
  spec (:func:`demo_job_spec`);
- :mod:`~updm_dask.demo.archive`: :func:`make_demo_archive` and :class:`DemoArchive`;
- :mod:`~updm_dask.demo.recovery`: :func:`recovery_report`, :func:`format_recovery`;
- :mod:`~updm_dask.demo.run`: :func:`~updm_dask.demo.run.run_demo`, the ``updm demo`` job
  (imported on demand: it needs the job runner and a Dask cluster).
"""

from __future__ import annotations

from .archive import DemoArchive, DemoScene, make_demo_archive
from .forward import SLC_FAILURE_DATE, forward_dn, slc_off_gap_mask, solar_position
from .planting import SceneTruth
from .recovery import RecoveryRow, format_recovery, recovery_report
from .story import (
    CLASS_NAMES,
    COVER_COEFFICIENTS,
    DEMO_EPSG,
    MIN_SIZE,
    RESERVOIR_FILL_YEAR,
    DemoGrid,
)
from .writers import demo_job_spec

__all__ = [
    "CLASS_NAMES",
    "COVER_COEFFICIENTS",
    "DEMO_EPSG",
    "MIN_SIZE",
    "RESERVOIR_FILL_YEAR",
    "SLC_FAILURE_DATE",
    "DemoArchive",
    "DemoGrid",
    "DemoScene",
    "RecoveryRow",
    "SceneTruth",
    "demo_job_spec",
    "format_recovery",
    "forward_dn",
    "make_demo_archive",
    "recovery_report",
    "slc_off_gap_mask",
    "solar_position",
]
