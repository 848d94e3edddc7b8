"""A generated corpus of image files, one per decoding case, each with its expected result.

Nothing here calls :mod:`sparkimg_ml.image`: every expected array is
computed from the known source pixels with numpy, so the corpus checks the
image layer rather than restating it. ``write_corpus`` writes the files (some
deliberately misnamed: the featurizer must decode by content) and a
``manifest.json`` into a directory; the test modules' ``image_corpus`` fixtures
call it once per module.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

#: Tolerance (in units of 1/255) for JPEG round trips of flat or smooth content.
JPEG_ATOL = 10 / 255


@dataclass(frozen=True)
class Case:
    """One corpus file and what the featurizer must make of it.

    ``params`` are ImageUrlFeaturizer Params by name. Exactly one of
    ``expected`` (flat float32 output) and ``error`` (reason code) is set.
    """

    name: str
    filename: str
    data: bytes
    params: dict[str, Any]
    expected: np.ndarray | None = None
    error: str | None = None
    atol: float = 1e-6
    note: str = ""
    tags: tuple[str, ...] = field(default=())

    def manifest(self) -> dict[str, Any]:
        return {
            "name": self.name, "file": self.filename, "params": self.params, "error": self.error,
            "expected": None if self.expected is None else self.expected.tolist(), "atol": self.atol,
            "note": self.note,
        }


def _encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _flat(pixels: np.ndarray) -> np.ndarray:
    """HWC (or HW) values on the 8-bit scale -> flat float32 in [0, 1]."""
    return (np.asarray(pixels, dtype=np.float64) / 255.0).astype(np.float32).reshape(-1)


def quadrants(width: int, height: int) -> np.ndarray:
    """An upright test picture: red, green / blue, white quadrants (HWC uint8)."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    h2, w2 = height // 2, width // 2
    pixels[:h2, :w2] = (255, 0, 0)
    pixels[:h2, w2:] = (0, 255, 0)
    pixels[h2:, :w2] = (0, 0, 255)
    pixels[h2:, w2:] = (255, 255, 255)
    return pixels


def small_rgb() -> np.ndarray:
    """A 4x6 picture with every pixel different."""
    rng = np.random.default_rng(5)
    return rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)


def _png_chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)


def png_header_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A tiny PNG whose header claims ``width x height`` RGB pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b""))


def jpeg_header_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A small JPEG whose SOF header is patched to claim ``width x height`` pixels."""
    data = bytearray(_encode(Image.new("RGB", (16, 16), (9, 9, 9)), "JPEG"))
    at = data.index(b"\xff\xc0")
    data[at + 5:at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


#: Formats Pillow reads but the featurizer refuses (less hardened decoders), as (format, mode, save options).
REFUSED_PILLOW_FORMATS: list[tuple[str, str, dict[str, Any]]] = [
    ("TGA", "RGB", {}), ("PPM", "RGB", {}), ("PPM", "L", {}), ("PPM", "1", {}), ("SGI", "RGB", {}),
    ("PCX", "RGB", {}), ("XBM", "1", {}), ("ICO", "RGB", {}), ("DDS", "RGB", {}), ("QOI", "RGB", {}),
    ("JPEG2000", "RGB", {}), ("MSP", "1", {}),
]


#: Adobe RGB (1998) primaries, adapted to the D50 white of ICC profiles (rXYZ, gXYZ, bXYZ).
_WIDE_GAMUT_COLORANTS = {b"rXYZ": (0.60974, 0.31111, 0.01947), b"gXYZ": (0.20528, 0.62567, 0.06087),
                         b"bXYZ": (0.14919, 0.06322, 0.74457)}


def wide_gamut_icc_profile() -> bytes:
    """An RGB ICC profile with Adobe-RGB-like (wide gamut) primaries and sRGB's tone curve.

    Built from LittleCMS's own sRGB profile (``ImageCms.createProfile``) by
    rewriting its three colorant tags; the profile ID is cleared, as it is for
    a profile whose checksum was not computed.
    """
    from PIL import ImageCms

    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    data[84:100] = bytes(16)
    (count,) = struct.unpack(">I", data[128:132])
    for index in range(count):
        signature, offset, _ = struct.unpack(">4sII", data[132 + 12 * index:144 + 12 * index])
        if signature in _WIDE_GAMUT_COLORANTS:
            values = [round(v * 65536) for v in _WIDE_GAMUT_COLORANTS[signature]]
            data[offset + 8:offset + 20] = struct.pack(">3i", *values)
    return bytes(data)


def to_srgb_with_imagecms(image: Image.Image, icc: bytes) -> Image.Image:
    """``image`` converted from the ``icc`` profile to sRGB by ``PIL.ImageCms`` directly."""
    from PIL import ImageCms

    source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")


def heic_bytes(image: Image.Image) -> bytes:
    """``image`` encoded as HEIC by pillow-heif (the ``[heif]`` extra)."""
    import pillow_heif

    heif = pillow_heif.from_pillow(image)
    buffer = io.BytesIO()
    heif.save(buffer, quality=95, chroma=444)
    return buffer.getvalue()


def _rgba_pixels() -> np.ndarray:
    pixels = np.zeros((2, 3, 4), dtype=np.uint8)
    pixels[..., :3] = [[(200, 10, 10), (10, 200, 10), (10, 10, 200)], [(250, 250, 0), (0, 0, 0), (90, 90, 90)]]
    pixels[..., 3] = [[255, 128, 0], [64, 255, 0]]
    return pixels


def _over(rgba: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    alpha = rgba[..., 3:4].astype(np.float64) / 255.0
    return rgba[..., :3] * alpha + np.asarray(background, dtype=np.float64) * (1 - alpha)


def build_corpus() -> list[Case]:
    """Every case, with bytes and expected results."""
    cases: list[Case] = []
    native = {"interpolation": "nearest"}
    rgb = small_rgb()

    # -- lossless formats: exact pixels at native size ---------------------------------------
    for fmt, ext, options in (("PNG", "png", {}), ("BMP", "bmp", {}), ("TIFF", "tiff", {}),
                              ("WEBP", "webp", {"lossless": True})):
        cases.append(Case(f"rgb_{ext}", f"rgb_{ext}.{ext}", _encode(Image.fromarray(rgb), fmt, **options),
                          {"imageSize": [4, 6], **native}, expected=_flat(rgb), note=f"8-bit RGB {fmt}"))
    cases.append(Case("png_named_jpg", "really_a_png.jpg", _encode(Image.fromarray(rgb), "PNG"),
                      {"imageSize": [4, 6], **native}, expected=_flat(rgb),
                      note="PNG bytes under a .jpg name: decoded by content"))
    cases.append(Case("bgr_chw", "bgr_chw.png", _encode(Image.fromarray(rgb), "PNG"),
                      {"imageSize": [4, 6], "colorMode": "BGR", "layout": "CHW", **native},
                      expected=_flat(rgb[..., ::-1].transpose(2, 0, 1)), note="BGR channel planes"))

    # -- JPEG: smooth colour blocks survive compression within JPEG_ATOL ----------------------
    blocks = quadrants(32, 16)
    cases.append(Case("rgb_jpeg", "rgb.jpg", _encode(Image.fromarray(blocks), "JPEG", quality=95, subsampling=0),
                      {"imageSize": [4, 8], "interpolation": "box"},
                      expected=_flat(quadrants(8, 4)), atol=JPEG_ATOL))
    frames = [Image.fromarray(blocks), Image.new("RGB", (32, 16), (0, 0, 0))]
    cases.append(Case("mpo", "camera.mpo.jpg",
                      _encode(frames[0], "MPO", save_all=True, append_images=frames[1:], quality=95, subsampling=0),
                      {"imageSize": [4, 8], "interpolation": "box"},
                      expected=_flat(quadrants(8, 4)), atol=JPEG_ATOL, note="multi-picture JPEG: first picture"))

    # -- EXIF orientation -----------------------------------------------------------------------
    upright = quadrants(32, 16)
    for orientation, turn in ((6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270),
                              (3, Image.Transpose.ROTATE_180), (2, Image.Transpose.FLIP_LEFT_RIGHT)):
        exif = Image.Exif()
        exif[0x0112] = orientation
        stored = Image.fromarray(upright).transpose(turn)  # what a sideways camera would store
        cases.append(Case(f"exif_orientation_{orientation}_jpeg", f"exif_{orientation}.jpg",
                          _encode(stored, "JPEG", exif=exif.tobytes(), quality=95, subsampling=0),
                          {"imageSize": [4, 8], "interpolation": "box"}, expected=_flat(quadrants(8, 4)),
                          atol=JPEG_ATOL, note="must come out upright"))
        if orientation == 6:
            cases.append(Case("exif_orientation_6_png", "exif_6.png", _encode(stored, "PNG", exif=exif.tobytes()),
                              {"imageSize": [16, 32], **native}, expected=_flat(upright), note="eXIf chunk"))
            cases.append(Case("exif_ignored", "exif_ignored.png", _encode(stored, "PNG", exif=exif.tobytes()),
                              {"imageSize": [32, 16], "exifTranspose": False, **native},
                              expected=_flat(np.asarray(stored)), note="exifTranspose=False keeps stored pixels"))

    # -- transparency ----------------------------------------------------------------------------
    rgba = _rgba_pixels()
    background = (0, 0, 255)
    cases.append(Case("rgba_over_background", "rgba.png", _encode(Image.fromarray(rgba, "RGBA"), "PNG"),
                      {"imageSize": [2, 3], "background": list(background), **native},
                      expected=_flat(_over(rgba, background)), atol=1 / 255 + 1e-6,
                      note="alpha composited onto background"))
    cases.append(Case("rgba_kept", "rgba_kept.png", _encode(Image.fromarray(rgba, "RGBA"), "PNG"),
                      {"imageSize": [2, 3], "colorMode": "RGBA", **native}, expected=_flat(rgba)))
    gray_alpha = np.stack([np.full((2, 3), 100, np.uint8), rgba[..., 3]], axis=2)
    over_white = gray_alpha[..., 0:1] * (gray_alpha[..., 1:2] / 255.0) + 255 * (1 - gray_alpha[..., 1:2] / 255.0)
    cases.append(Case("gray_alpha", "gray_alpha.png", _encode(Image.fromarray(gray_alpha, "LA"), "PNG"),
                      {"imageSize": [2, 3], "colorMode": "L", **native}, expected=_flat(over_white),
                      atol=1 / 255 + 1e-6, note="LA over the default white background"))
    palette = Image.fromarray(np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8), "P")
    palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    palette.info["transparency"] = 1
    expected_palette = np.array([[(255, 0, 0), background, (0, 0, 255)], [(0, 0, 255), background, (255, 0, 0)]])
    cases.append(Case("palette_transparent", "palette.png", _encode(palette, "PNG", transparency=1),
                      {"imageSize": [2, 3], "background": list(background), **native},
                      expected=_flat(expected_palette), note="palette index 1 is transparent"))

    # -- modes -------------------------------------------------------------------------------------
    gradient = np.linspace(0, 65535, 256).round().astype(np.uint16)[None, :].repeat(2, axis=0)
    gradient[1, :4] = (0x1234, 0x8000, 0x00FF, 0xFFFF)  # Spark keeps the low byte of these
    for fmt, ext in (("PNG", "png"), ("TIFF", "tiff")):
        cases.append(Case(f"gray16_{ext}", f"gray16.{ext}", _encode(Image.fromarray(gradient), fmt),
                          {"imageSize": [2, 256], "colorMode": "L", **native},
                          expected=(gradient / 65535.0).astype(np.float32).reshape(-1), atol=1e-6,
                          note="16-bit: v/65535, spans [0, 1]", tags=("span01",)))
    ints = np.array([[-5, 0, 257, 32768, 65535, 70000]], dtype=np.int32)
    cases.append(Case("int32_tiff", "int32.tiff", _encode(Image.fromarray(ints, "I"), "TIFF"),
                      {"imageSize": [1, 6], "colorMode": "L", **native},
                      expected=(np.clip(ints, 0, 65535) / 65535.0).astype(np.float32).reshape(-1),
                      note="32-bit integers on the 16-bit scale, clipped"))
    floats = np.array([[-0.5, 0.0, 0.25, 1.0, 2.0, np.nan]], dtype=np.float32)
    cases.append(Case("float_tiff", "float.tiff", _encode(Image.fromarray(floats, "F"), "TIFF"),
                      {"imageSize": [1, 6], "colorMode": "L", **native},
                      expected=np.array([0, 0, 0.25, 1, 1, 0], dtype=np.float32),
                      note="float intensities clipped to [0, 1], NaN -> 0"))
    bits = (np.indices((4, 6)).sum(axis=0) % 2).astype(bool)
    cases.append(Case("bilevel", "bilevel.png", _encode(Image.fromarray(bits), "PNG"),
                      {"imageSize": [4, 6], "colorMode": "L", **native}, expected=bits.astype(np.float32).reshape(-1)))
    gray = np.arange(24, dtype=np.uint8).reshape(4, 6) * 10
    cases.append(Case("gray_as_rgb", "gray.png", _encode(Image.fromarray(gray, "L"), "PNG"),
                      {"imageSize": [4, 6], **native}, expected=_flat(np.repeat(gray[..., None], 3, axis=2))))
    smooth = np.kron(np.random.default_rng(7).integers(0, 256, (4, 8, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    cases.append(Case("cmyk_jpeg", "cmyk.jpg", _encode(Image.fromarray(smooth).convert("CMYK"), "JPEG", quality=95),
                      {"imageSize": [4, 8], "interpolation": "box"}, expected=_flat(np.asarray(
                          Image.fromarray(smooth).resize((8, 4), Image.Resampling.BOX))),
                      atol=JPEG_ATOL, note="CMYK must match its RGB twin", tags=("cmyk",)))
    cases.append(Case("cmyk_twin_rgb_jpeg", "cmyk_twin.jpg",
                      _encode(Image.fromarray(smooth), "JPEG", quality=95, subsampling=0),
                      {"imageSize": [4, 8], "interpolation": "box"}, expected=_flat(np.asarray(
                          Image.fromarray(smooth).resize((8, 4), Image.Resampling.BOX))),
                      atol=JPEG_ATOL, tags=("cmyk_twin",)))
    animation = [Image.new("RGB", (6, 4), color) for color in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    cases.append(Case("animated_gif", "animated.gif",
                      _encode(animation[0], "GIF", save_all=True, append_images=animation[1:], duration=50, loop=0),
                      {"imageSize": [4, 6], **native}, expected=_flat(np.asarray(animation[0])),
                      note="first frame"))
    for fmt, ext, options in (("PNG", "apng", {}), ("WEBP", "webp", {"lossless": True})):
        cases.append(Case(f"animated_{ext}", f"animated_{ext}.{ext}",
                          _encode(animation[0], fmt, save_all=True, append_images=animation[1:], duration=50,
                                  **options),
                          {"imageSize": [4, 6], **native}, expected=_flat(np.asarray(animation[0])),
                          note="first frame"))

    # -- colour profiles: a wide-gamut RGB image, as stored and converted to sRGB --------------
    icc = wide_gamut_icc_profile()
    tagged = Image.fromarray(rgb)
    cases.append(Case("wide_gamut_as_stored", "wide_gamut.png", _encode(tagged, "PNG", icc_profile=icc),
                      {"imageSize": [4, 6], **native}, expected=_flat(rgb), note="colorProfile=ignore"))
    cases.append(Case("wide_gamut_to_srgb", "wide_gamut_srgb.png", _encode(tagged, "PNG", icc_profile=icc),
                      {"imageSize": [4, 6], "colorProfile": "srgb", **native},
                      expected=_flat(np.asarray(to_srgb_with_imagecms(tagged, icc))),
                      note="colorProfile=srgb equals ImageCms applied directly"))

    # -- formats web servers and phones send today (lossy: flat quadrants within a tolerance) -----
    lossy_quadrants = Image.fromarray(quadrants(64, 32))
    cases.append(Case("avif", "photo.avif", _encode(lossy_quadrants, "AVIF", quality=90, subsampling="4:4:4"),
                      {"imageSize": [4, 8], "interpolation": "box"}, expected=_flat(quadrants(8, 4)),
                      atol=12 / 255, note="AVIF, decoded by Pillow"))
    cases.append(Case("heic", "IMG_0001.HEIC", heic_bytes(lossy_quadrants),
                      {"imageSize": [4, 8], "interpolation": "box"}, expected=_flat(quadrants(8, 4)),
                      atol=12 / 255, note="HEIC, decoded through the [heif] extra"))

    # -- geometry extremes -------------------------------------------------------------------------
    strip = Image.new("RGB", (5000, 1), (0, 128, 255))
    strip_pad = np.zeros((8, 8, 3))
    strip_pad[4] = (0, 128, 255)  # one centred row: (8 - 1) * 0.5 rounds half to even, to 4
    cases.append(Case("strip_pad", "strip.png", _encode(strip, "PNG"),
                      {"imageSize": [8, 8], "resizeMode": "pad", "padColor": [0, 0, 0]}, expected=_flat(strip_pad),
                      note="1 pixel high strip letterboxed: still one row"))
    tall = np.zeros((8, 8, 3))
    tall[:, 4] = (0, 128, 255)
    cases.append(Case("tall_strip_pad", "tall_strip.png", _encode(strip.transpose(Image.Transpose.TRANSPOSE), "PNG"),
                      {"imageSize": [8, 8], "resizeMode": "pad", "padColor": [0, 0, 0]}, expected=_flat(tall),
                      note="1 pixel wide strip letterboxed: still one column"))
    cases.append(Case("strip_stretch", "strip_stretch.png", _encode(strip, "PNG"), {"imageSize": [8, 8]},
                      expected=_flat(np.tile(np.array([0, 128, 255]), (8, 8, 1))), atol=1 / 255 + 1e-6))
    cases.append(Case("strip_crop", "strip_crop.png", _encode(strip, "PNG"), {"imageSize": [8, 8], "resizeMode": "crop"},
                      expected=_flat(np.tile(np.array([0, 128, 255]), (8, 8, 1))), atol=1 / 255 + 1e-6))

    # -- refused ---------------------------------------------------------------------------------------
    noise = Image.fromarray(np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    jpeg, png = _encode(noise, "JPEG", quality=90), _encode(noise, "PNG")  # mostly pixel data: cuts hit it
    refused = [
        ("truncated_jpeg", "truncated.jpg", jpeg[: len(jpeg) * 6 // 10], "decode", {}),
        ("truncated_png", "truncated.png", png[: len(png) // 2], "decode", {}),
        ("png_header_bomb", "bomb.png", png_header_bomb(), "too_many_pixels", {}),
        ("jpeg_header_bomb", "bomb.jpg", jpeg_header_bomb(), "too_many_pixels", {}),
        ("over_max_pixels", "big.png", png, "too_many_pixels", {"maxPixels": 64 * 64 - 1}),
        ("html_named_jpg", "page.jpg", b"<!DOCTYPE html>\n<html><body>Not found</body></html>", "decode", {}),
        ("svg_named_jpg", "vector.jpg",
         b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"></svg>',
         "unsupported_format", {}),
        ("eps", "figure.eps", _encode(Image.new("RGB", (4, 4)), "EPS"), "unsupported_format", {}),
        ("pdf", "doc.pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "unsupported_format", {}),
        ("empty", "empty.png", b"", "decode", {}),
        *[(f"refused_{fmt.lower()}_{mode}", f"refused_{mode}.{fmt.lower()}",
           _encode(Image.new(mode, (4, 4)), fmt, **options),
           "unsupported_format", {}) for fmt, mode, options in REFUSED_PILLOW_FORMATS],
        ("text", "notes.png", b"just some text, not an image\n" * 4, "decode", {}),
    ]
    for name, filename, data, code, params in refused:
        cases.append(Case(name, filename, data, {"imageSize": [8, 8], **params}, error=code))
    return cases


def write_corpus(directory: Path) -> list[Case]:
    """Write every case's file and ``manifest.json`` into ``directory``; return the cases."""
    directory.mkdir(parents=True, exist_ok=True)
    cases = build_corpus()
    for case in cases:
        (directory / case.filename).write_bytes(case.data)
    (directory / "manifest.json").write_text(json.dumps([case.manifest() for case in cases], indent=1))
    return cases

