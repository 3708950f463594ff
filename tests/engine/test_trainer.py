"""End-to-end engine tests on a tiny synthetic COCO-format set (CPU, seconds each)."""
import math
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from semipose.config import get_cfg, update_config
from semipose.engine import launch
from semipose.engine.cli import parse_train_args, parse_valid_args

REPO = Path(__file__).resolve().parents[2]


def make_cfg(opts, cfg_path=None):
    args = types.SimpleNamespace(cfg=cfg_path, opts=list(opts), distributed=False, local_rank=-1)
    return update_config(get_cfg(), args), args


def run_train(opts, name="tiny.yaml"):
    cfg, args = make_cfg(opts)
    args.cfg = name
    return cfg, launch.do_train(cfg, args)


@pytest.mark.parametrize("model_name", ["pose_dual", "pose_cons", "pose_resnet"])
def test_two_iterations_train_and_validate(synth_root, tmp_path, model_name, tiny_opts):
    cfg, out = run_train(tiny_opts(synth_root, tmp_path, model_name))
    outdir = Path(out["output_dir"])
    assert outdir.parts[-3:] == (cfg.DATASET.TRAIN_DATASET, f"{model_name}_18", "tiny")
    for f in ("checkpoint.pth.tar", "final_state.pth.tar"):
        assert (outdir / f).is_file()
    last = out["last"]
    assert 0.0 <= last["perf"] <= 1.0
    expected = {"net1", "net2", "ensemble"} if model_name == "pose_dual" else {"net1"}
    assert expected <= set(last)
    assert list(last["net1"].keys())[:3] == ["AP", "Ap .5", "AP .75"]
    ckpt = torch.load(outdir / "checkpoint.pth.tar", weights_only=True)
    assert ckpt["epoch"] == 1 and "scheduler" in ckpt and "rng" in ckpt
    assert isinstance(ckpt["perf"], float)
    log_files = list(outdir.glob("tiny_*_train.log"))
    assert log_files and "Epoch: [0][0/2]" in log_files[0].read_text()
    assert "arguments:" in log_files[0].read_text() and "MODEL:" in log_files[0].read_text()
    assert (outdir / "config.yaml").read_text().count(f"NAME: {model_name}") == 1


def test_resume_round_trip_same_weights_and_lr(synth_root, tmp_path, tiny_opts):
    straight = tmp_path / "straight"
    resumed = tmp_path / "resumed"
    _, a = run_train(tiny_opts(synth_root, straight, epochs=2))
    run_train(tiny_opts(synth_root, resumed, epochs=1))
    _, b = run_train(tiny_opts(synth_root, resumed, epochs=2))
    assert b["epochs"] == 1  # only the second epoch ran after the resume
    ca = torch.load(Path(a["output_dir"]) / "checkpoint.pth.tar", weights_only=True)
    cb = torch.load(Path(b["output_dir"]) / "checkpoint.pth.tar", weights_only=True)
    assert ca["epoch"] == cb["epoch"] == 2
    for k, v in ca["state_dict"].items():
        assert torch.equal(v, cb["state_dict"][k]), k
    assert ca["scheduler"]["last_epoch"] == cb["scheduler"]["last_epoch"] == 2
    lr_a = ca["optimizer"]["param_groups"][0]["lr"]
    lr_b = cb["optimizer"]["param_groups"][0]["lr"]
    assert lr_a == lr_b == pytest.approx(1e-3 * 0.1 * 0.1)


def test_same_seed_same_losses(synth_root, tmp_path, caplog, tiny_opts):
    def losses(out):
        caplog.clear()
        with caplog.at_level("INFO"):
            run_train(tiny_opts(synth_root, out))
        return [r.getMessage().split("Loss ")[1].split(" ")[0]
                for r in caplog.records if r.getMessage().startswith("Epoch: [")]

    first = losses(tmp_path / "a")
    second = losses(tmp_path / "b")
    assert len(first) == 2 and first == second


def test_valid_reproduces_trainer_ap(synth_root, tmp_path, tiny_opts):
    opts = tiny_opts(synth_root, tmp_path)
    _, out = run_train(opts)
    final = Path(out["output_dir"]) / "final_state.pth.tar"
    cfg_file = tmp_path / "tiny.yaml"
    cfg_file.write_text("PRINT_FREQ: 1\n")
    args, cfg = parse_valid_args(["--cfg", str(cfg_file), "--model-file", str(final), *opts,
                                  "--vis", "2"])
    run_dir = Path(out["output_dir"])
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    res = launch.do_valid(cfg, args)
    for net in ("net1", "net2", "ensemble"):
        assert res[net]["AP"] == pytest.approx(out["last"][net]["AP"], abs=1e-9)
    # everything valid.py wrote is in its own folder; the training run's files are unchanged
    own = Path(res["output_dir"])
    assert own.parent == run_dir / "valid" and own.name.startswith("final_state_")
    assert {p: p.read_bytes() for p in before} == before
    assert not [p for p in run_dir.rglob("*") if p.is_file() and p not in before
                and own not in p.parents]
    assert (own / "config.yaml").is_file() and list((own / "results").glob("*.json"))
    drawn = sorted((own / "vis").glob("*.jpg"))
    first_images = list(dict.fromkeys(res["predictions"]["image_path"]))[:2]
    assert [p.name for p in drawn] == sorted(Path(p).name for p in first_images)


def test_finished_run_is_not_retrained(synth_root, tmp_path, tiny_opts):
    from semipose.config import ConfigError

    _, out = run_train(tiny_opts(synth_root, tmp_path, epochs=1, iters=1))
    ckpt_file = Path(out["output_dir"]) / "checkpoint.pth.tar"
    before = ckpt_file.read_bytes()
    _, again = run_train(tiny_opts(synth_root, tmp_path, epochs=1, iters=1))
    assert again["epochs"] == 0 and ckpt_file.read_bytes() == before
    with pytest.raises(ConfigError, match=r"TRAIN.END_EPOCH -1 \(from the command line\): "
                       r"expected more than TRAIN.BEGIN_EPOCH \(0\)"):
        run_train(tiny_opts(synth_root, tmp_path, epochs=-1))


def test_nan_loss_stops_and_keeps_last_checkpoint(synth_root, tmp_path, monkeypatch, tiny_opts):
    opts = tiny_opts(synth_root, tmp_path, epochs=1)
    _, out = run_train(opts)
    ckpt_file = Path(out["output_dir"]) / "checkpoint.pth.tar"
    before = ckpt_file.read_bytes()

    from semipose.core import loss as loss_mod

    original = loss_mod.PoseCoLoss.forward

    def nan_forward(self, *a, **k):
        total, parts = original(self, *a, **k)
        return total * float("nan"), parts

    monkeypatch.setattr(loss_mod.PoseCoLoss, "forward", nan_forward)
    opts2 = tiny_opts(synth_root, tmp_path, epochs=2)
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        run_train(opts2)
    assert ckpt_file.read_bytes() == before


def test_cli_parses_original_flags(tmp_path):
    yaml_file = REPO / "experiments" / "mix_coco_coco" / "res18" / "256x192_COCO1K_PoseDual.yaml"
    args, cfg = parse_train_args([
        "--cfg", str(yaml_file), "--gpus", "1", "--workers", "3", "--dataDir", "/d",
        "--local_rank", "2", "--data-format", "zip", "TRAIN.END_EPOCH", "5",
    ])
    assert cfg.GPUS == "1" and cfg.WORKERS == 3 and cfg.TRAIN.END_EPOCH == 5
    assert cfg.DATASET.DATA_FORMAT == "zip" and args.local_rank == 2
    assert cfg.DATASET.ROOT == os.path.join("/d", "data/")
    args, cfg = parse_train_args(["--cfg", str(yaml_file), "--local-rank=1"])
    assert args.local_rank == 1
    args, cfg = parse_valid_args(["--cfg", str(yaml_file), "--flip-test", "--use-detect-bbox",
                                  "--model-file", "m.pth"])
    assert cfg.TEST.FLIP_TEST and not cfg.TEST.USE_GT_BBOX and cfg.TEST.MODEL_FILE == "m.pth"


def test_collapse_monitor_counts_background():
    from semipose.engine.monitor import CollapseMonitor

    mon = CollapseMonitor(threshold=0.1)
    heat = torch.zeros(4, 24, 8, 6)
    heat[0, 1, 2, 2] = 0.9  # sample 0 has a confident trained joint
    heat[1, 0, 2, 2] = 0.9  # sample 1 only on an untrained channel -> collapsed
    weight = torch.zeros(4, 24, 1)
    weight[:, 1:7] = 1
    mon.update({"net1": heat, "net2": heat * 0}, weight)
    s = mon.summary()
    assert s["net1"]["collapsed"] == pytest.approx(0.75)
    assert s["net2"]["collapsed"] == pytest.approx(1.0)
    assert s["net1"]["mean_max"] == pytest.approx(0.9 / 6 / 4)


@pytest.mark.parametrize("launcher", ["torch.distributed.run", "torch.distributed.launch"])
def test_ddp_two_process_gloo(synth_root, tmp_path, launcher, tiny_opts):
    """torchrun and the legacy launcher (which passes --local-rank) both train and save once."""
    cfg_file = tmp_path / "ddp.yaml"
    cfg_file.write_text("PRINT_FREQ: 1\n")
    opts = tiny_opts(synth_root, tmp_path, epochs=1, iters=1)
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    cmd = [sys.executable, "-m", launcher, "--nproc_per_node=2",
           "--master_port=29531", str(REPO / "pose_estimation" / "train.py"), "--distributed",
           "--cfg", str(cfg_file), *opts]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    outdir = tmp_path / "output" / "mix_coco_coco" / "pose_dual_18" / "ddp"
    names = {p.name for p in outdir.glob("*.pth.tar")}
    assert {"checkpoint.pth.tar", "final_state.pth.tar"} <= names
    assert not list(outdir.glob("*.tmp*"))  # no temporary files left behind
    ckpt = torch.load(outdir / "checkpoint.pth.tar", weights_only=True)
    assert ckpt["epoch"] == 1
    assert math.isfinite(float(np.float64(ckpt["perf"])))


def test_kill_9_mid_training_then_resume(synth_root, tmp_path, tiny_opts):
    """A run killed with SIGKILL after its first checkpoint resumes from the last whole epoch."""
    import signal
    import time

    cfg_file = tmp_path / "killed.yaml"
    cfg_file.write_text("PRINT_FREQ: 1\n")
    opts = tiny_opts(synth_root, tmp_path, epochs=30, iters=2)
    cmd = [sys.executable, str(REPO / "pose_estimation" / "train.py"), "--cfg", str(cfg_file),
           *opts]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    outdir = tmp_path / "output" / "mix_coco_coco" / "pose_dual_18" / "killed"
    ckpt_file = outdir / "checkpoint.pth.tar"
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while not ckpt_file.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        time.sleep(1.0)  # somewhere inside a later epoch (or a later save)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    saved = torch.load(ckpt_file, weights_only=True)  # never half-written
    assert 1 <= saved["epoch"] < 30
    cfg, args = make_cfg(tiny_opts(synth_root, tmp_path, epochs=saved["epoch"] + 1, iters=2))
    args.cfg = str(cfg_file)
    out = launch.do_train(cfg, args)
    assert out["epochs"] == 1
    resumed = torch.load(ckpt_file, weights_only=True)
    assert resumed["epoch"] == saved["epoch"] + 1
