"""build_model: registry entries and experiment YAMLs build, full-size keys/shapes/counts match the
original's, pretrained initialisation follows §6.6.
"""

import logging
from pathlib import Path

import pytest
import torch

from semipose.config import load_config
from semipose.dataset.joints import COCO_TRAINED, MPII_TRAINED
from semipose.methods import METHODS, build_method, build_model
from semipose.models.pose_cons import PoseCons
from semipose.models.pose_dual import PoseDual

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec" / "state_dict_keys"
EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


pytestmark = pytest.mark.usefixtures("single_thread")


def stage_yaml(name, modules, channels, blocks):
    n = len(channels)
    return (
        f"    {name}: {{NUM_MODULES: {modules}, NUM_BRANCHES: {n}, BLOCK: BASIC, "
        f"NUM_BLOCKS: {[blocks] * n}, NUM_CHANNELS: {list(channels)}, "
        f"FUSE_METHOD: SUM}}\n"
    )


def hrnet_yaml(tmp_path, name, channels, modules=(1, 1, 2), blocks=1, image=(288, 384)):
    """A YAML with an HRNet EXTRA (replaced wholesale, as the experiment files do)."""
    c = channels
    text = (
        f"MODEL:\n  NAME: {name}\n  BACKBONE: hrnet\n  NUM_JOINTS: 24\n"
        f"  IMAGE_SIZE: {list(image)}\n"
        "  EXTRA:\n    PRETRAINED_LAYERS: [conv1, bn1, conv2, bn2, layer1, transition1, stage2,"
        " transition2, stage3, transition3, stage4]\n    FINAL_CONV_KERNEL: 1\n"
        f"    HEATMAP_SIZE: [{image[0] // 4}, {image[1] // 4}]\n    SIGMA: 3\n"
        + stage_yaml("STAGE2", modules[0], [c, 2 * c], blocks)
        + stage_yaml("STAGE3", modules[1], [c, 2 * c, 4 * c], blocks)
        + stage_yaml("STAGE4", modules[2], [c, 2 * c, 4 * c, 8 * c], blocks)
    )
    path = tmp_path / f"{name}_w{c}.yaml"
    path.write_text(text)
    return str(path)


def resnet_cfg(name, layers=18, *opts):
    return load_config(
        None,
        [
            "MODEL.NAME",
            name,
            "MODEL.NUM_JOINTS",
            24,
            "MODEL.EXTRA.NUM_LAYERS",
            layers,
            "MODEL.IMAGE_SIZE",
            [64, 64],
            "DATASET.TRAIN_DATASET",
            "mix_coco_coco",
            *opts,
        ],
    )


def keys_and_shapes(model):
    return [f"{k} {tuple(v.shape)}" for k, v in model.state_dict().items()]


def n_params(model):
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------ full size, against the spec


def spec_lines(name):
    """The original's key list (``../shared/spec``); skips when the spec folder is absent."""
    path = SPEC / name
    if not path.is_file():
        pytest.skip(f"state_dict key list not found at {path}")
    return path.read_text().splitlines()


@pytest.mark.parametrize(
    "name,layers,spec,count",
    [
        ("pose_dual", 18, "pose_dual_resnet18_256x192.txt", 30_757_040),
        ("pose_cons", 18, "pose_cons_resnet18_256x192.txt", 15_378_520),
        ("pose_dual", 50, "pose_dual_resnet50_256x192.txt", 68_002_992),
    ],
)
def test_resnet_state_dict_matches_original(name, layers, spec, count):
    with torch.device("meta"):
        model = build_model(resnet_cfg(name, layers), is_train=False)
    assert n_params(model) == count
    assert keys_and_shapes(model) == spec_lines(spec)


def test_hrnet_w48_state_dict_matches_original(tmp_path):
    cfg = load_config(hrnet_yaml(tmp_path, "pose_dual", 48, modules=(1, 4, 3), blocks=4))
    with torch.device("meta"):
        model = build_model(cfg, is_train=False)
    assert n_params(model) == 127_192_176
    assert keys_and_shapes(model) == spec_lines("pose_dual_hrnet_w48_384x288.txt")


@pytest.mark.parametrize(
    "path",
    sorted(p for p in EXPERIMENTS.rglob("*.yaml") if p.parent != EXPERIMENTS / "studies"),
    ids=lambda p: p.stem,
)
def test_every_experiment_yaml_builds(path):
    cfg = load_config(str(path))
    with torch.device("meta"):
        model = build_model(cfg, is_train=False)
    if cfg.MODEL.NAME == "pose_dual":
        head = "final_layer" if cfg.MODEL.BACKBONE == "hrnet" else "final_layer_1"
        assert f"resnet2.{head}.weight" in model.state_dict()


# ------------------------------------------------------------------ tiny models run on CPU


def tiny_cfg(name, tmp_path, backbone="resnet"):
    if name == "pose_hrnet" or backbone == "hrnet":
        return load_config(
            hrnet_yaml(tmp_path, name, 4, image=(64, 64)),
            ["DATASET.TRAIN_DATASET", "mix_coco_coco", "MASK_JOINT_NUM", 2],
        )
    return resnet_cfg(name, 18, "MODEL.EXTRA.NUM_DECONV_FILTERS", [16, 16, 16], "MASK_JOINT_NUM", 2)


@pytest.mark.parametrize(
    "name,backbone",
    [
        ("pose_resnet", "resnet"),
        ("pose_hrnet", "hrnet"),
        ("pose_cons", "resnet"),
        ("pose_cons", "hrnet"),
        ("pose_dual", "resnet"),
        ("pose_dual", "hrnet"),
    ],
)
def test_registry_entry_trains_on_cpu(name, backbone, tmp_path):
    assert name in METHODS
    torch.manual_seed(0)
    model = build_model(tiny_cfg(name, tmp_path, backbone), is_train=True)
    sup, unsup = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64)
    if name in ("pose_resnet", "pose_hrnet"):
        out = model(sup)
        assert out.shape == (2, 24, 16, 16)
        loss = out.pow(2).mean()
    else:
        out = model([sup, unsup])
        teacher = "unsup_ht1" if name == "pose_dual" else "unsup_ht"
        assert out[teacher].requires_grad is False
        loss = sum(v.pow(2).mean() for k, v in out.items() if k.startswith(("sup_ht", "cons_ht")))
    loss.backward()
    starved = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert starved == []


def test_semi_options_from_config():
    cfg = resnet_cfg(
        "pose_dual",
        18,
        "MASK_JOINT_NUM",
        5,
        "MASK_JOINT_FIX",
        True,
        "CONS_SAME_VIEW",
        True,
        "UNSUP_TRANSFORM",
        False,
        "DATASET.SCALE_FACTOR",
        0.3,
        "DATASET.ROT_FACTOR",
        40,
    )
    with torch.device("meta"):
        model = build_model(cfg, is_train=False)
    assert isinstance(model, PoseDual)
    assert (model.mask_joint_num, model.mask_joint_fix, model.same_view, model.unsup_transform) == (
        5,
        True,
        True,
        False,
    )
    assert (model.scale_factor, model.rotation_factor) == (0.3, 40)
    assert model.trained_joints == COCO_TRAINED
    assert model.resnet.head_name == "final_layer_1"
    cfg = resnet_cfg("pose_cons", 18, "DATASET.TRAIN_DATASET", "mix_mpii_ai")
    with torch.device("meta"):
        model = build_model(cfg, is_train=False)
    assert isinstance(model, PoseCons) and model.trained_joints == MPII_TRAINED
    assert model.resnet.head_name == "final_layer"


def test_errors(tmp_path):
    with pytest.raises(KeyError, match="pose_blend"):
        build_model(resnet_cfg("pose_blend"), is_train=False)
    with pytest.raises(NotImplementedError, match="PRM"):
        build_model(load_config(hrnet_yaml(tmp_path, "pose_hrnet", 4), ["MODEL.PRM", True]), False)
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        build_model(resnet_cfg("pose_dual", 18, "MODEL.PRETRAINED", "/nowhere/absent.pth"), True)


# ------------------------------------------------------------------ initialisation


def small(name, *opts):
    return resnet_cfg(name, 18, "MODEL.EXTRA.NUM_DECONV_FILTERS", [16, 16, 16], *opts)


def test_init_only_when_training(caplog):
    torch.manual_seed(0)
    with caplog.at_level(logging.WARNING):
        model = build_model(small("pose_cons"), is_train=True)
    assert "random" in caplog.text
    assert abs(model.resnet.final_layer.weight.std().item() - 0.001) < 3e-4
    model = build_model(small("pose_cons"), is_train=False)  # PyTorch default init, untouched
    assert model.resnet.final_layer.weight.std().item() > 0.01


def test_pose_dual_pair_file_gives_two_different_nets(tmp_path):
    torch.manual_seed(0)
    a = build_model(small("pose_dual"), is_train=False)
    pair = {}
    for k, v in a.resnet.state_dict().items():
        if not k.startswith(("deconv", "final")):
            pair["resnet." + k] = v
    for k, v in a.resnet2.state_dict().items():
        if not k.startswith(("deconv", "final")):
            pair["resnet2." + k] = v
    pair["resnet.fc.weight"] = torch.zeros(1000, 512)
    path = tmp_path / "resnet18_pair_posedual.pth"
    torch.save(pair, path)
    model = build_model(small("pose_dual", "MODEL.PRETRAINED", str(path)), is_train=True)
    torch.testing.assert_close(model.resnet.conv1.weight, a.resnet.conv1.weight)
    torch.testing.assert_close(model.resnet2.conv1.weight, a.resnet2.conv1.weight)
    torch.testing.assert_close(
        model.resnet2.layer3[0].bn1.running_mean, a.resnet2.layer3[0].bn1.running_mean
    )
    assert not torch.equal(model.resnet.conv1.weight, model.resnet2.conv1.weight)
    assert model.resnet.final_layer_1.weight.abs().max() < 0.01  # heads: fresh N(0, 0.001)


def test_plain_imagenet_file_gives_identical_backbones(tmp_path, caplog):
    torch.manual_seed(0)
    src = build_model(small("pose_resnet"), is_train=False)
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(
        {k: v for k, v in src.state_dict().items() if not k.startswith(("deconv", "final"))}, path
    )
    model = build_model(small("pose_dual", "MODEL.PRETRAINED", str(path)), is_train=True)
    torch.testing.assert_close(model.resnet.conv1.weight, src.conv1.weight)
    torch.testing.assert_close(model.resnet2.conv1.weight, src.conv1.weight)
    assert not torch.equal(model.resnet.final_layer_1.weight, model.resnet2.final_layer_1.weight)
    with caplog.at_level(logging.WARNING):
        off = build_model(
            small("pose_dual", "MODEL.PRETRAINED", str(path), "MODEL.INIT_WEIGHTS", False),
            is_train=True,
        )
    assert "INIT_WEIGHTS is False" in caplog.text
    assert not torch.equal(off.resnet.conv1.weight, src.conv1.weight)


@pytest.mark.parametrize("name", ["pose_resnet", "pose_dual"])
def test_compile_networks_keeps_keys_and_outputs(name, tmp_path):
    """TRAIN.COMPILE compiles the networks in place: same state_dict keys (checkpoints stay
    compatible), same outputs; PoseDual's augmentation stays outside the compiled graphs."""
    import numpy as np

    from semipose.models.build import compile_networks

    torch.manual_seed(0)
    method = build_method(tiny_cfg(name, tmp_path))
    model = method.build_model(is_train=True).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
    keys = list(model.state_dict())
    nets = list(method.networks(model).values())
    assert compile_networks(nets, backend="eager") == nets
    assert list(model.state_dict()) == keys
    compiled = [m for m in model.modules() if getattr(m, "_compiled_call_impl", None) is not None]
    expected = [model.resnet, model.resnet2] if name == "pose_dual" else [model]
    assert [id(m) for m in compiled] == [id(m) for m in expected]
    with torch.no_grad():
        after = model(x)
    pairs = zip(before, after) if name == "pose_dual" else [(before, after)]
    for b, a in pairs:
        assert torch.allclose(b, a, atol=1e-6)
    if name == "pose_dual":
        model.train()
        np.random.seed(0)
        out = model([x, x])
        assert out["cons_ht1"].requires_grad and not out["unsup_ht1"].requires_grad
