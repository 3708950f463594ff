"""Batch-level hard augmentations of the unlabeled view, and their registry.

The ops of the original (Joint Cutout, §6.8) and of its successors MultiAugs / SSPCM
(``spec/SUCCESSORS.md`` §1.3-1.4): Joint Cutout (``JC``), Joint Cut-Occlusion (``JO``, also called
SSCO), CutOut (``CO``), CutMix (``CM``), MixUp (``MU``) and the sequential compositions ``JOCO``
(JO then CO) and ``JCCM`` (JC then CM). Every op has one signature::

    op(images (N, C, H, W), joints (N, K, 2), generator=None) -> images (N, C, H, W)

where ``joints`` are (x, y) in input pixels (a teacher heatmap's argmax times the heatmap stride;
ops that are not joint-aware ignore them). An op never modifies its input. The geometry quirks that
shaped the published numbers are reproduced by default, each with a fix switch: JC's H/W clamp swap
(``fix_clamp``), JO's x/y transposition (``fix_transpose``), CO/CM's H/W swap in centre sampling and
clamping (``fix_hw``), and the joint pool (all K channels with replacement; ``joint_ids`` and
``replace=False`` draw among the trained channels without replacement).

Randomness: with ``generator=None`` the documented global RNGs, in the published draw order:
every op draws its torch numbers on the CPU global generator (then copies them to the image's
device, as the original and MultiAugs did) and its choices / MixUp's λ on numpy's global RNG; JC
draws jitter and sizes for every joint before its per-image joint choice (``mask_joint``). With an
explicit ``torch.Generator`` every draw comes from it (on its device), so the same seed gives the
same result.

Written for this project from the behaviour described in ``spec/SUCCESSORS.md``; ``mask_joint``
is ported from the original's lib/models/pose_dual.py (MIT).
"""

import logging

import numpy as np
import torch

from semipose.common.hard_aug import HardAugSettings, declare_setting

logger = logging.getLogger(__name__)

__all__ = [
    "HARD_AUGS",
    "COMPOSITES",
    "HardAugSettings",
    "HardAugment",
    "HardOp",
    "JointCutout",
    "JointCutOcclude",
    "CutOut",
    "CutMix",
    "MixUp",
    "box_mask",
    "build_hard_augment",
    "declare_setting",
    "expand_names",
    "host_to_device",
    "joint_cut_occlude",
    "mask_joint",
    "random_cutmix",
    "random_cutout",
    "random_mixup",
    "register_hard_aug",
]

# Half-sizes of every box: randint(10, 20), i.e. 10..19 px (the original's and MultiAugs').
HALF_LOW, HALF_HIGH = 10, 20
# Joint jitter: N(0, 1) * 10 px per coordinate.
JITTER_PX = 10


def host_to_device(array, device, dtype):
    """A numpy array as a tensor on ``device`` without stalling the host.

    On CUDA the array is copied into pinned memory and sent with ``non_blocking=True``, so drawing
    the hard view's random numbers on the host does not wait for the queued GPU work (a plain
    ``torch.as_tensor(..., device='cuda')`` from pageable memory synchronises). Elsewhere it is a
    plain conversion.
    """
    device = torch.device("cpu") if device is None else torch.device(device)
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if device.type == "cuda":
        return tensor.pin_memory().to(device=device, dtype=dtype, non_blocking=True)
    return tensor.to(device=device, dtype=dtype)


def _to(tensor, device):
    """``tensor`` on ``device``; a CPU tensor bound for CUDA goes through pinned memory."""
    device = torch.device(device)
    if tensor.device == device:
        return tensor
    if tensor.device.type == "cpu" and device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


class _Draws:
    """Random draws from ``generator`` (on its device) or from torch's CPU global generator."""

    def __init__(self, generator=None):
        self.generator = generator
        self.device = torch.device("cpu") if generator is None else generator.device

    def randn(self, *shape):
        return torch.randn(shape, generator=self.generator, device=self.device)

    def randint(self, low, high, shape):
        return torch.randint(low, high, shape, generator=self.generator, device=self.device)

    def randperm(self, n):
        return torch.randperm(n, generator=self.generator, device=self.device)

    def choice(self, pool, rows, num, replace):
        """(rows, num) int64 entries of ``pool`` (a 1-D numpy array), per row with or without
        replacement: numpy's global RNG without a generator, else the generator."""
        if self.generator is None:
            if replace:
                return torch.from_numpy(np.random.choice(pool, size=(rows, num)))
            picks = [np.random.choice(pool, num, replace=False) for _ in range(rows)]
            return torch.from_numpy(np.stack(picks).reshape(rows, num))
        pool_t = torch.as_tensor(pool, dtype=torch.long, device=self.device)
        if replace:
            return pool_t[self.randint(0, len(pool), (rows, num))]
        order = torch.rand(rows, len(pool), generator=self.generator, device=self.device)
        return pool_t[order.argsort(dim=1)[:, :num]]

    def beta(self, alpha):
        """One Beta(alpha, alpha) number (numpy's global RNG, or a numpy generator seeded from
        the torch generator)."""
        if self.generator is None:
            return float(np.random.beta(alpha, alpha))
        seed = int(self.randint(0, 2**62, (1,)).item())
        return float(np.random.default_rng(seed).beta(alpha, alpha))


def _joint_pool(num_channels, joint_ids, num, replace, who):
    """The channels joints are drawn from, as a numpy array; checks it can give ``num`` picks."""
    pool = np.arange(num_channels) if joint_ids is None else np.asarray(joint_ids, dtype=np.int64)
    if pool.size == 0:
        raise ValueError(f"{who}: joint_ids is empty")
    if not replace and num > pool.size:
        raise ValueError(
            f"{who}: cannot draw {num} joints without replacement from {pool.size} channels"
        )
    return pool


def box_mask(y0, y1, x0, x1, height, width):
    """Union of axis-aligned boxes, end-exclusive: rows [y0, y1) × columns [x0, x1).

    Bounds outside the image simply cover nothing there (like slicing).

    Args:
        y0, y1, x0, x1: (N, M) integer tensors, M boxes per image.
        height, width: H, W of the mask.

    Returns:
        (N, H, W) bool tensor, True where at least one box covers the pixel.
    """
    device = y0.device
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    in_y = (rows >= y0[..., None]) & (rows < y1[..., None])  # (N, M, H)
    in_x = (cols >= x0[..., None]) & (cols < x1[..., None])  # (N, M, W)
    # (N, H, M) @ (N, M, W): the number of boxes covering each pixel.
    return torch.bmm(in_y.transpose(1, 2).float(), in_x.float()) > 0


# ---------------------------------------------------------------------------- JC


def mask_joint(
    image,
    joints,
    num,
    *,
    fix_clamp=False,
    joint_ids=None,
    size_scale=1.0,
    replace=True,
    generator=None,
):
    """Zeroes boxes around ``num`` randomly chosen joints per image (the "joint cutout" of §6.8).

    The published draw structure: first a jitter of N(0, 1)·10 px per coordinate and a half-size
    pair from ``randint(10, 20)`` (10..19 px, per axis) for **every** joint of every image, then per
    image the choice of ``num`` joints (with replacement by default). Boxes belong to joints, so a
    joint picked twice zeroes one box, not two (about 4.6 distinct boxes per image at ``num`` 5
    among 24 channels). Each centre is jittered and truncated toward zero; the box ``[x-sx, x+sx) ×
    [y-sy, y+sy)`` is set to 0 on every channel (the ImageNet mean colour after normalisation).

    By default the original's clamp is reproduced: x is clamped to [0, H] and y to [0, W] (height
    and width swapped), so on a 256x192 crop boxes in the bottom rows shrink or vanish.
    ``fix_clamp=True`` clamps x to [0, W] and y to [0, H].

    Args:
        image: (N, C, H, W) tensor; not modified.
        joints: (N, K, 2) joint (x, y) in input pixels (e.g. heatmap argmax × 4), same device.
        num: joints picked per image (0 returns ``image`` itself).
        fix_clamp: use the intended clamp bounds.
        joint_ids: channels to pick from (e.g. the labeled dataset's trained joints); None = all K.
        size_scale: (ours) factor on the half-sizes and the centre jitter (1 = the original's
            pixels, tuned for a 192 px wide input; ``HardViewModel`` passes width / 192 with
            ``mask_joint_relative``). Half-sizes are rounded and at least 1 px.
        replace: pick the joints with replacement (the original); False needs ``num`` <= the pool.
        generator: a ``torch.Generator`` for every draw (on its device); None = the published
            streams: torch's CPU global RNG (``randn``, ``randint``; moved to the image's device as
            the original drew before ``.cuda()``), then numpy's, one ``choice`` call per image.

    Returns:
        (N, C, H, W) tensor with the boxes zeroed.
    """
    if num <= 0:
        return image
    n, _, h, w = image.shape
    k = joints.shape[1]
    device = image.device
    candidates = _joint_pool(k, joint_ids, num, replace, "mask_joint")
    draws = _Draws(generator)
    noise = _to(draws.randn(n, k, 2), device)
    half = _to(draws.randint(HALF_LOW, HALF_HIGH, (n, k, 2)), device)
    if generator is None:
        picks = [np.random.choice(candidates, num, replace=replace) for _ in range(n)]
        chosen = host_to_device(np.stack(picks).reshape(n, num), device, torch.long)
    else:
        chosen = _to(draws.choice(candidates, n, num, replace), device)
    # A joint picked twice is one box: mark the picked joints, then cut every marked joint's box.
    picked = torch.zeros(n, k, dtype=torch.bool, device=device)
    picked[torch.arange(n, device=device)[:, None], chosen] = True
    cover = _jc_cover(joints, noise, half, picked, size_scale, fix_clamp, (h, w))
    return image.masked_fill(cover.unsqueeze(1), 0)


def _jc_cover(joints, noise, half, picked, size_scale, fix_clamp, size):
    """(N, H, W) union of the picked joints' jittered, clamped cutout boxes."""
    h, w = size
    centres = (joints[..., :2].float() + noise * (JITTER_PX * size_scale)).long()  # (N, K, 2)
    if size_scale != 1.0:
        half = (half * size_scale).round().clamp_min(1).long()
    lo, hi = centres - half, centres + half
    x_max, y_max = (w, h) if fix_clamp else (h, w)
    x0, x1 = lo[..., 0].clamp(0, x_max), hi[..., 0].clamp(0, x_max)
    y0, y1 = lo[..., 1].clamp(0, y_max), hi[..., 1].clamp(0, y_max)
    # An unpicked joint's box is emptied (x1 = x0), so it covers nothing.
    x1 = torch.where(picked, x1, x0)
    return box_mask(y0, y1, x0, x1, h, w)


# ---------------------------------------------------------------------------- JO / SSCO


def _slice_stop(stop, size):
    """Python's treatment of a slice's stop index on an axis of ``size``: negative counts from the
    end, then clamped to [0, size]."""
    return torch.where(stop < 0, stop + size, stop).clamp(0, size)


def _jo_axis(centre, lo, hi, size, targets, partner, sources):
    """JO's box arithmetic on one axis for one pair per image, all results (N,).

    Args:
        centre, lo, hi: (N, K) unclamped centres and clamped box edges of every (image, joint).
        size: the axis length.
        targets: (N,) target joint per image; ``partner``, ``sources``: (N,) source image / joint.

    Returns:
        target start, target stop (clamped to [0, size-1]), target length, source start and
        source length (the trimmed source slice, normalised like a Python slice).
    """
    batch = torch.arange(centre.shape[0], device=centre.device)
    s_centre, s_lo, s_hi = centre[partner, sources], lo[partner, sources], hi[partner, sources]
    t_centre = centre[batch, targets]
    t_lo = (t_centre - (s_lo - s_centre).abs()).clamp(0, size - 1)
    t_hi = (t_centre + (s_hi - s_centre).abs()).clamp(0, size - 1)
    t_len = (t_hi - t_lo).clamp_min(0)
    offset = ((s_hi - s_lo).clamp_min(0) - t_len).abs()
    zero = torch.zeros_like(offset)
    start = (s_lo + torch.where(t_lo == 0, offset, zero)).clamp(0, size)
    stop = _slice_stop(s_hi - torch.where(t_hi == size - 1, offset, zero), size)
    return t_lo, t_hi, t_len, start, (stop - start).clamp_min(0)


def joint_cut_occlude(
    image,
    joints,
    num,
    *,
    fix_transpose=False,
    joint_ids=None,
    replace=True,
    jitter_px=JITTER_PX,
    size_scale=1.0,
    generator=None,
):
    """Joint Cut-Occlusion (JO, SSCO): patches around other images' joints pasted on this image's.

    Per image i: ``num`` target joints and ``num`` source joints, then one source image m (uniform
    over the batch, possibly i itself). For the k-th pair, the box around source joint (m, j') is
    pasted over the box around target joint (i, j), reading from a snapshot of the input (pastes
    never chain); later pairs overwrite earlier ones. The geometry is the published one
    (``spec/SUCCESSORS.md`` §1.3):

    - centres q = trunc(joint + N(0,1)·10) and half-sizes (h0, h1) in 10..19, per (image, joint);
    - the box has columns centre ± h_c clamped to [0, W-1] and rows centre ± h_r clamped to
      [0, H-1]. By default (the published transposition) the column centre is the joint's *y*
      with h_c = h1 and the row centre its *x* with h_r = h0, so the box sits at the joint
      mirrored across the diagonal; ``fix_transpose=True`` centres it on the joint (column = x
      with h0, row = y with h1);
    - the target box is centred on the target joint with the source box's extents (each side:
      |clamped source edge − source centre|), clamped the same way; slices are end-exclusive;
    - if the target starts at 0 (ends at the last index), the length difference is dropped from
      the start (end) of the source crop;
    - empty target: nothing; empty source crop or a length mismatch: the target box is zeroed;
      otherwise the target box is replaced by the source crop.

    Args:
        image: (N, C, H, W) tensor; not modified.
        joints: (N, K, 2) joint (x, y) in input pixels, same device.
        num: pairs per image (0 returns ``image`` itself).
        fix_transpose: centre the boxes on the joints.
        joint_ids: channels to draw both joints from; None = all K.
        replace: draw each image's joints with replacement (the published behaviour).
        jitter_px: standard deviation of the centre jitter in pixels (published: 10).
        size_scale: (ours) factor on the half-sizes and the jitter, applied after the draws
            (``HARD_AUG.RELATIVE``: input width / 192); half-sizes rounded, at least 1 px.
        generator: a ``torch.Generator`` for every draw; None = torch's CPU global RNG for jitter
            and sizes, then numpy's global RNG per image for (targets, sources, source image).

    Returns:
        (N, C, H, W) tensor.
    """
    if num <= 0:
        return image
    _, _, h, w = image.shape
    pool = _joint_pool(joints.shape[1], joint_ids, num, replace, "joint_cut_occlude")
    noise, half, pairs = _jo_draws(_Draws(generator), pool, joints.shape[1], num, replace, image)
    row_boxes, col_boxes = _jo_boxes(
        joints, noise, half, jitter_px * size_scale, size_scale, fix_transpose, (h, w)
    )
    return _jo_paste(image, pairs, row_boxes, col_boxes, num)


def _jo_boxes(joints, noise, half, jitter, size_scale, fix_transpose, size):
    """(centre, start, end) per (image, joint) on the row axis and on the column axis."""
    h, w = size
    if size_scale != 1.0:
        half = (half * size_scale).round().clamp_min(1).long()
    q = (joints[..., :2].float() + noise * jitter).long()  # truncated toward 0
    if fix_transpose:
        col_c, row_c, col_h, row_h = q[..., 0], q[..., 1], half[..., 0], half[..., 1]
    else:
        col_c, row_c, col_h, row_h = q[..., 1], q[..., 0], half[..., 1], half[..., 0]
    col0, col1 = (col_c - col_h).clamp(0, w - 1), (col_c + col_h).clamp(0, w - 1)
    row0, row1 = (row_c - row_h).clamp(0, h - 1), (row_c + row_h).clamp(0, h - 1)
    return (row_c, row0, row1), (col_c, col0, col1)


def _jo_draws(draws, pool, k_all, num, replace, image):
    """Draws jitter, half-sizes, then (targets, sources, partner), in the published order."""
    n, device = image.shape[0], image.device
    noise = _to(draws.randn(n, k_all, 2), device)
    half = _to(draws.randint(HALF_LOW, HALF_HIGH, (n, k_all, 2)), device)
    if draws.generator is None:
        targets, sources, partner = [], [], []
        for _ in range(n):
            if replace:
                targets.append(np.random.choice(pool, num))
                sources.append(np.random.choice(pool, num))
            else:
                targets.append(np.random.choice(pool, num, replace=False))
                sources.append(np.random.choice(pool, num, replace=False))
            partner.append(np.random.randint(0, n))
        targets = host_to_device(np.stack(targets), device, torch.long)
        sources = host_to_device(np.stack(sources), device, torch.long)
        partner = host_to_device(np.asarray(partner), device, torch.long)
    else:
        targets = _to(draws.choice(pool, n, num, replace), device)
        sources = _to(draws.choice(pool, n, num, replace), device)
        partner = _to(draws.randint(0, n, (n,)), device)
    return noise, half, (targets, sources, partner)


def _jo_paste(image, pairs, row_boxes, col_boxes, num):
    """Pastes the ``num`` source boxes over the target boxes, reading a snapshot of ``image``."""
    targets, sources, partner = pairs
    row_c, row0, row1 = row_boxes
    col_c, col0, col1 = col_boxes
    _, _, h, w = image.shape
    device = image.device
    out = image
    rows = torch.arange(h, device=device)
    cols = torch.arange(w, device=device)
    flat = image.flatten(2)  # the snapshot every paste reads: (N, C, H*W)
    for k in range(num):
        tj, sj = targets[:, k], sources[:, k]
        ty0, ty1, ty_len, sy0, sy_len = _jo_axis(row_c, row0, row1, h, tj, partner, sj)
        tx0, tx1, tx_len, sx0, sx_len = _jo_axis(col_c, col0, col1, w, tj, partner, sj)
        write = (ty_len > 0) & (tx_len > 0)  # an empty target box is a no-op
        paste = write & (sy_len == ty_len) & (sx_len == tx_len)  # else the box is zeroed
        inside = box_mask(ty0[:, None], ty1[:, None], tx0[:, None], tx1[:, None], h, w)
        inside &= write[:, None, None]
        src_rows = (rows - ty0[:, None] + sy0[:, None]).clamp(0, h - 1)  # (N, H)
        src_cols = (cols - tx0[:, None] + sx0[:, None]).clamp(0, w - 1)  # (N, W)
        index = (src_rows[:, :, None] * w + src_cols[:, None, :]).flatten(1)  # (N, H*W)
        source = flat[partner]  # (N, C, H*W)
        patch = source.gather(2, index[:, None, :].expand(-1, source.shape[1], -1)).view_as(out)
        patch = torch.where(paste[:, None, None, None], patch, torch.zeros_like(patch))
        out = torch.where(inside[:, None], patch, out)
    return out


# ---------------------------------------------------------------------------- CO / CM / MU


def _random_boxes(n, num, h, w, fix_hw, draws, device, size_scale=1.0):
    """CutOut/CutMix boxes (N, num): y0, y1, x0, x1, in MultiAugs' draw order (column centres,
    row centres, half-sizes); ``size_scale`` (ours) multiplies the drawn half-sizes (rounded, at
    least 1 px).

    Published (``fix_hw=False``): the column centre is drawn in [0, H) and the row centre in
    [0, W), columns are clamped to [0, H] and rows to [0, W] (H and W swapped). Fixed: columns in
    [0, W), rows in [0, H), clamped to W and H.
    """
    col_range, row_range = (w, h) if fix_hw else (h, w)
    col_c = _to(draws.randint(0, col_range, (n, num)), device)
    row_c = _to(draws.randint(0, row_range, (n, num)), device)
    half = _to(draws.randint(HALF_LOW, HALF_HIGH, (n, num, 2)), device)
    if size_scale != 1.0:
        half = (half * size_scale).round().clamp_min(1).long()
    x0 = (col_c - half[..., 0]).clamp(0, col_range)
    x1 = (col_c + half[..., 0]).clamp(0, col_range)
    y0 = (row_c - half[..., 1]).clamp(0, row_range)
    y1 = (row_c + half[..., 1]).clamp(0, row_range)
    return y0, y1, x0, x1


def random_cutout(image, num, *, fix_hw=False, size_scale=1.0, generator=None):
    """CutOut: ``num`` random boxes per image (half-sizes 10..19 px) set to 0 on every channel.

    Args:
        image: (N, C, H, W) tensor; not modified.
        num: boxes per image (0 returns ``image`` itself).
        fix_hw: sample and clamp the centres with the right H/W (the published code swaps them,
            so for H > W no box reaches the bottom H − W rows).
        size_scale: (ours) factor on the half-sizes (``HARD_AUG.RELATIVE``: width / 192).
        generator: a ``torch.Generator``; None = torch's CPU global RNG.

    Returns:
        (N, C, H, W) tensor.
    """
    if num <= 0:
        return image
    n, _, h, w = image.shape
    y0, y1, x0, x1 = _random_boxes(n, num, h, w, fix_hw, _Draws(generator), image.device,
                                   size_scale)
    return image.masked_fill(box_mask(y0, y1, x0, x1, h, w).unsqueeze(1), 0)


def random_cutmix(image, num, *, fix_hw=False, size_scale=1.0, generator=None):
    """CutMix: ``num`` random boxes per image replaced by the same boxes of a partner image.

    Boxes as in ``random_cutout``; then one permutation π of the batch (fixed points are no-ops):
    every box of image n takes the pixels of image π(n) (read before any paste). The arguments and
    the result are those of ``random_cutout``; ``image`` is not modified.
    """
    if num <= 0:
        return image
    n, _, h, w = image.shape
    draws = _Draws(generator)
    y0, y1, x0, x1 = _random_boxes(n, num, h, w, fix_hw, draws, image.device, size_scale)
    perm = _to(draws.randperm(n), image.device)
    inside = box_mask(y0, y1, x0, x1, h, w).unsqueeze(1)
    return torch.where(inside, image[perm], image)


def random_mixup(image, *, alpha=0.2, generator=None):
    """MixUp with a partner image: λ' x + (1 − λ') x[π], λ' = 1 − 0.25 λ, λ ~ Beta(α, α).

    One λ for the whole batch (numpy's global RNG, drawn first), then π = a random permutation
    (torch), as MultiAugs.

    Args:
        image: (N, C, H, W) tensor; not modified.
        alpha: the Beta parameter.
        generator: a ``torch.Generator``; None = the global RNGs.

    Returns:
        (N, C, H, W) tensor.
    """
    draws = _Draws(generator)
    lam = 1.0 - 0.25 * draws.beta(alpha)
    perm = _to(draws.randperm(image.shape[0]), image.device)
    return lam * image + (1.0 - lam) * image[perm]


# ---------------------------------------------------------------------------- op objects


def _width_scale(images, relative):
    """The box-size factor of an op: input width / 192 (the width the published pixel sizes are
    tuned for) when ``relative``, else 1."""
    return images.shape[-1] / 192 if relative else 1.0


class HardOp:
    """Base of the registered ops: ``op(images, joints, generator=None) -> images``.

    A subclass sets ``name`` (its registry name) and ``needs_joints`` (whether it reads the
    joints) and implements ``__call__``; a factory ``f(settings) -> op`` registered with
    ``register_hard_aug`` builds it from ``HardAugSettings``.
    """

    name = "?"
    needs_joints = False

    @property
    def steps(self):
        """The primitive ops, in order (one for a primitive)."""
        return (self,)

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class _JointBoxes(HardOp):
    """Base of the ops that place boxes at drawn joints: ``num`` boxes per image, drawn from
    ``joint_ids`` (None: all), with or without replacement, sizes scaled by ``relative``."""

    needs_joints = True
    fill = None  # the function: fill(images, joints, num, <fix_key>=..., joint_ids=..., ...)
    fix_key = None  # the name of the op's intended-behaviour switch

    def _boxes(self, num, joint_ids, replace, relative):
        self.num = num
        self.joint_ids = None if joint_ids is None else list(joint_ids)
        self.replace = replace
        self.relative = relative

    def __call__(self, images, joints, generator=None):
        return type(self).fill(images, joints, self.num, generator=generator,
                               joint_ids=self.joint_ids, replace=self.replace,
                               size_scale=_width_scale(images, self.relative),
                               **{self.fix_key: getattr(self, self.fix_key)})


class JointCutout(_JointBoxes):
    """``JC``: ``mask_joint`` with fixed settings (see there).

    Args:
        num: boxes per image (MASK_JOINT_NUM).
        fix_clamp: the intended H/W clamp (MASK_JOINT_FIX).
        joint_ids: channels to draw from; None = all.
        replace: joints drawn with replacement.
        relative: scale box sizes and jitter by input width / 192 (MASK_JOINT_RELATIVE).
    """

    name = "JC"
    fill = staticmethod(mask_joint)
    fix_key = "fix_clamp"

    def __init__(self, num, *, fix_clamp=False, joint_ids=None, replace=True, relative=False):
        self._boxes(num, joint_ids, replace, relative)
        self.fix_clamp = fix_clamp


class JointCutOcclude(_JointBoxes):
    """``JO`` / ``SSCO``: ``joint_cut_occlude`` with fixed settings (see there)."""

    name = "JO"
    fill = staticmethod(joint_cut_occlude)
    fix_key = "fix_transpose"

    def __init__(self, num, *, fix_transpose=False, joint_ids=None, replace=True,
                 relative=False):
        self._boxes(num, joint_ids, replace, relative)
        self.fix_transpose = fix_transpose


class _RandomHoles(HardOp):
    """A joint-free op of ``num`` random boxes: ``fill`` (``random_cutout`` or ``random_cutmix``)
    with fixed settings."""

    fill = None

    def __init__(self, num, *, fix_hw=False, relative=False):
        self.num = num
        self.fix_hw = fix_hw
        self.relative = relative

    def __call__(self, images, joints=None, generator=None):
        return type(self).fill(images, self.num, fix_hw=self.fix_hw,
                               size_scale=_width_scale(images, self.relative),
                               generator=generator)


class CutOut(_RandomHoles):
    """``CO``: ``random_cutout`` with fixed settings (joints ignored)."""

    name = "CO"
    fill = staticmethod(random_cutout)


class CutMix(_RandomHoles):
    """``CM``: ``random_cutmix`` with fixed settings (joints ignored)."""

    name = "CM"
    fill = staticmethod(random_cutmix)


class MixUp(HardOp):
    """``MU``: ``random_mixup`` (joints ignored)."""

    name = "MU"

    def __init__(self, alpha=0.2):
        self.alpha = alpha

    def __call__(self, images, joints=None, generator=None):
        return random_mixup(images, alpha=self.alpha, generator=generator)


class HardAugment:
    """A sequence of ops applied in order: ``aug(images, joints, generator=None) -> images``.

    Args:
        ops: registered op objects (composites are flattened into their primitives).
    """

    def __init__(self, ops):
        self.steps = tuple(step for op in ops for step in op.steps)

    @property
    def names(self):
        """The primitive names in order, e.g. ``('JO', 'CO')``."""
        return tuple(step.name for step in self.steps)

    @property
    def needs_joints(self):
        """Whether any step uses the joints."""
        return any(step.needs_joints for step in self.steps)

    def __bool__(self):
        return bool(self.steps)

    def __call__(self, images, joints, generator=None):
        for step in self.steps:
            images = step(images, joints, generator)
        return images

    def apply_interleaved(self, source, joints_list, generator=None):
        """One hard image per entry of ``joints_list``, all from ``source``, drawing each step for
        every image before the next step (MultiAugs' PoseDual order: JO₁, JO₂, CO₁, CO₂).

        Args:
            source: (N, C, H, W) tensor; not modified.
            joints_list: sequence of (N, K, 2) joints (None entries allowed if no step needs them).
            generator: see the ops.

        Returns:
            list of (N, C, H, W) tensors, one per ``joints_list`` entry.
        """
        images = [source] * len(joints_list)
        for step in self.steps:
            images = [step(x, j, generator) for x, j in zip(images, joints_list)]
        return images

    def __repr__(self):
        return f"HardAugment({list(self.steps)!r})"


# ---------------------------------------------------------------------------- registry


# HardAugSettings: every op setting, declared once in semipose.common.hard_aug


# name -> factory(HardAugSettings) -> op
HARD_AUGS = {}
# composite name -> primitive names (for documentation; the factories build them)
COMPOSITES = {"JOCO": ("JO", "CO"), "JCCM": ("JC", "CM")}


def register_hard_aug(*names):
    """Decorator registering an op factory ``f(settings) -> op`` under ``names``."""

    def wrap(factory):
        for name in names:
            if name in HARD_AUGS:
                raise KeyError(f"hard augmentation {name!r} registered twice")
            HARD_AUGS[name] = factory
        return factory

    return wrap


@register_hard_aug("JC")
def _build_jc(s):
    if s.mask_joint_num <= 0:
        raise ValueError("hard augmentation JC needs MASK_JOINT_NUM > 0")
    return JointCutout(s.mask_joint_num, fix_clamp=s.mask_joint_fix, joint_ids=s.jc_pool(),
                       replace=not s.joint_pool_fix, relative=s.mask_joint_relative)


@register_hard_aug("JO", "SSCO")
def _build_jo(s):
    if s.jo_joint_num <= 0:
        raise ValueError("hard augmentation JO needs HARD_AUG.JO_JOINT_NUM > 0")
    return JointCutOcclude(s.jo_joint_num, fix_transpose=s.jo_fix, joint_ids=s.jo_pool(),
                           replace=not s.joint_pool_fix, relative=s.box_relative)


@register_hard_aug("CO")
def _build_co(s):
    return CutOut(s.co_holes, fix_hw=s.hole_fix, relative=s.box_relative)


@register_hard_aug("CM")
def _build_cm(s):
    return CutMix(s.cm_holes, fix_hw=s.hole_fix, relative=s.box_relative)


@register_hard_aug("MU")
def _build_mu(s):
    return MixUp(s.mixup_alpha)


@register_hard_aug("JOCO")
def _build_joco(s):
    return HardAugment([_build_jo(s), _build_co(s)])


@register_hard_aug("JCCM")
def _build_jccm(s):
    holes = s.jccm_cm_holes or s.cm_holes
    return HardAugment([_build_jc(s), CutMix(holes, fix_hw=s.hole_fix, relative=s.box_relative)])


def expand_names(names):
    """Primitive names of a list of op names, composites expanded (e.g. JOCO -> JO, CO)."""
    out = []
    for name in names:
        if name not in HARD_AUGS:
            raise KeyError(f"unknown hard augmentation {name!r}; known: {sorted(HARD_AUGS)}")
        out.extend(COMPOSITES.get(name, ("JO",) if name == "SSCO" else (name,)))
    return tuple(out)


def build_hard_augment(names, settings=None):
    """The op sequence ``names`` (registry keys, applied in order) built from ``settings``.

    Args:
        names: e.g. ``['JC']``, ``['JOCO']``, ``['JO', 'CO', 'CM']``.
        settings: a ``HardAugSettings`` (defaults: the published counts, quirks reproduced).

    Returns:
        a ``HardAugment`` (empty, hence falsy, for no names).

    Raises:
        KeyError: an unknown name.
        ValueError: a joint op with a zero count, or a joint pool too small to draw from.
    """
    settings = HardAugSettings() if settings is None else settings
    if settings.joint_pool_fix and settings.trained_joints is None:
        logger.warning("joint_pool_fix without trained_joints: joints drawn from all channels")
    ops = []
    for name in names:
        if name not in HARD_AUGS:
            raise KeyError(f"unknown hard augmentation {name!r}; known: {sorted(HARD_AUGS)}")
        ops.append(HARD_AUGS[name](settings))
    return HardAugment(ops)
