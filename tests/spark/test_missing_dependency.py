"""``missing_dependency``: a storage URL whose back-end is not installed names the package and the extra.

The back-ends are made absent here by blocking their import (``sys.modules[name] = None``)
and forgetting fsspec's cached classes, whatever the test environment has installed. The
same reason from a real venv without gcsfs, through Spark's workers, is checked in
tests/test_wheel_install.py.
"""

from __future__ import annotations

import importlib
import sys

import pytest

from sparkimg_ml import REASON_CODES, ImageHasher, ImageUrlFeaturizer
from sparkimg_ml.errors import MissingDependencyError, SourceError
from sparkimg_ml.fetch import DEFAULT_STORAGE_PROTOCOLS, Fetcher, FetchOptions
from sparkimg_ml.fetch.backends import (
    BACKEND_CHECK_ROWS,
    BACKENDS,
    absent_backends,
    check_backends,
    missing_backends,
)

#: protocol -> (module that reads it, extra that installs it), written out independently of BACKENDS.
EXPECTED = {
    "s3": ("s3fs", "s3"), "s3a": ("s3fs", "s3"), "gs": ("gcsfs", "gcs"), "gcs": ("gcsfs", "gcs"),
    "abfs": ("adlfs", "azure"), "abfss": ("adlfs", "azure"), "az": ("adlfs", "azure"), "adl": ("adlfs", "azure"),
}


@pytest.fixture
def block(monkeypatch):
    """Make modules unimportable and fsspec forget the file-system classes it already loaded."""
    registry = importlib.import_module("fsspec.registry")

    def blocked(*modules: str) -> None:
        for name in modules:
            monkeypatch.setitem(sys.modules, name, None)
        for protocol in list(registry._registry):
            monkeypatch.delitem(registry._registry, protocol)

    return blocked


def reason(source: str, **options) -> str:
    with Fetcher(FetchOptions(**options)) as fetcher:
        with pytest.raises(SourceError) as caught:
            fetcher.fetch(source)
    return caught.value.reason


def test_missing_dependency_is_a_documented_reason_code():
    assert "missing_dependency" in REASON_CODES and "gcsfs" in REASON_CODES["missing_dependency"]


@pytest.mark.parametrize("protocol", sorted(EXPECTED))
def test_a_storage_row_without_its_backend_names_package_and_extra(block, protocol):
    module, extra = EXPECTED[protocol]
    block(module)
    assert reason(f"{protocol}://bucket/a.png") == (
        f"missing_dependency: {protocol}:// needs {module} (pip install 'sparkimg_ml[{extra}]')")


def test_without_fsspec_every_storage_row_names_its_extra(block):
    block("fsspec", "fsspec.registry")
    assert reason("s3://bucket/a.png") == "missing_dependency: s3:// needs s3fs (pip install 'sparkimg_ml[s3]')"
    assert reason("hdfs://namenode/a.png") == (
        "missing_dependency: hdfs:// needs fsspec (pip install 'sparkimg_ml[hdfs]')")


def test_webhdfs_without_requests_names_the_hdfs_extra(block):
    block("requests", "fsspec.implementations.webhdfs")
    assert reason("webhdfs://namenode:9870/a.png") == (
        "missing_dependency: webhdfs:// needs requests (pip install 'sparkimg_ml[hdfs]')")


def test_a_protocol_the_user_adds_names_the_missing_module(block):
    block("fsspec")
    assert reason("memory://a.png", storage_protocols=["memory"]) == (
        "missing_dependency: memory:// needs fsspec (pip install fsspec)")


def test_an_unknown_protocol_is_still_unsupported_scheme():
    assert reason("nosuchproto://a/b.png", storage_protocols=["nosuchproto"]) == (
        "unsupported_scheme: nosuchproto: is not an fsspec protocol")
    assert reason("ftp://host/a.png").startswith("unsupported_scheme: ftp: is not read")


def test_every_default_storage_protocol_has_a_backend_and_extra():
    assert set(DEFAULT_STORAGE_PROTOCOLS) == set(BACKENDS)
    assert {p: (b.module, b.extra) for p, b in BACKENDS.items() if p in EXPECTED} == EXPECTED


def test_missing_backends_lists_each_missing_protocol_once_in_order(block):
    block("gcsfs", "adlfs")
    sources = ["https://example.com/a.png", None, 42, "/data/x.png", "GS://b/1.png", "abfs://c/2.png",
               "gs://b/3.png", "s3://bucket/ok.png", "data:image/png;base64,AAAA", "not a url"]
    assert missing_backends(sources) == [
        "missing_dependency: gs:// needs gcsfs (pip install 'sparkimg_ml[gcs]')",
        "missing_dependency: abfs:// needs adlfs (pip install 'sparkimg_ml[azure]')",
    ]
    assert missing_backends(sources, storage_protocols=["s3"]) == []  # only the protocols that are read
    assert missing_backends(["s3://bucket/a.png", "https://x/y.png"]) == []


def test_check_backends_raises_naming_the_first_row_and_what_to_install(block):
    block("gcsfs")
    with pytest.raises(MissingDependencyError, match=(
            r"^ImageUrlFeaturizer could not read the image of row with url=gs://b/a\.png\?X-Goog-Signature="
            r"%2A%2A%2A: missing_dependency: gs:// needs gcsfs \(pip install 'sparkimg_ml\[gcs\]'\)\. Install it "
            r"where the driver and the executors run, or set handleInvalid='keep'")):
        check_backends("ImageUrlFeaturizer", "url", ["/ok.png", "gs://b/a.png?X-Goog-Signature=secret"],
                       DEFAULT_STORAGE_PROTOCOLS)
    check_backends("ImageUrlFeaturizer", "url", ["/ok.png", "https://x/y.png"], DEFAULT_STORAGE_PROTOCOLS)


def test_featurizer_in_error_mode_raises_at_transform_when_the_first_rows_need_a_missing_backend(spark, block):
    block("gcsfs")
    frame = spark.createDataFrame([("/no/such/a.png",), ("gs://bucket/b.png",)], "url string")
    featurizer = ImageUrlFeaturizer(inputCol="url", handleInvalid="error")
    with pytest.raises(MissingDependencyError, match=(
            r"could not read the image of row with url=gs://bucket/b\.png: missing_dependency: gs:// needs gcsfs "
            r"\(pip install 'sparkimg_ml\[gcs\]'\)")):
        featurizer.transform(frame)  # raised on the driver, before any job runs the UDF
    # keep and skip leave it to each row; a scheme past the first rows is left to its row too.
    for mode in ("keep", "skip"):
        ImageUrlFeaturizer(inputCol="url", handleInvalid=mode).transform(frame)
    late = spark.createDataFrame([(f"/no/such/{i}.png",) for i in range(BACKEND_CHECK_ROWS)]
                                 + [("gs://bucket/late.png",)], "url string").coalesce(1)
    featurizer.transform(late)


def test_hasher_in_error_mode_raises_at_transform_like_the_featurizer(spark, block):
    block("gcsfs")
    frame = spark.createDataFrame([("gs://bucket/b.png",)], "url string")
    with pytest.raises(MissingDependencyError, match=r"missing_dependency: gs:// needs gcsfs"):
        ImageHasher(inputCol="url", handleInvalid="error").transform(frame)


def test_abfss_urls_reach_adlfs_although_fsspec_lists_only_abfs_and_az(block, monkeypatch):
    import types
    import uuid

    from fsspec.implementations.memory import MemoryFileSystem

    class AzureBlobFileSystem(MemoryFileSystem):  # stands in for adlfs's class (same name, same protocols)
        protocol = ("abfs", "az", "abfss")

        @classmethod
        def _strip_protocol(cls, path):
            for protocol in cls.protocol:
                path = path[len(protocol) + 3:] if path.startswith(protocol + "://") else path
            return "/" + path.strip("/")

    block()
    monkeypatch.setitem(sys.modules, "adlfs", types.SimpleNamespace(AzureBlobFileSystem=AzureBlobFileSystem))
    path = f"container-{uuid.uuid4().hex}/a.png"
    AzureBlobFileSystem().pipe("/" + path, b"image bytes")
    try:
        with Fetcher(FetchOptions()) as fetcher:
            assert fetcher.fetch(f"abfss://{path}") == b"image bytes"
            assert fetcher.fetch(f"abfs://{path}") == b"image bytes"
    finally:
        AzureBlobFileSystem().rm("/" + path)


def test_absent_backends_finds_blocked_modules_without_importing_them(block, monkeypatch):
    import types

    for name in ("fsspec", "s3fs", "gcsfs"):  # present, whatever this environment has installed
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    assert absent_backends(["s3", "gs"]) == []
    block("gcsfs")
    assert absent_backends(["s3", "gs", "gcs", "hdfs"]) == ["gs", "gcs"]
    block("fsspec")
    assert absent_backends(["s3", "memory"]) == ["s3", "memory"]
