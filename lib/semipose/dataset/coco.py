"""COCO person keypoints: GT-box or detection-box person crops; ``evaluate`` calls the OKS AP
evaluator of ``semipose.evaluation.coco``.

Ported from the original's lib/dataset/coco.py (MIT); spec §5.2.
"""

import logging
import os

import json_tricks as json
import numpy as np

from semipose.common.detections import person_detection
from semipose.common.errors import DataFileError
from semipose.common.io import atomic_write_text, read_json
from semipose.dataset.annotations import (
    AREA_IN_FILE,
    check_coco,
    check_image_files,
    drop_images,
)
from semipose.dataset.joints import COCO_JOINTS, COCO_SIGMAS, COCO_SU, COCO_TRAINED, COCO_U2A
from semipose.dataset.joints_dataset import JointsDataset, make_record, native_joints
from semipose.evaluation.coco import STATS_NAMES, COCOKeypointEvaluator, as_coco, rescore

# STATS_NAMES, rescore and atomic_write_text are re-exported for code that imported them from here.
__all__ = ["COCODataset", "STATS_NAMES", "atomic_write_text", "has_ground_truth", "rescore"]

logger = logging.getLogger(__name__)

_EXPECTED_LAYOUT = (
    "<root>/coco/annotations/person_keypoints_{train2017,val2017}.json (image_info_<set>.json for "
    "test/unlabeled sets), images in <root>/coco/images/<set>/ or <root>/coco/images/<set>.zip"
)


def has_ground_truth(image_set):
    """False for the sets without labels (names containing ``test`` or ``unlabeled``)."""
    return not ("test" in image_set or "unlabeled" in image_set)


_DETECTION_FORMAT = (
    'a JSON list of person detections {"image_id": int, "category_id": 1, '
    '"bbox": [x, y, w, h], "score": float} (the COCO results format)'
)
_JSON_TYPES = {str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


def _short(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_detections(path):
    """Reads a person detection file (``TEST.COCO_BBOX_FILE``, ``DATASET.UNSUP_BBOX_FILE``).

    Args:
        path: the json file.

    Returns:
        The list of detection dicts, as stored.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DataFileError: the file is not JSON (e.g. truncated), or holds something other than a
            non-empty list; the message names the file and the expected format.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"person detection file not found: {path}")
    try:
        with open(path) as f:
            data = json.load(f)
    except ValueError as exc:  # json.JSONDecodeError, UnicodeDecodeError
        raise DataFileError(
            f"person detection file {path} is not valid JSON (truncated or damaged? {exc}); "
            f"expected {_DETECTION_FORMAT}"
        ) from exc
    if not isinstance(data, list):
        kind = "object" if isinstance(data, dict) else _JSON_TYPES.get(type(data), "value")
        raise DataFileError(
            f"person detection file {path} holds a JSON {kind}, not a list; "
            f"expected {_DETECTION_FORMAT}"
        )
    if not data:
        raise DataFileError(f"person detection file {path} holds no detections (an empty list)")
    return data


def _read_coco(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"COCO annotation file not found: {path}; expected {_EXPECTED_LAYOUT}"
        )
    data = read_json(path, "COCO annotation file")
    if isinstance(data, dict) and not data.get("categories"):
        raise DataFileError(f"COCO annotation file {path} has no 'categories'")
    return data


def _file_area(ann):
    """The area the annotation file gave (before a repair), 0 where it is not a number."""
    raw = ann[AREA_IN_FILE] if AREA_IN_FILE in ann else ann["area"]
    try:
        return float(raw)
    except (TypeError, ValueError):
        return 0.0


class COCODataset(JointsDataset):
    """COCO keypoints in the 24-joint union layout (17 joints filled).

    GT mode (training, or ``use_gt_bbox``, on sets with annotations) makes one record per non-crowd
    person with a valid box and at least one labeled keypoint; detection mode makes one record per
    person detection of ``bbox_file`` (``unsup_bbox_file`` for unlabeled sets).

    Args:
        root: data root holding ``coco/``.
        image_set: ``'train'`` -> ``train2017``, ``'val'``/``'validation'`` -> ``val2017``, else
            kept.
        is_train: training mode (augmentation, GT boxes, ``train_len`` subset).
        transform: see ``JointsDataset``.
        use_gt_bbox: evaluate on GT boxes instead of detections (``TEST.USE_GT_BBOX``).
        bbox_file: person detection json for the evaluation set (``TEST.COCO_BBOX_FILE``).
        unsup_bbox_file: person detection json for unlabeled sets (``''`` -> ``bbox_file``).
        image_thre: minimum detection score (``TEST.IMAGE_THRE``).
        oks_thre: OKS-NMS threshold of the evaluation (``TEST.OKS_THRE``).
        in_vis_thre: joint-score threshold of the rescoring (``TEST.IN_VIS_THRE``).
        save_result: write the results json and the COCOeval pickle (``TEST.SAVE_RESULT``).
        train_len: when training and > 0, keep only the first ``train_len`` person records in file
            order.
        pseudo_anno: when training, read this annotation file instead of the standard one.
        **kwargs: ``JointsDataset`` arguments (image_size, heatmap_size, sigma, ...).
    """

    actual_joints = COCO_JOINTS
    labeled_joints = list(COCO_TRAINED)
    su = list(COCO_SU)

    def __init__(
        self,
        root,
        image_set,
        is_train,
        transform=None,
        use_gt_bbox=False,
        bbox_file="",
        unsup_bbox_file="",
        image_thre=0.0,
        oks_thre=0.5,
        in_vis_thre=0.0,
        save_result=True,
        train_len=-1,
        pseudo_anno=None,
        **kwargs,
    ):
        if image_set == "train":
            image_set = "train2017"
        elif image_set in ("val", "validation"):
            image_set = "val2017"
        super().__init__(root, image_set, is_train, transform, **kwargs)
        self.use_gt_bbox = use_gt_bbox
        self.bbox_file = bbox_file
        self.unsup_bbox_file = unsup_bbox_file
        self.image_thre = image_thre
        self.oks_thre = oks_thre
        self.in_vis_thre = in_vis_thre
        self.save_result = save_result
        self.pseudo_anno = pseudo_anno if is_train else None
        self.u2a_mapping = COCO_U2A

        self.ann_file = self._get_ann_file_keypoint()
        self.coco = self._load_checked(is_train)
        self._set_classes()
        self.image_set_index = [img["id"] for img in self.coco.dataset.get("images", [])]
        self.num_images = len(self.image_set_index)
        self.path_to_id = {}

        db = self._selected_db(is_train)
        if is_train and train_len is not None and train_len > 0:
            db = db[:train_len]
            if db:
                logger.info(
                    "=> labeled subset: first %d records, %s ... %s",
                    len(db),
                    db[0]["image"],
                    db[-1]["image"],
                )
        self.db = self._map_to_union(db)
        logger.info("=> %s: %d images, %d samples", self.image_set, self.num_images, len(self.db))

    #: how ``_keypoint_category`` chose (named in the 0-samples message)
    _category_rule = "the first"

    def _keypoint_category(self, data):
        """The id of the category whose annotations become records: the file's first, as the
        original reads COCO."""
        cats = data.get("categories") if isinstance(data, dict) else None
        first = cats[0] if cats else None
        return first.get("id") if isinstance(first, dict) else None

    def _set_classes(self):
        """Sets the class tables and the person category id from the loaded annotations (the
        keypoint category is class 1)."""
        cat_ids = self.coco.getCatIds()
        chosen = getattr(self, "_category_id", None)
        if chosen in cat_ids:
            cat_ids = [chosen] + [c for c in cat_ids if c != chosen]
        cats = [c["name"] for c in self.coco.loadCats(cat_ids)]
        self.classes = ["__background__"] + cats
        self.num_classes = len(self.classes)
        self._class_to_ind = dict(zip(self.classes, range(self.num_classes)))
        self._class_to_coco_ind = dict(zip(cats, cat_ids))
        self._coco_ind_to_class_ind = {
            self._class_to_coco_ind[c]: self._class_to_ind[c] for c in cats
        }
        # Class index 1 (COCO: the first category, as in the original) is the person class.
        self.person_cat_id = cat_ids[0]

    def _detection_categories(self):
        """The ``category_id`` values of the detections this set reads (1, COCO's person, as the
        original)."""
        return (1,)

    def _empty_reason(self):
        data = self.coco.dataset
        cats = [f"{c.get('id')}: {c.get('name')!r}" for c in data.get("categories", [])]
        n_ann = sum(1 for a in data.get("annotations", []) if a.get("category_id") ==
                    self.person_cat_id)
        source = ("the detection boxes of " + str(self.bbox_file)) if (
            not self.is_train and not self.use_gt_bbox) else "the annotations"
        return (f"{len(self.image_set_index)} images, {n_ann} annotations of category "
                f"{self.person_cat_id} ({self._category_rule}; categories in the file: "
                f"{', '.join(cats)}); "
                f"records come from {source} and need area > 0, a non-empty box and at least one "
                "labeled joint (detections: a score above TEST.IMAGE_THRE)")

    # ------------------------------------------------------------------ paths
    def _get_ann_file_keypoint(self):
        if self.pseudo_anno:
            return self.pseudo_anno
        prefix = "person_keypoints" if has_ground_truth(self.image_set) else "image_info"
        return os.path.join(self.root, "coco", "annotations", f"{prefix}_{self.image_set}.json")

    def _load_checked(self, is_train):
        """Reads the annotation file, applies the checks of ``semipose.dataset.annotations``
        (repairs logged, refusals raised) and indexes the result: training, the GT-box records
        and ``COCOeval`` all see the repaired annotations."""
        data = _read_coco(self.ann_file)
        self._category_id = self._keypoint_category(data)
        report = check_coco(
            data,
            path=self.ann_file,
            num_joints=len(self.actual_joints),
            category_id=self._category_id,
        )
        if self.data_format != "zip":
            image_dir = self._image_dir()
            files = [(img["id"], self._listed_file(img["id"], img, image_dir))
                     for img in data["images"]]
            missing = check_image_files(report, files, image_dir, train=is_train)
            drop_images(data, missing)
        report.finish(logger)
        return as_coco(data)

    def _file_name(self, index, img):
        """The file name of image ``index``: its ``file_name``, else ``%012d.jpg``."""
        file_name = img.get("file_name") if img else None
        if not file_name:
            file_name = f"{index:012d}.jpg"
            if "2014" in self.image_set:
                file_name = f"COCO_{self.image_set}_{file_name}"
        return file_name

    def _listed_file(self, index, img, image_dir):
        """Image ``index``'s path relative to ``image_dir`` (what the missing-file check lists)."""
        return self._file_name(index, img)

    def _image_dir(self):
        folder = "test2017" if "test" in self.image_set else self.image_set
        return os.path.join(self.root, "coco", "images", folder)

    def image_path_from_index(self, index):
        """Image path of id ``index``: the annotation ``file_name``, else ``%012d.jpg``."""
        file_name = self._file_name(index, self.coco.imgs.get(index))
        folder = "test2017" if "test" in self.image_set else self.image_set
        if self.data_format == "zip":
            path = os.path.join(self.root, "coco", "images", f"{folder}.zip@", folder, file_name)
        else:
            path = os.path.join(self._image_dir(), file_name)
        self.path_to_id[path] = index
        return path

    # ------------------------------------------------------------------ records
    def _get_db(self):
        gt_mode = (self.is_train or self.use_gt_bbox) and (
            self.pseudo_anno or "unlabeled" not in self.image_set
        )
        if gt_mode:
            return self._load_coco_keypoint_annotations()
        return self._load_coco_person_detection_results()

    def _load_coco_keypoint_annotations(self):
        gt_db = []
        bad = 0
        for index in self.image_set_index:
            recs, n_bad = self._load_coco_keypoint_annotation_kernal(index)
            gt_db.extend(recs)
            bad += n_bad
        if bad:
            logger.warning("=> skipped %d malformed annotations in %s", bad, self.ann_file)
        return gt_db

    def _load_coco_keypoint_annotation_kernal(self, index):
        """Records of one image (GT mode); returns ``(records, number of malformed ones)``."""
        im_ann = self.coco.imgs[index]
        width, height = im_ann.get("width"), im_ann.get("height")
        num_native = len(self.actual_joints)
        recs = []
        bad = 0
        image_path = None
        for obj in self.coco.imgToAnns.get(index, []):
            if obj.get("iscrowd", 0):
                continue
            try:
                x, y, w, h = (float(v) for v in obj["bbox"][:4])
                kps = np.asarray(obj["keypoints"], dtype=np.float64).reshape(num_native, 3)
                area = _file_area(obj)
                x1 = max(0.0, x)
                y1 = max(0.0, y)
                x2 = min(width - 1, x1 + max(0.0, w - 1))
                y2 = min(height - 1, y1 + max(0.0, h - 1))
            except (KeyError, TypeError, ValueError):
                bad += 1
                continue
            if not (area > 0 and x2 >= x1 and y2 >= y1):
                continue
            if self._coco_ind_to_class_ind.get(obj.get("category_id")) != 1:
                continue
            if kps.max() == 0:
                continue
            center, scale = self._box2cs([x1, y1, x2 - x1, y2 - y1])
            if image_path is None:
                image_path = self.image_path_from_index(index)
            recs.append(
                make_record(
                    image_path,
                    center,
                    scale,
                    *native_joints(num_native, kps, np.minimum(kps[:, 2], 1)),
                    raw_box=np.array([x, y, w, h], dtype=np.float32),
                    ann_id=obj.get("id", -1),
                )
            )
        return recs, bad

    def _load_coco_person_detection_results(self):
        bbox_file = self.bbox_file
        if "unlabeled" in self.image_set and self.unsup_bbox_file:
            bbox_file = self.unsup_bbox_file
        if not bbox_file:
            raise ValueError(
                f"COCO {self.image_set} needs a person detection file in detection mode "
                "(TEST.COCO_BBOX_FILE, or DATASET.UNSUP_BBOX_FILE for unlabeled sets)"
            )
        all_boxes = load_detections(bbox_file)
        logger.info("=> load %d detections from %s", len(all_boxes), bbox_file)

        num_native = len(self.actual_joints)
        kpt_db = []
        bad = 0
        first_bad = None
        for index, det in enumerate(all_boxes):
            try:
                parsed = person_detection(det, self._detection_categories())
            except ValueError:
                bad += 1
                first_bad = index if first_bad is None else first_bad
                continue
            if parsed is None:
                continue
            image_id, box, score = parsed
            if score < self.image_thre:
                continue
            center, scale = self._box2cs(box)
            kpt_db.append(
                make_record(
                    self.image_path_from_index(image_id),
                    center,
                    scale,
                    np.zeros((num_native, 3), dtype=np.float64),
                    np.ones((num_native, 3), dtype=np.float64),
                    score=score,
                    raw_box=np.array(box, dtype=np.float32),
                )
            )
        if bad == len(all_boxes):
            raise DataFileError(
                f"person detection file {bbox_file}: none of its {bad} records is a detection; "
                f"record 0 is {_short(all_boxes[0])}; expected {_DETECTION_FORMAT}"
            )
        if bad:
            logger.warning(
                "=> skipped %d malformed detections in %s (the first is record %d: %s)",
                bad,
                bbox_file,
                first_bad,
                _short(all_boxes[first_bad]),
            )
        logger.info("=> total boxes after filter (score >= %s): %d", self.image_thre, len(kpt_db))
        return kpt_db

    # ------------------------------------------------------------------ evaluation
    def image_id_from_path(self, path):
        """The COCO image id of ``path`` (loading map, else the 12 digits before ``.jpg``)."""
        image_id = self.path_to_id.get(path)
        if image_id is None:
            image_id = int(os.path.basename(path)[-16:-4])
        return image_id

    def evaluate(self, preds, output_dir, all_boxes, img_path, *args, prefix=None):
        """Rescoring, per-image OKS-NMS, results json and COCOeval keypoint AP
        (``semipose.evaluation.coco.COCOKeypointEvaluator`` with this set's settings).

        Args:
            preds: (N, 24, 3) x, y, score in original-image pixels (not modified).
            output_dir: results go to ``<output_dir>/results``.
            all_boxes: (N, >=6) centre (2), scale (2), area, box score, [bbox (4)].
            img_path: N image paths (as in ``meta['image']``).
            *args: ignored (the original's extra positional arguments).
            prefix: results file suffix (``person_keypoints_<set>_<prefix>.json``; default
                ``results``).

        Returns:
            ``(OrderedDict name -> value, AP)``; ``({'Null': 0}, 0)`` for test/unlabeled sets.
        """
        evaluator = COCOKeypointEvaluator(
            self.coco,
            self.image_set,
            oks_thre=self.oks_thre,
            in_vis_thre=self.in_vis_thre,
            save_result=self.save_result,
            has_ground_truth=has_ground_truth(self.image_set),
            sigmas=COCO_SIGMAS,
            category_id=self.person_cat_id,
        )
        image_ids = [self.image_id_from_path(p) for p in img_path]
        return evaluator.evaluate(
            np.asarray(preds)[:, self.su], image_ids, all_boxes, output_dir, prefix=prefix
        )
