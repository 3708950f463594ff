"""Multi-path consistency (MultiAugs): per-path hard views with one shared θ, the per-path student
passes, the sum/mean of the per-path losses, and a single path equal to the original to the bit."""

import copy
import random

import numpy as np
import pytest
import torch

from semipose.core.loss import PoseCoLoss, PoseDisLoss, reduce_paths
from semipose.models.augment_ops import HardAugSettings, build_hard_augment
from semipose.models.hard_augment import get_batch_affine_transform, warp
from semipose.models.pose_cons import PoseCons
from semipose.models.pose_dual import PoseDual
from semipose.models.pose_resnet import PoseResNet

pytestmark = pytest.mark.usefixtures("single_thread")


def net(head="final_layer_1"):
    return PoseResNet(18, 24, num_deconv_filters=(8, 8, 8), head_name=head)


def dual(**kwargs):
    torch.manual_seed(0)
    return PoseDual(net(), net(), **kwargs)


def cons(**kwargs):
    torch.manual_seed(0)
    return PoseCons(net("final_layer"), **kwargs)


def inputs(n=2, size=64):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(n, 3, size, size, generator=g) for _ in range(2)]


def seed(s=0):
    torch.manual_seed(s)
    np.random.seed(s)
    random.seed(s)


class AddConstant:
    """A stand-in path op: adds ``value`` (+ 100 per image index) and records the joints it got."""

    needs_joints = True

    def __init__(self, value):
        self.value = value
        self.joints = None

    def __bool__(self):
        return True

    def apply_interleaved(self, source, joints_list, generator=None):
        self.joints = joints_list
        return [source + self.value + 100 * i for i in range(len(joints_list))]


# ----------------------------------------------------------------------------- the models


def test_paths_share_one_theta_and_the_teacher_joints():
    m = dual(hard_paths=(("JC",), ("CO",)), mask_joint_num=2)
    fakes = (AddConstant(1.0), AddConstant(2.0))
    m.hard_augs = fakes
    sup, unsup = inputs()
    seed(3)
    out = m([sup, unsup])
    seed(3)  # the fake ops draw nothing: θ is the first draw after the seed, once for all paths
    theta = get_batch_affine_transform(2, 0.25, 30)
    assert torch.equal(out["theta"], theta)
    assert len(out["cons_hts1"]) == len(out["cons_xs2"]) == 2
    for k, fake in enumerate(fakes):
        # net 1's image is cut at net 2's joints and vice versa, in every path
        assert torch.equal(fake.joints[0], m._joints(unsup, out["unsup_ht2"]))
        assert torch.equal(fake.joints[1], m._joints(unsup, out["unsup_ht1"]))
        assert torch.equal(out["cons_xs1"][k], warp(unsup + fake.value, theta))
        assert torch.equal(out["cons_xs2"][k], warp(unsup + fake.value + 100, theta))
        assert out["cons_hts1"][k].requires_grad and out["cons_hts2"][k].requires_grad
    assert torch.equal(out["cons_ht1"], out["cons_hts1"][0])
    assert torch.equal(out["unsup_x_trans_2"], out["cons_xs2"][0])
    # the teacher targets are warped by the same θ
    assert torch.equal(out["unsup_ht_trans1"], warp(out["unsup_ht1"], theta))


def test_each_path_runs_its_own_ops_from_the_easy_view():
    settings = HardAugSettings(mask_joint_num=2)
    m = cons(hard_paths=(("JC",), ("JOCO",), ()), mask_joint_num=2, unsup_transform=False)
    sup, unsup = inputs()
    seed(5)
    out = m([sup, unsup])
    joints = m._joints(unsup, out["unsup_ht"])
    seed(5)  # the same draws, path after path, each path from the easy view itself
    jc = build_hard_augment(("JC",), settings)(unsup, joints)
    joco = build_hard_augment(("JOCO",), settings)(unsup, joints)
    xs = out["cons_xs"]
    assert torch.equal(xs[0], jc) and torch.equal(xs[1], joco) and torch.equal(xs[2], unsup)
    assert not torch.equal(xs[0], xs[1])
    changed0, changed1 = (xs[0] != unsup).any(1), (xs[1] != unsup).any(1)
    assert changed0.any() and changed1.any() and not torch.equal(changed0, changed1)
    # one student pass per path (train mode, the path's own batch statistics)
    for x, ht in zip(xs, out["cons_hts"]):
        assert torch.allclose(ht, m.resnet(x), atol=1e-6)


def test_path_order_is_the_draw_order():
    """Two identical ops in two paths draw different noise: the second path continues the RNG."""
    m = cons(hard_paths=(("CO",), ("CO",)), unsup_transform=False)
    seed(0)
    out = m(inputs())
    assert not torch.equal(out["cons_xs"][0], out["cons_xs"][1])


def test_paths_exclude_ops_and_controls_and_unknown_names():
    with pytest.raises(ValueError, match="HARD_AUG.PATHS"):
        cons(hard_paths=(("JC",),), hard_ops=("CO",), mask_joint_num=2)
    with pytest.raises(ValueError, match="HARD_AUG.PATHS"):
        cons(hard_paths=(("CO",),), same_view=True)
    with pytest.raises(KeyError, match="XX"):
        cons(hard_paths=(("CO",), ("XX",)))
    m = cons(hard_paths=(("CO",), ("CM",)), mask_joint_num=5)  # MASK_JOINT_NUM alone: no JC path
    assert m.hard_paths == (("CO",), ("CM",)) and m.hard_ops == ()


# ----------------------------------------------------------------------------- bit-identical


def reference_dual(m, x):
    """PoseDual's single-path forward as it was before multi-path consistency."""
    sup_x, unsup_x = x
    out = {"sup_ht1": m.resnet(sup_x), "sup_ht2": m.resnet2(sup_x)}
    with torch.no_grad():
        u1, u2 = m.resnet(unsup_x), m.resnet2(unsup_x)
        x1, x2 = m._hard_ops(unsup_x, u2, u1)
        theta = m._theta(unsup_x.shape[0], unsup_x.device)
        x1, x2 = m._warp(theta, x1, x2)
        t1, t2 = m._warp(theta, u1, u2)
    out.update(unsup_ht1=u1, unsup_ht2=u2, unsup_ht_trans1=t1, unsup_ht_trans2=t2,
               cons_ht1=m.resnet(x1), cons_ht2=m.resnet2(x2), unsup_x_trans=x1,
               unsup_x_trans_2=x2, theta=theta)
    return out


def reference_cons(m, x):
    """PoseCons' single-path forward as it was before multi-path consistency."""
    sup_x, unsup_x = x
    sup_ht = m.resnet(sup_x)
    with torch.no_grad():
        u = m.resnet(unsup_x)
        (cx,) = m._hard_ops(unsup_x, u)
        theta = m._theta(unsup_x.shape[0], unsup_x.device)
        (cx,) = m._warp(theta, cx)
        (t,) = m._warp(theta, u)
    return {"sup_ht": sup_ht, "unsup_ht": u, "unsup_ht_trans": t, "cons_x": cx,
            "cons_ht": m.resnet(cx), "theta": theta}


def old_co_loss(out, t, w):
    from semipose.core.loss import JointsMSELoss

    mse = JointsMSELoss(True)
    pose = 0.5 * mse(out["sup_ht1"], t, w) + 0.5 * mse(out["sup_ht2"], t, w)
    cons = mse(out["cons_ht1"], out["unsup_ht_trans2"].detach(), w) + mse(
        out["cons_ht2"], out["unsup_ht_trans1"].detach(), w)
    return pose + cons


def outputs_match_reference(model, reference, x, s):
    """Asserts that ``model(x)`` and ``reference`` on a deep copy of the model, each run from seed
    ``s``, give the same outputs, bit for bit; returns ``(outputs, reference outputs, copy)``."""
    ref = copy.deepcopy(model)
    seed(s)
    out = model(x)
    seed(s)
    expected = reference(ref, x)
    assert set(out) == set(expected)
    for k in expected:
        assert torch.equal(out[k], expected[k]), k
    return out, expected, ref


@pytest.mark.parametrize("kwargs", [dict(mask_joint_num=2), dict(hard_paths=(("JC",),),
                                                                 mask_joint_num=2),
                                    dict(hard_ops=("JOCO",)), dict()])
def test_single_path_is_bit_identical_to_the_original(kwargs):
    x = inputs()
    m = dual(**kwargs)
    out, expected, ref = outputs_match_reference(m, reference_dual, x, 7)
    t, w = torch.rand(2, 24, 16, 16), torch.ones(2, 24, 1)
    for reduction in ("sum", "mean"):
        loss, parts = PoseCoLoss(path_reduction=reduction)(out, [t, None], [w, w])
        assert torch.equal(loss, old_co_loss(expected, t, w))
        assert set(parts) == {"loss_pose", "loss_cons"}
    for p, q in zip(m.state_dict().values(), ref.state_dict().values()):  # BN statistics too
        assert torch.equal(p, q)

    outputs_match_reference(cons(mask_joint_num=2), reference_cons, x, 8)


# ----------------------------------------------------------------------------- the losses


def const(value, shape=(2, 24, 4, 4)):
    return torch.full(shape, float(value))


def test_path_sum_and_mean_on_hand_made_heatmaps():
    w = torch.ones(2, 24, 1)
    t = const(0)
    out = {"sup_ht": t, "cons_ht": const(1), "cons_hts": (const(1), const(2), const(3)),
           "unsup_ht_trans": const(0)}
    # each path term is 0.5·(value − 0)²: 0.5, 2, 4.5
    loss, parts = PoseDisLoss(path_reduction="sum")(out, [t, None], [w, w])
    assert loss.item() == pytest.approx(7.0)
    assert [parts[f"loss_cons_path{k}"].item() for k in range(3)] == [0.5, 2.0, 4.5]
    loss, parts = PoseDisLoss(path_reduction="mean")(out, [t, None], [w, w])
    assert loss.item() == pytest.approx(7.0 / 3) and parts["loss_cons"].item() == loss.item()

    # Dual: path k pairs net 1's student with net 2's teacher (2) and net 2's with net 1's (0)
    dual_out = {"sup_ht1": t, "sup_ht2": t, "unsup_ht_trans1": const(0),
                "unsup_ht_trans2": const(2), "cons_ht1": const(0), "cons_ht2": const(0),
                "cons_hts1": (const(0), const(4)), "cons_hts2": (const(1), const(3))}
    # path 0: 0.5·(0−2)² + 0.5·(1−0)² = 2.5; path 1: 0.5·(4−2)² + 0.5·(3−0)² = 6.5
    loss, parts = PoseCoLoss(path_reduction="sum")(dual_out, [t, None], [w, w])
    assert loss.item() == pytest.approx(9.0)
    assert parts["loss_cons_path0"].item() == 2.5 and parts["loss_cons_path1"].item() == 6.5
    loss, _ = PoseCoLoss(path_reduction="mean")(dual_out, [t, None], [w, w])
    assert loss.item() == pytest.approx(4.5)
    # the unlabeled weights apply to every path: joints of weight 0 add nothing
    w_half = torch.zeros(2, 24, 1)
    w_half[:, :12] = 1
    loss, _ = PoseCoLoss()(dual_out, [t, None], [w, w_half])
    assert loss.item() == pytest.approx(4.5)


def test_path_losses_reach_every_path_and_reject_unknown_reductions():
    m = dual(hard_paths=(("CO",), ("CM",), ()))
    seed(0)
    out = m(inputs())
    w = torch.ones(2, 24, 1)
    loss, parts = PoseCoLoss()(out, [torch.rand(2, 24, 16, 16), None], [w, w])
    grads = torch.autograd.grad(loss, [*out["cons_hts1"], *out["cons_hts2"]])
    assert all(g.abs().sum() > 0 for g in grads)
    assert parts["loss_cons"].item() == pytest.approx(
        sum(parts[f"loss_cons_path{k}"].item() for k in range(3)), rel=1e-6)
    with pytest.raises(ValueError, match="path reduction"):
        PoseCoLoss(path_reduction="max")
    with pytest.raises(ValueError, match="path reduction"):
        reduce_paths([torch.zeros(())], "median")
