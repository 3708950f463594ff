"""Dataset registry and builder: the only place that reads the config for datasets."""

import logging
import os

from torchvision import transforms as T

from semipose.common.joints import NUM_UNION_JOINTS
from semipose.dataset.ai_challenger import AIDataset
from semipose.dataset.coco import COCODataset
from semipose.dataset.mixed import MixedCOCOCOCODataset, MixedMPIIAIDataset
from semipose.dataset.mpii import MPIIDataset
from semipose.dataset.synthetic import generate, is_generated, preset_kwargs

__all__ = [
    "DATASETS",
    "build_dataset",
    "dataset_num_joints",
    "default_transform",
    "ensure_synthetic",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

logger = logging.getLogger(__name__)

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

DATASETS = {
    "coco": COCODataset,
    "ai_challenger": AIDataset,
    "mpii": MPIIDataset,
    "mix_coco_coco": MixedCOCOCOCODataset,
    "mix_mpii_ai": MixedMPIIAIDataset,
}


def dataset_num_joints(cfg, name):
    """The number of heatmap channels the dataset ``name`` produces (every built-in set is in the
    24-joint union layout), or None when it is not known before the dataset is built."""
    del cfg  # the built-in sets do not depend on it
    return NUM_UNION_JOINTS if name in DATASETS else None


def default_transform():
    """ToTensor + Normalize with the ImageNet RGB mean/std (applied to the BGR crop, spec §9.4)."""
    return T.Compose([T.ToTensor(), T.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD)])


def _joints_kwargs(cfg):
    return {
        "image_size": tuple(int(v) for v in cfg.MODEL.IMAGE_SIZE),
        "heatmap_size": tuple(int(v) for v in cfg.MODEL.EXTRA.HEATMAP_SIZE),
        "sigma": cfg.MODEL.EXTRA.SIGMA,
        "target_type": cfg.MODEL.EXTRA.get("TARGET_TYPE", "gaussian"),
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


_KWARGS = {
    "coco": _coco_kwargs,
    "ai_challenger": _aic_kwargs,
    "mpii": _mpii_kwargs,
    "mix_coco_coco": _mix_coco_kwargs,
    "mix_mpii_ai": _mix_mpii_ai_kwargs,
}


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
        KeyError: naming the registered datasets when the name is unknown.
        FileNotFoundError: ``DATASET.SYNTHETIC.ENABLED`` and the synthetic set is missing or was
            made with other parameters (``ensure_synthetic(cfg)`` makes it; this never does).
    """
    name = cfg.DATASET.TRAIN_DATASET if is_train else cfg.DATASET.TEST_DATASET
    image_set = cfg.DATASET.TRAIN_SET if is_train else cfg.DATASET.TEST_SET
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; registered: {sorted(DATASETS)}")
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
    kwargs = _KWARGS[name](cfg, is_train)
    if is_train and cfg.DATASET.DEVICE_WARP:
        if name.startswith("mix_") and cfg.CONS_RAND_AUG:
            raise ValueError(
                "DATASET.DEVICE_WARP renders the crops on the device, after the workers, but the "
                "RandAugment view (CONS_RAND_AUG) is made from the crop in the workers; turn one "
                "of them off"
            )
        kwargs["device_warp"] = True
    return DATASETS[name](
        root=cfg.DATASET.ROOT, image_set=image_set, is_train=is_train, transform=transform, **kwargs
    )
