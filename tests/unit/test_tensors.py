"""The tensor metadata contract: uint8 tensors normalised here equal the featurizer's float output."""

import io

import numpy as np
import pytest
from PIL import Image

from sparkimg_ml.image import ImageSpec, preprocess_bytes
from sparkimg_ml.tensors import TensorInfo


def _png(seed: int, size=(23, 17), mode="RGB") -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("params", [
    {},
    {"mean": "imagenet", "std": "imagenet"},
    {"color_mode": "BGR", "layout": "CHW", "mean": "imagenet", "std": "imagenet"},
    {"color_mode": "L", "scale": 2.0, "mean": (0.5,), "std": (3.0,)},
    {"color_mode": "RGBA", "layout": "CHW", "resize_mode": "pad", "pad_color": (9, 8, 7)},
])
@pytest.mark.claim("uint8 output normalised with the recorded metadata equals the vector/array output bit for bit")
def test_uint8_pixels_normalised_by_the_metadata_equal_the_float_features_bit_for_bit(params):
    spec = ImageSpec(8, 6, **params)
    raw_spec = spec.replace(scale=1.0, mean=(0.0,), std=(1.0,))
    for seed in range(3):
        data = _png(seed, mode="RGBA" if spec.color_mode == "RGBA" else "RGB")
        pixels = preprocess_bytes(data, raw_spec)
        assert np.array_equal(pixels, np.rint(pixels))  # 8-bit source: whole pixel values
        info = TensorInfo.from_metadata({"tensor": dict(spec.metadata(), dtype="uint8")})
        floats = info.to_float32(pixels.astype(np.uint8).tobytes())
        expected = preprocess_bytes(data, spec).reshape(spec.shape)
        assert floats.dtype == np.float32 and floats.shape == spec.shape
        assert np.array_equal(floats, expected)
        # A block of rows normalises the same way, and images come back as the pixels.
        block = info.to_float32(np.stack([pixels.astype(np.uint8)] * 2))
        assert block.shape == (2,) + spec.shape and np.array_equal(block[1], expected)
        float_info = TensorInfo.from_metadata(spec.metadata())
        back = float_info.to_image(expected)
        assert back.shape[:2] == (8, 6)


def test_float_tensor_turns_back_into_the_rgb_pixels_whatever_the_layout_and_channel_order():
    data = _png(7, size=(6, 8))
    rgb = preprocess_bytes(data, ImageSpec(8, 6, scale=1.0)).reshape(8, 6, 3).astype(np.uint8)
    for params in ({}, {"color_mode": "BGR", "layout": "CHW", "mean": "imagenet", "std": "imagenet"}):
        spec = ImageSpec(8, 6, **params)
        info = TensorInfo.from_metadata({"tensor": spec.metadata()})
        assert np.array_equal(info.to_image(preprocess_bytes(data, spec)), rgb)


def test_metadata_without_a_shape_is_refused_with_what_to_do():
    with pytest.raises(ValueError, match="no tensor shape"):
        TensorInfo.from_metadata({"ml_attr": {"num_attrs": 3}})
    with pytest.raises(ValueError, match="unknown tensor dtype"):
        TensorInfo.from_metadata({"tensor": {"shape": [1], "dtype": "int7"}})
