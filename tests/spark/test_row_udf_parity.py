"""The featurizer reproduces the row-at-a-time recipe it replaces, on real JPEG photos."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from pyspark.ml.functions import vector_to_array
from sklearn.datasets import load_sample_images

from sparkimg_ml import ImageUrlFeaturizer


def _row_udf_recipe(data: bytes) -> np.ndarray:
    """What users write today: requests.get -> Pillow -> resize((32, 32)) -> [:, :, :3] / 255."""
    image = Image.open(io.BytesIO(data)).resize((32, 32))
    return np.array(image)[:, :, :3].flatten() / 255


@pytest.fixture(scope="module")
def photo_urls(static_dir, http_server):
    folder = static_dir / "photos"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(11)
    urls, blobs = [], []
    for index, photo in enumerate(load_sample_images().images):
        for crop in range(4):  # a few crops per photo, at several JPEG qualities
            top, left = rng.integers(0, 120), rng.integers(0, 200)
            buffer = io.BytesIO()
            Image.fromarray(photo[top:top + 300, left:left + 400]).save(
                buffer, "JPEG", quality=int(rng.integers(70, 96)))
            name = f"photo_{index}_{crop}.jpg"
            (folder / name).write_bytes(buffer.getvalue())
            urls.append(f"{http_server}/photos/{name}")
            blobs.append(buffer.getvalue())
    return urls, blobs


@pytest.mark.claim("The featurizer gives the row-at-a-time UDF's values on RGB JPEGs")
def test_featurizer_matches_the_row_udf_recipe_on_rgb_jpegs(spark, photo_urls):
    urls, blobs = photo_urls
    frame = spark.createDataFrame(list(enumerate(urls)), "id int, url string")
    featurizer = ImageUrlFeaturizer(inputCol="url", imageSize=[32, 32], reducedDecode=False)
    rows = featurizer.transform(frame).select("id", vector_to_array("features").alias("v")).orderBy("id").collect()
    assert len(rows) == len(blobs) == 8
    for row, blob in zip(rows, blobs):
        ours = np.asarray(row["v"])
        theirs = _row_udf_recipe(blob)
        assert ours.shape == theirs.shape == (3072,)
        # The same pixels exactly; the values differ only by float32 vs float64 rounding of pixel / 255.
        np.testing.assert_array_equal(np.rint(ours * 255), np.rint(theirs * 255))
        np.testing.assert_array_equal(ours, (np.rint(theirs * 255).astype(np.float32) * np.float32(1 / 255)))
