"""Person box sources: detection json, GT annotations, whole image, torchvision detector."""
import json

import numpy as np
import pytest
import torch

from semipose.apis import (
    AnnotationBoxes,
    BoxSourceError,
    DetectionJsonBoxes,
    TorchvisionPersonDetector,
    WholeImageBoxes,
)
from semipose.apis.boxes import image_id_from_name

IMAGE = np.zeros((120, 160, 3), dtype=np.uint8)


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return str(path)


def test_detection_json_threshold_category_and_ids(tmp_path):
    dets = [
        {"image_id": 7, "category_id": 1, "bbox": [1, 2, 30, 40], "score": 0.9},
        {"image_id": 7, "category_id": 1, "bbox": [5, 5, 10, 10], "score": 0.2},
        {"image_id": 7, "category_id": 3, "bbox": [0, 0, 9, 9], "score": 0.99},
        {"image_id": 8, "category_id": 1, "bbox": [3, 3, 20, 20], "score": 0.6},
        {"image_id": 8, "bbox": [3, 3]},  # malformed: skipped with a warning
    ]
    src = DetectionJsonBoxes(_write(tmp_path / "d.json", dets), score_thr=0.5)
    assert src(IMAGE, image_id=7).tolist() == [[1, 2, 30, 40, 0.9]]
    assert src(IMAGE, file_name="/x/000000000008.jpg").tolist() == [[3, 3, 20, 20, 0.6]]
    assert src(IMAGE, image_id=99).shape == (0, 5)
    with pytest.raises(BoxSourceError, match="cannot tell the image id of holiday.jpg"):
        src(IMAGE, file_name="holiday.jpg")
    # An annotation json's images list maps any file name to its id.
    ann = {"images": [{"id": 8, "file_name": "holiday.jpg", "width": 160, "height": 120}],
           "annotations": []}  # fmt: skip
    src = DetectionJsonBoxes(str(tmp_path / "d.json"), 0.5, _write(tmp_path / "a.json", ann))
    assert src(IMAGE, file_name="photos/holiday.jpg").tolist() == [[3, 3, 20, 20, 0.6]]


def test_detection_json_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="person detection file not found: .*nope.json"):
        DetectionJsonBoxes(str(tmp_path / "nope.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("[{")
    with pytest.raises(BoxSourceError, match="bad.json is not valid json"):
        DetectionJsonBoxes(str(bad))
    with pytest.raises(BoxSourceError, match="not a detection-results json"):
        DetectionJsonBoxes(_write(tmp_path / "dict.json", {"annotations": []}))


def test_annotation_boxes_cleaned_as_the_coco_gt_mode(tmp_path):
    kps = [10, 10, 2] + [0] * 48
    ann = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 80}],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": [
            {"image_id": 1, "category_id": 1, "bbox": [-5, 10, 50, 200], "area": 10.0,
             "keypoints": kps, "iscrowd": 0},
            {"image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 20], "area": 10.0,
             "keypoints": kps, "iscrowd": 1},
            {"image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 20], "area": 10.0,
             "keypoints": [0] * 51, "iscrowd": 0},
            {"image_id": 1, "category_id": 1, "bbox": [30, 5, 10, 10], "area": 0.0,
             "keypoints": kps},
        ],
    }  # fmt: skip
    src = AnnotationBoxes(_write(tmp_path / "gt.json", ann))
    # x1 = max(0, -5) = 0, x2 = min(99, 0 + 49) = 49; y2 = min(79, 10 + 199) = 79.
    # The last person's area field is 0 but its box is usable: the area is repaired to w * h (the
    # annotation checks' rule), so it is a box too; crowds and persons without labels are not.
    assert src(IMAGE, file_name="a.jpg").tolist() == [[0, 10, 49, 69, 1.0], [30, 5, 9, 9, 1.0]]
    assert len(src) == 1 and "2 persons" in src.describe()  # one image, two persons
    with pytest.raises(BoxSourceError, match="no 'annotations' list"):
        AnnotationBoxes(_write(tmp_path / "x.json", [1, 2]))


def test_whole_image_and_names():
    assert WholeImageBoxes()(IMAGE).tolist() == [[0, 0, 160, 120, 1.0]]
    assert image_id_from_name("000000000139.jpg") == 139
    assert image_id_from_name("COCO_val2014_000000000139.jpg") == 139
    assert image_id_from_name("IMG_1234.jpg") is None


@pytest.mark.parametrize(
    "name, arch, expected",
    [
        ("missing/fasterrcnn_resnet50_fpn_coco-258fb6c6.pth", None,
         "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth"),
        ("elsewhere/kp.pth", "keypointrcnn_resnet50_fpn", "keypointrcnn_resnet50_fpn_coco-"),
    ],
)  # fmt: skip
def test_detector_without_weights_names_the_file(tmp_path, name, arch, expected):
    path = tmp_path / name
    with pytest.raises(FileNotFoundError) as info:
        TorchvisionPersonDetector(str(path), arch=arch)
    text = str(info.value)
    assert str(path) in text and expected in text
    assert "https://download.pytorch.org/models/" in text and "nothing is downloaded" in text


def test_detector_from_a_local_weights_file(tmp_path):
    """A randomly initialised detector saved to disk loads strictly and returns (P, 5) boxes."""
    from torchvision.models import get_model

    arch = "fasterrcnn_mobilenet_v3_large_320_fpn"
    torch.manual_seed(0)
    net = get_model(arch, weights=None, weights_backbone=None, num_classes=91)
    path = tmp_path / f"{arch}-random.pth"
    torch.save(net.state_dict(), path)
    det = TorchvisionPersonDetector(str(path), score_thr=0.0, device="cpu")
    assert det.arch == arch
    boxes = det(np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8))
    assert boxes.ndim == 2 and boxes.shape[1] == 5
    assert (boxes[:, 2:4] >= 0).all()
