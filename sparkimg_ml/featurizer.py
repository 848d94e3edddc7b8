"""``ImageUrlFeaturizer``: an image column (URL, path, bytes or image struct) becomes a tensor column."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.functions import array_to_vector
from pyspark.ml.param.shared import HasInputCol, HasOutputCol
from pyspark.ml.util import DefaultParamsReadable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ._fetch_params import HasFetchParams
from ._image_columns import check_output_columns, image_input_kind, keeps_every_row
from ._image_params import HasImageParams
from ._invalid_params import HasInvalidRowParams
from ._output_params import HasOutputFormat
from ._persistence import StageWritable
from ._udf import SOURCE, VECTOR, FeaturizeTask, make_spark_udf
from .fetch.backends import BACKEND_CHECK_ROWS, absent_backends, check_backends
from .serving import preprocess_with


class ImageUrlFeaturizer(
    Transformer, HasInputCol, HasOutputCol, HasInvalidRowParams, HasImageParams, HasFetchParams,
    HasOutputFormat, DefaultParamsReadable, StageWritable,
):
    """Fetch, decode, resize and normalise the image in each row into a tensor column.

    The input column may hold

    * strings: ``http(s)://`` URLs, local paths or ``file://`` URIs (and the other
      sources the fetching layer accepts),
    * binary: encoded image bytes, e.g. the ``content`` column of ``binaryFile``,
    * the image struct of ``spark.read.format("image")``.

    The output holds ``height * width * channels`` values per row in the order
    given by ``layout`` (HWC by default), channels in ``colorMode`` order. With
    ``outputFormat="vector"`` (default) it is a dense ``Vector`` of normalised
    values ``(pixel * scale - mean) / std``, with ``"array"`` the same values as
    ``array<float>``, and with ``"uint8"`` a ``binary`` value of one byte per
    pixel value, before normalisation (the compact form for deep-learning
    consumers, which apply ``scale``/``mean``/``std`` from the metadata with
    :class:`sparkimg_ml.tensors.TensorInfo`). The column metadata carries, under
    ``tensor``, the shape, layout, dtype and every preprocessing choice (plus
    ``ml_attr.num_attrs`` for a Vector), so :class:`~sparkimg_ml.TensorReshaper`
    and users can read the tensor back. Every other column passes through
    untouched, and only the image column crosses into Python.

    Rows whose image cannot be read follow ``handleInvalid``: ``"error"`` fails
    the job with a message naming the row's source and the cause, ``"skip"`` drops
    the row, ``"keep"`` yields a null vector. With ``errorCol`` set, a reason such
    as ``"http_404: Not Found"`` (null when fine) is written for every row.

    Examples
    --------
    >>> from sparkimg_ml import ImageUrlFeaturizer
    >>> featurizer = ImageUrlFeaturizer(inputCol="url", imageSize=[64, 64], handleInvalid="keep",
    ...                                 errorCol="image_error")
    >>> featurizer.getOutputCol(), featurizer.getImageSize(), featurizer.getOutputFormat()
    ('features', [64, 64], 'vector')
    >>> features = featurizer.transform(df)  # doctest: +SKIP
    """

    _input_kwargs: Dict[str, Any]  # set by @keyword_only

    @keyword_only
    def __init__(
        self, *,
        inputCol: Optional[str] = None,
        outputCol: str = "features",
        outputFormat: str = "vector",
        errorCol: Optional[str] = None,
        handleInvalid: str = "error",
        imageSize: Sequence[int] = (32, 32),
        colorMode: str = "RGB",
        scale: float = 1.0 / 255.0,
        resizeMode: str = "stretch",
        interpolation: str = "bicubic",
        padColor: Sequence[int] = (0, 0, 0),
        background: Sequence[int] = (255, 255, 255),
        mean: Union[Sequence[float], str] = (0.0,),
        std: Union[Sequence[float], str] = (1.0,),
        layout: str = "HWC",
        exifTranspose: bool = True,
        reducedDecode: bool = True,
        maxPixels: int = 89_478_485,
        colorProfile: str = "ignore",
        reducingGap: float = 0.0,
        concurrency: int = 16,
        timeout: float = 30.0,
        connectTimeout: float = 10.0,
        maxBytes: int = 50 * 1024 * 1024,
        allowLocalFiles: bool = True,
        maxConnectionsPerHost: int = 8,
        maxRetries: int = 3,
        maxRetryWait: float = 10.0,
        maxRedirects: int = 5,
        headers: Optional[Dict[str, str]] = None,
        blockPrivateNetworks: bool = False,
        allowedHosts: Optional[List[str]] = None,
        storageProtocols: Optional[List[str]] = None,
        storageOptions: Optional[Dict[str, Dict[str, Any]]] = None,
    ) -> None:
        super().__init__()
        self._setDefault(outputCol="features", handleInvalid="error")
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(
        self, *,
        inputCol: Optional[str] = None,
        outputCol: str = "features",
        outputFormat: str = "vector",
        errorCol: Optional[str] = None,
        handleInvalid: str = "error",
        imageSize: Sequence[int] = (32, 32),
        colorMode: str = "RGB",
        scale: float = 1.0 / 255.0,
        resizeMode: str = "stretch",
        interpolation: str = "bicubic",
        padColor: Sequence[int] = (0, 0, 0),
        background: Sequence[int] = (255, 255, 255),
        mean: Union[Sequence[float], str] = (0.0,),
        std: Union[Sequence[float], str] = (1.0,),
        layout: str = "HWC",
        exifTranspose: bool = True,
        reducedDecode: bool = True,
        maxPixels: int = 89_478_485,
        colorProfile: str = "ignore",
        reducingGap: float = 0.0,
        concurrency: int = 16,
        timeout: float = 30.0,
        connectTimeout: float = 10.0,
        maxBytes: int = 50 * 1024 * 1024,
        allowLocalFiles: bool = True,
        maxConnectionsPerHost: int = 8,
        maxRetries: int = 3,
        maxRetryWait: float = 10.0,
        maxRedirects: int = 5,
        headers: Optional[Dict[str, str]] = None,
        blockPrivateNetworks: bool = False,
        allowedHosts: Optional[List[str]] = None,
        storageProtocols: Optional[List[str]] = None,
        storageOptions: Optional[Dict[str, Dict[str, Any]]] = None,
    ) -> "ImageUrlFeaturizer":
        """Sets params for this featurizer; unnamed params keep their values."""
        kwargs = {k: v for k, v in self._input_kwargs.items() if v is not None}
        return self._set(**kwargs)

    # -- setters for the shared column params (getters come from the mixins) --
    def setInputCol(self, value: str) -> "ImageUrlFeaturizer":
        """Sets the value of :py:attr:`inputCol`."""
        return self._set(inputCol=value)

    def setOutputCol(self, value: str) -> "ImageUrlFeaturizer":
        """Sets the value of :py:attr:`outputCol`."""
        return self._set(outputCol=value)

    # -- metadata -------------------------------------------------------------
    def outputMetadata(self) -> Dict[str, Any]:
        """Column metadata of the output: the ``tensor`` description, plus the ML attribute size of a Vector.

        Examples
        --------
        >>> meta = ImageUrlFeaturizer(inputCol="url", imageSize=[4, 6]).outputMetadata()
        >>> meta["ml_attr"], meta["tensor"]["shape"], meta["tensor"]["layout"], meta["tensor"]["dtype"]
        ({'num_attrs': 72}, [4, 6, 3], 'HWC', 'float32')
        >>> ImageUrlFeaturizer(inputCol="url", outputFormat="uint8").outputMetadata()["tensor"]["dtype"]
        'uint8'
        """
        return self._tensor_metadata(self._image_spec())

    # -- serving ----------------------------------------------------------------
    def preprocess(self, images: Union[Any, List[Any]]) -> np.ndarray:
        """Apply this stage's Params to one image or a list of images, without Spark.

        ``images`` may be URLs, paths, encoded bytes, or a list of them. Returns an
        array of shape ``(size,)`` for one image or ``(n, size)`` for a list, with
        the values of this stage's Spark output for the same bytes, bit for bit:
        float32 normalised values, or uint8 pixels with ``outputFormat="uint8"``.
        A bad image raises :class:`~sparkimg_ml.SourceError` naming the reason.
        """
        return preprocess_with(images, self._image_spec(), self._fetch_options(), self._output_dtype())

    # -- transform --------------------------------------------------------------
    def _transform(self, dataset: DataFrame) -> DataFrame:
        stage = type(self).__name__
        input_col = self.getInputCol() if self.isDefined(self.inputCol) else None
        kind = image_input_kind(dataset, stage, input_col)
        error_col = self.getErrorCol()
        check_output_columns(dataset, stage, [self.getOutputCol()] + ([error_col] if error_col else []))
        output_format = self.getOutputFormat()
        task = FeaturizeTask(
            spec=self._image_spec(), fetch=self._fetch_options(), input_kind=kind,
            handle_invalid=self.getHandleInvalid(), input_col=self.getInputCol(),
            features_format=output_format,
        )
        if task.handle_invalid == "error" and kind == SOURCE and not dataset.isStreaming \
                and absent_backends(task.fetch.storage_protocols):  # a missing one fails here, not in a task
            first_rows = [row[0] for row in dataset.select(self.getInputCol()).limit(BACKEND_CHECK_ROWS).collect()]
            check_backends(stage, self.getInputCol(), first_rows, task.fetch.storage_protocols)
        featurize, features_format = make_spark_udf(task)
        result_col = f"__sparkimg_ml_{self.uid}"
        out_col = self.getOutputCol()

        dataset = dataset.filter(keeps_every_row(F.col(self.getInputCol()), kind))
        frame = dataset.withColumn(result_col, featurize(F.col(self.getInputCol())))
        if task.handle_invalid == "skip":
            frame = frame.filter(F.col(result_col).getField("error").isNull())
        features = F.col(result_col).getField("features")
        if output_format == VECTOR and features_format != VECTOR:
            # array_to_vector fails on null arrays: failed rows stay null vectors.
            features = F.when(features.isNotNull(), array_to_vector(features))
        # withMetadata (not alias(metadata=)) keeps the metadata on Spark Connect too.
        frame = frame.withColumn(out_col, features).withMetadata(out_col, self.outputMetadata())
        if error_col:
            frame = frame.withColumn(error_col, F.col(result_col).getField("error"))
        return frame.drop(result_col)
