"""Run every benchmark of ``benchmarks/`` and print their rows as ONE table.

Each ``bench_<name>.py`` of this folder follows the protocol: ``run(quick=False) -> dict``
with ``"benchmark"`` and ``"rows"`` ({measure, value, unit, target, met}); this script
imports every one of them in turn (a script without ``run`` is listed as skipped), runs
them one after the other (never two at once: they time the machine),
prints one table -- benchmark | measure | value | unit | target | met, every ratio next to
its target -- and writes everything, with a description of the machine, to
``benchmarks/results/latest.json``. A benchmark that fails is reported as such and the
others still run; the exit status is 1 then.

Usage::

    python benchmarks/run_all.py [--quick] [--only NAME[,NAME]] [--json PATH]

``NAME`` is the part after ``bench_`` (``kernel``, ``e2e``, ``scaling``, ``memory``,
``storage``, ``query`` ...; the module name is accepted too). ``./bootstrap bench`` runs
this script.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the bench modules import their helpers as `_common`
    sys.path.insert(0, str(HERE))

import _common  # noqa: E402

#: The order known benchmarks run in (others follow, by name): short, CPU-bound ones first.
ORDER = ("kernel", "e2e", "scaling", "memory", "storage", "query")
DEFAULT_JSON = HERE / "results" / "latest.json"
#: Scripts run on their own, not by this one: ``bench_scale_table`` repeats ``bench_job``
#: and part of ``bench_commits`` to lay every archive-scale figure side by side.
SEPARATE = ("scale_table",)


def available(folder: Path = HERE) -> list[str]:
    """Names of the ``bench_<name>.py`` scripts in ``folder``, in running order."""
    names = sorted(
        p.stem.removeprefix("bench_")
        for p in folder.glob("bench_*.py")
        if p.stem.removeprefix("bench_") not in SEPARATE
    )
    return [n for n in ORDER if n in names] + [n for n in names if n not in ORDER]


def parse_only(text: str | None, names: Sequence[str] | None = None) -> list[str]:
    """The benchmarks ``--only`` names (all of ``names`` when None), in running order.

    Raises
    ------
    ValueError
        A name that is not one of ``names`` (default :func:`available`); the message lists
        them.
    """
    names = list(available() if names is None else names)
    if text is None:
        return names
    wanted = []
    for part in text.split(","):
        name = part.strip().removeprefix("bench_").removesuffix(".py")
        if not name:
            continue
        if name not in names:
            raise ValueError(
                f"--only: unknown benchmark {part.strip()!r}; expected some of {', '.join(names)}"
            )
        wanted.append(name)
    if not wanted:
        raise ValueError(f"--only: no benchmark named; expected some of {', '.join(names)}")
    return [name for name in names if name in wanted]


def load(name: str) -> Any:
    """The module ``bench_<name>``."""
    return importlib.import_module(f"bench_{name}")


def run_one(name: str, module: Any, quick: bool) -> dict[str, Any]:
    """Run one benchmark; a failure becomes a summary with an ``error`` and no rows.

    A module without ``run`` does not follow the protocol: it is skipped, not failed.
    """
    t0 = time.perf_counter()
    if not callable(getattr(module, "run", None)):
        return {
            "benchmark": name,
            "rows": [],
            "skipped": f"bench_{name}.py has no run(quick) -> dict (not in the benchmark protocol)",
            "seconds": 0.0,
        }
    try:
        summary = dict(module.run(quick=quick))
        if not isinstance(summary.get("rows"), list):
            raise TypeError(f"bench_{name}.run() returned no 'rows' list (benchmark protocol)")
    except Exception as exc:  # one broken benchmark must not hide the others' results
        summary = {
            "benchmark": name,
            "rows": [],
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }
    summary["seconds"] = time.perf_counter() - t0
    return summary


def run_benchmarks(
    names: Sequence[str],
    quick: bool,
    modules: Mapping[str, Any] | None = None,
    echo: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the named benchmarks one after the other; the combined JSON-ready summary.

    ``modules`` maps a name to its module (default: import ``bench_<name>``).
    """
    say = echo or (lambda text: print(text, file=sys.stderr, flush=True))
    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    env = _common.environment()
    results: dict[str, Any] = {}
    for name in names:
        say(f"run_all: {name} ...")
        try:
            module = modules[name] if modules is not None else load(name)
        except Exception as exc:
            results[name] = {
                "benchmark": name,
                "rows": [],
                "error": f"cannot import bench_{name}: {type(exc).__name__}: {exc}",
                "seconds": 0.0,
            }
        else:
            steal = _common.cpu_steal_seconds()
            results[name] = run_one(name, module, quick)
            stolen = _common.steal_since(steal)
            if stolen is not None:
                results[name]["steal_seconds"] = stolen
        done = results[name]
        state = (
            f"FAILED ({done['error']})"
            if "error" in done
            else f"skipped ({done['skipped']})"
            if "skipped" in done
            else "done"
        )
        say(f"run_all: {name} {state} in {done['seconds']:.0f} s")
    return {
        "started": started.isoformat(timespec="seconds"),
        "seconds": time.perf_counter() - t0,
        "quick": quick,
        "environment": env,
        "environment_after": _common.environment()["load_average_1_5_15"],
        "benchmarks": results,
    }


def format_table(combined: Mapping[str, Any]) -> str:
    """The one table of every row, plus a header and a footer (targets met, failures)."""
    rows = []
    errors = []
    skipped = []
    for name, summary in combined["benchmarks"].items():
        for r in summary.get("rows", []):
            rows.append({**r, "first": name})
        if "error" in summary:
            errors.append(f"  {name}: FAILED: {summary['error']}")
        if "skipped" in summary:
            skipped.append(f"  {name}: {summary['skipped']}")
    env = combined.get("environment", {})
    lines = [
        f"updm_dask benchmarks{' (quick)' if combined.get('quick') else ''}, "
        f"{combined.get('started', '')}, {combined.get('seconds', 0.0):.0f} s",
        f"machine: {_common.describe_environment(env)}" if env else "machine: (not described)",
    ]
    if "environment_after" in combined:
        after = ", ".join(str(v) for v in combined["environment_after"])
        lines.append(f"load average at the end: {after}")
    lines.append("")
    lines.append(_common.format_rows(rows, first="benchmark") if rows else "(no rows)")
    with_target = [r for r in rows if r.get("met") is not None]
    met = sum(1 for r in with_target if r["met"])
    lines.append("")
    lines.append(f"targets met: {met} of {len(with_target)}")
    missed = [
        f"  {r['first']}: {r['measure']} ({r['target']})" for r in with_target if not r["met"]
    ]
    if missed:
        lines.append("targets not met:")
        lines += missed
    times = ", ".join(
        f"{name} {s.get('seconds', 0.0):.0f} s"
        + (f" (steal {s['steal_seconds']:.1f} s)" if "steal_seconds" in s else "")
        for name, s in combined["benchmarks"].items()
        if "skipped" not in s
    )
    lines.append(f"time per benchmark: {times}")
    if any("steal_seconds" in s for s in combined["benchmarks"].values()):
        lines.append(
            "steal: CPU seconds the host gave to other virtual machines during a benchmark, "
            "summed over the cores (time taken from the run that the load average does not show)"
        )
    if skipped:
        lines.append("skipped:")
        lines += skipped
    if errors:
        lines.append("failures:")
        lines += errors
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small, fast runs (a smoke test)")
    parser.add_argument(
        "--only", metavar="NAME[,NAME]", help=f"run only these of: {', '.join(available())}"
    )
    parser.add_argument(
        "--json", type=Path, default=DEFAULT_JSON, help=f"where the results go ({DEFAULT_JSON})"
    )
    args = parser.parse_args(argv)
    try:
        names = parse_only(args.only)
    except ValueError as exc:
        parser.error(str(exc))
    combined = run_benchmarks(names, args.quick)
    print(format_table(combined))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(combined, indent=1, default=str) + "\n", encoding="utf-8")
    print(f"results written to {args.json}")
    return 1 if any("error" in s for s in combined["benchmarks"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
