"""Run a small real job many times and count the crashes: a reliability loop, not a timing.

Each run is ``python -m updm_dask.cli run JOB.toml`` in a fresh process with
``PYTHONFAULTHANDLER=1`` (the driver and its worker processes then dump every thread's
stack on a fatal signal), on the four real scenes of ``examples/ethiopia-167055.toml``,
taken in turn as

- ``folders``: the scene folders themselves;
- ``archive``: the same scenes packed into one .tar.gz (bands read through GDAL's
  ``/vsitar/``, whose handles stay open per thread until the worker exits);
- ``broken``: the folders with one band file truncated (that scene fails while its pixels
  are read: exit code 1 expected).

Odd runs start a new cube (discover, process, commit, rebuild the per-year layers); even
runs resume the previous run's cube (nothing left to do), so both the busy and the idle
shutdown paths are taken; every other pair draws the progress bar. A run counts as a
crash when it ends by a signal (a negative return code, e.g. -11 for SIGSEGV), when any of
its processes wrote a faulthandler dump ("Fatal Python error"), or when it does not exit
within ``--timeout`` seconds; an exit code other than the expected one is reported too.

Usage::

    python benchmarks/exit_loop.py [--runs 40] [--timeout 300] [--data DIR] [--keep DIR]

The data folder is ``--data``, else ``UPDM_SHARED_DATA``, else ``../shared/data`` beside
the repository. The script prints one line per run and a summary ("crashes: k of N
runs"), saves the stderr of every bad run under ``--keep`` (default: a temporary folder
that is kept only when a run went wrong) and exits 1 when any run crashed.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = REPO_ROOT / "examples" / "ethiopia-167055.toml"
SCENES = Path("landsat") / "ethiopia-167055"


#: The inputs a run takes in turn, and the exit code each should end with.
VARIANTS = {"folders": 0, "archive": 0, "broken": 1}


@dataclass(frozen=True)
class Run:
    """One run of the job: how it ended."""

    number: int
    kind: str  # "<variant>, new cube" or "<variant>, resume"
    returncode: int | None  # None: killed after the timeout
    seconds: float
    fatal: bool  # a faulthandler dump ("Fatal Python error") in its stderr
    stderr: str
    expected: int = 0

    @property
    def unexpected(self) -> bool:
        """Exited normally, but not with the code its variant should end with."""
        return not self.crashed and self.returncode != self.expected

    @property
    def crashed(self) -> bool:
        """Ended by a signal, dumped a fatal error, or hung."""
        return self.returncode is None or self.returncode < 0 or self.fatal

    def describe(self) -> str:
        """``run 3 (resume): exit 0 in 7.1 s`` or what went wrong."""
        if self.returncode is None:
            end = "HUNG (killed after the timeout)"
        elif self.returncode < 0:
            try:
                end = f"killed by {signal.Signals(-self.returncode).name}"
            except ValueError:
                end = f"killed by signal {-self.returncode}"
        else:
            end = f"exit {self.returncode}"
        if self.fatal:
            end += ", fatal error dumped"
        if self.unexpected:
            end += f" (expected exit {self.expected})"
        return f"run {self.number} ({self.kind}): {end} in {self.seconds:.1f} s"


def find_data(explicit: str | None = None) -> Path:
    """The shared data folder (``--data``, ``UPDM_SHARED_DATA``, ``../shared/data``)."""
    candidates = [explicit, os.environ.get("UPDM_SHARED_DATA"), REPO_ROOT.parent / "shared/data"]
    for candidate in candidates:
        if candidate and (Path(candidate) / SCENES).is_dir():
            return Path(candidate).resolve()
    raise SystemExit(f"no {SCENES} under --data, UPDM_SHARED_DATA or ../shared/data")


def make_inputs(data: Path, workdir: Path) -> dict[str, Path]:
    """The input of every variant: the real folders, a .tar.gz of them, a broken copy."""
    import tarfile

    scenes = data / SCENES
    archive = workdir / "inputs" / "ethiopia-167055.tar.gz"
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz") as tar:
        for folder in sorted(scenes.iterdir()):
            tar.add(folder, arcname=folder.name)
    broken = workdir / "inputs" / "broken"
    shutil.copytree(scenes, broken)
    # Half of one band of the Collection-1 TM scene: its header opens, its pixels do not.
    band = next(broken.glob("LT05_*/*_B3.TIF"))
    band.write_bytes(band.read_bytes()[: band.stat().st_size // 2])
    return {"folders": scenes, "archive": archive, "broken": broken}


def write_job(inputs: Path, folder: Path) -> Path:
    """The example job, reading ``inputs`` into a cube in ``folder``."""
    text = EXAMPLE.read_text(encoding="utf-8")
    text = re.sub(r"paths = \[.*\]", f"paths = [{str(inputs)!r}]", text)
    text = re.sub(r'path = ".*\.icechunk"', f"path = {str(folder / 'cube.icechunk')!r}", text)
    job = folder / "job.toml"
    job.write_text(text.replace("'", '"'), encoding="utf-8")
    return job


def run_once(job: Path, number: int, kind: str, timeout: float, *, progress: bool) -> Run:
    """Run the job in a fresh interpreter, as ``updm run`` does."""
    env = dict(os.environ, PYTHONFAULTHANDLER="1", ICECHUNK_LOG="error")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "updm_dask.cli", "run", str(job)]
    if not progress:
        cmd.append("--no-progress")
    started = time.perf_counter()
    # A new session, so that a hung run can be stopped together with its worker processes.
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, err = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        code = None
    seconds = time.perf_counter() - started
    return Run(number, kind, code, seconds, "Fatal Python error" in err, err)


def loop(
    runs: int,
    data: Path,
    workdir: Path,
    timeout: float,
    echo=print,
    variants: tuple[str, ...] = tuple(VARIANTS),
) -> list[Run]:
    """``runs`` runs of the job (new cube, resume, new cube, ...) under ``workdir``."""
    inputs = make_inputs(data, workdir)
    results = []
    folder = workdir
    variant = variants[0]
    for number in range(1, runs + 1):
        pair = (number - 1) // 2
        if number % 2 == 1:
            variant = variants[pair % len(variants)]
            folder = workdir / f"cube-{number}"
            folder.mkdir(parents=True)
            kind = f"{variant}, new cube"
        else:
            kind = f"{variant}, resume"
        job = write_job(inputs[variant], folder)
        run = run_once(job, number, kind, timeout, progress=pair % 2 == 1)
        run = dataclasses.replace(run, expected=VARIANTS[variant])
        results.append(run)
        echo(run.describe())
        if number % 2 == 0 and not run.crashed:
            shutil.rmtree(folder, ignore_errors=True)  # keep the disk use of a long loop flat
    return results


def main(argv: list[str] | None = None) -> int:
    """Command line: run the loop, print a summary, exit 1 on any crash."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="number of runs (default 40)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    parser.add_argument("--data", help="shared data folder (default: see above)")
    parser.add_argument("--keep", help="folder for the stderr of bad runs")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    data = find_data(args.data)
    workdir = Path(tempfile.mkdtemp(prefix="updm-exit-loop-"))
    try:
        results = loop(args.runs, data, workdir, args.timeout)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    bad = [r for r in results if r.crashed or r.unexpected]
    crashes = sum(r.crashed for r in results)
    print(f"crashes: {crashes} of {len(results)} runs; unexpected exit codes: {len(bad) - crashes}")
    if bad:
        keep = Path(args.keep or tempfile.mkdtemp(prefix="updm-exit-loop-stderr-"))
        keep.mkdir(parents=True, exist_ok=True)
        for r in bad:
            (keep / f"run-{r.number}.stderr.txt").write_text(r.stderr, encoding="utf-8")
        print(f"stderr of the bad runs: {keep}")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
