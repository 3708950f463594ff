"""A user's own keypoint set: COCO-format json files + a metainfo file, and unlabeled image
folders, zip archives and videos, in the set's native joint order (no union layout).

``DATASET.TRAIN_DATASET custom`` / ``TEST_DATASET custom`` (docs/CUSTOM_DATA.md). The labeled sets
load through ``COCODataset`` (same annotation reading and checks); the unlabeled pool is
``UnlabeledDataset``, whose video frames are decoded on demand by seeking with
``cv2.VideoCapture`` and whose zip members are read on demand through
``semipose.utils.zipreader`` (nothing is extracted to disk); ``MixedCustomDataset`` pairs them as
``mix_coco_coco`` does.
"""

import copy
import logging
import os
import re
import zipfile
from collections import OrderedDict

import cv2
import numpy as np
from PIL import Image

from semipose.common.errors import DataFileError, UserError
from semipose.common.io import read_json
from semipose.dataset.coco import COCODataset
from semipose.dataset.joints_dataset import JointsDataset, make_record, native_joints
from semipose.dataset.mixed import MixedDataset, _rand_augment_view
from semipose.evaluation.coco import COCOKeypointEvaluator
from semipose.evaluation.pck import pck_scores
from semipose.utils import zipreader

__all__ = [
    "CustomDataset",
    "MixedCustomDataset",
    "UnlabeledDataset",
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "ZIP_EXTENSION",
    "resolve_path",
    "video_frames",
    "zip_image_members",
]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mov", ".mkv", ".webm")
ZIP_EXTENSION = ".zip"
# a detection file_name naming a zip member: <archive>.zip@/<member> or <archive>.zip/<member>
_ZIP_NAME = re.compile(r"^(.+?\.zip)(?:@/?|/)(.+)$", re.IGNORECASE)
_CAPTURES = {}  # (process id, video path) -> open cv2.VideoCapture


def resolve_path(root, path):
    """``path`` itself when absolute, else joined to ``root``."""
    path = str(path)
    return path if os.path.isabs(path) else os.path.join(str(root), path)


def use_metainfo(dataset, metainfo):
    """Puts ``dataset`` in the native layout of ``metainfo``: J channels, its flip pairs and
    half-body sets, every joint trained."""
    count = metainfo.num_joints
    dataset.metainfo = metainfo
    dataset.num_joints = count
    dataset.flip_pairs = [list(p) for p in metainfo.flip_pairs]
    dataset.upper_body_ids = tuple(metainfo.upper_body_ids)
    dataset.lower_body_ids = tuple(metainfo.lower_body_ids)
    dataset.labeled_joints = list(range(count))
    dataset.su = list(range(count))


class CustomDataset(COCODataset):
    """A COCO-format keypoint json in the native order of a metainfo file.

    The json holds ``images`` (``id``, ``file_name`` relative to ``root`` or absolute, ``width``,
    ``height``), ``annotations`` (``keypoints`` with J triples, ``bbox``, ``area``, ...) and one
    category. Evaluation is COCOeval with the metainfo's sigmas, or PCK.

    Args:
        root: data root (``DATASET.ROOT``).
        image_set: ``DATASET.TRAIN_SET`` / ``TEST_SET``; ``custom_<image_set>`` names the logs and
            result files (a name holding ``test`` or ``unlabeled`` means no ground truth).
        is_train: training mode.
        transform: see ``JointsDataset``.
        metainfo: the ``Metainfo`` of the set.
        ann_file: the json (relative to ``root`` or absolute).
        metric: ``'oks'`` or ``'pck'`` (``TEST.METRIC``).
        pck_threshold: PCK threshold as a fraction of the box's longer side.
        **kwargs: ``COCODataset`` arguments.
    """

    def __init__(self, root, image_set, is_train, transform=None, metainfo=None, ann_file="",
                 metric="oks", pck_threshold=0.2, images="", category="", **kwargs):  # fmt: skip
        if metainfo is None:
            raise UserError("a custom dataset needs DATASET.METAINFO (a metainfo YAML file)")
        if not ann_file:
            raise UserError(f"the custom set {image_set} needs its annotation json "
                            "(DATASET.TRAIN_ANN / DATASET.VAL_ANN)")
        self.actual_joints = metainfo.joints
        self._set_meta, self._category = metainfo, category
        self.metric = metric
        self.pck_threshold = float(pck_threshold)
        self._custom_ann = resolve_path(root, ann_file)
        # the split's image folder (DATASET.TRAIN_IMAGES / VAL_IMAGES): the bare file_names of a
        # labeling tool's export are looked up there
        self._images = resolve_path(root, images) if images else ""
        if not str(image_set).startswith("custom_"):
            image_set = f"custom_{image_set}"  # names results files; COCO's renaming stays off
        super().__init__(root, image_set, is_train, transform, **kwargs)
        use_metainfo(self, metainfo)

    def _get_ann_file_keypoint(self):
        return self._custom_ann

    def _map_to_union(self, db):
        """The records stay in the native order (no union layout)."""
        return db

    def _file_name(self, index, img):
        """The path of image ``index``: its ``file_name`` when absolute, else in the split's image
        folder (``images``), else (no folder given, or the name carries its folder and exists
        only there) under ``root``."""
        file_name = (img or {}).get("file_name")
        if not file_name:
            raise DataFileError(f"{self.ann_file}: image {index} has no file_name")
        if os.path.isabs(file_name):
            return file_name
        under_root = os.path.join(str(self.root), file_name)
        if not self._images:
            return under_root
        path = os.path.join(self._images, file_name)
        if os.path.basename(file_name) == file_name:  # a bare name: the folder's, no stat
            return path
        return path if os.path.exists(path) or not os.path.exists(under_root) else under_root

    def _image_dir(self):
        return self._images or str(self.root)

    def _keypoint_category(self, data):
        """The set's category, never by position: ``DATASET.CATEGORY`` (a name or an id) when set,
        else the one named as the metainfo, else the file's only category, else the only one with
        the metainfo's keypoint count.

        Raises:
            DataFileError: none (or no such ``DATASET.CATEGORY``); names the file and its
                categories.
        """
        cats = [c for c in (data.get("categories") or []) if isinstance(c, dict)]
        listing = ", ".join(f"{c.get('id')}: {c.get('name')!r}" for c in cats) or "none"
        want, meta = str(self._category or ""), self._set_meta
        if want:
            for c in cats:
                if want in (str(c.get("id")), str(c.get("name"))):
                    self._category_rule = f"DATASET.CATEGORY {want!r}"
                    return c.get("id")
            raise DataFileError(f"{self.ann_file}: no category {want!r} (DATASET.CATEGORY); "
                                f"categories in the file: {listing}")
        count = meta.num_joints
        named = [c for c in cats if c.get("name") == meta.name]
        for rule, found in (
            (f"named {meta.name!r} as the metainfo", named),
            ("the file's only category", cats if len(cats) == 1 else []),
            (f"the only one with {count} keypoints",
             [c for c in cats if len(c.get("keypoints") or []) == count]),
        ):
            if len(found) == 1:
                self._category_rule = rule
                return found[0].get("id")
        raise DataFileError(
            f"{self.ann_file}: which category holds the {meta.name!r} keypoints? categories in "
            f"the file: {listing}; none is named {meta.name!r} (the metainfo's name): set "
            "DATASET.CATEGORY to its name or id")

    def _listed_file(self, index, img, image_dir):
        """``_file_name`` is the whole path (under the root, the split's folder, or absolute):
        relative to ``image_dir`` for the missing-file check, whether the root is relative or
        absolute."""
        return os.path.relpath(self._file_name(index, img), image_dir)

    def _detection_categories(self):
        """Detections of this set's own category (the one its annotations use) or 1, as infer.py
        reads a detector's file."""
        return (self.person_cat_id, 1)

    def image_path_from_index(self, index):
        """Image path of id ``index`` (``_file_name``)."""
        path = self._file_name(index, self.coco.imgs.get(index))
        self.path_to_id[path] = index
        return path

    def evaluate(self, preds, output_dir, all_boxes, img_path, *args, prefix=None):
        """COCOeval keypoint AP with the metainfo's sigmas (``metric='oks'``), or PCK.

        Args:
            preds: (N, J, 3) x, y, score in image pixels.
            output_dir: results go to ``<output_dir>/results``.
            all_boxes: (N, >=6) centre, scale, area, score per prediction.
            img_path: N image paths.
            *args: ignored.
            prefix: results file suffix.

        Returns:
            ``(OrderedDict name -> value, headline)``: AP, or the mean PCK.
        """
        preds = np.asarray(preds)
        if self.metric == "pck":
            return self._evaluate_pck(preds)
        evaluator = COCOKeypointEvaluator(
            self.coco, self.image_set, oks_thre=self.oks_thre, in_vis_thre=self.in_vis_thre,
            save_result=self.save_result, has_ground_truth=True,
            sigmas=self.metainfo.oks_sigmas(), category_id=self.person_cat_id,
        )  # fmt: skip
        image_ids = [self.image_id_from_path(p) for p in img_path]
        return evaluator.evaluate(preds, image_ids, all_boxes, output_dir, prefix=prefix)

    def _evaluate_pck(self, preds):
        if len(preds) != len(self.db) or not self.use_gt_bbox:
            raise UserError(
                "TEST.METRIC 'pck' scores the GT boxes' predictions: set TEST.USE_GT_BBOX true "
                f"(got {len(preds)} predictions for {len(self.db)} labeled persons)"
            )
        gts = np.stack([rec["joints_3d"][:, :2] for rec in self.db])
        vis = np.stack([rec["joints_3d_vis"][:, 0] for rec in self.db])
        sizes = np.array([max(rec["raw_box"][2], rec["raw_box"][3]) for rec in self.db])
        per_joint, mean = pck_scores(preds[:, :, :2], gts, vis, sizes, self.pck_threshold)
        names = OrderedDict([("PCK", float(mean))])
        for name, value in zip(self.metainfo.keypoints, per_joint):
            names[f"PCK_{name}"] = float(value)
        return names, float(mean)


def video_frames(path, fps):
    """The frame indices sampled from a video at ``fps`` frames per second, and its size.

    Args:
        path: the video file.
        fps: frames per second to sample (<= 0: every frame).

    Returns:
        ``(indices, (width, height))``.

    Raises:
        DataFileError: the file cannot be opened or holds no frame.
    """
    cap = cv2.VideoCapture(path)
    try:
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
        rate = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    finally:
        cap.release()
    if count <= 0 or size[0] <= 0:
        raise DataFileError(f"unlabeled video {path} cannot be read (no frames)")
    step = 1 if fps <= 0 or rate <= 0 else max(1, int(round(rate / fps)))
    return list(range(0, count, step)), size


def read_video_frame(path, frame):
    """Frame ``frame`` of the video ``path`` as BGR uint8, by seeking (one open capture per video
    and process).

    Raises:
        DataFileError: naming the video and the frame when it cannot be decoded.
    """
    key = (os.getpid(), path)
    cap = _CAPTURES.get(key)
    if cap is None:
        cap = _CAPTURES[key] = cv2.VideoCapture(path)
    cap.set(cv2.CAP_PROP_POS_FRAMES, int(frame))
    ok, image = cap.read()
    if not ok or image is None:
        raise DataFileError(f"cannot decode frame {frame} of the video {path}")
    return image


def _image_files(folder):
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise DataFileError(f"unlabeled folder {folder} holds no image ({IMAGE_EXTENSIONS})")
    return [os.path.join(folder, n) for n in names]


def _zip_archive(archive):
    """The open ``zipfile.ZipFile`` of ``archive``, from ``zipreader``'s per-process cache (the
    handle that later reads its members, in this process or, reopened, in each DataLoader worker).

    Raises:
        UserError: the archive does not exist, or its path holds ``'@'`` (the separator of the
            ``<archive>@/<member>`` paths).
        DataFileError: it is not a readable zip archive.
    """
    if "@" in archive:
        raise UserError(f"unlabeled zip archive {archive}: the path must not hold '@' (members "
                        "are addressed as <archive>.zip@/<member>)")
    if not os.path.isfile(archive):
        raise UserError(f"unlabeled zip archive {archive} not found")
    try:
        return zipreader._archive(archive, archive)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise DataFileError(f"unlabeled zip archive {archive} cannot be read: {exc}") from None


def zip_image_members(archive):
    """The image members of a zip archive as ``<archive>@/<member>`` paths, sorted by member name.

    Members ending in one of ``IMAGE_EXTENSIONS`` (any case) count; directories, other files and
    the ``__MACOSX/`` resource forks of archives made on macOS do not. Nothing is decompressed.

    Raises:
        UserError: the archive is missing (see ``_zip_archive``).
        DataFileError: it is not a zip archive, or holds no image member.
    """
    handle = _zip_archive(archive)
    names = sorted(
        info.filename for info in handle.infolist()
        if not info.is_dir() and info.filename.lower().endswith(IMAGE_EXTENSIONS)
        and not info.filename.startswith("__MACOSX/")
    )  # fmt: skip
    if not names:
        raise DataFileError(f"unlabeled zip archive {archive} holds no image ({IMAGE_EXTENSIONS})")
    return [f"{archive}@/{name}" for name in names]


def _image_size(path, in_zip=False):
    """``(width, height)`` from the image header only (PIL opens lazily: no decode); ``in_zip``:
    ``path`` is ``<archive>@/<member>``, whose header is read from the member's stream."""
    try:
        if not in_zip:
            with Image.open(path) as img:
                return img.size
        archive, member = zipreader.parse_zip_path(path)
        with _zip_archive(archive).open(member) as stream, Image.open(stream) as img:
            return img.size
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise DataFileError(f"unlabeled image {path} cannot be read: {exc}") from None


class UnlabeledDataset(JointsDataset):
    """Unlabeled person crops from image folders, zip archives and videos (no keypoints).

    Each source is a folder (every image in it, sorted by name), a ``.zip`` archive (every image
    member, sorted by member name, directories skipped; see ``zip_image_members``) or a video file
    (frames sampled at ``video_fps``). Zip members and video frames are decoded when a batch needs
    them; the archives are opened once per process (``semipose.utils.zipreader``), so DataLoader
    workers each read through their own handle. ``boxes='frame'`` makes one record per image,
    member or frame with the whole image as the box (its size read from the image header); a
    detection json makes one record per detection: ``file_name`` an image path,
    ``<archive>.zip@/<member>`` (``<archive>.zip/<member>`` is read the same way) or
    ``<video>#<frame>``, relative to ``root`` or absolute; ``bbox`` [x, y, w, h]; ``score``.

    Args:
        root: data root; relative sources and detection file names are joined to it.
        sources: image folders, zip archives and video files.
        metainfo: the ``Metainfo`` of the set (joint count, flip pairs).
        is_train: training mode (augmentation).
        transform: see ``JointsDataset``.
        boxes: ``'frame'`` or a detection json path.
        video_fps: frames per second sampled from videos.
        image_thre: minimum detection score.
        **kwargs: ``JointsDataset`` arguments.
    """

    def __init__(self, root, sources, metainfo, is_train, transform=None, boxes="frame",
                 video_fps=1.0, image_thre=0.0, **kwargs):  # fmt: skip
        super().__init__(root, "custom_unlabeled", is_train, transform, **kwargs)
        use_metainfo(self, metainfo)
        if not sources:
            raise UserError("DATASET.UNLABELED is empty: name image folders, zip archives or "
                            "video files")
        self.sources = [resolve_path(root, s) for s in sources]
        self.video_fps = float(video_fps)
        self.image_thre = float(image_thre)
        if boxes in ("", "frame"):
            self.db = self._frame_records()
        else:
            self.db = self._detection_records(resolve_path(root, boxes))
        logger.info("=> unlabeled: %d records from %d source(s)", len(self.db), len(self.sources))

    def _record(self, image, box, score=1.0, video=None, in_zip=False):
        center, scale = self._box2cs(box)
        joints, vis = native_joints(self.num_joints)
        rec = make_record(image, center, scale, joints, vis, score=float(score),
                          raw_box=np.asarray(box, dtype=np.float32))  # fmt: skip
        if video is not None:
            rec["video"] = video
        if in_zip:
            rec["zip"] = True  # image is <archive>@/<member>
        return rec

    def _frame_records(self):
        records = []
        for source in self.sources:
            if os.path.isdir(source):
                for path in _image_files(source):
                    w, h = _image_size(path)
                    records.append(self._record(path, [0.0, 0.0, float(w), float(h)]))
            elif source.lower().endswith(ZIP_EXTENSION):
                for path in zip_image_members(source):
                    w, h = _image_size(path, in_zip=True)
                    records.append(self._record(path, [0.0, 0.0, float(w), float(h)],
                                                in_zip=True))  # fmt: skip
            elif source.lower().endswith(VIDEO_EXTENSIONS) and os.path.isfile(source):
                frames, (w, h) = video_frames(source, self.video_fps)
                for f in frames:
                    records.append(self._record(f"{source}#{f}", [0.0, 0.0, float(w), float(h)],
                                                video=(source, f)))  # fmt: skip
            else:
                raise UserError(f"DATASET.UNLABELED entry {source} is neither a folder, a zip "
                                f"archive nor a video file ({', '.join(VIDEO_EXTENSIONS)})")
        return records

    def _detection_records(self, path):
        dets = read_json(path, "unlabeled detection file (DATASET.UNLABELED_BOXES)")
        if not isinstance(dets, list):
            raise DataFileError(f"unlabeled detection file {path} must hold a JSON list")
        records = []
        for k, det in enumerate(dets):
            try:
                name, box, score = det["file_name"], [float(v) for v in det["bbox"][:4]], float(
                    det.get("score", 1.0))
            except (KeyError, TypeError, ValueError, IndexError):
                raise DataFileError(f"unlabeled detection file {path}: record {k} needs file_name "
                                    "and bbox [x, y, w, h]") from None
            if score < self.image_thre or box[2] <= 0 or box[3] <= 0:
                continue
            records.append(self._detection_record(str(name), box, score, f"{path}: record {k}"))
        return records

    def _detection_record(self, name, box, score, where):
        """The record of one detection on ``name``: a video frame (``<video>#<frame>``), a zip
        member (``<archive>.zip@/<member>`` or ``<archive>.zip/<member>``, the member checked to
        be in the archive) or an image file."""
        base, _, frame = name.rpartition("#")
        if base.lower().endswith(VIDEO_EXTENSIONS) and frame.isdigit():
            video = (resolve_path(self.root, base), int(frame))
            return self._record(f"{video[0]}#{video[1]}", box, score, video)
        match = _ZIP_NAME.match(name)
        archive = resolve_path(self.root, match.group(1)) if match else ""
        if not match or os.path.isdir(archive):  # a folder named *.zip holds plain files
            return self._record(resolve_path(self.root, name), box, score)
        member = match.group(2).lstrip("/")
        try:
            _zip_archive(archive).getinfo(member)
        except KeyError:
            raise DataFileError(f"unlabeled detection file {where} names {member!r}, which is "
                                f"not a member of the zip archive {archive}") from None
        return self._record(f"{archive}@/{member}", box, score, in_zip=True)

    def _load_source(self, rec, scale):
        """Video records decode their frame by seeking; zip members are read through
        ``zipreader`` whatever ``data_format`` says; images load as in ``JointsDataset``."""
        if rec.get("zip") and self.data_format != "zip":
            reader = copy.copy(self)  # the same settings (decode, crop cache) in zip format
            reader.data_format = "zip"
            return JointsDataset._load_source(reader, rec, scale)
        if "video" not in rec:
            return super()._load_source(rec, scale)
        pixels = read_video_frame(*rec["video"])
        if self.color_rgb:
            pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
        return pixels, None, (pixels.shape[1], pixels.shape[0])

    def evaluate(self, *args, **kwargs):
        """No ground truth: ``({'Null': 0}, 0)``."""
        return OrderedDict([("Null", 0)]), 0


class MixedCustomDataset(MixedDataset):
    """Labeled ``CustomDataset`` + ``UnlabeledDataset`` pairs (``mix_coco_coco``'s mixing).

    Args:
        root: data root.
        image_set: labeled image set name.
        is_train: training mode.
        transform: crop transform.
        metainfo: the set's ``Metainfo``.
        ann_file: the labeled json.
        unlabeled: image folders, zip archives and videos.
        unlabeled_boxes: ``'frame'`` or a detection json.
        video_fps: frames per second sampled from videos.
        train_len: labeled subset size (<= 0: all).
        raw_input: unlabeled crops without geometric augmentation.
        cons_rand_aug: add the RandAugment view.
        rand_magnitude: RandAugment M.
        seed: seed of the labeled-index generator.
        **kwargs: ``CustomDataset`` / ``JointsDataset`` arguments.
    """

    def __init__(self, root, image_set, is_train, transform=None, metainfo=None, ann_file="",
                 unlabeled=(), unlabeled_boxes="frame", video_fps=1.0, train_len=-1,
                 raw_input=False, cons_rand_aug=False, rand_magnitude=10, seed=1314,
                 **kwargs):  # fmt: skip
        joint_kw = {k: v for k, v in kwargs.items() if k in _JOINTS_KEYS}
        labeled = CustomDataset(root, image_set, is_train, transform, metainfo=metainfo,
                                ann_file=ann_file, train_len=train_len, **kwargs)  # fmt: skip
        pool = UnlabeledDataset(
            root, list(unlabeled), metainfo, is_train and not raw_input, transform,
            boxes=unlabeled_boxes, video_fps=video_fps,
            image_thre=kwargs.get("image_thre", 0.0), **joint_kw,
        )  # fmt: skip
        aug = _rand_augment_view(pool, is_train, transform, cons_rand_aug, rand_magnitude)
        super().__init__(labeled, pool, aug, seed=seed)


_JOINTS_KEYS = {
    "image_size", "heatmap_size", "sigma", "scale_factor", "rotation_factor", "flip", "color_rgb",
    "num_joints_half_body", "prob_half_body", "data_format", "target_type", "select_data",
    "reduced_decode", "crop_cache", "crop_cache_format", "device_warp",
}  # fmt: skip
