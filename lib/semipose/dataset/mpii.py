"""MPII human pose (HRNet / SimpleBaseline json) and its PCKh evaluation.

Ported from the original's lib/dataset/mpii.py (MIT); spec §5.3.
"""

import json
import logging
import os
from collections import OrderedDict

import numpy as np
from scipy.io import loadmat, savemat

from semipose.dataset.joints import MPII_JOINTS, MPII_SU, MPII_TRAINED, MPII_U2A
from semipose.dataset.joints_dataset import JointsDataset

__all__ = ["MPIIDataset", "pckh_from_gt"]

logger = logging.getLogger(__name__)

SC_BIAS = 0.6
PCKH_THRESHOLD = 0.5


def _joint_index(names, name):
    hits = np.flatnonzero(names == name)
    if hits.size == 0:
        raise KeyError(f"joint {name!r} not in the GT file's dataset_joints")
    return int(hits[0])


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
    """
    names = np.asarray(gt["dataset_joints"]).reshape(-1)
    names = np.array(
        [str(np.asarray(n).reshape(-1)[0]).strip() if np.size(n) else "" for n in names]
    )
    idx = {n: _joint_index(names, n) for n in (
        "head", "lsho", "lelb", "lwri", "lhip", "lkne", "lank",
        "rsho", "relb", "rwri", "rkne", "rank", "rhip",
    )}  # fmt: skip
    jnt_missing = np.asarray(gt["jnt_missing"])
    pos_gt_src = np.asarray(gt["pos_gt_src"], dtype=np.float64)
    headboxes_src = np.asarray(gt["headboxes_src"], dtype=np.float64)
    pos_pred_src = np.transpose(np.asarray(preds, dtype=np.float64), [1, 2, 0])

    jnt_visible = 1 - jnt_missing
    uv_err = np.linalg.norm(pos_pred_src - pos_gt_src, axis=1)
    headsizes = np.linalg.norm(headboxes_src[1, :, :] - headboxes_src[0, :, :], axis=0) * SC_BIAS
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled_uv_err = uv_err / headsizes[None, :] * jnt_visible
        jnt_count = np.sum(jnt_visible, axis=1)
        rng = np.arange(0, 0.5 + 0.01, 0.01)
        pck_all = np.zeros((len(rng), jnt_visible.shape[0]))
        for r, threshold in enumerate(rng):
            hits = (scaled_uv_err <= threshold) * jnt_visible
            pck_all[r] = 100.0 * np.sum(hits, axis=1) / jnt_count
        hits = (scaled_uv_err <= PCKH_THRESHOLD) * jnt_visible
        pckh = 100.0 * np.sum(hits, axis=1) / jnt_count

    mask = np.zeros(pckh.shape, dtype=bool)
    mask[6:8] = True
    pckh_m = np.ma.array(pckh, mask=mask)
    count_m = np.ma.array(jnt_count, mask=mask)
    jnt_ratio = count_m / np.sum(count_m).astype(np.float64)

    def pair(a, b):
        return 0.5 * (pckh[idx[a]] + pckh[idx[b]])

    name_value = [
        ("Head", pckh[idx["head"]]),
        ("Shoulder", pair("lsho", "rsho")),
        ("Elbow", pair("lelb", "relb")),
        ("Wrist", pair("lwri", "rwri")),
        ("Hip", pair("lhip", "rhip")),
        ("Knee", pair("lkne", "rkne")),
        ("Ankle", pair("lank", "rank")),
        ("Mean", np.sum(pckh_m * jnt_ratio)),
        ("Mean@0.1", np.sum(pck_all[11, :] * jnt_ratio)),
        ("Mean@0.2", np.sum(pck_all[20, :] * jnt_ratio)),
        ("Mean@0.3", np.sum(pck_all[30, :] * jnt_ratio)),
        ("Mean@0.4", np.sum(pck_all[40, :] * jnt_ratio)),
    ]
    return OrderedDict((k, float(v)) for k, v in name_value)


class MPIIDataset(JointsDataset):
    """MPII in the 24-joint union layout (16 joints filled).

    Args:
        root: data root holding ``mpii/annot/<image_set>.json`` and ``mpii/images/``.
        image_set: e.g. ``'train'``, ``'validation'``, ``'test'``.
        is_train: training mode.
        transform: see ``JointsDataset``.
        **kwargs: ``JointsDataset`` arguments (image_size, heatmap_size, sigma, ...).
    """

    actual_joints = MPII_JOINTS
    labeled_joints = list(MPII_TRAINED)
    su = list(MPII_SU)

    def __init__(self, root, image_set, is_train, transform=None, **kwargs):
        super().__init__(root, image_set, is_train, transform, **kwargs)
        self.u2a_mapping = MPII_U2A
        self.ann_file = os.path.join(root, "mpii", "annot", f"{image_set}.json")
        self.db = self._map_to_union(self._selected_db(is_train))
        logger.info("=> MPII %s: %d samples", image_set, len(self.db))

    def _get_db(self):
        if not os.path.isfile(self.ann_file):
            raise FileNotFoundError(
                f"MPII annotation file not found: {self.ann_file}; expected "
                "<root>/mpii/annot/<set>.json and images in <root>/mpii/images/"
            )
        with open(self.ann_file) as f:
            anno = json.load(f)
        num_native = len(self.actual_joints)
        if self.data_format == "zip":
            image_dir = os.path.join(self.root, "mpii", "images.zip@", "images")
        else:
            image_dir = os.path.join(self.root, "mpii", "images")
        gt_db = []
        for k, a in enumerate(anno):
            try:
                c = np.array(a["center"], dtype=np.float64)
                s = np.array([a["scale"], a["scale"]], dtype=np.float64)
                image_name = a["image"]
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"malformed MPII record {k} in {self.ann_file}: {exc!r}") from exc
            # The MPII centre sits low on the body and its scale is tight: move up, enlarge by 1.25.
            if c[0] != -1:
                c[1] = c[1] + 15 * s[1]
                s = s * 1.25
            c = c - 1  # 1-based (MATLAB) to 0-based
            joints_3d = np.zeros((num_native, 3), dtype=np.float64)
            joints_3d_vis = np.zeros((num_native, 3), dtype=np.float64)
            if self.image_set != "test":
                joints = np.array(a["joints"], dtype=np.float64)
                joints[:, 0:2] = joints[:, 0:2] - 1
                joints_vis = np.array(a["joints_vis"], dtype=np.float64)
                if len(joints_vis) != num_native or joints.shape[0] != num_native:
                    raise ValueError(
                        f"MPII record {k} in {self.ann_file} has {joints.shape[0]} joints, "
                        f"expected {num_native}"
                    )
                joints_3d[:, 0:2] = joints[:, 0:2]
                joints_3d_vis[:, 0] = joints_vis
                joints_3d_vis[:, 1] = joints_vis
            gt_db.append(
                {
                    "image": os.path.join(image_dir, image_name),
                    "center": c,
                    "scale": s,
                    "joints_3d": joints_3d,
                    "joints_3d_vis": joints_3d_vis,
                    "filename": "",
                    "imgnum": 0,
                }
            )
        return gt_db

    def evaluate(self, preds, output_dir, all_boxes=None, img_path=None, *args, prefix=None):
        """PCKh@0.5 against ``<root>/mpii/annot/gt_<image_set>.mat``.

        Args:
            preds: (N, 24, >=2) predictions in 0-based image pixels (not modified).
            output_dir: the predictions are saved to ``<output_dir>/pred.mat``
                (``<prefix>_pred.mat`` when ``prefix`` is given), key ``preds``, 1-based, MPII
                native order.
            all_boxes: unused (kept for a common signature).
            img_path: unused.
            *args: ignored.
            prefix: file name prefix of the saved predictions.

        Returns:
            ``(OrderedDict, Mean)``; ``({'Null': 0.0}, 0.0)`` for test sets.

        Raises:
            FileNotFoundError: naming the GT file when it is missing.
        """
        preds = np.asarray(preds)[:, self.su, 0:2].astype(np.float64) + 1.0
        if output_dir:
            os.makedirs(output_dir, exist_ok=True)
            name = f"{prefix}_pred.mat" if prefix else "pred.mat"
            savemat(os.path.join(output_dir, name), mdict={"preds": preds})
        if "test" in self.image_set:
            return {"Null": 0.0}, 0.0
        gt_file = os.path.join(self.root, "mpii", "annot", f"gt_{self.image_set}.mat")
        if not os.path.isfile(gt_file):
            raise FileNotFoundError(f"MPII PCKh ground truth not found: {gt_file}")
        gt = loadmat(gt_file)
        name_value = pckh_from_gt(preds, gt)
        return name_value, name_value["Mean"]
