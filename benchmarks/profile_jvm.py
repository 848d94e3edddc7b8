"""Where the JVM's CPU goes while ImageUrlFeaturizer runs: a Java Flight Recorder profile.

    python -m benchmarks.profile_jvm                          # local files -> 32x32x3 Vector
    python -m benchmarks.profile_jvm --size 224 --output-format uint8 --images 500

Runs the featurizer over the benchmark corpus (``benchmarks/corpus.py``, built or
reused) in ``local[2]`` with JFR recording the driver JVM, writes to Spark's
``noop`` sink, then reports the JVM's CPU time by thread group (executor tasks,
JIT compilers, garbage collector, ...; from ``/proc``, after a warm-up run) and
groups the executor threads' CPU samples by what the frames
on their stacks belong to (Parquet scan, Arrow towards Python, Python results
back into rows, ...). A sample counts for the first group that matches any frame
from the top of its stack down, so the shares add up to 100 %. The Python
workers' time is not in this profile (see ``benchmarks.bench_decode`` and
``benchmarks.run`` for it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

#: (group, substrings of a frame's "class.method") in matching order, most specific first.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Python results -> rows (Arrow read, Vector/array rows)",
     ("ArrowColumnVector", "execution.python.PythonArrowOutput", "ArrowEvalPython", "arrow.vector.",
      "ColumnarBatchRow", "ColumnarArray", "vectorized.ColumnarBatch")),
    ("rows -> Arrow towards Python (input column)",
     ("execution.arrow.ArrowWriter", "PythonArrowInput", "arrow.ArrowFieldWriter")),
    ("socket / stream I/O with Python workers",
     ("java.net.", "sun.nio.ch.", "java.io.DataOutputStream", "java.io.BufferedOutputStream",
      "java.io.DataInputStream", "PythonRunner")),
    ("Parquet scan of the wide table", ("org.apache.parquet.", "parquet.VectorizedParquetRecordReader",
                                        "datasources.parquet", "datasources.FileScanRDD")),
    ("generated projections / UnsafeRow copies", ("GeneratedClass", "catalyst.expressions.Unsafe",
                                                   "UnsafeRowWriter", "UnsafeArrayWriter", "UnsafeProjection")),
    ("noop sink and task plumbing", ("datasources.noop", "v2.DataWritingSparkTask", "v2.WritingSparkTask",
                                     "scheduler.", "executor.Executor")),
)
OTHER = "other"


def frame_name(frame: dict) -> str:
    method = frame.get("method") or {}
    klass = (method.get("type") or {}).get("name") or ""
    return f"{klass.replace('/', '.')}.{method.get('name', '')}"


def group_of(frames: Sequence[str]) -> str:
    """The first group any frame (top of stack first) belongs to."""
    for frame in frames:
        for group, needles in GROUPS:
            if any(needle in frame for needle in needles):
                return group
    return OTHER


def executor_samples(recording: Path) -> Iterable[tuple[str, list[str]]]:
    """(thread name, frames top first) of every CPU sample in ``recording``."""
    printed = subprocess.run(["jfr", "print", "--json", "--stack-depth", "96", "--events",
                              "jdk.ExecutionSample", str(recording)], check=True, capture_output=True,
                             text=True).stdout
    for event in json.loads(printed)["recording"]["events"]:
        values = event["values"]
        thread = (values.get("sampledThread") or {}).get("javaName") or ""
        frames = [frame_name(f) for f in (values.get("stackTrace") or {}).get("frames") or []]
        yield thread, frames


def summarise(recording: Path, top: int) -> str:
    groups: Counter = Counter()
    methods: Counter = Counter()
    total = 0
    for thread, frames in executor_samples(recording):
        if "Executor task launch worker" not in thread or not frames:
            continue
        total += 1
        groups[group_of(frames)] += 1
        methods[frames[0]] += 1
    if not total:
        return "no executor samples recorded"
    lines = [f"{total} CPU samples on executor threads", "", "| where | share |", "|---|---|"]
    lines += [f"| {group} | {count / total:.0%} |" for group, count in groups.most_common()]
    lines += ["", f"top {top} methods (self time):"]
    lines += [f"  {count / total:6.1%}  {method}" for method, count in methods.most_common(top)]
    return "\n".join(lines)


#: Groups of JVM threads by name (``/proc/<pid>/task/<tid>/comm``, 15 characters).
THREAD_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("executor tasks", ("Executor task",)),
    ("JIT compilers", ("C1 CompilerThre", "C2 CompilerThre")),
    ("garbage collector", ("GC Thread", "G1 ", "VM Thread")),
)  # Spark 4 feeds Python workers from the task thread itself: its I/O counts under "executor tasks".


def thread_cpu_seconds(pid: int) -> Counter:
    """CPU seconds (user + system) of the process's threads so far, by :data:`THREAD_GROUPS`."""
    ticks = os.sysconf("SC_CLK_TCK")
    spent: Counter = Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        group = next((g for g, prefixes in THREAD_GROUPS if name.startswith(prefixes)), "other JVM threads")
        spent[group] += (int(fields[11]) + int(fields[12])) / ticks
    return spent


def run(args: argparse.Namespace, recording: Path) -> Counter:
    """Record the featurizer's runs; returns the JVM threads' CPU seconds spent in them, by group."""
    from benchmarks.contenders import featurizer
    from benchmarks.corpus import DEFAULT_CACHE_DIR, CorpusSpec, build_corpus
    from benchmarks.run import start_spark

    corpus = build_corpus(CorpusSpec(images=args.images), DEFAULT_CACHE_DIR)
    spark = start_spark("profile_jvm", {
        "spark.driver.extraJavaOptions": "-XX:StartFlightRecording=name=featurizer,settings=profile"})
    try:
        table = spark.read.parquet(str(corpus.table))
        stage = featurizer("path", args.size, args.size, outputFormat=args.output_format)
        jvm_pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
        stage.transform(table).write.format("noop").mode("overwrite").save()  # warm-up, not counted
        before = thread_cpu_seconds(jvm_pid)
        for _ in range(args.repeats):
            stage.transform(table).write.format("noop").mode("overwrite").save()
        spent = thread_cpu_seconds(jvm_pid)
        spent.subtract(before)
        subprocess.run(["jcmd", str(jvm_pid), "JFR.dump", "name=featurizer", f"filename={recording}"],
                       check=True, capture_output=True)
    finally:
        spark.stop()
    return spent


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_jvm", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32, help="output height and width (default 32)")
    parser.add_argument("--output-format", choices=["vector", "array", "uint8"], default="vector")
    parser.add_argument("--images", type=int, default=2000, help="corpus images (default 2000)")
    parser.add_argument("--repeats", type=int, default=2, help="featurizer runs recorded (default 2)")
    parser.add_argument("--top", type=int, default=15, help="hottest methods listed (default 15)")
    parser.add_argument("--recording", type=Path, help="keep the .jfr file here (default: a temporary file)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        recording = args.recording or Path(scratch) / "featurizer.jfr"
        spent = run(args, recording)
        rows = args.images * args.repeats
        print(f"JVM CPU by thread group over {args.repeats} runs of {args.images} images (after a warm-up run):")
        print("| threads | CPU ms per image | share |\n|---|---|---|")
        total = sum(spent.values())
        for group, seconds in spent.most_common():
            print(f"| {group} | {1000 * seconds / rows:.2f} | {seconds / total:.0%} |")
        print(f"| all | {1000 * total / rows:.2f} | 100% |\n")
        print("Executor threads, CPU samples of Java code:")
        print(summarise(recording, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
