"""MkDocs hooks: the generated parts of the site.

- ``<!-- generated: NAME -->`` lines are replaced by ``docs/_reference.py`` (job-spec keys
  and schema, cube schema) and by the two generators below, which read the demo cube the
  build makes (the arrays as stored, the commit metadata of a real job);
- the tutorial's pictures (``figures/*.png``) are drawn from that cube and from the real
  Ethiopian cube by ``docs/_figures.py`` into a temporary folder and added to the site,
  never committed. Built without the shared Landsat data, a page shows a note in place of
  each Ethiopian picture (so no link is broken), or, with ``UPDM_REQUIRE_DATA=1``, the
  build fails naming what is missing.
"""

from __future__ import annotations

import atexit
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))
sys.path.insert(0, str(DOCS.parent))  # the package of this source tree, not an installed one

import _figures  # noqa: E402
import _reference  # noqa: E402

_made: dict[str, Any] = {}


def _demo() -> _figures.Figures:
    # Once per build (mkdocs serve rebuilds reuse it).
    if "figures" not in _made:
        from mkdocs.exceptions import PluginError

        work = Path(tempfile.mkdtemp(prefix="updm-docs-"))
        atexit.register(shutil.rmtree, work, ignore_errors=True)
        try:
            _made["figures"] = _figures.make_figures(work)
        except _figures.MissingDataError as exc:
            # mkdocs reports a PluginError as one line and stops, without a traceback
            raise PluginError(f"docs build: {exc}") from None
    return _made["figures"]


def _cube_as_stored() -> str:
    # The arrays of a real cube as Zarr stores them: dtype on disk, fill value, chunks,
    # and the attributes that change how values read (scale, offset, units).
    from updm_dask.cube import open_cube

    group = open_cube(_demo().cube)._group()
    rows = []
    for name, array in sorted(group.arrays()):
        attrs = dict(array.attrs)
        extra = [
            f"{k}=`{attrs[k]}`"
            for k in ("scale_factor", "add_offset", "_FillValue", "missing_value", "units")
            if k in attrs
        ]
        rows.append(
            [
                f"`{name}`",
                f"`{', '.join(array.metadata.dimension_names or ())}`",
                f"`{array.dtype}`",
                f"`{array.fill_value}`",
                f"`{array.chunks}`",
                "<br>".join(extra),
            ]
        )
    return _reference._table(
        ["array", "dims", "dtype on disk", "fill", "chunks", "attributes"], rows
    )


def _cube_root_attributes() -> str:
    from updm_dask.cube import open_cube

    attrs = dict(open_cube(_demo().cube)._group().attrs)
    rows = [[f"`{k}`", _reference._code(v if k != "grid" else sorted(v))] for k, v in attrs.items()]
    return _reference._table(["attribute", "value (demo cube; for grid: its keys)"], rows)


def _commit_metadata() -> str:
    # One row per kind of commit of a real job, newest first, with every metadata key.
    from updm_dask.cube import open_cube

    rows, seen = [], set()
    for commit in open_cube(_demo().cube).history():
        meta = commit["metadata"]
        action = meta.get("action", "(repository initialised)")
        if action in seen:
            continue
        seen.add(action)
        keys = ", ".join(f"`{k}`" for k in meta)
        rows.append([f"`{action}`", _reference._cell(commit["message"]), keys])
    return _reference._table(["action", "message (demo job)", "metadata keys"], rows)


GENERATED = {
    "cube-as-stored": _cube_as_stored,
    "cube-root-attributes": _cube_root_attributes,
    "commit-metadata": _commit_metadata,
}


def on_files(files: Any, config: Any) -> Any:
    """Add the pictures drawn from the demo cube as ``figures/<name>.png``."""
    from mkdocs.structure.files import File

    for name, path in _demo().paths.items():
        files.append(File.generated(config, f"figures/{name}", abs_src_path=str(path)))
    return files


# The docstrings cross-reference in Sphinx roles (:func:`~updm_dask.query.Selection`), which
# mkdocstrings renders as the role's name before a code span: keep the code span, and for
# ``~`` (Sphinx's "show the last part") only the last dotted part.
_ROLE = re.compile(
    r":(?:py:)?(?:func|class|meth|attr|mod|data|exc|obj|const|ref):<code>(~?)([^<]*)</code>"
)


def _role(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    return f"<code>{target.rsplit('.', 1)[-1] if tilde else target}</code>"


# A picture on a line of its own: ![alt](figures/NAME.png)
_PICTURE = re.compile(r"^!\[([^\]]*)\]\(figures/([A-Za-z0-9._-]+\.png)\)[ \t]*$", re.MULTILINE)


def _missing_pictures(markdown: str, missing: dict[str, str]) -> str:
    # A picture the build could not draw becomes a note saying why: no broken image.
    def one(match: re.Match[str]) -> str:
        alt, name = match.groups()
        if name not in missing:
            return match.group(0)
        return f'!!! note "Picture not built: {alt}"\n    {missing[name]}'

    return _PICTURE.sub(one, markdown)


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    """Sphinx roles of the docstrings as plain code spans."""
    return _ROLE.sub(_role, html)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Expand the ``<!-- generated: NAME -->`` lines of a page; notes for missing pictures."""
    markdown = _missing_pictures(markdown, _demo().missing)
    return _reference.expand(markdown, page.file.src_uri, GENERATED)
