"""The method registry and contract: every registered method builds and says what it exposes; a
method defined here (one class + one registration) trains and validates end to end."""
import types
from collections import OrderedDict

import pytest
import torch
from torch import nn

from semipose.config import get_cfg, load_config, update_config
from semipose.core.loss import JointsMSELoss, PoseCoLoss, PoseDisLoss, SupervisedLoss
from semipose.engine import launch
from semipose.engine.events import read_metrics
from semipose.methods import METHODS, Method, build_method, method_names, register_method

SMALL = ["MODEL.EXTRA.NUM_LAYERS", "18", "MODEL.IMAGE_SIZE", "[32, 32]",
         "MODEL.EXTRA.HEATMAP_SIZE", "[8, 8]", "MODEL.EXTRA.NUM_DECONV_FILTERS", "[8, 8, 8]",
         "MODEL.NUM_JOINTS", "24", "MODEL.INIT_WEIGHTS", "False"]


@pytest.mark.parametrize("name,loss,nets,heads", [
    ("pose_resnet", SupervisedLoss, ("net1",), ("net1",)),
    ("pose_hrnet", SupervisedLoss, ("net1",), ("net1",)),
    ("pose_cons", PoseDisLoss, ("net1",), ("net1",)),
    ("pose_dual", PoseCoLoss, ("net1", "net2"), ("net1", "net2", "ensemble")),
])
def test_registered_methods(name, loss, nets, heads):
    method = build_method(load_config(None, ["MODEL.NAME", name, "LOSS.USE_TARGET_WEIGHT", False]))
    assert type(method.criterion) is loss and method.criterion.mse.use_target_weight is False
    assert method.nets == nets and method.heads == heads
    per_net = tuple(torch.full((1, 24, 2, 2), float(i + 1)) for i in range(len(nets)))
    evaluated = method.eval_heatmaps(per_net)
    assert list(evaluated) == list(heads)
    if name == "pose_dual":
        assert torch.equal(evaluated["ensemble"], torch.full((1, 24, 2, 2), 1.5))


def test_unknown_method_lists_the_registered_ones():
    with pytest.raises(KeyError, match="pose_blend.*pose_cons"):
        build_method(load_config(None, ["MODEL.NAME", "pose_blend"]))
    assert {"pose_resnet", "pose_hrnet", "pose_cons", "pose_dual"} <= set(method_names())


def test_semi_methods_expose_teachers_and_labeled_heatmap():
    for name, teachers in (("pose_cons", {"net1"}), ("pose_dual", {"net1", "net2"})):
        cfg = load_config(None, ["MODEL.NAME", name, *SMALL])
        method = build_method(cfg)
        model = method.build_model(is_train=True).train()
        x = [torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)]
        w = [torch.ones(2, 24, 1), torch.ones(2, 24, 1)]
        outputs = model(x)
        assert set(method.teacher_heatmaps(outputs)) == teachers
        assert method.labeled_heatmap(outputs).shape == (2, 24, 8, 8)
        assert method.unlabeled_weight(w) is w[1]
        total, parts = method.loss(outputs, [torch.zeros(2, 24, 8, 8)] * 2, w)
        assert set(parts) == {"loss_pose", "loss_cons"}
        assert total.item() == pytest.approx(float(parts["loss_pose"] + parts["loss_cons"]))


def test_supervised_eval_state_takes_net1_of_a_dual_file():
    method = build_method(load_config(None, ["MODEL.NAME", "pose_resnet"]))
    state = OrderedDict([("resnet.conv1.weight", torch.ones(1)),
                         ("resnet2.conv1.weight", torch.zeros(1))])
    assert list(method.eval_state(state)) == ["conv1.weight"]


class TinyHeatmapNet(nn.Module):
    """A single strided conv from the image to 24 heatmaps (stride 4)."""

    def __init__(self):
        super().__init__()
        self.head = nn.Conv2d(3, 24, 3, stride=4, padding=1)

    def forward(self, x):
        return self.head(x)


class TinyMethod(Method):
    """A method written by a user: its own network and loss, nothing else edited."""

    def build_model(self, is_train):
        return TinyHeatmapNet()

    def build_criterion(self, use_target_weight):
        return JointsMSELoss(use_target_weight)

    def loss(self, outputs, targets, weights):
        total = self.criterion(outputs, targets, weights)
        return total, {"loss_tiny": total.detach()}

    def labeled_heatmap(self, outputs):
        return outputs


@pytest.fixture
def tiny_method():
    register_method("tiny_test_method", TinyMethod)
    yield
    METHODS.pop("tiny_test_method")


def test_a_method_defined_here_trains_validates_and_writes_metrics(tiny_method, tmp_path,
                                                                    tiny_opts):
    from semipose.dataset.synthetic import generate

    root = tmp_path / "synth"
    generate(str(root), num_train=4, num_val=3, image_size=(160, 120), seed=3)
    # The tiny run of ``tiny_opts`` with the method's own network, on every COCO train person.
    defaults = ("MODEL.INIT_WEIGHTS", "MODEL.PRETRAINED", "MODEL.EXTRA.NUM_LAYERS",
                "MODEL.EXTRA.NUM_DECONV_FILTERS", "DATASET.TRAIN_LEN", "MASK_JOINT_NUM",
                "TRAIN.MAX_ITERS", "TEST.OKS_THRE", "TEST.IN_VIS_THRE")  # fmt: skip
    opts = tiny_opts(root, tmp_path, "tiny_test_method", epochs=2, changes={
        **dict.fromkeys(defaults), "DATASET.TRAIN_DATASET": "coco", "TRAIN.LR_STEP": "[1]",
    })
    args = types.SimpleNamespace(cfg=None, opts=opts, distributed=False, local_rank=-1)
    cfg = update_config(get_cfg(), args)
    args.cfg = "tiny.yaml"  # names the run folder
    out = launch.do_train(cfg, args)
    epochs = read_metrics(out["output_dir"], kind="epoch")
    iters = read_metrics(out["output_dir"], kind="iter")
    assert [r["epoch"] for r in epochs] == [0, 1]
    assert len(iters) == 2 * iters[0]["iters"] and all("loss_tiny" in r for r in iters)
    assert epochs[1]["ap"] == {"net1": pytest.approx(out["last"]["net1"]["AP"], abs=1e-12)}
    assert epochs[1]["metrics"]["net1"] == {
        k: pytest.approx(float(v), abs=1e-12) for k, v in out["last"]["net1"].items()
    }
    assert epochs[0]["lr"] == pytest.approx(1e-3) and epochs[1]["lr"] == pytest.approx(1e-4)
    assert "collapse" not in epochs[1]  # no teacher
