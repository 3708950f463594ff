"""PoseCons: output dict, gradients, cutout at its own teacher's joints, warp of the teacher."""

import copy
import random

import numpy as np
import pytest
import torch

from semipose.codecs import get_max_preds_tensor
from semipose.core.loss import PoseDisLoss
from semipose.models.hard_augment import get_batch_affine_transform, mask_joint, warp
from semipose.models.pose_cons import PoseCons
from semipose.models.pose_resnet import PoseResNet

pytestmark = pytest.mark.usefixtures("single_thread")


KEYS = {"sup_ht", "unsup_ht", "unsup_ht_trans", "cons_x", "cons_ht", "theta"}


def model(**kwargs):
    torch.manual_seed(0)
    net = PoseResNet(18, 24, num_deconv_filters=(16, 16, 16), head_name="final_layer")
    return PoseCons(net, **kwargs)


def inputs(n=2):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(n, 3, 64, 64, generator=g) for _ in range(2)]


def seed(s):
    torch.manual_seed(s)
    np.random.seed(s)
    random.seed(s)


def test_train_outputs_gradients_and_wiring():
    m = model(mask_joint_num=2)
    ref = copy.deepcopy(m)
    sup_x, unsup_x = inputs()
    seed(4)
    out = m([sup_x, unsup_x])
    assert set(out) == KEYS
    assert out["sup_ht"].requires_grad and out["cons_ht"].requires_grad
    assert out["unsup_ht"].requires_grad is False and out["unsup_ht_trans"].requires_grad is False
    torch.testing.assert_close(out["unsup_ht"], ref.resnet(unsup_x))  # train-mode teacher
    seed(4)
    preds, _ = get_max_preds_tensor(out["unsup_ht"])
    cut = mask_joint(unsup_x, preds * 4, 2)  # its own joints
    theta = get_batch_affine_transform(2, 0.25, 30)
    torch.testing.assert_close(out["theta"], theta)
    torch.testing.assert_close(out["cons_x"], warp(cut, theta))
    torch.testing.assert_close(out["unsup_ht_trans"], warp(out["unsup_ht"], theta))
    assert m.resnet.bn1.num_batches_tracked.item() == 3

    w = torch.ones(2, 24, 1)
    loss, parts = PoseDisLoss()(out, [torch.rand(2, 24, 16, 16), None], [w, w])
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())
    assert set(parts) == {"loss_pose", "loss_cons"}


def test_eval_returns_heatmap():
    m = model().eval()
    x = inputs()[0]
    torch.testing.assert_close(m(x), m.resnet(x))


def test_no_transform_and_same_view():
    m = model(unsup_transform=False, cons_rand_aug=True)
    sup_x, unsup_x = inputs()
    aug = -unsup_x
    out = m([sup_x, unsup_x, aug])
    assert torch.equal(out["cons_x"], aug)
    assert out["unsup_ht_trans"] is out["unsup_ht"]
    m = model(same_view=True)
    out = m([sup_x, unsup_x])
    torch.testing.assert_close(out["unsup_ht"], out["cons_ht"].detach())
    assert out["cons_x"] is unsup_x
    assert m.resnet.bn1.num_batches_tracked.item() == 2
