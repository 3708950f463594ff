"""Studies as configs: the rows of a comparison (base YAML + overrides), their seeds, what they are
compared against and which claims they test, run and reported by one command::

    python -m semipose.tools.study --study NAME [--rows NAME ...] [--seeds K ...] [--jobs N]
        [--epochs N] [--output DIR] [--results FILE] [--plot PNG] [--no-plot] [--parse-only]
        [--fresh] [--head net1|net2|ensemble|mean|papers] [--machine TEXT] [--verbose]
        [KEY VALUE ...]

A study is a YAML file under ``experiments/studies/`` (``--study NAME`` reads
``experiments/studies/NAME.yaml``; a path works too)::

    title: the paper's regime at CPU scale
    setting: one paragraph on what every row shares
    seeds: [1, 2, 3]                    # every row's seeds unless the row lists its own
    output: output/studies/paper        # runs under <output>/<row>/seed<k>/
    results: docs/results/study_paper.md
    plot: docs/study_paper.png          # and docs/study_paper_cost.png: minutes per run
    head: papers                        # the AP the paired differences and claims compare
    average_last: 3                     # a run's AP: the mean of its last 3 validations
    baselines: [supervised, posedual]   # paired differences against each
    cfg: experiments/studies/paper/base.yaml   # every row's base YAML unless the row names one
    opts: {TRAIN.END_EPOCH: 120}        # overrides of every row, before the row's own
    regime: {row: supervised, tolerance: 0.005}   # the row that must have stopped rising
    claims:                             # each "row > over", judged on paired differences
      - {claim: PoseCons > Supervised, row: posecons, over: supervised}
    pretrain:                           # optional: a shared start, trained once when missing
      cfg: experiments/studies/paper/pretrain_easy.yaml
      file: models/synthetic/poselite32_easy_pretrain_pair.pth
      seeds: [7, 8]                     # two seeds: a pair file (net 1 / net 2)
      seen: what it was trained on (said in the report)
    rows:
      supervised:
        method: Supervised              # the report's Method and Aug columns
        aug: "—"
        cost: 3                         # forward-equivalents per step: the costliest run first
        seeds: [1, 2, 3, 4, 5]
        opts: {MODEL.NAME: pose_resnet, DATASET.TRAIN_DATASET: coco}

Every run is ``python pose_estimation/train.py --cfg <row cfg> <study opts> <row opts> OUTPUT_DIR
<output>/<row>/seed<k> LOG_DIR .../tb SEED k TRAIN.RESUME True [trailing KEY VALUE]`` in its own
process, ``--jobs`` at a time (each with ``OMP_NUM_THREADS`` = CPUs / jobs unless set), seed round
by seed round (every row's k-th seed before any row's next one, the costliest first within a
round), so a study cut short holds whole rounds. A run whose metrics stream holds its last epoch
and whose ``final_state.pth.tar`` exists is skipped; an interrupted one resumes from its checkpoint;
a run folder trained with other settings (``study_run.json`` beside it) is refused unless
``--fresh``, which retrains. The pretrained start is trained first when its file is missing.

Results are read from each run's ``metrics.jsonl``, never from log text. The report: per row mean ±
sample std over the seeds of each run's AP (``average_last``), the claims' verdicts (``shown``
beyond two standard errors of the paired differences), the regime check, the paired differences
against every baseline, how the runs end, the mean learning curves, every seed's values, the exact
commands, the machine and the wall times; the plots: AP and the collapse monitor per epoch (mean ±
std bands) and the minutes per run of each row.

Modules: ``spec`` (the study file), ``runs`` (where runs write, their commands, resuming),
``launch`` (training them), ``stats``, ``report``, ``plot``, ``cli``.
"""

from .cli import main, parse_args
from .launch import MetricsWatch, ensure_pretrain, execute, pair_state
from .plot import write_cost_plot, write_spread_plot
from .report import console_summary, render_report
from .runs import (
    Run,
    check_manifest,
    epochs_from_records,
    execution_order,
    plan_runs,
    read_run,
    run_folder,
)
from .spec import HEADS, Row, Study, StudyError, find_study, load_study
from .stats import claim_verdict, final_summary, last_third, mean_std, paired, regime_change

__all__ = [
    "HEADS", "MetricsWatch", "Row", "Run", "Study", "StudyError", "check_manifest",
    "claim_verdict", "console_summary", "ensure_pretrain", "epochs_from_records", "execute",
    "execution_order", "final_summary", "find_study", "last_third", "load_study", "main",
    "mean_std", "pair_state", "paired", "parse_args", "plan_runs", "read_run", "regime_change",
    "render_report", "run_folder", "write_cost_plot", "write_spread_plot",
]
