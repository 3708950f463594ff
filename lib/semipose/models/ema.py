"""Exponential-moving-average (mean) teachers: EMA copies of a model's networks.

After every optimizer step each copy moves towards its network,
``teacher = decay · teacher + (1 − decay) · student``, on every floating-point parameter *and*
buffer (BatchNorm running mean and variance included); integer buffers (``num_batches_tracked``)
are copied. The copies never receive gradients.

BatchNorm of the teacher pass (``teacher_bn``):

- ``'batch'`` (default): the copy runs in train mode, normalising with the easy batch's own
  statistics, as the original's teachers do; its running statistics are restored after the pass,
  so they stay exactly the EMA of the student's;
- ``'running'``: the copy runs in eval mode and normalises with those EMA running statistics.

The copies live outside the model's module tree (``HardViewModel.set_teachers`` takes their
forward callables), so the model's ``state_dict`` keeps the original's keys; ``state_dict()`` here
is what a checkpoint stores under its own key (``ema``).
"""

import copy
import logging
from collections import OrderedDict

import torch

logger = logging.getLogger(__name__)

__all__ = ["TEACHER_BN_MODES", "ModelEMA"]

#: BatchNorm modes of the EMA teacher's forward (EMA.TEACHER_BN)
TEACHER_BN_MODES = ("batch", "running")


class ModelEMA:
    """EMA copies of named networks, usable as their teachers.

    Args:
        nets: ``{name: nn.Module}``, the students (e.g. ``{'resnet': ..., 'resnet2': ...}``).
        decay: d in ``teacher = d·teacher + (1 − d)·student``, in [0, 1].
        teacher_bn: ``'batch'`` or ``'running'`` (module docstring).

    Attributes:
        shadows: ``OrderedDict(name -> copy)``, on the students' devices, ``requires_grad`` off.
        updates: the number of ``update`` calls so far.

    Raises:
        ValueError: a decay outside [0, 1], an unknown ``teacher_bn`` or no networks.
    """

    def __init__(self, nets, decay=0.999, *, teacher_bn="batch"):
        if not 0.0 <= float(decay) <= 1.0:
            raise ValueError(f"EMA decay must lie in [0, 1], got {decay}")
        if teacher_bn not in TEACHER_BN_MODES:
            raise ValueError(f"teacher_bn must be one of {TEACHER_BN_MODES}, got {teacher_bn!r}")
        if not nets:
            raise ValueError("ModelEMA needs at least one network")
        self.nets = OrderedDict(nets)
        self.decay = float(decay)
        self.teacher_bn = teacher_bn
        self.shadows = OrderedDict((name, self._copy(net)) for name, net in self.nets.items())
        self.updates = 0

    def _copy(self, net):
        shadow = copy.deepcopy(net)
        shadow.requires_grad_(False)
        shadow.train(self.teacher_bn == "batch")
        return shadow

    @torch.no_grad()
    def update(self):
        """One EMA step of every copy towards its network (call after ``optimizer.step()``)."""
        d = self.decay
        for name, net in self.nets.items():
            shadow = self.shadows[name]
            for t, s in zip(_tensors(shadow), _tensors(net)):
                if t.is_floating_point():
                    t.mul_(d).add_(s.detach().to(t.dtype), alpha=1.0 - d)
                else:
                    t.copy_(s)
        self.updates += 1

    @torch.no_grad()
    def reset(self):
        """Copies the networks' current weights into the copies (an EMA started afresh)."""
        for name, net in self.nets.items():
            for t, s in zip(_tensors(self.shadows[name]), _tensors(net)):
                t.copy_(s.detach())
        self.updates = 0

    def teacher(self, name):
        """The teacher pass of network ``name``: ``callable(x) -> heatmap`` (no gradient)."""
        shadow = self.shadows[name]

        def forward(x):
            with torch.no_grad():
                if self.teacher_bn == "running":
                    return shadow(x)
                saved = [b.clone() for b in shadow.buffers()]
                out = shadow(x)
                for b, v in zip(shadow.buffers(), saved):
                    b.copy_(v)
                return out

        return forward

    def teachers(self):
        """``{name: teacher pass}`` for every network (``HardViewModel.set_teachers``)."""
        return {name: self.teacher(name) for name in self.shadows}

    def state_dict(self):
        """``{'decay', 'updates', 'teacher_bn', 'nets': {name: state_dict}}``."""
        return {
            "decay": self.decay,
            "updates": self.updates,
            "teacher_bn": self.teacher_bn,
            "nets": {name: shadow.state_dict() for name, shadow in self.shadows.items()},
        }

    def load_state_dict(self, state):
        """Restores the copies (strict keys) and the update count from ``state_dict()``'s dict.

        Raises:
            KeyError: ``state`` lacks a network of this EMA.
        """
        nets = state["nets"]
        missing = [name for name in self.shadows if name not in nets]
        if missing:
            raise KeyError(f"EMA state has no copy of {missing}; it holds {sorted(nets)}")
        for name, shadow in self.shadows.items():
            shadow.load_state_dict(nets[name])
        self.updates = int(state.get("updates", 0))
        saved = state.get("decay")
        if saved is not None and float(saved) != self.decay:
            logger.warning(f"EMA decay {self.decay} (config) differs from the checkpoint's {saved}")


def _tensors(module):
    """Every parameter and buffer of ``module`` in a fixed order (parameters first)."""
    return [*module.parameters(), *module.buffers()]
