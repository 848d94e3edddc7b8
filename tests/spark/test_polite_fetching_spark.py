"""Polite-fetching Params through Spark: persisted with the stage, and opt-outs reported per row."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from crawl_server import CrawlServer

from sparkimg_ml import ImageUrlFeaturizer


@pytest.fixture(scope="module")
def crawl() -> Iterator[CrawlServer]:
    with CrawlServer() as running:
        yield running


def test_params_survive_save_and_load(spark, tmp_path):
    stage = ImageUrlFeaturizer(inputCol="url", maxRequestsPerSecondPerHost=3.0, respectOptOut=True)
    stage.save(str(tmp_path / "stage"))
    loaded = ImageUrlFeaturizer.load(str(tmp_path / "stage"))
    assert loaded.getMaxRequestsPerSecondPerHost() == 3.0 and loaded.getRespectOptOut() is True
    [part] = [p for p in (tmp_path / "stage" / "metadata").glob("part-*") if p.stat().st_size]
    metadata = json.loads(part.read_text())
    assert metadata["paramMap"]["maxRequestsPerSecondPerHost"] == 3.0
    assert metadata["paramMap"]["respectOptOut"] is True


def test_the_featurizer_reports_opted_out_rows_and_keeps_the_rest(spark, crawl):
    rows = [(crawl.url("/robots?" + urlencode([("tag", "noai")])),), (crawl.url("/image.png"),), (crawl.url("/robots?" + urlencode([("tag", "otherbot: noai")])),)]
    df = spark.createDataFrame(rows, "url string")
    stage = ImageUrlFeaturizer(inputCol="url", errorCol="error", handleInvalid="keep", imageSize=[4, 4],
                               respectOptOut=True, maxRequestsPerSecondPerHost=50.0)
    errors = [row.error for row in stage.transform(df).select("error").collect()]
    assert errors == ["opted_out: X-Robots-Tag noai", None, None]
