"""MPII human pose (HRNet / SimpleBaseline json); ``evaluate`` calls the PCKh evaluator of
``semipose.evaluation.pckh``.

Ported from the original's lib/dataset/mpii.py (MIT); spec §5.3.
"""

import logging
import os

import numpy as np

from semipose.dataset.annotations import check_image_files, check_mpii
from semipose.dataset.joints import MPII_JOINTS, MPII_SU, MPII_TRAINED, MPII_U2A
from semipose.dataset.joints_dataset import JointsDataset, make_record, native_joints
from semipose.evaluation.pckh import MPIIPCKhEvaluator, pckh_from_gt

# pckh_from_gt is re-exported for code that imported it from here.
__all__ = ["MPIIDataset", "pckh_from_gt"]

logger = logging.getLogger(__name__)


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
        anno = self._load_annotation_json(
            "MPII annotation file",
            "<root>/mpii/annot/<set>.json and images in <root>/mpii/images/",
        )
        num_native = len(self.actual_joints)
        image_dir = self._image_folder("mpii")
        anno = self._checked(anno, image_dir)
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
            joints_3d, joints_3d_vis = native_joints(num_native)
            if self.image_set != "test":
                joints = np.array(a["joints"], dtype=np.float64)
                joints[:, 0:2] = joints[:, 0:2] - 1
                joints_vis = np.array(a["joints_vis"], dtype=np.float64)
                if len(joints_vis) != num_native or joints.shape[0] != num_native:
                    raise ValueError(
                        f"MPII record {k} in {self.ann_file} has {joints.shape[0]} joints, "
                        f"expected {num_native}"
                    )
                joints_3d, joints_3d_vis = native_joints(num_native, joints, joints_vis)
            gt_db.append(
                make_record(os.path.join(image_dir, image_name), c, s, joints_3d, joints_3d_vis)
            )
        return gt_db

    def _checked(self, anno, image_dir):
        """``anno`` after the checks of ``semipose.dataset.annotations`` (refusals raised; training
        drops the records whose image file is missing, with a warning)."""
        report = check_mpii(
            anno,
            path=self.ann_file,
            num_joints=len(self.actual_joints),
            joints=self.image_set != "test",
        )
        if self.data_format != "zip":
            names = sorted({rec["image"] for rec in anno if isinstance(rec, dict)})
            missing = check_image_files(
                report, [(n, n) for n in names], image_dir, train=self.is_train
            )
            anno = [rec for rec in anno if rec.get("image") not in missing]
        report.finish(logger)
        return anno

    def evaluate(self, preds, output_dir, all_boxes=None, img_path=None, *args, prefix=None):
        """PCKh@0.5 against ``<root>/mpii/annot/gt_<image_set>.mat`` (``MPIIPCKhEvaluator``).

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
        gt_file = os.path.join(self.root, "mpii", "annot", f"gt_{self.image_set}.mat")
        evaluator = MPIIPCKhEvaluator(gt_file, has_ground_truth="test" not in self.image_set)
        return evaluator.evaluate(np.asarray(preds)[:, self.su], output_dir, prefix=prefix)
