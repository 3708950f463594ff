"""Optimizer and LR schedule (the original's ``get_optimizer``, lib/utils/utils.py, MIT)."""
import math

import torch

__all__ = ["get_optimizer", "build_optimizer", "build_lr_scheduler"]


def get_optimizer(params, name, lr, momentum=0.9, weight_decay=0.0, nesterov=False, fused=False):
    """The original's optimizers.

    ``adam`` = Adam with the learning rate only (default betas, eps 1e-8, **no weight decay**, as
    the paper's numbers were made); ``sgd`` = SGD with momentum, weight decay and Nesterov.
    ``fused`` asks Adam for its fused kernel, used only when every parameter is on CUDA (the
    default ``False`` keeps torch's default implementation).

    Raises:
        ValueError: an unknown optimizer name.
    """
    name = name.lower()
    if name == "adam":
        params = list(params)
        if fused and params and all(_tensors(p).is_cuda for p in params):
            return torch.optim.Adam(params, lr=lr, fused=True)
        return torch.optim.Adam(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov
        )
    raise ValueError(f"unknown TRAIN.OPTIMIZER '{name}' (expected 'adam' or 'sgd')")


def build_optimizer(cfg, model):
    """One parameter group over every parameter (both networks of PoseDual)."""
    t = cfg.TRAIN
    return get_optimizer(
        list(model.parameters()), t.OPTIMIZER, t.LR, t.MOMENTUM, t.WD, t.NESTEROV,
        fused=t.get("FUSED_ADAM", False),
    )


def _tensors(p):
    """The first tensor of a parameter or a parameter group dict."""
    return p["params"][0] if isinstance(p, dict) else p


class WarmupCosine:
    """LR factor of iteration ``t``: linear warm-up from ``1/warmup`` to 1 over ``warmup``
    iterations, then a half cosine from 1 down to ``final`` at ``total`` iterations.

    A picklable callable (``LambdaLR`` keeps it in its state), with its settings as attributes.
    """

    def __init__(self, total, warmup=0, final=0.0):
        self.total, self.warmup, self.final = max(int(total), 1), max(int(warmup), 0), float(final)

    def __call__(self, t):
        if t < self.warmup:
            return (t + 1) / self.warmup
        span = max(self.total - self.warmup, 1)
        progress = min(max(t - self.warmup, 0) / span, 1.0)
        return self.final + (1.0 - self.final) * 0.5 * (1.0 + math.cos(math.pi * progress))


#: TRAIN.LR_SCHEDULER values
SCHEDULERS = ("multistep", "cosine")


def build_lr_scheduler(cfg, optimizer, iters_per_epoch=1):
    """The LR schedule of ``TRAIN.LR_SCHEDULER``:

    - ``multistep`` (the original's): MultiStepLR at TRAIN.LR_STEP with factor TRAIN.LR_FACTOR,
      stepped once per epoch. Resuming restores its state dict instead of passing ``last_epoch``
      (which made the original's milestones fire one epoch early after a resume).
    - ``cosine`` (ours): ``WarmupCosine`` over ``END_EPOCH * iters_per_epoch`` iterations with
      TRAIN.WARMUP_ITERS of linear warm-up, down to ``LR * TRAIN.FINAL_LR_FACTOR``; stepped every
      iteration (the scheduler's ``per_iteration`` attribute says so).

    Raises:
        ValueError: an unknown TRAIN.LR_SCHEDULER.
    """
    t = cfg.TRAIN
    if t.LR_SCHEDULER == "multistep":
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(t.LR_STEP), t.LR_FACTOR)
        scheduler.per_iteration = False
        return scheduler
    if t.LR_SCHEDULER == "cosine":
        total = t.END_EPOCH * max(int(iters_per_epoch), 1)
        factor = WarmupCosine(total, t.WARMUP_ITERS, t.FINAL_LR_FACTOR)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        scheduler.per_iteration = True
        return scheduler
    raise ValueError(f"TRAIN.LR_SCHEDULER must be one of {SCHEDULERS}, got {t.LR_SCHEDULER!r}")
