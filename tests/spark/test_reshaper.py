"""TensorReshaper: numpy semantics, metadata, bad rows, configuration errors, plans and persistence."""

from __future__ import annotations

import inspect
import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.functions import array_to_vector, predict_batch_udf, vector_to_array
from pyspark.ml.linalg import VectorUDT
from pyspark.ml.tuning import CrossValidator, CrossValidatorModel
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, FloatType, StructField, StructType

from sparkimg_ml import ImageUrlFeaturizer
from sparkimg_ml.image import ImageSpec, preprocess_bytes
from sparkimg_ml.params.converters import axes_list, shape_list
from sparkimg_ml.reshaper import TensorReshaper
from sparkimg_ml.tensors.gather import ListOps, gather
from sparkimg_ml.tensors.metadata import output_metadata, resolve_shape

PYTHON_EVAL_NODES = ("ArrowEvalPython", "BatchEvalPython")


class CountingOps(ListOps):
    """The gather's primitives on Python lists, counting the calls of each."""

    def __init__(self) -> None:
        self.calls: Counter = Counter()

    def tabulate(self, count, fill):
        self.calls["tabulate"] += 1
        return super().tabulate(count, fill)

    def at(self, array, index):
        self.calls["at"] += 1
        return super().at(array, index)

    def take(self, array, start, length):
        self.calls["take"] += 1
        return super().take(array, start, length)

    def whole(self, array):
        self.calls["whole"] += 1
        return super().whole(array)


@st.composite
def shapes_and_axes(draw, max_rank: int = 4, max_size: int = 4):
    rank = draw(st.integers(1, max_rank))
    shape = draw(st.lists(st.integers(1, max_size), min_size=rank, max_size=rank))
    axes = draw(st.permutations(list(range(rank))))
    return shape, list(axes)


def _expected(flat, shape, axes) -> np.ndarray:
    return np.asarray(flat).reshape(shape).transpose(axes)


# -- the gather, in pure Python ----------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(shapes_and_axes())
def test_gather_equals_numpy_reshape_then_transpose(case):
    shape, axes = case
    flat = list(range(int(np.prod(shape))))
    expected = _expected(flat, shape, axes)
    nested = gather(CountingOps(), flat, shape, axes, nested=True)
    assert np.asarray(nested).shape == expected.shape
    np.testing.assert_array_equal(np.asarray(nested), expected)
    assert gather(CountingOps(), flat, shape, axes, nested=False) == expected.ravel().tolist()


@settings(max_examples=300, deadline=None)
@given(shapes_and_axes())
def test_gather_then_inverse_permutation_returns_the_input_exactly(case):
    shape, axes = case
    flat = [float(v) * 0.1 for v in range(int(np.prod(shape)))]
    moved = gather(CountingOps(), flat, shape, axes, nested=False)
    back = gather(CountingOps(), moved, [shape[a] for a in axes], np.argsort(axes).tolist(), nested=False)
    assert back == flat


def test_gather_slices_whole_rows_when_the_last_axis_stays_last():
    ops = CountingOps()
    gather(ops, list(range(24)), [2, 3, 4], [1, 0, 2], nested=True)
    assert ops.calls["at"] == 0 and ops.calls["take"] == 6
    ops = CountingOps()
    gather(ops, list(range(24)), [2, 3, 4], [2, 0, 1], nested=True)
    assert ops.calls["take"] == 0 and ops.calls["at"] == 24


def test_gather_reads_the_whole_input_once_for_identity_without_nesting():
    flat = [1.0, 2.0, 3.0, 4.0]
    ops = CountingOps()
    assert gather(ops, flat, [2, 2], [0, 1], nested=False) is flat
    assert ops.calls == {"whole": 1}


# -- Params and configuration errors (no Spark job) ---------------------------------------------

def test_every_param_is_a_constructor_and_set_params_argument_with_json_native_values():
    stage = TensorReshaper(inputCol="features", outputCol="chw", shape=(32, 32, 3), axes=(2, 0, 1),
                           outputFormat="array", handleInvalid="keep")
    params = {p.name for p in stage.params}
    assert params == set(inspect.signature(TensorReshaper).parameters)
    assert all(TensorReshaper().setParams(**{name: value}) for name, value in
               [("inputCol", "x"), ("outputCol", "y"), ("shape", [2, 3]), ("axes", [1, 0]),
                ("outputFormat", "array"), ("handleInvalid", "keep")])
    values = {p.name: v for p, v in stage.extractParamMap().items()}
    assert values == {"inputCol": "features", "outputCol": "chw", "shape": [32, 32, 3],
                      "axes": [2, 0, 1], "outputFormat": "array", "handleInvalid": "keep"}
    assert json.loads(json.dumps(values)) == values


def test_defaults_leave_shape_and_axes_unset():
    stage = TensorReshaper()
    assert stage.getShape() is None and stage.getAxes() is None
    assert (stage.getOutputCol(), stage.getOutputFormat(), stage.getHandleInvalid()) == ("tensor", "nested", "error")
    assert not stage.isDefined(stage.inputCol)


def test_set_params_with_none_unsets_and_setters_chain():
    stage = TensorReshaper(shape=[4, 3], axes=[1, 0])
    assert stage.setParams(shape=None, axes=None) is stage
    assert stage.getShape() is None and stage.getAxes() is None
    assert stage.setShape([2, 6]).setAxes([1, 0]).setOutputFormat("vector").getAxes() == [1, 0]


@pytest.mark.parametrize("kwargs, error, match", [
    ({"shape": [-1, 4, -1]}, ValueError, "at most one -1"),
    ({"shape": [0, 3]}, ValueError, "positive integers or -1"),
    ({"shape": []}, ValueError, "non-empty list"),
    ({"shape": "32,32,3"}, TypeError, "list of integers"),
    ({"shape": [32.5, 3]}, ValueError, "non-empty list of integers"),
    ({"axes": [0, 2]}, ValueError, r"permutation of 0\.\.1"),
    ({"axes": [-1, 0]}, ValueError, "permutation"),
    ({"axes": [1, 1, 0]}, ValueError, "each axis exactly once"),
    ({"shape": [2, 3], "axes": [2, 0, 1]}, ValueError, "axes .* has 3 entries but shape .* has 2"),
    ({"outputFormat": "tensor"}, ValueError, "outputFormat must be one of 'nested', 'array', 'vector'"),
    ({"handleInvalid": "optimistic"}, ValueError, "handleInvalid must be one of 'error', 'skip', 'keep'"),
])
def test_construction_rejects_configurations_that_can_never_fit(kwargs, error, match):
    with pytest.raises(error, match=match):
        TensorReshaper(inputCol="features", **kwargs)


def test_rejected_set_params_changes_nothing():
    stage = TensorReshaper(shape=[2, 3], axes=[1, 0])
    with pytest.raises(ValueError, match="3 entries"):
        stage.setParams(axes=[2, 0, 1])
    assert stage.getAxes() == [1, 0] and stage.getShape() == [2, 3]


def test_converters_return_plain_int_lists():
    assert shape_list(np.array([4, -1])) == [4, -1]
    assert all(type(v) is int for v in shape_list(np.array([4, -1])) + axes_list(np.array([1, 0])))


def test_resolve_shape_infers_minus_one_from_the_recorded_size_or_keeps_it_per_row():
    assert resolve_shape("f", [-1, 3], [1, 0], [32, 32, 3], 3072) == ([1024, 3], [1, 0])
    assert resolve_shape("f", None, None, [32, 32, 3], 3072) == ([32, 32, 3], [0, 1, 2])
    assert resolve_shape("f", [-1, 3], None, None, None) == ([-1, 3], [0, 1])
    assert resolve_shape("f", [4, 3], [1, 0], None, 12) == ([4, 3], [1, 0])


@pytest.mark.parametrize("args, match", [
    (([4, 4, 3], None, [32, 32, 3], 3072), "holds 48 values but column 'f' holds 3072"),
    (([-1, 5], None, None, 3072), "3072 is not a multiple of 5"),
    ((None, [1, 0], [32, 32, 3], 3072), r"axes \[1, 0\] has 2 entries but shape \[32, 32, 3\] has 3"),
    ((None, None, None, 3072), r"shape is not set and column 'f' has no tensor shape"),
])
def test_resolve_shape_rejects_shapes_that_cannot_fit_the_recorded_size(args, match):
    with pytest.raises(ValueError, match=match):
        resolve_shape("f", *args)


def test_output_metadata_permutes_layout_and_carries_the_other_keys():
    recorded = {"shape": [8, 6, 3], "layout": "HWC", "channelOrder": "BGR", "dtype": "float32",
                "scale": 0.5, "mean": [0.1, 0.2, 0.3], "std": [1.0, 2.0, 3.0]}
    meta = output_metadata(recorded, [8, 6, 3], [8, 6, 3], [2, 0, 1], "float32", "nested")
    assert meta == {"tensor": {"shape": [3, 8, 6], "layout": "CHW", "channelOrder": "BGR", "dtype": "float32",
                               "scale": 0.5, "mean": [0.1, 0.2, 0.3], "std": [1.0, 2.0, 3.0]}}
    flat = output_metadata(recorded, [8, 6, 3], [48, 3], [0, 1], "float32", "vector")
    assert "layout" not in flat["tensor"] and flat["tensor"]["shape"] == [48, 3]
    assert flat["ml_attr"] == {"num_attrs": 144}
    inferred = output_metadata({}, None, [-1, 3], [1, 0], "float64", "vector")
    assert inferred == {"tensor": {"shape": [3, -1], "dtype": "float64"}}


# -- Spark: values, metadata, plans ---------------------------------------------------------------

@pytest.mark.claim("TensorReshaper output equals numpy's reshape + transpose, and the inverse restores the input")
@pytest.mark.compat
@settings(max_examples=5, deadline=None)
@given(shapes_and_axes(max_rank=4, max_size=3), st.booleans(), st.integers(0, 2**31 - 1))
def test_spark_output_equals_numpy_and_the_inverse_restores_the_input(spark, case, infer, seed):
    shape, axes = case
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    if infer:  # one size left to be inferred per row, as numpy does
        shape = list(shape)
        shape[int(rng.integers(len(shape)))] = -1
    doubles = rng.normal(size=(3, size))
    floats = rng.normal(size=(3, size)).astype(np.float32)
    frame = spark.createDataFrame(
        [(i, doubles[i].tolist(), floats[i].tolist()) for i in range(3)],
        "id int, d array<double>, f array<float>",
    ).withColumn("v", array_to_vector("d"))
    inverse = np.argsort(axes).tolist()
    stages = [
        TensorReshaper(inputCol="d", outputCol="t_d", shape=shape, axes=axes),
        TensorReshaper(inputCol="f", outputCol="a_f", shape=shape, axes=axes, outputFormat="array"),
        TensorReshaper(inputCol="v", outputCol="v_v", shape=shape, axes=axes, outputFormat="vector"),
        # the way back reads each tensor's shape from its metadata
        TensorReshaper(inputCol="t_d", outputCol="back_d", axes=inverse, outputFormat="array"),
        TensorReshaper(inputCol="v_v", outputCol="back_v", axes=inverse, outputFormat="vector"),
    ]
    out = frame
    for stage in stages:
        out = stage.transform(out)
    rows = sorted(out.collect(), key=lambda r: r.id)
    for row in rows:
        expected_d = _expected(doubles[row.id], shape, axes)
        expected_f = _expected(floats[row.id], shape, axes)
        np.testing.assert_array_equal(np.asarray(row.t_d), expected_d)
        assert np.asarray(row.t_d).shape == expected_d.shape
        np.testing.assert_array_equal(np.asarray(row.a_f, dtype=np.float32), expected_f.ravel())
        np.testing.assert_array_equal(row.v_v.toArray(), expected_d.ravel())
        assert row.back_d == row.d and row.back_v.toArray().tolist() == row.d
    assert out.schema["a_f"].dataType.simpleString() == "array<float>"
    assert out.schema["t_d"].metadata["tensor"]["shape"] == [shape[a] for a in axes]


def test_nested_input_without_metadata_flattens_to_a_vector_with_size_metadata(spark):
    frame = spark.createDataFrame([([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]],)], "t array<array<float>>")
    out = TensorReshaper(inputCol="t", outputCol="flat", shape=[2, 3], axes=[1, 0],
                         outputFormat="vector").transform(frame)
    assert out.head().flat.toArray().tolist() == [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
    assert out.schema["flat"].metadata == {"tensor": {"shape": [3, 2], "dtype": "float32"},
                                           "ml_attr": {"num_attrs": 6}}


@pytest.mark.compat
def test_featurizer_metadata_gives_shape_layout_and_float32_tensors(spark):
    featurizer = ImageUrlFeaturizer(inputCol="url", imageSize=[2, 4], scale=0.5)
    recorded = featurizer.outputMetadata()
    values = (np.arange(24, dtype=np.float32) * 0.5).tolist()
    frame = spark.createDataFrame([(values,)], "p array<float>").select(
        array_to_vector("p").alias("features")).withMetadata("features", recorded)

    chw = TensorReshaper(inputCol="features", outputCol="chw", axes=[2, 0, 1]).transform(frame)
    assert chw.schema["chw"].dataType.simpleString() == "array<array<array<float>>>"
    np.testing.assert_array_equal(np.asarray(chw.head().chw), np.asarray(values).reshape(2, 4, 3).transpose(2, 0, 1))
    meta = chw.schema["chw"].metadata["tensor"]
    assert meta == dict(recorded["tensor"], shape=[3, 2, 4], layout="CHW")
    assert chw.schema["chw"].metadata["fingerprint"] == featurizer.fingerprint()

    back = TensorReshaper(inputCol="chw", outputCol="hwc", axes=[1, 2, 0], outputFormat="vector").transform(chw)
    assert back.head().hwc.toArray().tolist() == values
    assert back.schema["hwc"].metadata == recorded


@pytest.mark.parametrize("axes, output_type, spark_type", [
    ([0, 1, 2], "array", "array<float>"),
    ([0, 1, 2], "nested", "array<array<array<float>>>"),
    ([1, 0, 2], "nested", "array<array<array<float>>>"),
    ([2, 0, 1], "array", "array<float>"),
    ([2, 0, 1], "vector", "vector"),
])
@pytest.mark.compat
def test_float32_vectors_give_float_tensors_on_every_read_path(spark, axes, output_type, spark_type):
    values = (np.arange(24, dtype=np.float32) / np.float32(7)).tolist()
    frame = spark.createDataFrame([(values,)], "p array<float>").select(
        array_to_vector("p").alias("features")).withMetadata(
        "features", {"tensor": {"shape": [2, 4, 3], "dtype": "float32"}})
    out = TensorReshaper(inputCol="features", outputCol="t", axes=axes, outputFormat=output_type).transform(frame)
    assert out.schema["t"].dataType.simpleString() == spark_type
    got = out.head().t
    got = got.toArray() if output_type == "vector" else np.asarray(got, dtype=np.float32)
    expected = np.asarray(values, dtype=np.float32).reshape(2, 4, 3).transpose(axes)
    np.testing.assert_array_equal(got, expected if output_type == "nested" else expected.ravel())


def test_reshape_that_changes_dimensions_drops_the_layout_but_keeps_channel_order(spark):
    recorded = ImageUrlFeaturizer(inputCol="url", imageSize=[2, 2]).outputMetadata()
    frame = spark.createDataFrame([([float(i) for i in range(12)],)], "p array<double>").select(
        array_to_vector("p").alias("features")).withMetadata("features", recorded)
    out = TensorReshaper(inputCol="features", outputCol="pixels", shape=[-1, 3]).transform(frame)
    meta = out.schema["pixels"].metadata["tensor"]
    assert meta["shape"] == [4, 3] and "layout" not in meta and meta["channelOrder"] == "RGB"
    assert out.head().pixels[1] == [3.0, 4.0, 5.0]


def _plan(frame, capsys) -> str:
    frame.explain()
    return capsys.readouterr().out


@pytest.mark.claim("TensorReshaper runs entirely in the JVM (no Python UDF in the plan)")
def test_physical_plan_has_no_python_udf(spark, capsys):
    frame = spark.range(4).select(
        array_to_vector(F.transform(F.sequence(F.lit(0), F.lit(11)), lambda i: (i + F.col("id")).cast("double")))
        .alias("features"))
    for output_type in ("nested", "array", "vector"):
        out = TensorReshaper(inputCol="features", outputCol="t", shape=[2, 2, 3], axes=[2, 0, 1],
                             outputFormat=output_type, handleInvalid="skip").transform(frame)
        plan = _plan(out, capsys)
        assert "transform" in plan and not any(node in plan for node in PYTHON_EVAL_NODES), plan

    # the same check does see a Python UDF doing the reshape
    python_reshape = F.udf(lambda v: np.asarray(v.toArray()).reshape(2, 2, 3).transpose(2, 0, 1).tolist(),
                           "array<array<array<double>>>")
    assert any(node in _plan(frame.select(python_reshape("features")), capsys) for node in PYTHON_EVAL_NODES)


def test_expression_size_grows_with_rank_not_with_element_count(spark, capsys):
    def expression(height: int, width: int) -> str:
        frame = spark.createDataFrame([], StructType([StructField("features", VectorUDT())]))
        out = TensorReshaper(inputCol="features", outputCol="t", shape=[height, width, 3],
                             axes=[2, 0, 1]).transform(frame)
        return _plan(out, capsys)

    small, large = expression(32, 32), expression(224, 224)
    assert "150528" in large and len(large) < 3000
    assert abs(len(large) - len(small)) < 100


# -- bad rows --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def uneven(spark):
    """Rows of 12, 2 and 0 values and a null row, as a Vector column recording shape [2, 2, 3]."""
    meta = {"tensor": {"shape": [2, 2, 3], "layout": "HWC", "dtype": "float64"}}
    frame = spark.createDataFrame(
        [(0, [float(i) for i in range(12)]), (1, [1.0, 2.0]), (2, []), (3, None)], "id int, p array<double>")
    return frame.select("id", F.when(F.col("p").isNotNull(), array_to_vector("p")).alias("features")) \
        .withMetadata("features", meta)


@pytest.mark.compat
def test_handle_invalid_error_names_expected_and_found_sizes(uneven):
    out = TensorReshaper(inputCol="features", axes=[2, 0, 1]).transform(uneven.where("id <= 1"))
    with pytest.raises(Exception, match=r"column 'features' has 2 values but shape \[2, 2, 3\] needs 12"):
        out.collect()


@pytest.mark.compat
def test_handle_invalid_skip_drops_rows_that_do_not_fit_and_passes_nulls(uneven):
    out = TensorReshaper(inputCol="features", axes=[2, 0, 1], handleInvalid="skip").transform(uneven)
    rows = {r.id: r.tensor for r in out.collect()}
    assert set(rows) == {0, 3} and rows[3] is None
    assert rows[0] == np.arange(12.0).reshape(2, 2, 3).transpose(2, 0, 1).tolist()


@pytest.mark.compat
def test_handle_invalid_keep_yields_null_for_rows_that_do_not_fit(uneven):
    out = TensorReshaper(inputCol="features", outputFormat="vector", handleInvalid="keep").transform(uneven)
    rows = {r.id: r.tensor for r in out.collect()}
    assert rows[1] is None and rows[2] is None and rows[3] is None
    assert rows[0].toArray().tolist() == [float(i) for i in range(12)]


def test_inferred_size_accepts_any_positive_multiple_per_row(spark):
    frame = spark.createDataFrame([(0, [1.0] * 6), (1, [2.0] * 9), (2, [3.0] * 7), (3, [])],
                                  "id int, p array<double>")
    out = TensorReshaper(inputCol="p", outputCol="rows", shape=[-1, 3], handleInvalid="keep").transform(frame)
    rows = {r.id: r.rows for r in out.collect()}
    assert rows == {0: [[1.0] * 3] * 2, 1: [[2.0] * 3] * 3, 2: None, 3: None}
    with pytest.raises(Exception, match=r"has 7 values but shape \[-1, 3\] needs a positive multiple of 3"):
        TensorReshaper(inputCol="p", outputCol="rows", shape=[-1, 3]).transform(frame.where("id = 2")).collect()


# -- configuration errors at transform time -----------------------------------------------------

@pytest.mark.parametrize("kwargs, error, match", [
    ({"shape": [4, 4, 3]}, ValueError, r"holds 48 values but column 'features' holds 12 \(tensor shape"),
    ({"shape": [-1, 5]}, ValueError, "12 is not a multiple of 5"),
    ({"axes": [1, 0]}, ValueError, r"axes \[1, 0\] has 2 entries but shape \[2, 2, 3\] has 3"),
    ({"inputCol": "plain"}, ValueError, "shape is not set and column 'plain' has no tensor shape"),
    ({"inputCol": "name", "shape": [2]}, TypeError, "has type string; expected a Vector"),
    ({"inputCol": "ints", "shape": [2]}, TypeError, r"has type array<int>.*Cast integer arrays"),
    ({"inputCol": "missing"}, ValueError, "input column 'missing' does not exist"),
    ({"outputCol": "name"}, ValueError, "output column 'name' already exists"),
    ({"inputCol": None}, ValueError, "inputCol is not set"),
])
def test_transform_rejects_configurations_that_cannot_fit_the_column(spark, kwargs, error, match):
    frame = spark.createDataFrame([([float(i) for i in range(12)], "a", [1, 2])],
                                  "plain array<double>, name string, ints array<int>")
    frame = frame.withColumn("features", array_to_vector("plain")).withMetadata(
        "features", {"tensor": {"shape": [2, 2, 3]}})
    stage = TensorReshaper(inputCol="features", outputCol="t").setParams(**kwargs)
    with pytest.raises(error, match=match):
        stage.transform(frame)


def test_size_from_ml_attr_is_checked_when_no_tensor_shape_is_recorded(spark):
    frame = spark.createDataFrame([([1.0] * 6,)], "p array<double>").select(
        array_to_vector("p").alias("features")).withMetadata("features", {"ml_attr": {"num_attrs": 6}})
    with pytest.raises(ValueError, match=r"holds 8 values .* \(ml_attr.num_attrs = 6"):
        TensorReshaper(inputCol="features", shape=[2, 4]).transform(frame)
    out = TensorReshaper(inputCol="features", shape=[-1, 2]).transform(frame)
    assert out.schema["tensor"].metadata["tensor"]["shape"] == [3, 2]


# -- persistence and tuning --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def labelled(spark):
    """40 rows of 2x2x3 features whose label depends on channel 0."""
    rng = np.random.default_rng(11)
    values = rng.normal(size=(40, 12))
    labels = (values.reshape(40, 2, 2, 3)[:, :, :, 0].sum(axis=(1, 2)) > 0).astype(float)
    frame = spark.createDataFrame([(i, values[i].tolist(), float(labels[i])) for i in range(40)],
                                  "id int, p array<double>, label double")
    meta = {"tensor": {"shape": [2, 2, 3], "layout": "HWC", "channelOrder": "RGB"}}
    return frame.select("id", "label", array_to_vector("p").alias("features")) \
        .withMetadata("features", meta).cache()


def _session_without_observations(frame):
    """``frame`` in a session of its own on classic Spark 4.0-4.2, where a model summary cannot be serialized
    once its session used an ``Observation`` (``write_tensors`` uses one): see the deployment guide's known
    issues. Elsewhere ``frame`` itself."""
    import pyspark
    from pyspark.sql.utils import is_remote

    version = tuple(int(part) for part in pyspark.__version__.split(".")[:2])
    if is_remote() or not (4, 0) <= version < (4, 3):
        return frame
    return frame.sparkSession.newSession().createDataFrame(frame.collect(), frame.schema).cache()


def _collect(frame, column):
    """``{id: value}``: compared by row id, whatever order a cluster returns rows in."""
    return {r["id"]: r[column] for r in frame.select("id", column).collect()}


@pytest.mark.compat
def test_stage_pipeline_and_pipeline_model_round_trip(labelled, tmp_path):
    stage = TensorReshaper(inputCol="features", outputCol="chw", axes=[2, 0, 1], outputFormat="array",
                           handleInvalid="keep")
    expected = stage.transform(labelled)
    stage.write().overwrite().save(str(tmp_path / "stage"))
    stage.write().overwrite().save(str(tmp_path / "stage"))
    loaded = TensorReshaper.load(str(tmp_path / "stage"))
    assert loaded.uid == stage.uid
    assert {p.name: v for p, v in loaded.extractParamMap().items()} == \
        {p.name: v for p, v in stage.extractParamMap().items()}
    assert _collect(loaded.transform(labelled), "chw") == _collect(expected, "chw")

    back = TensorReshaper(inputCol="chw", outputCol="flat", axes=[1, 2, 0], outputFormat="vector")
    pipeline = Pipeline(stages=[stage, back])
    pipeline.write().overwrite().save(str(tmp_path / "pipeline"))
    stages = Pipeline.load(str(tmp_path / "pipeline")).getStages()
    assert [s.getAxes() for s in stages] == [[2, 0, 1], [1, 2, 0]]

    model = pipeline.fit(labelled)
    model.write().overwrite().save(str(tmp_path / "model"))
    reloaded = PipelineModel.load(str(tmp_path / "model")).transform(labelled)
    assert _collect(reloaded, "flat") == _collect(labelled, "features")
    assert reloaded.schema["flat"].metadata == {
        "tensor": {"shape": [2, 2, 3], "layout": "HWC", "channelOrder": "RGB", "dtype": "float64"},
        "ml_attr": {"num_attrs": 12}}
    assert reloaded.schema["chw"].metadata["tensor"]["layout"] == "CHW"


#: A stage as saved by the first release: module path and Param names are an on-disk format.
SAVED_STAGE = (
    '{"class":"sparkimg_ml.reshaper.TensorReshaper","timestamp":1795563886467,"sparkVersion":"4.3.0",'
    '"uid":"TensorReshaper_f729430f70b0","paramMap":{"inputCol":"features","outputCol":"chw",'
    '"shape":[32,32,3],"axes":[2,0,1],"outputFormat":"array","handleInvalid":"keep"},'
    '"defaultParamMap":{"outputCol":"tensor","outputFormat":"nested","handleInvalid":"error"}}'
)


@pytest.mark.claim("Stages saved by 0.1.0 still load")
def test_stage_saved_in_the_first_on_disk_format_still_loads(spark, tmp_path):
    metadata = tmp_path / "stage" / "metadata"
    metadata.mkdir(parents=True)
    (metadata / "part-00000").write_text(SAVED_STAGE + "\n")
    stage = TensorReshaper.load(str(tmp_path / "stage"))
    assert stage.uid == "TensorReshaper_f729430f70b0"
    assert (stage.getInputCol(), stage.getOutputCol(), stage.getShape(), stage.getAxes()) == \
        ("features", "chw", [32, 32, 3], [2, 0, 1])
    assert (stage.getOutputFormat(), stage.getHandleInvalid()) == ("array", "keep")


@pytest.mark.claim("CrossValidator tunes featurizer Params; the fitted model saves and loads in a new process")
@pytest.mark.compat
def test_cross_validator_tunes_axes_and_persists(labelled, tmp_path, record_property):
    labelled = _session_without_observations(labelled)
    reshaper = TensorReshaper(inputCol="features", outputCol="x", outputFormat="vector")
    logistic = LogisticRegression(featuresCol="x", labelCol="label", maxIter=5)
    grid = [{reshaper.axes: [0, 1, 2]}, {reshaper.axes: [2, 0, 1]}]
    cv = CrossValidator(estimator=Pipeline(stages=[reshaper, logistic]), estimatorParamMaps=grid,
                        evaluator=BinaryClassificationEvaluator(labelCol="label"), numFolds=2, seed=3)
    model = cv.fit(labelled)
    record_property("avgMetrics", model.avgMetrics)  # in the compatibility matrix's JUnit reports
    assert len(model.avgMetrics) == 2 and min(model.avgMetrics) > 0.5
    best = max(range(2), key=lambda i: model.avgMetrics[i])
    assert model.bestModel.stages[0].getAxes() == grid[best][reshaper.axes]

    model.write().overwrite().save(str(tmp_path / "cv"))
    loaded = CrossValidatorModel.load(str(tmp_path / "cv"))
    assert [m[reshaper.axes] for m in loaded.getEstimatorParamMaps()] == [[0, 1, 2], [2, 0, 1]]
    assert _collect(loaded.transform(labelled), "prediction") == _collect(model.transform(labelled), "prediction")


# -- deep-learning inference on tensor columns ----------------------------------------------------

def _input_columns(spark, values: np.ndarray):
    """The (2, 3, 4) tensors ``values`` (plus a null row) as each input form the stage reads."""
    meta = {"tensor": {"shape": [2, 3, 4], "dtype": "float32"}}
    rows = [(i, values[i].reshape(-1).tolist()) for i in range(len(values))] + [(len(values), None)]
    frame = spark.createDataFrame(rows, "id int, p array<double>")
    return {
        "vector": frame.select("id", F.when(F.col("p").isNotNull(), array_to_vector("p")).alias("x")),
        "array<float>": frame.select("id", F.col("p").cast("array<float>").alias("x")),
        "nested": frame.select("id", F.when(F.col("p").isNotNull(), F.transform(
            F.sequence(F.lit(0), F.lit(5)), lambda i: F.slice("p", i * 4 + 1, 4))).alias("x")),
        "uint8": frame.select("id", F.when(F.col("p").isNotNull(), F.unhex(F.concat_ws(
            "", F.transform("p", lambda v: F.lpad(F.hex(v.cast("int")), 2, "0"))))).alias("x")),
    }, meta


@pytest.mark.claim("Python UDFs (predict_batch_udf) over TensorReshaper output work on pyspark 3.5 to 4.3")
@pytest.mark.compat
@pytest.mark.parametrize("output_type", ["nested", "array", "vector"])
def test_python_udfs_read_every_output_form_on_every_spark(spark, output_type):
    """A vectorised Python UDF over the output is extracted and evaluated, for every input form.

    Spark before 4.3 drops a Python UDF whose argument holds a lambda reading an enclosing
    lambda's variable (it fails with "Cannot evaluate expression"); the gather never builds one.
    """
    values = np.random.default_rng(8).integers(0, 256, size=(5, 2, 3, 4)).astype(np.float32)
    inputs, meta = _input_columns(spark, values)

    def leaves(row) -> np.ndarray:
        if isinstance(row, np.ndarray) and row.dtype == object:  # nested arrays arrive as arrays of arrays
            return np.concatenate([leaves(part) for part in row])
        return np.asarray(row, dtype=np.float64)

    @F.pandas_udf("double")
    def weighted_sum(column: pd.Series) -> pd.Series:
        return column.apply(lambda row: None if row is None else float(leaves(row) @ np.arange(1, 25)))

    expected = [float(v.transpose(2, 0, 1).reshape(-1) @ np.arange(1, 25)) for v in values]
    for kind, frame in inputs.items():
        frame = frame.withMetadata("x", {"tensor": dict(meta["tensor"], dtype="uint8", scale=1.0)} if kind == "uint8" else meta)
        out = TensorReshaper(inputCol="x", outputCol="t", axes=[2, 0, 1], outputFormat=output_type).transform(frame)
        assert out.columns == ["id", "x", "t"], (kind, out.columns)
        tensor = F.when(F.col("t").isNotNull(), vector_to_array("t")) if output_type == "vector" else F.col("t")
        sums = {r.id: r.s for r in out.select("id", weighted_sum(tensor).alias("s")).collect()}
        assert [sums[i] for i in range(5)] == expected and sums[5] is None, (kind, output_type)


@pytest.mark.claim("Python UDFs (predict_batch_udf) over TensorReshaper output work on pyspark 3.5 to 4.3")
@pytest.mark.compat
def test_featurizer_and_chw_tensors_feed_predict_batch_udf_like_numpy_on_the_decoded_images(
        spark, static_dir, http_server):
    rng = np.random.default_rng(5)
    folder = static_dir / "reshaper"
    folder.mkdir(exist_ok=True)
    encoded = []
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (20 + 3 * i, 28, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        encoded.append((folder / f"{i}.png").read_bytes())
    frame = spark.createDataFrame([(i, f"{http_server}/reshaper/{i}.png") for i in range(6)], "id int, url string")

    filters = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    weights = rng.normal(size=(4 * 15 * 15, 5)).astype(np.float32)

    def classify_one(image: np.ndarray) -> np.ndarray:
        """3x3 convolution (4 filters), ReLU, 2x2 max pooling, linear layer: (3, 32, 32) -> (5,)."""
        windows = np.lib.stride_tricks.sliding_window_view(image, (3, 3), axis=(1, 2))
        conv = np.maximum(np.einsum("chwij,kcij->khw", windows, filters), 0)
        pooled = conv.reshape(4, 15, 2, 15, 2).max(axis=(2, 4))
        return pooled.reshape(-1) @ weights

    def cnn(batch: np.ndarray) -> np.ndarray:
        # One fresh contiguous image at a time, so float32 sums cannot depend on how rows were batched.
        return np.stack([classify_one(np.ascontiguousarray(image)) for image in batch])

    def make_predict_fn():
        return cnn

    pipeline = Pipeline(stages=[
        ImageUrlFeaturizer(inputCol="url", outputCol="features", imageSize=[32, 32]),
        TensorReshaper(inputCol="features", outputCol="chw", axes=[2, 0, 1], outputFormat="array"),
    ])
    tensors = pipeline.fit(frame).transform(frame)
    shape = tensors.schema["chw"].metadata["tensor"]["shape"]
    assert shape == [3, 32, 32] and tensors.schema["chw"].metadata["tensor"]["layout"] == "CHW"
    classify = predict_batch_udf(make_predict_fn, return_type=ArrayType(FloatType()), batch_size=4,
                                 input_tensor_shapes=[shape])
    scores = {r.id: r.scores for r in tensors.select("id", classify("chw").alias("scores")).collect()}

    spec = ImageSpec(height=32, width=32)
    direct = np.stack([preprocess_bytes(data, spec).reshape(32, 32, 3).transpose(2, 0, 1) for data in encoded])
    expected = cnn(direct)
    np.testing.assert_array_equal(np.asarray([scores[i] for i in range(6)], dtype=np.float32), expected)
    # the featurizer's own vector, reshaped by numpy, is the same tensor the model saw
    hwc = np.asarray([r[0] for r in tensors.orderBy("id").select(vector_to_array("features", "float32")).collect()])
    np.testing.assert_array_equal(hwc.reshape(6, 32, 32, 3).transpose(0, 3, 1, 2), direct)
