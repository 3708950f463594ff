"""PoseDual (the paper's method): two networks that teach each other across easy and hard views.
The module is ``models.pose_dual.PoseDual``; the loss ``PoseCoLoss``; evaluation scores net 1,
net 2 and their heatmap ensemble ``0.5·(h1 + h2)``."""

from collections import OrderedDict

from semipose.core.loss import PoseCoLoss
from semipose.methods.base import Method
from semipose.models.build import (
    build_backbone,
    init_network,
    load_pair_state,
    pretrained_state,
    semi_kwargs,
)
from semipose.models.pose_dual import PoseDual

__all__ = ["PoseDualMethod"]


class PoseDualMethod(Method):
    """``MODEL.NAME: pose_dual``: ``resnet`` (net 1) and ``resnet2`` (net 2)."""

    nets = ("net1", "net2")
    heads = ("net1", "net2", "ensemble")
    network_attrs = ("resnet", "resnet2")
    teacher_attrs = ("resnet", "resnet2")

    def build_model(self, is_train):
        cfg = self.cfg
        state = pretrained_state(cfg, is_train)
        nets = [
            build_backbone(cfg, cfg.MODEL.BACKBONE, head_name="final_layer_1")
            for _ in range(2)
        ]
        for net in nets:
            init_network(net, cfg, is_train, state)
        model = PoseDual(nets[0], nets[1], **semi_kwargs(cfg))
        # a PoseDual initialisation file: each net gets its own weights
        load_pair_state(model, state, cfg.MODEL.PRETRAINED, self.network_attrs,
                        layers=cfg.MODEL.EXTRA.get("PRETRAINED_LAYERS"))
        return model

    def build_criterion(self, use_target_weight):
        return PoseCoLoss(use_target_weight, path_reduction=self.cfg.HARD_AUG.PATH_REDUCTION)

    def labeled_heatmap(self, outputs):
        return outputs["sup_ht1"]

    def teacher_heatmaps(self, outputs):
        return {"net1": outputs["unsup_ht1"], "net2": outputs["unsup_ht2"]}

    def eval_heatmaps(self, per_net):
        h1, h2 = per_net
        return OrderedDict(net1=h1, net2=h2, ensemble=(h1 + h2) * 0.5)
