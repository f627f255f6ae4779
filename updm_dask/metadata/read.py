"""Reading metadata: bytes -> text -> the format, recognised from the content.

:func:`read_mtl` (a path or a file object) and :func:`read_mtl_text` (text in memory) check
that the input is text (NUL padding stripped, binary refused), then hand it to the reader of
its format: ODL (:mod:`~updm_dask.metadata.odl`), XML (Collection-2 MTL, or ESPA in
:mod:`~updm_dask.metadata.espa`) or JSON; all but ESPA become MTL groups that
:mod:`~updm_dask.metadata.mtl` maps to the record.
"""

from __future__ import annotations

import bisect
import json
import os
import re
import stat
import xml.etree.ElementTree as ET
from typing import IO, Any
from xml.parsers import expat

from ..errors import MetadataError
from . import values
from .espa import local_name, scene_from_espa
from .mtl import MTL_ROOTS, scene_from_mtl_groups
from .odl import parse_odl_with_lines
from .records import SceneMetadata

__all__ = ["MAX_METADATA_BYTES", "read_mtl", "read_mtl_text"]

# Real metadata files are 5-70 kB; a limit keeps a mistaken path (a GeoTIFF, an archive)
# from being read whole into memory.
MAX_METADATA_BYTES = 16 * 1024 * 1024


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
    bad_at = None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad_at = exc.start
    if bad_at is not None:
        # Raised outside the handler: a UnicodeDecodeError holds the whole file (.object),
        # which must not travel along as the MetadataError's context.
        raise MetadataError(
            f"{source}: not a text file (byte 0x{data[bad_at]:02x} at offset {bad_at} "
            "is not UTF-8); expected Landsat metadata"
        )
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
    groups, lines = parse_odl_with_lines(text, source)
    located = {path: f"line {line}" for path, line in lines.items()}
    return scene_from_mtl_groups(groups, "odl", source, lines=located)


_DTD_RE = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)

# Landsat metadata nests 3 (MTL) to 5 (ESPA) levels deep; deeper input is refused before
# anything walks it recursively.
MAX_NESTING = 16


def _from_xml(text: str, source: str) -> SceneMetadata:
    found = _DTD_RE.search(text)
    if found:
        # No Landsat metadata file has a DTD; refusing them rules out entity expansion.
        raise MetadataError(
            f"{source}: XML with a <!{found.group(1).upper()} declaration is refused "
            "(Landsat metadata never has one)"
        )
    root, element_lines = _xml_tree(text, source)
    tag = local_name(root.tag)
    if tag in MTL_ROOTS:
        located: dict[tuple[str, ...], str] = {}
        groups = {tag: _mtl_xml_dict(root, source, (tag,), element_lines, located)}
        return scene_from_mtl_groups(groups, "xml", source, lines=located)
    if tag == "espa_metadata":
        return scene_from_espa(root, source, lines=element_lines)
    raise MetadataError(
        f"{source}: line {element_lines[id(root)]}: XML root element <{values.shown_name(tag)}> "
        "is neither LANDSAT_METADATA_FILE (Collection-2 MTL) nor espa_metadata (ESPA)"
    )


def _xml_tree(text: str, source: str) -> tuple[ET.Element, dict[int, int]]:
    """Parse XML into an ElementTree, with the line of every element (by ``id``).

    ElementTree's own parser keeps no line numbers, which a message about a value deep in
    the file needs; expat gives them.
    """
    parser = expat.ParserCreate(namespace_separator="}")
    parser.buffer_text = True
    stack: list[ET.Element] = []
    pieces: list[list[str]] = []
    roots: list[ET.Element] = []
    lines: dict[int, int] = {}

    def qualified(name: str) -> str:
        # expat writes "uri}local"; ElementTree's convention is "{uri}local".
        return "{" + name if "}" in name else name

    def start(name: str, attrs: dict[str, str]) -> None:
        if len(stack) >= MAX_NESTING:
            raise _Refused(
                parser.CurrentLineNumber,
                f"XML elements nested deeper than {MAX_NESTING} levels (Landsat metadata "
                "nests 5 deep at most)",
            )
        elem = ET.Element(qualified(name), {qualified(k): v for k, v in attrs.items()})
        lines[id(elem)] = parser.CurrentLineNumber
        if stack:
            stack[-1].append(elem)
        else:
            roots.append(elem)
        stack.append(elem)
        pieces.append([])

    def end(name: str) -> None:
        elem, text = stack.pop(), pieces.pop()
        if text:
            elem.text = "".join(text)

    def data(content: str) -> None:
        # Only the text before an element's first child is kept (the readers use no tails);
        # pieces are joined once at its end, as a long text arrives in many pieces.
        if stack and not len(stack[-1]):
            pieces[-1].append(content)

    def refuse_dtd(*_args: Any) -> None:
        raise _Refused(
            parser.CurrentLineNumber,
            "XML with a DTD is refused (Landsat metadata never has one)",
        )

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = data
    parser.StartDoctypeDeclHandler = refuse_dtd
    parser.EntityDeclHandler = refuse_dtd
    # Errors are raised after the handlers, so no parser exception travels along as the
    # MetadataError's context.
    problem = None
    try:
        parser.Parse(text, True)
    except expat.ExpatError as exc:
        # expat's messages are fixed phrases ("mismatched tag"), never the document's text.
        problem = (
            f"invalid XML at line {exc.lineno}, column {exc.offset}: "
            f"{expat.ErrorString(exc.code)} (truncated or not XML?)"
        )
    except _Refused as exc:
        problem = f"line {exc.line}: {exc.reason}"
    if problem is not None:
        raise MetadataError(f"{source}: {problem}")
    return roots[0], lines


class _Refused(Exception):
    """Stops the XML parser from inside a handler; becomes a MetadataError."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


def _mtl_xml_dict(
    elem: ET.Element,
    source: str,
    path: tuple[str, ...],
    element_lines: dict[int, int],
    located: dict[tuple[str, ...], str],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in elem:
        tag = local_name(child.tag)
        line = element_lines[id(child)]
        if tag in out:
            raise MetadataError(
                f"{source}: line {line}: element <{values.shown_name(tag)}> appears twice in "
                f"<{values.shown_name(local_name(elem.tag))}>"
            )
        located[(*path, tag)] = f"line {line}"
        if len(child):
            out[tag] = _mtl_xml_dict(child, source, (*path, tag), element_lines, located)
        else:
            content = (child.text or "").strip()
            out[tag] = values.scalar(content) if content else None
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid metadata number")


def _from_json(text: str, source: str) -> SceneMetadata:
    # Errors are raised after the handlers: a JSONDecodeError holds the whole document
    # (its .doc), which must not travel along as the MetadataError's context.
    problem = None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        # Both messages are fixed phrases with a position ("Expecting value: line 1
        # column 2"), or a constant's name (NaN): never the document's text.
        problem = f"invalid JSON: {exc} (truncated or not JSON?)"
    except RecursionError:
        problem = "JSON nested too deeply to read (Landsat metadata nests 3 deep at most)"
    if problem is not None:
        raise MetadataError(f"{source}: {problem}")
    if not isinstance(data, dict):
        raise MetadataError(
            f"{source}: JSON metadata must be an object holding the L1_METADATA_FILE or "
            f"LANDSAT_METADATA_FILE group, not a {type(data).__name__}"
        )
    depth = _json_depth(data)
    if depth > MAX_NESTING:
        raise MetadataError(
            f"{source}: JSON nested deeper than {MAX_NESTING} levels (Landsat metadata nests "
            "3 deep at most)"
        )
    return scene_from_mtl_groups(data, "json", source, lines=_json_key_places(text))


def _json_depth(data: Any) -> int:
    """Nesting depth of parsed JSON, without recursion, stopping past MAX_NESTING."""
    deepest = 0
    todo: list[tuple[Any, int]] = [(data, 1)]
    while todo:
        node, depth = todo.pop()
        deepest = max(deepest, depth)
        if depth > MAX_NESTING:
            break
        children = node.values() if isinstance(node, dict) else node
        todo.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return deepest


def _json_key_places(text: str) -> dict[tuple[str, ...], str]:
    """Where each key of valid JSON is: ``{(group, ..., key): "line L, column C"}``.

    ``json`` keeps no positions, so the text, already known to be valid JSON nested no
    deeper than MAX_NESTING, is walked once more. Columns matter: rio-toa writes its JSON
    on a single line.
    """
    newlines = [m.start() for m in re.finditer("\n", text)]
    decoder = json.JSONDecoder()
    places: dict[tuple[str, ...], str] = {}

    def place(index: int) -> str:
        line = bisect.bisect_left(newlines, index)
        column = index - (newlines[line - 1] + 1 if line else 0) + 1
        return f"line {line + 1}, column {column}"

    def skip(i: int) -> int:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        return i

    def walk(i: int, path: tuple[str, ...]) -> int:
        i = skip(i)
        if text[i] != "{":
            return decoder.raw_decode(text, i)[1]
        i = skip(i + 1)
        if text[i] == "}":
            return i + 1
        while True:
            start = i
            key, i = json.decoder.scanstring(text, i + 1)
            places[(*path, key)] = place(start)  # the last of repeated keys wins, as in json
            i = skip(i)  # now at ":"
            i = skip(walk(i + 1, (*path, key)))
            if text[i] == "}":
                return i + 1
            i = skip(i + 1)  # past ","

    walk(0, ())
    return places
