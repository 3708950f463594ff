"""AI Challenger keypoints (the raw AIC list format); ``evaluate`` calls the official AIC OKS AP
evaluator of ``semipose.evaluation.aic``.

Ported from the original's lib/dataset/ai_challenger.py (MIT); spec §5.4.
"""

import logging
import os
from collections import OrderedDict

import numpy as np

from semipose.dataset.annotations import check_aic, check_image_files
from semipose.dataset.joints import AIC_JOINTS, AIC_SU, AIC_TRAINED, AIC_U2A
from semipose.dataset.joints_dataset import JointsDataset, make_record, native_joints
from semipose.evaluation.aic import AICKeypointEvaluator, aic_keypoint_ap, aic_oks, aic_pckh

# The evaluation functions are re-exported for code that imported them from here.
__all__ = ["AIDataset", "aic_oks", "aic_keypoint_ap", "aic_pckh"]

logger = logging.getLogger(__name__)


class AIDataset(JointsDataset):
    """AI Challenger in the 24-joint union layout (14 joints filled).

    Reads ``<root>/ai_challenger/<image_set>/keypoint_<image_set>_annotation.json`` (a list of
    ``{image_id, keypoint_annotations, human_annotations}``); images are
    ``<root>/ai_challenger/<image_set>/images/<image_id>.jpg`` (``images.zip@/images/`` in zip
    mode).

    Args:
        root: data root.
        image_set: e.g. ``'train'``, ``'validation'``.
        is_train: training mode.
        transform: see ``JointsDataset``.
        in_vis_thre: joint-score threshold of the rescoring (only affects the saved scores).
        save_result: write the AIC-format results json.
        **kwargs: ``JointsDataset`` arguments.
    """

    actual_joints = AIC_JOINTS
    labeled_joints = list(AIC_TRAINED)
    su = list(AIC_SU)

    def __init__(
        self, root, image_set, is_train, transform=None, in_vis_thre=0.0, save_result=True, **kwargs
    ):
        super().__init__(root, image_set, is_train, transform, **kwargs)
        self.in_vis_thre = in_vis_thre
        self.save_result = save_result
        self.u2a_mapping = AIC_U2A
        self.ann_file = os.path.join(
            root, "ai_challenger", image_set, f"keypoint_{image_set}_annotation.json"
        )
        self.annotations = OrderedDict()
        self.path_to_id = {}
        self.db = self._map_to_union(self._selected_db(is_train))
        logger.info("=> AI Challenger %s: %d samples", image_set, len(self.db))

    def _get_db(self):
        anno = self._load_annotation_json(
            "AI Challenger annotation file",
            "<root>/ai_challenger/<set>/keypoint_<set>_annotation.json and <set>/images/",
        )
        image_dir = self._image_folder("ai_challenger", self.image_set)
        num_native = len(self.actual_joints)
        anno = self._checked(anno, image_dir)
        gt_db = []
        for img_anno in anno:
            try:
                image_id = img_anno["image_id"]
                kp_annos = img_anno["keypoint_annotations"]
                boxes = img_anno["human_annotations"]
            except (KeyError, TypeError) as exc:
                raise ValueError(f"malformed AIC image record in {self.ann_file}: {exc!r}") from exc
            image_path = os.path.join(image_dir, f"{image_id}.jpg")
            self.path_to_id[image_path] = image_id
            self.annotations[image_id] = {
                "keypoint_annotations": kp_annos,
                "human_annotations": boxes,
            }
            for key, kps in kp_annos.items():
                if key not in boxes:
                    raise ValueError(f"AIC image {image_id}: {key} has keypoints but no box")
                x1, y1, x2, y2 = (float(v) for v in boxes[key][:4])
                center, scale = self._box2cs([x1, y1, x2 - x1, y2 - y1])
                joints_3d, joints_3d_vis = native_joints(num_native)
                if self.image_set != "test":
                    joints = np.asarray(kps, dtype=np.float64).reshape(-1, 3)
                    if joints.shape[0] != num_native:
                        raise ValueError(
                            f"AIC image {image_id} {key}: {joints.shape[0]} joints, "
                            f"expected {num_native}"
                        )
                    vis = (joints[:, 2] < 3).astype(np.float64)
                    joints_3d, joints_3d_vis = native_joints(num_native, joints, vis)
                box = np.array([x1, y1, x2 - x1, y2 - y1], dtype=np.float32)
                gt_db.append(
                    make_record(image_path, center, scale, joints_3d, joints_3d_vis, raw_box=box)
                )
        return gt_db

    def _checked(self, anno, image_dir):
        """``anno`` after the checks of ``semipose.dataset.annotations`` (repairs logged, refusals
        raised; training drops the images whose file is missing)."""
        report = check_aic(
            anno,
            path=self.ann_file,
            num_joints=len(self.actual_joints),
            keypoints=self.image_set != "test",
        )
        if self.data_format != "zip":
            files = [(rec["image_id"], f"{rec['image_id']}.jpg") for rec in anno]
            missing = check_image_files(report, files, image_dir, train=self.is_train)
            anno = [rec for rec in anno if rec["image_id"] not in missing]
        report.finish(logger)
        return anno

    def image_id_from_path(self, path):
        """The AIC image id of ``path`` (loading map, else the file name without extension)."""
        image_id = self.path_to_id.get(path)
        if image_id is None:
            image_id = os.path.splitext(os.path.basename(path))[0]
        return image_id

    def evaluate(self, preds, output_dir, all_boxes, img_path, *args, prefix=None):
        """Official AIC OKS AP, plus PCKh when ``<set>/gt_<set>.npy`` exists
        (``AICKeypointEvaluator``).

        Args:
            preds: (N, 24, 3) x, y, score in image pixels (not modified).
            output_dir: results json goes to ``<output_dir>/results``.
            all_boxes: (N, >=6) centre, scale, area, box score, ...
            img_path: N image paths.
            *args: ignored.
            prefix: results file suffix.

        Returns:
            ``(OrderedDict, perf)``: ``{'AP'}`` and AP, or the PCKh table with ``AP`` and ``Mean``.
        """
        gt_file = os.path.join(
            self.root, "ai_challenger", self.image_set, f"gt_{self.image_set}.npy"
        )
        evaluator = AICKeypointEvaluator(
            self.annotations,
            self.image_set,
            in_vis_thre=self.in_vis_thre,
            save_result=self.save_result,
            has_ground_truth="test" not in self.image_set,
            pckh_gt=gt_file,
        )
        image_ids = [self.image_id_from_path(p) for p in img_path]
        return evaluator.evaluate(
            np.asarray(preds)[:, self.su], image_ids, all_boxes, output_dir, prefix=prefix
        )
