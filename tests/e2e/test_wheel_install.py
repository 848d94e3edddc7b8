"""The release artifact as a user gets it: the wheel built from an sdist, installed (not editable) in fresh venvs.

One wheel is built per test session, from an sdist of a copy of the source tree (so the
sdist is proven complete and the checkout gets no build files). One fresh virtualenv gets
the wheel with no extras; each extra is then installed alone into a venv of its own that
sees the base venv through a ``.pth`` file (so pyspark and the other core dependencies are
installed once, and each extra venv holds only what the extra adds).
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import venv
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
VERSION = "0.3.0"
#: What the source distribution is built from (everything else in the checkout is not shipped).
SOURCES = ("setup.cfg", "setup.py", "pyproject.toml", "MANIFEST.in", "README.md", "LICENSE", "CHANGELOG.md",
           "constraints", "sparkimg_ml")
#: The modules each extra must make importable (independent of the package's own table).
EXTRA_MODULES = {
    "s3": ["fsspec", "s3fs"],
    "gcs": ["fsspec", "gcsfs"],
    "azure": ["fsspec", "adlfs"],
    "hdfs": ["fsspec", "fsspec.implementations.arrow", "fsspec.implementations.webhdfs", "pyarrow.fs"],
    "cloud": ["fsspec", "s3fs", "gcsfs", "adlfs", "fsspec.implementations.webhdfs"],
    "demo": ["sklearn"],
    "docs": ["mkdocs", "material", "mkdocstrings"],
    "export": ["onnx", "onnxscript"],
    "fast": ["pyspng"],
    "heif": ["pillow_heif"],
    "onnx": ["onnxruntime"],
    "opencv": ["cv2"],
    "quantize": ["onnx", "onnxruntime.quantization"],
    "torch": ["torch"],
}


def _pip_install(python: Path, *arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    """This interpreter's pip installing into the venv of ``python`` (venvs are made without pip: faster)."""
    return _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-compile", *arguments], cwd=cwd)


def _setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return parser


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip() and not line.strip().startswith("#")]


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: no PYTHONPATH pointing at this checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON")}
    env.update(SPARK_LOCAL_IP="127.0.0.1", PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


def _run(command: list[str], cwd: Path, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=_clean_env(**env), capture_output=True, text=True, timeout=timeout)


def _site_packages(prefix: Path) -> Path:
    return next((prefix / "lib").glob("python3*/site-packages"))


@pytest.fixture(scope="session")
def dist(tmp_path_factory) -> Path:
    """dist/ with the sdist and the wheel built from it."""
    work = tmp_path_factory.mktemp("dist")
    source = work / "src"
    source.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, source / name)
    out = work / "dist"
    built = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    checked = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, out.iterdir())],
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return out


@pytest.fixture(scope="session")
def wheel(dist) -> Path:
    return dist / f"sparkimg_ml-{VERSION}-py3-none-any.whl"


@pytest.fixture(scope="session")
def base_venv(wheel, tmp_path_factory) -> Path:
    """A fresh virtualenv with the wheel and no extras."""
    prefix = tmp_path_factory.mktemp("venvs") / "base"
    venv.EnvBuilder(with_pip=False).create(prefix)
    installed = _pip_install(prefix / "bin" / "python", str(wheel), cwd=prefix)
    assert installed.returncode == 0, installed.stderr[-3000:]
    return prefix


def test_wheel_and_sdist_carry_license_typing_metadata_and_changelog(dist, wheel):
    with zipfile.ZipFile(wheel) as zipped:
        names = set(zipped.namelist())
        meta = zipped.read(f"sparkimg_ml-{VERSION}.dist-info/METADATA").decode()
        license_text = zipped.read(f"sparkimg_ml-{VERSION}.dist-info/licenses/LICENSE")
    assert {"sparkimg_ml/py.typed", "sparkimg_ml/cli_log4j2.properties", "sparkimg_ml/fetch/backends.py"} <= names
    assert license_text == (ROOT / "LICENSE").read_bytes()
    assert b"Apache License" in license_text and b"END OF TERMS AND CONDITIONS" in license_text
    headers, _, description = meta.partition("\n\n")
    assert f"\nVersion: {VERSION}\n" in headers and "\nRequires-Python: >=3.10\n" in headers
    classifiers = set(re.findall(r"^Classifier: (.+)$", headers, flags=re.MULTILINE))
    assert {f"Programming Language :: Python :: 3.{minor}" for minor in (10, 11, 12, 13)} <= classifiers
    assert {"Typing :: Typed", "Development Status :: 4 - Beta", "Operating System :: OS Independent"} <= classifiers
    urls = dict(line.split(", ", 1) for line in re.findall(r"^Project-URL: (.+)$", headers, flags=re.MULTILINE))
    assert set(urls) == {"Homepage", "Documentation", "Source", "Changelog", "Issues"}
    assert all(url.startswith("https://") for url in urls.values())
    # Exactly setup.cfg's install_requires, no environment markers.
    requires = [r for r in re.findall(r"^Requires-Dist: (.+)$", headers, flags=re.MULTILINE) if "extra ==" not in r]
    assert requires == _lines(_setup_cfg()["options"]["install_requires"])
    # The long description renders on a package index: no relative links or image paths.
    targets = re.findall(r"\]\(([^)\s]+)", description) + re.findall(r'src="([^"]+)"', description)
    assert targets and [t for t in targets if not t.startswith(("https://", "http://", "#"))] == []
    assert "https://raw.githubusercontent.com/sparkimg-ml/sparkimg_ml/main/docs/preview-grid.png" in description
    sdist = next(dist.glob("*.tar.gz"))
    import tarfile

    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    assert {"LICENSE", "CHANGELOG.md", "pyproject.toml", "constraints/pyspark-3.5.txt", "sparkimg_ml/py.typed"} <= members


def test_installed_wheel_has_no_extra_and_its_doctor_passes(base_venv, tmp_path):
    python = base_venv / "bin" / "python"
    found = _run([str(python), "-c", "import importlib.util as u, json, sparkimg_ml; print(json.dumps("
                  "[sparkimg_ml.__file__, sparkimg_ml.__version__, "
                  f"[m for m in {sorted({m for ms in EXTRA_MODULES.values() for m in ms if '.' not in m} - {'fsspec'})}"
                  " if u.find_spec(m)]]))"], cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    location, version, extras_present = json.loads(found.stdout)
    assert location.startswith(str(_site_packages(base_venv))) and version == VERSION
    assert extras_present == []

    result = _run([str(base_venv / "bin" / "sparkimg-ml"), "doctor"], cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "everything needed is present" in out and "note " not in out
    dependencies = out.split("dependencies (install_requires):\n", 1)[1].split("optional extras:", 1)[0]
    # One ok line per declared requirement, read from setup.cfg independently; nothing else (no requests).
    declared = [re.split(r"[<>=!~; \[]", r, maxsplit=1)[0].lower() for r in
                _lines(_setup_cfg()["options"]["install_requires"])]
    listed = re.findall(r"^  ok       (\S+) \S+$", dependencies, flags=re.MULTILINE)
    assert listed == declared, dependencies
    assert "requests" not in dependencies
    assert "  no       [gcs] needs fsspec, gcsfs -> pip install 'sparkimg_ml[gcs]'" in out
    assert re.search(r"ok\s+Python 3\.\d+ \(supported: 3\.10 to 3\.13\)", out)


def test_installed_wheel_runs_the_demo_help_and_a_featurize_job_its_executors_import(base_venv, tmp_path):
    python = base_venv / "bin" / "python"
    helped = _run([str(python), "-m", "sparkimg_ml.demo", "--help"], cwd=tmp_path)
    assert helped.returncode == 0 and helped.stdout.startswith("usage:"), helped.stdout + helped.stderr

    colors = [(255, 0, 0), (0, 128, 255), (17, 200, 99)]
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(f"""
        import json, sys
        from PIL import Image
        from pyspark.sql import SparkSession
        from sparkimg_ml import ImageUrlFeaturizer
        from sparkimg_ml.cli.doctor import executors_import
        from sparkimg_ml.errors import MissingDependencyError

        paths = []
        for index, color in enumerate({colors!r}):
            path = f"{{sys.argv[1]}}/c{{index}}.png"
            Image.new("RGB", (9 + index, 7), color).save(path)
            paths.append(path)
        spark = (SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")
                 .config("spark.sql.shuffle.partitions", "1").getOrCreate())
        rows = [(i, p) for i, p in enumerate(paths)] + [(3, sys.argv[1] + "/missing.png"), (4, "gs://bucket/a.png")]
        frame = spark.createDataFrame(rows, "id int, path string")
        featurizer = ImageUrlFeaturizer(inputCol="path", outputCol="features", imageSize=[2, 2],
                                        handleInvalid="keep", errorCol="error")
        out = [[r.id, None if r.features is None else r.features.toArray().tolist(), r.error]
               for r in featurizer.transform(frame).orderBy("id").collect()]
        try:
            featurizer.copy({{featurizer.handleInvalid: "error"}}).transform(frame.filter("id = 4"))
            raised = None
        except MissingDependencyError as exc:
            raised = str(exc)
        executors = executors_import(spark)  # what `sparkimg-ml doctor --spark` runs, on this session
        print(json.dumps({{"rows": out, "raised": raised, "executors": [executors.status, executors.line]}}))
        spark.stop()
    """))
    result = _run([str(python), str(script), str(tmp_path)], cwd=tmp_path, timeout=400,
                  PYSPARK_PYTHON=str(python), PATH=f"{base_venv / 'bin'}:{os.environ['PATH']}")
    assert result.returncode == 0, result.stderr[-4000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    rows = found["rows"]
    assert [row[0] for row in rows] == [0, 1, 2, 3, 4]
    for (_, features, error), color in zip(rows[:3], colors):
        expected = np.tile(np.asarray(color, np.float64) / 255.0, 4)  # a solid 2x2 RGB image, HWC, scale 1/255
        np.testing.assert_allclose(features, expected, atol=1e-6)
        assert error is None
    assert rows[3][1] is None and rows[3][2].startswith("not_found: ")
    # gcsfs is not installed in this venv: the row names what to install instead of "unsupported scheme".
    assert rows[4][1] is None and rows[4][2] == "missing_dependency: gs:// needs gcsfs (pip install 'sparkimg_ml[gcs]')"
    site = _site_packages(base_venv) / "sparkimg_ml" / "__init__.py"
    assert found["executors"] == ["ok", f"executors import sparkimg_ml {VERSION} ({site})"]
    assert found["raised"] == (
        "ImageUrlFeaturizer could not read the image of row with path=gs://bucket/a.png: missing_dependency: gs:// "
        "needs gcsfs (pip install 'sparkimg_ml[gcs]'). Install it where the driver and the executors run, or set "
        "handleInvalid='keep' (null output, reason in errorCol) or 'skip' (drop the rows).")


def _install_extra(base: Path, wheel: Path, extra: str, root: Path, constraints: Path) -> tuple[str, str]:
    """A venv holding only ``extra``'s packages (the core ones come from ``base`` through a .pth file)."""
    prefix = root / extra
    venv.EnvBuilder(with_pip=False).create(prefix)
    (_site_packages(prefix) / "_sparkimg_ml_base.pth").write_text(str(_site_packages(base)) + "\n")
    python = str(prefix / "bin" / "python")
    installed = _pip_install(prefix / "bin" / "python", "-c", str(constraints), f"{wheel}[{extra}]", cwd=root)
    if installed.returncode != 0:
        return extra, "pip failed: " + installed.stderr[-2000:]
    probe = textwrap.dedent(f"""
        import importlib, json, sys
        from sparkimg_ml.cli.doctor import check, declared
        modules = {EXTRA_MODULES[extra]!r}
        for name in modules:
            importlib.import_module(name)
        core, extras = declared()
        print(json.dumps([[c.status, c.line] for c in (check(r, "") for r in extras[{extra!r}])]))
    """)
    found = _run([python, "-c", probe], cwd=root)
    return extra, found.stdout + found.stderr


def test_each_extra_installs_alone_and_its_modules_import(base_venv, wheel, tmp_path):
    extras = [e for e in _setup_cfg()["options.extras_require"] if e not in ("test", "dev")]
    assert sorted(extras) == sorted(EXTRA_MODULES), "a new extra needs its modules in EXTRA_MODULES"
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("torch==2.13.0\n")  # never let pip pick another torch
    # torch first: the largest install starts earliest.
    order = sorted(extras, key=lambda e: e != "torch")
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = dict(pool.map(lambda e: _install_extra(base_venv, wheel, e, tmp_path, constraints), order))
    for extra in extras:
        lines = results[extra].strip().splitlines()
        assert lines, extra
        try:
            statuses = json.loads(lines[-1])
        except json.JSONDecodeError:
            pytest.fail(f"[{extra}]: {results[extra][-3000:]}")
        assert statuses and all(status == "ok" for status, _ in statuses), (extra, statuses)
    torch_version = _run([str(tmp_path / "torch" / "bin" / "python"), "-c", "import torch; print(torch.__version__)"],
                         cwd=tmp_path)
    assert torch_version.stdout.startswith("2.13.0"), torch_version.stdout + torch_version.stderr
