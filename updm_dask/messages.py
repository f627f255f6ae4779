"""What messages, reports and logs may show of strings that come from inputs.

Names from inputs (job names, scene ids, paths, STAC ids, URLs) end up in one-line reports
and logs: :func:`printable` escapes control characters so a name cannot forge a line, and
:func:`redact` removes the query strings of URLs, where presigned URLs carry credentials.
:func:`shown` does both; every room that prints or raises with such a string uses it.
"""

from __future__ import annotations

import re

__all__ = ["printable", "redact", "shown"]

# A URL and its query string: the query ends at whitespace, a quote or a closing bracket,
# and punctuation just before those (", " or ": " after a URL in a sentence) is kept. A query
# already redacted stays as it is.
_QUERY_URL_RE = re.compile(
    r"(?P<url>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s?#'\"<>]*)\?(?!<redacted>)[^\s'\"<>)\]]*?"
    r"(?=[:;,.]?(?:[\s'\"<>)\]]|$))"
)
# C0 and C1 control characters, DEL, the Unicode line and paragraph separators, and the
# bidirectional overrides that can make a line show other text than it holds.
_UNPRINTABLE_RE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def redact(text: str) -> str:
    """``text`` with the query string of every URL in it replaced by ``?<redacted>``.

    Presigned URLs carry their credentials in the query (``X-Amz-Signature``,
    ``X-Amz-Credential``, Azure ``sig``): messages and logs show where a file is, never them.
    """
    return _QUERY_URL_RE.sub(r"\g<url>?<redacted>", text)


def printable(text: str) -> str:
    r"""``text`` with control characters escaped (``\n``, ``\x1b``, ``\u2028`` ...).

    Names from inputs (job names, scene ids, paths, STAC ids) end up in reports and logs
    line by line: escaped, a newline inside a name cannot start a line of its own.
    """
    return _UNPRINTABLE_RE.sub(_escape, text)


def _escape(match: re.Match) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED_ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def shown(text: object) -> str:
    """``text`` as a report line may show it: query strings redacted, controls escaped."""
    return printable(redact(str(text)))
