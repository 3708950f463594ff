"""Methods own their networks: compilation, the EMA teacher, checkpoint prefixes and the inference
API ask the method, so a method whose networks have names of its own works with all of them."""
from collections import OrderedDict

import pytest
import torch
from torch import nn

from semipose.apis import init_model
from semipose.config import load_config
from semipose.engine import hooks as H
from semipose.methods import METHODS, Method, build_method, register_method
from semipose.models.build import compile_networks

pytestmark = pytest.mark.usefixtures("single_thread")


class TinyNet(nn.Module):
    """One strided conv from the image to 24 heatmaps (stride 4)."""

    def __init__(self):
        super().__init__()
        self.head = nn.Conv2d(3, 24, 3, stride=4, padding=1)

    def forward(self, x):
        return self.head(x)


class LeftRight(nn.Module):
    """Two networks named ``left`` and ``right``; each teaches the other on the unlabeled batch,
    through a replaceable teacher pass (``set_teachers``, as ``HardViewModel``)."""

    def __init__(self):
        super().__init__()
        self.left, self.right = TinyNet(), TinyNet()
        self._teachers = {}

    def set_teachers(self, teachers):
        self._teachers = dict(teachers)

    def forward(self, x):
        if torch.is_tensor(x):
            return self.left(x), self.right(x)
        sup, unsup = x[0], x[1]
        with torch.no_grad():
            t_left = self._teachers.get("left", self.left)(unsup)
            t_right = self._teachers.get("right", self.right)(unsup)
        return {"sup": self.left(sup), "t_left": t_left, "t_right": t_right}


class LeftRightMethod(Method):
    """A two-network method whose networks are not called ``resnet``/``resnet2``."""

    nets = ("net1", "net2")
    heads = ("net1", "net2", "ensemble")
    network_attrs = ("left", "right")
    teacher_attrs = ("left", "right")

    def build_model(self, is_train):
        return LeftRight()

    def build_criterion(self, use_target_weight):
        return nn.MSELoss()

    def labeled_heatmap(self, outputs):
        return outputs["sup"]

    def eval_heatmaps(self, per_net):
        h1, h2 = per_net
        return OrderedDict(net1=h1, net2=h2, ensemble=0.5 * (h1 + h2))


@pytest.fixture
def left_right():
    register_method("left_right_test", LeftRightMethod)
    yield lambda *opts: load_config(None, ["MODEL.NAME", "left_right_test", "MODEL.NUM_JOINTS",
                                           "24", "MODEL.IMAGE_SIZE", "[32, 32]", *opts])
    METHODS.pop("left_right_test")


def test_networks_teachers_and_prefixes_come_from_the_method(left_right):
    method = build_method(left_right())
    model = method.build_model(is_train=True)
    assert list(method.networks(model).items()) == [("left", model.left), ("right", model.right)]
    assert list(method.teacher_nets(model)) == ["left", "right"]
    assert [method.checkpoint_prefix(n) for n in method.nets] == ["left.", "right."]
    with pytest.raises(ValueError, match="no network 'student'"):
        method.checkpoint_prefix("student")
    single = build_method(load_config(None, ["MODEL.NAME", "pose_resnet"]))
    assert list(single.networks(model)) == [""] and single.checkpoint_prefix("net1") == ""


def test_compile_takes_the_declared_networks(left_right, monkeypatch):
    compiled = []
    monkeypatch.setattr(nn.Module, "compile", lambda self, **kw: compiled.append(self))
    method = build_method(left_right())
    model = method.build_model(is_train=True)
    compile_networks(method.networks(model).values())
    assert [id(m) for m in compiled] == [id(model.left), id(model.right)]


def test_ema_teachers_of_differently_named_networks(left_right):
    torch.manual_seed(0)
    cfg = left_right("EMA.ENABLED", "True", "EMA.DECAY", "0.5")
    method = build_method(cfg)
    model = method.build_model(is_train=True).train()
    hook = H.build_ema_teacher(cfg, method, model)
    assert list(model._teachers) == ["left", "right"]
    x = [torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)]
    before = model(x)["t_right"]
    torch.testing.assert_close(before, model.right(x[1]))  # the copy starts as the network
    with torch.no_grad():
        model.right.head.bias.add_(1.0)
    hook.after_step()  # the copy moves half way: its bias by 0.5
    torch.testing.assert_close(model(x)["t_right"], before + 0.5)


def test_inference_api_picks_a_head_of_differently_named_networks(left_right, tmp_path):
    torch.manual_seed(0)
    cfg = left_right("TEST.FLIP_TEST", "False")
    trained = LeftRight()
    ckpt = tmp_path / "left_right.pth"
    torch.save({"state_dict": trained.state_dict()}, ckpt)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        for net, expect in (("net1", trained.left(x)), ("net2", trained.right(x)),
                            ("ensemble", 0.5 * (trained.left(x) + trained.right(x)))):
            model = init_model(cfg, str(ckpt), device="cpu", net=net)
            torch.testing.assert_close(model(x), expect)
