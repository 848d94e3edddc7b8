"""Params naming a model and how to run it: the reference, its checksum, the output, batching, threads."""

from __future__ import annotations

from typing import Any, TypedDict, TypeVar

from pyspark.ml.param import Param, Params

from ..model.onnx import is_sha256
from ..model.providers import DEFAULT_PROVIDERS, check_provider_name
from ..schema import EMBEDDER_OUTPUT_FORMATS, MODEL_DEFAULTS, VECTOR
from . import converters as conv
from .output import RenamedOutputType


class ModelParamValues(TypedDict, total=False):
    """The model Params as constructor keywords (for type checkers)."""

    modelUri: str
    modelSha256: str
    outputNode: str
    flatten: bool
    outputFormat: str
    batchSize: int
    intraOpThreads: int
    executionProviders: list[str]
    providerOptions: dict[str, dict[str, Any]]
    providerFallback: bool


M = TypeVar("M", bound="HasModelParams")


def convert_sha256(value: Any) -> str:
    """Validate ``modelSha256``: 64 hex digits, stored in lower case.

    Examples
    --------
    >>> convert_sha256("AB" * 32) == "ab" * 32
    True
    >>> convert_sha256("abc")
    Traceback (most recent call last):
    ...
    ValueError: modelSha256 must be the 64 hex digits of a SHA-256 digest (e.g. from `sha256sum model.onnx`); got 'abc'.
    """
    if not isinstance(value, str):
        raise TypeError(f"modelSha256 must be a string, got {type(value).__name__}: {value!r}")
    text = value.strip()
    if not is_sha256(text):
        raise ValueError(
            "modelSha256 must be the 64 hex digits of a SHA-256 digest (e.g. from `sha256sum model.onnx`); "
            f"got {value!r}."
        )
    return text.lower()


class HasModelParams(RenamedOutputType):
    """Mixin: which ONNX model to run and how (``modelUri``, ``modelSha256``, ``outputNode``, ...).

    Its ``outputFormat`` is ``vector`` or ``array`` (called ``outputType`` before 0.3.0).

    Examples
    --------
    >>> class Stage(HasModelParams):
    ...     pass
    >>> stage = Stage().setModelUri("s3://models/resnet50.onnx").setBatchSize(32)
    >>> stage.getModelUri(), stage.getBatchSize(), stage.getOutputNode()
    ('s3://models/resnet50.onnx', 32, None)
    """

    modelUri: Param[str] = Param(
        Params._dummy(), "modelUri",
        "the ONNX model: a local path, file://, http(s):// or fsspec URL (e.g. s3://...) of an .onnx "
        "file. Saved stages store this reference, never the model bytes.",
        typeConverter=conv.non_empty_string("modelUri"),
    )
    modelSha256: Param[str] = Param(
        Params._dummy(), "modelSha256",
        "SHA-256 hex digest the model file must have (recommended: a changed or wrong file then fails "
        "with a clear error instead of giving other embeddings).",
        typeConverter=convert_sha256,
    )
    outputNode: Param[str] = Param(
        Params._dummy(), "outputNode",
        "name of the model output to return (default: the first output), e.g. a pooled 'features' "
        "output exported next to the logits.",
        typeConverter=conv.non_empty_string("outputNode"),
    )
    flatten: Param[bool] = Param(
        Params._dummy(), "flatten",
        "flatten each image's output to one dimension (e.g. [2048, 1, 1] -> 2048); when False the "
        "output must already be [N, D].",
        typeConverter=conv.boolean("flatten"),
    )
    outputFormat: Param[str] = Param(
        Params._dummy(), "outputFormat",
        "'vector' (a dense ml Vector, ready for MLlib) or 'array' (array<float>).",
        typeConverter=conv.one_of("outputFormat", EMBEDDER_OUTPUT_FORMATS, case_insensitive=True),
    )
    batchSize: Param[int] = Param(
        Params._dummy(), "batchSize",
        "images per model call.",
        typeConverter=conv.positive_int("batchSize"),
    )
    intraOpThreads: Param[int] = Param(
        Params._dummy(), "intraOpThreads",
        "onnxruntime threads per Spark task; 0 (default): the CPUs Spark gives each task "
        "(spark.task.cpus), so concurrent tasks share the executor's cores instead of each taking all.",
        typeConverter=conv.positive_int("intraOpThreads", allow_zero=True),
    )

    executionProviders: Param[list] = Param(
        Params._dummy(), "executionProviders",
        "onnxruntime execution providers in order of preference, e.g. ['CUDAExecutionProvider', "
        "'CPUExecutionProvider'] (CUDA needs onnxruntime-gpu). A task Spark gives a GPU "
        "(spark.task.resource.gpu.amount) runs its session on that GPU (its device_id).",
        typeConverter=conv.string_list("executionProviders", check_provider_name),
    )
    providerOptions: Param[dict] = Param(
        Params._dummy(), "providerOptions",
        "options per execution provider, e.g. {'CUDAExecutionProvider': {'gpu_mem_limit': 2147483648}} "
        "(JSON values; a device_id set here overrides the GPU Spark assigns).",
        typeConverter=conv.json_object("providerOptions"),
    )
    providerFallback: Param[bool] = Param(
        Params._dummy(), "providerFallback",
        "when an execution provider is missing from onnxruntime: False (default) fails at transform time "
        "naming what to install; True drops it with a logged warning (down to the CPU provider).",
        typeConverter=conv.boolean("providerFallback"),
    )

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(outputFormat=VECTOR, executionProviders=list(DEFAULT_PROVIDERS), providerOptions={},
                         providerFallback=False, **MODEL_DEFAULTS)

    def getModelUri(self) -> str:
        """Gets the value of modelUri."""
        return self.getOrDefault(self.modelUri)

    def setModelUri(self: M, value: str) -> M:
        """Sets the value of :py:attr:`modelUri`."""
        return self._set(modelUri=value)

    def getModelSha256(self) -> str | None:
        """Gets the value of modelSha256, or None when the checksum is not pinned."""
        return self.getOrDefault(self.modelSha256) if self.isDefined(self.modelSha256) else None

    def setModelSha256(self: M, value: str) -> M:
        """Sets the value of :py:attr:`modelSha256`."""
        return self._set(modelSha256=value)

    def getOutputNode(self) -> str | None:
        """Gets the value of outputNode, or None for the model's first output."""
        return self.getOrDefault(self.outputNode) if self.isDefined(self.outputNode) else None

    def setOutputNode(self: M, value: str) -> M:
        """Sets the value of :py:attr:`outputNode`."""
        return self._set(outputNode=value)

    def getFlatten(self) -> bool:
        """Gets the value of flatten or its default value."""
        return self.getOrDefault(self.flatten)

    def setFlatten(self: M, value: bool) -> M:
        """Sets the value of :py:attr:`flatten`."""
        return self._set(flatten=value)

    def getBatchSize(self) -> int:
        """Gets the value of batchSize or its default value."""
        return self.getOrDefault(self.batchSize)

    def setBatchSize(self: M, value: int) -> M:
        """Sets the value of :py:attr:`batchSize`."""
        return self._set(batchSize=value)

    def getIntraOpThreads(self) -> int:
        """Gets the value of intraOpThreads or its default value."""
        return self.getOrDefault(self.intraOpThreads)

    def setIntraOpThreads(self: M, value: int) -> M:
        """Sets the value of :py:attr:`intraOpThreads`."""
        return self._set(intraOpThreads=value)

    def getExecutionProviders(self) -> list:
        """Gets the value of executionProviders or its default value (``["CPUExecutionProvider"]``)."""
        return list(self.getOrDefault(self.executionProviders))  # type: ignore[arg-type]

    def setExecutionProviders(self: M, value: list) -> M:
        """Sets the value of :py:attr:`executionProviders`.

        Examples
        --------
        >>> class Stage(HasModelParams):
        ...     pass
        >>> Stage().setExecutionProviders(["CUDAExecutionProvider", "CPUExecutionProvider"]).getExecutionProviders()
        ['CUDAExecutionProvider', 'CPUExecutionProvider']
        >>> Stage().setExecutionProviders(["cuda"])
        Traceback (most recent call last):
        ...
        ValueError: executionProviders: unknown provider 'cuda' (did you mean 'CUDAExecutionProvider'?); the names are onnxruntime.get_all_providers().
        """
        return self._set(executionProviders=value)

    def getProviderOptions(self) -> dict:
        """Gets the value of providerOptions or its default value (``{}``)."""
        return dict(self.getOrDefault(self.providerOptions))  # type: ignore[arg-type]

    def setProviderOptions(self: M, value: dict) -> M:
        """Sets the value of :py:attr:`providerOptions`."""
        return self._set(providerOptions=value)

    def getProviderFallback(self) -> bool:
        """Gets the value of providerFallback or its default value."""
        return self.getOrDefault(self.providerFallback)

    def setProviderFallback(self: M, value: bool) -> M:
        """Sets the value of :py:attr:`providerFallback`."""
        return self._set(providerFallback=value)
