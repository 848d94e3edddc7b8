"""Reading ``s3://`` sources through fsspec/s3fs from an S3-compatible server on 127.0.0.1 (moto)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

pytest.importorskip("s3fs")
boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

from fault_server import PNG, make_png

from sparkimg_ml import schema
from sparkimg_ml.engine import decode, featurize
from sparkimg_ml.errors import SourceError
from sparkimg_ml.fetch import Fetcher, FetchOptions
from sparkimg_ml.image import ImageSpec

BUCKET = "sparkimg-images"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """Endpoint URL of a moto S3 server on 127.0.0.1 holding a few objects; dummy credentials only."""
    with pytest.MonkeyPatch.context() as patch:
        # Dummy credentials so botocore never looks for real ones (files, instance metadata).
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                            "AWS_EC2_METADATA_DISABLED": "true"}.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            patch.delenv(name, raising=False)
        server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        try:
            client = boto3.client("s3", endpoint_url=endpoint)
            client.create_bucket(Bucket=BUCKET)
            client.put_object(Bucket=BUCKET, Key="private/a.png", Body=PNG)
            client.put_object(Bucket=BUCKET, Key="private/big.bin", Body=bytes(200_000))
            for i in range(3):
                client.put_object(Bucket=BUCKET, Key=f"public/{i}.png", Body=make_png(8, (40 * i, 90, 200)),
                                  ACL="public-read")
            yield endpoint
        finally:
            server.stop()


def s3_fetcher(endpoint: str, **options: object) -> Fetcher:
    settings: dict = {"timeout": 5.0, "storage_options": {"s3": {"endpoint_url": endpoint}}}
    settings.update(options)
    return Fetcher(FetchOptions(**settings))


@pytest.mark.claim("s3:// and other fsspec URLs are read with the cloud extra, on the driver and through Spark")
def test_fetch_reads_s3_objects_with_credentials_from_the_environment(s3_endpoint):
    with s3_fetcher(s3_endpoint) as fetch:
        assert fetch.fetch(f"s3://{BUCKET}/private/a.png") == PNG
        assert fetch.fetch(f"s3a://{BUCKET}/private/a.png") == PNG


@pytest.mark.parametrize("key, reason", [
    ("private/missing.png", f"not_found: {BUCKET}/private/missing.png"),
    ("private/big.bin", "too_large: 200000 bytes > maxBytes 100000"),
])
def test_fetch_reports_missing_and_oversized_s3_objects(s3_endpoint, key, reason):
    with s3_fetcher(s3_endpoint, max_bytes=100_000) as fetch, pytest.raises(SourceError) as caught:
        fetch.fetch(f"s3://{BUCKET}/{key}")
    assert caught.value.reason == reason


def test_fetch_reports_a_missing_bucket_and_a_bare_bucket_path(s3_endpoint):
    with s3_fetcher(s3_endpoint) as fetch:
        with pytest.raises(SourceError, match="^not_found: no-such-bucket/a.png$"):
            fetch.fetch("s3://no-such-bucket/a.png")
        with pytest.raises(SourceError, match="^invalid_source: "):
            fetch.fetch(f"s3://{BUCKET}/")


def test_fetch_reads_public_objects_anonymously_and_refuses_private_ones(s3_endpoint):
    options = {"s3": {"endpoint_url": s3_endpoint, "anon": True}}
    with s3_fetcher(s3_endpoint, storage_options=options) as fetch:
        assert fetch.fetch(f"s3://{BUCKET}/public/0.png") == make_png(8, (0, 90, 200))
        with pytest.raises(SourceError, match="^permission_denied: "):
            fetch.fetch(f"s3://{BUCKET}/private/a.png")


@pytest.fixture
def no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An environment where botocore finds no credentials anywhere (and asks no metadata service)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                 "AWS_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


# (source, storage options beyond the endpoint, expected reason); every case is a row problem.
_S3_FAILURES = {
    "no credentials": (f"s3://{BUCKET}/private/a.png", {}, "storage: NoCredentialsError: Unable to locate credentials"),
    "wrong bucket": ("s3://no-such-bucket/a.png", {}, "not_found: no-such-bucket/a.png"),
    "access denied": (f"s3://{BUCKET}/private/a.png", {"anon": True}, f"permission_denied: {BUCKET}/private/a.png"),
}


@pytest.mark.parametrize("case", list(_S3_FAILURES))
def test_s3_failures_are_row_reasons_under_keep_and_name_the_row_under_error(s3_endpoint, no_aws_credentials,
                                                                             monkeypatch, case):
    source, options, reason = _S3_FAILURES[case]
    if case != "no credentials":  # the other cases need the dummy credentials the server accepts
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    # skip_instance_cache: fsspec would hand back a file system built under other credentials.
    fetch_options = FetchOptions(timeout=5.0, storage_options={
        "s3": {"endpoint_url": s3_endpoint, "skip_instance_cache": True, **options}})
    task = decode.DecodeTask(ImageSpec(4, 4), fetch_options, schema.SOURCE, "keep", "url")
    batch = next(featurize.featurize_batches([pa.array([source])], task))
    assert batch.field("error").to_pylist() == [reason]
    erroring = decode.DecodeTask(ImageSpec(4, 4), fetch_options, schema.SOURCE, "error", "url")
    with pytest.raises(decode.ImageFeaturizationError, match=f"row with url={source}: {reason}"):
        next(featurize.featurize_batches([pa.array([source])], erroring))


def test_fetch_gives_up_on_an_unreachable_s3_endpoint_within_the_deadline():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.monotonic()
    with s3_fetcher(f"http://127.0.0.1:{port}", timeout=1.0) as fetch, pytest.raises(SourceError) as caught:
        fetch.fetch(f"s3://{BUCKET}/private/a.png")
    assert caught.value.code in ("timeout", "storage")
    assert time.monotonic() - start < 2.0


@pytest.mark.claim("s3:// and other fsspec URLs are read with the cloud extra, on the driver and through Spark")
@pytest.mark.compat
def test_featurizer_reads_images_from_an_s3_bucket(spark, s3_endpoint):
    from sparkimg_ml import ImageUrlFeaturizer

    # Spark's Python workers may have started before this fixture set the dummy
    # credentials, so the Spark-level check reads public objects anonymously.
    sources = [f"s3://{BUCKET}/public/{i}.png" for i in range(3)] + [f"s3://{BUCKET}/public/missing.png"]
    frame = spark.createDataFrame(list(enumerate(sources)), "id int, url string")
    featurizer = ImageUrlFeaturizer(inputCol="url", errorCol="error", handleInvalid="keep", imageSize=[4, 4])
    featurizer.setStorageOptions({"s3": {"endpoint_url": s3_endpoint, "anon": True}}).setTimeout(10.0)
    rows = sorted(featurizer.transform(frame).select("id", "error", "features").collect())
    assert [row.error for row in rows] == [None, None, None, f"not_found: {BUCKET}/public/missing.png"]
    assert rows[3].features is None
    for i, row in enumerate(rows[:3]):
        pixels = row.features.toArray().reshape(4, 4, 3)
        np.testing.assert_allclose(pixels[0, 0], np.array([40 * i, 90, 200]) / 255, atol=1e-6)
