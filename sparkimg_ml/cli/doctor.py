"""``sparkimg-ml doctor``: declared dependencies, extras, supported versions, codecs, executors.

Everything here reads the *installed* distribution's metadata (``importlib.metadata``),
so the doctor checks exactly what ``install_requires`` and the extras declare and
cannot drift from ``setup.cfg``. No pyspark import at module level; requirement
strings are parsed here (``packaging`` is not a dependency).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from .commands import one_line
from .spark import DRIVER_JAVA_OPTIONS, LOG_CONFIG, parse_confs

DISTRIBUTION = "sparkimg_ml"
#: Extras that are for developing the package, not for using it.
DEVELOPMENT_EXTRAS = ("test", "dev")

#: Import names of distributions whose module is not their name.
MODULE_NAMES: dict[str, str] = {
    "pillow": "PIL", "scikit-learn": "sklearn", "pillow-heif": "pillow_heif", "pyyaml": "yaml",
    "opencv-python-headless": "cv2",
}

#: pyspark series -> (lowest, highest) supported Python. The compatibility matrix tests 3.5 on 3.10 (lower bounds)
#: and 3.11, 4.1 on 3.11, 4.3 on 3.11 and 3.13; the rest follow pyspark's own Python support.
SUPPORTED_PYSPARK: dict[tuple[int, int], tuple[tuple[int, int], tuple[int, int]]] = {
    (3, 5): ((3, 10), (3, 11)),
    (4, 0): ((3, 10), (3, 13)),
    (4, 1): ((3, 10), (3, 13)),
    (4, 2): ((3, 10), (3, 13)),
    (4, 3): ((3, 11), (3, 13)),  # pyspark 4.3 itself requires Python >= 3.11
}
SUPPORTED_PYTHON = ((3, 10), (3, 13))
SUPPORTED_JAVA = (17, 21)
#: What pyspark 3.5 needs beside it (also in constraints/pyspark-3.5.txt): its own extras pin numpy<2, and
#: pyarrow 26 does not import with numpy 1.x.
PYSPARK_35_PINS: dict[str, tuple[str, str]] = {"numpy": ("<", "2"), "pyarrow": ("<", "26"), "pandas": ("<", "3")}


@dataclass(frozen=True)
class Requirement:
    """One parsed requirement string, e.g. ``numpy>=1.24; extra == "demo"``."""

    name: str
    specifier: list[tuple[str, str]] = field(default_factory=list)
    extra: str | None = None
    marker: str = ""  # a marker other than ``extra == ...`` (not evaluated)
    text: str = ""


_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(\(?[^;]*?\)?)\s*(?:;\s*(.*))?$")
_CLAUSE = re.compile(r"\s*(===|==|!=|<=|>=|~=|<|>)\s*([^\s,]+)\s*")
_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def parse_requirement(text: str) -> Requirement:
    """Parse a ``Requires-Dist`` string.

    Examples
    --------
    >>> parse_requirement('s3fs>=2023.1; extra == "s3"')
    Requirement(name='s3fs', specifier=[('>=', '2023.1')], extra='s3', marker='', text='s3fs>=2023.1; extra == "s3"')
    >>> parse_requirement("moto[server]>=5.0,<6").specifier
    [('>=', '5.0'), ('<', '6')]
    """
    found = _NAME.match(text)
    if not found:
        raise ValueError(f"not a requirement: {text!r}")
    name, _, spec, marker = found.groups()
    clauses = [_CLAUSE.fullmatch(part) for part in spec.strip("() ").split(",") if part.strip()]
    if not all(clauses):
        raise ValueError(f"cannot read the version specifier of {text!r}")
    marker = marker or ""
    extra = _EXTRA.search(marker)
    rest = _EXTRA.sub("", marker).strip()
    rest = re.sub(r"^(and\s+)+|(\s+and)+$", "", rest).strip()
    return Requirement(name=name, specifier=[(c.group(1), c.group(2)) for c in clauses if c],
                       extra=extra.group(1) if extra else None, marker=rest, text=text)


def release(version: str) -> tuple[int, ...]:
    """The numeric release part of a version: ``"2026.10.19.post1"`` -> ``(2026, 10, 19)``.

    Examples
    --------
    >>> release("4.3.0"), release("1.24"), release("2.1.0rc1")
    ((4, 3, 0), (1, 24), (2, 1, 0))
    """
    parts = []
    for piece in version.split("+")[0].split("."):
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group(0)))
        if digits.group(0) != piece:
            break
    return tuple(parts)


def _compare(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    width = max(len(a), len(b))
    a, b = a + (0,) * (width - len(a)), b + (0,) * (width - len(b))
    return (a > b) - (a < b)


def satisfies(version: str, specifier: list[tuple[str, str]]) -> bool:
    """Whether ``version`` meets every clause (release numbers only; pre-releases count as their release).

    Examples
    --------
    >>> satisfies("1.26.4", [(">=", "1.24"), ("<", "2")]), satisfies("2.0.0", [("<", "2")])
    (True, False)
    >>> satisfies("3.5.9", [("==", "3.5.*")]), satisfies("4.0.1", [("~=", "4.0")])
    (True, True)
    """
    have = release(version)
    for op, wanted in specifier:
        if op in ("==", "!=") and wanted.endswith(".*"):
            prefix = release(wanted[:-2])
            same = have[: len(prefix)] + (0,) * (len(prefix) - len(have[: len(prefix)])) == prefix
            if same != (op == "=="):
                return False
            continue
        order = _compare(have, release(wanted))
        if op == "~=":
            base = release(wanted)
            if order < 0 or _compare(have[: len(base) - 1], base[:-1]) != 0:
                return False
            continue
        ok = {"==": order == 0, "===": version == wanted, "!=": order != 0, "<=": order <= 0, ">=": order >= 0,
              "<": order < 0, ">": order > 0}[op]
        if not ok:
            return False
    return True


def declared() -> tuple[list[Requirement], dict[str, list[Requirement]]]:
    """``install_requires`` and the extras (without the development ones) from the installed metadata.

    Raises ``importlib.metadata.PackageNotFoundError`` when sparkimg_ml is not installed
    (e.g. imported from a source checkout only).
    """
    core: list[Requirement] = []
    extras: dict[str, list[Requirement]] = {}
    for name in metadata.metadata(DISTRIBUTION).get_all("Provides-Extra") or []:
        if name not in DEVELOPMENT_EXTRAS:
            extras[name] = []
    for text in metadata.requires(DISTRIBUTION) or []:
        requirement = parse_requirement(text)
        if requirement.extra is None:
            core.append(requirement)
        elif requirement.extra in extras:
            extras[requirement.extra].append(requirement)
    return core, extras


def module_name(distribution: str) -> str:
    """The module to import for a distribution, from its installed files when it is installed."""
    key = distribution.lower().replace("_", "-")
    if key in MODULE_NAMES:
        return MODULE_NAMES[key]
    guess = key.replace("-", "_")
    try:
        provided = [m for m, dists in metadata.packages_distributions().items()
                    if any(d.lower().replace("_", "-") == key for d in dists)]
    except Exception:  # noqa: BLE001 - a broken distribution elsewhere must not break the doctor
        provided = []
    if guess in provided or not provided:
        return guess
    return sorted(provided)[0]


@dataclass(frozen=True)
class Check:
    """One finding: a status (``ok``, ``untested``, ``MISSING``, ``UNSUPPORTED``, ``FAILED``) and one line.

    ``ok`` and ``untested`` are not problems; the others make the doctor exit 1.
    """

    status: str
    line: str

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "untested")


OK, UNTESTED, MISSING, UNSUPPORTED, FAILED = "ok", "untested", "MISSING", "UNSUPPORTED", "FAILED"


def _import_error(module: str) -> str | None:
    try:
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - any failure to import is what the doctor reports
        text = " ".join(str(exc).split())
        return f"{type(exc).__name__}: {text[:200]}"
    return None


def installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def check(requirement: Requirement, install_hint: str) -> Check:
    """Installed, in the declared version range, and importable?"""
    spec = ",".join(op + v for op, v in requirement.specifier)
    wanted = f"{requirement.name}{spec}"
    version = installed_version(requirement.name)
    if version is None:
        return Check(MISSING, f"{wanted} is not installed: {install_hint}")
    if not satisfies(version, requirement.specifier):
        return Check(MISSING, f"{requirement.name} {version} does not meet {wanted}: pip install '{wanted}'")
    module = module_name(requirement.name)
    error = _import_error(module)
    if error:
        return Check(FAILED, f"{requirement.name} {version} is installed but `import {module}` fails: {error}")
    return Check(OK, f"{requirement.name} {version}")


def _pins() -> str:
    return " ".join(f"'{name}{op}{bound}'" for name, (op, bound) in PYSPARK_35_PINS.items())


def python_pyspark_java(python: tuple[int, int], pyspark: str | None, java_major: int | None) -> list[Check]:
    """Whether this Python / pyspark / Java combination is one the package supports.

    Outside the supported range: ``UNSUPPORTED`` where it is known not to work, ``untested``
    where it is newer than anything tested.

    Examples
    --------
    >>> [c.status for c in python_pyspark_java((3, 11), "4.3.0", 17)]
    ['ok', 'ok', 'ok']
    >>> python_pyspark_java((3, 9), "3.5.9", 11)[0].line
    'Python 3.9: sparkimg_ml needs Python 3.10 or newer'
    """
    checks = []
    low, high = SUPPORTED_PYTHON
    label = f"Python {python[0]}.{python[1]}"
    if python < low:
        checks.append(Check(UNSUPPORTED, f"{label}: sparkimg_ml needs Python {low[0]}.{low[1]} or newer"))
    elif python > high:
        checks.append(Check(UNTESTED, f"{label}: newer than the tested {high[0]}.{high[1]}"))
    else:
        checks.append(Check(OK, f"{label} (supported: {low[0]}.{low[1]} to {high[0]}.{high[1]})"))
    if pyspark is not None:
        series = release(pyspark)[:2]
        newest = max(SUPPORTED_PYSPARK)
        if series in SUPPORTED_PYSPARK:
            plow, phigh = SUPPORTED_PYSPARK[series]
            name = f"pyspark {pyspark} with {label}"
            tested = f"pyspark {series[0]}.{series[1]} is supported with Python {plow[0]}.{plow[1]} to {phigh[0]}.{phigh[1]}"
            if plow <= python <= phigh:
                checks.append(Check(OK, f"{name} ({tested})"))
            elif python > phigh:
                checks.append(Check(UNTESTED, f"{name}: {tested}"))
            else:
                checks.append(Check(UNSUPPORTED, f"{name}: {tested}"))
        elif series > newest:
            checks.append(Check(UNTESTED, f"pyspark {pyspark}: newer than the tested {newest[0]}.{newest[1]}"))
        else:
            checks.append(Check(UNSUPPORTED, f"pyspark {pyspark}: sparkimg_ml needs pyspark 3.5 or newer"))
        if series == (3, 5):
            for dist, (op, bound) in PYSPARK_35_PINS.items():
                version = installed_version(dist)
                if version is not None and not satisfies(version, [(op, bound)]):
                    checks.append(Check(UNSUPPORTED, f"pyspark 3.5 with {dist} {version}: needs {dist}{op}{bound} "
                                                     f"(pip install -c constraints/pyspark-3.5.txt, or {_pins()})"))
    if java_major is not None:
        if java_major < SUPPORTED_JAVA[0]:
            checks.append(Check(UNSUPPORTED, f"Java {java_major}: Spark 4 needs Java 17 or newer, and sparkimg_ml "
                                             f"is tested on {' and '.join(map(str, SUPPORTED_JAVA))}"))
        elif java_major in SUPPORTED_JAVA:
            checks.append(Check(OK, f"Java {java_major} (supported: {' and '.join(map(str, SUPPORTED_JAVA))})"))
        else:
            checks.append(Check(UNTESTED, f"Java {java_major}: newer than the tested {SUPPORTED_JAVA[-1]}"))
    return checks


def supported_summary() -> str:
    """One line naming every supported combination.

    Examples
    --------
    >>> supported_summary().startswith("Python 3.10-3.13; pyspark 3.5 (Python 3.10-3.11, with numpy<2")
    True
    """
    pins = ", ".join(name + op + bound for name, (op, bound) in PYSPARK_35_PINS.items())
    series = "; ".join(f"pyspark {s[0]}.{s[1]} (Python {lo[0]}.{lo[1]}-{hi[0]}.{hi[1]}"
                       + (f", with {pins}" if s == (3, 5) else "") + ")"
                       for s, (lo, hi) in SUPPORTED_PYSPARK.items())
    low, high = SUPPORTED_PYTHON
    return f"Python {low[0]}.{low[1]}-{high[0]}.{high[1]}; {series}; Java {' or '.join(map(str, SUPPORTED_JAVA))}"


def executors_import(spark: Any) -> Check:
    """Run a one-task job whose Python worker imports sparkimg_ml; ok when it can (classic sessions).

    The task is built from standard-library functions only (``importlib.import_module``,
    ``operator.attrgetter``), so it reaches the worker whether or not the package is
    there, and fails at the import itself when it is not.
    """
    import operator

    from .._version import __version__

    try:
        found = (spark.sparkContext.parallelize([DISTRIBUTION], 1).map(importlib.import_module)
                 .map(operator.attrgetter("__version__", "__file__")).collect())
    except Exception as exc:  # noqa: BLE001 - the failed job is the finding
        text = str(exc)
        missing = re.search(r"ModuleNotFoundError: No module named '([^']+)'", text)
        if missing and missing.group(1).split(".")[0] == DISTRIBUTION:
            return Check(FAILED, f"executors cannot import {missing.group(1)} (ModuleNotFoundError): call "
                                "sparkimg_ml.ship(spark) after creating the session, or install sparkimg_ml "
                                "where the executors' Python runs (PYSPARK_PYTHON)")
        if missing:
            return Check(FAILED, f"executors cannot import {missing.group(1)}, a dependency of sparkimg_ml "
                                "(ModuleNotFoundError): run the executors on a Python that has sparkimg_ml's "
                                "dependencies (PYSPARK_PYTHON, or spark.archives with a packed virtualenv); "
                                "sparkimg_ml.ship(spark) sends the package only")
        line = next((ln.strip() for ln in text.splitlines()
                     if re.search(r"(Error|Exception):", ln) and "Traceback" not in ln), text.strip()[:300])
        return Check(FAILED, f"the one-task job failed: {line[:300]}")
    version, path = found[0]
    if version != __version__:
        return Check(FAILED, f"executors import sparkimg_ml {version} ({path}), the driver {__version__}: "
                            "call sparkimg_ml.ship(spark) or install the same version on the executors")
    return Check(OK, f"executors import sparkimg_ml {version} ({path})")


# --------------------------------------------------------------------------- the command

def _java_version() -> tuple[str | None, str]:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else (shutil.which("java") or "java")
    try:
        result = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None, java
    found = re.search(r'version "([^"]+)"', result.stderr + result.stdout)
    return (found.group(1) if found else None), java


def _distribution_version(name: str) -> str | None:
    return installed_version(name)


def _print_check(check: Any) -> None:
    print(f"  {check.status:<8} {check.line}")


def _doctor_dependencies() -> int:
    """Check ``install_requires`` and the extras as the installed metadata declares them; problems found."""
    from importlib import metadata

    from .. import __version__

    problems = 0
    try:
        core, extras = declared()
    except metadata.PackageNotFoundError:
        print("  MISSING  sparkimg_ml's installed metadata: this copy is imported from a source folder; install "
              "it (pip install sparkimg_ml, or pip install -e . in a checkout) so its dependencies can be checked")
        return 1
    meta_version = installed_version("sparkimg_ml")
    if meta_version != __version__:
        print(f"  note     the installed metadata is sparkimg_ml {meta_version}, but this is {__version__} from "
              f"{Path(__file__).parent.parent}: the checks follow that metadata; reinstall to refresh it")
    print("dependencies (install_requires):")
    for requirement in core:
        found = check(requirement, f"pip install '{requirement.text}'")
        problems += not found.ok
        _print_check(found)

    print("optional extras:")
    for extra, requirements in sorted(extras.items()):
        hint = f"pip install 'sparkimg_ml[{extra}]'"
        results = [check(requirement, hint) for requirement in requirements]
        broken = [r for r in results if r.status == "FAILED"]
        absent = [req.name for req, r in zip(requirements, results) if r.status == "MISSING"]
        problems += len(broken)
        modules = ", ".join(f"{module_name(req.name)}" for req in requirements)
        if broken:
            for result in broken:
                print(f"  FAILED   [{extra}] {result.line}")
        elif absent:
            print(f"  no       [{extra}] needs {', '.join(absent)} -> {hint}")
        else:
            print(f"  ok       [{extra}] {', '.join(r.line for r in results)} (imported: {modules})")
        if extra == "hdfs":
            libhdfs = os.environ.get("ARROW_LIBHDFS_DIR") or os.environ.get("HADOOP_HOME")
            print("           hdfs:// also needs Hadoop's libhdfs and a JVM, which pip cannot install: "
                  + (f"found {libhdfs}" if libhdfs else "set HADOOP_HOME (or ARROW_LIBHDFS_DIR) where they are")
                  + "; webhdfs:// needs only this extra")
    return problems


def _doctor_spark(args: argparse.Namespace) -> int:
    """Start a session the way the user's jobs do and prove its executors can import the package."""
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    from pyspark.sql import SparkSession

    worker_python = os.environ.get("PYSPARK_PYTHON")
    print(f"executors (--spark, master {args.master}; Python workers run "
          f"{worker_python or 'python3 from PATH'} unless the cluster sets its own):")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (SparkSession.builder.master(args.master).appName("sparkimg-ml doctor")
               .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
               .config(DRIVER_JAVA_OPTIONS, f"-Dlog4j2.configurationFile={LOG_CONFIG.as_uri()}"))
    for key, value in parse_confs(args.conf).items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - no session is the finding
        print(f"  FAILED   could not start Spark: {one_line(exc)}")
        return 1
    try:
        spark.sparkContext.setLogLevel("FATAL")
        found = executors_import(spark)
    finally:
        spark.stop()
    _print_check(found)
    return 0 if found.ok else 1


def run_doctor(args: argparse.Namespace) -> int:
    """``sparkimg-ml doctor``: what is installed, what is missing and what to install; 0 when all is well."""
    from PIL import Image, features

    from .. import __version__
    from ..image import ACCEPTED_FORMATS

    problems = 0
    print(f"sparkimg_ml {__version__} on Python {sys.version.split()[0]} ({sys.executable})")
    version, java = _java_version()
    major_match = re.match(r"(?:1\.)?(\d+)", version or "")  # "1.8.0_392" is Java 8, "17.0.15" Java 17
    major = int(major_match.group(1)) if major_match else 0
    if major >= 17:
        print(f"  ok       Java {version} ({java})")
    else:
        problems += 1
        found = f"Java {version}" if version else "no Java"
        print(f"  MISSING  {found} at {java}: Spark needs Java 17 or newer. Debian/Ubuntu: "
              "sudo apt-get install -y openjdk-17-jre-headless, or set JAVA_HOME to a JDK 17+")
    problems += _doctor_dependencies()

    print(f"supported combinations: {supported_summary()}")
    combination = python_pyspark_java(sys.version_info[:2], _distribution_version("pyspark"), major or None)
    for finding in combination:
        problems += not finding.ok
        _print_check(finding)

    print("image codecs (Pillow):")
    turbo = features.check_feature("libjpeg_turbo")
    jpeg_version = features.version_codec("jpg")
    print(f"  {'ok' if jpeg_version else 'MISSING':<8} JPEG {jpeg_version or ''}"
          f"{' (libjpeg-turbo)' if turbo else ' (not libjpeg-turbo: slower decoding)' if jpeg_version else ''}")
    for label, module in (("WebP", "webp"), ("AVIF", "avif")):
        try:
            present = bool(features.check_module(module))
        except ValueError:  # a Pillow too old to know the module
            present = False
        hint = "" if present else f": this Pillow cannot read {label}; a newer Pillow wheel (pip install -U Pillow) can"
        print(f"  {'ok' if present else 'no':<8} {label}{hint}")
    readable = [name for name in ACCEPTED_FORMATS if name in Image.OPEN]
    print(f"  formats read by the featurizer: {', '.join(readable)}")

    if args.spark and not problems:
        problems += _doctor_spark(args)
    elif args.spark:
        print("executors: not checked (fix the problems above first)")
    print("everything needed is present" if not problems else f"{problems} problem(s) found")
    return 0 if not problems else 1

