"""PCKh: the shared table (per-part PCKh@0.5, weighted means at 0.1 to 0.5) and the MPII evaluator.

Ported from the original's lib/dataset/mpii.py ``evaluate`` (MIT); spec §5.3.
"""

import logging
import os
from collections import OrderedDict

import numpy as np
from scipy.io import loadmat, savemat

__all__ = ["MPIIPCKhEvaluator", "PCKH_THRESHOLD", "pckh_from_gt", "pckh_table"]

logger = logging.getLogger(__name__)

SC_BIAS = 0.6
PCKH_THRESHOLD = 0.5
#: Rows of the 0:0.01:0.5 PCK curve reported as ``Mean@0.1`` .. ``Mean@0.4``. Row 11 is the
#: threshold 0.11, inherited from the original (spec §9.9).
CURVE_ROWS = (("Mean@0.1", 11), ("Mean@0.2", 20), ("Mean@0.3", 30), ("Mean@0.4", 40))
#: (table name, joint names): one joint, or a left/right pair averaged.
MPII_PARTS = (
    ("Head", ("head",)), ("Shoulder", ("lsho", "rsho")), ("Elbow", ("lelb", "relb")),
    ("Wrist", ("lwri", "rwri")), ("Hip", ("lhip", "rhip")), ("Knee", ("lkne", "rkne")),
    ("Ankle", ("lank", "rank")),
)  # fmt: skip


def pckh_table(scaled_err, visible, joint_index, parts, exclude=()):
    """The PCKh table from head-normalised errors.

    Args:
        scaled_err: (J, N) joint errors divided by the head size.
        visible: (J, N) 1 where the joint is labeled, else 0.
        joint_index: joint name -> row of ``scaled_err``.
        parts: ``(name, joint names)`` rows of the table; a part's value is the mean PCKh of its
            joints (a left/right pair: ``0.5 * (left + right)``).
        exclude: rows left out of the weighted means.

    Returns:
        OrderedDict: the parts, ``Mean`` (PCKh@0.5 weighted by the number of visible joints) and
        ``Mean@0.1`` .. ``Mean@0.4`` (rows of ``CURVE_ROWS``), in %.
    """
    visible = np.asarray(visible)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = scaled_err * visible
        jnt_count = np.sum(visible, axis=1)
        curve = np.arange(0, 0.5 + 0.01, 0.01)
        pck_all = np.zeros((len(curve), visible.shape[0]))
        for r, threshold in enumerate(curve):
            pck_all[r] = 100.0 * np.sum((scaled <= threshold) * visible, axis=1) / jnt_count
        pckh = 100.0 * np.sum((scaled <= PCKH_THRESHOLD) * visible, axis=1) / jnt_count
    kept = np.ones(pckh.shape, dtype=bool)
    kept[list(exclude)] = False
    ratio = np.where(kept, jnt_count, 0) / np.sum(jnt_count[kept]).astype(np.float64)

    def weighted(values):
        return np.sum(np.where(kept, values * ratio, 0.0))

    out = OrderedDict()
    for name, joints in parts:
        if len(joints) == 1:
            out[name] = pckh[joint_index[joints[0]]]
        else:
            out[name] = 0.5 * (pckh[joint_index[joints[0]]] + pckh[joint_index[joints[1]]])
    out["Mean"] = weighted(pckh)
    for name, row in CURVE_ROWS:
        out[name] = weighted(pck_all[row])
    return OrderedDict((k, float(v)) for k, v in out.items())


def _joint_names(gt):
    names = np.asarray(gt["dataset_joints"]).reshape(-1)
    return [str(np.asarray(n).reshape(-1)[0]).strip() if np.size(n) else "" for n in names]


def pckh_from_gt(preds, gt):
    """MPII PCKh against the ``gt_<set>.mat`` arrays.

    Args:
        preds: (N, 16, 2) predictions in MPII native order, 1-based pixel coordinates.
        gt: dict with ``dataset_joints`` (joint names), ``jnt_missing`` (16, N), ``pos_gt_src``
            (16, 2, N) and ``headboxes_src`` (2, 2, N).

    Returns:
        OrderedDict ``Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle, Mean, Mean@0.1..Mean@0.4`` in
        %. ``Mean`` excludes pelvis and thorax (joints 6, 7) and weights by visible counts;
        ``Mean@0.1`` reads row 11 (threshold 0.11) of the 0:0.01:0.5 curve, inherited (spec §9.9).

    Raises:
        KeyError: a joint of the table is not among the GT's ``dataset_joints``.
    """
    names = _joint_names(gt)
    joint_index = {}
    for _, joints in MPII_PARTS:
        for name in joints:
            if name not in names:
                raise KeyError(f"joint {name!r} not in the GT file's dataset_joints")
            joint_index[name] = names.index(name)
    pos_gt_src = np.asarray(gt["pos_gt_src"], dtype=np.float64)
    headboxes_src = np.asarray(gt["headboxes_src"], dtype=np.float64)
    pos_pred_src = np.transpose(np.asarray(preds, dtype=np.float64), [1, 2, 0])
    uv_err = np.linalg.norm(pos_pred_src - pos_gt_src, axis=1)
    headsizes = np.linalg.norm(headboxes_src[1, :, :] - headboxes_src[0, :, :], axis=0) * SC_BIAS
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = uv_err / headsizes[None, :]
    visible = 1 - np.asarray(gt["jnt_missing"])
    return pckh_table(scaled, visible, joint_index, MPII_PARTS, exclude=(6, 7))


class MPIIPCKhEvaluator:
    """MPII PCKh@0.5 of single-person predictions.

    Args:
        gt: the ground truth: a ``gt_<set>.mat`` path (read at ``evaluate``) or its dict.
        has_ground_truth: False for test sets: the predictions are saved, nothing is scored.
    """

    def __init__(self, gt, *, has_ground_truth=True):
        self.gt = gt
        self.has_ground_truth = has_ground_truth

    def evaluate(self, preds, output_dir=None, prefix=None):
        """Saves the predictions and scores them.

        Args:
            preds: (N, 16, >=2) predictions in 0-based image pixels, MPII native order.
            output_dir: when set, the predictions are saved to ``<output_dir>/pred.mat``
                (``<prefix>_pred.mat`` when ``prefix`` is given), key ``preds``, 1-based.
            prefix: file name prefix of the saved predictions.

        Returns:
            ``(OrderedDict, Mean)``; ``({'Null': 0.0}, 0.0)`` without ground truth.

        Raises:
            FileNotFoundError: naming the GT file when it is missing.
        """
        preds = np.asarray(preds)[:, :, 0:2].astype(np.float64) + 1.0
        if output_dir:
            os.makedirs(output_dir, exist_ok=True)
            name = f"{prefix}_pred.mat" if prefix else "pred.mat"
            savemat(os.path.join(output_dir, name), mdict={"preds": preds})
        if not self.has_ground_truth:
            return {"Null": 0.0}, 0.0
        gt = self.gt
        if not isinstance(gt, dict):
            if not os.path.isfile(gt):
                raise FileNotFoundError(f"MPII PCKh ground truth not found: {gt}")
            gt = loadmat(gt)
        name_value = pckh_from_gt(preds, gt)
        return name_value, name_value["Mean"]
