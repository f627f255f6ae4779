"""The fused per-chunk pipeline: DN -> reflectance -> Rayleigh -> NNLS -> MVIUPD -> class.

One task per spatial chunk does every stage on the pixels it holds, so nothing between
the DN and the final layers is ever materialised as a dask array: peak memory per task is
a small multiple of the chunk, whatever the scene size.

Three tiers, as everywhere in the package:

- :func:`process_block` is the numpy kernel: (band, y, x) DN block -> (layer, y, x). It
  calls the science rooms' kernels in turn: calibration and fill in one compiled pass, NNLS,
  then MVIUPD, classification and the dark flag in one compiled pass, then the quality
  flags in one compiled pass.
- :func:`process_scene_array` wraps it with ``dask.array.blockwise`` (one task per chunk).
- :func:`process_scene` is the labelled API: a Dataset from
  :func:`updm_dask.scenes.open_scene` in, a Dataset of scene layers out, lazily.

What is fixed per scene (calibration constants, band patterns, rule table, mask rules)
travels to every task as one :class:`ScenePlan`.

Which pixels are left out: only fill digital numbers (DN 0, a declared nodata that is not a
legal DN, non-finite values: the rule of :mod:`updm_dask.science.masks`) become NaN
coefficients and the class ``no_data``. Saturated pixels are decomposed and classified with
their saturated values, lower bounds of their reflectance, so bright cloud cores mostly come
out as cloud (docs/science.md gives where not); they carry the SATURATED quality bit.
Pixels darker than MVIUPD's dark limit get a NaN MVIUPD and the DARK bit; their class comes
from the rules (water, for the shipped tables).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import dask.array as da
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from dask.base import tokenize

from . import __version__
from .errors import PatternError, SceneError
from .geo.georef import write_georeference
from .scenes.masks import scene_mask_params, slc_extent_args
from .science.calibration import SceneCalibration, scene_calibration
from .science.classify import CLASS_CODES, RuleTable, load_rules
from .science.classify.fused import classify_block
from .science.decompose import nnls_decompose
from .science.masks import MaskParams
from .science.patterns import PatternSet, band_patterns, default_pattern_set
from .science.quality import quality_flags
from .science.spectra import calibrated_spectra

__all__ = [
    "FLOAT_LAYERS",
    "LAYERS",
    "ScenePlan",
    "Science",
    "process_block",
    "process_scene",
    "process_scene_array",
]

#: Float layers of a processed scene, in the order of the kernel's output stack.
FLOAT_LAYERS = ("uCw", "uCv", "uCs", "uC4", "residual", "mviupd")
#: All layers: the float ones, then the land-cover class and the quality bit flags.
LAYERS = (*FLOAT_LAYERS, "land_cover", "quality")


@dataclass(frozen=True)
class Science:
    """The science parameters of a run: explicit, frozen, deterministically tokenized.

    Parameters
    ----------
    pattern_set
        Standard spectra (default: the package's open stand-in set).
    method
        Band averaging of the patterns: ``"boxcar"`` (the note's eq. 14) or ``"rsr"``.
    rules
        ``"auto"`` (the note's Table 5 for TM/ETM+/OLI/OLI-2, Table 8 for MSS), a rule-table
        name or path for every sensor, or a mapping sensor -> rule table / name / path.
    supplementary
        Decompose with the supplementary pattern as a fourth pattern (sensors with six or
        more bands; MSS always uses the three standard patterns). Default: only when
        ``constrain_supplementary`` asks for it, so the three standard patterns. Measured
        on the real scenes, a fourth pattern soaks up what the standard patterns miss
        (residual atmosphere, calibration offsets) and makes MVIUPD disagree between
        sensors and product levels; see docs/supplementary.md.
    constrain_supplementary
        Use the supplementary pattern with uC4 >= 0 (default False: with
        ``supplementary=True`` uC4 is a residual shape that may take either sign).
    calibration
        ``None`` (the scene's MTL, else published tables) or a named calibration.
    rayleigh
        Subtract the Rayleigh path reflectance (eqs. 6-7) from Level-1 scenes.
    """

    pattern_set: PatternSet = field(default_factory=default_pattern_set)
    method: str = "boxcar"
    rules: str | Mapping[str, object] = "auto"
    supplementary: bool | None = None
    constrain_supplementary: bool = False
    calibration: str | None = None
    rayleigh: bool = True

    def __post_init__(self) -> None:
        # Asking for uC4 >= 0 asks for uC4: Science(constrain_supplementary=True) keeps
        # meaning four patterns, as it did when four were the default.
        if self.supplementary is None:
            object.__setattr__(self, "supplementary", bool(self.constrain_supplementary))
        elif self.constrain_supplementary and not self.supplementary:
            raise PatternError(
                "Science: constrain_supplementary=True constrains uC4, which exists only "
                "with the supplementary pattern; got supplementary=False"
            )

    def rules_for(self, sensor: str) -> RuleTable:
        """The rule table that classifies ``sensor``'s pixels."""
        choice = self.rules
        if isinstance(choice, Mapping):
            if sensor not in choice:
                raise SceneError(f"no rule table configured for sensor {sensor}")
            choice = choice[sensor]
        if isinstance(choice, RuleTable):
            return choice
        if choice == "auto":
            choice = "MSS" if sensor == "MSS" else "TM"
        return load_rules(choice)

    def patterns_for(self, sensor: str, satellite: int) -> xr.DataArray:
        """Band patterns (band x pattern) of ``sensor`` on Landsat ``satellite``."""
        # None lets band_patterns decide by band count: MSS (4 bands) cannot take a fourth.
        return band_patterns(
            sensor,
            self.pattern_set,
            method=self.method,
            supplementary=None if self.supplementary else False,
            satellite=satellite,
        )

    def provenance(self, sensor: str, satellite: int) -> dict[str, str]:
        """Attributes that say which science produced a result."""
        rules = self.rules_for(sensor)
        return {
            "pattern_set": self.pattern_set.name,
            "pattern_set_sha256": self.pattern_set.sha256,
            "pattern_method": self.method,
            "rules": rules.name,
            "rules_sha256": rules.sha256,
            "supplementary": str(bool(self.supplementary)).lower(),
            "constrain_supplementary": str(bool(self.constrain_supplementary)).lower(),
            "calibration": self.calibration or "mtl",
            "rayleigh": str(bool(self.rayleigh)).lower(),
            "updm_dask_version": __version__,
        }

    def sha256(self) -> str:
        """Content hash of every science choice (used in job ids and commit metadata)."""
        rules = (
            self.rules
            if isinstance(self.rules, str)
            else sorted((k, getattr(v, "sha256", str(v))) for k, v in self.rules.items())
        )
        text = repr(
            (
                self.pattern_set.sha256,
                self.method,
                rules,
                self.supplementary,
                self.constrain_supplementary,
                self.calibration,
                self.rayleigh,
            )
        )
        return hashlib.sha256(text.encode()).hexdigest()

    def __dask_tokenize__(self):
        return ("updm.Science", self.sha256())


@dataclass(frozen=True, eq=False)
class ScenePlan:
    """What every chunk of one scene is processed with; built once per scene.

    Parameters
    ----------
    scene_id
        Named in the error a failing chunk raises.
    calibration
        The scene's :class:`~updm_dask.science.calibration.SceneCalibration`.
    patterns
        (band, k) float64 band patterns, rows in the order of the DN stack's bands.
    rules
        The sensor's rule table.
    constrain_supplementary
        Passed to the NNLS kernel.
    mask
        The scene's quality-flag rules (:func:`~updm_dask.scenes.scene_mask_params`).
    """

    scene_id: str
    calibration: SceneCalibration
    patterns: np.ndarray
    rules: RuleTable
    constrain_supplementary: bool
    mask: MaskParams


def process_block(
    dn: np.ndarray,
    qa: np.ndarray | None,
    radsat: np.ndarray | None,
    plan: ScenePlan,
    *,
    row_extent: np.ndarray | None = None,
    col_offset: int = 0,
) -> np.ndarray:
    """Run every UPDM stage on one block of a scene.

    Parameters
    ----------
    dn
        (band, y, x) digital numbers (or scaled surface reflectance for Level-2), bands in
        the order of ``plan.calibration.bands`` and of ``plan.patterns``' rows.
    qa, radsat
        (y, x) QA_PIXEL/BQA and radiometric-saturation QA, or None.
    plan
        The scene's calibration, patterns, rules and mask rules.
    row_extent, col_offset
        For SLC-off scenes: first/last valid column of every row of the whole scene and
        this block's first scene column (see :func:`~updm_dask.science.masks.qa_flags`).

    Returns
    -------
    numpy.ndarray
        float32 (len(LAYERS), y, x): uCw, uCv, uCs, uC4 (NaN without a supplementary
        pattern), rms residual, MVIUPD, land-cover class, quality flags. Fill pixels are
        NaN / ``no_data``; saturated pixels are classified from their saturated values.
    """
    _, ny, nx = dn.shape
    out = np.empty((len(LAYERS), ny, nx), dtype=np.float32)
    # Fill is decided in one place, the FILL rule of the quality flags (a declared nodata
    # that is a legal DN, 255 on 8-bit or 65535 on 16-bit bands, is saturation, not fill).
    # calibrate_block, fill_mask, the NaN of fill pixels and the move of the bands last, in
    # one compiled pass: (y, x, band) C-contiguous spectra, which the NNLS reads in place.
    spectra = calibrated_spectra(dn, _without_saturation(plan.calibration), plan.mask)
    coefficients, residual = nnls_decompose(
        spectra, plan.patterns, constrain_supplementary=plan.constrain_supplementary
    )
    k = coefficients.shape[-1]
    for i in range(3):
        out[i] = coefficients[..., i]
    out[3] = coefficients[..., 3] if k == 4 else np.nan
    out[4] = residual
    # classify_array, mviupd and mviupd_undefined in one compiled pass over the block
    classes, index, dark = classify_block(coefficients, plan.rules)
    out[5] = index
    out[6] = classes
    # qa_flags, UPDM's cloud rule as the cloud mask of scenes without a QA band (MSS) and
    # the DARK bit, in one compiled pass over the block
    out[7] = quality_flags(
        dn,
        qa,
        radsat,
        params=plan.mask,
        row_extent=row_extent,
        col_offset=col_offset,
        classes=classes if qa is None else None,
        cloud_class=CLASS_CODES["cloud"],
        dark=dark,
    )
    return out


def _without_saturation(calibration: SceneCalibration) -> SceneCalibration:
    """The scene's calibration with neither saturation nor declared nodata masked.

    A saturated DN is a lower bound of the pixel's radiance, worth decomposing (a bright
    cloud core stays cloud); the quality flags mark it. Fill is masked by the caller.
    """
    return dataclasses.replace(
        calibration, qcal_max=(math.inf,) * len(calibration.bands), nodata=None
    )


def _only_block(blocks):
    """The one block blockwise hands over in a list along an axis of a single chunk.

    The kernels take their blocks unconcatenated (``concatenate=False``): dask's
    concatenation copies even a single block, which was a copy of every block's whole
    layer stack for each layer picked from it.
    """
    while isinstance(blocks, list):
        if len(blocks) != 1:
            raise ValueError(f"expected one block along a contracted axis, got {len(blocks)}")
        blocks = blocks[0]
    return blocks


def _blockwise_kernel(dn, *rest, has_qa, has_radsat, plan):
    dn = _only_block(dn)
    rest = list(rest)
    qa = rest.pop(0) if has_qa else None
    radsat = rest.pop(0) if has_radsat else None
    kwargs = {}
    if rest:  # SLC-off: the whole scene's row extent and this block's column numbers
        extent, cols = rest
        kwargs.update(row_extent=_only_block(extent), col_offset=int(cols[0]))
    scene_id = plan.scene_id
    try:
        return process_block(dn, qa, radsat, plan, **kwargs)
    except Exception as exc:  # say which scene broke: the job records it and goes on
        failure = f"scene {scene_id}: {type(exc).__name__}: {exc}"
    # Raised outside the handler: the cause may not pickle back from a worker process, not
    # even as __context__; its type and text are in the message.
    raise SceneError(failure, scene_id=scene_id)


def process_scene_array(
    dn: da.Array,
    qa: da.Array | None,
    radsat: da.Array | None,
    plan: ScenePlan,
) -> da.Array:
    """One blockwise task per spatial chunk: (band, y, x) DN -> (layer, y, x) float32.

    The band axis must be a single chunk (all bands of a pixel in one task). ETM+ SLC-off
    scenes get one small extra reduction (first/last valid column of every row, over the
    whole scene) so that the gap rule sees whole rows.
    """
    scene_id = plan.scene_id
    if len(dn.chunks[0]) != 1:
        raise SceneError(
            f"scene {scene_id}: the band axis is split into {len(dn.chunks[0])} chunks; "
            "all bands of a pixel must be in one chunk (rechunk with {'band': -1})",
            scene_id=scene_id,
        )
    args: list = [dn, "byx"]
    for extra in (qa, radsat):
        if extra is not None:
            if extra.chunks != dn.chunks[1:]:
                extra = extra.rechunk(dn.chunks[1:])
            args += [extra, "yx"]
    token = tokenize(dn, qa, radsat, plan)
    tail = slc_extent_args(
        args,
        plan.mask,
        has_qa=qa is not None,
        has_radsat=radsat is not None,
        x_chunks=dn.chunks[2],
        token=token,
    )
    return da.blockwise(
        _blockwise_kernel,
        "cyx",
        *args,
        *tail,
        new_axes={"c": len(LAYERS)},
        concatenate=False,
        dtype=np.float32,
        meta=np.empty((0, 0, 0), dtype=np.float32),
        name="updm-process-" + token,
        has_qa=qa is not None,
        has_radsat=radsat is not None,
        plan=plan,
    )


def _pick_layer(stack: np.ndarray | list, *, index: int, out_dtype: np.dtype) -> np.ndarray:
    """Layer ``index`` of a kernel output block, as ``out_dtype`` (a view when it is one)."""
    return _only_block(stack)[index].astype(out_dtype, copy=False)


def process_scene(scene: xr.Dataset, science: Science | None = None) -> xr.Dataset:
    """UPDM layers of one scene, lazily.

    Parameters
    ----------
    scene
        From :func:`updm_dask.scenes.open_scene`: ``dn`` (band, y, x) dask-backed, optional
        ``qa`` and ``radsat``, the scene's metadata in ``attrs["updm_metadata"]``.
    science
        Science parameters (default :class:`Science`).

    Returns
    -------
    xarray.Dataset
        Variables uCw, uCv, uCs, uC4, residual, mviupd (float32), land_cover and quality
        (uint8) with dims (y, x), the scene's CRS and coordinates, and provenance attrs.
    """
    science = science or Science()
    metadata = scene.attrs.get("updm_metadata")
    if metadata is None:
        raise SceneError("dataset has no attrs['updm_metadata']; open it with scenes.open_scene")
    scene_id = metadata.scene_id
    patterns = science.patterns_for(metadata.sensor, metadata.satellite)
    dn = scene["dn"]
    labels = tuple(str(b) for b in dn["band"].values)
    if labels != tuple(str(b) for b in patterns["band"].values):
        raise SceneError(
            f"scene {scene_id}: bands {labels} do not match the {metadata.sensor} patterns' "
            f"bands {tuple(patterns['band'].values)}",
            scene_id=scene_id,
        )
    nodata = scene.attrs.get("nodata")
    calibration = scene_calibration(
        metadata,
        labels,
        calibration=science.calibration,
        rayleigh=science.rayleigh,
        nodata=nodata,
    )
    data = dn.data if isinstance(dn.data, da.Array) else da.from_array(dn.values, chunks=-1)
    qa = scene["qa"].data if "qa" in scene else None
    radsat = scene["radsat"].data if "radsat" in scene else None
    plan = ScenePlan(
        scene_id=scene_id,
        calibration=calibration,
        patterns=np.asarray(patterns.values, dtype=np.float64),
        rules=science.rules_for(metadata.sensor),
        constrain_supplementary=science.constrain_supplementary,
        # Scene-wide mask rules: the rasters' declared nodata and the QA flavour travel
        # with the scene, not with each chunk.
        mask=scene_mask_params(scene),
    )
    stack = process_scene_array(data, qa, radsat, plan)
    coords = {"y": scene["y"], "x": scene["x"]}
    variables = {}
    for i, name in enumerate(LAYERS):
        dtype = np.dtype(np.uint8 if name in ("land_cover", "quality") else np.float32)
        # One pick task per block and layer, each a view of the kernel's block (no copy);
        # the cube fuses the kernel, the picks and its block writes into one task.
        layer = da.blockwise(
            _pick_layer,
            "yx",
            stack,
            "cyx",
            dtype=dtype,
            meta=np.empty((0, 0), dtype=dtype),
            name=f"updm-layer-{name}-{stack.name}",
            concatenate=False,
            index=i,
            out_dtype=dtype,
        )
        variables[name] = xr.DataArray(layer, dims=("y", "x"), coords=coords)
    out = xr.Dataset(variables)
    if "spatial_ref" in scene.coords:
        out = out.assign_coords(spatial_ref=scene["spatial_ref"])
    crs = scene.rio.crs
    if crs is not None:
        # in place: the layers are new variables, and the scene's grid-mapping coordinate
        # is replaced rather than changed (a copy would deep-copy them)
        write_georeference(out, crs, scene.rio.transform())
    out.attrs.update({k: v for k, v in scene.attrs.items() if not k.startswith("updm_")})
    out.attrs.update(science.provenance(metadata.sensor, metadata.satellite))
    out.attrs["calibration_sources"] = ",".join(sorted(set(calibration.sources)))
    out.attrs["updm_metadata"] = metadata
    return out
