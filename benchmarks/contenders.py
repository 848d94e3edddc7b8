"""The contenders, side by side on the same input, and the independent Pillow reference.

* :func:`row_udf` - the row-at-a-time UDF people write today: read the file or
  ``requests.get`` the URL, Pillow ``convert("RGB").resize(...)``, then
  ``Vectors.dense(pixels / 255)`` as a plain ``F.udf(..., VectorUDT())``.
* :func:`featurizer` - :class:`sparkimg_ml.ImageUrlFeaturizer` on the same column.
* :func:`ceiling` - no Spark: a Pillow thread pool doing the same fetch, decode
  (with ``Image.draft`` reduced-size JPEG decoding, and libspng for plain PNGs
  when the featurizer has it too) and resize into one numpy matrix. Nothing
  that runs through Spark can beat it by much.
* :func:`pass_through` - the floor: the same Spark job with the image column
  copied instead of featurized (scan, project, sink).

:func:`reference_features` is the check every contender is held to: a plain
Pillow decode written independently of the library.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import requests
from PIL import Image
from pyspark.ml.linalg import DenseVector, Vectors, VectorUDT
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from sparkimg_ml import ImageUrlFeaturizer
from sparkimg_ml.image import png as _png

#: ``Image.draft`` is asked for at least this many decoded pixels per output pixel along
#: each axis, the same quality margin the featurizer's reduced decoding keeps, so the
#: ceiling does the same decode work as the featurizer rather than a cheaper one.
DRAFT_MARGIN = 2

#: Threads of the ceiling's pool; the featurizer's default per-task concurrency.
CEILING_THREADS = 16


def draft_size(height: int, width: int) -> tuple[int, int]:
    """The (width, height) asked of ``Image.draft`` for a ``height`` x ``width`` output."""
    return (width * DRAFT_MARGIN, height * DRAFT_MARGIN)


def reference_features(data: bytes, height: int, width: int, reduced: bool) -> np.ndarray:
    """Pillow directly: decode (reduced-size JPEG if ``reduced``), RGB, bicubic resize, /255.

    Examples
    --------
    >>> buffer = io.BytesIO(); Image.new("RGB", (8, 6), (255, 0, 51)).save(buffer, "PNG")
    >>> reference_features(buffer.getvalue(), 2, 2, reduced=False)[:3]
    array([1. , 0. , 0.2])
    """
    with Image.open(io.BytesIO(data)) as image:
        if reduced and image.format == "JPEG":
            image.draft("RGB", draft_size(height, width))
        pixels = image.convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(pixels, dtype=np.float64).reshape(-1) / 255.0


def row_udf(height: int, width: int, use_arrow: bool | None = None) -> Any:
    """The hand-written row-at-a-time UDF: source string -> ``DenseVector``.

    ``use_arrow=None`` leaves to Spark's default whether rows travel as Arrow or
    pickled batches (Arrow-optimized by default in pyspark 4.3), because that is
    what such a UDF gets today.
    """

    def featurize_row(source: str) -> DenseVector:
        if source.startswith(("http://", "https://")):
            data = requests.get(source, timeout=60).content
        else:
            with open(source, "rb") as handle:
                data = handle.read()
        image = Image.open(io.BytesIO(data)).convert("RGB").resize((width, height))
        return Vectors.dense(np.asarray(image).ravel() / 255.0)

    return F.udf(featurize_row, VectorUDT(), useArrow=use_arrow)


def featurizer(input_col: str, height: int, width: int, output_col: str = "features",
               **params: Any) -> ImageUrlFeaturizer:
    """The stage under test with the benchmark's settings; ``params`` override Params by name."""
    stage = ImageUrlFeaturizer(inputCol=input_col, outputCol=output_col, imageSize=[height, width],
                               handleInvalid="keep", errorCol="error")
    for name, value in params.items():
        stage.set(stage.getParam(name), value)
    return stage


def stage_params(stage: ImageUrlFeaturizer) -> dict[str, Any]:
    """Every Param of ``stage`` with its effective value (JSON-native)."""
    return {param.name: stage.getOrDefault(param) for param in stage.params if stage.isDefined(param)}


def uses_reduced_decode(stage: ImageUrlFeaturizer) -> bool:
    """Whether the stage decodes JPEGs at reduced size (False if it has no such Param)."""
    return stage.hasParam("reducedDecode") and bool(stage.getOrDefault("reducedDecode"))


def pass_through(df: DataFrame, source: Column, output_col: str = "features") -> DataFrame:
    """The floor: the image column copied into the output column instead of featurized."""
    return df.withColumn(output_col, source)


def spark_row_udf(df: DataFrame, source: Column, height: int, width: int,
                  output_col: str = "features", use_arrow: bool | None = None) -> DataFrame:
    """``df`` with the row UDF's vectors in ``output_col``."""
    return df.withColumn(output_col, row_udf(height, width, use_arrow)(source))


def spark_featurizer(df: DataFrame, source: Column, height: int, width: int,
                     output_col: str = "features", **params: Any) -> DataFrame:
    """``df`` with the featurizer's vectors in ``output_col`` (source column materialised first)."""
    staged = df.withColumn("_source", source)
    return featurizer("_source", height, width, output_col, **params).transform(staged).drop("_source")


class Ceiling:
    """No-Spark reference pipeline: thread pool, pooled HTTP, reduced-size JPEG decode, one matrix.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.png"
    >>> Image.new("RGB", (40, 30), (0, 255, 0)).save(path)
    >>> Ceiling(2, 2).run([str(path), str(path)])[:, :3]
    array([[0., 1., 0.],
           [0., 1., 0.]], dtype=float32)
    """

    def __init__(self, height: int, width: int, threads: int = CEILING_THREADS, reduced: bool = True,
                 fast_png: bool | None = None, decoder: str = "pillow") -> None:
        self.height = height
        self.width = width
        #: "auto": RGB/gray JPEGs through OpenCV (reduced decode, INTER_AREA), as the featurizer's
        #: decoder="auto" does, in the recipe of benchmarks.bench_decode (written without the library).
        self.decoder = decoder
        self.threads = threads
        self.reduced = reduced
        #: Decode plain PNGs with libspng, as the featurizer does when ``pyspng`` is installed.
        self.fast_png = _png.available() if fast_png is None else fast_png
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def _fetch(self, source: str) -> bytes:
        if source.startswith(("http://", "https://")):
            session: requests.Session | None = getattr(self._local, "session", None)
            if session is None:
                session = self._local.session = requests.Session()
                with self._lock:
                    self._sessions.append(session)
            response = session.get(source, timeout=60)
            response.raise_for_status()
            return response.content
        with open(source, "rb") as handle:
            return handle.read()

    def run(self, sources: Sequence[str]) -> np.ndarray:
        """Features of every source as an ``(n, height * width * 3)`` float32 matrix."""
        out = np.empty((len(sources), self.height * self.width * 3), dtype=np.float32)
        scale = np.float32(1.0 / 255.0)

        def one(index: int) -> None:
            data = self._fetch(sources[index])
            if self.decoder == "auto" and self.height == self.width and data[:3] == b"\xff\xd8\xff":
                # RGB/gray JPEGs through OpenCV; PNGs and everything else below, as decoder="auto" does
                from .bench_decode import OPENCV_MARGIN, cv2_decode_resize, has_alpha_or_is_unusual

                if not has_alpha_or_is_unusual(data)[0]:
                    np.multiply(cv2_decode_resize(data, self.height, OPENCV_MARGIN), scale, out=out[index])
                    return
            plain_png = _png.decode_plain_png(data, max_pixels=2**40) if self.fast_png else None
            with plain_png or Image.open(io.BytesIO(data)) as image:
                if self.reduced and image.format == "JPEG":
                    image.draft("RGB", draft_size(self.height, self.width))
                pixels = image.convert("RGB").resize((self.width, self.height), Image.Resampling.BICUBIC)
            np.multiply(np.asarray(pixels).reshape(-1), scale, out=out[index])

        try:
            with ThreadPoolExecutor(self.threads) as pool:
                for _ in pool.map(one, range(len(sources))):
                    pass
        finally:
            with self._lock:
                for session in self._sessions:
                    session.close()
                self._sessions.clear()
        return out
