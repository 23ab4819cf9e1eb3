"""Local images as published: metadata stripped, upright, and their sizes known to the HTML.

A photo straight from a phone carries EXIF (camera serial, time, often GPS), XMP and
comments that can place a person at a house on a night. JPEG, PNG, WebP and GIF files are
rewritten segment by segment, dropping those blocks and keeping the pixels bit for bit; only
a photo whose EXIF orientation turns it is re-encoded (upright), because dropping the EXIF
would otherwise show it on its side. The same input always gives the same bytes.
"""

from __future__ import annotations

import os
import re
import stat
import struct
import warnings
import zlib
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from publisher.config import Config
from publisher.problems import EditorError, Problem

if TYPE_CHECKING:
    from PIL.Image import Image as PillowImage

SUFFIXES = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".gif": "GIF"}
ORIENTATION = 0x0112
_TURNED = {5, 6, 7, 8}  # orientations that swap width and height
_IMG = re.compile(r"<img\b[^>]*>")
_SRC = re.compile(r'\ssrc="(/[^"]*)"')
_sizes: dict[tuple[str, int, int], tuple[int, int] | None] = {}


class BadImage(Exception):
    """An image file Pillow cannot read, or whose structure we cannot walk."""


def is_image(path: str) -> bool:
    """Tell whether a file's suffix (as Path.suffix finds it) names an image format we publish."""
    # By hand, not Path(path).suffix: building a Path took a fifth of sizing an image.
    name = os.path.basename(path)
    dot = name.rfind(".")
    return 0 < dot < len(name) - 1 and name[dot:].lower() in SUFFIXES


def publish_file(path: Path, label: str) -> bytes:
    """Return a content file's bytes as published: images cleaned, anything else as it is."""
    data = path.read_bytes()
    if not is_image(path.name):
        return data
    try:
        return clean(data, SUFFIXES[path.suffix.lower()])
    except BadImage as exc:
        raise EditorError([Problem(label, 1, f"cannot publish this image: {exc}; re-save it as JPEG or PNG")])


def clean(data: bytes, kind: str) -> bytes:
    """Return the image without EXIF, GPS, XMP, IPTC or comments, turned upright."""
    image = _open(data, kind)
    orientation = _orientation(image, data)
    if orientation not in (None, 1):
        data = _upright(image, kind)
    cleaned = {"JPEG": _strip_jpeg, "PNG": _strip_png, "WEBP": _strip_webp, "GIF": _strip_gif}[kind](data)
    _open(cleaned, kind, decode=True)  # what we publish must still be a readable image
    return cleaned


def size(data: bytes) -> tuple[int, int]:
    """Return (width, height) as a browser shows the image, after its EXIF orientation."""
    plain = _plain_png_size(data)
    return plain if plain is not None else _size_by_pillow(data)


def _size_by_pillow(data: bytes) -> tuple[int, int]:
    image = _open(data, None)
    width, height = image.size
    return (height, width) if _orientation(image, data) in _TURNED else (width, height)


def size_of(config: Config, src: str) -> tuple[int, int] | None:
    """Return the displayed size of a site-absolute image path under content/, or None."""
    # Strings and one stat, not Path.resolve() twice, is_file() and stat(): 10,000 images a cold build.
    content = config.content_root
    path = os.path.realpath(os.path.join(content, src.lstrip("/")))
    if not path.startswith(content.rstrip(os.sep) + os.sep) or not is_image(path):
        return None  # outside content/, through a link or '..'
    try:
        info = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    key = (path, info.st_mtime_ns, info.st_size)  # the preview rebuilds often; files rarely change
    if key not in _sizes:
        try:
            with open(path, "rb") as handle:
                _sizes[key] = size(handle.read())
        except (BadImage, OSError):
            _sizes[key] = None
    return _sizes[key]


def local_sources(fragment: str) -> list[str]:
    """Return the site-absolute src of every <img> in an HTML fragment, in order."""
    return [found.group(1) for tag in _IMG.findall(fragment) if (found := _SRC.search(tag))]


def add_sizes(fragment: str, config: Config) -> str:
    """Give every local <img> its width and height, so the page and the email do not jump."""
    def sized(match: re.Match) -> str:
        tag = match.group(0)
        src = _SRC.search(tag)
        if not src or re.search(r"\s(width|height)=", tag):
            return tag
        found = size_of(config, _unquote(src.group(1)))
        if not found:
            return tag
        end = -2 if tag.endswith("/>") else -1
        return f'{tag[:end].rstrip()} width="{found[0]}" height="{found[1]}"{tag[end:]}'
    return _IMG.sub(sized, fragment)


def _unquote(src: str) -> str:
    from html import unescape
    from urllib.parse import unquote, urlsplit

    return unquote(urlsplit(unescape(src)).path)


def _open(data: bytes, kind: str | None, decode: bool = False) -> PillowImage:
    """Open an image (decoding its pixels only when asked); raise BadImage for anything unreadable."""
    # Pillow is imported where it is needed: most builds read no image, and it takes 8 ms to load.
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about damaged EXIF; we drop EXIF anyway
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(BytesIO(data))
            if decode:
                image.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombWarning,
            Image.DecompressionBombError) as exc:
        raise BadImage(f"not a readable image ({_reason(exc)})") from None
    if kind and image.format != kind:
        raise BadImage(f"the file is {image.format or 'not an image'} but its name says {kind}")
    return image


def _reason(exc: Exception) -> str:
    """Describe a Pillow error without the object addresses some of them carry (output must be stable)."""
    return re.sub(r"<[^<>]* at 0x[0-9a-f]+>", "the data", str(exc)) or type(exc).__name__


def _orientation(image: PillowImage, data: bytes) -> int | None:
    from PIL import Image

    # For a PNG, Pillow decodes every pixel to look for EXIF after them (27 ms for a 1600x1000
    # screenshot; a JPEG's takes 0.1 ms). When every chunk that can hold EXIF or XMP comes
    # first, Pillow has read them all on opening, and the plain lookup finds the same.
    read = Image.Image.getexif if image.format == "PNG" and _png_metadata_first(data) else type(image).getexif
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return read(image).get(ORIENTATION)
    except Exception:  # Pillow raises many types for broken EXIF; a broken one turns nothing
        return None


def _upright(image: PillowImage, kind: str) -> bytes:
    """Re-encode an image with its EXIF orientation applied to the pixels."""
    from PIL import ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            turned = ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise BadImage(f"not a readable image ({_reason(exc)})") from None
    out = BytesIO()
    options = {"icc_profile": image.info["icc_profile"]} if image.info.get("icc_profile") else {}
    if kind == "JPEG":
        options |= {"quality": 92}
        if turned.mode not in ("RGB", "L", "CMYK"):
            turned = turned.convert("RGB")
    elif kind == "WEBP":
        options |= {"quality": 92}
    try:
        turned.save(out, kind, **options)
    except (OSError, ValueError, KeyError) as exc:
        raise BadImage(f"cannot turn the image upright ({exc})") from None
    return out.getvalue()


def _strip_jpeg(data: bytes) -> bytes:
    """Keep JFIF, ICC colour and Adobe colour-transform segments; drop every other APPn and COM."""
    if data[:2] != b"\xff\xd8":
        raise BadImage("not a JPEG file")
    out, i, n = bytearray(b"\xff\xd8"), 2, len(data)
    while i + 1 < n:
        if data[i] != 0xFF:
            raise BadImage("damaged JPEG segments")
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker == 0xD9:
            out += b"\xff\xd9"
            return bytes(out)  # anything after the end (a second, EXIF-laden picture) goes too
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            out += data[i:i + 2]
            i += 2
            continue
        if i + 4 > n:
            raise BadImage("damaged JPEG segments")
        end = i + 2 + int.from_bytes(data[i + 2:i + 4], "big")
        segment = data[i:end]
        if _keep_jpeg_segment(marker, segment):
            out += segment
        i = end
        if marker == 0xDA:  # entropy-coded data runs to the next marker that is not a restart
            j = _scan_end(data, i)
            out += data[i:j]
            i = j
    raise BadImage("the JPEG has no end marker")


def _scan_end(data: bytes, start: int) -> int:
    """Return where the entropy-coded data from `start` ends: at the first 0xFF that is not a stuffed
    0xFF00 or a restart marker, or at the last byte. By find(), not byte by byte: 50 ms a photo."""
    end = data.find(b"\xff", start)
    while end != -1 and end + 1 < len(data):
        following = data[end + 1]
        if following != 0 and not 0xD0 <= following <= 0xD7:
            return end
        end = data.find(b"\xff", end + 1)
    return max(start, len(data) - 1)


def _keep_jpeg_segment(marker: int, segment: bytes) -> bool:
    if marker == 0xFE:
        return False  # comment
    if marker == 0xE0:
        return segment[4:9] == b"JFIF\x00"
    if marker == 0xE2:
        return segment[4:16] == b"ICC_PROFILE\x00"
    if marker == 0xEE:
        return segment[4:9] == b"Adobe"
    return not 0xE1 <= marker <= 0xEF


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_METADATA = {b"eXIf", b"tEXt", b"zTXt", b"iTXt"}
_PNG_DROP = {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME", b"dSIG", b"caNv", b"orNt", b"vpAg"}


def _strip_png(data: bytes) -> bytes:
    """Drop text, EXIF and time chunks; keep pixels, palette, transparency and colour chunks."""
    out = bytearray(_PNG_SIGNATURE)
    for kind, start, end in _png_chunks(data):
        if kind not in _PNG_DROP:
            out += data[start:end]
    return bytes(out)


def _png_metadata_first(data: bytes) -> bool:
    """Tell whether no EXIF or text chunk (where XMP and raw EXIF profiles live) follows the pixels."""
    pixels = False
    try:
        for kind, _, _ in _png_chunks(data):
            pixels = pixels or kind == b"IDAT"
            if pixels and kind in _PNG_METADATA:
                return False
    except BadImage:
        return False  # damaged: leave it to Pillow, as before
    return True


# (bit depth, colour type) pairs the PNG specification allows; Pillow opens each of them.
_PNG_DEPTHS = {(1, 0), (2, 0), (4, 0), (8, 0), (16, 0), (8, 2), (16, 2), (1, 3), (2, 3), (4, 3), (8, 3),
               (8, 4), (16, 4), (8, 6), (16, 6)}
# The chunks Pillow reads on opening and can read here: each fails when shorter than this (0:
# never; tRNS depends on the colour type). It skips, after checking their CRC, chunks it has no
# reader for. Any other chunk it reads (iCCP, animation, metadata) leaves the size to Pillow.
_PNG_MINIMUM = {b"PLTE": 0, b"gAMA": 4, b"cHRM": 32, b"sRGB": 1, b"pHYs": 9, b"tRNS": 0}
_PNG_READ_BY_PILLOW = {b"iCCP", b"acTL", b"fcTL", b"fdAT"} | _PNG_METADATA
_CHUNK_TYPE = re.compile(rb"\w{4}\Z")


def _plain_png_size(data: bytes) -> tuple[int, int] | None:
    """Return the size of a PNG that Pillow would open and find unturned, read from its header
    without Pillow (Pillow's opening the file was a third of sizing an image, 0.5 ms an entry); None
    for anything else, which is left to Pillow: other formats, EXIF, XMP or text anywhere, damage,
    animation, colour profiles, and images too large for Pillow's decompression-bomb limit.

    "Unturned": without eXIf, iTXt, tEXt or zTXt chunks Pillow finds no orientation. "Would
    open": what Pillow checks before the pixels holds (its chunk readers, their CRCs, IHDR).
    tests/test_images.py compares this with Pillow on many kinds of PNG.
    """
    from PIL import Image, ImageFile

    if not data.startswith(_PNG_SIGNATURE) or ImageFile.LOAD_TRUNCATED_IMAGES:
        return None
    try:
        chunks = list(_png_chunks(data))
    except BadImage:
        return None
    if not chunks or chunks[0][0] != b"IHDR" or chunks[0][2] - chunks[0][1] != 12 + 13:
        return None
    width, height, depth, colour, compression, method = struct.unpack_from(">IIBBBB", data, 16)
    if (depth, colour) not in _PNG_DEPTHS or compression or method or not width or not height:
        return None
    if Image.MAX_IMAGE_PIXELS and width * height > Image.MAX_IMAGE_PIXELS:
        return None
    if any(kind in _PNG_READ_BY_PILLOW for kind, _, _ in chunks):
        return None
    for kind, start, end in chunks:
        if kind == b"IDAT":
            return width, height
        if not _png_chunk_readable(data, kind, start, end, colour):
            return None
    return None  # no pixels: Pillow's answer, whatever it is


def _png_chunk_readable(data: bytes, kind: bytes, start: int, end: int, colour: int) -> bool:
    """Tell whether Pillow reads this chunk (before the pixels) without error: a valid type and CRC, and long enough."""
    length = end - start - 12
    (crc,) = struct.unpack_from(">I", data, end - 4)
    if not _CHUNK_TYPE.match(kind) or zlib.crc32(data[start + 4:end - 4]) != crc:  # the CRC covers type and data
        return False
    if kind == b"tRNS" and colour in (0, 2):  # grey and RGB transparency are one or three 16-bit values
        return length >= (6 if colour == 2 else 2)
    return length >= _PNG_MINIMUM.get(kind, 0)


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """Yield each chunk's type and where it starts and ends (length, type, data and CRC), up to IEND."""
    if not data.startswith(_PNG_SIGNATURE):
        raise BadImage("not a PNG file")
    i = len(_PNG_SIGNATURE)
    while i + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, i)
        end = i + 12 + length
        if end > len(data):
            raise BadImage("damaged PNG chunks")
        yield kind, i, end
        if kind == b"IEND":
            return
        i = end
    raise BadImage("the PNG has no end chunk")


def _strip_webp(data: bytes) -> bytes:
    """Drop the EXIF and XMP chunks of a WebP file and clear their flags."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise BadImage("not a WebP file")
    chunks, i = [], 12
    while i + 8 <= len(data):
        kind, length = data[i:i + 4], int.from_bytes(data[i + 4:i + 8], "little")
        end = i + 8 + length + (length & 1)
        if end > len(data) + (length & 1):
            raise BadImage("damaged WebP chunks")
        chunk = bytearray(data[i:end])
        if kind == b"VP8X" and len(chunk) > 8:
            chunk[8] &= ~0x0C & 0xFF  # the EXIF and XMP flags
        if kind not in (b"EXIF", b"XMP "):
            chunks.append(bytes(chunk))
        i = end
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + len(body).to_bytes(4, "little") + body


def _strip_gif(data: bytes) -> bytes:
    """Drop comment and application extensions (XMP lives there), keeping the looping one."""
    if data[:6] not in (b"GIF87a", b"GIF89a"):
        raise BadImage("not a GIF file")
    flags = data[10]
    i = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    out = bytearray(data[:i])
    while i < len(data):
        block = data[i]
        if block == 0x3B:
            out += b"\x3b"
            return bytes(out)
        if block == 0x2C:
            local = data[i + 9]
            start, i = i, i + 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0) + 1
            i = _skip_sub_blocks(data, i)
            out += data[start:i]
        elif block == 0x21:
            label, start = data[i + 1], i
            i = _skip_sub_blocks(data, i + 2)
            keep = label not in (0xFE, 0xFF) or (label == 0xFF and data[start + 3:start + 14] in
                                                  (b"NETSCAPE2.0", b"ANIMEXTS1.0"))
            if keep:
                out += data[start:i]
        else:
            raise BadImage("damaged GIF blocks")
    raise BadImage("the GIF has no end")


def _skip_sub_blocks(data: bytes, i: int) -> int:
    while i < len(data) and data[i]:
        i += data[i] + 1
    if i >= len(data):
        raise BadImage("damaged GIF blocks")
    return i + 1
