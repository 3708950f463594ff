"""Pose on your own images or video: draws the predicted skeletons and writes COCO results.

    python pose_estimation/infer.py --cfg <yaml> --model-file <checkpoint> \
        --images <DIR|FILE> [...] | --video <FILE> \
        [--bbox-file <detections.json> | --gt-ann <annotations.json> | --detector <weights.pth>
         | --whole-image] [--out DIR]

See ``python pose_estimation/infer.py --help`` and ``semipose.apis.runner``.
"""
import sys

from semipose.apis.runner import main

if __name__ == "__main__":
    sys.exit(main())
