"""The data-pipeline paths against the cv2 path: reduced JPEG decode, the person-crop cache and the
device-side warp (rendered here on CPU tensors), on a tiny 320x240 synthetic set."""

import random

import cv2
import numpy as np
import pytest
import torch

from semipose.codecs import MSRAHeatmap
from semipose.dataset import gpu_pipeline as gp
from semipose.dataset.build import IMAGENET_MEAN, IMAGENET_STD, default_transform
from semipose.dataset.coco import COCODataset
from semipose.dataset.crop_cache import CropCache, crop_region
from semipose.dataset.mixed import MixedCOCOCOCODataset
from semipose.utils import image_io
from semipose.utils.optim import get_optimizer

pytestmark = pytest.mark.usefixtures("single_thread")

KW = {"image_size": (48, 64), "heatmap_size": (12, 16), "sigma": 2, "scale_factor": 0.25,
      "rotation_factor": 30}  # fmt: skip
# Crop pixels of the device path vs cv2.warpAffine (uint8 levels): cv2 5 interpolates with
# fixed-point weights, grid_sample in float32; both round to integers.
DEVICE_MAX_DIFF = 1
DEVICE_MEAN_DIFF = 0.02
# The crop cache samples the region through the same affine composed with its offset; cv2 5 computes
# the sampling positions in float32, so a few pixels round to the neighbouring level.
CACHE_MAX_DIFF = 1
CACHE_DIFF_SHARE = 0.02


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    from semipose.dataset.synthetic import generate

    path = tmp_path_factory.mktemp("syn")
    generate(str(path), num_train=6, num_val=1, image_size=(320, 240), seed=3)
    return str(path)


def _item(ds, idx, seed):
    np.random.seed(seed)
    random.seed(seed)
    return ds[idx]


def test_jpeg_size_and_reduction_factor():
    for w, h in ((77, 123), (640, 480), (333, 500)):
        ok, enc = cv2.imencode(".jpg", np.zeros((h, w, 3), np.uint8))
        assert image_io.jpeg_size(enc) == (w, h)
    ok, png = cv2.imencode(".png", np.zeros((5, 7, 3), np.uint8))
    assert image_io.jpeg_size(png) is None
    assert [image_io.reduction_factor(r) for r in (0.5, 1.9, 2.0, 3.9, 4.0, 7.9, 8.0, 30)] == [
        1, 1, 2, 2, 4, 4, 8, 8
    ]


def test_reduced_decode_same_joints_and_near_pixels(root):
    # 24x32 crops of persons up to 220 px tall: most draws decode at 1/2 or 1/4.
    kw = {**KW, "image_size": (24, 32), "heatmap_size": (6, 8)}
    ref = COCODataset(root, "train", True, None, **kw)
    red = COCODataset(root, "train", True, None, reduced_decode=True, **kw)
    reduced = 0
    diffs = []
    for i in range(len(ref)):
        a, b = _item(ref, i, i), _item(red, i, i)
        np.testing.assert_array_equal(a[3]["joints"], b[3]["joints"])
        assert torch.equal(a[1], b[1]) and torch.equal(a[2], b[2])
        ratio = a[3]["scale"][0] * 200 / kw["image_size"][0]
        reduced += image_io.reduction_factor(ratio) > 1
        diffs.append(np.abs(a[0].astype(float) - b[0].astype(float)).mean())
    assert reduced >= len(ref) // 2
    # The reduced decode averages 2x2 (4x4) blocks where the full-size warp aliases: near pixels,
    # not equal ones (mean absolute difference in uint8 levels).
    assert np.mean(diffs) < 6.0


def test_reduced_decode_geometry():
    # A white square on black: the reduced decode puts its edges where the full one does.
    img = np.zeros((240, 320, 3), np.uint8)
    img[80:160, 120:200] = 255
    ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 100])
    full = cv2.imdecode(enc, cv2.IMREAD_COLOR).astype(float)
    for f in (2, 4):
        red = cv2.imdecode(enc, image_io.REDUCED_FLAGS[f]).astype(float)
        to_full = np.array([[f, 0, (f - 1) / 2], [0, f, (f - 1) / 2], [0, 0, 1.0]])
        warp = np.array([[1.0 / f, 0, 0], [0, 1.0 / f, 0]])  # full -> a 1/f-size output
        a = cv2.warpAffine(full, warp, (320 // f, 240 // f), flags=cv2.INTER_AREA)
        b = cv2.warpAffine(red, warp @ to_full, (320 // f, 240 // f), flags=cv2.INTER_LINEAR)
        assert np.abs(a - b).mean() < 2.0


def test_crop_region_covers_every_sampled_point():
    rng = np.random.default_rng(0)
    for _ in range(50):
        c = rng.uniform(0, 300, 2)
        s = rng.uniform(0.2, 2.0, 2)
        x0, y0, x1, y1 = crop_region(c, s, (48, 64), 0.25, 30)
        from semipose.utils.transforms import get_affine_transform

        for scale in (0.75, 1.0, 1.25):
            for rot in (-60.0, -37.0, 0.0, 25.0, 60.0):
                inv = get_affine_transform(c, s * scale, rot, (48, 64), inv=1)
                pts = np.array([[0, 0, 1], [47, 0, 1], [0, 63, 1], [47, 63, 1.0]]) @ inv.T
                assert pts[:, 0].min() - 1 >= x0 and pts[:, 0].max() + 2 <= x1
                assert pts[:, 1].min() - 1 >= y0 and pts[:, 1].max() + 2 <= y1


@pytest.mark.parametrize("fmt", ["raw", "jpg"])
def test_crop_cache_same_samples(root, tmp_path, fmt):
    ref = COCODataset(root, "train", True, None, **KW)
    cached = COCODataset(root, "train", True, None, crop_cache=str(tmp_path), crop_cache_format=fmt,
                         **KW)  # fmt: skip
    for rnd in range(2):  # first pass fills the cache, the second reads it
        changed, total = 0, 0
        for i in range(len(ref)):
            a, b = _item(ref, i, 100 * rnd + i), _item(cached, i, 100 * rnd + i)
            for key in ("joints", "joints_vis", "center", "scale"):
                np.testing.assert_array_equal(a[3][key], b[3][key])
            assert a[3]["rotation"] == b[3]["rotation"]
            assert torch.equal(a[1], b[1]) and torch.equal(a[2], b[2])
            d = np.abs(a[0].astype(int) - b[0].astype(int))
            if fmt == "raw":
                assert d.max() <= CACHE_MAX_DIFF
                changed += int((d > 0).sum())
                total += d.size
            else:  # lossy JPEG regions at quality 95
                assert d.mean() < 3.0
        if fmt == "raw":
            assert changed / total < CACHE_DIFF_SHARE
    cache = cached.crop_cache
    assert cache.misses == len(ref) and cache.hits == len(ref)
    files = list(tmp_path.rglob("*.crop"))
    assert len(files) == len(ref)
    assert len(list(tmp_path.rglob("params.json"))) == 1


def test_crop_cache_damaged_file_is_cut_again(root, tmp_path):
    ds = COCODataset(root, "train", True, None, crop_cache=str(tmp_path), **KW)
    a = _item(ds, 0, 0)
    path = ds.crop_cache.path(ds, ds.db[0])
    with open(path, "r+b") as f:
        f.truncate(30)
    b = _item(ds, 0, 0)
    np.testing.assert_array_equal(a[0], b[0])
    assert ds.crop_cache.misses == 2


def test_crop_cache_is_keyed_by_parameters(root, tmp_path):
    a = COCODataset(root, "train", True, None, crop_cache=str(tmp_path), **KW)
    kw = {**KW, "rotation_factor": 15}
    b = COCODataset(root, "train", True, None, crop_cache=str(tmp_path), **kw)
    cache = CropCache(str(tmp_path))
    assert cache.dataset_dir(a) != cache.dataset_dir(b)
    assert cache.path(a, a.db[0]) != cache.path(a, a.db[1])


def test_device_targets_identical_to_host_targets():
    rng = np.random.default_rng(0)
    for sigma in (2, 3, 1.5):
        codec = MSRAHeatmap(image_size=(48, 64), heatmap_size=(12, 16), sigma=sigma)
        renderer = gp.DeviceRenderer((48, 64), (12, 16), sigma)
        items = []
        refs = []
        for _ in range(6):
            joints = rng.uniform(-30, 90, (24, 3))
            vis = (rng.random((24, 3)) > 0.3).astype(float)
            window, weight = codec.windows(joints, vis)
            items.append(gp.DeferredTarget(window.astype(np.int32), weight[:, 0] > 0.5))
            refs.append(codec.encode(joints, vis))
        out = renderer(gp.TargetBatch.stack(items))
        for k, (target, _) in enumerate(refs):
            assert torch.equal(out[k], torch.from_numpy(target))


def test_device_warp_matches_cv2(root):
    ref = COCODataset(root, "train", True, default_transform(), **KW)
    raw = COCODataset(root, "train", True, None, **KW)
    dev = COCODataset(root, "train", True, None, device_warp=True, **KW)
    items, refs, crops = [], [], []
    for i in range(len(ref)):
        items.append(_item(dev, i, i))
        refs.append(_item(ref, i, i))
        crops.append(_item(raw, i, i)[0])
    batch = gp.collate(items)
    renderer = gp.DeviceRenderer(KW["image_size"], KW["heatmap_size"], KW["sigma"], None, None)
    inputs, targets, weights, meta = renderer(batch[0]), renderer(batch[1]), batch[2], batch[3]
    pixels = (inputs.permute(0, 2, 3, 1) * 255).round().numpy()
    d = np.abs(pixels - np.stack(crops).astype(float))
    assert d.max() <= DEVICE_MAX_DIFF and d.mean() <= DEVICE_MEAN_DIFF
    assert torch.equal(targets, torch.stack([r[1] for r in refs]))
    assert torch.equal(weights, torch.stack([r[2] for r in refs]))
    np.testing.assert_array_equal(meta["joints"].numpy(), np.stack([r[3]["joints"] for r in refs]))
    # Normalised as ToTensor + Normalize: equal wherever the uint8 crops are.
    norm = gp.DeviceRenderer(KW["image_size"], KW["heatmap_size"], 2, IMAGENET_MEAN, IMAGENET_STD)
    ref_inputs = torch.stack([r[0] for r in refs])
    same = torch.from_numpy(d.max(-1) == 0).unsqueeze(1).expand_as(ref_inputs)
    got = norm(batch[0])
    assert torch.allclose(got[same], ref_inputs[same], atol=1e-6)


def test_device_warp_black_outside_and_tiny_patch():
    img = np.full((40, 50, 3), 200, np.uint8)
    far = np.array([[1.0, 0.0, 500.0], [0.0, 1.0, 500.0]])  # the crop lies off the image
    crop = gp.DeferredCrop.from_warp(img, far, (8, 6))
    assert crop.patch.shape == (1, 1, 3)
    out = gp.render_crops(gp.CropBatch.stack([crop]), (8, 6))
    assert out.abs().max() == 0


def test_mixed_pairs_through_device_loader(root):
    tf = default_transform()
    ref = MixedCOCOCOCODataset(root, "train", True, tf, train_len=4, **KW)
    dev = MixedCOCOCOCODataset(root, "train", True, tf, train_len=4, device_warp=True, **KW)
    loader_ref = torch.utils.data.DataLoader(ref, batch_size=4, shuffle=False)
    loader_dev = torch.utils.data.DataLoader(dev, batch_size=4, shuffle=False,
                                             collate_fn=gp.collate)  # fmt: skip
    renderer = gp.DeviceRenderer(KW["image_size"], KW["heatmap_size"], 2, IMAGENET_MEAN,
                                 IMAGENET_STD)  # fmt: skip
    wrapped = gp.DeviceBatchLoader(loader_dev, renderer)
    assert len(wrapped) == len(loader_ref) and wrapped.dataset is dev
    np.random.seed(5)
    random.seed(5)
    a = next(iter(loader_ref))
    np.random.seed(5)
    random.seed(5)
    b = next(iter(wrapped))
    for x, y in zip(a[0], b[0]):
        assert x.shape == y.shape and (x - y).abs().max() < 0.02  # one uint8 level / std
    for x, y in zip(a[1] + a[2], b[1] + b[2]):
        assert torch.equal(x, y)


def test_builder_and_loader_keys(root, tmp_path):
    from semipose.config import load_config
    from semipose.dataset.build import build_dataset
    from semipose.engine.defaults import RunContext, build_train_loader

    opts = ["DATASET.ROOT", root, "DATASET.TRAIN_DATASET", "mix_coco_coco", "DATASET.TRAIN_SET",
            "train", "DATASET.TEST_DATASET", "coco", "DATASET.TEST_SET", "val",
            "DATASET.TRAIN_LEN", "4", "MODEL.IMAGE_SIZE", "[48, 64]",
            "MODEL.EXTRA.HEATMAP_SIZE", "[12, 16]", "TRAIN.BATCH_SIZE", "4", "WORKERS", "0",
            "DATASET.REDUCED_DECODE", "true", "DATASET.CROP_CACHE", str(tmp_path),
            "DATASET.DEVICE_WARP", "true", "TEST.USE_GT_BBOX", "true"]  # fmt: skip
    cfg = load_config(None, opts)
    train = build_dataset(cfg, is_train=True)
    assert train.labeled.device_warp and train.unlabeled.reduced_decode
    assert train.unlabeled.crop_cache is not None
    assert not build_dataset(cfg, is_train=False).device_warp
    ctx = RunContext(torch.device("cpu"), False, 0, 0, str(tmp_path), str(tmp_path))
    loader, _, _ = build_train_loader(cfg, train, ctx)
    inputs, targets, weights, meta = next(iter(loader))
    assert inputs[0].shape == (4, 3, 64, 48) and targets[0].shape == (4, 24, 16, 12)
    with pytest.raises(ValueError, match="CONS_RAND_AUG"):
        build_dataset(load_config(None, opts + ["CONS_RAND_AUG", "true"]), is_train=True)


def test_fused_adam_only_on_cuda():
    p = [torch.nn.Parameter(torch.zeros(3))]
    opt = get_optimizer(p, "adam", 1e-3, fused=True)
    assert not opt.defaults.get("fused")
    assert not get_optimizer(p, "adam", 1e-3).defaults.get("fused")
