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

Usage: ``python bench/data_pipeline.py [--root data/synthetic] [--items 300] [--workers 2]``
"""

import argparse
import contextlib
import copy
import os
import time

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

from semipose.dataset import joints_dataset
from semipose.dataset.build import default_transform
from semipose.dataset.coco import COCODataset
from semipose.dataset.mixed import MixedCOCOCOCODataset
from semipose.utils.transforms import get_affine_transform

KW = {"image_size": (192, 256), "heatmap_size": (48, 64), "sigma": 2}


def loop_target(joints, joints_vis, image_size, heatmap_size, sigma, target_type="gaussian"):
    """Reference target: one Python iteration per joint and per heatmap pixel of its window."""
    k = joints.shape[0]
    w, h = int(heatmap_size[0]), int(heatmap_size[1])
    target = np.zeros((k, h, w), dtype=np.float32)
    weight = np.asarray(joints_vis, dtype=np.float32)[:, :1].copy()
    stride = np.asarray(image_size, float) / np.asarray(heatmap_size, float)
    tmp = sigma * 3
    for j in range(k):
        mx = int(joints[j][0] / stride[0] + 0.5)
        my = int(joints[j][1] / stride[1] + 0.5)
        ul = (int(mx - tmp), int(my - tmp))
        br = (int(mx + tmp + 1), int(my + tmp + 1))
        if ul[0] >= w or ul[1] >= h or br[0] < 0 or br[1] < 0:
            weight[j] = 0
            continue
        if weight[j] > 0.5:
            for y in range(max(0, ul[1]), min(br[1], h)):
                for x in range(max(0, ul[0]), min(br[0], w)):
                    target[j, y, x] = np.exp(-((x - mx) ** 2 + (y - my) ** 2) / (2 * sigma**2))
    return target, weight


def patch_target(joints, joints_vis, image_size, heatmap_size, sigma, target_type="gaussian"):
    """Reference target: a fresh numpy Gaussian patch per joint, pasted with slicing."""
    k = joints.shape[0]
    w, h = int(heatmap_size[0]), int(heatmap_size[1])
    target = np.zeros((k, h, w), dtype=np.float32)
    weight = np.asarray(joints_vis, dtype=np.float32)[:, :1].copy()
    stride = np.asarray(image_size, float) / np.asarray(heatmap_size, float)
    tmp = sigma * 3
    for j in range(k):
        mx = int(joints[j][0] / stride[0] + 0.5)
        my = int(joints[j][1] / stride[1] + 0.5)
        ul = [int(mx - tmp), int(my - tmp)]
        br = [int(mx + tmp + 1), int(my + tmp + 1)]
        if ul[0] >= w or ul[1] >= h or br[0] < 0 or br[1] < 0:
            weight[j] = 0
            continue
        size = 2 * tmp + 1
        x = np.arange(0, size, 1, np.float32)
        y = x[:, np.newaxis]
        g = np.exp(-((x - size // 2) ** 2 + (y - size // 2) ** 2) / (2 * sigma**2))
        gx = max(0, -ul[0]), min(br[0], w) - ul[0]
        gy = max(0, -ul[1]), min(br[1], h) - ul[1]
        ix = max(0, ul[0]), min(br[0], w)
        iy = max(0, ul[1]), min(br[1], h)
        if weight[j] > 0.5:
            target[j][iy[0] : iy[1], ix[0] : ix[1]] = g[gy[0] : gy[1], gx[0] : gx[1]]
    return target, weight


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

    def __getitem__(self, idx, rot_angle=None, scale=None, flip=None):
        rec = copy.deepcopy(self.db[idx])
        with _swap_target(self.target_fn):
            inp, target, weight, meta = super().__getitem__(idx, rot_angle, scale, flip)
        meta["mask_target"] = mask_target(rec, meta, self.image_size)
        return inp, target, weight, meta


class ReferencePatchCOCO(ReferenceCOCO):
    target_fn = staticmethod(patch_target)


@contextlib.contextmanager
def _swap_target(fn):
    saved = joints_dataset.generate_target
    joints_dataset.generate_target = fn
    try:
        yield
    finally:
        joints_dataset.generate_target = saved


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.path.join("data", "synthetic"))
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--num-train", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)

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
