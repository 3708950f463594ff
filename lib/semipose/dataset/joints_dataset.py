"""Base class of the top-down keypoint datasets: crop, augment, and build Gaussian heatmap targets.

Ported from the original's lib/dataset/JointsDataset.py (MIT). The unused mask target and the bbox /
polygon warping of the original (spec §9.18) are dropped; everything else follows spec §5.1.
"""

import copy
import logging
import os
import random

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from semipose.common.errors import DataFileError
from semipose.common.io import read_json
from semipose.dataset.crop_cache import CropCache
from semipose.dataset.gpu_pipeline import DeferredCrop, DeferredTarget
from semipose.dataset.joints import (
    FLIP_PAIRS,
    LOWER_BODY_IDS,
    NUM_UNION_JOINTS,
    UPPER_BODY_IDS,
    do_mapping,
)
from semipose.utils import image_io
from semipose.utils.transforms import fliplr_joints, get_affine_transform

__all__ = [
    "JointsDataset",
    "generate_target",
    "gaussian_patch",
    "make_record",
    "native_joints",
    "target_windows",
]

logger = logging.getLogger(__name__)

_READ_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
_PLACEHOLDER_BOX = np.array([1.0, 1.0, 2.0, 2.0], dtype=np.float32)
_PATCH_CACHE = {}


def gaussian_patch(sigma):
    """The unnormalised Gaussian stamp of side ``2 * 3 * sigma + 1`` with value 1 at its centre.

    Args:
        sigma: standard deviation in heatmap pixels.

    Returns:
        (S, S) float64 array, ``S = len(np.arange(0, 6 * sigma + 1))``.
    """
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


def target_windows(joints, joints_vis, image_size, heatmap_size, sigma):
    """Where ``generate_target`` pastes each joint's stamp, and the joint weights.

    The joint centre on the heatmap is ``mu = int(x / stride + 0.5)``; the stamp covers
    ``ul = int(mu - 3 sigma)`` to ``br = int(mu + 3 sigma + 1)`` (end exclusive; ``int`` truncates
    toward zero, as the original). A window lying completely outside the heatmap sets the joint's
    weight to 0.

    Args:
        joints: (K, >=2) joint coordinates in input-image pixels.
        joints_vis: (K, >=1) visibilities; column 0 is the weight.
        image_size: input ``(W, H)``.
        heatmap_size: heatmap ``(w, h)``.
        sigma: Gaussian sigma in heatmap pixels.

    Returns:
        ``(window, target_weight)``: (K, 4) int64 ``[ul_x, ul_y, br_x, br_y]`` and (K, 1) float32.
    """
    joints = np.asarray(joints, dtype=np.float64)
    target_weight = np.asarray(joints_vis, dtype=np.float32)[:, :1].copy()
    hm_w, hm_h = int(heatmap_size[0]), int(heatmap_size[1])
    stride = np.asarray(image_size, dtype=np.float64) / np.asarray(heatmap_size, dtype=np.float64)
    tmp_size = sigma * 3
    # int() truncates toward zero, as the original's int(x / stride + 0.5).
    mu = np.trunc(joints[:, :2] / stride + 0.5)
    ul = np.trunc(mu - tmp_size).astype(np.int64)
    br = np.trunc(mu + tmp_size + 1).astype(np.int64)
    outside = (ul[:, 0] >= hm_w) | (ul[:, 1] >= hm_h) | (br[:, 0] < 0) | (br[:, 1] < 0)
    target_weight[outside, 0] = 0.0
    return np.concatenate([ul, br], axis=1), target_weight


def generate_target(joints, joints_vis, image_size, heatmap_size, sigma, target_type="gaussian"):
    """Gaussian heatmap targets and per-joint weights (spec §5.1 step 8).

    The stamp of radius ``3 * sigma`` (``gaussian_patch``) is pasted at each joint's window
    (``target_windows``), clipped to the heatmap, only for joints whose weight is > 0.5. A stamp
    lying completely outside the heatmap sets the joint's weight to 0.

    Args:
        joints, joints_vis, image_size, heatmap_size, sigma: as ``target_windows``.
        target_type: only ``'gaussian'``.

    Returns:
        ``(target, target_weight)``: (K, h, w) float32 and (K, 1) float32.
    """
    if target_type != "gaussian":
        raise ValueError(f"only the 'gaussian' target type is supported, got {target_type!r}")
    window, target_weight = target_windows(joints, joints_vis, image_size, heatmap_size, sigma)
    hm_w, hm_h = int(heatmap_size[0]), int(heatmap_size[1])
    target = np.zeros((window.shape[0], hm_h, hm_w), dtype=np.float32)
    patch = gaussian_patch(sigma)
    for j in np.flatnonzero(target_weight[:, 0] > 0.5):
        x0, y0, x1, y1 = window[j]
        ix0, ix1 = max(0, x0), min(x1, hm_w)
        iy0, iy1 = max(0, y0), min(y1, hm_h)
        target[j, iy0:iy1, ix0:ix1] = patch[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
    return target, target_weight


def native_joints(num_joints, xy=None, vis=None):
    """``joints_3d``, ``joints_3d_vis`` arrays of a record in native joint order.

    Args:
        num_joints: J, the dataset's native joint count.
        xy: (J, >=2) joint coordinates, or None (all zero: no labels).
        vis: (J,) visibility weights (0 or 1), or None (all zero).

    Returns:
        ``(joints_3d, joints_3d_vis)``, each (J, 3) float64: x, y, 0 and vis, vis, 0.
    """
    joints_3d = np.zeros((num_joints, 3), dtype=np.float64)
    joints_3d_vis = np.zeros((num_joints, 3), dtype=np.float64)
    if xy is not None:
        joints_3d[:, :2] = np.asarray(xy)[:, :2]
    if vis is not None:
        joints_3d_vis[:, 0] = vis
        joints_3d_vis[:, 1] = vis
    return joints_3d, joints_3d_vis


def make_record(image, center, scale, joints_3d, joints_3d_vis, **extra):
    """One person record of ``JointsDataset.db`` (``filename`` '' and ``imgnum`` 0, as the
    original), with ``extra`` fields (``score``, ``raw_box``, ``ann_id``) added."""
    rec = {
        "image": image,
        "center": center,
        "scale": scale,
        "joints_3d": joints_3d,
        "joints_3d_vis": joints_3d_vis,
        "filename": "",
        "imgnum": 0,
    }
    rec.update(extra)
    return rec


class JointsDataset(Dataset):
    """Top-down keypoint dataset: one item per person record in ``self.db`` (24 union joints).

    Subclasses fill ``self.db`` with records holding ``image`` (path), ``center`` (2,), ``scale``
    (2,) (unit 200 px), ``joints_3d`` (24, 3), ``joints_3d_vis`` (24, 3) and optionally
    ``filename``, ``imgnum``, ``score`` and ``raw_box`` (4,).

    Args:
        root: data root (holds ``coco/``, ``mpii/``, ``ai_challenger/``).
        image_set: image set name (e.g. ``'train2017'``).
        is_train: random augmentation on (scale, rotation, flip, half body).
        transform: applied to the warped BGR uint8 (H, W, 3) crop; when None, the crop itself is
            returned.
        image_size: network input ``(W, H)``.
        heatmap_size: target heatmap ``(w, h)``.
        sigma: Gaussian sigma of the targets (heatmap pixels).
        scale_factor: scale jitter ``sf``: ``clip(N(0,1) * sf + 1, 1 - sf, 1 + sf)``.
        rotation_factor: rotation jitter ``rf``: ``clip(N(0,1) * rf, -2 rf, 2 rf)`` degrees, with p
            0.6.
        flip: allow the random horizontal flip.
        color_rgb: convert the BGR image to RGB (False in every original experiment).
        num_joints_half_body: visible joints needed for the half-body crop.
        prob_half_body: probability of the half-body crop.
        data_format: ``'jpg'`` (files) or ``'zip'`` (``<archive>.zip@/<member>`` paths).
        target_type: only ``'gaussian'``.
        select_data: apply SimpleBaseline's record filter (``select_data``) while training.
        reduced_decode: decode a JPEG at 1/2, 1/4 or 1/8 resolution when the crop samples it at
            least that coarsely (the largest such reduction; the crop affine is scaled to match).
        crop_cache: folder of the person-crop cache (``semipose.dataset.crop_cache``); '' = off.
            Takes precedence over ``reduced_decode``.
        crop_cache_format: ``'raw'`` (exact pixels) or ``'jpg'`` (lossy, smaller).
        device_warp: return the crop and the targets unrendered (``DeferredCrop``,
            ``DeferredTarget``) for ``semipose.dataset.gpu_pipeline`` to render in batch on the
            step's device; ``transform`` is then not applied (the renderer normalises).

    Attributes:
        fold_flip_into_affine: when True (default) the horizontal flip is folded into the crop
            affine instead of mirroring the whole image first (same crop up to bilinear rounding, no
            full-image copy); False mirrors the image as the original.
    """

    fold_flip_into_affine = True

    def __init__(
        self,
        root,
        image_set,
        is_train,
        transform=None,
        image_size=(192, 256),
        heatmap_size=(48, 64),
        sigma=2,
        scale_factor=0.25,
        rotation_factor=30,
        flip=True,
        color_rgb=False,
        num_joints_half_body=8,
        prob_half_body=0.0,
        data_format="jpg",
        target_type="gaussian",
        select_data=False,
        reduced_decode=False,
        crop_cache="",
        crop_cache_format="raw",
        device_warp=False,
    ):
        if data_format not in ("jpg", "png", "zip"):
            raise ValueError(f"data_format must be 'jpg' or 'zip', got {data_format!r}")
        if target_type != "gaussian":
            raise ValueError(f"only the 'gaussian' target type is supported, got {target_type!r}")
        self.num_joints = NUM_UNION_JOINTS
        self.pixel_std = 200
        self.flip_pairs = [list(p) for p in FLIP_PAIRS]
        self.upper_body_ids = UPPER_BODY_IDS
        self.lower_body_ids = LOWER_BODY_IDS

        self.root = root
        self.image_set = image_set
        self.is_train = is_train
        self.transform = transform
        self.image_size = np.array(image_size, dtype=np.int64)
        self.heatmap_size = np.array(heatmap_size, dtype=np.int64)
        self.aspect_ratio = float(self.image_size[0]) / float(self.image_size[1])
        self.sigma = sigma
        self.scale_factor = scale_factor
        self.rotation_factor = rotation_factor
        self.flip = flip
        self.color_rgb = color_rgb
        self.num_joints_half_body = num_joints_half_body
        self.prob_half_body = prob_half_body
        self.data_format = data_format
        self.target_type = target_type
        self.use_select_data = select_data
        self.reduced_decode = bool(reduced_decode)
        self.crop_cache = CropCache(crop_cache, crop_cache_format) if crop_cache else None
        self.device_warp = bool(device_warp)
        self.read_flags = _READ_FLAGS
        self.db = []

    def __len__(self):
        return len(self.db)

    # ------------------------------------------------------------------ geometry helpers
    def _xywh2cs(self, x, y, w, h):
        """Box ``(x, y, w, h)`` -> float32 ``(center (2,), scale (2,))``, aspect-padded, x1.25."""
        center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float32)
        if w > self.aspect_ratio * h:
            h = w * 1.0 / self.aspect_ratio
        elif w < self.aspect_ratio * h:
            w = h * self.aspect_ratio
        scale = np.array([w * 1.0 / self.pixel_std, h * 1.0 / self.pixel_std], dtype=np.float32)
        if center[0] != -1:
            scale = scale * 1.25
        return center, scale

    def _box2cs(self, box):
        """``_xywh2cs`` on the first four entries of ``box``."""
        x, y, w, h = box[:4]
        return self._xywh2cs(x, y, w, h)

    def half_body_transform(self, joints, joints_vis):
        """Centre and scale of a crop around the upper or the lower body's visible joints.

        Upper is chosen when ``np.random.randn() < 0.5`` (a normal draw, inherited, spec §9.8) and
        more than 2 upper joints are visible; otherwise lower when more than 2 are visible, else
        upper.

        Args:
            joints: (24, 3) joints in image pixels.
            joints_vis: (24, 3) visibilities.

        Returns:
            ``(center (2,), scale (2,))`` float32, or ``(None, None)`` when fewer than 2 joints
            qualify.
        """
        visible = np.asarray(joints_vis)[:, 0] > 0
        ids = np.arange(self.num_joints)
        upper_mask = visible & np.isin(ids, self.upper_body_ids)
        lower_mask = visible & ~np.isin(ids, self.upper_body_ids)
        upper = np.asarray(joints)[upper_mask]
        lower = np.asarray(joints)[lower_mask]
        if np.random.randn() < 0.5 and len(upper) > 2:
            selected = upper
        else:
            selected = lower if len(lower) > 2 else upper
        return self._half_body_box(selected)

    def _half_body_box(self, selected):
        """Centre and 1.5x aspect-padded scale of the joints ``selected`` ((n, >=2)); ``(None,
        None)`` when fewer than 2."""
        if len(selected) < 2:
            return None, None
        selected = selected.astype(np.float32)
        center = selected.mean(axis=0)[:2]
        left_top = selected.min(axis=0)
        right_bottom = selected.max(axis=0)
        w = right_bottom[0] - left_top[0]
        h = right_bottom[1] - left_top[1]
        if w > self.aspect_ratio * h:
            h = w * 1.0 / self.aspect_ratio
        elif w < self.aspect_ratio * h:
            w = h * self.aspect_ratio
        scale = np.array([w * 1.0 / self.pixel_std, h * 1.0 / self.pixel_std], dtype=np.float32)
        return center, scale * 1.5

    def half_body_reachable(self):
        """True when a training item of this set can take the half-body crop."""
        return self.prob_half_body > 0 and "unlabel" not in self.image_set

    def crop_boxes(self, rec):
        """Every ``(center, scale)`` a crop of ``rec`` can start from before the scale and rotation
        jitter: the record's box and, when the half-body crop can apply, the upper- and lower-body
        boxes (used by the crop cache to cut each record's region)."""
        boxes = [(np.asarray(rec["center"], np.float64), np.asarray(rec["scale"], np.float64))]
        vis = np.asarray(rec["joints_3d_vis"])
        if self.half_body_reachable() and np.sum(vis[:, 0]) > self.num_joints_half_body:
            joints = np.asarray(rec["joints_3d"])
            visible = vis[:, 0] > 0
            upper_ids = np.isin(np.arange(self.num_joints), self.upper_body_ids)
            for mask in (visible & upper_ids, visible & ~upper_ids):
                c, s = self._half_body_box(joints[mask])
                if c is not None:
                    boxes.append((c.astype(np.float64), s.astype(np.float64)))
        return boxes

    def select_data(self, db):
        """SimpleBaseline's filter: keep records whose visible-joint mean is near the box centre.

        A record with no visible joint is dropped; otherwise ``ks = exp(-|mean - center|^2 /
        (2 * 0.2^2 * area))`` with ``area = s_w * s_h * 200^2`` must exceed ``0.45 + 0.2/16 * (n_vis
        - 1)``.

        Args:
            db: list of records (``joints_3d``, ``joints_3d_vis``, ``center``, ``scale``).

        Returns:
            The kept records (a new list).
        """
        kept = []
        for rec in db:
            vis = np.asarray(rec["joints_3d_vis"])[:, 0] > 0
            num_vis = int(vis.sum())
            if num_vis == 0:
                continue
            mean = np.asarray(rec["joints_3d"], dtype=np.float64)[vis, :2].mean(axis=0)
            area = rec["scale"][0] * rec["scale"][1] * (self.pixel_std**2)
            dist2 = float(np.sum((mean - np.asarray(rec["center"], dtype=np.float64)) ** 2))
            ks = np.exp(-1.0 * dist2 / ((0.2) ** 2 * 2.0 * area))
            metric = (0.2 / 16) * num_vis + 0.45 - 0.2 / 16
            if ks > metric:
                kept.append(rec)
        logger.info("=> num db: %d, selected db: %d", len(db), len(kept))
        return kept

    def _selected_db(self, is_train):
        """The ``_get_db()`` records, filtered by ``select_data`` when training with it enabled."""
        db = self._get_db()
        if is_train and self.use_select_data:
            db = self.select_data(db)
        return db

    def _load_annotation_json(self, what, expected):
        """Reads ``self.ann_file``; a missing file is a FileNotFoundError naming it and
        ``expected`` (the layout), an invalid one a ValueError naming it."""
        if not os.path.isfile(self.ann_file):
            raise FileNotFoundError(f"{what} not found: {self.ann_file}; expected {expected}")
        return read_json(self.ann_file, what)

    def _image_folder(self, *parts):
        """``<root>/<parts>/images``, or ``<root>/<parts>/images.zip@/images`` in zip mode."""
        if self.data_format == "zip":
            return os.path.join(self.root, *parts, "images.zip@", "images")
        return os.path.join(self.root, *parts, "images")

    def _map_to_union(self, db):
        """Maps every record's native joints to the union layout (``self.u2a_mapping``), in place.

        Returns:
            ``db``.
        """
        for rec in db:
            rec["joints_3d"], rec["joints_3d_vis"] = do_mapping(
                rec["joints_3d"], rec["joints_3d_vis"], self.u2a_mapping
            )
        return db

    # ------------------------------------------------------------------ item
    def read_image(self, path):
        """Reads the image at ``path`` as BGR (or RGB if ``color_rgb``) uint8 (H, W, 3).

        A truncated JPEG is decoded (the missing part gray) with one warning naming the file
        (``semipose.utils.image_io``).

        Raises:
            DataFileError: (a ValueError) naming ``path`` when the image cannot be read or decoded.
        """
        img = image_io.read_image(path, _READ_FLAGS, self.data_format)
        if self.color_rgb:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        return img

    def __getitem__(self, idx, rot_angle=None, scale=None, flip=None):
        """One cropped, augmented person (``_get_item``).

        In training, a record whose image cannot be read is skipped (the next readable record
        takes its place) with one warning per file naming it and the running count; in evaluation
        it is an error naming the file, since skipping would change the score.

        Raises:
            DataFileError: an unreadable image in evaluation, or no readable image at all.
        """
        if not self.is_train:
            return self._get_item(idx, rot_angle, scale, flip)
        n = len(self.db)
        for step in range(n):
            j = (idx + step) % n
            try:
                return self._get_item(j, rot_angle, scale, flip)
            except DataFileError as err:
                self._note_skipped(self.db[j]["image"], err)
        raise DataFileError(f"none of the {n} training records of {self.image_set} has a "
                            "readable image")

    def _note_skipped(self, path, err):
        skipped = getattr(self, "_skipped", None)
        if skipped is None:
            skipped = self._skipped = set()
        if path not in skipped:
            skipped.add(path)
            logger.warning(f"skipping an unreadable training image ({err}); {len(skipped)} "
                           "image(s) skipped so far in this process")

    def _get_item(self, idx, rot_angle=None, scale=None, flip=None):
        """One cropped, augmented person.

        Args:
            idx: record index.
            rot_angle: force this rotation (degrees) instead of drawing one (training only).
            scale: force this scale factor instead of drawing one (training only).
            flip: force the flip decision (training only; still requires ``self.flip``).

        Returns:
            ``(input, target, target_weight, meta)``: ``transform(crop)`` (a (3, H, W) tensor with
            the usual transform, or the (H, W, 3) uint8 crop when ``transform`` is None); target
            (24, h, w) float32; target_weight (24, 1) float32; meta dict with ``image`` (str),
            ``filename``, ``imgnum``, ``joints`` (24, 3) float32 in input pixels, ``joints_vis``
            (24, 3) float32, ``center`` (2,) float32, ``scale`` (2,) float32, ``scale_ratio``,
            ``rotation``, ``score`` (floats) and ``raw_box`` (4,) float32.
        """
        rec = self.db[idx]
        image_file = rec["image"]

        joints = np.array(rec["joints_3d"], dtype=np.float64, copy=True)
        joints_vis = np.array(rec["joints_3d_vis"], dtype=np.float64, copy=True)
        c = np.array(rec["center"], dtype=np.float64, copy=True)
        s = np.array(rec["scale"], dtype=np.float64, copy=True)
        score = rec.get("score", 1)
        r = 0.0
        scale_ratio = 1.0
        do_flip = False

        if self.is_train:
            if (
                "unlabel" not in self.image_set
                and np.sum(joints_vis[:, 0]) > self.num_joints_half_body
                and np.random.rand() < self.prob_half_body
            ):
                c_half, s_half = self.half_body_transform(joints, joints_vis)
                if c_half is not None:
                    c, s = c_half.astype(np.float64), s_half.astype(np.float64)

            sf = self.scale_factor
            rf = self.rotation_factor
            if scale is None:
                scale = np.clip(np.random.randn() * sf + 1, 1 - sf, 1 + sf)
            scale_ratio = float(scale)
            s = s * scale_ratio
            if rot_angle is None:
                r = (
                    np.clip(np.random.randn() * rf, -rf * 2, rf * 2)
                    if random.random() <= 0.6
                    else 0
                )
            else:
                r = rot_angle
            if flip is None:
                flip = random.random() <= 0.5
            do_flip = bool(self.flip and flip)
        r = float(r)

        # The source is read after the draws (reading consumes no random numbers): a reduced
        # decode depends on the drawn scale.
        data_numpy, to_full, (width, _) = self._load_source(rec, s)
        mirror = None
        if do_flip:
            joints, joints_vis = fliplr_joints(joints, joints_vis, width, self.flip_pairs)
            c[0] = width - c[0] - 1
            mirror = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])

        trans = get_affine_transform(c, s, r, self.image_size)
        warp = trans
        if to_full is not None:
            # A reduced decode or a cached region: sample it through trans (@ mirror) @ to_full.
            warp = trans @ (to_full if mirror is None else mirror @ to_full)
        elif mirror is not None:
            if self.fold_flip_into_affine:
                # Sampling the mirrored image through trans == sampling the image through trans @
                # mirror.
                warp = trans @ mirror
            else:
                data_numpy = np.ascontiguousarray(data_numpy[:, ::-1, :])
        out_size = (int(self.image_size[0]), int(self.image_size[1]))
        if self.device_warp:
            inp = DeferredCrop.from_warp(data_numpy, warp, out_size)
        else:
            crop = cv2.warpAffine(data_numpy, warp, out_size, flags=cv2.INTER_LINEAR)
            inp = self.transform(crop) if self.transform is not None else crop

        vis = joints_vis[:, 0] > 0
        joints[vis, :2] = joints[vis, :2] @ trans[:, :2].T + trans[:, 2]

        if self.device_warp:
            window, target_weight = target_windows(
                joints, joints_vis, self.image_size, self.heatmap_size, self.sigma
            )
            target = DeferredTarget(window.astype(np.int32), target_weight[:, 0] > 0.5)
        else:
            target, target_weight = generate_target(
                joints, joints_vis, self.image_size, self.heatmap_size, self.sigma,
                self.target_type,
            )
            target = _as_tensor(target)
        raw_box = rec.get("raw_box")
        raw_box = _PLACEHOLDER_BOX.copy() if raw_box is None else np.asarray(raw_box, np.float32)

        meta = {
            "image": image_file,
            "filename": rec.get("filename", ""),
            "imgnum": rec.get("imgnum", 0),
            "joints": joints.astype(np.float32),
            "joints_vis": joints_vis.astype(np.float32),
            "center": c.astype(np.float32),
            "scale": s.astype(np.float32),
            "scale_ratio": scale_ratio,
            "rotation": r,
            "score": float(score),
            "raw_box": raw_box[:4].copy(),
        }
        return inp, target, _as_tensor(target_weight), meta

    def _load_source(self, rec, scale):
        """The pixels an item samples, their map to full-image coordinates, and the image size.

        Args:
            rec: the record.
            scale: (2,) the crop's final scale (after the jitter).

        Returns:
            ``(pixels, to_full, (width, height))``: uint8 (h, w, 3) pixels (BGR, or RGB with
            ``color_rgb``); ``to_full`` the (3, 3) affine from pixel to full-resolution image
            coordinates, or None when ``pixels`` is the full image; the full image's size.
        """
        if self.crop_cache is not None:
            pixels, (x0, y0), size = self.crop_cache.load(self, rec)
            to_full = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
        elif self.reduced_decode:
            ratio = float(scale[0]) * self.pixel_std / float(self.image_size[0])
            pixels, f, size = image_io.read_image_reduced(
                rec["image"], ratio, self.read_flags, self.data_format
            )
            off = (f - 1) / 2.0
            to_full = np.array([[f, 0.0, off], [0.0, f, off], [0.0, 0.0, 1.0]]) if f > 1 else None
        else:
            pixels = image_io.read_image(rec["image"], self.read_flags, self.data_format)
            size, to_full = (pixels.shape[1], pixels.shape[0]), None
        if self.color_rgb:
            pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
        return pixels, to_full, size

    def copy_with_transform(self, transform):
        """A shallow copy sharing ``db`` (read-only) but using another ``transform``."""
        other = copy.copy(self)
        other.transform = transform
        return other


def _as_tensor(array):
    return torch.from_numpy(array)
