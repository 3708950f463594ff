"""The CPU's achievable fp32 peak, and each training configuration's share of it.

Two reference kernels give the peak on the threads the training uses (the same PyTorch and oneDNN):

- **GEMM**: ``torch.mm`` of two ``--gemm`` x ``--gemm`` fp32 matrices (2 n^3 FLOP a call);
- **conv 3x3**: a 64 -> 64 channel 3x3 convolution (stride 1, padding 1) on a (16, 64, 64, 48)
  channels_last input, forward only (2 * 9 * 64 * 64 * 64 * 48 * 16 FLOP a call).

The peak is the larger of the two (the best of ``--repeat`` timed calls each). Then, for each
configuration of ``CONFIGS`` (the demo's, study ``paper``'s base, and ResNet-18 at 256x192), the
training step of ``bench/train_step.py`` (the engine's ``Trainer.run_step`` on random tensors that
already lie on the CPU, FLOPs counted by ``FlopCounterMode``) gives the step-alone FLOP/s, and
``bench/train_e2e.py`` (the real loader with the config's ``WORKERS`` on the synthetic set the
config names) the end-to-end rate and the loader-wait share. The share of the peak is achieved
FLOP/s / peak FLOP/s.

With ``--compile-ab`` it measures ``torch.compile`` (inductor's C++ backend) on the CPU instead: for
each configuration the engine's step with ``TRAIN.COMPILE`` (the networks compiled in place, the
hard augmentation eager), the wall time of the first step (tracing, code generation and the C++
compiler), then ``--steps`` rounds that each time one compiled step and one step of the same
trainer under ``torch.compiler.set_stance("force_eager")`` back to back, so the two are measured
side by side on the same weights and batch; the ratio is eager median / compiled median.

Usage: ``python bench/cpu_peak.py [--configs demo,paper,r18] [--steps 8] [--iters 24]
[--compile-ab]``
"""

import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_e2e  # noqa: E402
import train_step  # noqa: E402

#: name -> (yaml, PoseDual step settings for train_step: size, batch, backbone, width, overrides)
CONFIGS = {
    "demo": dict(
        cfg="experiments/synthetic/demo/128x96_EASY_PoseDual_JointCut.yaml",
        size=(128, 96), batch=16, backbone="lite", width=32,
        opts=["MASK_JOINT_NUM", "3", "MASK_JOINT_RELATIVE", "true",
              "MODEL.EXTRA.NUM_DECONV_FILTERS", "[64, 64, 64]"],
    ),
    "paper": dict(
        cfg="experiments/studies/paper/base.yaml",
        size=(96, 64), batch=8, backbone="lite", width=32,
        opts=["MASK_JOINT_NUM", "5", "MASK_JOINT_RELATIVE", "true",
              "MODEL.EXTRA.NUM_DECONV_FILTERS", "[64, 64, 64]"],
    ),
    "r18": dict(
        cfg="experiments/synthetic/96x64_SYN_PoseDual_JointCut.yaml",
        size=(256, 192), batch=8, backbone="resnet", width=64,
        opts=["MODEL.EXTRA.NUM_DECONV_FILTERS", "[256, 256, 256]"],
    ),
}  # fmt: skip


def best_rate(fn, flops, repeat):
    """FLOP/s of ``fn`` (``flops`` a call): the best of ``repeat`` timed calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return flops / min(times)


def gemm_peak(n, repeat):
    a, b = torch.randn(n, n), torch.randn(n, n)
    return best_rate(lambda: torch.mm(a, b), 2.0 * n**3, repeat)


def conv_peak(repeat, batch=16, ch=64, h=64, w=48):
    x = torch.randn(batch, ch, h, w).to(memory_format=torch.channels_last)
    weight = torch.randn(ch, ch, 3, 3).to(memory_format=torch.channels_last)
    flops = 2.0 * 9 * ch * ch * h * w * batch
    with torch.no_grad():
        return best_rate(lambda: F.conv2d(x, weight, padding=1), flops, repeat)


def _setup(spec, compile):
    """``train_step.framework_setup``'s (step, eager model, method) of PoseDual under ``spec``
    on the CPU, channels_last, fp32, its networks compiled or not."""
    args = argparse.Namespace(
        size=spec["size"], batch=spec["batch"], device="cpu", layers=18,
        backbone=spec["backbone"], width=spec["width"], bf16=False, channels_last=True,
        compile=compile, opts=list(spec["opts"]),
    )  # fmt: skip
    return train_step.framework_setup("pose_dual", args, torch.device("cpu"))


def step_alone(spec, steps, warmup):
    """Step-alone pairs/s and FLOP/s of PoseDual under ``spec`` (channels_last, fp32)."""
    step, eager, _ = _setup(spec, compile=False)
    times = train_step.time_steps(step, torch.device("cpu"), steps, warmup)
    flops = train_step.count_flops(eager)
    sec = statistics.median(times)
    return spec["batch"] / sec, flops / sec, flops / spec["batch"]


def end_to_end(spec, iters, warmup):
    """End-to-end pairs/s and loader-wait share through the config's own loader and data."""
    h, w = spec["size"]
    from semipose.config import load_config

    cfg = load_config(spec["cfg"], [])
    root = cfg.DATASET.ROOT.rstrip("/")
    size = cfg.DATASET.SYNTHETIC.IMAGE_SIZE
    argv = [
        "--cfg", spec["cfg"], "--root", root, "--image-size", f"{size[1]}x{size[0]}",
        "--num-train", str(cfg.DATASET.SYNTHETIC.NUM_TRAIN), "--size", f"{h}x{w}",
        "--batch", str(spec["batch"]), "--workers", str(cfg.WORKERS),
        "--iters", str(iters), "--warmup", str(warmup), "TRAIN.CHANNELS_LAST", "true",
        "MODEL.BACKBONE", spec["backbone"], "MODEL.EXTRA.BASE_WIDTH", str(spec["width"]),
        "MODEL.NAME", "pose_dual", "DATASET.TRAIN_DATASET", "mix_coco_coco",
        "MODEL.PRETRAINED", "", "MODEL.INIT_WEIGHTS", "false",
        "DATASET.SYNTHETIC.NUM_VAL", str(cfg.DATASET.SYNTHETIC.NUM_VAL),
    ] + list(spec["opts"])  # fmt: skip
    return train_e2e.main(argv)


def compile_ab(spec, steps, warmup):
    """Compiled against eager steps of PoseDual under ``spec``, interleaved in one process.

    Returns:
        dict: ``first_s`` (the first compiled step, compilation included), ``compiled_s`` and
        ``eager_s`` (medians of ``steps`` interleaved timed steps each, after ``warmup`` of each),
        ``speedup`` (eager / compiled).
    """
    step, eager, method = _setup(spec, compile=True)
    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    for _ in range(warmup):
        step()
        eager()
    compiled_t, eager_t = [], []
    for _ in range(steps):
        for fn, out in ((step, compiled_t), (eager, eager_t)):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    c, e = statistics.median(compiled_t), statistics.median(eager_t)
    first_net = next(iter(method.networks(step.model).values()))
    out_diff, grad_diff = compiled_difference(first_net, spec)
    return {"first_s": first, "compiled_s": c, "eager_s": e, "speedup": e / c,
            "out_diff": out_diff, "grad_diff": grad_diff}


def compiled_difference(net, spec):
    """How far the compiled network's numbers lie from eager ones: one forward + backward of
    ``net`` (train mode, the weights as they are) on one random batch, compiled and under
    ``force_eager``; returns the largest absolute difference of the heatmaps and of the weight
    gradients, each relative to the largest eager magnitude."""
    h, w = spec["size"]
    x = torch.randn(spec["batch"], 3, h, w).to(memory_format=torch.channels_last)
    results = []
    for stance in ("default", "force_eager"):
        with torch.compiler.set_stance(stance):
            net.zero_grad(set_to_none=True)
            out = net(x)
            out.square().mean().backward()
        grads = torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])
        results.append((out.detach(), grads))
    (out_c, grad_c), (out_e, grad_e) = results
    net.zero_grad(set_to_none=True)
    rel = lambda a, b: ((a - b).abs().max() / b.abs().max()).item()  # noqa: E731
    return rel(out_c, out_e), rel(grad_c, grad_e)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="demo,paper,r18")
    parser.add_argument("--gemm", type=int, default=4096)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=24, help="end-to-end timed iterations")
    parser.add_argument("--no-e2e", action="store_true")
    parser.add_argument("--compile-ab", action="store_true",
                        help="torch.compile against eager, interleaved, instead of the peak table")
    args = parser.parse_args(argv)
    names = [n for n in args.configs.split(",") if n]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown configs {unknown}; choose from {sorted(CONFIGS)}")

    threads = torch.get_num_threads()
    if args.compile_ab:
        print(f"torch {torch.__version__}, {threads} threads, fp32, channels_last; PoseDual step, "
              f"median of {args.steps} interleaved steps after {args.warmup} of each")
        print()
        print("| config | input | batch | first compiled step s | compiled s/step | eager s/step "
              "| eager / compiled | heatmap rel. diff | gradient rel. diff |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name in names:
            spec = CONFIGS[name]
            r = compile_ab(spec, args.steps, args.warmup)
            h, w = spec["size"]
            print(f"| {name} | {h}x{w} | {spec['batch']} | {r['first_s']:.1f} | "
                  f"{r['compiled_s']:.3f} | {r['eager_s']:.3f} | {r['speedup']:.2f} | "
                  f"{r['out_diff']:.1e} | {r['grad_diff']:.1e} |", flush=True)
        return
    gemm = gemm_peak(args.gemm, args.repeat)
    conv = conv_peak(args.repeat)
    peak = max(gemm, conv)
    print(f"torch {torch.__version__}, {threads} threads, oneDNN "
          f"{torch.backends.mkldnn.is_available()}")
    print(f"fp32 GEMM {args.gemm}^2: {gemm / 1e9:.1f} GFLOP/s; conv 3x3 64ch 64x48 b16 "
          f"(channels_last): {conv / 1e9:.1f} GFLOP/s; peak {peak / 1e9:.1f} GFLOP/s")
    rows = []
    for name in names:
        spec = CONFIGS[name]
        pairs, rate, per_pair = step_alone(spec, args.steps, args.warmup)
        e2e = None if args.no_e2e else end_to_end(spec, args.iters, args.warmup)
        rows.append((name, spec, pairs, rate, per_pair, e2e))
    print()
    print("| config | input | batch | GFLOP/pair | step pairs/s | step GFLOP/s | step % of peak "
          "| e2e pairs/s | e2e % of peak | loader wait % |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, spec, pairs, rate, per_pair, e2e in rows:
        h, w = spec["size"]
        cells = [name, f"{h}x{w}", str(spec["batch"]), f"{per_pair / 1e9:.2f}", f"{pairs:.1f}",
                 f"{rate / 1e9:.1f}", f"{100 * rate / peak:.0f}"]
        if e2e:
            e2e_rate = e2e["pairs_per_s"] * per_pair
            cells += [f"{e2e['pairs_per_s']:.1f}", f"{100 * e2e_rate / peak:.0f}",
                      f"{100 * e2e['wait_share']:.1f}"]
        else:
            cells += ["-", "-", "-"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
