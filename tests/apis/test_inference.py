"""The inference API against the engine's validation: same keypoints, same COCOeval numbers."""
import contextlib
import importlib
import io
import json
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from semipose.apis import (
    AnnotationBoxes,
    DetectionJsonBoxes,
    WholeImageBoxes,
    inference_topdown,
    init_model,
    oks_nms_poses,
)
from semipose.apis.inference import box_to_center_scale, crop_person
from semipose.config import get_cfg, update_config
from semipose.dataset.build import build_dataset


def _tiny_cfg(opts, extra=()):
    args = types.SimpleNamespace(cfg=None, opts=list(opts) + list(extra))
    return update_config(get_cfg(), args)


def _engine_do_valid():
    """The engine's valid.py entry point, wherever the engine keeps it."""
    for name in ("semipose.engine.launch", "semipose.engine", "semipose.engine.defaults"):
        try:
            fn = getattr(importlib.import_module(name), "do_valid", None)
        except ImportError:
            continue
        if fn is not None:
            return fn
    pytest.fail("semipose.engine has no do_valid")


def _coco_stats(ann_file, results):
    """COCOeval keypoint stats of results, evaluated as the COCO dataset's evaluate does."""
    if not results:
        return [0.0] * 10
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
        dt = gt.loadRes(
            [{k: r[k] for k in ("image_id", "category_id", "keypoints", "score")} for r in results]
        )
        ev = COCOeval(gt, dt, "keypoints")
        ev.params.useSegm = None
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) for v in ev.stats]


def _pseudo_gt(ann_file, results, path):
    """An annotation json whose people are the given predictions (all joints visible).

    Scoring two result sets against it gives AP values far from 0 even for an untrained model, so
    their equality means something.
    """
    data = json.loads(Path(ann_file).read_text())
    anns = []
    for k, r in enumerate(results):
        kps = np.asarray(r["keypoints"], dtype=np.float64).reshape(-1, 3)
        x0, y0 = kps[:, :2].min(axis=0)
        x1, y1 = kps[:, :2].max(axis=0)
        w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
        flat = np.concatenate([kps[:, :2], np.full((len(kps), 1), 2.0)], axis=1).reshape(-1)
        anns.append({"id": k + 1, "image_id": r["image_id"], "category_id": 1, "iscrowd": 0,
                     "bbox": [x0, y0, w, h], "area": w * h, "keypoints": flat.tolist(),
                     "num_keypoints": len(kps)})  # fmt: skip
    data["annotations"] = anns
    Path(path).write_text(json.dumps(data))
    return path


def _api_results(model, ann_file, source, batch_size=None):
    """COCO results of the API on every image of the annotation file (rescore + OKS-NMS)."""
    data = json.loads(Path(ann_file).read_text())
    img_dir = Path(ann_file).parents[1] / "images" / "val2017"
    results = []
    for img in data["images"]:
        path = img_dir / img["file_name"]
        image = cv2.imread(str(path))
        boxes = source(image, file_name=str(path))
        poses = inference_topdown(model, str(path), boxes, batch_size=batch_size)
        poses = oks_nms_poses(poses, model.oks_thre, sigmas=model.layout.sigmas)
        results += [p.to_coco(img["id"]) for p in poses]
    return results


def _by_image(results):
    out = {}
    for r in results:
        out.setdefault(r["image_id"], []).append(r)
    return out


CASES = {
    # GT boxes, plain decoding, every head; detection boxes with the flip test and DARK decoding,
    # the ensemble head (both networks).
    "gt_shift": (
        True, [], lambda root: AnnotationBoxes(str(_ann(root))), ("net1", "net2", "ensemble")
    ),
    "det_flip_dark": (
        False,
        ["TEST.FLIP_TEST", "True", "TEST.POST_TYPE", "dark", "TEST.IMAGE_THRE", "0.7"],
        lambda root: DetectionJsonBoxes(str(_dets(root)), score_thr=0.7),
        ("ensemble",),
    ),
}


def _ann(root):
    return Path(root) / "coco/annotations/person_keypoints_val2017.json"


def _dets(root):
    return Path(root) / "coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json"


@pytest.mark.parametrize("case", sorted(CASES))
def test_api_matches_engine_validation(synth_root, dual_checkpoint, tmp_path, case):
    opts, ckpt = dual_checkpoint
    use_gt, extra, make_source, heads = CASES[case]
    # One crop per forward pass on both sides: CPU convolutions round differently for different
    # batch compositions (~1e-7), which DARK's log-Taylor step on an untrained model's flat heatmaps
    # magnifies to ~1e-2 px; with equal batches the two pipelines must agree to float precision.
    extra = ["TEST.USE_GT_BBOX", str(use_gt), "TEST.MODEL_FILE", str(ckpt),
             "OUTPUT_DIR", str(tmp_path / "out"), "TEST.BATCH_SIZE", "1", *extra]  # fmt: skip
    cfg = _tiny_cfg(opts, extra)
    engine = _engine_do_valid()(cfg, types.SimpleNamespace(cfg="tiny.yaml", distributed=False))
    run_dir = Path(cfg.OUTPUT_DIR) / "mix_coco_coco" / "pose_dual_18" / "tiny"
    (res_dir,) = run_dir.glob("valid/*/results")  # valid.py: <run>/valid/<ckpt>_<time>/results

    source = make_source(synth_root)
    for head in heads:
        suffix = {"net1": 1, "net2": 2, "ensemble": 3}[head]
        model = init_model(cfg, str(ckpt), device="cpu", net=head)
        assert model.flip_test == (not use_gt) and model.post_type == cfg.TEST.POST_TYPE
        ours = _api_results(model, _ann(synth_root), source, batch_size=1)
        theirs = json.loads((res_dir / f"person_keypoints_val2017_eval_{suffix}.json").read_text())
        assert len(ours) == len(theirs) > 0
        mine, ref = _by_image(ours), _by_image(theirs)
        assert sorted(mine) == sorted(ref)
        for image_id, people in ref.items():
            got = mine[image_id]
            assert len(got) == len(people)
            for a, b in zip(got, people):
                np.testing.assert_allclose(a["keypoints"], b["keypoints"], rtol=0, atol=1e-5)
                assert a["score"] == pytest.approx(b["score"], abs=1e-7)
        # The engine's COCOeval numbers, from our results json.
        assert _coco_stats(_ann(synth_root), ours) == list(engine[head].values()), head
        # And against a ground truth made of the engine's own predictions, where AP is not 0.
        pseudo = _pseudo_gt(_ann(synth_root), theirs, tmp_path / f"pseudo_{head}.json")
        ref_stats = _coco_stats(pseudo, theirs)
        assert ref_stats[0] > 0.5
        assert _coco_stats(pseudo, ours) == ref_stats, head


def test_keypoints_in_image_coordinates_follow_the_crop(synth_root, dual_checkpoint):
    """Shifting the whole image and its box shifts the keypoints by the same amount."""
    opts, ckpt = dual_checkpoint
    model = init_model(_tiny_cfg(opts), str(ckpt), device="cpu", net="net1")
    model.in_vis_thre = -1.0  # every joint of the untrained model enters the person score
    ann = json.loads(_ann(synth_root).read_text())
    path = _ann(synth_root).parents[1] / "images/val2017" / ann["images"][0]["file_name"]
    image = cv2.imread(str(path))
    box = np.array([[30.0, 10.0, 60.0, 100.0, 0.8]])
    padded = cv2.copyMakeBorder(image, 20, 0, 40, 0, cv2.BORDER_CONSTANT, value=0)
    a = inference_topdown(model, image, box)[0]
    b = inference_topdown(model, padded, box + [[40.0, 20.0, 0, 0, 0]])[0]
    assert a.keypoints.shape == (17, 3) and a.union_keypoints.shape == (24, 3)
    np.testing.assert_allclose(b.keypoints[:, :2] - a.keypoints[:, :2], [[40.0, 20.0]] * 17,
                               atol=1e-3)  # fmt: skip
    np.testing.assert_allclose(b.keypoints[:, 2], a.keypoints[:, 2], atol=1e-5)
    assert a.bbox_score == pytest.approx(0.8) and a.box_index == 0
    scores = a.keypoints[:, 2]
    assert a.score == pytest.approx(0.8 * scores.mean(), rel=1e-5)


def test_crop_and_normalisation_equal_the_dataset_pipeline(synth_root, dual_checkpoint):
    opts, ckpt = dual_checkpoint
    cfg = _tiny_cfg(opts)
    model = init_model(cfg, str(ckpt), device="cpu")
    dataset = build_dataset(cfg, is_train=False)
    rec = dataset.db[0]
    inp, _, _, meta = dataset[0]
    box = rec["raw_box"]
    image = cv2.imread(rec["image"])
    # The GT box of the record, cleaned as the dataset does, gives its centre and scale.
    source = AnnotationBoxes(str(_ann(synth_root)))
    clean = source(image, file_name=rec["image"])[0]
    center, scale = box_to_center_scale(clean, model.aspect_ratio)
    assert np.array_equal(center, meta["center"]) and np.array_equal(scale, meta["scale"])
    crop = crop_person(image, center, scale, model.image_size)
    x = model.preprocess(crop[None])
    assert torch.equal(x[0], inp)
    assert box.shape == (4,)


def test_batching_and_heads(synth_root, dual_checkpoint):
    opts, ckpt = dual_checkpoint
    cfg = _tiny_cfg(opts)
    path = _ann(synth_root).parents[1] / "images/val2017" / "000001000001.jpg"
    boxes = [[10, 10, 50, 90], [60, 5, 70, 110], [100, 20, 50, 80]]
    m1 = init_model(cfg, str(ckpt), device="cpu", net="net1")
    one = inference_topdown(m1, str(path), boxes, batch_size=1)
    three = inference_topdown(m1, str(path), boxes, batch_size=3)
    for a, b in zip(one, three):
        np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-4)
    m2 = init_model(cfg, str(ckpt), device="cpu", net="net2")
    me = init_model(cfg, str(ckpt), device="cpu", net="ensemble")
    x = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        h1, h2, he = m1(x), m2(x), me(x)
    assert not torch.allclose(h1, h2)
    torch.testing.assert_close(he, (h1 + h2) * 0.5)
    # A whole-image source gives one box covering the image.
    whole = WholeImageBoxes()(cv2.imread(str(path)))
    assert whole.tolist() == [[0.0, 0.0, 160.0, 120.0, 1.0]]


def test_single_network_reads_either_net_of_a_dual_checkpoint(synth_root, dual_checkpoint):
    opts, ckpt = dual_checkpoint
    single = _tiny_cfg(opts, ["MODEL.NAME", "pose_resnet", "DATASET.TRAIN_DATASET", "coco"])
    dual = _tiny_cfg(opts)
    x = torch.randn(1, 3, 96, 64)
    with torch.no_grad():
        for net in ("net1", "net2"):
            a = init_model(single, str(ckpt), device="cpu", net=net)(x)
            b = init_model(dual, str(ckpt), device="cpu", net=net)(x)
            torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="net must be one of"):
        init_model(dual, str(ckpt), device="cpu", net="net3")
    cons = _tiny_cfg(opts, ["MODEL.NAME", "pose_cons"])
    with pytest.raises(ValueError, match="net2"):
        init_model(cons, None, device="cpu", net="net2")
