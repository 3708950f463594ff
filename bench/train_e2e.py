"""End-to-end training throughput: ``--iters`` iterations of a real run through ``Trainer`` (the
loader of ``build_train_loader`` with its workers, the method, Adam, the hooks' timing fields).

The data is the synthetic COCO-format set drawn at ``--image-size`` (default 640x480, COCO-sized)
under ``--root`` (generated on first use). It prints pairs per second over the timed iterations
(after ``--warmup``), the step's share of the wall time (forward, loss, backward, Adam, the loss
read) and the loader's wait (time ``next(loader)`` blocked, including the device-side rendering
of ``DATASET.DEVICE_WARP``), from ``Trainer.step``'s ``data_time`` and ``step_time``.

Usage: ``python bench/train_e2e.py [--cfg YAML] [--iters 20] [--warmup 3] [--batch 8]
[--workers 2] [--size 256x192] [--device cpu|cuda] [KEY VALUE ...]`` (trailing config overrides,
for example ``DATASET.CROP_CACHE /tmp/cache DATASET.DEVICE_WARP true TRAIN.BF16 true``).
"""

import argparse
import os
import tempfile
import time

import torch

from semipose.common.hooks import HookBase
from semipose.config import load_config
from semipose.dataset.build import build_dataset, ensure_synthetic
from semipose.engine.defaults import RunContext, build_train_loader, resolve_amp_dtype
from semipose.engine.launch import build_training
from semipose.engine.train_loop import Trainer

DEFAULT_CFG = os.path.join("experiments", "synthetic", "96x64_SYN_PoseDual_JointCut.yaml")


class StepTiming(HookBase):
    """Sums the loader wait and the step time of the iterations after the first ``warmup``."""

    def __init__(self, warmup):
        self.warmup = int(warmup)
        self.t0 = None
        self.data = self.step = 0.0
        self.samples = self.iters = 0
        self.t_end = None

    def after_step(self):
        st = self.trainer.step
        if self.trainer.iter == self.warmup - 1:
            self.t0 = time.perf_counter()
        elif self.trainer.iter >= self.warmup:
            self.data += st["data_time"]
            self.step += st["step_time"] - st["data_time"]
            self.samples += int(st["batch_size"])
            self.iters += 1
            self.t_end = time.perf_counter()


def _size(text):
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", default=DEFAULT_CFG)
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "semipose_e2e640"))
    parser.add_argument("--image-size", default="480x640", help="generated images, H x W")
    parser.add_argument("--num-train", type=int, default=200)
    parser.add_argument("--size", default="256x192", help="network input H x W")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    ih, iw = _size(args.image_size)
    h, w = _size(args.size)
    opts = [
        "DATASET.ROOT", args.root, "DATASET.SYNTHETIC.IMAGE_SIZE", f"[{iw}, {ih}]",
        "DATASET.SYNTHETIC.NUM_TRAIN", str(args.num_train), "DATASET.SYNTHETIC.NUM_VAL", "2",
        "TEST.COCO_BBOX_FILE", os.path.join(args.root, "coco", "person_detection_results",
                                            "COCO_val2017_detections_AP_H_56_person.json"),
        "MODEL.IMAGE_SIZE", f"[{w}, {h}]", "MODEL.EXTRA.HEATMAP_SIZE", f"[{w // 4}, {h // 4}]",
        "TRAIN.BATCH_SIZE", str(args.batch), "WORKERS", str(args.workers),
        "TRAIN.MAX_ITERS", str(args.iters + args.warmup), "TRAIN.END_EPOCH", "1",
        "GPUS", "0",
    ] + list(args.opts)  # fmt: skip
    cfg = load_config(args.cfg, opts)
    ensure_synthetic(cfg)
    device = torch.device(args.device)
    out = tempfile.mkdtemp(prefix="semipose_e2e_")
    ctx = RunContext(device, False, 0, 0, out, out, amp_dtype=resolve_amp_dtype(cfg, device))
    train_set = build_dataset(cfg, is_train=True)
    loader, _, _ = build_train_loader(cfg, train_set, ctx)
    method, model, optimizer, _ = build_training(cfg, ctx)
    trainer = Trainer(model, method, optimizer, loader, device, amp_dtype=ctx.amp_dtype,
                      channels_last=cfg.TRAIN.CHANNELS_LAST,
                      max_iters=args.iters + args.warmup)  # fmt: skip
    timing = StepTiming(args.warmup)
    trainer.register_hooks([timing])
    if len(loader) < args.iters + args.warmup:
        raise SystemExit(
            f"the loader has {len(loader)} batches; raise --num-train or lower --iters"
        )
    trainer.train(0, 1)
    wall = timing.t_end - timing.t0
    d = cfg.DATASET
    paths = [k for k, on in (("reduced_decode", d.REDUCED_DECODE), ("crop_cache", d.CROP_CACHE),
                             ("device_warp", d.DEVICE_WARP)) if on] or ["cv2"]  # fmt: skip
    print(f"{cfg.MODEL.NAME} R{cfg.MODEL.EXTRA.NUM_LAYERS} {h}x{w} batch {args.batch} on {device}, "
          f"{args.workers} workers, data path {'+'.join(paths)}, images {iw}x{ih}, amp "
          f"{ctx.amp_dtype}, channels_last {cfg.TRAIN.CHANNELS_LAST}")  # fmt: skip
    print(f"timed iterations: {timing.iters}; wall {wall:.2f} s")
    print(f"pairs/s: {timing.samples / wall:.2f}")
    print(f"step share of wall time: {timing.step / wall * 100:.1f} %")
    print(f"loader wait share of wall time: {timing.data / wall * 100:.1f} %")
    return {"pairs_per_s": timing.samples / wall, "step_share": timing.step / wall,
            "wait_share": timing.data / wall}  # fmt: skip


if __name__ == "__main__":
    main()
