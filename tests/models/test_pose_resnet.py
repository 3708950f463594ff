"""PoseResNet: shapes, head naming, initialisation, pretrained loading, PRM."""

import logging
from pathlib import Path

import pytest
import torch

from semipose.models.pose_resnet import PRM, PoseResNet

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec" / "state_dict_keys"


pytestmark = pytest.mark.usefixtures("single_thread")


def tiny(**kwargs):
    kwargs.setdefault("num_deconv_filters", (16, 16, 16))
    return PoseResNet(18, 24, **kwargs)


def backbone(net, x):
    """layer4's output (C5), computed from the submodules."""
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    return net.layer4(net.layer3(net.layer2(net.layer1(x))))


def test_forward_shapes_and_heatmap():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    net = tiny().eval()
    ht = net(x)
    assert isinstance(ht, torch.Tensor) and ht.shape == (2, 24, 16, 16)
    with torch.no_grad():
        c5 = backbone(net, x)
        deconv = net.deconv_layers(c5)
        expect = net.final_layer(deconv)
    assert c5.shape == (2, 512, 2, 2) and deconv.shape == (2, 16, 16, 16)
    # the heatmap is the head applied to the last deconv stage's output
    torch.testing.assert_close(ht, expect)


def test_head_name_sets_state_dict_key():
    keys = tiny(head_name="final_layer_1").state_dict().keys()
    assert "final_layer_1.weight" in keys and "final_layer.weight" not in keys
    with pytest.raises(ValueError):
        tiny(head_name="head")


def test_bottleneck_counts_and_output_stride():
    with torch.device("meta"):
        r50 = PoseResNet(50, 24)
        r18 = PoseResNet(18, 24)
    # half of the spec's pose_dual counts (two identical nets)
    assert sum(p.numel() for p in r50.parameters()) == 68_002_992 // 2
    assert sum(p.numel() for p in r18.parameters()) == 15_378_520
    assert r50.deconv_layers[0].weight.shape == (2048, 256, 4, 4)
    assert "layer1.0.downsample.0.weight" in r50.state_dict()


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    net = tiny()
    net(torch.randn(2, 3, 64, 64)).pow(2).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_init_weights_random(caplog):
    torch.manual_seed(0)
    net = tiny()
    with caplog.at_level(logging.WARNING):
        net.init_weights("")
    assert "randomly initialised" in caplog.text
    assert abs(net.final_layer.weight.std().item() - 0.001) < 3e-4
    assert torch.all(net.final_layer.bias == 0)
    assert abs(net.deconv_layers[0].weight.std().item() - 0.001) < 2e-4
    assert torch.all(net.deconv_layers[1].weight == 1) and torch.all(net.deconv_layers[1].bias == 0)


def test_init_weights_missing_file_names_it(tmp_path):
    path = str(tmp_path / "nope.pth")
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        tiny().init_weights(path)


def test_init_weights_imagenet_prefix_rules(tmp_path):
    torch.manual_seed(0)
    src, src2 = tiny(), tiny()
    backbone = {k: v for k, v in src.state_dict().items() if not k.startswith(("deconv", "final"))}
    # torchvision style + fc + a head that must be dropped
    plain = dict(backbone)
    plain["fc.weight"] = torch.zeros(1000, 512)
    plain["final_layer.weight"] = torch.full((24, 16, 1, 1), 7.0)
    path = tmp_path / "imagenet.pth"
    torch.save(plain, path)
    net = tiny()
    net.init_weights(str(path))
    torch.testing.assert_close(net.conv1.weight, src.conv1.weight)
    torch.testing.assert_close(net.layer4[1].bn2.running_var, src.layer4[1].bn2.running_var)
    assert net.final_layer.weight.abs().max() < 0.1  # head not taken from the file

    # {'state_dict'} with module. and resnet./resnet2. prefixes: resnet. is used, resnet2. ignored
    wrapped = {"module.resnet." + k: v for k, v in backbone.items()}
    wrapped.update({"module.resnet2." + k: v for k, v in src2.state_dict().items()})
    path2 = tmp_path / "dual.pth"
    torch.save({"state_dict": wrapped, "epoch": 3}, path2)
    net = tiny()
    net.init_weights(str(path2))
    torch.testing.assert_close(net.conv1.weight, src.conv1.weight)
    assert not torch.equal(net.conv1.weight, src2.conv1.weight)


# ------------------------------------------------------------------ PRM (§6.1a)


def test_prm_parameter_count_and_state_dict_matches_original():
    with torch.device("meta"):
        net = PoseResNet(18, 24, prm=True)
    assert sum(p.numel() for p in net.parameters()) == 16_189_528
    path = SPEC / "pose_resnet_prm_resnet18_256x192.txt"
    if not path.is_file():
        pytest.skip(f"state_dict key list not found at {path}")
    keys = [f"{k} {tuple(v.shape)}" for k, v in net.state_dict().items()]
    assert keys == path.read_text().splitlines()  # names, shapes and order


def test_prm_module_shapes_and_formula():
    torch.manual_seed(0)
    prm = PRM(8)
    assert prm.conv_bn_relu_prm_3_2.conv.weight.shape == (8, 1, 9, 9)  # depthwise
    assert prm.conv_bn_relu_prm_1.conv.bias is not None
    x = torch.randn(3, 8, 10, 6)
    prm.train()
    out = prm(x)
    assert out.shape == x.shape
    prm.eval()
    out = prm(x)
    with torch.no_grad():
        out_1 = prm.conv_bn_relu_prm_1(x)
        pooled = out_1.mean(dim=(2, 3), keepdim=True)
        channel = torch.sigmoid(prm.conv_bn_relu_prm_2_2(prm.conv_bn_relu_prm_2_1(pooled)))
        spatial = torch.sigmoid(prm.conv_bn_relu_prm_3_2(prm.conv_bn_relu_prm_3_1(out_1)))
    torch.testing.assert_close(out, out_1 * (1 + channel * spatial))
    # the gates lie in (0, 1): out_1 <= output <= 2 * out_1 (out_1 >= 0 after the ReLU)
    assert torch.all(out >= out_1) and torch.all(out <= 2 * out_1 + 1e-6)
    torch.testing.assert_close(prm(x), out, rtol=0, atol=0)  # deterministic in eval mode


def test_pose_resnet_with_prm_forward_and_gradients():
    torch.manual_seed(0)
    net = tiny(prm=True)
    x = torch.randn(2, 3, 64, 64)
    assert net(x).shape == (2, 24, 16, 16)
    net.eval()
    ht = net(x)
    with torch.no_grad():
        prm_out = net.prm(net.deconv_layers(backbone(net, x)))
        expect = net.final_layer(prm_out)
    assert prm_out.shape == (2, 16, 16, 16)
    torch.testing.assert_close(ht, expect)  # PRM sits between the deconvs and the head
    net.train()
    net(x).pow(2).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.prm.parameters())
    plain = tiny()
    assert "prm.conv_bn_relu_prm_1.conv.weight" not in plain.state_dict() and plain.prm is None


def test_prm_keeps_default_init():
    torch.manual_seed(0)
    net = tiny(prm=True)
    before = {k: v.clone() for k, v in net.prm.state_dict().items()}
    net.init_weights("")
    for k, v in net.prm.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)


def test_base_width_scales_channels_and_keeps_key_names():
    full = PoseResNet(18, 24, num_deconv_filters=(8, 8, 8))
    lite = PoseResNet(18, 24, num_deconv_filters=(8, 8, 8), base_width=16)
    assert list(full.state_dict()) == list(lite.state_dict())
    assert lite.conv1.out_channels == 16 and lite.layer4[0].conv1.out_channels == 128
    assert lite(torch.randn(2, 3, 64, 64)).shape == (2, 24, 16, 16)
    ratio = sum(p.numel() for p in full.parameters()) / sum(p.numel() for p in lite.parameters())
    assert ratio > 14  # conv weights scale with the square of the width
    with pytest.raises(ValueError, match="base_width"):
        PoseResNet(18, 24, base_width=0)
