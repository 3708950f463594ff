"""Output/log directory trees and logging set-up.

The original's ``create_logger`` (lib/utils/utils.py, MIT).
"""
import logging
import os
import sys
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


def create_logger(cfg, cfg_path, phase="train", rank=0, model_name=None, subdir="",
                  on_folder=None):
    """Creates the output and TensorBoard folders and configures the root logger.

    ``final_output_dir = OUTPUT_DIR/<dataset>/<model>/<cfg_name>`` holds the log file
    ``<cfg_name>_<YYYY-mm-dd-HH-MM>_<phase>.log``;
    ``tb_log_dir = LOG_DIR/<dataset>/<model>/<cfg_name>_<time>``.
    Only rank 0 writes the log file and logs at INFO; other ranks log warnings and errors only.
    ``model_name`` is required (see ``output_subdirs``).

    Args:
        subdir: a folder below the run's output folder that this phase writes into instead (e.g.
            ``valid/<checkpoint>_<time>``, so an evaluation never replaces a training's files).
        on_folder: ``callable(folder)`` called on rank 0 once the output folder exists and before
            anything is written into it (the run lock).

    Returns:
        ``(logger, final_output_dir: str, tb_log_dir: str)``.
    """
    dataset, model, cfg_name = output_subdirs(cfg, cfg_path, model_name)
    root_output = Path(cfg.OUTPUT_DIR or "output")
    final_output_dir = root_output / dataset / model / cfg_name
    if subdir:
        final_output_dir = final_output_dir / subdir
    final_output_dir.mkdir(parents=True, exist_ok=True)
    if on_folder is not None and rank == 0:
        on_folder(str(final_output_dir))
    time_str = time.strftime("%Y-%m-%d-%H-%M")
    tb_log_dir = Path(cfg.LOG_DIR or "log") / dataset / model / f"{cfg_name}_{time_str}"

    detach_logger()
    root = logging.getLogger()
    formatter = logging.Formatter(LOG_FORMAT)
    console = _Console()
    console.setFormatter(formatter)
    console._semipose = True
    root.addHandler(console)
    if rank == 0:
        if phase == "train":
            tb_log_dir.mkdir(parents=True, exist_ok=True)
        log_file = final_output_dir / f"{cfg_name}_{time_str}_{phase}.log"
        file_handler = logging.FileHandler(log_file)
        file_handler.setFormatter(formatter)
        file_handler._semipose = True
        file_handler._semipose_path = str(log_file)
        root.addHandler(file_handler)
        root.setLevel(logging.INFO)
    else:
        root.setLevel(logging.WARNING)
    return logging.getLogger("semipose"), str(final_output_dir), str(tb_log_dir)


class _Console(logging.StreamHandler):
    """A console handler that writes to whatever ``sys.stderr`` is at each record (not the stream
    of the moment it was made), so a redirected or replaced stderr never gets a closed stream."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


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


def detach_logger():
    """Removes and closes the handlers ``create_logger`` attached (the console and the log file),
    as a run ends, so a later run or library call in the same process starts clean."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_semipose", False):
            root.removeHandler(handler)
            handler.close()


def log_file_path():
    """The path of the run's log file (``create_logger``'s), or None."""
    for handler in logging.getLogger().handlers:
        path = getattr(handler, "_semipose_path", None)
        if path:
            return path
    return None
