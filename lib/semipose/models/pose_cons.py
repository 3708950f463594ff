"""PoseCons: one pose network whose easy-view heatmap teaches its own hard-view heatmap.

Ported from the original's lib/models/pose_cons.py, class ``PoseCons`` (MIT). The network is built
outside (``semipose.models.build``) and passed in; the hard augmentation lives in ``hard_augment``.
"""

import torch

from semipose.models.hard_augment import HardViewModel, identity_theta
from semipose.models.pose_dual import split_inputs

__all__ = ["PoseCons"]


class PoseCons(HardViewModel):
    """A single network ``resnet`` trained with supervised + self-consistency losses.

    Training (input a list ``[sup_x, unsup_x(, aug_unsup_x)]``): the network on ``sup_x``; the
    teacher, the same network on the easy view ``unsup_x`` under ``no_grad`` in train mode; the hard
    view = the source (RandAug copy or ``unsup_x``) → the optional hard ops (joint cutout or the
    ``hard_ops`` sequence) at the teacher's own argmax → optional random affine θ (also applied to
    the teacher heatmap); the student, the network on the hard view. Each forward processes one
    batch (no concatenation), so BatchNorm statistics are per forward. With ``hard_teacher`` (the
    collapse-prone control) the teacher runs on a random affine view of ``unsup_x`` of its own and
    its heatmap is carried to the student's frame by θ_t⁻¹·θ.

    Args:
        resnet: the network, returning a heatmap.
        **hard_view: the keyword-only ``HardViewModel`` settings, as for ``PoseDual``.

    With several ``hard_paths`` (MultiAugs' multi-path consistency) the student runs once per path,
    each path's hard image cut at the same teacher joints and warped by the same θ. A teacher
    replaced through ``set_teachers`` (the EMA teacher) runs the easy-view pass instead of
    ``resnet``.

    Returns (training), a dict:
        ``sup_ht`` (N, K, H, W) with gradient; ``unsup_ht`` the teacher on the easy view (no
        gradient); ``unsup_ht_trans`` the teacher warped by θ; ``cons_x`` the hard image;
        ``cons_ht`` the student; ``theta`` (N, 2, 3). With more than one path, also ``cons_xs``
        and ``cons_hts``: tuples with one hard image / student heatmap per path (``cons_x`` and
        ``cons_ht`` are the first path's).
    Returns (eval, input a tensor): the heatmap (N, K, H, W).
    """

    teacher_attrs = ("resnet",)

    def __init__(self, resnet, **hard_view):
        super().__init__(**hard_view)
        self.resnet = resnet

    def forward(self, x):
        if torch.is_tensor(x):
            return self.resnet(x)
        sup_x, unsup_x, aug_x = split_inputs(x, self.cons_rand_aug)
        sup_ht = self.resnet(sup_x)
        batch = unsup_x.shape[0]

        if self.same_view:
            cons_ht = self.resnet(unsup_x)
            unsup_ht = cons_ht.detach()
            return {
                "sup_ht": sup_ht,
                "unsup_ht": unsup_ht,
                "unsup_ht_trans": unsup_ht,
                "cons_x": unsup_x,
                "cons_ht": cons_ht,
                "theta": identity_theta(batch, device=unsup_x.device),
            }

        # every path at the teacher's own joints, then one θ for all paths
        (unsup_ht,), (unsup_ht_trans,), paths, theta = self._hard_views(
            unsup_x, aug_x, ("resnet",)
        )
        cons_xs = tuple(x for (x,) in paths)
        cons_hts = tuple(self.resnet(x) for x in cons_xs)  # one forward (own BN statistics) each
        out = {
            "sup_ht": sup_ht,
            "unsup_ht": unsup_ht,
            "unsup_ht_trans": unsup_ht_trans,
            "cons_x": cons_xs[0],
            "cons_ht": cons_hts[0],
            "theta": theta,
        }
        if len(cons_hts) > 1:
            out.update(cons_xs=cons_xs, cons_hts=cons_hts)
        return out
