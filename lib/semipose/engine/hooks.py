"""Hooks of the ``Trainer`` (detectron2's ``engine/hooks.py``): each behaviour of a training run
that is not the step itself. A new behaviour is a new hook, registered in ``do_train``.

Order matters where hooks share state; ``do_train`` registers them as: data order, the EMA
teacher update (EMA.ENABLED), iteration metrics, collapse monitor, debug images, LR schedule,
``shuffle_ind``, checkpoint, evaluation, progress bar, then the metrics writers (JSON lines,
TensorBoard, console).
"""

import bisect
import json
import logging
import math
import os
import time

import numpy as np
import torch

from semipose.core.evaluate import accuracy
from semipose.engine.evaluator import summarize
from semipose.engine.monitor import CollapseMonitor
from semipose.engine.train_loop import HookBase
from semipose.utils.logger import AverageMeter, log_to_file

logger = logging.getLogger(__name__)

__all__ = [
    "CheckpointHook",
    "Checkpointer",
    "CollapseMonitorHook",
    "ConsoleWriter",
    "DebugImages",
    "EMATeacher",
    "EpochSeeding",
    "EvalHook",
    "IterationMetrics",
    "JSONWriter",
    "LRScheduler",
    "MetricsWriter",
    "ProgressBar",
    "ShuffleInd",
    "TensorboardWriter",
    "build_ema_teacher",
    "read_metrics",
]


# --------------------------------------------------------------------------------- data order
class EpochSeeding(HookBase):
    """Before each epoch: ``sampler.set_epoch(epoch)`` (DDP) and the loader's generator reseeded
    with ``seed + epoch``, so an epoch's order does not depend on where a run was resumed."""

    def __init__(self, sampler, generator, seed):
        self.sampler, self.generator, self.seed = sampler, generator, int(seed)

    def before_epoch(self):
        if self.sampler is not None:
            self.sampler.set_epoch(self.trainer.epoch)
        self.generator.manual_seed(self.seed + self.trainer.epoch)


class ShuffleInd(HookBase):
    """The mixed sets' per-epoch ``shuffle_ind()`` (the unlabeled partner of each labeled sample);
    a resumed run first replays it ``replay`` times so the pairing continues as uninterrupted."""

    def __init__(self, dataset, replay=0):
        self.dataset, self.replay = dataset, int(replay)

    def before_train(self):
        for _ in range(self.replay):
            self.dataset.shuffle_ind()

    def after_epoch(self):
        self.dataset.shuffle_ind()


# --------------------------------------------------------------------------------- EMA teacher
class EMATeacher(HookBase):
    """The EMA (mean) teacher (EMA.*): after every step, each teacher copy moves towards its
    student (``models.ema.ModelEMA.update``). Also the checkpoint entry ``ema``: the
    ``Checkpointer`` saves ``state_dict()`` and restores it on resume (``reset`` when a checkpoint
    has none), so a resumed run continues the same average.

    Args:
        ema: a ``ModelEMA`` whose teacher passes the model runs (``set_teachers``).
    """

    def __init__(self, ema):
        self.ema = ema

    def after_step(self):
        self.ema.update()

    def state_dict(self):
        return self.ema.state_dict()

    def load_state_dict(self, state):
        self.ema.load_state_dict(state)

    def reset(self):
        self.ema.reset()


def build_ema_teacher(cfg, method, model):
    """The ``EMATeacher`` of a run with EMA.ENABLED (``None`` without): EMA copies of the method's
    ``teacher_nets``, made from ``model`` as it is now (initialised, on its device), and set as
    the model's teachers.

    Raises:
        ConfigError: the method has no teachers to replace, or a bad EMA.DECAY / EMA.TEACHER_BN.
    """
    from semipose.config import ConfigError
    from semipose.models.ema import TEACHER_BN_MODES, ModelEMA

    node = cfg.EMA
    if not node.ENABLED:
        return None
    nets = method.teacher_nets(model)
    if not nets:
        raise ConfigError(f"EMA.ENABLED: MODEL.NAME {cfg.MODEL.NAME} has no teacher to replace "
                          "(pose_cons and pose_dual have)")
    if not 0.0 <= node.DECAY <= 1.0 or node.TEACHER_BN not in TEACHER_BN_MODES:
        raise ConfigError(f"EMA.DECAY must lie in [0, 1] and EMA.TEACHER_BN be one of "
                          f"{TEACHER_BN_MODES}; got {node.DECAY} and {node.TEACHER_BN!r}")
    ema = ModelEMA(nets, node.DECAY, teacher_bn=node.TEACHER_BN)
    model.set_teachers(ema.teachers())
    logger.info(f"EMA teachers of {list(nets)} (decay {node.DECAY}, BN {node.TEACHER_BN})")
    return EMATeacher(ema)


class LRScheduler(HookBase):
    """Steps the LR scheduler after each epoch, or after each iteration when the scheduler says
    ``per_iteration`` (``utils.optim.build_lr_scheduler``)."""

    def __init__(self, scheduler):
        self.scheduler = scheduler
        self.per_iteration = bool(getattr(scheduler, "per_iteration", False))

    def after_step(self):
        if self.per_iteration:
            self.scheduler.step()

    def after_epoch(self):
        if not self.per_iteration:
            self.scheduler.step()


# --------------------------------------------------------------------------------- monitoring
class IterationMetrics(HookBase):
    """Loss, accuracy, loss parts, speed and timing: an ``iter`` record every ``period`` steps
    (and on the last), epoch averages into ``trainer.epoch_stats``.

    Accuracy and the loss parts are read back on logged iterations only, so the other steps have
    no host sync beyond the loss check.
    """

    def __init__(self, period=20):
        self.period = max(int(period), 1)

    def before_epoch(self):
        self.meters = {k: AverageMeter() for k in ("loss", "acc", "time", "data_time")}
        self.parts = {}
        self.samples = 0

    def after_step(self):
        t = self.trainer
        step = t.step
        n = step["batch_size"]
        self.samples += n
        m = self.meters
        m["loss"].update(step["loss_value"], n)
        m["time"].update(step["step_time"])
        m["data_time"].update(step["data_time"])
        if t.iter % self.period and t.iter != t.iters_per_epoch - 1:
            return
        method = t.method
        heat = method.labeled_heatmap(step["outputs"]).detach().float().cpu().numpy()
        target = method.labeled_target(step["targets"]).detach().float().cpu().numpy()
        _, avg_acc, cnt, _ = accuracy(heat, target)
        m["acc"].update(avg_acc, cnt)
        parts = {k: float(v) for k, v in step["parts"].items()}
        for k, v in parts.items():
            self.parts.setdefault(k, AverageMeter()).update(v, n)
        t.emit({
            "type": "iter",
            "epoch": t.epoch,
            "iter": t.iter,
            "iters": t.iters_per_epoch,
            "iteration": t.global_iter,
            "loss": m["loss"].val,
            "loss_avg": m["loss"].avg,
            "acc": m["acc"].val,
            "acc_avg": m["acc"].avg,
            "lr": t.lr,
            "time": m["time"].val,
            "time_avg": m["time"].avg,
            "data_time": m["data_time"].val,
            "data_time_avg": m["data_time"].avg,
            "samples_per_s": n / max(m["time"].val, 1e-9),
            **parts,
        })

    def after_epoch(self):
        t = self.trainer
        t.epoch_stats.update(
            loss=self.meters["loss"].avg,
            acc=self.meters["acc"].avg,
            lr=t.lr,
            samples_per_s=self.samples / max(t.epoch_stats.get("elapsed_s", 0.0), 1e-9),
            **{k: m.avg for k, m in self.parts.items()},
        )


class CollapseMonitorHook(HookBase):
    """Per net, the share of unlabeled samples whose teacher heatmaps fell to background and the
    mean teacher peak, into ``epoch_stats['collapse']`` (methods without teachers: nothing).
    Runs on every rank: the summary is all-reduced."""

    def __init__(self, threshold=0.1):
        self.monitor = CollapseMonitor(threshold)

    def after_step(self):
        step = self.trainer.step
        method = self.trainer.method
        teachers = method.teacher_heatmaps(step["outputs"])
        if teachers:
            self.monitor.update(teachers, method.unlabeled_weight(step["weights"]))

    def after_epoch(self):
        summary = self.monitor.summary()
        if summary:
            self.trainer.epoch_stats["collapse"] = summary


def save_debug_pictures(debug, prefix, image, meta, target, heatmap):
    """The original's debug pictures (DEBUG.*) of one batch, predictions taken at the heatmap
    argmax and scaled to input pixels."""
    from semipose.codecs import get_max_preds
    from semipose.utils.vis import save_debug_images

    heatmap = heatmap.detach().float()
    pred, _ = get_max_preds(heatmap.cpu().numpy())
    pred[..., 0] *= image.shape[-1] / heatmap.shape[-1]
    pred[..., 1] *= image.shape[-2] / heatmap.shape[-2]
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    save_debug_images(debug, image, meta, target, pred, heatmap, prefix)


class DebugImages(HookBase):
    """The debug pictures of the labeled batch on logged iterations (DEBUG.DEBUG)."""

    def __init__(self, debug, output_dir, period=20):
        self.debug, self.folder, self.period = debug, os.path.join(output_dir, "train"), period

    def after_step(self):
        from semipose.methods.base import first

        t = self.trainer
        if t.iter % max(self.period, 1) and t.iter != t.iters_per_epoch - 1:
            return
        step = t.step
        save_debug_pictures(
            self.debug, os.path.join(self.folder, f"train_{t.iter}"), first(step["inputs"]),
            first(step["meta"]), t.method.labeled_target(step["targets"]),
            t.method.labeled_heatmap(step["outputs"]),
        )


class ProgressBar(HookBase):
    """A tqdm bar per epoch (interactive terminals only); log lines print above it."""

    def before_epoch(self):
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        t = self.trainer
        self.bar = tqdm(total=t.iters_per_epoch, desc=f"epoch {t.epoch}", leave=False,
                        dynamic_ncols=True)
        self.redirect = logging_redirect_tqdm()
        self.redirect.__enter__()

    def after_step(self):
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{self.trainer.step['loss_value']:.5f}")

    def after_epoch(self):
        self.bar.close()
        self.redirect.__exit__(None, None, None)


# --------------------------------------------------------------------------------- checkpoints
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
        from semipose.utils.comm import get_rng_state

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

    def save(self, epoch, best=False, iteration=None, order=None):
        """Writes ``checkpoint.pth.tar`` (and ``model_best.pth.tar`` when ``best``), atomically;
        with ``iteration`` a mid-epoch checkpoint (``states``)."""
        from semipose.utils.checkpoint import save_checkpoint

        if self.is_main:
            save_checkpoint(self.states(epoch, iteration, order), best, self.output_dir,
                            self.FILENAME)

    def save_weights(self, name):
        """Writes the model's state_dict alone to ``output_dir/name``."""
        from semipose.utils.checkpoint import atomic_save

        if self.is_main:
            atomic_save(self.model.state_dict(), os.path.join(self.output_dir, name))

    def update_best(self, perf, epoch):
        """Records a validation result; True when it is the best so far (the first one always
        is, so ``model_best`` exists even while the metric stays 0)."""
        if self.best_perf is None or perf > self.best_perf:
            self.best_perf, self.best_epoch = float(perf), int(epoch)
            return True
        return False

    def resume(self):
        """Restores the model, optimizer, scheduler and best metric from ``checkpoint.pth.tar``.

        A config whose TRAIN.LR / LR_FACTOR / LR_STEP differ from the checkpoint's wins (with a
        warning), so a run stopped by a diverging loss can resume with a lower LR.

        Returns:
            ``(next epoch, rng state or None)``.
        """
        from semipose.utils.checkpoint import load_checkpoint, load_model_state

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


class CheckpointHook(HookBase):
    """After each epoch, before validation: ``checkpoint.pth.tar`` (so a failing validation loses
    no training) and the periodic ``State_epoch{N}.pth.tar``; at the end ``final_state``."""

    def __init__(self, checkpointer):
        self.checkpointer = checkpointer

    def after_epoch(self):
        ck, epoch = self.checkpointer, self.trainer.epoch
        logger.info(f"=> saving checkpoint to {ck.output_dir}")
        ck.save(epoch)
        if ck.save_inter > 0 and epoch % ck.save_inter == 0:
            ck.save_weights(f"State_epoch{epoch}.pth.tar")

    def after_train(self):
        ck = self.checkpointer
        name = "final_state.pth.tar"
        logger.info(f"=> saving final model state to {os.path.join(ck.output_dir, name)}")
        ck.save_weights(name)


class EvalHook(HookBase):
    """Validation every ``interval`` epochs and after the last one (rank 0), best-model selection
    by ``Method.selection_metric`` (TEST.SELECT_BY: net 1, the mean of the nets or the ensemble),
    and the results into ``epoch_stats`` (``ap`` per head, ``selection`` every rule's value and
    ``select_by``). A resumed run whose rule differs from the checkpoint's restarts the best.

    Args:
        eval_fn: ``callable(epoch) -> validate's results``.
        checkpointer: records the best metric, rewrites the checkpoint with it and writes
            ``model_best.pth.tar``.
    """

    def __init__(self, eval_fn, checkpointer, interval=1, is_main=True):
        self.eval_fn = eval_fn
        self.checkpointer = checkpointer
        self.interval = max(int(interval), 1)
        self.is_main = is_main
        self.last = None

    def before_train(self):
        ck, rule = self.checkpointer, self.trainer.method.select_by
        before = ck.resumed_select_by
        if before is not None and before != rule and ck.best_perf is not None:
            logger.warning(f"TEST.SELECT_BY is {rule!r}, the checkpoint's best epoch was chosen by "
                           f"{before!r}: the best model is selected afresh from now on")
            ck.best_perf, ck.best_epoch = None, -1
        ck.select_by = rule

    def after_epoch(self):
        t = self.trainer
        due = (t.epoch + 1) % self.interval == 0 or t.epoch + 1 == t.max_epoch
        if not (due and self.is_main):
            return
        results = self.eval_fn(t.epoch)
        self.last = results
        ck = self.checkpointer
        selection = t.method.selection_metrics(results)
        best = ck.update_best(selection[t.method.select_by], t.epoch)
        ap = summarize(results)
        ck.last_results = dict(ap)
        ck.save(t.epoch, best=best)
        t.epoch_stats.update(
            ap=dict(ap),
            metrics={h: _plain_table(results[h]) for h in results["heads"]},
            val_loss=results["loss"],
            val_acc=results["acc"],
            selection=selection,
            select_by=t.method.select_by,
            best_perf=ck.best_perf,
            best_epoch=ck.best_epoch,
        )


def _plain_table(name_values):
    tables = name_values if isinstance(name_values, list) else [name_values]
    plain = [{k: float(v) for k, v in nv.items()} for nv in tables]
    return plain if isinstance(name_values, list) else plain[0]


# --------------------------------------------------------------------------------- writers
class MetricsWriter(HookBase):
    """A hook that receives every metrics record (``Trainer.emit``)."""

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
        if self.file is None:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            self.file = open(self.path, "a", encoding="utf-8")
        record = {"time": round(time.time(), 3), **record}
        self.file.write(json.dumps(_jsonable(record), sort_keys=False) + "\n")
        self.file.flush()

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
        if record["type"] != "iter":
            logger.info(self.epoch_line(record))
        elif self.iteration_lines:
            logger.info(self.iteration_line(record))
        else:
            log_to_file(logger.name, "%s", self.iteration_line(record))
