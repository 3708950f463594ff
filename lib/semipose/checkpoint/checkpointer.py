"""The ``Checkpointer``: a run's resumable state in its output folder (written by rank 0) and
its restoration, with the config's LR schedule applied over a resumed one (``set_schedule``).

The file functions it uses are in ``checkpoint.files``; the hooks that call it after every epoch
in ``checkpoint.hooks``.
"""

import bisect
import logging
import math
import os

import torch

from semipose.checkpoint.files import (
    BEST_NAME,
    atomic_save,
    load_checkpoint,
    load_model_state,
    save_checkpoint,
)
from semipose.utils.comm import get_rng_state

logger = logging.getLogger(__name__)

__all__ = ["Checkpointer", "set_schedule"]


def set_schedule(optimizer, scheduler, lr, factor, steps):
    """Applies a (new) LR, factor and milestones to a restored optimizer + MultiStepLR, with the
    learning rate of the epoch the scheduler is at."""
    from collections import Counter

    scheduler.base_lrs = [lr for _ in optimizer.param_groups]
    scheduler.gamma = factor
    scheduler.milestones = Counter(steps)
    drops = bisect.bisect_right(sorted(steps), scheduler.last_epoch)
    for group in optimizer.param_groups:
        group["initial_lr"] = lr
        group["lr"] = lr * factor**drops
    scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]


class Checkpointer:
    """Writes and restores a run's state in ``output_dir`` (rank 0 writes).

    Files: ``checkpoint.pth.tar`` (the resumable state), ``model_best.pth.tar`` (the state_dict of
    the best selection metric, ``Method.selection_metric``), ``final_state.pth.tar`` and, every
    ``save_inter`` epochs, ``State_epoch{N}.pth.tar``.

    ``extras`` maps a checkpoint key to an object with ``state_dict()``/``load_state_dict()`` (and
    optionally ``reset()``, called when resuming from a checkpoint without that key), e.g. ``ema``:
    state kept beside, never inside, the model's ``state_dict``.

    Args:
        model: the unwrapped module (its keys are the original's).
        schedule: ``(lr, factor, milestones)`` of the config, stored so a resume with changed
            values applies them.
        model_name: ``get_model_name(cfg)``, stored as the original did.
    """

    FILENAME = "checkpoint.pth.tar"

    def __init__(self, output_dir, model, optimizer, scheduler, *, schedule, model_name=(),
                 save_inter=0, is_main=True):
        self.output_dir = output_dir
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.schedule = (float(schedule[0]), float(schedule[1]), [int(s) for s in schedule[2]])
        self.model_name = list(model_name)
        self.save_inter = int(save_inter)
        self.is_main = is_main
        self.best_perf = None
        self.best_epoch = -1
        self.last_results = {}
        self.extras = {}
        self.select_by = None  # the rule best_perf was measured with (set by EvalHook)
        self.resumed_select_by = None
        self.resume_iteration = 0  # steps already done in the resumed epoch (mid-epoch save)
        self.resume_order = None  # that epoch's sample order, as saved

    @property
    def path(self):
        return os.path.join(self.output_dir, self.FILENAME)

    def states(self, epoch, iteration=None, order=None):
        """The resumable state after ``epoch`` (``epoch + 1`` is the next), or, with
        ``iteration``, inside ``epoch`` after that many steps (``order``: the epoch's sample
        order, checked on resume)."""
        lr, factor, steps = self.schedule
        mid = {} if iteration is None else {
            "iteration": int(iteration),
            "order": None if order is None else torch.as_tensor(order, dtype=torch.long)}
        return {
            "epoch": epoch + 1 if iteration is None else epoch,
            **mid,
            "model": self.model_name,
            "state_dict": self.model.state_dict(),
            "perf": float(self.best_perf if self.best_perf is not None else 0.0),
            "best_epoch": int(self.best_epoch),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "schedule": {"lr": lr, "lr_factor": factor, "lr_step": steps},
            "rng": get_rng_state(),
            "last_results": dict(self.last_results),
            **({"select_by": self.select_by} if self.select_by else {}),
            **{key: obj.state_dict() for key, obj in self.extras.items()},
        }

    def save(self, epoch, iteration=None, order=None):
        """Writes ``checkpoint.pth.tar`` atomically; with ``iteration`` a mid-epoch checkpoint
        (``states``)."""
        if self.is_main:
            save_checkpoint(self.states(epoch, iteration, order), False, self.output_dir,
                            self.FILENAME)

    def save_best(self):
        """Writes the model's state_dict to ``model_best.pth.tar``."""
        self.save_weights(BEST_NAME)

    def save_weights(self, name):
        """Writes the model's state_dict alone to ``output_dir/name``."""
        if self.is_main:
            atomic_save(self.model.state_dict(), os.path.join(self.output_dir, name))

    def update_best(self, perf, epoch):
        """Records a validation result; True when it is the best so far (the first one always
        is, so ``model_best`` exists even while the metric stays 0).

        Args:
            perf: the selection metric of ``epoch`` (higher is better).
            epoch: the validated epoch.
        """
        if self.best_perf is None or perf > self.best_perf:
            self.best_perf, self.best_epoch = float(perf), int(epoch)
            return True
        return False

    def use_select_by(self, rule):
        """Measures the best model by ``rule`` (TEST.SELECT_BY) from now on; a resumed run whose
        checkpoint chose its best by another rule restarts the best (with a warning)."""
        before = self.resumed_select_by
        if before is not None and before != rule and self.best_perf is not None:
            logger.warning(f"TEST.SELECT_BY is {rule!r}, the checkpoint's best epoch was chosen by "
                           f"{before!r}: the best model is selected afresh from now on")
            self.best_perf, self.best_epoch = None, -1
        self.resumed_select_by = None
        self.select_by = rule

    def resume(self):
        """Restores the model, optimizer, scheduler and best metric from ``checkpoint.pth.tar``.

        A config whose TRAIN.LR / LR_FACTOR / LR_STEP differ from the checkpoint's wins (with a
        warning), so a run stopped by a diverging loss can resume with a lower LR.

        Returns:
            ``(next epoch, rng state or None)``.
        """
        ckpt = load_checkpoint(self.path, map_location="cpu")
        load_model_state(self.model, ckpt["state_dict"], strict=True, source=self.path)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        epoch = int(ckpt["epoch"])
        if "scheduler" in ckpt:
            factors = [dict(vars(f)) for f in getattr(self.scheduler, "lr_lambdas", ())]
            self.scheduler.load_state_dict(ckpt["scheduler"])
            self._keep_config_factors(factors)
        else:  # a checkpoint of the original: rebuild the schedule from the epoch count
            for _ in range(epoch):
                self.scheduler.step()
        self._apply_config_schedule(ckpt)
        best_epoch = int(ckpt.get("best_epoch", 0 if "perf" in ckpt else -1))
        if best_epoch >= 0:
            self.best_perf, self.best_epoch = float(ckpt.get("perf", 0.0)), best_epoch
        self.last_results = dict(ckpt.get("last_results", {}))
        self.resumed_select_by = ckpt.get("select_by")
        self.resume_iteration = int(ckpt.get("iteration", 0))
        self.resume_order = ckpt.get("order")
        for key, obj in self.extras.items():
            if key in ckpt:
                obj.load_state_dict(ckpt[key])
            elif hasattr(obj, "reset"):
                logger.warning(f"{self.path} has no '{key}' state: starting it from the model")
                obj.reset()
        where = f"epoch {epoch}" + (f", iteration {self.resume_iteration}"
                                    if self.resume_iteration else "")
        logger.info(f"=> resumed from {self.path} ({where})")
        return epoch, ckpt.get("rng")

    def _keep_config_factors(self, factors):
        """A factor schedule (cosine) keeps the config's length and warm-up after a resume
        (``LambdaLR.load_state_dict`` restores the checkpoint's), so raising TRAIN.END_EPOCH
        stretches the schedule instead of staying at its old end."""
        for fn, config_state in zip(getattr(self.scheduler, "lr_lambdas", ()), factors):
            if vars(fn) == config_state:
                continue
            logger.warning(f"resuming with the config's LR schedule {config_state}, not the "
                           f"checkpoint's {dict(vars(fn))}")
            vars(fn).update(config_state)
            scale = fn(self.scheduler.last_epoch)
            for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs):
                group["lr"] = base * scale

    def _apply_config_schedule(self, ckpt):
        lr, factor, steps = self.schedule
        saved = ckpt.get("schedule")
        if saved is None:
            saved = {"lr": self.optimizer.param_groups[0].get("initial_lr", lr),
                     "lr_factor": getattr(self.scheduler, "gamma", factor),
                     "lr_step": sorted(getattr(self.scheduler, "milestones", steps))}
        now = {"lr": lr, "lr_factor": factor, "lr_step": list(steps)}
        multistep = isinstance(self.scheduler, torch.optim.lr_scheduler.MultiStepLR)
        keys = now if multistep else ("lr",)  # LR_FACTOR / LR_STEP drive multistep only
        changed = {k: (saved[k], now[k]) for k in keys if _differs(saved[k], now[k])}
        if not changed:
            return
        if multistep:
            set_schedule(self.optimizer, self.scheduler, lr, factor, steps)
        else:  # a factor schedule (LambdaLR): only the base LR is the config's
            self.scheduler.base_lrs = [lr for _ in self.optimizer.param_groups]
            scale = self.scheduler.lr_lambdas[0](self.scheduler.last_epoch)
            for group in self.optimizer.param_groups:
                group["initial_lr"], group["lr"] = lr, lr * scale
        detail = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items())
        logger.warning(
            f"resuming with the config's schedule, not the checkpoint's ({detail}); "
            f"learning rate now {self.optimizer.param_groups[0]['lr']:g}"
        )


def _differs(a, b):
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return [float(x) for x in a] != [float(x) for x in b]
    return not math.isclose(float(a), float(b), rel_tol=1e-12)
