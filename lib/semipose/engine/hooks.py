"""Hooks of the ``Trainer`` (detectron2's ``engine/hooks.py``): each behaviour of a training run
that is not the step itself. A new behaviour is a new hook, registered in ``default_hooks``
(``engine/launch.py``).

``do_train`` registers: data order, the EMA teacher update (EMA.ENABLED), iteration metrics,
collapse monitor, debug images, LR schedule, ``shuffle_ind``, evaluation, progress bar, the
checkpoint hooks (``semipose.checkpoint.hooks``) and the metrics writers
(``semipose.engine.events``). Where hooks share state the loop's phases order them, not the
registration: every ``after_epoch`` runs before the epoch record is emitted, and the checkpoint
hooks and writers act on that record.
"""

import logging
import os

from semipose.common.hooks import HookBase
from semipose.core.evaluate import accuracy
from semipose.engine.evaluator import summarize
from semipose.engine.monitor import CollapseMonitor
from semipose.utils.logger import AverageMeter

logger = logging.getLogger(__name__)

__all__ = [
    "CollapseMonitorHook",
    "DebugImages",
    "EMATeacher",
    "EpochSeeding",
    "EvalHook",
    "IterationMetrics",
    "LRScheduler",
    "ProgressBar",
    "ShuffleInd",
    "build_ema_teacher",
    "save_debug_pictures",
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


def save_debug_pictures(debug, prefix, image, meta, target, heatmap, layout=None):
    """The original's debug pictures (DEBUG.*) of one batch, predictions taken at the heatmap
    argmax and scaled to input pixels; with a ``KeypointLayout``, the joints are drawn as the
    set's skeleton in its colours, else as dots."""
    from semipose.codecs import get_max_preds
    from semipose.utils.vis import save_debug_images

    heatmap = heatmap.detach().float()
    pred, _ = get_max_preds(heatmap.cpu().numpy())
    pred[..., 0] *= image.shape[-1] / heatmap.shape[-1]
    pred[..., 1] *= image.shape[-2] / heatmap.shape[-2]
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    save_debug_images(debug, image, meta, target, pred, heatmap, prefix, layout=layout)


class DebugImages(HookBase):
    """The debug pictures of the labeled batch on logged iterations (DEBUG.DEBUG).

    Args:
        debug: the ``cfg.DEBUG`` node.
        output_dir: the pictures go to ``<output_dir>/train/train_<iter>_*.jpg``.
        period: every ``period`` iterations, and the epoch's last one.
        layout: the training set's ``KeypointLayout`` (``dataset_layout(cfg, TRAIN_DATASET)``):
            its skeleton and colours are drawn; None: a dot per joint.
    """

    def __init__(self, debug, output_dir, period=20, layout=None):
        self.debug, self.folder, self.period = debug, os.path.join(output_dir, "train"), period
        self.layout = layout

    def after_step(self):
        from semipose.methods.base import first

        t = self.trainer
        if t.iter % max(self.period, 1) and t.iter != t.iters_per_epoch - 1:
            return
        step = t.step
        save_debug_pictures(
            self.debug, os.path.join(self.folder, f"train_{t.iter}"), first(step["inputs"]),
            first(step["meta"]), t.method.labeled_target(step["targets"]),
            t.method.labeled_heatmap(step["outputs"]), layout=self.layout,
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


class EvalHook(HookBase):
    """Validation every ``interval`` epochs and after the last one (rank 0): the results into
    ``epoch_stats`` (``ap`` per head, ``metrics``, ``val_loss``, ``val_acc``, ``selection`` every
    rule's value, ``select_by``) and the selection metric (``Method.selection_metric``, by
    TEST.SELECT_BY: net 1, the mean of the nets or the ensemble) into the ``Checkpointer``'s best
    (``best_perf``, ``best_epoch``, also reported). It writes no file: the checkpoint hooks write
    the checkpoint and ``model_best`` from the epoch record. A resumed run whose rule differs from
    the checkpoint's restarts the best.

    Args:
        eval_fn: ``callable(epoch) -> validate's results``.
        checkpointer: keeps the best metric and the last results (saved with the checkpoint).
    """

    def __init__(self, eval_fn, checkpointer, interval=1, is_main=True):
        self.eval_fn = eval_fn
        self.checkpointer = checkpointer
        self.interval = max(int(interval), 1)
        self.is_main = is_main
        self.last = None

    def before_train(self):
        self.checkpointer.use_select_by(self.trainer.method.select_by)

    def after_epoch(self):
        t = self.trainer
        due = (t.epoch + 1) % self.interval == 0 or t.epoch + 1 == t.max_epoch
        if not (due and self.is_main):
            return
        results = self.eval_fn(t.epoch)
        self.last = results
        ck = self.checkpointer
        selection = t.method.selection_metrics(results)
        ck.update_best(selection[t.method.select_by], t.epoch)
        ap = summarize(results)
        ck.last_results = dict(ap)
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


