"""RandAugment on the warped crop (the strong view of ``CONS_RAND_AUG``).

Ported from the original's lib/utils/rand_augment.py (MIT); spec §6.9. Only the active op list is
kept. The crop arrives as a BGR uint8 array; it is wrapped as a PIL image without swapping channels
(PIL takes it for RGB), exactly as the original, so colour ops see the channels in BGR order.
"""

import random

import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageEnhance
import PIL.ImageOps

__all__ = ["RandAugment", "augment_list", "CUTOUT_COLOR"]

CUTOUT_COLOR = (125, 123, 114)


def _auto_contrast(img, _):
    return PIL.ImageOps.autocontrast(img)


def _equalize(img, _):
    return PIL.ImageOps.equalize(img)


def _invert(img, _):
    return PIL.ImageOps.invert(img)


def _posterize(img, v):
    return PIL.ImageOps.posterize(img, max(2, 6 - int(v)))


def _solarize(img, v):
    return PIL.ImageOps.solarize(img, 256 - v)


def _solarize_add(img, v, threshold=128):
    arr = np.asarray(img).astype(np.int64) + int(v)
    img = PIL.Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return PIL.ImageOps.solarize(img, threshold)


def _signed_factor(v):
    return 1.0 + v if random.random() > 0.5 else 1.0 - v


def _color(img, v):
    return PIL.ImageEnhance.Color(img).enhance(_signed_factor(v))


def _contrast(img, v):
    return PIL.ImageEnhance.Contrast(img).enhance(_signed_factor(v))


def _brightness(img, v):
    return PIL.ImageEnhance.Brightness(img).enhance(_signed_factor(v))


def _sharpness(img, v):
    return PIL.ImageEnhance.Sharpness(img).enhance(_signed_factor(v))


def _cutout_abs(img, v):
    """Fills a ``v`` x ``v`` square (clipped to the image) with ``CUTOUT_COLOR``."""
    if v <= 0:
        return img
    w, h = img.size
    # np.random.uniform(w) draws between w and the default high 1.0, as the original.
    cx = np.random.uniform(w)
    cy = np.random.uniform(h)
    x0 = int(max(0, cx - v / 2.0))
    y0 = int(max(0, cy - v / 2.0))
    x1 = min(w, x0 + v)
    y1 = min(h, y0 + v)
    img = img.copy()
    PIL.ImageDraw.Draw(img).rectangle((x0, y0, x1, y1), fill=CUTOUT_COLOR)
    return img


def augment_list():
    """The active ops as ``(fn, min, max)``."""
    return [
        (_auto_contrast, 0, 1),
        (_equalize, 0, 1),
        (_invert, 0, 1),
        (_posterize, 0, 4),
        (_solarize, 0, 256),
        (_solarize_add, 0, 110),
        (_color, 0, 0.9),
        (_contrast, 0, 0.9),
        (_brightness, 0, 0.9),
        (_sharpness, 0, 0.9),
        (_cutout_abs, 0, 80),
    ]


class RandAugment:
    """Applies ``n`` ops drawn with replacement (``random.choices``) at magnitude ``m`` (out of 30).

    Each op's value is ``m / 30 * (max - min) + min``. When ``m`` is a pair, each op draws an
    integer magnitude uniformly from ``[m[0], m[1]]``.

    Args:
        n: ops per image.
        m: magnitude, or a ``[low, high]`` pair.
    """

    def __init__(self, n, m):
        self.n = n
        self.m = m
        self.augment_list = augment_list()

    def __call__(self, img):
        """Augments one crop.

        Args:
            img: (H, W, 3) uint8 array (BGR crop) or a PIL image.

        Returns:
            PIL image (same channel order as the input).
        """
        if not isinstance(img, PIL.Image.Image):
            img = PIL.Image.fromarray(np.ascontiguousarray(img))
        for op, min_val, max_val in random.choices(self.augment_list, k=self.n):
            m = self.m
            if isinstance(m, (list, tuple)):
                m = random.randint(int(m[0]), int(m[1]))
            val = (float(m) / 30) * float(max_val - min_val) + min_val
            img = op(img, val)
        return img

    def __repr__(self):
        return f"{type(self).__name__}(n={self.n}, m={self.m})"
