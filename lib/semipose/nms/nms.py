"""OKS-based pose NMS (greedy and soft) and the pure-numpy box NMS.

Ported from the original's lib/nms/nms.py (MIT). Differences: ``in_vis_thre`` keeps the joints
visible in *both* poses (the original combined the two masks with Python ``and``, which kept only
the second); ``soft_oks_nms`` does not exist in the original and follows the HRNet-lineage soft
variant.
"""
import numpy as np

from semipose.common.joints import COCO_SIGMAS

__all__ = ["oks_iou", "oks_nms", "soft_oks_nms", "nms"]


def oks_iou(g, d, a_g, a_d, sigmas=None, in_vis_thre=None):
    """Object keypoint similarity between one pose and several others.

    Per joint ``e = (dx^2 + dy^2) / (2 sigma)^2 / ((a_g + a_d) / 2 + eps) / 2``; OKS is the mean
    of ``exp(-e)``.

    Args:
        g: (3J,) flattened (x, y, v) of the reference pose.
        d: (M, 3J) flattened candidate poses.
        a_g: area of the reference pose.
        a_d: (M,) areas of the candidates.
        sigmas: (J,) per-joint sigmas (default: the 17 COCO sigmas).
        in_vis_thre: if set, only joints whose score is above it in both poses count.

    Returns:
        (M,) float64 OKS values (0 where no joint counts).
    """
    if sigmas is None:
        sigmas = COCO_SIGMAS
    sigmas = np.asarray(sigmas, dtype=np.float64)
    variances = (sigmas * 2) ** 2
    g = np.asarray(g, dtype=np.float64).reshape(-1)
    d = np.asarray(d, dtype=np.float64).reshape(-1, g.shape[0])
    a_d = np.asarray(a_d, dtype=np.float64).reshape(-1)
    xg, yg, vg = g[0::3], g[1::3], g[2::3]
    xd, yd, vd = d[:, 0::3], d[:, 1::3], d[:, 2::3]
    e = ((xd - xg) ** 2 + (yd - yg) ** 2) / variances
    e = e / ((a_g + a_d[:, None]) / 2 + np.spacing(1)) / 2
    if in_vis_thre is None:
        mask = np.ones_like(e, dtype=bool)
    else:
        mask = (vg > in_vis_thre)[None, :] & (vd > in_vis_thre)
    counts = mask.sum(axis=1)
    sums = np.where(mask, np.exp(-e), 0.0).sum(axis=1)
    return np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)


def _unpack(kpts_db):
    scores = np.array([rec["score"] for rec in kpts_db], dtype=np.float64)
    kpts = np.array([np.asarray(rec["keypoints"]).flatten() for rec in kpts_db], dtype=np.float64)
    areas = np.array([rec["area"] for rec in kpts_db], dtype=np.float64)
    return scores, kpts, areas


def oks_nms(kpts_db, thresh, sigmas=None, in_vis_thre=None):
    """Greedy OKS-NMS: keep the best-scoring pose, drop others whose OKS with it is > ``thresh``.

    Args:
        kpts_db: list of dicts with ``score``, ``keypoints`` ((J, 3) or flat) and ``area``.
        thresh: OKS threshold (``TEST.OKS_THRE``).
        sigmas: per-joint sigmas (default COCO 17).
        in_vis_thre: see ``oks_iou``.

    Returns:
        List of kept indices into ``kpts_db``, best first.
    """
    if len(kpts_db) == 0:
        return []
    scores, kpts, areas = _unpack(kpts_db)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        ovr = oks_iou(kpts[i], kpts[order[1:]], areas[i], areas[order[1:]], sigmas, in_vis_thre)
        order = order[np.where(ovr <= thresh)[0] + 1]
    return keep


def soft_oks_nms(kpts_db, thresh, sigmas=None, in_vis_thre=None, *, method="linear", max_dets=20):
    """Soft OKS-NMS: instead of dropping overlapping poses, lower their scores and re-rank.

    Repeatedly take the best remaining pose, then rescore the rest by its OKS ``o`` with them:
    'linear' multiplies by ``1 - o`` where ``o > thresh`` (and leaves the others); 'gaussian'
    multiplies every score by ``exp(-o^2 / thresh)`` (HRNet's default). At most ``max_dets`` poses
    are kept. Only the kept indices are returned (the lowered scores are discarded, as in HRNet).

    Args:
        kpts_db: list of dicts with ``score``, ``keypoints`` and ``area``.
        thresh: OKS threshold (linear) or the Gaussian's width (gaussian).
        sigmas: per-joint sigmas (default COCO 17).
        in_vis_thre: see ``oks_iou``.
        method: 'linear' or 'gaussian'.
        max_dets: maximum number of kept poses.

    Returns:
        List of kept indices into ``kpts_db``, in the order they were selected.
    """
    if method not in ("linear", "gaussian"):
        raise ValueError(f"soft_oks_nms: method must be 'linear' or 'gaussian', got {method!r}")
    if len(kpts_db) == 0:
        return []
    scores, kpts, areas = _unpack(kpts_db)
    order = scores.argsort()[::-1]
    scores = scores[order]
    keep = []
    while order.size > 0 and len(keep) < max_dets:
        i = order[0]
        keep.append(int(i))
        ovr = oks_iou(kpts[i], kpts[order[1:]], areas[i], areas[order[1:]], sigmas, in_vis_thre)
        order, scores = order[1:], scores[1:]
        if method == "linear":
            scores = np.where(ovr > thresh, scores * (1.0 - ovr), scores)
        else:
            scores = scores * np.exp(-(ovr**2) / thresh)
        rank = scores.argsort()[::-1]
        order, scores = order[rank], scores[rank]
    return keep


def nms(dets, thresh):
    """Greedy box NMS (Faster R-CNN convention: +1 in box sides, suppress IoU >= ``thresh``).

    Args:
        dets: (M, >=5) boxes ``x1, y1, x2, y2, score``.
        thresh: IoU threshold.

    Returns:
        List of kept indices, best first.
    """
    dets = np.asarray(dets)
    if dets.shape[0] == 0:
        return []
    if not np.issubdtype(dets.dtype, np.floating):
        dets = dets.astype(np.float64)
    x1, y1, x2, y2, scores = (dets[:, c] for c in range(5))
    one = dets.dtype.type(1)
    areas = (x2 - x1 + one) * (y2 - y1 + one)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        w = np.maximum(0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + one)
        h = np.maximum(0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + one)
        inter = w * h
        ovr = inter / (areas[i] + areas[rest] - inter)
        order = rest[ovr < thresh]
    return keep
