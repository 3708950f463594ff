"""Atomic writes, stale temporaries of killed saves, and JSON reading errors."""

import json
import os
import subprocess
import sys

import pytest
import torch

from semipose.common.io import (
    atomic_torch_save,
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    read_json,
    remove_stale_temps,
    temp_prefix,
)


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_writers_round_trip(tmp_path):
    atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01")
    atomic_write_text(tmp_path / "sub/b.txt", "héllo")  # the folder is created
    atomic_write_json(tmp_path / "c.json", {"x": [1, 2]}, sort_keys=True, indent=4)
    atomic_torch_save({"w": torch.arange(3)}, tmp_path / "d.pth")
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "sub/b.txt").read_text(encoding="utf-8") == "héllo"
    assert (tmp_path / "c.json").read_text() == json.dumps({"x": [1, 2]}, indent=4)
    assert torch.equal(torch.load(tmp_path / "d.pth", weights_only=True)["w"], torch.arange(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "c.json", "d.pth", "sub"]


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "f.json"
    atomic_write_json(path, {"v": 1})

    def fail(f):
        f.write('{"v": ')
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        atomic_write(path, fail, mode="w")
    assert json.loads(path.read_text()) == {"v": 1}
    assert os.listdir(tmp_path) == ["f.json"]


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    dead = tmp_path / f".ckpt.pth.{_dead_pid()}.x1y2.tmp"
    old_style = tmp_path / ".ckpt.pth.k3j4l5.tmp"  # from before the pid field
    live = tmp_path / f"{temp_prefix('ckpt.pth')}z9.tmp"  # this process: a concurrent writer
    other = tmp_path / f".other.pth.{_dead_pid()}.a.tmp"  # another file's temporary
    for p in (dead, old_style, live, other):
        p.write_bytes(b"x" * 10)
    removed = remove_stale_temps(str(tmp_path), "ckpt.pth")
    assert sorted(removed) == sorted([str(dead), str(old_style)])
    assert live.exists() and other.exists()
    # An atomic save of the name removes them too (here: nothing left to remove but the live one).
    dead.write_bytes(b"x")
    atomic_torch_save({}, tmp_path / "ckpt.pth")
    assert not dead.exists() and live.exists()


def test_killed_save_leaves_a_temporary_that_the_next_save_removes(tmp_path):
    path = tmp_path / "big.pth"
    code = (
        "import os, signal\n"
        "from semipose.common.io import atomic_write\n"
        "def write(f):\n"
        "    f.write(b'x' * 1000)\n"
        "    f.flush()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        f"atomic_write({str(path)!r}, write)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=False)
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".big.pth.")]
    assert len(leftovers) == 1 and not path.exists()
    atomic_torch_save({"a": 1}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.pth"]


def test_read_json_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"detection file not found: .*nope\.json"):
        read_json(tmp_path / "nope.json", what="detection file")
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1,\n "b": }')
    with pytest.raises(ValueError, match=r"bad\.json is not valid JSON \(line 2"):
        read_json(bad)
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="bin.json is not UTF-8"):
        read_json(binary)
    good = tmp_path / "good.json"
    good.write_text('[1, {"x": null}]')
    assert read_json(good) == [1, {"x": None}]


def test_bad_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        atomic_write(tmp_path / "x", lambda f: None, mode="a")
