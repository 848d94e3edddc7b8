"""Daft as a benchmark contender; runs in its own venv (Daft pins ``pyarrow<26``), driven over stdin.

Started once per benchmark run by :mod:`benchmarks.daft_contender` and kept warm, like
the Spark session: each line on stdin is one JSON job, each answered by one JSON line
on stdout. A job reads the benchmark's Parquet table and does download -> decode (RGB)
-> resize -> tensor -> float32 matrix (``pixels / 255``), rows in id order::

    {"table": "...", "column": "path" | "url", "prefix": "http://127.0.0.1:PORT",
     "size": 32, "rows": 2000, "out": "/tmp/x.npy" | null, "keep": "features" | "all"}
    -> {"rows": 2000, "nonnull": 2000, "lo": 0.0, "hi": 1.0, "columns": ["id", "tensor"]}

``keep="features"`` (the pruned workload) materialises only ``id`` and the tensor;
``keep="all"`` (the pass-through workload) keeps every column of the wide table
next to the tensor, as ``featurizer.transform(df)`` does; ``columns`` names what
was materialised.

``out`` saves the matrix (NaN rows for failed images) for the correctness checks. This
file imports only Daft, numpy and pyarrow: it must run without the project installed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import daft
import numpy as np
from daft import col, lit
from daft.functions import decode_image, download, image_to_tensor, resize


def run(job: dict[str, Any]) -> dict[str, Any]:
    size = int(job["size"])
    df = daft.read_parquet(job["table"]).where(col("id") < int(job["rows"]))
    source = col("path") if job["column"] == "path" else lit(job.get("prefix", "")) + col("url")
    image = resize(decode_image(download(source, on_error="null"), on_error="null", mode="RGB"), size, size)
    if job.get("keep", "features") == "all":
        table = df.with_column("tensor", image_to_tensor(image)).to_arrow()
    else:
        table = df.select(col("id"), image_to_tensor(image).alias("tensor")).to_arrow()
    ids = table.column("id").to_numpy()
    tensors = table.column("tensor").combine_chunks()
    storage = tensors.storage if hasattr(tensors, "storage") else tensors
    valid = storage.is_valid().to_numpy(zero_copy_only=False)
    width = size * size * 3
    matrix = np.full((len(ids), width), np.nan, dtype=np.float32)
    flat = storage.flatten().to_numpy(zero_copy_only=False)  # uint8 pixels of the valid rows
    matrix[valid] = flat.reshape(-1, width).astype(np.float32) * np.float32(1 / 255)
    matrix = matrix[np.argsort(ids, kind="stable")]
    if job.get("out"):
        np.save(job["out"], matrix)
    good = matrix[valid[np.argsort(ids, kind="stable")]]
    return {"rows": int(len(ids)), "nonnull": int(valid.sum()),
            "lo": float(good.min()) if good.size else None, "hi": float(good.max()) if good.size else None,
            "columns": table.column_names}


def main() -> None:
    print(json.dumps({"ready": True, "daft": daft.__version__}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = run(json.loads(line))
        except Exception as exc:  # noqa: BLE001 - reported to the benchmark, which fails the check
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
