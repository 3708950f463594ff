"""Distributed helpers: rank/world size, device selection, process-group set-up, barriers and
seeding.
"""
import logging
import os
import random
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


def is_dist():
    return dist.is_available() and dist.is_initialized()


def get_rank():
    return dist.get_rank() if is_dist() else 0


def get_world_size():
    return dist.get_world_size() if is_dist() else 1


def is_main_process():
    return get_rank() == 0


def synchronize():
    """Barrier across ranks (no-op in a single process)."""
    if is_dist() and get_world_size() > 1:
        dist.barrier()


def select_device(name="auto", local_rank=0):
    """``auto``: CUDA when present, else CPU. Under DDP each rank takes ``cuda:<local_rank>``."""
    if name not in ("auto", "cpu", "cuda"):
        raise ValueError(f"DEVICE must be 'auto', 'cpu' or 'cuda', got '{name}'")
    use_cuda = torch.cuda.is_available() if name == "auto" else name == "cuda"
    if use_cuda:
        if not torch.cuda.is_available():
            raise RuntimeError("DEVICE is 'cuda' but CUDA is not available")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def init_distributed(local_rank=None, device_name="auto", timeout_min=30):
    """Joins the process group started by ``torchrun`` or ``torch.distributed.launch``.

    The rank and world size come from the launcher's environment (RANK, WORLD_SIZE, MASTER_ADDR,
    MASTER_PORT); the local rank from LOCAL_RANK or the legacy ``--local_rank`` argument. NCCL is
    used on GPUs and gloo on CPUs.

    Returns:
        ``(device, local_rank)``.
    """
    if local_rank is None or local_rank < 0:
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
    os.environ.setdefault("LOCAL_RANK", str(local_rank))
    if "WORLD_SIZE" not in os.environ:
        raise RuntimeError(
            "--distributed needs a launcher: torchrun --nproc_per_node=N pose_estimation/train.py "
            "--distributed --cfg ... (or python -m torch.distributed.launch --nproc_per_node=N ...)"
        )
    device = select_device(device_name, local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, timeout=timedelta(minutes=timeout_min))
    logger.info("process group: backend %s, rank %d/%d", backend, get_rank(), get_world_size())
    return device, local_rank


def cleanup_distributed():
    if is_dist():
        dist.destroy_process_group()


def seed_everything(seed):
    """Seeds python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def get_rng_state():
    """Every RNG's state as plain Python values and tensors.

    The result is loadable with ``weights_only=True``.
    """
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "kind": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    """Restores what ``get_rng_state`` returned."""
    if not state:
        return
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
         n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
