"""End-to-end demo: real handwritten digits, served over loopback HTTP, classified in Spark.

Run it with ``make demo`` (or ``python -m sparkimg_ml.demo``). It needs the
``demo`` extra (scikit-learn, for its bundled ``load_digits`` data set) and
nothing from the internet:

1. writes scikit-learn's 1,797 labelled 8x8 digits as PNG files and serves
   them from a loopback HTTP server, with a few broken URLs seeded on purpose;
2. builds a wide table (the URL plus 120 unrelated columns);
3. fits ``ImageUrlFeaturizer -> PCA -> MultilayerPerceptronClassifier``,
   reports held-out accuracy and failed rows by reason (with examples), saves the
   ``PipelineModel`` and checks that the loaded model predicts the same.

The failures are reported by :func:`~sparkimg_ml.failure_report`: counts by
reason code with example URLs.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

EXTRA_COLUMNS = 120


def write_digits_pngs(directory: Path) -> list[tuple[str, int]]:
    """Write scikit-learn's digits as 8x8 grayscale PNGs; return ``(file name, label)`` pairs.

    The 0..16 intensities are stretched to 0..255 so the PNGs look like ordinary images.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    directory.mkdir(parents=True, exist_ok=True)
    pairs = []
    for index, (image, label) in enumerate(zip(digits.images, digits.target)):
        name = f"digit_{index:04d}.png"
        pixels = np.rint(image * (255.0 / 16.0)).astype(np.uint8)
        Image.fromarray(pixels, "L").save(directory / name)
        pairs.append((name, int(label)))
    return pairs


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real image host

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 drops connections under concurrent fetches


@contextlib.contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on ``127.0.0.1`` (a free port) for the ``with`` block; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def digits_frame(spark, base_url: str, pairs: list[tuple[str, int]], broken: int = 6,
                 extra_columns: int = EXTRA_COLUMNS):
    """A wide DataFrame: ``id``, ``url``, ``label`` and ``extra_columns`` unrelated columns.

    The last ``broken`` rows point at a missing file, a file that is not an image and a
    null URL, so the failure report has something to show.
    """
    from pyspark.sql import functions as F

    rows: list[tuple[int, str | None, int]] = [
        (i, f"{base_url}/{name}", label) for i, (name, label) in enumerate(pairs)
    ]
    for j in range(broken):
        kind = j % 3
        url = (f"{base_url}/missing_{j}.png", f"{base_url}/not_an_image.png", None)[kind]
        rows.append((len(rows), url, j % 10))
    frame = spark.createDataFrame(rows, "id int, url string, label int")
    extras = [(F.col("id") * (k + 1) % 97).cast("double").alias(f"col_{k:03d}") for k in range(extra_columns)]
    return frame.select("id", "url", "label", *extras)


def build_pipeline(k: int = 24, hidden: int = 48, max_iter: int = 200, seed: int = 7):
    """``ImageUrlFeaturizer -> drop failed rows -> PCA -> MLP`` for 8x8 grayscale digits."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import MultilayerPerceptronClassifier
    from pyspark.ml.feature import PCA, SQLTransformer

    from .featurizer import ImageUrlFeaturizer

    featurizer = ImageUrlFeaturizer(
        inputCol="url", outputCol="pixels", imageSize=[8, 8], colorMode="L",
        handleInvalid="keep", errorCol="image_error",
    )
    # Failed rows keep a reason in image_error; the classifier trains on the others.
    keep_readable = SQLTransformer(statement="SELECT * FROM __THIS__ WHERE pixels IS NOT NULL")
    pca = PCA(k=k, inputCol="pixels", outputCol="pca")
    mlp = MultilayerPerceptronClassifier(
        featuresCol="pca", labelCol="label", layers=[k, hidden, 10], maxIter=max_iter, seed=seed,
    )
    return Pipeline(stages=[featurizer, keep_readable, pca, mlp])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="demo-output", help="where the PipelineModel is saved")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    started = time.perf_counter()

    from pyspark.ml import PipelineModel
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator
    from pyspark.sql import SparkSession

    from .preview import failure_report

    spark = (
        SparkSession.builder.master("local[2]").appName("sparkimg_ml-demo")
        .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4").config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        with tempfile.TemporaryDirectory() as www:
            site = Path(www)
            pairs = write_digits_pngs(site)
            (site / "not_an_image.png").write_text("<html>this is not a PNG</html>")
            with serve_directory(site) as base_url:
                table = digits_frame(spark, base_url, pairs)
                print(f"table: {table.count()} rows x {len(table.columns)} columns, images at {base_url}")
                train, test = table.randomSplit([0.8, 0.2], seed=42)

                model = build_pipeline().fit(train)
                predictions = model.transform(test).cache()
                accuracy = MulticlassClassificationEvaluator(
                    labelCol="label", predictionCol="prediction", metricName="accuracy"
                ).evaluate(predictions)
                print(f"held-out accuracy: {accuracy:.3f} on {predictions.count()} readable test images")

                report = failure_report(model.stages[0].transform(table), "image_error", source_col="url")
                print(report)

                output = Path(args.output).resolve() / "digits_pipeline_model"
                model.write().overwrite().save(str(output))
                reloaded = PipelineModel.load(str(output)).transform(test)
                same = predictions.select("id", "prediction").exceptAll(
                    reloaded.select("id", "prediction")).count() == 0
                print(f"model saved to {output}; reloaded model gives identical predictions: {same}")
    finally:
        spark.stop()
    print(f"demo finished in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
