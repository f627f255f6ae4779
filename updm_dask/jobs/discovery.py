"""Finding a job's scenes: its inputs (folders, globs, archives, URLs) and STAC sources,
read only under its input roots, filtered by its sensors and time range, one product kept
per scene id; what cannot be read is reported as a failed scene, not raised.
"""

from __future__ import annotations

import os

from ..messages import redact
from ..scenes import SceneSource, discover_scenes, discover_stac, input_roots
from ..scenes.discover import preference_reason, select_scenes
from .report import DuplicateScene, SceneFailure
from .spec import JobSpec


def _product(source: SceneSource) -> str:
    return f"{source.id} ({source.mtl_path})"


def _discover(
    spec: JobSpec,
) -> tuple[list[SceneSource], list[SceneFailure], list[DuplicateScene]]:
    scenes: list[SceneSource] = []
    problems: list[tuple[str, str]] = []
    filters = {"sensors": spec.sensors, "start": spec.start, "end": spec.end}
    # Local files are read only under what the spec names: its inputs and allow_roots.
    roots = [root for item in spec.inputs for root in input_roots(item)]
    roots += [os.path.realpath(root) for root in spec.allow_roots]
    if spec.inputs:
        found = discover_scenes(list(spec.inputs), allow_roots=spec.allow_roots, **filters)
        scenes += found.scenes + found.duplicates
        problems += found.problems
    stac_sources = [(stac, None) for stac in spec.stac]
    if spec.stac_search is not None:
        search = {k: v for k, v in spec.stac_search.items() if k != "url"}
        stac_sources.append((spec.stac_search["url"], search))
    for stac, search in stac_sources:
        found = discover_stac(stac, search=search, roots=roots, sign=spec.sign, **filters)
        scenes += found.scenes + found.duplicates
        problems += found.problems
    merged = select_scenes(scenes, problems)
    failures = [
        SceneFailure(where, "discover", redact(message)) for where, message in merged.problems
    ]
    used = {s.scene_id: s for s in merged.scenes}
    duplicates = [
        DuplicateScene(
            d.scene_id,
            redact(_product(used[d.scene_id])),
            redact(_product(d)),
            preference_reason(used[d.scene_id], d),
        )
        for d in merged.duplicates
        # The same file reached through two inputs is no choice between products.
        if d.mtl_path != used[d.scene_id].mtl_path
    ]
    return merged.scenes, failures, duplicates
