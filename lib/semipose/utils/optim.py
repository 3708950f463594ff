"""Optimizer and LR schedule (the original's ``get_optimizer``, lib/utils/utils.py, MIT)."""
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


def build_lr_scheduler(cfg, optimizer):
    """MultiStepLR at TRAIN.LR_STEP with factor TRAIN.LR_FACTOR, stepped once per epoch.

    Resuming restores the scheduler's state dict instead of passing ``last_epoch`` (which made the
    original's milestones fire one epoch early after a resume).
    """
    return torch.optim.lr_scheduler.MultiStepLR(
        optimizer, list(cfg.TRAIN.LR_STEP), cfg.TRAIN.LR_FACTOR
    )
