import json
from pathlib import Path

import numpy as np
import pytest

from semipose.common.errors import DataFileError
from semipose.dataset.coco import STATS_NAMES, COCODataset

KW = {"image_size": (192, 256), "heatmap_size": (48, 64)}


def _gt_as_preds(ds):
    """GT joints fed back as predictions: (N, 24, 3) with score 1, boxes (N, 6), image paths."""
    preds = np.stack([np.concatenate([r["joints_3d"][:, :2], np.ones((24, 1))], 1) for r in ds.db])
    boxes = np.array(
        [[*r["center"], *r["scale"], r["scale"][0] * r["scale"][1] * 200**2, 1.0] for r in ds.db]
    )
    return preds, boxes, [r["image"] for r in ds.db]


# ---------------------------------------------------------------- real COCO sample
def test_real_gt_mode_counts(coco_real_root):
    ds = COCODataset(coco_real_root, "validation", False, use_gt_bbox=True, **KW)
    raw = json.loads(
        (Path(coco_real_root) / "coco/annotations/person_keypoints_val2017.json").read_text()
    )
    assert len(raw["annotations"]) == 14
    # 2 of the 14 persons have no labeled keypoint (max(keypoints) == 0) and are skipped.
    assert len(ds.db) == 12 and ds.image_set == "val2017"
    assert ds.num_joints == 24 and len(ds.labeled_joints) == 17
    rec = ds.db[0]
    assert rec["joints_3d"].shape == (24, 3)
    assert rec["image"].endswith("coco/images/val2017/000000000785.jpg")
    # First annotation of image 785: bbox [280.79, 44.73, 218.7, 346.68], all 17 joints v=2.
    x1, y1, w, h = 280.79, 44.73, 217.7, 345.68  # sanitised: w - 1, h - 1
    np.testing.assert_allclose(rec["center"], [x1 + w / 2, y1 + h / 2], rtol=1e-6)
    np.testing.assert_allclose(rec["scale"], [h * 0.75 / 200 * 1.25, h / 200 * 1.25], rtol=1e-5)
    assert rec["joints_3d_vis"][:, 0].sum() == 17
    np.testing.assert_allclose(rec["joints_3d"][11, :2], [367, 81])  # nose -> union 11
    np.testing.assert_allclose(rec["raw_box"], [280.79, 44.73, 218.7, 346.68], rtol=1e-6)


def test_real_gt_scores_ap_one(coco_real_root, tmp_path):
    ds = COCODataset(
        coco_real_root, "val2017", False, use_gt_bbox=True, oks_thre=0.9, in_vis_thre=0.2, **KW
    )
    preds, boxes, paths = _gt_as_preds(ds)
    before = preds.copy()
    name_value, ap = ds.evaluate(preds, str(tmp_path), boxes, paths, prefix="eval_1")
    assert list(name_value) == STATS_NAMES
    assert ap == pytest.approx(1.0)
    assert name_value["AR"] == pytest.approx(1.0)
    np.testing.assert_array_equal(preds, before)
    res = tmp_path / "results" / "person_keypoints_val2017_eval_1.json"
    results = json.loads(res.read_text())
    assert len(results) == 12 and len(results[0]["keypoints"]) == 51
    assert (tmp_path / "results" / "keypoints_val2017_results.pkl").is_file()


def test_real_detection_mode(coco_real_root):
    det = str(
        Path(coco_real_root)
        / "coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json"
    )
    ds = COCODataset(coco_real_root, "val", False, use_gt_bbox=False, bbox_file=det, **KW)
    assert len(ds.db) == 118
    assert all(r["joints_3d_vis"][ds.labeled_joints].min() == 1 for r in ds.db)
    assert 0 < ds.db[0]["score"] <= 1
    ds_thr = COCODataset(coco_real_root, "val", False, bbox_file=det, image_thre=0.5, **KW)
    raw = json.loads(Path(det).read_text())
    assert len(ds_thr.db) == sum(d["score"] >= 0.5 for d in raw)


# ---------------------------------------------------------------- tiny generated set
def test_tiny_gt_mode_filters(tiny_coco):
    root, data = tiny_coco
    ds = COCODataset(root, "train", True, **KW)
    # A, B, D, E: the crowd person and the all-zero person C are skipped, file order kept.
    assert len(ds.db) == 4
    ann = {a["id"]: a for a in data["train2017"]["annotations"]}
    b = ds.db[1]
    kps = np.array(ann[3]["keypoints"]).reshape(17, 3)
    np.testing.assert_allclose(b["joints_3d"][20, :2], kps[2, :2])  # reye -> union 20
    assert b["joints_3d_vis"][:, 0].sum() == 8 and b["joints_3d_vis"][:, 2].sum() == 0
    assert set(np.unique(ds.db[0]["joints_3d_vis"])) <= {0.0, 1.0}  # v = 2 becomes 1


def test_tiny_train_len_first_n(tiny_coco):
    root, _ = tiny_coco
    full = COCODataset(root, "train", True, **KW)
    sub = COCODataset(root, "train", True, train_len=3, **KW)
    assert len(sub.db) == 3
    for a, b in zip(sub.db, full.db[:3]):
        np.testing.assert_array_equal(a["joints_3d"], b["joints_3d"])
    # Not training: train_len is ignored.
    assert len(COCODataset(root, "train", False, use_gt_bbox=True, train_len=2, **KW).db) == 4


def test_xywh2cs(tiny_coco):
    root, _ = tiny_coco
    ds = COCODataset(root, "train", True, **KW)
    c, s = ds._xywh2cs(10, 20, 30, 40)
    np.testing.assert_allclose(c, [25, 40])
    np.testing.assert_allclose(s, np.array([0.15, 0.2]) * 1.25, rtol=1e-6)
    c, s = ds._xywh2cs(0, 0, 80, 40)  # wide box: h padded to w / 0.75
    np.testing.assert_allclose(s, np.array([80, 80 / 0.75]) / 200 * 1.25, rtol=1e-6)
    assert c.dtype == np.float32 and s.dtype == np.float32


def test_tiny_gt_ap_one_with_named_files(tiny_coco_named, tmp_path):
    root, _ = tiny_coco_named
    ds = COCODataset(root, "val", False, use_gt_bbox=True, oks_thre=0.9, **KW)
    assert ds.db[0]["image"].endswith("pic_val2017_0.jpg")
    preds, boxes, paths = _gt_as_preds(ds)
    _, ap = ds.evaluate(preds, str(tmp_path), boxes, paths)
    assert ap == pytest.approx(1.0)
    assert (tmp_path / "results/person_keypoints_val2017_results.json").is_file()
    # Moving every prediction far away gives AP 0.
    preds[:, :, :2] += 500
    name_value, ap = ds.evaluate(preds, str(tmp_path), boxes, paths)
    assert ap == pytest.approx(0.0)


def test_rescoring_and_nms(tiny_coco, tmp_path):
    root, _ = tiny_coco
    ds = COCODataset(
        root, "val", False, use_gt_bbox=True, oks_thre=0.9, in_vis_thre=0.2, save_result=True, **KW
    )
    preds, boxes, paths = _gt_as_preds(ds)
    # Duplicate person 0 with lower joint scores: OKS-NMS must drop the duplicate.
    dup = preds[0].copy()
    dup[:, 2] = 0.5
    dup[ds.su[:3], 2] = 0.1  # below in_vis_thre: excluded from the mean
    preds = np.concatenate([preds, dup[None]])
    boxes = np.concatenate([boxes, boxes[:1]])
    boxes[-1, 5] = 0.8
    paths = paths + paths[:1]
    _, ap = ds.evaluate(preds, str(tmp_path), boxes, paths)
    results = json.loads((tmp_path / "results/person_keypoints_val2017_results.json").read_text())
    assert len(results) == 3 and ap == pytest.approx(1.0)
    # Without NMS (threshold above 1) the duplicate survives with score mean(0.5) * 0.8.
    ds.oks_thre = 1.01
    ds.evaluate(preds, str(tmp_path), boxes, paths)
    results = json.loads((tmp_path / "results/person_keypoints_val2017_results.json").read_text())
    assert sorted(r["score"] for r in results)[0] == pytest.approx(0.4)


def test_tiny_detection_mode_filters_category(tiny_coco):
    root, _ = tiny_coco
    det = str(Path(root) / "coco/person_detection_results/dets_val2017.json")
    ds = COCODataset(root, "val", False, bbox_file=det, **KW)
    assert len(ds.db) == 3  # the category-2 detection is skipped
    assert [r["score"] for r in ds.db] == [0.9] * 3


def test_unlabeled_set_detection_mode(tiny_coco, tmp_path):
    root, data = tiny_coco
    ann = Path(root) / "coco/annotations"
    info = {"images": data["train2017"]["images"], "categories": data["train2017"]["categories"]}
    (ann / "image_info_unlabeled2017.json").write_text(json.dumps(info))
    det = str(Path(root) / "coco/person_detection_results/dets_train2017.json")
    ds = COCODataset(root, "unlabeled2017", True, unsup_bbox_file=det, **KW)
    assert len(ds.db) == 6  # every category-1 detection, crowd and all-zero boxes included
    assert ds.db[0]["image"].endswith("coco/images/unlabeled2017/000000000100.jpg")
    preds = np.zeros((len(ds.db), 24, 3))
    boxes = np.ones((len(ds.db), 6))
    assert ds.evaluate(preds, str(tmp_path), boxes, [r["image"] for r in ds.db]) == (
        {"Null": 0},
        0,
    )
    ds_zip = COCODataset(root, "unlabeled2017", True, unsup_bbox_file=det, data_format="zip", **KW)
    assert ds_zip.db[0]["image"].endswith("unlabeled2017.zip@/unlabeled2017/000000000100.jpg")


def test_missing_annotation_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="person_keypoints_val2017.json"):
        COCODataset(str(tmp_path), "val", False, use_gt_bbox=True, **KW)


def test_empty_detection_file(tiny_coco, tmp_path):
    root, _ = tiny_coco
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.raises(ValueError, match="no detections"):
        COCODataset(root, "val", False, bbox_file=str(empty), **KW)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        COCODataset(root, "val", False, bbox_file=str(tmp_path / "nope.json"), **KW)


def test_keypoints_of_wrong_length_are_refused(tiny_coco):
    """A keypoints list that is not 3 x 17 numbers: refused (it made COCOeval crash when the
    record was only skipped); the error names the file, the count and the first annotation."""
    root, data = tiny_coco
    path = Path(root) / "coco/annotations/person_keypoints_train2017.json"
    bad = json.loads(path.read_text())
    bad["annotations"][0]["keypoints"] = [1, 2, 2]  # wrong length
    path.write_text(json.dumps(bad))
    with pytest.raises(DataFileError) as err:
        COCODataset(root, "train", True, **KW)
    assert str(err.value) == (
        f"{path}: 1 annotations whose keypoints list does not hold 3 numbers per joint (first: "
        "annotation id 1 (index 0) of image 100: 3 values, expected 3 x 17 = 51); refused"
    )


@pytest.mark.parametrize(
    "text, expect",
    [
        ('[{"image_id": 200, "category_id": 1, "bbox": [1, 2', "is not valid JSON"),
        ("", "is not valid JSON"),
        ('{"image_id": 200, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 1}', "JSON object"),
        ('"dets.json"', "JSON string"),
        ("[[200, 1, [1, 2, 3, 4], 0.9]]", "none of its 1 records is a detection; record 0 is"),
    ],
)
def test_bad_detection_file_names_file_and_format(tiny_coco, tmp_path, text, expect):
    """Issue 16 #5: a truncated detection json, or one that is not a list of detections."""
    root, _ = tiny_coco
    det = tmp_path / "dets.json"
    det.write_text(text)
    with pytest.raises(DataFileError) as err:
        COCODataset(root, "val", False, bbox_file=str(det), **KW)
    msg = str(err.value)
    assert str(det) in msg and expect in msg
    assert '"bbox": [x, y, w, h]' in msg or "empty" in msg


def test_some_malformed_detections_are_skipped_with_the_first_named(tiny_coco, tmp_path, caplog):
    root, _ = tiny_coco
    det = tmp_path / "dets.json"
    good = {"image_id": 200, "category_id": 1, "bbox": [10, 10, 40, 80], "score": 0.9}
    det.write_text(json.dumps([good, {"image_id": 200, "bbox": "x"}, good]))
    with caplog.at_level("WARNING"):
        ds = COCODataset(root, "val", False, bbox_file=str(det), **KW)
    assert len(ds.db) == 2
    assert "skipped 1 malformed detections" in caplog.text and "record 1" in caplog.text
