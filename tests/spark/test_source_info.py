"""sourceInfoCol in Spark: one struct of source facts per row, for every input kind and handleInvalid."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from PIL import Image

from sparkimg_ml import ImageUrlFeaturizer

FIELDS = ["width", "height", "format", "mode", "bytes", "orientation", "sha256"]


@pytest.fixture(scope="module")
def sources(static_dir: Path) -> dict:
    """A JPEG with EXIF orientation 6, a palette PNG and a text file, served over HTTP too."""
    folder = static_dir / "source_info"
    folder.mkdir(exist_ok=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.new("RGB", (40, 24), (10, 200, 30)).save(buffer, "JPEG", exif=exif.tobytes())
    (folder / "turned.jpg").write_bytes(buffer.getvalue())
    Image.new("P", (12, 9)).save(folder / "palette.png")
    (folder / "notes.txt").write_text("not an image")
    return {"dir": folder, **{path.name: path.read_bytes() for path in folder.iterdir()}}


def _expected(data: bytes, width, height, fmt, mode, orientation=None) -> dict:
    return {"width": width, "height": height, "format": fmt, "mode": mode, "bytes": len(data),
            "orientation": orientation, "sha256": hashlib.sha256(data).hexdigest()}


def _infos(frame, column="source") -> list:
    return [None if row[0] is None else row[0].asDict() for row in frame.orderBy("id").select(column).collect()]


@pytest.mark.compat
@pytest.mark.claim("sourceInfoCol adds each row's original width, height, format, mode, bytes, EXIF orientation "
                   "and SHA-256")
def test_keep_mode_gives_facts_for_every_readable_source_and_null_where_nothing_was_read(
        spark, sources, http_server):
    folder = sources["dir"]
    rows = [(0, f"{http_server}/source_info/turned.jpg"), (1, str(folder / "palette.png")),
            (2, str(folder / "notes.txt")), (3, str(folder / "absent.png")), (4, None)]
    frame = spark.createDataFrame(rows, "id int, url string")
    out = ImageUrlFeaturizer(inputCol="url", imageSize=[4, 4], handleInvalid="keep", errorCol="error",
                             sourceInfoCol="source").transform(frame)
    assert out.schema["source"].dataType.simpleString() == (
        "struct<width:int,height:int,format:string,mode:string,bytes:bigint,orientation:int,sha256:string>")
    assert _infos(out) == [
        _expected(sources["turned.jpg"], 40, 24, "JPEG", "RGB", orientation=6),
        _expected(sources["palette.png"], 12, 9, "PNG", "P"),
        {**dict.fromkeys(FIELDS), "bytes": 12, "sha256": hashlib.sha256(b"not an image").hexdigest()},
        None,
        None,
    ]
    errors = [row.error for row in out.orderBy("id").select("error").collect()]
    assert [e is None for e in errors] == [True, True, False, False, False]


def test_bytes_and_image_struct_inputs_and_the_pandas_udf_path_give_the_same_facts(
        spark, sources, force_pandas_udf):
    folder = sources["dir"]
    files = spark.read.format("binaryFile").load(str(folder / "*.jpg")).selectExpr("0 AS id", "content")
    featurizer = ImageUrlFeaturizer(inputCol="content", imageSize=[4, 4], sourceInfoCol="source")
    arrow = _infos(featurizer.transform(files))
    assert arrow == [_expected(sources["turned.jpg"], 40, 24, "JPEG", "RGB", orientation=6)]
    structs = spark.read.format("image").load(str(folder / "palette.png")).selectExpr("0 AS id", "image")
    struct_info = _infos(featurizer.copy().setInputCol("image").transform(structs))
    assert struct_info == [{**dict.fromkeys(FIELDS), "width": 12, "height": 9, "mode": "RGB"}]
    force_pandas_udf("sparkimg_ml.featurizer")  # as on Spark < 4.1: flat fields through a pandas_udf
    assert _infos(featurizer.transform(files)) == arrow


def test_skip_mode_drops_failed_rows_and_keeps_the_facts_of_the_rest(spark, sources):
    folder = sources["dir"]
    frame = spark.createDataFrame([(0, str(folder / "notes.txt")), (1, str(folder / "palette.png"))], "id int, url string")
    out = ImageUrlFeaturizer(inputCol="url", imageSize=[4, 4], handleInvalid="skip",
                             sourceInfoCol="source").transform(frame)
    assert _infos(out) == [_expected(sources["palette.png"], 12, 9, "PNG", "P")]


def test_the_param_round_trips_and_names_that_collide_fail_at_transform(spark, sources, tmp_path):
    stage = ImageUrlFeaturizer(inputCol="url", sourceInfoCol="source", errorCol="error")
    stage.save(str(tmp_path / "stage"))
    assert ImageUrlFeaturizer.load(str(tmp_path / "stage")).getSourceInfoCol() == "source"
    assert ImageUrlFeaturizer(inputCol="url").getSourceInfoCol() is None
    frame = spark.createDataFrame([(0, "x", "y")], "id int, url string, source string")
    with pytest.raises(ValueError, match="'source' already exists"):
        stage.transform(frame)
    with pytest.raises(ValueError, match="'error' is named twice"):
        stage.copy().setSourceInfoCol("error").transform(frame.drop("source"))
