import json
from pathlib import Path

import numpy as np
import pytest

from semipose.dataset.ai_challenger import AIDataset, aic_keypoint_ap, aic_oks, aic_pckh
from semipose.dataset.joints import AIC_SIGMAS

KW = {"image_size": (256, 256), "heatmap_size": (64, 64)}


def _gt_preds(ds):
    preds = np.stack([np.concatenate([r["joints_3d"][:, :2], np.ones((24, 1))], 1) for r in ds.db])
    boxes = np.ones((len(ds.db), 6))
    return preds, boxes, [r["image"] for r in ds.db]


def test_real_raw_sample_loads(mpii_aic_real_root):
    ds = AIDataset(mpii_aic_real_root, "validation", False, **KW)
    assert len(ds.db) == 9
    raw = json.loads(
        (
            Path(mpii_aic_real_root)
            / "ai_challenger/validation/keypoint_validation_annotation.json"
        ).read_text()
    )[0]
    kps = np.array(raw["keypoint_annotations"]["human1"]).reshape(14, 3)
    rec = ds.db[0]
    # vis = v < 3: visible (1) and occluded (2) count, unlabeled (3) does not.
    native_vis = rec["joints_3d_vis"][ds.su, 0]
    np.testing.assert_array_equal(native_vis, (kps[:, 2] < 3).astype(float))
    np.testing.assert_allclose(rec["joints_3d"][13, :2], kps[12, :2])  # head top -> union 13
    np.testing.assert_allclose(rec["joints_3d"][9, :2], kps[13, :2])  # neck -> union 9
    x1, y1, x2, y2 = raw["human_annotations"]["human1"]
    np.testing.assert_allclose(rec["center"], [(x1 + x2) / 2, (y1 + y2) / 2])
    h = y2 - y1
    np.testing.assert_allclose(rec["scale"], [h / 200 * 1.25, h / 200 * 1.25], rtol=1e-6)
    assert rec["image"].endswith(f"validation/images/{raw['image_id']}.jpg")
    inp, target, weight, _ = ds[0]
    assert inp.shape == (256, 256, 3) and weight[:, 0].sum() == native_vis.sum()


def test_real_gt_ap_one_and_missing(mpii_aic_real_root, tmp_path):
    ds = AIDataset(mpii_aic_real_root, "validation", False, **KW)
    preds, boxes, paths = _gt_preds(ds)
    name_value, ap = ds.evaluate(preds, str(tmp_path), boxes, paths)
    assert list(name_value) == ["AP"] and ap == pytest.approx(1.0)
    assert (tmp_path / "results/keypoints_validation_results.json").is_file()
    # Drop the first person: its GT gets no match; the denominator stays max(#gt, #pred) = 3.
    _, ap = ds.evaluate(preds[1:], str(tmp_path), boxes[1:], paths[1:])
    assert ap == pytest.approx(8 / 9)
    # Drop the whole first image (3 people): they still count in the denominator.
    _, ap = ds.evaluate(preds[3:], str(tmp_path), boxes[3:], paths[3:])
    assert ap == pytest.approx(6 / 9)


def test_aic_oks_formula():
    gt = np.zeros((1, 14, 3))
    gt[0, :, 2] = 3
    gt[0, 0] = [10, 10, 1]
    gt[0, 1] = [20, 20, 2]  # occluded: not used by the official metric
    box = np.array([[0, 0, 10, 20]])
    pred = np.zeros((2, 14, 3))
    pred[0, 0, :2] = [13, 14]  # d^2 = 25
    pred[1, 0, :2] = [10, 10]
    oks = aic_oks(gt, box, pred)
    expected = np.exp(-25 / 2 / AIC_SIGMAS[0] ** 2 / (200 + 1))
    np.testing.assert_allclose(oks, [[expected, 1.0]])


def test_ap_denominator_extra_predictions():
    annos = {"a": {"keypoint_annotations": {"h1": [5, 5, 1] * 14},
                   "human_annotations": {"h1": [0, 0, 10, 10]}}}  # fmt: skip
    good = np.tile([5.0, 5.0, 1.0], (14, 1))
    far = good + [500, 500, 0]
    assert aic_keypoint_ap({"a": np.stack([good])}, annos) == pytest.approx(1.0)
    # Two predictions for one GT: denominator max(1, 2) = 2.
    assert aic_keypoint_ap({"a": np.stack([good, far])}, annos) == pytest.approx(0.5)


def test_pckh_when_gt_npy_exists(mpii_aic_real_root, tmp_path):
    root = mpii_aic_real_root
    ds = AIDataset(root, "validation", False, **KW)
    preds, boxes, paths = _gt_preds(ds)
    native = preds[:, ds.su, :2]
    vis = np.stack([r["joints_3d_vis"][ds.su, 0] for r in ds.db])
    names = ["rsho", "relb", "rwri", "lsho", "lelb", "lwri", "rhip", "rkne", "rank", "lhip",
             "lkne", "lank", "head", "neck"]  # fmt: skip
    gt = {
        "dataset_joints": np.array(names),
        "jnt_missing": 1 - vis,
        "pos_gt_src": native,
        "headboxes_src": np.zeros((len(ds.db), 2, 2)),
        "jnt_labeled": vis.astype(bool),
    }
    gt["headboxes_src"][:, 1] = 60
    np.save(Path(root) / "ai_challenger/validation/gt_validation.npy", gt, allow_pickle=True)
    name_value, mean = ds.evaluate(preds, str(tmp_path), boxes, paths)
    assert mean == pytest.approx(100.0) and name_value["AP"] == pytest.approx(1.0)
    assert "Neck" in name_value
    # Direct: errors of 45 px fail where the head box (85 px) is used, pass with the 95 px fallback.
    shifted = native.copy()
    shifted[:, :, 0] += 45
    out = aic_pckh(shifted, gt)
    head_ok = vis[:, 12].astype(bool) & vis[:, 13].astype(bool)
    assert out["Head"] == pytest.approx(100.0 * np.mean(~head_ok[vis[:, 12] > 0]))


def test_missing_annotation(tmp_path):
    with pytest.raises(FileNotFoundError, match="keypoint_train_annotation.json"):
        AIDataset(str(tmp_path), "train", True, **KW)
