"""Tests of semipose.nms: OKS, greedy and soft OKS-NMS, box NMS (numpy, Cython, fallback)."""
import sys
import warnings

import numpy as np
import pytest

import semipose.nms as nms_pkg
from semipose.dataset.joints import COCO_SIGMAS
from semipose.nms import cpu_nms, nms, oks_iou, oks_nms, soft_oks_nms


def _pose(rng, centre, spread=40.0, vis=1.0):
    xy = np.asarray(centre) + rng.uniform(-spread, spread, (17, 2))
    return np.hstack([xy, np.full((17, 1), vis)])


def _record(kpts, score, area=4000.0):
    return {"keypoints": np.asarray(kpts, dtype=np.float64), "score": score, "area": area}


def test_oks_of_identical_poses_is_one():
    rng = np.random.default_rng(0)
    p = _pose(rng, (100, 100)).ravel()
    out = oks_iou(p, np.stack([p, p]), 3000.0, np.array([3000.0, 10.0]))
    np.testing.assert_allclose(out, [1.0, 1.0])


def test_oks_value_of_one_displaced_joint():
    rng = np.random.default_rng(1)
    g = _pose(rng, (100, 100))
    d = g.copy()
    d[5, 0] += 7.0  # left shoulder 7 px off
    a_g, a_d = 2000.0, 3000.0
    e = 49.0 / (2 * COCO_SIGMAS[5]) ** 2 / ((a_g + a_d) / 2 + np.spacing(1)) / 2
    expected = (16 + np.exp(-e)) / 17
    out = oks_iou(g.ravel(), d.ravel()[None], a_g, np.array([a_d]))
    assert out[0] == pytest.approx(expected, rel=1e-12)
    # Custom sigmas are honoured.
    sig = np.full(17, 0.1)
    e2 = 49.0 / 0.2**2 / ((a_g + a_d) / 2 + np.spacing(1)) / 2
    out2 = oks_iou(g.ravel(), d.ravel()[None], a_g, np.array([a_d]), sigmas=sig)
    assert out2[0] == pytest.approx((16 + np.exp(-e2)) / 17, rel=1e-12)


def test_in_vis_thre_uses_both_poses():
    rng = np.random.default_rng(2)
    g = _pose(rng, (100, 100))
    d = g.copy()
    d[0, :2] += 50.0  # nose far off ...
    g[0, 2] = 0.0  # ... but not visible in the reference pose
    out = oks_iou(g.ravel(), d.ravel()[None], 3000.0, np.array([3000.0]), in_vis_thre=0.5)
    # Element-wise AND drops the nose; the original's `and` kept only d's mask and counted it.
    assert out[0] == pytest.approx(1.0)
    d[3, 2] = 0.0  # another joint hidden in d only: still all remaining joints agree
    out = oks_iou(g.ravel(), d.ravel()[None], 3000.0, np.array([3000.0]), in_vis_thre=0.5)
    assert out[0] == pytest.approx(1.0)
    g[:, 2] = 0.0  # nothing visible: OKS 0
    out = oks_iou(g.ravel(), d.ravel()[None], 3000.0, np.array([3000.0]), in_vis_thre=0.5)
    assert out[0] == 0.0


def _people():
    rng = np.random.default_rng(3)
    a = _pose(rng, (100, 100))
    dup = a.copy()
    dup[:, :2] += rng.normal(0, 0.5, (17, 2))
    far = _pose(rng, (400, 300))
    return [_record(dup, 0.8), _record(a, 0.9), _record(far, 0.5)]


def test_oks_nms_keeps_best_duplicate_and_distinct_people():
    db = _people()
    assert oks_nms(db, 0.9) == [1, 2]
    assert oks_nms(db, 1.0) == [1, 0, 2]  # nothing reaches OKS > 1
    assert oks_nms([], 0.9) == []
    # Keypoints given flat work the same.
    flat = [dict(r, keypoints=r["keypoints"].ravel()) for r in db]
    assert oks_nms(flat, 0.9) == [1, 2]


def test_soft_oks_nms_rescores_instead_of_dropping():
    db = _people()
    # The duplicate's score falls to 0.8 * (1 - oks) ~ 0, below the distinct person's 0.5.
    assert soft_oks_nms(db, 0.9) == [1, 2, 0]
    assert soft_oks_nms(db, 0.9, max_dets=2) == [1, 2]
    assert soft_oks_nms(db, 0.9, method="gaussian") == [1, 2, 0]
    # Below the threshold the linear rule leaves scores alone: plain score order.
    assert soft_oks_nms(db, 1.0) == [1, 0, 2]
    assert soft_oks_nms([], 0.9) == []
    with pytest.raises(ValueError):
        soft_oks_nms(db, 0.9, method="hard")


def test_box_nms_values():
    dets = np.array(
        [
            [0, 0, 9, 9, 0.9],  # area 100
            [0, 0, 9, 4, 0.8],  # inside the first: IoU 50 / 100 = 0.5
            [20, 20, 29, 29, 0.7],
            [21, 21, 30, 30, 0.95],  # IoU with the third: 81 / 119
        ],
        dtype=np.float32,
    )
    assert nms(dets, 0.5) == [3, 0]  # IoU >= thresh is suppressed
    assert nms(dets, 0.51) == [3, 0, 1]
    assert nms(dets, 0.7) == [3, 0, 1, 2]
    assert nms(np.zeros((0, 5)), 0.5) == []


def _random_boxes(rng, n):
    xy = rng.uniform(0, 200, (n, 2))
    wh = rng.uniform(4, 80, (n, 2))
    return np.hstack([xy, xy + wh, rng.uniform(0, 1, (n, 1))]).astype(np.float32)


def test_cpu_nms_is_compiled():
    mod = sys.modules.get("semipose.nms.cpu_nms")
    if mod is None:
        pytest.skip("the Cython extension is not built (pip install -e .)")
    assert cpu_nms is mod.cpu_nms


@pytest.mark.parametrize("thresh", [0.1, 0.3, 0.5, 0.7, 0.9])
def test_cpu_nms_equals_python_nms(thresh):
    rng = np.random.default_rng(int(thresh * 10))
    dets = _random_boxes(rng, 200)
    keep = cpu_nms(dets, thresh)
    assert keep == nms(dets, thresh)
    assert all(isinstance(i, int) for i in keep)
    assert cpu_nms(np.zeros((0, 5), dtype=np.float32), thresh) == []


def test_cpu_nms_fallback_warns_once(monkeypatch):
    monkeypatch.setitem(sys.modules, "semipose.nms.cpu_nms", None)  # makes the import fail
    fallback = nms_pkg._load_cpu_nms()
    dets = _random_boxes(np.random.default_rng(7), 50)
    with pytest.warns(RuntimeWarning, match="not built"):
        keep = fallback(dets, 0.4)
    assert keep == nms(dets, 0.4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fallback(dets.astype(np.float64), 0.4) == keep
