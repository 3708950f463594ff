"""The training loop (after detectron2's ``engine/train_loop.py``): a ``Trainer`` whose ``run_step``
is the training step and whose loop calls hooks (``semipose.common.hooks.HookBase``); every other
behaviour (schedule, evaluation, the collapse monitor, progress) is a hook in
``semipose.engine.hooks``, the checkpoints are hooks of ``semipose.checkpoint`` and the metrics
writers of ``semipose.engine.events``."""

import contextlib
import logging
import math
import time

import torch

from semipose.common.errors import UserError
from semipose.engine.events import emit, epoch_record
from semipose.methods.base import first
from semipose.utils import comm

logger = logging.getLogger(__name__)

__all__ = ["Preempted", "RecordingSampler", "Trainer", "autocast_context",
           "epoch_order", "to_device"]


class Preempted(Exception):
    """Training stopped on request (a signal) between two steps.

    Attributes:
        reason: what asked for the stop (e.g. ``'SIGTERM'``).
        epoch: the epoch it stopped in.
        iteration: the steps of that epoch already done (the next one to run).
    """

    def __init__(self, reason, epoch, iteration):
        super().__init__(f"stopped by {reason} at epoch {epoch}, iteration {iteration}")
        self.reason, self.epoch, self.iteration = reason, int(epoch), int(iteration)


class ResumeOrderError(UserError):
    """A mid-epoch resume whose epoch would see another sample order than the saved one."""


class RecordingSampler(torch.utils.data.RandomSampler):
    """``RandomSampler`` (the same permutation from the same generator state) that keeps the
    epoch's order (``order``) for the checkpoint and can pass over the first indices of its next
    epoch (``skip_next``) for a mid-epoch resume."""

    def __init__(self, data_source, generator=None):
        super().__init__(data_source, generator=generator)
        self.order = None
        self.expected = None  # the order a resumed epoch must have (the checkpoint's)
        self._skip = 0

    def skip_next(self, count):
        self._skip = int(count)

    def __iter__(self):
        order = torch.randperm(len(self.data_source), generator=self.generator).tolist()
        self.order = order
        expected, self.expected = self.expected, None
        if expected is not None and list(expected) != order:
            raise ResumeOrderError(
                "the resumed epoch's sample order differs from the one saved in the checkpoint "
                "(another dataset size, SEED or TRAIN.SHUFFLE?): this run cannot continue inside "
                "the epoch; restore the settings it was started with"
            )
        skip, self._skip = self._skip, 0
        yield from order[skip:]


def _recording_sampler(loader):
    """The loader's ``RecordingSampler`` (through a device-batch wrapper), or None."""
    inner = getattr(loader, "loader", loader)
    sampler = getattr(inner, "sampler", None)
    return sampler if isinstance(sampler, RecordingSampler) else None


def epoch_order(loader):
    """The current epoch's sample order of ``loader`` (a list of dataset indices), or None when
    its sampler does not record it (DDP's DistributedSampler: its order is a function of the seed
    and the epoch)."""
    sampler = _recording_sampler(loader)
    return None if sampler is None else sampler.order


def to_device(x, device, channels_last=False):
    """Moves a tensor, or a (nested) list/tuple of tensors, to ``device`` without blocking."""
    if isinstance(x, (list, tuple)):
        return [to_device(v, device, channels_last) for v in x]
    if not torch.is_tensor(x):
        return x
    x = x.to(device, non_blocking=True)
    if channels_last and x.dim() == 4 and x.shape[1] == 3:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def autocast_context(device, amp_dtype):
    """``torch.autocast`` on the device's type when ``amp_dtype`` is set, else a no-op context."""
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=amp_dtype)


class Trainer:
    """Epoch-based training of one method's model.

    Args:
        model: the network module (DDP-wrapped or not); ``model(inputs)`` gives the method's
            training outputs.
        method: the ``semipose.methods.Method`` that owns the loss and says what it exposes.
        optimizer: a torch optimizer over the model's parameters.
        loader: iterable of ``(input, target, target_weight, meta)`` batches.
        device: where the step runs.
        amp_dtype: autocast dtype of the step (``None``: fp32).
        channels_last: move image batches to channels_last.
        max_iters: if > 0, at most this many iterations per epoch.
        loss_limit: a loss above this (or NaN/inf) stops the run; 0 disables the bound.

    State read by hooks: ``epoch``, ``iter`` (within the epoch), ``global_iter``, ``start_epoch``,
    ``max_epoch``, ``iters_per_epoch``, ``step`` (the last ``run_step``'s dict: ``inputs``,
    ``targets``, ``weights``, ``meta``, ``outputs``, ``loss``, ``parts``, ``loss_value``,
    ``batch_size``, ``data_time``, ``step_time``) and ``epoch_stats`` (what hooks report for the
    epoch; written as the epoch's metrics record).
    """

    def __init__(self, model, method, optimizer, loader, device, *, amp_dtype=None,
                 channels_last=False, max_iters=0, loss_limit=0.0):
        self.model = model
        self.method = method
        self.optimizer = optimizer
        self.loader = loader
        self.device = torch.device(device)
        self.amp_dtype = amp_dtype
        self.channels_last = channels_last
        self.max_iters = int(max_iters)
        self.loss_limit = float(loss_limit)
        self.hooks = []
        self.epoch = self.iter = self.global_iter = 0
        self.start_epoch = self.max_epoch = 0
        self.step = {}
        self.epoch_stats = {}
        self.stop_reason = None

    @property
    def iters_per_epoch(self):
        n = len(self.loader)
        return n if self.max_iters <= 0 else min(n, self.max_iters)

    @property
    def lr(self):
        return self.optimizer.param_groups[0]["lr"]

    def register_hooks(self, hooks):
        """Appends hooks (``None`` entries are skipped) and binds them to this trainer."""
        for hook in hooks:
            if hook is not None:
                hook.trainer = self
                self.hooks.append(hook)

    def emit(self, record):
        """Sends one metrics record to every ``RecordHook`` (the writers, the checkpoint hooks)."""
        emit(self.hooks, record)

    def _call(self, name):
        for hook in self.hooks:
            getattr(hook, name)()

    def train(self, start_epoch, max_epoch, start_iter=0, restore=None, order=None):
        """Trains epochs ``start_epoch .. max_epoch - 1``; the first one from its iteration
        ``start_iter`` (a mid-epoch resume), calling ``restore()`` once its first batches are
        skipped (it puts back the RNG state saved at the interruption) and checking that the
        epoch's sample order is ``order`` (the saved one; None: unchecked).

        Raises:
            Preempted: a stop was requested (``request_stop``, e.g. by SIGTERM); raised between
                two steps, with ``epoch`` and ``iteration`` (the steps done in that epoch).
        """
        self.start_epoch, self.max_epoch = int(start_epoch), int(max_epoch)
        self.global_iter = self.start_epoch * self.iters_per_epoch + int(start_iter)
        self._call("before_train")
        for epoch in range(self.start_epoch, self.max_epoch):
            self.epoch = epoch
            skip = int(start_iter) if epoch == self.start_epoch else 0
            self.run_epoch(skip, restore if skip else None, order if skip else None)
        self._call("after_train")

    def request_stop(self, reason):
        """Asks the loop to stop after the current step (called from a signal handler)."""
        self.stop_reason = reason

    def _check_stop(self, done):
        if self.stop_reason is not None:
            raise Preempted(self.stop_reason, self.epoch, done)

    def _batches(self, skip, restore, order=None):
        """The epoch's batches from the ``skip``-th on. The skipped batches are passed over in the
        sampler without being loaded when the loader runs in this process (``skip_batches``), else
        loaded and dropped, so that the loader's workers draw exactly what they drew before; then
        ``restore()``."""
        if not skip:
            yield from self.loader
            return
        sampler = _recording_sampler(self.loader)
        in_process = getattr(self.loader, "num_workers", 0) == 0 and sampler is not None
        if sampler is not None and order is not None:
            sampler.expected = order
        if in_process:
            sampler.skip_next(skip * self.loader.batch_size)
        iterator = iter(self.loader)
        if not in_process:
            logger.info(f"resuming inside epoch {self.epoch}: loading and dropping its first "
                        f"{skip} batches (the loader's workers must draw what they drew)")
            for _ in range(skip):
                next(iterator)
        if restore is not None:
            restore()
        yield from iterator

    def run_epoch(self, skip=0, restore=None, order=None):
        """One epoch: ``before_epoch``, the steps (from the ``skip``-th), ``after_epoch``, then
        the epoch's record (``events.epoch_record``), emitted also when an ``after_epoch``
        raises (with ``error``; the exception then propagates)."""
        self._check_stop(skip)  # a stop asked for during the last epoch's end
        self.model.train()
        self.epoch_stats = {}
        self._call("before_epoch")
        start = end = time.perf_counter()
        num = self.iters_per_epoch
        for i, batch in enumerate(self._batches(skip, restore, order), start=skip):
            if i >= num:
                break
            self.iter = i
            data_time = time.perf_counter() - end
            self._call("before_step")
            self.run_step(batch)
            self.step["data_time"] = data_time
            self.step["step_time"] = time.perf_counter() - end
            self._call("after_step")
            self.global_iter += 1
            if i + 1 < num:  # after the last step the epoch ends (and is saved) first
                self._check_stop(i + 1)
            end = time.perf_counter()
        self.epoch_stats["elapsed_s"] = time.perf_counter() - start
        try:
            self._call("after_epoch")
        except Exception as error:  # e.g. a failing validation: the epoch's training is saved
            self.emit(epoch_record(self, error))
            raise
        self.emit(epoch_record(self))
        comm.synchronize()

    def run_step(self, batch):
        """The training step: data → device → forward → loss → zero_grad → backward → step →
        non-finite check (the original's order).

        Args:
            batch: ``(input, target, target_weight, meta)`` as the datasets return them.

        Returns:
            the step dict (also kept in ``self.step``).

        Raises:
            FloatingPointError: the loss is NaN, infinite or above ``loss_limit`` (the last
                checkpoint stays intact).
        """
        inputs, targets, weights, meta = batch
        inputs = to_device(inputs, self.device, self.channels_last)
        targets = to_device(targets, self.device)
        weights = to_device(weights, self.device)
        with autocast_context(self.device, self.amp_dtype):
            outputs = self.model(inputs)
            loss, parts = self.method.loss(outputs, targets, weights)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        loss_value = loss.item()
        if not math.isfinite(loss_value) or (self.loss_limit > 0 and loss_value > self.loss_limit):
            detail = ", ".join(f"{k} {float(v):.6g}" for k, v in parts.items())
            what = "non-finite" if not math.isfinite(loss_value) else "diverging"
            raise FloatingPointError(
                f"{what} loss {loss_value:.6g} at epoch {self.epoch}, iteration {self.iter} "
                f"({detail}); training stopped, the last checkpoint is intact "
                "(lower TRAIN.LR and resume, or raise TRAIN.LOSS_LIMIT)"
            )
        self.step = {
            "inputs": inputs,
            "targets": targets,
            "weights": weights,
            "meta": meta,
            "outputs": outputs,
            "loss": loss,
            "parts": parts,
            "loss_value": loss_value,
            "batch_size": first(inputs).shape[0],
        }
        return self.step
