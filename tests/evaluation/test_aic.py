"""AI Challenger evaluation (OKS AP, PCKh, ``AICKeypointEvaluator``) on hand-made annotations."""

import json

import numpy as np
import pytest

from semipose.evaluation.aic import AICKeypointEvaluator, aic_keypoint_ap, aic_oks, aic_pckh

NAMES = ["rsho", "relb", "rwri", "lsho", "lelb", "lwri", "rhip", "rkne", "rank", "lhip", "lkne",
         "lank", "head", "neck"]  # fmt: skip
HEAD = NAMES.index("head")


def _person(x0, y0):
    k = np.arange(14)
    xy = np.stack([x0 + 10 + (k % 3) * 20, y0 + 10 + (k // 3) * 25], axis=1).astype(float)
    return xy, [x0, y0, x0 + 80, y0 + 150]


def _annotations():
    """Image ``a`` with two people, image ``b`` with one; every joint visible (v = 1)."""
    annos = {}
    for image_id, origins in (("a", [(0, 0), (200, 0)]), ("b", [(50, 30)])):
        kps, boxes = {}, {}
        for n, (x0, y0) in enumerate(origins, start=1):
            xy, box = _person(x0, y0)
            kps[f"human{n}"] = [float(v) for v in np.concatenate([xy, np.ones((14, 1))], 1).ravel()]
            boxes[f"human{n}"] = box
        annos[image_id] = {"keypoint_annotations": kps, "human_annotations": boxes}
    return annos


def _perfect():
    """(3, 14, 3) predictions at the GT with score 0.8, their image ids and (3, 6) boxes."""
    preds, ids = [], []
    for image_id, anno in _annotations().items():
        for flat in anno["keypoint_annotations"].values():
            kps = np.reshape(flat, (14, 3)).copy()
            kps[:, 2] = 0.8
            preds.append(kps)
            ids.append(image_id)
    return np.stack(preds), ids, np.tile([[0, 0, 1, 1, 100.0, 1.0]], (len(ids), 1))


def test_oks_is_one_at_the_gt_and_falls_with_distance():
    xy, box = _person(0, 0)
    gt = np.concatenate([xy, np.ones((14, 1))], 1)[None]
    far = xy + 40
    oks = aic_oks(gt, [box], np.stack([xy, xy + 2, far]))
    assert oks.shape == (1, 3)
    assert oks[0, 0] == pytest.approx(1.0)
    assert 0.0 < oks[0, 2] < oks[0, 1] < 1.0
    gt[0, :, 2] = 2  # no visible (v == 1) joint: OKS 0
    assert aic_oks(gt, [box], xy[None])[0, 0] == 0.0


def test_keypoint_ap_perfect_extra_and_missing():
    preds, ids, _ = _perfect()
    per_image = {"a": preds[:2], "b": preds[2:]}
    assert aic_keypoint_ap(per_image, _annotations()) == pytest.approx(1.0)
    # An extra far prediction in image b: that image counts max(1 GT, 2 predictions) = 2.
    extra = {"a": preds[:2], "b": np.concatenate([preds[2:], preds[2:] + 500])}
    assert aic_keypoint_ap(extra, _annotations()) == pytest.approx(3 / 4)
    # No prediction for image a: its two GT people still count.
    assert aic_keypoint_ap({"b": preds[2:]}, _annotations()) == pytest.approx(1 / 3)


def test_evaluator_ap_and_results_file(tmp_path):
    preds, ids, boxes = _perfect()
    evaluator = AICKeypointEvaluator(_annotations(), "validation", in_vis_thre=0.2)
    name_value, ap = evaluator.evaluate(preds, ids, boxes, str(tmp_path), prefix="x")
    assert list(name_value) == ["AP"] and ap == pytest.approx(1.0)
    results = json.loads((tmp_path / "results/keypoints_validation_x.json").read_text())
    assert [r["image_id"] for r in results] == ["a", "b"]
    assert list(results[0]["keypoint_annotations"]) == ["human1", "human2"]
    assert results[0]["scores"] == pytest.approx([0.8, 0.8])
    preds[0, :, :2] += 500  # one of three people missed
    _, ap = evaluator.evaluate(preds, ids, boxes, str(tmp_path))
    assert ap == pytest.approx(2 / 3)


def test_evaluator_without_ground_truth(tmp_path):
    preds, ids, boxes = _perfect()
    evaluator = AICKeypointEvaluator({}, "test", has_ground_truth=False)
    assert evaluator.evaluate(preds, ids, boxes, str(tmp_path)) == ({"Null": 0}, 0)
    assert (tmp_path / "results/keypoints_test_results.json").is_file()


def _pckh_gt(preds, head_labeled=True):
    n = len(preds)
    heads = np.zeros((n, 2, 2))
    heads[:, 1] = [30.0, 40.0]  # diagonal 50 px (no SC_BIAS for AIC)
    labeled = np.ones((n, 14), bool)
    labeled[:, HEAD] = head_labeled
    return {"dataset_joints": np.array(NAMES), "jnt_missing": np.zeros((n, 14)),
            "pos_gt_src": preds[:, :, :2].copy(), "headboxes_src": heads,
            "jnt_labeled": labeled}  # fmt: skip


def test_pckh_table():
    preds, _, _ = _perfect()
    gt = _pckh_gt(preds)
    assert aic_pckh(preds[:, :, :2], gt)["Mean"] == pytest.approx(100.0)
    shifted = preds[:, :, :2].copy()
    shifted[0, HEAD, 0] += 30  # 30 / 50 = 0.6 head sizes: a miss
    out = aic_pckh(shifted, gt)
    assert out["Head"] == pytest.approx(100 * 2 / 3)
    assert out["Mean"] == pytest.approx(100 * 41 / 42)  # all 14 joints x 3 people count
    # With the head unlabeled the head size falls back to 95 px: 30 / 95 = 0.32, a hit.
    assert aic_pckh(shifted, _pckh_gt(preds, head_labeled=False))["Head"] == pytest.approx(100.0)


def test_evaluator_with_pckh_ground_truth(tmp_path):
    preds, ids, boxes = _perfect()
    gt_file = tmp_path / "gt_validation.npy"
    np.save(gt_file, _pckh_gt(preds), allow_pickle=True)
    evaluator = AICKeypointEvaluator(_annotations(), "validation", pckh_gt=str(gt_file))
    name_value, mean = evaluator.evaluate(preds, ids, boxes, str(tmp_path))
    assert mean == pytest.approx(100.0) and name_value["AP"] == pytest.approx(1.0)
    assert "Neck" in name_value and mean == name_value["Mean"]
    absent = AICKeypointEvaluator(_annotations(), "validation", pckh_gt=str(tmp_path / "no.npy"))
    assert list(absent.evaluate(preds, ids, boxes, str(tmp_path))[0]) == ["AP"]
