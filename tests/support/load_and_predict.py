"""Run in a fresh Python process: load a saved model and write its predictions as JSON.

Usage: python load_and_predict.py {pipeline|crossvalidator|trainvalidationsplit} MODEL_PATH ROWS_JSON OUT_JSON
ROWS_JSON holds [[id, url], ...]. Used by test_pipelines.py to prove that saved models
need nothing from the process that trained them.
"""

import json
import os
import sys

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

from pyspark.ml import PipelineModel  # noqa: E402
from pyspark.ml.tuning import CrossValidatorModel, TrainValidationSplitModel  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402


def main(kind: str, model_path: str, rows_path: str, out_path: str) -> None:
    # The compatibility runs point this process at their Connect server or standalone cluster.
    url = os.environ.get("SPARKIMG_TEST_SPARK_URL", "local[2]")
    builder = SparkSession.builder.remote(url) if url.startswith("sc://") else (
        SparkSession.builder.master(url).config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false").config("spark.driver.host", "127.0.0.1")
        .config("spark.executor.memory", "1g").config("spark.cores.max", "2"))
    spark = builder.getOrCreate()
    if url != "local[2]":
        from sparkimg_ml.deploy import ship

        ship(spark)
    try:
        loader = {"pipeline": PipelineModel, "crossvalidator": CrossValidatorModel,
                  "trainvalidationsplit": TrainValidationSplitModel}[kind]
        model = loader.load(model_path)
        rows = json.load(open(rows_path))
        frame = spark.createDataFrame([tuple(r) for r in rows], "id int, url string")
        predicted = model.transform(frame).select("id", "prediction", "probability").collect()
        result = {str(r["id"]): [r["prediction"], r["probability"].toArray().tolist()] for r in predicted}
        if kind == "crossvalidator":
            result["avgMetrics"] = list(model.avgMetrics)
        if kind == "trainvalidationsplit":
            result["validationMetrics"] = list(model.validationMetrics)
        json.dump(result, open(out_path, "w"))
    finally:
        spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:])
