"""WORKERS_INLINE: the workers' loading in the training process gives the batches and the run of
real worker processes, bit for bit, and leaves the main process's random streams alone."""

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from semipose.common.errors import run_cli
from semipose.engine.cli import parse_train_args
from semipose.engine.inline_workers import InlineWorkers
from semipose.engine.launch import do_train

pytestmark = pytest.mark.usefixtures("single_thread")


class _Draws(Dataset):
    """Every item draws from the three global streams a dataset may use."""

    def __len__(self):
        return 11

    def __getitem__(self, index):
        return torch.tensor([index, random.random(), np.random.rand(), torch.rand(()).item()],
                            dtype=torch.float64)


def _epochs(loader, generator, epochs=2):
    out = []
    for epoch in range(epochs):
        generator.manual_seed(100 + epoch)  # as the engine reseeds it each epoch
        out.append([batch.clone() for batch in loader])
    return out


@pytest.mark.parametrize("workers", [1, 3])
def test_inline_batches_equal_worker_processes(workers):
    data = _Draws()
    gen_real, gen_inline = torch.Generator(), torch.Generator()
    real = DataLoader(data, batch_size=2, shuffle=True, num_workers=workers, generator=gen_real)
    inline = InlineWorkers(DataLoader(data, batch_size=2, shuffle=True, num_workers=0,
                                      generator=gen_inline), workers)
    assert len(inline) == 6 and inline.num_workers == workers and inline.batch_size == 2
    want = _epochs(real, gen_real)
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    before = random.random(), np.random.rand(), torch.rand(()).item()
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    got = _epochs(inline, gen_inline)
    # the main process's streams are where they were: the loading drew nothing from them
    assert (random.random(), np.random.rand(), torch.rand(()).item()) == before
    for epoch_want, epoch_got in zip(want, got, strict=True):
        assert len(epoch_want) == len(epoch_got) == 6
        for a, b in zip(epoch_want, epoch_got, strict=True):
            assert torch.equal(a, b)
    # the second epoch draws other numbers (a new base seed), not a replay of the first
    assert not torch.equal(want[0][0][:, 1:], want[1][0][:, 1:])


def test_inline_refuses_a_loader_with_workers():
    with pytest.raises(ValueError, match="num_workers=0"):
        InlineWorkers(DataLoader(_Draws(), num_workers=1), 1)


def _train(argv):
    args, cfg = parse_train_args(argv)
    do_train(cfg, args)


def _records(out):
    path = next(Path(out).rglob("metrics.jsonl"))
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    losses = {(r["epoch"], r["iter"]): r["loss"] for r in recs if r["type"] == "iter"}
    aps = [r.get("ap") for r in recs if r["type"] == "epoch"]
    return losses, aps


def test_a_run_with_inline_workers_is_the_run_with_worker_processes(synth_root, tmp_path,
                                                                    tiny_opts):
    """Two tiny PoseDual runs (Joint Cutout in the step, validated after each epoch), with one
    worker process and with WORKERS_INLINE: the same per-step losses, APs and final weights."""
    cfg_file = tmp_path / "tiny.yaml"
    cfg_file.write_text("MODEL:\n  NAME: pose_dual\n")
    changes = {"WORKERS": "1", "DATASET.TRAIN_LEN": "8", "TRAIN.BATCH_SIZE": "2"}
    results = []
    for inline in ("false", "true"):
        out = tmp_path / f"inline_{inline}"
        opts = tiny_opts(synth_root, out, epochs=2, iters=3, changes=changes,
                         extra=["WORKERS_INLINE", inline])
        assert run_cli(_train, ["--cfg", str(cfg_file), *opts]) == 0
        final = next(out.rglob("final_state.pth.tar"))
        results.append((*_records(out), torch.load(final, weights_only=True)))
    (loss_a, ap_a, w_a), (loss_b, ap_b, w_b) = results
    assert len(loss_a) == 6 and loss_a == loss_b
    assert all(ap_a) and ap_a == ap_b
    assert w_a.keys() == w_b.keys() and all(torch.equal(w_a[k], w_b[k]) for k in w_a)
