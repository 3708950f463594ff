"""Studies as configs: the rows of a comparison (base YAML + overrides), its seeds and what it is
compared against, run and reported by one command.

A study is a YAML file under ``experiments/studies/`` (``--study NAME`` reads
``experiments/studies/NAME.yaml``; a path works too)::

    title: the paper's regime at CPU scale
    setting: one paragraph on what every row shares
    seeds: [1, 2, 3]                    # default of --seeds
    output: output/studies/paper        # runs under <output>/<row>/seed<k>/
    results: docs/results/study_paper.md
    plot: docs/study_paper.png
    head: net1                          # the AP the paired differences compare
    baselines: [supervised, posedual]   # paired differences against each
    cfg: experiments/studies/paper/base.yaml   # every row's base YAML unless the row names one
    pretrain:                           # optional: a shared start, trained once when missing
      cfg: experiments/studies/paper/pretrain_easy.yaml
      file: models/synthetic/poselite32_easy_pretrain.pth
      seen: what it was trained on (said in the report)
    rows:
      supervised:
        method: Supervised              # the report's Method and Aug columns
        aug: "—"
        cost: 3                         # forward-equivalents per step: the costliest run first
        opts: {MODEL.NAME: pose_resnet, DATASET.TRAIN_DATASET: coco}

Every run is ``python pose_estimation/train.py --cfg <row cfg> <row opts> OUTPUT_DIR
<output>/<row>/seed<k> LOG_DIR .../tb SEED k TRAIN.RESUME True [trailing KEY VALUE]``, in its own
process, ``--jobs`` at a time (each with ``OMP_NUM_THREADS`` = CPUs / jobs unless set). A run
whose metrics stream already holds its last epoch and whose ``final_state.pth.tar`` exists is
skipped; an interrupted one resumes from its checkpoint (``TRAIN.RESUME``); a run folder trained
with other settings (``study_run.json`` beside it) is refused unless ``--fresh``, which retrains
(the trainer moves the old files to ``previous_<time>/``). The pretrained start, when the study
has one, is trained first if its file is missing and its final weights copied there.

The results are read from each run's ``metrics.jsonl`` (``semipose.engine.events.read_metrics``),
never from log text. The report (``--results``): per row mean ± sample std over the seeds of the
last validation (net 1, net 2, ensemble, the mean of the nets, the collapse monitor), the paired
per-seed differences of ``head`` against every baseline (mean, standard error, t = mean / SE, how
many seeds agree in sign), a regime check (AP and labeled loss over the last third of training),
the mean learning curves, every seed's values, the exact commands, the machine and the wall times.
``--plot`` draws net 1's AP, background share and teacher peak per epoch, mean lines with ± std
bands, with OpenCV.

Usage: ``python bench/collapse_study.py --study NAME [--rows NAME ...] [--seeds K ...] [--jobs N]
[--epochs N] [--output DIR] [--results FILE] [--plot PNG] [--no-plot] [--parse-only] [--fresh]
[--head net1|net2|ensemble|mean] [--machine TEXT] [--verbose] [KEY VALUE ...]``.
"""

import argparse
import collections
import datetime
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
STUDIES_DIR = Path("experiments/studies")
TRAIN_SCRIPT = Path("pose_estimation/train.py")
METRICS_FILE = "metrics.jsonl"
MANIFEST = "study_run.json"
FINAL_STATE = "final_state.pth.tar"
HEADS = ("net1", "net2", "ensemble", "mean", "papers")
_PRINT_LOCK = threading.Lock()


class StudyError(Exception):
    """A study file that cannot be run; the message names the file and the key."""


# --------------------------------------------------------------------------- study files


@dataclass
class Row:
    """One row of a study: its base config and overrides, and how the report names it."""

    name: str
    cfg: Path
    opts: list
    method: str
    aug: str = "—"
    cost: float = 1.0
    seeds: list = None


@dataclass
class Study:
    """A parsed study file (module docstring)."""

    name: str
    path: Path
    rows: dict
    title: str = ""
    setting: str = ""
    seeds: list = field(default_factory=lambda: [1])
    output: Path = Path("output/studies")
    results: Path = None
    plot: Path = None
    head: str = "net1"
    baselines: list = field(default_factory=list)
    pretrain: dict = None
    opts: list = field(default_factory=list)
    average_last: int = 1
    claims: list = field(default_factory=list)
    regime_row: str = None
    regime_tolerance: float = 0.005


def _int_list(value, where):
    if not isinstance(value, list) or not value or not all(isinstance(s, int) for s in value):
        raise StudyError(f"{where} must be a non-empty list of integers, got {value!r}")
    if len(set(value)) != len(value):
        raise StudyError(f"{where} repeats a seed: {value!r}")
    return list(value)


def _claims(value, rows, where):
    """A study's ``claims``: a list of ``{claim: text, row: NAME, over: NAME}``, each read as
    "row scores higher than over"."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise StudyError(f"{where}: claims must be a list of {{claim, row, over}} mappings")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or set(item) != {"claim", "row", "over"}:
            raise StudyError(f"{where}: claims[{i}] needs exactly the keys claim, row, over; got "
                             f"{item!r}")
        for key in ("row", "over"):
            if item[key] not in rows:
                raise StudyError(f"{where}: claims[{i}].{key} {item[key]!r} is not a row "
                                 f"({', '.join(rows)})")
        out.append({k: str(v) for k, v in item.items()})
    return out


def _opt_value(value):
    """A YAML value as the string a yacs ``KEY VALUE`` override takes (lists and booleans as
    Python literals, strings as they are)."""
    return value if isinstance(value, str) else repr(value)


def _opts_list(opts, where):
    """A row's ``opts`` (a mapping, or a flat KEY VALUE list) as a flat list of strings."""
    if opts is None:
        return []
    if isinstance(opts, dict):
        return [s for k, v in opts.items() for s in (str(k), _opt_value(v))]
    if isinstance(opts, list) and len(opts) % 2 == 0:
        return [str(o) if i % 2 == 0 else _opt_value(o) for i, o in enumerate(opts)]
    raise StudyError(f"{where}: opts must be a mapping KEY: VALUE (or a KEY VALUE list), got "
                     f"{opts!r}")


def _repo_path(value, where, must_exist=True):
    path = Path(str(value))
    full = path if path.is_absolute() else REPO / path
    if must_exist and not full.is_file():
        raise StudyError(f"{where}: no such file {value}")
    return path


def find_study(name):
    """The study file of ``name``: a path to a YAML file, or ``experiments/studies/<name>.yaml``."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and (path.is_file() or (REPO / path).is_file()):
        return path if path.is_file() else REPO / path
    candidate = REPO / STUDIES_DIR / f"{name}.yaml"
    if candidate.is_file():
        return candidate
    known = sorted(p.stem for p in (REPO / STUDIES_DIR).glob("*.yaml"))
    raise StudyError(f"no study {name!r}: not a YAML file, and {STUDIES_DIR}/{name}.yaml does not "
                     f"exist; studies: {', '.join(known) or 'none'}")


def load_study(name):
    """Reads and checks a study file (``find_study``).

    Raises:
        StudyError: unreadable YAML, a missing or ill-typed key, a row's config file missing, a
            baseline that is not a row; the message names the file and the key.
    """
    path = find_study(name)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise StudyError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("rows"), dict) or not data["rows"]:
        raise StudyError(f"{path}: needs a 'rows' mapping of row name -> row")
    known = {"title", "setting", "seeds", "output", "results", "plot", "head", "baselines", "cfg",
             "pretrain", "rows", "opts", "average_last", "claims", "regime"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise StudyError(f"{path}: unknown keys {unknown}; known: {sorted(known)}")
    default_cfg = data.get("cfg")
    rows = collections.OrderedDict()
    for row_name, spec in data["rows"].items():
        where = f"{path}: rows.{row_name}"
        spec = spec or {}
        if not isinstance(spec, dict):
            raise StudyError(f"{where}: must be a mapping (cfg, opts, method, aug, cost)")
        extra = sorted(set(spec) - {"cfg", "opts", "method", "aug", "cost", "seeds"})
        if extra:
            raise StudyError(f"{where}: unknown keys {extra}")
        cfg = spec.get("cfg", default_cfg)
        if not cfg:
            raise StudyError(f"{where}: no cfg (and no study-level cfg)")
        rows[str(row_name)] = Row(
            name=str(row_name), cfg=_repo_path(cfg, f"{where}.cfg"),
            opts=_opts_list(spec.get("opts"), where), method=str(spec.get("method", row_name)),
            aug=str(spec.get("aug", "—")), cost=float(spec.get("cost", 1.0)),
            seeds=None if spec.get("seeds") is None else _int_list(spec["seeds"], f"{where}.seeds"),
        )
    seeds = _int_list(data.get("seeds", [1]), f"{path}: seeds")
    last = data.get("average_last", 1)
    if not isinstance(last, int) or last < 1:
        raise StudyError(f"{path}: average_last must be an integer >= 1, got {last!r}")
    regime = data.get("regime") or {}
    if not isinstance(regime, dict) or set(regime) - {"row", "tolerance"} or (
            regime and regime.get("row") not in rows):
        raise StudyError(f"{path}: regime must be {{row: <a row>, tolerance: <AP>}}, got "
                         f"{regime!r}")
    head = data.get("head", "net1")
    if head not in HEADS:
        raise StudyError(f"{path}: head must be one of {list(HEADS)}, got {head!r}")
    baselines = list(data.get("baselines") or [])
    missing = [b for b in baselines if b not in rows]
    if missing:
        raise StudyError(f"{path}: baselines {missing} are not rows ({', '.join(rows)})")
    pretrain = data.get("pretrain")
    if pretrain is not None:
        if not isinstance(pretrain, dict) or not pretrain.get("cfg") or not pretrain.get("file"):
            raise StudyError(f"{path}: pretrain needs cfg and file")
        pseeds = pretrain.get("seeds")
        if pseeds is not None and (not isinstance(pseeds, list) or len(pseeds) not in (1, 2)
                                   or not all(isinstance(x, int) for x in pseeds)):
            raise StudyError(f"{path}: pretrain.seeds must be a list of one or two integers, "
                             f"got {pseeds!r}")
        pretrain = dict(pretrain, cfg=_repo_path(pretrain["cfg"], f"{path}: pretrain.cfg"),
                        file=Path(str(pretrain["file"])),
                        opts=_opts_list(pretrain.get("opts"), f"{path}: pretrain"))
    stem = path.stem
    return Study(
        name=stem, path=path, rows=rows, title=str(data.get("title", stem)),
        setting=str(data.get("setting", "")).strip(), seeds=seeds,
        output=Path(str(data.get("output", f"output/studies/{stem}"))),
        results=Path(str(data.get("results", f"docs/results/study_{stem}.md"))),
        plot=Path(str(data.get("plot", f"docs/study_{stem}.png"))), head=head,
        baselines=baselines, pretrain=pretrain, opts=_opts_list(data.get("opts"), f"{path}: opts"),
        average_last=last, claims=_claims(data.get("claims"), rows, str(path)),
        regime_row=regime.get("row"), regime_tolerance=float(regime.get("tolerance", 0.005)),
    )


# --------------------------------------------------------------------------- reading runs


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
        list of dicts, one per epoch record in order, each with ``epoch`` (int), ``loss``,
        ``loss_pose`` (the labeled loss; the total for a supervised run), ``lr``, ``samples_per_s``
        (floats or None), ``wall_s`` (seconds since the previous epoch record; for the stream's
        first epoch its training seconds ``elapsed_s``), ``ap`` ({head: AP} for the evaluated
        heads, plus ``mean`` of net 1 and net 2 when both are there and ``papers``, the papers'
        head: that mean for two networks, net 1's AP for one), ``metrics`` ({head: {name:
        value}}) and ``collapse`` ({net: {'share': fraction, 'peak': mean teacher peak}}).
    """
    epochs = []
    previous = None
    for rec in records:
        if rec.get("type") != "epoch":
            continue
        stamp = rec.get("time")
        wall = stamp - previous if previous is not None and stamp is not None else rec.get(
            "elapsed_s")
        previous = stamp if stamp is not None else previous
        ap = {h: float(v) for h, v in (rec.get("ap") or {}).items() if v is not None}
        if "net1" in ap and "net2" in ap:
            ap["mean"] = (ap["net1"] + ap["net2"]) / 2
        if "net1" in ap:
            ap["papers"] = ap.get("mean", ap["net1"])
        epochs.append({
            "epoch": int(rec["epoch"]),
            "loss": rec.get("loss"),
            "loss_pose": rec.get("loss_pose", rec.get("loss")),
            "lr": rec.get("lr"),
            "samples_per_s": rec.get("samples_per_s"),
            "wall_s": wall,
            "ap": ap,
            "metrics": {h: dict(_first_table(t)) for h, t in (rec.get("metrics") or {}).items()},
            "collapse": {net: {"share": c.get("collapsed"), "peak": c.get("mean_max")}
                         for net, c in (rec.get("collapse") or {}).items()},
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
    """``(path of metrics.jsonl or None, epochs_from_records' list)`` of the run in ``folder``."""
    from semipose.engine.events import read_metrics

    path = Path(folder) / METRICS_FILE
    if not path.is_file():
        return None, []
    return path, epochs_from_records(read_metrics(str(path), kind="epoch"))


def final_summary(epochs, last=1):
    """The reported AP per head, net 1's best AP and its last collapse values.

    Args:
        epochs: ``epochs_from_records``' list of one run.
        last: the reported AP of a head is the mean over the last ``last`` validations (the
            study's ``average_last``; 1: the last validation).

    Returns:
        dict with ``ap`` ({head: AP} over the last validations, heads every one of them has),
        ``ap_net1``, ``ap_ensemble``,
        ``best_net1``, ``best_epoch``, ``share``, ``peak`` (None where not recorded) and ``epochs``.
    """
    out = dict.fromkeys(("ap_net1", "ap_ensemble", "best_net1", "best_epoch", "share", "peak"))
    out["ap"] = {}
    out["epochs"] = len(epochs)
    evaluated = [e for e in epochs if "net1" in e["ap"]]
    if evaluated:
        tail = [e["ap"] for e in evaluated[-last:]]
        out["ap"] = {h: sum(ap[h] for ap in tail) / len(tail) for h in tail[-1]
                     if all(h in ap for ap in tail)}
        out["ap_net1"] = out["ap"].get("net1")
        out["ap_ensemble"] = out["ap"].get("ensemble")
        best = max(evaluated, key=lambda e: e["ap"]["net1"])
        out["best_net1"], out["best_epoch"] = best["ap"]["net1"], best["epoch"]
    monitored = [e for e in epochs if "net1" in e["collapse"]]
    if monitored:
        out["share"] = monitored[-1]["collapse"]["net1"]["share"]
        out["peak"] = monitored[-1]["collapse"]["net1"]["peak"]
    return out


def last_third(epochs, head="net1"):
    """How a run ends: the AP of ``head`` at the validation nearest two thirds of the run and at
    the last one, and the labeled loss (``loss_pose``, mean over the epochs of each window of a
    tenth of the run) at two thirds and at the end.

    Returns:
        dict ``ap_23``, ``ap_end``, ``loss_23``, ``loss_end`` (None where not recorded).
    """
    out = dict.fromkeys(("ap_23", "ap_end", "loss_23", "loss_end"))
    if not epochs:
        return out
    n = len(epochs)
    mark = epochs[0]["epoch"] + (epochs[-1]["epoch"] - epochs[0]["epoch"]) * 2 / 3
    evaluated = [e for e in epochs if head in e["ap"]]
    if evaluated:
        out["ap_23"] = min(evaluated, key=lambda e: abs(e["epoch"] - mark))["ap"][head]
        out["ap_end"] = evaluated[-1]["ap"][head]
    window = max(1, n // 10)
    at = min(range(n), key=lambda i: abs(epochs[i]["epoch"] - mark))
    losses = [e["loss_pose"] for e in epochs]

    def mean_of(chunk):
        vals = [v for v in chunk if v is not None]
        return sum(vals) / len(vals) if vals else None

    out["loss_23"] = mean_of(losses[max(0, at - window + 1): at + 1])
    out["loss_end"] = mean_of(losses[n - window:])
    return out


# --------------------------------------------------------------------------- statistics


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


def paired(row_values, base_values):
    """The paired differences row − baseline over the seeds both have.

    Args:
        row_values, base_values: {seed: value or None}.

    Returns:
        dict ``mean``, ``se`` (sample std / sqrt(n); None for n < 2), ``t`` (mean / se; None when
        se is None or 0), ``n``, ``agree`` (seeds whose difference has the mean's sign), ``diffs``
        ({seed: difference}).
    """
    diffs = {s: row_values[s] - base_values[s] for s in row_values
             if s in base_values and row_values[s] is not None and base_values[s] is not None}
    mean, std, n = mean_std(diffs.values())
    se = std / math.sqrt(n) if n >= 2 else None
    t = mean / se if se else None
    sign = 0 if not mean else (1 if mean > 0 else -1)
    agree = sum(1 for d in diffs.values() if sign and d * sign > 0)
    return {"mean": mean, "se": se, "t": t, "n": n, "agree": agree, "diffs": diffs}


def _fmt(value, spec=".3f"):
    return "—" if value is None else format(value, spec)


def _pm(values, spec=".3f", scale=1.0, suffix=""):
    mean, std, n = mean_std(values)
    if n == 0:
        return "—"
    return f"{format(mean * scale, spec)} ± {format(std * scale, spec)}{suffix}"


def _signed(value, spec="+.3f"):
    return "—" if value is None else format(value, spec)


# --------------------------------------------------------------------------- running


def seed_dir(study, output, row, seed):
    """The OUTPUT_DIR of one run: ``<output>/<row>/seed<k>``."""
    return Path(output) / row / f"seed{seed}"


def run_opts(row, out_dir, seed, epochs=0, extra=(), fresh=False, shared=()):
    """The ``KEY VALUE`` overrides of one run: the study's ``shared`` ones, the row's own, then
    output roots, ``SEED``, ``TRAIN.RESUME`` (True unless ``fresh``), ``TRAIN.END_EPOCH``
    (``epochs`` > 0), then ``extra`` (the command line's trailing pairs)."""
    opts = list(shared) + list(row.opts) + ["OUTPUT_DIR", str(out_dir), "LOG_DIR", str(Path(out_dir) / "tb"),
                             "SEED", str(seed), "TRAIN.RESUME", str(not fresh)]
    if epochs:
        opts += ["TRAIN.END_EPOCH", str(epochs)]
    return opts + list(extra)


def run_command(cfg, opts):
    """The training command of a run, as a list (run from the repository root)."""
    return [sys.executable, str(TRAIN_SCRIPT), "--cfg", str(cfg), *opts]


def printable(cmd):
    """A command line to copy: ``python`` for the interpreter."""
    return shlex.join(["python", *cmd[1:]])


@dataclass
class Run:
    """One (row, seed) of a study and what is known of it."""

    row: Row
    seed: int
    out_dir: Path
    opts: list
    folder: Path
    end_epoch: int
    cmd: list = None
    rc: int = None
    wall_s: float = None
    metrics: Path = None
    epochs: list = field(default_factory=list)
    skipped: bool = False
    digest: str = ""
    average_last: int = 1

    @property
    def label(self):
        return f"{self.row.name}/seed{self.seed}"

    def refresh(self):
        self.metrics, self.epochs = read_run(self.folder)
        return self

    @property
    def finished(self):
        """The last epoch is in the metrics stream and the final weights were written."""
        return (any(e["epoch"] == self.end_epoch - 1 for e in self.epochs)
                and (self.folder / FINAL_STATE).is_file())

    @property
    def status(self):
        if self.rc not in (None, 0):
            return f"failed (exit {self.rc})"
        if not self.epochs:
            return "not run"
        if not self.finished:
            return f"incomplete ({len(self.epochs)} of {self.end_epoch} epochs)"
        return "ok"

    def manifest(self):
        return {"cfg": str(self.row.cfg), "opts": [o for o in self.opts], "config": self.digest}


# Keys that say where a run writes or how long it goes on, not what it trains.
_PLACE_KEYS = ("OUTPUT_DIR", "LOG_DIR", "TRAIN.RESUME", "TRAIN.END_EPOCH")


def config_digest(cfg):
    """A hash of the merged config without ``_PLACE_KEYS``: two runs with equal digests train the
    same thing, whatever the base YAML's text or the overrides' spelling."""
    import hashlib

    tree = cfg.clone()
    tree.defrost()
    for key in _PLACE_KEYS:
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = None
    return hashlib.sha256(tree.dump(sort_keys=True).encode("utf-8")).hexdigest()[:16]


def row_seeds(study, name, seeds=None):
    """The seeds of one row: ``seeds`` (the command line's) when given, else the row's own, else
    the study's."""
    return list(seeds or study.rows[name].seeds or study.seeds)


def plan_runs(study, rows, seeds, output, epochs=0, extra=(), fresh=False):
    """The study's runs, seed by seed (a row's k-th seed in the k-th round), rows in study order
    within a round.

    Args:
        seeds: the command line's seeds for every row, or None (each row's ``row_seeds``).

    Returns:
        list of ``Run`` (their metrics read when present).
    """
    from semipose.config import load_config

    runs = []
    per_row = {name: row_seeds(study, name, seeds) for name in rows}
    for k in range(max(len(s) for s in per_row.values())):
        for name in rows:
            if k >= len(per_row[name]):
                continue
            seed = per_row[name][k]
            row = study.rows[name]
            out_dir = seed_dir(study, output, name, seed)
            opts = run_opts(row, out_dir, seed, epochs, extra, fresh, study.opts)
            cfg = load_config(str(REPO / row.cfg), opts)
            run = Run(row=row, seed=seed, out_dir=out_dir, opts=opts,
                      folder=run_folder(cfg, row.cfg), end_epoch=cfg.TRAIN.END_EPOCH,
                      digest=config_digest(cfg), average_last=study.average_last)
            run.cmd = run_command(row.cfg, opts)
            runs.append(run.refresh())
    return runs


def execution_order(runs):
    """The order runs are trained in: seed round by seed round (every row's k-th seed before any
    row's next one, so a study cut short holds whole rounds), the costliest first within a round
    (the pool's last run is a cheap one)."""
    rounds, seen = {}, collections.Counter()
    for run in runs:  # plan_runs' order: a row's seeds in its own order
        rounds[id(run)] = seen[run.row.name]
        seen[run.row.name] += 1
    return sorted(runs, key=lambda r: (rounds[id(r)], -r.row.cost))


def check_settings(runs):
    """Checks every run's merged config as ``train.py`` will, before any run starts, so a bad
    value stops the study at once rather than each run after its start-up.

    Raises:
        StudyError: naming the run and the config error.
    """
    from semipose.common.errors import UserError
    from semipose.config import load_config
    from semipose.engine.checks import check_config

    for run in runs:
        try:
            check_config(load_config(str(REPO / run.row.cfg), run.opts), "train")
        except UserError as exc:
            raise StudyError(f"{run.label}: {exc}") from None


def check_manifest(run, fresh):
    """Refuses a run folder trained with other settings (unless ``fresh``); writes this run's."""
    path = Path(run.out_dir) / MANIFEST
    want = run.manifest()
    if path.is_file() and not fresh:
        have = json.loads(path.read_text(encoding="utf-8"))
        strip = {"TRAIN.RESUME", "TRAIN.END_EPOCH"}  # a longer budget continues the run
        same = _comparable(have, strip) == _comparable(want, strip)
        if have.get("config") and have["config"] != want["config"]:
            same = False  # the base YAML (or a default) changed since that run
        if not same:
            raise StudyError(
                f"{run.label}: {run.out_dir} holds a run with other settings ({path}: cfg "
                f"{have.get('cfg')}, opts {have.get('opts')}, config digest "
                f"{have.get('config') or '-'} against {want['config']}); delete the folder or "
                f"pass --fresh to retrain it")
    from semipose.common.io import atomic_write_json

    Path(run.out_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_json(str(path), want, indent=1)


def _comparable(manifest, strip):
    opts = manifest.get("opts", [])
    pairs = [(opts[i], opts[i + 1]) for i in range(0, len(opts) - 1, 2) if opts[i] not in strip]
    return manifest.get("cfg"), pairs


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
    line = f"epoch {e['epoch']}: loss {_fmt(e['loss'], '.6f')}"
    line += f", {_fmt(e['samples_per_s'], '.1f')} samples/s"
    shown = {h: v for h, v in e["ap"].items() if h != "mean"}
    if shown:
        line += ", AP " + " / ".join(f"{h} {v:.3f}" for h, v in shown.items())
    for net, c in e["collapse"].items():
        share = "—" if c["share"] is None else f"{100 * c['share']:.1f}%"
        line += f", {net} collapsed {share} (teacher peak {_fmt(c['peak'], '.4f')})"
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
            print(f"=== {run.label}: finished before, skipped ({_relative(run.folder)})",
                  flush=True)
        return run
    resumed = bool(run.epochs)
    with _PRINT_LOCK:
        print(f"\n=== {run.label}" + (f" (resuming after epoch {run.epochs[-1]['epoch']})"
                                      if resumed else "")
              + f": {printable(run.cmd)}\n    metrics: {_relative(run.folder / METRICS_FILE)}",
              flush=True)
    run.rc, run.wall_s = train(run.cmd, run.label, run.folder / METRICS_FILE, jobs, verbose,
                               interval=max(1, run.end_epoch // 5))
    run.refresh()
    with _PRINT_LOCK:
        s = final_summary(run.epochs, run.average_last)
        print(f"[result] {run.label}: {run.status}, AP net1 {_fmt(s['ap_net1'])}, ensemble "
              f"{_fmt(s['ap_ensemble'])}, {run.wall_s / 60:.1f} min", flush=True)
    return run


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
            print(f"\n=== {label}: {_relative(target)} is missing; training it: "
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
        print(f"[write] {_relative(target)}", flush=True)
    info["ap"] = []
    walls = []
    for _, _, folder, _ in runs:
        _, epochs = read_run(folder)
        info["ap"].append(final_summary(epochs)["ap_net1"])
        walls.append(sum(e["wall_s"] or 0 for e in epochs))
    if info["wall_s"] is None and any(walls):
        info["wall_s"] = max(walls)
    return info


# --------------------------------------------------------------------------- reporting


def _relative(path):
    """``path`` relative to the repository when it lies inside it, else as given."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _machine():
    import torch

    cpu = platform.processor() or "processor unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.platform()}, {cpu}, {os.cpu_count()} logical CPUs, Python "
            f"{platform.python_version()}, torch {torch.__version__}"
            + (f", CUDA {torch.cuda.get_device_name(0)}" if torch.cuda.is_available()
               else ", no CUDA"))


def summaries(runs):
    """{row: {seed: final_summary}} of the finished runs, rows in run order."""
    out = collections.OrderedDict()
    for run in runs:
        per_seed = out.setdefault(run.row.name, collections.OrderedDict())
        if run.status == "ok":
            per_seed[run.seed] = final_summary(run.epochs, run.average_last)
    return out


def head_values(per_seed, head):
    """{seed: AP of ``head``} (None where the run has no such head)."""
    return {seed: s["ap"].get(head) for seed, s in per_seed.items()}


def seed_curves(runs, name, head="net1"):
    """Mean and std over seeds of one row's per-epoch AP of ``head`` and net 1's background share
    and teacher peak, finished runs only.

    Returns:
        list of ``(epoch, {'ap': stats, 'share': stats, 'peak': stats})``; stats = ``mean_std``.
    """
    values = {key: collections.defaultdict(list) for key in ("ap", "share", "peak")}
    for run in runs:
        if run.row.name != name or run.status != "ok":
            continue
        for e in run.epochs:
            if head in e["ap"]:
                values["ap"][e["epoch"]].append(e["ap"][head])
            c = e["collapse"].get("net1") or {}
            for key in ("share", "peak"):
                if c.get(key) is not None:
                    values[key][e["epoch"]].append(c[key])
    epochs = sorted(set().union(*values.values()))
    return [(ep, {key: mean_std(v.get(ep, [])) for key, v in values.items()}) for ep in epochs]


def paired_table(study, sums, head, rows):
    """Markdown lines: paired differences of ``head`` against each baseline."""
    lines = []
    for base in study.baselines:
        if base not in sums or not sums[base]:
            continue
        base_vals = head_values(sums[base], head)
        lines += ["", f"Paired against **{base}** (AP {head}, row − {base}, per seed):", "",
                  "| Row | mean difference | standard error | t | seeds agreeing in sign | "
                  "per seed |", "|---|---|---|---|---|---|"]
        for name in rows:
            if name == base or name not in sums:
                continue
            p = paired(head_values(sums[name], head), base_vals)
            if p["n"] == 0:
                continue
            per_seed = ", ".join(f"{s}: {d:+.3f}" for s, d in p["diffs"].items())
            lines.append(f"| {name} | {_signed(p['mean'])} | {_fmt(p['se'])} | "
                         f"{_fmt(p['t'], '+.1f')} | {p['agree']} of {p['n']} | {per_seed} |")
    return lines


def render_report(study, runs, command, machine, date, head=None, pretrain=None, wall_s=None):
    """The markdown report of a study's runs (module docstring).

    Args:
        study: the ``Study``.
        runs: its ``Run`` list (rows in study order, then seeds).
        command: the study's command line.
        machine, date: strings for the header.
        head: the AP head of the paired differences (default: the study's).
        pretrain: ``ensure_pretrain``'s dict, or None.
        wall_s: the wall time of this invocation (None: not measured, e.g. ``--parse-only``).

    Returns:
        str.
    """
    head = head or study.head
    rows = list(dict.fromkeys(r.row.name for r in runs))
    seeds = list(dict.fromkeys(r.seed for r in runs))
    sums = summaries(runs)
    trained = [r for r in runs if r.wall_s is not None and not r.skipped]
    lines = [
        f"# Study `{study.name}`: {study.title}", "",
        f"Written by `bench/collapse_study.py` from each run's `{METRICS_FILE}`; the study is "
        f"`{_relative(study.path)}`.", "",
    ]
    if study.setting:
        lines += [study.setting, ""]
    lines += [
        f"- Command: `{command}`",
        f"- Machine: {machine}",
        f"- Date: {date}",
        f"- Seeds: {', '.join(str(s) for s in seeds)} (`SEED`: initialisation, data order, every "
        "augmentation draw)",
    ]
    if wall_s is not None:
        lines.append(f"- Wall time of this invocation: {wall_s / 60:.1f} min ({len(trained)} runs "
                     f"trained, {sum(r.skipped for r in runs)} finished before and skipped)")
    if pretrain:
        aps = ", ".join(_fmt(a) for a in pretrain.get("ap") or [])
        lines.append(
            f"- Pretrained start: `{_relative(REPO / pretrain['file'])}` ("
            + ("trained by this invocation" if pretrain["trained"] else "present before")
            + "; " + "; ".join(f"`{printable(c)}`" for c in pretrain["cmds"])
            + (f"; {pretrain['wall_s'] / 60:.1f} min" if pretrain.get("wall_s") else "")
            + (f"; AP on its own val set: {aps}" if aps else "") + ")"
            + (f". {study.pretrain['seen'].strip()}" if study.pretrain.get("seen") else ""))
    lines += ["", "| Method | Aug | AP net 1 | AP net 2 | AP ensemble | mean of the nets | "
              "background share | teacher peak | seeds |", "|---|---|---|---|---|---|---|---|---|"]
    for name in rows:
        per_seed = sums.get(name, {})
        vals = list(per_seed.values())
        left = [s for s in seeds if s not in per_seed]
        row = study.rows[name]
        cells = [row.method, row.aug] + [_pm([v["ap"].get(h) for v in vals]) for h in HEADS]
        cells += [_pm([v["share"] for v in vals], ".1f", 100, "%"), _pm([v["peak"] for v in vals]),
                  f"{len(vals)}" + (f" (missing: {left})" if left else "")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "", "Mean ± sample standard deviation over the seeds of the last validation (COCO AP, GT "
        "boxes). Net 2, the ensemble (mean heatmap of the nets) and their mean exist for the "
        "two-network methods. Background share and teacher peak: net 1's collapse monitor over the "
        "last epoch's unlabeled samples (share of samples whose teacher heatmap max stays below "
        "`MONITOR.COLLAPSE_THRE` on every trained joint; mean teacher heatmap max).",
    ]
    lines += paired_table(study, sums, head, rows)
    lines += ["", "## How the runs end (regime check)", "",
              f"AP {head} at the validation nearest two thirds of the run and at the end, and the "
              "labeled loss (`loss_pose`, mean of a tenth of the run) at the same points; mean "
              "over the seeds.", "",
              "| Row | AP at 2/3 | AP at the end | AP change | labeled loss at 2/3 | at the end | "
              "loss change |", "|---|---|---|---|---|---|---|"]
    for name in rows:
        ends = [last_third(r.epochs, head) for r in runs
                if r.row.name == name and r.status == "ok"]
        if not ends:
            continue
        m = {k: mean_std([e[k] for e in ends])[0] for k in ("ap_23", "ap_end", "loss_23",
                                                            "loss_end")}
        d_ap = None if None in (m["ap_23"], m["ap_end"]) else m["ap_end"] - m["ap_23"]
        d_loss = (None if None in (m["loss_23"], m["loss_end"]) or not m["loss_23"]
                  else (m["loss_end"] - m["loss_23"]) / m["loss_23"])
        lines.append(f"| {name} | {_fmt(m['ap_23'])} | {_fmt(m['ap_end'])} | {_signed(d_ap)} | "
                     f"{_fmt(m['loss_23'], '.6f')} | {_fmt(m['loss_end'], '.6f')} | "
                     f"{_signed(None if d_loss is None else 100 * d_loss, '+.0f')}% |")
    lines += ["", f"## Learning curves: AP {head} per validated epoch (mean ± std over the seeds)",
              ""]
    curves = {name: seed_curves(runs, name, head) for name in rows}
    epochs = sorted({ep for c in curves.values() for ep, st in c if st["ap"][2]})
    lines += ["| Row | " + " | ".join(str(ep) for ep in epochs) + " |",
              "|---|" + "---|" * len(epochs)]
    for name, curve in curves.items():
        by_epoch = {ep: st["ap"] for ep, st in curve}
        cells = [name]
        for ep in epochs:
            mean, std, n = by_epoch.get(ep, (None, None, 0))
            cells.append("—" if n == 0 else f"{mean:.3f} ± {std:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Every seed", "",
              "| Row | " + " | ".join(f"seed {s}: net 1 / ensemble, best net 1 (epoch)"
                                     for s in seeds) + " |", "|---|" + "---|" * len(seeds)]
    by_key = {(r.row.name, r.seed): r for r in runs}
    for name in rows:
        cells = [name]
        for seed in seeds:
            v = sums.get(name, {}).get(seed)
            if v is None:
                run = by_key.get((name, seed))
                cells.append(run.status if run else "—")
                continue
            cell = f"{_fmt(v['ap_net1'])} / {_fmt(v['ap_ensemble'])}"
            if v["best_net1"] is not None:
                cell += f", {v['best_net1']:.3f} ({v['best_epoch']})"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Runs", "", "Each run's exact command (from the repository root), its status, "
              "its wall time when this invocation trained it (runs share the machine with "
              "`--jobs` > 1) and its metrics.", ""]
    for run in runs:
        wall = "" if run.wall_s is None else f", {run.wall_s / 60:.1f} min"
        where = f"`{_relative(run.metrics)}`" if run.metrics else "no metrics"
        lines.append(f"- {run.label}: {run.status}{wall}, {where}: `{printable(run.cmd)}`")
    return "\n".join(lines) + "\n"


def console_summary(study, runs, head=None):
    """The rows' AP and the paired differences, as plain lines for the terminal."""
    head = head or study.head
    sums = summaries(runs)
    lines = ["", f"AP {head} (mean ± std over seeds, last validation):"]
    for name, per_seed in sums.items():
        vals = head_values(per_seed, head)
        got = [v for v in vals.values() if v is not None]
        lines.append(f"  {name:<24} {_pm(got)}  ({len(got)} seeds: "
                     + ", ".join(f"{s} {_fmt(v)}" for s, v in vals.items()) + ")")
    for base in study.baselines:
        if not sums.get(base):
            continue
        lines.append(f"paired differences against {base} (mean, standard error, seeds agreeing):")
        for name, per_seed in sums.items():
            if name == base:
                continue
            p = paired(head_values(per_seed, head), head_values(sums[base], head))
            if p["n"]:
                lines.append(f"  {name:<24} {_signed(p['mean'])} ± {_fmt(p['se'])} "
                             f"({p['agree']} of {p['n']})")
    return "\n".join(lines)


def write_spread_plot(study, runs, path, size=(1500, 440), head="net1"):
    """Three panels drawn with OpenCV: AP of ``head``, net 1's background share and its mean
    teacher peak against the epoch; per row the mean over the seeds as a line and mean ± std as a
    band.

    Returns:
        ``path``.
    """
    import cv2
    import numpy as np

    width, height = size
    img = np.full((height, width, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    rows = list(dict.fromkeys(r.row.name for r in runs))
    curves = {name: seed_curves(runs, name, head) for name in rows}
    names = [name for name, curve in curves.items() if curve]
    x_max = math.ceil((max([ep for c in curves.values() for ep, _ in c] + [1]) + 1) / 10) * 10
    ap_max = max([st["ap"][0] + st["ap"][1] for c in curves.values() for _, st in c
                  if st["ap"][2]] + [0.1])
    ap_max = min(1.0, math.ceil(ap_max * 10) / 10)
    palette = [(200, 120, 30), (40, 160, 40), (30, 30, 210), (160, 60, 160), (20, 140, 200),
               (90, 90, 90), (0, 180, 180), (140, 100, 60), (60, 60, 160), (120, 180, 60),
               (180, 40, 120), (0, 100, 200)]
    third = width // 3
    panels = [(0, f"AP {head} (mean, band: +- std over seeds)", ap_max, "ap", 1.0),
              (third, "background share of net 1 (%)", 100.0, "share", 100.0),
              (2 * third, "mean teacher peak of net 1", 1.0, "peak", 1.0)]
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
            points = [(ep, st[key][0] * scale, st[key][1] * scale)
                      for ep, st in curves[name] if st[key][2]]
            if not points:
                continue
            band = ([px(ep, m + s) for ep, m, s in points]
                    + [px(ep, m - s) for ep, m, s in reversed(points)])
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


# --------------------------------------------------------------------------- CLI


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Run a study's rows over its seeds and report "
                                     "mean ± std and paired differences")
    parser.add_argument("--study", required=True,
                        help="a study name (experiments/studies/NAME.yaml) or a study YAML file")
    parser.add_argument("--rows", nargs="+", default=["all"], help="'all' or row names")
    parser.add_argument("--seeds", nargs="+", type=int, default=None,
                        help="seeds (default: the study's)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs trained at once (each with OMP_NUM_THREADS = CPUs / jobs "
                        "unless set)")
    parser.add_argument("--epochs", type=int, default=0,
                        help="TRAIN.END_EPOCH of every run (0: the configs')")
    parser.add_argument("--output", default=None, help="runs' root (default: the study's)")
    parser.add_argument("--results", default=None, help="markdown report (default: the study's)")
    parser.add_argument("--plot", default=None, help="PNG plot (default: the study's)")
    parser.add_argument("--no-plot", action="store_true", help="skip the plot")
    parser.add_argument("--head", choices=HEADS, default=None,
                        help="AP head of the paired differences (default: the study's)")
    parser.add_argument("--parse-only", action="store_true",
                        help=f"train nothing: read the runs' {METRICS_FILE} and write the report")
    parser.add_argument("--fresh", action="store_true",
                        help="retrain runs whose folder holds other settings (TRAIN.RESUME False)")
    parser.add_argument("--machine", default="", help="machine description for the report")
    parser.add_argument("--verbose", action="store_true", help="echo every line of the runs")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[],
                        help="KEY VALUE overrides for every run")
    args = parser.parse_args(argv)
    try:
        args.study = load_study(args.study)
    except StudyError as exc:
        parser.error(str(exc))
    rows = args.study.rows
    if args.rows == ["all"]:
        args.rows = list(rows)
    unknown = [r for r in args.rows if r not in rows]
    if unknown:
        parser.error(f"unknown rows {unknown}; the study {args.study.name!r} has "
                     f"{', '.join(rows)} (or 'all')")
    args.rows = [r for r in rows if r in args.rows]  # study order
    if args.seeds and len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds repeats a seed: {args.seeds}")
    if len(args.opts) % 2:
        parser.error(f"overrides must be KEY VALUE pairs, got {args.opts}")
    args.output = REPO / (args.output or args.study.output)
    args.results = REPO / (args.results or args.study.results)
    args.plot = REPO / (args.plot or args.study.plot)
    return args


def main(argv=None):
    args = parse_args(argv)
    os.chdir(REPO)
    study = args.study
    command = shlex.join(["python", "bench/collapse_study.py",
                          *(sys.argv[1:] if argv is None else argv)])
    start = time.time()
    try:
        runs = plan_runs(study, args.rows, args.seeds, args.output, args.epochs, args.opts,
                         args.fresh)
        pretrain = None
        if not args.parse_only:
            for run in runs:
                check_manifest(run, args.fresh)
            pretrain = ensure_pretrain(study, args.output, args.verbose, jobs=args.jobs)
            todo = [r for r in runs if not r.finished]
            check_settings(todo)
            print(f"[study] {study.name}: {len(runs)} runs ({len(args.rows)} rows, "
                  f"{len({r.seed for r in runs})} seeds), {len(runs) - len(todo)} finished "
                  f"before, {len(todo)} to train, {args.jobs} at a time", flush=True)
            order = execution_order(runs)
            with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
                list(pool.map(lambda r: execute(r, args.jobs, args.verbose), order))
        else:
            pretrain = ensure_pretrain(study, args.output, train_missing=False)
    except StudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    wall = None if args.parse_only else time.time() - start
    date = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    text = render_report(study, runs, command, args.machine or _machine(), date, args.head,
                         pretrain, wall)
    from semipose.common.io import atomic_write_text

    args.results.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(str(args.results), text)
    print(console_summary(study, runs, args.head), flush=True)
    print(f"[write] {_relative(args.results)}", flush=True)
    if not args.no_plot:
        write_spread_plot(study, runs, args.plot, head=args.head or study.head)
        print(f"[write] {_relative(args.plot)}", flush=True)
    return 1 if any(r.status != "ok" for r in runs) and not args.parse_only else 0


if __name__ == "__main__":
    sys.exit(main())
