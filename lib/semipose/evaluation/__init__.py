"""Evaluation as its own layer: evaluators take predictions and return named metrics.

Each evaluator's ``evaluate`` returns ``(name_value, perf)``: an ``OrderedDict`` metric name ->
float and the key metric (COCO and AIC: ``AP``; PCKh: ``Mean``), or ``({'Null': 0}, 0)`` for a set
without ground truth. The datasets keep the original's ``evaluate(preds, output_dir, all_boxes,
img_path, ...)`` as a thin call into these.

* ``COCOKeypointEvaluator``: rescoring, per-image OKS-NMS, the results json and ``COCOeval``.
* ``MPIIPCKhEvaluator``: MPII PCKh@0.5 against ``gt_<set>.mat``.
* ``AICKeypointEvaluator``: the official AI Challenger keypoint AP (plus PCKh when given).
"""

from semipose.evaluation.aic import AICKeypointEvaluator, aic_keypoint_ap, aic_oks, aic_pckh
from semipose.evaluation.coco import STATS_NAMES, COCOKeypointEvaluator, rescore
from semipose.evaluation.pckh import MPIIPCKhEvaluator, pckh_from_gt

__all__ = [
    "AICKeypointEvaluator",
    "COCOKeypointEvaluator",
    "MPIIPCKhEvaluator",
    "STATS_NAMES",
    "aic_keypoint_ap",
    "aic_oks",
    "aic_pckh",
    "pckh_from_gt",
    "rescore",
]
