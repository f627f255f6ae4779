"""The demo's files: band GeoTIFFs, QA_PIXEL, the MTL, the manifest and the job spec.

Files follow Collection 2 Level-1 conventions: one folder per scene named by its product
id, one GeoTIFF per UPDM band (``<id>_B<n>.TIF``; MSS, TM and ETM+ uint8, OLI uint16;
deflate, tiled when large enough, else striped), a ``<id>_QA_PIXEL.TIF`` for TM, ETM+ and
OLI marking fill, planted clouds, their shadows, clear pixels and water (real Collection 2
MSS products also carry a QA_PIXEL band; the demo's MSS scenes have none, so UPDM's own
cloud rule is exercised), and an ODL ``<id>_MTL.txt`` with the groups and fields of a real
Collection 2 Level-1 MTL. The ORIGIN field says the data are synthetic.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import tomli_w

from .forward import STATION, BandRescaling, ScenePlan
from .planting import SceneTruth
from .story import DEMO_EPSG, DemoGrid

if TYPE_CHECKING:
    from .archive import DemoArchive

__all__ = [
    "MANIFEST",
    "demo_job_spec",
    "mtl_text",
    "qa_pixel",
    "write_manifest",
    "write_tiff",
]

#: The file that marks a folder as a demo archive (and lists what was generated).
MANIFEST = "updm-demo.json"
_ORIGIN_TEXT = "Synthetic scene of the updm_dask demo archive (not a USGS product)"
# SENSOR_ID as Collection 2 MTLs spell it.
_SENSOR_ID = {"MSS": "MSS", "TM": "TM", "ETM+": "ETM", "OLI": "OLI_TIRS", "OLI-2": "OLI_TIRS"}


# --------------------------------------------------------------------------------------
# GeoTIFF


def write_tiff(path: Path, array: np.ndarray, transform: Sequence[float], crs: Any) -> None:
    """Write one band as a deflate-compressed GeoTIFF (tiled when 256 x 256 or larger)."""
    import rasterio
    from rasterio.transform import Affine

    ny, nx = array.shape
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "height": ny,
        "width": nx,
        "count": 1,
        "dtype": array.dtype.name,
        "crs": crs,
        "transform": Affine(*transform),
        "compress": "deflate",
        "predictor": 2,
    }
    if min(ny, nx) >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    else:
        profile.update(tiled=False, blockysize=max(1, min(ny, 65536 // max(nx, 1))))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array, 1)


# --------------------------------------------------------------------------------------
# QA_PIXEL (Collection 2 Level-1 bit layout)

_QA_FILL, _QA_CLOUD, _QA_SHADOW, _QA_CLEAR, _QA_WATER = 1 << 0, 1 << 3, 1 << 4, 1 << 6, 1 << 7
_CONF_LOW, _CONF_HIGH = 1, 3  # two-bit confidence levels


def qa_pixel(truth: SceneTruth, water: np.ndarray, oli: bool) -> np.ndarray:
    """QA_PIXEL with only what was planted.

    Fill, cloud (+ high confidence), cloud shadow (+ high confidence), clear (neither cloud
    nor dilated cloud, as the DFCB defines it), water; snow (and, for OLI, cirrus)
    confidence low everywhere.
    """
    cloud_conf = np.where(truth.cloud, _CONF_HIGH, _CONF_LOW).astype(np.uint16)
    shadow_conf = np.where(truth.shadow, _CONF_HIGH, _CONF_LOW).astype(np.uint16)
    qa = (cloud_conf << 8) | (shadow_conf << 10) | np.uint16(_CONF_LOW << 12)
    if oli:
        qa |= np.uint16(_CONF_LOW << 14)
    qa |= np.where(truth.cloud, _QA_CLOUD, _QA_CLEAR).astype(np.uint16)
    qa |= np.where(truth.shadow, _QA_SHADOW, 0).astype(np.uint16)
    qa |= np.where(water & ~truth.cloud, _QA_WATER, 0).astype(np.uint16)
    qa[truth.fill] = _QA_FILL
    return qa.astype(np.uint16)


# --------------------------------------------------------------------------------------
# The MTL (ODL text)


def _q(text: str) -> str:
    return f'"{text}"'


def _range(
    kind: str, band: BandRescaling, mult: float, add: float, spec: str
) -> list[tuple[str, str]]:
    # The MAXIMUM/MINIMUM fields: the rescaling at the two ends of the DN range.
    return [
        (f"{kind}_MAXIMUM_BAND_{band.label}", format(mult * band.qcal_max + add, spec)),
        (f"{kind}_MINIMUM_BAND_{band.label}", format(mult * band.qcal_min + add, spec)),
    ]


def mtl_text(
    plan: ScenePlan,
    cells: DemoGrid,
    files: Mapping[str, str],
    qa_file: str | None,
    cloud_cover: float,
    saturated: Mapping[str, bool],
) -> str:
    """The ``_MTL.txt`` of one scene, with the groups and fields of a real Collection 2 MTL.

    Parameters
    ----------
    plan
        The scene's acquisition and calibration.
    cells
        The scene's own pixel grid (60 m for MSS).
    files
        Band label -> band file name.
    qa_file
        The QA_PIXEL file name, or None (MSS).
    cloud_cover
        % of the valid pixels under planted cloud.
    saturated
        Band label -> whether any pixel reached QUANTIZE_CAL_MAX.

    Returns
    -------
    str
    """
    s = plan.sensor
    labels = s.band_labels
    dtype = plan.dtype.name.upper()
    transform = cells.transform
    res = float(transform[0])
    ny, nx = cells.shape
    ul_x, ul_y = transform[2] + 0.5 * res, transform[5] - 0.5 * res
    lr_x, lr_y = ul_x + (nx - 1) * res, ul_y - (ny - 1) * res
    corners = {"UL": (ul_x, ul_y), "UR": (lr_x, ul_y), "LL": (ul_x, lr_y), "LR": (lr_x, lr_y)}
    corner_cells = [(0.5, 0.5), (nx - 0.5, 0.5), (0.5, ny - 0.5), (nx - 0.5, ny - 0.5)]
    corners_latlon = dict(zip(("UL", "UR", "LL", "LR"), cells.latlon(corner_cells), strict=True))
    mtl_name = f"{plan.product_id}_MTL.txt"
    t = plan.acquired
    seconds = t.second + t.microsecond * 1e-6
    centre_time = f"{t.hour:02d}:{t.minute:02d}:{seconds:010.7f}Z"

    file_entries = [(f"FILE_NAME_BAND_{b}", _q(files[b])) for b in labels]
    if qa_file is not None:
        file_entries.append(("FILE_NAME_QUALITY_L1_PIXEL", _q(qa_file)))
    file_entries.append(("FILE_NAME_METADATA_ODL", _q(mtl_name)))

    contents = [
        ("ORIGIN", _q(_ORIGIN_TEXT)),
        ("LANDSAT_PRODUCT_ID", _q(plan.product_id)),
        ("PROCESSING_LEVEL", _q("L1TP")),
        ("COLLECTION_NUMBER", "02"),
        ("COLLECTION_CATEGORY", _q(plan.product_id[-2:])),
        ("OUTPUT_FORMAT", _q("GEOTIFF")),
        *file_entries,
        *[(f"DATA_TYPE_BAND_{b}", _q(dtype)) for b in labels],
    ]
    if qa_file is not None:
        contents.append(("DATA_TYPE_QUALITY_L1_PIXEL", _q("UINT16")))
    if s.name == "MSS":
        contents += [(f"PRESENT_BAND_{b}", _q("Y")) for b in labels]

    image = [
        ("SPACECRAFT_ID", _q(s.platform)),
        ("SENSOR_ID", _q(_SENSOR_ID[s.name])),
        ("WRS_TYPE", str(plan.wrs[0])),
        ("WRS_PATH", str(plan.wrs[1])),
        ("WRS_ROW", str(plan.wrs[2])),
    ]
    if s.name in ("OLI", "OLI-2"):
        image += [
            ("NADIR_OFFNADIR", _q("NADIR")),
            ("TARGET_WRS_PATH", str(plan.wrs[1])),
            ("TARGET_WRS_ROW", str(plan.wrs[2])),
        ]
    image += [
        ("DATE_ACQUIRED", f"{t:%Y-%m-%d}"),
        ("SCENE_CENTER_TIME", _q(centre_time)),
        ("STATION_ID", _q(STATION)),
        ("CLOUD_COVER", f"{cloud_cover:.2f}"),
        ("CLOUD_COVER_LAND", f"{cloud_cover:.2f}"),
        *[(f"SATURATION_BAND_{b}", _q("Y" if saturated[b] else "N")) for b in labels],
        ("SUN_AZIMUTH", f"{plan.sun_azimuth:.8f}"),
        ("SUN_ELEVATION", f"{plan.sun_elevation:.8f}"),
        ("EARTH_SUN_DISTANCE", f"{plan.earth_sun_distance:.7f}"),
    ]

    zone = DEMO_EPSG - 32600
    map_projection = [
        ("MAP_PROJECTION", _q("UTM")),
        ("DATUM", _q("WGS84")),
        ("ELLIPSOID", _q("WGS84")),
        ("UTM_ZONE", str(zone)),
        ("GRID_CELL_SIZE_REFLECTIVE", f"{res:.2f}"),
    ]
    projection = [
        *map_projection,
        ("REFLECTIVE_LINES", str(ny)),
        ("REFLECTIVE_SAMPLES", str(nx)),
        ("ORIENTATION", _q("NORTH_UP")),
    ]
    for name in ("UL", "UR", "LL", "LR"):
        lat, lon = corners_latlon[name]
        projection += [
            (f"CORNER_{name}_LAT_PRODUCT", f"{lat:.5f}"),
            (f"CORNER_{name}_LON_PRODUCT", f"{lon:.5f}"),
        ]
    for name in ("UL", "UR", "LL", "LR"):
        x, y = corners[name]
        projection += [
            (f"CORNER_{name}_PROJECTION_X_PRODUCT", f"{x:.3f}"),
            (f"CORNER_{name}_PROJECTION_Y_PRODUCT", f"{y:.3f}"),
        ]

    record = [
        ("ORIGIN", _q(_ORIGIN_TEXT)),
        ("LANDSAT_SCENE_ID", _q(plan.scene_id)),
        ("LANDSAT_PRODUCT_ID", _q(plan.product_id)),
        ("PROCESSING_LEVEL", _q("L1TP")),
        ("COLLECTION_CATEGORY", _q(plan.product_id[-2:])),
        ("OUTPUT_FORMAT", _q("GEOTIFF")),
        ("DATE_PRODUCT_GENERATED", f"{plan.processed:%Y-%m-%d}T00:00:00Z"),
        ("PROCESSING_SOFTWARE_VERSION", _q("updm_dask demo")),
        *file_entries,
    ]

    bands = plan.bands
    radiance_minmax = []
    reflectance_minmax = []
    pixel_minmax = []
    for b in bands:
        radiance_minmax += _range("RADIANCE", b, b.radiance_mult, b.radiance_add, ".5f")
        reflectance_minmax += _range("REFLECTANCE", b, b.reflectance_mult, b.reflectance_add, ".6f")
        pixel_minmax += [
            (f"QUANTIZE_CAL_MAX_BAND_{b.label}", str(b.qcal_max)),
            (f"QUANTIZE_CAL_MIN_BAND_{b.label}", str(b.qcal_min)),
        ]
    rescaling = (
        [(f"RADIANCE_MULT_BAND_{b.label}", f"{b.radiance_mult:.4E}") for b in bands]
        + [(f"RADIANCE_ADD_BAND_{b.label}", f"{b.radiance_add:.5f}") for b in bands]
        + [(f"REFLECTANCE_MULT_BAND_{b.label}", f"{b.reflectance_mult:.4E}") for b in bands]
        + [(f"REFLECTANCE_ADD_BAND_{b.label}", f"{b.reflectance_add:.6f}") for b in bands]
    )
    projection_parameters = [
        *map_projection,
        ("ORIENTATION", _q("NORTH_UP")),
        ("RESAMPLING_OPTION", _q("CUBIC_CONVOLUTION")),
    ]
    groups: list[tuple[str, list[tuple[str, str]]]] = [
        ("PRODUCT_CONTENTS", contents),
        ("IMAGE_ATTRIBUTES", image),
        ("PROJECTION_ATTRIBUTES", projection),
        ("LEVEL1_PROCESSING_RECORD", record),
        ("LEVEL1_MIN_MAX_RADIANCE", radiance_minmax),
        ("LEVEL1_MIN_MAX_REFLECTANCE", reflectance_minmax),
        ("LEVEL1_MIN_MAX_PIXEL_VALUE", pixel_minmax),
        ("LEVEL1_RADIOMETRIC_RESCALING", rescaling),
        ("LEVEL1_PROJECTION_PARAMETERS", projection_parameters),
    ]
    if s.name in ("MSS", "ETM+"):
        groups.append(("PRODUCT_PARAMETERS", [(f"GAIN_BAND_{b}", _q("L")) for b in labels]))

    lines = ["GROUP = LANDSAT_METADATA_FILE"]
    for name, entries in groups:
        lines.append(f"  GROUP = {name}")
        lines += [f"    {key} = {value}" for key, value in entries]
        lines.append(f"  END_GROUP = {name}")
    lines += ["END_GROUP = LANDSAT_METADATA_FILE", "END", ""]
    return "\n".join(line.rstrip() for line in lines)


# --------------------------------------------------------------------------------------
# The manifest and the job spec


def write_manifest(archive: DemoArchive) -> Path:
    """Write the archive's manifest (:data:`MANIFEST`): generator, seed, grid, scenes."""
    grid = archive.grid
    manifest = {
        "generator": "updm_dask.demo",
        "seed": archive.seed,
        "size": archive.size,
        "grid": {"crs": grid.crs, "transform": list(grid.transform), "shape": list(grid.shape)},
        "scenes": [s.product_id for s in archive.scenes],
    }
    path = archive.root / MANIFEST
    path.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return path


def demo_job_spec(archive: DemoArchive, cube_path: str | Path) -> str:
    """The TOML job spec of the demo: its archive into a cube on its grid.

    The one place that knows the job-spec layout the demo uses.

    Parameters
    ----------
    archive
        From :func:`~updm_dask.demo.make_demo_archive` (anything with its ``root``,
        ``grid``, ``seed`` and ``scenes``).
    cube_path
        Where the cube goes (written as an absolute path when it is a local path).

    Returns
    -------
    str
    """
    cube = str(cube_path)
    if "://" not in cube:
        cube = str(Path(cube).absolute())
    g = archive.grid
    spec = {
        "job": {"name": "updm-demo"},
        "inputs": {"paths": [str(archive.root.absolute())]},
        "cube": {"path": cube},
        "grid": {
            "crs": g.crs,
            "transform": [float(v) for v in g.transform],
            "shape": [int(n) for n in g.shape],
        },
        "science": {"patterns": "default", "rules": "auto"},
        "batch": {"size": 8},
    }
    header = f"# updm demo: synthetic archive (seed {archive.seed}, {len(archive.scenes)} scenes)"
    return f"{header}\n{_one_line_arrays(tomli_w.dumps(spec))}"


# tomli-w writes each array item on a line of its own: "[\n    item,\n    item,\n]".
_MULTILINE_ARRAY = re.compile(r"\[\n((?:    [^\n]*,\n)+)\]")


def _one_line_arrays(text: str) -> str:
    # The demo's arrays are short and flat; one line each reads like the example specs, and
    # scripts that edit a spec line by line (``shape = [..]``) keep working. Only layout
    # changes: tomli-w escapes newlines inside strings, so every item is exactly one line.
    def join(match: re.Match[str]) -> str:
        items = [line.strip().removesuffix(",") for line in match.group(1).splitlines()]
        return "[" + ", ".join(items) + "]"

    return _MULTILINE_ARRAY.sub(join, text)
