"""The ``sparkimg-ml`` command: featurize a table, preview its images, check the installation.

::

    sparkimg-ml featurize urls.csv features.parquet --input-col url --size 32 32
    sparkimg-ml preview urls.csv --input-col url -o sheet.html
    sparkimg-ml doctor

Every :class:`~sparkimg_ml.ImageUrlFeaturizer` Param is an option named after
it (``colorMode`` -> ``--color-mode``), built from the stage's own Params and
constructor types, so the command follows the stage. Options are checked by the
Params' own converters before Spark starts; a wrong one is a one-line error
with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import types
import typing
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .errors import find_row_failure

#: Defaults of the command that differ from the stage's: keep bad rows and say why.
CLI_DEFAULTS: Dict[str, Any] = {"handleInvalid": "keep", "errorCol": "image_error"}
#: Short aliases for the most used Params.
ALIASES: Dict[str, List[str]] = {"imageSize": ["--size"]}
INPUT_FORMATS = ("auto", "parquet", "csv", "json")
#: The driver JVM's logging configuration: errors only.
LOG_CONFIG = Path(__file__).with_name("cli_log4j2.properties")
DRIVER_JAVA_OPTIONS = "spark.driver.extraJavaOptions"
EXIT_USAGE = 2


class UsageError(Exception):
    """A mistake in the command line or its inputs: printed as one line, exit code 2."""


# --------------------------------------------------------------------------- Params as options

def option_name(param_name: str) -> str:
    """``colorMode`` -> ``--color-mode``.

    Examples
    --------
    >>> option_name("maxConnectionsPerHost")
    '--max-connections-per-host'
    """
    return "--" + re.sub(r"(?<!^)(?=[A-Z])", "-", param_name).lower()


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "yes", "1", "on"):
        return True
    if value in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _parse_json_object(text: str) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(
            f"expected a JSON object, e.g. '{{\"key\": \"value\"}}' ({exc.msg})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _numbers_or_name(values: List[str]) -> Any:
    """``["imagenet"]`` -> ``"imagenet"``; ``["0.5", "0.5", "0.5"]`` -> floats."""
    if len(values) == 1:
        try:
            return [float(values[0])]
        except ValueError:
            return values[0]
    try:
        return [float(v) for v in values]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers or one preset name, got {' '.join(values)}") from None


#: ``typing.Union[...]`` and, on Python 3.10+, ``X | Y`` hints.
_UNION_ORIGINS = (typing.Union, getattr(types, "UnionType", typing.Union))


def _unwrap_optional(hint: Any) -> Any:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in _UNION_ORIGINS and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]
    return hint


def _is_sequence(hint: Any) -> bool:
    import collections.abc

    origin = typing.get_origin(hint)
    return origin in (list, tuple, collections.abc.Sequence)


def argument_for(hint: Any) -> Tuple[Dict[str, Any], Optional[Callable[[Any], Any]]]:
    """argparse keywords for a constructor type hint, and a post-conversion of the parsed value.

    Examples
    --------
    >>> argument_for(bool)[0]["metavar"], argument_for(typing.List[int])[0]["nargs"]
    ('{true,false}', '+')
    """
    hint = _unwrap_optional(hint)
    sequences = [arg for arg in typing.get_args(hint) if _is_sequence(arg)]
    if typing.get_origin(hint) in _UNION_ORIGINS and int in typing.get_args(hint) and sequences:
        hint = sequences[0]  # e.g. imageSize: a list of ints, or one int for a square
    if hint is bool:
        return {"type": _parse_bool, "metavar": "{true,false}"}, None
    if hint in (int, float, str):
        return {"type": hint, "metavar": "TEXT" if hint is str else hint.__name__.upper()}, None
    if typing.get_origin(hint) in _UNION_ORIGINS:  # e.g. a list of numbers or a preset name
        return {"nargs": "+", "metavar": "VALUE"}, _numbers_or_name
    if _is_sequence(hint):
        item = (typing.get_args(hint) or (str,))[0]
        item = item if item in (int, float, str) else str
        return {"nargs": "+", "type": item, "metavar": "TEXT" if item is str else item.__name__.upper()}, None
    if typing.get_origin(hint) is dict or hint is dict:
        return {"type": _parse_json_object, "metavar": "JSON"}, None
    return {"type": json.loads, "metavar": "JSON"}, None


def add_featurizer_options(parser: argparse.ArgumentParser) -> Dict[str, Any]:
    """Add one option per featurizer Param; returns ``{dest: (param name, post-conversion)}``."""
    from .featurizer import FeaturizerParamValues, ImageUrlFeaturizer

    stage = ImageUrlFeaturizer()
    hints = typing.get_type_hints(FeaturizerParamValues)
    group = parser.add_argument_group(
        "ImageUrlFeaturizer Params", "every Param of the featurizer, named --param-name (see the README's Params table)")
    options: Dict[str, Any] = {}
    for param in sorted(stage.params, key=lambda p: p.name):
        keywords, post = argument_for(hints.get(param.name, str))
        default = CLI_DEFAULTS.get(param.name, stage.getOrDefault(param) if stage.hasDefault(param) else None)
        shown = "" if default is None else f" (default: {json.dumps(default)})"
        help_text = (param.doc + shown).replace("%", "%%")
        dest = f"param_{param.name}"
        names = [option_name(param.name)] + ALIASES.get(param.name, [])
        group.add_argument(*names, dest=dest, default=None, help=help_text,
                           required=param.name == "inputCol", **keywords)
        options[dest] = (param.name, post)
    return options


def build_featurizer(args: argparse.Namespace, options: Dict[str, Any]) -> Any:
    """The featurizer the options describe, each value checked by its Param's converter."""
    from .featurizer import ImageUrlFeaturizer

    stage = ImageUrlFeaturizer()
    values = dict(CLI_DEFAULTS)
    for dest, (name, post) in options.items():
        value = getattr(args, dest)
        if value is not None:
            try:
                values[name] = post(value) if post else value
            except argparse.ArgumentTypeError as exc:
                raise UsageError(f"{option_name(name)}: {exc}") from None
    for name, value in values.items():
        try:
            stage._set(**{name: value})
        except (TypeError, ValueError) as exc:
            raise UsageError(f"{option_name(name)}: {exc}") from None
    return stage


# --------------------------------------------------------------------------- Spark plumbing

def _start_spark(master: str, confs: Sequence[str], app_name: str, progress: bool) -> Any:
    if master.startswith("local"):
        # Local workers run PYSPARK_PYTHON (else `python3` on PATH), which may not have this
        # package; this interpreter does.
        os.environ["PYSPARK_PYTHON"] = sys.executable
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    # pyspark warns about pandas 3 on every start; the command's output is its summary.
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    settings = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "true" if progress else "false"}
    for item in confs:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--conf expects KEY=VALUE, got {item!r}")
        settings[key] = value
    java_options = settings.get(DRIVER_JAVA_OPTIONS, "")
    # Spark's start-up lines and the JVM stack traces of a failed task would bury the command's own
    # one-line messages, unless the user brings a logging configuration.
    quiet_jvm = "log4j2.configurationFile" not in java_options
    if quiet_jvm:
        settings[DRIVER_JAVA_OPTIONS] = f"-Dlog4j2.configurationFile={LOG_CONFIG.as_uri()} {java_options}".strip()
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if quiet_jvm:
        spark.sparkContext.setLogLevel("FATAL")
    return spark


def _input_format(path: str, declared: str) -> str:
    if declared != "auto":
        return declared
    suffixes = [s.lower() for s in Path(path.rstrip("/")).suffixes]
    for suffix in reversed(suffixes):
        if suffix in (".csv", ".tsv"):
            return "csv"
        if suffix in (".json", ".jsonl", ".ndjson"):
            return "json"
        if suffix in (".parquet", ".pq"):
            return "parquet"
    return "parquet"


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _local_path(path: str) -> Path:
    return Path(path[len("file://"):] if path.startswith("file://") else path)


def _read_table(spark: Any, path: str, declared: str) -> Any:
    if _is_local(path) and not _local_path(path).exists():
        raise UsageError(f"input {path!r} does not exist")
    fmt = _input_format(path, declared)
    reader = spark.read
    if fmt == "csv":
        reader = reader.option("header", "true").option("inferSchema", "true")
        if path.lower().endswith(".tsv"):
            reader = reader.option("sep", "\t")
    return reader.format(fmt).load(path)


def _remove_if_empty(path: str) -> None:
    if _is_local(path):
        try:
            _local_path(path).rmdir()
        except OSError:  # missing or not empty: leave it
            pass


def _one_line(exc: BaseException) -> str:
    """The useful line of a (possibly JVM-wrapped) error."""
    text = str(exc)
    failure = find_row_failure(text)
    if failure is not None:  # a bad image under handleInvalid='error': say which row and why
        return (f"{failure.stage} could not read the image of row with {failure.column}={failure.source}: "
                f"{failure.reason} (reason code {failure.code}; --handle-invalid keep records such rows instead)")
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("Traceback", "File ", "at ", "JVM stacktrace")):
            return line[:500]
    return type(exc).__name__


# --------------------------------------------------------------------------- commands

def _featurize(args: argparse.Namespace, options: Dict[str, Any]) -> int:
    from .preview import failure_report

    featurizer = build_featurizer(args, options)
    output = args.output
    if _is_local(output) and _local_path(output).exists() and not args.overwrite:
        raise UsageError(f"output {output!r} already exists; pass --overwrite to replace it")
    spark = _start_spark(args.master, args.conf, "sparkimg-ml featurize", progress=not args.quiet)
    try:
        table = _read_table(spark, args.input, args.input_format)
        try:
            featurized = featurizer.transform(table)
        except (TypeError, ValueError) as exc:
            raise UsageError(str(exc)) from None
        started = time.perf_counter()
        try:
            featurized.write.mode("overwrite" if args.overwrite else "errorifexists").parquet(output)
        except Exception:
            _remove_if_empty(output)  # a failed first write leaves an empty folder that blocks the next try
            raise
        elapsed = time.perf_counter() - started
        error_col = featurizer.getErrorCol()
        written = spark.read.parquet(output)
        if error_col:
            report = failure_report(written, error_col, source_col=featurizer.getInputCol())
            rows, summary = report.total_rows, str(report)
        else:
            rows, summary = written.count(), "no errorCol: failures are not recorded"
        print(f"featurized {rows} rows in {elapsed:.1f} s ({rows / max(elapsed, 1e-9):.1f} images/s)")
        print(summary)
        print(f"output: {output} (columns: {', '.join(written.columns[:8])}"
              f"{' ...' if len(written.columns) > 8 else ''})")
    finally:
        spark.stop()
    return 0


def _preview(args: argparse.Namespace, options: Dict[str, Any]) -> int:
    from .preview import show_images

    featurizer = build_featurizer(args, options)
    target = Path(args.output)
    if not target.parent.exists():
        raise UsageError(f"the folder of {str(target)!r} does not exist")
    spark = _start_spark(args.master, args.conf, "sparkimg-ml preview", progress=False)
    try:
        table = _read_table(spark, args.input, args.input_format).limit(args.n)
        for name in args.caption or []:
            if name not in table.columns:
                raise UsageError(f"--caption {name!r} is not a column of the input; columns: "
                                 f"{', '.join(table.columns[:20])}")
        input_col = featurizer.getInputCol()
        try:
            if args.side_by_side:
                featurized = featurizer.transform(table)
                grid = show_images(featurized, featurizer.getOutputCol(), n=args.n, size=args.tile_size,
                                   captions=args.caption or (), side_by_side=True, source_col=input_col,
                                   error_col=featurizer.getErrorCol(), fetch_options=featurizer._fetch_options())
            else:
                grid = show_images(table, input_col, n=args.n, size=args.tile_size, captions=args.caption or (),
                                   fetch_options=featurizer._fetch_options())
        except (TypeError, ValueError) as exc:
            raise UsageError(str(exc)) from None
        grid.save(target, title=f"sparkimg-ml preview of {args.input}")
        print(f"wrote {target}: {len(grid)} images, {grid.failed} failed")
    finally:
        spark.stop()
    return 0


def _java_version() -> Tuple[Optional[str], str]:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else (shutil.which("java") or "java")
    try:
        result = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None, java
    found = re.search(r'version "([^"]+)"', result.stderr + result.stdout)
    return (found.group(1) if found else None), java


def _distribution_version(name: str) -> Optional[str]:
    from ._doctor import installed_version

    return installed_version(name)


def _print_check(check: Any) -> None:
    print(f"  {check.status:<8} {check.line}")


def _doctor_dependencies() -> int:
    """Check ``install_requires`` and the extras as the installed metadata declares them; problems found."""
    from importlib import metadata

    from . import __version__
    from ._doctor import check, declared, installed_version, module_name

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
              f"{Path(__file__).parent}: the checks follow that metadata; reinstall to refresh it")
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

    from ._doctor import executors_import

    worker_python = os.environ.get("PYSPARK_PYTHON")
    print(f"executors (--spark, master {args.master}; Python workers run "
          f"{worker_python or 'python3 from PATH'} unless the cluster sets its own):")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (SparkSession.builder.master(args.master).appName("sparkimg-ml doctor")
               .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
               .config(DRIVER_JAVA_OPTIONS, f"-Dlog4j2.configurationFile={LOG_CONFIG.as_uri()}"))
    for item in args.conf:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--conf expects KEY=VALUE, got {item!r}")
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - no session is the finding
        print(f"  FAILED   could not start Spark: {_one_line(exc)}")
        return 1
    try:
        spark.sparkContext.setLogLevel("FATAL")
        found = executors_import(spark)
    finally:
        spark.stop()
    _print_check(found)
    return 0 if found.ok else 1


def _doctor(args: argparse.Namespace) -> int:
    from PIL import Image, features

    from . import __version__
    from ._doctor import python_pyspark_java, supported_summary
    from .image import ACCEPTED_FORMATS

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


# --------------------------------------------------------------------------- parser

class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr and exit code 2 (never a traceback)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _add_spark_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--master", default="local[*]", help="Spark master (default: local[*])")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                        help="a Spark configuration value; repeatable")
    parser.add_argument("--input-format", choices=INPUT_FORMATS, default="auto",
                        help="format of INPUT (default: from its extension; a folder is Parquet)")


def build_parser() -> Tuple[argparse.ArgumentParser, Dict[str, Dict[str, Any]]]:
    """The ``sparkimg-ml`` argument parser and, per command, its featurizer options."""
    from . import __version__

    parser = _Parser(prog="sparkimg-ml", description="Images as features in Apache Spark ML, from the command line.")
    parser.add_argument("--version", action="version", version=f"sparkimg-ml {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    featurize = commands.add_parser(
        "featurize", help="featurize an image column of a Parquet/CSV/JSON table into Parquet",
        description="Read INPUT (Parquet, CSV with a header, or JSON lines), add the features and the "
                    "error column, write Parquet to OUTPUT, and print a summary.")
    featurize.add_argument("input", metavar="INPUT")
    featurize.add_argument("output", metavar="OUTPUT")
    featurize.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    featurize.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_spark_options(featurize)
    featurize_options = add_featurizer_options(featurize)

    preview = commands.add_parser(
        "preview", help="write an HTML contact sheet of the first images, failures marked",
        description="Write an HTML contact sheet of the first N images of INPUT's image column.")
    preview.add_argument("input", metavar="INPUT")
    preview.add_argument("-o", "--output", required=True, metavar="HTML", help="HTML file to write")
    preview.add_argument("-n", type=int, default=32, help="number of images (default: 32)")
    preview.add_argument("--tile-size", type=int, default=128, help="thumbnail size in pixels (default: 128)")
    preview.add_argument("--caption", action="append", metavar="COLUMN", help="column shown under each image; repeatable")
    preview.add_argument("--side-by-side", action="store_true",
                         help="show each source next to the featurizer's output (what the model sees)")
    _add_spark_options(preview)
    preview_options = add_featurizer_options(preview)

    doctor = commands.add_parser(
        "doctor", help="check Java, dependencies, supported versions, image codecs, extras (and executors)",
        description="Check Java, the dependencies and extras the installed package declares, whether this "
                    "Python/pyspark/Java combination is supported, and Pillow's codecs; say what to install for "
                    "anything missing. With --spark, also run a one-task Spark job that proves the executors "
                    "can import sparkimg_ml.")
    doctor.add_argument("--spark", action="store_true",
                        help="also start Spark and check that its executors can import sparkimg_ml")
    doctor.add_argument("--master", default="local[1]", help="Spark master for --spark (default: local[1])")
    doctor.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                        help="a Spark configuration value for --spark; repeatable")
    return parser, {"featurize": featurize_options, "preview": preview_options}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``sparkimg-ml`` console script."""
    parser, options = build_parser()
    args = parser.parse_args(argv)
    command = {"featurize": _featurize, "preview": _preview}.get(args.command)
    try:
        if command is None:
            return _doctor(args)
        if args.command == "preview":
            from .preview.grid import MAX_ROWS
            from .preview.thumbnails import MAX_SIZE, MIN_SIZE

            if not (1 <= args.n <= MAX_ROWS and MIN_SIZE <= args.tile_size <= MAX_SIZE):
                raise UsageError(f"-n must be in [1, {MAX_ROWS}] and --tile-size in [{MIN_SIZE}, {MAX_SIZE}]")
        return command(args, options[args.command])
    except UsageError as exc:
        print(f"sparkimg-ml {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("sparkimg-ml: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a failed Spark job: one line, not a JVM stack trace
        print(f"sparkimg-ml {args.command}: failed: {_one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
