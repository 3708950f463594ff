"""Reading images stored inside zip archives, addressed as ``<archive>.zip@/<member>``.

Ported from the original's lib/utils/zipreader.py (MIT). Open archives are cached per process (the
cache is keyed on ``os.getpid()``), so a handle opened in the parent is never reused by a forked
DataLoader worker.
"""

import logging
import os
import threading
import zipfile

import cv2
import numpy as np

__all__ = ["parse_zip_path", "read", "imread"]

logger = logging.getLogger(__name__)

_CACHE = {}  # (pid, archive path) -> zipfile.ZipFile
_LOCK = threading.Lock()


def parse_zip_path(path):
    """Splits ``<archive>@/<member>`` into ``(archive, member)``.

    Args:
        path: e.g. ``data/coco/images/train2017.zip@/train2017/000000000009.jpg``.

    Returns:
        ``(archive_path, member_name)``.

    Raises:
        ValueError: when ``path`` has no ``'@'`` or no member after it.
    """
    pos = path.find("@")
    if pos < 0:
        raise ValueError(f"not a zip path (expected '<archive>.zip@/<member>'): {path}")
    archive = path[:pos]
    member = path[pos + 1 :].lstrip("/")
    if not member:
        raise ValueError(f"zip path names no member after '@': {path}")
    return archive, member


def _archive(archive, path):
    key = (os.getpid(), archive)
    handle = _CACHE.get(key)
    if handle is not None:
        return handle
    with _LOCK:
        handle = _CACHE.get(key)
        if handle is None:
            if not os.path.isfile(archive):
                raise FileNotFoundError(f"zip archive {archive} not found (reading {path})")
            # Drop handles inherited from another process (after fork) before opening ours.
            for stale in [k for k in _CACHE if k[0] != key[0]]:
                _CACHE.pop(stale, None)
            handle = zipfile.ZipFile(archive, "r")
            _CACHE[key] = handle
    return handle


def read(path):
    """Returns the raw bytes of the member addressed by ``path`` (``<archive>@/<member>``)."""
    archive, member = parse_zip_path(path)
    handle = _archive(archive, path)
    try:
        return handle.read(member)
    except KeyError:
        raise FileNotFoundError(
            f"member {member!r} not in zip archive {archive} (reading {path})"
        ) from None


def imread(path, flags=cv2.IMREAD_COLOR):
    """Decodes the image at ``<archive>@/<member>`` with ``cv2.imdecode``.

    Args:
        path: the zip path.
        flags: OpenCV imread flags.

    Returns:
        The decoded image (``None`` when the bytes are not a decodable image, as ``cv2.imread``).
    """
    data = read(path)
    return cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
