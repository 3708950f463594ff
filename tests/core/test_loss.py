"""Losses on hand-made heatmaps: JointsMSE averaging/masking, cross-teaching pairing, registry."""

import pytest
import torch

from semipose.core.loss import (
    JointsMSELoss,
    PoseCoLoss,
    PoseDisLoss,
    SupervisedLoss,
)


def one_hot_weight(n, k, joints):
    w = torch.zeros(n, k, 1)
    w[:, joints] = 1.0
    return w


def test_zero_at_target():
    t = torch.rand(2, 24, 8, 6)
    assert JointsMSELoss()(t.clone(), t, torch.ones(2, 24, 1)).item() == 0.0


def test_averages_over_all_24_channels():
    out, tgt = torch.full((2, 24, 8, 6), 2.0), torch.zeros(2, 24, 8, 6)
    w = one_hot_weight(2, 24, [5])
    # one weighted joint with residual 2: 0.5 * 4 * (1 / 24)
    assert JointsMSELoss()(out, tgt, w).item() == pytest.approx(0.5 * 4 / 24)
    w = one_hot_weight(2, 24, list(range(17)))
    assert JointsMSELoss()(out, tgt, w).item() == pytest.approx(0.5 * 4 * 17 / 24)
    # without target weight every channel counts
    assert JointsMSELoss(use_target_weight=False)(out, tgt, w).item() == pytest.approx(2.0)


def test_weight_masking_and_shapes():
    torch.manual_seed(0)
    out, tgt = torch.rand(2, 4, 5, 5), torch.rand(2, 4, 5, 5)
    w = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 1.0]])
    loss = JointsMSELoss()(out, tgt, w[..., None])
    out2 = out.clone()
    out2[0, 1] += 10  # a zero-weight channel
    assert JointsMSELoss()(out2, tgt, w).item() == pytest.approx(loss.item())  # (N, K) weight too
    # the original's per-joint formula: mean_j 0.5 * mean_{b,p} (w*pred - w*gt)^2
    per_joint = [
        0.5 * ((out[:, j] * w[:, j, None, None] - tgt[:, j] * w[:, j, None, None]) ** 2).mean()
        for j in range(4)
    ]
    assert loss.item() == pytest.approx(torch.stack(per_joint).mean().item(), rel=1e-6)
    # fractional weights enter squared
    half = JointsMSELoss()(
        torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), torch.full((1, 1, 1), 0.5)
    )
    assert half.item() == pytest.approx(0.5 * 0.25)


def dual_outputs(t1, t2, c1, c2, s1, s2):
    return {
        "sup_ht1": s1,
        "sup_ht2": s2,
        "unsup_ht1": t1,
        "unsup_ht2": t2,
        "unsup_ht_trans1": t1,
        "unsup_ht_trans2": t2,
        "cons_ht1": c1,
        "cons_ht2": c2,
    }


def test_pose_co_loss_cross_teaching_pairing():
    k = 24
    target = torch.zeros(2, k, 4, 4)
    w = torch.ones(2, k, 1)
    t1 = torch.full((2, k, 4, 4), 1.0, requires_grad=True)
    t2 = torch.full((2, k, 4, 4), 3.0, requires_grad=True)
    s1 = (target + 1).requires_grad_()
    s2 = target.clone().requires_grad_()
    # net 1's hard prediction equals net 2's warped teacher and vice versa: no consistency loss
    out = dual_outputs(
        t1, t2, t2.detach().clone().requires_grad_(), t1.detach().clone().requires_grad_(), s1, s2
    )
    total, parts = PoseCoLoss()(out, [target, None], [w, w])
    assert parts["loss_cons"].item() == 0.0
    assert parts["loss_pose"].item() == pytest.approx(0.5 * 0.5 * 1.0)  # 0.5 * MSE(s1) + 0.5 * 0
    assert total.item() == pytest.approx(0.25)
    # pairing each student with its own teacher is penalised: 2 * 0.5 * (3 - 1)^2
    out = dual_outputs(t1, t2, t1.detach().clone(), t2.detach().clone(), s1, s2)
    _, parts = PoseCoLoss()(out, [target, None], [w, w])
    assert parts["loss_cons"].item() == pytest.approx(2 * 0.5 * 4.0)
    # teachers are detached; the unlabeled weight masks the consistency term
    c1 = torch.zeros(2, k, 4, 4, requires_grad=True)
    out = dual_outputs(t1, t2, c1, torch.zeros(2, k, 4, 4), s1, s2)
    total, parts = PoseCoLoss()(out, [target, None], [w, torch.zeros(2, k, 1)])
    assert parts["loss_cons"].item() == 0.0
    total, _ = PoseCoLoss()(out, [target, None], [w, w])
    total.backward()
    assert t1.grad is None and t2.grad is None and c1.grad is not None
    assert not parts["loss_pose"].requires_grad


def test_pose_dis_loss_uses_the_warped_teacher():
    target = torch.zeros(1, 24, 4, 4)
    w = torch.ones(1, 24, 1)
    out = {
        "sup_ht": target + 2,
        "unsup_ht": torch.full_like(target, 9.0),
        "unsup_ht_trans": torch.ones_like(target),
        "cons_ht": torch.ones_like(target),
    }
    total, parts = PoseDisLoss()(out, [target, None], [w, w])
    assert parts["loss_cons"].item() == 0.0
    assert parts["loss_pose"].item() == pytest.approx(0.5 * 4)
    assert total.item() == pytest.approx(2.0)


def test_supervised_loss():
    target = torch.zeros(1, 24, 4, 4)
    total, parts = SupervisedLoss()(target + 1, target, torch.ones(1, 24, 1))
    assert total.item() == pytest.approx(0.5) and set(parts) == {"loss_pose"}

