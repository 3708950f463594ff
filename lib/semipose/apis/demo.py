"""The demo's pictures: predicted skeletons beside the ground truth on val images, and the learning
curve of a run, both from the files a training run leaves (no model is loaded).

    python -m semipose.apis.demo --cfg experiments/synthetic/96x64_SYN_PoseDual_JointCut.yaml

finds the run's folder, the val annotations and images from the config (as train.py names them)
and writes ``demo_predictions.png`` and ``learning_curve.png`` into the run's folder.
"""
import argparse
import logging
import os
import sys

import cv2
import numpy as np

from semipose.common.io import read_json
from semipose.utils.vis import COCO_SKELETON, draw_poses

logger = logging.getLogger(__name__)

__all__ = ["prediction_panels", "learning_curve", "best_results_file", "main"]

#: results-json suffix per evaluated head, as validation writes them
RESULT_SUFFIX = {"net1": "eval_1", "net2": "eval_2", "ensemble": "eval_3"}


def _label(image, text):
    cv2.rectangle(image, (0, 0), (8 + 9 * len(text), 22), (0, 0, 0), -1)
    cv2.putText(image, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                cv2.LINE_AA)
    return image


def best_results_file(run_dir, head="ensemble"):
    """The validation results json of ``head`` in ``<run_dir>/results`` (net 1's when the method
    has no such head).

    Raises:
        FileNotFoundError: the run has no validation results.
    """
    folder = os.path.join(run_dir, "results")
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    for suffix in (RESULT_SUFFIX.get(head, head), "eval_1"):
        found = [n for n in names if n.endswith(f"_{suffix}.json")]
        if found:
            return os.path.join(folder, found[0])
    raise FileNotFoundError(f"no validation results json under {folder} (train and validate first)")


def prediction_panels(results_file, ann_file, image_dir, out_png, num_images=6, *, kpt_thr=0.2,
                      score_thr=0.2, columns=3, layout=None):
    """Writes a PNG: for each of the first ``num_images`` val images (those with people), the
    ground truth (left) beside the predictions (right).

    Args:
        results_file: COCO keypoint results json (validation's ``results/*.json``).
        ann_file: the COCO annotation json of the val set.
        image_dir: folder of the val images.
        out_png: where to write the picture.
        num_images: how many images.
        kpt_thr: predicted joints scoring at or below it are not drawn.
        score_thr: predicted persons scoring at or below it are not drawn.
        columns: image pairs per row.
        layout: the set's ``KeypointLayout`` (skeleton and colours; None: COCO's).

    Returns:
        ``out_png``.
    """
    style = {} if layout is None else {"limb_colors": layout.limb_colors,
                                       "joint_colors": layout.joint_colors}
    skeleton = COCO_SKELETON if layout is None else layout.skeleton
    gt = read_json(ann_file, what="COCO annotation json")
    results = read_json(results_file, what="COCO keypoint results json")
    people = {}
    for ann in gt["annotations"]:
        kps = np.asarray(ann["keypoints"], dtype=np.float32).reshape(-1, 3)
        if (kps[:, 2] > 0).any():
            kps[:, 2] = (kps[:, 2] > 0).astype(np.float32)
            people.setdefault(ann["image_id"], []).append(kps)
    preds = {}
    for res in results:
        if res["score"] > score_thr:
            preds.setdefault(res["image_id"], []).append(
                np.asarray(res["keypoints"], dtype=np.float32).reshape(-1, 3))
    images = [im for im in gt["images"] if im["id"] in people][:num_images]
    if not images:
        raise ValueError(f"{ann_file} has no image with labeled people")
    tiles = []
    for im in images:
        image = cv2.imread(os.path.join(image_dir, im["file_name"]), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"cannot read {os.path.join(image_dir, im['file_name'])}")
        left = _label(draw_poses(image, people[im["id"]], skeleton, kpt_thr=0.5, **style),
                      "ground truth")
        right = _label(draw_poses(image, preds.get(im["id"], []), skeleton, kpt_thr=kpt_thr,
                                  **style), "prediction")
        tiles.append(np.hstack([left, np.full((image.shape[0], 4, 3), 255, np.uint8), right]))
    h, w = tiles[0].shape[:2]
    tiles = [cv2.resize(t, (w, h)) for t in tiles]
    while len(tiles) % columns:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.hstack(tiles[i:i + columns]) for i in range(0, len(tiles), columns)]
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    if not cv2.imwrite(out_png, np.vstack(rows)):
        raise OSError(f"could not write {out_png}")
    return out_png


#: BGR line colour per evaluated head
CURVE_COLORS = {"net1": (200, 120, 30), "net2": (40, 160, 40), "ensemble": (30, 30, 210)}


def learning_curve(metrics_file, out_png, title="", size=(640, 400)):
    """Draws AP per evaluated head against elapsed training seconds (validation excluded) from a
    run's ``metrics.jsonl`` into a PNG (drawn with OpenCV: no plotting package needed).

    Returns:
        ``out_png``.

    Raises:
        ValueError: the run has no validated epoch yet.
    """
    from semipose.engine.events import read_metrics

    epochs = read_metrics(metrics_file, kind="epoch")
    seconds = np.cumsum([r.get("elapsed_s", 0.0) for r in epochs])
    curves = {}
    for sec, r in zip(seconds, epochs):
        for head, value in r.get("ap", {}).items():
            curves.setdefault(head, []).append((float(sec), float(value)))
    if not curves:
        raise ValueError(f"{metrics_file} has no validated epoch")
    w, h = size
    left, right, top, bottom = 56, 16, 28, 44
    img = np.full((h, w, 3), 255, np.uint8)
    x_max = max(float(seconds[-1]), 1.0)
    y_max = min(1.0, max(0.1, np.ceil(max(v for c in curves.values() for _, v in c) * 10) / 10))

    def px(sec, value):
        return (int(left + (w - left - right) * sec / x_max),
                int(h - bottom - (h - top - bottom) * value / y_max))

    font, grey = cv2.FONT_HERSHEY_SIMPLEX, (150, 150, 150)
    for i in range(6):  # grid and tick labels
        value, sec = y_max * i / 5, x_max * i / 5
        cv2.line(img, px(0, value), px(x_max, value), (230, 230, 230), 1)
        cv2.putText(img, f"{value:.2f}", (6, px(0, value)[1] + 4), font, 0.4, grey, 1, cv2.LINE_AA)
        x = px(sec, 0)[0]
        cv2.putText(img, f"{sec:.0f}", (x - 10, h - bottom + 16), font, 0.4, grey, 1, cv2.LINE_AA)
    cv2.rectangle(img, px(0, y_max), px(x_max, 0), (0, 0, 0), 1)
    cv2.putText(img, "training seconds", (w // 2 - 60, h - 8), font, 0.45, (0, 0, 0), 1,
                cv2.LINE_AA)
    cv2.putText(img, title or "COCO AP on the val set", (left, 18), font, 0.45, (0, 0, 0), 1,
                cv2.LINE_AA)
    for k, (head, points) in enumerate(curves.items()):
        color = CURVE_COLORS.get(head, (120, 120, 120))
        pts = np.array([px(sec, v) for sec, v in points], np.int32)
        cv2.polylines(img, [pts], False, color, 2, cv2.LINE_AA)
        for p in pts:
            cv2.circle(img, (int(p[0]), int(p[1])), 3, color, -1, cv2.LINE_AA)
        y = top + 18 + 18 * k
        cv2.line(img, (left + 10, y - 4), (left + 34, y - 4), color, 2)
        cv2.putText(img, f"{head} {points[-1][1]:.3f}", (left + 40, y), font, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    if not cv2.imwrite(out_png, img):
        raise OSError(f"could not write {out_png}")
    return out_png


def final_table(metrics_file, arch=""):
    """The AP tables of the last validated epoch of a run (one per evaluated head), as text."""
    from semipose.engine.evaluator import format_name_value
    from semipose.engine.events import read_metrics

    epochs = read_metrics(metrics_file, kind="epoch")
    validated = [r for r in epochs if "metrics" in r]
    if not validated:
        raise ValueError(f"{metrics_file} has no validated epoch")
    last = validated[-1]
    seconds = sum(r.get("elapsed_s", 0.0) for r in epochs if r["epoch"] <= last["epoch"])
    lines = [f"AP after epoch {last['epoch']} ({seconds:.0f} s of training):"]
    for head, table in last["metrics"].items():
        table = table[0] if isinstance(table, list) else table
        lines += [head, format_name_value(table, arch)]
    return "\n".join(lines)


def run_paths(cfg, cfg_path):
    """``(run folder, val annotation json, val image folder)`` of a COCO-format or custom config
    (a custom set's ``file_name``s are relative to ``VAL_IMAGES``, else to ``ROOT``)."""
    from semipose.config import get_model_name
    from semipose.dataset.custom import resolve_path
    from semipose.utils.logger import output_subdirs

    run_dir = os.path.join(cfg.OUTPUT_DIR or "output",
                           *output_subdirs(cfg, cfg_path, get_model_name(cfg)[0]))
    if cfg.DATASET.TEST_DATASET == "custom":
        root = cfg.DATASET.ROOT
        images = resolve_path(root, cfg.DATASET.VAL_IMAGES) if cfg.DATASET.VAL_IMAGES else root
        return run_dir, resolve_path(root, cfg.DATASET.VAL_ANN), images
    coco = os.path.join(cfg.DATASET.ROOT, "coco")
    return (run_dir, os.path.join(coco, "annotations", "person_keypoints_val2017.json"),
            os.path.join(coco, "images", "val2017"))


def main(argv=None):
    from semipose.config import load_config
    from semipose.engine.cli import split_flags

    parser = argparse.ArgumentParser(description="Pictures of a finished training run")
    parser.add_argument("--cfg", required=True, help="the experiment YAML the run was trained with")
    parser.add_argument("--head", default="ensemble", help="net1, net2 or ensemble")
    parser.add_argument("--num-images", type=int, default=6)
    argv = list(sys.argv[1:] if argv is None else argv)
    flags, opts = split_flags(parser, argv)
    args = parser.parse_args(flags)
    args.opts = opts
    cfg = load_config(args.cfg, args.opts)
    run_dir, ann_file, image_dir = run_paths(cfg, args.cfg)
    from semipose.dataset.build import dataset_layout

    panels = prediction_panels(
        best_results_file(run_dir, args.head), ann_file, image_dir,
        os.path.join(run_dir, "demo_predictions.png"), args.num_images,
        layout=dataset_layout(cfg),
    )
    print(f"predictions beside the ground truth: {panels}")
    curve = learning_curve(os.path.join(run_dir, "metrics.jsonl"),
                           os.path.join(run_dir, "learning_curve.png"))
    print(f"learning curve: {curve}")
    from semipose.config import get_model_name

    print(final_table(os.path.join(run_dir, "metrics.jsonl"), get_model_name(cfg)[1]))
    return 0


if __name__ == "__main__":
    from semipose.common.errors import run_cli

    raise SystemExit(run_cli(main))
