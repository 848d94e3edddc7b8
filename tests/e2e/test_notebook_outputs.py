"""The comparison of stored and fresh notebook outputs: it masks what is volatile and nothing else."""

from __future__ import annotations

import base64
import io

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output
from notebook_runner import differences, mask, problems_in_stored
from PIL import Image
from repo_paths import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))


def _png(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _notebook(text: str, plain: str = "<ImageGrid: 3 images, 1 failed>", png: tuple = (64, 32)) -> object:
    return new_notebook(cells=[new_code_cell("x", outputs=[
        new_output("stream", name="stdout", text=text),
        new_output("execute_result", data={"text/plain": plain, "image/png": _png(*png),
                                           "text/html": "<div data-sparkimg-grid=1>...</div>"}, execution_count=1),
    ])])


STORED = "held-out accuracy: 0.951 in 12.3 s at http://127.0.0.1:45691/a.png, 6 of 606 rows failed\n"


@pytest.mark.parametrize("fresh", [
    STORED,
    "held-out accuracy: 0.944 in 30.0 s at http://127.0.0.1:38817/a.png, 6 of 606 rows failed\n",
])
def test_volatile_parts_and_metrics_within_tolerance_are_not_differences(fresh):
    assert differences(_notebook(STORED), _notebook(fresh)) == []


@pytest.mark.parametrize("fresh, reason", [
    ("held-out accuracy: 0.90 in 12.3 s at http://127.0.0.1:45691/a.png, 6 of 606 rows failed\n", "metric"),
    ("held-out accuracy: 0.951 in 12.3 s at http://127.0.0.1:45691/a.png, 7 of 606 rows failed\n", "count"),
    ("held-out accuracy: 0.951 in 12.3 s at http://127.0.0.1:45691/b.png, 6 of 606 rows failed\n", "text"),
])
def test_a_changed_metric_count_or_text_is_a_difference(fresh, reason):
    found = differences(_notebook(STORED), _notebook(fresh))
    assert len(found) == 1 and "stdout" in found[0], reason


def test_a_changed_grid_summary_or_picture_size_is_a_difference():
    assert differences(_notebook(STORED), _notebook(STORED, plain="<ImageGrid: 3 images, 0 failed>"))
    assert differences(_notebook(STORED), _notebook(STORED, png=(64, 48)))


def test_masks_replace_ports_timings_temporary_paths_and_uids():
    assert mask("http://127.0.0.1:41263/x in 17.4 s from /tmp/tmpab12/x.png, PCA_c4c98b1eb0ec") == (
        "http://127.0.0.1:<port>/x in <seconds> s from <tmp>, PCA_<uid>")


def test_a_stored_notebook_with_logs_or_temporary_paths_or_html_only_grids_is_refused():
    notebook = new_notebook(cells=[new_code_cell("x", outputs=[
        new_output("stream", name="stderr", text="26/12/05 WARN NativeCodeLoader: ...\n"),
        new_output("stream", name="stdout", text="saved to /tmp/tmpx/model\n"),
        new_output("execute_result", data={"text/html": "<div data-sparkimg-grid=1></div>", "text/plain": "g"},
                   execution_count=1),
    ])])
    problems = problems_in_stored(notebook)
    assert len(problems) == 3
    assert "stderr" in problems[0] and "temporary path" in problems[1] and "image/png" in problems[2]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebooks_hold_clean_outputs_and_an_install_cell(path):
    notebook = nbformat.read(path, as_version=4)
    assert problems_in_stored(notebook) == []
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    install = [cell.source for cell in code if "%pip install 'sparkimg_ml[demo" in cell.source]
    assert install and all(line.startswith("#") for line in install[0].splitlines())  # never run by the tests
