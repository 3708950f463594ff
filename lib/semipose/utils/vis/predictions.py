"""Drawing predictions: ``draw_predictions`` for one image and ``save_drawn_predictions`` for the
first images of a validation run."""
import logging
import os

import cv2
import numpy as np

from semipose.utils.vis.draw import draw_poses
from semipose.utils.vis.layouts import KeypointLayout, layout_for_dataset

__all__ = ["draw_predictions", "save_drawn_predictions", "unique_output_path"]

logger = logging.getLogger(__name__)


def _layout(layout):
    return layout if isinstance(layout, KeypointLayout) else layout_for_dataset(layout)


def draw_predictions(image, poses, layout="coco", kpt_thr=0.3, draw_bbox=True):
    """A copy of ``image`` with each person's skeleton, box and score drawn.

    Args:
        image: (H, W, 3) uint8 BGR image.
        poses: list of ``PersonPose`` (or dicts with ``keypoints`` and optional ``bbox``,
            ``score``), keypoints in ``layout``'s native order.
        layout: a ``KeypointLayout`` or its name.
        kpt_thr: joints scoring at or below it are not drawn.
        draw_bbox: draw the boxes and the person scores.

    Returns:
        The drawn (H, W, 3) uint8 image.
    """
    lay = _layout(layout)
    return draw_poses(
        image,
        poses,
        lay.skeleton,
        draw_bbox=draw_bbox,
        kpt_thr=kpt_thr,
        limb_colors=lay.limb_colors,
        joint_colors=lay.joint_colors,
    )


def unique_output_path(folder, name, taken):
    """``folder/name``, with ``_1``, ``_2``... before the extension when ``taken`` holds it.

    ``taken`` (a set of paths) is updated.
    """
    stem, ext = os.path.splitext(os.path.basename(name))
    path = os.path.join(folder, stem + ext)
    k = 1
    while path in taken:
        path = os.path.join(folder, f"{stem}_{k}{ext}")
        k += 1
    taken.add(path)
    return path


def save_drawn_predictions(
    image_paths,
    preds,
    boxes,
    output_dir,
    num_images,
    *,
    layout="coco",
    kpt_thr=0.3,
    in_vis_thre=0.0,
):
    """Draws the predictions of the first ``num_images`` images of a validation run.

    Made for ``valid.py --vis N``: it takes the arrays the engine's ``validate`` collects.

    Args:
        image_paths: N person records' image paths (``meta['image']``, in record order).
        preds: (N, 24, 3) union-layout (or (N, J, 3) native) x, y, score in image pixels.
        boxes: (N, >=6) ``validate``'s ``all_boxes`` (centre, scale, area, box score and, from
            column 6, the raw ``x, y, w, h`` box) or None (no boxes drawn, score from joints only).
        output_dir: the images go to ``<output_dir>/vis/<image file name>``.
        num_images: how many distinct images, in order of first appearance (<= 0: none).
        layout: a ``KeypointLayout`` or its name (``'coco'``, ``'mpii'``, ``'ai_challenger'``).
        kpt_thr: joints scoring at or below it are not drawn.
        in_vis_thre: joint threshold of the drawn person score (box score x mean joint score).

    Returns:
        list of the written image paths. An image that cannot be read is logged and skipped.
    """
    lay = _layout(layout)
    preds = np.asarray(preds)
    if num_images <= 0 or len(image_paths) == 0:
        return []
    if preds.ndim != 3 or preds.shape[0] != len(image_paths):
        raise ValueError(
            f"preds must be (N, K, 3) with N = {len(image_paths)} image paths, got {preds.shape}"
        )
    boxes = None if boxes is None else np.asarray(boxes, dtype=np.float64)
    per_image = _group_by_image(image_paths, num_images)

    folder = os.path.join(output_dir, "vis")
    os.makedirs(folder, exist_ok=True)
    written = []
    taken = set()
    for path, indices in per_image.items():
        image = cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if image is None:
            logger.warning("vis: cannot read %s; skipped", path)
            continue
        people = [_person(preds[idx], boxes, idx, lay, in_vis_thre) for idx in indices]
        drawn = draw_predictions(image, people, lay, kpt_thr=kpt_thr)
        out = unique_output_path(folder, os.path.basename(path), taken)
        if not cv2.imwrite(out, drawn):
            logger.warning("vis: cannot write %s", out)
            continue
        written.append(out)
    logger.info("vis: %d drawn images in %s", len(written), folder)
    return written


def _group_by_image(image_paths, num_images):
    """Maps each of the first ``num_images`` distinct paths to its record indices, in order."""
    per_image = {}
    for idx, path in enumerate(image_paths):
        if path not in per_image:
            if len(per_image) == num_images:
                continue
            per_image[path] = []
        per_image[path].append(idx)
    return per_image


def _person(kpts, boxes, idx, lay, in_vis_thre):
    """Builds the drawn person dict (native keypoints, score, optional box) of record ``idx``."""
    native = lay.select(kpts) if kpts.shape[0] > lay.num_joints else kpts
    box_score = 1.0 if boxes is None else float(boxes[idx, 5])
    scores = native[:, 2]
    valid = scores[scores > in_vis_thre]
    person = {
        "keypoints": native,
        "score": (float(valid.mean()) if valid.size else 0.0) * box_score,
    }
    if boxes is not None and boxes.shape[1] >= 10 and boxes[idx, 8] > 0:
        person["bbox"] = boxes[idx, 6:10]
    return person
