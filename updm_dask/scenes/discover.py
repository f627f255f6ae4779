"""Finding Landsat scenes in folders, globs, tar archives and URLs.

A scene is found through its metadata file (``*_MTL.txt``, ``*_MTL.xml`` or
``*_MTL.json``): the metadata is parsed, and the files of the sensor's UPDM bands (and of
its QA bands) are looked up next to it by the names the metadata gives, ignoring case
(``..._B1.TIF`` in the metadata, ``..._B1.tif`` on disk). Level-2 products use their
surface-reflectance files (``..._SR_B4.TIF``).

Discovery never stops at a broken scene: what looks like a scene but cannot be used (a
band file missing, metadata unreadable, a hostile archive, band files without metadata) is
recorded in :attr:`Discovery.problems` and the search goes on. Only an input that does not
exist at all raises :class:`~updm_dask.errors.SceneError`.

What is read is confined to the inputs: a local file (metadata, band, QA, archive) must be a
regular file (a FIFO would block whoever opens it; devices and sockets hold no scene) and,
symbolic links followed, must lie under the input it was found in or under another input
or an explicitly allowed root (``allow_roots``). Both checks look at the path with
``os.stat`` only, so a refused file is never opened and no message quotes it. Messages
show URLs without their query string (presigned URLs carry credentials there).

Several products of one acquisition (one ``LANDSAT_SCENE_ID``) may be found, e.g. Level-1
and Level-2, or a product and a reprocessed one, or a stale copy. One is kept, by
:func:`product_preference`, whatever order the inputs were searched in.
"""

from __future__ import annotations

import datetime as dt
import os
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import SceneError, UpdmError
from ..frozen import FrozenMap
from ..messages import redact, shown
from ..metadata import MAX_METADATA_BYTES, SceneMetadata, read_mtl, read_mtl_text
from ..science.sensors import canonical_sensor_name, get_sensor
from . import _archives as archives
from . import _locations as loc
from . import _remote as remote
from . import _roots as rootcheck

__all__ = [
    "Discovery",
    "SceneSource",
    "discover_scenes",
    "preference_reason",
    "product_preference",
    "scene_source",
]

LEVELS = ("L1", "L2")


@dataclass(frozen=True)
class SceneSource:
    """Where one scene's files are, and what its metadata says.

    Holds strings and the parsed metadata only (no open files), so it pickles cheaply and
    travels to dask workers.

    Parameters
    ----------
    scene_id
        ``LANDSAT_SCENE_ID``: the acquisition's identity across collections and levels.
    product_id
        ``LANDSAT_PRODUCT_ID`` (``None`` for pre-collection products).
    metadata
        The parsed metadata file.
    mtl_path
        Where the metadata was read from: a local path, a URL, or a ``/vsitar/`` path for a
        member of an archive.
    band_paths
        UPDM band label -> GDAL-readable path, for exactly the sensor's
        :attr:`~updm_dask.science.sensors.Sensor.band_labels`, in spectral order.
    qa_paths
        ``"qa"`` (C1 BQA or C2 QA_PIXEL) and/or ``"radsat"`` (C2 QA_RADSAT) -> GDAL path, for
        those present.
    level
        ``"L1"`` (digital numbers) or ``"L2"`` (scaled surface reflectance).
    origin
        The input (folder, glob, archive, URL, STAC source) the scene was found in.
    """

    scene_id: str
    product_id: str | None
    metadata: SceneMetadata
    mtl_path: str
    band_paths: Mapping[str, str]
    qa_paths: Mapping[str, str]
    level: str
    origin: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "band_paths", FrozenMap(self.band_paths))
        object.__setattr__(self, "qa_paths", FrozenMap(self.qa_paths))
        if self.level not in LEVELS:
            raise SceneError(
                f"{self.scene_id}: level must be 'L1' or 'L2', got {self.level!r}",
                scene_id=self.scene_id,
            )

    @property
    def sensor(self) -> str:
        """Canonical sensor name (``MSS``, ``TM``, ``ETM+``, ``OLI``, ``OLI-2``)."""
        return self.metadata.sensor

    @property
    def acquired(self) -> dt.datetime:
        """Scene-centre time (UTC)."""
        return self.metadata.acquired

    @property
    def id(self) -> str:
        """Product id when there is one, else the scene id."""
        return self.product_id or self.scene_id

    def __dask_tokenize__(self):
        return (
            "updm.SceneSource",
            self.scene_id,
            self.product_id,
            self.mtl_path,
            tuple(self.band_paths.items()),
            tuple(sorted(self.qa_paths.items())),
            self.level,
        )


@dataclass
class Discovery:
    """What :func:`discover_scenes` (or :func:`~updm_dask.scenes.discover_stac`) found.

    Parameters
    ----------
    scenes
        Usable scenes, sorted by acquisition time, one per scene id.
    problems
        ``(where, message)`` for everything that looked like a scene but could not be used.
    duplicates
        Scenes dropped because another product of their scene id was kept (the same
        acquisition found twice, e.g. as Level-1 and Level-2 products, or as an older and
        a newer processing); :func:`product_preference` says which one is kept.
    """

    scenes: list[SceneSource] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[SceneSource] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.scenes)


# --------------------------------------------------------------------------------------
# Building a scene record from metadata + a way to find files next to it.

_BAND_TOKEN_RE = re.compile(r"_B0*(\d+)(?:_VCID_\d)?\.[A-Za-z]+$", re.IGNORECASE)


def _qa_role(key: str) -> str | None:
    upper = key.upper()
    if "RADSAT" in upper or "RADIOMETRIC_SATURATION" in upper:
        return "radsat"
    if upper in ("BQA", "QA_PIXEL", "QUALITY", "QUALITY_L1_PIXEL") or upper.endswith("PIXEL"):
        return "qa"
    return None


def scene_source(
    metadata: SceneMetadata,
    *,
    mtl_path: str,
    resolve: Callable[[str], str | None],
    origin: str,
    where: str,
) -> SceneSource:
    """Build a :class:`SceneSource` from parsed metadata.

    Parameters
    ----------
    metadata
        The scene's metadata.
    mtl_path
        Where the metadata was read from.
    resolve
        File name from the metadata -> GDAL path of the file, or ``None`` when absent.
    origin
        The input the scene was found in.
    where
        Folder (or archive folder) the files are looked for in, for messages.

    Raises
    ------
    SceneError
        When a UPDM band is not described, marked missing, or its file is not there.
    """
    sensor = get_sensor(metadata.sensor, metadata.satellite)
    level = "L2" if metadata.is_level2 else "L1"
    labels = sensor.band_labels
    band_paths: dict[str, str] = {}
    for label in labels:
        if label not in metadata.bands:
            raise SceneError(
                f"{mtl_path}: the metadata describes no band {label}; a {sensor.name} scene "
                f"needs bands {', '.join(labels)}",
                scene_id=metadata.scene_id,
            )
        band = metadata.bands[label]
        if not band.present:
            raise SceneError(
                f"{mtl_path}: band {label} is marked missing in the metadata; UPDM needs every "
                f"{sensor.name} band ({', '.join(labels)})",
                scene_id=metadata.scene_id,
            )
        name = (band.sr_file_name or band.file_name) if level == "L2" else band.file_name
        if not name:
            raise SceneError(
                f"{mtl_path}: no file name (FILE_NAME_BAND_{label}) for band {label}",
                scene_id=metadata.scene_id,
            )
        if not _plain_name(name):
            # Metadata names the files beside it; a path could lead a remote read anywhere.
            raise SceneError(
                f"{mtl_path}: the file name given for band {label} is not a plain file name "
                "(it holds a folder separator or is '.' or '..'); expected a file beside "
                "the metadata",
                scene_id=metadata.scene_id,
            )
        token = _BAND_TOKEN_RE.search(name)
        if token and token.group(1) != label:
            raise SceneError(
                f"{mtl_path}: the file listed for band {label} is {name!r}, which names band "
                f"{token.group(1)}; the metadata does not match the {sensor.name} band layout",
                scene_id=metadata.scene_id,
            )
        path = resolve(name)
        if path is None:
            raise SceneError(
                f"{mtl_path}: band {label} file {name!r} not found in {where}",
                scene_id=metadata.scene_id,
            )
        band_paths[label] = path
    qa_paths: dict[str, str] = {}
    for key, name in metadata.qa_files.items():
        role = _qa_role(key)
        if role is None or role in qa_paths or not name or not _plain_name(name):
            continue
        path = resolve(name)
        if path is not None:
            qa_paths[role] = path
    return SceneSource(
        scene_id=metadata.scene_id,
        product_id=metadata.product_id,
        metadata=metadata,
        mtl_path=mtl_path,
        band_paths=band_paths,
        qa_paths=qa_paths,
        level=level,
        origin=origin,
    )


def _plain_name(name: str) -> bool:
    return name not in (".", "..") and "/" not in name and "\\" not in name


# --------------------------------------------------------------------------------------
# Walking inputs


class _Collector:
    def __init__(self, roots: Sequence[str] = ()) -> None:
        self.scenes: list[SceneSource] = []
        self.problems: list[tuple[str, str]] = []
        # Real paths of the folders local files must lie in (symbolic links followed).
        self.roots: list[str] = list(roots)

    def attempt(self, where: str, build: Callable[[], SceneSource]) -> None:
        try:
            self.scenes.append(build())
        except (UpdmError, OSError) as exc:
            self.problem(where, _message(exc))

    def problem(self, where: str, message: str) -> None:
        # Problems end up in reports and logs: never with a URL's query (credentials).
        self.problems.append((redact(where), redact(message)))


def _message(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, UpdmError) else f"{type(exc).__name__}: {exc}"


def _read_metadata(fs, path: str, roots: Sequence[str]) -> SceneMetadata:
    if loc.is_local(fs):
        rootcheck.check_local_file(path, "metadata file", roots)
        return read_mtl(path)
    return read_mtl_text(loc.read_bytes(fs, path, MAX_METADATA_BYTES), loc.display(fs, path))


def _folder_scenes(
    fs,
    folder: str,
    names: Sequence[str] | None,
    mtls: Sequence[str],
    origin: str,
    out: _Collector,
    *,
    report_orphans: bool = True,
    query: str = "",
) -> None:
    lookup = loc.listing_lookup(names) if names is not None else None
    local = loc.is_local(fs)

    def resolve(name: str) -> str | None:
        if lookup is None:
            # A store that cannot list (plain HTTP): trust the metadata's names. A query
            # string (a shared-access token) is what grants the metadata file's neighbours.
            return loc.gdal_path(fs, posixpath.join(folder, name) + query)
        real = lookup.get(name.lower())
        if real is None:
            return None
        path = posixpath.join(folder, real)
        if local:
            rootcheck.check_local_file(path, f"file {real}", out.roots)
        return loc.gdal_path(fs, path)

    where = loc.display(fs, folder)
    for mtl in mtls:
        path = posixpath.join(folder, mtl) + query
        shown = loc.display(fs, path)
        out.attempt(
            shown,
            lambda path=path, shown=shown: scene_source(
                _read_metadata(fs, path, out.roots),
                mtl_path=shown,
                resolve=resolve,
                origin=origin,
                where=where,
            ),
        )
    if names is not None and report_orphans:
        for ident in loc.orphan_band_ids(names, mtls):
            out.problem(
                posixpath.join(where, ident),
                f"{where}: band files of {ident} but no {ident}_MTL.txt/.xml/.json; "
                "a scene cannot be calibrated without its metadata",
            )


def _archive_scenes(fs, path: str, origin: str, out, *, explicit: bool, query: str = "") -> None:
    shown = loc.display(fs, path + query)
    known = len(out.problems)
    try:
        if loc.is_local(fs):
            rootcheck.check_local_file(path, "archive", out.roots)
        listing = archives.read_archive(fs, path + query, text_limit=MAX_METADATA_BYTES)
    except SceneError as exc:
        out.problem(shown, str(exc))
        return
    found_any = False
    for folder, names in sorted(listing.folders().items()):
        mtls = loc.choose_mtls(names)
        found_any = found_any or bool(mtls)
        lookup = loc.listing_lookup(names)

        def resolve(name: str, folder=folder, lookup=lookup) -> str | None:
            real = lookup.get(name.lower())
            if real is None:
                return None
            return listing.member_path(posixpath.normpath(posixpath.join(folder, real)))

        where = f"{shown}/{folder}" if folder not in ("", ".") else shown
        for mtl in mtls:
            member = posixpath.normpath(posixpath.join(folder, mtl))
            mtl_path = listing.member_path(member)
            out.attempt(
                mtl_path,
                lambda member=member, mtl_path=mtl_path, resolve=resolve, where=where: scene_source(
                    read_mtl_text(listing.texts[member], mtl_path),
                    mtl_path=mtl_path,
                    resolve=resolve,
                    origin=origin,
                    where=where,
                ),
            )
        for ident in loc.orphan_band_ids(names, mtls):
            out.problem(
                f"{where}/{ident}",
                f"{where}: band files of {ident} but no {ident}_MTL.txt/.xml/.json",
            )
    if not found_any and explicit and len(out.problems) == known:
        out.problem(shown, f"{shown}: the archive holds no Landsat *_MTL metadata file")


def _tree_scenes(fs, root: str, origin: str, out) -> None:
    try:
        files = fs.find(root)
    except OSError as exc:
        out.problem(loc.display(fs, root), f"cannot list: {exc}")
        return
    by_folder: dict[str, list[str]] = {}
    for path in files:
        by_folder.setdefault(posixpath.dirname(path), []).append(posixpath.basename(path))
    for folder, names in sorted(by_folder.items()):
        _folder_scenes(fs, folder, names, loc.choose_mtls(names), origin, out)
        for name in sorted(names):
            if loc.ARCHIVE_RE.search(name):
                _archive_scenes(fs, posixpath.join(folder, name), origin, out, explicit=False)


def _path_scenes(fs, path: str, origin: str, out, *, explicit: bool, query: str = "") -> None:
    # A URL with a query string (a presigned URL) names one object, never a folder.
    if not query and fs.isdir(path):
        _tree_scenes(fs, path, origin, out)
    elif loc.ARCHIVE_RE.search(path):
        _archive_scenes(fs, path, origin, out, explicit=explicit, query=query)
    elif loc.MTL_RE.search(path):
        folder, name = posixpath.split(path)
        names = None
        if not query:
            try:
                names = [posixpath.basename(p) for p in fs.ls(folder, detail=False)]
            except (OSError, NotImplementedError, ValueError):
                names = None
        # Only the named scene is wanted: its neighbours' files are none of our business.
        _folder_scenes(fs, folder, names, [name], origin, out, report_orphans=False, query=query)
    elif explicit:
        shown = loc.display(fs, path + query)
        out.problem(
            shown,
            f"{shown}: not a Landsat metadata file (*_MTL.txt/.xml/.json), a .tar/.tar.gz "
            "archive or a folder",
        )


def _input_scenes(location: str, out: _Collector) -> None:
    fs, path = loc.open_location(location)
    # The query of a presigned URL travels with every file read next to it, but file names
    # are matched without it.
    path, query = (path, "") if loc.is_local(fs) else loc.split_query(path)
    if loc.has_glob(location):
        matches = sorted(fs.glob(path))
        if not matches:
            raise SceneError(f"{shown(location)}: the pattern matches no file or folder")
        for match in matches:
            _path_scenes(fs, match, location, out, explicit=False)
        return
    try:
        exists = loc.exists(fs, path + query)
    except remote.RemoteReadError as exc:  # a server that does not answer fails this input only
        out.problems.append((redact(location), redact(str(exc))))
        return
    if not exists:
        raise SceneError(f"{shown(location)}: no such file, folder or URL")
    _path_scenes(fs, path, location, out, explicit=True, query=query)


# --------------------------------------------------------------------------------------
# Several products of one scene id

_COLLECTION_RANK = {"C2": 3, "C1": 2, "pre-collection": 1}
_TIER_RANK = {"T1": 3, "T2": 2, "RT": 1}
# Where the time the product was made is written, most specific record first.
_GENERATED_KEYS = (
    ("DATE_PRODUCT_GENERATED", "LEVEL2_PROCESSING_RECORD"),
    ("DATE_PRODUCT_GENERATED", "LEVEL1_PROCESSING_RECORD"),
    ("DATE_PRODUCT_GENERATED", None),
    ("FILE_DATE", None),
)


def _id_field(product_id: str | None, index: int) -> str:
    # LXSS_LLLL_PPPRRR_YYYYMMDD_yyyymmdd_CC_TX: acquired, processed, collection, tier.
    parts = (product_id or "").split("_")
    return parts[index] if len(parts) == 7 else ""


def _generated(md: SceneMetadata) -> str:
    for key, group in _GENERATED_KEYS:
        try:
            value = md.get(key, group=group, default=None)
        except UpdmError:  # in several records with different values: not this key
            continue
        if value is None:
            continue
        try:
            moment = dt.datetime.fromisoformat(str(value).strip())
        except ValueError:
            continue
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return ""


def _processed(md: SceneMetadata) -> str:
    date = _id_field(md.product_id, 4)
    if len(date) == 8 and date.isdigit():
        return f"{date[:4]}-{date[4:6]}-{date[6:]}"
    return _generated(md)[:10]


def _tier(md: SceneMetadata) -> str:
    try:
        tier = md.get("COLLECTION_CATEGORY", default=None)
    except UpdmError:
        tier = None
    return str(tier or _id_field(md.product_id, 6)).upper()


def product_preference(scene: SceneSource) -> tuple:
    """How much a product of a scene id is preferred to others of the same id (higher wins).

    The rule, key by key (the first that differs decides):

    1. a Level-1 product over a Level-2 one: UPDM calibrates digital numbers itself
       (radiance, reflectance, Rayleigh correction) and takes surface reflectance only
       when no Level-1 product of the acquisition is there;
    2. the later processing: the processing date of the product id (``..._YYYYMMDD_CC_TX``)
       or, without one, of the metadata file, then the time the metadata says the product
       was generated (``DATE_PRODUCT_GENERATED``, ``FILE_DATE``): reprocessing fixes
       calibration and geometry, and a stale copy is older;
    3. the later collection (Collection 2 over 1 over pre-collection);
    4. the better tier: T1 over T2 over RT (real-time, preliminary).

    Products equal on all four are the same product: the one whose metadata path sorts
    first is kept, so the choice never depends on the order inputs are searched in.

    Returns
    -------
    tuple
        ``(is_level1, processed, generated, collection, tier)``, comparable.
    """
    md = scene.metadata
    return (
        scene.level == "L1",
        _processed(md),
        _generated(md),
        _COLLECTION_RANK.get(md.collection or "", 0),
        _TIER_RANK.get(_tier(md), 0),
    )


def preference_reason(kept: SceneSource, dropped: SceneSource) -> str:
    """Why :func:`product_preference` keeps ``kept`` rather than ``dropped``, in words."""
    a, b = product_preference(kept), product_preference(dropped)
    if a[0] != b[0]:
        return "Level-1 product preferred to Level-2 (UPDM calibrates digital numbers itself)"
    if a[1] != b[1]:
        return f"processed {a[1] or '?'}, later than {b[1] or 'an unknown date'}"
    if a[2] != b[2]:
        return f"product generated {a[2] or '?'}, later than {b[2] or 'an unknown time'}"
    if a[3] != b[3]:
        return f"collection {kept.metadata.collection} preferred to {dropped.metadata.collection}"
    if a[4] != b[4]:
        return f"tier {_tier(kept.metadata)} preferred to {_tier(dropped.metadata) or 'none'}"
    if kept.mtl_path == dropped.mtl_path:
        return "the same file, found through two inputs"
    return "the same product twice: the copy whose metadata path sorts first is kept"


# --------------------------------------------------------------------------------------
# Filters


def _as_utc(value, argument: str, *, end: bool) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = (
                dt.date.fromisoformat(value)
                if len(value.strip()) == 10
                else dt.datetime.fromisoformat(value)
            )
        except ValueError:
            raise SceneError(
                f"{argument}={value!r}: expected an ISO-8601 date or date-time"
            ) from None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        # A date bound covers its whole day.
        moment = dt.time.max if end else dt.time.min
        return dt.datetime.combine(value, moment, tzinfo=dt.UTC)
    raise SceneError(f"{argument}={value!r}: expected a date, datetime or ISO-8601 string")


def select_scenes(
    scenes: Iterable[SceneSource],
    problems: list[tuple[str, str]],
    *,
    sensors=None,
    start=None,
    end=None,
) -> Discovery:
    """Filter by sensor and time, keep one product per scene id, sort by time.

    Of several products of one scene id, the one :func:`product_preference` ranks highest
    is kept (whatever order they come in); the others are the ``duplicates``, in the order
    they came.
    """
    wanted = None
    if sensors is not None:
        if isinstance(sensors, str):
            sensors = [sensors]
        wanted = {canonical_sensor_name(s) for s in sensors}
    t0 = _as_utc(start, "start", end=False)
    t1 = _as_utc(end, "end", end=True)
    by_id: dict[str, list[SceneSource]] = {}
    order: list[SceneSource] = []
    for scene in scenes:
        if wanted is not None and scene.sensor not in wanted:
            continue
        if t0 is not None and scene.acquired < t0:
            continue
        if t1 is not None and scene.acquired > t1:
            continue
        by_id.setdefault(scene.scene_id, []).append(scene)
        order.append(scene)
    kept: dict[str, SceneSource] = {}
    for scene_id, candidates in by_id.items():
        # Sorted by path first: among equals, max() keeps the first, i.e. the first path.
        by_path = sorted(candidates, key=lambda s: s.mtl_path)
        kept[scene_id] = max(by_path, key=product_preference)
    duplicates = [s for s in order if s is not kept[s.scene_id]]
    ordered = sorted(kept.values(), key=lambda s: (s.acquired, s.scene_id))
    return Discovery(scenes=ordered, problems=list(problems), duplicates=duplicates)


def discover_scenes(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    sensors: str | Sequence[str] | None = None,
    start: dt.date | dt.datetime | str | None = None,
    end: dt.date | dt.datetime | str | None = None,
    allow_roots: Sequence[str | os.PathLike] = (),
) -> Discovery:
    """Find every Landsat scene in folders, globs, archives and URLs.

    Parameters
    ----------
    inputs
        One or more of: a folder (searched recursively, archives inside included), a glob
        (``data/**/L*_MTL.txt``), a metadata file, a ``.tar``/``.tar.gz``/``.tgz`` archive
        (one or several scenes, read without unpacking), or a URL fsspec can read
        (``s3://``, ``gs://``, ``https://``, ``file://``) naming any of these. Band files
        are handed on as GDAL paths (``/vsis3/``, ``/vsicurl/``, ``/vsitar/``).
    sensors
        Keep only these sensors (``"TM"``, ``"ETM+"``, MTL ids such as ``"OLI_TIRS"`` ...).
    start, end
        Keep scenes acquired in ``[start, end]`` (UTC; a date covers its whole day).
    allow_roots
        Local folders that files found in the inputs may also lie in. Every local file
        read (metadata, band, QA, archive) must, symbolic links followed, lie under one of
        the inputs (a folder, the folder of a metadata file, an archive, the folder a glob
        starts in) or under one of these; others are refused without being opened. Local
        files must also be regular files (FIFOs, sockets and devices are refused).

    Returns
    -------
    Discovery
        ``scenes`` sorted by acquisition time (one per scene id, chosen by
        :func:`product_preference`), ``problems`` as ``(where, message)`` (URLs without
        their query strings), and the dropped ``duplicates``.

    Raises
    ------
    SceneError
        Only for an input that does not exist (or a glob that matches nothing), or an
        unreadable ``start``/``end``.
    SensorError
        For an unknown sensor name in ``sensors``.
    """
    if isinstance(inputs, str | os.PathLike):
        inputs = [inputs]
    inputs = [os.fspath(item) for item in inputs]
    roots = [root for item in inputs for root in rootcheck.input_roots(item)]
    roots += [os.path.realpath(os.fspath(root)) for root in allow_roots]
    collector = _Collector(roots)
    for item in inputs:
        _input_scenes(os.fspath(item), collector)
    return select_scenes(
        collector.scenes, collector.problems, sensors=sensors, start=start, end=end
    )
