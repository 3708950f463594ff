"""Every original experiment YAML starts training unchanged: one iteration on tiny data, then
validation.

Only data paths, sizes and the iteration budget are overridden (no pretrained files, no zip archives
here); the model, losses and augmentation come from each YAML as it is.
"""
import json
import os
import types
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from semipose.config import get_cfg, update_config
from semipose.engine import launch

REPO = Path(__file__).resolve().parents[2]
ORIGINAL_YAMLS = sorted(
    str(p.relative_to(REPO))
    for p in (REPO / "experiments").glob("mix_*/**/*.yaml")
)
# MultiAugs' published rows (experiments/multiaugs): trained with their backbones shrunk (below)
MULTIAUGS_YAMLS = sorted(
    str(p.relative_to(REPO)) for p in (REPO / "experiments" / "multiaugs").rglob("*.yaml")
)
MPII_MAT_NAMES = ["rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor", "neck", "head",
                  "rwri", "relb", "rsho", "lsho", "lelb", "lwri"]  # fmt: skip


def test_all_eleven_original_yamls_are_present():
    assert len(ORIGINAL_YAMLS) == 11


def test_every_multiaugs_row_has_a_yaml():
    """Table 1: 1K/5K/10K x Single/Dual; Table 2: R50/R101/W48 x Single/Dual; Table 5: W32."""
    assert len(MULTIAUGS_YAMLS) == 13
    for path in MULTIAUGS_YAMLS:
        assert "Reproduces Table" in (REPO / path).read_text(), path


def shrunk_backbone(yaml_file):
    """Overrides that keep a YAML's method, paths and losses but make its backbone tiny: ResNet-18
    with 16-channel deconvs, or a one-module, one-block HRNet with 8..64 channels."""
    from semipose.config import load_config

    if load_config(str(REPO / yaml_file)).MODEL.BACKBONE == "resnet":
        return ["MODEL.EXTRA.NUM_LAYERS", "18", "MODEL.EXTRA.NUM_DECONV_FILTERS", "[16, 16, 16]"]
    opts = []
    for stage, branches in (("STAGE2", 2), ("STAGE3", 3), ("STAGE4", 4)):
        key = f"MODEL.EXTRA.{stage}."
        opts += [key + "NUM_MODULES", "1", key + "NUM_BLOCKS", str([1] * branches),
                 key + "NUM_CHANNELS", str([8 * 2**b for b in range(branches)])]
    return opts


@pytest.fixture(scope="module")
def coco_root(wild_coco):
    """A tiny synthetic COCO set plus an ``unlabeled2017`` view of its train images (WILD)."""
    return wild_coco("coco_syn", num_val=2, seed=5)


@pytest.fixture(scope="module")
def mpii_aic_root(tmp_path_factory, realdata_dir):
    """The real MPII and raw AIC samples in the original layout, with ``gt_validation.mat``."""
    real = Path(realdata_dir)
    root = tmp_path_factory.mktemp("mpii_aic")
    links = []
    for split in ("train", "validation"):
        links.append((real / "mpii/test_mpii.json", root / f"mpii/annot/{split}.json"))
        links.append((real / "aic_raw/keypoint_sample_annotation.json",
                      root / f"ai_challenger/{split}/keypoint_{split}_annotation.json"))
        links += [(p, root / f"ai_challenger/{split}/images" / p.name)
                  for p in (real / "aic").glob("*.jpg")]
    links += [(p, root / "mpii/images" / p.name) for p in (real / "mpii").glob("*.jpg")]
    for src, dst in links:
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(src, dst)
    annots = json.loads((real / "mpii/test_mpii.json").read_text())
    joints = np.array([a["joints"] for a in annots], dtype=np.float64)  # (N, 16, 2)
    vis = np.array([a["joints_vis"] for a in annots], dtype=np.float64)  # (N, 16)
    boxes = np.zeros((2, 2, len(annots)))
    boxes[1] = 60.0
    savemat(str(root / "mpii/annot/gt_validation.mat"), {
        "dataset_joints": np.array(MPII_MAT_NAMES, dtype=object).reshape(1, 16),
        "jnt_missing": (1 - vis).T,
        "pos_gt_src": np.transpose(joints, [1, 2, 0]),
        "headboxes_src": boxes,
    })
    return root


# The deepest backbones train here shrunk (their full architectures and checkpoint keys are built
# and compared in tests/methods/test_build.py): R18 and R50 (the bottleneck blocks) run full-size.
LARGE = ("/res101/", "/res152/", "/hrnet/")


@pytest.mark.parametrize("yaml_file", ORIGINAL_YAMLS + MULTIAUGS_YAMLS)
def test_original_yaml_trains_one_iteration(yaml_file, request, tmp_path):
    opts = [
        "OUTPUT_DIR", str(tmp_path / "output"), "LOG_DIR", str(tmp_path / "log"),
        "WORKERS", "0", "DEVICE", "cpu", "PRINT_FREQ", "1",
        "MODEL.PRETRAINED", "", "MODEL.INIT_WEIGHTS", "False",
        "MODEL.IMAGE_SIZE", "[64, 64]", "MODEL.EXTRA.HEATMAP_SIZE", "[16, 16]",
        "DATASET.DATA_FORMAT", "jpg",
        "TRAIN.BATCH_SIZE", "2", "TRAIN.END_EPOCH", "1", "TRAIN.MAX_ITERS", "1",
        "TEST.BATCH_SIZE", "8",
    ]
    if yaml_file in MULTIAUGS_YAMLS or any(k in yaml_file for k in LARGE):
        opts += shrunk_backbone(yaml_file)
    if "mix_mpii_ai" in yaml_file:
        opts += ["DATASET.ROOT", str(request.getfixturevalue("mpii_aic_root"))]
    else:
        root, train_dets = request.getfixturevalue("coco_root")
        opts += ["DATASET.ROOT", str(root), "DATASET.TRAIN_LEN", "3",
                 "TEST.COCO_BBOX_FILE", train_dets]
    args = types.SimpleNamespace(cfg=str(REPO / yaml_file), opts=opts, distributed=False,
                                 local_rank=-1)
    cfg = update_config(get_cfg(), args)
    out = launch.do_train(cfg, args)
    assert out["epochs"] == 1
    assert (Path(out["output_dir"]) / "checkpoint.pth.tar").is_file()
    assert np.isfinite(out["last"]["perf"])
    if yaml_file in MULTIAUGS_YAMLS:  # every path's loss was logged
        from semipose.engine.events import read_metrics

        record = read_metrics(out["output_dir"], kind="iter")[-1]
        paths = cfg.HARD_AUG.PATHS
        assert [f"loss_cons_path{k}" in record for k in range(len(paths) + 1)] == [True] * len(
            paths) + [False]
