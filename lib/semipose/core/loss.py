"""Heatmap losses: ``JointsMSELoss`` and the PoseDual / PoseCons objectives.

Ported from the original's lib/core/loss.py (MIT). Every loss returns ``(total, {'loss_pose': ...,
'loss_cons': ...})`` (parts detached). The original's unused CPU copy of the pseudo targets and its
unused teacher argmax are not computed.
"""

from torch import nn

__all__ = [
    "JointsMSELoss",
    "PoseCoLoss",
    "PoseDisLoss",
    "SupervisedLoss",
]


class JointsMSELoss(nn.Module):
    """0.5 · mean over (batch, joint, pixel) of w² · (pred − gt)².

    The mean runs over all K channels, zero-weight ones included, so with weights in {0, 1} the loss
    scales with (#weighted joints)/K (the original's behaviour).

    Args:
        use_target_weight: multiply each joint's residual by its weight.
    """

    def __init__(self, use_target_weight=True):
        super().__init__()
        self.use_target_weight = use_target_weight

    def forward(self, output, target, target_weight=None):
        """Args:
            output: (N, K, H, W) predicted heatmaps.
            target: (N, K, H, W) target heatmaps.
            target_weight: (N, K, 1) or (N, K) weights (ignored unless ``use_target_weight``).

        Returns:
            A scalar tensor.
        """
        diff = output - target
        if self.use_target_weight:
            if target_weight is None:
                raise ValueError("JointsMSELoss(use_target_weight=True) needs target_weight")
            diff = diff * target_weight.reshape(output.shape[0], output.shape[1], 1, 1).to(
                diff.dtype
            )
        return 0.5 * diff.pow(2).mean()


class SupervisedLoss(nn.Module):
    """JointsMSE on a single network's heatmap (pose_resnet, pose_hrnet)."""

    def __init__(self, use_target_weight=True):
        super().__init__()
        self.mse = JointsMSELoss(use_target_weight)

    def forward(self, outputs, target, target_weight=None):
        """Args: outputs (N, K, H, W); target (N, K, H, W); target_weight (N, K, 1).

        Returns:
            ``(total, {'loss_pose': total.detach()})``.
        """
        loss = self.mse(outputs, target, target_weight)
        return loss, {"loss_pose": loss.detach()}


class PoseCoLoss(nn.Module):
    """PoseDual: supervised loss averaged over the two nets + cross-teaching consistency.

    - ``loss_pose = 0.5·MSE(sup_ht1, t, w) + 0.5·MSE(sup_ht2, t, w)``;
    - ``loss_cons = MSE(cons_ht1, unsup_ht_trans2, w_u) + MSE(cons_ht2, unsup_ht_trans1, w_u)``,
      targets detached: net 1's hard prediction is taught by net 2's warped easy prediction and
      vice versa.
    """

    def __init__(self, use_target_weight=True):
        super().__init__()
        self.mse = JointsMSELoss(use_target_weight)

    def forward(self, outputs, targets, weights):
        """Args:
            outputs: the PoseDual training dict.
            targets: ``[sup_target, unsup_target]`` (N, K, H, W); the unlabeled target is not used.
            weights: ``[sup_weight, unsup_weight]`` (N, K, 1); the unlabeled one is 1 on the labeled
                dataset's joints.

        Returns:
            ``(total, {'loss_pose', 'loss_cons'})``.
        """
        sup_t = targets[0]
        sup_w, unsup_w = weights[0], weights[1]
        loss_pose = 0.5 * self.mse(outputs["sup_ht1"], sup_t, sup_w) + 0.5 * self.mse(
            outputs["sup_ht2"], sup_t, sup_w
        )
        loss_cons = self.mse(
            outputs["cons_ht1"], outputs["unsup_ht_trans2"].detach(), unsup_w
        ) + self.mse(outputs["cons_ht2"], outputs["unsup_ht_trans1"].detach(), unsup_w)
        total = loss_pose + loss_cons
        return total, {"loss_pose": loss_pose.detach(), "loss_cons": loss_cons.detach()}


class PoseDisLoss(nn.Module):
    """PoseCons: ``MSE(sup_ht, t, w) + MSE(cons_ht, unsup_ht_trans.detach(), w_u)``."""

    def __init__(self, use_target_weight=True):
        super().__init__()
        self.mse = JointsMSELoss(use_target_weight)

    def forward(self, outputs, targets, weights):
        """Args: as ``PoseCoLoss`` with the PoseCons training dict. Returns ``(total, parts)``."""
        loss_pose = self.mse(outputs["sup_ht"], targets[0], weights[0])
        loss_cons = self.mse(outputs["cons_ht"], outputs["unsup_ht_trans"].detach(), weights[1])
        total = loss_pose + loss_cons
        return total, {"loss_pose": loss_pose.detach(), "loss_cons": loss_cons.detach()}
