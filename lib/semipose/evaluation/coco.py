"""COCO keypoint evaluation: rescoring, per-image OKS-NMS, the results json and ``COCOeval``.

Ported from the original's lib/dataset/coco.py ``evaluate`` and its helpers (MIT); spec §5.2.
"""

import contextlib
import io
import logging
import os
import pickle
from collections import OrderedDict, defaultdict

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from semipose.common.io import atomic_write, atomic_write_json, read_json
from semipose.common.joints import COCO_SIGMAS
from semipose.dataset.annotations import check_coco
from semipose.nms.nms import oks_nms

__all__ = ["COCOKeypointEvaluator", "STATS_NAMES", "as_coco", "rescore"]

logger = logging.getLogger(__name__)

#: The names of ``COCOeval.stats`` for keypoints, in order (the original's spelling).
STATS_NAMES = [
    "AP",
    "Ap .5",
    "AP .75",
    "AP (M)",
    "AP (L)",
    "AR",
    "AR .5",
    "AR .75",
    "AR (M)",
    "AR (L)",
]


def rescore(keypoints, box_score, in_vis_thre):
    """The original's person score: box score × mean joint score over joints above the threshold.

    Args:
        keypoints: (K, 3) x, y, score.
        box_score: the detection score of the person box.
        in_vis_thre: joints scoring at or below it are left out of the mean (none left: 0).

    Returns:
        float score.
    """
    scores = keypoints[:, 2]
    valid = scores[scores > in_vis_thre]
    kpt_score = float(valid.mean()) if valid.size else 0.0
    return kpt_score * box_score


def as_coco(gt):
    """A ``pycocotools.coco.COCO`` from a ``COCO`` (returned as is) or a COCO-format dict."""
    if isinstance(gt, COCO):
        return gt
    coco = COCO()
    coco.dataset = gt
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _checked(gt, num_joints, category_id):
    """A COCO-format dict (or the json file ``gt``) after the annotation checks."""
    path = "the ground truth given to the evaluator"
    if isinstance(gt, (str, os.PathLike)):
        path = os.fspath(gt)
        gt = read_json(path, "COCO annotation file")
    check_coco(gt, path=path, num_joints=num_joints, category_id=category_id).finish(logger)
    return gt


class COCOKeypointEvaluator:
    """OKS keypoint AP of person predictions against COCO-format ground truth.

    Args:
        coco: the ground truth, a ``pycocotools.coco.COCO`` (used as it is: the datasets pass the
            one they checked), or a COCO-format dict or json path, which first goes through the
            checks of ``semipose.dataset.annotations`` (repairs logged and applied to the dict in
            place, refusals raised) with ``K = len(sigmas)`` joints. For a set without keypoint
            annotations, its images and categories are enough.
        image_set: the set's name, used in the file names (e.g. ``'val2017'``).
        oks_thre: OKS-NMS threshold (``TEST.OKS_THRE``); above 1 keeps every pose.
        in_vis_thre: joint-score threshold of the rescoring (``TEST.IN_VIS_THRE``).
        save_result: write the results json and the ``COCOeval`` pickle (``TEST.SAVE_RESULT``).
        has_ground_truth: False for test/unlabeled sets: the results json is written, nothing is
            scored.
        sigmas: (K,) OKS sigmas of the NMS, native joint order.
        category_id: category of the results (default: the first category, the person class).
    """

    def __init__(
        self, coco, image_set, *, oks_thre=0.5, in_vis_thre=0.0, save_result=True,
        has_ground_truth=True, sigmas=COCO_SIGMAS, category_id=None,
    ):  # fmt: skip
        if not isinstance(coco, COCO):
            coco = _checked(coco, len(sigmas), category_id)
        self.coco = as_coco(coco)
        self.image_set = image_set
        self.oks_thre = oks_thre
        self.in_vis_thre = in_vis_thre
        self.save_result = save_result
        self.has_ground_truth = has_ground_truth
        self.sigmas = sigmas
        self.category_id = self.coco.getCatIds()[0] if category_id is None else category_id

    def evaluate(self, preds, image_ids, all_boxes, output_dir, prefix=None):
        """Rescoring, per-image OKS-NMS, results json and ``COCOeval`` keypoint AP.

        Args:
            preds: (N, K, 3) x, y, score in original-image pixels, native joint order.
            image_ids: N COCO image ids, one per prediction.
            all_boxes: (N, >=6) centre (2), scale (2), area, box score, [bbox (4)].
            output_dir: the results go to ``<output_dir>/results``:
                ``person_keypoints_<image_set>_<prefix or 'results'>.json`` and
                ``keypoints_<image_set>_results.pkl``.
            prefix: results file suffix.

        Returns:
            ``(OrderedDict STATS_NAMES -> value, AP)``; ``({'Null': 0}, 0)`` without ground truth.
        """
        res_folder = os.path.join(output_dir, "results")
        os.makedirs(res_folder, exist_ok=True)
        results = self.keypoint_results(self.nms_per_image(preds, image_ids, all_boxes))
        if self.save_result:
            res_file = os.path.join(
                res_folder, f"person_keypoints_{self.image_set}_{prefix or 'results'}.json"
            )
            atomic_write_json(res_file, results, sort_keys=True, indent=4)
            logger.info("=> results written to %s", res_file)
        if not self.has_ground_truth:
            return {"Null": 0}, 0
        name_value = OrderedDict(self._cocoeval(results, res_folder))
        return name_value, name_value["AP"]

    def nms_per_image(self, preds, image_ids, all_boxes):
        """Groups the poses by image, rescores them and keeps the OKS-NMS survivors.

        Returns:
            list (one entry per image, in first-seen order) of lists of person dicts
            (``keypoints``, ``center``, ``scale``, ``area``, ``score``, ``image``, ``bbox``).
        """
        all_boxes = np.asarray(all_boxes)
        kpts = defaultdict(list)
        for idx, kpt in enumerate(np.asarray(preds)):
            box = all_boxes[idx]
            kpts[image_ids[idx]].append(
                {
                    "keypoints": kpt,
                    "center": box[0:2],
                    "scale": box[2:4],
                    "area": float(box[4]),
                    "score": float(box[5]),
                    "image": image_ids[idx],
                    "bbox": box[6:10] if box.shape[0] >= 10 else None,
                }
            )
        nmsed = []
        for img_kpts in kpts.values():
            for person in img_kpts:
                person["score"] = rescore(person["keypoints"], person["score"], self.in_vis_thre)
            keep = oks_nms(img_kpts, self.oks_thre, sigmas=self.sigmas)
            nmsed.append([img_kpts[k] for k in keep] if keep else img_kpts)
        return nmsed

    def keypoint_results(self, nmsed):
        """The results json entries (``image_id``, ``category_id``, flat ``keypoints``,
        ``score``, ``center``, ``scale`` and ``bbox`` when known) of ``nms_per_image``'s output."""
        results = []
        for img_kpts in nmsed:
            for person in img_kpts:
                entry = {
                    "image_id": int(person["image"]),
                    "category_id": int(self.category_id),
                    "keypoints": [float(v) for v in np.asarray(person["keypoints"]).reshape(-1)],
                    "score": float(person["score"]),
                    "center": [float(v) for v in person["center"]],
                    "scale": [float(v) for v in person["scale"]],
                }
                if person["bbox"] is not None:
                    entry["bbox"] = [float(v) for v in person["bbox"]]
                results.append(entry)
        return results

    def _cocoeval(self, results, res_folder):
        """``COCOeval`` keypoints on ``results``: ``[(name, value)]`` in STATS_NAMES order."""
        if not results:
            logger.warning("=> no detections to evaluate")
            return [(name, 0.0) for name in STATS_NAMES]
        # loadRes adds fields to its input; evaluate on copies without the extra bbox/centre fields.
        dets = [
            {k: r[k] for k in ("image_id", "category_id", "keypoints", "score")} for r in results
        ]
        with contextlib.redirect_stdout(io.StringIO()):
            coco_dt = self.coco.loadRes(dets)
            coco_eval = COCOeval(self.coco, coco_dt, "keypoints")
            coco_eval.params.useSegm = None
            # The evaluator's sigmas (COCO's are COCOeval's own defaults; a custom set has its own).
            coco_eval.params.kpt_oks_sigmas = np.asarray(self.sigmas, dtype=np.float64)
            coco_eval.evaluate()
            coco_eval.accumulate()
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            coco_eval.summarize()
        logger.info("COCOeval keypoints (%s):\n%s", self.image_set, buf.getvalue())
        if self.save_result:
            eval_file = os.path.join(res_folder, f"keypoints_{self.image_set}_results.pkl")
            atomic_write(eval_file, lambda f: pickle.dump(coco_eval, f, pickle.HIGHEST_PROTOCOL))
        return [(name, float(coco_eval.stats[i])) for i, name in enumerate(STATS_NAMES)]
