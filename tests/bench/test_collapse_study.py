"""Unit tests of bench/collapse_study.py's log parsing and report (no training)."""
import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location(
        "collapse_study", REPO / "bench" / "collapse_study.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table(title, ap, stamp):
    return (
        f"{stamp} {title}\n"
        f"{stamp} \n"
        "| Arch | AP | Ap .5 | AP .75 | AP (M) | AP (L) | AR |\n"
        "|---|---|---|---|---|---|---|\n"
        f"| 96x64_po... | {ap:.3f} | 0.500 | 0.100 | 0.200 | -1.000 | 0.300 |\n"
    )


LOG = (
    "2026-11-25 13:26:10,000 torch 2.14.1, torchvision 0.29.1\n"
    "2026-11-25 13:26:16,065 => mixed set: 300 labeled, 1524 unlabeled, 1524 items\n"
    "2026-11-25 13:26:19,470 Epoch: [0][0/19]\tTime 2.937s (2.937s)\tLoss 0.01043 (0.01043)\n"
    "2026-11-25 13:27:10,000 Epoch 0 done: loss 0.007861, 8.0 samples/s, lr 0.002\n"
    "2026-11-25 13:27:10,001 Collapse monitor [net1]: 3.8% of unlabeled samples collapsed to "
    "background, mean teacher peak 0.2744\n"
    "2026-11-25 13:27:10,002 Collapse monitor [net2]: 3.7% of unlabeled samples collapsed to "
    "background, mean teacher peak 0.2703\n"
    + _table("The Predictions of Net 1", 0.012, "2026-11-25 13:27:15,000")
    + _table("The Predictions of Net 2", 0.015, "2026-11-25 13:27:15,100")
    + _table("Ensemble Predictions", 0.018, "2026-11-25 13:27:15,200")
    + "2026-11-25 13:27:15,300 => saving checkpoint to output/x\n"
    "2026-11-25 13:28:10,000 Epoch 1 done: loss 0.006556, 8.2 samples/s, lr 0.0002\n"
    "2026-11-25 13:28:10,001 Collapse monitor [net1]: 0.0% of unlabeled samples collapsed to "
    "background, mean teacher peak 0.3883\n"
    "2026-11-25 13:28:10,002 Collapse monitor [net2]: 12.5% of unlabeled samples collapsed to "
    "background, mean teacher peak 0.3838\n"
    + _table("The Predictions of Net 1", 0.010, "2026-11-25 13:28:15,000")
    + _table("The Predictions of Net 2", 0.020, "2026-11-25 13:28:15,100")
    + _table("Ensemble Predictions", 0.025, "2026-11-25 13:28:15,200")
)


def test_parse_log_epochs_ap_and_collapse(study):
    epochs = study.parse_log(LOG)
    assert [e["epoch"] for e in epochs] == [0, 1]
    first, second = epochs
    assert first["loss"] == pytest.approx(0.007861)
    assert first["lr"] == pytest.approx(0.002)
    assert first["samples_per_s"] == pytest.approx(8.0)
    assert first["wall_s"] == pytest.approx(60.0)  # since the log's first time stamp
    assert second["wall_s"] == pytest.approx(60.0)
    assert first["ap"] == pytest.approx({"net1": 0.012, "net2": 0.015, "ensemble": 0.018})
    assert second["ap"] == pytest.approx({"net1": 0.010, "net2": 0.020, "ensemble": 0.025})
    assert first["metrics"]["net1"]["Ap .5"] == pytest.approx(0.5)
    assert first["metrics"]["net1"]["AP (L)"] == pytest.approx(-1.0)
    assert first["collapse"]["net1"] == pytest.approx({"share": 0.038, "peak": 0.2744})
    assert second["collapse"]["net2"] == pytest.approx({"share": 0.125, "peak": 0.3838})


def test_parse_log_supervised_and_partial(study):
    text = (
        "2026-01-01 00:00:00,000 start\n"
        + _table("The Predictions of Net 1", 0.9, "2026-01-01 00:00:00,500")  # before any epoch
        + "2026-01-01 00:00:30,000 Epoch 0 done: loss 0.01, 20.0 samples/s, lr 0.002\n"
        "2026-01-01 00:00:31,000 => saving checkpoint to out\n"  # TEST.INTERVAL > 1: no table
        "2026-01-01 00:01:00,000 Epoch 1 done: loss 0.009, 21.0 samples/s, lr 0.002\n"
        + _table("The Predictions of Net 1", 0.05, "2026-01-01 00:01:05,000")
    )
    epochs = study.parse_log(text)
    assert len(epochs) == 2
    assert epochs[0]["ap"] == {} and epochs[0]["collapse"] == {}
    assert epochs[1]["ap"] == pytest.approx({"net1": 0.05})
    summary = study.final_summary(epochs)
    assert summary["ap_net1"] == pytest.approx(0.05)
    assert summary["ap_ensemble"] is None and summary["share"] is None
    assert study.parse_log("") == []
    assert study.final_summary([])["ap_net1"] is None


def test_final_summary_and_render(study):
    epochs = study.parse_log(LOG)
    s = study.final_summary(epochs)
    assert s["ap_net1"] == pytest.approx(0.010)
    assert s["ap_ensemble"] == pytest.approx(0.025)
    assert (s["best_net1"], s["best_epoch"]) == (pytest.approx(0.012), 0)
    assert s["share"] == pytest.approx(0.0) and s["peak"] == pytest.approx(0.3883)
    results = {
        "posedual_jc": {"epochs": epochs, "rc": 0, "log": "x.log", "wall_s": 120.0},
        "supervised": {"epochs": [], "rc": 1, "log": None, "wall_s": 5.0},
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


def test_rows_have_configs(study):
    for row in study.ROWS.values():
        assert (REPO / study.STUDY_DIR / f"{row.cfg}.yaml").is_file()


def test_find_logs_ignores_rows_whose_name_extends_the_config(study, tmp_path):
    """'..._PoseCons' must not read '..._PoseCons_JointCut''s log (the names share a prefix)."""
    for cfg in ("96x64_SYN300_PoseCons", "96x64_SYN300_PoseCons_JointCut"):
        folder = tmp_path / "mix_coco_coco" / "pose_cons_18" / cfg
        folder.mkdir(parents=True)
        (folder / f"{cfg}_2026-11-25-14-24_train.log").write_text(cfg)
    (tmp_path / "96x64_SYN300_PoseCons_2026-11-25-14-24_valid.log").write_text("valid")
    found = study.find_logs(tmp_path, "96x64_SYN300_PoseCons")
    assert [Path(p).name for p in found] == ["96x64_SYN300_PoseCons_2026-11-25-14-24_train.log"]
    path, text = study.read_new_log(tmp_path, "96x64_SYN300_PoseCons_JointCut", {})
    assert text == "96x64_SYN300_PoseCons_JointCut"
