import numpy as np
import pytest
import torch

from semipose.dataset.build import default_transform
from semipose.dataset.coco import COCODataset
from semipose.dataset.joints import COCO_TRAINED, MPII_TRAINED
from semipose.dataset.mixed import (
    MixedCOCOCOCODataset,
    MixedDataset,
    MixedMPIIAIDataset,
    with_rand_augment,
)
from semipose.dataset.rand_augment import RandAugment


def test_mix_coco_coco_structure(tiny_coco, tiny_kwargs):
    root, _ = tiny_coco
    ds = MixedCOCOCOCODataset(
        root, "train", True, default_transform(), train_len=2, seed=5, **tiny_kwargs
    )
    assert len(ds) == 4 and ds.sizes == [2, 4]
    assert ds.labeled_joints == COCO_TRAINED
    assert set(ds.data_ind.tolist()) <= {0, 1}
    inputs, targets, weights, metas = ds[3]
    assert len(inputs) == 2 and len(targets) == 2 and len(weights) == 2 and len(metas) == 2
    assert inputs[0].shape == inputs[1].shape == (3, 128, 96)
    expected = torch.zeros(24, 1)
    expected[COCO_TRAINED] = 1
    torch.testing.assert_close(weights[1], expected)
    vis = metas[0]["joints_vis"].copy()
    vis[COCO_TRAINED] = 1
    np.testing.assert_array_equal(metas[1]["joints_vis"], vis)
    assert metas[1]["image"] == ds.unlabeled.db[3]["image"]
    assert metas[0]["image"] == ds.labeled.db[ds.data_ind[3]]["image"]
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    assert batch[0][1].shape == (2, 3, 128, 96)


def test_shared_draw_identical_views(tiny_coco, tiny_kwargs):
    root, _ = tiny_coco
    lab = COCODataset(root, "train", True, None, train_len=2, **tiny_kwargs)
    unl = COCODataset(root, "train", True, None, **tiny_kwargs)
    ds = MixedDataset(lab, unl, unl.copy_with_transform(None), seed=0)
    np.random.seed(1)
    for idx in range(4):
        inputs, _, _, metas = ds[idx]
        np.testing.assert_array_equal(inputs[1], inputs[2])
    # The shared draw is a real draw: over a few items, rotations and scales vary.
    rots = {round(ds[0][3][1]["rotation"], 6) for _ in range(8)}
    assert len(rots) > 1


def test_rand_augment_view(tiny_coco, tiny_kwargs):
    root, _ = tiny_coco
    ds = MixedCOCOCOCODataset(
        root,
        "train",
        True,
        default_transform(),
        train_len=2,
        cons_rand_aug=True,
        rand_magnitude=20,
        **tiny_kwargs,
    )
    inputs, targets, weights, metas = ds[1]
    assert len(inputs) == 3 and len(targets) == 2
    assert inputs[2].shape == inputs[1].shape
    assert isinstance(ds.unlabeled_aug.transform.transforms[0], RandAugment)
    assert not isinstance(ds.unlabeled.transform.transforms[0], RandAugment)
    assert ds.unlabeled_aug.db is ds.unlabeled.db


def test_shuffle_ind_reproducible(tiny_coco, tiny_kwargs):
    root, _ = tiny_coco
    lab = COCODataset(root, "train", True, None, **tiny_kwargs)
    unl = COCODataset(root, "val", True, None, **tiny_kwargs)
    big_unl = MixedDataset(lab, unl, seed=11)  # labeled (4) larger than unlabeled (3)
    assert len(big_unl) == 4
    assert big_unl[3][3][1]["image"] == unl.db[0]["image"]  # index wraps around

    class Fake:
        labeled_joints = [1]
        flip_pairs = []
        num_joints = 24
        image_set = "x"
        scale_factor = 0.25
        rotation_factor = 30

        def __init__(self, n):
            self.n = n

        def __len__(self):
            return self.n

    a = MixedDataset(Fake(50), Fake(400), seed=3)
    b = MixedDataset(Fake(50), Fake(400), seed=3)
    first = a.data_ind.copy()
    np.testing.assert_array_equal(first, b.data_ind)
    second = a.shuffle_ind()
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(second, b.shuffle_ind())
    assert len(second) == 400 and second.min() >= 0 and second.max() < 50
    assert len(np.unique(second)) < 400  # with replacement
    c = MixedDataset(Fake(50), Fake(400), seed=4)
    assert not np.array_equal(first, c.data_ind)
    state = np.random.get_state()[1].copy()
    MixedDataset(Fake(50), Fake(400), seed=3)
    np.testing.assert_array_equal(state, np.random.get_state()[1])  # no global reseeding


def test_empty_set_rejected(tiny_coco, tiny_kwargs):
    root, _ = tiny_coco
    lab = COCODataset(root, "train", True, None, **tiny_kwargs)
    empty = COCODataset(root, "train", True, None, **tiny_kwargs)
    empty.db = []
    with pytest.raises(ValueError, match="non-empty"):
        MixedDataset(lab, empty)


def test_with_rand_augment_does_not_mutate():
    base = default_transform()
    aug = with_rand_augment(base, 10)
    assert len(base.transforms) == 2 and len(aug.transforms) == 3
    assert len(with_rand_augment(aug, 10).transforms) == 3


def test_mix_mpii_ai(mpii_aic_real_root):
    ds = MixedMPIIAIDataset(
        mpii_aic_real_root, "train", True, None, image_size=(64, 64), heatmap_size=(16, 16), seed=2
    )
    assert ds.sizes == [5, 9] and len(ds) == 9
    assert ds.labeled_joints == MPII_TRAINED
    inputs, targets, weights, metas = ds[8]
    assert inputs[0].shape == (64, 64, 3) and targets[1].shape == (24, 16, 16)
    assert weights[1][:, 0].nonzero().flatten().tolist() == MPII_TRAINED
    assert metas[1]["image"].endswith(".jpg") and "ai_challenger" in metas[1]["image"]
