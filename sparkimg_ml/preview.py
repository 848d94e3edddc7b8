"""Look at what the pipeline sees: image grids and failure reports for notebooks and HTML files.

:func:`show_images` renders the first ``n`` rows of an image column (URLs, paths,
bytes, Spark image structs) or of a tensor column (the featurizer's or the
reshaper's output, turned back into pixels from its metadata) as a grid of
thumbnails with captions. :func:`failure_report` counts failed rows by reason
code with example sources. Both return objects with ``_repr_html_``: plain HTML
with inline ``data:`` images and inline styles, no JavaScript, so they show in
Jupyter, VS Code, Colab and Databricks notebooks and in any browser.

Spark does the reading: ``df.limit(n)`` comes first, and the thumbnails are
made on the executors over only the columns needed. The HTML is rendered
here from plain values (:func:`render_grid`, :func:`image_grid`), with no Spark.

Examples
--------
>>> import numpy as np
>>> grid = image_grid([np.zeros((8, 8), np.uint8), np.full((4, 4, 3), 255, np.uint8)],
...                   captions=["black", "white"], size=32)
>>> len(grid), grid.failed
(2, 0)
>>> "<script" in grid.html, grid.html.count("<img ")
(False, 2)
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import REASON_CODES, redact_source
from .fetch import FetchOptions
from .tensors import TENSOR_KEY, TensorInfo
from .thumbnails import (
    BINARY,
    IMAGE_FORMATS,
    IMAGE_STRUCT,
    IMAGE_STRUCT_FIELDS,
    MAX_SIZE,
    MIN_SIZE,
    SOURCE,
    TENSOR,
    TILE_BACKGROUND,
    Thumbnail,
    ThumbnailPlan,
    thumbnail_batches,
    thumbnail_fields,
    thumbnail_of_tensor,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

__all__ = ["show_images", "failure_report", "image_grid", "render_grid", "ImageGrid", "Tile",
           "FailureReport", "ReasonCount"]

#: Largest ``n`` for :func:`show_images`: a preview, not an export.
MAX_ROWS = 1000
#: Default cap on the HTML of one grid, in bytes.
DEFAULT_MAX_BYTES = 2_000_000
#: Characters of a caption value shown on the tile (the full value is in its tooltip).
CAPTION_CHARS = 60
#: Narrowest tile, in CSS pixels, so captions stay readable under small thumbnails.
MIN_TILE_WIDTH = 96

_FAILURE_BACKGROUND = "#fde2e2"
_FAILURE_BORDER = "#c62828"
_TILE_BACKGROUND = "rgb({},{},{})".format(*TILE_BACKGROUND)


# --------------------------------------------------------------------------- tiles and HTML (no Spark)

@dataclass(frozen=True)
class Tile:
    """One grid cell: a thumbnail or the reason there is none, an optional source beside it, captions."""

    image: Optional[Thumbnail] = None
    failure: Optional[str] = None
    captions: Tuple[Tuple[str, str], ...] = ()
    #: With ``side_by_side``: the source image (or why it could not be read) left of ``image``.
    source: Optional[Thumbnail] = None
    source_failure: Optional[str] = None
    side_by_side: bool = False

    @property
    def failed(self) -> bool:
        """Whether the main picture is missing."""
        return self.image is None


def _escape(text: object) -> str:
    return html.escape(str(text), quote=True)


def _picture(thumbnail: Optional[Thumbnail], failure: Optional[str], size: int, label: str) -> str:
    box = (f"width:{size}px;height:{size}px;box-sizing:border-box;display:flex;align-items:center;"
           "justify-content:center;overflow:hidden;")
    if thumbnail is not None:
        return (f'<div style="{box}background:{_TILE_BACKGROUND}">'
                f'<img src="{thumbnail.data_uri}" width="{thumbnail.width}" height="{thumbnail.height}" '
                f'alt="{_escape(label)}" style="display:block;max-width:{size}px;max-height:{size}px"></div>')
    reason = failure or "missing: no image"
    code, _, detail = reason.partition(":")
    # The code always shows; the detail gets the room left in the square (all of it is in the tooltip).
    room = int((size - 12) / 6.5) * max(0, int((size - 12) / 13) - 2)
    detail = detail.strip()
    if len(detail) > room:
        detail = detail[: room - 1] + "\u2026" if room > 1 else ""
    shown = f"&#9888;<br><b>{_escape(code)}</b>" + (f"<br>{_escape(detail)}" if detail else "")
    small = size < 96  # a reason code such as "http_404" still fits on one line of a 64-pixel square
    return (f'<div data-failure="1" title="{_escape(reason)}" style="{box}background:{_FAILURE_BACKGROUND};'
            f'color:#7f1010;padding:{3 if small else 6}px;text-align:center;overflow-wrap:anywhere;'
            f'font-size:{10 if small else 11}px;line-height:1.2"><span>{shown}</span></div>')


def _caption_html(captions: Sequence[Tuple[str, str]]) -> str:
    lines = []
    for name, value in captions:
        shown = value if len(value) <= CAPTION_CHARS else value[: CAPTION_CHARS - 1] + "\u2026"
        label = f"<b>{_escape(name)}</b>: " if name else ""
        lines.append(f'<div title="{_escape(value)}">{label}{_escape(shown)}</div>')
    return (f'<figcaption style="margin-top:4px;line-height:1.3;overflow-wrap:anywhere">{"".join(lines)}'
            "</figcaption>") if lines else ""


def _tile_html(tile: Tile, size: int) -> str:
    pictures = _picture(tile.image, tile.failure, size, "image")
    legend = ""
    if tile.side_by_side:
        pictures = (_picture(tile.source, tile.source_failure, size, "source")
                    + _picture(tile.image, tile.failure, size, "model input"))
        legend = ('<div style="display:flex;gap:4px;font-size:10px;color:#666;margin-top:2px">'
                  f'<span style="width:{size}px">source</span><span style="width:{size}px">model input</span></div>')
    border = f"2px solid {_FAILURE_BORDER}" if tile.failed else "1px solid #c8c8c8"
    # Captions need some width even under small thumbnails.
    width = max(MIN_TILE_WIDTH, size * (2 if tile.side_by_side else 1) + (4 if tile.side_by_side else 0))
    state = "failed" if tile.failed else "ok"
    return (f'<figure data-tile="{state}" style="margin:0;padding:4px;background:#fff;border:{border};'
            f'width:{width}px;font-size:12px;color:#222">'
            f'<div style="display:flex;gap:4px">{pictures}</div>{legend}{_caption_html(tile.captions)}</figure>')


def render_grid(tiles: Sequence[Tile], size: int = 128, title: str = "",
                max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """The HTML of a grid of ``tiles``; tiles past ``max_bytes`` of HTML are left out and counted.

    Examples
    --------
    >>> html_text = render_grid([Tile(failure="http_404: Not Found", captions=(("url", "<b>"),))], size=64)
    >>> 'data-tile="failed"' in html_text, "http_404: Not Found" in html_text, "&lt;b&gt;" in html_text
    (True, True, True)
    """
    parts: List[str] = []
    used = 0
    for tile in tiles:
        piece = _tile_html(tile, size)
        if parts and used + len(piece) > max_bytes:
            break
        parts.append(piece)
        used += len(piece)
    shown = len(parts)
    failed = sum(1 for tile in tiles[:shown] if tile.failed)
    summary = f"{shown} image{'s' if shown != 1 else ''}" + (f", {failed} failed" if failed else "")
    if shown < len(tiles):
        summary += (f"; {len(tiles) - shown} more not shown: the preview reached its HTML size limit "
                    f"(max_bytes={max_bytes}); use a smaller size or n")
    heading = f"<b>{_escape(title)}</b> \u00b7 " if title else ""
    return ('<div data-sparkimg-grid="1" style="font-family:system-ui,-apple-system,Segoe UI,sans-serif">'
            f'<div style="display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start">{"".join(parts)}</div>'
            f'<div style="margin-top:6px;font-size:12px;color:#555">{heading}{_escape(summary)}</div></div>')


@dataclass(frozen=True)
class ImageGrid:
    """A rendered grid: shows itself in notebooks (``_repr_html_``) and saves as an HTML page."""

    tiles: Tuple[Tile, ...]
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
        return _grid_png(self.tiles[: self.html.count("<figure data-tile=")])

    def __repr__(self) -> str:
        return f"<ImageGrid: {len(self.tiles)} images, {self.failed} failed>"

    def save(self, path: Union[str, Path], title: str = "sparkimg_ml preview") -> Path:
        """Write a standalone HTML page (UTF-8) holding the grid; returns the path."""
        target = Path(path)
        target.write_text(
            f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{_escape(title)}</title></head>'
            f'<body style="margin:16px;background:#fafafa">{self.html}</body></html>\n', encoding="utf-8")
        return target



def _grid_png(tiles: Sequence[Tile], columns: int = 8) -> bytes:
    """``tiles`` drawn with Pillow: thumbnails centred in their squares, red squares with the reason code
    for failures, captions below; ``columns`` tiles per row (side-by-side tiles count twice)."""
    import base64
    import io

    from PIL import Image, ImageDraw

    side = max([max(t.width, t.height) for tile in tiles for t in (tile.image, tile.source) if t] + [64])
    lines = max([len(tile.captions) for tile in tiles] + [0])
    pair = any(tile.side_by_side for tile in tiles)
    cell_w, cell_h = (2 * side + 4 if pair else side) + 12, side + 12 + 12 * lines
    per_row = max(1, min(len(tiles), columns // (2 if pair else 1)))
    rows = max(1, -(-len(tiles) // per_row))
    sheet = Image.new("RGB", (per_row * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for index, tile in enumerate(tiles):
        x, y = (index % per_row) * cell_w + 6, (index // per_row) * cell_h + 6
        pictures = [(tile.source, tile.source_failure), (tile.image, tile.failure)] if tile.side_by_side \
            else [(tile.image, tile.failure)]
        for offset, (thumbnail, failure) in enumerate(pictures):
            left = x + offset * (side + 4)
            if thumbnail is None:
                draw.rectangle([left, y, left + side - 1, y + side - 1], fill=_FAILURE_BACKGROUND,
                               outline=_FAILURE_BORDER)
                draw.text((left + 4, y + 4), (failure or "missing").partition(":")[0], fill="#7f1010")
                continue
            picture = Image.open(io.BytesIO(base64.b64decode(thumbnail.data_uri.split(",", 1)[1]))).convert("RGB")
            square = Image.new("RGB", (side, side), TILE_BACKGROUND)
            square.paste(picture, ((side - picture.width) // 2, (side - picture.height) // 2))
            sheet.paste(square, (left, y))
        for line, (name, value) in enumerate(tile.captions):
            text = f"{name}: {value}" if name else value
            room = max(4, (cell_w - 12) // 6)  # the default font is 6 pixels wide a character
            text = text if len(text) <= room else text[: room - 1] + "~"
            draw.text((x, y + side + 2 + 12 * line), text, fill="#222222")
    buffer = io.BytesIO()
    sheet.save(buffer, "PNG")
    return buffer.getvalue()

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

def _column(name: str) -> "Column":
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def _require_column(df: "DataFrame", name: str, role: str) -> None:
    if not isinstance(name, str) or name not in df.columns:
        shown = ", ".join(df.columns[:20]) + (" ..." if len(df.columns) > 20 else "")
        raise ValueError(f"{role} {name!r} is not a column of the DataFrame. Available columns: {shown}.")


def _column_kind(df: "DataFrame", name: str) -> Tuple[str, Optional[TensorInfo], bool]:
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


def _vector_values(name: str, dtype: str = "float64") -> "Column":
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    column = _column(name)
    # vector_to_array fails on null: failed rows stay null.
    return F.when(column.isNotNull(), vector_to_array(column, dtype))


def _as_text(df: "DataFrame", name: str) -> "Column":
    from pyspark.ml.linalg import VectorUDT

    vector = isinstance(df.schema[name].dataType, VectorUDT)
    return (_vector_values(name) if vector else _column(name)).cast("string")


def _thumbnail_input(name: str, is_vector: bool) -> "Column":
    # A Vector crosses into Arrow as its struct storage; as float32 values it is smaller and plain.
    return _vector_values(name, "float32") if is_vector else _column(name)


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
    df: "DataFrame", col: str, n: int = 16, size: int = 128, captions: Sequence[str] = (), *,
    side_by_side: bool = False, source_col: Optional[str] = None, error_col: Optional[str] = None,
    image_format: str = "auto", max_bytes: int = DEFAULT_MAX_BYTES, fetch_options: Optional[FetchOptions] = None,
    title: Optional[str] = None,
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
    fetch_options : FetchOptions, optional
        Limits for reading sources (headers, timeouts, ...); by default a
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
    _require_column(df, col, "col")
    kind, info, is_vector = _column_kind(df, col)
    caption_names = [captions] if isinstance(captions, str) else list(captions)
    for name in caption_names:
        _require_column(df, name, "caption column")
    if error_col is not None:
        _require_column(df, error_col, "error_col")
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
        _require_column(df, source_col, "source_col")
        source_kind, _, _ = _column_kind(df, source_col)
        if source_kind == TENSOR:
            raise ValueError(f"source_col {source_col!r} is a tensor column; it must hold the source images.")
        plans.append(("source", ThumbnailPlan(source_kind, size, image_format, None, fetch)))

    selected = [_thumbnail_input(col, is_vector).alias("image")]
    if side_by_side:
        assert source_col is not None
        selected.append(_column(source_col).alias("source"))
    passthrough = []
    if error_col is not None:
        selected.append(_column(error_col).cast("string").alias("error"))
        passthrough.append("error")
    for index, name in enumerate(caption_names):
        selected.append(_as_text(df, name).alias(f"caption_{index}"))
        passthrough.append(f"caption_{index}")

    fields: List[StructField] = []
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


def _thumbnail(row: Any, prefix: str) -> Optional[Thumbnail]:
    uri = row[f"{prefix}_uri"]
    return Thumbnail(uri, row[f"{prefix}_width"], row[f"{prefix}_height"]) if uri else None


# --------------------------------------------------------------------------- failure report

@dataclass(frozen=True)
class ReasonCount:
    """Failed rows with one reason code, and a few examples as ``(source, detail)`` pairs."""

    reason: str
    count: int
    fraction: float
    examples: Tuple[Tuple[Optional[str], str], ...] = ()

    @property
    def meaning(self) -> str:
        """What the reason code means (from :data:`~sparkimg_ml.REASON_CODES`)."""
        if re.fullmatch(r"http_[45]\d\d", self.reason):
            return REASON_CODES[f"{self.reason[:6]}xx"]
        return REASON_CODES.get(self.reason, "")


@dataclass(frozen=True)
class FailureReport:
    """Failed rows by reason: as rows (``reasons``), text, an HTML table and a Spark DataFrame."""

    total_rows: int
    reasons: Tuple[ReasonCount, ...]
    error_col: str
    source_col: Optional[str] = None
    _spark: Any = field(default=None, repr=False, compare=False)

    @property
    def failed_rows(self) -> int:
        """Rows with a reason."""
        return sum(reason.count for reason in self.reasons)

    def counts(self) -> Dict[str, int]:
        """``{reason code: rows}``, most frequent first."""
        return {reason.reason: reason.count for reason in self.reasons}

    @property
    def dataframe(self) -> "DataFrame":
        """The report as a Spark DataFrame: ``reason, count, fraction, meaning, examples<source, detail>``."""
        from pyspark.sql import SparkSession

        spark = self._spark or SparkSession.getActiveSession()
        if spark is None:
            raise RuntimeError("no active SparkSession to build the report's DataFrame in")
        return spark.createDataFrame(
            [(r.reason, r.count, r.fraction, r.meaning, [{"source": s, "detail": d} for s, d in r.examples])
             for r in self.reasons],
            "reason string, count long, fraction double, meaning string, "
            "examples array<struct<source: string, detail: string>>",
        )

    def __str__(self) -> str:
        lines = [f"{self.failed_rows} of {self.total_rows} rows failed ({self.error_col})"]
        for reason in self.reasons:
            lines.append(f"  {reason.reason:<20} {reason.count:>8}  {reason.fraction:7.2%}")
            for source, detail in reason.examples:
                arrow = " -> " if source is not None and detail else ""
                lines.append(f"      e.g. {source or ''}{arrow}{detail}")
        return "\n".join(lines)

    def to_html(self) -> str:
        """The report as an HTML table (escaped, inline styles)."""
        cell = "padding:4px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top"
        header = "".join(f'<th style="{cell}">{name}</th>' for name in ("reason", "rows", "share", "examples"))
        body = []
        for reason in self.reasons:
            examples = "<br>".join(
                (f"<code>{_escape(source)}</code>" if source is not None else "")
                + (" &rarr; " if source is not None and detail else "") + _escape(detail)
                for source, detail in reason.examples)
            body.append(
                f'<tr><td style="{cell}" title="{_escape(reason.meaning)}"><code>{_escape(reason.reason)}</code></td>'
                f'<td style="{cell};text-align:right">{reason.count}</td>'
                f'<td style="{cell};text-align:right">{reason.fraction:.2%}</td>'
                f'<td style="{cell};font-size:12px">{examples}</td></tr>')
        caption = (f"{self.failed_rows} of {self.total_rows} rows failed"
                   f" (<code>{_escape(self.error_col)}</code>)")
        if not self.reasons:
            return f'<div data-sparkimg-failures="0">{caption}.</div>'
        return (f'<div data-sparkimg-failures="{self.failed_rows}" style="font-family:system-ui,sans-serif">'
                f'<div style="margin-bottom:4px">{caption}</div>'
                f'<table style="border-collapse:collapse;font-size:13px"><thead><tr>{header}</tr></thead>'
                f'<tbody>{"".join(body)}</tbody></table></div>')

    def _repr_html_(self) -> str:
        return self.to_html()


def _split_reason(text: str) -> Tuple[str, str]:
    code, _, detail = text.partition(":")
    return code.strip(), detail.strip()


def failure_report(df: "DataFrame", error_col: str, source_col: Optional[str] = None,
                   examples: int = 3) -> FailureReport:
    """Count the rows of ``df`` by the reason code in ``error_col``, with example sources.

    ``error_col`` holds reasons such as ``"http_404: Not Found"`` (null for good
    rows), e.g. the featurizer's ``errorCol``. Up to ``examples`` rows per reason
    are kept as ``(source, detail)``, the source taken from ``source_col`` with
    credentials redacted (user-info and secret-looking query values). Two small
    Spark jobs run: one count per reason and one for the examples.

    Examples
    --------
    >>> from sparkimg_ml import failure_report
    >>> report = failure_report(featurized, "image_error", source_col="url")  # doctest: +SKIP
    >>> report.counts()  # doctest: +SKIP
    {'http_404': 2, 'decode': 2, 'missing': 2}
    >>> report  # in a notebook: an HTML table  # doctest: +SKIP
    >>> report.dataframe.show()  # doctest: +SKIP
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    _require_column(df, error_col, "error_col")
    if source_col is not None:
        _require_column(df, source_col, "source_col")
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 0:
        raise ValueError(f"examples must be an integer >= 0; got {examples!r}.")
    error = _column(error_col).cast("string")
    code = F.trim(F.substring_index(error, ":", 1))
    by_code = df.groupBy(code.alias("reason")).count().collect()
    total = sum(row["count"] for row in by_code)
    failed = {row["reason"]: row["count"] for row in by_code if row["reason"] is not None}

    samples: Dict[str, List[Tuple[Optional[str], str]]] = {reason: [] for reason in failed}
    if failed and examples:
        source = _as_text(df, source_col) if source_col is not None else F.lit(None).cast("string")
        rank = F.row_number().over(Window.partitionBy("reason").orderBy("source", "error"))
        picked = (df.where(error.isNotNull())
                  .select(code.alias("reason"), error.alias("error"), source.alias("source"))
                  .distinct()  # a source that failed twice is one example, not two
                  .withColumn("rank", rank).where(F.col("rank") <= examples).collect())
        for row in sorted(picked, key=lambda r: r["rank"]):
            shown = redact_source(row["source"]) if source_col is not None else None
            detail = _split_reason(row["error"])[1]
            samples[row["reason"]].append((shown, "" if detail == shown else detail))
    reasons = tuple(
        ReasonCount(reason, count, count / total if total else 0.0, tuple(samples[reason]))
        for reason, count in sorted(failed.items(), key=lambda item: (-item[1], item[0]))
    )
    return FailureReport(total, reasons, error_col, source_col, df.sparkSession)
