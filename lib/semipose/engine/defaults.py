"""Run set-up shared by training and evaluation (detectron2's ``engine/defaults.py``): device and
DDP, cuDNN flags, seeding, logging and output folders, the synthetic set, mixed precision and the
data loaders."""

import atexit
import logging
import os
import signal
import sys
from dataclasses import dataclass

import cv2
import torch
import torchvision
from torch.utils.data import DataLoader, DistributedSampler

from semipose.common.io import atomic_write_text
from semipose.common.runlock import RunLock
from semipose.config import get_model_name
from semipose.dataset import gpu_pipeline
from semipose.dataset.build import IMAGENET_MEAN, IMAGENET_STD, ensure_synthetic
from semipose.engine.inline_workers import InlineWorkers
from semipose.engine.train_loop import RecordingSampler
from semipose.utils import comm
from semipose.utils.logger import (
    create_logger,
    detach_logger,
    log_file_path,
    log_to_file,
    output_subdirs,
)

logger = logging.getLogger(__name__)

__all__ = [
    "RunContext",
    "run_output_dir",
    "build_train_loader",
    "build_valid_loader",
    "is_interactive",
    "native_bf16",
    "resolve_amp_dtype",
    "setup",
]


@dataclass
class RunContext:
    """What ``setup`` established for one process of a run."""

    device: torch.device
    distributed: bool
    local_rank: int
    rank: int
    output_dir: str
    tb_log_dir: str
    amp_dtype: object = None
    lock: object = None  # the output folder's RunLock (training, rank 0)
    log_file: str = None

    def close(self):
        """Releases the output folder (the run lock) and the log file."""
        if self.lock is not None:
            self.lock.release()
        detach_logger()

    @property
    def is_main(self):
        return self.rank == 0


def is_interactive():
    """True on a terminal outside CI (progress bars are drawn only then)."""
    return sys.stderr.isatty() and os.environ.get("CI", "").lower() not in ("1", "true")


def native_bf16(device):
    """True when ``device`` computes bfloat16 in hardware: a CUDA GPU with bf16 support, or a CPU
    with AVX512-BF16 or AMX units. Elsewhere CPU autocast emulates bfloat16 (several times slower
    than fp32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)
    return False


def resolve_amp_dtype(cfg, device):
    """bfloat16 when TRAIN.BF16 is set and the device supports it, else None (fp32)."""
    if not cfg.TRAIN.BF16:
        return None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        logger.warning("TRAIN.BF16 is set but this GPU has no bfloat16 support: training in fp32")
        return None
    if device.type == "cpu" and not native_bf16(device):
        logger.warning(
            "TRAIN.BF16 on a CPU without bf16 units (no AVX512-BF16 / AMX): autocast emulates "
            "bfloat16 and is expected to be slower than fp32"
        )
    return torch.bfloat16


def _select_device(cfg, distributed, local_rank):
    if distributed:
        return comm.init_distributed(local_rank, cfg.DEVICE)
    gpu = int(str(cfg.GPUS).split(",")[0] or 0)
    if torch.cuda.is_available() and cfg.DEVICE != "cpu":
        gpu = min(gpu, torch.cuda.device_count() - 1)
    return comm.select_device(cfg.DEVICE, gpu), 0


class QuietConsole(logging.Filter):
    """The console of PRINT_FREQ 0: warnings, the epoch lines and set-up lines; the evaluator's
    COCOeval print-outs and the per-epoch save messages stay in the log file only."""

    def filter(self, record):
        if record.levelno >= logging.WARNING:
            return True
        if record.name.startswith("semipose.evaluation"):
            return False
        return not str(record.msg).startswith("=> saving")


def _quiet_console():
    for handler in logging.getLogger().handlers:
        if getattr(handler, "_semipose", False) and not isinstance(handler, logging.FileHandler):
            handler.addFilter(QuietConsole())


def _log_environment(cfg, args, output_dir):
    """One console line; the arguments and the merged config go to the log file only (and the
    config to ``<output>/config.yaml``)."""
    path = os.path.join(output_dir, "config.yaml")
    atomic_write_text(path, cfg.dump())
    logger.info(
        f"torch {torch.__version__}, torchvision {torchvision.__version__}; "
        f"config {getattr(args, 'cfg', None)} -> {path}"
    )
    arguments = vars(args) if hasattr(args, "__dict__") else args
    log_to_file(logger.name, "arguments: %s\n%s", arguments, cfg.dump())


def run_output_dir(cfg, cfg_path):
    """A run's output folder, ``OUTPUT_DIR/<dataset>/<model>/<cfg name>``."""
    parts = output_subdirs(cfg, cfg_path, model_name=get_model_name(cfg)[0])
    return os.path.join(cfg.OUTPUT_DIR or "output", *parts)


def setup(cfg, args, phase="train", subdir=""):
    """Prepares one process of a run and returns its ``RunContext``.

    Device (CUDA when present unless ``DEVICE cpu``) and, under torchrun or ``--distributed``, the
    process group; the output folder ``OUTPUT_DIR/<dataset>/<model>/<cfg name>`` (plus ``subdir``)
    with its log file, a training run holding the folder's lock (``RunLock``) before it writes
    anything there; cuDNN flags; seeds (``SEED + rank``); the synthetic set when enabled
    (generated by rank 0, the others wait).

    Raises:
        RunLockedError: another training run holds the output folder.
    """
    distributed = phase == "train" and (
        bool(getattr(args, "distributed", False)) or int(os.environ.get("WORLD_SIZE", "1")) > 1
    )
    device, local_rank = _select_device(cfg, distributed, getattr(args, "local_rank", None))
    rank = comm.get_rank()
    locks = []

    def take_lock(folder):
        if phase == "train":
            locks.append(RunLock(folder, "training", " ".join(sys.argv)).acquire())
            atexit.register(locks[-1].release)

    _, output_dir, tb_log_dir = create_logger(
        cfg, getattr(args, "cfg", None), phase, rank, model_name=get_model_name(cfg)[0],
        subdir=subdir, on_folder=take_lock,
    )
    try:
        if cfg.PRINT_FREQ <= 0:
            _quiet_console()
        if rank == 0:
            _log_environment(cfg, args, output_dir)
        torch.backends.cudnn.benchmark = cfg.CUDNN.BENCHMARK
        torch.backends.cudnn.deterministic = cfg.CUDNN.DETERMINISTIC
        torch.backends.cudnn.enabled = cfg.CUDNN.ENABLED
        comm.seed_everything(cfg.SEED + rank)
        if rank == 0 and cfg.DATASET.SYNTHETIC.ENABLED:
            ensure_synthetic(cfg)
        comm.synchronize()
    except BaseException:
        for lock in locks:
            lock.release()
        raise
    return RunContext(
        device=device,
        distributed=distributed,
        local_rank=local_rank,
        rank=rank,
        output_dir=output_dir,
        tb_log_dir=tb_log_dir,
        amp_dtype=resolve_amp_dtype(cfg, device) if phase == "train" else None,
        lock=locks[0] if locks else None,
        log_file=log_file_path() if rank == 0 else None,
    )


def _worker_init(_):
    cv2.setNumThreads(0)
    # a scheduler's stop signal goes to the whole process group: the workers leave it to the main
    # process, which finishes its step, saves and ends them
    for name in ("SIGTERM", "SIGUSR1"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


def build_train_loader(cfg, dataset, ctx):
    """The training DataLoader (a DistributedSampler under DDP) and its generator.

    Returns:
        ``(loader, sampler or None, generator)``; the engine reseeds the generator each epoch.
    """
    workers = cfg.WORKERS
    inline = workers if cfg.WORKERS_INLINE and workers > 0 else 0
    if inline:  # the workers' work in this process, with their random streams
        workers = 0
    sampler = None
    if ctx.distributed:
        sampler = DistributedSampler(dataset, shuffle=cfg.TRAIN.SHUFFLE, seed=cfg.SEED)
    generator = torch.Generator()
    generator.manual_seed(cfg.SEED)
    order = sampler
    if sampler is None and cfg.TRAIN.SHUFFLE:
        # RandomSampler's order from the same generator, kept for a mid-epoch checkpoint
        order = RecordingSampler(dataset, generator=generator)
    device_warp = bool(getattr(dataset, "device_warp", False) or getattr(
        getattr(dataset, "labeled", None), "device_warp", False))
    loader = DataLoader(
        dataset,
        batch_size=cfg.TRAIN.BATCH_SIZE,
        shuffle=False if order is not None else cfg.TRAIN.SHUFFLE,
        sampler=order,
        num_workers=workers,
        pin_memory=ctx.device.type == "cuda",
        drop_last=False,
        worker_init_fn=_worker_init if workers > 0 else None,
        generator=generator,
        prefetch_factor=4 if workers > 0 else None,
        **({"collate_fn": gpu_pipeline.collate} if device_warp else {}),
    )
    if inline:
        loader = InlineWorkers(loader, inline)
    if device_warp:  # DATASET.DEVICE_WARP: crops and targets rendered in batch on the device
        renderer = gpu_pipeline.DeviceRenderer(
            cfg.MODEL.IMAGE_SIZE, cfg.MODEL.EXTRA.HEATMAP_SIZE, cfg.MODEL.EXTRA.SIGMA,
            IMAGENET_MEAN, IMAGENET_STD, ctx.device,
        )
        loader = gpu_pipeline.DeviceBatchLoader(loader, renderer)
    return loader, sampler, generator


def build_valid_loader(cfg, dataset, device):
    """The validation DataLoader: TEST.BATCH_SIZE, in order.

    It has a generator of its own: a DataLoader without one draws its workers' base seed from
    torch's global generator each time it is iterated, so every validation would move the random
    state the training's augmentations draw from, and how often a run validates
    (``TEST.INTERVAL``) would change what it trains."""
    workers = 0 if cfg.WORKERS_INLINE else cfg.WORKERS  # nothing random to draw: in process
    return DataLoader(
        dataset,
        batch_size=cfg.TEST.BATCH_SIZE,
        shuffle=False,
        num_workers=workers,
        pin_memory=torch.device(device).type == "cuda",
        worker_init_fn=_worker_init if workers > 0 else None,
        generator=torch.Generator(),
    )
