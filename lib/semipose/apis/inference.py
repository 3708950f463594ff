"""Top-down pose inference on any image: ``init_model`` and ``inference_topdown``.

Each person box is cropped, normalised, run through the network and decoded exactly as the
validation does (``JointsDataset`` crop with the aspect-ratio padding and 1.25 margin, ImageNet
normalisation of the BGR crop, optional flip test, the heatmap codec's decode with 'shift' or
'dark'), so a model scores the same here as in ``valid.py`` on the same boxes.
"""
import logging
import os
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from yacs.config import CfgNode

from semipose.codecs import MSRAHeatmap
from semipose.common.errors import DataFileError
from semipose.common.joints import FLIP_PAIRS
from semipose.dataset.annotations import box_problem
from semipose.dataset.build import dataset_layout
from semipose.utils.transforms import get_affine_transform
from semipose.utils.vis import LAYOUTS, KeypointLayout, layout_for_dataset

__all__ = [
    "HEADS",
    "PersonPose",
    "TopDownPoseModel",
    "box_to_center_scale",
    "crop_person",
    "inference_topdown",
    "init_model",
    "load_pose_weights",
    "oks_nms_poses",
    "read_image",
]

logger = logging.getLogger(__name__)

#: The heatmaps a model can be read from: PoseDual's net 1, net 2 or their mean ('ensemble'; for a
#: single network the same as 'net1').
HEADS = ("ensemble", "net1", "net2")

_READ_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
_PIXEL_STD = 200.0
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class PersonPose:
    """One person's prediction.

    Attributes:
        keypoints: (J, 3) float32 x, y, score in image pixels, in the layout's native joint order.
        bbox: (4,) x, y, w, h of the box the person was cropped from.
        bbox_score: the box's score (1 for ground-truth and whole-image boxes).
        score: the person score of the COCO evaluation: ``bbox_score`` x the mean score of the
            joints above ``in_vis_thre``.
        center: (2,) crop centre in image pixels.
        scale: (2,) crop size in units of 200 px (aspect-padded, x1.25).
        box_index: index of the box in the boxes given to ``inference_topdown``.
        union_keypoints: (24, 3) the same prediction in the 24-joint union layout.
    """

    keypoints: np.ndarray
    bbox: np.ndarray
    bbox_score: float
    score: float
    center: np.ndarray
    scale: np.ndarray
    box_index: int
    union_keypoints: np.ndarray = field(repr=False, default=None)

    @property
    def area(self):
        """The crop area ``prod(scale * 200)`` (the area the OKS-NMS uses)."""
        return float(np.prod(np.asarray(self.scale, dtype=np.float64) * _PIXEL_STD))

    def to_coco(self, image_id, category_id=1):
        """This pose as a COCO keypoint-results entry (image_id, category_id, keypoints, score)."""
        return {
            "image_id": int(image_id) if isinstance(image_id, (int, np.integer)) else image_id,
            "category_id": int(category_id),
            "keypoints": [float(v) for v in np.asarray(self.keypoints).reshape(-1)],
            "score": float(self.score),
        }


def _build_method(cfg):
    """``(method, eval module)`` of the config (``semipose.methods`` registry)."""
    from semipose.methods import build_method

    method = build_method(cfg)
    return method, method.build_model(is_train=False)


class TopDownPoseModel(torch.nn.Module):
    """A pose network with everything needed to turn person crops into keypoints.

    Build it with ``init_model``. Calling it on a normalised (N, 3, H, W) batch returns the
    (N, K, h, w) heatmaps of the chosen head, flip-tested when ``flip_test`` is set, computed as the
    engine's ``validate`` computes them.

    Args:
        network: the method's eval module (eval forward: a tensor, or a tuple ``(ht1, ht2)`` for
            PoseDual).
        head: one of the method's evaluated heads (``'net1'``; PoseDual also ``'net2'`` and
            ``'ensemble'``); ``'ensemble'`` of a single network is its ``'net1'``.
        method: what turns the eval forward's output into heads: an object with ``heads``,
            ``net_heatmaps(output)`` and ``eval_heatmaps(per_net)`` (a ``semipose.methods``
            method); None -> one head per output, plus PoseDual's ensemble (their mean).
        image_size: network input ``(W, H)``.
        layout: the ``KeypointLayout`` of the returned keypoints.
        flip_test: average with the heatmaps of the mirrored crop (``TEST.FLIP_TEST``).
        shift_heatmap: shift the mirrored heatmaps one pixel (``TEST.SHIFT_HEATMAP``).
        post_process: refine the argmax (``TEST.POST_PROCESS``).
        post_type: ``'shift'`` or ``'dark'`` (``TEST.POST_TYPE``).
        blur_kernel: DARK blur kernel (``TEST.BLUR_KERNEL``).
        flip_pairs: union channel pairs swapped by the flip test.
        in_vis_thre: joint threshold of the person rescoring (``TEST.IN_VIS_THRE``).
        oks_thre: OKS-NMS threshold (``TEST.OKS_THRE``).
        color_rgb: feed RGB instead of BGR crops (``DATASET.COLOR_RGB``).
        channels_last: run in channels-last memory format (``TRAIN.CHANNELS_LAST``).
        batch_size: most crops per forward pass (``TEST.BATCH_SIZE``).
        cfg: the frozen config the model was built from (kept for reference), or None.
    """

    def __init__(
        self,
        network,
        *,
        head="ensemble",
        method=None,
        image_size=(192, 256),
        layout=None,
        flip_test=False,
        shift_heatmap=True,
        post_process=True,
        post_type="shift",
        blur_kernel=11,
        flip_pairs=FLIP_PAIRS,
        in_vis_thre=0.0,
        oks_thre=0.5,
        color_rgb=False,
        channels_last=False,
        batch_size=32,
        cfg=None,
    ):
        super().__init__()
        self.network = network
        if method is None:
            raise ValueError("TopDownPoseModel needs the method (semipose.methods.build_method)")
        self.method = method
        heads = tuple(getattr(self.method, "heads", ("net1",)))
        if head == "ensemble" and head not in heads:
            head = heads[0]
        if head not in heads:
            raise ValueError(f"net {head!r} is not evaluated by this model; it has {heads}")
        self.head = head
        self.image_size = tuple(int(v) for v in image_size)
        self.layout = layout if layout is not None else layout_for_dataset("coco")
        self.flip_test = bool(flip_test)
        self.shift_heatmap = bool(shift_heatmap)
        self.post_process = bool(post_process)
        self.post_type = post_type
        self.blur_kernel = int(blur_kernel)
        self.flip_pairs = [list(p) for p in flip_pairs]
        self.in_vis_thre = float(in_vis_thre)
        self.oks_thre = float(oks_thre)
        self.color_rgb = bool(color_rgb)
        self.channels_last = bool(channels_last)
        self.batch_size = max(1, int(batch_size))
        self.cfg = cfg
        self.register_buffer(
            "pixel_mean", torch.tensor(_IMAGENET_MEAN, dtype=torch.float32), persistent=False
        )
        self.register_buffer(
            "pixel_std", torch.tensor(_IMAGENET_STD, dtype=torch.float32), persistent=False
        )

    @property
    def device(self):
        return self.pixel_mean.device

    @property
    def aspect_ratio(self):
        return self.image_size[0] / self.image_size[1]

    @property
    def codec(self):
        """The heatmap codec of the current decoding and flip-test settings."""
        return MSRAHeatmap(image_size=self.image_size, post_process=self.post_process,
                           post_type=self.post_type, blur_kernel=self.blur_kernel,
                           shift_heatmap=self.shift_heatmap)  # fmt: skip

    def _outputs(self, x):
        return tuple(o.float() for o in self.method.net_heatmaps(self.network(x)))

    def forward(self, x):
        """Heatmaps of the chosen head for a normalised (N, 3, H, W) batch: (N, K, h, w).

        As the engine's evaluation: one heatmap per network, each averaged with its flip-test
        counterpart, then the method's evaluated heads (e.g. PoseDual's ensemble) from them.
        """
        outs = self._outputs(x)
        if self.flip_test:
            outs = self.codec.merge_flip(outs, self._outputs(torch.flip(x, [3])), self.flip_pairs)
        return self.method.eval_heatmaps(outs)[self.head]

    def preprocess(self, crops):
        """(N, H, W, 3) uint8 crops -> the normalised (N, 3, H, W) float32 batch on the device.

        The same arithmetic as ``ToTensor`` + ``Normalize`` of the dataset pipeline.
        """
        x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device)
        x = x.permute(0, 3, 1, 2).contiguous().float().div(255)
        x = x.sub(self.pixel_mean.view(1, 3, 1, 1)).div(self.pixel_std.view(1, 3, 1, 1))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def box_to_center_scale(box, aspect_ratio, padding=1.25):
    """Crop centre and scale of a box, as the COCO dataset's ``_xywh2cs``.

    The box is widened or heightened to the network's aspect ratio, then enlarged by ``padding``.

    Args:
        box: ``(x, y, w, h)`` in image pixels.
        aspect_ratio: network input width / height.
        padding: margin factor (1.25 in every original experiment).

    Returns:
        ``(center (2,), scale (2,))`` float32, the scale in units of 200 px.
    """
    x, y, w, h = (float(v) for v in box[:4])
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float32)
    if w > aspect_ratio * h:
        h = w * 1.0 / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w * 1.0 / _PIXEL_STD, h * 1.0 / _PIXEL_STD], dtype=np.float32)
    if center[0] != -1:
        scale = scale * padding
    return center, scale


def crop_person(image, center, scale, image_size, rotation=0.0):
    """The network-input crop of one person, as the validation crops it (bilinear affine warp).

    Args:
        image: (H, W, 3) uint8 image.
        center: (2,) crop centre.
        scale: (2,) crop scale (unit 200 px).
        image_size: network input ``(W, H)``.
        rotation: degrees.

    Returns:
        (image_size[1], image_size[0], 3) uint8 crop (black outside the image).
    """
    size = np.array(image_size, dtype=np.int64)
    trans = get_affine_transform(
        np.array(center, dtype=np.float64), np.array(scale, dtype=np.float64), float(rotation), size
    )
    return cv2.warpAffine(image, trans, (int(size[0]), int(size[1])), flags=cv2.INTER_LINEAR)


def read_image(image):
    """A BGR uint8 (H, W, 3) image from a path or an array.

    Arrays are taken as BGR; grey (H, W) and BGRA (H, W, 4) ones are converted.

    Raises:
        FileNotFoundError: the path does not exist.
        semipose.common.errors.DataFileError: the file is not a readable image (a ``ValueError``).
        ValueError: the array has another shape or dtype.
    """
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"image not found: {path}")
        img = cv2.imread(path, _READ_FLAGS)
        if img is None:
            raise DataFileError(f"cannot read image {path}: not an image file, or corrupt")
        return img
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"image array must be uint8 BGR, got dtype {img.dtype}")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image array must be (H, W, 3) BGR, got shape {img.shape}")
    return img


def _as_boxes(boxes, image):
    """(P, 5) float64 ``x, y, w, h, score`` from None / (4,) / (5,) / (P, 4) / (P, 5)."""
    height, width = image.shape[:2]
    if boxes is None:
        return np.array([[0.0, 0.0, width, height, 1.0]], dtype=np.float64)
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1) if arr.size else arr.reshape(0, 5)
    if arr.ndim != 2 or arr.shape[1] not in (4, 5):
        raise ValueError(f"boxes must be (P, 4) x, y, w, h or (P, 5) with a score, got {arr.shape}")
    if arr.shape[1] == 4:
        arr = np.concatenate([arr, np.ones((arr.shape[0], 1))], axis=1)
    return arr


def _box_problem(box, width, height):
    """Why a box cannot be used (not finite, no area, at most 1x1 pixel, outside the image), or
    None."""
    if not np.isfinite(box[:5]).all():
        return "is not finite"
    return box_problem(box, width, height)  # the rule of the annotation checks


def _rescore(native, box_score, in_vis_thre):
    scores = native[:, 2]
    valid = scores[scores > in_vis_thre]
    return (float(valid.mean()) if valid.size else 0.0) * float(box_score)


def _usable_boxes(boxes, width, height, image_name):
    """Indices of the usable boxes; each unusable one is logged with its problem."""
    keep = []
    for i, box in enumerate(boxes):
        problem = _box_problem(box, width, height)
        if problem:
            logger.warning(
                "%s: box %d [%s] %s; skipped", image_name, i,
                ", ".join(f"{v:g}" for v in box[:4]), problem,
            )
        else:
            keep.append(i)
    return keep


def _predict_crops(model, img, centers, scales, batch):
    """(P, K, 3) union-layout x, y, score in image pixels for the P crops, ``batch`` at a time."""
    union = []
    for start in range(0, len(centers), batch):
        stop = min(start + batch, len(centers))
        crops = np.stack(
            [crop_person(img, centers[n], scales[n], model.image_size) for n in range(start, stop)]
        )
        heatmaps = model(model.preprocess(crops)).cpu().numpy()
        preds, maxvals = model.codec.decode(
            heatmaps, centers[start:stop], scales[start:stop], np.zeros(stop - start)
        )
        out = np.zeros((stop - start, preds.shape[1], 3), dtype=np.float32)
        out[:, :, 0:2] = preds[:, :, 0:2]
        out[:, :, 2:3] = maxvals
        union.append(out)
    return np.concatenate(union, axis=0)


@torch.no_grad()
def inference_topdown(model, image, boxes=None, *, batch_size=None, image_name=None):
    """Keypoints of the people in ``image``, one prediction per usable box.

    Args:
        model: a ``TopDownPoseModel`` (``init_model``).
        image: a path, or a (H, W, 3) uint8 BGR array.
        boxes: (P, 4) ``x, y, w, h`` or (P, 5) with a score (default 1); None -> the whole image.
        batch_size: crops per forward pass (default ``model.batch_size``).
        image_name: names the image in warnings (default: the path, else ``'image'``).

    Returns:
        list of ``PersonPose`` in box order. Boxes without area, with non-finite values or lying
        entirely outside the image are skipped with a warning naming them (``box_index`` tells
        which boxes the predictions belong to).

    Raises:
        FileNotFoundError: the image path does not exist.
        ValueError: the image cannot be read, or ``boxes`` has a wrong shape.
    """
    if image_name is None:
        image_name = os.fspath(image) if isinstance(image, (str, os.PathLike)) else "image"
    img = read_image(image)
    height, width = img.shape[:2]
    boxes = _as_boxes(boxes, img)
    keep = _usable_boxes(boxes, width, height, image_name)
    if not keep:
        return []
    if model.color_rgb:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    centers = np.zeros((len(keep), 2), dtype=np.float32)
    scales = np.zeros((len(keep), 2), dtype=np.float32)
    for n, i in enumerate(keep):
        centers[n], scales[n] = box_to_center_scale(boxes[i], model.aspect_ratio)

    union = _predict_crops(model, img, centers, scales, batch_size or model.batch_size)

    layout = model.layout
    poses = []
    for n, i in enumerate(keep):
        native = layout.select(union[n]) if union.shape[1] > layout.num_joints else union[n]
        poses.append(
            PersonPose(
                keypoints=np.ascontiguousarray(native),
                bbox=boxes[i, :4].copy(),
                bbox_score=float(boxes[i, 4]),
                score=_rescore(native, boxes[i, 4], model.in_vis_thre),
                center=centers[n],
                scale=scales[n],
                box_index=i,
                union_keypoints=union[n],
            )
        )
    return poses


def oks_nms_poses(poses, thr, sigmas=None):
    """Greedy OKS-NMS over one image's poses, as the COCO evaluation does.

    Args:
        poses: list of ``PersonPose``.
        thr: OKS threshold (``TEST.OKS_THRE``); None keeps every pose.
        sigmas: per-joint OKS sigmas (default: COCO's; the layout's ``sigmas``).

    Returns:
        The kept poses, best score first (all of them, in their order, when ``thr`` is None or the
        list is empty).
    """
    if thr is None or not poses:
        return list(poses)
    from semipose.nms.nms import oks_nms

    records = [{"keypoints": p.keypoints, "area": p.area, "score": p.score} for p in poses]
    keep = oks_nms(records, thr, sigmas=sigmas)
    return [poses[k] for k in keep] if keep else list(poses)


def load_pose_weights(network, checkpoint, method=None, net="net1"):
    """Loads a checkpoint into ``network`` with strict key checking and safe (weights-only) reading.

    The method picks the part of the checkpoint its eval module loads (``eval_state``; as valid.py,
    a single network reads net 1 of a PoseDual/PoseCons file). A ``net`` the method does not
    evaluate but can read out of a file (``Method.readable_nets``, e.g. ``'net2'`` for a single
    network) is passed on, so the single network reads that network's weights instead.

    Raises:
        FileNotFoundError: the checkpoint does not exist.
        ValueError: the method cannot read ``net`` out of this checkpoint.
        semipose.checkpoint.files.StateDictMismatchError: the keys or shapes do not match.
    """
    from semipose.checkpoint.files import load_checkpoint, load_model_state, unwrap_state_dict

    state = unwrap_state_dict(load_checkpoint(checkpoint, map_location="cpu"))
    if method is not None:
        reads = net if net in method.readable_nets and net not in method.heads else None
        try:
            state = method.eval_state(state, reads)
        except ValueError as e:
            raise ValueError(f"net={net!r}: {checkpoint}: {e}") from None
    load_model_state(network, state, strict=True, source=checkpoint)


def _resolve_device(device, cfg_device="auto"):
    if device is None:
        device = cfg_device or "auto"
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def _config_of(cfg_or_yaml, opts):
    """The config given, or the one loaded from the YAML path with ``opts`` merged."""
    from semipose.config import load_config

    if isinstance(cfg_or_yaml, CfgNode):
        if opts:
            raise ValueError("opts are applied to a YAML path; pass a config already merged")
        return cfg_or_yaml
    return load_config(os.fspath(cfg_or_yaml), list(opts))


def _load_head_weights(cfg, method, network, net, checkpoint):
    """Loads ``net``'s weights (when a checkpoint is given or configured); returns the head run."""
    heads = tuple(getattr(method, "heads", ("net1",)))
    # A network the method does not evaluate but reads out of a checkpoint (a single network
    # holding net 2's weights) is read as its only head.
    single_net2 = net not in heads and net in method.readable_nets
    if net == "net2" and "net2" not in heads and not single_net2:
        raise ValueError(f"net='net2' needs a two-network model (pose_dual), got {cfg.MODEL.NAME}")
    checkpoint = checkpoint if checkpoint is not None else (cfg.TEST.MODEL_FILE or None)
    if checkpoint:
        load_pose_weights(network, checkpoint, method, net)
        logger.info("loaded %s weights from %s", cfg.MODEL.NAME, checkpoint)
    elif single_net2:
        raise ValueError("net='net2' of a single network needs a PoseDual checkpoint to read")
    else:
        logger.warning("no checkpoint given: %s keeps its random initial weights", cfg.MODEL.NAME)
    return heads[0] if single_net2 else net


def _resolve_layout(cfg, layout):
    """The keypoint layout: the one given, the named one, or that of the test dataset."""
    if isinstance(layout, KeypointLayout):
        return layout
    return (layout_for_dataset(layout) if layout in LAYOUTS
            else dataset_layout(cfg, layout or None))


def _topdown_model(cfg, network, method, head, kp_layout, flip_test, post_type):
    """Wraps ``network`` in a ``TopDownPoseModel`` with the config's test settings."""
    return TopDownPoseModel(
        network,
        head=head,
        method=method,
        image_size=cfg.MODEL.IMAGE_SIZE,
        layout=kp_layout,
        flip_test=cfg.TEST.FLIP_TEST if flip_test is None else flip_test,
        shift_heatmap=cfg.TEST.SHIFT_HEATMAP,
        post_process=cfg.TEST.POST_PROCESS,
        post_type=post_type or cfg.TEST.POST_TYPE,
        blur_kernel=cfg.TEST.BLUR_KERNEL,
        flip_pairs=FLIP_PAIRS if kp_layout.flip_pairs is None else kp_layout.flip_pairs,
        in_vis_thre=cfg.TEST.IN_VIS_THRE,
        oks_thre=cfg.TEST.OKS_THRE,
        color_rgb=cfg.DATASET.COLOR_RGB,
        channels_last=cfg.TRAIN.CHANNELS_LAST,
        batch_size=cfg.TEST.BATCH_SIZE,
        cfg=cfg,
    )


def init_model(
    cfg_or_yaml,
    checkpoint=None,
    device=None,
    net="ensemble",
    *,
    opts=(),
    flip_test=None,
    post_type=None,
    layout=None,
):
    """A ready-to-run pose model: built from the config, weights loaded, in eval mode.

    Args:
        cfg_or_yaml: a frozen config (``semipose.config.load_config``) or the path of an
            experiment YAML.
        checkpoint: weights file (a released checkpoint, ``final_state.pth.tar``, ``model_best`` or
            a training checkpoint); None -> ``TEST.MODEL_FILE``, and when that is empty the network
            keeps its random initialisation (with a warning).
        device: ``'cpu'``, ``'cuda'``, ``'cuda:1'``, a ``torch.device``; None -> ``DEVICE`` of the
            config (``'auto'``: CUDA when present).
        net: ``'ensemble'`` (PoseDual: mean of both heatmaps; single networks: their heatmap),
            ``'net1'`` or ``'net2'`` (PoseDual's second network; with a single-network config, net
            2's weights of a PoseDual checkpoint).
        opts: ``KEY VALUE`` overrides, with a YAML path only.
        flip_test: override ``TEST.FLIP_TEST``.
        post_type: override ``TEST.POST_TYPE`` (``'shift'`` or ``'dark'``).
        layout: keypoint layout name (``'coco'``, ``'mpii'``, ``'ai_challenger'``); None -> that of
            ``DATASET.TEST_DATASET``.

    Returns:
        ``TopDownPoseModel`` on ``device``, in eval mode.

    Raises:
        ValueError: an unknown ``net``, or ``net='net2'`` for a model and checkpoint without one.
        FileNotFoundError: the YAML or the checkpoint does not exist.
    """
    if net not in HEADS:
        raise ValueError(f"net must be one of {HEADS}, got {net!r}")
    cfg = _config_of(cfg_or_yaml, opts)
    method, network = _build_method(cfg)
    head = _load_head_weights(cfg, method, network, net, checkpoint)
    kp_layout = _resolve_layout(cfg, layout)
    model = _topdown_model(cfg, network, method, head, kp_layout, flip_test, post_type)
    model = model.to(_resolve_device(device, cfg.DEVICE)).eval()
    if model.channels_last:
        model.network.to(memory_format=torch.channels_last)
    return model
