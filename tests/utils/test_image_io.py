"""Image reading: truncated JPEGs are detected and named once; unreadable files name the path."""

import logging
import zipfile

import cv2
import numpy as np
import pytest

from semipose.common.errors import DataFileError
from semipose.utils import image_io


def _jpeg(progressive=False):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, size=(48, 64, 3), dtype=np.uint8)
    params = [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)]
    ok, buf = cv2.imencode(".jpg", img, params)
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("progressive", [False, True])
def test_is_truncated_jpeg(progressive):
    data = _jpeg(progressive)
    assert not image_io.is_truncated_jpeg(data)
    assert not image_io.is_truncated_jpeg(data + b"\x00" * 16)  # trailing padding is fine
    for cut in (len(data) - 2, len(data) * 2 // 3, len(data) // 3):
        assert image_io.is_truncated_jpeg(data[:cut])
    _, png = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))
    assert not image_io.is_truncated_jpeg(png.tobytes())  # not a JPEG: not judged


def test_truncated_jpeg_warns_once_naming_the_file(tmp_path, caplog):
    """Issue 16 #4: the partial image is used, and the warning names the file once."""
    data = _jpeg()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) * 2 // 3])
    with caplog.at_level(logging.WARNING, logger="semipose.utils.image_io"):
        img = image_io.read_image(str(path))
        again = image_io.read_image(str(path))
    assert img.shape == (48, 64, 3) and np.array_equal(img, again)
    warnings = [r.getMessage() for r in caplog.records if "truncated JPEG" in r.getMessage()]
    assert len(warnings) == 1 and str(path) in warnings[0]
    assert str(path) in image_io.truncated_images()
    good = tmp_path / "good.jpg"
    good.write_bytes(data)
    caplog.clear()
    image_io.read_image(str(good))
    assert not caplog.records and str(good) not in image_io.truncated_images()


def test_truncated_jpeg_inside_a_zip(tmp_path, caplog):
    data = _jpeg()
    archive = tmp_path / "val2017.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("val2017/cut.jpg", data[:-100])
    with caplog.at_level(logging.WARNING, logger="semipose.utils.image_io"):
        image_io.read_image(f"{archive}@/val2017/cut.jpg", data_format="zip")
    assert "val2017.zip@/val2017/cut.jpg" in caplog.text


def test_unreadable_and_missing_images_name_the_path(tmp_path):
    bad = tmp_path / "text.jpg"
    bad.write_text("not an image")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    for path in (bad, empty, tmp_path / "missing.jpg"):
        with pytest.raises(DataFileError, match=path.name):
            image_io.read_image(str(path))
