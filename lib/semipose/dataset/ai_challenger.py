"""AI Challenger keypoints (the raw AIC list format) and the official AIC OKS AP evaluation.

Ported from the original's lib/dataset/ai_challenger.py (MIT); spec §5.4.
"""

import json
import logging
import os
from collections import OrderedDict, defaultdict

import numpy as np

from semipose.dataset.coco import atomic_write_text, rescore
from semipose.dataset.joints import AIC_JOINTS, AIC_SIGMAS, AIC_SU, AIC_TRAINED, AIC_U2A
from semipose.dataset.joints_dataset import JointsDataset

__all__ = ["AIDataset", "aic_oks", "aic_keypoint_ap", "aic_pckh"]

logger = logging.getLogger(__name__)


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
    idx = {n: names.index(n) for n in names}
    jnt_visible = 1 - np.asarray(gt["jnt_missing"])
    uv_err = np.linalg.norm(np.asarray(preds)[:, :, :2] - np.asarray(gt["pos_gt_src"]), axis=2)
    head = np.asarray(gt["headboxes_src"], dtype=np.float64)
    headsizes = np.linalg.norm(head[:, 1, :] - head[:, 0, :], axis=1)
    labeled = np.asarray(gt["jnt_labeled"]).astype(bool)
    headsizes[~(labeled[:, -1] & labeled[:, -2])] = 95
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = uv_err / headsizes[:, None] * jnt_visible
        jnt_count = np.sum(jnt_visible, axis=0)
        rng = np.arange(0, 0.5 + 0.01, 0.01)
        pck_all = np.stack(
            [100.0 * np.sum((scaled <= t) * jnt_visible, axis=0) / jnt_count for t in rng]
        )
        pckh = 100.0 * np.sum((scaled <= 0.5) * jnt_visible, axis=0) / jnt_count
    ratio = jnt_count / np.sum(jnt_count).astype(np.float64)

    def pair(a):
        return 0.5 * (pckh[idx["l" + a]] + pckh[idx["r" + a]])

    out = OrderedDict([("Head", pckh[idx["head"]]), ("Neck", pckh[idx["neck"]])])
    for key, part in (("Shoulder", "sho"), ("Elbow", "elb"), ("Wrist", "wri"), ("Hip", "hip"),
                      ("Knee", "kne"), ("Ankle", "ank")):  # fmt: skip
        out[key] = pair(part)
    out["Mean"] = np.sum(pckh * ratio)
    for name, row in (("Mean@0.1", 11), ("Mean@0.2", 20), ("Mean@0.3", 30), ("Mean@0.4", 40)):
        out[name] = np.sum(pck_all[row] * ratio)
    return OrderedDict((k, float(v)) for k, v in out.items())


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
        self,
        root,
        image_set,
        is_train,
        transform=None,
        in_vis_thre=0.0,
        save_result=True,
        **kwargs,
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
        if not os.path.isfile(self.ann_file):
            raise FileNotFoundError(
                f"AI Challenger annotation file not found: {self.ann_file}; expected "
                "<root>/ai_challenger/<set>/keypoint_<set>_annotation.json and <set>/images/"
            )
        with open(self.ann_file) as f:
            anno = json.load(f)
        if self.data_format == "zip":
            image_dir = os.path.join(
                self.root, "ai_challenger", self.image_set, "images.zip@", "images"
            )
        else:
            image_dir = os.path.join(self.root, "ai_challenger", self.image_set, "images")
        num_native = len(self.actual_joints)
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
                joints_3d = np.zeros((num_native, 3), dtype=np.float64)
                joints_3d_vis = np.zeros((num_native, 3), dtype=np.float64)
                if self.image_set != "test":
                    joints = np.asarray(kps, dtype=np.float64).reshape(-1, 3)
                    if joints.shape[0] != num_native:
                        raise ValueError(
                            f"AIC image {image_id} {key}: {joints.shape[0]} joints, "
                            f"expected {num_native}"
                        )
                    vis = (joints[:, 2] < 3).astype(np.float64)
                    joints_3d[:, :2] = joints[:, :2]
                    joints_3d_vis[:, 0] = vis
                    joints_3d_vis[:, 1] = vis
                gt_db.append(
                    {
                        "image": image_path,
                        "center": center,
                        "scale": scale,
                        "joints_3d": joints_3d,
                        "joints_3d_vis": joints_3d_vis,
                        "filename": "",
                        "imgnum": 0,
                        "raw_box": np.array([x1, y1, x2 - x1, y2 - y1], dtype=np.float32),
                    }
                )
        return gt_db

    def image_id_from_path(self, path):
        """The AIC image id of ``path`` (loading map, else the file name without extension)."""
        image_id = self.path_to_id.get(path)
        if image_id is None:
            image_id = os.path.splitext(os.path.basename(path))[0]
        return image_id

    def evaluate(self, preds, output_dir, all_boxes, img_path, *args, prefix=None):
        """Official AIC OKS AP, plus PCKh when ``<set>/gt_<set>.npy`` exists.

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
        preds = np.asarray(preds)[:, self.su]
        all_boxes = np.asarray(all_boxes)
        per_image = defaultdict(list)
        scores = defaultdict(list)
        for i, kpt in enumerate(preds):
            image_id = self.image_id_from_path(img_path[i])
            per_image[image_id].append(kpt)
            scores[image_id].append(rescore(kpt, float(all_boxes[i][5]), self.in_vis_thre))

        if self.save_result and output_dir:
            res_folder = os.path.join(output_dir, "results")
            os.makedirs(res_folder, exist_ok=True)
            res_file = os.path.join(
                res_folder, f"keypoints_{self.image_set}_{prefix or 'results'}.json"
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
            atomic_write_text(res_file, json.dumps(results))

        if "test" in self.image_set:
            return {"Null": 0}, 0
        ap = aic_keypoint_ap({k: np.stack(v) for k, v in per_image.items()}, self.annotations)
        logger.info("=> AIC keypoint AP (%s): %.6f", self.image_set, ap)
        gt_file = os.path.join(
            self.root, "ai_challenger", self.image_set, f"gt_{self.image_set}.npy"
        )
        if not os.path.isfile(gt_file):
            return OrderedDict([("AP", ap)]), ap
        gt = np.load(gt_file, allow_pickle=True).item()
        name_value = aic_pckh(preds[:, :, :2], gt)
        name_value["AP"] = ap
        return name_value, name_value["Mean"]
