"""Proof that the libspng fast path is taken where the ``[fast]`` extra is installed.

The parity tests in ``test_png_fast_path.py`` compare the fast path with Pillow;
if libspng failed to load they would compare Pillow with Pillow and still pass.
These tests fail instead when ``pyspng`` is installed but the fast path is not
taken, and say why the fast path is off when it is.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sparkimg_ml.image import ImageSpec, preprocess_bytes
from sparkimg_ml.image import png as _png

PYSPNG_INSTALLED = importlib.util.find_spec("pyspng") is not None
needs_pyspng = pytest.mark.skipif(not PYSPNG_INSTALLED, reason="pyspng (the [fast] extra) is not installed")

RNG = np.random.default_rng(5)


def _png_bytes(mode: str, size: tuple[int, int]) -> bytes:
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    pixels = RNG.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels, mode).save(buffer, "PNG")
    return buffer.getvalue()


@needs_pyspng
def test_the_fast_path_loads_where_pyspng_is_installed():
    assert _png.available(), _png.unavailable_reason()
    assert _png.unavailable_reason() is None


@needs_pyspng
def test_a_parity_run_decodes_every_plain_png_through_libspng(monkeypatch):
    decoded = []
    real_decode = _png._decode

    def counting_decode(data: bytes, size: int) -> np.ndarray | None:
        pixels = real_decode(data, size)
        decoded.append(pixels is not None)
        return pixels

    monkeypatch.setattr(_png, "_decode", counting_decode)
    plain = [_png_bytes(mode, (31 + i, 17 + i)) for i in range(3) for mode in ("L", "RGB", "RGBA")]
    specs = [ImageSpec(8, 8), ImageSpec(5, 9, color_mode="BGR", layout="CHW", resize_mode="pad"),
             ImageSpec(6, 6, color_mode="L", resize_mode="crop", interpolation="lanczos")]
    for data in plain:
        expected_image = Image.open(io.BytesIO(data))
        for spec in specs:
            fast = preprocess_bytes(data, spec)
            with monkeypatch.context() as patch:
                patch.setattr(_png, "_LIBSPNG", None)
                slow = preprocess_bytes(data, spec)
            np.testing.assert_array_equal(fast, slow)
        assert expected_image.mode in ("L", "RGB", "RGBA")
    # One libspng decode per (image, spec) on the fast side, none on the Pillow side, none refused.
    assert decoded == [True] * (len(plain) * len(specs)), (
        f"{decoded.count(True)} of {len(plain) * len(specs)} plain PNGs went through libspng; "
        f"fast path reason: {_png.unavailable_reason()}")


def _load_from(monkeypatch: pytest.MonkeyPatch, folder: Path | None) -> tuple[object, str | None]:
    """What ``_load_libspng`` makes of a ``pyspng`` package in ``folder`` (None: no such package)."""
    def find_spec(name: str, *args: object) -> importlib.machinery.ModuleSpec | None:
        assert name == "pyspng"
        if folder is None:
            return None
        spec = importlib.machinery.ModuleSpec("pyspng", None, is_package=True)
        spec.submodule_search_locations = [str(folder)]
        return spec

    with monkeypatch.context() as patch:
        patch.setattr(importlib.util, "find_spec", find_spec)
        return _png._load_libspng()


def test_a_missing_pyspng_is_reported_as_not_installed(monkeypatch):
    assert _load_from(monkeypatch, None) == (None, "pyspng (the [fast] extra) is not installed")


def test_a_pyspng_without_its_extension_module_is_reported(monkeypatch, tmp_path):
    (tmp_path / "__init__.py").write_text("")
    lib, reason = _load_from(monkeypatch, tmp_path)
    assert lib is None
    assert reason == f"pyspng is installed at {tmp_path} but has no _pyspng_c extension module"


def test_an_unloadable_extension_module_is_reported_with_the_loader_error(monkeypatch, tmp_path):
    (tmp_path / "_pyspng_c.cpython-311-x86_64-linux-gnu.so").write_bytes(b"not a shared object")
    lib, reason = _load_from(monkeypatch, tmp_path)
    assert lib is None and reason is not None
    assert reason.startswith("pyspng is installed but libspng could not be loaded from it "
                             "(_pyspng_c.cpython-311-x86_64-linux-gnu.so: OSError: ")


def test_an_extension_module_without_libspngs_api_is_reported(monkeypatch, tmp_path):
    # A real shared object that is not libspng: the extension module behind ctypes itself.
    import _ctypes

    (tmp_path / "_pyspng_c.so").symlink_to(_ctypes.__file__)
    lib, reason = _load_from(monkeypatch, tmp_path)
    assert lib is None and reason is not None
    assert "_pyspng_c.so: AttributeError: " in reason and "spng_ctx_new" in reason


def test_an_installed_but_unusable_pyspng_warns_once_at_import(monkeypatch, tmp_path):
    (tmp_path / "_pyspng_c.so").write_bytes(b"broken")
    with monkeypatch.context() as patch:
        spec = importlib.machinery.ModuleSpec("pyspng", None, is_package=True)
        spec.submodule_search_locations = [str(tmp_path)]
        real_find_spec = importlib.util.find_spec
        patch.setattr(importlib.util, "find_spec",
                      lambda name, *a: spec if name == "pyspng" else real_find_spec(name, *a))
        module_spec = importlib.util.spec_from_file_location("png_copy", _png.__file__)
        assert module_spec is not None and module_spec.loader is not None
        copy = importlib.util.module_from_spec(module_spec)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            module_spec.loader.exec_module(copy)
    assert not copy.available()
    assert [str(w.message) for w in caught] == [f"the libspng PNG fast path is off: {copy.unavailable_reason()}"]
    assert caught[0].category is RuntimeWarning
