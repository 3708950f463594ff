"""Hard-augmentation ops: geometry on hand-made inputs (published quirks and their fixes), draw
orders against slice-by-slice references, compositions, the registry and HardViewModel wiring."""

import numpy as np
import pytest
import torch

from semipose.models.augment_ops import (
    HARD_AUGS,
    CutMix,
    CutOut,
    HardAugment,
    HardAugSettings,
    JointCutOcclude,
    _jo_axis,
    build_hard_augment,
    expand_names,
    joint_cut_occlude,
    mask_joint,
    random_cutmix,
    random_cutout,
    random_mixup,
)
from semipose.models.hard_augment import HardViewModel

H, W = 64, 48  # non-square (H > W), so every H/W swap shows


pytestmark = pytest.mark.usefixtures("single_thread")


def seeded(seed):
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def distinct_images(n, h=H, w=W):
    """Image i is filled with i + 1 plus a small ramp, so every pixel tells where it came from."""
    ramp = torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w) / (h * w * 10)
    base = torch.arange(1, n + 1, dtype=torch.float32).view(n, 1, 1, 1)
    return (base + ramp).expand(n, 3, h, w).clone()


def changed(a, b):
    """(N, H, W) bool: pixels where any channel differs."""
    return (a != b).any(1)


def bounds(mask):
    """(row_min, row_max, col_min, col_max) of a 2-D bool mask's True pixels."""
    rows = mask.any(1).nonzero().flatten()
    cols = mask.any(0).nonzero().flatten()
    return rows.min().item(), rows.max().item(), cols.min().item(), cols.max().item()


# ------------------------------------------------------------------ registry


def test_registry_names_and_expansion():
    assert set(HARD_AUGS) == {"JC", "JO", "SSCO", "CO", "CM", "MU", "JOCO", "JCCM"}
    assert expand_names(["JOCO", "JCCM", "SSCO", "MU"]) == ("JO", "CO", "JC", "CM", "JO", "MU")
    assert build_hard_augment(["JOCO"]).names == ("JO", "CO")
    assert build_hard_augment(["JCCM"]).names == ("JC", "CM")
    assert not build_hard_augment([])
    with pytest.raises(KeyError, match="XX"):
        build_hard_augment(["XX"])
    with pytest.raises(ValueError, match="MASK_JOINT_NUM"):
        build_hard_augment(["JC"], HardAugSettings(mask_joint_num=0))
    with pytest.raises(ValueError, match="JO_JOINT_NUM"):
        build_hard_augment(["JO"], HardAugSettings(jo_joint_num=0))


def test_settings_reach_the_ops():
    s = HardAugSettings(
        mask_joint_num=3,
        mask_joint_fix=True,
        jo_joint_num=4,
        co_holes=6,
        cm_holes=1,
        jccm_cm_holes=5,
        jo_fix=True,
        hole_fix=True,
        joint_pool_fix=True,
        trained_joints=(0, 1, 2, 3, 4),
    )
    jc, cm = build_hard_augment(["JCCM"], s).steps
    assert (jc.num, jc.fix_clamp, jc.joint_ids, jc.replace) == (3, True, [0, 1, 2, 3, 4], False)
    assert (cm.num, cm.fix_hw) == (5, True)  # JCCM's own hole count
    (cm_alone,) = build_hard_augment(["CM"], s).steps
    assert cm_alone.num == 1
    jo, co = build_hard_augment(["JOCO"], s).steps
    assert (jo.num, jo.fix_transpose, jo.replace, jo.joint_ids) == (4, True, False, [0, 1, 2, 3, 4])
    assert (co.num, co.fix_hw) == (6, True)
    # defaults: the published counts and quirks, joints from every channel
    jo, co = build_hard_augment(["JOCO"]).steps
    assert (jo.num, jo.fix_transpose, jo.joint_ids, jo.replace) == (2, False, None, True)
    assert (co.num, co.fix_hw) == (5, False)
    jc, cm = build_hard_augment(["JCCM"]).steps
    assert (jc.num, jc.fix_clamp, jc.joint_ids, cm.num) == (5, False, None, 2)


@pytest.mark.parametrize("name", sorted(HARD_AUGS))
def test_every_op_runs_keeps_input_and_is_seeded(name):
    x = distinct_images(4)
    before = x.clone()
    joints = torch.rand(4, 24, 2) * torch.tensor([W, H])
    aug = build_hard_augment([name])
    a = aug(x, joints, seeded(5))
    b = aug(x, joints, seeded(5))
    assert torch.equal(x, before)  # never in place
    assert a.shape == x.shape and a.dtype == x.dtype
    torch.testing.assert_close(a, b, rtol=0, atol=0)  # same seed, same result
    outs = [aug(x, joints, seeded(s)) for s in range(6)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])  # the seed matters
    assert any(not torch.equal(o, x) for o in outs)  # and the op does something


# ------------------------------------------------------------------ JC


def test_jc_op_with_global_rng_is_mask_joint():
    x = distinct_images(3)
    joints = torch.rand(3, 24, 2) * torch.tensor([W, H])
    (jc,) = build_hard_augment(["JC"], HardAugSettings(mask_joint_num=4)).steps
    torch.manual_seed(1)
    np.random.seed(1)
    got = jc(x, joints)
    torch.manual_seed(1)
    np.random.seed(1)
    torch.testing.assert_close(got, mask_joint(x, joints, 4), rtol=0, atol=0)


def published_mask_joint(image, joints, num):
    """Joint Cutout as ``spec/ORIGINAL.md`` §6.8 and ``spec/SUCCESSORS.md`` §1.3 describe it, one
    box at a time: jitter ``randn((N, J, 2)) * 10`` and half-sizes ``randint(10, 20, (N, J, 2))``
    for every joint (torch's CPU generator), truncated; x clamped to [0, H] and y to [0, W]; then
    per sample ``np.random.choice(J, num)`` and each chosen joint's box zeroed by slicing."""
    image = image.clone()
    n, j = joints.shape[:2]
    _, _, dim2, dim3 = image.shape  # the published code calls these width and height
    centre = (joints[:, :, :2] + torch.randn((n, j, 2)) * 10).int()
    size = torch.randint(10, 20, (n, j, 2)).int()
    x0 = (centre[..., 0] - size[..., 0]).clamp(0, dim2)
    x1 = (centre[..., 0] + size[..., 0]).clamp(0, dim2)
    y0 = (centre[..., 1] - size[..., 1]).clamp(0, dim3)
    y1 = (centre[..., 1] + size[..., 1]).clamp(0, dim3)
    for i in range(n):
        for k in np.random.choice(j, num):
            image[i, :, y0[i, k] : y1[i, k], x0[i, k] : x1[i, k]] = 0
    return image


@pytest.mark.parametrize("seed", range(4))
def test_jc_masks_equal_the_published_draws(seed):
    # 128x96 crops (the demo's) with joints anywhere on them and five picks among 24 channels
    g = seeded(50 + seed)
    x = torch.rand(5, 3, 128, 96, generator=g) + 0.5
    joints = torch.rand(5, 24, 2, generator=g) * torch.tensor([96.0, 128.0])
    torch.manual_seed(seed)
    np.random.seed(seed)
    want = published_mask_joint(x, joints, 5)
    after_ref = (torch.rand(1).item(), np.random.rand())  # the streams after the call
    torch.manual_seed(seed)
    np.random.seed(seed)
    got = mask_joint(x, joints, 5)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert (torch.rand(1).item(), np.random.rand()) == after_ref  # the same number of draws
    assert (got == 0).any()


def test_jc_joint_picked_twice_is_one_box():
    # 5 picks among 24 channels with replacement give 24 * (1 - (23/24)^5) = 4.60 distinct joints
    # per image on average (the published draw), so 4.60 boxes, not 5
    n = 4000
    np.random.seed(0)
    torch.manual_seed(0)
    distinct = np.array([len(set(np.random.choice(24, 5))) for _ in range(n)])
    assert distinct.mean() == pytest.approx(24 * (1 - (23 / 24) ** 5), abs=0.03)  # 4.60
    # a joint picked 5 times: one box, the same as picking it once
    img = torch.ones(1, 3, 64, 64)
    joints = torch.full((1, 1, 2), 32.0)
    one = mask_joint(img, joints, 1, generator=seeded(3))
    five = mask_joint(img, joints, 5, generator=seeded(3))
    torch.testing.assert_close(five, one, rtol=0, atol=0)


def test_jc_without_replacement_cuts_every_pool_joint():
    img = torch.ones(2, 3, H, W)
    joints = torch.zeros(2, 24, 2)
    joints[:, 3] = torch.tensor([10.0, 12.0])
    joints[:, 9] = torch.tensor([38.0, 50.0])
    for seed in range(5):
        out = mask_joint(
            img, joints, 2, fix_clamp=True, joint_ids=[3, 9], replace=False, generator=seeded(seed)
        )
        zero = out[:, 0] == 0
        for n in range(2):  # both joints cut, never the same one twice
            assert zero[n, :32, :24].any() and zero[n, 32:, 24:].any()
    with pytest.raises(ValueError, match="without replacement"):
        mask_joint(img, joints, 3, joint_ids=[3, 9], replace=False)


def test_jc_clamp_swap_on_non_square_input():
    # a joint below row W (y = 54 > W = 48): the published clamp (y to [0, W]) never cuts rows >= W
    img = torch.ones(1, 3, H, W)
    joints = torch.zeros(1, 24, 2)
    joints[..., 0], joints[..., 1] = 20.0, 54.0
    pub = torch.zeros(H, W, dtype=torch.bool)
    fixed = torch.zeros(H, W, dtype=torch.bool)
    for seed in range(8):
        pub |= mask_joint(img, joints, 1, generator=seeded(seed))[0, 0] == 0
        fixed |= mask_joint(img, joints, 1, fix_clamp=True, generator=seeded(seed))[0, 0] == 0
    assert not pub[W:].any()
    r0, r1, c0, c1 = bounds(fixed)
    assert r1 == H - 1 and r0 < 54 - 10 and c0 < 20 - 10 and 20 + 10 <= c1 < W


# ------------------------------------------------------------------ JO


def clamp(v, lo, hi):
    return min(max(int(v), lo), hi)


def jo_reference(image, joints, num, noise, half, targets, sources, partner, fix, jitter=10):
    """JO written pair by pair with Python slices (the behaviour of SUCCESSORS.md §1.3)."""
    n, _, h, w = image.shape
    out, snap = image.clone(), image.clone()
    q = (joints + noise * jitter).long()

    def box(b, j):
        u, v = q[b, j].tolist()
        hu, hv = half[b, j].tolist()
        cc, hc, rc, hr = (u, hu, v, hv) if fix else (v, hv, u, hu)
        c0, c1 = clamp(cc - hc, 0, w - 1), clamp(cc + hc, 0, w - 1)
        return cc, rc, c0, c1, clamp(rc - hr, 0, h - 1), clamp(rc + hr, 0, h - 1)

    for i in range(n):
        m = int(partner[i])
        for k in range(num):
            scc, src_c, sc0, sc1, sr0, sr1 = box(m, int(sources[i, k]))
            tcc, trc, *_ = box(i, int(targets[i, k]))
            tc0, tc1 = clamp(tcc - abs(sc0 - scc), 0, w - 1), clamp(tcc + abs(sc1 - scc), 0, w - 1)
            tr0 = clamp(trc - abs(sr0 - src_c), 0, h - 1)
            tr1 = clamp(trc + abs(sr1 - src_c), 0, h - 1)
            tgt = out[i, :, tr0:tr1, tc0:tc1]
            full = snap[m, :, sr0:sr1, sc0:sc1]
            dr = abs(full.shape[1] - tgt.shape[1])
            dc = abs(full.shape[2] - tgt.shape[2])
            a_r, b_r = sr0 + (dr if tr0 == 0 else 0), sr1 - (dr if tr1 == h - 1 else 0)
            a_c, b_c = sc0 + (dc if tc0 == 0 else 0), sc1 - (dc if tc1 == w - 1 else 0)
            crop = snap[m, :, a_r:b_r, a_c:b_c]
            if tgt.shape[1] == 0 or tgt.shape[2] == 0:
                continue
            if crop.shape != tgt.shape:  # covers an empty crop too
                out[i, :, tr0:tr1, tc0:tc1] = 0
            else:
                out[i, :, tr0:tr1, tc0:tc1] = crop
    return out


@pytest.mark.parametrize("fix", [False, True])
def test_jo_matches_the_pairwise_reference_in_the_published_draw_order(fix):
    # tiny 40x28 images and joints partly off-image: every border rule is exercised
    n, k, h, w = 5, 24, 40, 28
    for seed in range(8):
        torch.manual_seed(100 + seed)
        x = torch.randn(n, 3, h, w)
        joints = torch.rand(n, k, 2) * torch.tensor([w + 60.0, h + 60.0]) - 30
        torch.manual_seed(seed)
        np.random.seed(seed)
        got = joint_cut_occlude(x, joints, 3, fix_transpose=fix)
        torch.manual_seed(seed)
        np.random.seed(seed)
        noise = torch.randn(n, k, 2)  # MultiAugs' order: torch randn, torch randint, then per
        half = torch.randint(10, 20, (n, k, 2))  # image numpy choice, choice, randint
        targets, sources, partner = [], [], []
        for _ in range(n):
            targets.append(np.random.choice(k, 3))
            sources.append(np.random.choice(k, 3))
            partner.append(np.random.randint(0, n))
        targets, sources = np.stack(targets), np.stack(sources)
        expect = jo_reference(x, joints, 3, noise, half, targets, sources, partner, fix)
        torch.testing.assert_close(got, expect, rtol=0, atol=0)


def test_jo_with_a_generator_matches_the_reference():
    n, k, h, w = 4, 24, 40, 28
    torch.manual_seed(0)
    x = torch.randn(n, 3, h, w)
    joints = torch.rand(n, k, 2) * torch.tensor([float(w), float(h)])
    got = joint_cut_occlude(x, joints, 2, generator=seeded(9))
    g = seeded(9)
    noise = torch.randn(n, k, 2, generator=g)
    half = torch.randint(10, 20, (n, k, 2), generator=g)
    targets = torch.randint(0, k, (n, 2), generator=g)
    sources = torch.randint(0, k, (n, 2), generator=g)
    partner = torch.randint(0, n, (n,), generator=g)
    expect = jo_reference(x, joints, 2, noise, half, targets, sources, partner, False)
    torch.testing.assert_close(got, expect, rtol=0, atol=0)


def test_jo_transposition_on_non_square_input():
    # every joint at (x=10, y=40) of a 64x48 batch, no jitter: the published box sits at
    # (row 10, column 40), the mirrored position; the fix puts it at (row 40, column 10)
    x = distinct_images(4)
    joints = torch.zeros(4, 24, 2)
    joints[..., 0], joints[..., 1] = 10.0, 40.0
    hit_pub = hit_fix = 0
    for seed in range(6):
        pub = joint_cut_occlude(x, joints, 2, jitter_px=0, generator=seeded(seed))
        fix = joint_cut_occlude(
            x, joints, 2, jitter_px=0, fix_transpose=True, generator=seeded(seed)
        )
        for i in range(4):
            if changed(pub, x)[i].any():
                hit_pub += 1
                r0, r1, c0, c1 = bounds(changed(pub, x)[i])
                # rows [10 - h0, 10 + h0) clipped at 0, columns [40 - h1, 47): the last column
                # (index W - 1) is never touched
                assert r0 == 0 and 19 <= r1 <= 28 and 21 <= c0 <= 30 and c1 == W - 2
                values = pub[i, 0][changed(pub, x)[i]].floor().unique()
                assert values.numel() == 1 and values.item() != i + 1  # one partner's pixels
            if changed(fix, x)[i].any():
                hit_fix += 1
                r0, r1, c0, c1 = bounds(changed(fix, x)[i])
                assert 21 <= r0 <= 30 and 49 <= r1 <= 58 and c0 == 0 and 19 <= c1 <= 28
    assert hit_pub > 0 and hit_fix > 0


def test_jo_published_example_stays_off_the_joint():
    # SUCCESSORS.md §1.3: a joint at (u=30, v=200) of a 256x192 batch changes only rows 0-69 and
    # columns 151-190 (jitter included); the fix keeps the changes around the joint
    x = distinct_images(4, 256, 192)
    joints = torch.zeros(4, 24, 2)
    joints[..., 0], joints[..., 1] = 30.0, 200.0
    pub_union = torch.zeros(256, 192, dtype=torch.bool)
    fix_union = torch.zeros(256, 192, dtype=torch.bool)
    for seed in range(10):
        pub_union |= changed(joint_cut_occlude(x, joints, 2, generator=seeded(seed)), x).any(0)
        fix = joint_cut_occlude(x, joints, 2, fix_transpose=True, generator=seeded(seed))
        fix_union |= changed(fix, x).any(0)
    r0, r1, c0, c1 = bounds(pub_union)
    assert r0 == 0 and r1 <= 79 and c0 >= 120 and c1 == 190
    r0, r1, c0, c1 = bounds(fix_union)
    assert r0 >= 120 and r1 <= 254 and c0 == 0 and c1 <= 110


def test_jo_axis_border_rules():
    # one axis of size 48; joint 0 at 24 (inside), joint 1 at -5 (off the low border);
    # every box has half-size 10 (lo/hi are the clamped edges)
    centre = torch.tensor([[24, -5]])
    lo = (centre - 10).clamp(0, 47)
    hi = (centre + 10).clamp(0, 47)

    def run(t, s):
        out = _jo_axis(centre, lo, hi, 48, torch.tensor([t]), torch.tensor([0]), torch.tensor([s]))
        return [v.item() for v in out]

    # same joint: target = source box [14, 34)
    assert run(0, 0) == [14, 34, 20, 14, 20]
    # source off-image: extents 5 (low) and 10 (high) around 24 -> target [19, 34), 15 long,
    # against a 5-long source crop: a mismatch (the box is zeroed)
    assert run(0, 1) == [19, 34, 15, 0, 5]
    # target off-image: [0, 5) against the 20-long source [14, 34): the start is clipped, so the
    # 15-pixel difference is dropped from the source's start -> [29, 34), 5 long: a paste
    assert run(1, 0) == [0, 5, 5, 29, 5]


def test_jo_no_op_when_the_target_box_is_off_image():
    # one image; joint 1 far off the left border and the only joint in the pool
    x = distinct_images(1)
    joints = torch.zeros(1, 24, 2)
    joints[0, :, 0], joints[0, :, 1] = 24.0, 32.0
    joints[0, 1, 0] = -30.0  # far off the left border (fixed geometry: x is the column)
    # both joints = 1: target box [-49, -11) clipped to nothing -> a no-op
    out = joint_cut_occlude(
        x, joints, 2, fix_transpose=True, joint_ids=[1], jitter_px=0, generator=seeded(0)
    )
    assert torch.equal(out, x)


# ------------------------------------------------------------------ CO / CM / MU


def boxes_reference(n, num, h, w, fix, draw):
    """CO/CM boxes drawn in MultiAugs' order (column centres, row centres, half-sizes), clamped:
    ``(i, r0, r1, c0, c1)`` for each of the ``num`` boxes of each image ``i``."""
    col_range, row_range = (w, h) if fix else (h, w)
    cc = draw(0, col_range, (n, num))
    rc = draw(0, row_range, (n, num))
    half = draw(10, 20, (n, num, 2))
    boxes = []
    for i in range(n):
        for k in range(num):
            c0, c1 = (clamp(cc[i, k] + d * half[i, k, 0], 0, col_range) for d in (-1, 1))
            r0, r1 = (clamp(rc[i, k] + d * half[i, k, 1], 0, row_range) for d in (-1, 1))
            boxes.append((i, r0, r1, c0, c1))
    return boxes


def op_and_boxes_reference(op, x, num, fix, seed):
    """``op(x, num, fix_hw=fix)`` and ``boxes_reference`` of its boxes, each drawn right after
    seeding torch with ``seed`` (later torch draws follow the reference's)."""
    torch.manual_seed(seed)
    got = op(x, num, fix_hw=fix)
    torch.manual_seed(seed)
    return got, boxes_reference(len(x), num, H, W, fix, torch.randint)


@pytest.mark.parametrize("fix", [False, True])
def test_cutout_matches_the_slice_reference(fix):
    x = distinct_images(3)
    got, boxes = op_and_boxes_reference(random_cutout, x, 5, fix, seed=4)
    expect = x.clone()
    for i, r0, r1, c0, c1 in boxes:
        expect[i, :, r0:r1, c0:c1] = 0
    torch.testing.assert_close(got, expect, rtol=0, atol=0)


def test_cutout_hw_swap_on_non_square_input():
    x = torch.ones(16, 3, H, W)
    pub = torch.zeros(H, W, dtype=torch.bool)
    fix = torch.zeros(H, W, dtype=torch.bool)
    for seed in range(4):
        pub |= (random_cutout(x, 5, generator=seeded(seed))[:, 0] == 0).any(0)
        fix |= (random_cutout(x, 5, fix_hw=True, generator=seeded(seed))[:, 0] == 0).any(0)
    assert not pub[W:].any()  # published: no hole reaches the bottom H - W rows
    assert fix[W:].any() and fix[-1].any()


@pytest.mark.parametrize("fix", [False, True])
def test_cutmix_matches_the_slice_reference(fix):
    x = distinct_images(4)
    got, boxes = op_and_boxes_reference(random_cutmix, x, 2, fix, seed=8)
    perm = torch.randperm(4)
    partner = x[perm]
    expect = x.clone()
    for i, r0, r1, c0, c1 in boxes:
        expect[i, :, r0:r1, c0:c1] = partner[i, :, r0:r1, c0:c1]
    torch.testing.assert_close(got, expect, rtol=0, atol=0)
    # every changed pixel comes from the partner image
    diff = changed(got, x)
    for i in range(4):
        torch.testing.assert_close(got[i][:, diff[i]], x[perm[i]][:, diff[i]])


def test_cutmix_hw_swap_on_non_square_input():
    x = distinct_images(16)
    pub = torch.zeros(H, W, dtype=torch.bool)
    fix = torch.zeros(H, W, dtype=torch.bool)
    for seed in range(4):
        pub |= changed(random_cutmix(x, 2, generator=seeded(seed)), x).any(0)
        fix |= changed(random_cutmix(x, 2, fix_hw=True, generator=seeded(seed)), x).any(0)
    assert not pub[W:].any() and fix[W:].any()


def test_mixup_matches_the_reference():
    x = distinct_images(5)
    np.random.seed(2)
    torch.manual_seed(2)
    got = random_mixup(x)
    np.random.seed(2)
    torch.manual_seed(2)
    lam = 1 - 0.25 * np.random.beta(0.2, 0.2)  # numpy first, then torch's permutation
    perm = torch.randperm(5)
    torch.testing.assert_close(got, lam * x + (1 - lam) * x[perm])
    assert 0.75 <= lam <= 1


# ------------------------------------------------------------------ compositions


def test_compositions_apply_in_order():
    x = distinct_images(4)
    joints = torch.rand(4, 24, 2) * torch.tensor([W, H])
    s = HardAugSettings(mask_joint_num=3, jccm_cm_holes=4)
    joco = build_hard_augment(["JOCO"], s)(x, joints, seeded(3))
    g = seeded(3)
    step = JointCutOcclude(2)(x, joints, g)
    torch.testing.assert_close(joco, CutOut(5)(step, joints, g), rtol=0, atol=0)
    torch.testing.assert_close(joco, build_hard_augment(["JO", "CO"], s)(x, joints, seeded(3)))
    # CO then JO is a different image (order matters)
    assert not torch.equal(joco, build_hard_augment(["CO", "JO"], s)(x, joints, seeded(3)))
    jccm = build_hard_augment(["JCCM"], s)(x, joints, seeded(7))
    g = seeded(7)
    step = mask_joint(x, joints, 3, generator=g)
    torch.testing.assert_close(jccm, CutMix(4)(step, joints, g), rtol=0, atol=0)


def test_interleaved_draws_step_by_step():
    x = distinct_images(4)
    j1 = torch.rand(4, 24, 2) * torch.tensor([W, H])
    j2 = torch.rand(4, 24, 2) * torch.tensor([W, H])
    aug = build_hard_augment(["JOCO"])
    a, b = aug.apply_interleaved(x, [j1, j2], seeded(11))
    g = seeded(11)  # JO for image 1, JO for image 2, then CO for 1, CO for 2
    jo, co = aug.steps
    a1, b1 = jo(x, j1, g), jo(x, j2, g)
    torch.testing.assert_close(a, co(a1, j1, g), rtol=0, atol=0)
    torch.testing.assert_close(b, co(b1, j2, g), rtol=0, atol=0)
    assert isinstance(aug, HardAugment)


# ------------------------------------------------------------------ HardViewModel


def gaussian_heatmaps(n, k, h, w, seed):
    g = seeded(seed)
    ht = torch.rand(n, k, h, w, generator=g) * 0.1
    ht[:, :, h // 2, w // 3] = 1.0
    return ht


def test_hard_ops_with_jc_only_is_the_old_cutout_path():
    model = HardViewModel(mask_joint_num=3, trained_joints=list(range(17)))
    assert model.hard_ops == ("JC",)
    x = distinct_images(2)
    ht1 = gaussian_heatmaps(2, 24, H // 4, W // 4, 0)
    ht2 = gaussian_heatmaps(2, 24, H // 4, W // 4, 1)
    for fix in (False, True):
        model = HardViewModel(mask_joint_num=3, mask_joint_fix=fix, trained_joints=range(17))
        torch.manual_seed(0)
        np.random.seed(0)
        new = model._hard_ops(x, ht2, ht1)
        torch.manual_seed(0)
        np.random.seed(0)
        old = (model._cutout(x, ht2), model._cutout(x, ht1))
        for a, b in zip(new, old):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_hard_ops_none_configured_returns_the_source():
    model = HardViewModel()
    assert model.hard_ops == () and not model.hard_aug
    x = distinct_images(2)
    ht = gaussian_heatmaps(2, 24, H // 4, W // 4, 0)
    a, b = model._hard_ops(x, ht, ht)
    assert a is x and b is x


def test_hard_view_model_builds_the_configured_sequence():
    model = HardViewModel(
        mask_joint_num=5, hard_ops=["JOCO", "JCCM"], jccm_cm_holes=5, hole_fix=True, jo_fix=True
    )
    assert model.hard_aug.names == ("JO", "CO", "JC", "CM")
    steps = model.hard_aug.steps
    assert steps[0].fix_transpose and steps[1].fix_hw and steps[3].num == 5
    x = distinct_images(2)
    ht = gaussian_heatmaps(2, 24, H // 4, W // 4, 0)
    (out,) = model._hard_ops(x, ht, generator=seeded(0))
    (again,) = model._hard_ops(x, ht, generator=seeded(0))
    torch.testing.assert_close(out, again, rtol=0, atol=0)
    assert not torch.equal(out, x)
    # CutOut/CutMix/MixUp need no joints: the heatmap argmax is skipped
    (mu,) = HardViewModel(hard_ops=["MU"])._hard_ops(x, ht, generator=seeded(0))
    torch.testing.assert_close(mu, random_mixup(x, generator=seeded(0)))


def test_hard_view_model_rejects_bad_settings():
    with pytest.raises(KeyError, match="NOPE"):
        HardViewModel(hard_ops=["NOPE"])
    with pytest.raises(ValueError, match="MASK_JOINT_NUM"):
        HardViewModel(hard_ops=["JC"])
    with pytest.raises(ValueError, match="hard_teacher"):
        HardViewModel(hard_ops=["CO"], hard_teacher=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", sorted(HARD_AUGS))
def test_ops_on_cuda_match_cpu_with_a_cpu_generator(name):
    x = distinct_images(4)
    joints = torch.rand(4, 24, 2) * torch.tensor([W, H])
    aug = build_hard_augment([name])
    cpu = aug(x, joints, seeded(1))
    gpu = aug(x.cuda(), joints.cuda(), seeded(1))
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu)


# ------------------------------------------------------------------ HARD_AUG.RELATIVE


def test_relative_cutout_and_cutmix_scale_the_drawn_half_sizes():
    """On a 96 px wide input HARD_AUG.RELATIVE halves the drawn half-sizes (96 / 192) and keeps
    the draws: the same centres, the same partner permutation."""
    x = distinct_images(3, 64, 96)
    got = random_cutout(x, 4, fix_hw=True, size_scale=0.5, generator=seeded(3))
    g = seeded(3)
    cc, rc = torch.randint(0, 96, (3, 4), generator=g), torch.randint(0, 64, (3, 4), generator=g)
    half = (torch.randint(10, 20, (3, 4, 2), generator=g) * 0.5).round().long()
    expect = x.clone()
    for i in range(3):
        for k in range(4):
            c0, c1 = (clamp(cc[i, k] + d * half[i, k, 0], 0, 96) for d in (-1, 1))
            r0, r1 = (clamp(rc[i, k] + d * half[i, k, 1], 0, 64) for d in (-1, 1))
            expect[i, :, r0:r1, c0:c1] = 0
    torch.testing.assert_close(got, expect, rtol=0, atol=0)
    # the ops: relative on a 96 px wide batch is size_scale 0.5; a 192 px wide batch is unchanged
    s = HardAugSettings(box_relative=True, hole_fix=True, co_holes=4)
    (co,) = build_hard_augment(["CO"], s).steps
    (cm,) = build_hard_augment(["CM"], s).steps
    torch.testing.assert_close(co(x, None, seeded(3)), got, rtol=0, atol=0)
    mixed = random_cutmix(x, 2, fix_hw=True, size_scale=0.5, generator=seeded(5))
    torch.testing.assert_close(cm(x, None, seeded(5)), mixed, rtol=0, atol=0)
    wide = distinct_images(2, 64, 192)
    torch.testing.assert_close(co(wide, None, seeded(1)),
                               random_cutout(wide, 4, fix_hw=True, generator=seeded(1)))
    smaller = (changed(got, x)).sum()
    full = changed(random_cutout(x, 4, fix_hw=True, generator=seeded(3)), x).sum()
    assert 0 < smaller < full / 2


def test_relative_jo_scales_half_sizes_and_jitter():
    n, k, h, w = 4, 24, 64, 96
    torch.manual_seed(0)
    x = torch.randn(n, 3, h, w)
    joints = torch.rand(n, k, 2) * torch.tensor([float(w), float(h)])
    got = joint_cut_occlude(x, joints, 2, size_scale=0.5, generator=seeded(9))
    g = seeded(9)
    noise = torch.randn(n, k, 2, generator=g) * 0.5  # jitter 10 px * 0.5
    half = (torch.randint(10, 20, (n, k, 2), generator=g) * 0.5).round().long()
    targets = torch.randint(0, k, (n, 2), generator=g)
    sources = torch.randint(0, k, (n, 2), generator=g)
    partner = torch.randint(0, n, (n,), generator=g)
    expect = jo_reference(x, joints, 2, noise, half, targets, sources, partner, False)
    torch.testing.assert_close(got, expect, rtol=0, atol=0)
    (jo,) = build_hard_augment(["JO"], HardAugSettings(box_relative=True)).steps
    torch.testing.assert_close(jo(x, joints, seeded(9)), got, rtol=0, atol=0)


def test_hard_aug_relative_key_reaches_the_model():
    from semipose.config import load_config
    from semipose.models.build import semi_kwargs

    cfg = load_config(None, ["HARD_AUG.PATHS", "[['JOCO'], ['JCCM']]", "MASK_JOINT_NUM", "2",
                             "HARD_AUG.RELATIVE", "true"])
    model = HardViewModel(**semi_kwargs(cfg))
    steps = [step for aug in model.hard_augs for step in aug.steps]
    assert [step.name for step in steps] == ["JO", "CO", "JC", "CM"]
    for step in steps:  # JC follows MASK_JOINT_RELATIVE, the others HARD_AUG.RELATIVE
        assert step.relative is (step.name != "JC"), step
    assert not load_config(None, []).HARD_AUG.RELATIVE  # off by default: the published pixels
