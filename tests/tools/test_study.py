"""Tests of the study runner (semipose.tools.study): study files, reading runs' metrics.jsonl,
the statistics, the claims and the report, and real tiny studies that are killed and started
again."""
import json
import os
import time
import types
from pathlib import Path

import pytest

from semipose.config import load_config
from semipose.tools.study import cli, launch, runs, spec, stats

REPO = Path(__file__).resolve().parents[2]
T0 = 1_764_000_000.0  # wall-clock stamp of the first hand-written epoch record


def _table(ap):
    return {"AP": ap, "Ap .5": 0.5, "AP .75": 0.1, "AP (M)": 0.2, "AP (L)": -1.0, "AR": 0.3}


def _iter_record(epoch, i, iteration):
    return {
        "type": "iter", "epoch": epoch, "iter": i, "iters": 19, "iteration": iteration,
        "loss": 0.0104, "loss_avg": 0.0104, "acc": 0.1, "acc_avg": 0.1, "lr": 0.002,
        "time": 2.937, "time_avg": 2.937, "data_time": 0.5, "data_time_avg": 0.5,
        "samples_per_s": 5.4, "loss_pose": 0.008, "loss_cons": 0.0024,
    }  # fmt: skip


def _epoch_record(epoch, stamp, loss, rate, lr, collapse, ap=None):
    rec = {
        "time": stamp, "type": "epoch", "epoch": epoch, "iteration": 19 * (epoch + 1),
        "elapsed_s": 50.0, "loss": loss, "acc": 0.2, "lr": lr, "samples_per_s": rate,
        "loss_pose": 0.006, "loss_cons": 0.0018,
    }  # fmt: skip
    if collapse:
        rec["collapse"] = {n: {"collapsed": c, "mean_max": p} for n, (c, p) in collapse.items()}
    if ap:
        rec["ap"] = dict(ap)
        rec["metrics"] = {head: _table(value) for head, value in ap.items()}
        rec.update(val_loss=0.001, val_acc=0.3, best_perf=max(ap.values()), best_epoch=epoch)
    return rec


#: a PoseDual run of two validated epochs, as JSONWriter writes it
DUAL = [
    _iter_record(0, 0, 0),
    _epoch_record(
        0, T0, 0.007861, 8.0, 0.002, {"net1": (0.038, 0.2744), "net2": (0.037, 0.2703)},
        {"net1": 0.012, "net2": 0.015, "ensemble": 0.018},
    ),
    _iter_record(1, 0, 19),
    _epoch_record(
        1, T0 + 60.0, 0.006556, 8.2, 0.0002, {"net1": (0.0, 0.3883), "net2": (0.125, 0.3838)},
        {"net1": 0.010, "net2": 0.020, "ensemble": 0.025},
    ),
]  # fmt: skip


def write_metrics(folder, records, tail=""):
    """Writes ``records`` as ``folder/metrics.jsonl`` (one JSON object a line) plus ``tail``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail, encoding="utf-8")
    return path


def test_read_run_epochs_ap_and_collapse(tmp_path):
    path, epochs = runs.read_run(tmp_path)
    assert (path, epochs) == (None, [])  # no metrics.jsonl: nothing recorded
    written = write_metrics(tmp_path, DUAL)
    path, epochs = runs.read_run(tmp_path)
    assert path == written
    assert [e["epoch"] for e in epochs] == [0, 1]
    first, second = epochs
    assert first["loss"] == pytest.approx(0.007861)
    assert first["lr"] == pytest.approx(0.002)
    assert first["samples_per_s"] == pytest.approx(8.0)
    assert first["wall_s"] == pytest.approx(50.0)  # the first record: its training seconds
    assert second["wall_s"] == pytest.approx(60.0)  # since the previous epoch record
    assert first["ap"] == pytest.approx(
        {"net1": 0.012, "net2": 0.015, "ensemble": 0.018, "mean": 0.0135, "papers": 0.0135})
    assert second["ap"] == pytest.approx(
        {"net1": 0.010, "net2": 0.020, "ensemble": 0.025, "mean": 0.015, "papers": 0.015})
    assert first["metrics"]["net1"]["Ap .5"] == pytest.approx(0.5)
    assert first["metrics"]["net1"]["AP (L)"] == pytest.approx(-1.0)
    assert first["collapse"]["net1"] == pytest.approx({"share": 0.038, "peak": 0.2744})
    assert second["collapse"]["net2"] == pytest.approx({"share": 0.125, "peak": 0.3838})


def test_supervised_partial_and_resumed_runs(tmp_path):
    not_validated = _epoch_record(0, T0, 0.01, 20.0, 0.002, None)  # TEST.INTERVAL > 1
    validated = _epoch_record(1, T0 + 30.0, 0.009, 21.0, 0.002, None, {"net1": 0.05})
    validated["metrics"]["net1"] = [_table(0.05), _table(0.5)]  # a mixed set: a list of tables
    repeated = dict(validated, ap={"net1": 0.06}, time=T0 + 90.0)  # the resumed run's record
    write_metrics(tmp_path, [not_validated, validated, repeated], tail='{"type": "ep')
    _, epochs = runs.read_run(tmp_path)
    assert len(epochs) == 2
    assert epochs[0]["ap"] == {} and epochs[0]["collapse"] == {} and epochs[0]["metrics"] == {}
    assert epochs[1]["ap"] == pytest.approx({"net1": 0.06, "papers": 0.06})  # the later record wins
    assert epochs[1]["metrics"]["net1"]["AP"] == pytest.approx(0.05)  # the first table
    summary = stats.final_summary(epochs)
    assert summary["ap_net1"] == pytest.approx(0.06)
    assert summary["ap_ensemble"] is None and summary["share"] is None
    assert runs.epochs_from_records([]) == []
    assert stats.final_summary([])["ap_net1"] is None


def test_metrics_watch_follows_a_run(tmp_path):
    path = tmp_path / "metrics.jsonl"
    watch = launch.MetricsWatch(path, start=T0 + 30.0)
    assert watch.new_epochs() == []  # not written yet
    write_metrics(tmp_path, DUAL[:2])  # an epoch stamped before the run started: an earlier run
    assert watch.new_epochs() == []
    write_metrics(tmp_path, DUAL)
    assert [r["epoch"] for r in watch.new_epochs()] == [1]
    assert watch.new_epochs() == []  # unchanged file
    old = time.time() - 3600
    os.utime(path, (old, old))
    stale = launch.MetricsWatch(path, start=time.time())
    assert stale.new_epochs() == []  # the file was last written before this run



def test_reads_a_real_training_run(synth_root, tmp_path, tiny_opts):
    """A one-epoch tiny training: the study finds its folder and reads the AP ``do_train``
    returned, per head, and net 1's collapse share from the run's metrics.jsonl."""
    from semipose.engine.launch import do_train

    opts = tiny_opts(synth_root, tmp_path)  # one epoch of two iterations
    cfg = load_config(None, opts)
    args = types.SimpleNamespace(cfg="tiny.yaml", opts=opts, distributed=False, local_rank=-1)
    out = do_train(cfg, args)
    folder = runs.run_folder(cfg, "tiny.yaml")
    assert folder.resolve() == Path(out["output_dir"]).resolve()
    path, epochs = runs.read_run(folder)
    assert path == folder / "metrics.jsonl"
    assert [e["epoch"] for e in epochs] == [0]
    last = out["last"]
    for head in ("net1", "net2", "ensemble"):
        assert epochs[0]["ap"][head] == float(last[head]["AP"])
        assert epochs[0]["metrics"][head]["Ap .5"] == float(last[head]["Ap .5"])
    share = epochs[0]["collapse"]["net1"]["share"]
    assert 0.0 <= share <= 1.0
    summary = stats.final_summary(epochs)
    assert summary["ap_net1"] == float(last["net1"]["AP"])
    assert summary["share"] == share and summary["epochs"] == 1


def test_easy_rows_have_configs_and_share_the_budget():
    easy = spec.load_study("easy")
    cfgs = {n: load_config(str(REPO / r.cfg), r.opts) for n, r in easy.rows.items()}
    for cfg in cfgs.values():
        assert (cfg.TRAIN.END_EPOCH, cfg.TRAIN.MAX_ITERS, cfg.DATASET.TRAIN_LEN) == (90, 8, 128)
        assert cfg.MODEL.BACKBONE == "lite" and cfg.DATASET.SYNTHETIC.PRESET == "easy"
    assert cfgs["supervised"].DATASET.TRAIN_DATASET == "coco"
    assert cfgs["posecons_hardteacher"].CONS_HARD_TEACHER
    assert cfgs["posedual_4paths"].HARD_AUG.PATHS == [["JC"], ["JO"], ["JOCO"], ["JCCM"]]
    assert cfgs["posedual_4paths_rel"].HARD_AUG.RELATIVE
    assert not cfgs["posedual_4paths"].HARD_AUG.RELATIVE
    four = cfgs["posedual_4paths"].clone()
    four.defrost()
    four.HARD_AUG.RELATIVE = True
    assert four == cfgs["posedual_4paths_rel"]  # the only difference
    assert (cfgs["posedual_jc"].MASK_JOINT_NUM, cfgs["posedual"].MASK_JOINT_NUM) == (3, 0)


@pytest.mark.parametrize("name", ["supervised", "posecons_hardteacher", "posedual_4paths"])
def test_easy_rows_train_one_iteration(name, tmp_path, easy_set_opts):
    """The easy study's configs (the plain rows differ from these in keys the demo test and the
    method tests cover) train one iteration and validate on a tiny easy set."""
    from semipose.engine.launch import do_train

    row = spec.load_study("easy").rows[name]
    cfg_path = str(REPO / row.cfg)
    opts = easy_set_opts(tmp_path, num_train=3, num_val=2) + [
        "TRAIN.END_EPOCH", "1", "TRAIN.MAX_ITERS", "1", "TRAIN.BATCH_SIZE", "2",
        "TEST.INTERVAL", "1", "SEED", "7",
    ]  # fmt: skip
    cfg = load_config(cfg_path, opts)
    args = types.SimpleNamespace(cfg=cfg_path, opts=opts, distributed=False, local_rank=-1)
    out = do_train(cfg, args)
    path, epochs = runs.read_run(runs.run_folder(cfg, cfg_path))
    assert path is not None and [e["epoch"] for e in epochs] == [0]
    assert epochs[0]["ap"]["net1"] == float(out["last"]["net1"]["AP"])
    assert ("ensemble" in epochs[0]["ap"]) == (name == "posedual_4paths")


def test_mean_std():
    assert stats.mean_std([0.1, 0.2, None, 0.3]) == (pytest.approx(0.2), pytest.approx(0.1), 3)
    assert stats.mean_std([0.4]) == (0.4, 0.0, 1)
    assert stats.mean_std([None]) == (None, None, 0)
    assert stats.fmt_pm([0.25, 0.35]) == "0.300 ± 0.071"
    assert stats.fmt_pm([0.01, 0.03], ".1f", 100, "%") == "2.0 ± 1.4%"




# --------------------------------------------------------------------------- study files


@pytest.mark.parametrize("name", ["paper", "easy", "hard"])
def test_the_studies_load_and_their_rows_build(name):
    s = spec.load_study(name)
    assert s.baselines and set(s.baselines) <= set(s.rows)
    for row in s.rows.values():
        cfg = load_config(str(REPO / row.cfg), row.opts)
        assert cfg.TRAIN.END_EPOCH > 0 and row.cost > 0


def test_paper_rows_differ_only_by_their_method():
    s = spec.load_study("paper")
    assert list(s.rows)[:10] == [
        "supervised", "posecons", "posecons_jc", "posedual", "posedual_jc", "hardteacher",
        "multiaugs_4path", "multiaugs_4path_mean", "ema", "sspcm"]
    cfgs = {n: load_config(str(REPO / r.cfg), r.opts) for n, r in s.rows.items()}
    for cfg in cfgs.values():  # one data set, one start, one budget
        assert cfg.DATASET.ROOT == "data/synthetic_paper/" and cfg.DATASET.TRAIN_LEN == 64
        assert cfg.MODEL.PRETRAINED == str(s.pretrain["file"]) and cfg.MODEL.INIT_WEIGHTS
        assert (cfg.TRAIN.END_EPOCH, cfg.TRAIN.MAX_ITERS, cfg.TRAIN.BATCH_SIZE) == (15, 8, 8)
        assert cfg.MODEL.EXTRA.PRETRAINED_LAYERS == ["*"]
        assert cfg.DATASET.SYNTHETIC.PRESET == "hard"
    assert cfgs["supervised"].DATASET.TRAIN_DATASET == "coco"
    assert cfgs["posedual_jc"].MASK_JOINT_NUM == 5 and cfgs["posedual"].MASK_JOINT_NUM == 0
    assert cfgs["hardteacher"].CONS_HARD_TEACHER
    assert cfgs["multiaugs_4path"].HARD_AUG.PATHS == [["JC"], ["JO"], ["JOCO"], ["JCCM"]]
    mean = cfgs["multiaugs_4path_mean"].clone()
    mean.defrost()
    mean.HARD_AUG.PATH_REDUCTION = "sum"
    assert mean == cfgs["multiaugs_4path"]  # the only difference
    assert cfgs["ema"].EMA.ENABLED and cfgs["sspcm"].MODEL.NAME == "sspcm"
    pre = load_config(str(REPO / s.pretrain["cfg"]))
    assert pre.DATASET.ROOT != cfgs["posedual"].DATASET.ROOT  # the start saw none of the study


def test_bad_study_files_name_file_and_key(tmp_path):
    def write(text):
        path = tmp_path / "s.yaml"
        path.write_text(text)
        return str(path)

    with pytest.raises(spec.StudyError, match="no study 'nope'.*studies: .*paper"):
        spec.load_study("nope")
    with pytest.raises(spec.StudyError, match="needs a 'rows' mapping"):
        spec.load_study(write("seeds: [1]\n"))
    with pytest.raises(spec.StudyError, match=r"rows.a.cfg: no such file missing.yaml"):
        spec.load_study(write("rows:\n  a: {cfg: missing.yaml}\n"))
    base = "rows:\n  a: {cfg: experiments/studies/paper/base.yaml}\n"
    with pytest.raises(spec.StudyError, match=r"baselines \['b'\] are not rows"):
        spec.load_study(write(base + "baselines: [b]\n"))
    with pytest.raises(spec.StudyError, match="unknown keys \\['sedes'\\]"):
        spec.load_study(write(base + "sedes: [1]\n"))
    with pytest.raises(spec.StudyError, match="seeds must be a non-empty list"):
        spec.load_study(write(base + "seeds: 3\n"))
    with pytest.raises(spec.StudyError, match="rows.a: opts must be a mapping"):
        spec.load_study(write("rows:\n  a: {cfg: experiments/studies/paper/base.yaml, "
                               "opts: [A]}\n"))
    with pytest.raises(SystemExit):
        cli.parse_args(["--study", "paper", "--rows", "posedual_sameview"])  # a hard-study row
    with pytest.raises(SystemExit):
        cli.parse_args(["--study", "paper", "--seeds", "1", "1"])


def test_opts_become_override_strings():
    assert spec._opts_list({"A": [["JC"], ["JO"]], "B": True, "C": "x", "D": 0.5}, "w") == [
        "A", "[['JC'], ['JO']]", "B", "True", "C", "x", "D", "0.5"]
    assert spec._opts_list(["A", 1], "w") == ["A", "1"]
    assert spec._opts_list(None, "w") == []


# --------------------------------------------------------------------------- statistics


def test_run_minutes_counts_a_paused_epoch_as_the_median():
    # 10 epochs of 3 s, every 5th with a 10 s validation on top; epoch 6 resumed 4 hours later
    epochs = [{"wall_s": 13.0 if k % 5 == 4 else 3.0, "ap": {"net1": 0.1} if k % 5 == 4 else {}}
              for k in range(10)]
    assert stats.run_minutes(epochs) == pytest.approx((8 * 3.0 + 2 * 13.0) / 60)
    assert stats.pauses_in(epochs) == 0
    epochs[6]["wall_s"] = 4 * 3600.0
    assert stats.run_minutes(epochs) == pytest.approx((8 * 3.0 + 2 * 13.0) / 60)
    assert stats.pauses_in(epochs) == 1
    epochs[9]["wall_s"] = 3600.0  # a held validation epoch counts as the validation median
    assert stats.run_minutes(epochs) == pytest.approx((8 * 3.0 + 2 * 13.0) / 60)
    assert stats.pauses_in(epochs) == 2
    assert stats.run_minutes([]) is None


def test_paired_differences():
    p = stats.paired({1: 0.30, 2: 0.34, 3: 0.31, 4: None}, {1: 0.25, 2: 0.30, 3: 0.32, 5: 0.2})
    # differences +0.05, +0.04, -0.01 over the seeds both have
    assert p["n"] == 3 and p["agree"] == 2
    assert p["mean"] == pytest.approx(0.08 / 3)
    std = ((0.05 - 0.08 / 3) ** 2 + (0.04 - 0.08 / 3) ** 2 + (-0.01 - 0.08 / 3) ** 2) / 2
    assert p["se"] == pytest.approx((std ** 0.5) / 3 ** 0.5)
    assert p["t"] == pytest.approx(p["mean"] / p["se"])
    one = stats.paired({1: 0.3}, {1: 0.2})
    assert one["n"] == 1 and one["se"] is None and one["t"] is None and one["agree"] == 1
    assert stats.paired({}, {1: 0.2})["n"] == 0


def test_last_third_reads_ap_and_labeled_loss():
    epochs = [{"epoch": i, "loss_pose": 1.0 - i / 10, "ap": {"net1": i / 100} if i % 3 == 2
               else {}} for i in range(10)]
    end = stats.last_third(epochs)
    # two thirds of epochs 0..9 is epoch 6; the nearest validated epoch is 5; windows of 1 epoch
    assert end["ap_23"] == pytest.approx(0.05) and end["ap_end"] == pytest.approx(0.08)
    assert end["loss_23"] == pytest.approx(0.4) and end["loss_end"] == pytest.approx(0.1)
    assert stats.last_third([])["ap_end"] is None
    # validated epochs 2, 5, 8: a window of 2 averages 2 and 5 at two thirds, 5 and 8 at the end
    end = stats.last_third(epochs, window=2)
    assert end["ap_23"] == pytest.approx(0.035) and end["ap_end"] == pytest.approx(0.065)


def _curve(values, head="net1"):
    return [{"epoch": i, "ap": {head: v}, "collapse": {}, "loss_pose": None}
            for i, v in enumerate(values)]


def test_reported_ap_is_the_mean_of_the_last_validations():
    epochs = _curve([0.10, 0.20, 0.30, 0.50])
    assert stats.final_summary(epochs)["ap_net1"] == pytest.approx(0.50)
    assert stats.final_summary(epochs, last=3)["ap_net1"] == pytest.approx(1.0 / 3)
    assert stats.final_summary(epochs, last=9)["ap_net1"] == pytest.approx(0.275)  # all four
    two = [{"epoch": 0, "ap": {"net1": 0.2, "net2": 0.4, "mean": 0.3, "papers": 0.3},
            "collapse": {}}, {"epoch": 1, "ap": {"net1": 0.4}, "collapse": {}}]
    # a head missing from one of the averaged validations is not reported
    assert stats.final_summary(two, last=2)["ap"] == pytest.approx({"net1": 0.3})


def test_claim_verdicts_need_two_standard_errors():
    base = {1: 0.10, 2: 0.12, 3: 0.11, 4: 0.13}
    shown = stats.claim_verdict({1: 0.13, 2: 0.14, 3: 0.15, 4: 0.15}, base)
    assert shown["verdict"] == "shown" and shown["mean"] - 2 * shown["se"] > 0
    noisy = stats.claim_verdict({1: 0.16, 2: 0.10, 3: 0.10, 4: 0.15}, base)
    assert noisy["mean"] > 0 and noisy["verdict"] == "not shown"
    opposite = stats.claim_verdict(base, {1: 0.13, 2: 0.14, 3: 0.15, 4: 0.15})
    assert opposite["verdict"] == "opposite shown"
    assert stats.claim_verdict({1: 0.3}, {1: 0.1})["verdict"] == "too few seeds"
    assert stats.claim_verdict({1: 0.3, 2: 0.2}, {3: 0.1})["verdict"] == "too few seeds"


def test_regime_change_averages_the_seeds_of_a_row(tmp_path):
    sup = spec.Row(name="sup", cfg=Path("x.yaml"), opts=[], method="Supervised")
    dual = spec.Row(name="dual", cfg=Path("x.yaml"), opts=[], method="PoseDual")

    def run(row, seed, values, done=True):
        folder = tmp_path / row.name / str(seed)
        folder.mkdir(parents=True)
        if done:
            (folder / runs.FINAL_STATE).write_bytes(b"")
        return runs.Run(row=row, seed=seed, out_dir=folder, opts=[], folder=folder,
                        end_epoch=len(values), epochs=_curve(values))

    # six validations: two thirds of epochs 0..5 is epoch 3.33, nearest 3; windows of two
    planned = [run(sup, 1, [0.1, 0.2, 0.3, 0.30, 0.32, 0.30]),
               run(sup, 2, [0.1, 0.2, 0.3, 0.34, 0.36, 0.36]),
               run(sup, 3, [0.1, 0.1, 0.1, 0.1, 0.9, 0.9], done=False),  # unfinished: left out
               run(dual, 1, [0.1, 0.1, 0.1, 0.1, 0.5, 0.5])]
    mean, std, n = stats.regime_change(planned, "sup", "net1", window=2)
    # seed 1: (0.32 + 0.30) / 2 - (0.3 + 0.30) / 2 = 0.01; seed 2: 0.36 - 0.32 = 0.04
    assert n == 2 and mean == pytest.approx(0.025) and std == pytest.approx(0.03 / 2 ** 0.5)
    assert stats.regime_change(planned, "none", "net1") == (None, None, 0)


def test_seed_rounds_and_shared_opts_of_study_paper_long(tmp_path):
    s = spec.load_study("paper_long")
    assert s.head == "papers" and s.average_last == 3 and s.regime_row == "supervised"
    assert len(s.claims) == 8 and {c["row"] for c in s.claims} <= set(s.rows)
    planned = runs.plan_runs(s, list(s.rows), None, tmp_path)
    key = ("supervised", "posecons", "posecons_jc", "posedual", "posedual_jc")
    assert {r.row.name: runs.row_seeds(s, r.row.name) for r in planned} == {
        name: [1, 2, 3, 4, 5] if name in key else [1, 2, 3] for name in s.rows}
    assert len(planned) == 5 * 5 + 5 * 3
    order = runs.execution_order(planned)
    # every row's first seed before any second seed, the costliest first within a round
    assert [r.seed for r in order[:10]] == [1] * 10 and order[0].row.name == "multiaugs_4path"
    assert [r.seed for r in order[-10:]] == [4] * 5 + [5] * 5
    assert [r.row.cost for r in order[:10]] == sorted((r.row.cost for r in order[:10]),
                                                      reverse=True)
    # the study's opts come first, the row's after them, the run's place last
    sup = next(r for r in planned if r.row.name == "supervised")
    assert sup.opts[:2] == ["DATASET.ROOT", "data/synthetic_paper_long/"]
    assert sup.opts.index("TRAIN.END_EPOCH") < sup.opts.index("MODEL.NAME") < sup.opts.index(
        "OUTPUT_DIR")
    cfg = load_config(str(REPO / sup.row.cfg), sup.opts)
    assert (cfg.TRAIN.END_EPOCH, cfg.TEST.INTERVAL, cfg.DATASET.SYNTHETIC.NUM_VAL) == (120, 10, 440)
    assert sup.average_last == 3


def test_epochs_keep_the_number_of_validations(tmp_path):
    assert runs.scaled_interval(3, 15, 120) == 24  # study paper at 8x: 5 validations, as at 1x
    assert runs.scaled_interval(3, 15, 60) == 12 and runs.scaled_interval(3, 15, 15) == 3
    assert runs.scaled_interval(10, 120, 5) == 1 and runs.scaled_interval(3, 15, 0) == 3
    s = spec.load_study("paper")
    longer = runs.plan_runs(s, ["supervised", "posedual"], [1], tmp_path, epochs=120)
    for run in longer:
        cfg = load_config(str(REPO / run.row.cfg), run.opts)
        assert (cfg.TRAIN.END_EPOCH, cfg.TEST.INTERVAL) == (120, 24)
    # a trailing TEST.INTERVAL wins; without --epochs the config's interval stays
    mine = runs.plan_runs(s, ["supervised"], [1], tmp_path, epochs=120,
                          extra=["TEST.INTERVAL", "10"])[0]
    assert load_config(str(REPO / mine.row.cfg), mine.opts).TEST.INTERVAL == 10
    plain = runs.plan_runs(s, ["supervised"], [1], tmp_path)[0]
    assert "TEST.INTERVAL" not in plain.opts
    assert load_config(str(REPO / plain.row.cfg), plain.opts).TEST.INTERVAL == 3
    # the interval does not change what a run trains: same digest as the 8x run validated every 3rd
    dense = runs.plan_runs(s, ["supervised"], [1], tmp_path, epochs=120,
                           extra=["TEST.INTERVAL", "3"])[0]
    assert dense.digest == longer[0].digest
    # nor does where the loader's worker runs (WORKERS_INLINE: the same numbers)
    procs = runs.plan_runs(s, ["supervised"], [1], tmp_path, epochs=120,
                           extra=["WORKERS_INLINE", "false"])[0]
    assert procs.digest == longer[0].digest


def test_validating_less_often_trains_the_same_run(synth_root, tmp_path, tiny_opts):
    """What ``scaled_interval`` relies on: two tiny PoseDual runs of two epochs, one validated
    after each epoch and one after the last only, end with the same loss and the same AP."""
    from semipose.engine.launch import do_train

    ends = []
    for interval in (1, 2):
        opts = tiny_opts(synth_root, tmp_path / f"every{interval}", epochs=2, iters=1,
                         extra=["TEST.INTERVAL", str(interval)])
        cfg = load_config(None, opts)
        args = types.SimpleNamespace(cfg="tiny.yaml", opts=opts, distributed=False, local_rank=-1)
        do_train(cfg, args)
        _, epochs = runs.read_run(runs.run_folder(cfg, "tiny.yaml"))
        assert [bool(e["ap"]) for e in epochs] == ([True, True] if interval == 1 else [False, True])
        ends.append((epochs[-1]["loss"], epochs[-1]["ap"]))
    assert ends[0] == ends[1]


# --------------------------------------------------------------------------- running a study


def _tiny_study(tmp_path, tiny_opts, synth_root, epochs=2):
    """A two-row study file over the tiny synthetic set: Supervised and PoseDual, ``epochs`` epochs
    of one iteration, two seeds by default."""
    base = tmp_path / "base.yaml"
    base.write_text("MODEL:\n  NAME: pose_dual\n")
    dual = tiny_opts(synth_root, tmp_path / "unused", epochs=epochs, iters=1)
    sup = tiny_opts(synth_root, tmp_path / "unused", "pose_resnet", epochs=epochs, iters=1)
    study_file = {
        "title": "tiny", "seeds": [3, 4], "output": str(tmp_path / "runs"), "cfg": str(base),
        "results": str(tmp_path / "report.md"), "baselines": ["sup"],
        "claims": [{"claim": "PoseDual > Supervised", "row": "dual", "over": "sup"}],
        "regime": {"row": "sup", "tolerance": 0.005},
        "rows": {"sup": {"method": "Supervised", "cost": 3, "opts": sup},
                 "dual": {"method": "PoseDual", "aug": "Affine", "cost": 14, "opts": dual}},
    }
    path = tmp_path / "tiny_study.yaml"
    path.write_text(json.dumps(study_file))  # JSON is YAML
    return path


def _epoch_records(run_dir):
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if '"type": "epoch"' in line]


def test_killed_study_trains_only_what_is_missing(tmp_path, tiny_opts, synth_root):
    """A study killed (SIGKILL) during its first run's second epoch, started again, resumes that
    run after its first epoch and trains the other; a third start trains nothing."""
    import signal
    import subprocess
    import sys

    path = _tiny_study(tmp_path, tiny_opts, synth_root)
    cmd = [sys.executable, "-m", "semipose.tools.study", "--study", str(path),
           "--seeds", "3", "--no-plot", "WORKERS", "0"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    dual_dir = runs.plan_runs(spec.load_study(str(path)), ["dual"], [3],
                               tmp_path / "runs")[0].folder
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:  # the costliest row (dual) runs first
        if (dual_dir / "metrics.jsonl").is_file() and _epoch_records(dual_dir):
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    first = _epoch_records(dual_dir)
    assert [r["epoch"] for r in first] == [0]  # killed after its first epoch
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 runs (2 rows, 1 seeds), 0 finished before, 2 to train" in out.stdout
    assert "=== dual/seed3 (resuming after epoch 0)" in out.stdout
    records = _epoch_records(dual_dir)
    assert [r["epoch"] for r in records] == [0, 1]  # epoch 0 was not trained again
    assert records[0] == first[0]
    report = (tmp_path / "report.md").read_text()
    assert "| PoseDual | Affine |" in report and "Paired against **sup**" in report
    assert "paired differences against sup" in out.stdout
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("*.pth.tar")}
    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 to train" in again.stdout and "finished before, skipped" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing was written


def test_study_refuses_a_folder_trained_otherwise(tmp_path, tiny_opts, synth_root):
    s = spec.load_study(str(_tiny_study(tmp_path, tiny_opts, synth_root)))
    run = runs.plan_runs(s, ["sup"], [3], tmp_path / "runs")[0]
    runs.check_manifest(run, fresh=False)
    other = runs.plan_runs(s, ["sup"], [3], tmp_path / "runs", extra=["TRAIN.LR", "0.5"])[0]
    with pytest.raises(spec.StudyError, match="sup/seed3: .* holds a run with other settings"):
        runs.check_manifest(other, fresh=False)
    runs.check_manifest(other, fresh=True)  # --fresh retrains it, and records the new settings
    assert "0.5" in (Path(run.out_dir) / "study_run.json").read_text()
    # a longer budget is not other settings: the run resumes and goes on
    longer = runs.plan_runs(s, ["sup"], [3], tmp_path / "runs", epochs=5,
                             extra=["TRAIN.LR", "0.5"])[0]
    runs.check_manifest(longer, fresh=False)
    # an edit of the base YAML changes what the same command trains: refused as well
    (tmp_path / "base.yaml").write_text("MODEL:\n  NAME: pose_dual\nTRAIN:\n  WD: 0.5\n")
    edited = runs.plan_runs(s, ["sup"], [3], tmp_path / "runs", epochs=5,
                             extra=["TRAIN.LR", "0.5"])[0]
    assert edited.opts == longer.opts and edited.digest != longer.digest
    with pytest.raises(spec.StudyError, match="config digest"):
        runs.check_manifest(edited, fresh=False)


def test_report_claims_and_plots_from_the_runs_records(tmp_path, tiny_opts, synth_root):
    """The report of a finished study read from its runs' records (``--parse-only``): the rows'
    AP as the mean of the last two validations, the claim with its paired difference, standard
    error and verdict, the regime check, the paired table, the curves, every command and both
    plots."""
    path = _tiny_study(tmp_path, tiny_opts, synth_root, epochs=4)
    data = json.loads(path.read_text())
    data.update(seeds=[3, 4, 5], average_last=2)
    path.write_text(json.dumps(data))
    s = spec.load_study(str(path))
    # validations at epochs 1 and 3; sup ends flat, dual above it by +0.05 / +0.04 / +0.06
    curves = {"sup": {3: (0.20, 0.21), 4: (0.22, 0.21), 5: (0.19, 0.20)},
              "dual": {3: (0.24, 0.27), 4: (0.24, 0.26), 5: (0.24, 0.27)}}
    for run in runs.plan_runs(s, list(s.rows), None, tmp_path / "runs"):
        first, last = curves[run.row.name][run.seed]
        heads = ("net1", "net2") if run.row.name == "dual" else ("net1",)
        write_metrics(run.folder, [
            _epoch_record(e, T0 + 60 * e, 0.01, 8.0, 0.002, {},
                          {h: v for h in heads} if v is not None else None)
            for e, v in enumerate((None, first, None, last))])
        (run.folder / runs.FINAL_STATE).write_bytes(b"")
    assert cli.main(["--study", str(path), "--parse-only", "--plot",
                     str(tmp_path / "p.png")]) == 0
    report = (tmp_path / "report.md").read_text()
    # reported AP: the mean of the two validations; dual − sup = +0.05, +0.035, +0.06
    p = stats.claim_verdict({3: 0.255, 4: 0.25, 5: 0.255}, {3: 0.205, 4: 0.215, 5: 0.195})
    assert p["mean"] == pytest.approx(0.145 / 3) and p["se"] == pytest.approx(0.0073, abs=1e-4)
    assert p["verdict"] == "shown" and p["n"] == 3 and p["agree"] == 3
    assert (f"| PoseDual > Supervised | dual − sup | {p['mean']:+.3f} | {p['se']:.3f} | 3 of 3 | "
            "shown |") in report
    assert f"| dual | {p['mean']:+.3f} | {p['se']:.3f} |" in report  # paired against sup
    assert "the mean of the last 2 validations" in report
    assert "| Supervised | — | 0.205 ± 0.010 |" in report
    # regime: two thirds of epochs 0..3 is nearest the validation at epoch 1 (its window: it
    # alone), the end is the mean of both: +0.005, -0.005, +0.005 over the seeds
    assert "Regime check: **sup**'s AP (net1) changes by +0.002 ± 0.006" in report
    assert "within it: the row has stopped rising" in report
    for run in runs.plan_runs(s, list(s.rows), None, tmp_path / "runs"):
        assert runs.printable(run.cmd) in report
    import cv2

    for name in ("p.png", "p_cost.png"):
        img = cv2.imread(str(tmp_path / name))
        assert img is not None and (img < 250).any(axis=2).mean() > 0.01, name


def test_bad_settings_stop_the_study_before_any_run(tmp_path, tiny_opts, synth_root):
    s = spec.load_study(str(_tiny_study(tmp_path, tiny_opts, synth_root)))
    planned = runs.plan_runs(s, ["sup", "dual"], [3], tmp_path / "runs",
                             extra=["MODEL.IMAGE_SIZE", "[40, 64]"])
    with pytest.raises(spec.StudyError, match=r"sup/seed3: MODEL.IMAGE_SIZE \[40, 64\]"):
        runs.check_settings(planned)
    runs.check_settings(runs.plan_runs(s, ["sup", "dual"], [3], tmp_path / "runs"))


def test_prepare_steps_run_once_and_again_when_their_files_go(tmp_path):
    marker = tmp_path / "made.txt"
    count = tmp_path / "count.txt"
    script = (f"import pathlib; c = pathlib.Path({str(count)!r}); "
              f"c.write_text(str(int(c.read_text()) + 1) if c.exists() else '1'); "
              f"pathlib.Path({str(marker)!r}).write_text('x')")
    path = tmp_path / "s.yaml"
    path.write_text(json.dumps({
        "rows": {"a": {"cfg": "experiments/studies/paper/base.yaml"}},
        "prepare": [{"command": ["python", "-c", script], "creates": str(marker)}]}))
    s = spec.load_study(str(path))
    assert s.prepare[0]["creates"] == [marker]
    launch.ensure_prepared(s, tmp_path / "out")
    launch.ensure_prepared(s, tmp_path / "out")  # stamp and file there: not again
    assert count.read_text() == "1" and (tmp_path / "out/prepare0.json").is_file()
    marker.unlink()
    launch.ensure_prepared(s, tmp_path / "out")
    assert count.read_text() == "2"
    path.write_text(json.dumps({
        "rows": {"a": {"cfg": "experiments/studies/paper/base.yaml"}},
        "prepare": [{"command": ["python", "-c", "import sys; print('no disk'); sys.exit(3)"]}]}))
    with pytest.raises(spec.StudyError, match=r"prepare\[0\] failed \(exit 3\): no disk"):
        launch.ensure_prepared(spec.load_study(str(path)), tmp_path / "out2")
    assert not (tmp_path / "out2/prepare0.json").exists()
    with pytest.raises(spec.StudyError, match="prepare"):
        path.write_text(json.dumps({"rows": {"a": {"cfg": "experiments/studies/paper/base.yaml"}},
                                    "prepare": [{"creates": "x"}]}))
        spec.load_study(str(path))
