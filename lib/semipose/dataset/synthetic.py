"""The embedded synthetic COCO-format person keypoint set (DESIGN.md §4).

Draws people procedurally and writes them in the exact COCO 2017 layout, so the real COCO code
path (loader, mixed labeled + unlabeled set, ``COCOeval`` keypoint evaluation) runs on a CPU with
no download::

    <root>/coco/annotations/person_keypoints_train2017.json
    <root>/coco/annotations/person_keypoints_val2017.json
    <root>/coco/images/train2017/%012d.jpg
    <root>/coco/images/val2017/%012d.jpg
    <root>/coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json
    <root>/coco/person_detection_results/COCO_train2017_detections_person_synthetic.json

How a person is made:

* **Skeleton.** A pseudo-3D articulated body (pelvis, torso with forward/side lean and twist, neck,
  head, upper/lower arms and legs, hands, feet) posed from joint angles drawn within anatomical
  limits, in one of several modes (standing, walking, crouching, sitting, bending over, action
  poses). The body is turned about the vertical axis (facing the camera, in profile, or seen from
  the back), projected orthographically, rotated in the image plane (mostly within ±30°, up to
  ±45°), scaled and placed. Limbs are thick outlined lines, the torso a filled polygon, the head a
  disc with hair, eyes, nose, mouth and ears; widths, proportions and colours vary per person.
* **Keypoints** are the 17 COCO joints in native order and are exactly the drawn joint centres
  (limb segment end points, the drawn eye, nose and ear blobs), to 1/16 px (the drawing uses
  fixed-point coordinates).
* **Left and right are learnable**, the way they are on real people: the face (eyes, nose, mouth)
  is drawn only on the side of the head that faces the camera and hair covers the back of the
  head; the shirt has a marking (collar V, stripe or emblem) on its front only and its back is
  drawn darker; feet point forward; limbs on the far side are drawn first (so near limbs overlap
  them) and darker. None of these cues is left/right asymmetric on the person, so horizontal flip
  augmentation stays consistent.
* **Visibility.** ``v=2`` when the joint's pixel shows one of the person's own parts adjacent to
  the joint; ``v=1`` (labeled, occluded) when it is covered by another person, by foreground
  clutter or by another part of the same person (e.g. the far shoulder behind the torso); face
  features turned away from the camera are ``v=1`` (partly turned) or ``v=0`` (facing away, as
  COCO leaves the face of a person seen from the back unlabeled); joints outside the image and a
  few randomly "unannotated" joints are ``v=0`` with ``x = y = 0``. About 1.5% of the persons have
  no labeled joint at all (COCO has such persons; the loader skips them).
* **Box, area and segmentation** come from the person's own drawn silhouette (all its parts,
  including those later covered by other people or clutter: an amodal mask), clipped to the
  image. ``bbox`` is the tight pixel box ``[x, y, w, h]`` of that mask; ``area`` is its pixel
  count (like COCO's segmentation area, which pycocotools uses as the OKS scale);
  ``segmentation`` holds its outer contours as COCO polygons.
* **Detections** (the ``TEST.COCO_BBOX_FILE`` format): each GT box jittered (centre ±5%, size
  ±8%), score in (0.5, 1] lower for occluded persons, a few poorly labeled persons missed, and
  about 0.3 low-score (< 0.45) false positives per image.

Every image comes from its own ``numpy.random.Generator`` seeded with ``(seed, split, index)``, so
the same seed gives byte-identical json and identical images, and a smaller set is a prefix of a
larger one. Train image ids are ``1..num_train``; val image ids are ``10**6 + 1 ..``; annotation
ids are ``image_id * 100 + k``.
"""
import argparse
import json
import logging
import math
import time
from pathlib import Path

import cv2
import numpy as np

from semipose.common.errors import DataFileError, UserError
from semipose.common.io import atomic_write_json

logger = logging.getLogger(__name__)

#: COCO keypoint names, native order.
KEYPOINT_NAMES = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
]  # fmt: skip
#: COCO person skeleton (1-based joint indices), as in the official category entry.
SKELETON = [
    [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
    [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7],
]  # fmt: skip
CATEGORIES = [
    {
        "id": 1,
        "name": "person",
        "supercategory": "person",
        "keypoints": KEYPOINT_NAMES,
        "skeleton": SKELETON,
    }
]

VAL_ID_OFFSET = 10**6
TRAIN_SET = "train2017"
VAL_SET = "val2017"
VAL_DET_FILE = "COCO_val2017_detections_AP_H_56_person.json"
TRAIN_DET_FILE = "COCO_train2017_detections_person_synthetic.json"

NUM_JOINTS = 17
(NOSE, LEYE, REYE, LEAR, REAR, LSHO, RSHO, LELB, RELB, LWRI, RWRI, LHIP, RHIP, LKNE, RKNE, LANK,
 RANK) = range(NUM_JOINTS)  # fmt: skip

# Extra drawn points, stored after the 17 joints in one (P, 3) array.
NECK, HEAD, LHAND, RHAND, LTOE, RTOE, MOUTH_L, MOUTH_R, COLLAR_L, COLLAR_R, CHEST, WAIST, EMBLEM = (
    range(17, 30)
)
TORSO0 = 30  # 8 torso box corners: 30..37
HAIR0 = 38  # hair sphere samples follow

# Part ids (label map = 1 + person_index * 20 + part id; 255 = foreground clutter).
(P_TORSO, P_NECK, P_HEAD, P_LUARM, P_RUARM, P_LFARM, P_RFARM, P_LHAND, P_RHAND, P_LTHIGH, P_RTHIGH,
 P_LSHIN, P_RSHIN, P_LFOOT, P_RFOOT, P_LEAR, P_REAR) = range(17)  # fmt: skip
PARTS_PER_PERSON = 20
CLUTTER_LABEL = 255
MAX_PEOPLE = 12

#: Parts whose pixels count as "this joint is seen" (v=2 when its pixel shows one of them).
JOINT_PARTS = {
    NOSE: (P_HEAD,), LEYE: (P_HEAD,), REYE: (P_HEAD,), LEAR: (P_HEAD, P_LEAR),
    REAR: (P_HEAD, P_REAR),
    LSHO: (P_TORSO, P_LUARM), RSHO: (P_TORSO, P_RUARM), LELB: (P_LUARM, P_LFARM),
    RELB: (P_RUARM, P_RFARM), LWRI: (P_LFARM, P_LHAND), RWRI: (P_RFARM, P_RHAND),
    LHIP: (P_TORSO, P_LTHIGH), RHIP: (P_TORSO, P_RTHIGH), LKNE: (P_LTHIGH, P_LSHIN),
    RKNE: (P_RTHIGH, P_RSHIN), LANK: (P_LSHIN, P_LFOOT), RANK: (P_RSHIN, P_RFOOT),
}  # fmt: skip

SHIFT = 4  # fixed-point bits for sub-pixel drawing
ONE = 1 << SHIFT

SKIN_TONES = np.array(
    [[200, 215, 245], [170, 195, 235], [140, 175, 225], [105, 140, 195], [75, 105, 160],
     [55, 75, 120], [40, 55, 90], [150, 170, 210]], dtype=np.float64
)  # fmt: skip  BGR
HAIR_TONES = np.array(
    [[20, 20, 25], [30, 45, 70], [40, 70, 110], [90, 150, 200], [150, 150, 150], [30, 60, 150],
     [60, 60, 60]], dtype=np.float64
)  # fmt: skip  BGR


def _fibonacci_sphere(n):
    """Unit vectors spread evenly on the sphere, (n, 3)."""
    i = np.arange(n) + 0.5
    phi = np.arccos(1.0 - 2.0 * i / n)
    theta = math.pi * (1.0 + 5**0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.cos(phi), np.sin(theta) * np.sin(phi)], axis=1)


def _hair_dirs():
    """Head-frame directions covered by hair: the top and the back of the head (y down, z back)."""
    d = _fibonacci_sphere(160)
    keep = (d[:, 1] < -0.3) | (d[:, 2] > 0.15)
    return d[keep]


HAIR_DIRS = _hair_dirs()

# Head-frame face feature positions and outward normals (unit head radius; x = person's left,
# y down, z backward, so the face looks along -z).
FACE_POS = {
    NOSE: (0.0, 0.2, -1.05), LEYE: (0.36, -0.08, -0.9), REYE: (-0.36, -0.08, -0.9),
    LEAR: (1.0, 0.05, 0.1), REAR: (-1.0, 0.05, 0.1),
}  # fmt: skip
FACE_NORMAL = {
    NOSE: (0.0, 0.1, -1.0), LEYE: (0.42, -0.1, -0.9), REYE: (-0.42, -0.1, -0.9),
    LEAR: (1.0, 0.0, 0.15), REAR: (-1.0, 0.0, 0.15),
}  # fmt: skip
# A feature is drawn when its normal's component towards the camera exceeds this.
FACE_DRAW_THRESHOLD = {NOSE: -0.15, LEYE: 0.12, REYE: 0.12, LEAR: -0.35, REAR: -0.35}


def _rot_x(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_y(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_z(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


_DOWN = np.array([0.0, 1.0, 0.0])


def _limb_dir(side, abduct, flex):
    """Unit direction of a limb segment in its parent frame.

    Args:
        side: +1 for the person's left, -1 for the right.
        abduct: sideways angle away from the body (radians; 0 = hanging down, pi = straight up).
        flex: forward swing angle (radians; positive = towards the person's front).
    """
    return _rot_z(-side * abduct) @ (_rot_x(-flex) @ _DOWN)


def _place_limb(pts, frame, side, joints, angles, upper, lower):
    """Places a two-segment limb (arm or leg) hanging from an already placed joint.

    Args:
        pts: (P, 3) body points, written in place.
        frame: (3, 3) rotation of the limb's parent (torso or hip).
        side: +1 for the person's left, -1 for the right.
        joints: ``(root, middle, end)`` point indices, e.g. shoulder, elbow, wrist.
        angles: ``(abduct, flex, abduct2, flex2)`` of the upper and lower segment in degrees
            (``_limb_dir``).
        upper, lower: the segments' lengths.

    Returns:
        The lower segment's unit direction (3,).
    """
    abd, flex, abd2, flex2 = angles
    root, middle, end = joints
    d1 = frame @ _limb_dir(side, math.radians(abd), math.radians(flex))
    d2 = frame @ _limb_dir(side, math.radians(abd2), math.radians(flex2))
    pts[middle] = pts[root] + upper * d1
    pts[end] = pts[middle] + lower * d2
    return d2


def _sample_pose(rng):
    """Joint angles (degrees) of one person, from a random pose mode within joint limits."""
    u = rng.uniform
    mode = rng.choice(6, p=[0.33, 0.2, 0.12, 0.12, 0.08, 0.15])
    pose = {
        "lean": u(-5, 15), "side": u(-8, 8), "twist": u(-20, 20),
        "head_yaw": u(-45, 45), "head_pitch": u(-15, 20), "head_roll": u(-12, 12),
    }  # fmt: skip
    arms = []
    for _ in range(2):
        r = u()
        if r < 0.45:
            abduct = u(-5, 30)
        elif r < 0.8:
            abduct = u(30, 110)
        else:
            abduct = u(110, 175)
        if mode == 5 and u() < 0.5:
            abduct = u(90, 175)
        flex = u(-20, 30) if u() < 0.5 else u(-45, 100)
        bend = u(0, 30) if u() < 0.4 else u(30, 150)
        arms.append((abduct, flex, abduct + u(-40, 60), flex + bend))
    legs = []
    front = int(rng.integers(2))
    for i in range(2):
        if mode == 0:  # standing
            a, b, k = u(-5, 18), u(-20, 25), u(0, 25)
        elif mode == 1:  # walking / running
            if i == front:
                a, b, k = u(-5, 12), u(15, 60), u(5, 80)
            else:
                a, b, k = u(-5, 12), u(-40, -5), u(0, 70)
        elif mode == 2:  # crouching
            a, b, k = u(5, 40), u(70, 120), u(90, 150)
        elif mode == 3:  # sitting
            a, b, k = u(0, 20), u(75, 100), u(70, 110)
        elif mode == 4:  # bending over
            a, b, k = u(-3, 15), u(-10, 15), u(0, 20)
        else:  # action: wide stance, kicks
            a, b, k = u(10, 45), u(-30, 90), u(0, 100)
        legs.append((a, b, a + u(-10, 10), b - k))
    if mode == 2:
        pose["lean"] = u(20, 55)
    elif mode == 3:
        pose["lean"] = u(-10, 15)
    elif mode == 4:
        pose["lean"] = u(50, 85)
    pose["arms"] = arms
    pose["legs"] = legs
    return pose


def _sample_appearance(rng):
    """Body proportions (fractions of the standing height), limb widths and BGR colours."""
    u = rng.uniform
    skin = np.clip(SKIN_TONES[rng.integers(len(SKIN_TONES))] + rng.normal(0, 8, 3), 0, 255)
    hsv = np.uint8([[[rng.integers(180), rng.integers(60, 256), rng.integers(60, 256)]]])
    shirt = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float64)
    hsv = np.uint8([[[rng.integers(180), rng.integers(0, 200), rng.integers(40, 220)]]])
    pants = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float64)
    marking = 255.0 - shirt if u() < 0.7 else rng.uniform(0, 255, 3)
    if np.abs(marking - shirt).sum() < 150:
        marking = np.where(shirt > 127, 20.0, 235.0)
    bulk = u(0.8, 1.3)
    arm, leg = u(0.92, 1.08), u(0.92, 1.08)
    return {
        "torso": 0.29 * u(0.93, 1.07), "neck": 0.04 * u(0.8, 1.2), "head_r": 0.068 * u(0.9, 1.15),
        "shoulder": 0.115 * u(0.85, 1.15), "hip": 0.08 * u(0.85, 1.15), "depth": 0.055 * bulk,
        "uarm": 0.17 * arm, "farm": 0.15 * arm, "thigh": 0.245 * leg, "shin": 0.235 * leg,
        "foot": 0.075 * u(0.85, 1.15),
        "w_uarm": 0.06 * bulk, "w_farm": 0.05 * bulk, "w_thigh": 0.085 * bulk,
        "w_shin": 0.065 * bulk,
        "w_neck": 0.05 * bulk, "w_foot": 0.045 * bulk, "r_hand": 0.028 * u(0.9, 1.2),
        "skin": skin, "shirt": shirt, "pants": pants, "marking": marking,
        "shoes": rng.uniform(0, 120, 3), "hair": np.clip(HAIR_TONES[rng.integers(len(HAIR_TONES))]
                                                         + rng.normal(0, 10, 3), 0, 255),
        "short_sleeves": u() < 0.4, "shorts": u() < 0.25, "mark_kind": int(rng.integers(4)),
    }  # fmt: skip


def _place_head(pts, pose, app, neck, r_torso):
    """Fills the head centre, face, mouth and hair points of ``pts``; returns the head rotation."""
    rad = math.radians
    r_head = r_torso @ _rot_y(rad(pose["head_yaw"])) @ _rot_x(rad(pose["head_pitch"]))
    r_head = r_head @ _rot_z(rad(pose["head_roll"]))
    r = app["head_r"]
    center = neck + (app["neck"] + r) * (r_head @ -_DOWN)
    pts[HEAD] = center
    for j, p in FACE_POS.items():
        pts[j] = center + r * (r_head @ np.asarray(p))
    pts[MOUTH_L] = center + r * (r_head @ np.array([0.25, 0.5, -0.83]))
    pts[MOUTH_R] = center + r * (r_head @ np.array([-0.25, 0.5, -0.83]))
    pts[HAIR0:] = center + 1.04 * r * (HAIR_DIRS @ r_head.T)
    return r_head


def _build_body(pose, app):
    """Body-frame 3D points (units of the standing height) and the head / torso rotations.

    The body frame has x towards the person's left, y down and z towards the person's back; the
    pelvis is the origin.

    Returns:
        ``(points (P, 3), r_head (3, 3), r_torso (3, 3))``.
    """
    rad = math.radians
    n_pts = HAIR0 + len(HAIR_DIRS)
    pts = np.zeros((n_pts, 3))
    r_torso = _rot_z(rad(pose["side"])) @ _rot_x(rad(pose["lean"])) @ _rot_y(rad(pose["twist"]))
    r_hip = _rot_z(rad(pose["side"]) * 0.3) @ _rot_y(-rad(pose["twist"]) * 0.35)
    xt, yt, zt = r_torso[:, 0], r_torso[:, 1], r_torso[:, 2]
    xh, zh = r_hip[:, 0], r_hip[:, 2]
    neck = -app["torso"] * yt
    pts[NECK] = neck
    d = app["depth"]
    sw, hw = app["shoulder"], app["hip"]
    pts[LSHO] = neck + sw * xt + 0.02 * yt
    pts[RSHO] = neck - sw * xt + 0.02 * yt
    pts[LHIP] = hw * xh
    pts[RHIP] = -hw * xh
    # Torso box: top corners in the torso frame (above the shoulders), bottom ones in the hip frame.
    k = TORSO0
    for sx in (1.0, -1.0):
        for sz in (1.0, -1.0):
            pts[k] = neck + sx * (sw + 0.025) * xt + sz * d * zt + 0.005 * yt
            pts[k + 1] = sx * (hw + 0.03) * xh + sz * d * zh + 0.02 * _DOWN
            k += 2
    front = neck - d * zt
    pts[COLLAR_L] = front + 0.05 * xt + 0.012 * yt
    pts[COLLAR_R] = front - 0.05 * xt + 0.012 * yt
    pts[CHEST] = front + 0.09 * yt
    pts[WAIST] = front + (app["torso"] - 0.03) * yt
    pts[EMBLEM] = front + 0.15 * yt
    r_head = _place_head(pts, pose, app, neck, r_torso)
    # Arms (torso frame).
    for side, (sho, elb, wri, hand), angles in (
        (1, (LSHO, LELB, LWRI, LHAND), pose["arms"][0]),
        (-1, (RSHO, RELB, RWRI, RHAND), pose["arms"][1]),
    ):
        d2 = _place_limb(pts, r_torso, side, (sho, elb, wri), angles, app["uarm"], app["farm"])
        pts[hand] = pts[wri] + 0.6 * app["r_hand"] * d2
    # Legs (hip frame); the foot points forward and a little down.
    fwd = -zh
    for side, (hip, kne, ank, toe), angles in (
        (1, (LHIP, LKNE, LANK, LTOE), pose["legs"][0]),
        (-1, (RHIP, RKNE, RANK, RTOE), pose["legs"][1]),
    ):
        _place_limb(pts, r_hip, side, (hip, kne, ank), angles, app["thigh"], app["shin"])
        pts[toe] = pts[ank] + app["foot"] * fwd + 0.025 * _DOWN
    return pts, r_head, r_torso


class _Canvas:
    """The colour image, the part-label map and the current person's silhouette, drawn together."""

    def __init__(self, img):
        self.img = img
        h, w = img.shape[:2]
        self.label = np.zeros((h, w), np.uint8)
        self.mask = None

    def _targets(self, label):
        yield self.label, label
        if self.mask is not None and label != CLUTTER_LABEL:
            yield self.mask, 255

    def line(self, p, q, color, width, label, outline=0.55):
        """A limb: a dark outline and a filled thick line from ``p`` to ``q`` (pixels, float)."""
        a = (int(round(p[0] * ONE)), int(round(p[1] * ONE)))
        b = (int(round(q[0] * ONE)), int(round(q[1] * ONE)))
        w = max(2, int(round(width)))
        c = tuple(int(v) for v in color)
        if outline:
            dark = tuple(int(v * outline) for v in color)
            cv2.line(self.img, a, b, dark, w + 2, cv2.LINE_AA, SHIFT)
        cv2.line(self.img, a, b, c, w, cv2.LINE_AA, SHIFT)
        for im, v in self._targets(label):
            cv2.line(im, a, b, v, w + (2 if outline else 0), cv2.LINE_8, SHIFT)

    def circle(self, p, radius, color, label, outline=0.0):
        a = (int(round(p[0] * ONE)), int(round(p[1] * ONE)))
        rr = max(ONE, int(round(radius * ONE)))
        c = tuple(int(v) for v in color)
        if outline:
            dark = tuple(int(v * outline) for v in color)
            cv2.circle(self.img, a, rr + ONE, dark, -1, cv2.LINE_AA, SHIFT)
        cv2.circle(self.img, a, rr, c, -1, cv2.LINE_AA, SHIFT)
        for im, v in self._targets(label):
            cv2.circle(im, a, rr + (ONE if outline else 0), v, -1, cv2.LINE_8, SHIFT)

    def poly(self, pts, color, label, outline=0.0):
        q = np.round(np.asarray(pts) * ONE).astype(np.int32)
        c = tuple(int(v) for v in color)
        cv2.fillConvexPoly(self.img, q, c, cv2.LINE_AA, SHIFT)
        if outline:
            dark = tuple(int(v * outline) for v in color)
            cv2.polylines(self.img, [q], True, dark, 1, cv2.LINE_AA, SHIFT)
        for im, v in self._targets(label):
            cv2.fillConvexPoly(im, q, v, cv2.LINE_8, SHIFT)


def _background(rng, w, h, clutter=1.0):
    """A textured gradient background with random clutter shapes (uint8 BGR, (h, w, 3)); ``clutter``
    scales the number of shapes and the chance of limb-like distractors."""
    gh, gw = int(rng.integers(3, 9)), int(rng.integers(3, 11))
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    ang = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:gh, 0:gw]
    t = (math.cos(ang) * xx / max(gw - 1, 1) + math.sin(ang) * yy / max(gh - 1, 1) + 1.0) / 3.0
    field = c0 + (c1 - c0) * t[..., None] + rng.normal(0, 25, (gh, gw, 3))
    field = np.clip(field, 0, 255).astype(np.uint8)
    img = cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC)
    if rng.uniform() < 0.5:  # fine grain texture
        grain = rng.integers(0, 29, (h // 2, w // 2), dtype=np.uint8)
        grain = cv2.cvtColor(cv2.resize(grain, (w, h), interpolation=cv2.INTER_NEAREST),
                             cv2.COLOR_GRAY2BGR)
        img = cv2.subtract(cv2.add(img, grain), np.full_like(img, 14))
    canvas = _Canvas(img)
    _clutter(rng, canvas, w, h, int(round(int(rng.integers(3, 14)) * clutter)), 0)
    if rng.uniform() < 0.35 * clutter:  # limb-like distractors in skin and clothing colours
        for _ in range(int(rng.integers(1, 3))):
            col = SKIN_TONES[rng.integers(len(SKIN_TONES))] if rng.uniform() < 0.5 else rng.uniform(
                0, 255, 3
            )
            p = rng.uniform([0, 0], [w, h])
            q = p + rng.normal(0, 0.15 * h, 2)
            canvas.line(p, q, col, rng.uniform(3, 0.06 * h), 0)
    return img


def _clutter(rng, canvas, w, h, n, label, near=None):
    """Draws ``n`` random shapes; ``near`` = (x0, y0, x1, y1) keeps them around a box."""
    for _ in range(n):
        if near is None:
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            size = rng.uniform(0.05, 0.4) * min(w, h)
        else:
            x0, y0, x1, y1 = near
            cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
            size = rng.uniform(0.15, 0.4) * max(y1 - y0, 8)
        col = rng.uniform(0, 255, 3)
        kind = rng.integers(5)
        if kind == 0:  # rectangle
            hw_, hh = size * rng.uniform(0.3, 1.0), size * rng.uniform(0.3, 1.0)
            ang = rng.uniform(-0.3, 0.3) if rng.uniform() < 0.5 else 0.0
            c, s = math.cos(ang), math.sin(ang)
            corners = np.array([[-hw_, -hh], [hw_, -hh], [hw_, hh], [-hw_, hh]])
            corners = corners @ np.array([[c, s], [-s, c]]) + [cx, cy]
            canvas.poly(corners, col, label, outline=0.6 if rng.uniform() < 0.5 else 0.0)
        elif kind == 1:  # ellipse (as a polygon)
            ang = np.linspace(0, 2 * math.pi, 20, endpoint=False)
            a, b = size * rng.uniform(0.3, 0.8), size * rng.uniform(0.3, 0.8)
            rot = rng.uniform(0, math.pi)
            c, s = math.cos(rot), math.sin(rot)
            ex, ey = a * np.cos(ang), b * np.sin(ang)
            canvas.poly(np.stack([cx + c * ex - s * ey, cy + s * ex + c * ey], 1), col, label)
        elif kind == 2:  # thick line / pole
            ang = rng.uniform(0, math.pi)
            d = size * np.array([math.cos(ang), math.sin(ang)])
            canvas.line((cx - d[0], cy - d[1]), (cx + d[0], cy + d[1]), col,
                        rng.uniform(2, max(3, 0.2 * size)), label, outline=0.0)
        elif kind == 3:  # convex polygon
            ang = np.sort(rng.uniform(0, 2 * math.pi, int(rng.integers(3, 7))))
            rr = size * rng.uniform(0.4, 0.9, len(ang))
            canvas.poly(np.stack([cx + rr * np.cos(ang), cy + rr * np.sin(ang)], 1), col, label)
        else:  # disc
            canvas.circle((cx, cy), size * rng.uniform(0.2, 0.5), col, label)


def _shade(color, f):
    return np.clip(np.asarray(color) * f, 0, 255)


class _Person:
    """One posed, projected person: its 2D points, depths, visibility cues and drawing plan."""

    def __init__(self, rng, height):
        self.app = _sample_appearance(rng)
        self.pose = _sample_pose(rng)
        pts, r_head, r_torso = _build_body(self.pose, self.app)
        if rng.uniform() < 0.5:
            yaw = rng.normal(0.0, 35.0)
        else:
            yaw = rng.uniform(-180.0, 180.0)
        if rng.uniform() < 0.1:
            roll = rng.uniform(-45, 45)
        else:
            roll = float(np.clip(rng.normal(0, 12), -30, 30))
        self.r_cam = _rot_z(math.radians(roll)) @ _rot_y(math.radians(yaw))
        cam = pts @ self.r_cam.T * height
        self.height = height
        self.xy = cam[:, :2].copy()
        self.z = cam[:, 2]
        self.r_head = self.r_cam @ r_head
        self.r_torso = self.r_cam @ r_torso
        # Towards-camera component of each face feature's normal (the camera looks along +z).
        self.face_facing = {
            j: -(self.r_head @ np.asarray(n) / np.linalg.norm(n))[2] for j, n in FACE_NORMAL.items()
        }
        self.torso_front = self.r_torso[2, 2]  # -(R @ (0, 0, -1))[2]
        a = self.app
        self.pad = height * max(a["w_thigh"], a["head_r"] * 1.05, a["w_foot"]) * 0.5 + 2
        self.offset = np.zeros(2)

    def extent(self):
        """``(x0, y0, x1, y1)`` estimate of the drawn body in image pixels."""
        lo = self.xy.min(0) - self.pad + self.offset
        hi = self.xy.max(0) + self.pad + self.offset
        return np.array([lo[0], lo[1], hi[0], hi[1]])

    def place(self, rng, w, h, truncate):
        """Picks a random translation keeping the body in the image (partly out if ``truncate``)."""
        lo = self.xy.min(0) - self.pad
        hi = self.xy.max(0) + self.pad
        size = hi - lo
        margin = size * rng.uniform(0.1, 0.35) if truncate else np.full(2, 1.0)
        sign = -1.0 if truncate else 1.0
        off = np.empty(2)
        for k, lim in enumerate((w, h)):
            a = -lo[k] + sign * margin[k]
            b = lim - 1 - hi[k] - sign * margin[k]
            off[k] = rng.uniform(a, b) if b > a else (a + b) / 2
        self.offset = off

    def draw(self, canvas, index):
        """Draws the person, far parts first (joint pixels are read back later by ``annotate``)."""
        a, hgt = self.app, self.height
        p = self.xy + self.offset
        z = self.z
        base = 1 + index * PARTS_PER_PERSON
        lateral = self.r_torso[:, 0]  # the person's left axis in camera coordinates
        parts = []

        def far_shade(side):
            zz = side * lateral[2]  # > 0 when that side is away from the camera
            return 1.0 - 0.28 * max(0.0, zz)

        def add(key, fn):
            parts.append((key, len(parts), fn))

        zc = 0.5 * (z[NECK] + 0.5 * (z[LHIP] + z[RHIP]))
        shirt = a["shirt"]
        torso_col = _shade(shirt, 0.72 + 0.28 * max(0.0, self.torso_front))
        add(zc + 0.03 * hgt, lambda: self._draw_torso(canvas, p, base, torso_col))

        skin = a["skin"]
        add(z[NECK] - 0.02 * hgt, lambda: canvas.line(p[NECK], p[HEAD], skin, a["w_neck"] * hgt,
                                                      base + P_NECK))
        add(z[HEAD] - 0.05 * hgt, lambda: self._draw_head(canvas, p, base))
        for side, (sho, elb, wri, hand, pu, pf, ph) in (
            (1, (LSHO, LELB, LWRI, LHAND, P_LUARM, P_LFARM, P_LHAND)),
            (-1, (RSHO, RELB, RWRI, RHAND, P_RUARM, P_RFARM, P_RHAND)),
        ):
            f = far_shade(side)
            c_up = _shade(shirt, f * 0.95)
            c_fa = _shade(skin if a["short_sleeves"] else shirt, f * 0.95)

            def arm(sho=sho, elb=elb, wri=wri, hand=hand, pu=pu, pf=pf, ph=ph, c_up=c_up, c_fa=c_fa,
                    f=f):
                canvas.line(p[sho], p[elb], c_up, a["w_uarm"] * hgt, base + pu)
                canvas.line(p[elb], p[wri], c_fa, a["w_farm"] * hgt, base + pf)
                canvas.circle(p[hand], a["r_hand"] * hgt, _shade(skin, f), base + ph, outline=0.6)

            add(0.5 * (z[sho] + z[wri]), arm)
        self._add_legs(canvas, p, base, add, far_shade)
        for _, _, fn in sorted(parts, key=lambda t: (-t[0], t[1])):
            fn()

    def _draw_torso(self, canvas, p, base, torso_col):
        """Draws the torso hull and, when it faces the camera, the shirt marking."""
        a, hgt = self.app, self.height
        corners = p[TORSO0:TORSO0 + 8]
        hull = cv2.convexHull(corners.astype(np.float32)).reshape(-1, 2)
        canvas.poly(hull, torso_col, base + P_TORSO, outline=0.5)
        if self.torso_front > 0.3:
            mark = a["marking"]
            wm = max(1.0, 0.02 * hgt)
            kind = a["mark_kind"]
            if kind in (0, 3):
                canvas.line(p[COLLAR_L], p[CHEST], mark, wm, base + P_TORSO, outline=0.0)
                canvas.line(p[COLLAR_R], p[CHEST], mark, wm, base + P_TORSO, outline=0.0)
            if kind in (1, 3):
                canvas.line(p[CHEST], p[WAIST], mark, wm, base + P_TORSO, outline=0.0)
            if kind == 2:
                canvas.circle(p[EMBLEM], max(1.5, 0.035 * hgt * self.torso_front), mark,
                              base + P_TORSO)

    def _add_legs(self, canvas, p, base, add, far_shade):
        """Queues both legs (thigh, shin, foot) with ``add`` at their depth."""
        a, hgt, z, skin = self.app, self.height, self.z, self.app["skin"]
        for side, (hip, kne, ank, toe, pt, ps, pfo) in (
            (1, (LHIP, LKNE, LANK, LTOE, P_LTHIGH, P_LSHIN, P_LFOOT)),
            (-1, (RHIP, RKNE, RANK, RTOE, P_RTHIGH, P_RSHIN, P_RFOOT)),
        ):
            f = far_shade(side)
            c_th = _shade(a["pants"], f)
            c_sh = _shade(skin if a["shorts"] else a["pants"], f)
            c_fo = _shade(a["shoes"], f)

            def leg(hip=hip, kne=kne, ank=ank, toe=toe, pt=pt, ps=ps, pfo=pfo, c_th=c_th, c_sh=c_sh,
                    c_fo=c_fo):
                canvas.line(p[hip], p[kne], c_th, a["w_thigh"] * hgt, base + pt)
                canvas.line(p[kne], p[ank], c_sh, a["w_shin"] * hgt, base + ps)
                canvas.line(p[ank], p[toe], c_fo, a["w_foot"] * hgt, base + pfo, outline=0.4)

            add(0.5 * (z[hip] + z[ank]) + 0.05 * hgt, leg)

    def _draw_head(self, canvas, p, base):
        a, hgt = self.app, self.height
        r = a["head_r"] * hgt
        skin = a["skin"]
        label = base + P_HEAD
        canvas.circle(p[HEAD], r, skin, label, outline=0.6)
        # Hair: the hull of the hair-covered sphere samples that face the camera.
        dirs_cam = HAIR_DIRS @ self.r_head.T
        seen = dirs_cam[:, 2] < 0.12
        if seen.sum() >= 3:
            hull = cv2.convexHull(p[HAIR0:][seen].astype(np.float32)).reshape(-1, 2)
            canvas.poly(hull, a["hair"], label)
        self.drawn_face = {}
        for j in (LEAR, REAR):
            if self.face_facing[j] > FACE_DRAW_THRESHOLD[j]:
                canvas.circle(p[j], max(1.0, 0.22 * r), _shade(skin, 0.85), base + (
                    P_LEAR if j == LEAR else P_REAR), outline=0.6)
                self.drawn_face[j] = True
        for j in (LEYE, REYE):
            if self.face_facing[j] > FACE_DRAW_THRESHOLD[j]:
                if r > 9:
                    canvas.circle(p[j], 0.2 * r, (235, 235, 235), label)
                canvas.circle(p[j], max(0.8, 0.12 * r), (25, 20, 20), label)
                self.drawn_face[j] = True
        if self.face_facing[NOSE] > FACE_DRAW_THRESHOLD[NOSE]:
            if self.face_facing[NOSE] > 0.3:
                canvas.line(p[MOUTH_L], p[MOUTH_R], (40, 40, 150), max(1.0, 0.08 * r), label,
                            outline=0.0)
            canvas.circle(p[NOSE], max(0.8, 0.13 * r), _shade(skin, 0.6), label)
            self.drawn_face[NOSE] = True

    def annotate(self, rng, label_map, index, w, h):
        """COCO ``keypoints`` (17, 3) from the finished label map (see the module docstring)."""
        p = self.xy + self.offset
        base = 1 + index * PARTS_PER_PERSON
        kps = np.zeros((NUM_JOINTS, 3))
        lateral_z = self.r_torso[2, 0]
        for j in range(NUM_JOINTS):
            x, y = p[j]
            if not (0.0 <= x <= w - 1 and 0.0 <= y <= h - 1):
                continue
            if j in FACE_POS and not self.drawn_face.get(j, False):
                near = self.face_facing[j] > FACE_DRAW_THRESHOLD[j] - 0.45
                if near and rng.uniform() < 0.5:
                    kps[j] = (x, y, 1)
                continue
            owner = int(label_map[int(round(y)), int(round(x))])
            part = owner - base
            v = 2 if 0 <= part < PARTS_PER_PERSON and part in JOINT_PARTS[j] else 1
            if v == 2 and part == P_TORSO and j in (LSHO, RSHO, LHIP, RHIP):
                side = 1.0 if j in (LSHO, LHIP) else -1.0
                if side * lateral_z > 0.35:  # far shoulder / hip behind the torso
                    v = 1
            kps[j] = (x, y, v)
        r = rng.uniform()
        if r < 0.015:  # an unannotated person
            kps[:] = 0
        elif r < 0.08:  # an annotator skipped a few joints
            for j in rng.choice(np.arange(5, NUM_JOINTS), int(rng.integers(1, 4)), replace=False):
                kps[j] = 0
        return kps


def _place_people(rng, n, height_range, width, height):
    """Places up to ``n`` people of log-uniform height, each retried until it barely overlaps."""
    lo, hi_n = height_range
    people = []
    for _ in range(n):
        hgt = math.exp(rng.uniform(math.log(lo), math.log(hi_n)))
        for _attempt in range(12):
            person = _Person(rng, hgt)
            person.place(rng, width, height, truncate=rng.uniform() < 0.12)
            box = person.extent()
            if all(_iou(box, o.extent()) < 0.4 for o in people):
                people.append(person)
                break
            hgt = max(lo, hgt * 0.9)
    return people


def _mask_polygons(mask, rect):
    """COCO polygons (image pixels) of a person mask inside its bounding ``rect``."""
    bx, by, bw, bh = rect
    roi = np.ascontiguousarray(mask[by:by + bh, bx:bx + bw])
    contours, _ = cv2.findContours(roi, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    seg = []
    for c in contours:
        c = cv2.approxPolyDP(c, 0.8, True).reshape(-1, 2)
        if len(c) >= 3:
            seg.append([float(v) for v in (c + [bx, by]).reshape(-1)])
    return seg


def render_image(rng, width=320, height=240, min_people=1, max_people=4, person_height=None,
                 clutter=1.0):
    """Draws one synthetic image.

    Args:
        rng: a ``numpy.random.Generator``.
        width: image width in pixels.
        height: image height in pixels.
        min_people: fewest people drawn (fewer when they do not fit).
        max_people: most people drawn.
        person_height: ``(lo, hi)`` standing height range in pixels; default
            ``(0.25, 0.92) * height``.
        clutter: scale of the background clutter and of the chance of distractors and foreground
            occluders (1: the default set; the same draws, so the default set is unchanged).

    Returns:
        ``(img, people)``: ``img`` is (height, width, 3) uint8 BGR; ``people`` is a list of dicts
        with ``keypoints`` (17, 3) float (x, y, v), ``bbox`` [x, y, w, h] ints, ``area`` (pixel
        count), ``segmentation`` (COCO polygons) and ``occluded`` (fraction of labeled joints with
        v=1).
    """
    if max_people > MAX_PEOPLE or min_people > max_people:
        raise ValueError(f"need 0 <= min_people <= max_people <= {MAX_PEOPLE}")
    lo, hi = person_height if person_height is not None else (0.25 * height, 0.92 * height)
    img = _background(rng, width, height, clutter)
    n = int(rng.integers(min_people, max_people + 1))
    hi_n = max(lo, hi * n**-0.3)
    people = _place_people(rng, n, (lo, hi_n), width, height)
    # Nearer people (feet lower in the image) are drawn later, with a few swaps.
    order = sorted(range(len(people)), key=lambda i: people[i].extent()[3] + rng.normal(0, 10))
    people = [people[i] for i in order]
    canvas = _Canvas(img)
    masks = []
    for i, person in enumerate(people):
        canvas.mask = np.zeros((height, width), np.uint8)
        person.draw(canvas, i)
        masks.append(canvas.mask)
    canvas.mask = None
    if people and rng.uniform() < 0.35 * clutter:  # foreground occluders over someone
        for _ in range(int(rng.integers(1, 3))):
            x0, y0, x1, y1 = people[int(rng.integers(len(people)))].extent()
            _clutter(rng, canvas, width, height, 1, CLUTTER_LABEL, near=(x0, y0, x1, y1))
    if rng.uniform() < 0.25:
        img[:] = cv2.GaussianBlur(img, (3, 3), 0)
    if rng.uniform() < 0.3:
        img[:] = np.clip(img.astype(np.float32) * rng.uniform(0.7, 1.2) + rng.uniform(-20, 20), 0,
                         255).astype(np.uint8)
    out = []
    for i, (person, mask) in enumerate(zip(people, masks)):
        area = int(cv2.countNonZero(mask))
        if area == 0:
            continue
        bx, by, bw, bh = cv2.boundingRect(mask)
        kps = person.annotate(rng, canvas.label, i, width, height)
        seg = _mask_polygons(mask, (bx, by, bw, bh))
        labeled = kps[:, 2] > 0
        occluded = float((kps[:, 2] == 1).sum() / labeled.sum()) if labeled.any() else 1.0
        out.append({"keypoints": kps, "bbox": [bx, by, bw, bh], "area": area, "segmentation": seg,
                    "occluded": occluded})
    return img, out


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _detections(rng, image_id, people, width, height):
    """Detections for one image: jittered GT boxes (a few missed), a few low-score false ones."""
    dets = []
    for person in people:
        x, y, w, h = person["bbox"]
        if int((person["keypoints"][:, 2] > 0).sum()) < 5 and rng.uniform() < 0.1:
            continue  # missed
        cx = x + w / 2 + rng.normal(0, 0.05 * w)
        cy = y + h / 2 + rng.normal(0, 0.05 * h)
        w2, h2 = w * math.exp(rng.normal(0, 0.08)), h * math.exp(rng.normal(0, 0.08))
        x0, y0 = max(0.0, cx - w2 / 2), max(0.0, cy - h2 / 2)
        x1, y1 = min(width - 1.0, cx + w2 / 2), min(height - 1.0, cy + h2 / 2)
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        score = 0.98 - 0.3 * person["occluded"] - rng.uniform(0, 0.15)
        dets.append((image_id, [x0, y0, x1 - x0, y1 - y0], float(np.clip(score, 0.51, 1.0))))
    for _ in range(int(rng.poisson(0.3))):
        bw, bh = rng.uniform(15, 0.4 * width), rng.uniform(20, 0.6 * height)
        x0, y0 = rng.uniform(0, width - bw), rng.uniform(0, height - bh)
        dets.append((image_id, [x0, y0, bw, bh], float(rng.uniform(0.05, 0.45))))
    dets.sort(key=lambda d: -d[2])
    return [
        {"image_id": i, "category_id": 1, "bbox": [round(float(v), 2) for v in b],
         "score": round(s, 4)}
        for i, b, s in dets
    ]


def _annotation_paths(root):
    coco = Path(root) / "coco"
    return {
        "train_ann": coco / "annotations" / f"person_keypoints_{TRAIN_SET}.json",
        "val_ann": coco / "annotations" / f"person_keypoints_{VAL_SET}.json",
        "train_images": coco / "images" / TRAIN_SET,
        "val_images": coco / "images" / VAL_SET,
        "train_dets": coco / "person_detection_results" / TRAIN_DET_FILE,
        "val_dets": coco / "person_detection_results" / VAL_DET_FILE,
    }


def _write_json(path, obj):
    """Writes ``obj`` as compact JSON to ``path`` atomically (temporary file, then a rename)."""
    atomic_write_json(path, obj, separators=(",", ":"))


def _generate_split(root_paths, split, num_images, image_size, seed, min_people, max_people,
                    person_height, clutter=1.0):
    width, height = image_size
    split_code, offset = (0, 0) if split == TRAIN_SET else (1, VAL_ID_OFFSET)
    img_dir = root_paths["train_images" if split == TRAIN_SET else "val_images"]
    img_dir.mkdir(parents=True, exist_ok=True)
    images, anns, dets = [], [], []
    for idx in range(num_images):
        rng = np.random.default_rng([seed, split_code, idx])
        img, people = render_image(rng, width, height, min_people, max_people, person_height,
                                   clutter)
        image_id = offset + idx + 1
        name = f"{image_id:012d}.jpg"
        if not cv2.imwrite(str(img_dir / name), img, [cv2.IMWRITE_JPEG_QUALITY, 90]):
            raise OSError(f"could not write {img_dir / name}")
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        for k, person in enumerate(people):
            kps = person["keypoints"]
            flat = []
            for x, y, v in kps:
                flat += [round(float(x), 2), round(float(y), 2), int(v)]
            anns.append({
                "id": image_id * 100 + k, "image_id": image_id, "category_id": 1,
                "keypoints": flat, "num_keypoints": int((kps[:, 2] > 0).sum()),
                "bbox": [float(v) for v in person["bbox"]], "area": float(person["area"]),
                "iscrowd": 0, "segmentation": person["segmentation"],
            })  # fmt: skip
        dets += _detections(rng, image_id, people, width, height)
    dataset = {
        "info": {"description": "semipose synthetic COCO-format person keypoints", "version": "1.0",
                 "year": 2017, "seed": seed},
        "licenses": [],
        "images": images,
        "annotations": anns,
        "categories": CATEGORIES,
    }
    return dataset, dets


#: Records the generation parameters next to the annotations, so a config asking for another set
#: is refused instead of silently reusing (or destroying) the one on disk.
PARAMS_FILE = "synthetic_params.json"

#: DATASET.SYNTHETIC.PRESET -> generator settings. ``hard`` is the default set (1-4 people from a
#: quarter of the image height up, full clutter and occluders: the collapse study's set); ``easy``
#: has 1-2 large people (55-95 % of the image height) and a quarter of the clutter, so a network
#: trained from scratch on a CPU learns in minutes (the demo's set).
PRESETS = {
    "hard": {},
    "easy": {"max_people": 2, "height_frac": (0.55, 0.95), "clutter": 0.25},
}


def preset_kwargs(preset, image_size):
    """``generate`` keyword arguments of a preset for images of ``image_size`` (width, height).

    Raises:
        ValueError: an unknown preset (the message lists them).
    """
    if preset not in PRESETS:
        raise ValueError(
            f"DATASET.SYNTHETIC.PRESET must be one of {sorted(PRESETS)}, got {preset!r}"
        )
    kwargs = dict(PRESETS[preset])
    frac = kwargs.pop("height_frac", None)
    if frac is not None:
        kwargs["person_height"] = (frac[0] * image_size[1], frac[1] * image_size[1])
    return kwargs

#: Generation parameter -> the config key that sets it (``None``: only a ``generate`` argument).
_PARAM_KEYS = {
    "num_train": "DATASET.SYNTHETIC.NUM_TRAIN",
    "num_val": "DATASET.SYNTHETIC.NUM_VAL",
    "image_size": "DATASET.SYNTHETIC.IMAGE_SIZE",
    "seed": "DATASET.SYNTHETIC.SEED",
    "min_people": None,
    "max_people": "DATASET.SYNTHETIC.PRESET's max_people",
    "person_height": "DATASET.SYNTHETIC.PRESET's person_height",
    "clutter": "DATASET.SYNTHETIC.PRESET's clutter",
}


class SyntheticSetMismatchError(UserError):
    """The synthetic set under a root was generated with other parameters than those asked for."""


def _command(root, params):
    """The generator command line that (re)writes the set of ``params`` under ``root``."""
    width, height = params["image_size"]
    cmd = (
        f"python -m semipose.dataset.synthetic --root {root} --num-train {params['num_train']} "
        f"--num-val {params['num_val']} --width {width} --height {height} --seed {params['seed']}"
    )
    if (params["min_people"], params["max_people"]) != (1, 4):
        cmd += f" --min-people {params['min_people']} --max-people {params['max_people']}"
    preset = next((name for name, kw in PRESETS.items() if kw.get("clutter", 1.0)
                   == params.get("clutter", 1.0)), None)
    if preset not in (None, "hard"):
        cmd += f" --preset {preset}"
    return cmd + " --overwrite"


def _read_json(path, root, params):
    """Loads one of the set's json files; a damaged one names itself and the command to redo it."""
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as exc:  # json.JSONDecodeError, UnicodeDecodeError
        raise DataFileError(
            f"synthetic set file {path} is not valid JSON ({exc}); regenerate the set with: "
            f"{_command(root, params)}"
        ) from exc


def _describe(params, keys):
    parts = []
    for key in keys:
        name = _PARAM_KEYS.get(key) or f"{key} (generate argument)"
        parts.append(f"{name} {params.get(key)!r}")
    return ", ".join(parts)
_JSON_KEYS = ("train_dets", "val_dets", "train_ann", "val_ann")


def _params(num_train, num_val, image_size, seed, min_people, max_people, person_height,
            clutter=1.0):
    extra = {} if clutter == 1.0 else {"clutter": float(clutter)}  # older sets have no key
    return extra | {
        "num_train": int(num_train), "num_val": int(num_val),
        "image_size": [int(v) for v in image_size], "seed": int(seed),
        "min_people": int(min_people), "max_people": int(max_people),
        "person_height": None if person_height is None else [float(v) for v in person_height],
    }  # fmt: skip


def is_generated(root, num_train=1200, num_val=200, image_size=(320, 240), seed=0, min_people=1,
                 max_people=4, person_height=None, clutter=1.0):
    """True when ``generate`` with these arguments would find the set complete and skip.

    Args:
        root: dataset root; the other arguments as ``generate``'s.

    Returns:
        bool: every annotation and detection file is there and ``<root>/coco/PARAMS_FILE`` holds
        these parameters (or is absent: a set from before it existed).
    """
    paths = _annotation_paths(root)
    if not all(paths[k].is_file() for k in _JSON_KEYS):
        return False
    params_file = Path(root) / "coco" / PARAMS_FILE
    if not params_file.is_file():
        return True
    with open(params_file) as f:
        return json.load(f) == _params(
            num_train, num_val, image_size, seed, min_people, max_people, person_height, clutter
        )


def generate(root, num_train=1200, num_val=200, image_size=(320, 240), seed=0, min_people=1,
             max_people=4, overwrite=False, person_height=None, clutter=1.0):
    """Writes the synthetic set under ``<root>/coco`` in the COCO 2017 layout (module docstring).

    Generation is skipped when all annotation and detection files exist, unless ``overwrite``.
    The annotation jsons are written last (temporary file, then rename), so an interrupted run is
    redone. A complete set made with other parameters is never regenerated in place without
    ``overwrite`` (other runs may be using it): that is an error naming the differing config keys.

    Args:
        root: dataset root (the ``DATASET.ROOT`` of the config, e.g. ``data/synthetic``).
        num_train, num_val: number of train2017 / val2017 images.
        image_size: ``(width, height)`` in pixels.
        seed: the seed; the same seed gives identical files.
        min_people, max_people: fewest / most people per image.
        overwrite: regenerate even when the files exist.
        person_height: ``(lo, hi)`` standing height in pixels; default ``(0.25, 0.92) * height``.
        clutter: background clutter / occluder scale (``render_image``).

    Returns:
        dict with the paths (``root``, ``train_ann``, ``val_ann``, ``train_images``,
        ``val_images``, ``train_dets``, ``val_dets``, as strings), the counts
        ``num_{train,val}_{images,persons,dets}``, ``generated`` (False when skipped), ``seconds``.

    Raises:
        SyntheticSetMismatchError: the set under ``root`` has other parameters (and not
            ``overwrite``); the message names them and the command that regenerates it.
        DataFileError: one of the set's json files is damaged; the message names it and the
            command that regenerates the set.
    """
    if num_train >= VAL_ID_OFFSET:
        raise ValueError(f"num_train must be < {VAL_ID_OFFSET} (val image ids start there)")
    paths = _annotation_paths(root)
    result = {"root": str(root)}
    result.update({k: str(v) for k, v in paths.items()})
    t0 = time.perf_counter()
    params = _params(num_train, num_val, image_size, seed, min_people, max_people, person_height,
                     clutter)
    params_file = Path(root) / "coco" / PARAMS_FILE
    complete = all(paths[k].is_file() for k in _JSON_KEYS)
    if not overwrite and complete and params_file.is_file():
        _check_same_params(root, params_file, params)
    if not overwrite and complete:
        logger.debug("synthetic COCO set already present under %s; skipping generation", root)
        data = _read_existing(paths, root, params)
        result.update(
            _counts(data["train_ann"], data["val_ann"], data["train_dets"], data["val_dets"]),
            generated=False,
            seconds=time.perf_counter() - t0,
        )
        return result
    args = (image_size, seed, min_people, max_people, person_height, clutter)
    train, val, train_dets, val_dets = _write_set(paths, params_file, params, num_train, num_val,
                                                  args)
    seconds = time.perf_counter() - t0
    logger.info(
        "wrote %d + %d synthetic images under %s in %.1fs", num_train, num_val, root, seconds
    )
    result.update(_counts(train, val, train_dets, val_dets), generated=True, seconds=seconds)
    return result


def _write_set(paths, params_file, params, num_train, num_val, args):
    """Renders both splits and writes them (annotations, then the parameters, last)."""
    for k in ("train_ann", "val_ann"):  # an interrupted or forced run starts without annotations
        if paths[k].exists():
            paths[k].unlink()
    train, train_dets = _generate_split(paths, TRAIN_SET, num_train, *args)
    val, val_dets = _generate_split(paths, VAL_SET, num_val, *args)
    _write_json(paths["train_dets"], train_dets)
    _write_json(paths["val_dets"], val_dets)
    _write_json(paths["val_ann"], val)
    _write_json(paths["train_ann"], train)
    _write_json(params_file, params)
    return train, val, train_dets, val_dets


def _check_same_params(root, params_file, params):
    """Raises SyntheticSetMismatchError when the set under ``root`` has other parameters."""
    found = _read_json(params_file, root, params)
    keys = list(params) + [k for k in (found if isinstance(found, dict) else {})
                           if k not in params]
    differ = [k for k in keys if not isinstance(found, dict) or found.get(k) != params.get(k)]
    if differ:
        found = found if isinstance(found, dict) else {}
        raise SyntheticSetMismatchError(
            f"the synthetic set under {root} was generated with {_describe(found, differ)}, "
            f"but {_describe(params, differ)} is asked for; it is not regenerated in place "
            "because other runs may use it. Give this set its own DATASET.ROOT (and "
            "TEST.COCO_BBOX_FILE under it), or regenerate it for every user of that root "
            f"with: {_command(root, params)}"
        )


def _read_existing(paths, root, params):
    """Reads the existing set's json files, checking each holds the expected kind of value."""
    data = {k: _read_json(paths[k], root, params) for k in _JSON_KEYS}
    bad = [k for k in ("train_ann", "val_ann") if not isinstance(data[k], dict)]
    bad += [k for k in ("train_dets", "val_dets") if not isinstance(data[k], list)]
    if bad:
        raise DataFileError(
            f"synthetic set file {paths[bad[0]]} does not hold a COCO "
            f"{'annotation object' if bad[0].endswith('ann') else 'detection list'}; "
            f"regenerate the set with: {_command(root, params)}"
        )
    return data


def _counts(train, val, train_dets, val_dets):
    """The image, person and detection counts of both splits, as ``generate`` reports them."""
    return {
        "num_train_images": len(train["images"]),
        "num_val_images": len(val["images"]),
        "num_train_persons": len(train["annotations"]),
        "num_val_persons": len(val["annotations"]),
        "num_train_dets": len(train_dets),
        "num_val_dets": len(val_dets),
    }


def main(argv=None):
    """Command line: ``python -m semipose.dataset.synthetic --root data/synthetic ...``."""
    parser = argparse.ArgumentParser(description="Generate the synthetic COCO-format keypoint set.")
    parser.add_argument("--root", default="data/synthetic", help="dataset root (holds coco/)")
    parser.add_argument("--num-train", type=int, default=1200)
    parser.add_argument("--num-val", type=int, default=200)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-people", type=int, default=1)
    parser.add_argument("--max-people", type=int, default=None,
                        help="most people per image (default: the preset's)")
    parser.add_argument("--preset", default="hard", choices=sorted(PRESETS),
                        help="difficulty (DATASET.SYNTHETIC.PRESET)")
    parser.add_argument("--overwrite", action="store_true", help="regenerate even if present")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    kwargs = preset_kwargs(args.preset, (args.width, args.height))
    if args.max_people is not None:
        kwargs["max_people"] = args.max_people
    res = generate(args.root, num_train=args.num_train, num_val=args.num_val,
                   image_size=(args.width, args.height), seed=args.seed, min_people=args.min_people,
                   overwrite=args.overwrite, **kwargs)
    verb = "wrote" if res["generated"] else "found existing"
    print(f"{verb} synthetic COCO set under {res['root']} ({res['seconds']:.1f}s)")
    for split in ("train", "val"):
        print(
            f"  {split}: {res[f'num_{split}_images']} images, "
            f"{res[f'num_{split}_persons']} persons, {res[f'num_{split}_dets']} detections"
        )
        print(f"    annotations: {res[f'{split}_ann']}")
        print(f"    images:      {res[f'{split}_images']}")
        print(f"    detections:  {res[f'{split}_dets']}")
    return 0


if __name__ == "__main__":
    from semipose.common.errors import run_cli

    raise SystemExit(run_cli(main))
