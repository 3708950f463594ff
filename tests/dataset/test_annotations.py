"""Annotation checks on load (``semipose.dataset.annotations``): each defect is repaired with a
warning naming file, count and first record, or refused with one error line; the evaluator scores
the repaired ground truth; the ``check_dataset`` command lists them."""

import copy
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from semipose.common.errors import UserError
from semipose.dataset import annotations as ann_mod
from semipose.dataset.annotations import (
    AnnotationError,
    box_problem,
    check_aic,
    check_coco,
    check_image_files,
    check_mpii,
)
from semipose.dataset.coco import COCODataset
from semipose.evaluation.coco import as_coco
from semipose.tools import check_dataset

W, H = 100, 80
KW = {"image_size": (64, 96), "heatmap_size": (16, 24)}


def _person(ann_id, image_id, box=(10, 10, 40, 60), seed=0):
    rng = np.random.default_rng(seed + ann_id)
    x, y, w, h = box
    kps = []
    for _ in range(17):
        kps += [round(float(x + 2 + (w - 4) * rng.random()), 1),
                round(float(y + 2 + (h - 4) * rng.random()), 1), 2]  # fmt: skip
    return {
        "id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "bbox": list(box),
        "area": float(box[2] * box[3]), "keypoints": kps, "num_keypoints": 17,
    }  # fmt: skip


def _coco():
    """Two 100x80 images, three persons (ids 1, 2 in image 1; 3 in image 2)."""
    return {
        "images": [{"id": i, "file_name": f"{i:012d}.jpg", "width": W, "height": H}
                   for i in (1, 2)],
        "annotations": [_person(1, 1), _person(2, 1, (50, 5, 40, 70)), _person(3, 2)],
        "categories": [{"id": 1, "name": "person"}],
    }  # fmt: skip


def _check(data):
    return check_coco(data, path="f.json", num_joints=17)


# ---------------------------------------------------------------- repairs, one per defect
def _dup_ann_id(d):
    d["annotations"][2]["id"] = 1


def _dup_image(d):
    d["images"].append(dict(d["images"][1]))


def _unknown_image(d):
    d["annotations"][2]["image_id"] = 9


def _other_category(d):
    d["annotations"][1]["category_id"] = 2


def _negative(d):
    d["annotations"][0]["keypoints"][3:5] = [-4, 20]


def _outside(d):
    d["annotations"][0]["keypoints"][6:8] = [30, H + 5]


def _origin(d):
    d["annotations"][1]["keypoints"][0:3] = [0, 0, 2]


def _num_keypoints(d):
    d["annotations"][2]["num_keypoints"] = 0


def _no_area(d):
    d["annotations"][0]["bbox"] = [10, 10, 0, 60]


def _tiny(d):
    d["annotations"][0]["bbox"] = [10, 10, 1, 1]


def _box_outside(d):
    d["annotations"][2]["bbox"] = [W + 10, 10, 40, 60]


def _missing_area(d):
    del d["annotations"][1]["area"]


def _zero_area(d):
    d["annotations"][1]["area"] = 0


REPAIRS = [
    (_dup_ann_id, "duplicate_ann_id", "annotation id 1 (index 2) of image 2, given id 3",
     "annotations without an id or whose id is already used"),
    (_dup_image, "duplicate_image", "image id 2 (index 2)", "images listed twice in 'images'"),
    (_unknown_image, "unknown_image", "annotation id 3 (index 2) of image 9",
     "annotations of an image id not in 'images'"),
    (_other_category, "other_category", "category 2, the set's is 1", "another category"),
    (_negative, "negative_joint", "annotation id 1 (index 0) of image 1, joint 1 at (-4, 20)",
     "labelled joints at negative coordinates"),
    (_outside, "outside_joint", "joint 2 at (30, 85) in a 100x80 image",
     "labelled joints outside the image"),
    (_origin, "origin_joint", "annotation id 2 (index 1) of image 1, joint 0",
     "joints labelled visible at (0, 0)"),
    (_num_keypoints, "num_keypoints", "num_keypoints 0, 17 labelled", "num_keypoints differs"),
    (_no_area, "box_no_area", "has no area (w or h <= 0)", "kept as an ignored (crowd) person"),
    (_tiny, "box_tiny", "is at most 1x1 pixel", "boxes of at most 1x1 pixel"),
    (_box_outside, "box_outside", "lies outside the 100x80 image", "boxes that lie outside"),
    (_missing_area, "missing_area", "area None", "area set to the box's w * h"),
    (_zero_area, "missing_area", "area 0", "without a positive numeric area"),
]  # fmt: skip


@pytest.mark.parametrize("breaker, code, first, what", REPAIRS, ids=[r[1] for r in REPAIRS])
def test_each_defect_is_repaired_with_a_warning(breaker, code, first, what, caplog):
    data = _coco()
    breaker(data)
    report = _check(data)
    assert list(report.found) == [code] and report.found[code][0] == 1
    with caplog.at_level("WARNING"):
        report.finish()
    line = caplog.records[-1].getMessage()
    assert line.startswith("f.json: 1 ") and first in line and what in line


def test_repairs_change_the_data_as_documented():
    data = _coco()
    for breaker in (_dup_ann_id, _dup_image, _negative, _outside, _origin, _tiny):
        breaker(data)
    report = _check(data)
    assert report.images == 2 and report.records == 3
    a, b, c = data["annotations"]
    assert [x["id"] for x in data["annotations"]] == [1, 2, 3]
    assert a["keypoints"][3:9] == [0, 0, 0, 0, 0, 0] and a["num_keypoints"] == 15
    assert b["keypoints"][0:3] == [0, 0, 0] and b["num_keypoints"] == 16
    assert a["iscrowd"] == 1 and c["iscrowd"] == 0  # the 1x1 box: ignored in COCOeval
    # the counts in a report are per joint / per annotation; the first record is the first met
    data = _coco()
    for ann in data["annotations"]:
        ann["keypoints"][0:3] = [0, 0, 1]
    first = "annotation id 1 (index 0) of image 1, joint 0"
    assert _check(data).found["origin_joint"] == [3, first]


def test_num_keypoints_follows_the_repairs_without_a_second_warning():
    data = _coco()
    _negative(data)
    report = _check(data)
    assert list(report.found) == ["negative_joint"]
    assert data["annotations"][0]["num_keypoints"] == 16


# ---------------------------------------------------------------- refusals
def test_wrong_keypoint_length_is_refused_with_one_line():
    data = _coco()
    data["annotations"][1]["keypoints"] = data["annotations"][1]["keypoints"][:50]
    report = _check(data)
    with pytest.raises(AnnotationError) as err:
        report.finish()
    assert isinstance(err.value, UserError)
    assert str(err.value) == (
        "f.json: 1 annotations whose keypoints list does not hold 3 numbers per joint (first: "
        "annotation id 2 (index 1) of image 1: 50 values, expected 3 x 17 = 51); refused"
    )


@pytest.mark.parametrize(
    "breaker, text",
    [
        (lambda d: d["annotations"][0].pop("bbox"), "without a bbox of 4 numbers"),
        (lambda d: d["images"].append({**d["images"][0], "width": 5}), "different file_name"),
        (lambda d: d["images"].append({"file_name": "x.jpg"}), "without an 'id'"),
        (lambda d: d["annotations"].append(3), "not objects"),
    ],
)
def test_other_refusals(breaker, text):
    data = _coco()
    breaker(data)
    with pytest.raises(AnnotationError, match=text):
        _check(data).finish()


def test_a_file_without_images_is_refused():
    with pytest.raises(AnnotationError, match="no 'images' list"):
        check_coco([1, 2], path="f.json", num_joints=17)


def test_box_rule_matches_inference_wording():
    assert box_problem([1, 2, 0, 5], 100, 80) == "has no area (w or h <= 0)"
    assert box_problem([1, 2, 1, 1], 100, 80) == "is at most 1x1 pixel"
    assert box_problem([-50, 2, 40, 5], 100, 80) == "lies outside the 100x80 image"
    assert box_problem([10, 2, 1, 30], 100, 80) is None


# ---------------------------------------------------------------- image files
def test_missing_files_one_listing_per_folder(tmp_path, monkeypatch):
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.jpg").write_bytes(b"x")
    calls = []
    real = os.listdir
    monkeypatch.setattr(ann_mod.os, "listdir", lambda p: calls.append(p) or real(p))
    files = [(1, "a.jpg"), (2, "b.jpg"), (3, "sub/c.jpg"), (4, "sub/d.jpg"), (5, "e.jpg")]
    report = ann_mod.AnnotationReport("f.json")
    assert check_image_files(report, files, str(tmp_path), train=True) == {2, 4, 5}
    assert len(calls) == 2  # the folder and its subfolder, once each
    assert report.found["missing_file_train"] == [3, f"{tmp_path}/b.jpg of image 2"]
    report = ann_mod.AnnotationReport("f.json")
    check_image_files(report, files, str(tmp_path), train=False)
    with pytest.raises(AnnotationError, match="3 images whose file is missing"):
        report.finish()
    # zip sets or an absent folder: skipped
    assert check_image_files(report, files, str(tmp_path / "x.zip@"), train=True) == set()


# ---------------------------------------------------------------- AIC / MPII
def _aic():
    kps = [10, 20, 1] * 14
    boxes = {"human1": [5, 5, 50, 60], "human2": [5, 5, 50, 60]}
    return [{"image_id": "a", "keypoint_annotations": {"human1": list(kps), "human2": list(kps)},
             "human_annotations": boxes}]  # fmt: skip


def test_aic_checks():
    data = _aic()
    data[0]["keypoint_annotations"]["human1"][0:2] = [0, 0]
    data[0]["keypoint_annotations"]["human2"][3:5] = [-1, 3]
    data[0]["human_annotations"]["human2"] = [5, 5, 5, 60]
    data.append(copy.deepcopy(data[0]))
    report = check_aic(data, path="aic.json", num_joints=14)
    assert len(data) == 1 and report.records == 1
    assert data[0]["keypoint_annotations"]["human1"][2] == 3
    assert "human2" not in data[0]["keypoint_annotations"]
    assert {k: v[0] for k, v in report.found.items()} == {
        "origin_joint": 1, "negative_joint": 1, "aic_box": 1, "duplicate_image": 1}  # fmt: skip
    conflict = _aic() + _aic()
    conflict[1]["human_annotations"]["human2"] = [1, 1, 9, 9]
    with pytest.raises(AnnotationError, match="image ids listed twice .* image id a .record 1."):
        check_aic(conflict, path="aic.json", num_joints=14).finish()
    bad = _aic()
    bad[0]["keypoint_annotations"]["human1"] = [1, 2, 1]
    with pytest.raises(AnnotationError, match="image a human1: 3 values, expected 3 x 14"):
        check_aic(bad, path="aic.json", num_joints=14).finish()


def test_mpii_checks():
    rec = {"image": "a.jpg", "center": [5, 5], "scale": 1.0, "joints": [[1, 2]] * 16,
           "joints_vis": [1] * 16}  # fmt: skip
    assert not check_mpii([rec], path="m.json", num_joints=16).found
    short = {**rec, "joints": [[1, 2]] * 15}
    with pytest.raises(AnnotationError, match=r"record 1 \(a.jpg\): 15 joints, 16 visibilities"):
        check_mpii([rec, short], path="m.json", num_joints=16).finish()


# ---------------------------------------------------------------- real samples
def test_real_samples_pass(realdata_dir):
    coco = json.loads((realdata_dir / "coco/test_coco.json").read_text())
    assert not check_coco(coco, path="c", num_joints=17).found
    aic = json.loads((realdata_dir / "aic_raw/keypoint_sample_annotation.json").read_text())
    assert not check_aic(aic, path="a", num_joints=14).found
    mpii = json.loads((realdata_dir / "mpii/test_mpii.json").read_text())
    assert not check_mpii(mpii, path="m", num_joints=16).found
    # the mmpose COCO form of the AIC sample has no 'area': repaired (COCOeval needs it)
    aic_coco = json.loads((realdata_dir / "aic/test_aic.json").read_text())
    found = check_coco(aic_coco, path="a", num_joints=14).found
    assert list(found) == ["missing_area"] and found["missing_area"][0] == 9


# ---------------------------------------------------------------- the dataset and COCOeval
def _copy_set(synth_root, dst, breaker=None):
    """``dst/coco`` with the synthetic val json (broken by ``breaker``) and its images linked."""
    src = Path(synth_root) / "coco"
    ann_dir = dst / "coco" / "annotations"
    ann_dir.mkdir(parents=True)
    os.symlink(src / "images", dst / "coco" / "images")
    data = json.loads((src / "annotations/person_keypoints_val2017.json").read_text())
    if breaker:
        breaker(data)
    (ann_dir / "person_keypoints_val2017.json").write_text(json.dumps(data))
    return str(dst), data


def _ap(root, tmp_path, preds_of):
    ds = COCODataset(root, "val", False, use_gt_bbox=True, oks_thre=0.9, **KW)
    preds = np.stack([preds_of(r) for r in ds.db])
    boxes = np.array([[*r["center"], *r["scale"], 1e4, 1.0] for r in ds.db])
    out = tmp_path / Path(root).name
    return ds, ds.evaluate(preds, str(out), boxes, [r["image"] for r in ds.db])[1]


def _noisy(rec):
    """The record's GT joints moved by a fixed offset that depends on the joint: an AP < 1."""
    offset = (np.arange(24)[:, None] % 5 - 2) * np.array([[1.5, -1.0]])
    return np.concatenate([rec["joints_3d"][:, :2] + offset, np.full((24, 1), 0.8)], axis=1)


def _break_dup_and_origin(data):
    anns = data["annotations"]
    anns[-1]["id"] = anns[0]["id"]
    ann = anns[1]
    zero = next(j for j in range(17) if ann["keypoints"][3 * j + 2] == 0)
    ann["keypoints"][3 * zero + 2] = 2  # v=2 at (0, 0)


def test_valid_scores_the_repaired_ground_truth_like_the_clean_one(synth_root, tmp_path, caplog):
    clean_root, clean = _copy_set(synth_root, tmp_path / "clean")
    broken_root, _ = _copy_set(synth_root, tmp_path / "broken", _break_dup_and_origin)
    assert any(v == 0 for v in clean["annotations"][1]["keypoints"][2::3])
    _, ap_clean = _ap(clean_root, tmp_path, _noisy)
    with caplog.at_level("WARNING"):
        ds, ap_broken = _ap(broken_root, tmp_path, _noisy)
    assert 0.1 < ap_clean < 1 and ap_broken == ap_clean
    ann_file = Path(broken_root) / "coco/annotations/person_keypoints_val2017.json"
    text = caplog.text
    assert f"{ann_file}: 1 annotations without an id or whose id is already used" in text
    assert f"{ann_file}: 1 joints labelled visible at (0, 0)" in text
    assert len(ds.coco.anns) == len(clean["annotations"])  # pycocotools keeps every person
    # the same predictions against the file as it is (no checks): another AP
    ds.coco = as_coco(json.loads(ann_file.read_text()))
    preds = np.stack([_noisy(r) for r in ds.db])
    boxes = np.array([[*r["center"], *r["scale"], 1e4, 1.0] for r in ds.db])
    raw_ap = ds.evaluate(preds, str(tmp_path / "raw"), boxes, [r["image"] for r in ds.db])[1]
    assert raw_ap != pytest.approx(ap_clean)


def test_training_drops_images_whose_file_is_missing(synth_root, tmp_path, caplog):
    root, data = _copy_set(synth_root, tmp_path / "s")
    images = tmp_path / "s/coco/images"
    os.unlink(images)
    shutil.copytree(Path(synth_root) / "coco/images", images)
    first = data["images"][0]
    os.remove(images / "val2017" / first["file_name"])
    with caplog.at_level("WARNING"):
        ds = COCODataset(root, "val2017", True, **KW)
    assert "1 images whose file is missing" in caplog.text and first["file_name"] in caplog.text
    assert first["id"] not in ds.coco.imgs
    assert all(not r["image"].endswith(first["file_name"]) for r in ds.db)
    with pytest.raises(AnnotationError, match="refused \\(evaluation\\)"):
        COCODataset(root, "val2017", False, use_gt_bbox=True, **KW)


# ---------------------------------------------------------------- the command
def _write(tmp_path, data, name="a.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_check_dataset_ann_exit_codes(tmp_path, capsys):
    assert check_dataset.main(["--ann", _write(tmp_path, _coco()), "--num-joints", "17"]) == 0
    assert "a.json: 3 annotations, 2 images\n  clean" in capsys.readouterr().out
    data = _coco()
    _dup_ann_id(data)
    _origin(data)
    assert check_dataset.main(["--ann", _write(tmp_path, data), "--num-joints", "17"]) == 0
    out = capsys.readouterr().out
    assert "  repaired: " in out and "given id 3" in out and "joint 0" in out
    assert out.strip().endswith("1 files: 0 refused defects, 2 repaired defects")
    bad = copy.deepcopy(data)
    bad["annotations"][0]["keypoints"].append(1)
    assert check_dataset.main(["--ann", _write(tmp_path, bad), "--num-joints", "17"]) == 2
    assert "  error: " in capsys.readouterr().out


def test_check_dataset_cfg_and_usage_errors(synth_root, tmp_path, tiny_opts, capsys, repo_root):
    root, _ = _copy_set(synth_root, tmp_path / "s", _break_dup_and_origin)
    (tmp_path / "s/coco/annotations/person_keypoints_train2017.json").symlink_to(
        Path(synth_root) / "coco/annotations/person_keypoints_train2017.json"
    )
    cfg = str(repo_root / "experiments/synthetic/96x64_SYN_Supervised.yaml")
    opts = tiny_opts(root, tmp_path / "o", model_name="pose_resnet")
    status = check_dataset.main(["--cfg", cfg, *opts, "DATASET.SYNTHETIC.ENABLED", "False"])
    out = capsys.readouterr().out
    assert status == 0
    assert "person_keypoints_train2017.json: 13 annotations, 6 images\n  clean" in out
    assert "person_keypoints_val2017.json: 9 annotations, 3 images\n  repaired: " in out
    assert out.strip().endswith("2 files: 0 refused defects, 2 repaired defects")
    with pytest.raises(UserError, match="either --cfg"):
        check_dataset.main([])


# ---------------------------------------------------------------- the original's record filter
def _area_zero(data):
    data["annotations"][0]["area"] = 0


def test_an_area_0_annotation_is_no_record_but_its_repaired_gt_scores(synth_root, tmp_path):
    """The original drops a person whose file area is 0 (``area > 0``): no training and no GT-box
    val record, every later record at its index; the repair (area = w x h) is for COCOeval, so the
    same predictions score the same AP as against the clean file."""
    clean_root, clean = _copy_set(synth_root, tmp_path / "clean")
    zero_root, _ = _copy_set(synth_root, tmp_path / "zero", _area_zero)
    first = clean["annotations"][0]
    for is_train in (True, False):
        kw = {} if is_train else {"use_gt_bbox": True}
        want = COCODataset(clean_root, "val2017", is_train, **kw, **KW).db
        got = COCODataset(zero_root, "val2017", is_train, **kw, **KW).db
        assert len(got) == len(want) - 1
        dropped = [i for i, r in enumerate(want) if r["image"].endswith(
            next(im["file_name"] for im in clean["images"] if im["id"] == first["image_id"]))]
        keep = [r for i, r in enumerate(want) if i != dropped[0]]
        assert [Path(r["image"]).name for r in got] == [Path(r["image"]).name for r in keep]
        assert all(np.array_equal(a["center"], b["center"]) for a, b in zip(got, keep))
    ds = COCODataset(zero_root, "val2017", False, use_gt_bbox=True, **KW)
    assert ds.coco.anns[first["id"]]["area"] == pytest.approx(first["bbox"][2] * first["bbox"][3])


def test_a_set_of_0_samples_is_an_error_naming_file_and_categories(synth_root, tmp_path):
    def animals_first(data):
        data["categories"].insert(0, {"id": 99, "name": "cat", "keypoints": [], "skeleton": []})

    root, _ = _copy_set(synth_root, tmp_path / "s", animals_first)
    ann_file = Path(root) / "coco/annotations/person_keypoints_val2017.json"
    with pytest.raises(UserError) as err:
        COCODataset(root, "val2017", True, **KW)
    text = str(err.value)
    assert text.startswith(f"{ann_file}: 0 samples for COCODataset val2017")
    assert "0 annotations of category 99" in text and "99: 'cat', 1: 'person'" in text
