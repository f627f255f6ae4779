"""A process that exits while dask threads still read archive members does not crash.

Found with ``benchmarks/exit_loop.py`` and the issue's "segmentation fault after its
report": members of .tar.gz archives stay open per thread, and the exit handler that
closes them ran while a daemon thread (dask's worker threads are daemons; a task of a
failed batch can still be running when the job returns) was reading one. Closing a GDAL
dataset under a read is a use-after-free: about one such exit in two ended in SIGSEGV.

Each run here is a real interpreter that reads the members of a real .tar.gz (a scene
of ../shared/data packed in tmp_path) in eight daemon threads through the reader the
scene arrays use, and exits mid-read.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCENE = "LC08_L1TP_167055_20170308_20170317_01_T1"
READERS = """
import sys, threading, time
import numpy as np
from rasterio.windows import Window
from updm_dask.scenes.open import _read_window

def read(path):
    while True:
        _read_window(path, Window(0, 0, 64, 64), np.dtype("uint16"), "s", False, None)

for i in range(8):
    threading.Thread(target=read, args=(sys.argv[2 + i % 4],), daemon=True).start()
time.sleep(float(sys.argv[1]))
print("exiting", flush=True)
"""


@pytest.mark.slow
def test_exiting_while_daemon_threads_read_archive_members_does_not_crash(shared_data, tmp_path):
    folder = shared_data / "landsat" / "ethiopia-167055" / SCENE
    archive = tmp_path / "scene.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=SCENE)
    members = [f"/vsitar/{archive}/{SCENE}/{SCENE}_B{b}.TIF" for b in (2, 3, 4, 5)]
    env = dict(os.environ, PYTHONFAULTHANDLER="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    outcomes = []
    for run in range(8):
        delay = 0.3 + 0.05 * run  # exits at different points of the reads
        proc = subprocess.run(
            [sys.executable, "-c", READERS, str(delay), *members],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        outcomes.append((proc.returncode, "Fatal Python error" in proc.stderr))
        assert "exiting" in proc.stdout, proc.stderr[-2000:]  # the readers really ran
    assert outcomes == [(0, False)] * 8, outcomes
