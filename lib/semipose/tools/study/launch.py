"""Training a study's runs: one ``train.py`` process per run, ``--jobs`` at a time, their epoch
records echoed as they are written, and the shared pretrained start trained first when missing."""

import collections
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .runs import (
    FINAL_STATE,
    METRICS_FILE,
    epochs_from_records,
    printable,
    read_run,
    run_command,
    run_folder,
)
from .spec import REPO, StudyError, relative
from .stats import final_summary, fmt

_PRINT_LOCK = threading.Lock()


class MetricsWatch:
    """Follows a training run's ``metrics.jsonl`` while it runs.

    Args:
        path: the run's metrics file (it need not exist yet).
        start: wall-clock time (``time.time()``) the run was started; epoch records stamped
            before it belong to an earlier (resumed) part of the run.
    """

    def __init__(self, path, start):
        self.path = Path(path)
        self.start = start
        self.stamp = None
        self.seen = 0

    def new_epochs(self):
        """The epoch records written since the previous call, oldest first."""
        from semipose.engine.events import read_metrics

        try:
            st = self.path.stat()
        except FileNotFoundError:
            return []
        stamp = (st.st_mtime_ns, st.st_size)
        if st.st_mtime < self.start or stamp == self.stamp:
            return []
        self.stamp = stamp
        records = read_metrics(str(self.path), kind="epoch")
        records = [r for r in records if r.get("time", self.start) >= self.start]
        new = records[self.seen:]
        self.seen = len(records)
        return new


def epoch_line(e):
    """One line of an ``epochs_from_records`` entry: loss, speed, AP and collapse share."""
    line = f"epoch {e['epoch']}: loss {fmt(e['loss'], '.6f')}"
    line += f", {fmt(e['samples_per_s'], '.1f')} samples/s"
    shown = {h: v for h, v in e["ap"].items() if h != "mean"}
    if shown:
        line += ", AP " + " / ".join(f"{h} {v:.3f}" for h, v in shown.items())
    for net, c in e["collapse"].items():
        share = "—" if c["share"] is None else f"{100 * c['share']:.1f}%"
        line += f", {net} collapsed {share} (teacher peak {fmt(c['peak'], '.4f')})"
    return line


def _child_env(jobs):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // max(1, jobs)))
    return env


def train(cmd, label, watch_path, jobs, verbose=False, interval=None):
    """Runs one training command, echoing the epoch records of ``watch_path`` every
    ``interval``-th epoch (and the validated ones).

    Returns:
        ``(exit status, wall seconds)``.
    """
    tail = collections.deque(maxlen=40)
    start = time.time()
    watch = MetricsWatch(watch_path, start)

    def echo():
        for rec in watch.new_epochs():
            e = epochs_from_records([rec])[0]
            if verbose or e["ap"] or (interval and e["epoch"] % interval == 0):
                with _PRINT_LOCK:
                    print(f"  [{label}] {epoch_line(e)}", flush=True)

    with subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1, env=_child_env(jobs)) as proc:
        for line in proc.stdout:
            tail.append(line.rstrip("\n"))
            if verbose:
                with _PRINT_LOCK:
                    print(f"  [{label}] {line.rstrip()}", flush=True)
            echo()
        rc = proc.wait()
    echo()
    if rc != 0:
        with _PRINT_LOCK:
            print(f"  {label} failed (exit {rc}); last lines:", flush=True)
            for line in tail:
                print(f"    {line}", flush=True)
    return rc, time.time() - start


def execute(run, jobs, verbose=False):
    """Trains one run unless it is finished; fills ``rc``, ``wall_s`` and its metrics."""
    if run.finished:
        run.skipped, run.rc = True, 0
        with _PRINT_LOCK:
            print(f"=== {run.label}: finished before, skipped ({relative(run.folder)})",
                  flush=True)
        return run
    resumed = bool(run.epochs)
    with _PRINT_LOCK:
        print(f"\n=== {run.label}" + (f" (resuming after epoch {run.epochs[-1]['epoch']})"
                                      if resumed else "")
              + f": {printable(run.cmd)}\n    metrics: {relative(run.folder / METRICS_FILE)}",
              flush=True)
    run.rc, run.wall_s = train(run.cmd, run.label, run.folder / METRICS_FILE, jobs, verbose,
                               interval=max(1, run.end_epoch // 5))
    run.refresh()
    with _PRINT_LOCK:
        s = final_summary(run.epochs, run.average_last)
        print(f"[result] {run.label}: {run.status}, AP net1 {fmt(s['ap_net1'])}, ensemble "
              f"{fmt(s['ap_ensemble'])}, {run.wall_s / 60:.1f} min", flush=True)
    return run


def ensure_prepared(study, output):
    """Runs the study's ``prepare`` commands (its data) that have not run: a step is done when its
    stamp ``<output>/prepare<k>.json`` records the same command and every path it ``creates``
    exists; the stamp is written after the command succeeds, so an interrupted step runs again.

    Raises:
        StudyError: a command failed (its exit status and last lines are printed).
    """
    import json
    import sys

    from semipose.common.io import atomic_write_json

    for k, step in enumerate(study.prepare):
        stamp = Path(output) / f"prepare{k}.json"
        want = {"command": step["command"]}
        try:
            done = json.loads(stamp.read_text()) == want
        except (OSError, ValueError):
            done = False
        if done and all((REPO / p).exists() for p in step["creates"]):
            continue
        cmd = list(step["command"])
        if cmd[0] == "python":
            cmd[0] = sys.executable
        print(f"\n=== prepare[{k}]: {printable(cmd)}", flush=True)
        out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if out.returncode != 0:
            tail = (out.stdout + out.stderr).strip().splitlines()[-10:]
            raise StudyError(f"{study.path}: prepare[{k}] failed (exit {out.returncode}): "
                             + " | ".join(tail))
        Path(output).mkdir(parents=True, exist_ok=True)
        atomic_write_json(str(stamp), want)


def _pretrain_runs(study, output):
    """The pretraining runs: ``[(seed or None, cmd, folder, end_epoch)]``, one per pretrain seed
    (the config's own seed when the study names none)."""
    from semipose.config import load_config

    pre = study.pretrain
    runs = []
    for seed in pre.get("seeds") or [None]:
        out_dir = Path(output) / "pretrain" / ("" if seed is None else f"seed{seed}")
        opts = list(pre["opts"]) + ["OUTPUT_DIR", str(out_dir), "LOG_DIR", str(out_dir / "tb"),
                                    "TRAIN.RESUME", "True"]
        if seed is not None:
            opts += ["SEED", str(seed)]
        cfg = load_config(str(REPO / pre["cfg"]), opts)
        runs.append((seed, run_command(pre["cfg"], opts), run_folder(cfg, pre["cfg"]),
                     cfg.TRAIN.END_EPOCH))
    return runs


def pair_state(first, second):
    """A two-network initialisation file's state_dict from two single networks' files: the first
    under ``resnet.``, the second under ``resnet2.`` (the layout of the published
    ``resnet18_5c_gluon_posedual.pth``). Single-network configs read the ``resnet.`` one."""
    from semipose.checkpoint.files import load_checkpoint, unwrap_state_dict

    out = {}
    for prefix, path in (("resnet.", first), ("resnet2.", second)):
        for key, value in unwrap_state_dict(load_checkpoint(str(path))).items():
            out[prefix + key] = value
    return out


def ensure_pretrain(study, output, verbose=False, train_missing=True, jobs=1):
    """The study's pretrained start: trains it when its file is missing (and ``train_missing``)
    and writes the runs' final weights there: one seed's network as it is, or with two
    ``pretrain.seeds`` the first's under ``resnet.`` and the second's under ``resnet2.`` (so the two
    networks of PoseDual start different, as the published pair file makes them).

    Returns:
        dict ``file``, ``cmds``, ``trained`` (this call trained it), ``wall_s`` (its training
        time: this call's, else the sum of its epoch records' seconds), ``ap`` (each run's last
        validation on its own val set); None when the study has no pretrain.

    Raises:
        StudyError: a pretraining run failed.
    """
    pre = study.pretrain
    if pre is None:
        return None
    runs = _pretrain_runs(study, output)
    target = pre["file"] if pre["file"].is_absolute() else REPO / pre["file"]
    info = {"file": pre["file"], "cmds": [r[1] for r in runs], "trained": False, "wall_s": None}
    if train_missing and not target.is_file():
        def one(run):
            seed, cmd, folder, end_epoch = run
            label = "pretrain" if seed is None else f"pretrain/seed{seed}"
            print(f"\n=== {label}: {relative(target)} is missing; training it: "
                  f"{printable(cmd)}", flush=True)
            rc, wall = train(cmd, label, folder / METRICS_FILE, jobs, verbose,
                             interval=max(1, end_epoch // 5))
            if rc != 0 or not (folder / FINAL_STATE).is_file():
                raise StudyError(f"the pretraining run failed (exit {rc}); its folder: {folder}")
            return wall

        start = time.time()
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            list(pool.map(one, runs))
        info["wall_s"] = time.time() - start
        from semipose.common.io import atomic_torch_save, atomic_write_bytes

        target.parent.mkdir(parents=True, exist_ok=True)
        finals = [folder / FINAL_STATE for _, _, folder, _ in runs]
        if len(finals) == 1:
            atomic_write_bytes(str(target), finals[0].read_bytes())
        elif len(finals) == 2:
            atomic_torch_save(pair_state(*finals), str(target))
        else:
            raise StudyError(f"{study.path}: pretrain.seeds takes one or two seeds")
        info["trained"] = True
        print(f"[write] {relative(target)}", flush=True)
    info["ap"] = []
    walls = []
    for _, _, folder, _ in runs:
        _, epochs = read_run(folder)
        info["ap"].append(final_summary(epochs)["ap_net1"])
        walls.append(sum(e["wall_s"] or 0 for e in epochs))
    if info["wall_s"] is None and any(walls):
        info["wall_s"] = max(walls)
    return info
