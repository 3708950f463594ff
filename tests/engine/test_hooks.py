"""The Trainer and its hooks on a toy method (no dataset): step order, stops, checkpoints, resume
with a changed schedule, metrics records."""
import json

import pytest
import torch

from semipose.checkpoint import BestModelHook, Checkpointer, CheckpointHook
from semipose.common.hooks import HookBase
from semipose.config import load_config
from semipose.engine import hooks as H
from semipose.engine.events import JSONWriter, MetricsWriter, read_metrics
from semipose.engine.train_loop import Trainer


def toy_batches(n=3, scale=1.0):
    g = torch.Generator().manual_seed(1)
    return [
        (torch.randn(2, 3, 4, 4, generator=g) * scale, torch.rand(2, 2, 4, 4, generator=g),
         torch.ones(2, 2, 1), {"image": ["a", "b"]})
        for _ in range(n)
    ]


@pytest.fixture
def toy_trainer(toy_method):
    """``toy_trainer(loader=None, loss_limit=0.0, lr=0.1, steps=(1, 2))``: a Trainer of the toy
    method with SGD, and its MultiStepLR schedule."""

    def make(loader=None, loss_limit=0.0, lr=0.1, steps=(1, 2)):
        method = toy_method(load_config(None, ["MODEL.NAME", "toy"]))
        model = method.build_model(True)
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(steps), 0.1)
        trainer = Trainer(model, method, opt, loader or toy_batches(), "cpu",
                          loss_limit=loss_limit)
        return trainer, sched

    return make


class Recorder(HookBase):
    def __init__(self):
        self.calls = []

    def __getattribute__(self, name):
        if name in ("before_train", "after_train", "before_epoch", "after_epoch", "before_step",
                    "after_step"):
            calls = object.__getattribute__(self, "calls")
            return lambda: calls.append(name)
        return object.__getattribute__(self, name)


def test_loop_calls_hooks_in_order_and_emits_epoch_records(toy_trainer):
    trainer, _ = toy_trainer(toy_batches(2))
    rec = Recorder()
    records = []

    class Sink(MetricsWriter):
        def write(self, record):
            records.append(record)

    trainer.register_hooks([rec, H.IterationMetrics(period=1), Sink()])
    trainer.train(0, 2)
    step = ["before_step", "after_step"]
    epoch = ["before_epoch", *step, *step, "after_epoch"]
    assert rec.calls == ["before_train", *epoch, *epoch, "after_train"]
    assert [r["type"] for r in records] == ["iter", "iter", "epoch"] * 2
    assert [r["iteration"] for r in records if r["type"] == "iter"] == [0, 1, 2, 3]
    ep = records[2]
    assert ep["epoch"] == 0 and ep["loss"] == pytest.approx(
        (records[0]["loss"] + records[1]["loss"]) / 2)
    assert ep["lr"] == pytest.approx(0.1) and ep["elapsed_s"] > 0


def test_run_step_updates_weights_and_stops_on_nan_and_divergence(toy_trainer):
    trainer, _ = toy_trainer()
    before = trainer.model.weight.detach().clone()
    step = trainer.run_step(toy_batches(1)[0])
    assert step["loss_value"] > 0 and set(step["parts"]) == {"loss_pose"}
    assert not torch.equal(before, trainer.model.weight)
    nan_batch = list(toy_batches(1)[0])
    nan_batch[0] = nan_batch[0] * float("nan")
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        trainer.run_step(nan_batch)
    trainer, _ = toy_trainer(loss_limit=1e-6)
    with pytest.raises(FloatingPointError, match="diverging loss .*TRAIN.LOSS_LIMIT"):
        trainer.run_step(toy_batches(1)[0])


def make_checkpointer(tmp_path, trainer, sched, lr=0.1, steps=(1, 2)):
    return Checkpointer(str(tmp_path), trainer.model, trainer.optimizer, sched,
                          schedule=(lr, 0.1, list(steps)), model_name=("toy", "toy"))


def test_checkpoint_is_written_before_a_failing_validation(tmp_path, toy_trainer):
    trainer, sched = toy_trainer()
    ck = make_checkpointer(tmp_path, trainer, sched)

    def broken_eval(epoch):
        raise ValueError("bad annotation")

    trainer.register_hooks(
        [H.LRScheduler(sched), CheckpointHook(ck), H.EvalHook(broken_eval, ck)]
    )
    with pytest.raises(ValueError, match="bad annotation"):
        trainer.train(0, 1)
    saved = torch.load(tmp_path / "checkpoint.pth.tar", weights_only=True)
    assert saved["epoch"] == 1 and saved["scheduler"]["last_epoch"] == 1
    assert torch.equal(saved["state_dict"]["weight"], trainer.model.weight.detach())


def test_best_model_written_on_first_validation_even_at_zero(tmp_path, toy_trainer):
    trainer, sched = toy_trainer()
    ck = make_checkpointer(tmp_path, trainer, sched)
    results = {"perf": 0.0, "loss": 0.1, "acc": 0.0, "heads": ("net1",),
               "net1": {"AP": 0.0, "Ap .5": 0.0}}
    trainer.register_hooks([CheckpointHook(ck), H.EvalHook(lambda e: results, ck),
                            BestModelHook(ck)])
    trainer.train(0, 2)
    assert (tmp_path / "model_best.pth.tar").is_file()
    saved = torch.load(tmp_path / "checkpoint.pth.tar", weights_only=True)
    assert saved["best_epoch"] == 0 and saved["perf"] == 0.0
    assert saved["last_results"] == {"net1": 0.0}
    assert trainer.epoch_stats["ap"] == {"net1": 0.0}
    assert trainer.epoch_stats["metrics"] == {"net1": {"AP": 0.0, "Ap .5": 0.0}}


def test_resume_with_a_lower_lr_uses_the_config(tmp_path, caplog, toy_trainer):
    trainer, sched = toy_trainer(lr=0.1, steps=(1, 5))
    ck = make_checkpointer(tmp_path, trainer, sched, lr=0.1, steps=(1, 5))
    trainer.register_hooks([H.LRScheduler(sched), CheckpointHook(ck)])
    trainer.train(0, 2)  # epochs 0, 1: one drop at epoch 1 -> lr 0.01
    assert trainer.lr == pytest.approx(0.01)

    same, sched2 = toy_trainer(lr=0.1, steps=(1, 5))
    ck2 = make_checkpointer(tmp_path, same, sched2, lr=0.1, steps=(1, 5))
    assert ck2.resume()[0] == 2
    assert same.lr == trainer.lr  # unchanged config: the checkpoint's exact state

    lower, sched3 = toy_trainer(lr=0.1, steps=(1, 5))
    ck3 = make_checkpointer(tmp_path, lower, sched3, lr=0.02, steps=(1, 5))
    with caplog.at_level("WARNING"):
        epoch, _ = ck3.resume()
    assert epoch == 2 and lower.lr == pytest.approx(0.002)  # 0.02 after one drop
    assert "lr 0.1 -> 0.02" in caplog.text
    sched3.step()
    sched3.step()
    sched3.step()  # epoch 5: the second milestone
    assert lower.lr == pytest.approx(0.0002)


def test_resume_of_a_checkpoint_without_the_new_keys(tmp_path, toy_trainer):
    """Checkpoints written before the engine change (no best_epoch / schedule) still resume."""
    trainer, sched = toy_trainer()
    trainer.optimizer.step()
    sched.step()
    old = {
        "epoch": 1, "model": ["toy", "toy"], "state_dict": trainer.model.state_dict(),
        "perf": 0.25, "optimizer": trainer.optimizer.state_dict(),
        "scheduler": sched.state_dict(), "rng": None, "last_results": {"net1": 0.25},
    }
    torch.save(old, tmp_path / "checkpoint.pth.tar")
    fresh, sched2 = toy_trainer()
    ck = make_checkpointer(tmp_path, fresh, sched2)
    assert ck.resume() == (1, None)
    assert ck.best_perf == 0.25 and fresh.lr == pytest.approx(0.01)
    assert torch.equal(fresh.model.weight, trainer.model.weight)


def test_json_writer_appends_and_reader_keeps_the_last_record(tmp_path):
    path = tmp_path / "metrics.jsonl"
    w = JSONWriter(str(path))
    w.write({"type": "epoch", "epoch": 0, "iteration": 2, "loss": 1.0, "ap": {"net1": 0.1}})
    w.write({"type": "epoch", "epoch": 1, "iteration": 4, "loss": float("nan")})
    w.after_train()
    w = JSONWriter(str(path))  # a resumed run repeats epoch 1
    w.write({"type": "epoch", "epoch": 1, "iteration": 4, "loss": 0.5})
    w.write({"type": "iter", "epoch": 2, "iteration": 4, "loss": 0.4})
    w.after_train()
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[1])["loss"] is None
    path.write_text(path.read_text() + '{"type": "epo')  # a line cut by a kill
    epochs = read_metrics(str(tmp_path), kind="epoch")
    assert [(r["epoch"], r["loss"]) for r in epochs] == [(0, 1.0), (1, 0.5)]
    assert epochs[0]["ap"] == {"net1": 0.1}
    assert len(read_metrics(str(path))) == 3


def test_a_fresh_run_moves_the_previous_run_aside(tmp_path, caplog):
    from semipose.engine.launch import _set_aside_previous_run

    (tmp_path / "checkpoint.pth.tar").write_bytes(b"epoch 2")
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    (tmp_path / "run_train.log").write_text("log")
    with caplog.at_level("WARNING"):
        _set_aside_previous_run(str(tmp_path))
    kept = list(tmp_path.glob("previous_*"))
    assert len(kept) == 1 and "moved to" in caplog.text and kept[0].name in caplog.text
    assert (kept[0] / "checkpoint.pth.tar").read_bytes() == b"epoch 2"
    assert (kept[0] / "metrics.jsonl").is_file() and not (tmp_path / "checkpoint.pth.tar").exists()
    assert (tmp_path / "run_train.log").is_file()  # logs are per run already
    _set_aside_previous_run(str(tmp_path))  # nothing left to move: nothing happens
    assert len(list(tmp_path.glob("previous_*"))) == 1


def test_resume_of_a_cosine_run_with_more_epochs_stretches_the_schedule(tmp_path, toy_trainer):
    from semipose.utils.optim import WarmupCosine

    def cosine(trainer, total):
        return torch.optim.lr_scheduler.LambdaLR(trainer.optimizer, WarmupCosine(total))

    trainer, _ = toy_trainer()
    sched = cosine(trainer, total=4)
    ck = Checkpointer(str(tmp_path), trainer.model, trainer.optimizer, sched,
                        schedule=(0.1, 0.1, [1, 2]))
    for _ in range(4):
        trainer.optimizer.step()
        sched.step()
    ck.save(1)
    assert trainer.lr == pytest.approx(0.0)  # the end of the 4-iteration cosine
    longer, _ = toy_trainer()
    sched2 = cosine(longer, total=8)
    ck2 = Checkpointer(str(tmp_path), longer.model, longer.optimizer, sched2,
                         schedule=(0.1, 0.1, [1, 2]))
    ck2.resume()
    assert sched2.lr_lambdas[0].total == 8 and sched2.last_epoch == 4
    assert longer.lr == pytest.approx(0.1 * 0.5)  # half way through the 8-iteration cosine


def test_resume_of_a_cosine_run_ignores_multistep_keys(tmp_path, toy_trainer, caplog):
    """LR_FACTOR / LR_STEP do not drive a cosine schedule: changing them warns of nothing and
    changes nothing; a changed LR still applies."""
    from semipose.utils.optim import WarmupCosine

    def resumed(schedule):
        trainer, _ = toy_trainer()
        sched = torch.optim.lr_scheduler.LambdaLR(trainer.optimizer, WarmupCosine(8))
        ck = Checkpointer(str(tmp_path), trainer.model, trainer.optimizer, sched,
                            schedule=schedule)
        return trainer, sched, ck

    trainer, sched, ck = resumed((0.1, 0.1, [1, 2]))
    for _ in range(4):
        trainer.optimizer.step()
        sched.step()
    ck.save(1)
    again, _, ck2 = resumed((0.1, 0.5, [3, 6]))
    with caplog.at_level("WARNING"):
        ck2.resume()
    assert not [r for r in caplog.records if "schedule" in r.getMessage()]
    assert again.lr == pytest.approx(0.1 * 0.5)
    lower, _, ck3 = resumed((0.02, 0.5, [3, 6]))
    with caplog.at_level("WARNING"):
        ck3.resume()
    assert "lr 0.1 -> 0.02" in caplog.text and "lr_step" not in caplog.text
    assert lower.lr == pytest.approx(0.02 * 0.5)


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (3, 2, 1, 0), (1, 3, 0, 2), (2, 0, 3, 1)])
def test_checkpoint_and_best_model_do_not_depend_on_hook_order(tmp_path, toy_trainer,
                                                               monkeypatch, order):
    """The checkpoint is written once per epoch with that epoch's best, ``model_best`` holds the
    weights of the best epoch (1 of 0..2), whatever order the hooks were registered in."""
    import semipose.checkpoint.checkpointer as C

    saves = []
    real = C.save_checkpoint
    monkeypatch.setattr(C, "save_checkpoint",
                        lambda states, *a, **k: (saves.append(states["epoch"]),
                                                 real(states, *a, **k)))
    trainer, sched = toy_trainer()
    ck = make_checkpointer(tmp_path, trainer, sched)
    perfs = [0.2, 0.5, 0.4]
    weights = {}

    def evaluate(epoch):
        weights[epoch] = trainer.model.weight.detach().clone()
        return {"perf": perfs[epoch], "loss": 0.1, "acc": 0.0, "heads": ("net1",),
                "net1": {"AP": perfs[epoch]}}

    records = []

    class Sink(MetricsWriter):
        def write(self, record):
            if record["type"] == "epoch":
                saved = torch.load(tmp_path / "checkpoint.pth.tar", weights_only=True)
                records.append((record["epoch"], record.get("best_epoch"), saved["epoch"]))

    hooks = [H.EvalHook(evaluate, ck), CheckpointHook(ck), BestModelHook(ck), H.LRScheduler(sched)]
    trainer.register_hooks([hooks[i] for i in order] + [Sink()])
    trainer.train(0, 3)
    assert saves == [1, 2, 3]  # once per epoch
    saved = torch.load(tmp_path / "checkpoint.pth.tar", weights_only=True)
    assert saved["best_epoch"] == 1 and saved["perf"] == pytest.approx(0.5)
    assert saved["last_results"] == {"net1": pytest.approx(0.4)}
    assert saved["scheduler"]["last_epoch"] == 3
    best = torch.load(tmp_path / "model_best.pth.tar", weights_only=True)
    assert torch.equal(best["weight"], weights[1]) and not torch.equal(best["weight"], weights[2])
    # the epoch record goes out after every after_epoch: its best is the checkpoint's
    assert [(e, b) for e, b, _ in records] == [(0, 0), (1, 1), (2, 1)]
