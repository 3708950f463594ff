"""Every config value a run depends on, checked before any work.

``check_config(cfg, phase)`` is called by ``do_train``, ``do_valid`` and the inference runner right
after the config is built and before a folder is created or a file read. A bad value ends the run
with one ``ConfigError`` line naming the key, the value, where it came from (the YAML file, the
command line or the defaults) and what is expected. The output and log folders are checked for
being creatable and writable, with the operating system's reason.
"""

import errno
import math
import os
import tempfile

from semipose.config import ConfigError, config_source

__all__ = ["check_config", "check_writable_folder"]

#: the output stride of every pose network here (ResNet + deconvolutions, HRNet, PoseLite)
HEATMAP_STRIDE = 4
#: the input must be a multiple of the backbone's deepest stride
INPUT_MULTIPLE = {"resnet": 32, "hrnet": 32, "lite": 16}


def _bad(cfg, key, value, expected):
    return ConfigError(f"{key} {value!r} (from {config_source(cfg, key)}): expected {expected}")


def _get(cfg, key):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def _at_least(cfg, key, low, what="an integer"):
    value = _get(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _bad(cfg, key, value, f"{what} >= {low}")


def _positive_finite(cfg, key):
    value = _get(cfg, key)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not (
            math.isfinite(value) and value > 0):
        raise _bad(cfg, key, value, "a finite number > 0")


def _check_training(cfg):
    t = cfg.TRAIN
    _at_least(cfg, "TRAIN.BATCH_SIZE", 1)
    _at_least(cfg, "TRAIN.BEGIN_EPOCH", 0)
    if t.END_EPOCH <= t.BEGIN_EPOCH:
        raise _bad(cfg, "TRAIN.END_EPOCH", t.END_EPOCH,
                   f"more than TRAIN.BEGIN_EPOCH ({t.BEGIN_EPOCH}): nothing to train")
    _positive_finite(cfg, "TRAIN.LR")
    _positive_finite(cfg, "TRAIN.LR_FACTOR")
    steps = list(t.LR_STEP)
    if any(s < 0 for s in steps) or steps != sorted(steps):
        raise _bad(cfg, "TRAIN.LR_STEP", steps, "non-negative epochs in increasing order")
    _at_least(cfg, "TRAIN.WARMUP_ITERS", 0)
    _at_least(cfg, "TRAIN.MAX_ITERS", 0, "an integer (0: whole epochs)")
    if not (isinstance(t.WD, (int, float)) and math.isfinite(t.WD) and t.WD >= 0):
        raise _bad(cfg, "TRAIN.WD", t.WD, "a finite number >= 0")
    if not 0 <= t.MOMENTUM < 1:
        raise _bad(cfg, "TRAIN.MOMENTUM", t.MOMENTUM, "a number in [0, 1)")
    if t.OPTIMIZER not in ("adam", "sgd"):
        raise _bad(cfg, "TRAIN.OPTIMIZER", t.OPTIMIZER, "'adam' or 'sgd'")
    from semipose.utils.optim import SCHEDULERS

    if t.LR_SCHEDULER not in SCHEDULERS:
        raise _bad(cfg, "TRAIN.LR_SCHEDULER", t.LR_SCHEDULER, f"one of {list(SCHEDULERS)}")
    if t.LOSS_LIMIT < 0:
        raise _bad(cfg, "TRAIN.LOSS_LIMIT", t.LOSS_LIMIT, "a number >= 0 (0: no bound)")
    _at_least(cfg, "TEST.INTERVAL", 1)
    _at_least(cfg, "SAVE_INTER", 0)
    if cfg.MODEL.INIT_WEIGHTS and cfg.MODEL.PRETRAINED and not os.path.isfile(
            cfg.MODEL.PRETRAINED):
        raise _bad(cfg, "MODEL.PRETRAINED", cfg.MODEL.PRETRAINED,
                   "an existing weights file (or '' for a random initialisation); no such file")


def _check_model(cfg):
    from semipose.common.joints import NUM_UNION_JOINTS
    from semipose.dataset.build import DATASETS, dataset_metainfo, dataset_num_joints
    from semipose.methods.registry import method_names

    if cfg.MODEL.NAME not in method_names():
        raise _bad(cfg, "MODEL.NAME", cfg.MODEL.NAME, f"one of {method_names()}")
    for key in ("DATASET.TRAIN_DATASET", "DATASET.TEST_DATASET"):
        name = _get(cfg, key)
        if name not in DATASETS:
            raise _bad(cfg, key, name, f"one of {sorted(DATASETS)}")
    _at_least(cfg, "MODEL.NUM_JOINTS", 1)
    for key in ("DATASET.TRAIN_DATASET", "DATASET.TEST_DATASET"):
        joints = dataset_num_joints(cfg, _get(cfg, key))
        if joints is not None and joints != cfg.MODEL.NUM_JOINTS:
            source = f"the joints of {key} {_get(cfg, key)!r}"
            if joints != NUM_UNION_JOINTS or cfg.DATASET.METAINFO:
                source += f" (metainfo {dataset_metainfo(cfg, _get(cfg, key)).path})"
            raise _bad(cfg, "MODEL.NUM_JOINTS", cfg.MODEL.NUM_JOINTS, f"{joints}, {source}")
    width, height = cfg.MODEL.IMAGE_SIZE
    hm_w, hm_h = cfg.MODEL.EXTRA.HEATMAP_SIZE
    multiple = INPUT_MULTIPLE.get(cfg.MODEL.BACKBONE)
    if multiple and (width % multiple or height % multiple):
        raise _bad(cfg, "MODEL.IMAGE_SIZE", [width, height],
                   f"a width and height divisible by {multiple} for MODEL.BACKBONE "
                   f"{cfg.MODEL.BACKBONE!r}")
    if multiple and (hm_w * HEATMAP_STRIDE, hm_h * HEATMAP_STRIDE) != (width, height):
        raise _bad(cfg, "MODEL.EXTRA.HEATMAP_SIZE", [hm_w, hm_h],
                   f"MODEL.IMAGE_SIZE / {HEATMAP_STRIDE} = [{width // HEATMAP_STRIDE}, "
                   f"{height // HEATMAP_STRIDE}] (the networks' output stride)")


def check_writable_folder(cfg, key, path=None):
    """Creates the folder of ``key`` (or ``path``) if needed and checks a file can be written
    there.

    Raises:
        ConfigError: naming the key, the folder and the operating system's reason.
    """
    path = str(path or _get(cfg, key) or "")
    if not path:
        return
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write_check."):
            pass
    except OSError as err:
        reason = err.strerror or str(err)
        if err.errno == errno.ENOTDIR or (os.path.exists(path) and not os.path.isdir(path)):
            reason = "a part of the path is a file, not a folder"
        raise ConfigError(
            f"{key} {_get(cfg, key)!r} (from {config_source(cfg, key)}): cannot create or write "
            f"the folder {path}: {reason}"
        ) from None


def check_config(cfg, phase="train"):
    """Checks the values ``phase`` ('train', 'valid' or 'infer') depends on.

    Raises:
        ConfigError: the first bad value: key, value, source and what is expected.
    """
    _at_least(cfg, "WORKERS", 0)
    _at_least(cfg, "TEST.BATCH_SIZE", 1)
    _at_least(cfg, "PRINT_FREQ", 0, "an integer (0: one line per epoch)")
    if cfg.DEVICE not in ("auto", "cpu", "cuda") and not str(cfg.DEVICE).startswith("cuda:"):
        raise _bad(cfg, "DEVICE", cfg.DEVICE, "'auto', 'cpu', 'cuda' or 'cuda:N'")
    _check_model(cfg)
    if phase == "train":
        _check_training(cfg)
    if phase in ("train", "valid"):
        check_writable_folder(cfg, "OUTPUT_DIR")
    if phase == "train":
        check_writable_folder(cfg, "LOG_DIR")
