"""Base class of the top-down keypoint datasets: records, and the per-sample pipeline that crops,
augments and builds the heatmap targets (``semipose.dataset.transforms`` with the heatmap codec).

Ported from the original's lib/dataset/JointsDataset.py (MIT). The unused mask target and the bbox /
polygon warping of the original (spec §9.18) are dropped; everything else follows spec §5.1.
"""

import copy
import logging
import os

import cv2
import numpy as np
from torch.utils.data import Dataset

from semipose.codecs import MSRAHeatmap
from semipose.common.errors import DataFileError
from semipose.common.io import read_json
from semipose.dataset import transforms as T
from semipose.dataset.crop_cache import CropCache
from semipose.dataset.joints import (
    FLIP_PAIRS,
    LOWER_BODY_IDS,
    NUM_UNION_JOINTS,
    UPPER_BODY_IDS,
    do_mapping,
)
from semipose.utils import image_io

__all__ = [
    "JointsDataset",
    "make_record",
    "native_joints",
]

logger = logging.getLogger(__name__)

_READ_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION


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
        target_type: only ``'gaussian'`` (the ``codec``'s).
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
        codec: the ``semipose.codecs.MSRAHeatmap`` encoding the targets.
        pipeline: the per-sample transforms (``build_pipeline``, ``insert_transform``).
        fold_flip_into_affine: when True (default) the horizontal flip is folded into the crop
            affine instead of mirroring the whole image first (same crop up to bilinear rounding, no
            full-image copy); False mirrors the image as the original.
    """

    fold_flip_into_affine = True
    #: ``(where, class name, transform)`` entries added by ``insert_transform``
    extra_transforms = ()

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
        self.codec = MSRAHeatmap(image_size=image_size, heatmap_size=heatmap_size, sigma=sigma,
                                 target_type=target_type)  # fmt: skip
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
        """Centre and scale of a crop around the upper or the lower body's visible joints
        (``transforms.select_half_body``, one ``np.random.randn`` draw, then ``_half_body_box``).

        Args:
            joints: (24, 3) joints in image pixels.
            joints_vis: (24, 3) visibilities.

        Returns:
            ``(center (2,), scale (2,))`` float32, or ``(None, None)`` when fewer than 2 joints
            qualify.
        """
        return self._half_body_box(T.select_half_body(joints, joints_vis, self.upper_body_ids))

    def _half_body_box(self, selected):
        """``transforms.half_body_box`` with this dataset's aspect ratio."""
        return T.half_body_box(selected, self.aspect_ratio, self.pixel_std)

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
        if not db:
            raise DataFileError(f"{getattr(self, 'ann_file', self.root)}: 0 samples for "
                                f"{type(self).__name__} {self.image_set}; {self._empty_reason()}")
        if is_train and self.use_select_data:
            db = self.select_data(db)
        return db

    def _empty_reason(self):
        """Why a set gave no records (the end of the 0-samples error); subclasses say more."""
        return ("a record needs a person with at least one labeled joint inside a non-empty "
                "box (or a detection box above TEST.IMAGE_THRE)")

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
        """One cropped, augmented person: ``initial_sample`` run through ``pipeline``.

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
        sample = self.pipeline(self.initial_sample(idx, rot_angle, scale, flip))
        return sample["input"], sample["target"], sample["target_weight"], sample["meta"]

    def initial_sample(self, idx, rot_angle=None, scale=None, flip=None):
        """The sample dict the pipeline starts from (keys: ``semipose.dataset.transforms``)."""
        rec = self.db[idx]
        return {
            "record": rec,
            "joints": np.array(rec["joints_3d"], dtype=np.float64, copy=True),
            "joints_vis": np.array(rec["joints_3d_vis"], dtype=np.float64, copy=True),
            "center": np.array(rec["center"], dtype=np.float64, copy=True),
            "scale": np.array(rec["scale"], dtype=np.float64, copy=True),
            "score": rec.get("score", 1),
            "rotation": 0.0,
            "scale_ratio": 1.0,
            "flip": False,
            "force_scale": scale,
            "force_rotation": rot_angle,
            "force_flip": flip,
        }

    # ------------------------------------------------------------------ pipeline
    def build_pipeline(self):
        """The per-sample transforms of this dataset, in order (the one place that decides them).

        Training: ``RandomHalfBody`` (not for unlabeled sets), ``RandomScaleRotation``,
        ``RandomFlip``; always: ``LoadImage``, ``TopdownAffine``, ``ApplyTransform`` (when there
        is a ``transform`` and the crop is not deferred), ``GenerateTarget``, ``PackMeta``; then
        the transforms added with ``insert_transform``.

        Returns:
            ``transforms.Compose``.
        """
        steps = []
        if self.is_train:
            if "unlabel" not in self.image_set:
                steps.append(T.RandomHalfBody(self.num_joints_half_body, self.prob_half_body,
                                              self.upper_body_ids, self.aspect_ratio,
                                              self.pixel_std))  # fmt: skip
            steps.append(T.RandomScaleRotation(self.scale_factor, self.rotation_factor))
            steps.append(T.RandomFlip(self.flip))
        steps.append(T.LoadImage(self._load_source))
        steps.append(T.TopdownAffine(self.image_size, self.flip_pairs,
                                     self.fold_flip_into_affine, self.device_warp))  # fmt: skip
        if self.transform is not None and not self.device_warp:
            steps.append(T.ApplyTransform(self.transform))
        steps.append(T.GenerateTarget(self.codec, self.device_warp))
        steps.append(T.PackMeta())
        for anchor, name, transform in self.extra_transforms:
            names = [type(t).__name__ for t in steps]
            if name not in names:
                raise ValueError(f"insert_transform: no {name!r} in the pipeline {names}")
            steps.insert(names.index(name) + (anchor == "after"), transform)
        return T.Compose(steps)

    @property
    def pipeline(self):
        """The ``Compose`` of ``build_pipeline``, rebuilt when a setting it depends on changes
        (``is_train``, ``transform``, ``fold_flip_into_affine``, ``device_warp``, ``flip``, the
        jitter and half-body settings, ``extra_transforms``; copies build their own)."""
        key = (id(self), self.is_train, self.transform, self.fold_flip_into_affine,
               self.device_warp, self.flip, self.scale_factor, self.rotation_factor,
               self.prob_half_body, self.num_joints_half_body,
               self.extra_transforms)  # fmt: skip
        cached = self.__dict__.get("_pipeline_cache")
        if cached is None or cached[0] != key:
            cached = (key, self.build_pipeline())
            self.__dict__["_pipeline_cache"] = cached
        return cached[1]

    def insert_transform(self, transform, *, before=None, after=None):
        """Adds ``transform`` (a callable ``sample -> sample``) to this dataset's pipeline, right
        before or after the first transform of the class named ``before``/``after`` (e.g.
        ``after="TopdownAffine"``). Copies made afterwards (e.g. the mixed sets' views) keep it;
        earlier copies do not.

        Raises:
            ValueError: neither or both of ``before`` and ``after`` given; an unknown name is
                reported when the pipeline is next built.
        """
        if (before is None) == (after is None):
            raise ValueError("insert_transform needs exactly one of before= or after=")
        entry = ("before", before, transform) if before is not None else ("after", after, transform)
        self.extra_transforms = tuple(self.extra_transforms) + (entry,)
        self.build_pipeline()  # reports an unknown name now

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

