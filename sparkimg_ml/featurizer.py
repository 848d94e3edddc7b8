"""``ImageUrlFeaturizer``: an image column (URL, path, bytes or image struct) becomes a tensor column."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np
from pyspark.ml import Transformer
from pyspark.sql import DataFrame

from .engine.decode import DecodeTask
from .engine.featurize import featurize_batches
from .engine.udf import make_image_udf, udf_output_format
from .local import ImageInput, preprocess_with
from .params.fetch import FetchParamValues, HasFetchParams
from .params.fingerprint import HasFingerprint
from .params.image import HasImageParams, ImageParamValues
from .params.keywords import KeywordParams
from .params.output import HasOutputFormat
from .params.persistence import StageReadable, StageWritable
from .params.rows import HasInvalidRowParams, InvalidRowParamValues
from .params.source import HasSourceInfoCol, SourceInfoParamValues
from .params.stage import (
    HasColumns,
    add_image_output,
    check_decoder,
    check_storage_backends,
    checked_image_input,
)
from .schema import FEATURIZER_OUTPUT_COL

if TYPE_CHECKING:
    from typing_extensions import Unpack


class FeaturizerParamValues(ImageParamValues, FetchParamValues, InvalidRowParamValues, SourceInfoParamValues,
                            total=False):
    """Every Param of :class:`ImageUrlFeaturizer` as a constructor keyword (for type checkers)."""

    inputCol: str
    outputCol: str
    outputFormat: str


class ImageUrlFeaturizer(
    Transformer, HasColumns, HasInvalidRowParams, HasImageParams, HasFetchParams, HasOutputFormat,
    HasSourceInfoCol, KeywordParams, HasFingerprint, StageReadable, StageWritable,
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
    as ``"http_404: Not Found"`` (null when fine) is written for every row. With
    ``sourceInfoCol`` set, a struct of what each source is (width, height, format,
    mode, bytes, EXIF orientation, SHA-256) is written too, from the bytes already
    fetched.

    Examples
    --------
    >>> from sparkimg_ml import ImageUrlFeaturizer
    >>> featurizer = ImageUrlFeaturizer(inputCol="url", imageSize=[64, 64], handleInvalid="keep",
    ...                                 errorCol="image_error")
    >>> featurizer.getOutputCol(), featurizer.getImageSize(), featurizer.getOutputFormat()
    ('features', [64, 64], 'vector')
    >>> features = featurizer.transform(df)  # doctest: +SKIP
    """

    def __init__(self, **params: Unpack[FeaturizerParamValues]) -> None:
        super().__init__()
        self._setDefault(outputCol=FEATURIZER_OUTPUT_COL)
        self.setParams(**params)

    # -- metadata -------------------------------------------------------------
    def outputMetadata(self) -> dict[str, Any]:
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
    def preprocess(self, images: ImageInput | list[ImageInput]) -> np.ndarray:
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
        kind = checked_image_input(self, dataset)
        error_col = self.getErrorCol()
        check_decoder(stage, self.getDecoder())
        output_format = self.getOutputFormat()
        udf_format = udf_output_format(output_format)
        task = DecodeTask(
            spec=self._image_spec(), fetch=self._fetch_options(), input_kind=kind,
            handle_invalid=self.getHandleInvalid(), input_col=self.getInputCol(),
            features_format=udf_format, stage_name=stage, source_info=self.getSourceInfoCol() is not None,
        )
        check_storage_backends(dataset, stage, self.getInputCol(), kind, task.handle_invalid,
                               task.fetch.storage_protocols)
        return add_image_output(
            dataset, uid=self.uid, input_col=self.getInputCol(), kind=kind,
            udf=make_image_udf(functools.partial(featurize_batches, task=task), udf_format, kind,
                               source_info=task.source_info),
            udf_format=udf_format, output_format=output_format, handle_invalid=task.handle_invalid,
            output_col=self.getOutputCol(), error_col=error_col, metadata=self.outputMetadata(),
            source_info_col=self.getSourceInfoCol(),
        )
