"""SSPCM's three networks: two cross-teaching teachers and a student taught by a corrected
pseudo-label (spec/SUCCESSORS.md §2.2-2.3).

Written from the specification of hlz0606/SSPCM (CVPR 2023), not from its code. ``resnet`` (A) and
``resnet2`` (B) teach each other as in PoseDual; ``final_resnet`` (C), the student, learns on the
unlabeled batch only from the "position-inconsistency corrected" mean of two teacher heatmaps,
chosen per joint among the current and the previous-epoch teachers. The previous-epoch snapshot of
A and B is held outside the module's state_dict (checkpoints keep the three networks' keys only)
and refreshed by ``start_epoch``.
"""

import copy

import torch

from semipose.codecs import get_max_preds_tensor
from semipose.models.hard_augment import HardViewModel
from semipose.models.pose_dual import split_inputs

__all__ = ["SSPCM", "PAIRS", "argmax_positions", "position_inconsistency_correction"]

#: The four candidate pairs of PCM, in the published order (ties go to the first): (A, B), (A', B),
#: (A, B'), (A', B'), a prime marking the previous-epoch snapshot.
PAIRS = (("cur_a", "cur_b"), ("prev_a", "cur_b"), ("cur_a", "prev_b"), ("prev_a", "prev_b"))


def argmax_positions(heatmaps):
    """Integer argmax of each heatmap on the heatmap grid.

    Args:
        heatmaps: (N, K, H, W).

    Returns:
        (N, K, 2) float (x, y), no sub-pixel offset and no masking of non-positive maxima.
    """
    return get_max_preds_tensor(heatmaps)[0]


def position_inconsistency_correction(cur_a, cur_b, prev_a, prev_b):
    """The student's pseudo-label: per (sample, joint), the mean of the candidate pair whose argmax
    positions agree best (SUCCESSORS.md §2.3 step 4).

    The candidates are (A, B), (A', B), (A, B') and (A', B') (``PAIRS``); their distances are the
    Euclidean distances between the two heatmaps' argmax positions on the heatmap grid. The pair of
    smallest distance is taken, ties going to the earlier pair (so agreeing current teachers always
    win).

    Args:
        cur_a: (N, K, H, W) current teacher A on the unlabeled easy view.
        cur_b: (N, K, H, W) current teacher B.
        prev_a: (N, K, H, W) previous-epoch A on the same batch.
        prev_b: (N, K, H, W) previous-epoch B.

    Returns:
        ``(pseudo, choice)``: (N, K, H, W) the corrected pseudo-label 0.5·(first + second of the
        chosen pair), and (N, K) int64 the chosen pair's index into ``PAIRS``.
    """
    pa, pb = argmax_positions(cur_a), argmax_positions(cur_b)
    qa, qb = argmax_positions(prev_a), argmax_positions(prev_b)
    # squared distances of integer positions are exact: no rounding decides a tie
    dist2 = torch.stack(
        [((u - v) ** 2).sum(-1) for u, v in ((pa, pb), (qa, pb), (pa, qb), (qa, qb))], dim=-1
    )  # (N, K, 4)
    index = torch.arange(4, device=dist2.device).expand_as(dist2)
    is_min = dist2 <= dist2.amin(-1, keepdim=True)
    choice = torch.where(is_min, index, torch.full_like(index, 4)).amin(-1)  # first minimum
    first_prev = (choice % 2 == 1)[..., None, None]  # pairs 1 and 3 take A'
    second_prev = (choice >= 2)[..., None, None]  # pairs 2 and 3 take B'
    first = torch.where(first_prev, prev_a, cur_a)
    second = torch.where(second_prev, prev_b, cur_b)
    return 0.5 * (first + second), choice


class SSPCM(HardViewModel):
    """Networks ``resnet`` (A), ``resnet2`` (B) and ``final_resnet`` (C, the student), with the
    published names (state_dict keys ``resnet.*``, ``resnet2.*``, ``final_resnet.*``).

    Training (input ``[sup_x, unsup_x(, aug_unsup_x)]``, each (N, 3, H_in, W_in)):

    1. when PCM is active (``pcm`` and epoch > ``pcm_warmup_epoch``): the snapshot's A' and B' on
       ``unsup_x`` under ``no_grad`` (train-mode BatchNorm unless ``snapshot_eval_bn``);
    2. A, B and C on ``sup_x`` (with gradient);
    3. teachers: A and B on ``unsup_x`` under ``no_grad``, in train mode (as PoseDual);
    4. the student's pseudo-label E: ``position_inconsistency_correction`` when PCM is active, else
       the mean of the current teachers 0.5·(H_A + H_B) (the published code left it undefined);
    5. hard images from ``aug_unsup_x`` if ``cons_rand_aug`` else ``unsup_x``: the configured ops
       (SSCO or Joint Cutout) at B's argmax for A's image, at A's for B's and at E's for C's;
    6. one random affine θ per sample, shared by the three images and the three targets;
    7. A, B and C on their hard images (with gradient).

    Args:
        resnet: teacher/network A, a module returning a heatmap.
        resnet2: teacher/network B, same architecture as A.
        final_resnet: the student C (its backbone may differ, e.g. ResNet-18 with ResNet-50 A, B).
        pcm: position-inconsistency correction with a previous-epoch snapshot of A and B (the
            snapshot, two extra networks, is only built when this is on).
        pcm_warmup_epoch: PCM runs in epochs > this value.
        snapshot_eval_bn: run the snapshot with eval-mode BatchNorm (running statistics);
            published: train mode, batch statistics.
        **hard_view: ``HardViewModel``'s keyword settings (scale/rotation factors, the hard ops,
            ``unsup_transform``, ``cons_rand_aug``, ...); ``same_view``, ``hard_teacher`` and
            ``hard_paths`` are not supported.

    Returns (training), a dict: ``sup_ht1, sup_ht2, sup_ht3`` (N, K, H, W) A, B, C on ``sup_x``;
    ``unsup_ht1, unsup_ht2`` the teachers on the easy view; ``pseudo_ht`` E; ``pair_choice``
    (N, K) the PCM pair index (0 when PCM is off or warming up); ``unsup_ht_trans1``,
    ``unsup_ht_trans2``, ``unsup_ht_trans3`` H_A, H_B and E warped by θ;
    ``cons_ht1, cons_ht2, cons_ht3`` A, B, C on their hard images; ``unsup_x_trans``,
    ``unsup_x_trans_2``, ``unsup_x_trans_3`` the hard images; ``theta`` (N, 2, 3); with PCM active
    also ``prev_ht1, prev_ht2`` (the snapshot's heatmaps).
    Returns (eval, input a tensor): ``(ht_A, ht_B, ht_C)``.
    """

    teacher_attrs = ("resnet", "resnet2")

    def __init__(
        self,
        resnet,
        resnet2,
        final_resnet,
        *,
        pcm=True,
        pcm_warmup_epoch=0,
        snapshot_eval_bn=False,
        **hard_view,
    ):
        if hard_view.get("same_view") or hard_view.get("hard_teacher"):
            raise ValueError("sspcm does not support CONS_SAME_VIEW or CONS_HARD_TEACHER")
        if hard_view.get("hard_paths"):
            raise ValueError("sspcm has one hard view per network: HARD_AUG.PATHS must be empty")
        super().__init__(**hard_view)
        self.resnet = resnet
        self.resnet2 = resnet2
        self.final_resnet = final_resnet
        self.pcm = bool(pcm)
        self.pcm_warmup_epoch = int(pcm_warmup_epoch)
        self.snapshot_eval_bn = bool(snapshot_eval_bn)
        self.epoch = 0
        # A tuple is not registered: the snapshot stays out of state_dict, parameters() and DDP.
        self._snapshot = None
        if self.pcm:
            snap = tuple(copy.deepcopy(net) for net in (resnet, resnet2))
            for net in snap:
                net.requires_grad_(False)
            self._snapshot = snap

    # ---------------------------------------------------------------------- the snapshot
    @property
    def snapshot(self):
        """``(A', B')``, the previous-epoch copies of A and B, or None when PCM is off."""
        return self._snapshot

    def _apply(self, fn, *args, **kwargs):
        # .to(device), .half(), channels_last, ...: the hidden snapshot follows the networks
        super()._apply(fn, *args, **kwargs)
        for net in self._snapshot or ():
            net._apply(fn, *args, **kwargs)
        return self

    @torch.no_grad()
    def refresh_snapshot(self):
        """Copies the current weights and buffers of A and B into the snapshot (no-op without
        PCM)."""
        for snap, net in zip(self._snapshot or (), (self.resnet, self.resnet2)):
            snap.load_state_dict(net.state_dict())

    def start_epoch(self, epoch):
        """Called before epoch ``epoch`` trains: records it (PCM's warm-up) and makes the snapshot
        the weights at the end of the previous epoch (the initial ones before epoch 0)."""
        self.epoch = int(epoch)
        self.refresh_snapshot()

    @property
    def pcm_active(self):
        """PCM corrects the student's pseudo-label in this epoch."""
        return self.pcm and self.epoch > self.pcm_warmup_epoch

    @torch.no_grad()
    def _snapshot_heatmaps(self, unsup_x):
        heats = []
        for net in self._snapshot:
            net.train(not self.snapshot_eval_bn)
            heats.append(net(unsup_x))
        return heats

    # ---------------------------------------------------------------------- forward
    def forward(self, x):
        if torch.is_tensor(x):
            return self.resnet(x), self.resnet2(x), self.final_resnet(x)
        sup_x, unsup_x, aug_x = split_inputs(x, self.cons_rand_aug)
        batch = unsup_x.shape[0]
        pcm_active = self.pcm_active
        prev = self._snapshot_heatmaps(unsup_x) if pcm_active else None

        sup_ht1 = self.resnet(sup_x)
        sup_ht2 = self.resnet2(sup_x)
        sup_ht3 = self.final_resnet(sup_x)

        with torch.no_grad():
            unsup_ht1 = self.resnet(unsup_x)
            unsup_ht2 = self.resnet2(unsup_x)
            if pcm_active:
                pseudo, choice = position_inconsistency_correction(
                    unsup_ht1, unsup_ht2, prev[0], prev[1]
                )
            else:
                pseudo = 0.5 * (unsup_ht1 + unsup_ht2)
                choice = torch.zeros(unsup_ht1.shape[:2], dtype=torch.long, device=sup_x.device)
            source = aug_x if self.cons_rand_aug else unsup_x
            # A's image at B's joints, B's at A's (cross), C's at the pseudo-label's
            x1, x2, x3 = self._hard_ops(source, unsup_ht2, unsup_ht1, pseudo)
            theta = self._theta(batch, unsup_x.device)
            x1, x2, x3 = self._warp(theta, x1, x2, x3)
            trans1, trans2, trans3 = self._warp(theta, unsup_ht1, unsup_ht2, pseudo)

        out = {
            "sup_ht1": sup_ht1,
            "sup_ht2": sup_ht2,
            "sup_ht3": sup_ht3,
            "unsup_ht1": unsup_ht1,
            "unsup_ht2": unsup_ht2,
            "pseudo_ht": pseudo,
            "pair_choice": choice,
            "unsup_ht_trans1": trans1,
            "unsup_ht_trans2": trans2,
            "unsup_ht_trans3": trans3,
            "cons_ht1": self.resnet(x1),
            "cons_ht2": self.resnet2(x2),
            "cons_ht3": self.final_resnet(x3),
            "unsup_x_trans": x1,
            "unsup_x_trans_2": x2,
            "unsup_x_trans_3": x3,
            "theta": theta,
        }
        if pcm_active:
            out["prev_ht1"], out["prev_ht2"] = prev
        return out
