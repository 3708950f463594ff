import numpy as np
import pytest

from semipose.config import get_cfg
from semipose.dataset.build import DATASETS, build_dataset, default_transform, ensure_synthetic
from semipose.dataset.coco import COCODataset
from semipose.dataset.mixed import MixedCOCOCOCODataset


def _cfg(root, **over):
    cfg = get_cfg()
    cfg.DATASET.ROOT = root
    cfg.MODEL.IMAGE_SIZE = [96, 128]
    cfg.MODEL.EXTRA.HEATMAP_SIZE = [24, 32]
    cfg.DATASET.TRAIN_DATASET = "mix_coco_coco"
    cfg.DATASET.TEST_DATASET = "coco"
    cfg.DATASET.TEST_SET = "validation"
    cfg.DATASET.TRAIN_LEN = 2
    cfg.TEST.USE_GT_BBOX = True
    for k, v in over.items():
        node, key = k.rsplit(".", 1) if "." in k else (None, k)
        (cfg if node is None else cfg[node])[key] = v
    return cfg


def test_registry_names():
    assert sorted(DATASETS) == [
        "ai_challenger", "coco", "custom", "mix_coco_coco", "mix_mpii_ai", "mpii"
    ]  # fmt: skip


def test_unknown_name_lists_registry(tmp_path):
    cfg = _cfg(str(tmp_path))
    cfg.DATASET.TEST_DATASET = "nope"
    with pytest.raises(KeyError, match="mix_coco_coco"):
        build_dataset(cfg, False)


def test_build_train_and_test(tiny_coco):
    root, _ = tiny_coco
    cfg = _cfg(root, SEED=7)
    cfg.freeze()
    train = build_dataset(cfg, True)
    assert isinstance(train, MixedCOCOCOCODataset)
    assert train.sizes == [2, 4] and train.seed == 7
    assert cfg.DATASET.TRAIN_LEN == 2  # not mutated
    test = build_dataset(cfg, False)
    assert isinstance(test, COCODataset) and len(test.db) == 3
    inp = test[0][0]
    assert inp.shape == (3, 128, 96)
    # The default transform is ToTensor + ImageNet normalisation of the BGR crop.
    raw = COCODataset(
        root, "val", False, None, use_gt_bbox=True, image_size=(96, 128), heatmap_size=(24, 32)
    )[0][0]
    np.testing.assert_allclose(inp.numpy(), default_transform()(raw).numpy())


def _synthetic_cfg(root):
    cfg = _cfg(root)
    cfg.DATASET.TRAIN_DATASET = "coco"
    cfg.DATASET.SYNTHETIC.ENABLED = True
    cfg.DATASET.SYNTHETIC.NUM_TRAIN = 3
    cfg.DATASET.SYNTHETIC.NUM_VAL = 2
    cfg.DATASET.SYNTHETIC.IMAGE_SIZE = [160, 120]
    return cfg


def test_build_never_generates_the_synthetic_set(tmp_path):
    root = str(tmp_path / "syn")
    cfg = _synthetic_cfg(root)
    with pytest.raises(FileNotFoundError, match="ensure_synthetic"):
        build_dataset(cfg, False)
    assert not (tmp_path / "syn/coco/annotations").exists()


def test_synthetic_set_from_ensure_synthetic(tmp_path):
    root = str(tmp_path / "syn")
    cfg = _synthetic_cfg(root)
    ensure_synthetic(cfg)
    assert (tmp_path / "syn/coco/annotations/person_keypoints_val2017.json").is_file()
    ds = build_dataset(cfg, False)
    assert len(ds.db) > 0
    # A config asking for another synthetic set is refused, not silently given this one.
    cfg.DATASET.SYNTHETIC.SEED = 1
    with pytest.raises(FileNotFoundError, match="other DATASET.SYNTHETIC parameters"):
        build_dataset(cfg, True)
