"""export_onnx: a torch CNN exported with its preprocessing embeds like torch; contradictions fail."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sparkimg_ml import ImageEmbedder, export_onnx, preprocess


def test_exported_model_carries_its_preprocessing_and_matches_torch(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten())
    path = export_onnx(net, tmp_path / "net.onnx", [12, 10], mean="imagenet", std="imagenet",
                       resize_mode="crop", output_names=["features"])
    rng = np.random.default_rng(1)
    images = []
    for index in range(3):
        image = tmp_path / f"{index}.png"
        Image.fromarray(rng.integers(0, 256, (20 + index, 17, 3), dtype=np.uint8)).save(image)
        images.append(str(image))
    got = ImageEmbedder(modelUri=str(path)).embed(images)
    pixels = preprocess(images, imageSize=[12, 10], layout="CHW", mean="imagenet", std="imagenet", resizeMode="crop")
    with torch.no_grad():
        expected = net(torch.from_numpy(pixels.reshape(-1, 3, 12, 10))).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match=r"resizeMode='pad' contradicts the model .*resizeMode='crop'"):
        ImageEmbedder(modelUri=str(path), resizeMode="pad").embed(images)
    same = ImageEmbedder(modelUri=str(path), mean=[0.485, 0.456, 0.406]).embed(images)
    np.testing.assert_array_equal(same, got)
