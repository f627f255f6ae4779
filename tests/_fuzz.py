"""Helpers of the property tests (fuzzing) of the three parsers: MTL, job spec, STAC.

The property every fuzz test checks: an input either parses, or raises the package's own
error (:class:`~updm_dask.errors.UpdmError`) with a message that names the input; nothing
else escapes, nothing hangs, and no message repeats a secret planted in the input.

- :func:`watchdog` turns a hang into a failure: hypothesis' deadline is only checked after
  an example returns, so it cannot stop one that never does.
- :func:`mutate` applies random byte-level mutations to a real file: truncation, byte
  changes, deletions, insertions, repeated spans and tokens of the file formats (a fuzzer's
  dictionary), repeated up to thousands of times to reach deep nesting and huge numbers.
- :func:`printed` is every text a traceback of an error would print (its message and the
  messages of its cause / unsuppressed context), for the secret check.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import signal
from collections.abc import Iterator, Sequence

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from updm_dask.errors import UpdmError

#: Planted in inputs; no error message may contain it.
SECRET = "SECRET_TOKEN_6f1c"

#: Per-example limits. The deadline (hypothesis) fails pathologically slow examples; the
#: watchdog (a signal) fails one that never returns. Parsing a real file takes milliseconds;
#: the deadline is far above that because these machines are shared, and a busy moment
#: must not read as a quadratic parser (tests check correctness, not time).
DEADLINE = dt.timedelta(seconds=10)
WATCHDOG_SECONDS = 20

#: Examples per property: CI keeps the three fuzz files under about a minute together; the
#: slow-marked variants search ten to twenty times longer.
CI_EXAMPLES = 100
SLOW_EXAMPLES = 1000


def fuzz_settings(max_examples: int) -> settings:
    """Hypothesis settings of a fuzz test: bounded examples and a per-example deadline."""
    return settings(
        max_examples=max_examples,
        deadline=DEADLINE,
        # No "explain" phase: it traces every line after a failure, which slows examples
        # tenfold, past the watchdog, and would report a hang instead of the failure.
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
        print_blob=True,
        # The corpus files are kilobytes; examples built from them are large on purpose.
        suppress_health_check=[HealthCheck.data_too_large, HealthCheck.too_slow],
    )


class Hang(BaseException):
    """An example ran longer than :data:`WATCHDOG_SECONDS` (a BaseException so that no
    ``except Exception`` of the code under test can swallow it)."""


@contextlib.contextmanager
def watchdog(seconds: float = WATCHDOG_SECONDS) -> Iterator[None]:
    """Raise :class:`Hang` in the main thread when the block runs longer than ``seconds``."""

    def _alarm(signum, frame):
        raise Hang(f"the example did not return within {seconds} s")

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def printed(exc: BaseException) -> list[str]:
    """The messages a traceback of ``exc`` prints: its own and its chain's."""
    out, seen = [], set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        out.append(f"{type(current).__name__}: {current}")
        if current.__cause__ is not None:
            current = current.__cause__
        elif not current.__suppress_context__:
            current = current.__context__
        else:
            current = None
    return out


def check_error(exc: BaseException, source: str | None = None) -> str:
    """Assert ``exc`` is the package's own error with a message (naming ``source``)."""
    assert isinstance(exc, UpdmError), f"{type(exc).__name__} escaped: {exc}"
    message = str(exc)
    assert message.strip(), f"{type(exc).__name__} without a message"
    if source is not None:
        assert source in message, f"the message does not name {source}: {message}"
    return message


def check_no_secret(exc: BaseException) -> None:
    """Assert no text a traceback of ``exc`` prints contains :data:`SECRET`."""
    for text in printed(exc):
        assert SECRET not in text, f"the planted secret is echoed: {text}"


_OPERATIONS = ("truncate", "set", "delete", "insert", "token", "repeat", "lines")
# Bytes that keep a text file text (and its syntax in play) more often than random ones.
_SYNTAX_BYTES = b' \t\n=":,.-_/0123456789eEZ<>{}[]#'


def mutate(
    data: st.DataObject,
    blob: bytes,
    tokens: Sequence[bytes],
    *,
    min_operations: int = 1,
    max_operations: int = 5,
) -> bytes:
    """``blob`` after ``min_operations`` to ``max_operations`` random mutations.

    Byte changes, deletions, insertions, truncation; a token of ``tokens`` inserted once or
    repeated up to 3000 times (at most ~100 kB); a span repeated; whole lines dropped,
    doubled or swapped.
    """
    out = bytearray(blob)
    count = data.draw(st.integers(min_operations, max_operations), label="mutations")
    for _ in range(count):
        operation = data.draw(st.sampled_from(_OPERATIONS), label="operation")
        at = data.draw(st.integers(0, len(out)), label="offset")
        if operation == "truncate":
            del out[at:]
        elif operation == "set" and at < len(out):
            byte = st.one_of(st.sampled_from(_SYNTAX_BYTES), st.integers(0, 255))
            out[at] = data.draw(byte, label="byte")
        elif operation == "delete":
            del out[at : at + data.draw(st.integers(1, 64), label="length")]
        elif operation == "insert":
            out[at:at] = data.draw(st.binary(min_size=1, max_size=16), label="bytes")
        elif operation == "token":
            token = data.draw(st.sampled_from(tokens), label="token")
            times = data.draw(st.sampled_from((1, 1, 2, 40, 3000)), label="times")
            # At most ~100 kB at once: enough to nest 3000 deep, not megabytes that only
            # measure how fast a parser scans.
            out[at:at] = token * min(times, max(1, 100_000 // len(token)))
        elif operation == "repeat":
            span = out[at : at + data.draw(st.integers(1, 200), label="span")]
            out[at:at] = span * data.draw(st.integers(1, 30), label="repeats")
        elif operation == "lines":
            out = bytearray(_line_operation(data, bytes(out)))
    return bytes(out)


def _line_operation(data: st.DataObject, blob: bytes) -> bytes:
    lines = blob.split(b"\n")
    i = data.draw(st.integers(0, len(lines) - 1), label="line")
    j = data.draw(st.integers(0, len(lines) - 1), label="other line")
    what = data.draw(st.sampled_from(("drop", "double", "swap")), label="line operation")
    if what == "drop":
        del lines[i]
    elif what == "double":
        lines.insert(i, lines[i])
    else:
        lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


#: Tokens of every format the parsers read, plus numbers no real file has.
COMMON_TOKENS = (
    b"\x00",
    b"\xff",
    b"\xef\xbb\xbf",
    b"\r\n",
    b"\n",
    b" = ",
    b'"',
    b"'",
    b",",
    b":",
    b"NULL",
    b"NaN",
    b"1e999",
    b"-0",
    b"9" * 400,
    b"9" * 5000,
    b"\\u0000",
    b"\\ud800",
)


class Corpus(dict):
    """Real files by name; shown by count, so a failing example does not print them all."""

    def __repr__(self) -> str:
        return f"<{len(self)} real files>"

    def draw(self, data: st.DataObject) -> tuple[str, bytes]:
        """(name, content) of a file drawn from ``data``; the draw shows its name only."""
        if not self:
            pytest.fail("the fuzz corpus is empty: no real files found")
        name = data.draw(st.sampled_from(sorted(self)), label="file")
        return name, self[name]
