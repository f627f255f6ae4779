"""Finding scenes through STAC: Item / ItemCollection files and STAC API searches.

Landsat archives in the cloud are published as STAC Items (USGS LandsatLook, Microsoft
Planetary Computer, stactools-landsat): one Item per product, one asset per file. The
assets used here:

- the metadata file, ``MTL.txt`` / ``MTL.xml`` / ``MTL.json`` (keys matched ignoring case;
  else any asset with role ``metadata`` whose href ends in ``_MTL.txt/.xml/.json``). It is
  always read: calibration needs it, and it decides sensor, level and band layout;
- the UPDM bands, by the Collection-2 asset keys: ``coastal``, ``blue``, ``green``, ``red``,
  ``nir08``, ``swir16``, ``swir22`` (MSS Level-1: ``green``, ``red``, ``nir08``, ``nir09``),
  else by the band name (``B4``, ``SR_B4``, ``TM-SR_B4``) or common name given by the
  asset's STAC 1.1 ``bands`` (``name``, ``eo:common_name``) or STAC 1.0 ``eo:bands``
  (``name``, ``common_name``);
- ``qa_pixel`` (or ``qa``/``bqa``) and ``qa_radsat``.

Hrefs become GDAL paths (``/vsis3/``, ``/vsicurl/``, plain local paths); relative hrefs are
resolved against the Item's (or the JSON file's) location; in a catalogue read from a web
server or an object store, ``../..`` and ``/abs`` stay on that server or in that bucket.

A catalogue is data, and its hrefs may point anywhere. Given ``roots`` (a job always gives
them), every href to a LOCAL file (a path, ``file://``, a relative href of a local
catalogue) must, symbolic links followed, lie under one of them or under the catalogue
file's own folder: ``file:///etc/passwd`` or ``../../etc/passwd`` is refused without being
read. Remote hrefs (``https://``, ``s3://`` ...) are not confined: catalogues point at object
stores by design, and reading them exposes nothing of the machine running the job. Local
files must be regular files in any case (a FIFO would block the reader for ever).

Signed URLs and requester-pays buckets: ``sign`` (a callable, or ``[inputs] sign =
"module:function"`` in a job spec) is called with every remote href of an Item before it
is read and returns the href to read instead; see :func:`discover_stac`. Requests to
requester-pays S3 buckets carry ``x-amz-request-payer: requester`` when dask config
``updm.io.requester-pays`` is true or the environment has ``AWS_REQUEST_PAYER=requester``
(see :func:`~updm_dask.scenes._locations.gdal_env`).
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import posixpath
import re
import urllib.parse
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pystac

from .. import config
from ..errors import SceneError, UpdmError
from ..messages import redact, shown
from ..metadata import MAX_METADATA_BYTES, SceneMetadata, read_mtl, read_mtl_text
from ..science.sensors import get_sensor
from . import _locations as loc
from . import _remote as remote
from . import _roots as rootcheck
from .discover import Discovery, SceneSource, scene_source, select_scenes

__all__ = ["STAC_BAND_KEYS", "discover_stac", "load_signer"]

#: UPDM spectral role (``sensors.BandSpec.name``) -> Landsat Collection-2 STAC asset key.
STAC_BAND_KEYS = {
    "coastal": "coastal",
    "blue": "blue",
    "green": "green",
    "red": "red",
    "nir": "nir08",
    "nir2": "nir09",
    "swir1": "swir16",
    "swir2": "swir22",
}
# Older catalogues use plain "nir"/"swir1"/"swir2" common names.
_COMMON_NAME_ALIASES = {
    "nir08": ("nir08", "nir"),
    "nir09": ("nir09",),
    "swir16": ("swir16", "swir1"),
    "swir22": ("swir22", "swir2"),
}
_MTL_KEYS = ("mtl.txt", "mtl.xml", "mtl.json")
_QA_KEYS = {"qa": ("qa_pixel", "qa", "bqa"), "radsat": ("qa_radsat", "radsat")}
# "B0*(\d+)" let the zeros go to either part, which took minutes on a name of 100 000 zeros.
_EO_NAME_RE = re.compile(r"(?:^|[_-])B0*([1-9]\d*|0)$", re.IGNORECASE)
_STAC_TYPES = ("Catalog", "Collection", "Feature", "FeatureCollection")


def _absolute(href: str, base: str | None) -> str:
    if loc.is_url(href) or base is None:
        return href
    if not loc.is_url(base):
        if os.path.isabs(href):
            return href
        return os.path.normpath(os.path.join(os.path.dirname(base), href))
    scheme, rest = base.split("://", 1)
    if scheme.lower() in ("http", "https"):
        # URL rules: "/x" and "../../x" stay on the catalogue's server.
        return urllib.parse.urljoin(base, href)
    if scheme.lower() == "file":
        if os.path.isabs(href):
            return href
        return f"{scheme}://{posixpath.normpath(posixpath.join(posixpath.dirname(rest), href))}"
    # An object store (s3://bucket/...): "/x" and "../../x" stay in the bucket.
    netloc, _, path = rest.partition("/")
    joined = href if href.startswith("/") else posixpath.join("/" + posixpath.dirname(path), href)
    return f"{scheme}://{netloc}{posixpath.normpath(joined)}"


def _local_path(href: str) -> str | None:
    """The local path an (absolute) href names, or None for a remote one."""
    if not loc.is_url(href):
        return href
    if href.lower().startswith("file://"):
        return loc.url_to_gdal(href)
    return None


def _check_local(href: str, what: str, roots: Sequence[str] | None) -> None:
    """Refuse a local href outside ``roots`` or to a special file; remote ones pass."""
    path = _local_path(href)
    if path is None:
        return
    if roots is not None and not rootcheck.within_roots(os.path.realpath(path), roots):
        rootcheck.check_local_file(path, what, roots)  # raises, naming the roots
    if os.path.lexists(path):
        # Missing files are left to the callers' own "not found" messages.
        rootcheck.check_regular(path, what)


def _assets(item: pystac.Item) -> dict[str, pystac.Asset]:
    return {key.lower(): asset for key, asset in item.assets.items()}


def _mtl_asset(item: pystac.Item) -> pystac.Asset | None:
    assets = _assets(item)
    for key in _MTL_KEYS:
        if key in assets:
            return assets[key]
    for asset in item.assets.values():
        if "metadata" in (asset.roles or []) and loc.MTL_RE.search(asset.href):
            return asset
    return None


def _eo_bands(asset: pystac.Asset) -> list[Mapping[str, Any]]:
    """The asset's bands as ``{"name", "common_name"}``: STAC 1.1 ``bands`` then ``eo:bands``.

    STAC 1.1 moved ``eo:bands`` into the common ``bands`` array, whose common name is the
    field ``eo:common_name``; catalogues of either version (or both) are read alike.
    """
    found: list[Mapping[str, Any]] = []
    for field, common in (("bands", "eo:common_name"), ("eo:bands", "common_name")):
        bands = asset.extra_fields.get(field)
        if not isinstance(bands, list):
            continue
        for band in bands:
            if isinstance(band, Mapping):
                found.append({"name": band.get("name"), "common_name": band.get(common)})
    return found


def _band_asset(item: pystac.Item, label: str, role: str) -> pystac.Asset | None:
    assets = _assets(item)
    key = STAC_BAND_KEYS[role]
    if key in assets:
        return assets[key]
    for asset in item.assets.values():
        names = [str(b.get("name") or "") for b in _eo_bands(asset)]
        if any((m := _EO_NAME_RE.search(n)) and m.group(1) == label for n in names):
            return asset
    aliases = _COMMON_NAME_ALIASES.get(key, (key,))
    for asset in item.assets.values():
        if any(b.get("common_name") in aliases for b in _eo_bands(asset)):
            return asset
    return None


def _read_metadata(href: str) -> SceneMetadata:
    if not loc.is_url(href):
        return read_mtl(href)
    fs, path = loc.open_location(href)
    if loc.is_local(fs):
        return read_mtl(path)
    return read_mtl_text(loc.read_bytes(fs, path, MAX_METADATA_BYTES), href)


def _exists(gdal: str) -> bool | None:
    # Only local files are checked here; remote ones fail, naming the file, when opened.
    if gdal.startswith("/vsi"):
        return None
    return os.path.isfile(gdal)


Signer = Callable[[str], str]


def load_signer(name: str) -> Signer:
    """The signing hook named ``"module:function"`` (``[inputs] sign`` of a job spec).

    Parameters
    ----------
    name
        ``"package.module:function"``; the module must be importable (installed, or on
        ``PYTHONPATH``). ``function`` may be a dotted attribute path (``"mod:Signer.sign"``).

    Returns
    -------
    callable
        ``function`` itself: see ``sign`` of :func:`discover_stac` for what it receives.

    Raises
    ------
    SceneError
        ``name`` is not ``"module:function"``, the module cannot be imported, or it has no
        such callable; the message names the module and function.
    """
    module_name, sep, attribute = name.partition(":")
    if not sep or not module_name or not attribute:
        raise SceneError(f'expected "module:function", got {name!r}')
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or any error the module raises as it loads
        raise SceneError(
            f"cannot import the signing module {module_name!r}: {type(exc).__name__}: {exc}"
        ) from None
    for part in attribute.split("."):
        target = getattr(target, part, None)
        if target is None:
            break
    if not callable(target):
        raise SceneError(f"module {module_name!r} has no function {attribute!r}")
    return target


def _signed(href: str, sign: Signer | None, where: str) -> str:
    """``href`` passed through ``sign`` when it is remote; local ones are never signed."""
    if sign is None or _local_path(href) is not None:
        return href
    try:
        signed = sign(href)
    except UpdmError:
        raise
    except Exception as exc:  # the hook is the user's code: say whose error it is
        raise SceneError(
            shown(f"{where}: the signing hook failed on {href}: {type(exc).__name__}: {exc}")
        ) from None
    if not isinstance(signed, str) or not loc.is_url(signed):
        raise SceneError(
            shown(
                f"{where}: the signing hook returned {type(signed).__name__} for {href}; "
                "expected the URL to read (a str with a scheme, e.g. https://...)"
            )
        )
    return signed


def _item_source(
    item: pystac.Item,
    origin: str,
    base: str | None,
    roots: Sequence[str] | None = None,
    sign: Signer | None = None,
) -> SceneSource:
    where = f"STAC item {item.id}"
    base = item.get_self_href() or base
    mtl = _mtl_asset(item)
    if mtl is None:
        raise SceneError(
            f"{where}: no metadata asset (MTL.txt / MTL.xml / MTL.json); the scene cannot be "
            "calibrated without it"
        )
    mtl_href = _absolute(mtl.href, base)
    _check_local(mtl_href, f"metadata asset of {where}", roots)
    mtl_href = _signed(mtl_href, sign, where)
    metadata = _read_metadata(mtl_href)
    sensor = get_sensor(metadata.sensor, metadata.satellite)
    level2 = metadata.is_level2
    # Bands are taken from their assets; the metadata's file names only key them, so
    # catalogues whose hrefs are renamed or signed URLs work too.
    by_name: dict[str, str] = {}
    for spec in sensor.bands:
        asset = _band_asset(item, spec.label, spec.name)
        if asset is None:
            raise SceneError(
                f"{where}: no asset for {sensor.name} band {spec.label} ({spec.name}); "
                f"expected the key {STAC_BAND_KEYS[spec.name]!r} or eo:bands naming "
                f"B{spec.label}",
                scene_id=metadata.scene_id,
            )
        band = metadata.bands.get(spec.label)
        if band is None:
            continue  # scene_source names the missing band
        name = (band.sr_file_name or band.file_name) if level2 else band.file_name
        if name:
            href = _absolute(asset.href, base)
            _check_local(href, f"band {spec.label} asset of {where}", roots)
            by_name[name.lower()] = loc.url_to_gdal(_signed(href, sign, where))

    def resolve(name: str) -> str | None:
        path = by_name.get(name.lower())
        if path is not None and _exists(path) is False:
            return None
        return path

    source = scene_source(
        metadata,
        mtl_path=mtl_href,
        resolve=resolve,
        origin=origin,
        where=f"{where}'s assets",
    )
    assets = _assets(item)
    qa_paths: dict[str, str] = {}
    for role, keys in _QA_KEYS.items():
        for key in keys:
            if key in assets:
                href = _absolute(assets[key].href, base)
                _check_local(href, f"{key} asset of {where}", roots)
                path = loc.url_to_gdal(_signed(href, sign, where))
                if _exists(path) is not False:
                    qa_paths[role] = path
                break
    source = SceneSource(
        scene_id=source.scene_id,
        product_id=source.product_id,
        metadata=source.metadata,
        mtl_path=source.mtl_path,
        band_paths=source.band_paths,
        qa_paths=qa_paths,
        level=source.level,
        origin=origin,
    )
    return source


def _stac_api_io():
    """pystac-client's HTTP client with the package's timeouts and retries (``updm.io.*``).

    requests waits for ever without a timeout; urllib3 retries timeouts, lost connections
    and 408/429/5xx answers with a doubling delay (POST searches too: they only read).
    """
    from pystac_client.stac_api_io import StacApiIO
    from urllib3 import Retry

    io = remote.RemoteIO.current()
    retry = Retry(
        total=io.retries,
        backoff_factor=io.retry_delay,
        status_forcelist=sorted(remote.RETRY_STATUS),
        allowed_methods=None,
        raise_on_status=False,
    )
    return StacApiIO(timeout=(io.connect_timeout, io.timeout), max_retries=retry)


def _load_items(source, search: Mapping[str, Any] | None) -> tuple[list, str, str | None]:
    if search is not None:
        from pystac_client import Client
        from pystac_client.warnings import DoesNotConformTo

        url = os.fspath(source)
        arguments = _plain(search)
        try:
            stac_io = _stac_api_io()
            with warnings.catch_warnings():
                # pystac-client only warns when the API lacks an extension the search uses,
                # and the API then ignores that part: every Item would come back unfiltered.
                warnings.simplefilter("error", DoesNotConformTo)
                # Client.open hands its own timeout (default None: wait for ever) to stac_io.
                client = Client.open(url, stac_io=stac_io, timeout=stac_io.timeout)
                return list(client.search(**arguments).items()), url, None
        except UpdmError:
            raise
        except DoesNotConformTo as exc:
            missing = str(exc.args[0] if exc.args else exc).lower()
            used = sorted(k for k in ("query", "filter", "sortby", "fields") if k in arguments)
            raise SceneError(
                shown(
                    f"STAC API {url}: the server does not support the {missing} extension "
                    f"(it is not among its conformance classes), so it would ignore the "
                    f"search's {', '.join(used) or missing} and return unfiltered Items; "
                    "use a condition it supports (e.g. filter instead of query)"
                )
            ) from None
        except Exception as exc:  # pystac-client raises many kinds; name the API
            reason = remote.transient_reason(exc)
            if reason is not None:  # requests' own text of a timeout is a page of nesting
                retries = int(config.get("io.retries"))
                attempts = f"{retries + 1} attempt{'s' if retries else ''}"
                reason += f"; {attempts} (updm.io.retries = {retries})"
            # The search's keys, not its values: a filter may be a page long.
            keys = ", ".join(arguments) or "no conditions"
            raise SceneError(
                shown(f"STAC API {url}: search ({keys}) failed: {reason or exc}")
            ) from None
    if isinstance(source, pystac.Item):
        return [source], f"STAC item {source.id}", None
    if isinstance(source, pystac.ItemCollection):
        return list(source), "STAC item collection", None
    if hasattr(source, "items") and callable(source.items) and not isinstance(source, Mapping):
        # pystac_client.ItemSearch (or anything with .items()).
        url = getattr(source, "url", "STAC search")
        try:
            return list(source.items()), str(url), None
        except Exception as exc:
            raise SceneError(shown(f"STAC search {url}: failed: {exc}")) from None
    if isinstance(source, str | os.PathLike):
        location = os.fspath(source)
        said = shown(location)
        fs, path = loc.open_location(location)
        # Remote look-ups and reads time out and are retried (updm.io.*); a server that
        # does not answer is a RemoteReadError saying so, not "no such STAC file".
        if not loc.exists(fs, path):
            raise SceneError(f"{said}: no such STAC file")
        if loc.is_local(fs):
            rootcheck.check_regular(path, "STAC file")
        try:
            if loc.is_local(fs):
                with fs.open(path, "rb") as fh:
                    data = json.load(fh)
            else:
                data = json.loads(loc.read_remote(fs, path))
        except (OSError, ValueError) as exc:
            raise SceneError(shown(f"{location}: not a STAC JSON file: {exc}")) from None
        except RecursionError:  # json recurses once per nested array or object
            raise SceneError(
                shown(f"{location}: not a STAC JSON file: arrays or objects nested too deeply")
            ) from None
        base = location if loc.is_url(location) else path
        return _items_from_dict(data, said), location, base
    if isinstance(source, Iterable):
        items = list(source)
        if not all(isinstance(i, pystac.Item) for i in items):
            raise SceneError("discover_stac: an iterable source must hold pystac.Item objects")
        return items, "STAC items", None
    raise SceneError(
        f"discover_stac: cannot read STAC from {type(source).__name__}; expected a path or "
        "URL to an Item/ItemCollection JSON, a pystac Item/ItemCollection, an ItemSearch, or "
        "a STAC API URL with search={...}"
    )


def _plain(value: Any) -> Any:
    # Job specs hold read-only mappings and tuples; pystac-client sends JSON.
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _items_from_dict(data: Any, location: str) -> list[pystac.Item]:
    kind = data.get("type") if isinstance(data, Mapping) else None
    try:
        if kind == "FeatureCollection":
            return list(pystac.ItemCollection.from_dict(data, preserve_dict=False))
        if kind == "Feature":
            return [pystac.Item.from_dict(data, preserve_dict=False)]
    except Exception as exc:  # pystac raises KeyError/ValueError/STACError on bad items
        raise SceneError(f"{location}: not a valid STAC Item/ItemCollection: {exc}") from exc
    # The type is named only when it is one of STAC's: any other value is content of the
    # file, which messages never repeat.
    found = (
        f"its type is {kind!r}" if kind in _STAC_TYPES else "its type is missing or no STAC type"
    )
    raise SceneError(
        f"{location}: a STAC file must be a Feature (Item) or FeatureCollection "
        f"(ItemCollection); {found}"
    )


def discover_stac(
    source: str | os.PathLike | pystac.Item | pystac.ItemCollection | Iterable | Any,
    *,
    search: Mapping[str, Any] | None = None,
    sensors: str | Sequence[str] | None = None,
    start: dt.date | dt.datetime | str | None = None,
    end: dt.date | dt.datetime | str | None = None,
    roots: Sequence[str | os.PathLike] | None = None,
    sign: Signer | str | None = None,
) -> Discovery:
    """Find Landsat scenes described by STAC Items.

    Parameters
    ----------
    source
        A path or URL to an Item or ItemCollection JSON file; a ``pystac.Item`` /
        ``pystac.ItemCollection`` / iterable of Items; a ``pystac_client.ItemSearch``; or,
        with ``search``, the root URL of a STAC API.
    search
        Keyword arguments of ``pystac_client.Client.search`` (``collections``, ``bbox``,
        ``intersects``, ``datetime``, ``query``, ``filter``, ``limit``, ``max_items``
        ...); makes ``source`` a STAC API URL (a job's ``[inputs.stac_search]``). A
        ``query`` or ``filter`` the API does not declare support for is refused: the API
        would ignore it and return every Item.
    sensors, start, end
        Filters, as for :func:`~updm_dask.scenes.discover_scenes`.
    roots
        Local folders that hrefs to local files must lie in (symbolic links followed),
        besides the folder of ``source`` when it is a local file; others are refused
        without being read. ``None`` (the default): local hrefs are not confined, for
        catalogues you wrote yourself; a job always passes its input roots.
    sign
        The signing hook, for signed URLs (Planetary Computer's SAS tokens, presigned S3
        URLs ...): a callable, or its ``"module:function"`` name (:func:`load_signer`;
        ``[inputs] sign`` of a job spec). It is called once for every REMOTE href of an
        Item (metadata, band and QA assets; local paths and ``file://`` hrefs are never
        passed), after relative hrefs were resolved, with the absolute href as a str
        (``https://...``, ``s3://...``), and returns the href to read instead, a URL
        (``https://...?token=...`` ...). It runs during discovery, in the process that
        calls this function: workers read the signed URLs and need no hook, but a token
        must stay valid until the job has read the scene. An exception it raises, or a
        return value that is no URL, makes the Item a problem naming the hook. Example::

            def sign(href: str) -> str:
                return href + "?" + get_token(href)  # e.g. a SAS token from your provider

    Returns
    -------
    Discovery
        Scenes sorted by acquisition time; ``problems`` as ``(item id, message)`` for Items
        without a metadata asset, without a UPDM band, whose files are missing, or whose
        local hrefs are refused (URLs shown without their query strings).

    Raises
    ------
    SceneError
        When the source itself cannot be read (no such file, not STAC JSON, failed search).
    """
    signer = load_signer(sign) if isinstance(sign, str) else sign
    items, origin, base = _load_items(source, search)
    confined = None
    if roots is not None:
        confined = [os.path.realpath(os.fspath(root)) for root in roots]
        # The catalogue's own folder, when it is a local file.
        local_base = None if base is None else _local_path(base)
        if local_base is not None:
            confined.append(os.path.dirname(os.path.realpath(local_base)))
    scenes: list[SceneSource] = []
    problems: list[tuple[str, str]] = []
    for item in items:
        try:
            scenes.append(_item_source(item, origin, base, confined, signer))
        except (UpdmError, OSError) as exc:
            problems.append((f"STAC item {item.id}", redact(str(exc))))
    return select_scenes(scenes, problems, sensors=sensors, start=start, end=end)
