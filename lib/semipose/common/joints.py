"""Joint tables: the 24-joint union layout, each dataset's native order, mappings, flip pairs and
OKS sigmas.

The tables are read from the built-in metainfo files (``semipose/dataset/metainfo/*.yaml``, see
``semipose.common.metainfo``); facts from the original's
lib/dataset/{JointsDataset,coco,mpii,ai_challenger}.py (MIT). Data only (numpy), so every layer may
read them; ``semipose.dataset.joints`` re-exports this module.
"""
import numpy as np

from semipose.common.metainfo import builtin_metainfo

__all__ = [
    "UNION_JOINTS", "NUM_UNION_JOINTS", "UPPER_BODY_IDS", "LOWER_BODY_IDS", "FLIP_PAIRS",
    "COCO_JOINTS", "MPII_JOINTS", "AIC_JOINTS", "COCO_SIGMAS", "AIC_SIGMAS",
    "get_mapping", "get_su", "do_mapping", "trained_joints",
    "COCO_U2A", "MPII_U2A", "AIC_U2A", "COCO_SU", "MPII_SU", "AIC_SU",
    "COCO_TRAINED", "MPII_TRAINED", "AIC_TRAINED",
]  # fmt: skip

_UNION = builtin_metainfo("union")
_COCO = builtin_metainfo("coco")
_MPII = builtin_metainfo("mpii")
_AIC = builtin_metainfo("ai_challenger")

#: The union joint order shared by every dataset (index -> name).
UNION_JOINTS = _UNION.joints
NUM_UNION_JOINTS = _UNION.num_joints

UPPER_BODY_IDS = _UNION.upper_body_ids
LOWER_BODY_IDS = _UNION.lower_body_ids

#: Horizontal flip pairs in the union layout (hips, knees, ankles, shoulders, elbows, wrists, eyes,
#: ears).
FLIP_PAIRS = [list(p) for p in _UNION.flip_pairs]

#: Native joint orders (native index -> name, names from the union table).
COCO_JOINTS = _COCO.joints
MPII_JOINTS = _MPII.joints
AIC_JOINTS = _AIC.joints

#: COCO OKS sigmas (17 joints, native order).
COCO_SIGMAS = _COCO.sigmas
#: AI Challenger OKS deltas of the official metric (14 joints, native order), already doubled.
AIC_SIGMAS = _AIC.sigmas


def get_mapping(actual_joints):
    """Union index -> native index, or ``'*'`` when the dataset lacks that joint.

    This is the original's u2a.
    """
    name_to_native = {name: idx for idx, name in actual_joints.items()}
    return {u: name_to_native.get(name, "*") for u, name in UNION_JOINTS.items()}


def get_su(actual_joints):
    """Union channels to take, in native order.

    ``preds[:, su]`` turns (N, 24, 3) into (N, J_native, 3).
    """
    a2u = {a: u for u, a in get_mapping(actual_joints).items() if a != "*"}
    return [a2u[a] for a in sorted(a2u)]


def do_mapping(joints, joints_vis, u2a_mapping):
    """Rewrites native (J, 3) joints and visibilities into 24 union rows (missing rows are zero).

    Args:
        joints: (J, 3) native joints.
        joints_vis: (J, 3) native visibilities.
        u2a_mapping: from ``get_mapping``.

    Returns:
        ``(joints, joints_vis)``, each (24, 3) float.
    """
    out = np.zeros((NUM_UNION_JOINTS, 3), dtype=np.float64)
    out_vis = np.zeros((NUM_UNION_JOINTS, 3), dtype=np.float64)
    for u, a in u2a_mapping.items():
        if a != "*":
            out[u] = joints[a]
            out_vis[u] = joints_vis[a]
    return out, out_vis


def trained_joints(actual_joints):
    """Sorted union indices that a dataset with these native joints fills.

    This is the ``ai_joint_ind`` of the mixes.
    """
    return sorted(u for u, a in get_mapping(actual_joints).items() if a != "*")


COCO_U2A = get_mapping(COCO_JOINTS)
MPII_U2A = get_mapping(MPII_JOINTS)
AIC_U2A = get_mapping(AIC_JOINTS)
COCO_SU = get_su(COCO_JOINTS)
MPII_SU = get_su(MPII_JOINTS)
AIC_SU = get_su(AIC_JOINTS)
COCO_TRAINED = trained_joints(COCO_JOINTS)
MPII_TRAINED = trained_joints(MPII_JOINTS)
AIC_TRAINED = trained_joints(AIC_JOINTS)
