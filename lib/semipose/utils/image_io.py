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

__all__ = ["is_truncated_jpeg", "read_image", "truncated_images"]

logger = logging.getLogger(__name__)

_SOI = b"\xff\xd8"  # JPEG start of image
_SOS = b"\xff\xda"  # start of scan: entropy-coded data follows
_EOI = b"\xff\xd9"  # end of image

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
    try:
        if data_format == "zip":
            data = np.frombuffer(zipreader.read(path), dtype=np.uint8)
        else:
            data = np.fromfile(path, dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise DataFileError(f"failed to read image {path}: {exc}") from exc
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
