"""Hard augmentation: batch affine draws, warp geometry (4x image/heatmap agreement), cutout."""

import math
import random

import numpy as np
import pytest
import torch

from semipose.models.hard_augment import (
    HardViewModel,
    compose_theta,
    get_batch_affine_transform,
    identity_theta,
    invert_theta,
    mask_joint,
    warp,
)


def gaussian(h, w, cx, cy, sigma):
    ys = torch.arange(h, dtype=torch.float32)[:, None]
    xs = torch.arange(w, dtype=torch.float32)[None, :]
    return torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))


def centroid(m):
    h, w = m.shape
    total = m.sum()
    ys = torch.arange(h, dtype=m.dtype)[:, None]
    xs = torch.arange(w, dtype=m.dtype)[None, :]
    return ((m * xs).sum() / total).item(), ((m * ys).sum() / total).item()


# ------------------------------------------------------------------ batch affine


def test_batch_affine_reproduces_the_formula():
    np.random.seed(3)
    random.seed(3)
    theta = get_batch_affine_transform(4, 0.25, 30, dtype=torch.float64)
    np.random.seed(3)
    random.seed(3)
    for b in range(4):
        s = np.clip(np.random.randn() * 0.25 + 1, 0.75, 1.25)
        r = np.clip(np.random.randn() * 30, -60, 60) if random.random() <= 0.8 else 0.0
        a = math.radians(r)
        expect = torch.tensor(
            [[s * math.cos(a), s * math.sin(a), 0], [-s * math.sin(a), s * math.cos(a), 0]],
            dtype=torch.float64,
        )
        torch.testing.assert_close(theta[b], expect)


def test_batch_affine_ranges_and_rotation_probability():
    np.random.seed(0)
    random.seed(0)
    theta = get_batch_affine_transform(4000, 0.25, 30, dtype=torch.float64)
    assert theta.shape == (4000, 2, 3) and theta.dtype == torch.float64
    assert torch.all(theta[:, :, 2] == 0)
    torch.testing.assert_close(theta[:, 0, 0], theta[:, 1, 1])
    torch.testing.assert_close(theta[:, 0, 1], -theta[:, 1, 0])
    scale = torch.sqrt(torch.det(theta[:, :, :2]))
    assert scale.min() >= 0.75 - 1e-9 and scale.max() <= 1.25 + 1e-9
    angle = torch.rad2deg(torch.atan2(theta[:, 0, 1], theta[:, 0, 0]))
    assert angle.abs().max() <= 60 + 1e-6
    no_rotation = (theta[:, 0, 1] == 0).double().mean().item()
    assert abs(no_rotation - 0.2) < 0.03  # rotation applied with probability 0.8
    assert get_batch_affine_transform(2, 0.25, 30).dtype == torch.float32


# ------------------------------------------------------------------ warp


def test_identity_warp_is_a_noop():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 16, 12)
    torch.testing.assert_close(warp(x, identity_theta(2)), x, atol=1e-5, rtol=0)


def test_rotation_90_on_square_map_permutes_pixels():
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 1, 3] = 1.0  # (x=3, y=1)
    theta = torch.tensor([[[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]])  # s=1, r=90°
    out = warp(x, theta)
    # out(u, v) = in(v, -u): output pixel (xo, yo) reads input (x=yo, y=W-1-xo)
    expect = torch.zeros_like(x)
    expect[0, 0, 3, 8 - 1 - 1] = 1.0
    torch.testing.assert_close(out, expect, atol=1e-6, rtol=0)


def test_scale_half_magnifies_about_the_centre():
    w = 64
    x = gaussian(w, w, 40, 36, 2.0)[None, None]
    theta = torch.tensor([[[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]]])
    out = warp(x, theta)[0, 0]

    # in normalised coords the peak moves from u to 2u (align_corners=False pixel centres)
    def moved(i):
        return ((2 * ((2 * i + 1) / w - 1) + 1) * w - 1) / 2

    cx, cy = centroid(out)
    assert abs(cx - moved(40)) < 0.1 and abs(cy - moved(36)) < 0.1


def test_image_and_heatmap_warps_agree_across_4x():
    np.random.seed(1)
    random.seed(1)
    theta = get_batch_affine_transform(6, 0.25, 30)
    hm = torch.stack([gaussian(16, 12, 5 + b % 3, 7 - b % 2, 1.2) for b in range(6)])[:, None]
    img = torch.stack(
        [gaussian(64, 48, 4 * (5 + b % 3) + 1.5, 4 * (7 - b % 2) + 1.5, 4.8) for b in range(6)]
    )[:, None]
    hm_w, img_w = warp(hm, theta), warp(img, theta)
    for b in range(6):
        hx, hy = centroid(hm_w[b, 0])
        ix, iy = centroid(img_w[b, 0])
        assert abs(ix - (4 * hx + 1.5)) < 0.6 and abs(iy - (4 * hy + 1.5)) < 0.6


def test_warp_casts_theta():
    x = torch.rand(1, 2, 8, 8, dtype=torch.float64)
    out = warp(x, identity_theta(1, dtype=torch.float32))
    assert out.dtype == torch.float64
    theta = torch.tensor([[[0.9, 0.3, 0.0], [-0.3, 0.9, 0.0]]])
    low = warp(x.float().bfloat16(), theta)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(
        low.float(), warp(x.float().bfloat16().float(), theta), atol=1e-2, rtol=0
    )


# ------------------------------------------------------------------ joint cutout


def test_mask_joint_num_zero_returns_input():
    x = torch.ones(1, 3, 32, 32)
    assert mask_joint(x, torch.zeros(1, 24, 2), 0) is x


def seeded_mask_joint(seed, img, joints, m, **kwargs):
    """``mask_joint`` right after seeding torch's and numpy's generators with ``seed``."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    return mask_joint(img, joints, m, **kwargs)


def rectangle(zero):
    """The rows and columns of a (H, W) mask, asserted to be one filled rectangle."""
    rows = zero.any(1).nonzero().flatten()
    cols = zero.any(0).nonzero().flatten()
    assert zero.sum().item() == rows.numel() * cols.numel()  # one filled rectangle
    return rows, cols


def test_single_box_is_a_rectangle_of_the_stated_sizes():
    n = 16
    img = torch.ones(n, 3, 128, 128)
    out = seeded_mask_joint(0, img, torch.full((n, 24, 2), 64.0), 1)
    assert torch.equal(img, torch.ones_like(img))  # input untouched
    for b in range(n):
        zero = out[b] == 0
        assert torch.equal(zero[0], zero[1]) and torch.equal(zero[0], zero[2])  # all channels
        rows, cols = rectangle(zero[0])
        h, w = rows.numel(), cols.numel()
        assert h % 2 == 0 and w % 2 == 0 and 20 <= h <= 38 and 20 <= w <= 38
        cy, cx = (rows[0] + rows[-1] + 1) / 2, (cols[0] + cols[-1] + 1) / 2
        assert abs(cx - 64) < 45 and abs(cy - 64) < 45


def test_at_most_m_boxes_per_image():
    torch.manual_seed(1)
    np.random.seed(1)
    img = torch.ones(4, 3, 128, 128)
    joints = torch.rand(4, 24, 2) * 80 + 24
    out = mask_joint(img, joints, 5)
    for b in range(4):
        zeroed = (out[b, 0] == 0).sum().item()
        assert 20 * 20 <= zeroed <= 5 * 38 * 38
    assert torch.all((out == 0) | (out == 1))


def test_joint_ids_restrict_the_drawn_channels():
    img = torch.ones(2, 3, 200, 200)
    joints = torch.zeros(2, 24, 2)
    joints[:, :, :] = 30.0
    joints[:, 7] = torch.tensor([150.0, 160.0])
    out = seeded_mask_joint(2, img, joints, 3, joint_ids=[7])
    zero = out[:, 0] == 0
    assert zero.any()
    assert not zero[:, :100, :100].any()  # nothing near the other joints


def test_original_clamp_bug_and_fix():
    # 256x192 crop (H=256, W=192): the original clamps y to [0, W=192], so a joint at y=230 vanishes
    img = torch.ones(1, 3, 256, 192)
    joints = torch.zeros(1, 24, 2)
    joints[0, :, 0] = 100.0
    joints[0, :, 1] = 230.0
    buggy = seeded_mask_joint(0, img, joints, 1)
    assert (buggy == 0).sum().item() == 0
    fixed = seeded_mask_joint(0, img, joints, 1, fix_clamp=True)
    zero_rows = (fixed[0, 0] == 0).any(1).nonzero().flatten()
    assert zero_rows.numel() >= 20 and zero_rows.min() >= 192
    # the x clamp of the original uses H=256: a box near the right border is kept (cropped by W)
    joints[0, :, 0], joints[0, :, 1] = 185.0, 100.0
    right = seeded_mask_joint(0, img, joints, 1)
    assert (right[0, 0] == 0).any()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_mask_joint_on_cuda():
    img = torch.ones(2, 3, 64, 64, device="cuda")
    out = mask_joint(img, torch.full((2, 24, 2), 32.0, device="cuda"), 2)
    assert out.device.type == "cuda" and (out == 0).any()


def test_relative_cutout_scales_box_sizes():
    """size_scale 1/3 (a 64 px wide input): half-sizes round(10..19 / 3) = 3..6 px."""
    n = 32
    img = torch.ones(n, 3, 96, 64)
    out = seeded_mask_joint(0, img, torch.full((n, 24, 2), 32.0), 1, fix_clamp=True,
                            size_scale=64 / 192)
    sizes = []
    for b in range(n):
        rows, cols = rectangle(out[b, 0] == 0)
        sizes += [rows.numel(), cols.numel()]
    assert min(sizes) >= 6 and max(sizes) <= 12 and len(set(sizes)) > 2


def test_invert_and_compose_theta():
    theta = get_batch_affine_transform(5, 0.25, 30, dtype=torch.float64)
    theta[:, :, 2] = torch.randn(5, 2, dtype=torch.float64) * 0.1
    eye = identity_theta(5, dtype=torch.float64)
    assert torch.allclose(compose_theta(invert_theta(theta), theta), eye, atol=1e-12)
    assert torch.allclose(compose_theta(theta, invert_theta(theta)), eye, atol=1e-12)
    other = get_batch_affine_transform(5, 0.25, 30, dtype=torch.float64)
    p = torch.tensor([0.3, -0.2, 1.0], dtype=torch.float64)
    direct = theta[:, :, :2] @ (other @ p)[..., None] + theta[:, :, 2:]
    assert torch.allclose((compose_theta(theta, other) @ p)[..., None], direct)


def test_hard_teacher_heatmap_lands_in_the_student_frame():
    """A Gaussian seen through the teacher's view and carried by θ_t⁻¹·θ_s peaks where the
    student's view of the same Gaussian peaks."""
    np.random.seed(4)
    random.seed(4)
    model = HardViewModel(scale_factor=0.25, rotation_factor=30, hard_teacher=True)
    ht = gaussian(48, 48, 26.0, 21.0, 2.0).expand(3, 1, 48, 48).contiguous()
    teacher_view, theta_t = model._teacher_view(ht)
    theta_s = model._theta(3, ht.device)
    carried = warp(teacher_view, model._teacher_to_student(theta_t, theta_s))
    student = warp(ht, theta_s)
    for b in range(3):
        cx, cy = centroid(carried[b, 0])
        sx, sy = centroid(student[b, 0])
        assert abs(cx - sx) < 0.3 and abs(cy - sy) < 0.3
    assert model._teacher_to_student(None, theta_s) is theta_s


def test_hard_teacher_rejects_incompatible_settings():
    for bad in ({"mask_joint_num": 3}, {"same_view": True}, {"unsup_transform": False}):
        with pytest.raises(ValueError, match="CONS_HARD_TEACHER"):
            HardViewModel(hard_teacher=True, **bad)
