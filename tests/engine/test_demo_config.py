"""The `make demo` config end to end on a tiny easy synthetic set: quiet console (one line per
epoch), the metrics stream, then the demo's pictures and final AP table."""
import types
from pathlib import Path

import cv2

from semipose.apis import demo
from semipose.config import get_cfg, update_config
from semipose.engine import launch

REPO = Path(__file__).resolve().parents[2]
DEMO = str(REPO / "experiments/synthetic/demo/128x96_EASY_PoseDual_JointCut.yaml")


def test_demo_config_trains_quietly_and_draws(tmp_path, caplog, capsys, easy_set_opts):
    opts = easy_set_opts(tmp_path, num_train=4, num_val=3) + [
        "TRAIN.END_EPOCH", "2", "TRAIN.WARMUP_ITERS", "1", "TEST.INTERVAL", "1",
    ]  # fmt: skip
    args = types.SimpleNamespace(cfg=DEMO, opts=opts, distributed=False, local_rank=-1)
    cfg = update_config(get_cfg(), args)
    assert cfg.DATASET.SYNTHETIC.PRESET == "easy" and cfg.MODEL.BACKBONE == "lite"
    with caplog.at_level("INFO"):
        out = launch.do_train(cfg, args)
    console = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("Epoch ") and " done [" in m for m in console) == 2
    assert not any(m.startswith("Epoch: [") for m in console)  # iteration lines: log file only
    run_dir = Path(out["output_dir"])
    assert run_dir.name == "128x96_EASY_PoseDual_JointCut" and "pose_dual_lite32" in str(run_dir)
    log = next(run_dir.glob("*_train.log")).read_text()
    assert "Epoch: [1][0/1]" in log and "The Predictions of Net 1" in log

    capsys.readouterr()
    assert demo.main(["--cfg", DEMO, *opts, "--num-images", "2"]) == 0
    printed = capsys.readouterr().out
    assert "AP after epoch 1" in printed and "ensemble" in printed
    panels = cv2.imread(str(run_dir / "demo_predictions.png"))
    curve = cv2.imread(str(run_dir / "learning_curve.png"))
    assert panels.shape[0] == 240 and curve.shape == (400, 640, 3)
