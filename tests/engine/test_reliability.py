"""Runs that cannot clobber each other, survive preemption and say what they found: the run lock,
valid.py's own folder and table, the config checks, the architecture-mismatch message and
SIGTERM with an exact mid-epoch resume (docs/RELIABILITY.md)."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from semipose.common.errors import run_cli
from semipose.common.runlock import LOCK_NAME, RunLock, RunLockedError
from semipose.config import load_config
from semipose.engine import hooks as H
from semipose.engine.cli import parse_train_args, parse_valid_args
from semipose.engine.launch import do_train, do_valid

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("single_thread")


def _train_main(argv):
    args, cfg = parse_train_args(argv)
    do_train(cfg, args)


def _valid_main(argv):
    args, cfg = parse_valid_args(argv)
    do_valid(cfg, args)


def _yaml(tmp_path, text="MODEL:\n  NAME: pose_dual\n"):
    path = tmp_path / "tiny.yaml"
    path.write_text(text)
    return str(path)


# --------------------------------------------------------------------------- the run lock


def test_lock_refuses_a_live_holder_and_takes_over_a_dead_one(tmp_path, caplog):
    with RunLock(tmp_path, command="first") as first:
        holder = json.loads((tmp_path / LOCK_NAME).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with pytest.raises(RunLockedError, match=f"output folder {tmp_path} is in use by another "
                           f"training \\(pid {os.getpid()} on {socket.gethostname()}"):
            RunLock(tmp_path).acquire()
        assert first.held
    assert not (tmp_path / LOCK_NAME).exists()  # released
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (tmp_path / LOCK_NAME).write_text(json.dumps(
        {"pid": int(dead), "host": socket.gethostname(), "started": 0, "what": "training"}))
    with caplog.at_level("WARNING"), RunLock(tmp_path):
        assert f"pid {dead}" in caplog.text and "no longer running" in caplog.text
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": 0}))
    with pytest.raises(RunLockedError, match=f"written on host elsewhere.*delete {tmp_path}"):
        RunLock(tmp_path).acquire()


def test_two_trainings_into_one_folder(synth_root, tmp_path, tiny_opts):
    """Started at once: one refuses with one line (exit 2), the other trains and its files are
    those of one run."""
    opts = tiny_opts(synth_root, tmp_path, epochs=2, iters=2, changes={"PRINT_FREQ": "0"})
    cmd = [sys.executable, str(REPO / "pose_estimation/train.py"), "--cfg", _yaml(tmp_path),
           *opts]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    refused = outs[[p.returncode for p in procs].index(2)][1].strip().splitlines()
    assert len(refused) == 1 and refused[0].startswith("error: output folder ")
    assert "is in use by another training (pid" in refused[0]
    run_dir = next((tmp_path / "output").rglob("metrics.jsonl")).parent
    epochs = [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text()
              .splitlines() if '"type": "epoch"' in line]
    assert epochs == [0, 1]  # one run's records, not two runs' interleaved
    assert (run_dir / "final_state.pth.tar").is_file() and not (run_dir / LOCK_NAME).exists()
    assert not list(run_dir.glob("previous_*")) and len(list(run_dir.glob("*_train.log"))) == 1


# --------------------------------------------------------------------------- config values


@pytest.mark.parametrize("change, expected", [
    ({"TRAIN.BATCH_SIZE": "0"}, r"TRAIN.BATCH_SIZE 0 \(from the command line\): expected an "
                                r"integer >= 1"),
    ({"WORKERS": "-1"}, r"WORKERS -1 \(from the command line\): expected an integer >= 0"),
    ({"TRAIN.LR": "-1"}, r"TRAIN.LR -1.0 \(from the command line\): expected a finite number > 0"),
    ({"TRAIN.LR_STEP": "[5, 2]"}, r"TRAIN.LR_STEP \[5, 2\] .*increasing order"),
    ({"MODEL.NUM_JOINTS": "5"}, r"MODEL.NUM_JOINTS 5 .*expected 24, the joints of "
                                r"DATASET.TRAIN_DATASET 'mix_coco_coco'"),
    ({"MODEL.EXTRA.HEATMAP_SIZE": "[16, 16]"}, r"MODEL.EXTRA.HEATMAP_SIZE \[16, 16\] .*expected "
                                               r"MODEL.IMAGE_SIZE / 4 = \[16, 24\]"),
    ({"MODEL.IMAGE_SIZE": "[60, 96]", "MODEL.EXTRA.HEATMAP_SIZE": "[15, 24]"},
     r"MODEL.IMAGE_SIZE \[60, 96\] .*divisible by 32"),
    ({"OUTPUT_DIR": "/proc/semipose_x"}, r"OUTPUT_DIR '/proc/semipose_x' \(from the command "
                                         r"line\): cannot create or write the folder"),
    ({"MODEL.NAME": "pose_trio"}, r"MODEL.NAME 'pose_trio' .*expected one of \[.*'pose_dual'"),
    ({"DATASET.TEST_DATASET": "cocoa"}, r"DATASET.TEST_DATASET 'cocoa' .*expected one of"),
    ({"DEVICE": "tpu"}, r"DEVICE 'tpu' .*'auto', 'cpu', 'cuda' or 'cuda:N'"),
    ({"MODEL.INIT_WEIGHTS": "True", "MODEL.PRETRAINED": "/nope/r18.pth"},
     r"MODEL.PRETRAINED '/nope/r18.pth' .*no such file"),
])
def test_bad_values_fail_before_any_work(synth_root, tmp_path, tiny_opts, capsys, change,
                                         expected):
    opts = tiny_opts(synth_root, tmp_path, changes=change)
    assert run_cli(_train_main, ["--cfg", _yaml(tmp_path), *opts]) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if " INFO " not in line
           and not line[:4].isdigit()]
    assert len(err) == 1 and err[0].startswith("error: ")
    import re

    assert re.search(expected, err[0]), err[0]
    assert not (tmp_path / "output").exists() or not list((tmp_path / "output").rglob("*.log"))


def test_output_dir_below_a_file_and_empty_or_directory_cfg(synth_root, tmp_path, tiny_opts,
                                                             capsys):
    (tmp_path / "afile").write_text("x")
    opts = tiny_opts(synth_root, tmp_path, changes={"OUTPUT_DIR": str(tmp_path / "afile/out")})
    assert run_cli(_train_main, ["--cfg", _yaml(tmp_path), *opts]) == 2
    assert "a part of the path is a file, not a folder" in capsys.readouterr().err
    empty = _yaml(tmp_path, "# nothing here\n")
    assert run_cli(_train_main, ["--cfg", empty]) == 2
    err = capsys.readouterr().err
    assert f"the config file {empty} is empty" in err and "MODEL.NAME" in err
    assert run_cli(_train_main, ["--cfg", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    src = load_config(_yaml(tmp_path, "TRAIN:\n  LR: 0.5\n"), ["WORKERS", "0"])
    from semipose.config import config_source

    assert config_source(src, "TRAIN.LR") == str(tmp_path / "tiny.yaml")
    assert config_source(src, "WORKERS") == "the command line"
    assert config_source(src, "TRAIN.WD") == "the defaults"


# --------------------------------------------------------------------------- valid.py


@pytest.fixture(scope="module")
def trained(synth_root, tmp_path_factory, tiny_opts):
    out = tmp_path_factory.mktemp("trained")
    opts = tiny_opts(synth_root, out, epochs=1, iters=1, changes={"PRINT_FREQ": "0"})
    args, cfg = parse_train_args(["--cfg", _yaml(out), *opts])
    return opts, do_train(cfg, args), out


def test_valid_prints_tables_and_paths_whatever_print_freq(trained, capsys):
    opts, out, folder = trained
    run_dir = Path(out["output_dir"])
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    model = str(run_dir / "final_state.pth.tar")
    assert run_cli(_valid_main, ["--cfg", _yaml(folder), "--model-file", model, *opts]) == 0
    text = capsys.readouterr().out
    for title in ("The Predictions of Net 1", "The Predictions of Net 2", "Ensemble Predictions"):
        assert title in text
    assert "| Arch | AP |" in text and f"Evaluated {model}:" in text
    results = [line for line in text.splitlines() if line.startswith("results: ")]
    assert results and str(run_dir / "valid" / "final_state_") in results[0]
    assert "eval_3.json" in results[0]
    log = [line for line in text.splitlines() if line.startswith("log: ")][0][5:]
    assert Path(log).is_file() and Path(log).parent.parent == run_dir / "valid"
    assert {p: p.read_bytes() for p in before} == before  # the training run is untouched


def test_architecture_mismatch_names_file_and_shapes(trained, tmp_path, capsys):
    opts, out, folder = trained
    from semipose.checkpoint.files import extract_net

    state = torch.load(Path(out["output_dir"]) / "final_state.pth.tar", weights_only=True)
    single = tmp_path / "single.pth"
    torch.save(extract_net(state), single)  # a pose_resnet-style file
    assert run_cli(_valid_main, ["--cfg", _yaml(folder), "--model-file", str(single),
                                 *opts]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and len(lines[0]) < 1600
    err = lines[0]
    assert f"{single} does not fit the model: it holds a single network (a ResNet-18" in err
    assert "the config builds two networks (resnet., resnet2.: a ResNet-18 PoseResNet each)" in err
    missing = err.split("missing keys: ")[1].split(";")[0]
    assert missing.count(",") == 9 and " and " in missing and " more" in missing


# --------------------------------------------------------------------------- SIGTERM


def _iter_losses(run_dir):
    recs = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text()
            .splitlines()]
    return {(r["epoch"], r["iter"]): r["loss"] for r in recs if r["type"] == "iter"}


@pytest.mark.parametrize("workers", ["0", "1", "1 inline"])
def test_sigterm_mid_epoch_then_resume_equals_an_uninterrupted_run(
        synth_root, tmp_path, tiny_opts, monkeypatch, capsys, workers):
    """SIGTERM (sent twice) in epoch 1 after its second step: the step ends, a mid-epoch
    checkpoint is written, the run exits 143; resumed, it ends with the weights and the per-step
    losses of the run that was never stopped (also with WORKERS_INLINE, whose resume loads and
    drops the done batches as worker processes do)."""
    # validated only after the last epoch (TEST.INTERVAL): the losses and weights are compared
    changes = {"WORKERS": workers.split()[0], "DATASET.TRAIN_LEN": "8", "TRAIN.BATCH_SIZE": "2",
               "TEST.INTERVAL": "100", "WORKERS_INLINE": str(workers.endswith("inline"))}
    ref = tiny_opts(synth_root, tmp_path / "ref", epochs=2, iters=3, changes=changes)
    stop = tiny_opts(synth_root, tmp_path / "stop", epochs=2, iters=3, changes=changes)
    cfg_file = _yaml(tmp_path)
    assert run_cli(_train_main, ["--cfg", cfg_file, *ref]) == 0

    original = H.IterationMetrics.after_step

    def after_step(self):
        original(self)
        if (self.trainer.epoch, self.trainer.iter) == (1, 1):
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)  # a second signal during the stop and save

    monkeypatch.setattr(H.IterationMetrics, "after_step", after_step)
    assert run_cli(_train_main, ["--cfg", cfg_file, *stop]) == 143
    err = capsys.readouterr().err
    assert "stopped: stopped by SIGTERM at epoch 1, iteration 2; checkpoint" in err
    monkeypatch.setattr(H.IterationMetrics, "after_step", original)
    stop_dir = next((tmp_path / "stop").rglob("checkpoint.pth.tar")).parent
    ckpt = torch.load(stop_dir / "checkpoint.pth.tar", weights_only=True)
    # the mixed set's epoch is its unlabeled persons (13 here), in the recorded order
    assert (ckpt["epoch"], ckpt["iteration"]) == (1, 2) and sorted(ckpt["order"].tolist()) == \
        list(range(13))
    assert not (stop_dir / "final_state.pth.tar").exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers put back
    assert run_cli(_train_main, ["--cfg", cfg_file, *stop]) == 0  # TRAIN.RESUME True
    ref_dir = next((tmp_path / "ref").rglob("final_state.pth.tar")).parent
    want = torch.load(ref_dir / "final_state.pth.tar", weights_only=True)
    got = torch.load(stop_dir / "final_state.pth.tar", weights_only=True)
    assert want.keys() == got.keys()
    for key in want:
        assert torch.equal(want[key], got[key]), key
    assert _iter_losses(stop_dir) == _iter_losses(ref_dir)


@pytest.mark.parametrize("during_save", [1, 2])
def test_signals_during_the_mid_epoch_save(synth_root, tmp_path, tiny_opts, monkeypatch, capsys,
                                           during_save):
    """SIGTERM stops the run; further SIGTERMs arrive while the mid-epoch checkpoint is being
    written. One more: the save completes (rc 143, the checkpoint at the stop). Two more (the
    third signal): the exit is forced, the write in progress is abandoned, the epoch-0 checkpoint
    stays, no temporary file and no run lock are left."""
    import semipose.checkpoint.files as files

    changes = {"WORKERS": "0", "DATASET.TRAIN_LEN": "8", "TRAIN.BATCH_SIZE": "2",
               "TEST.INTERVAL": "100"}
    opts = tiny_opts(synth_root, tmp_path / "run", epochs=2, iters=3, changes=changes)
    original_step, original_save = H.IterationMetrics.after_step, files.atomic_torch_save

    def after_step(self):
        original_step(self)
        if (self.trainer.epoch, self.trainer.iter) == (1, 1):
            os.kill(os.getpid(), signal.SIGTERM)

    def save(obj, path):
        if isinstance(obj, dict) and obj.get("iteration"):  # the mid-epoch save
            for _ in range(during_save):
                os.kill(os.getpid(), signal.SIGTERM)
        original_save(obj, path)

    monkeypatch.setattr(H.IterationMetrics, "after_step", after_step)
    monkeypatch.setattr(files, "atomic_torch_save", save)
    assert run_cli(_train_main, ["--cfg", _yaml(tmp_path), *opts]) == 143
    err = capsys.readouterr().err
    run_dir = next((tmp_path / "run").rglob("checkpoint.pth.tar")).parent
    ckpt = torch.load(run_dir / "checkpoint.pth.tar", weights_only=True)
    if during_save == 1:
        assert "stopped: stopped by SIGTERM at epoch 1, iteration 2; checkpoint" in err
        assert (ckpt["epoch"], ckpt["iteration"]) == (1, 2)
    else:
        assert "stopped by SIGTERM (3 signals): exited without the mid-epoch checkpoint" in err
        assert ckpt["epoch"] == 1 and not ckpt.get("iteration")  # the end of epoch 0, intact
    assert not list((tmp_path / "run").rglob("*.tmp"))
    assert not list((tmp_path / "run").rglob(LOCK_NAME))
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_disk_full_during_a_checkpoint_save_is_one_line(synth_root, tmp_path, tiny_opts,
                                                         monkeypatch, capsys):
    """ENOSPC while the second epoch's checkpoint is written (torch's zip writer then raises a
    RuntimeError of its own): one ``error:`` line naming the file and the cause, rc 2, the first
    epoch's checkpoint intact, no temporary and no run lock left."""
    import errno

    changes = {"WORKERS": "0", "DATASET.TRAIN_LEN": "8", "TRAIN.BATCH_SIZE": "2",
               "TEST.INTERVAL": "100"}
    opts = tiny_opts(synth_root, tmp_path / "run", epochs=2, iters=1, changes=changes)
    real_save = torch.save
    calls = {"n": 0}

    def save(obj, f, *a, **kw):
        if isinstance(obj, dict) and obj.get("epoch") == 2:
            f.write(b"PK partial")
            try:
                raise OSError(errno.ENOSPC, "No space left on device")
            except OSError:
                raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos") from None
        calls["n"] += 1
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", save)
    assert run_cli(_train_main, ["--cfg", _yaml(tmp_path), *opts]) == 2
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and lines[0].startswith("error: could not write ")
    assert "checkpoint.pth.tar: [Errno 28] No space left on device" in lines[0]
    assert "Traceback" not in capsys.readouterr().err
    monkeypatch.setattr(torch, "save", real_save)
    run_dir = next((tmp_path / "run").rglob("checkpoint.pth.tar")).parent
    assert torch.load(run_dir / "checkpoint.pth.tar", weights_only=True)["epoch"] == 1
    assert not list((tmp_path / "run").rglob("*.tmp"))
    assert not list((tmp_path / "run").rglob(LOCK_NAME))


def test_metrics_stream_write_error_names_the_file(tmp_path, monkeypatch):
    from semipose.common.errors import WriteFailed
    from semipose.engine.events import JSONWriter

    writer = JSONWriter(str(tmp_path / "metrics.jsonl"))
    writer.write({"type": "epoch", "epoch": 0})

    class Full:
        def write(self, _):
            raise OSError(28, "No space left on device")

    writer.file = Full()
    with pytest.raises(WriteFailed, match=r"metrics.jsonl: \[Errno 28\] No space left on device"):
        writer.write({"type": "epoch", "epoch": 1})
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 1
