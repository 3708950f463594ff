"""Supervised training of one pose network (SimpleBaseline's PoseResNet, HRNet): the original's
``pose_resnet`` and ``pose_hrnet``."""

from semipose.checkpoint.files import extract_net
from semipose.core.loss import SupervisedLoss
from semipose.methods.base import Method
from semipose.methods.pose_dual import PoseDualMethod
from semipose.models.build import build_backbone, init_network, pretrained_state

__all__ = ["Supervised"]

_BACKBONE = {"pose_resnet": "resnet", "pose_hrnet": "hrnet"}

#: where a multi-network checkpoint (PoseDual's layout, shared by PoseCons and SSPCM for their
#: first networks) keeps each network: label -> key prefix
_RELEASED = dict(zip(PoseDualMethod.nets, (a + "." for a in PoseDualMethod.network_attrs)))


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

    readable_nets = tuple(_RELEASED)

    def eval_state(self, state_dict, net=None):
        """A multi-network (PoseDual/PoseCons/SSPCM) checkpoint gives net 1's weights (as the
        original's valid.py did, there silently), or with ``net='net2'`` net 2's.

        Raises:
            ValueError: ``net`` names a network the file does not hold (or no known network).
        """
        prefix = _RELEASED.get(net or "net1")
        if prefix is None:
            raise ValueError(
                f"{self.name} cannot read network {net!r}; it reads {self.readable_nets}"
            )
        if any(k.startswith(prefix) for k in state_dict):
            return extract_net(state_dict, prefix)
        if net not in (None, "net1"):
            raise ValueError(f"the checkpoint holds no {net} ({prefix}) network")
        return state_dict
