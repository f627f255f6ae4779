"""Tags of cubes and collections: which names are taken, and what a refusal says."""

from __future__ import annotations

import re
from typing import Any

from ..errors import CubeError

#: A tag name: letters, digits, ``.``, ``_``, ``-`` and ``/``, starting with a letter or digit
#: (the names version control systems accept, which also read well on a command line).
_TAG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,127}")


def check_tag_name(name: Any, where: str) -> str:
    """``name`` if it may name a tag of the cube or collection at ``where``, else CubeError.

    At most 128 characters of ``[A-Za-z0-9._/-]``, starting with a letter or digit, without
    ``..`` and not ending in ``/``. Checked before anything is written, so that a bad name
    never leaves part of a collection's tags behind.
    """
    if (
        not isinstance(name, str)
        or not _TAG_NAME.fullmatch(name)
        or ".." in name
        or name.endswith("/")
    ):
        raise CubeError(
            f"{where}: bad tag name {name!r:.140}: expected up to 128 letters, "
            "digits, '.', '_', '-' or '/', starting with a letter or digit, without '..' "
            "and not ending in '/'"
        )
    return name


def icechunk_detail(exc: BaseException) -> str:
    """The first line of an Icechunk error's text (the rest is the storage layer's trace)."""
    lines = str(getattr(exc, "message", exc)).strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__
