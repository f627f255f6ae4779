"""The ODL text of ``*_MTL.txt`` files: ``GROUP`` / ``KEY = VALUE`` / ``END_GROUP`` / ``END``."""

from __future__ import annotations

import re
from typing import Any

from ..errors import MetadataError
from . import values

__all__ = ["MAX_GROUP_DEPTH", "parse_odl", "parse_odl_with_lines"]

_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")

# Landsat MTL files nest groups three deep at most; a bound keeps a hostile file of
# nothing but GROUP lines from building a structure too deep to walk.
MAX_GROUP_DEPTH = 16


def parse_odl(text: str, source: str = "<string>") -> dict[str, Any]:
    """Parse the ODL text of an MTL file into nested dicts (group -> key -> typed value).

    Quoted values stay strings; unquoted ones become int, float, ``None`` (``NULL``) or str.
    Lines may end in CRLF and carry trailing whitespace.

    Raises
    ------
    MetadataError
        For a line that is not ``KEY = VALUE``, a malformed quote, a key repeated within a
        group, unbalanced ``GROUP``/``END_GROUP`` (a truncated file), groups nested deeper
        than :data:`MAX_GROUP_DEPTH`, a missing ``END``, or text after ``END``; the message
        names the file, the line and what was expected there, never the line's text.
    """
    return parse_odl_with_lines(text, source)[0]


def parse_odl_with_lines(
    text: str, source: str = "<string>"
) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    """:func:`parse_odl`, plus the line of every key and group.

    Returns
    -------
    tuple
        The nested dicts, and ``{(group, ..., key): line number}`` (1-based) for every
        entry, so that a later check of a value can say where the value is.
    """
    lines = text.splitlines()
    last = max((i for i, line in enumerate(lines, 1) if line.strip()), default=0)

    def fail(lineno: int, message: str) -> MetadataError:
        # A file cut short usually breaks its last line, whatever the rule it breaks.
        hint = " (file truncated?)" if lineno == last else ""
        return MetadataError(f"{source}: line {lineno}{message}{hint}")

    def where(name: str) -> str:
        return values.shown_name(name) if name else "the top level"

    root: dict[str, Any] = {}
    located: dict[tuple[str, ...], int] = {}
    stack: list[tuple[str, dict[str, Any], int]] = [("", root, 0)]
    ended_at = 0
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or (line.startswith("/*") and line.endswith("*/")):
            continue
        if ended_at:
            raise fail(lineno, f": text after END (line {ended_at}); expected nothing after END")
        if line == "END":
            if len(stack) > 1:
                name, _, opened = stack[-1]
                raise fail(
                    lineno,
                    f": END while GROUP = {values.shown_name(name)} (opened at line {opened}) "
                    "has no END_GROUP",
                )
            ended_at = lineno
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _NAME_RE.match(key):
            # The line itself is never shown: this may not be a metadata file at all.
            raise fail(
                lineno,
                " is not KEY = VALUE (expected a name of letters, digits and _, then =, "
                "then a value)",
            )
        if not value:
            raise fail(lineno, f": {values.shown_name(key)} has no value")
        current = stack[-1][1]
        path = tuple(name for name, _, _ in stack[1:])
        if key == "GROUP":
            if not _NAME_RE.match(value):
                raise fail(
                    lineno, ": bad group name (expected GROUP = a name of letters, digits and _)"
                )
            if value in current:
                raise fail(
                    lineno,
                    f": GROUP = {values.shown_name(value)} appears twice in {where(stack[-1][0])}",
                )
            if len(stack) > MAX_GROUP_DEPTH:
                raise fail(
                    lineno,
                    f": GROUP nested deeper than {MAX_GROUP_DEPTH} levels (Landsat metadata "
                    "nests groups 3 deep at most)",
                )
            current[value] = {}
            located[(*path, value)] = lineno
            stack.append((value, current[value], lineno))
        elif key == "END_GROUP":
            if len(stack) == 1:
                raise fail(
                    lineno, f": END_GROUP = {values.shown_name(value)} without a matching GROUP"
                )
            name, _, opened = stack[-1]
            if value != name:
                raise fail(
                    lineno,
                    f": END_GROUP = {values.shown_name(value)} does not close "
                    f"GROUP = {values.shown_name(name)} opened at line {opened}",
                )
            stack.pop()
        else:
            if key in current:
                raise fail(
                    lineno,
                    f": {values.shown_name(key)} appears twice in group "
                    f"{values.shown_name(stack[-1][0]) if stack[-1][0] else '(top level)'}",
                )
            if value.startswith('"'):
                if len(value) < 2 or not value.endswith('"') or '"' in value[1:-1]:
                    raise fail(
                        lineno,
                        f": malformed quoted value for {values.shown_name(key)} (expected "
                        'one pair of double quotes: KEY = "text")',
                    )
                current[key] = value[1:-1]
            else:
                current[key] = values.scalar(value)
            located[(*path, key)] = lineno
    if len(stack) > 1:
        name, _, opened = stack[-1]
        raise MetadataError(
            f"{source}: GROUP = {values.shown_name(name)} opened at line {opened} is never "
            "closed by END_GROUP (unbalanced GROUP/END_GROUP: file truncated?)"
        )
    if not ended_at:
        raise MetadataError(f"{source}: no END line after the last group (file truncated?)")
    return root, located
