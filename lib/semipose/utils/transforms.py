"""Geometry helpers: crop affines, flips, and OpenCV-matrix <-> ``affine_grid`` theta conversions.

Ported from the original's lib/utils/transforms.py (MIT). Names and argument order are the
original's.
"""
import cv2
import numpy as np

__all__ = [
    "fliplr_joints",
    "transform_preds",
    "get_affine_transform",
    "affine_transform",
    "get_3rd_point",
    "get_dir",
    "get_N",
    "get_N_inv",
    "cvt_MToTheta",
    "cvt_ThetaToM",
]


def fliplr_joints(joints, joints_vis, width, matched_parts):
    """Mirrors joints in an image ``width`` pixels wide (x' = width - x - 1) and swaps the pairs.

    Args:
        joints: (K, 3) joints.
        joints_vis: (K, 3) visibilities.
        width: image width in pixels.
        matched_parts: list of ``[left, right]`` pairs.

    Returns:
        ``(joints * joints_vis, joints_vis)``, both (K, 3).
    """
    joints = np.array(joints, copy=True)
    joints_vis = np.array(joints_vis, copy=True)
    joints[:, 0] = width - joints[:, 0] - 1
    for a, b in matched_parts:
        joints[[a, b]] = joints[[b, a]]
        joints_vis[[a, b]] = joints_vis[[b, a]]
    return joints * joints_vis, joints_vis


def transform_preds(coords, center, scale, rot, output_size):
    """Maps heatmap coordinates back to the image through the inverse crop affine.

    Args:
        coords: (K, >=2) heatmap coordinates (x, y first).
        center: (2,) crop centre in image pixels.
        scale: (2,) crop scale (unit 200 px).
        rot: rotation in degrees.
        output_size: heatmap ``[W, H]``.

    Returns:
        (K, 2) image coordinates.
    """
    coords = np.asarray(coords)
    trans = get_affine_transform(center, scale, rot, output_size, inv=1)
    pts = coords[:, 0:2].astype(np.float64)
    return pts @ trans[:, :2].T + trans[:, 2]


def get_affine_transform(center, scale, rot, output_size, shift=(0.0, 0.0), inv=0):
    """The 2x3 affine taking the crop (``center``, ``scale`` x 200 px, ``rot``) to ``output_size``.

    Equals ``cv2.getRotationMatrix2D(center, rot, out_w / (200 * scale[0]))`` plus a translation
    taking ``center`` to the output centre; only ``scale[0]`` sets the zoom. Built from three
    float32 point pairs with ``cv2.getAffineTransform`` as the original, so the precision is
    float32's.

    Args:
        center: (2,) crop centre (x, y) in image pixels.
        scale: (2,) scale, or a scalar used for both axes.
        rot: rotation in degrees (positive turns the content counter-clockwise).
        output_size: ``[W, H]`` of the output.
        shift: (2,) shift in units of the crop size.
        inv: if true, the inverse (output -> image) transform.

    Returns:
        (2, 3) float64 matrix.
    """
    if not isinstance(scale, (np.ndarray, list, tuple)):
        scale = np.array([scale, scale])
    scale_px = np.asarray(scale, dtype=np.float64) * 200.0
    center = np.asarray(center, dtype=np.float64)
    shift = np.asarray(shift, dtype=np.float64)
    dst_w, dst_h = float(output_size[0]), float(output_size[1])

    rot_rad = np.pi * rot / 180.0
    src_dir = get_dir([0.0, scale_px[0] * -0.5], rot_rad)
    dst_dir = np.array([0.0, dst_w * -0.5])

    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0] = center + scale_px * shift
    src[1] = center + src_dir + scale_px * shift
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = np.array([dst_w * 0.5, dst_h * 0.5]) + dst_dir
    src[2] = get_3rd_point(src[0], src[1])
    dst[2] = get_3rd_point(dst[0], dst[1])

    if inv:
        return cv2.getAffineTransform(dst, src)
    return cv2.getAffineTransform(src, dst)


def affine_transform(pt, t):
    """Applies a (2, 3) affine ``t`` to the point ``pt`` = (x, y); returns (2,)."""
    return np.asarray(t) @ np.array([pt[0], pt[1], 1.0])


def get_3rd_point(a, b):
    """The point ``b + rot90(a - b)`` (a third point completing a right angle at ``b``)."""
    d = np.asarray(a) - np.asarray(b)
    return np.asarray(b) + np.array([-d[1], d[0]], dtype=np.float32)


def get_dir(src_point, rot_rad):
    """Rotates the 2-vector ``src_point`` by ``rot_rad`` radians."""
    sn, cs = np.sin(rot_rad), np.cos(rot_rad)
    return np.array(
        [src_point[0] * cs - src_point[1] * sn, src_point[0] * sn + src_point[1] * cs]
    )


def get_N(W, H, align_corners=False):
    """The 3x3 matrix taking OpenCV pixel coordinates of a ``W``x``H`` image to ``[-1, 1]`` ones.

    With ``align_corners=False`` (PyTorch's default) -1 and 1 are the outer edges of the border
    pixels, so pixel centre ``x`` maps to ``(2x + 1) / W - 1``; with True they are the border pixel
    centres, ``2x / (W - 1) - 1``. (The original's ``[[2/W, 0, -1], ...]`` matched neither and put
    ``affine_grid`` half a pixel off for any scaled or rotated matrix; no original code path called
    it.)
    """
    if align_corners:
        sx, sy, tx, ty = 2.0 / (W - 1), 2.0 / (H - 1), -1.0, -1.0
    else:
        sx, sy, tx, ty = 2.0 / W, 2.0 / H, 1.0 / W - 1.0, 1.0 / H - 1.0
    return np.array([[sx, 0.0, tx], [0.0, sy, ty], [0.0, 0.0, 1.0]], dtype=np.float64)


def get_N_inv(W, H, align_corners=False):
    """The inverse of ``get_N``: normalised -> pixel coordinates."""
    return np.linalg.inv(get_N(W, H, align_corners))


def cvt_MToTheta(M, w, h, align_corners=False):
    """Converts an OpenCV (2, 3) source->destination pixel affine into an ``affine_grid`` theta.

    ``affine_grid`` samples the input at ``theta @ [p; 1]`` for each normalised output point ``p``,
    so theta is the inverse of ``M`` expressed in normalised coordinates. With the same
    ``align_corners`` in ``affine_grid``/``grid_sample``, the warp reproduces
    ``cv2.warpAffine(img, M, (w, h))``.
    """
    m = np.vstack([np.asarray(M, dtype=np.float64), [0.0, 0.0, 1.0]])
    n = get_N(w, h, align_corners)
    theta = np.linalg.inv(n @ m @ np.linalg.inv(n))
    return theta[:2, :]


def cvt_ThetaToM(theta, w, h, return_inv=False, align_corners=False):
    """Converts an ``affine_grid`` theta back into the OpenCV (2, 3) pixel affine (or its inverse).

    ``align_corners`` must match the one given to ``cvt_MToTheta``.
    """
    t = np.vstack([np.asarray(theta, dtype=np.float64), [0.0, 0.0, 1.0]])
    n = get_N(w, h, align_corners)
    m = np.linalg.inv(n) @ np.linalg.inv(t) @ n
    if return_inv:
        m = np.linalg.inv(m)
    return m[:2, :]
