"""Tests of bench/collapse_study.py: reading runs' metrics.jsonl, the summary and the report, and
one real tiny training whose metrics the study reads back."""
import importlib.util
import json
import os
import time
import types
from pathlib import Path

import pytest

from semipose.config import load_config

REPO = Path(__file__).resolve().parents[2]
T0 = 1_764_000_000.0  # wall-clock stamp of the first hand-written epoch record


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location(
        "collapse_study", REPO / "bench" / "collapse_study.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def test_read_run_epochs_ap_and_collapse(study, tmp_path):
    path, epochs = study.read_run(tmp_path)
    assert (path, epochs) == (None, [])  # no metrics.jsonl: nothing recorded
    written = write_metrics(tmp_path, DUAL)
    path, epochs = study.read_run(tmp_path)
    assert path == written
    assert [e["epoch"] for e in epochs] == [0, 1]
    first, second = epochs
    assert first["loss"] == pytest.approx(0.007861)
    assert first["lr"] == pytest.approx(0.002)
    assert first["samples_per_s"] == pytest.approx(8.0)
    assert first["wall_s"] == pytest.approx(50.0)  # the first record: its training seconds
    assert second["wall_s"] == pytest.approx(60.0)  # since the previous epoch record
    assert first["ap"] == pytest.approx({"net1": 0.012, "net2": 0.015, "ensemble": 0.018})
    assert second["ap"] == pytest.approx({"net1": 0.010, "net2": 0.020, "ensemble": 0.025})
    assert first["metrics"]["net1"]["Ap .5"] == pytest.approx(0.5)
    assert first["metrics"]["net1"]["AP (L)"] == pytest.approx(-1.0)
    assert first["collapse"]["net1"] == pytest.approx({"share": 0.038, "peak": 0.2744})
    assert second["collapse"]["net2"] == pytest.approx({"share": 0.125, "peak": 0.3838})


def test_supervised_partial_and_resumed_runs(study, tmp_path):
    not_validated = _epoch_record(0, T0, 0.01, 20.0, 0.002, None)  # TEST.INTERVAL > 1
    validated = _epoch_record(1, T0 + 30.0, 0.009, 21.0, 0.002, None, {"net1": 0.05})
    validated["metrics"]["net1"] = [_table(0.05), _table(0.5)]  # a mixed set: a list of tables
    repeated = dict(validated, ap={"net1": 0.06}, time=T0 + 90.0)  # the resumed run's record
    write_metrics(tmp_path, [not_validated, validated, repeated], tail='{"type": "ep')
    _, epochs = study.read_run(tmp_path)
    assert len(epochs) == 2
    assert epochs[0]["ap"] == {} and epochs[0]["collapse"] == {} and epochs[0]["metrics"] == {}
    assert epochs[1]["ap"] == pytest.approx({"net1": 0.06})  # the later record wins
    assert epochs[1]["metrics"]["net1"]["AP"] == pytest.approx(0.05)  # the first table
    summary = study.final_summary(epochs)
    assert summary["ap_net1"] == pytest.approx(0.06)
    assert summary["ap_ensemble"] is None and summary["share"] is None
    assert study.epochs_from_records([]) == []
    assert study.final_summary([])["ap_net1"] is None


def test_final_summary_and_render(study, tmp_path):
    path = write_metrics(tmp_path, DUAL)
    epochs = study.read_run(tmp_path)[1]
    s = study.final_summary(epochs)
    assert s["ap_net1"] == pytest.approx(0.010)
    assert s["ap_ensemble"] == pytest.approx(0.025)
    assert (s["best_net1"], s["best_epoch"]) == (pytest.approx(0.012), 0)
    assert s["share"] == pytest.approx(0.0) and s["peak"] == pytest.approx(0.3883)
    assert s["epochs"] == 2
    results = {
        "posedual_jc": {"epochs": epochs, "rc": 0, "metrics": path, "wall_s": 120.0},
        "supervised": {"epochs": [], "rc": 1, "metrics": None, "wall_s": 5.0},
    }
    md = study.render_results(results, "python bench/collapse_study.py", "m", "d", 60)
    header = (
        "| Method | Aug | AP (net1) | AP (ensemble) | final background share | mean teacher peak |"
    )
    assert header in md
    row = "| PoseDual | Affine + Joint Cutout | 0.010 (best 0.012 @ 0) | 0.025 | 0.0% | 0.3883 |"
    assert row in md
    assert "| Supervised | — | failed (exit 1) |" in md
    assert "`python bench/collapse_study.py`" in md
    per_epoch = "| 1 | 0.006556 | 0.010 | 0.020 | 0.025 | 0.0% | 0.3883 | 12.5% | 0.3838 | 60 |"
    assert per_epoch in md
    assert f"metrics `{path}`" in md and "no metrics.jsonl found" in md
    line = study.epoch_line(epochs[1])
    assert line.startswith("epoch 1: loss 0.006556, 8.2 samples/s, AP net1 0.010")
    assert "net2 collapsed 12.5% (teacher peak 0.3838)" in line


def test_rows_have_configs(study):
    for row in study.ROWS.values():
        assert (REPO / study.STUDY_DIR / f"{row.cfg}.yaml").is_file()


def test_row_folders_are_distinct(study, tmp_path):
    """'..._PoseCons' and '..._PoseCons_JointCut' (one name a prefix of the other) get their own
    run folders, named as the trainer names them."""
    opts = ["OUTPUT_DIR", str(tmp_path)]
    folders = {
        cfg: study.row_folder(study.STUDY_DIR / f"{cfg}.yaml", opts)
        for cfg in ("96x64_SYN300_PoseCons", "96x64_SYN300_PoseCons_JointCut")
    }
    for cfg, folder in folders.items():
        assert folder == tmp_path / "mix_coco_coco" / "pose_cons_18" / cfg
    relative = study.row_folder(study.STUDY_DIR / "96x64_SYN300_Supervised.yaml", [])
    assert relative.parent.parent.parent == REPO / "output"  # the YAML's OUTPUT_DIR: output


def test_metrics_watch_follows_a_run(study, tmp_path):
    path = tmp_path / "metrics.jsonl"
    watch = study.MetricsWatch(path, start=T0 + 30.0)
    assert watch.new_epochs() == []  # not written yet
    write_metrics(tmp_path, DUAL[:2])  # an epoch stamped before the run started: an earlier run
    assert watch.new_epochs() == []
    write_metrics(tmp_path, DUAL)
    assert [r["epoch"] for r in watch.new_epochs()] == [1]
    assert watch.new_epochs() == []  # unchanged file
    old = time.time() - 3600
    os.utime(path, (old, old))
    stale = study.MetricsWatch(path, start=time.time())
    assert stale.new_epochs() == []  # the file was last written before this run


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    from semipose.dataset.synthetic import generate

    root = tmp_path_factory.mktemp("synth")
    generate(str(root), num_train=6, num_val=3, image_size=(160, 120), seed=3)
    return root


def test_reads_a_real_training_run(study, synth_root, tmp_path, tiny_opts):
    """A one-epoch tiny training: the study finds its folder and reads the AP ``do_train``
    returned, per head, and net 1's collapse share from the run's metrics.jsonl."""
    from semipose.engine.trainer import do_train

    opts = tiny_opts(synth_root, tmp_path)  # one epoch of two iterations
    cfg = load_config(None, opts)
    args = types.SimpleNamespace(cfg="tiny.yaml", opts=opts, distributed=False, local_rank=-1)
    out = do_train(cfg, args)
    folder = study.run_folder(cfg, "tiny.yaml")
    assert folder.resolve() == Path(out["output_dir"]).resolve()
    path, epochs = study.read_run(folder)
    assert path == folder / "metrics.jsonl"
    assert [e["epoch"] for e in epochs] == [0]
    last = out["last"]
    for head in ("net1", "net2", "ensemble"):
        assert epochs[0]["ap"][head] == float(last[head]["AP"])
        assert epochs[0]["metrics"][head]["Ap .5"] == float(last[head]["Ap .5"])
    share = epochs[0]["collapse"]["net1"]["share"]
    assert 0.0 <= share <= 1.0
    summary = study.final_summary(epochs)
    assert summary["ap_net1"] == float(last["net1"]["AP"])
    assert summary["share"] == share and summary["epochs"] == 1


# --------------------------------------------------------------------------- the easy study, seeds


def test_easy_rows_have_configs_and_share_the_budget(study):
    easy = study.STUDIES["easy"]
    cfgs = {n: load_config(str(REPO / easy.folder / f"{r.cfg}.yaml")) for n, r in easy.rows.items()}
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
def test_easy_rows_train_one_iteration(study, name, tmp_path, easy_set_opts):
    """The easy study's configs (the plain rows differ from these in keys the demo test and the
    method tests cover) train one iteration and validate on a tiny easy set."""
    from semipose.engine.trainer import do_train

    row = study.STUDIES["easy"].rows[name]
    cfg_path = str(REPO / study.STUDIES["easy"].folder / f"{row.cfg}.yaml")
    opts = easy_set_opts(tmp_path, num_train=3, num_val=2) + [
        "TRAIN.END_EPOCH", "1", "TRAIN.MAX_ITERS", "1", "TRAIN.BATCH_SIZE", "2",
        "TEST.INTERVAL", "1", "SEED", "7",
    ]  # fmt: skip
    cfg = load_config(cfg_path, opts)
    args = types.SimpleNamespace(cfg=cfg_path, opts=opts, distributed=False, local_rank=-1)
    out = do_train(cfg, args)
    path, epochs = study.read_run(study.run_folder(cfg, cfg_path))
    assert path is not None and [e["epoch"] for e in epochs] == [0]
    assert epochs[0]["ap"]["net1"] == float(out["last"]["net1"]["AP"])
    assert ("ensemble" in epochs[0]["ap"]) == (name == "posedual_4paths")


def test_seed_overrides_and_folders(study, tmp_path):
    args = study.parse_args(["--study", "easy", "--rows", "posedual", "--seeds", "1", "2",
                             "--output", str(tmp_path), "WORKERS", "0"])
    assert args.study is study.STUDIES["easy"] and args.seeds == [1, 2]
    # the generated report never overwrites the hand-written docs/RESULTS.md by default
    assert args.results == REPO / "docs/results/collapse_study_easy.md"
    assert args.plot == REPO / "docs/collapse_study_easy.png"
    hard = study.parse_args([])
    assert hard.results == REPO / "docs/results/collapse_study_hard.md" and hard.seeds is None
    cfg_path = args.study.folder / "128x96_EASY128_PoseDual.yaml"
    opts = study.row_overrides(args, cfg_path, seed=2)
    assert opts[:6] == ["OUTPUT_DIR", str(tmp_path / "seed2"), "LOG_DIR",
                        str(tmp_path / "seed2" / "tb"), "SEED", "2"]
    assert opts[-2:] == ["WORKERS", "0"]
    folder = study.row_folder(cfg_path, opts)
    assert folder == (tmp_path / "seed2" / "mix_coco_coco" / "pose_dual_lite32"
                      / "128x96_EASY128_PoseDual")
    assert study.row_overrides(args, cfg_path)[:2] == ["OUTPUT_DIR", str(tmp_path)]
    with pytest.raises(SystemExit):
        study.parse_args(["--study", "easy", "--rows", "posedual_sameview"])  # a hard-study row
    with pytest.raises(SystemExit):
        study.parse_args(["--seeds", "1", "1"])


def test_mean_std(study):
    assert study.mean_std([0.1, 0.2, None, 0.3]) == (pytest.approx(0.2), pytest.approx(0.1), 3)
    assert study.mean_std([0.4]) == (0.4, 0.0, 1)
    assert study.mean_std([None]) == (None, None, 0)
    assert study._pm([0.25, 0.35]) == "0.300 ± 0.071"
    assert study._pm([0.01, 0.03], ".1f", 100, "%") == "2.0 ± 1.4%"


def _seed_run(study, tmp_path, seed, net1, net2=None, share=0.0):
    """A two-epoch run with ``net1`` / ``net2`` AP lists (epochs 0 and 1) written to its own
    folder; returns ``collect_runs``' per-row entry."""
    records = []
    for epoch in (0, 1):
        ap = {"net1": net1[epoch]}
        if net2:
            ap.update(net2=net2[epoch], ensemble=(net1[epoch] + net2[epoch]) / 2 + 0.01)
        collapse = {"net1": (share, 0.5)} if net2 is not None or share else None
        records.append(_epoch_record(epoch, T0 + 60 * epoch, 0.01, 9.0, 0.01, collapse, ap))
    path = write_metrics(tmp_path / f"s{seed}_{len(net1)}{bool(net2)}{share}", records)
    from semipose.engine.hooks import read_metrics

    epochs = study.epochs_from_records(read_metrics(str(path), kind="epoch"))
    return {"epochs": epochs, "rc": 0, "metrics": path, "wall_s": 60.0}


def test_render_seed_results_and_spread_plot(study, tmp_path):
    import cv2

    runs = {
        1: {"supervised": _seed_run(study, tmp_path, 1, [0.10, 0.20]),
            "posedual": _seed_run(study, tmp_path, 1, [0.15, 0.30], [0.14, 0.28])},
        2: {"supervised": _seed_run(study, tmp_path, 2, [0.12, 0.24]),
            "posedual": _seed_run(study, tmp_path, 2, [0.17, 0.34], [0.16, 0.32], share=0.5)},
        3: {"supervised": {"epochs": [], "rc": 1, "metrics": None, "wall_s": 3.0},
            "posedual": _seed_run(study, tmp_path, 3, [0.16, 0.32], [0.15, 0.30])},
    }
    easy = study.STUDIES["easy"]
    md = study.render_seed_results(runs, easy, "python bench/collapse_study.py", "m", "d")
    # supervised: seeds 1 and 2 (0.20, 0.24); PoseDual: 0.30 / 0.34 / 0.32 for net 1
    assert "| Supervised | — | 0.220 ± 0.028 | — | — | — | — | — | 2 (left out: seeds [3]) |" in md
    assert ("| PoseDual | Affine | 0.320 ± 0.020 | 0.300 ± 0.020 | 0.320 ± 0.020 | 0.310 ± 0.020 "
            "| 16.7 ± 28.9% | 0.500 ± 0.000 | 3 |") in md
    assert "| supervised | 0.200 / —, 0.200 (1) | 0.240 / —, 0.240 (1) | failed (exit 1) |" in md
    assert "| posedual | 0.160 ± 0.010 | 0.320 ± 0.020 |" in md  # net 1 per epoch
    assert "- posedual/seed3: ok, 1.0 min, " in md
    assert "- supervised/seed3: failed (exit 1), 0.1 min, no metrics" in md
    # a run with fewer epoch records than END_EPOCH (still running) is left out and named
    short = study.render_seed_results(runs, easy, "c", "m", "d", {"supervised": 2, "posedual": 3})
    assert "| posedual | incomplete (2 of 3 epochs) | incomplete (2 of 3 epochs) |" in short
    assert "| PoseDual | Affine | — | — | — | — | — | — | 0 (left out: seeds [1, 2, 3]) |" in short
    not_run = {"epochs": [], "rc": -1, "metrics": None, "wall_s": None}
    assert study.run_status(not_run) == "not run"
    png = study.write_spread_plot(runs, easy, tmp_path / "spread.png")
    img = cv2.imread(str(png))
    assert img.shape == (440, 1500, 3)
    assert (img < 250).any(axis=2).mean() > 0.02  # axes, bands and lines are drawn
