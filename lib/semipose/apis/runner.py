"""The command line of ``pose_estimation/infer.py``: pose on image files, folders or a video.

    python pose_estimation/infer.py --cfg <yaml> --model-file <checkpoint> \\
        --images <DIR|FILE> [...] | --video <FILE> \\
        [--bbox-file <detections.json> | --gt-ann <annotations.json> | --detector <weights.pth>
         | --whole-image] [--out DIR] [KEY VALUE ...]

Writes into ``--out``: each image with the skeletons drawn (same file name), ``<video>_pose.mp4``
for a video, ``keypoints_results.json`` (COCO keypoint results) and ``images.json`` (the COCO
``images`` list of the inputs, giving each ``image_id`` its file). Inputs that fail (missing,
unreadable, no boxes known) are reported and skipped; the others still run.
"""
import argparse
import logging
import os
import re
import sys
import time

import cv2
import numpy as np

from semipose.apis.boxes import (
    DETECTOR_ARCHS,
    AnnotationBoxes,
    DetectionJsonBoxes,
    TorchvisionPersonDetector,
    WholeImageBoxes,
    image_id_from_name,
)
from semipose.apis.inference import HEADS, inference_topdown, init_model, oks_nms_poses, read_image
from semipose.common.errors import UserError
from semipose.common.io import atomic_write_json
from semipose.utils.vis import draw_predictions, unique_output_path

__all__ = [
    "IMAGE_EXTENSIONS",
    "build_box_source",
    "collect_images",
    "main",
    "parse_args",
    "run",
    "split_overrides",
]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
RESULTS_NAME = "keypoints_results.json"
# Errors of one input (image, frame, its boxes) that skip it and let the others run.
_INPUT_ERRORS = (OSError, ValueError, UserError, cv2.error)
IMAGES_NAME = "images.json"


def parse_args(argv=None):
    """Parses infer.py's command line; returns the argparse namespace."""
    p = argparse.ArgumentParser(
        description="Draw the poses a semipose model predicts on images or a video",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--cfg", required=True, help="experiment YAML the model was trained with")
    p.add_argument(
        "--model-file", default="",
        help="checkpoint; default TEST.MODEL_FILE, else the run's final_state.pth.tar under "
        "OUTPUT_DIR/<dataset>/<model>/<cfg name>",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", nargs="+", metavar="DIR|FILE", help="image files or folders")
    src.add_argument("--video", metavar="FILE", help="a video file")
    p.add_argument("--out", default="output/infer", help="output folder")
    p.add_argument("--net", choices=HEADS, default="ensemble", help="PoseDual heatmaps to read")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: DEVICE)")
    p.add_argument("--limit", type=int, default=0, help="only the first N images (0: all)")
    boxes = p.add_argument_group("person boxes (default: the whole image)")
    box_src = boxes.add_mutually_exclusive_group()
    box_src.add_argument(
        "--bbox-file", metavar="JSON",
        help="COCO detection results (TEST.COCO_BBOX_FILE format)",
    )
    box_src.add_argument("--gt-ann", metavar="JSON", help="COCO annotation json: its GT boxes")
    box_src.add_argument(
        "--detector", metavar="WEIGHTS",
        help="torchvision detector weights file, e.g. fasterrcnn_resnet50_fpn_coco-258fb6c6.pth",
    )
    box_src.add_argument("--whole-image", action="store_true", help="one box = the whole image")
    boxes.add_argument(
        "--bbox-thr", type=float, default=None,
        help="minimum detection score for --bbox-file (default TEST.IMAGE_THRE)",
    )
    boxes.add_argument(
        "--ann-file", metavar="JSON",
        help="with --bbox-file: COCO annotation json whose 'images' map file names to ids",
    )
    boxes.add_argument("--detector-arch", choices=DETECTOR_ARCHS, default=None,
                       help="default: told from the weights file name")
    boxes.add_argument("--detector-thr", type=float, default=0.5, help="minimum person score")
    test = p.add_argument_group("decoding and drawing")
    test.add_argument("--flip-test", action="store_true", help="TEST.FLIP_TEST True")
    test.add_argument("--post-type", choices=("shift", "dark"), default=None,
                      help="default TEST.POST_TYPE")
    test.add_argument("--oks-thre", type=float, default=None,
                      help="OKS-NMS threshold (default TEST.OKS_THRE; 1 keeps every pose)")
    test.add_argument("--kpt-thr", type=float, default=0.3, help="joints drawn above this score")
    test.add_argument("--no-draw", action="store_true", help="write only the results json")
    test.add_argument("--batch-size", type=int, default=0, help="crops per forward pass")
    p.add_argument("--traceback", action="store_true", help="show the traceback of an error")
    p.epilog = "Trailing KEY VALUE pairs override the YAML (e.g. TEST.FLIP_TEST True)."
    argv = list(sys.argv[1:] if argv is None else argv)
    flags, opts = split_overrides(p, argv)
    args = p.parse_args(flags)
    args.opts = opts
    return args


_KEY = re.compile(r"[A-Z][A-Z0-9_]*(\.[A-Za-z0-9_]+)*")


def _is_key(token, top_keys):
    return bool(_KEY.fullmatch(token)) and token.split(".")[0] in top_keys


def split_overrides(parser, argv):
    """Splits ``argv`` into parser flags and ``KEY VALUE`` config overrides.

    A token is an override key when it looks like one (``TEST.FLIP_TEST``) and its first part is a
    top-level config key; flags may come before, between or after the overrides, and a
    many-valued flag (``--images a b``) ends at the next flag or override key.

    Returns:
        ``(flags, opts)``: tokens for ``parser.parse_args`` and the override tokens.
    """
    from semipose.config import get_cfg
    from semipose.engine.cli import flag_arity, take_flag

    top_keys = set(get_cfg().keys())
    arity = flag_arity(parser)
    flags, opts = [], []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token.startswith("-") and len(token) > 1:
            tokens, i = take_flag(parser, arity, argv, i, stop=lambda t: _is_key(t, top_keys))
            flags += tokens
        elif _is_key(token, top_keys):
            opts.extend(argv[i : i + 2])
            i += 2
        else:
            flags.append(token)  # argparse names it as an unrecognised argument
            i += 1
    return flags, opts


def collect_images(entries, limit=0):
    """Image files of ``entries`` (files, or folders listed in name order), and the problems.

    Returns:
        ``(files, problems)``: paths to try, and one message per missing path or empty folder.
        A listed file is kept whatever its extension (reading tells whether it is an image).
    """
    files, problems = [], []
    for entry in entries:
        if os.path.isdir(entry):
            found = sorted(
                os.path.join(entry, n)
                for n in os.listdir(entry)
                if n.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(entry, n))
            )
            if not found:
                problems.append(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in folder {entry}")
            files += found
        elif os.path.isfile(entry):
            files.append(entry)
        else:
            problems.append(f"image not found: {entry}")
    if limit > 0:
        files = files[:limit]
    return files, problems


def build_box_source(args, cfg, device=None):
    """The box source the flags ask for (the whole image when none does)."""
    if args.bbox_file:
        thr = cfg.TEST.IMAGE_THRE if args.bbox_thr is None else args.bbox_thr
        return DetectionJsonBoxes(args.bbox_file, score_thr=thr, ann_file=args.ann_file)
    if args.gt_ann:
        return AnnotationBoxes(args.gt_ann)
    if args.detector:
        return TorchvisionPersonDetector(
            args.detector, arch=args.detector_arch, score_thr=args.detector_thr, device=device
        )
    return WholeImageBoxes()


def _default_model_file(cfg, cfg_path):
    from semipose.config import get_model_name
    from semipose.utils.logger import output_subdirs

    dataset, model, cfg_name = output_subdirs(cfg, cfg_path, model_name=get_model_name(cfg)[0])
    return os.path.join(cfg.OUTPUT_DIR or "output", dataset, model, cfg_name, "final_state.pth.tar")


def _model_file(args, cfg):
    if args.model_file:
        return args.model_file
    if cfg.TEST.MODEL_FILE:
        return cfg.TEST.MODEL_FILE
    path = _default_model_file(cfg, args.cfg)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no model file: {path} does not exist (train first, or pass --model-file)"
        )
    return path


def _assign_ids(files, source):
    """``(lookup ids, output ids)`` of image files.

    A lookup id is the box source's id of the file (its annotation ``images`` entry or the number in
    a COCO-style name), or None. The output id (``image_id`` of the results) is the lookup id when
    there is one and no earlier file took it, else a new number above all of them.
    """
    resolve = getattr(source, "resolve_id", None)
    found = [resolve(file_name=f) if resolve else image_id_from_name(f) for f in files]
    numbers = [i for i in found if isinstance(i, int)]
    next_id = max(numbers, default=0) + 1
    used, ids = set(), []
    for image_id in found:
        if image_id is None or image_id in used:
            image_id, next_id = next_id, next_id + 1
        used.add(image_id)
        ids.append(image_id)
    return found, ids


def _predict(model, image, source, image_id, name, oks_thre, batch_size):
    """Boxes, poses and OKS-NMS of one image; returns ``(number of unusable boxes, poses)``."""
    boxes = source(image, image_id=image_id, file_name=name)
    poses = inference_topdown(model, image, boxes, batch_size=batch_size, image_name=name)
    skipped = len(boxes) - len(poses)
    sigmas = model.layout.sigmas
    if sigmas is not None:
        poses = oks_nms_poses(poses, oks_thre, sigmas=sigmas)
    return skipped, poses


#: files that mark a training run's folder
_RUN_MARKERS = ("run.lock", "metrics.jsonl", "checkpoint.pth.tar", "final_state.pth.tar")


def output_folder(out):
    """The folder infer.py writes into: ``out``, or, when ``out`` holds a training run,
    ``out/infer_<YYYYmmdd-HHMMSS>`` (infer.py never writes among a training run's files).

    Raises:
        UserError: the folder cannot be created or written (the OS reason named).
    """
    if any(os.path.exists(os.path.join(out, name)) for name in _RUN_MARKERS):
        out = os.path.join(out, f"infer_{time.strftime('%Y%m%d-%H%M%S')}")
        logger.info("--out holds a training run: writing into %s", out)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot create the folder: {exc.strerror or exc}") from None
    return out


def _write_json(path, obj):
    atomic_write_json(path, obj)


def _progress(total, desc):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", dynamic_ncols=True, disable=None)


def run_images(model, files, source, out_dir, *, kpt_thr=0.3, oks_thre=None, draw=True,
               batch_size=None):
    """Runs the model on image files; returns ``(results, images, counts)``.

    ``results`` is the COCO keypoint-results list, ``images`` the COCO ``images`` list, ``counts``
    a dict with ``images`` (done), ``failed``, ``persons``, ``skipped_boxes`` and ``drawn`` (paths).
    """
    from tqdm.contrib.logging import logging_redirect_tqdm

    lookup, ids = _assign_ids(files, source)
    results, images, drawn = [], [], []
    counts = {"images": 0, "failed": 0, "persons": 0, "skipped_boxes": 0}
    taken = set()
    with logging_redirect_tqdm(), _progress(len(files), "pose") as bar:
        for path, key, image_id in zip(files, lookup, ids):
            try:
                image = read_image(path)
                skipped, poses = _predict(model, image, source, key, path, oks_thre, batch_size)
            except _INPUT_ERRORS as exc:
                logger.error("skipped %s: %s", path, exc)
                counts["failed"] += 1
                bar.update(1)
                continue
            counts["skipped_boxes"] += skipped
            counts["images"] += 1
            counts["persons"] += len(poses)
            height, width = image.shape[:2]
            images.append(
                {"id": image_id, "file_name": os.path.basename(path), "width": width,
                 "height": height, "path": os.path.abspath(path)}
            )  # fmt: skip
            results += [p.to_coco(image_id) for p in poses]
            if draw:
                out = unique_output_path(out_dir, os.path.basename(path), taken)
                if cv2.imwrite(out, draw_predictions(image, poses, model.layout, kpt_thr)):
                    drawn.append(out)
                else:
                    logger.error("cannot write %s", out)
            bar.update(1)
    counts["drawn"] = drawn
    return results, images, counts


def _video_frame(model, frame, source, frame_idx, name, settings, counts, images):
    """Predicts one video frame, updating ``counts`` and ``images``; returns its poses."""
    oks_thre, batch_size = settings
    try:
        skipped, poses = _predict(model, frame, source, frame_idx, name, oks_thre, batch_size)
    except _INPUT_ERRORS as exc:
        logger.error("frame %d: %s", frame_idx, exc)
        counts["failed"] += 1
        skipped, poses = 0, []
    counts["images"] += 1
    counts["persons"] += len(poses)
    counts["skipped_boxes"] += skipped
    height, width = frame.shape[:2]
    images.append({"id": frame_idx, "file_name": name, "width": width, "height": height})
    return poses


def run_video(model, video, source, out_dir, *, kpt_thr=0.3, oks_thre=None, batch_size=None):
    """Runs the model on each frame of a video; frame k (from 0) has image id k.

    Writes ``<out_dir>/<video stem>_pose.mp4`` (mp4v; MJPG ``.avi`` when mp4v is unavailable).

    Returns:
        ``(results, images, counts)`` as ``run_images``; ``counts['drawn']`` holds the video path.

    Raises:
        FileNotFoundError: the video does not exist.
        ValueError: it cannot be opened or holds no frame.
    """
    from tqdm.contrib.logging import logging_redirect_tqdm

    if not os.path.isfile(video):
        raise FileNotFoundError(f"video not found: {video}")
    cap = cv2.VideoCapture(video)
    if not cap.isOpened():
        raise ValueError(f"cannot open video {video}: not a video file, or an unsupported codec")
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = fps if fps and np.isfinite(fps) and fps > 0 else 25.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    stem = os.path.splitext(os.path.basename(video))[0]
    writer, out_path = None, None
    results, images = [], []
    counts = {"images": 0, "failed": 0, "persons": 0, "skipped_boxes": 0}
    try:
        with logging_redirect_tqdm(), _progress(total, "frames") as bar:
            frame_idx = 0
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                poses = _video_frame(
                    model, frame, source, frame_idx, f"{stem}#{frame_idx}",
                    (oks_thre, batch_size), counts, images,
                )
                height, width = frame.shape[:2]
                results += [p.to_coco(frame_idx) for p in poses]
                if writer is None:
                    writer, out_path = _open_writer(out_dir, stem, fps, (width, height))
                writer.write(draw_predictions(frame, poses, model.layout, kpt_thr))
                frame_idx += 1
                bar.update(1)
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    if counts["images"] == 0:
        raise ValueError(f"no frame could be read from {video}")
    if total and counts["images"] < total:
        logger.warning("%s: its header announces %d frames but only %d could be read (a truncated "
                       "or damaged file?)", video, total, counts["images"])
        counts["frames_expected"] = total
    counts["drawn"] = [out_path]
    return results, images, counts


def _open_writer(out_dir, stem, fps, size):
    for fourcc, ext in (("mp4v", ".mp4"), ("MJPG", ".avi")):
        path = os.path.join(out_dir, f"{stem}_pose{ext}")
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if writer.isOpened():
            return writer, path
        writer.release()
    raise OSError(f"cannot open a video writer in {out_dir} (neither mp4v nor MJPG)")


def run(args):
    """Runs infer.py with parsed ``args``.

    Returns:
        dict: ``images``, ``failed``, ``persons``, ``skipped_boxes``, ``seconds``, ``drawn``
        (paths), ``results_file``, ``images_file``, ``problems`` (input messages) and ``ok``
        (True when every input was processed).
    """
    from semipose.config import load_config

    start = time.perf_counter()
    opts = list(args.opts or [])
    cfg = load_config(args.cfg, opts)
    model_file = _model_file(args, cfg)
    model = init_model(
        cfg, model_file, device=args.device, net=args.net,
        flip_test=True if args.flip_test else None, post_type=args.post_type,
    )
    logger.info("model: %s (%s, heatmaps: %s) on %s", model_file, cfg.MODEL.NAME, model.head,
                model.device)
    source = build_box_source(args, cfg, device=model.device)
    logger.info("boxes: %s", source.describe())
    oks_thre = model.oks_thre if args.oks_thre is None else args.oks_thre
    args.out = output_folder(args.out)
    common = dict(kpt_thr=args.kpt_thr, oks_thre=oks_thre, batch_size=args.batch_size or None)

    problems = []
    if args.video:
        results, images, counts = run_video(model, args.video, source, args.out, **common)
    else:
        files, problems = collect_images(args.images, args.limit)
        for msg in problems:
            logger.error(msg)
        results, images, counts = run_images(
            model, files, source, args.out, draw=not args.no_draw, **common
        )
    results_file = os.path.join(args.out, RESULTS_NAME)
    images_file = os.path.join(args.out, IMAGES_NAME)
    _write_json(results_file, results)
    _write_json(images_file, images)
    summary = {
        **counts,
        "seconds": time.perf_counter() - start,
        "results_file": results_file,
        "images_file": images_file,
        "problems": problems,
        "ok": counts["failed"] == 0 and not problems and counts["images"] > 0,
    }
    return summary


def format_summary(summary, video=False):
    """The one-line summary infer.py prints."""
    unit = "frames" if video else "images"
    failed = summary["failed"] + len(summary["problems"])
    line = (
        f"infer: {summary['images']} {unit}, {summary['persons']} persons, "
        f"{summary['seconds']:.1f} s"
    )
    if failed:
        line += f"; {failed} inputs failed"
    if summary["skipped_boxes"]:
        line += (f"; {summary['skipped_boxes']} boxes skipped (no area or outside the image; "
                 "each named in a warning)")
    if summary.get("frames_expected"):
        line += f"; only {summary['images']} of the {summary['frames_expected']} frames the " \
                "video header announces could be read"
    line += f"; results {summary['results_file']}"
    if summary["drawn"]:
        drawn = summary["drawn"][0] if video else os.path.dirname(summary["drawn"][0])
        line += f"; drawn {drawn}"
    return line


def main(argv=None):
    """Entry point of ``pose_estimation/infer.py``; returns the exit status.

    0: every input processed; 1: some inputs failed (the others were processed); 2: nothing could
    be processed (no input, or the model or the box source could not be set up), with one
    ``error: ...`` line on stderr as the other entry points (``--traceback`` shows the traceback).
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)-15s %(levelname)s %(message)s")
    args = parse_args(argv)
    try:
        summary = run(args)
    except (UserError, OSError, ValueError, KeyError) as exc:
        if args.traceback:
            raise
        text = " ".join(str(exc).split()) or type(exc).__name__
        print(f"error: {text}", file=sys.stderr)
        return 2
    print(format_summary(summary, video=bool(args.video)))
    if summary["drawn"] and not args.video:
        print(f"first drawn image: {summary['drawn'][0]}")
    if summary["images"] == 0:
        return 2
    return 0 if summary["ok"] else 1
