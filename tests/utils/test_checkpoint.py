"""Checkpoints: atomic weights_only round trip, refusal of code-running pickles, strict loads."""

import os
import pickle

import numpy as np
import pytest
import torch

from semipose.checkpoint.files import (
    CheckpointError,
    StateDictMismatchError,
    UnsafeCheckpointError,
    atomic_save,
    extract_net,
    load_checkpoint,
    load_model_state,
    save_checkpoint,
    unwrap_state_dict,
)
from semipose.common.errors import UserError
from semipose.models.pose_dual import PoseDual
from semipose.models.pose_resnet import PoseResNet

pytestmark = pytest.mark.usefixtures("single_thread")


def net(head="final_layer_1"):
    return PoseResNet(18, 24, num_deconv_filters=(8, 8, 8), head_name=head)


def dual():
    torch.manual_seed(0)
    return PoseDual(net(), net())


def test_pose_dual_round_trip_weights_only(tmp_path):
    model = dual()
    model([torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64)])  # move the BN statistics
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.resnet.conv1.weight.sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [20, 25])
    states = {
        "epoch": 3,
        "model": "pose_dual",
        "state_dict": model.state_dict(),
        "perf": np.float64(0.512),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
    }
    save_checkpoint(states, True, str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == [
        "checkpoint.pth.tar",
        "model_best.pth.tar",
    ]  # no temp files
    loaded = load_checkpoint(str(tmp_path / "checkpoint.pth.tar"))  # weights_only=True
    assert type(loaded["perf"]) is float and loaded["perf"] == 0.512
    assert loaded["epoch"] == 3
    for k, v in model.state_dict().items():
        assert torch.equal(loaded["state_dict"][k], v), k
    best = load_checkpoint(str(tmp_path / "model_best.pth.tar"))
    assert list(best) == list(model.state_dict())
    fresh = dual()
    load_model_state(fresh, best)
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k
    opt2 = torch.optim.Adam(fresh.parameters(), lr=1e-3)
    opt2.load_state_dict(loaded["optimizer"])
    sched2 = torch.optim.lr_scheduler.MultiStepLR(opt2, [1])
    sched2.load_state_dict(loaded["scheduler"])
    assert sched2.milestones == sched.milestones


def test_non_plain_values_are_rejected(tmp_path):
    class Thing:
        pass

    with pytest.raises(TypeError, match=r"states\['extra'\]"):
        save_checkpoint({"extra": Thing(), "state_dict": {}}, False, str(tmp_path))
    assert os.listdir(tmp_path) == []


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("true",))


def test_code_running_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pth.tar"
    torch.save({"state_dict": {}, "payload": _RunsCode()}, path)
    with pytest.raises(UnsafeCheckpointError, match="evil.pth.tar") as err:
        load_checkpoint(str(path))
    assert "weights_only=False" in str(err.value)
    plain = tmp_path / "plain_pickle.pkl"
    with open(plain, "wb") as f:
        pickle.dump(_RunsCode(), f, protocol=2)
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(str(plain))
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        load_checkpoint(str(tmp_path / "nothing.pth"))


def test_atomic_save_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "ckpt.pth"
    atomic_save({"a": torch.ones(2)}, str(path))
    with pytest.raises((AttributeError, TypeError, pickle.PicklingError)):
        atomic_save({"bad": lambda: 0}, str(path))  # cannot be pickled
    assert os.listdir(tmp_path) == ["ckpt.pth"]
    assert torch.equal(load_checkpoint(str(path))["a"], torch.ones(2))


def test_unwrap_state_dict():
    sd = {"module.a.weight": torch.ones(1), "module.b": torch.zeros(1)}
    assert list(unwrap_state_dict(sd)) == ["a.weight", "b"]
    assert list(unwrap_state_dict({"state_dict": sd, "epoch": 1})) == ["a.weight", "b"]
    with pytest.raises(TypeError):
        unwrap_state_dict([1, 2])


def test_strict_loading_names_the_keys():
    model = dual()
    sd = dict(model.state_dict())
    del sd["resnet2.layer1.0.conv1.weight"]
    sd["resnet.extra.weight"] = torch.ones(1)
    target = dual()
    before = target.resnet.conv1.weight.clone()
    with pytest.raises(StateDictMismatchError) as err:
        load_model_state(target, sd)
    msg = str(err.value)
    assert "resnet2.layer1.0.conv1.weight" in msg and "resnet.extra.weight" in msg
    assert err.value.missing == ["resnet2.layer1.0.conv1.weight"]
    assert torch.equal(target.resnet.conv1.weight, before)  # nothing loaded
    # shape mismatches are always errors
    bad = dict(model.state_dict())
    bad["resnet.final_layer_1.bias"] = torch.zeros(17)
    with pytest.raises(StateDictMismatchError, match="final_layer_1.bias"):
        load_model_state(target, bad, strict=False)
    # missing num_batches_tracked only (very old checkpoints) is tolerated
    old = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert load_model_state(target, old) == ([], [])
    # non-strict: loads what matches and reports the rest
    missing, unexpected = load_model_state(target, sd, strict=False)
    assert missing == ["resnet2.layer1.0.conv1.weight"] and unexpected == ["resnet.extra.weight"]
    assert torch.equal(target.resnet.conv1.weight, model.resnet.conv1.weight)


def test_extract_net_into_a_single_network():
    model = dual().eval()
    single = PoseResNet(18, 24, num_deconv_filters=(8, 8, 8), head_name="final_layer").eval()
    load_model_state(single, extract_net({"state_dict": model.state_dict()}))
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(single(x), model(x)[0])
    with pytest.raises(KeyError, match="resnet3"):
        extract_net(model.state_dict(), prefix="resnet3.")


def _damaged(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("weights_only", [True, False])
def test_bad_checkpoint_files_are_named(tmp_path, weights_only):
    """Issue 16 #6: a text file, an empty file and a truncated save each give one clear error."""
    good = tmp_path / "good.pth.tar"
    save_checkpoint({"epoch": 3, "state_dict": {"w": torch.arange(4000.0)}}, False, str(tmp_path),
                    "good.pth.tar")  # fmt: skip
    data = good.read_bytes()
    legacy = tmp_path / "legacy.pth"
    torch.save({"w": torch.arange(4000.0)}, legacy, _use_new_zipfile_serialization=False)
    cases = {
        _damaged(tmp_path, "notes.txt", b"hello, a text file\n"): "not a PyTorch checkpoint",
        _damaged(tmp_path, "empty.pth", b""): "is empty (0 bytes",
        _damaged(tmp_path, "checkpoint.pth.tar", data[: len(data) // 2]): "is truncated",
        _damaged(tmp_path, "tail.pth.tar", data[:-10]): "is truncated",
        _damaged(tmp_path, "legacy_cut.pth", legacy.read_bytes()[:-40]): "truncated or damaged",
    }
    for path, expect in cases.items():
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(path, weights_only=weights_only)
        msg = str(err.value)
        assert path in msg and expect in msg, msg
        assert isinstance(err.value, UserError) and isinstance(err.value, ValueError)
        if expect != "not a PyTorch checkpoint":
            assert "interrupted save" in msg
    assert load_checkpoint(str(good), weights_only=weights_only)["epoch"] == 3


def test_network_prefixes_are_read_from_the_keys():
    """No table of method attribute names: any prefix whose keys are a network's counts."""
    from semipose.checkpoint.files import describe_state, network_prefixes

    dual = ["resnet.conv1.weight", "resnet.final_layer_1.weight", "resnet2.conv1.weight"]
    assert network_prefixes(dual) == ["resnet", "resnet2"]
    assert network_prefixes(["conv1.weight", "layer1.0.conv1.weight", "final_layer.bias"]) == []
    own = ["student.stem.0.0.weight", "student.final_layer.weight", "teacher.stem.0.0.weight"]
    assert network_prefixes(own) == ["student", "teacher"]
    assert describe_state(own).startswith("two networks (student., teacher.:")
    assert list(extract_net({k: k for k in own})) == ["stem.0.0.weight", "final_layer.weight"]
