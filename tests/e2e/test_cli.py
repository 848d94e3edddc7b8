"""The installed ``sparkimg-ml`` console script, run in a subprocess as a person would."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from sparkimg_ml import ImageUrlFeaturizer
from sparkimg_ml.cli import option_name

SCRIPT = Path(sys.executable).with_name("sparkimg-ml")


def run(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    # A clean environment: the command must set PYSPARK_PYTHON for its local workers itself.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYSPARK_")
           and key not in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED")}  # the test session's Connect mode
    # Where the package is imported from a checkout rather than installed (the compatibility matrix's
    # pyspark 4.3 environment), there is no console script: run the module it points at.
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "sparkimg_ml.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


def assert_one_line_usage_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_console_script_is_installed():
    assert SCRIPT.exists(), f"{SCRIPT} missing: reinstall the package (make .venv/.installed-stamp)"


def test_every_featurizer_param_is_an_option(tmp_path):
    result = run("featurize", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for param in ImageUrlFeaturizer().params:
        assert re.search(rf"{option_name(param.name)}[ ,\n]", result.stdout), param.name
    assert "--size" in result.stdout and "--master" in result.stdout


@pytest.mark.parametrize("arguments, fragments", [
    (["--color-mode", "CMYK"], ["--color-mode", "colorMode must be one of"]),
    (["--size", "0", "32"], ["--image-size", "imageSize"]),
    (["--exif-transpose", "maybe"], ["--exif-transpose", "expected true or false"]),
    (["--reducing-gap", "1.5"], ["--reducing-gap", "reducingGap must be 0 (off) or a finite number >= 2.0"]),
    (["--headers", "{not json"], ["--headers", "expected a JSON object"]),
    (["--mean", "imagenet", "0.5"], ["--mean", "expected numbers or one preset"]),
    (["--bogus", "1"], ["unrecognized arguments: --bogus"]),
])
@pytest.mark.claim("The sparkimg-ml command line: featurize, preview, doctor; a mistake is one line with exit code 2")
def test_a_wrong_option_is_one_line_and_exit_code_2(tmp_path, arguments, fragments):
    result = run("featurize", "in.csv", "out.parquet", "--input-col", "url", *arguments, cwd=tmp_path)
    assert_one_line_usage_error(result, *fragments)


def test_missing_input_column_option_and_missing_input_file(tmp_path):
    assert_one_line_usage_error(run("featurize", "in.csv", "out", cwd=tmp_path), "--input-col")
    (tmp_path / "out").mkdir()
    assert_one_line_usage_error(run("featurize", "in.csv", "out", "--input-col", "url", cwd=tmp_path),
                                "already exists", "--overwrite")


@pytest.mark.claim("The sparkimg-ml command line: featurize, preview, doctor; a mistake is one line with exit code 2")
def test_doctor_reports_java_libraries_codecs_and_extras(tmp_path):
    result = run("doctor", cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"ok\s+Java (1[7-9]|[2-9]\d)", out), out
    for name in ("pyspark", "pyarrow", "Pillow", "JPEG", "WebP", "AVIF", "[fast]", "[cloud]"):
        assert name in out, name
    assert "everything needed is present" in out


def _write_site(root: Path) -> None:
    for index, color in enumerate([(0, 90, 255), (0, 180, 60), (250, 200, 0)]):
        Image.new("RGB", (12, 10), color).save(root / f"c{index}.png")
    (root / "page.png").write_text("<html>not an image</html>")


@pytest.mark.claim("The sparkimg-ml command line: featurize, preview, doctor; a mistake is one line with exit code 2")
@pytest.mark.compat
def test_featurize_writes_parquet_with_every_column_and_prints_a_summary(tmp_path, spark):
    _write_site(tmp_path)
    rows = [f"{i},{tmp_path / f'c{i}.png'},{i}" for i in range(3)]
    rows += [f"3,{tmp_path / 'missing.png'},3", f"4,{tmp_path / 'page.png'},4"]
    (tmp_path / "images.csv").write_text("id,path,label\n" + "\n".join(rows) + "\n")
    result = run("featurize", "images.csv", "features.parquet", "--input-col", "path", "--size", "4", "4",
                 "--color-mode", "L", "--master", "local[2]", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert re.search(r"featurized 5 rows in [0-9.]+ s \([0-9.]+ images/s\)", out), out
    assert "2 of 5 rows failed (image_error)" in out
    assert re.search(r"not_found\s+1", out) and re.search(r"decode\s+1", out)
    assert "output: features.parquet" in out

    written = spark.read.parquet(str(tmp_path / "features.parquet")).orderBy("id").collect()
    assert list(written[0].asDict()) == ["id", "path", "label", "features", "image_error"]
    assert len(written[0]["features"]) == 16 and written[3]["features"] is None
    assert written[3]["image_error"].startswith("not_found")
    metadata = spark.read.parquet(str(tmp_path / "features.parquet")).schema["features"].metadata
    assert metadata["tensor"]["shape"] == [4, 4, 1]


def test_a_failed_job_is_one_line_exit_code_1_and_leaves_no_output(tmp_path):
    _write_site(tmp_path)
    (tmp_path / "images.csv").write_text(f"path\n{tmp_path / 'c0.png'}\n{tmp_path / 'missing.png'}\n")
    result = run("featurize", "images.csv", "out", "--input-col", "path", "--handle-invalid", "error",
                 "--master", "local[2]", cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "at org.apache" not in result.stderr, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("sparkimg-ml featurize: failed: ImageUrlFeaturizer could not read"), last
    assert "missing.png: not_found" in last
    assert not (tmp_path / "out").exists()  # a retry is not blocked by an empty folder


@pytest.mark.claim("The sparkimg-ml command line: featurize, preview, doctor; a mistake is one line with exit code 2")
def test_preview_writes_a_contact_sheet_with_failures_marked(tmp_path):
    _write_site(tmp_path)
    paths = [str(tmp_path / f"c{i}.png") for i in range(3)] + [str(tmp_path / "missing.png")]
    pq.write_table(pa.table({"path": paths, "n": list(range(4))}), tmp_path / "images.parquet")
    result = run("preview", "images.parquet", "--input-col", "path", "-o", "sheet.html", "-n", "10",
                 "--caption", "n", "--master", "local[2]", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "wrote sheet.html: 4 images, 1 failed" in result.stdout
    page = (tmp_path / "sheet.html").read_text(encoding="utf-8")
    assert page.count('data-tile="ok"') == 3 and page.count('data-tile="failed"') == 1
    assert "not_found" in page
