"""PCK: the share of labeled joints predicted within a fraction of the person box's size."""

import numpy as np

__all__ = ["pck_scores"]


def pck_scores(preds, gts, visible, sizes, threshold=0.2):
    """Per-joint and mean PCK.

    Args:
        preds: (N, J, 2) predicted x, y.
        gts: (N, J, 2) ground-truth x, y.
        visible: (N, J) > 0 where the joint is labeled.
        sizes: (N,) normaliser per person (e.g. the box's longer side), > 0.
        threshold: a joint is correct when its error is <= ``threshold * size``.

    Returns:
        ``(per_joint (J,), mean)``: shares in [0, 1]; a joint never labeled scores 0 and does not
        enter the mean, which is over every labeled joint of every person.
    """
    preds = np.asarray(preds, dtype=np.float64)[..., :2]
    gts = np.asarray(gts, dtype=np.float64)[..., :2]
    labeled = np.asarray(visible) > 0
    norm = np.maximum(np.asarray(sizes, dtype=np.float64), 1e-6)[:, None]
    correct = (np.linalg.norm(preds - gts, axis=-1) <= threshold * norm) & labeled
    counts = labeled.sum(axis=0)
    per_joint = np.where(counts > 0, correct.sum(axis=0) / np.maximum(counts, 1), 0.0)
    mean = float(correct.sum() / labeled.sum()) if labeled.any() else 0.0
    return per_joint, mean
