"""Prints 1 when the device training would use computes bfloat16 natively, else 0.

``python -m semipose.engine.fastpath [cpu|cuda]`` (default: CUDA when present, else the CPU); the
demo (``make demo``) turns on ``TRAIN.BF16`` and ``TRAIN.CHANNELS_LAST`` when it prints 1.
"""

import sys

import torch

from semipose.engine.defaults import native_bf16


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    device = argv[0] if argv else ("cuda" if torch.cuda.is_available() else "cpu")
    print(int(native_bf16(device)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
