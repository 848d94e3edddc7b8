"""Daft as a contender: its own venv (built once, cached under ``build/``) and a warm worker process.

Daft 0.7.26 needs ``pyarrow<26`` while the project runs pyarrow 26, so Daft cannot
share the benchmark's interpreter: :func:`ensure_venv` builds ``build/bench-daft-<version>``
with pip (from the configured package index) the first time and reuses it after that.
:class:`DaftWorker` starts :mod:`benchmarks.daft_worker` in that venv once per run and
sends it one JSON job per timed repeat, so Daft is measured warm, like the Spark session.
Its process is a child of the benchmark, so the process-tree CPU measurement counts it
(under the "driver" role).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import IO, Any, Self

DAFT_VERSION = "0.7.26"
#: What the Daft venv installs; Daft's own pin of pyarrow is what forces a separate venv.
REQUIREMENTS = (f"daft=={DAFT_VERSION}", "pyarrow<26", "numpy")
DEFAULT_BUILD_DIR = Path(__file__).resolve().parent.parent / "build"
WORKER = Path(__file__).resolve().parent / "daft_worker.py"


def ensure_venv(build_dir: Path = DEFAULT_BUILD_DIR, log: Any = print) -> Path:
    """The Daft venv's python, building the venv first when it is missing or incomplete."""
    venv = build_dir / f"bench-daft-{DAFT_VERSION}"
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    if stamp.exists() and stamp.read_text() == "\n".join(REQUIREMENTS):
        return python
    log(f"building the Daft venv in {venv} (once; cached for later runs) ...")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *REQUIREMENTS], check=True)
    stamp.write_text("\n".join(REQUIREMENTS))
    return python


class DaftWorker:
    """A warm Daft process: ``run(job)`` sends one job (see :mod:`benchmarks.daft_worker`) and waits."""

    def __init__(self, python: Path) -> None:
        self.python = python
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Self:
        self._proc = subprocess.Popen([str(self.python), str(WORKER)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True, bufsize=1)
        hello = self._reply()
        if not hello.get("ready"):
            raise RuntimeError(f"the Daft worker did not start: {hello}")
        self.version = hello.get("daft")
        return self

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def _reply(self) -> dict[str, Any]:
        assert self._proc is not None
        stdout: IO[str] | None = self._proc.stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"the Daft worker exited (status {self._proc.poll()})")
        return json.loads(line)

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(job) + "\n")
        self._proc.stdin.flush()
        return self._reply()

    def __exit__(self, *exc: object) -> None:
        if self._proc is None:
            return
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
