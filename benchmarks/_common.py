"""Helpers shared by the benchmark scripts of ``benchmarks/``.

- :func:`environment`: what the numbers were measured on (CPU model, cores, RAM, load,
  library versions), so that a table read later can be judged;
- :func:`row` and :func:`format_rows`: the protocol's result rows and their table;
- :func:`interleave`: repeats of several timed cases, taken round by round so that every
  case sees the same machine load, and :func:`median`;
- :class:`TaskLog`: a dask callback of the local schedulers that counts the tasks run and
  adds up their time by kind (read, process, write ...);
- :func:`demo_archive`: generated demo archives (real GeoTIFF + MTL scenes), cached in a
  temporary folder between runs, since a 2048 x 2048 archive takes a minute to write;
  :func:`warm_up_pipeline` compiles the kernels once before worker processes start;
- :func:`stored_chunk_bytes`: bytes of the stored chunks of one array of an Icechunk session;
- :func:`bench_main`: the command line every ``bench_*.py`` shares (``--quick``, ``--json``).

The scripts run as ``python benchmarks/bench_x.py`` (this folder is then on ``sys.path``)
or are imported by ``run_all.py`` and the smoke test.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Icechunk warns on stderr about local-filesystem storage every time a repository opens; a
# benchmark opens dozens. The package's CLI quiets it the same way; ICECHUNK_LOG still wins,
# and worker processes inherit the variable.
os.environ.setdefault("ICECHUNK_LOG", "error")

import icechunk

icechunk.set_logs_filter(os.environ["ICECHUNK_LOG"])

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Environment variable naming the folder of cached demo archives.
CACHE_ENV = "UPDM_BENCH_CACHE"


# --------------------------------------------------------------------------------------
# Rows and tables


def row(
    measure: str,
    value: float,
    unit: str,
    target: str | None = None,
    met: bool | None = None,
) -> dict[str, Any]:
    """One result row of the benchmark protocol."""
    return {
        "measure": measure,
        "value": float(value),
        "unit": unit,
        "target": target,
        "met": None if met is None else bool(met),
    }


def format_value(value: float) -> str:
    """A number for a table: 4 significant digits, thousands separated when large."""
    if not isinstance(value, int | float) or math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if abs(value) >= 1e4:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def met_text(met: bool | None) -> str:
    """``yes``, ``NO`` or blank."""
    return "" if met is None else ("yes" if met else "NO")


def format_rows(rows: Sequence[Mapping[str, Any]], first: str | None = None) -> str:
    """Rows as an aligned text table: [first |] measure | value | unit | target | met.

    ``first`` names an extra leading column taken from each row's ``first`` key (the
    combined runner puts the benchmark name there).
    """
    header = ["measure", "value", "unit", "target", "met"]
    table = [
        [
            str(r["measure"]),
            format_value(r["value"]),
            str(r.get("unit") or ""),
            str(r.get("target") or ""),
            met_text(r.get("met")),
        ]
        for r in rows
    ]
    if first is not None:
        header = [first, *header]
        table = [[str(r.get("first", "")), *line] for r, line in zip(rows, table, strict=True)]
    widths = [max(len(h), *(len(line[i]) for line in table)) for i, h in enumerate(header)]
    value_col = header.index("value")

    def fmt(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if i == value_col else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return " | ".join(parts).rstrip()

    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *(fmt(line) for line in table)])


# --------------------------------------------------------------------------------------
# What the numbers were measured on


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
    except ImportError:
        return None
    return getattr(mod, "__version__", None)


def environment() -> dict[str, Any]:
    """CPU model, cores, RAM, load average and the versions that matter, as a dict."""
    import psutil

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    versions = {
        m: _version(m)
        for m in (
            "numpy",
            "scipy",
            "dask",
            "distributed",
            "xarray",
            "zarr",
            "icechunk",
            "rasterio",
            "updm_dask",
        )
    }
    with contextlib.suppress(ImportError):
        import rasterio

        versions["gdal"] = rasterio.__gdal_version__
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "cores_usable": usable,
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_1_5_15": [round(v, 2) for v in load],
        "versions": versions,
        # settings that change the numbers; a folder's path says nothing of the machine
        # and would put this machine's layout into saved results
        "threads_env": {
            k: ("(a path)" if os.sep in v else v)
            for k, v in os.environ.items()
            if k.startswith(("OPENBLAS", "OMP_", "MKL_", "DASK_", "UPDM_"))
        },
    }


def cpu_steal_seconds(stat: str | os.PathLike = "/proc/stat") -> float | None:
    """CPU seconds the hypervisor gave to other guests since boot, summed over the cores.

    On a shared virtual machine this time is taken from the benchmark without showing in
    the load average; its growth during a run says how much the run was disturbed. None
    where the kernel does not report it (not Linux, or a kernel without the field).
    """
    try:
        with open(stat, encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return None
    # "cpu user nice system idle iowait irq softirq steal ...", in clock ticks
    if len(fields) < 9 or fields[0] != "cpu":
        return None
    return int(fields[8]) / os.sysconf("SC_CLK_TCK")


def steal_since(start: float | None) -> float | None:
    """CPU steal seconds since ``start`` (a :func:`cpu_steal_seconds` reading); None when
    either reading is unknown."""
    now = cpu_steal_seconds()
    return None if start is None or now is None else now - start


def describe_environment(env: Mapping[str, Any]) -> str:
    """One line of :func:`environment`."""
    v = env.get("versions", {})
    load = env.get("load_average_1_5_15", [])
    return (
        f"{env.get('cpu_model')}; {env.get('cores_usable')} usable cores "
        f"({env.get('cores_physical')} physical); {env.get('ram_gib')} GiB RAM; "
        f"load {', '.join(str(x) for x in load)}; Python {env.get('python')}, "
        + ", ".join(f"{k} {val}" for k, val in v.items() if val)
    )


# --------------------------------------------------------------------------------------
# Timing


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence, as a float."""
    return float(statistics.median(values))


def timed(fn: Callable[[], Any]) -> float:
    """Seconds one call of ``fn`` takes."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleave(
    cases: Mapping[str, Callable[[], float]], repeats: int | Mapping[str, int]
) -> dict[str, list[float]]:
    """Run every case once per round; each case returns its own seconds.

    ``repeats`` is the number of rounds, or per case (a case with fewer repeats sits out
    the last rounds). Cases time themselves, so that their set-up (a fresh cube, say)
    stays out of the number. Taking the cases round by round, rather than all repeats of
    one case and then the next, spreads a change of machine load over all of them.
    """
    wanted = {n: (repeats if isinstance(repeats, int) else repeats[n]) for n in cases}
    times: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(max(wanted.values(), default=0)):
        for name, case in cases.items():
            if r < wanted[name]:
                times[name].append(float(case()))
    return times


class TaskLog:
    """Count the tasks a local dask scheduler runs and add up their seconds by kind.

    Use as a context manager around a compute with the threaded or synchronous scheduler.
    Times are taken when the scheduler hands a task to a thread and when it gets the
    result back (the local schedulers never hand out more tasks than they have threads),
    so they include a little scheduling latency.

    ``kinds`` maps a kind name to the substrings of task names that belong to it, tried in
    order; other tasks count as ``"other"``.
    """

    def __init__(self, kinds: Mapping[str, Sequence[str]]) -> None:
        from dask.callbacks import Callback

        self.kinds = dict(kinds)
        self.count: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self.first_start: float | None = None
        self.last_end: float | None = None
        self._started: dict[Any, float] = {}
        log = self

        class _Callback(Callback):
            def _pretask(self, key, dsk, state):
                now = time.perf_counter()
                if log.first_start is None:
                    log.first_start = now
                log._started[key] = now

            def _posttask(self, key, result, dsk, state, worker_id):
                now = time.perf_counter()
                log.last_end = now
                kind = log.kind_of(key)
                log.count[kind] += 1
                log.seconds[kind] += now - log._started.pop(key, now)

        self._callback = _Callback()

    def kind_of(self, key: Any) -> str:
        """The kind of a task key (by its name)."""
        name = key[0] if isinstance(key, tuple) else str(key)
        for kind, parts in self.kinds.items():
            if any(p in name for p in parts):
                return kind
        return "other"

    @property
    def tasks(self) -> int:
        """Number of tasks run."""
        return sum(self.count.values())

    def __enter__(self) -> TaskLog:
        self._callback.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._callback.__exit__(*exc)


# --------------------------------------------------------------------------------------
# Generated scenes, cached


@dataclass(frozen=True)
class CachedArchive:
    """A demo archive on disk: its folder, grid and scenes (as discovery finds them)."""

    root: Path
    size: int
    grid: Any  # updm_dask.geo.grid.CubeGrid
    scenes: tuple[Any, ...]  # updm_dask.scenes.SceneSource, in acquisition order

    def scene(self, sensor: str) -> Any:
        """The first scene of ``sensor`` (``"MSS"``, ``"TM"`` ...)."""
        for s in self.scenes:
            if s.metadata.sensor == sensor:
                return s
        raise LookupError(f"no {sensor} scene in the demo archive at {self.root}")

    @property
    def job_archive(self) -> Any:
        """What :func:`updm_dask.demo.demo_job_spec` needs to know of the archive."""
        from types import SimpleNamespace

        from updm_dask.demo import DemoGrid

        g = self.grid
        return SimpleNamespace(
            root=self.root,
            seed=0,
            scenes=self.scenes,
            grid=DemoGrid(crs=g.crs, transform=tuple(g.transform)[:6], shape=g.shape),
        )


def cache_dir() -> Path:
    """Where generated archives are kept (``$UPDM_BENCH_CACHE``, else the temp folder)."""
    base = os.environ.get(CACHE_ENV)
    return Path(base) if base else Path(tempfile.gettempdir()) / "updm-bench-cache"


def _generator_fingerprint() -> str:
    # A change to the generator (or the package version) must not reuse old archives.
    import updm_dask
    import updm_dask.demo

    # The generator is a package (story, forward model, writers...): hash every module of it.
    digest = hashlib.sha256()
    for module in sorted(Path(updm_dask.demo.__file__).parent.glob("*.py")):
        digest.update(module.name.encode())
        digest.update(module.read_bytes())
    digest.update(updm_dask.__version__.encode())
    return digest.hexdigest()[:12]


def demo_archive(size: int, n_scenes: int, seed: int = 0) -> CachedArchive:
    """A demo archive of ``n_scenes`` scenes on a ``size`` x ``size`` grid, cached.

    The archive is written once per (size, scenes, seed, generator version) into
    :func:`cache_dir` and reused by later runs; it is written into a private folder and
    moved into place when complete, so concurrent runs never see half an archive.
    ``n_scenes=2`` gives an MSS and a TM scene, 4 adds ETM+ (SLC-off) and OLI.
    """
    from updm_dask.demo import make_demo_archive

    base = cache_dir()
    base.mkdir(parents=True, exist_ok=True)
    final = base / f"demo-s{size}-n{n_scenes}-seed{seed}-{_generator_fingerprint()}"
    if not (final / "complete").is_file():
        part = Path(tempfile.mkdtemp(prefix=final.name + ".part-", dir=base))
        try:
            make_demo_archive(part, seed=seed, n_scenes=n_scenes, size=size)
            (part / "complete").write_text("ok\n")
            try:
                os.replace(part, final)
            except OSError:
                # another run finished the same archive first, or an incomplete one is in
                # the way; keep a complete one, replace an incomplete one
                if (final / "complete").is_file():
                    shutil.rmtree(part, ignore_errors=True)
                else:
                    shutil.rmtree(final, ignore_errors=True)
                    os.replace(part, final)
        finally:
            if part.exists():
                shutil.rmtree(part, ignore_errors=True)
    return _load_archive(final / "archive", size)


def _load_archive(root: Path, size: int) -> CachedArchive:
    from updm_dask.geo import CubeGrid
    from updm_dask.scenes import discover_scenes

    manifest = json.loads((root / "updm-demo.json").read_text())
    g = manifest["grid"]
    grid = CubeGrid(g["crs"], tuple(g["transform"]), tuple(g["shape"]))
    found = discover_scenes(str(root))
    if found.problems:
        raise RuntimeError(f"cached demo archive {root} has problems: {found.problems}")
    return CachedArchive(root, size, grid, tuple(found.scenes))


def warm_up_pipeline(archive: CachedArchive) -> None:
    """Run every scene of ``archive`` through the pipeline on a tiny window, in this process.

    The NNLS kernel and the per-year kernel are compiled (numba) on first use and cached
    on disk; doing it here first means worker processes started afterwards load the cache
    instead of each compiling them at once (which takes tens of seconds per process on a
    busy machine).
    """
    import dask

    from updm_dask.geo import CubeGrid
    from updm_dask.jobs.run import scene_on_grid

    g = archive.grid
    tiny = CubeGrid(g.crs, g.transform, (min(32, g.ny), min(32, g.nx)))
    with dask.config.set(scheduler="sync"):
        for scene in archive.scenes:
            scene_on_grid(scene, tiny, chunks=32).compute()
    # the per-year kernel likewise, in the version the rebuild runs (MVIUPD as stored codes)
    import numpy as np

    from updm_dask.cube._yearly import yearly_summary_of_stored

    none = np.zeros((1, 1), np.uint8)
    yearly_summary_of_stored(none, none, np.zeros((1, 1), np.int16))


def shared_data_dir() -> Path | None:
    """The real-data folder: ``$UPDM_SHARED_DATA``, else ``../shared/data`` of the repo."""
    env = os.environ.get("UPDM_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared" / "data")
    for c in candidates:
        if (c / "landsat").is_dir():
            return c.resolve()
    return None


@contextlib.contextmanager
def quiet_distributed(level: int = 40) -> Iterator[None]:
    """Keep distributed's INFO chatter (cluster start and stop) out of the output."""
    import logging

    logger = logging.getLogger("distributed")
    old = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(old)


@contextlib.contextmanager
def workspace(prefix: str) -> Iterator[Path]:
    """A temporary folder for cubes, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


# --------------------------------------------------------------------------------------
# Stored sizes


def stored_chunk_bytes(store: Any, name: str) -> tuple[int, int]:
    """(bytes, number) of the stored chunks of array ``name`` in a Zarr v3 store.

    Lists the array's keys through the store (an Icechunk session's ``store``, or any
    Zarr store) and asks it for the size of every chunk key (``<name>/c/...``); the
    array's metadata document is left out. Chunks never written (all fill) count zero, as
    they cost nothing on disk.
    """
    from zarr.core.sync import sync

    async def total() -> tuple[int, int]:
        size = n = 0
        async for key in store.list_prefix(f"{name}/"):
            if key.startswith(f"{name}/c/"):
                size += await store.getsize(key)
                n += 1
        return size, n

    return sync(total())


def first_call_times(snippet: str) -> dict[str, float]:
    """Seconds ``snippet`` prints for its first calls of compiled kernels, in new processes.

    ``snippet`` is Python that times the calls and prints the seconds last. It runs twice
    with one fresh numba cache folder (``NUMBA_CACHE_DIR``): first empty (compile), then
    filled by the first run (load).
    """
    import subprocess

    times = {}
    with tempfile.TemporaryDirectory(prefix="updm-numba-cache-") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for key in ("compile_s_cold_cache", "load_s_warm_cache"):
            done = subprocess.run(
                [sys.executable, "-c", snippet],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            times[key] = float(done.stdout.split()[-1])
    return times


# --------------------------------------------------------------------------------------
# Command line


def bench_main(
    run: Callable[..., dict[str, Any]],
    report: Callable[[dict[str, Any]], str],
    description: str,
    argv: list[str] | None = None,
) -> int:
    """``python benchmarks/bench_x.py [--quick] [--json PATH]``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a small, fast run (seconds)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    summary = run(quick=args.quick)
    print(report(summary))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        print(f"results written to {args.json}", file=sys.stderr)
    return 0
