"""Joint tables: the 24-joint union layout, each dataset's native order, mappings, flip pairs and
OKS sigmas.

Facts from the original's lib/dataset/{JointsDataset,coco,mpii,ai_challenger}.py (MIT). Data only
(numpy), so every layer may read them; ``semipose.dataset.joints`` re-exports this module.
"""
import numpy as np

__all__ = [
    "UNION_JOINTS", "NUM_UNION_JOINTS", "UPPER_BODY_IDS", "LOWER_BODY_IDS", "FLIP_PAIRS",
    "COCO_JOINTS", "MPII_JOINTS", "AIC_JOINTS", "COCO_SIGMAS", "AIC_SIGMAS",
    "get_mapping", "get_su", "do_mapping", "trained_joints",
    "COCO_U2A", "MPII_U2A", "AIC_U2A", "COCO_SU", "MPII_SU", "AIC_SU",
    "COCO_TRAINED", "MPII_TRAINED", "AIC_TRAINED",
]  # fmt: skip

#: The union joint order shared by every dataset (index -> name).
UNION_JOINTS = {
    0: "root", 1: "rhip", 2: "rkne", 3: "rank", 4: "lhip", 5: "lkne", 6: "lank", 7: "belly",
    8: "thorax", 9: "neck", 10: "upper neck", 11: "nose", 12: "head", 13: "head top",
    14: "lsho", 15: "lelb", 16: "lwri", 17: "rsho", 18: "relb", 19: "rwri",
    20: "reye", 21: "leye", 22: "rear", 23: "lear",
}  # fmt: skip
NUM_UNION_JOINTS = 24

UPPER_BODY_IDS = tuple(range(7, 24))
LOWER_BODY_IDS = tuple(range(0, 7))

#: Horizontal flip pairs in the union layout (hips, knees, ankles, shoulders, elbows, wrists, eyes,
#: ears).
FLIP_PAIRS = [[1, 4], [2, 5], [3, 6], [14, 17], [15, 18], [16, 19], [20, 21], [22, 23]]

#: Native joint orders (native index -> name, names from the union table).
COCO_JOINTS = {
    0: "nose", 1: "leye", 2: "reye", 3: "lear", 4: "rear", 5: "lsho", 6: "rsho", 7: "lelb",
    8: "relb", 9: "lwri", 10: "rwri", 11: "lhip", 12: "rhip", 13: "lkne", 14: "rkne",
    15: "lank", 16: "rank",
}  # fmt: skip
MPII_JOINTS = {
    0: "rank", 1: "rkne", 2: "rhip", 3: "lhip", 4: "lkne", 5: "lank", 6: "root", 7: "thorax",
    8: "upper neck", 9: "head top", 10: "rwri", 11: "relb", 12: "rsho", 13: "lsho", 14: "lelb",
    15: "lwri",
}  # fmt: skip
AIC_JOINTS = {
    0: "rsho", 1: "relb", 2: "rwri", 3: "lsho", 4: "lelb", 5: "lwri", 6: "rhip", 7: "rkne",
    8: "rank", 9: "lhip", 10: "lkne", 11: "lank", 12: "head top", 13: "neck",
}  # fmt: skip

#: COCO OKS sigmas (17 joints, native order).
COCO_SIGMAS = np.array(
    [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87,
     0.89, 0.89]
) / 10.0  # fmt: skip
#: AI Challenger OKS deltas of the official metric (14 joints, native order), already doubled.
AIC_SIGMAS = 2.0 * np.array(
    [0.01388152, 0.01515228, 0.01057665, 0.01417709, 0.01497891, 0.01402144, 0.03909642,
     0.03686941, 0.01981803, 0.03843971, 0.03412318, 0.02415081, 0.01291456, 0.01236173]
)  # fmt: skip


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
