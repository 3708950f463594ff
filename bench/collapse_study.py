"""The collapse study: supervised vs PoseCons vs PoseDual (with and without Joint Cutout) and the
collapse-prone controls, on the embedded synthetic set at one iteration budget.

Two studies (``--study``): ``easy`` (``experiments/synthetic/study_easy/``: the demo's scale,
PoseLite-32 from scratch at 128x96 on the easy preset, 128 labeled persons, 720 iterations a row,
plus MultiAugs' 4-path PoseDual), meant to run with several seeds, and ``hard`` (the default,
``experiments/synthetic/study/``: ResNet-18 from scratch at 96x64 on the hard preset, 300 labeled
persons, validation every 4th epoch, with extra controls). Every run is its own process,
``python pose_estimation/train.py --cfg <yaml> KEY VALUE ...``, with its output under ``--output``
(``--output/seed<k>`` with ``--seeds``, plus ``SEED k``). After each run the script reads its
metrics stream, ``<run folder>/metrics.jsonl`` (``semipose.engine.hooks.read_metrics``; the run
folder is ``OUTPUT_DIR/<dataset>/<model>/<cfg name>``, ``semipose.utils.logger.output_subdirs``),
never its log text: per epoch the AP of net 1, net 2 and the ensemble, and the collapse monitor's
background share and mean teacher peak per network (``epochs_from_records``, a pure function).
It then writes ``--results`` (markdown: with one seed the paper's table plus per-epoch tables;
with ``--seeds``, mean ± sample std over the seeds, every seed's values and the mean AP per
validated epoch; the exact command, the machine and the date) and ``--plot`` (one seed: AP,
background share and teacher peak per row with matplotlib, the optional ``plot`` extra,
``pip install -e .[plot]``; several seeds: the same three panels as mean lines with ± std bands,
drawn with OpenCV). Runs with fewer epoch records than their END_EPOCH are named and left out of
the means. ``--jobs N`` trains N runs at once (a GPU machine with many cores takes all eight hard
rows together in about six minutes; on a 2-core CPU two single-threaded runs,
``OMP_NUM_THREADS=1``, give 1.4x the throughput of one two-threaded run).

``--budget-minutes`` is a guide, not a limit: the first epoch record of each run's metrics stream
times that run (start-up plus the first epoch's validation, if any, then the epoch's training
seconds) and the whole study's wall time is
estimated from it (the other rows scaled by their forward-equivalents per step: supervised 3,
PoseCons 7, PoseDual 14, 4-path PoseDual 32; divided by ``--jobs``), with a hint when the estimate
exceeds the guide.

Usage: ``python bench/collapse_study.py [--study hard|easy] [--rows all | NAME ...] [--seeds K ...]
[--epochs N] [--iters-per-epoch N] [--output output/collapse_study] [--results FILE] [--plot PNG]
[--no-plot] [--budget-minutes 240] [--parse-only] [--verbose] [--jobs N] [--machine TEXT]
[KEY VALUE ...]``; trailing
``KEY VALUE`` pairs override every row's config (e.g. ``WORKERS 0 DEVICE cpu``).
"""

import argparse
import collections
import datetime
import importlib.util
import math
import os
import platform
import shlex
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STUDY_DIR = Path("experiments/synthetic/study")
TRAIN_SCRIPT = Path("pose_estimation/train.py")

Row = collections.namedtuple("Row", ["cfg", "method", "aug", "cost"])

#: The study's rows, in table order. ``cost``: forward-equivalents per training step (a backward
#: counts as two forwards, as in bench/train_step.py), used to scale one row's measured epoch time
#: to the others in the budget estimate.
ROWS = collections.OrderedDict(
    [
        ("supervised", Row("96x64_SYN300_Supervised", "Supervised", "—", 3)),
        ("posecons", Row("96x64_SYN300_PoseCons", "PoseCons", "Affine", 7)),
        (
            "posecons_jc",
            Row("96x64_SYN300_PoseCons_JointCut", "PoseCons", "Affine + Joint Cutout", 7),
        ),
        ("posedual", Row("96x64_SYN300_PoseDual", "PoseDual", "Affine", 14)),
        (
            "posedual_jc",
            Row("96x64_SYN300_PoseDual_JointCut", "PoseDual", "Affine + Joint Cutout", 14),
        ),
        (
            "posedual_sameview",
            Row("96x64_SYN300_PoseDual_SameView", "PoseDual (control)", "None (same view)", 14),
        ),
        (
            "posecons_hardteacher",
            Row("96x64_SYN300_PoseCons_HardTeacher", "PoseCons (control)", "Affine, hard teacher",
                7),
        ),
        (
            "posedual_hardteacher",
            Row("96x64_SYN300_PoseDual_HardTeacher", "PoseDual (control)", "Affine, hard teacher",
                14),
        ),
    ]
)

#: The study at the demo's scale (easy preset, PoseLite-32 at 128x96, 128 labeled persons, 720
#: iterations), run with several seeds (``--study easy --seeds 1 2 3``); ``posedual_4paths`` is
#: MultiAugs' 4-path recipe on PoseDual, compared with ``posedual``, and ``posedual_4paths_rel``
#: the same with its JO / CutOut / CutMix boxes scaled to the input (HARD_AUG.RELATIVE).
EASY_ROWS = collections.OrderedDict(
    [
        ("supervised", Row("128x96_EASY128_Supervised", "Supervised", "—", 3)),
        ("posecons", Row("128x96_EASY128_PoseCons", "PoseCons", "Affine", 7)),
        ("posecons_jc", Row("128x96_EASY128_PoseCons_JointCut", "PoseCons", "Affine + Joint Cutout",
                            7)),
        ("posedual", Row("128x96_EASY128_PoseDual", "PoseDual", "Affine", 14)),
        ("posedual_jc", Row("128x96_EASY128_PoseDual_JointCut", "PoseDual", "Affine + Joint Cutout",
                            14)),
        ("posecons_hardteacher", Row("128x96_EASY128_PoseCons_HardTeacher", "PoseCons (control)",
                                     "Affine, hard teacher", 7)),
        ("posedual_4paths", Row("128x96_EASY128_PoseDual_4Paths", "PoseDual, 4 paths",
                                "JC / JO / JOCO / JCCM, summed", 32)),
        ("posedual_4paths_rel", Row("128x96_EASY128_PoseDual_4Paths_Relative", "PoseDual, 4 paths",
                                    "as above, boxes sized for the input", 32)),
    ]
)

Study = collections.namedtuple("Study", ["folder", "rows", "setting", "results", "plot"])

#: ``--study`` name -> its config folder, rows and a one-line description of the shared setting.
STUDIES = {
    "hard": Study(STUDY_DIR, ROWS, "ResNet-18 from scratch, 96x64 input, hard preset, 300 labeled "
                  "persons, the whole synthetic train set unlabeled, 19 iterations an epoch",
                  "docs/results/collapse_study_hard.md", "docs/collapse_study.png"),
    "easy": Study(Path("experiments/synthetic/study_easy"), EASY_ROWS,
                  "PoseLite-32 from scratch, 128x96 input, easy preset, 128 labeled persons, the "
                  "whole synthetic train set unlabeled, 90 epochs of 8 iterations",
                  "docs/results/collapse_study_easy.md", "docs/collapse_study_easy.png"),
}

HEADS = ("net1", "net2", "ensemble")
METRICS_FILE = "metrics.jsonl"


def _first_table(table):
    """A head's metrics table (mixed-set evaluators record a list of tables: the first)."""
    if isinstance(table, list):
        return table[0] if table else {}
    return table or {}


def epochs_from_records(records):
    """Per-epoch training statistics, AP and collapse-monitor values from a metrics stream.

    Args:
        records: ``read_metrics``' records of one run (oldest first); only ``type: epoch`` records
            are read.

    Returns:
        list of dicts, one per epoch record in order, each with ``epoch`` (int), ``loss``, ``lr``,
        ``samples_per_s`` (floats or None), ``wall_s`` (seconds between this epoch record and the
        previous one, training, validation and checkpoints included; for the stream's first
        epoch its training seconds ``elapsed_s``, since the start-up is not in the stream),
        ``ap`` ({head: AP} for the heads that were evaluated, heads among net1/net2/ensemble),
        ``metrics`` ({head: {name: value}}, the full tables) and ``collapse``
        ({net: {'share': fraction in [0, 1], 'peak': mean teacher peak}}).
    """
    epochs = []
    previous = None
    for rec in records:
        if rec.get("type") != "epoch":
            continue
        stamp = rec.get("time")
        if previous is not None and stamp is not None:
            wall = stamp - previous
        else:
            wall = rec.get("elapsed_s")
        previous = stamp if stamp is not None else previous
        metrics = {h: dict(_first_table(t)) for h, t in (rec.get("metrics") or {}).items()}
        collapse = {
            net: {"share": c.get("collapsed"), "peak": c.get("mean_max")}
            for net, c in (rec.get("collapse") or {}).items()
        }
        epochs.append({
            "epoch": int(rec["epoch"]),
            "loss": rec.get("loss"),
            "lr": rec.get("lr"),
            "samples_per_s": rec.get("samples_per_s"),
            "wall_s": wall,
            "ap": {h: float(v) for h, v in (rec.get("ap") or {}).items() if v is not None},
            "metrics": metrics,
            "collapse": collapse,
        })
    return epochs


def run_folder(cfg, cfg_path):
    """The folder of a run of ``cfg`` (from ``cfg_path``): ``OUTPUT_DIR/<dataset>/<model>/<cfg
    name>``, as the trainer names it; a relative OUTPUT_DIR is taken from the repository root
    (where the study runs ``train.py``)."""
    from semipose.config import get_model_name
    from semipose.utils.logger import output_subdirs

    root = Path(cfg.OUTPUT_DIR or "output")
    if not root.is_absolute():
        root = REPO / root
    model_name = get_model_name(cfg)[0]
    return root.joinpath(*output_subdirs(cfg, str(cfg_path), model_name=model_name))


def read_run(folder):
    """The metrics of the run in ``folder``.

    Returns:
        ``(path of metrics.jsonl or None when the run wrote none, epochs_from_records' list)``.
    """
    from semipose.engine.hooks import read_metrics

    path = Path(folder) / METRICS_FILE
    if not path.is_file():
        return None, []
    return path, epochs_from_records(read_metrics(str(path), kind="epoch"))


def final_summary(epochs):
    """The last epoch's AP (net 1, ensemble) and net 1's collapse values, plus net 1's best AP.

    Args:
        epochs: ``epochs_from_records``' output.

    Returns:
        dict with ``ap_net1``, ``ap_net2``, ``ap_ensemble``, ``best_net1``, ``best_epoch``,
        ``share``, ``peak`` (None where the run recorded no such value) and ``epochs`` (the
        number of epochs recorded).
    """
    out = dict.fromkeys(
        ("ap_net1", "ap_net2", "ap_ensemble", "best_net1", "best_epoch", "share", "peak"))
    out["epochs"] = len(epochs)
    evaluated = [e for e in epochs if "net1" in e["ap"]]
    if evaluated:
        last = evaluated[-1]["ap"]
        out["ap_net1"] = last.get("net1")
        out["ap_net2"] = last.get("net2")
        out["ap_ensemble"] = last.get("ensemble")
        best = max(evaluated, key=lambda e: e["ap"]["net1"])
        out["best_net1"], out["best_epoch"] = best["ap"]["net1"], best["epoch"]
    monitored = [e for e in epochs if "net1" in e["collapse"]]
    if monitored:
        out["share"] = monitored[-1]["collapse"]["net1"]["share"]
        out["peak"] = monitored[-1]["collapse"]["net1"]["peak"]
    return out


# --------------------------------------------------------------------------- running


def seed_output(args, seed=None):
    """The OUTPUT_DIR of one seed's runs: ``--output`` itself, or ``--output/seed<k>`` when the
    study runs several seeds."""
    return Path(args.output) if seed is None else Path(args.output) / f"seed{seed}"


def row_overrides(args, cfg_path, seed=None):
    """``KEY VALUE`` overrides of one row: output roots (per seed), ``SEED``, ``--epochs`` (LR
    milestones scaled along) and ``--iters-per-epoch``, then the user's trailing pairs."""
    out = seed_output(args, seed)
    opts = ["OUTPUT_DIR", str(out), "LOG_DIR", str(out / "tb")]
    if seed is not None:
        opts += ["SEED", str(seed)]
    if args.epochs:
        from semipose.config import load_config

        cfg = load_config(str(cfg_path))
        scale = args.epochs / max(cfg.TRAIN.END_EPOCH, 1)
        steps = [max(1, round(s * scale)) for s in cfg.TRAIN.LR_STEP]
        opts += ["TRAIN.END_EPOCH", str(args.epochs), "TRAIN.LR_STEP", str(steps)]
    if args.iters_per_epoch:
        opts += ["TRAIN.MAX_ITERS", str(args.iters_per_epoch)]
    return opts + list(args.opts)


def row_folder(cfg_path, opts):
    """The run folder of the row config ``cfg_path`` trained with the ``KEY VALUE`` ``opts``."""
    from semipose.config import load_config

    return run_folder(load_config(str(cfg_path), opts), cfg_path)


class MetricsWatch:
    """Follows a training run's ``metrics.jsonl`` while it runs.

    Args:
        path: the run's metrics file (it need not exist yet).
        start: wall-clock time (``time.time()``) the run was started; a file last written before
            it, or epoch records stamped before it, belong to an earlier run.
    """

    def __init__(self, path, start):
        self.path = Path(path)
        self.start = start
        self.stamp = None
        self.seen = 0

    def new_epochs(self):
        """The epoch records written since the previous call, oldest first."""
        from semipose.engine.hooks import read_metrics

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
        new = records[self.seen :]
        self.seen = len(records)
        return new


def epoch_line(e):
    """One line of an ``epochs_from_records`` entry: loss, speed, AP and collapse share."""
    line = f"epoch {e['epoch']}: loss {_fmt(e['loss'], '.6f')}"
    line += f", {_fmt(e['samples_per_s'], '.1f')} samples/s"
    if e["ap"]:
        line += ", AP " + " / ".join(f"{h} {v:.3f}" for h, v in e["ap"].items())
    for net, c in e["collapse"].items():
        share = "—" if c["share"] is None else f"{100 * c['share']:.1f}%"
        line += f", {net} collapsed {share} (teacher peak {_fmt(c['peak'], '.4f')})"
    return line


_PRINT_LOCK = threading.Lock()


class BudgetGuide:
    """Estimates the study's wall time from each run's first validated epoch.

    Args:
        rows: the runs' labels (a row name, or ``name/seed<k>`` with several seeds).
        epochs: {label: epochs of that run}.
        minutes: the ``--budget-minutes`` guide.
        costs: {label: forward-equivalents per step} (default: the hard study's ``ROWS`` costs).
        jobs: runs trained at once (the wall estimate is the summed estimate over ``jobs``).
    """

    def __init__(self, rows, epochs, minutes, costs=None, jobs=1):
        self.rows = rows
        self.epochs = epochs
        self.minutes = minutes
        self.costs = costs or {r: ROWS[r].cost for r in rows}
        self.jobs = max(1, jobs)
        self.measured = {}  # run -> (startup_s, epoch_s)
        self.finished = {}  # run -> total wall seconds

    def estimate_s(self, name):
        if name in self.finished:
            return self.finished[name]
        if name in self.measured:
            startup, epoch_s = self.measured[name]
            return startup + epoch_s * self.epochs[name]
        ref = next(iter(self.measured), None)
        if ref is None:
            return None
        startup, epoch_s = self.measured[ref]
        scale = self.costs[name] / self.costs[ref]
        return startup + epoch_s * scale * self.epochs[name]

    def record(self, name, startup_s, epoch_s):
        with _PRINT_LOCK:
            self._record(name, startup_s, epoch_s)

    def _record(self, name, startup_s, epoch_s):
        self.measured[name] = (startup_s, epoch_s)
        total = sum(self.estimate_s(r) for r in self.rows) / self.jobs
        row_min = self.estimate_s(name) / 60
        print(
            f"[budget] {name}: first epoch {epoch_s:.1f} s (+{startup_s:.1f} s start-up) -> this "
            f"row ~{row_min:.1f} min; study ({len(self.rows)} rows) ~{total / 60:.1f} min "
            f"(guide {self.minutes:g} min)",
            flush=True,
        )
        if total > self.minutes * 60:
            fit = self.minutes * 60 / total
            epochs = max(1, math.floor(min(self.epochs.values()) * fit))
            print(
                f"[budget] the estimate exceeds the guide by {total / 60 - self.minutes:.1f} min; "
                f"about --epochs {epochs} would fit",
                flush=True,
            )


def run_label(name, seed=None):
    """How a run is named in the output and the budget: the row, plus ``/seed<k>``."""
    return name if seed is None else f"{name}/seed{seed}"


def run_row(name, args, guide, seed=None):
    """Trains one row (with ``SEED seed`` when given) in a subprocess, echoing its epoch records as
    they are written.

    Returns:
        ``(rc, path of the run's metrics.jsonl or None, epochs_from_records' list, wall_s)``; a run
        that wrote no metrics (its file is absent or older than the run) gives ``None, []``.
    """
    row = args.study.rows[name]
    cfg_path = args.study.folder / f"{row.cfg}.yaml"
    opts = row_overrides(args, cfg_path, seed)
    label = run_label(name, seed)
    cmd = [sys.executable, str(TRAIN_SCRIPT), "--cfg", str(cfg_path), *opts]
    folder = row_folder(cfg_path, opts)
    print(
        f"\n=== {label}: {shlex.join(cmd)}\n    metrics: {_relative(folder / METRICS_FILE)}",
        flush=True,
    )
    tail = collections.deque(maxlen=40)
    start = time.time()
    watch = MetricsWatch(folder / METRICS_FILE, start)
    timed = False

    def echo_new_epochs():
        nonlocal timed
        for rec in watch.new_epochs():
            print(f"  [{label}] {epoch_line(epochs_from_records([rec])[0])}", flush=True)
            if not timed and rec.get("time") is not None:
                timed = True
                train_s = float(rec.get("elapsed_s") or 0.0)
                guide.record(label, max(rec["time"] - start - train_s, 0.0), train_s)

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        env=env,
    ) as proc:
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            if args.verbose:
                print(f"  [{label}] {line}", flush=True)
            echo_new_epochs()
        rc = proc.wait()
    echo_new_epochs()
    wall = time.time() - start
    if rc != 0:
        with _PRINT_LOCK:
            print(f"  {label} failed (exit {rc}); last lines:", flush=True)
            for line in tail:
                print(f"    {line}", flush=True)
    path = folder / METRICS_FILE
    if not path.is_file() or path.stat().st_mtime < start:
        return rc, None, [], wall
    path, epochs = read_run(folder)
    return rc, path, epochs, wall


# --------------------------------------------------------------------------- reporting


def _fmt(value, spec=".3f"):
    return "—" if value is None else format(value, spec)


def _relative(path):
    """``path`` relative to the repository when it lies inside it, else as given."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _machine():
    import torch

    return (
        f"{platform.platform()}, {platform.machine()} "
        f"({platform.processor() or 'processor unknown'}), {os.cpu_count()} logical CPUs, "
        f"Python {platform.python_version()}, torch {torch.__version__}"
        + (f", CUDA {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no CUDA")
    )


def render_results(results, command, machine, date, budget_minutes, study=None):
    """The markdown of the results file.

    Args:
        results: ``{row name: {'epochs': epochs_from_records' list, 'rc', 'metrics' (the
            metrics.jsonl path or None), 'wall_s'}}`` in table order.
        command: the exact command line.
        machine: a one-line description of the machine.
        date: the date string.
        budget_minutes: the ``--budget-minutes`` guide.
        study: the ``Study`` the rows belong to (default: the hard study).

    Returns:
        str.
    """
    study = study or STUDIES["hard"]
    lines = [
        "# Collapse study: results",
        "",
        "Supervised vs PoseCons vs PoseDual, with and without Joint Cutout, and the collapse-prone",
        "controls (a same-view PoseDual; PoseCons and PoseDual whose teacher sees a hard view of",
        "its own), on the embedded synthetic COCO-format set (configs under",
        f"`{study.folder}/`; {study.setting}; the same iterations per epoch in every row).",
        "Written by `bench/collapse_study.py`.",
        "",
        f"- Command: `{command}`",
        f"- Machine: {machine}",
        f"- Date: {date}",
        f"- Budget guide: {budget_minutes:g} min",
        "",
        "| Method | Aug | AP (net1) | AP (ensemble) | final background share | mean teacher peak |",
        "|---|---|---|---|---|---|",
    ]
    for name, res in results.items():
        row = study.rows[name]
        if res["rc"] != 0 and not res["epochs"]:
            lines.append(f"| {row.method} | {row.aug} | failed (exit {res['rc']}) | | | |")
            continue
        s = final_summary(res["epochs"])
        ap1 = _fmt(s["ap_net1"])
        if s["best_net1"] is not None:
            ap1 += f" (best {s['best_net1']:.3f} @ {s['best_epoch']})"
        share = "—" if s["share"] is None else f"{100 * s['share']:.1f}%"
        lines.append(
            f"| {row.method} | {row.aug} | {ap1} | {_fmt(s['ap_ensemble'])} | {share} | "
            f"{_fmt(s['peak'], '.4f')} |"
        )
    lines += [
        "",
        "AP: COCO AP on the synthetic val set (GT boxes) after the last epoch, net 1's best epoch",
        "in parentheses; the ensemble is PoseDual's 0.5·(h1 + h2). Background share and mean",
        "teacher peak: net 1's collapse monitor over the last epoch's unlabeled samples (share of",
        "samples whose teacher heatmap max is below `MONITOR.COLLAPSE_THRE` on every trained",
        "joint; mean over samples and trained joints of the teacher heatmap's max). The",
        "supervised row has no teacher.",
        "Per-epoch values of the validated epochs below, read from each run's `metrics.jsonl`",
        "(`epoch s`: wall seconds since the previous epoch record, validation and checkpoints",
        "included; for the first epoch its training seconds).",
        "",
        "## Per row",
    ]
    for name, res in results.items():
        row = study.rows[name]
        wall = res.get("wall_s")
        lines += [
            "",
            f"### {name}: {row.method}, {row.aug} (`{study.folder / (row.cfg + '.yaml')}`)",
            "",
            f"Exit status {res['rc']}, wall time "
            + ("—" if wall is None else f"{wall / 60:.1f} min")
            + (
                f", metrics `{_relative(res['metrics'])}`"
                if res.get("metrics")
                else f", no {METRICS_FILE} found"
            ),
            "",
            "| Epoch | loss | AP net1 | AP net2 | AP ensemble | bg share net1 | peak net1 "
            "| bg share net2 | peak net2 | epoch s |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        evaluated = [e for e in res["epochs"] if e["ap"]]
        for e in evaluated or res["epochs"]:  # the validated epochs, else every epoch
            cells = [str(e["epoch"]), _fmt(e["loss"], ".6f")]
            cells += [_fmt(e["ap"].get(h)) for h in HEADS]
            for net in ("net1", "net2"):
                c = e["collapse"].get(net)
                share = None if c is None or c["share"] is None else 100 * c["share"]
                cells.append("—" if share is None else f"{share:.1f}%")
                cells.append(_fmt(None if c is None else c["peak"], ".4f"))
            cells.append(_fmt(e["wall_s"], ".0f"))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- several seeds


def mean_std(values):
    """``(mean, sample standard deviation, n)`` of the values that are not None; ``(None, None,
    0)`` for none, a std of 0.0 for one."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None, None, 0
    mean = sum(vals) / len(vals)
    if len(vals) == 1:
        return mean, 0.0, 1
    var = sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)
    return mean, math.sqrt(var), len(vals)


def _pm(values, spec=".3f", scale=1.0, suffix=""):
    mean, std, n = mean_std(values)
    if n == 0:
        return "—"
    return f"{format(mean * scale, spec)} ± {format(std * scale, spec)}{suffix}"


def run_status(res, expected=None):
    """``'ok'``, ``'not run'`` (no metrics found), ``'failed (exit N)'`` or ``'incomplete (k of E
    epochs)'`` (fewer epoch records than the ``expected`` END_EPOCH: still running, or stopped)."""
    if res["rc"] not in (0, None) and not (res["rc"] == -1 and res["metrics"] is None):
        return f"failed (exit {res['rc']})"
    if not res["epochs"]:
        return "not run"
    if expected and len(res["epochs"]) < expected:
        return f"incomplete ({len(res['epochs'])} of {expected} epochs)"
    return "ok"


def seed_summaries(runs, expected=None):
    """Per row, the ``final_summary`` of each seed's finished run.

    Args:
        runs: {seed: {row name: {'epochs', 'rc', ...}}} (``collect_runs``).
        expected: {row name: END_EPOCH}; a run with fewer epoch records is left out (None: keep
            every run that recorded an epoch).

    Returns:
        {row name: {seed: final_summary dict}}, rows in the first seed's order; a run whose
        ``run_status`` is not ``'ok'`` is left out.
    """
    expected = expected or {}
    out = collections.OrderedDict()
    for seed, per_row in runs.items():
        for name, res in per_row.items():
            row = out.setdefault(name, collections.OrderedDict())
            if run_status(res, expected.get(name)) == "ok":
                row[seed] = final_summary(res["epochs"])
    return out


def seed_curves(runs, name, head="net1", expected=None):
    """Mean and std over seeds of one row's per-epoch AP of ``head`` and net 1's background share
    and teacher peak (runs with fewer than ``expected`` epoch records left out).

    Returns:
        list of ``(epoch, {'ap': stats, 'share': stats, 'peak': stats})`` for the epochs where any
        seed recorded a value, in epoch order; each stats is ``mean_std``'s ``(mean, std, n)``.
    """
    values = {key: collections.defaultdict(list) for key in ("ap", "share", "peak")}
    for per_row in runs.values():
        res = per_row.get(name)
        if res is None or run_status(res, expected) != "ok":
            continue
        for e in res["epochs"]:
            if head in e["ap"]:
                values["ap"][e["epoch"]].append(e["ap"][head])
            c = e["collapse"].get("net1") or {}
            for key in ("share", "peak"):
                if c.get(key) is not None:
                    values[key][e["epoch"]].append(c[key])
    epochs = sorted(set().union(*values.values()))
    return [(ep, {key: mean_std(v.get(ep, [])) for key, v in values.items()}) for ep in epochs]


def render_seed_results(runs, study, command, machine, date, expected=None):
    """The markdown of a study run with several seeds: a summary in the paper's layout (mean ±
    sample std over the seeds of the last validation), every seed's values, and the mean AP per
    validated epoch.

    Args:
        runs: {seed: {row name: {'epochs', 'rc', 'metrics', 'wall_s'}}} (``collect_runs``).
        study: the ``Study``.
        command, machine, date: strings for the header.
        expected: {row name: END_EPOCH}: shorter runs are reported as incomplete and left out.

    Returns:
        str.
    """
    expected = expected or {}
    seeds = list(runs)
    summaries = seed_summaries(runs, expected)
    lines = [
        "# Collapse study with several seeds: results",
        "",
        f"Configs under `{study.folder}/` ({study.setting}). Written by `bench/collapse_study.py`.",
        "",
        f"- Command: `{command}`",
        f"- Machine: {machine}",
        f"- Date: {date}",
        f"- Seeds: {', '.join(str(s) for s in seeds)} (`SEED`: initialisation, data order, "
        "augmentations)",
        "",
        "| Method | Aug | AP net 1 | AP net 2 | AP ensemble | mean of the nets | background share "
        "| teacher peak | runs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, per_seed in summaries.items():
        row = study.rows[name]
        vals = list(per_seed.values())
        nets = [None if v["ap_net2"] is None else (v["ap_net1"] + v["ap_net2"]) / 2 for v in vals]
        missing = [s for s in seeds if s not in per_seed]
        cells = [
            row.method, row.aug,
            _pm([v["ap_net1"] for v in vals]),
            _pm([v["ap_net2"] for v in vals]),
            _pm([v["ap_ensemble"] for v in vals]),
            _pm(nets),
            _pm([v["share"] for v in vals], ".1f", 100, "%"),
            _pm([v["peak"] for v in vals], ".3f"),
            f"{len(vals)}" + (f" (left out: seeds {missing})" if missing else ""),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Mean ± sample standard deviation over the seeds of the last validation (COCO AP on the",
        "synthetic val set, GT boxes). Net 2 and the ensemble (0.5·(h1 + h2)) exist for PoseDual",
        "only. Background share and teacher peak: net 1's collapse monitor over the last epoch's",
        "unlabeled samples (share of samples whose teacher heatmap max stays below",
        "`MONITOR.COLLAPSE_THRE` on every trained joint; mean teacher heatmap max).",
        "",
        "## Every seed",
        "",
        "| Row | " + " | ".join(f"seed {s}: net 1 / ensemble, best net 1 (epoch)" for s in seeds)
        + " |",
        "|---|" + "---|" * len(seeds),
    ]
    for name, per_seed in summaries.items():
        cells = [name]
        for seed in seeds:
            v = per_seed.get(seed)
            if v is None:
                cells.append(run_status(runs[seed][name], expected.get(name)))
                continue
            cell = f"{_fmt(v['ap_net1'])} / {_fmt(v['ap_ensemble'])}"
            if v["best_net1"] is not None:
                cell += f", {v['best_net1']:.3f} ({v['best_epoch']})"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## AP of net 1 per validated epoch (mean ± std over the seeds)", ""]
    curves = {name: seed_curves(runs, name, expected=expected.get(name)) for name in summaries}
    epochs = sorted({ep for c in curves.values() for ep, st in c if st["ap"][2]})
    lines.append("| Row | " + " | ".join(str(ep) for ep in epochs) + " |")
    lines.append("|---|" + "---|" * len(epochs))
    for name, curve in curves.items():
        by_epoch = {ep: st["ap"] for ep, st in curve}
        cells = [name]
        for ep in epochs:
            mean, std, n = by_epoch.get(ep, (None, None, 0))
            cells.append("—" if n == 0 else f"{mean:.3f} ± {std:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Runs", ""]
    for seed in seeds:
        for name, res in runs[seed].items():
            wall = res.get("wall_s")
            where = f"`{_relative(res['metrics'])}`" if res.get("metrics") else "no metrics"
            lines.append(
                f"- {run_label(name, seed)}: {run_status(res, expected.get(name))}, "
                + ("" if wall is None else f"{wall / 60:.1f} min, ") + where
            )
    return "\n".join(lines) + "\n"


def write_spread_plot(runs, study, path, size=(1500, 440), expected=None):
    """Three panels drawn with OpenCV (no plotting package): net 1's AP, background share and
    mean teacher peak against the epoch, per row the mean over the seeds as a line and mean ± std
    as a band.

    Returns:
        ``path``.
    """
    import cv2
    import numpy as np

    width, height = size
    img = np.full((height, width, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    expected = expected or {}
    curves = {name: seed_curves(runs, name, expected=expected.get(name))
              for name in seed_summaries(runs, expected)}
    names = [name for name, curve in curves.items() if curve]
    x_max = math.ceil((max([ep for c in curves.values() for ep, _ in c] + [1]) + 1) / 10) * 10
    ap_max = max([st["ap"][0] + st["ap"][1] for c in curves.values() for _, st in c
                  if st["ap"][2]] + [0.1])
    ap_max = min(1.0, math.ceil(ap_max * 10) / 10)
    palette = [(200, 120, 30), (40, 160, 40), (30, 30, 210), (160, 60, 160), (20, 140, 200),
               (90, 90, 90), (0, 180, 180), (140, 100, 60)]
    third = width // 3
    panels = [
        (0, "AP of net 1 (mean, band: +- std over seeds)", ap_max, "ap", 1.0),
        (third, "background share of net 1 (%)", 100.0, "share", 100.0),
        (2 * third, "mean teacher peak of net 1", 1.0, "peak", 1.0),
    ]
    for x0, title, y_max, key, scale in panels:
        left, right, top, bottom = x0 + 56, x0 + third - 16, 30, height - 40

        def px(ep, value, left=left, right=right, top=top, bottom=bottom, y_max=y_max):
            return (int(left + (right - left) * ep / x_max),
                    int(bottom - (bottom - top) * min(max(value, 0.0), y_max) / y_max))

        for i in range(6):
            value = y_max * i / 5
            y = px(0, value)[1]
            cv2.line(img, (left, y), (right, y), (232, 232, 232), 1)
            cv2.putText(img, f"{value:.2f}" if y_max <= 1 else f"{value:.0f}", (x0 + 8, y + 4),
                        font, 0.4, (120, 120, 120), 1, cv2.LINE_AA)
            ep = x_max * i / 5
            cv2.putText(img, f"{ep:.0f}", (px(ep, 0)[0] - 8, bottom + 16), font, 0.4,
                        (120, 120, 120), 1, cv2.LINE_AA)
        cv2.rectangle(img, (left, top), (right, bottom), (0, 0, 0), 1)
        cv2.putText(img, title, (left, 20), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, "epoch", ((left + right) // 2 - 20, height - 8), font, 0.45, (0, 0, 0),
                    1, cv2.LINE_AA)
        for k, name in enumerate(names):
            color = palette[list(study.rows).index(name) % len(palette)]  # one colour per row
            points = []
            for ep, stats in curves[name]:
                mean, std, n = stats[key]
                if n:
                    points.append((ep, mean * scale, std * scale))
            if not points:
                continue
            band = [px(ep, m + s) for ep, m, s in points] + \
                [px(ep, m - s) for ep, m, s in reversed(points)]
            layer = img.copy()
            cv2.fillPoly(layer, [np.array(band, np.int32)], color)
            img = cv2.addWeighted(layer, 0.18, img, 0.82, 0)
            line = np.array([px(ep, m) for ep, m, _ in points], np.int32)
            cv2.polylines(img, [line], False, color, 2, cv2.LINE_AA)
            if key == "ap":
                y = top + 16 + 16 * k
                cv2.line(img, (left + 8, y - 4), (left + 30, y - 4), color, 2)
                cv2.putText(img, f"{name} {points[-1][1]:.3f}", (left + 36, y), font, 0.4,
                            (0, 0, 0), 1, cv2.LINE_AA)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"could not write {path}")
    return path


def check_matplotlib():
    """Raises SystemExit with an install hint when matplotlib is missing."""
    if importlib.util.find_spec("matplotlib") is None:
        raise SystemExit(
            "collapse_study: the plot needs matplotlib, an optional dependency of this script: "
            "pip install -e '.[plot]' (or pip install matplotlib), or pass --no-plot"
        )


def write_plot(results, path):
    """AP (net 1 solid, ensemble dashed), net 1's background share and net 1's mean teacher peak
    over epochs, one colour per row, into ``path`` (PNG)."""
    check_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_ap, ax_bg, ax_pk) = plt.subplots(1, 3, figsize=(17, 4.8))
    for i, (name, res) in enumerate(results.items()):
        color = f"C{i}"
        ev = [e for e in res["epochs"] if "net1" in e["ap"]]
        if ev:
            ax_ap.plot([e["epoch"] for e in ev], [e["ap"]["net1"] for e in ev], "-o", color=color,
                       ms=3, label=f"{name} net1")
        ens = [e for e in res["epochs"] if "ensemble" in e["ap"]]
        if ens:
            ax_ap.plot([e["epoch"] for e in ens], [e["ap"]["ensemble"] for e in ens], "--",
                       color=color, label=f"{name} ensemble")
        mon = [e for e in res["epochs"] if "net1" in e["collapse"]]
        if mon:
            shares = [100 * e["collapse"]["net1"]["share"] for e in mon]
            ax_bg.plot([e["epoch"] for e in mon], shares, "-o", color=color, ms=3, label=name)
            peaks = [e["collapse"]["net1"]["peak"] for e in mon]
            ax_pk.plot([e["epoch"] for e in mon], peaks, "-", color=color, label=name)
    ax_ap.set(xlabel="epoch", ylabel="AP (synthetic val, GT boxes)", title="AP")
    ax_bg.set(
        xlabel="epoch", ylabel="% unlabeled samples collapsed", title="Background share (net1)"
    )
    ax_pk.set(xlabel="epoch", ylabel="mean max of the teacher heatmap", title="Teacher peak (net1)")
    for ax in (ax_ap, ax_bg, ax_pk):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------- CLI


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Run the collapse study's rows and write the results table and plot"
    )
    parser.add_argument(
        "--study", choices=sorted(STUDIES), default="hard",
        help="which study: 'hard' (experiments/synthetic/study/, ResNet-18 at 96x64 on the hard "
        "preset) or 'easy' (experiments/synthetic/study_easy/, the demo's scale)",
    )
    parser.add_argument(
        "--rows", nargs="+", default=["all"],
        help=f"'all' or row names: hard {', '.join(ROWS)}; easy {', '.join(EASY_ROWS)}",
    )
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=None,
        help="train every row once per seed (SEED override, runs under --output/seed<k>) and "
        "report mean ± std over the seeds; default: one run with the configs' SEED",
    )
    parser.add_argument(
        "--epochs", type=int, default=0,
        help="TRAIN.END_EPOCH of every row (LR milestones scaled along; 0: the configs')",
    )
    parser.add_argument(
        "--iters-per-epoch", type=int, default=0,
        help="TRAIN.MAX_ITERS of every row (0: the configs')",
    )
    parser.add_argument(
        "--output", default="output/collapse_study", help="OUTPUT_DIR of the runs (tb/ under it)"
    )
    parser.add_argument(
        "--results", default=None,
        help="markdown report (default: docs/results/collapse_study_<study>.md; docs/RESULTS.md "
        "is written by hand from it)",
    )
    parser.add_argument(
        "--plot", default=None,
        help="PNG plot (default: docs/collapse_study.png for hard, docs/collapse_study_easy.png)",
    )
    parser.add_argument("--no-plot", action="store_true", help="skip the plot")
    parser.add_argument(
        "--budget-minutes", type=float, default=240.0,
        help="wall-time guide for the whole study (an estimate is printed, nothing is stopped)",
    )
    parser.add_argument(
        "--parse-only", action="store_true",
        help=f"train nothing: read each row's {METRICS_FILE} under --output and write the results",
    )
    parser.add_argument("--verbose", action="store_true", help="echo every line of the runs")
    parser.add_argument(
        "--machine", default="",
        help="machine description for the results (default: this machine; with --parse-only of "
        "runs trained elsewhere, say where they were trained)",
    )
    parser.add_argument(
        "--jobs", type=int, default=1,
        help="runs trained at once (e.g. 6 on a GPU machine with many cores; 2 single-threaded "
        "runs on a 2-core CPU, OMP_NUM_THREADS=1). With several jobs the runs share the machine, "
        "so each run's wall time is not its cost alone",
    )
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE overrides for every row"
    )
    args = parser.parse_args(argv)
    args.study = STUDIES[args.study]
    rows = args.study.rows
    if args.rows == ["all"]:
        args.rows = list(rows)
    unknown = [r for r in args.rows if r not in rows]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {', '.join(rows)} or 'all'")
    if args.seeds is not None and len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds repeats a seed: {args.seeds}")
    if len(args.opts) % 2:
        parser.error(f"overrides must be KEY VALUE pairs, got {args.opts}")
    args.output = Path(args.output).resolve()
    args.results = (REPO / args.study.results if args.results is None
                    else Path(args.results).resolve())
    args.plot = REPO / args.study.plot if args.plot is None else Path(args.plot).resolve()
    return args


def _print_result(label, rc, epochs, wall):
    s = final_summary(epochs)
    share = "—" if s["share"] is None else f"{100 * s['share']:.1f}%"
    print(
        f"[result] {label}: exit {rc}, {s['epochs']} epochs, AP net1 {_fmt(s['ap_net1'])}, "
        f"ensemble {_fmt(s['ap_ensemble'])}, background share {share}, peak "
        f"{_fmt(s['peak'], '.4f')}" + ("" if wall is None else f", {wall / 60:.1f} min"),
        flush=True,
    )


def collect_runs(args, guide):
    """Trains (or, with ``--parse-only``, reads) every (row, seed) run.

    Returns:
        {seed (None without ``--seeds``): {row name: {'epochs', 'rc', 'metrics', 'wall_s'}}},
        rows in table order.
    """
    seeds = args.seeds or [None]
    tasks = [(name, seed) for seed in seeds for name in args.rows]
    if args.parse_only:
        runs = {}
        for name, seed in tasks:
            cfg_path = args.study.folder / f"{args.study.rows[name].cfg}.yaml"
            path, epochs = read_run(row_folder(cfg_path, row_overrides(args, cfg_path, seed)))
            runs[name, seed] = ((0 if path else -1), path, epochs, None)
    else:
        # the costliest runs first, so that parallel jobs end together
        order = sorted(tasks, key=lambda t: -args.study.rows[t[0]].cost)
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = {t: pool.submit(run_row, t[0], args, guide, t[1]) for t in order}
            runs = {t: f.result() for t, f in futures.items()}
        for name, seed in tasks:
            guide.finished[run_label(name, seed)] = runs[name, seed][3]
    out = collections.OrderedDict()
    for name, seed in tasks:
        rc, path, epochs, wall = runs[name, seed]
        out.setdefault(seed, collections.OrderedDict())[name] = {
            "epochs": epochs, "rc": rc, "metrics": path, "wall_s": wall,
        }
        _print_result(run_label(name, seed), rc, epochs, wall)
    return out


def main(argv=None):
    args = parse_args(argv)
    multi = args.seeds is not None
    if not args.no_plot and not multi:
        check_matplotlib()
    os.chdir(REPO)
    command = shlex.join(["python", "bench/collapse_study.py", *sys.argv[1:]])
    from semipose.config import load_config

    epochs = {
        r: args.epochs or load_config(
            str(args.study.folder / f"{args.study.rows[r].cfg}.yaml")).TRAIN.END_EPOCH
        for r in args.rows
    }
    runs_of = {run_label(r, s): r for s in (args.seeds or [None]) for r in args.rows}  # label: row
    print(
        f"[budget] guide {args.budget_minutes:g} min for {len(runs_of)} runs "
        f"({', '.join(args.rows)}" + (f"; seeds {args.seeds}" if multi else "") + "), "
        f"{max(epochs.values())} epochs each; the estimate follows the first measured epoch",
        flush=True,
    )
    guide = BudgetGuide(
        list(runs_of), {label: epochs[r] for label, r in runs_of.items()}, args.budget_minutes,
        costs={label: args.study.rows[r].cost for label, r in runs_of.items()}, jobs=args.jobs,
    )
    runs = collect_runs(args, guide)
    date = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    machine = args.machine or _machine()
    if multi:
        text = render_seed_results(runs, args.study, command, machine, date, epochs)
    else:
        text = render_results(runs[None], command, machine, date, args.budget_minutes, args.study)
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(text, encoding="utf-8")
    print(f"[write] {args.results}", flush=True)
    if not args.no_plot:
        if multi:
            write_spread_plot(runs, args.study, args.plot, expected=epochs)
        else:
            write_plot(runs[None], args.plot)
        print(f"[write] {args.plot}", flush=True)
    failed = any(r["rc"] != 0 for per_seed in runs.values() for r in per_seed.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
