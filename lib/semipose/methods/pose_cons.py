"""PoseCons (the paper's single-network baseline): one network whose easy-view heatmap teaches its
own hard-view heatmap. The module is ``models.pose_cons.PoseCons``; the loss ``PoseDisLoss``."""

from semipose.core.loss import PoseDisLoss
from semipose.methods.base import Method
from semipose.models.build import build_backbone, init_network, pretrained_state, semi_kwargs
from semipose.models.pose_cons import PoseCons

__all__ = ["PoseConsMethod"]


class PoseConsMethod(Method):
    """``MODEL.NAME: pose_cons``: ``loss_pose + loss_cons`` on ``PoseCons``' training dict."""

    network_attrs = ("resnet",)
    teacher_attrs = ("resnet",)

    def build_model(self, is_train):
        cfg = self.cfg
        net = build_backbone(cfg, cfg.MODEL.BACKBONE, head_name="final_layer")
        init_network(net, cfg, is_train, pretrained_state(cfg, is_train))
        return PoseCons(net, **semi_kwargs(cfg))

    def build_criterion(self, use_target_weight):
        return PoseDisLoss(use_target_weight, path_reduction=self.cfg.HARD_AUG.PATH_REDUCTION)

    def labeled_heatmap(self, outputs):
        return outputs["sup_ht"]

    def teacher_heatmaps(self, outputs):
        return {"net1": outputs["unsup_ht"]}
