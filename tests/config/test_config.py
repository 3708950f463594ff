"""Tests of semipose.config: every experiment YAML loads, strict keys, EXTRA, DATA_DIR."""
import argparse
import os
from pathlib import Path

import pytest

from semipose.config import ConfigError, get_cfg, get_model_name, load_config, update_config
from semipose.dataset.build import dataset_num_joints
from semipose.methods import build_method

REPO = Path(__file__).resolve().parents[2]
# Study definitions (experiments/studies/NAME.yaml: rows of configs) are not configs themselves.
EXPERIMENTS = sorted(p for p in REPO.glob("experiments/**/*.yaml")
                     if p.parent != REPO / "experiments" / "studies")
COCO_SUBSET = "experiments/mix_coco_coco/res18/"
HRNET = (
    REPO / "experiments/mix_coco_coco/hrnet/w48_384x288_COCO_COCOunlabel_PoseDual_JointCut5.yaml"
)


def _args(cfg, opts=(), **kw):
    return argparse.Namespace(cfg=str(cfg), opts=list(opts), **kw)


def _write(tmp_path, text, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_experiments_exist():
    names = {str(p.relative_to(REPO)) for p in EXPERIMENTS}
    original = {
        COCO_SUBSET + f"256x192_{s}.yaml"
        for s in ("COCO1K_PoseCons", "COCO1K_PoseDual", "COCO1K_PoseDual_JointCutout",
                  "COCO1K_PoseDual_RandAug", "COCO5K_PoseDual", "COCO10K_PoseDual")
    } | {
        f"experiments/mix_coco_coco/res{d}/256x192_COCO_COCOunlabel_PoseDual_JointCut.yaml"
        for d in (50, 101, 152)
    } | {
        str(HRNET.relative_to(REPO)),
        "experiments/mix_mpii_ai/res18/256x256_PoseDual_JointCut5.yaml",
    }  # fmt: skip
    assert len(original) == 11
    assert original <= names


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_experiment_loads(path):
    cfg = update_config(get_cfg(), _args(path))
    assert cfg.is_frozen()
    # The joint count is the dataset's: 24 for the union-layout sets, the metainfo's for 'custom'.
    assert cfg.MODEL.NUM_JOINTS == dataset_num_joints(cfg, cfg.DATASET.TRAIN_DATASET)
    assert cfg.MODEL.NUM_JOINTS == dataset_num_joints(cfg, cfg.DATASET.TEST_DATASET)
    assert len(cfg.MODEL.IMAGE_SIZE) == 2 and len(cfg.MODEL.EXTRA.HEATMAP_SIZE) == 2
    # Heatmaps are a quarter of the input.
    assert [4 * v for v in cfg.MODEL.EXTRA.HEATMAP_SIZE] == list(cfg.MODEL.IMAGE_SIZE)
    name, full = get_model_name(cfg)
    assert full.startswith(f"{cfg.MODEL.IMAGE_SIZE[1]}x{cfg.MODEL.IMAGE_SIZE[0]}_{name}_")


# stem -> (NAME, layers, TRAIN_LEN, MASK_JOINT_NUM, RAND_MAGNITUDE or None, END_EPOCH, LR_STEP,
#          BATCH_SIZE, DATA_FORMAT, WORKERS, RESUME, PRETRAINED file, GPUS)  (spec §3.5)
TABLE = {
    "res18/256x192_COCO1K_PoseCons": ("pose_cons", 18, 1000, 0, None, 30, [20, 25], 32, "jpg", 12,
                                      False, "resnet18-5c106cde.pth", "0"),
    "res18/256x192_COCO1K_PoseDual": ("pose_dual", 18, 1000, 0, None, 30, [20, 25], 32, "jpg", 12,
                                      False, "resnet18_5c_gluon_posedual.pth", "2"),
    "res18/256x192_COCO1K_PoseDual_JointCutout": ("pose_dual", 18, 1000, 5, None, 70, [50, 60], 32,
                                                  "jpg", 12, False,
                                                  "resnet18_5c_gluon_posedual.pth", "1"),
    "res18/256x192_COCO1K_PoseDual_RandAug": ("pose_dual", 18, 1000, 0, 20, 70, [50, 60], 32, "jpg",
                                              12, False, "resnet18_5c_gluon_posedual.pth", "0"),
    "res18/256x192_COCO5K_PoseDual": ("pose_dual", 18, 5000, 0, None, 100, [70, 90], 32, "jpg", 12,
                                      False, "resnet18_5c_gluon_posedual.pth", "0"),
    "res18/256x192_COCO10K_PoseDual": ("pose_dual", 18, 10000, 0, None, 100, [70, 90], 32, "jpg",
                                       12, False, "resnet18_5c_gluon_posedual.pth", "0"),
    "res50/256x192_COCO_COCOunlabel_PoseDual_JointCut": ("pose_dual", 50, -1, 5, None, 400,
                                                         [300, 350], 32, "zip", 8, True,
                                                         "resnet50-19c8e357.pth", "0"),
    "res101/256x192_COCO_COCOunlabel_PoseDual_JointCut": ("pose_dual", 101, -1, 5, None, 400,
                                                          [300, 350], 32, "zip", 8, True,
                                                          "resnet101-5d3b4d8f.pth", "0"),
    "res152/256x192_COCO_COCOunlabel_PoseDual_JointCut": ("pose_dual", 152, -1, 5, None, 400,
                                                          [300, 350], 32, "zip", 8, True,
                                                          "resnet152-b121ed2d.pth", "1"),
    "hrnet/w48_384x288_COCO_COCOunlabel_PoseDual_JointCut5": ("pose_dual", None, -1, 5, None, 300,
                                                              [220, 260], 8, "zip", 8, True,
                                                              "hrnet_w48-8ef0771d.pth", "0"),
}  # fmt: skip


@pytest.mark.parametrize("stem", sorted(TABLE))
def test_coco_experiment_values(stem):
    cfg = load_config(str(REPO / "experiments/mix_coco_coco" / f"{stem}.yaml"))
    name, layers, n, mj, ra, end, steps, bs, fmt, workers, resume, pre, gpus = TABLE[stem]
    assert cfg.MODEL.NAME == name
    if layers is not None:
        assert cfg.MODEL.EXTRA.NUM_LAYERS == layers
        assert cfg.MODEL.BACKBONE == "resnet"
        assert list(cfg.MODEL.IMAGE_SIZE) == [192, 256] and cfg.MODEL.EXTRA.SIGMA == 2
    else:
        assert cfg.MODEL.BACKBONE == "hrnet"
        assert list(cfg.MODEL.IMAGE_SIZE) == [288, 384] and cfg.MODEL.EXTRA.SIGMA == 3
    assert cfg.DATASET.TRAIN_LEN == n
    assert cfg.DATASET.TRAIN_UNSUP_SET == ("unlabeled2017" if n == -1 else "")
    assert cfg.MASK_JOINT_NUM == mj
    assert cfg.CONS_RAND_AUG == (ra is not None) and cfg.RAND_MAGNITUDE == (ra or 10)
    assert cfg.TRAIN.END_EPOCH == end and list(cfg.TRAIN.LR_STEP) == steps
    assert cfg.TRAIN.BATCH_SIZE == bs and cfg.DATASET.DATA_FORMAT == fmt
    assert cfg.WORKERS == workers and cfg.TRAIN.RESUME == resume and cfg.GPUS == gpus
    assert cfg.MODEL.PRETRAINED.endswith("models/pytorch/imagenet/" + pre)
    assert (cfg.DATASET.TRAIN_DATASET, cfg.DATASET.TEST_DATASET) == ("mix_coco_coco", "coco")
    assert cfg.DATASET.TEST_SET == "validation" and cfg.DATASET.ROOT == "data/"
    assert (cfg.TEST.OKS_THRE, cfg.TEST.IN_VIS_THRE, cfg.TEST.USE_GT_BBOX) == (0.9, 0.2, True)
    assert cfg.TEST.FLIP_TEST is False and cfg.TRAIN.LR == 0.001 and cfg.PRINT_FREQ == 100
    assert cfg.TEST.SAVE_RESULT == ("COCO5K" not in stem and "COCO10K" not in stem)
    det = "COCO_unlabeled2017" if n == -1 else "COCO_val2017"
    assert os.path.basename(cfg.TEST.COCO_BBOX_FILE).startswith(det)
    assert cfg.CUDNN.BENCHMARK is True and cfg.DEBUG.DEBUG is False


def test_mpii_ai_experiment_values():
    cfg = load_config(str(REPO / "experiments/mix_mpii_ai/res18/256x256_PoseDual_JointCut5.yaml"))
    assert (cfg.DATASET.TRAIN_DATASET, cfg.DATASET.TEST_DATASET) == ("mix_mpii_ai", "mpii")
    assert list(cfg.MODEL.IMAGE_SIZE) == [256, 256]
    assert list(cfg.MODEL.EXTRA.HEATMAP_SIZE) == [64, 64]
    assert (cfg.TRAIN.END_EPOCH, list(cfg.TRAIN.LR_STEP)) == (100, [50, 70])
    assert cfg.MASK_JOINT_NUM == 5 and cfg.TRAIN.RESUME is True and cfg.GPUS == "1"
    assert cfg.MODEL.PRETRAINED.endswith("resnet18-5c106cde.pth") and cfg.TEST.MODEL_FILE == ""


@pytest.mark.parametrize(
    "k, end, steps", [(1, 30, [20, 25]), (5, 100, [70, 90]), (10, 100, [70, 90])]
)
def test_supervised_baselines(k, end, steps):
    cfg = load_config(str(REPO / f"experiments/coco/res18/256x192_COCO{k}K_Supervised.yaml"))
    dual = load_config(str(REPO / COCO_SUBSET / f"256x192_COCO{k}K_PoseDual.yaml"))
    assert cfg.MODEL.NAME == "pose_resnet" and cfg.MODEL.EXTRA.NUM_LAYERS == 18
    assert (cfg.DATASET.TRAIN_DATASET, cfg.DATASET.TRAIN_SET) == ("coco", "train")
    assert cfg.DATASET.TEST_DATASET == "coco" and cfg.DATASET.TRAIN_LEN == 1000 * k
    assert cfg.MODEL.PRETRAINED == "models/pytorch/imagenet/resnet18-5c106cde.pth"
    assert (cfg.TRAIN.END_EPOCH, list(cfg.TRAIN.LR_STEP)) == (end, steps)
    assert (cfg.TRAIN.END_EPOCH, cfg.TRAIN.LR_STEP) == (dual.TRAIN.END_EPOCH, dual.TRAIN.LR_STEP)
    assert get_model_name(cfg) == ("pose_resnet_18", "256x192_pose_resnet_18_d256d256d256")


def test_unknown_key_names_key_and_file(tmp_path):
    path = _write(tmp_path, "DATASET:\n  ROOT: data/\n  NOT_A_KEY: 1\n")
    with pytest.raises(ConfigError) as err:
        update_config(get_cfg(), _args(path))
    assert "DATASET.NOT_A_KEY" in str(err.value) and str(path) in str(err.value)
    path = _write(tmp_path, "BOGUS_TOP: 3\n", "top.yaml")
    with pytest.raises(ConfigError, match="BOGUS_TOP"):
        update_config(get_cfg(), _args(path))


def test_unknown_extra_key(tmp_path):
    path = _write(tmp_path, "MODEL:\n  EXTRA:\n    NUM_LAYERS: 18\n    X: 1\n")
    with pytest.raises(ConfigError) as err:
        update_config(get_cfg(), _args(path))
    assert "MODEL.EXTRA.X" in str(err.value) and str(path) in str(err.value)


def test_hrnet_extra_replaces_the_default():
    cfg = load_config(str(HRNET))
    assert "NUM_LAYERS" not in cfg.MODEL.EXTRA
    assert "NUM_DECONV_FILTERS" not in cfg.MODEL.EXTRA
    assert list(cfg.MODEL.EXTRA.STAGE4.NUM_CHANNELS) == [48, 96, 192, 384]
    assert cfg.MODEL.EXTRA.STAGE3.NUM_MODULES == 4
    assert cfg.MODEL.EXTRA.PRETRAINED_LAYERS[-1] == "stage4"
    assert get_model_name(cfg) == ("pose_dual_48", "384x288_pose_dual_48_")


def test_int_sizes_become_pairs(tmp_path):
    path = _write(tmp_path, "MODEL:\n  IMAGE_SIZE: 256\n  EXTRA:\n    HEATMAP_SIZE: 64\n")
    cfg = update_config(get_cfg(), _args(path))
    assert list(cfg.MODEL.IMAGE_SIZE) == [256, 256]
    assert list(cfg.MODEL.EXTRA.HEATMAP_SIZE) == [64, 64]


def test_data_dir_is_joined(tmp_path):
    text = (
        "DATASET:\n  ROOT: data/\n  AI_ROOT: ai/\nMODEL:\n  PRETRAINED: models/x.pth\n"
        "TEST:\n  MODEL_FILE: models/y.pth.tar\n  COCO_BBOX_FILE: ''\n"
    )
    path = _write(tmp_path, text)
    cfg = update_config(get_cfg(), _args(path, dataDir="/mnt/d"))
    assert cfg.DATA_DIR == "/mnt/d"
    assert cfg.DATASET.ROOT == os.path.join("/mnt/d", "data/")
    assert cfg.MODEL.PRETRAINED == os.path.join("/mnt/d", "models/x.pth")
    assert cfg.TEST.MODEL_FILE == os.path.join("/mnt/d", "models/y.pth.tar")
    # AI_ROOT is joined with itself (the original joined the already-joined ROOT).
    assert cfg.DATASET.AI_ROOT == os.path.join("/mnt/d", "ai/")
    assert cfg.TEST.COCO_BBOX_FILE == ""  # empty values stay empty
    # Without DATA_DIR nothing is joined.
    cfg = update_config(get_cfg(), _args(path))
    assert cfg.DATASET.ROOT == "data/" and cfg.DATASET.AI_ROOT == "ai/"


def test_get_model_name_examples():
    cfg = load_config(str(REPO / COCO_SUBSET / "256x192_COCO1K_PoseDual.yaml"))
    assert get_model_name(cfg) == ("pose_dual_18", "256x192_pose_dual_18_d256d256d256")
    cfg = load_config(str(REPO / COCO_SUBSET / "256x192_COCO1K_PoseCons.yaml"))
    assert get_model_name(cfg) == ("pose_cons_18", "256x192_pose_cons_18_d256d256d256")
    cfg = load_config(None, ["MODEL.NAME", "some_net"])
    with pytest.raises(KeyError, match="some_net"):  # the method registry names it
        build_method(cfg)


def test_config_is_frozen_and_defaults_untouched():
    cfg = load_config(str(REPO / COCO_SUBSET / "256x192_COCO1K_PoseDual.yaml"))
    with pytest.raises(AttributeError):
        cfg.TRAIN.LR = 0.1
    with pytest.raises(AttributeError):
        cfg.MODEL.EXTRA.SIGMA = 5
    fresh = get_cfg()
    assert fresh.MODEL.NAME == "pose_resnet" and fresh.TRAIN.END_EPOCH == 140
    assert fresh.MODEL.EXTRA.NUM_LAYERS == 50


def test_overrides(tmp_path):
    cfg = load_config(
        str(REPO / COCO_SUBSET / "256x192_COCO1K_PoseDual.yaml"),
        ["TRAIN.END_EPOCH", "3", "MODEL.EXTRA.SIGMA", "3"],
    )
    assert cfg.TRAIN.END_EPOCH == 3 and cfg.MODEL.EXTRA.SIGMA == 3
    assert cfg.MODEL.EXTRA.NUM_LAYERS == 18  # one EXTRA override keeps the rest
    with pytest.raises(ConfigError, match="TRAIN.NOPE"):
        load_config(None, ["TRAIN.NOPE", "1"])


@pytest.mark.parametrize(
    "raw, value",
    [("1e-3", 1e-3), ("1e6", 1e6), ("1.0e30", 1e30), ("-2.5E-4", -2.5e-4), ("3", 3.0), (".5", 0.5)],
)
def test_float_keys_take_python_float_syntax(tmp_path, raw, value):
    """Issue 16 #1: YAML 1.1 reads '1e-3' as a string; float keys accept it from both sources."""
    cfg = load_config(None, ["TRAIN.LR", raw, "TEST.OKS_THRE", raw])
    assert cfg.TRAIN.LR == value and isinstance(cfg.TRAIN.LR, float)
    assert cfg.TEST.OKS_THRE == value
    path = _write(tmp_path, f"TRAIN:\n  LR: {raw}\n  LR_FACTOR: {raw}\n")
    cfg = update_config(get_cfg(), _args(path))
    assert cfg.TRAIN.LR == value and cfg.TRAIN.LR_FACTOR == value
    assert cfg.GPUS == "0"  # string keys still take the raw text (no literal_eval)


def test_float_keys_still_refuse_words(tmp_path):
    with pytest.raises(ConfigError, match=r"'TRAIN.LR' expects float.*'fast'.*command-line"):
        load_config(None, ["TRAIN.LR", "fast"])
    with pytest.raises(ConfigError, match="TRAIN.END_EPOCH' expects int"):
        load_config(None, ["TRAIN.END_EPOCH", "1e3"])  # int keys take no float syntax
    load_config(None, ["GPUS", "1e3"])  # a string key keeps the text


@pytest.mark.parametrize(
    "key, raw, expect",
    [
        ("MODEL.IMAGE_SIZE", "[64]", "list of 2 positive ints"),
        ("MODEL.IMAGE_SIZE", "[64,abc]", "list of 2 positive ints"),
        ("MODEL.IMAGE_SIZE", "[64,48,32]", "list of 2 positive ints"),
        ("MODEL.IMAGE_SIZE", "[64,0]", "list of 2 positive ints"),
        ("MODEL.IMAGE_SIZE", "[64.5,48]", "list of 2 positive ints"),
        ("MODEL.EXTRA.HEATMAP_SIZE", "[16]", "list of 2 positive ints"),
        ("DATASET.SYNTHETIC.IMAGE_SIZE", "[320,x]", "list of 2 positive ints"),
        ("TRAIN.LR_STEP", "[10,late]", "a list of ints"),
        ("MODEL.EXTRA.SIGMA", "abc", "expects a number > 0"),
        ("MODEL.EXTRA.SIGMA", "-1", "expects a number > 0"),
        ("MODEL.EXTRA.NUM_LAYERS", "eighteen", "expects int"),
        ("MODEL.EXTRA.DECONV_WITH_BIAS", "3", "expects bool"),
        ("MODEL.EXTRA.NUM_DECONV_FILTERS", "[128,x,128]", "positive ints"),
    ],
)
def test_bad_list_and_extra_values_name_key_and_source(tmp_path, key, raw, expect):
    """Issue 16 #2: list lengths, element types and MODEL.EXTRA values are checked."""
    with pytest.raises(ConfigError) as err:
        load_config(None, [key, raw])
    msg = str(err.value)
    assert f"'{key}'" in msg and expect in msg and "command-line overrides" in msg
    # The same value in a YAML file names the file.
    *parents, leaf = key.split(".")
    text, indent = "", ""
    for part in parents:
        text += f"{indent}{part}:\n"
        indent += "  "
    path = _write(tmp_path, text + f"{indent}{leaf}: {raw}\n")
    with pytest.raises(ConfigError) as err:
        update_config(get_cfg(), _args(path))
    assert f"'{key}'" in str(err.value) and str(path) in str(err.value)


def test_good_extra_values_are_kept(tmp_path):
    cfg = load_config(None, ["MODEL.EXTRA.SIGMA", "1.5", "MODEL.IMAGE_SIZE", "[48,64]"])
    assert cfg.MODEL.EXTRA.SIGMA == 1.5 and list(cfg.MODEL.IMAGE_SIZE) == [48, 64]
    cfg = load_config(None, ["MODEL.EXTRA.SIGMA", "2e0", "MODEL.EXTRA.HEATMAP_SIZE", "16"])
    assert cfg.MODEL.EXTRA.SIGMA == 2.0 and list(cfg.MODEL.EXTRA.HEATMAP_SIZE) == [16, 16]


def test_stage_lists_must_match_their_counts(tmp_path):
    with pytest.raises(ConfigError, match=r"NUM_DECONV_FILTERS' has 2 entries.*NUM_DECONV_LAYERS"):
        load_config(None, ["MODEL.EXTRA.NUM_DECONV_FILTERS", "[128,128]"])
    with pytest.raises(ConfigError, match=r"STAGE3.NUM_CHANNELS' has 2.*NUM_BRANCHES is 3"):
        load_config(str(HRNET), ["MODEL.EXTRA.STAGE3.NUM_CHANNELS", "[48,96]"])
    with pytest.raises(ConfigError, match=r"MODEL.EXTRA.STAGE2.*HRNet key"):
        load_config(None, ["MODEL.EXTRA.STAGE2.NUM_MODULES", "2"])
