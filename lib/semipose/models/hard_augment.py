"""The in-model "hard" augmentation of the unlabeled view: joint cutout, per-sample affine, warp.

``HardViewModel`` is the base of ``PoseDual`` and ``PoseCons``: their shared hard-view settings
and the cutout / affine / warp steps that turn a teacher's easy view into the student's hard one.
The batch-level ops (joint cutout and the successors' JO, CutOut, CutMix, MixUp and compositions)
and their registry live in ``augment_ops``; ``mask_joint`` is re-exported here.

Ported from the original's lib/models/pose_dual.py and pose_cons.py (``mask_joint``,
``get_batch_affine_transform`` and the affine_grid/grid_sample calls) (MIT). Device-agnostic: the
random draws use the documented global RNGs (numpy + Python ``random`` for the affine and the joint
choice, torch on the image's device for the cutout jitter and sizes).
"""

import logging
import math
import random

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from semipose.codecs import get_max_preds_tensor
from semipose.models.augment_ops import (
    HardAugSettings,
    build_hard_augment,
    expand_names,
    host_to_device,
    mask_joint,
)

logger = logging.getLogger(__name__)

__all__ = [
    "mask_joint",
    "host_to_device",
    "get_batch_affine_transform",
    "identity_theta",
    "invert_theta",
    "compose_theta",
    "warp",
    "heatmap_stride",
    "HardViewModel",
]


def get_batch_affine_transform(
    batch_size, scale_factor, rotation_factor, device=None, dtype=torch.float32
):
    """One random scale+rotation ``affine_grid`` matrix per sample (§6.7).

    s = clip(N(0,1)·sf + 1, 1−sf, 1+sf); r = clip(N(0,1)·rf, −2rf, 2rf) degrees when
    ``random.random() <= 0.8``, else 0; θ_b = [[s·cos r, s·sin r, 0], [−s·sin r, s·cos r, 0]]
    (``cv2.getRotationMatrix2D((0, 0), r, s)``). θ maps output normalised coordinates to input ones,
    so content shrinks by 1/s and turns by r.

    Args:
        batch_size: B.
        scale_factor: sf (DATASET.SCALE_FACTOR).
        rotation_factor: rf in degrees (DATASET.ROT_FACTOR).
        device: device of the result.
        dtype: dtype of the result (the original used float64).

    Returns:
        θ, a (B, 2, 3) tensor.
    """
    theta = np.zeros((batch_size, 2, 3), dtype=np.float64)
    for b in range(batch_size):
        s = np.clip(np.random.randn() * scale_factor + 1, 1 - scale_factor, 1 + scale_factor)
        if random.random() <= 0.8:
            r = np.clip(
                np.random.randn() * rotation_factor, -2 * rotation_factor, 2 * rotation_factor
            )
        else:
            r = 0.0
        rad = math.radians(r)
        c, sn = s * math.cos(rad), s * math.sin(rad)
        theta[b] = [[c, sn, 0.0], [-sn, c, 0.0]]
    return host_to_device(theta, device, dtype)


def invert_theta(theta):
    """Inverse of (B, 2, 3) affine maps: [A | b]⁻¹ = [A⁻¹ | −A⁻¹·b]."""
    work = theta if theta.dtype in (torch.float32, torch.float64) else theta.float()
    a, b, c, d = work[..., 0, 0], work[..., 0, 1], work[..., 1, 0], work[..., 1, 1]
    det = a * d - b * c  # closed form: no linalg error check, so no host sync on CUDA
    a_inv = torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2)
    a_inv = a_inv / det[..., None, None]
    return torch.cat([a_inv, -(a_inv @ work[..., 2:])], dim=-1).to(theta.dtype)


def compose_theta(outer, inner):
    """(B, 2, 3) map ``p -> outer(inner(p))``: sampling with it equals sampling with ``inner``
    after a warp by ``outer`` (``warp(warp(x, outer), inner)``, up to border and interpolation)."""
    a = outer[..., :2] @ inner[..., :2]
    b = outer[..., :2] @ inner[..., 2:] + outer[..., 2:]
    return torch.cat([a, b], dim=-1)


def identity_theta(batch_size, device=None, dtype=torch.float32):
    """(B, 2, 3) identity ``affine_grid`` matrices."""
    eye = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=dtype, device=device)
    return eye.expand(batch_size, 2, 3).clone()


def warp(x, theta):
    """Samples ``x`` at θ·[p; 1] for every output location p (normalised coordinates).

    Bilinear, zero padding, ``align_corners=False``: a θ applied to a 256x192 image and to its 64x48
    heatmap describes the same geometric map.

    Args:
        x: (N, C, H, W) tensor.
        theta: (N, 2, 3), cast to ``x``'s dtype and device (half/bfloat16 inputs are warped in
            float32, so a low-precision heatmap and a float32 image see the same θ).

    Returns:
        (N, C, H, W) warped tensor.
    """
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    theta = theta.to(device=x.device, dtype=work.dtype)
    # Autocast would build the grid in bfloat16 (about a pixel off on 256x192): keep it exact.
    with torch.autocast(x.device.type, enabled=False):
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        out = F.grid_sample(work, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.to(x.dtype)


def heatmap_stride(image, heatmap):
    """(x, y) factors from heatmap to input pixels as Python floats (4 for SimpleBaseline, HRNet).

    Floats rather than a tensor, so scaling joints by them needs no host-to-device copy.
    """
    return image.shape[-1] / heatmap.shape[-1], image.shape[-2] / heatmap.shape[-2]


def scale_joints(joints, factors):
    """(N, K, 2) joints with x multiplied by ``factors[0]`` and y by ``factors[1]``."""
    return torch.stack((joints[..., 0] * factors[0], joints[..., 1] * factors[1]), dim=-1)


def _checked_names_and_paths(
    hard_ops, hard_paths, mask_joint_num, same_view, hard_teacher, unsup_transform
):
    """Returns the (hard op names, hard paths) pair after checking the option combinations."""
    names = tuple(hard_ops) if hard_ops else (("JC",) if mask_joint_num > 0 else ())
    expand_names(names)  # unknown names fail here, before the other checks
    paths = tuple(tuple(path) for path in hard_paths)
    for path in paths:
        expand_names(path)
    if paths and (hard_ops or same_view or hard_teacher):
        raise ValueError(
            "hard_paths (HARD_AUG.PATHS) excludes hard_ops (HARD_AUG.OPS), same_view "
            "(CONS_SAME_VIEW) and hard_teacher (CONS_HARD_TEACHER)"
        )
    if paths:
        names = ()  # MASK_JOINT_NUM alone no longer implies a JC path
    if hard_teacher and (same_view or names or not unsup_transform):
        raise ValueError(
            "hard_teacher (CONS_HARD_TEACHER) needs UNSUP_TRANSFORM true, MASK_JOINT_NUM 0, "
            "no HARD_AUG.OPS and CONS_SAME_VIEW false"
        )
    return names, paths


class HardViewModel(nn.Module):
    """Base of ``PoseDual`` and ``PoseCons``: the hard-view settings and steps.

    Args:
        scale_factor: scale jitter of the hard affine (DATASET.SCALE_FACTOR).
        rotation_factor: rotation jitter in degrees (DATASET.ROT_FACTOR).
        mask_joint_num: joint-cutout boxes per image (0 = off).
        mask_joint_fix: (ours) clamp the cutout with the correct H/W and draw joints only among
            ``trained_joints``.
        trained_joints: channel indices the labeled dataset trains (used with ``mask_joint_fix``).
        unsup_transform: apply the random affine (else θ = identity and no warp).
        cons_rand_aug: use the RandAugment copy as the hard-view source.
        same_view: (ours) collapse-prone control: the student sees exactly the teacher's easy view.
        hard_teacher: (ours) collapse-prone control: the teacher sees its own random affine view
            (drawn like the student's, independently), so teacher and student views are equally
            hard; the teacher heatmap is carried into the student's frame by θ_t⁻¹·θ_s. Needs
            ``unsup_transform``; not combined with joint cutout or ``same_view``.
        mask_joint_relative: (ours) scale the cutout boxes and jitter by input width / 192.
        hard_ops: (ours) the hard-view op sequence, registry names of ``augment_ops.HARD_AUGS``
            applied in order (``JC``, ``JO``/``SSCO``, ``CO``, ``CM``, ``MU``, ``JOCO``, ``JCCM``).
            Empty (the default): ``('JC',)`` when ``mask_joint_num > 0``, else none, i.e. the
            original. JC always takes its settings from the ``mask_joint_*`` arguments.
        hard_paths: (ours) MultiAugs' multi-path consistency: a sequence of op sequences (registry
            names, as ``hard_ops``), one hard image and one student pass per path, all from the same
            easy view and the same teacher joints, drawn path after path, then warped by one θ
            shared by every path. Empty (the default): one path, ``hard_ops``. Exclusive with
            ``hard_ops``, ``same_view`` and ``hard_teacher``; an empty path is the plain affine
            view.
        **op_settings: (ours) the ops' settings, by the names declared in
            ``semipose.common.hard_aug`` (``jo_joint_num``, ``co_holes``, ``cm_holes``,
            ``jccm_cm_holes``, ``mixup_alpha``, ``jo_fix``, ``hole_fix``, ``box_relative``,
            ``joint_pool_fix`` and any a plug-in op declares); the others keep their declared
            defaults.

    Raises:
        TypeError: an undeclared op setting.

    Attributes:
        hard_paths: the op names of each path (one entry, ``hard_ops``, without ``hard_paths``).
        hard_augs: the ``HardAugment`` of each path.
    """

    def __init__(
        self,
        *,
        scale_factor=0.25,
        rotation_factor=30,
        mask_joint_num=0,
        mask_joint_fix=False,
        trained_joints=None,
        unsup_transform=True,
        cons_rand_aug=False,
        same_view=False,
        hard_teacher=False,
        mask_joint_relative=False,
        hard_ops=(),
        hard_paths=(),
        **op_settings,
    ):
        super().__init__()
        names, paths = _checked_names_and_paths(
            hard_ops, hard_paths, mask_joint_num, same_view, hard_teacher, unsup_transform
        )
        self.scale_factor = scale_factor
        self.rotation_factor = rotation_factor
        self.mask_joint_num = mask_joint_num
        self.mask_joint_fix = mask_joint_fix
        self.trained_joints = None if trained_joints is None else list(trained_joints)
        self.unsup_transform = unsup_transform
        self.cons_rand_aug = cons_rand_aug
        self.same_view = same_view
        self.hard_teacher = hard_teacher
        self.mask_joint_relative = mask_joint_relative
        if mask_joint_fix and mask_joint_num > 0 and self.trained_joints is None:
            logger.warning("mask_joint_fix without trained_joints: cutout draws from all channels")
        self.hard_ops = names
        settings = HardAugSettings(
            **op_settings,
            mask_joint_num=mask_joint_num,
            mask_joint_fix=mask_joint_fix,
            mask_joint_relative=mask_joint_relative,
            trained_joints=None if trained_joints is None else tuple(trained_joints),
        )
        self.hard_aug = build_hard_augment(names, settings)
        self.hard_paths = paths or (names,)
        self.hard_augs = (
            tuple(build_hard_augment(path, settings) for path in paths) if paths
            else (self.hard_aug,)
        )
        self._teachers = {}  # a plain dict: teachers are not submodules (no state_dict keys)

    def _hard_ops(self, source, *teacher_hts, generator=None):
        """The configured op sequence on ``source``, once per teacher heatmap.

        Each hard image is cut at the argmax of its teacher heatmap (scaled to input pixels); every
        step is drawn for all images before the next step (MultiAugs' order). With only ``JC``
        configured this equals ``_cutout`` per heatmap, in the same order.

        Args:
            source: (N, 3, H_in, W_in) image batch; not modified.
            *teacher_hts: (N, K, H, W) heatmaps, one per hard image wanted.
            generator: an explicit ``torch.Generator``; None = the documented global RNGs.

        Returns:
            tuple of (N, 3, H_in, W_in) hard images, one per heatmap (``source`` itself when no op
            is configured).
        """
        if not self.hard_aug:
            return tuple(source for _ in teacher_hts)
        joints = [
            self._joints(source, ht) if self.hard_aug.needs_joints else None for ht in teacher_hts
        ]
        return tuple(self.hard_aug.apply_interleaved(source, joints, generator))

    def _hard_paths(self, source, *teacher_hts, generator=None):
        """Every path's op sequence on ``source``, once per teacher heatmap (MultiAugs' multi mode).

        The joints are taken once per heatmap and shared by all paths; the paths are drawn in
        order, each from ``source`` itself (never from another path's result), and within a path
        every step is drawn for all images before the next step. With one path this is
        ``_hard_ops``.

        Args:
            source: (N, 3, H_in, W_in) image batch; not modified.
            *teacher_hts: (N, K, H, W) heatmaps, one per hard image wanted in each path.
            generator: an explicit ``torch.Generator``; None = the documented global RNGs.

        Returns:
            list over paths of tuples of (N, 3, H_in, W_in) hard images, one per heatmap.
        """
        if len(self.hard_augs) == 1:
            return [self._hard_ops(source, *teacher_hts, generator=generator)]
        needs = any(aug.needs_joints for aug in self.hard_augs)
        joints = [self._joints(source, ht) if needs else None for ht in teacher_hts]
        out = []
        for aug in self.hard_augs:
            if aug:
                out.append(tuple(aug.apply_interleaved(source, joints, generator)))
            else:
                out.append(tuple(source for _ in teacher_hts))
        return out

    @torch.no_grad()
    def _hard_views(self, unsup_x, aug_x, names):
        """The teachers' pass and the students' hard views on an unlabeled batch (no gradient).

        The teachers (networks ``names``) see the teacher view of ``unsup_x``; the hard images are
        drawn from ``aug_x`` if ``cons_rand_aug`` else ``unsup_x``, network i's at the joints of
        the teacher ``names[-1 - i]`` (with two networks each is cut at the other's joints); one
        random θ then warps every path and, composed with the teacher view's θ, the teachers.

        Returns:
            ``(teacher_hts, teacher_trans, paths, theta)``: the teachers' heatmaps (a tuple in
            ``names`` order), them carried into the students' frame, a list over paths of tuples
            of warped hard images (one per network), and θ (N, 2, 3).
        """
        teacher_x, theta_t = self._teacher_view(unsup_x)
        hts = tuple(self._teacher(name)(teacher_x) for name in names)
        source = aug_x if self.cons_rand_aug else unsup_x
        paths = self._hard_paths(source, *reversed(hts))
        theta = self._theta(unsup_x.shape[0], unsup_x.device)
        paths = [self._warp(theta, *images) for images in paths]
        trans = self._warp(self._teacher_to_student(theta_t, theta), *hts)
        return hts, trans, paths, theta

    # ------------------------------------------------------------------------ external teachers
    #: the attributes of the networks whose easy-view (teacher) pass ``set_teachers`` may
    #: replace; each model class names its own
    teacher_attrs = ()

    def teacher_names(self):
        """Names of the networks whose easy-view (teacher) pass ``set_teachers`` may replace."""
        return tuple(self.teacher_attrs)

    def set_teachers(self, teachers):
        """Runs the teacher pass of network ``name`` through ``teachers[name]`` (e.g. its EMA copy)
        instead of the network itself; ``{}`` restores the networks as their own teachers.

        The callables are kept in a plain dict, not as submodules: they add no ``state_dict`` keys,
        and ``.to()``, ``.train()`` and ``.eval()`` of this module do not reach them.

        Args:
            teachers: ``{network attribute name: callable(x) -> heatmap}``.

        Raises:
            ValueError: an unknown network name, or ``same_view`` (whose teacher is the student).
        """
        unknown = sorted(set(teachers) - set(self.teacher_names()))
        if unknown:
            raise ValueError(f"no network {unknown} to replace; known: {self.teacher_names()}")
        if teachers and self.same_view:
            raise ValueError("same_view (CONS_SAME_VIEW) has no separate teacher to replace")
        self._teachers = dict(teachers)

    def _teacher(self, name):
        """The teacher pass of network ``name``: its replacement, or the network itself."""
        teacher = self._teachers.get(name)
        return teacher if teacher is not None else getattr(self, name)

    @staticmethod
    def _joints(image, teacher_ht):
        """(N, K, 2) argmax joints of ``teacher_ht`` in ``image``'s pixels."""
        preds, _ = get_max_preds_tensor(teacher_ht)
        return scale_joints(preds, heatmap_stride(image, teacher_ht))

    def _cutout(self, image, teacher_ht):
        """Cutout of ``image`` at the argmax of ``teacher_ht`` (scaled to input pixels)."""
        preds, _ = get_max_preds_tensor(teacher_ht)
        joints = scale_joints(preds, heatmap_stride(image, teacher_ht))
        return mask_joint(
            image,
            joints,
            self.mask_joint_num,
            fix_clamp=self.mask_joint_fix,
            joint_ids=self.trained_joints if self.mask_joint_fix else None,
            size_scale=image.shape[-1] / 192 if self.mask_joint_relative else 1.0,
        )

    def _teacher_view(self, unsup_x):
        """The teacher's input and its θ: ``(unsup_x, None)``, or with ``hard_teacher`` a random
        affine view of it and that view's θ."""
        if not self.hard_teacher:
            return unsup_x, None
        theta_t = self._theta(unsup_x.shape[0], unsup_x.device)
        return warp(unsup_x, theta_t), theta_t

    def _teacher_to_student(self, theta_t, theta):
        """θ carrying a teacher heatmap into the student's frame: θ itself for an easy teacher,
        else θ_t⁻¹·θ_s."""
        return theta if theta_t is None else compose_theta(invert_theta(theta_t), theta)

    def _theta(self, batch_size, device):
        """A random affine θ per sample if ``unsup_transform``, else identities: (B, 2, 3)."""
        if self.unsup_transform:
            return get_batch_affine_transform(
                batch_size, self.scale_factor, self.rotation_factor, device=device
            )
        return identity_theta(batch_size, device=device)

    def _warp(self, theta, *tensors):
        """``tensors`` (a tuple), each warped by ``theta`` if ``unsup_transform``, else as given."""
        if self.unsup_transform:
            return tuple(warp(t, theta) for t in tensors)
        return tensors
