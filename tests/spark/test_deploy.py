"""Shipping the package to executors, and saving stages over existing paths on every kind of session."""

from __future__ import annotations

import zipfile

import pytest

from sparkimg_ml import ImageUrlFeaturizer, TensorReshaper
from sparkimg_ml.deploy import package_archive, ship


def test_package_archive_holds_the_package_and_is_named_by_its_content(tmp_path):
    archive = package_archive(str(tmp_path))
    names = zipfile.ZipFile(archive).namelist()
    assert "sparkimg_ml/__init__.py" in names and "sparkimg_ml/reshaper.py" in names
    assert not any("__pycache__" in name for name in names)
    assert package_archive(str(tmp_path)) == archive


@pytest.mark.claim("sparkimg_ml.ship(spark) makes executors (classic and Spark Connect) able to import the package")
@pytest.mark.compat
def test_ship_is_idempotent_and_executors_import_the_shipped_package(spark, tmp_path):
    first = ship(spark, str(tmp_path))
    assert ship(spark, str(tmp_path)) == first
    import pyspark.sql.functions as F

    @F.udf("string")
    def where_imported(_: int) -> str:
        import sparkimg_ml

        return sparkimg_ml.__version__

    from sparkimg_ml import __version__

    assert {r[0] for r in spark.range(4).select(where_imported("id")).collect()} == {__version__}


@pytest.mark.compat
@pytest.mark.parametrize("stage", [
    ImageUrlFeaturizer(inputCol="url", imageSize=[8, 8]),
    TensorReshaper(inputCol="features", axes=[2, 0, 1]),
], ids=["ImageUrlFeaturizer", "TensorReshaper"])
def test_stages_overwrite_a_saved_copy_on_classic_and_connect(spark, tmp_path, stage):
    path = str(tmp_path / "stage")
    stage.write().overwrite().save(path)
    stage.write().overwrite().save(path)
    loaded = type(stage).load(path)
    assert loaded.uid == stage.uid
    assert {p.name: v for p, v in loaded.extractParamMap().items()} == \
        {p.name: v for p, v in stage.extractParamMap().items()}
