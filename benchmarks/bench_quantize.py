"""int8 against float32 ONNX inference on CPU, measured side by side: speed and agreement.

``python -m benchmarks.bench_quantize`` does two things, without Spark:

1. **Speed.** A convolutional image network (four stride-2 stages of 3x3
   convolutions, ``--channels`` wide at the first, global pooling, a 10-way head;
   random weights from a fixed seed, since no pretrained weights can be
   downloaded here) is exported with :func:`sparkimg_ml.export_onnx` at
   ``--size`` and quantized with :func:`sparkimg_ml.quantize_onnx` on 64 of
   ``--images`` JPEG photos (crops of scikit-learn's sample photos, shared with
   :mod:`benchmarks.bench_incremental`). Both models embed the photos with
   ``ImageEmbedder.embed`` (decode + resize + inference, one process) and run on
   prepared inputs alone (inference only), ``--repeats`` times each in
   alternating order; medians of milliseconds per image and the ratios
   ``float32 / int8`` are reported, with the cosine similarity of the two models'
   outputs.
2. **Agreement.** A small CNN trained for ``--epochs`` on scikit-learn's digits
   (16x16 gray; the first 200 held out) is quantized on 200 training digits; on the
   200 held-out ones it reports how often the int8 model's top class equals the
   float model's, both accuracies, and their outputs' cosine similarity (median and
   1st percentile).

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .bench_incremental import make_photos


def _conv_net(channels: int) -> Any:
    import torch

    layers: list[Any] = []
    width_in = 3
    for stage in range(4):
        width = channels * 2 ** stage
        layers += [torch.nn.Conv2d(width_in, width, 3, stride=2, padding=1), torch.nn.ReLU(),
                   torch.nn.Conv2d(width, width, 3, padding=1), torch.nn.ReLU()]
        width_in = width
    return torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(width_in, 10))


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def speed(scratch: Path, photos: list[str], size: int, channels: int, repeats: int) -> dict[str, Any]:
    import onnxruntime
    import torch

    from sparkimg_ml import ImageEmbedder, export_onnx, quantize_onnx

    torch.manual_seed(0)
    fp32 = export_onnx(_conv_net(channels), scratch / "net.onnx", size, mean="imagenet", std="imagenet",
                       output_names=["scores"])
    int8 = quantize_onnx(fp32, scratch / "net-int8.onnx", photos[:64])
    embedders = {"float32": ImageEmbedder(modelUri=fp32), "int8": ImageEmbedder(modelUri=int8)}
    inputs = embedders["float32"].model_inputs(photos)
    sessions = {name: onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
                for name, path in (("float32", fp32), ("int8", int8))}
    input_name = sessions["float32"].get_inputs()[0].name
    outputs = {name: embedder.embed(photos) for name, embedder in embedders.items()}  # also warms up
    seconds: dict[str, dict[str, list[float]]] = {"embed": {"float32": [], "int8": []},
                                                  "inference": {"float32": [], "int8": []}}
    def infer(session: Any) -> None:
        for start in range(0, len(inputs), 32):
            session.run(None, {input_name: inputs[start:start + 32]})

    for repeat in range(repeats):
        for name in (("float32", "int8") if repeat % 2 == 0 else ("int8", "float32")):
            started = time.perf_counter()
            embedders[name].embed(photos)
            seconds["embed"][name].append(time.perf_counter() - started)
            started = time.perf_counter()
            infer(sessions[name])
            seconds["inference"][name].append(time.perf_counter() - started)
    result: dict[str, Any] = {"images": len(photos), "imageSize": size, "channels": channels,
                              "float32_mb": Path(fp32).stat().st_size / 1e6, "int8_mb": Path(int8).stat().st_size / 1e6}
    for kind, timings in seconds.items():
        per_image = {name: 1000 * statistics.median(values) / len(photos) for name, values in timings.items()}
        result[kind] = {"ms_per_image": per_image, "float32_over_int8": per_image["float32"] / per_image["int8"]}
    cosine = _cosine(outputs["float32"], outputs["int8"])
    result["cosine"] = {"median": float(np.median(cosine)), "p01": float(np.percentile(cosine, 1))}
    return result


def train_digits_cnn(folder: Path, epochs: int, held_out: int = 200) -> tuple[str, list[str], np.ndarray]:
    """A small CNN trained on scikit-learn's digits as 16x16 gray PNGs, exported with its preprocessing.

    Returns ``(model path, PNG paths, labels)``; the first ``held_out`` digits are not trained on.
    """
    import torch

    from sparkimg_ml import ImageEmbedder, export_onnx
    from sparkimg_ml.demo import write_digits_pngs

    pairs = write_digits_pngs(folder / "digits")
    paths = [str(folder / "digits" / name) for name, _ in pairs]
    labels = torch.tensor([label for _, label in pairs])
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32 * 4 * 4, 10))
    untrained = export_onnx(net, folder / "untrained.onnx", 16, color_mode="L")
    inputs = torch.from_numpy(ImageEmbedder(modelUri=untrained).model_inputs(paths))
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(epochs):
        for start in range(held_out, len(inputs), 64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net(inputs[start:start + 64]), labels[start:start + 64]).backward()
            optimizer.step()
    model = export_onnx(net, folder / "digits.onnx", 16, color_mode="L", output_names=["scores"])
    return model, paths, labels.numpy()


def agreement(scratch: Path, epochs: int) -> dict[str, Any]:
    from sparkimg_ml import ImageEmbedder, quantize_onnx

    fp32, paths, labels = train_digits_cnn(scratch, epochs)
    int8 = quantize_onnx(fp32, scratch / "digits-int8.onnx", paths[200:400])
    held_out = paths[:200]
    exact, fast = ImageEmbedder(modelUri=fp32).embed(held_out), ImageEmbedder(modelUri=int8).embed(held_out)
    cosine = _cosine(exact, fast)
    return {"held_out": len(held_out), "top1_agreement": float((exact.argmax(1) == fast.argmax(1)).mean()),
            "accuracy": {"float32": float((exact.argmax(1) == labels[:200]).mean()),
                         "int8": float((fast.argmax(1) == labels[:200]).mean())},
            "cosine": {"median": float(np.median(cosine)), "p01": float(np.percentile(cosine, 1))}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256, help="photos embedded per timed run")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--size", type=int, default=160, help="the network's input size")
    parser.add_argument("--channels", type=int, default=32, help="width of the first stage")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20, help="training epochs of the digits CNN")
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "sparkimg-bench-incremental")
    args = parser.parse_args(argv)
    args.root.mkdir(parents=True, exist_ok=True)
    photos = sorted(str(p) for p in make_photos(args.root, args.images, args.width, args.height).glob("*.jpg"))
    with tempfile.TemporaryDirectory(prefix="bench_quantize-") as scratch:
        result = {"speed": speed(Path(scratch), photos, args.size, args.channels, args.repeats),
                  "agreement": agreement(Path(scratch), args.epochs)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
