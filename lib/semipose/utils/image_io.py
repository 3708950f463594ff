"""Reading dataset images from files or zip archives, with truncated JPEGs detected and named.

``cv2.imread`` decodes a truncated JPEG without an error: libjpeg prints "Premature end of JPEG
file" (without the file name) and fills the missing rows with gray; ``cv2.imdecode`` (zip archives)
returns None for the same bytes. ``read_image`` finds such files by their missing end-of-image
marker, logs one warning per file naming it, and returns the partial image in both formats, so one
damaged picture does not stop a training run.
"""

import logging
import threading

import cv2
import numpy as np

from semipose.common.errors import DataFileError
from semipose.utils import zipreader

__all__ = [
    "REDUCED_FLAGS",
    "decode_image",
    "is_truncated_jpeg",
    "jpeg_size",
    "read_bytes",
    "read_image",
    "read_image_reduced",
    "reduction_factor",
    "truncated_images",
]

logger = logging.getLogger(__name__)

_SOI = b"\xff\xd8"  # JPEG start of image
_SOS = b"\xff\xda"  # start of scan: entropy-coded data follows
_EOI = b"\xff\xd9"  # end of image

# cv2 flags that decode a JPEG at 1/2, 1/4 or 1/8 resolution (libjpeg DCT scaling, about 1.5-3x
# faster than a full decode); the colour flag is OR-ed in by ``read_image_reduced``.
REDUCED_FLAGS = {
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}
# JPEG start-of-frame markers (baseline, extended, progressive, lossless, arithmetic variants).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}

_WARNED = set()  # truncated files already reported by this process
_LOCK = threading.Lock()


def is_truncated_jpeg(data):
    """True when ``data`` is a JPEG whose last scan has no end-of-image marker after it.

    Inside entropy-coded data every 0xFF byte is followed by 0x00 or a restart marker, so an
    end-of-image marker after the last start-of-scan exists only when the file is complete (a
    trailing EXIF thumbnail or padding does not matter). Non-JPEG data gives False.

    Args:
        data: the file's bytes (``bytes`` or a uint8 numpy array).
    """
    data = bytes(data) if not isinstance(data, bytes) else data
    if not data.startswith(_SOI):
        return False
    last_scan = data.rfind(_SOS)
    if last_scan < 0:
        return True  # headers only: no image data at all
    return data.find(_EOI, last_scan) < 0


def truncated_images():
    """The truncated JPEG files this process has read so far (a sorted list of paths)."""
    with _LOCK:
        return sorted(_WARNED)


def jpeg_size(data):
    """``(width, height)`` of a JPEG from its frame header, without decoding; None otherwise.

    Args:
        data: the file's bytes (``bytes`` or a uint8 numpy array).

    Returns:
        ``(width, height)`` ints, or None when ``data`` is not a JPEG with a readable frame header.
    """
    data = memoryview(data if isinstance(data, bytes) else bytes(data))
    if bytes(data[:2]) != _SOI:
        return None
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01,) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        length = (data[pos + 2] << 8) | data[pos + 3]
        if marker in _SOF_MARKERS:
            if pos + 9 > end:
                return None
            height = (data[pos + 5] << 8) | data[pos + 6]
            width = (data[pos + 7] << 8) | data[pos + 8]
            return (width, height) if width and height else None
        if marker == 0xDA:  # start of scan before any frame header
            return None
        pos += 2 + length
    return None


def reduction_factor(source_px_per_output_px, max_factor=8):
    """The largest JPEG decode reduction (1, 2, 4 or 8) that keeps at least one decoded pixel per
    output pixel.

    Args:
        source_px_per_output_px: full-resolution image pixels per output pixel along each axis
            (``200 * scale / output width`` for a crop).
        max_factor: the largest reduction allowed.

    Returns:
        1, 2, 4 or 8.
    """
    factor = 1
    for f in (2, 4, 8):
        if f <= max_factor and f <= source_px_per_output_px:
            factor = f
    return factor


def read_bytes(path, data_format="jpg"):
    """The raw bytes of the image at ``path`` as a uint8 numpy array.

    Args:
        path: a file path, or ``<archive>.zip@/<member>`` when ``data_format`` is ``'zip'``.
        data_format: ``'jpg'`` (plain files) or ``'zip'``.

    Raises:
        DataFileError: the file is missing or unreadable (names ``path``).
    """
    try:
        if data_format == "zip":
            return np.frombuffer(zipreader.read(path), dtype=np.uint8)
        return np.fromfile(path, dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise DataFileError(f"failed to read image {path}: {exc}") from exc


def decode_image(data, flags, path):
    """Decodes image bytes; a truncated JPEG is decoded (the missing part gray) with one warning.

    Args:
        data: uint8 numpy array of the file's bytes.
        flags: OpenCV imread flags.
        path: the file's name, for the messages.

    Returns:
        The decoded image (uint8, as ``cv2.imdecode``).

    Raises:
        DataFileError: ``data`` is not a decodable image (names ``path``).
    """
    truncated = is_truncated_jpeg(data)
    if truncated:
        # cv2.imdecode refuses a JPEG without its end marker (cv2.imread decodes what is there);
        # with the marker appended both give the same partial image.
        data = np.concatenate([data, np.frombuffer(_EOI, dtype=np.uint8)])
    img = cv2.imdecode(data, flags) if data.size else None
    if img is None:
        raise DataFileError(
            f"failed to read image {path}: not a decodable image ({data.size} bytes)"
        )
    if truncated:
        with _LOCK:
            first = path not in _WARNED
            _WARNED.add(path)
            count = len(_WARNED)
        if first:
            logger.warning(
                "=> truncated JPEG %s (no end-of-image marker): the missing part is decoded as "
                "gray; %d truncated image(s) read so far by this process",
                path,
                count,
            )
    return img


def read_image(path, flags=cv2.IMREAD_COLOR, data_format="jpg"):
    """Reads and decodes the image at ``path``; a truncated JPEG is decoded with a warning.

    Args:
        path: a file path, or ``<archive>.zip@/<member>`` when ``data_format`` is ``'zip'``.
        flags: OpenCV imread flags.
        data_format: ``'jpg'`` (plain files) or ``'zip'``.

    Returns:
        The decoded image (uint8, as ``cv2.imread``).

    Raises:
        DataFileError: the file is missing, unreadable or not a decodable image (names ``path``).
    """
    return decode_image(read_bytes(path, data_format), flags, path)


def read_image_reduced(path, source_px_per_output_px, flags=cv2.IMREAD_COLOR, data_format="jpg"):
    """Reads a colour image, decoding a JPEG at 1/2, 1/4 or 1/8 resolution when the caller samples
    it at least that coarsely.

    The factor is ``reduction_factor(source_px_per_output_px)``; other formats, and JPEGs whose
    frame header cannot be read, are decoded at full resolution (factor 1). Decoded pixel ``i``
    covers full-resolution pixels ``f*i .. f*i + f - 1``, so its centre is at ``f*i + (f - 1)/2``
    in full-resolution pixel coordinates.

    Args:
        path: a file path, or ``<archive>.zip@/<member>`` when ``data_format`` is ``'zip'``.
        source_px_per_output_px: full-resolution pixels per output pixel of the later warp.
        flags: extra OpenCV imread flags OR-ed into the reduced colour flag (for example
            ``cv2.IMREAD_IGNORE_ORIENTATION``); must include ``cv2.IMREAD_COLOR``.
        data_format: ``'jpg'`` or ``'zip'``.

    Returns:
        ``(img, factor, (width, height))``: the decoded BGR uint8 image, the reduction factor, and
        the full-resolution size.

    Raises:
        DataFileError: the file is missing, unreadable or not decodable (names ``path``).
    """
    data = read_bytes(path, data_format)
    size = jpeg_size(data)
    factor = reduction_factor(source_px_per_output_px) if size is not None else 1
    if factor == 1:
        img = decode_image(data, flags, path)
        return img, 1, (img.shape[1], img.shape[0])
    img = decode_image(data, flags | REDUCED_FLAGS[factor], path)
    return img, factor, size
