"""Run the code blocks of a document in order, as a reader would: ``_run_blocks.py BLOCKS.json``.

BLOCKS.json is a list of ``{"where": "README.md:61", "lang": ..., "code": ..., "file": ...}``
in document order. ``bash`` blocks run in ``bash -euo pipefail``; ``python`` blocks run in
one namespace shared by the document's blocks (a later block uses an earlier one's names);
a block with ``file`` is written to that file instead. The first failure stops the run
with the block's place and its output on stderr, and exit code 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from pathlib import Path

# A block that hangs fails the test instead of the suite.
BASH_TIMEOUT_S = 240


def main() -> int:
    blocks = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    namespace: dict[str, object] = {"__name__": "__main__"}
    for block in blocks:
        where, code = block["where"], block["code"]
        print(f"--- {where} ({block['lang']})", flush=True)
        if block.get("file"):
            Path(block["file"]).write_text(code, encoding="utf-8")
            continue
        if block["lang"] == "python":
            try:
                exec(compile(code, where, "exec"), namespace)
            except BaseException:
                traceback.print_exc()
                print(f"FAILED: the python block at {where}", file=sys.stderr)
                return 1
            continue
        try:
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", code],
                env=os.environ,
                stdout=sys.stdout,
                stderr=sys.stderr,
                timeout=BASH_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            print(f"FAILED: the bash block at {where} ran over {BASH_TIMEOUT_S} s", file=sys.stderr)
            return 1
        if done.returncode != 0:
            print(
                f"FAILED: the bash block at {where} exited with {done.returncode}", file=sys.stderr
            )
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
