"""Run a notebook top to bottom in a given directory, as the notebook tests do."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient


def execute(notebook_path: Path, workdir: Path, timeout: int = 900) -> str:
    """Execute ``notebook_path`` with ``workdir`` as its working directory; return all it printed."""
    notebook = nbformat.read(notebook_path, as_version=4)
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(workdir)}}).execute()
    return "".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
