"""Keypoint layouts of drawing and inference: which output channels hold a keypoint set, in what
order, and how its skeleton is drawn, made from the set's metainfo
(``semipose.common.metainfo``)."""
from dataclasses import dataclass

import numpy as np

from semipose.common.joints import get_su
from semipose.common.metainfo import builtin_metainfo

__all__ = ["KeypointLayout", "LAYOUTS", "layout_for_dataset", "layout_from_metainfo"]


@dataclass(frozen=True)
class KeypointLayout:
    """A keypoint set inside the network's output channels.

    Attributes:
        name: the set's name (``'coco'``, ``'mpii'``, ``'ai_challenger'`` or a metainfo's name).
        joint_names: J native joint names, in native order.
        union_index: J output channels, so that ``output[:, union_index]`` is (N, J, 3) native
            (the union channels of a built-in set; ``0..J-1`` for a set trained natively).
        skeleton: limbs as pairs of native joint indices.
        limb_colors: one BGR colour per limb.
        joint_colors: one BGR colour per joint.
        sigmas: (J,) OKS sigmas used by the OKS-NMS, or None when the set has none (MPII).
        flip_pairs: output-channel pairs swapped by the flip test (None: the union layout's).
    """

    name: str
    joint_names: tuple
    union_index: tuple
    skeleton: tuple
    limb_colors: tuple
    joint_colors: tuple
    sigmas: object = None
    flip_pairs: tuple = None

    @property
    def num_joints(self):
        return len(self.union_index)

    def select(self, union_keypoints):
        """(..., C, K) channel keypoints -> (..., J, K) native ones."""
        return np.asarray(union_keypoints)[..., list(self.union_index), :]


def layout_from_metainfo(metainfo, union_index=None):
    """The layout of a ``Metainfo``.

    Args:
        metainfo: the keypoint set.
        union_index: the output channel of each native joint (the union channels of a built-in
            set); None: the set is trained natively (channel j is joint j, the metainfo's flip
            pairs).

    Returns:
        ``KeypointLayout``.
    """
    native = union_index is None
    return KeypointLayout(
        name=metainfo.name,
        joint_names=tuple(metainfo.keypoints),
        union_index=tuple(range(metainfo.num_joints)) if native else tuple(int(i) for i in
                                                                             union_index),
        skeleton=tuple(metainfo.skeleton),
        limb_colors=tuple(metainfo.limb_colors),
        joint_colors=tuple(metainfo.joint_colors),
        sigmas=metainfo.sigmas,
        flip_pairs=tuple(metainfo.flip_pairs) if native else None,
    )


def _builtin(name):
    meta = builtin_metainfo(name)
    return layout_from_metainfo(meta, get_su(meta.joints))


#: Built-in layout name -> KeypointLayout (in the 24-channel union output).
LAYOUTS = {name: _builtin(name) for name in ("coco", "mpii", "ai_challenger")}


def layout_for_dataset(name):
    """The built-in layout ``name`` (``coco``, ``mpii``, ``ai_challenger``); a dataset's layout,
    custom sets included, is ``semipose.dataset.build.dataset_layout(cfg)``.

    Raises:
        KeyError: naming the built-in layouts when ``name`` is not one.
    """
    if name not in LAYOUTS:
        raise KeyError(f"no built-in keypoint layout {name!r}; known: {sorted(LAYOUTS)} (a "
                       "dataset's layout: semipose.dataset.build.dataset_layout(cfg))")
    return LAYOUTS[name]
