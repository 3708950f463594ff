"""Command lines: flags anywhere among the overrides, and one-line errors with their exit codes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from semipose.common.errors import DataFileError
from semipose.config import ConfigError
from semipose.engine.cli import parse_train_args, parse_valid_args, run_cli, split_flags

REPO = Path(__file__).resolve().parents[2]
DEMO = str(REPO / "experiments/synthetic/96x64_SYN_Supervised.yaml")


def test_flags_after_the_overrides_are_flags():
    """Issue 16 #11b: ``... TRAIN.X 1 --model-file F`` sets the model file, not a config key."""
    argv = ["--cfg", DEMO, "TRAIN.END_EPOCH", "3", "--model-file", "m.pth", "TRAIN.LR", "1e-3",
            "--flip-test", "DATASET.TRAIN_LEN", "-1", "--workers=0"]  # fmt: skip
    args, cfg = parse_valid_args(argv)
    assert cfg.TEST.MODEL_FILE == "m.pth" and cfg.TEST.FLIP_TEST is True
    assert cfg.TRAIN.END_EPOCH == 3 and cfg.TRAIN.LR == 1e-3 and cfg.DATASET.TRAIN_LEN == -1
    assert cfg.WORKERS == 0
    args, cfg = parse_train_args(["TRAIN.END_EPOCH", "4", "--cfg", DEMO, "--distributed"])
    assert cfg.TRAIN.END_EPOCH == 4 and args.distributed


def test_split_flags_keeps_pairs_together():
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--cfg")
    parser.add_argument("--model-file")
    parser.add_argument("--flip-test", action="store_true")
    argv = ["A.B", "-2", "--flip-test", "C", "--not-a-flag", "--model=x", "--cfg", "y.yaml"]
    flags, opts = split_flags(parser, argv)
    assert opts == ["A.B", "-2", "C", "--not-a-flag"]  # a value may look like a flag
    assert flags == ["--flip-test", "--model=x", "--cfg", "y.yaml"]


def test_unknown_flag_is_named_by_argparse(capsys):
    with pytest.raises(SystemExit) as err:
        parse_train_args(["--cfg", DEMO, "TRAIN.END_EPOCH", "1", "--model-file", "F"])
    assert err.value.code == 2
    assert "unrecognized arguments: --model-file" in capsys.readouterr().err


def _raiser(exc):
    def main(argv):
        raise exc

    return main


@pytest.mark.parametrize(
    "exc, code, text",
    [
        (ConfigError("config key 'TRAIN.LR' expects float (in x.yaml)"), 2, "'TRAIN.LR'"),
        (DataFileError("detection file d.json is not JSON"), 2, "d.json"),
        (FileNotFoundError("config file not found: nope.yaml"), 2, "nope.yaml"),
        (FloatingPointError("loss is nan at epoch 3"), 1, "loss is nan"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
)
def test_expected_errors_are_one_line(monkeypatch, capsys, exc, code, text):
    """Issue 16 #11a: an expected error is one ``error:`` line with its exit status."""
    monkeypatch.delenv("SEMIPOSE_DEBUG", raising=False)
    assert run_cli(_raiser(exc), []) == code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and text in err and len(err.strip().splitlines()) == 1


def test_debug_shows_the_traceback_and_bugs_keep_it(monkeypatch):
    monkeypatch.delenv("SEMIPOSE_DEBUG", raising=False)
    with pytest.raises(ConfigError):
        run_cli(_raiser(ConfigError("bad key")), ["--traceback"])
    monkeypatch.setenv("SEMIPOSE_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        run_cli(_raiser(FileNotFoundError("x")), [])
    monkeypatch.delenv("SEMIPOSE_DEBUG")
    with pytest.raises(ZeroDivisionError):  # a bug is not an input error
        run_cli(_raiser(ZeroDivisionError("bug")), [])
    assert run_cli(lambda argv: None, []) == 0


def _run(script, *argv):
    env = {k: v for k, v in os.environ.items() if k != "SEMIPOSE_DEBUG"}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(
        [sys.executable, str(REPO / "pose_estimation" / script), *argv],
        capture_output=True, text=True, env=env, timeout=300, cwd=REPO,
    )  # fmt: skip


def test_valid_py_bad_override_exits_2_with_one_line():
    out = _run("valid.py", "--cfg", DEMO, "MODEL.IMAGE_SIZE", "[64]")
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "'MODEL.IMAGE_SIZE'" in lines[0] and "command-line overrides" in lines[0]
    assert "Traceback" not in out.stderr


def test_valid_py_text_model_file_is_named(tmp_path):
    """Issue 16 #6 end to end: ``--model-file`` pointing at a text file."""
    model = tmp_path / "notes.txt"
    model.write_text("not a checkpoint\n")
    out = _run("valid.py", "--cfg", DEMO, "OUTPUT_DIR", str(tmp_path / "out"), "LOG_DIR",
               str(tmp_path / "log"), "--model-file", str(model))  # fmt: skip
    assert out.returncode == 2, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and str(model) in last and "not a PyTorch checkpoint" in last
    assert "Traceback" not in out.stderr


def test_flags_and_overrides_split_wherever_they_stand():
    import argparse

    from semipose.apis.runner import split_overrides
    from semipose.engine.cli import split_flags

    parser = argparse.ArgumentParser()
    parser.add_argument("--vis", type=int)
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--images", nargs="+")
    parser.add_argument("--limit", type=int)
    argv = ["--vis", "2", "TRAIN.LR", "-1e-3", "--fast", "--lim=4"]
    assert split_flags(parser, argv) == (["--vis", "2", "--fast", "--lim=4"], ["TRAIN.LR", "-1e-3"])
    # a many-valued flag ends at the next flag or config key; prefixes count as their option
    argv = ["--images", "a.jpg", "b.jpg", "TEST.FLIP_TEST", "True", "--lim", "3", "stray"]
    assert split_overrides(parser, argv) == (
        ["--images", "a.jpg", "b.jpg", "--lim", "3", "stray"], ["TEST.FLIP_TEST", "True"])
    assert split_flags(parser, ["--nope", "X", "1"]) == (["--nope"], ["X", "1"])
