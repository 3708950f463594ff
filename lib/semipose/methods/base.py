"""The contract every training method fulfils (MMPose's "the model owns its loss", detectron2's
meta-architecture): how its network module is built, what its training loss is, and what it
exposes to the engine.

The engine never tests a method's name: it asks the method for

- ``loss(outputs, targets, weights)`` → ``(total, {part: detached value})``;
- ``labeled_heatmap(outputs)`` / ``labeled_target(targets)``: net 1 on the labeled batch
  (accuracy, debug images);
- ``teacher_heatmaps(outputs)`` and ``unlabeled_weight(weights)``: the teachers' heatmaps per net on
  the unlabeled batch (the collapse monitor; empty for a supervised method);
- ``net_heatmaps(eval_output)`` → one heatmap per net, ``eval_heatmaps(per_net)`` → the evaluated
  outputs in ``heads`` order (e.g. net 1, net 2 and their ensemble);
- ``selection_metric(results)``: the number that selects ``model_best`` (TEST.SELECT_BY: net 1's
  main metric, the mean of the nets' or the ensemble's), ``selection_metrics`` all three;
- ``teacher_nets(model)``: the networks whose teacher pass an EMA copy may take (EMA.ENABLED);
- ``eval_state(state_dict)``: the part of a checkpoint that its evaluation module loads;
- ``hooks()``: extra training hooks (none by default).
"""

from collections import OrderedDict

__all__ = ["SELECT_RULES", "HookBase", "Method", "first"]

#: model-selection rules (TEST.SELECT_BY): net 1's main metric, the mean over the nets, the ensemble
SELECT_RULES = ("net1", "mean", "ensemble")


def first(x):
    """The labeled part of a batch item: ``x[0]`` of a ``[labeled, unlabeled, ...]`` list, else
    ``x`` itself."""
    return x[0] if isinstance(x, (list, tuple)) else x


class HookBase:
    """A behaviour attached to the engine's ``Trainer``; override any of the six calls.

    ``self.trainer`` is set by ``Trainer.register_hooks``. Hooks run in registration order. It
    lives here so that a method's ``hooks()`` can subclass it (this layer does not import the
    engine); ``semipose.engine.train_loop`` exports it too.
    """

    trainer = None

    def before_train(self):
        pass

    def after_train(self):
        pass

    def before_epoch(self):
        pass

    def after_epoch(self):
        pass

    def before_step(self):
        pass

    def after_step(self):
        pass


class Method:
    """Base class of the training methods (one subclass per file under ``semipose.methods``).

    Args:
        cfg: the frozen experiment config; ``build_model`` reads ``MODEL``/``DATASET`` from it,
            the loss reads ``LOSS.USE_TARGET_WEIGHT``.

    Attributes:
        nets: labels of the networks, in the order of the eval forward's outputs.
        heads: labels of the evaluated outputs, in the order of the AP tables.
        criterion: the loss module (``core.loss``), built by ``build_criterion``.
    """

    nets = ("net1",)
    heads = ("net1",)

    def __init__(self, cfg):
        self.cfg = cfg
        self.name = cfg.MODEL.NAME
        self.select_by = cfg.TEST.SELECT_BY
        self._check_select_by()
        self.criterion = self.build_criterion(use_target_weight=cfg.LOSS.USE_TARGET_WEIGHT)

    def _check_select_by(self):
        from semipose.config import ConfigError

        if self.select_by not in SELECT_RULES:
            raise ConfigError(
                f"TEST.SELECT_BY must be one of {SELECT_RULES}, got {self.select_by!r}"
            )
        if self.select_by == "ensemble" and len(self.nets) > 1 and "ensemble" not in self.heads:
            raise ConfigError(
                f"TEST.SELECT_BY 'ensemble': {self.name} evaluates no ensemble (heads {self.heads})"
            )

    # ----------------------------------------------------------------------------- building
    def build_model(self, is_train):
        """The network module (``nn.Module``); initialised when ``is_train``."""
        raise NotImplementedError

    def build_criterion(self, use_target_weight):
        """The loss module: ``criterion(outputs, targets, weights) -> (total, parts)``."""
        raise NotImplementedError

    def hooks(self):
        """Extra training hooks the method needs (objects with ``HookBase``'s six calls, e.g. to
        refresh a snapshot before every epoch), registered after the default ones."""
        return ()

    # ----------------------------------------------------------------------------- training
    def loss(self, outputs, targets, weights):
        """``(total, {part: detached tensor})`` of one training forward's outputs."""
        return self.criterion(outputs, targets, weights)

    def labeled_heatmap(self, outputs):
        """Net 1's heatmap on the labeled batch, (N, K, H, W)."""
        raise NotImplementedError

    def labeled_target(self, targets):
        """The labeled batch's target heatmaps, (N, K, H, W)."""
        return first(targets)

    def teacher_heatmaps(self, outputs):
        """``{net label: (N, K, H, W) teacher heatmap on the unlabeled batch}``; ``{}`` when the
        method has no teacher."""
        return {}

    def unlabeled_weight(self, weights):
        """(N, K, 1) weights of the unlabeled batch (> 0 on the joints the labeled set trains)."""
        return weights[1] if isinstance(weights, (list, tuple)) and len(weights) > 1 else None

    def teacher_nets(self, model):
        """``{name: network}`` whose teacher pass may be replaced (the EMA teacher) through
        ``model.set_teachers``; ``{}`` for a method without teachers."""
        return {}

    # ----------------------------------------------------------------------------- evaluation
    def selection_metrics(self, results):
        """Every model-selection candidate of ``validate``'s results.

        Args:
            results: ``validate``'s dict; ``perfs`` (head -> main metric) where present, else
                ``perf`` stands for the first head.

        Returns:
            ``{'net1': first head, 'mean': mean over the nets' heads, 'ensemble': the ensemble
            head}``; a single-network method's ``mean`` and ``ensemble`` are its net's metric, and
            ``ensemble`` is absent when a multi-network method evaluates none.
        """
        perfs = dict(results.get("perfs") or {})
        first = float(results.get("perf", next(iter(perfs.values()), 0.0)))
        nets = [float(perfs[n]) for n in self.nets if n in perfs] or [first]
        out = {"net1": first, "mean": sum(nets) / len(nets)}
        if "ensemble" in perfs:
            out["ensemble"] = float(perfs["ensemble"])
        elif len(self.nets) == 1:
            out["ensemble"] = first
        return out

    def selection_metric(self, results):
        """The number that selects ``model_best`` (higher is better), by TEST.SELECT_BY."""
        return self.selection_metrics(results)[self.select_by]

    def net_heatmaps(self, output):
        """The eval forward's output as a tuple of heatmaps, one per entry of ``nets``."""
        return tuple(output) if isinstance(output, (tuple, list)) else (output,)

    def eval_heatmaps(self, per_net):
        """``OrderedDict(head -> heatmaps)`` from ``net_heatmaps``' tuple, in ``heads`` order."""
        return OrderedDict(zip(self.heads, per_net))

    def eval_state(self, state_dict):
        """The entries of a checkpoint's state_dict that the evaluation module loads."""
        return state_dict
