"""The installed console script, run in a subprocess as a person would: options, input checks, doctor, help.

Nothing here starts Spark except the runs in tests/e2e/test_cli_runs.py: every
check below must fail (or succeed) before a session exists, which is why the
input-problem tests pass a master Spark could not even parse.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sparkimg_ml import ImageEmbedder, ImageUrlFeaturizer
from sparkimg_ml.cli import option_name

SCRIPT = Path(sys.executable).with_name("sparkimg-ml")
#: A master Spark refuses: a command that got as far as starting Spark fails differently.
NO_SPARK = ["--master", "no-spark-was-started"]


def run(*args: str, cwd: Path, timeout: float = 300, stdin: str | None = None) -> subprocess.CompletedProcess:
    # A clean environment: the command must set PYSPARK_PYTHON for its local workers itself.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYSPARK_")
           and key not in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED")}  # the test session's Connect mode
    env["COLUMNS"] = "100"
    # Where the package is imported from a checkout rather than installed (the compatibility matrix's
    # pyspark 4.3 environment), there is no console script: run the module it points at.
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "sparkimg_ml.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env,
                          input=stdin)


def assert_one_line_usage_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_console_script_is_installed():
    assert SCRIPT.exists(), f"{SCRIPT} missing: reinstall the package (make .venv/.installed-stamp)"


def test_help_lists_every_param_as_a_flag_with_human_defaults(tmp_path):
    featurize = run("featurize", "--help", cwd=tmp_path)
    embed = run("embed", "--help", cwd=tmp_path)
    assert featurize.returncode == 0 and embed.returncode == 0, featurize.stderr + embed.stderr
    renamed = {"outputFormat": "--tensor-format"}
    for stage, result in ((ImageUrlFeaturizer(), featurize), (ImageEmbedder(), embed)):
        for param in stage.params:
            flag = renamed.get(param.name, option_name(param.name))
            assert re.search(rf"{flag}[ ,\n]", result.stdout), param.name
            if param.name != param.name.lower():  # camelCase names are written as flags in the help text
                assert not re.search(rf"\b{param.name}\b", result.stdout), param.name
    out = " ".join(featurize.stdout.split())  # help text is wrapped
    for flag in ("--size N|HxW", "-o PATH, --output PATH", "--format {parquet,csv,delta}", "--partitions N",
                 "--limit N", "--stats-json PATH", "--remote sc://HOST:PORT", "--conf KEY=VALUE", "-q, --quiet",
                 "-v, --verbose", "--header", "--no-header"):
        assert flag in out, flag
    assert "(default: 1/255)" in out and "0.0039" not in out
    assert "(default: 32x32)" in out and "(default: keep)" in out
    assert "https://sparkimg-ml.github.io/sparkimg_ml/reference/params/" in "".join(featurize.stdout.split())
    assert "README" not in out and "--output-format" not in out
    embedded = " ".join(embed.stdout.split())
    assert "--model-uri TEXT, --model TEXT" in embedded
    assert "--model-sha256" in embedded and "--output-node" in embedded
    assert "(default: from the model's input)" in embedded
    preview = " ".join(run("preview", "--help", cwd=tmp_path).stdout.split())
    assert "-q, --quiet" in preview and "-o HTML, --output HTML" in preview


@pytest.mark.parametrize("arguments, fragments", [
    (["--color-mode", "CMYK"], ["--color-mode", "--color-mode must be one of"]),
    (["--size", "0"], ["--image-size", "values must be >= 1"]),
    (["--size", "32x"], ["--image-size"]),
    (["--exif-transpose", "maybe"], ["--exif-transpose", "expected true or false"]),
    (["--reducing-gap", "1.5"], ["--reducing-gap", "--reducing-gap must be 0 (off) or a finite number >= 2.0"]),
    (["--headers", "{not json"], ["--headers", "expected a JSON object"]),
    (["--mean", "imagenet", "0.5"], ["--mean", "expected numbers or one preset"]),
    (["--tensor-format", "float64"], ["--tensor-format"]),
    (["--bogus", "1"], ["unrecognized arguments: --bogus"]),
    (["--size", "32", "32"], ["unrecognized arguments"]),  # one value: never swallows a positional
    (["--conf", "novalue"], ["--conf expects KEY=VALUE"]),
    (["--remote", "sc://h:1"], ["--remote: not allowed with argument --master"]),
    (["--limit", "0"], ["--limit must be >= 1"]),
    (["--partitions", "0"], ["--partitions must be >= 1"]),
    (["--format", "delta"], ["--format delta needs delta-spark"]),
    (["-q", "-v"], ["not allowed with argument"]),
])
@pytest.mark.claim("The sparkimg-ml command line: featurize, preview, doctor; a mistake is one line with exit code 2")
def test_a_wrong_option_is_one_line_and_exit_code_2(tmp_path, arguments, fragments):
    (tmp_path / "in.csv").write_text("url\nhttp://127.0.0.1:9/a.png\n")
    result = run("featurize", "in.csv", "out.parquet", *NO_SPARK, *arguments, cwd=tmp_path)
    assert_one_line_usage_error(result, *fragments)


def _parquet(path: Path) -> None:
    pq.write_table(pa.table({"path": ["a.png"], "n": [1]}), path)


@pytest.mark.parametrize("setup, arguments, fragments", [
    (None, ["missing.parquet", "-o", "out"], ["input 'missing.parquet' does not exist"]),
    (None, ["photos/**/*.jpg", "-o", "out"], ["nothing matches 'photos/**/*.jpg'"]),
    ("text_as_parquet", ["table.parquet", "-o", "out"], ["is not a Parquet file"]),
    ("bad_json", ["rows.json", "-o", "out"], ["is not JSON lines"]),
    ("empty_list", ["urls.txt", "-o", "out"], ["holds no URLs"]),
    ("empty_dir", ["folder", "-o", "out"], ["input folder 'folder' is empty"]),
    ("unknown", ["data.bin", "-o", "out"], ["cannot tell the format of 'data.bin'", "--input-format"]),
    ("csv", ["table.csv", "-o", "out", "--input-col", "image"], ["--input-col 'image' is not a column", "url, n"]),
    ("csv", ["table.csv", "-o", "out"], ["--input-col is required", "columns: url, n"]),
    ("parquet", ["table.parquet", "-o", "out", "--input-col", "url"], ["--input-col 'url' is not a column",
                                                                      "path, n"]),
    ("csv", ["table.csv", "-o", "out", "--input-col", "url", "--size", "-3"], ["--image-size"]),
    ("csv_and_out", ["table.csv", "out", "--input-col", "url"], ["already exists", "--overwrite"]),
    ("csv", ["table.csv", "one", "-o", "two", "--input-col", "url"], ["two outputs"]),
    ("csv", ["table.csv", "--input-col", "url"], ["give the output with -o/--output"]),
])
def test_input_problems_fail_before_spark_starts(tmp_path, setup, arguments, fragments):
    if setup == "text_as_parquet":
        (tmp_path / "table.parquet").write_text("url\nhttp://h/a.png\n")
    elif setup == "bad_json":
        (tmp_path / "rows.json").write_text("url,n\n")
    elif setup == "empty_list":
        (tmp_path / "urls.txt").write_text("# nothing yet\n\n")
    elif setup == "empty_dir":
        (tmp_path / "folder").mkdir()
    elif setup == "unknown":
        (tmp_path / "data.bin").write_bytes(b"\x00\x01")
    elif setup in ("csv", "csv_and_out"):
        (tmp_path / "table.csv").write_text("url,n\nhttp://h/a.png,1\n")
        if setup == "csv_and_out":
            (tmp_path / "out").mkdir()
    elif setup == "parquet":
        _parquet(tmp_path / "table.parquet")
    assert_one_line_usage_error(run("featurize", *arguments, *NO_SPARK, cwd=tmp_path), *fragments)


def test_embed_checks_its_model_before_spark_starts(tmp_path):
    from onnx_models import tiny_cnn

    (tmp_path / "urls.txt").write_text("http://127.0.0.1:9/a.png\n")
    assert_one_line_usage_error(run("embed", "urls.txt", "-o", "out", *NO_SPARK, cwd=tmp_path),
                                "the following arguments are required: --model-uri/--model")
    assert_one_line_usage_error(
        run("embed", "urls.txt", "-o", "out", "--model", "missing.onnx", *NO_SPARK, cwd=tmp_path), "--model:")
    model = tiny_cnn(tmp_path / "tiny.onnx")
    wrong = hashlib.sha256(b"another model").hexdigest()
    assert_one_line_usage_error(
        run("embed", "urls.txt", "-o", "out", "--model", str(model), "--model-sha256", wrong, *NO_SPARK,
            cwd=tmp_path), "--model:", wrong[:12])


def test_an_empty_stdin_list_is_refused(tmp_path):
    assert_one_line_usage_error(run("featurize", "-", "-o", "out", *NO_SPARK, cwd=tmp_path, stdin="# none\n"),
                                "the URL list on stdin is empty")


@pytest.mark.claim("The sparkimg-ml command line: featurize, preview, doctor; a mistake is one line with exit code 2")
def test_doctor_reports_java_libraries_codecs_and_extras(tmp_path):
    result = run("doctor", cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"ok\s+Java (1[7-9]|[2-9]\d)", out), out
    for name in ("pyspark", "pyarrow", "Pillow", "JPEG", "WebP", "AVIF", "[fast]", "[cloud]"):
        assert name in out, name
    assert "everything needed is present" in out
