"""The training hooks that write checkpoints: ``CheckpointHook`` (the resumable state after every
epoch, the periodic and final weights) and ``BestModelHook`` (``model_best.pth.tar`` when the
selection metric improves).

Both act on the epoch record (``RecordHook.write``), which the loop emits after every hook's
``after_epoch``: by then ``EvalHook`` has validated and recorded the best metric in the
``Checkpointer``, so the checkpoint is written once per epoch, with that epoch's results, whatever
the order the hooks were registered in. A failing ``after_epoch`` (e.g. a validation error) still
emits the epoch's record (with ``error``), so the training of that epoch is saved.
"""

import logging
import os

from semipose.checkpoint.files import BEST_NAME
from semipose.common.hooks import RecordHook

logger = logging.getLogger(__name__)

__all__ = ["BestModelHook", "CheckpointHook"]

FINAL_NAME = "final_state.pth.tar"


def _epoch_of(record):
    """The epoch of an epoch record, None for any other record."""
    return record.get("epoch") if record.get("type") == "epoch" else None


class CheckpointHook(RecordHook):
    """After each epoch: ``checkpoint.pth.tar`` and, every ``save_inter`` epochs,
    ``State_epoch{N}.pth.tar``; at the end ``final_state.pth.tar``.

    Args:
        checkpointer: the run's ``Checkpointer``.
    """

    def __init__(self, checkpointer):
        self.checkpointer = checkpointer

    def write(self, record):
        epoch = _epoch_of(record)
        if epoch is None:
            return
        ck = self.checkpointer
        logger.info(f"=> saving checkpoint to {ck.output_dir}")
        ck.save(epoch)
        if ck.save_inter > 0 and epoch % ck.save_inter == 0:
            ck.save_weights(f"State_epoch{epoch}.pth.tar")

    def after_train(self):
        ck = self.checkpointer
        logger.info(f"=> saving final model state to {os.path.join(ck.output_dir, FINAL_NAME)}")
        ck.save_weights(FINAL_NAME)


class BestModelHook(RecordHook):
    """Writes ``model_best.pth.tar`` (the model's state_dict) after a validated epoch that is the
    best so far (the record's ``best_epoch`` is its ``epoch``; the first validation always is).

    Args:
        checkpointer: the run's ``Checkpointer`` (it writes the file, rank 0 only).
    """

    def __init__(self, checkpointer):
        self.checkpointer = checkpointer

    def write(self, record):
        epoch = _epoch_of(record)
        if epoch is None or "ap" not in record or record.get("best_epoch") != epoch:
            return
        logger.info(f"=> best {record.get('select_by', 'metric')} so far "
                    f"({record.get('best_perf')}): saving {BEST_NAME}")
        self.checkpointer.save_best()
