"""The fast paths of the training step (channels_last, bf16 autocast) match the fp32 step.

A tiny PoseDual (ResNet-18, 32-channel deconvs, 96x64 input, joint cutout and random affine on) runs
one training step as ``train_one_epoch`` does; every compared run starts from the same weights and
the same RNG states, so the hard augmentation draws (cutout joints, jitter, sizes, θ) are identical.
"""

import copy
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from semipose.config import load_config
from semipose.dataset.joints import COCO_TRAINED
from semipose.engine.train_loop import autocast_context, to_device
from semipose.methods import build_method, build_model
from semipose.models.hard_augment import get_batch_affine_transform, warp

K = 24
BATCH = 2
IMAGE_HW = (96, 64)  # input H x W (multiples of 32)
HEATMAP_HW = (24, 16)
SEED = 7

DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
    ),
]


def seed_all(seed=SEED):
    """Resets Python ``random``, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@pytest.fixture(autouse=True)
def deterministic_backends():
    """One CPU thread and exact fp32 CUDA kernels (no TF32), restored afterwards."""
    threads = torch.get_num_threads()
    tf32 = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    flags = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    torch.set_num_threads(1)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    yield
    torch.set_num_threads(threads)
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = flags


def make_cfg(mask_joint_num=2):
    """The tiny PoseDual's config (joint cutout with ``mask_joint_num`` boxes, affine on)."""
    return load_config(
        None,
        [
            "MODEL.NAME", "pose_dual",
            "MODEL.INIT_WEIGHTS", "False",
            "MODEL.PRETRAINED", "",
            "MODEL.NUM_JOINTS", str(K),
            "MODEL.IMAGE_SIZE", f"[{IMAGE_HW[1]}, {IMAGE_HW[0]}]",
            "MODEL.EXTRA.NUM_LAYERS", "18",
            "MODEL.EXTRA.NUM_DECONV_FILTERS", "[32, 32, 32]",
            "MODEL.EXTRA.HEATMAP_SIZE", f"[{HEATMAP_HW[1]}, {HEATMAP_HW[0]}]",
            "DATASET.TRAIN_DATASET", "mix_coco_coco",
            "MASK_JOINT_NUM", str(mask_joint_num),
        ],
    )  # fmt: skip


@pytest.fixture(scope="module")
def cfg():
    return make_cfg()


@pytest.fixture(scope="module")
def base_model(cfg):
    """The tiny PoseDual on CPU, in contiguous format (each test deep-copies it)."""
    seed_all(0)
    return build_model(cfg, is_train=True)


def make_batch():
    """Deterministic CPU ``inputs, targets, weights`` of one training batch."""
    g = torch.Generator().manual_seed(123)
    inputs = [torch.randn(BATCH, 3, *IMAGE_HW, generator=g) for _ in range(2)]
    targets = [torch.rand(BATCH, K, *HEATMAP_HW, generator=g) * 0.1 for _ in range(2)]
    weight = torch.zeros(BATCH, K, 1)
    weight[:, list(COCO_TRAINED)] = 1.0
    return inputs, targets, [weight, weight.clone()]


def train_step(model, cfg, device, *, channels_last=False, amp_dtype=None):
    """One step as ``train_one_epoch`` (lr 0: the weights stay, only the gradients are kept).

    Returns:
        ``(loss value, outputs dict, {name: grad})`` with the gradients as float32 CPU tensors.
    """
    model = copy.deepcopy(model).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    method = build_method(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.0)
    inputs, targets, weights = make_batch()
    inputs = to_device(inputs, device, channels_last)
    targets = to_device(targets, device)
    weights = to_device(weights, device)
    seed_all()
    with autocast_context(device, amp_dtype):
        outputs = model(inputs)
        loss, _ = method.loss(outputs, targets, weights)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    grads = {n: p.grad.detach().float().cpu() for n, p in model.named_parameters()}
    return loss.item(), outputs, grads


def rel_err(a, b):
    """‖a − b‖ / ‖b‖ (0 when both are 0)."""
    a, b = a.double(), b.double()
    denom = b.norm().item()
    return (a - b).norm().item() / denom if denom > 0 else (a - b).norm().item()


@pytest.mark.parametrize("device", DEVICES)
def test_channels_last_step_matches_fp32(cfg, base_model, device):
    device = torch.device(device)
    loss_ref, out_ref, grads_ref = train_step(base_model, cfg, device)
    loss_cl, out_cl, grads_cl = train_step(base_model, cfg, device, channels_last=True)

    assert torch.equal(out_cl["theta"], out_ref["theta"])
    assert torch.equal(out_cl["unsup_x_trans"].contiguous(), out_ref["unsup_x_trans"])
    assert loss_cl == pytest.approx(loss_ref, rel=1e-4)
    assert grads_cl.keys() == grads_ref.keys()
    total = rel_err(
        torch.cat([g.reshape(-1) for g in grads_cl.values()]),
        torch.cat([g.reshape(-1) for g in grads_ref.values()]),
    )
    assert total < 1e-4
    # Per tensor, channels_last only reorders the sums: small-norm gradients (biases, BN) see the
    # largest relative change, and how large depends on the CPU's kernels (1.1e-3 measured on an
    # AVX2-only host, below 1e-3 on AVX-512 ones).
    for name, g in grads_ref.items():
        assert rel_err(grads_cl[name], g) < 5e-3, name


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_autocast_step_close_to_fp32(cfg, base_model, device):
    device = torch.device(device)
    loss_ref, out_ref, _ = train_step(base_model, cfg, device)
    loss_bf, out_bf, grads_bf = train_step(base_model, cfg, device, amp_dtype=torch.bfloat16)

    assert np.isfinite(loss_bf)
    assert loss_bf == pytest.approx(loss_ref, rel=0.05)
    assert out_bf["cons_ht1"].dtype == torch.bfloat16  # autocast really ran the convolutions
    assert all(torch.isfinite(g).all() for g in grads_bf.values())
    # The hard-augment draws do not depend on the precision: the same θ, in float32, ...
    assert out_bf["theta"].dtype == torch.float32
    assert torch.equal(out_bf["theta"], out_ref["theta"])
    assert out_bf["unsup_ht_trans1"].dtype == out_bf["unsup_ht1"].dtype == torch.bfloat16
    # The networks' outputs stay near the fp32 ones (random weights, ~1e-3 heatmaps: a loose
    # bound; the students' outputs are checked in the test below).
    for key in ("sup_ht1", "sup_ht2", "unsup_ht1", "unsup_ht_trans1"):
        assert rel_err(out_bf[key].float(), out_ref[key]) < 0.1, key


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_student_sees_the_fp32_hard_view(device):
    """Same seeds, same weights, no cutout (whose boxes follow the teachers' argmax, which bf16 may
    move on a random network): the bf16 step's hard images are the fp32 step's, warped by the same
    θ, and the students' heatmaps are near the fp32 ones."""
    device = torch.device(device)
    cfg = make_cfg(mask_joint_num=0)
    seed_all(0)
    model = build_model(cfg, is_train=True)
    assert model.mask_joint_num == 0
    _, out_ref, _ = train_step(model, cfg, device)
    _, out_bf, _ = train_step(model, cfg, device, amp_dtype=torch.bfloat16)
    for key in ("unsup_x_trans", "unsup_x_trans_2"):
        torch.testing.assert_close(out_bf[key], out_ref[key], rtol=1e-5, atol=1e-5)
    for key in ("cons_ht1", "cons_ht2"):
        assert rel_err(out_bf[key].float(), out_ref[key]) < 0.1, key


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_eval_forward_under_autocast_returns_float32(cfg, base_model, device, channels_last):
    """``validate``'s forward: autocast, then ``.float()`` of each network's heatmap."""
    device = torch.device(device)
    model = copy.deepcopy(base_model).to(device).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    x = to_device(make_batch()[0][0], device, channels_last)
    with torch.no_grad():
        ref = model(x)
        with autocast_context(device, torch.bfloat16):
            out = model(x)
    out = tuple(o.float() for o in out)
    assert len(out) == len(ref) == 2
    for o, r in zip(out, ref):
        assert o.dtype == torch.float32 and r.dtype == torch.float32
        assert o.shape == (BATCH, K, *HEATMAP_HW)
        assert torch.isfinite(o).all()
        assert rel_err(o, r) < 0.05
        # the decoded peaks mostly agree
        agree = (o.flatten(2).argmax(2) == r.flatten(2).argmax(2)).float().mean().item()
        assert agree > 0.5


@pytest.mark.parametrize("device", DEVICES)
def test_warp_under_autocast_samples_at_float32_grid(device):
    """θ is applied in float32 under autocast: the warp equals the fp32 warp (up to bf16 rounding
    of a bf16 input)."""
    device = torch.device(device)
    seed_all()
    theta = get_batch_affine_transform(BATCH, 0.25, 30, device=device)
    image = torch.randn(BATCH, 3, 256, 192, device=device)
    heatmap = torch.rand(BATCH, K, 64, 48, device=device).to(torch.bfloat16)
    with autocast_context(device, torch.bfloat16):
        warped_image = warp(image, theta)
        warped_heatmap = warp(heatmap, theta)
    assert warped_image.dtype == torch.float32 and warped_heatmap.dtype == torch.bfloat16
    torch.testing.assert_close(warped_image, warp(image, theta), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        warped_heatmap.float(), warp(heatmap, theta).float(), rtol=1e-2, atol=1e-2
    )


def test_native_bf16_probe_and_the_cpu_warning(caplog, capsys, monkeypatch):
    """``native_bf16`` follows the CPU's bf16 units; ``TRAIN.BF16`` on a CPU without them still
    trains in bfloat16 but says it will be slow; the demo's probe prints the same answer."""
    from semipose.engine import fastpath
    from semipose.engine.defaults import native_bf16, resolve_amp_dtype

    expected = bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    assert native_bf16("cpu") is expected
    for flag in (False, True):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda flag=flag: flag)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        assert native_bf16("cpu") is flag
        caplog.clear()
        fake = SimpleNamespace(TRAIN=SimpleNamespace(BF16=True))
        with caplog.at_level("WARNING"):
            assert resolve_amp_dtype(fake, torch.device("cpu")) is torch.bfloat16
        assert ("emulates bfloat16" in caplog.text) is (not flag)
        fake.TRAIN.BF16 = False
        assert resolve_amp_dtype(fake, torch.device("cpu")) is None
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    capsys.readouterr()
    assert fastpath.main(["cpu"]) == 0
    assert capsys.readouterr().out.strip() == "1"
