"""Heatmap argmax (numpy), below every layer so that drawing code and decoding code share it.

The heatmap codec (``semipose.codecs.MSRAHeatmap.argmax``) decodes with it; ``semipose.codecs``
re-exports it.
"""

import numpy as np

__all__ = ["get_max_preds"]


def get_max_preds(batch_heatmaps):
    """Argmax of each heatmap.

    Args:
        batch_heatmaps: (N, K, H, W) numpy array.

    Returns:
        ``(preds, maxvals)``: (N, K, 2) float32 (x, y) and (N, K, 1) maxima. Coordinates are
        zeroed where the maximum is <= 0 (as the original).
    """
    if not isinstance(batch_heatmaps, np.ndarray) or batch_heatmaps.ndim != 4:
        raise ValueError("get_max_preds expects a (N, K, H, W) numpy array")
    n, k, _, w = batch_heatmaps.shape
    flat = batch_heatmaps.reshape((n, k, -1))
    idx = np.argmax(flat, axis=2).reshape((n, k, 1))
    maxvals = np.amax(flat, axis=2).reshape((n, k, 1))
    preds = np.concatenate([idx % w, idx // w], axis=2).astype(np.float32)
    preds *= (maxvals > 0.0).astype(np.float32)
    return preds, maxvals
