"""The console script end to end: each test is one command that starts Spark, checked on several points at once.

Expected values come from Pillow, numpy and onnxruntime on the same files, not from the library.
"""

from __future__ import annotations

import csv
import functools
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from test_cli import run

COLORS = [(0, 90, 255), (0, 180, 60), (250, 200, 0)]


def _write_site(root: Path) -> None:
    for index, color in enumerate(COLORS):
        Image.new("RGB", (12, 10), color).save(root / f"c{index}.png")
    (root / "page.png").write_text("<html>not an image</html>")


@pytest.fixture
def site(tmp_path) -> Iterator[str]:
    """The test's folder, served over HTTP on 127.0.0.1."""
    _write_site(tmp_path)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined, method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.claim("The sparkimg-ml command line: featurize, preview, doctor; a mistake is one line with exit code 2")
@pytest.mark.compat
def test_featurize_a_url_list_with_comments_limit_stats_and_positional_output(tmp_path):
    _write_site(tmp_path)
    lines = ["# made for the test", ""] + [str(tmp_path / f"c{i}.png") for i in range(3)] + [
        str(tmp_path / "missing.png"), "  ", str(tmp_path / "page.png"), str(tmp_path / "c0.png")]
    (tmp_path / "urls.txt").write_text("\n".join(lines) + "\n")
    result = run("featurize", "urls.txt", "features.parquet", "--size", "4x2", "--color-mode", "L", "--limit", "5",
                 "--tensor-format", "uint8", "--stats-json", "stats.json", "--master", "local[2]", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert re.search(r"featurized 5 rows in [0-9.]+ s \([0-9.]+ images/s\)", out), out
    assert "2 of 5 rows failed (image_error)" in out
    assert re.search(r"not_found\s+1", out) and re.search(r"decode\s+1", out)
    assert "output: features.parquet (parquet; columns: url, features, image_error)" in out

    table = pq.read_table(tmp_path / "features.parquet").to_pylist()
    by_url = {row["url"]: row for row in table}
    assert set(by_url) == {str(tmp_path / f"c{i}.png") for i in range(3)} | {
        str(tmp_path / "missing.png"), str(tmp_path / "page.png")}  # the first 5 URLs, comments and blanks out
    for index in range(3):  # uint8 L pixels at 4x2 of a solid colour: Pillow's own luminance
        expected = np.asarray(Image.new("RGB", (2, 4), COLORS[index]).convert("L")).tobytes()
        assert by_url[str(tmp_path / f"c{index}.png")]["features"] == expected
    assert by_url[str(tmp_path / "missing.png")]["image_error"].startswith("not_found")
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["rows"] == 5 and stats["failed"] == 2 and stats["reasons"] == {"not_found": 1, "decode": 1}
    assert stats["output"] == "features.parquet" and stats["format"] == "parquet" and stats["seconds"] > 0
    assert stats["partitions"] == 4  # one-partition input spread to 2 x local[2]


def test_a_glob_of_images_to_csv_of_reasons_through_python_m(tmp_path):
    photos = tmp_path / "photos"
    (photos / "a" / "b").mkdir(parents=True)
    Image.new("RGB", (5, 5), (1, 2, 3)).save(photos / "top.png")
    Image.new("RGB", (5, 5), (1, 2, 3)).save(photos / "a" / "b" / "deep.png")
    (photos / "a" / "broken.png").write_bytes(b"not a png")
    Image.new("RGB", (5, 5), (1, 2, 3)).save(photos / "a" / "skipped.jpg")
    # A bare environment: the venv's bin first, then only the system's default PATH (spark-submit needs bash).
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.defpath}", "HOME": str(tmp_path), "COLUMNS": "100"}
    env.update({k: v for k, v in os.environ.items() if k in ("JAVA_HOME", "PYTHONPATH", "SPARK_LOCAL_IP")})
    result = subprocess.run([sys.executable, "-m", "sparkimg_ml.cli", "featurize", "photos/**/*.png", "-o",
                             "reasons", "--format", "csv", "--master", "local[2]", "-q"],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == ""  # -q: nothing but errors
    rows = []
    for part in sorted((tmp_path / "reasons").glob("part-*.csv")):
        with part.open(newline="") as handle:
            lines = list(csv.reader(handle))  # a reason holds commas: Spark quotes it
        assert lines[0] == ["path", "modificationTime", "size", "image_error"]  # input columns, the reason, no tensor
        rows += lines[1:]
    by_name = {row[0].rsplit("/", 1)[-1]: row for row in rows}
    assert set(by_name) == {"top.png", "deep.png", "broken.png"}  # **: any depth; *.png: no .jpg
    assert by_name["broken.png"][3].startswith("decode: ") and by_name["top.png"][3] == ""
    assert by_name["deep.png"][2] == str((photos / "a" / "b" / "deep.png").stat().st_size)


def test_embed_a_url_list_from_stdin_over_http_in_three_partitions(tmp_path, site):
    import onnxruntime as ort
    from onnx_models import tiny_cnn

    model = tiny_cnn(tmp_path / "tiny.onnx")
    urls = [f"{site}/c{i}.png" for i in range(3)] + [f"{site}/nothing.png"]
    result = run("embed", "-", "-o", "emb", "--model", str(model), "--output-node", "features", "--partitions",
                 "3", "--tensor-format", "array", "--stats-json", "stats.json", "--master", "local[2]",
                 cwd=tmp_path, stdin="\n".join(urls) + "\n")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "embedded 4 rows" in result.stdout and re.search(r"http_404\s+1", result.stdout), result.stdout
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["partitions"] == 3 and stats["reasons"] == {"http_404": 1} and stats["command"] == "embed"

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    rows = {row["url"]: row for row in pq.read_table(tmp_path / "emb").to_pylist()}
    for index, color in enumerate(COLORS):
        pixels = np.asarray(Image.new("RGB", (8, 8), color), dtype=np.float32) / 255.0
        expected = session.run(["features"], {"pixels": pixels.transpose(2, 0, 1)[None]})[0][0]
        np.testing.assert_allclose(rows[urls[index]]["embedding"], expected, rtol=1e-5, atol=1e-6)
    assert rows[urls[3]]["embedding"] is None and rows[urls[3]]["image_error"].startswith("http_404")


def test_a_failed_job_is_one_line_exit_code_1_and_leaves_no_output(tmp_path):
    _write_site(tmp_path)
    (tmp_path / "images.csv").write_text(f"path\n{tmp_path / 'c0.png'}\n{tmp_path / 'missing.png'}\n")
    result = run("featurize", "images.csv", "-o", "out", "--input-col", "path", "--handle-invalid", "error",
                 "--header", "--master", "local[2]", cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "at org.apache" not in result.stderr, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("sparkimg-ml featurize: failed: ImageUrlFeaturizer could not read"), last
    assert "missing.png: not_found" in last and "(reason code not_found;" in last
    assert not (tmp_path / "out").exists()  # a retry is not blocked by an empty folder


@pytest.mark.claim("The sparkimg-ml command line: featurize, preview, doctor; a mistake is one line with exit code 2")
def test_preview_writes_a_contact_sheet_with_failures_marked(tmp_path):
    _write_site(tmp_path)
    paths = [str(tmp_path / f"c{i}.png") for i in range(3)] + [str(tmp_path / "missing.png")]
    pq.write_table(pa.table({"path": paths, "n": list(range(4))}), tmp_path / "images.parquet")
    result = run("preview", "images.parquet", "--input-col", "path", "-o", "sheet.html", "-n", "10",
                 "--caption", "n", "--timeout", "5", "--master", "local[2]", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "wrote sheet.html: 4 images, 1 failed" in result.stdout
    page = (tmp_path / "sheet.html").read_text(encoding="utf-8")
    assert page.count('data-tile="ok"') == 3 and page.count('data-tile="failed"') == 1
    assert "not_found" in page
