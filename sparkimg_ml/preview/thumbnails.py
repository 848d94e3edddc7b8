"""Small previews of images and tensors, as ``data:`` URIs; no Spark import.

A thumbnail is made from whatever an image column holds, with the very code
the featurizer uses to read it:

* a source (URL, path, ``data:`` URI, storage URL): read with
  :class:`~sparkimg_ml.fetch.Fetcher`, then decoded like encoded bytes;
* encoded bytes: decoded, oriented and converted by
  :func:`~sparkimg_ml.image.preprocess_bytes`;
* a Spark image struct (BGR): :func:`~sparkimg_ml.image.preprocess_spark_struct`;
* a tensor (``Vector`` values, flat or nested arrays, ``uint8`` bytes): turned
  back into pixels by :meth:`~sparkimg_ml.tensors.TensorInfo.to_image`.

Images are fitted into a ``size x size`` square: sources are letterboxed onto
:data:`TILE_BACKGROUND` (the tile's own colour, so the border does not show),
tensors keep their aspect and are enlarged by whole factors with
nearest-neighbour sampling, so each pixel the model sees stays a sharp block.
Every per-row problem becomes a reason string (``"http_404: Not Found"``),
never an exception.

Examples
--------
>>> import io
>>> from PIL import Image
>>> buffer = io.BytesIO()
>>> Image.new("RGB", (40, 20), (200, 10, 10)).save(buffer, "PNG")
>>> thumbnail = thumbnail_of_bytes(buffer.getvalue(), size=32)
>>> thumbnail.data_uri.startswith("data:image/png;base64,"), thumbnail.width, thumbnail.height
(True, 32, 32)
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from ..errors import SourceError
from ..fetch import Fetcher, FetchOptions
from ..image import ImageSpec, preprocess_bytes, preprocess_spark_struct
from ..schema import BINARY, IMAGE_STRUCT, IMAGE_STRUCT_FIELDS, SOURCE, TENSOR
from ..tensors import TensorInfo, flat_values

#: What a previewed column holds: an image column's kinds, or a tensor column.
KINDS = (SOURCE, BINARY, IMAGE_STRUCT, TENSOR)

#: Tile colour (RGB); letterbox borders are painted with it so they blend in.
TILE_BACKGROUND = (238, 238, 238)

#: Encoded thumbnails larger than this are also tried as JPEG, and the smaller kept.
PNG_BUDGET_BYTES = 12 * 1024

#: Thumbnail side lengths accepted, in pixels.
MIN_SIZE, MAX_SIZE = 8, 1024

IMAGE_FORMATS = ("auto", "png", "jpeg")


@dataclass(frozen=True)
class Thumbnail:
    """An encoded preview image and its pixel size."""

    data_uri: str
    width: int
    height: int


def _encode(pixels: np.ndarray, image_format: str, jpeg_quality: int = 85) -> Thumbnail:
    """``pixels`` (H, W[, C] uint8) as a PNG or JPEG data URI; ``"auto"`` keeps the smaller."""
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    image = Image.fromarray(np.ascontiguousarray(pixels))
    height, width = pixels.shape[:2]
    encoded: list[tuple[str, bytes]] = []
    if image_format in ("auto", "png"):
        buffer = io.BytesIO()
        image.save(buffer, "PNG", optimize=False, compress_level=6)
        encoded.append(("image/png", buffer.getvalue()))
    jpeg_allowed = image.mode in ("L", "RGB")  # JPEG has no alpha channel
    if image_format == "jpeg" and not jpeg_allowed:
        image = image.convert("RGB")
        jpeg_allowed = True
    if jpeg_allowed and (image_format == "jpeg" or len(encoded[0][1]) > PNG_BUDGET_BYTES):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=jpeg_quality)
        encoded.append(("image/jpeg", buffer.getvalue()))
    mime, data = min(encoded, key=lambda item: len(item[1]))
    return Thumbnail(f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}", width, height)


def _thumbnail_spec(size: int) -> ImageSpec:
    # scale=1 keeps values on the 8-bit scale; "box" averages when shrinking and
    # repeats pixels when enlarging, so small images stay sharp.
    return ImageSpec(size, size, color_mode="RGB", scale=1.0, resize_mode="pad", interpolation="box",
                     pad_color=TILE_BACKGROUND)


def _to_uint8(values: np.ndarray, size: int) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8).reshape(size, size, 3)


def thumbnail_of_bytes(data: bytes, size: int = 128, image_format: str = "auto") -> Thumbnail:
    """Encoded image bytes as a ``size x size`` letterboxed thumbnail; raises ``SourceError``."""
    if not data:
        raise SourceError("missing", "empty bytes")
    return _encode(_to_uint8(preprocess_bytes(data, _thumbnail_spec(size)), size), image_format)


def thumbnail_of_struct(height: int, width: int, n_channels: int, mode: int, data: bytes | None,
                        size: int = 128, image_format: str = "auto") -> Thumbnail:
    """One row of ``spark.read.format("image")`` (BGR/BGRA/gray) as a thumbnail; raises ``SourceError``."""
    values = preprocess_spark_struct(height, width, n_channels, mode, data, _thumbnail_spec(size))
    return _encode(_to_uint8(values, size), image_format)


def thumbnail_of_tensor(values: Any, info: TensorInfo, size: int = 128, image_format: str = "auto") -> Thumbnail:
    """One tensor cell (Vector, flat/nested list, ``uint8`` bytes) as the picture the model is given.

    Raises ``SourceError("bad_tensor", ...)`` when the values do not fit the recorded shape
    or cannot be shown as an image.

    Examples
    --------
    >>> info = TensorInfo(shape=(2, 2, 1), layout="HWC", channel_order="L")
    >>> thumbnail = thumbnail_of_tensor([0.0, 1.0, 1.0, 0.0], info, size=8)
    >>> thumbnail.width, thumbnail.height
    (8, 8)
    >>> thumbnail_of_tensor([0.0, 1.0], info)
    Traceback (most recent call last):
    ...
    sparkimg_ml.errors.SourceError: bad_tensor: 2 values; the column metadata says shape [2, 2, 1] (4 values)
    """
    flat = flat_values(values)
    if flat.size != info.size:
        raise SourceError("bad_tensor", f"{flat.size} values; the column metadata says shape "
                                        f"{list(info.shape)} ({info.size} values)")
    try:
        pixels = info.to_image(flat)
    except ValueError as exc:
        raise SourceError("bad_tensor", str(exc)) from None
    if pixels.shape[2] not in (1, 3, 4):
        raise SourceError("bad_tensor", f"{pixels.shape[2]} channels cannot be shown as an image")
    height, width = pixels.shape[:2]
    image = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
    fit = min(size / width, size / height)
    if fit >= 2:  # enlarge by a whole factor: every tensor pixel becomes an equal square block
        factor = int(fit)
        image = image.resize((width * factor, height * factor), Image.Resampling.NEAREST)
    elif fit < 1:
        image = image.resize((max(1, round(width * fit)), max(1, round(height * fit))), Image.Resampling.BOX)
    return _encode(np.asarray(image), image_format)


@dataclass(frozen=True)
class ThumbnailPlan:
    """How to preview one column: plain values a Spark task can unpickle.

    ``tensor`` is required for :data:`TENSOR` columns; ``fetch`` is used for
    :data:`SOURCE` columns.
    """

    kind: str
    size: int = 128
    image_format: str = "auto"
    tensor: TensorInfo | None = None
    fetch: FetchOptions = FetchOptions(timeout=10.0, max_retries=1, concurrency=8)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {self.kind!r}.")
        if self.kind == TENSOR and self.tensor is None:
            raise ValueError("a tensor column needs its TensorInfo (from the column metadata).")
        if not (isinstance(self.size, int) and MIN_SIZE <= self.size <= MAX_SIZE):
            raise ValueError(f"size must be an integer in [{MIN_SIZE}, {MAX_SIZE}] pixels; got {self.size!r}.")
        if self.image_format not in IMAGE_FORMATS:
            raise ValueError(f"image_format must be one of {IMAGE_FORMATS}; got {self.image_format!r}.")


#: One thumbnail result: the thumbnail, or the reason it could not be made.
Outcome = tuple[Thumbnail | None, str | None]


def _outcome(make: Any, *args: Any) -> Outcome:
    try:
        return make(*args), None
    except SourceError as error:
        return None, error.reason


def thumbnails(cells: Sequence[Any], plan: ThumbnailPlan) -> list[Outcome]:
    """Thumbnails for one batch of cells (Python values of the column), in order.

    Sources are read on a small thread pool, so slow hosts overlap.

    Examples
    --------
    >>> plan = ThumbnailPlan(SOURCE, size=16)
    >>> [reason for _, reason in thumbnails([None, "/no/such.png"], plan)]
    ['missing: null', 'not_found: /no/such.png']
    """
    def one(cell: Any, fetcher: Fetcher | None) -> Outcome:
        if cell is None:
            return None, "missing: null"
        if plan.kind == TENSOR:
            assert plan.tensor is not None
            return _outcome(thumbnail_of_tensor, cell, plan.tensor, plan.size, plan.image_format)
        if plan.kind == IMAGE_STRUCT:
            fields = [cell.get(name) for name in IMAGE_STRUCT_FIELDS]
            return _outcome(thumbnail_of_struct, *fields, plan.size, plan.image_format)
        if plan.kind == SOURCE:
            assert fetcher is not None
            try:
                data = fetcher.fetch(cell)
            except SourceError as error:
                return None, error.reason
            return _outcome(thumbnail_of_bytes, data, plan.size, plan.image_format)
        return _outcome(thumbnail_of_bytes, bytes(cell), plan.size, plan.image_format)

    if plan.kind != SOURCE:
        return [one(cell, None) for cell in cells]
    with Fetcher(plan.fetch) as fetcher, ThreadPoolExecutor(plan.fetch.concurrency) as pool:
        return list(pool.map(lambda cell: one(cell, fetcher), cells))


def thumbnail_fields(prefix: str) -> list[pa.Field]:
    """Arrow fields that :func:`thumbnail_batches` writes for the column ``prefix``."""
    return [pa.field(f"{prefix}_uri", pa.string()), pa.field(f"{prefix}_width", pa.int32()),
            pa.field(f"{prefix}_height", pa.int32()), pa.field(f"{prefix}_failure", pa.string())]


def _outcome_columns(outcomes: list[Outcome]) -> list[pa.Array]:
    return [
        pa.array([t.data_uri if t else None for t, _ in outcomes], pa.string()),
        pa.array([t.width if t else None for t, _ in outcomes], pa.int32()),
        pa.array([t.height if t else None for t, _ in outcomes], pa.int32()),
        pa.array([reason for _, reason in outcomes], pa.string()),
    ]


def thumbnail_batches(batches: Iterable[pa.RecordBatch], plans: Sequence[tuple[str, ThumbnailPlan]],
                      passthrough: Sequence[str]) -> Iterator[pa.RecordBatch]:
    """Replace each planned column of Arrow record batches by its thumbnail columns.

    ``plans`` pairs an input column name with its plan; the output has, per plan,
    ``<name>_uri``, ``<name>_width``, ``<name>_height`` and ``<name>_failure``, then
    the ``passthrough`` columns unchanged. This is the whole per-task job of
    :func:`sparkimg_ml.preview.show_images`, as a plain function of Arrow data.

    Examples
    --------
    >>> batch = pa.RecordBatch.from_pydict({"url": [None], "label": ["7"]})
    >>> out = next(thumbnail_batches([batch], [("url", ThumbnailPlan(SOURCE))], ["label"]))
    >>> out.column_names
    ['url_uri', 'url_width', 'url_height', 'url_failure', 'label']
    >>> out.column("url_failure").to_pylist(), out.column("label").to_pylist()
    (['missing: null'], ['7'])
    """
    for batch in batches:
        columns: list[pa.Array] = []
        fields: list[pa.Field] = []
        for name, plan in plans:
            cells = batch.column(batch.schema.get_field_index(name)).to_pylist()
            columns.extend(_outcome_columns(thumbnails(cells, plan)))
            fields.extend(thumbnail_fields(name))
        for name in passthrough:
            index = batch.schema.get_field_index(name)
            columns.append(batch.column(index))
            fields.append(batch.schema.field(index))
        yield pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields))
