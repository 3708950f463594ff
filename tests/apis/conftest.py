"""Fixtures of the inference API tests: a tiny synthetic COCO-format set, a fixed-weight model."""
import types
from pathlib import Path

import pytest
import torch

from semipose.config import get_cfg, update_config


def tiny_opts(root, out, model_name="pose_dual", extra=()):
    """A 64x48 ResNet-18 with thin deconvolutions on the tiny synthetic set (GT boxes)."""
    return [
        "OUTPUT_DIR", str(Path(out) / "output"),
        "LOG_DIR", str(Path(out) / "log"),
        "WORKERS", "0",
        "PRINT_FREQ", "100",
        "DEVICE", "cpu",
        "MODEL.NAME", model_name,
        "MODEL.INIT_WEIGHTS", "False",
        "MODEL.PRETRAINED", "",
        "MODEL.NUM_JOINTS", "24",
        "MODEL.IMAGE_SIZE", "[64, 96]",
        "MODEL.EXTRA.NUM_LAYERS", "18",
        "MODEL.EXTRA.HEATMAP_SIZE", "[16, 24]",
        "MODEL.EXTRA.NUM_DECONV_FILTERS", "[32, 32, 32]",
        "MODEL.EXTRA.SIGMA", "1",
        "DATASET.ROOT", str(root),
        "DATASET.TRAIN_DATASET", "coco" if model_name == "pose_resnet" else "mix_coco_coco",
        "DATASET.TEST_DATASET", "coco",
        "DATASET.TRAIN_SET", "train",
        "DATASET.TEST_SET", "validation",
        "TEST.BATCH_SIZE", "4",
        "TEST.USE_GT_BBOX", "True",
        "TEST.OKS_THRE", "0.9",
        "TEST.IN_VIS_THRE", "0.2",
        "TEST.COCO_BBOX_FILE", str(
            Path(root) / "coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json"
        ),
        *extra,
    ]  # fmt: skip


def make_cfg(opts):
    args = types.SimpleNamespace(cfg=None, opts=list(opts), distributed=False, local_rank=-1)
    return update_config(get_cfg(), args)


@pytest.fixture(scope="package")
def synth_root(tmp_path_factory):
    """A synthetic COCO-format set: 2 train and 4 val images of 160x120 pixels."""
    from semipose.dataset.synthetic import generate

    root = tmp_path_factory.mktemp("apis_synth")
    generate(str(root), num_train=2, num_val=4, image_size=(160, 120), seed=5)
    return root


@pytest.fixture(scope="package")
def dual_checkpoint(synth_root, tmp_path_factory):
    """``(opts, path)``: a tiny pose_dual with seeded random weights, saved as a state_dict."""
    from semipose.methods import build_model

    out = tmp_path_factory.mktemp("apis_model")
    opts = tiny_opts(synth_root, out)
    torch.manual_seed(7)
    model = build_model(make_cfg(opts), is_train=False)
    path = out / "tiny_dual.pth.tar"
    torch.save(model.state_dict(), path)
    return opts, path
