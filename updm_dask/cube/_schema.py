"""What a cube holds: variables, coordinates, codes, attributes, and the empty template."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dask.array as da
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from zarr.codecs import BloscCodec

from ..errors import CubeError
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
from ._codes import pack, unpack
from ._io import zstd_codec

#: Format of the cubes this package writes and reads. 1: float32 scene layers (NaN fill),
#: zstd; 2: scaled-integer scene layers (CF scale_factor/add_offset, see
#: :data:`SCENE_VARIABLES`), byte shuffle + zstd. Format-1 cubes are refused until
#: ``updm migrate`` re-encodes them.
CUBE_FORMAT = 2
#: Root attribute that marks an Icechunk repository as a cube (value: format version).
MARKER = "updm_cube_format"


def check_format(value: Any, name: str, *, pinned: bool = False) -> int:
    """The format of cube ``name`` from its root marker; CubeError unless it is this one.

    A cube of an older format is refused rather than misread (its scene layers are
    encoded otherwise); the message says how to migrate it.
    """
    try:
        fmt = int(value)
    except (TypeError, ValueError):
        raise CubeError(
            f"cube {name!r}: root attribute {MARKER!r} must be a format number, got {value!r}"
        ) from None
    if fmt > CUBE_FORMAT:
        raise CubeError(
            f"cube {name!r} has format {fmt}, newer than this package reads "
            f"({CUBE_FORMAT}); upgrade updm_dask"
        )
    if fmt < CUBE_FORMAT:
        how = (
            f"a snapshot of that format cannot be read: run `updm migrate {name}` if that "
            "is not done yet and read a snapshot taken after it"
            if pinned
            else f"run `updm migrate {name}` to re-encode it (one commit, then the per-year "
            "layers are rebuilt)"
        )
        raise CubeError(
            f"cube {name!r} has format {fmt}, older than the format {CUBE_FORMAT} this package "
            f"reads (scene layers are stored differently); {how}"
        )
    return fmt


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
    """dtype, fill value and CF attributes of one cube variable, as stored.

    A packed variable (``scale_factor`` set) stores ``round((value - add_offset) /
    scale_factor)`` as the integer ``dtype``, ``fill`` where the value is NaN, and reads
    as float (CF packing: xarray decodes it). :func:`encode_layer` and
    :func:`decode_layer` are the one implementation of that mapping in the package.
    """

    dtype: str
    fill: Any
    attrs: dict[str, Any] = field(default_factory=dict)
    scale_factor: float | None = None
    add_offset: float = 0.0

    @property
    def codes(self) -> tuple[int, int]:
        """Smallest and largest integer code that stands for a value (the fill excluded)."""
        info = np.iinfo(self.dtype)
        lo = info.min + 1 if self.fill == info.min else info.min
        hi = info.max - 1 if self.fill == info.max else info.max
        return int(lo), int(hi)

    @property
    def cf_attrs(self) -> dict[str, Any]:
        """The CF packing attributes as written on the Zarr array (empty when not packed)."""
        if self.scale_factor is None:
            return {}
        return {
            "scale_factor": self.scale_factor,
            "add_offset": self.add_offset,
            "_FillValue": self.fill,
        }


def _packed(long_name: str, dtype: str, step: float, why: str, **attrs: Any) -> VarSpec:
    """A float layer stored as ``dtype`` integers of ``step`` (the fill: the code of NaN).

    The precision stated in the attributes is what a test checks against the float
    pipeline: within the encodable range the value read differs from the computed one by
    at most half a step; values beyond the range are clipped to its ends (never wrapped).
    """
    info = np.iinfo(dtype)
    fill = int(info.max if info.min == 0 else info.min)
    spec = VarSpec(dtype, fill, {}, step, 0.0)
    lo, hi = spec.codes
    lo_value, hi_value = round(lo * step, 10), round(hi * step, 10)
    return VarSpec(
        dtype,
        fill,
        {
            "long_name": long_name,
            "units": "1",
            **attrs,
            "quantization_step": step,
            "precision": step / 2,
            "encodable_range": [lo_value, hi_value],
            "encoding_comment": (
                f"stored as {dtype} codes of {step!r} (CF scale_factor; decoded value = code x "
                f"scale_factor + add_offset, NaN where _FillValue): the value read differs from "
                f"the computed float by at most half a step ({step / 2!r}); values outside "
                f"[{lo_value!r}, {hi_value!r}] are clipped to that range. {why}"
            ),
        },
        step,
        0.0,
    )


#: Attributes that state a packed layer's precision (format 2 only).
_PACKING_ATTRS = ("quantization_step", "precision", "encodable_range", "encoding_comment")

_COEF_WHY = (
    "Half a step is a tenth of one TM/ETM+ quantisation step in reflectance "
    "(0.0011-0.0029) and far below the rule thresholds' 0.001 resolution."
)


def _coef(long_name: str) -> VarSpec:
    # NNLS coefficients are non-negative: unsigned codes double the range of int16
    return _packed(long_name, "uint16", 2e-4, _COEF_WHY)


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
    # the supplementary coefficient is not constrained to be non-negative: signed codes
    "uC4": _packed(
        "UPDM coefficient of the supplementary (fourth) pattern", "int16", 2e-4, _COEF_WHY
    ),
    "residual": _packed(
        "root-mean-square residual of the UPDM fit",
        "uint16",
        1e-4,
        "A fit diagnostic (non-negative) of typically 0.001-0.04: 1e-4 keeps it to 0.5 % "
        "or better where it matters.",
    ),
    # Stored rather than derived from the stored coefficients at read: a ratio of
    # quantised coefficients errs by up to ~0.014 near the dark limit and could cross the
    # limit itself, so neither the value nor the NaN pattern would be the pipeline's.
    "mviupd": _packed(
        "modified vegetation index based on UPDM (MVIUPD)",
        "int16",
        1e-3,
        "MVIUPD's own noise is about 1.2 x 0.001 / S (0.004 at S = 0.3, 0.1 at the dark "
        "limit) and the rule thresholds (0.458 TM, 0.286 MSS) are multiples of 0.001; with "
        "the dark limit |MVIUPD| stays far inside the range.",
        dark_limit=MVIUPD_DARK_LIMIT,
        comment=f"NaN where S = uCw + uCv + uCs < {MVIUPD_DARK_LIMIT!r}: too dark "
        "for the ratio to mean anything (quality bit dark_mviupd_undefined)",
    ),
    # codes and bit flags are stored exactly: precision 0
    "land_cover": VarSpec(
        "uint8", NO_DATA, {**_land_cover_attrs("land-cover class"), "precision": 0}
    ),
    "quality": VarSpec(
        "uint8",
        QUALITY_FILL,
        {
            "long_name": "pixel quality bit flags",
            "units": "1",
            "flag_masks": list(FLAG_MASKS),
            "flag_meanings": FLAG_MEANINGS,
            "precision": 0,
        },
    ),
}

#: Scene-level float layers of format 1 (float32, NaN fill, zstd): what ``updm migrate``
#: expects to find and re-encodes. land_cover and quality are stored alike in both formats.
_FORMAT_1_FLOAT_LAYERS: dict[str, VarSpec] = {
    name: VarSpec(
        "float32", np.nan, {k: v for k, v in spec.attrs.items() if k not in _PACKING_ATTRS}
    )
    for name, spec in SCENE_VARIABLES.items()
    if spec.scale_factor is not None
}


def _layer_spec(name: str) -> VarSpec | None:
    """The spec of scene or per-year layer ``name``; None for any other name."""
    return SCENE_VARIABLES.get(name) or YEARLY_VARIABLES.get(name)


def is_packed(name: str) -> bool:
    """Whether scene or per-year layer ``name`` is stored as scaled integers (CF packing)."""
    spec = _layer_spec(name)
    return spec is not None and spec.scale_factor is not None


def _pack(values: np.ndarray, spec: VarSpec) -> np.ndarray:
    # one compiled pass: round((v - add_offset) / scale_factor) in float64, half to even,
    # clipped to the encodable codes (never wrapped), the fill where NaN
    return pack(values, spec.dtype, spec.fill, spec.codes, spec.scale_factor, spec.add_offset)


def _unpack(codes: np.ndarray, spec: VarSpec) -> np.ndarray:
    # float64 arithmetic as xarray's CF decoding does, then float32 as the layers were
    return unpack(codes, spec.fill, spec.scale_factor, spec.add_offset)


def encode_layer(name: str, values: Any) -> Any:
    """Values of scene or per-year layer ``name`` (numpy or dask) as the cube stores them.

    Packed layers: ``round((value - add_offset) / scale_factor)`` in the layer's integer
    dtype, its fill where NaN, clipped to the encodable range. Other layers: cast to
    their dtype.
    """
    spec = _layer_spec(name)
    if spec is None:
        raise KeyError(f"encode_layer: {name!r} is not a scene or per-year layer of the cube")
    if spec.scale_factor is None:
        return values.astype(spec.dtype)
    if isinstance(values, da.Array):
        # named from the input and the layer (the packing of a layer is fixed): tokenizing
        # the layer's spec took half of a scene's validation on the driver
        return values.map_blocks(
            _pack, spec, dtype=np.dtype(spec.dtype), name=f"updm-encode-{name}-{values.name}"
        )
    return _pack(values, spec)


def decode_layer(name: str, stored: Any) -> Any:
    """Stored values of scene or per-year layer ``name`` (numpy or dask) as float32 (NaN
    for fill).

    Readers of raw Zarr arrays call this; xarray (``Cube.to_xarray``) decodes the CF
    attributes the same way. Non-packed layers are returned as they are, and so are float
    values: ``yearly_mviupd_median`` was stored as float32 before it was packed, and
    cubes keep such layers until their years are built anew.
    """
    spec = _layer_spec(name)
    if spec is None or spec.scale_factor is None or np.dtype(stored.dtype).kind == "f":
        return stored
    if isinstance(stored, da.Array):
        return stored.map_blocks(_unpack, spec, dtype=np.float32)
    return _unpack(stored, spec)


def decode_dataset(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` (opened with xarray) with its packed scene and per-year layers as float32.

    xarray decodes CF packing to float64; the layers are float32 values (as computed, and
    as :func:`decode_layer` gives them), at half the memory. The values are the same:
    both compute ``code x scale_factor + add_offset`` in float64.
    """
    for name in (*SCENE_VARIABLES, *YEARLY_VARIABLES):
        if is_packed(name) and name in ds.variables and ds[name].dtype != np.float32:
            var = ds[name].astype(np.float32)
            # keep where the chunks lie; the packing stays with the cube: a copy written
            # with to_zarr holds these float32 values exactly
            var.encoding = {
                k: v
                for k, v in ds[name].encoding.items()
                if k in ("chunks", "preferred_chunks", "source")
            }
            ds[name] = var
    return ds


def blosc_zstd_clevel(level: int) -> int:
    """The Blosc ``clevel`` whose zstd level is closest to ``level`` without exceeding it.

    Blosc does not hand its ``clevel`` to zstd as it is: for clevel 1-8 it compresses at
    zstd level ``2 * clevel - 1`` (and at zstd's maximum for 9). Blosc's clevel 3 is zstd
    level 5, which costs twice the CPU of level 3 on the packed layers for 1-2 % fewer bytes
    (benchmarks/bench_storage.py), so the configured level is translated here.
    """
    if level >= 17:
        return 9
    return max(1, min(8, (level + 1) // 2))


def packed_codec(spec: VarSpec, chunk: tuple[int, ...] | None = None) -> BloscCodec:
    """Byte shuffle + zstd at the ``updm.compression.zstd-level`` level (Blosc).

    Shuffling groups the bytes of the integer codes (high bytes nearly constant) before
    zstd: 10-20 % smaller than zstd alone on the demo and the real scenes, and smaller
    than bit shuffle on all but near-constant layers (benchmarks/bench_storage.py).
    With ``chunk`` (the array's chunk shape) a chunk is one Blosc block, shuffled and
    compressed as one zstd frame: Blosc's default blocks (tens of kB) cost 1-2 % more
    bytes at the same speed, and a read decodes whole chunks anyway.
    """
    itemsize = np.dtype(spec.dtype).itemsize
    return BloscCodec(
        cname="zstd",
        clevel=blosc_zstd_clevel(zstd_codec().level),
        shuffle="shuffle",
        typesize=itemsize,
        blocksize=0 if chunk is None else int(np.prod(chunk)) * itemsize,
    )


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
    # Packed in half steps of the scene layer's codes: a median of the year's stored
    # values is one of them or the mean of two, so it is stored exactly, over the whole
    # range of the scene layer (int32). Stored as float32 before: zstd of unshuffled
    # floats was a third of a year's rebuild, and 60 % more bytes.
    "yearly_mviupd_median": _packed(
        "median MVIUPD of the clear observations of the year",
        "int32",
        5e-4,
        "The median of the year's stored MVIUPD values (each within 0.0005 of the "
        "pipeline's) is a multiple of 0.0005: it is stored exactly, and lies within 0.0005 "
        "of the median of the pipeline's values.",
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
        name: (
            ("time", "y", "x"),
            # packed layers are float in memory; the encoding below packs them
            np.zeros((0, ny, nx), dtype="float32" if spec.scale_factor else spec.dtype),
            dict(spec.attrs),
        )
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
        if spec.scale_factor is not None:
            encoding[name].update(
                dtype=spec.dtype,
                scale_factor=spec.scale_factor,
                add_offset=spec.add_offset,
                _FillValue=spec.fill,
                compressors=[packed_codec(spec, (1, cy, cx))],
            )
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
