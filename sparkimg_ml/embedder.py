"""``ImageEmbedder``: an image column becomes a pretrained network's embedding (or scores)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np
from pyspark.ml import Transformer
from pyspark.sql import DataFrame

from .engine.decode import DecodeTask
from .engine.embed import EmbedTask, embed_batches
from .engine.udf import make_image_udf, udf_output_format
from .errors import redact_source
from .image import ImageSpec
from .image.fingerprint import make_fingerprint
from .local import ImageInput, preprocess_with
from .model.export import METADATA_PREFIX, carried_params
from .model.onnx import (
    MODEL_LAYOUTS,
    LoadedModel,
    ModelOutput,
    describe_shape,
    load_model,
    run_batches,
)
from .model.providers import (
    available_providers,
    check_provider_options,
    usable_providers,
    with_device,
)
from .params.fetch import FetchParamValues, HasFetchParams
from .params.fingerprint import HasFingerprint
from .params.image import HasImageParams, ImageParamValues
from .params.model import HasModelParams, ModelParamValues
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
from .schema import EMBEDDER_OUTPUT_COL, EMBEDDING_KEY, FINGERPRINT_KEY, ML_ATTR_KEY, VECTOR

if TYPE_CHECKING:
    from typing_extensions import Unpack

_IMAGE_LAYOUTS = {image: model for model, image in MODEL_LAYOUTS.items()}


def _same_param_value(name: str, explicit: Any, carried: Any, color_mode: str, scale: float) -> bool:
    """Whether an explicit image Param value means the same as the model's (``mean``/``std`` resolved)."""
    if name in ("mean", "std"):
        try:
            mine = getattr(ImageSpec(color_mode=color_mode, scale=scale, **{name: _stat(explicit)}), name)
            theirs = getattr(ImageSpec(color_mode=color_mode, scale=scale, **{name: _stat(carried)}), name)
        except ValueError:
            return False
        return bool(np.allclose(mine, theirs, rtol=1e-6, atol=1e-9))
    if name == "scale":
        return bool(np.isclose(float(explicit), float(carried), rtol=1e-9, atol=0.0))
    return bool(explicit == carried)


def _stat(value: Any) -> Any:
    return value if isinstance(value, str) else tuple(value)


class EmbedderParamValues(ImageParamValues, FetchParamValues, InvalidRowParamValues, ModelParamValues,
                          SourceInfoParamValues, total=False):
    """Every Param of :class:`ImageEmbedder` as a constructor keyword (for type checkers)."""

    inputCol: str
    outputCol: str


class ImageEmbedder(
    Transformer, HasColumns, HasInvalidRowParams, HasImageParams, HasFetchParams, HasModelParams,
    HasSourceInfoCol, HasFingerprint, StageReadable, StageWritable,
):
    """Run an ONNX image model over an image column: each row's embedding (or scores) as a ``Vector``.

    The input column is read exactly as :class:`~sparkimg_ml.ImageUrlFeaturizer`
    reads it (URLs, paths, fsspec URLs, encoded bytes or the image struct; the same
    image and fetch Params), decoded to pixels, normalised with ``scale``/``mean``/
    ``std`` and fed to the model named by ``modelUri`` in batches of
    ``batchSize``. The output ``outputNode`` (the first output by default) of each
    image, flattened, is the row's dense ``Vector`` (``outputFormat="array"``:
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
    reason); they never reach the model. ``sourceInfoCol`` adds each source's
    facts (width, height, format, mode, bytes, EXIF orientation, SHA-256) as
    :class:`~sparkimg_ml.ImageUrlFeaturizer` does.

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

    def __init__(self, **params: Unpack[EmbedderParamValues]) -> None:
        super().__init__()
        # imageSize and layout follow the model's input unless set (see _model_spec).
        self._setDefault(outputCol=EMBEDDER_OUTPUT_COL)
        self.setParams(**params)

    # -- the model ----------------------------------------------------------------
    def _load_model(self, on_providers: bool = False) -> LoadedModel:
        """This stage's model in this process's cache (read, checked and loaded on first use).

        The driver reads the model's inputs and outputs from a CPU session;
        ``on_providers`` makes the session on ``executionProviders`` (for :meth:`embed`).
        """
        if not self.isDefined(self.modelUri):
            raise ValueError(
                "ImageEmbedder: modelUri is not set. Pass modelUri='<local path, file://, http(s):// or "
                "fsspec URL of an .onnx file>'."
            )
        if not on_providers:
            return load_model(self.getModelUri(), self.getModelSha256(), self._fetch_options(),
                              self.getIntraOpThreads())
        providers = self._check_providers()
        return load_model(self.getModelUri(), self.getModelSha256(), self._fetch_options(),
                          self.getIntraOpThreads(), providers=providers,
                          provider_options=with_device(providers, self.getProviderOptions(), None),
                          fallback=self.getProviderFallback())

    def _check_providers(self) -> list[str]:
        """``executionProviders``, checked against ``providerOptions`` and this onnxruntime.

        A provider missing here fails naming what to install, unless
        ``providerFallback`` (then a warning is logged here and each worker
        falls back on its own).
        """
        providers = self.getExecutionProviders()
        if not providers:
            raise ValueError("ImageEmbedder: executionProviders is empty; name at least one, e.g. "
                             "['CPUExecutionProvider'].")
        check_provider_options(providers, self.getProviderOptions())
        usable_providers(providers, [{} for _ in providers], available_providers(), self.getProviderFallback(),
                         redact_source(self.getModelUri()))
        return providers

    def _model_spec(self, model: LoadedModel) -> ImageSpec:
        """The image Params, with ``imageSize``/``layout`` from the model's input where they are unset.

        Raises ``ValueError`` naming both shapes when the images cannot fit the model.
        """
        carried = self._carried_params(model)
        spec = self._image_spec_with(carried)
        model_input = model.input
        where = redact_source(self.getModelUri())
        shape = describe_shape(model_input.shape)
        if not self.isSet(self.layout) and "layout" not in carried:
            if model_input.layout is None:
                raise ValueError(
                    f"ImageEmbedder: the model {where} takes {shape}, which does not tell whether channels "
                    "come first; set layout='CHW' (NCHW models) or 'HWC' (NHWC models)."
                )
            spec = spec.replace(layout=MODEL_LAYOUTS[model_input.layout])
        if not self.isSet(self.imageSize) and "imageSize" not in carried:
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

    def _carried_params(self, model: LoadedModel) -> dict[str, Any]:
        """The image Params the model carries in its metadata (:func:`~sparkimg_ml.model.export.export_onnx`).

        Raises ``ValueError`` naming both values when an explicitly set Param
        contradicts the model's.
        """
        where = redact_source(self.getModelUri())
        try:
            raw = carried_params(model.metadata)
        except ValueError as error:
            raise ValueError(f"ImageEmbedder: {error} (model {where})") from None
        carried: dict[str, Any] = {}
        for name, value in raw.items():
            try:
                carried[name] = self.getParam(name).typeConverter(value)
            except (TypeError, ValueError) as error:
                raise ValueError(f"ImageEmbedder: the model {where} records {name}={value!r} in its metadata "
                                 f"({METADATA_PREFIX}{name}), which is not a valid {name}: {error}") from None
        effective = {name: self.getOrDefault(name) if self.isSet(name) else value for name, value in carried.items()}
        color_mode = effective.get("colorMode", self.getColorMode())
        scale = effective.get("scale", self.getScale())
        for name, value in carried.items():
            if not self.isSet(name):
                continue
            explicit = self.getOrDefault(name)
            if not _same_param_value(name, explicit, value, color_mode, scale):
                raise ValueError(
                    f"ImageEmbedder: {name}={explicit!r} contradicts the model {where}, which records "
                    f"{name}={value!r} ({METADATA_PREFIX}{name} in its metadata). Leave {name} unset to take "
                    "the model's value, or export the model again with the preprocessing it was trained with."
                )
        return carried

    def _image_spec_with(self, carried: dict[str, Any]) -> ImageSpec:
        """The image Params as an ImageSpec, with ``carried`` as the defaults of those not set."""
        if not carried:
            return self._image_spec()
        stage = self.copy()
        stage._setDefault(**carried)
        return stage._image_spec()

    def _model_output(self, model: LoadedModel, spec: ImageSpec) -> tuple[ModelOutput, int]:
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

    def outputMetadata(self) -> dict[str, Any]:
        """Column metadata of the output: the ML attribute size and, under ``embedding``, the model.

        Reads the model (once per process) to learn its output size, e.g.
        ``{"ml_attr": {"num_attrs": 2048}, "embedding": {"outputNode": "features", ...}}``.
        """
        model = self._load_model()
        spec = self._model_spec(model)
        output, size = self._model_output(model, spec)
        return self._metadata(model, spec, output, size)

    def _metadata(self, model: LoadedModel, spec: ImageSpec, output: ModelOutput, size: int) -> dict[str, Any]:
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
        metadata: dict[str, Any] = {EMBEDDING_KEY: embedding, FINGERPRINT_KEY: self._fingerprint_of(model, spec, output)}
        if self.getOutputFormat() == VECTOR:
            metadata[ML_ATTR_KEY] = {"num_attrs": size}
        return metadata

    def _fingerprint_of(self, model: LoadedModel, spec: ImageSpec, output: ModelOutput) -> dict[str, Any]:
        import onnxruntime

        return make_fingerprint(type(self).__name__, image=spec.metadata(), model={
            "sha256": model.sha256, "outputNode": output.name, "flatten": self.getFlatten(),
            "onnxruntime": onnxruntime.__version__, "executionProviders": self.getExecutionProviders(),
        })

    # -- serving ----------------------------------------------------------------
    def embed(self, images: ImageInput | list[ImageInput]) -> np.ndarray:
        """This stage's embeddings of one image or a list of images, without Spark.

        ``images`` may be URLs, paths, encoded bytes, or a list of them. Returns a
        float32 array ``(dimension,)`` for one image or ``(n, dimension)`` for a
        list, bit-identical to this stage's Spark output for the same bytes. A bad
        image raises :class:`~sparkimg_ml.SourceError` naming the reason.
        """
        model = self._load_model(on_providers=True)
        spec = self._model_spec(model)
        output, _ = self._model_output(model, spec)
        items: list[ImageInput] = list(images) if isinstance(images, (list, tuple)) else [images]
        embeddings = run_batches(model, self._prepared(items, spec), output.name, self.getBatchSize())
        return embeddings if isinstance(images, (list, tuple)) else embeddings[0]

    def model_inputs(self, images: list[ImageInput]) -> np.ndarray:
        """What this stage feeds its model for ``images``: float32 ``(n, *input shape)``, without Spark.

        The same values the Spark transform and :meth:`embed` give the model (e.g. to
        calibrate :func:`~sparkimg_ml.quantize_onnx`). A bad image raises
        :class:`~sparkimg_ml.SourceError` naming the reason.
        """
        return self._prepared(list(images), self._model_spec(self._load_model()))

    def _prepared(self, items: list[ImageInput], spec: ImageSpec) -> np.ndarray:
        pixels = preprocess_with(items, spec, self._fetch_options())
        return pixels.reshape((len(pixels),) + spec.shape)

    # -- transform --------------------------------------------------------------
    def _transform(self, dataset: DataFrame) -> DataFrame:
        stage = type(self).__name__
        kind = checked_image_input(self, dataset, hint="ImageEmbedder reads images, not feature vectors.")
        error_col = self.getErrorCol()
        check_decoder(stage, self.getDecoder())
        model = self._load_model()
        providers = self._check_providers()
        spec = self._model_spec(model)
        output, size = self._model_output(model, spec)
        output_format = self.getOutputFormat()
        udf_format = udf_output_format(output_format)
        task = EmbedTask(
            images=DecodeTask(
                spec=spec, fetch=self._fetch_options(), input_kind=kind, handle_invalid=self.getHandleInvalid(),
                input_col=self.getInputCol(), features_format=udf_format, stage_name=stage,
                source_info=self.getSourceInfoCol() is not None,
            ),
            model_uri=self.getModelUri(), model_sha256=model.sha256, output_node=output.name,
            output_size=size, batch_size=self.getBatchSize(), intra_op_threads=self.getIntraOpThreads(),
            providers=tuple(providers), provider_options=self.getProviderOptions(),
            provider_fallback=self.getProviderFallback(),
        )
        check_storage_backends(dataset, stage, self.getInputCol(), kind, self.getHandleInvalid(),
                               task.images.fetch.storage_protocols)
        return add_image_output(
            dataset, uid=self.uid, input_col=self.getInputCol(), kind=kind,
            udf=make_image_udf(functools.partial(embed_batches, task=task), udf_format, kind,
                               source_info=task.images.source_info),
            udf_format=udf_format, output_format=output_format, handle_invalid=self.getHandleInvalid(),
            output_col=self.getOutputCol(), error_col=error_col,
            metadata=self._metadata(model, spec, output, size), source_info_col=self.getSourceInfoCol(),
        )
