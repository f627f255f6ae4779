"""What a cube holds: variables, coordinates, codes, attributes, and the empty template."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr

from ..geo import CubeGrid
from ..science.classify import CLASS_LONG_NAMES as _CLASS_LONG_NAMES
from ..science.classify import LAND_COVER_CLASSES as _CLASS_CODES
from ..science.classify import MVIUPD_DARK_LIMIT
from ..science.masks import (
    CLEAR_MASK_BITS,
    CLOUD,
    CLOUD_SHADOW,
    DARK,
    FILL,
    FLAG_MASKS,
    FLAG_MEANINGS,
    SATURATED,
    SLC_GAP,
)
from ._io import zstd_codec

CUBE_FORMAT = 1
#: Root attribute that marks an Icechunk repository as a cube (value: format version).
MARKER = "updm_cube_format"

#: Land-cover class codes (CF flag_values) and their names, shared with classification.
LAND_COVER_CLASSES: dict[int, str] = {code: name for name, code in _CLASS_CODES.items()}
NO_DATA = _CLASS_CODES["no_data"]
CLEAR_CLASSES: tuple[int, ...] = tuple(
    _CLASS_CODES[n] for n in ("water", "vegetation", "non_vegetated")
)
#: Tie-break order of the yearly class: vegetation > non_vegetated > water.
YEARLY_CLASS_PRIORITY: tuple[int, ...] = tuple(
    _CLASS_CODES[n] for n in ("vegetation", "non_vegetated", "water")
)

#: Quality bits (the scenes' flags, see :mod:`updm_dask.science.masks`).
QUALITY_FILL = FILL
QUALITY_SATURATED = SATURATED
QUALITY_CLOUD = CLOUD
QUALITY_CLOUD_SHADOW = CLOUD_SHADOW
QUALITY_SLC_GAP = SLC_GAP
#: MVIUPD undefined: the pixel is darker than the dark limit (still clear).
QUALITY_DARK = DARK
#: An observation with any of these bits set is not clear.
QUALITY_NOT_CLEAR = CLEAR_MASK_BITS

# On disk: int64 microseconds keep Landsat's sub-second scene-centre times exactly.
TIME_UNITS = "microseconds since 1970-01-01T00:00:00"
# 1-D per-scene coordinates: one chunk holds the ledger of thousands of scenes.
TIME_CHUNK = 4096
STR = np.dtypes.StringDType()


@dataclass(frozen=True)
class VarSpec:
    """dtype, fill value and CF attributes of one cube variable."""

    dtype: str
    fill: Any
    attrs: dict[str, Any] = field(default_factory=dict)


def _coef(long_name: str) -> VarSpec:
    return VarSpec("float32", np.nan, {"long_name": long_name, "units": "1"})


def _land_cover_attrs(long_name: str) -> dict[str, Any]:
    return {
        "long_name": long_name,
        "units": "1",
        "flag_values": list(LAND_COVER_CLASSES),
        "flag_meanings": " ".join(LAND_COVER_CLASSES.values()),
        # CF has no per-flag long names; say in words what the codes hold.
        "comment": "; ".join(
            f"{code} {name}: {_CLASS_LONG_NAMES[name]}" for code, name in LAND_COVER_CLASSES.items()
        ),
    }


#: Scene-level variables, dims (time, y, x).
SCENE_VARIABLES: dict[str, VarSpec] = {
    "uCw": _coef("UPDM coefficient of the water pattern"),
    "uCv": _coef("UPDM coefficient of the vegetation pattern"),
    "uCs": _coef("UPDM coefficient of the soil pattern"),
    "uC4": _coef("UPDM coefficient of the supplementary (fourth) pattern"),
    "residual": _coef("root-mean-square residual of the UPDM fit"),
    "mviupd": VarSpec(
        "float32",
        np.nan,
        {
            "long_name": "modified vegetation index based on UPDM (MVIUPD)",
            "units": "1",
            "dark_limit": MVIUPD_DARK_LIMIT,
            "comment": f"NaN where S = uCw + uCv + uCs < {MVIUPD_DARK_LIMIT!r}: too dark "
            "for the ratio to mean anything (quality bit dark_mviupd_undefined)",
        },
    ),
    "land_cover": VarSpec("uint8", NO_DATA, _land_cover_attrs("land-cover class")),
    "quality": VarSpec(
        "uint8",
        QUALITY_FILL,
        {
            "long_name": "pixel quality bit flags",
            "units": "1",
            "flag_masks": list(FLAG_MASKS),
            "flag_meanings": FLAG_MEANINGS,
        },
    ),
}

#: Per-scene string coordinates along time (names as the scene pipeline's attributes).
STR_COORDS: dict[str, str] = {
    "scene_id": "Landsat scene identifier",
    "product_id": "Landsat product identifier",
    "sensor": "sensor (MSS, TM, ETM+, OLI, OLI-2)",
    "platform": "platform (e.g. LANDSAT_5)",
    "pattern_set": "pattern set of the decomposition",
    "pattern_set_sha256": "content hash of the pattern set",
    "rules": "land-cover rule table",
    "rules_sha256": "content hash of the rule table",
}
#: Every per-scene coordinate besides time.
TIME_COORDS: tuple[str, ...] = (*STR_COORDS, "sun_elevation")

#: yearly_clear_count of a pixel no scene of the year covered (counts stop below it).
CLEAR_COUNT_FILL = 65535
#: The fill of yearly_clear_count in cubes written before: 0, which is also a valid count.
OLD_CLEAR_COUNT_FILL = 0

#: Per-year variables, dims (year, y, x).
YEARLY_VARIABLES: dict[str, VarSpec] = {
    "yearly_land_cover": VarSpec(
        "uint8",
        NO_DATA,
        {
            **_land_cover_attrs(
                "most frequent land-cover class among the clear observations of the year"
            ),
            "tie_break": "vegetation > non_vegetated > water",
        },
    ),
    "yearly_mviupd_median": VarSpec(
        "float32",
        np.nan,
        {"long_name": "median MVIUPD of the clear observations of the year", "units": "1"},
    ),
    # the fill is not a count: 0 is a pixel seen but never clear, the fill one no scene
    # covered (cubes written before held 0 for both; see clear_count_fill)
    "yearly_clear_count": VarSpec(
        "uint16",
        CLEAR_COUNT_FILL,
        {
            "long_name": "number of clear observations in the year",
            "units": "1",
            "comment": f"{CLEAR_COUNT_FILL} (the fill value): no scene of the year covered the "
            "pixel; 0: covered, but never clear",
        },
    ),
    # with yearly_clear_count: the agreement of the year's observations, which the
    # complete annual maps report as their confidence
    "yearly_class_count": VarSpec(
        "uint16",
        0,
        {
            "long_name": "number of clear observations of the year in its yearly class",
            "units": "1",
        },
    ),
}


def template(
    grid: CubeGrid, title: str | None, chunks: tuple[int, int], version: str
) -> tuple[xr.Dataset, dict[str, dict[str, Any]]]:
    """The empty cube (no time slot) and the Zarr encoding to write it with."""
    ny, nx = grid.shape
    cy, cx = chunks
    variables = {
        name: (("time", "y", "x"), np.zeros((0, ny, nx), dtype=spec.dtype), dict(spec.attrs))
        for name, spec in SCENE_VARIABLES.items()
    }
    coords: dict[str, Any] = {
        "time": (
            "time",
            np.array([], dtype="datetime64[ns]"),
            {"standard_name": "time", "long_name": "acquisition time (UTC)", "axis": "T"},
        ),
        "y": (
            "y",
            grid.y,
            {
                "standard_name": "projection_y_coordinate",
                "long_name": "y coordinate of projection (pixel centre)",
                "units": "m",
                "axis": "Y",
            },
        ),
        "x": (
            "x",
            grid.x,
            {
                "standard_name": "projection_x_coordinate",
                "long_name": "x coordinate of projection (pixel centre)",
                "units": "m",
                "axis": "X",
            },
        ),
        "sun_elevation": (
            "time",
            np.array([], dtype="float32"),
            {"long_name": "sun elevation at scene centre", "units": "degree"},
        ),
    }
    for name, long_name in STR_COORDS.items():
        coords[name] = ("time", np.array([], dtype=STR), {"long_name": long_name})
    attrs = {
        MARKER: CUBE_FORMAT,
        "Conventions": "CF-1.10",
        "title": title or "UPDM land-cover time-series cube",
        "grid": grid.to_dict(),
        "updm_dask_version": version,
        "source": "Landsat MSS, TM, ETM+, OLI and OLI-2 scenes, Universal Pattern "
        "Decomposition Method",
    }
    ds = xr.Dataset(variables, coords=coords, attrs=attrs)
    # rioxarray's own grid-mapping variable, so plain xarray + rioxarray read the CRS
    ds = ds.rio.write_crs(grid.crs_wkt).rio.write_transform(grid.transform)
    zstd = zstd_codec()
    coord_names = " ".join(["time", *TIME_COORDS, "spatial_ref"])
    encoding: dict[str, dict[str, Any]] = {}
    for name, spec in SCENE_VARIABLES.items():
        var = ds[name]
        # xarray drops an encoded grid_mapping on Zarr; as an attribute it survives
        var.encoding.pop("grid_mapping", None)
        var.attrs["grid_mapping"] = "spatial_ref"
        # listing spatial_ref here makes it a coordinate, not a data variable, on reading
        var.encoding["coordinates"] = coord_names
        encoding[name] = {"chunks": (1, cy, cx), "compressors": [zstd], "fill_value": spec.fill}
    encoding["time"] = {
        "units": TIME_UNITS,
        "calendar": "proleptic_gregorian",
        "dtype": "int64",
        "chunks": (TIME_CHUNK,),
        "compressors": [zstd],
    }
    for name in TIME_COORDS:
        encoding[name] = {"chunks": (TIME_CHUNK,), "compressors": [zstd]}
    encoding["sun_elevation"]["fill_value"] = np.nan
    for name in ("y", "x"):
        encoding[name] = {"_FillValue": None, "compressors": [zstd]}
    return ds, encoding
