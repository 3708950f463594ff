"""Zip archives as unlabeled sources of the custom set (``DATASET.UNLABELED: [frames.zip]``):
the image members are listed in name order and decoded on demand through ``zipreader``."""
import json
import zipfile

import cv2
import numpy as np
import pytest
import torch

from semipose.common.errors import DataFileError, UserError
from semipose.common.metainfo import load_metainfo
from semipose.dataset.custom import UnlabeledDataset, zip_image_members

pytestmark = pytest.mark.usefixtures("single_thread")

# member name -> (width, height); written out of name order, with a folder and a text member
MEMBERS = {"b.png": (24, 18), "sub/c.jpg": (16, 12), "a.png": (20, 16)}
IN_NAME_ORDER = ["a.png", "b.png", "sub/c.jpg"]


@pytest.fixture()
def zip_set(tmp_path):
    """``<tmp>/frames.zip`` and the same images as plain files under ``<tmp>/files``."""
    rng = np.random.default_rng(0)
    files = tmp_path / "files"
    (files / "sub").mkdir(parents=True)
    with zipfile.ZipFile(tmp_path / "frames.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("notes.txt", "not an image")
        zf.writestr(zipfile.ZipInfo("sub/"), "")
        for name, (w, h) in MEMBERS.items():
            path = files / name
            cv2.imwrite(str(path), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
            zf.write(path, name)
    return tmp_path


def _pool(root, sources, **kwargs):
    return UnlabeledDataset(str(root), sources, load_metainfo("robot_arm"), False,
                            image_size=(32, 32), heatmap_size=(8, 8), **kwargs)  # fmt: skip


def test_a_zip_lists_its_image_members_in_name_order(zip_set):
    ds = _pool(zip_set, ["frames.zip"])
    archive = str(zip_set / "frames.zip")
    assert [r["image"] for r in ds.db] == [f"{archive}@/{n}" for n in IN_NAME_ORDER]
    assert zip_image_members(archive) == [r["image"] for r in ds.db]
    for rec, name in zip(ds.db, IN_NAME_ORDER):  # the frame box: the whole member
        assert rec["zip"] and np.allclose(rec["raw_box"], [0, 0, *MEMBERS[name]])


def test_a_member_decodes_to_the_pixels_of_its_file(zip_set):
    zipped = _pool(zip_set, ["frames.zip"])
    folder = _pool(zip_set, ["files"])  # a.png, b.png: the folder's images, same boxes
    for k, name in enumerate(IN_NAME_ORDER):
        pixels, _, size = zipped._load_source(zipped.db[k], zipped.db[k]["scale"])
        assert np.array_equal(pixels, cv2.imread(str(zip_set / "files" / name)))
        assert size == MEMBERS[name]
    for k in range(2):
        assert np.array_equal(zipped[k][0], folder[k][0])  # the same crop, as a sample


def test_zip_members_load_in_dataloader_workers(zip_set):
    ds = _pool(zip_set, ["frames.zip"])
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=1)
    (crops, *_), = list(loader)
    assert tuple(crops.shape) == (3, 32, 32, 3)
    assert torch.equal(crops[1], torch.from_numpy(ds[1][0]))


def test_detection_boxes_on_zip_members(zip_set):
    dets = [{"file_name": "frames.zip@/b.png", "bbox": [2, 2, 10, 8], "score": 0.9},
            {"file_name": "frames.zip/sub/c.jpg", "bbox": [0, 0, 16, 12], "score": 0.8}]
    (zip_set / "dets.json").write_text(json.dumps(dets))
    ds = _pool(zip_set, ["frames.zip"], boxes="dets.json")
    archive = str(zip_set / "frames.zip")
    assert [r["image"] for r in ds.db] == [f"{archive}@/b.png", f"{archive}@/sub/c.jpg"]
    assert np.allclose(ds.db[0]["center"], [7, 6]) and all(r["zip"] for r in ds.db)
    pixels, _, size = ds._load_source(ds.db[1], ds.db[1]["scale"])
    assert size == (16, 12)
    assert np.array_equal(pixels, cv2.imread(str(zip_set / "files/sub/c.jpg")))
    (zip_set / "bad.json").write_text(json.dumps([dict(dets[0], file_name="frames.zip@/z.png")]))
    with pytest.raises(DataFileError, match="'z.png'.*frames.zip"):
        _pool(zip_set, ["frames.zip"], boxes="bad.json")


def test_bad_archives_are_one_error_naming_the_archive(zip_set):
    with pytest.raises(UserError, match="missing.zip not found"):
        _pool(zip_set, ["missing.zip"])
    (zip_set / "broken.zip").write_bytes(b"not a zip archive")
    with pytest.raises(DataFileError, match="broken.zip cannot be read"):
        _pool(zip_set, ["broken.zip"])
    with zipfile.ZipFile(zip_set / "text.zip", "w") as zf:
        zf.writestr("notes.txt", "no image here")
        zf.writestr("__MACOSX/._a.png", "a resource fork, not an image")
    with pytest.raises(DataFileError, match="text.zip holds no image"):
        _pool(zip_set, ["text.zip"])
