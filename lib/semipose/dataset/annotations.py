"""Checks of keypoint annotation files as they are loaded: every defect is repaired with a warning
or refused with one error line, never passed on silently.

The checks take keyword arguments (the joint count, the image folder, the set's category), never the
config. ``check_coco`` covers the COCO keypoint format (training records, the ground truth that
``COCOeval`` scores, the image-info files of unlabeled sets); ``check_image_files`` the presence of
the referenced image files; ``check_aic`` and ``check_mpii`` the AI Challenger and MPII lists.

Each defect has one rule (``RULES``), the same for training, ``valid.py`` and the evaluation: a
repair (``kind == 'repair'``: the data are changed in place and a warning names the file, the
count and the first record) or a refusal (``AnnotationError``: one line naming the file, the count
and the first record). ``docs/RELIABILITY.md`` lists the rules.
"""

import contextlib
import logging
import os
from collections import OrderedDict

from semipose.common.errors import DataFileError

__all__ = [
    "AnnotationError",
    "AnnotationReport",
    "RULES",
    "box_problem",
    "check_aic",
    "check_coco",
    "check_image_files",
    "check_mpii",
    "collect_reports",
    "drop_images",
]

logger = logging.getLogger(__name__)

# The reports of the loaders inside ``collect_reports`` (None outside it).
_COLLECTED = None

_IGNORED_BOX = "kept as an ignored (crowd) person in the evaluation, no training record"

#: code -> (kind, what is wrong, what is done). ``kind`` is ``'repair'`` or ``'refuse'``.
RULES = OrderedDict(
    [
        ("not_coco", ("refuse", "not a COCO annotation file (no 'images' list)", "refused")),
        ("image_without_id", ("refuse", "'images' entries without an 'id'", "refused")),
        ("image_conflict", ("refuse", "image ids listed twice in 'images' with a different "
                            "file_name, width or height", "refused: which entry is right?")),
        ("duplicate_image", ("repair", "images listed twice in 'images'",
                             "the later entries dropped")),
        ("unknown_image", ("repair", "annotations of an image id not in 'images'", "dropped")),
        ("other_category", ("repair", "annotations of another category than the set's",
                            "dropped")),
        ("not_annotation", ("refuse", "'annotations' entries that are not objects", "refused")),
        ("duplicate_ann_id", ("repair", "annotations without an id or whose id is already used",
                              "given new ids after the largest one")),
        ("keypoints_length", ("refuse", "annotations whose keypoints list does not hold 3 numbers "
                              "per joint", "refused")),
        ("bad_box", ("refuse", "annotations without a bbox of 4 numbers", "refused")),
        ("missing_area", ("repair", "annotations without a positive numeric area (COCOeval "
                          "divides by it)", "area set to the box's w * h")),
        ("origin_joint", ("repair", "joints labelled visible at (0, 0)",
                          "set unlabelled (v = 0; 3 in AI Challenger)")),
        ("negative_joint", ("repair", "labelled joints at negative coordinates",
                            "set unlabelled (0, 0, 0)")),
        ("outside_joint", ("repair", "labelled joints outside the image",
                           "set unlabelled (0, 0, 0)")),
        ("num_keypoints", ("repair", "annotations whose num_keypoints differs from their "
                           "labelled joints", "recounted")),
        ("box_no_area", ("repair", "boxes that have no area (w or h <= 0)", _IGNORED_BOX)),
        ("box_tiny", ("repair", "boxes of at most 1x1 pixel", _IGNORED_BOX)),
        ("box_outside", ("repair", "boxes that lie outside the image", _IGNORED_BOX)),
        ("missing_file_train", ("repair", "images whose file is missing",
                                "dropped with their persons (training)")),
        ("missing_file", ("refuse", "images whose file is missing", "refused (evaluation)")),
        ("joints_length", ("refuse", "records whose joints do not match the set's joint count",
                           "refused")),
        ("aic_no_box", ("refuse", "persons with keypoints but no box", "refused")),
        ("aic_box", ("repair", "person boxes without area (x2 <= x1 or y2 <= y1) or of at most "
                     "1x1 pixel", "dropped from training and evaluation")),
        ("not_list", ("refuse", "not a list of records", "refused")),
        ("bad_record", ("refuse", "records without the expected fields", "refused")),
    ]
)  # fmt: skip


class AnnotationError(DataFileError):
    """An annotation file with a defect that is refused rather than repaired; the message names the
    file, the defect, its count and the first record."""


class AnnotationReport:
    """What the checks of one annotation file found.

    Args:
        path: the file (named in every message).

    Attributes:
        records: annotations (persons) read.
        images: images read.
        found: code -> ``[count, first record]``, in the order the defects were met.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self.records = 0
        self.images = 0
        self.found = OrderedDict()

    def add(self, code, first, count=1):
        """Counts ``count`` cases of defect ``code``; ``first`` describes the first one met."""
        entry = self.found.setdefault(code, [0, first])
        entry[0] += count

    def line(self, code):
        """One line for defect ``code``: file, count, what, first record, what is done."""
        count, first = self.found[code]
        _, what, action = RULES[code]
        return f"{self.path}: {count} {what} (first: {first}); {action}"

    def repairs(self):
        """Codes of the repaired defects found."""
        return [c for c in self.found if RULES[c][0] == "repair"]

    def refusals(self):
        """Codes of the refused defects found."""
        return [c for c in self.found if RULES[c][0] == "refuse"]

    def warn(self, log=None):
        """Logs one warning per repaired defect."""
        for code in self.repairs():
            (log or logger).warning("%s", self.line(code))

    def raise_refusals(self):
        """Raises ``AnnotationError`` for the first refused defect, if any.

        Raises:
            AnnotationError: naming the file, the defect, its count and the first record.
        """
        refused = self.refusals()
        if refused:
            raise AnnotationError(self.line(refused[0]))

    def finish(self, log=None):
        """``raise_refusals`` then ``warn``: what a loader calls after the checks. Inside
        ``collect_reports`` the report is only collected (nothing raised or logged)."""
        if _COLLECTED is not None:
            _COLLECTED.append(self)
            return self
        self.raise_refusals()
        self.warn(log)
        return self

    def summary(self):
        """Lines for a report: the counts, then one line per defect (``repaired:``/``error:``)."""
        lines = [f"{self.path}: {self.records} annotations, {self.images} images"]
        for code in self.found:
            tag = "repaired" if RULES[code][0] == "repair" else "error"
            lines.append(f"  {tag}: {self.line(code)}")
        if not self.found:
            lines.append("  clean")
        return lines


@contextlib.contextmanager
def collect_reports():
    """Collects the reports of the loaders run inside it instead of raising / logging them (for
    ``semipose.tools.check_dataset``, which builds the datasets to list every defect).

    Yields:
        the list the reports are appended to.
    """
    global _COLLECTED
    saved, _COLLECTED = _COLLECTED, []
    try:
        yield _COLLECTED
    finally:
        _COLLECTED = saved


def box_problem(box, width, height):
    """Why a person box ``x, y, w, h`` cannot be used, or None (the rule of inference too).

    Args:
        box: ``(x, y, w, h)``.
        width, height: the image size; None skips the outside test.

    Returns:
        ``'has no area (w or h <= 0)'``, ``'is at most 1x1 pixel'``,
        ``'lies outside the WxH image'`` or None.
    """
    x, y, w, h = (float(v) for v in box[:4])
    if w <= 0 or h <= 0:
        return "has no area (w or h <= 0)"
    if w <= 1 and h <= 1:
        return "is at most 1x1 pixel"
    if width is not None and height is not None:
        if x >= width or y >= height or x + w <= 0 or y + h <= 0:
            return f"lies outside the {width:g}x{height:g} image"
    return None


_BOX_CODES = {"has": "box_no_area", "is": "box_tiny", "lies": "box_outside"}


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _ann_name(ann, index):
    return f"annotation id {ann.get('id')} (index {index}) of image {ann.get('image_id')}"


def _check_images(data, report):
    """Duplicate / id-less ``images`` entries; returns ``{id: (width, height)}``."""
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        report.add("not_coco", f"the file holds a {type(data).__name__}")
        report.raise_refusals()
    sizes = {}
    kept = OrderedDict()
    for index, img in enumerate(images):
        if not isinstance(img, dict) or "id" not in img:
            report.add("image_without_id", f"images index {index}")
            continue
        key = img["id"]
        if key in kept:
            first = kept[key]
            same = all(first.get(f) == img.get(f) for f in ("file_name", "width", "height"))
            report.add("duplicate_image" if same else "image_conflict",
                       f"image id {key} (index {index})")  # fmt: skip
            continue
        width, height = img.get("width"), img.get("height")
        sizes[key] = (width, height) if _is_number(width) and _is_number(height) else (None, None)
        kept[key] = img
    if len(kept) != len(images):
        data["images"] = list(kept.values())
    report.images = len(kept)
    return sizes


def _person_category(data, category_id):
    """The set's category id: ``category_id``, else the one named person, else the first."""
    if category_id is not None:
        return category_id
    cats = [c for c in data.get("categories") or [] if isinstance(c, dict) and "id" in c]
    person = [c["id"] for c in cats if c.get("name") == "person"]
    if person:
        return person[0]
    return cats[0]["id"] if cats else None


def _check_keypoints(ann, name, report, num_joints, size):
    """Length, labelled joints at (0, 0) / negative / outside, and ``num_keypoints``."""
    kps = ann.get("keypoints")
    ok = isinstance(kps, list) and len(kps) % 3 == 0 and all(_is_number(v) for v in kps)
    if not ok or (num_joints is not None and len(kps) != 3 * num_joints):
        got = f"{len(kps)} values" if isinstance(kps, list) else "no keypoints list"
        want = f"3 x {num_joints} = {3 * num_joints}" if num_joints else "numbers, 3 per joint"
        report.add("keypoints_length", f"{name}: {got}, expected {want}")
        return
    labelled = sum(1 for v in kps[2::3] if v > 0)
    width, height = size
    for j in range(len(kps) // 3):
        x, y, v = kps[3 * j : 3 * j + 3]
        if v <= 0:
            continue
        if x == 0 and y == 0:
            report.add("origin_joint", f"{name}, joint {j}")
            kps[3 * j + 2] = 0
        elif x < 0 or y < 0:
            report.add("negative_joint", f"{name}, joint {j} at ({x:g}, {y:g})")
            kps[3 * j : 3 * j + 3] = [0, 0, 0]
        elif width is not None and (x > width or y > height):
            report.add("outside_joint", f"{name}, joint {j} at ({x:g}, {y:g}) in a "
                       f"{width:g}x{height:g} image")  # fmt: skip
            kps[3 * j : 3 * j + 3] = [0, 0, 0]
    stated = ann.get("num_keypoints")
    now = sum(1 for v in kps[2::3] if v > 0)
    if not _is_number(stated) or stated not in (labelled, now):
        report.add("num_keypoints", f"{name}: num_keypoints {stated!r}, {labelled} labelled")
    if stated != now:
        ann["num_keypoints"] = now


#: the annotation key that keeps a repaired annotation's area as the file gave it
AREA_IN_FILE = "_area_in_file"


def _check_box(ann, name, report, size):
    """A bbox of 4 numbers, a numeric area, and a usable box (else the person is made crowd)."""
    box = ann.get("bbox")
    if not (isinstance(box, list) and len(box) >= 4 and all(_is_number(v) for v in box[:4])):
        report.add("bad_box", f"{name}: bbox {box!r}")
        return
    area = ann.get("area")
    if not _is_number(area) or area <= 0:
        if box[2] > 0 and box[3] > 0:
            report.add("missing_area", f"{name}: area {area!r}")
            # the repair is for COCOeval's ground truth; which records exist is decided on the
            # file's own area, as the original's filter (``area > 0``) decides it
            ann[AREA_IN_FILE] = area
            ann["area"] = float(box[2] * box[3])
    if ann.get("iscrowd", 0):
        return
    problem = box_problem(box, *size)
    if problem:
        report.add(_BOX_CODES[problem.split()[0]], f"{name}: box {box[:4]} {problem}")
        ann["iscrowd"] = 1


def _renumber(anns, report):
    """New ids, after the largest, for annotations without an id or with one already used."""
    numbers = [a["id"] for a in anns if _is_number(a.get("id"))]
    next_id = int(max(numbers, default=0)) + 1
    seen = set()
    for index, ann in enumerate(anns):
        key = ann.get("id")
        if key is None or key in seen:
            report.add("duplicate_ann_id", f"{_ann_name(ann, index)}, given id {next_id}")
            ann["id"] = next_id
            next_id += 1
        seen.add(ann["id"])


def check_coco(
    data, *, path, num_joints=None, category_id=None, keypoints=True, boxes=True, ids=True
):
    """Checks (and repairs in place) a COCO keypoint annotation dict.

    Args:
        data: the decoded json (changed in place by the repairs).
        path: the file, named in the messages.
        num_joints: K, the set's joint count (keypoints must hold 3 K numbers); None accepts any
            multiple of 3.
        category_id: the set's category; None: the category named ``person``, else the first.
        keypoints: False for files whose annotations are boxes only (no keypoint checks).
        boxes: False leaves the boxes to the caller (inference skips and counts unusable boxes
            with ``box_problem``'s wording).
        ids: False leaves duplicate or missing annotation ids alone (files read for their boxes).

    Returns:
        ``AnnotationReport``; call its ``finish()`` to raise the refusals and log the repairs.

    Raises:
        AnnotationError: the file has no ``images`` list.
    """
    report = AnnotationReport(path)
    sizes = _check_images(data, report)
    anns = data.get("annotations")
    if not isinstance(anns, list):
        return report
    cat = _person_category(data, category_id)
    kept = []
    for index, ann in enumerate(anns):
        if not isinstance(ann, dict):
            report.add("not_annotation", f"annotations index {index}")
            continue
        name = _ann_name(ann, index)
        if ann.get("image_id") not in sizes:
            report.add("unknown_image", name)
        elif cat is not None and ann.get("category_id") != cat:
            report.add("other_category", f"{name}: category {ann.get('category_id')!r}, the "
                       f"set's is {cat!r}")  # fmt: skip
        else:
            kept.append(ann)
            if keypoints:
                _check_keypoints(ann, name, report, num_joints, sizes[ann["image_id"]])
            if boxes:
                _check_box(ann, name, report, sizes[ann["image_id"]])
    if len(kept) != len(anns):
        data["annotations"] = kept
    if ids:
        _renumber(kept, report)
    report.records = len(kept)
    return report


def _listing(folder, cache):
    names = cache.get(folder)
    if names is None:
        try:
            names = cache[folder] = set(os.listdir(folder))
        except OSError:
            names = cache[folder] = None
    return names


def check_image_files(report, files, image_dir, *, train):
    """Which referenced image files are missing, from one listing per folder (no stat per file).

    Skipped (nothing missing) when ``image_dir`` is not a folder on disk (zip sets, or a layout
    checked elsewhere).

    Args:
        report: the ``AnnotationReport`` that counts them (``missing_file_train`` when training,
            a refusal ``missing_file`` otherwise).
        files: ``(image id, path relative to image_dir)`` pairs.
        image_dir: the image folder.
        train: training (repair: the caller drops them) or evaluation (refusal).

    Returns:
        set of the image ids whose file is missing.
    """
    if not image_dir or not os.path.isdir(image_dir):
        return set()
    cache = {}
    missing = set()
    for key, rel in files:
        folder, base = os.path.split(os.path.join(image_dir, rel))
        names = _listing(folder, cache)
        if names is None or base not in names:
            report.add("missing_file_train" if train else "missing_file",
                       f"{os.path.join(image_dir, rel)} of image {key}")  # fmt: skip
            missing.add(key)
    return missing


def drop_images(data, image_ids):
    """Removes the images ``image_ids`` and their annotations from a COCO dict, in place."""
    if not image_ids:
        return
    data["images"] = [img for img in data["images"] if img["id"] not in image_ids]
    if isinstance(data.get("annotations"), list):
        data["annotations"] = [a for a in data["annotations"] if a["image_id"] not in image_ids]


def _aic_joints(kps, name, report):
    """AI Challenger joints (v 1 visible, 2 occluded, 3 unlabelled): labelled at (0, 0) or at
    negative coordinates -> unlabelled."""
    for j in range(len(kps) // 3):
        x, y, v = kps[3 * j : 3 * j + 3]
        if v >= 3 or v <= 0:
            continue
        if x == 0 and y == 0:
            report.add("origin_joint", f"{name}, joint {j}")
            kps[3 * j + 2] = 3
        elif x < 0 or y < 0:
            report.add("negative_joint", f"{name}, joint {j} at ({x:g}, {y:g})")
            kps[3 * j : 3 * j + 3] = [0, 0, 3]


def _aic_person(record, key, report, num_joints, keypoints):
    """Checks one AIC person; returns False when it is to be dropped."""
    name = f"image {record['image_id']} {key}"
    boxes = record["human_annotations"]
    if key not in boxes:
        report.add("aic_no_box", name)
        return True
    box = boxes[key]
    if not (isinstance(box, list) and len(box) >= 4 and all(_is_number(v) for v in box[:4])):
        report.add("bad_box", f"{name}: box {box!r}")
        return True
    if keypoints:
        kps = record["keypoint_annotations"][key]
        if (
            not isinstance(kps, list)
            or len(kps) != 3 * num_joints
            or not all(_is_number(v) for v in kps)
        ):
            got = f"{len(kps)} values" if isinstance(kps, list) else repr(kps)
            report.add("keypoints_length", f"{name}: {got}, expected 3 x {num_joints}")
            return True
        _aic_joints(kps, name, report)
    w, h = box[2] - box[0], box[3] - box[1]
    if w <= 0 or h <= 0 or (w <= 1 and h <= 1):
        report.add("aic_box", f"{name}: box {box[:4]}")
        return False
    return True


def _list_report(anno, path):
    """A new report for a file that must hold a list; refuses anything else."""
    report = AnnotationReport(path)
    if not isinstance(anno, list):
        report.add("not_list", f"the file holds a {type(anno).__name__}")
        report.raise_refusals()
    return report


def check_aic(anno, *, path, num_joints, keypoints=True):
    """Checks (and repairs in place) an AI Challenger annotation list.

    Args:
        anno: the decoded list of ``{image_id, keypoint_annotations, human_annotations}``.
        path: the file, named in the messages.
        num_joints: the set's joint count (14).
        keypoints: False for a test set (its keypoints are not read).

    Returns:
        ``AnnotationReport``; call its ``finish()``.

    Raises:
        AnnotationError: ``anno`` is not a list.
    """
    report = _list_report(anno, path)
    kept = OrderedDict()
    fields = ("image_id", "keypoint_annotations", "human_annotations")
    for index, record in enumerate(anno):  # duplicates first: compared before any repair
        if not (isinstance(record, dict) and all(f in record for f in fields)) or not all(
            isinstance(record[f], dict) for f in fields[1:]
        ):
            report.add("bad_record", f"record {index}")
        elif record["image_id"] in kept:
            same = kept[record["image_id"]] == record
            report.add("duplicate_image" if same else "image_conflict",
                       f"image id {record['image_id']} (record {index})")  # fmt: skip
        else:
            kept[record["image_id"]] = record
    for record in kept.values():
        for key in list(record["keypoint_annotations"]):
            if not _aic_person(record, key, report, num_joints, keypoints):
                del record["keypoint_annotations"][key]
                record["human_annotations"].pop(key, None)
        report.records += len(record["keypoint_annotations"])
    anno[:] = list(kept.values())
    report.images = len(anno)
    return report


def check_mpii(anno, *, path, num_joints, joints=True):
    """Checks an MPII annotation list (``image``, ``center``, ``scale``, ``joints``,
    ``joints_vis``).

    Args:
        anno: the decoded list.
        path: the file, named in the messages.
        num_joints: the set's joint count (16).
        joints: False for a test set (its joints are not read).

    Returns:
        ``AnnotationReport``; call its ``finish()``.

    Raises:
        AnnotationError: ``anno`` is not a list.
    """
    report = _list_report(anno, path)
    for index, rec in enumerate(anno):
        if not (isinstance(rec, dict) and all(f in rec for f in ("image", "center", "scale"))):
            report.add("bad_record", f"record {index}")
            continue
        if joints:
            pts, vis = rec.get("joints"), rec.get("joints_vis")
            n_pts = len(pts) if isinstance(pts, list) else None
            n_vis = len(vis) if isinstance(vis, list) else None
            if n_pts != num_joints or n_vis != num_joints:
                report.add("joints_length", f"record {index} ({rec['image']}): {n_pts} joints, "
                           f"{n_vis} visibilities, expected {num_joints}")  # fmt: skip
    report.records = len(anno)
    report.images = len({rec.get("image") for rec in anno if isinstance(rec, dict)})
    return report
