"""Dataset metainfo: a keypoint set described by a YAML file (names, flip pairs, skeleton and
colours, OKS sigmas, joint weights, upper/lower-body sets).

The built-in sets (``coco``, ``mpii``, ``ai_challenger`` and the 24-joint ``union`` layout) ship as
files in ``semipose/dataset/metainfo/``; a user's own set is one more such file. Data only (yaml,
numpy), so every layer may read it.

File format (keys other than ``keypoints`` are optional)::

    name: robot_arm
    keypoints: [base, shoulder, elbow, ...]      # native order, unique names
    flip_pairs: [[left_tip, right_tip], ...]     # names or indices
    skeleton: [[base, shoulder], ...]            # limbs, names or indices
    joint_colors: [[B, G, R], ...]               # one per keypoint (default: by side of the name)
    limb_colors: [[B, G, R], ...]                # one per limb (default: from the joint colours)
    sigmas: [0.05, ...]                          # OKS sigmas, one per keypoint (default 0.05)
    joint_weights: [1.0, ...]                    # loss weights (default 1)
    upper_body: [...]                            # the half-body crop's sets (names or indices)
    lower_body: [...]
"""

import os
from dataclasses import dataclass

import numpy as np
import yaml

from semipose.common.errors import UserError

__all__ = [
    "BUILTIN_METAINFO_DIR",
    "DEFAULT_SIGMA",
    "Metainfo",
    "MetainfoError",
    "builtin_metainfo",
    "load_metainfo",
    "side_colors",
]

#: Folder of the built-in metainfo files (package data).
BUILTIN_METAINFO_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "dataset", "metainfo"
)
#: OKS sigma of a keypoint whose file gives none.
DEFAULT_SIGMA = 0.05

_LEFT = (235, 140, 30)  # blue
_RIGHT = (30, 140, 255)  # orange
_HEAD = (60, 200, 60)  # green
_TORSO = (200, 60, 200)  # purple
_HEAD_NAMES = {"nose", "leye", "reye", "lear", "rear", "head", "head top", "upper neck", "neck"}
_KEYS = {
    "name", "keypoints", "flip_pairs", "skeleton", "joint_colors", "limb_colors", "sigmas",
    "joint_weights", "upper_body", "lower_body",
}  # fmt: skip


class MetainfoError(UserError, ValueError):
    """A metainfo file is missing or does not describe a keypoint set; the message names the file
    and the key."""


def _side(name):
    low = name.lower()
    if low in _HEAD_NAMES:
        return _HEAD
    if low.startswith(("left", "l_")) or (low[:1] == "l" and len(low) <= 5):
        return _LEFT
    if low.startswith(("right", "r_")) or (low[:1] == "r" and low != "root" and len(low) <= 5):
        return _RIGHT
    return _TORSO


def side_colors(joint_names, skeleton):
    """Joint and limb colours from joint names (left blue, right orange, head green, torso purple).

    Args:
        joint_names: the J joint names in native order (``'lsho'``, ``'rkne'``, ``'head top'``...).
        skeleton: pairs of joint indices.

    Returns:
        ``(joint_colors, limb_colors)``: tuples of BGR colours, J and len(skeleton) long. A limb
        between the two sides (e.g. shoulder to shoulder) takes the torso colour.
    """
    joint_colors = tuple(_side(n) for n in joint_names)
    limb_colors = tuple(
        joint_colors[a] if joint_colors[a] == joint_colors[b] else _TORSO for a, b in skeleton
    )
    return joint_colors, limb_colors


@dataclass(frozen=True, eq=False)
class Metainfo:
    """One keypoint set.

    Attributes:
        name: the set's name.
        path: the file it was read from.
        keypoints: J names, native order.
        flip_pairs: index pairs swapped by a horizontal flip.
        skeleton: limbs as index pairs.
        joint_colors: J BGR colours.
        limb_colors: one BGR colour per limb.
        sigmas: (J,) float64 OKS sigmas, or None when the file gives none (only PCK applies).
        joint_weights: (J,) float64 loss weights.
        upper_body_ids: indices of the half-body crop's upper set.
        lower_body_ids: indices of its lower set.
    """

    name: str
    path: str
    keypoints: tuple
    flip_pairs: tuple
    skeleton: tuple
    joint_colors: tuple
    limb_colors: tuple
    sigmas: object
    joint_weights: object
    upper_body_ids: tuple
    lower_body_ids: tuple

    @property
    def num_joints(self):
        """J, the number of keypoints."""
        return len(self.keypoints)

    @property
    def joints(self):
        """``{index: name}`` in native order (the form of ``common.joints``' tables)."""
        return dict(enumerate(self.keypoints))

    def oks_sigmas(self):
        """(J,) sigmas for OKS: the file's, else ``DEFAULT_SIGMA`` for every keypoint."""
        if self.sigmas is not None:
            return self.sigmas
        return np.full(self.num_joints, DEFAULT_SIGMA, dtype=np.float64)


def builtin_metainfo(name):
    """The built-in metainfo ``name`` (``coco``, ``mpii``, ``ai_challenger``, ``union``)."""
    return load_metainfo(os.path.join(BUILTIN_METAINFO_DIR, f"{name}.yaml"))


def _index(value, names, path, key):
    if isinstance(value, bool):
        raise MetainfoError(f"metainfo {path}: {key} holds {value!r}, not a keypoint")
    if isinstance(value, int):
        if 0 <= value < len(names):
            return value
        raise MetainfoError(
            f"metainfo {path}: {key} index {value} is outside 0..{len(names) - 1}"
        )
    if value in names:
        return names.index(value)
    raise MetainfoError(f"metainfo {path}: {key} names {value!r}, which is not in keypoints")


def _pairs(raw, names, path, key):
    out = []
    for item in raw or []:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise MetainfoError(f"metainfo {path}: {key} entry {item!r} is not a pair")
        out.append(tuple(_index(v, names, path, key) for v in item))
    return tuple(out)


def _floats(raw, count, path, key, default):
    if raw is None:
        return default
    arr = np.asarray(raw, dtype=np.float64) if isinstance(raw, list) else None
    if arr is None or arr.shape != (count,) or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise MetainfoError(
            f"metainfo {path}: {key} must be a list of {count} non-negative numbers, one per "
            "keypoint"
        )
    return arr


def _colors(raw, count, path, key, default):
    if raw is None:
        return default
    ok = isinstance(raw, list) and len(raw) == count and all(
        isinstance(c, list) and len(c) == 3 and all(isinstance(v, int) for v in c) for c in raw
    )
    if not ok:
        raise MetainfoError(
            f"metainfo {path}: {key} must be a list of {count} [B, G, R] integer triples"
        )
    return tuple(tuple(c) for c in raw)


def _read_yaml(path):
    if not os.path.isfile(path):
        raise MetainfoError(f"metainfo file not found: {path}")
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        raise MetainfoError(f"metainfo {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise MetainfoError(f"metainfo {path} must hold a mapping with a 'keypoints' list")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise MetainfoError(f"metainfo {path}: unknown key(s) {unknown}; known: {sorted(_KEYS)}")
    return data


def _keypoints(data, path):
    names = data.get("keypoints")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise MetainfoError(f"metainfo {path}: 'keypoints' must be a non-empty list of names")
    if len(set(names)) != len(names):
        raise MetainfoError(f"metainfo {path}: 'keypoints' repeats a name")
    return names


def load_metainfo(path):
    """Reads and checks a metainfo file (relative paths from the working directory; a bare name
    such as ``coco`` is a built-in one).

    Args:
        path: the YAML file, or a built-in name.

    Returns:
        ``Metainfo``.

    Raises:
        MetainfoError: the file is missing or a key is malformed (the message names both).
    """
    path = str(path)
    if not os.path.splitext(path)[1] and os.sep not in path:
        path = os.path.join(BUILTIN_METAINFO_DIR, f"{path}.yaml")
    data = _read_yaml(path)
    names = _keypoints(data, path)
    count = len(names)
    skeleton = _pairs(data.get("skeleton"), names, path, "skeleton")
    default_joint, default_limb = side_colors(names, skeleton)
    joint_colors = _colors(data.get("joint_colors"), count, path, "joint_colors", default_joint)
    if data.get("joint_colors") is not None and data.get("limb_colors") is None:
        default_limb = tuple(joint_colors[a] for a, _ in skeleton)
    upper = tuple(_index(v, names, path, "upper_body") for v in data.get("upper_body") or [])
    lower = tuple(_index(v, names, path, "lower_body") for v in data.get("lower_body") or [])
    return Metainfo(
        name=str(data.get("name") or os.path.splitext(os.path.basename(path))[0]),
        path=path,
        keypoints=tuple(names),
        flip_pairs=_pairs(data.get("flip_pairs"), names, path, "flip_pairs"),
        skeleton=skeleton,
        joint_colors=joint_colors,
        limb_colors=_colors(
            data.get("limb_colors"), len(skeleton), path, "limb_colors", default_limb
        ),
        sigmas=_floats(data.get("sigmas"), count, path, "sigmas", None),
        joint_weights=_floats(
            data.get("joint_weights"), count, path, "joint_weights", np.ones(count)
        ),
        upper_body_ids=upper,
        lower_body_ids=lower,
    )
