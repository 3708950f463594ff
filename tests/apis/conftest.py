"""Fixtures of the inference API tests: a tiny synthetic COCO-format set, a fixed-weight model."""
import types
from pathlib import Path

import pytest
import torch

from semipose.config import get_cfg, update_config

# Training-loop keys of ``tiny_opts`` these inference tests leave at their defaults.
TRAINING_KEYS = ("DATASET.TRAIN_LEN", "MASK_JOINT_NUM", "TRAIN.BATCH_SIZE", "TRAIN.END_EPOCH",
                 "TRAIN.LR_STEP", "TRAIN.MAX_ITERS")  # fmt: skip
DETECTIONS = "coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json"


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
def dual_checkpoint(synth_root, tmp_path_factory, tiny_opts):
    """``(opts, path)``: a tiny pose_dual with seeded random weights, saved as a state_dict."""
    from semipose.methods import build_model

    out = tmp_path_factory.mktemp("apis_model")
    opts = tiny_opts(synth_root, out, changes={
        "PRINT_FREQ": "100", **dict.fromkeys(TRAINING_KEYS),
        "TEST.COCO_BBOX_FILE": str(Path(synth_root) / DETECTIONS),
    })
    torch.manual_seed(7)
    model = build_model(make_cfg(opts), is_train=False)
    path = out / "tiny_dual.pth.tar"
    torch.save(model.state_dict(), path)
    return opts, path
