"""Person-crop cache: each record's image region, with the margin the augmentation can reach, is cut
once from the decoded image and written to disk; later reads load only that region.

A cached training sample equals the uncached one for the same random draws: the crop affine is the
same, only composed with the translation from the region to the image, and every pixel the warp
samples (bilinear neighbours included) lies inside the region or outside the image (zero in both).
The ``'raw'`` format stores the pixels as they are (exact); ``'jpg'`` stores a JPEG (about ten times
smaller on disk, lossy).

Layout: ``<folder>/<Dataset>_<image_set>_<digest>/<key[:2]>/<key>.crop``, where the digest covers
everything that sets the regions (scale and rotation factors, the crop aspect, the half-body
settings, the format) and ``key`` the record (image path, centre, scale and, with half-body crops,
the joints). Each file is a 40-byte header of ten int32 (magic, format, region x0, y0, height,
width, image width, height, two zeros) followed by the payload. Files are written atomically
(``semipose.common.io``: a temporary name, then a rename), so concurrent DataLoader workers may fill
the cache together.
"""

import hashlib
import json
import logging
import math
import os

import cv2
import numpy as np

from semipose.common.io import atomic_write_bytes, atomic_write_json
from semipose.utils import image_io

__all__ = ["CropCache", "crop_region", "FORMATS"]

logger = logging.getLogger(__name__)

FORMATS = {"raw": 0, "jpg": 1}
_MAGIC = 0x31435053  # b"SPC1" little endian
_VERSION = 1
_HEADER_INTS = 10
_HEADER_BYTES = 4 * _HEADER_INTS
_PAD = 3  # pixels beyond the reachable rectangle: bilinear neighbours and rounding


def crop_region(center, scale, output_size, scale_factor, rotation_factor, pixel_std=200):
    """Integer bounding box of every image point a crop of ``(center, scale)`` can sample.

    The crop is ``200 * scale[0] * k`` pixels wide (``k <= 1 + scale_factor``, the scale jitter)
    and ``output H / output W`` times that high, rotated by at most ``2 * rotation_factor`` degrees
    about ``center`` (a horizontal flip samples the mirror image of the same set about
    ``center``).

    Args:
        center: (2,) crop centre in image pixels.
        scale: (2,) crop scale (unit ``pixel_std`` pixels); only ``scale[0]`` sets the size.
        output_size: output ``(W, H)``.
        scale_factor: scale jitter ``sf``.
        rotation_factor: rotation jitter ``rf`` (degrees).
        pixel_std: pixels per scale unit.

    Returns:
        ``(x0, y0, x1, y1)`` ints, end exclusive, not clipped to the image.
    """
    width = float(scale[0]) * pixel_std * (1.0 + max(float(scale_factor), 0.0))
    height = width * float(output_size[1]) / float(output_size[0])
    t_max = math.radians(min(2.0 * abs(float(rotation_factor)), 90.0))
    angles = [0.0, t_max]
    for t in (math.atan2(height, width), math.atan2(width, height)):
        if t <= t_max:
            angles.append(t)
    half_x = max(width * abs(math.cos(t)) + height * abs(math.sin(t)) for t in angles) / 2
    half_y = max(width * abs(math.sin(t)) + height * abs(math.cos(t)) for t in angles) / 2
    cx, cy = float(center[0]), float(center[1])
    return (
        math.floor(cx - half_x) - _PAD,
        math.floor(cy - half_y) - _PAD,
        math.ceil(cx + half_x) + _PAD + 1,
        math.ceil(cy + half_y) + _PAD + 1,
    )


def _digest(obj, n=12):
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:n]


class CropCache:
    """The cache in one folder; ``load`` returns a record's region (cut and written on a miss).

    Args:
        folder: cache root (created on first write).
        fmt: ``'raw'`` (exact pixels) or ``'jpg'`` (lossy).
        jpeg_quality: quality of the ``'jpg'`` format.
    """

    def __init__(self, folder, fmt="raw", jpeg_quality=95):
        if fmt not in FORMATS:
            raise ValueError(f"crop cache format must be one of {sorted(FORMATS)}, got {fmt!r}")
        self.folder = str(folder)
        self.fmt = fmt
        self.jpeg_quality = int(jpeg_quality)
        self._dirs = {}
        self._dir_params = {}
        self.hits = 0
        self.misses = 0

    # ---------------------------------------------------------------- keys
    @staticmethod
    def _params(dataset):
        return {
            "dataset": type(dataset).__name__,
            "image_set": str(dataset.image_set),
            "scale_factor": float(dataset.scale_factor),
            "rotation_factor": float(dataset.rotation_factor),
            "output_size": [int(v) for v in dataset.image_size],
            "pixel_std": float(dataset.pixel_std),
            "half_body": bool(dataset.half_body_reachable()),
            "num_joints_half_body": int(dataset.num_joints_half_body),
            "data_format": str(dataset.data_format),
        }

    def dataset_dir(self, dataset):
        """The folder of ``dataset``'s regions (named by the dataset, its image set and a digest of
        the parameters that set the regions); writes its ``params.json`` on first use."""
        params = self._params(dataset)
        key = json.dumps(params, sort_keys=True)
        path = self._dirs.get(key)
        if path is None:
            tag = _digest({**params, "fmt": self.fmt, "quality": self.jpeg_quality,
                           "version": _VERSION})  # fmt: skip
            name = f"{params['dataset']}_{params['image_set']}_{tag}"
            path = os.path.join(self.folder, name)
            self._dirs[key] = path
            self._dir_params[path] = {**params, "fmt": self.fmt,
                                      "jpeg_quality": self.jpeg_quality, "version": _VERSION}
        return path

    @staticmethod
    def record_key(rec, with_joints):
        """Digest of the record fields that set its region (image, centre, scale[, joints])."""
        h = hashlib.sha1(str(rec["image"]).encode())
        h.update(np.asarray(rec["center"], np.float64).tobytes())
        h.update(np.asarray(rec["scale"], np.float64).tobytes())
        if with_joints:
            h.update(np.asarray(rec["joints_3d"], np.float64).tobytes())
            h.update(np.asarray(rec["joints_3d_vis"], np.float64).tobytes())
        return h.hexdigest()

    def path(self, dataset, rec):
        """The cache file of ``rec`` (it may not exist yet)."""
        key = self.record_key(rec, dataset.half_body_reachable())
        return os.path.join(self.dataset_dir(dataset), key[:2], key + ".crop")

    # ---------------------------------------------------------------- read / write
    def load(self, dataset, rec):
        """The cached region of ``rec`` (cut from the image and written on a miss).

        Args:
            dataset: the ``JointsDataset`` owning ``rec`` (its ``crop_boxes`` and read settings).
            rec: one record of ``dataset.db``.

        Returns:
            ``(pixels, (x0, y0), (width, height))``: the BGR uint8 region (h, w, 3), its top-left
            corner in image pixels (ints), and the image size.
        """
        path = self.path(dataset, rec)
        entry = self._read(path)
        if entry is not None:
            self.hits += 1
            return entry
        self.misses += 1
        return self._build(dataset, rec, path)

    def _read(self, path):
        try:
            data = np.fromfile(path, dtype=np.uint8)
        except (OSError, ValueError):
            return None
        if data.size < _HEADER_BYTES:
            return self._damaged(path, data.size)
        head = data[:_HEADER_BYTES].view(np.int32)
        magic, fmt, x0, y0, h, w, img_w, img_h = (int(v) for v in head[:8])
        if magic != _MAGIC or fmt != FORMATS[self.fmt]:
            return self._damaged(path, data.size)
        payload = data[_HEADER_BYTES:]
        if fmt == FORMATS["raw"]:
            if payload.size != h * w * 3:
                return self._damaged(path, data.size)
            pixels = payload.reshape(h, w, 3)
        else:
            pixels = cv2.imdecode(payload, cv2.IMREAD_COLOR) if payload.size else None
            if pixels is None or pixels.shape[:2] != (h, w):
                return self._damaged(path, data.size)
        return pixels, (x0, y0), (img_w, img_h)

    @staticmethod
    def _damaged(path, size):
        logger.warning("=> crop cache file %s is damaged (%d bytes); cutting it again", path, size)
        return None

    def _build(self, dataset, rec, path):
        img = image_io.read_image(rec["image"], dataset.read_flags, dataset.data_format)
        img_h, img_w = img.shape[:2]
        boxes = [crop_region(c, s, dataset.image_size, dataset.scale_factor,
                             dataset.rotation_factor, dataset.pixel_std)
                 for c, s in dataset.crop_boxes(rec)]  # fmt: skip
        x0 = max(min(b[0] for b in boxes), 0)
        y0 = max(min(b[1] for b in boxes), 0)
        x1 = min(max(b[2] for b in boxes), img_w)
        y1 = min(max(b[3] for b in boxes), img_h)
        if x1 <= x0 or y1 <= y0:  # the crop never touches the image: one black pixel
            x0, y0, x1, y1 = 0, 0, 1, 1
            region = np.zeros((1, 1, 3), np.uint8)
        else:
            region = np.ascontiguousarray(img[y0:y1, x0:x1])
        if self.fmt == "raw":
            payload = region
        else:
            ok, enc = cv2.imencode(".jpg", region, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if not ok:
                raise ValueError(f"could not encode the crop of {rec['image']} for the cache")
            payload = enc
            region = cv2.imdecode(enc, cv2.IMREAD_COLOR)  # the pixels later reads will see
        head = np.array([_MAGIC, FORMATS[self.fmt], x0, y0, y1 - y0, x1 - x0, img_w, img_h, 0, 0],
                        dtype=np.int32)  # fmt: skip
        self._write(path, head.tobytes() + np.ascontiguousarray(payload).tobytes())
        return region, (x0, y0), (img_w, img_h)

    def _write(self, path, blob):
        """Writes a region file and, once per folder, its ``params.json`` (both atomically, through
        ``semipose.common.io``); a failure is a warning and training goes on uncached."""
        folder = os.path.dirname(path)
        params_file = os.path.join(os.path.dirname(folder), "params.json")
        try:
            atomic_write_bytes(path, blob)
            if not os.path.exists(params_file):
                atomic_write_json(params_file, self._dir_params.get(os.path.dirname(folder), {}),
                                  indent=1)  # fmt: skip
        except OSError as exc:  # a read-only or full disk: train on, uncached
            logger.warning("=> could not write the crop cache file %s: %s", path, exc)
