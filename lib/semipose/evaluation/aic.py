"""AI Challenger keypoint evaluation: the official OKS AP, and PCKh when a GT table is given.

Ported from the original's lib/dataset/ai_challenger.py ``evaluate`` (MIT); spec §5.4.
"""

import logging
import os
from collections import OrderedDict, defaultdict

import numpy as np

from semipose.common.io import atomic_write_json
from semipose.common.joints import AIC_SIGMAS
from semipose.evaluation.coco import rescore
from semipose.evaluation.pckh import pckh_table

__all__ = ["AICKeypointEvaluator", "aic_keypoint_ap", "aic_oks", "aic_pckh"]

logger = logging.getLogger(__name__)

#: Head size (px) used when the head top or the neck is unlabeled (the original's fallback).
DEFAULT_HEAD_SIZE = 95
AIC_PARTS = (
    ("Head", ("head",)), ("Neck", ("neck",)), ("Shoulder", ("lsho", "rsho")),
    ("Elbow", ("lelb", "relb")), ("Wrist", ("lwri", "rwri")), ("Hip", ("lhip", "rhip")),
    ("Knee", ("lkne", "rkne")), ("Ankle", ("lank", "rank")),
)  # fmt: skip


def aic_oks(gt_kpts, gt_boxes, pred_kpts, delta=AIC_SIGMAS):
    """The official AIC OKS matrix between the people of one image.

    Args:
        gt_kpts: (G, 14, 3) GT keypoints (visibility 1 visible, 2 occluded, 3 unlabeled).
        gt_boxes: (G, 4) GT boxes ``[x1, y1, x2, y2]``.
        pred_kpts: (P, 14, >=2) predicted keypoints.
        delta: (14,) per-joint deltas (already doubled).

    Returns:
        (G, P) OKS; the mean over the GT's visible (``v == 1``) joints of ``exp(-d^2 / (2 delta^2
        (area + 1)))``, ``area`` = box w*h; 0 for a GT with no visible joint.
    """
    gt_kpts = np.asarray(gt_kpts, dtype=np.float64).reshape(-1, 14, 3)
    pred_kpts = np.asarray(pred_kpts, dtype=np.float64).reshape(-1, 14, np.shape(pred_kpts)[-1])
    gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    oks = np.zeros((gt_kpts.shape[0], pred_kpts.shape[0]))
    if pred_kpts.shape[0] == 0:
        return oks
    for i in range(gt_kpts.shape[0]):
        visible = gt_kpts[i, :, 2] == 1
        if not visible.any():
            continue
        box = gt_boxes[i]
        area = np.float32((box[3] - box[1]) * (box[2] - box[0]))
        d2 = np.sum((pred_kpts[:, visible, :2] - gt_kpts[i, visible, :2][None]) ** 2, axis=-1)
        oks[i] = np.mean(np.exp(-d2 / 2 / delta[visible] ** 2 / (area + 1)), axis=1)
    return oks


def aic_keypoint_ap(predictions, annotations, delta=AIC_SIGMAS):
    """The official AIC keypoint score.

    Args:
        predictions: image id -> (P, 14, >=2) predicted keypoints.
        annotations: image id -> ``{'keypoint_annotations': {name: 42 values},
            'human_annotations': {name: [x1, y1, x2, y2]}}``.
        delta: (14,) deltas.

    Returns:
        Mean over thresholds 0.5:0.05:0.95 of (#GT whose best OKS > t) / denominator, where the
        denominator adds ``max(#gt, #pred)`` per predicted image and ``#gt`` per image without
        predictions.
    """
    best = []
    denominator = 0
    for image_id, anno in annotations.items():
        names = list(anno["keypoint_annotations"].keys())
        if image_id not in predictions:
            denominator += len(names)
            continue
        pred = np.asarray(predictions[image_id], dtype=np.float64)
        gt_kpts = np.array([anno["keypoint_annotations"][n] for n in names], dtype=np.float64)
        gt_boxes = np.array([anno["human_annotations"][n] for n in names], dtype=np.float64)
        oks = aic_oks(gt_kpts, gt_boxes, pred, delta)
        if oks.size:
            best.append(oks.max(axis=1))
        denominator += max(len(names), pred.shape[0])
    best = np.concatenate(best) if best else np.zeros(0)
    if denominator == 0:
        return 0.0
    return float(
        np.mean([np.sum(best > t) / np.float32(denominator) for t in np.linspace(0.5, 0.95, 10)])
    )


def aic_pckh(preds, gt):
    """PCKh@0.5 of the original's AIC evaluation (SC_BIAS 1, 95 px head when head/neck unlabeled).

    Args:
        preds: (N, 14, 2) predictions, AIC native order.
        gt: dict with ``dataset_joints`` (14 names), ``jnt_missing`` (N, 14), ``pos_gt_src`` (N, 14,
            2), ``headboxes_src`` (N, 2, 2), ``jnt_labeled`` (N, 14) bool.

    Returns:
        OrderedDict ``Head, Neck, Shoulder, Elbow, Wrist, Hip, Knee, Ankle, Mean, Mean@0.1..0.4`` in
        %.
    """
    names = [str(n).strip() for n in np.asarray(gt["dataset_joints"]).reshape(-1)]
    joint_index = {n: names.index(n) for n in names}
    uv_err = np.linalg.norm(np.asarray(preds)[:, :, :2] - np.asarray(gt["pos_gt_src"]), axis=2)
    head = np.asarray(gt["headboxes_src"], dtype=np.float64)
    headsizes = np.linalg.norm(head[:, 1, :] - head[:, 0, :], axis=1)
    labeled = np.asarray(gt["jnt_labeled"]).astype(bool)
    headsizes[~(labeled[:, -1] & labeled[:, -2])] = DEFAULT_HEAD_SIZE
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = uv_err / headsizes[:, None]
    visible = 1 - np.asarray(gt["jnt_missing"])
    return pckh_table(scaled.T, visible.T, joint_index, AIC_PARTS)


class AICKeypointEvaluator:
    """The official AI Challenger keypoint AP of person predictions (plus PCKh when given).

    Args:
        annotations: image id -> ``{'keypoint_annotations': ..., 'human_annotations': ...}`` (the
            raw AIC annotation list keyed by ``image_id``).
        image_set: the set's name, used in the results file name.
        in_vis_thre: joint-score threshold of the rescoring (only affects the saved scores).
        save_result: write the AIC-format results json.
        has_ground_truth: False for test sets: the results json is written, nothing is scored.
        pckh_gt: the PCKh table's ground truth (``aic_pckh``'s ``gt``): a dict, or a ``.npy`` path
            read at ``evaluate`` when the file exists; None: AP only.
    """

    def __init__(
        self, annotations, image_set, *, in_vis_thre=0.0, save_result=True,
        has_ground_truth=True, pckh_gt=None,
    ):  # fmt: skip
        self.annotations = annotations
        self.image_set = image_set
        self.in_vis_thre = in_vis_thre
        self.save_result = save_result
        self.has_ground_truth = has_ground_truth
        self.pckh_gt = pckh_gt

    def _pckh_gt(self):
        if self.pckh_gt is None or isinstance(self.pckh_gt, dict):
            return self.pckh_gt
        if not os.path.isfile(self.pckh_gt):
            return None
        return np.load(self.pckh_gt, allow_pickle=True).item()

    def evaluate(self, preds, image_ids, all_boxes, output_dir, prefix=None):
        """Groups the poses by image, writes the results json and scores them.

        Args:
            preds: (N, 14, 3) x, y, score in image pixels, AIC native order.
            image_ids: N AIC image ids, one per prediction.
            all_boxes: (N, >=6) centre, scale, area, box score, ...
            output_dir: the results json goes to
                ``<output_dir>/results/keypoints_<image_set>_<prefix or 'results'>.json``.
            prefix: results file suffix.

        Returns:
            ``(OrderedDict, perf)``: ``{'AP'}`` and AP, or, with the PCKh ground truth, the PCKh
            table plus ``AP`` and ``Mean``; ``({'Null': 0}, 0)`` without ground truth.
        """
        preds = np.asarray(preds)
        all_boxes = np.asarray(all_boxes)
        per_image = defaultdict(list)
        scores = defaultdict(list)
        for i, kpt in enumerate(preds):
            per_image[image_ids[i]].append(kpt)
            scores[image_ids[i]].append(rescore(kpt, float(all_boxes[i][5]), self.in_vis_thre))

        if self.save_result and output_dir:
            res_file = os.path.join(
                output_dir, "results", f"keypoints_{self.image_set}_{prefix or 'results'}.json"
            )
            results = [
                {
                    "image_id": image_id,
                    "keypoint_annotations": {
                        f"human{n + 1}": [float(v) for v in k.reshape(-1)]
                        for n, k in enumerate(kpts)
                    },
                    "scores": scores[image_id],
                }
                for image_id, kpts in per_image.items()
            ]
            atomic_write_json(res_file, results)

        if not self.has_ground_truth:
            return {"Null": 0}, 0
        ap = aic_keypoint_ap({k: np.stack(v) for k, v in per_image.items()}, self.annotations)
        logger.info("=> AIC keypoint AP (%s): %.6f", self.image_set, ap)
        gt = self._pckh_gt()
        if gt is None:
            return OrderedDict([("AP", ap)]), ap
        name_value = aic_pckh(preds[:, :, :2], gt)
        name_value["AP"] = ap
        return name_value, name_value["Mean"]
