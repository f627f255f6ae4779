"""What the ``updm`` command says besides its results: notes, progress, logging, "wrote".

Results (tables, reports, what was written) go to stdout and errors to stderr whatever the
verbosity. Notes and progress bars go to stderr and ``-q`` silences them; ``-v`` shows the
package's INFO log records, ``-vv`` its DEBUG ones.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import config

__all__ = ["configure", "is_quiet", "note", "progress", "reset", "size_text", "wrote"]

_state: dict[str, Any] = {"quiet": False, "level": None}


class _StderrHandler(logging.StreamHandler):
    """A handler writing to the current ``sys.stderr`` (which tests and shells may swap)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> Any:  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass  # always the current sys.stderr


_handler = _StderrHandler()
_handler.setFormatter(logging.Formatter("updm: %(levelname)s: %(message)s"))


def configure(verbose: int = 0, quiet: bool = False) -> None:
    """Set the verbosity of this run of the command.

    Parameters
    ----------
    verbose : int
        Number of ``-v``: 1 shows INFO records of the ``updm_dask`` loggers, 2 DEBUG.
    quiet : bool
        ``-q``: no notes, no progress bars, log records of level ERROR only.
    """
    _state["quiet"] = bool(quiet)
    if quiet:
        level = logging.ERROR
    elif verbose >= 2:
        level = logging.DEBUG
    elif verbose == 1:
        level = logging.INFO
    else:
        level = logging.WARNING
    logger = logging.getLogger("updm_dask")
    if _handler not in logger.handlers:
        _state["level"] = logger.level  # restored by reset()
        logger.addHandler(_handler)
    logger.setLevel(level)


def reset() -> None:
    """Undo :func:`configure` when the command returns, so that a program (or a test) that
    calls ``main`` keeps its own logging set-up."""
    _state["quiet"] = False
    logger = logging.getLogger("updm_dask")
    if _handler in logger.handlers:
        logger.removeHandler(_handler)
        logger.setLevel(_state["level"] or logging.NOTSET)


def is_quiet() -> bool:
    """Whether ``-q`` was given."""
    return _state["quiet"]


def note(text: str) -> None:
    """A one-line note on stderr (stdout carries the results); nothing with ``-q``."""
    if not _state["quiet"]:
        print(text, file=sys.stderr, flush=True)


@contextlib.contextmanager
def progress(desc: str) -> Iterator[None]:
    """A tqdm bar on stderr over the dask tasks computed inside the block.

    The bar appears only when the work lasts longer than ``updm.cli.progress-delay``
    seconds, so quick answers stay clean; nothing with ``-q``. It follows computations on
    the local schedulers (a distributed cluster has its own dashboard).
    """
    if _state["quiet"]:
        yield
        return
    from tqdm.dask import TqdmCallback

    delay = float(config.get("cli.progress-delay"))
    with TqdmCallback(desc=desc, file=sys.stderr, delay=delay, leave=False, unit="task"):
        yield


def _tree_size(path: Path) -> tuple[int, int]:
    """Files and bytes below a directory."""
    files = size = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                size += os.stat(os.path.join(root, name)).st_size
                files += 1
    return files, size


def size_text(path: str | os.PathLike) -> str:
    """``"12,345 bytes"`` for a file, ``"N files, B bytes"`` for a folder; "" elsewhere
    (a remote location is not measured)."""
    p = Path(path)
    if p.is_file():
        return f"{p.stat().st_size:,} bytes"
    if p.is_dir():
        files, size = _tree_size(p)
        return f"{files:,} files, {size:,} bytes"
    return ""


def wrote(path: str | os.PathLike, *details: str) -> None:
    """Confirm on stdout what a command wrote: ``wrote PATH (SIZE; DETAILS...)``.

    A confirmation is a result of a writing command, so ``-q`` keeps it.
    """
    parts = [s for s in (size_text(path), *details) if s]
    print(f"wrote {path}" + (f" ({'; '.join(parts)})" if parts else ""), flush=True)
