"""Checkpoints: the file functions (``files``: atomic saving, safe loading, strict key checking,
pretrained and pair-file reading), the ``Checkpointer`` of a training run (``checkpointer``) and
the hooks that write checkpoints after every epoch (``hooks``).

Layer: above ``utils`` and ``common`` (it imports only those), below ``models`` (which read
pretrained files through ``files``) and the engine.
"""

from semipose.checkpoint.checkpointer import Checkpointer, set_schedule
from semipose.checkpoint.files import (
    BEST_NAME,
    CheckpointError,
    StateDictMismatchError,
    UnsafeCheckpointError,
    atomic_save,
    describe_state,
    extract_net,
    load_checkpoint,
    load_model_state,
    load_pretrained_state,
    save_checkpoint,
    to_plain,
    unwrap_state_dict,
)
from semipose.checkpoint.hooks import BestModelHook, CheckpointHook

__all__ = [
    "BEST_NAME",
    "BestModelHook",
    "CheckpointError",
    "CheckpointHook",
    "Checkpointer",
    "StateDictMismatchError",
    "UnsafeCheckpointError",
    "atomic_save",
    "describe_state",
    "extract_net",
    "load_checkpoint",
    "load_model_state",
    "load_pretrained_state",
    "save_checkpoint",
    "set_schedule",
    "to_plain",
    "unwrap_state_dict",
]
