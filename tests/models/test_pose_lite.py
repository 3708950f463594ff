"""PoseLite, the light CPU network: shapes, the head name PoseDual needs, skips that carry position,
and that the builder and the methods use it."""
import pytest
import torch

from semipose.config import get_model_name, load_config
from semipose.methods import build_model
from semipose.models.pose_lite import PoseLite

pytestmark = pytest.mark.usefixtures("single_thread")


def test_shapes_head_name_and_init():
    torch.manual_seed(0)
    net = PoseLite(24, width=8, decoder_width=16, head_name="final_layer_1")
    out = net(torch.randn(2, 3, 96, 64))
    assert out.shape == (2, 24, 24, 16)
    assert "final_layer_1.weight" in net.state_dict()
    assert net.head.weight.std().item() == pytest.approx(0.001, rel=0.2)
    assert torch.all(net.head.bias == 0)
    with pytest.raises(FileNotFoundError, match="some.pth"):
        net.init_weights("some.pth")
    with pytest.raises(ValueError, match="3 positive stage depths"):
        PoseLite(24, blocks=(1, 2))


def test_stride_4_features_reach_the_head():
    """A change in one input pixel moves the heatmap near it more than far away (the lateral
    path), unlike a stride-16 bottleneck alone."""
    torch.manual_seed(0)
    net = PoseLite(4, width=8, decoder_width=8).eval()
    net.head.weight.data.normal_(0, 1)
    x = torch.zeros(1, 3, 64, 64)
    base = net(x)
    x[0, :, 8, 8] = 5.0
    diff = (net(x) - base).abs().sum(1)[0]  # (16, 16)
    assert diff[2, 2] > 2 * diff[12, 12]  # measured 2.8x


def test_builders_use_the_lite_backbone():
    opts = ["MODEL.BACKBONE", "lite", "MODEL.EXTRA.BASE_WIDTH", 8,
            "MODEL.EXTRA.NUM_DECONV_FILTERS", "[16, 16, 16]", "MODEL.NUM_JOINTS", 24,
            "MODEL.INIT_WEIGHTS", False]
    dual_cfg = load_config(None, ["MODEL.NAME", "pose_dual", *opts])
    dual = build_model(dual_cfg, is_train=True)
    assert isinstance(dual.resnet, PoseLite) and isinstance(dual.resnet2, PoseLite)
    assert dual.resnet.head_name == "final_layer_1" and dual.resnet.lateral[0].out_channels == 16
    assert get_model_name(dual_cfg)[0] == "pose_dual_lite8"
    single = build_model(load_config(None, ["MODEL.NAME", "pose_resnet", *opts]), is_train=False)
    assert isinstance(single, PoseLite) and single.head_name == "final_layer"
    with pytest.raises(ValueError, match="PRM"):
        build_model(load_config(None, ["MODEL.NAME", "pose_resnet", "MODEL.PRM", True, *opts]),
                    is_train=False)


def test_pretrained_file_initialises_the_encoder_only(tmp_path):
    torch.manual_seed(0)
    trained = PoseLite(24, width=8, decoder_width=16)
    for p in trained.parameters():
        p.data.normal_()
    # net 1 of a PoseDual checkpoint: resnet. / resnet2. entries under 'state_dict'
    state = {f"resnet.{k}": v for k, v in trained.state_dict().items()}
    state.update({f"resnet2.{k}": v + 1 for k, v in trained.state_dict().items()})
    path = tmp_path / "dual.pth"
    torch.save({"state_dict": state}, path)
    net = PoseLite(24, width=8, decoder_width=16, head_name="final_layer_1")
    net.init_weights(str(path))
    mine, theirs = net.state_dict(), trained.state_dict()
    for key in mine:
        if key.startswith(PoseLite.ENCODER):
            assert torch.equal(mine[key], theirs[key]), key  # net 1's, not net 2's
        elif key.endswith("weight") and mine[key].dim() == 4:
            assert not torch.equal(mine[key], theirs.get(key, torch.empty(0))), key
    assert net.head.weight.std().item() == pytest.approx(0.001, rel=0.2)  # a fresh head
    with pytest.raises(ValueError, match="stem.0.0.weight has shape"):
        PoseLite(24, width=16, decoder_width=16).init_weights(str(path))
    with pytest.raises(ValueError, match="no entries of stem, stage1"):
        net.init_weights({"conv1.weight": torch.zeros(1)})
    # PRETRAINED_LAYERS ['*']: every module, the head included (same head name)
    whole = PoseLite(24, width=8, decoder_width=16)
    whole.init_weights(str(path), pretrained_layers=["*"])
    for key, value in whole.state_dict().items():
        assert torch.equal(value, theirs[key]), key
    decoder = PoseLite(24, width=8, decoder_width=16)
    decoder.init_weights(str(path), pretrained_layers=["stem", "lateral"])
    assert torch.equal(decoder.lateral[0].weight, trained.lateral[0].weight)
    assert not torch.equal(decoder.stage1[0].conv1.weight, trained.stage1[0].conv1.weight)


def test_pair_file_starts_each_network_of_pose_dual_from_its_own_half(tmp_path):
    """The collapse study's pair start: two single PoseLite files joined under resnet. / resnet2.
    (semipose.tools.study.pair_state) give PoseDual two different, fully initialised networks;
    a single-network config takes net 1's."""
    from semipose.tools.study import pair_state

    torch.manual_seed(0)
    singles = []
    for i in range(2):
        net = PoseLite(24, width=8, decoder_width=16)
        for p in net.parameters():
            p.data.normal_()
        torch.save(net.state_dict(), tmp_path / f"single{i}.pth")
        singles.append(net.state_dict())
    pair = tmp_path / "pair.pth"
    torch.save(pair_state(tmp_path / "single0.pth", tmp_path / "single1.pth"), pair)
    opts = ["MODEL.BACKBONE", "lite", "MODEL.EXTRA.BASE_WIDTH", 8,
            "MODEL.EXTRA.NUM_DECONV_FILTERS", "[16, 16, 16]", "MODEL.INIT_WEIGHTS", True,
            "MODEL.NUM_JOINTS", 24,
            "MODEL.PRETRAINED", str(pair), "MODEL.EXTRA.PRETRAINED_LAYERS", "['*']"]
    dual = build_model(load_config(None, ["MODEL.NAME", "pose_dual", *opts]), is_train=True)
    for net, theirs in ((dual.resnet, singles[0]), (dual.resnet2, singles[1])):
        for key, value in net.state_dict().items():
            key = key.replace("final_layer_1", "final_layer")
            assert torch.equal(value, theirs[key]), key
    single = build_model(load_config(None, ["MODEL.NAME", "pose_resnet", *opts]), is_train=True)
    for key, value in single.state_dict().items():
        assert torch.equal(value, singles[0][key]), key
