"""The compatibility matrix: the tests marked ``compat`` on other Sparks, Pythons, Spark Connect and a cluster.

    python .ci/compat_matrix.py                   # every environment (what `make test-compat` runs)
    python .ci/compat_matrix.py py35 standalone   # some of them
    python .ci/compat_matrix.py --docs            # rewrite docs/guides/compatibility.md
    python .ci/compat_matrix.py --check-docs      # fail when that page or SURFACES has drifted

Each environment runs ``pytest -m compat`` over the test files that hold such
tests, in its own virtualenv under ``build/compat/<venv>``, two environments at a
time. A virtualenv is built on first use and reused while its recipe and
``setup.cfg`` stay the same, so local re-runs skip the installs. Environments:

* ``py35``: pyspark 3.5 (latest patch) on the lowest supported Python (3.10) with
  every dependency at the lower bound ``setup.cfg`` declares (numpy, pandas,
  pyarrow, Pillow, ...), classic ``local[2]``;
* ``py41``: pyspark 4.1 (latest patch) on the main Python, with torch, classic ``local[2]``;
* ``connect``: pyspark 4.3 on the highest supported Python (3.13), a Spark Connect
  server started by the test set-up;
* ``standalone``: pyspark 4.3 on Python 3.13, a standalone master and two workers
  started by the test set-up.

The last two share a virtualenv in which ``sparkimg_ml`` is *not* installed: the
tests import it from the checkout and ship it to the server or executors with
:func:`sparkimg_ml.deploy.ship`, as users must. Environments without torch
deselect the tests marked ``torch``.

Every environment (and the current interpreter, the main one) also writes a
digest of ``TensorReshaper``'s output for fixed inputs; the run fails unless all
digests are equal. The result is printed as a matrix of check x environment and
written to ``build/compat/matrix.md``; which public surface each ``compat`` test
covers is in ``SURFACES`` and, generated from it, docs/guides/compatibility.md.
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build" / "compat"
#: What the tests need besides the package's own requirements.
TEST_REQUIREMENTS = ("pytest>=7.4", "hypothesis>=6.80", "scikit-learn>=1.3", "psutil>=5.9")
#: Extras the public surfaces need (ImageEmbedder's [onnx], storage reads' [cloud]) and what their tests
#: build fixtures with (onnx for the tiny models, moto's S3 server).
SURFACE_REQUIREMENTS = ("onnx>=1.15", "onnxruntime>=1.17", "fsspec>=2023.1", "s3fs>=2023.1", "moto[server]>=5.0")
#: Only the CPU build: on the package index every torch 2.13.0 build for Linux is the CUDA one,
#: which pulls about 3 GB of nvidia-* wheels. The CPU build is on this machine's wheel cache for CPython
#: 3.11 only, so environments on another Python run without torch and deselect the ``torch`` tests.
TORCH_REQUIREMENT = "torch==2.13.0"
#: The lowest and the highest Python the package supports (setup.cfg's python_requires and classifiers).
LOWEST_PYTHON = "/root/.pyenv/versions/3.10.13/bin/python"
HIGHEST_PYTHON = "/root/.pyenv/versions/3.13.0/bin/python"
#: The test file whose compat run writes the TensorReshaper digest.
DIGEST_TEST = "tests/compat/test_reshaper_compat.py"


@dataclass(frozen=True)
class Venv:
    """How to build one virtualenv."""

    name: str
    pyspark: str
    #: Pin each requirement of setup.cfg at its declared lower bound (``>=X`` -> ``==X``).
    lower_bounds: bool = False
    #: Install sparkimg_ml itself; if not, tests import it from the checkout and ship it.
    install_package: bool = True
    #: The interpreter the virtualenv is built from (empty: the one running this script).
    python: str = ""
    #: Install torch (the ``torch``-marked tests are deselected where not).
    torch: bool = False


@dataclass(frozen=True)
class Environment:
    name: str
    venv: str
    spark: str  # the SPARKIMG_TEST_SPARK value: local, connect or standalone
    title: str


VENVS = {venv.name: venv for venv in (
    Venv("py35", "pyspark>=3.5,<3.6", lower_bounds=True, python=LOWEST_PYTHON),
    Venv("py41", "pyspark>=4.1,<4.2", torch=True),
    Venv("spark43", "pyspark[connect]>=4.3,<4.4", install_package=False, python=HIGHEST_PYTHON),
)}

ENVIRONMENTS = {env.name: env for env in (
    Environment("py35", "py35", "local", "pyspark 3.5, lower bounds, Python 3.10, local[2]"),
    Environment("py41", "py41", "local", "pyspark 4.1, Python 3.11, local[2]"),
    Environment("connect", "spark43", "connect", "pyspark 4.3, Python 3.13, Spark Connect server"),
    Environment("standalone", "spark43", "standalone", "pyspark 4.3, Python 3.13, standalone master + 2 workers"),
)}


#: The public surfaces and the ``compat`` tests that exercise each (``file::function``). The
#: compatibility guide's table is generated from this and the environments above; ``--check-docs``
#: (run by tests/unit/test_compat_docs.py) fails when a ``compat`` test is missing here, a test named here
#: is not collected with the ``compat`` marker, or the guide differs from what this file generates.
SURFACES: dict[str, list[str]] = {
    "ImageUrlFeaturizer: paths, file URIs, HTTP, bytes, columnar inputs": [
        "tests/spark/test_featurizer.py::test_featurizer_reads_paths_file_uris_and_http_urls_to_hwc_rgb",
        "tests/spark/test_featurizer.py::test_featurizer_reads_binary_file_content_column",
        "tests/spark/test_featurizer.py::test_columnar_children_parquet_and_cache_give_vectors",
    ],
    "ImageUrlFeaturizer: handleInvalid keep / skip / error": [
        "tests/spark/test_featurizer.py::test_featurizer_keep_mode_keeps_every_row_and_column_with_reasons",
        "tests/spark/test_featurizer.py::test_featurizer_skip_mode_drops_only_bad_rows",
        "tests/spark/test_featurizer.py::test_featurizer_error_mode_fails_naming_the_url_and_the_cause",
        "tests/spark/test_output_formats.py::test_uint8_rows_follow_handle_invalid",
    ],
    "ImageUrlFeaturizer: output formats vector / array / uint8 and metadata": [
        "tests/spark/test_featurizer.py::test_featurizer_output_metadata_describes_the_tensor",
        "tests/spark/test_output_formats.py::test_each_format_has_its_column_type_and_metadata",
        "tests/spark/test_output_formats.py::test_uint8_tensors_normalise_to_the_float_output_bit_for_bit",
    ],
    "ImageUrlFeaturizer: sourceInfoCol (source facts through the Arrow and the pandas UDF)": [
        "tests/spark/test_source_info.py::test_keep_mode_gives_facts_for_every_readable_source_and_null_where_nothing_was_read",
    ],
    "Storage reads through Spark (s3:// on a moto server)": [
        "tests/spark/test_fetch_s3.py::test_featurizer_reads_images_from_an_s3_bucket",
    ],
    "TensorReshaper: values, handleInvalid, Python UDFs, predict_batch_udf": [
        "tests/spark/test_reshaper.py::test_featurizer_metadata_gives_shape_layout_and_float32_tensors",
        "tests/spark/test_reshaper.py::test_float32_vectors_give_float_tensors_on_every_read_path",
        "tests/spark/test_reshaper.py::test_handle_invalid_error_names_expected_and_found_sizes",
        "tests/spark/test_reshaper.py::test_handle_invalid_keep_yields_null_for_rows_that_do_not_fit",
        "tests/spark/test_reshaper.py::test_handle_invalid_skip_drops_rows_that_do_not_fit_and_passes_nulls",
        "tests/spark/test_reshaper.py::test_python_udfs_read_every_output_form_on_every_spark",
        "tests/spark/test_reshaper.py::test_spark_output_equals_numpy_and_the_inverse_restores_the_input",
        "tests/spark/test_reshaper.py::test_featurizer_and_chw_tensors_feed_predict_batch_udf_like_numpy_on_the_decoded_images",
        "tests/compat/test_reshaper_compat.py::test_reshaper_values_equal_numpy_and_are_recorded_for_the_cross_version_comparison",
    ],
    "ImageEmbedder (tiny ONNX model): values, handleInvalid, save/load": [
        "tests/spark/test_embedder.py::test_embeddings_match_onnxruntime_on_preprocess_output",
        "tests/spark/test_embedder.py::test_bad_rows_follow_handle_invalid_and_never_reach_the_model",
        "tests/spark/test_embedder.py::test_saved_stage_stores_the_model_reference_not_its_bytes",
    ],
    "Pipeline / PipelineModel persistence, a new process, files of 0.1.0": [
        "tests/spark/test_pipelines.py::test_digits_pipeline_is_accurate_on_a_wide_table_with_broken_rows",
        "tests/spark/test_pipelines.py::test_pipeline_model_loads_in_a_new_process_with_identical_predictions",
        "tests/spark/test_pipelines.py::test_stage_and_unfitted_pipeline_round_trip_every_param",
        "tests/spark/test_pipelines.py::test_stages_saved_by_version_0_1_0_still_load",
        "tests/spark/test_reshaper.py::test_stage_pipeline_and_pipeline_model_round_trip",
        "tests/spark/test_deploy.py::test_stages_overwrite_a_saved_copy_on_classic_and_connect",
    ],
    "CrossValidator: fit, save, load in a new process": [
        "tests/spark/test_compat_surfaces.py::test_cross_validator_over_the_featurizer_reloads_in_a_new_process",
        "tests/spark/test_reshaper.py::test_cross_validator_tunes_axes_and_persists",
    ],
    "write_tensors + TensorFiles": [
        "tests/spark/test_compat_surfaces.py::test_write_tensors_and_tensor_files_give_back_each_image",
    ],
    "TensorDataset (torch)": [
        "tests/spark/test_compat_surfaces.py::test_tensor_dataset_yields_the_written_tensors_as_torch_batches",
    ],
    "show_images / failure_report (HTML)": [
        "tests/spark/test_preview.py::test_show_images_of_urls_marks_each_failure_with_its_reason",
        "tests/spark/test_preview.py::test_show_images_side_by_side_shows_source_and_what_the_model_sees",
        "tests/spark/test_preview.py::test_failure_report_counts_reasons_with_redacted_examples",
    ],
    "Command line: sparkimg-ml featurize on a URL list": [
        "tests/e2e/test_cli_runs.py::test_featurize_a_url_list_with_comments_limit_stats_and_positional_output",
    ],
    "ship(spark): executors import the package": [
        "tests/spark/test_deploy.py::test_ship_is_idempotent_and_executors_import_the_shipped_package",
    ],
}
#: Tests carrying this marker run only in environments whose virtualenv has torch.
TORCH_MARKER = "torch"
DOCS = REPO / "docs" / "guides" / "compatibility.md"


#: How many environments run at once, and in which order (the longest first).
PARALLEL = 2
RUN_ORDER = ["standalone", "py35", "connect", "py41"]


def install_requires() -> list[str]:
    """The ``install_requires`` lines of setup.cfg."""
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    return [line.strip() for line in parser["options"]["install_requires"].splitlines() if line.strip()]


def requirements(venv: Venv) -> list[str]:
    """What pip installs into ``venv`` (sparkimg_ml itself comes after, without dependencies)."""
    wanted = [venv.pyspark]
    for requirement in install_requires():
        name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]
        if name.lower() == "pyspark":
            continue
        bound = re.search(r">=\s*([\w.]+)", requirement)
        if venv.lower_bounds and bound:
            wanted.append(f"{name}=={bound.group(1)}")
        else:
            wanted.append(requirement)
    if venv.lower_bounds:
        # pyspark 3.5 predates numpy 2 and breaks on pyarrow's newest releases.
        wanted += ["numpy<2", "pyarrow<26"]
    wanted += list(TEST_REQUIREMENTS) + list(SURFACE_REQUIREMENTS)
    return wanted + ([TORCH_REQUIREMENT] if venv.torch else [])


def venv_python(venv: Venv) -> str:
    """The interpreter ``venv`` is built from."""
    return venv.python or sys.executable


def build_venv(venv: Venv) -> tuple[Path, float]:
    """The virtualenv's python, built unless a venv from the same recipe exists; and the seconds spent."""
    started = time.perf_counter()
    path = BUILD / venv.name
    wanted = requirements(venv)
    base = venv_python(venv)
    version = subprocess.run([base, "-c", "import sys; print(sys.version.split()[0])"], check=True,
                             stdout=subprocess.PIPE, text=True).stdout.strip()
    recipe = json.dumps({"requirements": wanted, "install_package": venv.install_package,
                         "python": version}, sort_keys=True)
    stamp = path / ".recipe"
    python = path / "bin" / "python"
    if stamp.exists() and stamp.read_text() == recipe and python.exists():
        return python, 0.0
    print(f"[compat] building {path.relative_to(REPO)}: {' '.join(wanted)}", flush=True)
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run([base, "-m", "venv", str(path)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + wanted, check=True)
    if venv.install_package:
        subprocess.run(pip + ["--no-deps", "-e", str(REPO)], check=True)
    stamp.write_text(recipe)
    return python, time.perf_counter() - started


def compat_test_files() -> list[str]:
    """Test files holding at least one ``compat``-marked test."""
    return sorted(str(path.relative_to(REPO)) for path in (REPO / "tests").rglob("test_*.py")
                  if "pytest.mark.compat" in path.read_text())


@dataclass
class Run:
    environment: str
    seconds: float
    returncode: int
    summary: str
    outcomes: dict[str, str]


def run_pytest(name: str, python: Path, spark: str, files: Sequence[str], package_on_path: bool,
               torch: bool = True) -> Run:
    """``pytest -m compat`` over ``files`` in one environment; outcomes per test from its JUnit XML."""
    report = BUILD / "reports" / f"{name}.xml"
    digests = BUILD / "digests" / name
    shutil.rmtree(digests, ignore_errors=True)
    report.parent.mkdir(parents=True, exist_ok=True)
    (BUILD / "tmp").mkdir(exist_ok=True)  # pytest creates --basetemp itself, not its parents
    env = dict(os.environ, SPARKIMG_TEST_SPARK=spark, SPARKIMG_COMPAT_DIGEST_DIR=str(digests),
               PYSPARK_PYTHON=str(python), PYSPARK_DRIVER_PYTHON=str(python))
    env.pop("SPARKIMG_TEST_SPARK_URL", None)
    if package_on_path:
        env["PYTHONPATH"] = str(REPO)
    else:
        env.pop("PYTHONPATH", None)
    marker = "compat" if torch else f"compat and not {TORCH_MARKER}"
    # Environments run side by side: each gets its own pytest temporary directory.
    command = [str(python), "-m", "pytest", "-m", marker, "-p", "no:cacheprovider", "-q",
               f"--basetemp={BUILD / 'tmp' / name}", f"--junitxml={report}", *files]
    print(f"[compat] {name}: {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    seconds = time.perf_counter() - started
    log = BUILD / "reports" / f"{name}.log"
    log.write_text(done.stdout)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    summary = lines[-1].strip("= ") if lines else "(no output)"
    if done.returncode != 0:
        print(done.stdout[-20000:], flush=True)
    print(f"[compat] {name}: {summary} in {seconds:.0f} s", flush=True)
    return Run(name, seconds, done.returncode, summary, _outcomes(report))


def _outcomes(report: Path) -> dict[str, str]:
    if not report.exists():
        return {}
    outcomes = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        test = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        kinds = {child.tag for child in case}
        skipped = case.find("skipped")
        if kinds & {"failure", "error"}:
            outcomes[test] = "FAIL"
        elif skipped is not None:
            outcomes[test] = "xfail" if "xfail" in (skipped.get("type") or "") else "skip"
        else:
            outcomes[test] = "pass"
    return outcomes


def compare_digests(names: Sequence[str]) -> str | None:
    """None when every environment's TensorReshaper digest equals the main one's, else what differs."""
    found = {}
    for name in names:
        files = sorted((BUILD / "digests" / name).glob("*.json"))
        if len(files) != 1:
            return f"{name}: expected one TensorReshaper digest, found {len(files)}"
        found[name] = json.loads(files[0].read_text())
    reference = found["main"]
    for name, digest in found.items():
        differing = sorted(case for case in reference if digest.get(case) != reference[case])
        if differing or set(digest) != set(reference):
            return f"{name}: TensorReshaper output differs from the main environment's in {differing}"
    return None


def render(runs: list[Run], digest_problem: str | None, build_seconds: dict[str, float]) -> str:
    tests = sorted({test for run in runs for test in run.outcomes})
    header = "| check | " + " | ".join(run.environment for run in runs) + " |"
    lines = [header, "|---" * (len(runs) + 1) + "|"]
    for test in tests:
        lines.append(f"| {test} | " + " | ".join(run.outcomes.get(test, "-") for run in runs) + " |")
    digest = "pass" if digest_problem is None else "FAIL"
    lines.append("| TensorReshaper output identical to the main environment's | "
                 + " | ".join(digest for _ in runs) + " |")
    lines.append("| pytest summary | " + " | ".join(run.summary for run in runs) + " |")
    lines.append("| test time (s) | " + " | ".join(f"{run.seconds:.0f}" for run in runs) + " |")
    titles = "\n".join(f"- `{name}`: {env.title}" for name, env in ENVIRONMENTS.items()
                       if any(run.environment == name for run in runs))
    built = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in build_seconds.items())
    return f"{titles}\n\n" + "\n".join(lines) + f"\n\nvirtualenv builds: {built or 'all cached'}\n"


class _CompatCollector:
    """A pytest plugin recording the ``compat`` tests (``file::function``) and which of them need torch."""

    def __init__(self) -> None:
        self.tests: dict[str, bool] = {}

    def pytest_collection_modifyitems(self, items: list) -> None:
        for item in items:
            if item.get_closest_marker("compat") is not None:
                test = item.nodeid.split("[", 1)[0]
                self.tests[test] = self.tests.get(test, False) or item.get_closest_marker(TORCH_MARKER) is not None


def collect_compat_tests() -> dict[str, bool]:
    """Every ``compat`` test of the suite -> whether it is marked ``torch`` (collected, not run)."""
    import pytest

    collector = _CompatCollector()
    code = pytest.main(["--collect-only", "-qq", "-p", "no:cacheprovider", "--rootdir", str(REPO),
                        "-c", str(REPO / "setup.cfg"), *compat_test_files()], plugins=[collector])
    if code != 0:
        raise SystemExit(f"collecting the compat tests failed (pytest exit code {code})")
    return collector.tests


def render_docs(tests: dict[str, bool]) -> str:
    """The compatibility guide: environments, then a surface x environment table with the tests."""
    lines = [
        "# Compatibility matrix",
        "",
        "Generated by `python .ci/compat_matrix.py --docs` from the script's environments and its",
        "list of surfaces; `tests/unit/test_compat_docs.py` fails when this page, that list or the `compat`",
        "markers of the suite disagree. `make test` runs the matrix after the main suite; each",
        "environment runs `pytest -m compat` in its own virtualenv under `build/compat/`, two",
        "environments at a time, and the run also checks that `TensorReshaper` gives bit-identical",
        "output in every environment (a digest of fixed inputs compared with the main environment's).",
        "",
        "## Environments",
        "",
        "| environment | Spark | Python | dependencies | torch | sparkimg_ml on the workers |",
        "|---|---|---|---|---|---|",
    ]
    for name, env in ENVIRONMENTS.items():
        venv = VENVS[env.venv]
        python = {LOWEST_PYTHON: "3.10 (lowest supported)", HIGHEST_PYTHON: "3.13 (highest supported)",
                  "": "the main one (3.11)"}[venv.python]
        deps = ("setup.cfg's lower bounds (`>=X` pinned to `==X`), numpy<2, pyarrow<26" if venv.lower_bounds
                else "newest allowed by setup.cfg")
        torch = TORCH_REQUIREMENT if venv.torch else "not installed (the CPU build is cached for 3.11 only)"
        shipped = "installed" if venv.install_package else "imported from the checkout, shipped with `ship(spark)`"
        lines.append(f"| `{name}` | {env.title} | {python} | {deps} | {torch} | {shipped} |")
    names = list(ENVIRONMENTS)
    lines += ["", "## What runs where", "",
              "`yes`: every test of the surface runs there; `no torch`: deselected (`-m \"compat and not torch\"`)"
              " because the environment has no torch.", "",
              "| surface | " + " | ".join(f"`{name}`" for name in names) + " | tests |",
              "|---" * (len(names) + 2) + "|"]
    for surface, members in SURFACES.items():
        needs_torch = any(tests.get(test, False) for test in members)
        cells = ["yes" if VENVS[ENVIRONMENTS[name].venv].torch or not needs_torch else "no torch"
                 for name in names]
        listed = "<br>".join(f"`{test}`" for test in members)
        lines.append(f"| {surface} | " + " | ".join(cells) + f" | {listed} |")
    return "\n".join(lines) + "\n"


def docs_problems(tests: dict[str, bool]) -> list[str]:
    """Why the guide or SURFACES disagree with the suite's ``compat`` markers (empty when they agree)."""
    listed = [test for members in SURFACES.values() for test in members]
    problems = [f"{test} is listed twice in SURFACES" for test in sorted(set(listed)) if listed.count(test) > 1]
    problems += [f"{test} is in SURFACES but is not a collected compat test" for test in listed if test not in tests]
    problems += [f"{test} is marked compat but belongs to no surface in SURFACES" for test in tests
                 if test not in listed]
    current = DOCS.read_text() if DOCS.exists() else ""
    if current != render_docs(tests):
        problems.append(f"{DOCS.relative_to(REPO)} is stale: run `python .ci/compat_matrix.py --docs`")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("environments", nargs="*", metavar="ENV",
                        help=f"environments to run (default: all of {', '.join(ENVIRONMENTS)})")
    parser.add_argument("--docs", action="store_true", help=f"write {DOCS.relative_to(REPO)} and exit")
    parser.add_argument("--check-docs", action="store_true",
                        help=f"exit 1 unless {DOCS.relative_to(REPO)} and SURFACES match the compat tests")
    args = parser.parse_args(argv)
    if args.docs or args.check_docs:
        tests = collect_compat_tests()
        if args.docs:
            DOCS.parent.mkdir(parents=True, exist_ok=True)
            DOCS.write_text(render_docs(tests))
        problems = docs_problems(tests)
        for problem in problems:
            print(f"[compat] {problem}", file=sys.stderr)
        return 1 if problems else 0
    unknown = sorted(set(args.environments) - set(ENVIRONMENTS))
    if unknown:
        parser.error(f"unknown environment(s) {', '.join(unknown)}; choose from {', '.join(ENVIRONMENTS)}")
    chosen = args.environments or list(ENVIRONMENTS)
    started = time.perf_counter()
    files = compat_test_files()
    build_seconds: dict[str, float] = {}
    pythons: dict[str, Path] = {}
    for venv_name in dict.fromkeys(ENVIRONMENTS[name].venv for name in chosen):
        pythons[venv_name], seconds = build_venv(VENVS[venv_name])
        if seconds:
            build_seconds[venv_name] = seconds

    def run(name: str) -> Run:
        environment = ENVIRONMENTS[name]
        venv = VENVS[environment.venv]
        return run_pytest(name, pythons[venv.name], environment.spark, files, not venv.install_package,
                          torch=venv.torch)

    # Two environments at a time (each holds a driver and its Python workers, the cluster ones a
    # server or three JVMs more), the longest first so the two lanes end close together.
    order = sorted(chosen, key=lambda name: RUN_ORDER.index(name))
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        futures = [pool.submit(run, name) for name in order]
        # The main environment (this interpreter) writes the digest the others are compared with.
        main_future = pool.submit(run_pytest, "main", Path(sys.executable), "local", [DIGEST_TEST], False)
        runs: list[Run] = [future.result() for future in futures]
        main_run = main_future.result()
    digest_problem = None if main_run.returncode else compare_digests(["main", *chosen])
    if main_run.returncode:
        digest_problem = "the main environment's digest run failed"
    table = render(runs, digest_problem, build_seconds)
    (BUILD / "matrix.md").write_text(table)
    print("\n" + table)
    failed = [run.environment for run in runs + [main_run] if run.returncode != 0]
    if digest_problem:
        print(f"[compat] {digest_problem}")
    total = time.perf_counter() - started
    print(f"[compat] {'FAILED: ' + ', '.join(failed) if failed or digest_problem else 'all passed'} "
          f"in {total:.0f} s")
    return 1 if failed or digest_problem else 0


if __name__ == "__main__":
    sys.exit(main())
