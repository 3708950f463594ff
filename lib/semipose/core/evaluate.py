"""PCK-style training accuracy on heatmaps (the number logged as ``Accuracy`` while training).

Ported from the original's lib/core/evaluate.py (MIT). The inherited normaliser divides x by H/10
and y by W/10 (the original's swap); it is kept so that logged accuracies compare with the
original's.
"""
import numpy as np

from semipose.common.heatmaps import get_max_preds

__all__ = ["calc_dists", "dist_acc", "accuracy"]


def calc_dists(preds, target, normalize):
    """Normalised distances between predicted and target joints.

    Args:
        preds: (N, K, 2) predicted (x, y).
        target: (N, K, 2) target (x, y).
        normalize: (N, 2) per-sample divisor of (x, y).

    Returns:
        (K, N) float64 distances; -1 where the target is not valid (its x or y is <= 1).
    """
    preds = np.asarray(preds, dtype=np.float32)
    target = np.asarray(target, dtype=np.float32)
    normalize = np.asarray(normalize)[:, None, :]
    valid = (target[..., 0] > 1) & (target[..., 1] > 1)
    dists = np.linalg.norm(preds / normalize - target / normalize, axis=-1)
    return np.where(valid, dists, -1.0).astype(np.float64).T


def dist_acc(dists, thr=0.5):
    """Fraction of the valid (!= -1) distances below ``thr``; -1 when none is valid.

    Args:
        dists: (N,) distances of one joint.
        thr: threshold on the normalised distance.
    """
    dists = np.asarray(dists)
    valid = dists != -1
    num = int(valid.sum())
    if num == 0:
        return -1
    return float(np.less(dists[valid], thr).sum()) / num


def accuracy(output, target, hm_type="gaussian", thr=0.5):
    """Per-joint accuracy between the argmaxes of predicted and target heatmaps.

    The normaliser is ``[H, W] / 10`` per sample, applied to (x, y) (so x is divided by H/10: the
    original's swap, kept on purpose).

    Args:
        output: (N, K, H, W) predicted heatmaps (numpy).
        target: (N, K, H, W) target heatmaps (numpy).
        hm_type: only 'gaussian'.
        thr: threshold on the normalised distance.

    Returns:
        ``(acc, avg_acc, cnt, pred)``: acc (K + 1,) with the average at [0] and each joint's
        accuracy (-1 if it had no valid target) at [1:]; avg_acc the mean over joints with a valid
        entry (0 if none); cnt the number of such joints; pred (N, K, 2) the predicted argmaxes.

    Raises:
        ValueError: an unsupported ``hm_type``.
    """
    if hm_type != "gaussian":
        raise ValueError(f"accuracy: only hm_type='gaussian' is supported, got {hm_type!r}")
    num_joints = output.shape[1]
    pred, _ = get_max_preds(output)
    target_xy, _ = get_max_preds(target)
    h, w = output.shape[2], output.shape[3]
    norm = np.ones((pred.shape[0], 2)) * np.array([h, w]) / 10
    dists = calc_dists(pred, target_xy, norm)

    acc = np.zeros(num_joints + 1)
    avg_acc = 0.0
    cnt = 0
    for j in range(num_joints):
        acc[j + 1] = dist_acc(dists[j], thr)
        if acc[j + 1] >= 0:
            avg_acc += acc[j + 1]
            cnt += 1
    avg_acc = avg_acc / cnt if cnt != 0 else 0
    if cnt != 0:
        acc[0] = avg_acc
    return acc, avg_acc, cnt, pred
