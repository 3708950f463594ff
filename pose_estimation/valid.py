"""Evaluate a checkpoint (TEST.MODEL_FILE / --model-file, else the run's final_state.pth.tar).

    python pose_estimation/valid.py --cfg <yaml> --model-file <checkpoint> [--flip-test]
"""
import sys

from semipose.engine.cli import parse_valid_args, run_cli
from semipose.engine.launch import do_valid


def main(argv=None):
    args, cfg = parse_valid_args(argv)
    do_valid(cfg, args)


if __name__ == "__main__":
    sys.exit(run_cli(main))
