"""The collapse monitor: how many unlabeled samples have teacher heatmaps that fell to background.

The paper's "collapsing problem": consistency training can drift towards predicting background
everywhere. Each epoch we log, per network, the share of unlabeled samples whose teacher (easy-view)
heatmaps have a maximum below a threshold on every trained joint, and the mean maximum response.
"""
import torch
import torch.distributed as dist

from semipose.codecs import MSRAHeatmap
from semipose.utils.comm import is_dist


class CollapseMonitor:
    """Accumulates collapse statistics on the device; one host sync per ``summary()``.

    Args:
        threshold: a joint counts as background when its heatmap maximum is below this.
    """

    def __init__(self, threshold=0.1):
        self.threshold = float(threshold)
        self.reset()

    def reset(self):
        self._sums = {}
        self._counts = {}

    @torch.no_grad()
    def update(self, teachers, unsup_weight):
        """Adds one batch.

        Args:
            teachers: ``{net label: (N, K, H, W) teacher heatmap}`` (``Method.teacher_heatmaps``).
            unsup_weight: (N, K, 1) unlabeled target weights (> 0 on the trained joints).
        """
        trained = unsup_weight.reshape(unsup_weight.shape[0], -1) > 0  # (N, K)
        n_trained = trained.sum(1).clamp(min=1)
        for label, heat in teachers.items():
            heat = heat.detach().float()
            peak = MSRAHeatmap.peak_values(heat)  # (N, K)
            below = (peak < self.threshold) | ~trained
            collapsed = below.all(1).float().sum()
            mean_max = ((peak * trained).sum(1) / n_trained).sum()
            stats = torch.stack([collapsed, mean_max])
            if label in self._sums:
                self._sums[label] += stats
                self._counts[label] += heat.shape[0]
            else:
                self._sums[label] = stats
                self._counts[label] = heat.shape[0]

    def summary(self):
        """Returns and resets ``{net: {'collapsed': share in [0, 1], 'mean_max': mean peak}}``.

        The statistics are gathered over all ranks.
        """
        out = {}
        for label, stats in self._sums.items():
            stats = torch.cat([stats, stats.new_tensor([float(self._counts[label])])])
            if is_dist():
                dist.all_reduce(stats)
            collapsed, mean_max, count = stats.tolist()
            count = max(count, 1.0)
            out[label] = {"collapsed": collapsed / count, "mean_max": mean_max / count}
        self.reset()
        return out
