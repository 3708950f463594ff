import os
import zipfile

import cv2
import numpy as np
import pytest

from semipose.utils import zipreader


@pytest.fixture
def archive(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), img)
    zpath = tmp_path / "imgs.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.write(path, "imgs/a.png")
    return str(zpath), img


def test_same_pixels(archive):
    zpath, img = archive
    out = zipreader.imread(f"{zpath}@/imgs/a.png", cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(out, img)
    assert (os.getpid(), zpath) in zipreader._CACHE
    out2 = zipreader.imread(f"{zpath}@/imgs/a.png")
    np.testing.assert_array_equal(out2, img)


def test_parse():
    assert zipreader.parse_zip_path("d/x.zip@/x/1.jpg") == ("d/x.zip", "x/1.jpg")
    with pytest.raises(ValueError, match="d/x.jpg"):
        zipreader.parse_zip_path("d/x.jpg")


def test_errors_name_path(archive, tmp_path):
    zpath, _ = archive
    with pytest.raises(FileNotFoundError, match="nope.zip"):
        zipreader.imread(f"{tmp_path}/nope.zip@/imgs/a.png")
    with pytest.raises(FileNotFoundError, match="imgs/b.png"):
        zipreader.imread(f"{zpath}@/imgs/b.png")
