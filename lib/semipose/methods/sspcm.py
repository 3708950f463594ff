"""SSPCM (CVPR 2023): two cross-teaching teachers and a student taught by a position-inconsistency
corrected pseudo-label, with score and distance filters (spec/SUCCESSORS.md §2).

Written from the specification, not from hlz0606/SSPCM's code (which does not run as published).
The module is ``models.sspcm.SSPCM``; the loss ``SSPCMLoss`` (§2.4); evaluation scores A (``net1``),
B (``net2``), the student C (``student``), the teachers' ensemble 0.5·(A + B) that the published
code logs (``ensemble``) and, ours, the mean of the three heatmaps (``ensemble3``). The
previous-epoch snapshot is refreshed before every epoch by ``SnapshotHook`` (``hooks()``).
"""

import logging
import math
import os
from collections import OrderedDict

import torch
from torch import nn

from semipose.checkpoint.files import load_checkpoint, unwrap_state_dict
from semipose.common.hooks import HookBase
from semipose.config import ConfigError
from semipose.core.loss import JointsMSELoss
from semipose.methods.base import Method
from semipose.models.build import (
    build_backbone,
    init_network,
    load_pair_state,
    pretrained_state,
    resnet_kwargs,
    semi_kwargs,
)
from semipose.models.pose_resnet import PoseResNet
from semipose.models.sspcm import SSPCM, argmax_positions

logger = logging.getLogger(__name__)

__all__ = ["SSPCMMethod", "SSPCMLoss", "SnapshotHook", "score_signals", "distance_signals"]

#: evaluated heads: the three networks, the published ensemble 0.5·(A + B) (SSPCM's
#: lib/core/function.py logs the two teachers' mean) and our three-network mean
HEADS = ("net1", "net2", "student", "ensemble", "ensemble3")


def score_signals(h_a, h_b, threshold):
    """The score filter and reweighting of SSPCM (§2.3 step 8).

    Args:
        h_a: (N, K, H, W) teacher A on the unlabeled easy view.
        h_b: (N, K, H, W) teacher B.
        threshold: a joint is kept when the mean of the two maxima exceeds it.

    Returns:
        ``(mask, diff)``, each (N, K, 1) float: ``mask`` = [(s_A + s_B)/2 > threshold] and
        ``diff`` = clamp(1 − |s_A − s_B|, 0, 1), with s the heatmap maxima.
    """
    s_a = h_a.detach().float().flatten(2).amax(2, keepdim=True)
    s_b = h_b.detach().float().flatten(2).amax(2, keepdim=True)
    mask = ((s_a + s_b) * 0.5 > threshold).float()
    diff = (1.0 - (s_a - s_b).abs()).clamp(0.0, 1.0)
    return mask, diff


def distance_signals(h_a, h_b, threshold):
    """The distance filter and reweighting of SSPCM (§2.3 step 8).

    d = ‖p_A − p_B‖ between the argmax positions (heatmap pixels), D = √(W² + H²) the heatmap
    diagonal, d ← min(d, D − 1), u = d / D.

    Args:
        h_a: (N, K, H, W) teacher A.
        h_b: (N, K, H, W) teacher B.
        threshold: a joint is kept when u < threshold (a fraction of the diagonal).

    Returns:
        ``(mask, weight)``, each (N, K, 1) float: [u < threshold] and 1 − u.
    """
    height, width = h_a.shape[-2:]
    diag = math.sqrt(width**2 + height**2)
    pa, pb = argmax_positions(h_a.detach()), argmax_positions(h_b.detach())
    dist = (pa - pb).norm(dim=-1, keepdim=True).clamp(max=diag - 1)
    u = dist / diag
    return (u < threshold).float(), 1.0 - u


class SSPCMLoss(nn.Module):
    """SSPCM's objective (``PoseTripleLoss``, §2.4).

    - ``loss_pose = 0.5·[MSE(A(x_l)) + MSE(B(x_l)) + MSE(C(x_l))]`` (three halves, as published);
    - ``loss_cons = MSE(A(hard_A), θ∘H_B; w) + MSE(B(hard_B), θ∘H_A; w) + MSE(C(hard_C), θ∘E; w_C)``
      with targets detached. w = the unlabeled weight times the score mask (``score_filter``) and
      ``score_diff`` (``score_diff_reweight``); w_C = w times the distance mask (``dist_filter``)
      and weight (``dist_reweight``): the distance filter applies to the student term only. With
      ``filter_or`` and both filters on, all three terms use w·(score mask OR distance mask) times
      the enabled reweightings.

    The filters act through the target weights, so they need ``use_target_weight`` (as published).

    Args:
        use_target_weight: ``JointsMSELoss``'s switch.
        score_filter, score_thre: the score filter.
        score_diff_reweight: multiply by clamp(1 − |s_A − s_B|, 0, 1).
        dist_filter, dist_thre: the distance filter (threshold a fraction of the diagonal).
        dist_reweight: multiply by 1 − distance / diagonal.
        filter_or: SSPCM's ``kp_dist_and_score_both_satisfy`` (an OR despite its name).
    """

    def __init__(
        self,
        use_target_weight=True,
        *,
        score_filter=True,
        score_thre=0.1,
        score_diff_reweight=False,
        dist_filter=False,
        dist_thre=0.6,
        dist_reweight=False,
        filter_or=False,
    ):
        super().__init__()
        self.mse = JointsMSELoss(use_target_weight)
        self.score_filter = score_filter
        self.score_thre = score_thre
        self.score_diff_reweight = score_diff_reweight
        self.dist_filter = dist_filter
        self.dist_thre = dist_thre
        self.dist_reweight = dist_reweight
        self.filter_or = filter_or

    def weights(self, h_a, h_b, unsup_w):
        """The consistency weights of the teachers' and of the student's terms.

        Args:
            h_a: (N, K, H, W) teacher A on the easy view; h_b: teacher B.
            unsup_w: (N, K, 1) unlabeled target weight (1 on the labeled set's joints).

        Returns:
            ``(w_teachers, w_student)``, each (N, K, 1).
        """
        w = unsup_w.float()
        s_mask, s_diff = score_signals(h_a, h_b, self.score_thre)
        d_mask, d_weight = distance_signals(h_a, h_b, self.dist_thre)
        if self.filter_or and self.score_filter and self.dist_filter:
            w = w * torch.maximum(s_mask, d_mask)
            if self.score_diff_reweight:
                w = w * s_diff
            if self.dist_reweight:
                w = w * d_weight
            return w, w
        if self.score_filter:
            w = w * s_mask
        if self.score_diff_reweight:
            w = w * s_diff
        w_student = w
        if self.dist_filter:
            w_student = w_student * d_mask
        if self.dist_reweight:
            w_student = w_student * d_weight
        return w, w_student

    def forward(self, outputs, targets, weights):
        """Args:
            outputs: the SSPCM training dict.
            targets: ``[sup_target, unsup_target]`` (N, K, H, W); the unlabeled target is unused.
            weights: ``[sup_weight, unsup_weight]`` (N, K, 1).

        Returns:
            ``(total, {'loss_pose', 'loss_cons', 'loss_cons_student'})``; ``loss_cons`` includes
            the student's term ``loss_cons_student``.
        """
        sup_t, sup_w = targets[0], weights[0]
        loss_pose = 0.5 * sum(self.mse(outputs[f"sup_ht{k}"], sup_t, sup_w) for k in (1, 2, 3))
        w, w_student = self.weights(outputs["unsup_ht1"], outputs["unsup_ht2"], weights[1])
        loss_teachers = self.mse(
            outputs["cons_ht1"], outputs["unsup_ht_trans2"].detach(), w
        ) + self.mse(outputs["cons_ht2"], outputs["unsup_ht_trans1"].detach(), w)
        loss_student = self.mse(outputs["cons_ht3"], outputs["unsup_ht_trans3"].detach(), w_student)
        loss_cons = loss_teachers + loss_student
        total = loss_pose + loss_cons
        return total, {
            "loss_pose": loss_pose.detach(),
            "loss_cons": loss_cons.detach(),
            "loss_cons_student": loss_student.detach(),
        }


class SnapshotHook(HookBase):
    """Before every epoch, tells the SSPCM module the epoch (PCM's warm-up) and copies A and B
    into its previous-epoch snapshot. On resume the snapshot is the resumed weights, i.e. the end
    of the previous epoch, as published."""

    def before_epoch(self):
        model = self.trainer.model
        model = getattr(model, "module", model)  # DDP
        model.start_epoch(self.trainer.epoch)


class SSPCMMethod(Method):
    """``MODEL.NAME: sspcm``: ``resnet`` (A), ``resnet2`` (B) and ``final_resnet`` (student C).

    ``SSPCM.BEST_HEAD`` comes first in ``heads`` (the first head selects ``model_best``; published:
    net A).
    """

    nets = ("net1", "net2", "student")
    network_attrs = ("resnet", "resnet2", "final_resnet")

    def __init__(self, cfg):
        best = cfg.SSPCM.BEST_HEAD
        if best not in HEADS:
            raise ConfigError(f"SSPCM.BEST_HEAD must be one of {list(HEADS)}, got {best!r}")
        self.heads = (best,) + tuple(h for h in HEADS if h != best)
        super().__init__(cfg)

    # ----------------------------------------------------------------------------- building
    def build_model(self, is_train):
        cfg = self.cfg
        s = cfg.SSPCM
        state = pretrained_state(cfg, is_train)
        teachers = [
            build_backbone(cfg, cfg.MODEL.BACKBONE, head_name="final_layer_1") for _ in range(2)
        ]
        for net in teachers:
            init_network(net, cfg, is_train, state)
        student = self._build_student(is_train, state)
        model = SSPCM(
            *teachers,
            student,
            pcm=s.PCM and is_train,
            pcm_warmup_epoch=s.PCM_WARMUP_EPOCH,
            snapshot_eval_bn=s.SNAPSHOT_EVAL_BN,
            **semi_kwargs(cfg),
        )
        # a PoseDual-style file (e.g. two ImageNet ResNet-18s under resnet. / resnet2.): A and B
        # get their own backbones; the student took the resnet. entries in init_weights
        load_pair_state(model, state, cfg.MODEL.PRETRAINED, self.network_attrs[:2],
                        layers=cfg.MODEL.EXTRA.get("PRETRAINED_LAYERS"))
        model.refresh_snapshot()
        return model

    def _build_student(self, is_train, teacher_state):
        """The student network: the teachers' architecture, or a ResNet of depth
        ``SSPCM.STUDENT_NUM_LAYERS``, initialised from ``SSPCM.STUDENT_PRETRAINED`` (else from
        MODEL.PRETRAINED when the depth is the teachers')."""
        cfg = self.cfg
        depth = cfg.SSPCM.STUDENT_NUM_LAYERS
        same = depth in (0, cfg.MODEL.EXTRA.get("NUM_LAYERS"))
        if same:
            student = build_backbone(cfg, cfg.MODEL.BACKBONE, head_name="final_layer_1")
        elif cfg.MODEL.BACKBONE != "resnet":
            raise ConfigError(
                f"SSPCM.STUDENT_NUM_LAYERS needs MODEL.BACKBONE resnet, got {cfg.MODEL.BACKBONE!r}"
            )
        else:
            student = PoseResNet(
                **{**resnet_kwargs(cfg), "num_layers": depth}, head_name="final_layer_1"
            )
        path = cfg.SSPCM.STUDENT_PRETRAINED
        state = teacher_state if same else None
        if is_train and cfg.MODEL.INIT_WEIGHTS and path:
            if cfg.DATA_DIR:
                path = os.path.join(cfg.DATA_DIR, path)
            state = unwrap_state_dict(load_checkpoint(path))
        elif is_train and not same and teacher_state is not None:
            logger.warning(
                "SSPCM student (ResNet-%d) differs from the teachers and SSPCM.STUDENT_PRETRAINED "
                "is empty: the student is randomly initialised",
                depth,
            )
        init_network(student, cfg, is_train, state)
        return student

    def build_criterion(self, use_target_weight):
        s = self.cfg.SSPCM
        return SSPCMLoss(
            use_target_weight,
            score_filter=s.SCORE_FILTER,
            score_thre=s.SCORE_THRE,
            score_diff_reweight=s.SCORE_DIFF_REWEIGHT,
            dist_filter=s.DIST_FILTER,
            dist_thre=s.DIST_THRE,
            dist_reweight=s.DIST_REWEIGHT,
            filter_or=s.FILTER_OR,
        )

    def hooks(self):
        return (SnapshotHook(),)

    # ----------------------------------------------------------------------------- exposing
    def labeled_heatmap(self, outputs):
        return outputs["sup_ht1"]

    def teacher_heatmaps(self, outputs):
        """A and B on the easy view, and the student's teacher: the (corrected) pseudo-label."""
        return {
            "net1": outputs["unsup_ht1"],
            "net2": outputs["unsup_ht2"],
            "student": outputs["pseudo_ht"],
        }

    def eval_heatmaps(self, per_net):
        h1, h2, h3 = per_net
        named = {"net1": h1, "net2": h2, "student": h3, "ensemble": 0.5 * (h1 + h2),
                 "ensemble3": (h1 + h2 + h3) / 3.0}
        return OrderedDict((head, named[head]) for head in self.heads)
