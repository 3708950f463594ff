"""Tests for the embedded synthetic COCO-format set (``semipose.dataset.synthetic``)."""
import contextlib
import io
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from semipose.dataset import synthetic

NUM_TRAIN, NUM_VAL = 6, 4


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    info = synthetic.generate(root, num_train=NUM_TRAIN, num_val=NUM_VAL, seed=3)
    return root, info


def _load(path):
    with open(path) as f:
        return json.load(f)


def _quiet_eval(gt_path, results):
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(gt_path))
        dt = coco.loadRes(results)
        ev = COCOeval(coco, dt, "keypoints")
        ev.params.useSegm = None
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def test_layout(small_set):
    root, info = small_set
    coco = root / "coco"
    assert (coco / "annotations" / "person_keypoints_train2017.json").is_file()
    assert (coco / "annotations" / "person_keypoints_val2017.json").is_file()
    dets = coco / "person_detection_results"
    assert (dets / "COCO_val2017_detections_AP_H_56_person.json").is_file()
    assert (dets / "COCO_train2017_detections_person_synthetic.json").is_file()
    assert not list((coco / "annotations").glob("*.tmp"))
    assert info["generated"] is True
    assert info["num_train_images"] == NUM_TRAIN and info["num_val_images"] == NUM_VAL
    for split, n in (("train2017", NUM_TRAIN), ("val2017", NUM_VAL)):
        data = _load(coco / "annotations" / f"person_keypoints_{split}.json")
        assert len(data["images"]) == n
        for im in data["images"]:
            assert im["file_name"] == "%012d.jpg" % im["id"]
            img = cv2.imread(str(coco / "images" / split / im["file_name"]))
            assert img is not None and img.shape == (im["height"], im["width"], 3) == (240, 320, 3)
            assert img.std() > 10  # not blank


def test_json_fields(small_set):
    root, _ = small_set
    ann_dir = root / "coco" / "annotations"
    train = _load(ann_dir / "person_keypoints_train2017.json")
    val = _load(ann_dir / "person_keypoints_val2017.json")
    img_ids = [im["id"] for d in (train, val) for im in d["images"]]
    ann_ids = [a["id"] for d in (train, val) for a in d["annotations"]]
    assert len(set(img_ids)) == len(img_ids) and len(set(ann_ids)) == len(ann_ids)
    assert min(im["id"] for im in val["images"]) > max(im["id"] for im in train["images"])
    for data in (train, val):
        (cat,) = data["categories"]
        assert cat["id"] == 1 and cat["name"] == "person" and cat["supercategory"] == "person"
        assert cat["keypoints"][0] == "nose" and cat["keypoints"][16] == "right_ankle"
        assert len(cat["keypoints"]) == 17 and len(cat["skeleton"]) == 19
        sizes = {im["id"]: (im["width"], im["height"]) for im in data["images"]}
        assert data["annotations"]
        for a in data["annotations"]:
            assert a["image_id"] in sizes and a["category_id"] == 1 and a["iscrowd"] == 0
            w, h = sizes[a["image_id"]]
            kps = np.array(a["keypoints"], dtype=np.float64).reshape(17, 3)
            assert len(a["keypoints"]) == 51
            assert all(isinstance(v, int) for v in a["keypoints"][2::3])
            assert set(np.unique(kps[:, 2])) <= {0, 1, 2}
            assert a["num_keypoints"] == int((kps[:, 2] > 0).sum())
            assert np.all(kps[kps[:, 2] == 0, :2] == 0)
            lab = kps[kps[:, 2] > 0]
            assert np.all((lab[:, 0] >= 0) & (lab[:, 0] <= w - 1))
            assert np.all((lab[:, 1] >= 0) & (lab[:, 1] <= h - 1))
            x, y, bw, bh = a["bbox"]
            assert bw > 0 and bh > 0 and x >= 0 and y >= 0 and x + bw <= w and y + bh <= h
            assert 0 < a["area"] <= bw * bh
            # labeled joints lie in (or on the border of) the person's box
            assert np.all((lab[:, 0] >= x - 1) & (lab[:, 0] <= x + bw))
            assert np.all((lab[:, 1] >= y - 1) & (lab[:, 1] <= y + bh))
            assert isinstance(a["segmentation"], list)
            for poly in a["segmentation"]:
                assert len(poly) >= 6 and len(poly) % 2 == 0
    for name, data in (("val2017", val), ("train2017", train)):
        fname = ("COCO_val2017_detections_AP_H_56_person.json" if name == "val2017"
                 else "COCO_train2017_detections_person_synthetic.json")
        dets = _load(root / "coco" / "person_detection_results" / fname)
        ids = {im["id"] for im in data["images"]}
        assert dets and all(d["image_id"] in ids and d["category_id"] == 1 for d in dets)
        assert all(0 < d["score"] <= 1 and len(d["bbox"]) == 4 for d in dets)
        assert sum(d["score"] > 0.5 for d in dets) >= 0.8 * len(data["annotations"])


def test_visible_joints_show_people(small_set):
    """Most labeled persons have many labeled joints, and some joints are occluded (v=1)."""
    root, _ = small_set
    data = _load(root / "coco" / "annotations" / "person_keypoints_train2017.json")
    nk = np.array([a["num_keypoints"] for a in data["annotations"]])
    assert np.mean(nk >= 10) > 0.6
    vis = np.concatenate([np.array(a["keypoints"][2::3]) for a in data["annotations"]])
    assert (vis == 2).mean() > 0.5


def test_gt_as_results_scores_ap_one(small_set):
    root, _ = small_set
    gt_path = root / "coco" / "annotations" / "person_keypoints_val2017.json"
    data = _load(gt_path)
    results = [
        {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
        for a in data["annotations"]
        if a["num_keypoints"] > 0
    ]
    stats = _quiet_eval(gt_path, results)
    assert stats[0] == pytest.approx(1.0)
    assert stats[5] == pytest.approx(1.0)


def test_box_centre_predictions_score_near_zero(small_set):
    root, _ = small_set
    gt_path = root / "coco" / "annotations" / "person_keypoints_val2017.json"
    data = _load(gt_path)
    results = []
    for a in data["annotations"]:
        if a["num_keypoints"] == 0:
            continue
        x, y, w, h = a["bbox"]
        kps = [v for _ in range(17) for v in (x + w / 2, y + h / 2, 1.0)]
        results.append({"image_id": a["image_id"], "category_id": 1, "keypoints": kps,
                        "score": 1.0})
    stats = _quiet_eval(gt_path, results)
    assert stats[0] < 0.05


def test_determinism(tmp_path):
    a = synthetic.generate(tmp_path / "a", num_train=3, num_val=2, seed=7)
    b = synthetic.generate(tmp_path / "b", num_train=3, num_val=2, seed=7)
    c = synthetic.generate(tmp_path / "c", num_train=3, num_val=2, seed=8)
    for key in ("train_ann", "val_ann", "train_dets", "val_dets"):
        with open(a[key], "rb") as fa, open(b[key], "rb") as fb:
            assert fa.read() == fb.read()
    with open(a["train_ann"], "rb") as fa, open(c["train_ann"], "rb") as fc:
        assert fa.read() != fc.read()
    for name in sorted(os.listdir(a["val_images"])):
        ia = cv2.imread(os.path.join(a["val_images"], name))
        ib = cv2.imread(os.path.join(b["val_images"], name))
        assert np.array_equal(ia, ib)


def test_skip_and_overwrite(tmp_path):
    first = synthetic.generate(tmp_path, num_train=2, num_val=1, seed=0)
    again = synthetic.generate(tmp_path, num_train=2, num_val=1, seed=0)
    assert first["generated"] and not again["generated"]
    assert again["num_train_persons"] == first["num_train_persons"]
    # an interrupted run (annotation json missing) is redone
    os.remove(first["val_ann"])
    redo = synthetic.generate(tmp_path, num_train=2, num_val=1, seed=0)
    assert redo["generated"] and os.path.isfile(redo["val_ann"])
    forced = synthetic.generate(tmp_path, num_train=2, num_val=1, seed=0, overwrite=True)
    assert forced["generated"]


def test_render_image_sizes_and_people():
    rng = np.random.default_rng(0)
    img, people = synthetic.render_image(rng, width=200, height=160, min_people=2, max_people=2)
    assert img.shape == (160, 200, 3) and img.dtype == np.uint8
    assert 1 <= len(people) <= 2
    for p in people:
        assert p["keypoints"].shape == (17, 3) and p["area"] > 0


def test_cli(tmp_path):
    root = tmp_path / "cli"
    env = dict(os.environ)
    lib = os.path.dirname(os.path.dirname(os.path.dirname(synthetic.__file__)))
    env["PYTHONPATH"] = lib + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, "-m", "semipose.dataset.synthetic", "--root", str(root),
         "--num-train", "2", "--num-val", "1", "--width", "160", "--height", "120", "--seed", "1"],
        capture_output=True, text=True, env=env, check=True, timeout=120,
    )  # fmt: skip
    assert "train" in out.stdout and "val" in out.stdout
    data = _load(root / "coco" / "annotations" / "person_keypoints_val2017.json")
    assert len(data["images"]) == 1 and data["images"][0]["width"] == 160
    assert (root / "coco" / "images" / "train2017" / "000000000002.jpg").is_file()


def test_changed_parameters_are_refused_unless_overwrite(tmp_path):
    """Issue 16 #11c: another run's NUM_TRAIN must not regenerate a shared set in place."""
    first = synthetic.generate(tmp_path, num_train=2, num_val=1, image_size=(96, 80), seed=1)
    again = synthetic.generate(tmp_path, num_train=2, num_val=1, image_size=(96, 80), seed=1)
    assert first["generated"] and not again["generated"]
    ann = tmp_path / "coco" / "annotations" / "person_keypoints_train2017.json"
    before = ann.read_bytes()
    with pytest.raises(synthetic.SyntheticSetMismatchError) as err:
        synthetic.generate(tmp_path, num_train=3, num_val=1, image_size=(96, 80), seed=1)
    msg = str(err.value)
    assert "DATASET.SYNTHETIC.NUM_TRAIN 2" in msg and "DATASET.SYNTHETIC.NUM_TRAIN 3" in msg
    assert "NUM_VAL" not in msg and str(tmp_path) in msg and "DATASET.ROOT" in msg
    assert "--num-train 3 --num-val 1 --width 96 --height 80 --seed 1 --overwrite" in msg
    assert ann.read_bytes() == before  # the existing set is untouched
    assert not (tmp_path / "coco" / "images" / "train2017" / "000000000003.jpg").exists()
    bigger = synthetic.generate(
        tmp_path, num_train=3, num_val=1, image_size=(96, 80), seed=1, overwrite=True
    )
    assert bigger["generated"] and bigger["num_train_images"] == 3
    # An incomplete set (an interrupted generation) is simply made again.
    os.remove(bigger["val_ann"])
    redo = synthetic.generate(tmp_path, num_train=2, num_val=1, image_size=(96, 80), seed=1)
    assert redo["generated"] and redo["num_train_images"] == 2


@pytest.mark.parametrize("name", ["train_ann", "val_dets", "params"])
def test_damaged_json_names_the_file_and_the_fix(tmp_path, name):
    """Issue 16 #10: a synthetic-set json that is not JSON names itself and the command."""
    kw = {"num_train": 2, "num_val": 1, "image_size": (96, 80), "seed": 1}
    info = synthetic.generate(tmp_path, **kw)
    path = tmp_path / "coco" / synthetic.PARAMS_FILE if name == "params" else info[name]
    with open(path, "r+") as f:
        f.truncate(7)
    with pytest.raises(synthetic.DataFileError) as err:
        synthetic.generate(tmp_path, **kw)
    msg = str(err.value)
    assert str(path) in msg and "not valid JSON" in msg and "--overwrite" in msg
    assert synthetic.generate(tmp_path, overwrite=True, **kw)["generated"]


def test_json_of_the_wrong_shape_is_named(tmp_path):
    kw = {"num_train": 2, "num_val": 1, "image_size": (96, 80), "seed": 1}
    info = synthetic.generate(tmp_path, **kw)
    with open(info["train_dets"], "w") as f:
        json.dump({"not": "a list"}, f)
    with pytest.raises(synthetic.DataFileError, match="does not hold a COCO detection list"):
        synthetic.generate(tmp_path, **kw)


def test_cli_mismatch_is_one_line(tmp_path):
    synthetic.generate(tmp_path, num_train=2, num_val=1, image_size=(96, 80), seed=1)
    out = subprocess.run(
        [sys.executable, "-m", "semipose.dataset.synthetic", "--root", str(tmp_path),
         "--num-train", "3", "--num-val", "1", "--width", "96", "--height", "80", "--seed", "1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.startswith("error: the synthetic set under") and out.stderr.count("\n") == 1


def test_easy_preset_has_fewer_larger_people_and_less_clutter(tmp_path):
    assert synthetic.preset_kwargs("hard", (320, 240)) == {}
    kw = synthetic.preset_kwargs("easy", (320, 240))
    assert kw == {"max_people": 2, "person_height": pytest.approx((132.0, 228.0)), "clutter": 0.25}
    with pytest.raises(ValueError, match="PRESET must be one of"):
        synthetic.preset_kwargs("medium", (320, 240))
    easy = synthetic.generate(str(tmp_path / "easy"), num_train=8, num_val=2, **kw)
    hard = synthetic.generate(str(tmp_path / "hard"), num_train=8, num_val=2)
    anns = {}
    for name, res in (("easy", easy), ("hard", hard)):
        data = json.loads(open(res["train_ann"]).read())
        per_image = np.bincount([a["image_id"] for a in data["annotations"]])
        heights = [a["bbox"][3] for a in data["annotations"]]
        anns[name] = (per_image.max(), float(np.median(heights)))
    assert anns["easy"][0] <= 2 < anns["hard"][0]
    assert anns["easy"][1] > 1.5 * anns["hard"][1]
    params = json.loads((tmp_path / "easy" / "coco" / synthetic.PARAMS_FILE).read_text())
    assert params["clutter"] == 0.25 and params["max_people"] == 2
    hard_params = json.loads((tmp_path / "hard" / "coco" / synthetic.PARAMS_FILE).read_text())
    assert "clutter" not in hard_params  # sets made before presets existed still match
    with pytest.raises(synthetic.SyntheticSetMismatchError, match="PRESET's clutter 0.25"):
        synthetic.generate(str(tmp_path / "easy"), num_train=8, num_val=2)


def test_clutter_one_draws_the_default_image():
    a = synthetic.render_image(np.random.default_rng([0, 0, 3]))[0]
    b = synthetic.render_image(np.random.default_rng([0, 0, 3]), clutter=1.0)[0]
    c = synthetic.render_image(np.random.default_rng([0, 0, 3]), clutter=0.25)[0]
    assert np.array_equal(a, b) and not np.array_equal(a, c)
