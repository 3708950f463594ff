"""The EMA teacher in a training run (checkpoint entry, exact resume, strict evaluation loading)
and model selection by TEST.SELECT_BY (net 1, mean of the nets, ensemble) on hand-made results."""

import logging
import types
from pathlib import Path

import pytest
import torch

from semipose.checkpoint import Checkpointer, CheckpointHook
from semipose.config import ConfigError, get_cfg, load_config, update_config
from semipose.engine import hooks as H
from semipose.engine import launch
from semipose.engine.train_loop import Trainer
from semipose.methods import build_method

pytestmark = pytest.mark.usefixtures("single_thread")


# ----------------------------------------------------------------------------- EMA in a run


@pytest.fixture
def small_opts(tiny_opts):
    """``small_opts(root, out, epochs, extra=())``: the tiny PoseDual training of ``tiny_opts`` with
    16-channel deconvolutions and the default TEST.IN_VIS_THRE."""
    changes = {"MODEL.EXTRA.NUM_DECONV_FILTERS": "[16, 16, 16]", "TEST.IN_VIS_THRE": None}
    return lambda root, out, epochs, extra=(): tiny_opts(root, out, epochs=epochs, extra=extra,
                                                         changes=changes)


def run_train(opts):
    args = types.SimpleNamespace(cfg=None, opts=list(opts), distributed=False, local_rank=-1)
    cfg = update_config(get_cfg(), args)
    args.cfg = "tiny_ema"  # names the output folder
    return cfg, launch.do_train(cfg, args)


EMA = ("EMA.ENABLED", "True", "EMA.DECAY", "0.5", "TEST.SELECT_BY", "mean")


def load(out):
    return torch.load(Path(out["output_dir"]) / "checkpoint.pth.tar", weights_only=True)


def test_ema_state_is_checkpointed_and_resumes_exactly(synth_root, tmp_path, small_opts):
    _, a = run_train(small_opts(synth_root, tmp_path / "straight", 2, EMA))
    run_train(small_opts(synth_root, tmp_path / "resumed", 1, EMA))
    cfg, b = run_train(small_opts(synth_root, tmp_path / "resumed", 2, EMA))
    assert b["epochs"] == 1
    ca, cb = load(a), load(b)
    assert ca["ema"]["updates"] == cb["ema"]["updates"] == 4  # 2 iterations x 2 epochs
    assert sorted(ca["ema"]["nets"]) == ["resnet", "resnet2"]
    for name, state in ca["ema"]["nets"].items():
        for k, v in state.items():
            assert torch.equal(v, cb["ema"]["nets"][name][k]), (name, k)
    for k, v in ca["state_dict"].items():
        assert torch.equal(v, cb["state_dict"][k]), k
    # the teachers are averages, not copies, of the students; the state_dict has no EMA keys
    student = ca["state_dict"]["resnet.final_layer_1.weight"]
    assert not torch.equal(ca["ema"]["nets"]["resnet"]["final_layer_1.weight"], student)
    assert not any("ema" in k for k in ca["state_dict"])
    assert ca["select_by"] == "mean"
    # evaluation loads the run's weights strictly, with or without EMA.ENABLED
    method = build_method(cfg)
    launch.load_eval_weights(method.build_model(is_train=False),
                              method, str(Path(b["output_dir"]) / "checkpoint.pth.tar"))
    launch.load_eval_weights(method.build_model(is_train=False),
                              method, str(Path(b["output_dir"]) / "model_best.pth.tar"))


def test_resume_without_ema_state_starts_the_average_from_the_model(synth_root, tmp_path, caplog,
                                                                    small_opts):
    run_train(small_opts(synth_root, tmp_path, 1))
    with caplog.at_level(logging.WARNING):
        _, out = run_train(small_opts(synth_root, tmp_path, 2, EMA))
    assert "no 'ema' state" in caplog.text
    assert "TEST.SELECT_BY is 'mean'" in caplog.text  # the checkpoint's best was net 1's
    assert load(out)["ema"]["updates"] == 2


def test_ema_needs_a_method_with_teachers():
    cfg = load_config(None, ["MODEL.NAME", "pose_resnet", "EMA.ENABLED", "True",
                             "MODEL.EXTRA.NUM_LAYERS", "18", "MODEL.INIT_WEIGHTS", "False"])
    method = build_method(cfg)
    with pytest.raises(ConfigError, match="no teacher"):
        H.build_ema_teacher(cfg, method, method.build_model(is_train=False))
    assert H.build_ema_teacher(load_config(None, ["MODEL.NAME", "pose_resnet"]), method,
                               None) is None


# ----------------------------------------------------------------------------- selection


@pytest.fixture
def two_nets(toy_method):
    """The toy method's class named as two nets and the ensemble (for selection by results)."""

    class TwoNets(toy_method):
        nets = ("net1", "net2")
        heads = ("net1", "net2", "ensemble")

    return TwoNets


def results(net1, net2, ensemble):
    table = {"net1": net1, "net2": net2, "ensemble": ensemble}
    return {"perf": net1, "perfs": dict(table), "loss": 0.1, "acc": 0.0, "heads": tuple(table),
            **{h: {"AP": v} for h, v in table.items()}}


# epoch -> results: net 1 peaks at epoch 0, the mean of the nets at 1, the ensemble at 2
EPOCHS = [results(0.50, 0.10, 0.20), results(0.40, 0.60, 0.30), results(0.30, 0.30, 0.70)]


def test_selection_metrics_on_hand_made_results(two_nets):
    method = two_nets(load_config(None, ["MODEL.NAME", "two"]))
    assert method.selection_metrics(EPOCHS[1]) == pytest.approx(
        {"net1": 0.40, "mean": 0.50, "ensemble": 0.30})
    # a single-network method: every rule is its net's metric; old results without perfs
    single = build_method(load_config(None, ["MODEL.NAME", "pose_cons",
                                             "TEST.SELECT_BY", "ensemble"]))
    assert single.selection_metrics({"perf": 0.3}) == {"net1": 0.3, "mean": 0.3, "ensemble": 0.3}
    assert single.selection_metric({"perf": 0.3, "perfs": {"net1": 0.3}}) == 0.3


@pytest.mark.parametrize("rule,best_epoch", [("net1", 0), ("mean", 1), ("ensemble", 2)])
def test_select_by_picks_its_best_epoch(rule, best_epoch, tmp_path, two_nets):
    method = two_nets(load_config(None, ["MODEL.NAME", "two", "TEST.SELECT_BY", rule]))
    model = method.build_model(True)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [5], 0.1)
    batches = [(torch.randn(2, 3, 4, 4), torch.rand(2, 2, 4, 4), torch.ones(2, 2, 1), {})]
    t = Trainer(model, method, opt, batches, "cpu")
    ck = Checkpointer(str(tmp_path), model, opt, sched, schedule=(0.1, 0.1, [5]))
    t.register_hooks([CheckpointHook(ck), H.EvalHook(lambda e: EPOCHS[e], ck)])
    t.train(0, 3)
    assert ck.best_epoch == best_epoch
    expected = method.selection_metrics(EPOCHS[best_epoch])[rule]
    saved = torch.load(tmp_path / "checkpoint.pth.tar", weights_only=True)
    assert saved["best_epoch"] == best_epoch and saved["perf"] == pytest.approx(expected)
    assert saved["select_by"] == rule
    assert t.epoch_stats["select_by"] == rule
    assert t.epoch_stats["selection"] == pytest.approx({"net1": 0.3, "mean": 0.3,
                                                        "ensemble": 0.7})
    assert t.epoch_stats["ap"] == {"net1": 0.3, "net2": 0.3, "ensemble": 0.7}


def test_bad_select_by_values(two_nets):
    with pytest.raises(ConfigError, match="TEST.SELECT_BY"):
        build_method(load_config(None, ["MODEL.NAME", "pose_dual", "TEST.SELECT_BY", "best"]))

    class NoEnsemble(two_nets):
        heads = ("net1", "net2")

    with pytest.raises(ConfigError, match="no ensemble"):
        NoEnsemble(load_config(None, ["MODEL.NAME", "x", "TEST.SELECT_BY", "ensemble"]))
