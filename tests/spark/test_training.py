"""write_tensors and TensorDataset: what is written, what is read back, and who reads which rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from pyspark.ml.functions import array_to_vector
from pyspark.ml.linalg import Vectors, VectorUDT
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, StructField, StructType
from torch.utils.data import DataLoader

from sparkimg_ml import TensorReshaper
from sparkimg_ml.tensors import TensorInfo
from sparkimg_ml.training import TensorDataset, TensorFiles, write_tensors

SHAPE = [2, 3, 2]  # H, W, C: 12 values, small enough to compare exactly
SIZE = 12
FLOAT_META = {"tensor": {"shape": SHAPE, "layout": "HWC", "channelOrder": "RGB", "dtype": "float32",
                         "scale": 1 / 255, "mean": [0.0], "std": [1.0]}}
UINT8_META = {"tensor": {"shape": SHAPE, "layout": "HWC", "channelOrder": "RGB", "dtype": "uint8",
                         "scale": 1 / 255, "mean": [0.485, 0.456], "std": [0.229, 0.224]}}


def _values(i: int) -> list:
    return [float(i) + k / 100 for k in range(SIZE)]


def _vector_frame(spark, ids, null_tensor=(), null_label=()):
    schema = StructType([StructField("id", IntegerType()), StructField("pixels", VectorUDT()),
                         StructField("label", IntegerType())])
    rows = [(i, None if i in null_tensor else Vectors.dense(_values(i)), None if i in null_label else i)
            for i in ids]
    return spark.createDataFrame(rows, schema).withMetadata("pixels", FLOAT_META)


def _read_all(path) -> tuple:
    values, labels = zip(*TensorFiles(str(path)).batches(batch_size=1000))
    return np.concatenate(values), np.concatenate(labels)


@pytest.fixture(scope="module")
def id_tensors(spark, tmp_path_factory) -> Path:
    """203 rows (label = row id) in several files and row groups, for the sharding tests."""
    path = tmp_path_factory.mktemp("ids") / "tensors"
    frame = _vector_frame(spark, range(203)).repartition(3, "id")
    write_tensors(frame, str(path), "pixels", label_col="label", row_group_bytes=1024)
    return path


def test_write_tensors_drops_null_rows_and_counts_them(spark, tmp_path):
    frame = _vector_frame(spark, range(40), null_tensor={0, 7, 14}, null_label={7, 20})
    summary = write_tensors(frame, str(tmp_path / "t"), "pixels", label_col="label")
    assert (summary.rows, summary.dropped, summary.null_tensors, summary.null_labels) == (36, 4, 3, 2)
    values, labels = _read_all(tmp_path / "t")
    assert sorted(labels.tolist()) == [i for i in range(40) if i not in {0, 7, 14, 20}]
    for row, label in zip(values, labels):
        np.testing.assert_array_equal(row, np.float32(_values(label)))
    assert labels.dtype == np.int64 and values.dtype == np.float32


def test_tensor_metadata_is_in_the_parquet_footer_and_survives_spark(spark, tmp_path):
    write_tensors(_vector_frame(spark, range(5)), str(tmp_path / "t"), "pixels", label_col="label")
    part = next((tmp_path / "t").glob("*.parquet"))
    footer = pq.ParquetFile(part).schema_arrow.metadata
    fields = json.loads(footer[b"org.apache.spark.sql.parquet.row.metadata"])["fields"]
    tensor = next(f for f in fields if f["name"] == "tensor")["metadata"]
    assert tensor["tensor"] == FLOAT_META["tensor"]
    assert tensor["sparkimg_ml"] == {"version": 1, "label": {"dtype": "int64", "source": "label"}}
    assert TensorInfo.from_metadata(spark.read.parquet(str(tmp_path / "t")).schema["tensor"].metadata).shape \
        == tuple(SHAPE)
    assert TensorFiles(str(tmp_path / "t")).info == TensorInfo.from_metadata(FLOAT_META)


def test_write_tensors_flattens_reshaper_arrays_in_row_major_order(spark, tmp_path):
    frame = _vector_frame(spark, range(6))
    for output_type in ("nested", "array"):
        chw = TensorReshaper(inputCol="pixels", outputCol="chw", axes=[2, 0, 1],
                             outputFormat=output_type).transform(frame)
        write_tensors(chw, str(tmp_path / output_type), "chw", label_col="label")
        files = TensorFiles(str(tmp_path / output_type))
        assert files.info.shape == (2, 2, 3) and files.info.layout == "CHW"
        values, labels = _read_all(tmp_path / output_type)
        for row, label in zip(values, labels):
            expected = np.float32(_values(label)).reshape(SHAPE).transpose(2, 0, 1).ravel()
            np.testing.assert_array_equal(row, expected)


def test_uint8_tensors_stay_bytes_on_disk_and_are_normalised_when_read(spark, tmp_path):
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, size=(30, SIZE), dtype=np.uint8)
    frame = spark.createDataFrame([(bytearray(p.tobytes()), i) for i, p in enumerate(pixels)] + [(None, 99)],
                                  "pixels binary, label int").withMetadata("pixels", UINT8_META)
    summary = write_tensors(frame, str(tmp_path / "u8"), "pixels", label_col="label")
    assert (summary.rows, summary.null_tensors) == (30, 1)
    part = next((tmp_path / "u8").glob("*.parquet"))
    assert str(pq.ParquetFile(part).schema_arrow.field("tensor").type) == "binary"

    batches = list(TensorDataset(str(tmp_path / "u8"), batch_size=8))
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert x.dtype == torch.float32 and tuple(x.shape) == (30, *SHAPE)
    # Computed here from the metadata: float32 pixel * (scale / std) + (-mean / std), per channel (last axis).
    mean, std = np.array(UINT8_META["tensor"]["mean"]), np.array(UINT8_META["tensor"]["std"])
    gain, bias = (UINT8_META["tensor"]["scale"] / std).astype(np.float32), (-mean / std).astype(np.float32)
    expected = pixels[y.numpy()].reshape(-1, *SHAPE).astype(np.float32) * gain + bias
    assert expected.dtype == np.float32
    np.testing.assert_array_equal(x.numpy(), expected)  # the same float32 arithmetic, bit for bit
    assert [len(b[1]) for b in batches] == [8, 8, 8, 6]


def _digit_tensor_files(spark, tmp_path, rows: int) -> dict:
    """``{"uint8": dir, "vector": dir}``: the featurizer's CHW 12x10 ImageNet-normalised digits in both forms."""
    from sparkimg_ml import ImageUrlFeaturizer
    from sparkimg_ml.demo import write_digits_pngs

    pairs = write_digits_pngs(tmp_path / "png")[:rows]
    frame = spark.createDataFrame([(str(tmp_path / "png" / name), label) for name, label in pairs],
                                  "path string, label int")
    written = {}
    for output_format in ("uint8", "vector"):
        featurizer = ImageUrlFeaturizer(inputCol="path", outputCol="t", imageSize=[12, 10], layout="CHW",
                                        mean="imagenet", std="imagenet", outputFormat=output_format)
        written[output_format] = str(tmp_path / output_format)
        write_tensors(featurizer.transform(frame), written[output_format], "t", label_col="label")
    return written


def test_featurizer_uint8_output_reads_back_as_its_float_output_bit_for_bit(spark, tmp_path):
    read = {output_format: [torch.cat(parts) for parts in zip(*TensorDataset(out, batch_size=64))]
            for output_format, out in _digit_tensor_files(spark, tmp_path, 60).items()}
    (x8, y8), (xf, yf) = read["uint8"], read["vector"]
    assert x8.shape == (60, 3, 12, 10) and torch.equal(y8, yf)
    assert torch.equal(x8, xf)
    sizes = {fmt: sum(p.stat().st_size for p in (tmp_path / fmt).glob("*.parquet")) for fmt in read}
    assert sizes["uint8"] < sizes["vector"] / 2  # one byte per value on disk, not four


def test_row_groups_are_small_enough_to_stream(id_tensors):
    files = TensorFiles(str(id_tensors))
    assert len(files.row_groups) > 3 * 2  # several row groups in each of the 3 files
    assert files.num_rows == 203
    assert max(g.rows for g in files.row_groups) < 203 / 3


def _labels_seen(path, rank, world_size, num_workers, shuffle_buffer=0, epoch=0, seed=0) -> list:
    data = TensorDataset(str(path), batch_size=16, rank=rank, world_size=world_size,
                         shuffle_buffer=shuffle_buffer, seed=seed)
    data.set_epoch(epoch)
    loader = DataLoader(data, batch_size=None, num_workers=num_workers)
    return [label for _, y in loader for label in y.tolist()]


@pytest.mark.claim("TensorDataset gives every row to exactly one rank and worker")
@pytest.mark.parametrize("shuffle_buffer", [0, 50])
def test_two_ranks_times_two_workers_see_every_row_exactly_once(id_tensors, shuffle_buffer):
    seen = [_labels_seen(id_tensors, rank, 2, 2, shuffle_buffer) for rank in (0, 1)]
    assert sorted(seen[0] + seen[1]) == list(range(203))
    assert abs(len(seen[0]) - len(seen[1])) <= 1


def test_shuffling_is_reproducible_per_seed_and_changes_with_the_epoch(id_tensors):
    first = _labels_seen(id_tensors, 0, 1, 0, shuffle_buffer=64, epoch=0)
    assert first == _labels_seen(id_tensors, 0, 1, 0, shuffle_buffer=64, epoch=0)
    assert first != _labels_seen(id_tensors, 0, 1, 0, shuffle_buffer=64, epoch=1)
    assert first != _labels_seen(id_tensors, 0, 1, 0, shuffle_buffer=64, epoch=0, seed=1)
    assert sorted(first) == list(range(203)) and first != sorted(first)
    in_file_order = [v for part in sorted(id_tensors.glob("*.parquet"))
                     for v in pq.read_table(part).column("label").to_pylist()]
    assert _labels_seen(id_tensors, 0, 1, 0) == in_file_order


def test_dataset_without_labels_yields_x_alone(spark, tmp_path):
    # metadata given as the tensor entry itself (no "tensor" key) is accepted too
    frame = _vector_frame(spark, range(10)).withMetadata("pixels", FLOAT_META["tensor"])
    write_tensors(frame, str(tmp_path / "x"), "pixels")
    assert TensorFiles(str(tmp_path / "x")).metadata["tensor"] == FLOAT_META["tensor"]
    batches = list(TensorDataset(str(tmp_path / "x"), batch_size=4))
    assert all(isinstance(b, torch.Tensor) for b in batches)
    assert [tuple(b.shape) for b in batches] == [(4, *SHAPE), (4, *SHAPE), (2, *SHAPE)]


def test_write_tensors_fails_the_job_for_a_row_of_the_wrong_size(spark, tmp_path):
    frame = spark.createDataFrame([([1.0] * SIZE,), ([1.0] * 5,)], "pixels array<float>") \
        .withMetadata("pixels", FLOAT_META)
    with pytest.raises(Exception, match=r"has 5 values; its metadata shape \[2, 3, 2\] needs 12"):
        write_tensors(frame, str(tmp_path / "bad"), "pixels")


def test_write_tensors_explains_configuration_mistakes(spark, tmp_path):
    frame = _vector_frame(spark, range(2))
    out = str(tmp_path / "t")
    with pytest.raises(ValueError, match="'nope' does not exist. Available columns: id, "):
        write_tensors(frame, out, "nope")
    with pytest.raises(ValueError, match="records no tensor shape.*withMetadata"):
        write_tensors(frame.withMetadata("pixels", {}), out, "pixels")
    with pytest.raises(ValueError, match="mode must be one of"):
        write_tensors(frame, out, "pixels", mode="ignore")
    with pytest.raises(TypeError, match="label column 'url' has type string"):
        write_tensors(frame.withColumn("url", F.lit("x")), out, "pixels", label_col="url")
    with pytest.raises(TypeError, match="has type string; expected a Vector"):
        write_tensors(frame.withColumn("s", F.lit("x")).withMetadata("s", FLOAT_META), out, "s")
    with pytest.raises(TypeError, match="binary but its metadata says dtype 'float32'"):
        write_tensors(frame.withColumn("b", F.lit(b"x")).withMetadata("b", FLOAT_META), out, "b")
    nested = frame.select(F.array(F.array(F.lit(1.0))).alias("n")).withMetadata("n", FLOAT_META)
    with pytest.raises(ValueError, match="nested 2 deep but its metadata shape"):
        write_tensors(nested, out, "n")
    write_tensors(frame, out, "pixels")
    with pytest.raises(Exception, match="already exists"):
        write_tensors(frame, out, "pixels")


def test_dataset_explains_configuration_mistakes(tmp_path, id_tensors):
    with pytest.raises(FileNotFoundError, match="no Parquet files"):
        TensorDataset(str(tmp_path))
    with pytest.raises(ValueError, match="both rank and world_size"):
        TensorDataset(str(id_tensors), rank=1)
    with pytest.raises(ValueError, match="0 <= rank < world_size"):
        TensorDataset(str(id_tensors), rank=2, world_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        TensorDataset(str(id_tensors), batch_size=0)


def test_appended_tensors_of_another_shape_are_refused_when_read(spark, tmp_path):
    out = str(tmp_path / "t")
    write_tensors(_vector_frame(spark, range(3)), out, "pixels")
    other = spark.createDataFrame([([1.0] * 4,)], "pixels array<float>") \
        .withMetadata("pixels", {"tensor": {"shape": [4], "dtype": "float32"}})
    write_tensors(other, out, "pixels", mode="append")
    with pytest.raises(ValueError, match="different tensor metadata"):
        TensorFiles(out)


@pytest.mark.claim("write_tensors + TensorDataset train a CNN with TorchDistributor (0.98 held-out accuracy on digits)")
def test_torch_distributor_ranks_split_the_rows_of_the_dataset(spark, id_tensors):
    """Two gloo ranks started by Spark's TorchDistributor take rank and world size from torch.distributed."""
    from pyspark.ml.torch.distributor import TorchDistributor

    def rows_per_rank(path):  # runs in each training process; defined here so it is pickled by value
        import torch.distributed as dist

        from sparkimg_ml.training import TensorDataset

        dist.init_process_group("gloo")
        try:
            mine = [label for _, y in TensorDataset(path, batch_size=32) for label in y.tolist()]
            everyone = [None] * dist.get_world_size()
            dist.all_gather_object(everyone, mine)
            return everyone
        finally:
            dist.destroy_process_group()

    seen = TorchDistributor(num_processes=2, local_mode=True, use_gpu=False).run(rows_per_rank, str(id_tensors))
    assert len(seen) == 2 and all(seen)
    assert sorted(seen[0] + seen[1]) == list(range(203))


def test_array_of_doubles_is_stored_as_float32(spark, tmp_path):
    frame = spark.createDataFrame([([0.1] * SIZE, 1.5)], "pixels array<double>, target double") \
        .withMetadata("pixels", FLOAT_META)
    write_tensors(frame, str(tmp_path / "d"), "pixels", label_col="target")
    (x, y), = list(TensorDataset(str(tmp_path / "d")))
    assert x.dtype == torch.float32 and y.dtype == torch.float32
    assert y.tolist() == [1.5] and np.allclose(x.numpy(), 0.1)
    # array_to_vector's Vector of the same values reads back the same
    vectors = frame.select(array_to_vector("pixels").alias("v"), "target").withMetadata("v", FLOAT_META)
    write_tensors(vectors, str(tmp_path / "v"), "v", label_col="target")
    (xv, _), = list(TensorDataset(str(tmp_path / "v")))
    assert torch.equal(x, xv)


def _crop_and_mirror(row: torch.Tensor) -> torch.Tensor:
    """A deterministic stand-in for a torchvision crop + flip on a CHW row."""
    return torch.flip(row[:, 2:10, 1:9], dims=[2])


def test_transform_crops_uint8_rows_before_normalising_them_as_the_float_rows(spark, tmp_path):
    read = {}
    for output_format, out in _digit_tensor_files(spark, tmp_path, 40).items():
        plain = torch.cat([x for x, _ in TensorDataset(out, batch_size=16)])
        augmented = torch.cat([x for x, _ in TensorDataset(out, batch_size=16, transform=_crop_and_mirror)])
        assert augmented.shape == (40, 3, 8, 8) and augmented.dtype == torch.float32
        assert torch.equal(augmented, torch.flip(plain[:, :, 2:10, 1:9], dims=[3]))
        read[output_format] = augmented
    # uint8 rows were cropped as pixels, then normalised with the recorded mean/std: the float rows' values
    assert torch.equal(read["uint8"], read["vector"])


def test_transform_mistakes_are_explained(spark, tmp_path, id_tensors):
    with pytest.raises(TypeError, match="transform must be a callable"):
        TensorDataset(str(id_tensors), transform="flip")
    to_double = TensorDataset(str(id_tensors), batch_size=4, transform=lambda row: row.double())
    with pytest.raises(TypeError, match=r"must return a torch.float32 tensor .* it returned torch.float64"):
        next(iter(to_double))
    sizes = iter(range(10**6))
    ragged = TensorDataset(str(id_tensors), batch_size=4, transform=lambda row: row.reshape(-1)[:2 + next(sizes) % 2])
    with pytest.raises(ValueError, match=r"shapes \[2\] and \[3\]"):
        next(iter(ragged))


def test_extra_columns_follow_their_rows_through_shards_and_shuffling(spark, tmp_path):
    frame = _vector_frame(spark, range(60)).withColumn("name", F.concat(F.lit("row-"), F.col("id").cast("string")))
    path = str(tmp_path / "with_ids")
    write_tensors(frame.repartition(3, "id"), path, "pixels", label_col="label", extra_cols=["id", "name"],
                  row_group_bytes=1024)
    assert TensorFiles(path).extra_cols == ("id", "name")
    seen = []
    for rank in (0, 1):
        data = TensorDataset(path, batch_size=7, rank=rank, world_size=2, shuffle_buffer=16, extra_cols=["id", "name"])
        for x, y, extras in data:
            assert torch.equal(extras["id"], y.int()) and extras["id"].dtype == torch.int32
            assert extras["name"] == [f"row-{i}" for i in y.tolist()]
            assert torch.equal(x[:, 0, 0, 0], y.float())  # the first value of row i is i
            seen.extend(extras["id"].tolist())
    assert sorted(seen) == list(range(60))
    # Without asking for them, batches stay (x, y); TensorFiles gives numpy arrays.
    assert len(next(iter(TensorDataset(path, batch_size=4)))) == 2
    values, labels, extras = next(TensorFiles(path).batches(batch_size=5, extra_cols=["name"]))
    assert list(extras) == ["name"] and extras["name"].tolist() == [f"row-{i}" for i in labels]


def test_extra_column_mistakes_are_explained(spark, tmp_path, id_tensors):
    with pytest.raises(ValueError, match=r"has no extra column 'id' \(extra columns written: none\)"):
        TensorDataset(str(id_tensors), extra_cols=["id"])
    frame = _vector_frame(spark, range(3))
    with pytest.raises(ValueError, match="may not name 'label'"):
        write_tensors(frame, str(tmp_path / "t"), "pixels", extra_cols=["label"])
    with pytest.raises(ValueError, match="extra_cols"):
        write_tensors(frame, str(tmp_path / "t"), "pixels", extra_cols=["no_such_column"])
