"""The work of a DataLoader's worker processes done in the training process (``WORKERS_INLINE``).

On a machine with as many cores as compute threads (two, say, or a study's runs at one thread
each), a worker process takes its core from the step. Loading in the main process
(``WORKERS 0``) avoids that but draws the augmentations from the main process's random state,
so the batches, and every number after them, differ from a run with workers. ``InlineWorkers``
keeps the numbers of ``WORKERS N``: batch ``i`` of an epoch is made with the random streams of
worker ``i % N`` (``random``, NumPy's and torch's CPU generators), seeded from the epoch's base
seed as PyTorch seeds its workers and carried from batch to batch, and the main process's own
streams are put back after every batch, so the step's draws (the hard augmentation) are those
of a run with worker processes too. ``tests/engine/test_inline_workers.py`` holds the batches
and a training run to those of real workers, bit for bit.
"""

import random

import numpy as np
import torch
from torch.utils.data._utils.worker import _generate_state


def _capture():
    return random.getstate(), np.random.get_state(), torch.get_rng_state()


def _restore(state):
    py, npy, th = state
    random.setstate(py)
    np.random.set_state(npy)
    torch.set_rng_state(th)


def worker_streams(base_seed, worker_id):
    """The random state a DataLoader worker ``worker_id`` starts an epoch with (what
    ``torch.utils.data._utils.worker._worker_loop`` seeds), built without touching the caller's."""
    main = _capture()
    try:
        seed = base_seed + worker_id
        random.seed(seed)
        torch.default_generator.manual_seed(seed)  # the CPU generator only, as a worker's
        np.random.seed(_generate_state(base_seed, worker_id))
        return _capture()
    finally:
        _restore(main)


class InlineWorkers:
    """A training DataLoader built with ``num_workers=0`` that yields what the same loader with
    ``workers`` worker processes would.

    Attributes the engine reads (``sampler``, ``batch_size``, ``dataset``, ``generator``...) are
    the inner loader's; ``num_workers`` is ``workers``, so a mid-epoch resume loads and drops the
    done batches as it does with worker processes (that is what moves the workers' streams).
    """

    def __init__(self, loader, workers):
        if loader.num_workers != 0:
            raise ValueError("InlineWorkers wraps a DataLoader built with num_workers=0")
        self.loader = loader
        self.num_workers = int(workers)

    def __len__(self):
        return len(self.loader)

    def __getattr__(self, name):
        if name == "loader":  # not set yet (copy, unpickling)
            raise AttributeError(name)
        return getattr(self.loader, name)

    def __iter__(self):
        iterator = iter(self.loader)
        # the base seed the DataLoader draws from its generator for every new iterator, with or
        # without workers (so the sample order that follows is drawn as with workers, too)
        base_seed = getattr(iterator, "_base_seed", None)
        if base_seed is None:
            raise RuntimeError(
                "WORKERS_INLINE: this PyTorch's DataLoader iterator has no _base_seed; run with "
                "WORKERS_INLINE false")
        streams = [worker_streams(base_seed, k) for k in range(self.num_workers)]
        k = 0
        while True:
            main = _capture()
            _restore(streams[k])
            try:
                batch = next(iterator)
            except StopIteration:
                return
            finally:
                streams[k] = _capture()
                _restore(main)
            yield batch
            k = (k + 1) % self.num_workers
