"""Dataset registry and builder: the only place that reads the config for datasets."""

import logging
import os
from dataclasses import dataclass

from torchvision import transforms as T

from semipose.codecs.heatmap import target_settings
from semipose.common.errors import UserError
from semipose.common.joints import NUM_UNION_JOINTS, get_su, trained_joints
from semipose.common.metainfo import builtin_metainfo, load_metainfo
from semipose.dataset.ai_challenger import AIDataset
from semipose.dataset.coco import COCODataset
from semipose.dataset.custom import CustomDataset, MixedCustomDataset
from semipose.dataset.mixed import MixedCOCOCOCODataset, MixedMPIIAIDataset
from semipose.dataset.mpii import MPIIDataset
from semipose.dataset.synthetic import generate, is_generated, preset_kwargs
from semipose.utils.vis import KeypointLayout, layout_from_metainfo

__all__ = [
    "DATASETS",
    "DatasetEntry",
    "UnknownDatasetError",
    "build_dataset",
    "dataset_layout",
    "dataset_metainfo",
    "dataset_num_joints",
    "dataset_trained_joints",
    "default_transform",
    "ensure_synthetic",
    "register_dataset",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

logger = logging.getLogger(__name__)

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


@dataclass(frozen=True)
class DatasetEntry:
    """One registered dataset: everything the framework needs to know about it.

    Attributes:
        cls: the dataset class, called as ``cls(root=, image_set=, is_train=, transform=,
            **kwargs(cfg, is_train))``.
        kwargs: ``(cfg, is_train) -> dict`` of the class's keyword arguments.
        metainfo: the keypoint set the predictions are read in: a built-in metainfo name, or
            ``None`` for the file named by ``DATASET.METAINFO``.
        evaluator: the metric, in words (what ``evaluate`` reports).
        union: the channels are the 24-joint union layout (the native joints at their union
            channels); False: the metainfo's joints themselves, in their order.
        cutout_pool: Joint Cutout with MASK_JOINT_FIX draws among the trained joints (False: the
            method is told nothing, as for a set nobody trains from).
    """

    cls: type
    kwargs: object
    metainfo: object
    evaluator: str
    union: bool = True
    cutout_pool: bool = True


def dataset_metainfo(cfg, name=None):
    """The ``Metainfo`` of dataset ``name`` (default ``DATASET.TEST_DATASET``).

    Raises:
        UserError: the name is not registered, or a custom set's ``DATASET.METAINFO`` is empty or
            not a valid file.
    """
    entry = _entry(name or cfg.DATASET.TEST_DATASET)
    if entry.metainfo is not None:
        return builtin_metainfo(entry.metainfo)
    if not cfg.DATASET.METAINFO:
        raise UserError(f"dataset {name!r} needs DATASET.METAINFO (a metainfo YAML file)")
    return load_metainfo(_resolve(cfg, cfg.DATASET.METAINFO))


def dataset_num_joints(cfg, name):
    """The number of heatmap channels the dataset ``name`` produces: 24 for the union-layout sets,
    the metainfo's joint count for the others; None for an unregistered name."""
    if name not in DATASETS:
        return None
    if DATASETS[name].union:
        return NUM_UNION_JOINTS
    return dataset_metainfo(cfg, name).num_joints


def dataset_trained_joints(cfg, name=None):
    """The channels the labeled set of ``name`` (default ``DATASET.TRAIN_DATASET``) trains, among
    which Joint Cutout draws (``MASK_JOINT_FIX``), or None when the registry says so."""
    name = name or cfg.DATASET.TRAIN_DATASET
    if name not in DATASETS or not DATASETS[name].cutout_pool:
        return None
    meta = dataset_metainfo(cfg, name)
    if DATASETS[name].union:
        return trained_joints(meta.joints)
    return list(range(meta.num_joints))


def dataset_layout(cfg, name=None):
    """The ``KeypointLayout`` (drawing, inference) of dataset ``name`` (default
    ``DATASET.TEST_DATASET``); a ``KeypointLayout`` is returned as is."""
    if isinstance(name, KeypointLayout):
        return name
    name = name or cfg.DATASET.TEST_DATASET
    meta = dataset_metainfo(cfg, name)
    union_index = get_su(meta.joints) if _entry(name).union else None
    return layout_from_metainfo(meta, union_index)


class UnknownDatasetError(UserError, KeyError):
    """A dataset name that is not registered (a KeyError as well, as before the registry)."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


def _entry(name):
    if name not in DATASETS:
        raise UnknownDatasetError(f"unknown dataset {name!r}; registered: {sorted(DATASETS)}")
    return DATASETS[name]


def _resolve(cfg, path):
    """A config path: as given when absolute or existing, else relative to DATASET.ROOT."""
    path = str(path)
    if os.path.isabs(path) or os.path.exists(path) or not os.path.splitext(path)[1]:
        return path
    return os.path.join(cfg.DATASET.ROOT, path)


def default_transform():
    """ToTensor + Normalize with the ImageNet RGB mean/std (applied to the BGR crop, spec §9.4)."""
    return T.Compose([T.ToTensor(), T.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD)])


def _joints_kwargs(cfg):
    return {
        **target_settings(cfg),
        "scale_factor": cfg.DATASET.SCALE_FACTOR,
        "rotation_factor": cfg.DATASET.ROT_FACTOR,
        "flip": cfg.DATASET.FLIP,
        "color_rgb": cfg.DATASET.COLOR_RGB,
        "num_joints_half_body": cfg.DATASET.NUM_JOINTS_HALF_BODY,
        "prob_half_body": cfg.DATASET.PROB_HALF_BODY,
        "data_format": cfg.DATASET.DATA_FORMAT,
        "select_data": cfg.DATASET.SELECT_DATA,
        "reduced_decode": cfg.DATASET.REDUCED_DECODE,
        "crop_cache": cfg.DATASET.CROP_CACHE,
        "crop_cache_format": cfg.DATASET.CROP_CACHE_FORMAT,
    }


def _coco_eval_kwargs(cfg):
    return {
        "use_gt_bbox": cfg.TEST.USE_GT_BBOX,
        "bbox_file": cfg.TEST.COCO_BBOX_FILE,
        "unsup_bbox_file": cfg.DATASET.UNSUP_BBOX_FILE or cfg.TEST.COCO_BBOX_FILE,
        "image_thre": cfg.TEST.IMAGE_THRE,
        "oks_thre": cfg.TEST.OKS_THRE,
        "in_vis_thre": cfg.TEST.IN_VIS_THRE,
        "save_result": cfg.TEST.SAVE_RESULT,
    }


def _coco_kwargs(cfg, is_train):
    kw = {**_joints_kwargs(cfg), **_coco_eval_kwargs(cfg)}
    kw["train_len"] = cfg.DATASET.TRAIN_LEN if is_train else -1
    return kw


def _mpii_kwargs(cfg, is_train):
    return _joints_kwargs(cfg)


def _aic_kwargs(cfg, is_train):
    return {
        **_joints_kwargs(cfg),
        "in_vis_thre": cfg.TEST.IN_VIS_THRE,
        "save_result": cfg.TEST.SAVE_RESULT,
    }


def _mix_common(cfg):
    return {
        "raw_input": cfg.RAW_INPUT,
        "cons_rand_aug": cfg.CONS_RAND_AUG,
        "rand_magnitude": cfg.RAND_MAGNITUDE,
        "seed": cfg.SEED,
    }


def _mix_coco_kwargs(cfg, is_train):
    kw = {**_coco_kwargs(cfg, is_train), **_mix_common(cfg)}
    kw["train_len"] = cfg.DATASET.TRAIN_LEN
    kw["unsup_set"] = cfg.DATASET.TRAIN_UNSUP_SET
    return kw


def _mix_mpii_ai_kwargs(cfg, is_train):
    return {**_aic_kwargs(cfg, is_train), **_mix_common(cfg)}


def _custom_common(cfg, is_train):
    kw = {**_coco_kwargs(cfg, is_train)}
    kw.pop("unsup_bbox_file")
    if is_train:  # detection boxes (TEST.USE_GT_BBOX False) are for the val set
        kw.pop("bbox_file")
    kw["metainfo"] = dataset_metainfo(cfg, "custom")
    kw["ann_file"] = cfg.DATASET.TRAIN_ANN if is_train else cfg.DATASET.VAL_ANN
    kw["images"] = cfg.DATASET.TRAIN_IMAGES if is_train else cfg.DATASET.VAL_IMAGES
    kw["category"] = cfg.DATASET.CATEGORY
    kw["metric"] = cfg.TEST.METRIC
    kw["pck_threshold"] = cfg.TEST.PCK_THRESHOLD
    return kw


def _custom_kwargs(cfg, is_train):
    kw = _custom_common(cfg, is_train)
    if is_train and cfg.DATASET.UNLABELED:
        kw.update(_mix_common(cfg))
        kw["unlabeled"] = list(cfg.DATASET.UNLABELED)
        kw["unlabeled_boxes"] = cfg.DATASET.UNLABELED_BOXES
        kw["video_fps"] = cfg.DATASET.VIDEO_FPS
    return kw


def _custom_class(**kwargs):
    """``custom``: the labeled set alone, or paired with the unlabeled pool when the config names
    one (training only)."""
    if "unlabeled" in kwargs:
        return MixedCustomDataset(**kwargs)
    return CustomDataset(**kwargs)


#: Dataset name -> its entry (``register_dataset`` adds one).
DATASETS = {
    "coco": DatasetEntry(COCODataset, _coco_kwargs, "coco", "COCO keypoint AP (OKS)"),
    "ai_challenger": DatasetEntry(AIDataset, _aic_kwargs, "ai_challenger",
                                  "AI Challenger keypoint AP", cutout_pool=False),
    "mpii": DatasetEntry(MPIIDataset, _mpii_kwargs, "mpii", "MPII PCKh@0.5"),
    "mix_coco_coco": DatasetEntry(MixedCOCOCOCODataset, _mix_coco_kwargs, "coco",
                                  "COCO keypoint AP (OKS)"),
    "mix_mpii_ai": DatasetEntry(MixedMPIIAIDataset, _mix_mpii_ai_kwargs, "mpii", "MPII PCKh@0.5"),
    "custom": DatasetEntry(_custom_class, _custom_kwargs, None,
                           "COCO keypoint AP with the metainfo's sigmas, or PCK (TEST.METRIC)",
                           union=False),
}  # fmt: skip


def register_dataset(name, entry):
    """Adds (or replaces) the dataset ``name``: a ``DatasetEntry``."""
    if not isinstance(entry, DatasetEntry):
        raise TypeError(f"register_dataset({name!r}) needs a DatasetEntry, got {type(entry)}")
    DATASETS[name] = entry


def _synthetic_kwargs(cfg):
    syn = cfg.DATASET.SYNTHETIC
    size = tuple(int(v) for v in syn.IMAGE_SIZE)
    return {
        "num_train": syn.NUM_TRAIN,
        "num_val": syn.NUM_VAL,
        "image_size": size,
        "seed": syn.SEED,
        **preset_kwargs(syn.PRESET, size),
    }


def ensure_synthetic(cfg):
    """Generates the synthetic COCO-format set under ``DATASET.ROOT`` unless it is already there
    with the parameters of ``DATASET.SYNTHETIC`` (other parameters regenerate it).

    The explicit call that makes the set (the engine's setup and the CLI call it before
    ``build_dataset``, which never generates). A file lock (``<ROOT>/coco/.synthetic.lock``)
    serialises concurrent callers (DDP ranks, tests), so only the first one generates; the others
    wait and find the files.
    """
    import fcntl  # POSIX only: imported here so that the module itself imports anywhere

    root = cfg.DATASET.ROOT
    os.makedirs(os.path.join(root, "coco"), exist_ok=True)
    with open(os.path.join(root, "coco", ".synthetic.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            result = generate(root, **_synthetic_kwargs(cfg))
            if result["generated"]:
                logger.info("=> generated the synthetic COCO-format set under %s", root)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build_dataset(cfg, is_train, transform=None):
    """Builds the training (``TRAIN_DATASET``/``TRAIN_SET``) or the test (``TEST_*``) dataset.

    Args:
        cfg: the frozen config.
        is_train: training set if True, else the validation set.
        transform: crop transform; None -> ``default_transform()``.

    Returns:
        The dataset instance.

    Raises:
        UserError: naming the registered datasets when the name is unknown.
        FileNotFoundError: ``DATASET.SYNTHETIC.ENABLED`` and the synthetic set is missing or was
            made with other parameters (``ensure_synthetic(cfg)`` makes it; this never does).
    """
    name = cfg.DATASET.TRAIN_DATASET if is_train else cfg.DATASET.TEST_DATASET
    image_set = cfg.DATASET.TRAIN_SET if is_train else cfg.DATASET.TEST_SET
    entry = _entry(name)
    if cfg.DATASET.SYNTHETIC.ENABLED and not is_generated(
        cfg.DATASET.ROOT, **_synthetic_kwargs(cfg)
    ):
        raise FileNotFoundError(
            f"the synthetic COCO-format set under {cfg.DATASET.ROOT!r} is missing or was made with "
            "other DATASET.SYNTHETIC parameters; generate it first with "
            "semipose.dataset.build.ensure_synthetic(cfg) or `python -m semipose.dataset.synthetic "
            f"--root {cfg.DATASET.ROOT}` (with the config's --num-train/--num-val/--width/--height"
            "/--seed)"
        )
    if transform is None:
        transform = default_transform()
    kwargs = entry.kwargs(cfg, is_train)
    if is_train and cfg.DATASET.DEVICE_WARP:
        if (name.startswith("mix_") or "unlabeled" in kwargs) and cfg.CONS_RAND_AUG:
            raise ValueError(
                "DATASET.DEVICE_WARP renders the crops on the device, after the workers, but the "
                "RandAugment view (CONS_RAND_AUG) is made from the crop in the workers; turn one "
                "of them off"
            )
        kwargs["device_warp"] = True
    return entry.cls(
        root=cfg.DATASET.ROOT, image_set=image_set, is_train=is_train, transform=transform, **kwargs
    )
