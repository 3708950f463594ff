"""Evaluation-path timings: heatmap decoding, COCO rescoring + OKS-NMS + COCOeval, and box NMS.

On a synthetic COCO-format validation set (generated into a temporary directory, or reused from
``--root`` when it already holds ``coco/annotations/person_keypoints_val2017.json``; an existing set
is never regenerated), it times, separately:

  * **decode**: ``MSRAHeatmap.decode`` on random (N, 24, 64, 48) heatmaps, N = all predictions, in
    batches of ``--decode-batch`` as ``validate`` does (``--post-type`` shift, dark or both);
  * **evaluate**: ``COCODataset.evaluate`` (the dataset built by ``build_dataset`` from a config
    with GT boxes, OKS_THRE 0.9, IN_VIS_THRE 0.2) on predictions = the GT keypoints jittered by
    ``--jitter`` px plus ``--dups`` duplicate detections per person (jittered by a further
    ``--dup-jitter`` px, lower box score), so that OKS-NMS has work; the time is split into
    ``oks_nms``, ``COCOeval`` (``COCOKeypointEvaluator._cocoeval``) and the rest (rescoring,
    grouping, results json);
  * **box NMS**: the Cython ``cpu_nms`` against the numpy ``nms`` on ``--boxes`` random clustered
    boxes (asserting that both keep the same indices, in the same order).

Each stage is run ``--repeat`` times; the median is reported. The AP printed is the one that
``evaluate`` returned.

Usage: ``python bench/evaluate.py [--images 1200] [--root DIR] [--boxes 3000] [--repeat 3]``
"""

import argparse
import contextlib
import importlib
import logging
import os
import statistics
import tempfile
import time

import numpy as np

from semipose.codecs import MSRAHeatmap
from semipose.config import load_config
from semipose.dataset.build import build_dataset
from semipose.evaluation import coco as coco_eval_module
from semipose.evaluation.coco import COCOKeypointEvaluator
from semipose.nms import cpu_nms
from semipose.nms.nms import nms

NUM_JOINTS = 24
IMAGE_SIZE = (192, 256)  # (W, H)
HEATMAP_SIZE = (48, 64)  # (W, H)


def ensure_val_set(root, images, image_size, seed):
    """Generates the synthetic set under ``root`` unless a val2017 annotation file is there."""
    ann = os.path.join(root, "coco", "annotations", "person_keypoints_val2017.json")
    if os.path.isfile(ann):
        print(f"reusing the synthetic set under {root}")
        return
    from semipose.dataset.synthetic import generate

    t0 = time.perf_counter()
    res = generate(root, num_train=1, num_val=images, image_size=image_size, seed=seed)
    print(
        f"generated {res['num_val_images']} val images / {res['num_val_persons']} persons under "
        f"{root} in {time.perf_counter() - t0:.1f}s"
    )


def make_dataset(root, save_result):
    """The COCO validation dataset, built from a config as the trainer builds it."""
    opts = [
        "DATASET.ROOT", root,
        "DATASET.TEST_DATASET", "coco",
        "DATASET.TEST_SET", "validation",
        "TEST.USE_GT_BBOX", "True",
        "TEST.OKS_THRE", "0.9",
        "TEST.IN_VIS_THRE", "0.2",
        "TEST.SAVE_RESULT", str(save_result),
        "MODEL.NUM_JOINTS", str(NUM_JOINTS),
        "MODEL.IMAGE_SIZE", f"[{IMAGE_SIZE[0]}, {IMAGE_SIZE[1]}]",
        "MODEL.EXTRA.HEATMAP_SIZE", f"[{HEATMAP_SIZE[0]}, {HEATMAP_SIZE[1]}]",
    ]  # fmt: skip
    return build_dataset(load_config(None, opts), is_train=False)


def make_predictions(db, jitter, dups, dup_jitter, rng):
    """Predictions in ``validate``'s layout from the GT records, plus duplicates.

    Returns:
        ``preds`` (N, 24, 3) x, y, score; ``all_boxes`` (N, 10) centre, scale, area, box score,
        raw box; ``image_path`` (N,) — N = len(db) * (1 + dups).
    """
    preds, boxes, paths = [], [], []
    for rec in db:
        joints = np.asarray(rec["joints_3d"], dtype=np.float64)[:, :2]
        labeled = np.asarray(rec["joints_3d_vis"])[:, 0] > 0
        base = joints + rng.normal(0.0, jitter, joints.shape)
        scores = np.where(labeled, rng.uniform(0.5, 1.0, len(joints)), rng.uniform(0, 0.2))
        box = np.zeros(10)
        box[0:2] = rec["center"][:2]
        box[2:4] = rec["scale"][:2]
        box[4] = np.prod(np.asarray(rec["scale"][:2]) * 200)
        box[6:10] = rec["raw_box"][:4]
        for d in range(1 + dups):
            xy = base if d == 0 else base + rng.normal(0.0, dup_jitter, base.shape)
            s = scores if d == 0 else scores * rng.uniform(0.8, 1.0, len(scores))
            box = box.copy()
            box[5] = 1.0 if d == 0 else rng.uniform(0.6, 0.95)
            preds.append(np.concatenate([xy, s[:, None]], axis=1))
            boxes.append(box)
            paths.append(rec["image"])
    return np.asarray(preds, dtype=np.float32), np.asarray(boxes), paths


def median_time(fn, repeat):
    """Runs ``fn`` ``repeat`` times; returns ``(median seconds, last result)``."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def time_decode(n, batch, post_type, rng):
    """Seconds to decode ``n`` random (24, 64, 48) heatmaps in batches of ``batch``."""
    w, h = HEATMAP_SIZE
    heatmaps = rng.random((batch, NUM_JOINTS, h, w), dtype=np.float32)
    center = rng.uniform(50, 250, (batch, 2))
    scale = rng.uniform(0.5, 2.0, (batch, 2))
    rotation = np.zeros(batch)
    codec = MSRAHeatmap(post_process=True, post_type=post_type)
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        m = min(batch, n - start)
        codec.decode(heatmaps[:m], center[:m], scale[:m], rotation[:m])
    return time.perf_counter() - t0


class _Timer:
    """Wraps a function and accumulates the seconds spent in it."""

    def __init__(self, fn):
        self.fn = fn
        self.seconds = 0.0
        self.returned = 0  # total length of the returned lists (the kept poses for oks_nms)

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            out = self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0
        if isinstance(out, list):
            self.returned += len(out)
        return out


@contextlib.contextmanager
def _timed_evaluate(dataset):
    """Times ``oks_nms`` (as called by the COCO evaluator) and the COCOeval part of ``evaluate``."""
    saved_nms = coco_eval_module.oks_nms
    saved_eval = COCOKeypointEvaluator._cocoeval
    nms_timer = _Timer(saved_nms)
    eval_timer = _Timer(saved_eval)

    def timed_cocoeval(evaluator, *args, **kwargs):
        return eval_timer(evaluator, *args, **kwargs)

    coco_eval_module.oks_nms = nms_timer
    COCOKeypointEvaluator._cocoeval = timed_cocoeval
    try:
        yield nms_timer, eval_timer
    finally:
        coco_eval_module.oks_nms = saved_nms
        COCOKeypointEvaluator._cocoeval = saved_eval


def time_evaluate(dataset, preds, boxes, paths, out_dir, repeat):
    """Median seconds of ``evaluate`` and of its parts.

    Returns:
        ``(parts, AP, name_values, kept)``: seconds per part, the AP, ``evaluate``'s metrics and
        the number of poses OKS-NMS kept.
    """
    runs = []
    ap = None
    for _ in range(repeat):
        with _timed_evaluate(dataset) as (nms_timer, eval_timer):
            t0 = time.perf_counter()
            name_values, ap = dataset.evaluate(preds, out_dir, boxes, paths, prefix="bench")
            total = time.perf_counter() - t0
        runs.append((total, nms_timer.seconds, eval_timer.seconds))
        kept = nms_timer.returned
    total, nms_s, eval_s = (statistics.median(v) for v in zip(*runs))
    parts = {"total": total, "oks_nms": nms_s, "cocoeval": eval_s,
             "rescore+group+json": total - nms_s - eval_s}  # fmt: skip
    return parts, float(ap), name_values, kept


def random_boxes(n, rng):
    """(n, 5) float32 boxes x1, y1, x2, y2, score in clusters (so NMS suppresses many)."""
    centres = rng.uniform(0, 1000, (max(n // 8, 1), 2))
    c = centres[rng.integers(0, len(centres), n)] + rng.normal(0, 15, (n, 2))
    wh = rng.uniform(20, 200, (n, 2))
    dets = np.concatenate([c - wh / 2, c + wh / 2, rng.random((n, 1))], axis=1)
    return dets.astype(np.float32)


def compiled_cpu_nms():
    """True when ``semipose.nms.cpu_nms`` is the built Cython extension (not the fallback)."""
    try:
        importlib.import_module("semipose.nms.cpu_nms")
    except ImportError:
        return False
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root",
        default="",
        help="synthetic set root (reused if present; default: a temporary dir)",
    )
    parser.add_argument(
        "--images", type=int, default=1200, help="val images to generate (1-4 persons each)"
    )
    parser.add_argument("--image-size", default="320x240", help="generated image W x H")
    parser.add_argument("--jitter", type=float, default=3.0, help="prediction jitter, px (sigma)")
    parser.add_argument("--dups", type=int, default=1, help="duplicate detections per person")
    parser.add_argument(
        "--dup-jitter", type=float, default=1.0, help="further jitter of a duplicate, px (sigma)"
    )
    parser.add_argument("--post-type", choices=("shift", "dark", "both"), default="shift")
    parser.add_argument("--decode-batch", type=int, default=32, help="TEST.BATCH_SIZE")
    parser.add_argument("--boxes", type=int, default=3000, help="random boxes for box NMS")
    parser.add_argument("--box-thresh", type=float, default=0.5, help="box NMS IoU threshold")
    parser.add_argument(
        "--no-save-result",
        dest="save_result",
        action="store_false",
        help="TEST.SAVE_RESULT False (no results json / COCOeval pickle)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per stage (median)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    width, height = (int(v) for v in args.image_size.lower().split("x"))
    rng = np.random.default_rng(args.seed)

    with contextlib.ExitStack() as stack:
        root = args.root or stack.enter_context(tempfile.TemporaryDirectory(prefix="semipose_"))
        out_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="semipose_eval_"))
        ensure_val_set(root, args.images, (width, height), args.seed)
        dataset = make_dataset(root, args.save_result)
        preds, boxes, paths = make_predictions(
            dataset.db, args.jitter, args.dups, args.dup_jitter, rng
        )
        n = len(preds)
        print(
            f"{dataset.num_images} images, {len(dataset.db)} persons, {n} predictions "
            f"({args.dups} duplicate(s) per person); median of {args.repeat} runs"
        )

        results = []
        for post_type in ("shift", "dark") if args.post_type == "both" else (args.post_type,):
            s, _ = median_time(
                lambda p=post_type: time_decode(n, args.decode_batch, p, rng), args.repeat
            )
            results.append((f"decode ({post_type}), {n} x {NUM_JOINTS}x64x48", s))
            print(f"decode {post_type:5s}: {s:8.3f} s ({1e6 * s / n:.1f} us/person)")

        parts, ap, name_values, kept = time_evaluate(
            dataset, preds, boxes, paths, out_dir, args.repeat
        )
        print(
            f"evaluate   : {parts['total']:8.3f} s = oks_nms {parts['oks_nms']:.3f} s + COCOeval "
            f"{parts['cocoeval']:.3f} s + rescoring/grouping/json "
            f"{parts['rescore+group+json']:.3f} s (OKS-NMS kept {kept} of {n})"
        )
        print("AP: " + ", ".join(f"{k} {v:.3f}" for k, v in name_values.items()))
        for key in ("total", "oks_nms", "cocoeval", "rescore+group+json"):
            results.append((f"evaluate: {key}", parts[key]))

        dets = random_boxes(args.boxes, rng)
        fast_s, keep_fast = median_time(lambda: cpu_nms(dets, args.box_thresh), args.repeat)
        slow_s, keep_slow = median_time(lambda: nms(dets, args.box_thresh), args.repeat)
        assert list(keep_fast) == list(keep_slow), "cpu_nms and nms keep different boxes"
        kind = "Cython" if compiled_cpu_nms() else "numpy fallback (extension not built)"
        print(
            f"box NMS    : cpu_nms ({kind}) {1e3 * fast_s:.2f} ms, numpy nms {1e3 * slow_s:.2f} "
            f"ms, speed-up {slow_s / fast_s:.1f}x ({len(keep_fast)} of {args.boxes} kept, "
            "same indices)"
        )
        results.append((f"box NMS cpu_nms ({kind}), {args.boxes} boxes", fast_s))
        results.append((f"box NMS numpy nms, {args.boxes} boxes", slow_s))

    print()
    print(f"| stage ({n} predictions, AP {ap:.3f}) | seconds |\n|---|---|")
    for name, s in results:
        print(f"| {name} | {s:.4f} |")


if __name__ == "__main__":
    main()
