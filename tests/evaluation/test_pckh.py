"""MPII PCKh (``pckh_from_gt``, ``MPIIPCKhEvaluator``) on hand-made ground truth."""

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from semipose.evaluation.pckh import MPIIPCKhEvaluator, pckh_from_gt

NAMES = ["rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor", "neck", "head", "rwri",
         "relb", "rsho", "lsho", "lelb", "lwri"]  # fmt: skip
HEAD = NAMES.index("head")


def _gt(n=2):
    """Two people, 16 visible joints each; head box diagonal 50 px -> head size 0.6 * 50 = 30."""
    rng = np.random.default_rng(0)
    pos = rng.uniform(20, 200, size=(16, 2, n))
    heads = np.zeros((2, 2, n))
    heads[1] = np.array([[30.0], [40.0]])
    return {"dataset_joints": np.array(NAMES, dtype=object), "jnt_missing": np.zeros((16, n)),
            "pos_gt_src": pos, "headboxes_src": heads}  # fmt: skip


def _preds(gt):
    """1-based (N, 16, 2) predictions equal to the GT."""
    return np.transpose(gt["pos_gt_src"], (2, 0, 1)).copy()


def test_perfect_predictions_are_100():
    gt = _gt()
    out = pckh_from_gt(_preds(gt), gt)
    assert list(out) == ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean",
                         "Mean@0.1", "Mean@0.2", "Mean@0.3", "Mean@0.4"]  # fmt: skip
    assert all(v == pytest.approx(100.0) for v in out.values())


def test_shifted_head_of_one_person():
    gt = _gt()
    preds = _preds(gt)
    preds[0, HEAD, 0] += 20  # 20 / 30 = 0.67 head sizes: a miss at every threshold
    out = pckh_from_gt(preds, gt)
    assert out["Head"] == pytest.approx(50.0)
    # Mean: 14 joints x 2 people count (pelvis and thorax excluded); one of the 28 is a miss.
    assert out["Mean"] == pytest.approx(100 * 27 / 28)
    assert out["Mean@0.4"] == pytest.approx(100 * 27 / 28)
    assert out["Shoulder"] == pytest.approx(100.0)


def test_curve_rows_and_the_inherited_row_11():
    gt = _gt()
    preds = _preds(gt)
    preds[0, HEAD, 0] += 10  # 0.333 head sizes: a hit at 0.4 and 0.5, a miss at 0.3
    out = pckh_from_gt(preds, gt)
    assert out["Mean"] == out["Mean@0.4"] == pytest.approx(100.0)
    assert out["Mean@0.3"] == pytest.approx(100 * 27 / 28)
    preds = _preds(gt)
    preds[0, HEAD, 0] += 3.15  # 0.105 head sizes: "Mean@0.1" reads threshold 0.11 (row 11)
    assert pckh_from_gt(preds, gt)["Mean@0.1"] == pytest.approx(100.0)


def test_missing_and_excluded_joints_do_not_count():
    gt = _gt()
    gt["jnt_missing"][HEAD, 0] = 1
    preds = _preds(gt)
    preds[0, HEAD] += 100  # wrong, but not labeled
    preds[:, NAMES.index("pelv")] += 100  # wrong, labeled, but outside the means
    out = pckh_from_gt(preds, gt)
    assert out["Head"] == pytest.approx(100.0) and out["Mean"] == pytest.approx(100.0)


def test_unknown_joint_names_raise():
    gt = _gt()
    gt["dataset_joints"] = np.array(["x"] * 16, dtype=object)
    with pytest.raises(KeyError, match="head"):
        pckh_from_gt(_preds(gt), gt)


def test_evaluator_saves_one_based_predictions_and_scores(tmp_path):
    gt = _gt()
    gt_file = tmp_path / "gt_valid.mat"
    savemat(gt_file, gt)
    zero_based = _preds(gt) - 1.0
    evaluator = MPIIPCKhEvaluator(str(gt_file))
    name_value, mean = evaluator.evaluate(zero_based, str(tmp_path / "out"), prefix="e1")
    assert mean == pytest.approx(100.0) and name_value["Mean"] == mean
    saved = loadmat(tmp_path / "out/e1_pred.mat")["preds"]
    np.testing.assert_allclose(saved, zero_based + 1.0)
    # The same from the dict, without saving.
    assert MPIIPCKhEvaluator(gt).evaluate(zero_based)[1] == pytest.approx(100.0)


def test_evaluator_without_ground_truth(tmp_path):
    evaluator = MPIIPCKhEvaluator(str(tmp_path / "absent.mat"), has_ground_truth=False)
    assert evaluator.evaluate(np.zeros((3, 16, 3)), str(tmp_path)) == ({"Null": 0.0}, 0.0)
    assert (tmp_path / "pred.mat").is_file()
    with pytest.raises(FileNotFoundError, match="absent.mat"):
        MPIIPCKhEvaluator(str(tmp_path / "absent.mat")).evaluate(np.zeros((3, 16, 3)))
