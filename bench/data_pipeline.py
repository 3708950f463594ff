"""Data-pipeline throughput: COCO training items and ``mix_coco_coco`` pairs per second.

Runs on the synthetic COCO-format set (generated under ``--root`` if missing). For each pipeline it
reports items/s in one process and with ``--workers`` DataLoader workers, and items/s per core.

The reference pipelines are written here, inside the benchmark, for comparison only:
  * ``reference-loop``: our loader, but every item deep-copies its record, mirrors the whole image
    for a flip (instead of folding the flip into the crop affine), builds the heatmap targets with a
    straightforward per-joint, per-pixel Python loop, and computes the unused 2xHxW mask target
    (foreground box polygon warped into the crop, filled with cv2.fillPoly, and its complement), as
    the original's pipeline did for every sample (spec §5.1 steps 7-9, §9.18);
  * ``reference-patch``: the same, but with a per-joint numpy Gaussian patch as in the original's
    ``generate_target`` (closer to the original's real cost; the loop one is a pessimistic bound).

COCO-sized section (``--section coco``): ``mix_coco_coco`` pairs per second per core on 640x480
JPEGs (the synthetic set drawn at 640x480, re-encoded with film grain at quality 92 so that files
and decode times are close to COCO's: about 115 kB and 2 ms per image), for each pipeline path
side by side: the cv2 path (default), ``DATASET.REDUCED_DECODE``, ``DATASET.CROP_CACHE`` (raw and
jpg) and ``DATASET.DEVICE_WARP`` (alone and with the cache). One core: the items, their collation
into batches of ``--batch`` and, for the device path, the batch rendering on this CPU
(``gpu_pipeline``); the device rows also give the workers' share alone (what the loader's cores do
when a GPU renders). The paths are timed in ``--rounds`` interleaved rounds with the same random
draws; the median is printed, with the ratios to the cv2 path from the same run.

Usage: ``python bench/data_pipeline.py [--section small|coco|both] [--root data/synthetic]
[--items 300] [--workers 2] [--pairs 160] [--rounds 3]``
"""

import argparse
import copy
import glob
import os
import random
import statistics
import tempfile
import time

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, default_collate

from semipose.codecs import MSRAHeatmap
from semipose.dataset import gpu_pipeline
from semipose.dataset.build import IMAGENET_MEAN, IMAGENET_STD, default_transform
from semipose.dataset.coco import COCODataset
from semipose.dataset.mixed import MixedCOCOCOCODataset
from semipose.utils.transforms import get_affine_transform

KW = {"image_size": (192, 256), "heatmap_size": (48, 64), "sigma": 2}


def loop_target(joints, joints_vis, image_size, heatmap_size, sigma, target_type="gaussian"):
    """Reference target: one Python iteration per joint and per heatmap pixel of its window."""
    target, window, weight = _empty_target(joints, joints_vis, image_size, heatmap_size, sigma)
    h, w = target.shape[1:]
    stride = np.asarray(image_size, float) / np.asarray(heatmap_size, float)
    for j in np.flatnonzero(weight[:, 0] > 0.5):
        x0, y0, x1, y1 = (int(v) for v in window[j])
        mx, my = (int(c / s + 0.5) for c, s in zip(joints[j][:2], stride))
        for y in range(max(0, y0), min(y1, h)):
            for x in range(max(0, x0), min(x1, w)):
                target[j, y, x] = np.exp(-((x - mx) ** 2 + (y - my) ** 2) / (2 * sigma**2))
    return target, weight


def patch_target(joints, joints_vis, image_size, heatmap_size, sigma, target_type="gaussian"):
    """Reference target: a fresh numpy Gaussian patch per joint, pasted with slicing."""
    target, window, weight = _empty_target(joints, joints_vis, image_size, heatmap_size, sigma)
    h, w = target.shape[1:]
    size = 2 * sigma * 3 + 1
    for j in np.flatnonzero(weight[:, 0] > 0.5):
        x0, y0, x1, y1 = (int(v) for v in window[j])
        x = np.arange(0, size, 1, np.float32)
        y = x[:, np.newaxis]
        g = np.exp(-((x - size // 2) ** 2 + (y - size // 2) ** 2) / (2 * sigma**2))
        ix0, ix1, iy0, iy1 = max(0, x0), min(x1, w), max(0, y0), min(y1, h)
        target[j, iy0:iy1, ix0:ix1] = g[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
    return target, weight


def _empty_target(joints, joints_vis, image_size, heatmap_size, sigma):
    """Zero (K, h, w) targets, each joint's stamp window and the weights (0 for a window off the
    heatmap), from the codec's ``windows``: the references differ only in the stamping."""
    codec = MSRAHeatmap(image_size=image_size, heatmap_size=heatmap_size, sigma=sigma)
    window, weight = codec.windows(joints, joints_vis)
    w, h = int(heatmap_size[0]), int(heatmap_size[1])
    return np.zeros((len(window), h, w), dtype=np.float32), window, weight


def mask_target(rec, meta, image_size):
    """The unused foreground / background mask of the original, at input resolution (2, H, W)."""
    x, y, bw, bh = rec.get("raw_box", [0, 0, 0, 0])
    corners = np.array([[x, y], [x, y + bh], [x + bw, y + bh], [x + bw, y]], dtype=np.float64)
    trans = get_affine_transform(meta["center"], meta["scale"], meta["rotation"], image_size)
    pts = corners @ trans[:, :2].T + trans[:, 2]
    fg = np.zeros((int(image_size[1]), int(image_size[0])), dtype=np.float32)
    cv2.fillPoly(fg, [pts.astype(np.int32)], 1.0)
    return np.stack([fg, 1.0 - fg])


class ReferenceCOCO(COCODataset):
    """Our loader with the reference per-item work (record deep copy, slow target, mask target)."""

    target_fn = staticmethod(loop_target)
    fold_flip_into_affine = False  # mirror the whole image, as the original

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.codec = _ReferenceCodec(self.target_fn, image_size=self.image_size,
                                     heatmap_size=self.heatmap_size, sigma=self.sigma)  # fmt: skip

    def __getitem__(self, idx, rot_angle=None, scale=None, flip=None):
        rec = copy.deepcopy(self.db[idx])
        inp, target, weight, meta = super().__getitem__(idx, rot_angle, scale, flip)
        meta["mask_target"] = mask_target(rec, meta, self.image_size)
        return inp, target, weight, meta


class ReferencePatchCOCO(ReferenceCOCO):
    target_fn = staticmethod(patch_target)


class _ReferenceCodec(MSRAHeatmap):
    """The heatmap codec with a reference target function in place of ``encode``."""

    def __init__(self, target_fn, **kwargs):
        super().__init__(**kwargs)
        self.target_fn = target_fn

    def encode(self, joints, joints_vis):
        return self.target_fn(joints, joints_vis, self.image_size, self.heatmap_size, self.sigma)


def _rate_single(ds, n):
    np.random.seed(0)
    ds[0]
    t0 = time.perf_counter()
    for i in range(n):
        ds[i % len(ds)]
    return n / (time.perf_counter() - t0)


def _rate_workers(ds, n, workers, batch=16):
    n = min(n, len(ds))
    sub = torch.utils.data.Subset(ds, list(range(n)))
    loader = DataLoader(sub, batch_size=batch, num_workers=workers, shuffle=False)
    t0 = time.perf_counter()
    count = 0
    for b in loader:
        count += len(b[0]) if not isinstance(b[0], list) else len(b[0][0])
    return count / (time.perf_counter() - t0)


# ---------------------------------------------------------------- COCO-sized JPEGs, per path
COCO_KW = {"image_size": (192, 256), "heatmap_size": (48, 64), "sigma": 2, "scale_factor": 0.25,
           "rotation_factor": 30}  # fmt: skip


def make_coco_sized(root, num_images, seed=0, grain=8.0, quality=92):
    """The synthetic set drawn at 640x480 under ``root``, its train images re-encoded with Gaussian
    grain (sigma ``grain``) at JPEG ``quality`` (COCO-like file sizes and decode times).

    Returns:
        ``(mean file bytes, mean full decode ms)`` of the train images.
    """
    from semipose.dataset.synthetic import generate

    result = generate(root, num_train=num_images, num_val=2, image_size=(640, 480), seed=seed)
    files = sorted(glob.glob(os.path.join(root, "coco", "images", "train2017", "*.jpg")))
    rng = np.random.default_rng(seed)
    if result["generated"]:
        for f in files:
            img = cv2.imread(f).astype(np.float32)
            img += rng.normal(0.0, grain, img.shape).astype(np.float32)
            cv2.imwrite(f, np.clip(img, 0, 255).astype(np.uint8),
                        [cv2.IMWRITE_JPEG_QUALITY, quality])  # fmt: skip
    sizes = [os.path.getsize(f) for f in files]
    t0 = time.perf_counter()
    for f in files[:20]:
        cv2.imdecode(np.fromfile(f, np.uint8), cv2.IMREAD_COLOR)
    return float(np.mean(sizes)), (time.perf_counter() - t0) / min(len(files), 20) * 1e3


def coco_paths(cache_dir):
    """``(name, dataset kwargs, device)``: the pipeline paths compared on COCO-sized images."""
    raw = os.path.join(cache_dir, "raw")
    jpg = os.path.join(cache_dir, "jpg")
    return [
        ("cv2 (default)", {}, False),
        ("reduced decode", {"reduced_decode": True}, False),
        ("crop cache raw", {"crop_cache": raw}, False),
        ("crop cache jpg", {"crop_cache": jpg, "crop_cache_format": "jpg"}, False),
        ("device warp", {"device_warp": True}, True),
        ("device warp + crop cache raw", {"device_warp": True, "crop_cache": raw}, True),
    ]


def _time_pairs(ds, n, batch, renderer, seed):
    """Seconds to make ``n`` pairs, collate them in batches and (device path) render them on the
    CPU; returns ``(total s, render s)``."""
    np.random.seed(seed)
    random.seed(seed)
    collate = gpu_pipeline.collate if renderer is not None else default_collate
    total = render = 0.0
    done = 0
    while done < n:
        k = min(batch, n - done)
        t0 = time.perf_counter()
        out = collate([ds[(done + j) % len(ds)] for j in range(k)])
        t1 = time.perf_counter()
        if renderer is not None:
            inputs, targets, weights, _ = out
            renderer(inputs), renderer(targets), renderer(weights)
        t2 = time.perf_counter()
        total += t2 - t0
        render += t2 - t1
        done += k
    return total, render


def run_coco_section(args):
    """Prints the per-path table on COCO-sized JPEGs.

    Returns:
        ``{path: (pairs/s, workers-only pairs/s)}`` per core.
    """
    root = args.coco_root or os.path.join(tempfile.gettempdir(), "semipose_bench_coco640")
    nbytes, decode_ms = make_coco_sized(root, args.coco_images)
    cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="semipose_crop_cache_")
    tf = default_transform()
    renderer = gpu_pipeline.DeviceRenderer(COCO_KW["image_size"], COCO_KW["heatmap_size"],
                                           COCO_KW["sigma"], IMAGENET_MEAN, IMAGENET_STD, "cpu")
    sets = []
    for name, extra, device in coco_paths(cache_dir):
        mix = MixedCOCOCOCODataset(root, "train", True, tf, train_len=args.coco_images,
                                   **COCO_KW, **extra)  # fmt: skip
        sets.append((name, mix, renderer if device else None))
    n_rec = len(sets[0][1])
    print(f"\n640x480 JPEGs: {args.coco_images} images, {n_rec} person records, mean "
          f"{nbytes / 1e3:.0f} kB, full decode {decode_ms:.2f} ms/image; crops 256x192, "
          f"sf 0.25, rf 30; batch {args.batch}; cache under {cache_dir}")  # fmt: skip
    for name, mix, _ in sets:  # fill the caches (untimed, reported)
        if "cache" in name:
            t0 = time.perf_counter()
            np.random.seed(0)
            for i in range(len(mix)):
                mix[i]
            print(f"  filling the cache of {name!r}: {time.perf_counter() - t0:.1f} s "
                  f"({len(mix)} pairs)")  # fmt: skip
    ratio = [float(s[0]) * 200 / COCO_KW["image_size"][0] for s in
             (r["scale"] for r in sets[0][1].unlabeled.db)]  # fmt: skip
    print(f"  records whose unjittered crop allows a reduced decode (>= 2 px per output px): "
          f"{np.mean(np.array(ratio) >= 2) * 100:.0f} %")  # fmt: skip
    n = min(args.pairs, n_rec)
    rates = {name: [] for name, _, _ in sets}
    worker_rates = {name: [] for name, _, _ in sets}
    for rnd in range(args.rounds):
        for name, mix, rend in sets:
            total, render = _time_pairs(mix, n, args.batch, rend, seed=rnd)
            rates[name].append(n / total)
            worker_rates[name].append(n / (total - render))
    base = statistics.median(rates[sets[0][0]])
    print("\n| path | pairs/s per core | x cv2 | workers only: pairs/s per core | x cv2 |")
    print("|---|---|---|---|---|")
    out = {}
    for name, _, rend in sets:
        r = statistics.median(rates[name])
        w = statistics.median(worker_rates[name])
        out[name] = (r, w)
        wcol = f"{w:.1f} | {w / base:.2f}x" if rend is not None else "- | -"
        print(f"| {name} | {r:.1f} | {r / base:.2f}x | {wcol} |")
    print(f"(median of {args.rounds} interleaved rounds of {n} pairs; per-round cv2 rates: "
          f"{', '.join(f'{v:.1f}' for v in rates[sets[0][0]])})")  # fmt: skip
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", choices=("small", "coco", "both"), default="both")
    parser.add_argument("--root", default=os.path.join("data", "synthetic"))
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--num-train", type=int, default=200)
    parser.add_argument("--coco-root", default="", help="640x480 set (default: a temp folder)")
    parser.add_argument("--coco-images", type=int, default=60)
    parser.add_argument("--cache-dir", default="", help="crop-cache root (default: a new temp)")
    parser.add_argument("--pairs", type=int, default=160)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    if args.section in ("small", "both"):
        run_small_section(args)
    if args.section in ("coco", "both"):
        run_coco_section(args)


def run_small_section(args):
    """The original table: items/s of our pipeline and the reference ones on the small set."""
    ann = os.path.join(args.root, "coco", "annotations", "person_keypoints_val2017.json")
    if not os.path.isfile(ann):
        from semipose.dataset.synthetic import generate

        print(f"generating the synthetic set under {args.root} ...")
        generate(args.root, num_train=args.num_train, num_val=20, image_size=(320, 240), seed=0)

    tf = default_transform()
    ours = COCODataset(args.root, "train", True, tf, **KW)
    ref_loop = ReferenceCOCO(args.root, "train", True, tf, **KW)
    ref_patch = ReferencePatchCOCO(args.root, "train", True, tf, **KW)
    mix = MixedCOCOCOCODataset(args.root, "train", True, tf, train_len=100, **KW)
    print(f"synthetic train2017: {len(ours)} person records; mix: {len(mix)} pairs")

    rows = []
    for name, ds in (("ours", ours), ("reference-patch", ref_patch), ("reference-loop", ref_loop),
                     ("mix_coco_coco pairs (ours)", mix)):  # fmt: skip
        single = _rate_single(ds, args.items)
        multi = _rate_workers(ds, args.items, args.workers) if args.workers > 0 else float("nan")
        rows.append((name, single, multi))
        print(f"{name:28s} 1 proc: {single:8.1f} items/s   {args.workers} workers: {multi:8.1f} "
              f"items/s ({multi / max(args.workers, 1):7.1f} per worker)")  # fmt: skip
    r = dict((n, s) for n, s, _ in rows)
    print(
        f"ratio ours / reference-loop  (items/s per core): {r['ours'] / r['reference-loop']:.2f}x"
    )
    print(
        f"ratio ours / reference-patch (items/s per core): {r['ours'] / r['reference-patch']:.2f}x"
    )


if __name__ == "__main__":
    main()
