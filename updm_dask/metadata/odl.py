"""The ODL text of ``*_MTL.txt`` files: ``GROUP`` / ``KEY = VALUE`` / ``END_GROUP`` / ``END``."""

from __future__ import annotations

import re
from typing import Any

from ..errors import MetadataError
from . import values

__all__ = ["parse_odl"]


def _clip(text: str, limit: int = 80) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


def parse_odl(text: str, source: str = "<string>") -> dict[str, Any]:
    """Parse the ODL text of an MTL file into nested dicts (group -> key -> typed value).

    Quoted values stay strings; unquoted ones become int, float, ``None`` (``NULL``) or str.
    Lines may end in CRLF and carry trailing whitespace.

    Raises
    ------
    MetadataError
        For a line that is not ``KEY = VALUE``, a malformed quote, a key repeated within a
        group, unbalanced ``GROUP``/``END_GROUP`` (a truncated file), a missing ``END``, or
        text after ``END``; the message names the file and line.
    """
    lines = text.splitlines()
    last = max((i for i, line in enumerate(lines, 1) if line.strip()), default=0)

    def fail(lineno: int, message: str) -> MetadataError:
        # A file cut short usually breaks its last line, whatever the rule it breaks.
        hint = " (file truncated?)" if lineno == last else ""
        return MetadataError(f"{source}: line {lineno}{message}{hint}")

    root: dict[str, Any] = {}
    stack: list[tuple[str, dict[str, Any], int]] = [("", root, 0)]
    ended_at = 0
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or (line.startswith("/*") and line.endswith("*/")):
            continue
        if ended_at:
            raise fail(lineno, f": text after END (line {ended_at}): {_clip(raw)!r}")
        if line == "END":
            if len(stack) > 1:
                name, _, opened = stack[-1]
                raise fail(
                    lineno, f": END while GROUP = {name} (opened at line {opened}) has no END_GROUP"
                )
            ended_at = lineno
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _NAME_RE.match(key):
            raise fail(lineno, f" is not KEY = VALUE: {_clip(raw)!r}")
        if not value:
            raise fail(lineno, f": {key} has no value")
        current = stack[-1][1]
        if key == "GROUP":
            if not _NAME_RE.match(value):
                raise fail(lineno, f": bad group name {value!r}")
            if value in current:
                raise fail(
                    lineno, f": GROUP = {value} appears twice in {stack[-1][0] or 'the top level'}"
                )
            current[value] = {}
            stack.append((value, current[value], lineno))
        elif key == "END_GROUP":
            if len(stack) == 1:
                raise fail(lineno, f": END_GROUP = {value} without a matching GROUP")
            name, _, opened = stack[-1]
            if value != name:
                raise fail(
                    lineno,
                    f": END_GROUP = {value} does not close GROUP = {name} opened at line {opened}",
                )
            stack.pop()
        else:
            if key in current:
                raise fail(
                    lineno, f": {key} appears twice in group {stack[-1][0] or '(top level)'}"
                )
            if value.startswith('"'):
                if len(value) < 2 or not value.endswith('"') or '"' in value[1:-1]:
                    raise fail(lineno, f": malformed quoted value for {key}: {_clip(value)!r}")
                current[key] = value[1:-1]
            else:
                current[key] = values.scalar(value)
    if len(stack) > 1:
        name, _, opened = stack[-1]
        raise MetadataError(
            f"{source}: GROUP = {name} opened at line {opened} is never closed by END_GROUP "
            "(unbalanced GROUP/END_GROUP: file truncated?)"
        )
    if not ended_at:
        raise MetadataError(f"{source}: no END line after the last group (file truncated?)")
    return root
