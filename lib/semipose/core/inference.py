"""Heatmap decoding: argmax, quarter-offset ('shift') and DARK refinement, and the map back to the image.

Ported from the original's lib/core/inference.py (MIT). Names and argument order are the original's; where
the original read the config, ``get_final_preds`` takes explicit keyword arguments.
"""
import numpy as np
import torch


def get_max_preds(batch_heatmaps):
    """Argmax of each heatmap.

    Args:
        batch_heatmaps: (N, K, H, W) numpy array.

    Returns:
        ``(preds, maxvals)``: (N, K, 2) float32 (x, y) and (N, K, 1) maxima. Coordinates are zeroed where
        the maximum is <= 0 (as the original).
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


def get_max_preds_tensor(batch_heatmaps):
    """Argmax of each heatmap on any device, without the maxval masking.

    Args:
        batch_heatmaps: (N, K, H, W) tensor.

    Returns:
        ``(preds, maxvals)``: (N, K, 2) float (x, y) and (N, K, 1), on the input's device.
    """
    n, k, _, w = batch_heatmaps.shape
    maxvals, idx = batch_heatmaps.reshape(n, k, -1).max(dim=2, keepdim=True)
    preds = torch.cat([idx % w, torch.div(idx, w, rounding_mode="floor")], dim=2).float()
    return preds, maxvals
