"""The metrics records of a training run: how the loop sends them (``emit``, ``epoch_record``),
the writers that receive them (``metrics.jsonl``, TensorBoard, the console; ``MetricsWriter`` is
their base) and ``read_metrics``, which reads ``metrics.jsonl`` back.

Records are plain dicts: ``{'type': 'iter', ...}`` from ``IterationMetrics`` every ``PRINT_FREQ``
steps and ``{'type': 'epoch', ...}`` after every epoch (what the epoch's hooks put into
``Trainer.epoch_stats``); docs/ARCHITECTURE.md lists their fields.
"""

import json
import logging
import math
import os
import time

import numpy as np

from semipose.common.errors import WriteFailed
from semipose.common.hooks import RecordHook
from semipose.utils.logger import log_to_file

logger = logging.getLogger(__name__)

__all__ = [
    "ConsoleWriter",
    "JSONWriter",
    "MetricsWriter",
    "TensorboardWriter",
    "emit",
    "epoch_record",
    "read_metrics",
]


def emit(hooks, record):
    """Sends ``record`` to every ``RecordHook`` among ``hooks``, in their order."""
    for hook in hooks:
        if isinstance(hook, RecordHook):
            hook.write(record)


def epoch_record(trainer, error=None):
    """The epoch record of ``trainer``'s current epoch: type, epoch, global iteration and what
    its hooks reported (``epoch_stats``); with ``error`` (an exception raised by an
    ``after_epoch``) also ``error``: its type and message."""
    record = {"type": "epoch", "epoch": trainer.epoch, "iteration": trainer.global_iter,
              **trainer.epoch_stats}
    if error is not None:
        record["error"] = f"{type(error).__name__}: {error}"
    return record


class MetricsWriter(RecordHook):
    """Base of the writers: a hook that gets every metrics record (``write(record)``) and closes
    what it opened in ``after_train``."""

    def write(self, record):
        raise NotImplementedError


class JSONWriter(MetricsWriter):
    """Appends each record as one JSON line to ``<output>/metrics.jsonl`` (flushed per line).

    A resumed run appends; readers keep the last record of each (type, epoch, iteration).
    """

    def __init__(self, path):
        self.path = path
        self.file = None

    def write(self, record):
        line = json.dumps(_jsonable({"time": round(time.time(), 3), **record}),
                          sort_keys=False) + "\n"
        try:
            if self.file is None:
                os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
                self.file = open(self.path, "a", encoding="utf-8")
            self.file.write(line)
            self.file.flush()
        except OSError as exc:
            raise WriteFailed(f"could not append to {self.path}: [Errno {exc.errno}] "
                              f"{exc.strerror}; the records written before are intact") from None

    def after_train(self):
        if self.file is not None:
            self.file.close()
            self.file = None


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if hasattr(x, "item") and getattr(x, "ndim", 1) == 0:
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def read_metrics(path, kind=None):
    """The records of a ``metrics.jsonl`` (a file or its run folder), oldest first; where a resumed
    run repeated a record (same type, epoch and iteration) the later one wins.

    Args:
        kind: keep only records of this ``type`` (``'iter'`` or ``'epoch'``).
    """
    if os.path.isdir(path):
        path = os.path.join(path, "metrics.jsonl")
    records = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                logger.warning(f"{path}:{lineno}: skipping a line that is not JSON (a killed run?)")
                continue
            if kind is None or rec.get("type") == kind:
                records[(rec.get("type"), rec.get("epoch"), rec.get("iteration"))] = rec
    return sorted(records.values(), key=lambda r: (r.get("epoch", 0), r.get("iteration", 0),
                                                   r.get("type") == "epoch"))


class TensorboardWriter(MetricsWriter):
    """The records as TensorBoard scalars (``train/*`` per logged iteration, ``valid_*``, ``AP/*``
    and ``collapse/*`` per epoch)."""

    def __init__(self, log_dir):
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(log_dir=log_dir)
        self.step = 0

    def write(self, record):
        w = self.writer
        if "error" in record:
            return
        if record["type"] == "iter":
            w.add_scalar("train/loss", record["loss"], self.step)
            w.add_scalar("train/acc", record["acc"], self.step)
            w.add_scalar("train/lr", record["lr"], self.step)
            for k in record:
                if k.startswith("loss_") and k != "loss_avg":
                    w.add_scalar(f"train/{k}", record[k], self.step)
            self.step += 1
            return
        epoch = record["epoch"]
        w.add_scalar("train/epoch_loss", record["loss"], epoch)
        for net, c in record.get("collapse", {}).items():
            w.add_scalar(f"collapse/{net}_background_share", c["collapsed"], epoch)
            w.add_scalar(f"collapse/{net}_mean_peak", c["mean_max"], epoch)
        if "ap" in record:
            w.add_scalar("valid/loss", record["val_loss"], epoch)
            w.add_scalar("valid/acc", record["val_acc"], epoch)
            for net, value in record["ap"].items():
                w.add_scalar(f"AP/{net}", value, epoch)
            for head, table in record["metrics"].items():
                table = table[0] if isinstance(table, list) else table
                for k, v in table.items():
                    w.add_scalar(f"valid_{head}/{_tag(k)}", v, epoch)

    def after_train(self):
        self.writer.close()


def _tag(name):
    """A TensorBoard-safe tag: 'AP (M)' -> 'AP_M', 'Ap .5' -> 'Ap_.5'."""
    return "_".join(name.replace("(", " ").replace(")", " ").split())


class ConsoleWriter(MetricsWriter):
    """The log lines: the original's per-iteration line (to the log file only when
    ``iteration_lines`` is off: the quiet console of PRINT_FREQ 0) and one summary line per epoch
    (elapsed time, loss, AP when validated, collapse share)."""

    def __init__(self, iteration_lines=True):
        self.start = time.perf_counter()
        self.iteration_lines = iteration_lines

    @staticmethod
    def iteration_line(r):
        """The original's per-iteration log line of an ``iter`` record."""
        msg = (
            f"Epoch: [{r['epoch']}][{r['iter']}/{r['iters']}]\t"
            f"Time {r['time']:.3f}s ({r['time_avg']:.3f}s)\t"
            f"Speed {r['samples_per_s']:.1f} samples/s\t"
            f"Data {r['data_time']:.3f}s ({r['data_time_avg']:.3f}s)\t"
            f"Loss {r['loss']:.5f} ({r['loss_avg']:.5f})\t"
            f"Accuracy {r['acc']:.3f} ({r['acc_avg']:.3f})"
        )
        return msg + "".join(f"\t{k}: {r[k]:.6f}" for k in r if k.startswith("loss_")
                             and k != "loss_avg")

    def epoch_line(self, r):
        """The summary line of an ``epoch`` record."""
        msg = (f"Epoch {r['epoch']} done [{time.perf_counter() - self.start:.0f}s]: "
               f"loss {r.get('loss', float('nan')):.6f}, "
               f"{r.get('samples_per_s', 0.0):.1f} samples/s, lr {r.get('lr', 0.0):g}")
        if "ap" in r:
            msg += ", AP " + " / ".join(f"{k} {v:.3f}" for k, v in r["ap"].items())
        for net, c in r.get("collapse", {}).items():
            msg += (f", {net} collapsed {100 * c['collapsed']:.1f}% "
                    f"(teacher peak {c['mean_max']:.3f})")
        return msg

    def write(self, record):
        if "error" in record:
            logger.error(f"Epoch {record['epoch']} ended with {record['error']}")
        elif record["type"] != "iter":
            logger.info(self.epoch_line(record))
        elif self.iteration_lines:
            logger.info(self.iteration_line(record))
        else:
            log_to_file(logger.name, "%s", self.iteration_line(record))
