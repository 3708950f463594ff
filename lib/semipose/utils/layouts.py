"""Keypoint layouts of the inference API: which union channels a dataset reads, in what order, and
how its skeleton is drawn."""
from dataclasses import dataclass

import numpy as np

from semipose.common.joints import (
    AIC_JOINTS,
    AIC_SIGMAS,
    AIC_SU,
    COCO_JOINTS,
    COCO_SIGMAS,
    COCO_SU,
    MPII_JOINTS,
    MPII_SU,
)
from semipose.utils.draw import (
    AIC_SKELETON,
    COCO_JOINT_COLORS,
    COCO_LIMB_COLORS,
    COCO_SKELETON,
    MPII_SKELETON,
    side_colors,
)

__all__ = ["KeypointLayout", "LAYOUTS", "layout_for_dataset"]


@dataclass(frozen=True)
class KeypointLayout:
    """A dataset's native keypoints inside the 24-channel union output.

    Attributes:
        name: ``'coco'``, ``'mpii'`` or ``'ai_challenger'``.
        joint_names: J native joint names, in native order.
        union_index: J union channels, so that ``union[:, union_index]`` is (N, J, 3) native.
        skeleton: limbs as pairs of native joint indices.
        limb_colors: one BGR colour per limb.
        joint_colors: one BGR colour per joint.
        sigmas: (J,) OKS sigmas used by the OKS-NMS, or None when the dataset has none (MPII).
    """

    name: str
    joint_names: tuple
    union_index: tuple
    skeleton: tuple
    limb_colors: tuple
    joint_colors: tuple
    sigmas: object = None

    @property
    def num_joints(self):
        return len(self.union_index)

    def select(self, union_keypoints):
        """(..., 24, C) union keypoints -> (..., J, C) native ones."""
        return np.asarray(union_keypoints)[..., list(self.union_index), :]


def _make(name, joints, su, skeleton, sigmas, colors=None):
    names = tuple(joints[i] for i in sorted(joints))
    if colors is None:
        joint_colors, limb_colors = side_colors(names, skeleton)
    else:
        joint_colors, limb_colors = colors
    return KeypointLayout(
        name=name,
        joint_names=names,
        union_index=tuple(int(i) for i in su),
        skeleton=tuple(skeleton),
        limb_colors=tuple(limb_colors),
        joint_colors=tuple(joint_colors),
        sigmas=None if sigmas is None else np.asarray(sigmas, dtype=np.float64),
    )


#: Layout name -> KeypointLayout.
LAYOUTS = {
    "coco": _make(
        "coco", COCO_JOINTS, COCO_SU, COCO_SKELETON, COCO_SIGMAS,
        colors=(COCO_JOINT_COLORS, COCO_LIMB_COLORS),
    ),
    "mpii": _make("mpii", MPII_JOINTS, MPII_SU, MPII_SKELETON, None),
    "ai_challenger": _make("ai_challenger", AIC_JOINTS, AIC_SU, AIC_SKELETON, AIC_SIGMAS),
}

# DATASET.TEST_DATASET / TRAIN_DATASET -> layout name.
_DATASET_LAYOUT = {
    "coco": "coco",
    "mix_coco_coco": "coco",
    "mpii": "mpii",
    "mix_mpii_ai": "mpii",
    "ai_challenger": "ai_challenger",
}


def layout_for_dataset(name):
    """The layout of a dataset name (``DATASET.TEST_DATASET``); unknown names raise KeyError."""
    if name in LAYOUTS:
        return LAYOUTS[name]
    if name not in _DATASET_LAYOUT:
        raise KeyError(f"no keypoint layout for dataset {name!r}; known: {sorted(_DATASET_LAYOUT)}")
    return LAYOUTS[_DATASET_LAYOUT[name]]
