import random

import numpy as np
import PIL.Image
import pytest

from semipose.dataset import rand_augment as ra
from semipose.dataset.rand_augment import CUTOUT_COLOR, RandAugment


def _img(seed=0, h=40, w=30):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_active_ops_and_values():
    ops = ra.augment_list()
    assert len(ops) == 11
    ranges = {fn.__name__: (lo, hi) for fn, lo, hi in ops}
    assert ranges["_solarize"] == (0, 256) and ranges["_cutout_abs"] == (0, 80)
    assert ranges["_posterize"] == (0, 4) and ranges["_solarize_add"] == (0, 110)


def test_posterize_and_solarize_formulas():
    img = PIL.Image.fromarray(_img())
    # M=20: v = 20/30*4 = 2.67 -> 6 - 2 = 4 bits kept.
    out = np.asarray(ra._posterize(img, 20 / 30 * 4))
    assert np.all(out % 16 == 0)
    # Solarize at M=10: threshold 256 - 85.33; pixels >= 170.67 inverted.
    arr = np.asarray(img)
    out = np.asarray(ra._solarize(img, 10 / 30 * 256))
    np.testing.assert_array_equal(out, np.where(arr >= 256 - 256 / 3, 255 - arr, arr))
    # SolarizeAdd: add, clip, then invert >= 128.
    out = np.asarray(ra._solarize_add(img, 30))
    added = np.clip(arr.astype(int) + 30, 0, 255)
    np.testing.assert_array_equal(out, np.where(added >= 128, 255 - added, added))


def test_enhance_sign():
    img = PIL.Image.fromarray(np.full((4, 4, 3), 100, np.uint8))
    random.seed(0)
    outs = {int(np.asarray(ra._brightness(img, 0.5))[0, 0, 0]) for _ in range(20)}
    assert outs == {50, 150}


def test_cutout_fills_color():
    img = PIL.Image.fromarray(np.zeros((50, 60, 3), np.uint8))
    np.random.seed(0)
    out = np.asarray(ra._cutout_abs(img, 20))
    filled = np.all(out == CUTOUT_COLOR, axis=-1)
    assert 100 <= filled.sum() <= 21 * 21
    assert np.asarray(img).max() == 0  # input untouched


def test_randaugment_bgr_array_and_determinism():
    arr = _img(1)
    aug = RandAugment(2, 20)
    random.seed(4)
    np.random.seed(4)
    a = aug(arr)
    random.seed(4)
    np.random.seed(4)
    b = aug(arr)
    assert isinstance(a, PIL.Image.Image) and a.size == (30, 40) and a.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("m", [0, 10, 30, [5, 15]])
def test_randaugment_magnitudes(m):
    random.seed(1)
    np.random.seed(1)
    out = RandAugment(3, m)(_img(2))
    assert np.asarray(out).shape == (40, 30, 3)
