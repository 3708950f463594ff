import random
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from semipose.codecs import MSRAHeatmap
from semipose.dataset.build import default_transform
from semipose.dataset.coco import COCODataset
from semipose.dataset.joints import COCO_TRAINED, FLIP_PAIRS


def _reference_target(joints, vis, image_size, heatmap_size, sigma):
    """Per-joint, per-pixel loop of the spec §5.1 step 8 semantics (test oracle)."""
    k = len(joints)
    w, h = heatmap_size
    target = np.zeros((k, h, w), np.float32)
    weight = np.array(vis, np.float32)[:, :1].copy()
    stride = np.array(image_size, float) / np.array(heatmap_size, float)
    tmp = sigma * 3
    for j in range(k):
        mx = int(joints[j][0] / stride[0] + 0.5)
        my = int(joints[j][1] / stride[1] + 0.5)
        ul = [int(mx - tmp), int(my - tmp)]
        br = [int(mx + tmp + 1), int(my + tmp + 1)]
        if ul[0] >= w or ul[1] >= h or br[0] < 0 or br[1] < 0:
            weight[j] = 0
            continue
        if weight[j] > 0.5:
            for y in range(max(0, ul[1]), min(br[1], h)):
                for x in range(max(0, ul[0]), min(br[0], w)):
                    target[j, y, x] = np.exp(-((x - mx) ** 2 + (y - my) ** 2) / (2 * sigma**2))
    return target, weight


def _codec(sigma):
    return MSRAHeatmap(image_size=(192, 256), heatmap_size=(48, 64), sigma=sigma)


@pytest.mark.parametrize("sigma", [2, 3])
def test_generate_target_matches_pixel_loop(sigma):
    rng = np.random.default_rng(1)
    joints = np.zeros((24, 3))
    joints[:, 0] = rng.uniform(-40, 230, 24)
    joints[:, 1] = rng.uniform(-40, 290, 24)
    joints[0, :2] = [-1.9, 5.0]  # int() truncation toward zero near the left border
    joints[1, :2] = [191.0, 255.0]
    vis = np.ones((24, 3))
    vis[5] = 0
    target, weight = _codec(sigma).encode(joints, vis)
    ref_t, ref_w = _reference_target(joints, vis, (192, 256), (48, 64), sigma)
    assert target.dtype == np.float32 and target.shape == (24, 64, 48)
    assert weight.dtype == np.float32 and weight.shape == (24, 1)
    np.testing.assert_allclose(target, ref_t, atol=1e-6)
    np.testing.assert_array_equal(weight, ref_w)
    assert weight[5, 0] == 0 and target[5].max() == 0


def test_generate_target_peak_and_bounds():
    joints = np.zeros((24, 3))
    joints[0, :2] = [41.0, 86.0]  # mu = (int(10.75), int(22)) = (10, 22)
    joints[1, :2] = [-100.0, 10.0]  # far outside: weight 0
    joints[2, :2] = [-20.0, 10.0]  # mu.x = -4 -> partially inside
    vis = np.zeros((24, 3))
    vis[:3] = 1
    target, weight = _codec(2).encode(joints, vis)
    assert np.unravel_index(target[0].argmax(), target[0].shape) == (22, 10)
    assert target[0, 22, 10] == pytest.approx(1.0)
    assert target[0, 22, 11] == pytest.approx(np.exp(-1 / 8))
    assert weight[1, 0] == 0 and target[1].max() == 0
    assert weight[2, 0] == 1 and target[2].max() == pytest.approx(np.exp(-16 / 8))
    assert weight[3:].sum() == 0
    assert _codec(2).stamp().shape == (13, 13)


def test_item_shapes_dtypes(tiny_coco, tiny_kwargs):
    root, _ = tiny_coco
    ds = COCODataset(root, "train", True, default_transform(), **tiny_kwargs)
    inp, target, weight, meta = ds[0]
    assert isinstance(inp, torch.Tensor) and inp.dtype == torch.float32
    assert inp.shape == (3, 128, 96)
    assert target.shape == (24, 32, 24) and target.dtype == torch.float32
    assert weight.shape == (24, 1) and weight.dtype == torch.float32
    for key in ("joints", "joints_vis"):
        assert meta[key].shape == (24, 3) and meta[key].dtype == np.float32
    for key, n in (("center", 2), ("scale", 2), ("raw_box", 4)):
        assert meta[key].shape == (n,) and meta[key].dtype == np.float32
    assert isinstance(meta["scale_ratio"], float) and isinstance(meta["rotation"], float)
    assert meta["score"] == 1.0 and meta["image"].endswith("000000000100.jpg")
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    assert batch[0].shape == (2, 3, 128, 96)
    # Union joints COCO never labels stay at weight 0.
    untrained = [j for j in range(24) if j not in COCO_TRAINED]
    assert weight[untrained].sum() == 0


def test_invisible_joints_weight_zero(tiny_coco, tiny_kwargs):
    root, _ = tiny_coco
    # Record 1 of train is person B (native joints 0..7 labeled v=1, others 0); no augmentation.
    ds = COCODataset(root, "train", False, None, use_gt_bbox=True, **tiny_kwargs)
    _, target, weight, meta = ds[1]
    vis = ds.db[1]["joints_3d_vis"][:, 0]
    assert vis.sum() == 8
    inside = weight[:, 0].numpy() > 0
    assert not inside[vis == 0].any()
    assert target.numpy()[vis == 0].max() == 0


def test_peak_at_transformed_joint(tiny_coco, tiny_kwargs):
    root, _ = tiny_coco
    ds = COCODataset(root, "train", False, None, use_gt_bbox=True, **tiny_kwargs)
    _, target, weight, meta = ds[0]
    for j in np.flatnonzero(weight[:, 0].numpy() > 0):
        x, y = meta["joints"][j, :2]
        mx, my = int(x / 4 + 0.5), int(y / 4 + 0.5)
        assert target[j, my, mx] == pytest.approx(1.0)


def test_explicit_geometry_and_flip_mirror(tiny_coco, tiny_kwargs):
    root, _ = tiny_coco
    ds = COCODataset(root, "train", True, None, **tiny_kwargs)
    crop, t0, w0, m0 = ds.__getitem__(0, rot_angle=0.0, scale=1.0, flip=False)
    crop_f, t1, w1, m1 = ds.__getitem__(0, rot_angle=0.0, scale=1.0, flip=True)
    assert m0["rotation"] == 0.0 and m0["scale_ratio"] == 1.0
    # Flipped crop column u samples what the mirrored plain crop has at column u - 1.
    mirror = crop[:, ::-1].astype(np.int16)
    diff = np.abs(crop_f[:, 1:].astype(np.int16) - mirror[:, :-1])
    assert diff.mean() < 1.0 and diff.max() <= 3
    perm = list(range(24))
    for a, b in FLIP_PAIRS:
        perm[a], perm[b] = b, a
    vis = m0["joints_vis"][:, 0] > 0
    np.testing.assert_allclose(m1["joints"][perm][vis, 0], 96 - m0["joints"][vis, 0], atol=1e-3)
    np.testing.assert_allclose(m1["joints"][perm][vis, 1], m0["joints"][vis, 1], atol=1e-3)
    np.testing.assert_array_equal(w1.numpy()[perm], w0.numpy())

    _, _, _, m2 = ds.__getitem__(0, rot_angle=30.0, scale=1.1, flip=False)
    assert m2["rotation"] == 30.0 and m2["scale_ratio"] == pytest.approx(1.1)
    np.testing.assert_allclose(m2["scale"], m0["scale"] * 1.1, rtol=1e-6)


def test_random_draws_follow_distributions(tiny_coco, tiny_kwargs):
    root, _ = tiny_coco
    ds = COCODataset(root, "train", True, None, **tiny_kwargs)
    np.random.seed(0)
    random.seed(0)
    rots, scales = [], []
    for _ in range(40):
        meta = ds[0][3]
        rots.append(meta["rotation"])
        scales.append(meta["scale_ratio"])
    rots, scales = np.array(rots), np.array(scales)
    assert np.all(np.abs(rots) <= 60) and np.all((scales >= 0.75) & (scales <= 1.25))
    assert 0.2 < np.mean(rots == 0) < 0.7  # p(no rotation) = 0.4
    assert len(set(np.round(scales, 6))) > 30


def test_test_mode_has_no_augmentation(tiny_coco, tiny_kwargs):
    root, _ = tiny_coco
    ds = COCODataset(root, "train", False, None, use_gt_bbox=True, **tiny_kwargs)
    a = ds.__getitem__(0, rot_angle=45.0, scale=0.8, flip=True)
    b = ds[0]
    np.testing.assert_array_equal(a[0], b[0])
    assert a[3]["rotation"] == 0.0 and a[3]["scale_ratio"] == 1.0


def test_unreadable_image_names_path(tiny_coco, tiny_kwargs):
    root, _ = tiny_coco
    ds = COCODataset(root, "train", False, None, use_gt_bbox=True, **tiny_kwargs)
    path = ds.db[0]["image"]
    Path(path).write_bytes(b"not an image")
    with pytest.raises(ValueError, match="000000000100.jpg"):
        ds[0]


def test_zip_format_same_pixels(tiny_coco, tiny_kwargs):
    root, _ = tiny_coco
    img_dir = Path(root) / "coco" / "images"
    with zipfile.ZipFile(img_dir / "train2017.zip", "w") as zf:
        for p in sorted((img_dir / "train2017").glob("*.jpg")):
            zf.write(p, f"train2017/{p.name}")
    plain = COCODataset(root, "train", False, None, use_gt_bbox=True, **tiny_kwargs)
    zipped = COCODataset(
        root, "train", False, None, use_gt_bbox=True, data_format="zip", **tiny_kwargs
    )
    assert zipped.db[0]["image"].endswith("train2017.zip@/train2017/000000000100.jpg")
    np.testing.assert_array_equal(plain[2][0], zipped[2][0])


def test_half_body_transform(tiny_coco, tiny_kwargs):
    root, _ = tiny_coco
    ds = COCODataset(root, "train", False, None, use_gt_bbox=True, **tiny_kwargs)
    joints = np.zeros((24, 3))
    vis = np.zeros((24, 3))
    for j, (x, y) in {14: (10, 10), 17: (30, 10), 15: (10, 40), 18: (30, 40)}.items():
        joints[j, :2] = (x, y)
        vis[j] = 1
    np.random.seed(3)
    c, s = ds.half_body_transform(joints, vis)  # only upper joints are visible
    np.testing.assert_allclose(c, [20, 25])
    # extent 20 x 30; aspect 0.75 -> w = 22.5; then x1.5
    np.testing.assert_allclose(s, np.array([22.5, 30]) / 200 * 1.5, rtol=1e-6)
    vis[:] = 0
    vis[14] = 1
    assert ds.half_body_transform(joints, vis) == (None, None)


def test_select_data(tiny_coco, tiny_kwargs):
    root, _ = tiny_coco
    ds = COCODataset(root, "train", False, None, use_gt_bbox=True, **tiny_kwargs)
    near = {"joints_3d": np.tile([50.0, 50.0, 0], (24, 1)), "joints_3d_vis": np.ones((24, 3)),
            "center": np.array([50.0, 50.0]), "scale": np.array([0.5, 0.5])}  # fmt: skip
    far = dict(near, center=np.array([150.0, 150.0]))
    none = dict(near, joints_3d_vis=np.zeros((24, 3)))
    kept = ds.select_data([near, far, none])
    assert len(kept) == 1 and kept[0] is near


def test_flip_folded_into_affine_matches_mirrored_image(tiny_coco, tiny_kwargs):
    root, _ = tiny_coco
    ds = COCODataset(root, "train", True, None, **tiny_kwargs)
    folded = ds.__getitem__(2, rot_angle=17.0, scale=0.9, flip=True)
    ds.fold_flip_into_affine = False
    mirrored = ds.__getitem__(2, rot_angle=17.0, scale=0.9, flip=True)
    diff = np.abs(folded[0].astype(np.int16) - mirrored[0].astype(np.int16))
    assert diff.max() <= 2 and diff.mean() < 0.1
    np.testing.assert_array_equal(folded[3]["joints"], mirrored[3]["joints"])
    torch.testing.assert_close(folded[1], mirrored[1])


def test_truncated_image_is_named_and_used(tiny_coco, tiny_kwargs, caplog):
    """Issue 16 #4: a truncated JPEG in a dataset is read with one warning naming it."""
    root, _ = tiny_coco
    ds = COCODataset(root, "train", False, None, use_gt_bbox=True, **tiny_kwargs)
    path = Path(ds.db[0]["image"])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with caplog.at_level("WARNING"):
        crop = ds[0][0]
        ds[0]
    assert crop.shape == (128, 96, 3)
    hits = [r for r in caplog.records if "truncated JPEG" in r.getMessage()]
    assert len(hits) == 1 and str(path) in hits[0].getMessage()


def test_unreadable_training_image_is_skipped_with_a_count(tiny_coco, tiny_kwargs, caplog):
    """Issue 16: a training image that cannot be read is skipped (the next record takes its
    place) and named once with a count; in evaluation it stays an error naming the file."""
    from semipose.common.errors import DataFileError

    root, _ = tiny_coco
    train = COCODataset(root, "train", True, None, use_gt_bbox=True, **tiny_kwargs)
    bad = Path(train.db[0]["image"])
    bad.write_bytes(b"not an image")
    others = [i for i, r in enumerate(train.db) if r["image"] != str(bad)]
    with caplog.at_level("WARNING"):
        meta = train[0][3]
        train[0]
    assert meta["image"] == train.db[others[0]]["image"]
    hits = [r.getMessage() for r in caplog.records if "skipping an unreadable" in r.getMessage()]
    assert len(hits) == 1 and str(bad) in hits[0] and "1 image(s) skipped" in hits[0]
    val = COCODataset(root, "train", False, None, use_gt_bbox=True, **tiny_kwargs)
    with pytest.raises(DataFileError, match=str(bad)):
        val[0]
