"""``do_train`` and ``do_valid``: short assemblies of the builders, the ``Trainer`` and its hooks
(the original's pose_estimation/train.py and valid.py, MIT).

How a config becomes a run: ``setup`` (device, DDP, logging, seeds, synthetic set) → datasets
and loaders → ``build_method`` (the method owns its model and loss) → optimizer and schedule →
``Checkpointer`` (resume) → ``Trainer`` + hooks → ``metrics.jsonl``, TensorBoard, checkpoints.
"""

import logging
import os
import shutil
import signal
import sys
import threading
import time

import torch

from semipose.checkpoint import BestModelHook, Checkpointer, CheckpointHook
from semipose.checkpoint.files import load_checkpoint, load_model_state, unwrap_state_dict
from semipose.common.errors import RunStopped
from semipose.config import get_model_name
from semipose.dataset.build import build_dataset, dataset_layout
from semipose.engine import hooks as H
from semipose.engine.checks import check_config
from semipose.engine.defaults import (
    build_train_loader,
    build_valid_loader,
    is_interactive,
    native_bf16,
    resolve_amp_dtype,
    run_output_dir,
    setup,
)
from semipose.engine.evaluator import (
    TestOptions,
    flip_test_heatmap,
    main_metric,
    summarize,
    validate,
)
from semipose.engine.events import ConsoleWriter, JSONWriter, TensorboardWriter
from semipose.engine.train_loop import Preempted, Trainer, autocast_context, epoch_order, to_device
from semipose.methods import build_method
from semipose.models.build import compile_networks
from semipose.utils import comm
from semipose.utils.optim import build_lr_scheduler, build_optimizer
from semipose.utils.vis import save_drawn_predictions

logger = logging.getLogger(__name__)

__all__ = [
    "autocast_context",
    "do_train",
    "do_valid",
    "flip_test_heatmap",
    "load_eval_weights",
    "main_metric",
    "native_bf16",
    "resolve_amp_dtype",
    "summarize",
    "to_device",
    "validate",
]

#: files of a finished or interrupted run that a fresh (non-resuming) run would overwrite
RUN_FILES = ("checkpoint.pth.tar", "model_best.pth.tar", "final_state.pth.tar", "metrics.jsonl")


def _set_aside_previous_run(output_dir):
    """TRAIN.RESUME off in a folder that holds a run: move its files to ``previous_<time>/``."""
    present = [f for f in RUN_FILES if os.path.exists(os.path.join(output_dir, f))]
    if not present:
        return
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(
        os.path.getmtime(os.path.join(output_dir, present[0]))))
    keep = os.path.join(output_dir, f"previous_{stamp}")
    os.makedirs(keep, exist_ok=True)
    for name in present:
        shutil.move(os.path.join(output_dir, name), os.path.join(keep, name))
    logger.warning(f"TRAIN.RESUME is off: the previous run's {', '.join(present)} moved to {keep}")


def _debug_images(debug, output_dir, layout=None):
    """The validation debug pictures (DEBUG.*; ``layout``: the val set's skeleton and colours),
    or None when DEBUG.DEBUG is off."""
    if not debug.DEBUG:
        return None

    def save(i, input, meta, target, heatmap):
        prefix = os.path.join(output_dir, "heatmap", f"val_{i}")
        H.save_debug_pictures(debug, prefix, input, meta, target, heatmap, layout=layout)

    return save


def _evaluation(cfg, model, method, dataset, ctx):
    """``epoch -> validate(...)`` on ``dataset`` with the config's test options."""
    loader = build_valid_loader(cfg, dataset, ctx.device)
    opts = TestOptions.from_config(cfg)
    debug = _debug_images(cfg.DEBUG, ctx.output_dir,
                          dataset_layout(cfg) if cfg.DEBUG.DEBUG else None)
    return lambda epoch: validate(model, method, loader, dataset, ctx.device, opts,
                                  ctx.output_dir, debug_hook=debug)


def build_training(cfg, ctx, iters_per_epoch=1):
    """The method, its model on the device, the optimizer and the ``Checkpointer`` (with the LR
    schedule, which a per-iteration schedule sizes by ``iters_per_epoch``)."""
    t = cfg.TRAIN
    method = build_method(cfg)
    model = method.build_model(is_train=True).to(ctx.device)
    if t.CHANNELS_LAST:
        model = model.to(memory_format=torch.channels_last)
    method.criterion.to(ctx.device)
    optimizer = build_optimizer(cfg, model)
    ck = Checkpointer(
        ctx.output_dir, model, optimizer, build_lr_scheduler(cfg, optimizer, iters_per_epoch),
        schedule=(t.LR, t.LR_FACTOR, t.LR_STEP), model_name=get_model_name(cfg),
        save_inter=cfg.SAVE_INTER, is_main=ctx.is_main,
    )
    ema = H.build_ema_teacher(cfg, method, model)  # None unless EMA.ENABLED
    if ema is not None:
        ck.extras["ema"] = ema  # saved beside the state_dict, restored on resume
    return method, model, optimizer, ck


def resume_or_start(cfg, ctx, ck):
    """Resumes from ``checkpoint.pth.tar`` (TRAIN.RESUME) or starts at TRAIN.BEGIN_EPOCH, moving a
    previous run's files aside. Restores (or, under DDP, re-derives) the RNG state: at once after
    an epoch, or, after a mid-epoch save, through ``restore`` once the loader has passed over the
    epoch's done batches.

    Returns:
        ``(first epoch, resumed, first iteration, restore or None, the saved epoch order)``.
    """
    begin, rng = cfg.TRAIN.BEGIN_EPOCH, None
    resumed = cfg.TRAIN.RESUME and os.path.exists(ck.path)
    if resumed:
        begin, rng = ck.resume()
    elif ctx.is_main:
        _set_aside_previous_run(ctx.output_dir)

    def restore():
        if rng is not None and not ctx.distributed:
            comm.set_rng_state(rng)
        elif rng is not None:
            comm.seed_everything(cfg.SEED + ctx.rank + 7919 * begin + ck.resume_iteration)

    start_iter = ck.resume_iteration if resumed else 0
    if not start_iter:
        restore()
        return begin, resumed, 0, None, None
    order = ck.resume_order
    return begin, resumed, start_iter, restore, None if order is None else order.tolist()


#: the signals that stop a training run with a mid-epoch checkpoint (schedulers send SIGTERM
#: before killing a job; some send SIGUSR1 first)
STOP_SIGNALS = ("SIGTERM", "SIGUSR1")


class StopSignals:
    """While active (the training and the mid-epoch save after a stop), SIGTERM and SIGUSR1 ask
    ``trainer`` to stop after its current step; a second signal is noted and ignored, so the
    checkpoint being written is finished and renamed into place; a third forces the exit at once
    (``RunStopped``: the write in progress is abandoned, its temporary removed, the previous
    checkpoint kept). Installed only in the main thread (signal handlers can live nowhere else);
    the previous handlers come back on exit."""

    #: the signal count that abandons the save in progress
    FORCE_AT = 3

    def __init__(self, trainer):
        self.trainer = trainer
        self.previous = {}
        self.count = 0

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        self.count += 1
        if self.trainer.stop_reason is None:
            logger.warning(f"received {name}: finishing the current step, then saving a "
                           "checkpoint and stopping")
            self.trainer.request_stop(name)
        elif self.count < self.FORCE_AT:
            logger.warning(f"received {name} again: already stopping, the checkpoint is being "
                           f"saved (a {self.FORCE_AT}rd signal abandons it and exits now)")
        else:
            raise RunStopped(f"stopped by {name} ({self.count} signals): exited without the "
                             "mid-epoch checkpoint; the previous checkpoint is intact", signum)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for name in STOP_SIGNALS:
                if hasattr(signal, name):
                    num = getattr(signal, name)
                    self.previous[num] = signal.signal(num, self._handle)
        return self

    def __exit__(self, *exc):
        for num, handler in self.previous.items():
            signal.signal(num, handler)
        return False


def _save_preempted(ck, trainer, stop, loader):
    """The mid-epoch checkpoint of a stopped run; raises ``RunStopped`` (exit 128 + signal)."""
    if stop.iteration == 0:  # between two epochs: the checkpoint of the one before is saved
        where = f"after epoch {stop.epoch - 1}"
    else:
        order = epoch_order(loader)
        ck.save(stop.epoch, iteration=stop.iteration, order=order)
        where = f"at epoch {stop.epoch}, iteration {stop.iteration}"
    signum = int(getattr(signal, stop.reason, signal.SIGTERM))
    raise RunStopped(
        f"stopped by {stop.reason} {where}; checkpoint {ck.path} saved; run the same command "
        f"(TRAIN.RESUME True) to continue from there", signum)


def default_hooks(cfg, ctx, ck, *, evaluate, sampler, generator, train_set, replay, method=None):
    """The hooks of a training run (``semipose.engine.hooks``, the checkpoint hooks of
    ``semipose.checkpoint`` and the writers of ``semipose.engine.events``), then the method's own
    (``Method.hooks``)."""
    main = ctx.is_main
    return [
        H.EpochSeeding(sampler, generator, cfg.SEED),
        ck.extras.get("ema"),
        H.IterationMetrics(cfg.PRINT_FREQ if cfg.PRINT_FREQ > 0 else 50),
        H.CollapseMonitorHook(cfg.MONITOR.COLLAPSE_THRE),
        H.DebugImages(cfg.DEBUG, ctx.output_dir, max(cfg.PRINT_FREQ, 1),
                      layout=dataset_layout(cfg, cfg.DATASET.TRAIN_DATASET))
        if cfg.DEBUG.DEBUG and main else None,
        H.LRScheduler(ck.scheduler),
        H.ShuffleInd(train_set, replay) if hasattr(train_set, "shuffle_ind") else None,
        H.EvalHook(evaluate, ck, cfg.TEST.INTERVAL, is_main=main),
        H.ProgressBar() if main and is_interactive() else None,
        CheckpointHook(ck),
        BestModelHook(ck),
        JSONWriter(os.path.join(ctx.output_dir, "metrics.jsonl")) if main else None,
        TensorboardWriter(ctx.tb_log_dir) if main else None,
        ConsoleWriter(iteration_lines=cfg.PRINT_FREQ > 0) if main else None,
        *(method.hooks() if method is not None else ()),
    ]


def do_train(cfg, args):
    """Trains as the original's train.py, from a frozen config and the parsed CLI ``args``.

    Returns:
        dict: ``best_perf``, ``last`` (the last validation results), ``output_dir``, ``epochs``.
    """
    t = cfg.TRAIN
    check_config(cfg, "train")
    ctx = setup(cfg, args, "train")
    try:
        train_set = build_dataset(cfg, is_train=True)
        loader, sampler, generator = build_train_loader(cfg, train_set, ctx)
        iters = len(loader) if t.MAX_ITERS <= 0 else min(len(loader), t.MAX_ITERS)
        method, model, optimizer, ck = build_training(cfg, ctx, iters)
        begin, resumed, start_iter, restore, order = resume_or_start(cfg, ctx, ck)
        done = {"best_perf": ck.best_perf or 0.0, "last": None, "output_dir": ctx.output_dir,
                "epochs": t.END_EPOCH - begin}
        if begin >= t.END_EPOCH:
            logger.info(f"{ck.path} is at epoch {begin}, TRAIN.END_EPOCH is {t.END_EPOCH}: the run "
                        "is complete, nothing to train (raise TRAIN.END_EPOCH to continue)")
            return {**done, "epochs": 0}
        if t.COMPILE:
            compile_networks(method.networks(model).values())
        wrapped = model
        if ctx.distributed:
            wrapped = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None)
        trainer = Trainer(wrapped, method, optimizer, loader, ctx.device, amp_dtype=ctx.amp_dtype,
                          channels_last=t.CHANNELS_LAST, max_iters=t.MAX_ITERS,
                          loss_limit=t.LOSS_LIMIT)
        evaluate = None
        if ctx.is_main:
            evaluate = _evaluation(cfg, model, method, build_dataset(cfg, is_train=False), ctx)
        trainer.register_hooks(default_hooks(
            cfg, ctx, ck, evaluate=evaluate, sampler=sampler, generator=generator,
            train_set=train_set, replay=begin if resumed else 0, method=method,
        ))
        with StopSignals(trainer):  # still active while the mid-epoch checkpoint is written
            try:
                trainer.train(begin, t.END_EPOCH, start_iter, restore, order)
                # every rank waits for the main one's last validation and final save before the
                # process group is torn down (a rank leaving early can abort the other's threads)
                comm.synchronize()
            except Preempted as stop:
                _save_preempted(ck, trainer, stop, loader)
        last = next(h.last for h in trainer.hooks if isinstance(h, H.EvalHook))
        return {**done, "best_perf": ck.best_perf or 0.0, "last": last}
    finally:
        comm.cleanup_distributed()
        ctx.close()


def load_eval_weights(model, method, path):
    """Loads ``path`` (a released checkpoint or one of ours) into ``model``, checking keys
    strictly, after the method picks its part (``Method.eval_state``)."""
    state = unwrap_state_dict(load_checkpoint(path, map_location="cpu"))
    load_model_state(model, method.eval_state(state), strict=True, source=path)


def valid_subdir(model_file):
    """The folder, below the run's, that ``valid.py`` writes into:
    ``valid/<checkpoint name>_<YYYYmmdd-HHMMSS>``."""
    stem = os.path.basename(model_file).split(".")[0] or "model"
    return os.path.join("valid", f"{stem}_{time.strftime('%Y%m%d-%H%M%S')}")


def print_valid_summary(results, model_file, output_dir, log_file, stream=None):
    """The end of ``valid.py`` on the console, whatever PRINT_FREQ says: every evaluated head's
    table, then where the results json files and the log are."""
    stream = stream or sys.stdout
    lines = [f"Evaluated {model_file}:"]
    for head in results.get("heads", ()):
        lines.append(results.get("tables", {}).get(head, head))
    res_dir = os.path.join(output_dir, "results")
    files = sorted(f for f in os.listdir(res_dir) if f.endswith(".json")) if os.path.isdir(
        res_dir) else []
    lines.append("results: " + (", ".join(os.path.join(res_dir, f) for f in files)
                                if files else f"none written (TEST.SAVE_RESULT off) in {res_dir}"))
    lines.append(f"log: {log_file}")
    print("\n".join(lines), file=stream, flush=True)


def do_valid(cfg, args):
    """Evaluates a checkpoint as the original's valid.py: ``TEST.MODEL_FILE`` (or the run's
    ``final_state.pth.tar``). Everything it writes (config, log, results, predictions, drawings)
    goes to its own folder, ``<run folder>/valid/<checkpoint>_<time>/``, so it may run beside the
    training and never replaces the training's files; it ends by printing the AP table of every
    head and the paths of the results and the log.

    Returns:
        ``validate``'s results dict (plus ``output_dir``).
    """
    check_config(cfg, "valid")
    model_file = cfg.TEST.MODEL_FILE or os.path.join(
        run_output_dir(cfg, getattr(args, "cfg", None)), "final_state.pth.tar")
    if not os.path.isfile(model_file):
        raise FileNotFoundError(
            f"no model to evaluate: {model_file} does not exist "
            "(set TEST.MODEL_FILE or --model-file)"
        )
    method = build_method(cfg)
    model = method.build_model(is_train=False)
    load_eval_weights(model, method, model_file)  # a wrong file is refused before any writing
    ctx = setup(cfg, args, "valid", subdir=valid_subdir(model_file))
    try:
        logger.info(f"=> loaded model from {model_file}")
        model = model.to(ctx.device)
        if cfg.TRAIN.CHANNELS_LAST:
            model = model.to(memory_format=torch.channels_last)
        dataset = build_dataset(cfg, is_train=False)
        results = _evaluation(cfg, model, method, dataset, ctx)(None)
        if getattr(args, "vis", 0) > 0:
            _save_vis(cfg, method, results, ctx.output_dir, args.vis)
        print_valid_summary(results, model_file, ctx.output_dir, ctx.log_file)
        return {**results, "output_dir": ctx.output_dir}
    finally:
        ctx.close()  # the log file and the console handler go with the run


def _save_vis(cfg, method, results, output_dir, num_images):
    """``valid.py --vis N``: the first N val images with the predicted skeletons drawn (the
    ensemble for a two-network method, else net 1) under ``<output>/vis/``."""
    head = "ensemble" if "ensemble" in method.heads else method.heads[0]
    p = results["predictions"]
    written = save_drawn_predictions(
        p["image_path"], p["preds"][head], p["boxes"], output_dir, num_images,
        layout=dataset_layout(cfg), in_vis_thre=cfg.TEST.IN_VIS_THRE,
    )
    logger.info(f"=> drew {head} predictions on {len(written)} images in "
                f"{os.path.join(output_dir, 'vis')}")
