"""Checks annotation files the way training, ``valid.py`` and ``infer.py`` load them, and lists
every defect with its count, its first record and its rule (``semipose.dataset.annotations``).

Usage::

    python -m semipose.tools.check_dataset --cfg FILE [KEY VALUE ...]
    python -m semipose.tools.check_dataset --ann FILE [--images DIR] [--num-joints K] [--train]

With ``--cfg`` the training and the test datasets of the config are built (the checks run in
their loaders, so every registered dataset is covered; a set of 0 samples is an error naming its
file and categories) and every image of a COCO-format set (COCO, custom) is opened: unreadable
files and sizes other than the json's are errors; with ``--ann`` one file is checked (a COCO
keypoint json, an AI Challenger list or an MPII list, told apart by their content). Exit status:
0 when the files are clean or hold only defects that are repaired on load (each listed as
``repaired:``), 2 when one is refused (listed as ``error:``; training and evaluation stop on it).
"""

import argparse
import logging
import sys

from semipose.common.errors import UserError, run_cli
from semipose.common.io import read_json
from semipose.config import load_config
from semipose.dataset.annotations import (
    check_aic,
    check_coco,
    check_image_files,
    check_mpii,
    collect_reports,
)
from semipose.dataset.build import build_dataset

__all__ = ["check_config", "check_file", "main"]


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m semipose.tools.check_dataset",
        description="check keypoint annotation files (exit 0: clean or repaired, 2: refused)",
    )
    parser.add_argument("--cfg", default="", help="experiment YAML: check its train and test sets")
    parser.add_argument("--ann", default="", help="one annotation file (COCO json, AIC, MPII)")
    parser.add_argument("--images", default="", help="image folder of --ann (file presence)")
    parser.add_argument("--num-joints", type=int, default=None, help="joints per person")
    parser.add_argument(
        "--train", action="store_true", help="--ann: missing images are dropped (training)"
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser


def check_file(path, *, images="", num_joints=None, train=False):
    """The report of one annotation file.

    Args:
        path: the json file.
        images: its image folder ('' skips the file presence check).
        num_joints: joints per person (None: any multiple of 3 for COCO; 14 AIC, 16 MPII).
        train: missing image files are repaired (dropped) rather than refused.

    Returns:
        ``AnnotationReport``.
    """
    data = read_json(path, "annotation file")
    if isinstance(data, list) and data and isinstance(data[0], dict):
        if "keypoint_annotations" in data[0]:
            report = check_aic(data, path=path, num_joints=num_joints or 14)
            files = [(r["image_id"], f"{r['image_id']}.jpg") for r in data]
        else:
            report = check_mpii(data, path=path, num_joints=num_joints or 16)
            files = [(n, n) for n in sorted({r.get("image") for r in data if "image" in r})]
    else:
        report = check_coco(data, path=path, num_joints=num_joints)
        files = [(i["id"], i.get("file_name") or f"{i['id']:012d}.jpg") for i in data["images"]]
    check_image_files(report, files, images, train=train)
    return report


def image_problems(dataset, limit=5):
    """What training would meet reading the images of a COCO-format ``dataset`` (a set with a
    ``coco`` index, the labeled part of a mixed set included): files that cannot be opened as an
    image, and sizes other than the json's ``width`` / ``height``. Reads only each file's header.

    Returns:
        list of lines, ``'<json>: N images ...: <first ones>'``; empty when every image is fine.
    """
    from PIL import Image

    ds = getattr(dataset, "labeled", dataset)
    coco = getattr(ds, "coco", None)
    if coco is None or getattr(ds, "data_format", "") == "zip":
        return []
    unreadable, sizes = [], []
    for index, img in coco.imgs.items():
        path = ds.image_path_from_index(index)
        try:
            with Image.open(path) as im:
                width, height = im.size
        except (OSError, ValueError) as exc:
            unreadable.append(f"{path} ({type(exc).__name__}: {exc})")
            continue
        want = (img.get("width"), img.get("height"))
        if None not in want and (width, height) != tuple(int(v) for v in want):
            sizes.append(f"{path} is {width}x{height}, the json says {want[0]}x{want[1]}")
    lines = []
    for what, found in (("cannot be read as images", unreadable),
                        ("have another size than the json's width/height", sizes)):
        if found:
            more = f" and {len(found) - limit} more" if len(found) > limit else ""
            lines.append(f"error: {ds.ann_file}: {len(found)} images {what}: "
                         f"{'; '.join(found[:limit])}{more}")
    return lines


def check_config(cfg, problems=None):
    """The reports of the config's training and test datasets (built with the checks collected).

    Args:
        cfg: the config.
        problems: a list that receives ``image_problems`` of each set built (None: not checked).

    Returns:
        list of ``AnnotationReport``, one per annotation file read (duplicates removed).
    """
    reports = []
    for is_train in (True, False):
        with collect_reports() as found:
            try:
                dataset = build_dataset(cfg, is_train)
            except Exception:
                # a refused defect may break the loader after its check: the report says why
                if not any(r.refusals() for r in found):
                    raise
                dataset = None
        reports += [r for r in found if r.path not in {p.path for p in reports}]
        if problems is not None and dataset is not None:
            problems += [line for line in image_problems(dataset) if line not in problems]
    return reports


def main(argv=None):
    """Entry point; returns the exit status (0 clean or repaired, 2 refused)."""
    args = _parser().parse_args(argv)
    if bool(args.cfg) == bool(args.ann):
        raise UserError("give either --cfg FILE [KEY VALUE ...] or --ann FILE")
    logging.basicConfig(level=logging.ERROR, format="%(message)s")
    problems = []
    if args.cfg:
        reports = check_config(load_config(args.cfg, args.opts), problems)
    else:
        reports = [check_file(args.ann, images=args.images, num_joints=args.num_joints,
                              train=args.train)]  # fmt: skip
    for report in reports:
        print("\n".join(report.summary()))
    for line in problems:
        print(line)
    refused = sum(len(r.refusals()) for r in reports) + len(problems)
    repaired = sum(len(r.repairs()) for r in reports)
    print(f"{len(reports)} files: {refused} refused defects, {repaired} repaired defects")
    return 2 if refused else 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
