"""Near-duplicate detection measured: precision and recall per transformation and method, and 100k-row timing.

``python -m benchmarks.bench_duplicates`` runs two parts in one local Spark session:

1. **Quality.** ``--originals`` distinct pictures (crops of scikit-learn's sample
   photos at random places, sizes and zooms, each with its own tint), and for each
   one near-copy per transformation of :data:`TRANSFORMATIONS` (a crop keeping 90 %
   of each side, JPEG re-encodes at quality 50 and 95, a half-size resize, a 3°
   rotation, a mirror flip, a colour jitter). All of them are hashed with
   ``ImageHasher`` (pHash, 64 bits) and embedded with ``ImageEmbedder`` (a small
   CNN with random weights from a fixed seed: no pretrained weights can be
   downloaded here), and ``find_duplicates`` runs on each. A copy is *found* when
   it lands in its original's cluster. Per transformation: recall (copies found)
   and precision (of the pairs that involve a copy, those whose two rows come from
   the same original).
2. **Scale.** ``--rows`` rows of 64-bit hashes (random ones, plus near-copies of
   some with up to 4 bits flipped, one per ``--copy-every`` rows): the wall time
   of ``find_duplicates`` with its pairs and clusters written to Parquet, and
   the share of planted pairs found.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance

#: Each transformation: a function of (image, random generator) -> image.
TRANSFORMATIONS: dict[str, Any] = {
    "crop_10pct": lambda image, rng: image.crop((int(image.width * 0.05), int(image.height * 0.05),
                                                 int(image.width * 0.95), int(image.height * 0.95))),
    "jpeg_q50": lambda image, rng: _reencoded(image, 50),
    "jpeg_q95": lambda image, rng: _reencoded(image, 95),
    "resize_half": lambda image, rng: image.resize((image.width // 2, image.height // 2), Image.Resampling.BILINEAR),
    "rotate_3deg": lambda image, rng: image.rotate(3, resample=Image.Resampling.BILINEAR, expand=False),
    "flip": lambda image, rng: image.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    "color_jitter": lambda image, rng: ImageEnhance.Color(ImageEnhance.Brightness(image).enhance(1.15)).enhance(0.8),
}


def _reencoded(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def make_quality_corpus(folder: Path, originals: int, seed: int = 3) -> list[tuple[str, int, str]]:
    """``(path, original index, transformation or "original")`` of every picture written under ``folder``."""
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(a) for a in load_sample_images().images]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(originals):
        photo = photos[index % len(photos)]
        side = int(rng.integers(120, 260))
        left, top = int(rng.integers(0, photo.width - side)), int(rng.integers(0, photo.height - side))
        tint = Image.new("RGB", (side, side), tuple(int(v) for v in rng.integers(0, 256, 3)))
        original = Image.blend(photo.crop((left, top, left + side, top + side)), tint, 0.25).resize((192, 192))
        for name, transform in [("original", lambda image, rng: image), *TRANSFORMATIONS.items()]:
            path = folder / f"{index:04d}_{name}.png"
            transform(original, rng).save(path)
            rows.append((str(path), index, name))
    return rows


def _random_cnn(path: Path) -> str:
    import torch

    from sparkimg_ml import export_onnx

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(32, 64, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten())
    return export_onnx(net, path, 64, mean="imagenet", std="imagenet", output_names=["features"])


def quality(spark: Any, folder: Path, originals: int, hash_threshold: int, cosine_threshold: float) -> dict[str, Any]:
    from sparkimg_ml import ImageEmbedder, ImageHasher, find_duplicates

    rows = make_quality_corpus(folder / "pictures", originals)
    table = spark.createDataFrame([(i, *row) for i, row in enumerate(rows)],
                                  "id long, path string, original int, kind string").cache()
    columns = {
        "hash": ImageHasher(inputCol="path", outputCol="signature", hashType="phash").transform(table),
        "embedding": ImageEmbedder(inputCol="path", outputCol="signature",
                                   modelUri=_random_cnn(folder / "cnn.onnx")).transform(table),
    }
    thresholds = {"hash": hash_threshold, "embedding": cosine_threshold}
    result: dict[str, Any] = {"originals": originals, "rows": len(rows),
                              "thresholds": {"hash_bits": hash_threshold, "embedding_cosine_distance": cosine_threshold}}
    for method, frame in columns.items():
        found = find_duplicates(frame.cache(), "signature", thresholds[method], id_col="id", method=method)
        clusters = {r["id"]: r["cluster"] for r in found.clusters.select("id", "cluster").collect()}
        pairs = [(r["id_a"], r["id_b"]) for r in found.pairs.select("id_a", "id_b").collect()]
        by_id = {i: (original, kind) for i, (_, original, kind) in enumerate(rows)}
        first = {original: i for i, (_, original, kind) in enumerate(rows) if kind == "original"}
        per_kind: dict[str, Any] = {}
        for kind in TRANSFORMATIONS:
            copies = [i for i, (_, original, k) in enumerate(rows) if k == kind]
            recall = sum(clusters[i] == clusters[first[by_id[i][0]]] for i in copies) / len(copies)
            involved = [(a, b) for a, b in pairs if by_id[a][1] == kind or by_id[b][1] == kind]
            right = sum(by_id[a][0] == by_id[b][0] for a, b in involved)
            per_kind[kind] = {"recall": recall, "precision": right / len(involved) if involved else None,
                              "pairs": len(involved)}
        wrong = sum(by_id[a][0] != by_id[b][0] for a, b in pairs)
        result[method] = {"per_transformation": per_kind, "pairs": len(pairs), "false_pairs": wrong,
                          "precision": (len(pairs) - wrong) / len(pairs) if pairs else None}
    return result


def scale(spark: Any, folder: Path, rows: int, copy_every: int, threshold: int, seed: int = 11) -> dict[str, Any]:
    from sparkimg_ml import find_duplicates

    rng = np.random.default_rng(seed)
    hashes = rng.integers(-(2**63), 2**63 - 1, size=rows, dtype=np.int64)
    planted = []
    for row in range(copy_every, rows, copy_every):
        source = int(rng.integers(0, row))
        flipped = int(hashes[source])
        for bit in rng.choice(64, size=int(rng.integers(1, 5)), replace=False):
            flipped ^= 1 << int(bit)
        hashes[row] = np.int64(np.uint64(flipped % 2**64))
        planted.append((min(source, row), max(source, row)))
    path = folder / "hashes.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": np.arange(rows, dtype=np.int64), "signature": hashes}), path)
    frame = spark.read.parquet(str(path))
    started = time.perf_counter()
    found = find_duplicates(frame, "signature", threshold, id_col="id")
    found.pairs.write.mode("overwrite").parquet(str(folder / "pairs"))
    found.clusters.write.mode("overwrite").parquet(str(folder / "clusters"))
    seconds = time.perf_counter() - started
    pairs = {(r["id_a"], r["id_b"]) for r in spark.read.parquet(str(folder / "pairs")).collect()}
    written = spark.read.parquet(str(folder / "clusters")).count()
    return {"rows": rows, "planted_pairs": len(planted), "seconds": seconds, "clusters_rows": written,
            "planted_found": sum(pair in pairs for pair in planted) / len(planted), "pairs": len(pairs),
            "iterations": found.iterations, "threshold_bits": threshold}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--originals", type=int, default=200)
    parser.add_argument("--hash-threshold", type=int, default=10, help="differing bits of a duplicate pair")
    parser.add_argument("--cosine-threshold", type=float, default=0.02, help="cosine distance of a duplicate pair")
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the timing part")
    parser.add_argument("--copy-every", type=int, default=10)
    parser.add_argument("--parts", default="quality,scale", help="comma-separated: quality, scale")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="3g")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master(args.master).appName("bench_duplicates")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             .config("spark.driver.memory", args.driver_memory).getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    with tempfile.TemporaryDirectory(prefix="bench_duplicates-") as scratch:
        spark.sparkContext.setCheckpointDir(str(Path(scratch) / "checkpoints"))
        parts = args.parts.split(",")
        result: dict[str, Any] = {"driver_memory": args.driver_memory, "master": args.master}
        try:
            if "quality" in parts:
                result["quality"] = quality(spark, Path(scratch), args.originals, args.hash_threshold,
                                            args.cosine_threshold)
                print(json.dumps({"quality": result["quality"]}), file=sys.stderr, flush=True)  # kept if scale fails
            if "scale" in parts:
                result["scale"] = scale(spark, Path(scratch), args.rows, args.copy_every, args.hash_threshold)
        finally:
            spark.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
