# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Greedy box NMS in Cython (the same result as ``semipose.nms.nms.nms``).

Ported from the original's lib/nms/cpu_nms.pyx (MIT), rewritten with typed memoryviews so that it
builds with Cython 3 and NumPy 2 (no deprecated NumPy C API).
"""
import numpy as np


def cpu_nms(dets, float thresh):
    """Greedy box NMS (Faster R-CNN convention: +1 in widths and heights, suppress IoU >= ``thresh``).

    Args:
        dets: (M, >=5) boxes ``x1, y1, x2, y2, score``; computed in float32.
        thresh: IoU threshold.

    Returns:
        List of kept indices (Python ints), best first.
    """
    boxes = np.ascontiguousarray(np.asarray(dets)[:, :5], dtype=np.float32)
    cdef Py_ssize_t ndets = boxes.shape[0]
    if ndets == 0:
        return []
    cdef float[:, ::1] b = boxes
    cdef float[::1] areas = np.ascontiguousarray(
        (boxes[:, 2] - boxes[:, 0] + np.float32(1)) * (boxes[:, 3] - boxes[:, 1] + np.float32(1)),
        dtype=np.float32,
    )
    cdef Py_ssize_t[::1] order = np.ascontiguousarray(boxes[:, 4].argsort()[::-1], dtype=np.intp)
    cdef unsigned char[::1] suppressed = np.zeros(ndets, dtype=np.uint8)

    cdef Py_ssize_t _i, _j, i, j
    cdef float ix1, iy1, ix2, iy2, iarea, xx1, yy1, xx2, yy2, w, h, inter, ovr
    keep = []
    for _i in range(ndets):
        i = order[_i]
        if suppressed[i]:
            continue
        keep.append(i)
        ix1 = b[i, 0]
        iy1 = b[i, 1]
        ix2 = b[i, 2]
        iy2 = b[i, 3]
        iarea = areas[i]
        for _j in range(_i + 1, ndets):
            j = order[_j]
            if suppressed[j]:
                continue
            xx1 = max(ix1, b[j, 0])
            yy1 = max(iy1, b[j, 1])
            xx2 = min(ix2, b[j, 2])
            yy2 = min(iy2, b[j, 3])
            w = max(<float>0.0, xx2 - xx1 + <float>1.0)
            h = max(<float>0.0, yy2 - yy1 + <float>1.0)
            inter = w * h
            ovr = inter / (iarea + areas[j] - inter)
            if ovr >= thresh:
                suppressed[j] = 1
    return keep
