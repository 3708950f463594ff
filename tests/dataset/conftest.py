"""Fixtures for the dataset tests: a tiny COCO-format set drawn with cv2; real-sample layouts."""

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

TINY_W, TINY_H = 160, 120


def _person(rng, x0, y0, w, h, vis_pattern):
    """17 COCO keypoints inside the box (x0, y0, w, h) with the given visibility codes."""
    kps = []
    for j in range(17):
        x = x0 + 2 + (w - 4) * rng.random()
        y = y0 + 2 + (h - 4) * rng.random()
        v = vis_pattern[j]
        kps += [round(x, 1), round(y, 1), v] if v > 0 else [0, 0, 0]
    return kps


def make_tiny_coco(root, numeric_names=True, seed=0):
    """Writes ``<root>/coco`` with train2017 (3 images) and val2017 (2 images).

    train2017 annotation order: img 1: person A (all visible, v=2), crowd, person B (half v=1, rest
    0); img 2: person C (all zero keypoints -> skipped), person D (v=2 mixed with v=0); img 3:
    person E (v=1 everywhere). So GT mode gives A, B, D, E.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    ann_dir = root / "coco" / "annotations"
    ann_dir.mkdir(parents=True, exist_ok=True)
    det_dir = root / "coco" / "person_detection_results"
    det_dir.mkdir(parents=True, exist_ok=True)
    layouts = {
        "train2017": [
            [("A", [2] * 17, (20, 10, 50, 90)), ("crowd", [2] * 17, (80, 10, 40, 60)),
             ("B", [1] * 8 + [0] * 9, (90, 20, 50, 90))],
            [("C", [0] * 17, (10, 10, 40, 80)), ("D", [2, 0] * 8 + [2], (60, 15, 60, 95))],
            [("E", [1] * 17, (40, 5, 70, 110))],
        ],
        "val2017": [
            [("F", [2] * 17, (15, 10, 55, 100)), ("G", [2] * 12 + [1] * 5, (85, 12, 60, 100))],
            [("H", [2] * 17, (50, 8, 60, 105))],
        ],
    }  # fmt: skip
    ann_id = 1
    out = {}
    for split, images in layouts.items():
        img_dir = root / "coco" / "images" / split
        img_dir.mkdir(parents=True, exist_ok=True)
        imgs, anns, dets = [], [], []
        for k, persons in enumerate(images):
            image_id = (100 if split == "train2017" else 200) + k
            name = f"{image_id:012d}.jpg" if numeric_names else f"pic_{split}_{k}.jpg"
            canvas = rng.integers(0, 60, size=(TINY_H, TINY_W, 3), dtype=np.uint8)
            for label, vis, box in persons:
                kps = _person(rng, *box, vis)
                for j in range(17):
                    if kps[3 * j + 2] > 0:
                        color = tuple(int(c) for c in rng.integers(80, 255, 3))
                        cv2.circle(canvas, (int(kps[3 * j]), int(kps[3 * j + 1])), 3, color, -1)
                anns.append({
                    "id": ann_id, "image_id": image_id, "category_id": 1,
                    "iscrowd": 1 if label == "crowd" else 0, "bbox": list(box),
                    "area": float(box[2] * box[3]), "keypoints": kps,
                    "num_keypoints": sum(1 for j in range(17) if kps[3 * j + 2] > 0),
                    "segmentation": [[box[0], box[1], box[0] + box[2], box[1], box[0] + box[2],
                                      box[1] + box[3]]],
                })  # fmt: skip
                dets.append({"image_id": image_id, "category_id": 1, "bbox": list(box),
                             "score": 0.9})  # fmt: skip
                ann_id += 1
            cv2.imwrite(str(img_dir / name), canvas, [cv2.IMWRITE_JPEG_QUALITY, 95])
            imgs.append({"id": image_id, "file_name": name, "width": TINY_W, "height": TINY_H})
        dets.append({"image_id": imgs[0]["id"], "category_id": 2, "bbox": [0, 0, 5, 5],
                     "score": 0.99})  # fmt: skip
        data = {
            "images": imgs,
            "annotations": anns,
            "categories": [{"id": 1, "name": "person", "supercategory": "person",
                            "keypoints": [str(j) for j in range(17)],
                            "skeleton": []}],
        }  # fmt: skip
        (ann_dir / f"person_keypoints_{split}.json").write_text(json.dumps(data))
        (det_dir / f"dets_{split}.json").write_text(json.dumps(dets))
        out[split] = data
    return out


@pytest.fixture
def tiny_coco(tmp_path):
    """``(root, annotations by split)`` of a tiny COCO-format set with 12-digit file names."""
    root = tmp_path / "data"
    return str(root), make_tiny_coco(root)


@pytest.fixture
def tiny_kwargs():
    return {"image_size": (96, 128), "heatmap_size": (24, 32), "sigma": 2}


def link_tree(pairs):
    """Creates symlinks ``dst -> src`` for each ``(src, dst)`` pair (parents made)."""
    for src, dst in pairs:
        dst = Path(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            os.symlink(src, dst)


@pytest.fixture
def coco_real_root(realdata_dir, tmp_path):
    """The real COCO sample laid out as ``<root>/coco`` (val2017) with symlinks."""
    src = Path(realdata_dir) / "coco"
    root = tmp_path / "real"
    pairs = [
        (src / "test_coco.json", root / "coco/annotations/person_keypoints_val2017.json"),
        (
            src / "test_coco_det_AP_H_56.json",
            root / "coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json",
        ),
    ]
    pairs += [(p, root / "coco/images/val2017" / p.name) for p in src.glob("*.jpg")]  # fmt: skip
    link_tree(pairs)
    return str(root)


@pytest.fixture
def mpii_aic_real_root(realdata_dir, tmp_path):
    """Real MPII and raw AIC samples laid out as ``<root>/mpii``, ``<root>/ai_challenger/<set>``."""
    real = Path(realdata_dir)
    root = tmp_path / "real_ma"
    pairs = []
    for split in ("train", "validation"):
        pairs.append((real / "mpii/test_mpii.json", root / f"mpii/annot/{split}.json"))
        aic_ann = root / f"ai_challenger/{split}/keypoint_{split}_annotation.json"
        pairs.append((real / "aic_raw/keypoint_sample_annotation.json", aic_ann))
        pairs += [(p, root / f"ai_challenger/{split}/images" / p.name)
                  for p in (real / "aic").glob("*.jpg")]  # fmt: skip
    pairs += [(p, root / "mpii/images" / p.name) for p in (real / "mpii").glob("*.jpg")]
    link_tree(pairs)
    return str(root)


@pytest.fixture
def tiny_coco_named(tmp_path):
    """As ``tiny_coco`` but with file names that are not 12-digit ids."""
    root = tmp_path / "named"
    return str(root), make_tiny_coco(root, numeric_names=False)
