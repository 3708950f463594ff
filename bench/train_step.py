"""Training-step throughput of PoseDual and PoseCons: the engine's step against a bare loop.

The framework step is ``semipose.engine.train_loop.Trainer.run_step`` itself, on a ``Trainer``
assembled as ``do_train`` assembles it: the method from ``build_method`` (which owns the loss), its
model from ``Method.build_model``, the optimizer from ``build_optimizer`` (Adam), the AMP dtype from
``resolve_amp_dtype`` and, with ``--compile``, ``compile_networks``. ``run_step`` moves the batch
through ``to_device``, runs forward + loss under ``autocast_context``, ``zero_grad``, ``backward``,
``step`` and ``loss.item()`` with its finiteness check. No hooks are registered (the per-iteration
metrics, collapse monitor and writers are not part of the step). The batch is synthetic random
tensors that already lie on the device (``[sup_x, unsup_x]``, each (B, 3, H, W); targets
``[sup_t, unsup_t]`` (B, K, H/4, W/4); weights (B, K, 1), 1 on the COCO-trained channels), so the
data pipeline is not measured here (see ``bench/data_pipeline.py``).

The bare reference loop runs the same networks (plain ``PoseResNet`` modules, one per entry of the
method's ``nets``: two for PoseDual, one for PoseCons) with the same forward/backward passes per
step — per net one labeled forward with gradient, one ``no_grad`` teacher forward and one student
forward with gradient, on the unlabeled batch itself (no cutout, no affine warp) — a plain MSE loss
and an Adam step, under the same autocast / channels_last / compile settings, with no framework
around it. The framework overhead is
``framework step time / bare step time - 1``.

Each step is timed on its own (``torch.cuda.synchronize`` before each clock read on CUDA); a rate is
the batch size over the median of ``--steps`` timed steps after ``--warmup`` untimed ones. A pair is
one labeled plus one unlabeled sample.

FLOPs per step are counted with ``torch.utils.flop_counter.FlopCounterMode`` on one eager step
(convolutions, transposed convolutions, matrix products, forward and backward; elementwise work and
the optimizer are not counted). The reference estimate is 5.79 GFLOP per ResNet-18 256x192 forward
(scaled by the input area, R18 only) times the forward-equivalents per step, a backward counting as
two forwards: per net of the method (``len(method.nets)``) 3 forwards and 2 backwards, so PoseDual
2 x (3 + 2 x 2) = 14, PoseCons 7. MFU is the counted FLOP/s over the peak
(``--peak-tflops``, else the table ``PEAK_TFLOPS`` for H100/H200 SXM: 989 TFLOP/s dense bf16; for an
fp32 run 494 TFLOP/s dense TF32 when cuDNN may use TF32 (PyTorch's default for convolutions), else
67 TFLOP/s FP32).

With ``--sync-debug`` (CUDA) one extra eager framework step runs under
``torch.cuda.set_sync_debug_mode('warn')`` and every host-device synchronisation it makes is listed
with its source line.

Usage: ``python bench/train_step.py [--model both] [--layers 18] [--size 256x192] [--batch 8]
[--device cpu] [--bf16] [--channels-last] [--compile] [--steps 10] [--warmup 3] [--sync-debug]``
"""

import argparse
import contextlib
import gc
import logging
import random
import statistics
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from semipose.config import load_config
from semipose.dataset.joints import COCO_TRAINED
from semipose.engine.defaults import resolve_amp_dtype
from semipose.engine.train_loop import Trainer, autocast_context, to_device
from semipose.methods import build_method
from semipose.models.build import compile_networks
from semipose.models.pose_lite import PoseLite
from semipose.models.pose_resnet import PoseResNet
from semipose.utils.optim import build_optimizer

NUM_JOINTS = 24  # the union layout of every experiment
MASK_JOINT_NUM = 5
REF_GFLOP_R18_256x192 = 5.79  # one ResNet-18 SimpleBaseline forward at 256x192, per sample
#: forward-equivalents per step and per net of the method (a backward = 2 forwards): a labeled,
#: a teacher and a student forward, and the labeled and student backwards
FWD_EQUIV_PER_NET = 3 + 2 * 2
#: dense peak TFLOP/s per (device-name keyword, dtype)
PEAK_TFLOPS = {
    ("H100", "bf16"): 989.0,
    ("H200", "bf16"): 989.0,
    ("H100", "tf32"): 494.0,
    ("H200", "tf32"): 494.0,
    ("H100", "fp32"): 67.0,
    ("H200", "fp32"): 67.0,
}


def parse_size(text):
    """``'256x192'`` (H x W) -> ``(256, 192)``; both must be multiples of 32."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HxW, e.g. 256x192, got {text!r}") from None
    if h % 32 or w % 32:
        raise argparse.ArgumentTypeError(f"H and W must be multiples of 32, got {text!r}")
    return h, w


def seed_all(seed):
    """Seeds Python ``random``, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def sync(device):
    """Waits for the device's queued work (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_cfg(model_name, args):
    """A frozen config for ``model_name`` at the benchmark's backbone, size and flags."""
    h, w = args.size
    opts = [
        "DEVICE", args.device,
        "MODEL.NAME", model_name,
        "MODEL.INIT_WEIGHTS", "False",
        "MODEL.PRETRAINED", "",
        "MODEL.NUM_JOINTS", str(NUM_JOINTS),
        "MODEL.IMAGE_SIZE", f"[{w}, {h}]",
        "MODEL.EXTRA.NUM_LAYERS", str(args.layers),
        "MODEL.BACKBONE", args.backbone,
        "MODEL.EXTRA.BASE_WIDTH", str(args.width or (32 if args.backbone == "lite" else 64)),
        "MODEL.EXTRA.HEATMAP_SIZE", f"[{w // 4}, {h // 4}]",
        "DATASET.TRAIN_DATASET", "mix_coco_coco",
        "MASK_JOINT_NUM", str(MASK_JOINT_NUM),
        "TRAIN.BF16", str(args.bf16),
        "TRAIN.CHANNELS_LAST", str(args.channels_last),
        "TRAIN.COMPILE", str(args.compile),
    ]  # fmt: skip
    return load_config(None, opts + list(args.opts))


def make_batch(batch, size, device, channels_last):
    """One random training batch on ``device``, in the datasets' ``(input, target, weight, meta)``
    layout.

    Returns:
        tuple: ``[sup_x, unsup_x]`` (B, 3, H, W) each; ``[sup_t, unsup_t]`` (B, K, H/4, W/4) each;
        ``[sup_w, unsup_w]`` (B, K, 1) each, 1 on the COCO-trained channels and 0 elsewhere; and
        ``[{}, {}]`` (no meta: the step does not read it).
    """
    h, w = size
    inputs = [torch.randn(batch, 3, h, w) for _ in range(2)]
    targets = [torch.rand(batch, NUM_JOINTS, h // 4, w // 4) for _ in range(2)]
    weight = torch.zeros(batch, NUM_JOINTS, 1)
    weight[:, list(COCO_TRAINED)] = 1.0
    weights = [weight.clone(), weight.clone()]
    inputs = to_device(inputs, device, channels_last)
    return inputs, to_device(targets, device), to_device(weights, device), [{}, {}]


def framework_setup(model_name, args, device):
    """The engine's ``Trainer`` for ``model_name`` and one prebuilt batch.

    The method, model, optimizer and AMP dtype are built as ``do_train`` builds them; the
    ``Trainer``'s loader is the one-batch list.

    Returns:
        ``(step_fn, eager_step, method)``: ``step_fn()`` is ``trainer.run_step(batch)``;
        ``eager_step()`` the same call with compilation bypassed (for FLOP counting and the sync
        listing).
    """
    cfg = make_cfg(model_name, args)
    t = cfg.TRAIN
    method = build_method(cfg)
    model = method.build_model(is_train=True).to(device)
    if t.CHANNELS_LAST:
        model = model.to(memory_format=torch.channels_last)
    method.criterion.to(device)
    optimizer = build_optimizer(cfg, model)
    batch = make_batch(args.batch, args.size, device, t.CHANNELS_LAST)
    if t.COMPILE:
        # as do_train: the method's networks in place, the augmentation eager
        compile_networks(method.networks(model).values())
    trainer = Trainer(
        model,
        method,
        optimizer,
        [batch],
        device,
        amp_dtype=resolve_amp_dtype(cfg, device),
        channels_last=t.CHANNELS_LAST,
        max_iters=t.MAX_ITERS,
        loss_limit=t.LOSS_LIMIT,
    )
    model.train()  # as Trainer.run_epoch does before its steps

    def step():
        return trainer.run_step(batch)["loss_value"]

    def eager_step():
        stance = torch.compiler.set_stance("force_eager") if t.COMPILE else contextlib.nullcontext()
        with stance:
            return step()

    step.model = model  # for callers that inspect the networks (bench/cpu_peak.py --compile-ab)
    return step, eager_step, method


def bare_setup(num_nets, args, device):
    """The bare reference loop over ``num_nets`` plain networks; returns its step function (the
    loss value of one step)."""
    cfg = make_cfg("pose_dual", args)  # the LR and AMP settings, shared by every method
    amp_dtype = resolve_amp_dtype(cfg, device)
    if args.backbone == "lite":
        nets = [PoseLite(NUM_JOINTS, width=args.width or 32) for _ in range(num_nets)]
    else:
        nets = [PoseResNet(num_layers=args.layers, num_joints=NUM_JOINTS)
                for _ in range(num_nets)]
    nets = [net.to(device).train() for net in nets]
    if args.channels_last:
        nets = [net.to(memory_format=torch.channels_last) for net in nets]
    params = [p for net in nets for p in net.parameters()]
    optimizer = torch.optim.Adam(params, lr=cfg.TRAIN.LR)
    inputs, targets, _, _ = make_batch(args.batch, args.size, device, args.channels_last)
    sup_x, unsup_x = inputs
    sup_t = targets[0]
    runners = [torch.compile(net) for net in nets] if args.compile else nets

    def step():
        with autocast_context(device, amp_dtype):
            sup = [fn(sup_x) for fn in runners]
            with torch.no_grad():
                teachers = [fn(unsup_x) for fn in runners]
            students = [fn(unsup_x) for fn in runners]
            loss = sum(F.mse_loss(s, sup_t) for s in sup)
            for k, s in enumerate(students):  # two nets: cross-teaching; one: itself
                loss = loss + F.mse_loss(s, teachers[(k + 1) % len(runners)])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def time_steps(step, device, steps, warmup):
    """Runs ``warmup`` untimed and ``steps`` timed steps; returns the per-step seconds."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        sync(device)
        t0 = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def sync_points(step, device):
    """Runs one step under ``torch.cuda.set_sync_debug_mode('warn')``; returns the distinct
    ``'file:line: message'`` of every host-device synchronisation it reported (CUDA only)."""
    if device.type != "cuda":
        return []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    seen = []
    for w in caught:
        text = f"{w.filename}:{w.lineno}: {str(w.message).splitlines()[0]}"
        if text not in seen:
            seen.append(text)
    return seen


def count_flops(step):
    """FLOPs of one step, as counted by ``FlopCounterMode`` (forward and backward)."""
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def reference_flops(num_nets, args):
    """The stated R18 estimate for one step of a method with ``num_nets`` networks (None for other
    backbones)."""
    if args.layers != 18:
        return None
    h, w = args.size
    per_fwd = REF_GFLOP_R18_256x192 * 1e9 * (h * w) / (256 * 192)
    return per_fwd * FWD_EQUIV_PER_NET * num_nets * args.batch


def peak_tflops(args, device):
    """``--peak-tflops``, else the table entry for this GPU and dtype, else None."""
    if args.peak_tflops is not None:
        return args.peak_tflops
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    if args.bf16:
        dtype = "bf16"
    else:  # fp32 convolutions run on TF32 tensor cores when cuDNN is allowed to
        dtype = "tf32" if torch.backends.cudnn.allow_tf32 else "fp32"
    for (key, kind), value in PEAK_TFLOPS.items():
        if key in name and kind == dtype:
            return value
    return None


def release(device):
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run_one(model_name, args, device):
    """Times the framework and the bare step of ``model_name``; returns a dict of results."""
    seed_all(args.seed)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step, eager, method = framework_setup(model_name, args, device)
    num_nets = len(method.nets)
    fw_times = time_steps(step, device, args.steps, args.warmup)
    syncs = sync_points(eager, device) if args.sync_debug else []
    fw_flops = count_flops(eager) if args.count_flops else None
    fw_mem = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    del step, eager, method
    release(device)

    bare_times = None
    if not args.no_bare:
        seed_all(args.seed)
        step = bare_setup(num_nets, args, device)
        bare_times = time_steps(step, device, args.steps, args.warmup)
        del step
        release(device)

    fw_s = statistics.median(fw_times)
    result = {
        "model": model_name,
        "fw_s": fw_s,
        "fw_pairs": args.batch / fw_s,
        "fw_spread": (min(fw_times), max(fw_times)),
        "bare_s": None,
        "bare_pairs": None,
        "overhead": None,
        "flops": fw_flops,
        "ref_flops": reference_flops(num_nets, args),
        "mem": fw_mem,
        "syncs": syncs,
    }
    if bare_times is not None:
        bare_s = statistics.median(bare_times)
        result.update(
            bare_s=bare_s, bare_pairs=args.batch / bare_s, overhead=100.0 * (fw_s / bare_s - 1)
        )
    flops = fw_flops if fw_flops else result["ref_flops"]
    peak = peak_tflops(args, device)
    result["tflops"] = flops / fw_s / 1e12 if flops else None
    result["mfu"] = 100.0 * result["tflops"] / peak if result["tflops"] and peak else None
    return result


def _fmt(value, spec, missing="-"):
    return missing if value is None else format(value, spec)


def _giga(value):
    return None if value is None else value / 1e9


def table_header():
    cols = [
        "model", "device", "backbone", "input HxW", "batch", "dtype", "channels_last", "compile",
        "framework pairs/s", "bare pairs/s", "overhead %", "GFLOP/step", "TFLOP/s", "MFU %",
    ]  # fmt: skip
    return "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols)


def backbone_label(args):
    """``lite32`` for PoseLite of width 32, ``R18`` for ResNet-18."""
    return f"lite{args.width or 32}" if args.backbone == "lite" else f"R{args.layers}"


def table_row(r, args, device_name):
    h, w = args.size
    cells = [
        r["model"], device_name, backbone_label(args), f"{h}x{w}", str(args.batch),
        "bf16" if args.bf16 else "fp32", "yes" if args.channels_last else "no",
        "yes" if args.compile else "no", _fmt(r["fw_pairs"], ".2f"), _fmt(r["bare_pairs"], ".2f"),
        _fmt(r["overhead"], "+.1f"), _fmt(_giga(r["flops"] or r["ref_flops"]), ".1f"),
        _fmt(r["tflops"], ".3f"), _fmt(r["mfu"], ".1f"),
    ]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def device_description(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads)"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("pose_dual", "pose_cons", "both"), default="both")
    parser.add_argument("--layers", type=int, default=18, help="ResNet depth of each network")
    parser.add_argument("--backbone", choices=("resnet", "lite"), default="resnet",
                        help="MODEL.BACKBONE: the ResNet SimpleBaseline or PoseLite")
    parser.add_argument("--width", type=int, default=0,
                        help="MODEL.EXTRA.BASE_WIDTH (0: 64 for resnet, 32 for lite)")
    parser.add_argument("--size", type=parse_size, default=(256, 192), help="input H x W")
    parser.add_argument("--batch", type=int, default=8, help="pairs per step (B sup + B unsup)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (TRAIN.BF16)")
    parser.add_argument("--channels-last", action="store_true", help="TRAIN.CHANNELS_LAST")
    parser.add_argument("--compile", action="store_true", help="torch.compile (TRAIN.COMPILE)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="peak TFLOP/s for the MFU (default: H100/H200 table on CUDA)",
    )
    parser.add_argument("--no-bare", action="store_true", help="skip the bare reference loop")
    parser.add_argument(
        "--no-count-flops",
        dest="count_flops",
        action="store_false",
        help="use the 5.79 GFLOP/forward R18 estimate instead of counting",
    )
    parser.add_argument(
        "--cudnn-benchmark",
        action="store_true",
        help="torch.backends.cudnn.benchmark (CUDNN.BENCHMARK, default off)",
    )
    parser.add_argument(
        "--sync-debug",
        action="store_true",
        help="CUDA: list the host-device syncs of one framework step",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be >= 1")

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("semipose.models.pose_resnet").setLevel(logging.ERROR)  # random-init notice
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch.cuda.is_available() is False")
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = args.cudnn_benchmark
    models = ("pose_dual", "pose_cons") if args.model == "both" else (args.model,)
    name = device_description(device)
    h, w = args.size
    print(
        f"torch {torch.__version__} on {name}; {backbone_label(args)} {h}x{w}, "
        f"batch {args.batch} pairs, "
        f"{'bf16 autocast' if args.bf16 else 'fp32'}, channels_last {args.channels_last}, "
        f"compile {args.compile}; median of {args.steps} steps after {args.warmup} warm-up"
    )
    if device.type == "cuda":
        print(f"cuDNN TF32 for fp32 convolutions: {torch.backends.cudnn.allow_tf32}")

    rows = []
    for model_name in models:
        r = run_one(model_name, args, device)
        lo, hi = r["fw_spread"]
        line = (
            f"{model_name:9s} framework {r['fw_pairs']:8.2f} pairs/s "
            f"({1e3 * r['fw_s']:.1f} ms/step, min {1e3 * lo:.1f}, max {1e3 * hi:.1f})"
        )
        if r["bare_s"] is not None:
            line += (
                f" | bare {r['bare_pairs']:8.2f} pairs/s ({1e3 * r['bare_s']:.1f} ms/step)"
                f" | framework overhead {r['overhead']:+.1f}%"
            )
        print(line)
        flops_line = f"{'':9s} FLOPs/step: "
        flops_line += f"counted {_fmt(_giga(r['flops']), '.1f')} G, "
        flops_line += f"R18 reference {_fmt(_giga(r['ref_flops']), '.1f')} G"
        if r["tflops"] is not None:
            flops_line += f"; achieved {r['tflops']:.3f} TFLOP/s"
        if r["mfu"] is not None:
            flops_line += f", MFU {r['mfu']:.1f}% of {peak_tflops(args, device):g} TFLOP/s"
        if r["mem"] is not None:
            flops_line += f"; peak memory {r['mem'] / 2**30:.2f} GiB"
        print(flops_line)
        if args.sync_debug:
            print(f"{'':9s} host-device syncs in one eager framework step: {len(r['syncs'])}")
            for text in r["syncs"]:
                print(f"{'':11s}{text}")
        rows.append(r)

    print()
    print(table_header())
    for r in rows:
        print(table_row(r, args, name))


if __name__ == "__main__":
    main()
