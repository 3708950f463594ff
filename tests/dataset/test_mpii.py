import json
from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from semipose.dataset.joints import MPII_JOINTS
from semipose.dataset.mpii import MPIIDataset, pckh_from_gt

KW = {"image_size": (256, 256), "heatmap_size": (64, 64)}
MAT_NAMES = ["rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor", "neck", "head",
             "rwri", "relb", "rsho", "lsho", "lelb", "lwri"]  # fmt: skip


def _write_gt(root, image_set, joints, vis, head_size=50.0):
    """A gt_<set>.mat in the MPII evaluation layout; head boxes of diagonal ``head_size / 0.6``."""
    n = len(joints)
    side = head_size / 0.6 / np.sqrt(2)
    boxes = np.zeros((2, 2, n))
    boxes[1] = side
    savemat(
        str(Path(root) / "mpii/annot" / f"gt_{image_set}.mat"),
        {
            "dataset_joints": np.array(MAT_NAMES, dtype=object).reshape(1, 16),
            "jnt_missing": (1 - np.asarray(vis)).T.astype(np.float64),
            "pos_gt_src": np.transpose(np.asarray(joints, float), [1, 2, 0]),
            "headboxes_src": boxes,
        },
    )


def test_real_sample_loads(mpii_aic_real_root):
    ds = MPIIDataset(mpii_aic_real_root, "validation", False, **KW)
    assert len(ds.db) == 5
    raw = json.loads((Path(mpii_aic_real_root) / "mpii/annot/validation.json").read_text())[0]
    rec = ds.db[0]
    s = raw["scale"]
    np.testing.assert_allclose(rec["scale"], [s * 1.25, s * 1.25])
    np.testing.assert_allclose(rec["center"], [raw["center"][0] - 1, raw["center"][1] + 15 * s - 1])
    # MPII native 9 (head top) -> union 13; joints shifted to 0-based.
    np.testing.assert_allclose(rec["joints_3d"][13, :2], np.array(raw["joints"][9]) - 1)
    assert rec["joints_3d_vis"][:, 0].sum() == sum(raw["joints_vis"])
    assert len(ds.labeled_joints) == 16
    inp, target, weight, meta = ds[0]
    assert inp.shape == (256, 256, 3) and target.shape == (24, 64, 64)


def test_pckh_gt_and_shift(mpii_aic_real_root, tmp_path):
    root = mpii_aic_real_root
    ds = MPIIDataset(root, "validation", False, **KW)
    # Native 1-based GT from the records; predictions in union, 0-based.
    native = np.stack([r["joints_3d"][ds.su, :2] + 1 for r in ds.db])
    vis = np.stack([r["joints_3d_vis"][ds.su, 0] for r in ds.db])
    _write_gt(root, "validation", native, vis)
    preds = np.stack([np.concatenate([r["joints_3d"][:, :2], np.ones((24, 1))], 1) for r in ds.db])
    before = preds.copy()
    name_value, mean = ds.evaluate(preds, str(tmp_path))
    np.testing.assert_array_equal(preds, before)  # not modified in place
    assert mean == pytest.approx(100.0)
    assert list(name_value)[:8] == ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle",
                                    "Mean"]  # fmt: skip
    saved = loadmat(str(tmp_path / "pred.mat"))["preds"]
    np.testing.assert_allclose(saved, native)

    # Move every right wrist (union 19) by 30 px (head size 50: error 0.6 > 0.5) -> wrist 50%.
    preds[:, 19, 0] += 30
    name_value, mean = ds.evaluate(preds, str(tmp_path), prefix="head2")
    assert name_value["Wrist"] == pytest.approx(50.0)
    assert (tmp_path / "head2_pred.mat").is_file()
    counts = vis.sum(0)
    counts[6:8] = 0  # the mean excludes pelvis and thorax
    rwri = MAT_NAMES.index("rwri")
    assert mean == pytest.approx(100.0 * (1 - counts[rwri] / counts.sum()))
    # Mean@0.1 reads threshold 0.11: errors of exactly 0.1 head sizes pass there.
    preds = before.copy()
    preds[:, :, 0] += 5.0  # 5 / 50 = 0.1
    name_value, _ = ds.evaluate(preds, str(tmp_path))
    assert name_value["Mean@0.1"] == pytest.approx(100.0)


def test_pckh_missing_joint_excluded():
    n = 4
    gt_pos = np.tile(np.arange(16, dtype=float)[:, None] * 10, (n, 1, 2))
    vis = np.ones((n, 16))
    vis[0, 9] = 0
    pred = gt_pos.copy()
    pred[0, 9] += 1000  # missing in GT: ignored
    side = 50 / 0.6 / np.sqrt(2)
    gt = {
        "dataset_joints": np.array(MAT_NAMES),
        "jnt_missing": (1 - vis).T,
        "pos_gt_src": np.transpose(gt_pos, [1, 2, 0]),
        "headboxes_src": np.stack([np.zeros((2, n)), np.full((2, n), side)]),
    }
    assert pckh_from_gt(pred, gt)["Head"] == pytest.approx(100.0)


def test_missing_gt_mat(mpii_aic_real_root, tmp_path):
    ds = MPIIDataset(mpii_aic_real_root, "train", False, **KW)
    with pytest.raises(FileNotFoundError, match="gt_train.mat"):
        ds.evaluate(np.zeros((5, 24, 3)), str(tmp_path))


def test_missing_annotation(tmp_path):
    with pytest.raises(FileNotFoundError, match="annot/valid.json"):
        MPIIDataset(str(tmp_path), "valid", False, **KW)


def test_native_order():
    assert MPII_JOINTS[9] == "head top" and len(MPII_JOINTS) == 16
