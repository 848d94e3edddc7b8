"""The stages in Structured Streaming: a query stopped in the middle of a micro-batch restarts from its checkpoint.

A file source of URL lists (CSV files dropped into a folder) feeds the stage in
``keep`` mode into a Parquet sink with a checkpoint. The query is stopped hard
while a micro-batch is held by a slow loopback server, then started again from
the checkpoint: every input row must be in the sink exactly once, with the same
values (and reasons) as a batch ``transform`` of the same files.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_server import FaultServer
from onnx_models import tiny_cnn

from sparkimg_ml import ImageEmbedder, ImageUrlFeaturizer

SCHEMA = "id long, url string"
SLOW_SECONDS = 6  # how long the slow server holds the second micro-batch


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


def _busy(server: FaultServer, group: str) -> int:
    with server._server._hits_lock:
        return server._server.busy[group]


def _write_csv(path: Path, rows: list[tuple[int, str]]) -> None:
    # Written aside and renamed, so the file source never sees half a file.
    partial = path.with_name("." + path.name + ".tmp")
    partial.write_text("id,url\n" + "".join(f"{i},{url}\n" for i, url in rows))
    partial.rename(path)


def _stage(kind: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    stage: ImageUrlFeaturizer | ImageEmbedder
    if kind == "featurizer":
        stage = ImageUrlFeaturizer(inputCol="url", outputCol="out", imageSize=[8, 8], handleInvalid="keep",
                                   errorCol="error")
    else:
        stage = ImageEmbedder(inputCol="url", outputCol="out", modelUri=str(tiny_cnn(tmp_path / "tiny.onnx")),
                              outputNode="features", handleInvalid="keep", errorCol="error")
    return stage.setTimeout(3 * SLOW_SECONDS).setMaxRetries(0).setConcurrency(8)


def _start(spark, stage, source: Path, sink: Path, checkpoint: Path):  # type: ignore[no-untyped-def]
    stream = (spark.readStream.schema(SCHEMA).option("header", True).option("maxFilesPerTrigger", 1)
              .csv(str(source)))
    return (stage.transform(stream).writeStream.format("parquet").option("path", str(sink))
            .option("checkpointLocation", str(checkpoint)).start())


@pytest.mark.parametrize("kind", ["featurizer", "embedder"])
def test_query_stopped_mid_batch_restarts_from_its_checkpoint_with_every_row_once(spark, server, tmp_path, kind):
    source, sink, checkpoint = tmp_path / "urls", tmp_path / "sink", tmp_path / "checkpoint"
    source.mkdir()
    group = f"stream-{kind}"
    files = [
        [(1, server.url("/image.png")), (2, server.url("/status/404")), (3, server.url("/wrong-type/text"))],
        [(4, server.url(f"/slow?delay={SLOW_SECONDS}&group={group}")), (5, server.url("/redirect/2")),
         (6, "http://127.0.0.1:9/refused.png")],
        [(7, server.url("/gzip-image")), (8, server.url("/chunked"))],
    ]
    stage = _stage(kind, tmp_path)

    _write_csv(source / "part-1.csv", files[0])
    query = _start(spark, stage, source, sink, checkpoint)
    try:
        query.processAllAvailable()  # the first file is committed
        _write_csv(source / "part-2.csv", files[1])
        deadline = time.monotonic() + 120
        while _busy(server, group) == 0:  # the second micro-batch is in flight, held by the slow row
            assert time.monotonic() < deadline, "the second micro-batch never started"
            assert query.isActive, query.exception()
            time.sleep(0.05)
    finally:
        query.stop()  # hard: the running micro-batch is cancelled, not finished
    committed = {p.name for p in (checkpoint / "commits").iterdir() if not p.name.startswith(".")}
    assert committed == {"0"}, committed  # only the first batch was committed

    _write_csv(source / "part-3.csv", files[2])
    query = _start(spark, stage, source, sink, checkpoint)
    try:
        query.processAllAvailable()
        assert query.exception() is None
    finally:
        query.stop()

    streamed = spark.read.parquet(str(sink)).select("id", "out", "error").collect()
    ids = sorted(row.id for row in streamed)
    assert ids == list(range(1, 9)), ids  # every input row, exactly once
    batch = (stage.transform(spark.read.schema(SCHEMA).option("header", True).csv(str(source)))
             .select("id", "out", "error").collect())
    expected = {row.id: (row.out, row.error) for row in batch}
    assert {row.id: (row.out, row.error) for row in streamed} == expected
    reasons = {i: error for i, (_, error) in expected.items() if error is not None}
    assert set(reasons) == {2, 3, 6}, reasons
    assert reasons[2] == "http_404: Not Found"
    assert reasons[3].startswith("decode") and reasons[6].startswith("connection")
    assert expected[4][0] is not None  # the slow row, cancelled in the first run, succeeded on replay


def test_foreach_batch_recipe_overwrites_its_own_batch_folder_so_replays_do_not_duplicate(spark, server, tmp_path):
    """The docs' foreachBatch recipe: a replayed batch overwrites the folder named after its id."""
    source, sink, checkpoint = tmp_path / "urls", tmp_path / "sink", tmp_path / "checkpoint"
    source.mkdir()
    stage = _stage("featurizer", tmp_path)

    def write_batch(frame, batch_id: int) -> None:  # type: ignore[no-untyped-def]
        stage.transform(frame).write.mode("overwrite").parquet(str(sink / f"batch_id={batch_id}"))

    _write_csv(source / "part-1.csv", [(1, server.url("/image.png")), (2, server.url("/status/404"))])
    stream = spark.readStream.schema(SCHEMA).option("header", True).csv(str(source))
    query = stream.writeStream.foreachBatch(write_batch).option("checkpointLocation", str(checkpoint)).start()
    try:
        query.processAllAvailable()
    finally:
        query.stop()
    write_batch(spark.read.schema(SCHEMA).option("header", True).csv(str(source)), 0)  # a replay of batch 0
    rows = spark.read.parquet(str(sink)).select("id", "error", "batch_id").collect()
    assert sorted((row.id, row.error, row.batch_id) for row in rows) == [(1, None, 0), (2, "http_404: Not Found", 0)]
