"""PoseHighResolutionNet: a tiny HRNet runs, has the original's layout and initialises as §6.6."""

import pytest
import torch

from semipose.models.pose_hrnet import PoseHighResolutionNet

pytestmark = pytest.mark.usefixtures("single_thread")


def stage(modules, channels):
    return dict(
        num_modules=modules,
        num_branches=len(channels),
        block="BASIC",
        num_blocks=[1] * len(channels),
        num_channels=list(channels),
        fuse_method="SUM",
    )


def tiny(**kwargs):
    return PoseHighResolutionNet(
        24,
        stage2=stage(1, [4, 8]),
        stage3=stage(1, [4, 8, 16]),
        stage4=stage(2, [4, 8, 16, 32]),
        **kwargs,
    )


def test_forward_backward_every_parameter():
    torch.manual_seed(0)
    net = tiny()
    x = torch.randn(2, 3, 64, 64)
    ht = net(x)
    assert ht.shape == (2, 24, 16, 16)
    ht.pow(2).mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []


def test_heatmap_is_head_on_branch0():
    torch.manual_seed(0)
    net = tiny().eval()
    x = torch.randn(1, 3, 64, 64)
    ht = net(x)
    with torch.no_grad():
        y = net.relu(net.bn2(net.conv2(net.relu(net.bn1(net.conv1(x))))))
        y = net.layer1(y)
        # transitions: new branches from the last one, the others pass through (None)
        y = net.stage2([net.transition1[0](y), net.transition1[1](y)])
        y = net.stage3([y[0], y[1], net.transition2[2](y[-1])])
        y = net.stage4([y[0], y[1], y[2], net.transition3[3](y[-1])])
        expect = net.final_layer(y[0])
    assert y[0].shape == (1, 4, 16, 16) and len(y) == 1
    torch.testing.assert_close(ht, expect)


def test_layout_matches_original_names():
    net = tiny()
    keys = net.state_dict().keys()
    assert net.transition2[0] is None and net.transition2[1] is None
    assert "transition2.2.0.0.weight" in keys and "transition3.3.0.0.weight" in keys
    assert "transition1.0.0.weight" in keys and "transition1.1.0.0.weight" in keys
    # last stage4 module: a single output row
    assert len(net.stage4[1].fuse_layers) == 1 and len(net.stage4[0].fuse_layers) == 4
    assert "stage4.1.fuse_layers.0.3.0.weight" in keys
    assert not any(k.startswith("stage4.1.fuse_layers.1.") for k in keys)
    # j < i: chain of i-j strided convs, the intermediate ones keep C_j
    assert net.stage4[0].fuse_layers[3][0][0][0].weight.shape == (4, 4, 3, 3)
    assert net.stage4[0].fuse_layers[3][0][2][0].weight.shape == (32, 4, 3, 3)
    assert net.final_layer.weight.shape == (24, 4, 1, 1)


def test_init_weights_and_pretrained_layers(tmp_path):
    torch.manual_seed(0)
    src = tiny()
    net = tiny()
    net.init_weights("")
    assert abs(net.conv1.weight.std().item() - 0.001) < 5e-4
    assert torch.all(net.bn1.weight == 1)
    path = tmp_path / "hrnet_imagenet.pth"
    torch.save({k: v for k, v in src.state_dict().items()}, path)
    net.init_weights(str(path), pretrained_layers=["conv1", "stage2"])
    torch.testing.assert_close(net.conv1.weight, src.conv1.weight)
    torch.testing.assert_close(
        net.stage2[0].branches[1][0].conv1.weight, src.stage2[0].branches[1][0].conv1.weight
    )
    assert not torch.equal(net.conv2.weight, src.conv2.weight)
    assert not torch.equal(net.final_layer.weight, src.final_layer.weight)
    net.init_weights(str(path), pretrained_layers=["*"])
    torch.testing.assert_close(net.final_layer.weight, src.final_layer.weight)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        net.init_weights(str(tmp_path / "missing.pth"))


def test_bad_stage_spec():
    bad = stage(1, [4, 8])
    del bad["fuse_method"]
    with pytest.raises(ValueError, match="fuse_method"):
        PoseHighResolutionNet(
            24, stage2=bad, stage3=stage(1, [4, 8, 16]), stage4=stage(1, [4, 8, 16, 32])
        )
    with pytest.raises(NotImplementedError):
        tiny(prm=True)
