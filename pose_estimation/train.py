"""Train a pose model from an experiment YAML.

    python pose_estimation/train.py --cfg experiments/synthetic/pose_dual_r18_demo.yaml
    torchrun --nproc_per_node=4 pose_estimation/train.py --distributed --cfg <yaml>
    python -m torch.distributed.launch --nproc_per_node=4 pose_estimation/train.py --distributed \
        --cfg <yaml>
"""
import sys

from semipose.engine.cli import parse_train_args, run_cli
from semipose.engine.launch import do_train


def main(argv=None):
    args, cfg = parse_train_args(argv)
    do_train(cfg, args)


if __name__ == "__main__":
    sys.exit(run_cli(main))
