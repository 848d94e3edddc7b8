"""TensorReshaper gives the same values on every supported Spark: digests compared across environments.

Each case reshapes fixed inputs (Vector, array<float>, array<double>, uint8 binary)
and checks the output against numpy. With ``SPARKIMG_COMPAT_DIGEST_DIR`` set (the
compatibility runs, .ci/compat_matrix.py), the SHA-256 of every case's output
bytes is written there; the matrix fails unless every environment's digests equal
the main environment's.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from pyspark.ml.functions import array_to_vector

from sparkimg_ml import TensorReshaper
from sparkimg_ml.tensors import TensorInfo

SHAPE = [4, 5, 3]
ROWS = 3
UINT8_META = {"tensor": {"shape": SHAPE, "layout": "HWC", "channelOrder": "RGB", "dtype": "uint8",
                         "scale": 1 / 255, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}}
CASES = [  # (input column, axes, outputFormat)
    ("vector", [2, 0, 1], "nested"), ("vector", [2, 0, 1], "array"), ("vector", [1, 0, 2], "vector"),
    ("floats", [2, 0, 1], "nested"), ("floats", [0, 1, 2], "nested"), ("doubles", [1, 2, 0], "array"),
    ("pixels", [2, 0, 1], "nested"), ("pixels", [0, 1, 2], "array"), ("pixels", [2, 1, 0], "vector"),
]


def _inputs(spark):
    rng = np.random.default_rng(13)
    size = int(np.prod(SHAPE))
    floats = rng.normal(size=(ROWS, size)).astype(np.float32)
    doubles = rng.normal(size=(ROWS, size))
    pixels = rng.integers(0, 256, (ROWS, size), dtype=np.uint8)
    frame = spark.createDataFrame(
        [(i, floats[i].tolist(), doubles[i].tolist(), bytes(pixels[i])) for i in range(ROWS)],
        "id int, floats array<float>, doubles array<double>, pixels binary")
    frame = frame.withColumn("vector", array_to_vector("floats"))
    frame = (frame.withMetadata("vector", {"tensor": {"shape": SHAPE, "layout": "HWC", "dtype": "float32"}})
             .withMetadata("floats", {"tensor": {"shape": SHAPE, "dtype": "float32"}})
             .withMetadata("doubles", {"tensor": {"shape": SHAPE, "dtype": "float64"}})
             .withMetadata("pixels", UINT8_META))
    expected_inputs = {"vector": floats, "floats": floats, "doubles": doubles,
                       "pixels": TensorInfo.from_metadata(UINT8_META).to_float32(pixels).reshape(ROWS, -1)}
    return frame, expected_inputs


@pytest.mark.claim("TensorReshaper output equals numpy's reshape + transpose, and the inverse restores the input")
@pytest.mark.compat
def test_reshaper_values_equal_numpy_and_are_recorded_for_the_cross_version_comparison(spark):
    frame, inputs = _inputs(spark)
    digests = {}
    for column, axes, output_type in CASES:
        stage = TensorReshaper(inputCol=column, outputCol="t", axes=axes, outputFormat=output_type)
        rows = stage.transform(frame).orderBy("id").select("t").collect()
        dtype = np.float64 if column == "doubles" else np.float32
        got = np.stack([np.asarray(r.t.toArray() if output_type == "vector" else r.t).astype(dtype)
                        for r in rows])
        expected = inputs[column].reshape(ROWS, *SHAPE).transpose(0, *[a + 1 for a in axes]).astype(dtype)
        np.testing.assert_array_equal(got.reshape(expected.shape) if output_type != "nested" else got,
                                      expected, err_msg=f"{column} {axes} {output_type}")
        digests[f"{column} {axes} {output_type}"] = hashlib.sha256(np.ascontiguousarray(got).tobytes()).hexdigest()
    target = os.environ.get("SPARKIMG_COMPAT_DIGEST_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        (Path(target) / "reshaper.json").write_text(json.dumps(digests, indent=1, sort_keys=True))
