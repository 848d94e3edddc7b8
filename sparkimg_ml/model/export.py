"""Models that carry their preprocessing: export a torch module to one ONNX file that says how to feed it.

:func:`export_onnx` writes a self-contained ``.onnx`` file (weights inside, a
dynamic batch axis) and records in its ``metadata_props`` how images must be
prepared for it: size, layout, colour mode, resize mode, scale, mean and std,
under keys ``sparkimg_ml.<Param name>`` with JSON values. ``ImageEmbedder`` takes
its image Params' defaults from them (:func:`carried_params`) and refuses
explicit values that contradict them, so a model can no longer be fed with
statistics copied wrongly from its model card.

torch, onnx and onnxscript (the ``[export]`` extra) are imported on use; reading
the metadata back (:func:`carried_params`) needs neither.

Examples
--------
>>> carried_params({"sparkimg_ml.imageSize": "[224, 224]", "sparkimg_ml.mean": '"imagenet"', "author": "x"})
{'imageSize': [224, 224], 'mean': 'imagenet'}
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

#: Prefix of the metadata keys written by :func:`export_onnx`.
METADATA_PREFIX = "sparkimg_ml."

#: The image Params a model can carry, in the order they are written.
CARRIED_PARAMS: tuple[str, ...] = ("imageSize", "layout", "colorMode", "resizeMode", "scale", "mean", "std")

_CHANNELS = {"RGB": 3, "BGR": 3, "L": 1, "RGBA": 4}


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise ImportError("export_onnx needs torch, onnx and onnxscript; install the extra: "
                          "pip install 'sparkimg_ml[export]'") from None
    return torch


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError("export_onnx needs onnx and onnxscript; install the extra: "
                          "pip install 'sparkimg_ml[export]'") from None
    return onnx


def _size(image_size: int | Sequence[int]) -> list[int]:
    size = [image_size, image_size] if isinstance(image_size, int) else list(image_size)
    if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in size):
        raise ValueError(f"image_size must be one positive int or [height, width]; got {image_size!r}.")
    return size


def _stats(name: str, value: Any, channels: int) -> list[float] | str:
    if isinstance(value, str):
        if value.lower() != "imagenet":
            raise ValueError(f"{name} must be a list of numbers or 'imagenet'; got {value!r}.")
        return "imagenet"
    values = [float(v) for v in value]
    if len(values) not in (1, channels):
        raise ValueError(f"{name} needs 1 or {channels} values for this colour mode; got {values}.")
    return values


def preprocessing_metadata(image_size: int | Sequence[int], mean: Any = (0.0,), std: Any = (1.0,),
                           layout: str = "CHW", color_mode: str = "RGB", resize_mode: str = "stretch",
                           scale: float = 1.0 / 255.0) -> dict[str, str]:
    """The ``metadata_props`` entries recording how images are prepared for a model.

    ``mean`` and ``std`` are in units of ``pixel * scale`` (with the default
    scale, pixels in [0, 1]), in ``color_mode`` channel order, or ``"imagenet"``.

    Examples
    --------
    >>> preprocessing_metadata(224, mean="imagenet", std="imagenet", resize_mode="crop")["sparkimg_ml.imageSize"]
    '[224, 224]'
    """
    if layout not in ("CHW", "HWC"):
        raise ValueError(f"layout must be 'CHW' (NCHW models) or 'HWC' (NHWC models); got {layout!r}.")
    if color_mode not in _CHANNELS:
        raise ValueError(f"color_mode must be one of {tuple(_CHANNELS)}; got {color_mode!r}.")
    if resize_mode not in ("stretch", "crop", "pad"):
        raise ValueError(f"resize_mode must be 'stretch', 'crop' or 'pad'; got {resize_mode!r}.")
    if not (isinstance(scale, (int, float)) and scale > 0):
        raise ValueError(f"scale must be a number > 0; got {scale!r}.")
    channels = _CHANNELS[color_mode]
    values: dict[str, Any] = {
        "imageSize": _size(image_size), "layout": layout, "colorMode": color_mode, "resizeMode": resize_mode,
        "scale": float(scale), "mean": _stats("mean", mean, channels), "std": _stats("std", std, channels),
    }
    return {METADATA_PREFIX + name: json.dumps(values[name]) for name in CARRIED_PARAMS}


def carried_params(metadata: Mapping[str, str]) -> dict[str, Any]:
    """The image Params a model's metadata carries (``sparkimg_ml.*`` keys), JSON-decoded.

    Unknown ``sparkimg_ml.*`` keys and undecodable values raise ``ValueError``:
    a model written by a newer version should not be fed silently wrong.
    """
    carried: dict[str, Any] = {}
    for key, text in metadata.items():
        if not key.startswith(METADATA_PREFIX):
            continue
        name = key[len(METADATA_PREFIX):]
        if name not in CARRIED_PARAMS:
            raise ValueError(f"the model's metadata has {key!r}, which this sparkimg_ml does not know "
                             f"(it reads {', '.join(METADATA_PREFIX + n for n in CARRIED_PARAMS)}); upgrade "
                             "sparkimg_ml or remove the key.")
        try:
            carried[name] = json.loads(text)
        except ValueError:
            raise ValueError(f"the model's metadata {key!r} is not JSON: {text!r}.") from None
    return carried


def export_onnx(module: Any, path: str | os.PathLike, image_size: int | Sequence[int], *,
                mean: Any = (0.0,), std: Any = (1.0,), layout: str = "CHW", color_mode: str = "RGB",
                resize_mode: str = "stretch", scale: float = 1.0 / 255.0,
                output_names: Sequence[str] | None = None, input_name: str = "pixels",
                opset_version: int | None = None) -> str:
    """Export a torch image model to one ONNX file that records its preprocessing.

    The module takes a float32 batch ``[N, C, H, W]`` (``layout="CHW"``) or
    ``[N, H, W, C]`` (``"HWC"``), with ``C`` from ``color_mode``, and returns one
    tensor or a tuple of tensors named ``output_names``. The batch axis is
    dynamic; height and width are fixed at ``image_size``. The weights are stored
    inside the file (models under 2 GB), so ``modelSha256`` pins all of it.

    Parameters
    ----------
    module : torch.nn.Module
        The model; it is put in ``eval()`` mode.
    path : str or path-like
        Where to write the ``.onnx`` file.
    image_size : int or [height, width]
        The input size the model was trained at.
    mean, std : list of float or "imagenet"
        Normalisation ``(pixel * scale - mean) / std`` per channel, in
        ``color_mode`` order (``"imagenet"``: ImageNet's statistics).
    layout, color_mode, resize_mode, scale
        As ImageEmbedder's ``layout``, ``colorMode``, ``resizeMode``, ``scale``.
    output_names : list of str, optional
        Names of the outputs, e.g. ``["logits", "features"]`` for a module
        returning both (ImageEmbedder's ``outputNode`` picks one).
    input_name : str
        Name of the input.
    opset_version : int, optional
        ONNX opset (torch's default when None).

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> import torch  # doctest: +SKIP
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Flatten())  # doctest: +SKIP
    >>> export_onnx(net, "net.onnx", 224, mean="imagenet", std="imagenet", resize_mode="crop",
    ...             output_names=["features"])  # doctest: +SKIP
    'net.onnx'
    """
    metadata = preprocessing_metadata(image_size, mean, std, layout, color_mode, resize_mode, scale)
    torch = _torch()
    onnx = _onnx()
    height, width = _size(image_size)
    channels = _CHANNELS[color_mode]
    shape = (2, channels, height, width) if layout == "CHW" else (2, height, width, channels)
    module = module.eval()
    example = torch.zeros(shape, dtype=torch.float32)
    names = list(output_names) if output_names is not None else None
    target = os.fspath(path)
    with tempfile.TemporaryDirectory(prefix="sparkimg_ml-export-") as scratch:
        raw = os.path.join(scratch, "model.onnx")
        kwargs: dict[str, Any] = {}
        if opset_version is not None:
            kwargs["opset_version"] = opset_version
        with torch.no_grad():
            torch.onnx.export(
                module, (example,), raw, input_names=[input_name], output_names=names,
                dynamic_shapes=({0: torch.export.Dim.DYNAMIC},), external_data=False, verbose=False,
                **kwargs,
            )
        model = onnx.load(raw)
    props = {entry.key: entry.value for entry in model.metadata_props}
    props.update(metadata)
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, target, save_as_external_data=False)
    return target
