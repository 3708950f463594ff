"""Training and validation loops.

Ported from the original's lib/core/function.py and pose_estimation/*.py (MIT).

``train_one_epoch`` and ``validate`` are leaf functions with explicit arguments; ``do_train`` and
``do_valid`` assemble the datasets, model, loss and optimizer from the config and run them.
"""
import contextlib
import logging
import math
import os
import sys
import time
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

from semipose.core.evaluate import accuracy
from semipose.core.inference import get_final_preds
from semipose.core.loss import JointsMSELoss
from semipose.engine.monitor import CollapseMonitor
from semipose.utils.logger import AverageMeter
from semipose.utils.vis import save_debug_images

logger = logging.getLogger(__name__)

#: Output-dict key of the labeled (net 1) heatmap in each semi-supervised model's training output.
LABELED_KEY = {"pose_dual": "sup_ht1", "pose_cons": "sup_ht"}


def to_device(x, device, channels_last=False):
    """Moves a tensor, or a (nested) list/tuple of tensors, to ``device`` without blocking."""
    if isinstance(x, (list, tuple)):
        return [to_device(v, device, channels_last) for v in x]
    if not torch.is_tensor(x):
        return x
    x = x.to(device, non_blocking=True)
    if channels_last and x.dim() == 4 and x.shape[1] == 3:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def autocast_context(device, amp_dtype):
    """``torch.autocast`` on the device's type when ``amp_dtype`` is set, else a no-op context."""
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype)


def labeled_heatmap(model_name, outputs):
    """Net 1's heatmap on the labeled batch: (N, K, H, W)."""
    key = LABELED_KEY.get(model_name)
    return outputs[key] if key else outputs


def _first(x):
    return x[0] if isinstance(x, (list, tuple)) else x


def train_one_epoch(
    model,
    loader,
    criterion,
    optimizer,
    epoch,
    device,
    *,
    model_name,
    print_freq=20,
    writer_dict=None,
    monitor=None,
    max_iters=0,
    amp_dtype=None,
    channels_last=False,
    debug=None,
    output_dir=None,
    show_progress=False,
    is_main=True,
):
    """One epoch of training, in the original's order (forward, loss, zero_grad, backward, step).

    The loss is read back once per iteration to stop at once on a non-finite value; accuracy and the
    loss parts are computed on logged iterations only, so the step itself has no other host sync.

    Raises:
        FloatingPointError: the loss became NaN or infinite (the last checkpoint stays intact).

    Returns:
        dict of epoch averages: ``loss``, ``acc``, the loss parts, ``samples_per_s`` and, for the
        semi models, ``collapse`` (per net: collapsed share and mean teacher peak).
    """
    batch_time, data_time, losses, acc = (AverageMeter() for _ in range(4))
    part_meters = {}
    model.train()
    num_batches = len(loader) if max_iters <= 0 else min(len(loader), max_iters)
    progress = None
    redirect = contextlib.nullcontext()
    if show_progress and is_main:
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        progress = tqdm(total=num_batches, desc=f"epoch {epoch}", leave=False, dynamic_ncols=True)
        redirect = logging_redirect_tqdm()
    samples = 0
    epoch_start = end = time.time()
    with redirect:
        for i, (input, target, target_weight, meta) in enumerate(loader):
            if i >= num_batches:
                break
            data_time.update(time.time() - end)
            input = to_device(input, device, channels_last)
            target = to_device(target, device)
            target_weight = to_device(target_weight, device)

            with autocast_context(device, amp_dtype):
                outputs = model(input)
                loss, parts = criterion(outputs, target, target_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

            loss_value = loss.item()
            if not math.isfinite(loss_value):
                detail = ", ".join(f"{k} {float(v):.6g}" for k, v in parts.items())
                raise FloatingPointError(
                    f"non-finite loss {loss_value} at epoch {epoch}, iteration {i} ({detail}); "
                    "training stopped, the last checkpoint is intact"
                )
            if monitor is not None and monitor.enabled:
                monitor.update(outputs, target_weight[1])

            sup_input = _first(input)
            batch_size = sup_input.size(0)
            samples += batch_size
            losses.update(loss_value, batch_size)
            batch_time.update(time.time() - end)
            end = time.time()
            if progress is not None:
                progress.update(1)
                progress.set_postfix(loss=f"{losses.avg:.5f}")

            last = i == num_batches - 1
            if i % print_freq == 0 or last:
                sup_ht = labeled_heatmap(model_name, outputs)
                sup_target = _first(target)
                _, avg_acc, cnt, pred = accuracy(
                    sup_ht.detach().float().cpu().numpy(), sup_target.detach().float().cpu().numpy()
                )
                acc.update(avg_acc, cnt)
                for k, v in parts.items():
                    part_meters.setdefault(k, AverageMeter()).update(float(v), batch_size)
                if is_main:
                    msg = (
                        f"Epoch: [{epoch}][{i}/{num_batches}]\t"
                        f"Time {batch_time.val:.3f}s ({batch_time.avg:.3f}s)\t"
                        f"Speed {batch_size / max(batch_time.val, 1e-9):.1f} samples/s\t"
                        f"Data {data_time.val:.3f}s ({data_time.avg:.3f}s)\t"
                        f"Loss {losses.val:.5f} ({losses.avg:.5f})\t"
                        f"Accuracy {acc.val:.3f} ({acc.avg:.3f})"
                    )
                    msg += "".join(f"\t{k}: {float(v):.6f}" for k, v in parts.items())
                    logger.info(msg)
                    if writer_dict is not None:
                        writer = writer_dict["writer"]
                        step = writer_dict["train_global_steps"]
                        writer.add_scalar("train/loss", losses.val, step)
                        writer.add_scalar("train/acc", acc.val, step)
                        writer.add_scalar("train/lr", optimizer.param_groups[0]["lr"], step)
                        for k, v in parts.items():
                            writer.add_scalar(f"train/{k}", float(v), step)
                        writer_dict["train_global_steps"] = step + 1
                    if debug is not None and debug.DEBUG and output_dir:
                        prefix = os.path.join(output_dir, "train", f"train_{i}")
                        os.makedirs(os.path.dirname(prefix), exist_ok=True)
                        save_debug_images(
                            debug, sup_input, _first(meta), sup_target, pred * 4, sup_ht, prefix
                        )
    if progress is not None:
        progress.close()
    elapsed = max(time.time() - epoch_start, 1e-9)
    stats = {
        "loss": losses.avg,
        "acc": acc.avg,
        "samples_per_s": samples / elapsed,
        **{k: m.avg for k, m in part_meters.items()},
    }
    if monitor is not None and monitor.enabled:
        stats["collapse"] = monitor.summary()
    return stats


def _flip_permutation(num_joints, flip_pairs):
    perm = list(range(num_joints))
    for a, b in flip_pairs:
        perm[a], perm[b] = b, a
    return perm


def flip_test_heatmap(model_fn, input, flip_pairs, shift_heatmap=True):
    """Heatmaps of the mirrored input, mirrored back (the torch form of ``flip_back``).

    With ``shift_heatmap`` the result moves one pixel right (column 0 keeps its value, as the
    original); otherwise it moves 0.75 px with a bilinear affine grid, as the original's other
    branch.

    Args:
        model_fn: callable returning a tuple of (N, K, H, W) heatmaps for an input batch.
        input: (N, 3, H_in, W_in) batch.

    Returns:
        tuple of flipped-back heatmaps, one per network.
    """
    outs = model_fn(torch.flip(input, [3]))
    result = []
    for out in outs:
        perm = _flip_permutation(out.shape[1], flip_pairs)
        out = torch.flip(out, [3])[:, perm]
        if shift_heatmap:
            shifted = out.clone()
            shifted[:, :, :, 1:] = out[:, :, :, :-1]
            out = shifted
        else:
            w = out.shape[3]
            theta = out.new_tensor([[1.0, 0.0, -1.5 / w], [0.0, 1.0, 0.0]]).expand(
                out.shape[0], 2, 3
            )
            grid = F.affine_grid(theta, list(out.shape), align_corners=False)
            out = F.grid_sample(out, grid, align_corners=False)
        result.append(out)
    return tuple(result)


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


@torch.no_grad()
def validate(
    model,
    loader,
    dataset,
    device,
    *,
    model_name,
    output_dir,
    full_arch_name="",
    flip_test=False,
    shift_heatmap=True,
    post_process=True,
    post_type="shift",
    blur_kernel=11,
    print_freq=20,
    use_target_weight=True,
    writer_dict=None,
    epoch=None,
    debug=None,
    channels_last=False,
    amp_dtype=None,
):
    """Validation as the original's ``validate``.

    Decodes net 1 (and net 2 and the ensemble 0.5·(h1+h2) for PoseDual), evaluates each through
    ``dataset.evaluate`` and logs the results tables.

    Returns:
        dict with ``perf`` (net 1's main metric, which selects ``model_best``), ``loss``, ``acc``
        and per network (``net1``, ``net2``, ``ensemble``) the OrderedDict of metrics.
    """
    criterion = JointsMSELoss(use_target_weight=use_target_weight)
    model.eval()
    num_samples = len(dataset)
    dual = model_name == "pose_dual"
    heads = ("net1", "net2", "ensemble") if dual else ("net1",)
    all_preds = {h: np.zeros((num_samples, dataset.num_joints, 3), dtype=np.float32) for h in heads}
    all_boxes = np.zeros((num_samples, 10))
    image_path = []
    losses, acc = AverageMeter(), AverageMeter()

    def forward(x):
        with autocast_context(device, amp_dtype):
            out = model(x)
        out = out if isinstance(out, (tuple, list)) else (out,)
        return tuple(o.float() for o in out)

    idx = 0
    for i, (input, target, target_weight, meta) in enumerate(loader):
        input = to_device(input, device, channels_last)
        outs = forward(input)
        if flip_test:
            flipped = flip_test_heatmap(forward, input, dataset.flip_pairs, shift_heatmap)
            outs = tuple((o + f) * 0.5 for o, f in zip(outs, flipped))
        target = target.to(device, non_blocking=True)
        target_weight = target_weight.to(device, non_blocking=True)
        loss = criterion(outs[0], target, target_weight)
        n = input.size(0)
        losses.update(loss.item(), n)
        _, avg_acc, cnt, pred = accuracy(outs[0].cpu().numpy(), target.cpu().numpy())
        acc.update(avg_acc, cnt)

        heatmaps = {"net1": outs[0]}
        if dual:
            heatmaps["net2"] = outs[1]
            heatmaps["ensemble"] = (outs[0] + outs[1]) * 0.5
        c = meta["center"].numpy()
        s = meta["scale"].numpy()
        r = meta["rotation"].numpy() if "rotation" in meta else np.zeros(n)
        score = meta["score"].numpy()
        for h in heads:
            preds, maxvals = get_final_preds(
                heatmaps[h].cpu().numpy(), c, s, r,
                post_process=post_process, post_type=post_type, blur_kernel=blur_kernel,
            )
            all_preds[h][idx:idx + n, :, 0:2] = preds[:, :, 0:2]
            all_preds[h][idx:idx + n, :, 2:3] = maxvals
        all_boxes[idx:idx + n, 0:2] = c[:, 0:2]
        all_boxes[idx:idx + n, 2:4] = s[:, 0:2]
        all_boxes[idx:idx + n, 4] = np.prod(s * 200, 1)
        all_boxes[idx:idx + n, 5] = score
        if "raw_box" in meta:
            all_boxes[idx:idx + n, 6:10] = meta["raw_box"].numpy()[:, 0:4]
        image_path.extend(meta["image"])
        idx += n

        if i % print_freq == 0:
            logger.info(
                f"Test: [{i}/{len(loader)}]\tLoss {losses.val:.4f} ({losses.avg:.4f})\t"
                f"Accuracy {acc.val:.3f} ({acc.avg:.3f})"
            )
            if debug is not None and debug.DEBUG:
                prefix = os.path.join(output_dir, "heatmap", f"val_{i}")
                os.makedirs(os.path.dirname(prefix), exist_ok=True)
                save_debug_images(debug, input, meta, target, pred * 4, outs[0], prefix)

    np.save(os.path.join(output_dir, "all_preds.npy"), all_preds["net1"])
    titles = {
        "net1": "The Predictions of Net 1",
        "net2": "The Predictions of Net 2",
        "ensemble": "Ensemble Predictions",
    }
    prefixes = {"net1": "eval_1", "net2": "eval_2", "ensemble": "eval_3"}
    results = {"loss": losses.avg, "acc": acc.avg}
    for h in heads:
        name_values, perf = dataset.evaluate(
            all_preds[h], output_dir, all_boxes, image_path, prefix=prefixes[h]
        )
        results[h] = name_values
        results.setdefault("perf", float(perf))
        logger.info(titles[h])
        if isinstance(name_values, list):
            for nv in name_values:
                logger.info("\n" + format_name_value(nv, full_arch_name))
        else:
            logger.info("\n" + format_name_value(name_values, full_arch_name))
    if writer_dict is not None:
        writer = writer_dict["writer"]
        step = writer_dict["valid_global_steps"] if epoch is None else epoch
        writer.add_scalar("valid/loss", losses.avg, step)
        writer.add_scalar("valid/acc", acc.avg, step)
        for h in heads:
            nv = results[h]
            for k, v in (nv[0] if isinstance(nv, list) else nv).items():
                writer.add_scalar(f"valid_{h}/{_tag(k)}", float(v), step)
        writer_dict["valid_global_steps"] = writer_dict.get("valid_global_steps", 0) + 1
    return results


def _tag(name):
    """A TensorBoard-safe tag: 'AP (M)' -> 'AP_M', 'Ap .5' -> 'Ap_.5'."""
    return "_".join(name.replace("(", " ").replace(")", " ").split())


def is_interactive():
    return sys.stderr.isatty() and os.environ.get("CI", "").lower() not in ("1", "true")


def main_metric(results):
    """Net 1's main metric (COCO AP, PCKh Mean, ...) from ``validate``'s results."""
    return float(results.get("perf", 0.0))


def summarize(results):
    """A compact OrderedDict net -> main metric, for logs and TensorBoard."""
    out = OrderedDict()
    for h in ("net1", "net2", "ensemble"):
        if h in results:
            nv = results[h]
            nv = nv[0] if isinstance(nv, list) else nv
            out[h] = float(next(iter(nv.values()))) if nv else 0.0
    return out


# --------------------------------------------------------------------------- assembly


def _log_environment(args, cfg):
    import pprint

    import torchvision

    logger.info(f"torch {torch.__version__}, torchvision {torchvision.__version__}")
    logger.info(pprint.pformat(vars(args) if hasattr(args, "__dict__") else args))
    logger.info(cfg.dump())


def _set_cudnn(cfg):
    torch.backends.cudnn.benchmark = cfg.CUDNN.BENCHMARK
    torch.backends.cudnn.deterministic = cfg.CUDNN.DETERMINISTIC
    torch.backends.cudnn.enabled = cfg.CUDNN.ENABLED


def native_bf16(device):
    """True when ``device`` computes bfloat16 in hardware: a CUDA GPU with bf16 support, or a CPU
    with AVX512-BF16 or AMX units. Elsewhere CPU autocast emulates bfloat16 (several times slower
    than fp32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)
    return False


def resolve_amp_dtype(cfg, device):
    """bfloat16 when TRAIN.BF16 is set and the device supports it, else None (fp32)."""
    if not cfg.TRAIN.BF16:
        return None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        logger.warning("TRAIN.BF16 is set but this GPU has no bfloat16 support: training in fp32")
        return None
    if device.type == "cpu" and not native_bf16(device):
        logger.warning(
            "TRAIN.BF16 on a CPU without bf16 units (no AVX512-BF16 / AMX): autocast emulates "
            "bfloat16 and is expected to be slower than fp32"
        )
    return torch.bfloat16


def _worker_init(_):
    import cv2

    cv2.setNumThreads(0)


def build_loaders(cfg, train_dataset, valid_dataset, device, distributed, seed):
    """Training and validation DataLoaders (a DistributedSampler under DDP)."""
    from torch.utils.data import DataLoader, DistributedSampler

    pin = device.type == "cuda"
    workers = cfg.WORKERS
    sampler = None
    if distributed:
        sampler = DistributedSampler(train_dataset, shuffle=cfg.TRAIN.SHUFFLE, seed=seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    train_loader = DataLoader(
        train_dataset,
        batch_size=cfg.TRAIN.BATCH_SIZE,
        shuffle=cfg.TRAIN.SHUFFLE if sampler is None else False,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin,
        drop_last=False,
        worker_init_fn=_worker_init if workers > 0 else None,
        generator=generator,
        prefetch_factor=4 if workers > 0 else None,
    )
    valid_loader = None if valid_dataset is None else build_valid_loader(cfg, valid_dataset, device)
    return train_loader, valid_loader, sampler, generator


def build_valid_loader(cfg, dataset, device):
    """The validation DataLoader: TEST.BATCH_SIZE, in order."""
    from torch.utils.data import DataLoader

    workers = cfg.WORKERS
    return DataLoader(
        dataset,
        batch_size=cfg.TEST.BATCH_SIZE,
        shuffle=False,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        worker_init_fn=_worker_init if workers > 0 else None,
    )


def _setup_device(cfg, args):
    from semipose.utils import comm

    distributed = bool(getattr(args, "distributed", False)) or int(
        os.environ.get("WORLD_SIZE", "1")
    ) > 1
    if distributed:
        device, local_rank = comm.init_distributed(getattr(args, "local_rank", None), cfg.DEVICE)
    else:
        gpu = int(str(cfg.GPUS).split(",")[0] or 0)
        if torch.cuda.is_available() and cfg.DEVICE != "cpu":
            gpu = min(gpu, torch.cuda.device_count() - 1)
        device = comm.select_device(cfg.DEVICE, gpu)
        local_rank = 0
    return device, distributed, local_rank


def _validate_with_cfg(cfg, model, loader, dataset, device, output_dir, writer_dict, epoch):
    from semipose.config import get_model_name

    return validate(
        model,
        loader,
        dataset,
        device,
        model_name=cfg.MODEL.NAME,
        output_dir=output_dir,
        full_arch_name=get_model_name(cfg)[1],
        flip_test=cfg.TEST.FLIP_TEST,
        shift_heatmap=cfg.TEST.SHIFT_HEATMAP,
        post_process=cfg.TEST.POST_PROCESS,
        post_type=cfg.TEST.POST_TYPE,
        blur_kernel=cfg.TEST.BLUR_KERNEL,
        print_freq=cfg.PRINT_FREQ,
        use_target_weight=cfg.LOSS.USE_TARGET_WEIGHT,
        writer_dict=writer_dict,
        epoch=epoch,
        debug=cfg.DEBUG,
        channels_last=cfg.TRAIN.CHANNELS_LAST,
    )


def _checkpoint_states(cfg, epoch, model, optimizer, scheduler, best_perf, results):
    from semipose.config import get_model_name
    from semipose.utils.comm import get_rng_state

    return {
        "epoch": epoch + 1,
        "model": list(get_model_name(cfg)),
        "state_dict": model.state_dict(),
        "perf": float(best_perf),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": get_rng_state(),
        "last_results": {k: float(v) for k, v in summarize(results).items()} if results else {},
    }


def do_train(cfg, args):
    """Trains as the original's train.py, from a frozen config and the parsed CLI ``args``.

    Returns:
        dict: ``best_perf``, ``last`` (the last validation results), ``output_dir``, ``epochs``.
    """
    from semipose.core.loss import build_criterion
    from semipose.dataset.build import build_dataset, ensure_synthetic
    from semipose.models.build import build_model, compile_networks
    from semipose.utils import comm
    from semipose.utils.checkpoint import atomic_save, load_checkpoint, save_checkpoint
    from semipose.utils.logger import create_logger
    from semipose.utils.optim import build_lr_scheduler, build_optimizer

    device, distributed, local_rank = _setup_device(cfg, args)
    rank = comm.get_rank()
    is_main = rank == 0
    try:
        _, final_output_dir, tb_log_dir = create_logger(cfg, args.cfg, "train", rank)
        if is_main:
            _log_environment(args, cfg)
        _set_cudnn(cfg)
        comm.seed_everything(cfg.SEED + rank)

        if is_main and cfg.DATASET.SYNTHETIC.ENABLED:
            ensure_synthetic(cfg)
        comm.synchronize()
        train_dataset = build_dataset(cfg, is_train=True)
        valid_dataset = build_dataset(cfg, is_train=False) if is_main else None
        train_loader, valid_loader, sampler, loader_gen = build_loaders(
            cfg, train_dataset, valid_dataset, device, distributed, cfg.SEED
        )

        model = build_model(cfg, is_train=True).to(device)
        if cfg.TRAIN.CHANNELS_LAST:
            model = model.to(memory_format=torch.channels_last)
        core_model = model
        criterion = build_criterion(cfg).to(device)
        optimizer = build_optimizer(cfg, core_model)
        scheduler = build_lr_scheduler(cfg, optimizer)

        best_perf = 0.0
        begin_epoch = cfg.TRAIN.BEGIN_EPOCH
        checkpoint_file = os.path.join(final_output_dir, "checkpoint.pth.tar")
        rng_state = None
        if cfg.TRAIN.RESUME and os.path.exists(checkpoint_file):
            ckpt = load_checkpoint(checkpoint_file, map_location="cpu")
            core_model.load_state_dict(ckpt["state_dict"])
            optimizer.load_state_dict(ckpt["optimizer"])
            if "scheduler" in ckpt:
                scheduler.load_state_dict(ckpt["scheduler"])
            else:  # a checkpoint of the original: rebuild the schedule from the epoch count
                for _ in range(ckpt["epoch"]):
                    scheduler.step()
            begin_epoch = int(ckpt["epoch"])
            best_perf = float(ckpt.get("perf", 0.0))
            rng_state = ckpt.get("rng")
            logger.info(f"=> resumed from {checkpoint_file} (epoch {begin_epoch})")
            if hasattr(train_dataset, "shuffle_ind"):
                for _ in range(begin_epoch):
                    train_dataset.shuffle_ind()

        if cfg.TRAIN.COMPILE:
            compile_networks(core_model)
        if distributed:
            model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[local_rank] if device.type == "cuda" else None
            )

        writer_dict = None
        if is_main:
            from tensorboardX import SummaryWriter

            writer_dict = {
                "writer": SummaryWriter(log_dir=tb_log_dir),
                "train_global_steps": 0,
                "valid_global_steps": 0,
            }
        if rng_state is not None and not distributed:
            comm.set_rng_state(rng_state)
        elif rng_state is not None:
            comm.seed_everything(cfg.SEED + rank + 7919 * begin_epoch)

        amp_dtype = resolve_amp_dtype(cfg, device)
        monitor = CollapseMonitor(cfg.MODEL.NAME, cfg.MONITOR.COLLAPSE_THRE)
        results = None
        for epoch in range(begin_epoch, cfg.TRAIN.END_EPOCH):
            if sampler is not None:
                sampler.set_epoch(epoch)
            loader_gen.manual_seed(cfg.SEED + epoch)
            stats = train_one_epoch(
                model, train_loader, criterion, optimizer, epoch, device,
                model_name=cfg.MODEL.NAME, print_freq=cfg.PRINT_FREQ, writer_dict=writer_dict,
                monitor=monitor, max_iters=cfg.TRAIN.MAX_ITERS, amp_dtype=amp_dtype,
                channels_last=cfg.TRAIN.CHANNELS_LAST, debug=cfg.DEBUG,
                output_dir=final_output_dir, show_progress=is_interactive(), is_main=is_main,
            )
            scheduler.step()
            if hasattr(train_dataset, "shuffle_ind"):
                train_dataset.shuffle_ind()
            if is_main:
                logger.info(
                    f"Epoch {epoch} done: loss {stats['loss']:.6f}, "
                    f"{stats['samples_per_s']:.1f} samples/s, "
                    f"lr {optimizer.param_groups[0]['lr']:g}"
                )
                for net, c in stats.get("collapse", {}).items():
                    logger.info(
                        f"Collapse monitor [{net}]: {100 * c['collapsed']:.1f}% of unlabeled "
                        f"samples collapsed to background, mean teacher peak {c['mean_max']:.4f}"
                    )
                    if writer_dict is not None:
                        w = writer_dict["writer"]
                        w.add_scalar(f"collapse/{net}_background_share", c["collapsed"], epoch)
                        w.add_scalar(f"collapse/{net}_mean_peak", c["mean_max"], epoch)
                if writer_dict is not None:
                    writer_dict["writer"].add_scalar("train/epoch_loss", stats["loss"], epoch)

            best_model = False
            validate_now = (epoch + 1) % cfg.TEST.INTERVAL == 0 or epoch + 1 == cfg.TRAIN.END_EPOCH
            if is_main:
                if validate_now:
                    results = _validate_with_cfg(
                        cfg, core_model, valid_loader, valid_dataset, device, final_output_dir,
                        writer_dict, epoch,
                    )
                    perf = main_metric(results)
                    if perf > best_perf:
                        best_perf = perf
                        best_model = True
                    if writer_dict is not None:
                        for net, value in summarize(results).items():
                            writer_dict["writer"].add_scalar(f"AP/{net}", value, epoch)
                logger.info(f"=> saving checkpoint to {final_output_dir}")
                save_checkpoint(
                    _checkpoint_states(
                        cfg, epoch, core_model, optimizer, scheduler, best_perf, results
                    ),
                    best_model,
                    final_output_dir,
                )
                if cfg.SAVE_INTER > 0 and epoch % cfg.SAVE_INTER == 0:
                    atomic_save(
                        core_model.state_dict(),
                        os.path.join(final_output_dir, f"State_epoch{epoch}.pth.tar"),
                    )
            comm.synchronize()

        if is_main:
            final_file = os.path.join(final_output_dir, "final_state.pth.tar")
            logger.info(f"=> saving final model state to {final_file}")
            atomic_save(core_model.state_dict(), final_file)
            if writer_dict is not None:
                writer_dict["writer"].close()
        comm.synchronize()
        return {
            "best_perf": best_perf,
            "last": results,
            "output_dir": final_output_dir,
            "epochs": cfg.TRAIN.END_EPOCH - begin_epoch,
        }
    finally:
        comm.cleanup_distributed()


def load_eval_weights(model, model_name, path):
    """Loads ``path`` (a released checkpoint or one of ours) into ``model``, checking keys strictly.

    A PoseDual/PoseCons file evaluated with a single network (pose_resnet / pose_hrnet) gives net
    1's ``resnet.`` weights, as the original's valid.py did (there silently).
    """
    from semipose.utils.checkpoint import (
        extract_net,
        load_checkpoint,
        load_model_state,
        unwrap_state_dict,
    )

    state = unwrap_state_dict(load_checkpoint(path, map_location="cpu"))
    if model_name in ("pose_resnet", "pose_hrnet") and any(k.startswith("resnet.") for k in state):
        state = extract_net(state, "resnet.")
    load_model_state(model, state, strict=True)


def do_valid(cfg, args):
    """Evaluates a checkpoint as the original's valid.py.

    The checkpoint is ``TEST.MODEL_FILE`` (or the run's ``final_state.pth.tar``).

    Returns:
        ``validate``'s results dict.
    """
    from semipose.dataset.build import build_dataset
    from semipose.models.build import build_model
    from semipose.utils.logger import create_logger

    device, _, _ = _setup_device(cfg, argparse_namespace_without_distributed(args))
    _, final_output_dir, tb_log_dir = create_logger(cfg, args.cfg, "valid")
    _log_environment(args, cfg)
    _set_cudnn(cfg)
    model = build_model(cfg, is_train=False)
    model_file = cfg.TEST.MODEL_FILE or os.path.join(final_output_dir, "final_state.pth.tar")
    if not os.path.isfile(model_file):
        raise FileNotFoundError(
            f"no model to evaluate: {model_file} does not exist "
            "(set TEST.MODEL_FILE or --model-file)"
        )
    logger.info(f"=> loading model from {model_file}")
    load_eval_weights(model, cfg.MODEL.NAME, model_file)
    model = model.to(device)
    if cfg.TRAIN.CHANNELS_LAST:
        model = model.to(memory_format=torch.channels_last)
    valid_dataset = build_dataset(cfg, is_train=False)
    valid_loader = build_valid_loader(cfg, valid_dataset, device)
    return _validate_with_cfg(
        cfg, model, valid_loader, valid_dataset, device, final_output_dir, None, None
    )


def argparse_namespace_without_distributed(args):
    """valid.py runs in one process: a copy of ``args`` with ``distributed`` off."""
    import argparse

    ns = argparse.Namespace(**vars(args)) if hasattr(args, "__dict__") else argparse.Namespace()
    ns.distributed = False
    return ns
