"""ImageEmbedder against a hand-written pandas UDF and the no-Spark ceiling, side by side in one run.

    python -m benchmarks.bench_embedder                # 256 photos, ResNet-18 at 224x224
    python -m benchmarks.bench_embedder --images 32    # quick run

The model is a ResNet-18 (11.7M parameters, 1.8 GFLOPs per 224x224 image) built
with ``onnx.helper`` from random weights, which costs the same to run as trained
ones; its ``features`` output (the 512-d pooled layer) is the embedding. The
images are the benchmark corpus (:mod:`benchmarks.corpus`: JPEG and PNG photos,
longest side 200-1600 px) read from local paths, resized to 224x224 and
normalised with ImageNet's statistics. Contenders, each first warmed up on a few
rows (so every Python worker has loaded its model), then timed once:

* ``ImageEmbedder`` -- the stage with its defaults (one onnxruntime thread per
  task, decode overlapped with inference);
* ``pandas UDF`` -- the obvious ``pandas_udf``: Pillow decode, resize and
  normalise per row, one ``InferenceSession`` (onnxruntime's default threads)
  per task, ``session.run`` per Arrow batch;
* ``ceiling`` -- no Spark: the same decode as the stage on a two-thread pool
  and the same session (two threads) in this one process.

The sink is ``df.write.format("noop")``. Reported: images/s, CPU ms per image
of the whole process tree (driver, JVM, Python workers; :mod:`benchmarks.measure`),
and each contender's ratios to the ceiling. Before timing, the contenders'
embeddings of the first images are compared with the ceiling's.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .corpus import DEFAULT_CACHE_DIR, CorpusSpec, build_corpus
from .measure import Measurement, ProcessTree, Sample

SIZE = 224
CONTENDERS = ("ImageEmbedder", "pandas UDF", "ceiling")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_resnet18(path: Path, seed: int = 0) -> Path:
    """A ResNet-18 graph (batch norm folded into the convolutions) with He-initialised random weights.

    Outputs ``logits`` [N, 1000] and ``features`` [N, 512].
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes: list[Any] = []
    weights: list[Any] = []

    def conv(x: str, name: str, c_in: int, c_out: int, k: int, stride: int, relu: bool) -> str:
        w = rng.normal(0, np.sqrt(2.0 / (c_in * k * k)), (c_out, c_in, k, k)).astype(np.float32)
        weights.extend([numpy_helper.from_array(w, f"{name}_w"),
                        numpy_helper.from_array(np.zeros(c_out, np.float32), f"{name}_b")])
        nodes.append(helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [name], strides=[stride, stride],
                                      pads=[k // 2] * 4))
        if not relu:
            return name
        nodes.append(helper.make_node("Relu", [name], [f"{name}_relu"]))
        return f"{name}_relu"

    def block(x: str, name: str, c_in: int, c_out: int, stride: int) -> str:
        y = conv(x, f"{name}_a", c_in, c_out, 3, stride, relu=True)
        y = conv(y, f"{name}_b", c_out, c_out, 3, 1, relu=False)
        shortcut = conv(x, f"{name}_down", c_in, c_out, 1, stride, relu=False) if stride != 1 or c_in != c_out else x
        nodes.append(helper.make_node("Add", [y, shortcut], [f"{name}_sum"]))
        nodes.append(helper.make_node("Relu", [f"{name}_sum"], [f"{name}_out"]))
        return f"{name}_out"

    x = conv("image", "stem", 3, 64, 7, 2, relu=True)
    nodes.append(helper.make_node("MaxPool", [x], ["stem_pool"], kernel_shape=[3, 3], strides=[2, 2],
                                  pads=[1, 1, 1, 1]))
    x, channels = "stem_pool", 64
    for stage, width in enumerate((64, 128, 256, 512)):
        for index in range(2):
            stride = 2 if stage > 0 and index == 0 else 1
            x = block(x, f"layer{stage + 1}_{index}", channels, width, stride)
            channels = width
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"]))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["features"]))
    fc = rng.normal(0, np.sqrt(1.0 / 512), (512, 1000)).astype(np.float32)
    weights.extend([numpy_helper.from_array(fc, "fc_w"), numpy_helper.from_array(np.zeros(1000, np.float32), "fc_b")])
    nodes.append(helper.make_node("Gemm", ["features", "fc_w", "fc_b"], ["logits"]))
    graph = helper.make_graph(
        nodes, "resnet18", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000]),
         helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 512])],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(model.SerializeToString())
    tmp.replace(path)
    return path


def _session(partitions: int) -> Any:
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = (
        SparkSession.builder.master("local[2]").appName("bench_embedder")
        .config("spark.driver.memory", "4g").config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(partitions))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _embedder(model: Path) -> Any:
    from sparkimg_ml import ImageEmbedder

    return ImageEmbedder(inputCol="path", modelUri=str(model), outputNode="features", mean="imagenet",
                         std="imagenet", outputFormat="array")


def _pandas_udf(frame: Any, model: Path) -> Any:
    from pyspark.sql import functions as F

    model_path = str(model)

    # Written as users write it: pickled by value, nothing from this package.
    @F.pandas_udf("array<float>")
    def embed(paths: Iterator[pd.Series]) -> Iterator[pd.Series]:
        import onnxruntime as ort
        from PIL import Image

        session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
        mean = np.asarray(IMAGENET_MEAN, np.float32)
        std = np.asarray(IMAGENET_STD, np.float32)
        for batch in paths:
            images = []
            for path in batch:
                with Image.open(path) as image:
                    pixels = np.asarray(image.convert("RGB").resize((SIZE, SIZE), Image.BICUBIC), np.float32)
                images.append(((pixels / 255.0 - mean) / std).transpose(2, 0, 1))
            (features,) = session.run(["features"], {"image": np.stack(images).astype(np.float32)})
            yield pd.Series(list(features))

    return frame.select("id", embed("path").alias("embedding"))


def _ceiling(paths: list[str], model: Path, batch_size: int = 64) -> np.ndarray:
    """The stage's own decode on a two-thread pool, the same model in one two-thread session."""
    from sparkimg_ml.fetch import Fetcher
    from sparkimg_ml.image import preprocess_bytes
    from sparkimg_ml.model.onnx import load_model, run_batches

    stage = _embedder(model)
    spec = stage._model_spec(stage._load_model())
    session = load_model(str(model), intra_op_threads=2)
    with Fetcher(stage._fetch_options()) as fetcher, ThreadPoolExecutor(2) as pool:
        def decode(path: str) -> np.ndarray:
            return preprocess_bytes(fetcher.fetch(path), spec)

        parts = []
        for start in range(0, len(paths), batch_size):
            pixels = np.stack(list(pool.map(decode, paths[start:start + batch_size])))
            parts.append(run_batches(session, pixels.reshape((-1,) + spec.shape), "features", batch_size))
    return np.concatenate(parts)


def _first_rows(frame: Any, count: int) -> np.ndarray:
    rows = frame.where(f"id < {count}").orderBy("id").collect()
    return np.asarray([np.asarray(r["embedding"], np.float32) for r in rows])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--images", type=int, default=256, help="photos embedded per contender (default 256)")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of the table (default 4)")
    args = parser.parse_args(argv)

    corpus = build_corpus(CorpusSpec(images=args.images, parts=args.partitions, extra_columns=8))
    model = DEFAULT_CACHE_DIR / "resnet18_random.onnx"
    if not model.exists():
        build_resnet18(model)
    paths = [str(corpus.path(i)) for i in range(len(corpus.images))]
    spark = _session(args.partitions)
    try:
        from .run import jvm_pid

        table = spark.read.parquet(str(corpus.table)).select("id", "path")
        frames = {"ImageEmbedder": _embedder(model).transform(table), "pandas UDF": _pandas_udf(table, model)}
        reference = _ceiling(paths[:8], model)
        for name, frame in frames.items():  # warm-up and correctness: loads the model in the workers
            got = _first_rows(frame, 8)
            cosine = np.sum(got * reference, axis=1) / (
                np.linalg.norm(got, axis=1) * np.linalg.norm(reference, axis=1))
            print(f"{name}: first 8 embeddings vs ceiling, max |diff| {np.abs(got - reference).max():.2e}, "
                  f"min cosine {cosine.min():.5f}")
            if cosine.min() < 0.99:
                raise AssertionError(f"{name} embeddings differ from the ceiling's")
        tree = ProcessTree(jvm_pid=jvm_pid(spark))
        samples: dict[str, Sample] = {}
        for name in CONTENDERS:
            with Measurement(tree) as measured:
                if name == "ceiling":
                    _ceiling(paths, model)
                else:
                    frames[name].write.format("noop").mode("overwrite").save()
            samples[name] = measured.sample
    finally:
        spark.stop()

    count = len(paths)
    ceiling = samples["ceiling"]
    print(f"\n{count} images, ResNet-18 at {SIZE}x{SIZE}, local[2], {os.cpu_count()} cores")
    print(f"{'contender':<15}{'images/s':>10}{'CPU ms/img':>12}{'wall vs ceiling':>17}{'CPU vs ceiling':>16}")
    for name, sample in samples.items():
        print(f"{name:<15}{count / sample.wall_s:>10.1f}{1000 * sample.cpu_total_s / count:>12.1f}"
              f"{sample.wall_s / ceiling.wall_s:>16.2f}x{sample.cpu_total_s / ceiling.cpu_total_s:>15.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
