"""Pairs of a labeled and an unlabeled crop (plus a RandAugment copy): the semi-supervised set.

Ported from the original's lib/dataset/mix_coco_coco.py and mix_mpii_ai.py (MIT); spec §5.5-5.6.

Differences from the original (see docs/DIFFERENCES.md):
  * the labeled indices come from a private ``np.random.Generator`` seeded by ``seed`` (advanced by
    every ``shuffle_ind`` call); nothing seeds the global numpy RNG and no config is mutated;
  * ``mix_mpii_ai`` also uses ``shuffle_ind`` instead of a per-item ``np.random.choice``: both draw
    the labeled index uniformly with replacement, independently per item, so the distribution is the
    same, and the draw no longer depends on the worker's global RNG;
  * when the labeled set is larger than the unlabeled one, the unlabeled index wraps (modulo);
  * the RandAugment view reuses the unlabeled set's records (no third annotation load), and when the
    unlabeled COCO set is the labeled one's image set, the annotations are loaded once and shared.
"""

import copy
import logging
import random

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import transforms as T

from semipose.dataset.ai_challenger import AIDataset
from semipose.dataset.coco import COCODataset
from semipose.dataset.mpii import MPIIDataset
from semipose.dataset.rand_augment import RandAugment

__all__ = ["MixedDataset", "MixedCOCOCOCODataset", "MixedMPIIAIDataset", "with_rand_augment"]

logger = logging.getLogger(__name__)


class _ToArray:
    """PIL image -> uint8 array (the RandAugment view when the datasets return raw crops)."""

    def __call__(self, img):
        return np.asarray(img).copy()


def with_rand_augment(transform, magnitude, n=2):
    """A copy of ``transform`` with ``RandAugment(n, magnitude)`` in front (unless already there).

    Args:
        transform: a ``torchvision.transforms.Compose``, another callable, or None (raw crops).
        magnitude: RandAugment M.
        n: ops per image.

    Returns:
        The augmented transform (the input is not modified).
    """
    if transform is None:
        return T.Compose([RandAugment(n, magnitude), _ToArray()])
    if isinstance(transform, T.Compose):
        steps = copy.deepcopy(list(transform.transforms))
        if steps and isinstance(steps[0], RandAugment):
            return T.Compose(steps)
        return T.Compose([RandAugment(n, magnitude)] + steps)
    return T.Compose([RandAugment(n, magnitude), copy.deepcopy(transform)])


class MixedDataset(Dataset):
    """Each item pairs labeled record ``data_ind[idx]`` with unlabeled record ``idx``.

    The unlabeled views (and the RandAugment view) share one rotation/scale/flip draw, with the
    distributions of ``JointsDataset`` (global ``np.random`` and ``random``); the labeled crop draws
    its own. ``len`` is the larger of the two sets; ``shuffle_ind`` re-draws the labeled indices
    with replacement (call it once per epoch, in the main process, before the workers start).

    Args:
        labeled: a ``JointsDataset`` with ``labeled_joints``.
        unlabeled: a ``JointsDataset`` (its targets are returned but unused by the losses).
        unlabeled_aug: optional dataset over the same records as ``unlabeled`` with a RandAugment
            transform; only its input is returned.
        seed: seed of the labeled-index generator.
    """

    def __init__(self, labeled, unlabeled, unlabeled_aug=None, seed=1314):
        if len(labeled) == 0 or len(unlabeled) == 0:
            raise ValueError(
                f"mixed dataset needs non-empty sets, got {len(labeled)} labeled and "
                f"{len(unlabeled)} unlabeled records"
            )
        self.labeled = labeled
        self.unlabeled = unlabeled
        self.unlabeled_aug = unlabeled_aug
        self.sets = [labeled, unlabeled] + ([unlabeled_aug] if unlabeled_aug is not None else [])
        self.sizes = [len(labeled), len(unlabeled)]
        self.group_size = max(self.sizes)
        self.labeled_joints = list(labeled.labeled_joints)
        self.flip_pairs = labeled.flip_pairs
        self.num_joints = labeled.num_joints
        self.image_set = labeled.image_set
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self.data_ind = None
        self.shuffle_ind()
        logger.info(
            "=> mixed set: %d labeled, %d unlabeled, %d items%s",
            self.sizes[0],
            self.sizes[1],
            self.group_size,
            " (+RandAugment view)" if unlabeled_aug is not None else "",
        )

    def shuffle_ind(self):
        """Re-draws the labeled index of every item (uniform, with replacement); returns it."""
        self.data_ind = self._rng.choice(self.sizes[0], self.group_size)
        return self.data_ind

    def __len__(self):
        return self.group_size

    def insert_transform(self, transform, *, before=None, after=None):
        """``JointsDataset.insert_transform`` on every set of the pair (labeled, unlabeled and the
        RandAugment view); a set shared by several slots gets it once."""
        done = set()
        for ds in self.sets:
            if id(ds) not in done:
                done.add(id(ds))
                ds.insert_transform(transform, before=before, after=after)

    def _shared_draw(self):
        sf = self.unlabeled.scale_factor
        rf = self.unlabeled.rotation_factor
        scale = float(np.clip(np.random.randn() * sf + 1, 1 - sf, 1 + sf))
        rot = (
            float(np.clip(np.random.randn() * rf, -rf * 2, rf * 2))
            if random.random() <= 0.6
            else 0.0
        )
        flip = random.random() <= 0.5
        return rot, scale, flip

    def __getitem__(self, idx):
        """One pair.

        Returns:
            ``(inputs, targets, weights, metas)``: inputs ``[labeled, unlabeled(, randaug)]``, each
            (3, H, W); targets ``[labeled, unlabeled]`` (24, h, w); weights ``[labeled, unlabeled]``
            (24, 1), the unlabeled one 1 on ``labeled_joints`` and 0 elsewhere; metas ``[labeled,
            unlabeled]``, the unlabeled ``joints_vis`` being the labeled one with the
            ``labeled_joints`` rows set to 1.
        """
        rot, scale, flip = self._shared_draw()
        inp_l, tgt_l, w_l, meta_l = self.labeled[int(self.data_ind[idx])]
        u_idx = idx % self.sizes[1]
        inp_u, tgt_u, _, meta_u = self.unlabeled.__getitem__(
            u_idx, rot_angle=rot, scale=scale, flip=flip
        )
        w_u = torch.zeros_like(w_l)
        w_u[self.labeled_joints] = 1.0
        vis = np.array(meta_l["joints_vis"], copy=True)
        vis[self.labeled_joints] = 1.0
        meta_u["joints_vis"] = vis
        inputs = [inp_l, inp_u]
        if self.unlabeled_aug is not None:
            inputs.append(
                self.unlabeled_aug.__getitem__(u_idx, rot_angle=rot, scale=scale, flip=flip)[0]
            )
        return inputs, [tgt_l, tgt_u], [w_l, w_u], [meta_l, meta_u]


def _subset_view(dataset, records, is_train):
    view = copy.copy(dataset)
    view.db = records
    view.is_train = is_train
    return view


def _rand_augment_view(unlabeled, is_train, transform, cons_rand_aug, rand_magnitude):
    """The RandAugment copy of ``unlabeled`` (None unless ``cons_rand_aug``); ``is_train`` (not
    raw_input) as the original."""
    if not cons_rand_aug:
        return None
    view = _subset_view(unlabeled, unlabeled.db, is_train)
    view.transform = with_rand_augment(transform, rand_magnitude)
    return view


class MixedCOCOCOCODataset(MixedDataset):
    """``mix_coco_coco``: labeled COCO (first ``train_len`` records) + unlabeled COCO.

    Args:
        root: data root.
        image_set: labeled image set (``'train'`` -> train2017).
        is_train: training mode.
        transform: crop transform (ToTensor + Normalize from the builder).
        unsup_set: unlabeled image set (``''`` -> ``image_set``; ``'unlabeled2017'`` -> detection
            mode with ``unsup_bbox_file``).
        train_len: labeled subset size (<= 0: all).
        raw_input: build the unlabeled set with ``is_train=False`` (no geometric augmentation).
        cons_rand_aug: add the RandAugment view.
        rand_magnitude: RandAugment M.
        seed: seed of the labeled-index generator.
        **kwargs: ``COCODataset`` / ``JointsDataset`` arguments shared by both sets.
    """

    def __init__(
        self, root, image_set, is_train, transform=None, unsup_set="", train_len=-1,
        raw_input=False, cons_rand_aug=False, rand_magnitude=10, seed=1314, **kwargs
    ):  # fmt: skip
        kwargs.pop("pseudo_anno", None)
        unsup = unsup_set or image_set
        unlabeled_train = is_train and not raw_input
        if unsup == image_set and not raw_input:
            # One load serves both: the labeled set is the first train_len records of the full one.
            unlabeled = COCODataset(root, unsup, unlabeled_train, transform, train_len=-1, **kwargs)
            records = unlabeled.db
            if is_train and train_len is not None and train_len > 0:
                records = records[:train_len]
                logger.info(
                    "=> labeled subset: first %d records, %s ... %s",
                    len(records),
                    records[0]["image"] if records else "",
                    records[-1]["image"] if records else "",
                )
            labeled = _subset_view(unlabeled, records, is_train)
        else:
            labeled = COCODataset(
                root, image_set, is_train, transform, train_len=train_len, **kwargs
            )
            unlabeled = COCODataset(root, unsup, unlabeled_train, transform, train_len=-1, **kwargs)
        aug = _rand_augment_view(unlabeled, is_train, transform, cons_rand_aug, rand_magnitude)
        super().__init__(labeled, unlabeled, aug, seed=seed)


class MixedMPIIAIDataset(MixedDataset):
    """``mix_mpii_ai``: labeled MPII + unlabeled AI Challenger (same ``image_set``).

    The unlabeled weights are 1 on the MPII joints (``labeled_joints`` of MPII), as the original.

    Args:
        root: data root.
        image_set: image set of both (``'train'``).
        is_train: training mode.
        transform: crop transform.
        raw_input: build the unlabeled set with ``is_train=False``.
        cons_rand_aug: add the RandAugment view.
        rand_magnitude: RandAugment M.
        seed: seed of the labeled-index generator.
        in_vis_thre: passed to ``AIDataset``.
        save_result: passed to ``AIDataset``.
        **kwargs: ``JointsDataset`` arguments shared by both sets.
    """

    def __init__(
        self, root, image_set, is_train, transform=None, raw_input=False, cons_rand_aug=False,
        rand_magnitude=10, seed=1314, in_vis_thre=0.0, save_result=True, **kwargs
    ):  # fmt: skip
        labeled = MPIIDataset(root, image_set, is_train, transform, **kwargs)
        unlabeled = AIDataset(
            root,
            image_set,
            is_train and not raw_input,
            transform,
            in_vis_thre=in_vis_thre,
            save_result=save_result,
            **kwargs,
        )
        aug = _rand_augment_view(unlabeled, is_train, transform, cons_rand_aug, rand_magnitude)
        super().__init__(labeled, unlabeled, aug, seed=seed)
