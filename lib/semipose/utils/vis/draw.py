"""Drawing poses on BGR images: limbs, joints, boxes and scores.

The skeletons and colours come from the sets' metainfo files (``semipose.common.metainfo``), in
each set's native joint order (0-based). Colours are BGR tuples:
left-side limbs are blue, right-side limbs orange, the head and the torso centre green and purple,
so that a mirrored prediction is visible at a glance.
"""
import cv2
import numpy as np

from semipose.common.metainfo import builtin_metainfo, side_colors

__all__ = [
    "COCO_SKELETON",
    "COCO_LIMB_COLORS",
    "COCO_JOINT_COLORS",
    "MPII_SKELETON",
    "AIC_SKELETON",
    "side_colors",
    "draw_pose",
    "draw_poses",
]

_COCO = builtin_metainfo("coco")

#: COCO limbs (native 17-joint order: nose, leye, reye, lear, rear, lsho, rsho, lelb, relb, lwri,
#: rwri, lhip, rhip, lkne, rkne, lank, rank), from the COCO metainfo file.
COCO_SKELETON = _COCO.skeleton

#: One BGR colour per limb of ``COCO_SKELETON``; the left arm and leg get lighter blues towards
#: the hand and foot, the right ones lighter oranges, so each segment is told apart.
COCO_LIMB_COLORS = _COCO.limb_colors

#: One BGR colour per COCO joint (head green, left blue, right orange).
COCO_JOINT_COLORS = _COCO.joint_colors

#: MPII limbs (native 16-joint order: rank, rkne, rhip, lhip, lkne, lank, pelvis, thorax, upper
#: neck, head top, rwri, relb, rsho, lsho, lelb, lwri).
MPII_SKELETON = builtin_metainfo("mpii").skeleton

#: AI Challenger limbs (native 14-joint order: rsho, relb, rwri, lsho, lelb, lwri, rhip, rkne,
#: rank, lhip, lkne, lank, head top, neck).
AIC_SKELETON = builtin_metainfo("ai_challenger").skeleton


def _line_width(image):
    return max(2, int(round(min(image.shape[:2]) / 160)))


def draw_pose(
    image,
    keypoints,
    skeleton=COCO_SKELETON,
    *,
    limb_colors=COCO_LIMB_COLORS,
    joint_colors=COCO_JOINT_COLORS,
    kpt_thr=0.3,
    bbox=None,
    score=None,
    box_color=(0, 255, 0),
    thickness=None,
    radius=None,
):
    """Draws one person in place: limbs, then joints, then the box and the score.

    A limb is drawn only when both its joints score above ``kpt_thr``; a joint only when it does.

    Args:
        image: (H, W, 3) uint8 BGR image, modified in place.
        keypoints: (J, 3) x, y, score in image pixels (or (J, 2): every joint drawn).
        skeleton: pairs of joint indices.
        limb_colors: one BGR colour per limb (cycled when shorter).
        joint_colors: one BGR colour per joint (cycled when shorter).
        kpt_thr: joint score threshold.
        bbox: optional (x, y, w, h) person box.
        score: optional person score written above the box (or above the top joint).
        box_color: BGR colour of the box.
        thickness: limb width in pixels (default: from the image size).
        radius: joint radius in pixels (default: from the image size).

    Returns:
        ``image``.
    """
    kpts = np.asarray(keypoints, dtype=np.float64)
    if kpts.ndim != 2 or kpts.shape[1] < 2:
        raise ValueError(f"keypoints must be (J, 2) or (J, 3), got shape {kpts.shape}")
    width = thickness or _line_width(image)
    rad = radius or width + 1
    visible = np.isfinite(kpts[:, :2]).all(axis=1)
    if kpts.shape[1] >= 3:
        visible &= kpts[:, 2] > kpt_thr
    points = [(int(round(x)), int(round(y))) for x, y in np.nan_to_num(kpts[:, :2])]
    _draw_limbs_and_joints(image, points, visible, skeleton, (limb_colors, joint_colors),
                           width, rad)
    anchor = None
    if bbox is not None:
        x, y, w, h = (float(v) for v in np.asarray(bbox).reshape(-1)[:4])
        p0 = (int(round(x)), int(round(y)))
        p1 = (int(round(x + w)), int(round(y + h)))
        cv2.rectangle(image, p0, p1, box_color, max(1, width // 2), cv2.LINE_AA)
        anchor = p0
    elif visible.any():
        ys = kpts[visible, 1]
        xs = kpts[visible, 0]
        anchor = (int(xs.min()), int(ys.min()))
    if score is not None and anchor is not None:
        _draw_score(image, score, anchor, box_color)
    return image


def _draw_limbs_and_joints(image, points, visible, skeleton, colors, width, rad):
    """Draws the limbs whose two joints are visible, then the visible joints."""
    limb_colors, joint_colors = colors
    for i, (a, b) in enumerate(skeleton):
        if a < len(points) and b < len(points) and visible[a] and visible[b]:
            color = limb_colors[i % len(limb_colors)]
            cv2.line(image, points[a], points[b], color, width, cv2.LINE_AA)
    for j, point in enumerate(points):
        if visible[j]:
            cv2.circle(image, point, rad, joint_colors[j % len(joint_colors)], -1, cv2.LINE_AA)
            cv2.circle(image, point, rad, (255, 255, 255), 1, cv2.LINE_AA)


def _draw_score(image, score, anchor, box_color):
    """Writes ``score`` on a filled label at ``anchor``, kept inside the image."""
    text = f"{float(score):.2f}"
    scale = max(0.35, min(image.shape[:2]) / 600)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x0 = min(max(anchor[0], 0), max(image.shape[1] - tw - 2, 0))
    y0 = min(max(anchor[1], th + base + 2), image.shape[0] - 1)
    cv2.rectangle(image, (x0, y0 - th - base - 2), (x0 + tw + 2, y0), box_color, -1)
    cv2.putText(
        image, text, (x0 + 1, y0 - base - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1,
        cv2.LINE_AA,
    )


def draw_poses(image, poses, skeleton=COCO_SKELETON, *, copy=True, draw_bbox=True, **kwargs):
    """Draws several people on a copy of ``image`` (or in place with ``copy=False``).

    Args:
        image: (H, W, 3) uint8 BGR image.
        poses: iterable of (J, 3) keypoint arrays, or of objects with ``keypoints`` and optionally
            ``bbox`` and ``score`` attributes (``semipose.apis.PersonPose``) or such dict keys.
        skeleton: pairs of joint indices.
        copy: draw on a copy (default) instead of ``image`` itself.
        draw_bbox: draw each person's box and score when they are given.
        **kwargs: passed to ``draw_pose`` (``kpt_thr``, ``limb_colors``, ``joint_colors``...).

    Returns:
        The drawn (H, W, 3) uint8 image.
    """
    out = image.copy() if copy else image
    for pose in poses:
        if isinstance(pose, dict):
            kpts, bbox, score = pose["keypoints"], pose.get("bbox"), pose.get("score")
        elif hasattr(pose, "keypoints"):
            kpts = pose.keypoints
            bbox, score = getattr(pose, "bbox", None), getattr(pose, "score", None)
        else:
            kpts, bbox, score = pose, None, None
        if not draw_bbox:
            bbox = score = None
        draw_pose(out, kpts, skeleton, bbox=bbox, score=score, **kwargs)
    return out
