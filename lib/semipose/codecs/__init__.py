"""Keypoint codecs: how joints become training targets and how network outputs become joints.

``MSRAHeatmap`` is the one heatmap codec (Gaussian targets, argmax decoding with the quarter-pixel
shift or DARK refinement, the flip-test merge). ``build_codec(cfg)`` is the only place that reads
its settings from the config; everything else receives a codec object.
"""

from semipose.codecs.heatmap import (
    MSRAHeatmap,
    build_codec,
    gaussian_blur,
    get_max_preds,
    get_max_preds_tensor,
    taylor,
)

__all__ = [
    "MSRAHeatmap",
    "build_codec",
    "gaussian_blur",
    "get_max_preds",
    "get_max_preds_tensor",
    "taylor",
]
