"""LR schedules: the original's MultiStepLR per epoch, and warm-up + cosine per iteration."""
import math

import pytest
import torch

from semipose.config import load_config
from semipose.utils.optim import WarmupCosine, build_lr_scheduler


def test_warmup_cosine_values():
    f = WarmupCosine(total=110, warmup=10, final=0.1)
    assert [f(t) for t in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.1 + 0.9 * 0.5)  # half way through the cosine
    assert f(110) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)
    assert WarmupCosine(total=4)(2) == pytest.approx(0.5 * (1 + math.cos(math.pi / 2)))


def test_build_lr_scheduler_keys():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([param], lr=0.01)
    cfg = load_config(None, ["TRAIN.LR", 0.01, "TRAIN.LR_SCHEDULER", "cosine", "TRAIN.END_EPOCH",
                             2, "TRAIN.WARMUP_ITERS", 2, "TRAIN.FINAL_LR_FACTOR", 0.0])
    sched = build_lr_scheduler(cfg, opt, iters_per_epoch=5)  # 10 iterations in all
    assert sched.per_iteration
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:3] == pytest.approx([0.005, 0.01, 0.01])
    assert lrs[-1] == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * 7 / 8)))
    multi = build_lr_scheduler(load_config(None, ["TRAIN.LR_STEP", "[1]"]), opt)
    assert multi.per_iteration is False and isinstance(multi, torch.optim.lr_scheduler.MultiStepLR)
    with pytest.raises(ValueError, match="LR_SCHEDULER"):
        build_lr_scheduler(load_config(None, ["TRAIN.LR_SCHEDULER", "step"]), opt)
