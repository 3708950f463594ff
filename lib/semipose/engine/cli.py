"""Command lines of ``pose_estimation/train.py`` and ``valid.py``.

The original's arguments, plus overrides.

Every original flag is accepted. ``KEY VALUE`` pairs override the YAML (yacs style), e.g.
``python pose_estimation/train.py --cfg exp.yaml TRAIN.END_EPOCH 5 WORKERS 0``; flags may come
before, between or after them.

``run_cli`` (from ``semipose.common.errors``) runs an entry point with the project's error
convention: an error caused by the input (``UserError``, a missing file) ends the run with one
``error: ...`` line on stderr and exit status 2, a NaN/Inf stop with status 1, Ctrl-C with status
130; any other exception is a bug and keeps its traceback. ``--traceback`` or
``SEMIPOSE_DEBUG=1`` shows every traceback.
"""
import argparse
import sys

from semipose.common.errors import run_cli  # noqa: F401  (the entry points import it here)
from semipose.config import get_cfg, update_config

__all__ = ["parse_train_args", "parse_valid_args", "run_cli", "split_flags"]



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
        "--traceback", action="store_true",
        help="print the full traceback of every error (also SEMIPOSE_DEBUG=1)",
    )  # fmt: skip
    parser.add_argument(
        "opts", nargs="*", default=[], metavar="OVERRIDE", help="KEY VALUE config overrides"
    )


def flag_arity(parser):
    """``{option string: nargs}`` of ``parser``'s actions (argparse keeps them in ``_actions``)."""
    return {o: a.nargs for a in parser._actions for o in a.option_strings}


def take_flag(parser, arity, argv, i, stop=None):
    """The flag at ``argv[i]`` with the values it takes: ``(tokens, next index)``.

    A unique prefix of a long option counts as the option (argparse's abbreviations); ``--x=v``
    and a flag without values take nothing more; ``+`` / ``*`` flags take tokens up to the next
    flag or a token ``stop(token)`` says ends them; others take their count (one for a plain
    option). An unknown flag takes nothing: argparse names it.
    """
    token = argv[i]
    name = token.split("=", 1)[0]
    if name not in arity and parser.allow_abbrev:
        matches = [o for o in arity if o.startswith(name) and o.startswith("--")]
        name = matches[0] if len(matches) == 1 else name
    n = arity.get(name, 0)
    i += 1
    if "=" in token or n == 0:
        return [token], i
    if n in ("+", "*"):
        end = i
        while end < len(argv) and not argv[end].startswith("-") and not (stop and stop(argv[end])):
            end += 1
        return [token, *argv[i:end]], end
    count = 1 if n is None or n == "?" else int(n)
    return [token, *argv[i:i + count]], i + count


def split_flags(parser, argv):
    """Separates the flags of ``parser`` from the ``KEY VALUE`` overrides, wherever they stand.

    A token starting with ``-`` where a KEY is expected is a flag (with the values it takes,
    ``take_flag``); every other token starts a ``KEY VALUE`` pair, so a value may look like a flag
    (``TRAIN.LR -1e-3``). Unknown flags are left to argparse, which names them.

    Args:
        parser: the ``argparse.ArgumentParser`` whose flags are recognised.
        argv: the command-line tokens (without the program name).

    Returns:
        ``(flags, opts)``: the flag tokens in their order, and the override tokens.
    """
    arity = flag_arity(parser)
    flags, opts = [], []
    i = 0
    while i < len(argv):
        if argv[i].startswith("-") and len(argv[i]) > 1:
            tokens, i = take_flag(parser, arity, argv, i)
            flags += tokens
        else:
            opts.extend(argv[i : i + 2])
            i += 2
    return flags, opts


def _parse(parser, argv):
    argv = list(sys.argv[1:] if argv is None else argv)
    flags, opts = split_flags(parser, argv)
    args = parser.parse_args(flags)
    args.opts = opts
    return args


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
    args = _parse(parser, argv)
    args.opts = _overrides(args) + list(args.opts)
    cfg = update_config(get_cfg(), args)
    return args, cfg


def parse_valid_args(argv=None):
    """Parses valid.py's command line and returns ``(args, frozen cfg)``."""
    parser = argparse.ArgumentParser(description="Evaluate a pose checkpoint")
    _common(parser)
    parser.add_argument("--model-file", type=str, default="", help="checkpoint (TEST.MODEL_FILE)")
    parser.add_argument(
        "--vis", type=int, default=0, metavar="N",
        help="draw the predictions on the first N val images (<output>/vis/)",
    )
    parser.add_argument(
        "--use-detect-bbox", action="store_true", help="detector boxes (TEST.USE_GT_BBOX False)"
    )
    parser.add_argument("--flip-test", action="store_true", help="TEST.FLIP_TEST True")
    parser.add_argument("--post-process", action="store_true", help="TEST.POST_PROCESS True")
    parser.add_argument("--shift-heatmap", action="store_true", help="TEST.SHIFT_HEATMAP True")
    parser.add_argument("--coco-bbox-file", type=str, default="", help="TEST.COCO_BBOX_FILE")
    args = _parse(parser, argv)
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
