"""Run in a fresh Python process: score the digits table with a saved PipelineModel, write predictions as JSON.

Usage: python score_saved_pipeline.py MODEL_PATH IDS_JSON OUT_JSON
IDS_JSON holds the row ids to score. The digits are written and served again here
(a new port, the same row ids), so the
saved pipeline needs nothing from the process that built it. Used by
test_deep_learning_notebook.py.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

from pyspark.ml import PipelineModel  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from sparkimg_ml.demo import digits_frame, serve_directory, write_digits_pngs  # noqa: E402


def main(model_path: str, ids_path: str, out_path: str) -> None:
    spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false").getOrCreate())
    try:
        site = Path(tempfile.mkdtemp())
        pairs = write_digits_pngs(site)
        with serve_directory(site) as base_url:
            ids = json.load(open(ids_path))
            table = digits_frame(spark, base_url, pairs, broken=0, extra_columns=0).where(F.col("id").isin(ids))
            rows = PipelineModel.load(model_path).transform(table).select("id", "prediction").collect()
        json.dump({str(r["id"]): r["prediction"] for r in rows}, open(out_path, "w"))
    finally:
        spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:])
