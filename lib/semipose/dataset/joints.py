"""The joint tables, re-exported from ``semipose.common.joints`` (where they live, below every
layer) so that ``semipose.dataset.joints`` imports keep working."""

from semipose.common.joints import (  # noqa: F401
    AIC_JOINTS,
    AIC_SIGMAS,
    AIC_SU,
    AIC_TRAINED,
    AIC_U2A,
    COCO_JOINTS,
    COCO_SIGMAS,
    COCO_SU,
    COCO_TRAINED,
    COCO_U2A,
    FLIP_PAIRS,
    LOWER_BODY_IDS,
    MPII_JOINTS,
    MPII_SU,
    MPII_TRAINED,
    MPII_U2A,
    NUM_UNION_JOINTS,
    UNION_JOINTS,
    UPPER_BODY_IDS,
    do_mapping,
    get_mapping,
    get_su,
    trained_joints,
)
