"""Published images carry no EXIF, GPS, XMP or comments, stay upright, and have their size in the HTML."""

from __future__ import annotations

from io import BytesIO

import pytest
from lxml import html
from PIL import Image, ImageOps

from publisher.images import clean, size

GPS_IFD, MAKE, ORIENTATION, DATETIME = 0x8825, 0x010F, 0x0112, 0x0132
XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description photoshop:City="Baku" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"/>'
       b'</rdf:RDF></x:xmpmeta>')


def two_colour(width: int = 40, height: int = 20) -> Image.Image:
    """An image whose left half is red and right half blue, so a turn shows."""
    image = Image.new("RGB", (width, height), (200, 0, 0))
    image.paste((0, 0, 200), (width // 2, 0, width, height))
    return image


def exif(orientation: int = 1) -> Image.Exif:
    data = Image.Exif()
    data[MAKE] = "SecretPhone"
    data[DATETIME] = "2023:07:27 23:14:00"
    data[ORIENTATION] = orientation
    gps = data.get_ifd(GPS_IFD)
    gps.update({1: "N", 2: (40.0, 22.0, 30.0), 3: "E", 4: (49.0, 50.0, 10.0)})
    return data


def phone_jpeg(orientation: int = 1) -> bytes:
    out = BytesIO()
    two_colour().save(out, "JPEG", quality=95, exif=exif(orientation), comment=b"taken at Nizami street 12", xmp=XMP)
    return out.getvalue()


def assert_clean(data: bytes) -> None:
    image = Image.open(BytesIO(data))
    assert dict(image.getexif()) == {}
    assert not image.getexif().get_ifd(GPS_IFD)
    for marker in (b"Exif", b"SecretPhone", b"Nizami", b"xmpmeta", b"Baku", b"2023:07:27"):
        assert marker not in data, marker
    assert not {"exif", "comment", "xmp", "XML:com.adobe.xmp"} & image.info.keys()


def test_published_jpeg_has_no_exif_gps_xmp_or_comment(site):
    original = phone_jpeg()
    assert b"SecretPhone" in original and b"Nizami" in original and b"xmpmeta" in original
    site.write("content/images/photo.jpg", original)
    site.entry("2023/raid.md", summary="'A raid.'", body="![Police outside the club](/images/photo.jpg)")
    site.build()
    published = site.tree()["images/photo.jpg"]
    assert_clean(published)
    # The pixels are untouched: the same compressed scan data, not a re-encoding.
    assert Image.open(BytesIO(published)).tobytes() == Image.open(BytesIO(original)).tobytes()


def test_turned_photo_is_published_upright(site):
    original = phone_jpeg(orientation=6)
    site.write("content/images/photo.jpg", original)
    site.entry("2023/raid.md", summary="'A raid.'", body="![Police outside the club](/images/photo.jpg)")
    site.build()
    published = Image.open(BytesIO(site.tree()["images/photo.jpg"]))
    assert_clean(site.tree()["images/photo.jpg"])
    upright = ImageOps.exif_transpose(Image.open(BytesIO(original)))
    assert published.size == upright.size == (20, 40)
    for point in ((10, 5), (10, 35)):
        assert all(abs(a - b) < 40 for a, b in zip(published.getpixel(point), upright.getpixel(point))), point


def test_width_and_height_are_set_on_local_images(site):
    site.write("content/images/photo.jpg", phone_jpeg(orientation=6))
    site.write("content/2023/chart.png", _png(two_colour(30, 12)))
    site.entry("2023/raid.md", summary="'A raid.'", body="![Police](/images/photo.jpg)\n\n![A chart](chart.png)\n\n"
                                                        '<img src="/images/photo.jpg" alt="sized" width="5">')
    site.build()
    page = next(data for path, data in site.tree().items() if path.endswith("raid/index.html"))
    images = {img.get("alt"): img for img in html.fromstring(page).iter("img")}
    assert (images["Police"].get("width"), images["Police"].get("height")) == ("20", "40")
    assert (images["A chart"].get("width"), images["A chart"].get("height")) == ("30", "12")
    assert images["sized"].get("width") == "5" and images["sized"].get("height") is None  # the editor's choice stays


def test_only_images_inside_content_are_sized(site, tmp_path):
    """size_of reads no file outside content/, whether a link or '..' leads there."""
    from publisher.config import load_config
    from publisher.images import size_of

    outside = tmp_path / "outside.png"
    outside.write_bytes(_png(two_colour(8, 4)))
    site.write("content/images/inside.png", _png(two_colour(6, 3)))
    (site.root / "content/images/link.png").symlink_to(outside)
    (site.root / "content/images/folder.png").mkdir()
    config = load_config(site.root)
    assert size_of(config, "/images/inside.png") == (6, 3)
    assert size_of(config, "/images/../images/inside.png") == (6, 3)
    for src in ("/images/link.png", f"/../../{outside.name}", "/images/folder.png", "/images/none.png",
                "/images/inside.png/x.png"):
        assert size_of(config, src) is None, src


def test_png_text_and_exif_chunks_are_dropped_pixels_kept():
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Author", "SecretPerson")
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    out = BytesIO()
    image = Image.new("RGBA", (8, 8), (10, 20, 30, 128))
    image.save(out, "PNG", pnginfo=info, exif=exif())
    cleaned = clean(out.getvalue(), "PNG")
    assert_clean(cleaned)
    assert b"SecretPerson" not in cleaned
    assert Image.open(BytesIO(cleaned)).tobytes() == image.tobytes()


def test_webp_and_gif_metadata_are_dropped():
    out = BytesIO()
    two_colour().save(out, "WEBP", lossless=True, exif=exif(), xmp=XMP)
    assert b"SecretPhone" in out.getvalue()
    assert_clean(clean(out.getvalue(), "WEBP"))
    frames = [two_colour(), two_colour().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    out = BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], loop=0, comment=b"SecretPhone Nizami")
    assert b"SecretPhone" in out.getvalue()
    cleaned = clean(out.getvalue(), "GIF")
    assert_clean(cleaned)
    assert Image.open(BytesIO(cleaned)).n_frames == 2 and Image.open(BytesIO(cleaned)).info.get("loop") == 0


def test_images_are_byte_identical_across_builds(site):
    site.write("content/images/photo.jpg", phone_jpeg(orientation=8))
    site.write("content/images/flat.jpg", phone_jpeg())
    site.build()
    first = site.tree()
    site.build()
    assert site.tree() == first
    assert size(first["images/photo.jpg"]) == (20, 40)


def test_an_unreadable_image_is_an_editor_error(site):
    site.write("content/images/photo.jpg", b"\xff\xd8\xff\xe0 this is not a picture")
    problems = [str(p) for p in site.check()]
    assert problems == ["content/images/photo.jpg:1: cannot publish this image: not a readable image "
                        f"({problems[0].split('(', 1)[1].split(')')[0]}); re-save it as JPEG or PNG"]
    result = site.cli("build", "--now", "2026-11-22T12:00:00Z")
    assert result.returncode == 1 and "content/images/photo.jpg:1: cannot publish this image" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_misnamed_image_is_an_editor_error(site):
    site.write("content/images/photo.png", phone_jpeg())
    assert [str(p) for p in site.check()] == ["content/images/photo.png:1: cannot publish this image: the file is "
                                              "JPEG but its name says PNG; re-save it as JPEG or PNG"]


def test_an_image_too_heavy_for_email_is_a_warning(site):
    site.write("publisher.toml", (site.root / "publisher.toml").read_text() + "\n[lint]\nmax_image_kb = 1\n")
    site.write("content/images/photo.png", _png(Image.effect_noise((64, 64), 100).convert("RGB")))
    site.write("content/images/small.png", _png(two_colour(4, 4)))
    problems = site.check()
    assert [str(p) for p in problems] == [f"content/images/photo.png:1: warning: the image is "
                                          f"{problems[0].message.split()[3]} KB as published, over 1 KB: too heavy "
                                          f"for email on a phone; make it smaller (lint.max_image_kb)"]
    assert int(problems[0].message.split()[3]) > 1


@pytest.mark.parametrize("kind", ["JPEG", "PNG", "WEBP", "GIF"])
def test_clean_is_idempotent(kind):
    out = BytesIO()
    two_colour().save(out, kind)
    once = clean(out.getvalue(), kind)
    assert clean(once, kind) == once


def _png(image: Image.Image) -> bytes:
    out = BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_the_entry_image_has_its_size_on_the_page(site):
    site.write("content/images/photo.jpg", phone_jpeg(orientation=6))
    site.entry("2023/raid.md", summary="'A raid.'", image="/images/photo.jpg", image_alt="Police outside the club")
    site.build()
    page = next(data for path, data in site.tree().items() if path.endswith("raid/index.html"))
    image = next(img for img in html.fromstring(page).iter("img") if img.get("alt") == "Police outside the club")
    assert (image.get("width"), image.get("height")) == ("20", "40")


def _move_chunk_after_pixels(data: bytes, kind: bytes) -> bytes:
    """Return the PNG with its `kind` chunk moved from before the pixels to just before IEND."""
    import struct

    chunks, i = [], 8
    while i < len(data):
        (length,) = struct.unpack(">I", data[i:i + 4])
        chunks.append(data[i:i + 12 + length])
        i += 12 + length
    moved = [c for c in chunks if c[4:8] == kind]
    assert len(moved) == 1 and chunks.index(moved[0]) < next(n for n, c in enumerate(chunks) if c[4:8] == b"IDAT")
    rest = [c for c in chunks if c[4:8] != kind]
    return data[:8] + b"".join(rest[:-1] + moved + rest[-1:])


def _turned_png(where: str) -> bytes:
    from PIL.PngImagePlugin import PngInfo

    out = BytesIO()
    if where.startswith("xmp"):
        info = PngInfo()
        info.add_itxt("XML:com.adobe.xmp", '<x:xmpmeta xmlns:x="adobe:ns:meta/" tiff:Orientation="6"/>')
        two_colour().save(out, "PNG", pnginfo=info)
    else:
        two_colour().save(out, "PNG", exif=exif(6))
    kind = b"iTXt" if where.startswith("xmp") else b"eXIf"
    return _move_chunk_after_pixels(out.getvalue(), kind) if where.endswith("after") else out.getvalue()


@pytest.mark.parametrize("where", ["exif before", "exif after", "xmp before", "xmp after"])
def test_a_png_turned_by_exif_or_xmp_before_or_after_its_pixels(where):
    data = _turned_png(where)
    assert Image.open(BytesIO(data)).getexif().get(ORIENTATION) == 6  # as Pillow reads it, decoding
    assert size(data) == (20, 40)
    assert Image.open(BytesIO(clean(data, "PNG"))).size == (20, 40)


def test_a_png_size_is_read_without_decoding_its_pixels(monkeypatch):
    from PIL import ImageFile

    plain, turned = _png(two_colour()), _turned_png("exif before")

    def refuse(image):
        raise AssertionError("decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    assert size(plain) == (40, 20) and size(turned) == (20, 40)
    monkeypatch.undo()
    # With EXIF after the pixels, only decoding finds it, as Pillow does.
    decoded = []
    original = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda image: decoded.append(1) or original(image))
    assert size(_turned_png("exif after")) == (20, 40) and decoded


def test_the_end_of_a_jpeg_scan_is_found_as_byte_by_byte():
    import random

    from publisher.images import _scan_end

    def byte_by_byte(data: bytes, i: int) -> int:
        j = i
        while j + 1 < len(data) and not (data[j] == 0xFF and data[j + 1] != 0 and not 0xD0 <= data[j + 1] <= 0xD7):
            j += 1
        return j

    chooser = random.Random(8)
    alphabet = [0x00, 0x12, 0xD0, 0xD7, 0xD8, 0xD9, 0xFF, 0xFF, 0xFF]
    for _ in range(1000):
        data = bytes(chooser.choice(alphabet) for _ in range(chooser.randrange(0, 12)))
        for start in range(len(data) + 2):
            assert _scan_end(data, start) == byte_by_byte(data, start), (data, start)


def _chunk(kind: bytes, payload: bytes, crc: int | None = None) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) if crc is None else crc)


def _with_chunks(data: bytes, before_pixels: list[bytes] = (), at_end: list[bytes] = ()) -> bytes:
    """Return the PNG with chunks put in just before its first IDAT and just before IEND."""
    pixels = data.index(b"IDAT") - 4
    end = data.rindex(b"IEND") - 4
    return data[:pixels] + b"".join(before_pixels) + data[pixels:end] + b"".join(at_end) + data[end:]


def _with_header(data: bytes, **changes: int) -> bytes:
    """Return the PNG with IHDR fields changed (and its CRC made right again)."""
    import struct

    fields = dict(zip(("width", "height", "depth", "colour", "compression", "method", "interlace"),
                      struct.unpack(">IIBBBBB", data[16:29])))
    fields.update(changes)
    return data[:8] + _chunk(b"IHDR", struct.pack(">IIBBBBB", *fields.values())) + data[33:]


def _png_kinds() -> dict[str, bytes]:
    """PNGs as Pillow writes them in every mode and with every option, and as other tools and damage leave them."""
    from PIL.PngImagePlugin import PngInfo

    def saved(image, **options):
        out = BytesIO()
        image.save(out, "PNG", **options)
        return out.getvalue()

    rgb = two_colour()
    texts = PngInfo()
    texts.add_text("Comment", "taken at home")
    texts.add_text("Software", "phone", zip=True)
    kinds = {mode: saved(rgb.convert(mode)) for mode in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16")}
    plain = kinds["RGB"]
    kinds |= {
        "P with transparency": saved(rgb.convert("P"), transparency=0),
        "L with transparency": saved(rgb.convert("L"), transparency=3),
        "RGB with transparency": saved(rgb, transparency=(200, 0, 0)),
        "dpi": saved(rgb, dpi=(300, 300)),
        "colour profile": saved(rgb, icc_profile=_srgb_profile()),
        "texts": saved(rgb, pnginfo=texts),
        "exif, not turned": saved(rgb, exif=exif(1)),
        "exif, turned": _turned_png("exif before"),
        "exif after the pixels": _turned_png("exif after"),
        "xmp after the pixels": _turned_png("xmp after"),
        "animated": _animated(rgb),
        "gamma, chromaticity, sRGB, background": _with_chunks(plain, [
            _chunk(b"gAMA", (45455).to_bytes(4, "big")), _chunk(b"cHRM", bytes(32)), _chunk(b"sRGB", b"\0"),
            _chunk(b"bKGD", bytes(6))]),
        "private chunk": _with_chunks(plain, [_chunk(b"prVt", b"anything")]),
        "text after the pixels": _with_chunks(plain, at_end=[_chunk(b"tEXt", b"Comment\0at home")]),
        "short gamma": _with_chunks(plain, [_chunk(b"gAMA", b"\0\0")]),
        "short sRGB": _with_chunks(plain, [_chunk(b"sRGB", b"")]),
        "short pHYs": _with_chunks(plain, [_chunk(b"pHYs", bytes(8))]),
        "short chromaticity": _with_chunks(plain, [_chunk(b"cHRM", bytes(31))]),
        "short RGB transparency": _with_chunks(plain, [_chunk(b"tRNS", bytes(4))]),
        "short grey transparency": _with_chunks(kinds["L"], [_chunk(b"tRNS", b"\0")]),
        "bad ancillary CRC": _with_chunks(plain, [_chunk(b"gAMA", bytes(4), crc=1)]),
        "bad CRC after the pixels": _with_chunks(plain, at_end=[_chunk(b"prVt", b"x", crc=1)]),
        "bad chunk name": _with_chunks(plain, [_chunk(b"g@MA", bytes(4))]),
        "bad IHDR CRC": plain[:29] + b"\0\0\0\0" + plain[33:],
        "long IHDR": plain[:8] + _chunk(b"IHDR", plain[16:29] + b"\0") + plain[33:],
        "interlaced": _with_header(plain, interlace=1),
        "unknown filter method": _with_header(plain, method=1),
        "unknown compression": _with_header(plain, compression=1),
        "unknown depth": _with_header(plain, depth=3),
        "zero width": _with_header(plain, width=0),
        "a decompression bomb": _with_header(plain, width=20000, height=20000),
        "far too large": _with_header(plain, width=100000, height=100000),
        "pixels cut off": plain[:-20],
        "no end": plain[:-12],
        "no pixels": plain[:plain.index(b"IDAT") - 4] + plain[-12:],
        "not a PNG": phone_jpeg(),
    }
    return kinds


def _srgb_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _animated(image) -> bytes:
    out = BytesIO()
    image.save(out, "PNG", save_all=True, append_images=[image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)])
    return out.getvalue()


def _outcome(function, data: bytes):
    from publisher.images import BadImage

    try:
        return function(data)
    except BadImage as exc:
        return f"BadImage: {exc}"


def test_a_png_size_read_from_its_header_is_what_pillow_reads():
    from publisher.images import _plain_png_size, _size_by_pillow

    read_by_header = set()
    for name, data in _png_kinds().items():
        assert _outcome(size, data) == _outcome(_size_by_pillow, data), name
        if _plain_png_size(data) is not None:
            read_by_header.add(name)
    # The common PNGs are read from the header; nothing Pillow reads differently, or cannot open, is.
    assert read_by_header == {"1", "L", "LA", "P", "RGB", "RGBA", "I;16", "P with transparency", "L with transparency",
                              "RGB with transparency", "dpi", "gamma, chromaticity, sRGB, background", "private chunk",
                              "bad CRC after the pixels", "interlaced"}


def test_an_image_is_told_by_its_suffix_as_pathlib_finds_it():
    from pathlib import Path

    from publisher.images import SUFFIXES, is_image

    names = ["a.png", "a.PNG", "a.jpeg", "a.Jpg", "x/y/b.webp", "c.gif", "d.svg", "e.png.txt", "f.txt.png", ".png",
             "..png", "g.", "h", "i..png", "/abs/j.png", "k.tar.gz", "dir.png/l", "m.jpg ", ".hidden.gif"]
    for name in names:
        assert is_image(name) == (Path(name).suffix.lower() in SUFFIXES), name
    assert sum(map(is_image, names)) == 11
