"""The per-sample pipeline: its composition, and a transform added from outside the package."""

import random

import numpy as np
import pytest
import torch

from semipose.dataset.coco import COCODataset
from semipose.dataset.mixed import MixedDataset

TRAIN = ["RandomHalfBody", "RandomScaleRotation", "RandomFlip", "LoadImage", "TopdownAffine",
         "GenerateTarget", "PackMeta"]  # fmt: skip


class BrightBand:
    """Test transform: paints the top ``rows`` rows of the crop white and records that it ran.

    Reads and writes ``input`` (the uint8 crop); writes ``band_rows``.
    """

    def __init__(self, rows):
        self.rows = rows

    def __call__(self, sample):
        crop = sample["input"].copy()
        crop[: self.rows] = 255
        sample["input"] = crop
        sample["band_rows"] = self.rows
        return sample


class DropJoint:
    """Test transform: marks joint ``j`` unlabeled before the targets are made.

    Reads and writes ``joints_vis``.
    """

    def __init__(self, j):
        self.j = j

    def __call__(self, sample):
        sample["joints_vis"][self.j] = 0.0
        return sample


def _item(ds, idx, seed=3):
    np.random.seed(seed)
    random.seed(seed)
    return ds[idx]


def test_pipeline_lists(tiny_coco, tiny_kwargs):
    root, _ = tiny_coco
    train = COCODataset(root, "train", True, None, **tiny_kwargs)
    assert train.pipeline.names() == TRAIN
    test = COCODataset(root, "val", False, None, use_gt_bbox=True, **tiny_kwargs)
    assert test.pipeline.names() == ["LoadImage", "TopdownAffine", "GenerateTarget", "PackMeta"]
    # A view switched to evaluation (as the mixed sets' raw views) builds its own list.
    view = train.copy_with_transform(lambda crop: torch.from_numpy(crop.copy()))
    view.is_train = False
    assert "ApplyTransform" in view.pipeline.names() and "RandomFlip" not in view.pipeline.names()
    assert train.pipeline.names() == TRAIN


def test_outside_transform_changes_the_sample(tiny_coco, tiny_kwargs):
    root, _ = tiny_coco
    ds = COCODataset(root, "train", True, None, **tiny_kwargs)
    plain_inp, plain_target, plain_weight, plain_meta = _item(ds, 0)
    j = int(np.flatnonzero(plain_weight[:, 0].numpy() > 0)[0])
    assert plain_target[j].max() > 0
    ds.insert_transform(BrightBand(5), after="TopdownAffine")
    ds.insert_transform(DropJoint(j), before="GenerateTarget")
    assert ds.pipeline.names() == TRAIN[:5] + ["BrightBand", "DropJoint"] + TRAIN[5:]
    inp, target, weight, meta = _item(ds, 0)
    assert np.all(inp[:5] == 255)
    np.testing.assert_array_equal(inp[5:], plain_inp[5:])  # same draws: the rest is unchanged
    assert weight[j, 0] == 0 and target[j].max() == 0
    others = [k for k in range(len(target)) if k != j]
    assert torch.equal(target[others], plain_target[others])
    np.testing.assert_array_equal(meta["center"], plain_meta["center"])
    # Copies made afterwards keep it (the mixed sets' views are copies).
    view = ds.copy_with_transform(None)
    assert np.all(_item(view, 0)[0][:5] == 255)
    mixed = MixedDataset(ds, ds, seed=0)
    np.random.seed(0)
    assert np.all(mixed[0][0][0][:5] == 255)


def test_mixed_set_takes_a_transform_in_every_view(tiny_coco, tiny_kwargs):
    root, _ = tiny_coco
    lab = COCODataset(root, "train", True, None, train_len=2, **tiny_kwargs)
    unl = COCODataset(root, "train", True, None, **tiny_kwargs)
    mixed = MixedDataset(lab, unl, unl.copy_with_transform(None), seed=0)
    mixed.insert_transform(BrightBand(3), after="TopdownAffine")
    np.random.seed(2)
    inputs = mixed[1][0]
    assert len(inputs) == 3 and all(np.all(x[:3] == 255) for x in inputs)
    assert unl.pipeline.names().count("BrightBand") == 1


def test_insert_transform_errors(tiny_coco, tiny_kwargs):
    root, _ = tiny_coco
    ds = COCODataset(root, "train", True, None, **tiny_kwargs)
    with pytest.raises(ValueError, match="exactly one"):
        ds.insert_transform(DropJoint(0))
    with pytest.raises(ValueError, match="NoSuchStep"):
        ds.insert_transform(DropJoint(0), after="NoSuchStep")
