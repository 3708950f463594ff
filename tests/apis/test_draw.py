"""Skeleton drawing: pixels change at the joints and along the limbs, nowhere for hidden joints."""
import json

import cv2
import numpy as np
import pytest

from semipose.apis import LAYOUTS, draw_predictions, save_drawn_predictions
from semipose.utils.vis import COCO_LIMB_COLORS, COCO_SKELETON, draw_pose, side_colors


def _pose():
    """A standing COCO person in a 200x160 image (x, y, score), ankles hidden (score 0.1)."""
    xy = [(80, 20), (85, 16), (75, 16), (92, 20), (68, 20), (100, 45), (60, 45), (108, 75),
          (52, 75), (112, 100), (48, 100), (94, 105), (66, 105), (96, 140), (64, 140),
          (97, 180), (63, 180)]  # fmt: skip
    kpts = np.array([[x, y, 0.9] for x, y in xy], dtype=np.float32)
    kpts[15:, 2] = 0.1
    return kpts


def test_joints_and_limbs_change_pixels_hidden_joints_do_not():
    image = np.full((200, 160, 3), 40, dtype=np.uint8)
    kpts = _pose()
    drawn = draw_predictions(image, [{"keypoints": kpts}], "coco", kpt_thr=0.3, draw_bbox=False)
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    assert np.array_equal(image, np.full((200, 160, 3), 40, dtype=np.uint8))  # input untouched
    changed = np.any(drawn != image, axis=2)
    for j, (x, y, s) in enumerate(kpts):
        assert changed[int(y), int(x)] == (s > 0.3), j
    # The middle of the left upper arm (lsho 5 -> lelb 7) has that limb's colour (anti-aliased).
    limb = COCO_SKELETON.index((5, 7))
    mid = np.round((kpts[5, :2] + kpts[7, :2]) / 2).astype(int)
    pixel = drawn[mid[1], mid[0]].astype(int)
    assert np.abs(pixel - COCO_LIMB_COLORS[limb]).max() < 40, pixel


def test_box_and_score_drawn():
    image = np.zeros((120, 160, 3), dtype=np.uint8)
    kpts = np.zeros((17, 3), dtype=np.float32)  # no joint above the threshold
    out = draw_pose(image.copy(), kpts, bbox=[20, 30, 60, 70], score=0.87, box_color=(0, 255, 0))
    assert (out[30:101, 20] == (0, 255, 0)).all(axis=1).any()  # left edge of the box
    assert out[60, 50].tolist() == [0, 0, 0]  # inside the box, nothing
    assert np.any(out[10:31, 20:60] != 0)  # the score label above the box


def test_other_layouts_colour_by_side():
    mpii = LAYOUTS["mpii"]
    assert len(mpii.limb_colors) == len(mpii.skeleton) and mpii.num_joints == 16
    joints, limbs = side_colors(mpii.joint_names, mpii.skeleton)
    assert joints[mpii.joint_names.index("lsho")] != joints[mpii.joint_names.index("rsho")]
    assert LAYOUTS["ai_challenger"].num_joints == 14
    with pytest.raises(ValueError, match="keypoints must be"):
        draw_pose(np.zeros((10, 10, 3), np.uint8), np.zeros(5))


def test_save_drawn_predictions_first_n_images(synth_root, tmp_path):
    """The arrays of a validation run (union layout, box table) -> drawn files of the first N."""
    ann = json.loads((synth_root / "coco/annotations/person_keypoints_val2017.json").read_text())
    img_dir = synth_root / "coco/images/val2017"
    paths, preds, boxes = [], [], []
    for a in ann["annotations"]:
        name = next(i["file_name"] for i in ann["images"] if i["id"] == a["image_id"])
        paths.append(str(img_dir / name))
        union = np.zeros((24, 3), dtype=np.float32)
        native = np.asarray(a["keypoints"], dtype=np.float32).reshape(17, 3)
        union[list(LAYOUTS["coco"].union_index)] = native[:, :3] * [1, 1, 0.45]  # v=2 -> 0.9
        preds.append(union)
        row = np.zeros(10)
        row[5] = 1.0
        row[6:10] = a["bbox"]
        boxes.append(row)
    written = save_drawn_predictions(paths, np.stack(preds), np.stack(boxes), str(tmp_path), 2)
    first_two = list(dict.fromkeys(paths))[:2]
    assert [p.split("/")[-1] for p in written] == [p.split("/")[-1] for p in first_two]
    for out, src in zip(written, first_two):
        a, b = cv2.imread(out), cv2.imread(src)
        assert a.shape == b.shape and np.abs(a.astype(int) - b).sum() > 0
    assert save_drawn_predictions(paths, np.stack(preds), None, str(tmp_path), 0) == []
