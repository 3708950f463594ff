"""The MSRA (Gaussian) heatmap codec: targets, batched device targets, decoding and flip merging.

Encoding follows the original's ``JointsDataset.generate_target`` (spec §5.1 step 8), decoding
its ``lib/core/inference.py`` (``get_max_preds``, ``get_final_preds`` with the quarter-pixel
'shift' or the DARK Taylor step) and the flip test of ``lib/core/function.py`` (``flip_back`` plus
the one-pixel shift). Every numeric step is kept as it was, so targets and predictions are
bit-identical to the functions this module replaces.
"""

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from semipose.common.heatmaps import get_max_preds
from semipose.utils.transforms import transform_preds

__all__ = [
    "MSRAHeatmap",
    "build_codec",
    "gaussian_blur",
    "get_max_preds",
    "get_max_preds_tensor",
    "taylor",
]

TARGET_TYPES = ("gaussian",)
POST_TYPES = ("shift", "dark")
_PATCH_CACHE = {}


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


def _gaussian_patch(sigma):
    """The unnormalised Gaussian stamp of side ``2 * 3 * sigma + 1`` (float64, value 1 at its
    centre), cached per sigma and read-only."""
    key = float(sigma)
    patch = _PATCH_CACHE.get(key)
    if patch is None:
        size = 2 * (sigma * 3) + 1
        x = np.arange(0, size, 1, dtype=np.float64)
        y = x[:, None]
        x0 = y0 = size // 2
        patch = np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2))
        patch.setflags(write=False)
        _PATCH_CACHE[key] = patch
    return patch


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


def _shift_quarter(batch_heatmaps, coords):
    """The 'shift' refinement: with ``px = floor(x + 0.5)``, where ``1 < px < W - 1`` and
    ``1 < py < H - 1`` (strict), move x by ``0.25 * sign(h[py, px+1] - h[py, px-1])``, y likewise.
    Returns a new (N, K, 2) float32 array."""
    n, k, h, w = batch_heatmaps.shape
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
    return coords


def _flip_permutation(num_joints, flip_pairs):
    perm = list(range(num_joints))
    for a, b in flip_pairs:
        perm[a], perm[b] = b, a
    return perm


class MSRAHeatmap:
    """Gaussian heatmap targets and their decoding (SimpleBaseline's "MSRA" heatmaps).

    Stateless apart from a per-device cache of the float32 stamp; safe to share between datasets,
    DataLoader workers and the evaluator. Build it from a config with ``build_codec``.

    Args:
        image_size: network input ``(W, H)`` (the joints' pixel frame when encoding).
        heatmap_size: heatmap ``(w, h)``.
        sigma: Gaussian sigma in heatmap pixels (``MODEL.EXTRA.SIGMA``).
        target_type: only ``'gaussian'`` (``MODEL.EXTRA.TARGET_TYPE``).
        post_process: refine the integer argmax when decoding (``TEST.POST_PROCESS``).
        post_type: ``'shift'`` (quarter pixel towards the higher neighbour) or ``'dark'``
            (``TEST.POST_TYPE``).
        blur_kernel: DARK blur kernel (``TEST.BLUR_KERNEL``).
        shift_heatmap: the flip merge moves the mirrored heatmaps one pixel right; otherwise 0.75
            px with a bilinear grid (``TEST.SHIFT_HEATMAP``).

    Raises:
        ValueError: an unsupported ``target_type`` or ``post_type``.
    """

    def __init__(self, *, image_size=(192, 256), heatmap_size=(48, 64), sigma=2,
                 target_type="gaussian", post_process=True, post_type="shift", blur_kernel=11,
                 shift_heatmap=True):  # fmt: skip
        if target_type not in TARGET_TYPES:
            raise ValueError(f"only the 'gaussian' target type is supported, got {target_type!r}")
        if post_type not in POST_TYPES:
            raise ValueError(f"post_type must be 'shift' or 'dark', got {post_type!r}")
        self.image_size = np.array(image_size, dtype=np.int64)
        self.heatmap_size = np.array(heatmap_size, dtype=np.int64)
        self.sigma = sigma
        self.target_type = target_type
        self.post_process = bool(post_process)
        self.post_type = post_type
        self.blur_kernel = int(blur_kernel)
        self.shift_heatmap = bool(shift_heatmap)
        self._stamps = {}

    # ------------------------------------------------------------------ encoding (host)
    def stamp(self):
        """The (S, S) float64 Gaussian stamp, ``S = 6 * sigma + 1``, 1 at its centre (read-only)."""
        return _gaussian_patch(self.sigma)

    def windows(self, joints, joints_vis):
        """Where ``encode`` pastes each joint's stamp, and the joint weights.

        The joint centre on the heatmap is ``mu = int(x / stride + 0.5)``; the stamp covers
        ``ul = int(mu - 3 sigma)`` to ``br = int(mu + 3 sigma + 1)`` (end exclusive; ``int``
        truncates toward zero, as the original). A window lying completely outside the heatmap sets
        the joint's weight to 0.

        Args:
            joints: (K, >=2) joint coordinates in input-image pixels.
            joints_vis: (K, >=1) visibilities; column 0 is the weight.

        Returns:
            ``(window, target_weight)``: (K, 4) int64 ``[ul_x, ul_y, br_x, br_y]`` and (K, 1)
            float32.
        """
        joints = np.asarray(joints, dtype=np.float64)
        target_weight = np.asarray(joints_vis, dtype=np.float32)[:, :1].copy()
        hm_w, hm_h = int(self.heatmap_size[0]), int(self.heatmap_size[1])
        stride = self.image_size.astype(np.float64) / self.heatmap_size.astype(np.float64)
        tmp_size = self.sigma * 3
        # int() truncates toward zero, as the original's int(x / stride + 0.5).
        mu = np.trunc(joints[:, :2] / stride + 0.5)
        ul = np.trunc(mu - tmp_size).astype(np.int64)
        br = np.trunc(mu + tmp_size + 1).astype(np.int64)
        outside = (ul[:, 0] >= hm_w) | (ul[:, 1] >= hm_h) | (br[:, 0] < 0) | (br[:, 1] < 0)
        target_weight[outside, 0] = 0.0
        return np.concatenate([ul, br], axis=1), target_weight

    def encode(self, joints, joints_vis):
        """Gaussian heatmap targets and per-joint weights of one sample.

        The stamp of radius ``3 * sigma`` is pasted at each joint's window (``windows``), clipped to
        the heatmap, only for joints whose weight is > 0.5.

        Args:
            joints, joints_vis: as ``windows``.

        Returns:
            ``(target, target_weight)``: (K, h, w) float32 and (K, 1) float32 numpy arrays.
        """
        window, target_weight = self.windows(joints, joints_vis)
        hm_w, hm_h = int(self.heatmap_size[0]), int(self.heatmap_size[1])
        target = np.zeros((window.shape[0], hm_h, hm_w), dtype=np.float32)
        patch = self.stamp()
        for j in np.flatnonzero(target_weight[:, 0] > 0.5):
            x0, y0, x1, y1 = window[j]
            ix0, ix1 = max(0, x0), min(x1, hm_w)
            iy0, iy1 = max(0, y0), min(y1, hm_h)
            target[j, iy0:iy1, ix0:ix1] = patch[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
        return target, target_weight

    # ------------------------------------------------------------------ encoding (device, batch)
    def device_stamp(self, device):
        """The stamp as a float32 tensor on ``device`` (cached per device)."""
        device = torch.device(device)
        stamp = self._stamps.get(device)
        if stamp is None:
            stamp = torch.from_numpy(self.stamp().astype(np.float32)).to(device)
            self._stamps[device] = stamp
        return stamp

    def batch_encode(self, window, active):
        """``encode``'s targets for a whole batch, on the windows' device, from ``windows``.

        Each heatmap pixel inside a joint's window takes the float32 stamp's value at its offset,
        so the result equals ``encode``'s bit for bit.

        Args:
            window: (N, K, 4) integer tensor, ``windows``' ``[ul_x, ul_y, br_x, br_y]``.
            active: (N, K) bool tensor, joints whose stamp is drawn (weight > 0.5).

        Returns:
            (N, K, h, w) float32 tensor on ``window``'s device.
        """
        window = window.long()
        device = window.device
        stamp = self.device_stamp(device)
        hm_w, hm_h = int(self.heatmap_size[0]), int(self.heatmap_size[1])
        size = stamp.shape[0]
        xs = torch.arange(hm_w, device=device)
        ys = torch.arange(hm_h, device=device)
        ul_x, ul_y = window[..., 0:1], window[..., 1:2]
        in_x = (xs >= ul_x) & (xs < window[..., 2:3])  # (N, K, w)
        in_y = (ys >= ul_y) & (ys < window[..., 3:4])  # (N, K, h)
        ix = (xs - ul_x).clamp_(0, size - 1)
        iy = (ys - ul_y).clamp_(0, size - 1)
        values = stamp[iy.unsqueeze(-1), ix.unsqueeze(-2)]  # (N, K, h, w)
        mask = in_y.unsqueeze(-1) & in_x.unsqueeze(-2) & active[..., None, None]
        return torch.where(mask, values, torch.zeros((), dtype=values.dtype, device=device))

    # ------------------------------------------------------------------ decoding
    argmax = staticmethod(get_max_preds)
    argmax_tensor = staticmethod(get_max_preds_tensor)

    @staticmethod
    def peak_values(heatmaps):
        """(N, K) maximum of each (N, K, H, W) heatmap tensor (the argmax's value)."""
        return heatmaps.flatten(2).amax(2)

    def decode_heatmap_coords(self, batch_heatmaps):
        """Heatmap-frame joints: the argmax, refined as ``post_process``/``post_type`` say.

        Args:
            batch_heatmaps: (N, K, H, W) numpy heatmaps (left untouched).

        Returns:
            ``(coords, maxvals)``: (N, K, 2) float32 (x, y) heatmap pixels and (N, K, 1) maxima.
        """
        coords, maxvals = get_max_preds(batch_heatmaps)
        if self.post_process and self.post_type == "dark":
            hm = np.log(np.maximum(gaussian_blur(batch_heatmaps, self.blur_kernel), 1e-10))
            coords = _taylor_batch(hm, coords.astype(np.float64)).astype(np.float32)
        elif self.post_process:
            coords = _shift_quarter(batch_heatmaps, coords)
        return coords, maxvals

    def decode(self, batch_heatmaps, center, scale, rotation):
        """Joints in image coordinates: ``decode_heatmap_coords`` mapped through the inverse crop
        affine (``transform_preds``).

        Args:
            batch_heatmaps: (N, K, H, W) numpy heatmaps (left untouched).
            center: (N, 2) crop centres in image pixels.
            scale: (N, 2) crop scales (unit 200 px).
            rotation: (N,) crop rotations in degrees (a scalar is broadcast).

        Returns:
            ``(preds, maxvals)``: (N, K, 2) float32 image coordinates and (N, K, 1) heatmap maxima.
        """
        coords, maxvals = self.decode_heatmap_coords(batch_heatmaps)
        n, k, h, w = batch_heatmaps.shape
        center = np.asarray(center, dtype=np.float64).reshape(n, 2)
        scale = np.asarray(scale, dtype=np.float64).reshape(n, 2)
        rotation = np.broadcast_to(np.asarray(rotation, dtype=np.float64), (n,))
        preds = np.zeros((n, k, 2), dtype=np.float32)
        for i in range(n):
            preds[i] = transform_preds(coords[i], center[i], scale[i], rotation[i], [w, h])
        return preds, maxvals

    # ------------------------------------------------------------------ flip test
    @staticmethod
    def mirror(heatmaps, flip_pairs):
        """Mirrors (N, K, H, W) heatmaps along the width and swaps the paired channels.

        Args:
            heatmaps: a tensor or a numpy array.
            flip_pairs: ``[left, right]`` channel pairs.

        Returns:
            The same type as ``heatmaps`` (a new array / tensor).
        """
        if heatmaps.ndim != 4:
            raise ValueError("mirror expects (batch, joints, height, width) heatmaps")
        perm = _flip_permutation(heatmaps.shape[1], flip_pairs)
        if isinstance(heatmaps, np.ndarray):
            return heatmaps[:, :, :, ::-1][:, perm]
        return torch.flip(heatmaps, [3])[:, perm]

    def flip_back(self, flipped_outputs, flip_pairs):
        """The heatmaps of a mirrored input brought back to the input's frame.

        Each (N, K, H, W) tensor is ``mirror``-ed, then shifted: with ``shift_heatmap`` one pixel
        right (column 0 keeps its value, as the original); otherwise 0.75 px with a bilinear affine
        grid, as the original's other branch.

        Args:
            flipped_outputs: tuple of (N, K, H, W) tensors, one per network, predicted on the
                mirrored input.
            flip_pairs: ``[left, right]`` channel pairs.

        Returns:
            tuple of tensors in the same order.
        """
        result = []
        for out in flipped_outputs:
            out = self.mirror(out, flip_pairs)
            if self.shift_heatmap:
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

    def merge_flip(self, outputs, flipped_outputs, flip_pairs):
        """The flip test: ``(heatmap + flip_back(flipped)) * 0.5`` per network.

        Args:
            outputs: tuple of (N, K, H, W) tensors of the input.
            flipped_outputs: the same networks' tensors for the mirrored input.
            flip_pairs: ``[left, right]`` channel pairs.

        Returns:
            tuple of merged tensors.
        """
        back = self.flip_back(flipped_outputs, flip_pairs)
        return tuple((o + f) * 0.5 for o, f in zip(outputs, back))


def target_settings(cfg):
    """The config's target geometry (input and heatmap sizes, sigma, target type) as the codec's
    keyword arguments; the datasets pass the same values to theirs."""
    return {
        "image_size": tuple(int(v) for v in cfg.MODEL.IMAGE_SIZE),
        "heatmap_size": tuple(int(v) for v in cfg.MODEL.EXTRA.HEATMAP_SIZE),
        "sigma": cfg.MODEL.EXTRA.SIGMA,
        "target_type": cfg.MODEL.EXTRA.get("TARGET_TYPE", "gaussian"),
    }


def build_codec(cfg, **overrides):
    """The heatmap codec of a config (the only place that reads the codec's keys).

    Args:
        cfg: the config (``MODEL.IMAGE_SIZE``, ``MODEL.EXTRA.HEATMAP_SIZE``/``SIGMA``/
            ``TARGET_TYPE``, ``TEST.POST_PROCESS``/``POST_TYPE``/``BLUR_KERNEL``/``SHIFT_HEATMAP``).
        **overrides: ``MSRAHeatmap`` keyword arguments replacing the config's values.

    Returns:
        ``MSRAHeatmap``.
    """
    kwargs = {
        **target_settings(cfg),
        "post_process": cfg.TEST.POST_PROCESS,
        "post_type": cfg.TEST.POST_TYPE,
        "blur_kernel": cfg.TEST.BLUR_KERNEL,
        "shift_heatmap": cfg.TEST.SHIFT_HEATMAP,
    }
    kwargs.update(overrides)
    return MSRAHeatmap(**kwargs)
