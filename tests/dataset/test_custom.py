"""The 'custom' dataset: a user's own keypoints (the 9-point robot arm of toy_shapes) as files and
YAML keys only: COCO-format json, a metainfo file, an unlabeled folder and a video."""
import json
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from semipose.apis import draw_predictions, inference_topdown, init_model
from semipose.config import ConfigError, get_cfg, update_config
from semipose.dataset.build import build_dataset, dataset_layout, dataset_trained_joints
from semipose.dataset.custom import UnlabeledDataset, read_video_frame
from semipose.dataset.toy_shapes import generate_toy_set
from semipose.engine import launch as trainer
from semipose.engine.checks import check_config
from semipose.engine.cli import parse_valid_args

pytestmark = pytest.mark.usefixtures("single_thread")

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "experiments/custom/res18_256x256_PoseDual_JointCut.yaml"


@pytest.fixture(scope="module")
def arm_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("arm")
    paths = generate_toy_set(str(root), num_train=8, num_val=4, num_unlabeled=4,
                             video_frames=10, image_size=(96, 96), seed=3)  # fmt: skip
    return root, paths


def _opts(root, out, **changes):
    opts = {
        "DATASET.ROOT": str(root), "DATASET.METAINFO": "robot_arm.yaml",
        "OUTPUT_DIR": str(out / "output"), "LOG_DIR": str(out / "log"), "WORKERS": "0",
        "DEVICE": "cpu", "PRINT_FREQ": "1", "MODEL.INIT_WEIGHTS": "False",
        "MODEL.PRETRAINED": "", "MODEL.IMAGE_SIZE": "[64, 64]",
        "MODEL.EXTRA.HEATMAP_SIZE": "[16, 16]", "MODEL.EXTRA.NUM_DECONV_FILTERS": "[16, 16, 16]",
        "MODEL.EXTRA.SIGMA": "1", "TRAIN.BATCH_SIZE": "2", "TRAIN.END_EPOCH": "1",
        "TRAIN.LR_STEP": "[1, 2]", "TRAIN.MAX_ITERS": "2", "TEST.BATCH_SIZE": "4",
        "MASK_JOINT_NUM": "2",
    }  # fmt: skip
    opts.update(changes)
    return [item for pair in opts.items() for item in pair]


def _cfg(opts, path=TEMPLATE):
    args = types.SimpleNamespace(cfg=str(path), opts=list(opts), distributed=False, local_rank=-1)
    return update_config(get_cfg(), args), args


def test_labeled_set_is_native_nine_joints(arm_set, tmp_path):
    root, paths = arm_set
    cfg, _ = _cfg(_opts(root, tmp_path))
    ds = build_dataset(cfg, is_train=False)
    assert ds.num_joints == 9 and len(ds) == 4 and ds.image_set == "custom_val"
    assert ds.flip_pairs == [[5, 7], [6, 8]]
    ann = json.loads(Path(paths["val_ann"]).read_text())["annotations"][0]
    assert np.allclose(ds.db[0]["joints_3d"][:, :2], np.reshape(ann["keypoints"], (9, 3))[:, :2])
    inp, target, weight, meta = ds[0]
    assert tuple(inp.shape) == (3, 64, 64) and tuple(target.shape) == (9, 16, 16)
    assert float(weight.sum()) == 9.0
    assert dataset_trained_joints(cfg) == list(range(9))


def test_mixed_set_pairs_labeled_with_folder_and_video(arm_set, tmp_path):
    root, _ = arm_set
    cfg, _ = _cfg(_opts(root, tmp_path))
    mixed = build_dataset(cfg, is_train=True)
    # 4 folder images + 10 frames at 10 fps sampled at 2 per second (frames 0 and 5)
    assert mixed.sizes == [8, 6] and len(mixed) == 8
    assert [r["image"].rsplit("#", 1)[-1] for r in mixed.unlabeled.db[4:]] == ["0", "5"]
    inputs, targets, weights, _ = mixed[5]
    assert len(inputs) == 2 and tuple(targets[1].shape) == (9, 16, 16)
    assert float(weights[1].sum()) == 9.0


def test_video_frames_decode_by_seeking(arm_set):
    _, paths = arm_set
    cap = cv2.VideoCapture(paths["video"])
    frames = [cap.read()[1] for _ in range(7)]
    cap.release()
    assert np.array_equal(read_video_frame(paths["video"], 5), frames[5])
    assert np.array_equal(read_video_frame(paths["video"], 2), frames[2])


def test_unlabeled_detection_boxes(arm_set, tmp_path):
    root, paths = arm_set
    dets = [{"file_name": "unlabeled/000001.jpg", "bbox": [10, 10, 40, 50], "score": 0.9},
            {"file_name": "arm.avi#3", "bbox": [0, 0, 96, 96], "score": 0.8},
            {"file_name": "unlabeled/000002.jpg", "bbox": [0, 0, 20, 20], "score": 0.1}]
    det_file = tmp_path / "dets.json"
    det_file.write_text(json.dumps(dets))
    cfg, _ = _cfg(_opts(root, tmp_path))
    ds = UnlabeledDataset(str(root), ["unlabeled"], build_dataset(cfg, False).metainfo, False,
                          boxes=str(det_file), image_thre=0.5, image_size=(64, 64),
                          heatmap_size=(16, 16))  # fmt: skip
    assert len(ds) == 2 and ds.db[1]["video"] == (str(root / "arm.avi"), 3)
    assert np.allclose(ds.db[0]["center"], [30, 35])
    crop = ds[1][0]  # no transform: the raw crop of the decoded frame
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8 and crop.std() > 5


def test_joint_count_mismatch_names_both(arm_set, tmp_path):
    root, _ = arm_set
    cfg, _ = _cfg(_opts(root, tmp_path, **{"MODEL.NUM_JOINTS": "5"}))
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    text = str(err.value)
    assert "MODEL.NUM_JOINTS 5" in text and "expected 9" in text and "robot_arm.yaml" in text


@pytest.mark.parametrize("metric, key", [("oks", "AP"), ("pck", "PCK")])
def test_ground_truth_scores_one(arm_set, tmp_path, metric, key):
    root, _ = arm_set
    cfg, _ = _cfg(_opts(root, tmp_path, **{"TEST.METRIC": metric}))
    ds = build_dataset(cfg, is_train=False)
    preds = np.stack([np.concatenate([r["joints_3d"][:, :2], np.ones((9, 1))], 1) for r in ds.db])
    boxes = np.zeros((len(ds), 6))
    boxes[:, :2] = [r["center"] for r in ds.db]
    boxes[:, 2:4] = [r["scale"] for r in ds.db]
    boxes[:, 4] = boxes[:, 2] * boxes[:, 3] * 200**2
    boxes[:, 5] = 1
    names, perf = ds.evaluate(preds, str(tmp_path), boxes, [r["image"] for r in ds.db])
    assert perf == pytest.approx(1.0) and names[key] == pytest.approx(1.0)
    # 6 px off on every joint: the arm's own (small) sigmas cost AP, PCK@0.2 of ~60 px does not
    names, perf = ds.evaluate(preds + [6, 0, 0], str(tmp_path), boxes, [r["image"] for r in ds.db])
    assert (perf < 0.9) if metric == "oks" else perf == pytest.approx(1.0)


def test_drawing_uses_the_metainfo_skeleton(arm_set, tmp_path):
    root, paths = arm_set
    cfg, _ = _cfg(_opts(root, tmp_path))
    layout = dataset_layout(cfg)
    assert layout.num_joints == 9 and len(layout.skeleton) == 8
    kpts = np.array([[10, 80, 1], [10, 60, 1], [40, 60, 1], [70, 60, 1], [80, 60, 1],
                     [85, 50, 1], [90, 40, 1], [85, 70, 1], [90, 80, 1]], float)  # fmt: skip
    drawn = draw_predictions(np.zeros((96, 96, 3), np.uint8), [kpts], layout, draw_bbox=False)
    # the shoulder-elbow limb (index 1) in its metainfo colour, mid-way between the joints
    assert tuple(int(v) for v in drawn[60, 25]) == layout.limb_colors[1] == (120, 120, 200)


def test_train_validate_and_draw_end_to_end(arm_set, tmp_path):
    root, paths = arm_set
    opts = _opts(root, tmp_path)
    cfg, args = _cfg(opts)
    check_config(cfg)
    out = trainer.do_train(cfg, args)
    run = Path(out["output_dir"])
    assert run.parts[-3:] == ("custom", "pose_dual_18", TEMPLATE.stem)
    assert {"net1", "net2", "ensemble"} <= set(out["last"])
    assert list(out["last"]["net1"])[:2] == ["AP", "Ap .5"]
    final = run / "final_state.pth.tar"
    vargs, vcfg = parse_valid_args(["--cfg", str(TEMPLATE), "--model-file", str(final), *opts,
                                    "--vis", "2"])  # fmt: skip
    res = trainer.do_valid(vcfg, vargs)
    assert res["ensemble"]["AP"] == pytest.approx(out["last"]["ensemble"]["AP"], abs=1e-9)
    assert len(list((Path(res["output_dir"]) / "vis").glob("*.jpg"))) == 2
    model = init_model(str(TEMPLATE), str(final), device="cpu", opts=opts)
    poses = inference_topdown(model, str(root / "images/val/100001.jpg"), boxes=[[0, 0, 96, 96]])
    assert len(poses) == 1 and poses[0].keypoints.shape == (9, 3)
    assert np.all((poses[0].keypoints[:, :2] >= 0) & (poses[0].keypoints[:, :2] < 96))
    assert model.layout.skeleton == layout_skeleton()
    # the run's pictures (python -m semipose.apis.demo): the arm's limbs beside its ground truth
    from semipose.apis import demo

    assert demo.main(["--cfg", str(TEMPLATE), "--num-images", "2", *opts]) == 0
    panels = cv2.imread(str(run / "demo_predictions.png"))
    assert panels is not None and panels.shape[0] == 96 and panels.shape[1] > 96 * 4
    limb = np.array(layout_color(), np.int16)  # the ground truth's base-shoulder limb colour
    assert (np.abs(panels[:, :96].astype(np.int16) - limb).sum(axis=2) < 30).sum() > 20
    assert (run / "learning_curve.png").is_file()


def layout_color():
    from semipose.common.metainfo import load_metainfo

    return load_metainfo("robot_arm").limb_colors[0]


def layout_skeleton():
    from semipose.common.metainfo import load_metainfo

    return load_metainfo("robot_arm").skeleton


def test_an_export_with_bare_file_names_and_an_image_folder(arm_set, tmp_path):
    """A labeling tool's export: bare ``file_name``s, the images in one folder per split
    (``DATASET.VAL_IMAGES``, relative to ROOT or absolute); names that carry their folder still
    work with the folder set; a folder without the images drops nothing silently (the file check
    sees it)."""
    root, paths = arm_set
    data = json.loads(Path(paths["val_ann"]).read_text())
    folders = {str(Path(img["file_name"]).parent) for img in data["images"]}
    assert len(folders) == 1 and folders != {"."}
    folder = folders.pop()
    bare = dict(data, images=[dict(img, file_name=Path(img["file_name"]).name)
                              for img in data["images"]])
    ann = tmp_path / "export.json"
    ann.write_text(json.dumps(bare))
    want = build_dataset(_cfg(_opts(root, tmp_path))[0], is_train=False)
    for images in (folder, str(Path(root) / folder)):
        cfg, _ = _cfg(_opts(root, tmp_path, **{"DATASET.VAL_ANN": str(ann),
                                               "DATASET.VAL_IMAGES": images}))
        got = build_dataset(cfg, is_train=False)
        assert [Path(r["image"]).resolve() for r in got.db] == \
            [Path(r["image"]).resolve() for r in want.db]
        assert np.array_equal(got[0][0].numpy(), want[0][0].numpy())
    cfg, _ = _cfg(_opts(root, tmp_path, **{"DATASET.VAL_IMAGES": folder}))  # names with folder
    assert len(build_dataset(cfg, is_train=False)) == len(want)
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg, _ = _cfg(_opts(root, tmp_path, **{"DATASET.VAL_ANN": str(ann),
                                           "DATASET.VAL_IMAGES": str(empty)}))
    with pytest.raises(Exception, match="export.json|missing|not found"):
        build_dataset(cfg, is_train=False)


def test_valid_with_detection_boxes_on_a_custom_val_set(arm_set, tmp_path):
    """``TEST.USE_GT_BBOX False`` + ``TEST.COCO_BBOX_FILE``: one val record per detection of the
    set's category above TEST.IMAGE_THRE, in the detection's box."""
    root, paths = arm_set
    data = json.loads(Path(paths["val_ann"]).read_text())
    cat = data["categories"][0]["id"]
    dets = [{"image_id": a["image_id"], "category_id": cat, "bbox": a["bbox"], "score": 0.9}
            for a in data["annotations"]]
    dets.append(dict(dets[0], score=0.1))  # below the threshold
    dets.append(dict(dets[0], category_id=cat + 50))  # another category
    det_file = tmp_path / "dets.json"
    det_file.write_text(json.dumps(dets))
    cfg, _ = _cfg(_opts(root, tmp_path, **{"TEST.USE_GT_BBOX": "False", "TEST.IMAGE_THRE": "0.5",
                                           "TEST.COCO_BBOX_FILE": str(det_file)}))
    ds = build_dataset(cfg, is_train=False)
    assert len(ds) == len(data["annotations"])
    assert all(r["score"] == pytest.approx(0.9) for r in ds.db)
    assert np.allclose(ds.db[0]["raw_box"], data["annotations"][0]["bbox"])


def test_checker_opens_every_image_of_a_custom_set(arm_set, tmp_path, capsys):
    """``check_dataset --cfg``: a clean set passes (rc 0); a file that is no image and a json size
    that is not the image's are errors naming the file (rc 2)."""
    import shutil

    from semipose.tools import check_dataset

    root, paths = arm_set
    copy = tmp_path / "arm"
    shutil.copytree(root, copy)
    opts = _opts(copy, tmp_path)
    assert check_dataset.main(["--cfg", str(TEMPLATE), *opts]) == 0
    val = json.loads((copy / Path(paths["val_ann"]).relative_to(root)).read_text())
    broken = copy / val["images"][0]["file_name"]
    broken.write_bytes(b"not a jpeg")
    val["images"][1]["width"] += 7
    ann = tmp_path / "val_sized.json"
    ann.write_text(json.dumps(val))
    capsys.readouterr()
    assert check_dataset.main(["--cfg", str(TEMPLATE), *opts, "DATASET.VAL_ANN", str(ann)]) == 2
    out = capsys.readouterr().out
    assert f"1 images cannot be read as images: {broken}" in out
    assert "1 images have another size than the json's width/height" in out


TRIANGLE = """name: triangle
keypoints: [a, b, c]
skeleton: [[a, b], [b, c]]
joint_colors: [[255, 255, 0], [255, 255, 0], [255, 255, 0]]
limb_colors: [[0, 0, 255], [0, 255, 0]]
"""


def _triangle_layout(tmp_path):
    from semipose.common.metainfo import load_metainfo
    from semipose.utils.vis import layout_from_metainfo

    (tmp_path / "triangle.yaml").write_text(TRIANGLE)
    return layout_from_metainfo(load_metainfo(str(tmp_path / "triangle.yaml")))


# a (8, 16) -- b (56, 16) visible, c (56, 56) not: the limb a-b is drawn, b-c is not
TRIANGLE_JOINTS = [[8, 16, 0], [56, 16, 0], [56, 56, 0]]
TRIANGLE_VIS = [[1, 1, 0], [1, 1, 0], [0, 0, 0]]


def test_debug_pictures_draw_the_metainfo_skeleton(tmp_path):
    """``save_batch_image_with_joints(layout=...)``: the limb between two visible joints in its
    limb colour, the visible joints in their joint colour, nothing on or at an invisible joint;
    each crop on its own tile of the grid."""
    import torch

    from semipose.utils.vis import save_batch_image_with_joints

    out = tmp_path / "gt.png"  # lossless, to compare exact pixel values
    vis = [TRIANGLE_VIS, [[1, 1, 0]] * 3]  # crop 1: c visible too
    save_batch_image_with_joints(torch.zeros(2, 3, 64, 64), torch.tensor([TRIANGLE_JOINTS] * 2),
                                 torch.tensor(vis), str(out),
                                 layout=_triangle_layout(tmp_path))  # fmt: skip
    img = cv2.imread(str(out))
    pad = 2  # the grid's padding: pixel (x, y) of crop k is img[y + pad, x + pad + k * 66]
    assert img.shape == (64 + 2 * pad, 2 * 64 + 3 * pad, 3)
    crops = [img[pad:pad + 64, pad + k * 66:pad + k * 66 + 64] for k in range(2)]
    for crop in crops:
        for x in (20, 32, 44):  # along a-b: the limb colour of [a, b]
            assert tuple(int(v) for v in crop[16, x]) == (0, 0, 255)
        assert tuple(int(v) for v in crop[16, 56]) == (255, 255, 0)  # joint b, its colour
    assert crops[0][26:64, 52:61].max() == 0  # b-c below b's circle, c included: nothing
    for y in (30, 36, 42):  # crop 1: b-c in its limb colour, and joint c
        assert tuple(int(v) for v in crops[1][y, 56]) == (0, 255, 0)
    assert tuple(int(v) for v in crops[1][56, 56]) == (255, 255, 0)
    # the red dots of the drawing without a layout are gone
    assert not np.any(np.all(img == (255, 0, 0), axis=-1))


def test_debug_hook_draws_the_layout_given_at_construction(tmp_path):
    """``DebugImages(..., layout=...)`` passes the layout down to the written ``_gt.jpg`` (lossy:
    the limb is compared by colour, not exact values); without it, the dots as before."""
    import torch

    from semipose.engine.hooks import DebugImages

    debug = types.SimpleNamespace(DEBUG=True, SAVE_BATCH_IMAGES_GT=True,
                                  SAVE_BATCH_IMAGES_PRED=True, SAVE_HEATMAPS_GT=False,
                                  SAVE_HEATMAPS_PRED=False)  # fmt: skip
    meta = {"joints": torch.tensor([TRIANGLE_JOINTS], dtype=torch.float32),
            "joints_vis": torch.tensor([TRIANGLE_VIS], dtype=torch.float32)}
    heatmap = torch.zeros(1, 3, 16, 16)
    method = types.SimpleNamespace(labeled_target=lambda t: t[0], labeled_heatmap=lambda o: o[0])
    trainer = types.SimpleNamespace(iter=0, iters_per_epoch=1, method=method, step={
        "inputs": [torch.zeros(1, 3, 64, 64)], "meta": [meta], "targets": [heatmap],
        "outputs": [heatmap]})  # fmt: skip
    pictures = {}
    for name, layout in (("skeleton", _triangle_layout(tmp_path)), ("dots", None)):
        hook = DebugImages(debug, str(tmp_path / name), period=1, layout=layout)
        hook.trainer = trainer
        hook.after_step()
        pictures[name] = cv2.imread(str(tmp_path / name / "train" / "train_0_gt.jpg")).astype(int)
        assert (tmp_path / name / "train" / "train_0_pred.jpg").is_file()
    # a batch of one is the crop itself (no grid padding): pixel (x, y) is picture[y, x]
    mid = pictures["skeleton"][15:18, 30:35]  # a-b, mid-way: red (BGR 0, 0, 255)
    assert mid[..., 2].max() > 150 and mid[..., 2].max() > mid[..., :2].max() + 100
    assert pictures["skeleton"][26:64, 52:61].max() < 40  # b-c: not drawn
    assert pictures["dots"][13:20, 28:37].max() < 40  # the dots picture has no limb
    assert pictures["dots"][16, 56, 0] > 150  # but its blue dot on b
