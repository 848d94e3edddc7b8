"""The per-task batch job, exercised as a plain function of Arrow arrays (no Spark)."""

from __future__ import annotations

import dataclasses
import io
import threading

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from sparkimg_ml import schema
from sparkimg_ml.engine import arrow, decode, featurize
from sparkimg_ml.errors import SourceError
from sparkimg_ml.fetch import Fetcher, FetchOptions
from sparkimg_ml.image import ImageSpec, preprocess_bytes


def _png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (5, 5), (value, value, value)).save(buffer, "PNG")
    return buffer.getvalue()


class _CountingFetch:
    """Stands in for Fetcher.fetch: serves generated PNGs by name and counts calls."""

    def __init__(self) -> None:
        self.calls: dict = {}
        self.lock = threading.Lock()

    def __call__(self, source: str) -> bytes:
        with self.lock:
            self.calls[source] = self.calls.get(source, 0) + 1
        if source.startswith("bad"):
            raise SourceError("http_404", "Not Found")
        return _png(int(source.rsplit("/", 1)[-1]))


@pytest.fixture
def counting_fetch(monkeypatch) -> _CountingFetch:
    fake = _CountingFetch()
    monkeypatch.setattr(Fetcher, "fetch", lambda self, source: fake(source))
    return fake


def _task(handle_invalid: str = "keep", size=(2, 2)) -> decode.DecodeTask:
    return decode.DecodeTask(ImageSpec(*size), FetchOptions(), schema.SOURCE, handle_invalid, "url")


def _values(features: pa.Array) -> list:
    """Each row's values, from any features format (None for null rows; uint8 pixels for binary)."""
    if pa.types.is_binary(features.type):
        return [None if v is None else list(v) for v in features.to_pylist()]
    if pa.types.is_struct(features.type):  # VectorUDT storage: the dense values are in "values"
        valid = features.is_valid().to_pylist()
        return [v if ok else None for ok, v in zip(valid, features.field("values").to_pylist())]
    return features.to_pylist()


def _run(batches, task):
    out = list(featurize.featurize_batches([pa.array(b, pa.string()) for b in batches], task))
    return pa.concat_arrays(out) if out else None, out


@pytest.mark.claim("Fetches of a batch run concurrently over pooled keep-alive connections; identical sources are fetched once")
def test_identical_sources_in_a_batch_are_fetched_once_and_rows_stay_in_order(counting_fetch):
    sources = ["u/10", "u/20", "u/10", "bad/1", "u/10", "u/30", "u/20"]
    result, _ = _run([sources], _task())
    assert counting_fetch.calls == {"u/10": 1, "u/20": 1, "bad/1": 1, "u/30": 1}
    features = _values(result.field("features"))
    firsts = [None if f is None else round(f[0] * 255) for f in features]
    assert firsts == [10, 20, 10, None, 10, 30, 20]
    assert result.field("error").to_pylist() == [None, None, None, "http_404: Not Found", None, None, None]


def test_output_batches_are_capped_in_bytes_and_keep_the_row_count(counting_fetch, monkeypatch):
    monkeypatch.setattr(decode, "OUTPUT_BATCH_BYTES", 8 * 12 * 3)  # three 2x2x3 rows of doubles per output batch
    sources = [f"u/{i}" for i in range(10)]
    result, batches = _run([sources[:4], sources[4:]], _task())
    assert [len(b) for b in batches] == [3, 1, 3, 3]
    assert len(result) == 10 and result.field("error").null_count == 10


@pytest.mark.claim("handleInvalid=\"error\" fails the job with a message naming the row's source (secrets redacted) and the cause")
def test_error_mode_raises_naming_the_source_without_its_secrets(counting_fetch):
    with pytest.raises(decode.ImageFeaturizationError) as failure:
        _run([["u/1", "bad/x?token=hunter2&size=3"]], _task("error"))
    message = str(failure.value)
    assert "bad/x?token=%2A%2A%2A&size=3" in message and "hunter2" not in message
    assert "http_404: Not Found" in message and "url=" in message


def test_binary_rows_decode_directly_and_empty_bytes_are_missing():
    task = decode.DecodeTask(ImageSpec(2, 2), FetchOptions(), schema.BINARY, "keep", "content")
    batch = pa.array([_png(40), b"", None, b"garbage"], pa.binary())
    [result] = list(featurize.featurize_batches([batch], task))
    errors = result.field("error").to_pylist()
    assert errors[0] is None and errors[1].startswith("missing") and errors[2].startswith("missing")
    assert errors[3].startswith("decode")
    np.testing.assert_array_equal(
        np.asarray(_values(result.field("features"))[0], np.float32),
        preprocess_bytes(_png(40), task.spec))


def test_rows_per_output_batch_shrinks_for_large_images():
    small = _task(size=(32, 32)).rows_per_output_batch()
    large = _task(size=(1024, 1024)).rows_per_output_batch()
    assert small == min(decode.MAX_OUTPUT_BATCH_ROWS, decode.OUTPUT_BATCH_BYTES // (8 * 3072))
    assert 1 <= large < small


@pytest.mark.parametrize("features_format", schema.FEATURIZER_OUTPUT_FORMATS)
def test_every_feature_format_carries_the_preprocess_values_and_nulls(counting_fetch, features_format):
    task = dataclasses.replace(_task(), features_format=features_format)
    result, _ = _run([["u/10", "bad/1", "u/30"]], task)
    features = result.field("features")
    assert features.type == arrow.output_arrow_type(12, features_format).field("features").type
    assert features.is_null().to_pylist() == [False, True, False]
    values = _values(features)
    dtype = np.uint8 if features_format == schema.UINT8 else np.float32
    expected = preprocess_bytes(_png(30), task.spec, out=np.empty(12, dtype))
    np.testing.assert_array_equal(np.asarray(values[2], dtype), expected)
    if features_format == schema.VECTOR:  # VectorUDT storage of a dense vector
        assert features.field("type").to_pylist()[0] == 1 and features.field("indices").null_count == 3


def _gradient_png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def test_decoded_blocks_cover_every_row_in_order_and_copy_duplicates_across_blocks(monkeypatch):
    monkeypatch.setattr(decode, "OUTPUT_BATCH_BYTES", 2 * 12)  # two 2x2x3 uint8 rows per block
    images = [_gradient_png(seed) for seed in range(3)]
    task = decode.DecodeTask(ImageSpec(2, 2), FetchOptions(), schema.BINARY, "keep", "content",
                              features_format=schema.UINT8)
    first = [images[0], b"junk", images[1], images[0], images[2]]
    second = [None, images[2], images[1]]
    blocks = list(decode.decoded_blocks([pa.array(first, pa.binary()), pa.array(second, pa.binary())], task))
    assert [len(b.block) for b in blocks] == [2, 2, 1, 2, 1]  # never spanning two input batches
    assert all(b.block.dtype == np.uint8 and b.block.shape[1] == 12 for b in blocks)
    rows = np.concatenate([b.block for b in blocks])
    failed = np.concatenate([b.failed for b in blocks]).tolist()
    reasons = [r for b in blocks for r in b.reasons]
    assert failed == [False, True, False, False, False, True, False, False]
    assert reasons[1].startswith("decode") and reasons[5] == "missing: null source"
    for row, data in enumerate(first + second):
        if failed[row]:
            assert not rows[row].any()  # failed rows are zeros, whatever a decoder left there
        else:
            np.testing.assert_array_equal(rows[row], preprocess_bytes(data, task.spec, out=np.empty(12, np.uint8)))


@pytest.mark.parametrize("features_format", schema.FEATURIZER_OUTPUT_FORMATS)
def test_decoded_block_dtypes_follow_the_format(features_format):
    task = decode.DecodeTask(ImageSpec(3, 2, mean="imagenet", std="imagenet"), FetchOptions(), schema.BINARY,
                              "keep", "content", features_format=features_format)
    [decoded] = decode.decoded_blocks([pa.array([_gradient_png(7)], pa.binary())], task)
    assert decoded.block.dtype == arrow.BLOCK_DTYPES[features_format]
    floats = preprocess_bytes(_gradient_png(7), task.spec)
    if features_format == schema.UINT8:
        from sparkimg_ml.tensors import TensorInfo

        info = TensorInfo.from_metadata(dict(task.spec.metadata(), dtype="uint8"))
        np.testing.assert_array_equal(info.to_float32(decoded.block[0]).reshape(-1), floats)
    else:  # float64 blocks hold the very float32 values
        np.testing.assert_array_equal(decoded.block[0], floats.astype(decoded.block.dtype))


def test_decoded_blocks_raise_under_error_naming_the_stage_and_source():
    task = decode.DecodeTask(ImageSpec(2, 2), FetchOptions(), schema.SOURCE, "error", "image_url",
                              stage_name="ImageEmbedder")
    with pytest.raises(decode.ImageFeaturizationError, match=r"ImageEmbedder .* image_url=/no/such\.png: not_found"):
        list(decode.decoded_blocks([pa.array(["/no/such.png"])], task))
