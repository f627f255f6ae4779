"""Reference pages generated from the code they describe.

The docs build (``docs/_hooks.py``) replaces each ``<!-- generated: NAME -->`` line of a page
with :data:`GENERATORS` ``[NAME]()``: the job-spec keys come from
:mod:`updm_dask.jobs.keys` (the table the validator checks), the cube schema from
:mod:`updm_dask.cube._schema` (the table cubes are created from), so neither page can
disagree with the code. ``python docs/_reference.py --write-schema`` rewrites
``docs/job-spec.schema.json`` (a test checks that it equals :func:`job_spec_schema`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
SCHEMA_FILE = DOCS / "job-spec.schema.json"
MARKER = re.compile(r"^<!-- generated: ([a-z0-9-]+) -->$", re.MULTILINE)


def schema_text() -> str:
    """The JSON Schema of job specs as ``docs/job-spec.schema.json`` holds it."""
    from updm_dask.jobs.keys import job_spec_schema

    return json.dumps(job_spec_schema(), indent=2, ensure_ascii=False) + "\n"


def _cell(value: Any) -> str:
    # A Markdown table cell: one line, pipes escaped.
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text.replace("|", "\\|").replace("\n", " ")


def _code(value: Any) -> str:
    return f"`{_cell(value)}`" if value not in ("", None) else ""


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def job_spec_keys() -> str:
    """Every job-spec key, section by section: the validator's own table."""
    from updm_dask.jobs.keys import format_job_spec_keys

    return format_job_spec_keys()


def job_spec_sections() -> str:
    """A complete example spec: every key with its example value (the table's examples)."""
    from updm_dask.jobs.keys import KEYS_BY_SECTION

    lines = []
    for section, keys in KEYS_BY_SECTION.items():
        lines.append(f"[{section}]")
        lines += [f"{k.key} = {k.example}" for k in keys.values()]
        lines.append("")
    return "```toml\n" + "\n".join(lines).rstrip() + "\n```"


def job_spec_schema_block() -> str:
    """The JSON Schema, as a code block."""
    return "```json\n" + schema_text().rstrip() + "\n```"


def _variables(variables: Mapping[str, Any], dims: str) -> str:
    # Every field of VarSpec and every attribute: a field or attribute added to the schema
    # (a scale factor, a new fill value) shows up here without an edit.
    fields = [f.name for f in dataclasses.fields(next(iter(variables.values())))]
    named = ("long_name", "units")
    rows = []
    for name, spec in variables.items():
        attrs = dict(getattr(spec, "attrs", {}) or {})
        others = [
            f"{f}={_code(getattr(spec, f))}" for f in fields if f not in ("dtype", "fill", "attrs")
        ]
        others += [f"{k}={_code(v)}" for k, v in attrs.items() if k not in named]
        rows.append(
            [
                f"`{name}`",
                dims,
                _code(getattr(spec, "dtype", "")),
                _code(getattr(spec, "fill", "")),
                _code(attrs.get("units", "")),
                _cell(attrs.get("long_name", "")),
                "<br>".join(others),
            ]
        )
    return _table(["variable", "dims", "dtype", "fill", "units", "long_name", "other"], rows)


def cube_scene_variables() -> str:
    """The scene-level variables (``SCENE_VARIABLES``)."""
    from updm_dask.cube._schema import SCENE_VARIABLES

    return _variables(SCENE_VARIABLES, "(time, y, x)")


def cube_yearly_variables() -> str:
    """The per-year variables (``YEARLY_VARIABLES``)."""
    from updm_dask.cube._schema import YEARLY_VARIABLES

    return _variables(YEARLY_VARIABLES, "(year, y, x)")


def cube_coordinates() -> str:
    """The per-scene string coordinates (``STR_COORDS``) and the other coordinates."""
    from updm_dask.cube import _schema

    rows = [[f"`{n}`", "(time,)", "`str`", _cell(d)] for n, d in _schema.STR_COORDS.items()]
    rows += [
        [f"`{n}`", "(time,)", "", "per-scene coordinate"]
        for n in _schema.TIME_COORDS
        if n not in _schema.STR_COORDS
    ]
    return _table(["coordinate", "dims", "dtype", "long_name"], rows)


def cube_quality_bits() -> str:
    """The quality bits, from the masks module the scenes are flagged with."""
    from updm_dask.cube import _schema
    from updm_dask.science.masks import FLAG_MASKS, FLAG_MEANINGS

    rows = [
        [
            f"`{bit}`",
            f"{bit.bit_length() - 1}",
            f"`{name}`",
            "yes" if bit & _schema.QUALITY_NOT_CLEAR else "",
        ]
        for bit, name in zip(FLAG_MASKS, FLAG_MEANINGS.split(), strict=True)
    ]
    return _table(["value", "bit", "meaning", "not clear"], rows)


def cube_land_cover_classes() -> str:
    """The land-cover codes (CF flag_values / flag_meanings)."""
    from updm_dask.cube._schema import CLEAR_CLASSES, LAND_COVER_CLASSES
    from updm_dask.science.classify import CLASS_LONG_NAMES

    rows = [
        [
            f"`{code}`",
            f"`{name}`",
            CLASS_LONG_NAMES.get(name, ""),
            "yes" if code in CLEAR_CLASSES else "",
        ]
        for code, name in LAND_COVER_CLASSES.items()
    ]
    return _table(["code", "name", "meaning", "clear"], rows)


def cube_constants() -> str:
    """Format version, marker attribute, time encoding, chunking defaults."""
    from updm_dask import config
    from updm_dask.cube import _schema, _tiles

    get = config.get
    rows = [
        [f"cube format version (root attribute `{_schema.MARKER}`)", _code(_schema.CUBE_FORMAT)],
        ["time on disk", _code(_schema.TIME_UNITS) + " (int64)"],
        ["chunk of the per-scene coordinates", _code(_schema.TIME_CHUNK)],
        ["scene-level chunks (time, y, x)", f"`(1, C, C)`, `updm.chunks.cube` = C = "
         f"{_code(get('chunks.cube'))}, clipped to the grid"],
        ["per-year chunks (year, y, x)", f"`updm.chunks.yearly-years` = "
         f"{_code(get('chunks.yearly-years'))} years, `updm.chunks.yearly` = "
         f"{_code(get('chunks.yearly'))} pixels"],
        ["compression", f"Zstandard, `updm.compression.zstd-level` = "
         f"{_code(get('compression.zstd-level'))}"],
        ["tiling", f"a grid larger than one tile of `updm.tiles.edge` = "
         f"{_code(get('tiles.edge'))} pixels (or the job's `[tiles] edge`) is a tiled "
         "collection: one cube as on this page per tile at `tiles/r{i}c{j}/`, and a catalogue "
         f"at `catalogue/` (root attribute `{_tiles.COLLECTION_MARKER}` = "
         f"{_code(_tiles.COLLECTION_FORMAT)}: grid, tile edge, tiles present, every tile's "
         "snapshot at the last tag); see [tiled collections](howto/tiles.md)"],
    ]  # fmt: skip
    return _table(["what", "value"], rows)


#: name of a ``<!-- generated: NAME -->`` marker -> the function that writes its Markdown.
GENERATORS: dict[str, Callable[[], str]] = {
    "job-spec-keys": job_spec_keys,
    "job-spec-example": job_spec_sections,
    "job-spec-schema": job_spec_schema_block,
    "cube-scene-variables": cube_scene_variables,
    "cube-yearly-variables": cube_yearly_variables,
    "cube-coordinates": cube_coordinates,
    "cube-quality-bits": cube_quality_bits,
    "cube-land-cover-classes": cube_land_cover_classes,
    "cube-constants": cube_constants,
}


def expand(markdown: str, where: str, extra: Mapping[str, Callable[[], str]] | None = None) -> str:
    """Replace every ``<!-- generated: NAME -->`` line; an unknown NAME is an error.

    Parameters
    ----------
    markdown : str
    where : str
        The page, for the error message.
    extra : mapping
        More generators (the build's, which need the demo cube).
    """
    known = {**GENERATORS, **(extra or {})}

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in known:
            raise ValueError(
                f"{where}: unknown generated section {name!r}; expected one of {', '.join(known)}"
            )
        return known[name]()

    return MARKER.sub(one, markdown)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generated parts of the docs.")
    parser.add_argument("--write-schema", action="store_true", help=f"rewrite {SCHEMA_FILE.name}")
    args = parser.parse_args(argv)
    if args.write_schema:
        SCHEMA_FILE.write_text(schema_text(), encoding="utf-8")
        print(f"wrote {SCHEMA_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
