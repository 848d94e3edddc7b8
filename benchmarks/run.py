"""Run the benchmark suite: ``python -m benchmarks.run`` (full) or ``python -m benchmarks.run --smoke``.

Every scenario runs its contenders side by side in one Spark session,
interleaved repeat by repeat (so background load hits them alike), on the same
wide Parquet table, with the sink ``df.write.format("noop")`` forcing full
evaluation, under two workloads (``--workloads``):

* ``pruned``: the features consumed alone (``select("id", features)``), so Spark
  prunes the Parquet scan to the id and image columns and Daft selects only the
  id and its tensor;
* ``wide`` (pass-through): ``featurizer.transform(wide_df)`` with every column of
  the table written to the sink next to the features; the row UDF, the floor and
  Daft keep every column too. A pre-run check writes a subset to Parquet and
  checks that every wide column arrived with its input values.

The no-Spark ceiling reads no table, so it runs once per scenario and appears in
both tables. Each run reports wall time, CPU time of the whole process tree
(driver Python + JVM + Python workers) and peak RSS of the Python workers, and
every run is checked for correctness (see :mod:`benchmarks.checks`); the exit
status is 1 if any check fails. ``--smoke`` is a quick correctness-only pass
over a few dozen images (its timings mean nothing).

Results are printed as markdown and written as JSON to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import checks, daft_contender
from .checks import Check
from .corpus import (
    DEFAULT_CACHE_DIR,
    BigCorpusSpec,
    Corpus,
    CorpusSpec,
    PhotoCorpusSpec,
    build_big_corpus,
    build_corpus,
    build_photo_corpus,
)
from .measure import POOL_ENV, ROLES, Measurement, ProcessTree, Sample

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS_DIR = Path(__file__).resolve().parent / "results"

ROW_UDF, FEATURIZER, CEILING, FLOOR = "row_udf", "featurizer", "ceiling", "pass_through"
FEATURIZER_UINT8, DAFT = "featurizer_uint8", "daft"
PRUNED, WIDE = "pruned", "wide"
WORKLOAD_TITLES = {PRUNED: "pruned workload: features consumed alone (scan pruned to id + image column)",
                   WIDE: "pass-through workload: transform(wide_df), every column written to the sink"}
LABELS = {ROW_UDF: "row-at-a-time UDF", FEATURIZER: "ImageUrlFeaturizer", CEILING: "no-Spark ceiling",
          FLOOR: "pass-through floor", FEATURIZER_UINT8: 'ImageUrlFeaturizer, outputFormat="uint8"',
          DAFT: "Daft"}

#: Spark settings chosen on purpose (all recorded in the output):
#: * input Arrow batches hold only the image column (short strings), so Spark's
#:   default of 10,000 records is kept: a large batch gives the featurizer's
#:   thread pool long runs without draining between batches and a wide
#:   de-duplication scope, while its *output* batches are capped by bytes inside
#:   the featurizer (32 MB), independent of this setting;
#: * ``minPartitionNum`` makes each corpus Parquet file its own partition (4 by
#:   default, 2 per core), so both cores stay busy to the end of a job;
#: * Python UDF settings keep Spark's defaults, i.e. what a hand-written
#:   ``F.udf`` gets today (Arrow-optimized in Spark 4).
SPARK_CONF = {
    "spark.driver.memory": "4g",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.execution.arrow.maxRecordsPerBatch": "10000",
    "spark.sql.files.minPartitionNum": "4",
}
#: Every SUBSET_MODULUS-th row (by id) gets its full output range checked before timing.
SUBSET_MODULUS = 10

REPORTED_CONF = (
    "spark.master", "spark.driver.memory", "spark.sql.execution.arrow.maxRecordsPerBatch",
    "spark.sql.execution.arrow.maxBytesPerBatch", "spark.sql.execution.pythonUDF.arrow.enabled",
    "spark.sql.execution.python.udf.maxRecordsPerBatch", "spark.sql.files.minPartitionNum",
)


@dataclass(frozen=True)
class Scenario:
    """One input/output configuration and the contenders measured on it."""

    name: str
    title: str
    corpus: str  # "main", "big" or "photos"
    source: str  # "path" or "url"
    size: int
    contenders: tuple[str, ...]
    #: Server latencies for URL sources: every contender runs once per latency, interleaved,
    #: so that the latency comparison sees the same background load.
    latencies_ms: tuple[float, ...] = ()
    repeats: int | None = None  # None: the run's --repeats
    max_images: int | None = None  # None: every row of the corpus; else ids below it
    workloads: tuple[str, ...] = (PRUNED, WIDE)


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    daft = (DAFT,) if args.daft else ()
    every = (ROW_UDF, FEATURIZER) + daft + (CEILING, FLOOR)
    defined = [
        Scenario("local_32", "local files -> 32x32x3", "main", "path", 32, every),
        Scenario("http_32", "HTTP -> 32x32x3", "main", "url", 32, every,
                 latencies_ms=tuple(dict.fromkeys((0.0, args.latency_ms)))),
        Scenario("local_224", "local files -> 224x224x3", "main", "path", 224,
                 (ROW_UDF, FEATURIZER, FEATURIZER_UINT8) + daft + (CEILING, FLOOR), max_images=args.images_224),
        Scenario("big_224", f"{args.big_width}x{args.big_height} JPEGs, local -> 224x224x3", "big", "path", 224,
                 (FEATURIZER,), repeats=1, workloads=(PRUNED,)),
        # The row UDF decodes a 2-12 MP photo at full size (about 10x the featurizer's CPU): left out for time.
        Scenario("photos_224", "large photos (2-12 MP JPEGs), local -> 224x224x3", "photos", "path", 224,
                 (FEATURIZER, FEATURIZER_UINT8) + daft + (CEILING, FLOOR)),
    ]
    workloads = tuple(w for w in (PRUNED, WIDE) if w in args.workloads.split(","))
    defined = [replace(s, workloads=tuple(w for w in s.workloads if w in workloads)) for s in defined]
    if args.scenarios:
        wanted = set(args.scenarios.split(","))
        unknown = wanted - {s.name for s in defined}
        if unknown:
            raise SystemExit(f"unknown scenarios {sorted(unknown)}; choose from {[s.name for s in defined]}")
        defined = [s for s in defined if s.name in wanted]
    return defined


@dataclass
class ContenderResult:
    """All runs of one contender in one scenario, and their checks."""

    contender: str
    images: int
    latency_ms: float | None = None
    workload: str = PRUNED
    samples: list[Sample] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """``contender``, ``contender@<latency>ms`` for URL sources; ``:wide`` appended for the pass-through workload."""
        return _key(self.contender, self.latency_ms, self.workload)

    def images_per_s(self) -> float:
        return statistics.median(self.images / s.wall_s for s in self.samples)

    def cpu_ms_per_image(self, role: str | None = None) -> float:
        def cpu(s: Sample) -> float:
            return s.cpu_total_s if role is None else s.cpu_s[role]
        return statistics.median(1000.0 * cpu(s) / self.images for s in self.samples)

    def peak_python_rss_mb(self) -> float:
        # The ceiling runs in the driver process, Daft in a child of it; Spark's Python work in its workers.
        role = "driver" if self.contender in (CEILING, DAFT) else "workers"
        return max(s.peak_rss[role] for s in self.samples) / 2 ** 20

    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "contender": self.contender, "latency_ms": self.latency_ms, "workload": self.workload,
            "images": self.images,
            "images_per_s_median": self.images_per_s(),
            "cpu_ms_per_image_median": self.cpu_ms_per_image(),
            "cpu_ms_per_image_by_role_median": {r: self.cpu_ms_per_image(r) for r in ROLES},
            "peak_python_rss_mb": self.peak_python_rss_mb(),
            "runs": [{"wall_s": s.wall_s, "cpu_s": s.cpu_s, "peak_rss_bytes": s.peak_rss} for s in self.samples],
            "checks": [c.as_dict() for c in self.checks], "notes": self.notes,
        }


_STARTED = time.monotonic()


def log(message: str) -> None:
    """``message`` on stderr, after the seconds since the run started."""
    print(f"[{time.monotonic() - _STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


def start_spark(app: str, extra_conf: dict[str, str] | None = None):
    # Spark's Python workers must run this interpreter and import this checkout (the
    # row UDF lives in ``benchmarks``); local workers inherit the JVM's environment.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    paths = [str(REPO_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master("local[2]").appName(app)
    for key, value in {**SPARK_CONF, **(extra_conf or {})}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _conf_value(spark, key: str) -> str | None:
    if key == "spark.master":
        return spark.sparkContext.master
    try:
        return spark.conf.get(key)  # with a default, unset keys would hide Spark's own default
    except Exception:  # noqa: BLE001 - pyspark raises a JVM-specific "no such element" error
        return None


def jvm_pid(spark) -> int:
    import psutil

    pid = spark.sparkContext._gateway.proc.pid  # the launcher execs into the JVM
    if "java" not in psutil.Process(pid).name():
        pid = next(p.pid for p in psutil.Process().children(recursive=True) if "java" in p.name())
    return pid


def machine() -> dict[str, Any]:
    import PIL
    import psutil
    import pyspark
    from PIL import features

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() \
        else platform.processor()
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2 ** 30, 1),
        "os": platform.platform(), "python": platform.python_version(), "pyspark": pyspark.__version__,
        "pillow": PIL.__version__, "libjpeg_turbo": features.version("libjpeg_turbo"),
        "numpy": np.__version__, "java": _java_version(), "pyspng": _pyspng_version(),
    }


def _pyspng_version() -> str | None:
    """pyspng's version (it carries libspng for PNG decoding: the ``[fast]`` extra), or None when absent."""
    from importlib import metadata

    from sparkimg_ml.image import png as _png

    return metadata.version("pyspng") if _png.available() else None


def _java_version() -> str:
    import subprocess

    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30, check=False).stderr
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.splitlines()[0] if out else "unknown"


def sample_ids(corpus: Corpus, n: int, per_kind: int, spread: int) -> list[int]:
    """A few ids below ``n`` of every kind of file plus some spread over them."""
    chosen: list[int] = []
    for kind in sorted({info.kind for info in corpus.images[:n]}):
        chosen += [info.id for info in corpus.images[:n] if info.kind == kind][:per_kind]
    chosen += [int(i) for i in np.linspace(0, n - 1, min(spread, n))]
    return sorted(set(chosen))


class Bench:
    """One benchmark run: corpus, Spark session, process tree, results."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.results: dict[str, dict[str, Any]] = {}
        self.spark: Any = None
        self.tree = ProcessTree()
        self.daft: Any = None  # a warm benchmarks.daft_contender.DaftWorker when Daft runs
        self._references: dict[tuple[str, int, bool, int], np.ndarray] = {}

    # -- references ---------------------------------------------------------------
    def reference(self, corpus: Corpus, image_id: int, size: int, reduced: bool) -> np.ndarray:
        from .contenders import reference_features

        key = (str(corpus.root), image_id, reduced, size)
        if key not in self._references:
            self._references[key] = reference_features(corpus.path(image_id).read_bytes(), size, size, reduced)
        return self._references[key]

    def references(self, corpus: Corpus, ids: Sequence[int], size: int, reduced: bool) -> dict[int, np.ndarray]:
        return {i: self.reference(corpus, i, size, reduced) for i in ids}

    # -- Spark jobs -----------------------------------------------------------------
    def run_spark(self, frame, observe: dict[str, Any]) -> tuple[Sample, dict[str, int]]:
        from pyspark.sql import Observation

        observation = Observation()
        observed = frame.observe(observation, *[col.alias(name) for name, col in observe.items()])
        with Measurement(self.tree) as measurement:
            observed.write.format("noop").mode("overwrite").save()
        return measurement.sample, {k: int(v) for k, v in observation.get.items()}

    def subset_stats(self, frame, modulus: int, binary: bool = False) -> dict[str, Any]:
        from pyspark.ml.functions import vector_to_array
        from pyspark.sql import functions as F

        if binary:  # uint8 tensors: every byte is a pixel in [0, 255]; check the lengths
            return frame.where(F.col("id") % modulus == 0).agg(
                F.count(F.lit(1)).alias("rows"), F.count("features").alias("nonnull"),
                F.min(F.length("features")).alias("shortest"), F.max(F.length("features")).alias("longest"),
            ).first().asDict()
        values = vector_to_array(F.col("features"))
        row = frame.where(F.col("id") % modulus == 0).agg(
            F.count(F.lit(1)).alias("rows"), F.count("features").alias("nonnull"),
            F.min(F.array_min(values)).alias("lo"), F.max(F.array_max(values)).alias("hi"),
        ).first()
        return row.asDict()

    def collect_vectors(self, frame, ids: Sequence[int]) -> dict[int, np.ndarray | None]:
        """Sampled rows' values; uint8 tensors normalised by their column metadata (as a consumer does)."""
        from pyspark.sql import functions as F

        from sparkimg_ml.tensors import TensorInfo

        selected = frame.where(F.col("id").isin(list(ids))).select("id", "features")
        metadata = selected.schema["features"].metadata
        if "tensor" not in metadata:  # the row UDF's plain vectors
            return {row["id"]: (None if row["features"] is None else row["features"].toArray())
                    for row in selected.collect()}
        info = TensorInfo.from_metadata(metadata)
        return {row["id"]: (None if row["features"] is None else
                            info.to_float32(row["features"]).reshape(-1).astype(np.float64))
                for row in selected.collect()}

    # -- one scenario ---------------------------------------------------------------
    def run_scenario(self, scenario: Scenario, corpus: Corpus, base_urls: dict[float, str]) -> dict[str, Any]:
        from pyspark.sql import functions as F

        from . import contenders as c

        size = scenario.size
        n = min(len(corpus.images), scenario.max_images or len(corpus.images))
        df = self.spark.read.parquet(str(corpus.table))
        if n < len(corpus.images):
            df = df.where(F.col("id") < n)

        def source_col(latency: float | None):
            return F.col("path") if latency is None else F.concat(F.lit(base_urls[latency]), F.col("url"))

        def sources(latency: float | None) -> list[str]:
            if latency is None:
                return [str(corpus.path(i)) for i in range(n)]
            return [base_urls[latency] + corpus.url_path(i) for i in range(n)]
        ids = sample_ids(corpus, n, per_kind=2 if scenario.corpus == "main" else 0,
                         spread=4 if scenario.corpus == "big" else 8)
        rgba_free = [i for i in ids if corpus.images[i].mode != "RGBA"]
        full_refs = self.references(corpus, ids, size, reduced=False)
        vector_size = size * size * 3

        stage = c.featurizer("_source", size, size, **self.args.featurizer_params)
        reduced = c.uses_reduced_decode(stage)
        # The ceiling decodes like the featurizer: OpenCV for plain images when it runs decoder="auto".
        decoder = str(stage.getOrDefault("decoder")) if stage.hasParam("decoder") else "pillow"
        def frame(result: ContenderResult):
            # A UDF captures the driver's worker environment when it is built: a pool
            # of Python workers of its own for each contender (see benchmarks.measure).
            pool = f"{scenario.name}/{result.key}"
            self.spark.sparkContext.environment[POOL_ENV] = pool
            self.tree.pool = pool
            source = source_col(result.latency_ms)
            if result.contender == ROW_UDF:
                out = c.spark_row_udf(df, source, size, size, use_arrow=self.args.row_udf_arrow)
            elif result.contender == FEATURIZER:
                out = c.spark_featurizer(df, source, size, size, **self.args.featurizer_params)
            elif result.contender == FEATURIZER_UINT8:
                params = {**self.args.featurizer_params, "outputFormat": "uint8"}
                out = c.spark_featurizer(df, source, size, size, **params)
            else:
                out = c.pass_through(df, source)
            if result.workload == WIDE:
                return out
            # Pruned: the features consumed alone (the featurizer's reason column kept for the error count).
            return out.select("id", "features", *(["error"] if "error" in out.columns else []))

        def daft_job(latency: float | None, workload: str, out: str | None = None) -> dict[str, Any]:
            return {"table": str(corpus.table), "column": "path" if latency is None else "url",
                    "prefix": "" if latency is None else base_urls[latency], "size": size, "rows": n, "out": out,
                    "keep": "all" if workload == WIDE else "features"}

        wide_columns = list(df.columns)
        modulus = SUBSET_MODULUS if n >= 20 * SUBSET_MODULUS else 1
        wide_subset: dict[str, list[Any]] | None = None

        def wide_checks(result: ContenderResult) -> list[Check]:
            """Every wide column of a subset written to Parquet, with the input's values."""
            nonlocal wide_subset
            import pyarrow.parquet as pq

            if wide_subset is None:
                wide_subset = df.where(F.col("id") % modulus == 0).toPandas().to_dict("list")
            with tempfile.TemporaryDirectory() as scratch:
                frame(result).where(F.col("id") % modulus == 0).write.parquet(f"{scratch}/out")
                table = pq.read_table(f"{scratch}/out")
            got = {name: table.column(name).to_pylist() for name in wide_columns if name in table.column_names}
            return [checks.columns_arrived(table.column_names, wide_columns, "features"),
                    checks.wide_values(got, wide_subset)]

        notes: dict[str, dict[str, Any]] = {
            FEATURIZER: {"params": c.stage_params(stage), "reduced_decode": reduced},
            CEILING: {"threads": c.CEILING_THREADS, "draft_margin": c.DRAFT_MARGIN, "libspng_png": c._png.available(),
                      "decoder": decoder},
            ROW_UDF: {"useArrow": self.args.row_udf_arrow,
                      "spark_default": _conf_value(self.spark, "spark.sql.execution.pythonUDF.arrow.enabled")},
            FLOOR: {},
            FEATURIZER_UINT8: {"params": {**c.stage_params(stage), "outputFormat": "uint8"}},
            DAFT: {"version": getattr(self.daft, "version", None),
                   "pipeline": "download -> decode_image(RGB) -> resize -> image_to_tensor -> float32 / 255"},
        }
        latencies: tuple[float | None, ...] = scenario.latencies_ms or (None,)
        # The ceiling reads no table: it runs once, under the first workload, and is shown in both tables.
        # The row UDF runs only in the pass-through workload: pruned to select("id", "features"), Spark 4.1's
        # Arrow-optimized Python UDF fails on its VectorUDT result ([UNSUPPORTED_DATATYPE] in
        # RowToColumnConverter), and no target of the pruned workload involves it.
        results = {r.key: r for r in (ContenderResult(name, n, latency, workload, notes=dict(notes[name]))
                                      for workload in scenario.workloads for latency in latencies
                                      for name in scenario.contenders
                                      if (name != CEILING or workload == scenario.workloads[0])
                                      and (name, workload) != (ROW_UDF, PRUNED))}

        # Correctness first, on sampled rows and on every SUBSET_MODULUS-th row: this also
        # warms up the Python workers and the JVM's JIT before anything is timed.
        subset_rows = sum(1 for i in range(n) if i % SUBSET_MODULUS == 0)
        for key, result in results.items():
            name = result.contender
            if name == FLOOR:
                if result.workload == WIDE:
                    result.checks += wide_checks(result)
                    log(f"  {scenario.name} {key}: pre-run checks "
                        f"{'passed' if result.passed() else 'FAILED: ' + '; '.join(x.detail for x in result.checks)}")
                continue
            if name == CEILING:
                matrix = c.Ceiling(size, size, decoder=decoder).run([sources(result.latency_ms)[i] for i in ids])
                got = {i: matrix[k] for k, i in enumerate(ids)}
                if decoder == "pillow":
                    result.checks.append(checks.compare("= Pillow, same reduced decode", got,
                                                        self.references(corpus, ids, size, reduced=True), exact=True))
                result.checks.append(checks.compare("~ Pillow full decode", got, full_refs, exact=False))
            elif name == DAFT:
                with tempfile.TemporaryDirectory() as scratch:
                    out = str(Path(scratch) / "daft.npy")
                    reply = self.daft.run(daft_job(result.latency_ms, result.workload, out))
                    result.checks += checks.job_reply(reply, n)
                    if result.workload == WIDE:
                        result.checks.append(checks.columns_arrived(reply.get("columns", []), wide_columns, "tensor"))
                    matrix = np.load(out) if "error" not in reply else np.zeros((0, vector_size))
                got = {i: matrix[i].astype(np.float64) for i in ids
                       if i < len(matrix) and not np.isnan(matrix[i]).any()}
                result.checks.append(checks.value_range(got, vector_size))
                result.checks.append(checks.compare("~ Pillow full decode (Daft's own decoder and resize)", got,
                                                    {i: full_refs[i] for i in rgba_free}, exact=False))
                del matrix
            else:
                got = self.collect_vectors(frame(result), ids)
                result.checks.append(checks.value_range(got, vector_size))
                if name == FEATURIZER_UINT8:
                    result.checks += checks.byte_lengths(
                        self.subset_stats(frame(result), SUBSET_MODULUS, binary=True), subset_rows, vector_size)
                else:
                    result.checks += checks.range_stats(self.subset_stats(frame(result), SUBSET_MODULUS),
                                                        subset_rows)
                if name == ROW_UDF:
                    result.checks.append(checks.compare("= Pillow", got, full_refs, exact=True))
                else:
                    serving = stage.preprocess([str(corpus.path(i)) for i in ids])
                    result.checks.append(checks.compare(
                        "= featurizer.preprocess (serving path)" if name == FEATURIZER else
                        "uint8 normalised by its metadata = float featurizer.preprocess", got,
                        {i: serving[k].astype(np.float64) for k, i in enumerate(ids)}, exact=True))
                    result.checks.append(checks.compare(
                        "~ Pillow full decode" if reduced else "= Pillow",
                        got, {i: full_refs[i] for i in rgba_free}, exact=not reduced))
                if result.workload == WIDE:
                    result.checks += wide_checks(result)
            failed = "; ".join(x.detail for x in result.checks if not x.passed)
            log(f"  {scenario.name} {key}: pre-run checks {'FAILED: ' + failed if failed else 'passed'}")

        repeats = scenario.repeats or self.args.repeats
        for repeat in range(repeats):
            for key, result in results.items():
                name = result.contender
                if name == CEILING:
                    ceiling, inputs = c.Ceiling(size, size, decoder=decoder), sources(result.latency_ms)
                    self.tree.pool = f"{scenario.name}/{key}"  # no Spark workers: reads 0
                    with Measurement(self.tree) as measurement:
                        matrix = ceiling.run(inputs)
                    sample = measurement.sample
                    result.checks.append(checks.matrix_rows(matrix, n, vector_size))
                    result.checks.append(checks.value_range(dict(enumerate(matrix)), vector_size))
                    del matrix
                elif name == DAFT:
                    self.tree.pool = f"{scenario.name}/{key}"  # no Spark workers: reads 0
                    with Measurement(self.tree) as measurement:
                        reply = self.daft.run(daft_job(result.latency_ms, result.workload))
                    sample = measurement.sample
                    result.checks += checks.job_reply(reply, n)
                else:
                    observe = {"rows": F.count(F.lit(1)), "nonnull": F.count(F.col("features"))}
                    if name in (FEATURIZER, FEATURIZER_UINT8):
                        observe["errors"] = F.count(F.col("error"))
                    sample, observed = self.run_spark(frame(result), observe)
                    result.checks += checks.counts(observed, n)
                result.samples.append(sample)
                log(f"  {scenario.name} {key} run {repeat + 1}/{repeats}: {n} images in {sample.wall_s:.1f} s, "
                    f"CPU {sample.cpu_total_s:.1f} s, {n / sample.wall_s:.0f} img/s")
        return {"scenario": scenario.name, "title": scenario.title, "images": n, "size": [size, size, 3],
                "source": scenario.source, "latencies_ms": list(scenario.latencies_ms),
                "workloads": list(scenario.workloads), "corpus": corpus.describe(),
                "sample_ids": ids, "partitions": df.rdd.getNumPartitions(),
                "contenders": {key: r.as_dict() for key, r in results.items()}, "_results": results}

    # -- whole run --------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        from .server import serve_in_subprocess

        args = self.args
        chosen = scenarios(args)
        corpus = big = photos = None
        if any(s.corpus == "main" for s in chosen):
            log(f"building or loading the corpus under {args.corpus_dir} ...")
            corpus = build_corpus(CorpusSpec(images=args.images), args.corpus_dir)
        if any(s.corpus == "big" for s in chosen):
            big = build_big_corpus(BigCorpusSpec(rows=args.big_rows, distinct=min(8, args.big_rows),
                                                 width=args.big_width, height=args.big_height), args.corpus_dir)
        if any(s.corpus == "photos" for s in chosen):
            log(f"building or loading the large-photo corpus under {args.corpus_dir} ...")
            photos = build_photo_corpus(PhotoCorpusSpec(rows=args.photo_rows, distinct=min(args.photo_distinct,
                                                                                              args.photo_rows),
                                                        min_megapixels=args.photo_megapixels[0],
                                                        max_megapixels=args.photo_megapixels[1]),
                                        args.corpus_dir)
        load_start = os.getloadavg()
        started = time.time()
        daft_needed = any(DAFT in s.contenders for s in chosen)
        daft_python = daft_contender.ensure_venv(args.build_dir, log) if daft_needed else None
        self.spark = start_spark("sparkimg_ml-benchmarks")
        stack = contextlib.ExitStack()
        try:
            if daft_python is not None:
                self.daft = stack.enter_context(daft_contender.DaftWorker(daft_python))
            self.tree = ProcessTree(jvm_pid=jvm_pid(self.spark))
            conf = {key: _conf_value(self.spark, key) for key in REPORTED_CONF}
            for scenario in chosen:
                log(f"scenario {scenario.name}: {scenario.title}")
                data = {"main": corpus, "big": big, "photos": photos}[scenario.corpus]
                assert data is not None
                with contextlib.ExitStack() as servers:
                    base_urls: dict[float, str] = {}
                    for latency in scenario.latencies_ms:
                        base_urls[latency], server_pid = servers.enter_context(serve_in_subprocess(data.root, latency))
                        self.tree.exclude.add(server_pid)
                    self.results[scenario.name] = self.run_scenario(scenario, data, base_urls)
                self.tree.exclude = set()
        finally:
            stack.close()
            self.spark.stop()
        return {
            "started": dt.datetime.fromtimestamp(started).isoformat(timespec="seconds"),
            "duration_s": time.time() - started, "command": " ".join([Path(sys.executable).name, "-m",
                                                                     "benchmarks.run"] + sys.argv[1:]),
            "smoke": args.smoke, "machine": machine(),
            "load_average_1m": {"start": load_start[0], "end": os.getloadavg()[0]},
            "spark_conf": conf, "repeats": args.repeats, "scenarios": self.results,
        }


# -- report ---------------------------------------------------------------------------
def _http(results: dict[str, Any]) -> float | None:
    return _latency(results)


#: (label, function of results -> value or None, goal text, predicate or None for context rows).
#: The goals are issue 20's; "{lat}" is the slow HTTP scenario's latency.
TARGETS = (
    # pass-through workload (every column to the sink)
    ("wide: local 32x32: featurizer (Vector) / Daft throughput",
     lambda r: _ratio(r, "local_32", FEATURIZER, DAFT, WIDE), ">= 1.0", lambda v: v >= 1.0),
    ("wide: HTTP 0 ms 32x32: featurizer (Vector) / Daft throughput",
     lambda r: _ratio(r, "http_32", _at(FEATURIZER, 0.0), _at(DAFT, 0.0), WIDE), ">= 1.0", lambda v: v >= 1.0),
    ("wide: HTTP {lat} ms 32x32: featurizer (Vector) / Daft throughput",
     lambda r: _ratio(r, "http_32", _at(FEATURIZER, _http(r)), _at(DAFT, _http(r)), WIDE), ">= 1.0",
     lambda v: v >= 1.0),
    ('wide: local 224x224: featurizer "uint8" / Daft throughput',
     lambda r: _ratio(r, "local_224", FEATURIZER_UINT8, DAFT, WIDE), ">= 1.2", lambda v: v >= 1.2),
    ("wide: local 224x224: featurizer (Vector) / Daft throughput",
     lambda r: _ratio(r, "local_224", FEATURIZER, DAFT, WIDE), ">= 0.8", lambda v: v >= 0.8),
    ('wide: large photos 224x224: featurizer "uint8" / Daft throughput',
     lambda r: _ratio(r, "photos_224", FEATURIZER_UINT8, DAFT, WIDE), "context", None),
    # pruned workload (features alone)
    ("pruned: local 32x32: featurizer / Daft throughput",
     lambda r: _ratio(r, "local_32", FEATURIZER, DAFT), ">= 1.5", lambda v: v >= 1.5),
    ("pruned: HTTP 0 ms 32x32: featurizer / Daft throughput",
     lambda r: _ratio(r, "http_32", _at(FEATURIZER, 0.0), _at(DAFT, 0.0)), ">= 1.5", lambda v: v >= 1.5),
    ("pruned: HTTP {lat} ms 32x32: featurizer / Daft throughput",
     lambda r: _ratio(r, "http_32", _at(FEATURIZER, _http(r)), _at(DAFT, _http(r))), ">= 1.5",
     lambda v: v >= 1.5),
    ("pruned: local 224x224: featurizer (Vector) / Daft throughput",
     lambda r: _ratio(r, "local_224", FEATURIZER, DAFT), ">= 1.5", lambda v: v >= 1.5),
    ('pruned: local 224x224: featurizer "uint8" / Daft throughput',
     lambda r: _ratio(r, "local_224", FEATURIZER_UINT8, DAFT), ">= 1.5", lambda v: v >= 1.5),
    ("pruned: large photos 224x224: featurizer (Vector) / Daft throughput",
     lambda r: _ratio(r, "photos_224", FEATURIZER, DAFT), ">= 2", lambda v: v >= 2),
    ('pruned: large photos 224x224: featurizer "uint8" / Daft throughput',
     lambda r: _ratio(r, "photos_224", FEATURIZER_UINT8, DAFT), ">= 2", lambda v: v >= 2),
    # latency hiding
    ("pruned: HTTP 32x32: featurizer throughput at {lat} ms / at 0 ms",
     lambda r: _ratio(r, "http_32", _at(FEATURIZER, _http(r)), _at(FEATURIZER, 0.0)), ">= 0.95",
     lambda v: v >= 0.95),
    ("wide: HTTP 32x32: featurizer throughput at {lat} ms / at 0 ms",
     lambda r: _ratio(r, "http_32", _at(FEATURIZER, _http(r)), _at(FEATURIZER, 0.0), WIDE), ">= 0.95",
     lambda v: v >= 0.95),
    # CPU against the no-Spark ceiling plus the Spark floor of the same workload
    *((f"{w}: {title}: featurizer{' ' + repr(fmt) if fmt else ''} CPU/img / (ceiling + floor CPU/img)",
       (lambda r, sc=sc, lat=lat, w=w, who=who: _cpu_vs_ceiling_floor(r, sc, _lat(r, lat), who, w)),
       "<= 1.15", lambda v: v <= 1.15)
      for w in (PRUNED, WIDE)
      for sc, lat, title, who, fmt in (
          ("local_32", None, "local 32x32", FEATURIZER, ""),
          ("http_32", 0.0, "HTTP 0 ms 32x32", FEATURIZER, ""),
          ("http_32", "slow", "HTTP {lat} ms 32x32", FEATURIZER, ""),
          ("local_224", None, "local 224x224", FEATURIZER, ""),
          ("local_224", None, "local 224x224", FEATURIZER_UINT8, "uint8"),
          ("photos_224", None, "large photos 224x224", FEATURIZER_UINT8, "uint8"))),
    ("Python worker peak RSS (GB), worst featurizer run of every scenario",
     lambda r: _worst_rss_gb(r), "<= 1.5", lambda v: v <= 1.5),
    # Context: the row UDF, and CPU ratios (what throughput would be if every contender were CPU-bound).
    ("wide: local 224x224: featurizer (Vector) / row UDF throughput",
     lambda r: _ratio(r, "local_224", FEATURIZER, ROW_UDF, WIDE), "context", None),
    ("wide: local 32x32: Daft CPU/img / featurizer CPU/img",
     lambda r: _cpu_ratio(r, "local_32", DAFT, FEATURIZER, WIDE), "context", None),
    ('wide: local 224x224: Daft CPU/img / featurizer "uint8" CPU/img',
     lambda r: _cpu_ratio(r, "local_224", DAFT, FEATURIZER_UINT8, WIDE), "context", None),
    ("pruned: local 224x224: Daft CPU/img / featurizer CPU/img",
     lambda r: _cpu_ratio(r, "local_224", DAFT, FEATURIZER), "context", None),
)


def _lat(results: dict[str, Any], latency: float | str | None) -> float | None:
    return _latency(results) if latency == "slow" else latency  # type: ignore[return-value]


def _key(contender: str, latency: float | None, workload: str = PRUNED) -> str:
    return _at(contender, latency) + (":wide" if workload == WIDE else "")


def _get(results: dict[str, Any], scenario: str | None, contender: str,
         workload: str = PRUNED) -> ContenderResult | None:
    if scenario is None or scenario not in results:
        return None
    found = results[scenario]["_results"]
    if contender.split("@")[0] == CEILING:  # run once per scenario, whatever the workload
        return next((r for r in found.values() if r.contender == CEILING and _at(CEILING, r.latency_ms) == contender),
                    None)
    return found.get(contender + (":wide" if workload == WIDE else ""))


def _ratio(results: dict[str, Any], scenario: str | None, a: str, b: str, workload: str = PRUNED) -> float | None:
    ra, rb = _get(results, scenario, a, workload), _get(results, scenario, b, workload)
    if ra is None or rb is None:
        return None
    return ra.images_per_s() / rb.images_per_s()


def _cpu_ratio(results: dict[str, Any], scenario: str, a: str, b: str, workload: str = PRUNED) -> float | None:
    ra, rb = _get(results, scenario, a, workload), _get(results, scenario, b, workload)
    if ra is None or rb is None:
        return None
    return ra.cpu_ms_per_image() / rb.cpu_ms_per_image()


def _cpu_vs_ceiling_floor(results: dict[str, Any], scenario: str, latency: float | None = None,
                          contender: str = FEATURIZER, workload: str = PRUNED) -> float | None:
    """A featurizer's CPU/img over the no-Spark ceiling's plus the same workload's floor, same latency."""
    feat, ceil, floor = (_get(results, scenario, _at(x, latency), workload) for x in (contender, CEILING, FLOOR))
    if feat is None or ceil is None or floor is None:
        return None
    return feat.cpu_ms_per_image() / (ceil.cpu_ms_per_image() + floor.cpu_ms_per_image())


def _latency(results: dict[str, Any]) -> float | None:
    """The largest server latency of the HTTP scenario (None if it did not run)."""
    latencies = results.get("http_32", {}).get("latencies_ms") or [None]
    return max(latencies, key=lambda v: -1.0 if v is None else v)


def _at(contender: str, latency: float | None) -> str:
    return contender if latency is None else f"{contender}@{latency:g}ms"


def _worst_rss_gb(results: dict[str, Any]) -> float | None:
    """The largest Python worker peak RSS of any featurizer run, over every scenario that ran."""
    peaks = [result.peak_python_rss_mb() / 1024 for scenario in results.values()
             for result in scenario["_results"].values() if result.contender in (FEATURIZER, FEATURIZER_UINT8)]
    return max(peaks) if peaks else None


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    results = report["scenarios"]
    latency = _latency(results)
    rows = []
    for label, value_of, goal, ok in TARGETS:
        value = value_of(results)
        rows.append({"target": label.format(lat=f"{latency:g}" if latency else "?"), "value": value, "goal": goal,
                     "met": None if value is None or ok is None or report["smoke"] else bool(ok(value))})
    return rows


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"## sparkimg_ml benchmarks ({report['started']}{', SMOKE: correctness only' if report['smoke'] else ''})",
        "",
        (f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; {m['os']}; Python {m['python']}, "
        f"pyspark {m['pyspark']}, {m['java']}, Pillow {m['pillow']} (libjpeg-turbo {m['libjpeg_turbo']}), "
        f"pyspng {m.get('pyspng') or 'not installed'}, numpy {m['numpy']}. Load average (1 min) {report['load_average_1m']['start']:.1f} at start, "
        f"{report['load_average_1m']['end']:.1f} at end."),
        f"Command: `{report['command']}` ({report['duration_s'] / 60:.1f} min). Spark: "
        + ", ".join(f"{k}={v}" for k, v in report["spark_conf"].items()) + ".",
        "",
    ]
    for workload in (PRUNED, WIDE):
        rows = [(scenario, result) for scenario in report["scenarios"].values()
                for result in scenario["_results"].values()
                if result.workload == workload or (result.contender == CEILING and workload in scenario["workloads"])]
        if rows:
            lines += _result_table(workload, rows)
    lines += ["", "| target | measured | goal | met |", "|---|---:|---|---|"]
    for row in targets(report):
        value = "n/a" if row["value"] is None else f"{row['value']:.2f}"
        met = "-" if row["met"] is None else ("yes" if row["met"] else "NO")
        lines.append(f"| {row['target']} | {value} | {row['goal']} | {met} |")
    lines += [
        "",
        ("CPU ms/img is the CPU time of the whole process tree (driver Python, JVM, Python workers; the "
         "loopback HTTP servers excluded) per image; peak Python RSS is the sum over the contender's own "
         "Spark Python worker processes (the driver process for the no-Spark ceiling). Other jobs share this "
         "machine, so wall-clock figures are noisy: compare figures of the same run, and prefer CPU ms/img "
         "and the ratios."),
    ]
    return "\n".join(lines)


def _result_table(workload: str, rows: list[tuple[dict[str, Any], ContenderResult]]) -> list[str]:
    lines = [
        f"### {WORKLOAD_TITLES[workload]}",
        "",
        ("| scenario | contender | images | img/s (median) | CPU ms/img | of which JVM / Py workers / driver "
         "| peak Python RSS MB | checks |"),
        "|---|---|---:|---:|---:|---|---:|---|",
    ]
    for scenario, result in rows:
        name = result.contender
        title = scenario["title"] if result.latency_ms is None else \
            f"{scenario['title']}, {result.latency_ms:g} ms latency"
        by_role = " / ".join(f"{result.cpu_ms_per_image(r):.1f}" for r in ("jvm", "workers", "driver"))
        failed = [c for c in result.checks if not c.passed]
        lines.append(
            f"| {title} | {LABELS[name]}{' (no table; same run)' if name == CEILING else ''} | {result.images} | "
            f"{result.images_per_s():.0f} | {result.cpu_ms_per_image():.1f} | {by_role} | "
            f"{result.peak_python_rss_mb():.0f} | "
            f"{'ok (' + str(len(result.checks)) + ')' if not failed else 'FAILED ' + str(len(failed))} |")
    return lines + [""]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few dozen images, one repeat, checks only")
    parser.add_argument("--images", type=int, help="images in the main corpus (default 2000; smoke 24)")
    parser.add_argument("--repeats", type=int, help="timed runs per contender (default 3; smoke 1)")
    parser.add_argument("--images-224", type=int,
                        help="first rows of the corpus used at 224x224 (default 1000; smoke: all)")
    parser.add_argument("--row-udf-arrow", choices=("default", "true", "false"), default="default",
                        help="useArrow of the row UDF (default: Spark's own default)")
    parser.add_argument("--big-rows", type=int, help="rows of large JPEGs (default 5000; smoke 4)")
    parser.add_argument("--big-width", type=int, help="large JPEG width (default 4000; smoke 1200)")
    parser.add_argument("--big-height", type=int, help="large JPEG height (default 3000; smoke 900)")
    parser.add_argument("--photo-rows", type=int, help="rows of the large-photo scenario (default 400; smoke 4)")
    parser.add_argument("--photo-distinct", type=int, help="distinct large photos (default 40; smoke 2)")
    parser.add_argument("--photo-megapixels", type=float, nargs=2, metavar=("MIN", "MAX"),
                        help="size range of the large photos in megapixels (default 2 12; smoke 0.5 1)")
    parser.add_argument("--workloads", default=f"{PRUNED},{WIDE}",
                        help=f"comma-separated: {PRUNED} (features alone), {WIDE} (every column to the sink)")
    parser.add_argument("--latency-ms", type=float, default=30.0, help="latency of the slow HTTP scenario")
    parser.add_argument("--scenarios", help="comma-separated subset (default: all)")
    parser.add_argument("--daft", action=argparse.BooleanOptionalAction, default=None,
                        help="run Daft as a contender, in its own venv under --build-dir (default: on; "
                             "off with --smoke)")
    parser.add_argument("--build-dir", type=Path, default=daft_contender.DEFAULT_BUILD_DIR,
                        help="where the Daft venv is built and cached")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=JSON",
                        help="set a featurizer Param, e.g. --param concurrency=32 (repeatable)")
    parser.add_argument("--corpus-dir", type=Path, default=DEFAULT_CACHE_DIR, help="corpus cache directory")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR, help="where the JSON goes")
    args = parser.parse_args(argv)
    # (full, smoke); the full sizes keep the whole run near 15 minutes on 2 cores.
    defaults = {"images": (2000, 24), "images_224": (1000, 24), "repeats": (3, 1), "big_rows": (5000, 4),
                "big_width": (4000, 1200), "big_height": (3000, 900), "photo_rows": (400, 4),
                "photo_distinct": (40, 2), "photo_megapixels": ((2.0, 12.0), (0.5, 1.0))}
    for name, (full, smoke) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, smoke if args.smoke else full)
    args.row_udf_arrow = {"default": None, "true": True, "false": False}[args.row_udf_arrow]
    if args.daft is None:
        args.daft = not args.smoke
    unknown = set(args.workloads.split(",")) - {PRUNED, WIDE}
    if unknown:
        parser.error(f"unknown workloads {sorted(unknown)}; choose from {[PRUNED, WIDE]}")
    args.featurizer_params = {}
    for item in args.param:
        name, _, value = item.partition("=")
        args.featurizer_params[name] = json.loads(value)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report = Bench(args).run()
    text = markdown(report)
    print(text, flush=True)
    all_checks = [c for s in report["scenarios"].values() for r in s["_results"].values() for c in r.checks]
    failed = [c for c in all_checks if not c.passed]
    report["targets"] = targets(report)
    report["checks_passed"] = not failed
    for scenario in report["scenarios"].values():
        scenario.pop("_results")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = args.results_dir / f"bench-{'smoke-' if args.smoke else ''}{stamp}.json"
    out.write_text(json.dumps(report, indent=1, default=str))
    print(f"\ncorrectness: {len(all_checks) - len(failed)}/{len(all_checks)} checks passed"
          + "".join(f"\n  FAILED {c.name}: {c.detail}" for c in failed) + f"\nresults: {out}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
