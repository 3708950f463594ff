"""A toy keypoint set that is not a person: a 9-point robot arm drawn with OpenCV.

It is the worked example of docs/CUSTOM_DATA.md and the end-to-end test of the ``custom``
dataset: everything a user brings is written as files, in the layout a user would have::

    <root>/robot_arm.yaml                 metainfo (9 keypoints, flip pairs, skeleton, sigmas)
    <root>/annotations/train.json         COCO-format keypoints (one arm per image)
    <root>/annotations/val.json
    <root>/images/{train,val}/NNNNNN.jpg
    <root>/unlabeled/NNNNNN.jpg           unlabeled images (a folder)
    <root>/arm.avi                        an unlabeled video (MJPG, 10 frames per second)

The arm stands on a base, three links (shoulder, elbow, wrist) end in a hand with two fingers;
left and right fingers are told apart by their side of the arm's direction (a mirror image swaps
them, hence the flip pairs). ``python -m semipose.dataset.toy_shapes --root DIR`` writes the set.
"""

import argparse
import json
import math
import os

import cv2
import numpy as np

from semipose.common.io import atomic_write_json, atomic_write_text
from semipose.common.metainfo import BUILTIN_METAINFO_DIR

__all__ = ["ARM_KEYPOINTS", "METAINFO_PATH", "draw_arm", "generate_toy_set", "main"]

ARM_KEYPOINTS = ("base", "shoulder", "elbow", "wrist", "hand", "left_knuckle", "left_tip",
                 "right_knuckle", "right_tip")  # fmt: skip

#: The set's metainfo file (package data), copied next to the generated set.
METAINFO_PATH = os.path.join(BUILTIN_METAINFO_DIR, "robot_arm.yaml")
_LINK_COLORS = ((90, 90, 200), (80, 170, 80), (170, 120, 60), (60, 160, 200))


def _arm_points(rng, width, height):
    """The 9 keypoints (x, y) of a random arm pose."""
    scale = min(width, height) * rng.uniform(0.22, 0.3)
    base = np.array([rng.uniform(0.35, 0.65) * width, rng.uniform(0.78, 0.9) * height])
    shoulder = base + [0.0, -0.35 * scale]
    a1 = math.radians(rng.uniform(-150, -30))
    a2 = a1 + math.radians(rng.uniform(-70, 70))
    a3 = a2 + math.radians(rng.uniform(-60, 60))
    elbow = shoulder + scale * np.array([math.cos(a1), math.sin(a1)])
    wrist = elbow + 0.8 * scale * np.array([math.cos(a2), math.sin(a2)])
    hand = wrist + 0.3 * scale * np.array([math.cos(a3), math.sin(a3)])
    out = [base, shoulder, elbow, wrist, hand]
    for side in (-1.0, 1.0):  # -1: left of the arm's direction (image y points down)
        knuckle = hand + 0.18 * scale * np.array([math.cos(a3 + side * 1.2),
                                                  math.sin(a3 + side * 1.2)])  # fmt: skip
        tip = knuckle + 0.22 * scale * np.array([math.cos(a3 + side * 0.3),
                                                 math.sin(a3 + side * 0.3)])  # fmt: skip
        out += [knuckle, tip]
    return np.array(out)


def draw_arm(image, points, rng):
    """Draws the arm of ``points`` (9, 2) on ``image`` in place (thick links, a base plate, a
    darker left finger so the two fingers differ in look as well as in side)."""
    p = [tuple(int(round(v)) for v in pt) for pt in points]
    thick = max(3, int(min(image.shape[:2]) / 40))
    bx, by = p[0]
    cv2.rectangle(image, (bx - 3 * thick, by - thick), (bx + 3 * thick, by + thick),
                  (70, 70, 70), -1)  # fmt: skip
    for k, (a, b) in enumerate(((0, 1), (1, 2), (2, 3), (3, 4))):
        color = tuple(int(c + rng.integers(-20, 21)) for c in _LINK_COLORS[k])
        cv2.line(image, p[a], p[b], color, thick, cv2.LINE_AA)
    for a, b, color in ((4, 5, (40, 40, 40)), (5, 6, (40, 40, 40)), (4, 7, (210, 210, 210)),
                        (7, 8, (210, 210, 210))):  # fmt: skip
        cv2.line(image, p[a], p[b], color, max(2, thick // 2), cv2.LINE_AA)
    for q in p[1:5]:
        cv2.circle(image, q, max(2, thick // 2 + 1), (30, 30, 30), -1, cv2.LINE_AA)
    return image


def _background(rng, width, height):
    base = rng.integers(110, 200, size=3)
    img = np.empty((height, width, 3), np.uint8)
    img[:] = base
    noise = rng.normal(0, 8, size=(height, width, 1))
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def _sample(rng, width, height):
    """One image and its arm's keypoints."""
    points = _arm_points(rng, width, height)
    return draw_arm(_background(rng, width, height), points, rng), points


def _annotation(points, image_id, width, height):
    inside = ((points[:, 0] >= 0) & (points[:, 0] < width) & (points[:, 1] >= 0)
              & (points[:, 1] < height))  # fmt: skip
    kps = []
    for (x, y), ok in zip(points, inside):
        kps += [round(float(x), 2), round(float(y), 2), 2] if ok else [0, 0, 0]
    x0, y0 = np.clip(points.min(axis=0) - 8, 0, None)
    x1, y1 = np.minimum(points.max(axis=0) + 8, [width - 1, height - 1])
    w, h = float(x1 - x0), float(y1 - y0)
    return {"id": image_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
            "keypoints": kps, "num_keypoints": int(inside.sum()),
            "bbox": [round(float(x0), 2), round(float(y0), 2), round(w, 2), round(h, 2)],
            "area": round(w * h, 2)}  # fmt: skip


def _write_split(root, split, count, rng, size, first_id):
    width, height = size
    folder = os.path.join(root, "images", split)
    os.makedirs(folder, exist_ok=True)
    images, anns = [], []
    for k in range(count):
        image_id = first_id + k
        img, points = _sample(rng, width, height)
        name = f"{image_id:06d}.jpg"
        cv2.imwrite(os.path.join(folder, name), img)
        images.append({"id": image_id, "file_name": f"images/{split}/{name}", "width": width,
                       "height": height})  # fmt: skip
        anns.append(_annotation(points, image_id, width, height))
    coco = {"images": images, "annotations": anns, "categories": [
        {"id": 1, "name": "robot_arm", "keypoints": list(ARM_KEYPOINTS),
         "skeleton": [[1, 2], [2, 3], [3, 4], [4, 5], [5, 6], [6, 7], [5, 8], [8, 9]]}]}
    path = os.path.join(root, "annotations", f"{split}.json")
    atomic_write_json(path, coco)
    return path


def _write_video(path, rng, size, frames, fps=10.0):
    width, height = size
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write the MJPG video {path}")
    try:
        for _ in range(frames):
            writer.write(_sample(rng, width, height)[0])
    finally:
        writer.release()


def generate_toy_set(root, num_train=32, num_val=8, num_unlabeled=8, video_frames=20,
                     image_size=(128, 128), seed=0):  # fmt: skip
    """Writes the robot-arm set under ``root`` (see the module docstring).

    Args:
        root: output folder (created).
        num_train: labeled training images (one arm each).
        num_val: validation images.
        num_unlabeled: images of the unlabeled folder.
        video_frames: frames of the unlabeled video (10 per second).
        image_size: (width, height) of every image and frame.
        seed: generator seed (the same seed writes the same set).

    Returns:
        dict of the written paths: ``metainfo``, ``train_ann``, ``val_ann``, ``unlabeled``
        (folder), ``video``.
    """
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    size = tuple(int(v) for v in image_size)
    out = {"metainfo": os.path.join(root, "robot_arm.yaml")}
    with open(METAINFO_PATH) as f:
        atomic_write_text(out["metainfo"], f.read())
    out["train_ann"] = _write_split(root, "train", num_train, rng, size, 1)
    out["val_ann"] = _write_split(root, "val", num_val, rng, size, 100001)
    out["unlabeled"] = os.path.join(root, "unlabeled")
    os.makedirs(out["unlabeled"], exist_ok=True)
    for k in range(num_unlabeled):
        cv2.imwrite(os.path.join(out["unlabeled"], f"{k:06d}.jpg"), _sample(rng, *size)[0])
    out["video"] = os.path.join(root, "arm.avi")
    _write_video(out["video"], rng, size, video_frames)
    return out


def main(argv=None):
    """``python -m semipose.dataset.toy_shapes --root DIR [--num-train N ...]``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--root", required=True)
    parser.add_argument("--num-train", type=int, default=32)
    parser.add_argument("--num-val", type=int, default=8)
    parser.add_argument("--num-unlabeled", type=int, default=8)
    parser.add_argument("--video-frames", type=int, default=20)
    parser.add_argument("--size", type=int, nargs=2, default=(128, 128), metavar=("W", "H"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    paths = generate_toy_set(args.root, args.num_train, args.num_val, args.num_unlabeled,
                             args.video_frames, tuple(args.size), args.seed)  # fmt: skip
    print(json.dumps(paths, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
