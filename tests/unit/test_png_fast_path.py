"""The libspng fast path for plain PNGs: taken only where it cannot change a result."""

from __future__ import annotations

import ctypes
import io
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from image_corpus import wide_gamut_icc_profile
from PIL import Image, ImageOps, PngImagePlugin

from sparkimg_ml.errors import SourceError
from sparkimg_ml.image import ImageSpec, preprocess_bytes
from sparkimg_ml.image import png as _png

RNG = np.random.default_rng(11)


def _png_bytes(image: Image.Image, **save_args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **save_args)
    return buffer.getvalue()


def _noise(mode: str, size=(37, 23)) -> Image.Image:
    channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
    pixels = RNG.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels, mode)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _insert_after_ihdr(png: bytes, chunk: bytes) -> bytes:
    return png[:33] + chunk + png[33:]


def _with_exif_orientation(image: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _png_bytes(image, exif=exif.tobytes())


PLAIN = {mode: _png_bytes(_noise(mode)) for mode in ("L", "RGB", "RGBA")}
NOT_PLAIN = {
    "gray+alpha": _png_bytes(_noise("LA")),
    "palette": _png_bytes(_noise("RGB").convert("P", palette=Image.Palette.ADAPTIVE)),
    "16-bit gray": _png_bytes(Image.fromarray(RNG.integers(0, 65536, (9, 7), dtype=np.uint16))),
    "1-bit": _png_bytes(_noise("L").convert("1")),
    "transparency key": _png_bytes(_noise("RGB"), transparency=(1, 2, 3)),
    "exif orientation": _with_exif_orientation(_noise("RGB"), 6),
    "animated": _png_bytes(_noise("RGB"), save_all=True, append_images=[_noise("RGB")]),
    "exif in a text chunk": _insert_after_ihdr(
        PLAIN["RGB"], _chunk(b"tEXt", b"Raw profile type exif\x00\nexif\n 0\n")),
    "interlaced flag": PLAIN["RGB"][:8] + _chunk(b"IHDR", PLAIN["RGB"][16:28] + b"\x01") + PLAIN["RGB"][33:],
    "bad text-chunk checksum": _insert_after_ihdr(PLAIN["RGB"], _chunk(b"tEXt", b"note\x00hi")[:-1] + b"\x00"),
    "truncated": PLAIN["RGB"][: len(PLAIN["RGB"]) // 2],
    "not a PNG": b"GIF89a" + bytes(40),
}

SPECS = [
    ImageSpec(8, 8),
    ImageSpec(5, 9, color_mode="BGR", layout="CHW", resize_mode="pad", pad_color=(9, 99, 199)),
    ImageSpec(6, 6, color_mode="L", resize_mode="crop", interpolation="lanczos"),
    ImageSpec(7, 4, color_mode="RGBA", mean="imagenet", std="imagenet"),
    ImageSpec(64, 48, interpolation="nearest", background=(255, 0, 128)),
]


def _without_fast_path(monkeypatch, data: bytes, spec: ImageSpec):
    with monkeypatch.context() as patch:
        patch.setattr(_png, "_LIBSPNG", None)
        return _outcome(data, spec)


def _outcome(data: bytes, spec: ImageSpec):
    try:
        return preprocess_bytes(data, spec)
    except SourceError as error:
        return error.reason


def test_plain_png_modes_are_recognised_and_the_rest_is_left_to_pillow():
    assert {mode: _png.plain_png_mode(data) for mode, data in PLAIN.items()} == {m: m for m in PLAIN}
    assert {name: _png.plain_png_mode(data) for name, data in NOT_PLAIN.items()} == {n: None for n in NOT_PLAIN}


@pytest.mark.parametrize("name", sorted(PLAIN) + sorted(NOT_PLAIN))
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.height}x{s.width}-{s.color_mode}-{s.resize_mode}")
def test_results_and_errors_do_not_depend_on_the_fast_path(monkeypatch, name, spec):
    data = PLAIN.get(name, NOT_PLAIN.get(name))
    with_fast, without = _outcome(data, spec), _without_fast_path(monkeypatch, data, spec)
    if isinstance(without, str):
        assert with_fast == without
    else:
        np.testing.assert_array_equal(with_fast, without)


@pytest.mark.skipif(not _png.available(), reason=f"the libspng fast path is off: {_png.unavailable_reason()}")
def test_plain_pngs_are_decoded_by_libspng_to_pillows_pixels():
    for mode, data in PLAIN.items():
        fast = _png.decode_plain_png(data, max_pixels=10**9)
        assert fast is not None and fast.mode == mode
        np.testing.assert_array_equal(np.asarray(fast), np.asarray(Image.open(io.BytesIO(data))))


@pytest.mark.skipif(not _png.available(), reason=f"the libspng fast path is off: {_png.unavailable_reason()}")
def test_libspng_runs_without_the_gil_and_threads_decode_independently():
    # ctypes.CDLL (unlike PyDLL) releases the GIL for each call, so a task's fetch
    # threads keep running while one of them decodes a PNG.
    assert isinstance(_png._LIBSPNG, ctypes.CDLL) and not isinstance(_png._LIBSPNG, ctypes.PyDLL)
    images = [_noise(mode, size=(64 + i, 48)) for i in range(4) for mode in ("L", "RGB", "RGBA")]
    encoded = [_png_bytes(image) for image in images]
    with ThreadPoolExecutor(4) as pool:
        decoded = list(pool.map(lambda data: _png.decode_plain_png(data, 10**9), encoded * 3))
    for image, fast in zip(images * 3, decoded):
        np.testing.assert_array_equal(np.asarray(fast), np.asarray(image))


@pytest.mark.skipif(not _png.available(), reason=f"the libspng fast path is off: {_png.unavailable_reason()}")
def test_limits_and_libspng_failures_fall_back_to_pillow(monkeypatch):
    data = PLAIN["RGB"]
    assert _png.decode_plain_png(data, max_pixels=37 * 23 - 1) is None
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert _png.decode_plain_png(data, max_pixels=10**9) is None
    monkeypatch.undo()
    # Damaged pixel data under a valid chunk checksum: libspng refuses, Pillow reports it.
    start = data.index(b"IDAT") - 4
    length = struct.unpack(">I", data[start:start + 4])[0]
    body = bytes(b ^ 0x5A for b in data[start + 8:start + 8 + length])
    damaged = data[:start] + _chunk(b"IDAT", body) + data[start + 12 + length:]
    assert _png.plain_png_mode(damaged) == "RGB"
    assert _png.decode_plain_png(damaged, max_pixels=10**9) is None
    with pytest.raises(SourceError, match="^decode"):
        preprocess_bytes(damaged, ImageSpec(4, 4))
    with pytest.raises(SourceError, match="^too_many_pixels"):
        preprocess_bytes(data, ImageSpec(4, 4, max_pixels=100))


# --------------------------------------------------------------------------- every ancillary chunk

def _text(kind: bytes, keyword: bytes, text: bytes, compressed: bool = False) -> bytes:
    if kind == b"tEXt":
        return _chunk(kind, keyword + b"\0" + text)
    if kind == b"zTXt":
        return _chunk(kind, keyword + b"\0\0" + zlib.compress(text))
    return _chunk(kind, keyword + b"\0" + (b"\1\0" if compressed else b"\0\0") + b"\0\0"
                  + (zlib.compress(text) if compressed else text))


def _xmp(orientation: int) -> bytes:
    return (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="'
            + str(orientation).encode() + b'"/></rdf:RDF></x:xmpmeta>')


def _before_iend(png: bytes, chunk: bytes) -> bytes:
    return png[:-12] + chunk + png[-12:]


#: Larger than anything Pillow inflates from one text chunk (read, never changed).
_OVERSIZED = PngImagePlugin.MAX_TEXT_CHUNK + 1

#: One ancillary chunk (or a few) per entry, inserted after IHDR unless the name says otherwise.
ANCILLARY = {
    "tEXt": _text(b"tEXt", b"Comment", b"made by hand"),
    "zTXt": _text(b"zTXt", b"Comment", b"compressed words " * 50),
    "iTXt": _text(b"iTXt", b"Title", "h\u00e9llo".encode()),
    "iTXt compressed": _text(b"iTXt", b"Description", b"words " * 300, compressed=True),
    "iTXt XMP orientation 6": _text(b"iTXt", b"XML:com.adobe.xmp", _xmp(6)),
    "iTXt XMP orientation 3 compressed": _text(b"iTXt", b"XML:com.adobe.xmp", _xmp(3), compressed=True),
    "tEXt XMP orientation 8": _text(b"tEXt", b"XML:com.adobe.xmp", _xmp(8)),
    "zTXt XMP orientation 5": _text(b"zTXt", b"XML:com.adobe.xmp", _xmp(5)),
    "eXIf": b"eXIf",  # built per image below (needs the EXIF bytes)
    "tEXt exif": b"tEXt exif",
    "gAMA": _chunk(b"gAMA", struct.pack(">I", 100000)),
    "cHRM": _chunk(b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000)),
    "sRGB": _chunk(b"sRGB", b"\0"),
    "iCCP wide gamut": b"iCCP",  # built lazily (needs ImageCms)
    "sBIT": b"sBIT",  # depends on the channel count
    "pHYs": _chunk(b"pHYs", struct.pack(">IIB", 3780, 3780, 1)),
    "tIME": _chunk(b"tIME", struct.pack(">HBBBBB", 2024, 5, 6, 7, 8, 9)),
    "bKGD": b"bKGD",
    "private chunk": _chunk(b"prVt", b"anything"),
    "cICP": _chunk(b"cICP", bytes([9, 16, 0, 1])),
    "zTXt oversized": _chunk(b"zTXt", b"Comment\0\0" + zlib.compress(bytes(_OVERSIZED))),
    "iTXt oversized XMP": _chunk(b"iTXt", b"XML:com.adobe.xmp\0\1\0\0\0" + zlib.compress(b" " * _OVERSIZED)),
    "zTXt unknown compression": _chunk(b"zTXt", b"Comment\0\7" + b"not zlib"),
    "text over the total": b"".join(_chunk(b"zTXt", b"k%d\0\0" % i + zlib.compress(bytes(_OVERSIZED - 1)))
                                    for i in range(PngImagePlugin.MAX_TEXT_MEMORY // (_OVERSIZED - 1) + 1)),
    "zTXt oversized after IDAT": b"after",
}


def _with_ancillary(name: str, image: Image.Image) -> bytes:
    png = _png_bytes(image)
    channels = len(image.getbands())
    chunk = ANCILLARY[name]
    if name == "eXIf":
        exif = Image.Exif()
        exif[0x0112] = 6
        chunk = _chunk(b"eXIf", exif.tobytes())
    elif name == "tEXt exif":
        exif = Image.Exif()
        exif[0x0112] = 8
        chunk = _chunk(b"tEXt", b"exif\0" + b"Exif\0\0" + exif.tobytes())
    elif name == "iCCP wide gamut":
        chunk = _chunk(b"iCCP", b"wide\0\0" + zlib.compress(wide_gamut_icc_profile()))
    elif name == "sBIT":
        chunk = _chunk(b"sBIT", bytes([5] * channels))
    elif name == "bKGD":
        chunk = _chunk(b"bKGD", struct.pack(">H", 9) if channels < 3 else struct.pack(">HHH", 9, 99, 199))
    elif name == "zTXt oversized after IDAT":
        return _before_iend(png, ANCILLARY["zTXt oversized"])
    return _insert_after_ihdr(png, chunk)


ANCILLARY_SPECS = [
    ImageSpec(9, 7, interpolation="nearest"),
    ImageSpec(6, 6, color_mode="BGR", resize_mode="pad", exif_transpose=False, layout="CHW"),
    ImageSpec(5, 8, color_mode="RGBA", resize_mode="crop", color_profile="srgb", interpolation="lanczos"),
]


@pytest.mark.parametrize("chunk", sorted(ANCILLARY))
def test_every_ancillary_chunk_gives_the_same_result_with_and_without_libspng(monkeypatch, chunk):
    limits = (PngImagePlugin.MAX_TEXT_CHUNK, PngImagePlugin.MAX_TEXT_MEMORY)
    heavy = chunk == "text over the total"  # inflates 64 MiB per decode: one mode and spec are enough
    for mode in ("RGB",) if heavy else ("L", "RGB", "RGBA"):
        data = _with_ancillary(chunk, _noise(mode, size=(13, 9)))
        for spec in ANCILLARY_SPECS[:1] if heavy else ANCILLARY_SPECS:
            with_fast, without = _outcome(data, spec), _without_fast_path(monkeypatch, data, spec)
            # Text and metadata carry no pixels: every one of these PNGs reads, on both paths.
            assert not isinstance(without, str), (chunk, mode, without)
            np.testing.assert_array_equal(with_fast, without, err_msg=f"{chunk} {mode} {spec}")
    assert (PngImagePlugin.MAX_TEXT_CHUNK, PngImagePlugin.MAX_TEXT_MEMORY) == limits


@pytest.mark.parametrize(("chunk", "orientation"), [
    ("iTXt XMP orientation 6", 6), ("iTXt XMP orientation 3 compressed", 3), ("tEXt XMP orientation 8", 8),
    ("zTXt XMP orientation 5", 5), ("eXIf", 6), ("tEXt exif", 8)])
def test_orientation_in_xmp_or_exif_text_turns_the_png_upright_on_both_paths(monkeypatch, chunk, orientation):
    stored = _noise("RGB", size=(13, 9))
    data = _with_ancillary(chunk, stored)
    assert _png.plain_png_mode(data) is None
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    assert upright.size == ((9, 13) if orientation in (5, 6, 7, 8) else (13, 9))
    spec = ImageSpec(upright.height, upright.width, interpolation="nearest", scale=1.0)
    expected = np.asarray(upright, dtype=np.float32).reshape(-1)
    np.testing.assert_array_equal(_outcome(data, spec), expected)
    np.testing.assert_array_equal(_without_fast_path(monkeypatch, data, spec), expected)


def test_unreadable_text_is_dropped_only_from_a_copy_and_damaged_chunks_stay():
    base = PLAIN["RGB"]
    oversized = _insert_after_ihdr(base, ANCILLARY["zTXt oversized"])
    assert _png.without_unreadable_metadata(base) is base
    assert _png.without_unreadable_metadata(oversized) == base
    damaged = oversized[:40] + bytes([oversized[40] ^ 1]) + oversized[41:]  # inside the zTXt body
    assert _png.without_unreadable_metadata(damaged) is damaged
    with pytest.raises(SourceError, match="^decode"):
        preprocess_bytes(damaged, ImageSpec(4, 4))


def test_an_embedded_profile_sends_the_png_to_pillow_only_when_profiles_are_converted():
    data = _with_ancillary("iCCP wide gamut", _noise("RGB"))
    assert _png.plain_png_mode(data) == "RGB"
    assert _png.plain_png_mode(data, color_managed=True) is None
