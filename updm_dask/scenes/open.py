"""Opening one scene lazily: a dask-backed Dataset of its UPDM bands and QA bands.

Opening reads headers only: every band file is opened once to check it has one band and
the same shape, grid, CRS and data type as the others; no pixel is read. Pixels are read
when a chunk is computed, by a task that reads one window from each band file, so every
chunk holds all bands of its pixels. Files stay open per thread between tasks (see
``_cached_dataset``; no handle is shared between threads, hence no lock): reopening a
member of a .tar.gz means decompressing up to it again, reopening a remote file costs a
request for its header, and a local one ~1 ms of GDAL's, per band and block.

Scenes whose rasters carry no georeferencing (plain TIFFs cut from a scene) are placed
from their metadata: EPSG:326<UTM_ZONE>, GRID_CELL_SIZE_REFLECTIVE, and
CORNER_UL_PROJECTION_X/Y_PRODUCT, which USGS gives as the CENTRE of the upper-left pixel
(so the grid's outer corner is half a pixel up and left of it). Southern scenes keep the
negative northings USGS writes in the northern zone.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import threading
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import dask.array as da
import numpy as np
import rasterio
import rasterio.errors
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine
from dask.base import tokenize
from rasterio.crs import CRS
from rasterio.windows import Window

from .. import config
from ..errors import SceneError
from ..geo.georef import write_georeference
from ..messages import redact
from ..science.sensors import get_sensor
from . import _locations as loc
from . import _roots as rootcheck
from .discover import SceneSource, discover_scenes

__all__ = ["open_scene", "resolve_scene"]


def _error(message: str, scene_id: str | None = None) -> SceneError:
    # Paths here may be presigned URLs (and GDAL's messages quote them): never show their
    # query strings, which carry the credentials.
    return SceneError(redact(message), scene_id=scene_id)


# --------------------------------------------------------------------------------------
# Reading pixels


# warnings.catch_warnings() swaps process-wide state, so opens that need it (rasters without
# georeferencing, which rasterio warns about on every open) take turns.
_QUIET_OPEN = threading.Lock()


def _open(path: str, quiet: bool):
    if not quiet:
        return rasterio.open(path)
    with _QUIET_OPEN, warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        return rasterio.open(path)


# A .tar.gz has no index: opening one of its members means decompressing the archive up
# to that member, every time; a remote file costs a request for its header; a local one
# about a millisecond of GDAL's per band and block. Files are therefore kept open, per
# thread (rasterio datasets must not be shared between threads), and read window after
# window; GDAL's gzip reader keeps seek snapshots inside an open handle.
_HANDLES = threading.local()
_HANDLES_PER_THREAD = 32


class _MemberCache(OrderedDict):
    """One thread's open files (key -> dataset), least recently used first.

    ``busy`` is held by the owning thread while it uses one of its datasets, so that the
    exit handler never closes a dataset under a read.
    """

    def __init__(self) -> None:
        super().__init__()
        self.busy = threading.Lock()


# Weak references to every thread's cache: a thread that ends takes its handles with it,
# and whatever is still open at exit is closed while GDAL is still alive, not during
# interpreter teardown.
_ALL_HANDLES: list[weakref.ref] = []
_ALL_HANDLES_LOCK = threading.Lock()


@atexit.register
def _close_archive_members() -> None:
    with _ALL_HANDLES_LOCK:
        caches = [ref() for ref in _ALL_HANDLES]
    for cache in caches:
        # A thread still reading a member at exit (a daemon thread of a task that was
        # still running: dask's worker threads are daemons) holds its cache's lock.
        # Closing the dataset under its read crashed the process with SIGSEGV after the
        # job's report; those handles are left open for the operating system to reclaim.
        if cache is None or not cache.busy.acquire(blocking=False):
            continue
        try:
            while cache:
                _, src = cache.popitem()
                with contextlib.suppress(Exception):
                    src.close()
        finally:
            cache.busy.release()


def _member_cache() -> _MemberCache:
    cache = getattr(_HANDLES, "open", None)
    if cache is None:
        cache = _HANDLES.open = _MemberCache()
        with _ALL_HANDLES_LOCK:
            _ALL_HANDLES[:] = [ref for ref in _ALL_HANDLES if ref() is not None]
            _ALL_HANDLES.append(weakref.ref(cache))
    return cache


def _handle_key(path: str) -> str:
    """The key an open dataset of ``path`` is kept under.

    A local file's key holds its modification time and size, so that a file replaced
    since it was opened is opened anew, never read through the old handle. Remote files
    and archive members go by their path (GDAL keeps a remote file's properties for the
    process's lifetime anyway).
    """
    if path.startswith("/vsi"):
        return path
    st = os.stat(path)  # a missing file fails here, named by the caller
    return f"{path}\0{st.st_mtime_ns}\0{st.st_size}"


def _cached_dataset(cache: _MemberCache, key: str, path: str, quiet: bool):
    src = cache.get(key)
    if src is not None and not src.closed:
        cache.move_to_end(key)
        return src
    src = _open(path, quiet)
    cache[key] = src
    while len(cache) > _HANDLES_PER_THREAD:
        _, old = cache.popitem(last=False)
        old.close()
    return src


def _forget_member(cache: _MemberCache, key: str) -> None:
    if key in cache:
        cache.pop(key).close()


def _read_window(
    path: str, window: Window, dtype: np.dtype, scene: str, quiet: bool, scene_id: str | None
) -> np.ndarray:
    try:
        loc.bound_gdal_cache()
        with rasterio.Env(**loc.gdal_env(path)):
            cache = _member_cache()
            key = _handle_key(path)
            with cache.busy:
                try:
                    data = _cached_dataset(cache, key, path, quiet).read(1, window=window)
                except Exception:
                    _forget_member(cache, key)
                    raise
    except (rasterio.errors.RasterioError, OSError) as exc:
        # rasterio's message often just points at GDAL's, which is the useful one.
        failure = f"{exc} ({exc.__cause__})" if exc.__cause__ is not None else str(exc)
    else:
        failure = None
    if failure is not None:
        # Raised outside the handler, so the error has no __context__: rasterio's errors do
        # not unpickle, and a distributed worker would send a bare Exception back instead
        # of this SceneError and its scene_id. The message carries GDAL's.
        raise _error(
            f"scene {scene}: reading {path} (rows {window.row_off}:"
            f"{window.row_off + window.height}, columns {window.col_off}:"
            f"{window.col_off + window.width}) failed: {failure}",
            scene_id=scene_id,
        )
    if data.shape != (window.height, window.width):
        raise _error(
            f"scene {scene}: {path} returned {data.shape} pixels for a "
            f"{window.height}x{window.width} window; has the file changed since it was opened?",
            scene_id=scene_id,
        )
    return data.astype(dtype, copy=False)


class RasterStack:
    """An array-like over single-band rasters of one grid: (band, y, x), read on demand.

    Pickles as its paths (dask embeds it in every read task); reading a slice reads one
    window of each file, through the reading thread's open handle of it. ``scene`` names
    the scene in messages, ``scene_id`` is the id its read errors carry
    (:attr:`SceneError.scene_id`).
    """

    def __init__(
        self,
        paths: Sequence[str],
        shape: tuple[int, int],
        dtype,
        scene: str,
        georeferenced: bool = True,
        scene_id: str | None = None,
    ) -> None:
        self.paths = tuple(paths)
        self.georeferenced = georeferenced
        self.shape = (len(self.paths), int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)
        self.ndim = 3
        self.scene = scene
        self.scene_id = scene_id

    def __getitem__(self, key) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        key = key + (slice(None),) * (3 - len(key))
        bands, rows, cols = (range(*k.indices(n)) for k, n in zip(key, self.shape, strict=True))
        if rows.step != 1 or cols.step != 1:
            raise _error(
                f"scene {self.scene}: strided reads are not supported", scene_id=self.scene_id
            )
        out = np.empty((len(bands), len(rows), len(cols)), dtype=self.dtype)
        if out.size == 0:
            return out
        window = Window(cols.start, rows.start, len(cols), len(rows))
        for i, b in enumerate(bands):
            out[i] = _read_window(
                self.paths[b],
                window,
                self.dtype,
                self.scene,
                not self.georeferenced,
                self.scene_id,
            )
        return out

    def __repr__(self) -> str:
        return f"RasterStack({self.scene!r}, {len(self.paths)} files, shape={self.shape})"

    def __dask_tokenize__(self):
        return ("updm.RasterStack", self.paths, self.shape, self.dtype.str)


def _lazy(stack: RasterStack, chunks: tuple[int, int], kind: str) -> da.Array:
    name = f"read-{kind}-" + tokenize(stack, chunks)
    return da.from_array(
        stack,
        chunks=(stack.shape[0], *chunks),
        name=name,
        lock=False,
        asarray=False,
        fancy=False,
        inline_array=True,
        meta=np.empty((0, 0, 0), dtype=stack.dtype),
    )


# --------------------------------------------------------------------------------------
# Header checks


@dataclass(frozen=True)
class _Header:
    path: str
    count: int
    shape: tuple[int, int]
    dtype: str
    crs: CRS | None
    transform: Affine
    nodata: float | None

    @property
    def georeferenced(self) -> bool:
        return self.crs is not None or not self.transform.is_identity


# Headers of local files already read, by path, modification time and size: a job reads
# each band file's header when it derives its grid, when it opens the scene and when it
# opens it again cut on the cube's chunks (about 1 ms of GDAL's per file each time). A file
# replaced since is read anew; remote files and archive members are always read. The CRS
# is kept as WKT and handed out as a new CRS object each time: one object is not shared
# between threads (tiles of a job are opened concurrently).
_HEADERS: OrderedDict[str, tuple[_Header, str | None]] = OrderedDict()
_HEADERS_LOCK = threading.Lock()
_HEADERS_KEPT = 4096


def _header(path: str, source: SceneSource, what: str) -> _Header:
    key = None
    if not path.startswith("/vsi"):
        # A FIFO would block GDAL's open for ever; a device or socket holds no raster.
        try:
            rootcheck.check_regular(path, f"{what} file")
        except SceneError as exc:
            raise _error(f"scene {source.id}: {exc}", scene_id=source.scene_id) from None
        try:
            key = _handle_key(path)
        except OSError:
            key = None  # GDAL's open below names the problem
        with _HEADERS_LOCK:
            known = _HEADERS.get(key) if key is not None else None
            if known is not None:
                _HEADERS.move_to_end(key)
        if known is not None:
            header, wkt = known
            return dataclasses.replace(header, crs=None if wkt is None else CRS.from_wkt(wkt))
    header = _read_header(path, source, what)
    if key is not None:
        wkt = None if header.crs is None else header.crs.to_wkt()
        with _HEADERS_LOCK:
            _HEADERS[key] = (dataclasses.replace(header, crs=None), wkt)
            while len(_HEADERS) > _HEADERS_KEPT:
                _HEADERS.popitem(last=False)
    return header


def _read_header(path: str, source: SceneSource, what: str) -> _Header:
    try:
        # Headers are read on the driver, one at a time: quiet opens are harmless here.
        with rasterio.Env(**loc.gdal_env(path)), _open(path, quiet=True) as src:
            return _Header(
                path=path,
                count=src.count,
                shape=(src.height, src.width),
                dtype=src.dtypes[0],
                crs=src.crs,
                transform=src.transform,
                nodata=src.nodata,
            )
    except (rasterio.errors.RasterioError, OSError) as exc:
        # No chained cause: GDAL's message, which it repeats, may quote a presigned URL.
        raise _error(
            f"scene {source.id}: cannot open {what} file {path}: {exc}", scene_id=source.scene_id
        ) from None


def _check_same_grid(ref: _Header, other: _Header, source: SceneSource, what: str) -> None:
    if other.count != 1:
        problem = f"has {other.count} bands; expected one band per file"
    elif other.shape != ref.shape:
        problem = (
            f"is {other.shape[0]}x{other.shape[1]} pixels but {ref.path} is "
            f"{ref.shape[0]}x{ref.shape[1]}"
        )
    elif other.georeferenced != ref.georeferenced:
        problem = (
            f"is {'' if other.georeferenced else 'not '}georeferenced but {ref.path} is "
            f"{'' if ref.georeferenced else 'not'}"
        )
    elif not other.transform.almost_equals(ref.transform, precision=1e-6):
        problem = (
            f"has the grid {tuple(other.transform)[:6]} but {ref.path} has "
            f"{tuple(ref.transform)[:6]}"
        )
    elif other.crs != ref.crs:
        problem = f"has CRS {other.crs} but {ref.path} has {ref.crs}"
    else:
        return
    raise _error(f"scene {source.id}: {what} file {other.path} {problem}", scene_id=source.scene_id)


def _metadata_grid(source: SceneSource, shape: tuple[int, int]) -> tuple[CRS, Affine]:
    md = source.metadata
    missing = [
        name
        for name, value in (
            ("UTM_ZONE (UTM/WGS84 projection)", md.crs_epsg),
            ("CORNER_UL/LR_PROJECTION_X/Y_PRODUCT", md.corners),
            ("GRID_CELL_SIZE_REFLECTIVE", md.grid_cell_size),
        )
        if value is None
    ]
    if missing:
        raise _error(
            f"scene {source.scene_id}: its band files carry no georeferencing and the "
            f"metadata {source.mtl_path} lacks {', '.join(missing)} to place them",
            scene_id=source.scene_id,
        )
    cell = float(md.grid_cell_size)
    ul_x, ul_y = md.corners["UL"]
    rows, cols = shape
    if md.shape is not None and tuple(md.shape) != tuple(shape):
        raise _error(
            f"scene {source.scene_id}: the band files are {rows}x{cols} pixels but the "
            f"metadata {source.mtl_path} gives REFLECTIVE_LINES/SAMPLES {md.shape}",
            scene_id=source.scene_id,
        )
    if "LR" in md.corners:
        lr_x, lr_y = md.corners["LR"]
        # Corner coordinates are pixel centres: (LR - UL) / cell + 1 pixels.
        expected = ((ul_y - lr_y) / cell + 1, (lr_x - ul_x) / cell + 1)
        if not np.allclose(expected, (rows, cols), atol=1e-6):
            raise _error(
                f"scene {source.scene_id}: the metadata corners {source.mtl_path} span "
                f"{expected[0]:g}x{expected[1]:g} pixels of {cell:g} m but the band files "
                f"are {rows}x{cols}",
                scene_id=source.scene_id,
            )
    transform = Affine(cell, 0.0, ul_x - cell / 2, 0.0, -cell, ul_y + cell / 2)
    return CRS.from_epsg(md.crs_epsg), transform


def _check_product_size(source: SceneSource, ref: _Header) -> None:
    """Refuse georeferenced band files that span the product's full width or height as
    the metadata places it, but not its number of lines and samples.

    Clips of a product (an area of interest cut from a scene, such as the test scenes of
    the R package *satellite*) lie inside the product and keep the full-scene metadata:
    their size differs from REFLECTIVE_LINES/SAMPLES by design. A file that has every
    column of the product but not every line (or every line but not every column) is no
    such clip: its lines or columns are missing or added (a file cut short, a file of
    another product). Files and metadata in different CRSs are not compared.
    """
    md = source.metadata
    corners = md.corners or {}
    if md.shape is None or md.grid_cell_size is None or not {"UL", "LR"} <= set(corners):
        return
    if md.crs_epsg is None or ref.crs is None or ref.crs.to_epsg() != md.crs_epsg:
        return
    cell = float(md.grid_cell_size)
    (ul_x, ul_y), (lr_x, lr_y) = corners["UL"], corners["LR"]
    # Metadata corners are pixel centres; edges are half a cell further out.
    product = (ul_x - cell / 2, lr_x + cell / 2, ul_y + cell / 2, lr_y - cell / 2)
    t = ref.transform
    rows, cols = ref.shape
    files = (t.c, t.c + cols * t.a, t.f, t.f + rows * t.e)
    same = [abs(a - b) <= cell / 4 for a, b in zip(files, product, strict=True)]
    spans = [name for name, edges in (("width", same[:2]), ("height", same[2:])) if all(edges)]
    lines, samples = md.shape
    if spans and (rows, cols) != (lines, samples):
        raise _error(
            f"scene {source.scene_id}: the band files (e.g. {ref.path}) are {rows}x{cols} "
            f"pixels (lines x samples) but the metadata {source.mtl_path} gives "
            f"REFLECTIVE_LINES/SAMPLES {lines}x{samples}; the files span the product's full "
            f"{' and '.join(spans)} as the metadata places it, so lines or samples are "
            "missing or added: the files do not match their metadata",
            scene_id=source.scene_id,
        )


def _check_dtype_fits(source: SceneSource, header: _Header, label: str) -> None:
    # An 8-bit file cannot hold a band calibrated up to 65535: the metadata belongs to
    # another sensor (or product) than the files.
    band = source.metadata.bands.get(label)
    dtype = np.dtype(header.dtype)
    if source.level != "L1" or band is None or band.quantize_cal_max is None:
        return
    if dtype.kind in "ui" and band.quantize_cal_max > np.iinfo(dtype).max and dtype.itemsize == 1:
        raise _error(
            f"scene {source.scene_id}: band {label} file {header.path} is {dtype} but the "
            f"metadata {source.mtl_path} calibrates the band up to DN "
            f"{band.quantize_cal_max:g} ({source.metadata.sensor}); metadata and files do "
            "not match",
            scene_id=source.scene_id,
        )


# --------------------------------------------------------------------------------------
# The labelled API


def resolve_scene(path_or_source: str | os.PathLike | SceneSource) -> SceneSource:
    """The :class:`SceneSource` behind a metadata path, scene folder or one-scene archive.

    Raises
    ------
    SceneError
        When the input does not exist, holds no usable scene (the problems are named), or
        holds several.
    """
    if isinstance(path_or_source, SceneSource):
        return path_or_source
    location = os.fspath(path_or_source)
    if location.startswith("/vsitar/"):
        # A member path as found by discovery: list the archive, pick that member's scene.
        return _scene_in_archive_member(location)
    discovery = discover_scenes(location)
    if not discovery.scenes:
        detail = "; ".join(message for _, message in discovery.problems) or "no *_MTL file found"
        raise _error(f"{location}: no usable Landsat scene: {detail}")
    if len(discovery.scenes) > 1:
        ids = ", ".join(s.id for s in discovery.scenes)
        raise _error(
            f"{location}: holds {len(discovery.scenes)} scenes ({ids}); open one at a time "
            "(pass its metadata file) or use discover_scenes"
        )
    return discovery.scenes[0]


def _scene_in_archive_member(location: str) -> SceneSource:
    body = location[len("/vsitar/") :]
    lowered = body.lower()
    for suffix in (".tar.gz/", ".tgz/", ".tar/"):
        at = lowered.find(suffix)
        if at >= 0:
            archive = body[: at + len(suffix) - 1]
            break
    else:
        raise _error(f"{location}: not a /vsitar/ path to a member of a .tar/.tar.gz archive")
    discovery = discover_scenes(archive)
    for scene in discovery.scenes + discovery.duplicates:
        if scene.mtl_path == location:
            return scene
    detail = "; ".join(message for _, message in discovery.problems)
    raise _error(f"{location}: no usable scene with this metadata member. {detail}".strip())


def _spatial_chunks(chunks) -> tuple[int, int]:
    if chunks is None:
        edge = config.spatial_chunks()
        return edge, edge
    if isinstance(chunks, Mapping):
        unknown = set(chunks) - {"y", "x", "band"}
        if unknown:
            raise _error(
                f"open_scene: chunks has unknown dimensions {sorted(unknown)}; expected 'y' "
                "and 'x' (all bands are always one chunk)"
            )
        default = config.spatial_chunks()
        values = (chunks.get("y", default), chunks.get("x", default))
    else:
        values = (chunks, chunks)
    out = []
    for value in values:
        if isinstance(value, tuple) and isinstance(chunks, Mapping) and value:
            # explicit block sizes (e.g. cut on a cube's chunk edges); summed below
            if all(
                not isinstance(v, bool) and isinstance(v, int | np.integer) and v >= 1
                for v in value
            ):
                out.append(tuple(int(v) for v in value))
                continue
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise _error(
                f"open_scene: chunks={chunks!r}; expected a positive int or {{'y': int, 'x': int}}"
                " (or, per dimension, a tuple of positive ints that add up to its size)"
            )
        out.append(int(value))
    return out[0], out[1]


def _none_to(value, empty):
    return empty if value is None else value


def open_scene(
    path_or_source: str | os.PathLike | SceneSource,
    chunks: int | Mapping[str, int] | None = None,
) -> xr.Dataset:
    """Open one Landsat scene lazily.

    Parameters
    ----------
    path_or_source
        A metadata file (``*_MTL.txt/.xml/.json``), a scene folder, a ``.tar``/``.tar.gz``
        archive holding one scene, or a :class:`SceneSource` from discovery.
    chunks
        Spatial chunk edge (int) or ``{"y": ny, "x": nx}``; default
        ``updm_dask.config.spatial_chunks()`` (dask config ``updm.chunks.spatial``). The
        band axis is always a single chunk.

    Returns
    -------
    xarray.Dataset
        ``dn`` (band, y, x) in the files' native dtype, band coordinate = the sensor's UPDM
        band labels in spectral order; for Level-2 products it holds the scaled surface
        reflectance integers. Optional ``qa`` (C1 BQA or C2 QA_PIXEL; ``attrs["qa_kind"]``)
        and ``radsat`` (C2 QA_RADSAT), (y, x), chunked like ``dn``. ``x``/``y`` are pixel
        centres; CRS and transform through ``ds.rio``. ``attrs``: scene_id, product_id
        (``""`` pre-collection), sensor, satellite, platform, acquired (ISO 8601),
        sun_elevation, sun_azimuth, earth_sun_distance (NaN when not given), level
        (``"L1"``/``"L2"``), wrs_path, wrs_row (-1 when not given), source (the metadata
        path), origin, nodata (the band files' declared nodata when all agree, else None),
        plus ``updm_metadata`` (the :class:`~updm_dask.metadata.SceneMetadata`) and
        ``updm_source`` (the :class:`SceneSource`). These two are Python objects for the
        pipeline: they do not survive writing the Dataset to a file; drop them first.

    Raises
    ------
    SceneError
        Naming the scene and the file: missing band file, a band file with more than one
        band, band files of different shapes / grids / CRSs / data types, metadata that
        does not fit the files. Pixel read errors surface at compute time, also as
        SceneError naming the file.
    """
    source = resolve_scene(path_or_source)
    md = source.metadata
    scene = source.id
    sensor = get_sensor(md.sensor, md.satellite)
    labels = sensor.band_labels
    if tuple(source.band_paths) != labels:
        raise _error(
            f"scene {scene}: band files are given for bands {tuple(source.band_paths)} but a "
            f"{sensor.name} scene has bands {labels}",
            scene_id=source.scene_id,
        )
    headers = [_header(source.band_paths[label], source, f"band {label}") for label in labels]
    ref = headers[0]
    for label, header in zip(labels, headers, strict=True):
        _check_same_grid(ref, header, source, f"band {label}")
        if header.dtype != ref.dtype:
            raise _error(
                f"scene {scene}: band {label} file {header.path} is {header.dtype} but "
                f"{ref.path} is {ref.dtype}",
                scene_id=source.scene_id,
            )
        _check_dtype_fits(source, header, label)
    qa_headers = {
        role: _header(path, source, f"{role} QA") for role, path in sorted(source.qa_paths.items())
    }
    for role, header in qa_headers.items():
        _check_same_grid(ref, header, source, f"{role} QA")
    if ref.georeferenced:
        if ref.crs is None:
            raise _error(
                f"scene {scene}: band file {ref.path} has a grid but no CRS",
                scene_id=source.scene_id,
            )
        crs, transform = ref.crs, ref.transform
        _check_product_size(source, ref)
    else:
        crs, transform = _metadata_grid(source, ref.shape)
    if transform.b != 0 or transform.d != 0:
        raise _error(
            f"scene {scene}: rotated grids are not supported ({ref.path})",
            scene_id=source.scene_id,
        )

    cy, cx = _spatial_chunks(chunks)
    rows, cols = ref.shape
    for dim, given, size in (("y", cy, rows), ("x", cx, cols)):
        if isinstance(given, tuple) and sum(given) != size:
            raise _error(
                f"open_scene: chunks[{dim!r}] add up to {sum(given)} pixels; scene {scene} has "
                f"{size} along {dim}",
                scene_id=source.scene_id,
            )
    dn = _lazy(
        RasterStack(
            [source.band_paths[b] for b in labels],
            ref.shape,
            ref.dtype,
            scene,
            ref.georeferenced,
            scene_id=source.scene_id,
        ),
        (cy, cx),
        "dn",
    )
    x = transform.c + (np.arange(cols) + 0.5) * transform.a
    y = transform.f + (np.arange(rows) + 0.5) * transform.e
    nodatavals = tuple(np.nan if h.nodata is None else float(h.nodata) for h in headers)
    distinct = {h.nodata for h in headers}
    dn_attrs = {
        "long_name": ("scaled surface reflectance" if source.level == "L2" else "digital numbers"),
        "nodatavals": nodatavals,
        "band_files": tuple(os.path.basename(source.band_paths[b]) for b in labels),
    }
    variables = {"dn": xr.Variable(("band", "y", "x"), dn, dn_attrs)}
    qa_kind = "bqa" if md.collection == "C1" or "BQA" in md.qa_files else "qa_pixel"
    for role, header in qa_headers.items():
        data = _lazy(
            RasterStack(
                [header.path],
                header.shape,
                header.dtype,
                scene,
                ref.georeferenced,
                scene_id=source.scene_id,
            ),
            (cy, cx),
            role,
        )[0]
        attrs = {"long_name": "pixel quality" if role == "qa" else "radiometric saturation"}
        if role == "qa":
            attrs["qa_kind"] = qa_kind
        variables[role] = xr.Variable(("y", "x"), data, attrs)
    ds = xr.Dataset(
        variables,
        coords={"band": ("band", list(labels)), "y": ("y", y), "x": ("x", x)},
    )
    # a new Dataset: written in place, the CRS's CF attributes computed once per CRS
    write_georeference(ds, crs, transform)
    ds.attrs.update(
        {
            "scene_id": source.scene_id,
            "product_id": _none_to(source.product_id, ""),
            "sensor": md.sensor,
            "satellite": md.satellite,
            "platform": md.platform,
            "acquired": md.acquired.isoformat(),
            "sun_elevation": md.sun_elevation,
            "sun_azimuth": _none_to(md.sun_azimuth, float("nan")),
            "earth_sun_distance": _none_to(md.earth_sun_distance, float("nan")),
            "level": source.level,
            "wrs_path": _none_to(md.wrs_path, -1),
            "wrs_row": _none_to(md.wrs_row, -1),
            "source": source.mtl_path,
            "origin": source.origin,
            "nodata": next(iter(distinct)) if len(distinct) == 1 else None,
            "updm_metadata": md,
            "updm_source": source,
        }
    )
    return ds
