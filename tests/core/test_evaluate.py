"""Tests of semipose.core.evaluate: distances, per-joint accuracy and the inherited h/w swap."""
import numpy as np
import pytest

from semipose.core.evaluate import accuracy, calc_dists, dist_acc

H, W = 64, 48


def _peaks(points, h=H, w=W):
    """(1, K, h, w) heatmaps with a single 1.0 at each (x, y); None gives an all-zero map."""
    hm = np.zeros((1, len(points), h, w), dtype=np.float32)
    for k, p in enumerate(points):
        if p is not None:
            hm[0, k, p[1], p[0]] = 1.0
    return hm


def test_calc_dists_values_and_invalid_targets():
    preds = np.array([[[13.0, 14.0], [5.0, 5.0], [9.0, 9.0]]])
    target = np.array([[[10.0, 10.0], [1.0, 8.0], [9.0, 1.0]]])
    norm = np.array([[2.0, 4.0]])
    d = calc_dists(preds, target, norm)
    assert d.shape == (3, 1)  # (K, N)
    assert d[0, 0] == pytest.approx(np.hypot(3 / 2.0, 4 / 4.0))
    assert d[1, 0] == -1  # target x <= 1
    assert d[2, 0] == -1  # target y <= 1


def test_dist_acc():
    assert dist_acc(np.array([0.1, 0.6, -1, 0.49])) == pytest.approx(2 / 3)
    assert dist_acc(np.array([0.7, 0.2]), thr=0.8) == pytest.approx(1.0)
    assert dist_acc(np.array([-1.0, -1.0])) == -1


def test_accuracy_values_and_the_inherited_swap():
    # norm = [H, W] / 10 = [6.4, 4.8] divides (x, y): x by 6.4 and y by 4.8 (the original's swap).
    target = _peaks([(20, 20), (20, 20), (20, 20), None])
    output = _peaks([(23, 20), (20, 23), (20, 20), (5, 5)])
    acc, avg, cnt, pred = accuracy(output, target)
    # joint 0: dx = 3 -> 3 / 6.4 = 0.47 < 0.5, correct (it would fail with x / 4.8 = 0.625).
    # joint 1: dy = 3 -> 3 / 4.8 = 0.625, wrong.
    # joint 2: exact. joint 3: no valid target (all-zero map -> argmax zeroed) -> -1.
    np.testing.assert_allclose(acc[1:], [1.0, 0.0, 1.0, -1.0])
    assert cnt == 3
    assert avg == pytest.approx(2 / 3)
    assert acc[0] == pytest.approx(2 / 3)
    np.testing.assert_array_equal(pred[0], [[23, 20], [20, 23], [20, 20], [5, 5]])


def test_accuracy_batch_and_no_valid_joint():
    target = np.concatenate([_peaks([(10, 10), (30, 40)]), _peaks([(12, 50), None])])
    output = np.concatenate([_peaks([(10, 10), (30, 50)]), _peaks([(12, 50), (7, 7)])])
    acc, avg, cnt, _ = accuracy(output, target)
    np.testing.assert_allclose(acc[1:], [1.0, 0.0])  # joint 1: one valid sample, 10 px off in y
    assert cnt == 2 and avg == pytest.approx(0.5)
    acc, avg, cnt, _ = accuracy(output, np.zeros_like(target))
    np.testing.assert_allclose(acc, [0.0, -1.0, -1.0])
    assert cnt == 0 and avg == 0
    with pytest.raises(ValueError):
        accuracy(output, target, hm_type="integral")
