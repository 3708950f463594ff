"""PoseResNet: shapes, feature selector, head naming, initialisation and pretrained loading."""

import logging

import pytest
import torch

from semipose.models.pose_resnet import PoseResNet


@pytest.fixture(autouse=True)
def _single_thread():
    """One intra-op thread: on a shared 2-core machine two threads spin-wait and run ~50x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(**kwargs):
    kwargs.setdefault("num_deconv_filters", (16, 16, 16))
    return PoseResNet(18, 24, **kwargs)


def test_forward_shapes_and_features():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    net = tiny()
    assert net(x).shape == (2, 24, 16, 16)
    feat, ht = tiny(return_features=True, feature="layer4")(x)
    assert feat.shape == (2, 512, 2, 2) and ht.shape == (2, 24, 16, 16)
    net = tiny(return_features=True, feature="deconv")
    feat, ht = net(x)
    assert feat.shape == (2, 16, 16, 16)
    # the deconv feature is exactly the head's input
    torch.testing.assert_close(ht, net.final_layer(feat))


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


def test_prm_not_implemented():
    with pytest.raises(NotImplementedError, match="PRM"):
        tiny(prm=True)
