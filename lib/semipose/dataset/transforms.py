"""The per-sample pipeline of the top-down datasets: small transforms over one sample dict.

``JointsDataset.build_pipeline`` composes the list (the only place that decides which transforms
run, from the dataset's settings, which ``dataset/build.py`` reads from the config); ``Compose``
runs it. In training the list is::

    RandomHalfBody -> RandomScaleRotation -> RandomFlip -> LoadImage -> TopdownAffine
    -> ApplyTransform -> GenerateTarget -> PackMeta

and in evaluation the three random transforms are left out. The random transforms draw from the
global ``np.random`` and ``random`` generators in exactly the original's order (half body:
``np.random.rand`` then ``np.random.randn``; scale ``np.random.randn``; rotation ``random.random``
then ``np.random.randn``; flip ``random.random``); the image is read after the draws (reading draws
nothing) because a reduced decode depends on the drawn scale.

The sample dict starts (``JointsDataset.initial_sample``) with ``record`` (the db record),
``joints``/``joints_vis`` (K, 3) float64 copies, ``center``/``scale`` (2,) float64 copies,
``score``, ``rotation`` 0.0, ``scale_ratio`` 1.0, ``flip`` False and the forced draws
``force_scale``/``force_rotation``/``force_flip`` (None: draw). A transform is any callable taking
and returning the dict; each class below names the keys it reads and writes. Add one to a dataset
with ``JointsDataset.insert_transform``.
"""

import random

import cv2
import numpy as np
import torch

from semipose.dataset.gpu_pipeline import DeferredCrop, DeferredTarget
from semipose.utils.transforms import fliplr_joints, get_affine_transform

__all__ = [
    "ApplyTransform",
    "Compose",
    "GenerateTarget",
    "LoadImage",
    "PackMeta",
    "RandomFlip",
    "RandomHalfBody",
    "RandomScaleRotation",
    "TopdownAffine",
    "half_body_box",
    "select_half_body",
]

_PLACEHOLDER_BOX = np.array([1.0, 1.0, 2.0, 2.0], dtype=np.float32)


class Compose:
    """Runs transforms in order on a sample dict.

    Args:
        transforms: callables ``sample -> sample``.
    """

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, sample):
        for t in self.transforms:
            sample = t(sample)
        return sample

    def names(self):
        """The class names of the transforms, in order."""
        return [type(t).__name__ for t in self.transforms]

    def __repr__(self):
        return f"Compose({', '.join(self.names())})"


def half_body_box(selected, aspect_ratio, pixel_std=200):
    """Centre and 1.5x aspect-padded scale of the joints ``selected`` ((n, >=2)).

    Returns:
        ``(center (2,), scale (2,))`` float32, or ``(None, None)`` when fewer than 2 joints.
    """
    if len(selected) < 2:
        return None, None
    selected = selected.astype(np.float32)
    center = selected.mean(axis=0)[:2]
    left_top = selected.min(axis=0)
    right_bottom = selected.max(axis=0)
    w = right_bottom[0] - left_top[0]
    h = right_bottom[1] - left_top[1]
    if w > aspect_ratio * h:
        h = w * 1.0 / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w * 1.0 / pixel_std, h * 1.0 / pixel_std], dtype=np.float32)
    return center, scale * 1.5


def select_half_body(joints, joints_vis, upper_body_ids):
    """The visible joints of the upper or the lower body (draws one ``np.random.randn``).

    Upper is chosen when ``np.random.randn() < 0.5`` (a normal draw, inherited, spec §9.8) and more
    than 2 upper joints are visible; otherwise lower when more than 2 are visible, else upper.

    Args:
        joints: (K, 3) joints in image pixels.
        joints_vis: (K, 3) visibilities.
        upper_body_ids: indices of the upper-body joints.

    Returns:
        (n, 3) the selected joints.
    """
    visible = np.asarray(joints_vis)[:, 0] > 0
    ids = np.arange(len(visible))
    upper_mask = visible & np.isin(ids, upper_body_ids)
    lower_mask = visible & ~np.isin(ids, upper_body_ids)
    upper = np.asarray(joints)[upper_mask]
    lower = np.asarray(joints)[lower_mask]
    if np.random.randn() < 0.5 and len(upper) > 2:
        return upper
    return lower if len(lower) > 2 else upper


class RandomHalfBody:
    """With probability ``prob``, crop around the upper or the lower body's visible joints.

    Only samples with more than ``num_joints_half_body`` visible joints qualify; for them one
    ``np.random.rand`` is drawn (even with ``prob`` 0), and when it is below ``prob`` one
    ``np.random.randn`` chooses the half (``select_half_body``).

    Reads ``joints``, ``joints_vis``, ``center``, ``scale``; writes ``center``, ``scale``.

    Args:
        num_joints_half_body: visible joints needed.
        prob: probability of the half-body crop.
        upper_body_ids: indices of the upper-body joints.
        aspect_ratio: crop ``W / H``.
        pixel_std: the scale unit (200 px).
    """

    def __init__(self, num_joints_half_body, prob, upper_body_ids, aspect_ratio, pixel_std=200):
        self.num_joints_half_body = num_joints_half_body
        self.prob = prob
        self.upper_body_ids = upper_body_ids
        self.aspect_ratio = aspect_ratio
        self.pixel_std = pixel_std

    def __call__(self, sample):
        joints, joints_vis = sample["joints"], sample["joints_vis"]
        if (
            np.sum(joints_vis[:, 0]) > self.num_joints_half_body
            and np.random.rand() < self.prob
        ):
            selected = select_half_body(joints, joints_vis, self.upper_body_ids)
            c_half, s_half = half_body_box(selected, self.aspect_ratio, self.pixel_std)
            if c_half is not None:
                sample["center"] = c_half.astype(np.float64)
                sample["scale"] = s_half.astype(np.float64)
        return sample


class RandomScaleRotation:
    """Scale jitter ``clip(N(0,1) * sf + 1, 1 - sf, 1 + sf)`` and, with p 0.6, a rotation
    ``clip(N(0,1) * rf, -2 rf, 2 rf)`` degrees (forced values are used instead of draws).

    Reads ``scale``, ``force_scale``, ``force_rotation``; writes ``scale`` (multiplied),
    ``scale_ratio``, ``rotation`` (float degrees).

    Args:
        scale_factor: ``sf``.
        rotation_factor: ``rf``.
    """

    def __init__(self, scale_factor, rotation_factor):
        self.scale_factor = scale_factor
        self.rotation_factor = rotation_factor

    def __call__(self, sample):
        sf, rf = self.scale_factor, self.rotation_factor
        scale = sample.get("force_scale")
        if scale is None:
            scale = np.clip(np.random.randn() * sf + 1, 1 - sf, 1 + sf)
        scale_ratio = float(scale)
        sample["scale_ratio"] = scale_ratio
        sample["scale"] = sample["scale"] * scale_ratio
        r = sample.get("force_rotation")
        if r is None:
            r = np.clip(np.random.randn() * rf, -rf * 2, rf * 2) if random.random() <= 0.6 else 0
        sample["rotation"] = float(r)
        return sample


class RandomFlip:
    """Decides the horizontal flip: one ``random.random() <= 0.5`` draw (always drawn unless
    forced, even when flipping is disabled). The mirror itself is applied by ``TopdownAffine``,
    which needs the image width.

    Reads ``force_flip``; writes ``flip``.

    Args:
        enabled: allow the flip (``DATASET.FLIP``).
    """

    def __init__(self, enabled=True):
        self.enabled = bool(enabled)

    def __call__(self, sample):
        flip = sample.get("force_flip")
        if flip is None:
            flip = random.random() <= 0.5
        sample["flip"] = bool(self.enabled and flip)
        return sample


class LoadImage:
    """Reads the pixels the crop samples (draws nothing).

    Reads ``record``, ``scale``; writes ``image`` (uint8 (h, w, 3)), ``to_full`` ((3, 3) affine
    from ``image`` pixels to full-image pixels, or None when ``image`` is the full image) and
    ``image_size`` (the full image's ``(width, height)``).

    Args:
        source: ``(record, scale) -> (pixels, to_full, (width, height))`` (the dataset's
            ``_load_source``: full decode, reduced decode or crop cache).
    """

    def __init__(self, source):
        self.source = source

    def __call__(self, sample):
        pixels, to_full, size = self.source(sample["record"], sample["scale"])
        sample["image"], sample["to_full"], sample["image_size"] = pixels, to_full, size
        return sample


class TopdownAffine:
    """Applies the flip, warps the crop and maps the visible joints into the crop.

    With ``flip`` the joints are mirrored in the full image (``fliplr_joints``) and the centre
    too; the pixels are mirrored by folding the mirror into the warp (``fold_flip``) or by copying
    the image mirrored (as the original). With ``defer`` the crop is not warped here but returned
    as a ``DeferredCrop`` for the device renderer.

    Reads ``image``, ``to_full``, ``image_size``, ``joints``, ``joints_vis``, ``center``,
    ``scale``, ``rotation``, ``flip``; writes ``joints``, ``joints_vis``, ``center``, ``trans``
    ((2, 3) full image -> crop), ``input`` (uint8 (H, W, 3) crop, or ``DeferredCrop``).

    Args:
        image_size: crop ``(W, H)``.
        flip_pairs: ``[left, right]`` joint pairs.
        fold_flip: fold the mirror into the affine instead of mirroring the image.
        defer: return a ``DeferredCrop``.
    """

    def __init__(self, image_size, flip_pairs, fold_flip=True, defer=False):
        self.image_size = image_size
        self.out_size = (int(image_size[0]), int(image_size[1]))
        self.flip_pairs = flip_pairs
        self.fold_flip = fold_flip
        self.defer = defer

    def _mirror(self, sample):
        width = sample["image_size"][0]
        sample["joints"], sample["joints_vis"] = fliplr_joints(
            sample["joints"], sample["joints_vis"], width, self.flip_pairs
        )
        sample["center"][0] = width - sample["center"][0] - 1
        return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])

    def __call__(self, sample):
        mirror = self._mirror(sample) if sample["flip"] else None
        pixels, to_full = sample["image"], sample["to_full"]
        trans = get_affine_transform(sample["center"], sample["scale"], sample["rotation"],
                                     self.image_size)  # fmt: skip
        warp = trans
        if to_full is not None:
            # A reduced decode or a cached region: sample it through trans (@ mirror) @ to_full.
            warp = trans @ (to_full if mirror is None else mirror @ to_full)
        elif mirror is not None:
            if self.fold_flip:
                # Sampling the mirrored image through trans == sampling the image through
                # trans @ mirror.
                warp = trans @ mirror
            else:
                pixels = np.ascontiguousarray(pixels[:, ::-1, :])
        if self.defer:
            sample["input"] = DeferredCrop.from_warp(pixels, warp, self.out_size)
        else:
            sample["input"] = cv2.warpAffine(pixels, warp, self.out_size, flags=cv2.INTER_LINEAR)
        joints, vis = sample["joints"], sample["joints_vis"][:, 0] > 0
        joints[vis, :2] = joints[vis, :2] @ trans[:, :2].T + trans[:, 2]
        sample["trans"] = trans
        return sample


class ApplyTransform:
    """Applies the image transform (e.g. ToTensor + Normalize, RandAugment in front) to the crop.

    Reads and writes ``input``.

    Args:
        transform: callable on the uint8 (H, W, 3) crop.
    """

    def __init__(self, transform):
        self.transform = transform

    def __call__(self, sample):
        sample["input"] = self.transform(sample["input"])
        return sample


class GenerateTarget:
    """Heatmap targets and joint weights from the crop-frame joints, with the heatmap codec.

    Reads ``joints``, ``joints_vis``; writes ``target`` ((K, h, w) float32 tensor, or a
    ``DeferredTarget`` with ``defer``) and ``target_weight`` ((K, 1) float32 tensor).

    Args:
        codec: a ``semipose.codecs.MSRAHeatmap``.
        defer: leave the targets for the device renderer (only the windows are computed).
    """

    def __init__(self, codec, defer=False):
        self.codec = codec
        self.defer = defer

    def __call__(self, sample):
        if self.defer:
            window, weight = self.codec.windows(sample["joints"], sample["joints_vis"])
            target = DeferredTarget(window.astype(np.int32), weight[:, 0] > 0.5)
        else:
            target, weight = self.codec.encode(sample["joints"], sample["joints_vis"])
            target = torch.from_numpy(target)
        sample["target"], sample["target_weight"] = target, torch.from_numpy(weight)
        return sample


class PackMeta:
    """The meta dict the loaders return.

    Reads ``record``, ``joints``, ``joints_vis``, ``center``, ``scale``, ``scale_ratio``,
    ``rotation``, ``score``; writes ``meta`` with ``image``, ``filename``, ``imgnum``, ``joints``
    and ``joints_vis`` (K, 3) float32, ``center`` and ``scale`` (2,) float32, ``scale_ratio``,
    ``rotation``, ``score`` (floats) and ``raw_box`` (4,) float32 (a placeholder box when the
    record has none).
    """

    def __call__(self, sample):
        rec = sample["record"]
        raw_box = rec.get("raw_box")
        raw_box = _PLACEHOLDER_BOX.copy() if raw_box is None else np.asarray(raw_box, np.float32)
        sample["meta"] = {
            "image": rec["image"],
            "filename": rec.get("filename", ""),
            "imgnum": rec.get("imgnum", 0),
            "joints": sample["joints"].astype(np.float32),
            "joints_vis": sample["joints_vis"].astype(np.float32),
            "center": sample["center"].astype(np.float32),
            "scale": sample["scale"].astype(np.float32),
            "scale_ratio": sample["scale_ratio"],
            "rotation": sample["rotation"],
            "score": float(sample["score"]),
            "raw_box": raw_box[:4].copy(),
        }
        return sample
