"""Pose and box NMS: ``oks_iou``, ``oks_nms``, ``soft_oks_nms``, ``nms`` and the compiled
``cpu_nms``.

``cpu_nms`` is the Cython extension when it was built (``pip install -e .``); otherwise it falls
back to the numpy ``nms`` (same result) and warns once, on first use.
"""
import importlib
import warnings

import numpy as np

from semipose.nms.nms import nms, oks_iou, oks_nms, soft_oks_nms

__all__ = ["oks_iou", "oks_nms", "soft_oks_nms", "nms", "cpu_nms"]


def _load_cpu_nms():
    """Returns the compiled ``cpu_nms``, or a numpy fallback that warns on its first call."""
    try:
        return importlib.import_module("semipose.nms.cpu_nms").cpu_nms
    except ImportError as err:
        reason = str(err)

    warned = []

    def cpu_nms(dets, thresh):
        """Numpy fallback of the compiled box NMS (the extension is not built)."""
        if not warned:
            warned.append(True)
            warnings.warn(
                "semipose.nms.cpu_nms is not built (" + reason + "); using the numpy nms. "
                "Run `pip install -e .` to build it.",
                RuntimeWarning,
                stacklevel=2,
            )
        return nms(np.asarray(dets, dtype=np.float32), thresh)

    return cpu_nms


cpu_nms = _load_cpu_nms()
