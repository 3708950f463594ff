"""The study's report: the markdown file (rows, paired differences, claims, regime check, curves,
every seed, every command) and the console summary."""

import os
import platform
from pathlib import Path

from .runs import METRICS_FILE, printable
from .spec import HEADS, REPO, relative
from .stats import (
    CLAIM_SIGMAS,
    PAUSE_FACTOR,
    claim_verdict,
    fmt,
    fmt_pm,
    fmt_signed,
    head_values,
    last_third,
    mean_std,
    paired,
    pauses_in,
    regime_change,
    run_minutes,
    seed_curves,
    summaries,
)


def machine_description():
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
            lines.append(f"| {name} | {fmt_signed(p['mean'])} | {fmt(p['se'])} | "
                         f"{fmt(p['t'], '+.1f')} | {p['agree']} of {p['n']} | {per_seed} |")
    return lines


def regime_line(study, runs, head):
    """The regime check's sentence, or None when the study names no regime row or it has no
    finished run."""
    name = study.regime_row
    if name is None:
        return None
    change, std, n = regime_change(runs, name, head, study.average_last)
    if n == 0:
        return None
    tol = study.regime_tolerance
    state = ("within it: the row has stopped rising at this budget" if abs(change) <= tol
             else "outside it: the row is still " + ("rising" if change > 0 else "falling"))
    return (f"Regime check: **{name}**'s AP ({head}) changes by {change:+.3f} ± {std:.3f} over the "
            f"last third of the run (mean ± std over {n} seeds; tolerance ±{tol:.3f}), "
            f"{state}.")


def claims_table(study, runs, sums, head):
    """Markdown lines: the study's claims, each judged on the paired differences of ``head``."""
    if not study.claims:
        return []
    lines = ["", "## Claims", "",
             f"Each claim \"row > over\" is judged on the paired differences row − over of the AP "
             f"({head}) over the seeds both rows have: **shown** when the mean lies more than "
             f"{CLAIM_SIGMAS:g} standard errors above 0, **opposite shown** when more than "
             f"{CLAIM_SIGMAS:g} below, otherwise **not shown at this budget**, with what the runs "
             "say of the cause: each row's AP change over the last third (still rising or flat) "
             "and the size of the standard error.", "",
             "| Claim | row − over | mean difference | standard error | seeds agreeing in sign | "
             "verdict | AP change over the last third (row / over) |",
             "|---|---|---|---|---|---|---|"]
    for claim in study.claims:
        row, over = claim["row"], claim["over"]
        p = claim_verdict(head_values(sums.get(row, {}), head),
                          head_values(sums.get(over, {}), head))
        changes = [regime_change(runs, name, head, study.average_last)[0] for name in (row, over)]
        verdict = p["verdict"]
        if verdict == "not shown":
            verdict = ("not shown at this budget (the difference lies within "
                       f"{CLAIM_SIGMAS:g} SE = {CLAIM_SIGMAS * p['se']:.3f} of 0)")
        lines.append(f"| {claim['claim']} | {row} − {over} | {fmt_signed(p['mean'])} | "
                     f"{fmt(p['se'])} | {p['agree']} of {p['n']} | {verdict} | "
                     f"{fmt_signed(changes[0])} / {fmt_signed(changes[1])} |")
    line = regime_line(study, runs, head)
    if line:
        lines += ["", line]
    return lines


def _reported(study):
    last = study.average_last
    return "the last validation" if last == 1 else f"the mean of the last {last} validations"


def _header(study, runs, command, machine, date, pretrain, wall_s):
    seeds = list(dict.fromkeys(r.seed for r in runs))
    trained = [r for r in runs if r.wall_s is not None and not r.skipped]
    lines = [
        f"# Study `{study.name}`: {study.title}", "",
        f"Written by `python -m semipose.tools.study` from each run's `{METRICS_FILE}`; the "
        f"study is `{relative(study.path)}`.", "",
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
        aps = ", ".join(fmt(a) for a in pretrain.get("ap") or [])
        lines.append(
            f"- Pretrained start: `{relative(REPO / pretrain['file'])}` ("
            + ("trained by this invocation" if pretrain["trained"] else "present before")
            + "; " + "; ".join(f"`{printable(c)}`" for c in pretrain["cmds"])
            + (f"; {pretrain['wall_s'] / 60:.1f} min" if pretrain.get("wall_s") else "")
            + (f"; AP on its own val set: {aps}" if aps else "") + ")"
            + (f". {study.pretrain['seen'].strip()}" if study.pretrain.get("seen") else ""))
    return lines


def _paused(runs):
    """Which runs had paused epochs, for the table's note."""
    hit = [f"{r.row.name} seed {r.seed}: {n}" for r in runs if (n := pauses_in(r.epochs))]
    return "epochs so counted: " + ", ".join(hit) if hit else "no epoch was"


def _rows_table(study, runs, sums):
    lines = ["", "| Method | Aug | AP net 1 | AP net 2 | AP ensemble | mean of the nets | "
             "papers' head | background share | teacher peak | minutes per run | seeds |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r.row.name for r in runs):
        per_seed = sums.get(name, {})
        vals = list(per_seed.values())
        left = [r.seed for r in runs if r.row.name == name and r.seed not in per_seed]
        row = study.rows[name]
        cells = [row.method, row.aug] + [fmt_pm([v["ap"].get(h) for v in vals]) for h in HEADS]
        cells += [fmt_pm([v["share"] for v in vals], ".1f", 100, "%"),
                  fmt_pm([v["peak"] for v in vals]),
                  fmt_pm([run_minutes(r.epochs) for r in runs
                          if r.row.name == name and r.status == "ok"], ".1f"),
                  f"{len(vals)}" + (f" (missing: {left})" if left else "")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "", f"Mean ± sample standard deviation over the seeds of each run's AP, {_reported(study)} "
        "(COCO AP, GT boxes). Net 2, the ensemble (mean heatmap of the nets) and their mean exist "
        "for the two-network methods; the papers' head is that mean for two networks (the papers' "
        "Dual AP) and net 1's AP for one. Minutes per run: its training and validation wall time "
        "from its epoch records, with the study's other runs on the machine beside it; an epoch "
        f"more than {PAUSE_FACTOR:g}x the run's median epoch of its kind (a run stopped and "
        f"resumed, or held) counts as that median ({_paused(runs)}). Background "
        "share and teacher peak: net 1's collapse monitor over the last epoch's unlabeled samples "
        "(share of samples whose teacher heatmap max stays below `MONITOR.COLLAPSE_THRE` on every "
        "trained joint; mean teacher heatmap max).",
    ]
    return lines


def _ends_table(study, runs, head):
    lines = ["", "## How the runs end (regime check)", "",
             f"AP {head} at two thirds of the run and at the end ({_reported(study)} ending "
             "there), and the labeled loss (`loss_pose`, mean of a tenth of the run) at the same "
             "points; mean over the seeds.", "",
             "| Row | AP at 2/3 | AP at the end | AP change | labeled loss at 2/3 | at the end | "
             "loss change |", "|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r.row.name for r in runs):
        ends = [last_third(r.epochs, head, study.average_last) for r in runs
                if r.row.name == name and r.status == "ok"]
        if not ends:
            continue
        m = {k: mean_std([e[k] for e in ends])[0] for k in ("ap_23", "ap_end", "loss_23",
                                                            "loss_end")}
        d_ap = None if None in (m["ap_23"], m["ap_end"]) else m["ap_end"] - m["ap_23"]
        d_loss = (None if None in (m["loss_23"], m["loss_end"]) or not m["loss_23"]
                  else (m["loss_end"] - m["loss_23"]) / m["loss_23"])
        lines.append(f"| {name} | {fmt(m['ap_23'])} | {fmt(m['ap_end'])} | {fmt_signed(d_ap)} | "
                     f"{fmt(m['loss_23'], '.6f')} | {fmt(m['loss_end'], '.6f')} | "
                     f"{fmt_signed(None if d_loss is None else 100 * d_loss, '+.0f')}% |")
    return lines


def _curves_table(runs, head):
    curves = {name: seed_curves(runs, name, head) for name in dict.fromkeys(r.row.name
                                                                             for r in runs)}
    epochs = sorted({ep for c in curves.values() for ep, st in c if st["ap"][2]})
    if not epochs:
        return []
    lines = ["", f"## Learning curves: AP {head} per validated epoch (mean ± std over the seeds)",
             "", "| Row | " + " | ".join(str(ep) for ep in epochs) + " |",
             "|---|" + "---|" * len(epochs)]
    for name, curve in curves.items():
        by_epoch = {ep: st["ap"] for ep, st in curve}
        cells = [name]
        for ep in epochs:
            mean, std, n = by_epoch.get(ep, (None, None, 0))
            cells.append("—" if n == 0 else f"{mean:.3f} ± {std:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _seeds_table(runs, sums, head):
    seeds = list(dict.fromkeys(r.seed for r in runs))
    lines = ["", "## Every seed", "",
             "| Row | " + " | ".join(f"seed {s}: {head} / net 1 / ensemble, best net 1 (epoch)"
                                    for s in seeds) + " |", "|---|" + "---|" * len(seeds)]
    by_key = {(r.row.name, r.seed): r for r in runs}
    for name in dict.fromkeys(r.row.name for r in runs):
        cells = [name]
        for seed in seeds:
            v = sums.get(name, {}).get(seed)
            if v is None:
                run = by_key.get((name, seed))
                cells.append(run.status if run else "—")
                continue
            cell = f"{fmt(v['ap'].get(head))} / {fmt(v['ap_net1'])} / {fmt(v['ap_ensemble'])}"
            if v["best_net1"] is not None:
                cell += f", {v['best_net1']:.3f} ({v['best_epoch']})"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _runs_list(runs):
    lines = ["", "## Runs", "", "Each run's exact command (from the repository root), its status, "
             "its wall time when this invocation trained it (runs share the machine with "
             "`--jobs` > 1) and its metrics.", ""]
    for run in runs:
        wall = "" if run.wall_s is None else f", {run.wall_s / 60:.1f} min"
        where = f"`{relative(run.metrics)}`" if run.metrics else "no metrics"
        lines.append(f"- {run.label}: {run.status}{wall}, {where}: `{printable(run.cmd)}`")
    return lines


def render_report(study, runs, command, machine, date, head=None, pretrain=None, wall_s=None):
    """The markdown report of a study's runs (the package's docstring).

    Args:
        study: the ``Study``.
        runs: its ``Run`` list (``plan_runs``' order).
        command: the study's command line.
        machine, date: strings for the header.
        head: the AP head of the claims and paired differences (default: the study's).
        pretrain: ``ensure_pretrain``'s dict, or None.
        wall_s: the wall time of this invocation (None: not measured, e.g. ``--parse-only``).

    Returns:
        str.
    """
    head = head or study.head
    rows = list(dict.fromkeys(r.row.name for r in runs))
    sums = summaries(runs)
    lines = _header(study, runs, command, machine, date, pretrain, wall_s)
    lines += _rows_table(study, runs, sums)
    lines += claims_table(study, runs, sums, head)
    lines += paired_table(study, sums, head, rows)
    lines += _ends_table(study, runs, head)
    lines += _curves_table(runs, head)
    lines += _seeds_table(runs, sums, head)
    lines += _runs_list(runs)
    return "\n".join(lines) + "\n"


def console_summary(study, runs, head=None):
    """The rows' AP and the paired differences, as plain lines for the terminal."""
    head = head or study.head
    sums = summaries(runs)
    last = ("last validation" if study.average_last == 1
            else f"mean of the last {study.average_last} validations")
    lines = ["", f"AP {head} (mean ± std over seeds, {last}):"]
    for name, per_seed in sums.items():
        vals = head_values(per_seed, head)
        got = [v for v in vals.values() if v is not None]
        lines.append(f"  {name:<24} {fmt_pm(got)}  ({len(got)} seeds: "
                     + ", ".join(f"{s} {fmt(v)}" for s, v in vals.items()) + ")")
    for base in study.baselines:
        if not sums.get(base):
            continue
        lines.append(f"paired differences against {base} (mean, standard error, seeds agreeing):")
        for name, per_seed in sums.items():
            if name == base:
                continue
            p = paired(head_values(per_seed, head), head_values(sums[base], head))
            if p["n"]:
                lines.append(f"  {name:<24} {fmt_signed(p['mean'])} ± {fmt(p['se'])} "
                             f"({p['agree']} of {p['n']})")
    return "\n".join(lines)
