"""The commands that run Spark: ``featurize``, ``embed`` and ``preview``.

Each checks everything it can before Spark starts (options, input, output,
model), then reads the input, spreads it over the cores, runs the stage, writes
the output and prints a summary per reason code (``failure_report``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path
from typing import Any

from ..errors import find_row_failure
from ..sources import spread
from ..sources.partitions import partition_count
from .inputs import InputPlan, choose_input_col, read_input, resolve_input
from .options import StageOptions, UsageError
from .spark import start_session

OUTPUT_FORMATS = ("parquet", "csv", "delta")


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _local_path(path: str) -> Path:
    return Path(path[len("file://"):] if path.startswith("file://") else path)


def _remove_if_empty(path: str) -> None:
    if _is_local(path):
        try:
            _local_path(path).rmdir()
        except OSError:  # missing or not empty: leave it
            pass


def one_line(exc: BaseException) -> str:
    """The useful line of a (possibly JVM-wrapped) error; a bad row is told by its reason code."""
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


def output_format(args: argparse.Namespace) -> str:
    """``--format``, else from the output's extension (``.csv``, ``.delta``), else Parquet."""
    if args.format:
        fmt = str(args.format)
    else:
        suffix = Path(args.output.rstrip("/")).suffix.lower()
        fmt = {".csv": "csv", ".delta": "delta"}.get(suffix, "parquet")
    if fmt == "delta" and importlib.util.find_spec("delta") is None:
        raise UsageError("--format delta needs delta-spark (pip install delta-spark) and its jars on the "
                         "cluster; use --format parquet or csv otherwise")
    return fmt


def check_output(args: argparse.Namespace) -> None:
    if not args.output:
        raise UsageError("give the output with -o/--output")
    output = args.output
    if _is_local(output):
        target = _local_path(output)
        if target.exists() and not args.overwrite:
            raise UsageError(f"output {output!r} already exists; pass --overwrite to replace it")
        if not target.absolute().parent.exists():
            raise UsageError(f"the folder of output {output!r} does not exist")
    if args.stats_json and not Path(args.stats_json).absolute().parent.exists():
        raise UsageError(f"the folder of --stats-json {args.stats_json!r} does not exist")


def prepare(args: argparse.Namespace, stage_options: StageOptions) -> tuple[InputPlan, Any]:
    """The checked input and the stage, before Spark starts."""
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be >= 1, got {args.limit}")
    if getattr(args, "partitions", None) is not None and args.partitions < 1:
        raise UsageError(f"--partitions must be >= 1, got {args.partitions}")
    stage = stage_options.build(args)
    plan = resolve_input(args.input, args.input_format, args.header)
    stage.setParams(inputCol=choose_input_col(plan, args.param_inputCol))
    return plan, stage


def _spread(table: Any, args: argparse.Namespace) -> Any:
    if args.limit is not None:
        table = table.limit(args.limit)
    return table.repartition(args.partitions) if args.partitions else spread(table)


def _write(result: Any, args: argparse.Namespace, fmt: str, stage: Any, input_columns: Any) -> None:
    from pyspark.sql.types import ArrayType, BinaryType, MapType, StructType

    mode = "overwrite" if args.overwrite else "errorifexists"
    if fmt == "csv":
        error_col = stage.getErrorCol()
        if not error_col:
            raise UsageError("--format csv writes the input columns and the reason of each row; it needs "
                             "--error-col")
        flat = [f.name for f in result.schema.fields
                if f.name in input_columns and not isinstance(f.dataType, (ArrayType, BinaryType, MapType,
                                                                          StructType))]
        result.select(*flat, error_col).write.mode(mode).option("header", "true").csv(args.output)
    elif fmt == "delta":
        result.write.mode(mode).format("delta").save(args.output)
    else:
        result.write.mode(mode).parquet(args.output)


def _read_back(spark: Any, args: argparse.Namespace, fmt: str) -> Any:
    if fmt == "csv":
        return spark.read.option("header", "true").csv(args.output)
    return spark.read.format(fmt).load(args.output)


def run_stage(args: argparse.Namespace, stage_options: StageOptions, verb: str) -> int:
    """``featurize`` and ``embed``: read, spread, transform, write, summarise."""
    from ..preview import failure_report

    check_output(args)
    fmt = output_format(args)
    plan, stage = prepare(args, stage_options)
    if verb == "embedded":
        try:
            stage.outputMetadata()  # reads and checks the model now, not after Spark started
        except Exception as exc:  # noqa: BLE001 - any model problem is the user's to fix
            raise UsageError(f"--model: {one_line(exc)}") from None
    spark = start_session(args, f"sparkimg-ml {args.command}", progress=not args.quiet)
    try:
        table = read_input(spark, plan)
        source = _spread(table, args)
        try:
            result = stage.transform(source)
        except (TypeError, ValueError) as exc:
            raise UsageError(one_line(exc)) from None
        started = time.perf_counter()
        try:
            _write(result, args, fmt, stage, table.columns)
        except Exception:
            _remove_if_empty(args.output)  # a failed first write leaves an empty folder that blocks the next try
            raise
        elapsed = time.perf_counter() - started
        written = _read_back(spark, args, fmt)
        error_col = stage.getErrorCol()
        if error_col:
            report = failure_report(written, error_col, source_col=stage.getInputCol())
            rows, counts, summary = report.total_rows, report.counts(), str(report)
        else:
            rows, counts, summary = written.count(), None, "no --error-col: failures are not recorded"
        stats: dict[str, Any] = {
            "command": args.command, "input": args.input, "output": args.output, "format": fmt, "rows": rows,
            "failed": None if counts is None else sum(counts.values()), "reasons": counts,
            "seconds": round(elapsed, 3), "partitions": partition_count(source),
        }
        if not args.quiet:
            for note in plan.notes:
                print(f"note: {note}")
            print(f"{verb} {rows} rows in {elapsed:.1f} s ({rows / max(elapsed, 1e-9):.1f} images/s)")
            print(summary)
            print(f"output: {args.output} ({fmt}; columns: {', '.join(written.columns[:8])}"
                  f"{' ...' if len(written.columns) > 8 else ''})")
        if args.stats_json:
            Path(args.stats_json).write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    finally:
        spark.stop()
    return 0


def run_preview(args: argparse.Namespace, stage_options: StageOptions) -> int:
    """``preview``: a contact sheet of the first images, failures marked."""
    from ..preview import show_images
    from ..preview.grid import MAX_ROWS
    from ..preview.thumbnails import MAX_SIZE, MIN_SIZE

    if not (1 <= args.n <= MAX_ROWS and MIN_SIZE <= args.tile_size <= MAX_SIZE):
        raise UsageError(f"-n must be in [1, {MAX_ROWS}] and --tile-size in [{MIN_SIZE}, {MAX_SIZE}]")
    target = Path(args.output)
    if not target.absolute().parent.exists():
        raise UsageError(f"the folder of {str(target)!r} does not exist")
    args.limit, args.partitions = args.n, None
    plan, featurizer = prepare(args, stage_options)
    for name in args.caption or []:
        if plan.columns is not None and name not in plan.columns:
            raise UsageError(f"--caption {name!r} is not a column of the input; columns: "
                             f"{', '.join(plan.columns[:20])}")
    spark = start_session(args, "sparkimg-ml preview", progress=False)
    try:
        table = read_input(spark, plan).limit(args.n)
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
                                   error_col=featurizer.getErrorCol(), fetch_options=featurizer)
            else:
                grid = show_images(table, input_col, n=args.n, size=args.tile_size, captions=args.caption or (),
                                   fetch_options=featurizer)
        except (TypeError, ValueError) as exc:
            raise UsageError(str(exc)) from None
        grid.save(target, title=f"sparkimg-ml preview of {args.input}")
        if not args.quiet:
            print(f"wrote {target}: {len(grid)} images, {grid.failed} failed")
    finally:
        spark.stop()
    return 0

