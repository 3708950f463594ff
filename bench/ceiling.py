"""The AP ceiling of a resolution: what a perfect network would score on the synthetic val set.

For each preset of the embedded synthetic set (``DATASET.SYNTHETIC.PRESET``: ``hard``, the default
set, and ``easy``) and each input / heatmap size, the validation pipeline of the config
(``build_dataset(cfg, is_train=False)``: GT boxes, no augmentation) renders every person's ground
truth as the target heatmaps at that size and sigma. These targets are decoded exactly as a
network's output is in ``engine/evaluator.py:validate`` (the heatmap codec of ``build_codec(cfg)``,
``post_type`` shift and DARK, through the evaluator's ``_Predictions`` helper) and scored by the
dataset's COCO evaluator (rescoring, OKS-NMS, ``COCOeval``). Joints with weight 0 (unlabeled, or
off the crop) have empty targets and are decoded like any empty heatmap (score 0); ``COCOeval``
ignores unlabeled joints.

The set is generated with the config's ``DATASET.SYNTHETIC`` parameters (seed, image size) except
``NUM_VAL`` (``--num-val``) and ``NUM_TRAIN`` (1: only the val split is used). Val images are a
prefix of a larger set with the same seed, so the first 100 are the demo's val images.

COCO keypoint AP has no small bucket: persons under 32**2 px of area only count in AP; AP (M) is
32**2..96**2 and AP (L) above. pycocotools reports -1 for a bucket without ground truth: shown as
``empty``.

Usage: ``python bench/ceiling.py [--preset hard|easy|both] [--num-val 100] [--sigma S]
[--sizes 96x64/24x16,128x96/32x24,256x192/64x48] [--root DIR] [--cfg YAML]``
"""

import argparse
import logging
import os
import sys
import tempfile
import time

import torch

from semipose.codecs import build_codec
from semipose.config import load_config
from semipose.dataset.build import build_dataset, ensure_synthetic
from semipose.engine.evaluator import _Predictions

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CFG = os.path.join(REPO, "experiments", "synthetic", "96x64_SYN_PoseDual_JointCut.yaml")
DEFAULT_SIZES = "96x64/24x16,128x96/32x24,256x192/64x48"
PRESETS = ("hard", "easy")
POST_TYPES = ("shift", "dark")
#: (column title, key in the evaluator's table)
COLUMNS = (
    ("AP", "AP"),
    ("AP .5", "Ap .5"),
    ("AP .75", "AP .75"),
    ("AP (M)", "AP (M)"),
    ("AP (L)", "AP (L)"),
)
#: COCO keypoint area ranges (``COCOeval`` keypoint params): medium and large
AREA_M = (32**2, 96**2)
VAL_DET_FILE = "COCO_val2017_detections_AP_H_56_person.json"


def parse_size(text):
    """``'96x64/24x16'`` (input HxW / heatmap HxW) -> ``((W, H), (w, h))`` as the config stores."""
    try:
        inp, hm = text.strip().split("/")
        ih, iw = (int(v) for v in inp.lower().split("x"))
        hh, hw = (int(v) for v in hm.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"size {text!r}: expected INPUT_HxW/HEATMAP_HxW, e.g. 96x64/24x16"
        ) from exc
    return (iw, ih), (hw, hh)


def size_label(image_size, heatmap_size):
    return f"{image_size[1]}x{image_size[0]}", f"{heatmap_size[1]}x{heatmap_size[0]}"


def make_config(cfg_path, root, preset, num_val, image_size, heatmap_size, sigma=None):
    """The config's validation setting at one size, on the synthetic set under ``root``."""
    opts = [
        "DATASET.ROOT", root,
        "DATASET.TEST_DATASET", "coco",
        "DATASET.TEST_SET", "validation",
        "DATASET.SYNTHETIC.ENABLED", "True",
        "DATASET.SYNTHETIC.NUM_TRAIN", "1",
        "DATASET.SYNTHETIC.NUM_VAL", str(num_val),
        "DATASET.SYNTHETIC.PRESET", preset,
        "TEST.USE_GT_BBOX", "True",
        "TEST.COCO_BBOX_FILE", os.path.join(root, "coco", "person_detection_results", VAL_DET_FILE),
        "TEST.SAVE_RESULT", "False",
        "MODEL.IMAGE_SIZE", f"[{image_size[0]}, {image_size[1]}]",
        "MODEL.EXTRA.HEATMAP_SIZE", f"[{heatmap_size[0]}, {heatmap_size[1]}]",
    ]  # fmt: skip
    if sigma is not None:
        opts += ["MODEL.EXTRA.SIGMA", str(sigma)]
    return load_config(cfg_path, opts)


def bucket_counts(dataset):
    """Scored GT persons (non-crowd, >= 1 labeled joint) per COCO keypoint area bucket."""
    counts = {"all": 0, "M": 0, "L": 0}
    for ann in dataset.coco.dataset.get("annotations", []):
        if ann.get("iscrowd", 0) or ann.get("num_keypoints", 0) <= 0:
            continue
        counts["all"] += 1
        area = float(ann["area"])
        if AREA_M[0] <= area <= AREA_M[1]:
            counts["M"] += 1
        elif area > AREA_M[1]:
            counts["L"] += 1
    return counts


def ceiling(cfg, output_dir, post_types=POST_TYPES, batch_size=64):
    """Scores the decoded GT target heatmaps of the val set of ``cfg``.

    Returns:
        ``(tables, dataset)``: post_type -> the evaluator's OrderedDict (``STATS_NAMES``), and the
        validation dataset.
    """
    dataset = build_dataset(cfg, is_train=False)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    codecs = {pt: build_codec(cfg, post_type=pt) for pt in post_types}
    stores = {pt: _Predictions(len(dataset), dataset.num_joints, ("gt",)) for pt in post_types}
    for _, target, _, meta in loader:
        for pt in post_types:
            stores[pt].add({"gt": target}, meta, codecs[pt])
    tables = {}
    for pt in post_types:
        store = stores[pt]
        name_values, _ = dataset.evaluate(
            store.preds["gt"], output_dir, store.boxes, store.image_path, prefix=f"ceiling_{pt}"
        )
        tables[pt] = name_values
    return tables, dataset


def fmt(value):
    value = float(value)
    return "empty" if value < 0 else f"{value:.3f}"


def run(args, out=print):
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    presets = PRESETS if args.preset == "both" else (args.preset,)
    rows, counts = [], {}
    with tempfile.TemporaryDirectory(prefix="ceiling_") as tmp:
        for preset in presets:
            root = os.path.join(args.root or tmp, preset)
            for image_size, heatmap_size in sizes:
                cfg = make_config(
                    args.cfg, root, preset, args.num_val, image_size, heatmap_size, args.sigma
                )
                ensure_synthetic(cfg)
                t0 = time.perf_counter()
                tables, dataset = ceiling(cfg, os.path.join(tmp, "eval"))
                counts[preset] = bucket_counts(dataset)
                for pt, table in tables.items():
                    rows.append(
                        {
                            "preset": preset,
                            "size": size_label(image_size, heatmap_size),
                            "sigma": cfg.MODEL.EXTRA.SIGMA,
                            "post_type": pt,
                            "table": table,
                            "persons": len(dataset),
                            "seconds": time.perf_counter() - t0,
                        }
                    )
    out(
        "| Preset | Input HxW | Heatmap HxW | Sigma | Decoding | "
        + " | ".join(title for title, _ in COLUMNS)
        + " |"
    )
    out("|---|---|---|---|---|" + "---|" * len(COLUMNS))
    for r in rows:
        values = " | ".join(fmt(r["table"][key]) for _, key in COLUMNS)
        decoding = "DARK" if r["post_type"] == "dark" else r["post_type"]
        out(
            f"| {r['preset']} | {r['size'][0]} | {r['size'][1]} | {r['sigma']:g} | {decoding} | "
            f"{values} |"
        )
    out("")
    for preset, c in counts.items():
        out(
            f"{preset}: {args.num_val} val images, {c['all']} scored persons "
            f"(AP (M) bucket {c['M']}, AP (L) bucket {c['L']}, "
            f"under 32^2 px {c['all'] - c['M'] - c['L']}); "
            "'empty': no GT in the bucket (pycocotools gives -1)"
        )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--cfg",
        default=DEFAULT_CFG,
        help="config whose validation settings are used (default: the demo's)",
    )
    parser.add_argument(
        "--root",
        default="",
        help="sets go to ROOT/<preset> (reused when there with the same "
        "parameters); default a temporary folder",
    )
    parser.add_argument("--num-val", type=int, default=100, help="synthetic val images")
    parser.add_argument("--preset", choices=(*PRESETS, "both"), default="both")
    parser.add_argument(
        "--sizes",
        default=DEFAULT_SIZES,
        help="comma-separated INPUT_HxW/HEATMAP_HxW (default: %(default)s)",
    )
    parser.add_argument(
        "--sigma",
        type=float,
        default=None,
        help="target sigma in heatmap pixels (default: the config's)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    t0 = time.perf_counter()
    run(args)
    print(f"total {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
