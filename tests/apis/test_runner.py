"""infer.py: drawn images, COCO results, a video round trip, and bad inputs that do not stop it."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from semipose.apis.runner import collect_images, main, parse_args

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(synth_root, dual_checkpoint, tmp_path):
    """``run(*flags) -> (status, out dir)`` of infer.py's main on the tiny model."""
    opts, ckpt = dual_checkpoint

    def run(*flags, out=None):
        out = out or tmp_path / "out"
        argv = ["--cfg", "", "--model-file", str(ckpt), "--out", str(out), "--device", "cpu",
                *flags, *opts]  # fmt: skip
        return main(argv), out

    return run


def _val(synth_root):
    return synth_root / "coco/images/val2017"


def _gt(synth_root):
    return synth_root / "coco/annotations/person_keypoints_val2017.json"


def test_images_folder_with_gt_boxes(cli, synth_root, capsys):
    status, out = cli("--images", str(_val(synth_root)), "--gt-ann", str(_gt(synth_root)),
                      "--oks-thre", "1.0")  # fmt: skip
    assert status == 0
    printed = capsys.readouterr().out
    ann = json.loads(_gt(synth_root).read_text())
    n_images, n_people = len(ann["images"]), len(ann["annotations"])
    assert f"infer: {n_images} images, {n_people} persons" in printed
    assert "first drawn image:" in printed
    for img in ann["images"]:
        drawn = cv2.imread(str(out / img["file_name"]))
        src = cv2.imread(str(_val(synth_root) / img["file_name"]))
        assert drawn.shape == src.shape and np.any(drawn != src)
    results = json.loads((out / "keypoints_results.json").read_text())
    assert len(results) == n_people
    assert {r["image_id"] for r in results} == {i["id"] for i in ann["images"]}
    assert all(len(r["keypoints"]) == 51 and r["category_id"] == 1 for r in results)
    images = json.loads((out / "images.json").read_text())
    assert [i["id"] for i in images] == [i["id"] for i in ann["images"]]


def test_bad_inputs_are_reported_and_the_rest_runs(cli, synth_root, tmp_path, caplog):
    good = sorted(_val(synth_root).glob("*.jpg"))[:2]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for p in good:
        shutil.copy(p, inputs / p.name)
    (inputs / "notes.jpg").write_text("not an image")
    empty = tmp_path / "empty"
    empty.mkdir()
    # Detections: one box per good image, plus one box lying outside the first image.
    dets = [{"image_id": int(p.stem), "category_id": 1, "bbox": [10, 5, 60, 100], "score": 0.9}
            for p in good]  # fmt: skip
    dets.append({"image_id": int(good[0].stem), "category_id": 1, "bbox": [500, 400, 30, 30],
                 "score": 0.8})  # fmt: skip
    det_file = tmp_path / "dets.json"
    det_file.write_text(json.dumps(dets))
    with caplog.at_level("WARNING"):
        status, out = cli("--images", str(inputs), str(tmp_path / "missing.jpg"), str(empty),
                          "--bbox-file", str(det_file))  # fmt: skip
    assert status == 1
    log = caplog.text
    assert f"image not found: {tmp_path / 'missing.jpg'}" in log
    assert "no images" in log and str(empty) in log
    assert "cannot read image" in log and "notes.jpg" in log
    assert "box 1 [500, 400, 30, 30] lies outside the 160x120 image; skipped" in log
    results = json.loads((out / "keypoints_results.json").read_text())
    assert sorted({r["image_id"] for r in results}) == sorted(int(p.stem) for p in good)
    assert len(results) == 2
    assert sorted(p.name for p in out.glob("*.jpg")) == sorted(p.name for p in good)


def test_nothing_to_do_and_setup_errors_exit_2(cli, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    status, _ = cli("--images", str(empty))
    assert status == 2
    weights = tmp_path / "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth"
    status, _ = cli("--images", str(empty), "--detector", str(weights))
    err = capsys.readouterr().err
    assert status == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: person detector weights not found: ") and str(weights) in last
    assert "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth" in err


def test_collect_images_limit_and_order(synth_root, tmp_path):
    files, problems = collect_images([str(_val(synth_root))], limit=2)
    names = sorted(p.name for p in _val(synth_root).glob("*.jpg"))
    assert [Path(f).name for f in files] == names[:2] and problems == []


def test_flags_and_overrides_in_any_order():
    argv = ["--cfg", "x.yaml", "--images", "a.jpg", "b", "TEST.FLIP_TEST", "True", "--net", "net2",
            "TRAIN.LR", "-1e-3", "--bbox-thr", "-1"]  # fmt: skip
    args = parse_args(argv)
    assert args.images == ["a.jpg", "b"] and args.net == "net2" and args.bbox_thr == -1.0
    assert args.opts == ["TEST.FLIP_TEST", "True", "TRAIN.LR", "-1e-3"]


def test_video_round_trip(cli, synth_root, tmp_path, capsys):
    frames = [cv2.imread(str(p)) for p in sorted(_val(synth_root).glob("*.jpg"))]
    frames = (frames * 2)[:5]
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (160, 120))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()

    status, out = cli("--video", str(video), "--whole-image")
    assert status == 0
    assert "infer: 5 frames, 5 persons" in capsys.readouterr().out
    cap = cv2.VideoCapture(str(out / "clip_pose.mp4"))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(5.0)
    read = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        read.append(frame)
    cap.release()
    assert len(read) == 5 and read[0].shape == (120, 160, 3)
    # The drawn skeleton changes the frames (beyond the codec's own noise).
    assert np.abs(read[0].astype(int) - frames[0]).max() > 100
    results = json.loads((out / "keypoints_results.json").read_text())
    assert [r["image_id"] for r in results] == [0, 1, 2, 3, 4]


def test_missing_video_is_a_clear_error(cli, tmp_path, capsys):
    status, _ = cli("--video", str(tmp_path / "none.mp4"))
    assert status == 2
    assert f"error: video not found: {tmp_path / 'none.mp4'}" in capsys.readouterr().err


def test_infer_script_help():
    out = subprocess.run([sys.executable, str(REPO / "pose_estimation/infer.py"), "--help"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    for flag in ("--images", "--video", "--bbox-file", "--gt-ann", "--detector", "--whole-image"):
        assert flag in out


def test_gt_boxes_outside_the_image_or_without_area_are_counted(cli, synth_root, tmp_path,
                                                                capsys, caplog):
    good = sorted(_val(synth_root).glob("*.jpg"))[0]
    image_id = int(good.stem)
    ann = {"images": [{"id": image_id, "file_name": good.name, "width": 160, "height": 120}],
           "categories": [{"id": 1, "name": "person"}],
           "annotations": [
               {"id": 1, "image_id": image_id, "category_id": 1, "bbox": [10, 5, 60, 100]},
               {"id": 2, "image_id": image_id, "category_id": 1, "bbox": [500, 400, 30, 30]},
               {"id": 3, "image_id": image_id, "category_id": 1, "bbox": [20, 20, 0, 40]}]}
    ann_file = tmp_path / "ann.json"
    ann_file.write_text(json.dumps(ann))
    with caplog.at_level("WARNING"):
        status, out = cli("--images", str(good), "--gt-ann", str(ann_file))
    assert status == 0
    line = capsys.readouterr().out
    assert "infer: 1 images, 1 persons" in line
    assert "2 boxes skipped (no area or outside the image; each named in a warning)" in line
    assert "box 1 [500, 400, 30, 30] lies outside the 160x120 image; skipped" in caplog.text
    assert "box 2 [20, 20, 0, 40]" in caplog.text


def test_a_video_shorter_than_its_header_is_reported(cli, tmp_path, capsys, caplog):
    video = tmp_path / "cut.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (160, 120))
    for i in range(20):
        writer.write(np.full((120, 160, 3), 10 * i, np.uint8))
    writer.release()
    data = video.read_bytes()
    video.write_bytes(data[: int(len(data) * 0.65)])  # the header still announces 20 frames
    with caplog.at_level("WARNING"):
        status, _ = cli("--video", str(video), "--whole-image")
    assert status == 0
    read = int(capsys.readouterr().out.split("infer: ")[1].split(" frames")[0])
    assert 0 < read < 20
    assert f"its header announces 20 frames but only {read} could be read" in caplog.text


def test_out_holding_a_training_run_gets_its_own_subfolder(tmp_path):
    from semipose.apis.runner import output_folder

    (tmp_path / "metrics.jsonl").write_text("")
    out = Path(output_folder(str(tmp_path)))
    assert out.parent == tmp_path and out.name.startswith("infer_") and out.is_dir()
    plain = tmp_path / "plain"
    assert output_folder(str(plain)) == str(plain)
