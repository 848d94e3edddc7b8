"""The compatibility matrix: the tests marked ``compat`` on other Sparks, Spark Connect and a cluster.

    python .ci/compat_matrix.py                   # every environment (what `make test-compat` runs)
    python .ci/compat_matrix.py py35 standalone   # some of them

Each environment runs ``pytest -m compat`` over the test files that hold such
tests, in its own virtualenv under ``build/compat/<venv>``. A virtualenv is built
on first use and reused while its recipe and ``setup.cfg`` stay the same, so
local re-runs skip the installs. Environments:

* ``py35``: pyspark 3.5 (latest patch) with every dependency at the lower bound
  ``setup.cfg`` declares (numpy, pandas, pyarrow, Pillow, ...), classic ``local[2]``;
* ``py41``: pyspark 4.1 (latest patch), classic ``local[2]``;
* ``connect``: pyspark 4.3, a Spark Connect server started by the test set-up;
* ``standalone``: pyspark 4.3, a standalone master and two workers started by the
  test set-up.

The last two share a virtualenv in which ``sparkimg_ml`` is *not* installed: the
tests import it from the checkout and ship it to the server or executors with
:func:`sparkimg_ml.deploy.ship`, as users must.

Every environment (and the current interpreter, the main one) also writes a
digest of ``TensorReshaper``'s output for fixed inputs; the run fails unless all
digests are equal. The result is printed as a matrix of check x environment and
written to ``build/compat/matrix.md``.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build" / "compat"
#: What the tests need besides the package's own requirements.
TEST_REQUIREMENTS = ("pytest>=7.4", "hypothesis>=6.80", "scikit-learn>=1.3", "psutil>=5.9")
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


@dataclass(frozen=True)
class Environment:
    name: str
    venv: str
    spark: str  # the SPARKIMG_TEST_SPARK value: local, connect or standalone
    title: str


VENVS = {venv.name: venv for venv in (
    Venv("py35", "pyspark>=3.5,<3.6", lower_bounds=True),
    Venv("py41", "pyspark>=4.1,<4.2"),
    Venv("spark43", "pyspark[connect]>=4.3,<4.4", install_package=False),
)}

ENVIRONMENTS = {env.name: env for env in (
    Environment("py35", "py35", "local", "pyspark 3.5, lower bounds, local[2]"),
    Environment("py41", "py41", "local", "pyspark 4.1, local[2]"),
    Environment("connect", "spark43", "connect", "pyspark 4.3, Spark Connect server"),
    Environment("standalone", "spark43", "standalone", "pyspark 4.3, standalone master + 2 workers"),
)}


def install_requires() -> List[str]:
    """The ``install_requires`` lines of setup.cfg."""
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    return [line.strip() for line in parser["options"]["install_requires"].splitlines() if line.strip()]


def requirements(venv: Venv) -> List[str]:
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
    return wanted + list(TEST_REQUIREMENTS)


def build_venv(venv: Venv) -> Tuple[Path, float]:
    """The virtualenv's python, built unless a venv from the same recipe exists; and the seconds spent."""
    started = time.perf_counter()
    path = BUILD / venv.name
    wanted = requirements(venv)
    recipe = json.dumps({"requirements": wanted, "install_package": venv.install_package,
                         "python": sys.version.split()[0]}, sort_keys=True)
    stamp = path / ".recipe"
    python = path / "bin" / "python"
    if stamp.exists() and stamp.read_text() == recipe and python.exists():
        return python, 0.0
    print(f"[compat] building {path.relative_to(REPO)}: {' '.join(wanted)}", flush=True)
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + wanted, check=True)
    if venv.install_package:
        subprocess.run(pip + ["--no-deps", "-e", str(REPO)], check=True)
    stamp.write_text(recipe)
    return python, time.perf_counter() - started


def compat_test_files() -> List[str]:
    """Test files holding at least one ``compat``-marked test."""
    return sorted(str(path.relative_to(REPO)) for path in (REPO / "tests").rglob("test_*.py")
                  if "pytest.mark.compat" in path.read_text())


@dataclass
class Run:
    environment: str
    seconds: float
    returncode: int
    summary: str
    outcomes: Dict[str, str]


def run_pytest(name: str, python: Path, spark: str, files: Sequence[str], package_on_path: bool) -> Run:
    """``pytest -m compat`` over ``files`` in one environment; outcomes per test from its JUnit XML."""
    report = BUILD / "reports" / f"{name}.xml"
    digests = BUILD / "digests" / name
    shutil.rmtree(digests, ignore_errors=True)
    report.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, SPARKIMG_TEST_SPARK=spark, SPARKIMG_COMPAT_DIGEST_DIR=str(digests),
               PYSPARK_PYTHON=str(python), PYSPARK_DRIVER_PYTHON=str(python))
    env.pop("SPARKIMG_TEST_SPARK_URL", None)
    if package_on_path:
        env["PYTHONPATH"] = str(REPO)
    else:
        env.pop("PYTHONPATH", None)
    command = [str(python), "-m", "pytest", "-m", "compat", "-p", "no:cacheprovider", "-q",
               f"--junitxml={report}", *files]
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


def _outcomes(report: Path) -> Dict[str, str]:
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


def compare_digests(names: Sequence[str]) -> Optional[str]:
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


def render(runs: List[Run], digest_problem: Optional[str], build_seconds: Dict[str, float]) -> str:
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("environments", nargs="*", metavar="ENV",
                        help=f"environments to run (default: all of {', '.join(ENVIRONMENTS)})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.environments) - set(ENVIRONMENTS))
    if unknown:
        parser.error(f"unknown environment(s) {', '.join(unknown)}; choose from {', '.join(ENVIRONMENTS)}")
    chosen = args.environments or list(ENVIRONMENTS)
    started = time.perf_counter()
    files = compat_test_files()
    runs: List[Run] = []
    build_seconds: Dict[str, float] = {}
    for name in chosen:
        environment = ENVIRONMENTS[name]
        venv = VENVS[environment.venv]
        python, seconds = build_venv(venv)
        if seconds:
            build_seconds[venv.name] = seconds
        runs.append(run_pytest(name, python, environment.spark, files, not venv.install_package))
    # The main environment (this interpreter) writes the digest the others are compared with.
    main_run = run_pytest("main", Path(sys.executable), "local", [DIGEST_TEST], False)
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
