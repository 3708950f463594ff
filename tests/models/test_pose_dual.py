"""PoseDual: outputs, gradients, teacher/student wiring, cross cutout, shared θ, BN per forward."""

import copy
import random

import numpy as np
import pytest
import torch

from semipose.codecs import get_max_preds_tensor
from semipose.core.loss import PoseCoLoss
from semipose.models.hard_augment import get_batch_affine_transform, mask_joint, warp
from semipose.models.pose_dual import PoseDual
from semipose.models.pose_resnet import PoseResNet

pytestmark = pytest.mark.usefixtures("single_thread")


KEYS = {
    "sup_ht1",
    "sup_ht2",
    "unsup_ht1",
    "unsup_ht2",
    "unsup_ht_trans1",
    "unsup_ht_trans2",
    "cons_ht1",
    "cons_ht2",
    "unsup_x_trans",
    "unsup_x_trans_2",
    "theta",
}


def net():
    return PoseResNet(
        18,
        24,
        num_deconv_filters=(16, 16, 16),
        head_name="final_layer_1",
    )


def model(**kwargs):
    torch.manual_seed(0)
    return PoseDual(net(), net(), **kwargs)


def inputs(n=2):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(n, 3, 64, 64, generator=g) for _ in range(2)]


def seed(s=0):
    torch.manual_seed(s)
    np.random.seed(s)
    random.seed(s)


def test_train_outputs_and_gradients():
    m = model(mask_joint_num=2)
    seed()
    out = m(inputs())
    assert set(out) == KEYS
    for k in ("sup_ht1", "sup_ht2", "cons_ht1", "cons_ht2"):
        assert out[k].shape == (2, 24, 16, 16) and out[k].requires_grad
    for k in (
        "unsup_ht1",
        "unsup_ht2",
        "unsup_ht_trans1",
        "unsup_ht_trans2",
        "unsup_x_trans",
        "theta",
    ):
        assert out[k].requires_grad is False
    assert out["theta"].shape == (2, 2, 3)
    w = torch.ones(2, 24, 1)
    loss, _ = PoseCoLoss()(out, [torch.rand(2, 24, 16, 16), None], [w, w])
    loss.backward()
    starved = [n for n, p in m.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert starved == []


def test_eval_returns_both_heatmaps():
    m = model().eval()
    x = inputs()[0]
    ht1, ht2 = m(x)
    torch.testing.assert_close(ht1, m.resnet(x))
    torch.testing.assert_close(ht2, m.resnet2(x))
    assert not torch.equal(ht1, ht2)


def test_teachers_in_train_mode_with_per_forward_bn():
    m = model(unsup_transform=False)
    ref = copy.deepcopy(m)
    sup_x, unsup_x = inputs()
    out = m([sup_x, unsup_x])
    # teacher = net on the unsup batch alone, BN in train mode (batch statistics of that batch only)
    torch.testing.assert_close(out["unsup_ht1"], ref.resnet(unsup_x))
    torch.testing.assert_close(out["unsup_ht2"], ref.resnet2(unsup_x))
    torch.testing.assert_close(out["sup_ht1"], ref.resnet(sup_x))
    # no cutout, no affine: the student sees the easy view, so it equals the teacher
    torch.testing.assert_close(out["cons_ht1"], out["unsup_ht1"])
    torch.testing.assert_close(out["theta"], torch.eye(2, 3).expand(2, 2, 3))
    # three forwards per net (sup, teacher, student): BN counts three batches
    assert m.resnet.bn1.num_batches_tracked.item() == 3
    assert m.resnet2.bn1.num_batches_tracked.item() == 3


def test_cross_cutout_and_shared_theta():
    m = model(mask_joint_num=3)
    sup_x, unsup_x = inputs()
    seed(5)
    out = m([sup_x, unsup_x])
    seed(5)
    p1, _ = get_max_preds_tensor(out["unsup_ht1"])
    p2, _ = get_max_preds_tensor(out["unsup_ht2"])
    cut1 = mask_joint(unsup_x, p2 * 4, 3)  # net 1's image is cut at net 2's joints
    cut2 = mask_joint(unsup_x, p1 * 4, 3)
    theta = get_batch_affine_transform(2, 0.25, 30)
    torch.testing.assert_close(out["theta"], theta)
    torch.testing.assert_close(out["unsup_x_trans"], warp(cut1, theta))
    torch.testing.assert_close(out["unsup_x_trans_2"], warp(cut2, theta))
    torch.testing.assert_close(out["unsup_ht_trans1"], warp(out["unsup_ht1"], theta))
    torch.testing.assert_close(out["unsup_ht_trans2"], warp(out["unsup_ht2"], theta))
    assert not torch.equal(out["unsup_x_trans"], out["unsup_x_trans_2"])


def test_mask_joint_fix_draws_trained_channels_only():
    m = model(mask_joint_num=4, mask_joint_fix=True, trained_joints=[3], unsup_transform=False)
    sup_x, unsup_x = inputs()
    seed(2)
    out = m([sup_x, unsup_x])
    seed(2)
    p2, _ = get_max_preds_tensor(out["unsup_ht2"])
    expect = mask_joint(unsup_x, p2 * 4, 4, fix_clamp=True, joint_ids=[3])
    torch.testing.assert_close(out["unsup_x_trans"], expect)


def test_rand_aug_source():
    m = model(cons_rand_aug=True, unsup_transform=False)
    sup_x, unsup_x = inputs()
    aug = unsup_x.flip(-1)
    out = m([sup_x, unsup_x, aug])
    assert torch.equal(out["unsup_x_trans"], aug) and torch.equal(out["unsup_x_trans_2"], aug)
    with pytest.raises(ValueError, match="RandAugment"):
        m([sup_x, unsup_x])


def test_same_view_control():
    m = model(same_view=True, mask_joint_num=5)
    sup_x, unsup_x = inputs()
    out = m([sup_x, unsup_x, unsup_x.flip(-1)])
    assert set(out) == KEYS
    assert out["unsup_x_trans"] is unsup_x
    torch.testing.assert_close(out["theta"], torch.eye(2, 3).expand(2, 2, 3))
    torch.testing.assert_close(out["unsup_ht_trans2"], out["cons_ht2"].detach())
    assert out["unsup_ht1"].requires_grad is False and out["cons_ht1"].requires_grad
    assert m.resnet.bn1.num_batches_tracked.item() == 2  # one forward on the unlabeled view


def test_bad_input_list():
    with pytest.raises(ValueError):
        model()([inputs()[0]])


def test_hard_teacher_control():
    """CONS_HARD_TEACHER: the teachers run on an affine view of their own, and the warped teacher
    heatmaps equal the teachers' outputs carried by θ_t⁻¹·θ_s."""
    from semipose.models.hard_augment import compose_theta, invert_theta

    m = model(hard_teacher=True)
    seed(5)
    out = m(inputs())
    seed(5)
    theta_t = get_batch_affine_transform(2, 0.25, 30)
    theta_s = get_batch_affine_transform(2, 0.25, 30)
    assert torch.allclose(out["theta"], theta_s)
    carry = compose_theta(invert_theta(theta_t), theta_s)
    assert torch.allclose(out["unsup_ht_trans1"], warp(out["unsup_ht1"], carry), atol=1e-6)
    assert torch.allclose(out["unsup_ht_trans2"], warp(out["unsup_ht2"], carry), atol=1e-6)
    assert torch.allclose(out["unsup_x_trans"], warp(inputs()[1], theta_s), atol=1e-6)
