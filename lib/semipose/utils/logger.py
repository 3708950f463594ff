"""Output/log directory trees and logging set-up.

The original's ``create_logger`` (lib/utils/utils.py, MIT).
"""
import logging
import os
import time
from pathlib import Path

logger = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)-15s %(message)s"


def _require_model_name(model_name):
    if not model_name:
        raise TypeError(
            "model_name is required: pass model_name=semipose.config.get_model_name(cfg)[0] "
            "(semipose.utils does not import the config package)"
        )
    return model_name


def output_subdirs(cfg, cfg_path, model_name=None):
    """``(dataset, model, cfg_name)`` naming the experiment, as the original.

    ``dataset`` is TRAIN_DATASET (plus ``_<HYBRID_JOINTS_TYPE>``) with ':' replaced by '_';
    ``model`` is ``model_name``; ``cfg_name`` is the YAML basename up to its first '.'.

    Args:
        cfg: the config (``DATASET.TRAIN_DATASET``, ``DATASET.HYBRID_JOINTS_TYPE``).
        cfg_path: the YAML path, or None (``'default'``).
        model_name: ``semipose.config.get_model_name(cfg)[0]`` (e.g. ``'pose_dual_18'``); the
            caller passes it because this layer does not import the config package.

    Raises:
        TypeError: ``model_name`` is missing.
    """
    model = _require_model_name(model_name)
    dataset = cfg.DATASET.TRAIN_DATASET
    if cfg.DATASET.HYBRID_JOINTS_TYPE:
        dataset = f"{dataset}_{cfg.DATASET.HYBRID_JOINTS_TYPE}"
    dataset = dataset.replace(":", "_")
    cfg_name = os.path.basename(cfg_path or "default").split(".")[0]
    return dataset, model, cfg_name


def create_logger(cfg, cfg_path, phase="train", rank=0, model_name=None):
    """Creates the output and TensorBoard folders and configures the root logger.

    ``final_output_dir = OUTPUT_DIR/<dataset>/<model>/<cfg_name>`` holds the log file
    ``<cfg_name>_<YYYY-mm-dd-HH-MM>_<phase>.log``;
    ``tb_log_dir = LOG_DIR/<dataset>/<model>/<cfg_name>_<time>``.
    Only rank 0 writes the log file and logs at INFO; other ranks log warnings and errors only.
    ``model_name`` is required (see ``output_subdirs``).

    Returns:
        ``(logger, final_output_dir: str, tb_log_dir: str)``.
    """
    dataset, model, cfg_name = output_subdirs(cfg, cfg_path, model_name)
    root_output = Path(cfg.OUTPUT_DIR or "output")
    final_output_dir = root_output / dataset / model / cfg_name
    final_output_dir.mkdir(parents=True, exist_ok=True)
    time_str = time.strftime("%Y-%m-%d-%H-%M")
    tb_log_dir = Path(cfg.LOG_DIR or "log") / dataset / model / f"{cfg_name}_{time_str}"

    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_semipose", False):
            root.removeHandler(handler)
            handler.close()
    formatter = logging.Formatter(LOG_FORMAT)
    console = logging.StreamHandler()
    console.setFormatter(formatter)
    console._semipose = True
    root.addHandler(console)
    if rank == 0:
        tb_log_dir.mkdir(parents=True, exist_ok=True)
        log_file = final_output_dir / f"{cfg_name}_{time_str}_{phase}.log"
        file_handler = logging.FileHandler(log_file)
        file_handler.setFormatter(formatter)
        file_handler._semipose = True
        root.addHandler(file_handler)
        root.setLevel(logging.INFO)
    else:
        root.setLevel(logging.WARNING)
    return logging.getLogger("semipose"), str(final_output_dir), str(tb_log_dir)


class AverageMeter:
    """Running value, sum, count and average of a scalar."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.val = 0.0
        self.avg = 0.0
        self.sum = 0.0
        self.count = 0

    def update(self, val, n=1):
        self.val = float(val)
        self.sum += float(val) * n
        self.count += n
        self.avg = self.sum / self.count if self.count else 0.0


def log_to_file(name, message, *args):
    """Writes one INFO record to the run's log file only (not the console): the handlers that
    ``create_logger`` attached as files."""
    record = logging.LogRecord(name, logging.INFO, __file__, 0, message, args or None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and getattr(handler, "_semipose", False):
            handler.handle(record)
