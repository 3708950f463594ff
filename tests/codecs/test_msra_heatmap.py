"""Tests of the heatmap codec: argmax, 'shift' and 'dark' decoding, the map back, the flip merge,
the builder."""
import cv2
import numpy as np
import pytest
import torch

from semipose.codecs import (
    MSRAHeatmap,
    build_codec,
    gaussian_blur,
    get_max_preds,
    get_max_preds_tensor,
    taylor,
)
from semipose.utils.transforms import transform_preds

H, W = 64, 48


def get_final_preds(hm, center, scale, rotation, **decode_kwargs):
    """The codec's decode with the given settings (the original's ``get_final_preds`` form)."""
    return MSRAHeatmap(**decode_kwargs).decode(hm, center, scale, rotation)


def _gaussian(cx, cy, sigma=2.0, h=H, w=W, peak=1.0):
    """An unnormalised Gaussian heatmap centred at the sub-pixel (cx, cy)."""
    yy, xx = np.mgrid[0:h, 0:w]
    return (peak * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))).astype(np.float32)


def _identity_meta(n):
    """center/scale/rot making transform_preds the identity on a W x H heatmap (200 s_w = W)."""
    center = np.tile([W / 2.0, H / 2.0], (n, 1))
    scale = np.tile([W / 200.0, H / 200.0], (n, 1))
    return center, scale, np.zeros(n)


def _shift_reference(hm, coords):
    """A loop-by-loop reading of the quarter-offset rule (the spec's §8.3 step 3)."""
    coords = coords.copy()
    n, k, h, w = hm.shape
    for i in range(n):
        for j in range(k):
            px = int(np.floor(coords[i, j, 0] + 0.5))
            py = int(np.floor(coords[i, j, 1] + 0.5))
            if 1 < px < w - 1 and 1 < py < h - 1:
                m = hm[i, j]
                coords[i, j, 0] += 0.25 * np.sign(m[py, px + 1] - m[py, px - 1])
                coords[i, j, 1] += 0.25 * np.sign(m[py + 1, px] - m[py - 1, px])
    return coords


def test_get_max_preds_argmax_and_zeroing():
    hm = np.zeros((2, 3, H, W), dtype=np.float32)
    hm[0, 0, 10, 7] = 0.9
    hm[0, 1, 63, 47] = 0.2
    hm[1, 0] = -1.0
    hm[1, 0, 5, 5] = -0.5  # the max is negative: coordinates zeroed, maxval kept
    preds, maxvals = get_max_preds(hm)
    np.testing.assert_array_equal(preds[0, 0], [7, 10])
    np.testing.assert_array_equal(preds[0, 1], [47, 63])
    np.testing.assert_array_equal(preds[0, 2], [0, 0])  # all-zero map: maxval 0 -> zeroed
    np.testing.assert_array_equal(preds[1, 0], [0, 0])
    assert maxvals[1, 0, 0] == pytest.approx(-0.5)
    assert maxvals.shape == (2, 3, 1) and preds.dtype == np.float32
    t_preds, t_max = get_max_preds_tensor(torch.from_numpy(hm))
    np.testing.assert_array_equal(t_preds[0].numpy(), preds[0])
    np.testing.assert_array_equal(t_preds[1, 0].numpy(), [5, 5])  # no masking in the tensor version
    np.testing.assert_allclose(t_max.numpy(), maxvals)


def test_shift_decodes_subpixel_gaussian_within_a_quarter_pixel():
    centres = [(20.3, 30.7), (11.6, 40.2), (33.49, 17.51), (25.0, 25.0)]
    hm = np.stack([_gaussian(cx, cy) for cx, cy in centres])[None]
    center, scale, rot = _identity_meta(1)
    preds, maxvals = get_final_preds(hm, center, scale, rot)
    err = np.abs(preds[0] - np.array(centres))
    assert err.max() <= 0.25 + 1e-4
    # Off-grid centres are improved over the bare argmax.
    argmax, _ = get_max_preds(hm)
    assert np.abs(argmax[0, :3] - np.array(centres[:3])).sum() > err[:3].sum()
    np.testing.assert_allclose(maxvals[0, :, 0], hm[0].reshape(4, -1).max(axis=1))


@pytest.mark.parametrize(
    "px, py, shifted",
    [
        (1, 20, False),  # px = 1: not strictly above 1
        (2, 20, True),
        (W - 1, 20, False),  # px = W - 1: not strictly below W - 1
        (W - 2, 20, True),
        (20, 1, False),
        (20, 2, True),
        (20, H - 1, False),
        (20, H - 2, True),
    ],
)
def test_shift_border_rule(px, py, shifted):
    hm = np.zeros((1, 1, H, W), dtype=np.float32)
    hm[0, 0, py, px] = 1.0
    if px + 1 < W:
        hm[0, 0, py, px + 1] = 0.5  # right neighbour higher than the left one: +0.25 in x
    else:
        hm[0, 0, py, px - 1] = 0.5  # (at the right edge the left one is higher)
    hm[0, 0, py - 1, px] = 0.5  # upper neighbour higher than the lower one: -0.25 in y
    center, scale, rot = _identity_meta(1)
    preds, _ = get_final_preds(hm, center, scale, rot)
    delta = 0.25 if shifted else 0.0
    np.testing.assert_allclose(preds[0, 0], [px + delta, py - delta], atol=1e-4)


def test_shift_is_vectorised_equal_to_the_loop_rule():
    rng = np.random.default_rng(3)
    hm = rng.random((3, 5, 9, 7)).astype(np.float32)
    hm[0, 0] = 0.0  # flat map: argmax (0, 0), no shift
    hm[1, 2, 4, :] = 2.0  # ties: equal neighbours give sign 0
    coords, _ = get_max_preds(hm)
    ref = _shift_reference(hm, coords)
    n = hm.shape[0]
    center = np.tile([3.5, 4.5], (n, 1))
    scale = np.tile([7 / 200.0, 9 / 200.0], (n, 1))
    preds, _ = get_final_preds(hm, center, scale, np.zeros(n))
    np.testing.assert_allclose(preds, ref, atol=1e-4)


def test_no_post_process_returns_the_argmax():
    hm = _gaussian(20.3, 30.7)[None, None]
    center, scale, rot = _identity_meta(1)
    preds, _ = get_final_preds(hm, center, scale, rot, post_process=False)
    np.testing.assert_allclose(preds[0, 0], [20.0, 31.0], atol=1e-4)


def test_nonpositive_max_maps_the_origin():
    hm = np.full((1, 2, H, W), -0.1, dtype=np.float32)
    hm[0, 1] = _gaussian(10.0, 12.0)
    c, s, r = np.array([[300.0, 200.0]]), np.array([[1.2, 1.6]]), np.array([15.0])
    preds, maxvals = get_final_preds(hm, c, s, r)
    assert maxvals[0, 0, 0] == pytest.approx(-0.1)
    np.testing.assert_allclose(
        preds[0, 0], transform_preds(np.zeros((1, 2)), c[0], s[0], r[0], [W, H])[0], atol=1e-3
    )


def test_dark_beats_shift_on_subpixel_gaussians():
    centres = [(20.3, 30.7), (11.6, 40.2), (33.45, 17.55), (24.1, 24.9)]
    hm = np.stack([_gaussian(cx, cy) for cx, cy in centres])[None]
    center, scale, rot = _identity_meta(1)
    shift, _ = get_final_preds(hm, center, scale, rot, post_type="shift")
    dark, _ = get_final_preds(hm, center, scale, rot, post_type="dark")
    truth = np.array(centres)
    err_shift = np.linalg.norm(shift[0] - truth, axis=1)
    err_dark = np.linalg.norm(dark[0] - truth, axis=1)
    assert np.all(err_dark < err_shift)
    assert err_dark.max() < 0.02  # blur of a Gaussian is a Gaussian: the log is quadratic


def test_dark_border_rule_keeps_the_argmax():
    hm = np.zeros((1, 2, H, W), dtype=np.float32)
    hm[0, 0] = _gaussian(1.3, 30.0)  # px = 1: no Taylor step
    hm[0, 1] = _gaussian(30.0, H - 2.2)  # py = H - 2: no Taylor step
    center, scale, rot = _identity_meta(1)
    preds, _ = get_final_preds(hm, center, scale, rot, post_type="dark")
    np.testing.assert_allclose(preds[0], [[1.0, 30.0], [30.0, H - 2.0]], atol=1e-4)


def test_gaussian_blur_matches_padded_cv2_blur():
    rng = np.random.default_rng(1)
    hm = rng.random((2, 3, 16, 12)).astype(np.float32)
    hm[1, 2] = 0.0
    out = gaussian_blur(hm, 11)
    for i in range(2):
        for j in range(3):
            padded = np.zeros((16 + 10, 12 + 10))
            padded[5:-5, 5:-5] = hm[i, j]
            ref = cv2.GaussianBlur(padded, (11, 11), 0)[5:-5, 5:-5]
            if ref.max() > 0:
                ref = ref * hm[i, j].max() / ref.max()
            np.testing.assert_allclose(out[i, j], ref, rtol=1e-9, atol=1e-12)
    assert np.all(out[1, 2] == 0.0)
    with pytest.raises(ValueError):
        gaussian_blur(hm, 4)


def test_taylor_single_map():
    cx, cy = 20.3, 30.7
    log_hm = np.log(np.maximum(_gaussian(cx, cy).astype(np.float64), 1e-10))
    coord = np.array([20.0, 31.0])
    out = taylor(log_hm, coord)
    np.testing.assert_allclose(out, [cx, cy], atol=1e-6)
    np.testing.assert_array_equal(coord, [20.0, 31.0])  # not modified
    # Outside the valid window the coordinate is returned unchanged.
    np.testing.assert_array_equal(taylor(log_hm, np.array([1.0, 31.0])), [1.0, 31.0])
    # A flat map has a singular Hessian: no step.
    np.testing.assert_array_equal(taylor(np.zeros((H, W)), np.array([20.0, 31.0])), [20.0, 31.0])


def test_map_back_to_image_coordinates():
    hm = np.stack([_gaussian(12.0, 40.0), _gaussian(30.0, 8.0)])[None].repeat(2, axis=0)
    center = np.array([[320.0, 240.0], [100.0, 50.0]])
    scale = np.array([[1.5, 2.0], [0.6, 0.8]])
    rot = np.array([0.0, 30.0])
    preds, _ = get_final_preds(hm, center, scale, rot, post_process=False)
    # rot = 0: c + (x - W/2) * 200 s_w / W on both axes.
    step = 200.0 * scale[0, 0] / W
    expected0 = center[0] + (np.array([[12.0, 40.0], [30.0, 8.0]]) - [W / 2, H / 2]) * step
    np.testing.assert_allclose(preds[0], expected0, atol=1e-3)
    np.testing.assert_allclose(
        preds[1],
        transform_preds(np.array([[12.0, 40.0], [30.0, 8.0]]), center[1], scale[1], 30.0, [W, H]),
        atol=1e-3,
    )
    assert preds.dtype == np.float32 and preds.shape == (2, 2, 2)


@pytest.mark.parametrize("post_type", ["shift", "dark"])
def test_heatmaps_are_not_modified(post_type):
    rng = np.random.default_rng(2)
    hm = rng.random((2, 4, 16, 12)).astype(np.float32)
    before = hm.copy()
    center = np.tile([6.0, 8.0], (2, 1))
    scale = np.tile([0.06, 0.08], (2, 1))
    get_final_preds(hm, center, scale, np.zeros(2), post_type=post_type)
    np.testing.assert_array_equal(hm, before)


def test_bad_types_raise():
    hm = np.zeros((1, 1, 8, 8), dtype=np.float32)
    c, s = np.zeros((1, 2)), np.ones((1, 2))
    with pytest.raises(ValueError, match="gaussian"):
        get_final_preds(hm, c, s, np.zeros(1), target_type="integral")
    with pytest.raises(ValueError, match="post_type"):
        get_final_preds(hm, c, s, np.zeros(1), post_type="median")


def _dark_reference(hm, coords, kernel=11):
    """A map-by-map reading of §8.3 step 2 (padded cv2 blur, rescale, log, one Newton step)."""
    coords = coords.astype(np.float64).copy()
    n, k, h, w = hm.shape
    b = (kernel - 1) // 2
    for i in range(n):
        for j in range(k):
            padded = np.zeros((h + 2 * b, w + 2 * b))
            padded[b:-b, b:-b] = hm[i, j]
            m = cv2.GaussianBlur(padded, (kernel, kernel), 0)[b:-b, b:-b]
            m = np.log(np.maximum(m * hm[i, j].max() / m.max(), 1e-10))
            px, py = int(coords[i, j, 0]), int(coords[i, j, 1])
            if 1 < px < w - 2 and 1 < py < h - 2:
                grad = np.array(
                    [0.5 * (m[py, px + 1] - m[py, px - 1]), 0.5 * (m[py + 1, px] - m[py - 1, px])]
                )
                dxx = 0.25 * (m[py, px + 2] - 2 * m[py, px] + m[py, px - 2])
                dyy = 0.25 * (m[py + 2, px] - 2 * m[py, px] + m[py - 2, px])
                dxy = 0.25 * (m[py + 1, px + 1] - m[py - 1, px + 1] - m[py + 1, px - 1]
                              + m[py - 1, px - 1])  # fmt: skip
                hess = np.array([[dxx, dxy], [dxy, dyy]])
                if np.linalg.det(hess) != 0:
                    coords[i, j] -= np.linalg.inv(hess) @ grad
    return coords


def test_dark_equals_the_map_by_map_rule():
    rng = np.random.default_rng(5)
    hm = np.stack(
        [np.stack([_gaussian(*rng.uniform(3, 40, 2), sigma=rng.uniform(1.5, 3)) for _ in range(4)])
         for _ in range(2)]
    )  # fmt: skip
    hm += 0.05 * rng.random(hm.shape).astype(np.float32)
    coords, _ = get_max_preds(hm)
    ref = _dark_reference(hm, coords)
    center, scale, rot = _identity_meta(2)
    preds, _ = get_final_preds(hm, center, scale, rot, post_type="dark")
    np.testing.assert_allclose(preds, ref, atol=1e-4)


def test_mirror_values_and_involution():
    rng = np.random.default_rng(0)
    hm = rng.random((2, 6, 5, 7)).astype(np.float32)
    pairs = [[1, 4], [2, 5]]
    out = MSRAHeatmap.mirror(hm, pairs)
    np.testing.assert_array_equal(out[:, 1], hm[:, 4, :, ::-1])
    np.testing.assert_array_equal(out[:, 4], hm[:, 1, :, ::-1])
    np.testing.assert_array_equal(out[:, 0], hm[:, 0, :, ::-1])
    np.testing.assert_array_equal(MSRAHeatmap.mirror(out, pairs), hm)
    t_out = MSRAHeatmap.mirror(torch.from_numpy(hm), pairs)
    np.testing.assert_array_equal(t_out.numpy(), out)
    with pytest.raises(ValueError):
        MSRAHeatmap.mirror(hm[0], pairs)


def test_flip_back_and_merge():
    rng = np.random.default_rng(4)
    hm = torch.from_numpy(rng.random((2, 4, 6, 8)).astype(np.float32))
    flipped = torch.from_numpy(rng.random((2, 4, 6, 8)).astype(np.float32))
    pairs = [[1, 2]]
    codec = MSRAHeatmap()
    (back,) = codec.flip_back((flipped,), pairs)
    mirrored = MSRAHeatmap.mirror(flipped, pairs)
    # One pixel to the right; column 0 keeps the mirrored map's own value.
    assert torch.equal(back[..., 1:], mirrored[..., :-1])
    assert torch.equal(back[..., 0], mirrored[..., 0])
    (merged,) = codec.merge_flip((hm,), (flipped,), pairs)
    assert torch.equal(merged, (hm + back) * 0.5)
    # Without the shift: a 0.75 px bilinear move right (interior columns interpolate).
    (soft,) = MSRAHeatmap(shift_heatmap=False).flip_back((flipped,), pairs)
    expected = 0.25 * mirrored[..., 2:-1] + 0.75 * mirrored[..., 1:-2]
    torch.testing.assert_close(soft[..., 2:-1], expected, atol=1e-5, rtol=0)


def test_batch_encode_equals_encode():
    rng = np.random.default_rng(6)
    codec = MSRAHeatmap(image_size=(48, 64), heatmap_size=(12, 16), sigma=2)
    joints = rng.uniform(-20, 80, (3, 24, 3))
    vis = (rng.random((3, 24, 3)) > 0.3).astype(float)
    windows, active, refs = [], [], []
    for j, v in zip(joints, vis):
        window, weight = codec.windows(j, v)
        windows.append(window)
        active.append(weight[:, 0] > 0.5)
        refs.append(codec.encode(j, v)[0])
    out = codec.batch_encode(torch.from_numpy(np.stack(windows)),
                             torch.from_numpy(np.stack(active)))  # fmt: skip
    assert out.dtype == torch.float32 and out.shape == (3, 24, 16, 12)
    assert torch.equal(out, torch.from_numpy(np.stack(refs)))


def test_build_codec_reads_the_config():
    from semipose.config import load_config

    cfg = load_config(None, ["MODEL.IMAGE_SIZE", "[96, 128]", "MODEL.EXTRA.HEATMAP_SIZE",
                             "[24, 32]", "MODEL.EXTRA.SIGMA", "3", "TEST.POST_TYPE", "dark",
                             "TEST.SHIFT_HEATMAP", "False"])  # fmt: skip
    codec = build_codec(cfg)
    assert list(codec.image_size) == [96, 128] and list(codec.heatmap_size) == [24, 32]
    assert codec.sigma == 3 and codec.post_type == "dark" and not codec.shift_heatmap
    assert codec.stamp().shape == (19, 19)
    assert build_codec(cfg, post_type="shift").post_type == "shift"
