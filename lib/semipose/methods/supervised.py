"""Supervised training of one pose network (SimpleBaseline's PoseResNet, HRNet): the original's
``pose_resnet`` and ``pose_hrnet``."""

from semipose.core.loss import SupervisedLoss
from semipose.methods.base import Method
from semipose.models.build import build_backbone, init_network, pretrained_state
from semipose.utils.checkpoint import extract_net

__all__ = ["Supervised"]

_BACKBONE = {"pose_resnet": "resnet", "pose_hrnet": "hrnet"}


class Supervised(Method):
    """JointsMSE on the labeled batch; the module is the bare network (state_dict keys as the
    original's ``pose_resnet``/``pose_hrnet``: ``conv1.weight``, ``final_layer.weight``, ...).

    ``MODEL.NAME`` picks the backbone: ``pose_resnet`` → ResNet, ``pose_hrnet`` → HRNet, unless
    ``MODEL.BACKBONE`` is ``lite`` (the light CPU network); ``MODEL.PRM`` adds the pose refine
    machine.
    """

    def build_model(self, is_train):
        cfg = self.cfg
        backbone = "lite" if cfg.MODEL.BACKBONE == "lite" else _BACKBONE.get(self.name, "resnet")
        net = build_backbone(cfg, backbone, head_name="final_layer", prm=cfg.MODEL.PRM)
        init_network(net, cfg, is_train, pretrained_state(cfg, is_train))
        return net

    def build_criterion(self, use_target_weight):
        return SupervisedLoss(use_target_weight)

    def labeled_heatmap(self, outputs):
        return outputs

    def eval_state(self, state_dict):
        """A PoseDual/PoseCons checkpoint gives net 1's ``resnet.`` weights (as the original's
        valid.py did, there silently)."""
        if any(k.startswith("resnet.") for k in state_dict):
            return extract_net(state_dict, "resnet.")
        return state_dict
