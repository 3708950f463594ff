"""Command lines of ``pose_estimation/train.py`` and ``valid.py``.

The original's arguments, plus overrides.

Every original flag is accepted. Trailing ``KEY VALUE`` pairs override the YAML (yacs style), e.g.
``python pose_estimation/train.py --cfg exp.yaml TRAIN.END_EPOCH 5 WORKERS 0``.
"""
import argparse

from semipose.config import get_cfg, update_config


def _common(parser):
    parser.add_argument("--cfg", required=True, type=str, help="experiment YAML")
    parser.add_argument(
        "--frequent", type=int, default=0, help="log every N iterations (PRINT_FREQ)"
    )
    parser.add_argument("--gpus", type=str, default="", help="GPU ids, e.g. 0 (sets GPUS)")
    parser.add_argument("--workers", type=int, default=-1, help="DataLoader workers (sets WORKERS)")
    parser.add_argument("--modelDir", type=str, default="", help="output root (sets OUTPUT_DIR)")
    parser.add_argument("--logDir", type=str, default="", help="TensorBoard root (sets LOG_DIR)")
    parser.add_argument("--dataDir", type=str, default="", help="data prefix (sets DATA_DIR)")
    parser.add_argument("--data-format", type=str, default="", help="jpg or zip")
    parser.add_argument(
        "--NoDebug", type=str, default="", help="non-empty: no debug images, no results file"
    )
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE config overrides"
    )


def _overrides(args):
    opts = []
    if args.frequent > 0:
        opts += ["PRINT_FREQ", str(args.frequent)]
    if args.gpus:
        opts += ["GPUS", args.gpus]
    if args.workers >= 0:
        opts += ["WORKERS", str(args.workers)]
    if args.data_format:
        opts += ["DATASET.DATA_FORMAT", args.data_format]
    if args.NoDebug:
        opts += ["DEBUG.DEBUG", "False", "TEST.SAVE_RESULT", "False"]
    return opts


def parse_train_args(argv=None):
    """Parses train.py's command line and returns ``(args, frozen cfg)``."""
    parser = argparse.ArgumentParser(description="Train PoseDual / PoseCons / SimpleBaseline")
    _common(parser)
    parser.add_argument(
        "--num_gpus", type=str, default="", help="unused (accepted for old scripts)"
    )
    parser.add_argument("--pretrained_model", type=str, default="", help="sets MODEL.PRETRAINED")
    parser.add_argument("--distributed", action="store_true", help="DistributedDataParallel")
    parser.add_argument(
        "--local_rank", "--local-rank", dest="local_rank", type=int, default=-1,
        help="set by torch.distributed.launch (torchrun sets LOCAL_RANK instead)",
    )
    args = parser.parse_args(argv)
    args.opts = _overrides(args) + list(args.opts)
    cfg = update_config(get_cfg(), args)
    return args, cfg


def parse_valid_args(argv=None):
    """Parses valid.py's command line and returns ``(args, frozen cfg)``."""
    parser = argparse.ArgumentParser(description="Evaluate a pose checkpoint")
    _common(parser)
    parser.add_argument("--model-file", type=str, default="", help="checkpoint (TEST.MODEL_FILE)")
    parser.add_argument(
        "--use-detect-bbox", action="store_true", help="detector boxes (TEST.USE_GT_BBOX False)"
    )
    parser.add_argument("--flip-test", action="store_true", help="TEST.FLIP_TEST True")
    parser.add_argument("--post-process", action="store_true", help="TEST.POST_PROCESS True")
    parser.add_argument("--shift-heatmap", action="store_true", help="TEST.SHIFT_HEATMAP True")
    parser.add_argument("--coco-bbox-file", type=str, default="", help="TEST.COCO_BBOX_FILE")
    args = parser.parse_args(argv)
    opts = _overrides(args)
    if args.use_detect_bbox:
        opts += ["TEST.USE_GT_BBOX", "False"]
    if args.flip_test:
        opts += ["TEST.FLIP_TEST", "True"]
    if args.post_process:
        opts += ["TEST.POST_PROCESS", "True"]
    if args.shift_heatmap:
        opts += ["TEST.SHIFT_HEATMAP", "True"]
    args.opts = opts + list(args.opts)
    args.distributed = False
    cfg = update_config(get_cfg(), args)
    # Paths given on the command line are taken as they are (not joined with DATA_DIR).
    if args.model_file or args.coco_bbox_file:
        cfg.defrost()
        if args.model_file:
            cfg.TEST.MODEL_FILE = args.model_file
        if args.coco_bbox_file:
            cfg.TEST.COCO_BBOX_FILE = args.coco_bbox_file
        cfg.freeze()
    return args, cfg
