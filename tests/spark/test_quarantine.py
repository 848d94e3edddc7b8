"""Quarantine and replay: failed rows are recorded with every input column, re-run alone, merged back once."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import pytest
from fault_server import FaultServer

from sparkimg_ml import ImageUrlFeaturizer
from sparkimg_ml.curation import Quarantine


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


def _stage() -> ImageUrlFeaturizer:
    return ImageUrlFeaturizer(inputCol="url", outputCol="features", imageSize=[8, 8], handleInvalid="keep",
                              errorCol="error", maxRetries=0, timeout=5.0)


def test_failed_rows_are_quarantined_replayed_alone_and_merged_back_without_duplicates(spark, server, tmp_path):
    # /flaky/2/KEY fails twice with 503, then serves the image: it recovers on the second replay.
    flaky = server.url(f"/flaky/2/{uuid.uuid4().hex}")
    rows = [(1, server.url("/image.png"), "a"), (2, server.url("/status/404"), "b"), (3, flaky, "c"),
            (4, server.url("/chunked"), "d"), (5, server.url("/wrong-type/text"), "e")]
    frame = spark.createDataFrame(rows, "id long, url string, label string")
    stage = _stage()
    first = tmp_path / "results-1"
    stage.transform(frame).write.parquet(str(first))
    results = spark.read.parquet(str(first))
    quarantine = Quarantine(str(tmp_path / "quarantine"), key="id", error_col="error",
                            output_cols=["features", "error"], source_col="url")

    t1 = dt.datetime(2026, 12, 1, 10, 0, 0)
    assert quarantine.add(results, attempted_at=t1) == 3
    assert quarantine.add(results, attempted_at=t1) == 0  # already there: not added twice
    table = quarantine.table(spark).orderBy("id").collect()
    assert [(r.id, r.label, r.url, r.quarantine_source, r.quarantine_reason, r.quarantine_attempt,
             r.quarantine_attempted_at) for r in table] == [
        (2, "b", rows[1][1], rows[1][1], "http_404: Not Found", 1, t1),
        (3, "c", flaky, flaky, "http_503: Service Unavailable", 1, t1),
        (5, "e", rows[4][1], rows[4][1], table[2].quarantine_reason, 1, t1),
    ]
    assert table[2].quarantine_reason.startswith("decode")
    assert set(quarantine.table(spark).columns) == {"id", "url", "label", "quarantine_source", "quarantine_reason",
                                                    "quarantine_attempted_at", "quarantine_attempt"}

    hits_before = {path: server.hits(path) for path in ("/image.png", "/chunked")}
    second = tmp_path / "results-2"
    quarantine.replay(stage, results, attempted_at=dt.datetime(2026, 12, 2)).write.parquet(str(second))
    assert {path: server.hits(path) for path in hits_before} == hits_before  # good rows were not fetched again
    merged = spark.read.parquet(str(second))
    assert merged.columns == results.columns
    assert sorted(r.id for r in merged.collect()) == [1, 2, 3, 4, 5]
    # The flaky host failed again (its second 503): still pending, at attempt 2.
    assert sorted((r.id, r.quarantine_attempt) for r in quarantine.pending(spark).collect()) == [(2, 2), (3, 2), (5, 2)]

    third = tmp_path / "results-3"
    quarantine.replay(stage, merged, attempted_at=dt.datetime(2026, 12, 3)).write.parquet(str(third))
    final = {r.id: r for r in spark.read.parquet(str(third)).collect()}
    assert sorted(final) == [1, 2, 3, 4, 5]
    assert final[3].error is None and final[3].features is not None
    # Replayed values equal a fresh run's over the same (now healthy) source.
    fresh = stage.transform(spark.createDataFrame([(3, server.url("/image.png"), "c")], frame.schema)).first()
    assert final[3].features == fresh.features
    assert final[2].error == "http_404: Not Found" and final[2].features is None
    assert final[1].features == results.where("id = 1").first().features and final[1].label == "a"
    assert sorted(r.id for r in quarantine.pending(spark).collect()) == [2, 5]
    history = sorted((r.id, r.quarantine_attempt, r.quarantine_reason is None)
                     for r in quarantine.table(spark).collect())
    assert history == [(2, 1, False), (2, 2, False), (2, 3, False), (3, 1, False), (3, 2, False), (3, 3, True),
                       (5, 1, False), (5, 2, False), (5, 3, False)]


def test_quarantine_configuration_mistakes_are_named(spark):
    with pytest.raises(ValueError, match=r"output_cols must include the error column 'error'"):
        Quarantine("/tmp/q", key="id", error_col="error", output_cols=["features"], source_col="url")
    with pytest.raises(ValueError, match=r"key must name at least one column"):
        Quarantine("/tmp/q", key=[], error_col="error", output_cols=["error"], source_col="url")
    quarantine = Quarantine("/tmp/q", key="id", error_col="error", output_cols=["features", "error"],
                            source_col="url")
    frame = spark.createDataFrame([(1, "x")], "id long, url string")
    with pytest.raises(ValueError, match=r"results has no column 'features', 'error'"):
        quarantine.add(frame)
