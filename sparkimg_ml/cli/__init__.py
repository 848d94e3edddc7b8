"""The ``sparkimg-ml`` command: featurize or embed a table of images, preview it, check the installation.

::

    sparkimg-ml featurize urls.csv -o features.parquet --size 224
    sparkimg-ml featurize 'photos/**/*.jpg' -o features.parquet --size 224x224 --tensor-format uint8
    sparkimg-ml embed urls.txt -o embeddings.parquet --model resnet50.onnx --mean imagenet --std imagenet
    sparkimg-ml preview urls.csv --input-col url -o sheet.html
    sparkimg-ml doctor

Every Param of the stage is an option named after it (``colorMode`` ->
``--color-mode``), built from the stage's own Params and keyword types
(:mod:`.options`), so the command follows the stage. Inputs are checked
before Spark starts (:mod:`.inputs`); a wrong option or input is a one-line
error with exit code 2, a failed job one line with exit code 1.
"""

from __future__ import annotations

import argparse
import sys
import traceback
import typing
from collections.abc import Sequence
from typing import Any

from .inputs import INPUT_FORMATS
from .options import StageOptions, UsageError, add_stage_options, option_name
from .spark import add_spark_options

__all__ = ["main", "build_parser", "option_name", "UsageError"]

#: Defaults of the command that differ from the stages': keep bad rows and say why.
CLI_DEFAULTS: dict[str, Any] = {"handleInvalid": "keep", "errorCol": "image_error"}
#: The stage's outputFormat is the tensor's form; --format is the output FILE's format.
RENAMES = {"outputFormat": "--tensor-format"}
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr and exit code 2 (never a traceback)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _add_common(parser: argparse.ArgumentParser) -> None:
    talk = parser.add_mutually_exclusive_group()
    talk.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors (no progress bar)")
    talk.add_argument("-v", "--verbose", action="store_true",
                      help="show Spark's warnings and, when something fails, the full Python traceback")


def _add_input_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("input")
    group.add_argument("--input-format", choices=INPUT_FORMATS, default="auto",
                       help="what INPUT is (default: from its name and content: a folder of Parquet or of "
                            "images, .csv/.tsv, .json/.jsonl, .txt URL list, a glob of images)")
    group.add_argument("--header", dest="header", action="store_true", default=None,
                       help="the CSV's first row names the columns (default: detected: a first row of URLs or "
                            "paths is data)")
    group.add_argument("--no-header", dest="header", action="store_false",
                       help="the CSV has no header row: its columns are _c0, _c1, ...")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("run and output")
    group.add_argument("-o", "--output", metavar="PATH", help="where to write the result (a folder)")
    group.add_argument("--format", choices=("parquet", "csv", "delta"), default=None,
                       help="the output's file format: parquet (every column and the tensor), csv (the input "
                            "columns and each row's reason, no tensor) or delta (needs delta-spark) (default: "
                            "from the output's extension, else parquet)")
    group.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    group.add_argument("--partitions", type=int, metavar="N",
                       help="fetch in N partitions (default: 2 per core when the input has fewer)")
    group.add_argument("--limit", type=int, metavar="N", help="only the first N rows of the input")
    group.add_argument("--stats-json", metavar="PATH",
                       help="also write a JSON summary: rows, failures per reason code, seconds, output")


_INPUT_HELP = ("a Parquet/CSV/JSON-lines table, a .txt URL list (one per line; blank and # lines skipped), a folder "
               "or glob of images ('photos/**/*.jpg'), or - for a URL list on stdin")


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, StageOptions]]:
    """The ``sparkimg-ml`` argument parser and, per command, the options made from its stage's Params."""
    from .. import __version__
    from ..embedder import EmbedderParamValues, ImageEmbedder
    from ..featurizer import FeaturizerParamValues, ImageUrlFeaturizer

    parser = _Parser(prog="sparkimg-ml", description="Images as features in Apache Spark ML, from the command line.")
    parser.add_argument("--version", action="version", version=f"sparkimg-ml {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    featurize = commands.add_parser(
        "featurize", help="featurize the images of a table, a URL list or a folder into tensors",
        description="Read INPUT, add each image's tensor and the reason of every bad row, write OUTPUT "
                    "(Parquet by default) and print a summary per reason code.")
    featurize.add_argument("input", metavar="INPUT", help=_INPUT_HELP)
    featurize.add_argument("output_positional", metavar="OUTPUT", nargs="?",
                           help="the output (the same as -o; kept for earlier command lines)")
    _add_common(featurize)
    _add_run_options(featurize)
    _add_input_options(featurize)
    add_spark_options(featurize)
    stages = {"featurize": add_stage_options(
        featurize, ImageUrlFeaturizer, FeaturizerParamValues, defaults=CLI_DEFAULTS, renames=RENAMES,
        aliases={"imageSize": ["--size"]})}

    embed = commands.add_parser(
        "embed", help="run an ONNX model over the images: one embedding per row",
        description="Read INPUT, add each image's embedding from the ONNX model --model and the reason of every "
                    "bad row, write OUTPUT (Parquet by default) and print a summary per reason code.")
    embed.add_argument("input", metavar="INPUT", help=_INPUT_HELP)
    _add_common(embed)
    _add_run_options(embed)
    _add_input_options(embed)
    add_spark_options(embed)
    stages["embed"] = add_stage_options(
        embed, ImageEmbedder, EmbedderParamValues, defaults=CLI_DEFAULTS, renames=RENAMES,
        aliases={"imageSize": ["--size"], "modelUri": ["--model"]}, required=["modelUri"],
        shown_defaults={"imageSize": "from the model's input", "layout": "from the model's input"})

    preview = commands.add_parser(
        "preview", help="write an HTML contact sheet of the first images, failures marked",
        description="Write an HTML contact sheet of the first N images of INPUT.")
    preview.add_argument("input", metavar="INPUT", help=_INPUT_HELP)
    _add_common(preview)
    preview.add_argument("-o", "--output", required=True, metavar="HTML", help="HTML file to write")
    preview.add_argument("-n", type=int, default=32, help="number of images (default: 32)")
    preview.add_argument("--tile-size", type=int, default=128, help="thumbnail size in pixels (default: 128)")
    preview.add_argument("--caption", action="append", metavar="COLUMN", help="column shown under each image; repeatable")
    preview.add_argument("--side-by-side", action="store_true",
                         help="show each source next to the featurizer's output (what the model sees; --size is "
                              "the model's input size)")
    _add_input_options(preview)
    add_spark_options(preview)
    stages["preview"] = add_stage_options(
        preview, ImageUrlFeaturizer, FeaturizerParamValues, defaults=CLI_DEFAULTS, renames=RENAMES,
        aliases={"imageSize": ["--size"]})

    doctor = commands.add_parser(
        "doctor", help="check Java, dependencies, supported versions, image codecs, extras (and executors)",
        description="Check Java, the dependencies and extras the installed package declares, whether this "
                    "Python/pyspark/Java combination is supported, and Pillow's codecs; say what to install for "
                    "anything missing. With --spark, also run a one-task Spark job that proves the executors "
                    "can import sparkimg_ml.")
    _add_common(doctor)
    doctor.add_argument("--spark", action="store_true",
                        help="also start Spark and check that its executors can import sparkimg_ml")
    doctor.add_argument("--master", default="local[1]", help="Spark master for --spark (default: local[1])")
    doctor.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                        help="a Spark configuration value for --spark; repeatable")
    return parser, stages


def _run(args: argparse.Namespace, stages: dict[str, StageOptions]) -> int:
    from .commands import run_preview, run_stage
    from .doctor import run_doctor
    from .spark import check_remote, parse_confs

    if args.command == "doctor":
        return run_doctor(args)
    parse_confs(args.conf)
    if args.remote:
        check_remote(args.remote)
    if args.command == "preview":
        return run_preview(args, stages["preview"])
    if args.command == "featurize" and args.output_positional:
        if args.output and args.output != args.output_positional:
            raise UsageError(f"two outputs: {args.output_positional!r} and -o {args.output!r}; give one")
        args.output = args.output_positional
    return run_stage(args, stages[args.command], "featurized" if args.command == "featurize" else "embedded")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sparkimg-ml`` console script."""
    from .commands import one_line

    parser, stages = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args, stages)
    except UsageError as exc:
        print(f"sparkimg-ml {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("sparkimg-ml: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a failed Spark job: one line, not a JVM stack trace
        if getattr(args, "verbose", False):
            traceback.print_exc()
        print(f"sparkimg-ml {args.command}: failed: {one_line(exc)}", file=sys.stderr)
        return 1

