"""Reading metadata: bytes -> text -> the format, recognised from the content.

:func:`read_mtl` (a path or a file object) and :func:`read_mtl_text` (text in memory) check
that the input is text (NUL padding stripped, binary refused), then hand it to the reader of
its format: ODL (:mod:`~updm_dask.metadata.odl`), XML (Collection-2 MTL, or ESPA in
:mod:`~updm_dask.metadata.espa`) or JSON; all but ESPA become MTL groups that
:mod:`~updm_dask.metadata.mtl` maps to the record.
"""

from __future__ import annotations

import json
import os
import re
import stat
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import IO, Any

from ..errors import MetadataError
from . import values
from .espa import local_name, scene_from_espa
from .mtl import MTL_ROOTS, scene_from_mtl_groups
from .odl import parse_odl
from .records import SceneMetadata

__all__ = ["MAX_METADATA_BYTES", "read_mtl", "read_mtl_text"]

# Real metadata files are 5-70 kB; a limit keeps a mistaken path (a GeoTIFF, an archive)
# from being read whole into memory.
MAX_METADATA_BYTES = 16 * 1024 * 1024
# Real metadata nests 2 to 4 levels (file, group, key; ESPA bands). Far deeper input is
# hostile, and would exhaust the recursion of the readers that map it to the record.
MAX_NESTING = 32


def read_mtl(source: str | os.PathLike | bytes | IO, *, name: str | None = None) -> SceneMetadata:
    """Read a Landsat metadata file (any MTL flavour, or ESPA XML).

    Parameters
    ----------
    source
        A path, or an open binary (or text) file object such as a member of a tar archive
        (``tarfile.TarFile.extractfile``).
    name
        Name to report in errors and store in :attr:`SceneMetadata.path`; defaults to the
        path, or the file object's ``name``.

    Returns
    -------
    SceneMetadata

    Raises
    ------
    MetadataError
        When the file does not exist or cannot be read, is empty, binary, malformed,
        truncated, or lacks a required field; the message names the file and the problem.
    """
    if hasattr(source, "read"):
        label = name or str(getattr(source, "name", None) or "<file object>")
        try:
            data = source.read(MAX_METADATA_BYTES + 1)
        except OSError as exc:
            raise MetadataError(f"{label}: cannot be read: {exc}") from exc
        if isinstance(data, str):
            data = data.encode("utf-8")
    else:
        path = os.fsdecode(source) if isinstance(source, bytes) else os.fspath(source)
        label = name or path
        try:
            unusable = b"\0" in os.fsencode(path)
        except UnicodeEncodeError:  # an unpaired surrogate, e.g. "\ud800" in a STAC href
            unusable = True
        if unusable:
            # The OS would refuse it with a ValueError, not an OSError; repr() shows the
            # NUL or surrogate escaped.
            raise MetadataError(
                f"{label!r}: not a possible file name (a NUL character or an unpaired "
                "surrogate in it)"
            )
        try:
            # O_NONBLOCK: opening a FIFO must not wait for a writer (it would block forever);
            # it has no effect on a regular file, and anything else is refused before a read.
            with open(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as fh:
                kind = os.fstat(fh.fileno()).st_mode
                if stat.S_ISDIR(kind):
                    raise IsADirectoryError
                if not stat.S_ISREG(kind):
                    raise MetadataError(
                        f"{label}: not a regular file (a FIFO, device or socket); "
                        "expected a metadata file"
                    )
                data = fh.read(MAX_METADATA_BYTES + 1)
        except FileNotFoundError:
            raise MetadataError(f"{label}: no such metadata file") from None
        except IsADirectoryError:
            raise MetadataError(f"{label}: is a directory, not a metadata file") from None
        except OSError as exc:
            raise MetadataError(f"{label}: cannot be read: {exc.strerror or exc}") from exc
    if len(data) > MAX_METADATA_BYTES:
        raise MetadataError(
            f"{label}: larger than {MAX_METADATA_BYTES} bytes; not a metadata file "
            "(an image or archive?)"
        )
    return _parse_text(_decode(data, label), label)


def read_mtl_text(text: str | bytes, source: str = "<string>") -> SceneMetadata:
    """Parse metadata already held in memory (same formats and checks as :func:`read_mtl`).

    Parameters
    ----------
    text
        The file content. Bytes are decoded as :func:`read_mtl` does; NUL padding is
        stripped from a string too.
    source
        Name used in error messages and as :attr:`SceneMetadata.path`.
    """
    if isinstance(text, bytes | bytearray):
        return _parse_text(_decode(bytes(text), source), source)
    if not isinstance(text, str):
        raise MetadataError(f"{source}: expected the metadata text as str, got {type(text)}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates, e.g. from a "surrogateescape" decode
        raise MetadataError(
            f"{source}: not valid Unicode text (unpaired surrogate at offset {exc.start}); "
            "expected Landsat metadata"
        ) from None
    nul = text.find("\0")
    if nul >= 0:
        if text[nul:].strip("\0"):
            raise MetadataError(
                f"{source}: binary data (NUL character at offset {nul} followed by more "
                "data); not a text metadata file"
            )
        text = text[:nul]
    if not text.strip():
        raise MetadataError(f"{source}: is empty; expected Landsat metadata (MTL/ESPA)")
    _check_text(text, source)
    return _parse_text(text, source)


def _decode(data: bytes, source: str) -> str:
    if not data:
        raise MetadataError(f"{source}: is empty (0 bytes); expected Landsat metadata")
    # LPGS pads some pre-collection MTLs with NUL bytes up to 65535 bytes: the text ends at
    # the first NUL. Anything but NULs after it means the file is binary.
    nul = data.find(b"\0")
    if nul >= 0:
        if data[nul:].strip(b"\0"):
            raise MetadataError(
                f"{source}: binary data (NUL byte at offset {nul} followed by other bytes); "
                "not a text metadata file"
            )
        data = data[:nul]
    if not data.strip():
        raise MetadataError(
            f"{source}: contains no text (only NUL padding or whitespace); "
            "expected Landsat metadata"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MetadataError(
            f"{source}: not a text file (byte 0x{data[exc.start]:02x} at offset {exc.start} "
            "is not UTF-8); expected Landsat metadata"
        ) from None
    _check_text(text, source)
    return text


_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _check_text(text: str, source: str) -> None:
    bad = _CONTROL_RE.search(text)
    if bad:
        raise MetadataError(
            f"{source}: binary data (control character 0x{ord(bad.group()):02x} at offset "
            f"{bad.start()}); not a text metadata file"
        )


def _parse_text(text: str, source: str) -> SceneMetadata:
    head = text.lstrip()
    if head.startswith("<"):
        return _from_xml(text, source)
    if head.startswith(("{", "[")):
        return _from_json(text, source)
    groups = parse_odl(text, source)
    _check_nesting(groups, source, "ODL groups")
    return scene_from_mtl_groups(groups, "odl", source)


def _check_nesting(tree: Any, source: str, what: str) -> None:
    # Iterative, so that the check itself cannot run out of stack.
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Mapping):
            children = list(node.values())
        elif isinstance(node, list | ET.Element):
            children = list(node)
        else:
            continue
        if children and depth >= MAX_NESTING:
            raise MetadataError(
                f"{source}: {what} nested more than {MAX_NESTING} levels deep; Landsat "
                "metadata nests a few levels"
            )
        stack.extend((child, depth + 1) for child in children)


_DTD_RE = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def _from_xml(text: str, source: str) -> SceneMetadata:
    found = _DTD_RE.search(text)
    if found:
        # No Landsat metadata file has a DTD; refusing them rules out entity expansion.
        raise MetadataError(
            f"{source}: XML with a <!{found.group(1).upper()} declaration is refused "
            "(Landsat metadata never has one)"
        )
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        line, column = exc.position
        raise MetadataError(
            f"{source}: invalid XML at line {line}, column {column}: {exc} (truncated or not XML?)"
        ) from None
    _check_nesting(root, source, "XML elements")
    tag = local_name(root.tag)
    if tag in MTL_ROOTS:
        return scene_from_mtl_groups({tag: _mtl_xml_dict(root, source)}, "xml", source)
    if tag == "espa_metadata":
        return scene_from_espa(root, source)
    raise MetadataError(
        f"{source}: XML root element <{tag}> is neither LANDSAT_METADATA_FILE (Collection-2 "
        "MTL) nor espa_metadata (ESPA)"
    )


def _mtl_xml_dict(elem: ET.Element, source: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in elem:
        tag = local_name(child.tag)
        if tag in out:
            raise MetadataError(
                f"{source}: element <{tag}> appears twice in <{local_name(elem.tag)}>"
            )
        if len(child):
            out[tag] = _mtl_xml_dict(child, source)
        else:
            content = (child.text or "").strip()
            out[tag] = values.scalar(content) if content else None
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid metadata number")


def _from_json(text: str, source: str) -> SceneMetadata:
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        raise MetadataError(f"{source}: invalid JSON: {exc} (truncated or not JSON?)") from None
    except RecursionError:
        raise MetadataError(
            f"{source}: JSON nested more than {MAX_NESTING} levels deep; Landsat metadata "
            "nests a few levels"
        ) from None
    _check_nesting(data, source, "JSON")
    if not isinstance(data, dict):
        raise MetadataError(
            f"{source}: JSON metadata must be an object holding the L1_METADATA_FILE or "
            f"LANDSAT_METADATA_FILE group, not a {type(data).__name__}"
        )
    return scene_from_mtl_groups(data, "json", source)
