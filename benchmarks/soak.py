"""Soak: a long ``keep`` job over loopback HTTP keeps every row, with flat memory and steady throughput.

``python -m benchmarks.soak --rows 1000000`` featurizes ``--rows`` distinct URLs
(cycling over a small generated corpus of JPEGs served by a loopback server with
``--latency-ms`` per request) with ``handleInvalid="keep"``, ``--extra-columns``
filler columns carried along, and writes them to Parquet in ten jobs of one
decile each (one Spark session, Python workers reused across deciles, so a leak
in a worker shows as growth from decile to decile). 1 % of the rows are broken,
a third each: HTTP 404, a body that is not an image, and a refused connection.

While each decile runs, the Spark Python workers' RSS, threads and open file
descriptors are sampled (psutil, summed over the workers, peak per decile).
Then the Parquet output is read back. Checks (exit status 1 when one fails):

* every row is present exactly once, with a vector xor a reason;
* the reasons are exactly the broken rows: ``http_404``, ``decode``, ``connection``, one count each;
* worker RSS in the last decile is at most 1.2x the second decile's;
* throughput of every decile after the first is within ``--tolerance`` (10 %) of their median
  (the first decile also pays for starting the Python workers and warming the JIT).

The report (JSON on stdout with ``--json``, a table on stderr) gives rows/s, RSS,
threads and fds per decile.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from PIL import Image

from .measure import ProcessTree
from .run import jvm_pid, log, start_spark
from .server import serve_in_subprocess

#: One broken row of each kind in every BROKEN_PERIOD rows: 3 / 300 = 1 %.
BROKEN_PERIOD = 300
BROKEN = {0: "http_404", 100: "decode", 200: "connection"}
CORPUS_SIZE = 64
IMAGE_SIZE = [16, 16]
DECILES = 10
SAMPLE_S = 0.5


@dataclass
class Decile:
    index: int
    rows: int
    seconds: float
    worker_rss_mb: float = 0.0
    worker_threads: int = 0
    worker_fds: int = 0
    workers: int = 0

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds


@dataclass
class Report:
    rows: int
    latency_ms: float
    extra_columns: int
    deciles: list[Decile] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    expected_counts: dict[str, int] = field(default_factory=dict)
    checks: dict[str, tuple[bool, str]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(ok for ok, _ in self.checks.values())

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for decile, row in zip(self.deciles, out["deciles"]):
            row["rows_per_s"] = round(decile.rows_per_s, 1)
        out["passed"] = self.passed
        return out


def expected_counts(rows: int) -> dict[str, int]:
    """Reason code -> rows, for ids 0..rows-1 (the same rule as :func:`url_column`)."""
    counts = {code: sum(1 for _ in range(offset, rows, BROKEN_PERIOD)) for offset, code in BROKEN.items()}
    counts["ok"] = rows - sum(counts.values())
    return counts


def write_corpus(root: Path) -> None:
    """CORPUS_SIZE small JPEGs (seeded noise) and one file that is not an image."""
    rng = np.random.default_rng(0)
    (root / "img").mkdir()
    for index in range(CORPUS_SIZE):
        pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
        (root / "img" / f"{index}.jpg").write_bytes(buffer.getvalue())
    (root / "page.jpg").write_text("<html>this is not an image</html>")


def refused_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def url_column(base: str, dead: str):  # type: ignore[no-untyped-def]
    """A distinct URL per id: the corpus image ``id % CORPUS_SIZE``, or one of the broken kinds."""
    from pyspark.sql import functions as F

    ident = F.col("id").cast("string")
    kind = F.col("id") % BROKEN_PERIOD
    image = F.concat(F.lit(f"{base}/img/"), (F.col("id") % CORPUS_SIZE).cast("string"), F.lit(".jpg?row="), ident)
    return (F.when(kind == 0, F.concat(F.lit(f"{base}/missing/"), ident, F.lit(".jpg")))
            .when(kind == 100, F.concat(F.lit(f"{base}/page.jpg?row="), ident))
            .when(kind == 200, F.concat(F.lit(f"{dead}/x.jpg?row="), ident))
            .otherwise(image))


class WorkerSampler:
    """Peak RSS, threads and fds of the Spark Python workers (summed over them) while running."""

    def __init__(self, tree: ProcessTree) -> None:
        self.tree = tree
        self.peak: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self.sample()

    def sample(self) -> None:
        totals = {"rss": 0.0, "threads": 0.0, "fds": 0.0, "workers": 0.0}
        for proc in self.tree.members()["workers"]:
            try:
                with proc.oneshot():
                    totals["rss"] += proc.memory_info().rss
                    totals["threads"] += proc.num_threads()
                    totals["fds"] += proc.num_fds()
                    totals["workers"] += 1
            except psutil.Error:
                continue
        for key, value in totals.items():
            self.peak[key] = max(self.peak.get(key, 0.0), value)

    def __enter__(self) -> WorkerSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def run(rows: int, latency_ms: float, extra_columns: int, tolerance: float, partitions_per_decile: int,
        workdir: Path) -> Report:
    from pyspark.sql import functions as F

    from sparkimg_ml import ImageUrlFeaturizer

    report = Report(rows=rows, latency_ms=latency_ms, extra_columns=extra_columns)
    corpus = workdir / "corpus"
    corpus.mkdir()
    write_corpus(corpus)
    output = workdir / "out.parquet"
    spark = start_spark("sparkimg_ml-soak", {"spark.python.worker.reuse": "true"})
    tree = ProcessTree(jvm_pid(spark))
    stage = ImageUrlFeaturizer(inputCol="url", outputCol="features", imageSize=IMAGE_SIZE, handleInvalid="keep",
                               errorCol="error", maxRetries=0, timeout=30.0)
    with serve_in_subprocess(corpus, latency_ms) as (base, _):
        dead = f"http://127.0.0.1:{refused_port()}"
        bounds = [rows * i // DECILES for i in range(DECILES + 1)]
        for index in range(DECILES):
            start, end = bounds[index], bounds[index + 1]
            frame = spark.range(start, end, numPartitions=partitions_per_decile).withColumn("url", url_column(base, dead))
            for extra in range(extra_columns):
                frame = frame.withColumn(f"extra_{extra}", F.concat(F.lit(f"c{extra}-"), F.col("id").cast("string")))
            with WorkerSampler(tree) as sampler:
                began = time.monotonic()
                stage.transform(frame).write.mode("append").parquet(str(output))
                seconds = time.monotonic() - began
            decile = Decile(index + 1, end - start, seconds, round(sampler.peak["rss"] / 2 ** 20, 1),
                            int(sampler.peak["threads"]), int(sampler.peak["fds"]), int(sampler.peak["workers"]))
            report.deciles.append(decile)
            log(f"decile {decile.index:2d}: {decile.rows} rows in {decile.seconds:.1f} s "
                f"({decile.rows_per_s:.0f} rows/s), workers {decile.workers}, RSS {decile.worker_rss_mb:.0f} MB, "
                f"threads {decile.worker_threads}, fds {decile.worker_fds}")

    written = spark.read.parquet(str(output))
    totals = written.agg(
        F.count("*").alias("rows"), F.countDistinct("id").alias("ids"),
        F.sum(((F.col("features").isNull()) != (F.col("error").isNull())).cast("int")).alias("xor"),
        F.sum(F.col(f"extra_{extra_columns - 1}").isNotNull().cast("int") if extra_columns else F.lit(0)).alias("extra"),
    ).first()
    assert totals is not None
    reasons = written.where(F.col("error").isNotNull()).groupBy(F.split("error", ":")[0].alias("code")).count()
    report.counts = {row["code"]: int(row["count"]) for row in reasons.collect()}
    report.counts["ok"] = int(written.where(F.col("features").isNotNull()).count())
    report.expected_counts = expected_counts(rows)
    sample = written.where(F.col("error").isNotNull()).select("error").distinct().limit(10).collect()
    spark.stop()

    report.checks["every row once"] = (
        totals["rows"] == rows and totals["ids"] == rows,
        f"{totals['rows']} rows, {totals['ids']} distinct ids, expected {rows}")
    report.checks["vector xor reason"] = (totals["xor"] == rows, f"{totals['xor']} of {rows} rows")
    report.checks["extra columns carried"] = (
        extra_columns == 0 or totals["extra"] == rows, f"{totals['extra']} of {rows} rows")
    report.checks["exact counts per reason"] = (
        report.counts == report.expected_counts,
        f"{report.counts} vs {report.expected_counts}; reasons seen: {sorted(r['error'] for r in sample)}")
    report.checks.update(steady_checks(report.deciles, tolerance))
    return report


def steady_checks(deciles: Sequence[Decile], tolerance: float) -> dict[str, tuple[bool, str]]:
    """Worker RSS of the last decile within 1.2x the second's; deciles 2.. within ``tolerance`` of their median."""
    second, last = deciles[1], deciles[-1]
    checks = {"worker RSS flat": (
        last.worker_rss_mb <= 1.2 * second.worker_rss_mb,
        f"last decile {last.worker_rss_mb:.0f} MB, second {second.worker_rss_mb:.0f} MB (limit 1.2x)")}
    steady = [d.rows_per_s for d in deciles[1:]]
    median = statistics.median(steady)
    worst = max(abs(rate / median - 1) for rate in steady)
    checks["throughput steady"] = (
        worst <= tolerance,
        f"deciles 2-{len(deciles)}: {min(steady):.0f}-{max(steady):.0f} rows/s, median {median:.0f}, "
        f"worst {worst:.1%} off (limit {tolerance:.0%})")
    return checks


def table(report: Report) -> str:
    lines = ["decile  rows/s  worker RSS MB  threads  fds  workers"]
    for d in report.deciles:
        lines.append(f"{d.index:6d}  {d.rows_per_s:6.0f}  {d.worker_rss_mb:13.0f}  {d.worker_threads:7d}  "
                     f"{d.worker_fds:3d}  {d.workers:7d}")
    for name, (ok, detail) in report.checks.items():
        lines.append(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    return "\n".join(lines)


@contextlib.contextmanager
def _workdir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=False)
        yield keep
        return
    path = Path(tempfile.mkdtemp(prefix="sparkimg-soak-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in all (default 1,000,000)")
    parser.add_argument("--latency-ms", type=float, default=5.0, help="server delay per request (default 5)")
    parser.add_argument("--extra-columns", type=int, default=20, help="filler columns carried along (default 20)")
    parser.add_argument("--tolerance", type=float, default=0.10,
                        help="largest relative distance of a decile's throughput from the median (default 0.10)")
    parser.add_argument("--partitions", type=int, default=4, help="partitions per decile (default 4)")
    parser.add_argument("--workdir", type=Path, help="keep the output here (a new folder) instead of a temp dir")
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    args = parser.parse_args(argv)
    if args.rows < DECILES * BROKEN_PERIOD:
        parser.error(f"--rows must be at least {DECILES * BROKEN_PERIOD}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with _workdir(args.workdir) as workdir:
        began = time.monotonic()
        report = run(args.rows, args.latency_ms, args.extra_columns, args.tolerance, args.partitions, workdir)
        log(table(report))
        log(f"{args.rows} rows in {time.monotonic() - began:.0f} s: {'PASS' if report.passed else 'FAIL'}")
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
