"""Heatmap decoding: argmax, quarter-offset ('shift') or DARK refinement, the map back to the image.

Ported from the original's lib/core/inference.py (MIT). Names and argument order are the original's;
where the original read the config, ``get_final_preds`` takes explicit keyword arguments.
"""
import cv2
import numpy as np
import torch
import torch.nn.functional as F

from semipose.common.heatmaps import get_max_preds
from semipose.utils.transforms import transform_preds


def get_max_preds_tensor(batch_heatmaps):
    """Argmax of each heatmap on any device, without the maxval masking.

    Args:
        batch_heatmaps: (N, K, H, W) tensor.

    Returns:
        ``(preds, maxvals)``: (N, K, 2) float (x, y) and (N, K, 1), on the input's device.
    """
    n, k, _, w = batch_heatmaps.shape
    maxvals, idx = batch_heatmaps.reshape(n, k, -1).max(dim=2, keepdim=True)
    preds = torch.cat([idx % w, torch.div(idx, w, rounding_mode="floor")], dim=2).float()
    return preds, maxvals


def taylor(hm, coord):
    """One DARK Taylor step on a log-heatmap: ``coord - H^-1 grad`` around the integer peak.

    The step is taken only where ``1 < px < W - 2`` and ``1 < py < H - 2`` (with ``px = int(x)``)
    and the Hessian determinant is non-zero; otherwise the coordinate is returned unchanged.

    Args:
        hm: (H, W) log-heatmap.
        coord: (2,) peak (x, y).

    Returns:
        (2,) refined (x, y), a new array of ``coord``'s dtype (the input is not modified).
    """
    hm = np.asarray(hm)
    coord = np.asarray(coord)
    out = _taylor_batch(hm[None, None], coord[None, None].astype(np.float64))[0, 0]
    return out.astype(coord.dtype if np.issubdtype(coord.dtype, np.floating) else np.float64)


def _taylor_batch(hms, coords):
    """Vectorised ``taylor`` over (N, K, H, W) log-heatmaps and (N, K, 2) float64 peaks."""
    n, k, h, w = hms.shape
    hms = hms.astype(np.float64, copy=False)
    px = coords[..., 0].astype(np.int64)  # int() truncation, as the original
    py = coords[..., 1].astype(np.int64)
    valid = (px > 1) & (px < w - 2) & (py > 1) & (py < h - 2)
    # Clip the indices so that the gathers below stay in range; invalid entries are masked later.
    px = np.clip(px, 2, max(w - 3, 2))
    py = np.clip(py, 2, max(h - 3, 2))
    ni = np.arange(n)[:, None]
    ki = np.arange(k)[None, :]

    def at(dy, dx):
        return hms[ni, ki, np.clip(py + dy, 0, h - 1), np.clip(px + dx, 0, w - 1)]

    centre = at(0, 0)
    dx = 0.5 * (at(0, 1) - at(0, -1))
    dy = 0.5 * (at(1, 0) - at(-1, 0))
    dxx = 0.25 * (at(0, 2) - 2 * centre + at(0, -2))
    dyy = 0.25 * (at(2, 0) - 2 * centre + at(-2, 0))
    dxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
    det = dxx * dyy - dxy**2
    valid &= det != 0
    safe = np.where(valid, det, 1.0)
    # offset = -H^-1 grad with H = [[dxx, dxy], [dxy, dyy]].
    off_x = -(dyy * dx - dxy * dy) / safe
    off_y = -(dxx * dy - dxy * dx) / safe
    out = coords.copy()
    out[..., 0] += np.where(valid, off_x, 0.0)
    out[..., 1] += np.where(valid, off_y, 0.0)
    return out


def gaussian_blur(hm, kernel):
    """DARK's smoothing: zero-pad by ``(kernel - 1) // 2``, Gaussian blur, crop, restore the max.

    The blur is ``cv2.GaussianBlur(ksize=(kernel, kernel), sigma=0)`` (sigma from OpenCV's rule,
    2.0 for 11), written as a separable convolution so that it runs on all maps at once. Because the
    padding equals the kernel radius, the result equals the original's per-map ``cv2.GaussianBlur``
    call. Each map is then rescaled so that its maximum equals the original maximum (maps whose
    blurred maximum is 0 are left as blurred, where the original divided by zero).

    Args:
        hm: (N, K, H, W) heatmaps (not modified; the original blurred in place).
        kernel: odd kernel size.

    Returns:
        (N, K, H, W) float64 blurred heatmaps.
    """
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"gaussian_blur needs an odd positive kernel, got {kernel}")
    hm = np.asarray(hm, dtype=np.float64)
    n, k, h, w = hm.shape
    border = (kernel - 1) // 2
    weights = cv2.getGaussianKernel(kernel, 0, ktype=cv2.CV_64F).ravel()
    padded = np.zeros((n, k, h + 2 * border, w + 2 * border), dtype=np.float64)
    padded[:, :, border : border + h, border : border + w] = hm
    rows = np.zeros((n, k, h + 2 * border, w), dtype=np.float64)
    for t, wt in enumerate(weights):
        rows += wt * padded[:, :, :, t : t + w]
    out = np.zeros((n, k, h, w), dtype=np.float64)
    for t, wt in enumerate(weights):
        out += wt * rows[:, :, t : t + h, :]
    origin_max = hm.reshape(n, k, -1).max(axis=2)
    blurred_max = out.reshape(n, k, -1).max(axis=2)
    ratio = np.divide(
        origin_max, blurred_max, out=np.ones_like(origin_max), where=blurred_max != 0
    )
    return out * ratio[:, :, None, None]


def get_final_preds(
    batch_heatmaps,
    center,
    scale,
    rotation,
    hm_type="gaussian",
    *,
    post_process=True,
    post_type="shift",
    blur_kernel=11,
):
    """Decodes heatmaps into image coordinates (argmax, optional refinement, inverse crop affine).

    'shift' (the default everywhere): with ``px = floor(x + 0.5)``, where ``1 < px < W - 1`` and
    ``1 < py < H - 1`` (strict), move x by ``0.25 * sign(h[py, px+1] - h[py, px-1])`` and y
    likewise.
    'dark': blur (``gaussian_blur``), clamp at 1e-10, take the log, then one ``taylor`` step.

    Args:
        batch_heatmaps: (N, K, H, W) numpy heatmaps (left untouched).
        center: (N, 2) crop centres in image pixels.
        scale: (N, 2) crop scales (unit 200 px).
        rotation: (N,) crop rotations in degrees (a scalar is broadcast).
        hm_type: only 'gaussian'.
        post_process: refine the integer argmax (``TEST.POST_PROCESS``).
        post_type: 'shift' or 'dark' (``TEST.POST_TYPE``).
        blur_kernel: DARK blur kernel (``TEST.BLUR_KERNEL``).

    Returns:
        ``(preds, maxvals)``: (N, K, 2) float32 image coordinates and (N, K, 1) heatmap maxima.

    Raises:
        ValueError: an unsupported ``hm_type`` or ``post_type``.
    """
    if hm_type != "gaussian":
        raise ValueError(f"get_final_preds: only hm_type='gaussian' is supported, got {hm_type!r}")
    if post_type not in ("shift", "dark"):
        raise ValueError(f"get_final_preds: post_type must be 'shift' or 'dark', got {post_type!r}")
    coords, maxvals = get_max_preds(batch_heatmaps)
    n, k, h, w = batch_heatmaps.shape

    if post_process and post_type == "dark":
        hm = np.log(np.maximum(gaussian_blur(batch_heatmaps, blur_kernel), 1e-10))
        coords = _taylor_batch(hm, coords.astype(np.float64)).astype(np.float32)
    elif post_process:
        coords = coords.copy()
        px = np.floor(coords[..., 0] + 0.5).astype(np.int64)
        py = np.floor(coords[..., 1] + 0.5).astype(np.int64)
        valid = (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1)
        pxc = np.clip(px, 1, w - 2)
        pyc = np.clip(py, 1, h - 2)
        ni = np.arange(n)[:, None]
        ki = np.arange(k)[None, :]
        diff_x = batch_heatmaps[ni, ki, pyc, pxc + 1] - batch_heatmaps[ni, ki, pyc, pxc - 1]
        diff_y = batch_heatmaps[ni, ki, pyc + 1, pxc] - batch_heatmaps[ni, ki, pyc - 1, pxc]
        coords[..., 0] += np.where(valid, np.sign(diff_x) * 0.25, 0.0).astype(np.float32)
        coords[..., 1] += np.where(valid, np.sign(diff_y) * 0.25, 0.0).astype(np.float32)

    center = np.asarray(center, dtype=np.float64).reshape(n, 2)
    scale = np.asarray(scale, dtype=np.float64).reshape(n, 2)
    rotation = np.broadcast_to(np.asarray(rotation, dtype=np.float64), (n,))
    preds = np.zeros((n, k, 2), dtype=np.float32)
    for i in range(n):
        preds[i] = transform_preds(coords[i], center[i], scale[i], rotation[i], [w, h])
    return preds, maxvals


def _flip_permutation(num_joints, flip_pairs):
    perm = list(range(num_joints))
    for a, b in flip_pairs:
        perm[a], perm[b] = b, a
    return perm


def flip_test_heatmap(model_fn, input, flip_pairs, shift_heatmap=True):
    """Heatmaps of the mirrored input, mirrored back (the torch form of ``flip_back``).

    With ``shift_heatmap`` the result moves one pixel right (column 0 keeps its value, as the
    original); otherwise it moves 0.75 px with a bilinear affine grid, as the original's other
    branch.

    Args:
        model_fn: callable returning a tuple of (N, K, H, W) heatmaps for an input batch.
        input: (N, 3, H_in, W_in) batch.

    Returns:
        tuple of flipped-back heatmaps, one per network.
    """
    outs = model_fn(torch.flip(input, [3]))
    result = []
    for out in outs:
        perm = _flip_permutation(out.shape[1], flip_pairs)
        out = torch.flip(out, [3])[:, perm]
        if shift_heatmap:
            shifted = out.clone()
            shifted[:, :, :, 1:] = out[:, :, :, :-1]
            out = shifted
        else:
            w = out.shape[3]
            theta = out.new_tensor([[1.0, 0.0, -1.5 / w], [0.0, 1.0, 0.0]]).expand(
                out.shape[0], 2, 3
            )
            grid = F.affine_grid(theta, list(out.shape), align_corners=False)
            out = F.grid_sample(out, grid, align_corners=False)
        result.append(out)
    return tuple(result)
