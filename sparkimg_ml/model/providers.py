"""Execution providers: which onnxruntime back-ends (CPU, CUDA, TensorRT, ...) run a model, and on which device.

A session is made for a list of providers, tried in order, each with its own
options (``{"CUDAExecutionProvider": {"gpu_mem_limit": 2147483648}}``). Inside a
Spark task that Spark gave a GPU (``spark.task.resource.gpu.amount``), the GPU's
address becomes the ``device_id`` of every provider that takes one (CUDA,
TensorRT, MIGraphX, ROCm), so each task's session runs on its own GPU
(:func:`with_device`). A provider this onnxruntime does not have is an error
naming how to get it, or, when falling back is allowed, dropped with a warning
(:func:`usable_providers`).

This module imports neither pyspark nor pandas; ``onnxruntime`` is imported on use.

Examples
--------
>>> with_device(["CUDAExecutionProvider", "CPUExecutionProvider"], {}, 1)
[{'device_id': 1}, {}]
>>> usable_providers(["CUDAExecutionProvider", "CPUExecutionProvider"], [{"device_id": 1}, {}],
...                  available=["CPUExecutionProvider"], fallback=True)
(['CPUExecutionProvider'], [{}])
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

LOG = logging.getLogger("sparkimg_ml.model")


class ProviderError(ValueError):
    """An execution provider cannot be used: unknown, or missing from this onnxruntime."""

CPU = "CPUExecutionProvider"

#: The default: onnxruntime's CPU provider, present in every build.
DEFAULT_PROVIDERS: tuple[str, ...] = (CPU,)

#: Providers whose options take ``device_id`` (the GPU ordinal on the machine).
DEVICE_ID_PROVIDERS: tuple[str, ...] = (
    "CUDAExecutionProvider", "TensorrtExecutionProvider", "MIGraphXExecutionProvider", "ROCMExecutionProvider",
)

#: Every provider name onnxruntime knows (``onnxruntime.get_all_providers()`` of 1.20-1.32, plus ROCm,
#: which older builds have), for validating names where onnxruntime is not installed.
KNOWN_PROVIDERS: tuple[str, ...] = (
    "TensorrtExecutionProvider", "CUDAExecutionProvider", "MIGraphXExecutionProvider", "ROCMExecutionProvider",
    "OpenVINOExecutionProvider", "DnnlExecutionProvider", "VitisAIExecutionProvider", "QNNExecutionProvider",
    "NnapiExecutionProvider", "VSINPUExecutionProvider", "JsExecutionProvider", "CoreMLExecutionProvider",
    "ArmNNExecutionProvider", "ACLExecutionProvider", "DmlExecutionProvider", "RknpuExecutionProvider",
    "WebNNExecutionProvider", "WebGpuExecutionProvider", "XnnpackExecutionProvider", "CANNExecutionProvider",
    "AzureExecutionProvider", CPU,
)

#: What to install for a provider this onnxruntime lacks.
INSTALL_HINTS: dict[str, str] = {
    "CUDAExecutionProvider": "pip uninstall onnxruntime && pip install onnxruntime-gpu (CUDA 12 and cuDNN 9 on "
                             "the executors)",
    "TensorrtExecutionProvider": "pip uninstall onnxruntime && pip install onnxruntime-gpu, with TensorRT's "
                                 "libraries on the executors",
    "OpenVINOExecutionProvider": "pip uninstall onnxruntime && pip install onnxruntime-openvino",
    "DmlExecutionProvider": "pip uninstall onnxruntime && pip install onnxruntime-directml (Windows)",
    "CoreMLExecutionProvider": "the onnxruntime wheel for macOS",
    "QNNExecutionProvider": "pip uninstall onnxruntime && pip install onnxruntime-qnn",
}


def _onnxruntime() -> Any | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def known_providers() -> tuple[str, ...]:
    """Provider names onnxruntime knows: its own list when installed, with :data:`KNOWN_PROVIDERS`."""
    ort = _onnxruntime()
    names = list(KNOWN_PROVIDERS)
    if ort is not None:
        names += [name for name in ort.get_all_providers() if name not in names]
    return tuple(names)


def available_providers() -> list[str]:
    """The providers the installed onnxruntime can run (``onnxruntime.get_available_providers()``)."""
    ort = _onnxruntime()
    if ort is None:
        raise ImportError("ImageEmbedder needs onnxruntime; install the extra: pip install 'sparkimg_ml[onnx]'")
    return list(ort.get_available_providers())


def check_provider_name(name: str) -> str:
    """``name`` when onnxruntime knows it; ``ValueError`` naming the close spelling otherwise.

    Examples
    --------
    >>> check_provider_name("CUDAExecutionProvider")
    'CUDAExecutionProvider'
    >>> check_provider_name("cuda")
    Traceback (most recent call last):
    ...
    ValueError: executionProviders: unknown provider 'cuda' (did you mean 'CUDAExecutionProvider'?); the names are onnxruntime.get_all_providers().
    """
    known = known_providers()
    if name in known:
        return name
    wanted = name.lower().replace("executionprovider", "").replace("_", "")
    matches = [k for k in known if k.lower().replace("executionprovider", "") == wanted]
    hint = f" (did you mean {matches[0]!r}?)" if matches else ""
    raise ValueError(
        f"executionProviders: unknown provider {name!r}{hint}; the names are onnxruntime.get_all_providers()."
    )


def check_provider_options(providers: Sequence[str], options: Mapping[str, Any]) -> None:
    """``ValueError`` when ``providerOptions`` names a provider not in ``executionProviders``
    or gives one something other than a dict of options."""
    for name, value in options.items():
        if name not in providers:
            raise ValueError(
                f"providerOptions has options for {name!r}, which is not in executionProviders {list(providers)}; "
                "add it there or remove its options."
            )
        if not isinstance(value, Mapping):
            raise ValueError(
                f"providerOptions[{name!r}] must be a dict of option names to values (e.g. "
                f"{{'device_id': 0}}); got {type(value).__name__}: {value!r}."
            )


def with_device(providers: Sequence[str], options: Mapping[str, Mapping[str, Any]],
                device_id: int | None) -> list[dict[str, Any]]:
    """Each provider's options, in provider order, with ``device_id`` set for the GPU providers.

    ``device_id`` is the GPU Spark assigned to the task (None outside Spark or
    without GPU scheduling: onnxruntime's default, GPU 0). A ``device_id`` the
    options already hold is kept: it was set explicitly.
    """
    result = []
    for name in providers:
        own = dict(options.get(name, {}))
        if device_id is not None and name in DEVICE_ID_PROVIDERS and "device_id" not in own:
            own["device_id"] = int(device_id)
        result.append(own)
    return result


def missing_message(missing: Sequence[str], available: Sequence[str]) -> str:
    """What is missing, what there is, and how to get it."""
    hints = "; ".join(f"{name}: {INSTALL_HINTS[name]}" for name in missing if name in INSTALL_HINTS)
    return (
        f"executionProviders {list(missing)} are not available in this onnxruntime (it has {list(available)}). "
        + (f"Install them: {hints}. " if hints else "Install an onnxruntime build that has them. ")
        + "Or set providerFallback=True to run on the providers that are available, with a warning."
    )


def usable_providers(providers: Sequence[str], options: Sequence[Mapping[str, Any]],
                     available: Sequence[str] | None = None, fallback: bool = False,
                     where: str = "") -> tuple[list[str], list[dict[str, Any]]]:
    """The providers (and their options) to make a session with.

    Providers missing from ``available`` (default: this onnxruntime's) raise
    :class:`ProviderError` naming how to install them, unless ``fallback``: then
    they are dropped with a logged warning, and the CPU provider is added when
    nothing else is left.
    """
    have = list(available) if available is not None else available_providers()
    missing = [name for name in providers if name not in have]
    if not missing:
        return list(providers), [dict(o) for o in options]
    if not fallback:
        raise ProviderError(missing_message(missing, have) + (f" (model {where})" if where else ""))
    kept = [(name, dict(opts)) for name, opts in zip(providers, options) if name in have]
    if not kept:
        kept = [(CPU, {})]
    LOG.warning("sparkimg_ml: %s not available in this onnxruntime (it has %s); falling back to %s%s",
                missing, have, [name for name, _ in kept], f" for the model {where}" if where else "")
    return [name for name, _ in kept], [opts for _, opts in kept]


def cache_key(providers: Sequence[str], options: Sequence[Mapping[str, Any]]) -> str:
    """A canonical text of providers and their options (device included), for the session cache.

    Examples
    --------
    >>> cache_key(["CUDAExecutionProvider"], [{"device_id": 1}])
    '[["CUDAExecutionProvider", {"device_id": 1}]]'
    """
    return json.dumps([[name, dict(opts)] for name, opts in zip(providers, options)], sort_keys=True)
