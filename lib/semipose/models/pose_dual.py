"""PoseDual: two pose networks that teach each other on hard views of unlabeled crops.

Ported from the original's lib/models/pose_dual.py, class ``PoseCotrain`` (MIT). The networks are
built outside (``semipose.models.build``) and passed in; the hard augmentation lives in
``hard_augment``.
"""

import torch

from semipose.models.hard_augment import HardViewModel, heatmap_stride, identity_theta

__all__ = ["PoseDual", "split_inputs", "heatmap_stride"]


def split_inputs(inputs, cons_rand_aug):
    """Unpacks [sup_x, unsup_x(, aug_unsup_x)]; the RandAug copy is required if cons_rand_aug."""
    if len(inputs) not in (2, 3):
        raise ValueError(
            f"training input must be [sup_x, unsup_x(, aug_unsup_x)], got {len(inputs)} items"
        )
    aug = inputs[2] if len(inputs) == 3 else None
    if cons_rand_aug and aug is None:
        raise ValueError("cons_rand_aug=True needs the RandAugment copy as the third input")
    return inputs[0], inputs[1], aug


class PoseDual(HardViewModel):
    """Two networks ``resnet`` (net 1) and ``resnet2`` (net 2) with the original's names.

    Training (input a list ``[sup_x, unsup_x(, aug_unsup_x)]``, each (N, 3, H_in, W_in)):

    1. both nets on ``sup_x`` (with gradient);
    2. teachers: both nets on the easy view ``unsup_x`` under ``no_grad``, in the current (train)
       mode, so BatchNorm uses the batch statistics and updates its running statistics (with
       ``hard_teacher``, the control, on a random affine view of ``unsup_x`` instead);
    3. hard view: source = ``aug_unsup_x`` if ``cons_rand_aug`` else ``unsup_x``; the optional
       hard ops (joint cutout, or the ``hard_ops`` sequence; net 1's image at net 2's argmax and
       vice versa, heatmap → input stride); optional per-sample random affine θ, shared by both
       images and both teacher heatmaps;
    4. students: net k on its hard image (with gradient).

    Each network forward processes exactly one batch (sup and unsup are never concatenated), so the
    BatchNorm statistics are per forward as in the original.

    Args:
        resnet: net 1, a module returning a heatmap.
        resnet2: net 2, same architecture.
        **hard_view: the keyword-only ``HardViewModel`` settings: scale_factor, rotation_factor,
            mask_joint_num, mask_joint_fix, trained_joints, unsup_transform, cons_rand_aug,
            same_view, hard_teacher, mask_joint_relative and the hard-op settings (hard_ops,
            jo_joint_num, co_holes, cm_holes, jccm_cm_holes, mixup_alpha, jo_fix, hole_fix,
            joint_pool_fix, hard_paths). With ``same_view`` (no RandAug, no
            cutout, identity θ) each teacher heatmap is the detached student output, so each net
            runs once on ``unsup_x``.

    With several ``hard_paths`` (MultiAugs' multi-path consistency), step 3 builds one image per
    net and path (the paths in order, each step drawn for net 1 then net 2), one θ warps them all,
    and step 4 runs each net once per path. A teacher replaced through ``set_teachers`` (the EMA
    teacher) runs the easy-view pass of its net in step 2; the cross pairing is unchanged.

    Returns (training), a dict:
        ``sup_ht1, sup_ht2`` (N, K, H, W) with gradient; ``unsup_ht1, unsup_ht2`` the teachers on
        the easy view (no gradient); ``unsup_ht_trans1, unsup_ht_trans2`` the teachers warped by θ
        (by θ_t⁻¹·θ with ``hard_teacher``);
        ``cons_ht1, cons_ht2`` the students on the hard views; ``unsup_x_trans`` (net 1's hard
        image), ``unsup_x_trans_2`` (net 2's); ``theta`` (N, 2, 3). With more than one path,
        also ``cons_hts1, cons_hts2`` (per-path students, tuples) and ``cons_xs1, cons_xs2``
        (per-path hard images); the single-path keys hold the first path's.
    Returns (eval, input a tensor): ``(ht1, ht2)``.
    """

    teacher_attrs = ("resnet", "resnet2")

    def __init__(self, resnet, resnet2, **hard_view):
        super().__init__(**hard_view)
        self.resnet = resnet
        self.resnet2 = resnet2

    def forward(self, x):
        if torch.is_tensor(x):
            return self.resnet(x), self.resnet2(x)
        sup_x, unsup_x, aug_x = split_inputs(x, self.cons_rand_aug)
        sup_ht1 = self.resnet(sup_x)
        sup_ht2 = self.resnet2(sup_x)
        batch = unsup_x.shape[0]

        if self.same_view:
            cons_ht1 = self.resnet(unsup_x)
            cons_ht2 = self.resnet2(unsup_x)
            unsup_ht1, unsup_ht2 = cons_ht1.detach(), cons_ht2.detach()
            return {
                "sup_ht1": sup_ht1,
                "sup_ht2": sup_ht2,
                "unsup_ht1": unsup_ht1,
                "unsup_ht2": unsup_ht2,
                "unsup_ht_trans1": unsup_ht1,
                "unsup_ht_trans2": unsup_ht2,
                "cons_ht1": cons_ht1,
                "cons_ht2": cons_ht2,
                "unsup_x_trans": unsup_x,
                "unsup_x_trans_2": unsup_x,
                "theta": identity_theta(batch, device=unsup_x.device),
            }

        # per path, net 1's image is cut at net 2's joints and vice versa (JC alone: as _cutout);
        # one θ for every path and both nets
        (unsup_ht1, unsup_ht2), (trans1, trans2), paths, theta = self._hard_views(
            unsup_x, aug_x, ("resnet", "resnet2")
        )
        cons_hts1, cons_hts2 = [], []
        for x1, x2 in paths:  # one forward per net and path, each with its own BN statistics
            cons_hts1.append(self.resnet(x1))
            cons_hts2.append(self.resnet2(x2))
        out = {
            "sup_ht1": sup_ht1,
            "sup_ht2": sup_ht2,
            "unsup_ht1": unsup_ht1,
            "unsup_ht2": unsup_ht2,
            "unsup_ht_trans1": trans1,
            "unsup_ht_trans2": trans2,
            "cons_ht1": cons_hts1[0],
            "cons_ht2": cons_hts2[0],
            "unsup_x_trans": paths[0][0],
            "unsup_x_trans_2": paths[0][1],
            "theta": theta,
        }
        if len(paths) > 1:
            out.update(
                cons_hts1=tuple(cons_hts1),
                cons_hts2=tuple(cons_hts2),
                cons_xs1=tuple(x1 for x1, _ in paths),
                cons_xs2=tuple(x2 for _, x2 in paths),
            )
        return out
