"""ONNX model inference without Spark: read, verify, cache and run an image model.

A model is named by a URI (a local path, ``file://``, ``http(s)://`` or an fsspec
URL such as ``s3://bucket/model.onnx``) and optionally pinned by its SHA-256.
Each Python process reads a model once: :func:`load_model` keeps the
``onnxruntime.InferenceSession`` in a per-process cache keyed by URI, checksum
and thread count, so every Spark task and batch a Python worker runs reuses it.

The model must take one float32 image tensor of rank 4, ``NCHW`` or ``NHWC``;
:class:`ModelInput` reads its layout, channels and (when fixed) its image size.
Any graph output can be taken (``output=``), so a model exported with its
penultimate layer as an extra output gives embeddings.

This module imports neither pyspark nor pandas; ``onnxruntime`` is imported on
first use (the ``[onnx]`` extra).

Examples
--------
>>> ModelInput("pixels", (None, 3, 224, 224), "tensor(float)").layout
'NCHW'
>>> ModelInput("pixels", (None, 224, 224, 3), "tensor(float)").image_size
[224, 224]
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import SourceError, redact_source
from ..fetch import Fetcher, FetchOptions
from .providers import DEFAULT_PROVIDERS, cache_key, usable_providers

#: Model layouts and the per-image tensor layout each one takes.
MODEL_LAYOUTS = {"NCHW": "CHW", "NHWC": "HWC"}

#: Channel counts an image input may have (L, RGB/BGR, RGBA).
IMAGE_CHANNELS = (1, 3, 4)

#: A single-file ONNX model is a protobuf message, which cannot exceed 2 GiB.
MAX_MODEL_BYTES = 2**31 - 1

#: Seconds allowed to read a model (it is far larger than an image).
MODEL_READ_TIMEOUT = 900.0

#: When this environment variable names a file, every new session appends one JSON line to it: the
#: process id, the model, the providers and options asked for (the task's GPU as ``device_id``) and
#: the providers the session runs on. Set it on the executors (``spark.executorEnv.<name>``) to see
#: which device each Python worker uses.
SESSION_LOG_ENV = "SPARKIMG_ML_SESSION_LOG"

Dim = int | None


class ModelError(ValueError):
    """A model cannot be used: unreadable, checksum mismatch, not an image model, unknown output.

    The message names the model URI (credentials redacted) and what was expected.
    """


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ImportError(
            "ImageEmbedder needs onnxruntime; install the extra: pip install 'sparkimg_ml[onnx]'"
        ) from None
    return onnxruntime


def is_sha256(text: str) -> bool:
    """Whether ``text`` is a SHA-256 hex digest (64 hex digits).

    Examples
    --------
    >>> is_sha256("ab" * 32), is_sha256("abc")
    (True, False)
    """
    return len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text)


def sha256_hex(data: bytes) -> str:
    """The SHA-256 hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def model_fetch_options(fetch: FetchOptions | None = None, uri: str = "") -> FetchOptions:
    """Options for reading a model file, from the image-reading options.

    Headers and storage options (credentials as ``env:NAME``) carry over; the
    size and time limits are a model's, and the model's own storage protocol is
    allowed. The network policy for images (``allowedHosts``,
    ``blockPrivateNetworks``) guards against addresses found in data; a model URI
    is configuration, so it does not apply.
    """
    base = fetch if fetch is not None else FetchOptions()
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    protocols = list(base.storage_protocols)
    if scheme and scheme not in ("http", "https", "file") and scheme not in protocols:
        protocols.append(scheme)
    return replace(
        base, concurrency=1, max_bytes=MAX_MODEL_BYTES, timeout=max(base.timeout, MODEL_READ_TIMEOUT),
        allow_local_files=True, block_private_networks=False, allowed_hosts=[], storage_protocols=protocols,
        max_requests_per_second_per_host=0.0, respect_opt_out=False,  # crawl etiquette is for images
    )


def read_model_bytes(uri: str, fetch: FetchOptions | None = None) -> bytes:
    """The bytes of the model at ``uri``; raises :class:`ModelError` naming the URI and the cause.

    Examples
    --------
    >>> read_model_bytes("/no/such/model.onnx")
    Traceback (most recent call last):
    ...
    sparkimg_ml.model.onnx.ModelError: cannot read the model /no/such/model.onnx: not_found: /no/such/model.onnx. modelUri must be a local path, file://, http(s):// or fsspec URL of an .onnx file.
    """
    with Fetcher(model_fetch_options(fetch, uri)) as fetcher:
        try:
            return fetcher.fetch(uri)
        except SourceError as error:
            raise ModelError(
                f"cannot read the model {redact_source(uri)}: {error.reason}. modelUri must be a local "
                "path, file://, http(s):// or fsspec URL of an .onnx file."
            ) from None


@dataclass(frozen=True)
class ModelInput:
    """The image input of a model: its name, shape (None for a free dimension) and element type."""

    name: str
    shape: tuple[Dim, ...]
    element_type: str

    @property
    def layout(self) -> str | None:
        """``"NCHW"`` or ``"NHWC"`` when the fixed dimensions tell, else None.

        A fixed dimension of 1, 3 or 4 in second position marks NCHW, in last
        position NHWC; when both or neither qualify, the layout is open.
        """
        second, last = self.shape[1], self.shape[3]
        channels_first = second in IMAGE_CHANNELS
        channels_last = last in IMAGE_CHANNELS
        if channels_first and not channels_last:
            return "NCHW"
        if channels_last and not channels_first:
            return "NHWC"
        return None

    def dims(self, layout: str) -> tuple[Dim, Dim, Dim]:
        """(height, width, channels) of this input read in ``layout``."""
        if layout == "NCHW":
            return self.shape[2], self.shape[3], self.shape[1]
        return self.shape[1], self.shape[2], self.shape[3]

    @property
    def image_size(self) -> list[int] | None:
        """``[height, width]`` when the layout is known and both are fixed, else None."""
        if self.layout is None:
            return None
        height, width, _ = self.dims(self.layout)
        return [height, width] if height is not None and width is not None else None

    def check(self, layout: str, height: int, width: int, channels: int) -> str | None:
        """Why a ``(height, width, channels)`` image in ``layout`` does not fit, or None when it does."""
        wanted = (1, channels, height, width) if layout == "NCHW" else (1, height, width, channels)
        for axis, (have, want) in enumerate(zip(self.shape, wanted)):
            if axis > 0 and have is not None and have != want:
                return (f"the model takes {describe_shape(self.shape)} ({self.layout or 'layout open'}) but the "
                        f"images are {describe_shape((None,) + wanted[1:])} ({layout})")
        return None


@dataclass(frozen=True)
class ModelOutput:
    """One graph output: its name and shape (None for a free dimension)."""

    name: str
    shape: tuple[Dim, ...]

    @property
    def fixed_size(self) -> int | None:
        """Values per image when every dimension after the batch one is fixed, else None."""
        size = 1
        for dim in self.shape[1:]:
            if dim is None:
                return None
            size *= dim
        return size


def describe_shape(shape: Sequence[Dim]) -> str:
    """``[N, 3, 224, 224]`` style text for a shape with free dimensions.

    Examples
    --------
    >>> describe_shape((None, 3, 224, 224))
    '[N, 3, 224, 224]'
    """
    return "[" + ", ".join("N" if i == 0 and d is None else ("?" if d is None else str(d))
                           for i, d in enumerate(shape)) + "]"


def _dims_of(shape: Any) -> tuple[Dim, ...]:
    # onnxruntime reports a free dimension as None or as its symbolic name (a str).
    return tuple(d if isinstance(d, int) and d > 0 else None for d in (shape or ()))


class LoadedModel:
    """An ``InferenceSession`` with what ImageEmbedder needs to know about it."""

    def __init__(self, uri: str, sha256: str, session: Any) -> None:
        self.uri = uri
        self.sha256 = sha256
        self.session = session
        #: The model's ``metadata_props`` (e.g. the preprocessing :func:`~sparkimg_ml.model.export.export_onnx` records).
        self.metadata: dict[str, str] = dict(session.get_modelmeta().custom_metadata_map)
        inputs = session.get_inputs()
        self.outputs = [ModelOutput(o.name, _dims_of(o.shape)) for o in session.get_outputs()]
        where = redact_source(uri)
        if len(inputs) != 1:
            names = ", ".join(repr(i.name) for i in inputs)
            raise ModelError(
                f"the model {where} has {len(inputs)} inputs ({names}); ImageEmbedder needs a model with "
                "one input, a float32 image tensor [N, C, H, W] or [N, H, W, C]."
            )
        arg = inputs[0]
        self.input = ModelInput(arg.name, _dims_of(arg.shape), str(arg.type))
        shape = describe_shape(self.input.shape) if arg.shape is not None else "unknown shape"
        if self.input.element_type != "tensor(float)" or len(self.input.shape) != 4:
            raise ModelError(
                f"the model {where} takes {arg.name!r} as {self.input.element_type} {shape}; ImageEmbedder "
                "needs a float32 image tensor of rank 4, [N, C, H, W] or [N, H, W, C]."
            )
        dims = self.input.shape
        if not any(d is None or d in IMAGE_CHANNELS for d in (dims[1], dims[3])):
            raise ModelError(
                f"the model {where} takes {arg.name!r} as {shape}, which has no channel axis of 1, 3 or 4 "
                "values in second or last position; ImageEmbedder needs an image tensor [N, C, H, W] or "
                "[N, H, W, C]."
            )

    def output(self, name: str | None) -> ModelOutput:
        """The output called ``name`` (the first output when None); :class:`ModelError` if none is."""
        if name is None:
            return self.outputs[0]
        for output in self.outputs:
            if output.name == name:
                return output
        available = ", ".join(f"{o.name!r} {describe_shape(o.shape)}" for o in self.outputs)
        raise ModelError(
            f"the model {redact_source(self.uri)} has no output {name!r}; its outputs are {available}. "
            "Set outputNode to one of them (export the model with the layer you want as an extra output)."
        )

    def run(self, batch: np.ndarray, output: str) -> np.ndarray:
        """Run one float32 batch ``(n, *image_shape)``; returns the output as ``(n, values)`` float32."""
        (result,) = self.session.run([output], {self.input.name: batch})
        result = np.asarray(result)
        if result.ndim == 0 or result.shape[0] != batch.shape[0]:
            raise ModelError(
                f"the output {output!r} of the model {redact_source(self.uri)} has shape {list(result.shape)} "
                f"for a batch of {batch.shape[0]} images; ImageEmbedder needs one row per image (batch first)."
            )
        return result.reshape(batch.shape[0], -1).astype(np.float32, copy=False)


_CACHE: dict[tuple[str, str | None, int, str], LoadedModel] = {}
_LOADS: Counter = Counter()
_LOCK = threading.Lock()


def default_threads(task_cpus: int | None = None) -> int:
    """Intra-op threads for a session when none are configured.

    With ``task_cpus`` (the CPUs Spark gives a task) that share; without it,
    0: onnxruntime's own choice (one thread per physical core), for a process
    that has the machine to itself.
    """
    if task_cpus is None:
        return 0
    return max(1, min(int(task_cpus), os.cpu_count() or 1))


def load_model(uri: str, sha256: str | None = None, fetch: FetchOptions | None = None,
               intra_op_threads: int = 0, providers: Sequence[str] = DEFAULT_PROVIDERS,
               provider_options: Sequence[Mapping[str, Any]] | None = None,
               fallback: bool = False) -> LoadedModel:
    """The model at ``uri`` in a session cached for this process.

    When ``sha256`` is given the bytes read must have that digest (else
    :class:`ModelError`); without it the first read is cached by URI.
    ``intra_op_threads=0`` leaves the thread count to onnxruntime.
    ``providers`` are onnxruntime execution providers in order of preference,
    ``provider_options`` one dict per provider (the GPU as ``device_id``, see
    :func:`~sparkimg_ml.model.providers.with_device`); one session is kept per
    model, threads, providers and options, so per device. Providers this
    onnxruntime lacks raise :class:`~sparkimg_ml.model.providers.ProviderError`,
    or with ``fallback`` are dropped with a warning.

    Examples
    --------
    >>> load_model("/no/such/model.onnx")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sparkimg_ml.model.onnx.ModelError: cannot read the model /no/such/model.onnx: not_found: ...
    """
    expected = sha256.lower() if sha256 else None
    options = [dict(o) for o in provider_options] if provider_options is not None else [{} for _ in providers]
    if len(options) != len(providers):
        raise ValueError(f"provider_options needs one dict per provider; got {len(options)} for {list(providers)}")
    placement = cache_key(providers, options)
    key = (uri, expected, int(intra_op_threads), placement)
    with _LOCK:  # one reader per process: concurrent callers wait for the first load
        model = _CACHE.get(key)
        if model is not None:
            return model
        data = read_model_bytes(uri, fetch)
        actual = sha256_hex(data)
        if expected is not None and actual != expected:
            raise ModelError(
                f"the model {redact_source(uri)} has SHA-256 {actual} but modelSha256 is {expected}: the file "
                "changed or is not the one the pipeline was built with. Point modelUri at the right file or "
                "set modelSha256 to the new digest."
            )
        session = _new_session(data, uri, intra_op_threads, providers, options, fallback)
        model = LoadedModel(uri, actual, session)
        _LOADS[uri] += 1
        _CACHE[key] = model
        _CACHE[(uri, actual, int(intra_op_threads), placement)] = model
        return model


def _log_session(uri: str, providers: Sequence[str], options: Sequence[Mapping[str, Any]], session: Any) -> None:
    path = os.environ.get(SESSION_LOG_ENV)
    if not path:
        return
    record = {"pid": os.getpid(), "model": redact_source(uri), "requested_providers": list(providers),
              "requested_options": [dict(o) for o in options], "providers": list(session.get_providers())}
    with open(path, "a", encoding="utf-8") as log:  # one short line per write: appends do not interleave
        log.write(json.dumps(record, sort_keys=True, default=str) + "\n")


def _new_session(data: bytes, uri: str, intra_op_threads: int, providers: Sequence[str] = DEFAULT_PROVIDERS,
                 provider_options: Sequence[Mapping[str, Any]] | None = None, fallback: bool = False) -> Any:
    ort = _onnxruntime()
    requested = [dict(o) for o in provider_options] if provider_options is not None else [{} for _ in providers]
    use, use_options = usable_providers(providers, requested, ort.get_available_providers(), fallback,
                                        redact_source(uri))
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(intra_op_threads)
    # One graph at a time per task: parallel branches would only add threads.
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        session = ort.InferenceSession(data, sess_options=options, providers=list(zip(use, use_options)))
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
        detail = " ".join(str(exc).split())[:300]
        if "external data" in detail.lower():
            raise ModelError(
                f"the model {redact_source(uri)} keeps its weights in a separate external-data file, but "
                "ImageEmbedder reads (and checksums) one self-contained .onnx file. Export it with "
                "torch.onnx.export(..., external_data=False), or re-save it with "
                "onnx.save(onnx.load(path), new_path, save_as_external_data=False) (models under 2 GB)."
            ) from None
        raise ModelError(
            f"onnxruntime cannot load the model {redact_source(uri)} ({len(data)} bytes) on {use}: {detail}. "
            "modelUri must name an ONNX model file (.onnx)."
        ) from None
    _log_session(uri, providers, requested, session)
    return session


def model_loads(uri: str) -> int:
    """How many times this process has read and loaded the model at ``uri``."""
    with _LOCK:
        return _LOADS[uri]


def clear_model_cache() -> None:
    """Forget every cached session (the next :func:`load_model` reads the file again)."""
    with _LOCK:
        _CACHE.clear()


def run_batches(model: LoadedModel, images: np.ndarray, output: str, batch_size: int) -> np.ndarray:
    """Run ``images`` ``(n, *image_shape)`` through ``model`` in batches; returns ``(n, values)`` float32."""
    parts = [model.run(images[start:start + batch_size], output)
             for start in range(0, images.shape[0], batch_size)]
    if not parts:
        size = model.output(output).fixed_size or 0
        return np.zeros((0, size), dtype=np.float32)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
