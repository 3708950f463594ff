"""The statistics of a study: a run's reported AP (the mean of its last validations), how it ends
(the regime check), mean ± sample std over seeds, paired differences with their standard error,
and the claims' verdicts."""

import collections
import math


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


def last_third(epochs, head="net1", window=1):
    """How a run ends: the AP of ``head`` at two thirds of the run and at its end, and the labeled
    loss (``loss_pose``, mean over the epochs of each window of a tenth of the run) at the same
    points.

    Args:
        epochs: ``epochs_from_records``' list of one run.
        head: the AP head.
        window: each AP is the mean of ``window`` validations: the last ones, and those ending at
            the validation nearest two thirds of the run (the study's ``average_last``, so the
            change is measured as the reported figure is).

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
        k = min(range(len(evaluated)), key=lambda i: abs(evaluated[i]["epoch"] - mark))
        at_23 = evaluated[max(0, k - window + 1): k + 1]
        at_end = evaluated[-window:]
        out["ap_23"] = sum(e["ap"][head] for e in at_23) / len(at_23)
        out["ap_end"] = sum(e["ap"][head] for e in at_end) / len(at_end)
    span = max(1, n // 10)
    at = min(range(n), key=lambda i: abs(epochs[i]["epoch"] - mark))
    losses = [e["loss_pose"] for e in epochs]

    def mean_of(chunk):
        vals = [v for v in chunk if v is not None]
        return sum(vals) / len(vals) if vals else None

    out["loss_23"] = mean_of(losses[max(0, at - span + 1): at + 1])
    out["loss_end"] = mean_of(losses[n - span:])
    return out


# --------------------------------------------------------------------------- over seeds


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


def fmt(value, spec=".3f"):
    return "—" if value is None else format(value, spec)


def fmt_pm(values, spec=".3f", scale=1.0, suffix=""):
    mean, std, n = mean_std(values)
    if n == 0:
        return "—"
    return f"{format(mean * scale, spec)} ± {format(std * scale, spec)}{suffix}"


def fmt_signed(value, spec="+.3f"):
    return "—" if value is None else format(value, spec)


#: an epoch whose wall time exceeds this many times the median of its kind was paused
PAUSE_FACTOR = 5.0


def _epoch_walls(epochs, pause_factor):
    """``[(wall_s, paused)]`` of a run's epochs with a wall time; an epoch counts as paused when
    its wall time exceeds ``pause_factor`` times the median of its kind (epochs with a
    validation, or without), and its wall time is then that median."""
    walls = [(bool(e.get("ap")), e["wall_s"]) for e in epochs if e.get("wall_s") is not None]
    medians = {}
    for kind in (True, False):
        values = sorted(w for k, w in walls if k == kind)
        if values:
            medians[kind] = values[(len(values) - 1) // 2]  # the lower median
    out = []
    for kind, wall in walls:
        paused = wall > pause_factor * medians[kind]
        out.append((medians[kind] if paused else wall, paused))
    return out


def run_minutes(epochs, pause_factor=PAUSE_FACTOR):
    """A run's training wall time in minutes, from its epoch records (``wall_s``: the seconds
    since the previous record, validation included); None without records.

    A run stopped and resumed later (another session, a preemption, a process held while the
    machine did something else) has an epoch whose record lies hours after the previous one.
    Such pauses are not the run's cost: an epoch whose wall time exceeds ``pause_factor`` times
    the median of the run's epochs of its kind (with a validation, or without) counts as that
    median instead (``pauses_in`` counts them).
    """
    walls = _epoch_walls(epochs, pause_factor)
    return sum(w for w, _ in walls) / 60 if walls else None


def pauses_in(epochs, pause_factor=PAUSE_FACTOR):
    """How many of a run's epochs ``run_minutes`` counted as paused."""
    return sum(paused for _, paused in _epoch_walls(epochs, pause_factor))


#: how many standard errors a paired difference must clear to count as shown
CLAIM_SIGMAS = 2.0


def claim_verdict(row_values, over_values, sigmas=CLAIM_SIGMAS):
    """A claim "row > over" judged on the paired differences of the seeds both rows have.

    Args:
        row_values, over_values: {seed: AP or None}.
        sigmas: the difference must lie more than ``sigmas`` standard errors from 0.

    Returns:
        ``paired``'s dict plus ``verdict``: ``shown`` (mean − sigmas·SE > 0), ``opposite shown``
        (mean + sigmas·SE < 0), ``not shown`` (0 within sigmas·SE) or ``too few seeds`` (fewer
        than two paired seeds).
    """
    p = paired(row_values, over_values)
    if p["n"] < 2:
        p["verdict"] = "too few seeds"
    elif p["mean"] - sigmas * p["se"] > 0:
        p["verdict"] = "shown"
    elif p["mean"] + sigmas * p["se"] < 0:
        p["verdict"] = "opposite shown"
    else:
        p["verdict"] = "not shown"
    return p


def regime_change(runs, name, head, window=1):
    """How much a row still moves at the end: the mean over its finished seeds of ``last_third``'s
    AP change (the mean of the last ``window`` validations minus that of the ``window`` ending
    at two thirds of the run).

    Returns:
        ``(mean change, its sample std, seeds)``; ``(None, None, 0)`` without finished runs.
    """
    changes = []
    for run in runs:
        if run.row.name != name or run.status != "ok":
            continue
        end = last_third(run.epochs, head, window)
        if end["ap_23"] is not None and end["ap_end"] is not None:
            changes.append(end["ap_end"] - end["ap_23"])
    return mean_std(changes)
