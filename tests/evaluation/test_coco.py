"""COCOKeypointEvaluator on a hand-made COCO-format ground truth (two images, three people)."""

import json

import numpy as np
import pytest

from semipose.evaluation.coco import STATS_NAMES, COCOKeypointEvaluator, as_coco, rescore

# Three people: image 1 holds A and B, image 2 holds C. Joints on a 4-px grid inside the box.
PEOPLE = {"A": (1, (10, 10, 60, 120)), "B": (1, (100, 20, 60, 120)), "C": (2, (30, 15, 70, 130))}


def _joints(box):
    x, y, w, h = box
    k = np.arange(17)
    return np.stack([x + 5 + (k % 4) * w / 5, y + 5 + (k // 4) * h / 6], axis=1)


def _ground_truth():
    anns = []
    for ann_id, (image_id, box) in enumerate(PEOPLE.values(), start=1):
        kps = np.concatenate([_joints(box), np.full((17, 1), 2.0)], axis=1)
        anns.append({
            "id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "bbox": list(box),
            "area": float(box[2] * box[3]), "num_keypoints": 17,
            "keypoints": [float(v) for v in kps.reshape(-1)],
        })  # fmt: skip
    return {
        "images": [{"id": i, "file_name": f"{i:012d}.jpg", "width": 200, "height": 200}
                   for i in (1, 2)],
        "annotations": anns,
        "categories": [{"id": 1, "name": "person"}],
    }  # fmt: skip


def _perfect():
    """Predictions (3, 17, 3) at the GT joints with score 0.9, image ids and (3, 6) boxes."""
    score = np.full((17, 1), 0.9)
    preds = np.stack([np.concatenate([_joints(box), score], axis=1) for _, box in PEOPLE.values()])
    ids = [image_id for image_id, _ in PEOPLE.values()]
    boxes = np.array([[0, 0, 1, 1, box[2] * box[3], 1.0] for _, box in PEOPLE.values()], float)
    return preds, ids, boxes


@pytest.fixture
def evaluator():
    return COCOKeypointEvaluator(_ground_truth(), "val2017", oks_thre=0.9, in_vis_thre=0.2)


def test_perfect_predictions_score_one(evaluator, tmp_path):
    preds, ids, boxes = _perfect()
    name_value, ap = evaluator.evaluate(preds, ids, boxes, str(tmp_path))
    assert list(name_value) == STATS_NAMES
    assert ap == pytest.approx(1.0) and name_value["AR"] == pytest.approx(1.0)
    assert name_value["AP (L)"] == pytest.approx(-1.0)  # every person is medium (area < 96^2)
    assert (tmp_path / "results/keypoints_val2017_results.pkl").is_file()
    results = json.loads((tmp_path / "results/person_keypoints_val2017_results.json").read_text())
    assert [r["image_id"] for r in results] == [1, 1, 2]
    assert results[0]["score"] == pytest.approx(0.9)  # box score 1 x mean joint score 0.9
    np.testing.assert_allclose(np.reshape(results[2]["keypoints"], (17, 3)), preds[2])


def test_shifted_joint_lowers_ap(evaluator, tmp_path):
    preds, ids, boxes = _perfect()
    preds[0, 0, :2] += 15  # the nose of A, far for its small sigma
    name_value, ap = evaluator.evaluate(preds, ids, boxes, str(tmp_path))
    assert ap < 1.0
    assert name_value["Ap .5"] == pytest.approx(1.0)


def test_missed_person_halves_recall(tmp_path):
    evaluator = COCOKeypointEvaluator(_ground_truth(), "val2017", save_result=False)
    preds, ids, boxes = _perfect()
    preds[1, :, :2] += 300  # B matches nothing; A and C are found
    boxes[1, 5] = 0.5  # and it ranks last
    name_value, ap = evaluator.evaluate(preds, ids, boxes, str(tmp_path))
    # Precision 1 up to recall 2/3, then 0: 67 of COCOeval's 101 recall points.
    assert ap == pytest.approx(67 / 101)
    assert name_value["AR"] == pytest.approx(2 / 3)
    assert not (tmp_path / "results/person_keypoints_val2017_results.json").exists()


def test_oks_nms_drops_a_duplicate_and_rescoring(evaluator, tmp_path):
    preds, ids, boxes = _perfect()
    dup = preds[0].copy()
    dup[:, 2] = 0.5
    dup[:3, 2] = 0.1  # below in_vis_thre: left out of the mean
    preds = np.concatenate([preds, dup[None]])
    boxes = np.concatenate([boxes, [[0, 0, 1, 1, 7200.0, 0.8]]])
    _, ap = evaluator.evaluate(preds, ids + [1], boxes, str(tmp_path), prefix="dup")
    results = json.loads((tmp_path / "results/person_keypoints_val2017_dup.json").read_text())
    assert len(results) == 3 and ap == pytest.approx(1.0)
    evaluator.oks_thre = 1.01  # no suppression: the duplicate stays with score 0.5 x 0.8
    evaluator.evaluate(preds, ids + [1], boxes, str(tmp_path), prefix="dup")
    results = json.loads((tmp_path / "results/person_keypoints_val2017_dup.json").read_text())
    assert sorted(r["score"] for r in results)[0] == pytest.approx(0.4)
    assert rescore(dup, 0.8, 0.2) == pytest.approx(0.4)


def test_set_without_ground_truth_writes_results_only(tmp_path):
    info = {k: v for k, v in _ground_truth().items() if k != "annotations"}
    evaluator = COCOKeypointEvaluator(info, "test2017", has_ground_truth=False)
    preds, ids, boxes = _perfect()
    assert evaluator.evaluate(preds, ids, boxes, str(tmp_path)) == ({"Null": 0}, 0)
    results = json.loads((tmp_path / "results/person_keypoints_test2017_results.json").read_text())
    assert len(results) == 3 and "bbox" not in results[0]


def test_no_predictions_give_zeros(evaluator, tmp_path):
    name_value, ap = evaluator.evaluate(np.zeros((0, 17, 3)), [], np.zeros((0, 6)), str(tmp_path))
    assert ap == 0.0 and set(name_value.values()) == {0.0}


def test_bbox_column_is_saved_and_coco_object_accepted(tmp_path):
    evaluator = COCOKeypointEvaluator(as_coco(_ground_truth()), "val2017")
    preds, ids, boxes = _perfect()
    boxes = np.concatenate([boxes, np.tile([[1.0, 2.0, 3.0, 4.0]], (3, 1))], axis=1)
    evaluator.evaluate(preds, ids, boxes, str(tmp_path))
    results = json.loads((tmp_path / "results/person_keypoints_val2017_results.json").read_text())
    assert results[0]["bbox"] == [1.0, 2.0, 3.0, 4.0]
