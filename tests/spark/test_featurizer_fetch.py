"""ImageUrlFeaturizer over the fault-injection server: reasons per row, deadlines, handleInvalid, secrets."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from fault_server import FaultServer

from sparkimg_ml import ImageUrlFeaturizer

TIMEOUT = 1.0


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


def featurizer(handle_invalid: str) -> ImageUrlFeaturizer:
    stage = ImageUrlFeaturizer(inputCol="url", errorCol="error", handleInvalid=handle_invalid, imageSize=[8, 8])
    stage.setTimeout(TIMEOUT).setMaxRetries(1).setMaxRetryWait(0.2).setMaxBytes(1 << 20)
    stage.setMaxConnectionsPerHost(16).setConcurrency(16)
    return stage


def fault_rows(server: FaultServer) -> list:
    """(url, expected reason prefix or None) for one row per fault route."""
    def hop(target: str) -> str:
        return server.url("/redirect-to?url=" + quote(target, safe=""))

    return [
        (server.url("/image.png"), None),
        (server.url("/status/403"), "http_403: Forbidden"),
        (server.url("/status/404"), "http_404: Not Found"),
        (server.url("/status/500"), "http_500: Internal Server Error"),
        (server.url("/retry-after/503/1"), "http_503: Service Unavailable"),
        (server.url("/retry-after/429/1"), "http_429: Too Many Requests"),
        (server.url(f"/flaky/1/{uuid.uuid4().hex}"), None),
        (server.url("/redirect/3"), None),
        (server.url("/loop/a"), "too_many_redirects: redirect loop"),
        (hop("file:///etc/passwd"), "blocked: redirect to a file: URL refused"),
        (hop("http://169.254.169.254/latest/meta-data/"), "blocked: 169.254.169.254, a link-local or metadata"),
        (server.url("/slow?delay=60"), "timeout: "),
        (server.url("/drip?seconds=60"), "timeout: "),
        (server.url("/drip-headers"), "timeout: "),
        (server.url("/reset"), "connection: connection reset by peer"),
        (server.url("/short"), "connection: body shorter than its Content-Length"),
        (server.url("/endless"), "too_large: body exceeds maxBytes 1048576"),
        (server.url("/gzip-bomb"), "too_large: body exceeds maxBytes 1048576"),
        (server.url("/gzip-image"), None),
        (server.url("/wrong-type/image"), None),
        (server.url("/wrong-type/text"), "decode"),
        (server.url("/chunked"), None),
    ]


@pytest.mark.claim("handleInvalid=\"keep\" keeps every row (null vector) and errorCol gives each failed row a reason code")
def test_featurizer_keeps_every_fault_row_with_its_reason_within_the_deadline(spark, server):
    rows = fault_rows(server)
    frame = spark.createDataFrame([(i, url) for i, (url, _) in enumerate(rows)], "id int, url string")
    start = time.monotonic()
    out = sorted(featurizer("keep").transform(frame).select("id", "error", "features").collect())
    elapsed = time.monotonic() - start
    assert len(out) == len(rows)
    for (url, expected), row in zip(rows, out):
        if expected is None:
            assert row.error is None, (url, row.error)
            assert row.features is not None and row.features.size == 8 * 8 * 3
        else:
            assert row.error is not None and row.error.startswith(expected), (url, row.error)
            assert row.features is None
    # The slow, dripping and endless routes would hold a row for 60 s without the
    # per-row deadline; with it every row ends within TIMEOUT (plus Spark's overhead).
    assert elapsed < 45


@pytest.mark.claim("handleInvalid=\"skip\" drops exactly the rows whose image cannot be read")
def test_featurizer_skips_failed_rows(spark, server):
    urls = [server.url("/image.png"), server.url("/status/404"), server.url("/redirect/2"), server.url("/loop/a")]
    frame = spark.createDataFrame([(u,) for u in urls], "url string")
    kept = featurizer("skip").transform(frame).select("url", "error").collect()
    assert sorted(row.url for row in kept) == sorted([urls[0], urls[2]])
    assert all(row.error is None for row in kept)


def test_featurizer_error_mode_fails_naming_the_url_and_reason(spark, server):
    bad = server.url("/status/404") + "?token=s3cret-value"
    frame = spark.createDataFrame([(server.url("/image.png"),), (bad,)], "url string")
    with pytest.raises(Exception) as caught:
        featurizer("error").transform(frame).collect()
    message = str(caught.value)
    assert server.url("/status/404") in message
    assert "http_404: Not Found" in message
    assert "s3cret-value" not in message


@pytest.mark.claim("Saved stages hold env references for headers and storage options, never literal secrets")
def test_saved_featurizer_holds_header_references_not_secrets(spark, tmp_path, monkeypatch):
    secret = "Bearer " + uuid.uuid4().hex
    monkeypatch.setenv("SPARKIMG_TEST_IMAGE_TOKEN", secret)
    stage = ImageUrlFeaturizer(inputCol="url")
    with pytest.raises(ValueError, match="env:NAME"):
        stage.setHeaders({"Authorization": secret})
    stage.setHeaders({"Authorization": "env:SPARKIMG_TEST_IMAGE_TOKEN", "User-Agent": "probe/1"})
    stage.setStorageOptions({"s3": {"endpoint_url": "http://127.0.0.1:9", "secret": "env:SPARKIMG_TEST_S3"}})
    stage.save(str(tmp_path / "stage"))
    saved = "".join(p.read_text(errors="replace") for p in (tmp_path / "stage").rglob("*") if p.is_file())
    assert "env:SPARKIMG_TEST_IMAGE_TOKEN" in saved
    assert secret not in saved and uuid.UUID(secret.split()[1]).hex not in saved
    loaded = ImageUrlFeaturizer.load(str(tmp_path / "stage"))
    assert loaded.getHeaders() == {"Authorization": "env:SPARKIMG_TEST_IMAGE_TOKEN", "User-Agent": "probe/1"}
    assert loaded._fetch_options() == stage._fetch_options()
