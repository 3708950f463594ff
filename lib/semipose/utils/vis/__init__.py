"""Visualisation: every drawing of the package, driven by a keypoint set's metainfo.

* ``layouts``: ``KeypointLayout`` (which output channels hold a set's keypoints, its skeleton and
  colours), made from a metainfo file (``layout_from_metainfo``); ``LAYOUTS`` holds the built-in
  ones. A dataset's layout is ``semipose.dataset.build.dataset_layout(cfg)``.
* ``draw``: limbs, joints, boxes and scores on a BGR image (``draw_pose``, ``draw_poses``).
* ``predictions``: ``draw_predictions`` (one image) and ``save_drawn_predictions``
  (``valid.py --vis``, ``train.py --vis``).
* ``debug``: the training debug images (batches with joints, heatmap grids).
"""
from semipose.utils.vis.debug import (
    save_batch_heatmaps,
    save_batch_image_with_joints,
    save_debug_images,
)
from semipose.utils.vis.draw import (
    AIC_SKELETON,
    COCO_JOINT_COLORS,
    COCO_LIMB_COLORS,
    COCO_SKELETON,
    MPII_SKELETON,
    draw_pose,
    draw_poses,
    side_colors,
)
from semipose.utils.vis.layouts import (
    LAYOUTS,
    KeypointLayout,
    layout_for_dataset,
    layout_from_metainfo,
)
from semipose.utils.vis.predictions import (
    draw_predictions,
    save_drawn_predictions,
    unique_output_path,
)

__all__ = [
    "AIC_SKELETON",
    "COCO_JOINT_COLORS",
    "COCO_LIMB_COLORS",
    "COCO_SKELETON",
    "KeypointLayout",
    "LAYOUTS",
    "MPII_SKELETON",
    "draw_pose",
    "draw_poses",
    "draw_predictions",
    "layout_for_dataset",
    "layout_from_metainfo",
    "save_batch_heatmaps",
    "save_batch_image_with_joints",
    "save_debug_images",
    "save_drawn_predictions",
    "side_colors",
    "unique_output_path",
]
