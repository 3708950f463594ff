"""PoseCons: one pose network whose easy-view heatmap teaches its own hard-view heatmap.

Ported from the original's lib/models/pose_cons.py, class ``PoseCons`` (MIT). The network is built
outside (``semipose.models.build``) and passed in; the hard augmentation lives in ``hard_augment``.
"""

import logging

import torch
from torch import nn

from semipose.core.inference import get_max_preds_tensor
from semipose.models.hard_augment import (
    get_batch_affine_transform,
    identity_theta,
    mask_joint,
    warp,
)
from semipose.models.pose_dual import heatmap_of, heatmap_stride, split_inputs

logger = logging.getLogger(__name__)

__all__ = ["PoseCons"]


class PoseCons(nn.Module):
    """A single network ``resnet`` trained with supervised + self-consistency losses.

    Training (input a list ``[sup_x, unsup_x(, aug_unsup_x)]``): the network on ``sup_x``; the
    teacher, the same network on the easy view ``unsup_x`` under ``no_grad`` in train mode; the hard
    view = the source (RandAug copy or ``unsup_x``) → optional cutout at the teacher's own argmax →
    optional random affine θ (also applied to the teacher heatmap); the student, the network on the
    hard view. Each forward processes one batch (no concatenation), so BatchNorm statistics are per
    forward.

    Args:
        resnet: the network, returning a heatmap or ``(features, heatmap)``.
        scale_factor, rotation_factor, mask_joint_num, mask_joint_fix, trained_joints,
        unsup_transform, cons_rand_aug, same_view: as for ``PoseDual``.

    Returns (training), a dict:
        ``sup_ht`` (N, K, H, W) with gradient; ``unsup_ht`` the teacher on the easy view (no
        gradient); ``unsup_ht_trans`` the teacher warped by θ; ``cons_x`` the hard image;
        ``cons_ht`` the student; ``theta`` (N, 2, 3).
    Returns (eval, input a tensor): the heatmap (N, K, H, W).
    """

    def __init__(
        self,
        resnet,
        *,
        scale_factor=0.25,
        rotation_factor=30,
        mask_joint_num=0,
        mask_joint_fix=False,
        trained_joints=None,
        unsup_transform=True,
        cons_rand_aug=False,
        same_view=False,
    ):
        super().__init__()
        self.resnet = resnet
        self.scale_factor = scale_factor
        self.rotation_factor = rotation_factor
        self.mask_joint_num = mask_joint_num
        self.mask_joint_fix = mask_joint_fix
        self.trained_joints = None if trained_joints is None else list(trained_joints)
        self.unsup_transform = unsup_transform
        self.cons_rand_aug = cons_rand_aug
        self.same_view = same_view
        if mask_joint_fix and mask_joint_num > 0 and self.trained_joints is None:
            logger.warning("mask_joint_fix without trained_joints: cutout draws from all channels")

    def forward(self, x):
        if torch.is_tensor(x):
            return heatmap_of(self.resnet(x))
        sup_x, unsup_x, aug_x = split_inputs(x, self.cons_rand_aug)
        sup_ht = heatmap_of(self.resnet(sup_x))
        batch = unsup_x.shape[0]

        if self.same_view:
            cons_ht = heatmap_of(self.resnet(unsup_x))
            unsup_ht = cons_ht.detach()
            return {
                "sup_ht": sup_ht,
                "unsup_ht": unsup_ht,
                "unsup_ht_trans": unsup_ht,
                "cons_x": unsup_x,
                "cons_ht": cons_ht,
                "theta": identity_theta(batch, device=unsup_x.device),
            }

        with torch.no_grad():
            unsup_ht = heatmap_of(self.resnet(unsup_x))
            cons_x = aug_x if self.cons_rand_aug else unsup_x
            if self.mask_joint_num > 0:
                preds, _ = get_max_preds_tensor(unsup_ht)
                cons_x = mask_joint(
                    cons_x,
                    preds * heatmap_stride(cons_x, unsup_ht),
                    self.mask_joint_num,
                    fix_clamp=self.mask_joint_fix,
                    joint_ids=self.trained_joints if self.mask_joint_fix else None,
                )
            if self.unsup_transform:
                theta = get_batch_affine_transform(
                    batch, self.scale_factor, self.rotation_factor, device=unsup_x.device
                )
                cons_x = warp(cons_x, theta)
                unsup_ht_trans = warp(unsup_ht, theta)
            else:
                theta = identity_theta(batch, device=unsup_x.device)
                unsup_ht_trans = unsup_ht

        cons_ht = heatmap_of(self.resnet(cons_x))
        return {
            "sup_ht": sup_ht,
            "unsup_ht": unsup_ht,
            "unsup_ht_trans": unsup_ht_trans,
            "cons_x": cons_x,
            "cons_ht": cons_ht,
            "theta": theta,
        }
