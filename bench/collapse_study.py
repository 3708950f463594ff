"""The collapse study: supervised vs PoseCons vs PoseDual (with and without Joint Cutout) and the
collapse-prone controls, on the embedded synthetic set at one iteration budget.

Each row is one config under ``experiments/synthetic/study/`` (ResNet-18 from scratch, 96x64
input, 300 labeled persons, the whole synthetic train set unlabeled, validation every 4th epoch).
Every row runs in its own process, ``python pose_estimation/train.py --cfg <yaml> KEY VALUE
...``, with its output under ``--output``. After each row the script reads the run's metrics
stream, ``<run folder>/metrics.jsonl`` (``semipose.engine.hooks.read_metrics``; the run folder is
``OUTPUT_DIR/<dataset>/<model>/<cfg name>``, ``semipose.utils.logger.output_subdirs``), never its
log text: per epoch the AP of net 1, net 2 and the ensemble, and the collapse monitor's background
share and mean teacher peak per network (``epochs_from_records``, a pure function). It then writes
``--results`` (a markdown table in the layout of the paper's table plus per-epoch tables, the
exact command, the machine and the date) and ``--plot`` (AP, background share and teacher peak
over epochs per row; needs matplotlib, the optional ``plot`` extra: ``pip install -e .[plot]``).
``--jobs N`` trains N rows at once (a GPU machine with many cores takes all eight rows together
in about six minutes).

``--budget-minutes`` is a guide, not a limit: the first epoch record of each row's metrics stream
times that row (start-up plus the first epoch's validation, if any, then the epoch's training
seconds) and the whole study's wall time is
estimated from it (the other rows scaled by their forward-equivalents per step: supervised 3,
PoseCons 7, PoseDual 14), with a hint when the estimate exceeds the guide.

Usage: ``python bench/collapse_study.py [--rows all | NAME ...] [--epochs N] [--iters-per-epoch N]
[--output output/collapse_study] [--results docs/RESULTS.md] [--plot docs/collapse_study.png]
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
        dict with ``ap_net1``, ``ap_ensemble``, ``best_net1``, ``best_epoch``, ``share``, ``peak``
        (None where the run recorded no such value) and ``epochs`` (the number of epochs
        recorded).
    """
    out = dict.fromkeys(("ap_net1", "ap_ensemble", "best_net1", "best_epoch", "share", "peak"))
    out["epochs"] = len(epochs)
    evaluated = [e for e in epochs if "net1" in e["ap"]]
    if evaluated:
        last = evaluated[-1]["ap"]
        out["ap_net1"] = last.get("net1")
        out["ap_ensemble"] = last.get("ensemble")
        best = max(evaluated, key=lambda e: e["ap"]["net1"])
        out["best_net1"], out["best_epoch"] = best["ap"]["net1"], best["epoch"]
    monitored = [e for e in epochs if "net1" in e["collapse"]]
    if monitored:
        out["share"] = monitored[-1]["collapse"]["net1"]["share"]
        out["peak"] = monitored[-1]["collapse"]["net1"]["peak"]
    return out


# --------------------------------------------------------------------------- running


def row_overrides(args, cfg_path):
    """``KEY VALUE`` overrides of one row: output roots, ``--epochs`` (LR milestones scaled along)
    and ``--iters-per-epoch``, then the user's trailing pairs."""
    opts = ["OUTPUT_DIR", str(args.output), "LOG_DIR", str(Path(args.output) / "tb")]
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
    """Estimates the study's wall time from each row's first validated epoch."""

    def __init__(self, rows, epochs, minutes):
        self.rows = rows
        self.epochs = epochs
        self.minutes = minutes
        self.measured = {}  # row -> (startup_s, epoch_s)
        self.finished = {}  # row -> total wall seconds

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
        scale = ROWS[name].cost / ROWS[ref].cost
        return startup + epoch_s * scale * self.epochs[name]

    def record(self, name, startup_s, epoch_s):
        with _PRINT_LOCK:
            self._record(name, startup_s, epoch_s)

    def _record(self, name, startup_s, epoch_s):
        self.measured[name] = (startup_s, epoch_s)
        total = sum(self.estimate_s(r) for r in self.rows)
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


def run_row(name, args, guide):
    """Trains one row in a subprocess, echoing its epoch records as they are written.

    Returns:
        ``(rc, path of the run's metrics.jsonl or None, epochs_from_records' list, wall_s)``; a run
        that wrote no metrics (its file is absent or older than the run) gives ``None, []``.
    """
    row = ROWS[name]
    cfg_path = STUDY_DIR / f"{row.cfg}.yaml"
    opts = row_overrides(args, cfg_path)
    cmd = [sys.executable, str(TRAIN_SCRIPT), "--cfg", str(cfg_path), *opts]
    folder = row_folder(cfg_path, opts)
    print(
        f"\n=== {name}: {shlex.join(cmd)}\n    metrics: {_relative(folder / METRICS_FILE)}",
        flush=True,
    )
    tail = collections.deque(maxlen=40)
    start = time.time()
    watch = MetricsWatch(folder / METRICS_FILE, start)
    timed = False

    def echo_new_epochs():
        nonlocal timed
        for rec in watch.new_epochs():
            print(f"  [{name}] {epoch_line(epochs_from_records([rec])[0])}", flush=True)
            if not timed and rec.get("time") is not None:
                timed = True
                train_s = float(rec.get("elapsed_s") or 0.0)
                guide.record(name, max(rec["time"] - start - train_s, 0.0), train_s)

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        env=env,
    ) as proc:
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            if args.verbose:
                print(f"  [{name}] {line}", flush=True)
            echo_new_epochs()
        rc = proc.wait()
    echo_new_epochs()
    wall = time.time() - start
    if rc != 0:
        with _PRINT_LOCK:
            print(f"  {name} failed (exit {rc}); last lines:", flush=True)
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


def render_results(results, command, machine, date, budget_minutes):
    """The markdown of the results file.

    Args:
        results: ``{row name: {'epochs': epochs_from_records' list, 'rc', 'metrics' (the
            metrics.jsonl path or None), 'wall_s'}}`` in table order.
        command: the exact command line.
        machine: a one-line description of the machine.
        date: the date string.
        budget_minutes: the ``--budget-minutes`` guide.

    Returns:
        str.
    """
    lines = [
        "# Collapse study: results",
        "",
        "Supervised vs PoseCons vs PoseDual, with and without Joint Cutout, and the collapse-prone",
        "controls (a same-view PoseDual; PoseCons and PoseDual whose teacher sees a hard view of",
        "its own), on the embedded synthetic COCO-format set (configs under",
        "`experiments/synthetic/study/`; ResNet-18 from scratch, 96x64 input, 300 labeled persons,",
        "the whole synthetic train set unlabeled, the same iterations per epoch in every row).",
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
        row = ROWS[name]
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
        row = ROWS[name]
        wall = res.get("wall_s")
        lines += [
            "",
            f"### {name}: {row.method}, {row.aug} (`{STUDY_DIR / (row.cfg + '.yaml')}`)",
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
        "--rows", nargs="+", default=["all"], help=f"'all' or row names: {', '.join(ROWS)}"
    )
    parser.add_argument(
        "--epochs", type=int, default=0,
        help="TRAIN.END_EPOCH of every row (LR milestones scaled along; 0: the configs' 40)",
    )
    parser.add_argument(
        "--iters-per-epoch", type=int, default=0,
        help="TRAIN.MAX_ITERS of every row (0: the configs' 19)",
    )
    parser.add_argument(
        "--output", default="output/collapse_study", help="OUTPUT_DIR of the runs (tb/ under it)"
    )
    parser.add_argument("--results", default="docs/RESULTS.md", help="markdown results file")
    parser.add_argument("--plot", default="docs/collapse_study.png", help="PNG plot")
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
        help="rows trained at once (e.g. 6 on a GPU machine with many cores; 1 on a laptop). With "
        "several jobs the rows share the machine, so each row's wall time is not its cost alone",
    )
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE overrides for every row"
    )
    args = parser.parse_args(argv)
    if args.rows == ["all"]:
        args.rows = list(ROWS)
    unknown = [r for r in args.rows if r not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)} or 'all'")
    if len(args.opts) % 2:
        parser.error(f"overrides must be KEY VALUE pairs, got {args.opts}")
    args.output = Path(args.output).resolve()
    args.results = Path(args.results).resolve()
    args.plot = Path(args.plot).resolve()
    return args


def main(argv=None):
    args = parse_args(argv)
    if not args.no_plot:
        check_matplotlib()
    os.chdir(REPO)
    command = shlex.join(["python", "bench/collapse_study.py", *sys.argv[1:]])
    if args.epochs:
        epochs = dict.fromkeys(args.rows, args.epochs)
    else:
        from semipose.config import load_config

        epochs = {
            r: load_config(str(STUDY_DIR / f"{ROWS[r].cfg}.yaml")).TRAIN.END_EPOCH
            for r in args.rows
        }
    print(
        f"[budget] guide {args.budget_minutes:g} min for {len(args.rows)} rows "
        f"({', '.join(args.rows)}), {max(epochs.values())} epochs each; the estimate follows "
        "the first measured epoch",
        flush=True,
    )
    guide = BudgetGuide(args.rows, epochs, args.budget_minutes)
    results = collections.OrderedDict()
    if args.parse_only:
        runs = {}
        for name in args.rows:
            cfg_path = STUDY_DIR / f"{ROWS[name].cfg}.yaml"
            path, epochs = read_run(row_folder(cfg_path, row_overrides(args, cfg_path)))
            runs[name] = ((0 if path else -1), path, epochs, None)
    else:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = {name: pool.submit(run_row, name, args, guide) for name in args.rows}
            runs = {name: f.result() for name, f in futures.items()}
        for name in args.rows:
            guide.finished[name] = runs[name][3]
    for name in args.rows:
        rc, path, epochs, wall = runs[name]
        results[name] = {"epochs": epochs, "rc": rc, "metrics": path, "wall_s": wall}
        s = final_summary(results[name]["epochs"])
        share = "—" if s["share"] is None else f"{100 * s['share']:.1f}%"
        print(
            f"[result] {name}: exit {rc}, {s['epochs']} epochs, AP net1 {_fmt(s['ap_net1'])}, "
            f"ensemble {_fmt(s['ap_ensemble'])}, background share {share}, peak "
            f"{_fmt(s['peak'], '.4f')}" + ("" if wall is None else f", {wall / 60:.1f} min"),
            flush=True,
        )
    date = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    machine = args.machine or _machine()
    text = render_results(results, command, machine, date, args.budget_minutes)
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(text, encoding="utf-8")
    print(f"[write] {args.results}", flush=True)
    if not args.no_plot:
        write_plot(results, args.plot)
        print(f"[write] {args.plot}", flush=True)
    return 1 if any(r["rc"] != 0 for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
