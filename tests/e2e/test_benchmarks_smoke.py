"""The benchmark suite: its smoke mode end to end, and its parts without Spark."""

from __future__ import annotations

import doctest
import http.client
import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from repo_paths import REPO_ROOT

# ``benchmarks`` is a top-level directory of the checkout, not part of the installed package.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from repo_paths import REPO_ROOT

from benchmarks import checks, contenders, corpus, measure, server
from benchmarks.corpus import CorpusSpec, build_corpus
from benchmarks.measure import Measurement, ProcessTree
from benchmarks.server import LatencyServer

TINY = CorpusSpec(images=12, parts=2, extra_columns=6, min_side=64, max_side=160)


def test_benchmark_smoke_run_exits_zero_with_every_check_passed(tmp_path: Path) -> None:
    """One scenario of ``benchmarks.run --smoke``: the large-photo one, under both workloads.

    It runs every contender kind but the row UDF (featurizer, uint8 featurizer, ceiling,
    floor) on 4 rows, one repeat, so it stays well under two minutes; ``make bench-smoke``
    runs the smoke pass over every scenario.
    """
    results_dir = tmp_path / "results"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--scenarios", "photos_224",
         "--corpus-dir", str(tmp_path / "corpus"), "--results-dir", str(results_dir)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "| scenario | contender |" in done.stdout
    (result_file,) = results_dir.glob("bench-smoke-*.json")
    report = json.loads(result_file.read_text())
    assert report["smoke"] is True and report["checks_passed"] is True and report["repeats"] == 1
    # The ceiling reads no table: it runs once, under the pruned workload, and is shown in both tables.
    pruned = {"featurizer", "featurizer_uint8", "pass_through"}
    expected = pruned | {"ceiling"} | {f"{key}:wide" for key in pruned}
    assert {name: set(s["contenders"]) for name, s in report["scenarios"].items()} == {"photos_224": expected}
    for key, result in report["scenarios"]["photos_224"]["contenders"].items():
        names = {c["name"] for c in result["checks"]}
        assert "row count" in names or result["contender"] == "pass_through", (key, names)
        assert all(c["passed"] for c in result["checks"]), (key, result["checks"])
        assert result["runs"] and result["cpu_ms_per_image_median"] > 0
        assert result["workload"] == ("wide" if key.endswith(":wide") else "pruned")
        if result["workload"] == "wide":  # every wide column reached the sink, with its input values
            assert {"every wide column in the sink", "wide column values = input"} <= names, (key, names)
    photos = report["scenarios"]["photos_224"]
    assert photos["corpus"]["files"] == 4 and photos["workloads"] == ["pruned", "wide"]
    assert "### pass-through workload" in done.stdout and "### pruned workload" in done.stdout
    uint8 = photos["contenders"]["featurizer_uint8"]
    assert {"uint8 normalised by its metadata = float featurizer.preprocess",
            "subset tensors of 150528 bytes"} <= {c["name"] for c in uint8["checks"]}
    featurizer = photos["contenders"]["featurizer"]
    assert {"= featurizer.preprocess (serving path)", "subset values in [0, 1]", "no error reasons"} <= {
        c["name"] for c in featurizer["checks"]}
    print(f"benchmark smoke (photos_224, both workloads): {elapsed:.0f} s")


@pytest.mark.parametrize("module", [checks, contenders, corpus, measure, server])
def test_benchmark_module_examples_run(module) -> None:
    failures, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert attempted > 0 and failures == 0


def test_decode_bench_measures_every_variant_and_restores_the_image_layer() -> None:
    from benchmarks import bench_decode
    from sparkimg_ml.image import preprocess, render

    yy, xx = np.mgrid[:480, :640]
    photo = Image.fromarray(np.stack([xx % 256, yy % 256, (xx * yy) % 256], axis=2).astype(np.uint8))
    images = []
    for kind, fmt in (("jpeg", "JPEG"), ("png", "PNG")):
        buffer = io.BytesIO()
        photo.save(buffer, fmt)
        images.append((kind, buffer.getvalue()))
    results = bench_decode.measure(images, 16, repeats=1)
    assert list(results) == [v.name for v in bench_decode.VARIANTS]
    assert results["exact"]["max_err"] == 0 and results[bench_decode.BASELINE]["ratio_all"] == 1.0
    assert results["draft m2"]["changed"] > 0 and results["draft m3 + gap 2"]["changed"] == 1.0
    assert render.REDUCED_DECODE_MARGIN == 3 and preprocess._draft is render._draft
    assert "draft m3 + gap 2" in bench_decode.format_table(16, results)


def test_corpus_is_deterministic_and_seed_dependent(tmp_path: Path) -> None:
    first = build_corpus(TINY, tmp_path / "a")
    again = build_corpus(TINY, tmp_path / "b")
    other = build_corpus(CorpusSpec(**{**TINY.__dict__, "seed": TINY.seed + 1}), tmp_path / "c")
    assert first.digest == again.digest
    assert [i.kind for i in first.images] == [i.kind for i in again.images]
    assert other.digest != first.digest


def test_corpus_reuses_its_cache_and_writes_a_wide_table(tmp_path: Path) -> None:
    built = build_corpus(TINY, tmp_path)
    marker = built.root / "manifest.json"
    stamp = marker.stat().st_mtime_ns
    assert build_corpus(TINY, tmp_path).root == built.root and marker.stat().st_mtime_ns == stamp
    table = pq.read_table(built.table)
    assert table.num_rows == TINY.images and table.num_columns == 4 + TINY.extra_columns
    assert table.column("id").to_pylist() == list(range(TINY.images))
    for path, url in zip(table.column("path").to_pylist(), table.column("url").to_pylist()):
        assert Path(path).is_file() and path.endswith(url)
    for info in built.images:
        with Image.open(built.path(info.id)) as image:
            assert image.mode == info.mode and max(image.size) <= TINY.max_side


def test_compare_rejects_swapped_channels_and_flips_but_accepts_reduced_decoding() -> None:
    rng = np.random.default_rng(0)
    photo = corpus.sample_photos()[0][:400, :600]
    buffer = io.BytesIO()
    Image.fromarray(photo).resize((1200, 800)).save(buffer, "JPEG", quality=int(rng.integers(80, 90)))
    data = buffer.getvalue()
    full = contenders.reference_features(data, 32, 32, reduced=False)
    reduced = contenders.reference_features(data, 32, 32, reduced=True)
    grid = full.reshape(32, 32, 3)
    assert checks.compare("reduced", {0: reduced}, {0: full}, exact=False).passed
    assert not checks.compare("reduced exact", {0: reduced}, {0: full}, exact=True).passed
    assert not checks.compare("swapped", {0: grid[:, :, ::-1].ravel()}, {0: full}, exact=False).passed
    assert not checks.compare("flipped", {0: grid[::-1].ravel()}, {0: full}, exact=False).passed
    assert not checks.compare("missing", {}, {0: full}, exact=False).passed


def test_latency_server_delays_answers_and_keeps_connections_alive(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"x" * 1000)
    with LatencyServer(tmp_path, latency_s=0.2) as srv:
        connection = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=10)
        for _ in range(2):
            started = time.perf_counter()
            connection.request("GET", "/a.bin")
            response = connection.getresponse()
            assert response.read() == b"x" * 1000 and time.perf_counter() - started >= 0.2
            assert response.version == 11 and not response.will_close
        connection.request("GET", "/../../etc/passwd")
        assert connection.getresponse().status == 404
        connection.close()


def test_latency_server_answers_concurrent_requests_in_parallel(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"y")
    statuses: list[int] = []

    def get(port: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/a.bin")
        statuses.append(connection.getresponse().status)
        connection.close()

    with LatencyServer(tmp_path, latency_s=0.5) as srv:
        started = time.perf_counter()
        threads = [threading.Thread(target=get, args=(srv.server_address[1],)) for _ in range(32)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    assert statuses == [200] * 32
    assert elapsed < 5.0  # serial answers would take 16 s


def test_measurement_counts_cpu_of_a_child_that_ends_during_it() -> None:
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.0: pass\n"
    with Measurement(ProcessTree()) as measured:
        subprocess.run([sys.executable, "-c", burn], check=True, timeout=60)
    # Followed every 50 ms and found within a 0.25 s scan: at most ~0.3 s may go unseen.
    assert measured.sample.cpu_s["driver"] >= 0.7


def test_measurement_leaves_out_excluded_processes() -> None:
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.0: pass\n"
    child = subprocess.Popen([sys.executable, "-c", burn])
    try:
        with Measurement(ProcessTree(exclude=[child.pid])) as measured:
            child.wait(timeout=60)
    finally:
        child.kill()
    assert measured.sample.cpu_s["driver"] < 0.3


def test_jvm_profile_groups_stacks_by_their_first_known_frame_and_threads_by_name() -> None:
    from benchmarks import profile_jvm

    arrow_read = ["org.apache.spark.sql.vectorized.ColumnarBatchRow.getDouble",
                  "org.apache.spark.sql.catalyst.expressions.GeneratedClass$SpecificUnsafeProjection.apply"]
    assert profile_jvm.group_of(arrow_read).startswith("Python results -> rows")
    assert profile_jvm.group_of(arrow_read[1:]) == "generated projections / UnsafeRow copies"
    assert profile_jvm.group_of(["org.apache.parquet.column.impl.ColumnReaderBase.readValue"]).startswith("Parquet")
    assert profile_jvm.group_of(["java.lang.Object.wait"]) == profile_jvm.OTHER

    # this process's own threads: a busy thread's CPU is counted, under "other JVM threads"
    before = profile_jvm.thread_cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    after = profile_jvm.thread_cpu_seconds(os.getpid())
    after.subtract(before)
    assert set(after) == {"other JVM threads"} and after["other JVM threads"] >= 0.2
