"""Converts other labeling tools' keypoint files to this project's COCO-format json and metainfo
YAML (docs/CUSTOM_DATA.md), ready for ``DATASET.TRAIN_DATASET custom``.

Usage::

    python -m semipose.tools.convert dlc SOURCE [SOURCE ...] --out DIR [--root DIR]
        [--config config.yaml] [--name NAME] [--margin 0.1] [--flip-pairs a:b,c:d]
        [--single object|skip] [--val-fraction F [--seed S] | --val-folders A,B]

Each format is a sub-command (``FORMATS`` maps its name to the function that adds its options and
sets the function that runs it); ``dlc`` reads DeepLabCut's labeled data.

DeepLabCut (``dlc``)
--------------------
A SOURCE is a ``CollectedData_<scorer>.csv`` file, a ``labeled-data/<video>/`` folder holding one,
a ``labeled-data`` folder or a project folder (every ``labeled-data/*/CollectedData_*.csv``).

* The CSV starts with the header rows ``scorer``, ``bodyparts``, ``coords`` (single animal) or
  ``scorer``, ``individuals``, ``bodyparts``, ``coords`` (multi-animal), then one row per image.
  The index is one column (``labeled-data/video1/img001.png``) or several
  (``labeled-data``, ``video1``, ``img001.png``); ``coords`` is ``x``, ``y`` per body part.
* An image is looked for in the CSV's own folder (its file name), then under the project folder
  (two levels above the CSV's folder) at the path the index gives.
* Each individual of a row is one object; the multi-animal ``single`` individual (the unique body
  parts) is one more object whose other keypoints are unlabeled (``--single object``, default),
  or is left out with its body parts (``--single skip``). Empty or ``NaN`` cells are unlabeled
  (v = 0), labeled points have v = 2; points outside their image are written as unlabeled and
  counted. Objects without a labeled point are skipped; images without any object are kept.
* The box is the labeled points' box grown on each side by ``--margin`` times its longer side
  (at least 1 pixel), clipped to the image; area = w * h.
* Keypoints: the config's ``bodyparts`` (or ``multianimalbodyparts`` + ``uniquebodyparts``) in
  its order, else the CSVs' body parts in order of appearance. The skeleton is the config's.
  Flip pairs (``derive_flip_pairs``): two names that differ only in a side word ``left`` /
  ``right`` at the start or the end (any case: ``leftEar`` / ``rightEar``, ``ear_left`` /
  ``ear_right``), or in a side letter ``L`` / ``R`` set off by ``_``, ``-``, ``.`` or a space
  (``L_paw`` / ``R_paw``, ``paw-l`` / ``paw-r``); ``--flip-pairs`` replaces them.

Writes ``DIR/train.json`` (+ ``DIR/val.json`` with a split) and ``DIR/<name>.yaml``, each
atomically and only after every input was read and checked; ``file_name`` is relative to
``--root`` (default: the project folder, the one holding ``labeled-data/``). Bad input stops with
one line naming the file and the row or column, exit status 2, nothing written.
"""

import argparse
import csv
import glob
import json
import math
import os
import random
import re
import sys
from dataclasses import dataclass, field

import cv2
import yaml

from semipose.common.errors import DataFileError, UserError, run_cli
from semipose.common.io import atomic_write_text

__all__ = [
    "DEFAULT_MARGIN",
    "FORMATS",
    "SINGLE",
    "DLCFormatError",
    "box_with_margin",
    "convert_dlc",
    "derive_flip_pairs",
    "find_csv_files",
    "main",
    "parse_flip_pairs",
    "read_dlc_config",
    "read_dlc_csv",
    "split_images",
]

#: Per-side box margin, as a fraction of the longer side of the labeled points' box.
DEFAULT_MARGIN = 0.1
#: Smallest per-side margin in pixels (a box around one point, or along a line, has an area).
MIN_PAD = 1.0
#: DeepLabCut's individual holding the unique body parts of a multi-animal project.
SINGLE = "single"
_SINGLE_HEADER = ("scorer", "bodyparts", "coords")
_MULTI_HEADER = ("scorer", "individuals", "bodyparts", "coords")
_SEPARATORS = "_-. "
_CSV_PATTERN = "CollectedData_*.csv"


class DLCFormatError(DataFileError):
    """A DeepLabCut file does not hold what was expected; the message names the file and the row
    or column."""


@dataclass
class DLCTable:
    """One ``CollectedData_*.csv``.

    Attributes:
        path: the file.
        multi: a multi-animal file (an ``individuals`` header row).
        width: the number of index columns.
        columns: ``(individual or None, body part)`` per x/y column pair, in file order.
        rows: ``DLCRow`` per image.
    """

    path: str
    multi: bool
    width: int
    columns: list
    rows: list = field(default_factory=list)

    @property
    def bodyparts_row(self):
        """1-based number of the ``bodyparts`` header row."""
        return 3 if self.multi else 2


@dataclass
class DLCRow:
    """One image row: ``line`` (1-based row number), ``index`` (the image path the CSV gives,
    with ``/``) and ``points`` (individual or None -> {body part: (x, y)}, labeled points
    only)."""

    line: int
    index: str
    points: dict


@dataclass
class DLCConfig:
    """What the converter reads of a DeepLabCut ``config.yaml``: ``name`` (its ``Task``),
    ``bodyparts`` (the animal's), ``unique`` (``uniquebodyparts``), ``skeleton`` (name pairs)."""

    path: str
    name: str
    bodyparts: list
    unique: list
    skeleton: list


@dataclass
class LabeledImage:
    """One image of the output: its COCO fields, the labeled-data folder it came from and its
    annotations."""

    id: int
    file_name: str
    width: int
    height: int
    folder: str
    annotations: list

    def coco(self):
        """The COCO ``images`` entry."""
        return {"id": self.id, "file_name": self.file_name, "width": self.width,
                "height": self.height}  # fmt: skip


# ---------------------------------------------------------------- reading DeepLabCut files


def _read_rows(path):
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return list(csv.reader(f))
    except UnicodeDecodeError as exc:
        raise DLCFormatError(f"{path} is not UTF-8 text: {exc}") from None
    except csv.Error as exc:
        raise DLCFormatError(f"{path} is not a readable CSV file: {exc}") from None


def _first_cell(row):
    return row[0].strip() if row else ""


def _header_kind(rows, path):
    """``(multi, index width)`` from the header rows' first cells and the scorer row."""
    multi = len(rows) > 1 and _first_cell(rows[1]) == "individuals"
    names = _MULTI_HEADER if multi else _SINGLE_HEADER
    for k, want in enumerate(names):
        found = _first_cell(rows[k]) if k < len(rows) else None
        if found != want:
            got = "the file ends" if found is None else f"found {found!r}"
            raise DLCFormatError(
                f"{path} row {k + 1}: expected the header row {want!r} in the first column "
                f"({got}); a DeepLabCut CollectedData file starts with the rows "
                f"{', '.join(_SINGLE_HEADER)} (multi-animal: {', '.join(_MULTI_HEADER)})"
            )
    scorer = rows[0]
    width = 1
    while width < len(scorer) and not scorer[width].strip():
        width += 1
    if width == len(scorer):
        raise DLCFormatError(f"{path} row 1: no data column (no scorer name after the index)")
    for k in range(1, len(names)):
        if len(rows[k]) != len(scorer):
            raise DLCFormatError(f"{path} row {k + 1}: {len(rows[k])} cells, the scorer row has "
                                 f"{len(scorer)}")  # fmt: skip
    if (len(scorer) - width) % 2:
        raise DLCFormatError(f"{path} row {len(names)}: {len(scorer) - width} coordinate "
                             "columns, expected an x and a y column per body part")  # fmt: skip
    return multi, width


def _header_columns(rows, path, multi, width):
    """``(individual or None, body part)`` per x/y pair, checked."""
    coords, parts = rows[3 if multi else 2], rows[2 if multi else 1]
    columns = []
    for c in range(width, len(coords), 2):
        for offset, axis in enumerate("xy"):
            got = coords[c + offset].strip()
            if got != axis:
                raise DLCFormatError(
                    f"{path} row {4 if multi else 3} column {c + offset + 1}: coords {got!r}, "
                    f"expected {axis!r} (x, y per body part; labels hold no likelihood)"
                )
        labels = [(parts, 3 if multi else 2, "body part")]
        if multi:
            labels.append((rows[1], 2, "individual"))
        for row, number, what in labels:
            name = row[c].strip()
            if not name or row[c + 1].strip() != name:
                raise DLCFormatError(f"{path} row {number} columns {c + 1}-{c + 2}: the {what} "
                                     f"of an x/y pair is {row[c]!r} / {row[c + 1]!r}, expected "
                                     "one name for both")  # fmt: skip
        key = (rows[1][c].strip() if multi else None, parts[c].strip())
        if key in columns:
            who = f"individual {key[0]!r}, " if multi else ""
            raise DLCFormatError(f"{path} column {c + 1}: {who}body part {key[1]!r} appears "
                                 "twice in the header")  # fmt: skip
        columns.append(key)
    return columns


def _number(cell, path, row, col, what):
    """The float of a coordinate cell; None for an empty or NaN cell."""
    text = cell.strip()
    if text.lower() in ("", "nan"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DLCFormatError(f"{path} row {row} column {col + 1} ({what}): {text!r} is not a "
                             "number")  # fmt: skip
    return value


def _point(row, col, path, number, key):
    who = f"{key[0]} " if key[0] is not None else ""
    x = _number(row[col], path, number, col, f"{who}{key[1]} x")
    y = _number(row[col + 1], path, number, col + 1, f"{who}{key[1]} y")
    if (x is None) != (y is None):
        bad, has, lacks = (col + 1, "y", "x") if x is None else (col + 2, "x", "y")
        raise DLCFormatError(f"{path} row {number} column {bad}: {who}{key[1]} has {has} but no "
                             f"{lacks}")  # fmt: skip
    return None if x is None else (x, y)


def _data_rows(rows, table):
    seen = {}
    total = table.width + 2 * len(table.columns)
    for k in range(4 if table.multi else 3, len(rows)):
        row, number = rows[k], k + 1
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > total:
            raise DLCFormatError(f"{table.path} row {number}: {len(row)} cells, the header has "
                                 f"{total}")  # fmt: skip
        row = row + [""] * (total - len(row))
        parts = [c.strip().replace("\\", "/") for c in row[: table.width] if c.strip()]
        if not parts:
            raise DLCFormatError(f"{table.path} row {number}: no image path in the index "
                                 f"column(s) 1-{table.width}")  # fmt: skip
        index = "/".join(parts)
        if index in seen:
            raise DLCFormatError(f"{table.path} row {number}: image {index} is listed again "
                                 f"(first at row {seen[index]})")  # fmt: skip
        seen[index] = number
        points = {}
        for j, key in enumerate(table.columns):
            xy = _point(row, table.width + 2 * j, table.path, number, key)
            if xy is not None:
                points.setdefault(key[0], {})[key[1]] = xy
        table.rows.append(DLCRow(number, index, points))


def read_dlc_csv(path):
    """Reads and checks one DeepLabCut ``CollectedData_*.csv``.

    Args:
        path: the file.

    Returns:
        ``DLCTable``.

    Raises:
        DLCFormatError: missing header rows, a coords row other than x/y, mismatched header
            names, a non-numeric cell, an x without its y, a repeated image (the message names the
            file and the row or column).
    """
    path = os.fspath(path)
    rows = _read_rows(path)
    multi, width = _header_kind(rows, path)
    table = DLCTable(path, multi, width, _header_columns(rows, path, multi, width))
    _data_rows(rows, table)
    return table


def _folder_csvs(folder):
    """The CollectedData CSV of ``folder`` itself, else of each of its (or its ``labeled-data``
    folder's) subfolders."""
    own = sorted(glob.glob(os.path.join(glob.escape(folder), _CSV_PATTERN)))
    if own:
        subfolders = [folder]
    else:
        base = os.path.join(folder, "labeled-data")
        base = base if os.path.isdir(base) else folder
        subfolders = sorted(os.path.join(base, n) for n in os.listdir(base)
                            if os.path.isdir(os.path.join(base, n)))  # fmt: skip
    found = []
    for sub in subfolders:
        files = sorted(glob.glob(os.path.join(glob.escape(sub), _CSV_PATTERN)))
        if len(files) > 1:
            raise UserError(f"{sub} holds {len(files)} {_CSV_PATTERN} files "
                            f"({', '.join(os.path.basename(f) for f in files)}): give one of "
                            "them as the source")  # fmt: skip
        found += files
    if not found:
        raise UserError(f"{folder}: no {_CSV_PATTERN} in it or in its labeled-data folders")
    return found


def find_csv_files(sources):
    """The CSV files named by ``sources`` (files, labeled-data folders, project folders), each
    once, in the order given.

    Raises:
        UserError: a source does not exist, is not a CSV file, or a folder holds none.
    """
    found = []
    for source in sources:
        source = os.fspath(source)
        if os.path.isdir(source):
            files = _folder_csvs(source)
        elif os.path.isfile(source):
            if not source.lower().endswith(".csv"):
                raise UserError(f"{source} is not a .csv file (DeepLabCut's CollectedData_*.csv)")
            files = [source]
        else:
            raise UserError(f"DeepLabCut source not found: {source}")
        for path in files:
            if os.path.abspath(path) not in {os.path.abspath(p) for p in found}:
                found.append(path)
    if not found:
        raise UserError("no DeepLabCut source given")
    return found


def _name_list(data, key, path, required=True):
    value = data.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise DLCFormatError(f"DeepLabCut config {path}: {key!r} must be a list of body part "
                             f"names, found {value!r}")  # fmt: skip
    return list(value)


def read_dlc_config(path):
    """Reads the body parts, the unique body parts, the skeleton and the task name of a
    DeepLabCut project ``config.yaml``.

    Raises:
        UserError: the file is missing; ``DLCFormatError``: not YAML, a key of the wrong type,
            a skeleton entry that is not a pair of its body parts (naming the file and the key).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"DeepLabCut config not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DLCFormatError(f"DeepLabCut config {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise DLCFormatError(f"DeepLabCut config {path} must hold a mapping")
    if data.get("multianimalproject") or data.get("bodyparts") == "MULTI!":
        parts = _name_list(data, "multianimalbodyparts", path)
        unique = [u for u in _name_list(data, "uniquebodyparts", path, False) if u not in parts]
    else:
        parts, unique = _name_list(data, "bodyparts", path), []
    skeleton = []
    for k, pair in enumerate(data.get("skeleton") or []):
        ok = isinstance(pair, (list, tuple)) and len(pair) == 2
        if not ok or any(p not in parts + unique for p in pair):
            raise DLCFormatError(f"DeepLabCut config {path}: skeleton entry {k} {pair!r} is not "
                                 "a pair of its body parts")  # fmt: skip
        skeleton.append((pair[0], pair[1]))
    return DLCConfig(path, str(data.get("Task") or ""), parts, unique, skeleton)


# ---------------------------------------------------------------- keypoints, flip pairs


def keypoint_names(tables, config=None, single="object"):
    """The keypoint names in output order: the config's (body parts, then unique ones unless
    ``single='skip'``), else the CSVs' in order of appearance (animal ones, then ``single``'s).

    Raises:
        DLCFormatError: a CSV body part is not in the config (naming the CSV, row and column).
    """
    if config is not None:
        known = config.bodyparts + config.unique
        for table in tables:
            for j, (_, part) in enumerate(table.columns):
                if part not in known:
                    raise DLCFormatError(
                        f"{table.path} row {table.bodyparts_row} column {table.width + 2 * j + 1}"
                        f": body part {part!r} is not in the config {config.path} "
                        f"({', '.join(known)})"
                    )
        return list(config.bodyparts) + ([] if single == "skip" else list(config.unique))
    animal, unique = [], []
    for table in tables:
        for individual, part in table.columns:
            target = unique if individual == SINGLE else animal
            if part not in target:
                target.append(part)
    if single == "skip":
        return animal
    return animal + [u for u in unique if u not in animal]


def _side_keys(name):
    """``(side, key)`` for each way ``name`` reads as one side of a left/right pair: two names
    pair when their keys are equal and their sides differ."""
    low = name.lower()
    keys = []
    for word, side in (("left", "L"), ("right", "R")):
        if len(low) > len(word) and low.startswith(word):
            keys.append((side, "word^" + low[len(word):]))
        if len(low) > len(word) and low.endswith(word):
            keys.append((side, low[: -len(word)] + "$word"))
    for letter, side in (("l", "L"), ("r", "R")):
        if len(low) > 2 and low[0] == letter and low[1] in _SEPARATORS:
            keys.append((side, "letter^" + low[1:]))
        if len(low) > 2 and low[-1] == letter and low[-2] in _SEPARATORS:
            keys.append((side, low[:-1] + "$letter"))
    return keys


def derive_flip_pairs(names):
    """Index pairs (left, right) of the names that differ only in their side.

    Rule: case-insensitive, the side word ``left`` / ``right`` at the start or the end of the
    name (``leftEar``/``rightEar``, ``Left_hip``/``Right_hip``, ``earLeft``/``earRight``), or the
    side letter ``l`` / ``r`` at the start or the end set off by ``_``, ``-``, ``.`` or a space
    (``L_paw``/``R_paw``, ``paw-l``/``paw-r``; ``lip``/``rip`` do not pair). Each name is in one
    pair at most; pairs come in the order of their left names.
    """
    rights = {}
    for j, name in enumerate(names):
        for side, key in _side_keys(name):
            if side == "R":
                rights.setdefault(key, j)
    pairs, used = [], set()
    for j, name in enumerate(names):
        if j in used:
            continue
        for side, key in _side_keys(name):
            k = rights.get(key)
            if side == "L" and k is not None and k != j and k not in used:
                pairs.append((j, k))
                used |= {j, k}
                break
    return pairs


def parse_flip_pairs(text, names):
    """Index pairs from ``--flip-pairs a:b,c:d`` (``''`` or ``none``: no pair).

    Raises:
        UserError: an item that is not ``a:b``, a name that is not a keypoint, a name in two
            pairs.
    """
    text = (text or "").strip()
    if text.lower() in ("", "none"):
        return []
    pairs, used = [], set()
    for item in text.split(","):
        a, sep, b = (s.strip() for s in item.partition(":"))
        if not sep or not a or not b or a == b:
            raise UserError(f"--flip-pairs: {item.strip()!r} is not a pair 'left:right'")
        for n in (a, b):
            if n not in names:
                raise UserError(f"--flip-pairs: {n!r} is not a keypoint ({', '.join(names)})")
            if n in used:
                raise UserError(f"--flip-pairs: {n!r} is in two pairs")
        used |= {a, b}
        pairs.append((names.index(a), names.index(b)))
    return pairs


# ---------------------------------------------------------------- images and annotations


def box_with_margin(xs, ys, width, height, margin=DEFAULT_MARGIN):
    """``[x, y, w, h]``: the box of the points grown on each side by ``margin`` times its longer
    side (at least ``MIN_PAD`` pixels), clipped to the ``width`` x ``height`` image."""
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    pad = max(margin * max(x1 - x0, y1 - y0), MIN_PAD)
    x0, y0 = max(0.0, x0 - pad), max(0.0, y0 - pad)
    x1, y1 = min(float(width), x1 + pad), min(float(height), y1 + pad)
    return [x0, y0, x1 - x0, y1 - y0]


def _annotation(points, names, width, height, margin):
    """``(annotation or None, points outside the image)`` of one object."""
    keypoints, xs, ys, outside = [], [], [], 0
    for name in names:
        xy = points.get(name)
        if xy is not None and not (0 <= xy[0] <= width and 0 <= xy[1] <= height):
            outside += 1
            xy = None
        if xy is None:
            keypoints += [0, 0, 0]
            continue
        keypoints += [xy[0], xy[1], 2]
        xs.append(xy[0])
        ys.append(xy[1])
    if not xs:
        return None, outside
    box = box_with_margin(xs, ys, width, height, margin)
    ann = {"category_id": 1, "iscrowd": 0, "keypoints": keypoints, "num_keypoints": len(xs),
           "bbox": box, "area": box[2] * box[3]}  # fmt: skip
    return ann, outside


def _image_file(table, row):
    folder = os.path.dirname(os.path.abspath(table.path))
    project = os.path.dirname(os.path.dirname(folder))
    candidates = [os.path.join(folder, row.index.rsplit("/", 1)[-1]),
                  os.path.join(project, *row.index.split("/"))]  # fmt: skip
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise DLCFormatError(f"{table.path} row {row.line}: image {row.index} not found (looked for "
                         f"{' and '.join(dict.fromkeys(candidates))})")  # fmt: skip


def _image_size(path, table, row):
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None or image.ndim < 2:
        raise DLCFormatError(f"{table.path} row {row.line}: {path} cannot be read as an image")
    return int(image.shape[1]), int(image.shape[0])


def relative_path(path, root):
    """``path`` relative to ``root`` with ``/`` when it lies under it, else absolute."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return os.path.abspath(path)
    return rel.replace(os.sep, "/")


def default_root(csv_files):
    """The project folder (the one holding ``labeled-data/``) of the CSVs, their common folder
    when several; a CSV outside that layout counts with its own folder."""
    folders = []
    for path in csv_files:
        folder = os.path.dirname(os.path.abspath(path))
        parent = os.path.dirname(folder)
        folders.append(os.path.dirname(parent) if os.path.basename(parent) == "labeled-data"
                       else folder)  # fmt: skip
    return os.path.commonpath(folders)


def collect_images(tables, names, root, margin=DEFAULT_MARGIN, single="object"):
    """The ``LabeledImage`` of every CSV row (ids and annotation ids from 1, in order) and the
    number of labeled points outside their image (written as unlabeled).

    Raises:
        DLCFormatError: an image is missing, unreadable, or labeled in two rows.
    """
    images, outside, seen = [], 0, {}
    next_ann = 1
    for table in tables:
        folder = os.path.basename(os.path.dirname(os.path.abspath(table.path)))
        for row in table.rows:
            path = _image_file(table, row)
            where = f"{table.path} row {row.line}"
            if os.path.realpath(path) in seen:
                raise DLCFormatError(f"{where}: image {path} is labeled again (first in "
                                     f"{seen[os.path.realpath(path)]})")  # fmt: skip
            seen[os.path.realpath(path)] = where
            width, height = _image_size(path, table, row)
            image = LabeledImage(len(images) + 1, relative_path(path, root), width, height,
                                 folder, [])  # fmt: skip
            for individual, points in row.points.items():
                if individual == SINGLE and single == "skip":
                    continue
                ann, off = _annotation(points, names, width, height, margin)
                outside += off
                if ann is not None:
                    image.annotations.append({"id": next_ann, "image_id": image.id, **ann})
                    next_ann += 1
            images.append(image)
    return images, outside


def split_images(images, val_fraction=0.0, seed=0, val_folders=()):
    """``(train, val)`` lists of images, in their order.

    ``val_folders``: the images of those labeled-data folders are val. ``val_fraction`` > 0:
    round(fraction x N) images (at least 1, at most N - 1), drawn with ``random.Random(seed)``
    from the images sorted by ``file_name`` (the same split for the same files and seed).
    Neither: every image is train.

    Raises:
        UserError: an unknown folder, too few images, or a split that leaves no training image.
    """
    if val_folders:
        known = sorted({im.folder for im in images})
        unknown = [f for f in val_folders if f not in known]
        if unknown:
            raise UserError(f"--val-folders {','.join(unknown)}: not among the labeled-data "
                            f"folders read ({', '.join(known)})")  # fmt: skip
        chosen = {im.id for im in images if im.folder in val_folders}
    elif val_fraction > 0:
        if len(images) < 2:
            raise UserError(f"--val-fraction needs at least 2 images, {len(images)} read")
        count = min(len(images) - 1, max(1, int(val_fraction * len(images) + 0.5)))
        order = sorted(images, key=lambda im: im.file_name)
        random.Random(seed).shuffle(order)
        chosen = {im.id for im in order[:count]}
    else:
        return list(images), []
    train = [im for im in images if im.id not in chosen]
    if not train:
        raise UserError("the split leaves no training image: every folder read is in "
                        "--val-folders")  # fmt: skip
    return train, [im for im in images if im.id in chosen]


# ---------------------------------------------------------------- writing


def coco_json(images, category):
    """The COCO keypoint dict of ``images`` with the one ``category``."""
    return {
        "images": [im.coco() for im in images],
        "annotations": [ann for im in images for ann in im.annotations],
        "categories": [category],
    }


def metainfo_text(name, keypoints, flip_pairs, skeleton):
    """The metainfo YAML (``semipose.common.metainfo``) of the set, pairs by name."""
    data = {"name": name, "keypoints": list(keypoints)}
    if flip_pairs:
        data["flip_pairs"] = [[keypoints[a], keypoints[b]] for a, b in flip_pairs]
    if skeleton:
        data["skeleton"] = [[keypoints[a], keypoints[b]] for a, b in skeleton]
    body = yaml.safe_dump(data, default_flow_style=None, sort_keys=False, width=100)
    return "# keypoint set converted from DeepLabCut labeled data (semipose.tools.convert dlc)\n" \
        + body


def _file_stem(name):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "dlc"


def _skeleton(config, names):
    if config is None:
        return []
    return [(names.index(a), names.index(b)) for a, b in config.skeleton
            if a in names and b in names]  # fmt: skip


def _check_options(margin, val_fraction, val_folders, single):
    if not (math.isfinite(margin) and margin >= 0):
        raise UserError(f"--margin {margin}: expected a number >= 0 (a fraction of the box side)")
    if not (0 <= val_fraction < 1):
        raise UserError(f"--val-fraction {val_fraction}: expected a fraction in [0, 1)")
    if val_fraction > 0 and val_folders:
        raise UserError("give --val-fraction or --val-folders, not both")
    if single not in ("object", "skip"):
        raise UserError(f"--single {single!r}: expected 'object' or 'skip'")


@dataclass
class Conversion:
    """What ``convert_dlc`` wrote: the paths (``val`` None without a split), the keypoint
    names, flip pairs and skeleton (index pairs), the image and object counts, the points
    outside their image, and the root the file names are relative to."""

    metainfo: str
    train: str
    val: object
    name: str
    keypoints: list
    flip_pairs: list
    skeleton: list
    images: tuple
    objects: tuple
    outside: int
    root: str
    sources: list


def convert_dlc(sources, out, *, root=None, config=None, name=None, margin=DEFAULT_MARGIN,
                val_fraction=0.0, seed=0, val_folders=(), flip_pairs=None, single="object"):
    """Converts DeepLabCut labeled data to ``out/train.json`` (+ ``out/val.json``) and
    ``out/<name>.yaml``; every input is read and checked before the first file is written, and
    each file is written atomically.

    Args:
        sources: CSV files, labeled-data folders or project folders (``find_csv_files``).
        out: the output folder.
        root: the folder ``file_name`` is relative to (``DATASET.ROOT``); None: ``default_root``.
        config: a DeepLabCut ``config.yaml`` (body parts, their order, the skeleton), or None.
        name: the set's name (default: the config's ``Task``, else ``dlc``).
        margin: per-side box margin, a fraction of the points' box longer side.
        val_fraction, seed, val_folders: the split (``split_images``).
        flip_pairs: ``'a:b,c:d'`` replacing the derived pairs (``derive_flip_pairs``).
        single: ``'object'`` or ``'skip'``, for the multi-animal ``single`` individual.

    Returns:
        ``Conversion``.

    Raises:
        UserError: bad options or input (``DLCFormatError`` naming the file and row / column).
    """
    _check_options(margin, val_fraction, tuple(val_folders), single)
    csv_files = find_csv_files(sources)
    tables = [read_dlc_csv(p) for p in csv_files]
    cfg = read_dlc_config(config) if config else None
    names = keypoint_names(tables, cfg, single)
    if not names:
        raise DLCFormatError(f"{csv_files[0]}: no body part to convert")
    root = os.path.abspath(root) if root else default_root(csv_files)
    images, outside = collect_images(tables, names, root, margin, single)
    flips = derive_flip_pairs(names) if flip_pairs is None else parse_flip_pairs(flip_pairs, names)
    skeleton = _skeleton(cfg, names)
    train, val = split_images(images, val_fraction, seed, tuple(val_folders))
    set_name = name or (cfg.name if cfg is not None else "") or "dlc"
    category = {"id": 1, "name": set_name, "supercategory": set_name, "keypoints": names,
                "skeleton": [[a + 1, b + 1] for a, b in skeleton]}  # fmt: skip
    paths = {"train": os.path.join(out, "train.json"), "val": os.path.join(out, "val.json"),
             "metainfo": os.path.join(out, f"{_file_stem(set_name)}.yaml")}  # fmt: skip
    texts = {paths["metainfo"]: metainfo_text(set_name, names, flips, skeleton),
             paths["train"]: json.dumps(coco_json(train, category))}  # fmt: skip
    if val:
        texts[paths["val"]] = json.dumps(coco_json(val, category))
    for path, text in texts.items():
        atomic_write_text(path, text)
    return Conversion(
        paths["metainfo"], paths["train"], paths["val"] if val else None, set_name, names, flips,
        skeleton, (len(train), len(val)),
        (sum(len(im.annotations) for im in train), sum(len(im.annotations) for im in val)),
        outside, root, csv_files,
    )  # fmt: skip


def dataset_snippet(result, root_text=None):
    """The YAML lines of the ``DATASET`` (and ``MODEL.NUM_JOINTS``) keys for ``result``."""
    root = root_text or result.root
    keys = {"TRAIN_DATASET": "custom", "TEST_DATASET": "custom", "ROOT": root,
            "METAINFO": relative_path(result.metainfo, result.root),
            "TRAIN_ANN": relative_path(result.train, result.root),
            "VAL_ANN": relative_path(result.val or result.train, result.root)}  # fmt: skip
    text = yaml.safe_dump({"DATASET": keys, "MODEL": {"NUM_JOINTS": len(result.keypoints)}},
                          sort_keys=False, width=1000)  # fmt: skip
    if result.val is None:
        text += "# VAL_ANN is the training json: no split asked (--val-fraction / --val-folders)\n"
    return text


def summary(result, root_text=None):
    """The lines ``main`` prints: what was read and written, and the YAML snippet."""
    names = result.keypoints
    flips = ", ".join(f"{names[a]}/{names[b]}" for a, b in result.flip_pairs) or "none"
    lines = [f"read {len(result.sources)} CSV file(s): {', '.join(result.sources)}",
             f"keypoints ({len(names)}): {', '.join(names)}",
             f"flip pairs: {flips}; skeleton: {len(result.skeleton)} limbs",
             f"wrote {result.metainfo}",
             f"wrote {result.train}: {result.images[0]} images, {result.objects[0]} objects"]
    if result.val:
        lines.append(f"wrote {result.val}: {result.images[1]} images, {result.objects[1]} "
                     "objects")  # fmt: skip
    stale = os.path.join(os.path.dirname(result.train), "val.json")
    if result.val is None and os.path.exists(stale):
        lines.append(f"note: {stale} is from an earlier run (no split this time): left as it is")
    if result.outside:
        lines.append(f"note: {result.outside} labeled points outside their image were written "
                     "as unlabeled (v = 0)")  # fmt: skip
    lines += ["", "config keys (file names are relative to ROOT):", "",
              dataset_snippet(result, root_text).rstrip()]  # fmt: skip
    return lines


# ---------------------------------------------------------------- command line


def _add_dlc(subparsers):
    parser = subparsers.add_parser(
        "dlc", help="DeepLabCut labeled data (CollectedData_*.csv)",
        description="DeepLabCut labeled data to COCO-format json + metainfo YAML",
    )  # fmt: skip
    parser.add_argument("sources", nargs="+", help="CollectedData_*.csv files, labeled-data "
                        "folders or DeepLabCut project folders")  # fmt: skip
    parser.add_argument("--out", required=True, help="output folder (train.json, val.json, "
                        "<name>.yaml)")  # fmt: skip
    parser.add_argument("--root", default=None, help="DATASET.ROOT: file names are written "
                        "relative to it (default: the project folder holding labeled-data/)")
    parser.add_argument("--config", default=None, help="DeepLabCut config.yaml (body parts, "
                        "their order, skeleton)")  # fmt: skip
    parser.add_argument("--name", default=None, help="set name (default: the config's Task)")
    parser.add_argument("--margin", type=float, default=DEFAULT_MARGIN, help="box margin per "
                        "side, fraction of the points' box longer side (default 0.1)")
    parser.add_argument("--flip-pairs", default=None, help="'a:b,c:d' (or 'none') replacing "
                        "the pairs derived from left/right names")  # fmt: skip
    parser.add_argument("--single", choices=("object", "skip"), default="object",
                        help="the multi-animal 'single' individual: one more object (default) "
                        "or left out with its body parts")  # fmt: skip
    split = parser.add_mutually_exclusive_group()
    split.add_argument("--val-fraction", type=float, default=0.0, help="fraction of the "
                       "images for val.json, drawn with --seed")  # fmt: skip
    split.add_argument("--val-folders", default="", help="comma-separated labeled-data "
                       "folders for val.json")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of --val-fraction")
    parser.set_defaults(run=_run_dlc)


def _run_dlc(args):
    folders = [f.strip() for f in args.val_folders.split(",") if f.strip()]
    result = convert_dlc(args.sources, args.out, root=args.root, config=args.config,
                         name=args.name, margin=args.margin, val_fraction=args.val_fraction,
                         seed=args.seed, val_folders=folders, flip_pairs=args.flip_pairs,
                         single=args.single)  # fmt: skip
    print("\n".join(summary(result, args.root)))
    return 0


#: Format name -> the function adding its sub-command (which sets ``run``) to the subparsers.
FORMATS = {"dlc": _add_dlc}


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m semipose.tools.convert",
        description="convert another tool's keypoint labels to COCO-format json + metainfo YAML",
    )
    subparsers = parser.add_subparsers(dest="format", metavar="FORMAT", required=True)
    for add in FORMATS.values():
        add(subparsers)
    return parser


def main(argv=None):
    """Entry point; returns the exit status (0 written; bad input raises ``UserError``, exit 2
    under ``run_cli``)."""
    args = _parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(run_cli(main))
