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
- ``networks(model)``: its pose networks by attribute name (what ``TRAIN.COMPILE`` compiles),
  ``student_nets(model)`` / ``teacher_nets(model)``: the trained networks and those whose teacher
  pass an EMA copy may take (EMA.ENABLED), all read from the class attributes ``network_attrs``
  and ``teacher_attrs``;
- ``checkpoint_prefix(net)``: the state_dict key prefix of a network of its checkpoints;
- ``eval_state(state_dict, net)``: the part of a checkpoint that its evaluation module loads
  (``net``: which network of a file with several; ``readable_nets`` lists the choices);
- ``hooks()``: extra training hooks (``semipose.common.hooks.HookBase`` subclasses; none by
  default).
"""

from collections import OrderedDict

__all__ = ["SELECT_RULES", "Method", "first"]

#: model-selection rules (TEST.SELECT_BY): net 1's main metric, the mean over the nets, the ensemble
SELECT_RULES = ("net1", "mean", "ensemble")


def first(x):
    """The labeled part of a batch item: ``x[0]`` of a ``[labeled, unlabeled, ...]`` list, else
    ``x`` itself."""
    return x[0] if isinstance(x, (list, tuple)) else x


class Method:
    """Base class of the training methods (one subclass per file under ``semipose.methods``).

    Args:
        cfg: the frozen experiment config; ``build_model`` reads ``MODEL``/``DATASET`` from it,
            the loss reads ``LOSS.USE_TARGET_WEIGHT``.

    Attributes:
        nets: labels of the networks, in the order of the eval forward's outputs.
        heads: labels of the evaluated outputs, in the order of the AP tables.
        network_attrs: the model's attribute holding each network, in ``nets`` order (also the
            networks' state_dict key prefixes); empty: the model itself is the one network.
        teacher_attrs: the attributes of the networks whose teacher pass an EMA copy may take
            (the model's ``set_teachers`` names); empty: no teacher to replace.
        readable_nets: the network labels ``eval_state`` can read out of a checkpoint (the
            ``net`` choices of ``apis.init_model`` beyond ``heads``).
        criterion: the loss module (``core.loss``), built by ``build_criterion``.
    """

    nets = ("net1",)
    heads = ("net1",)
    network_attrs = ()
    teacher_attrs = ()
    readable_nets = ()

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
        """Extra training hooks the method needs (``semipose.common.hooks.HookBase`` subclasses,
        e.g. to refresh a snapshot before every epoch), registered after the default ones."""
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

    # ----------------------------------------------------------------------------- networks
    def networks(self, model):
        """The pose networks of ``model`` (a model this method built), in ``nets`` order.

        Returns:
            ``OrderedDict(attribute name -> nn.Module)``; ``{'': model}`` when the model is itself
            the one network.
        """
        if not self.network_attrs:
            return OrderedDict([("", model)])
        return OrderedDict((name, getattr(model, name)) for name in self.network_attrs)

    def student_nets(self, model):
        """The networks the optimizer trains: every network (``networks``)."""
        return self.networks(model)

    def teacher_nets(self, model):
        """``OrderedDict(name -> network)`` whose teacher pass may be replaced (the EMA teacher)
        through ``model.set_teachers``; empty for a method without teachers."""
        return OrderedDict((name, getattr(model, name)) for name in self.teacher_attrs)

    def checkpoint_prefix(self, net):
        """The state_dict key prefix of network ``net`` (a label of ``nets``) in this method's
        checkpoints: ``'<attribute>.'``, or ``''`` for a model that is one network.

        Raises:
            ValueError: ``net`` is not one of ``nets``.
        """
        if net not in self.nets:
            raise ValueError(f"{self.name} has no network {net!r}; it has {self.nets}")
        return self.network_attrs[self.nets.index(net)] + "." if self.network_attrs else ""

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

    def eval_state(self, state_dict, net=None):
        """The entries of a checkpoint's state_dict that the evaluation module loads.

        Args:
            state_dict: the checkpoint's (unwrapped) state_dict.
            net: a label of ``readable_nets`` to read one network out of a file with several;
                None: the method's default part (here: everything).

        Raises:
            ValueError: ``net`` is not readable by this method, or absent from the file.
        """
        if net is not None and net not in self.readable_nets:
            raise ValueError(f"{self.name} cannot read network {net!r} out of a checkpoint")
        return state_dict
