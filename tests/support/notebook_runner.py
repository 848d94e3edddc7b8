"""Run a notebook top to bottom in a given directory, and compare its outputs with the committed ones.

The notebook tests execute each notebook in a fresh directory and fail when what it shows now differs
from what is stored in ``notebooks/*.ipynb`` in what matters: printed text and metadata, failure
reports, tables and grid summaries, with metrics compared within a tolerance and volatile parts
(loopback ports, timings, temporary paths, uids) masked. ``make notebooks`` re-executes them and
writes the fresh outputs back::

    python tests/support/notebook_runner.py notebooks/*.ipynb
"""

from __future__ import annotations

import base64
import io
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

#: Relative tolerance (and absolute floor) for decimal numbers such as accuracies.
FLOAT_TOLERANCE = 0.02
#: Volatile text, replaced before comparing: (pattern, replacement).
MASKS: tuple[tuple[str, str], ...] = (
    (r"127\.0\.0\.1:\d+", "127.0.0.1:<port>"),
    (r"localhost:\d+", "localhost:<port>"),
    (r"\d+(\.\d+)? s\b", "<seconds> s"),
    (r"(/private)?/(tmp|var/folders)/[^\s'\",)]*", "<tmp>"),
    (r"(?<![0-9a-f])(?=[0-9]*[a-f])[0-9a-f]{12}(?![0-9a-f])", "<uid>"),  # Spark ML uids: PCA_c4c98b1eb0ec
    (r"0x[0-9a-f]+", "<address>"),
)
_NUMBER = re.compile(r"-?\d+\.\d+(?:e[-+]?\d+)?|-?\d+e[-+]?\d+")


def run(notebook_path: Path, workdir: Path, timeout: int = 900) -> Any:
    """Execute ``notebook_path`` with ``workdir`` as its working directory; return the executed notebook."""
    notebook = nbformat.read(notebook_path, as_version=4)
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(workdir)}}).execute()
    return notebook


def printed(notebook: Any) -> str:
    """All the text a notebook's code cells printed (stdout and stderr streams)."""
    return "".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


def execute(notebook_path: Path, workdir: Path, timeout: int = 900) -> str:
    """Execute ``notebook_path`` with ``workdir`` as its working directory; return all it printed."""
    return printed(run(notebook_path, workdir, timeout))


def _png_size(data: str) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(data))) as image:
        return image.size


def summary(notebook: Any) -> list[list[tuple[str, Any]]]:
    """What matters in each code cell's outputs, in order.

    stdout text and ``text/plain`` results (masked); for a picture its pixel size; for HTML only that
    it is there (its bytes are base64 thumbnails, checked through the ``text/plain`` and PNG forms).
    stderr (JVM and torch logs) is left out.
    """
    cells = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        shown: list[tuple[str, Any]] = []
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                if output.name == "stdout":
                    if shown and shown[-1][0] == "stdout":  # a print may arrive in several chunks
                        shown[-1] = ("stdout", shown[-1][1] + output.text)
                    else:
                        shown.append(("stdout", output.text))
            elif output.output_type == "error":
                shown.append(("error", f"{output.ename}: {output.evalue}"))
            else:
                data = output.get("data", {})
                for kind in sorted(data):
                    if kind == "image/png":
                        shown.append((kind, _png_size(data[kind])))
                    elif kind == "text/html":
                        shown.append((kind, "present"))
                    else:
                        shown.append((kind, data[kind]))
        cells.append([(kind, mask(value) if isinstance(value, str) else value) for kind, value in shown])
    return cells


def mask(text: str) -> str:
    """``text`` with its volatile parts replaced (see :data:`MASKS`)."""
    for pattern, replacement in MASKS:
        text = re.sub(pattern, replacement, text)
    return text


def _same_text(stored: str, fresh: str) -> bool:
    """Equal text, except that decimal numbers may differ by :data:`FLOAT_TOLERANCE` (relative, with that
    absolute floor); integers and every other character must be equal."""
    if _NUMBER.split(stored) != _NUMBER.split(fresh):
        return False
    for a, b in zip(_NUMBER.findall(stored), _NUMBER.findall(fresh)):
        x, y = float(a), float(b)
        if abs(x - y) > FLOAT_TOLERANCE * max(1.0, abs(x), abs(y)):
            return False
    return True


def differences(stored: Any, fresh: Any) -> list[str]:
    """Where ``fresh``'s outputs differ from ``stored``'s in what matters; empty when they agree."""
    found = []
    old, new = summary(stored), summary(fresh)
    if len(old) != len(new):
        return [f"{len(old)} code cells stored, {len(new)} now"]
    for index, (a, b) in enumerate(zip(old, new)):
        if [kind for kind, _ in a] != [kind for kind, _ in b]:
            found.append(f"code cell {index + 1}: outputs {[k for k, _ in a]} stored, {[k for k, _ in b]} now")
            continue
        for (kind, x), (_, y) in zip(a, b):
            same = _same_text(x, y) if isinstance(x, str) and isinstance(y, str) else x == y
            if not same:
                found.append(f"code cell {index + 1}, {kind}:\n--- stored\n{x}\n--- now\n{y}")
    return found


def problems_in_stored(notebook: Any) -> list[str]:
    """Things a committed notebook must not hold: log output, temporary paths, errors, stale code."""
    found = []
    for index, cell in enumerate(c for c in notebook.cells if c.cell_type == "code"):
        for output in cell.get("outputs", []):
            if output.output_type == "stream" and output.name == "stderr":
                found.append(f"code cell {index + 1}: stderr output {output.text[:80]!r}")
            if output.output_type == "error":
                found.append(f"code cell {index + 1}: error {output.ename}")
            texts = [output.get("text", "")] + [v for k, v in output.get("data", {}).items()
                                                if k.startswith("text/") and isinstance(v, str)]
            if any(re.search(r"/tmp/|/var/folders/", text) for text in texts):
                found.append(f"code cell {index + 1}: a temporary path in the output")
            data = output.get("data", {})
            if "text/html" in data and "sparkimg-grid" in data["text/html"] and "image/png" not in data:
                found.append(f"code cell {index + 1}: a grid without its image/png form")
    return found


def refresh(notebook_path: Path, timeout: int = 900) -> None:
    """Execute ``notebook_path`` in a scratch directory and store the fresh outputs in the file.

    stderr streams (Spark's JVM start-up lines, torch's exporter warnings) are logs, not results, and
    are not stored; execution timestamps are dropped so an unchanged run changes nothing but outputs.
    """
    with tempfile.TemporaryDirectory(prefix="notebook-") as workdir:
        notebook = run(notebook_path, Path(workdir), timeout)
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
        cell.metadata.pop("execution", None)
    problems = problems_in_stored(notebook)
    if problems:
        raise SystemExit(f"{notebook_path}: " + "; ".join(problems))
    nbformat.write(notebook, notebook_path)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"executing {name}", flush=True)
        refresh(Path(name))
