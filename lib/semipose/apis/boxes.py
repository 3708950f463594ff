"""Person boxes for top-down inference.

Four sources, each a callable ``source(image, image_id=None, file_name=None)`` returning a (P, 5)
float64 array of ``x, y, w, h, score`` boxes in image pixels:

* ``DetectionJsonBoxes``: a COCO detection-results json (the ``TEST.COCO_BBOX_FILE`` format: a list
  of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``), person detections at or above
  a score threshold, read as the COCO dataset's detection mode reads them.
* ``AnnotationBoxes``: the ground-truth person boxes of a COCO annotation json, cleaned as the COCO
  dataset's GT mode does (crowds and persons without labeled keypoints dropped, boxes clipped).
* ``WholeImageBoxes``: one box covering the whole image.
* ``TorchvisionPersonDetector``: a torchvision Faster R-CNN / Keypoint R-CNN read from a local
  weights file. Nothing is downloaded: a missing file raises an error naming the expected file and
  its download address.

The json sources find an image by its id, by its file name (through the ``images`` list of an
annotation json) or, for COCO-style names such as ``000000000139.jpg``, by the number in the name.
"""
import json
import logging
import os
import re

import numpy as np

from semipose.common.detections import person_detection
from semipose.common.errors import DataFileError
from semipose.dataset.annotations import box_problem, check_coco

__all__ = [
    "AnnotationBoxes",
    "BoxSourceError",
    "DETECTOR_ARCHS",
    "DetectionJsonBoxes",
    "TorchvisionPersonDetector",
    "WholeImageBoxes",
    "image_id_from_name",
    "load_json",
]

logger = logging.getLogger(__name__)

_EMPTY = np.zeros((0, 5), dtype=np.float64)


class BoxSourceError(DataFileError):
    """A box file does not hold what was expected, or cannot tell the boxes of an image."""


def load_json(path, what):
    """Reads a json file, with errors that name ``what`` and ``path``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        BoxSourceError: the file is not valid json.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with open(path) as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BoxSourceError(f"{what} {path} is not valid json: {exc}") from None


def image_id_from_name(file_name):
    """The COCO image id in a file name (``000000000139.jpg`` -> 139), or None.

    Only names whose stem ends in at least six digits count (``COCO_val2014_000000000139.jpg``
    too); other names have no implicit id.
    """
    if not file_name:
        return None
    stem = os.path.splitext(os.path.basename(str(file_name)))[0]
    match = re.search(r"(\d{6,})$", stem)
    return int(match.group(1)) if match else None


class _JsonBoxes:
    """Shared look-up of a json source: boxes by image id; ids from an ``images`` list or names."""

    what = "box file"

    def __init__(self):
        self.boxes = {}
        self.name_to_id = {}
        self.image_sizes = {}

    def _read_images(self, data, path):
        images = data.get("images", []) if isinstance(data, dict) else []
        for img in images:
            try:
                image_id = img["id"]
            except (KeyError, TypeError):
                raise BoxSourceError(f"{path}: an 'images' entry has no 'id': {img!r}") from None
            if img.get("file_name"):
                self.name_to_id[os.path.basename(img["file_name"])] = image_id
            if img.get("width") and img.get("height"):
                self.image_sizes[image_id] = (int(img["width"]), int(img["height"]))

    def add_image_index(self, ann_file):
        """Reads the ``images`` list of a COCO annotation json to map file names to ids."""
        self._read_images(load_json(ann_file, "COCO annotation file"), ann_file)

    def resolve_id(self, image_id=None, file_name=None):
        """The image id of a file, or None when it cannot be told."""
        if image_id is not None:
            return image_id
        if file_name:
            base = os.path.basename(str(file_name))
            if base in self.name_to_id:
                return self.name_to_id[base]
            return image_id_from_name(base)
        return None

    def __call__(self, image, image_id=None, file_name=None):
        resolved = self.resolve_id(image_id, file_name)
        if resolved is None:
            raise BoxSourceError(
                f"cannot tell the image id of {file_name or 'this image'} in {self.path}: name "
                "the file by its COCO id (e.g. 000000000139.jpg) or give a COCO annotation json "
                "whose 'images' list holds its file name"
            )
        return self._boxes_of(resolved, image).copy()

    def _boxes_of(self, image_id, image):
        return self.boxes.get(image_id, _EMPTY)

    def __len__(self):
        return len(self.boxes)


class DetectionJsonBoxes(_JsonBoxes):
    """Person detections of a COCO detection-results json (``TEST.COCO_BBOX_FILE`` format).

    As the COCO dataset's detection mode: entries with ``category_id`` other than 1 are ignored,
    boxes scoring below ``score_thr`` dropped, boxes kept as given (``x, y, w, h``), in file order.

    Args:
        path: the detection json.
        score_thr: minimum detection score (``TEST.IMAGE_THRE``).
        ann_file: optional COCO annotation json whose ``images`` list maps file names to ids.

    Raises:
        FileNotFoundError: a file does not exist.
        BoxSourceError: the file is not a list of detections.
    """

    what = "person detection file"

    def __init__(self, path, score_thr=0.0, ann_file=None):
        super().__init__()
        self.path = path
        self.score_thr = float(score_thr)
        data = load_json(path, self.what)
        if not isinstance(data, list):
            raise BoxSourceError(
                f"{path} is not a detection-results json (expected a list of "
                '{"image_id", "category_id", "bbox", "score"} entries)'
            )
        bad = 0
        per_image = {}
        for det in data:
            try:
                parsed = person_detection(det)
            except ValueError:
                bad += 1
                continue
            if parsed is None:
                continue
            image_id, box, score = parsed
            if score < self.score_thr:
                continue
            per_image.setdefault(image_id, []).append(box + [score])
        if bad:
            logger.warning("skipped %d malformed detections in %s", bad, path)
        self.boxes = {k: np.asarray(v, dtype=np.float64) for k, v in per_image.items()}
        if ann_file:
            self.add_image_index(ann_file)

    def describe(self):
        n = sum(len(v) for v in self.boxes.values())
        return f"detections {self.path} (score >= {self.score_thr:g}: {n} boxes)"


class AnnotationBoxes(_JsonBoxes):
    """Ground-truth person boxes of a COCO annotation json, cleaned as the COCO dataset's GT mode.

    Crowd annotations, other categories and persons whose keypoints are all zero (when the
    annotation has keypoints) are dropped; boxes without area, of at most 1x1 pixel or outside the
    image (``semipose.dataset.annotations.box_problem``, the rule of the dataset loaders) are
    passed on unchanged, so that inference skips them with a warning and counts them; the file
    goes through the loaders' other checks when it lists its ``images`` (duplicate images,
    annotations of unlisted image ids, other categories: repaired with a warning; conflicting
    image entries refused); a box ``x, y, w, h``
    becomes
    ``x1 = max(0, x)``, ``y1 = max(0, y)``, ``x2 = min(W - 1, x1 + max(0, w - 1))``, ``y2``
    likewise, then ``(x1, y1, x2 - x1, y2 - y1)``, with score 1. ``W, H`` come from the json's
    ``images`` entry, else from the image itself.

    Args:
        path: the COCO annotation json (e.g. ``person_keypoints_val2017.json``).

    Raises:
        FileNotFoundError: the file does not exist.
        BoxSourceError: the file has no ``annotations`` list.
    """

    what = "COCO annotation file"

    def __init__(self, path):
        super().__init__()
        self.path = path
        data = load_json(path, self.what)
        if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
            raise BoxSourceError(f"{path} is not a COCO annotation json (no 'annotations' list)")
        self._read_images(data, path)
        cats = data.get("categories") or []
        person = [c["id"] for c in cats if c.get("name") == "person"]
        self.person_id = person[0] if person else (cats[0]["id"] if cats else 1)
        if data.get("images"):
            # the loaders' checks (duplicate images, unknown image ids, other categories); unusable
            # boxes are left to inference, which skips and counts them
            check_coco(
                data, path=path, category_id=self.person_id, keypoints=False, boxes=False, ids=False
            ).finish(logger)
        raw = {}
        bad = 0
        for ann in data["annotations"]:
            try:
                if ann.get("iscrowd", 0):
                    continue
                if ann.get("category_id", self.person_id) != self.person_id:
                    continue
                x, y, w, h = (float(v) for v in ann["bbox"][:4])
                area = float(ann.get("area", w * h))
                kps = ann.get("keypoints")
                if kps is not None and (len(kps) == 0 or max(kps) == 0):
                    continue
                image_id = ann["image_id"]
            except (KeyError, TypeError, ValueError):
                bad += 1
                continue
            # boxes without area are kept: inference skips them with a warning and counts them
            del area
            raw.setdefault(image_id, []).append((x, y, w, h))
        if bad:
            logger.warning("skipped %d malformed annotations in %s", bad, path)
        self.raw = raw
        self.boxes = {}

    def _boxes_of(self, image_id, image):
        if image_id not in self.raw:
            return _EMPTY
        if image_id in self.image_sizes:
            width, height = self.image_sizes[image_id]
        elif image is not None:
            height, width = image.shape[:2]
        else:
            raise BoxSourceError(f"{self.path}: image {image_id} has no width/height")
        out = []
        for x, y, w, h in self.raw[image_id]:
            x1, y1 = max(0.0, x), max(0.0, y)
            x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
            y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
            if box_problem((x, y, w, h), width, height) is None and x2 >= x1 and y2 >= y1:
                out.append((x1, y1, x2 - x1, y2 - y1, 1.0))
            else:  # unusable (box_problem): passed on as it is, for inference to report
                out.append((x, y, w, h, 1.0))
        return np.asarray(out, dtype=np.float64).reshape(-1, 5)

    def __len__(self):
        return len(self.raw)

    def describe(self):
        n = sum(len(v) for v in self.raw.values())
        return f"ground-truth boxes of {self.path} ({n} persons)"


class WholeImageBoxes:
    """One box ``(0, 0, W, H)`` with score 1 per image: for images holding one centred person."""

    def __call__(self, image, image_id=None, file_name=None):
        height, width = image.shape[:2]
        return np.array([[0.0, 0.0, width, height, 1.0]], dtype=np.float64)

    def describe(self):
        return "the whole image as one person box"


#: Detector architectures accepted by ``TorchvisionPersonDetector`` (torchvision builder names),
#: longest first so that a file name is matched to the most specific one.
DETECTOR_ARCHS = (
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_resnet50_fpn_v2",
    "fasterrcnn_resnet50_fpn",
    "keypointrcnn_resnet50_fpn",
)
_DEFAULT_ARCH = "fasterrcnn_resnet50_fpn"


def _weights_url(arch):
    """torchvision's download address of ``arch``'s COCO weights (read offline from torchvision)."""
    try:
        from torchvision.models import get_model_weights

        return get_model_weights(arch).DEFAULT.url
    except (ImportError, ValueError, KeyError, AttributeError):
        return None


def _arch_from_name(path):
    base = os.path.basename(str(path))
    for arch in DETECTOR_ARCHS:
        if base.startswith(arch):
            return arch
    return None


class TorchvisionPersonDetector:
    """A torchvision Faster R-CNN or Keypoint R-CNN person detector, from a local weights file.

    Args:
        weights: path of torchvision's COCO weights file, e.g.
            ``fasterrcnn_resnet50_fpn_coco-258fb6c6.pth``.
        arch: one of ``DETECTOR_ARCHS``; None -> told from the file name, else Faster R-CNN R50-FPN.
        score_thr: minimum person score.
        device: torch device (default: CUDA when available, else CPU).

    Raises:
        FileNotFoundError: ``weights`` does not exist; the message names the expected file and the
            address to download it from by hand (nothing is downloaded here).
        ValueError: an unknown ``arch``.
    """

    def __init__(self, weights, arch=None, score_thr=0.5, device=None):
        import torch

        arch = arch or _arch_from_name(weights) or _DEFAULT_ARCH
        if arch not in DETECTOR_ARCHS:
            raise ValueError(f"unknown detector arch {arch!r}; choose one of {DETECTOR_ARCHS}")
        if not weights or not os.path.isfile(weights):
            url = _weights_url(arch)
            expected = os.path.basename(url) if url else f"{arch}_coco.pth"
            where = f"download it from {url}" if url else "see torchvision's detection models"
            raise FileNotFoundError(
                f"person detector weights not found: {weights or '(no path given)'}. The {arch} "
                f"detector needs torchvision's COCO weights file {expected}: {where} on a machine "
                "with internet access and pass its path (nothing is downloaded at run time)"
            )
        from torchvision.models import get_model

        from semipose.checkpoint.files import load_checkpoint, load_model_state

        self.arch = arch
        self.weights = weights
        self.score_thr = float(score_thr)
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        num_classes = 2 if arch.startswith("keypointrcnn") else 91
        model = get_model(arch, weights=None, weights_backbone=None, num_classes=num_classes)
        load_model_state(model, load_checkpoint(weights, map_location="cpu"), strict=True,
                         source=weights)
        self.model = model.eval().to(self.device)

    def __call__(self, image, image_id=None, file_name=None):
        import torch

        rgb = np.ascontiguousarray(image[:, :, ::-1])
        tensor = torch.from_numpy(rgb).to(self.device).permute(2, 0, 1).float().div(255)
        with torch.no_grad():
            out = self.model([tensor])[0]
        keep = (out["labels"] == 1) & (out["scores"] >= self.score_thr)
        xyxy = out["boxes"][keep].cpu().numpy()
        scores = out["scores"][keep].cpu().numpy()
        boxes = np.zeros((len(scores), 5), dtype=np.float64)
        boxes[:, 0:2] = xyxy[:, 0:2]
        boxes[:, 2:4] = xyxy[:, 2:4] - xyxy[:, 0:2]
        boxes[:, 4] = scores
        return boxes

    def describe(self):
        return f"{self.arch} person detector ({self.weights}, score >= {self.score_thr:g})"
