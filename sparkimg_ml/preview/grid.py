"""Look at what the pipeline sees: image grids and failure reports for notebooks and HTML files.

:func:`show_images` renders the first ``n`` rows of an image column (URLs, paths,
bytes, Spark image structs) or of a tensor column (the featurizer's or the
reshaper's output, turned back into pixels from its metadata) as a grid of
thumbnails with captions. :func:`failure_report` counts failed rows by reason
code with example sources. Both return objects with ``_repr_html_``: plain HTML
with inline ``data:`` images and inline styles, no JavaScript, so they show in
Jupyter, VS Code, Colab and Databricks notebooks and in any browser.

Spark does the reading: ``df.limit(n)`` comes first, and the thumbnails are
made on the executors over only the columns needed (:mod:`.thumbnails`). The
HTML is rendered from plain values (:mod:`.html`, :func:`image_grid`), with no
Spark; :mod:`.failures` holds the failure report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import redact_source
from ..fetch import FetchOptions
from ..schema import (
    BINARY,
    IMAGE_STRUCT,
    IMAGE_STRUCT_FIELDS,
    SOURCE,
    TENSOR,
    TENSOR_KEY,
)
from ..tensors import TensorInfo
from .columns import as_text, column, require_column, vector_values
from .html import DEFAULT_MAX_BYTES, Tile, escape, render_grid
from .sheet import grid_png
from .thumbnails import (
    IMAGE_FORMATS,
    MAX_SIZE,
    MIN_SIZE,
    Thumbnail,
    ThumbnailPlan,
    thumbnail_batches,
    thumbnail_fields,
    thumbnail_of_tensor,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from ..params.fetch import HasFetchParams

#: Largest ``n`` for :func:`show_images`: a preview, not an export.
MAX_ROWS = 1000


@dataclass(frozen=True)
class ImageGrid:
    """A rendered grid: shows itself in notebooks (``_repr_html_``) and saves as an HTML page."""

    tiles: tuple[Tile, ...]
    html: str

    def __len__(self) -> int:
        return len(self.tiles)

    @property
    def failed(self) -> int:
        """Number of tiles whose picture could not be made."""
        return sum(1 for tile in self.tiles if tile.failed)

    def _repr_html_(self) -> str:
        return self.html

    def _repr_png_(self) -> bytes:
        """The tiles the HTML shows, composed into one PNG (for front-ends that strip HTML styles)."""
        return grid_png(self.tiles[: self.html.count("<figure data-tile=")])

    def __repr__(self) -> str:
        return f"<ImageGrid: {len(self.tiles)} images, {self.failed} failed>"

    def save(self, path: str | Path, title: str = "sparkimg_ml preview") -> Path:
        """Write a standalone HTML page (UTF-8) holding the grid; returns the path."""
        target = Path(path)
        target.write_text(
            f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{escape(title)}</title></head>'
            f'<body style="margin:16px;background:#fafafa">{self.html}</body></html>\n', encoding="utf-8")
        return target


def _as_pixels(image: Any, stretch: bool) -> np.ndarray:
    pixels = np.asarray(image)
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (1, 3, 4)):
        raise ValueError(f"an image must be (H, W) or (H, W, 1|3|4); got shape {pixels.shape}")
    if pixels.dtype == np.uint8:
        return pixels
    values = pixels.astype(np.float64)
    if stretch:
        low, high = float(values.min()), float(values.max())
        values = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def image_grid(images: Sequence[Any], captions: Sequence[Any] = (), size: int = 128, *,
               stretch: bool = False, title: str = "", image_format: str = "auto") -> ImageGrid:
    """A grid of local images (numpy arrays or Pillow images), rendered without Spark.

    Each image is ``(H, W)`` or ``(H, W, 1|3|4)`` in RGB(A) order. ``uint8`` values
    are shown as they are; other values are rounded and clipped to [0, 255], or,
    with ``stretch=True``, each image's own minimum..maximum is spread over
    [0, 255] (for signed pictures such as principal components). Small images are
    enlarged by whole factors with sharp pixel blocks.

    Examples
    --------
    >>> components = np.random.default_rng(0).normal(size=(3, 8, 8))
    >>> grid = image_grid(components, captions=["pc 1", "pc 2", "pc 3"], size=64, stretch=True)
    >>> len(grid), "pc 2" in grid.html
    (3, True)
    """
    captions = list(captions)
    if captions and len(captions) != len(images):
        raise ValueError(f"captions has {len(captions)} entries for {len(images)} images")
    tiles = []
    for index, image in enumerate(images):
        pixels = _as_pixels(image, stretch)
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        info = TensorInfo(shape=pixels.shape, layout="HWC", dtype="uint8")
        thumbnail = thumbnail_of_tensor(pixels.tobytes(), info, size, image_format)
        caption = ((("", str(captions[index])),) if captions else ())
        tiles.append(Tile(image=thumbnail, captions=caption))
    return ImageGrid(tuple(tiles), render_grid(tiles, size, title))


# --------------------------------------------------------------------------- Spark side

def _column_kind(df: DataFrame, name: str) -> tuple[str, TensorInfo | None, bool]:
    """(kind, tensor info, is a Vector) of column ``name``, from its type and metadata."""
    from pyspark.ml.linalg import VectorUDT
    from pyspark.sql.types import ArrayType, BinaryType, StringType, StructType

    schema_field = df.schema[name]
    data_type = schema_field.dataType
    metadata = schema_field.metadata or {}
    if isinstance(data_type, StringType):
        return SOURCE, None, False
    if isinstance(data_type, BinaryType) and (metadata.get(TENSOR_KEY) or {}).get("dtype") != "uint8":
        return BINARY, None, False
    if isinstance(data_type, StructType) and set(IMAGE_STRUCT_FIELDS) <= set(data_type.names):
        return IMAGE_STRUCT, None, False
    if isinstance(data_type, (BinaryType, ArrayType, VectorUDT)):
        try:
            info = TensorInfo.from_metadata(metadata)
        except ValueError as exc:
            raise ValueError(f"show_images: column {name!r} is a {data_type.simpleString()} tensor column, "
                             f"but {exc}") from None
        return TENSOR, info, isinstance(data_type, VectorUDT)
    raise TypeError(
        f"show_images: column {name!r} has type {data_type.simpleString()}; expected a string (URL or "
        "path), binary (encoded image or uint8 tensor), the image struct of spark.read.format('image'), "
        "or a tensor column (Vector or array with tensor metadata, from ImageUrlFeaturizer or TensorReshaper)."
    )


def _thumbnail_input(name: str, is_vector: bool) -> Column:
    # A Vector crosses into Arrow as its struct storage; as float32 values it is smaller and plain.
    return vector_values(name, "float32") if is_vector else column(name)


def _check_options(n: Any, size: Any, image_format: Any, max_bytes: Any) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_ROWS:
        raise ValueError(f"n must be an integer in [1, {MAX_ROWS}]; got {n!r}.")
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be an integer in [{MIN_SIZE}, {MAX_SIZE}] pixels; got {size!r}.")
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {IMAGE_FORMATS}; got {image_format!r}.")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"max_bytes must be a positive integer; got {max_bytes!r}.")


def show_images(
    df: DataFrame, col: str, n: int = 16, size: int = 128, captions: Sequence[str] = (), *,
    side_by_side: bool = False, source_col: str | None = None, error_col: str | None = None,
    image_format: str = "auto", max_bytes: int = DEFAULT_MAX_BYTES,
    fetch_options: FetchOptions | HasFetchParams | None = None, title: str | None = None,
) -> ImageGrid:
    """A grid of the first ``n`` images of ``col``, with captions, for a notebook or an HTML file.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Any DataFrame; only ``df.limit(n)`` is read, and only the columns shown.
    col : str
        The image column: URLs/paths (string), encoded bytes (binary), Spark's
        image struct (BGR), or a tensor column (``Vector``, flat or nested
        arrays, ``uint8`` binary) with the ``tensor`` metadata that
        ``ImageUrlFeaturizer`` and ``TensorReshaper`` write. Tensors are shown as
        the model sees them: normalisation, layout and channel order undone.
    n : int
        Number of rows shown (1..1000).
    size : int
        Side of each thumbnail's square, in pixels (8..1024).
    captions : sequence of str
        Columns shown under each picture (label, prediction, path...); values
        are HTML-escaped and credentials in URLs are redacted.
    side_by_side : bool
        Show the source image (``source_col``) left of the tensor in ``col``:
        the original next to what the model really sees.
    source_col : str, optional
        The column the tensor was made from; required with ``side_by_side``.
    error_col : str, optional
        A reason column (the featurizer's ``errorCol``): a row with a reason
        gets a failure tile showing it.
    image_format : {"auto", "png", "jpeg"}
        Thumbnail encoding; ``auto`` keeps PNGs up to 12 KB and otherwise
        the smaller of PNG and JPEG (photographs).
    max_bytes : int
        Cap on the grid's HTML; tiles past it are counted, not shown.
    fetch_options : FetchOptions or a stage, optional
        Limits for reading sources (headers, timeouts, ...); a stage (e.g. the
        featurizer that made ``col``) lends its fetch Params. By default a
        10 s timeout and one retry.
    title : str, optional
        Text shown under the grid (default: the column name and its kind).

    Notes
    -----
    Rows that cannot be shown (a 404, bytes that are not an image, a null
    tensor, a reason in ``error_col``) become tiles stating the reason; one bad
    row never fails the grid.

    A Python UDF works on whole Arrow batches, so on a large table limit the
    rows *before* featurizing a preview --
    ``show_images(featurizer.transform(df.limit(16)), "features", ...)`` --
    rather than featurizing a whole first batch for 16 tiles.

    Examples
    --------
    >>> from sparkimg_ml import show_images
    >>> grid = show_images(featurized, "features", n=8, captions=["label"])  # doctest: +SKIP
    >>> grid.save("preview.html")  # doctest: +SKIP
    """
    from pyspark.sql.types import IntegerType, StringType, StructField, StructType

    _check_options(n, size, image_format, max_bytes)
    require_column(df, col, "col", "show_images")
    kind, info, is_vector = _column_kind(df, col)
    caption_names = [captions] if isinstance(captions, str) else list(captions)
    for name in caption_names:
        require_column(df, name, "caption column", "show_images")
    if error_col is not None:
        require_column(df, error_col, "error_col", "show_images")
    if fetch_options is not None and not isinstance(fetch_options, FetchOptions):
        from ..params.fetch import HasFetchParams

        if not isinstance(fetch_options, HasFetchParams):
            raise TypeError(f"fetch_options must be a FetchOptions or a stage with fetch Params (e.g. an "
                            f"ImageUrlFeaturizer); got {type(fetch_options).__name__}.")
        fetch_options = fetch_options._fetch_options()
    fetch = fetch_options or ThumbnailPlan(SOURCE).fetch
    plans = [("image", ThumbnailPlan(kind, size, image_format, info, fetch))]
    if side_by_side:
        if kind != TENSOR:
            raise ValueError(
                f"side_by_side shows a source next to the tensor made from it, so col must be a tensor column "
                f"(e.g. the featurizer's outputCol); {col!r} holds {kind} values. Pass col=<outputCol>, "
                f"source_col={col!r}.")
        if source_col is None:
            raise ValueError("side_by_side needs source_col: the column the tensor was made from "
                             "(the featurizer's inputCol).")
        require_column(df, source_col, "source_col", "show_images")
        source_kind, _, _ = _column_kind(df, source_col)
        if source_kind == TENSOR:
            raise ValueError(f"source_col {source_col!r} is a tensor column; it must hold the source images.")
        plans.append(("source", ThumbnailPlan(source_kind, size, image_format, None, fetch)))

    selected = [_thumbnail_input(col, is_vector).alias("image")]
    if side_by_side:
        assert source_col is not None
        selected.append(column(source_col).alias("source"))
    passthrough = []
    if error_col is not None:
        selected.append(column(error_col).cast("string").alias("error"))
        passthrough.append("error")
    for index, name in enumerate(caption_names):
        selected.append(as_text(df, name).alias(f"caption_{index}"))
        passthrough.append(f"caption_{index}")

    fields: list[StructField] = []
    for prefix, _ in plans:
        for arrow_field in thumbnail_fields(prefix):
            is_int = str(arrow_field.type) == "int32"
            fields.append(StructField(arrow_field.name, IntegerType() if is_int else StringType()))
    fields.extend(StructField(name, StringType()) for name in passthrough)

    def make_thumbnails(batches: Any) -> Any:  # captures plain values only
        return thumbnail_batches(batches, plans, passthrough)

    rows = df.limit(n).select(*selected).mapInArrow(make_thumbnails, StructType(fields)).collect()

    tiles = []
    for row in rows:
        image = _thumbnail(row, "image")
        failure = row["image_failure"]
        reason = row["error"] if error_col is not None else None
        if reason:  # the featurizer's own reason beats "null tensor"
            image, failure = None, reason
        tiles.append(Tile(
            image=image, failure=failure,
            captions=tuple((name, redact_source(row[f"caption_{i}"]))
                           for i, name in enumerate(caption_names)),
            source=_thumbnail(row, "source") if side_by_side else None,
            source_failure=row["source_failure"] if side_by_side else None,
            side_by_side=side_by_side,
        ))
    heading = title if title is not None else f"{col} ({kind}{' vs ' + str(source_col) if side_by_side else ''})"
    return ImageGrid(tuple(tiles), render_grid(tiles, size, heading, max_bytes))


def _thumbnail(row: Any, prefix: str) -> Thumbnail | None:
    uri = row[f"{prefix}_uri"]
    return Thumbnail(uri, row[f"{prefix}_width"], row[f"{prefix}_height"]) if uri else None
