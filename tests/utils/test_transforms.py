"""Tests of semipose.utils.transforms: crop affines, flips, OpenCV <-> affine_grid conversions."""
import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from semipose.utils.transforms import (
    affine_transform,
    cvt_MToTheta,
    cvt_ThetaToM,
    fliplr_joints,
    get_affine_transform,
    transform_preds,
)

CASES = [
    # center, scale (w, h), rot, output size (w, h)
    ((320.0, 240.0), (1.0, 1.333), 0.0, (192, 256)),
    ((101.5, 377.25), (2.4, 3.2), 30.0, (192, 256)),
    ((55.0, 80.0), (0.5, 0.5), -45.0, (64, 64)),
    ((600.0, 20.0), (1.7, 2.2), 137.0, (48, 64)),
]


def _closed_form(center, scale, rot, out):
    """cv2.getRotationMatrix2D about the centre, then the centre moved to the output centre."""
    m = cv2.getRotationMatrix2D(center, rot, out[0] / (200.0 * scale[0]))
    m[:, 2] += np.array([out[0] / 2.0, out[1] / 2.0]) - np.asarray(center)
    return m


@pytest.mark.parametrize("center, scale, rot, out", CASES)
def test_affine_matches_closed_form(center, scale, rot, out):
    m = get_affine_transform(np.array(center), np.array(scale), rot, out)
    ref = _closed_form(center, scale, rot, out)
    assert m.shape == (2, 3)
    # float32 point pairs: relative precision ~1e-6 of the largest entry.
    tol = 2e-6 * max(1.0, np.abs(ref).max())
    np.testing.assert_allclose(m, ref, rtol=0, atol=tol)


@pytest.mark.parametrize("center, scale, rot, out", CASES)
def test_affine_centre_zoom_and_inverse(center, scale, rot, out):
    m = get_affine_transform(np.array(center), np.array(scale), rot, out)
    minv = get_affine_transform(np.array(center), np.array(scale), rot, out, inv=1)
    # The centre lands on the output centre.
    np.testing.assert_allclose(affine_transform(center, m), [out[0] / 2, out[1] / 2], atol=1e-3)
    # The zoom is out_w / (200 * s_w) along both axes (only s_w is used).
    zoom = np.sqrt(abs(np.linalg.det(m[:, :2])))
    assert zoom == pytest.approx(out[0] / (200.0 * scale[0]), rel=1e-5)
    # The inverse undoes the forward map.
    full = np.vstack([m, [0, 0, 1]])
    full_inv = np.vstack([minv, [0, 0, 1]])
    np.testing.assert_allclose(full_inv @ full, np.eye(3), atol=1e-5)


def test_affine_rotation_direction_and_scalar_scale():
    # Positive rot turns the content counter-clockwise: a point right of the centre goes up.
    c, s, out = np.array([100.0, 100.0]), np.array([1.0, 1.0]), (200, 200)
    m = get_affine_transform(c, s, 90.0, out)
    np.testing.assert_allclose(affine_transform([150.0, 100.0], m), [100.0, 50.0], atol=1e-3)
    # A scalar scale is used for both axes.
    np.testing.assert_allclose(
        get_affine_transform(c, 1.0, 10.0, out), get_affine_transform(c, s, 10.0, out)
    )


def test_affine_shift_moves_the_crop():
    c, s, out = np.array([100.0, 100.0]), np.array([1.0, 1.0]), (200, 200)
    m = get_affine_transform(c, s, 0.0, out, shift=np.array([0.1, -0.2]))
    # The shifted source centre c + 200 * s * shift lands on the output centre.
    np.testing.assert_allclose(affine_transform([120.0, 60.0], m), [100.0, 100.0], atol=1e-3)


def test_transform_preds_maps_heatmap_to_image():
    c, s, hm = np.array([300.0, 200.0]), np.array([1.2, 1.6]), [48, 64]
    coords = np.array([[24.0, 32.0], [0.0, 0.0], [10.5, 50.25]])
    out = transform_preds(coords, c, s, 0.0, hm)
    # For r = 0: c + (x - W/2) * 200 * s_w / W, and the same factor on y.
    step = 200.0 * s[0] / hm[0]
    expected = c + (coords - np.array([hm[0] / 2, hm[1] / 2])) * step
    np.testing.assert_allclose(out, expected, atol=1e-3)
    # With a rotation it is the inverse of the forward affine.
    out_r = transform_preds(coords, c, s, 25.0, hm)
    fwd = get_affine_transform(c, s, 25.0, hm)
    back = np.stack([affine_transform(p, fwd) for p in out_r])
    np.testing.assert_allclose(back, coords, atol=1e-3)


def test_fliplr_joints_values_and_involution():
    joints = np.array([[10.0, 5.0, 0.0], [3.0, 7.0, 0.0], [20.0, 9.0, 0.0]])
    vis = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    width = 32
    j1, v1 = fliplr_joints(joints, vis, width, [[0, 1]])
    # x' = width - x - 1, pairs swapped, invisible joints zeroed.
    np.testing.assert_allclose(j1[0, :2], [width - 3 - 1, 7.0])
    np.testing.assert_allclose(j1[1, :2], [width - 10 - 1, 5.0])
    np.testing.assert_allclose(j1[2], 0.0)
    np.testing.assert_array_equal(v1, vis[[1, 0, 2]])
    j2, v2 = fliplr_joints(j1, v1, width, [[0, 1]])
    np.testing.assert_allclose(j2[:2], joints[:2])
    np.testing.assert_array_equal(v2, vis)
    # The inputs are not modified.
    assert joints[0, 0] == 10.0


def test_theta_round_trip():
    m = cv2.getRotationMatrix2D((15.0, 9.0), 23.0, 0.8)
    for align in (False, True):
        theta = cvt_MToTheta(m, 32, 24, align_corners=align)
        np.testing.assert_allclose(cvt_ThetaToM(theta, 32, 24, align_corners=align), m, atol=1e-12)
        inv = cvt_ThetaToM(theta, 32, 24, return_inv=True, align_corners=align)
        np.testing.assert_allclose(
            np.vstack([inv, [0, 0, 1]]) @ np.vstack([m, [0, 0, 1]]), np.eye(3), atol=1e-12
        )


def _smooth_image(h, w):
    yy, xx = np.mgrid[0:h, 0:w]
    img = (np.sin(xx / 3.0) + np.cos(yy / 4.0) + 0.05 * xx).astype(np.float32)
    return cv2.GaussianBlur(img, (5, 5), 0)


@pytest.mark.parametrize(
    "m",
    [
        cv2.getRotationMatrix2D((16.0, 12.0), 20.0, 0.8),
        cv2.getRotationMatrix2D((13.0, 14.0), -10.0, 1.3),
        np.array([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]]),
    ],
)
@pytest.mark.parametrize("align", [False, True])
def test_affine_grid_reproduces_warp_affine(m, align):
    h, w = 24, 32
    img = _smooth_image(h, w)
    ref = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    theta = torch.tensor(cvt_MToTheta(m, w, h, align_corners=align), dtype=torch.float32)[None]
    grid = F.affine_grid(theta, (1, 1, h, w), align_corners=align)
    out = F.grid_sample(torch.from_numpy(img)[None, None], grid, align_corners=align)[0, 0].numpy()
    # Compare where the whole bilinear footprint is inside the source (borders differ by design).
    inside = cv2.warpAffine(np.ones_like(img), m, (w, h), borderValue=0) > 0.999
    inside = cv2.erode(inside.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert inside.sum() > 200
    np.testing.assert_allclose(out[inside], ref[inside], atol=1e-3)
