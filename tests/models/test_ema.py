"""The EMA (mean) teacher: the update formula on parameters and buffers, BatchNorm modes, and the
teacher pass of PoseCons / PoseDual through it (no state_dict keys, no gradients)."""

import copy

import pytest
import torch
from torch import nn

from semipose.models.ema import ModelEMA
from semipose.models.pose_cons import PoseCons
from semipose.models.pose_dual import PoseDual
from semipose.models.pose_resnet import PoseResNet

pytestmark = pytest.mark.usefixtures("single_thread")


def tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Conv2d(4, 2, 1))


def batch(seed=1, n=4):
    return torch.randn(n, 3, 6, 6, generator=torch.Generator().manual_seed(seed))


def test_one_update_is_decay_teacher_plus_one_minus_decay_student():
    student = tiny()
    ema = ModelEMA({"net": student}, decay=0.9)
    student(batch())  # moves the running statistics
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p))
    before = {k: v.clone() for k, v in ema.shadows["net"].state_dict().items()}
    ema.update()
    after = ema.shadows["net"].state_dict()
    for k, s in student.state_dict().items():
        if s.is_floating_point():
            torch.testing.assert_close(after[k], 0.9 * before[k] + 0.1 * s)
            assert not torch.equal(after[k], s)
        else:  # num_batches_tracked is copied
            assert torch.equal(after[k], s) and not torch.equal(before[k], s)
    assert ema.updates == 1
    assert not any(p.requires_grad for p in ema.shadows["net"].parameters())


def test_decay_bounds_and_extremes():
    student = tiny()
    with pytest.raises(ValueError, match="decay"):
        ModelEMA({"net": student}, decay=1.5)
    with pytest.raises(ValueError, match="teacher_bn"):
        ModelEMA({"net": student}, teacher_bn="frozen")
    frozen, follow = ModelEMA({"net": student}, decay=1.0), ModelEMA({"net": student}, decay=0.0)
    start = copy.deepcopy(student.state_dict())
    with torch.no_grad():
        student[0].weight.mul_(2)
    frozen.update()
    follow.update()
    assert torch.equal(frozen.shadows["net"][0].weight, start["0.weight"])
    assert torch.equal(follow.shadows["net"][0].weight, student[0].weight)
    follow.reset()
    assert follow.updates == 0


def test_batch_mode_uses_batch_statistics_and_keeps_the_running_ones():
    student = tiny()
    ema = ModelEMA({"net": student}, decay=0.5, teacher_bn="batch")
    student(batch())
    ema.update()
    shadow = ema.shadows["net"]
    stats = [b.clone() for b in shadow.buffers()]
    x = batch(2)
    y = ema.teacher("net")(x)
    assert not y.requires_grad
    for b, s in zip(shadow.buffers(), stats):
        assert torch.equal(b, s)  # the teacher pass left them as the EMA made them
    reference = copy.deepcopy(shadow).train()
    assert torch.allclose(y, reference(x), atol=1e-6)  # batch statistics
    assert not torch.allclose(y, copy.deepcopy(shadow).eval()(x), atol=1e-3)


def test_running_mode_uses_the_ema_running_statistics():
    student = tiny()
    student(batch())
    ema = ModelEMA({"net": student}, decay=0.5, teacher_bn="running")
    x = batch(3)
    y = ema.teacher("net")(x)
    assert torch.allclose(y, copy.deepcopy(student).eval()(x), atol=1e-6)


def test_state_dict_round_trip():
    student = tiny()
    ema = ModelEMA({"net": student}, decay=0.8)
    with torch.no_grad():
        student[0].bias.add_(1.0)
    ema.update()
    state = copy.deepcopy(ema.state_dict())
    other = ModelEMA({"net": tiny()}, decay=0.8)
    other.load_state_dict(state)
    assert other.updates == 1
    for a, b in zip(other.shadows["net"].state_dict().values(),
                    ema.shadows["net"].state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(KeyError, match="other"):
        ModelEMA({"other": tiny()}).load_state_dict(state)


def net(head):
    return PoseResNet(18, 24, num_deconv_filters=(8, 8, 8), head_name=head)


@pytest.mark.parametrize("kind", ["cons", "dual"])
def test_models_take_the_ema_teacher_without_new_keys(kind):
    torch.manual_seed(0)
    if kind == "cons":
        model = PoseCons(net("final_layer"), mask_joint_num=2)
    else:
        model = PoseDual(net("final_layer_1"), net("final_layer_1"), mask_joint_num=2)
    keys = list(model.state_dict())
    nets = {name: getattr(model, name) for name in model.teacher_names()}
    ema = ModelEMA(nets, decay=0.99)
    with torch.no_grad():  # the students move away from their copies
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.set_teachers(ema.teachers())
    assert list(model.state_dict()) == keys
    g = torch.Generator().manual_seed(1)
    sup, unsup = torch.randn(2, 3, 64, 64, generator=g), torch.randn(2, 3, 64, 64, generator=g)
    out = model([sup, unsup])
    for name, key in zip(model.teacher_names(), ("unsup_ht1", "unsup_ht2")):
        key = "unsup_ht" if kind == "cons" else key
        expected = copy.deepcopy(ema.shadows[name]).train()(unsup)
        assert torch.allclose(out[key], expected, atol=1e-6)
        assert not torch.allclose(out[key], copy.deepcopy(nets[name]).train()(unsup), atol=1e-4)
    loss = sum(v.pow(2).mean() for k, v in out.items() if k.startswith(("sup_ht", "cons_ht")))
    loss.backward()
    assert all(p.grad is None for s in ema.shadows.values() for p in s.parameters())
    model.set_teachers({})
    out = model([sup, unsup])
    key = "unsup_ht" if kind == "cons" else "unsup_ht1"
    assert torch.allclose(out[key], copy.deepcopy(model.resnet).train()(unsup), atol=1e-6)


def test_set_teachers_rejects_unknown_nets_and_same_view():
    model = PoseCons(net("final_layer"))
    with pytest.raises(ValueError, match="resnet2"):
        model.set_teachers({"resnet2": lambda x: x})
    with pytest.raises(ValueError, match="same_view"):
        PoseCons(net("final_layer"), same_view=True).set_teachers({"resnet": lambda x: x})
