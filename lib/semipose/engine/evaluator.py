"""Inference over a validation set and scoring (the original's ``validate``): heatmaps of every net
(with the flip test), decoding, and the dataset's evaluator per evaluated head."""

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from semipose.codecs import MSRAHeatmap
from semipose.core.evaluate import accuracy
from semipose.core.loss import JointsMSELoss
from semipose.engine.train_loop import autocast_context, to_device
from semipose.utils.logger import AverageMeter, log_to_file

logger = logging.getLogger(__name__)

__all__ = [
    "TestOptions",
    "flip_test_heatmap",
    "format_name_value",
    "main_metric",
    "summarize",
    "validate",
]

TITLES = {"net1": "The Predictions of Net 1", "net2": "The Predictions of Net 2",
          "ensemble": "Ensemble Predictions"}
#: results-file prefix per head, as the original's eval_1/eval_2/eval_3
PREFIXES = {"net1": "eval_1", "net2": "eval_2", "ensemble": "eval_3"}


@dataclass(frozen=True)
class TestOptions:
    """How validation runs (the TEST node, plus the loss weighting and fast paths)."""

    flip_test: bool = False
    shift_heatmap: bool = True
    post_process: bool = True
    post_type: str = "shift"
    blur_kernel: int = 11
    use_target_weight: bool = True
    print_freq: int = 20
    channels_last: bool = False
    amp_dtype: object = None
    full_arch_name: str = ""

    @classmethod
    def from_config(cls, cfg):
        from semipose.config import get_model_name

        return cls(
            flip_test=cfg.TEST.FLIP_TEST,
            shift_heatmap=cfg.TEST.SHIFT_HEATMAP,
            post_process=cfg.TEST.POST_PROCESS,
            post_type=cfg.TEST.POST_TYPE,
            blur_kernel=cfg.TEST.BLUR_KERNEL,
            use_target_weight=cfg.LOSS.USE_TARGET_WEIGHT,
            print_freq=cfg.PRINT_FREQ,
            channels_last=cfg.TRAIN.CHANNELS_LAST,
            full_arch_name=get_model_name(cfg)[1],
        )

    @cached_property
    def codec(self):
        """The heatmap codec decoding and flip-merging with these options."""
        return MSRAHeatmap(post_process=self.post_process, post_type=self.post_type,
                           blur_kernel=self.blur_kernel, shift_heatmap=self.shift_heatmap)


def flip_test_heatmap(model_fn, input, flip_pairs, shift_heatmap=True):
    """Heatmaps of the mirrored input brought back to the input's frame (``MSRAHeatmap.flip_back``).

    Args:
        model_fn: callable returning a tuple of (N, K, H, W) heatmaps for an input batch.
        input: (N, 3, H_in, W_in) batch.
        flip_pairs: ``[left, right]`` channel pairs.
        shift_heatmap: ``TEST.SHIFT_HEATMAP``.

    Returns:
        tuple of flipped-back heatmaps, one per network.
    """
    codec = MSRAHeatmap(shift_heatmap=shift_heatmap)
    return codec.flip_back(model_fn(torch.flip(input, [3])), flip_pairs)


def format_name_value(name_value, full_arch_name):
    """The original's markdown results table: a header row, a separator and one row of values."""
    names = list(name_value.keys())
    values = list(name_value.values())
    arch = full_arch_name if len(full_arch_name) <= 15 else full_arch_name[:8] + "..."
    lines = [
        "| Arch | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        f"| {arch} | " + " | ".join(f"{float(v):.3f}" for v in values) + " |",
    ]
    return "\n".join(lines)


def main_metric(results):
    """Net 1's main metric (COCO AP, PCKh Mean, ...) from ``validate``'s results (every head's:
    ``results['perfs']``)."""
    return float(results.get("perf", 0.0))


def first_table(name_values):
    """The first metrics table of a head (evaluators of mixed sets return a list of tables)."""
    return name_values[0] if isinstance(name_values, list) else name_values


def summarize(results):
    """A compact OrderedDict head -> main metric, for logs and metrics records."""
    out = OrderedDict()
    for head in results.get("heads", ()):
        nv = first_table(results[head])
        out[head] = float(next(iter(nv.values()))) if nv else 0.0
    return out


class _Predictions:
    """Decoded keypoints per head and the box table of a whole validation set."""

    def __init__(self, num_samples, num_joints, heads):
        self.preds = {h: np.zeros((num_samples, num_joints, 3), dtype=np.float32) for h in heads}
        self.boxes = np.zeros((num_samples, 10))
        self.image_path = []
        self.idx = 0

    def add(self, heatmaps, meta, codec):
        """Decodes one batch's heatmaps (head -> (N, K, H, W) tensor) with ``codec`` and stores
        them with the batch's boxes."""
        n = meta["center"].shape[0]
        c = meta["center"].numpy()
        s = meta["scale"].numpy()
        r = meta["rotation"].numpy() if "rotation" in meta else np.zeros(n)
        i = self.idx
        for head, ht in heatmaps.items():
            preds, maxvals = codec.decode(ht.cpu().numpy(), c, s, r)
            self.preds[head][i:i + n, :, 0:2] = preds[:, :, 0:2]
            self.preds[head][i:i + n, :, 2:3] = maxvals
        self.boxes[i:i + n, 0:2] = c[:, 0:2]
        self.boxes[i:i + n, 2:4] = s[:, 0:2]
        self.boxes[i:i + n, 4] = np.prod(s * 200, 1)
        self.boxes[i:i + n, 5] = meta["score"].numpy()
        if "raw_box" in meta:
            self.boxes[i:i + n, 6:10] = meta["raw_box"].numpy()[:, 0:4]
        self.image_path.extend(meta["image"])
        self.idx += n


@torch.no_grad()
def predict_heatmaps(model, method, input, flip_pairs, opts, device):
    """The method's evaluated heatmaps of one batch: ``OrderedDict(head -> (N, K, H, W))``."""

    def forward(x):
        with autocast_context(device, opts.amp_dtype):
            out = model(x)
        return tuple(o.float() for o in method.net_heatmaps(out))

    outs = forward(input)
    if opts.flip_test:
        outs = opts.codec.merge_flip(outs, forward(torch.flip(input, [3])), flip_pairs)
    return method.eval_heatmaps(outs)


@torch.no_grad()
def validate(model, method, loader, dataset, device, opts, output_dir, debug_hook=None):
    """Scores ``model`` on ``dataset`` as the original's ``validate``.

    Every head the method evaluates (net 1; for PoseDual also net 2 and the ensemble) is decoded
    and scored through ``dataset.evaluate``; the loss and accuracy are net 1's. ``model_best`` is
    selected by ``Method.selection_metric`` on these results (TEST.SELECT_BY).

    Args:
        opts: a ``TestOptions``.
        debug_hook: optional ``callable(i, input, meta, target, heatmap)`` on logged batches.

    Returns:
        dict: ``perf`` (the first head's main metric), ``perfs`` (head -> main metric), ``loss``,
        ``acc``, ``heads`` (the evaluated heads in order), per head (``net1``, ...) its
        OrderedDict of metrics (a list of them for a set scored on several benchmarks), and
        ``predictions``: ``image_path`` (per record), ``boxes`` (N, 10) and ``preds`` (head ->
        (N, K, 3) x, y, score in image pixels).
    """
    criterion = JointsMSELoss(use_target_weight=opts.use_target_weight)
    model.eval()
    store = _Predictions(len(dataset), dataset.num_joints, method.heads)
    losses, acc = AverageMeter(), AverageMeter()
    for i, (input, target, target_weight, meta) in enumerate(loader):
        input = to_device(input, device, opts.channels_last)
        heatmaps = predict_heatmaps(model, method, input, dataset.flip_pairs, opts, device)
        net1 = next(iter(heatmaps.values()))
        target = target.to(device, non_blocking=True)
        target_weight = target_weight.to(device, non_blocking=True)
        n = input.size(0)
        losses.update(criterion(net1, target, target_weight).item(), n)
        _, avg_acc, cnt, _ = accuracy(net1.cpu().numpy(), target.cpu().numpy())
        acc.update(avg_acc, cnt)
        store.add(heatmaps, meta, opts.codec)
        if opts.print_freq > 0 and i % opts.print_freq == 0:
            logger.info(
                f"Test: [{i}/{len(loader)}]\tLoss {losses.val:.4f} ({losses.avg:.4f})\t"
                f"Accuracy {acc.val:.3f} ({acc.avg:.3f})"
            )
            if debug_hook is not None:
                debug_hook(i, input, meta, target, net1)

    np.save(os.path.join(output_dir, "all_preds.npy"), store.preds[method.heads[0]])
    results = {"loss": losses.avg, "acc": acc.avg, "heads": tuple(method.heads),
               "predictions": {"image_path": store.image_path, "boxes": store.boxes,
                               "preds": store.preds}}
    for head in method.heads:
        _score_head(head, store, dataset, opts, output_dir, results)
    return results


def _score_head(head, store, dataset, opts, output_dir, results):
    """Scores one head through ``dataset.evaluate`` and records it in ``results``."""
    name_values, perf = dataset.evaluate(
        store.preds[head], output_dir, store.boxes, store.image_path,
        prefix=PREFIXES.get(head, f"eval_{head}"),
    )
    results[head] = name_values
    results.setdefault("perf", float(perf))
    results.setdefault("perfs", OrderedDict())[head] = float(perf)
    tables = [format_name_value(nv, opts.full_arch_name)
              for nv in (name_values if isinstance(name_values, list) else [name_values])]
    text = TITLES.get(head, f"Predictions of {head}") + "".join("\n" + t for t in tables)
    results.setdefault("tables", OrderedDict())[head] = text
    if opts.print_freq > 0:
        logger.info(text)
    else:  # quiet console: the tables go to the log file (the epoch line has the AP)
        log_to_file(logger.name, "%s", text)
