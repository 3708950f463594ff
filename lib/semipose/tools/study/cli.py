"""``python -m semipose.tools.study``: run a study's rows over their seeds, then write its report
and plot (the package's docstring)."""

import argparse
import datetime
import os
import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from .launch import ensure_prepared, ensure_pretrain, execute
from .plot import write_cost_plot, write_spread_plot
from .report import console_summary, machine_description, render_report
from .runs import METRICS_FILE, check_manifest, check_settings, execution_order, plan_runs
from .spec import HEADS, REPO, StudyError, load_study, relative


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m semipose.tools.study",
        description="Run a study's rows over their seeds and report mean ± std, paired "
        "differences and the study's claims")
    parser.add_argument("--study", required=True,
                        help="a study name (experiments/studies/NAME.yaml) or a study YAML file")
    parser.add_argument("--rows", nargs="+", default=["all"], help="'all' or row names")
    parser.add_argument("--seeds", nargs="+", type=int, default=None,
                        help="seeds (default: the study's)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs trained at once (each with OMP_NUM_THREADS = CPUs / jobs "
                        "unless set)")
    parser.add_argument("--epochs", type=int, default=0,
                        help="TRAIN.END_EPOCH of every run (0: the configs'); TEST.INTERVAL "
                        "scales with it, so a run validates as often as its config says over "
                        "the whole run (the last epoch always; a trailing TEST.INTERVAL wins)")
    parser.add_argument("--output", default=None, help="runs' root (default: the study's)")
    parser.add_argument("--results", default=None, help="markdown report (default: the study's)")
    parser.add_argument("--plot", default=None,
                        help="PNG plot (default: the study's); the cost per row goes beside it "
                        "as <plot>_cost.png")
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
    command = shlex.join(["python", "-m", "semipose.tools.study",
                          *(sys.argv[1:] if argv is None else argv)])
    start = time.time()
    try:
        runs = plan_runs(study, args.rows, args.seeds, args.output, args.epochs, args.opts,
                         args.fresh)
        pretrain = None
        if not args.parse_only:
            for run in runs:
                check_manifest(run, args.fresh)
            ensure_prepared(study, args.output)
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
    machine = args.machine or machine_description()
    text = render_report(study, runs, command, machine, date, args.head, pretrain, wall)
    from semipose.common.io import atomic_write_text

    args.results.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(str(args.results), text)
    print(console_summary(study, runs, args.head), flush=True)
    print(f"[write] {relative(args.results)}", flush=True)
    if not args.no_plot:
        write_spread_plot(study, runs, args.plot, head=args.head or study.head)
        print(f"[write] {relative(args.plot)}", flush=True)
        cost = args.plot.with_name(args.plot.stem + "_cost" + args.plot.suffix)
        if write_cost_plot(study, runs, cost, machine):
            print(f"[write] {relative(cost)}", flush=True)
    return 1 if any(r.status != "ok" for r in runs) and not args.parse_only else 0

