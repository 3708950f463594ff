"""A study's runs: where each one writes, its command, what its metrics stream holds, and the
checks that make an interrupted study resume (finished runs skipped, a folder trained with other
settings refused)."""

import collections
import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .spec import REPO, TRAIN_SCRIPT, Row, StudyError

METRICS_FILE = "metrics.jsonl"
MANIFEST = "study_run.json"
FINAL_STATE = "final_state.pth.tar"
# Keys that say how long a run goes on, when it validates (the training and the last epoch's
# validation stay as they are) or where its loader's workers run, not what it trains: a run
# folder holding the same run with other values of these continues.
_CONTINUE_KEYS = ("TRAIN.RESUME", "TRAIN.END_EPOCH", "TEST.INTERVAL", "WORKERS_INLINE")
# ... and, with where the run writes, the keys its config digest leaves out.
_PLACE_KEYS = ("OUTPUT_DIR", "LOG_DIR", *_CONTINUE_KEYS)


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


def seed_dir(study, output, row, seed):
    """The OUTPUT_DIR of one run: ``<output>/<row>/seed<k>``."""
    return Path(output) / row / f"seed{seed}"


def scaled_interval(interval, end_epoch, epochs):
    """``TEST.INTERVAL`` for a run lengthened (or shortened) from ``end_epoch`` to ``epochs``
    epochs: as many validations as the config has, so a larger budget costs training, not
    validation. The last epoch is always validated (``EvalHook``), so a run's final AP is the
    same whichever interval it ran with; only its learning curve has fewer points."""
    if not epochs or not end_epoch or epochs == end_epoch:
        return interval
    return max(1, round(interval * epochs / end_epoch))


def run_opts(row, out_dir, seed, epochs=0, extra=(), fresh=False, shared=(), interval=None):
    """The ``KEY VALUE`` overrides of one run: the study's ``shared`` ones, the row's own, then
    output roots, ``SEED``, ``TRAIN.RESUME`` (True unless ``fresh``), ``TRAIN.END_EPOCH``
    (``epochs`` > 0) with ``TEST.INTERVAL`` = ``interval`` (when given: ``scaled_interval``'s),
    then ``extra`` (the command line's trailing pairs, which may set either again)."""
    opts = list(shared) + list(row.opts)
    opts += ["OUTPUT_DIR", str(out_dir), "LOG_DIR", str(Path(out_dir) / "tb"), "SEED", str(seed),
             "TRAIN.RESUME", str(not fresh)]
    if epochs:
        opts += ["TRAIN.END_EPOCH", str(epochs)]
        if interval is not None:
            opts += ["TEST.INTERVAL", str(interval)]
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
    interval = dict.fromkeys(rows)  # --epochs keeps each row's configured number of validations
    if epochs:
        for name in rows:
            base = load_config(str(REPO / study.rows[name].cfg),
                               list(study.opts) + list(study.rows[name].opts))
            interval[name] = scaled_interval(base.TEST.INTERVAL, base.TRAIN.END_EPOCH, epochs)
    for k in range(max(len(s) for s in per_row.values())):
        for name in rows:
            if k >= len(per_row[name]):
                continue
            seed = per_row[name][k]
            row = study.rows[name]
            out_dir = seed_dir(study, output, name, seed)
            opts = run_opts(row, out_dir, seed, epochs, extra, fresh, study.opts, interval[name])
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
        strip = set(_CONTINUE_KEYS)  # e.g. a longer budget and the interval scaled with it
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
