"""Heatmap losses: ``JointsMSELoss`` and the PoseDual / PoseCons objectives.

Ported from the original's lib/core/loss.py (MIT). Every loss returns ``(total, {'loss_pose': ...,
'loss_cons': ...})`` (parts detached). The original's unused CPU copy of the pseudo targets and its
unused teacher argmax are not computed.
"""

from torch import nn

__all__ = [
    "PATH_REDUCTIONS",
    "JointsMSELoss",
    "PoseCoLoss",
    "PoseDisLoss",
    "SupervisedLoss",
    "reduce_paths",
]

#: how the per-path consistency losses of a multi-path student combine (HARD_AUG.PATH_REDUCTION)
PATH_REDUCTIONS = ("sum", "mean")


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


def reduce_paths(terms, reduction):
    """Combines the per-path consistency losses: ``'sum'`` (MultiAugs) or ``'mean'`` (ours).

    One term is returned as it is with either reduction, so a single path is the original's loss
    to the bit.

    Raises:
        ValueError: an unknown reduction.
    """
    if reduction not in PATH_REDUCTIONS:
        raise ValueError(f"path reduction must be one of {PATH_REDUCTIONS}, got {reduction!r}")
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    if reduction == "mean" and len(terms) > 1:
        total = total / len(terms)
    return total


def _paths(outputs, many, one):
    """The per-path student heatmaps ``outputs[many]``, or ``outputs[one]`` as a 1-tuple."""
    hts = outputs.get(many)
    return tuple(hts) if hts else (outputs[one],)


def _path_parts(parts, terms):
    """Adds ``loss_cons_path{k}`` (each path's unreduced term) when there are several paths."""
    if len(terms) > 1:
        parts.update({f"loss_cons_path{k}": t.detach() for k, t in enumerate(terms)})
    return parts


class _PathConsistencyLoss(nn.Module):
    """A supervised term plus a consistency term summed (MultiAugs) or averaged over the student's
    paths (PoseCoLoss, PoseDisLoss).

    Args:
        use_target_weight: weight each joint's residual (``JointsMSELoss``).
        path_reduction: ``'sum'`` (MultiAugs) or ``'mean'`` over paths (HARD_AUG.PATH_REDUCTION).
    """

    def __init__(self, use_target_weight=True, path_reduction="sum"):
        super().__init__()
        self.mse = JointsMSELoss(use_target_weight)
        reduce_paths([None], path_reduction)  # fails early on an unknown reduction
        self.path_reduction = path_reduction

    def _combine(self, loss_pose, terms):
        """``(loss_pose + loss_cons, parts)`` with ``loss_cons`` the reduced per-path ``terms``."""
        loss_cons = reduce_paths(terms, self.path_reduction)
        total = loss_pose + loss_cons
        parts = {"loss_pose": loss_pose.detach(), "loss_cons": loss_cons.detach()}
        return total, _path_parts(parts, terms)


class PoseCoLoss(_PathConsistencyLoss):
    """PoseDual: supervised loss averaged over the two nets + cross-teaching consistency.

    - ``loss_pose = 0.5·MSE(sup_ht1, t, w) + 0.5·MSE(sup_ht2, t, w)``;
    - ``loss_cons = MSE(cons_ht1, unsup_ht_trans2, w_u) + MSE(cons_ht2, unsup_ht_trans1, w_u)``,
      targets detached: net 1's hard prediction is taught by net 2's warped easy prediction and
      vice versa.

    With several paths (``cons_hts1``/``cons_hts2`` in the outputs, MultiAugs) the path k term is
    ``MSE(cons_hts1[k], unsup_ht_trans2, w_u) + MSE(cons_hts2[k], unsup_ht_trans1, w_u)`` (every
    path against the same warped teachers) and ``loss_cons`` is their sum (MultiAugs, the weight
    grows with the number of paths) or their mean.

    Args: as ``_PathConsistencyLoss`` (``use_target_weight``, ``path_reduction``).
    """

    def forward(self, outputs, targets, weights):
        """Args:
            outputs: the PoseDual training dict.
            targets: ``[sup_target, unsup_target]`` (N, K, H, W); the unlabeled target is not used.
            weights: ``[sup_weight, unsup_weight]`` (N, K, 1); the unlabeled one is 1 on the labeled
                dataset's joints.

        Returns:
            ``(total, {'loss_pose', 'loss_cons'})``, plus ``loss_cons_path{k}`` with several paths.
        """
        sup_t = targets[0]
        sup_w, unsup_w = weights[0], weights[1]
        loss_pose = 0.5 * self.mse(outputs["sup_ht1"], sup_t, sup_w) + 0.5 * self.mse(
            outputs["sup_ht2"], sup_t, sup_w
        )
        t1, t2 = outputs["unsup_ht_trans1"].detach(), outputs["unsup_ht_trans2"].detach()
        terms = [
            self.mse(c1, t2, unsup_w) + self.mse(c2, t1, unsup_w)
            for c1, c2 in zip(
                _paths(outputs, "cons_hts1", "cons_ht1"), _paths(outputs, "cons_hts2", "cons_ht2")
            )
        ]
        return self._combine(loss_pose, terms)


class PoseDisLoss(_PathConsistencyLoss):
    """PoseCons: ``MSE(sup_ht, t, w) + MSE(cons_ht, unsup_ht_trans.detach(), w_u)``.

    With several paths (``cons_hts``) the consistency term is the sum (MultiAugs) or the mean of
    ``MSE(cons_hts[k], unsup_ht_trans, w_u)`` over the paths k.

    Args: as ``_PathConsistencyLoss`` (``use_target_weight``, ``path_reduction``).
    """

    def forward(self, outputs, targets, weights):
        """Args: as ``PoseCoLoss`` with the PoseCons training dict. Returns ``(total, parts)``."""
        loss_pose = self.mse(outputs["sup_ht"], targets[0], weights[0])
        target = outputs["unsup_ht_trans"].detach()
        terms = [self.mse(c, target, weights[1]) for c in _paths(outputs, "cons_hts", "cons_ht")]
        return self._combine(loss_pose, terms)
