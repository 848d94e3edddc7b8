"""``ImageEmbedder``: an image column becomes a pretrained network's embedding (or scores)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.functions import array_to_vector
from pyspark.ml.param.shared import HasInputCol, HasOutputCol
from pyspark.ml.util import DefaultParamsReadable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ._embed_udf import EmbedTask, make_embed_udf
from ._fetch_params import HasFetchParams
from ._image_columns import check_output_columns, image_input_kind, keeps_every_row
from ._image_params import HasImageParams
from ._invalid_params import HasInvalidRowParams
from ._model_params import HasModelParams
from ._persistence import StageWritable
from ._udf import (
    ARRAY,
    VECTOR,
    FeaturizeTask,
)
from .errors import redact_source
from .image_ops import ImageSpec
from .inference import (
    MODEL_LAYOUTS,
    LoadedModel,
    ModelOutput,
    describe_shape,
    load_model,
    run_batches,
)
from .serving import ImageInput, preprocess_with

#: Key of the embedding description in the output column's metadata.
EMBEDDING_KEY = "embedding"

_IMAGE_LAYOUTS = {image: model for model, image in MODEL_LAYOUTS.items()}


class ImageEmbedder(
    Transformer, HasInputCol, HasOutputCol, HasInvalidRowParams, HasImageParams, HasFetchParams,
    HasModelParams, DefaultParamsReadable, StageWritable,
):
    """Run an ONNX image model over an image column: each row's embedding (or scores) as a ``Vector``.

    The input column is read exactly as :class:`~sparkimg_ml.ImageUrlFeaturizer`
    reads it (URLs, paths, fsspec URLs, encoded bytes or the image struct; the same
    image and fetch Params), decoded to pixels, normalised with ``scale``/``mean``/
    ``std`` and fed to the model named by ``modelUri`` in batches of
    ``batchSize``. The output ``outputNode`` (the first output by default) of each
    image, flattened, is the row's dense ``Vector`` (``outputType="array"``:
    ``array<float>``), ready for ``LogisticRegression``, ``PCA`` or ``KMeans``.

    When the model's input has a fixed shape, ``imageSize`` and ``layout`` (NCHW
    models take ``CHW`` images, NHWC models ``HWC``) default from it; values set
    explicitly that contradict it fail at ``transform`` time, naming both shapes.

    A saved stage stores ``modelUri`` and ``modelSha256``, never the model bytes.
    Every Python worker reads the model once, checks its SHA-256 against the
    digest the driver read (and ``modelSha256`` when set), and keeps the session
    for every later task.

    Rows whose image cannot be read follow ``handleInvalid`` (``"error"``,
    ``"skip"``, ``"keep"`` with a null output and, with ``errorCol`` set, the
    reason); they never reach the model.

    Examples
    --------
    >>> from sparkimg_ml import ImageEmbedder
    >>> embedder = ImageEmbedder(inputCol="url", modelUri="https://models.example.com/resnet50.onnx",
    ...                          outputNode="features", mean="imagenet", std="imagenet")
    >>> embedder.getOutputCol(), embedder.getBatchSize(), embedder.getOutputNode()
    ('embedding', 64, 'features')
    >>> embeddings = embedder.transform(df)  # doctest: +SKIP
    >>> embedder.embed(["cat.jpg", "dog.jpg"]).shape  # doctest: +SKIP
    (2, 2048)
    """

    _input_kwargs: Dict[str, Any]  # set by @keyword_only

    @keyword_only
    def __init__(
        self, *,
        inputCol: Optional[str] = None,
        outputCol: str = "embedding",
        errorCol: Optional[str] = None,
        handleInvalid: str = "error",
        modelUri: Optional[str] = None,
        modelSha256: Optional[str] = None,
        outputNode: Optional[str] = None,
        flatten: bool = True,
        outputType: str = "vector",
        batchSize: int = 64,
        intraOpThreads: int = 0,
        imageSize: Optional[Sequence[int]] = None,
        colorMode: str = "RGB",
        scale: float = 1.0 / 255.0,
        resizeMode: str = "stretch",
        interpolation: str = "bicubic",
        padColor: Sequence[int] = (0, 0, 0),
        background: Sequence[int] = (255, 255, 255),
        mean: Union[Sequence[float], str] = (0.0,),
        std: Union[Sequence[float], str] = (1.0,),
        layout: Optional[str] = None,
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
        maxRequestsPerSecondPerHost: float = 0.0,
        respectOptOut: bool = False,
    ) -> None:
        super().__init__()
        self._setDefault(outputCol="embedding")
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(
        self, *,
        inputCol: Optional[str] = None,
        outputCol: str = "embedding",
        errorCol: Optional[str] = None,
        handleInvalid: str = "error",
        modelUri: Optional[str] = None,
        modelSha256: Optional[str] = None,
        outputNode: Optional[str] = None,
        flatten: bool = True,
        outputType: str = "vector",
        batchSize: int = 64,
        intraOpThreads: int = 0,
        imageSize: Optional[Sequence[int]] = None,
        colorMode: str = "RGB",
        scale: float = 1.0 / 255.0,
        resizeMode: str = "stretch",
        interpolation: str = "bicubic",
        padColor: Sequence[int] = (0, 0, 0),
        background: Sequence[int] = (255, 255, 255),
        mean: Union[Sequence[float], str] = (0.0,),
        std: Union[Sequence[float], str] = (1.0,),
        layout: Optional[str] = None,
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
        maxRequestsPerSecondPerHost: float = 0.0,
        respectOptOut: bool = False,
    ) -> "ImageEmbedder":
        """Sets params for this embedder; unnamed params keep their values.

        ``imageSize`` and ``layout`` left unset follow the model's input shape.
        """
        kwargs = {k: v for k, v in self._input_kwargs.items() if v is not None}
        return self._set(**kwargs)

    # -- setters for the shared column params (getters come from the mixins) --
    def setInputCol(self, value: str) -> "ImageEmbedder":
        """Sets the value of :py:attr:`inputCol`."""
        return self._set(inputCol=value)

    def setOutputCol(self, value: str) -> "ImageEmbedder":
        """Sets the value of :py:attr:`outputCol`."""
        return self._set(outputCol=value)

    # -- the model ----------------------------------------------------------------
    def _load_model(self) -> LoadedModel:
        """This stage's model in this process's cache (read, checked and loaded on first use)."""
        if not self.isDefined(self.modelUri):
            raise ValueError(
                "ImageEmbedder: modelUri is not set. Pass modelUri='<local path, file://, http(s):// or "
                "fsspec URL of an .onnx file>'."
            )
        return load_model(self.getModelUri(), self.getModelSha256(), self._fetch_options(),
                          self.getIntraOpThreads())

    def _model_spec(self, model: LoadedModel) -> ImageSpec:
        """The image Params, with ``imageSize``/``layout`` from the model's input where they are unset.

        Raises ``ValueError`` naming both shapes when the images cannot fit the model.
        """
        spec = self._image_spec()
        model_input = model.input
        where = redact_source(self.getModelUri())
        shape = describe_shape(model_input.shape)
        if not self.isSet(self.layout):
            if model_input.layout is None:
                raise ValueError(
                    f"ImageEmbedder: the model {where} takes {shape}, which does not tell whether channels "
                    "come first; set layout='CHW' (NCHW models) or 'HWC' (NHWC models)."
                )
            spec = spec.replace(layout=MODEL_LAYOUTS[model_input.layout])
        if not self.isSet(self.imageSize):
            height, width, _ = model_input.dims(model_input.layout or _IMAGE_LAYOUTS[spec.layout])
            if height is None or width is None:
                raise ValueError(
                    f"ImageEmbedder: the model {where} takes {shape}, whose height and width are free; set "
                    "imageSize=[height, width] to the size it was trained at."
                )
            spec = spec.replace(height=height, width=width)
        problem = model_input.check(_IMAGE_LAYOUTS[spec.layout], spec.height, spec.width, spec.channels)
        if problem is not None:
            raise ValueError(
                f"ImageEmbedder: {problem} (imageSize={[spec.height, spec.width]}, layout={spec.layout!r}, "
                f"colorMode={spec.color_mode!r}) for the model {where}. Leave "
                "imageSize and layout unset to take them from the model, or set them (and colorMode) to match it."
            )
        return spec

    def _model_output(self, model: LoadedModel, spec: ImageSpec) -> Tuple[ModelOutput, int]:
        """The output to return and its values per image (one probe image when its shape is open)."""
        output = model.output(self.getOutputNode())
        if not self.getFlatten() and len(output.shape) != 2:
            raise ValueError(
                f"ImageEmbedder: the output {output.name!r} of the model {redact_source(self.getModelUri())} "
                f"has shape {describe_shape(output.shape)}, not [N, D]. Set flatten=True to flatten each "
                "image's output, or choose another outputNode."
            )
        size = output.fixed_size
        if size is None:
            probe = np.zeros((1,) + spec.shape, dtype=np.float32)
            size = int(model.run(probe, output.name).shape[1])
        return output, size

    def outputMetadata(self) -> Dict[str, Any]:
        """Column metadata of the output: the ML attribute size and, under ``embedding``, the model.

        Reads the model (once per process) to learn its output size, e.g.
        ``{"ml_attr": {"num_attrs": 2048}, "embedding": {"outputNode": "features", ...}}``.
        """
        model = self._load_model()
        spec = self._model_spec(model)
        output, size = self._model_output(model, spec)
        return self._metadata(model, spec, output, size)

    def _metadata(self, model: LoadedModel, spec: ImageSpec, output: ModelOutput, size: int) -> Dict[str, Any]:
        embedding = {
            "modelUri": redact_source(self.getModelUri()),
            "modelSha256": model.sha256,
            "outputNode": output.name,
            # Spark metadata arrays cannot hold nulls: a free dimension is -1, as in numpy's reshape.
            "outputShape": [-1 if d is None else d for d in output.shape],
            "dimension": size,
            "input": {"name": model.input.name, "shape": [-1 if d is None else d for d in model.input.shape],
                      "layout": _IMAGE_LAYOUTS[spec.layout]},
            "image": spec.metadata(),
        }
        metadata: Dict[str, Any] = {EMBEDDING_KEY: embedding}
        if self.getOutputType() == "vector":
            metadata["ml_attr"] = {"num_attrs": size}
        return metadata

    # -- serving ----------------------------------------------------------------
    def embed(self, images: Union[ImageInput, List[ImageInput]]) -> np.ndarray:
        """This stage's embeddings of one image or a list of images, without Spark.

        ``images`` may be URLs, paths, encoded bytes, or a list of them. Returns a
        float32 array ``(dimension,)`` for one image or ``(n, dimension)`` for a
        list, bit-identical to this stage's Spark output for the same bytes. A bad
        image raises :class:`~sparkimg_ml.SourceError` naming the reason.
        """
        model = self._load_model()
        spec = self._model_spec(model)
        output, _ = self._model_output(model, spec)
        items: List[ImageInput] = list(images) if isinstance(images, (list, tuple)) else [images]
        pixels = preprocess_with(items, spec, self._fetch_options())
        embeddings = run_batches(model, pixels.reshape((len(pixels),) + spec.shape), output.name,
                                 self.getBatchSize())
        return embeddings if isinstance(images, (list, tuple)) else embeddings[0]

    # -- transform --------------------------------------------------------------
    def _transform(self, dataset: DataFrame) -> DataFrame:
        stage = type(self).__name__
        input_col = self.getInputCol() if self.isDefined(self.inputCol) else None
        kind = image_input_kind(dataset, stage, input_col,
                                hint="ImageEmbedder reads images, not feature vectors.")
        error_col = self.getErrorCol()
        check_output_columns(dataset, stage, [self.getOutputCol()] + ([error_col] if error_col else []))
        model = self._load_model()
        spec = self._model_spec(model)
        output, size = self._model_output(model, spec)
        wants_vector = self.getOutputType() == "vector"
        task = EmbedTask(
            images=FeaturizeTask(
                spec=spec, fetch=self._fetch_options(), input_kind=kind, handle_invalid=self.getHandleInvalid(),
                input_col=self.getInputCol(), features_format=VECTOR if wants_vector else ARRAY,
                stage_name="ImageEmbedder",
            ),
            model_uri=self.getModelUri(), model_sha256=model.sha256, output_node=output.name,
            output_size=size, batch_size=self.getBatchSize(), intra_op_threads=self.getIntraOpThreads(),
        )
        embed, features_format = make_embed_udf(task)
        result_col = f"__sparkimg_ml_{self.uid}"
        out_col, error_col = self.getOutputCol(), self.getErrorCol()

        if features_format == VECTOR:
            dataset = dataset.filter(keeps_every_row(F.col(self.getInputCol()), kind))
        frame = dataset.withColumn(result_col, embed(F.col(self.getInputCol())))
        if task.images.handle_invalid == "skip":
            frame = frame.filter(F.col(result_col).getField("error").isNull())
        features = F.col(result_col).getField("features")
        if wants_vector and features_format != VECTOR:
            # array_to_vector fails on null arrays: failed rows stay null vectors.
            features = F.when(features.isNotNull(), array_to_vector(features))
        # withMetadata (not alias(metadata=)) keeps the metadata on Spark Connect too.
        frame = frame.withColumn(out_col, features).withMetadata(out_col, self._metadata(model, spec, output, size))
        if error_col:
            frame = frame.withColumn(error_col, F.col(result_col).getField("error"))
        return frame.drop(result_col)
